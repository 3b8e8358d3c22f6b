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

fn owned(name: &str, owner_uid: &str, controller: bool) -> ConfigMap {
    let mut c = cm(name, &[("app", "owned")]);
    c.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        uid: owner_uid.into(),
        controller: Some(controller),
        block_owner_deletion: None,
    }]);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_finds_objects_by_controlling_owner_through_changes_and_relists() {
    let f = in_process().await;
    let api = Api::<ConfigMap>::namespaced(Arc::clone(&f.client), "default");
    // Real owners, or the garbage collector removes what they own.
    let mut uids = HashMap::new();
    for owner in ["owner-a", "owner-b", "owner-c"] {
        let created = api
            .create(&PostParams::default(), &cm(owner, &[]))
            .await
            .expect("create owner");
        uids.insert(owner, created.metadata.uid.expect("uid"));
    }
    let (uid_a, uid_b, uid_c) = (&uids["owner-a"], &uids["owner-b"], &uids["owner-c"]);
    for c in [
        owned("a1", uid_a, true),
        owned("a2", uid_a, true),
        owned("b1", uid_b, true),
        // Owned but not controlled: not in the index.
        owned("a3", uid_a, false),
    ] {
        api.create(&PostParams::default(), &c)
            .await
            .expect("create");
    }
    let informer = Informer::new(
        api.clone(),
        InformerConfig {
            label_selector: Some("app=owned".into()),
            watch_timeout: Duration::from_secs(1),
            bookmarks: false,
            ..InformerConfig::default()
        },
    )
    // An index of the informer's own: every owner, controlling or not.
    .with_index("owner", |c: &ConfigMap| {
        c.metadata
            .owner_references
            .iter()
            .flatten()
            .map(|o| o.uid.clone())
            .collect()
    });
    let store = informer.store();
    let lists = informer.list_counter();
    let task = tokio::spawn(informer.run());
    tokio::time::timeout(TIMEOUT, store.wait_synced())
        .await
        .expect("synced");
    let names = |uid: &str| {
        let mut n: Vec<String> = store
            .controlled_by(uid)
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        n.sort();
        n
    };
    let owned_by = |uid: &str| {
        let mut n: Vec<String> = store
            .by_index("owner", uid)
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        n.sort();
        assert_eq!(store.index_keys("owner", uid).len(), n.len());
        n
    };
    assert_eq!(names(uid_a), ["a1", "a2"]);
    assert_eq!(names(uid_b), ["b1"]);
    assert!(names(uid_c).is_empty());
    assert_eq!(owned_by(uid_a), ["a1", "a2", "a3"]);
    assert!(store.by_index("no such index", uid_a).is_empty());

    // A change that keeps the indexed value keeps the object filed under it.
    let mut a3 = api.get("a3").await.expect("get");
    a3.metadata
        .labels
        .get_or_insert_default()
        .insert("touched".into(), "yes".into());
    api.replace("a3", &PostParams::default(), &a3)
        .await
        .expect("replace");
    eventually("the touched object is seen", async || {
        store
            .get(&ObjectKey::namespaced("default", "a3"))
            .is_some_and(|c| {
                c.metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key("touched"))
            })
    })
    .await;
    assert_eq!(owned_by(uid_a), ["a1", "a2", "a3"]);

    // A change of controller moves the object; a delete removes it.
    let mut a2 = api.get("a2").await.expect("get");
    a2.metadata.owner_references = owned("a2", uid_b, true).metadata.owner_references;
    api.replace("a2", &PostParams::default(), &a2)
        .await
        .expect("replace");
    api.delete("a1", &Default::default()).await.expect("delete");
    eventually("the index follows the watch", async || {
        names(uid_a).is_empty() && names(uid_b) == ["a2", "b1"]
    })
    .await;
    assert_eq!(owned_by(uid_a), ["a3"]);
    assert_eq!(owned_by(uid_b), ["a2", "b1"]);

    // A relist (after 410) rebuilds the index from what the server has.
    api.delete("b1", &Default::default()).await.expect("delete");
    // A write the informer does not see moves the store past its last version.
    api.create(&PostParams::default(), &cm("unwatched", &[]))
        .await
        .expect("create unwatched");
    let rv: i64 = api
        .list(&ListParams::default().labels("none=none"))
        .await
        .expect("list")
        .resource_version
        .parse()
        .expect("numeric rv");
    f.registry.compact(rv).await.expect("compact");
    eventually("the index after a relist", async || {
        lists.load(Ordering::SeqCst) >= 2 && names(uid_b) == ["a2"]
    })
    .await;
    assert_eq!(owned_by(uid_b), ["a2"]);
    assert_eq!(owned_by(uid_a), ["a3"]);
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

/// Two controllers of one process share the children's watch and cache: the children's
/// controller owns the informer, and the parents' follows its events (`owns_events`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_follows_another_controllers_informer() {
    let f = in_process().await;
    let api = Api::<ConfigMap>::namespaced(Arc::clone(&f.client), "default");
    let parent = api
        .create(&PostParams::default(), &cm("parent", &[("role", "parent")]))
        .await
        .expect("parent");
    let (parents_ctx, mut parents_seen) = Recorder::new(0);
    let (children_ctx, mut children_seen) = Recorder::new(0);
    let mut children = Controller::new(
        "children",
        api.clone(),
        InformerConfig {
            label_selector: Some("role=child".into()),
            ..InformerConfig::default()
        },
    );
    let children_store = children.store();
    let events = children.subscribe();
    let parents = Controller::new(
        "parents",
        api.clone(),
        InformerConfig {
            label_selector: Some("role=parent".into()),
            ..InformerConfig::default()
        },
    )
    .owns_events(events);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop = || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let runs = [
        tokio::spawn(parents.run(
            record,
            |_, _, _| Action::backoff(),
            Arc::clone(&parents_ctx),
            stop(),
        )),
        tokio::spawn(children.run(
            record,
            |_, _, _| Action::backoff(),
            Arc::clone(&children_ctx),
            stop(),
        )),
    ];
    let parent_key = ObjectKey::namespaced("default", "parent");
    assert_eq!(next_key(&mut parents_seen).await, parent_key);

    let mut child = cm("child", &[("role", "child")]);
    child.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "parent".into(),
        uid: parent.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        ..OwnerReference::default()
    }]);
    api.create(&PostParams::default(), &child)
        .await
        .expect("child");
    let child_key = ObjectKey::namespaced("default", "child");
    assert_eq!(next_key(&mut children_seen).await, child_key);
    assert_eq!(next_key(&mut parents_seen).await, parent_key);
    // One cache: the parents read their children from the children's controller's store.
    assert_eq!(
        children_store
            .controlled_by(parent.metadata.uid.as_deref().unwrap_or_default())
            .len(),
        1
    );
    api.delete("child", &Default::default())
        .await
        .expect("delete child");
    assert_eq!(next_key(&mut parents_seen).await, parent_key);

    let _ = stop_tx.send(true);
    for run in runs {
        tokio::time::timeout(TIMEOUT, run)
            .await
            .expect("controller stops")
            .expect("join");
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_metrics_are_served_on_the_api_servers_metrics() {
    let f = http().await;
    let metrics = Metrics::new();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    f.server
        .as_ref()
        .expect("http fixture has a server")
        .metrics
        .include(Arc::new(registry));

    let api = Api::<ConfigMap>::namespaced(Arc::clone(&f.client), "default");
    api.create(&PostParams::default(), &cm("m", &[]))
        .await
        .expect("create");
    let (ctx, _seen) = Recorder::new(0);
    let controller =
        Controller::new("metered", api, InformerConfig::default()).with_metrics(metrics.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(
        controller.run(record, |_, _, _| Action::backoff(), ctx, async move {
            let _ = stop_rx.await;
        }),
    );
    eventually("a reconcile", async || {
        metrics.reconciles("metered", "success") >= 1
    })
    .await;
    let kubeconfig = f.kubeconfig.clone().expect("kubeconfig");
    let kube = slipway_client::Http::from_kubeconfig(&kubeconfig)
        .await
        .expect("client")
        .kube_client()
        .expect("kube client");
    let text = kube
        .request_text(
            http::Request::get("/metrics")
                .body(Vec::new())
                .expect("request"),
        )
        .await
        .expect("GET /metrics");
    for series in [
        "slipway_apiserver_request_total",
        "slipway_controller_reconciles_total{controller=\"metered\",result=\"success\"} 1",
        "slipway_controller_reconcile_duration_seconds_count{controller=\"metered\"} 1",
        "slipway_controller_queue_latency_seconds_count{controller=\"metered\"} 1",
        "slipway_controller_queue_depth{controller=\"metered\"}",
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
    assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    let _ = stop_tx.send(());
    tokio::time::timeout(TIMEOUT, run)
        .await
        .expect("controller stops")
        .expect("join");
}

/// Tracks how many reconciles run at once, and how many finished.
#[derive(Default)]
struct Gauge {
    running: std::sync::atomic::AtomicUsize,
    max: std::sync::atomic::AtomicUsize,
    finished: std::sync::atomic::AtomicUsize,
    /// How long each reconcile takes.
    hold: Duration,
}

async fn hold(_obj: Arc<ConfigMap>, g: Arc<Gauge>) -> Result<Action, String> {
    let now = g.running.fetch_add(1, Ordering::SeqCst) + 1;
    g.max.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(g.hold).await;
    g.running.fetch_sub(1, Ordering::SeqCst);
    g.finished.fetch_add(1, Ordering::SeqCst);
    Ok(Action::await_change())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_and_graceful_shutdown() {
    let f = in_process().await;
    let api = Api::<ConfigMap>::namespaced(Arc::clone(&f.client), "default");
    for i in 0..6 {
        api.create(&PostParams::default(), &cm(&format!("c{i}"), &[]))
            .await
            .expect("create");
    }
    let gauge = Arc::new(Gauge {
        hold: Duration::from_secs(1),
        ..Gauge::default()
    });
    let controller =
        Controller::new("limited", api, InformerConfig::default()).with_config(ControllerConfig {
            concurrency: 2,
            shutdown_timeout: TIMEOUT,
            ..ControllerConfig::default()
        });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(controller.run(
        hold,
        |_, _, _| Action::backoff(),
        Arc::clone(&gauge),
        async move {
            let _ = stop_rx.await;
        },
    ));
    eventually("two reconciles in flight", async || {
        gauge.running.load(Ordering::SeqCst) == 2
    })
    .await;
    // Shut down with reconciles in flight: they finish, nothing new starts.
    let _ = stop_tx.send(());
    tokio::time::timeout(TIMEOUT, run)
        .await
        .expect("controller stops")
        .expect("join");
    let finished = gauge.finished.load(Ordering::SeqCst);
    assert_eq!(
        gauge.running.load(Ordering::SeqCst),
        0,
        "a reconcile was cut off"
    );
    assert!((2..6).contains(&finished), "finished {finished}");
    assert_eq!(gauge.max.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_deadline_abandons_stuck_reconciles() {
    let f = in_process().await;
    let api = Api::<ConfigMap>::namespaced(Arc::clone(&f.client), "default");
    api.create(&PostParams::default(), &cm("stuck", &[]))
        .await
        .expect("create");
    let gauge = Arc::new(Gauge {
        hold: Duration::from_secs(3600),
        ..Gauge::default()
    });
    let controller =
        Controller::new("stuck", api, InformerConfig::default()).with_config(ControllerConfig {
            shutdown_timeout: Duration::from_millis(200),
            ..ControllerConfig::default()
        });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(controller.run(
        hold,
        |_, _, _| Action::backoff(),
        Arc::clone(&gauge),
        async move {
            let _ = stop_rx.await;
        },
    ));
    eventually("the reconcile started", async || {
        gauge.running.load(Ordering::SeqCst) == 1
    })
    .await;
    let _ = stop_tx.send(());
    tokio::time::timeout(TIMEOUT, run)
        .await
        .expect("controller stops despite a stuck reconcile")
        .expect("join");
    assert_eq!(gauge.finished.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_steps_down_when_the_lease_names_someone_else() {
    let f = in_process().await;
    let c = LeaderElector::new(
        Arc::clone(&f.client),
        LeaseConfig {
            // A long renew deadline: stepping down must come from seeing the new holder.
            renew_deadline: Duration::from_secs(3600),
            lease_duration: Duration::from_secs(3600),
            ..lease_config("replica-c")
        },
    )
    .spawn();
    tokio::time::timeout(TIMEOUT, c.wait_leading())
        .await
        .expect("c leads");
    let leases = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(
        Arc::clone(&f.client),
        "default",
    );
    // Another party takes the lease (with a CAS retry: c renews concurrently).
    loop {
        let mut lease = leases.get("controllers").await.expect("lease");
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = Some("intruder".into());
        }
        match leases
            .replace("controllers", &PostParams::default(), &lease)
            .await
        {
            Ok(_) => break,
            Err(e) if e.is_conflict() => continue,
            Err(e) => panic!("take the lease: {e}"),
        }
    }
    tokio::time::timeout(TIMEOUT, c.wait_lost())
        .await
        .expect("c notices it lost the lease");
    assert!(!c.is_leader());
    c.stop().await;
    // Stopping does not release a lease someone else holds.
    assert_eq!(
        lease_spec(&f).await.holder_identity.as_deref(),
        Some("intruder")
    );
}

/// An informer keeps objects without their managedFields unless asked to keep them, from
/// its list and from its watch alike; the server still has them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn informers_drop_managed_fields_unless_asked_to_keep_them() {
    let f = in_process().await;
    let api = Api::<ConfigMap>::namespaced(Arc::clone(&f.client), "default");
    api.create(&PostParams::default(), &cm("listed", &[]))
        .await
        .expect("create");
    let start = |keep_managed_fields| {
        let informer = Informer::new(
            api.clone(),
            InformerConfig {
                keep_managed_fields,
                ..InformerConfig::default()
            },
        );
        let store = informer.store();
        (store, tokio::spawn(informer.run()))
    };
    let (trimmed, trimmed_task) = start(false);
    let (kept, kept_task) = start(true);
    for store in [&trimmed, &kept] {
        tokio::time::timeout(TIMEOUT, store.wait_synced())
            .await
            .expect("synced");
    }
    api.create(&PostParams::default(), &cm("watched", &[]))
        .await
        .expect("create");
    let key = |name: &str| ObjectKey::namespaced("default", name);
    eventually("both caches have the watched object", async || {
        trimmed.get(&key("watched")).is_some() && kept.get(&key("watched")).is_some()
    })
    .await;
    for name in ["listed", "watched"] {
        let on_server = api.get(name).await.expect("get");
        assert!(on_server.metadata.managed_fields.is_some(), "{name}");
        let trimmed = trimmed.get(&key(name)).expect("cached");
        assert_eq!(trimmed.metadata.managed_fields, None, "{name}");
        assert_eq!(trimmed.data, on_server.data);
        let kept = kept.get(&key(name)).expect("cached");
        assert_eq!(
            kept.metadata.managed_fields, on_server.metadata.managed_fields,
            "{name}"
        );
    }
    trimmed_task.abort();
    kept_task.abort();
}

/// Requeues 2 s later while the ConfigMap's `state` is not `done`, then awaits a change.
async fn converge(obj: Arc<ConfigMap>, ctx: Arc<Recorder>) -> Result<Action, String> {
    let done = obj
        .data
        .as_ref()
        .and_then(|d| d.get("state"))
        .is_some_and(|s| s == "done");
    record(obj, ctx).await?;
    Ok(if done {
        Action::await_change()
    } else {
        Action::requeue(Duration::from_secs(2))
    })
}

/// A key asks for a recheck while converging, then converges: with `requeue_replaces` the
/// recheck no longer runs, without it (the default, as in controller-runtime) it still does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_converged_keys_earlier_recheck_runs_only_unless_requeues_replace() {
    for replaces in [true, false] {
        let f = in_process().await;
        let api = Api::<ConfigMap>::namespaced(Arc::clone(&f.client), "default");
        let mut obj = cm("converging", &[]);
        obj.data = Some([("state".to_string(), "converging".to_string())].into());
        api.create(&PostParams::default(), &obj)
            .await
            .expect("create");
        let (ctx, mut seen) = Recorder::new(0);
        let controller = Controller::new("converge", api.clone(), InformerConfig::default())
            .with_config(ControllerConfig {
                requeue_replaces: replaces,
                ..ControllerConfig::default()
            });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(controller.run(
            converge,
            |_, _, _| Action::backoff(),
            Arc::clone(&ctx),
            async move {
                let _ = stop_rx.await;
            },
        ));
        let key = ObjectKey::namespaced("default", "converging");
        assert_eq!(next_key(&mut seen).await, key);
        let mut done = api.get("converging").await.expect("get");
        done.data = Some([("state".to_string(), "done".to_string())].into());
        api.replace("converging", &PostParams::default(), &done)
            .await
            .expect("converge");
        assert_eq!(next_key(&mut seen).await, key);
        // Past the first reconcile's recheck.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let expected = if replaces { 2 } else { 3 };
        assert_eq!(
            ctx.count(&key),
            expected,
            "reconciles with requeue_replaces = {replaces}"
        );
        let _ = stop_tx.send(());
        tokio::time::timeout(TIMEOUT, run)
            .await
            .expect("controller stops")
            .expect("join");
    }
}
