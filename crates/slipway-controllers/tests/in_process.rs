//! Workload APIs served by the same process are reached through their router in memory, with
//! the same paths and authentication as over HTTPS; anything else is still reached over
//! HTTPS.

use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{ListParams, PostParams};
use sha2::{Digest, Sha256};
use slipway_controllers::{CachedNode, WorkloadClients};
use slipway_simhost::{HostConfig, WorkloadHost};

/// Nothing listens here: a request that gets through went through memory.
const UNREACHABLE: &str = "https://in-process.invalid:1";

async fn names<K>(client: kube::Client) -> Result<Vec<String>, kube::Error>
where
    K: kube::Resource<Scope = kube::core::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let list = kube::Api::<K>::all(client)
        .list(&ListParams::default())
        .await?;
    Ok(list
        .items
        .iter()
        .filter_map(|o| o.meta().name.clone())
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_workload_apis_are_reached_in_memory_with_their_authentication() {
    let dir = tempfile::tempdir().expect("temp dir");
    let host = WorkloadHost::start(
        HostConfig {
            dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().expect("addr"),
            compaction_interval: None,
        },
        slipway_api::workload_resources(),
    )
    .await
    .expect("host");
    let token = "s3cret-token";
    host.ensure_cluster("team-a.web", &hex::encode(Sha256::digest(token)))
        .await
        .expect("cluster");
    let real = host.kubeconfig("team-a.web", token);
    let in_memory = real.replace(host.base_url(), UNREACHABLE);
    assert_ne!(real, in_memory);

    let clients = WorkloadClients::default();
    clients.serve_in_process(UNREACHABLE, host.in_process_api());

    // Under the registered base URL: answered, though nothing listens there.
    let client = clients.get("team-a/web", &in_memory).await.expect("client");
    let namespaces = names::<Namespace>(client.clone()).await.expect("list");
    assert!(
        namespaces.contains(&"kube-system".to_string()),
        "{namespaces:?}"
    );

    // Writes and the Node watch behind the Machine controller's cache work the same way.
    let mut node = Node::default();
    node.metadata.name = Some("cp-0".into());
    node.metadata.labels = Some([("slipway.dev/pool".to_string(), "a".to_string())].into());
    kube::Api::<Node>::all(client)
        .create(&PostParams::default(), &node)
        .await
        .expect("create node");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match clients
            .node("team-a/web", &in_memory, "team-a", "cp-0")
            .await
            .expect("node")
        {
            CachedNode::Known(Some(n)) => {
                assert_eq!(n.label("slipway.dev/pool"), Some("a"));
                assert!(!n.ready, "no Ready condition yet");
                break;
            }
            CachedNode::Known(None) | CachedNode::Unknown => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the node never reached the cache"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }

    // The cluster's API still authenticates: a wrong token is refused with 401.
    let wrong = host
        .kubeconfig("team-a.web", "not-the-token")
        .replace(host.base_url(), UNREACHABLE);
    let refused = clients.get("team-a/other", &wrong).await.expect("client");
    match names::<Namespace>(refused).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 401, "{status:?}"),
        other => panic!("expected 401, got {other:?}"),
    }

    // Any other server is reached over HTTPS, as before: the host's real listener.
    let over_https = clients.get("team-a/https", &real).await.expect("client");
    let nodes = names::<Node>(over_https).await.expect("list over HTTPS");
    assert_eq!(nodes, vec!["cp-0".to_string()]);
}
