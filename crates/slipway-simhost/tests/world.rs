//! The simulated workload clusters on a zero-delay simulated cloud: a cluster's API appears
//! when its control plane boots, Nodes register with what their machines are, workloads get
//! scheduled and run, the API goes down without quorum, and the cluster goes with its machines.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use slipway_provider::Provider;
use slipway_registry::{ListParams, Registry, WriteOptions};
use slipway_sim::{FaultsPatch, SimCloud, SimConfig};
use slipway_simhost::scenario::{ClusterRequest, Pool, provision};
use slipway_simhost::world::World;
use slipway_simhost::{HostConfig, WorkloadHost};

const PATIENCE: Duration = Duration::from_secs(30);

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn list(reg: &Registry, group: &str, plural: &str, ns: Option<&str>) -> Vec<Value> {
    let version = "v1";
    let def = reg.resource(group, version, plural).expect("served");
    reg.list(&def, ns, &ListParams::default())
        .await
        .expect("list")
        .items
        .iter()
        .map(|o| (**o).clone())
        .collect()
}

fn request(name: &str, cp: usize, workers: usize) -> ClusterRequest {
    ClusterRequest {
        name: name.into(),
        region: "eu-west-1".into(),
        zones: vec![
            "eu-west-1a".into(),
            "eu-west-1b".into(),
            "eu-west-1c".into(),
        ],
        control_plane_type: "m5.large".into(),
        control_plane_replicas: cp,
        pools: vec![Pool::new("general", "m5.xlarge", workers)],
        kubernetes_version: "1.33.4".into(),
        admin_token: format!("token-{name}"),
        network_octet: 1,
    }
}

/// A zero-delay cloud and a workload host, both in a temporary directory.
async fn start() -> (tempfile::TempDir, Arc<SimCloud>, Arc<WorkloadHost>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cloud = SimCloud::open(dir.path(), SimConfig::instant())
        .await
        .expect("cloud");
    let host = WorkloadHost::start(
        HostConfig {
            dir: dir.path().join("sim"),
            listen: "127.0.0.1:0".parse().expect("addr"),
            compaction_interval: None,
        },
        slipway_api::workload_resources(),
    )
    .await
    .expect("host");
    (dir, cloud, host)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_follow_their_machines() {
    let (_dir, cloud, host) = start().await;
    let world = World::new(Arc::clone(&host), Arc::clone(&cloud));
    let _task = world.spawn();

    let machines = provision(cloud.as_ref(), &request("team-a.web", 3, 3))
        .await
        .expect("provision");
    assert_eq!(machines.len(), 6);

    // The API appears and the six machines register as Ready Nodes.
    eventually("six ready nodes", || async {
        let Some(reg) = host.registry("team-a.web") else {
            return false;
        };
        let nodes = list(&reg, "", "nodes", None).await;
        nodes.len() == 6
            && nodes.iter().all(|n| {
                n["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
    })
    .await;
    assert!(host.is_available("team-a.web"));
    let reg = host.registry("team-a.web").expect("hosted");
    let nodes = list(&reg, "", "nodes", None).await;
    let worker = nodes
        .iter()
        .find(|n| n["metadata"]["labels"]["slipway.dev/pool"] == "general")
        .expect("a worker");
    assert_eq!(worker["status"]["nodeInfo"]["kubeletVersion"], "v1.33.4");
    assert_eq!(
        worker["metadata"]["labels"]["node.kubernetes.io/instance-type"],
        "m5.xlarge"
    );

    // The control plane's mirror pods record the versions each control-plane machine runs.
    eventually("running control-plane pods", || async {
        let pods = list(&reg, "", "pods", Some("kube-system")).await;
        pods.len() == 6 && pods.iter().all(|p| p["status"]["phase"] == "Running")
    })
    .await;
    let cp = machines
        .iter()
        .find(|m| m.spec.tags.get("slipway.dev/pool").map(String::as_str) == Some("control-plane"))
        .expect("a control-plane machine");
    cloud
        .patch_machine(
            &cp.id,
            slipway_provider::MachinePatch {
                kubelet_version: Some("v1.34.1".into()),
                ..Default::default()
            },
        )
        .await
        .expect("in-place patch");
    eventually(
        "the patched machine's API server at the new version",
        || async {
            let pods = list(&reg, "", "pods", Some("kube-system")).await;
            pods.iter()
                .filter(|p| {
                    p["spec"]["containers"][0]["image"] == "registry.k8s.io/kube-apiserver:v1.34.1"
                })
                .count()
                == 1
        },
    )
    .await;

    // A Deployment gets its pods scheduled on workers (not the tainted control plane) and run.
    let deployments = reg
        .resource("apps", "v1", "deployments")
        .expect("deployments");
    reg.create(
        &deployments,
        Some("default"),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 6,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27", "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}}}]}}
            }
        }),
        &WriteOptions::default(),
    )
    .await
    .expect("create deployment");
    eventually("six running pods", || async {
        let pods = list(&reg, "", "pods", Some("default")).await;
        pods.len() == 6 && pods.iter().all(|p| p["status"]["phase"] == "Running")
    })
    .await;
    let pods = list(&reg, "", "pods", Some("default")).await;
    for p in &pods {
        let node = p["spec"]["nodeName"].as_str().expect("bound");
        let n = nodes
            .iter()
            .find(|n| n["metadata"]["name"] == node)
            .expect("node exists");
        assert_eq!(
            n["metadata"]["labels"]["slipway.dev/pool"], "general",
            "pod on {node}"
        );
    }
    eventually("deployment available", || async {
        let d = list(&reg, "apps", "deployments", Some("default")).await;
        d[0]["status"]["availableReplicas"] == 6
    })
    .await;

    // A zone outage takes one of three control-plane machines: quorum holds. Two: it is lost.
    cloud
        .patch_faults(&FaultsPatch {
            zone_outages: Some(["eu-west-1a".to_string(), "eu-west-1b".to_string()].into()),
            ..Default::default()
        })
        .await
        .expect("outage");
    eventually("API down without quorum", || async {
        !host.is_available("team-a.web")
    })
    .await;
    cloud
        .patch_faults(&FaultsPatch {
            zone_outages: Some(Default::default()),
            ..Default::default()
        })
        .await
        .expect("restore");
    eventually("API back", || async { host.is_available("team-a.web") }).await;

    // Deleting every machine deletes the cluster.
    for m in &machines {
        cloud.delete_machine(&m.id).await.expect("delete");
    }
    eventually("cluster gone", || async {
        host.registry("team-a.web").is_none()
    })
    .await;
}

/// The periodic full pass looks at every cluster, but applies a cluster's plan only when its
/// machines or its objects changed since the last one: a converged fleet costs two counters
/// per cluster, and a Node deleted behind the simulator's back is still registered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_skips_unchanged_clusters_and_repairs_changed_ones() {
    let (_dir, cloud, host) = start().await;
    let world = World::with_resync(
        Arc::clone(&host),
        Arc::clone(&cloud),
        Duration::from_millis(100),
    );
    let _task = world.spawn();
    provision(cloud.as_ref(), &request("team-b.api", 1, 2))
        .await
        .expect("provision");
    eventually("three nodes", || async {
        match host.registry("team-b.api") {
            Some(reg) => list(&reg, "", "nodes", None).await.len() == 3,
            None => false,
        }
    })
    .await;

    // Converged: passes go on (about ten a second) and are all skipped.
    eventually("resyncs skipped, none applied", || async {
        let (applied, skipped) = world.sync_counts();
        tokio::time::sleep(Duration::from_millis(600)).await;
        let (applied_after, skipped_after) = world.sync_counts();
        applied_after == applied && skipped_after >= skipped + 3
    })
    .await;

    // No cloud event tells the simulator about this; only the resync sees it.
    let reg = host.registry("team-b.api").expect("hosted");
    let nodes = list(&reg, "", "nodes", None).await;
    let name = nodes[0]["metadata"]["name"]
        .as_str()
        .expect("node name")
        .to_string();
    let def = reg.resource("", "v1", "nodes").expect("nodes");
    let (applied_before, _) = world.sync_counts();
    reg.delete(&def, None, &name, &Default::default())
        .await
        .expect("delete the node");
    eventually("the node registered again", || async {
        list(&reg, "", "nodes", None)
            .await
            .iter()
            .any(|n| n["metadata"]["name"] == name.as_str())
    })
    .await;
    assert!(world.sync_counts().0 > applied_before);

    // The repair's own creation is what moved the cluster's ownership epoch, so the passes
    // after it skip the cluster again.
    eventually("resyncs skipped again after the repair", || async {
        let (applied, skipped) = world.sync_counts();
        tokio::time::sleep(Duration::from_millis(600)).await;
        let (applied_after, skipped_after) = world.sync_counts();
        applied_after == applied && skipped_after >= skipped + 3
    })
    .await;
}
