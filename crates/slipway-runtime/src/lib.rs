//! The controller runtime every Slipway control loop runs on, written against the
//! [`slipway_client::Client`] trait (so the same controller runs in-process or over HTTP).
//!
//! - [`reflector`]: [`Informer`]s keep a [`Store`] cache of one kind in step with the server
//!   by list + watch (resume from the last resourceVersion, relist on 410 Gone, back off on
//!   errors) and report "has synced".
//! - [`queue`]: the [`WorkQueue`]: de-duplication, at most one worker per key (a key added
//!   while in flight runs once more after), per-key exponential [`Backoff`] that resets on
//!   success, delayed adds, shutdown.
//! - [`controller`]: [`Controller`] ties informers for the primary kind, owned kinds
//!   (`ownerReferences` with `controller: true`) and related kinds (a mapper) to a queue and a
//!   concurrency-limited pool of reconcile workers; `reconcile(Arc<K>, Arc<Ctx>) ->
//!   Result<Action, E>`, an error policy, periodic resync, graceful shutdown with a deadline.
//! - [`metrics`]: per-controller Prometheus series (`prometheus-client`).
//! - [`leader`]: leader election on a `Lease` whose leader works through a *fenced* client:
//!   a replica that lost the lease cannot write, even before it notices.
//!
//! Modelled on kube-runtime (reflector/watcher/Controller) and client-go (workqueue,
//! leaderelection); the fencing is Slipway's own (see `slipway_registry::fence`).

pub mod controller;
pub mod leader;
pub mod metrics;
pub mod queue;
pub mod reflector;

pub use controller::{Action, Controller, ControllerConfig, owner_keys};
pub use leader::{Decision, LeaderElector, LeaderHandle, LeaseConfig, decide};
pub use metrics::Metrics;
pub use queue::{Backoff, WorkQueue};
pub use reflector::{Event, IndexFn, Informer, InformerConfig, Store};

/// The key of one object: its namespace (none for cluster-scoped kinds) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectKey {
    /// A key in `namespace`.
    pub fn namespaced(namespace: &str, name: &str) -> Self {
        Self {
            namespace: Some(namespace.to_string()),
            name: name.to_string(),
        }
    }

    /// The key of a cluster-scoped object.
    pub fn cluster(name: &str) -> Self {
        Self {
            namespace: None,
            name: name.to_string(),
        }
    }

    /// The key of `obj`.
    pub fn of<K: kube::Resource>(obj: &K) -> Self {
        let meta = obj.meta();
        Self {
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}
