//! kube-rs against `slipway serve`: dynamic objects through discovery, the watcher's initial
//! list and live events, and its relist after a 410 caused by compaction.

mod common;

use std::time::Duration;

use common::{Backend, Server, cluster_manifest};
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Discovery;
use kube::runtime::watcher;

fn cluster_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("slipway.dev", "v1alpha1", "Cluster"),
        "clusters",
    )
}

fn parse_cluster(namespace: &str, name: &str) -> DynamicObject {
    serde_json::from_value(common::yaml(&cluster_manifest(namespace, name, "1.33.4")))
        .expect("cluster object")
}

async fn discovery_and_crud(backend: Backend) {
    let server = Server::start(backend);
    let client = server.client().await;
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let (resource, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("slipway.dev", "v1alpha1", "Cluster"))
        .expect("Cluster discovered");
    assert_eq!(resource.plural, "clusters");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);

    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let created = api
        .create(
            &PostParams::default(),
            &parse_cluster("default", "kube-one"),
        )
        .await
        .expect("create");
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some());
    let got = api.get("kube-one").await.expect("get");
    assert_eq!(
        got.metadata.resource_version,
        created.metadata.resource_version
    );
    let list = api.list(&Default::default()).await.expect("list");
    assert_eq!(list.items.len(), 1);
    // A stale resourceVersion is a 409 Conflict.
    let mut stale = got.clone();
    let mut changed = got.clone();
    changed.data["spec"]["version"] = serde_json::json!("1.33.5");
    let replaced = api
        .replace("kube-one", &PostParams::default(), &changed)
        .await
        .expect("replace");
    assert_eq!(replaced.metadata.generation, Some(2));
    // A no-op replace keeps the resourceVersion.
    let same = api
        .replace("kube-one", &PostParams::default(), &replaced)
        .await
        .expect("no-op replace");
    assert_eq!(
        same.metadata.resource_version,
        replaced.metadata.resource_version
    );
    stale.data["spec"]["version"] = serde_json::json!("1.33.9");
    let err = api
        .replace("kube-one", &PostParams::default(), &stale)
        .await
        .expect_err("stale write");
    match err {
        kube::Error::Api(status) => assert_eq!(status.code, 409),
        other => panic!("expected a 409, got {other:?}"),
    }
}

fn discovery_crud(backend: Backend) {
    runtime().block_on(discovery_and_crud(backend));
}
on_every_backend!(kube_rs_discovery_and_crud, discovery_crud);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn watcher_flow(backend: Backend) {
    // Compact every second so history disappears quickly; no bookmarks to advance the
    // watcher's position on their own.
    let server = Server::start_with(
        backend,
        &["--compaction-interval", "1s", "--bookmark-interval", "1h"],
    );
    let client = server.client().await;
    let resource = cluster_resource();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    api.create(&PostParams::default(), &parse_cluster("default", "first"))
        .await
        .expect("create");

    let config = watcher::Config::default().timeout(1);
    let mut stream = watcher::watcher(api.clone(), config).boxed();
    let mut inits = 0;
    let mut seen_first = false;
    // Initial list.
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(20), stream.try_next())
        .await
        .expect("event")
        .expect("watch")
    {
        match ev {
            watcher::Event::Init => inits += 1,
            watcher::Event::InitApply(o) if o.metadata.name.as_deref() == Some("first") => {
                seen_first = true
            }
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert!(seen_first && inits == 1);
    // Live event.
    api.create(&PostParams::default(), &parse_cluster("default", "second"))
        .await
        .expect("create");
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(20), stream.try_next())
            .await
            .expect("event")
            .expect("watch");
        if let Some(watcher::Event::Apply(o)) = ev
            && o.metadata.name.as_deref() == Some("second")
        {
            break;
        }
    }
    // Stop reading: the watcher keeps its last resourceVersion. Writes elsewhere move the
    // store on, compaction forgets the history, and the watch times out server-side.
    let other: Api<DynamicObject> = Api::namespaced_with(client.clone(), "kube-system", &resource);
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({"metadata": {"name": "kube-system"}}))
            .expect("ns"),
    )
    .await
    .expect("namespace");
    for i in 0..5 {
        other
            .create(
                &PostParams::default(),
                &parse_cluster("kube-system", &format!("elsewhere-{i}")),
            )
            .await
            .expect("create");
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    api.create(&PostParams::default(), &parse_cluster("default", "third"))
        .await
        .expect("create");
    // Resuming: the stale resourceVersion gets 410 Expired and the watcher relists.
    let mut relisted = false;
    let mut third = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !(relisted && third) && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
            Ok(Some(Ok(watcher::Event::Init))) => relisted = true,
            Ok(Some(Ok(watcher::Event::InitApply(o) | watcher::Event::Apply(o))))
                if o.metadata.name.as_deref() == Some("third") =>
            {
                third = true
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {}
        }
    }
    assert!(relisted, "the watcher must relist after a 410");
    assert!(
        third,
        "the relist must include the object written meanwhile"
    );
}

fn watcher_relist(backend: Backend) {
    runtime().block_on(watcher_flow(backend));
}
on_every_backend!(kube_rs_watcher_relists_after_compaction, watcher_relist);
