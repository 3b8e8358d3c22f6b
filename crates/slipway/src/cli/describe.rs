//! `slipway describe cluster NAME`: the cluster as a tree, as `clusterctl describe` shows one:
//! the cluster, its control plane, its pools and their machines, each with its conditions,
//! then the recent events of all of them.

use clap::Args;
use k8s_openapi::api::core::v1::Event;
use kube::ResourceExt as _;
use kube::api::ListParams;
use slipway_api::cluster::{Cluster, Condition, ConditionStatus};
use slipway_api::machine::{Machine, MachineRole};

use super::Conn;
use super::kinds::Kind;
use super::table::{Table, age};

#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// cluster
    kind: Kind,
    /// The cluster.
    name: String,
    /// Every condition of every object (default: a machine's only when one is not True).
    #[arg(long)]
    show_conditions: bool,
}

pub async fn run(conn: &Conn, args: &DescribeArgs) -> anyhow::Result<()> {
    args.kind.expect(Kind::Cluster, "describe")?;
    let cluster = conn
        .clusters()
        .get(&args.name)
        .await
        .map_err(|e| conn.explain(e, &format!("reading cluster {}", args.name)))?;
    let machines: kube::Api<Machine> = kube::Api::namespaced(conn.client.clone(), &conn.namespace);
    let mut owned = machines
        .list(&ListParams::default().labels(&format!("slipway.dev/cluster={}", args.name)))
        .await
        .map_err(|e| conn.explain(e, "listing machines"))?
        .items;
    owned.sort_by_key(kube::ResourceExt::name_any);
    print!("{}", tree(&cluster, &owned, args.show_conditions));

    // Events of the cluster and its machines, newest last.
    let events: kube::Api<Event> = kube::Api::namespaced(conn.client.clone(), &conn.namespace);
    let names: std::collections::HashSet<String> = std::iter::once(args.name.clone())
        .chain(owned.iter().map(kube::ResourceExt::name_any))
        .collect();
    let mut recent: Vec<Event> = events
        .list(&ListParams::default())
        .await
        .map_err(|e| conn.explain(e, "listing events"))?
        .items
        .into_iter()
        .filter(|e| {
            e.involved_object
                .name
                .as_ref()
                .is_some_and(|n| names.contains(n))
                && matches!(
                    e.involved_object.kind.as_deref(),
                    Some("Cluster" | "Machine")
                )
        })
        .collect();
    recent.sort_by_key(|e| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or(e.event_time.as_ref().map(|t| t.0))
    });
    println!();
    if recent.is_empty() {
        println!("Events: <none>");
        return Ok(());
    }
    println!("Events:");
    let mut t = Table::new(&["  TYPE", "REASON", "AGE", "OBJECT", "MESSAGE"]);
    for e in recent.iter().rev().take(15).rev() {
        t.rows.push(vec![
            format!("  {}", e.type_.clone().unwrap_or_default()),
            e.reason.clone().unwrap_or_default(),
            age(e.last_timestamp.as_ref().or(e.first_timestamp.as_ref())),
            format!(
                "{}/{}",
                e.involved_object.kind.clone().unwrap_or_default(),
                e.involved_object.name.clone().unwrap_or_default()
            ),
            e.message.clone().unwrap_or_default(),
        ]);
    }
    print!("{t}");
    Ok(())
}

/// The tree of `cluster` and its `machines`.
pub fn tree(cluster: &Cluster, machines: &[Machine], show_all: bool) -> Table {
    let mut t = Table::new(&["NAME", "READY", "REASON", "SINCE", "MESSAGE"]);
    let conditions = cluster.status.as_ref().and_then(|s| s.conditions.as_ref());
    let version = cluster.spec.version.clone().unwrap_or_default();
    t.rows.push(object_row(
        "",
        &format!("Cluster/{}", cluster.name_any()),
        conditions,
        &format!(
            "{} {}, {}",
            cluster.spec.infrastructure.region,
            cluster
                .spec
                .infrastructure
                .zones
                .clone()
                .unwrap_or_default()
                .join(","),
            version
        ),
    ));
    condition_rows(&mut t, "│ ", conditions);

    let cp: Vec<&Machine> = machines
        .iter()
        .filter(|m| m.spec.role == MachineRole::ControlPlane)
        .collect();
    let pools: Vec<_> = cluster.spec.node_pools.iter().flatten().collect();
    let has_pools = !pools.is_empty();
    let cp_spec = cluster.spec.control_plane.as_ref();
    t.rows.push(group_row(
        if has_pools { "├─" } else { "└─" },
        "ControlPlane",
        &cp,
        i64::from(cp_spec.and_then(|c| c.replicas).unwrap_or(1)),
        &cp_spec
            .and_then(|c| c.machine_type.clone())
            .unwrap_or_default(),
    ));
    let indent = if has_pools { "│ " } else { "  " };
    machine_rows(&mut t, indent, &cp, show_all);

    for (i, pool) in pools.iter().enumerate() {
        let last = i + 1 == pools.len();
        let members: Vec<&Machine> = machines
            .iter()
            .filter(|m| {
                m.spec.role == MachineRole::Worker && m.spec.pool.as_deref() == Some(&pool.name)
            })
            .collect();
        let kind = format!(
            "{}, {}",
            pool.machine_type.clone().unwrap_or_default(),
            pool.capacity_type
                .map(|c| c.to_string())
                .unwrap_or_else(|| "on-demand".into())
        );
        t.rows.push(group_row(
            if last { "└─" } else { "├─" },
            &format!("Pool/{}", pool.name),
            &members,
            i64::from(pool.replicas.unwrap_or(0)),
            &kind,
        ));
        machine_rows(&mut t, if last { "  " } else { "│ " }, &members, show_all);
    }
    t
}

fn ready_of(conditions: Option<&Vec<Condition>>) -> Option<&Condition> {
    conditions.and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
}

fn object_row(
    prefix: &str,
    name: &str,
    conditions: Option<&Vec<Condition>>,
    details: &str,
) -> Vec<String> {
    let ready = ready_of(conditions);
    let message = match ready {
        Some(c) if c.status != ConditionStatus::True => c
            .message
            .clone()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| details.to_string()),
        _ => details.to_string(),
    };
    vec![
        format!("{prefix}{name}"),
        ready.map(|c| c.status.to_string()).unwrap_or_default(),
        ready
            .filter(|c| c.status != ConditionStatus::True)
            .and_then(|c| c.reason.clone())
            .unwrap_or_default(),
        ready
            .map(|c| age(c.last_transition_time.as_ref()))
            .unwrap_or_default(),
        message,
    ]
}

/// A group's row: how many of its machines are Ready out of how many it wants.
fn group_row(
    prefix: &str,
    name: &str,
    members: &[&Machine],
    wanted: i64,
    kind: &str,
) -> Vec<String> {
    let ready = members
        .iter()
        .filter(|m| {
            ready_of(m.status.as_ref().and_then(|s| s.conditions.as_ref()))
                .is_some_and(|c| c.status == ConditionStatus::True)
        })
        .count();
    vec![
        format!("{prefix}{name}"),
        format!("{ready}/{wanted}"),
        String::new(),
        String::new(),
        kind.to_string(),
    ]
}

fn machine_rows(t: &mut Table, indent: &str, members: &[&Machine], show_all: bool) {
    for (i, m) in members.iter().enumerate() {
        let last = i + 1 == members.len();
        let status = m.status.as_ref();
        let phase = super::get::machine_phase(m);
        let details = format!(
            "{} {} {} {}",
            m.spec.zone, m.spec.machine_type, m.spec.version, phase
        );
        let conditions = status.and_then(|s| s.conditions.as_ref());
        t.rows.push(object_row(
            &format!("{indent}{}", if last { "└─" } else { "├─" }),
            &format!("Machine/{}", m.name_any()),
            conditions,
            &details,
        ));
        let troubled =
            conditions.is_some_and(|cs| cs.iter().any(|c| c.status != ConditionStatus::True));
        if show_all || troubled {
            condition_rows(
                t,
                &format!("{indent}{}", if last { "  " } else { "│ " }),
                conditions,
            );
        }
        if let Some(reason) = status.and_then(|s| s.failure_reason.as_deref()) {
            t.rows.push(vec![
                format!("{indent}{}  failure", if last { "  " } else { "│ " }),
                "False".into(),
                reason.to_string(),
                String::new(),
                status
                    .and_then(|s| s.failure_message.clone())
                    .unwrap_or_default(),
            ]);
        }
    }
}

/// The conditions other than Ready, one row each.
fn condition_rows(t: &mut Table, indent: &str, conditions: Option<&Vec<Condition>>) {
    let others: Vec<&Condition> = conditions
        .into_iter()
        .flatten()
        .filter(|c| c.type_ != "Ready")
        .collect();
    for c in others {
        t.rows.push(vec![
            format!("{indent}  {}", c.type_),
            c.status.to_string(),
            c.reason.clone().unwrap_or_default(),
            age(c.last_transition_time.as_ref()),
            c.message.clone().unwrap_or_default(),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_reads_as_a_tree_of_groups_and_machines() {
        let cluster: Cluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "slipway.dev/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "pay", "namespace": "t"},
            "spec": {
                "version": "1.33.4",
                "infrastructure": {"region": "eu-west-1", "zones": ["eu-west-1a"]},
                "controlPlane": {"replicas": 1, "machineType": "m5.large"},
                "nodePools": [{"name": "general", "machineType": "m5.xlarge", "replicas": 2}]
            },
            "status": {"conditions": [
                {"type": "Ready", "status": "False", "reason": "ScalingUp", "message": "1 of 2 nodes ready"},
                {"type": "InfrastructureReady", "status": "True", "reason": "Provisioned"}
            ]}
        }))
        .expect("cluster");
        let machine = |name: &str, pool: Option<&str>, ready: bool| -> Machine {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "slipway.dev/v1alpha1", "kind": "Machine",
                "metadata": {"name": name, "namespace": "t"},
                "spec": {"clusterName": "pay", "role": if pool.is_some() {"worker"} else {"control-plane"},
                         "pool": pool, "zone": "eu-west-1a", "machineType": "m5.xlarge", "version": "1.33.4"},
                "status": {"phase": "Running", "conditions": [
                    {"type": "NodeReady", "status": if ready {"True"} else {"False"}, "reason": if ready {"KubeletReady"} else {"WaitingForNode"}},
                    {"type": "Ready", "status": if ready {"True"} else {"False"}, "reason": if ready {"Ready"} else {"NotReady"}}
                ]}
            }))
            .expect("machine")
        };
        let machines = [
            machine("pay-cp", None, true),
            machine("pay-general-a", Some("general"), true),
            machine("pay-general-b", Some("general"), false),
        ];
        let t = tree(&cluster, &machines, false);
        let names: Vec<&str> = t.rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(
            names,
            [
                "Cluster/pay",
                "│   InfrastructureReady",
                "├─ControlPlane",
                "│ └─Machine/pay-cp",
                "└─Pool/general",
                "  ├─Machine/pay-general-a",
                "  └─Machine/pay-general-b",
                "      NodeReady",
            ]
        );
        assert_eq!(
            t.rows[0][1..3],
            ["False".to_string(), "ScalingUp".to_string()]
        );
        assert_eq!(t.rows[4][1], "1/2");
        assert_eq!(t.rows[7][2], "WaitingForNode");
    }
}
