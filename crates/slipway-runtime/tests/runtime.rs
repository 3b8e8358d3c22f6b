//! The runtime against real registries: informer relist after 410, owned-object mapping,
//! error backoff through a controller, leader takeover, and fencing of a stale leader over
//! both client implementations.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use slipway_client::conformance::{Fixture, http, in_process};
use slipway_client::{Api, ListParams, PostParams};
use slipway_runtime::{
    Action, Backoff, Controller, ControllerConfig, Informer, InformerConfig, LeaderElector,
    LeaseConfig, Metrics, ObjectKey,
};
use tokio::sync::mpsc;

const TIMEOUT: Duration = Duration::from_secs(20);

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        },
        data: Some([("k".to_string(), "v".to_string())].into()),
        ..ConfigMap::default()
    }
}

/// Poll `cond` until it holds (generous timeout, no timing assertion).
async fn eventually(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !cond().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn informer_relists_after_gone() {
    let f = in_process().await;
    let api = Api::<ConfigMap>::namespaced(Arc::clone(&f.client), "default");
    api.create(&PostParams::default(), &cm("watched-1", &[("app", "x")]))
        .await
        .expect("create");
    let informer = Informer::new(
        api.clone(),
        InformerConfig {
            label_selector: Some("app=x".into()),
            // Each watch ends after a second; the informer resumes from its last version.
            watch_timeout: Duration::from_secs(1),
            // Without bookmarks its version stays at the list's while others write.
            bookmarks: false,
            ..InformerConfig::default()
        },
    );
    let store = informer.store();
    let lists = informer.list_counter();
    let task = tokio::spawn(informer.run());
    tokio::time::timeout(TIMEOUT, store.wait_synced())
        .await
        .expect("synced");
    assert_eq!(store.len(), 1);
    assert_eq!(lists.load(Ordering::SeqCst), 1);

    // Writes the informer does not see move the store past its last version; compacting
    // there makes its next resume a 410.
    for i in 0..5 {
        api.create(&PostParams::default(), &cm(&format!("other-{i}"), &[]))
            .await
            .expect("create unwatched");
    }
    let rv: i64 = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .resource_version
        .parse()
        .expect("numeric rv");
    f.registry.compact(rv).await.expect("compact");
    eventually("a relist after 410", async || {
        lists.load(Ordering::SeqCst) >= 2
    })
    .await;
    // And the informer follows changes again after it.
    api.create(&PostParams::default(), &cm("watched-2", &[("app", "x")]))
        .await
        .expect("create after compaction");
    eventually(
        "the cache has the object created after compaction",
        async || {
            store
                .get(&ObjectKey::namespaced("default", "watched-2"))
                .is_some()
        },
    )
    .await;
    assert_eq!(store.len(), 2);
    task.abort();
}

/// Counts reconciles per key and reports each one.
struct Recorder {
    counts: Mutex<HashMap<ObjectKey, usize>>,
    seen: mpsc::UnboundedSender<ObjectKey>,
    /// Fail this many reconciles first.
    fail_first: Mutex<usize>,
}

impl Recorder {
    fn new(fail_first: usize) -> (Arc<Self>, mpsc::UnboundedReceiver<ObjectKey>) {
        let (seen, rx) = mpsc::unbounded_channel();
        (
            Arc::new(Self {
                counts: Mutex::default(),
                seen,
                fail_first: Mutex::new(fail_first),
            }),
            rx,
        )
    }

    fn count(&self, key: &ObjectKey) -> usize {
        self.counts
            .lock()
            .expect("lock")
            .get(key)
            .copied()
            .unwrap_or(0)
    }
}

async fn record(obj: Arc<ConfigMap>, ctx: Arc<Recorder>) -> Result<Action, String> {
    let key = ObjectKey::of(&*obj);
    *ctx.counts
        .lock()
        .expect("lock")
        .entry(key.clone())
        .or_insert(0) += 1;
    let _ = ctx.seen.send(key);
    let mut fail = ctx.fail_first.lock().expect("lock");
    if *fail > 0 {
        *fail -= 1;
        return Err("injected failure".into());
    }
    Ok(Action::await_change())
}

async fn next_key(rx: &mut mpsc::UnboundedReceiver<ObjectKey>) -> ObjectKey {
    tokio::time::timeout(TIMEOUT, rx.recv())
        .await
        .expect("a reconcile in time")
        .expect("recorder open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owned_objects_map_to_their_controller() {
    let f = in_process().await;
    let api = Api::<ConfigMap>::namespaced(Arc::clone(&f.client), "default");
    let parent = api
        .create(&PostParams::default(), &cm("parent", &[("role", "parent")]))
        .await
        .expect("parent");
    let other = api
        .create(&PostParams::default(), &cm("other", &[("role", "parent")]))
        .await
        .expect("other parent");
    let owner_ref = |p: &ConfigMap, controller: bool| OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: p.metadata.name.clone().unwrap_or_default(),
        uid: p.metadata.uid.clone().unwrap_or_default(),
        controller: Some(controller),
        ..OwnerReference::default()
    };
    let (ctx, mut seen) = Recorder::new(0);
    let controller = Controller::new(
        "parents",
        api.clone(),
        InformerConfig {
            label_selector: Some("role=parent".into()),
            ..InformerConfig::default()
        },
    )
    .owns(
        api.clone(),
        InformerConfig {
            label_selector: Some("role=child".into()),
            ..InformerConfig::default()
        },
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(controller.run(
        record,
        |_, _, _| Action::backoff(),
        Arc::clone(&ctx),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let parent_key = ObjectKey::namespaced("default", "parent");
    let other_key = ObjectKey::namespaced("default", "other");
    eventually("both parents reconciled once", async || {
        ctx.count(&parent_key) >= 1 && ctx.count(&other_key) >= 1
    })
    .await;
    while seen.try_recv().is_ok() {}
    let before_other = ctx.count(&other_key);

    // A child controlled by `parent` (and merely owned, not controlled, by `other`).
    let mut child = cm("child", &[("role", "child")]);
    child.metadata.owner_references =
        Some(vec![owner_ref(&parent, true), owner_ref(&other, false)]);
    api.create(&PostParams::default(), &child)
        .await
        .expect("child");
    assert_eq!(next_key(&mut seen).await, parent_key);
    // A change to the child reconciles its controller again.
    let before = ctx.count(&parent_key);
    let mut changed = api.get("child").await.expect("get child");
    changed.data = Some([("k".to_string(), "v2".to_string())].into());
    api.replace("child", &PostParams::default(), &changed)
        .await
        .expect("change child");
    assert_eq!(next_key(&mut seen).await, parent_key);
    assert!(ctx.count(&parent_key) > before);
    // The non-controlling owner was never reconciled for the child.
    assert_eq!(ctx.count(&other_key), before_other);

    let _ = stop_tx.send(());
    tokio::time::timeout(TIMEOUT, run)
        .await
        .expect("controller stops")
        .expect("join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_back_off_then_succeed_and_metrics_count_them() {
    let f = in_process().await;
    let api = Api::<ConfigMap>::namespaced(Arc::clone(&f.client), "default");
    api.create(&PostParams::default(), &cm("flaky", &[]))
        .await
        .expect("create");
    let (ctx, _seen) = Recorder::new(3);
    let metrics = Metrics::new();
    let controller = Controller::new("flaky", api, InformerConfig::default())
        .with_config(ControllerConfig {
            backoff: Backoff {
                base: Duration::from_millis(10),
                cap: Duration::from_millis(50),
            },
            ..ControllerConfig::default()
        })
        .with_metrics(metrics.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(controller.run(
        record,
        |_, _, _| Action::backoff(),
        Arc::clone(&ctx),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let key = ObjectKey::namespaced("default", "flaky");
    eventually("three failures then a success", async || {
        metrics.reconciles("flaky", "success") >= 1
    })
    .await;
    assert_eq!(metrics.reconciles("flaky", "error"), 3);
    assert_eq!(ctx.count(&key), 4);
    let _ = stop_tx.send(());
    tokio::time::timeout(TIMEOUT, run)
        .await
        .expect("controller stops")
        .expect("join");
}

fn lease_config(identity: &str) -> LeaseConfig {
    LeaseConfig {
        lease_duration: Duration::from_secs(1),
        renew_deadline: Duration::from_millis(700),
        retry_period: Duration::from_millis(100),
        ..LeaseConfig::new("default", "controllers", identity)
    }
}

async fn lease_spec(f: &Fixture) -> k8s_openapi::api::coordination::v1::LeaseSpec {
    Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(Arc::clone(&f.client), "default")
        .get("controllers")
        .await
        .expect("lease")
        .spec
        .expect("lease spec")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_takeover_after_expiry_and_release() {
    let f = in_process().await;
    let a = LeaderElector::new(Arc::clone(&f.client), lease_config("replica-a")).spawn();
    tokio::time::timeout(TIMEOUT, a.wait_leading())
        .await
        .expect("a leads");
    let b = LeaderElector::new(Arc::clone(&f.client), lease_config("replica-b")).spawn();
    // While a renews, b waits (several lease durations).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(a.is_leader());
    assert!(!b.is_leader());
    assert_eq!(
        lease_spec(&f).await.holder_identity.as_deref(),
        Some("replica-a")
    );

    // a dies without releasing: b takes over once the lease expires.
    drop(a);
    tokio::time::timeout(TIMEOUT, b.wait_leading())
        .await
        .expect("b takes over");
    let spec = lease_spec(&f).await;
    assert_eq!(spec.holder_identity.as_deref(), Some("replica-b"));
    assert_eq!(spec.lease_transitions, Some(1));

    // A graceful stop releases the lease at once.
    b.stop().await;
    assert_eq!(lease_spec(&f).await.holder_identity, None);
}

/// A leader whose renew loop is frozen (it acquired once and never ran again) keeps a fenced
/// client; after another replica takes the expired lease over, its writes fail as fenced,
/// though it never noticed.
async fn stale_leader_is_fenced(f: Fixture) {
    let mut a = LeaderElector::new(Arc::clone(&f.client), lease_config("replica-a"));
    assert!(a.try_acquire_or_renew().await.expect("a acquires"));
    let a_client = a.fenced_client();
    let a_api = Api::<ConfigMap>::namespaced(Arc::clone(&a_client), "default");
    a_api
        .create(&PostParams::default(), &cm("by-a", &[]))
        .await
        .expect("a writes while leading");

    let b = LeaderElector::new(Arc::clone(&f.client), lease_config("replica-b")).spawn();
    let b_client = tokio::time::timeout(TIMEOUT, b.wait_leading())
        .await
        .expect("b takes over the expired lease");
    let e = a_api
        .create(&PostParams::default(), &cm("by-stale-a", &[]))
        .await
        .expect_err("the stale leader's write");
    assert!(e.is_fenced(), "{e}");
    let e = a_api
        .delete("by-a", &Default::default())
        .await
        .expect_err("the stale leader's delete");
    assert!(e.is_fenced(), "{e}");
    Api::<ConfigMap>::namespaced(b_client, "default")
        .create(&PostParams::default(), &cm("by-b", &[]))
        .await
        .expect("the new leader writes");
    let plain = Api::<ConfigMap>::namespaced(Arc::clone(&f.client), "default");
    assert!(plain.get_opt("by-stale-a").await.expect("get").is_none());
    assert!(plain.get_opt("by-a").await.expect("get").is_some());
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_leader_is_fenced_in_process() {
    stale_leader_is_fenced(in_process().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_leader_is_fenced_over_http() {
    stale_leader_is_fenced(http().await).await;
}
