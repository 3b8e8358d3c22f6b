//! [`SimCloud`]: the simulated cloud's state, its persistence, its lifecycle loop, and its
//! [`Provider`] implementation.
//!
//! Design: the whole cloud lives in memory under one mutex (decisions such as quota, capacity
//! and address allocation need a consistent view of everything), and every change is written
//! through to a [`SqliteStore`] of its own before the call that made it returns. Writers mark
//! the keys they changed dirty; `SimCloud::flush` (one at a time) writes the *latest* value
//! of every dirty key concurrently, so the store's group commit batches them and a slower
//! writer can never overwrite a newer value with an older one. Every write is a
//! compare-and-swap at the revision this process last wrote; the store's file lock keeps other
//! processes out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use jiff::Timestamp;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::tagindex::TagIndex;
use serde::{Deserialize, Serialize};
use slipway_provider::{
    CLUSTER_TAG, CapacityType, Catalog, LoadBalancer, LoadBalancerSpec, Machine, MachinePatch,
    MachinePhase, MachineReason, MachineSpec, MachineStatus, MachineType, Network, NetworkSpec,
    Provider, ProviderError, ResourceKind, Result, Subnet, SubnetSpec, Tags, usable_addresses,
};
use slipway_store::sqlite::{Durability, SqliteStore};
use slipway_store::{ListOptions, Revision, Store, StoreError};
use tokio::sync::{Notify, broadcast, watch};

use crate::SimError;
use crate::catalog::SimCatalog;
use crate::config::{CatalogSource, SimConfig, TimeScale};
use crate::faults::{Faults, FaultsPatch, capacity_key};
use crate::lifecycle::{Inputs, Transition, interrupts, next_transition};

const PREFIX: &str = "/sim/cloud/";
const FAULTS_KEY: &str = "/sim/cloud/faults";
const EVENT_BUFFER: usize = 8192;
/// The lifecycle loop wakes at least this often (real time) to re-check everything.
const MAX_SLEEP: Duration = Duration::from_secs(2);
/// The shortest real interval between spot checks (zero-delay mode would otherwise spin).
const MIN_SPOT_TICK: Duration = Duration::from_millis(50);
/// Addresses load balancers get: 198.18.0.0/15, the benchmarking range (131,072 addresses).
const LB_BASE: u32 = u32::from_be_bytes([198, 18, 0, 0]);
const LB_RANGE: u32 = 1 << 17;

/// What happened to a machine, for the rest of the simulator (the workload-cluster model
/// registers a Node when a machine turns `Running` and marks it NotReady when it stops).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineEvent {
    pub kind: MachineEventKind,
    /// The machine after the change (for `Deleted`, its last state).
    pub machine: Machine,
}

/// The kind of a [`MachineEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum MachineEventKind {
    /// A new machine (phase `Pending`).
    Created,
    /// Its phase changed from `from` to `machine.status.phase`.
    PhaseChanged { from: MachinePhase },
    /// Its spec was patched in place (image, kubelet version).
    Updated,
    /// Its record was purged, some time after it terminated.
    Deleted,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MachineRecord {
    machine: Machine,
    /// When the current phase ends (real wall-clock time), for timed phases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredSubnet {
    id: String,
    spec: SubnetSpec,
    created_at: Timestamp,
}

#[derive(Debug)]
struct SubnetState {
    stored: StoredSubnet,
    /// Addresses held by machines that are not terminated (rebuilt from them on load).
    allocated: BTreeSet<Ipv4Addr>,
}

impl SubnetState {
    fn view(&self) -> Subnet {
        let total = usable_addresses(self.stored.spec.cidr);
        Subnet {
            id: self.stored.id.clone(),
            spec: self.stored.spec.clone(),
            total_addresses: total,
            available_addresses: total.saturating_sub(self.allocated.len() as u64),
            created_at: self.stored.created_at,
        }
    }

    /// The lowest free usable address: the first four and the last are reserved.
    fn allocate(&mut self) -> Option<Ipv4Addr> {
        let cidr = self.stored.spec.cidr;
        let first = u32::from(cidr.network()).checked_add(4)?;
        let last = u32::from(cidr.broadcast()).checked_sub(1)?;
        let ip = (first..=last)
            .map(Ipv4Addr::from)
            .find(|ip| !self.allocated.contains(ip))?;
        self.allocated.insert(ip);
        Some(ip)
    }
}

struct State {
    faults: Faults,
    networks: BTreeMap<String, Network>,
    subnets: BTreeMap<String, SubnetState>,
    lbs: BTreeMap<String, LoadBalancer>,
    machines: BTreeMap<String, MachineRecord>,
    /// Resources by tag, one index per kind.
    network_tags: TagIndex,
    subnet_tags: TagIndex,
    lb_tags: TagIndex,
    machine_tags: TagIndex,
    /// Network id by `(region, name)`: a create finds its network again without a scan.
    network_names: HashMap<(String, String), String>,
    /// Subnet ids by network id.
    network_subnets: HashMap<String, BTreeSet<String>>,
    /// Load balancer id by `(region, name)`.
    lb_names: HashMap<(String, String), String>,
    /// Addresses held by load balancers.
    lb_addresses: BTreeSet<Ipv4Addr>,
    /// Machine changes announced so far.
    changes: u64,
    /// Per value of the cluster tag, the number of the last change to a machine carrying it;
    /// forgotten with the last such machine.
    cluster_changes: HashMap<String, u64>,
    /// Addresses the platform chose (`MachineSpec::private_ip`) held by machines that are not
    /// terminated, with the machine holding each.
    static_ips: HashMap<Ipv4Addr, String>,
    /// Idempotency key -> machine id.
    keys: HashMap<String, String>,
    rng: StdRng,
    /// Keys changed since the last flush.
    dirty: BTreeSet<String>,
    events: broadcast::Sender<MachineEvent>,
    next_spot_check: Option<Timestamp>,
    /// `(deadline, machine id)` of every machine with a deadline, earliest first: the
    /// lifecycle loop visits only these (and everything after a restart or a fault change).
    deadlines: BTreeSet<(Timestamp, String)>,
    /// The next pass looks at every machine, not only those whose deadline passed.
    scan_all: bool,
    /// vCPUs per machine type, from the catalog.
    type_vcpus: HashMap<String, u64>,
    /// vCPUs of machines that are not terminated, per region (the quota's usage).
    vcpus_in_use: HashMap<String, u64>,
    /// Machines that are not terminated, per `(zone, machine type)` (capacity's usage).
    machines_in_use: HashMap<(String, String), u64>,
    /// Real time a terminated machine's record is kept.
    retention: Duration,
}

impl State {
    /// Tell subscribers about a change of a machine (after its record changed).
    fn announce(&mut self, ev: MachineEvent) {
        self.changes += 1;
        if let Some(cluster) = ev.machine.spec.tags.get(CLUSTER_TAG) {
            if self.machine_tags.has(CLUSTER_TAG, cluster) {
                self.cluster_changes.insert(cluster.clone(), self.changes);
            } else {
                self.cluster_changes.remove(cluster);
            }
        }
        let _ = self.events.send(ev);
    }

    fn add_network(&mut self, n: Network) {
        self.network_tags.add(&n.spec.tags, &n.id);
        self.network_names
            .insert((n.spec.region.clone(), n.spec.name.clone()), n.id.clone());
        self.networks.insert(n.id.clone(), n);
    }

    fn remove_network(&mut self, id: &str) {
        if let Some(n) = self.networks.remove(id) {
            self.network_tags.remove(&n.spec.tags, id);
            self.network_names.remove(&(n.spec.region, n.spec.name));
        }
    }

    fn add_subnet(&mut self, s: SubnetState) {
        let id = s.stored.id.clone();
        self.subnet_tags.add(&s.stored.spec.tags, &id);
        self.network_subnets
            .entry(s.stored.spec.network_id.clone())
            .or_default()
            .insert(id.clone());
        self.subnets.insert(id, s);
    }

    fn remove_subnet(&mut self, id: &str) {
        if let Some(s) = self.subnets.remove(id) {
            self.subnet_tags.remove(&s.stored.spec.tags, id);
            let network = &s.stored.spec.network_id;
            if let Some(ids) = self.network_subnets.get_mut(network) {
                ids.remove(id);
                if ids.is_empty() {
                    self.network_subnets.remove(network);
                }
            }
        }
    }

    /// The subnets of network `id`.
    fn subnets_of<'a>(&'a self, network: &str) -> impl Iterator<Item = &'a SubnetState> + 'a {
        self.network_subnets
            .get(network)
            .into_iter()
            .flatten()
            .filter_map(|id| self.subnets.get(id))
    }

    fn add_lb(&mut self, lb: LoadBalancer) {
        self.lb_tags.add(&lb.spec.tags, &lb.id);
        self.lb_names.insert(
            (lb.spec.region.clone(), lb.spec.name.clone()),
            lb.id.clone(),
        );
        self.lb_addresses.insert(lb.address);
        self.lbs.insert(lb.id.clone(), lb);
    }

    fn remove_lb(&mut self, id: &str) -> Option<LoadBalancer> {
        let lb = self.lbs.remove(id)?;
        self.lb_tags.remove(&lb.spec.tags, id);
        self.lb_names
            .remove(&(lb.spec.region.clone(), lb.spec.name.clone()));
        self.lb_addresses.remove(&lb.address);
        Some(lb)
    }

    /// The lowest load balancer address no load balancer holds.
    fn free_lb_address(&self) -> Option<Ipv4Addr> {
        // The held addresses in order: the first one out of step is after a gap.
        let mut next = LB_BASE;
        for held in &self.lb_addresses {
            let held = u32::from(*held);
            if held > next {
                break;
            }
            if held == next {
                next += 1;
            }
        }
        (next < LB_BASE + LB_RANGE).then(|| Ipv4Addr::from(next))
    }

    /// Counts a machine that is not terminated against quota and capacity (`add`), or stops
    /// counting it.
    fn account(&mut self, spec: &MachineSpec, add: bool) {
        let vcpus = self
            .type_vcpus
            .get(&spec.machine_type)
            .copied()
            .unwrap_or(0);
        let region = self.vcpus_in_use.entry(spec.region.clone()).or_default();
        if add {
            *region += vcpus;
        } else {
            *region = region.saturating_sub(vcpus);
        }
        let count = self
            .machines_in_use
            .entry((spec.zone.clone(), spec.machine_type.clone()))
            .or_default();
        if add {
            *count += 1;
        } else {
            *count = count.saturating_sub(1);
        }
    }
}

/// Sets a machine's deadline, keeping the deadline index in step.
fn set_deadline(
    deadlines: &mut BTreeSet<(Timestamp, String)>,
    rec: &mut MachineRecord,
    due: Option<Timestamp>,
) {
    if let Some(old) = rec.due_at.take() {
        deadlines.remove(&(old, rec.machine.id.clone()));
    }
    if let Some(new) = due {
        deadlines.insert((new, rec.machine.id.clone()));
    }
    rec.due_at = due;
}

/// The simulated cloud. Cheap to share (`Arc`); implements [`Provider`].
pub struct SimCloud {
    catalog: SimCatalog,
    config: SimConfig,
    store: SqliteStore,
    state: Mutex<State>,
    /// Store revision of every key this process knows, held while flushing.
    persist: tokio::sync::Mutex<HashMap<String, Revision>>,
    wake: Arc<Notify>,
    shutdown: watch::Sender<bool>,
    driver: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Where load balancers route: the workload host's base URL and CA (see
    /// [`SimCloud::route_load_balancers`]).
    listener: std::sync::RwLock<Option<(String, String)>>,
}

impl std::fmt::Debug for SimCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCloud")
            .field("db", &self.store.path())
            .finish_non_exhaustive()
    }
}

fn machine_key(id: &str) -> String {
    format!("{PREFIX}machines/{id}")
}
fn network_key(id: &str) -> String {
    format!("{PREFIX}networks/{id}")
}
fn subnet_key(id: &str) -> String {
    format!("{PREFIX}subnets/{id}")
}
fn lb_key(id: &str) -> String {
    format!("{PREFIX}lbs/{id}")
}

fn new_id(prefix: &str) -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &hex[..17])
}

fn after(now: Timestamp, d: Duration) -> Timestamp {
    now.checked_add(d).unwrap_or(Timestamp::MAX)
}

fn until(now: Timestamp, then: Timestamp) -> Duration {
    Duration::try_from(then.duration_since(now)).unwrap_or(Duration::ZERO)
}

fn internal(e: impl std::fmt::Display) -> ProviderError {
    ProviderError::Internal(e.to_string())
}

/// The path of the cloud's database under a data directory.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("sim").join("cloud.db")
}

impl SimCloud {
    /// Route every load balancer to the workload host serving the simulated clusters' APIs at
    /// `base_url` with a certificate signed by `ca_pem`: a load balancer of the cluster tagged
    /// `slipway.dev/cluster: NAME` then reports `url` `<base_url>/clusters/NAME` and that CA, the
    /// way a real one forwards to its cluster's API servers.
    pub fn route_load_balancers(&self, base_url: &str, ca_pem: &str) {
        let mut listener = self
            .listener
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *listener = Some((
            base_url.trim_end_matches('/').to_string(),
            ca_pem.to_string(),
        ));
    }

    /// A load balancer as clients see it: with where it routes, when known.
    fn present(&self, mut lb: LoadBalancer) -> LoadBalancer {
        let listener = self
            .listener
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let (Some((base, ca)), Some(cluster)) =
            (listener.as_ref(), lb.spec.tags.get(CLUSTER_TAG))
        {
            lb.url = Some(format!("{base}/clusters/{cluster}"));
            lb.ca_pem = Some(ca.clone());
        }
        lb
    }

    /// Opens (creating if needed) the cloud persisted in `data_dir/sim/cloud.db`, and starts
    /// its lifecycle loop on the current tokio runtime. Machines resume where they were: one
    /// whose boot deadline passed while the cloud was down is booted at once.
    pub async fn open(data_dir: &Path, config: SimConfig) -> Result<Arc<SimCloud>, SimError> {
        config.boot_latency.validate()?;
        let catalog = match &config.catalog {
            CatalogSource::Default => SimCatalog::default_catalog()?,
            CatalogSource::Path(p) => SimCatalog::from_path(p)?,
        };
        let path = db_path(data_dir);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| SimError::Io(format!("cannot create {}: {e}", dir.display())))?;
        }
        // The simulated cloud stands in for a provider's own state: it must survive the
        // process being killed (the crash tests do that), not a power loss of this machine,
        // so its commits skip the fsync.
        let store = SqliteStore::open_with(&path, Durability::ProcessCrash)?;
        let listed = store.list(PREFIX, ListOptions::default()).await?;

        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        let mut state = State {
            faults: Faults::default(),
            networks: BTreeMap::new(),
            subnets: BTreeMap::new(),
            lbs: BTreeMap::new(),
            machines: BTreeMap::new(),
            network_tags: TagIndex::default(),
            subnet_tags: TagIndex::default(),
            lb_tags: TagIndex::default(),
            machine_tags: TagIndex::default(),
            network_names: HashMap::new(),
            network_subnets: HashMap::new(),
            lb_names: HashMap::new(),
            lb_addresses: BTreeSet::new(),
            changes: 0,
            cluster_changes: HashMap::new(),
            static_ips: HashMap::new(),
            keys: HashMap::new(),
            rng,
            dirty: BTreeSet::new(),
            events,
            next_spot_check: None,
            deadlines: BTreeSet::new(),
            scan_all: true,
            type_vcpus: catalog
                .catalog
                .machine_types
                .iter()
                .map(|t| (t.name.clone(), u64::from(t.vcpu)))
                .collect(),
            vcpus_in_use: HashMap::new(),
            machines_in_use: HashMap::new(),
            retention: config.terminated_retention,
        };
        let mut revisions = HashMap::new();
        for kv in listed.items {
            let corrupt = |e: serde_json::Error| SimError::Corrupt(format!("{}: {e}", kv.key));
            let rest = &kv.key[PREFIX.len()..];
            if kv.key == FAULTS_KEY {
                state.faults = serde_json::from_slice(&kv.value).map_err(corrupt)?;
            } else if rest.starts_with("networks/") {
                let n: Network = serde_json::from_slice(&kv.value).map_err(corrupt)?;
                state.add_network(n);
            } else if rest.starts_with("subnets/") {
                let s: StoredSubnet = serde_json::from_slice(&kv.value).map_err(corrupt)?;
                state.add_subnet(SubnetState {
                    stored: s,
                    allocated: BTreeSet::new(),
                });
            } else if rest.starts_with("lbs/") {
                let lb: LoadBalancer = serde_json::from_slice(&kv.value).map_err(corrupt)?;
                state.add_lb(lb);
            } else if rest.starts_with("machines/") {
                let m: MachineRecord = serde_json::from_slice(&kv.value).map_err(corrupt)?;
                state.machine_tags.add(&m.machine.spec.tags, &m.machine.id);
                if let Some(cluster) = m.machine.spec.tags.get(CLUSTER_TAG) {
                    state.cluster_changes.insert(cluster.clone(), 0);
                }
                state.machines.insert(m.machine.id.clone(), m);
            } else {
                tracing::warn!(key = %kv.key, "sim cloud: ignoring an unknown key");
                continue;
            }
            revisions.insert(kv.key.clone(), kv.mod_revision);
        }
        let ids: Vec<String> = state.machines.keys().cloned().collect();
        for id in ids {
            let Some(mut rec) = state.machines.remove(&id) else {
                continue;
            };
            let m = &rec.machine;
            state.keys.insert(m.idempotency_key.clone(), m.id.clone());
            let due = rec.due_at.take();
            if m.status.phase == MachinePhase::Terminated {
                let purge_at = m
                    .status
                    .terminated_at
                    .map(|t| after(t, config.terminated_retention));
                set_deadline(&mut state.deadlines, &mut rec, due.or(purge_at));
            } else {
                state.account(&rec.machine.spec, true);
                if let Some(ip) = rec.machine.spec.private_ip {
                    state.static_ips.insert(ip, rec.machine.id.clone());
                }
                if let (Some(ip), Some(subnet)) = (
                    rec.machine.status.private_ip,
                    state.subnets.get_mut(&rec.machine.spec.subnet_id),
                ) {
                    subnet.allocated.insert(ip);
                }
                set_deadline(&mut state.deadlines, &mut rec, due);
            }
            state.machines.insert(id, rec);
        }
        if let Some(scale) = config.time_scale
            && scale != state.faults.time_scale
        {
            let old = state.faults.time_scale;
            rescale_deadlines(&mut state, old, scale, Timestamp::now());
            state.faults.time_scale = scale;
            state.dirty.insert(FAULTS_KEY.to_string());
        }
        state.faults.validate(&catalog)?;
        tracing::info!(
            path = %path.display(),
            machines = state.machines.len(),
            time_scale = state.faults.time_scale.factor(),
            "sim cloud opened"
        );

        let (shutdown, _) = watch::channel(false);
        let cloud = Arc::new(SimCloud {
            catalog,
            config,
            store,
            state: Mutex::new(state),
            persist: tokio::sync::Mutex::new(revisions),
            wake: Arc::new(Notify::new()),
            shutdown,
            driver: Mutex::new(None),
            listener: std::sync::RwLock::new(None),
        });
        cloud
            .flush()
            .await
            .map_err(|e| SimError::Io(e.to_string()))?;
        let handle = tokio::spawn(drive(
            Arc::downgrade(&cloud),
            cloud.wake.clone(),
            cloud.shutdown.subscribe(),
        ));
        *lock(&cloud.driver) = Some(handle);
        Ok(cloud)
    }

    /// Stops the lifecycle loop, writes anything pending and closes the database (releasing
    /// its lock, so the cloud can be reopened). Later calls fail.
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        let handle = lock(&self.driver).take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
        if let Err(e) = self.flush().await {
            tracing::error!(error = %e, "sim cloud: final flush failed");
        }
        self.store.close();
    }

    /// The catalog with quotas and capacity defaults.
    pub fn sim_catalog(&self) -> &SimCatalog {
        &self.catalog
    }

    /// The configuration the cloud was opened with.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The database file.
    pub fn db_path(&self) -> &Path {
        self.store.path()
    }

    /// A stream of machine changes, in the order they happened (sent as the in-memory state
    /// changes, a moment before the change is durable). A receiver that lags gets
    /// `RecvError::Lagged` and should resynchronise with [`SimCloud::list_all`], as should one
    /// that starts after machines exist.
    pub fn subscribe(&self) -> broadcast::Receiver<MachineEvent> {
        self.lock().events.subscribe()
    }

    /// Every machine the cloud remembers (never throttled: for the simulator itself).
    pub fn list_all(&self) -> Vec<Machine> {
        self.lock()
            .machines
            .values()
            .map(|r| r.machine.clone())
            .collect()
    }

    /// The machines tagged `tag=value` (never throttled: for the simulator itself), in id
    /// order. Costs what it returns, through the tag index.
    pub fn list_tagged(&self, tag: &str, value: &str) -> Vec<Machine> {
        let selector: Tags = [(tag.to_string(), value.to_string())].into();
        let st = self.lock();
        st.machine_tags.select(
            &st.machines,
            &selector,
            |r| &r.machine.spec.tags,
            |r| r.machine.clone(),
        )
    }

    /// Every value tag `tag` has among the machines the cloud remembers.
    pub fn tag_values(&self, tag: &str) -> std::collections::BTreeSet<String> {
        self.lock().machine_tags.values(tag)
    }

    /// A number that moves with every change of a machine tagged `CLUSTER_TAG=cluster` (its
    /// creation, phase changes, updates and purge): equal numbers mean the same machines.
    /// `None` when the cloud remembers no such machine. It lets a follower of the events tell
    /// which clusters changed even after it missed some.
    pub fn cluster_revision(&self, cluster: &str) -> Option<u64> {
        self.lock().cluster_changes.get(cluster).copied()
    }

    /// Whether the cloud remembers machine `id`.
    pub fn has_machine(&self, id: &str) -> bool {
        self.lock().machines.contains_key(id)
    }

    /// The current fault settings.
    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    /// Replaces the fault settings (validated, persisted, applied at once).
    pub async fn set_faults(&self, faults: Faults) -> Result<Faults, SimError> {
        faults.validate(&self.catalog)?;
        {
            let mut st = self.lock();
            let old = st.faults.time_scale;
            if old != faults.time_scale {
                rescale_deadlines(&mut st, old, faults.time_scale, Timestamp::now());
            }
            st.faults = faults.clone();
            st.next_spot_check = None;
            st.scan_all = true;
            st.dirty.insert(FAULTS_KEY.to_string());
        }
        self.flush()
            .await
            .map_err(|e| SimError::Io(e.to_string()))?;
        self.wake.notify_one();
        Ok(faults)
    }

    /// Applies a partial update to the fault settings and returns the result.
    pub async fn patch_faults(&self, patch: &FaultsPatch) -> Result<Faults, SimError> {
        let next = patch.apply(&self.faults());
        self.set_faults(next).await
    }

    /// Sets only the time scale.
    pub async fn set_time_scale(&self, scale: TimeScale) -> Result<Faults, SimError> {
        self.patch_faults(&FaultsPatch {
            time_scale: Some(scale),
            ..FaultsPatch::default()
        })
        .await
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Answers `Throttled` with the configured probability.
    fn admit(&self) -> Result<()> {
        let mut st = self.lock();
        let rate = st.faults.throttle_rate;
        if rate > 0.0 && st.rng.random::<f64>() < rate {
            return Err(ProviderError::Throttled {
                retry_after: st.faults.throttle_retry_after(),
            });
        }
        Ok(())
    }

    /// Writes the latest value of every dirty key. One flush runs at a time; a caller that
    /// marked keys dirty and then flushes returns only once those keys are durable (written
    /// by its own flush or by one that ran before it took the lock).
    async fn flush(&self) -> Result<()> {
        let mut revisions = self.persist.lock().await;
        let writes: Vec<(String, Option<Vec<u8>>)> = {
            let mut st = self.lock();
            let keys = std::mem::take(&mut st.dirty);
            let mut writes = Vec::with_capacity(keys.len());
            for key in keys {
                let value = encode(&st, &key)?;
                writes.push((key, value));
            }
            writes
        };
        if writes.is_empty() {
            return Ok(());
        }
        let store = &self.store;
        let results = futures::future::join_all(writes.into_iter().map(|(key, value)| {
            let expected = revisions.get(&key).copied();
            async move {
                let result = write(store, &key, value, expected).await;
                (key, result)
            }
        }))
        .await;
        let mut failed = None;
        for (key, result) in results {
            match result {
                Ok(Some(rev)) => {
                    revisions.insert(key, rev);
                }
                Ok(None) => {
                    revisions.remove(&key);
                }
                Err(e) => {
                    tracing::error!(key = %key, error = %e, "sim cloud: write failed");
                    self.lock().dirty.insert(key);
                    failed = Some(e);
                }
            }
        }
        if failed.is_none() {
            self.compact_if_due().await;
        }
        match failed {
            None => Ok(()),
            Some(e) => Err(internal(format!("persisting the simulated cloud: {e}"))),
        }
    }

    /// Forgets the store's history once enough of it piled up; failures only cost disk.
    async fn compact_if_due(&self) {
        let (Ok(current), Ok(compacted)) = (
            self.store.current_revision().await,
            self.store.compacted_revision().await,
        ) else {
            return;
        };
        let every =
            Revision::try_from(self.config.compact_every_revisions).unwrap_or(Revision::MAX);
        if current - compacted >= every.max(1)
            && let Err(e) = self.store.compact(current).await
        {
            tracing::warn!(error = %e, "sim cloud: compaction failed");
        }
    }

    /// Runs a mutation, persists what it changed and wakes the lifecycle loop.
    async fn mutate<T>(&self, f: impl FnOnce(&mut State, &SimCatalog) -> Result<T>) -> Result<T> {
        let out = {
            let mut st = self.lock();
            f(&mut st, &self.catalog)?
        };
        self.flush().await?;
        self.wake.notify_one();
        Ok(out)
    }

    /// One pass of the lifecycle loop: applies every due transition, spot checks and purges,
    /// persists, and returns how long to sleep before the next pass.
    async fn step(&self) -> Result<Duration> {
        let now = Timestamp::now();
        let sleep = {
            let mut st = self.lock();
            self.advance(&mut st, now)
        };
        self.flush().await?;
        Ok(sleep)
    }

    fn advance(&self, st: &mut State, now: Timestamp) -> Duration {
        let scale = st.faults.time_scale;
        let ids: Vec<String> = if std::mem::take(&mut st.scan_all) {
            st.machines.keys().cloned().collect()
        } else {
            st.deadlines
                .iter()
                .take_while(|(due, _)| *due <= now)
                .map(|(_, id)| id.clone())
                .collect()
        };
        for id in &ids {
            let Some(rec) = st.machines.get(id) else {
                continue;
            };
            if rec.machine.status.phase == MachinePhase::Terminated {
                if rec.due_at.is_some_and(|d| d <= now) {
                    purge(st, id);
                }
                continue;
            }
            let inputs = Inputs {
                phase: rec.machine.status.phase,
                reason: rec.machine.status.reason,
                ever_ran: rec.machine.status.running_at.is_some(),
                due: rec.due_at.is_some_and(|d| d <= now),
                zone_down: st.faults.zone_outages.contains(&rec.machine.spec.zone),
                failure_rate: st.faults.provisioning_failure_rate,
                failure_roll: 0.0,
            };
            // Draw only when a boot completes, so the sequence of draws does not depend on
            // how often the loop runs.
            let inputs = if inputs.phase == MachinePhase::Provisioning && inputs.due {
                Inputs {
                    failure_roll: st.rng.random::<f64>(),
                    ..inputs
                }
            } else {
                inputs
            };
            let Some(t) = next_transition(&inputs) else {
                continue;
            };
            let (phase, reason, due_at, message) = match t {
                Transition::StartProvisioning => {
                    let boot = self.config.boot_latency.sample(&mut st.rng);
                    let boot = boot.mul_f64(st.faults.boot_latency_scale);
                    (
                        MachinePhase::Provisioning,
                        None,
                        Some(after(now, scale.real(boot))),
                        None,
                    )
                }
                Transition::FinishBoot => (MachinePhase::Running, None, None, None),
                Transition::FailBoot => (
                    MachinePhase::Terminated,
                    Some(MachineReason::ProvisioningFailed),
                    None,
                    Some("the host failed to boot the image".to_string()),
                ),
                Transition::FinishTermination => (
                    MachinePhase::Terminated,
                    inputs.reason,
                    None,
                    rec.machine.status.message.clone(),
                ),
                Transition::ZoneDown => (
                    MachinePhase::Failed,
                    Some(MachineReason::ZoneOutage),
                    None,
                    Some(format!("zone {} is down", rec.machine.spec.zone)),
                ),
                Transition::ZoneBack => (MachinePhase::Running, None, None, None),
                Transition::ZoneBackRestart => (
                    MachinePhase::Pending,
                    None,
                    Some(after(now, scale.real(self.config.pending_delay))),
                    None,
                ),
            };
            set_phase(st, id, phase, reason, message, due_at, now);
        }

        // Spot interruptions.
        let rate = st.faults.spot_interruption_rate;
        if rate > 0.0 {
            let due = st.next_spot_check.is_none_or(|t| t <= now);
            if due {
                let candidates: Vec<String> = st
                    .machines
                    .values()
                    .filter(|r| {
                        r.machine.status.phase == MachinePhase::Running
                            && r.machine.spec.capacity_type == CapacityType::Spot
                    })
                    .map(|r| r.machine.id.clone())
                    .collect();
                let ending = after(now, scale.real(self.config.termination_delay));
                for id in candidates {
                    let roll = st.rng.random::<f64>();
                    let Some(rec) = st.machines.get(&id) else {
                        continue;
                    };
                    if interrupts(
                        rec.machine.status.phase,
                        rec.machine.spec.capacity_type,
                        rate,
                        roll,
                    ) {
                        set_phase(
                            st,
                            &id,
                            MachinePhase::Terminating,
                            Some(MachineReason::SpotInterruption),
                            Some("spot capacity reclaimed".to_string()),
                            Some(ending),
                            now,
                        );
                    }
                }
                let interval = scale
                    .real(self.config.spot_check_interval)
                    .max(MIN_SPOT_TICK);
                st.next_spot_check = Some(after(now, interval));
            }
        } else {
            st.next_spot_check = None;
        }

        // When to look again.
        let mut next = after(now, MAX_SLEEP);
        if let Some((due, _)) = st.deadlines.first() {
            next = next.min(*due);
        }
        if let Some(t) = st.next_spot_check {
            next = next.min(t);
        }
        until(now, next)
    }

    fn require_region(&self, region: &str, what: &str) -> Result<()> {
        if self.catalog.catalog.region(region).is_none() {
            return Err(ProviderError::invalid(
                what,
                format!(
                    "unknown region {region:?} (known: {})",
                    self.catalog
                        .catalog
                        .regions
                        .iter()
                        .map(|r| r.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// Validates a machine spec against the catalog and the subnets; returns its type.
    fn check_machine_spec(&self, st: &State, spec: &MachineSpec) -> Result<MachineType> {
        let catalog = &self.catalog.catalog;
        self.require_region(&spec.region, "spec.region")?;
        let Some((region, _)) = catalog.zone(&spec.zone) else {
            return Err(ProviderError::invalid(
                "spec.zone",
                format!("unknown zone {:?}", spec.zone),
            ));
        };
        if region.name != spec.region {
            return Err(ProviderError::invalid(
                "spec.zone",
                format!(
                    "zone {} is in region {}, not {}",
                    spec.zone, region.name, spec.region
                ),
            ));
        }
        let Some(ty) = catalog.machine_type(&spec.machine_type) else {
            return Err(ProviderError::invalid(
                "spec.machineType",
                format!("unknown machine type {:?}", spec.machine_type),
            ));
        };
        if !catalog.zone_offers(&spec.zone, &spec.machine_type) {
            return Err(ProviderError::invalid(
                "spec.machineType",
                format!("zone {} does not offer {}", spec.zone, spec.machine_type),
            ));
        }
        let Some(subnet) = st.subnets.get(&spec.subnet_id) else {
            return Err(ProviderError::invalid(
                "spec.subnetId",
                format!("unknown subnet {:?}", spec.subnet_id),
            ));
        };
        if subnet.stored.spec.zone != spec.zone {
            return Err(ProviderError::invalid(
                "spec.subnetId",
                format!(
                    "subnet {} is in zone {}, not {}",
                    spec.subnet_id, subnet.stored.spec.zone, spec.zone
                ),
            ));
        }
        if spec.image.is_empty() {
            return Err(ProviderError::invalid("spec.image", "must not be empty"));
        }
        if spec.kubelet_version.is_empty() {
            return Err(ProviderError::invalid(
                "spec.kubeletVersion",
                "must not be empty",
            ));
        }
        Ok(ty.clone())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The value a key should have in the store now (`None`: it should not exist).
fn encode(st: &State, key: &str) -> Result<Option<Vec<u8>>> {
    let rest = key.strip_prefix(PREFIX).unwrap_or(key);
    let value = if key == FAULTS_KEY {
        Some(serde_json::to_vec(&st.faults))
    } else if let Some(id) = rest.strip_prefix("machines/") {
        st.machines.get(id).map(serde_json::to_vec)
    } else if let Some(id) = rest.strip_prefix("networks/") {
        st.networks.get(id).map(serde_json::to_vec)
    } else if let Some(id) = rest.strip_prefix("subnets/") {
        st.subnets.get(id).map(|s| serde_json::to_vec(&s.stored))
    } else if let Some(id) = rest.strip_prefix("lbs/") {
        st.lbs.get(id).map(serde_json::to_vec)
    } else {
        return Err(internal(format!("no encoding for key {key}")));
    };
    value.transpose().map_err(internal)
}

/// Makes the store's value of `key` equal `value`, compare-and-swapping at `expected`.
/// Returns the new revision, or `None` when the key no longer exists.
async fn write(
    store: &SqliteStore,
    key: &str,
    value: Option<Vec<u8>>,
    expected: Option<Revision>,
) -> std::result::Result<Option<Revision>, StoreError> {
    match (value, expected) {
        (Some(v), None) => store.create(key, Bytes::from(v)).await.map(Some),
        (Some(v), Some(rev)) => store.update(key, Bytes::from(v), rev).await.map(Some),
        (None, Some(rev)) => store.delete(key, Some(rev)).await.map(|_| None),
        (None, None) => Ok(None),
    }
}

/// Forgets a terminated machine (its key can name a new machine afterwards).
fn purge(st: &mut State, id: &str) {
    let Some(mut rec) = st.machines.remove(id) else {
        return;
    };
    set_deadline(&mut st.deadlines, &mut rec, None);
    st.machine_tags.remove(&rec.machine.spec.tags, id);
    if st
        .keys
        .get(&rec.machine.idempotency_key)
        .map(String::as_str)
        == Some(id)
    {
        st.keys.remove(&rec.machine.idempotency_key);
    }
    st.dirty.insert(machine_key(id));
    st.announce(MachineEvent {
        kind: MachineEventKind::Deleted,
        machine: rec.machine,
    });
}

/// Whether `ev` is the cloud stopping or failing a machine on its own.
fn interrupted(ev: &MachineEvent) -> bool {
    let status = &ev.machine.status;
    matches!(ev.kind, MachineEventKind::PhaseChanged { .. })
        && matches!(
            status.phase,
            MachinePhase::Failed | MachinePhase::Terminating | MachinePhase::Terminated
        )
        && status.reason != Some(MachineReason::Deleted)
}

/// Moves a machine to `phase` with the deadline of that phase, records timestamps, releases
/// its address and its quota when it terminates (its record then lives until the retention
/// deadline), and announces the change.
fn set_phase(
    st: &mut State,
    id: &str,
    phase: MachinePhase,
    reason: Option<MachineReason>,
    message: Option<String>,
    due_at: Option<Timestamp>,
    now: Timestamp,
) {
    let Some(mut rec) = st.machines.remove(id) else {
        return;
    };
    let from = rec.machine.status.phase;
    let status = &mut rec.machine.status;
    status.phase = phase;
    status.phase_changed_at = now;
    status.reason = reason;
    status.message = message;
    if phase == MachinePhase::Running && status.running_at.is_none() {
        status.running_at = Some(now);
    }
    let due_at = if phase == MachinePhase::Terminated && from != MachinePhase::Terminated {
        status.terminated_at = Some(now);
        if let (Some(ip), Some(subnet)) = (
            status.private_ip,
            st.subnets.get_mut(&rec.machine.spec.subnet_id),
        ) {
            subnet.allocated.remove(&ip);
        }
        st.account(&rec.machine.spec, false);
        if let Some(ip) = rec.machine.spec.private_ip
            && st.static_ips.get(&ip).map(String::as_str) == Some(id)
        {
            st.static_ips.remove(&ip);
        }
        Some(after(now, st.retention))
    } else {
        due_at
    };
    set_deadline(&mut st.deadlines, &mut rec, due_at);
    let machine = rec.machine.clone();
    st.machines.insert(id.to_string(), rec);
    st.dirty.insert(machine_key(id));
    tracing::debug!(machine = %id, ?from, to = ?phase, "sim cloud: machine phase");
    st.announce(MachineEvent {
        kind: MachineEventKind::PhaseChanged { from },
        machine,
    });
}

/// Keeps the simulated time left on every deadline when the time scale changes (purge
/// deadlines of terminated machines are real time and stay).
fn rescale_deadlines(st: &mut State, old: TimeScale, new: TimeScale, now: Timestamp) {
    let ids: Vec<String> = st.deadlines.iter().map(|(_, id)| id.clone()).collect();
    for id in ids {
        let Some(mut rec) = st.machines.remove(&id) else {
            continue;
        };
        if rec.machine.status.phase != MachinePhase::Terminated
            && let Some(due) = rec.due_at
        {
            let left_sim = until(now, due).mul_f64(old.factor());
            set_deadline(
                &mut st.deadlines,
                &mut rec,
                Some(after(now, new.real(left_sim))),
            );
            st.dirty.insert(machine_key(&id));
        }
        st.machines.insert(id, rec);
    }
}

/// The lifecycle loop: steps the cloud whenever something is due or something changed.
async fn drive(cloud: Weak<SimCloud>, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let Some(c) = cloud.upgrade() else {
            return;
        };
        let sleep = match c.step().await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "sim cloud: lifecycle step failed");
                Duration::from_millis(500)
            }
        };
        drop(c);
        if sleep.is_zero() {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = wake.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}

fn cidrs_overlap(a: ipnet::Ipv4Net, b: ipnet::Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[async_trait]
impl Provider for SimCloud {
    fn name(&self) -> &str {
        "sim"
    }

    fn watch_interruptions(&self, notify: slipway_provider::InterruptionHandler) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let mut events = self.subscribe();
        runtime.spawn(async move {
            loop {
                match events.recv().await {
                    Ok(ev) => {
                        if interrupted(&ev) {
                            notify(&ev.machine);
                        }
                    }
                    // Best effort: what was missed is found by the reconciles' own reads.
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(missed = n, "sim cloud: interruption feed lagged");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        true
    }

    async fn catalog(&self) -> Result<Catalog> {
        self.admit()?;
        Ok(self.catalog.catalog.clone())
    }

    async fn create_network(&self, spec: NetworkSpec) -> Result<Network> {
        self.admit()?;
        self.require_region(&spec.region, "spec.region")?;
        if spec.name.is_empty() {
            return Err(ProviderError::invalid("spec.name", "must not be empty"));
        }
        self.mutate(|st, _| {
            if let Some(existing) = st
                .network_names
                .get(&(spec.region.clone(), spec.name.clone()))
                .and_then(|id| st.networks.get(id))
            {
                if existing.spec.cidr != spec.cidr.trunc() {
                    return Err(ProviderError::invalid(
                        "spec.cidr",
                        format!(
                            "network {} already exists in {} with CIDR {}",
                            spec.name, spec.region, existing.spec.cidr
                        ),
                    ));
                }
                return Ok(existing.clone());
            }
            let n = Network {
                id: new_id("vpc"),
                spec: NetworkSpec {
                    cidr: spec.cidr.trunc(),
                    ..spec
                },
                created_at: Timestamp::now(),
            };
            st.dirty.insert(network_key(&n.id));
            st.add_network(n.clone());
            Ok(n)
        })
        .await
    }

    async fn get_network(&self, id: &str) -> Result<Network> {
        self.admit()?;
        self.lock()
            .networks
            .get(id)
            .cloned()
            .ok_or_else(|| ProviderError::not_found(ResourceKind::Network, id))
    }

    async fn list_networks(&self, selector: &Tags) -> Result<Vec<Network>> {
        self.admit()?;
        let st = self.lock();
        Ok(st
            .network_tags
            .select(&st.networks, selector, |n| &n.spec.tags, Clone::clone))
    }

    async fn delete_network(&self, id: &str) -> Result<()> {
        self.admit()?;
        self.mutate(|st, _| {
            if !st.networks.contains_key(id) {
                return Err(ProviderError::not_found(ResourceKind::Network, id));
            }
            if let Some(s) = st.subnets_of(id).next() {
                return Err(ProviderError::InUse {
                    kind: ResourceKind::Network,
                    id: id.to_string(),
                    reason: format!("subnet {} is in it", s.stored.id),
                });
            }
            st.remove_network(id);
            st.dirty.insert(network_key(id));
            Ok(())
        })
        .await
    }

    async fn create_subnet(&self, spec: SubnetSpec) -> Result<Subnet> {
        self.admit()?;
        if spec.name.is_empty() {
            return Err(ProviderError::invalid("spec.name", "must not be empty"));
        }
        self.mutate(|st, catalog| {
            let Some(network) = st.networks.get(&spec.network_id) else {
                return Err(ProviderError::invalid(
                    "spec.networkId",
                    format!("unknown network {:?}", spec.network_id),
                ));
            };
            match catalog.catalog.zone(&spec.zone) {
                None => {
                    return Err(ProviderError::invalid(
                        "spec.zone",
                        format!("unknown zone {:?}", spec.zone),
                    ));
                }
                Some((region, _)) if region.name != network.spec.region => {
                    return Err(ProviderError::invalid(
                        "spec.zone",
                        format!(
                            "zone {} is in region {}, the network in {}",
                            spec.zone, region.name, network.spec.region
                        ),
                    ));
                }
                Some(_) => {}
            }
            let cidr = spec.cidr.trunc();
            if let Some(existing) = st
                .subnets_of(&spec.network_id)
                .find(|s| s.stored.spec.name == spec.name)
            {
                if existing.stored.spec.cidr != cidr || existing.stored.spec.zone != spec.zone {
                    return Err(ProviderError::invalid(
                        "spec",
                        format!(
                            "subnet {} already exists with CIDR {} in {}",
                            spec.name, existing.stored.spec.cidr, existing.stored.spec.zone
                        ),
                    ));
                }
                return Ok(existing.view());
            }
            if !network.spec.cidr.contains(&cidr) {
                return Err(ProviderError::invalid(
                    "spec.cidr",
                    format!("{cidr} is not inside the network's {}", network.spec.cidr),
                ));
            }
            if let Some(other) = st
                .subnets_of(&spec.network_id)
                .find(|s| cidrs_overlap(s.stored.spec.cidr, cidr))
            {
                return Err(ProviderError::invalid(
                    "spec.cidr",
                    format!(
                        "{cidr} overlaps subnet {} ({})",
                        other.stored.id, other.stored.spec.cidr
                    ),
                ));
            }
            let s = SubnetState {
                stored: StoredSubnet {
                    id: new_id("subnet"),
                    spec: SubnetSpec { cidr, ..spec },
                    created_at: Timestamp::now(),
                },
                allocated: BTreeSet::new(),
            };
            let view = s.view();
            st.dirty.insert(subnet_key(&view.id));
            st.add_subnet(s);
            Ok(view)
        })
        .await
    }

    async fn get_subnet(&self, id: &str) -> Result<Subnet> {
        self.admit()?;
        self.lock()
            .subnets
            .get(id)
            .map(SubnetState::view)
            .ok_or_else(|| ProviderError::not_found(ResourceKind::Subnet, id))
    }

    async fn list_subnets(&self, selector: &Tags) -> Result<Vec<Subnet>> {
        self.admit()?;
        let st = self.lock();
        Ok(st.subnet_tags.select(
            &st.subnets,
            selector,
            |s| &s.stored.spec.tags,
            SubnetState::view,
        ))
    }

    async fn delete_subnet(&self, id: &str) -> Result<()> {
        self.admit()?;
        self.mutate(|st, _| {
            if !st.subnets.contains_key(id) {
                return Err(ProviderError::not_found(ResourceKind::Subnet, id));
            }
            if let Some(m) = st.machines.values().find(|m| {
                m.machine.spec.subnet_id == id && m.machine.status.phase != MachinePhase::Terminated
            }) {
                return Err(ProviderError::InUse {
                    kind: ResourceKind::Subnet,
                    id: id.to_string(),
                    reason: format!("machine {} uses it", m.machine.id),
                });
            }
            if let Some(lb) = st
                .lbs
                .values()
                .find(|lb| lb.spec.subnet_ids.iter().any(|s| s == id))
            {
                return Err(ProviderError::InUse {
                    kind: ResourceKind::Subnet,
                    id: id.to_string(),
                    reason: format!("load balancer {} uses it", lb.id),
                });
            }
            st.remove_subnet(id);
            st.dirty.insert(subnet_key(id));
            Ok(())
        })
        .await
    }

    async fn create_load_balancer(&self, spec: LoadBalancerSpec) -> Result<LoadBalancer> {
        self.admit()?;
        self.require_region(&spec.region, "spec.region")?;
        if spec.name.is_empty() {
            return Err(ProviderError::invalid("spec.name", "must not be empty"));
        }
        if spec.port == 0 {
            return Err(ProviderError::invalid("spec.port", "must be 1-65535"));
        }
        self.mutate(|st, _| {
            if let Some(existing) = st
                .lb_names
                .get(&(spec.region.clone(), spec.name.clone()))
                .and_then(|id| st.lbs.get(id))
            {
                if existing.spec != spec {
                    return Err(ProviderError::invalid(
                        "spec",
                        format!(
                            "load balancer {} already exists in {} with another spec",
                            spec.name, spec.region
                        ),
                    ));
                }
                return Ok(existing.clone());
            }
            for subnet in &spec.subnet_ids {
                let Some(s) = st.subnets.get(subnet) else {
                    return Err(ProviderError::invalid(
                        "spec.subnetIds",
                        format!("unknown subnet {subnet:?}"),
                    ));
                };
                let in_region = self
                    .catalog
                    .catalog
                    .zone(&s.stored.spec.zone)
                    .is_some_and(|(r, _)| r.name == spec.region);
                if !in_region {
                    return Err(ProviderError::invalid(
                        "spec.subnetIds",
                        format!("subnet {subnet} is not in region {}", spec.region),
                    ));
                }
            }
            let Some(address) = st.free_lb_address() else {
                return Err(ProviderError::QuotaExceeded {
                    quota: "load-balancers".into(),
                    scope: "cloud".into(),
                    limit: u64::from(LB_RANGE),
                    in_use: st.lb_addresses.len() as u64,
                    requested: 1,
                });
            };
            let id = new_id("lb");
            let lb = LoadBalancer {
                dns_name: format!(
                    "{}-{}.elb.{}.sim.slipway.dev",
                    spec.name,
                    &id[3..11],
                    spec.region
                ),
                id,
                spec,
                address,
                created_at: Timestamp::now(),
                url: None,
                ca_pem: None,
            };
            st.dirty.insert(lb_key(&lb.id));
            st.add_lb(lb.clone());
            Ok(lb)
        })
        .await
        .map(|lb| self.present(lb))
    }

    async fn get_load_balancer(&self, id: &str) -> Result<LoadBalancer> {
        self.admit()?;
        let lb = self.lock().lbs.get(id).cloned();
        lb.map(|lb| self.present(lb))
            .ok_or_else(|| ProviderError::not_found(ResourceKind::LoadBalancer, id))
    }

    async fn list_load_balancers(&self, selector: &Tags) -> Result<Vec<LoadBalancer>> {
        self.admit()?;
        let lbs: Vec<LoadBalancer> = {
            let st = self.lock();
            st.lb_tags
                .select(&st.lbs, selector, |lb| &lb.spec.tags, Clone::clone)
        };
        Ok(lbs.into_iter().map(|lb| self.present(lb)).collect())
    }

    async fn delete_load_balancer(&self, id: &str) -> Result<()> {
        self.admit()?;
        self.mutate(|st, _| {
            if st.remove_lb(id).is_none() {
                return Err(ProviderError::not_found(ResourceKind::LoadBalancer, id));
            }
            st.dirty.insert(lb_key(id));
            Ok(())
        })
        .await
    }

    async fn create_machine(&self, idempotency_key: &str, spec: MachineSpec) -> Result<Machine> {
        self.admit()?;
        if idempotency_key.is_empty() {
            return Err(ProviderError::invalid(
                "idempotencyKey",
                "must not be empty",
            ));
        }
        self.mutate(|st, catalog| {
            if let Some(id) = st.keys.get(idempotency_key)
                && let Some(rec) = st.machines.get(id)
            {
                if rec.machine.spec != spec {
                    return Err(ProviderError::invalid(
                        "idempotencyKey",
                        format!("{idempotency_key:?} was used for machine {id} with another spec"),
                    ));
                }
                return Ok(rec.machine.clone());
            }
            let ty = self.check_machine_spec(st, &spec)?;
            let unavailable = || ProviderError::CapacityUnavailable {
                zone: spec.zone.clone(),
                machine_type: spec.machine_type.clone(),
            };
            if st.faults.zone_outages.contains(&spec.zone)
                || (spec.capacity_type == CapacityType::Spot
                    && st.faults.spot_unavailable.contains(&spec.zone))
            {
                return Err(unavailable());
            }
            let limit = st
                .faults
                .zone_capacity
                .get(&capacity_key(&spec.zone, &spec.machine_type))
                .or_else(|| {
                    catalog
                        .capacity
                        .get(&(spec.zone.clone(), spec.machine_type.clone()))
                })
                .copied();
            if let Some(limit) = limit {
                let used = st
                    .machines_in_use
                    .get(&(spec.zone.clone(), spec.machine_type.clone()))
                    .copied()
                    .unwrap_or(0);
                if used >= limit {
                    return Err(unavailable());
                }
            }
            let quota = st
                .faults
                .vcpu_quotas
                .get(&spec.region)
                .or_else(|| catalog.vcpu_quotas.get(&spec.region))
                .copied()
                .unwrap_or(u64::MAX);
            let in_use = st.vcpus_in_use.get(&spec.region).copied().unwrap_or(0);
            let requested = u64::from(ty.vcpu);
            if in_use.saturating_add(requested) > quota {
                return Err(ProviderError::QuotaExceeded {
                    quota: "vcpus".into(),
                    scope: spec.region.clone(),
                    limit: quota,
                    in_use,
                    requested,
                });
            }
            let ip = if let Some(ip) = spec.private_ip {
                if let Some(holder) = st.static_ips.get(&ip) {
                    return Err(ProviderError::invalid(
                        "spec.privateIp",
                        format!("{ip} is held by machine {holder}"),
                    ));
                }
                ip
            } else {
                let Some(ip) = st
                    .subnets
                    .get_mut(&spec.subnet_id)
                    .and_then(SubnetState::allocate)
                else {
                    return Err(ProviderError::AddressesExhausted {
                        subnet: spec.subnet_id.clone(),
                    });
                };
                ip
            };
            let now = Timestamp::now();
            let id = new_id("i");
            let machine = Machine {
                status: MachineStatus {
                    phase: MachinePhase::Pending,
                    provider_id: format!("sim:///{}/{id}", spec.zone),
                    private_ip: Some(ip),
                    created_at: now,
                    phase_changed_at: now,
                    running_at: None,
                    terminated_at: None,
                    reason: None,
                    message: None,
                },
                id: id.clone(),
                idempotency_key: idempotency_key.to_string(),
                spec,
            };
            let due = after(now, st.faults.time_scale.real(self.config.pending_delay));
            let mut rec = MachineRecord {
                machine: machine.clone(),
                due_at: None,
            };
            set_deadline(&mut st.deadlines, &mut rec, Some(due));
            st.account(&machine.spec, true);
            st.machine_tags.add(&machine.spec.tags, &id);
            if let Some(ip) = machine.spec.private_ip {
                st.static_ips.insert(ip, id.clone());
            }
            st.machines.insert(id.clone(), rec);
            st.keys.insert(idempotency_key.to_string(), id.clone());
            st.dirty.insert(machine_key(&id));
            st.announce(MachineEvent {
                kind: MachineEventKind::Created,
                machine: machine.clone(),
            });
            Ok(machine)
        })
        .await
    }

    async fn get_machine(&self, id: &str) -> Result<Machine> {
        self.admit()?;
        self.lock()
            .machines
            .get(id)
            .map(|r| r.machine.clone())
            .ok_or_else(|| ProviderError::not_found(ResourceKind::Machine, id))
    }

    async fn list_machines(&self, selector: &Tags) -> Result<Vec<Machine>> {
        self.admit()?;
        let st = self.lock();
        Ok(st.machine_tags.select(
            &st.machines,
            selector,
            |r| &r.machine.spec.tags,
            |r| r.machine.clone(),
        ))
    }

    async fn delete_machine(&self, id: &str) -> Result<Machine> {
        self.admit()?;
        self.mutate(|st, _| {
            let Some(rec) = st.machines.get(id) else {
                return Err(ProviderError::not_found(ResourceKind::Machine, id));
            };
            if rec.machine.status.phase.is_terminal() {
                return Ok(rec.machine.clone());
            }
            let now = Timestamp::now();
            let due = after(
                now,
                st.faults.time_scale.real(self.config.termination_delay),
            );
            set_phase(
                st,
                id,
                MachinePhase::Terminating,
                Some(MachineReason::Deleted),
                None,
                Some(due),
                now,
            );
            st.machines
                .get(id)
                .map(|r| r.machine.clone())
                .ok_or_else(|| internal("machine vanished while deleting"))
        })
        .await
    }

    async fn patch_machine(&self, id: &str, patch: MachinePatch) -> Result<Machine> {
        self.admit()?;
        self.mutate(|st, _| {
            let Some(rec) = st.machines.get_mut(id) else {
                return Err(ProviderError::not_found(ResourceKind::Machine, id));
            };
            if patch.is_empty() {
                return Err(ProviderError::invalid(
                    "patch",
                    "set image and/or kubeletVersion",
                ));
            }
            if rec.machine.status.phase.is_terminal() {
                return Err(ProviderError::invalid(
                    "patch",
                    format!("machine {id} is {:?}", rec.machine.status.phase),
                ));
            }
            if patch.image.as_deref() == Some("") || patch.kubelet_version.as_deref() == Some("") {
                return Err(ProviderError::invalid("patch", "values must not be empty"));
            }
            if let Some(image) = patch.image {
                rec.machine.spec.image = image;
            }
            if let Some(v) = patch.kubelet_version {
                rec.machine.spec.kubelet_version = v;
            }
            let machine = rec.machine.clone();
            st.dirty.insert(machine_key(id));
            st.announce(MachineEvent {
                kind: MachineEventKind::Updated,
                machine: machine.clone(),
            });
            Ok(machine)
        })
        .await
    }
}
