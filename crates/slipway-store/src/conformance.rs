//! The conformance suite every [`Store`] backend must pass (feature `conformance`).
//!
//! Each case is a `pub async fn(store: Arc<dyn Store>)` that panics on failure. A backend runs
//! all of them with [`store_conformance_tests!`](crate::store_conformance_tests), which expands
//! into one `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` per case.
//!
//! What the cases assume about the store they get:
//! - it is fresh and empty, and nothing else writes to it while the case runs;
//! - revisions are global and strictly increasing, but **not** that they start at any given
//!   number or are contiguous (an etcd backend shares its counter with everything in the
//!   cluster), so cases only compare revisions with each other;
//! - a watch from a compacted revision may fail either when `watch` is called or as the first
//!   item of the stream; both are accepted.
//!
//! Semantics the cases pin down beyond the trait's docs:
//! - `delete` returns the key/value as it was just before the deletion (its `mod_revision` is
//!   that of the last write, not of the deletion);
//! - a `Deleted` watch event carries the last value with `create_revision` unchanged and
//!   `mod_revision` set to the deletion's revision, and `prev` holds the key/value as it was;
//! - `Created` events have no `prev`; `Updated` events have `prev` set to the previous value;
//! - `compact(r)` makes `r` the oldest readable revision: listing at `r` works, at `r - 1`
//!   fails; watching after `r` works, after anything older than `r` fails;
//! - compacting to a revision at or below the compacted one is a no-op.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use crate::{
    EventKind, Guard, KeyValue, ListOptions, Revision, Store, StoreError, WatchEvent, WatchStream,
};

/// How long a case waits for one watch event before declaring it lost.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// What a conformance factory may yield: a bare store, or a store plus a guard (a temporary
/// directory, a child process...) that must stay alive while the test runs.
pub trait StoreFixture {
    fn into_parts(self) -> (Arc<dyn Store>, Box<dyn std::any::Any + Send>);
}

impl StoreFixture for Arc<dyn Store> {
    fn into_parts(self) -> (Arc<dyn Store>, Box<dyn std::any::Any + Send>) {
        (self, Box::new(()))
    }
}

impl<G: std::any::Any + Send> StoreFixture for (Arc<dyn Store>, G) {
    fn into_parts(self) -> (Arc<dyn Store>, Box<dyn std::any::Any + Send>) {
        (self.0, Box::new(self.1))
    }
}

/// Expands into one `#[tokio::test]` per conformance case, each getting a fresh store from
/// the factory.
///
/// The argument is an async expression (evaluated once per test) yielding either an
/// `Arc<dyn Store>` or a tuple `(Arc<dyn Store>, guard)`, where the guard (any `Send +
/// 'static` value: a temporary directory, a child process handle) is dropped only after the
/// case finished. The calling crate needs `tokio` (with `macros` and `rt-multi-thread`) as a
/// dev-dependency. Call it inside a module to keep the generated test names together:
///
/// ```no_run
/// use std::sync::Arc;
/// use slipway_store::{Store, sqlite::SqliteStore};
///
/// async fn sqlite_store() -> (Arc<dyn Store>, tempfile::TempDir) {
///     let dir = tempfile::tempdir().expect("temp dir");
///     let store = SqliteStore::open(&dir.path().join("store.db")).expect("open");
///     (Arc::new(store) as Arc<dyn Store>, dir)
/// }
///
/// mod conformance {
///     slipway_store::store_conformance_tests!(super::sqlite_store());
/// }
/// ```
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:expr) => {
        $crate::store_conformance_tests!(@cases ($factory);
            create_get_update_delete,
            revisions_strictly_increase,
            create_and_mod_revisions,
            delete_returns_last_value,
            large_values_round_trip,
            list_prefix_order_and_isolation,
            count_by_prefix,
            list_paging,
            paging_is_a_consistent_snapshot_under_concurrent_writes,
            list_at_old_revision,
            list_at_future_revision_fails,
            watch_from_zero_replays_then_streams_live,
            watch_from_mid_revision,
            watch_prefix_filtering,
            watch_event_kinds_and_prev,
            compacted_revision_fails_watch_and_list,
            compaction_keeps_latest_values,
            concurrent_cas_increments_lose_nothing,
            many_watchers_see_every_event_once_in_order,
            guarded_writes_succeed_while_guard_holds,
            guarded_writes_fail_once_guard_moves,
            guard_is_checked_before_own_precondition,
            concurrent_guard_move_and_guarded_writes_are_serialised,
        );
    };
    (@cases ($factory:expr); $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, guard) =
                    $crate::conformance::StoreFixture::into_parts($factory.await);
                $crate::conformance::$case(store).await;
                drop(guard);
            }
        )*
    };
}

// ---------------------------------------------------------------------------------------------
// helpers

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn must_get(store: &dyn Store, key: &str) -> KeyValue {
    match store.get(key).await {
        Ok(Some(kv)) => kv,
        other => panic!("get({key:?}): expected a value, got {other:?}"),
    }
}

async fn list_all(store: &dyn Store, prefix: &str, revision: Option<Revision>) -> Vec<KeyValue> {
    let res = store
        .list(
            prefix,
            ListOptions {
                revision,
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("list({prefix:?}, at {revision:?}): {e}"));
    assert!(!res.more, "an unlimited list must not report more");
    res.items
}

fn keys(items: &[KeyValue]) -> Vec<&str> {
    items.iter().map(|kv| kv.key.as_str()).collect()
}

async fn open_watch(store: &dyn Store, prefix: &str, after: Revision) -> WatchStream {
    store
        .watch(prefix, after)
        .await
        .unwrap_or_else(|e| panic!("watch({prefix:?}, after {after}): {e}"))
}

async fn next_event(stream: &mut WatchStream, what: &str) -> WatchEvent {
    match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(ev))) => ev,
        Ok(Some(Err(e))) => panic!("{what}: watch failed: {e}"),
        Ok(None) => panic!("{what}: watch ended"),
        Err(_) => panic!("{what}: no event within {EVENT_TIMEOUT:?}"),
    }
}

async fn next_events(stream: &mut WatchStream, n: usize, what: &str) -> Vec<WatchEvent> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(next_event(stream, &format!("{what} (event {i} of {n})")).await);
    }
    out
}

/// Asserts that nothing arrives on `stream` for a short while.
async fn assert_quiet(stream: &mut WatchStream, what: &str) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(300), stream.next()).await {
        panic!("{what}: expected no more events, got {item:?}");
    }
}

/// Watching after `after` must fail with `Compacted`, at the call or as the first item.
async fn assert_watch_compacted(store: &dyn Store, prefix: &str, after: Revision) {
    match store.watch(prefix, after).await {
        Err(StoreError::Compacted { .. }) => {}
        Err(e) => panic!("watch after compacted revision {after}: expected Compacted, got {e}"),
        Ok(mut stream) => match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
            Ok(Some(Err(StoreError::Compacted { .. }))) => {}
            other => panic!(
                "watch after compacted revision {after}: expected a Compacted error, got {other:?}"
            ),
        },
    }
}

/// What a watcher of `prefix` must see for the writes recorded in `model_log`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    kind: EventKind,
    key: String,
    value: Bytes,
    revision: Revision,
}

fn summarize(events: &[WatchEvent]) -> Vec<Expected> {
    events
        .iter()
        .map(|e| Expected {
            kind: e.kind,
            key: e.kv.key.clone(),
            value: e.kv.value.clone(),
            revision: e.revision(),
        })
        .collect()
}

fn expected(kind: EventKind, key: &str, value: &str, revision: Revision) -> Expected {
    Expected {
        kind,
        key: key.to_string(),
        value: b(value),
        revision,
    }
}

// ---------------------------------------------------------------------------------------------
// cases

/// Create, get, update and delete, with every error they can return.
pub async fn create_get_update_delete(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let key = "/crud/a";
    assert_eq!(s.get(key).await.expect("get missing"), None);

    let r1 = s.create(key, b("one")).await.expect("create");
    let kv = must_get(s, key).await;
    assert_eq!(kv.key, key);
    assert_eq!(kv.value, b("one"));
    assert_eq!((kv.create_revision, kv.mod_revision), (r1, r1));

    assert_eq!(
        s.create(key, b("again")).await,
        Err(StoreError::AlreadyExists {
            key: key.to_string()
        })
    );
    assert_eq!(
        must_get(s, key).await.value,
        b("one"),
        "failed create changed the value"
    );

    let r2 = s.update(key, b("two"), r1).await.expect("update");
    assert!(
        r2 > r1,
        "update revision {r2} not after create revision {r1}"
    );
    let kv = must_get(s, key).await;
    assert_eq!(kv.value, b("two"));
    assert_eq!((kv.create_revision, kv.mod_revision), (r1, r2));

    assert_eq!(
        s.update(key, b("stale"), r1).await,
        Err(StoreError::Conflict {
            key: key.to_string(),
            expected: r1,
            current: Some(r2)
        })
    );
    assert_eq!(
        must_get(s, key).await.value,
        b("two"),
        "failed update changed the value"
    );

    assert_eq!(
        s.update("/crud/missing", b("x"), r1).await,
        Err(StoreError::NotFound {
            key: "/crud/missing".to_string()
        })
    );
    assert_eq!(
        s.get("/crud/missing").await.expect("get"),
        None,
        "update created a key"
    );

    assert_eq!(
        s.delete(key, Some(r1)).await,
        Err(StoreError::Conflict {
            key: key.to_string(),
            expected: r1,
            current: Some(r2)
        })
    );
    assert!(
        s.get(key).await.expect("get").is_some(),
        "failed delete removed the key"
    );

    let (r3, last) = s.delete(key, Some(r2)).await.expect("delete");
    assert!(r3 > r2);
    assert_eq!(last.value, b("two"));
    assert_eq!(s.get(key).await.expect("get deleted"), None);

    assert_eq!(
        s.delete(key, None).await,
        Err(StoreError::NotFound {
            key: key.to_string()
        })
    );
    assert_eq!(
        s.delete(key, Some(r2)).await,
        Err(StoreError::NotFound {
            key: key.to_string()
        })
    );

    // Unconditional delete.
    let r4 = s.create("/crud/b", b("b")).await.expect("create b");
    let (r5, last) = s
        .delete("/crud/b", None)
        .await
        .expect("unconditional delete");
    assert!(r5 > r4);
    assert_eq!(last.value, b("b"));

    // Re-creating a deleted key starts a new life: a new create revision.
    let r6 = s.create(key, b("three")).await.expect("re-create");
    assert!(r6 > r5);
    let kv = must_get(s, key).await;
    assert_eq!((kv.create_revision, kv.mod_revision), (r6, r6));
    assert_eq!(kv.value, b("three"));
}

/// Every write returns a revision greater than every earlier one, across keys and kinds, and
/// the current revision is never behind an acknowledged write.
pub async fn revisions_strictly_increase(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let start = s.current_revision().await.expect("current revision");
    let mut last = start;
    let mut revs = Vec::new();
    for i in 0..10 {
        let key = format!("/revs/{i}");
        let r = s.create(&key, b("v")).await.expect("create");
        assert!(r > last, "create revision {r} not after {last}");
        last = r;
        revs.push(r);
        let r = s.update(&key, b("w"), r).await.expect("update");
        assert!(r > last, "update revision {r} not after {last}");
        last = r;
        revs.push(r);
        if i % 2 == 0 {
            let (r, _) = s.delete(&key, None).await.expect("delete");
            assert!(r > last, "delete revision {r} not after {last}");
            last = r;
            revs.push(r);
        }
        let current = s.current_revision().await.expect("current revision");
        assert!(
            current >= last,
            "current revision {current} behind acknowledged {last}"
        );
    }
    // Failed writes do not go back in time either.
    let _ = s
        .create("/revs/1", b("dup"))
        .await
        .expect_err("duplicate create");
    let r = s.create("/revs/new", b("v")).await.expect("create");
    assert!(r > last);
    let mut sorted = revs.clone();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        revs.len(),
        "two writes shared a revision: {revs:?}"
    );
}

/// `create_revision` and `mod_revision` as seen by get, list and the returned revisions.
pub async fn create_and_mod_revisions(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let ra = s.create("/cm/a", b("a1")).await.expect("create a");
    let rb = s.create("/cm/b", b("b1")).await.expect("create b");
    let ra2 = s.update("/cm/a", b("a2"), ra).await.expect("update a");
    let ra3 = s
        .update("/cm/a", b("a3"), ra2)
        .await
        .expect("update a again");

    let items = list_all(s, "/cm/", None).await;
    assert_eq!(keys(&items), ["/cm/a", "/cm/b"]);
    assert_eq!((items[0].create_revision, items[0].mod_revision), (ra, ra3));
    assert_eq!((items[1].create_revision, items[1].mod_revision), (rb, rb));
    assert_eq!(items[0].value, b("a3"));
    assert_eq!(must_get(s, "/cm/a").await, items[0]);
    assert_eq!(must_get(s, "/cm/b").await, items[1]);
}

/// `delete` returns the value the key had, with its revisions as they were.
pub async fn delete_returns_last_value(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let r1 = s.create("/del/k", b("first")).await.expect("create");
    let r2 = s.update("/del/k", b("last"), r1).await.expect("update");
    let (r3, kv) = s.delete("/del/k", None).await.expect("delete");
    assert!(r3 > r2);
    assert_eq!(
        kv,
        KeyValue {
            key: "/del/k".to_string(),
            value: b("last"),
            create_revision: r1,
            mod_revision: r2,
        }
    );
    assert!(list_all(s, "/del/", None).await.is_empty());
    assert_eq!(s.count("/del/").await.expect("count"), 0);
}

/// Values are opaque bytes: empty, binary, and half a megabyte come back unchanged.
pub async fn large_values_round_trip(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let big: Vec<u8> = (0..512 * 1024u32)
        .map(|i| (i.wrapping_mul(31) % 251) as u8)
        .collect();
    let binary = Bytes::from_static(&[0, 159, 146, 150, 255, 0, 1]);
    s.create("/val/big", Bytes::from(big.clone()))
        .await
        .expect("create big");
    s.create("/val/empty", Bytes::new())
        .await
        .expect("create empty");
    s.create("/val/binary", binary.clone())
        .await
        .expect("create binary");
    assert_eq!(must_get(s, "/val/big").await.value, Bytes::from(big));
    assert_eq!(must_get(s, "/val/empty").await.value, Bytes::new());
    assert_eq!(must_get(s, "/val/binary").await.value, binary);
}

/// A list returns exactly the keys starting with the prefix, in bytewise key order.
pub async fn list_prefix_order_and_isolation(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let all = [
        "/a/z",
        "/ab/x",
        "/a/",
        "/a/m/n",
        "/a",
        "/a/\u{e9}",
        "/a/B",
        "/a/b",
        "/b/a",
        "/a/b0",
        "/a/a",
        "/a0",
        "/a/\u{1F600}",
        "/a/~",
    ];
    for k in all {
        s.create(k, b(k)).await.expect("create");
    }
    let mut want: Vec<&str> = all
        .iter()
        .copied()
        .filter(|k| k.starts_with("/a/"))
        .collect();
    want.sort_unstable_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
    let items = list_all(s, "/a/", None).await;
    assert_eq!(keys(&items), want, "list(\"/a/\") wrong keys or order");
    for kv in &items {
        assert_eq!(kv.value, b(&kv.key), "value of {}", kv.key);
    }

    assert_eq!(keys(&list_all(s, "/ab/", None).await), ["/ab/x"]);
    assert_eq!(keys(&list_all(s, "/a/b", None).await), ["/a/b", "/a/b0"]);
    assert_eq!(keys(&list_all(s, "/a/m/n", None).await), ["/a/m/n"]);
    assert!(list_all(s, "/c/", None).await.is_empty());
    assert!(list_all(s, "/a/b1", None).await.is_empty());

    let mut everything: Vec<&str> = all.to_vec();
    everything.sort_unstable_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
    assert_eq!(keys(&list_all(s, "", None).await), everything, "list(\"\")");
    assert_eq!(
        keys(&list_all(s, "/", None).await),
        everything,
        "list(\"/\")"
    );

    // A list reports the revision it read at, which is at least the last write's.
    let r = s.create("/a/zz", b("zz")).await.expect("create");
    let res = s.list("/a/", ListOptions::default()).await.expect("list");
    assert!(
        res.revision >= r,
        "list revision {} behind write {r}",
        res.revision
    );
}

/// `count` counts the live keys under a prefix.
pub async fn count_by_prefix(store: Arc<dyn Store>) {
    let s = store.as_ref();
    assert_eq!(s.count("/cnt/").await.expect("count empty"), 0);
    for i in 0..30 {
        s.create(&format!("/cnt/x/{i:02}"), b("v"))
            .await
            .expect("create");
    }
    for i in 0..5 {
        s.create(&format!("/cnt/xy/{i}"), b("v"))
            .await
            .expect("create");
    }
    assert_eq!(s.count("/cnt/x/").await.expect("count"), 30);
    assert_eq!(s.count("/cnt/xy/").await.expect("count"), 5);
    assert_eq!(s.count("/cnt/").await.expect("count"), 35);
    assert_eq!(s.count("/cnt/x/0").await.expect("count"), 10);
    for i in 0..10 {
        s.delete(&format!("/cnt/x/{i:02}"), None)
            .await
            .expect("delete");
    }
    let kv = must_get(s, "/cnt/x/20").await;
    s.update("/cnt/x/20", b("w"), kv.mod_revision)
        .await
        .expect("update");
    assert_eq!(s.count("/cnt/x/").await.expect("count"), 20);
    assert_eq!(s.count("/cnt/").await.expect("count"), 25);
    assert_eq!(s.count("").await.expect("count all"), 25);
}

/// `limit` and `start_after` page through a prefix; `more` says whether another page exists.
pub async fn list_paging(store: Arc<dyn Store>) {
    let s = store.as_ref();
    for i in 0..25 {
        s.create(&format!("/page/{i:03}"), b(&i.to_string()))
            .await
            .expect("create");
    }
    s.create("/pagex", b("outside")).await.expect("create");
    let full = list_all(s, "/page/", None).await;
    assert_eq!(full.len(), 25);

    let first = s
        .list(
            "/page/",
            ListOptions {
                limit: Some(7),
                ..Default::default()
            },
        )
        .await
        .expect("first page");
    assert_eq!(first.items.len(), 7);
    assert!(first.more);
    let rev = first.revision;
    let mut got = first.items.clone();
    let mut pages = 1;
    loop {
        let last = got.last().map(|kv| kv.key.clone());
        let page = s
            .list(
                "/page/",
                ListOptions {
                    revision: Some(rev),
                    start_after: last,
                    limit: Some(7),
                },
            )
            .await
            .expect("next page");
        assert_eq!(
            page.revision, rev,
            "a page at a fixed revision reports another one"
        );
        assert!(page.items.len() <= 7);
        got.extend(page.items);
        pages += 1;
        if !page.more {
            break;
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 4);
    assert_eq!(got, full);

    // A limit equal to the number of remaining keys reports no more.
    let exact = s
        .list(
            "/page/",
            ListOptions {
                start_after: Some("/page/019".to_string()),
                limit: Some(5),
                ..Default::default()
            },
        )
        .await
        .expect("exact page");
    assert_eq!(
        keys(&exact.items),
        [
            "/page/020",
            "/page/021",
            "/page/022",
            "/page/023",
            "/page/024"
        ]
    );
    assert!(!exact.more, "no key is left after the last page");

    // start_after need not be an existing key, and may sort before the prefix.
    let res = s
        .list(
            "/page/",
            ListOptions {
                start_after: Some("/page/0105".to_string()),
                limit: Some(2),
                ..Default::default()
            },
        )
        .await
        .expect("page after a missing key");
    assert_eq!(keys(&res.items), ["/page/011", "/page/012"]);
    let res = s
        .list(
            "/page/",
            ListOptions {
                start_after: Some("/a".to_string()),
                limit: Some(1),
                ..Default::default()
            },
        )
        .await
        .expect("start_after before the prefix");
    assert_eq!(keys(&res.items), ["/page/000"]);
    let res = s
        .list(
            "/page/",
            ListOptions {
                start_after: Some("/page/024".to_string()),
                ..Default::default()
            },
        )
        .await
        .expect("start_after the last key");
    assert!(res.items.is_empty() && !res.more);
    // Limit 0 means no limit.
    let res = s
        .list(
            "/page/",
            ListOptions {
                limit: Some(0),
                ..Default::default()
            },
        )
        .await
        .expect("limit 0");
    assert_eq!(res.items.len(), 25);
    assert!(!res.more);
}

/// Paging at the revision of the first page returns that snapshot, however much is written
/// meanwhile.
pub async fn paging_is_a_consistent_snapshot_under_concurrent_writes(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let mut snapshot = BTreeMap::new();
    for i in 0..200 {
        let key = format!("/snap/{i:04}");
        let value = format!("orig-{i}");
        let r = s.create(&key, b(&value)).await.expect("create");
        snapshot.insert(key, (value, r));
    }
    let first = s
        .list(
            "/snap/",
            ListOptions {
                limit: Some(10),
                ..Default::default()
            },
        )
        .await
        .expect("first page");
    let rev = first.revision;

    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in (0..200).rev() {
                let key = format!("/snap/{i:04}");
                match i % 4 {
                    0 => {
                        store.delete(&key, None).await.expect("concurrent delete");
                    }
                    1 => {
                        let kv = store.get(&key).await.expect("get").expect("present");
                        store
                            .update(&key, b("changed"), kv.mod_revision)
                            .await
                            .expect("concurrent update");
                    }
                    2 => {
                        store
                            .create(&format!("{key}a"), b("new"))
                            .await
                            .expect("concurrent create");
                    }
                    _ => {
                        let kv = store.get(&key).await.expect("get").expect("present");
                        store
                            .delete(&key, Some(kv.mod_revision))
                            .await
                            .expect("concurrent delete");
                        store.create(&key, b("reborn")).await.expect("re-create");
                    }
                }
                tokio::task::yield_now().await;
            }
        })
    };

    let mut got = first.items;
    let mut more = first.more;
    while more {
        let page = s
            .list(
                "/snap/",
                ListOptions {
                    revision: Some(rev),
                    start_after: got.last().map(|kv| kv.key.clone()),
                    limit: Some(10),
                },
            )
            .await
            .expect("page at a fixed revision");
        assert_eq!(page.revision, rev);
        got.extend(page.items);
        more = page.more;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    writer.await.expect("writer task");

    let got: BTreeMap<String, (String, Revision)> = got
        .into_iter()
        .map(|kv| {
            assert_eq!(
                kv.create_revision, kv.mod_revision,
                "{} was never updated",
                kv.key
            );
            let value = String::from_utf8(kv.value.to_vec()).expect("utf-8 value");
            (kv.key, (value, kv.mod_revision))
        })
        .collect();
    assert_eq!(
        got, snapshot,
        "pages at revision {rev} do not form the snapshot"
    );

    // And after the writes, the current state is the new one.
    let now = list_all(s, "/snap/", None).await;
    assert_eq!(now.len(), 200 - 50 + 50);
    assert!(now.iter().any(|kv| kv.value == b("reborn")));
    assert!(now.iter().any(|kv| kv.value == b("changed")));
}

/// Listing at an older revision shows the state as it was, deleted keys included.
pub async fn list_at_old_revision(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let ra = s.create("/old/a", b("a1")).await.expect("create");
    let rb = s.create("/old/b", b("b1")).await.expect("create");
    let rc = s.create("/old/c", b("c1")).await.expect("create");
    let r1 = s.current_revision().await.expect("current");
    assert!(r1 >= rc);

    let ra2 = s.update("/old/a", b("a2"), ra).await.expect("update");
    s.delete("/old/b", None).await.expect("delete");
    let rd = s.create("/old/d", b("d1")).await.expect("create");
    s.delete("/old/c", None).await.expect("delete");
    let rc2 = s.create("/old/c", b("c2")).await.expect("re-create");

    let then = list_all(s, "/old/", Some(r1)).await;
    assert_eq!(
        then,
        vec![
            KeyValue {
                key: "/old/a".into(),
                value: b("a1"),
                create_revision: ra,
                mod_revision: ra
            },
            KeyValue {
                key: "/old/b".into(),
                value: b("b1"),
                create_revision: rb,
                mod_revision: rb
            },
            KeyValue {
                key: "/old/c".into(),
                value: b("c1"),
                create_revision: rc,
                mod_revision: rc
            },
        ]
    );
    let res = s
        .list(
            "/old/",
            ListOptions {
                revision: Some(r1),
                ..Default::default()
            },
        )
        .await
        .expect("list at r1");
    assert_eq!(res.revision, r1);

    // Between the writes.
    let mid = list_all(s, "/old/", Some(ra2)).await;
    assert_eq!(keys(&mid), ["/old/a", "/old/b", "/old/c"]);
    assert_eq!(mid[0].value, b("a2"));
    let at_d = list_all(s, "/old/", Some(rd)).await;
    assert_eq!(keys(&at_d), ["/old/a", "/old/c", "/old/d"]);
    assert_eq!(at_d[1].value, b("c1"));

    let now = list_all(s, "/old/", None).await;
    assert_eq!(keys(&now), ["/old/a", "/old/c", "/old/d"]);
    assert_eq!(now[1].value, b("c2"));
    assert_eq!(now[1].create_revision, rc2);

    // Paging through the old revision works too.
    let page = s
        .list(
            "/old/",
            ListOptions {
                revision: Some(r1),
                start_after: Some("/old/a".into()),
                limit: Some(1),
            },
        )
        .await
        .expect("page at r1");
    assert_eq!(keys(&page.items), ["/old/b"]);
    assert!(page.more);
}

/// Listing at a revision the store has not reached fails with `FutureRevision`.
pub async fn list_at_future_revision_fails(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let r = s.create("/future/a", b("a")).await.expect("create");
    let requested = r + 1_000_000;
    match s
        .list(
            "/future/",
            ListOptions {
                revision: Some(requested),
                ..Default::default()
            },
        )
        .await
    {
        Err(StoreError::FutureRevision {
            requested: got,
            current,
        }) => {
            assert_eq!(got, requested);
            assert!(current >= r && current < requested, "current {current}");
        }
        other => panic!("list at a future revision: expected FutureRevision, got {other:?}"),
    }
    // The current revision itself is fine.
    let current = s.current_revision().await.expect("current");
    let items = list_all(s, "/future/", Some(current)).await;
    assert_eq!(keys(&items), ["/future/a"]);
}

/// A watch from 0 replays every change, then streams live ones in order.
pub async fn watch_from_zero_replays_then_streams_live(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let r1 = s.create("/wz/a", b("a1")).await.expect("create");
    let r2 = s.create("/wz/b", b("b1")).await.expect("create");
    let r3 = s.update("/wz/a", b("a2"), r1).await.expect("update");
    let (r4, _) = s.delete("/wz/b", None).await.expect("delete");

    let mut w = open_watch(s, "/wz/", 0).await;
    let replay = next_events(&mut w, 4, "replay").await;
    assert_eq!(
        summarize(&replay),
        vec![
            expected(EventKind::Created, "/wz/a", "a1", r1),
            expected(EventKind::Created, "/wz/b", "b1", r2),
            expected(EventKind::Updated, "/wz/a", "a2", r3),
            expected(EventKind::Deleted, "/wz/b", "b1", r4),
        ]
    );

    let r5 = s.create("/wz/c", b("c1")).await.expect("create");
    let r6 = s.update("/wz/a", b("a3"), r3).await.expect("update");
    let r7 = s.create("/wz/b", b("b2")).await.expect("re-create");
    let live = next_events(&mut w, 3, "live").await;
    assert_eq!(
        summarize(&live),
        vec![
            expected(EventKind::Created, "/wz/c", "c1", r5),
            expected(EventKind::Updated, "/wz/a", "a3", r6),
            expected(EventKind::Created, "/wz/b", "b2", r7),
        ]
    );
    assert_quiet(&mut w, "after the live events").await;
}

/// A watch after a revision in the middle of the history replays only what came after it.
pub async fn watch_from_mid_revision(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let mut revs = Vec::new();
    for i in 0..6 {
        revs.push(
            s.create(&format!("/wm/{i}"), b(&i.to_string()))
                .await
                .expect("create"),
        );
    }
    let mut w = open_watch(s, "/wm/", revs[2]).await;
    let replay = next_events(&mut w, 3, "replay").await;
    assert_eq!(
        summarize(&replay),
        (3..6)
            .map(|i| expected(
                EventKind::Created,
                &format!("/wm/{i}"),
                &i.to_string(),
                revs[i]
            ))
            .collect::<Vec<_>>()
    );
    let r = s.update("/wm/0", b("x"), revs[0]).await.expect("update");
    let ev = next_event(&mut w, "live").await;
    assert_eq!(
        summarize(&[ev]),
        vec![expected(EventKind::Updated, "/wm/0", "x", r)]
    );

    // A watch after the current revision sees only what comes next.
    let now = s.current_revision().await.expect("current");
    let mut w2 = open_watch(s, "/wm/", now).await;
    assert_quiet(&mut w2, "watch from the current revision").await;
    let r = s.create("/wm/new", b("n")).await.expect("create");
    let ev = next_event(&mut w2, "live from current").await;
    assert_eq!(
        summarize(&[ev]),
        vec![expected(EventKind::Created, "/wm/new", "n", r)]
    );
}

/// A watch sees only keys under its prefix ("/w/a/" does not see "/w/ab/x").
pub async fn watch_prefix_filtering(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let start = s.current_revision().await.expect("current");
    let mut w = open_watch(s, "/wp/a/", start).await;
    let mut all = open_watch(s, "", start).await;
    let mut want = Vec::new();
    let mut everything = Vec::new();
    for k in [
        "/wp/ab/x", "/wp/a/1", "/wp/a", "/wp/b/1", "/wp/a/2", "/wp/a/", "/wpa/1",
    ] {
        let r = s.create(k, b("v")).await.expect("create");
        if k.starts_with("/wp/a/") {
            want.push(expected(EventKind::Created, k, "v", r));
        }
        everything.push(expected(EventKind::Created, k, "v", r));
    }
    let (r, _) = s.delete("/wp/ab/x", None).await.expect("delete");
    everything.push(expected(EventKind::Deleted, "/wp/ab/x", "v", r));
    let (r, _) = s.delete("/wp/a/1", None).await.expect("delete");
    want.push(expected(EventKind::Deleted, "/wp/a/1", "v", r));
    everything.push(expected(EventKind::Deleted, "/wp/a/1", "v", r));

    let got = next_events(&mut w, want.len(), "prefix watch").await;
    assert_eq!(summarize(&got), want);
    assert_quiet(&mut w, "prefix watch").await;
    let got = next_events(&mut all, everything.len(), "watch of everything").await;
    assert_eq!(summarize(&got), everything);

    // The same filtering applies to a replay.
    let mut replay = open_watch(s, "/wp/a/", start).await;
    let got = next_events(&mut replay, want.len(), "prefix replay").await;
    assert_eq!(summarize(&got), want);
    assert_quiet(&mut replay, "prefix replay").await;
}

/// Event kinds, the key/value each carries and `prev`, both live and replayed.
pub async fn watch_event_kinds_and_prev(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let start = s.current_revision().await.expect("current");
    let mut live = open_watch(s, "/wk/", start).await;

    let r1 = s.create("/wk/k", b("v1")).await.expect("create");
    let r2 = s.update("/wk/k", b("v2"), r1).await.expect("update");
    let (r3, _) = s.delete("/wk/k", Some(r2)).await.expect("delete");
    let r4 = s.create("/wk/k", b("v3")).await.expect("re-create");

    let kv1 = KeyValue {
        key: "/wk/k".into(),
        value: b("v1"),
        create_revision: r1,
        mod_revision: r1,
    };
    let kv2 = KeyValue {
        value: b("v2"),
        mod_revision: r2,
        ..kv1.clone()
    };
    let want = vec![
        WatchEvent {
            kind: EventKind::Created,
            kv: kv1.clone(),
            prev: None,
        },
        WatchEvent {
            kind: EventKind::Updated,
            kv: kv2.clone(),
            prev: Some(kv1.clone()),
        },
        WatchEvent {
            kind: EventKind::Deleted,
            kv: KeyValue {
                mod_revision: r3,
                ..kv2.clone()
            },
            prev: Some(kv2.clone()),
        },
        WatchEvent {
            kind: EventKind::Created,
            kv: KeyValue {
                key: "/wk/k".into(),
                value: b("v3"),
                create_revision: r4,
                mod_revision: r4,
            },
            prev: None,
        },
    ];
    let got = next_events(&mut live, 4, "live").await;
    assert_eq!(got, want, "live events");
    let mut replay = open_watch(s, "/wk/", start).await;
    let got = next_events(&mut replay, 4, "replay").await;
    assert_eq!(got, want, "replayed events");
    for (ev, r) in got.iter().zip([r1, r2, r3, r4]) {
        assert_eq!(ev.revision(), r);
    }
}

/// After `compact(r)`: watching or listing before `r` fails with `Compacted`; at `r` works.
pub async fn compacted_revision_fails_watch_and_list(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let r1 = s.create("/cp/a", b("a1")).await.expect("create");
    let r2 = s.update("/cp/a", b("a2"), r1).await.expect("update");
    let _r3 = s.create("/cp/b", b("b1")).await.expect("create");
    let (r4, _) = s.delete("/cp/b", None).await.expect("delete");
    let r5 = s.update("/cp/a", b("a3"), r2).await.expect("update");
    let _r6 = s.create("/cp/c", b("c1")).await.expect("create");

    s.compact(r4).await.expect("compact");
    let compacted = s.compacted_revision().await.expect("compacted revision");
    assert_eq!(compacted, r4);

    // Before the compacted revision: gone.
    for at in [r1, r2, r4 - 1] {
        match s
            .list(
                "/cp/",
                ListOptions {
                    revision: Some(at),
                    ..Default::default()
                },
            )
            .await
        {
            Err(StoreError::Compacted {
                requested,
                compacted,
            }) => {
                assert_eq!(requested, at);
                assert_eq!(compacted, r4);
            }
            other => panic!("list at compacted revision {at}: expected Compacted, got {other:?}"),
        }
    }
    assert_watch_compacted(s, "/cp/", r1 - 1).await;
    assert_watch_compacted(s, "/cp/", r2).await;
    assert_watch_compacted(s, "", r1).await;

    // At the compacted revision: the state as it was.
    let at = list_all(s, "/cp/", Some(r4)).await;
    assert_eq!(keys(&at), ["/cp/a"]);
    assert_eq!(at[0].value, b("a2"));
    let mut w = open_watch(s, "/cp/", r4).await;
    let got = next_events(&mut w, 2, "watch from the compacted revision").await;
    assert_eq!(got[0].revision(), r5);
    assert_eq!(got[0].kind, EventKind::Updated);
    assert_eq!(got[0].prev.as_ref().map(|p| p.value.clone()), Some(b("a2")));
    assert_eq!(got[1].kv.key, "/cp/c");

    // Compacting again, or to an older revision, changes nothing.
    s.compact(r4).await.expect("compact again");
    s.compact(r2).await.expect("compact to an older revision");
    assert_eq!(s.compacted_revision().await.expect("compacted"), r4);

    // Writes go on.
    let r7 = s
        .update("/cp/a", b("a4"), r5)
        .await
        .expect("update after compaction");
    let ev = next_event(&mut w, "live after compaction").await;
    assert_eq!(ev.revision(), r7);
}

/// Compacting at the current revision keeps the latest value of every key readable, and the
/// store keeps working.
pub async fn compaction_keeps_latest_values(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let mut model: BTreeMap<String, KeyValue> = BTreeMap::new();
    for i in 0..20 {
        let key = format!("/ck/{i:02}");
        let r = s.create(&key, b("0")).await.expect("create");
        model.insert(
            key.clone(),
            KeyValue {
                key,
                value: b("0"),
                create_revision: r,
                mod_revision: r,
            },
        );
    }
    for round in 1..4 {
        for i in (0..20).filter(|i| i % round == 0) {
            let key = format!("/ck/{i:02}");
            let kv = model.get_mut(&key).expect("in model");
            let v = b(&round.to_string());
            kv.mod_revision = s
                .update(&key, v.clone(), kv.mod_revision)
                .await
                .expect("update");
            kv.value = v;
        }
    }
    for i in [3, 7, 11] {
        let key = format!("/ck/{i:02}");
        s.delete(&key, None).await.expect("delete");
        model.remove(&key);
    }
    let current = s.current_revision().await.expect("current");
    s.compact(current).await.expect("compact");
    assert_eq!(s.compacted_revision().await.expect("compacted"), current);

    let want: Vec<KeyValue> = model.values().cloned().collect();
    assert_eq!(
        list_all(s, "/ck/", None).await,
        want,
        "list after compaction"
    );
    assert_eq!(
        list_all(s, "/ck/", Some(current)).await,
        want,
        "list at the compacted revision"
    );
    for kv in &want {
        assert_eq!(&must_get(s, &kv.key).await, kv);
    }
    assert_eq!(s.get("/ck/03").await.expect("get"), None);
    assert_eq!(s.count("/ck/").await.expect("count"), 17);

    // Paging at the compacted revision still works.
    let page = s
        .list(
            "/ck/",
            ListOptions {
                revision: Some(current),
                start_after: Some("/ck/05".into()),
                limit: Some(3),
            },
        )
        .await
        .expect("page");
    assert_eq!(keys(&page.items), ["/ck/06", "/ck/08", "/ck/09"]);

    // The store keeps working: updates with the old revisions, re-creates, watches.
    let mut w = open_watch(s, "/ck/", current).await;
    let kv = &model["/ck/00"];
    let r = s
        .update("/ck/00", b("after"), kv.mod_revision)
        .await
        .expect("update");
    let r2 = s.create("/ck/03", b("back")).await.expect("re-create");
    let got = next_events(&mut w, 2, "watch after compaction").await;
    assert_eq!(
        summarize(&got),
        vec![
            expected(EventKind::Updated, "/ck/00", "after", r),
            expected(EventKind::Created, "/ck/03", "back", r2),
        ]
    );
    assert_eq!(got[0].prev.as_ref(), Some(kv));
}

/// N tasks increment one counter with compare-and-swap; no increment is lost.
pub async fn concurrent_cas_increments_lose_nothing(store: Arc<dyn Store>) {
    const TASKS: usize = 8;
    const INCREMENTS: usize = 25;
    store.create("/cas/counter", b("0")).await.expect("create");
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            let mut conflicts = 0usize;
            for _ in 0..INCREMENTS {
                loop {
                    let kv = store
                        .get("/cas/counter")
                        .await
                        .expect("get")
                        .expect("present");
                    let n: usize = std::str::from_utf8(&kv.value)
                        .expect("utf-8")
                        .parse()
                        .expect("number");
                    match store
                        .update("/cas/counter", b(&(n + 1).to_string()), kv.mod_revision)
                        .await
                    {
                        Ok(r) => {
                            revs.push(r);
                            break;
                        }
                        Err(StoreError::Conflict {
                            expected, current, ..
                        }) => {
                            assert_eq!(expected, kv.mod_revision);
                            assert!(
                                current.is_some_and(|c| c > expected),
                                "conflict must report a newer current revision, got {current:?}"
                            );
                            conflicts += 1;
                        }
                        Err(e) => panic!("update: {e}"),
                    }
                }
            }
            (revs, conflicts)
        }));
    }
    let mut revs = Vec::new();
    for t in tasks {
        let (r, _conflicts) = t.await.expect("task");
        revs.extend(r);
    }
    let kv = must_get(store.as_ref(), "/cas/counter").await;
    assert_eq!(
        kv.value,
        b(&(TASKS * INCREMENTS).to_string()),
        "lost increments"
    );
    revs.sort_unstable();
    revs.dedup();
    assert_eq!(
        revs.len(),
        TASKS * INCREMENTS,
        "two successful updates shared a revision"
    );
    assert_eq!(revs.last().copied(), Some(kv.mod_revision));
}

/// 50 watchers of one prefix each see every event exactly once, in revision order, while
/// several tasks write concurrently.
pub async fn many_watchers_see_every_event_once_in_order(store: Arc<dyn Store>) {
    const WATCHERS: usize = 50;
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 50;
    const EVENTS: usize = WRITERS * PER_WRITER * 2;
    let start = store.current_revision().await.expect("current");
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let mut w = open_watch(store.as_ref(), "/mw/", start).await;
        watchers.push(tokio::spawn(async move {
            next_events(&mut w, EVENTS, "watcher").await
        }));
    }
    let mut writers = Vec::new();
    for t in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..PER_WRITER {
                let key = format!("/mw/{t}/{i:03}");
                let r = store.create(&key, b("v")).await.expect("create");
                revs.push(r);
                let r = store.update(&key, b("w"), r).await.expect("update");
                revs.push(r);
            }
            // Noise outside the prefix.
            store
                .create(&format!("/mwx/{t}"), b("x"))
                .await
                .expect("create");
            revs
        }));
    }
    let mut written = Vec::new();
    for w in writers {
        written.extend(w.await.expect("writer"));
    }
    written.sort_unstable();
    let mut first: Option<Vec<Expected>> = None;
    for (n, w) in watchers.into_iter().enumerate() {
        let events = w.await.expect("watcher task");
        let revs: Vec<Revision> = events.iter().map(WatchEvent::revision).collect();
        assert_eq!(
            revs, written,
            "watcher {n} did not see every write once, in order"
        );
        assert!(events.iter().all(|e| e.kv.key.starts_with("/mw/")));
        let summary = summarize(&events);
        match &first {
            None => first = Some(summary),
            Some(f) => assert_eq!(&summary, f, "watcher {n} saw different events"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// guarded writes (fencing)

fn guard_failed(e: &StoreError, key: &str, expected: Revision, current: Option<Revision>) -> bool {
    *e == StoreError::GuardFailed {
        key: key.to_string(),
        expected,
        current,
    }
}

/// While the guard key sits at the named revision, guarded create, update and delete behave
/// exactly like their unguarded forms, and the guard key itself is untouched.
pub async fn guarded_writes_succeed_while_guard_holds(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let lease = s
        .create("/g1/lease", b("holder-a"))
        .await
        .expect("create lease");
    let guard = Guard {
        key: "/g1/lease".to_string(),
        mod_revision: lease,
    };
    let r1 = s
        .create_guarded("/g1/obj", b("v1"), &guard)
        .await
        .expect("guarded create");
    assert!(r1 > lease);
    let r2 = s
        .update_guarded("/g1/obj", b("v2"), r1, &guard)
        .await
        .expect("guarded update");
    assert!(r2 > r1);
    assert_eq!(must_get(s, "/g1/obj").await.value, b("v2"));
    let (r3, last) = s
        .delete_guarded("/g1/obj", Some(r2), &guard)
        .await
        .expect("guarded delete");
    assert!(r3 > r2);
    assert_eq!(last.value, b("v2"));
    assert_eq!(last.mod_revision, r2);
    assert!(s.get("/g1/obj").await.expect("get").is_none());
    assert_eq!(must_get(s, "/g1/lease").await.mod_revision, lease);
}

/// Once the guard key changes (or disappears), every guarded write fails with `GuardFailed`
/// naming the current revision, and nothing is written: no new revision, no watch event.
pub async fn guarded_writes_fail_once_guard_moves(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let lease = s
        .create("/g2/lease", b("holder-a"))
        .await
        .expect("create lease");
    let obj = s.create("/g2/obj", b("v1")).await.expect("create obj");
    let stale = Guard {
        key: "/g2/lease".to_string(),
        mod_revision: lease,
    };
    let taken = s
        .update("/g2/lease", b("holder-b"), lease)
        .await
        .expect("take over lease");
    let before = s.current_revision().await.expect("revision");
    let mut watch = open_watch(s, "/g2/", before).await;

    let e = s
        .create_guarded("/g2/new", b("x"), &stale)
        .await
        .expect_err("create under a moved guard");
    assert!(guard_failed(&e, "/g2/lease", lease, Some(taken)), "{e:?}");
    let e = s
        .update_guarded("/g2/obj", b("v2"), obj, &stale)
        .await
        .expect_err("update under a moved guard");
    assert!(guard_failed(&e, "/g2/lease", lease, Some(taken)), "{e:?}");
    let e = s
        .delete_guarded("/g2/obj", Some(obj), &stale)
        .await
        .expect_err("delete under a moved guard");
    assert!(guard_failed(&e, "/g2/lease", lease, Some(taken)), "{e:?}");

    // A guard on a key that is gone fails too, with no current revision.
    s.delete("/g2/lease", None).await.expect("delete lease");
    let gone = Guard {
        key: "/g2/lease".to_string(),
        mod_revision: taken,
    };
    let e = s
        .update_guarded("/g2/obj", b("v3"), obj, &gone)
        .await
        .expect_err("update under a deleted guard");
    assert!(guard_failed(&e, "/g2/lease", taken, None), "{e:?}");

    assert!(s.get("/g2/new").await.expect("get").is_none());
    let kv = must_get(s, "/g2/obj").await;
    assert_eq!((kv.value, kv.mod_revision), (b("v1"), obj));
    // The only event after `before` is the lease deletion.
    let event = next_event(&mut watch, "lease deletion").await;
    assert_eq!(
        (event.kind, event.kv.key.as_str()),
        (EventKind::Deleted, "/g2/lease")
    );
    assert_quiet(&mut watch, "refused guarded writes").await;
}

/// When both the guard and the write's own precondition fail, the guard error wins: a fenced
/// writer learns it is fenced rather than retrying a conflict it can never win.
pub async fn guard_is_checked_before_own_precondition(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let lease = s.create("/g3/lease", b("a")).await.expect("create lease");
    let obj = s.create("/g3/obj", b("v1")).await.expect("create obj");
    let moved = s
        .update("/g3/lease", b("b"), lease)
        .await
        .expect("move lease");
    let stale = Guard {
        key: "/g3/lease".to_string(),
        mod_revision: lease,
    };
    let e = s
        .create_guarded("/g3/obj", b("dup"), &stale)
        .await
        .expect_err("create existing under a moved guard");
    assert!(guard_failed(&e, "/g3/lease", lease, Some(moved)), "{e:?}");
    let e = s
        .update_guarded("/g3/obj", b("v2"), obj + 1000, &stale)
        .await
        .expect_err("conflicting update under a moved guard");
    assert!(guard_failed(&e, "/g3/lease", lease, Some(moved)), "{e:?}");
    let e = s
        .delete_guarded("/g3/missing", None, &stale)
        .await
        .expect_err("delete missing under a moved guard");
    assert!(guard_failed(&e, "/g3/lease", lease, Some(moved)), "{e:?}");

    // With a holding guard, the write's own errors come through unchanged.
    let fresh = Guard {
        key: "/g3/lease".to_string(),
        mod_revision: moved,
    };
    let e = s
        .create_guarded("/g3/obj", b("dup"), &fresh)
        .await
        .expect_err("create existing");
    assert_eq!(
        e,
        StoreError::AlreadyExists {
            key: "/g3/obj".to_string()
        }
    );
    let e = s
        .update_guarded("/g3/obj", b("v2"), obj + 1000, &fresh)
        .await
        .expect_err("conflicting update");
    assert!(matches!(e, StoreError::Conflict { .. }), "{e:?}");
    let e = s
        .delete_guarded("/g3/missing", None, &fresh)
        .await
        .expect_err("delete missing");
    assert!(matches!(e, StoreError::NotFound { .. }), "{e:?}");
}

/// A guard move racing with many guarded writes: every write that succeeded committed before
/// the move (its revision is lower), every one after it failed with `GuardFailed`.
pub async fn concurrent_guard_move_and_guarded_writes_are_serialised(store: Arc<dyn Store>) {
    let lease = store
        .create("/g4/lease", b("a"))
        .await
        .expect("create lease");
    let guard = Guard {
        key: "/g4/lease".to_string(),
        mod_revision: lease,
    };
    let mut writers = Vec::new();
    for i in 0..20 {
        let store = Arc::clone(&store);
        let guard = guard.clone();
        writers.push(tokio::spawn(async move {
            store
                .create_guarded(&format!("/g4/obj-{i:02}"), b("x"), &guard)
                .await
        }));
    }
    let moved = store
        .update("/g4/lease", b("b"), lease)
        .await
        .expect("move lease");
    let mut written = 0;
    for writer in writers {
        match writer.await.expect("writer task") {
            Ok(revision) => {
                assert!(
                    revision < moved,
                    "a guarded write committed after the guard moved"
                );
                written += 1;
            }
            Err(e) => assert!(guard_failed(&e, "/g4/lease", lease, Some(moved)), "{e:?}"),
        }
    }
    assert_eq!(
        list_all(store.as_ref(), "/g4/obj-", None).await.len(),
        written
    );
}
