//! The workload-cluster kinds over a SQLite store: the eviction subresource against
//! PodDisruptionBudgets, the scale subresource of Deployments and ReplicaSets, and field
//! selectors on pods. kube-apiserver is the reference.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use slipway_apimachinery::ResourceDef;
use slipway_apimachinery::selector::FieldSelector;
use slipway_registry::eviction::{Eviction, VIOLATES_BUDGET};
use slipway_registry::{ListParams, Patch, Registry, RegistryConfig, Subresource, WriteOptions};
use slipway_store::Store;
use slipway_store::sqlite::SqliteStore;

struct Env {
    reg: Arc<Registry>,
    pods: Arc<ResourceDef>,
    pdbs: Arc<ResourceDef>,
    deploys: Arc<ResourceDef>,
    _dir: tempfile::TempDir,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("registry.db")).expect("open sqlite store"));
    let config = RegistryConfig {
        compaction_interval: None,
        gc_interval: Duration::from_millis(200),
        ..RegistryConfig::default()
    };
    let reg = Registry::start(store, slipway_api::workload_resources(), config)
        .await
        .expect("registry starts");
    Env {
        pods: reg.resource("", "v1", "pods").expect("pods"),
        pdbs: reg
            .resource("policy", "v1", "poddisruptionbudgets")
            .expect("pdbs"),
        deploys: reg
            .resource("apps", "v1", "deployments")
            .expect("deployments"),
        reg,
        _dir: dir,
    }
}

fn opts() -> WriteOptions {
    WriteOptions::default()
}

impl Env {
    /// A Running pod of app `app` on `node`, Ready or not.
    async fn running_pod(&self, name: &str, app: &str, node: &str, ready: bool) {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": app}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx:1.27"}]},
        });
        self.reg
            .create(&self.pods, Some("default"), pod, &opts())
            .await
            .expect("create pod");
        let status = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
        self.reg
            .patch(
                &self.pods,
                Some("default"),
                name,
                Patch::Merge(status),
                Subresource::Status,
                &opts(),
            )
            .await
            .expect("pod status");
    }

    /// A budget for app `app` whose status (as the PDB controller would write it) allows
    /// `allowed` disruptions.
    async fn budget(&self, app: &str, allowed: i64) {
        let pdb = json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": app},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": app}}},
        });
        self.reg
            .create(&self.pdbs, Some("default"), pdb, &opts())
            .await
            .expect("create pdb");
        self.set_allowed(app, allowed).await;
    }

    async fn set_allowed(&self, app: &str, allowed: i64) {
        let status = json!({"status": {"disruptionsAllowed": allowed, "observedGeneration": 1,
            "currentHealthy": 1 + allowed, "desiredHealthy": 1, "expectedPods": 1 + allowed}});
        self.reg
            .patch(
                &self.pdbs,
                Some("default"),
                app,
                Patch::Merge(status),
                Subresource::Status,
                &opts(),
            )
            .await
            .expect("pdb status");
    }

    async fn evict(&self, name: &str) -> Result<Value, slipway_apimachinery::ApiError> {
        self.reg
            .evict(&self.pods, "default", name, &Eviction::default())
            .await
    }

    async fn exists(&self, name: &str) -> bool {
        self.reg
            .get(&self.pods, Some("default"), name)
            .await
            .is_ok()
    }
}

#[tokio::test]
async fn eviction_charges_the_budget_and_refuses_when_it_is_spent() {
    let env = env().await;
    env.running_pod("web-1", "web", "node-a", true).await;
    env.running_pod("web-2", "web", "node-a", true).await;
    env.budget("web", 1).await;

    let ok = env.evict("web-1").await.expect("first eviction allowed");
    assert_eq!(ok["status"], "Success");
    assert!(!env.exists("web-1").await);
    let pdb = env
        .reg
        .get(&env.pdbs, Some("default"), "web")
        .await
        .unwrap();
    assert_eq!(pdb["status"]["disruptionsAllowed"], 0);
    assert!(pdb["status"]["disruptedPods"].get("web-1").is_some());

    let refused = env.evict("web-2").await.expect_err("budget spent");
    assert_eq!((refused.code, refused.reason), (429, "TooManyRequests"));
    assert_eq!(refused.message, VIOLATES_BUDGET);
    assert!(refused.causes[0].message.contains("disruption budget web"));
    assert!(
        env.exists("web-2").await,
        "a refused eviction deletes nothing"
    );

    // The PDB controller recomputes the budget; the eviction then goes through.
    env.set_allowed("web", 1).await;
    env.evict("web-2").await.expect("allowed again");
    assert!(!env.exists("web-2").await);
}

#[tokio::test]
async fn pods_outside_the_budget_go_without_it() {
    let env = env().await;
    env.budget("web", 0).await;
    // Not selected by any budget.
    env.running_pod("db-1", "db", "node-a", true).await;
    env.evict("db-1").await.expect("no budget applies");
    // Pending pods do not count towards a budget.
    let pending = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-p", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    env.reg
        .create(&env.pods, Some("default"), pending, &opts())
        .await
        .unwrap();
    env.evict("web-p")
        .await
        .expect("pending pods are evictable");
    // An unready pod of a budget that is not healthy is refused (IfHealthyBudget)...
    env.running_pod("web-u", "web", "node-a", false).await;
    let status = json!({"status": {"currentHealthy": 0, "desiredHealthy": 1}});
    env.reg
        .patch(
            &env.pdbs,
            Some("default"),
            "web",
            Patch::Merge(status),
            Subresource::Status,
            &opts(),
        )
        .await
        .unwrap();
    assert_eq!(env.evict("web-u").await.unwrap_err().code, 429);
    // ...unless the budget says AlwaysAllow.
    env.reg
        .patch(
            &env.pdbs,
            Some("default"),
            "web",
            Patch::Merge(json!({"spec": {"unhealthyPodEvictionPolicy": "AlwaysAllow"}})),
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap();
    env.evict("web-u").await.expect("AlwaysAllow");
    assert_eq!(
        env.evict("gone").await.unwrap_err().code,
        404,
        "evicting a missing pod is NotFound"
    );
}

#[tokio::test]
async fn a_stale_budget_refuses() {
    let env = env().await;
    env.running_pod("web-1", "web", "node-a", true).await;
    env.budget("web", 3).await;
    // A spec change bumps generation past the status' observedGeneration.
    env.reg
        .patch(
            &env.pdbs,
            Some("default"),
            "web",
            Patch::Merge(json!({"spec": {"minAvailable": 0}})),
            Subresource::Main,
            &opts(),
        )
        .await
        .unwrap();
    let err = env.evict("web-1").await.unwrap_err();
    assert_eq!(err.code, 429);
    assert!(err.causes[0].message.contains("still being processed"));
}

#[tokio::test]
async fn concurrent_evictions_never_overspend_a_budget() {
    let env = Arc::new(env().await);
    for i in 0..6 {
        env.running_pod(&format!("web-{i}"), "web", "node-a", true)
            .await;
    }
    env.budget("web", 2).await;
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let env = Arc::clone(&env);
            tokio::spawn(async move { env.evict(&format!("web-{i}")).await.is_ok() })
        })
        .collect();
    let mut evicted = 0;
    for t in tasks {
        evicted += usize::from(t.await.unwrap());
    }
    assert_eq!(evicted, 2, "exactly the budget's two disruptions");
    let left = env
        .reg
        .list(&env.pods, Some("default"), &ListParams::default())
        .await
        .unwrap();
    assert_eq!(left.items.len(), 4);
}

#[tokio::test]
async fn scale_subresource_reads_and_writes_replicas() {
    let env = env().await;
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    env.reg
        .create(&env.deploys, Some("default"), deploy, &opts())
        .await
        .unwrap();
    let scale = env
        .reg
        .get_scale(&env.deploys, Some("default"), "web")
        .await
        .unwrap();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 1);
    assert_eq!(scale["status"]["selector"], "app=web");

    let patched = env
        .reg
        .patch_scale(
            &env.deploys,
            Some("default"),
            "web",
            Patch::Merge(json!({"spec": {"replicas": 5}})),
            &opts(),
        )
        .await
        .unwrap();
    assert_eq!(patched["spec"]["replicas"], 5);
    let d = env
        .reg
        .get(&env.deploys, Some("default"), "web")
        .await
        .unwrap();
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(d["metadata"]["generation"], 2, "a scale is a spec change");

    // PUT with a stale resourceVersion conflicts.
    let mut stale = scale.clone();
    stale["spec"]["replicas"] = json!(2);
    let err = env
        .reg
        .update_scale(&env.deploys, Some("default"), "web", &stale, &opts())
        .await
        .unwrap_err();
    assert_eq!(err.code, 409);
    let err = env
        .reg
        .patch_scale(
            &env.deploys,
            Some("default"),
            "web",
            Patch::Merge(json!({"spec": {"replicas": -3}})),
            &opts(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, 422);
    // Pods have no scale subresource.
    assert_eq!(
        env.reg
            .get_scale(&env.pods, Some("default"), "x")
            .await
            .unwrap_err()
            .code,
        404
    );
}

#[tokio::test]
async fn pods_select_by_node() {
    let env = env().await;
    env.running_pod("a-1", "web", "node-a", true).await;
    env.running_pod("b-1", "web", "node-b", true).await;
    let params = ListParams {
        field_selector: Some(
            FieldSelector::parse("spec.nodeName=node-a", &env.pods.field_selector_fields())
                .unwrap(),
        ),
        ..ListParams::default()
    };
    let list = env.reg.list(&env.pods, None, &params).await.unwrap();
    let names: Vec<_> = list
        .items
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["a-1"]);
}

/// A Node keeps the status it is created with, as the kubelet registers it (kube-apiserver's
/// node strategy allows every field on create); a Pod's is dropped, since its status is the
/// kubelet's to write through `/status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_is_created_with_its_status_and_a_pod_without() {
    let env = env().await;
    let nodes = env.reg.resource("", "v1", "nodes").expect("nodes");
    let status = json!({
        "capacity": {"cpu": "4", "memory": "16Gi"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
    });
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "n1"},
        "status": status,
    });
    let created = env
        .reg
        .create(&nodes, None, node, &opts())
        .await
        .expect("create node");
    assert_eq!(created.object["status"], status);
    let got = env.reg.get(&nodes, None, "n1").await.expect("get node");
    assert_eq!(got["status"], status);

    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p1"},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]},
        "status": {"phase": "Running"},
    });
    let created = env
        .reg
        .create(&env.pods, Some("default"), pod, &opts())
        .await
        .expect("create pod");
    assert_ne!(
        created.object.pointer("/status/phase"),
        Some(&json!("Running")),
        "a Pod's status is not taken from its create: {}",
        created.object
    );
}
