//! A quick look at the SQLite backend's speed. Ignored by default and never asserts timings;
//! the numbers are printed:
//!
//! ```text
//! cargo test --release -p slipway-store --test sqlite_throughput -- --ignored --nocapture
//! ```
//!
//! The figures that count come from `slipway bench`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use slipway_store::sqlite::SqliteStore;
use slipway_store::{ListOptions, Store};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(what: &str, n: usize, elapsed: Duration, mut latencies: Vec<Duration>) {
    latencies.sort_unstable();
    println!(
        "{what}: {n} in {:.2?} = {:.0}/s; latency p50 {:.2?} p99 {:.2?} max {:.2?}",
        elapsed,
        n as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
    );
}

fn value(size: usize) -> Bytes {
    Bytes::from(vec![b'x'; size])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "prints throughput figures; run with --ignored --nocapture"]
async fn sqlite_throughput() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("store.db")).expect("open"));

    // Sequential single writes: the latency of one write with nothing else going on.
    let mut lat = Vec::new();
    let start = Instant::now();
    for i in 0..1000 {
        let t = Instant::now();
        store
            .create(&format!("/seq/{i:05}"), value(1024))
            .await
            .expect("create");
        lat.push(t.elapsed());
    }
    report("sequential creates (1 KiB)", 1000, start.elapsed(), lat);

    // Many concurrent writers: creates, then CAS updates of the same keys.
    for (writers, per) in [(16usize, 500usize), (64, 200), (256, 50)] {
        for phase in ["create", "update"] {
            let start = Instant::now();
            let mut tasks = Vec::new();
            for t in 0..writers {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(per);
                    for i in 0..per {
                        let key = format!("/c{writers}/{t:03}/{i:04}");
                        let t0 = Instant::now();
                        if phase == "create" {
                            store.create(&key, value(1024)).await.expect("create");
                        } else {
                            let kv = store.get(&key).await.expect("get").expect("present");
                            let t1 = Instant::now();
                            store
                                .update(&key, value(1024), kv.mod_revision)
                                .await
                                .expect("update");
                            lat.push(t1.elapsed());
                            continue;
                        }
                        lat.push(t0.elapsed());
                    }
                    lat
                }));
            }
            let mut lat = Vec::new();
            for t in tasks {
                lat.extend(t.await.expect("writer"));
            }
            report(
                &format!("{writers} concurrent writers, {phase}s (1 KiB)"),
                writers * per,
                start.elapsed(),
                lat,
            );
        }
    }

    // Reads.
    let mut lat = Vec::new();
    let start = Instant::now();
    for i in 0..2000 {
        let t = Instant::now();
        store
            .get(&format!("/c64/{:03}/{:04}", i % 64, i % 200))
            .await
            .expect("get")
            .expect("present");
        lat.push(t.elapsed());
    }
    report("sequential gets", 2000, start.elapsed(), lat);

    // A list of 10,000 keys (the /c16/ prefix holds 8,000 and /c64/ 12,800; use 10,000 new).
    let mut tasks = Vec::new();
    for t in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..200 {
                store
                    .create(&format!("/list/{t:02}/{i:03}"), value(1024))
                    .await
                    .expect("create");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let at = store.current_revision().await.expect("revision");
    for _ in 0..3 {
        let t = Instant::now();
        let res = store
            .list("/list/", ListOptions::default())
            .await
            .expect("list");
        println!(
            "list of {} keys (1 KiB values) at the current revision: {:.2?}",
            res.items.len(),
            t.elapsed()
        );
    }
    store.create("/other", value(10)).await.expect("create");
    for _ in 0..2 {
        let t = Instant::now();
        let res = store
            .list(
                "/list/",
                ListOptions {
                    revision: Some(at),
                    ..Default::default()
                },
            )
            .await
            .expect("list");
        println!(
            "list of {} keys at a past revision: {:.2?}",
            res.items.len(),
            t.elapsed()
        );
    }
    let t = Instant::now();
    let mut pages = 0;
    let mut after = None;
    loop {
        let res = store
            .list(
                "/list/",
                ListOptions {
                    revision: Some(at),
                    start_after: after,
                    limit: Some(500),
                },
            )
            .await
            .expect("page");
        pages += 1;
        after = res.items.last().map(|kv| kv.key.clone());
        if !res.more {
            break;
        }
    }
    println!(
        "paged list of 10,000 keys at a past revision, 500 per page: {pages} pages in {:.2?}",
        t.elapsed()
    );
    let t = Instant::now();
    let n = store.count("/list/").await.expect("count");
    println!("count of {n} keys: {:.2?}", t.elapsed());

    // Watch delivery: N watchers, one writer; time from before the write to each delivery.
    for watchers in [100usize, 1000] {
        let from = store.current_revision().await.expect("revision");
        let mut streams = Vec::new();
        for _ in 0..watchers {
            streams.push(store.watch("/watched/", from).await.expect("watch"));
        }
        let events = 200;
        let sent = Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
        let mut readers = Vec::new();
        for mut s in streams {
            let sent = sent.clone();
            readers.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(events);
                for i in 0..events {
                    s.next().await.expect("event").expect("ok");
                    let at = sent.lock().expect("lock")[i];
                    lat.push(at.elapsed());
                }
                lat
            }));
        }
        let start = Instant::now();
        for i in 0..events {
            sent.lock().expect("lock").push(Instant::now());
            store
                .create(&format!("/watched/{watchers}/{i}"), value(512))
                .await
                .expect("create");
        }
        let mut lat = Vec::new();
        for r in readers {
            lat.extend(r.await.expect("reader"));
        }
        report(
            &format!("watch delivery to {watchers} watchers (write start to receipt)"),
            events * watchers,
            start.elapsed(),
            lat,
        );
    }
}
