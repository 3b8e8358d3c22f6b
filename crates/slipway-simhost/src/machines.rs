//! From cloud machines to workload clusters: what the simulated machines' kubelets and
//! kubeadm do.
//!
//! Level-triggered over the whole set of a cluster's machines ([`plan`], pure): a cluster's
//! API exists once a control-plane machine booted with the cluster's admin token; it answers
//! only while a quorum of its control-plane members runs; each machine that has booted is a
//! Node, Ready while the machine runs and NotReady when it stopped (zone outage, failure);
//! the Node goes away when its machine is gone. The cluster itself is deleted once it has no
//! control-plane member left (the disks holding its etcd are gone).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Taint as K8sTaint;
use slipway_simkube::node::{MachineNode, NOT_READY_TAINT, NodeRole, build_node};

use serde_json::{Value, json};
use slipway_provider::{Catalog, MACHINE_TAG, Machine, MachinePhase, MachineReason};

use crate::bootstrap::{Bootstrap, Role};

/// The label naming the machine a Node runs on.
pub const NODE_MACHINE_LABEL: &str = "slipway.dev/machine-id";

/// What one cluster should look like, given its machines.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterPlan {
    pub cluster: String,
    /// The admin token hash to create the cluster with, once a control-plane machine runs.
    pub create_with_token: Option<String>,
    /// Control-plane members (not deleted by their owner) and how many of them run.
    pub members: usize,
    pub members_running: usize,
    /// The cluster should no longer exist (it had control-plane machines and none is left).
    pub delete: bool,
    /// Nodes that should exist, by name.
    pub nodes: BTreeMap<String, Value>,
    /// The control plane's static pods (kube-apiserver and etcd per control-plane node, in
    /// `kube-system`), by name: they record which versions each control-plane machine runs.
    pub static_pods: BTreeMap<String, Value>,
}

impl ClusterPlan {
    /// Whether the API answers: a quorum of members runs.
    pub fn has_quorum(&self) -> bool {
        self.members > 0 && self.members_running * 2 > self.members
    }

    /// Why the API is down, if it is.
    pub fn unavailable_reason(&self) -> Option<String> {
        (!self.has_quorum()).then(|| {
            format!(
                "{} of {} control-plane machines running: no etcd quorum",
                self.members_running, self.members
            )
        })
    }
}

/// A machine with its bootstrap document, when it has a readable one.
pub struct Known<'a> {
    pub machine: &'a Machine,
    pub bootstrap: &'a Bootstrap,
}

/// Whether a machine's `kubeadm join` trusts the cluster's API: its CA pin, when it has one,
/// matches the CA the API serves with (`ca_pin`). A machine that does not trust it never
/// joins: no Node, no control-plane member.
pub fn trusts(bootstrap: &Bootstrap, ca_pin: &str) -> bool {
    bootstrap
        .ca_cert_hash
        .as_deref()
        .is_none_or(|pin| pin == ca_pin)
}

/// The name of the Node a machine registers: the Slipway Machine's name when tagged (as a
/// hostname would be), else the provider's id.
pub fn node_name(machine: &Machine) -> String {
    machine
        .spec
        .tags
        .get(MACHINE_TAG)
        .and_then(|t| t.rsplit('/').next())
        .filter(|n| !n.is_empty())
        .map_or_else(|| machine.id.to_ascii_lowercase(), str::to_string)
}

fn is_member(m: &Machine) -> bool {
    !(m.status.phase == MachinePhase::Terminated
        || (m.status.phase == MachinePhase::Terminating
            && m.status.reason == Some(MachineReason::Deleted)))
}

/// Plan one cluster from all its machines (any phase).
pub fn plan(cluster: &str, machines: &[Known<'_>], catalog: &Catalog) -> ClusterPlan {
    let control_plane: Vec<_> = machines
        .iter()
        .filter(|k| k.bootstrap.role == Role::ControlPlane)
        .collect();
    let members = control_plane
        .iter()
        .filter(|k| is_member(k.machine))
        .count();
    let members_running = control_plane
        .iter()
        .filter(|k| k.machine.status.phase == MachinePhase::Running)
        .count();
    // The first control-plane machine to boot ran `kubeadm init` with the token.
    let create_with_token = control_plane
        .iter()
        .filter(|k| k.machine.status.running_at.is_some())
        .min_by_key(|k| (k.machine.status.running_at, k.machine.id.clone()))
        .and_then(|k| k.bootstrap.admin_token_sha256.clone());
    let delete = !control_plane.is_empty() && members == 0;
    let nodes = machines
        .iter()
        .filter(|k| k.machine.status.running_at.is_some() && !k.machine.status.phase.is_terminal())
        .map(|k| (node_name(k.machine), node(k, catalog)))
        .collect();
    let static_pods = control_plane
        .iter()
        .filter(|k| k.machine.status.running_at.is_some() && !k.machine.status.phase.is_terminal())
        .flat_map(|k| control_plane_pods(k))
        .map(|p| {
            (
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                p,
            )
        })
        .collect();
    ClusterPlan {
        cluster: cluster.to_string(),
        create_with_token,
        members,
        members_running,
        delete,
        nodes,
        static_pods,
    }
}

/// The etcd version a control-plane machine runs when its bootstrap does not say.
pub const DEFAULT_ETCD_VERSION: &str = "3.5.21";

fn kubelet_version(m: &Machine) -> String {
    if m.spec.kubelet_version.starts_with('v') {
        m.spec.kubelet_version.clone()
    } else {
        format!("v{}", m.spec.kubelet_version)
    }
}

/// The mirror pods kubeadm's static manifests give a control-plane machine: kube-apiserver at
/// the machine's Kubernetes version and etcd at its etcd version.
pub fn control_plane_pods(k: &Known<'_>) -> Vec<Value> {
    let node = node_name(k.machine);
    let version = kubelet_version(k.machine);
    let etcd = k
        .bootstrap
        .etcd_version
        .clone()
        .unwrap_or_else(|| DEFAULT_ETCD_VERSION.to_string());
    [
        ("kube-apiserver", format!("registry.k8s.io/kube-apiserver:{version}")),
        ("etcd", format!("registry.k8s.io/etcd:{etcd}-0")),
    ]
    .into_iter()
    .map(|(component, image)| {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": format!("{component}-{node}"),
                "namespace": "kube-system",
                "labels": {"component": component, "tier": "control-plane"},
                "annotations": {"kubernetes.io/config.source": "file", "kubernetes.io/config.mirror": format!("{component}-{node}")},
            },
            "spec": {
                "nodeName": node,
                "priorityClassName": "system-node-critical",
                "hostNetwork": true,
                "tolerations": [{"operator": "Exists", "effect": "NoExecute"}],
                "containers": [{"name": component, "image": image}],
            },
        })
    })
    .collect()
}

/// The Node a booted machine's kubelet registers (spec, labels and status), built by
/// [`slipway_simkube::node::build_node`] from what the machine is. Its times are the machine's
/// last phase change, so planning twice gives the same Node.
pub fn node(k: &Known<'_>, catalog: &Catalog) -> Value {
    let m = k.machine;
    let ty = catalog.machine_type(&m.spec.machine_type);
    let mut labels: BTreeMap<String, String> = k.bootstrap.node_labels.clone();
    labels.insert(NODE_MACHINE_LABEL.to_string(), m.id.clone());
    labels.insert(
        "slipway.dev/capacity-type".to_string(),
        match m.spec.capacity_type {
            slipway_provider::CapacityType::Spot => "spot",
            slipway_provider::CapacityType::OnDemand => "on-demand",
        }
        .to_string(),
    );
    let machine = MachineNode {
        name: node_name(m),
        cluster: k.bootstrap.cluster.clone(),
        pool: k.bootstrap.pool.clone().unwrap_or_default(),
        role: match k.bootstrap.role {
            Role::ControlPlane => NodeRole::ControlPlane,
            Role::Worker => NodeRole::Worker,
        },
        zone: m.spec.zone.clone(),
        region: m.spec.region.clone(),
        arch: ty.map_or("amd64", |t| t.arch.as_str()).to_string(),
        instance_type: m.spec.machine_type.clone(),
        vcpu: ty.map_or(2, |t| t.vcpu),
        memory_mib: ty.map_or(4096, |t| t.memory_mib),
        gpus: ty.and_then(|t| t.gpu.as_ref()).map_or(0, |g| g.count),
        kubelet_version: m.spec.kubelet_version.clone(),
        internal_ip: m
            .status
            .private_ip
            .map(|ip| ip.to_string())
            .unwrap_or_default(),
        pod_cidr: m.status.private_ip.map(pod_cidr),
        provider_id: Some(m.status.provider_id.clone()),
        labels,
        taints: k
            .bootstrap
            .node_taints
            .iter()
            .map(|t| K8sTaint {
                key: t.key.clone(),
                value: t.value.clone(),
                effect: t.effect.clone(),
                time_added: None,
            })
            .collect(),
    };
    let running = m.status.phase == MachinePhase::Running;
    let mut node = serde_json::to_value(build_node(&machine, running, m.status.phase_changed_at))
        .unwrap_or(Value::Null);
    node["apiVersion"] = json!("v1");
    node["kind"] = json!("Node");
    node
}

/// The pod range of a node: a /24 of 100.64.0.0/10 from the last two octets of the machine's
/// address, unique within a cluster whose subnets stay inside one /16 below x.x.64.0.
fn pod_cidr(ip: Ipv4Addr) -> String {
    let [_, _, c, d] = ip.octets();
    format!("100.{}.{}.0/24", 64 + (c % 64), d)
}

/// Whether a stored Node differs from the planned one in anything the kubelet owns (labels it
/// set, taints, readiness, capacity, versions). Labels and taints added by others are kept.
pub fn node_needs_update(stored: &Value, planned: &Value) -> bool {
    let labels_missing = planned["metadata"]["labels"]
        .as_object()
        .is_some_and(|want| {
            want.iter()
                .any(|(k, v)| stored["metadata"]["labels"].get(k) != Some(v))
        });
    let taints = |v: &Value| -> BTreeSet<String> {
        v["spec"]["taints"]
            .as_array()
            .map(|a| a.iter().map(|t| t.to_string()).collect())
            .unwrap_or_default()
    };
    let ready = |v: &Value| -> Option<Value> {
        v["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .map(|c| c["status"].clone())
    };
    labels_missing
        || !taints(planned).is_subset(&taints(stored))
        || not_ready_taint_stale(stored, planned)
        || ready(stored) != ready(planned)
        || stored["status"]["nodeInfo"] != planned["status"]["nodeInfo"]
        || stored["status"]["allocatable"] != planned["status"]["allocatable"]
}

fn not_ready_taint_stale(stored: &Value, planned: &Value) -> bool {
    let has = |v: &Value| {
        v["spec"]["taints"]
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t["key"] == NOT_READY_TAINT))
    };
    has(stored) && !has(planned)
}

/// The Node to write: the stored one with the kubelet's labels, taints and status applied
/// (the not-ready taints follow readiness; other taints and labels are left alone).
pub fn merge_node(stored: &Value, planned: &Value) -> Value {
    let mut out = stored.clone();
    if let (Some(dst), Some(src)) = (
        out["metadata"]["labels"].as_object_mut(),
        planned["metadata"]["labels"].as_object(),
    ) {
        for (k, v) in src {
            dst.insert(k.clone(), v.clone());
        }
    } else {
        out["metadata"]["labels"] = planned["metadata"]["labels"].clone();
    }
    let mut taints: Vec<Value> = stored["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t["key"] != NOT_READY_TAINT)
        .collect();
    for t in planned["spec"]["taints"].as_array().into_iter().flatten() {
        if !taints.contains(t) {
            taints.push(t.clone());
        }
    }
    out["spec"]["taints"] = Value::Array(taints);
    out["status"] = planned["status"].clone();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::Taint;
    use slipway_provider::{CapacityType, MachineSpec, MachineStatus, Tags};

    fn catalog() -> Catalog {
        serde_json::from_value(json!({
            "regions": [{"name": "eu-west-1", "zones": [{"name": "eu-west-1a", "machineTypes": ["m5.large", "g5.2xlarge"]}]}],
            "machineTypes": [
                {"name": "m5.large", "family": "general", "vcpu": 2, "memoryMib": 8192, "arch": "amd64", "onDemandHourly": 0.096, "spotHourly": 0.035},
                {"name": "g5.2xlarge", "family": "gpu", "vcpu": 8, "memoryMib": 32768, "gpu": {"count": 1, "model": "A10G"}, "arch": "amd64", "onDemandHourly": 1.212, "spotHourly": 0.45}
            ]
        }))
        .expect("catalog")
    }

    fn machine(id: &str, phase: MachinePhase, booted: bool) -> Machine {
        let now = jiff::Timestamp::now();
        Machine {
            id: id.into(),
            idempotency_key: id.into(),
            spec: MachineSpec {
                region: "eu-west-1".into(),
                zone: "eu-west-1a".into(),
                machine_type: "g5.2xlarge".into(),
                capacity_type: CapacityType::Spot,
                subnet_id: "subnet-1".into(),
                image: "slipway-ubuntu-24.04".into(),
                kubelet_version: "1.33.4".into(),
                tags: Tags::from([(MACHINE_TAG.to_string(), format!("team/{id}"))]),
                user_data: Default::default(),
                private_ip: None,
            },
            status: MachineStatus {
                phase,
                provider_id: format!("sim://eu-west-1a/{id}"),
                private_ip: Some("10.0.0.7".parse().expect("ip")),
                created_at: now,
                phase_changed_at: now,
                running_at: booted.then_some(now),
                terminated_at: None,
                reason: None,
                message: None,
            },
        }
    }

    fn boot(role: Role, token: Option<&str>) -> Bootstrap {
        Bootstrap {
            cluster: "c".into(),
            role,
            pool: (role == Role::Worker).then(|| "gpu".to_string()),
            admin_token_sha256: token.map(str::to_string),
            ca_cert_hash: None,
            etcd_version: None,
            node_labels: BTreeMap::from([("workload".into(), "ml".into())]),
            node_taints: vec![Taint {
                key: "nvidia.com/gpu".into(),
                value: Some("true".into()),
                effect: "NoSchedule".into(),
            }],
        }
    }

    #[test]
    fn a_join_trusts_only_the_ca_it_pinned() {
        let pin = format!("sha256:{}", "a".repeat(64));
        let mut b = boot(Role::Worker, None);
        assert!(trusts(&b, &pin), "no pin: nothing to check");
        b.ca_cert_hash = Some(pin.clone());
        assert!(trusts(&b, &pin));
        b.ca_cert_hash = Some(format!("sha256:{}", "b".repeat(64)));
        assert!(!trusts(&b, &pin));
    }

    #[test]
    fn quorum_needs_a_majority_of_members() {
        let cat = catalog();
        let cp = boot(Role::ControlPlane, Some("hash"));
        let ms = [
            machine("cp-1", MachinePhase::Running, true),
            machine("cp-2", MachinePhase::Failed, true),
            machine("cp-3", MachinePhase::Provisioning, false),
        ];
        let known: Vec<_> = ms
            .iter()
            .map(|machine| Known {
                machine,
                bootstrap: &cp,
            })
            .collect();
        let p = plan("c", &known, &cat);
        assert_eq!((p.members, p.members_running), (3, 1));
        assert!(!p.has_quorum());
        assert_eq!(p.create_with_token.as_deref(), Some("hash"));
        assert_eq!(
            p.nodes.len(),
            2,
            "booted machines are nodes, the booting one not yet"
        );
        assert!(!p.delete);

        let ms = [
            machine("cp-1", MachinePhase::Running, true),
            machine("cp-2", MachinePhase::Running, true),
            machine("cp-3", MachinePhase::Failed, true),
        ];
        let known: Vec<_> = ms
            .iter()
            .map(|machine| Known {
                machine,
                bootstrap: &cp,
            })
            .collect();
        assert!(plan("c", &known, &cat).has_quorum());
    }

    #[test]
    fn a_cluster_whose_control_plane_is_gone_is_deleted() {
        let cat = catalog();
        let cp = boot(Role::ControlPlane, Some("hash"));
        let mut gone = machine("cp-1", MachinePhase::Terminating, true);
        gone.status.reason = Some(MachineReason::Deleted);
        let known = [Known {
            machine: &gone,
            bootstrap: &cp,
        }];
        let p = plan("c", &known, &cat);
        assert!(p.delete);
        assert!(p.nodes.is_empty(), "a terminating machine is no node");
        // A spot interruption is not an owner's deletion, but the machine will not come back.
        let mut interrupted = machine("cp-1", MachinePhase::Terminated, true);
        interrupted.status.reason = Some(MachineReason::SpotInterruption);
        let known = [Known {
            machine: &interrupted,
            bootstrap: &cp,
        }];
        assert!(plan("c", &known, &cat).delete);
    }

    fn ready(n: &Value) -> &str {
        n["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .and_then(|c| c["status"].as_str())
            .unwrap_or_default()
    }

    #[test]
    fn nodes_carry_what_the_kubelet_registers() {
        let cat = catalog();
        let w = boot(Role::Worker, None);
        let m = machine("gpu-1", MachinePhase::Running, true);
        let n = node(
            &Known {
                machine: &m,
                bootstrap: &w,
            },
            &cat,
        );
        assert_eq!(n["metadata"]["name"], "gpu-1");
        let labels = &n["metadata"]["labels"];
        assert_eq!(labels["topology.kubernetes.io/zone"], "eu-west-1a");
        assert_eq!(labels["node.kubernetes.io/instance-type"], "g5.2xlarge");
        assert_eq!(labels["slipway.dev/pool"], "gpu");
        assert_eq!(labels["slipway.dev/capacity-type"], "spot");
        assert_eq!(labels["workload"], "ml");
        assert_eq!(n["status"]["capacity"]["nvidia.com/gpu"], "1");
        assert_eq!(n["status"]["capacity"]["cpu"], "8");
        assert!(n["status"]["allocatable"]["cpu"].is_string());
        assert_eq!(n["status"]["nodeInfo"]["kubeletVersion"], "v1.33.4");
        assert_eq!(n["spec"]["taints"][0]["key"], "nvidia.com/gpu");
        assert_eq!(n["spec"]["podCIDR"], "100.64.7.0/24");
        assert_eq!(ready(&n), "True");

        // Stopped: NotReady with the not-ready taints; back up, they go.
        let stopped = machine("gpu-1", MachinePhase::Failed, true);
        let down = node(
            &Known {
                machine: &stopped,
                bootstrap: &w,
            },
            &cat,
        );
        assert_eq!(ready(&down), "False");
        assert!(node_needs_update(&n, &down));
        let merged = merge_node(&n, &down);
        assert_eq!(merged["spec"]["taints"].as_array().map(Vec::len), Some(3));
        assert!(!node_needs_update(&merged, &down));
        assert!(node_needs_update(&merged, &n));
        let back = merge_node(&merged, &n);
        assert_eq!(back["spec"]["taints"].as_array().map(Vec::len), Some(1));
        assert!(!node_needs_update(&back, &n));
    }
}
