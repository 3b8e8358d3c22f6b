//! The platform's control loops, written against the [`Client`] trait (the platform API) and
//! the [`Provider`] trait (infrastructure); workload clusters are reached only through their
//! Kubernetes API, with the kubeconfig the platform wrote for them.
//!
//! - [`cluster`]: a Cluster becomes a network with a subnet per zone, a load balancer in front
//!   of the API servers, an admin credential and its `<name>-kubeconfig` Secret, and Machines
//!   planned by `slipway_lifecycle` (zone-balanced, rolling replacement, failed machines
//!   replaced unless too much of the cluster is unhealthy); its status sums them up. Deleting
//!   it deletes the Machines first, then the infrastructure, then the Secret.
//! - [`machine`]: a Machine becomes a provider machine (created with the Machine's uid as
//!   idempotency key, its bootstrap user data rendered by `slipway_bootstrap`), whose node it
//!   follows in the workload cluster; deleting it drains the node through the Eviction API
//!   (PodDisruptionBudgets honoured, up to the cluster's drain timeout), then deletes the node
//!   and the provider machine.
//!
//! Every step is idempotent and level-triggered: killed at any point, a restart converges
//! without leaking or doubling anything (provider objects are found again by name, tag or
//! idempotency key before anything is created).

pub mod cluster;
pub mod events;
pub mod expectations;
pub mod ipam;
pub mod machine;
pub mod orphans;
mod workload;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use slipway_api::cluster::{Condition, ConditionStatus};
use slipway_client::Client;
use slipway_provider::{Catalog, Provider};

pub use workload::{CachedNode, NodeView, WorkloadClients};

/// The finalizer a Cluster carries until its machines and infrastructure are gone.
pub const CLUSTER_FINALIZER: &str = "slipway.dev/cluster";
/// The finalizer a Machine carries until its provider machine is gone.
pub const MACHINE_FINALIZER: &str = "slipway.dev/machine";
/// The field manager of every write the controllers make.
pub const MANAGER: &str = "slipway-controllers";
/// Annotation on the control-plane Machine that runs `kubeadm init`.
pub const INIT_ANNOTATION: &str = "slipway.dev/init";
/// Annotation on a Machine the Cluster controller deletes to replace it for failing (its
/// failure reason): while it is being deleted it holds one of the fleet-wide slots.
pub const REMEDIATION_ANNOTATION: &str = "slipway.dev/remediation";
/// Label on a Machine naming the template its group had when it was created.
pub const TEMPLATE_LABEL: &str = "slipway.dev/template-hash";

/// Tunables of the lifecycle controllers.
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    /// Reconciles in flight per controller.
    pub concurrency: usize,
    /// How soon to look again while something converges.
    pub poll: Duration,
    /// How often a converged object is looked at again (a safety net: changes arrive as
    /// events, from the platform API and from the workload clusters' Node watches).
    pub resync: Duration,
    /// Stop replacing failed machines of a cluster when more than this share of its machines
    /// is unhealthy (a zone outage must not trigger a replacement storm).
    pub max_unhealthy: f64,
    /// After replacement was held back for too many unhealthy machines, how long the
    /// unhealthy ones get to recover before they are replaced.
    pub remediation_settle: Duration,
    /// At most this many machines are being replaced for failing, fleet-wide.
    pub max_remediating: usize,
    /// When a running machine's node counts as failed.
    pub health: slipway_lifecycle::health::HealthTimeouts,
    /// A provider object tagged for a cluster or machine the platform no longer has is
    /// deleted once it is this old (a create may still be recording it).
    pub orphan_grace: Duration,
    /// How often the provider is swept for orphans.
    pub orphan_sweep: Duration,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            concurrency: 16,
            poll: Duration::from_secs(2),
            resync: Duration::from_secs(600),
            max_unhealthy: 0.4,
            remediation_settle: Duration::from_secs(10),
            max_remediating: 50,
            health: slipway_lifecycle::health::HealthTimeouts::default(),
            orphan_grace: Duration::from_secs(300),
            orphan_sweep: Duration::from_secs(300),
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: Arc<dyn Client>,
    pub provider: Arc<dyn Provider>,
    pub catalog: Catalog,
    pub workloads: WorkloadClients,
    pub config: LifecycleConfig,
    /// The controllers' Prometheus series (register them where `/metrics` is served).
    pub metrics: slipway_runtime::Metrics,
    /// Machines (`namespace/name`) this process decided to replace whose marking the cache may
    /// not show yet. The durable record is the Machine itself ([`REMEDIATION_ANNOTATION`]
    /// while it is deleted), so the slots survive a restart.
    remediating: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The Machine controller's cache of Machines, which the Cluster controller reads too
    /// (set when the Machine controller is built).
    pub(crate) machines: std::sync::OnceLock<slipway_runtime::Store<slipway_api::machine::Machine>>,
    /// The Cluster controller's cache of Clusters (set when it is built).
    pub(crate) clusters: std::sync::OnceLock<slipway_runtime::Store<slipway_api::cluster::Cluster>>,
    /// Machine creates and deletes the Cluster controller made that its cache may not show yet.
    pub(crate) expectations: expectations::Expectations,
    /// Per kubeconfig Secret (`namespace/name`): its uid and resourceVersion, and the
    /// credentials parsed from that version ([`Context::credentials`]).
    credentials: std::sync::Mutex<
        std::collections::HashMap<
            String,
            (slipway_client::ObjectVersion, Arc<cluster::Credentials>),
        >,
    >,
    /// Per Cluster uid: the generation whose network, subnets and load balancer were last
    /// found or made at the provider, when, and the load balancer.
    infrastructure: std::sync::Mutex<
        std::collections::HashMap<
            String,
            (i64, std::time::Instant, slipway_provider::LoadBalancer),
        >,
    >,
}

/// How long a Cluster's infrastructure, once found or made for its generation, is taken as
/// there without asking the provider again. The Cluster controller runs on every change of
/// any of its Machines; asking the provider for the network, subnets and load balancer each
/// time was most of a large fleet's build-up. Something deleted behind the platform's back
/// is made again within this long.
pub const INFRASTRUCTURE_RECHECK: Duration = Duration::from_secs(60);

impl Context {
    /// A context over the platform API `client` and `provider` (its catalog is read once).
    pub async fn new(
        client: Arc<dyn Client>,
        provider: Arc<dyn Provider>,
        config: LifecycleConfig,
    ) -> Result<Arc<Self>, Error> {
        let catalog = provider.catalog().await?;
        Ok(Arc::new(Self {
            client,
            provider,
            catalog,
            workloads: WorkloadClients::default(),
            config,
            metrics: slipway_runtime::Metrics::new(),
            remediating: std::sync::Mutex::new(std::collections::HashSet::new()),
            machines: std::sync::OnceLock::new(),
            clusters: std::sync::OnceLock::new(),
            expectations: expectations::Expectations::new(Duration::from_secs(60)),
            credentials: std::sync::Mutex::new(std::collections::HashMap::new()),
            infrastructure: std::sync::Mutex::new(std::collections::HashMap::new()),
        }))
    }

    /// Take a fleet-wide remediation slot for machine `key`; false when all are taken.
    ///
    /// Slots in use: Machines being deleted with [`REMEDIATION_ANNOTATION`] (from the cache,
    /// so after a restart too), plus this process's decisions the cache does not show yet.
    pub(crate) fn start_remediation(&self, key: &str) -> bool {
        let mut set = lock(&self.remediating);
        if set.contains(key) {
            return true;
        }
        let mut in_use: std::collections::HashSet<String> = self
            .machines
            .get()
            .map(|store| {
                store
                    .index_keys(REMEDIATIONS_INDEX, REMEDIATIONS_INDEX)
                    .iter()
                    .map(ToString::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if in_use.contains(key) {
            return true;
        }
        in_use.extend(set.iter().cloned());
        if in_use.len() >= self.config.max_remediating {
            return false;
        }
        set.insert(key.to_string());
        true
    }

    /// The credentials in cluster `cluster`'s `<name>-kubeconfig` Secret. Both controllers
    /// read them on nearly every reconcile: the Secret's version is read first (off the
    /// watch cache, undecoded, in process), and the Secret itself is read, decoded and parsed
    /// only when that version is one this context has not parsed yet.
    pub(crate) async fn credentials(
        &self,
        ns: &str,
        cluster: &str,
    ) -> Result<cluster::SecretCredentials, Error> {
        use cluster::SecretCredentials;
        let name = cluster::kubeconfig_secret_name(cluster);
        let key = format!("{ns}/{name}");
        let res = slipway_client::ApiResource::of::<k8s_openapi::api::core::v1::Secret>();
        let missing = |e: &slipway_client::Error| {
            let gone = e.is_not_found();
            if gone {
                lock(&self.credentials).remove(&key);
            }
            gone
        };
        let version = match self.client.get_version(&res, Some(ns), &name).await {
            Ok(v) => v,
            Err(e) if missing(&e) => return Ok(SecretCredentials::Missing),
            Err(e) => return Err(e.into()),
        };
        if let Some((seen, credentials)) = lock(&self.credentials).get(&key)
            && *seen == version
        {
            return Ok(SecretCredentials::Found(Arc::clone(credentials)));
        }
        let shared = match self.client.get(&res, Some(ns), &name).await {
            Ok(s) => s,
            Err(e) if missing(&e) => return Ok(SecretCredentials::Missing),
            Err(e) => return Err(e.into()),
        };
        // The version of what was read, which may be newer than the one asked about.
        let version = slipway_client::ObjectVersion::of(&shared);
        let secret: k8s_openapi::api::core::v1::Secret = serde::Deserialize::deserialize(&*shared)
            .map_err(|e| Error::Invalid(format!("Secret {key} does not decode: {e}")))?;
        let Some(credentials) = cluster::Credentials::from_secret(&secret).map(Arc::new) else {
            lock(&self.credentials).remove(&key);
            return Ok(SecretCredentials::Unreadable);
        };
        lock(&self.credentials).insert(key, (version, Arc::clone(&credentials)));
        Ok(SecretCredentials::Found(credentials))
    }

    /// The load balancer of the Cluster with `uid`, when its infrastructure was found or made
    /// for `generation` less than [`INFRASTRUCTURE_RECHECK`] ago.
    pub(crate) fn verified_infrastructure(
        &self,
        uid: &str,
        generation: i64,
    ) -> Option<slipway_provider::LoadBalancer> {
        lock(&self.infrastructure)
            .get(uid)
            .filter(|(g, at, _)| *g == generation && at.elapsed() < INFRASTRUCTURE_RECHECK)
            .map(|(_, _, lb)| lb.clone())
    }

    /// Record that the Cluster with `uid` has its infrastructure for `generation`, now.
    pub(crate) fn infrastructure_verified(
        &self,
        uid: &str,
        generation: i64,
        lb: &slipway_provider::LoadBalancer,
    ) {
        lock(&self.infrastructure).insert(
            uid.to_string(),
            (generation, std::time::Instant::now(), lb.clone()),
        );
    }

    /// Forget the Cluster with `uid`'s infrastructure (it is being deleted).
    pub(crate) fn forget_infrastructure(&self, uid: &str) {
        lock(&self.infrastructure).remove(uid);
    }

    /// Forget cluster `cluster`'s parsed credentials (it is gone).
    pub(crate) fn forget_credentials(&self, ns: &str, cluster: &str) {
        lock(&self.credentials).remove(&format!(
            "{ns}/{}",
            cluster::kubeconfig_secret_name(cluster)
        ));
    }

    /// Where the fleet's Machines are, from the Cluster controller's cache (a pass over it:
    /// for progress reports, not for reconciles).
    pub fn machine_progress(&self) -> MachineProgress {
        let mut p = MachineProgress::default();
        let Some(store) = self.machines.get() else {
            return p;
        };
        for m in store.state() {
            p.total += 1;
            let status = m.status.as_ref();
            if m.metadata.deletion_timestamp.is_some() {
                p.deleting += 1;
            } else if status.and_then(|s| s.phase)
                == Some(slipway_api::machine::MachinePhase::Failed)
            {
                p.failed += 1;
            } else if status.is_some_and(|s| is_true(s.conditions.as_ref(), "Ready")) {
                p.ready += 1;
            } else if status.is_some_and(|s| s.node_name.is_some()) {
                p.registered += 1;
            } else if status.is_some_and(|s| s.running_since.is_some()) {
                p.running += 1;
            }
        }
        p
    }

    /// The runtime tunables every controller of this context runs with.
    pub(crate) fn controller_config(&self) -> slipway_runtime::ControllerConfig {
        slipway_runtime::ControllerConfig {
            concurrency: self.config.concurrency,
            resync: Some(self.config.resync),
            ..slipway_runtime::ControllerConfig::default()
        }
    }

    /// Give back machine `key`'s slot (it is gone).
    pub(crate) fn end_remediation(&self, key: &str) {
        lock(&self.remediating).remove(key);
    }
}

/// The Machine cache's index of the Machines holding a fleet-wide remediation slot on
/// record (its one value is its name too), so that counting them costs what they are, not
/// the whole fleet.
pub(crate) const REMEDIATIONS_INDEX: &str = "remediating";

/// Files a Machine under [`REMEDIATIONS_INDEX`] while it holds a slot: being deleted, marked
/// with [`REMEDIATION_ANNOTATION`].
pub(crate) fn remediation_on_record(m: &slipway_api::machine::Machine) -> Vec<String> {
    let marked = m.metadata.deletion_timestamp.is_some()
        && m.metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(REMEDIATION_ANNOTATION));
    if marked {
        vec![REMEDIATIONS_INDEX.to_string()]
    } else {
        Vec::new()
    }
}

/// How many of the fleet's Machines are at each step ([`Context::machine_progress`]); each
/// Machine counts once, at the furthest step it reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MachineProgress {
    pub total: usize,
    /// Running at the provider, no node registered yet.
    pub running: usize,
    /// The node registered, not Ready.
    pub registered: usize,
    /// The node is Ready.
    pub ready: usize,
    pub failed: usize,
    pub deleting: usize,
}

/// Why a reconcile failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("platform API: {0}")]
    Api(#[from] slipway_client::Error),
    #[error("provider: {0}")]
    Provider(#[from] slipway_provider::ProviderError),
    #[error("workload cluster {cluster}: {message}")]
    Workload { cluster: String, message: String },
    #[error("bootstrap: {0}")]
    Bootstrap(#[from] slipway_bootstrap::RenderError),
    #[error("{0}")]
    Invalid(String),
}

/// Run the Cluster and Machine controllers until `shutdown` completes.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stop = move || {
        let mut rx = rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    // One watch and one cache of Machines: the Machine controller's, whose events also
    // wake the Cluster controller for the Cluster that owns the Machine.
    let mut machine_controller = machine::controller(Arc::clone(&ctx));
    let machine_events = machine_controller.subscribe();
    let clusters = tokio::spawn(cluster::controller(Arc::clone(&ctx), machine_events).run(
        cluster::reconcile,
        cluster::error_policy,
        Arc::clone(&ctx),
        stop(),
    ));
    let machines = tokio::spawn(machine_controller.run(
        machine::reconcile,
        machine::error_policy,
        Arc::clone(&ctx),
        stop(),
    ));
    let pools = tokio::spawn(ipam::controller(Arc::clone(&ctx)).run(
        ipam::reconcile,
        ipam::error_policy,
        Arc::clone(&ctx),
        stop(),
    ));
    let sweeper = tokio::spawn(orphans::run(Arc::clone(&ctx)));
    shutdown.await;
    let _ = tx.send(true);
    sweeper.abort();
    let _ = clusters.await;
    let _ = machines.await;
    let _ = pools.await;
}

/// Write `obj`'s finalizers with `finalizer` added (`add`) or removed, under optimistic
/// concurrency on its resourceVersion. Nothing to do: no write.
pub(crate) async fn set_finalizer<K>(
    api: &slipway_client::Api<K>,
    obj: &K,
    finalizer: &str,
    add: bool,
) -> Result<(), Error>
where
    K: kube::Resource<DynamicType = ()>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + Send
        + 'static,
    K::Scope: 'static,
{
    use kube::ResourceExt;
    let has = obj.finalizers().iter().any(|f| f == finalizer);
    if has == add {
        return Ok(());
    }
    let mut finalizers: Vec<String> = obj
        .finalizers()
        .iter()
        .filter(|f| *f != finalizer)
        .cloned()
        .collect();
    if add {
        finalizers.push(finalizer.to_string());
    }
    api.patch(
        &obj.name_any(),
        &slipway_client::PatchParams::default(),
        &slipway_client::Patch::Merge(serde_json::json!({"metadata": {
            "finalizers": finalizers,
            "resourceVersion": obj.resource_version(),
        }})),
    )
    .await?;
    Ok(())
}

/// `mutex`'s guard; a panic elsewhere while it was held leaves what it guards usable (each
/// holder leaves it consistent at every step).
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Write `status` onto `obj` through `/status` unless it is what `obj` already has; whether
/// it wrote.
pub(crate) async fn write_status<K, S>(
    api: &slipway_client::Api<K>,
    obj: &K,
    current: Option<&S>,
    status: S,
) -> Result<bool, Error>
where
    K: kube::Resource<DynamicType = ()>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + Send
        + 'static,
    K::Scope: 'static,
    S: PartialEq + serde::Serialize,
{
    use kube::ResourceExt;
    if current == Some(&status) {
        return Ok(false);
    }
    api.patch_status_value(
        &obj.name_any(),
        &slipway_client::PatchParams::default(),
        &slipway_client::Patch::Merge(serde_json::json!({"status": status})),
    )
    .await?;
    Ok(true)
}

/// A provider delete that found nothing to delete succeeded.
pub(crate) fn deleted(
    r: Result<(), slipway_provider::ProviderError>,
) -> Result<(), slipway_provider::ProviderError> {
    match r {
        Ok(()) | Err(slipway_provider::ProviderError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Delete `name` through `api`; true when this call deleted it, false when it was already
/// gone.
pub(crate) async fn delete_if_present<K>(
    api: &slipway_client::Api<K>,
    name: &str,
) -> Result<bool, Error>
where
    K: kube::Resource<DynamicType = ()>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + Send
        + 'static,
    K::Scope: 'static,
{
    match api
        .delete(name, &slipway_client::DeleteParams::default())
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Set condition `type_` in `conditions`, keeping its transition time unless the status
/// changes.
pub(crate) fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) {
    let status = if status {
        ConditionStatus::True
    } else {
        ConditionStatus::False
    };
    let message = message.into();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Some(now());
            }
            c.status = status;
            c.reason = Some(reason.to_string());
            c.message = Some(message);
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_string(),
            status,
            reason: Some(reason.to_string()),
            message: Some(message),
            last_transition_time: Some(now()),
            observed_generation: generation,
        }),
    }
}

/// Whether condition `type_` is True.
pub(crate) fn is_true(conditions: Option<&Vec<Condition>>, type_: &str) -> bool {
    conditions
        .into_iter()
        .flatten()
        .any(|c| c.type_ == type_ && c.status == ConditionStatus::True)
}

pub(crate) fn now() -> Time {
    api_time(jiff::Timestamp::now())
}

/// `t` as the API keeps it: whole seconds (a `Time` is serialized without its fraction).
/// A status computed with a finer time never equals the one read back, so every reconcile
/// would send a patch that changes nothing (and costs a server-side field-tracking pass).
pub(crate) fn api_time(t: jiff::Timestamp) -> Time {
    Time(jiff::Timestamp::from_second(t.as_second()).unwrap_or(t))
}

/// The workload cluster's identity at the provider and in its bootstrap: `<namespace>.<name>`
/// (unique in the fleet, a DNS subdomain).
pub fn identity(namespace: &str, name: &str) -> String {
    format!("{namespace}.{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A time the controllers compute is the one they read back.
    #[test]
    fn api_times_survive_a_round_trip() {
        let t = jiff::Timestamp::from_second(1_765_000_000)
            .expect("time")
            .checked_add(jiff::SignedDuration::from_millis(750))
            .expect("time");
        let kept = api_time(t);
        let json = serde_json::to_value(&kept).expect("serialize");
        let back: Time = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, kept);
        assert_eq!(kept.0.as_second(), 1_765_000_000);
        assert_ne!(Time(t), back, "a finer time does not survive");
    }
    use slipway_api::machine::{Machine, MachineRole, MachineSpec};

    fn machine(name: &str, marked: bool, deleting: bool) -> Machine {
        let mut m = Machine::new(
            name,
            MachineSpec {
                cluster_name: "c".into(),
                role: MachineRole::Worker,
                pool: Some("p".into()),
                zone: "eu-west-1a".into(),
                machine_type: "m5.large".into(),
                capacity_type: None,
                fallback_to_on_demand: None,
                version: "1.33.4".into(),
                node_labels: None,
                node_taints: None,
            },
        );
        m.metadata.namespace = Some("team".into());
        if marked {
            m.metadata.annotations = Some(
                [(REMEDIATION_ANNOTATION.to_string(), "NodeUnhealthy".into())]
                    .into_iter()
                    .collect(),
            );
        }
        if deleting {
            m.metadata.deletion_timestamp = Some(now());
        }
        m
    }

    /// A context over an in-process registry and a zero-delay simulated cloud.
    async fn context(dir: &std::path::Path) -> Arc<Context> {
        let store: Arc<dyn slipway_store::Store> = Arc::new(
            slipway_store::sqlite::SqliteStore::open(&dir.join("platform.db")).expect("store"),
        );
        let registry = slipway_registry::Registry::start(
            store,
            slipway_api::resources(),
            slipway_registry::RegistryConfig::default(),
        )
        .await
        .expect("registry");
        let cloud = slipway_sim::SimCloud::open(dir, slipway_sim::SimConfig::instant())
            .await
            .expect("cloud");
        Context::new(
            Arc::new(slipway_client::InProcess::new(registry)),
            cloud,
            LifecycleConfig::default(),
        )
        .await
        .expect("context")
    }

    fn kubeconfig_secret(data: &[(&str, &str)]) -> k8s_openapi::api::core::v1::Secret {
        k8s_openapi::api::core::v1::Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(cluster::kubeconfig_secret_name("c1")),
                namespace: Some("team".into()),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| {
                        (
                            (*k).to_string(),
                            k8s_openapi::ByteString(v.as_bytes().to_vec()),
                        )
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    /// Credentials are parsed once per version of the Secret: a new version (another token,
    /// missing keys, the Secret gone) is seen on the next read.
    #[tokio::test]
    async fn credentials_follow_every_version_of_the_secret() {
        use cluster::SecretCredentials;
        use slipway_client::{Api, PostParams};
        let dir = tempfile::tempdir().expect("temp dir");
        let ctx = context(dir.path()).await;
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> =
            Api::all(Arc::clone(&ctx.client));
        let mut ns = k8s_openapi::api::core::v1::Namespace::default();
        ns.metadata.name = Some("team".into());
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace");
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(Arc::clone(&ctx.client), "team");
        let token = |c: &SecretCredentials| match c {
            SecretCredentials::Found(c) => c.admin_token.clone(),
            SecretCredentials::Missing => "missing".into(),
            SecretCredentials::Unreadable => "unreadable".into(),
        };
        let read = || async { ctx.credentials("team", "c1").await.expect("read") };
        assert_eq!(token(&read().await), "missing");

        let full = [
            ("value", "kubeconfig"),
            ("token", "t1"),
            ("bootstrap-token", "b"),
        ];
        secrets
            .create(&PostParams::default(), &kubeconfig_secret(&full))
            .await
            .expect("create");
        let (SecretCredentials::Found(first), SecretCredentials::Found(again)) =
            (read().await, read().await)
        else {
            panic!("credentials expected");
        };
        assert_eq!(first.admin_token, "t1");
        assert!(
            Arc::ptr_eq(&first, &again),
            "the same version is parsed once"
        );

        let name = cluster::kubeconfig_secret_name("c1");
        let rotated = [
            ("value", "kubeconfig"),
            ("token", "t2"),
            ("bootstrap-token", "b"),
        ];
        secrets
            .replace(&name, &PostParams::default(), &kubeconfig_secret(&rotated))
            .await
            .expect("replace");
        assert_eq!(token(&read().await), "t2");

        secrets
            .replace(
                &name,
                &PostParams::default(),
                &kubeconfig_secret(&[("value", "kubeconfig"), ("token", "t3")]),
            )
            .await
            .expect("replace");
        assert_eq!(token(&read().await), "unreadable");

        secrets
            .delete(&name, &Default::default())
            .await
            .expect("delete");
        assert_eq!(token(&read().await), "missing");
    }

    #[test]
    fn slots_on_record_are_marked_machines_being_deleted() {
        let machines = [
            machine("a", true, true),
            // Marked, the delete not landed yet: the in-process reservation covers it.
            machine("b", true, false),
            // Deleted for another reason (scale down, rollout): no slot.
            machine("c", false, true),
            machine("d", false, false),
        ];
        let on_record: Vec<&str> = machines
            .iter()
            .filter(|m| !remediation_on_record(m).is_empty())
            .filter_map(|m| m.metadata.name.as_deref())
            .collect();
        assert_eq!(on_record, ["a"]);
    }
}
