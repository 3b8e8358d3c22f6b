//! The workload host: clusters are created idempotently, survive a restart of the host with
//! their objects and credentials, and are deleted with everything in them.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use slipway_registry::{ListParams, WriteOptions};
use slipway_simhost::{HostConfig, HostError, WorkloadHost};

const HASH_A: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const HASH_B: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

async fn start(dir: &std::path::Path) -> Arc<WorkloadHost> {
    WorkloadHost::start(
        HostConfig {
            dir: dir.to_path_buf(),
            listen: "127.0.0.1:0".parse().expect("addr"),
            compaction_interval: Some(Duration::from_secs(300)),
        },
        slipway_api::resources(),
    )
    .await
    .expect("host starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_are_idempotent_durable_and_deletable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let host = start(dir.path()).await;
    assert!(matches!(
        host.ensure_cluster("Bad_Name", HASH_A).await,
        Err(HostError::InvalidName(_))
    ));
    assert!(matches!(
        host.ensure_cluster("ok", "abc").await,
        Err(HostError::InvalidTokenHash)
    ));

    let reg = host
        .ensure_cluster("team-a.payments", HASH_A)
        .await
        .expect("create");
    let again = host
        .ensure_cluster("team-a.payments", HASH_B)
        .await
        .expect("again");
    assert!(
        Arc::ptr_eq(&reg, &again),
        "a second ensure returns the same cluster"
    );
    host.ensure_cluster("team-b.web", HASH_B)
        .await
        .expect("create b");
    let cms = reg.resource("", "v1", "configmaps").expect("configmaps");
    reg.create(
        &cms,
        Some("kube-system"),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kept"}}),
        &WriteOptions::default(),
    )
    .await
    .expect("create configmap");
    assert!(
        host.endpoint("team-a.payments")
            .ends_with("/clusters/team-a.payments")
    );
    let kubeconfig = host.kubeconfig("team-a.payments", "secret");
    assert!(kubeconfig.contains("token: secret"));
    drop((reg, again));
    host.shutdown().await;
    drop(host);

    // A restart serves both again, with the first token and the object.
    let host = start(dir.path()).await;
    assert_eq!(host.clusters(), ["team-a.payments", "team-b.web"]);
    let regs = host.registrations().await.expect("registrations");
    assert_eq!(regs[0].admin_token_sha256, HASH_A);
    let reg = host.registry("team-a.payments").expect("served");
    let cms = reg.resource("", "v1", "configmaps").expect("configmaps");
    reg.get(&cms, Some("kube-system"), "kept")
        .await
        .expect("object survived");

    // Deleting removes the objects, the registration and the tenant.
    drop(reg);
    host.delete_cluster("team-a.payments")
        .await
        .expect("delete");
    host.delete_cluster("team-a.payments")
        .await
        .expect("delete is idempotent");
    assert_eq!(host.clusters(), ["team-b.web"]);
    let left = host
        .store()
        .list("/clusters/team-a.payments/", Default::default())
        .await
        .expect("list");
    assert!(
        left.items.is_empty(),
        "objects left behind: {:?}",
        left.items.len()
    );
    // Recreated, it starts empty.
    let reg = host
        .ensure_cluster("team-a.payments", HASH_B)
        .await
        .expect("recreate");
    let cms = reg.resource("", "v1", "configmaps").expect("configmaps");
    let list = reg
        .list(&cms, Some("kube-system"), &ListParams::default())
        .await
        .expect("list");
    assert!(list.items.is_empty());
}
