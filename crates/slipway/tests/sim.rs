//! The simulator inside `slipway serve`, driven as a user would: a workload cluster is built
//! through the `sim` provider's HTTP API, and the real kubectl uses it with a kubeconfig from
//! `slipway sim kubeconfig`: nodes, a deployment whose pods run, pods past capacity Pending
//! with reason Unschedulable, and faults set with `slipway sim faults`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Backend, Server, ok};
use slipway_simhost::scenario::{ClusterRequest, Pool, provision};

const PATIENCE: Duration = Duration::from_secs(60);
const TOKEN: &str = "sim-test-admin-token";

fn slipway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run slipway")
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    common::kubectl_with(kubeconfig, &kubeconfig.with_extension("cache"), args, None)
}

fn kubectl_stdin(kubeconfig: &Path, args: &[&str], input: &str) -> Output {
    common::kubectl_with(
        kubeconfig,
        &kubeconfig.with_extension("cache"),
        args,
        Some(input),
    )
}

/// The phases of the pods labelled `selector`, space-separated.
fn phases(kubeconfig: &Path, selector: &str) -> String {
    ok(kubectl(
        kubeconfig,
        &[
            "get",
            "pods",
            "-l",
            selector,
            "-o",
            "jsonpath={.items[*].status.phase}",
        ],
    ))
}

/// Poll `check` until it returns true; the last output is in the panic message.
fn eventually(what: &str, check: impl FnMut() -> (bool, String)) {
    common::wait_for(what, PATIENCE, check);
}

fn cloud_api(data_dir: &Path) -> String {
    let text = std::fs::read_to_string(data_dir.join("sim/endpoints.json")).expect("endpoints");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    v["cloudApi"].as_str().expect("cloudApi").to_string()
}

fn workload_kubeconfig(server: &Server, cluster: &str) -> PathBuf {
    let dir = server.data_dir().to_str().expect("utf-8 path").to_string();
    let text = ok(slipway(&[
        "sim",
        "kubeconfig",
        cluster,
        "--token",
        TOKEN,
        "--data-dir",
        &dir,
    ]));
    let path = server.data_dir().join(format!("{cluster}.kubeconfig"));
    std::fs::write(&path, text).expect("write kubeconfig");
    path
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        resources:
          requests: {cpu: 500m, memory: 128Mi}
"#;

#[test]
fn kubectl_against_a_simulated_workload_cluster() {
    let mut server = Server::start_with(Backend::Sqlite, &["--time-scale", "0"]);
    let provider =
        slipway_sim::HttpProvider::new(&cloud_api(server.data_dir())).expect("sim provider");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime
        .block_on(provision(
            &provider,
            &ClusterRequest {
                name: "team-a.demo".into(),
                region: "eu-west-1".into(),
                zones: vec!["eu-west-1a".into(), "eu-west-1b".into()],
                control_plane_type: "m5.large".into(),
                control_plane_replicas: 1,
                pools: vec![Pool::new("general", "m5.large", 2)],
                kubernetes_version: "1.33.4".into(),
                admin_token: TOKEN.into(),
                network_octet: 7,
            },
        ))
        .expect("provision through the sim provider's HTTP API");
    let kc = workload_kubeconfig(&server, "team-a.demo");

    // Nodes register, Ready, with the machine's kubelet version.
    eventually("three Ready nodes", || {
        let out = kubectl(&kc, &["get", "nodes", "--no-headers"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let ready = text
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some("Ready"))
            .count();
        (
            ready == 3,
            format!("{text}{}", String::from_utf8_lossy(&out.stderr)),
        )
    });
    let nodes = ok(kubectl(&kc, &["get", "nodes", "-o", "wide"]));
    assert!(nodes.contains("v1.33.4"), "{nodes}");
    let zones = ok(kubectl(
        &kc,
        &[
            "get",
            "nodes",
            "-l",
            "slipway.dev/pool=general",
            "-o",
            "jsonpath={.items[*].metadata.labels.topology\\.kubernetes\\.io/zone}",
        ],
    ));
    assert_eq!(zones.split_whitespace().count(), 2, "{zones}");

    // A deployment's pods run.
    ok(kubectl(
        &kc,
        &[
            "create",
            "deployment",
            "hello",
            "--image=nginx:1.27",
            "--replicas=1",
        ],
    ));
    eventually("the created deployment's pod running", || {
        let out = phases(&kc, "app=hello");
        (out == "Running", out)
    });
    ok(kubectl(&kc, &["delete", "deployment", "hello"]));
    ok(kubectl_stdin(&kc, &["apply", "-f", "-"], DEPLOYMENT));
    eventually("two running pods", || {
        let out = phases(&kc, "app=web");
        (
            out.split_whitespace().filter(|p| *p == "Running").count() == 2,
            out,
        )
    });
    ok(kubectl(
        &kc,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    ));

    // Past capacity: two m5.large workers fit three 500m pods each; the rest stay Pending
    // with the scheduler's reason.
    ok(kubectl(
        &kc,
        &["scale", "deployment", "web", "--replicas=8"],
    ));
    eventually("six running, two unschedulable", || {
        let out = ok(kubectl(
            &kc,
            &[
                "get",
                "pods",
                "-l",
                "app=web",
                "-o",
                r#"jsonpath={range .items[*]}{.status.phase}/{.status.conditions[?(@.type=="PodScheduled")].reason}{"\n"}{end}"#,
            ],
        ));
        let running = out.lines().filter(|l| l.starts_with("Running")).count();
        let unschedulable = out
            .lines()
            .filter(|l| *l == "Pending/Unschedulable")
            .count();
        (running == 6 && unschedulable == 2, out)
    });
    let described = ok(kubectl(
        &kc,
        &["get", "pods", "-l", "app=web", "-o", "yaml"],
    ));
    assert!(described.contains("Insufficient cpu"), "{described}");

    // Faults through the CLI: a zone outage takes its node NotReady.
    let dir = server.data_dir().to_str().expect("utf-8").to_string();
    let faults = ok(slipway(&[
        "sim",
        "faults",
        "--data-dir",
        &dir,
        "--zone-outage",
        "eu-west-1b",
    ]));
    assert!(faults.contains("eu-west-1b"), "{faults}");
    eventually("a NotReady node", || {
        let out = ok(kubectl(&kc, &["get", "nodes", "--no-headers"]));
        (out.contains("NotReady"), out)
    });
    let faults = ok(slipway(&["sim", "faults", "--data-dir", &dir, "--clear"]));
    assert!(faults.contains("\"zoneOutages\": []"), "{faults}");
    eventually("all nodes Ready again", || {
        let out = ok(kubectl(&kc, &["get", "nodes", "--no-headers"]));
        (!out.contains("NotReady"), out)
    });
    let machines = ok(slipway(&["sim", "machines", "--data-dir", &dir]));
    assert_eq!(
        machines
            .lines()
            .filter(|l| l.contains("team-a.demo"))
            .count(),
        3,
        "{machines}"
    );

    // kubectl drain goes through the eviction API and is held back by a PodDisruptionBudget
    // until the budget allows it.
    ok(kubectl(
        &kc,
        &["scale", "deployment", "web", "--replicas=2"],
    ));
    eventually("two running pods", || {
        let out = phases(&kc, "app=web");
        (
            out.split_whitespace().filter(|p| *p == "Running").count() == 2
                && out.split_whitespace().count() == 2,
            out,
        )
    });
    ok(kubectl_stdin(&kc, &["apply", "-f", "-"], PDB));
    eventually("a budget that allows no disruption", || {
        let out = ok(kubectl(
            &kc,
            &[
                "get",
                "pdb",
                "web",
                "-o",
                "jsonpath={.status.expectedPods}/{.status.disruptionsAllowed}",
            ],
        ));
        (out == "2/0", out)
    });
    let node = ok(kubectl(
        &kc,
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[0].spec.nodeName}",
        ],
    ));
    let held = kubectl(
        &kc,
        &["drain", &node, "--ignore-daemonsets", "--timeout=8s"],
    );
    assert!(!held.status.success(), "drain must wait for the budget");
    let err = String::from_utf8_lossy(&held.stderr);
    assert!(err.contains("disruption budget"), "{err}");
    assert!(ok(kubectl(&kc, &["get", "node", &node])).contains("SchedulingDisabled"));
    ok(kubectl(
        &kc,
        &[
            "patch",
            "pdb",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"minAvailable":1}}"#,
        ],
    ));
    eventually("a budget that allows one disruption", || {
        let out = ok(kubectl(
            &kc,
            &[
                "get",
                "pdb",
                "web",
                "-o",
                "jsonpath={.status.disruptionsAllowed}",
            ],
        ));
        (out == "1", out)
    });
    ok(kubectl(
        &kc,
        &["drain", &node, "--ignore-daemonsets", "--timeout=60s"],
    ));
    eventually("both pods running elsewhere", || {
        let out = ok(kubectl(
            &kc,
            &[
                "get",
                "pods",
                "-l",
                "app=web",
                "-o",
                r#"jsonpath={range .items[*]}{.spec.nodeName}/{.status.phase}{"\n"}{end}"#,
            ],
        ));
        let running: Vec<&str> = out.lines().filter(|l| l.ends_with("/Running")).collect();
        (
            running.len() == 2 && running.iter().all(|l| !l.starts_with(&format!("{node}/"))),
            out,
        )
    });

    // The cloud outlives the control plane: after kill -9 and a restart every machine is
    // still there and the cluster answers again with its objects (on a new port: the test
    // server's simulator listens on ephemeral ports, so the kubeconfig is fetched again).
    let before = ok(slipway(&["sim", "machines", "--data-dir", &dir]));
    server.restart();
    let after = ok(slipway(&["sim", "machines", "--data-dir", &dir]));
    let ids = |t: &str| {
        let mut v: Vec<String> = t
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids(&before), ids(&after));
    let kc = workload_kubeconfig(&server, "team-a.demo");
    eventually("the cluster's API back with its pods", || {
        let out = kubectl(
            &kc,
            &[
                "get",
                "pods",
                "-l",
                "app=web",
                "-o",
                "jsonpath={.items[*].status.phase}",
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let running = text.split_whitespace().filter(|p| *p == "Running").count();
        (
            running == 2,
            format!("{text}{}", String::from_utf8_lossy(&out.stderr)),
        )
    });
}

const PDB: &str = r#"
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
spec:
  minAvailable: 2
  selector:
    matchLabels: {app: web}
"#;

/// `slipway sim serve` runs the simulator on its own: it records its endpoints, answers the
/// cloud API, and `slipway sim faults` steers it.
#[test]
fn the_simulator_runs_as_its_own_process() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().to_str().expect("utf-8").to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["sim", "serve", "--data-dir", &data])
        .args([
            "--sim-api-listen",
            "127.0.0.1:0",
            "--sim-clusters-listen",
            "127.0.0.1:0",
        ])
        .args(["--time-scale", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn slipway sim serve");
    eventually("the simulator's endpoints", || {
        let ok = dir.path().join("sim/endpoints.json").exists();
        (ok, String::new())
    });
    let faults = ok(slipway(&[
        "sim",
        "faults",
        "--data-dir",
        &data,
        "--spot-interruption-rate",
        "0.25",
    ]));
    assert!(
        faults.contains("\"spotInterruptionRate\": 0.25"),
        "{faults}"
    );
    let machines = ok(slipway(&["sim", "machines", "--data-dir", &data]));
    assert!(machines.starts_with("ID"), "{machines}");
    let _ = child.kill();
    let _ = child.wait();
}
