//! [`Controller`]: a level-triggered reconcile loop over one primary kind.
//!
//! Keys (namespace/name) come from the primary informer, from owned objects (through their
//! `ownerReferences` with `controller: true`), from related objects (through a mapper), and
//! from a periodic resync of every cached primary object. They go through a [`WorkQueue`],
//! so a key is reconciled by at most one worker at a time, changes that arrive meanwhile
//! cause exactly one more run, failures back off per key, and `Action::requeue` schedules
//! the next run. The reconcile function gets the cached object; objects no longer in the
//! cache are not reconciled (use finalizers for clean-up).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use slipway_client::Api;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::ObjectKey;
use crate::metrics::{ControllerLabels, Metrics, ResultLabels};
use crate::queue::{Backoff, WorkQueue};
use crate::reflector::{Event, Informer, InformerConfig, Store};

/// What to do after a reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    kind: ActionKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ActionKind {
    Requeue(Duration),
    AwaitChange,
    Backoff,
}

impl Action {
    /// Run again after `delay` (even if nothing changes).
    pub fn requeue(delay: Duration) -> Self {
        Self {
            kind: ActionKind::Requeue(delay),
        }
    }

    /// Run again only when something changes (or at the next resync).
    pub fn await_change() -> Self {
        Self {
            kind: ActionKind::AwaitChange,
        }
    }

    /// Run again after the key's exponential backoff (the default after an error).
    pub fn backoff() -> Self {
        Self {
            kind: ActionKind::Backoff,
        }
    }

    /// The requeue delay, if this action asks for one.
    pub fn requeue_after(&self) -> Option<Duration> {
        match self.kind {
            ActionKind::Requeue(d) => Some(d),
            _ => None,
        }
    }
}

/// The resync queues a period's objects in at most this many slices, one every
/// `period / slices` (and no more often than once a second).
const RESYNC_SLICES: u32 = 60;

/// Which of `slices` resync slices `key` falls in: fixed for a key, spread evenly over keys.
/// FNV-1a over the namespace and the name: the same slice in every run and every process,
/// and cheap, since every tick of the resync looks at every cached key.
fn resync_slice(key: &ObjectKey, slices: u32) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let namespace = key.namespace.as_deref().unwrap_or_default().bytes();
    // A separator byte no name holds, so that ("ab", "c") and ("a", "bc") differ.
    let bytes = namespace.chain([0xff]).chain(key.name.bytes());
    let hash = bytes.fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    u32::try_from(hash % u64::from(slices.max(1))).unwrap_or(0)
}

/// The level-triggered safety net: every cached object is queued once a `period`, starting
/// one period after the controller does. The objects are spread over the period by their
/// key's hash, so a cache of 100,000 Machines gives a steady trickle of reconciles instead
/// of all of them at once each period (what made an idle fleet's CPU spike to a fifth of a
/// core for a minute every ten).
async fn resync<K>(queue: WorkQueue<ObjectKey>, store: Store<K>, period: Duration) {
    let slices = u32::try_from(period.as_secs())
        .unwrap_or(u32::MAX)
        .clamp(1, RESYNC_SLICES);
    let step = period / slices;
    let mut tick = tokio::time::interval_at(Instant::now() + period, step);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for slice in (0..slices).cycle() {
        tick.tick().await;
        for key in store.keys_where(|key| resync_slice(key, slices) == slice) {
            queue.add(key);
        }
    }
}

/// Tunables of a controller.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// At most this many reconciles at once (of different keys).
    pub concurrency: usize,
    /// Per-key backoff after errors.
    pub backoff: Backoff,
    /// Queue every cached object this often (level-triggered safety net); `None` disables.
    pub resync: Option<Duration>,
    /// On shutdown, wait this long for in-flight reconciles before abandoning them.
    pub shutdown_timeout: Duration,
    /// Whether a reconcile's [`Action`] replaces the requeue an earlier reconcile of the key
    /// scheduled (a requeue after any delay, or none for [`Action::await_change`]). Off, as
    /// in controller-runtime and kube-rs, the earliest pending requeue wins, so a recheck a
    /// key asked for while it was converging still runs after it converged. Turn it on for
    /// a reconciler whose every result asks for all the rechecks its key still needs; an
    /// error's backoff leaves the pending requeue alone.
    pub requeue_replaces: bool,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            backoff: Backoff::default(),
            resync: None,
            shutdown_timeout: Duration::from_secs(30),
            requeue_replaces: false,
        }
    }
}

type Source = Box<dyn FnOnce(WorkQueue<ObjectKey>) -> BoxFuture<'static, ()> + Send>;

/// A controller for kind `K`; build with [`Controller::new`], add [`Controller::owns`] /
/// [`Controller::watches`], then [`Controller::run`].
pub struct Controller<K> {
    name: String,
    primary: Informer<K>,
    primary_events: tokio::sync::mpsc::UnboundedReceiver<Event<K>>,
    sources: Vec<Source>,
    config: ControllerConfig,
    metrics: Metrics,
}

/// Run an informer, forwarding the keys `map` gives for each of its events to the queue.
fn source<O>(
    mut informer: Informer<O>,
    map: impl Fn(&O) -> Vec<ObjectKey> + Send + 'static,
) -> Source
where
    O: kube::Resource + Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    let mut events = informer.subscribe();
    Box::new(move |queue: WorkQueue<ObjectKey>| {
        async move {
            let run = tokio::spawn(informer.run());
            while let Some(event) = events.recv().await {
                for key in map(event.object()) {
                    queue.add(key);
                }
            }
            run.abort();
        }
        .boxed()
    })
}

impl<K> Controller<K>
where
    K: kube::Resource<DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + Send
        + Sync
        + 'static,
{
    /// A controller named `name` (in logs and metrics) over the objects `api` sees.
    pub fn new(name: &str, api: Api<K>, informer: InformerConfig) -> Self {
        let mut primary = Informer::new(api, informer);
        let primary_events = primary.subscribe();
        Self {
            name: name.to_string(),
            primary,
            primary_events,
            sources: Vec::new(),
            config: ControllerConfig::default(),
            metrics: Metrics::default(),
        }
    }

    /// The primary cache (read it from the reconcile function through your context).
    pub fn store(&self) -> Store<K> {
        self.primary.store()
    }

    /// Keep an index of the primary cache ([`Informer::with_index`]).
    #[must_use]
    pub fn with_index(mut self, name: &'static str, values_of: crate::IndexFn<K>) -> Self {
        self.primary = self.primary.with_index(name, values_of);
        self
    }

    /// Every change of the primary objects from when this controller runs, for another
    /// controller of this process ([`Controller::owns_events`]): the two share one watch
    /// and one cache instead of keeping a copy each. The events come only while this
    /// controller runs.
    pub fn subscribe(&mut self) -> tokio::sync::mpsc::UnboundedReceiver<Event<K>> {
        self.primary.subscribe()
    }

    /// Set the tunables.
    pub fn with_config(mut self, config: ControllerConfig) -> Self {
        self.config = config;
        self
    }

    /// Record into these metrics (shared by the process's controllers).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Reconcile the owner when an object of kind `C` it controls changes: `C`'s
    /// `ownerReferences` entry with `controller: true` and `K`'s apiVersion and kind names it
    /// (in the child's namespace).
    pub fn owns<C>(self, api: Api<C>, informer: InformerConfig) -> Self
    where
        C: kube::Resource + Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.owns_informer(Informer::new(api, informer))
    }

    /// [`Controller::owns`] through an informer the caller built, so that the reconcile
    /// function can read the owned objects from its store (e.g. with
    /// [`Store::controlled_by`](crate::reflector::Store::controlled_by)) instead of listing
    /// them from the server.
    pub fn owns_informer<C>(mut self, informer: Informer<C>) -> Self
    where
        C: kube::Resource + Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let api_version = K::api_version(&()).into_owned();
        let kind = K::kind(&()).into_owned();
        self.sources.push(source(informer, move |child: &C| {
            owner_keys(child.meta(), &api_version, &kind)
        }));
        self
    }

    /// [`Controller::owns`] through the events of another controller's primary informer
    /// ([`Controller::subscribe`]), read through that controller's [`Controller::store`].
    pub fn owns_events<C>(
        mut self,
        mut events: tokio::sync::mpsc::UnboundedReceiver<Event<C>>,
    ) -> Self
    where
        C: kube::Resource + Send + Sync + 'static,
    {
        let api_version = K::api_version(&()).into_owned();
        let kind = K::kind(&()).into_owned();
        self.sources
            .push(Box::new(move |queue: WorkQueue<ObjectKey>| {
                async move {
                    while let Some(event) = events.recv().await {
                        for key in owner_keys(event.object().meta(), &api_version, &kind) {
                            queue.add(key);
                        }
                    }
                }
                .boxed()
            }));
        self
    }

    /// Reconcile the objects `mapper` names when an object of kind `O` changes.
    pub fn watches<O>(
        mut self,
        api: Api<O>,
        informer: InformerConfig,
        mapper: impl Fn(&O) -> Vec<ObjectKey> + Send + Sync + 'static,
    ) -> Self
    where
        O: kube::Resource + Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.sources
            .push(source(Informer::new(api, informer), mapper));
        self
    }

    /// Reconcile the objects whose keys arrive on `keys` (events from outside the platform
    /// API, such as a workload cluster's Nodes).
    pub fn reconcile_on(
        mut self,
        mut keys: tokio::sync::mpsc::UnboundedReceiver<ObjectKey>,
    ) -> Self {
        self.sources
            .push(Box::new(move |queue: WorkQueue<ObjectKey>| {
                async move {
                    while let Some(key) = keys.recv().await {
                        queue.add(key);
                    }
                }
                .boxed()
            }));
        self
    }

    /// Run until `shutdown` completes: then stop taking work, let in-flight reconciles finish
    /// (up to [`ControllerConfig::shutdown_timeout`]) and return.
    ///
    /// `reconcile` gets the cached object and the shared context; `error_policy` decides what
    /// happens after an error (usually [`Action::backoff`]).
    pub async fn run<Ctx, E, R, Fut, P>(
        self,
        reconcile: R,
        error_policy: P,
        ctx: Arc<Ctx>,
        shutdown: impl Future<Output = ()> + Send,
    ) where
        Ctx: Send + Sync + 'static,
        E: std::fmt::Display + Send + 'static,
        R: Fn(Arc<K>, Arc<Ctx>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        P: Fn(&Arc<K>, &E, &Arc<Ctx>) -> Action + Send + Sync + 'static,
    {
        let Self {
            name,
            primary,
            mut primary_events,
            sources,
            config,
            metrics,
        } = self;
        let queue = WorkQueue::new(config.backoff);
        let store = primary.store();
        let mut feeders = JoinSet::new();
        feeders.spawn(primary.run());
        {
            let queue = queue.clone();
            feeders.spawn(async move {
                while let Some(event) = primary_events.recv().await {
                    queue.add(ObjectKey::of(&**event.object()));
                }
            });
        }
        for source in sources {
            feeders.spawn(source(queue.clone()));
        }
        if let Some(period) = config.resync {
            feeders.spawn(resync(queue.clone(), store.clone(), period));
        }

        let shared = Arc::new(Worker {
            name: name.clone(),
            queue: queue.clone(),
            store: store.clone(),
            reconcile,
            error_policy,
            ctx,
            metrics,
            requeue_replaces: config.requeue_replaces,
        });
        let mut workers = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        tokio::select! {
            () = store.wait_synced() => {
                for _ in 0..config.concurrency.max(1) {
                    let w = Arc::clone(&shared);
                    workers.spawn(async move { w.work().await });
                }
                shutdown.as_mut().await;
            }
            () = shutdown.as_mut() => {}
        }
        tracing::info!(controller = %name, "controller shutting down");
        queue.shut_down();
        feeders.abort_all();
        let drained = tokio::time::timeout(config.shutdown_timeout, async {
            while workers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(controller = %name, "in-flight reconciles did not finish in time; abandoning them");
            workers.abort_all();
        }
    }
}

/// The keys of the controlling owners of type `api_version`/`kind` in `meta`.
pub fn owner_keys(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    api_version: &str,
    kind: &str,
) -> Vec<ObjectKey> {
    meta.owner_references
        .iter()
        .flatten()
        .filter(|r| r.controller == Some(true) && r.api_version == api_version && r.kind == kind)
        .map(|r| ObjectKey {
            namespace: meta.namespace.clone(),
            name: r.name.clone(),
        })
        .collect()
}

struct Worker<K, Ctx, R, P> {
    name: String,
    queue: WorkQueue<ObjectKey>,
    store: Store<K>,
    reconcile: R,
    error_policy: P,
    ctx: Arc<Ctx>,
    metrics: Metrics,
    requeue_replaces: bool,
}

impl<K, Ctx, E, R, Fut, P> Worker<K, Ctx, R, P>
where
    K: Send + Sync + 'static,
    Ctx: Send + Sync + 'static,
    E: std::fmt::Display + Send + 'static,
    R: Fn(Arc<K>, Arc<Ctx>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    P: Fn(&Arc<K>, &E, &Arc<Ctx>) -> Action + Send + Sync + 'static,
{
    async fn work(&self) {
        let labels = ControllerLabels {
            controller: self.name.clone(),
        };
        while let Some((key, waited)) = self.queue.get().await {
            self.metrics
                .queue_latency
                .get_or_create(&labels)
                .observe(waited.as_secs_f64());
            self.metrics
                .queue_depth
                .get_or_create(&labels)
                .set(i64::try_from(self.queue.len()).unwrap_or(i64::MAX));
            self.process(&key, &labels).await;
            self.queue.done(&key);
        }
    }

    async fn process(&self, key: &ObjectKey, labels: &ControllerLabels) {
        let Some(obj) = self.store.get(key) else {
            // Deleted: nothing to reconcile.
            self.queue.forget(key);
            return;
        };
        let started = Instant::now();
        let result = (self.reconcile)(Arc::clone(&obj), Arc::clone(&self.ctx)).await;
        self.metrics
            .duration
            .get_or_create(labels)
            .observe(started.elapsed().as_secs_f64());
        let (action, outcome) = match result {
            Ok(action) => {
                self.queue.forget(key);
                let outcome = if action.requeue_after().is_some() {
                    "requeue"
                } else {
                    "success"
                };
                (action, outcome)
            }
            Err(e) => {
                tracing::warn!(controller = %self.name, key = %key, error = %e, "reconcile failed");
                self.metrics.errors.get_or_create(labels).inc();
                ((self.error_policy)(&obj, &e, &self.ctx), "error")
            }
        };
        self.metrics
            .reconciles
            .get_or_create(&ResultLabels {
                controller: self.name.clone(),
                result: outcome.to_string(),
            })
            .inc();
        match action.kind {
            ActionKind::Requeue(d) if self.requeue_replaces => {
                self.queue.reschedule(key.clone(), Some(d));
            }
            ActionKind::Requeue(d) => self.queue.add_after(key.clone(), d),
            ActionKind::Backoff => {
                self.queue.add_rate_limited(key.clone());
            }
            ActionKind::AwaitChange if self.requeue_replaces => {
                self.queue.reschedule(key.clone(), None);
            }
            ActionKind::AwaitChange => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;

    fn config_map(i: usize) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.namespace = Some("team".into());
        cm.metadata.name = Some(format!("cm-{i}"));
        cm
    }

    /// Takes what the queue holds now.
    async fn drain(queue: &WorkQueue<ObjectKey>) -> Vec<ObjectKey> {
        let mut keys = Vec::new();
        while !queue.is_empty() {
            let Some((key, _)) = queue.get().await else {
                break;
            };
            queue.done(&key);
            keys.push(key);
        }
        keys
    }

    #[tokio::test(start_paused = true)]
    async fn the_resync_queues_every_object_once_a_period_spread_over_it() {
        const OBJECTS: usize = 6_000;
        let period = Duration::from_secs(600);
        let store = Store::holding((0..OBJECTS).map(config_map));
        let queue = WorkQueue::new(Backoff::default());
        let task = tokio::spawn(resync(queue.clone(), store, period));

        // Nothing in the first period: the informer's initial list covered it.
        tokio::time::sleep(period - Duration::from_secs(1)).await;
        assert!(drain(&queue).await.is_empty());

        // Then one slice every ten seconds; after two periods, two rounds.
        let mut seen: BTreeMap<ObjectKey, usize> = BTreeMap::new();
        let mut largest = 0;
        for _ in 0..2 * RESYNC_SLICES {
            tokio::time::sleep(period / RESYNC_SLICES).await;
            let keys = drain(&queue).await;
            largest = largest.max(keys.len());
            for key in keys {
                *seen.entry(key).or_default() += 1;
            }
        }
        task.abort();
        assert_eq!(seen.len(), OBJECTS, "every object is queued");
        assert!(seen.values().all(|n| *n == 2), "each once a period");
        let even = OBJECTS / RESYNC_SLICES as usize;
        assert!(
            largest < 2 * even,
            "a slice is about 1/{RESYNC_SLICES} of the objects ({even}), not {largest}"
        );
    }

    #[test]
    fn a_key_keeps_its_resync_slice() {
        let key = ObjectKey::namespaced("team", "cm-1");
        assert_eq!(resync_slice(&key, 60), resync_slice(&key.clone(), 60));
        assert_eq!(resync_slice(&key, 1), 0);
        assert!(resync_slice(&key, 7) < 7);
        // The same slice in every process: FNV-1a, not a randomly seeded hash.
        assert_eq!(resync_slice(&key, 60), 47);
        // The namespace and the name are kept apart.
        assert_ne!(
            resync_slice(&ObjectKey::namespaced("ab", "c"), 60),
            resync_slice(&ObjectKey::namespaced("a", "bc"), 60)
        );
    }
}
