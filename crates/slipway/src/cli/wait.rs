//! `--wait`: progress bars until a change has converged, or a non-zero exit that says what
//! blocks it.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kube::ResourceExt as _;
use kube::api::ListParams;
use slipway_api::cluster::{Cluster, ConditionStatus};
use slipway_api::machine::{Machine, MachineRole};

use super::Conn;
use super::get::condition;
use super::kinds::Resource;

const POLL: Duration = Duration::from_millis(500);

/// How far a cluster is from what its spec asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// (group, machines Ready and up to date, machines wanted), control plane first.
    pub groups: Vec<(String, i64, i64)>,
    /// The spec is observed, every group has exactly its machines, all Ready, and the
    /// cluster says Ready.
    pub done: bool,
    /// What the cluster says while it is not done: `Ready=False Reason: message`.
    pub blocking: String,
}

/// The progress of `cluster` with `machines` (its Machines).
pub fn progress(cluster: &Cluster, machines: &[Machine]) -> Progress {
    let live: Vec<&Machine> = machines
        .iter()
        .filter(|m| m.metadata.deletion_timestamp.is_none())
        .collect();
    let node_ready = |m: &&Machine| {
        condition(
            m.status.as_ref().and_then(|s| s.conditions.as_ref()),
            "NodeReady",
        )
        .is_some_and(|c| c.status == ConditionStatus::True)
    };
    let current = |m: &&Machine| {
        cluster
            .spec
            .version
            .as_deref()
            .is_none_or(|v| m.spec.version == v)
    };
    let mut groups = Vec::new();
    let mut exact = true;
    let cp_wanted = i64::from(
        cluster
            .spec
            .control_plane
            .as_ref()
            .and_then(|c| c.replicas)
            .unwrap_or(1),
    );
    let cp: Vec<&&Machine> = live
        .iter()
        .filter(|m| m.spec.role == MachineRole::ControlPlane)
        .collect();
    let count = |ms: &[&&Machine]| {
        i64::try_from(ms.iter().filter(|m| node_ready(m) && current(m)).count()).unwrap_or(0)
    };
    exact &= i64::try_from(cp.len()).unwrap_or(0) == cp_wanted;
    groups.push(("control plane".to_string(), count(&cp), cp_wanted));
    for pool in cluster.spec.node_pools.iter().flatten() {
        let wanted = i64::from(pool.replicas.unwrap_or(0));
        let members: Vec<&&Machine> = live
            .iter()
            .filter(|m| {
                m.spec.role == MachineRole::Worker && m.spec.pool.as_deref() == Some(&pool.name)
            })
            .collect();
        exact &= i64::try_from(members.len()).unwrap_or(0) == wanted;
        groups.push((format!("pool {}", pool.name), count(&members), wanted));
    }
    let leaving = machines.len() != live.len();
    let status = cluster.status.as_ref();
    let observed = status.and_then(|s| s.observed_generation) >= cluster.metadata.generation;
    let ready = condition(status.and_then(|s| s.conditions.as_ref()), "Ready");
    let is_ready = ready.is_some_and(|c| c.status == ConditionStatus::True);
    let all_ready = groups.iter().all(|(_, r, w)| r == w);
    let done = observed && is_ready && exact && all_ready && !leaving;
    let blocking = match ready {
        Some(c) => {
            let mut text = format!("Ready={}", c.status);
            if let Some(r) = c.reason.as_deref().filter(|r| !r.is_empty()) {
                text.push(' ');
                text.push_str(r);
            }
            if let Some(m) = c.message.as_deref().filter(|m| !m.is_empty()) {
                text.push_str(": ");
                text.push_str(m);
            }
            text
        }
        None => "not observed by the controllers yet".to_string(),
    };
    Progress {
        groups,
        done,
        blocking,
    }
}

/// Bars on a terminal; a line per change otherwise.
struct Display {
    multi: Option<MultiProgress>,
    bars: Vec<ProgressBar>,
    status: Option<ProgressBar>,
    last: String,
}

impl Display {
    fn new() -> Self {
        let tty = std::io::stderr().is_terminal();
        Self {
            multi: tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            bars: Vec::new(),
            status: None,
            last: String::new(),
        }
    }

    fn show(&mut self, title: &str, p: &Progress) {
        let Some(multi) = &self.multi else {
            let line = format!(
                "{title}: {} | {}",
                p.groups
                    .iter()
                    .map(|(g, r, w)| format!("{g} {r}/{w}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                p.blocking
            );
            if line != self.last {
                eprintln!("{line}");
                self.last = line;
            }
            return;
        };
        let style = ProgressStyle::with_template("{prefix:>18} [{bar:30}] {pos}/{len} ready")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        while self.bars.len() < p.groups.len() {
            let bar = multi.add(ProgressBar::new(0).with_style(style.clone()));
            self.bars.push(bar);
        }
        for (bar, (group, ready, wanted)) in self.bars.iter().zip(&p.groups) {
            bar.set_prefix(group.clone());
            bar.set_length(u64::try_from(*wanted).unwrap_or(0));
            bar.set_position(u64::try_from(*ready).unwrap_or(0));
        }
        let status = self.status.get_or_insert_with(|| {
            let s = multi.add(ProgressBar::new_spinner());
            s.enable_steady_tick(Duration::from_millis(120));
            s
        });
        status.set_message(format!("{title}: {}", p.blocking));
    }

    fn finish(&mut self) {
        for bar in &self.bars {
            bar.finish();
        }
        if let Some(s) = &self.status {
            s.finish_and_clear();
        }
    }
}

/// Wait until `cluster` (as just written) has converged.
pub async fn converged(conn: &Conn, cluster: &Cluster, timeout: Duration) -> anyhow::Result<()> {
    let ns = cluster
        .namespace()
        .unwrap_or_else(|| conn.namespace.clone());
    let name = cluster.name_any();
    let clusters: kube::Api<Cluster> = kube::Api::namespaced(conn.client.clone(), &ns);
    let machines: kube::Api<Machine> = kube::Api::namespaced(conn.client.clone(), &ns);
    let selector = ListParams::default().labels(&format!("slipway.dev/cluster={name}"));
    let title = format!("cluster {ns}/{name}");
    let started = Instant::now();
    let mut display = Display::new();
    loop {
        let current = clusters
            .get(&name)
            .await
            .map_err(|e| conn.explain(e, &format!("reading {title}")))?;
        let owned = machines
            .list(&selector)
            .await
            .map_err(|e| conn.explain(e, &format!("listing the machines of {title}")))?
            .items;
        // `progress` wants the spec observed: the current generation is at least the one
        // just written, so this change was seen.
        let p = progress(&current, &owned);
        display.show(&title, &p);
        if p.done {
            display.finish();
            eprintln!("{title} converged in {}s", started.elapsed().as_secs());
            return Ok(());
        }
        if started.elapsed() >= timeout {
            display.finish();
            anyhow::bail!(
                "timed out after {}s waiting for {title}: {} ({})",
                timeout.as_secs(),
                p.blocking,
                p.groups
                    .iter()
                    .map(|(g, r, w)| format!("{g} {r}/{w} ready"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Wait until `name` of `resource` is gone (a Cluster: its machines go first).
pub async fn gone(
    conn: &Conn,
    resource: &Resource,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let api = conn.dynamic(resource);
    let machines: kube::Api<Machine> = kube::Api::namespaced(conn.client.clone(), &conn.namespace);
    let is_cluster = resource.api.kind == "Cluster";
    let selector = ListParams::default().labels(&format!("slipway.dev/cluster={name}"));
    let title = format!("{} {name}", resource.api.kind.to_ascii_lowercase());
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let bar = tty.then(|| {
        let b = ProgressBar::new_spinner();
        b.enable_steady_tick(Duration::from_millis(120));
        b
    });
    let mut last = String::new();
    loop {
        let Some(object) = api
            .get_opt(name)
            .await
            .map_err(|e| conn.explain(e, &format!("reading {title}")))?
        else {
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            eprintln!("{title} deleted in {}s", started.elapsed().as_secs());
            return Ok(());
        };
        let mut state = format!("finalizers: {}", object.finalizers().join(", "));
        if is_cluster {
            let left = machines
                .list(&selector)
                .await
                .map_err(|e| conn.explain(e, &format!("listing the machines of {title}")))?
                .items
                .len();
            state = format!("{left} machines left, {state}");
        }
        let line = format!("deleting {title}: {state}");
        match &bar {
            Some(b) => b.set_message(line.clone()),
            None if line != last => eprintln!("{line}"),
            None => {}
        }
        last = line;
        if started.elapsed() >= timeout {
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            anyhow::bail!(
                "timed out after {}s waiting for {title} to go: {state}",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(pool_replicas: i32, ready: bool, observed: i64) -> Cluster {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "slipway.dev/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "c", "namespace": "t", "generation": 2},
            "spec": {
                "version": "1.33.4",
                "infrastructure": {"region": "r"},
                "controlPlane": {"replicas": 1},
                "nodePools": [{"name": "general", "replicas": pool_replicas}]
            },
            "status": {
                "observedGeneration": observed,
                "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
                                "reason": if ready {"Ready"} else {"ScalingUp"}, "message": "1 of 2 nodes"}]
            }
        }))
        .expect("cluster")
    }

    fn machine(name: &str, pool: Option<&str>, ready: bool) -> Machine {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "slipway.dev/v1alpha1", "kind": "Machine",
            "metadata": {"name": name, "namespace": "t"},
            "spec": {
                "clusterName": "c", "role": if pool.is_some() {"worker"} else {"control-plane"},
                "pool": pool, "zone": "z", "machineType": "m5.large", "version": "1.33.4"
            },
            "status": {"conditions": [{"type": "NodeReady", "status": if ready {"True"} else {"False"}}]}
        }))
        .expect("machine")
    }

    #[test]
    fn done_only_when_every_group_is_exactly_ready_and_observed() {
        let machines = [
            machine("cp", None, true),
            machine("w1", Some("general"), true),
            machine("w2", Some("general"), false),
        ];
        let p = progress(&cluster(2, false, 2), &machines);
        assert_eq!(
            p.groups,
            [
                ("control plane".into(), 1, 1),
                ("pool general".into(), 1, 2)
            ]
        );
        assert!(!p.done);
        assert_eq!(p.blocking, "Ready=False ScalingUp: 1 of 2 nodes");

        let ready = [
            machines[0].clone(),
            machines[1].clone(),
            machine("w2", Some("general"), true),
        ];
        assert!(progress(&cluster(2, true, 2), &ready).done);
        // The controllers have not seen the latest spec yet.
        assert!(!progress(&cluster(2, true, 1), &ready).done);
        // A machine too many (scaling down) is not done.
        assert!(!progress(&cluster(1, true, 2), &ready).done);
    }
}
