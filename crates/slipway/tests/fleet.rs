//! Fleets under stress, end to end against `slipway serve` (controllers on, zero-delay
//! simulator) with the real kubectl:
//! - chaos: 50 clusters converge to spec through 10% provisioning failures, a zone outage and
//!   spot interruptions;
//! - crashes: the server is killed with SIGKILL 20 times while 20 clusters are created,
//!   resized and deleted; afterwards nothing is leaked, held twice or stuck;
//! - deleting 100 clusters leaves the simulated cloud empty.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Backend, Server};
use serde_json::Value;

const NS: &str = "fleet";

/// What a cluster should have: control-plane replicas, and replicas per pool.
#[derive(Debug, Clone)]
struct Want {
    control_plane: usize,
    pools: BTreeMap<String, usize>,
}

fn start(extra: &[&str]) -> Server {
    let mut args = vec!["--controllers=true", "--time-scale", "0"];
    args.extend_from_slice(extra);
    let server = Server::start_with(Backend::Sqlite, &args);
    server.kubectl_ok(&["create", "namespace", NS]);
    server
}

/// A small cluster: one control-plane machine, a `general` pool and, if `spot`, a spot pool.
fn cluster(name: &str, general: usize, spot: bool) -> String {
    let spot_pool = if spot {
        "\n    - {name: spot, machineType: m5.large, capacityType: spot, replicas: 1, maxReplicas: 5}"
    } else {
        ""
    };
    format!(
        r#"---
apiVersion: slipway.dev/v1alpha1
kind: Cluster
metadata: {{name: {name}, namespace: {NS}}}
spec:
  version: "1.33.4"
  infrastructure: {{region: eu-west-1, zones: [eu-west-1a, eu-west-1b, eu-west-1c]}}
  controlPlane: {{replicas: 1, machineType: m5.large}}
  nodePools:
    - {{name: general, machineType: m5.xlarge, replicas: {general}, minReplicas: 0, maxReplicas: 10}}{spot_pool}
"#
    )
}

fn json(server: &Server, args: &[&str]) -> Value {
    let mut full = args.to_vec();
    full.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&server.kubectl_ok(&full)).expect("kubectl -o json")
}

fn inventory(server: &Server) -> Value {
    serde_json::from_str(&server.sim("inventory", &[])).expect("inventory JSON")
}

fn faults(server: &Server, args: &[&str]) {
    server.sim("faults", args);
}

fn items(v: &Value) -> &[Value] {
    v["items"].as_array().map_or(&[], Vec::as_slice)
}

fn live(machine: &Value) -> bool {
    !matches!(
        machine["status"]["phase"].as_str(),
        Some("Terminated" | "Terminating")
    )
}

/// Whether the fleet is exactly `want`, everything Ready, and the cloud holds exactly what the
/// platform's Machines say (nothing leaked; with `pooled`, addresses from IPPools, no address
/// twice); the reason when not. (Without a pool, each cluster's network is its own, so
/// addresses may repeat across clusters.)
fn converged(server: &Server, want: &BTreeMap<String, Want>, pooled: bool) -> (bool, String) {
    let clusters = json(server, &["get", "clusters", "-n", NS]);
    let machines = json(server, &["get", "machines", "-n", NS]);
    let inv = inventory(server);
    let mut problems = Vec::new();

    let names: HashSet<&str> = items(&clusters)
        .iter()
        .filter_map(|c| c["metadata"]["name"].as_str())
        .collect();
    let wanted: HashSet<&str> = want.keys().map(String::as_str).collect();
    if names != wanted {
        problems.push(format!(
            "clusters {:?}, want {:?}",
            names.difference(&wanted).collect::<Vec<_>>(),
            wanted.difference(&names).collect::<Vec<_>>()
        ));
    }
    for c in items(&clusters) {
        let name = c["metadata"]["name"].as_str().unwrap_or_default();
        let generation = &c["metadata"]["generation"];
        let ready = c["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|k| k["type"] == "Ready");
        let ok =
            ready.is_some_and(|k| k["status"] == "True" && &k["observedGeneration"] == generation);
        if !ok {
            let remediation = c["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|k| k["type"] == "RemediationAllowed");
            problems.push(format!(
                "{name} not Ready: {:?}; remediation: {:?}",
                ready.map(|k| &k["message"]),
                remediation.map(|k| (&k["reason"], &k["message"]))
            ));
        }
    }

    // Machines per cluster, role and pool.
    let mut counts: HashMap<(String, String), usize> = HashMap::new();
    let mut addresses: HashMap<String, String> = HashMap::new();
    let mut platform: HashSet<String> = HashSet::new();
    for m in items(&machines) {
        let cluster = m["spec"]["clusterName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = m["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if m["metadata"]["deletionTimestamp"].is_string() {
            problems.push(format!("machine {name} still deleting"));
        }
        if m["status"]["phase"] != "Running" {
            let conditions: Vec<String> = m["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|k| k["status"] != "True")
                .map(|k| format!("{}={} {}", k["type"], k["reason"], k["message"]))
                .collect();
            problems.push(format!(
                "machine {name} is {} ({} {}) {conditions:?}",
                m["status"]["phase"], m["status"]["failureReason"], m["status"]["failureMessage"]
            ));
        }
        let group = m["spec"]["pool"]
            .as_str()
            .unwrap_or("control-plane")
            .to_string();
        *counts.entry((cluster, group)).or_default() += 1;
        if let Some(a) = m["status"]["address"].as_str().filter(|_| pooled)
            && let Some(other) = addresses.insert(a.to_string(), name.clone())
        {
            problems.push(format!("address {a} held by {name} and {other}"));
        }
        platform.insert(format!("{NS}/{name}"));
    }
    for (cluster, w) in want {
        let have = |g: &str| {
            counts
                .get(&(cluster.clone(), g.to_string()))
                .copied()
                .unwrap_or(0)
        };
        if have("control-plane") != w.control_plane {
            problems.push(format!(
                "{cluster}: {} control-plane machines",
                have("control-plane")
            ));
        }
        for (pool, n) in &w.pools {
            if have(pool) != *n {
                problems.push(format!(
                    "{cluster}/{pool}: {} machines, want {n}",
                    have(pool)
                ));
            }
        }
    }

    // The cloud: one live machine per Machine, each owned; one network and LB per cluster.
    let mut cloud_ips = HashSet::new();
    let mut cloud_owned = HashSet::new();
    for m in inv["machines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| live(m))
    {
        let tag = m["spec"]["tags"]["slipway.dev/machine"]
            .as_str()
            .unwrap_or_default();
        if !platform.contains(tag) {
            problems.push(format!(
                "cloud machine {} has no Machine ({tag:?})",
                m["id"]
            ));
        }
        if !cloud_owned.insert(tag.to_string()) {
            problems.push(format!("two cloud machines for {tag}"));
        }
        if let Some(ip) = m["status"]["privateIp"].as_str().filter(|_| pooled)
            && !cloud_ips.insert(ip.to_string())
        {
            problems.push(format!("cloud address {ip} held twice"));
        }
    }
    if cloud_owned.len() != platform.len() {
        problems.push(format!(
            "{} live cloud machines for {} Machines",
            cloud_owned.len(),
            platform.len()
        ));
    }
    for kind in ["networks", "loadBalancers"] {
        let n = inv[kind].as_array().map_or(0, Vec::len);
        if n != want.len() {
            problems.push(format!("{n} {kind} for {} clusters", want.len()));
        }
    }
    problems.truncate(60);
    (problems.is_empty(), problems.join("\n"))
}

fn want(general: usize, spot: bool) -> Want {
    let mut pools = BTreeMap::from([("general".to_string(), general)]);
    if spot {
        pools.insert("spot".to_string(), 1);
    }
    Want {
        control_plane: 1,
        pools,
    }
}

/// Terminated cloud machines with `reason`.
fn terminated_for(inv: &Value, reason: &str) -> usize {
    inv["machines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["status"]["reason"] == reason)
        .count()
}

#[test]
fn fifty_clusters_converge_through_failures_an_outage_and_spot_interruptions() {
    let server = start(&[]);
    faults(
        &server,
        &[
            "--provisioning-failure-rate",
            "0.1",
            "--spot-interruption-rate",
            "0.05",
            "--zone-outage",
            "eu-west-1c",
        ],
    );
    let mut fleet = BTreeMap::new();
    let mut manifest = String::new();
    for i in 0..50 {
        let name = format!("c{i:02}");
        manifest.push_str(&cluster(&name, 2, true));
        fleet.insert(name, want(2, true));
    }
    let out = server.apply(&manifest, &[]);
    assert!(out.status.success(), "{}", common::stderr(&out));

    // While eu-west-1c is out, nothing converges there; then it comes back.
    std::thread::sleep(Duration::from_secs(15));
    faults(&server, &["--zone-restore", "eu-west-1c"]);
    // Interruptions stop so that the fleet can settle; provisioning failures go on.
    std::thread::sleep(Duration::from_secs(10));
    faults(&server, &["--spot-interruption-rate", "0"]);
    common::wait_for("the fleet converges", Duration::from_secs(300), || {
        converged(&server, &fleet, false)
    });
    let inv = inventory(&server);
    assert!(
        terminated_for(&inv, "ProvisioningFailed") + terminated_for(&inv, "SpotInterruption") > 0,
        "no fault was injected: {inv}"
    );
}

/// A tiny deterministic generator (xorshift), seeded from the clock and printed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const POOL: &str = r#"
apiVersion: slipway.dev/v1alpha1
kind: IPPool
metadata: {name: eu-west-1}
spec: {region: eu-west-1, cidrs: [10.30.0.0/22]}
"#;

#[test]
fn killed_twenty_times_while_clusters_change_nothing_leaks_or_sticks() {
    let mut server = start(&["--orphan-grace", "5s", "--orphan-sweep", "2s"]);
    server.apply(POOL, &[]);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("crash test seed: {seed}");
    let mut rng = Rng(seed);
    let mut fleet: BTreeMap<String, Want> = BTreeMap::new();
    let mut next = 0;
    for round in 0..20 {
        // Something changes: a new cluster (the first rounds), a resize, or a delete.
        let action = if round < 8 { 0 } else { rng.below(3) };
        match action {
            0 => {
                let name = format!("k{next:02}");
                next += 1;
                let out = server.apply(&cluster(&name, 2, false), &[]);
                assert!(out.status.success(), "{}", common::stderr(&out));
                fleet.insert(name, want(2, false));
            }
            1 if !fleet.is_empty() => {
                let i = rng.below(fleet.len() as u64) as usize;
                let name = fleet.keys().nth(i).cloned().unwrap_or_default();
                let size = rng.below(4) as usize;
                server.kubectl_ok(&[
                    "patch",
                    "cluster",
                    &name,
                    "-n",
                    NS,
                    "--type",
                    "json",
                    "-p",
                    &format!(
                        r#"[{{"op":"replace","path":"/spec/nodePools/0/replicas","value":{size}}}]"#
                    ),
                ]);
                fleet.insert(name, want(size, false));
            }
            _ if !fleet.is_empty() => {
                let i = rng.below(fleet.len() as u64) as usize;
                let name = fleet.keys().nth(i).cloned().unwrap_or_default();
                server.kubectl_ok(&["delete", "cluster", &name, "-n", NS, "--wait=false"]);
                fleet.remove(&name);
            }
            _ => {}
        }
        // Let the controllers get part of the way, then kill the server mid-flight.
        std::thread::sleep(Duration::from_millis(200 + rng.below(1500)));
        server.restart();
    }
    common::wait_for(
        "the fleet converges after the crashes",
        Duration::from_secs(300),
        || converged(&server, &fleet, true),
    );
    // Every address is held by one live Machine, as recorded on it.
    let claims = json(&server, &["get", "ipaddresses"]);
    let machines = json(&server, &["get", "machines", "-n", NS]);
    let by_machine: HashMap<&str, &str> = items(&machines)
        .iter()
        .filter_map(|m| {
            Some((
                m["metadata"]["uid"].as_str()?,
                m["status"]["address"].as_str()?,
            ))
        })
        .collect();
    assert_eq!(items(&claims).len(), by_machine.len(), "{claims}");
    for c in items(&claims) {
        let uid = c["spec"]["machine"]["uid"].as_str().unwrap_or_default();
        assert_eq!(
            by_machine.get(uid).copied(),
            c["spec"]["address"].as_str(),
            "claim {c} does not match its Machine"
        );
    }
    // No finalizer left behind: every Cluster and Machine still there is wanted.
    let clusters = json(&server, &["get", "clusters", "-n", NS]);
    assert!(
        items(&clusters)
            .iter()
            .all(|c| c["metadata"]["deletionTimestamp"].is_null()),
        "{clusters}"
    );
}

#[test]
fn deleting_a_hundred_clusters_leaves_the_cloud_empty() {
    let server = start(&[]);
    let mut manifest = String::new();
    let mut fleet = BTreeMap::new();
    for i in 0..100 {
        let name = format!("d{i:03}");
        manifest.push_str(&cluster(&name, 1, false));
        fleet.insert(name, want(1, false));
    }
    let out = server.apply(&manifest, &[]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    common::wait_for("100 clusters Ready", Duration::from_secs(300), || {
        converged(&server, &fleet, false)
    });
    server.kubectl_ok(&["delete", "clusters", "--all", "-n", NS, "--wait=false"]);
    common::wait_for("the cloud is empty", Duration::from_secs(300), || {
        let inv = inventory(&server);
        let live = inv["machines"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| live(m))
            .count();
        let left: Vec<usize> = ["networks", "subnets", "loadBalancers"]
            .iter()
            .map(|k| inv[*k].as_array().map_or(0, Vec::len))
            .collect();
        (
            live == 0 && left == [0, 0, 0],
            format!("{live} live machines; networks, subnets, load balancers: {left:?}"),
        )
    });
    let rest = server.kubectl_ok(&["get", "clusters,machines,secrets", "-n", NS, "-o", "name"]);
    assert!(rest.trim().is_empty(), "left in the platform: {rest}");
}
