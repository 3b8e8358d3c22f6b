//! The `slipway` client commands against a running `slipway serve` (simulated cloud, zero
//! delay): apply with `--wait`, get (tables, wide, YAML, pools, watch), describe as a tree,
//! scale, kubeconfig, delete with `--wait`, the examples, and errors a person can act on.
//! Outputs are compared whole, with the volatile fields (ages, generated names, addresses)
//! redacted.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Backend, Server};
use serde_json::json;

/// `slipway ARGS` with the server's kubeconfig found through `--data-dir`.
fn slipway(server: &Server, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
    cmd.arg("--data-dir")
        .arg(server.data_dir())
        .args(args)
        .env_remove("KUBECONFIG");
    common::run_with_stdin(cmd, stdin)
}

fn ok(server: &Server, args: &[&str]) -> String {
    let out = slipway(server, args, None);
    assert!(
        out.status.success(),
        "slipway {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failing(server: &Server, args: &[&str], stdin: Option<&str>) -> String {
    let out = slipway(server, args, stdin);
    assert!(
        !out.status.success(),
        "slipway {args:?} should have failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Ages, generated name suffixes, addresses and provider ids replaced by placeholders, and the
/// column padding they changed squeezed.
fn redact(text: &str) -> String {
    let rules = [
        // Generated suffixes first: `-12d45` is a name, not an age.
        (r"-[0-9a-f]{5}\b", "-<id>"),
        (r"\b\d+(y|d\d*h?|h\d*m?|m\d*s?|s)\b", "<age>"),
        (r"\b10\.\d+\.\d+\.\d+\b", "<ip>"),
        (r"\bi-[0-9a-f]{17}\b", "<provider-id>"),
    ];
    let mut out = text.to_string();
    for (pattern, with) in rules {
        out = regex::Regex::new(pattern)
            .expect("regex")
            .replace_all(&out, with)
            .into_owned();
    }
    let spaces = regex::Regex::new(r" {2,}").expect("regex");
    out.lines()
        .map(|l| spaces.replace_all(l, "  ").into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

const CLUSTER: &str = r#"
apiVersion: slipway.dev/v1alpha1
kind: Cluster
metadata: {name: payments, namespace: team-a}
spec:
  version: "1.33.4"
  infrastructure: {region: eu-west-1, zones: [eu-west-1a, eu-west-1b]}
  controlPlane: {replicas: 1, machineType: m5.large}
  nodePools:
    - {name: general, machineType: m5.xlarge, replicas: 2, minReplicas: 0, maxReplicas: 5}
    - {name: arm, machineType: m6g.large, arch: arm64, capacityType: spot, replicas: 1, minReplicas: 0, maxReplicas: 3}
"#;

#[test]
fn a_cluster_from_apply_to_delete_through_the_cli() {
    let server = Server::start_with(
        Backend::Sqlite,
        &["--controllers=true", "--time-scale", "0"],
    );
    server.kubectl_ok(&["create", "namespace", "team-a"]);

    // Apply from stdin, waiting until it converged.
    let out = slipway(
        &server,
        &["apply", "-f", "-", "--wait", "--timeout", "120s"],
        Some(CLUSTER),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "cluster.slipway.dev/payments created\n"
    );
    assert!(
        stderr.contains("cluster team-a/payments converged"),
        "{stderr}"
    );
    // Applying the same again changes nothing, and says so.
    let out = slipway(&server, &["apply", "-f", "-"], Some(CLUSTER));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "cluster.slipway.dev/payments unchanged\n"
    );

    // Global flags after the subcommand, -n like kubectl.
    assert_eq!(
        redact(&ok(&server, &["get", "clusters", "-n", "team-a"])),
        "NAME  CLASS  VERSION  REGION  CONTROL PLANE  NODES  READY  AGE\n\
         payments  1.33.4  eu-west-1  1  3/3  True  <age>"
    );
    assert_eq!(
        redact(&ok(&server, &["get", "pools", "-A"])),
        "NAMESPACE  CLUSTER  POOL  TYPE  CAPACITY  READY  MIN  MAX  ZONES\n\
         team-a  payments  general  m5.xlarge  on-demand  2/2  0  5  eu-west-1a,eu-west-1b\n\
         team-a  payments  arm  m6g.large  spot  1/1  0  3  eu-west-1a,eu-west-1b"
    );
    let machines = redact(&ok(
        &server,
        &["-n", "team-a", "get", "machines", "-o", "wide"],
    ));
    assert!(
        machines.starts_with(
            "NAME  CLUSTER  ROLE  POOL  ZONE  PHASE  NODE  VERSION  AGE  TYPE  CAPACITY  ADDRESS  PROVIDER ID  REASON\n\
             payments-arm-<id>  payments  worker  arm  eu-west-1"
        ),
        "{machines}"
    );
    assert_eq!(machines.lines().count(), 5, "{machines}");
    assert!(
        machines.contains("payments-control-plane-<id>  payments  control-plane  eu-west-1a  Running  payments-control-plane-<id>  1.33.4  <age>  m5.large  on-demand  <ip>  <provider-id>"),
        "{machines}"
    );
    let yaml = ok(
        &server,
        &["get", "cluster", "payments", "-n", "team-a", "-o", "yaml"],
    );
    assert!(
        yaml.contains("kind: Cluster") && yaml.contains("name: payments"),
        "{yaml}"
    );
    let json: serde_json::Value = serde_json::from_str(&ok(
        &server,
        &["get", "machines", "-n", "team-a", "-o", "json"],
    ))
    .expect("json");
    assert_eq!(json["kind"], "List");
    assert_eq!(json["items"].as_array().map(Vec::len), Some(4));

    // The tree.
    let tree = redact(&ok(
        &server,
        &["describe", "cluster", "payments", "-n", "team-a"],
    ));
    let names: Vec<&str> = tree
        .lines()
        .take_while(|l| !l.is_empty())
        .map(|l| {
            let indent = l.len() - l.trim_start().len();
            &l[..indent + l[indent..].split("  ").next().unwrap_or_default().len()]
        })
        .collect();
    assert_eq!(
        names,
        [
            "NAME",
            "Cluster/payments",
            "│",
            "│",
            "│",
            "├─ControlPlane",
            "│ └─Machine/payments-control-plane-<id>",
            "├─Pool/general",
            "│ ├─Machine/payments-general-<id>",
            "│ └─Machine/payments-general-<id>",
            "└─Pool/arm",
            "  └─Machine/payments-arm-<id>",
        ],
        "{tree}"
    );
    assert!(tree.contains("ControlPlaneReady  True  Ready"), "{tree}");
    assert!(
        tree.contains("Events:") && tree.contains("ClusterReady"),
        "{tree}"
    );

    // Scale a pool and wait; a pool that does not exist and a size past maxReplicas are
    // refused with what is allowed.
    let out = ok(
        &server,
        &[
            "scale", "cluster", "payments", "-n", "team-a", "--pool", "general", "--size", "4",
            "--wait",
        ],
    );
    assert_eq!(
        out,
        "cluster.slipway.dev/payments pool general scaled: 2 -> 4 replicas\n"
    );
    assert!(
        redact(&ok(
            &server,
            &["get", "pools", "payments/general", "-n", "team-a"]
        ))
        .contains("general  m5.xlarge  on-demand  4/4")
    );
    // A pool prints as its cluster, its spec and what was observed of it.
    let pool: serde_json::Value = serde_json::from_str(&ok(
        &server,
        &[
            "get",
            "pools",
            "payments/general",
            "-n",
            "team-a",
            "-o",
            "json",
        ],
    ))
    .expect("a pool as JSON");
    assert_eq!(
        (
            &pool["cluster"],
            &pool["namespace"],
            &pool["pool"]["name"],
            &pool["pool"]["replicas"],
            &pool["status"]["readyReplicas"]
        ),
        (
            &json!("payments"),
            &json!("team-a"),
            &json!("general"),
            &json!(4),
            &json!(4)
        )
    );
    assert_eq!(
        ok(&server, &["get", "pools", "-n", "team-a", "-o", "name"]),
        "pool/payments/general\npool/payments/arm\n"
    );
    assert_eq!(
        failing(
            &server,
            &["get", "pools", "payments/gpu", "-n", "team-a", "-o", "yaml"],
            None
        ),
        "error: cluster payments has no pool \"gpu\"; its pools are: general, arm\n"
    );
    let err = failing(
        &server,
        &[
            "scale", "cluster", "payments", "-n", "team-a", "--pool", "gpu", "--size", "1",
        ],
        None,
    );
    assert_eq!(
        err,
        "error: cluster payments has no pool \"gpu\"; its pools are: general, arm\n"
    );
    let err = failing(
        &server,
        &[
            "scale", "cluster", "payments", "-n", "team-a", "--pool", "arm", "--size", "9",
        ],
        None,
    );
    assert!(
        err.contains("spec.nodePools[1].replicas: Invalid value: 9")
            && err.contains("maxReplicas (3)"),
        "{err}"
    );

    // Changing the manifest reports the fields that changed.
    let bigger = CLUSTER.replace(
        "replicas: 2, minReplicas: 0, maxReplicas: 5",
        "replicas: 3, minReplicas: 0, maxReplicas: 5",
    );
    let out = slipway(&server, &["apply", "-f", "-"], Some(&bigger));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "cluster.slipway.dev/payments configured\n  spec.nodePools[0].replicas: 4 -> 3\n"
    );

    // The workload cluster's kubeconfig, written owner-only, works with kubectl.
    let file = server.data_dir().join("payments.kubeconfig");
    let path = file.to_str().expect("utf-8 path");
    ok(
        &server,
        &[
            "kubeconfig",
            "cluster",
            "payments",
            "-n",
            "team-a",
            "--file",
            path,
        ],
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file)
            .expect("kubeconfig")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let nodes = common::kubectl_with(
        &file,
        &server.data_dir().join("wl-cache"),
        &["get", "nodes", "-o", "name"],
        None,
    );
    assert!(
        nodes.status.success(),
        "{}",
        String::from_utf8_lossy(&nodes.stderr)
    );
    assert!(!String::from_utf8_lossy(&nodes.stdout).is_empty());

    // Delete and wait until the cluster and its machines are gone.
    let out = slipway(
        &server,
        &[
            "delete",
            "cluster",
            "payments",
            "-n",
            "team-a",
            "--wait",
            "--timeout",
            "120s",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "cluster.slipway.dev \"payments\" deleted\n"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("cluster payments deleted in"));
    assert_eq!(ok(&server, &["get", "machines", "-n", "team-a"]), "");
}

#[test]
fn bad_input_and_a_missing_server_get_errors_a_person_can_act_on() {
    let server = Server::start_with(Backend::Sqlite, &[]);
    server.kubectl_ok(&["create", "namespace", "team-a"]);
    let bad = CLUSTER
        .replace(
            "replicas: 1, machineType: m5.large",
            "replicas: 2, machineType: m5.large",
        )
        .replace("capacityType: spot", "capacityType: cheap");
    let err = failing(&server, &["apply", "-f", "-"], Some(&bad));
    assert!(
        err.contains("applying cluster.slipway.dev/payments: Cluster.slipway.dev \"payments\" is invalid:\n  - spec.controlPlane.replicas: Unsupported value: 2"),
        "{err}"
    );
    assert!(err.contains("\n  - spec.nodePools[1].capacityType: Unsupported value: \"cheap\": supported values: \"on-demand\", \"spot\""), "{err}");
    assert!(
        err.ends_with("error: 1 of the objects were not applied\n"),
        "{err}"
    );
    let err = failing(&server, &["get", "widgets"], None);
    assert!(
        err.contains(
            "unknown kind \"widgets\": use clusters (cl), machines (ma), classes (cc) or pools (np)"
        ),
        "{err}"
    );
    let err = failing(&server, &["delete", "pool", "x"], None);
    assert!(err.contains("remove it from spec.nodePools"), "{err}");
    let err = failing(&server, &["get", "cluster", "nope", "-n", "team-a"], None);
    assert!(
        err.contains("getting Cluster nope:") && err.contains("not found"),
        "{err}"
    );

    // No server on the other end: say how to start one.
    let kept = tempfile::tempdir().expect("tempdir");
    let kubeconfig = kept.path().join("admin.kubeconfig");
    std::fs::copy(server.kubeconfig(), &kubeconfig).expect("copy kubeconfig");
    drop(server);
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "clusters"])
        .output()
        .expect("slipway");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot reach the Slipway server at https://127.0.0.1:"),
        "{err}"
    );
    assert!(err.contains("start one with `slipway serve`"), "{err}");
    assert!(!err.contains("ERROR"), "no log noise: {err}");
}

#[test]
fn wait_gives_up_with_what_blocks_the_cluster() {
    let server = Server::start_with(
        Backend::Sqlite,
        &["--controllers=true", "--time-scale", "0"],
    );
    server.kubectl_ok(&["create", "namespace", "team-a"]);
    // eu-west-1a has room for 4 g5.12xlarge: the sixth cannot be bought.
    let greedy = r#"
apiVersion: slipway.dev/v1alpha1
kind: Cluster
metadata: {name: greedy, namespace: team-a}
spec:
  version: "1.33.4"
  infrastructure: {region: eu-west-1, zones: [eu-west-1a]}
  controlPlane: {replicas: 1}
  nodePools:
    - {name: gpu, machineType: g5.12xlarge, replicas: 6, minReplicas: 0, maxReplicas: 8}
"#;
    let out = slipway(
        &server,
        &["apply", "-f", "-", "--wait", "--timeout", "10s"],
        Some(greedy),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("timed out after 10s waiting for cluster team-a/greedy: Ready=False"),
        "{err}"
    );
    assert!(err.contains("CapacityUnavailable"), "{err}");
    assert!(err.contains("pool gpu 4/6 ready"), "{err}");
}

#[test]
fn get_watch_prints_a_row_per_change() {
    let server = Server::start_with(
        Backend::Sqlite,
        &["--controllers=true", "--time-scale", "0"],
    );
    server.kubectl_ok(&["create", "namespace", "team-a"]);
    let mut watch = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .arg("--data-dir")
        .arg(server.data_dir())
        .args(["get", "clusters", "-n", "team-a", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("slipway get -w");
    let stdout = watch.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The header comes first, even with nothing to list yet.
    let header = rx.recv_timeout(Duration::from_secs(30)).expect("header");
    assert!(header.starts_with("NAME"), "{header}");
    let out = slipway(&server, &["apply", "-f", "-"], Some(CLUSTER));
    assert!(out.status.success());
    // Rows follow as the cluster comes up, until it is Ready.
    let mut rows = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) else {
            continue;
        };
        let ready = line.contains(" True ");
        rows.push(line);
        if ready {
            break;
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(rows.len() >= 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.starts_with("payments ")), "{rows:?}");
    assert!(
        rows.last().is_some_and(|r| r.contains(" True ")),
        "{rows:?}"
    );
}

#[test]
fn the_examples_apply_cleanly_and_again_unchanged() {
    let server = Server::start_with(Backend::Sqlite, &[]);
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let out = ok(&server, &["apply", "-f", examples]);
    let created = out.lines().filter(|l| l.ends_with(" created")).count();
    assert_eq!(created, out.lines().count(), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("cluster.slipway.dev/"))
            .count(),
        12,
        "{out}"
    );
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("clusterclass.slipway.dev/"))
            .count(),
        4,
        "{out}"
    );
    let again = ok(&server, &["apply", "-f", examples]);
    assert!(again.lines().all(|l| l.ends_with(" unchanged")), "{again}");
    // Every tier and both regions are there, with GPU, arm64 and spot pools.
    let classes = ok(&server, &["get", "classes"]);
    for tier in ["testing", "development", "staging", "production"] {
        assert!(classes.contains(tier), "{classes}");
    }
    let pools = ok(&server, &["get", "pools", "-A", "-o", "wide"]);
    for needle in ["g5.", "arm64", "spot", "eu-west-1a", "us-east-1a"] {
        assert!(pools.contains(needle), "{needle}: {pools}");
    }
}

#[test]
fn completion_scripts_for_the_shells() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
            .args(["completion", shell])
            .output()
            .expect("slipway completion");
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("slipway") && script.contains("describe"),
            "{shell}: {script}"
        );
    }
}
