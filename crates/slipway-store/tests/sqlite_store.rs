//! SQLite-specific behaviour: persistence across reopen, the single-process lock, watchers
//! that fall behind, and crash safety under kill -9.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use slipway_store::sqlite::{Durability, EVENT_BUFFER, SqliteStore};
use slipway_store::{EventKind, ListOptions, Store, StoreError, WatchStream};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn next(w: &mut WatchStream) -> slipway_store::WatchEvent {
    match tokio::time::timeout(Duration::from_secs(20), w.next()).await {
        Ok(Some(Ok(ev))) => ev,
        other => panic!("expected a watch event, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_data_revisions_and_compaction() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.db");

    let store = SqliteStore::open(&path).expect("open");
    let ra = store.create("/p/a", b("a1")).await.expect("create");
    let rb = store.create("/p/b", b("b1")).await.expect("create");
    let ra2 = store.update("/p/a", b("a2"), ra).await.expect("update");
    let (rdel, _) = store.delete("/p/b", None).await.expect("delete");
    let rc = store.create("/p/c", b("c1")).await.expect("create");
    store.compact(ra2).await.expect("compact");
    let last = store.create("/p/d", b("d1")).await.expect("create");
    store.close();
    assert!(matches!(
        store.get("/p/a").await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.create("/p/x", b("x")).await,
        Err(StoreError::Unavailable(_))
    ));
    drop(store);

    let store = SqliteStore::open(&path).expect("reopen");
    store.check_integrity().await.expect("integrity");
    assert_eq!(store.current_revision().await.expect("revision"), last);
    assert_eq!(store.compacted_revision().await.expect("compacted"), ra2);
    let a = store.get("/p/a").await.expect("get").expect("a");
    assert_eq!(
        (a.value, a.create_revision, a.mod_revision),
        (b("a2"), ra, ra2)
    );
    assert_eq!(store.get("/p/b").await.expect("get"), None);
    let items = store
        .list("/p/", ListOptions::default())
        .await
        .expect("list")
        .items;
    let keys: Vec<_> = items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/p/a", "/p/c", "/p/d"]);
    assert_eq!(items[1].create_revision, rc);

    // The compacted revision is remembered: before it fails, at it works.
    let before = store
        .list(
            "/p/",
            ListOptions {
                revision: Some(rb),
                ..Default::default()
            },
        )
        .await;
    assert!(
        matches!(before, Err(StoreError::Compacted { .. })),
        "{before:?}"
    );
    assert!(matches!(
        store.watch("/p/", ra).await.err(),
        Some(StoreError::Compacted { .. })
    ));
    let at = store
        .list(
            "/p/",
            ListOptions {
                revision: Some(ra2),
                ..Default::default()
            },
        )
        .await
        .expect("list at the compacted revision");
    assert_eq!(at.items.len(), 2, "a and b lived at {ra2}");

    // History after the compacted revision replays, with the right kinds.
    let mut w = store.watch("/p/", ra2).await.expect("watch");
    let ev = next(&mut w).await;
    assert_eq!((ev.kind, ev.revision()), (EventKind::Deleted, rdel));
    assert_eq!(ev.kv.value, b("b1"));

    // Revisions continue after the last one, never reusing one.
    let next_rev = store.create("/p/e", b("e1")).await.expect("create");
    assert_eq!(next_rev, last + 1);
    drop(store); // Drop closes too.

    let store = SqliteStore::open(&path).expect("reopen after drop");
    assert_eq!(store.current_revision().await.expect("revision"), next_rev);
    store.check_integrity().await.expect("integrity");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_open_of_the_same_file_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(&path).expect("open");
    match SqliteStore::open(&path) {
        Err(StoreError::Unavailable(msg)) => assert!(msg.contains("in use"), "{msg}"),
        other => panic!("second open: expected Unavailable, got {other:?}"),
    }
    store.close();
    let again = SqliteStore::open(&path).expect("open after close");
    again.create("/k", b("v")).await.expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_keys_are_invalid() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("store.db")).expect("open");
    assert!(matches!(
        store.create("", b("v")).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.update("", b("v"), 1).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.delete("", None).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.current_revision().await.expect("revision"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_to_a_future_revision_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("store.db")).expect("open");
    let r = store.create("/k", b("v")).await.expect("create");
    assert_eq!(
        store.compact(r + 1).await,
        Err(StoreError::FutureRevision {
            requested: r + 1,
            current: r
        })
    );
    assert_eq!(store.compacted_revision().await.expect("compacted"), 0);
}

/// Writes `n` single-write batches (one at a time, so each is its own batch).
async fn write_sequentially(store: &SqliteStore, prefix: &str, n: usize) -> Vec<i64> {
    let mut revs = Vec::with_capacity(n);
    for i in 0..n {
        revs.push(
            store
                .create(&format!("{prefix}{i:05}"), b("v"))
                .await
                .expect("create"),
        );
    }
    revs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_falls_behind_catches_up_from_the_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("store.db")).expect("open");
    let mut slow = store.watch("/lag/", 0).await.expect("watch");
    let mut fast = store.watch("/lag/", 0).await.expect("watch");
    let fast_task = tokio::spawn(async move {
        let mut revs = Vec::new();
        while revs.len() < EVENT_BUFFER + 200 {
            revs.push(next(&mut fast).await.revision());
        }
        revs
    });
    // More batches than the live buffer holds, while `slow` reads nothing.
    let revs = write_sequentially(&store, "/lag/", EVENT_BUFFER + 200).await;
    let mut seen = Vec::new();
    while seen.len() < revs.len() {
        let ev = next(&mut slow).await;
        assert_eq!(ev.kind, EventKind::Created);
        seen.push(ev.revision());
    }
    assert_eq!(seen, revs, "the slow watcher lost or repeated events");
    assert_eq!(fast_task.await.expect("fast watcher"), revs);
    // And it is live again afterwards.
    let r = store.create("/lag/after", b("v")).await.expect("create");
    assert_eq!(next(&mut slow).await.revision(), r);
    if let Ok(extra) = tokio::time::timeout(Duration::from_millis(200), slow.next()).await {
        panic!("unexpected extra event {extra:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_watcher_whose_history_was_compacted_ends_with_compacted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("store.db")).expect("open");
    let mut slow = store.watch("/lc/", 0).await.expect("watch");
    let revs = write_sequentially(&store, "/lc/", EVENT_BUFFER + 50).await;
    let last = *revs.last().expect("some writes");
    store.compact(last).await.expect("compact");
    // Whatever it still gets, the stream then reports the history it cannot deliver.
    let mut delivered = 0usize;
    loop {
        match tokio::time::timeout(Duration::from_secs(20), slow.next()).await {
            Ok(Some(Ok(_))) => delivered += 1,
            Ok(Some(Err(StoreError::Compacted { compacted, .. }))) => {
                assert_eq!(compacted, last);
                break;
            }
            other => panic!("expected events then Compacted, got {other:?}"),
        }
    }
    assert!(
        delivered < revs.len(),
        "a lagging watcher cannot have seen everything"
    );
    assert!(
        tokio::time::timeout(Duration::from_secs(5), slow.next())
            .await
            .expect("the stream ends")
            .is_none(),
        "the stream must end after the error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_store_ends_watches() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("store.db")).expect("open");
    let mut w = store.watch("/", 0).await.expect("watch");
    store.create("/k", b("v")).await.expect("create");
    next(&mut w).await;
    store.close();
    let end = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .expect("the watch ends when the store closes");
    assert!(end.is_none(), "{end:?}");
    assert!(store.watch("/", 0).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_purges_history_but_keeps_what_later_reads_need() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.db");
    let store = Arc::new(SqliteStore::open(&path).expect("open"));
    // 50 keys, 100 versions each, half of them deleted: 5,000+ log rows, several purge chunks.
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("/pg/{i:02}");
            let mut r = store.create(&key, b("0")).await.expect("create");
            for v in 1..100 {
                r = store
                    .update(&key, b(&v.to_string()), r)
                    .await
                    .expect("update");
            }
            if i % 2 == 0 {
                store.delete(&key, None).await.expect("delete");
                None
            } else {
                Some((key, r))
            }
        }));
    }
    let mut revs = BTreeMap::new();
    for t in tasks {
        revs.extend(t.await.expect("writer"));
    }
    assert_eq!(revs.len(), 25);
    let mid = store.current_revision().await.expect("revision");
    let mut w = store.watch("/pg/", mid).await.expect("watch");
    store.compact(mid).await.expect("compact");
    // Writes racing the purge.
    for (key, r) in revs.iter_mut() {
        *r = store
            .update(key, b("new"), *r)
            .await
            .expect("update during purge");
    }

    // The purge runs in the background: wait until the log holds only what is still needed
    // (the 25 rows live at the compacted revision and the 25 updates after it).
    wait_for_log_rows(&path, 50).await;
    store.check_integrity().await.expect("integrity");

    let at = store
        .list(
            "/pg/",
            ListOptions {
                revision: Some(mid),
                ..Default::default()
            },
        )
        .await
        .expect("list at the compacted revision");
    assert_eq!(at.items.len(), 25);
    assert!(at.items.iter().all(|kv| kv.value == b("99")));
    let now = store
        .list("/pg/", ListOptions::default())
        .await
        .expect("list");
    assert_eq!(now.items.len(), 25);
    assert!(now.items.iter().all(|kv| kv.value == b("new")));
    // The watch opened before the compaction saw every update with its prev, and a replay
    // from the compacted revision after the purge does too.
    let mut replay = store
        .watch("/pg/", mid)
        .await
        .expect("watch after the purge");
    for _ in 0..25 {
        for w in [&mut w, &mut replay] {
            let ev = next(w).await;
            assert_eq!(ev.kind, EventKind::Updated);
            assert_eq!(ev.prev.map(|p| p.value), Some(b("99")));
        }
    }
}

/// Waits until the purge has brought the log of the store file at `path` down to `expected`
/// rows, failing if it ever removes more.
async fn wait_for_log_rows(path: &Path, expected: i64) {
    let conn = rusqlite::Connection::open(path).expect("open file");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM log", [], |r| r.get(0))
            .expect("count");
        if rows == expected {
            return;
        }
        assert!(
            rows > expected,
            "the purge removed rows still needed: {rows} left, {expected} needed"
        );
        assert!(
            Instant::now() < deadline,
            "the purge did not finish: {rows} rows left, {expected} needed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_compaction_purges_what_was_replaced_since_the_last_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(&path).expect("open");
    let mut revs = BTreeMap::new();
    for i in 0..20 {
        let key = format!("/lc/{i:02}");
        let r = store.create(&key, b("0")).await.expect("create");
        revs.insert(key, r);
    }
    let first = store.current_revision().await.expect("revision");
    store.compact(first).await.expect("compact");
    wait_for_log_rows(&path, 20).await;

    // Rows live at the first compaction are replaced, deleted and recreated after it.
    let mut expected = BTreeMap::new();
    for (i, (key, r)) in revs.iter().enumerate() {
        match i % 4 {
            0 | 1 => {
                let r = store.update(key, b("1"), *r).await.expect("update");
                store.update(key, b("2"), r).await.expect("update");
                expected.insert(key.clone(), b("2"));
            }
            2 => {
                store.delete(key, Some(*r)).await.expect("delete");
            }
            _ => {
                expected.insert(key.clone(), b("0"));
            }
        }
    }
    store
        .delete("/lc/02", None)
        .await
        .expect_err("already deleted");
    store.create("/lc/02", b("again")).await.expect("recreate");
    expected.insert("/lc/02".to_string(), b("again"));
    for i in 20..23 {
        let key = format!("/lc/{i:02}");
        store.create(&key, b("new")).await.expect("create");
        expected.insert(key, b("new"));
    }
    let second = store.current_revision().await.expect("revision");
    store.compact(second).await.expect("compact");
    // The purge goes on after a restart from where it was.
    store.close();
    let store = SqliteStore::open(&path).expect("reopen");
    wait_for_log_rows(&path, i64::try_from(expected.len()).expect("small")).await;
    store.check_integrity().await.expect("integrity");

    let at = store
        .list(
            "/lc/",
            ListOptions {
                revision: Some(second),
                ..Default::default()
            },
        )
        .await
        .expect("list at the compacted revision");
    let got: BTreeMap<String, Bytes> = at.items.into_iter().map(|kv| (kv.key, kv.value)).collect();
    assert_eq!(got, expected);
    assert!(matches!(
        store.watch("/lc/", first).await.map(|_| ()),
        Err(StoreError::Compacted { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// crash safety

const CHILD_ENV: &str = "SLIPWAY_STORE_CRASH_CHILD";
const CHILD_TASKS: usize = 8;

/// Not a test on its own: the child process of `kill_9_loses_no_acknowledged_write`. It
/// writes as fast as it can and prints every acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by kill_9_loses_no_acknowledged_write as a child process"]
async fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (path, rest) = spec.split_once('|').expect("path|round|durability");
    let (round, durability) = rest.split_once('|').expect("round|durability");
    let durability = match durability {
        "power-loss" => Durability::PowerLoss,
        "process-crash" => Durability::ProcessCrash,
        other => panic!("unknown durability {other}"),
    };
    let store = Arc::new(SqliteStore::open_with(Path::new(path), durability).expect("child open"));
    let mut tasks = Vec::new();
    for t in 0..CHILD_TASKS {
        let store = store.clone();
        let round = round.to_string();
        tasks.push(tokio::spawn(async move {
            let counter = format!("/crash/counter/{t}");
            let mut counter_rev = match store.get(&counter).await.expect("get") {
                Some(kv) => kv.mod_revision,
                None => store
                    .create(&counter, b("0"))
                    .await
                    .expect("create counter"),
            };
            let mut count: u64 = match store.get(&counter).await.expect("get") {
                Some(kv) => std::str::from_utf8(&kv.value)
                    .expect("utf-8")
                    .parse()
                    .expect("n"),
                None => 0,
            };
            for n in 0u64.. {
                let key = format!("/crash/{round}/{t}/{n:06}");
                let r = store.create(&key, b(&key)).await.expect("create");
                println!("ACK C {r} {key}");
                if n % 2 == 1 {
                    let prev = format!("/crash/{round}/{t}/{:06}", n - 1);
                    let (r, _) = store.delete(&prev, None).await.expect("delete");
                    println!("ACK D {r} {prev}");
                }
                count += 1;
                counter_rev = store
                    .update(&counter, b(&count.to_string()), counter_rev)
                    .await
                    .expect("update counter");
                println!("ACK U {counter_rev} {counter} {count}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("child task");
    }
}

#[derive(Debug)]
struct Ack {
    op: char,
    rev: i64,
    key: String,
    count: u64,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut parts = line.strip_prefix("ACK ")?.split(' ');
    let op = parts.next()?.chars().next()?;
    let rev = parts.next()?.parse().ok()?;
    let key = parts.next()?.to_string();
    let count = parts.next().map_or(Some(0), |c| c.parse().ok())?;
    Some(Ack {
        op,
        rev,
        key,
        count,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_write() {
    kill_9_rounds("power-loss").await;
}

/// Without an fsync per commit a kill -9 still loses nothing: the commit is in the WAL file,
/// which the OS keeps when the process dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_write_without_fsync() {
    kill_9_rounds("process-crash").await;
}

/// Kills a child writing through a store of the given durability at several points, and
/// checks after each that every write it acknowledged is there.
async fn kill_9_rounds(durability: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.db");
    let exe = std::env::current_exe().expect("test binary");
    let mut last_max = 0i64;
    // Kill at different points of the burst, on the same file each time.
    for (round, kill_after) in [50usize, 400, 1500, 3000, 7].into_iter().enumerate() {
        let mut child = Command::new(&exe)
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(
                CHILD_ENV,
                format!("{}|{round}|{durability}", path.display()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let (acks, lines) = tokio::task::spawn_blocking(move || {
            let mut acks = Vec::new();
            let mut lines = BufReader::new(stdout).lines();
            let deadline = Instant::now() + Duration::from_secs(60);
            while acks.len() < kill_after && Instant::now() < deadline {
                match lines.next() {
                    Some(Ok(line)) => acks.extend(parse_ack(&line)),
                    _ => break,
                }
            }
            (acks, lines)
        })
        .await
        .expect("reader");
        assert!(
            acks.len() >= kill_after,
            "round {round}: the child stopped after {} acknowledgements",
            acks.len()
        );
        child.kill().expect("kill -9");
        // Everything printed before the kill was acknowledged too.
        let rest = tokio::task::spawn_blocking(move || {
            lines
                .map_while(|l| l.ok())
                .filter_map(|l| parse_ack(&l))
                .collect::<Vec<_>>()
        })
        .await
        .expect("reader");
        child.wait().expect("reap child");
        let acks: Vec<Ack> = acks.into_iter().chain(rest).collect();

        let store = SqliteStore::open(&path).expect("the store opens after kill -9");
        store
            .check_integrity()
            .await
            .expect("integrity after kill -9");
        verify(&store, round, &acks, last_max).await;
        eprintln!(
            "round {round}: killed after {} acknowledged writes (up to revision {}); reopened at revision {}",
            acks.len(),
            acks.iter().map(|a| a.rev).max().unwrap_or(0),
            store.current_revision().await.expect("revision")
        );
        last_max = store.current_revision().await.expect("revision");
        store.close();
    }
}

async fn verify(store: &SqliteStore, round: usize, acks: &[Ack], previous_max: i64) {
    let current = store.current_revision().await.expect("revision");
    let max_ack = acks.iter().map(|a| a.rev).max().expect("some acks");
    assert!(
        current >= max_ack,
        "round {round}: revision {current} < acknowledged {max_ack}"
    );
    assert!(
        acks.iter().all(|a| a.rev > previous_max),
        "round {round}: a revision was reused after a crash"
    );
    let deleted: std::collections::HashSet<&str> = acks
        .iter()
        .filter(|a| a.op == 'D')
        .map(|a| a.key.as_str())
        .collect();
    let created: std::collections::HashSet<&str> = acks
        .iter()
        .filter(|a| a.op == 'C')
        .map(|a| a.key.as_str())
        .collect();
    let mut counters: BTreeMap<&str, &Ack> = BTreeMap::new();
    for a in acks {
        match a.op {
            'C' => match store.get(&a.key).await.expect("get") {
                Some(kv) => {
                    assert!(
                        !deleted.contains(a.key.as_str()),
                        "round {round}: acknowledged delete of {} is lost",
                        a.key
                    );
                    assert_eq!(kv.create_revision, a.rev, "round {round}: {}", a.key);
                    assert_eq!(kv.value, b(&a.key));
                }
                None => {
                    // The child deletes key n - 1 right after its create of key n (n odd) was
                    // acknowledged; that delete may have committed without its own
                    // acknowledgement reaching us, but never before.
                    let (stem, n) = a.key.rsplit_once('/').expect("key/n");
                    let n: u64 = n.parse().expect("n");
                    let successor = format!("{stem}/{:06}", n + 1);
                    assert!(
                        n.is_multiple_of(2) && created.contains(successor.as_str()),
                        "round {round}: acknowledged create of {} at {} is lost",
                        a.key,
                        a.rev
                    );
                }
            },
            'U' => {
                let e = counters.entry(a.key.as_str()).or_insert(a);
                if a.count > e.count {
                    *e = a;
                }
            }
            _ => {}
        }
    }
    for (key, ack) in counters {
        let kv = store.get(key).await.expect("get").expect("counter");
        let n: u64 = std::str::from_utf8(&kv.value)
            .expect("utf-8")
            .parse()
            .expect("n");
        assert!(
            n >= ack.count && kv.mod_revision >= ack.rev,
            "round {round}: counter {key} is {n} at {}, acknowledged {} at {}",
            kv.mod_revision,
            ack.count,
            ack.rev
        );
    }
    // The log agrees: replaying this round's history shows every acknowledged write.
    let prefix = format!("/crash/{round}/");
    let mut w = store.watch(&prefix, previous_max).await.expect("watch");
    let mut log = BTreeMap::new();
    let max_logged = acks
        .iter()
        .filter(|a| a.op != 'U')
        .map(|a| a.rev)
        .max()
        .expect("some creates");
    loop {
        let ev = next(&mut w).await;
        log.insert(ev.revision(), (ev.kind, ev.kv.key.clone()));
        if ev.revision() >= max_logged {
            break;
        }
    }
    for a in acks.iter().filter(|a| a.op != 'U') {
        let kind = if a.op == 'C' {
            EventKind::Created
        } else {
            EventKind::Deleted
        };
        assert_eq!(
            log.get(&a.rev),
            Some(&(kind, a.key.clone())),
            "round {round}: the log lacks acknowledged {a:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_with_progress_reports_revisions_that_changed_nothing_under_the_prefix() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("store.db")).expect("open");
    let before = store.create("/b/x", b("0")).await.expect("create");
    // Replay: history holds nothing under /a/, so the watcher reports progress up to now.
    let mut w = store.watch_with_progress("/a/", 0).await.expect("watch");
    let ev = next(&mut w).await;
    assert_eq!(ev.kind, EventKind::Progress);
    assert_eq!(ev.revision(), before);
    assert_eq!(ev.kv.key, "/a/");

    // Live: a write elsewhere is progress, a write under the prefix is an event.
    let other = store.create("/b/y", b("1")).await.expect("create");
    let ev = next(&mut w).await;
    assert_eq!((ev.kind, ev.revision()), (EventKind::Progress, other));
    let mine = store.create("/a/1", b("2")).await.expect("create");
    let ev = next(&mut w).await;
    assert_eq!((ev.kind, ev.revision()), (EventKind::Created, mine));

    // A plain watch never reports progress.
    let mut plain = store.watch("/a/", 0).await.expect("watch");
    store.create("/b/z", b("3")).await.expect("create");
    let last = store.create("/a/2", b("4")).await.expect("create");
    let ev = next(&mut plain).await;
    assert_eq!((ev.kind, ev.revision()), (EventKind::Created, mine));
    let ev = next(&mut plain).await;
    assert_eq!((ev.kind, ev.revision()), (EventKind::Created, last));
}

/// The purge learns what to delete from the writes it saw committed, and reads the log for
/// the ones written before the store was opened: a compaction over both leaves exactly the
/// rows still needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_purge_covers_history_from_before_and_after_a_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.db");
    // Writes one version more of each of `keys`, deleting every third key at `round` 2.
    async fn round(store: &SqliteStore, keys: &mut BTreeMap<String, Option<i64>>, round: u32) {
        for (i, (key, rev)) in keys.iter_mut().enumerate() {
            *rev = match *rev {
                None if round > 0 => None,
                None => Some(store.create(key, b("0")).await.expect("create")),
                Some(_) if round == 2 && i % 3 == 0 => {
                    store.delete(key, None).await.expect("delete");
                    None
                }
                Some(r) => Some(
                    store
                        .update(key, b(&round.to_string()), r)
                        .await
                        .expect("update"),
                ),
            };
        }
    }
    let mut keys: BTreeMap<String, Option<i64>> =
        (0..1500).map(|i| (format!("/re/{i:04}"), None)).collect();
    {
        let store = SqliteStore::open(&path).expect("open");
        round(&store, &mut keys, 0).await;
        round(&store, &mut keys, 1).await;
        store.close();
    }
    let store = SqliteStore::open(&path).expect("reopen");
    round(&store, &mut keys, 2).await;
    round(&store, &mut keys, 3).await;
    let now = store.current_revision().await.expect("revision");
    store.compact(now).await.expect("compact");
    // One row per key still there: 1,000 of the 1,500 (every third was deleted).
    wait_for_log_rows(&path, 1000).await;
    store.check_integrity().await.expect("integrity");
    let listed = store
        .list("/re/", ListOptions::default())
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 1000);
    assert!(listed.items.iter().all(|kv| kv.value == b("3")));
}
