//! etcd-specific behaviour beyond the conformance suite: key prefixes, a compaction point
//! learned from etcd rather than remembered, a watch cancelled by compaction, etcd going
//! away, and the test harness itself.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use slipway_store::{EventKind, ListOptions, Revision, Store, StoreError, WatchStream};
use slipway_store_etcd::{EtcdProcess, EtcdStore};

/// Bounds every wait so that a hang fails the test instead of stalling the run.
const WAIT: Duration = Duration::from_secs(30);

async fn start_etcd() -> EtcdProcess {
    tokio::task::spawn_blocking(EtcdProcess::start)
        .await
        .expect("start etcd")
}

async fn connect(etcd: &EtcdProcess, prefix: &str) -> EtcdStore {
    EtcdStore::connect(&etcd.endpoints(), prefix)
        .await
        .unwrap_or_else(|e| panic!("connect with prefix {prefix:?}: {e}"))
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn keys_and_values(store: &EtcdStore, prefix: &str) -> Vec<(String, String)> {
    store
        .list(prefix, ListOptions::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|kv| (kv.key, String::from_utf8(kv.value.to_vec()).expect("utf-8")))
        .collect()
}

async fn next(stream: &mut WatchStream) -> Option<Result<slipway_store::WatchEvent, StoreError>> {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("no watch item in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_with_different_prefixes_do_not_see_each_other() {
    let etcd = start_etcd().await;
    // "/tenants/a" and "/tenants/ab" would overlap as raw prefixes; the store makes them
    // "/tenants/a/" and "/tenants/ab/".
    let a = connect(&etcd, "/tenants/a").await;
    let ab = connect(&etcd, "/tenants/ab/").await;
    let root = connect(&etcd, "").await;
    assert_eq!(a.key_prefix(), "/tenants/a/");
    assert_eq!(ab.key_prefix(), "/tenants/ab/");

    let start = root.current_revision().await.expect("current revision");
    let mut watch_a = a.watch("", start).await.expect("watch a");

    for (store, name) in [(&a, "a"), (&ab, "ab")] {
        store.create("k", b(name)).await.expect("create k");
        store
            .create("sub/x", b(&format!("{name}-x")))
            .await
            .expect("create sub/x");
    }

    // Each store sees its own keys, without its prefix.
    assert_eq!(
        keys_and_values(&a, "").await,
        [("k".into(), "a".into()), ("sub/x".into(), "a-x".into())]
    );
    assert_eq!(
        keys_and_values(&ab, "").await,
        [("k".into(), "ab".into()), ("sub/x".into(), "ab-x".into())]
    );
    assert_eq!(
        a.get("k").await.expect("get").map(|kv| kv.value),
        Some(b("a"))
    );
    assert_eq!(a.count("").await.expect("count a"), 2);
    assert_eq!(ab.count("").await.expect("count ab"), 2);
    assert_eq!(a.count("sub/").await.expect("count a sub/"), 1);

    // In etcd, the keys sit under the prefixes.
    assert_eq!(
        keys_and_values(&root, "").await,
        [
            ("/tenants/a/k".into(), "a".into()),
            ("/tenants/a/sub/x".into(), "a-x".into()),
            ("/tenants/ab/k".into(), "ab".into()),
            ("/tenants/ab/sub/x".into(), "ab-x".into()),
        ]
    );

    // Writes in one store leave the other alone, and are not seen by its watchers.
    let kv = ab.get("k").await.expect("get").expect("ab has k");
    ab.update("k", b("ab2"), kv.mod_revision)
        .await
        .expect("update ab");
    ab.delete("sub/x", None).await.expect("delete ab sub/x");
    assert_eq!(
        ab.create("only-ab", b("x")).await.map(|_| ()),
        Ok(()),
        "create only-ab"
    );
    assert_eq!(a.get("only-ab").await.expect("get"), None);
    assert_eq!(
        a.get("sub/x").await.expect("get").map(|kv| kv.value),
        Some(b("a-x"))
    );
    assert_eq!(
        a.delete("only-ab", None).await,
        Err(StoreError::NotFound {
            key: "only-ab".into()
        })
    );
    let marker = a.create("marker", b("m")).await.expect("create marker");

    let mut seen = Vec::new();
    loop {
        let event = next(&mut watch_a)
            .await
            .expect("watch a ended")
            .expect("watch a failed");
        let done = event.revision() == marker;
        seen.push((event.kind, event.kv.key, event.kv.value));
        if done {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            (EventKind::Created, "k".into(), b("a")),
            (EventKind::Created, "sub/x".into(), b("a-x")),
            (EventKind::Created, "marker".into(), b("m")),
        ],
        "store a's watcher saw exactly store a's writes"
    );
}

/// A missing key has mod_revision 0 in etcd, so "expect revision 0" must not match it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expecting_revision_zero_does_not_touch_missing_keys() {
    let etcd = start_etcd().await;
    let store = connect(&etcd, "/zero").await;
    assert_eq!(
        store.update("missing", b("v"), 0).await,
        Err(StoreError::NotFound {
            key: "missing".into()
        })
    );
    assert_eq!(
        store.delete("missing", Some(0)).await.map(|_| ()),
        Err(StoreError::NotFound {
            key: "missing".into()
        })
    );
    assert_eq!(store.get("missing").await.expect("get"), None);
    assert_eq!(
        store.get("").await,
        Err(StoreError::Invalid("key must not be empty".into()))
    );
}

/// Lists and watch replays bigger than gRPC's usual 4 MiB message limit work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_over_four_mebibytes() {
    let etcd = start_etcd().await;
    let store = connect(&etcd, "/big").await;
    let start = store.current_revision().await.expect("current revision");
    let value = Bytes::from(vec![b'v'; 512 * 1024]);
    for i in 0..12 {
        store
            .create(&format!("k{i:02}"), value.clone())
            .await
            .expect("create");
    }
    let all = store
        .list("", ListOptions::default())
        .await
        .expect("list 6 MiB");
    assert_eq!(all.items.len(), 12);
    assert!(all.items.iter().all(|kv| kv.value == value));

    // The replay comes as one batch of revisions, which etcd fragments.
    let mut stream = store.watch("", start).await.expect("watch");
    for i in 0..12 {
        let event = next(&mut stream)
            .await
            .expect("watch ended")
            .expect("watch failed");
        assert_eq!(event.kv.key, format!("k{i:02}"));
        assert_eq!(event.kv.value, value);
    }
}

/// Values over etcd's request limit (1.5 MiB by default) are refused as invalid, and nothing
/// is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_over_the_etcd_limit_are_invalid() {
    let etcd = start_etcd().await;
    let store = connect(&etcd, "/limit").await;
    for size in [1800 * 1024, 3 << 20] {
        let value = Bytes::from(vec![b'v'; size]);
        match store.create("k", value).await {
            Err(StoreError::Invalid(_)) => {}
            other => panic!("create with a {size}-byte value: expected Invalid, got {other:?}"),
        }
    }
    assert_eq!(store.get("k").await.expect("get"), None);
    store.create("k", b("small")).await.expect("create");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_by_someone_else_is_discovered() {
    let etcd = start_etcd().await;
    let mine = connect(&etcd, "/mine").await;
    let other = connect(&etcd, "/other").await;
    assert_eq!(mine.compacted_revision().await.expect("compacted"), 0);

    let mut revs = Vec::new();
    for i in 0..20 {
        revs.push(
            mine.create(&format!("k{i:02}"), b("v"))
                .await
                .expect("create"),
        );
    }
    // Compaction is global: another store (or etcdctl, or etcd's auto-compaction) does it.
    other.compact(revs[7]).await.expect("compact");
    assert_eq!(
        mine.compacted_revision().await.expect("compacted"),
        revs[7],
        "compaction point found by probing"
    );
    match mine
        .list(
            "",
            ListOptions {
                revision: Some(revs[3]),
                ..Default::default()
            },
        )
        .await
    {
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => assert_eq!((requested, compacted), (revs[3], revs[7])),
        other => panic!("list at a compacted revision: {other:?}"),
    }
    assert!(matches!(
        mine.watch("", revs[6]).await.map(|_| ()),
        Err(StoreError::Compacted { compacted, .. }) if compacted == revs[7]
    ));
    let mut from_compacted = mine
        .watch("", revs[7])
        .await
        .expect("watch at the compaction point");
    let first = next(&mut from_compacted)
        .await
        .expect("watch ended")
        .expect("watch failed");
    assert_eq!((first.revision(), first.kv.key.as_str()), (revs[8], "k08"));

    // It moves on again; the store's remembered value is only a lower bound.
    other.compact(revs[16]).await.expect("compact further");
    assert_eq!(
        mine.compacted_revision().await.expect("compacted"),
        revs[16]
    );
    let page = mine
        .list(
            "",
            ListOptions {
                revision: Some(revs[16]),
                ..Default::default()
            },
        )
        .await
        .expect("list at the compaction point");
    assert_eq!(page.items.len(), 17);
}

/// A watch that falls behind while the history it still has to deliver is compacted away is
/// cancelled by etcd; the stream hands out what it got, then ends with `Compacted`.
///
/// To fall behind deterministically the test stops reading the stream: once the HTTP/2 window
/// and etcd's per-stream buffer are full, etcd parks the watcher and later has to replay it
/// from its history, which the compaction has removed by then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_that_falls_behind_a_compaction_ends_with_compacted() {
    let etcd = start_etcd().await;
    let watcher = connect(&etcd, "/w").await;
    // Writes go through another connection so that the watcher's stays otherwise idle.
    let writer = connect(&etcd, "/w").await;

    let start = writer.current_revision().await.expect("current revision");
    let mut stream = watcher.watch("", start).await.expect("watch");
    let big = Bytes::from(vec![b'x'; 64 * 1024]);
    // 6 MiB: more than the watch stream's HTTP/2 window, so etcd's sends block...
    for i in 0..96 {
        writer
            .create(&format!("big/{i:03}"), big.clone())
            .await
            .expect("create big");
    }
    // ...then its buffer of pending responses fills and the watcher falls behind...
    for i in 0..400 {
        writer
            .create(&format!("small/{i:03}"), b("s"))
            .await
            .expect("create small");
    }
    // ...while the history it needs is compacted away.
    let compacted = writer.current_revision().await.expect("current revision");
    writer.compact(compacted).await.expect("compact");

    let mut last: Revision = start;
    let error = loop {
        match next(&mut stream).await {
            Some(Ok(event)) => {
                assert!(
                    event.revision() > last,
                    "events out of order: {} after {last}",
                    event.revision()
                );
                last = event.revision();
                assert!(
                    last < compacted,
                    "the watcher was expected to fall behind, but it saw revision {last}"
                );
            }
            Some(Err(e)) => break e,
            None => panic!("the watch ended without an error after revision {last}"),
        }
    };
    assert_eq!(
        error,
        StoreError::Compacted {
            requested: last,
            compacted
        }
    );
    assert!(
        next(&mut stream).await.is_none(),
        "the stream ends after the error"
    );
    assert_eq!(
        watcher.compacted_revision().await.expect("compacted"),
        compacted
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_etcd_is_unavailable() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let endpoints = vec![format!("http://127.0.0.1:{port}")];
    match tokio::time::timeout(WAIT, EtcdStore::connect(&endpoints, "/x")).await {
        Ok(Err(StoreError::Unavailable(msg))) => {
            assert!(
                msg.contains(&port.to_string()),
                "message names the endpoint: {msg}"
            )
        }
        Ok(other) => panic!("connect to nothing: expected Unavailable, got {other:?}"),
        Err(_) => panic!("connect to nothing hung"),
    }
    assert!(matches!(
        EtcdStore::connect(&[], "/x").await,
        Err(StoreError::Invalid(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_going_away_makes_calls_unavailable_and_ends_watches() {
    let mut etcd = start_etcd().await;
    let store = connect(&etcd, "/gone").await;
    let r = store.create("k", b("v")).await.expect("create");
    let mut stream = store.watch("", r).await.expect("watch");

    etcd.kill();

    match tokio::time::timeout(WAIT, store.get("k")).await {
        Ok(Err(StoreError::Unavailable(_))) => {}
        Ok(other) => panic!("get with etcd gone: expected Unavailable, got {other:?}"),
        Err(_) => panic!("get with etcd gone hung"),
    }
    match tokio::time::timeout(WAIT, store.create("k2", b("v"))).await {
        Ok(Err(StoreError::Unavailable(_))) => {}
        Ok(other) => panic!("create with etcd gone: expected Unavailable, got {other:?}"),
        Err(_) => panic!("create with etcd gone hung"),
    }
    match next(&mut stream).await {
        Some(Err(StoreError::Unavailable(_))) => {}
        other => panic!("watch with etcd gone: expected Unavailable, got {other:?}"),
    }
    assert!(
        next(&mut stream).await.is_none(),
        "the stream ends after the error"
    );
}

#[tokio::test]
async fn etcd_process_answers_and_cleans_up_on_drop() {
    let etcd = start_etcd().await;
    let endpoints = etcd.endpoints();
    let dir = etcd.dir().to_path_buf();
    assert!(dir.join("data").is_dir(), "data dir {}", dir.display());
    let store = EtcdStore::connect(&endpoints, "").await.expect("connect");
    store.create("/k", b("v")).await.expect("create");
    drop(store);

    drop(etcd);
    assert!(!dir.exists(), "{} still exists after drop", dir.display());
    match tokio::time::timeout(WAIT, EtcdStore::connect(&endpoints, "")).await {
        Ok(Err(StoreError::Unavailable(_))) => {}
        Ok(other) => panic!("etcd still answers after drop: {other:?}"),
        Err(_) => panic!("connect after drop hung"),
    }
}

#[tokio::test]
async fn etcd_process_can_keep_its_data_on_disk() {
    let parent = std::env::temp_dir();
    let etcd = tokio::task::spawn_blocking({
        let parent = parent.clone();
        move || EtcdProcess::start_in(&parent)
    })
    .await
    .expect("start etcd");
    assert!(etcd.dir().starts_with(&parent), "{}", etcd.dir().display());
    let store = connect(&etcd, "").await;
    store.create("/k", b("v")).await.expect("create");
}

/// Directories left by a test run that died without dropping its etcd are removed by the
/// next start; those of live runs are not.
#[tokio::test]
async fn starting_etcd_removes_directories_of_dead_runs() {
    let parent = std::env::temp_dir();
    let dead_pid = {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("run true");
        let pid = child.id();
        child.wait().expect("wait");
        pid
    };
    let stale = tempfile::Builder::new()
        .prefix("slipway-etcd-")
        .tempdir_in(&parent)
        .expect("stale dir")
        .keep();
    std::fs::write(stale.join("owner"), format!("{dead_pid} {dead_pid}")).expect("owner");
    let live = tempfile::Builder::new()
        .prefix("slipway-etcd-")
        .tempdir_in(&parent)
        .expect("live dir");
    let me = std::process::id();
    std::fs::write(live.path().join("owner"), format!("{me} {dead_pid}")).expect("owner");

    let etcd = tokio::task::spawn_blocking({
        let parent = parent.clone();
        move || EtcdProcess::start_in(&parent)
    })
    .await
    .expect("start etcd");
    assert!(!stale.exists(), "{} was not removed", stale.display());
    assert!(live.path().exists(), "a live run's directory was removed");
    assert!(etcd.dir().exists());
}

#[test]
#[should_panic(expected = "Install Debian's `etcd-server` package")]
fn missing_etcd_fails_loudly_with_install_hint() {
    EtcdProcess::start_binary("/nonexistent/slipway-test-etcd");
}
