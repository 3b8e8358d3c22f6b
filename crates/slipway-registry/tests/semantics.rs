//! The registry's Kubernetes semantics, end to end over a SQLite store: create, update,
//! patch (merge, JSON, server-side apply), field validation and dry run, deletion with
//! finalizers, owner-reference garbage collection, namespace deletion, lists (selectors,
//! paging, consistent snapshots, exact resourceVersions) and watches (resume, selector
//! transitions, bookmarks, initial events, 410 Expired, many watchers).
//!
//! kube-apiserver is the reference: each test states what it would do.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use slipway_apimachinery::selector::{FieldSelector, LabelSelector};
use slipway_apimachinery::{ApiError, ResourceDef};
use slipway_registry::{
    DeleteOptions, Deleted, FieldValidation, ListParams, Patch, Propagation, Registry,
    RegistryConfig, Subresource, WatchEvent, WatchEventType, WatchParams, WatchStream,
    WriteOptions,
};
use slipway_store::Store;
use slipway_store::sqlite::SqliteStore;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// How long a test waits for something asynchronous (a watch event, the garbage collector)
/// before failing. Generous: the machine is shared; tests never assert on durations.
const PATIENCE: Duration = Duration::from_secs(20);

struct Env {
    reg: Arc<Registry>,
    cluster: Arc<ResourceDef>,
    cm: Arc<ResourceDef>,
    ns: Arc<ResourceDef>,
    _dir: tempfile::TempDir,
}

fn config() -> RegistryConfig {
    RegistryConfig {
        watch_window: 10_000,
        compaction_interval: None,
        gc_interval: Duration::from_millis(200),
        bookmark_interval: Duration::from_millis(200),
        cache_wait: Duration::from_secs(2),
        ..Default::default()
    }
}

async fn env() -> Env {
    env_with(config()).await
}

async fn env_with(config: RegistryConfig) -> Env {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("registry.db")).expect("open sqlite store"));
    let reg = Registry::start(store, slipway_api::resources(), config)
        .await
        .expect("registry starts");
    let cluster = reg
        .resource("slipway.dev", "v1alpha1", "clusters")
        .expect("clusters served");
    let cm = reg
        .resource("", "v1", "configmaps")
        .expect("configmaps served");
    let ns = reg
        .resource("", "v1", "namespaces")
        .expect("namespaces served");
    Env {
        reg,
        cluster,
        cm,
        ns,
        _dir: dir,
    }
}

fn opts() -> WriteOptions {
    WriteOptions::default()
}

fn manager(name: &str) -> WriteOptions {
    WriteOptions {
        field_manager: Some(name.into()),
        ..Default::default()
    }
}

fn cluster_obj(name: &str) -> Value {
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

fn cm_obj(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

fn cm_labeled(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
}

fn rv(obj: &Value) -> i64 {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no resourceVersion in {obj}"))
        .parse()
        .unwrap_or_else(|_| panic!("resourceVersion is not an integer in {obj}"))
}

fn rv_str(obj: &Value) -> String {
    rv(obj).to_string()
}

fn name_of(obj: &Value) -> String {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn uid_of(obj: &Value) -> String {
    obj.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .expect("uid")
        .to_string()
}

fn generation(obj: &Value) -> i64 {
    obj.pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("no generation in {obj}"))
}

fn expect_err<T: std::fmt::Debug>(
    result: Result<T, ApiError>,
    code: u16,
    reason: &str,
) -> ApiError {
    match result {
        Ok(v) => panic!("expected {code} {reason}, got success: {v:?}"),
        Err(e) => {
            assert_eq!(
                (e.code, e.reason),
                (code, reason),
                "unexpected error: {e:?}"
            );
            e
        }
    }
}

fn labels(text: &str) -> Option<LabelSelector> {
    Some(LabelSelector::parse(text).expect("label selector parses"))
}

fn fields(text: &str) -> Option<FieldSelector> {
    Some(
        FieldSelector::parse(text, &["metadata.name", "metadata.namespace"])
            .expect("field selector parses"),
    )
}

async fn create_ns(env: &Env, name: &str) -> Value {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    env.reg
        .create(&env.ns, None, ns, &opts())
        .await
        .expect("namespace created")
        .object
        .as_ref()
        .clone()
}

async fn create_cm(env: &Env, ns: &str, obj: Value) -> Value {
    env.reg
        .create(&env.cm, Some(ns), obj, &opts())
        .await
        .expect("configmap created")
        .object
        .as_ref()
        .clone()
}

async fn create_cluster(env: &Env, ns: &str, obj: Value) -> Value {
    env.reg
        .create(&env.cluster, Some(ns), obj, &opts())
        .await
        .expect("cluster created")
        .object
        .as_ref()
        .clone()
}

async fn exists(env: &Env, def: &ResourceDef, ns: Option<&str>, name: &str) -> bool {
    match env.reg.get(def, ns, name).await {
        Ok(_) => true,
        Err(e) if e.code == 404 => false,
        Err(e) => panic!("get {name}: {e:?}"),
    }
}

/// Poll `check` until it returns `Some`, failing the test after [`PATIENCE`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Wait until the watch cache reflects `revision` (what the background loops and the
/// namespace admission check read).
async fn cache_caught_up(env: &Env, revision: i64) {
    eventually("watch cache catches up", || async {
        (env.reg.cache_revision() >= revision).then_some(())
    })
    .await;
}

async fn next_event(stream: &mut WatchStream) -> WatchEvent {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("no watch event in time")
        .expect("watch ended unexpectedly")
}

/// The next event that is not a bookmark.
async fn next_change(stream: &mut WatchStream) -> WatchEvent {
    loop {
        let ev = next_event(stream).await;
        if ev.type_ != WatchEventType::Bookmark {
            return ev;
        }
    }
}

fn summary(ev: &WatchEvent) -> (WatchEventType, String) {
    (ev.type_, name_of(&ev.object))
}

fn watch_from(rv: &str) -> WatchParams {
    WatchParams {
        resource_version: Some(rv.to_string()),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Create
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_stamps_identity_and_generation() {
    let env = env().await;
    let w = env
        .reg
        .create(&env.cluster, Some("default"), cluster_obj("c1"), &opts())
        .await
        .unwrap();
    assert!(w.created);
    let obj = &w.object.as_ref().clone();
    let uid = uid_of(obj);
    assert!(uuid::Uuid::parse_str(&uid).is_ok(), "uid is a UUID: {uid}");
    let ts = obj
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .expect("creationTimestamp");
    assert!(
        ts.parse::<jiff::Timestamp>().is_ok(),
        "creationTimestamp is RFC 3339: {ts}"
    );
    assert!(rv(obj) > 0);
    assert_eq!(generation(obj), 1);
    assert_eq!(obj.pointer("/metadata/namespace"), Some(&json!("default")));

    let got = env
        .reg
        .get(&env.cluster, Some("default"), "c1")
        .await
        .unwrap();
    assert_eq!(uid_of(&got), uid);
    assert_eq!(
        rv(&got),
        rv(obj),
        "get returns the resourceVersion create reported"
    );
    assert_eq!(generation(&got), 1);

    // A second object gets another uid and a later resourceVersion.
    let other = create_cluster(&env, "default", cluster_obj("c2")).await;
    assert_ne!(uid_of(&other), uid);
    assert!(rv(&other) > rv(obj));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_ignores_client_identity_fields() {
    let env = env().await;
    let mut obj = cluster_obj("c1");
    obj["metadata"]["uid"] = json!("not-mine");
    obj["metadata"]["resourceVersion"] = json!("12345");
    obj["metadata"]["generation"] = json!(7);
    obj["metadata"]["deletionTimestamp"] = json!("2020-01-01T00:00:00Z");
    let created = create_cluster(&env, "default", obj).await;
    assert_ne!(uid_of(&created), "not-mine");
    assert_ne!(rv(&created), 12345);
    assert_eq!(generation(&created), 1);
    assert!(created.pointer("/metadata/deletionTimestamp").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_drops_status_of_a_kind_with_status_subresource() {
    let env = env().await;
    let mut obj = cluster_obj("c1");
    obj["status"] = json!({"nodes": 5, "observedGeneration": 1});
    let created = create_cluster(&env, "default", obj).await;
    assert!(
        created.get("status").is_none(),
        "status kept on create: {created}"
    );
    let got = env
        .reg
        .get(&env.cluster, Some("default"), "c1")
        .await
        .unwrap();
    assert!(
        got.get("status").is_none(),
        "status stored on create: {got}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_existing_name_is_409_already_exists() {
    let env = env().await;
    create_cm(&env, "default", cm_obj("a")).await;
    let e = expect_err(
        env.reg
            .create(&env.cm, Some("default"), cm_obj("a"), &opts())
            .await,
        409,
        "AlreadyExists",
    );
    assert!(e.message.contains("\"a\" already exists"), "{}", e.message);
    // The same name in another namespace is another object.
    create_ns(&env, "other").await;
    create_cm(&env, "other", cm_obj("a")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_in_missing_namespace_is_404() {
    let env = env().await;
    let e = expect_err(
        env.reg
            .create(&env.cm, Some("nowhere"), cm_obj("a"), &opts())
            .await,
        404,
        "NotFound",
    );
    assert!(e.message.contains("nowhere"), "{}", e.message);
    let list = env
        .reg
        .list(&env.cm, Some("nowhere"), &ListParams::default())
        .await
        .unwrap();
    assert!(list.items.is_empty(), "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_with_mismatched_namespace_is_400() {
    let env = env().await;
    create_ns(&env, "other").await;
    let mut obj = cm_obj("a");
    obj["metadata"]["namespace"] = json!("other");
    expect_err(
        env.reg.create(&env.cm, Some("default"), obj, &opts()).await,
        400,
        "BadRequest",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_with_generate_name() {
    let env = env().await;
    let obj =
        || json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}});
    let a = create_cm(&env, "default", obj()).await;
    let b = create_cm(&env, "default", obj()).await;
    let (na, nb) = (name_of(&a), name_of(&b));
    assert!(na.starts_with("gen-") && na.len() > "gen-".len(), "{na}");
    assert!(nb.starts_with("gen-") && nb.len() > "gen-".len(), "{nb}");
    assert_ne!(na, nb);
    assert!(exists(&env, &env.cm, Some("default"), &na).await);
    assert!(exists(&env, &env.cm, Some("default"), &nb).await);
    // Without name or generateName the object is invalid.
    let anonymous = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}});
    expect_err(
        env.reg
            .create(&env.cm, Some("default"), anonymous, &opts())
            .await,
        422,
        "Invalid",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_invalid_cluster_is_422_with_field_causes_and_writes_nothing() {
    let env = env().await;
    let mut obj = cluster_obj("c1");
    obj["spec"]["controlPlane"]["replicas"] = json!(2);
    let e = expect_err(
        env.reg
            .create(&env.cluster, Some("default"), obj, &opts())
            .await,
        422,
        "Invalid",
    );
    assert!(
        e.causes
            .iter()
            .any(|c| c.field.contains("spec.controlPlane.replicas")),
        "cause names the field: {e:?}"
    );
    assert!(!exists(&env, &env.cluster, Some("default"), "c1").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_wrong_kind_is_400() {
    let env = env().await;
    let mut obj = cm_obj("a");
    obj["kind"] = json!("Secret");
    expect_err(
        env.reg.create(&env.cm, Some("default"), obj, &opts()).await,
        400,
        "BadRequest",
    );
}

// ---------------------------------------------------------------------------------------------
// Update
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_with_stale_resource_version_is_409() {
    let env = env().await;
    let v1 = create_cm(&env, "default", cm_obj("a")).await;
    let mut first = v1.clone();
    first["data"]["k"] = json!("first");
    let v2 = env
        .reg
        .update(
            &env.cm,
            Some("default"),
            "a",
            first,
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert!(rv(&v2) > rv(&v1));

    // A writer still holding v1 loses.
    let mut stale = v1.clone();
    stale["data"]["k"] = json!("stale");
    let e = expect_err(
        env.reg
            .update(
                &env.cm,
                Some("default"),
                "a",
                stale,
                Subresource::Main,
                &opts(),
            )
            .await,
        409,
        "Conflict",
    );
    assert!(
        e.message.contains("the object has been modified"),
        "{}",
        e.message
    );
    let got = env.reg.get(&env.cm, Some("default"), "a").await.unwrap();
    assert_eq!(got["data"]["k"], json!("first"));
    assert_eq!(rv(&got), rv(&v2));

    // With the current resourceVersion it goes through.
    let mut fresh = got.clone();
    fresh["data"]["k"] = json!("fresh");
    let v3 = env
        .reg
        .update(
            &env.cm,
            Some("default"),
            "a",
            fresh,
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert_eq!(v3["data"]["k"], json!("fresh"));
    assert!(rv(&v3) > rv(&v2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_without_resource_version_is_unconditional() {
    let env = env().await;
    let v1 = create_cm(&env, "default", cm_obj("a")).await;
    let mut other = v1.clone();
    other["data"]["k"] = json!("other");
    env.reg
        .update(
            &env.cm,
            Some("default"),
            "a",
            other,
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap();

    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "mine"}});
    let w = env
        .reg
        .update(
            &env.cm,
            Some("default"),
            "a",
            body,
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap();
    assert!(!w.created);
    assert_eq!(w.object["data"]["k"], json!("mine"));
    assert_eq!(
        uid_of(&w.object),
        uid_of(&v1),
        "identity survives a replace"
    );
    assert_eq!(
        w.object["metadata"]["creationTimestamp"],
        v1["metadata"]["creationTimestamp"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_of_missing_object_is_404() {
    let env = env().await;
    expect_err(
        env.reg
            .update(
                &env.cm,
                Some("default"),
                "ghost",
                cm_obj("ghost"),
                Subresource::Main,
                &opts(),
            )
            .await,
        404,
        "NotFound",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_with_mismatched_name_is_400() {
    let env = env().await;
    create_cm(&env, "default", cm_obj("a")).await;
    expect_err(
        env.reg
            .update(
                &env.cm,
                Some("default"),
                "a",
                cm_obj("b"),
                Subresource::Main,
                &opts(),
            )
            .await,
        400,
        "BadRequest",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_moves_only_with_the_spec() {
    let env = env().await;
    let c = create_cluster(&env, "default", cluster_obj("c1")).await;
    assert_eq!(generation(&c), 1);

    // Labels and annotations: metadata, no bump.
    let mut relabeled = c.clone();
    relabeled["metadata"]["labels"] = json!({"team": "payments"});
    relabeled["metadata"]["annotations"] = json!({"note": "hello"});
    let c = env
        .reg
        .update(
            &env.cluster,
            Some("default"),
            "c1",
            relabeled,
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert_eq!(c["metadata"]["labels"]["team"], json!("payments"));
    assert_eq!(generation(&c), 1, "label change bumped generation");

    // Status through /status: no bump.
    let mut with_status = c.clone();
    with_status["status"] = json!({"nodes": 3, "observedGeneration": 1});
    let c = env
        .reg
        .update(
            &env.cluster,
            Some("default"),
            "c1",
            with_status,
            Subresource::Status,
            &opts(),
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert_eq!(c["status"]["nodes"], json!(3));
    assert_eq!(generation(&c), 1, "status change bumped generation");

    // Spec: bump.
    let mut scaled = c.clone();
    scaled["spec"]["nodePools"][0]["replicas"] = json!(2);
    let c = env
        .reg
        .update(
            &env.cluster,
            Some("default"),
            "c1",
            scaled,
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert_eq!(generation(&c), 2, "spec change did not bump generation");

    // Spec again through a merge patch: bump once more.
    let patch = Patch::Merge(
        json!({"spec": {"nodePools": [{"name": "general", "machineType": "m5.xlarge", "replicas": 3}]}}),
    );
    let c = env
        .reg
        .patch(
            &env.cluster,
            Some("default"),
            "c1",
            patch,
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert_eq!(generation(&c), 3);

    // A client cannot set generation itself.
    let mut forged = c.clone();
    forged["metadata"]["generation"] = json!(42);
    forged["metadata"]["labels"]["team"] = json!("other");
    let c = env
        .reg
        .update(
            &env.cluster,
            Some("default"),
            "c1",
            forged,
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert_eq!(generation(&c), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_subresource_splits_writes() {
    let env = env().await;
    let c = create_cluster(&env, "default", cluster_obj("c1")).await;
    let mut s = c.clone();
    s["status"] = json!({"nodes": 3});
    let c = env
        .reg
        .update(
            &env.cluster,
            Some("default"),
            "c1",
            s,
            Subresource::Status,
            &opts(),
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert_eq!(c["status"]["nodes"], json!(3));

    // The main endpoint ignores status but keeps the spec change.
    let mut main = c.clone();
    main["status"] = json!({"nodes": 9});
    main["spec"]["nodePools"][0]["replicas"] = json!(2);
    let c = env
        .reg
        .update(
            &env.cluster,
            Some("default"),
            "c1",
            main,
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert_eq!(
        c["status"]["nodes"],
        json!(3),
        "main endpoint changed status"
    );
    assert_eq!(c["spec"]["nodePools"][0]["replicas"], json!(2));

    // The main endpoint cannot remove status either.
    let mut no_status = c.clone();
    no_status.as_object_mut().unwrap().remove("status");
    no_status["metadata"]["labels"] = json!({"x": "y"});
    let c = env
        .reg
        .update(
            &env.cluster,
            Some("default"),
            "c1",
            no_status,
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert_eq!(
        c["status"]["nodes"],
        json!(3),
        "main endpoint removed status"
    );

    // /status ignores spec (and metadata other than what status writers may touch).
    let mut st = c.clone();
    st["spec"]["nodePools"][0]["replicas"] = json!(7);
    st["status"] = json!({"nodes": 4});
    let gen_before = generation(&c);
    let c = env
        .reg
        .update(
            &env.cluster,
            Some("default"),
            "c1",
            st,
            Subresource::Status,
            &opts(),
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert_eq!(
        c["spec"]["nodePools"][0]["replicas"],
        json!(2),
        "/status changed spec"
    );
    assert_eq!(c["status"]["nodes"], json!(4));
    assert_eq!(generation(&c), gen_before);

    let got = env
        .reg
        .get(&env.cluster, Some("default"), "c1")
        .await
        .unwrap();
    assert_eq!(got["spec"]["nodePools"][0]["replicas"], json!(2));
    assert_eq!(got["status"]["nodes"], json!(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_subresource_ignores_label_changes() {
    // kube-apiserver's status strategy resets metadata (except managedFields) to the stored
    // object: a label sent to /status is not written.
    let env = env().await;
    let c = create_cluster(&env, "default", cluster_obj("c1")).await;
    let mut st = c.clone();
    st["metadata"]["labels"] = json!({"sneaky": "yes"});
    st["status"] = json!({"nodes": 1});
    let c = env
        .reg
        .update(
            &env.cluster,
            Some("default"),
            "c1",
            st,
            Subresource::Status,
            &opts(),
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert!(
        c.pointer("/metadata/labels/sneaky").is_none(),
        "/status wrote a label: {c}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noop_update_keeps_resource_version() {
    let env = env().await;
    let c = create_cluster(&env, "default", cluster_obj("c1")).await;
    let got = env
        .reg
        .get(&env.cluster, Some("default"), "c1")
        .await
        .unwrap();
    let w = env
        .reg
        .update(
            &env.cluster,
            Some("default"),
            "c1",
            got.clone(),
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap();
    assert_eq!(rv(&w.object), rv(&c), "a no-op update wrote a new revision");
    // The same without a precondition, and through a no-op merge patch.
    let mut unconditional = got.clone();
    unconditional["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let w = env
        .reg
        .update(
            &env.cluster,
            Some("default"),
            "c1",
            unconditional,
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap();
    assert_eq!(rv(&w.object), rv(&c));
    let w = env
        .reg
        .patch(
            &env.cluster,
            Some("default"),
            "c1",
            Patch::Merge(json!({"spec": {"version": "1.33.4"}})),
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap();
    assert_eq!(rv(&w.object), rv(&c));
    let got = env
        .reg
        .get(&env.cluster, Some("default"), "c1")
        .await
        .unwrap();
    assert_eq!(rv(&got), rv(&c));
}

// ---------------------------------------------------------------------------------------------
// Patch
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_patch() {
    let env = env().await;
    let mut obj = cm_obj("a");
    obj["data"] = json!({"keep": "1", "drop": "2"});
    let v1 = create_cm(&env, "default", obj).await;
    let patch = Patch::Merge(
        json!({"metadata": {"labels": {"app": "web"}}, "data": {"drop": null, "new": "3"}}),
    );
    let v2 = env
        .reg
        .patch(
            &env.cm,
            Some("default"),
            "a",
            patch,
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert_eq!(v2["data"], json!({"keep": "1", "new": "3"}));
    assert_eq!(v2["metadata"]["labels"], json!({"app": "web"}));
    assert!(rv(&v2) > rv(&v1));

    // A resourceVersion in a merge patch is a precondition.
    let stale =
        Patch::Merge(json!({"metadata": {"resourceVersion": rv_str(&v1)}, "data": {"keep": "x"}}));
    expect_err(
        env.reg
            .patch(
                &env.cm,
                Some("default"),
                "a",
                stale,
                Subresource::Main,
                &opts(),
            )
            .await,
        409,
        "Conflict",
    );
    let ok =
        Patch::Merge(json!({"metadata": {"resourceVersion": rv_str(&v2)}, "data": {"keep": "x"}}));
    let v3 = env
        .reg
        .patch(
            &env.cm,
            Some("default"),
            "a",
            ok,
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert_eq!(v3["data"]["keep"], json!("x"));

    expect_err(
        env.reg
            .patch(
                &env.cm,
                Some("default"),
                "ghost",
                Patch::Merge(json!({})),
                Subresource::Main,
                &opts(),
            )
            .await,
        404,
        "NotFound",
    );
}

/// Patches start from the watch cache's copy, which may lag the store: a write right after
/// another must still see it (kube-apiserver's GuaranteedUpdate re-reads in the same cases).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_right_after_writes_act_on_the_latest_object() {
    let env = env().await;
    create_cm(&env, "default", cm_obj("a")).await;
    let patch = |value: Value| {
        let reg = Arc::clone(&env.reg);
        let cm = Arc::clone(&env.cm);
        async move {
            reg.patch(
                &cm,
                Some("default"),
                "a",
                Patch::Merge(value),
                Subresource::Main,
                &opts(),
            )
            .await
            .expect("patch")
            .object
            .as_ref()
            .clone()
        }
    };
    let mut last = patch(json!({"metadata": {"labels": {"x": "1"}}})).await;
    for i in 0..30 {
        // x=2 then x=1: the second changes the object even if the cache still shows x=1.
        for x in ["2", "1"] {
            let next = patch(json!({"metadata": {"labels": {"x": x}}})).await;
            assert_eq!(next["metadata"]["labels"]["x"], json!(x), "round {i}");
            assert!(rv(&next) > rv(&last), "round {i}: x={x} was not written");
            last = next;
        }
        // A precondition on the version just written holds, whatever the cache shows.
        let next = patch(
            json!({"metadata": {"resourceVersion": rv_str(&last)}, "data": {"i": i.to_string()}}),
        )
        .await;
        assert!(rv(&next) > rv(&last), "round {i}");
        last = next;
    }
    // Concurrent patches of distinct fields all land.
    let all = futures::future::join_all(
        (0..16).map(|i| patch(json!({"metadata": {"annotations": {format!("a{i}"): "y"}}}))),
    )
    .await;
    let newest = all.iter().max_by_key(|o| rv(o)).expect("patched");
    assert_eq!(
        newest["metadata"]["annotations"]
            .as_object()
            .map(serde_json::Map::len),
        Some(16)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_patch_validates_the_result() {
    let env = env().await;
    create_cluster(&env, "default", cluster_obj("c1")).await;
    let bad = Patch::Merge(json!({"spec": {"controlPlane": {"replicas": 4}}}));
    expect_err(
        env.reg
            .patch(
                &env.cluster,
                Some("default"),
                "c1",
                bad,
                Subresource::Main,
                &opts(),
            )
            .await,
        422,
        "Invalid",
    );
    let got = env
        .reg
        .get(&env.cluster, Some("default"), "c1")
        .await
        .unwrap();
    assert_eq!(got["spec"]["controlPlane"]["replicas"], json!(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_patch() {
    let env = env().await;
    create_cm(&env, "default", cm_obj("a")).await;
    let patch = Patch::Json(json!([
        {"op": "test", "path": "/data/k", "value": "v"},
        {"op": "replace", "path": "/data/k", "value": "w"},
        {"op": "add", "path": "/metadata/labels", "value": {"app": "web"}},
        {"op": "add", "path": "/data/n", "value": "1"}
    ]));
    let v = env
        .reg
        .patch(
            &env.cm,
            Some("default"),
            "a",
            patch,
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert_eq!(v["data"], json!({"k": "w", "n": "1"}));
    assert_eq!(v["metadata"]["labels"]["app"], json!("web"));

    // A failing test operation fails the whole patch and writes nothing.
    let failing = Patch::Json(json!([
        {"op": "replace", "path": "/data/n", "value": "2"},
        {"op": "test", "path": "/data/k", "value": "not-w"}
    ]));
    expect_err(
        env.reg
            .patch(
                &env.cm,
                Some("default"),
                "a",
                failing,
                Subresource::Main,
                &opts(),
            )
            .await,
        422,
        "Invalid",
    );
    let got = env.reg.get(&env.cm, Some("default"), "a").await.unwrap();
    assert_eq!(got["data"], json!({"k": "w", "n": "1"}));
    assert_eq!(rv(&got), rv(&v));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_patch_on_status_subresource_only_changes_status() {
    let env = env().await;
    create_cluster(&env, "default", cluster_obj("c1")).await;
    let patch = Patch::Json(json!([
        {"op": "add", "path": "/status", "value": {"nodes": 2}},
        {"op": "replace", "path": "/spec/version", "value": "1.33.5"}
    ]));
    let c = env
        .reg
        .patch(
            &env.cluster,
            Some("default"),
            "c1",
            patch,
            Subresource::Status,
            &opts(),
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert_eq!(c["status"]["nodes"], json!(2));
    assert_eq!(c["spec"]["version"], json!("1.33.4"));
    assert_eq!(generation(&c), 1);
}

fn cm_apply(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap_or_default().to_string(),
                        e["operation"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The managedFields entry of `manager` as text (its fieldsV1).
fn owned_by(obj: &Value, manager: &str) -> String {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .and_then(|entries| entries.iter().find(|e| e["manager"] == json!(manager)))
        .map(|e| e["fieldsV1"].to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_records_managed_fields() {
    let env = env().await;
    let w = env
        .reg
        .create(
            &env.cm,
            Some("default"),
            cm_obj("a"),
            &manager("kubectl-create"),
        )
        .await
        .unwrap();
    assert_eq!(
        managers(&w.object),
        vec![("kubectl-create".to_string(), "Update".to_string())]
    );
    assert!(
        owned_by(&w.object, "kubectl-create").contains("f:data"),
        "{}",
        w.object.as_ref().clone()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_create_update_conflict_force() {
    let env = env().await;
    // Create by apply.
    let alice = manager("alice");
    let w = env
        .reg
        .patch(
            &env.cm,
            Some("default"),
            "a",
            Patch::Apply(cm_apply("a", json!({"x": "1"}))),
            Subresource::Main,
            &alice,
        )
        .await
        .unwrap();
    assert!(w.created, "apply of a missing object creates it");
    let v1 = w.object.as_ref().clone();
    assert_eq!(v1["data"], json!({"x": "1"}));
    assert!(!uid_of(&v1).is_empty());
    assert_eq!(
        managers(&v1),
        vec![("alice".to_string(), "Apply".to_string())]
    );
    assert!(owned_by(&v1, "alice").contains("f:x"));
    let got = env.reg.get(&env.cm, Some("default"), "a").await.unwrap();
    assert_eq!(
        managers(&got),
        vec![("alice".to_string(), "Apply".to_string())],
        "stored managedFields"
    );

    // Re-applying the same configuration changes nothing.
    let again = env
        .reg
        .patch(
            &env.cm,
            Some("default"),
            "a",
            Patch::Apply(cm_apply("a", json!({"x": "1"}))),
            Subresource::Main,
            &alice,
        )
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(rv(&again.object), rv(&got), "an idempotent apply wrote");

    // Update by apply: alice adds a field.
    let v2 = env
        .reg
        .patch(
            &env.cm,
            Some("default"),
            "a",
            Patch::Apply(cm_apply("a", json!({"x": "1", "y": "2"}))),
            Subresource::Main,
            &alice,
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert_eq!(v2["data"], json!({"x": "1", "y": "2"}));

    // Bob sets a field alice owns to another value: conflict, nothing written.
    let bob = manager("bob");
    let e = expect_err(
        env.reg
            .patch(
                &env.cm,
                Some("default"),
                "a",
                Patch::Apply(cm_apply("a", json!({"x": "bob"}))),
                Subresource::Main,
                &bob,
            )
            .await,
        409,
        "Conflict",
    );
    assert!(
        e.message.contains("alice"),
        "conflict names the owner: {}",
        e.message
    );
    assert!(
        e.causes.iter().any(|c| c.field.contains("data.x")),
        "conflict names the field: {e:?}"
    );
    let got = env.reg.get(&env.cm, Some("default"), "a").await.unwrap();
    assert_eq!(got["data"]["x"], json!("1"));
    assert_eq!(rv(&got), rv(&v2));

    // Bob applying the same value is shared ownership, not a conflict.
    env.reg
        .patch(
            &env.cm,
            Some("default"),
            "a",
            Patch::Apply(cm_apply("a", json!({"y": "2"}))),
            Subresource::Main,
            &bob,
        )
        .await
        .unwrap();

    // Forced: bob takes x.
    let forced = WriteOptions {
        force: true,
        ..manager("bob")
    };
    let v3 = env
        .reg
        .patch(
            &env.cm,
            Some("default"),
            "a",
            Patch::Apply(cm_apply("a", json!({"x": "bob", "y": "2"}))),
            Subresource::Main,
            &forced,
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert_eq!(v3["data"]["x"], json!("bob"));
    assert!(owned_by(&v3, "bob").contains("f:x"), "{v3}");
    assert!(
        !owned_by(&v3, "alice").contains("f:x"),
        "alice still owns x: {v3}"
    );

    // Alice stops applying y: bob still owns it, so it stays.
    let v4 = env
        .reg
        .patch(
            &env.cm,
            Some("default"),
            "a",
            Patch::Apply(cm_apply("a", json!({}))),
            Subresource::Main,
            &alice,
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert_eq!(v4["data"]["y"], json!("2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_removes_fields_the_applier_stops_owning() {
    let env = env().await;
    let alice = manager("alice");
    let apply = |data: Value| Patch::Apply(cm_apply("a", data));
    env.reg
        .patch(
            &env.cm,
            Some("default"),
            "a",
            apply(json!({"x": "1", "y": "2"})),
            Subresource::Main,
            &alice,
        )
        .await
        .unwrap();
    let v = env
        .reg
        .patch(
            &env.cm,
            Some("default"),
            "a",
            apply(json!({"x": "1"})),
            Subresource::Main,
            &alice,
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert_eq!(
        v["data"],
        json!({"x": "1"}),
        "y was owned by alice alone and should be removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_conflicts_with_an_update_manager() {
    let env = env().await;
    let alice = manager("alice");
    env.reg
        .patch(
            &env.cm,
            Some("default"),
            "a",
            Patch::Apply(cm_apply("a", json!({"x": "1"}))),
            Subresource::Main,
            &alice,
        )
        .await
        .unwrap();
    // An imperative edit takes x.
    let edited = env
        .reg
        .patch(
            &env.cm,
            Some("default"),
            "a",
            Patch::Merge(json!({"data": {"x": "edited"}})),
            Subresource::Main,
            &manager("kubectl-edit"),
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert!(
        managers(&edited).contains(&("kubectl-edit".to_string(), "Update".to_string())),
        "{edited}"
    );
    // Alice's apply now conflicts with kubectl-edit.
    let e = expect_err(
        env.reg
            .patch(
                &env.cm,
                Some("default"),
                "a",
                Patch::Apply(cm_apply("a", json!({"x": "1"}))),
                Subresource::Main,
                &alice,
            )
            .await,
        409,
        "Conflict",
    );
    assert!(e.message.contains("kubectl-edit"), "{}", e.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_creates_a_cluster_with_identity_and_validation() {
    let env = env().await;
    let ops = manager("platform");
    let w = env
        .reg
        .patch(
            &env.cluster,
            Some("default"),
            "c1",
            Patch::Apply(cluster_obj("c1")),
            Subresource::Main,
            &ops,
        )
        .await
        .unwrap();
    assert!(w.created);
    assert_eq!(generation(&w.object), 1);
    assert!(!uid_of(&w.object).is_empty());
    assert!(w.object.pointer("/metadata/creationTimestamp").is_some());
    assert_eq!(
        managers(&w.object),
        vec![("platform".to_string(), "Apply".to_string())]
    );

    // An apply that changes the spec bumps generation.
    let mut cfg = cluster_obj("c1");
    cfg["spec"]["nodePools"][0]["replicas"] = json!(2);
    let v = env
        .reg
        .patch(
            &env.cluster,
            Some("default"),
            "c1",
            Patch::Apply(cfg),
            Subresource::Main,
            &ops,
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert_eq!(generation(&v), 2);

    // An invalid apply is rejected and writes nothing.
    let mut bad = cluster_obj("c1");
    bad["spec"]["controlPlane"]["replicas"] = json!(2);
    expect_err(
        env.reg
            .patch(
                &env.cluster,
                Some("default"),
                "c1",
                Patch::Apply(bad),
                Subresource::Main,
                &ops,
            )
            .await,
        422,
        "Invalid",
    );
    // An invalid apply of a new object creates nothing.
    let mut bad_new = cluster_obj("c2");
    bad_new["spec"]["controlPlane"]["replicas"] = json!(2);
    expect_err(
        env.reg
            .patch(
                &env.cluster,
                Some("default"),
                "c2",
                Patch::Apply(bad_new),
                Subresource::Main,
                &ops,
            )
            .await,
        422,
        "Invalid",
    );
    assert!(!exists(&env, &env.cluster, Some("default"), "c2").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_requires_a_field_manager() {
    let env = env().await;
    expect_err(
        env.reg
            .patch(
                &env.cm,
                Some("default"),
                "a",
                Patch::Apply(cm_apply("a", json!({}))),
                Subresource::Main,
                &opts(),
            )
            .await,
        400,
        "BadRequest",
    );
    assert!(!exists(&env, &env.cm, Some("default"), "a").await);
}

// ---------------------------------------------------------------------------------------------
// Field validation and dry run
// ---------------------------------------------------------------------------------------------

fn cluster_with_unknown_field() -> Value {
    let mut obj = cluster_obj("c1");
    obj["spec"]["infrastructure"]["bogus"] = json!("x");
    obj
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_field_validation_rejects_unknown_fields() {
    let env = env().await;
    let strict = WriteOptions {
        field_validation: FieldValidation::Strict,
        ..Default::default()
    };
    let e = expect_err(
        env.reg
            .create(
                &env.cluster,
                Some("default"),
                cluster_with_unknown_field(),
                &strict,
            )
            .await,
        400,
        "BadRequest",
    );
    assert!(
        e.message
            .contains("unknown field \"spec.infrastructure.bogus\""),
        "{}",
        e.message
    );
    assert!(!exists(&env, &env.cluster, Some("default"), "c1").await);

    // On update too.
    create_cluster(&env, "default", cluster_obj("c1")).await;
    let patch = Patch::Merge(
        json!({"spec": {"nodePools": [{"name": "general", "machineType": "m5.xlarge", "replicas": 1, "colour": "red"}]}}),
    );
    let e = expect_err(
        env.reg
            .patch(
                &env.cluster,
                Some("default"),
                "c1",
                patch,
                Subresource::Main,
                &strict,
            )
            .await,
        400,
        "BadRequest",
    );
    assert!(
        e.message.contains("spec.nodePools[0].colour"),
        "{}",
        e.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warn_field_validation_drops_and_warns() {
    let env = env().await;
    let warn = WriteOptions {
        field_validation: FieldValidation::Warn,
        ..Default::default()
    };
    let w = env
        .reg
        .create(
            &env.cluster,
            Some("default"),
            cluster_with_unknown_field(),
            &warn,
        )
        .await
        .unwrap();
    assert!(
        w.warnings
            .iter()
            .any(|m| m.contains("unknown field \"spec.infrastructure.bogus\"")),
        "warnings: {:?}",
        w.warnings
    );
    assert!(w.object.pointer("/spec/infrastructure/bogus").is_none());
    let got = env
        .reg
        .get(&env.cluster, Some("default"), "c1")
        .await
        .unwrap();
    assert!(
        got.pointer("/spec/infrastructure/bogus").is_none(),
        "unknown field stored: {got}"
    );
    // Warn is the default.
    let mut obj = cm_obj("a");
    obj["bogus"] = json!(1);
    let w = env
        .reg
        .create(&env.cm, Some("default"), obj, &opts())
        .await
        .unwrap();
    assert!(
        w.warnings.iter().any(|m| m.contains("\"bogus\"")),
        "{:?}",
        w.warnings
    );
    assert!(w.object.get("bogus").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_field_validation_drops_silently() {
    let env = env().await;
    let ignore = WriteOptions {
        field_validation: FieldValidation::Ignore,
        ..Default::default()
    };
    let w = env
        .reg
        .create(
            &env.cluster,
            Some("default"),
            cluster_with_unknown_field(),
            &ignore,
        )
        .await
        .unwrap();
    assert!(w.warnings.is_empty(), "{:?}", w.warnings);
    let got = env
        .reg
        .get(&env.cluster, Some("default"), "c1")
        .await
        .unwrap();
    assert!(got.pointer("/spec/infrastructure/bogus").is_none());
}

#[test]
fn field_validation_parses_query_values() {
    assert_eq!(FieldValidation::parse(None).unwrap(), FieldValidation::Warn);
    assert_eq!(
        FieldValidation::parse(Some("Strict")).unwrap(),
        FieldValidation::Strict
    );
    assert_eq!(
        FieldValidation::parse(Some("Ignore")).unwrap(),
        FieldValidation::Ignore
    );
    assert_eq!(
        FieldValidation::parse(Some("strict")).unwrap_err().code,
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_writes_nothing() {
    let env = env().await;
    let dry = WriteOptions {
        dry_run: true,
        ..Default::default()
    };
    let before = env.reg.store().current_revision().await.unwrap();

    let w = env
        .reg
        .create(&env.cluster, Some("default"), cluster_obj("c1"), &dry)
        .await
        .unwrap();
    assert!(w.created);
    assert_eq!(generation(&w.object), 1, "dry run answers as if written");
    assert!(!exists(&env, &env.cluster, Some("default"), "c1").await);
    // A dry-run create is still validated.
    let mut bad = cluster_obj("bad");
    bad["spec"]["controlPlane"]["replicas"] = json!(2);
    expect_err(
        env.reg
            .create(&env.cluster, Some("default"), bad, &dry)
            .await,
        422,
        "Invalid",
    );
    // And still refused in a missing namespace.
    expect_err(
        env.reg
            .create(&env.cm, Some("nowhere"), cm_obj("a"), &dry)
            .await,
        404,
        "NotFound",
    );
    assert_eq!(
        env.reg.store().current_revision().await.unwrap(),
        before,
        "dry-run create wrote"
    );

    let c = create_cluster(&env, "default", cluster_obj("c1")).await;
    let mut changed = c.clone();
    changed["spec"]["nodePools"][0]["replicas"] = json!(5);
    let w = env
        .reg
        .update(
            &env.cluster,
            Some("default"),
            "c1",
            changed,
            Subresource::Main,
            &dry,
        )
        .await
        .unwrap();
    assert_eq!(w.object["spec"]["nodePools"][0]["replicas"], json!(5));
    let w = env
        .reg
        .patch(
            &env.cluster,
            Some("default"),
            "c1",
            Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
            Subresource::Main,
            &dry,
        )
        .await
        .unwrap();
    assert_eq!(w.object["metadata"]["labels"]["a"], json!("b"));
    let w = env
        .reg
        .patch(
            &env.cluster,
            Some("default"),
            "c2",
            Patch::Apply(cluster_obj("c2")),
            Subresource::Main,
            &WriteOptions {
                dry_run: true,
                ..manager("m")
            },
        )
        .await
        .unwrap();
    assert!(w.created);
    let d = env
        .reg
        .delete(
            &env.cluster,
            Some("default"),
            "c1",
            &DeleteOptions {
                dry_run: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(matches!(d, Deleted::Gone(_)));

    let got = env
        .reg
        .get(&env.cluster, Some("default"), "c1")
        .await
        .unwrap();
    assert_eq!(rv(&got), rv(&c), "a dry run changed the stored object");
    assert_eq!(got["spec"]["nodePools"][0]["replicas"], json!(1));
    assert!(
        !exists(&env, &env.cluster, Some("default"), "c2").await,
        "dry-run apply created"
    );
    assert_eq!(
        env.reg.store().current_revision().await.unwrap(),
        rv(&c),
        "a dry run wrote"
    );
}

// ---------------------------------------------------------------------------------------------
// Delete and finalizers
// ---------------------------------------------------------------------------------------------

const HOLD: &str = "slipway.dev/hold";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_without_finalizers_is_immediate() {
    let env = env().await;
    let c = create_cm(&env, "default", cm_obj("a")).await;
    let d = env
        .reg
        .delete(&env.cm, Some("default"), "a", &DeleteOptions::default())
        .await
        .unwrap();
    let Deleted::Gone(last) = d else {
        panic!("expected Gone, got {d:?}")
    };
    assert_eq!(last["data"]["k"], json!("v"));
    assert!(
        rv(&last) > rv(&c),
        "the last state carries the deletion's revision"
    );
    assert!(!exists(&env, &env.cm, Some("default"), "a").await);
    expect_err(
        env.reg
            .delete(&env.cm, Some("default"), "a", &DeleteOptions::default())
            .await,
        404,
        "NotFound",
    );
    // The name can be reused, with a new uid.
    let again = create_cm(&env, "default", cm_obj("a")).await;
    assert_ne!(uid_of(&again), uid_of(&c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_preconditions() {
    let env = env().await;
    let c = create_cm(&env, "default", cm_obj("a")).await;
    let wrong_uid = DeleteOptions {
        precondition_uid: Some("nope".into()),
        ..Default::default()
    };
    expect_err(
        env.reg
            .delete(&env.cm, Some("default"), "a", &wrong_uid)
            .await,
        409,
        "Conflict",
    );
    let stale = DeleteOptions {
        precondition_resource_version: Some((rv(&c) - 1).to_string()),
        ..Default::default()
    };
    expect_err(
        env.reg.delete(&env.cm, Some("default"), "a", &stale).await,
        409,
        "Conflict",
    );
    assert!(exists(&env, &env.cm, Some("default"), "a").await);
    let right = DeleteOptions {
        precondition_uid: Some(uid_of(&c)),
        precondition_resource_version: Some(rv_str(&c)),
        ..Default::default()
    };
    env.reg
        .delete(&env.cm, Some("default"), "a", &right)
        .await
        .unwrap();
    assert!(!exists(&env, &env.cm, Some("default"), "a").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_gate_deletion() {
    let env = env().await;
    let mut obj = cm_obj("a");
    obj["metadata"]["finalizers"] = json!([HOLD]);
    create_cm(&env, "default", obj).await;

    let d = env
        .reg
        .delete(&env.cm, Some("default"), "a", &DeleteOptions::default())
        .await
        .unwrap();
    let Deleted::Pending(marked) = d else {
        panic!("expected Pending, got {d:?}")
    };
    let ts = marked
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .expect("deletionTimestamp");
    assert!(ts.parse::<jiff::Timestamp>().is_ok(), "{ts}");
    let got = env.reg.get(&env.cm, Some("default"), "a").await.unwrap();
    assert_eq!(got["metadata"]["deletionTimestamp"], json!(ts));
    assert_eq!(got["metadata"]["finalizers"], json!([HOLD]));

    // Deleting again changes nothing: same timestamp, same revision.
    let d2 = env
        .reg
        .delete(&env.cm, Some("default"), "a", &DeleteOptions::default())
        .await
        .unwrap();
    assert!(matches!(d2, Deleted::Pending(_)));
    assert_eq!(d2.object()["metadata"]["deletionTimestamp"], json!(ts));
    assert_eq!(rv(d2.object()), rv(&got));

    // Other changes are still allowed while it waits, and it stays.
    let p = Patch::Merge(json!({"data": {"k": "changed"}}));
    let v = env
        .reg
        .patch(&env.cm, Some("default"), "a", p, Subresource::Main, &opts())
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert_eq!(
        v["metadata"]["deletionTimestamp"],
        json!(ts),
        "an update cleared deletionTimestamp"
    );

    // Removing the last finalizer deletes it.
    let p = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    env.reg
        .patch(&env.cm, Some("default"), "a", p, Subresource::Main, &opts())
        .await
        .unwrap();
    assert!(
        !exists(&env, &env.cm, Some("default"), "a").await,
        "still there after its last finalizer went"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_cannot_be_added_while_deleting() {
    let env = env().await;
    let mut obj = cm_obj("a");
    obj["metadata"]["finalizers"] = json!([HOLD]);
    create_cm(&env, "default", obj).await;
    env.reg
        .delete(&env.cm, Some("default"), "a", &DeleteOptions::default())
        .await
        .unwrap();

    let p = Patch::Merge(json!({"metadata": {"finalizers": [HOLD, "slipway.dev/another"]}}));
    let e = expect_err(
        env.reg
            .patch(&env.cm, Some("default"), "a", p, Subresource::Main, &opts())
            .await,
        422,
        "Invalid",
    );
    assert!(
        e.causes
            .iter()
            .any(|c| c.field.contains("metadata.finalizers")),
        "{e:?}"
    );
    let got = env.reg.get(&env.cm, Some("default"), "a").await.unwrap();
    assert_eq!(got["metadata"]["finalizers"], json!([HOLD]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_timestamp_cannot_be_set_or_cleared_by_update() {
    let env = env().await;
    let c = create_cm(&env, "default", cm_obj("a")).await;
    let mut forged = c.clone();
    forged["metadata"]["deletionTimestamp"] = json!("2020-01-01T00:00:00Z");
    let v = env
        .reg
        .update(
            &env.cm,
            Some("default"),
            "a",
            forged,
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert!(
        v.pointer("/metadata/deletionTimestamp").is_none(),
        "client set deletionTimestamp"
    );

    let mut obj = cm_obj("b");
    obj["metadata"]["finalizers"] = json!([HOLD]);
    create_cm(&env, "default", obj).await;
    env.reg
        .delete(&env.cm, Some("default"), "b", &DeleteOptions::default())
        .await
        .unwrap();
    let p = Patch::Merge(json!({"metadata": {"deletionTimestamp": null}}));
    let v = env
        .reg
        .patch(&env.cm, Some("default"), "b", p, Subresource::Main, &opts())
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert!(
        v.pointer("/metadata/deletionTimestamp").is_some(),
        "client cleared deletionTimestamp"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_collection_deletes_what_the_selector_selects() {
    let env = env().await;
    for (name, app) in [("a", "web"), ("b", "web"), ("c", "db")] {
        create_cm(&env, "default", cm_labeled(name, json!({"app": app}))).await;
    }
    let params = ListParams {
        label_selector: labels("app=web"),
        ..Default::default()
    };
    let deleted = env
        .reg
        .delete_collection(&env.cm, Some("default"), &params, &DeleteOptions::default())
        .await
        .unwrap();
    let mut names: Vec<String> = deleted.iter().map(name_of).collect();
    names.sort();
    assert_eq!(names, ["a", "b"]);
    assert!(!exists(&env, &env.cm, Some("default"), "a").await);
    assert!(!exists(&env, &env.cm, Some("default"), "b").await);
    assert!(exists(&env, &env.cm, Some("default"), "c").await);
}

// ---------------------------------------------------------------------------------------------
// Owner references and garbage collection
// ---------------------------------------------------------------------------------------------

fn owned_cm(name: &str, owner: &Value) -> Value {
    let mut obj = cm_obj(name);
    obj["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "slipway.dev/v1alpha1",
        "kind": "Cluster",
        "name": name_of(owner),
        "uid": uid_of(owner),
        "controller": true,
        "blockOwnerDeletion": true
    }]);
    obj
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependents_are_collected_after_their_owner_is_deleted() {
    let env = env().await;
    let owner = create_cluster(&env, "default", cluster_obj("c1")).await;
    create_cm(&env, "default", owned_cm("dep", &owner)).await;
    create_cm(&env, "default", cm_obj("bystander")).await;

    let d = env
        .reg
        .delete(
            &env.cluster,
            Some("default"),
            "c1",
            &DeleteOptions::default(),
        )
        .await
        .unwrap();
    assert!(
        matches!(d, Deleted::Gone(_)),
        "background deletion removes the owner at once"
    );
    eventually("dependent collected", || async {
        (!exists(&env, &env.cm, Some("default"), "dep").await).then_some(())
    })
    .await;
    assert!(exists(&env, &env.cm, Some("default"), "bystander").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_with_a_live_owner_keeps_it_and_loses_only_the_dead_reference() {
    let env = env().await;
    let c1 = create_cluster(&env, "default", cluster_obj("c1")).await;
    let c2 = create_cluster(&env, "default", cluster_obj("c2")).await;
    let mut obj = owned_cm("dep", &c1);
    let second = owned_cm("x", &c2)["metadata"]["ownerReferences"][0].clone();
    obj["metadata"]["ownerReferences"].as_array_mut().unwrap()[0]["controller"] = json!(false);
    obj["metadata"]["ownerReferences"]
        .as_array_mut()
        .unwrap()
        .push(second);
    create_cm(&env, "default", obj).await;

    env.reg
        .delete(
            &env.cluster,
            Some("default"),
            "c1",
            &DeleteOptions::default(),
        )
        .await
        .unwrap();
    let remaining = eventually("dead owner reference removed", || async {
        let got = env
            .reg
            .get(&env.cm, Some("default"), "dep")
            .await
            .expect("dependent with a live owner was deleted");
        let refs = got
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        (refs.len() == 1).then_some(refs)
    })
    .await;
    assert_eq!(remaining[0]["uid"], json!(uid_of(&c2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_propagation_keeps_dependents_and_removes_the_reference() {
    let env = env().await;
    let owner = create_cluster(&env, "default", cluster_obj("c1")).await;
    create_cm(&env, "default", owned_cm("dep", &owner)).await;

    let orphan = DeleteOptions {
        propagation: Some(Propagation::Orphan),
        ..Default::default()
    };
    let d = env
        .reg
        .delete(&env.cluster, Some("default"), "c1", &orphan)
        .await
        .unwrap();
    match &d {
        // The owner waits for the orphan finalizer (kube-apiserver answers 200 with the object).
        Deleted::Pending(obj) => {
            assert!(
                meta_finalizers(obj).contains(&"orphan".to_string()),
                "{obj}"
            );
        }
        Deleted::Gone(_) => panic!("orphan deletion should wait for the orphan finalizer"),
    }
    eventually("owner deleted", || async {
        (!exists(&env, &env.cluster, Some("default"), "c1").await).then_some(())
    })
    .await;
    let dep = env
        .reg
        .get(&env.cm, Some("default"), "dep")
        .await
        .expect("orphaned dependent kept");
    assert!(
        dep.pointer("/metadata/ownerReferences")
            .is_none_or(|r| r.as_array().is_some_and(Vec::is_empty)),
        "the reference to the deleted owner remains: {dep}"
    );
    // And it stays: later collector passes leave it alone.
    let later = create_cm(&env, "default", cm_obj("tick")).await;
    cache_caught_up(&env, rv(&later)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(exists(&env, &env.cm, Some("default"), "dep").await);
}

fn meta_finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_propagation_deletes_dependents_first() {
    let env = env().await;
    let owner = create_cluster(&env, "default", cluster_obj("c1")).await;
    // The dependent has its own finalizer, so it stays visible in "deleting" state.
    let mut dep = owned_cm("dep", &owner);
    dep["metadata"]["finalizers"] = json!([HOLD]);
    create_cm(&env, "default", dep).await;

    let fg = DeleteOptions {
        propagation: Some(Propagation::Foreground),
        ..Default::default()
    };
    let d = env
        .reg
        .delete(&env.cluster, Some("default"), "c1", &fg)
        .await
        .unwrap();
    let Deleted::Pending(marked) = d else {
        panic!("foreground deletion should wait for dependents")
    };
    assert!(
        meta_finalizers(&marked).contains(&"foregroundDeletion".to_string()),
        "{marked}"
    );
    assert!(marked.pointer("/metadata/deletionTimestamp").is_some());

    // The collector deletes the dependent (it waits for its own finalizer) ...
    eventually(
        "dependent marked for deletion, its foreground finalizer done",
        || async {
            let dep = env
                .reg
                .get(&env.cm, Some("default"), "dep")
                .await
                .expect("dependent exists");
            (dep.pointer("/metadata/deletionTimestamp").is_some()
                && meta_finalizers(&dep) == [HOLD])
            .then_some(())
        },
    )
    .await;
    // ... while the owner waits for it.
    let owner_now = env
        .reg
        .get(&env.cluster, Some("default"), "c1")
        .await
        .expect("owner is kept while a dependent exists");
    assert!(meta_finalizers(&owner_now).contains(&"foregroundDeletion".to_string()));

    // Once the dependent is gone, the owner goes.
    let p = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    env.reg
        .patch(
            &env.cm,
            Some("default"),
            "dep",
            p,
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap();
    assert!(!exists(&env, &env.cm, Some("default"), "dep").await);
    eventually("owner deleted after its dependents", || async {
        (!exists(&env, &env.cluster, Some("default"), "c1").await).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_propagation_without_dependents_deletes_the_owner() {
    let env = env().await;
    create_cluster(&env, "default", cluster_obj("c1")).await;
    let fg = DeleteOptions {
        propagation: Some(Propagation::Foreground),
        ..Default::default()
    };
    env.reg
        .delete(&env.cluster, Some("default"), "c1", &fg)
        .await
        .unwrap();
    eventually("owner deleted", || async {
        (!exists(&env, &env.cluster, Some("default"), "c1").await).then_some(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Namespaces
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_namespace_exists() {
    let env = env().await;
    let ns = env.reg.get(&env.ns, None, "default").await.unwrap();
    assert_eq!(name_of(&ns), "default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_deletion_removes_its_content_then_itself() {
    let env = env().await;
    create_ns(&env, "team-a").await;
    create_ns(&env, "team-b").await;
    create_cm(&env, "team-a", cm_obj("one")).await;
    create_cm(&env, "team-a", cm_obj("two")).await;
    create_cluster(&env, "team-a", cluster_obj("c1")).await;
    let mut held = cm_obj("held");
    held["metadata"]["finalizers"] = json!([HOLD]);
    create_cm(&env, "team-a", held).await;
    create_cm(&env, "team-b", cm_obj("one")).await;

    let d = env
        .reg
        .delete(&env.ns, None, "team-a", &DeleteOptions::default())
        .await
        .unwrap();
    let Deleted::Pending(marked) = d else {
        panic!("a namespace is deleted gracefully")
    };
    assert!(marked.pointer("/metadata/deletionTimestamp").is_some());
    assert_eq!(marked.pointer("/status/phase"), Some(&json!("Terminating")));

    // Nothing new may be created inside it (once the registry has seen the deletion).
    cache_caught_up(&env, rv(&marked)).await;
    let e = expect_err(
        env.reg
            .create(&env.cm, Some("team-a"), cm_obj("late"), &opts())
            .await,
        403,
        "Forbidden",
    );
    assert!(e.message.contains("being terminated"), "{}", e.message);

    // Its content goes; what has a finalizer waits for it, and so does the namespace.
    eventually("namespace content deleted", || async {
        let left = env
            .reg
            .list(&env.cm, Some("team-a"), &ListParams::default())
            .await
            .unwrap();
        let clusters = env
            .reg
            .list(&env.cluster, Some("team-a"), &ListParams::default())
            .await
            .unwrap();
        (clusters.items.is_empty() && left.items.len() == 1).then_some(())
    })
    .await;
    let held = env.reg.get(&env.cm, Some("team-a"), "held").await.unwrap();
    assert!(held.pointer("/metadata/deletionTimestamp").is_some());
    assert!(
        exists(&env, &env.ns, None, "team-a").await,
        "namespace removed while not empty"
    );

    let p = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    env.reg
        .patch(
            &env.cm,
            Some("team-a"),
            "held",
            p,
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap();
    eventually("namespace removed", || async {
        (!exists(&env, &env.ns, None, "team-a").await).then_some(())
    })
    .await;
    // The other namespace is untouched.
    assert!(exists(&env, &env.cm, Some("team-b"), "one").await);
    assert!(exists(&env, &env.ns, None, "team-b").await);
    // The name can be used again.
    create_ns(&env, "team-a").await;
    create_cm(&env, "team-a", cm_obj("fresh")).await;
}

// ---------------------------------------------------------------------------------------------
// List
// ---------------------------------------------------------------------------------------------

fn names(items: &[Arc<Value>]) -> Vec<String> {
    items.iter().map(|o| name_of(o)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_with_label_and_field_selectors() {
    let env = env().await;
    create_ns(&env, "other").await;
    create_cm(
        &env,
        "default",
        cm_labeled("a", json!({"env": "prod", "tier": "web"})),
    )
    .await;
    create_cm(
        &env,
        "default",
        cm_labeled("b", json!({"env": "dev", "tier": "web"})),
    )
    .await;
    create_cm(&env, "default", cm_labeled("c", json!({"env": "prod"}))).await;
    create_cm(&env, "other", cm_labeled("d", json!({"env": "prod"}))).await;

    let list = |ns: Option<&'static str>, params: ListParams| {
        let env = &env;
        async move { names(&env.reg.list(&env.cm, ns, &params).await.unwrap().items) }
    };
    assert_eq!(
        list(Some("default"), ListParams::default()).await,
        ["a", "b", "c"]
    );
    assert_eq!(
        list(
            Some("default"),
            ListParams {
                label_selector: labels("env=prod"),
                ..Default::default()
            }
        )
        .await,
        ["a", "c"]
    );
    assert_eq!(
        list(
            Some("default"),
            ListParams {
                label_selector: labels("env in (prod,dev),tier"),
                ..Default::default()
            }
        )
        .await,
        ["a", "b"]
    );
    assert_eq!(
        list(
            Some("default"),
            ListParams {
                label_selector: labels("!tier"),
                ..Default::default()
            }
        )
        .await,
        ["c"]
    );
    assert_eq!(
        list(
            Some("default"),
            ListParams {
                label_selector: labels("env!=prod"),
                ..Default::default()
            }
        )
        .await,
        ["b"]
    );
    // Across namespaces.
    let mut all = list(
        None,
        ListParams {
            label_selector: labels("env=prod"),
            ..Default::default()
        },
    )
    .await;
    all.sort();
    assert_eq!(all, ["a", "c", "d"]);
    // Field selectors.
    assert_eq!(
        list(
            Some("default"),
            ListParams {
                field_selector: fields("metadata.name=b"),
                ..Default::default()
            }
        )
        .await,
        ["b"]
    );
    assert_eq!(
        list(
            None,
            ListParams {
                field_selector: fields("metadata.namespace=other"),
                ..Default::default()
            }
        )
        .await,
        ["d"]
    );
    assert_eq!(
        list(
            Some("default"),
            ListParams {
                label_selector: labels("env=prod"),
                field_selector: fields("metadata.name!=a"),
                ..Default::default()
            }
        )
        .await,
        ["c"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_reflects_a_write_that_was_just_acknowledged() {
    let env = env().await;
    for i in 0..20 {
        let w = create_cm(&env, "default", cm_obj(&format!("cm-{i:02}"))).await;
        let list = env
            .reg
            .list(&env.cm, Some("default"), &ListParams::default())
            .await
            .unwrap();
        assert_eq!(list.items.len(), i + 1, "list missed a created object");
        assert!(list.resource_version >= rv(&w));
    }
}

async fn paged(env: &Env, ns: &str, limit: usize, base: ListParams) -> (Vec<Arc<Value>>, Vec<i64>) {
    let mut items = Vec::new();
    let mut revisions = Vec::new();
    let mut params = ListParams {
        limit: Some(limit),
        ..base
    };
    for _ in 0..1000 {
        let page = env
            .reg
            .list(&env.cm, Some(ns), &params)
            .await
            .expect("list page");
        assert!(
            page.items.len() <= limit,
            "page of {} with limit {limit}",
            page.items.len()
        );
        revisions.push(page.resource_version);
        items.extend(page.items);
        match page.continue_token {
            Some(token) => params.continue_token = Some(token),
            None => return (items, revisions),
        }
    }
    panic!("paging never ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_returns_every_object_exactly_once() {
    let env = env().await;
    create_ns(&env, "paging").await;
    create_ns(&env, "paging-2").await; // a namespace whose prefix extends the first one's
    let mut expected = Vec::new();
    for i in 0..25 {
        let name = format!("cm-{i:02}");
        let labels = json!({"parity": if i % 2 == 0 { "even" } else { "odd" }});
        create_cm(&env, "paging", cm_labeled(&name, labels)).await;
        expected.push(name);
    }
    create_cm(&env, "paging-2", cm_obj("outsider")).await;

    for limit in [1, 7, 25, 26, 100] {
        let (items, revisions) = paged(&env, "paging", limit, ListParams::default()).await;
        assert_eq!(names(&items), expected, "limit {limit}");
        assert!(
            revisions.windows(2).all(|w| w[0] == w[1]),
            "pages at different revisions: {revisions:?}"
        );
    }
    let (items, _) = paged(
        &env,
        "paging",
        7,
        ListParams {
            label_selector: labels("parity=even"),
            ..Default::default()
        },
    )
    .await;
    let evens: Vec<String> = expected.iter().step_by(2).cloned().collect();
    assert_eq!(names(&items), evens);
    // A full page that happens to end at the last object.
    let first = env
        .reg
        .list(
            &env.cm,
            Some("paging"),
            &ListParams {
                limit: Some(25),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(first.items.len(), 25);
    assert!(
        first.continue_token.is_none(),
        "a continue token after the last object"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_is_a_consistent_snapshot_while_writes_happen() {
    let env = env().await;
    create_ns(&env, "snap").await;
    for i in 0..20 {
        create_cm(&env, "snap", cm_obj(&format!("cm-{i:02}"))).await;
    }
    let first = env
        .reg
        .list(
            &env.cm,
            Some("snap"),
            &ListParams {
                limit: Some(5),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let snapshot_rv = first.resource_version;
    assert_eq!(
        names(&first.items),
        ["cm-00", "cm-01", "cm-02", "cm-03", "cm-04"]
    );

    // Writes between pages, all in the part not read yet.
    env.reg
        .delete(&env.cm, Some("snap"), "cm-10", &DeleteOptions::default())
        .await
        .unwrap();
    env.reg
        .patch(
            &env.cm,
            Some("snap"),
            "cm-12",
            Patch::Merge(json!({"data": {"k": "changed"}})),
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap();
    create_cm(&env, "snap", cm_obj("cm-15a")).await;
    create_cm(&env, "snap", cm_obj("cm-99")).await;

    let mut items = first.items.clone();
    let mut token = first.continue_token.clone();
    while let Some(t) = token {
        let params = ListParams {
            limit: Some(5),
            continue_token: Some(t),
            ..Default::default()
        };
        let page = env.reg.list(&env.cm, Some("snap"), &params).await.unwrap();
        assert_eq!(
            page.resource_version, snapshot_rv,
            "a later page is not at the first page's revision"
        );
        // Interleave more writes.
        create_cm(&env, "snap", cm_obj(&format!("cm-50-{}", items.len()))).await;
        items.extend(page.items);
        token = page.continue_token;
    }
    let expected: Vec<String> = (0..20).map(|i| format!("cm-{i:02}")).collect();
    assert_eq!(
        names(&items),
        expected,
        "the pages are not the snapshot of the first page"
    );
    let cm12 = items.iter().find(|o| name_of(o) == "cm-12").unwrap();
    assert_eq!(
        cm12["data"]["k"],
        json!("v"),
        "a later page shows a change made after the first page"
    );
    assert!(items.iter().all(|o| rv(o) <= snapshot_rv));

    // A new list sees the current state.
    let (now, _) = paged(&env, "snap", 5, ListParams::default()).await;
    let now = names(&now);
    assert!(now.contains(&"cm-15a".to_string()) && now.contains(&"cm-99".to_string()));
    assert!(!now.contains(&"cm-10".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_at_an_exact_older_revision() {
    let env = env().await;
    let a1 = create_cm(&env, "default", cm_obj("a")).await;
    let then = rv(&a1);
    create_cm(&env, "default", cm_obj("b")).await;
    env.reg
        .patch(
            &env.cm,
            Some("default"),
            "a",
            Patch::Merge(json!({"data": {"k": "new"}})),
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap();

    let exact = ListParams {
        resource_version: Some(then.to_string()),
        resource_version_match: Some("Exact".into()),
        ..Default::default()
    };
    let list = env
        .reg
        .list(&env.cm, Some("default"), &exact)
        .await
        .unwrap();
    assert_eq!(list.resource_version, then);
    assert_eq!(names(&list.items), ["a"]);
    assert_eq!(list.items[0]["data"]["k"], json!("v"));
    assert_eq!(rv(&list.items[0]), then);

    // Exact with paging stays at that revision.
    let paged_exact = ListParams {
        limit: Some(1),
        ..exact.clone()
    };
    let page = env
        .reg
        .list(&env.cm, Some("default"), &paged_exact)
        .await
        .unwrap();
    assert_eq!(page.resource_version, then);
    assert_eq!(names(&page.items), ["a"]);

    // The current state, for contrast.
    let now = env
        .reg
        .list(&env.cm, Some("default"), &ListParams::default())
        .await
        .unwrap();
    assert_eq!(names(&now.items), ["a", "b"]);
    assert!(now.resource_version > then);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_parameter_errors() {
    let env = env().await;
    create_cm(&env, "default", cm_obj("a")).await;
    let no_rv = ListParams {
        resource_version_match: Some("Exact".into()),
        ..Default::default()
    };
    expect_err(
        env.reg.list(&env.cm, Some("default"), &no_rv).await,
        400,
        "BadRequest",
    );
    let bad_match = ListParams {
        resource_version: Some("1".into()),
        resource_version_match: Some("Sometime".into()),
        ..Default::default()
    };
    expect_err(
        env.reg.list(&env.cm, Some("default"), &bad_match).await,
        400,
        "BadRequest",
    );
    let bad_token = ListParams {
        limit: Some(1),
        continue_token: Some("not-a-token".into()),
        ..Default::default()
    };
    expect_err(
        env.reg.list(&env.cm, Some("default"), &bad_token).await,
        400,
        "BadRequest",
    );
    let bad_rv = ListParams {
        resource_version: Some("abc".into()),
        ..Default::default()
    };
    expect_err(
        env.reg.list(&env.cm, Some("default"), &bad_rv).await,
        400,
        "BadRequest",
    );
    // A resourceVersion from the future: the cache never gets there (504, as upstream).
    let future = ListParams {
        resource_version: Some("999999".into()),
        ..Default::default()
    };
    expect_err(
        env.reg.list(&env.cm, Some("default"), &future).await,
        504,
        "Timeout",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_token_is_bound_to_its_prefix() {
    // A token from one namespace's list must not page through another's.
    let env = env().await;
    create_ns(&env, "one").await;
    create_ns(&env, "two").await;
    for i in 0..3 {
        create_cm(&env, "one", cm_obj(&format!("a{i}"))).await;
        create_cm(&env, "two", cm_obj(&format!("b{i}"))).await;
    }
    let page = env
        .reg
        .list(
            &env.cm,
            Some("one"),
            &ListParams {
                limit: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let token = page.continue_token.expect("more pages");
    let misuse = ListParams {
        limit: Some(1),
        continue_token: Some(token),
        ..Default::default()
    };
    expect_err(
        env.reg.list(&env.cm, Some("two"), &misuse).await,
        400,
        "BadRequest",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_continue_token_is_410() {
    let env = env().await;
    for i in 0..4 {
        create_cm(&env, "default", cm_obj(&format!("cm-{i}"))).await;
    }
    let page = env
        .reg
        .list(
            &env.cm,
            Some("default"),
            &ListParams {
                limit: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let token = page.continue_token.expect("more pages");
    let later = create_cm(&env, "default", cm_obj("later")).await;
    env.reg.compact(rv(&later)).await.unwrap();
    let params = ListParams {
        limit: Some(2),
        continue_token: Some(token),
        ..Default::default()
    };
    expect_err(
        env.reg.list(&env.cm, Some("default"), &params).await,
        410,
        "Expired",
    );
    // Exact at a compacted revision too.
    let exact = ListParams {
        resource_version: Some(page.resource_version.to_string()),
        resource_version_match: Some("Exact".into()),
        ..Default::default()
    };
    expect_err(
        env.reg.list(&env.cm, Some("default"), &exact).await,
        410,
        "Expired",
    );
}

// ---------------------------------------------------------------------------------------------
// Watch
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_empty_starts_with_the_current_state() {
    let env = env().await;
    create_ns(&env, "w").await;
    create_cm(&env, "w", cm_obj("a")).await;
    create_cm(&env, "w", cm_obj("b")).await;
    create_cm(&env, "default", cm_obj("elsewhere")).await;

    let mut stream = env
        .reg
        .watch(&env.cm, Some("w"), WatchParams::default())
        .await
        .unwrap();
    let first = next_event(&mut stream).await;
    let second = next_event(&mut stream).await;
    let mut initial = vec![summary(&first), summary(&second)];
    initial.sort_by(|x, y| x.1.cmp(&y.1));
    assert_eq!(
        initial,
        [
            (WatchEventType::Added, "a".into()),
            (WatchEventType::Added, "b".into())
        ]
    );

    let c = create_cm(&env, "w", cm_obj("c")).await;
    let ev = next_event(&mut stream).await;
    assert_eq!(summary(&ev), (WatchEventType::Added, "c".into()));
    assert_eq!(rv(&ev.object), rv(&c));

    let a2 = env
        .reg
        .patch(
            &env.cm,
            Some("w"),
            "a",
            Patch::Merge(json!({"data": {"k": "2"}})),
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    let ev = next_event(&mut stream).await;
    assert_eq!(summary(&ev), (WatchEventType::Modified, "a".into()));
    assert_eq!(ev.object["data"]["k"], json!("2"));
    assert_eq!(rv(&ev.object), rv(&a2));

    let d = env
        .reg
        .delete(&env.cm, Some("w"), "b", &DeleteOptions::default())
        .await
        .unwrap();
    let ev = next_event(&mut stream).await;
    assert_eq!(summary(&ev), (WatchEventType::Deleted, "b".into()));
    assert_eq!(
        rv(&ev.object),
        rv(d.object()),
        "DELETED carries the deletion's revision"
    );
    assert_eq!(
        ev.object["data"]["k"],
        json!("v"),
        "DELETED carries the last state"
    );

    // The JSON handed to the wire is the object.
    let wire: Value = serde_json::from_slice(&ev.object_json()).unwrap();
    assert_eq!(wire, *ev.object);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_zero_also_starts_with_the_current_state() {
    let env = env().await;
    create_cm(&env, "default", cm_obj("a")).await;
    let mut stream = env
        .reg
        .watch(&env.cm, Some("default"), watch_from("0"))
        .await
        .unwrap();
    assert_eq!(
        summary(&next_event(&mut stream).await),
        (WatchEventType::Added, "a".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_a_resource_version_sees_only_later_events() {
    let env = env().await;
    let a = create_cm(&env, "default", cm_obj("a")).await;
    create_cm(&env, "default", cm_obj("b")).await;
    env.reg
        .patch(
            &env.cm,
            Some("default"),
            "a",
            Patch::Merge(json!({"data": {"k": "2"}})),
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap();

    let mut stream = env
        .reg
        .watch(&env.cm, Some("default"), watch_from(&rv_str(&a)))
        .await
        .unwrap();
    assert_eq!(
        summary(&next_event(&mut stream).await),
        (WatchEventType::Added, "b".into())
    );
    let ev = next_event(&mut stream).await;
    assert_eq!(summary(&ev), (WatchEventType::Modified, "a".into()));
    assert_eq!(ev.object["data"]["k"], json!("2"));
    create_cm(&env, "default", cm_obj("c")).await;
    assert_eq!(
        summary(&next_event(&mut stream).await),
        (WatchEventType::Added, "c".into())
    );

    // From the latest revision: nothing old, only what comes next.
    let latest = env.reg.store().current_revision().await.unwrap();
    let mut stream = env
        .reg
        .watch(&env.cm, Some("default"), watch_from(&latest.to_string()))
        .await
        .unwrap();
    create_cm(&env, "default", cm_obj("d")).await;
    assert_eq!(
        summary(&next_event(&mut stream).await),
        (WatchEventType::Added, "d".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_across_namespaces_and_kinds_is_filtered() {
    let env = env().await;
    create_ns(&env, "x").await;
    let start = env
        .reg
        .store()
        .current_revision()
        .await
        .unwrap()
        .to_string();
    let mut all_cms = env
        .reg
        .watch(&env.cm, None, watch_from(&start))
        .await
        .unwrap();
    let mut clusters = env
        .reg
        .watch(&env.cluster, Some("x"), watch_from(&start))
        .await
        .unwrap();
    create_cm(&env, "default", cm_obj("a")).await;
    create_cluster(&env, "default", cluster_obj("c0")).await;
    create_cm(&env, "x", cm_obj("b")).await;
    create_cluster(&env, "x", cluster_obj("c1")).await;
    assert_eq!(
        summary(&next_event(&mut all_cms).await),
        (WatchEventType::Added, "a".into())
    );
    assert_eq!(
        summary(&next_event(&mut all_cms).await),
        (WatchEventType::Added, "b".into())
    );
    assert_eq!(
        summary(&next_event(&mut clusters).await),
        (WatchEventType::Added, "c1".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_selector_transitions() {
    let env = env().await;
    let start = env
        .reg
        .store()
        .current_revision()
        .await
        .unwrap()
        .to_string();
    let params = WatchParams {
        label_selector: labels("app=x"),
        resource_version: Some(start),
        ..Default::default()
    };
    let mut stream = env
        .reg
        .watch(&env.cm, Some("default"), params)
        .await
        .unwrap();
    let relabel = |name: &'static str, app: &'static str| {
        let env = &env;
        async move {
            env.reg
                .patch(
                    &env.cm,
                    Some("default"),
                    name,
                    Patch::Merge(json!({"metadata": {"labels": {"app": app}}})),
                    Subresource::Main,
                    &opts(),
                )
                .await
                .unwrap()
                .object
                .as_ref()
                .clone()
        }
    };

    create_cm(&env, "default", cm_labeled("a", json!({"app": "x"}))).await;
    create_cm(&env, "default", cm_labeled("b", json!({"app": "y"}))).await; // never matches: unseen
    let ev = next_event(&mut stream).await;
    assert_eq!(summary(&ev), (WatchEventType::Added, "a".into()));

    let out = relabel("a", "y").await;
    let ev = next_event(&mut stream).await;
    assert_eq!(
        summary(&ev),
        (WatchEventType::Deleted, "a".into()),
        "relabelled out of the selector"
    );
    assert_eq!(
        rv(&ev.object),
        rv(&out),
        "DELETED carries the revision of the change"
    );

    relabel("b", "z").await; // still not matching: unseen
    relabel("b", "x").await;
    let ev = next_event(&mut stream).await;
    assert_eq!(
        summary(&ev),
        (WatchEventType::Added, "b".into()),
        "relabelled into the selector"
    );

    env.reg
        .patch(
            &env.cm,
            Some("default"),
            "b",
            Patch::Merge(json!({"data": {"k": "2"}})),
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap();
    assert_eq!(
        summary(&next_event(&mut stream).await),
        (WatchEventType::Modified, "b".into())
    );

    env.reg
        .delete(&env.cm, Some("default"), "a", &DeleteOptions::default())
        .await
        .unwrap(); // not matching: unseen
    env.reg
        .delete(&env.cm, Some("default"), "b", &DeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(
        summary(&next_event(&mut stream).await),
        (WatchEventType::Deleted, "b".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_selector_exit_event_carries_the_previous_state() {
    // kube-apiserver's cacheWatcher sends the *previous* object (with the event's
    // resourceVersion) when an object stops matching, so the DELETED object still matches
    // the watcher's selector.
    let env = env().await;
    let start = env
        .reg
        .store()
        .current_revision()
        .await
        .unwrap()
        .to_string();
    let params = WatchParams {
        label_selector: labels("app=x"),
        resource_version: Some(start),
        ..Default::default()
    };
    let mut stream = env
        .reg
        .watch(&env.cm, Some("default"), params)
        .await
        .unwrap();
    create_cm(&env, "default", cm_labeled("a", json!({"app": "x"}))).await;
    assert_eq!(
        summary(&next_event(&mut stream).await),
        (WatchEventType::Added, "a".into())
    );
    let out = env
        .reg
        .patch(
            &env.cm,
            Some("default"),
            "a",
            Patch::Merge(json!({"metadata": {"labels": {"app": "y"}}})),
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    let ev = next_event(&mut stream).await;
    assert_eq!(ev.type_, WatchEventType::Deleted);
    assert_eq!(
        ev.object["metadata"]["labels"]["app"],
        json!("x"),
        "DELETED object: {}",
        ev.object.as_ref().clone()
    );
    assert_eq!(rv(&ev.object), rv(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_with_field_selector() {
    let env = env().await;
    let start = env
        .reg
        .store()
        .current_revision()
        .await
        .unwrap()
        .to_string();
    let params = WatchParams {
        field_selector: fields("metadata.name=b"),
        resource_version: Some(start),
        ..Default::default()
    };
    let mut stream = env
        .reg
        .watch(&env.cm, Some("default"), params)
        .await
        .unwrap();
    create_cm(&env, "default", cm_obj("a")).await;
    create_cm(&env, "default", cm_obj("b")).await;
    assert_eq!(
        summary(&next_event(&mut stream).await),
        (WatchEventType::Added, "b".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_bookmarks_when_asked() {
    let env = env().await;
    let a = create_cm(&env, "default", cm_obj("a")).await;
    let params = WatchParams {
        allow_bookmarks: true,
        resource_version: Some(rv_str(&a)),
        ..Default::default()
    };
    let mut stream = env
        .reg
        .watch(&env.cm, Some("default"), params)
        .await
        .unwrap();
    let ev = next_event(&mut stream).await;
    assert_eq!(ev.type_, WatchEventType::Bookmark);
    assert_eq!(ev.object["kind"], json!("ConfigMap"));
    assert_eq!(ev.object["apiVersion"], json!("v1"));
    assert!(
        rv(&ev.object) >= rv(&a),
        "bookmark behind the watch's start: {}",
        ev.object.as_ref().clone()
    );

    // After a change, bookmarks carry at least its revision.
    let b = create_cm(&env, "default", cm_obj("b")).await;
    let ev = next_change(&mut stream).await;
    assert_eq!(summary(&ev), (WatchEventType::Added, "b".into()));
    let bm = next_event(&mut stream).await;
    assert_eq!(bm.type_, WatchEventType::Bookmark);
    assert!(rv(&bm.object) >= rv(&b));

    // While nothing happens, bookmarks thin out to one every five intervals (200 ms here): a
    // keepalive, not a new position.
    let quiet = std::time::Instant::now();
    let again = next_event(&mut stream).await;
    assert_eq!(again.type_, WatchEventType::Bookmark);
    assert_eq!(rv(&again.object), rv(&bm.object));
    assert!(
        quiet.elapsed() >= Duration::from_millis(600),
        "a quiet bookmark came after {:?}",
        quiet.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_without_bookmarks_gets_none() {
    let env = env().await;
    let start = env
        .reg
        .store()
        .current_revision()
        .await
        .unwrap()
        .to_string();
    let mut stream = env
        .reg
        .watch(&env.cm, Some("default"), watch_from(&start))
        .await
        .unwrap();
    // Several bookmark intervals pass; then a change: it must be the first event.
    tokio::time::sleep(Duration::from_millis(700)).await;
    create_cm(&env, "default", cm_obj("a")).await;
    assert_eq!(
        summary(&next_event(&mut stream).await),
        (WatchEventType::Added, "a".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_send_initial_events_ends_with_a_bookmark() {
    let env = env().await;
    create_cm(&env, "default", cm_obj("a")).await;
    let b = create_cm(&env, "default", cm_obj("b")).await;
    let params = WatchParams {
        send_initial_events: Some(true),
        resource_version_match: Some("NotOlderThan".into()),
        allow_bookmarks: true,
        ..Default::default()
    };
    let mut stream = env
        .reg
        .watch(&env.cm, Some("default"), params)
        .await
        .unwrap();
    let mut initial = Vec::new();
    let end = loop {
        let ev = next_event(&mut stream).await;
        match ev.type_ {
            WatchEventType::Added => initial.push(name_of(&ev.object)),
            WatchEventType::Bookmark
                if ev
                    .object
                    .as_ref()
                    .clone()
                    .pointer("/metadata/annotations/k8s.io~1initial-events-end")
                    == Some(&json!("true")) =>
            {
                break ev;
            }
            WatchEventType::Bookmark => {
                panic!("bookmark before the initial events ended: {}", ev.object)
            }
            other => panic!("unexpected {other:?} among initial events"),
        }
    };
    initial.sort();
    assert_eq!(initial, ["a", "b"]);
    assert!(
        rv(&end.object) >= rv(&b),
        "initial-events-end bookmark behind the state sent"
    );

    create_cm(&env, "default", cm_obj("c")).await;
    assert_eq!(
        summary(&next_change(&mut stream).await),
        (WatchEventType::Added, "c".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_parameter_errors() {
    let env = env().await;
    // sendInitialEvents needs NotOlderThan and bookmarks.
    let params = WatchParams {
        send_initial_events: Some(true),
        ..Default::default()
    };
    let e = expect_err(
        env.reg
            .watch(&env.cm, Some("default"), params)
            .await
            .map(|_| ()),
        422,
        "Invalid",
    );
    assert_eq!(e.causes.len(), 2, "{e:?}");
    // resourceVersionMatch without sendInitialEvents.
    let params = WatchParams {
        resource_version_match: Some("NotOlderThan".into()),
        ..Default::default()
    };
    expect_err(
        env.reg
            .watch(&env.cm, Some("default"), params)
            .await
            .map(|_| ()),
        422,
        "Invalid",
    );
    expect_err(
        env.reg
            .watch(&env.cm, Some("default"), watch_from("x1"))
            .await
            .map(|_| ()),
        400,
        "BadRequest",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_a_compacted_revision_is_410_in_stream() {
    let env = env().await;
    let a = create_cm(&env, "default", cm_obj("a")).await;
    for i in 0..3 {
        env.reg
            .patch(
                &env.cm,
                Some("default"),
                "a",
                Patch::Merge(json!({"data": {"k": i.to_string()}})),
                Subresource::Main,
                &opts(),
            )
            .await
            .unwrap();
    }
    let latest = env.reg.store().current_revision().await.unwrap();
    cache_caught_up(&env, latest).await;
    env.reg.compact(latest).await.unwrap();

    let mut stream = env
        .reg
        .watch(&env.cm, Some("default"), watch_from(&rv_str(&a)))
        .await
        .unwrap();
    let ev = next_event(&mut stream).await;
    assert_eq!(ev.type_, WatchEventType::Error);
    assert_eq!(ev.object["kind"], json!("Status"));
    assert_eq!(ev.object["code"], json!(410));
    assert_eq!(ev.object["reason"], json!("Expired"));
    let ended = tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("stream should end after the error");
    assert!(ended.is_none(), "events after a 410: {ended:?}");

    // Watching from the compaction revision itself still works.
    let mut stream = env
        .reg
        .watch(&env.cm, Some("default"), watch_from(&latest.to_string()))
        .await
        .unwrap();
    create_cm(&env, "default", cm_obj("b")).await;
    assert_eq!(
        summary(&next_event(&mut stream).await),
        (WatchEventType::Added, "b".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_beyond_the_window_is_410() {
    // A watch cache window of 16 events (the minimum): resuming from before it is 410 too.
    let env = env_with(RegistryConfig {
        watch_window: 16,
        ..config()
    })
    .await;
    let a = create_cm(&env, "default", cm_obj("a")).await;
    for i in 0..40 {
        env.reg
            .patch(
                &env.cm,
                Some("default"),
                "a",
                Patch::Merge(json!({"data": {"k": i.to_string()}})),
                Subresource::Main,
                &opts(),
            )
            .await
            .unwrap();
    }
    let latest = env.reg.store().current_revision().await.unwrap();
    cache_caught_up(&env, latest).await;
    let mut stream = env
        .reg
        .watch(&env.cm, Some("default"), watch_from(&rv_str(&a)))
        .await
        .unwrap();
    let ev = next_event(&mut stream).await;
    assert_eq!(ev.type_, WatchEventType::Error);
    assert_eq!(ev.object["code"], json!(410));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_watchers_see_every_event_in_order() {
    const WATCHERS: usize = 200;
    let env = env().await;
    create_ns(&env, "fan").await;
    let start = env
        .reg
        .store()
        .current_revision()
        .await
        .unwrap()
        .to_string();
    let mut streams = Vec::with_capacity(WATCHERS);
    for _ in 0..WATCHERS {
        streams.push(
            env.reg
                .watch(&env.cm, Some("fan"), watch_from(&start))
                .await
                .unwrap(),
        );
    }

    // 20 creates, 20 updates, 10 deletes; the expected sequence from what the writes returned.
    let mut expected: Vec<(WatchEventType, String, i64)> = Vec::new();
    for i in 0..20 {
        let name = format!("cm-{i:02}");
        let c = create_cm(&env, "fan", cm_obj(&name)).await;
        expected.push((WatchEventType::Added, name, rv(&c)));
    }
    for i in 0..20 {
        let name = format!("cm-{:02}", (i * 7) % 20);
        let p = Patch::Merge(json!({"data": {"k": format!("v{i}")}}));
        let u = env
            .reg
            .patch(&env.cm, Some("fan"), &name, p, Subresource::Main, &opts())
            .await
            .unwrap()
            .object
            .as_ref()
            .clone();
        expected.push((WatchEventType::Modified, name, rv(&u)));
    }
    for i in 0..10 {
        let name = format!("cm-{:02}", i * 2);
        let d = env
            .reg
            .delete(&env.cm, Some("fan"), &name, &DeleteOptions::default())
            .await
            .unwrap();
        expected.push((WatchEventType::Deleted, name, rv(d.object())));
    }
    assert!(expected.windows(2).all(|w| w[0].2 < w[1].2));

    let n = expected.len();
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                let mut seen = Vec::with_capacity(n);
                while seen.len() < n {
                    let ev = next_event(&mut stream).await;
                    seen.push((ev.type_, name_of(&ev.object), rv(&ev.object)));
                }
                seen
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let seen = task.await.expect("watcher task");
        assert_eq!(seen, expected, "watcher {i} saw a different sequence");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_watcher_still_sees_every_event() {
    // More events than the per-watcher channel and the broadcast hold, consumed only afterwards:
    // the watcher must catch up from the cache window, in order, without gaps.
    let env = env().await;
    let start = env
        .reg
        .store()
        .current_revision()
        .await
        .unwrap()
        .to_string();
    let mut stream = env
        .reg
        .watch(&env.cm, Some("default"), watch_from(&start))
        .await
        .unwrap();
    create_cm(&env, "default", cm_obj("a")).await;
    let mut last = 0;
    for i in 0..600 {
        let p = Patch::Merge(json!({"data": {"k": i.to_string()}}));
        last = rv(&env
            .reg
            .patch(&env.cm, Some("default"), "a", p, Subresource::Main, &opts())
            .await
            .unwrap()
            .object);
    }
    let ev = next_event(&mut stream).await;
    assert_eq!(summary(&ev), (WatchEventType::Added, "a".into()));
    let mut previous = rv(&ev.object);
    for i in 0..600 {
        let ev = next_event(&mut stream).await;
        assert_eq!(ev.type_, WatchEventType::Modified);
        assert_eq!(
            ev.object["data"]["k"],
            json!(i.to_string()),
            "event {i} out of order or missing"
        );
        assert!(rv(&ev.object) > previous);
        previous = rv(&ev.object);
    }
    assert_eq!(previous, last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_of_a_finalized_deletion_reports_modified_then_deleted() {
    let env = env().await;
    let mut obj = cm_obj("a");
    obj["metadata"]["finalizers"] = json!([HOLD]);
    let a = create_cm(&env, "default", obj).await;
    let mut stream = env
        .reg
        .watch(&env.cm, Some("default"), watch_from(&rv_str(&a)))
        .await
        .unwrap();
    env.reg
        .delete(&env.cm, Some("default"), "a", &DeleteOptions::default())
        .await
        .unwrap();
    let ev = next_event(&mut stream).await;
    assert_eq!(summary(&ev), (WatchEventType::Modified, "a".into()));
    assert!(ev.object.pointer("/metadata/deletionTimestamp").is_some());
    env.reg
        .patch(
            &env.cm,
            Some("default"),
            "a",
            Patch::Merge(json!({"metadata": {"finalizers": null}})),
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap();
    let ev = next_event(&mut stream).await;
    assert_eq!(summary(&ev), (WatchEventType::Deleted, "a".into()));
}

// ---------------------------------------------------------------------------------------------
// Edges
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_namespace_is_active() {
    let env = env().await;
    let ns = create_ns(&env, "team-a").await;
    assert_eq!(ns.pointer("/status/phase"), Some(&json!("Active")), "{ns}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_metadata_is_422() {
    let env = env().await;
    let bad_label = cm_labeled("a", json!({"not a key!": "v"}));
    let e = expect_err(
        env.reg
            .create(&env.cm, Some("default"), bad_label, &opts())
            .await,
        422,
        "Invalid",
    );
    assert!(
        e.causes
            .iter()
            .any(|c| c.field.starts_with("metadata.labels")),
        "{e:?}"
    );
    let mut bad_finalizer = cm_obj("b");
    bad_finalizer["metadata"]["finalizers"] = json!(["not a finalizer!"]);
    let e = expect_err(
        env.reg
            .create(&env.cm, Some("default"), bad_finalizer, &opts())
            .await,
        422,
        "Invalid",
    );
    assert!(
        e.causes
            .iter()
            .any(|c| c.field.starts_with("metadata.finalizers")),
        "{e:?}"
    );
    let bad_name = cm_obj("Not_A_Name");
    expect_err(
        env.reg
            .create(&env.cm, Some("default"), bad_name, &opts())
            .await,
        422,
        "Invalid",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_with_an_invalid_resource_version_is_400() {
    let env = env().await;
    let mut c = create_cm(&env, "default", cm_obj("a")).await;
    c["metadata"]["resourceVersion"] = json!("abc");
    expect_err(
        env.reg
            .update(&env.cm, Some("default"), "a", c, Subresource::Main, &opts())
            .await,
        400,
        "BadRequest",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_with_another_uid_is_rejected() {
    // kube-apiserver: metadata.uid is immutable (422 Invalid, "field is immutable"); a body
    // naming another uid is addressed at another incarnation of the object.
    let env = env().await;
    let mut c = create_cm(&env, "default", cm_obj("a")).await;
    c["metadata"]["uid"] = json!("00000000-0000-0000-0000-000000000000");
    c["data"]["k"] = json!("changed");
    let result = env
        .reg
        .update(&env.cm, Some("default"), "a", c, Subresource::Main, &opts())
        .await;
    let e = result.expect_err("an update naming another uid was accepted");
    assert!(e.code == 422 || e.code == 409, "{e:?}");
    let got = env.reg.get(&env.cm, Some("default"), "a").await.unwrap();
    assert_eq!(got["data"]["k"], json!("v"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_with_mismatched_namespace_is_400() {
    let env = env().await;
    create_ns(&env, "other").await;
    let mut c = create_cm(&env, "default", cm_obj("a")).await;
    c["metadata"]["namespace"] = json!("other");
    expect_err(
        env.reg
            .update(&env.cm, Some("default"), "a", c, Subresource::Main, &opts())
            .await,
        400,
        "BadRequest",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noop_update_by_another_manager_keeps_resource_version() {
    let env = env().await;
    let c = env
        .reg
        .create(&env.cm, Some("default"), cm_obj("a"), &manager("creator"))
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    let w = env
        .reg
        .update(
            &env.cm,
            Some("default"),
            "a",
            c.clone(),
            Subresource::Main,
            &manager("other"),
        )
        .await
        .unwrap();
    assert_eq!(
        rv(&w.object),
        rv(&c),
        "a no-op update by another manager wrote: {}",
        w.object.as_ref().clone()
    );
    assert_eq!(
        managers(&w.object),
        vec![("creator".to_string(), "Update".to_string())]
    );
    // A real change by another manager is recorded for it.
    let mut changed = c.clone();
    changed["data"]["k2"] = json!("x");
    let w = env
        .reg
        .update(
            &env.cm,
            Some("default"),
            "a",
            changed,
            Subresource::Main,
            &manager("other"),
        )
        .await
        .unwrap();
    assert!(
        owned_by(&w.object, "other").contains("f:k2"),
        "{}",
        w.object.as_ref().clone()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_create_is_one_write() {
    let env = env().await;
    let start = env.reg.store().current_revision().await.unwrap();
    let mut stream = env
        .reg
        .watch(&env.cm, Some("default"), watch_from(&start.to_string()))
        .await
        .unwrap();
    let w = env
        .reg
        .patch(
            &env.cm,
            Some("default"),
            "a",
            Patch::Apply(cm_apply("a", json!({"x": "1"}))),
            Subresource::Main,
            &manager("alice"),
        )
        .await
        .unwrap();
    assert_eq!(
        rv(&w.object),
        start + 1,
        "apply-create took more than one revision"
    );
    create_cm(&env, "default", cm_obj("sentinel")).await;
    assert_eq!(
        summary(&next_event(&mut stream).await),
        (WatchEventType::Added, "a".into())
    );
    assert_eq!(
        summary(&next_event(&mut stream).await),
        (WatchEventType::Added, "sentinel".into()),
        "an extra event between the apply and the sentinel"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_with_a_stale_resource_version_is_409() {
    let env = env().await;
    let alice = manager("alice");
    let v1 = env
        .reg
        .patch(
            &env.cm,
            Some("default"),
            "a",
            Patch::Apply(cm_apply("a", json!({"x": "1"}))),
            Subresource::Main,
            &alice,
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    env.reg
        .patch(
            &env.cm,
            Some("default"),
            "a",
            Patch::Apply(cm_apply("a", json!({"x": "2"}))),
            Subresource::Main,
            &alice,
        )
        .await
        .unwrap();
    let mut stale = cm_apply("a", json!({"x": "3"}));
    stale["metadata"]["resourceVersion"] = json!(rv_str(&v1));
    expect_err(
        env.reg
            .patch(
                &env.cm,
                Some("default"),
                "a",
                Patch::Apply(stale),
                Subresource::Main,
                &alice,
            )
            .await,
        409,
        "Conflict",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_to_status_subresource() {
    let env = env().await;
    let user = manager("user");
    env.reg
        .patch(
            &env.cluster,
            Some("default"),
            "c1",
            Patch::Apply(cluster_obj("c1")),
            Subresource::Main,
            &user,
        )
        .await
        .unwrap();
    let status_cfg = json!({
        "apiVersion": "slipway.dev/v1alpha1", "kind": "Cluster", "metadata": {"name": "c1"},
        "status": {"nodes": 2, "observedGeneration": 1},
        "spec": {"version": "1.34.0"}
    });
    let c = env
        .reg
        .patch(
            &env.cluster,
            Some("default"),
            "c1",
            Patch::Apply(status_cfg),
            Subresource::Status,
            &manager("controller"),
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert_eq!(c["status"]["nodes"], json!(2));
    assert_eq!(
        c["spec"]["version"],
        json!("1.33.4"),
        "apply on /status changed spec"
    );
    assert_eq!(generation(&c), 1);
    // The user's next apply of the spec does not conflict with the controller's status.
    let mut cfg = cluster_obj("c1");
    cfg["spec"]["nodePools"][0]["replicas"] = json!(2);
    let c = env
        .reg
        .patch(
            &env.cluster,
            Some("default"),
            "c1",
            Patch::Apply(cfg),
            Subresource::Main,
            &user,
        )
        .await
        .unwrap()
        .object
        .as_ref()
        .clone();
    assert_eq!(c["status"]["nodes"], json!(2));
    assert_eq!(c["spec"]["nodePools"][0]["replicas"], json!(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_of_an_owner_that_never_existed_is_collected() {
    let env = env().await;
    let ghost =
        json!({"metadata": {"name": "ghost", "uid": "7f0c2b9e-0000-4000-8000-000000000000"}});
    create_cm(&env, "default", owned_cm("dep", &ghost)).await;
    eventually("dangling dependent collected", || async {
        (!exists(&env, &env.cm, Some("default"), "dep").await).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_spec_finalizers_are_not_writable_by_update() {
    // kube-apiserver's namespace strategy keeps spec.finalizers on update; only the
    // /finalize subresource (the namespace controller) may change them.
    let env = env().await;
    create_ns(&env, "team-a").await;
    let mut held = cm_obj("held");
    held["metadata"]["finalizers"] = json!([HOLD]);
    create_cm(&env, "team-a", held).await;
    env.reg
        .delete(&env.ns, None, "team-a", &DeleteOptions::default())
        .await
        .unwrap();
    let p = Patch::Merge(json!({"spec": {"finalizers": null}}));
    let _ = env
        .reg
        .patch(&env.ns, None, "team-a", p, Subresource::Main, &opts())
        .await;
    assert!(
        exists(&env, &env.ns, None, "team-a").await,
        "namespace removed while it still has content"
    );
    assert!(exists(&env, &env.cm, Some("team-a"), "held").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_namespace_cannot_be_deleted() {
    let env = env().await;
    expect_err(
        env.reg
            .delete(&env.ns, None, "default", &DeleteOptions::default())
            .await,
        403,
        "Forbidden",
    );
    let ns = env.reg.get(&env.ns, None, "default").await.unwrap();
    assert!(ns.pointer("/metadata/deletionTimestamp").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_with_resource_version_is_400() {
    let env = env().await;
    for i in 0..3 {
        create_cm(&env, "default", cm_obj(&format!("cm-{i}"))).await;
    }
    let page = env
        .reg
        .list(
            &env.cm,
            Some("default"),
            &ListParams {
                limit: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let params = ListParams {
        limit: Some(1),
        continue_token: page.continue_token,
        resource_version: Some(page.resource_version.to_string()),
        ..Default::default()
    };
    expect_err(
        env.reg.list(&env.cm, Some("default"), &params).await,
        400,
        "BadRequest",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_with_send_initial_events_false() {
    let env = env().await;
    let a = create_cm(&env, "default", cm_obj("a")).await;
    let params = WatchParams {
        send_initial_events: Some(false),
        resource_version_match: Some("NotOlderThan".into()),
        resource_version: Some(rv_str(&a)),
        allow_bookmarks: true,
        ..Default::default()
    };
    let mut stream = env
        .reg
        .watch(&env.cm, Some("default"), params)
        .await
        .expect("watch accepted");
    create_cm(&env, "default", cm_obj("b")).await;
    assert_eq!(
        summary(&next_change(&mut stream).await),
        (WatchEventType::Added, "b".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_ends_after_its_timeout() {
    let env = env().await;
    let params = WatchParams {
        timeout: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let mut stream = env
        .reg
        .watch(&env.cm, Some("default"), params)
        .await
        .unwrap();
    let end = tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("watch did not end after its timeout");
    assert!(end.is_none(), "unexpected event {end:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_lags_behind_the_broadcast_catches_up_in_order() {
    // More events than the live broadcast holds (4096) while the watcher does not read: it
    // must resume from the cache window without a gap or a duplicate.
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 700;
    let env = env().await;
    let start = env
        .reg
        .store()
        .current_revision()
        .await
        .unwrap()
        .to_string();
    let mut stream = env
        .reg
        .watch(&env.cm, Some("default"), watch_from(&start))
        .await
        .unwrap();
    for w in 0..WRITERS {
        create_cm(&env, "default", cm_obj(&format!("w{w}"))).await;
    }
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let reg = Arc::clone(&env.reg);
            let cm = Arc::clone(&env.cm);
            tokio::spawn(async move {
                for i in 0..PER_WRITER {
                    let p = Patch::Merge(json!({"data": {"k": i.to_string()}}));
                    reg.patch(
                        &cm,
                        Some("default"),
                        &format!("w{w}"),
                        p,
                        Subresource::Main,
                        &opts(),
                    )
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let mut previous = 0;
    let mut next_value = [0usize; WRITERS];
    for _ in 0..WRITERS {
        let ev = next_event(&mut stream).await;
        assert_eq!(ev.type_, WatchEventType::Added);
        previous = rv(&ev.object);
    }
    for n in 0..WRITERS * PER_WRITER {
        let ev = next_event(&mut stream).await;
        assert_eq!(ev.type_, WatchEventType::Modified, "event {n}");
        let r = rv(&ev.object);
        assert!(r > previous, "event {n}: revision {r} after {previous}");
        previous = r;
        let w: usize = name_of(&ev.object)[1..].parse().unwrap();
        assert_eq!(
            ev.object["data"]["k"],
            json!(next_value[w].to_string()),
            "event {n} for w{w}"
        );
        next_value[w] += 1;
    }
    assert!(next_value.iter().all(|v| *v == PER_WRITER));
}

/// What a write answers is what a read serves afterwards, to the order of its fields (the
/// watch cache takes the written object rather than decoding the stored bytes, so the two
/// must not differ).
#[tokio::test]
async fn a_written_object_reads_back_identical() {
    let env = env().await;
    create_ns(&env, "hand").await;
    let json = |v: &Value| serde_json::to_string(v).expect("json");
    let created = create_cm(
        &env,
        "hand",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "h", "resourceVersion": "", "labels": {"a": "b"}},
               "data": {"k": "v"}}),
    )
    .await;
    let read = env.reg.get(&env.cm, Some("hand"), "h").await.expect("get");
    assert_eq!(json(&read), json(&created));
    let patched = env
        .reg
        .patch(
            &env.cm,
            Some("hand"),
            "h",
            Patch::Merge(json!({"data": {"k": "v2"}})),
            Subresource::Main,
            &opts(),
        )
        .await
        .expect("patched")
        .object
        .as_ref()
        .clone();
    let read = env.reg.get(&env.cm, Some("hand"), "h").await.expect("get");
    assert_eq!(rv(&read), rv(&patched));
    assert_eq!(json(&read), json(&patched));
    let untouched = create_cm(
        &env,
        "hand",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "h2", "resourceVersion": "", "uid": "ignored"}}),
    )
    .await;
    // A fresh registry over the same store decodes every object from its bytes.
    let store = Arc::clone(env.reg.store());
    let fresh = Registry::start(store, slipway_api::resources(), config())
        .await
        .expect("second registry");
    for written in [&patched, &untouched] {
        let name = written["metadata"]["name"].as_str().expect("name");
        let decoded = fresh.get(&env.cm, Some("hand"), name).await.expect("get");
        assert_eq!(json(&decoded), json(written));
    }
}
