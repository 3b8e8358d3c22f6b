//! What the dashboard shows, computed from the objects alone: pure functions, no I/O.
//!
//! - [`assess`]: a cluster's health and the reasons it needs attention;
//! - [`FleetSummary::new`]: counts by tier, region, version and health, cost, and the
//!   clusters that need attention, most urgent first;
//! - [`progress`]: per machine group (control plane, each pool) how far it has converged.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use jiff::Timestamp;
use slipway_api::cluster::{Cluster, Condition, ConditionStatus};
use slipway_api::machine::{Machine, MachinePhase, MachineRole};

/// How long a cluster may wait on something before waiting counts as failing.
pub const STUCK_AFTER: jiff::SignedDuration = jiff::SignedDuration::from_mins(15);

/// A cluster's health, most severe first (the order the attention list uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Health {
    /// Not Ready for a reason that is not progress, or stuck waiting.
    Failing,
    /// Ready is `Unknown`: the controller cannot tell.
    Unknown,
    /// On its way: being created, upgraded, scaled or deleted.
    Converging,
    /// Ready, nothing to do.
    Healthy,
}

impl Health {
    pub const ALL: [Health; 4] = [
        Health::Failing,
        Health::Unknown,
        Health::Converging,
        Health::Healthy,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Health::Failing => "Failing",
            Health::Unknown => "Unknown",
            Health::Converging => "Converging",
            Health::Healthy => "Healthy",
        }
    }

    /// The CSS class of its badge.
    pub fn class(self) -> &'static str {
        match self {
            Health::Failing => "bad",
            Health::Unknown => "unknown",
            Health::Converging => "busy",
            Health::Healthy => "good",
        }
    }
}

/// A cluster's health and why it needs attention (empty when it does not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub health: Health,
    pub reasons: Vec<String>,
    /// Since when the cluster has been in this state (Ready's last transition).
    pub since: Option<Timestamp>,
}

impl Assessment {
    pub fn needs_attention(&self) -> bool {
        self.health != Health::Healthy || !self.reasons.is_empty()
    }
}

/// The condition of `type_` in a list.
pub fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// A cluster's conditions (empty without a status).
pub fn cluster_conditions(cluster: &Cluster) -> &[Condition] {
    cluster
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or(&[])
}

/// A machine's conditions (empty without a status).
pub fn machine_conditions(machine: &Machine) -> &[Condition] {
    machine
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or(&[])
}

/// Reasons of a not-Ready condition that mean "on the way", not "broken".
fn is_progress_reason(reason: &str) -> bool {
    [
        "Waiting",
        "Provisioning",
        "Creating",
        "Upgrading",
        "Rolling",
        "Scaling",
        "Settling",
        "Deleting",
    ]
    .iter()
    .any(|p| reason.starts_with(p))
}

fn describe(c: &Condition) -> String {
    let mut s = format!("{} is {}", c.type_, c.status);
    if let Some(reason) = c.reason.as_deref().filter(|r| !r.is_empty()) {
        s.push_str(&format!(" ({reason})"));
    }
    if let Some(message) = c.message.as_deref().filter(|m| !m.is_empty()) {
        s.push_str(&format!(": {message}"));
    }
    s
}

/// Conditions whose `True` is the good state.
const POSITIVE: &[&str] = &[
    "Ready",
    "InfrastructureReady",
    "ControlPlaneReady",
    "NodePoolsReady",
    "NodeReady",
];

/// Judge a cluster from its conditions and its machines at `now`.
pub fn assess(cluster: &Cluster, machines: &[&Machine], now: Timestamp) -> Assessment {
    let conditions = cluster_conditions(cluster);
    let mut reasons = Vec::new();
    let ready = condition(conditions, "Ready");
    let since = ready.and_then(|c| c.last_transition_time.as_ref().map(|t| t.0));
    let mut health = match ready {
        None => {
            reasons.push("waiting for its controller to report Ready".to_string());
            Health::Converging
        }
        Some(c) if c.status == ConditionStatus::True => Health::Healthy,
        Some(c) if c.status == ConditionStatus::Unknown => {
            reasons.push(describe(c));
            Health::Unknown
        }
        Some(c) => {
            reasons.push(describe(c));
            let progressing = c.reason.as_deref().is_some_and(is_progress_reason);
            let stuck = since.is_some_and(|t| now.duration_since(t) > STUCK_AFTER);
            if progressing && !stuck {
                Health::Converging
            } else {
                if progressing {
                    reasons.push(format!("stuck for {}", age(now, since.unwrap_or(now))));
                }
                Health::Failing
            }
        }
    };
    for c in conditions {
        if c.type_ != "Ready" && POSITIVE.contains(&c.type_.as_str()) {
            if c.status != ConditionStatus::True {
                reasons.push(describe(c));
            }
        } else if c.type_ == "Upgrading" && c.status == ConditionStatus::True {
            reasons.push(describe(c));
            health = health.min(Health::Converging);
        }
    }
    if cluster.metadata.deletion_timestamp.is_some() {
        reasons.push("being deleted".to_string());
        health = health.min(Health::Converging);
    }
    let generation = cluster.metadata.generation.unwrap_or(0);
    let observed = cluster
        .status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .unwrap_or(0);
    if ready.is_some() && observed < generation {
        reasons.push(format!(
            "spec generation {generation} not yet observed (at {observed})"
        ));
        health = health.min(Health::Converging);
    }
    for m in machines {
        let name = m.metadata.name.as_deref().unwrap_or_default();
        let status = m.status.as_ref();
        if status.and_then(|s| s.phase) == Some(MachinePhase::Failed) {
            let why = status
                .and_then(|s| s.failure_message.as_deref().or(s.failure_reason.as_deref()))
                .unwrap_or("no reason given");
            reasons.push(format!("machine {name} failed: {why}"));
        }
        if let Some(c) = condition(machine_conditions(m), "RemediationAllowed")
            && c.status == ConditionStatus::False
        {
            reasons.push(format!(
                "remediation held on machine {name}: {}",
                c.message
                    .as_deref()
                    .filter(|m| !m.is_empty())
                    .or(c.reason.as_deref())
                    .unwrap_or("no reason given")
            ));
        }
    }
    Assessment {
        health,
        reasons,
        since,
    }
}

/// The version a cluster runs: its control plane's, else the one it asks for.
pub fn running_version(cluster: &Cluster) -> String {
    cluster
        .status
        .as_ref()
        .and_then(|s| s.versions.as_ref())
        .and_then(|v| v.control_plane.clone())
        .or_else(|| cluster.spec.version.clone())
        .unwrap_or_else(|| "unknown".to_string())
}

/// A cluster's tier: its ClusterClass, else `spec.tier`, else `none`.
pub fn tier(cluster: &Cluster) -> String {
    cluster
        .spec
        .class
        .clone()
        .or_else(|| cluster.spec.tier.clone())
        .unwrap_or_else(|| "none".to_string())
}

/// Compare dotted versions numerically (`1.33.10` after `1.33.9`); non-numbers sort last.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let parts = |v: &str| -> Option<Vec<u64>> {
        v.trim_start_matches('v')
            .split(['.', '-', '+'])
            .take(3)
            .map(|p| p.parse().ok())
            .collect()
    };
    match (parts(a), parts(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// `45s`, `12m`, `3h`, `5d`: how long ago `then` was.
pub fn age(now: Timestamp, then: Timestamp) -> String {
    let secs = now.duration_since(then).as_secs().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// The fleet at a glance.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetSummary {
    pub clusters: usize,
    pub by_tier: BTreeMap<String, usize>,
    pub by_region: BTreeMap<String, usize>,
    /// Newest version first.
    pub by_version: Vec<(String, usize)>,
    pub by_health: BTreeMap<Health, usize>,
    pub nodes: i64,
    pub ready_nodes: i64,
    pub cost_per_hour: f64,
    /// Indexes into the clusters given, with their assessment: every cluster, those that
    /// need attention first (most severe, then longest in that state, then by name).
    pub order: Vec<(usize, Assessment)>,
}

impl FleetSummary {
    /// Summarise `clusters`, judging each with the machines that belong to it.
    pub fn new(clusters: &[Cluster], machines: &[Machine], now: Timestamp) -> Self {
        let mut by_cluster: BTreeMap<(&str, &str), Vec<&Machine>> = BTreeMap::new();
        for m in machines {
            by_cluster
                .entry((
                    m.metadata.namespace.as_deref().unwrap_or_default(),
                    m.spec.cluster_name.as_str(),
                ))
                .or_default()
                .push(m);
        }
        let mut summary = FleetSummary {
            clusters: clusters.len(),
            by_tier: BTreeMap::new(),
            by_region: BTreeMap::new(),
            by_version: Vec::new(),
            by_health: BTreeMap::new(),
            nodes: 0,
            ready_nodes: 0,
            cost_per_hour: 0.0,
            order: Vec::new(),
        };
        let mut versions: BTreeMap<String, usize> = BTreeMap::new();
        for (i, c) in clusters.iter().enumerate() {
            let key = (
                c.metadata.namespace.as_deref().unwrap_or_default(),
                c.metadata.name.as_deref().unwrap_or_default(),
            );
            let own = by_cluster.get(&key).map(Vec::as_slice).unwrap_or(&[]);
            let a = assess(c, own, now);
            *summary.by_tier.entry(tier(c)).or_default() += 1;
            *summary
                .by_region
                .entry(c.spec.infrastructure.region.clone())
                .or_default() += 1;
            *versions.entry(running_version(c)).or_default() += 1;
            *summary.by_health.entry(a.health).or_default() += 1;
            if let Some(s) = &c.status {
                summary.nodes += i64::from(s.nodes.unwrap_or(0));
                summary.ready_nodes += i64::from(s.ready_nodes.unwrap_or(0));
                summary.cost_per_hour += s.cost_per_hour.unwrap_or(0.0);
            }
            summary.order.push((i, a));
        }
        summary.by_version = versions.into_iter().collect();
        summary
            .by_version
            .sort_by(|a, b| compare_versions(&b.0, &a.0));
        summary.order.sort_by(|(i, a), (j, b)| {
            b.needs_attention()
                .cmp(&a.needs_attention())
                .then(a.health.cmp(&b.health))
                // Longest in this state first; unknown since last.
                .then_with(|| match (a.since, b.since) {
                    (Some(x), Some(y)) => x.cmp(&y),
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (None, None) => Ordering::Equal,
                })
                .then_with(|| {
                    let key = |c: &Cluster| (c.metadata.namespace.clone(), c.metadata.name.clone());
                    key(&clusters[*i]).cmp(&key(&clusters[*j]))
                })
        });
        summary
    }

    /// How many need attention (they lead [`FleetSummary::order`]).
    pub fn attention(&self) -> usize {
        self.order
            .iter()
            .filter(|(_, a)| a.needs_attention())
            .count()
    }
}

/// How far one machine group (the control plane or a node pool) has converged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupProgress {
    /// `control plane` or the pool's name.
    pub name: String,
    pub desired: usize,
    /// Machines that exist (not being deleted).
    pub machines: usize,
    /// Machines whose node is Ready.
    pub ready: usize,
    /// Machines at the version the cluster asks for.
    pub at_version: usize,
    /// Machines being deleted (replaced or scaled away).
    pub deleting: usize,
}

impl GroupProgress {
    pub fn converged(&self) -> bool {
        self.machines == self.desired
            && self.ready == self.desired
            && self.at_version == self.machines
            && self.deleting == 0
    }
}

/// Whether a machine's node is Ready.
pub fn machine_ready(m: &Machine) -> bool {
    condition(machine_conditions(m), "NodeReady").is_some_and(|c| c.status == ConditionStatus::True)
}

/// Per group: desired machines against what exists, is Ready and runs the wanted version.
pub fn progress(cluster: &Cluster, machines: &[&Machine]) -> Vec<GroupProgress> {
    let wanted = cluster.spec.version.as_deref();
    let group = |name: String, desired: usize, members: Vec<&&Machine>| {
        let live: Vec<_> = members
            .iter()
            .filter(|m| m.metadata.deletion_timestamp.is_none())
            .collect();
        GroupProgress {
            name,
            desired,
            machines: live.len(),
            ready: live.iter().filter(|m| machine_ready(m)).count(),
            at_version: live
                .iter()
                .filter(|m| wanted.is_none_or(|v| m.spec.version == v))
                .count(),
            deleting: members.len() - live.len(),
        }
    };
    let control: Vec<_> = machines
        .iter()
        .filter(|m| m.spec.role == MachineRole::ControlPlane)
        .collect();
    let cp_desired = cluster
        .spec
        .control_plane
        .as_ref()
        .and_then(|c| c.replicas)
        .map(|r| usize::try_from(r).unwrap_or(0))
        .unwrap_or(control.len());
    let mut out = vec![group("control plane".to_string(), cp_desired, control)];
    for pool in cluster.spec.node_pools.iter().flatten() {
        let members: Vec<_> = machines
            .iter()
            .filter(|m| {
                m.spec.role == MachineRole::Worker && m.spec.pool.as_deref() == Some(&pool.name)
            })
            .collect();
        let desired = usize::try_from(pool.replicas.unwrap_or(0)).unwrap_or(0);
        out.push(group(pool.name.clone(), desired, members));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use slipway_api::cluster::{ClusterStatus, ClusterVersions};

    fn now() -> Timestamp {
        "2026-11-22T12:00:00Z".parse().expect("timestamp")
    }

    fn cond(type_: &str, status: ConditionStatus, reason: &str, mins_ago: i64) -> Condition {
        Condition {
            type_: type_.to_string(),
            status,
            reason: Some(reason.to_string()),
            message: None,
            last_transition_time: Some(Time(now() - jiff::SignedDuration::from_mins(mins_ago))),
            observed_generation: None,
        }
    }

    fn cluster(
        name: &str,
        class: &str,
        region: &str,
        version: &str,
        conds: Vec<Condition>,
    ) -> Cluster {
        let mut c: Cluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "slipway.dev/v1alpha1",
            "kind": "Cluster",
            "metadata": {"name": name, "namespace": "team", "generation": 1},
            "spec": {
                "class": class,
                "version": version,
                "infrastructure": {"provider": "sim", "region": region},
                "controlPlane": {"replicas": 1},
                "nodePools": [{"name": "general", "replicas": 2}]
            }
        }))
        .expect("cluster");
        c.status = Some(ClusterStatus {
            conditions: Some(conds),
            observed_generation: Some(1),
            versions: Some(ClusterVersions {
                control_plane: Some(version.to_string()),
                ..Default::default()
            }),
            nodes: Some(2),
            ready_nodes: Some(2),
            cost_per_hour: Some(0.5),
            ..Default::default()
        });
        c
    }

    fn machine(
        name: &str,
        cluster: &str,
        pool: Option<&str>,
        version: &str,
        ready: bool,
    ) -> Machine {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "slipway.dev/v1alpha1",
            "kind": "Machine",
            "metadata": {"name": name, "namespace": "team"},
            "spec": {
                "clusterName": cluster,
                "role": if pool.is_some() { "worker" } else { "control-plane" },
                "pool": pool,
                "zone": "eu-west-1a",
                "machineType": "m5.large",
                "version": version
            },
            "status": {
                "phase": "Running",
                "conditions": [{"type": "NodeReady", "status": if ready { "True" } else { "False" }}]
            }
        }))
        .expect("machine")
    }

    fn ready() -> Vec<Condition> {
        vec![cond("Ready", ConditionStatus::True, "ClusterReady", 30)]
    }

    #[test]
    fn health_from_conditions() {
        let table = [
            (ready(), Health::Healthy, 0),
            (
                vec![cond("Ready", ConditionStatus::False, "WaitingForNodes", 2)],
                Health::Converging,
                1,
            ),
            // Waiting too long is failing, and says for how long.
            (
                vec![cond("Ready", ConditionStatus::False, "WaitingForNodes", 40)],
                Health::Failing,
                2,
            ),
            (
                vec![cond(
                    "Ready",
                    ConditionStatus::False,
                    "CapacityUnavailable",
                    1,
                )],
                Health::Failing,
                1,
            ),
            (
                vec![cond(
                    "Ready",
                    ConditionStatus::Unknown,
                    "ClusterUnreachable",
                    1,
                )],
                Health::Unknown,
                1,
            ),
            (
                vec![
                    cond("Ready", ConditionStatus::True, "ClusterReady", 1),
                    cond("Upgrading", ConditionStatus::True, "RollingReplace", 1),
                ],
                Health::Converging,
                1,
            ),
            (vec![], Health::Converging, 1),
        ];
        for (conds, health, reasons) in table {
            let c = cluster("a", "dev", "eu-west-1", "1.33.4", conds.clone());
            let a = assess(&c, &[], now());
            assert_eq!(a.health, health, "{conds:?}");
            assert_eq!(a.reasons.len(), reasons, "{conds:?}: {:?}", a.reasons);
        }
    }

    #[test]
    fn held_remediation_and_failed_machines_need_attention_even_when_ready() {
        let c = cluster("a", "dev", "eu-west-1", "1.33.4", ready());
        let mut held = machine("a-w1", "a", Some("general"), "1.33.4", false);
        if let Some(s) = held.status.as_mut() {
            s.conditions.get_or_insert_with(Vec::new).push(Condition {
                message: Some("3 machines of the fleet are being remediated".to_string()),
                ..cond(
                    "RemediationAllowed",
                    ConditionStatus::False,
                    "FleetRemediationLimit",
                    1,
                )
            });
        }
        let mut failed = machine("a-w2", "a", Some("general"), "1.33.4", false);
        if let Some(s) = failed.status.as_mut() {
            s.phase = Some(MachinePhase::Failed);
            s.failure_reason = Some("BootFailed".to_string());
        }
        let a = assess(&c, &[&held, &failed], now());
        assert_eq!(a.health, Health::Healthy);
        assert!(a.needs_attention());
        assert_eq!(
            a.reasons,
            [
                "remediation held on machine a-w1: 3 machines of the fleet are being remediated",
                "machine a-w2 failed: BootFailed"
            ]
        );
    }

    /// A development cluster in eu-west-1 without capacity for `mins` minutes.
    fn broken(name: &str, mins: i64) -> Cluster {
        let ready = cond("Ready", ConditionStatus::False, "CapacityUnavailable", mins);
        cluster(name, "development", "eu-west-1", "1.33.4", vec![ready])
    }

    #[test]
    fn summary_counts_and_orders_attention_first() {
        let clusters = vec![
            cluster("ok-1", "production", "eu-west-1", "1.33.4", ready()),
            cluster(
                "waiting",
                "development",
                "us-east-1",
                "1.34.1",
                vec![cond("Ready", ConditionStatus::False, "WaitingForNodes", 1)],
            ),
            cluster("ok-2", "production", "eu-west-1", "1.33.10", ready()),
            broken("broken", 5),
            broken("broken-longer", 50),
        ];
        let s = FleetSummary::new(&clusters, &[], now());
        assert_eq!(s.clusters, 5);
        assert_eq!(s.by_tier["production"], 2);
        assert_eq!(s.by_tier["development"], 3);
        assert_eq!(s.by_region["eu-west-1"], 4);
        assert_eq!(
            s.by_version,
            vec![
                ("1.34.1".to_string(), 1),
                ("1.33.10".to_string(), 1),
                ("1.33.4".to_string(), 3)
            ]
        );
        assert_eq!(s.by_health[&Health::Healthy], 2);
        assert_eq!(s.by_health[&Health::Failing], 2);
        assert_eq!(s.nodes, 10);
        assert!((s.cost_per_hour - 2.5).abs() < 1e-9);
        assert_eq!(s.attention(), 3);
        let names: Vec<_> = s
            .order
            .iter()
            .map(|(i, _)| clusters[*i].metadata.name.as_deref().unwrap_or_default())
            .collect();
        assert_eq!(
            names,
            ["broken-longer", "broken", "waiting", "ok-1", "ok-2"]
        );
    }

    #[test]
    fn progress_per_group_during_a_rolling_update() {
        let c = cluster("a", "dev", "eu-west-1", "1.34.1", ready());
        let ms = [
            machine("cp", "a", None, "1.34.1", true),
            machine("w1", "a", Some("general"), "1.33.4", true),
            machine("w2", "a", Some("general"), "1.34.1", false),
            machine("w3", "a", Some("general"), "1.34.1", true),
        ];
        let refs: Vec<_> = ms.iter().collect();
        let p = progress(&c, &refs);
        assert_eq!(p.len(), 2);
        assert!(p[0].converged(), "{:?}", p[0]);
        assert_eq!(
            p[1],
            GroupProgress {
                name: "general".to_string(),
                desired: 2,
                machines: 3,
                ready: 2,
                at_version: 2,
                deleting: 0
            }
        );
        assert!(!p[1].converged());
    }

    #[test]
    fn versions_compare_numerically_and_ages_read_short() {
        assert_eq!(compare_versions("1.33.10", "1.33.9"), Ordering::Greater);
        assert_eq!(compare_versions("v1.34.0", "1.33.9"), Ordering::Greater);
        assert_eq!(compare_versions("unknown", "1.0.0"), Ordering::Greater);
        let t = now();
        assert_eq!(age(t, t - jiff::SignedDuration::from_secs(45)), "45s");
        assert_eq!(age(t, t - jiff::SignedDuration::from_mins(12)), "12m");
        assert_eq!(age(t, t - jiff::SignedDuration::from_hours(5)), "5h");
        assert_eq!(age(t, t - jiff::SignedDuration::from_hours(24 * 9)), "9d");
    }
}
