//! The watch cache: one store watch fanned out to every API watcher.
//!
//! A single task follows the store from a consistent list of the registry's key root,
//! keeps the latest decoded state of every object, and a window of recent events. Watchers take
//! a snapshot or replay the window under a read lock and subscribe to the live broadcast in the
//! same critical section, so no event is missed or seen twice. A watcher that falls behind the
//! broadcast catches up from the window; one that falls behind the window gets 410 Expired,
//! as it would from kube-apiserver.
//!
//! The window's older events are kept compact: as the store's bytes of the object and of its
//! previous version, decoded again only for a watcher that replays that far back. A decoded
//! object costs several times its JSON, and a superseded version is held by nothing else, so
//! a window of decoded events would hold most of a busy fleet's memory.
//!
//! Many registries can share one store, each under its own key root (one per logical cluster
//! of the simulator's workload host). Rather than each following the store on its own, and
//! each filtering every write of every other, they can share one [`SharedWatch`]: a single
//! store watch that routes each event to the cache whose root holds its key and publishes how
//! far it got, which every cache then reflects. The work per write stays constant however many
//! caches share the store.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use slipway_apimachinery::ApiError;
use slipway_store::{EventKind, ListOptions, Revision, Store, StoreError};
use tokio::sync::{broadcast, watch};

use crate::codec;

/// One change, as the cache saw it.
#[derive(Debug)]
pub struct CacheEvent {
    pub kind: EventKind,
    pub key: String,
    /// The new object (for deletions: its last state, with the deletion's resourceVersion).
    pub object: Arc<Value>,
    /// The object before this change, if it existed: decoded on first use
    /// ([`CacheEvent::prev`]), since most watchers only need to know there was one.
    prev: Prev,
    pub revision: Revision,
    /// The event as a watch line of its own type (`{"type":..,"object":..}` and a newline),
    /// serialized once for every watcher; the object's JSON is a slice of it.
    line: std::sync::OnceLock<bytes::Bytes>,
    /// The store's bytes of the object and of its previous version, to keep this event
    /// compact once it is old ([`Slot`]); `None` when the store did not give them.
    stored: Option<Stored>,
}

/// An event's previous version.
#[derive(Debug)]
enum Prev {
    None,
    Decoded(Arc<Value>),
    /// The store's bytes of it and the revision it was written at, decoded once on demand.
    Stored {
        bytes: bytes::Bytes,
        revision: Revision,
        decoded: std::sync::OnceLock<Option<Arc<Value>>>,
    },
}

impl Prev {
    fn stored(bytes: bytes::Bytes, revision: Revision) -> Self {
        Prev::Stored {
            bytes,
            revision,
            decoded: std::sync::OnceLock::new(),
        }
    }
}

/// An event's object and previous version as the store has them.
#[derive(Debug, Clone)]
struct Stored {
    object: bytes::Bytes,
    /// The previous version's bytes and revision (the revision it was written at).
    prev: Option<(bytes::Bytes, Revision)>,
}

/// One event of the window: decoded while recent (watchers that lag a little, the live
/// broadcast's own ring), compact once older.
enum Slot {
    Decoded(Arc<CacheEvent>),
    Compact {
        kind: EventKind,
        key: String,
        revision: Revision,
        stored: Stored,
    },
}

impl Slot {
    fn revision(&self) -> Revision {
        match self {
            Slot::Decoded(ev) => ev.revision,
            Slot::Compact { revision, .. } => *revision,
        }
    }

    fn key(&self) -> &str {
        match self {
            Slot::Decoded(ev) => &ev.key,
            Slot::Compact { key, .. } => key,
        }
    }

    /// The event, decoded again if it was compacted.
    fn event(&self) -> Result<Arc<CacheEvent>, ApiError> {
        match self {
            Slot::Decoded(ev) => Ok(Arc::clone(ev)),
            Slot::Compact {
                kind,
                key,
                revision,
                stored,
            } => {
                let undecodable = |e: ApiError| {
                    ApiError::internal(format!(
                        "watch cache: {key} at revision {revision} no longer decodes: {}",
                        e.message
                    ))
                };
                let object = codec::decode(&stored.object, *revision).map_err(undecodable)?;
                let prev = match &stored.prev {
                    Some((bytes, at)) => Prev::stored(bytes.clone(), *at),
                    None => Prev::None,
                };
                Ok(Arc::new(CacheEvent::new(
                    *kind,
                    key.clone(),
                    Arc::new(object),
                    prev,
                    *revision,
                )))
            }
        }
    }

    /// Drop the decoded objects, when the event has its stored bytes. `latest` holds, per
    /// key, the newest compact event's bytes: the previous version's bytes are shared with
    /// them rather than kept as the store's second copy.
    fn compact(&mut self, latest: &mut HashMap<String, (Revision, bytes::Bytes)>) {
        let Slot::Decoded(ev) = self else {
            return;
        };
        let Some(stored) = &ev.stored else {
            return;
        };
        let mut stored = stored.clone();
        if let Some((prev_bytes, prev_revision)) = &mut stored.prev
            && let Some((revision, bytes)) = latest.get(&ev.key)
            && revision == prev_revision
            && bytes == prev_bytes
        {
            *prev_bytes = bytes.clone();
        }
        latest.insert(ev.key.clone(), (ev.revision, stored.object.clone()));
        *self = Slot::Compact {
            kind: ev.kind,
            key: ev.key.clone(),
            revision: ev.revision,
            stored,
        };
    }
}

impl CacheEvent {
    fn new(
        kind: EventKind,
        key: String,
        object: Arc<Value>,
        prev: Prev,
        revision: Revision,
    ) -> Self {
        Self {
            kind,
            key,
            object,
            prev,
            revision,
            line: std::sync::OnceLock::new(),
            stored: None,
        }
    }

    /// Whether the object existed before this change.
    pub fn has_prev(&self) -> bool {
        !matches!(self.prev, Prev::None)
    }

    /// The object before this change, if it existed (decoded on first use; `None` too if its
    /// stored bytes no longer decode, which is logged).
    pub fn prev(&self) -> Option<Arc<Value>> {
        match &self.prev {
            Prev::None => None,
            Prev::Decoded(prev) => Some(Arc::clone(prev)),
            Prev::Stored {
                bytes,
                revision,
                decoded,
            } => decoded
                .get_or_init(|| match codec::decode(bytes, *revision) {
                    Ok(prev) => Some(Arc::new(prev)),
                    Err(e) => {
                        tracing::error!(key = self.key, revision, error = %e, "watch cache: a previous version no longer decodes");
                        None
                    }
                })
                .clone(),
        }
    }

    /// The type a watcher that sees every object gets this event as.
    pub fn own_type(&self) -> crate::watch::WatchEventType {
        use crate::watch::WatchEventType;
        match self.kind {
            EventKind::Deleted => WatchEventType::Deleted,
            _ if self.has_prev() => WatchEventType::Modified,
            _ => WatchEventType::Added,
        }
    }

    /// The event's watch line for [`Self::own_type`], computed once and shared.
    pub fn line(&self) -> bytes::Bytes {
        self.line
            .get_or_init(|| {
                crate::watch::event_line(
                    self.own_type(),
                    &serde_json::to_vec(&*self.object).unwrap_or_default(),
                )
            })
            .clone()
    }

    /// The object serialized as JSON, computed once and shared by every watcher.
    pub fn object_json(&self) -> bytes::Bytes {
        let line = self.line();
        let start = crate::watch::line_prefix_len(self.own_type());
        let end = line.len().saturating_sub(crate::watch::LINE_SUFFIX.len());
        line.slice(start..end.max(start))
    }
}

/// An object as the cache keeps it: the store's bytes (a decoded object costs eight to ten
/// times its JSON, and a fleet's caches hold every object), with the decoded form shared for
/// as long as anything else holds it (the event that brought it, a reader), and a summary of
/// what the garbage collector decides by.
#[derive(Clone)]
struct Kept {
    bytes: bytes::Bytes,
    revision: Revision,
    decoded: Weak<Value>,
    summary: Arc<Ownership>,
}

/// What the garbage collector and the namespace finalizer decide by, for one object: a pass
/// reads these instead of decoding every object ([`WatchCache::ownership`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    pub uid: Box<str>,
    /// The uids of its `ownerReferences`.
    pub owners: Box<[Box<str>]>,
    pub finalizers: Box<[Box<str>]>,
    /// Whether it has a `deletionTimestamp`.
    pub deleting: bool,
}

impl Ownership {
    fn of(object: &Value) -> Self {
        let strings = |field: &str, inner: Option<&str>| -> Box<[Box<str>]> {
            object
                .get("metadata")
                .and_then(|meta| meta.get(field))
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|item| match inner {
                            Some(key) => item.get(key).and_then(Value::as_str),
                            None => item.as_str(),
                        })
                        .map(Box::from)
                        .collect()
                })
                .unwrap_or_default()
        };
        Self {
            uid: slipway_apimachinery::meta::uid(object)
                .unwrap_or_default()
                .into(),
            owners: strings("ownerReferences", Some("uid")),
            finalizers: strings("finalizers", None),
            deleting: slipway_apimachinery::meta::deletion_timestamp(object).is_some(),
        }
    }

    /// No owners, no finalizers, not being deleted: nothing the collector decides about.
    fn is_inert(&self) -> bool {
        self.owners.is_empty() && self.finalizers.is_empty() && !self.deleting
    }
}

impl Kept {
    fn new(bytes: bytes::Bytes, revision: Revision, object: &Arc<Value>) -> Self {
        Self {
            bytes,
            revision,
            decoded: Arc::downgrade(object),
            summary: Arc::new(Ownership::of(object)),
        }
    }

    /// The object: shared if still decoded somewhere, else decoded from its bytes (shrunk to
    /// fit, since later readers share it while anyone holds it: see
    /// [`WatchCache::remember`]). The flag says it was decoded now.
    fn object(&self, key: &str) -> Option<(Arc<Value>, bool)> {
        if let Some(object) = self.decoded.upgrade() {
            return Some((object, false));
        }
        match codec::decode_kept(&self.bytes, self.revision) {
            Ok(object) => Some((Arc::new(object), true)),
            Err(e) => {
                tracing::error!(key, revision = self.revision, error = %e, "watch cache: a kept object no longer decodes");
                None
            }
        }
    }
}

struct State {
    objects: BTreeMap<String, Kept>,
    events: VecDeque<Slot>,
    /// Per key, the revision and bytes of its newest compact event in the window.
    latest_compact: HashMap<String, (Revision, bytes::Bytes)>,
    /// The revision the cache reflects.
    revision: Revision,
    /// Watches may start from any revision >= this one.
    oldest: Revision,
    /// False while (re)loading from the store.
    ready: bool,
    /// With a shared watch: the events that arrived while loading, applied once loaded.
    buffered: Option<Vec<slipway_store::WatchEvent>>,
    /// Counts invalidations: a load that started before the latest one is discarded.
    epoch: u64,
    /// Counts the changes that can matter to ownership and deletion (see
    /// [`WatchCache::ownership_epoch`]).
    ownership: u64,
    /// Counts the changes the garbage collector decides by (see
    /// [`WatchCache::collector_epoch`]).
    collectable: u64,
    /// How many cached objects have a `deletionTimestamp`.
    deleting: usize,
    /// Counts every change of the cached objects (see [`WatchCache::content_epoch`]).
    changes: u64,
}

impl State {
    /// Drop the window's oldest event.
    fn pop_oldest(&mut self) -> Option<Slot> {
        let old = self.events.pop_front()?;
        if let Slot::Compact { key, revision, .. } = &old
            && self
                .latest_compact
                .get(key)
                .is_some_and(|(latest, _)| latest == revision)
        {
            self.latest_compact.remove(key);
        }
        Some(old)
    }

    /// Hold `objects` (a load) instead of what the cache held.
    fn install(&mut self, objects: BTreeMap<String, Kept>) {
        self.deleting = objects.values().filter(|k| k.summary.deleting).count();
        self.objects = objects;
    }

    fn clear_window(&mut self) {
        self.events.clear();
        self.latest_compact.clear();
    }
}

pub struct WatchCache {
    state: RwLock<State>,
    /// Objects being written through the registry, by the address of their stored bytes
    /// ([`WatchCache::writing`]).
    handovers: std::sync::Mutex<HashMap<usize, Handover>>,
    live: broadcast::Sender<Arc<CacheEvent>>,
    progress: watch::Sender<Revision>,
    window: usize,
    /// How many of the window's newest events stay decoded.
    recent: usize,
    /// The shared watch feeding this cache, and the root it is registered under.
    shared: Option<(Arc<SharedWatch>, String)>,
    /// Wakes the cache's task to reload (a shared watch lost its place).
    reload: tokio::sync::Notify,
    /// Told whenever the collector epoch moves ([`WatchCache::collector_moved`]).
    collector_moved: Arc<tokio::sync::Notify>,
    /// The content epoch, for those who wait for it to move ([`WatchCache::content_changes`]).
    content: watch::Sender<u64>,
}

/// An object on its way to the store ([`WatchCache::writing`]).
struct Handover {
    key: String,
    /// Keeps the bytes (and so their address, the handover's id) alive.
    bytes: bytes::Bytes,
    /// The object, until the cache or the writer takes it.
    object: Option<Value>,
    /// What the cache made of it, once it applied the write.
    taken: Option<Arc<Value>>,
}

/// A write announced to the cache; see [`WatchCache::writing`].
pub struct HandoverTicket<'a> {
    cache: &'a WatchCache,
    id: usize,
}

impl HandoverTicket<'_> {
    /// The written object, stamped with the write's `revision`: the cache's own copy when it
    /// applied the write already, else the announced object (the cache then decodes its own).
    pub fn written(self, revision: Revision) -> Result<Arc<Value>, ApiError> {
        let Some(h) = self.cache.lock_handovers().remove(&self.id) else {
            return Err(ApiError::internal(
                "a write's handover to the cache went missing",
            ));
        };
        match (h.taken, h.object) {
            (Some(taken), _) => Ok(taken),
            (None, Some(mut object)) => {
                codec::set_resource_version(&mut object, revision);
                Ok(Arc::new(object))
            }
            (None, None) => codec::decode(&h.bytes, revision).map(Arc::new),
        }
    }
}

impl Drop for HandoverTicket<'_> {
    fn drop(&mut self) {
        self.cache.lock_handovers().remove(&self.id);
    }
}

/// What a new watcher starts with.
pub struct Subscription {
    /// Events to deliver before the live ones (a replay, or a snapshot as `Created` events).
    pub backlog: Vec<Arc<CacheEvent>>,
    pub live: broadcast::Receiver<Arc<CacheEvent>>,
    /// The revision the backlog brings the watcher to.
    pub position: Revision,
}

impl WatchCache {
    /// A cache that follows the store itself ([`WatchCache::run`]), keeping `window` events
    /// of which the newest `decoded` stay decoded.
    pub fn new(window: usize, decoded: usize) -> Arc<Self> {
        Self::build(window, decoded, None)
    }

    /// A cache of the objects under `root` fed by `shared` ([`WatchCache::run_shared`]).
    pub fn new_shared(
        window: usize,
        decoded: usize,
        shared: Arc<SharedWatch>,
        root: String,
    ) -> Arc<Self> {
        Self::build(window, decoded, Some((shared, root)))
    }

    fn build(
        window: usize,
        decoded: usize,
        shared: Option<(Arc<SharedWatch>, String)>,
    ) -> Arc<Self> {
        let window = window.max(16);
        // The broadcast ring holds an event only until every receiver has taken it, so it
        // can be long (a receiver that falls behind it catches up from the window, decoding
        // what is compact there) while few events stay decoded in the window.
        // None at all is allowed: every event is then kept as the store's bytes as soon as
        // it is broadcast, and stays decoded only while a receiver or a reader holds it.
        let recent = window.min(decoded);
        let (live, _) = broadcast::channel(window.min(4096));
        let (progress, _) = watch::channel(0);
        Arc::new(Self {
            handovers: std::sync::Mutex::new(HashMap::new()),
            state: RwLock::new(State {
                objects: BTreeMap::new(),
                events: VecDeque::new(),
                latest_compact: HashMap::new(),
                revision: 0,
                oldest: 0,
                ready: false,
                buffered: None,
                epoch: 0,
                ownership: 0,
                collectable: 0,
                deleting: 0,
                changes: 0,
            }),
            live,
            progress,
            window,
            recent,
            shared,
            reload: tokio::sync::Notify::new(),
            collector_moved: Arc::new(tokio::sync::Notify::new()),
            content: watch::channel(0).0,
        })
    }

    /// The revision the cache reflects: with a shared watch, how far the shared watch got once
    /// the cache is loaded, since every event up to there that belongs here has been applied.
    fn current(&self, state: &State) -> Revision {
        match &self.shared {
            Some((shared, _)) if state.ready => state.revision.max(shared.revision()),
            _ => state.revision,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The revision the cache reflects.
    pub fn revision(&self) -> Revision {
        self.current(&self.read())
    }

    /// A counter that moves with every change that can matter to ownership and deletion: a
    /// creation, a deletion, a change of an object's [`Ownership`] (its owners' uids, its
    /// `finalizers`, whether it has a `deletionTimestamp`), and every (re)load. Status writes, label changes and the like
    /// leave it alone, so the garbage collector can skip a pass when it has not moved.
    pub fn ownership_epoch(&self) -> u64 {
        self.read().ownership
    }

    /// The part of the ownership epoch the garbage collector decides by: it leaves out the
    /// creation of an object with no owners, no finalizers and no `deletionTimestamp` (an
    /// Event, say) while nothing is being deleted, which can give a pass nothing to do.
    /// With an object being deleted (a namespace, whose finalizer must see what is created
    /// in it late) every creation counts.
    pub fn collector_epoch(&self) -> u64 {
        self.read().collectable
    }

    /// Notified (one permit, kept until taken) each time the collector epoch moves, so that
    /// the garbage collector sleeps until there is something to decide instead of looking
    /// on a timer: thousands of idle registries then cost no wakeups.
    pub fn collector_moved(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.collector_moved)
    }

    /// The content epoch ([`WatchCache::content_epoch`]) as it moves: a reader that only needs
    /// to know that something changed (a simulated cluster's components, which then look at
    /// everything again) waits on this instead of watching each kind.
    pub fn content_changes(&self) -> watch::Receiver<u64> {
        self.content.subscribe()
    }

    /// Move the content epoch (with the state's lock held) and tell who waits for it.
    fn move_content(&self, state: &mut State) {
        state.changes += 1;
        self.content.send_replace(state.changes);
    }

    /// Move the ownership epoch (with the state's lock held), and the collector's with it,
    /// telling the collector, when `collectable`.
    fn move_ownership(&self, state: &mut State, collectable: bool) {
        state.ownership += 1;
        if collectable {
            state.collectable += 1;
            self.collector_moved.notify_one();
        }
    }

    /// A counter that moves with every change of the cached objects and every (re)load, and
    /// with nothing else: unlike [`Self::revision`], a shared watch's progress under other
    /// roots leaves it alone. Equal values mean the same objects.
    pub fn content_epoch(&self) -> u64 {
        self.read().changes
    }

    /// Wait until the cache reflects at least `revision`.
    pub async fn wait_for(&self, revision: Revision, timeout: Duration) -> Result<(), ApiError> {
        let mut own = self.progress.subscribe();
        let mut shared = self
            .shared
            .as_ref()
            .map(|(s, _)| s.inner.progress.subscribe());
        let reached = async {
            while self.revision() < revision {
                match shared.as_mut() {
                    Some(shared) => tokio::select! {
                        changed = own.changed() => if changed.is_err() { return false },
                        changed = shared.changed() => if changed.is_err() { return false },
                    },
                    None => {
                        if own.changed().await.is_err() {
                            return false;
                        }
                    }
                }
            }
            true
        };
        match tokio::time::timeout(timeout, reached).await {
            Ok(true) => Ok(()),
            _ => Err(ApiError::timeout(format!(
                "Too large resource version: {revision}, current: {}",
                self.revision()
            ))
            .with_retry(1)),
        }
    }

    /// Announce a write of `object` (without its resourceVersion) under `key` as `bytes`, before
    /// it goes to the store. A live store event carries the very bytes it was given, so when
    /// the cache applies that event it takes `object` (stamping the event's revision) instead
    /// of decoding the bytes again; the writer gets the same shared object from
    /// [`HandoverTicket::written`]. Dropping the ticket unused (the write failed, or its task was
    /// cancelled) forgets it. The object is shrunk to fit first
    /// ([`slipway_apimachinery::compact`]), as everything the cache keeps.
    pub fn writing(
        &self,
        key: &str,
        bytes: &bytes::Bytes,
        mut object: Value,
    ) -> HandoverTicket<'_> {
        // Kept by the cache, so shrunk to fit here, in the writer's task. With a placeholder
        // resourceVersion: stamping the real one then replaces it and grows nothing.
        codec::set_resource_version(&mut object, 0);
        slipway_apimachinery::compact::compact(&mut object);
        let id = bytes.as_ptr() as usize;
        self.lock_handovers().insert(
            id,
            Handover {
                key: key.to_string(),
                bytes: bytes.clone(),
                object: Some(object),
                taken: None,
            },
        );
        HandoverTicket { cache: self, id }
    }

    fn lock_handovers(&self) -> std::sync::MutexGuard<'_, HashMap<usize, Handover>> {
        self.handovers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The announced object written as `value` under `key` at `revision`, if it is one.
    fn take_handover(
        &self,
        key: &str,
        value: &bytes::Bytes,
        revision: Revision,
    ) -> Option<Arc<Value>> {
        let mut handovers = self.lock_handovers();
        let h = handovers.get_mut(&(value.as_ptr() as usize))?;
        if h.key != key || h.bytes.len() != value.len() || h.taken.is_some() {
            return None;
        }
        let mut object = h.object.take()?;
        codec::set_resource_version(&mut object, revision);
        let object = Arc::new(object);
        h.taken = Some(Arc::clone(&object));
        Some(object)
    }

    /// The latest object under `key`, if the cache has it.
    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
        let kept = self.read().objects.get(key).cloned()?;
        let (object, fresh) = kept.object(key)?;
        if fresh {
            self.remember([(key, kept.revision, &object)]);
        }
        Some(object)
    }

    /// The uid and revision of the object at `key`, without decoding it.
    pub fn version(&self, key: &str) -> Option<(Box<str>, Revision)> {
        self.read()
            .objects
            .get(key)
            .map(|kept| (kept.summary.uid.clone(), kept.revision))
    }

    /// Point the cache at objects just decoded from its bytes (those still current), so that
    /// readers share them for as long as anyone holds them instead of decoding them again.
    fn remember<'a>(&self, fresh: impl IntoIterator<Item = (&'a str, Revision, &'a Arc<Value>)>) {
        let mut state = self.write();
        for (key, revision, object) in fresh {
            if let Some(kept) = state.objects.get_mut(key)
                && kept.revision == revision
                && kept.decoded.strong_count() == 0
            {
                kept.decoded = Arc::downgrade(object);
            }
        }
    }

    /// Every object under `prefix` (key order) and the revision they reflect.
    /// Decoded outside the cache's lock, so a large list holds up no write.
    pub fn list(&self, prefix: &str) -> (Vec<Arc<Value>>, Revision) {
        let (kept, revision) = {
            let state = self.read();
            (Self::under(&state, prefix), self.current(&state))
        };
        let decoded: Vec<(&str, Revision, Arc<Value>, bool)> = kept
            .iter()
            .filter_map(|(k, v)| {
                v.object(k)
                    .map(|(object, fresh)| (k.as_str(), v.revision, object, fresh))
            })
            .collect();
        if decoded.iter().any(|(.., fresh)| *fresh) {
            self.remember(
                decoded
                    .iter()
                    .filter(|(.., fresh)| *fresh)
                    .map(|(k, revision, object, _)| (*k, *revision, object)),
            );
        }
        let items = decoded
            .into_iter()
            .map(|(_, _, object, _)| object)
            .collect();
        (items, revision)
    }

    /// What the cache keeps under `prefix`, in key order.
    fn under(state: &State, prefix: &str) -> Vec<(String, Kept)> {
        state
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Every object's key and what the garbage collector decides by (its scans decode
    /// nothing; what a pass acts on it reads with [`WatchCache::get`]).
    pub fn ownership(&self) -> Vec<(String, Arc<Ownership>)> {
        self.read()
            .objects
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(&v.summary)))
            .collect()
    }

    /// Subscribe from just after `after`, or with a snapshot of the current state when `after`
    /// is `None`.
    pub fn subscribe(
        &self,
        after: Option<Revision>,
        prefix: &str,
    ) -> Result<Subscription, ApiError> {
        let state = self.read();
        let live = self.live.subscribe();
        let current = self.current(&state);
        match after {
            None => {
                // Taken under the lock with the subscription, decoded outside it.
                let kept = Self::under(&state, prefix);
                drop(state);
                let backlog = kept
                    .into_iter()
                    .filter_map(|(k, v)| {
                        let (object, _) = v.object(&k)?;
                        Some(Arc::new(CacheEvent::new(
                            EventKind::Created,
                            k,
                            object,
                            Prev::None,
                            current,
                        )))
                    })
                    .collect();
                Ok(Subscription {
                    backlog,
                    live,
                    position: current,
                })
            }
            Some(after) => {
                let backlog = Self::replay(&state, after, prefix)?;
                Ok(Subscription {
                    backlog,
                    live,
                    position: current.max(after),
                })
            }
        }
    }

    /// Resubscribe a watcher of the objects under `prefix` that lagged behind the broadcast,
    /// from its position.
    pub fn resubscribe(&self, position: Revision, prefix: &str) -> Result<Subscription, ApiError> {
        self.subscribe(Some(position), prefix)
    }

    /// The window's events after `after` under `prefix`. Only those are decoded: a watcher of
    /// one kind that catches up after a burst of writes to others decodes none of them.
    fn replay(
        state: &State,
        after: Revision,
        prefix: &str,
    ) -> Result<Vec<Arc<CacheEvent>>, ApiError> {
        if after < state.oldest {
            return Err(too_old(after, state.oldest));
        }
        let start = state.events.partition_point(|e| e.revision() <= after);
        state
            .events
            .range(start..)
            .filter(|slot| slot.key().starts_with(prefix))
            .map(Slot::event)
            .collect()
    }

    /// Forget events at or before `revision` (after a store compaction).
    pub fn compacted(&self, revision: Revision) {
        let mut state = self.write();
        while state
            .events
            .front()
            .is_some_and(|e| e.revision() <= revision)
        {
            state.pop_oldest();
        }
        state.oldest = state.oldest.max(revision);
    }

    fn apply(&self, state: &mut State, event: slipway_store::WatchEvent) {
        let revision = event.revision();
        self.move_content(state);
        let key = event.kv.key.clone();
        let handed = match event.kind {
            EventKind::Deleted => None,
            _ if event.kv.value.is_empty() => None,
            _ => self.take_handover(&key, &event.kv.value, revision),
        };
        let decoded = match handed {
            Some(obj) => Ok(obj),
            None => codec::decode_kept(&event.kv.value, revision).map(Arc::new),
        };
        let object = match decoded {
            Ok(obj) => obj,
            Err(e) => {
                tracing::error!(key, revision, error = %e, "watch cache: undecodable object skipped");
                state.revision = revision;
                return;
            }
        };
        let (prev, now_deleting, ownership_moved, collectable) = match event.kind {
            EventKind::Deleted => (state.objects.remove(&key), false, true, true),
            _ => {
                let kept = Kept::new(event.kv.value.clone(), revision, &object);
                let summary = Arc::clone(&kept.summary);
                let prev = state.objects.insert(key.clone(), kept);
                let moved = prev.as_ref().is_none_or(|p| p.summary != summary);
                // An inert creation counts for the collector only while something is being
                // deleted (this object is not).
                let collectable =
                    moved && (prev.is_some() || !summary.is_inert() || state.deleting > 0);
                (prev, summary.deleting, moved, collectable)
            }
        };
        if prev.as_ref().is_some_and(|p| p.summary.deleting) {
            state.deleting = state.deleting.saturating_sub(1);
        }
        if now_deleting {
            state.deleting += 1;
        }
        if ownership_moved {
            tracing::trace!(
                key,
                revision,
                collectable,
                "watch cache: ownership epoch moves"
            );
            self.move_ownership(state, collectable);
        }
        // The store's bytes, to compact the event later: the object's, and the previous
        // version's when the cache had one and the store said what it was. A window no
        // longer than its recent part never compacts, so it keeps none.
        let stored = match (&prev, event.prev) {
            _ if self.recent >= self.window => None,
            (None, _) => Some(Stored {
                object: event.kv.value,
                prev: None,
            }),
            (Some(_), Some(before)) => Some(Stored {
                object: event.kv.value,
                prev: Some((before.value, before.mod_revision)),
            }),
            (Some(_), None) => None,
        };
        let prev = match prev {
            None => Prev::None,
            Some(kept) => match kept.decoded.upgrade() {
                Some(decoded) => Prev::Decoded(decoded),
                None => Prev::stored(kept.bytes, kept.revision),
            },
        };
        let mut ev = CacheEvent::new(event.kind, key, object, prev, revision);
        ev.stored = stored;
        let ev = Arc::new(ev);
        state.events.push_back(Slot::Decoded(Arc::clone(&ev)));
        while state.events.len() > self.window {
            if let Some(old) = state.pop_oldest() {
                state.oldest = state.oldest.max(old.revision());
            }
        }
        // The event that just left the recent part of the window is kept compact. The recent
        // part is as long as the broadcast's ring, which holds those events decoded anyway.
        if let Some(index) = state.events.len().checked_sub(self.recent + 1)
            && let Some(slot) = state.events.get_mut(index)
        {
            slot.compact(&mut state.latest_compact);
        }
        state.revision = revision;
        // Receivers may all be gone; that is fine.
        let _ = self.live.send(ev);
    }

    /// Follow the store forever: load, then apply its watch; reload on any watch failure.
    pub async fn run(self: Arc<Self>, store: Arc<dyn Store>, root: String) {
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.load_and_follow(&store, &root).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "watch cache lost the store watch; reloading");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn load_and_follow(&self, store: &Arc<dyn Store>, root: &str) -> Result<(), StoreError> {
        let (objects, revision) = load(store, root).await?;
        let mut stream = store.watch_with_progress(root, revision).await?;
        {
            let mut state = self.write();
            state.install(objects);
            state.clear_window();
            state.revision = revision;
            // The window starts at the load: older positions can no longer be replayed.
            state.oldest = revision;
            state.ready = true;
            self.move_ownership(&mut state, true);
            self.move_content(&mut state);
        }
        self.progress.send_replace(revision);
        while let Some(item) = stream.next().await {
            let event = item?;
            let revision = event.revision();
            {
                let mut state = self.write();
                if revision <= state.revision {
                    continue;
                }
                if event.kind == EventKind::Progress {
                    // Nothing changed under the root up to here (other roots share the store).
                    state.revision = revision;
                } else {
                    self.apply(&mut state, event);
                }
            }
            self.progress.send_replace(revision);
        }
        Err(StoreError::Unavailable("store watch ended".into()))
    }

    /// Follow a shared watch until dropped: register, load, and reload whenever the shared
    /// watch asks (it lost its place in the store).
    pub async fn run_shared(self: Arc<Self>, store: Arc<dyn Store>) {
        let Some((shared, root)) = self.shared.clone() else {
            return self.run(store, String::new()).await;
        };
        self.write().buffered = Some(Vec::new());
        if let Err(e) = shared.register(&root, &self) {
            tracing::error!(error = %e, "watch cache cannot join the shared watch");
            return;
        }
        let mut backoff = Duration::from_millis(50);
        loop {
            // Registered and buffering before the list: every event the list misses is
            // offered afterwards.
            let epoch = {
                let mut state = self.write();
                state.ready = false;
                state.buffered.get_or_insert_with(Vec::new);
                state.epoch
            };
            match load(&store, &root).await {
                Ok((objects, revision)) => {
                    backoff = Duration::from_millis(50);
                    if self.finish_load(objects, revision, epoch) {
                        self.reload.notified().await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, root, "watch cache failed to load; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Install a load, unless the shared watch lost its place since it started.
    fn finish_load(&self, objects: BTreeMap<String, Kept>, revision: Revision, epoch: u64) -> bool {
        let reached = {
            let mut state = self.write();
            if state.epoch != epoch {
                return false;
            }
            state.install(objects);
            state.clear_window();
            state.revision = revision;
            state.oldest = revision;
            self.move_ownership(&mut state, true);
            self.move_content(&mut state);
            for event in state.buffered.take().unwrap_or_default() {
                if event.revision() > state.revision {
                    self.apply(&mut state, event);
                }
            }
            state.ready = true;
            self.current(&state)
        };
        self.progress.send_replace(reached);
        true
    }

    /// An event from the shared watch: applied, or kept until the load it raced finishes.
    fn offer(&self, event: slipway_store::WatchEvent) {
        let revision = {
            let mut state = self.write();
            if let Some(buffered) = state.buffered.as_mut() {
                buffered.push(event);
                return;
            }
            if event.revision() <= state.revision {
                return;
            }
            self.apply(&mut state, event);
            state.revision
        };
        self.progress.send_replace(revision);
    }

    /// The shared watch lost its place: serve what is cached, but reflect no newer revision
    /// until reloaded.
    fn invalidate(&self) {
        {
            let mut state = self.write();
            state.ready = false;
            state.buffered = Some(Vec::new());
            state.epoch += 1;
        }
        self.reload.notify_one();
    }

    /// Wait until the first load finished.
    pub async fn ready(&self) {
        let mut rx = self.progress.subscribe();
        loop {
            if self.read().ready {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Every object under `root` at the store's current revision, and that revision.
async fn load(
    store: &Arc<dyn Store>,
    root: &str,
) -> Result<(BTreeMap<String, Kept>, Revision), StoreError> {
    let revision = store.current_revision().await?;
    let mut objects = BTreeMap::new();
    let mut start_after = None;
    loop {
        let page = store
            .list(
                root,
                ListOptions {
                    revision: Some(revision),
                    start_after: start_after.clone(),
                    limit: Some(10_000),
                },
            )
            .await?;
        for kv in &page.items {
            // Decoded once, to check it and take its ownership digest; kept as its bytes.
            match codec::decode(&kv.value, kv.mod_revision) {
                Ok(obj) => {
                    let obj = Arc::new(obj);
                    objects.insert(
                        kv.key.clone(),
                        Kept::new(kv.value.clone(), kv.mod_revision, &obj),
                    );
                }
                Err(e) => {
                    tracing::error!(key = kv.key, error = %e, "watch cache: undecodable object skipped")
                }
            }
        }
        start_after = page.items.last().map(|kv| kv.key.clone());
        if !page.more {
            return Ok((objects, revision));
        }
    }
}

impl Drop for WatchCache {
    fn drop(&mut self) {
        if let Some((shared, root)) = &self.shared {
            shared.unregister(root, self);
        }
    }
}

/// One store watch feeding many [`WatchCache`]s, each under its own root below a common prefix.
/// Roots must not nest.
pub struct SharedWatch {
    inner: Arc<SharedInner>,
    task: tokio::task::JoinHandle<()>,
}

struct SharedInner {
    caches: RwLock<BTreeMap<String, Weak<WatchCache>>>,
    /// Every event up to this revision has been offered to its cache.
    progress: watch::Sender<Revision>,
}

impl std::fmt::Debug for SharedWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedWatch")
            .field("caches", &self.inner.read().len())
            .field("revision", &self.revision())
            .finish()
    }
}

impl SharedWatch {
    /// Follow everything under `prefix` from the store's current revision until dropped.
    pub async fn start(store: Arc<dyn Store>, prefix: &str) -> Result<Arc<Self>, StoreError> {
        let revision = store.current_revision().await?;
        let (progress, _) = watch::channel(revision);
        let inner = Arc::new(SharedInner {
            caches: RwLock::new(BTreeMap::new()),
            progress,
        });
        let stream = store.watch_with_progress(prefix, revision).await?;
        let task = tokio::spawn(Arc::clone(&inner).run(store, prefix.to_string(), stream));
        Ok(Arc::new(Self { inner, task }))
    }

    /// How far the shared watch got.
    pub fn revision(&self) -> Revision {
        *self.inner.progress.borrow()
    }

    fn register(&self, root: &str, cache: &Arc<WatchCache>) -> Result<(), StoreError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let mut caches = self.inner.write();
        // No two registered roots nest, so a root nesting with `root` is next to it in order:
        // an enclosing one is the nearest before it (any root between the two would start
        // with the enclosing one), an enclosed one the nearest after it.
        let nested = caches
            .range::<str, _>((Unbounded, Excluded(root)))
            .next_back()
            .is_some_and(|(other, _)| root.starts_with(other.as_str()))
            || caches
                .range::<str, _>((Excluded(root), Unbounded))
                .next()
                .is_some_and(|(other, _)| other.starts_with(root));
        if nested {
            return Err(StoreError::Invalid(format!(
                "watch cache root {root} nests with another on the same shared watch"
            )));
        }
        caches.insert(root.to_string(), Arc::downgrade(cache));
        Ok(())
    }

    fn unregister(&self, root: &str, cache: &WatchCache) {
        let mut caches = self.inner.write();
        // A cache registered again under the root (a recreated cluster) stays.
        if caches
            .get(root)
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), cache))
        {
            caches.remove(root);
        }
    }
}

impl Drop for SharedWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SharedInner {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Weak<WatchCache>>> {
        self.caches
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Weak<WatchCache>>> {
        self.caches
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cache whose root holds `key`.
    fn route(&self, key: &str) -> Option<Arc<WatchCache>> {
        let caches = self.read();
        let (root, cache) = caches
            .range::<str, _>((std::ops::Bound::Unbounded, std::ops::Bound::Included(key)))
            .next_back()?;
        if key.starts_with(root.as_str()) {
            cache.upgrade()
        } else {
            None
        }
    }

    async fn run(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        prefix: String,
        mut stream: slipway_store::WatchStream,
    ) {
        let mut backoff = Duration::from_millis(50);
        loop {
            while let Some(item) = stream.next().await {
                let event = match item {
                    Ok(event) => event,
                    Err(e) => {
                        tracing::warn!(error = %e, prefix, "shared watch failed; caches reload");
                        break;
                    }
                };
                backoff = Duration::from_millis(50);
                let revision = event.revision();
                if event.kind != EventKind::Progress
                    && let Some(cache) = self.route(&event.kv.key)
                {
                    cache.offer(event);
                }
                self.progress.send_if_modified(|r| {
                    let newer = revision > *r;
                    *r = (*r).max(revision);
                    newer
                });
            }
            // Lost the place: start again from now, and have every cache reload from a list
            // no older than that.
            loop {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                let Ok(revision) = store.current_revision().await else {
                    continue;
                };
                let caches: Vec<_> = self.read().values().filter_map(Weak::upgrade).collect();
                for cache in caches {
                    cache.invalidate();
                }
                match store.watch_with_progress(&prefix, revision).await {
                    Ok(s) => {
                        stream = s;
                        self.progress.send_replace(revision);
                        break;
                    }
                    Err(e) => tracing::warn!(error = %e, prefix, "shared watch cannot restart"),
                }
            }
        }
    }
}

pub fn too_old(requested: Revision, oldest: Revision) -> ApiError {
    ApiError::expired(format!("too old resource version: {requested} ({oldest})"))
}

trait WithRetry {
    fn with_retry(self, secs: u32) -> Self;
}

impl WithRetry for ApiError {
    fn with_retry(mut self, secs: u32) -> Self {
        self.retry_after_seconds = Some(secs);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_events_watch_line_is_serialized_once_and_holds_its_object() {
        use crate::watch::WatchEventType;
        let object =
            Arc::new(serde_json::json!({"metadata": {"name": "a"}, "data": {"k": "v\n\"q\""}}));
        let cases = [
            (
                EventKind::Created,
                Prev::None,
                "ADDED",
                WatchEventType::Added,
            ),
            (
                EventKind::Updated,
                Prev::Decoded(Arc::clone(&object)),
                "MODIFIED",
                WatchEventType::Modified,
            ),
            (
                EventKind::Deleted,
                Prev::Decoded(Arc::clone(&object)),
                "DELETED",
                WatchEventType::Deleted,
            ),
        ];
        for (kind, prev, name, type_) in cases {
            let ev = CacheEvent::new(kind, "/k/a".into(), Arc::clone(&object), prev, 7);
            assert_eq!(ev.own_type(), type_);
            let line = ev.line();
            assert!(line.ends_with(b"}\n"));
            let parsed: Value = serde_json::from_slice(&line).expect("a JSON line");
            assert_eq!(parsed, serde_json::json!({"type": name, "object": *object}));
            let json: Value = serde_json::from_slice(&ev.object_json()).expect("object JSON");
            assert_eq!(json, *object);
            // Shared, not rebuilt: the same buffer each time.
            assert_eq!(ev.line().as_ptr(), line.as_ptr());
            assert_eq!(
                ev.object_json().as_ptr(),
                line[line.len() - 2 - ev.object_json().len()..].as_ptr()
            );
        }
    }
    use slipway_store::sqlite::SqliteStore;
    use slipway_store::{KeyValue, WatchEvent};

    const ROOT: &str = "/clusters/x/registry/";

    fn event(name: &str, revision: Revision) -> WatchEvent {
        event_of(
            EventKind::Created,
            name,
            &serde_json::json!({"metadata": {"name": name}}),
            revision,
        )
    }

    /// A `kind` event of ConfigMap `name` holding `value` at `revision`.
    fn event_of(kind: EventKind, name: &str, value: &Value, revision: Revision) -> WatchEvent {
        WatchEvent {
            kind,
            kv: KeyValue {
                key: format!("{ROOT}core/configmaps/default/{name}"),
                value: serde_json::to_vec(value).unwrap_or_default().into(),
                create_revision: revision,
                mod_revision: revision,
            },
            prev: None,
        }
    }

    async fn cache() -> (tempfile::TempDir, Arc<WatchCache>) {
        cache_with_window(16).await
    }

    async fn cache_with_window(window: usize) -> (tempfile::TempDir, Arc<WatchCache>) {
        cache_with(window, crate::DEFAULT_WATCH_DECODED).await
    }

    /// How many of the window's events are compact.
    fn compact_slots(cache: &WatchCache) -> usize {
        cache
            .read()
            .events
            .iter()
            .filter(|s| matches!(s, Slot::Compact { .. }))
            .count()
    }

    /// A shared watch over `/clusters/` of a fresh store.
    async fn shared_watch() -> (tempfile::TempDir, Arc<SharedWatch>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("s.db")).expect("open store"));
        let shared = SharedWatch::start(store, "/clusters/")
            .await
            .expect("shared watch");
        (dir, shared)
    }

    async fn cache_with(window: usize, decoded: usize) -> (tempfile::TempDir, Arc<WatchCache>) {
        let (dir, shared) = shared_watch().await;
        let cache = WatchCache::new_shared(window, decoded, Arc::clone(&shared), ROOT.to_string());
        shared.register(ROOT, &cache).expect("register");
        (dir, cache)
    }

    /// Roots on one shared watch may not nest, in either order; siblings, including one that
    /// shares a prefix without the separator, are fine, and a root is free again once its
    /// cache is gone.
    #[tokio::test]
    async fn shared_watch_roots_may_not_nest() {
        let (_dir, shared) = shared_watch().await;
        let register = |root: &str| {
            let cache = WatchCache::new_shared(16, 16, Arc::clone(&shared), root.to_string());
            shared.register(root, &cache).map(|()| cache)
        };
        let b = register("/clusters/a/b/").expect("a/b");
        let _d = register("/clusters/a/d/").expect("a/d");
        let _bb = register("/clusters/a/bb/").expect("a/bb is a sibling");
        let _c = register("/clusters/a/c/").expect("a/c");
        assert!(register("/clusters/a/").is_err(), "encloses a/b");
        assert!(register("/clusters/").is_err(), "encloses everything");
        assert!(register("/clusters/a/b/x/").is_err(), "inside a/b");
        assert!(register("/clusters/a/c/x/y/").is_err(), "inside a/c");
        drop(b);
        let _x = register("/clusters/a/b/x/").expect("a/b is gone");
    }

    /// Events offered while a load runs are kept and applied past the load's revision; the
    /// ones the load already holds are not applied twice.
    #[tokio::test]
    async fn a_load_keeps_what_raced_it() {
        let (_dir, cache) = cache().await;
        cache.write().buffered = Some(Vec::new());
        cache.offer(event("a", 5));
        cache.offer(event("b", 7));
        assert_eq!(cache.revision(), 0, "not ready: reflects nothing yet");
        let a = Arc::new(serde_json::json!({"metadata": {"name": "a"}}));
        let loaded = BTreeMap::from([(
            format!("{ROOT}core/configmaps/default/a"),
            Kept::new(serde_json::to_vec(&*a).expect("encode").into(), 5, &a),
        )]);
        assert!(cache.finish_load(loaded, 5, 0));
        let (items, revision) = cache.list(ROOT);
        assert_eq!(items.len(), 2);
        assert_eq!(revision, 7);
        let replay = cache.subscribe(Some(5), ROOT).expect("replay").backlog;
        assert_eq!(replay.len(), 1, "only b came after the load");
        cache.offer(event("c", 9));
        assert_eq!(cache.revision(), 9);
    }

    /// A write announced before it reaches the store is taken by the cache when it applies
    /// the store's event for those very bytes (no second decode), and the writer gets the
    /// cache's object; a write the cache has not applied yet answers the announced object;
    /// an abandoned one is forgotten.
    #[tokio::test]
    async fn announced_writes_are_taken_not_decoded() {
        let (_dir, cache) = cache().await;
        assert!(cache.finish_load(BTreeMap::new(), 1, 0));
        let announce = |name: &str, revision: Revision| {
            let ev = event(name, revision);
            let object: Value = serde_json::from_slice(&ev.kv.value).expect("json");
            (ev, object)
        };

        // Applied first: writer and cache share one object, identical to a decode.
        let (ev, object) = announce("a", 5);
        let ticket = cache.writing(&ev.kv.key, &ev.kv.value, object);
        cache.offer(ev);
        let served = cache
            .get(&format!("{ROOT}core/configmaps/default/a"))
            .expect("cached");
        let written = ticket.written(5).expect("written");
        assert!(Arc::ptr_eq(&served, &written), "taken, not decoded");
        assert_eq!(
            *served,
            codec::decode(&event("a", 5).kv.value, 5).expect("decode")
        );

        // Answered first: the writer stamps its own; the cache decodes the event's bytes.
        let (ev, object) = announce("b", 6);
        let ticket = cache.writing(&ev.kv.key, &ev.kv.value, object);
        let written = ticket.written(6).expect("written");
        assert_eq!(written["metadata"]["resourceVersion"], "6");
        cache.offer(ev);
        let served = cache
            .get(&format!("{ROOT}core/configmaps/default/b"))
            .expect("cached");
        assert!(!Arc::ptr_eq(&served, &written));
        assert_eq!(served, written);

        // Other bytes with the same content are not taken; an abandoned write is forgotten.
        let (ev, object) = announce("c", 7);
        let ticket = cache.writing(&ev.kv.key, &ev.kv.value, object);
        cache.offer(event("c", 7));
        drop(ticket);
        assert!(cache.lock_handovers().is_empty());
    }

    /// The cache keeps its objects as the store's bytes: once nothing else holds an object's
    /// decoded form (its event left the broadcast ring, readers let go), the cache holds none
    /// either, and a read decodes it again, the same object; while something holds it, reads
    /// share it. A previous version is decoded only for whoever asks.
    #[tokio::test]
    async fn objects_are_kept_as_bytes_and_decoded_for_readers() {
        let (_dir, cache) = cache_with(16, 1).await;
        assert!(cache.finish_load(BTreeMap::new(), 1, 0));
        let mut live = cache.subscribe(Some(1), ROOT).expect("subscribe").live;
        let key = format!("{ROOT}core/configmaps/default/a");
        let strong = |cache: &WatchCache| {
            cache
                .read()
                .objects
                .get(&key)
                .map(|k| k.decoded.strong_count())
                .expect("kept")
        };
        cache.offer(event("a", 2));
        let first = live.recv().await.expect("event");
        assert!(
            Arc::ptr_eq(&cache.get(&key).expect("cached"), &first.object),
            "shared while held"
        );
        drop(first);
        // The next event pushes this one out of the one-event ring.
        cache.offer(event("b", 3));
        assert_eq!(strong(&cache), 0, "nothing holds the decoded object");
        let served = cache.get(&key).expect("cached");
        assert_eq!(
            *served,
            codec::decode(&event("a", 2).kv.value, 2).expect("decode")
        );
        assert_eq!(cache.list(ROOT).0.len(), 2);

        // An update: its event knows there was a previous version, and decodes it on demand.
        let mut update = event("a", 4);
        update.kind = EventKind::Updated;
        drop(served);
        cache.offer(update);
        let _ = live.recv().await;
        let ev = live.recv().await.expect("the update");
        assert!(ev.has_prev());
        assert_eq!(ev.own_type(), crate::watch::WatchEventType::Modified);
        let prev = ev.prev().expect("previous version");
        assert_eq!(prev["metadata"]["resourceVersion"], "2");
        assert!(
            Arc::ptr_eq(&prev, &ev.prev().expect("again")),
            "decoded once"
        );
    }

    /// The collector's epoch leaves out creations of objects with no owners, no finalizers
    /// and no deletionTimestamp, unless an object is being deleted; the ownership epoch
    /// (which the simulator counts its own creations by) still moves with them.
    #[tokio::test]
    async fn the_collector_epoch_skips_inert_creations_while_nothing_is_deleted() {
        let (_dir, cache) = cache().await;
        assert!(cache.finish_load(BTreeMap::new(), 1, 0));
        let mut revision = 1;
        let mut offer = |kind: EventKind, name: &str, value: Value| {
            revision += 1;
            cache.offer(event_of(kind, name, &value, revision));
            (cache.ownership_epoch(), cache.collector_epoch())
        };
        let plain = |name: &str| serde_json::json!({"metadata": {"name": name, "uid": name}});
        let moved = cache.collector_moved();
        let told = || futures::FutureExt::now_or_never(moved.notified()).is_some();
        assert!(told(), "the load moved it");
        let (own0, col0) = (cache.ownership_epoch(), cache.collector_epoch());
        let (own1, col1) = offer(EventKind::Created, "event", plain("event"));
        assert!(own1 > own0, "an inert creation moves the ownership epoch");
        assert_eq!(col1, col0, "but not the collector's");
        assert!(!told(), "nor wakes the collector");
        let mut owned = plain("owned");
        owned["metadata"]["ownerReferences"] = serde_json::json!([{"uid": "gone"}]);
        let (_, col2) = offer(EventKind::Created, "owned", owned);
        assert!(col2 > col1, "a creation with an owner moves it");
        assert!(told());
        let mut finalized = plain("finalized");
        finalized["metadata"]["finalizers"] = serde_json::json!(["f"]);
        let (_, col3) = offer(EventKind::Created, "finalized", finalized.clone());
        assert!(col3 > col2, "so does one with a finalizer");
        let mut deleting = finalized;
        deleting["metadata"]["deletionTimestamp"] = serde_json::json!("2026-12-08T00:00:00Z");
        let (_, col4) = offer(EventKind::Updated, "finalized", deleting);
        assert!(col4 > col3);
        let (_, col5) = offer(EventKind::Created, "late", plain("late"));
        assert!(
            col5 > col4,
            "with an object being deleted, an inert creation moves it"
        );
        let (_, col6) = offer(EventKind::Deleted, "finalized", plain("finalized"));
        assert!(col6 > col5, "a deletion moves it");
        let (_, col7) = offer(EventKind::Created, "after", plain("after"));
        assert_eq!(
            col7, col6,
            "and once nothing is being deleted, inert creations do not"
        );
        assert!(told());
        assert!(!told());
    }

    /// The ownership epoch moves with creations, deletions and changes of ownerReferences,
    /// finalizers or deletionTimestamp, and stays put for status, label and data changes.
    #[tokio::test]
    async fn the_ownership_epoch_moves_only_with_what_the_collector_decides_by() {
        let (_dir, cache) = cache().await;
        assert!(cache.finish_load(BTreeMap::new(), 1, 0));
        let key = format!("{ROOT}core/configmaps/default/a");
        let mut revision = 1;
        let mut offer = |kind: EventKind, value: Value| {
            revision += 1;
            cache.offer(WatchEvent {
                kind,
                kv: KeyValue {
                    key: key.clone(),
                    value: serde_json::to_vec(&value).unwrap_or_default().into(),
                    create_revision: 2,
                    mod_revision: revision,
                },
                prev: None,
            });
            cache.ownership_epoch()
        };
        let base = serde_json::json!({"metadata": {"name": "a", "labels": {"x": "1"}}});
        let with = |pointer: &str, v: Value| {
            let mut obj = base.clone();
            if let Some(slot) = obj.pointer_mut(pointer) {
                *slot = v;
            }
            obj
        };
        // The collector sleeps on this instead of a timer: told exactly when the epoch moves.
        let moved = cache.collector_moved();
        let told = || futures::FutureExt::now_or_never(moved.notified()).is_some();
        assert!(told(), "the load moved it");
        assert!(!told(), "one permit, taken");
        let start = cache.ownership_epoch();
        let created = offer(EventKind::Created, base.clone());
        assert!(created > start, "a creation moves it");
        assert!(
            !told(),
            "but an inert one does not wake the collector (see the test after this one)"
        );
        let labelled = offer(
            EventKind::Updated,
            with("/metadata/labels", serde_json::json!({"x": "2"})),
        );
        assert_eq!(labelled, created, "a label change does not");
        assert!(!told(), "nor tells it");
        let mut status = base.clone();
        status["status"] = serde_json::json!({"phase": "Ready"});
        let content = cache.content_epoch();
        let mut changes = cache.content_changes();
        changes.mark_unchanged();
        assert_eq!(
            offer(EventKind::Updated, status),
            created,
            "nor a status write"
        );
        assert!(
            cache.content_epoch() > content,
            "while the content epoch moves with every change"
        );
        assert!(
            changes.has_changed().unwrap_or(false),
            "and tells who waits for it"
        );
        assert_eq!(*changes.borrow_and_update(), cache.content_epoch());
        let mut owned = base.clone();
        owned["metadata"]["ownerReferences"] = serde_json::json!([{"uid": "u1"}]);
        let after_owner = offer(EventKind::Updated, owned.clone());
        assert!(after_owner > created, "an owner reference does");
        assert!(told());
        let mut finalized = owned.clone();
        finalized["metadata"]["finalizers"] = serde_json::json!(["f"]);
        let after_finalizer = offer(EventKind::Updated, finalized.clone());
        assert!(after_finalizer > after_owner, "a finalizer does");
        let mut deleting = finalized.clone();
        deleting["metadata"]["deletionTimestamp"] = serde_json::json!("2026-11-22T00:00:00Z");
        let after_timestamp = offer(EventKind::Updated, deleting.clone());
        assert!(
            after_timestamp > after_finalizer,
            "a deletionTimestamp does"
        );
        assert!(
            offer(EventKind::Deleted, deleting) > after_timestamp,
            "a deletion does"
        );
    }

    /// Events past the window's recent part are kept as the store's bytes, and a replay
    /// that reaches back to them gets exactly the events the live watchers got: kind,
    /// object, previous version and revision, deletions included. With the default decoded
    /// part, with a short one, and with none (a simulated cluster's).
    #[tokio::test]
    async fn compacted_events_replay_as_they_were_broadcast() {
        for decoded in [crate::DEFAULT_WATCH_DECODED, 16, 0] {
            compacted_replay(decoded).await;
        }
    }

    async fn compacted_replay(decoded: usize) {
        let (_dir, cache) = cache_with(100_000, decoded).await;
        assert_eq!(cache.recent, decoded);
        assert!(cache.finish_load(BTreeMap::new(), 1, 0));
        let mut versions: HashMap<String, KeyValue> = HashMap::new();
        let mut broadcast = Vec::new();
        let mut live = cache.live.subscribe();
        let total = cache.recent + 600;
        for n in 0..total {
            let revision = i64::try_from(n).expect("small") + 2;
            let name = format!("cm{}", n % 7);
            let key = format!("{ROOT}core/configmaps/default/{name}");
            let prev = versions.get(&key).cloned();
            let (kind, value) = match &prev {
                Some(_) if n % 11 == 0 => {
                    (EventKind::Deleted, prev.as_ref().map(|kv| kv.value.clone()))
                }
                Some(_) => (EventKind::Updated, None),
                None => (EventKind::Created, None),
            };
            let value = value.unwrap_or_else(|| {
                let obj = serde_json::json!({
                    "metadata": {"name": name, "labels": {"n": n.to_string()}},
                    "data": {"k": "v".repeat(n % 13)},
                });
                serde_json::to_vec(&obj).unwrap_or_default().into()
            });
            let kv = KeyValue {
                key: key.clone(),
                value,
                create_revision: prev.as_ref().map_or(revision, |p| p.create_revision),
                mod_revision: revision,
            };
            if kind == EventKind::Deleted {
                versions.remove(&key);
            } else {
                versions.insert(key.clone(), kv.clone());
            }
            // The store reads the previous version back: its own copy of those bytes.
            let prev = prev.map(|kv| KeyValue {
                value: bytes::Bytes::copy_from_slice(&kv.value),
                ..kv
            });
            cache.offer(WatchEvent { kind, kv, prev });
            broadcast.push(live.try_recv().expect("every event is broadcast"));
            if cache.recent > 0 {
                assert!(
                    matches!(cache.read().events.back(), Some(Slot::Decoded(_))),
                    "the newest event is decoded"
                );
            }
        }
        let compact = compact_slots(&cache);
        assert_eq!(
            compact,
            total - cache.recent,
            "all but the recent part is compact"
        );
        // A compact event's previous version shares the bytes of the event before it.
        let state = cache.read();
        let mut newest: HashMap<&str, &bytes::Bytes> = HashMap::new();
        let mut shared = 0;
        for slot in &state.events {
            if let Slot::Compact { key, stored, .. } = slot {
                if let (Some((prev, _)), Some(before)) = (&stored.prev, newest.get(key.as_str())) {
                    assert_eq!(prev.as_ptr(), before.as_ptr(), "{key}: shared, not copied");
                    shared += 1;
                }
                newest.insert(key, &stored.object);
            }
        }
        assert!(shared > 100, "{shared} shared");
        drop(state);
        let replay = cache.subscribe(Some(1), ROOT).expect("replay").backlog;
        assert_eq!(replay.len(), broadcast.len());
        for (got, want) in replay.iter().zip(&broadcast) {
            assert_eq!(got.kind, want.kind);
            assert_eq!(got.key, want.key);
            assert_eq!(got.revision, want.revision);
            assert_eq!(*got.object, *want.object, "at {}", want.revision);
            assert_eq!(
                got.prev().as_deref(),
                want.prev().as_deref(),
                "at {}",
                want.revision
            );
            assert_eq!(got.own_type(), want.own_type());
        }
    }

    /// A replay hands out only the events under the watcher's prefix (it decodes no other
    /// compact event), and the watcher's position is still the end of the window.
    #[tokio::test]
    async fn a_replay_holds_only_its_prefix() {
        let (_dir, cache) = cache_with(64, 2).await;
        assert!(cache.finish_load(BTreeMap::new(), 1, 0));
        let other = |name: &str, revision: Revision| {
            let mut ev = event(name, revision);
            ev.kv.key = format!("{ROOT}core/secrets/default/{name}");
            ev
        };
        let mut revision = 1;
        for i in 0..40 {
            revision += 1;
            cache.offer(if i % 10 == 0 {
                event(&format!("cm{i}"), revision)
            } else {
                other(&format!("s{i}"), revision)
            });
        }
        let compact = compact_slots(&cache);
        assert!(compact >= 30, "most of the window is compact: {compact}");
        let configmaps = format!("{ROOT}core/configmaps/");
        let sub = cache.subscribe(Some(1), &configmaps).expect("replay");
        let names: Vec<&str> = sub
            .backlog
            .iter()
            .map(|ev| ev.object["metadata"]["name"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(names, ["cm0", "cm10", "cm20", "cm30"]);
        assert_eq!(sub.position, revision, "caught up to the end of the window");
        let all = cache.subscribe(Some(1), ROOT).expect("replay everything");
        assert_eq!(all.backlog.len(), 40);
    }

    /// A load that started before the shared watch lost its place is thrown away.
    #[tokio::test]
    async fn a_load_older_than_an_invalidation_is_discarded() {
        let (_dir, cache) = cache().await;
        cache.write().buffered = Some(Vec::new());
        assert!(cache.finish_load(BTreeMap::new(), 3, 0));
        cache.invalidate();
        cache.offer(event("late", 11));
        assert!(!cache.finish_load(BTreeMap::new(), 4, 0));
        assert!(!cache.read().ready);
        assert!(cache.finish_load(BTreeMap::new(), 10, 1));
        assert_eq!(
            cache.list(ROOT).0.len(),
            1,
            "the event after the restart is kept"
        );
    }
}
