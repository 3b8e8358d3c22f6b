//! Hosting of the simulated workload clusters.
//!
//! Every simulated cluster gets its own logical Kubernetes API: a
//! [`Registry`] under its own key root (`/clusters/<name>/registry/`) in one
//! store shared by all of them, served by the same API server code as the platform behind one
//! HTTPS listener at `https://HOST:PORT/clusters/<name>` ([`slipway_apiserver::tenants`]).
//! That store is the simulator's, apart from the platform's: the clusters outlive the control
//! plane that manages them.
//!
//! Which clusters exist, and the SHA-256 of the admin token each accepts, is recorded in the
//! same store (under `/simhost/clusters/`), so a restart serves every cluster again with the
//! same credentials. Creating a cluster is idempotent; deleting one removes its objects.

/// The bootstrap contract with whoever creates machines: `/etc/slipway/bootstrap.json` in
/// the cloud-init user data ([`slipway_bootstrap`], re-exported under its old path).
pub use slipway_bootstrap as bootstrap;
pub mod machines;
pub mod scenario;
pub mod workloads;
pub mod world;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use slipway_apimachinery::ResourceDef;
use slipway_apiserver::pki::{self, User};
use slipway_apiserver::tenants::{Tenants, path_prefix};
use slipway_apiserver::{Surface, spawn_https};
use slipway_registry::cache::SharedWatch;
use slipway_registry::keys::Keys;
use slipway_registry::{Registry, RegistryConfig, keys};
use slipway_store::sqlite::{Durability, SqliteStore};
use slipway_store::{ListOptions, Store, StoreError};
use tokio::net::TcpListener;

/// Where cluster registrations live in the store (outside every cluster's root).
const CLUSTERS_PREFIX: &str = "/simhost/clusters/";

/// How the host runs.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The simulator's data directory: the store (`workloads.db`) and TLS material (`pki/`).
    pub dir: PathBuf,
    /// Where the workload clusters' APIs listen.
    pub listen: SocketAddr,
    /// Compact the shared store every interval (to the revision seen one interval earlier).
    pub compaction_interval: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(
        "cluster name {0:?} is not valid: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters"
    )]
    InvalidName(String),
    #[error("cluster {0:?} not found")]
    NotFound(String),
    #[error("the admin token hash must be 64 hex digits (SHA-256)")]
    InvalidTokenHash,
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("registry of cluster {cluster:?}: {message}")]
    Registry { cluster: String, message: String },
    #[error("serving: {0}")]
    Serve(#[from] slipway_apiserver::ServeError),
    #[error("TLS material: {0}")]
    Pki(#[from] pki::PkiError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt registration of cluster {cluster:?}: {message}")]
    Corrupt { cluster: String, message: String },
}

/// What is recorded about a hosted cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    pub name: String,
    /// Hex SHA-256 of the admin bearer token the cluster's API accepts.
    pub admin_token_sha256: String,
}

/// The workload clusters of the simulator and the listener serving them.
pub struct WorkloadHost {
    store: Arc<dyn Store>,
    sqlite: Arc<SqliteStore>,
    defs: Vec<Arc<ResourceDef>>,
    tenants: Arc<Tenants>,
    /// The one store watch every cluster's watch cache is fed from.
    shared_watch: Arc<SharedWatch>,
    base_url: String,
    ca_pem: String,
    local_addr: SocketAddr,
    /// Serialises creations and deletions (registrations and tenants change together).
    lifecycle: tokio::sync::Mutex<()>,
    serving: AbortOnDrop,
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl WorkloadHost {
    /// Open the store in `config.dir`, serve every registered cluster again, and listen.
    /// `defs` are the kinds each cluster serves.
    pub async fn start(config: HostConfig, defs: Vec<ResourceDef>) -> Result<Arc<Self>, HostError> {
        std::fs::create_dir_all(&config.dir).map_err(|e| HostError::Io {
            path: config.dir.clone(),
            source: e,
        })?;
        // The simulated clusters' state survives the process being killed; like a real
        // cluster's etcd it is not the platform's record, so it skips the fsync per commit.
        let sqlite = Arc::new(SqliteStore::open_with(
            &config.dir.join("workloads.db"),
            Durability::ProcessCrash,
        )?);
        let store: Arc<dyn Store> = Arc::clone(&sqlite) as Arc<dyn Store>;
        let defs: Vec<Arc<ResourceDef>> = defs.into_iter().map(Arc::new).collect();
        let tenants = Tenants::new(Surface::new(&defs));
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| HostError::Bind {
                addr: config.listen,
                source: e,
            })?;
        let local_addr = listener.local_addr().map_err(|e| HostError::Bind {
            addr: config.listen,
            source: e,
        })?;
        let cert = pki::ensure_serving_cert(&config.dir, &pki::serving_names(local_addr))?;
        let mut tasks = vec![spawn_https(listener, &cert, tenants.router())?];
        if let Some(interval) = config.compaction_interval {
            tasks.push(tokio::spawn(compaction_loop(Arc::clone(&store), interval)));
        }
        let shared_watch = SharedWatch::start(Arc::clone(&store), keys::LOGICAL_CLUSTERS).await?;
        let host = Arc::new(Self {
            store,
            sqlite,
            defs,
            tenants,
            shared_watch,
            base_url: pki::client_url(local_addr),
            ca_pem: cert.ca_pem,
            local_addr,
            lifecycle: tokio::sync::Mutex::new(()),
            serving: AbortOnDrop(tasks),
        });
        for registration in host.registrations().await? {
            host.serve(&registration).await?;
        }
        Ok(host)
    }

    /// Stop serving every cluster and close the store (a clean stop; a crash is safe too).
    /// The host answers nothing afterwards.
    pub async fn shutdown(&self) {
        let _guard = self.lifecycle.lock().await;
        for name in self.tenants.names() {
            self.tenants.remove(&name);
        }
        for task in &self.serving.0 {
            task.abort();
        }
        let sqlite = Arc::clone(&self.sqlite);
        let _ = tokio::task::spawn_blocking(move || sqlite.close()).await;
    }

    /// The address the clusters' APIs listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The CA that signs the listener's certificate (what a kubeconfig must trust).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Every cluster's API as the HTTPS listener serves it (paths under
    /// `/clusters/<name>`, bearer-token authentication, 503 while a cluster is down), as a
    /// router for a client in this same process to call without a socket or TLS.
    pub fn in_process_api(&self) -> axum::Router {
        self.tenants.router()
    }

    /// The URL every cluster's API is under (`<base>/clusters/<name>`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The API endpoint of cluster `name`.
    pub fn endpoint(&self, name: &str) -> String {
        format!("{}{}", self.base_url, path_prefix(name))
    }

    /// A kubeconfig for cluster `name` authenticating with `token`.
    pub fn kubeconfig(&self, name: &str, token: &str) -> String {
        pki::render_kubeconfig(name, &self.endpoint(name), &self.ca_pem, "admin", token)
    }

    /// The shared store (for tests and the scale benchmark's accounting).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Every registered cluster, by name.
    pub async fn registrations(&self) -> Result<Vec<Registration>, HostError> {
        let mut out = Vec::new();
        let mut start_after = None;
        loop {
            let page = self
                .store
                .list(
                    CLUSTERS_PREFIX,
                    ListOptions {
                        start_after: start_after.clone(),
                        limit: Some(1000),
                        ..Default::default()
                    },
                )
                .await?;
            for kv in &page.items {
                let cluster = kv.key.trim_start_matches(CLUSTERS_PREFIX).to_string();
                let registration: Registration =
                    serde_json::from_slice(&kv.value).map_err(|e| HostError::Corrupt {
                        cluster,
                        message: e.to_string(),
                    })?;
                out.push(registration);
            }
            if !page.more {
                return Ok(out);
            }
            start_after = page.items.last().map(|kv| kv.key.clone());
        }
    }

    /// Create cluster `name` accepting the admin token whose SHA-256 is `admin_token_sha256`,
    /// or return the existing one (whose token is left as it was). Returns its registry.
    pub async fn ensure_cluster(
        &self,
        name: &str,
        admin_token_sha256: &str,
    ) -> Result<Arc<Registry>, HostError> {
        validate_name(name)?;
        if hex::decode(admin_token_sha256).map(|b| b.len()) != Ok(32) {
            return Err(HostError::InvalidTokenHash);
        }
        let _guard = self.lifecycle.lock().await;
        if let Some(registry) = self.tenants.registry(name) {
            return Ok(registry);
        }
        let registration = Registration {
            name: name.to_string(),
            admin_token_sha256: admin_token_sha256.to_ascii_lowercase(),
        };
        let value = serde_json::to_vec(&registration).map_err(|e| HostError::Corrupt {
            cluster: name.to_string(),
            message: e.to_string(),
        })?;
        match self
            .store
            .create(&registration_key(name), Bytes::from(value))
            .await
        {
            Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        // Serve what is recorded (an earlier registration wins over this call's token).
        let recorded = self
            .store
            .get(&registration_key(name))
            .await?
            .ok_or_else(|| HostError::NotFound(name.to_string()))?;
        let recorded: Registration =
            serde_json::from_slice(&recorded.value).map_err(|e| HostError::Corrupt {
                cluster: name.to_string(),
                message: e.to_string(),
            })?;
        self.serve(&recorded).await
    }

    /// The registry of cluster `name`, if it is hosted.
    pub fn registry(&self, name: &str) -> Option<Arc<Registry>> {
        self.tenants.registry(name)
    }

    /// Names of every hosted cluster.
    pub fn clusters(&self) -> Vec<String> {
        self.tenants.names()
    }

    /// Mark cluster `name`'s API down (`Some(reason)`: it answers 503) or up (`None`).
    pub fn set_unavailable(&self, name: &str, reason: Option<String>) -> bool {
        self.tenants.set_unavailable(name, reason)
    }

    /// Whether cluster `name` answers requests.
    pub fn is_available(&self, name: &str) -> bool {
        self.tenants.is_available(name)
    }

    /// Delete cluster `name` and every object in it. Idempotent.
    pub async fn delete_cluster(&self, name: &str) -> Result<(), HostError> {
        let _guard = self.lifecycle.lock().await;
        let registry = self.tenants.remove(name);
        drop(registry);
        // The registration goes first: a crash half way leaves objects no cluster serves,
        // which the next deletion of that name (or a recreation) cleans up below.
        match self.store.delete(&registration_key(name), None).await {
            Ok(_) | Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let root = Keys::for_logical_cluster(name).root().to_string();
        loop {
            let page = self
                .store
                .list(
                    &root,
                    ListOptions {
                        limit: Some(1000),
                        ..Default::default()
                    },
                )
                .await?;
            if page.items.is_empty() {
                return Ok(());
            }
            for kv in &page.items {
                match self.store.delete(&kv.key, None).await {
                    Ok(_) | Err(StoreError::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }

    async fn serve(&self, registration: &Registration) -> Result<Arc<Registry>, HostError> {
        let name = &registration.name;
        if let Some(registry) = self.tenants.registry(name) {
            return Ok(registry);
        }
        let registry = Registry::start_shared(
            Arc::clone(&self.store),
            self.defs.clone(),
            RegistryConfig {
                // One compaction loop serves the whole shared store.
                compaction_interval: None,
                // A short window: thousands of clusters share the memory, and a window is
                // mostly superseded versions of busy objects (node and pod statuses). A
                // watcher further behind relists (410), as it would after a compaction: a
                // cluster's few dozen objects. No event stays decoded: each holds two
                // versions of an object, the older superseded, and at thousands of settled
                // clusters those were a tenth of the memory. An event is broadcast decoded and
                // kept as the store's bytes; its object stays decoded only while a watcher or
                // a reader (the cluster's components, between passes) holds it.
                watch_window: 32,
                watch_decoded: 0,
                keys: Keys::for_logical_cluster(name),
                shared_watch: Some(Arc::clone(&self.shared_watch)),
                system_namespaces: ["default", "kube-system", "kube-public", "kube-node-lease"]
                    .map(String::from)
                    .to_vec(),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| HostError::Registry {
            cluster: name.clone(),
            message: e.message,
        })?;
        let tokens = pki::Tokens::single(
            &registration.admin_token_sha256,
            User {
                name: "admin".into(),
                groups: vec!["system:masters".into()],
            },
        )
        .ok_or(HostError::InvalidTokenHash)?;
        self.tenants.insert(name, Arc::clone(&registry), tokens);
        Ok(registry)
    }
}

fn registration_key(name: &str) -> String {
    format!("{CLUSTERS_PREFIX}{name}")
}

/// Cluster names become URL path segments and key segments: DNS-1123 subdomains.
fn validate_name(name: &str) -> Result<(), HostError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name
            .split('.')
            .all(|part| !part.is_empty() && !part.starts_with('-') && !part.ends_with('-'));
    if ok {
        Ok(())
    } else {
        Err(HostError::InvalidName(name.to_string()))
    }
}

async fn compaction_loop(store: Arc<dyn Store>, interval: Duration) {
    let mut previous = None;
    loop {
        tokio::time::sleep(interval).await;
        if let Some(target) = previous
            && let Err(e) = store.compact(target).await
        {
            tracing::warn!(error = %e, target, "compaction of the workload store failed");
        }
        previous = store.current_revision().await.ok();
    }
}

#[cfg(test)]
mod tests {
    use super::validate_name;

    #[test]
    fn names() {
        for good in ["a", "team-a.payments", "x1", "a.b-c.d"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "A", "a/b", "-a", "a-", "a..b", "a_b", ".a"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
