//! One pass of the in-cluster components of a simulated workload cluster: the decisions of
//! [`slipway_simkube`] (scheduler, kubelet, ReplicaSet, Deployment and disruption
//! controllers, pure functions over k8s-openapi types) applied to a snapshot of the cluster's
//! objects, turned into the writes that carry them out ([`Write`]).
//!
//! The driver ([`crate::world`]) applies the writes with optimistic concurrency and runs again
//! on the next change, so a lost or conflicting write is simply redone.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use slipway_simkube::common::{controller_ref, pod_active, set_pod_condition};
use slipway_simkube::kubelet::{KubeletAction, allocate_pod_ip};
use slipway_simkube::scheduler::{Decision, NodeInfo, scheduled_condition};
use slipway_simkube::{deployment, kubelet, pdb, replicaset, scheduler};

/// Everything a pass looks at, as stored.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Shared with the registry's watch cache: a pass copies only what it writes.
    pub nodes: Vec<Arc<Value>>,
    pub pods: Vec<Arc<Value>>,
    pub replica_sets: Vec<Arc<Value>>,
    pub deployments: Vec<Arc<Value>>,
    pub pdbs: Vec<Arc<Value>>,
    pub now: Timestamp,
}

/// The kinds a pass writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pod,
    ReplicaSet,
    Deployment,
    PodDisruptionBudget,
}

/// One write the driver makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Create {
        kind: Kind,
        namespace: String,
        object: Value,
    },
    /// Replace the object (its resourceVersion is the precondition).
    Update { kind: Kind, object: Value },
    /// Replace the object's status.
    UpdateStatus { kind: Kind, object: Value },
    Delete {
        kind: Kind,
        namespace: String,
        name: String,
        uid: String,
    },
}

/// Decode what decodes; an object that does not is left alone (and logged once per pass).
fn typed<T: DeserializeOwned>(values: &[Arc<Value>]) -> Vec<(T, &Value)> {
    values
        .iter()
        .map(|v| &**v)
        .filter_map(|v| match T::deserialize(v) {
            Ok(t) => Some((t, v)),
            Err(e) => {
                tracing::warn!(object = %v["metadata"]["name"], error = %e, "simulator cannot read an object; skipped");
                None
            }
        })
        .collect()
}

fn to_value<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

fn with_status<T: Serialize>(stored: &Value, status: &T) -> Value {
    let mut out = stored.clone();
    out["status"] = to_value(status);
    out
}

fn name(v: &Value) -> String {
    v["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn namespace(v: &Value) -> String {
    v["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn uid(v: &Value) -> String {
    v["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Whether two statuses differ in more than the timestamps a pass stamps.
fn status_changed(stored: &Value, wanted: &Value) -> bool {
    fn strip(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(k, _)| {
                        !matches!(
                            k.as_str(),
                            "lastUpdateTime"
                                | "lastTransitionTime"
                                | "lastHeartbeatTime"
                                | "lastProbeTime"
                        )
                    })
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), strip(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
            other => other.clone(),
        }
    }
    let have = strip(&stored["status"]);
    let want = strip(wanted);
    let empty = |v: &Value| v.is_null() || v.as_object().is_some_and(|m| m.is_empty());
    if empty(&have) && empty(&want) {
        return false;
    }
    have != want
}

fn by_namespace<'a, T>(items: &'a [(T, &'a Value)]) -> HashMap<String, Vec<&'a T>> {
    let mut out: HashMap<String, Vec<&T>> = HashMap::new();
    for (t, v) in items {
        out.entry(namespace(v)).or_default().push(t);
    }
    out
}

/// The Deployment controller.
fn deployments(
    s: &Snapshot,
    deps: &[(Deployment, &Value)],
    rss: &[(ReplicaSet, &Value)],
    pods: &[(Pod, &Value)],
) -> Vec<Write> {
    let rs_by_ns = by_namespace(rss);
    let pods_by_ns = by_namespace(pods);
    let mut writes = Vec::new();
    for (d, stored) in deps {
        if d.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let ns = namespace(stored);
        let sets: Vec<ReplicaSet> = rs_by_ns
            .get(&ns)
            .map(|v| v.iter().map(|r| (*r).clone()).collect())
            .unwrap_or_default();
        let ns_pods: Vec<Pod> = pods_by_ns
            .get(&ns)
            .map(|v| v.iter().map(|p| (*p).clone()).collect())
            .unwrap_or_default();
        let plan = deployment::reconcile(d, &sets, &ns_pods, s.now);
        if let Some(rs) = plan.create {
            let mut object = to_value(&rs);
            object["apiVersion"] = json!("apps/v1");
            object["kind"] = json!("ReplicaSet");
            writes.push(Write::Create {
                kind: Kind::ReplicaSet,
                namespace: ns.clone(),
                object,
            });
        }
        for (rs_name, replicas) in plan.scale {
            if let Some((_, rs_stored)) = rss
                .iter()
                .find(|(_, v)| namespace(v) == ns && name(v) == rs_name)
            {
                let mut rs = (*rs_stored).clone();
                rs["spec"]["replicas"] = json!(replicas);
                writes.push(Write::Update {
                    kind: Kind::ReplicaSet,
                    object: rs,
                });
            }
        }
        let status = to_value(&plan.status);
        if status_changed(stored, &status) {
            writes.push(Write::UpdateStatus {
                kind: Kind::Deployment,
                object: with_status(stored, &plan.status),
            });
        }
    }
    writes
}

/// The ReplicaSet controller.
fn replica_sets(s: &Snapshot, rss: &[(ReplicaSet, &Value)], pods: &[(Pod, &Value)]) -> Vec<Write> {
    let pods_by_ns = by_namespace(pods);
    let mut writes = Vec::new();
    for (rs, stored) in rss {
        let ns = namespace(stored);
        let ns_pods: Vec<Pod> = pods_by_ns
            .get(&ns)
            .map(|v| v.iter().map(|p| (*p).clone()).collect())
            .unwrap_or_default();
        let plan = replicaset::reconcile(rs, &ns_pods, s.now);
        for pod in plan.create {
            let mut object = to_value(&pod);
            object["apiVersion"] = json!("v1");
            object["kind"] = json!("Pod");
            writes.push(Write::Create {
                kind: Kind::Pod,
                namespace: ns.clone(),
                object,
            });
        }
        for pod_name in plan.delete {
            if let Some((_, p)) = pods
                .iter()
                .find(|(_, v)| namespace(v) == ns && name(v) == pod_name)
            {
                writes.push(Write::Delete {
                    kind: Kind::Pod,
                    namespace: ns.clone(),
                    name: pod_name,
                    uid: uid(p),
                });
            }
        }
        for pod_name in plan.adopt {
            if let Some((_, p)) = pods
                .iter()
                .find(|(_, v)| namespace(v) == ns && name(v) == pod_name)
            {
                let mut adopted = (*p).clone();
                let owner = to_value(&controller_ref("apps/v1", "ReplicaSet", &rs.metadata));
                match adopted["metadata"]["ownerReferences"].as_array_mut() {
                    Some(refs) => refs.push(owner),
                    None => adopted["metadata"]["ownerReferences"] = json!([owner]),
                }
                writes.push(Write::Update {
                    kind: Kind::Pod,
                    object: adopted,
                });
            }
        }
        let status = to_value(&plan.status);
        if status_changed(stored, &status) {
            writes.push(Write::UpdateStatus {
                kind: Kind::ReplicaSet,
                object: with_status(stored, &plan.status),
            });
        }
    }
    writes
}

/// The scheduler: binds pending pods one at a time, counting the pass's earlier bindings.
fn schedule(s: &Snapshot, nodes: &[(Node, &Value)], pods: &[(Pod, &Value)]) -> Vec<Write> {
    let mut bound: BTreeMap<String, Vec<Pod>> = nodes
        .iter()
        .map(|(n, _)| (n.metadata.name.clone().unwrap_or_default(), Vec::new()))
        .collect();
    for (p, _) in pods {
        if let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.as_ref())
            && pod_active(p)
            && let Some(list) = bound.get_mut(node)
        {
            list.push(p.clone());
        }
    }
    let mut writes = Vec::new();
    for (pod, stored) in pods {
        let spec = pod.spec.as_ref();
        if !pod_active(pod)
            || spec.and_then(|s| s.node_name.as_ref()).is_some()
            || spec
                .and_then(|s| s.scheduler_name.as_deref())
                .is_some_and(|n| n != "default-scheduler")
        {
            continue;
        }
        let infos: Vec<NodeInfo<'_>> = nodes
            .iter()
            .map(|(n, _)| NodeInfo {
                node: n,
                pods: bound
                    .get(n.metadata.name.as_deref().unwrap_or_default())
                    .map_or(&[][..], Vec::as_slice),
            })
            .collect();
        let decision = scheduler::schedule(pod, &infos);
        match &decision {
            Decision::Bind(node) => {
                let mut object = (*stored).clone();
                object["spec"]["nodeName"] = json!(node);
                let mut placed = pod.clone();
                if let Some(spec) = placed.spec.as_mut() {
                    spec.node_name = Some(node.clone());
                }
                if let Some(list) = bound.get_mut(node) {
                    list.push(placed);
                }
                writes.push(Write::Update {
                    kind: Kind::Pod,
                    object,
                });
            }
            Decision::Unschedulable(message) => {
                let already = pod
                    .status
                    .as_ref()
                    .and_then(|st| st.conditions.as_ref())
                    .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
                    .is_some_and(|c| c.status == "False" && c.message.as_deref() == Some(message));
                if already {
                    continue;
                }
                let mut status = pod.status.clone().unwrap_or_default();
                status.phase = Some("Pending".into());
                set_pod_condition(
                    status.conditions.get_or_insert_with(Vec::new),
                    scheduled_condition(&decision, s.now),
                );
                writes.push(Write::UpdateStatus {
                    kind: Kind::Pod,
                    object: with_status(stored, &status),
                });
            }
        }
    }
    writes
}

/// The kubelets: each bound pod's lifecycle on its node (or its deletion with the node).
fn kubelets(s: &Snapshot, nodes: &[(Node, &Value)], pods: &[(Pod, &Value)]) -> Vec<Write> {
    let by_name: HashMap<&str, &Node> = nodes
        .iter()
        .filter_map(|(n, _)| n.metadata.name.as_deref().map(|name| (name, n)))
        .collect();
    let mut used: HashMap<String, BTreeSet<Ipv4Addr>> = HashMap::new();
    for (p, _) in pods {
        if let (Some(node), Some(ip)) = (
            p.spec.as_ref().and_then(|s| s.node_name.clone()),
            p.status
                .as_ref()
                .and_then(|s| s.pod_ip.as_ref())
                .and_then(|ip| ip.parse::<Ipv4Addr>().ok()),
        ) {
            used.entry(node).or_default().insert(ip);
        }
    }
    let mut writes = Vec::new();
    for (pod, stored) in pods {
        let Some(node_name) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        let node = by_name.get(node_name.as_str()).copied();
        let cidr = node
            .and_then(|n| n.spec.as_ref())
            .and_then(|s| s.pod_cidr.clone());
        let taken = used.entry(node_name.clone()).or_default();
        let mut allocated = None;
        let action = kubelet::step(
            pod,
            node,
            || {
                let ip = cidr.as_deref().and_then(|c| allocate_pod_ip(c, taken));
                allocated = ip;
                ip
            },
            s.now,
        );
        if let Some(ip) = allocated {
            taken.insert(ip);
        }
        match action {
            KubeletAction::Nothing => {}
            KubeletAction::UpdateStatus(status) => writes.push(Write::UpdateStatus {
                kind: Kind::Pod,
                object: with_status(stored, &*status),
            }),
            KubeletAction::Delete(_) => {
                if pod.metadata.deletion_timestamp.is_none() {
                    writes.push(Write::Delete {
                        kind: Kind::Pod,
                        namespace: namespace(stored),
                        name: name(stored),
                        uid: uid(stored),
                    });
                }
            }
        }
    }
    writes
}

/// The disruption controller: each budget's status.
fn disruption_budgets(
    s: &Snapshot,
    pdbs: &[(PodDisruptionBudget, &Value)],
    pods: &[(Pod, &Value)],
) -> Vec<Write> {
    let all: Vec<Pod> = pods.iter().map(|(p, _)| p.clone()).collect();
    let mut writes = Vec::new();
    for (budget, stored) in pdbs {
        let status = pdb::status(budget, &all, None, s.now);
        if status_changed(stored, &to_value(&status)) {
            writes.push(Write::UpdateStatus {
                kind: Kind::PodDisruptionBudget,
                object: with_status(stored, &status),
            });
        }
    }
    writes
}

/// Every component's writes for one pass, in the order the real components would act.
pub fn reconcile(s: &Snapshot) -> Vec<Write> {
    reconcile_with_timers(s).0
}

/// [`reconcile`], and whether the outcome may change with time alone (a NotReady node whose
/// pods are evicted after their toleration, a rollout under its progress deadline, pods
/// waiting out minReadySeconds, disruptions that expire): then the components must look
/// again soon even if nothing changes; otherwise only a change can give them work.
pub fn reconcile_with_timers(s: &Snapshot) -> (Vec<Write>, bool) {
    let nodes = typed::<Node>(&s.nodes);
    let pods = typed::<Pod>(&s.pods);
    let rss = typed::<ReplicaSet>(&s.replica_sets);
    let deps = typed::<Deployment>(&s.deployments);
    let pdbs = typed::<PodDisruptionBudget>(&s.pdbs);
    let mut writes = deployments(s, &deps, &rss, &pods);
    writes.extend(replica_sets(s, &rss, &pods));
    writes.extend(schedule(s, &nodes, &pods));
    writes.extend(kubelets(s, &nodes, &pods));
    writes.extend(disruption_budgets(s, &pdbs, &pods));
    let timers = nodes.iter().any(|(n, _)| !node_ready(n))
        || deps.iter().any(|(d, _)| !deployment_settled(d))
        || rss.iter().any(|(rs, _)| {
            rs.spec
                .as_ref()
                .and_then(|sp| sp.min_ready_seconds)
                .unwrap_or(0)
                > 0
                && rs.status.as_ref().is_some_and(|st| {
                    st.available_replicas.unwrap_or(0) != st.ready_replicas.unwrap_or(0)
                })
        })
        || pdbs.iter().any(|(p, _)| {
            p.status
                .as_ref()
                .and_then(|st| st.disrupted_pods.as_ref())
                .is_some_and(|d| !d.is_empty())
        });
    (writes, timers)
}

fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A Deployment whose rollout finished: every replica updated, ready and available.
fn deployment_settled(d: &Deployment) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    d.status.as_ref().is_some_and(|st| {
        st.observed_generation >= d.metadata.generation
            && st.updated_replicas.unwrap_or(0) == want
            && st.available_replicas.unwrap_or(0) == want
            && st.replicas.unwrap_or(0) == want
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_that_differ_only_in_timestamps_are_equal() {
        let stored = json!({"status": {"replicas": 1, "conditions": [{"type": "Ready", "lastTransitionTime": "a"}]}});
        let same =
            json!({"replicas": 1, "conditions": [{"type": "Ready", "lastTransitionTime": "b"}]});
        let other = json!({"replicas": 2, "conditions": [{"type": "Ready"}]});
        assert!(!status_changed(&stored, &same));
        assert!(status_changed(&stored, &other));
        assert!(!status_changed(&json!({}), &json!({})));
    }

    #[test]
    fn a_pass_creates_a_replica_set_then_pods_then_binds_and_runs_them() {
        let now = Timestamp::now();
        let node = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "z"}},
            "spec": {"podCIDR": "100.64.1.0/24"},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}, "conditions": [{"type": "Ready", "status": "True"}]}
        });
        let d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "d1", "generation": 1},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
        });
        let mut s = Snapshot {
            nodes: vec![Arc::new(node)],
            deployments: vec![Arc::new(d)],
            now,
            ..Default::default()
        };
        let writes = reconcile(&s);
        let rs = writes
            .iter()
            .find_map(|w| match w {
                Write::Create {
                    kind: Kind::ReplicaSet,
                    object,
                    ..
                } => Some(object.clone()),
                _ => None,
            })
            .expect("a replica set");
        assert_eq!(rs["kind"], "ReplicaSet");
        let mut rs = rs;
        rs["metadata"]["uid"] = json!("rs1");
        s.replica_sets = vec![Arc::new(rs)];
        let pods: Vec<Value> = reconcile(&s)
            .into_iter()
            .filter_map(|w| match w {
                Write::Create {
                    kind: Kind::Pod,
                    object,
                    ..
                } => Some(object),
                _ => None,
            })
            .collect();
        assert_eq!(pods.len(), 2);
        s.pods = pods
            .into_iter()
            .enumerate()
            .map(|(i, mut p)| {
                p["metadata"]["name"] = json!(format!("web-{i}"));
                p["metadata"]["namespace"] = json!("default");
                p["metadata"]["uid"] = json!(format!("p{i}"));
                Arc::new(p)
            })
            .collect();
        let bound: Vec<Value> = reconcile(&s)
            .into_iter()
            .filter_map(|w| match w {
                Write::Update {
                    kind: Kind::Pod,
                    object,
                } => Some(object),
                _ => None,
            })
            .collect();
        assert_eq!(bound.len(), 2);
        assert!(bound.iter().all(|p| p["spec"]["nodeName"] == "n1"));
        s.pods = bound.into_iter().map(Arc::new).collect();
        let running: Vec<Value> = reconcile(&s)
            .into_iter()
            .filter_map(|w| match w {
                Write::UpdateStatus {
                    kind: Kind::Pod,
                    object,
                } => Some(object),
                _ => None,
            })
            .collect();
        assert_eq!(running.len(), 2);
        let ips: BTreeSet<&str> = running
            .iter()
            .filter_map(|p| p["status"]["podIP"].as_str())
            .collect();
        assert_eq!(
            ips.len(),
            2,
            "distinct pod IPs from the node's range: {ips:?}"
        );
        assert!(ips.iter().all(|ip| ip.starts_with("100.64.1.")));
    }
}
