//! The watch cache: one store watch fanned out to every API watcher.
//!
//! A single task follows the store from a consistent list of the registry's key root,
//! keeps the latest decoded state of every object, and a window of recent events. Watchers take
//! a snapshot or replay the window under a read lock and subscribe to the live broadcast in the
//! same critical section, so no event is missed or seen twice. A watcher that falls behind the
//! broadcast catches up from the window; one that falls behind the window gets 410 Expired,
//! as it would from kube-apiserver.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock};
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
    /// The object before this change, if it existed.
    pub prev: Option<Arc<Value>>,
    pub revision: Revision,
    json: std::sync::OnceLock<bytes::Bytes>,
}

impl CacheEvent {
    fn new(
        kind: EventKind,
        key: String,
        object: Arc<Value>,
        prev: Option<Arc<Value>>,
        revision: Revision,
    ) -> Self {
        Self {
            kind,
            key,
            object,
            prev,
            revision,
            json: std::sync::OnceLock::new(),
        }
    }

    /// The object serialized as JSON, computed once and shared by every watcher.
    pub fn object_json(&self) -> bytes::Bytes {
        self.json
            .get_or_init(|| {
                bytes::Bytes::from(serde_json::to_vec(&*self.object).unwrap_or_default())
            })
            .clone()
    }
}

struct State {
    objects: BTreeMap<String, Arc<Value>>,
    events: VecDeque<Arc<CacheEvent>>,
    /// The revision the cache reflects.
    revision: Revision,
    /// Watches may start from any revision >= this one.
    oldest: Revision,
    /// False while (re)loading from the store.
    ready: bool,
}

pub struct WatchCache {
    state: RwLock<State>,
    live: broadcast::Sender<Arc<CacheEvent>>,
    progress: watch::Sender<Revision>,
    window: usize,
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
    pub fn new(window: usize) -> Arc<Self> {
        let window = window.max(16);
        // The broadcast ring keeps its last values alive whether or not anyone lags, so it is
        // no longer than the window: a receiver that falls behind it catches up from the
        // window, which holds the same events.
        let (live, _) = broadcast::channel(window.min(4096));
        let (progress, _) = watch::channel(0);
        Arc::new(Self {
            state: RwLock::new(State {
                objects: BTreeMap::new(),
                events: VecDeque::new(),
                revision: 0,
                oldest: 0,
                ready: false,
            }),
            live,
            progress,
            window,
        })
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
        self.read().revision
    }

    /// Wait until the cache reflects at least `revision`.
    pub async fn wait_for(&self, revision: Revision, timeout: Duration) -> Result<(), ApiError> {
        let mut rx = self.progress.subscribe();
        let result = tokio::time::timeout(timeout, rx.wait_for(|r| *r >= revision)).await;
        match result {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ApiError::timeout(format!(
                "Too large resource version: {revision}, current: {}",
                self.revision()
            ))
            .with_retry(1)),
        }
    }

    /// The latest object under `key`, if the cache has it.
    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
        self.read().objects.get(key).cloned()
    }

    /// Every object under `prefix` (key order) and the revision they reflect.
    pub fn list(&self, prefix: &str) -> (Vec<Arc<Value>>, Revision) {
        let state = self.read();
        let items = state
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| Arc::clone(v))
            .collect();
        (items, state.revision)
    }

    /// Every object in the cache with its key (for the garbage collector's scans).
    pub fn snapshot(&self) -> Vec<(String, Arc<Value>)> {
        self.read()
            .objects
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
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
        match after {
            None => {
                let backlog = state
                    .objects
                    .range(prefix.to_string()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(k, v)| {
                        Arc::new(CacheEvent::new(
                            EventKind::Created,
                            k.clone(),
                            Arc::clone(v),
                            None,
                            state.revision,
                        ))
                    })
                    .collect();
                Ok(Subscription {
                    backlog,
                    live,
                    position: state.revision,
                })
            }
            Some(after) => {
                let backlog = Self::replay(&state, after)?;
                Ok(Subscription {
                    backlog,
                    live,
                    position: state.revision.max(after),
                })
            }
        }
    }

    /// Resubscribe a watcher that lagged behind the broadcast, from its position.
    pub fn resubscribe(&self, position: Revision) -> Result<Subscription, ApiError> {
        self.subscribe(Some(position), "")
    }

    fn replay(state: &State, after: Revision) -> Result<Vec<Arc<CacheEvent>>, ApiError> {
        if after < state.oldest {
            return Err(too_old(after, state.oldest));
        }
        let start = state.events.partition_point(|e| e.revision <= after);
        Ok(state.events.range(start..).cloned().collect())
    }

    /// Forget events at or before `revision` (after a store compaction).
    pub fn compacted(&self, revision: Revision) {
        let mut state = self.write();
        while state.events.front().is_some_and(|e| e.revision <= revision) {
            state.events.pop_front();
        }
        state.oldest = state.oldest.max(revision);
    }

    fn apply(&self, state: &mut State, event: slipway_store::WatchEvent) {
        let revision = event.revision();
        let key = event.kv.key.clone();
        let object = match codec::decode(&event.kv.value, revision) {
            Ok(obj) => Arc::new(obj),
            Err(e) => {
                tracing::error!(key, revision, error = %e, "watch cache: undecodable object skipped");
                state.revision = revision;
                return;
            }
        };
        let prev = match event.kind {
            EventKind::Deleted => state.objects.remove(&key),
            _ => state.objects.insert(key.clone(), Arc::clone(&object)),
        };
        let ev = Arc::new(CacheEvent::new(event.kind, key, object, prev, revision));
        state.events.push_back(Arc::clone(&ev));
        while state.events.len() > self.window {
            if let Some(old) = state.events.pop_front() {
                state.oldest = state.oldest.max(old.revision);
            }
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
                match codec::decode(&kv.value, kv.mod_revision) {
                    Ok(obj) => {
                        objects.insert(kv.key.clone(), Arc::new(obj));
                    }
                    Err(e) => {
                        tracing::error!(key = kv.key, error = %e, "watch cache: undecodable object skipped")
                    }
                }
            }
            start_after = page.items.last().map(|kv| kv.key.clone());
            if !page.more {
                break;
            }
        }
        let mut stream = store.watch_with_progress(root, revision).await?;
        {
            let mut state = self.write();
            state.objects = objects;
            state.events.clear();
            state.revision = revision;
            // The window starts at the load: older positions can no longer be replayed.
            state.oldest = revision;
            state.ready = true;
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
