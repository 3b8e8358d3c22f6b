//! Many registries over one store, each under its own key root (logical clusters, the way the
//! simulator hosts thousands of workload-cluster APIs): they never see each other's objects,
//! their watches stay apart, and a dropped registry lets go of the store. Each case runs with
//! every registry following the store on its own and with all of them fed by one
//! [`SharedWatch`].

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use slipway_registry::cache::SharedWatch;
use slipway_registry::keys::{self, Keys};
use slipway_registry::{
    ListParams, Registry, RegistryConfig, WatchEventType, WatchParams, WriteOptions,
};
use slipway_store::Store;
use slipway_store::sqlite::SqliteStore;

const PATIENCE: Duration = Duration::from_secs(20);

fn config(name: &str, shared: Option<&Arc<SharedWatch>>) -> RegistryConfig {
    RegistryConfig {
        compaction_interval: None,
        keys: Keys::for_logical_cluster(name),
        shared_watch: shared.cloned(),
        system_namespaces: vec!["default".into(), "kube-system".into()],
        ..Default::default()
    }
}

fn cm(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

async fn shared_watch(store: &Arc<dyn Store>, shared: bool) -> Option<Arc<SharedWatch>> {
    if shared {
        Some(
            SharedWatch::start(Arc::clone(store), keys::LOGICAL_CLUSTERS)
                .await
                .expect("shared watch starts"),
        )
    } else {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logical_clusters_share_a_store_and_nothing_else() {
    share_a_store_and_nothing_else(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logical_clusters_on_a_shared_watch_share_a_store_and_nothing_else() {
    share_a_store_and_nothing_else(true).await;
}

async fn share_a_store_and_nothing_else(shared: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("s.db")).expect("open sqlite store"));
    let watch = shared_watch(&store, shared).await;
    let defs: Vec<_> = slipway_api::resources().into_iter().map(Arc::new).collect();
    let a = Registry::start_shared(
        Arc::clone(&store),
        defs.clone(),
        config("a", watch.as_ref()),
    )
    .await
    .expect("a starts");
    let b = Registry::start_shared(
        Arc::clone(&store),
        defs.clone(),
        config("b", watch.as_ref()),
    )
    .await
    .expect("b starts");
    let cms = a.resource("", "v1", "configmaps").expect("configmaps");
    let nss = a.resource("", "v1", "namespaces").expect("namespaces");

    // Each has its own system namespaces.
    for reg in [&a, &b] {
        let list = reg
            .list(&nss, None, &ListParams::default())
            .await
            .expect("list ns");
        let names: Vec<_> = list
            .items
            .iter()
            .filter_map(|o| {
                o.pointer("/metadata/name")
                    .and_then(|n| n.as_str())
                    .map(str::to_string)
            })
            .collect();
        assert_eq!(names, ["default", "kube-system"]);
    }

    let mut watch_b = b
        .watch(
            &cms,
            Some("default"),
            WatchParams {
                resource_version: Some(b.cache_revision().to_string()),
                ..Default::default()
            },
        )
        .await
        .expect("watch b");

    // The same name in both: two objects.
    a.create(&cms, Some("default"), cm("same"), &WriteOptions::default())
        .await
        .expect("create in a");
    b.create(&cms, Some("default"), cm("same"), &WriteOptions::default())
        .await
        .expect("create in b (no conflict with a)");
    a.create(
        &cms,
        Some("default"),
        cm("only-a"),
        &WriteOptions::default(),
    )
    .await
    .expect("create only-a");

    let in_b = b
        .list(&cms, Some("default"), &ListParams::default())
        .await
        .expect("list b");
    assert_eq!(in_b.items.len(), 1, "b sees only its own object");
    assert!(b.get(&cms, Some("default"), "only-a").await.is_err());

    // b's watcher sees b's create and nothing of a's.
    let ev = tokio::time::timeout(PATIENCE, watch_b.next())
        .await
        .expect("event in time")
        .expect("stream open");
    assert_eq!(ev.type_, WatchEventType::Added);
    assert_eq!(ev.object.pointer("/metadata/name"), Some(&json!("same")));
    let uid_b = ev.object.pointer("/metadata/uid").cloned();
    let uid_a = a
        .get(&cms, Some("default"), "same")
        .await
        .expect("get a")
        .pointer("/metadata/uid")
        .cloned();
    assert_ne!(uid_a, uid_b);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), watch_b.next())
            .await
            .is_err(),
        "b's watch must not see a's objects"
    );

    // Keys live under each root.
    let raw = store
        .list("/clusters/a/registry/core/configmaps/", Default::default())
        .await
        .expect("raw list");
    assert_eq!(raw.items.len(), 2);

    // Dropping a registry stops its loops: they let go of the store.
    drop(watch_b);
    drop(a);
    drop(b);
    drop(watch);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while Arc::strong_count(&store) > 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "dropped registries still hold the store ({} references)",
            Arc::strong_count(&store)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A cluster that joins while others write loads exactly what the store holds, an idle one
/// keeps up with the store's revision (consistent reads do not wait for it), and a name
/// dropped and served again starts from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_watch_joins_under_load_and_idles_without_lag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("s.db")).expect("open sqlite store"));
    let watch = shared_watch(&store, true).await;
    let defs: Vec<_> = slipway_api::resources().into_iter().map(Arc::new).collect();
    let busy = Registry::start_shared(
        Arc::clone(&store),
        defs.clone(),
        config("busy", watch.as_ref()),
    )
    .await
    .expect("busy starts");
    let cms = busy.resource("", "v1", "configmaps").expect("configmaps");

    // Writes into "late"'s root go on while it starts: straight into the store, as another
    // server process sharing it would.
    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for i in 0..300 {
                let key = format!("/clusters/late/registry/core/configmaps/default/cm-{i}");
                let value = serde_json::to_vec(&json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("cm-{i}"), "namespace": "default", "uid": format!("u{i}")},
                }))
                .expect("encode");
                store.create(&key, value.into()).await.expect("raw create");
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let late = Registry::start_shared(
        Arc::clone(&store),
        defs.clone(),
        config("late", watch.as_ref()),
    )
    .await
    .expect("late starts");
    writer.await.expect("writer");
    // A consistent list (no resourceVersion) reflects every write acknowledged before it.
    let list = late
        .list(&cms, Some("default"), &ListParams::default())
        .await
        .expect("consistent list");
    assert_eq!(
        list.items.len(),
        300,
        "every object written while joining is there"
    );

    // "busy" saw none of it but still reflects the store's revision, with no progress events
    // of its own.
    let current = store.current_revision().await.expect("revision");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while busy.cache_revision() < current {
        assert!(
            tokio::time::Instant::now() < deadline,
            "idle cache lags the store"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let list = busy
        .list(&cms, Some("default"), &ListParams::default())
        .await
        .expect("consistent list on the idle cluster");
    assert!(list.items.is_empty());
    assert!(list.resource_version >= current);

    // Served again under the same name, a cluster starts from the store and follows it.
    drop(late);
    let again = Registry::start_shared(
        Arc::clone(&store),
        defs.clone(),
        config("late", watch.as_ref()),
    )
    .await
    .expect("late again");
    let mut events = again
        .watch(
            &cms,
            Some("default"),
            WatchParams {
                resource_version: Some(again.cache_revision().to_string()),
                ..Default::default()
            },
        )
        .await
        .expect("watch");
    again
        .create(&cms, Some("default"), cm("fresh"), &WriteOptions::default())
        .await
        .expect("create");
    let ev = tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("event in time")
        .expect("stream open");
    assert_eq!(ev.type_, WatchEventType::Added);
    assert_eq!(ev.object.pointer("/metadata/name"), Some(&json!("fresh")));
    let list = again
        .list(&cms, Some("default"), &ListParams::default())
        .await
        .expect("list");
    assert_eq!(list.items.len(), 301);
}
