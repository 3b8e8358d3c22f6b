//! The workload clusters, as the controllers see them: a kube-rs client per cluster, built
//! from the kubeconfig the platform wrote for it and kept while that kubeconfig stays the
//! same, and a watch of the cluster's Nodes (as Cluster API's ClusterCacheTracker keeps one).
//!
//! The Node watch makes a machine's health pushed instead of polled: the Machine controller
//! reads nodes from the cache, and every Node event requeues the Machine of the same name, so
//! a Ready machine needs no periodic look at its node. While the watch is not listed yet, or
//! is failing (the cluster is unreachable), readers fall back to asking the API, which says
//! what is wrong.
//!
//! Workload APIs served by this same process (the simulator's, in `bench fleet`) can be
//! registered with [`WorkloadClients::serve_in_process`]: a kubeconfig whose server is under
//! that base URL then gets a client that hands each request to the API's router in memory,
//! with the same paths, bearer token and authentication, but no socket and no TLS. Every
//! other kubeconfig, and every one when nothing is registered, is reached over HTTPS.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use sha2::{Digest, Sha256};
use slipway_runtime::ObjectKey;
use tokio::sync::mpsc::UnboundedSender;

/// How long (seconds) one Node watch call lasts when the cluster's API is served in memory.
const WATCH_CALL_IN_PROCESS: u32 = 1800;

/// Clients and Node caches by cluster identity.
#[derive(Default)]
pub struct WorkloadClients {
    clusters: Mutex<HashMap<String, Entry>>,
    /// Workload APIs served by this process: their base URL and router.
    in_process: OnceLock<(String, axum::Router)>,
    /// Where Node events go: the Machine controller's queue (keys `namespace/node name`).
    triggers: OnceLock<UnboundedSender<ObjectKey>>,
}

struct Entry {
    digest: String,
    client: kube::Client,
    /// The same cluster with a read timeout that outlasts a quiet watch call.
    watch_client: kube::Client,
    /// Served by this process's router: no connection that could silently drop.
    in_process: bool,
    nodes: Option<NodeCache>,
}

/// One cluster's Node watch.
struct NodeCache {
    store: reflector::Store<Node>,
    /// Listed, and the last watch call succeeded.
    healthy: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for NodeCache {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the Node cache of a cluster knows about one node.
pub enum CachedNode {
    /// The cache is listed and healthy: the node as it is (None: no such node).
    Known(Option<Arc<Node>>),
    /// Not listed yet, or the watch is failing: ask the API.
    Unknown,
}

impl WorkloadClients {
    /// Send Node events to `triggers` (set once, by the Machine controller's builder).
    pub fn set_triggers(&self, triggers: UnboundedSender<ObjectKey>) {
        let _ = self.triggers.set(triggers);
    }

    /// Reach the workload APIs under `base_url` (`https://HOST:PORT`, each cluster under a
    /// path of its own) through `router` in memory instead of over HTTPS. Set once; clients
    /// built before keep their connections.
    pub fn serve_in_process(&self, base_url: &str, router: axum::Router) {
        let _ = self
            .in_process
            .set((base_url.trim_end_matches('/').to_string(), router));
    }

    /// A client that hands requests to an in-process router, if `config` points under its
    /// base URL.
    fn in_process_client(&self, config: &kube::Config) -> Result<Option<kube::Client>, String> {
        use kube::client::ConfigExt as _;
        let Some((base, router)) = self.in_process.get() else {
            return Ok(None);
        };
        let url = config.cluster_url.to_string();
        let under = url
            .strip_prefix(base.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if !under {
            return Ok(None);
        }
        let service = tower::ServiceBuilder::new()
            .layer(config.base_uri_layer())
            .option_layer(config.auth_layer().map_err(|e| e.to_string())?)
            .map_err(tower::BoxError::from)
            .service(router.clone());
        Ok(Some(kube::Client::new(
            service,
            config.default_namespace.clone(),
        )))
    }

    /// The client of cluster `identity` for `kubeconfig` (built on first use or when the
    /// kubeconfig changed; a new client drops the old Node watch).
    pub async fn get(&self, identity: &str, kubeconfig: &str) -> Result<kube::Client, String> {
        let digest = hex::encode(Sha256::digest(kubeconfig.as_bytes()));
        if let Some(entry) = self.lock().get(identity)
            && entry.digest == digest
        {
            return Ok(entry.client.clone());
        }
        let parsed = kube::config::Kubeconfig::from_yaml(kubeconfig).map_err(|e| e.to_string())?;
        let mut config = kube::Config::from_custom_kubeconfig(
            parsed,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let in_process = self.in_process_client(&config)?;
        let served_here = in_process.is_some();
        let (client, watch_client) = match in_process {
            // No connection to time out: one client serves requests and the watch alike.
            Some(client) => (client.clone(), client),
            None => {
                config.connect_timeout = Some(std::time::Duration::from_secs(5));
                let mut watch_config = config.clone();
                config.read_timeout = Some(std::time::Duration::from_secs(15));
                // A watch call lasts up to 290 s (kube-rs asks for that) and may be quiet
                // throughout.
                watch_config.read_timeout = Some(std::time::Duration::from_secs(330));
                (
                    kube::Client::try_from(config).map_err(|e| e.to_string())?,
                    kube::Client::try_from(watch_config).map_err(|e| e.to_string())?,
                )
            }
        };
        self.lock().insert(
            identity.to_string(),
            Entry {
                digest,
                client: client.clone(),
                watch_client,
                in_process: served_here,
                nodes: None,
            },
        );
        Ok(client)
    }

    /// Node `name` of cluster `identity` (whose Machines live in `namespace`) from the Node
    /// cache, which is started on first use.
    pub async fn node(
        &self,
        identity: &str,
        kubeconfig: &str,
        namespace: &str,
        name: &str,
    ) -> Result<CachedNode, String> {
        self.get(identity, kubeconfig).await?;
        let mut clusters = self.lock();
        let Some(entry) = clusters.get_mut(identity) else {
            return Ok(CachedNode::Unknown);
        };
        let cache = entry.nodes.get_or_insert_with(|| {
            self.watch(entry.watch_client.clone(), namespace, entry.in_process)
        });
        if !cache.healthy.load(Ordering::Acquire) {
            return Ok(CachedNode::Unknown);
        }
        let key = reflector::ObjectRef::<Node>::new(name);
        Ok(CachedNode::Known(cache.store.get(&key)))
    }

    /// Start the Node watch of one cluster.
    fn watch(&self, client: kube::Client, namespace: &str, in_process: bool) -> NodeCache {
        let (store, writer) = reflector::store();
        let healthy = Arc::new(AtomicBool::new(false));
        let triggers = self.triggers.get().cloned();
        let namespace = namespace.to_string();
        let flag = Arc::clone(&healthy);
        let reader = store.clone();
        let task = tokio::spawn(async move {
            let api: kube::Api<Node> = kube::Api::all(client);
            // Over the network each watch call lasts kube-rs's 290 s, which also bounds how
            // long a silently dropped connection goes unnoticed. In memory nothing can drop,
            // and thousands of clusters' watches ending every 290 s would be most of an idle
            // fleet's work: a call lasts half an hour, as kube-apiserver's own limit.
            let config = if in_process {
                watcher::Config::default().timeout(WATCH_CALL_IN_PROCESS)
            } else {
                watcher::Config::default()
            };
            let stream = reflector(
                writer,
                watcher(api, config)
                    .default_backoff()
                    // Kept for thousands of clusters: only what the Machine controller reads.
                    .modify(trim),
            );
            let mut stream = std::pin::pin!(stream);
            let trigger = |name: &str| {
                if let Some(tx) = &triggers {
                    let _ = tx.send(ObjectKey::namespaced(&namespace, name));
                }
            };
            let name_of = |node: &Node| node.metadata.name.clone().unwrap_or_default();
            // What the Machine controller reads of each node: events that change none of it
            // (heartbeats, pod CIDRs, images) wake nobody.
            let mut seen: HashMap<String, u64> = HashMap::new();
            let wake_if_changed = |seen: &mut HashMap<String, u64>, node: &Node| {
                let print = fingerprint(node);
                let name = name_of(node);
                if seen.insert(name.clone(), print) != Some(print) {
                    trigger(&name);
                }
            };
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::Apply(node)) => {
                        flag.store(true, Ordering::Release);
                        wake_if_changed(&mut seen, &node);
                    }
                    Ok(watcher::Event::Delete(node)) => {
                        flag.store(true, Ordering::Release);
                        let name = name_of(&node);
                        seen.remove(&name);
                        trigger(&name);
                    }
                    Ok(watcher::Event::InitDone) => {
                        flag.store(true, Ordering::Release);
                        // A relist (the first list, or after a watch could not resume) may
                        // have missed changes: the Machines of nodes that changed or went
                        // look again, the others are not woken.
                        let listed = reader.state();
                        let names: std::collections::HashSet<&str> = listed
                            .iter()
                            .filter_map(|n| n.metadata.name.as_deref())
                            .collect();
                        seen.retain(|name, _| {
                            let kept = names.contains(name.as_str());
                            if !kept {
                                trigger(name);
                            }
                            kept
                        });
                        for node in &listed {
                            wake_if_changed(&mut seen, node);
                        }
                    }
                    Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                    Err(error) => {
                        if flag.swap(false, Ordering::AcqRel) {
                            tracing::debug!(%error, "workload cluster Node watch failing");
                            // Its Machines find out (by asking the API) that it is unreachable.
                            for node in reader.state() {
                                trigger(&name_of(&node));
                            }
                        }
                    }
                }
            }
        });
        NodeCache {
            store,
            healthy,
            task,
        }
    }

    /// Forget cluster `identity` (deleted): its client and Node watch go.
    pub fn forget(&self, identity: &str) {
        self.lock().remove(identity);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.clusters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A digest of what the Machine controller reads of a node: its Ready status, labels and
/// taints.
/// A Node as the cache keeps it: its name, labels, taints and Ready condition, which is all
/// the Machine controller reads (and all [`fingerprint`] covers). Images, addresses, capacity,
/// system info and managed fields are most of a Node's size.
fn trim(node: &mut Node) {
    let meta = std::mem::take(&mut node.metadata);
    node.metadata = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: meta.name,
        labels: meta.labels,
        resource_version: meta.resource_version,
        uid: meta.uid,
        ..Default::default()
    };
    let taints = node.spec.take().and_then(|s| s.taints);
    node.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
        taints,
        ..Default::default()
    });
    let ready = node
        .status
        .take()
        .and_then(|s| s.conditions)
        .and_then(|cs| cs.into_iter().find(|c| c.type_ == "Ready"));
    node.status = Some(k8s_openapi::api::core::v1::NodeStatus {
        conditions: ready.map(|c| vec![c]),
        ..Default::default()
    });
}

fn fingerprint(node: &Node) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.as_str());
    ready.hash(&mut h);
    node.metadata.labels.hash(&mut h);
    if let Some(taints) = node.spec.as_ref().and_then(|s| s.taints.as_ref()) {
        for t in taints {
            (&t.key, &t.value, &t.effect).hash(&mut h);
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache keeps what the Machine controller reads and nothing else.
    #[test]
    fn a_trimmed_node_keeps_what_the_machine_reads() {
        let mut node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "n", "uid": "u", "resourceVersion": "7", "labels": {"a": "b"},
                "annotations": {"x": "y"},
                "managedFields": [{"manager": "kubelet", "operation": "Update"}]
            },
            "spec": {"podCIDR": "10.0.0.0/24", "providerID": "sim:///z/i-1",
                     "taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]},
            "status": {
                "conditions": [
                    {"type": "MemoryPressure", "status": "False"},
                    {"type": "Ready", "status": "True"}
                ],
                "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}],
                "capacity": {"cpu": "4"},
                "images": [{"names": ["registry.k8s.io/pause:3.10"], "sizeBytes": 1}]
            }
        }))
        .expect("node");
        let before = fingerprint(&node);
        trim(&mut node);
        assert_eq!(fingerprint(&node), before);
        assert_eq!(
            serde_json::to_value(&node).expect("json"),
            serde_json::json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": "n", "uid": "u", "resourceVersion": "7", "labels": {"a": "b"}},
                "spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}
            })
        );
    }

    #[test]
    fn only_what_the_machine_reads_changes_the_fingerprint() {
        let mut node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n", "labels": {"a": "b"}},
            "status": {"conditions": [{"type": "Ready", "status": "False"}]}
        }))
        .expect("node");
        let base = fingerprint(&node);
        node.metadata.resource_version = Some("9".into());
        fn ready(node: &mut Node) -> &mut k8s_openapi::api::core::v1::NodeCondition {
            &mut node
                .status
                .as_mut()
                .expect("status")
                .conditions
                .as_mut()
                .expect("conditions")[0]
        }
        ready(&mut node).last_heartbeat_time = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        assert_eq!(fingerprint(&node), base, "a heartbeat is not news");
        ready(&mut node).status = "True".into();
        let ready = fingerprint(&node);
        assert_ne!(ready, base);
        node.metadata
            .labels
            .as_mut()
            .expect("labels")
            .insert("c".into(), "d".into());
        assert_ne!(fingerprint(&node), ready);
    }
}
