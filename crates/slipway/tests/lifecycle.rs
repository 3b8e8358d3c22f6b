//! The self-service cluster lifecycle, end to end with the real kubectl against `slipway serve`
//! and its in-process simulated cloud (zero delay): apply a ~20-line Cluster, wait for Ready,
//! use the cluster with the kubeconfig from its Secret, resize a pool (to zero and back),
//! relabel it in place, and delete the cluster without leaving anything in the cloud; roll a
//! pool to a new machine type and arch within maxSurge/maxUnavailable while a workload with a
//! PodDisruptionBudget keeps running; hold replacement back through a zone outage.

mod common;

use std::time::Duration;

use common::{Backend, Server, ok};

const PATIENCE: Duration = Duration::from_secs(120);

const CLUSTER: &str = r#"
apiVersion: slipway.dev/v1alpha1
kind: Cluster
metadata:
  name: payments
  namespace: team-a
spec:
  version: "1.33.4"
  infrastructure:
    provider: sim
    region: eu-west-1
    zones: [eu-west-1a, eu-west-1b, eu-west-1c]
  controlPlane:
    replicas: 3
    machineType: m5.large
  nodePools:
    - name: general
      machineType: m5.xlarge
      replicas: 2
      minReplicas: 0
      maxReplicas: 10
      labels: {workload: general}
"#;

fn start() -> Server {
    Server::start_with(
        Backend::Sqlite,
        &["--controllers=true", "--time-scale", "0"],
    )
}

/// Poll `check` until it returns true; the last output is in the panic message.
fn eventually(what: &str, check: impl FnMut() -> (bool, String)) {
    common::wait_for(what, PATIENCE, check);
}

fn cloud_machines(server: &Server) -> String {
    server.sim("machines", &[])
}

/// The workload cluster's kubeconfig from its `<name>-kubeconfig` Secret, written to a file.
fn workload_kubeconfig(server: &Server, ns: &str, name: &str) -> std::path::PathBuf {
    let kubeconfig_b64 = server.kubectl_ok(&[
        "get",
        "secret",
        &format!("{name}-kubeconfig"),
        "-n",
        ns,
        "-o",
        "jsonpath={.data.value}",
    ]);
    let kubeconfig = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        kubeconfig_b64.trim(),
    )
    .expect("base64 kubeconfig");
    let path = server.data_dir().join(format!("{name}.kubeconfig"));
    std::fs::write(&path, kubeconfig).expect("write kubeconfig");
    path
}

fn live_cloud_machines(server: &Server) -> usize {
    cloud_machines(server)
        .lines()
        .skip(1)
        .filter(|l| !l.contains("Terminated"))
        .count()
}

#[test]
fn a_cluster_from_one_manifest_to_nothing() {
    let server = start();
    server.kubectl_ok(&["create", "namespace", "team-a"]);
    server.apply(CLUSTER, &[]);
    server.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "cluster/payments",
        "-n",
        "team-a",
        "--timeout=120s",
    ]);

    // Machines are visible, labelled and owned by their Cluster.
    let machines = server.kubectl_ok(&[
        "get", "machines", "-n", "team-a", "-l", "slipway.dev/cluster=payments", "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.role} {.spec.zone} {.metadata.ownerReferences[0].kind}{\"\\n\"}{end}",
    ]);
    let lines: Vec<&str> = machines.lines().collect();
    assert_eq!(lines.len(), 5, "{machines}");
    let cp_zones: std::collections::BTreeSet<&str> = lines
        .iter()
        .filter(|l| l.contains(" control-plane "))
        .filter_map(|l| l.split(' ').nth(2))
        .collect();
    assert_eq!(
        cp_zones.len(),
        3,
        "control plane spread over three zones: {machines}"
    );
    assert!(lines.iter().all(|l| l.ends_with(" Cluster")), "{machines}");
    let cp = server.kubectl_ok(&[
        "get",
        "machines",
        "-n",
        "team-a",
        "-l",
        "slipway.dev/role=control-plane",
        "-o",
        "name",
    ]);
    assert_eq!(cp.lines().count(), 3, "{cp}");

    // Status: endpoint, nodes per pool, cost.
    let status = server.kubectl_ok(&[
        "get", "cluster", "payments", "-n", "team-a", "-o",
        "jsonpath={.status.endpoint} {.status.nodePools[0].readyReplicas} {.status.costPerHour} {.status.versions.controlPlane}",
    ]);
    let parts: Vec<&str> = status.split(' ').collect();
    assert!(parts[0].starts_with("https://"), "{status}");
    assert_eq!(parts[1], "2", "{status}");
    // 3 x m5.large + 2 x m5.xlarge on demand.
    assert_eq!(parts[2], "0.672", "{status}");
    assert_eq!(parts[3], "1.33.4", "{status}");

    // The kubeconfig Secret opens the cluster to kubectl.
    let kc_path = workload_kubeconfig(&server, "team-a", "payments");
    let workload = |args: &[&str]| {
        common::kubectl_with(&kc_path, &kc_path.with_extension("cache"), args, None)
    };
    let nodes = ok(workload(&["get", "nodes", "-o", "name"]));
    assert_eq!(nodes.lines().count(), 5, "{nodes}");
    let general = ok(workload(&[
        "get",
        "nodes",
        "-l",
        "workload=general",
        "-o",
        "name",
    ]));
    assert_eq!(general.lines().count(), 2, "{general}");

    // Resize: up, down to zero and back.
    for size in [4, 0, 1] {
        server.kubectl_ok(&[
            "patch",
            "cluster",
            "payments",
            "-n",
            "team-a",
            "--type=json",
            "-p",
            &format!(
                r#"[{{"op": "replace", "path": "/spec/nodePools/0/replicas", "value": {size}}}]"#
            ),
        ]);
        eventually(&format!("pool size {size}"), || {
            let out = workload(&["get", "nodes", "-l", "workload=general", "-o", "name"]);
            let n = String::from_utf8_lossy(&out.stdout).lines().count();
            let machines = server.kubectl_ok(&[
                "get",
                "machines",
                "-n",
                "team-a",
                "-l",
                "slipway.dev/pool=general",
                "-o",
                "name",
            ]);
            (
                n == size && machines.lines().count() == size,
                format!("{n} nodes; machines: {machines}"),
            )
        });
    }
    server.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "cluster/payments",
        "-n",
        "team-a",
        "--timeout=120s",
    ]);

    // New labels reach the node in place: same machine, same node.
    let before = server.kubectl_ok(&[
        "get",
        "machines",
        "-n",
        "team-a",
        "-l",
        "slipway.dev/pool=general",
        "-o",
        "name",
    ]);
    server.kubectl_ok(&[
        "patch", "cluster", "payments", "-n", "team-a", "--type=json", "-p",
        r#"[{"op": "replace", "path": "/spec/nodePools/0/labels", "value": {"workload": "batch"}}]"#,
    ]);
    eventually("relabelled node", || {
        let out = workload(&["get", "nodes", "-l", "workload=batch", "-o", "name"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (text.lines().count() == 1, text)
    });
    let after = server.kubectl_ok(&[
        "get",
        "machines",
        "-n",
        "team-a",
        "-l",
        "slipway.dev/pool=general",
        "-o",
        "name",
    ]);
    assert_eq!(before, after, "relabelling must not replace machines");

    // Delete: nothing is left behind.
    assert!(live_cloud_machines(&server) > 0);
    server.kubectl_ok(&[
        "delete",
        "cluster",
        "payments",
        "-n",
        "team-a",
        "--timeout=120s",
    ]);
    let left = server.kubectl_ok(&["get", "machines,secrets", "-n", "team-a", "-o", "name"]);
    assert!(left.trim().is_empty(), "left behind: {left}");
    eventually("an empty cloud", || {
        let n = live_cloud_machines(&server);
        (n == 0, cloud_machines(&server))
    });
}

const PRODUCTION: &str = r#"
apiVersion: slipway.dev/v1alpha1
kind: ClusterClass
metadata:
  name: production
spec:
  description: Customer-facing clusters
  tier: production
  defaults:
    version: "1.33.4"
    controlPlaneReplicas: 3
    controlPlaneMachineType: m5.large
    nodePoolMachineType: m5.xlarge
  policy:
    allowedVersions: ["1.33", "1.32.5"]
    allowedMachineTypes: [m5.large, m5.xlarge, m5.2xlarge]
    controlPlaneReplicas: [3, 5]
    minZones: 2
    allowSpot: false
"#;

/// Bad manifests are refused by `kubectl apply` with the field and the reason; a short one
/// gets its class's defaults.
#[test]
fn bad_manifests_are_refused_at_apply_time() {
    let server = Server::start(Backend::Sqlite);
    server.kubectl_ok(&["create", "namespace", "team-c"]);
    let out = server.apply(PRODUCTION, &[]);
    assert!(out.status.success(), "{}", common::stderr(&out));

    let short = r#"
apiVersion: slipway.dev/v1alpha1
kind: Cluster
metadata: {name: shop, namespace: team-c}
spec:
  class: production
  infrastructure: {region: eu-west-1}
  nodePools: [{name: general, replicas: 3}]
"#;
    let out = server.apply(short, &[]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let filled = server.kubectl_ok(&[
        "get", "cluster", "shop", "-n", "team-c", "-o",
        "jsonpath={.spec.version} {.spec.tier} {.spec.controlPlane.replicas} {.spec.nodePools[0].machineType}",
    ]);
    assert_eq!(filled, "1.33.4 production 3 m5.xlarge");

    let refused = |manifest: String, wants: &[&str]| {
        let out = server.apply(&manifest, &[]);
        let err = common::stderr(&out);
        assert!(!out.status.success(), "accepted: {manifest}");
        for w in wants {
            assert!(err.contains(w), "{w:?} not in: {err}");
        }
    };
    let with = |spec_lines: &str| {
        format!(
            "apiVersion: slipway.dev/v1alpha1\nkind: Cluster\nmetadata: {{name: bad, namespace: team-c}}\nspec:\n{spec_lines}"
        )
    };
    // Policy: a version the class does not allow, one control-plane machine, spot.
    refused(
        with(
            "  class: production\n  version: \"1.31.2\"\n  infrastructure: {region: eu-west-1}\n  controlPlane: {replicas: 1}\n  nodePools: [{name: p, capacityType: spot, replicas: 1}]\n",
        ),
        &[
            "spec.version: Invalid value: \"1.31.2\": not allowed by ClusterClass \"production\"",
            "spec.controlPlane.replicas",
            "spec.nodePools[0].capacityType",
        ],
    );
    // A class that does not exist.
    refused(
        with("  class: gold\n  version: \"1.33.4\"\n  infrastructure: {region: eu-west-1}\n"),
        &["spec.class", "no ClusterClass named \"gold\""],
    );
    // min > max.
    refused(
        with(
            "  version: \"1.33.4\"\n  infrastructure: {region: eu-west-1}\n  nodePools: [{name: p, replicas: 2, minReplicas: 5, maxReplicas: 3}]\n",
        ),
        &["spec.nodePools[0]"],
    );
    // What the cloud does not have.
    refused(
        with(
            "  version: \"1.33.4\"\n  infrastructure: {region: eu-west-1, zones: [eu-west-1a, eu-west-1z]}\n  nodePools: [{name: p, machineType: m9.huge, replicas: 1}]\n",
        ),
        &[
            "spec.infrastructure.zones[1]",
            "unknown zone \"eu-west-1z\"",
            "spec.nodePools[0].machineType",
            "unknown machine type \"m9.huge\"",
        ],
    );
    refused(
        with("  version: \"1.33.4\"\n  infrastructure: {region: mars-1}\n"),
        &["spec.infrastructure.region", "unknown region"],
    );
    // An address pool whose CIDRs do not parse.
    refused(
        "apiVersion: slipway.dev/v1alpha1\nkind: IPPool\nmetadata: {name: bad}\nspec:\n  region: eu-west-1\n  cidrs: [10.0.0.0/33, 10.1.0.7/24]\n  exclude: [gateway]\n".to_string(),
        &[
            "spec.cidrs[0]",
            "must be an IPv4 CIDR",
            "spec.cidrs[1]",
            "did you mean 10.1.0.0/24",
            "spec.exclude[0]",
        ],
    );
}

const POOL: &str = r#"
apiVersion: slipway.dev/v1alpha1
kind: IPPool
metadata:
  name: eu-west-1a
spec:
  region: eu-west-1
  zone: eu-west-1a
  cidrs: [10.20.0.0/29]
  exclude: [10.20.0.1]
"#;

const SMALL: &str = r#"
apiVersion: slipway.dev/v1alpha1
kind: Cluster
metadata: {name: ledger, namespace: team-d}
spec:
  version: "1.33.4"
  infrastructure: {region: eu-west-1, zones: [eu-west-1a]}
  controlPlane: {replicas: 1, machineType: m5.large}
  nodePools:
    - {name: general, machineType: m5.xlarge, replicas: 3, maxReplicas: 10}
"#;

#[test]
fn machines_take_addresses_from_ip_pools_and_give_them_back() {
    let server = start();
    server.kubectl_ok(&["create", "namespace", "team-d"]);
    server.apply(POOL, &[]);
    server.apply(SMALL, &[]);
    server.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "cluster/ledger",
        "-n",
        "team-d",
        "--timeout=120s",
    ]);
    // Four machines, four distinct addresses from the pool (10.20.0.2-6; .1 is excluded).
    let addresses = server.kubectl_ok(&[
        "get",
        "machines",
        "-n",
        "team-d",
        "-o",
        "jsonpath={range .items[*]}{.status.address}{\"\\n\"}{end}",
    ]);
    let mut seen: Vec<&str> = addresses.lines().collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 4, "{addresses}");
    for a in &seen {
        let last: u8 = a
            .strip_prefix("10.20.0.")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        assert!(
            (2..=6).contains(&last),
            "{a} is not from the pool: {addresses}"
        );
    }
    let claims = server.kubectl_ok(&["get", "ipaddresses", "-o", "name"]);
    assert_eq!(claims.lines().count(), 4, "{claims}");
    eventually("the pool counts its addresses", || {
        let out = server.kubectl_ok(&[
            "get",
            "ippool",
            "eu-west-1a",
            "-o",
            "jsonpath={.status.total} {.status.allocated} {.status.free}",
        ]);
        (out == "5 4 1", out)
    });

    // Six machines do not fit: the cluster says which pool ran out.
    server.kubectl_ok(&[
        "patch",
        "cluster",
        "ledger",
        "-n",
        "team-d",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/nodePools/0/replicas","value":5}]"#,
    ]);
    eventually("the exhausted pool is named", || {
        let out = server.kubectl_ok(&[
            "get", "cluster", "ledger", "-n", "team-d", "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}: {.status.conditions[?(@.type==\"Ready\")].message}",
        ]);
        (
            out.starts_with("IPPoolExhausted") && out.contains("IPPool eu-west-1a"),
            out,
        )
    });
    eventually("the pool shows it is exhausted", || {
        let out = server.kubectl_ok(&[
            "get",
            "ippool",
            "eu-west-1a",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Exhausted\")].status} {.status.free}",
        ]);
        (out == "True 0", out)
    });

    // Deleting the cluster gives every address back.
    server.kubectl_ok(&[
        "delete",
        "cluster",
        "ledger",
        "-n",
        "team-d",
        "--timeout=120s",
    ]);
    let left = server.kubectl_ok(&["get", "ipaddresses", "-o", "name"]);
    assert!(left.trim().is_empty(), "{left}");
    eventually("the pool is free again", || {
        let out = server.kubectl_ok(&[
            "get",
            "ippool",
            "eu-west-1a",
            "-o",
            "jsonpath={.status.allocated} {.status.conditions[?(@.type==\"Exhausted\")].status}",
        ]);
        (out == "0 False", out)
    });
    assert_eq!(
        live_cloud_machines(&server),
        0,
        "{}",
        cloud_machines(&server)
    );
}

const ONE_ZONE: &str = r#"
apiVersion: slipway.dev/v1alpha1
kind: Cluster
metadata: {name: solo, namespace: team-z}
spec:
  version: "1.33.4"
  infrastructure: {region: eu-west-1, zones: [eu-west-1a]}
  controlPlane: {replicas: 1, machineType: m5.large}
  nodePools:
    - {name: general, machineType: m5.xlarge, replicas: 3, minReplicas: 0, maxReplicas: 5}
"#;

fn machine_names(server: &Server, ns: &str) -> String {
    server.kubectl_ok(&[
        "get",
        "machines",
        "-n",
        ns,
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}",
    ])
}

#[test]
fn a_zone_outage_holds_replacement_back_until_the_zone_returns() {
    // Nodes are judged unhealthy after 10 s NotReady. The resync is 2 s: a workload API
    // that loses quorum does not always end its watches, so the Node watch alone may not
    // tell (a health probe per workload cluster is still to come).
    let server = Server::start_with(
        Backend::Sqlite,
        &[
            "--controllers=true",
            "--time-scale",
            "0",
            "--resync",
            "2s",
            "--node-unhealthy-timeout",
            "10s",
        ],
    );
    server.kubectl_ok(&["create", "namespace", "team-z"]);
    server.apply(ONE_ZONE, &[]);
    let ready = [
        "wait",
        "--for=condition=Ready",
        "cluster/solo",
        "-n",
        "team-z",
        "--timeout=120s",
    ];
    server.kubectl_ok(&ready);
    let before = machine_names(&server, "team-z");
    assert_eq!(before.lines().count(), 4, "{before}");

    // The whole cluster sits in the zone that goes out: every machine fails, far more than
    // the 40% that holds replacement back; nothing is replaced, the cluster says why.
    server.sim("faults", &["--zone-outage", "eu-west-1a"]);
    eventually("replacement is held back", || {
        let reason = server.kubectl_ok(&[
            "get",
            "cluster/solo",
            "-n",
            "team-z",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"RemediationAllowed\")].reason} {.status.conditions[?(@.type==\"Ready\")].status}",
        ]);
        (reason.trim() == "TooManyUnhealthy False", reason)
    });
    let events = server.kubectl_ok(&["get", "events", "-n", "team-z", "-o", "json"]);
    assert!(events.contains("RemediationBlocked"), "{events}");
    // Held, not slow: well past the unhealthy timeout the same machines are still there.
    eventually("the machines fail their health check", || {
        let reasons = server.kubectl_ok(&[
            "get",
            "machines",
            "-n",
            "team-z",
            "-o",
            "jsonpath={range .items[*]}{.status.failureReason}{\"\\n\"}{end}",
        ]);
        (
            reasons.lines().filter(|l| *l == "NodeUnhealthy").count() == 4,
            reasons,
        )
    });
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(machine_names(&server, "team-z"), before);
    assert!(!events.contains("ReplacingMachine"), "{events}");

    // The zone returns, the same machines run again and the cluster is Ready.
    server.sim("faults", &["--zone-restore", "eu-west-1a"]);
    server.kubectl_ok(&ready);
    assert_eq!(machine_names(&server, "team-z"), before);
    let events = server.kubectl_ok(&["get", "events", "-n", "team-z", "-o", "json"]);
    assert!(!events.contains("ReplacingMachine"), "{events}");
}

const ROLLING: &str = r#"
apiVersion: slipway.dev/v1alpha1
kind: Cluster
metadata: {name: roll, namespace: team-r}
spec:
  version: "1.33.4"
  infrastructure: {region: eu-west-1, zones: [eu-west-1a, eu-west-1b, eu-west-1c]}
  controlPlane: {replicas: 1, machineType: m5.large}
  upgrade: {maxSurge: 1, maxUnavailable: 0, drainTimeout: 5m}
  nodePools:
    - {name: general, machineType: m5.xlarge, replicas: 3, minReplicas: 0, maxReplicas: 6, labels: {workload: general}}
"#;

const WORKLOAD: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {workload: general}
      containers: [{name: web, image: nginx, resources: {requests: {cpu: 100m}}}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: default}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: web}}
"#;

/// One look at the pool during a rollout: (machines, of them being deleted, Ready and not
/// being deleted, on the new type and Ready).
fn pool_sample(server: &Server) -> (usize, usize, usize, usize) {
    let out = server.kubectl_ok(&[
        "get",
        "machines",
        "-n",
        "team-r",
        "-l",
        "slipway.dev/pool=general",
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("machines JSON");
    let items = v["items"].as_array().cloned().unwrap_or_default();
    let ready = |m: &serde_json::Value| {
        m["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "NodeReady" && c["status"] == "True")
    };
    let deleting = |m: &serde_json::Value| m["metadata"]["deletionTimestamp"].is_string();
    (
        items.len(),
        items.iter().filter(|m| deleting(m)).count(),
        items.iter().filter(|m| ready(m) && !deleting(m)).count(),
        items
            .iter()
            .filter(|m| ready(m) && !deleting(m) && m["spec"]["machineType"] == "m6g.xlarge")
            .count(),
    )
}

#[test]
fn a_new_machine_type_and_arch_roll_through_a_pool_within_its_surge_and_budget() {
    let server = start();
    server.kubectl_ok(&["create", "namespace", "team-r"]);
    server.apply(ROLLING, &[]);
    let ready = [
        "wait",
        "--for=condition=Ready",
        "cluster/roll",
        "-n",
        "team-r",
        "--timeout=120s",
    ];
    server.kubectl_ok(&ready);
    let kc = workload_kubeconfig(&server, "team-r", "roll");
    let workload = |args: &[&str], stdin: Option<&str>| {
        common::kubectl_with(&kc, &kc.with_extension("cache"), args, stdin)
    };
    ok(workload(&["apply", "-f", "-"], Some(WORKLOAD)));
    let available = || {
        ok(workload(
            &[
                "get",
                "deployment",
                "web",
                "-o",
                "jsonpath={.status.availableReplicas}",
            ],
            None,
        ))
    };
    eventually("the workload runs", || {
        let out = available();
        (out.trim() == "3", out)
    });
    let before: std::collections::BTreeSet<String> = machine_names(&server, "team-r")
        .lines()
        .filter(|n| n.contains("-general-"))
        .map(str::to_string)
        .collect();

    // amd64 m5.xlarge to arm64 m6g.xlarge: every machine of the pool is replaced.
    server.kubectl_ok(&[
        "patch",
        "cluster",
        "roll",
        "-n",
        "team-r",
        "--type=json",
        "-p",
        r#"[{"op": "replace", "path": "/spec/nodePools/0/machineType", "value": "m6g.xlarge"},
            {"op": "add", "path": "/spec/nodePools/0/arch", "value": "arm64"}]"#,
    ]);
    // Throughout: never more than 3 + maxSurge machines (deleting ones count), never fewer
    // than 3 - maxUnavailable Ready ones.
    let mut samples = 0;
    let mut most = 0;
    eventually("the pool rolls to m6g.xlarge", || {
        let (total, deleting, ready, new_ready) = pool_sample(&server);
        samples += 1;
        most = most.max(total);
        assert!(
            total <= 4,
            "{total} machines in a pool of 3 with maxSurge 1"
        );
        assert!(
            ready >= 3,
            "{ready} Ready machines in a pool of 3 with maxUnavailable 0"
        );
        // The budget holds: evictions never take the workload below minAvailable.
        let available = available();
        assert!(
            available.trim().parse::<u32>().unwrap_or(0) >= 2,
            "{available} pods available with a PodDisruptionBudget of minAvailable 2"
        );
        (
            total == 3 && deleting == 0 && new_ready == 3,
            format!("{total} machines, {deleting} deleting, {ready} ready, {new_ready} new"),
        )
    });
    assert!(
        samples > 1 && most == 4,
        "the rollout surged ({most} at most over {samples} looks)"
    );
    server.kubectl_ok(&ready);
    let after = machine_names(&server, "team-r");
    assert!(
        before.iter().all(|old| !after.contains(old.as_str())),
        "old machines left: {before:?} vs {after}"
    );

    // The nodes are arm64 now and the workload moved onto them, drained within its budget.
    let arches = ok(workload(
        &[
            "get",
            "nodes",
            "-l",
            "workload=general",
            "-o",
            "jsonpath={.items[*].metadata.labels.kubernetes\\.io/arch}",
        ],
        None,
    ));
    assert_eq!(
        arches.split_whitespace().collect::<Vec<_>>(),
        ["arm64"; 3],
        "{arches}"
    );
    eventually("the workload runs on the new nodes", || {
        let out = available();
        (out.trim() == "3", out)
    });
    let placed = ok(workload(
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.nodeName}",
        ],
        None,
    ));
    for node in placed.split_whitespace() {
        assert!(
            !before.contains(node),
            "a pod still on old node {node}: {placed}"
        );
    }
}

const SPOT: &str = r#"
apiVersion: slipway.dev/v1alpha1
kind: Cluster
metadata: {name: bargain, namespace: team-s}
spec:
  version: "1.33.4"
  infrastructure: {region: eu-west-1, zones: [eu-west-1a, eu-west-1b]}
  controlPlane: {replicas: 1, machineType: m5.large}
  nodePools:
    - {name: flexible, machineType: m5.xlarge, capacityType: spot, fallbackToOnDemand: true, replicas: 2, maxReplicas: 4}
    - {name: strict, machineType: m5.xlarge, capacityType: spot, replicas: 1, maxReplicas: 2, zones: [eu-west-1a]}
"#;

/// `name capacityType zone` of each Machine of a pool.
fn bought(server: &Server, pool: &str) -> Vec<String> {
    let out = server.kubectl_ok(&[
        "get",
        "machines",
        "-n",
        "team-s",
        "-l",
        &format!("slipway.dev/pool={pool}"),
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.status.capacityType} {.spec.zone}{\"\\n\"}{end}",
    ]);
    out.lines().map(str::to_string).collect()
}

#[test]
fn a_spot_pool_falls_back_to_on_demand_only_when_its_policy_says_so() {
    let server = start();
    server.kubectl_ok(&["create", "namespace", "team-s"]);
    // Only a spot pool can fall back.
    let out = server.apply(
        &SPOT.replace(
            "name: strict, machineType: m5.xlarge, capacityType: spot,",
            "name: strict, machineType: m5.xlarge, capacityType: on-demand, fallbackToOnDemand: true,",
        ),
        &[],
    );
    assert!(!out.status.success());
    let err = common::stderr(&out);
    assert!(
        err.contains("spec.nodePools[1].fallbackToOnDemand") && err.contains("only a spot pool"),
        "{err}"
    );

    // No spot in eu-west-1a: the flexible pool's machine there is bought on demand, the
    // strict pool's waits, and the cluster says why.
    server.sim("faults", &["--spot-unavailable", "eu-west-1a"]);
    server.apply(SPOT, &[]);
    eventually("the flexible pool runs, one machine on demand", || {
        let mut got = bought(&server, "flexible");
        got.sort_by_key(|l| l.rsplit(' ').next().map(str::to_string));
        let shape: Vec<String> = got
            .iter()
            .map(|l| l.split_once(' ').map_or("", |(_, rest)| rest).to_string())
            .collect();
        (
            shape == ["on-demand eu-west-1a", "spot eu-west-1b"],
            format!("{got:?}"),
        )
    });
    eventually("the cluster names the missing capacity", || {
        let out = server.kubectl_ok(&[
            "get",
            "cluster/bargain",
            "-n",
            "team-s",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}: {.status.conditions[?(@.type==\"Ready\")].message}",
        ]);
        (
            out.starts_with("CapacityUnavailable: no spot capacity for m5.xlarge in eu-west-1a"),
            out,
        )
    });
    let events = server.kubectl_ok(&["get", "events", "-n", "team-s", "-o", "json"]);
    assert!(events.contains("SpotUnavailable"), "{events}");
    assert_eq!(bought(&server, "strict").len(), 1);
    let flexible = bought(&server, "flexible");

    // Spot is back: the strict pool gets its spot machine; the on-demand stand-in stays (it
    // is not outdated, only bought differently).
    server.sim("faults", &["--spot-available", "eu-west-1a"]);
    server.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "cluster/bargain",
        "-n",
        "team-s",
        "--timeout=120s",
    ]);
    let strict = bought(&server, "strict");
    assert!(
        strict.len() == 1 && strict[0].ends_with(" spot eu-west-1a"),
        "{strict:?}"
    );
    assert_eq!(bought(&server, "flexible"), flexible);
}
