//! The real `kubectl` against `slipway serve`, on every store backend.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Backend, Server, cluster_manifest, eventually, stderr, stdout};

fn api_resources(backend: Backend) {
    let server = Server::start(backend);
    let out = server.kubectl_ok(&["api-resources"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("clusters "))
        .unwrap_or_else(|| panic!("no clusters in:\n{out}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        cols,
        ["clusters", "cl", "slipway.dev/v1alpha1", "true", "Cluster"],
        "{line}"
    );
    for kind in ["Namespace", "Secret", "ConfigMap", "Event", "Lease"] {
        assert!(
            out.lines().any(|l| l.trim_end().ends_with(kind)),
            "{kind} missing:\n{out}"
        );
    }
    let ours = server.kubectl_ok(&["api-resources", "--categories", "slipway", "-o", "name"]);
    assert_eq!(
        ours.lines().collect::<Vec<_>>(),
        [
            "clusterclasses.slipway.dev",
            "clusters.slipway.dev",
            "ipaddresses.slipway.dev",
            "ippools.slipway.dev",
            "machines.slipway.dev"
        ]
    );
}
on_every_backend!(api_resources_lists_every_kind, api_resources);

fn apply_get_patch(backend: Backend) {
    let server = Server::start(backend);
    server.kubectl_ok(&["create", "namespace", "team-payments"]);
    let manifest = cluster_manifest("team-payments", "payments-eu", "1.33.4");
    let out = server.apply(&manifest, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "cluster.slipway.dev/payments-eu created"
    );

    // Update through client-side apply.
    let out = server.apply(&manifest.replace("1.33.4", "1.33.5"), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "cluster.slipway.dev/payments-eu configured"
    );
    // Then server-side apply takes over.
    let out = server.apply(
        &manifest.replace("1.33.4", "1.33.6"),
        &["--server-side", "--force-conflicts"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "cluster.slipway.dev/payments-eu serverside-applied"
    );

    let ns = ["-n", "team-payments"];
    let table = server.kubectl_ok(&["get", "clusters", ns[0], ns[1]]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header[0], "NAME", "{table}");
    assert!(
        header.contains(&"VERSION") && header.contains(&"READY") && header.contains(&"AGE"),
        "{table}"
    );
    assert!(
        table.lines().nth(1).unwrap_or_default().contains("1.33.6"),
        "{table}"
    );

    let yaml = server.kubectl_ok(&["get", "cluster", "payments-eu", ns[0], ns[1], "-o", "yaml"]);
    assert!(
        yaml.contains("kind: Cluster") && yaml.contains("version: 1.33.6"),
        "{yaml}"
    );
    let json: serde_json::Value = serde_json::from_str(&server.kubectl_ok(&[
        "get",
        "cl",
        "payments-eu",
        ns[0],
        ns[1],
        "-o",
        "json",
    ]))
    .expect("json");
    assert_eq!(json["spec"]["nodePools"][1]["name"], "gpu");
    assert_eq!(json["metadata"]["generation"], 3);
    let path = server.kubectl_ok(&[
        "get",
        "cluster",
        "payments-eu",
        ns[0],
        ns[1],
        "-o",
        "jsonpath={.spec.controlPlane.replicas}",
    ]);
    assert_eq!(path, "3");

    // Label selectors.
    let dev = cluster_manifest("team-payments", "payments-dev", "1.33.4")
        .replace("tier: production", "tier: development");
    assert!(server.apply(&dev, &[]).status.success());
    let names = server.kubectl_ok(&[
        "get",
        "clusters",
        "-A",
        "-l",
        "tier=development",
        "-o",
        "name",
    ]);
    assert_eq!(names.trim(), "cluster.slipway.dev/payments-dev");
    let names = server.kubectl_ok(&[
        "get",
        "clusters",
        ns[0],
        ns[1],
        "-l",
        "tier in (production),tier!=x",
        "-o",
        "name",
    ]);
    assert_eq!(names.trim(), "cluster.slipway.dev/payments-eu");
    let bad = server.kubectl(&["get", "clusters", ns[0], ns[1], "-l", "tier in (production"]);
    assert!(!bad.status.success());

    // Merge and JSON patches.
    server.kubectl_ok(&[
        "patch",
        "cluster",
        "payments-eu",
        ns[0],
        ns[1],
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"version":"1.34.0"}}"#,
    ]);
    server.kubectl_ok(&[
        "patch",
        "cluster",
        "payments-eu",
        ns[0],
        ns[1],
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/nodePools/0/replicas","value":5}]"#,
    ]);
    let json: serde_json::Value = serde_json::from_str(&server.kubectl_ok(&[
        "get",
        "cluster",
        "payments-eu",
        ns[0],
        ns[1],
        "-o",
        "json",
    ]))
    .expect("json");
    assert_eq!(json["spec"]["version"], "1.34.0");
    assert_eq!(json["spec"]["nodePools"][0]["replicas"], 5);
    // A JSON patch that fails its test applies nothing.
    let failed = server.kubectl(&[
        "patch", "cluster", "payments-eu", ns[0], ns[1], "--type", "json",
        "-p", r#"[{"op":"test","path":"/spec/version","value":"9.9.9"},{"op":"replace","path":"/spec/version","value":"1.35.0"}]"#,
    ]);
    assert!(!failed.status.success());
    let version = server.kubectl_ok(&[
        "get",
        "cluster",
        "payments-eu",
        ns[0],
        ns[1],
        "-o",
        "jsonpath={.spec.version}",
    ]);
    assert_eq!(version, "1.34.0");
    // Strategic merge is refused as for custom resources.
    let smp = server.kubectl(&[
        "patch",
        "cluster",
        "payments-eu",
        ns[0],
        ns[1],
        "--type",
        "strategic",
        "-p",
        "{}",
    ]);
    assert!(!smp.status.success());
    assert!(
        stderr(&smp).contains("UnsupportedMediaType")
            || stderr(&smp).contains("415")
            || stderr(&smp).contains("unknown format"),
        "{}",
        stderr(&smp)
    );
}
on_every_backend!(apply_get_and_patch, apply_get_patch);

fn watch_events(backend: Backend) {
    let server = Server::start(backend);
    server.kubectl_ok(&["create", "namespace", "team-a"]);
    let mut watch = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args([
            "get",
            "clusters",
            "-n",
            "team-a",
            "-w",
            "--output-watch-events",
        ])
        .env("KUBECACHEDIR", server.data_dir().join("kubectl-cache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl get -w");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        server
            .apply(&cluster_manifest("team-a", "w1", "1.33.4"), &[])
            .status
            .success()
    );
    server.kubectl_ok(&[
        "patch",
        "cluster",
        "w1",
        "-n",
        "team-a",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"version":"1.33.9"}}"#,
    ]);
    server.kubectl_ok(&["delete", "cluster", "w1", "-n", "team-a"]);
    std::thread::sleep(Duration::from_secs(2));
    let _ = watch.kill();
    let _ = watch.wait();
    let mut out = String::new();
    watch
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    let events: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let seen: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e.len() >= 3 && e[1] == "w1")
        .map(|e| (e[0], e[2]))
        .collect();
    assert_eq!(
        seen,
        [
            ("ADDED", "1.33.4"),
            ("MODIFIED", "1.33.9"),
            ("DELETED", "1.33.9")
        ],
        "watch output:\n{out}"
    );
}
on_every_backend!(get_watch_sees_added_modified_deleted, watch_events);

fn finalizers_and_wait(backend: Backend) {
    let server = Server::start(backend);
    server.kubectl_ok(&["create", "namespace", "team-f"]);
    let manifest = cluster_manifest("team-f", "held", "1.33.4").replace(
        "  labels: {tier: production}",
        "  labels: {tier: production}\n  finalizers: [slipway.dev/test-hold]",
    );
    assert!(server.apply(&manifest, &[]).status.success());
    server.kubectl_ok(&["delete", "cluster", "held", "-n", "team-f", "--wait=false"]);
    let ts = server.kubectl_ok(&[
        "get",
        "cluster",
        "held",
        "-n",
        "team-f",
        "-o",
        "jsonpath={.metadata.deletionTimestamp}",
    ]);
    assert!(!ts.is_empty(), "the object must stay, marked for deletion");
    // No new finalizers while being deleted.
    let add = server.kubectl(&[
        "patch",
        "cluster",
        "held",
        "-n",
        "team-f",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"finalizers":["slipway.dev/test-hold","x.dev/more"]}}"#,
    ]);
    assert!(!add.status.success());
    server.kubectl_ok(&[
        "patch",
        "cluster",
        "held",
        "-n",
        "team-f",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    assert!(eventually(Duration::from_secs(10), || !server
        .kubectl(&["get", "cluster", "held", "-n", "team-f"])
        .status
        .success()));

    // kubectl wait sees a condition set through the status subresource.
    assert!(
        server
            .apply(&cluster_manifest("team-f", "ready", "1.33.4"), &[])
            .status
            .success()
    );
    let mut wait = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args([
            "wait",
            "--for=condition=Ready",
            "cluster/ready",
            "-n",
            "team-f",
            "--timeout=60s",
        ])
        .env("KUBECACHEDIR", server.data_dir().join("kubectl-cache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl wait");
    std::thread::sleep(Duration::from_secs(1));
    // A spec change through /status is ignored; the status change is kept.
    server.kubectl_ok(&[
        "patch", "cluster", "ready", "-n", "team-f", "--subresource=status", "--type", "merge",
        "-p", r#"{"spec":{"version":"9.9.9"},"status":{"conditions":[{"type":"Ready","status":"True","reason":"Provisioned","message":"all good","lastTransitionTime":"2026-11-21T00:00:00Z"}]}}"#,
    ]);
    let status = wait.wait().expect("wait");
    let mut out = String::new();
    wait.stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    assert!(status.success(), "kubectl wait failed: {out}");
    assert!(out.contains("condition met"), "{out}");
    let version = server.kubectl_ok(&[
        "get",
        "cluster",
        "ready",
        "-n",
        "team-f",
        "-o",
        "jsonpath={.spec.version}",
    ]);
    assert_eq!(version, "1.33.4");
    // A main-resource update does not touch status.
    server.kubectl_ok(&[
        "patch",
        "cluster",
        "ready",
        "-n",
        "team-f",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"conditions":[]}}"#,
    ]);
    let ready = server.kubectl_ok(&[
        "get",
        "cluster",
        "ready",
        "-n",
        "team-f",
        "-o",
        "jsonpath={.status.conditions[0].status}",
    ]);
    assert_eq!(ready, "True");
}
on_every_backend!(
    finalizers_hold_deletion_and_wait_sees_conditions,
    finalizers_and_wait
);

fn explain_and_validation(backend: Backend) {
    let server = Server::start(backend);
    let out = server.kubectl_ok(&["explain", "cluster.spec.nodePools"]);
    assert!(out.contains("KIND:") && out.contains("Cluster"), "{out}");
    assert!(
        out.contains("minReplicas") && out.contains("capacityType"),
        "{out}"
    );

    server.kubectl_ok(&["create", "namespace", "team-v"]);
    let bad = cluster_manifest("team-v", "typo", "1.33.4").replace(
        "    endpoint: private",
        "    endpoint: private\n    colour: blue",
    );
    let out = server.apply(&bad, &[]);
    assert!(
        !out.status.success(),
        "an unknown field must be refused under strict validation"
    );
    assert!(
        stderr(&out).contains("spec.controlPlane.colour"),
        "{}",
        stderr(&out)
    );
    // With --validate=false the field is dropped instead.
    let out = server.apply(&bad, &["--validate=false"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cp = server.kubectl_ok(&[
        "get",
        "cluster",
        "typo",
        "-n",
        "team-v",
        "-o",
        "jsonpath={.spec.controlPlane}",
    ]);
    assert!(!cp.contains("colour"), "{cp}");

    // Semantic validation names the field and the rule.
    let two = cluster_manifest("team-v", "two", "1.33.4").replace(
        "replicas: 3\n    machineType: m5.large",
        "replicas: 2\n    machineType: m5.large",
    );
    let out = server.apply(&two, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("spec.controlPlane.replicas"),
        "{}",
        stderr(&out)
    );
    let minmax =
        cluster_manifest("team-v", "minmax", "1.33.4").replace("minReplicas: 3", "minReplicas: 40");
    let out = server.apply(&minmax, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("spec.nodePools[0]"),
        "{}",
        stderr(&out)
    );
    let bad_name = cluster_manifest("team-v", "Bad_Name", "1.33.4");
    let out = server.apply(&bad_name, &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("metadata.name"), "{}", stderr(&out));
    // Nothing half-written.
    let names = server.kubectl_ok(&["get", "clusters", "-n", "team-v", "-o", "name"]);
    assert_eq!(names.trim(), "cluster.slipway.dev/typo");
}
on_every_backend!(explain_and_strict_validation, explain_and_validation);

fn namespaces_and_core_kinds(backend: Backend) {
    let server = Server::start(backend);
    server.kubectl_ok(&["create", "namespace", "team-n"]);
    server.kubectl_ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "team-n",
        "--from-literal=a=b",
    ]);
    server.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "-n",
        "team-n",
        "--from-literal=password=hunter2",
    ]);
    let cm = server.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: applied, namespace: team-n}\ndata: {x: \"1\"}\n",
        &[],
    );
    assert!(cm.status.success(), "{}", stderr(&cm));
    let cm = server.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: applied, namespace: team-n}\ndata: {x: \"2\"}\n",
        &[],
    );
    assert!(cm.status.success(), "{}", stderr(&cm));
    assert_eq!(
        server.kubectl_ok(&[
            "get",
            "cm",
            "applied",
            "-n",
            "team-n",
            "-o",
            "jsonpath={.data.x}"
        ]),
        "2"
    );
    let secret = server.kubectl_ok(&[
        "get",
        "secret",
        "creds",
        "-n",
        "team-n",
        "-o",
        "jsonpath={.data.password}",
    ]);
    assert_eq!(secret, "aHVudGVyMg==");
    assert!(
        server
            .apply(&cluster_manifest("team-n", "inside", "1.33.4"), &[])
            .status
            .success()
    );
    let ns = server.kubectl_ok(&["get", "namespaces"]);
    assert!(
        ns.contains("team-n") && ns.contains("default") && ns.contains("Active"),
        "{ns}"
    );

    server.kubectl_ok(&["delete", "namespace", "team-n", "--wait=false"]);
    assert!(
        eventually(Duration::from_secs(20), || !server
            .kubectl(&["get", "namespace", "team-n"])
            .status
            .success()),
        "namespace deletion must remove what is inside and then the namespace"
    );
    let left = server.kubectl_ok(&["get", "clusters,configmaps,secrets", "-A", "-o", "name"]);
    assert!(
        !left.contains("inside") && !left.contains("settings") && !left.contains("creds"),
        "{left}"
    );
    let create_in_missing = server.apply(&cluster_manifest("team-n", "late", "1.33.4"), &[]);
    assert!(!create_in_missing.status.success());
}
on_every_backend!(
    namespaces_core_kinds_and_namespace_deletion,
    namespaces_and_core_kinds
);
