//! The driver of the simulated workload clusters: follows the cloud's machines and keeps each
//! cluster's API, Nodes and workloads moving.
//!
//! - [`World::run`] follows the simulated cloud ([`SimCloud::subscribe`]; when it lags, and
//!   every few minutes, it looks at every cluster, and [`SimCloud::cluster_revision`] tells
//!   which changed) and applies [`machines::plan`] to each cluster whose machines or objects
//!   changed: create the cluster's API, mark it down without quorum, register and update
//!   Nodes, remove Nodes of machines that are gone, delete the cluster when its control plane
//!   is gone. Clusters are synced as their changes come, many at once, while the events keep
//!   being taken.
//! - For every hosted cluster a task runs the in-cluster components
//!   ([`workloads::reconcile`]) whenever one of its objects changes, straight against its
//!   registry (the simulator is the cluster's own control plane, not a client of it).
//!
//! Everything is level-triggered: a pass recomputes from the current state, so a restart, a
//! lost event or a conflicting write only delays convergence.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use slipway_apimachinery::ApiError;
use slipway_provider::{CLUSTER_TAG, Catalog, Machine};
use slipway_registry::{DeleteOptions, ListParams, Registry, Subresource, WriteOptions};
use slipway_sim::SimCloud;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::WorkloadHost;
use crate::bootstrap::Bootstrap;
use crate::machines::{self, Known, NODE_MACHINE_LABEL};
use crate::workloads::{self, Kind, Snapshot, Write};

const MANAGER: &str = "slipway-sim";

/// Clusters the World syncs at once.
const SYNC_CONCURRENCY: usize = 64;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How long a cluster whose sync failed waits before it is synced again.
const RETRY: Duration = Duration::from_millis(200);

/// Clusters waiting for a sync, oldest first, each once.
#[derive(Default)]
struct Pending {
    order: std::collections::VecDeque<String>,
    queued: HashSet<String>,
}

impl Pending {
    fn push(&mut self, cluster: String) {
        if self.queued.insert(cluster.clone()) {
            self.order.push_back(cluster);
        }
    }

    fn pop(&mut self) -> Option<String> {
        let cluster = self.order.pop_front()?;
        self.queued.remove(&cluster);
        Some(cluster)
    }
}

/// Writes of one in-cluster pass in flight at once.
const WRITE_CONCURRENCY: usize = 32;

/// The simulated clusters on top of a simulated cloud.
pub struct World {
    /// The pin (`caCertHashes`) of the CA the simulated clusters' APIs serve with.
    ca_pin: String,
    host: Arc<WorkloadHost>,
    cloud: Arc<SimCloud>,
    catalog: Catalog,
    /// In-cluster component tasks by cluster.
    running: Mutex<HashMap<String, JoinHandle<()>>>,
    /// Parsed bootstrap documents by machine id (user data never changes).
    bootstraps: Mutex<HashMap<String, Option<Arc<Bootstrap>>>>,
    /// Per cluster, what its last successful sync started from: its machines' revision in
    /// the cloud ([`SimCloud::cluster_revision`]) and its registry's ownership epoch, which
    /// moves when an object is created or deleted (a Node or mirror pod deleted behind the
    /// simulator's back) but not with the status writes of the cluster's own components. A
    /// sync from the same inputs would write nothing, so it is skipped: a settled fleet's
    /// periodic pass plans nothing.
    synced: Mutex<HashMap<String, (Option<u64>, u64)>>,
    /// How often every cluster is looked at again, events or not.
    resync: Duration,
    /// Cluster syncs applied and skipped (nothing changed), for tests and benchmarks.
    applied: std::sync::atomic::AtomicU64,
    skipped: std::sync::atomic::AtomicU64,
}

impl Drop for World {
    fn drop(&mut self) {
        for (_, task) in self.lock_running().drain() {
            task.abort();
        }
    }
}

impl World {
    pub fn new(host: Arc<WorkloadHost>, cloud: Arc<SimCloud>) -> Arc<Self> {
        Self::with_resync(host, cloud, Duration::from_secs(300))
    }

    /// [`World::new`] with a full pass every `resync` instead of every five minutes.
    pub fn with_resync(
        host: Arc<WorkloadHost>,
        cloud: Arc<SimCloud>,
        resync: Duration,
    ) -> Arc<Self> {
        let catalog = cloud.sim_catalog().catalog.clone();
        // The clusters' load balancers lead to their APIs on this host.
        cloud.route_load_balancers(host.base_url(), host.ca_pem());
        // What a join's pin must be: the CA behind every simulated cluster's API.
        let ca_pin = crate::bootstrap::ca_cert_hash(host.ca_pem()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "the workload host's CA cannot be pinned: every pinned join fails");
            String::new()
        });
        Arc::new(Self {
            ca_pin,
            host,
            cloud,
            catalog,
            running: Mutex::new(HashMap::new()),
            bootstraps: Mutex::new(HashMap::new()),
            synced: Mutex::new(HashMap::new()),
            resync,
            applied: std::sync::atomic::AtomicU64::new(0),
            skipped: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// How many cluster syncs were applied, and how many skipped because neither the
    /// cluster's machines nor its objects had changed since the last one.
    pub fn sync_counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.applied.load(Relaxed), self.skipped.load(Relaxed))
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<String, JoinHandle<()>>> {
        lock(&self.running)
    }

    /// Follow the cloud until the task is aborted.
    pub fn spawn(self: &Arc<Self>) -> JoinHandle<()> {
        let world = Arc::clone(self);
        tokio::spawn(async move { world.run().await })
    }

    async fn run(self: Arc<Self>) {
        let mut events = self.cloud.subscribe();
        let mut pending = Pending::default();
        // Clusters being synced (by task), and those of them that changed again meanwhile.
        let mut in_flight: HashMap<tokio::task::Id, String> = HashMap::new();
        let mut again: HashSet<String> = HashSet::new();
        // Each sync is a task of its own: they spread over the runtime's threads.
        let mut syncs = tokio::task::JoinSet::new();
        // Clusters whose sync failed, looked at again after a pause.
        let mut failed: BTreeSet<String> = BTreeSet::new();
        let mut retry = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
        let mut full = true;
        // Events drive everything; the periodic full pass only repairs what was changed
        // behind the simulator's back (a Node deleted through the cluster's API), and skips
        // every cluster whose machines and objects are as they were, so it is cheap.
        let mut resync = tokio::time::interval(self.resync);
        loop {
            if full {
                for c in self.cloud.tag_values(CLUSTER_TAG) {
                    pending.push(c);
                }
                for c in self.host.clusters() {
                    pending.push(c);
                }
                // Tasks of clusters that are gone, and tasks that ended.
                self.ensure_components();
                full = false;
            }
            // Clusters are synced side by side, as they come: a sync waits on its writes'
            // commits, so one at a time would hold a fleet's build-up to one write per commit.
            // A cluster is synced by one sync at a time; a change during it queues another.
            while syncs.len() < SYNC_CONCURRENCY {
                let Some(cluster) = pending.pop() else { break };
                if in_flight.values().any(|c| *c == cluster) {
                    again.insert(cluster);
                    continue;
                }
                let world = Arc::clone(&self);
                let name = cluster.clone();
                let task = syncs.spawn(async move { world.sync_cluster(&name).await });
                in_flight.insert(task.id(), cluster);
            }
            // Events are taken while syncs run, so that the subscription does not fall
            // behind the cloud during a long pass.
            tokio::select! {
                Some(joined) = syncs.join_next_with_id(), if !syncs.is_empty() => {
                    let (id, result) = match joined {
                        Ok((id, result)) => (id, result),
                        Err(e) => (e.id(), Err(format!("the sync failed: {e}"))),
                    };
                    let Some(cluster) = in_flight.remove(&id) else { continue };
                    if let Err(e) = result {
                        tracing::debug!(cluster, error = %e, "simulated cluster sync failed; retrying");
                        if failed.is_empty() {
                            retry.as_mut().reset(tokio::time::Instant::now() + RETRY);
                        }
                        failed.insert(cluster.clone());
                    }
                    if again.remove(&cluster) {
                        pending.push(cluster);
                    }
                }
                () = &mut retry, if !failed.is_empty() => {
                    for c in std::mem::take(&mut failed) {
                        pending.push(c);
                    }
                }
                ev = events.recv() => match ev {
                    Ok(ev) => {
                        self.note(&ev, &mut pending);
                        // Take whatever else is queued before starting syncs.
                        while let Ok(ev) = events.try_recv() {
                            self.note(&ev, &mut pending);
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        // The missed events were about machines: the clusters whose machines'
                        // revision is not the one their last sync saw.
                        tracing::debug!(missed = n, "the simulator missed cloud events: looking for the clusters that changed");
                        lock(&self.bootstraps).retain(|id, _| self.cloud.has_machine(id));
                        let synced = lock(&self.synced).clone();
                        for c in self.cloud.tag_values(CLUSTER_TAG).into_iter().chain(self.host.clusters()) {
                            let seen = synced.get(&c).map(|(revision, _)| *revision);
                            if seen != Some(self.cloud.cluster_revision(&c)) {
                                pending.push(c);
                            }
                        }
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = resync.tick() => full = true,
            }
        }
    }

    /// Queue the cluster of a machine that changed.
    fn note(&self, ev: &slipway_sim::MachineEvent, pending: &mut Pending) {
        if matches!(ev.kind, slipway_sim::MachineEventKind::Deleted) {
            // Its parsed bootstrap is needed no more.
            lock(&self.bootstraps).remove(&ev.machine.id);
        }
        if let Some(c) = ev.machine.spec.tags.get(CLUSTER_TAG) {
            pending.push(c.clone());
        }
    }

    fn bootstrap_of(&self, m: &Machine) -> Option<Arc<Bootstrap>> {
        lock(&self.bootstraps)
            .entry(m.id.clone())
            .or_insert_with(|| match Bootstrap::from_user_data(&m.spec.user_data) {
                Ok(b) => Some(Arc::new(b)),
                Err(e) => {
                    tracing::debug!(machine = m.id, error = %e, "machine has no simulator bootstrap; it joins no cluster");
                    None
                }
            })
            .clone()
    }

    /// Apply the plan of one cluster, unless it was applied from the same machines and no
    /// object of the cluster was created or deleted since.
    async fn sync_cluster(&self, cluster: &str) -> Result<(), String> {
        let inputs = self
            .host
            .registry(cluster)
            .map(|r| (self.cloud.cluster_revision(cluster), r.ownership_epoch()));
        if inputs.is_some() && lock(&self.synced).get(cluster) == inputs.as_ref() {
            self.skipped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(());
        }
        self.applied
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        lock(&self.synced).remove(cluster);
        // Listed after the revision was read: a change between the two moves the revision
        // again, and makes the next pass apply again.
        let ms = self.cloud.list_tagged(CLUSTER_TAG, cluster);
        let made = self.apply_plan(cluster, &ms).await?;
        self.ensure_component(cluster);
        // The sync's own creations and deletions move the ownership epoch, one each. When
        // the epoch moved by exactly that much, the sync's outcome is the state it left, and
        // the next pass can skip the cluster. Otherwise (someone else changed an object) the
        // epoch read before the sync is kept, and the next pass applies once more and finds
        // nothing to do: a change made during the sync is never mistaken for one the sync
        // saw. The epoch after is read once the cache holds every write committed so far,
        // the sync's own included: under load the cache applies them a moment after they
        // commit, and a read before that kept the epoch from before, so that the next full
        // pass applied the cluster again for nothing. (Were the epoch to match with an
        // outside change counted and one of the sync's own missing, that write's arrival
        // moves it past the recorded value again.)
        if let Some((revision, before)) = inputs
            && let Some(registry) = self.host.registry(cluster)
        {
            let epoch = match registry.ownership_epoch_settled().await {
                Ok(after) if after == before + made => after,
                _ => before,
            };
            lock(&self.synced).insert(cluster.to_string(), (revision, epoch));
        }
        Ok(())
    }

    /// Returns how many objects of the cluster the plan created or deleted (none when the
    /// cluster itself is created or deleted).
    async fn apply_plan(&self, cluster: &str, ms: &[Machine]) -> Result<u64, String> {
        let bootstraps: Vec<(usize, Arc<Bootstrap>)> = ms
            .iter()
            .enumerate()
            .filter_map(|(i, m)| self.bootstrap_of(m).map(|b| (i, b)))
            .filter(|(_, b)| b.cluster == cluster)
            .filter(|(i, b)| {
                let trusted = machines::trusts(b, &self.ca_pin);
                if !trusted {
                    tracing::debug!(cluster, machine = %ms[*i].id, "kubeadm join refused: the CA pin does not match the API's CA");
                }
                trusted
            })
            .collect();
        let known: Vec<Known<'_>> = bootstraps
            .iter()
            .map(|(i, b)| Known {
                machine: &ms[*i],
                bootstrap: b,
            })
            .collect();
        let plan = machines::plan(cluster, &known, &self.catalog);
        if plan.delete || (known.is_empty() && self.host.registry(cluster).is_some()) {
            if let Some(task) = self.lock_running().remove(cluster) {
                task.abort();
            }
            if self.host.registry(cluster).is_some() {
                tracing::info!(
                    cluster,
                    "control plane gone: deleting the simulated cluster"
                );
                self.host
                    .delete_cluster(cluster)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            return Ok(0);
        }
        let registry = match self.host.registry(cluster) {
            Some(r) => r,
            None => match &plan.create_with_token {
                Some(token) => self
                    .host
                    .ensure_cluster(cluster, token)
                    .await
                    .map_err(|e| e.to_string())?,
                // No control plane has booted yet: nothing to serve.
                None => return Ok(0),
            },
        };
        self.host
            .set_unavailable(cluster, plan.unavailable_reason());
        let nodes = sync_nodes(&registry, &plan.nodes)
            .await
            .map_err(|e| e.message)?;
        let pods = sync_static_pods(&registry, &plan.static_pods)
            .await
            .map_err(|e| e.message)?;
        Ok(nodes + pods)
    }

    /// The in-cluster task of `cluster`, running while it is hosted.
    fn ensure_component(&self, cluster: &str) {
        let registry = self.host.registry(cluster);
        let mut running = self.lock_running();
        match (registry, running.get(cluster)) {
            (Some(_), Some(task)) if !task.is_finished() => {}
            (Some(registry), _) => {
                if let Some(old) =
                    running.insert(cluster.to_string(), tokio::spawn(run_components(registry)))
                {
                    old.abort();
                }
            }
            (None, _) => {
                if let Some(task) = running.remove(cluster) {
                    task.abort();
                }
            }
        }
    }

    /// One in-cluster task per hosted cluster.
    fn ensure_components(&self) {
        let hosted: BTreeSet<String> = self.host.clusters().into_iter().collect();
        let mut running = self.lock_running();
        running.retain(|name, task| {
            let keep = hosted.contains(name) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for name in hosted {
            if running.contains_key(&name) {
                continue;
            }
            if let Some(registry) = self.host.registry(&name) {
                running.insert(name, tokio::spawn(run_components(registry)));
            }
        }
    }
}

fn write_options() -> WriteOptions {
    WriteOptions {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    }
}

fn def(
    registry: &Registry,
    group: &str,
    version: &str,
    plural: &str,
) -> Result<Arc<slipway_apimachinery::ResourceDef>, ApiError> {
    registry
        .resource(group, version, plural)
        .ok_or_else(|| ApiError::internal(format!("the workload cluster does not serve {plural}")))
}

/// Writes of one cluster's sync in flight at once: each waits on its commit, and they touch
/// different objects.
const NODE_WRITE_CONCURRENCY: usize = 16;

/// Run a cluster's writes side by side; the first error, if any, else how many objects they
/// created or deleted (each returns its own count).
async fn all_of(
    writes: Vec<futures::future::BoxFuture<'_, Result<u64, ApiError>>>,
) -> Result<u64, ApiError> {
    let results: Vec<Result<u64, ApiError>> = futures::stream::iter(writes)
        .buffer_unordered(NODE_WRITE_CONCURRENCY)
        .collect()
        .await;
    results.into_iter().sum()
}

/// Make the cluster's Nodes what the kubelets of its machines register; returns how many
/// Nodes it created or deleted.
async fn sync_nodes(
    registry: &Registry,
    planned: &BTreeMap<String, Value>,
) -> Result<u64, ApiError> {
    use futures::FutureExt as _;
    let nodes = def(registry, "", "v1", "nodes")?;
    let existing = registry.list(&nodes, None, &ListParams::default()).await?;
    let nodes = &nodes;
    let mut seen = BTreeSet::new();
    let mut writes = Vec::new();
    for stored in &existing.items {
        let name = stored["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match planned.get(&name) {
            Some(want) => {
                seen.insert(name.clone());
                if machines::node_needs_update(stored, want) {
                    let merged = machines::merge_node(stored, want);
                    writes.push(
                        async move {
                            let written = registry
                                .update(
                                    nodes,
                                    None,
                                    &name,
                                    merged.clone(),
                                    Subresource::Main,
                                    &write_options(),
                                )
                                .await?;
                            write_status(registry, nodes, written.object, &merged["status"])
                                .await
                                .map(|()| 0)
                        }
                        .boxed(),
                    );
                }
            }
            // Only Nodes the simulator registered go away with their machine.
            None if stored["metadata"]["labels"]
                .get(NODE_MACHINE_LABEL)
                .is_some() =>
            {
                writes.push(
                    async move {
                        match registry
                            .delete(nodes, None, &name, &DeleteOptions::default())
                            .await
                        {
                            Ok(_) => Ok(1),
                            Err(e) if e.code == 404 => Ok(0),
                            Err(e) => Err(e),
                        }
                    }
                    .boxed(),
                );
            }
            None => {}
        }
    }
    for (name, want) in planned {
        if seen.contains(name) {
            continue;
        }
        writes.push(
            async move {
                // Registered with its status in one create, as the kubelet does.
                let created = match registry
                    .create(nodes, None, want.clone(), &write_options())
                    .await
                {
                    Ok(w) => w.object,
                    Err(e) if e.code == 409 => return Ok(0),
                    Err(e) => return Err(e),
                };
                if created["status"] != want["status"] {
                    write_status(registry, nodes, created, &want["status"]).await?;
                }
                Ok(1)
            }
            .boxed(),
        );
    }
    all_of(writes).await
}

/// Write `status` over the Node just written, through the status subresource, as the kubelet
/// does.
async fn write_status(
    registry: &Registry,
    nodes: &slipway_apimachinery::ResourceDef,
    written: Arc<Value>,
    status: &Value,
) -> Result<(), ApiError> {
    let mut node = Arc::unwrap_or_clone(written);
    node["status"] = status.clone();
    update(registry, nodes, node, Subresource::Status)
        .await
        .map(|_| ())
}

/// Make the control plane's mirror pods match what each control-plane machine runs (their
/// status comes from the kubelet pass; pods of nodes that are gone go with the node); returns
/// how many it created.
async fn sync_static_pods(
    registry: &Registry,
    planned: &BTreeMap<String, Value>,
) -> Result<u64, ApiError> {
    use futures::FutureExt as _;
    let pods = def(registry, "", "v1", "pods")?;
    let pods = &pods;
    let mut writes = Vec::new();
    for (name, want) in planned {
        let image = &want["spec"]["containers"][0]["image"];
        // Read shared: the resync passes over every static pod of every cluster and
        // nearly all of them are as planned.
        match registry.get_shared(pods, Some("kube-system"), name).await {
            Ok(stored) if &stored["spec"]["containers"][0]["image"] == image => {}
            Ok(stored) => {
                let mut stored = Arc::unwrap_or_clone(stored);
                stored["spec"]["containers"][0]["image"] = image.clone();
                writes.push(
                    async move {
                        registry
                            .update(
                                pods,
                                Some("kube-system"),
                                name,
                                stored,
                                Subresource::Main,
                                &write_options(),
                            )
                            .await
                            .map(|_| 0)
                    }
                    .boxed(),
                );
            }
            Err(e) if e.code == 404 => {
                writes.push(
                    async move {
                        match registry
                            .create(pods, Some("kube-system"), want.clone(), &write_options())
                            .await
                        {
                            Ok(_) => Ok(1),
                            Err(e) if e.code == 409 => Ok(0),
                            Err(e) => Err(e),
                        }
                    }
                    .boxed(),
                );
            }
            Err(e) => return Err(e),
        }
    }
    all_of(writes).await
}

/// The in-cluster components of one cluster: a pass on every change. They look at every
/// object of the cluster on each pass, so they need to know only that something changed, not
/// what: they wait on the registry's content epoch instead of watching each kind.
async fn run_components(registry: Arc<Registry>) {
    let mut changes = registry.content_changes();
    let mut timers = true;
    // The objects the last pass read and wrote, held while the next one lists: the watch
    // cache keeps objects as bytes and shares a decoded one only while something holds it,
    // so a burst of passes decodes each object once instead of once per pass. Let go once
    // idle, so that a settled cluster holds nothing decoded.
    let mut held = Vec::new();
    loop {
        // What changed up to here, the pass's lists see; a change after this moves the epoch
        // again and brings another pass.
        changes.mark_unchanged();
        let progressed = match pass(&registry, &mut held).await {
            Ok(p) => {
                timers = p.timers;
                p.writes > 0
            }
            Err(e) => {
                tracing::debug!(error = %e.message, "in-cluster pass failed; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
                true
            }
        };
        if progressed {
            continue;
        }
        // Idle: wait for a change, or for time to pass when that matters.
        held = Vec::new();
        if let Ok(Err(_)) = tokio::time::timeout(idle_wait(timers), changes.changed()).await {
            // The registry is gone (its cluster was deleted).
            return;
        }
    }
}

/// One pass of every in-cluster component; returns how many writes succeeded. `held` has the
/// objects the previous pass read and wrote, kept until this one has listed (so that the
/// lists share them instead of decoding them again), and gets this pass's.
async fn pass(registry: &Registry, held: &mut Vec<Arc<Value>>) -> Result<Pass, ApiError> {
    let nodes = def(registry, "", "v1", "nodes")?;
    let pods = def(registry, "", "v1", "pods")?;
    let rss = def(registry, "apps", "v1", "replicasets")?;
    let deps = def(registry, "apps", "v1", "deployments")?;
    let pdbs = def(registry, "policy", "v1", "poddisruptionbudgets")?;
    let list = |d: Arc<slipway_apimachinery::ResourceDef>| async move {
        registry
            .list(&d, None, &ListParams::default())
            .await
            .map(|l| l.items)
    };
    let snapshot = Snapshot {
        nodes: list(Arc::clone(&nodes)).await?,
        pods: list(Arc::clone(&pods)).await?,
        replica_sets: list(Arc::clone(&rss)).await?,
        deployments: list(Arc::clone(&deps)).await?,
        pdbs: list(Arc::clone(&pdbs)).await?,
        now: k8s_openapi::jiff::Timestamp::now(),
    };
    let (writes, timers) = workloads::reconcile_with_timers(&snapshot);
    *held = [
        snapshot.nodes,
        snapshot.pods,
        snapshot.replica_sets,
        snapshot.deployments,
        snapshot.pdbs,
    ]
    .concat();
    let kind_def = |k: Kind| match k {
        Kind::Pod => Arc::clone(&pods),
        Kind::ReplicaSet => Arc::clone(&rss),
        Kind::Deployment => Arc::clone(&deps),
        Kind::PodDisruptionBudget => Arc::clone(&pdbs),
    };
    // Writes of a pass touch different objects (a second write to one object conflicts and is
    // redone next pass), so they go concurrently: the store commits them in shared batches.
    let results: Vec<Result<Option<Arc<Value>>, ApiError>> = futures::stream::iter(writes)
        .map(|w| {
            let kind_def = &kind_def;
            async move {
                match w {
                    Write::Create {
                        kind,
                        namespace,
                        object,
                    } => registry
                        .create(&kind_def(kind), Some(&namespace), object, &write_options())
                        .await
                        .map(|w| Some(w.object)),
                    Write::Update { kind, object } => {
                        update(registry, &kind_def(kind), object, Subresource::Main)
                            .await
                            .map(Some)
                    }
                    Write::UpdateStatus { kind, object } => {
                        update(registry, &kind_def(kind), object, Subresource::Status)
                            .await
                            .map(Some)
                    }
                    Write::Delete {
                        kind,
                        namespace,
                        name,
                        uid,
                    } => registry
                        .delete(
                            &kind_def(kind),
                            Some(&namespace),
                            &name,
                            &DeleteOptions {
                                precondition_uid: Some(uid),
                                ..Default::default()
                            },
                        )
                        .await
                        .map(|_| None),
                }
            }
        })
        .buffer_unordered(WRITE_CONCURRENCY)
        .collect()
        .await;
    let mut done = 0;
    for result in results {
        match result {
            Ok(written) => {
                done += 1;
                held.extend(written);
            }
            // Someone else changed it first: the next pass sees the new state.
            Err(e) if matches!(e.code, 404 | 409) => {}
            Err(e) => {
                tracing::warn!(error = %e.message, "in-cluster write failed");
            }
        }
    }
    Ok(Pass {
        writes: done,
        timers,
    })
}

/// What one pass of the in-cluster components did.
struct Pass {
    /// Writes that succeeded.
    writes: usize,
    /// The state may change with time alone (see [`workloads::reconcile_with_timers`]).
    timers: bool,
}

/// How long idle components wait for a change before looking again: soon while something
/// depends on time passing; otherwise only a change can give them work, and the look is a
/// safety net taken rarely, at a random point between 45 and 75 minutes so that thousands
/// of clusters that settled together do not all look at once.
fn idle_wait(timers: bool) -> Duration {
    if timers {
        Duration::from_secs(5)
    } else {
        Duration::from_secs(rand::random_range(45 * 60..75 * 60))
    }
}

async fn update(
    registry: &Registry,
    d: &slipway_apimachinery::ResourceDef,
    object: Value,
    sub: Subresource,
) -> Result<Arc<Value>, ApiError> {
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ns = object["metadata"]["namespace"].as_str().map(str::to_string);
    registry
        .update(d, ns.as_deref(), &name, object, sub, &write_options())
        .await
        .map(|w| w.object)
}
