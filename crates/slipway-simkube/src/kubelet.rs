//! The simulated kubelet and node lifecycle: what happens to a pod given the node it is
//! bound to.
//!
//! - Node Ready: a Pending pod starts at once (images are "pulled" instantly): phase Running,
//!   an IP from the node's pod range, `hostIP`, `startTime`, every container running, ready
//!   and started, and the conditions `PodReadyToStartContainers`, `Initialized`,
//!   `ContainersReady`, `Ready` and `PodScheduled` True. A Running pod that was marked not
//!   ready (its node was NotReady) becomes ready again.
//! - Node NotReady: its pods' `Ready` and `ContainersReady` go False (upstream's node
//!   lifecycle controller `MarkPodsNotReady`); once the node has been NotReady for longer than
//!   the pod tolerates the `node.kubernetes.io/not-ready:NoExecute` taint (300s by the default
//!   toleration; immediately without one) the pod is deleted (taint-based eviction).
//! - Node gone: the pod is deleted (upstream's pod garbage collector deletes pods bound to
//!   nodes that no longer exist).
//! - A pod being deleted is removed at once (the simulated containers stop instantly).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStatus, Node, Pod, PodCondition, PodIP,
    PodStatus, Taint,
};
use k8s_openapi::jiff::Timestamp;

use crate::common::{node_ready, pod_phase, set_pod_condition, time};
use crate::node::{NOT_READY_TAINT, ready_since};
use crate::scheduler::tolerates;

/// What the kubelet does with one pod.
#[derive(Debug, Clone, PartialEq)]
pub enum KubeletAction {
    /// Nothing to change.
    Nothing,
    /// Write this pod status.
    UpdateStatus(Box<PodStatus>),
    /// Delete the pod; the reason is for events and logs.
    Delete(&'static str),
}

/// Decide for a pod bound to `node` (`None` when the node no longer exists) at `now`.
/// `allocate_ip` is called only when the pod starts and needs an address.
pub fn step(
    pod: &Pod,
    node: Option<&Node>,
    allocate_ip: impl FnOnce() -> Option<Ipv4Addr>,
    now: Timestamp,
) -> KubeletAction {
    if pod.metadata.deletion_timestamp.is_some() {
        return KubeletAction::Delete("PodDeleted");
    }
    let Some(node) = node else {
        return KubeletAction::Delete("NodeGone");
    };
    if matches!(pod_phase(pod), "Succeeded" | "Failed") {
        return KubeletAction::Nothing;
    }
    if !node_ready(node) {
        if evicted_by_not_ready_taint(pod, node, now) {
            return KubeletAction::Delete("TaintManagerEviction");
        }
        return mark_not_ready(pod, now);
    }
    match pod_phase(pod) {
        "Pending" => start(pod, node, allocate_ip, now),
        _ => mark_ready(pod, now),
    }
}

fn ready_conditions(status: &str, reason: Option<&str>, now: Timestamp) -> Vec<PodCondition> {
    [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
        "PodScheduled",
    ]
    .into_iter()
    .map(|t| {
        let affected = matches!(t, "ContainersReady" | "Ready");
        PodCondition {
            type_: t.into(),
            status: if affected { status } else { "True" }.into(),
            reason: if affected {
                reason.map(Into::into)
            } else {
                None
            },
            last_transition_time: Some(time(now)),
            ..PodCondition::default()
        }
    })
    .collect()
}

fn start(
    pod: &Pod,
    node: &Node,
    allocate_ip: impl FnOnce() -> Option<Ipv4Addr>,
    now: Timestamp,
) -> KubeletAction {
    let mut status = pod.status.clone().unwrap_or_default();
    let ip = match status.pod_ip.clone() {
        Some(ip) => Some(ip),
        None => allocate_ip().map(|ip| ip.to_string()),
    };
    let Some(ip) = ip else {
        // No address left in the node's range: the pod waits, as a real kubelet's sandbox
        // creation would fail and retry.
        return KubeletAction::Nothing;
    };
    let host_ip = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_deref())
        .unwrap_or_default()
        .iter()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone());
    status.phase = Some("Running".into());
    status.pod_ip = Some(ip.clone());
    status.pod_ips = Some(vec![PodIP { ip }]);
    status.host_ip.clone_from(&host_ip);
    status.start_time = Some(time(now));
    let mut conditions = status.conditions.take().unwrap_or_default();
    for c in ready_conditions("True", None, now) {
        set_pod_condition(&mut conditions, c);
    }
    status.conditions = Some(conditions);
    status.container_statuses = Some(
        pod.spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|c| {
                let image = c.image.clone().unwrap_or_default();
                ContainerStatus {
                    name: c.name.clone(),
                    image_id: format!("sim://{image}"),
                    container_id: Some(format!(
                        "containerd://{}-{}",
                        pod.metadata.name.as_deref().unwrap_or(""),
                        c.name
                    )),
                    image,
                    ready: true,
                    started: Some(true),
                    restart_count: 0,
                    state: Some(ContainerState {
                        running: Some(ContainerStateRunning {
                            started_at: Some(time(now)),
                        }),
                        ..ContainerState::default()
                    }),
                    ..ContainerStatus::default()
                }
            })
            .collect(),
    );
    KubeletAction::UpdateStatus(Box::new(status))
}

fn set_readiness(pod: &Pod, ready: bool, reason: Option<&str>, now: Timestamp) -> KubeletAction {
    let mut status = pod.status.clone().unwrap_or_default();
    let mut conditions = status.conditions.take().unwrap_or_default();
    let target = if ready { "True" } else { "False" };
    let already = ["Ready", "ContainersReady"].iter().all(|t| {
        conditions
            .iter()
            .any(|c| c.type_ == *t && c.status == target)
    }) && status
        .container_statuses
        .as_deref()
        .unwrap_or_default()
        .iter()
        .all(|c| c.ready == ready);
    if already {
        return KubeletAction::Nothing;
    }
    for c in ready_conditions(target, reason, now)
        .into_iter()
        .filter(|c| matches!(c.type_.as_str(), "Ready" | "ContainersReady"))
    {
        set_pod_condition(&mut conditions, c);
    }
    status.conditions = Some(conditions);
    if let Some(cs) = status.container_statuses.as_mut() {
        for c in cs {
            c.ready = ready;
        }
    }
    KubeletAction::UpdateStatus(Box::new(status))
}

fn mark_ready(pod: &Pod, now: Timestamp) -> KubeletAction {
    set_readiness(pod, true, None, now)
}

fn mark_not_ready(pod: &Pod, now: Timestamp) -> KubeletAction {
    set_readiness(pod, false, Some("NodeNotReady"), now)
}

/// Whether the NoExecute not-ready taint has outlasted the pod's toleration of it.
fn evicted_by_not_ready_taint(pod: &Pod, node: &Node, now: Timestamp) -> bool {
    let since = ready_since(node).unwrap_or(now);
    let taint = Taint {
        key: NOT_READY_TAINT.into(),
        effect: "NoExecute".into(),
        ..Taint::default()
    };
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    let tolerated_for = tolerations
        .iter()
        .filter(|t| tolerates(t, &taint))
        .map(|t| t.toleration_seconds)
        // No tolerationSeconds means forever.
        .map(|s| s.unwrap_or(i64::MAX))
        .max();
    match tolerated_for {
        None => true,
        Some(secs) => now.as_second().saturating_sub(since.as_second()) >= secs,
    }
}

/// The next free address of `pod_cidr` (IPv4, e.g. `10.244.1.0/24`) not in `used`, skipping
/// the network address and the first host (the node's bridge) and the broadcast address.
pub fn allocate_pod_ip(pod_cidr: &str, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let (addr, prefix) = pod_cidr.split_once('/')?;
    let base: Ipv4Addr = addr.parse().ok()?;
    let prefix: u32 = prefix.parse().ok().filter(|p| *p <= 30)?;
    let size = 1u64 << (32 - prefix);
    let start = u32::from(base) & (u32::MAX.checked_shl(32 - prefix).unwrap_or(0));
    (2..size - 1)
        .map(|offset| Ipv4Addr::from(start + offset as u32))
        .find(|ip| !used.contains(ip))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Toleration;

    use super::*;
    use crate::common::pod_ready;
    use crate::node::set_node_ready;
    use crate::testutil::{node, on, pod, t};

    fn running(p: &Pod, n: &Node) -> Pod {
        let KubeletAction::UpdateStatus(status) =
            step(p, Some(n), || Some(Ipv4Addr::new(10, 244, 1, 2)), t(0))
        else {
            panic!("the pod starts");
        };
        let mut p = p.clone();
        p.status = Some(*status);
        p
    }

    #[test]
    fn pods_start_on_ready_nodes() {
        let n = node("n", "a", 4);
        let p = running(&on(pod("web", "1m", "web", None), "n"), &n);
        let status = p.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("10.244.1.2"));
        assert_eq!(status.host_ip.as_deref(), Some("10.0.0.1"));
        assert!(pod_ready(&p));
        let cs = &status.container_statuses.as_ref().unwrap()[0];
        assert!(cs.ready && cs.state.as_ref().unwrap().running.is_some());
        // Level-triggered: a running, ready pod needs nothing more.
        assert_eq!(step(&p, Some(&n), || None, t(5)), KubeletAction::Nothing);
    }

    #[test]
    fn no_address_no_start() {
        let n = node("n", "a", 4);
        let p = on(pod("web", "1m", "web", None), "n");
        assert_eq!(step(&p, Some(&n), || None, t(0)), KubeletAction::Nothing);
    }

    #[test]
    fn not_ready_nodes_then_eviction_then_gone() {
        let mut n = node("n", "a", 4);
        let mut p = running(&on(pod("web", "1m", "web", None), "n"), &n);
        p.spec.as_mut().unwrap().tolerations = Some(vec![Toleration {
            key: Some(NOT_READY_TAINT.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: Some(300),
            ..Toleration::default()
        }]);
        set_node_ready(&mut n, false, t(100));
        let KubeletAction::UpdateStatus(status) = step(&p, Some(&n), || None, t(110)) else {
            panic!("marked not ready");
        };
        let mut unready = p.clone();
        unready.status = Some(*status);
        assert!(!pod_ready(&unready));
        assert_eq!(
            step(&unready, Some(&n), || None, t(120)),
            KubeletAction::Nothing
        );
        assert_eq!(
            step(&unready, Some(&n), || None, t(400)),
            KubeletAction::Delete("TaintManagerEviction")
        );
        // The node recovers in time: the pod is ready again.
        set_node_ready(&mut n, true, t(200));
        let KubeletAction::UpdateStatus(status) = step(&unready, Some(&n), || None, t(210)) else {
            panic!("ready again");
        };
        unready.status = Some(*status);
        assert!(pod_ready(&unready));
        assert_eq!(
            step(&unready, None, || None, t(220)),
            KubeletAction::Delete("NodeGone")
        );
        // Without a toleration, eviction is immediate.
        let bare = running(&on(pod("x", "1m", "x", None), "n"), &node("n", "a", 4));
        set_node_ready(&mut n, false, t(300));
        assert_eq!(
            step(&bare, Some(&n), || None, t(300)),
            KubeletAction::Delete("TaintManagerEviction")
        );
    }

    #[test]
    fn pod_ips_come_from_the_range() {
        let mut used = BTreeSet::new();
        let first = allocate_pod_ip("10.244.1.0/24", &used).unwrap();
        assert_eq!(first, Ipv4Addr::new(10, 244, 1, 2));
        used.insert(first);
        assert_eq!(
            allocate_pod_ip("10.244.1.0/24", &used),
            Some(Ipv4Addr::new(10, 244, 1, 3))
        );
        let tiny: BTreeSet<_> = [Ipv4Addr::new(10, 0, 0, 2)].into_iter().collect();
        assert_eq!(allocate_pod_ip("10.0.0.0/30", &tiny), None);
        assert_eq!(allocate_pod_ip("not-a-cidr", &used), None);
        assert_eq!(
            allocate_pod_ip("10.0.0.7/24", &BTreeSet::new()),
            Some(Ipv4Addr::new(10, 0, 0, 2))
        );
    }
}
