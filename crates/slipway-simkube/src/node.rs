//! The Node a simulated kubelet registers for a machine, and its Ready/NotReady heartbeat.
//!
//! The input is a plain [`MachineNode`] (not the cloud crate's machine type), so this crate
//! depends on nothing but the Kubernetes types. Allocatable is capacity minus what a kubelet
//! typically reserves (system and kube reserved plus the hard eviction threshold): 100m CPU
//! per machine and 255Mi + 100Mi memory; pods are capped at 110, upstream's default.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;

use crate::common::time;
use crate::quantity::{mebibytes, millicores, units};

/// Zone label.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// Region label.
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";
/// Architecture label (`amd64`, `arm64`).
pub const ARCH_LABEL: &str = "kubernetes.io/arch";
/// Operating system label.
pub const OS_LABEL: &str = "kubernetes.io/os";
/// Hostname label (the node name).
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
/// Machine type label.
pub const INSTANCE_TYPE_LABEL: &str = "node.kubernetes.io/instance-type";
/// The Slipway node pool a node belongs to.
pub const POOL_LABEL: &str = "slipway.dev/pool";
/// The Slipway cluster a node belongs to.
pub const CLUSTER_LABEL: &str = "slipway.dev/cluster";
/// The role label and taint of control-plane nodes.
pub const CONTROL_PLANE_ROLE: &str = "node-role.kubernetes.io/control-plane";
/// The extended resource GPUs are advertised as.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// The most pods a node runs (kubelet's `maxPods` default).
pub const MAX_PODS: u64 = 110;
/// CPU a kubelet keeps for the system, in millicores.
pub const RESERVED_CPU_MILLI: u64 = 100;
/// Memory a kubelet keeps for the system and as eviction threshold, in MiB.
pub const RESERVED_MEMORY_MIB: u64 = 255 + 100;
/// The taint the node lifecycle controller puts on a node that is not Ready.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
/// The taint the node lifecycle controller puts on a node it cannot reach.
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";

/// Whether a node runs the control plane or workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    /// Labelled and tainted `node-role.kubernetes.io/control-plane`.
    ControlPlane,
    /// A worker of a node pool.
    Worker,
}

/// Everything the simulated kubelet knows about its machine.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineNode {
    /// The node name (the machine's host name).
    pub name: String,
    /// The Slipway cluster, for `slipway.dev/cluster`.
    pub cluster: String,
    /// The node pool, for `slipway.dev/pool` (empty for control-plane machines).
    pub pool: String,
    pub role: NodeRole,
    pub zone: String,
    pub region: String,
    /// `amd64` or `arm64`.
    pub arch: String,
    /// The machine type, e.g. `m5.xlarge`.
    pub instance_type: String,
    pub vcpu: u32,
    pub memory_mib: u64,
    pub gpus: u32,
    /// e.g. `v1.33.4` (a leading `v` is added when missing).
    pub kubelet_version: String,
    /// The machine's private address.
    pub internal_ip: String,
    /// The range pod IPs come from, e.g. `10.244.3.0/24`.
    pub pod_cidr: Option<String>,
    /// The provider's id for the machine (`sim://eu-west-1a/i-0abc`).
    pub provider_id: Option<String>,
    /// Extra labels (the pool's), applied over the well-known ones.
    pub labels: BTreeMap<String, String>,
    /// The pool's taints (control-plane machines also get the control-plane taint).
    pub taints: Vec<Taint>,
}

/// The Node object a kubelet registers for `m`, with its status Ready (or not) as of `now`.
pub fn build_node(m: &MachineNode, ready: bool, now: Timestamp) -> Node {
    let mut labels = BTreeMap::from([
        (ZONE_LABEL.to_string(), m.zone.clone()),
        (REGION_LABEL.to_string(), m.region.clone()),
        (ARCH_LABEL.to_string(), m.arch.clone()),
        (OS_LABEL.to_string(), "linux".to_string()),
        (HOSTNAME_LABEL.to_string(), m.name.clone()),
        (INSTANCE_TYPE_LABEL.to_string(), m.instance_type.clone()),
        (CLUSTER_LABEL.to_string(), m.cluster.clone()),
        // Older tooling still reads the beta labels.
        ("beta.kubernetes.io/arch".to_string(), m.arch.clone()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
    ]);
    if !m.pool.is_empty() {
        labels.insert(POOL_LABEL.into(), m.pool.clone());
    }
    let mut taints = m.taints.clone();
    if m.role == NodeRole::ControlPlane {
        labels.insert(CONTROL_PLANE_ROLE.into(), String::new());
        if !taints.iter().any(|t| t.key == CONTROL_PLANE_ROLE) {
            taints.push(Taint {
                key: CONTROL_PLANE_ROLE.into(),
                effect: "NoSchedule".into(),
                ..Taint::default()
            });
        }
    }
    labels.extend(m.labels.clone());
    let (capacity, allocatable) = resources(m);
    let version = if m.kubelet_version.starts_with('v') {
        m.kubelet_version.clone()
    } else {
        format!("v{}", m.kubelet_version)
    };
    let mut node = Node {
        metadata: ObjectMeta {
            name: Some(m.name.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: m.pod_cidr.clone(),
            pod_cidrs: m.pod_cidr.clone().map(|c| vec![c]),
            provider_id: m.provider_id.clone(),
            taints: (!taints.is_empty()).then_some(taints),
            ..NodeSpec::default()
        }),
        status: Some(NodeStatus {
            capacity: Some(capacity),
            allocatable: Some(allocatable),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: m.internal_ip.clone(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: m.name.clone(),
                },
            ]),
            node_info: Some(NodeSystemInfo {
                architecture: m.arch.clone(),
                operating_system: "linux".into(),
                kubelet_version: version.clone(),
                kube_proxy_version: version,
                container_runtime_version: "containerd://2.0.5".into(),
                kernel_version: "6.8.0-slipway".into(),
                os_image: "Slipway Sim OS".into(),
                machine_id: m.name.clone(),
                system_uuid: m.name.clone(),
                boot_id: m.name.clone(),
                ..NodeSystemInfo::default()
            }),
            ..NodeStatus::default()
        }),
    };
    set_node_ready(&mut node, ready, now);
    node
}

/// Capacity and allocatable of a machine.
pub fn resources(m: &MachineNode) -> (BTreeMap<String, Quantity>, BTreeMap<String, Quantity>) {
    let cpu_milli = u64::from(m.vcpu) * 1000;
    let mut capacity = BTreeMap::from([
        ("cpu".to_string(), millicores(cpu_milli)),
        ("memory".to_string(), mebibytes(m.memory_mib)),
        ("pods".to_string(), units(MAX_PODS)),
        ("ephemeral-storage".to_string(), mebibytes(100 * 1024)),
    ]);
    if m.gpus > 0 {
        capacity.insert(GPU_RESOURCE.into(), units(u64::from(m.gpus)));
    }
    let mut allocatable = capacity.clone();
    allocatable.insert(
        "cpu".into(),
        millicores(cpu_milli.saturating_sub(RESERVED_CPU_MILLI)),
    );
    allocatable.insert(
        "memory".into(),
        mebibytes(m.memory_mib.saturating_sub(RESERVED_MEMORY_MIB)),
    );
    (capacity, allocatable)
}

/// Set the node's Ready condition (and the pressure conditions a healthy kubelet reports
/// False), keeping transition times of conditions whose status does not change. A NotReady
/// node also gets the `node.kubernetes.io/not-ready` NoSchedule and NoExecute taints, as the
/// node lifecycle controller adds them; a Ready one loses them.
pub fn set_node_ready(node: &mut Node, ready: bool, now: Timestamp) {
    let status = node.status.get_or_insert_with(NodeStatus::default);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let wanted = [
        (
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        (
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        (
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        if ready {
            (
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status",
            )
        } else {
            (
                "Ready",
                "False",
                "KubeletNotReady",
                "kubelet stopped posting node status",
            )
        },
    ];
    for (type_, status_, reason, message) in wanted {
        let new = NodeCondition {
            type_: type_.into(),
            status: status_.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_heartbeat_time: Some(time(now)),
            last_transition_time: Some(time(now)),
        };
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) => {
                let keep = (c.status == new.status).then(|| c.last_transition_time.clone());
                *c = new;
                if let Some(t) = keep {
                    c.last_transition_time = t;
                }
            }
            None => conditions.push(new),
        }
    }
    let spec = node.spec.get_or_insert_with(NodeSpec::default);
    let taints = spec.taints.get_or_insert_with(Vec::new);
    if ready {
        taints.retain(|t| t.key != NOT_READY_TAINT);
    } else {
        // Like the node lifecycle controller: a taint already there keeps its `timeAdded`,
        // so a heartbeat of a node that stays NotReady changes nothing in its spec.
        for effect in ["NoSchedule", "NoExecute"] {
            if !taints
                .iter()
                .any(|t| t.key == NOT_READY_TAINT && t.effect == effect)
            {
                taints.push(Taint {
                    key: NOT_READY_TAINT.into(),
                    effect: effect.into(),
                    time_added: (effect == "NoExecute").then(|| time(now)),
                    ..Taint::default()
                });
            }
        }
    }
    if taints.is_empty() {
        spec.taints = None;
    }
}

/// When the node's Ready condition last changed, if it has one.
pub fn ready_since(node: &Node) -> Option<Timestamp> {
    node.status
        .as_ref()?
        .conditions
        .as_deref()?
        .iter()
        .find(|c| c.type_ == "Ready")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::node_ready;

    pub(crate) fn machine(name: &str, zone: &str) -> MachineNode {
        MachineNode {
            name: name.into(),
            cluster: "payments-eu".into(),
            pool: "general".into(),
            role: NodeRole::Worker,
            zone: zone.into(),
            region: "eu-west-1".into(),
            arch: "amd64".into(),
            instance_type: "m5.xlarge".into(),
            vcpu: 4,
            memory_mib: 16384,
            gpus: 0,
            kubelet_version: "1.33.4".into(),
            internal_ip: "10.0.1.10".into(),
            pod_cidr: Some("10.244.1.0/24".into()),
            provider_id: None,
            labels: BTreeMap::from([("workload".into(), "general".into())]),
            taints: vec![],
        }
    }

    #[test]
    fn a_worker_node_like_a_kubelet_registers_it() {
        let t = Timestamp::from_second(1_800_000_000).unwrap();
        let node = build_node(&machine("n1", "eu-west-1a"), true, t);
        let labels = node.metadata.labels.as_ref().unwrap();
        for (k, v) in [
            (ZONE_LABEL, "eu-west-1a"),
            (REGION_LABEL, "eu-west-1"),
            (ARCH_LABEL, "amd64"),
            (OS_LABEL, "linux"),
            (INSTANCE_TYPE_LABEL, "m5.xlarge"),
            (POOL_LABEL, "general"),
            (CLUSTER_LABEL, "payments-eu"),
            ("workload", "general"),
        ] {
            assert_eq!(labels.get(k).map(String::as_str), Some(v), "{k}");
        }
        let status = node.status.as_ref().unwrap();
        let alloc = status.allocatable.as_ref().unwrap();
        assert_eq!(alloc["cpu"].0, "3900m");
        assert_eq!(alloc["pods"].0, "110");
        assert_eq!(status.capacity.as_ref().unwrap()["cpu"].0, "4");
        assert_eq!(
            status.node_info.as_ref().unwrap().kubelet_version,
            "v1.33.4"
        );
        assert!(node_ready(&node));
        assert!(node.spec.as_ref().unwrap().taints.is_none());
    }

    #[test]
    fn control_plane_and_gpu_nodes() {
        let t = Timestamp::from_second(1_800_000_000).unwrap();
        let mut m = machine("cp1", "eu-west-1b");
        m.role = NodeRole::ControlPlane;
        m.pool = String::new();
        m.gpus = 1;
        let node = build_node(&m, true, t);
        let labels = node.metadata.labels.as_ref().unwrap();
        assert!(labels.contains_key(CONTROL_PLANE_ROLE));
        assert!(!labels.contains_key(POOL_LABEL));
        let taints = node.spec.as_ref().unwrap().taints.as_ref().unwrap();
        assert_eq!(taints[0].key, CONTROL_PLANE_ROLE);
        assert_eq!(
            node.status.as_ref().unwrap().capacity.as_ref().unwrap()[GPU_RESOURCE].0,
            "1"
        );
    }

    #[test]
    fn not_ready_taints_and_transition_times() {
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        let t1 = Timestamp::from_second(1_800_000_060).unwrap();
        let t2 = Timestamp::from_second(1_800_000_120).unwrap();
        let mut node = build_node(&machine("n1", "a"), true, t0);
        set_node_ready(&mut node, true, t1);
        assert_eq!(
            ready_since(&node),
            Some(t0),
            "heartbeat keeps the transition"
        );
        set_node_ready(&mut node, false, t2);
        assert_eq!(ready_since(&node), Some(t2));
        assert!(!node_ready(&node));
        let taints = node.spec.as_ref().unwrap().taints.as_ref().unwrap();
        assert_eq!(taints.len(), 2);
        let t3 = Timestamp::from_second(1_800_000_180).unwrap();
        let before = node.spec.clone();
        set_node_ready(&mut node, false, t3);
        assert_eq!(
            node.spec, before,
            "a heartbeat of a node that stays NotReady keeps its taints as they were"
        );
        set_node_ready(&mut node, true, t2);
        assert!(node.spec.as_ref().unwrap().taints.is_none());
    }
}
