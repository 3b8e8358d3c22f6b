//! Test harness: runs the real `slipway` binary on a loopback port with a temporary data
//! directory (SQLite, or etcd started by the test), and drives it with the real `kubectl`
//! and with kube-rs.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Which store a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    #[cfg(feature = "etcd")]
    Etcd,
}

pub struct Server {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub backend: Backend,
    extra: Vec<String>,
    #[cfg(feature = "etcd")]
    etcd: Option<slipway_store_etcd::testing::EtcdProcess>,
}

fn require(tool: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success());
    assert!(
        found.unwrap_or(false),
        "`{tool}` is not installed: these tests need it (scripts/test installs Debian's {package})"
    );
}

/// Run the real kubectl with `kubeconfig` (and its discovery cache in `cache_dir`), feeding
/// `stdin` when given.
pub fn kubectl_with(
    kubeconfig: &Path,
    cache_dir: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    require("kubectl", "kubernetes-client");
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig").arg(kubeconfig).args(args);
    cmd.env("KUBECACHEDIR", cache_dir);
    run_with_stdin(cmd, stdin)
}

/// Run `cmd` to completion, feeding it `stdin` when given; its output captured.
pub fn run_with_stdin(mut cmd: Command, stdin: Option<&str>) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("output")
}

impl Server {
    pub fn start(backend: Backend) -> Self {
        Self::start_with(backend, &[])
    }

    /// Start a server that serves the kinds of a simulated workload cluster
    /// (`slipway_api::workload_resources()`: Node, Pod, Deployment, ReplicaSet,
    /// PodDisruptionBudget, ...) instead of the platform API.
    pub fn start_workload(backend: Backend) -> Self {
        Self::start_with(backend, &["--workload-kinds"])
    }

    /// Start with extra `slipway serve` flags.
    pub fn start_with(backend: Backend, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = Server {
            child: None,
            dir,
            addr: "127.0.0.1:0".parse().expect("addr"),
            backend,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            #[cfg(feature = "etcd")]
            etcd: None,
        };
        #[cfg(feature = "etcd")]
        if backend == Backend::Etcd {
            server.etcd = Some(slipway_store_etcd::testing::EtcdProcess::start());
        }
        server.spawn("127.0.0.1:0");
        server
    }

    fn spawn(&mut self, listen: &str) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(self.dir.path())
            .arg("--listen")
            .arg(listen)
            // The in-process simulator on ephemeral ports, so servers can run side by side.
            .args(["--sim-api-listen", "127.0.0.1:0"])
            .args(["--sim-clusters-listen", "127.0.0.1:0"]);
        #[cfg(feature = "etcd")]
        if let Some(etcd) = &self.etcd {
            cmd.arg("--store")
                .arg("etcd")
                .arg("--etcd-endpoints")
                .arg(etcd.endpoints().join(","));
        }
        // Tests of the API alone run without the controllers acting on what they create.
        if !self.extra.iter().any(|a| a.starts_with("--controllers")) {
            cmd.arg("--controllers=false");
        }
        cmd.args(&self.extra);
        cmd.env(
            "SLIPWAY_LOG",
            std::env::var("SLIPWAY_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn slipway serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent
                    && let Some(rest) =
                        line.strip_prefix("Slipway API server listening on https://")
                {
                    let _ = tx.send(Ok(rest.trim().to_string()));
                    sent = true;
                } else {
                    eprintln!("[slipway] {line}");
                }
            }
            if !sent {
                let _ = tx.send(Err("slipway exited before listening".to_string()));
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("slipway did not start in 60s")
            .expect("slipway start");
        self.addr = addr.parse().expect("listen address");
        self.child = Some(child);
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `slipway sim COMMAND --data-dir DIR ARGS...` against this server's simulator; its
    /// stdout (the command must succeed).
    #[allow(dead_code)]
    pub fn sim(&self, command: &str, args: &[&str]) -> String {
        ok(std::process::Command::new(env!("CARGO_BIN_EXE_slipway"))
            .args(["sim", command, "--data-dir"])
            .arg(self.data_dir())
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run slipway sim"))
    }

    /// kill -9 the server.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start again on the same port and data (and the same etcd).
    pub fn restart(&mut self) {
        self.kill();
        let listen = self.addr.to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // The port may linger for a moment after the kill.
            if std::net::TcpListener::bind(self.addr).is_ok() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.spawn(&listen);
    }

    /// Run kubectl against this server.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None)
    }

    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        kubectl_with(
            &self.kubeconfig(),
            &self.dir.path().join("kubectl-cache"),
            args,
            stdin,
        )
    }

    /// Run kubectl and require success; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Apply a manifest from a string.
    pub fn apply(&self, manifest: &str, extra: &[&str]) -> Output {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        self.kubectl_stdin(&args, Some(manifest))
    }

    /// A kube-rs client for this server.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig =
            kube::config::Kubeconfig::read_from(self.kubeconfig()).expect("read kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .expect("kube config");
        kube::Client::try_from(config).expect("kube client")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Poll `check` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    check()
}

/// The Cluster from DESIGN.md, in a namespace and with a name of the test's choosing.
pub fn cluster_manifest(namespace: &str, name: &str, version: &str) -> String {
    format!(
        r#"apiVersion: slipway.dev/v1alpha1
kind: Cluster
metadata:
  name: {name}
  namespace: {namespace}
  labels: {{tier: production}}
spec:
  version: "{version}"
  infrastructure:
    provider: sim
    region: eu-west-1
    zones: [eu-west-1a, eu-west-1b, eu-west-1c]
  controlPlane:
    replicas: 3
    machineType: m5.large
    endpoint: private
  nodePools:
    - name: general
      machineType: m5.xlarge
      replicas: 3
      minReplicas: 3
      maxReplicas: 30
      capacityType: on-demand
      labels: {{workload: general}}
    - name: gpu
      machineType: g5.2xlarge
      zones: [eu-west-1a, eu-west-1b]   # eu-west-1c has no GPU machines
      replicas: 0
      maxReplicas: 8
      capacityType: spot
      taints: [{{key: nvidia.com/gpu, value: "true", effect: NoSchedule}}]
  upgrade:
    strategy: RollingReplace
    maxSurge: 1
    maxUnavailable: 0
    drainTimeout: 30m
  maintenance:
    window: {{days: [Tue, Wed], start: "02:00", duration: 4h, timeZone: Europe/Berlin}}
    autoUpdate: {{patch: true, machineImage: true}}
  addons: [{{name: ingress-nginx}}]
"#
    )
}

/// Parse a YAML manifest into JSON.
pub fn yaml(text: &str) -> serde_json::Value {
    serde_saphyr::from_str(text).expect("valid YAML")
}

/// Instantiate a test body once per store backend: `on_every_backend!(name, |backend| ...)`.
#[macro_export]
macro_rules! on_every_backend {
    ($name:ident, $body:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::$body($crate::common::Backend::Sqlite);
            }
            #[cfg(feature = "etcd")]
            #[test]
            fn etcd() {
                super::$body($crate::common::Backend::Etcd);
            }
        }
    };
}

/// The stdout of a command that must succeed (its stderr and stdout in the panic message).
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Poll `check` until it returns true or `patience` runs out; the last output it gave is in
/// the panic message.
pub fn wait_for(what: &str, patience: Duration, mut check: impl FnMut() -> (bool, String)) {
    let deadline = Instant::now() + patience;
    loop {
        let (done, last) = check();
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last: {last}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
