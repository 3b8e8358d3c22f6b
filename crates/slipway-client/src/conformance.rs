//! The behavioural suite every [`Client`] implementation must pass (feature `conformance`),
//! and the fixtures that run it: [`in_process`] (a registry on a temporary SQLite store) and
//! [`http`] (the same plus a real `slipway_apiserver` on loopback, reached with kube-rs).
//!
//! Each case is a `pub async fn(Fixture)` that panics on failure;
//! [`client_conformance_tests!`](crate::client_conformance_tests) expands into one test per
//! case. The fixtures are public so that other crates (the controller runtime) can test
//! against both implementations too.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{Value, json};
use slipway_registry::{Registry, RegistryConfig};

use crate::{
    Api, ApiResource, Client, DeleteParams, Deleted, Fence, Http, InProcess, ListParams, Patch,
    PatchParams, PostParams, Subresource, WatchEvent, WatchParams, WatchStream,
};

/// A client and the registry behind it (for what no client can do, such as compaction).
pub struct Fixture {
    pub client: Arc<dyn Client>,
    pub registry: Arc<Registry>,
    /// The API server's kubeconfig, for [`http`] fixtures.
    pub kubeconfig: Option<std::path::PathBuf>,
    /// The API server, for [`http`] fixtures (e.g. to include extra metrics).
    pub server: Option<Arc<slipway_apiserver::ApiServer>>,
    _keep: Box<dyn std::any::Any + Send>,
}

/// How the fixtures configure the registry: no background compaction (cases compact
/// explicitly) and frequent bookmarks.
fn registry_config() -> RegistryConfig {
    RegistryConfig {
        compaction_interval: None,
        bookmark_interval: Duration::from_millis(200),
        ..RegistryConfig::default()
    }
}

async fn registry(dir: &tempfile::TempDir) -> Arc<Registry> {
    let store = slipway_store::sqlite::SqliteStore::open(&dir.path().join("store.db"))
        .expect("open sqlite store");
    // The platform's kinds plus the workload kinds (nodes, pods...), as one server may host.
    let mut defs = slipway_api::resources();
    for def in slipway_api::workload_resources() {
        if !defs
            .iter()
            .any(|d| d.group == def.group && d.plural == def.plural)
        {
            defs.push(def);
        }
    }
    Registry::start(Arc::new(store), defs, registry_config())
        .await
        .expect("start registry")
}

/// An [`InProcess`] client over a fresh registry on a temporary SQLite store.
pub async fn in_process() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let registry = registry(&dir).await;
    Fixture {
        client: Arc::new(InProcess::new(Arc::clone(&registry))),
        registry,
        kubeconfig: None,
        server: None,
        _keep: Box::new(dir),
    }
}

/// Aborts the server task when the fixture is dropped.
struct ServerTask(tokio::task::JoinHandle<()>);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An [`Http`] client against a real API server on loopback over a fresh registry.
pub async fn http() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let registry = registry(&dir).await;
    let running = slipway_apiserver::serve(
        Arc::clone(&registry),
        &slipway_apiserver::ServeConfig {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().expect("loopback address"),
        },
    )
    .await
    .expect("start API server");
    let client = Http::from_kubeconfig(&running.kubeconfig)
        .await
        .expect("client from admin.kubeconfig");
    Fixture {
        client: Arc::new(client),
        registry,
        kubeconfig: Some(running.kubeconfig.clone()),
        server: Some(Arc::clone(&running.server)),
        _keep: Box::new((ServerTask(running.task), dir)),
    }
}

/// Expands into one `#[tokio::test]` per case, each with a fresh fixture from `$factory`
/// (an async expression yielding a [`Fixture`]).
#[macro_export]
macro_rules! client_conformance_tests {
    ($factory:expr) => {
        $crate::client_conformance_tests!(@cases ($factory);
            crud_and_typed_errors,
            list_selectors_and_paging,
            cluster_scoped_kind_and_selectable_fields,
            patches_and_status,
            delete_preconditions_and_finalizers,
            watch_events_resume_and_bookmarks,
            watch_from_compacted_version_is_gone,
            fenced_writes_fail_after_takeover,
            typed_api,
        );
    };
    (@cases ($factory:expr); $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::conformance::$case($factory.await).await;
            }
        )*
    };
}

const TIMEOUT: Duration = Duration::from_secs(20);

fn configmaps() -> ApiResource {
    ApiResource {
        group: String::new(),
        version: "v1".into(),
        kind: "ConfigMap".into(),
        plural: "configmaps".into(),
        namespaced: true,
    }
}

fn leases() -> ApiResource {
    ApiResource {
        group: "coordination.k8s.io".into(),
        version: "v1".into(),
        kind: "Lease".into(),
        plural: "leases".into(),
        namespaced: true,
    }
}

fn clusters() -> ApiResource {
    ApiResource {
        group: "slipway.dev".into(),
        version: "v1alpha1".into(),
        kind: "Cluster".into(),
        plural: "clusters".into(),
        namespaced: true,
    }
}

fn cm(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
}

fn rv(obj: &Value) -> String {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no resourceVersion in {obj}"))
        .to_string()
}

fn name(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

async fn next(stream: &mut WatchStream, what: &str) -> WatchEvent {
    tokio::time::timeout(TIMEOUT, stream.next())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap_or_else(|| panic!("watch ended waiting for {what}"))
        .unwrap_or_else(|e| panic!("watch failed waiting for {what}: {e}"))
}

/// Next event that is not a bookmark.
async fn next_change(stream: &mut WatchStream, what: &str) -> WatchEvent {
    loop {
        match next(stream, what).await {
            WatchEvent::Bookmark { .. } => continue,
            other => return other,
        }
    }
}

/// Create, get, replace, and the typed errors: NotFound, AlreadyExists, Conflict, Invalid.
pub async fn crud_and_typed_errors(f: Fixture) {
    let c = f.client.as_ref();
    let res = configmaps();
    let pp = PostParams::default();
    let created = c
        .create(&res, Some("default"), cm("a", json!({})), &pp)
        .await
        .expect("create");
    assert_eq!(name(&created), "a");
    assert!(created.pointer("/metadata/uid").is_some());
    let got = c.get(&res, Some("default"), "a").await.expect("get");
    assert_eq!(rv(&got), rv(&created));

    let e = c
        .get(&res, Some("default"), "missing")
        .await
        .expect_err("get missing");
    assert!(e.is_not_found(), "{e}");
    let e = c
        .create(&res, Some("default"), cm("a", json!({})), &pp)
        .await
        .expect_err("create twice");
    assert!(e.is_already_exists(), "{e}");
    assert!(!e.is_conflict() && !e.is_fenced(), "{e}");

    let mut changed = Value::clone(&got);
    changed["data"]["k"] = json!("v2");
    let replaced = c
        .replace(&res, Some("default"), "a", changed.clone(), &pp)
        .await
        .expect("replace");
    assert_eq!(replaced["data"]["k"], "v2");
    assert_ne!(rv(&replaced), rv(&got));
    // The version alone: the object's uid and resourceVersion, and a 404 as `get`'s.
    let version = c
        .get_version(&res, Some("default"), "a")
        .await
        .expect("get_version");
    assert_eq!(version, crate::ObjectVersion::of(&replaced));
    assert_eq!(version.resource_version, rv(&replaced));
    assert!(!version.uid.is_empty());
    let e = c
        .get_version(&res, Some("default"), "missing")
        .await
        .expect_err("get_version missing");
    assert!(e.is_not_found(), "{e}");
    // `changed` still carries the old resourceVersion: a stale replace conflicts.
    let e = c
        .replace(&res, Some("default"), "a", changed, &pp)
        .await
        .expect_err("stale replace");
    assert!(e.is_conflict(), "{e}");
    assert_eq!(e.status().map(|s| s.code), Some(409));

    let bad = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_Valid"}});
    let e = c
        .create(&res, Some("default"), bad, &pp)
        .await
        .expect_err("invalid name");
    assert!(e.is_invalid(), "{e}");
}

/// Label and field selectors, and paging with a continue token.
pub async fn list_selectors_and_paging(f: Fixture) {
    let c = f.client.as_ref();
    let res = configmaps();
    for i in 0..5 {
        let tier = if i % 2 == 0 { "web" } else { "db" };
        c.create(
            &res,
            Some("default"),
            cm(&format!("cm-{i}"), json!({"tier": tier})),
            &PostParams::default(),
        )
        .await
        .expect("create");
    }
    let web = c
        .list(
            &res,
            Some("default"),
            &ListParams::default().labels("tier=web"),
        )
        .await
        .expect("list by label");
    let names: Vec<_> = web.items.iter().map(name).collect();
    assert_eq!(names, ["cm-0", "cm-2", "cm-4"]);
    assert!(!web.resource_version.is_empty());

    let one = c
        .list(
            &res,
            None,
            &ListParams::default().fields("metadata.name=cm-3"),
        )
        .await
        .expect("list by field across namespaces");
    assert_eq!(one.items.iter().map(name).collect::<Vec<_>>(), ["cm-3"]);
    assert_eq!(one.items[0]["kind"], "ConfigMap");

    let mut seen = Vec::new();
    let mut params = ListParams::default().labels("tier").limit(2);
    loop {
        let page = c.list(&res, Some("default"), &params).await.expect("page");
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|o| name(o).to_string()));
        match page.continue_token {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(seen, ["cm-0", "cm-1", "cm-2", "cm-3", "cm-4"]);
}

/// A cluster-scoped kind (no namespace anywhere) and a field selector on one of the kind's
/// own selectable fields (a Node's `spec.unschedulable`).
pub async fn cluster_scoped_kind_and_selectable_fields(f: Fixture) {
    let c = f.client.as_ref();
    let nodes = ApiResource {
        group: String::new(),
        version: "v1".into(),
        kind: "Node".into(),
        plural: "nodes".into(),
        namespaced: false,
    };
    for (name, cordoned) in [("n1", true), ("n2", false)] {
        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                          "spec": {"unschedulable": cordoned}});
        // The namespace is ignored for a cluster-scoped kind.
        let created = c
            .create(&nodes, Some("default"), node, &PostParams::default())
            .await
            .expect("create node");
        assert!(
            created.pointer("/metadata/namespace").is_none(),
            "{created}"
        );
    }
    let cordoned = c
        .list(
            &nodes,
            None,
            &ListParams::default().fields("spec.unschedulable=true"),
        )
        .await
        .expect("list by a selectable field");
    assert_eq!(cordoned.items.iter().map(name).collect::<Vec<_>>(), ["n1"]);
    let e = c
        .list(&nodes, None, &ListParams::default().fields("spec.nope=1"))
        .await
        .expect_err("an unsupported field");
    assert_eq!(e.status().map(|s| s.code), Some(400), "{e}");
    assert_eq!(
        name(&c.get(&nodes, None, "n2").await.expect("get node")),
        "n2"
    );
}

fn cluster(name: &str) -> Value {
    json!({
        "apiVersion": "slipway.dev/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": name},
        "spec": {
            "version": "1.33.4",
            "infrastructure": {"provider": "sim", "region": "eu-west-1", "zones": ["eu-west-1a"]},
            "controlPlane": {"replicas": 1, "machineType": "m5.large"},
            "nodePools": [{"name": "general", "machineType": "m5.xlarge", "replicas": 1, "maxReplicas": 10}]
        }
    })
}

/// Merge, JSON and apply patches on the object; status through `/status` only.
pub async fn patches_and_status(f: Fixture) {
    let c = f.client.as_ref();
    let res = configmaps();
    let ns = Some("default");
    c.create(&res, ns, cm("p", json!({})), &PostParams::default())
        .await
        .expect("create");
    let merged = c
        .patch(
            &res,
            ns,
            "p",
            Subresource::Main,
            &Patch::Merge(json!({"data": {"m": "1"}})),
            &PatchParams::default(),
        )
        .await
        .expect("merge patch");
    assert_eq!(merged["data"], json!({"k": "v", "m": "1"}));
    let jsoned = c
        .patch(
            &res,
            ns,
            "p",
            Subresource::Main,
            &Patch::Json(json!([{"op": "remove", "path": "/data/k"}])),
            &PatchParams::default(),
        )
        .await
        .expect("json patch");
    assert_eq!(jsoned["data"], json!({"m": "1"}));
    let apply = json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "p"}, "data": {"m": "2"}});
    let e = c
        .patch(
            &res,
            ns,
            "p",
            Subresource::Main,
            &Patch::Apply(apply.clone()),
            &PatchParams::apply("other"),
        )
        .await
        .expect_err("apply conflicting with the update manager");
    assert_eq!(e.status().map(|s| s.code), Some(409), "{e}");
    let applied = c
        .patch(
            &res,
            ns,
            "p",
            Subresource::Main,
            &Patch::Apply(apply),
            &PatchParams::apply("other").force(),
        )
        .await
        .expect("forced apply");
    assert_eq!(applied["data"]["m"], "2");

    // Status: main-object writes ignore it, /status writes keep only it.
    let cl = clusters();
    c.create(&cl, ns, cluster("c1"), &PostParams::default())
        .await
        .expect("create cluster");
    let ignored = c
        .patch(
            &cl,
            ns,
            "c1",
            Subresource::Main,
            &Patch::Merge(json!({"status": {"observedGeneration": 7}})),
            &PatchParams::default(),
        )
        .await
        .expect("patch main with status");
    assert!(
        ignored.pointer("/status/observedGeneration").is_none(),
        "{ignored}"
    );
    let patched = c
        .patch(
            &cl,
            ns,
            "c1",
            Subresource::Status,
            &Patch::Merge(
                json!({"status": {"observedGeneration": 7}, "spec": {"version": "9.9.9"}}),
            ),
            &PatchParams::default(),
        )
        .await
        .expect("patch status");
    assert_eq!(
        patched.pointer("/status/observedGeneration"),
        Some(&json!(7))
    );
    assert_eq!(patched.pointer("/spec/version"), Some(&json!("1.33.4")));
    let mut again = Value::clone(&patched);
    again["status"]["observedGeneration"] = json!(8);
    let replaced = c
        .replace_status(&cl, ns, "c1", again, &PostParams::default())
        .await
        .expect("replace status");
    assert_eq!(
        replaced.pointer("/status/observedGeneration"),
        Some(&json!(8))
    );
}

/// Delete preconditions (uid, resourceVersion), finalizers (pending), and gone.
pub async fn delete_preconditions_and_finalizers(f: Fixture) {
    let c = f.client.as_ref();
    let res = configmaps();
    let ns = Some("default");
    let mut obj = cm("d", json!({}));
    obj["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let created = c
        .create(&res, ns, obj, &PostParams::default())
        .await
        .expect("create");
    let wrong_uid = DeleteParams {
        precondition_uid: Some("not-the-uid".into()),
        ..DeleteParams::default()
    };
    let e = c
        .delete(&res, ns, "d", &wrong_uid)
        .await
        .expect_err("wrong uid");
    assert_eq!(e.status().map(|s| s.code), Some(409), "{e}");
    let stale_rv = DeleteParams {
        precondition_resource_version: Some("1".into()),
        ..DeleteParams::default()
    };
    let e = c
        .delete(&res, ns, "d", &stale_rv)
        .await
        .expect_err("stale rv");
    assert_eq!(e.status().map(|s| s.code), Some(409), "{e}");

    let right = DeleteParams {
        precondition_uid: created
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        ..DeleteParams::default()
    };
    match c.delete(&res, ns, "d", &right).await.expect("delete") {
        Deleted::Pending(o) => assert!(o.pointer("/metadata/deletionTimestamp").is_some()),
        Deleted::Gone(o) => panic!("deleted despite a finalizer: {o}"),
    }
    c.patch(
        &res,
        ns,
        "d",
        Subresource::Main,
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        &PatchParams::default(),
    )
    .await
    .expect("remove finalizer");
    let e = c
        .get(&res, ns, "d")
        .await
        .expect_err("gone after finalizer");
    assert!(e.is_not_found(), "{e}");

    c.create(&res, ns, cm("e", json!({})), &PostParams::default())
        .await
        .expect("create");
    assert!(matches!(
        c.delete(&res, ns, "e", &DeleteParams::default())
            .await
            .expect("delete"),
        Deleted::Gone(_)
    ));
    let e = c
        .delete(&res, ns, "e", &DeleteParams::default())
        .await
        .expect_err("twice");
    assert!(e.is_not_found(), "{e}");
}

/// A watch from a list's resourceVersion sees Added/Modified/Deleted in order, resumes from
/// any event's resourceVersion, and gets bookmarks when it asks.
pub async fn watch_events_resume_and_bookmarks(f: Fixture) {
    let c = f.client.as_ref();
    let res = configmaps();
    let ns = Some("default");
    let list = c
        .list(&res, ns, &ListParams::default())
        .await
        .expect("list");
    let mut watch = c
        .watch(&res, ns, &WatchParams::from_version(&list.resource_version))
        .await
        .expect("watch");
    let created = c
        .create(&res, ns, cm("w", json!({})), &PostParams::default())
        .await
        .expect("create");
    let modified = c
        .patch(
            &res,
            ns,
            "w",
            Subresource::Main,
            &Patch::Merge(json!({"data": {"k": "v2"}})),
            &PatchParams::default(),
        )
        .await
        .expect("patch");
    c.delete(&res, ns, "w", &DeleteParams::default())
        .await
        .expect("delete");
    match next_change(&mut watch, "added").await {
        WatchEvent::Added(o) => assert_eq!(rv(&o), rv(&created)),
        other => panic!("expected Added, got {other:?}"),
    }
    match next_change(&mut watch, "modified").await {
        WatchEvent::Modified(o) => assert_eq!(o["data"]["k"], "v2"),
        other => panic!("expected Modified, got {other:?}"),
    }
    match next_change(&mut watch, "deleted").await {
        WatchEvent::Deleted(o) => assert_eq!(name(&o), "w"),
        other => panic!("expected Deleted, got {other:?}"),
    }
    // Resume after the modification: only the deletion follows.
    let mut resumed = c
        .watch(&res, ns, &WatchParams::from_version(&rv(&modified)))
        .await
        .expect("resume");
    assert!(matches!(
        next_change(&mut resumed, "deleted").await,
        WatchEvent::Deleted(_)
    ));

    let mut params = WatchParams::from_version(&rv(&modified));
    params.bookmarks = true;
    let mut with_bookmarks = c
        .watch(&res, ns, &params)
        .await
        .expect("watch with bookmarks");
    let mut got_bookmark = false;
    for _ in 0..5 {
        if let WatchEvent::Bookmark { resource_version } =
            next(&mut with_bookmarks, "a bookmark").await
        {
            assert!(!resource_version.is_empty());
            got_bookmark = true;
            break;
        }
    }
    assert!(got_bookmark, "no bookmark arrived");
}

/// Watching from a compacted resourceVersion is 410 Gone (at once or as an Error event).
pub async fn watch_from_compacted_version_is_gone(f: Fixture) {
    let c = f.client.as_ref();
    let res = configmaps();
    let ns = Some("default");
    let first = c
        .create(&res, ns, cm("g1", json!({})), &PostParams::default())
        .await
        .expect("create");
    for i in 0..3 {
        c.create(
            &res,
            ns,
            cm(&format!("g{}", i + 2), json!({})),
            &PostParams::default(),
        )
        .await
        .expect("create");
    }
    let latest = c
        .list(&res, ns, &ListParams::default())
        .await
        .expect("list");
    let latest: i64 = latest
        .resource_version
        .parse()
        .expect("numeric resourceVersion");
    f.registry.compact(latest).await.expect("compact");
    let old = rv(&first);
    match c.watch(&res, ns, &WatchParams::from_version(&old)).await {
        Err(e) => assert!(e.is_gone(), "{e}"),
        Ok(mut stream) => match next(&mut stream, "410").await {
            WatchEvent::Error(status) => assert_eq!(status.code, 410, "{status}"),
            other => panic!("expected a 410 Error event, got {other:?}"),
        },
    }
}

fn lease(holder: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": "leader"},
           "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}})
}

/// A fenced client writes while its lease names it, and every write (create, replace, patch,
/// delete) fails with `is_fenced` once the lease names someone else; unfenced writes and
/// reads carry on.
pub async fn fenced_writes_fail_after_takeover(f: Fixture) {
    let c = Arc::clone(&f.client);
    let res = configmaps();
    let ns = Some("default");
    let lease_v = c
        .create(&leases(), ns, lease("replica-a"), &PostParams::default())
        .await
        .expect("create lease");
    let fence = Fence {
        lease_namespace: "default".into(),
        lease_name: "leader".into(),
        holder: "replica-a".into(),
    };
    let fenced = c.fenced(fence.clone());
    assert_eq!(fenced.fence(), Some(&fence));
    assert_eq!(c.fence(), None);
    let obj = fenced
        .create(&res, ns, cm("f1", json!({})), &PostParams::default())
        .await
        .expect("fenced create while holding");
    // A renewal (same holder, new revision) does not fence.
    let mut renewed = Value::clone(&lease_v);
    renewed["spec"]["leaseDurationSeconds"] = json!(20);
    let renewed = c
        .replace(&leases(), ns, "leader", renewed, &PostParams::default())
        .await
        .expect("renew");
    fenced
        .patch(
            &res,
            ns,
            "f1",
            Subresource::Main,
            &Patch::Merge(json!({"data": {"k": "v2"}})),
            &PatchParams::default(),
        )
        .await
        .expect("fenced patch after a renewal");

    // Take over.
    let mut taken = Arc::unwrap_or_clone(renewed);
    taken["spec"]["holderIdentity"] = json!("replica-b");
    c.replace(&leases(), ns, "leader", taken, &PostParams::default())
        .await
        .expect("take over");

    let e = fenced
        .create(&res, ns, cm("f2", json!({})), &PostParams::default())
        .await
        .expect_err("fenced create after takeover");
    assert!(e.is_fenced(), "{e}");
    assert!(e.to_string().contains("replica-b"), "{e}");
    let e = fenced
        .replace(&res, ns, "f1", Value::clone(&obj), &PostParams::default())
        .await
        .expect_err("fenced replace");
    assert!(e.is_fenced(), "{e}");
    let e = fenced
        .patch(
            &res,
            ns,
            "f1",
            Subresource::Main,
            &Patch::Merge(json!({"data": {"k": "v3"}})),
            &PatchParams::default(),
        )
        .await
        .expect_err("fenced patch");
    assert!(e.is_fenced(), "{e}");
    let e = fenced
        .delete(&res, ns, "f1", &DeleteParams::default())
        .await
        .expect_err("fenced delete");
    assert!(e.is_fenced(), "{e}");
    // Nothing was written; reads through the fenced client still work.
    let now = fenced.get(&res, ns, "f1").await.expect("fenced read");
    assert_eq!(now["data"]["k"], "v2");
    assert!(c.get(&res, ns, "f2").await.expect_err("f2").is_not_found());
    // A fence on a lease that does not exist fences too.
    let nowhere = c.fenced(Fence {
        lease_name: "nope".into(),
        ..fence
    });
    let e = nowhere
        .create(&res, ns, cm("f3", json!({})), &PostParams::default())
        .await
        .expect_err("fence on a missing lease");
    assert!(e.is_fenced(), "{e}");
}

/// The typed facade: get_opt, list, create, replace, delete, watch over `ConfigMap`.
pub async fn typed_api(f: Fixture) {
    let api = Api::<ConfigMap>::namespaced(Arc::clone(&f.client), "default");
    assert!(api.get_opt("t").await.expect("get_opt").is_none());
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("t".into());
    cm.data = Some([("a".to_string(), "1".to_string())].into());
    let created = api
        .create(&PostParams::default(), &cm)
        .await
        .expect("create");
    assert!(created.metadata.resource_version.is_some());
    let mut changed = created.clone();
    changed.data = Some([("a".to_string(), "2".to_string())].into());
    let replaced = api
        .replace("t", &PostParams::default(), &changed)
        .await
        .expect("replace");
    assert_eq!(
        replaced
            .data
            .as_ref()
            .and_then(|d| d.get("a"))
            .map(String::as_str),
        Some("2")
    );
    let list = api.list(&ListParams::default()).await.expect("list");
    assert_eq!(list.items.len(), 1);
    let mut watch = api
        .watch(&WatchParams::from_version(&list.resource_version))
        .await
        .expect("watch");
    api.delete("t", &DeleteParams::default())
        .await
        .expect("delete");
    let ev = tokio::time::timeout(TIMEOUT, watch.next())
        .await
        .expect("event in time")
        .expect("stream open")
        .expect("event");
    match ev {
        crate::WatchEventOf::Deleted(k) => assert_eq!(k.metadata.name.as_deref(), Some("t")),
        other => panic!("expected Deleted, got {other:?}"),
    }
    assert!(api.get_opt("t").await.expect("get_opt").is_none());
}
