//! A throwaway etcd for tests (feature `testing`).
//!
//! [`EtcdProcess::start`] runs the `etcd` binary (Debian's `etcd-server` package; `scripts/test`
//! installs it) on 127.0.0.1 with free client and peer ports and a temporary data directory
//! (in `/dev/shm` when it exists, so fsyncs cost nothing; [`EtcdProcess::start_in`] picks
//! another place), waits until it reports healthy, and
//! kills it and removes the directory when dropped. It panics with instructions when etcd is
//! missing: a test that needs etcd never skips silently.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Environment variable naming the etcd binary to run instead of `etcd` from `PATH`.
pub const ETCD_BIN_ENV: &str = "SLIPWAY_ETCD_BIN";

/// Name prefix of the temporary directories.
const DIR_PREFIX: &str = "slipway-etcd-";
/// File in each directory naming the test process and the etcd process ("<pid> <pid>").
const OWNER_FILE: &str = "owner";

/// How long etcd may take to become healthy.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How many times to retry when a port picked as free was taken before etcd bound it.
const PORT_ATTEMPTS: usize = 5;

/// A running etcd, killed (and its data directory removed) on drop.
#[derive(Debug)]
pub struct EtcdProcess {
    child: Option<Child>,
    client_port: u16,
    dir: TempDir,
}

impl EtcdProcess {
    /// Starts a single-member etcd on loopback and waits until it answers.
    ///
    /// # Panics
    /// When etcd is not installed (with a message saying how to install it), or when it does
    /// not start (with the tail of its log).
    pub fn start() -> EtcdProcess {
        EtcdProcess::launch(&default_binary(), None)
    }

    /// Like [`EtcdProcess::start`], with the data directory under `parent` instead of
    /// `/dev/shm`: for measurements that should pay for fsync like a real deployment.
    pub fn start_in(parent: &Path) -> EtcdProcess {
        EtcdProcess::launch(&default_binary(), Some(parent))
    }

    /// Like [`EtcdProcess::start`], with the etcd binary given explicitly (a name looked up on
    /// `PATH`, or a path).
    pub fn start_binary(binary: impl AsRef<OsStr>) -> EtcdProcess {
        EtcdProcess::launch(binary.as_ref(), None)
    }

    fn launch(binary: &OsStr, parent: Option<&Path>) -> EtcdProcess {
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let dir = temp_dir(parent);
            let (client_port, peer_port) = free_ports();
            let log_path = dir.path().join("etcd.log");
            let log = File::create(&log_path)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
            let log_err = log
                .try_clone()
                .unwrap_or_else(|e| panic!("cannot clone log file handle: {e}"));
            let client_url = format!("http://127.0.0.1:{client_port}");
            let peer_url = format!("http://127.0.0.1:{peer_port}");
            let spawned = Command::new(binary)
                .arg("--name=slipway-test")
                .arg(format!("--data-dir={}", dir.path().join("data").display()))
                .arg(format!("--listen-client-urls={client_url}"))
                .arg(format!("--advertise-client-urls={client_url}"))
                .arg(format!("--listen-peer-urls={peer_url}"))
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .arg(format!("--initial-cluster=slipway-test={peer_url}"))
                .arg("--initial-cluster-state=new")
                .arg("--logger=zap")
                .arg("--log-outputs=stderr")
                .arg("--log-level=warn")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .spawn();
            let child = match spawned {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                    "etcd is not installed: no `{}` on PATH. Install Debian's `etcd-server` \
                     package (`sudo apt-get install etcd-server`; scripts/test installs it), \
                     or point {ETCD_BIN_ENV} at an etcd binary.",
                    binary.to_string_lossy()
                ),
                Err(e) => panic!("cannot run {}: {e}", binary.to_string_lossy()),
            };
            // Lets a later run clean up after this one if it dies without dropping us.
            let _ = std::fs::write(
                dir.path().join(OWNER_FILE),
                format!("{} {}", std::process::id(), child.id()),
            );
            let mut process = EtcdProcess {
                child: Some(child),
                client_port,
                dir,
            };
            match process.wait_healthy(&log_path) {
                Ok(()) => return process,
                Err(log) if log.contains("address already in use") => last_log = log,
                Err(log) => panic!(
                    "etcd did not start (binary {}); its log:\n{log}",
                    binary.to_string_lossy()
                ),
            }
        }
        panic!("etcd could not bind free ports in {PORT_ATTEMPTS} attempts; last log:\n{last_log}")
    }

    /// The client URLs to give [`crate::EtcdStore::connect`].
    pub fn endpoints(&self) -> Vec<String> {
        vec![format!("http://127.0.0.1:{}", self.client_port)]
    }

    /// The data directory's parent (holding `data/` and `etcd.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills etcd now (e.g. to test how clients behave when it goes away).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until etcd's `/health` says it is healthy; on failure returns its log.
    fn wait_healthy(&mut self, log_path: &Path) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!(
                    "(etcd exited with {status})\n{}",
                    read_log(log_path)
                ));
            }
            if healthy(self.client_port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!(
                    "(not healthy after {START_TIMEOUT:?})\n{}",
                    read_log(log_path)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn default_binary() -> OsString {
    std::env::var_os(ETCD_BIN_ENV).unwrap_or_else(|| "etcd".into())
}

fn temp_dir(parent: Option<&Path>) -> TempDir {
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix(DIR_PREFIX);
        b
    };
    if let Some(parent) = parent {
        sweep_stale(parent);
        return builder.tempdir_in(parent).unwrap_or_else(|e| {
            panic!(
                "cannot create a directory for etcd in {}: {e}",
                parent.display()
            )
        });
    }
    let shm = PathBuf::from("/dev/shm");
    sweep_stale(&shm);
    if shm.is_dir()
        && let Ok(dir) = builder.tempdir_in(&shm)
    {
        return dir;
    }
    builder
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a temporary directory for etcd: {e}"))
}

/// Removes the directories of earlier etcd processes whose test process and etcd are both
/// gone (a test run killed before it could drop its `EtcdProcess`). In `/dev/shm` each one
/// holds a preallocated 64 MiB WAL in memory. Liveness is read from `/proc`; without it
/// nothing is removed.
fn sweep_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let alive = |pid: &u32| Path::new("/proc").join(pid.to_string()).exists();
    if !Path::new("/proc/self").exists() {
        return;
    }
    for entry in entries.flatten() {
        let path = entry.path();
        let is_ours = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(DIR_PREFIX));
        if !is_ours {
            continue;
        }
        let Ok(owner) = std::fs::read_to_string(path.join(OWNER_FILE)) else {
            continue;
        };
        let pids: Option<Vec<u32>> = owner.split_whitespace().map(|p| p.parse().ok()).collect();
        if let Some(pids) = pids
            && pids.len() == 2
            && !pids.iter().any(alive)
        {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Two distinct ports free right now (etcd binds them a moment later; `start` retries if
/// another process was faster).
fn free_ports() -> (u16, u16) {
    let bind = || {
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("cannot bind a free port on 127.0.0.1: {e}"))
    };
    let (a, b) = (bind(), bind());
    let port = |l: &TcpListener| {
        l.local_addr()
            .unwrap_or_else(|e| panic!("cannot read a bound port: {e}"))
            .port()
    };
    (port(&a), port(&b))
}

fn healthy(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut conn) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if conn.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = conn.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200") && response.contains(r#""health":"true""#)
}

fn read_log(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
