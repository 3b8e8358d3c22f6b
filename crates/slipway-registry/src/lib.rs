//! The registry: Kubernetes object semantics on top of the store.
//!
//! Objects are untyped JSON (`serde_json::Value`) described by a
//! [`ResourceDef`](slipway_apimachinery::ResourceDef); the registry gives every kind the same
//! semantics kube-apiserver gives a custom resource: uid and creationTimestamp on create,
//! resourceVersion from the store revision with optimistic concurrency, generation that moves
//! only with the spec, the status subresource, schema validation with strict/warn/ignore
//! handling of unknown fields, defaulting and the kind's own validation, managedFields,
//! server-side apply, finalizers and deletionTimestamp, label and field selectors, consistent
//! paged lists, and watches served from one shared [`cache::WatchCache`]. Background loops
//! ([`gc`]) collect objects whose owners are gone and empty terminating namespaces.
//! Two subresources have their own modules: [`eviction`] (`pods/{name}/eviction`, honouring
//! PodDisruptionBudgets) and [`scale`] (`autoscaling/v1` Scale of kinds that declare one).
//!
//! Nothing here knows about HTTP; the API server and in-process clients both call
//! [`Registry`]. Only the registry touches the store.

pub mod cache;
pub mod codec;
pub mod eviction;
pub mod fence;
mod gc;
pub mod keys;
mod ops;
pub mod scale;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use slipway_apimachinery::selector::{FieldSelector, LabelSelector};
use slipway_apimachinery::{ApiError, ResourceDef};
use slipway_store::{Revision, Store, StoreError};

pub use fence::{FENCE_HEADER, FENCED_REASON, Fence};
pub use watch::{WatchEvent, WatchEventType, WatchParams, WatchStream};

/// How unknown fields in a request are handled (`fieldValidation`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Reject the request, naming every unknown field.
    Strict,
    /// Accept it, drop the fields, and return a warning for each (the server default).
    #[default]
    Warn,
    /// Drop the fields silently.
    Ignore,
}

impl FieldValidation {
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None | Some("") | Some("Warn") => Ok(Self::Warn),
            Some("Strict") => Ok(Self::Strict),
            Some("Ignore") => Ok(Self::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation {other:?} is not supported: use Strict, Warn or Ignore"
            ))),
        }
    }
}

/// Options shared by every write.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Validate and answer as if written, write nothing (`dryRun=All`).
    pub dry_run: bool,
    pub field_validation: FieldValidation,
    /// The manager recorded in managedFields.
    pub field_manager: Option<String>,
    /// Server-side apply: take ownership of conflicting fields.
    pub force: bool,
    /// Write only while this lease names this holder (see [`fence`]).
    pub fence: Option<Fence>,
}

impl WriteOptions {
    fn manager(&self) -> &str {
        self.field_manager.as_deref().unwrap_or("unknown")
    }
}

/// The result of a write.
#[derive(Debug, Clone)]
pub struct Written {
    /// The object as written; shared with the watch cache, which takes it instead of
    /// decoding the stored bytes again.
    pub object: Arc<Value>,
    /// Warnings for the client (unknown fields under `fieldValidation=Warn`).
    pub warnings: Vec<String>,
    /// True when the write created the object.
    pub created: bool,
}

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// The object: changes to status are ignored when the kind has a status subresource.
    Main,
    /// `/status`: only status changes are kept.
    Status,
}

impl Subresource {
    fn name(self) -> Option<&'static str> {
        match self {
            Self::Main => None,
            Self::Status => Some("status"),
        }
    }
}

/// A patch, already decoded.
#[derive(Debug, Clone)]
pub enum Patch {
    /// RFC 7386 JSON merge patch.
    Merge(Value),
    /// RFC 6902 JSON patch.
    Json(Value),
    /// Strategic merge patch (built-in kinds only).
    Strategic(Value),
    /// Server-side apply of this configuration.
    Apply(Value),
}

/// How a list is read.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub label_selector: Option<LabelSelector>,
    pub field_selector: Option<FieldSelector>,
    /// Page size; `None` or 0 for everything.
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    /// `Exact` or `NotOlderThan` (with `resource_version`).
    pub resource_version_match: Option<String>,
}

/// A page of a list.
#[derive(Debug, Clone)]
pub struct ObjectList {
    pub items: Vec<Arc<Value>>,
    pub resource_version: Revision,
    pub continue_token: Option<String>,
    pub remaining_item_count: Option<i64>,
}

/// Deletion propagation to dependents (`propagationPolicy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Propagation {
    /// Delete the object now; the garbage collector deletes dependents afterwards.
    #[default]
    Background,
    /// Delete dependents first; the object stays (finalizer `foregroundDeletion`) until they are gone.
    Foreground,
    /// Keep dependents, removing their owner references (finalizer `orphan`).
    Orphan,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub dry_run: bool,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub propagation: Option<Propagation>,
    /// Delete only while this lease names this holder (see [`fence`]).
    pub fence: Option<Fence>,
}

/// What a delete did.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// The object is gone; this was its last state.
    Gone(Value),
    /// The object is marked for deletion and waits for its finalizers.
    Pending(Value),
}

impl Deleted {
    pub fn object(&self) -> &Value {
        match self {
            Self::Gone(obj) | Self::Pending(obj) => obj,
        }
    }
}

/// Events a watch cache keeps by default ([`RegistryConfig::watch_window`]).
pub const DEFAULT_WATCH_WINDOW: usize = 100_000;

/// Of the window's events, how many of the newest stay decoded by default
/// ([`RegistryConfig::watch_decoded`]).
pub const DEFAULT_WATCH_DECODED: usize = 256;

/// Tunables of a registry.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Events the watch cache keeps for watchers resuming from a resourceVersion.
    pub watch_window: usize,
    /// How many of the window's newest events stay decoded; older ones keep only the store's
    /// bytes of the object and its previous version, decoded again for a watcher that
    /// replays that far (one that fell behind the live broadcast, whose ring is the window
    /// up to 4,096 events, or one resuming from an older resourceVersion). A registry among
    /// thousands (a simulated cluster's) keeps none: its decoded events are mostly
    /// superseded versions nothing else holds.
    pub watch_decoded: usize,
    /// Compact the store every interval, to the revision seen one interval earlier
    /// (kube-apiserver's policy). `None` disables compaction.
    pub compaction_interval: Option<Duration>,
    /// The garbage collector's pace: after a change that can matter to it
    /// ([`cache::WatchCache::collector_epoch`]: a creation that is not inert, a change of
    /// owners or finalizers) it looks no sooner than this after its last look. Deletions
    /// wake it at once; with no such change it sleeps.
    pub gc_interval: Duration,
    /// How often watchers that asked for bookmarks get one.
    pub bookmark_interval: Duration,
    /// How long a read waits for the watch cache to reach a requested revision.
    pub cache_wait: Duration,
    /// Where in the store the registry keeps its objects (see [`keys`]).
    pub keys: keys::Keys,
    /// Namespaces created at start and protected from deletion.
    pub system_namespaces: Vec<String>,
    /// Follow the store through this watch, shared with other registries under other roots,
    /// rather than through a watch of the registry's own.
    pub shared_watch: Option<Arc<cache::SharedWatch>>,
    /// Admission plugins (see [`slipway_apimachinery::admission`]), each for its kind.
    pub admission: Vec<Arc<dyn slipway_apimachinery::Admission>>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            watch_window: DEFAULT_WATCH_WINDOW,
            watch_decoded: DEFAULT_WATCH_DECODED,
            compaction_interval: Some(Duration::from_secs(300)),
            gc_interval: Duration::from_secs(10),
            bookmark_interval: Duration::from_secs(60),
            cache_wait: Duration::from_secs(3),
            keys: keys::Keys::default(),
            system_namespaces: vec!["default".to_string()],
            shared_watch: None,
            admission: Vec::new(),
        }
    }
}

/// The registry of every served kind over one store.
pub struct Registry {
    store: Arc<dyn Store>,
    defs: Vec<Arc<ResourceDef>>,
    cache: Arc<cache::WatchCache>,
    keys: keys::Keys,
    config: RegistryConfig,
    gc_wakeup: Arc<tokio::sync::Notify>,
    /// Set when a garbage collection pass could not finish deciding (a conflict).
    gc_retry: std::sync::atomic::AtomicBool,
    /// Dropped with the registry: stops the watch cache's task.
    _stop: tokio::sync::watch::Sender<()>,
}

impl Registry {
    /// Open a registry serving `defs` over `store`, load the watch cache and start the
    /// background loops (watch cache, garbage collector, namespace finalizer, compaction).
    /// Creates the system namespaces (`default`) if missing. The loops end when the registry
    /// is dropped.
    pub async fn start(
        store: Arc<dyn Store>,
        defs: Vec<ResourceDef>,
        config: RegistryConfig,
    ) -> Result<Arc<Self>, ApiError> {
        Self::start_shared(store, defs.into_iter().map(Arc::new).collect(), config).await
    }

    /// [`Registry::start`] with kind definitions shared with other registries (many logical
    /// clusters serving the same kinds keep one copy of each schema).
    pub async fn start_shared(
        store: Arc<dyn Store>,
        defs: Vec<Arc<ResourceDef>>,
        config: RegistryConfig,
    ) -> Result<Arc<Self>, ApiError> {
        let root = config.keys.root().to_string();
        let cache = match &config.shared_watch {
            Some(shared) => cache::WatchCache::new_shared(
                config.watch_window,
                config.watch_decoded,
                Arc::clone(shared),
                root.clone(),
            ),
            None => cache::WatchCache::new(config.watch_window, config.watch_decoded),
        };
        let (stop, mut stopped) = tokio::sync::watch::channel(());
        let registry = Arc::new(Self {
            store: Arc::clone(&store),
            defs,
            cache: Arc::clone(&cache),
            keys: config.keys.clone(),
            config,
            gc_wakeup: Arc::new(tokio::sync::Notify::new()),
            gc_retry: std::sync::atomic::AtomicBool::new(false),
            _stop: stop,
        });
        let follow: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> =
            if registry.config.shared_watch.is_some() {
                Box::pin(Arc::clone(&cache).run_shared(Arc::clone(&store)))
            } else {
                Box::pin(Arc::clone(&cache).run(Arc::clone(&store), root))
            };
        tokio::spawn(async move {
            tokio::select! {
                () = follow => {}
                // Err: the registry was dropped.
                _ = stopped.changed() => {}
            }
        });
        cache.ready().await;
        gc::spawn(&registry);
        if let Some(interval) = registry.config.compaction_interval {
            tokio::spawn(compaction_loop(Arc::downgrade(&registry), interval));
        }
        for ns in &registry.config.system_namespaces {
            registry.ensure_namespace(ns).await?;
        }
        Ok(registry)
    }

    /// Where this registry keeps its objects in the store.
    pub fn keys(&self) -> &keys::Keys {
        &self.keys
    }

    /// Every served kind.
    pub fn resources(&self) -> &[Arc<ResourceDef>] {
        &self.defs
    }

    /// The kind served at `group/version/plural`.
    pub fn resource(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.defs
            .iter()
            .find(|d| d.group == group && d.version == version && d.plural == plural)
            .cloned()
    }

    /// The kind with this group and kind name (any version).
    pub fn resource_for_kind(&self, group: &str, kind: &str) -> Option<Arc<ResourceDef>> {
        self.defs
            .iter()
            .find(|d| d.group == group && d.kind == kind)
            .cloned()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// The revision the watch cache reflects.
    pub fn cache_revision(&self) -> Revision {
        self.cache.revision()
    }

    /// Moves with every change of this registry's objects and nothing else
    /// ([`cache::WatchCache::content_epoch`]): a reader that remembers it can tell that
    /// nothing changed since it last looked.
    pub fn content_epoch(&self) -> u64 {
        self.cache.content_epoch()
    }

    /// [`Registry::content_epoch`] as it moves ([`cache::WatchCache::content_changes`]).
    pub fn content_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.cache.content_changes()
    }

    /// Moves with every creation and deletion of this registry's objects and every change of
    /// their ownership, finalizers or deletion state, and with nothing else
    /// ([`cache::WatchCache::ownership_epoch`]): status writes and label changes leave it
    /// alone.
    pub fn ownership_epoch(&self) -> u64 {
        self.cache.ownership_epoch()
    }

    /// [`Self::ownership_epoch`] once the watch cache has applied every write the store had
    /// committed when this was called (a consistent read, as [`Self::get_shared`]): a writer
    /// that counts its own creations and deletions sees all of them in it.
    pub async fn ownership_epoch_settled(&self) -> Result<u64, ApiError> {
        self.cache_caught_up().await?;
        Ok(self.cache.ownership_epoch())
    }

    /// Wait until the watch cache has applied every write the store had committed when this
    /// was called: what the cache then holds is what a read of the store would return (as
    /// kube-apiserver's consistent reads from cache).
    pub(crate) async fn cache_caught_up(&self) -> Result<(), ApiError> {
        let current = self.store.current_revision().await.map_err(store_error)?;
        self.cache.wait_for(current, self.config.cache_wait).await
    }

    /// Compact the store and the watch cache's window to `revision`.
    pub async fn compact(&self, revision: Revision) -> Result<(), ApiError> {
        self.store.compact(revision).await.map_err(store_error)?;
        self.cache.compacted(revision);
        Ok(())
    }

    async fn ensure_namespace(&self, name: &str) -> Result<(), ApiError> {
        let Some(def) = self.resource("", "v1", "namespaces") else {
            return Ok(());
        };
        let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        match self.create(&def, None, ns, &WriteOptions::default()).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

async fn compaction_loop(registry: std::sync::Weak<Registry>, interval: Duration) {
    let mut previous: Option<Revision> = None;
    loop {
        tokio::time::sleep(interval).await;
        let Some(registry) = registry.upgrade() else {
            return;
        };
        if let Some(target) = previous
            && let Err(e) = registry.compact(target).await
        {
            tracing::warn!(error = %e, target, "compaction failed");
        }
        previous = registry.store.current_revision().await.ok();
    }
}

/// Map a store failure that no caller handles specially onto an API error.
pub(crate) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Compacted {
            requested,
            compacted,
        } => cache::too_old(requested, compacted),
        StoreError::FutureRevision { requested, current } => ApiError::timeout(format!(
            "Too large resource version: {requested}, current: {current}"
        )),
        StoreError::Unavailable(msg) => {
            ApiError::service_unavailable(format!("storage unavailable: {msg}"))
        }
        StoreError::Invalid(msg) => ApiError::bad_request(msg),
        other => ApiError::internal(format!("storage error: {other}")),
    }
}
