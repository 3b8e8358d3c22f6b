//! The scheduler: pick a node for a pending pod, or explain why none fits.
//!
//! Filters, in upstream's plugin order, each node stopping at the first that fails:
//! NodeUnschedulable (cordoned), TaintToleration (NoSchedule and NoExecute taints, including
//! the `node.kubernetes.io/not-ready` taint a NotReady node carries), NodeAffinity
//! (`nodeSelector` and required node affinity: `In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt`,
//! `Lt` on labels), NodeResourcesFit (requests against allocatable minus the requests of the
//! pods already bound: CPU, memory, extended resources such as `nvidia.com/gpu`, pod count),
//! and PodTopologySpread (`DoNotSchedule` constraints: `maxSkew` over the domains of the
//! constraint's topology key). A node whose Ready condition is not True is also excluded
//! (reported as the not-ready taint, which is what upstream's users see).
//!
//! Scoring among feasible nodes: fewest pods of the same workload in the node's zone (the
//! `ScheduleAnyway` constraints' selectors when there are some, else the pod's controller),
//! then fewest such pods on the node, then the most free CPU (least allocated), then name.
//!
//! When nothing fits, [`Decision::Unschedulable`] carries the message upstream writes into
//! `PodScheduled=False` (reason `Unschedulable`): `0/3 nodes are available: 1 Insufficient
//! cpu, 2 node(s) had untolerated taint {gpu: true}.` (counts per reason, sorted as text).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodCondition, Taint, Toleration,
    TopologySpreadConstraint,
};
use k8s_openapi::jiff::Timestamp;

use crate::common::{controller_of, node_ready, pod_active, selects, time};
use crate::node::{NOT_READY_TAINT, ZONE_LABEL};
use crate::quantity::milli_of;

/// A node and the pods bound to it.
#[derive(Debug, Clone, Copy)]
pub struct NodeInfo<'a> {
    pub node: &'a Node,
    pub pods: &'a [Pod],
}

/// What the scheduler decided for one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Bind the pod to this node.
    Bind(String),
    /// Nothing fits; the message for `PodScheduled=False`.
    Unschedulable(String),
}

/// Why a node was filtered out (the text upstream's plugins report).
fn reasons_for(pod: &Pod, info: &NodeInfo<'_>, all: &[NodeInfo<'_>]) -> Vec<String> {
    let node = info.node;
    let spec = node.spec.as_ref();
    if spec.and_then(|s| s.unschedulable) == Some(true) {
        return vec!["node(s) were unschedulable".into()];
    }
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    let mut taints: Vec<Taint> = spec.and_then(|s| s.taints.clone()).unwrap_or_default();
    if !node_ready(node) && !taints.iter().any(|t| t.key == NOT_READY_TAINT) {
        taints.push(Taint {
            key: NOT_READY_TAINT.into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        });
    }
    if let Some(t) = taints.iter().find(|t| {
        matches!(t.effect.as_str(), "NoSchedule" | "NoExecute")
            && !tolerations.iter().any(|tol| tolerates(tol, t))
    }) {
        return vec![format!(
            "node(s) had untolerated taint {{{}: {}}}",
            t.key,
            t.value.as_deref().unwrap_or("")
        )];
    }
    if !matches_node_selector(pod, node) {
        return vec!["node(s) didn't match Pod's node affinity/selector".into()];
    }
    let insufficient = insufficient_resources(pod, info);
    if !insufficient.is_empty() {
        return insufficient;
    }
    if let Some(reason) = spread_violation(pod, info, all) {
        return vec![reason];
    }
    Vec::new()
}

/// Whether a toleration tolerates a taint (upstream's `ToleratesTaint`).
pub fn tolerates(tol: &Toleration, taint: &Taint) -> bool {
    let effect_ok = tol
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == taint.effect);
    let key = tol.key.as_deref().unwrap_or("");
    if !effect_ok || (!key.is_empty() && key != taint.key) {
        return false;
    }
    match tol.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => tol.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// `nodeSelector` and required node affinity against the node's labels.
pub fn matches_node_selector(pod: &Pod, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let terms = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|s| s.node_selector_terms.as_slice());
    // Terms are ORed; an empty list of terms matches nothing, as upstream.
    let affinity_ok = terms.is_none_or(|terms| terms.iter().any(|t| term_matches(t, labels)));
    selector_ok && affinity_ok
}

fn term_matches(term: &NodeSelectorTerm, labels: &BTreeMap<String, String>) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    if exprs.is_empty() && term.match_fields.as_deref().is_none_or(<[_]>::is_empty) {
        return false;
    }
    exprs.iter().all(|r| requirement_matches(r, labels))
}

fn requirement_matches(r: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let actual = labels.get(&r.key);
    let number = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => actual.is_some_and(|v| values.contains(v)),
        "NotIn" => actual.is_none_or(|v| !values.contains(v)),
        "Exists" => actual.is_some(),
        "DoesNotExist" => actual.is_none(),
        "Gt" | "Lt" => {
            let (Some(a), Some(b)) = (
                actual.and_then(|v| number(v)),
                values.first().and_then(|v| number(v)),
            ) else {
                return false;
            };
            if r.operator == "Gt" { a > b } else { a < b }
        }
        _ => false,
    }
}

/// The requests of a pod per resource, in thousandths: the sum over containers, or the
/// largest init container when that is larger (upstream's effective request).
pub fn pod_requests(pod: &Pod) -> BTreeMap<String, i128> {
    let mut total: BTreeMap<String, i128> = BTreeMap::new();
    let Some(spec) = pod.spec.as_ref() else {
        return total;
    };
    let requests_of = |c: &k8s_openapi::api::core::v1::Container| {
        let res = c.resources.as_ref();
        // A limit without a request makes the request equal to the limit.
        let mut out: BTreeMap<String, i128> = res
            .and_then(|r| r.limits.as_ref())
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), milli_of(v)))
            .collect();
        for (k, v) in res.and_then(|r| r.requests.as_ref()).into_iter().flatten() {
            out.insert(k.clone(), milli_of(v));
        }
        out
    };
    for c in &spec.containers {
        for (k, v) in requests_of(c) {
            *total.entry(k).or_default() += v;
        }
    }
    for c in spec.init_containers.as_deref().unwrap_or_default() {
        for (k, v) in requests_of(c) {
            let slot = total.entry(k).or_default();
            *slot = (*slot).max(v);
        }
    }
    total
}

fn insufficient_resources(pod: &Pod, info: &NodeInfo<'_>) -> Vec<String> {
    let allocatable: BTreeMap<String, i128> = info
        .node
        .status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), milli_of(v)))
        .collect();
    let bound: Vec<&Pod> = info.pods.iter().filter(|p| pod_active(p)).collect();
    let mut reasons = Vec::new();
    let max_pods = allocatable.get("pods").copied().unwrap_or(110_000) / 1000;
    if bound.len() as i128 + 1 > max_pods {
        reasons.push("Too many pods".to_string());
    }
    let mut used: BTreeMap<String, i128> = BTreeMap::new();
    for p in &bound {
        for (k, v) in pod_requests(p) {
            *used.entry(k).or_default() += v;
        }
    }
    for (resource, wanted) in pod_requests(pod) {
        if wanted == 0 || resource == "pods" {
            continue;
        }
        let free = allocatable.get(&resource).copied().unwrap_or(0)
            - used.get(&resource).copied().unwrap_or(0);
        if wanted > free {
            reasons.push(format!("Insufficient {resource}"));
        }
    }
    reasons
}

fn hard_constraints(pod: &Pod) -> impl Iterator<Item = &TopologySpreadConstraint> {
    pod.spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|c| c.when_unsatisfiable == "DoNotSchedule")
}

fn same_namespace(a: &Pod, b: &Pod) -> bool {
    a.metadata.namespace == b.metadata.namespace
}

/// A `DoNotSchedule` constraint this node would break: `count(domain) + 1 - min(domains) >
/// maxSkew`, domains being the values of the topology key on nodes the pod could use by its
/// node selector and affinity.
fn spread_violation(pod: &Pod, info: &NodeInfo<'_>, all: &[NodeInfo<'_>]) -> Option<String> {
    for c in hard_constraints(pod) {
        let key = &c.topology_key;
        let Some(domain) = info.node.metadata.labels.as_ref().and_then(|l| l.get(key)) else {
            return Some(
                "node(s) didn't match pod topology spread constraints (missing required label)"
                    .into(),
            );
        };
        let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
        for other in all {
            if !matches_node_selector(pod, other.node) {
                continue;
            }
            let Some(d) = other.node.metadata.labels.as_ref().and_then(|l| l.get(key)) else {
                continue;
            };
            let n = other
                .pods
                .iter()
                .filter(|p| pod_active(p) && same_namespace(p, pod))
                .filter(|p| {
                    c.label_selector
                        .as_ref()
                        .is_some_and(|s| selects(s, p.metadata.labels.as_ref()))
                })
                .count() as i64;
            *counts.entry(d.as_str()).or_default() += n;
        }
        let min = counts.values().copied().min().unwrap_or(0);
        let here = counts.get(domain.as_str()).copied().unwrap_or(0);
        if here + 1 - min > i64::from(c.max_skew) {
            return Some("node(s) didn't match pod topology spread constraints".into());
        }
    }
    None
}

/// Whether `other` is a pod of the same workload as `pod`, for spreading.
fn same_workload(pod: &Pod, other: &Pod) -> bool {
    if !same_namespace(pod, other) || !pod_active(other) {
        return false;
    }
    let soft: Vec<&TopologySpreadConstraint> = pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or_default()
        .iter()
        .collect();
    let selectors: Vec<_> = soft
        .iter()
        .filter_map(|c| c.label_selector.as_ref())
        .collect();
    if !selectors.is_empty() {
        return selectors
            .iter()
            .any(|s| selects(s, other.metadata.labels.as_ref()));
    }
    match (controller_of(&pod.metadata), controller_of(&other.metadata)) {
        (Some(a), Some(b)) => a.uid == b.uid,
        (None, None) => {
            pod.metadata.labels.is_some() && pod.metadata.labels == other.metadata.labels
        }
        _ => false,
    }
}

fn free_cpu_fraction(info: &NodeInfo<'_>) -> i128 {
    let alloc = info
        .node
        .status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .and_then(|a| a.get("cpu"))
        .map_or(0, milli_of);
    let used: i128 = info
        .pods
        .iter()
        .filter(|p| pod_active(p))
        .map(|p| pod_requests(p).get("cpu").copied().unwrap_or(0))
        .sum();
    if alloc <= 0 {
        return 0;
    }
    (alloc - used) * 10_000 / alloc
}

/// Schedule one pending pod onto one of `nodes` (see the module docs).
pub fn schedule(pod: &Pod, nodes: &[NodeInfo<'_>]) -> Decision {
    let mut histogram: BTreeMap<String, usize> = BTreeMap::new();
    let mut feasible = Vec::new();
    for info in nodes {
        let reasons = reasons_for(pod, info, nodes);
        if reasons.is_empty() {
            feasible.push(info);
        }
        for r in reasons {
            *histogram.entry(r).or_default() += 1;
        }
    }
    if feasible.is_empty() {
        return Decision::Unschedulable(unschedulable_message(nodes.len(), &histogram));
    }
    let zone_of = |n: &Node| {
        n.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ZONE_LABEL))
            .cloned()
            .unwrap_or_default()
    };
    let mut per_zone: BTreeMap<String, usize> = BTreeMap::new();
    for info in nodes {
        let n = info.pods.iter().filter(|p| same_workload(pod, p)).count();
        *per_zone.entry(zone_of(info.node)).or_default() += n;
    }
    let best = feasible.into_iter().min_by_key(|info| {
        let zone = per_zone.get(&zone_of(info.node)).copied().unwrap_or(0);
        let local = info.pods.iter().filter(|p| same_workload(pod, p)).count();
        (
            zone,
            local,
            -free_cpu_fraction(info),
            info.node.metadata.name.clone().unwrap_or_default(),
        )
    });
    match best {
        Some(info) => Decision::Bind(info.node.metadata.name.clone().unwrap_or_default()),
        None => Decision::Unschedulable(unschedulable_message(nodes.len(), &histogram)),
    }
}

/// `0/N nodes are available: <count> <reason>, ....` with the entries sorted as text, as
/// upstream's `FitError` prints them.
pub fn unschedulable_message(total: usize, histogram: &BTreeMap<String, usize>) -> String {
    let mut parts: Vec<String> = histogram
        .iter()
        .map(|(reason, n)| format!("{n} {reason}"))
        .collect();
    parts.sort();
    if parts.is_empty() {
        format!("0/{total} nodes are available.")
    } else {
        format!("0/{total} nodes are available: {}.", parts.join(", "))
    }
}

/// The `PodScheduled` condition for a decision: True once bound, False with reason
/// `Unschedulable` and the message otherwise.
pub fn scheduled_condition(decision: &Decision, now: Timestamp) -> PodCondition {
    match decision {
        Decision::Bind(_) => PodCondition {
            type_: "PodScheduled".into(),
            status: "True".into(),
            last_transition_time: Some(time(now)),
            ..PodCondition::default()
        },
        Decision::Unschedulable(message) => PodCondition {
            type_: "PodScheduled".into(),
            status: "False".into(),
            reason: Some("Unschedulable".into()),
            message: Some(message.clone()),
            last_transition_time: Some(time(now)),
            ..PodCondition::default()
        },
    }
}

/// Pods waiting for this scheduler: no node yet, not being deleted, `schedulerName`
/// `default-scheduler` (or unset).
pub fn needs_scheduling(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    spec.is_some_and(|s| s.node_name.as_deref().is_none_or(str::is_empty))
        && pod.metadata.deletion_timestamp.is_none()
        && spec
            .and_then(|s| s.scheduler_name.as_deref())
            .is_none_or(|n| n.is_empty() || n == "default-scheduler")
        && pod_active(pod)
}

/// The zones of `nodes`, for callers that report spread.
pub fn zones(nodes: &[NodeInfo<'_>]) -> BTreeSet<String> {
    nodes
        .iter()
        .filter_map(|i| i.node.metadata.labels.as_ref()?.get(ZONE_LABEL).cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Affinity, NodeAffinity, NodeSelector};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    use super::*;
    use crate::node::set_node_ready;
    use crate::testutil::{node, on, pod, t};

    fn infos<'a>(nodes: &'a [(Node, Vec<Pod>)]) -> Vec<NodeInfo<'a>> {
        nodes
            .iter()
            .map(|(node, pods)| NodeInfo { node, pods })
            .collect()
    }

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: Some(value.into()),
            effect: effect.into(),
            ..Taint::default()
        }
    }

    #[test]
    fn filters_explain_like_the_real_scheduler() {
        let mut cordoned = node("n-cordoned", "a", 4);
        cordoned.spec.as_mut().unwrap().unschedulable = Some(true);
        let mut gpu = node("n-gpu", "b", 4);
        gpu.spec.as_mut().unwrap().taints =
            Some(vec![taint("nvidia.com/gpu", "true", "NoSchedule")]);
        let mut down = node("n-down", "c", 4);
        set_node_ready(&mut down, false, t(10));
        let full = node("n-full", "a", 1);
        let nodes = vec![
            (cordoned, vec![]),
            (gpu, vec![]),
            (down, vec![]),
            (full, vec![on(pod("big", "900m", "x", None), "n-full")]),
        ];
        let decision = schedule(&pod("p", "500m", "web", None), &infos(&nodes));
        assert_eq!(
            decision,
            Decision::Unschedulable(
                "0/4 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) had untolerated taint {nvidia.com/gpu: true}, 1 node(s) were unschedulable.".into()
            )
        );
        let condition = scheduled_condition(&decision, t(0));
        assert_eq!(condition.reason.as_deref(), Some("Unschedulable"));
        assert_eq!(condition.status, "False");

        // Tolerating the GPU taint makes the GPU node the only fit.
        let mut tolerant = pod("p", "500m", "web", None);
        tolerant.spec.as_mut().unwrap().tolerations = Some(vec![Toleration {
            key: Some("nvidia.com/gpu".into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Toleration::default()
        }]);
        assert_eq!(
            schedule(&tolerant, &infos(&nodes)),
            Decision::Bind("n-gpu".into())
        );
    }

    #[test]
    fn toleration_matching() {
        let t1 = taint("k", "v", "NoSchedule");
        let tol =
            |key: Option<&str>, op: &str, value: Option<&str>, effect: Option<&str>| Toleration {
                key: key.map(Into::into),
                operator: Some(op.into()),
                value: value.map(Into::into),
                effect: effect.map(Into::into),
                ..Toleration::default()
            };
        let cases = [
            (tol(Some("k"), "Equal", Some("v"), Some("NoSchedule")), true),
            (tol(Some("k"), "Equal", Some("w"), None), false),
            (tol(Some("k"), "Exists", None, None), true),
            (tol(None, "Exists", None, None), true),
            (tol(Some("k"), "Exists", None, Some("NoExecute")), false),
            (tol(Some("other"), "Exists", None, None), false),
        ];
        for (toleration, want) in cases {
            assert_eq!(tolerates(&toleration, &t1), want, "{toleration:?}");
        }
    }

    #[test]
    fn node_selector_and_affinity() {
        let nodes = vec![
            (node("n-a", "zone-a", 4), vec![]),
            (node("n-b", "zone-b", 4), vec![]),
        ];
        let mut p = pod("p", "100m", "web", None);
        p.spec.as_mut().unwrap().node_selector = Some(BTreeMap::from([(
            ZONE_LABEL.to_string(),
            "zone-b".to_string(),
        )]));
        assert_eq!(schedule(&p, &infos(&nodes)), Decision::Bind("n-b".into()));
        let affinity = |op: &str, values: &[&str]| Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: ZONE_LABEL.into(),
                            operator: op.into(),
                            values: Some(values.iter().map(|v| (*v).to_string()).collect()),
                        }]),
                        match_fields: None,
                    }],
                }),
                ..NodeAffinity::default()
            }),
            ..Affinity::default()
        };
        let mut p = pod("p", "100m", "web", None);
        p.spec.as_mut().unwrap().affinity = Some(affinity("NotIn", &["zone-a"]));
        assert_eq!(schedule(&p, &infos(&nodes)), Decision::Bind("n-b".into()));
        p.spec.as_mut().unwrap().affinity = Some(affinity("In", &["zone-c"]));
        assert_eq!(
            schedule(&p, &infos(&nodes)),
            Decision::Unschedulable(
                "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
                    .into()
            )
        );
        p.spec.as_mut().unwrap().affinity = Some(affinity("Exists", &[]));
        assert!(matches!(schedule(&p, &infos(&nodes)), Decision::Bind(_)));
    }

    #[test]
    fn spreads_replicas_across_zones() {
        let nodes = vec![
            (
                node("n-a", "zone-a", 8),
                vec![on(pod("w1", "100m", "web", Some("rs")), "n-a")],
            ),
            (
                node("n-b", "zone-b", 8),
                vec![on(pod("w2", "100m", "web", Some("rs")), "n-b")],
            ),
            (node("n-c", "zone-c", 2), vec![]),
        ];
        // The emptiest zone wins even though its node has less free CPU.
        let p = pod("w3", "100m", "web", Some("rs"));
        assert_eq!(schedule(&p, &infos(&nodes)), Decision::Bind("n-c".into()));
        // A pod of another workload goes to the least allocated node (by fraction of CPU).
        let other = pod("x", "100m", "db", Some("other"));
        assert_eq!(
            schedule(&other, &infos(&nodes)),
            Decision::Bind("n-c".into())
        );
        let mut busy = nodes.clone();
        busy[2]
            .1
            .push(on(pod("y", "1", "db", Some("other")), "n-c"));
        let another = pod("z", "100m", "cache", Some("third"));
        assert_eq!(
            schedule(&another, &infos(&busy)),
            Decision::Bind("n-a".into())
        );
    }

    #[test]
    fn topology_spread_max_skew_is_enforced() {
        let web = |n: &str, node: &str| on(pod(n, "100m", "web", Some("rs")), node);
        let nodes = vec![
            (
                node("n-a", "zone-a", 8),
                vec![web("w1", "n-a"), web("w2", "n-a")],
            ),
            (
                node("n-b", "zone-b", 1),
                vec![on(pod("hog", "3900m", "x", None), "n-b")],
            ),
        ];
        let mut p = pod("w3", "100m", "web", Some("rs"));
        p.spec.as_mut().unwrap().topology_spread_constraints =
            Some(vec![TopologySpreadConstraint {
                max_skew: 1,
                topology_key: ZONE_LABEL.into(),
                when_unsatisfiable: "DoNotSchedule".into(),
                label_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
                    ..LabelSelector::default()
                }),
                ..TopologySpreadConstraint::default()
            }]);
        // zone-a has 2, zone-b 0: another in zone-a would be skew 3 > 1; zone-b is full.
        assert_eq!(
            schedule(&p, &infos(&nodes)),
            Decision::Unschedulable(
                "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match pod topology spread constraints.".into()
            )
        );
        p.spec
            .as_mut()
            .unwrap()
            .topology_spread_constraints
            .as_mut()
            .unwrap()[0]
            .max_skew = 3;
        assert_eq!(schedule(&p, &infos(&nodes)), Decision::Bind("n-a".into()));
    }

    #[test]
    fn too_many_pods_and_extended_resources() {
        let mut small = node("n", "a", 64);
        small
            .status
            .as_mut()
            .unwrap()
            .allocatable
            .as_mut()
            .unwrap()
            .insert(
                "pods".into(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity("1".into()),
            );
        let nodes = vec![(small, vec![on(pod("a", "1m", "x", None), "n")])];
        let mut p = pod("p", "1m", "web", None);
        p.spec.as_mut().unwrap().containers[0]
            .resources
            .as_mut()
            .unwrap()
            .requests
            .as_mut()
            .unwrap()
            .insert(
                "nvidia.com/gpu".into(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity("1".into()),
            );
        assert_eq!(
            schedule(&p, &infos(&nodes)),
            Decision::Unschedulable(
                "0/1 nodes are available: 1 Insufficient nvidia.com/gpu, 1 Too many pods.".into()
            )
        );
        assert!(needs_scheduling(&p));
        assert!(!needs_scheduling(&on(p, "n")));
    }
}
