//! The web dashboard in a real headless Chromium against `slipway serve` with its controllers
//! and the simulated cloud (zero delay): login is required and a wrong token is refused; the
//! overview and a cluster page show the fleet; changes made with kubectl appear on an open
//! page without a reload; logout ends the session.
//!
//! `cargo test -p slipway --test dashboard -- --ignored screenshots` regenerates
//! `docs/screenshots/` from a small fleet.

mod browser;
mod common;

use std::time::Duration;

use browser::Browser;
use common::{Backend, Server, ok};

const PATIENCE: Duration = Duration::from_secs(120);

fn cluster(
    namespace: &str,
    name: &str,
    class: Option<&str>,
    region: &str,
    version: &str,
    workers: u32,
) -> String {
    let zones = ["a", "b", "c"].map(|z| format!("{region}{z}")).join(", ");
    let class = class.map(|c| format!("  class: {c}\n")).unwrap_or_default();
    format!(
        r#"apiVersion: slipway.dev/v1alpha1
kind: Cluster
metadata:
  name: {name}
  namespace: {namespace}
spec:
{class}  version: "{version}"
  infrastructure:
    provider: sim
    region: {region}
    zones: [{zones}]
  controlPlane:
    replicas: 1
    machineType: m5.large
  nodePools:
    - name: general
      machineType: m5.xlarge
      replicas: {workers}
      minReplicas: 0
      maxReplicas: 10
"#
    )
}

fn start() -> Server {
    Server::start_with(
        Backend::Sqlite,
        &["--controllers=true", "--time-scale", "0"],
    )
}

/// The admin bearer token from the server's kubeconfig.
fn admin_token(server: &Server) -> String {
    let text = std::fs::read_to_string(server.kubeconfig()).expect("read kubeconfig");
    common::yaml(&text)["users"][0]["user"]["token"]
        .as_str()
        .expect("token in admin.kubeconfig")
        .to_string()
}

fn wait_ready(server: &Server, namespace: &str, name: &str) {
    ok(server.kubectl(&[
        "wait",
        "--for=condition=Ready",
        &format!("cluster/{name}"),
        "-n",
        namespace,
        "--timeout=120s",
    ]));
}

fn namespace(server: &Server, name: &str) {
    ok(server.kubectl(&["create", "namespace", name]));
}

/// Set the size of a cluster's first node pool with kubectl.
fn scale(server: &Server, namespace: &str, name: &str, replicas: u32) {
    let patch = format!(
        r#"[{{"op": "replace", "path": "/spec/nodePools/0/replicas", "value": {replicas}}}]"#
    );
    ok(server.kubectl(&[
        "patch", "cluster", name, "-n", namespace, "--type", "json", "-p", &patch,
    ]));
}

/// Wait until the page's live stream is open.
fn wait_live(b: &mut Browser) {
    b.wait_until(
        "the live stream to connect",
        "document.getElementById('live').textContent === 'Live'",
        "document.getElementById('live').textContent",
        Duration::from_secs(10),
    );
}

/// Sign in through the form with `token`.
fn sign_in(b: &mut Browser, token: &str) {
    let token = serde_json::to_string(token).expect("json string");
    b.navigate_by(&format!(
        "document.getElementById('token').value = {token}; document.querySelector('form[action=\"/ui/login\"]').submit()"
    ));
}

#[test]
fn dashboard_in_chromium() {
    if !browser::available() {
        return;
    }
    let server = start();
    let base = format!("https://{}", server.addr);
    namespace(&server, "team-a");
    ok(server.apply(
        &cluster("team-a", "web", None, "eu-west-1", "1.33.4", 2),
        &[],
    ));
    let mut b = Browser::launch(1280, 900);

    // Nothing without signing in: the page is the login form.
    b.goto(&format!("{base}/ui/"));
    assert_eq!(b.text("location.pathname"), "/ui/login");
    assert_eq!(
        b.eval("document.querySelector('label[for=token]').textContent"),
        "Bearer token"
    );
    // The data endpoints refuse the browser too.
    assert_eq!(b.eval("fetch('/ui/api/events').then(r => r.status)"), 401);

    // A wrong token is refused.
    sign_in(&mut b, "not-the-token");
    assert_eq!(b.text("location.pathname"), "/ui/login");
    assert!(
        b.text("document.querySelector('.error').textContent")
            .contains("not valid"),
    );

    // The right one opens the overview, with a session cookie script cannot read.
    let token = admin_token(&server);
    sign_in(&mut b, &token);
    assert_eq!(b.text("location.pathname"), "/ui/");
    assert_eq!(b.text("document.querySelector('h1').textContent"), "Fleet");
    assert_eq!(b.text("document.cookie"), "");

    wait_ready(&server, "team-a", "web");
    b.goto(&format!("{base}/ui/"));
    assert_eq!(
        b.text("document.getElementById('stat-clusters').textContent"),
        "1"
    );
    assert!(b.eval("!!document.querySelector('tr[data-cluster=\"team-a/web\"]')") == true);
    assert!(b.eval("!!document.querySelector('svg.chart g[data-version=\"1.33.4\"]')") == true);
    wait_live(&mut b);

    // A cluster created with kubectl appears on the open overview without a reload.
    b.eval("window.__noReload = true");
    ok(server.apply(
        &cluster("team-a", "api", None, "us-east-1", "1.33.4", 1),
        &[],
    ));
    b.wait_until(
        "the new cluster on the open overview",
        "!!document.querySelector('tr[data-cluster=\"team-a/api\"]') && document.getElementById('stat-clusters').textContent === '2'",
        "document.getElementById('clusters').innerText",
        Duration::from_secs(20),
    );
    assert_eq!(b.eval("window.__noReload === true"), true);
    assert!(
        b.text("document.getElementById('by-region').closest('table').innerText")
            .contains("us-east-1")
    );

    // The cluster page: pools, machines with zones and versions, conditions, events.
    b.navigate_by("document.querySelector('tr[data-cluster=\"team-a/web\"] a').click()");
    assert_eq!(b.text("location.pathname"), "/ui/clusters/team-a/web");
    assert_eq!(
        b.text("document.getElementById('cluster-title').textContent"),
        "web Healthy"
    );
    let machines = b.text("document.getElementById('machines').innerText");
    assert!(
        machines.contains("control-plane") && machines.contains("worker"),
        "{machines}"
    );
    assert!(
        machines.contains("eu-west-1") && machines.contains("1.33.4"),
        "{machines}"
    );
    assert!(
        machines.contains("m5.xlarge") && machines.contains("on-demand"),
        "{machines}"
    );
    assert_eq!(
        b.eval("document.querySelectorAll('#machines tbody tr').length"),
        3
    );
    assert!(
        b.text("document.getElementById('conditions').innerText")
            .contains("Ready")
    );
    assert!(b.eval("document.querySelectorAll('#events tbody tr').length > 0") == true);
    assert_eq!(
        b.text("document.getElementById('progress').dataset.converging"),
        "false"
    );

    // Scaling the pool with kubectl shows on the open page: the progress view converges to
    // the new size, without a reload.
    wait_live(&mut b);
    b.eval("window.__noReload = true");
    scale(&server, "team-a", "web", 4);
    b.wait_until(
        "the pool's new size on the open page",
        "document.querySelector('#progress tr[data-group=\"general\"] td.ready').textContent.trim().endsWith('/ 4')",
        "document.getElementById('progress').innerText",
        Duration::from_secs(20),
    );
    b.wait_until(
        "the pool converging at 4 ready machines",
        "document.getElementById('progress').dataset.converging === 'false' && document.querySelectorAll('#machines tbody tr').length === 5",
        "document.getElementById('progress').innerText + document.getElementById('machines').innerText",
        PATIENCE,
    );
    assert_eq!(b.eval("window.__noReload === true"), true);

    // Logging out ends the session.
    b.navigate_by("document.querySelector('form[action=\"/ui/logout\"] button').click()");
    assert_eq!(b.text("location.pathname"), "/ui/login");
    b.goto(&format!("{base}/ui/clusters/team-a/web"));
    assert_eq!(b.text("location.pathname"), "/ui/login");
}

const CLASSES: &str = r#"apiVersion: slipway.dev/v1alpha1
kind: ClusterClass
metadata: {name: production}
spec:
  description: HA control plane, on-demand only
  tier: production
  policy:
    controlPlaneReplicas: [1, 3, 5]
    allowSpot: false
---
apiVersion: slipway.dev/v1alpha1
kind: ClusterClass
metadata: {name: development}
spec:
  description: cheap, short-lived
  tier: development
"#;

/// Regenerate `docs/screenshots/{overview,cluster}.png` from a small fleet: several teams,
/// tiers, regions and versions, one zone out so that something needs attention.
#[test]
#[ignore = "writes docs/screenshots; run by hand after changing the dashboard's look"]
fn screenshots() {
    assert!(browser::available(), "screenshots need chromium");
    let server = start();
    let base = format!("https://{}", server.addr);
    ok(server.apply(CLASSES, &[]));
    for ns in ["team-payments", "team-search", "team-ml"] {
        namespace(&server, ns);
    }
    let fleet = [
        (
            "team-payments",
            "payments-eu",
            Some("production"),
            "eu-west-1",
            "1.33.4",
            3,
        ),
        (
            "team-payments",
            "payments-us",
            Some("production"),
            "us-east-1",
            "1.33.4",
            3,
        ),
        (
            "team-payments",
            "ledger",
            Some("production"),
            "eu-west-1",
            "1.32.5",
            2,
        ),
        (
            "team-search",
            "search-prod",
            Some("production"),
            "us-east-1",
            "1.33.4",
            4,
        ),
        (
            "team-search",
            "search-dev",
            Some("development"),
            "eu-west-1",
            "1.34.1",
            1,
        ),
        (
            "team-ml",
            "training",
            Some("development"),
            "ap-southeast-1",
            "1.34.1",
            2,
        ),
    ];
    for (ns, name, class, region, version, workers) in fleet {
        ok(server.apply(&cluster(ns, name, class, region, version, workers), &[]));
    }
    for (ns, name, ..) in fleet {
        wait_ready(&server, ns, name);
    }
    // A zone goes out under one cluster while its pool grows; another pool grows elsewhere.
    server.sim("faults", &["--zone-outage", "ap-southeast-1a"]);
    scale(&server, "team-ml", "training", 5);
    scale(&server, "team-search", "search-prod", 6);
    std::thread::sleep(Duration::from_secs(3));

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshots dir");
    let mut b = Browser::launch(1280, 900);
    b.goto(&format!("{base}/ui/login"));
    sign_in(&mut b, &admin_token(&server));
    assert_eq!(b.text("location.pathname"), "/ui/");
    wait_live(&mut b);
    b.screenshot(&dir.join("overview.png"), 1280);
    b.goto(&format!("{base}/ui/clusters/team-ml/training"));
    wait_live(&mut b);
    b.screenshot(&dir.join("cluster.png"), 1280);
}
