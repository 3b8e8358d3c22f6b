//! The real `kubectl` against the kinds of a simulated workload cluster: discovery lists
//! them with their subresources, `get -o wide` prints kubectl's columns, `scale` goes through
//! the scale subresource, and `drain` cordons a node and evicts its pods through the eviction
//! subresource, held back by a PodDisruptionBudget until the budget allows it.
//!
//! Nothing runs the simulated kubelet, scheduler or disruption controller here: the test
//! writes node and pod status and the budget's status itself, as those controllers would.

mod common;

use std::time::Duration;

use common::{Backend, Server, eventually, stderr, stdout};

fn node(server: &Server, name: &str) {
    let manifest = format!(
        r#"{{"apiVersion": "v1", "kind": "Node", "metadata": {{"name": "{name}",
           "labels": {{"topology.kubernetes.io/zone": "eu-west-1a"}}}}}}"#
    );
    let out = server.apply(&manifest, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status = r#"{"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        "nodeInfo": {"kubeletVersion": "v1.33.4", "architecture": "amd64", "bootID": "", "containerRuntimeVersion": "containerd://2.0.5",
          "kernelVersion": "6.8", "kubeProxyVersion": "v1.33.4", "machineID": "", "operatingSystem": "linux", "osImage": "Sim", "systemUUID": ""},
        "addresses": [{"type": "InternalIP", "address": "10.0.1.10"}]}}"#;
    server.kubectl_ok(&[
        "patch",
        "node",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    ]);
}

fn running_pod(server: &Server, name: &str, node: &str, ip: &str) {
    let manifest = format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}", "namespace": "default",
           "labels": {{"app": "web"}}}},
           "spec": {{"nodeName": "{node}", "containers": [{{"name": "web", "image": "nginx:1.27"}}]}}}}"#
    );
    let out = server.apply(&manifest, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status = format!(
        r#"{{"status": {{"phase": "Running", "podIP": "{ip}",
            "conditions": [{{"type": "Ready", "status": "True"}}],
            "containerStatuses": [{{"name": "web", "image": "nginx:1.27", "imageID": "", "ready": true,
               "restartCount": 0, "state": {{"running": {{}}}}}}]}}}}"#
    );
    server.kubectl_ok(&[
        "patch",
        "pod",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status,
    ]);
}

/// What the disruption controller would write for a budget allowing `allowed` disruptions.
fn budget_status(server: &Server, allowed: u32) {
    let status = format!(
        r#"{{"status": {{"observedGeneration": 1, "disruptionsAllowed": {allowed},
            "currentHealthy": {}, "desiredHealthy": 2, "expectedPods": 2}}}}"#,
        2 + allowed
    );
    server.kubectl_ok(&[
        "patch",
        "pdb",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        &status,
    ]);
}

#[test]
fn discovery_lists_workload_kinds_and_subresources() {
    let server = Server::start_workload(Backend::Sqlite);
    let out = server.kubectl_ok(&["api-resources"]);
    for (name, short, version, kind) in [
        ("nodes", "no", "v1", "Node"),
        ("pods", "po", "v1", "Pod"),
        ("deployments", "deploy", "apps/v1", "Deployment"),
        ("replicasets", "rs", "apps/v1", "ReplicaSet"),
        (
            "poddisruptionbudgets",
            "pdb",
            "policy/v1",
            "PodDisruptionBudget",
        ),
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing:\n{out}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[1..3], [short, version], "{line}");
        assert_eq!(cols.last(), Some(&kind), "{line}");
    }
    let raw = server.kubectl_ok(&["get", "--raw", "/api/v1"]);
    let list: serde_json::Value = serde_json::from_str(&raw).expect("json");
    let eviction = list["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["name"] == "pods/eviction")
        .expect("pods/eviction listed");
    assert_eq!(
        (&eviction["group"], &eviction["version"], &eviction["kind"]),
        (
            &serde_json::json!("policy"),
            &serde_json::json!("v1"),
            &serde_json::json!("Eviction")
        )
    );
}

#[test]
fn deployments_scale_and_print_like_kubectl() {
    let server = Server::start_workload(Backend::Sqlite);
    // kubectl sends this one as protobuf.
    let out = server.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.27",
        "--replicas=2",
        "--port=80",
    ]);
    assert_eq!(out.trim(), "deployment.apps/web created");
    let port = server.kubectl_ok(&[
        "get", "deploy", "web", "-o",
        "jsonpath={.spec.template.spec.containers[0].ports[0].containerPort} {.spec.strategy.type} {.spec.template.spec.restartPolicy}",
    ]);
    assert_eq!(port, "80 RollingUpdate Always");
    let out = server.kubectl_ok(&["scale", "deployment", "web", "--replicas=5"]);
    assert_eq!(out.trim(), "deployment.apps/web scaled");
    let replicas = server.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(replicas, "5");
    let scale = server.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
    ]);
    let scale: serde_json::Value = serde_json::from_str(&scale).expect("json");
    assert_eq!(scale["status"]["selector"], "app=web");
    let table = server.kubectl_ok(&["get", "deploy", "-o", "wide"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row[..4], ["web", "0/5", "0", "0"], "{table}");
    assert_eq!(row[5..], ["nginx", "nginx:1.27", "app=web"], "{table}");

    // A strategic merge patch of the containers list, merged by container name.
    server.kubectl_ok(&["set", "image", "deployment/web", "nginx=nginx:1.28"]);
    let container = server.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort} {.metadata.generation}",
    ]);
    assert_eq!(container, "nginx:1.28 80 3");
}

#[test]
fn drain_is_held_back_by_a_disruption_budget() {
    let server = Server::start_workload(Backend::Sqlite);
    node(&server, "node-a");
    running_pod(&server, "web-1", "node-a", "10.244.1.2");
    running_pod(&server, "web-2", "node-a", "10.244.1.3");
    let wide = server.kubectl_ok(&["get", "pods", "-o", "wide"]);
    let header: Vec<&str> = wide
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header[..7],
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"],
        "{wide}"
    );
    let row: Vec<&str> = wide
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        [row[0], row[1], row[2], row[3], row[5], row[6]],
        ["web-1", "1/1", "Running", "0", "10.244.1.2", "node-a"],
        "{wide}"
    );
    let nodes = server.kubectl_ok(&["get", "nodes"]);
    assert!(
        nodes.lines().nth(1).is_some_and(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols[..3] == ["node-a", "Ready", "<none>"] && cols[4] == "v1.33.4"
        }),
        "{nodes}"
    );

    let pdb = r#"{"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}}"#;
    let out = server.apply(pdb, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    budget_status(&server, 0);

    // The budget allows nothing: drain cordons, retries the evictions, and gives up.
    let out = server.kubectl(&[
        "drain",
        "node-a",
        "--force",
        "--ignore-daemonsets",
        "--timeout=7s",
    ]);
    assert!(!out.status.success(), "drain should fail: {}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{err}"
    );
    let nodes = server.kubectl_ok(&["get", "nodes"]);
    assert!(nodes.contains("Ready,SchedulingDisabled"), "{nodes}");
    let pods = server.kubectl_ok(&["get", "pods", "-o", "name"]);
    assert_eq!(pods.lines().count(), 2, "nothing evicted: {pods}");

    // The budget allows one disruption: one pod goes, the next eviction is refused.
    budget_status(&server, 1);
    let out = server.kubectl(&["drain", "node-a", "--force", "--timeout=7s"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("evicted"),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let pods = server.kubectl_ok(&["get", "pods", "-o", "name"]);
    assert_eq!(pods.lines().count(), 1, "{pods}");

    // Enough budget: the drain completes.
    budget_status(&server, 2);
    let out = server.kubectl(&["drain", "node-a", "--force", "--timeout=30s"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("node/node-a drained"),
        "{}",
        stdout(&out)
    );
    assert!(eventually(Duration::from_secs(10), || {
        server
            .kubectl_ok(&["get", "pods", "-o", "name"])
            .trim()
            .is_empty()
    }));
    let pdb = server.kubectl_ok(&[
        "get",
        "pdb",
        "web",
        "-o",
        "jsonpath={.status.disruptionsAllowed}",
    ]);
    assert_eq!(pdb, "1", "the eviction spent one disruption");
}
