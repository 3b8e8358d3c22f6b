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
use k8s_openapi::api::core::v1::{Node, Taint};
use kube::runtime::{WatchStreamExt, watcher};
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

/// Nodes by name, as the cache keeps them.
type NodeMap = HashMap<String, Arc<NodeView>>;

/// One cluster's Node watch.
struct NodeCache {
    store: Arc<std::sync::RwLock<NodeMap>>,
    /// Listed, and the last watch call succeeded.
    healthy: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for NodeCache {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the Machine controller reads of a Node: whether it is Ready, its labels and its
/// taints. The Node cache keeps this for every node of every workload cluster, so it is
/// small: a fleet of 10,000 clusters has 90,000 of them.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// The `Ready` condition's status is `True`.
    pub ready: bool,
    /// The labels, sorted by key, each as `key`, NUL, `value`, NUL: one allocation.
    labels: Box<str>,
    pub taints: Vec<Taint>,
}

/// Equal when the Machine controller would decide the same: it never reads a taint's
/// `timeAdded`, so a taint added again with a new one is no news.
impl PartialEq for NodeView {
    fn eq(&self, other: &Self) -> bool {
        self.ready == other.ready
            && self.labels == other.labels
            && self.taints.len() == other.taints.len()
            && self
                .taints
                .iter()
                .zip(&other.taints)
                .all(|(a, b)| a.key == b.key && a.value == b.value && a.effect == b.effect)
    }
}

impl NodeView {
    pub fn of(node: &Node) -> Self {
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let mut labels = String::new();
        // BTreeMap: sorted by key already.
        for (k, v) in node.metadata.labels.iter().flatten() {
            labels.push_str(k);
            labels.push('\0');
            labels.push_str(v);
            labels.push('\0');
        }
        Self {
            ready,
            labels: labels.into_boxed_str(),
            taints: node
                .spec
                .as_ref()
                .and_then(|s| s.taints.clone())
                .unwrap_or_default(),
        }
    }

    /// The node's label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Every label, by key.
    pub fn labels(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut parts = self.labels.split('\0');
        std::iter::from_fn(move || {
            let k = parts.next().filter(|k| !k.is_empty())?;
            Some((k, parts.next()?))
        })
    }
}

/// What the Node cache of a cluster knows about one node.
pub enum CachedNode {
    /// The cache is listed and healthy: the node as it is (None: no such node).
    Known(Option<Arc<NodeView>>),
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
        let node = cache
            .store
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned();
        Ok(CachedNode::Known(node))
    }

    /// Start the Node watch of one cluster.
    fn watch(&self, client: kube::Client, namespace: &str, in_process: bool) -> NodeCache {
        let store: Arc<std::sync::RwLock<NodeMap>> = Arc::default();
        let healthy = Arc::new(AtomicBool::new(false));
        let triggers = self.triggers.get().cloned();
        let namespace = namespace.to_string();
        let flag = Arc::clone(&healthy);
        let map = Arc::clone(&store);
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
            let mut stream = std::pin::pin!(watcher(api, config).default_backoff());
            let trigger = |name: &str| {
                if let Some(tx) = &triggers {
                    let _ = tx.send(ObjectKey::namespaced(&namespace, name));
                }
            };
            let write = || {
                map.write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            };
            // Only what the Machine controller reads of a node is kept, and an event that
            // changes none of it (heartbeats, pod CIDRs, images) wakes nobody.
            let apply = |node: &Node| {
                let name = node.metadata.name.clone().unwrap_or_default();
                let view = NodeView::of(node);
                let changed = write().get(&name).is_none_or(|known| **known != view);
                if changed {
                    write().insert(name.clone(), Arc::new(view));
                    trigger(&name);
                }
            };
            // A relist's nodes, gathered until it is complete.
            let mut relisted: Option<NodeMap> = None;
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::Apply(node)) => {
                        flag.store(true, Ordering::Release);
                        apply(&node);
                    }
                    Ok(watcher::Event::Delete(node)) => {
                        flag.store(true, Ordering::Release);
                        let name = node.metadata.name.clone().unwrap_or_default();
                        write().remove(&name);
                        trigger(&name);
                    }
                    Ok(watcher::Event::Init) => relisted = Some(HashMap::new()),
                    Ok(watcher::Event::InitApply(node)) => {
                        relisted.get_or_insert_with(HashMap::new).insert(
                            node.metadata.name.clone().unwrap_or_default(),
                            Arc::new(NodeView::of(&node)),
                        );
                    }
                    Ok(watcher::Event::InitDone) => {
                        flag.store(true, Ordering::Release);
                        // A relist (the first list, or after a watch could not resume) may
                        // have missed changes: the Machines of nodes that changed or went
                        // look again, the others are not woken.
                        let listed = relisted.take().unwrap_or_default();
                        let old = std::mem::replace(&mut *write(), listed.clone());
                        for (name, view) in &listed {
                            if old.get(name) != Some(view) {
                                trigger(name);
                            }
                        }
                        for name in old.keys().filter(|name| !listed.contains_key(*name)) {
                            trigger(name);
                        }
                    }
                    Err(error) => {
                        if flag.swap(false, Ordering::AcqRel) {
                            tracing::debug!(%error, "workload cluster Node watch failing");
                            // Its Machines find out (by asking the API) that it is unreachable.
                            let names: Vec<String> = map
                                .read()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .keys()
                                .cloned()
                                .collect();
                            for name in names {
                                trigger(&name);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn node(json: serde_json::Value) -> Node {
        serde_json::from_value(json).expect("node")
    }

    /// The cache keeps what the Machine controller reads and nothing else.
    #[test]
    fn a_node_view_keeps_what_the_machine_reads() {
        let full = node(serde_json::json!({
            "metadata": {
                "name": "n", "uid": "u", "resourceVersion": "7",
                "labels": {"b": "2", "a": "1", "empty": ""},
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
        }));
        let view = NodeView::of(&full);
        assert!(view.ready);
        assert_eq!(
            view.labels().collect::<Vec<_>>(),
            [("a", "1"), ("b", "2"), ("empty", "")]
        );
        assert_eq!(view.label("b"), Some("2"));
        assert_eq!(view.label("empty"), Some(""));
        assert_eq!(view.label("c"), None);
        assert_eq!(view.taints.len(), 1);
        assert_eq!(view.taints[0].key, "k");
        let bare = NodeView::of(&node(serde_json::json!({"metadata": {"name": "n"}})));
        assert!(!bare.ready);
        assert_eq!(bare.labels().count(), 0);
        assert!(bare.taints.is_empty());
    }

    /// Only what the Machine controller reads makes two views differ, so only that wakes it.
    #[test]
    fn only_what_the_machine_reads_changes_the_view() {
        let mut n = node(serde_json::json!({
            "metadata": {"name": "n", "labels": {"a": "b"}},
            "status": {"conditions": [{"type": "Ready", "status": "False"}]}
        }));
        let base = NodeView::of(&n);
        n.metadata.resource_version = Some("9".into());
        fn ready(node: &mut Node) -> &mut k8s_openapi::api::core::v1::NodeCondition {
            &mut node
                .status
                .as_mut()
                .expect("status")
                .conditions
                .as_mut()
                .expect("conditions")[0]
        }
        ready(&mut n).last_heartbeat_time = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        assert_eq!(NodeView::of(&n), base, "a heartbeat is not news");
        let not_ready_taint = |at: &str| {
            serde_json::from_value::<Taint>(serde_json::json!({
                "key": "node.kubernetes.io/not-ready", "effect": "NoExecute", "timeAdded": at
            }))
            .expect("taint")
        };
        n.spec.get_or_insert_default().taints = Some(vec![not_ready_taint("2026-12-07T00:00:00Z")]);
        let tainted = NodeView::of(&n);
        assert_ne!(tainted, base, "a new taint is news");
        n.spec.get_or_insert_default().taints = Some(vec![not_ready_taint("2026-12-07T00:00:10Z")]);
        assert_eq!(
            NodeView::of(&n),
            tainted,
            "the same taint added again by the next heartbeat is not"
        );
        n.spec.get_or_insert_default().taints = None;
        ready(&mut n).status = "True".into();
        let ready = NodeView::of(&n);
        assert_ne!(ready, base);
        n.metadata
            .labels
            .as_mut()
            .expect("labels")
            .insert("c".into(), "d".into());
        assert_ne!(NodeView::of(&n), ready);
    }
}
