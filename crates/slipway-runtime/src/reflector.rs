//! Informers: a local cache of one kind fed by list + watch through the [`Client`] trait.
//!
//! The [`Informer`] lists (page by page), replaces its [`Store`] with the result, then
//! watches from the list's resourceVersion, applying every event. When the watch ends it
//! resumes from the last resourceVersion it saw (bookmarks included); when the server says
//! that version is gone (410) it lists again; other errors back off exponentially. Every
//! change is also sent to the subscribers ([`Informer::subscribe`]) as an [`Event`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use slipway_client::{Api, ListParams, WatchEventOf, WatchParams};
use tokio::sync::{mpsc, watch};

use crate::ObjectKey;
use crate::queue::Backoff;

/// A named index of an informer's cache: the values an object is filed under (none: it is
/// not in the index), as client-go's `IndexFunc`.
pub type IndexFn<K> = fn(&K) -> Vec<String>;

/// One index: its function and, per value, the keys of the objects filed under it.
struct Index<K> {
    name: &'static str,
    values_of: IndexFn<K>,
    keys: HashMap<String, HashSet<ObjectKey>>,
}

/// The cached objects, the keys of those each controlling owner (by uid) has, and the
/// informer's own indexes.
struct Cache<K> {
    objects: HashMap<ObjectKey, Arc<K>>,
    by_owner: HashMap<String, HashSet<ObjectKey>>,
    indexes: Vec<Index<K>>,
}

impl<K> Cache<K> {
    /// The keys filed under `value` in index `index`.
    fn filed(&self, index: &str, value: &str) -> Option<&HashSet<ObjectKey>> {
        self.indexes
            .iter()
            .find(|i| i.name == index)
            .and_then(|i| i.keys.get(value))
    }

    /// An empty cache with the same indexes as `self`.
    fn empty_like(&self) -> Self {
        Self {
            objects: HashMap::new(),
            by_owner: HashMap::new(),
            indexes: self
                .indexes
                .iter()
                .map(|i| Index {
                    name: i.name,
                    values_of: i.values_of,
                    keys: HashMap::new(),
                })
                .collect(),
        }
    }
}

impl<K> Default for Cache<K> {
    fn default() -> Self {
        Self {
            objects: HashMap::new(),
            by_owner: HashMap::new(),
            indexes: Vec::new(),
        }
    }
}

/// The uid of `obj`'s controlling owner.
fn controller_uid<K: kube::Resource>(obj: &K) -> Option<&str> {
    obj.meta()
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

impl<K: kube::Resource> Cache<K> {
    fn insert(&mut self, obj: Arc<K>) {
        let key = ObjectKey::of(&*obj);
        let owner = controller_uid(&*obj).map(str::to_string);
        let filed: Vec<Vec<String>> = self
            .indexes
            .iter()
            .map(|index| (index.values_of)(&*obj))
            .collect();
        if let Some(old) = self.objects.insert(key.clone(), obj) {
            self.unindex(&old, &key);
        }
        for (index, values) in self.indexes.iter_mut().zip(filed) {
            for value in values {
                index.keys.entry(value).or_default().insert(key.clone());
            }
        }
        if let Some(owner) = owner {
            self.by_owner.entry(owner).or_default().insert(key);
        }
    }

    fn remove(&mut self, key: &ObjectKey) {
        if let Some(old) = self.objects.remove(key) {
            self.unindex(&old, key);
        }
    }

    fn unindex(&mut self, old: &K, key: &ObjectKey) {
        if let Some(owner) = controller_uid(old)
            && let Some(keys) = self.by_owner.get_mut(owner)
        {
            keys.remove(key);
            if keys.is_empty() {
                self.by_owner.remove(owner);
            }
        }
        for index in &mut self.indexes {
            for value in (index.values_of)(old) {
                if let Some(keys) = index.keys.get_mut(&value) {
                    keys.remove(key);
                    if keys.is_empty() {
                        index.keys.remove(&value);
                    }
                }
            }
        }
    }
}

/// The cache: objects by namespace/name, readable from many tasks at once.
pub struct Store<K> {
    cache: Arc<RwLock<Cache<K>>>,
    synced: watch::Receiver<bool>,
}

#[cfg(test)]
impl<K: kube::Resource> Store<K> {
    /// A synced store holding `objects`, for unit tests of what reads a store.
    pub(crate) fn holding(objects: impl IntoIterator<Item = K>) -> Self {
        let mut cache = Cache::default();
        for obj in objects {
            cache.insert(Arc::new(obj));
        }
        let (_, synced) = watch::channel(true);
        Self {
            cache: Arc::new(RwLock::new(cache)),
            synced,
        }
    }
}

impl<K> Clone for Store<K> {
    fn clone(&self) -> Self {
        Self {
            cache: Arc::clone(&self.cache),
            synced: self.synced.clone(),
        }
    }
}

impl<K> std::fmt::Debug for Store<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<K> Store<K> {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Cache<K>> {
        self.cache.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached object.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<K>> {
        self.read().objects.get(key).cloned()
    }

    /// Every cached object.
    pub fn state(&self) -> Vec<Arc<K>> {
        self.read().objects.values().cloned().collect()
    }

    /// The keys of the cached objects that `pick` selects; clones no object.
    pub fn keys_where(&self, mut pick: impl FnMut(&ObjectKey) -> bool) -> Vec<ObjectKey> {
        self.read()
            .objects
            .keys()
            .filter(|key| pick(key))
            .cloned()
            .collect()
    }

    /// The cached objects whose controlling owner (the `ownerReferences` entry with
    /// `controller: true`) has uid `owner_uid`; found through an index, so this costs what it
    /// returns however large the cache is.
    pub fn controlled_by(&self, owner_uid: &str) -> Vec<Arc<K>> {
        let cache = self.read();
        cache
            .by_owner
            .get(owner_uid)
            .into_iter()
            .flatten()
            .filter_map(|key| cache.objects.get(key).cloned())
            .collect()
    }

    /// The cached objects filed under `value` in index `index` ([`Informer::with_index`]);
    /// costs what it returns. Empty when there is no such index.
    pub fn by_index(&self, index: &str, value: &str) -> Vec<Arc<K>> {
        let cache = self.read();
        cache
            .filed(index, value)
            .into_iter()
            .flatten()
            .filter_map(|key| cache.objects.get(key).cloned())
            .collect()
    }

    /// The keys of the objects filed under `value` in index `index`.
    pub fn index_keys(&self, index: &str, value: &str) -> Vec<ObjectKey> {
        let cache = self.read();
        cache
            .filed(index, value)
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// How many objects are cached.
    pub fn len(&self) -> usize {
        self.read().objects.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once the first list completed (the cache reflects the server).
    pub fn has_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Wait until [`Store::has_synced`].
    pub async fn wait_synced(&self) {
        let mut synced = self.synced.clone();
        // An error means the informer is gone; nothing more to wait for.
        let _ = synced.wait_for(|s| *s).await;
    }
}

/// A change the informer applied to its cache.
#[derive(Debug, Clone)]
pub enum Event<K> {
    /// The object was added or changed (or seen again by a relist).
    Applied(Arc<K>),
    /// The object was deleted (or was absent from a relist).
    Deleted(Arc<K>),
}

impl<K> Event<K> {
    /// The object the event is about.
    pub fn object(&self) -> &Arc<K> {
        match self {
            Self::Applied(k) | Self::Deleted(k) => k,
        }
    }
}

/// Options of an informer.
#[derive(Debug, Clone)]
pub struct InformerConfig {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    /// List page size.
    pub page_size: u32,
    /// Ask the server to end each watch after this long (then it resumes).
    pub watch_timeout: Duration,
    /// Backoff between failed attempts (reset after a successful list or watch event).
    pub backoff: Backoff,
    /// Ask for bookmarks, so that resuming after a quiet period does not need a relist.
    pub bookmarks: bool,
    /// Keep each object's `metadata.managedFields`. Off by default, as kube-rs advises for
    /// reflectors: no controller reads them, they are often the larger part of an object,
    /// and an update that leaves them out keeps the server's.
    pub keep_managed_fields: bool,
}

impl Default for InformerConfig {
    fn default() -> Self {
        Self {
            label_selector: None,
            field_selector: None,
            page_size: 500,
            watch_timeout: Duration::from_secs(290),
            backoff: Backoff {
                base: Duration::from_millis(200),
                cap: Duration::from_secs(30),
            },
            bookmarks: true,
            keep_managed_fields: false,
        }
    }
}

/// List + watch of one kind into a [`Store`]. Build it, take [`Informer::store`] and
/// [`Informer::subscribe`] as needed, then drive [`Informer::run`] (it runs until dropped).
pub struct Informer<K> {
    api: Api<K>,
    config: InformerConfig,
    cache: Arc<RwLock<Cache<K>>>,
    synced_tx: watch::Sender<bool>,
    synced_rx: watch::Receiver<bool>,
    subscribers: Vec<mpsc::UnboundedSender<Event<K>>>,
    lists: Arc<AtomicU64>,
}

impl<K> Informer<K>
where
    K: kube::Resource + Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// An informer over `api` (its namespace, or all).
    pub fn new(api: Api<K>, config: InformerConfig) -> Self {
        let (synced_tx, synced_rx) = watch::channel(false);
        Self {
            api,
            config,
            cache: Arc::new(RwLock::new(Cache::default())),
            synced_tx,
            synced_rx,
            subscribers: Vec::new(),
            lists: Arc::default(),
        }
    }

    /// Keep an index `name` of the cache: each object filed under the values `values_of`
    /// gives it, read with [`Store::by_index`]. Add indexes before the informer runs.
    #[must_use]
    pub fn with_index(self, name: &'static str, values_of: IndexFn<K>) -> Self {
        {
            let mut cache = self.write();
            let keys = {
                let mut keys: HashMap<String, HashSet<ObjectKey>> = HashMap::new();
                for (key, obj) in &cache.objects {
                    for value in values_of(obj) {
                        keys.entry(value).or_default().insert(key.clone());
                    }
                }
                keys
            };
            cache.indexes.push(Index {
                name,
                values_of,
                keys,
            });
        }
        self
    }

    /// A reader of the cache.
    pub fn store(&self) -> Store<K> {
        Store {
            cache: Arc::clone(&self.cache),
            synced: self.synced_rx.clone(),
        }
    }

    /// Every change from now on (call before [`Informer::run`]).
    pub fn subscribe(&mut self) -> mpsc::UnboundedReceiver<Event<K>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers.push(tx);
        rx
    }

    /// A counter of completed lists (the first one, then one per relist).
    pub fn list_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.lists)
    }

    fn send(&mut self, event: Event<K>) {
        self.subscribers.retain(|s| s.send(event.clone()).is_ok());
    }

    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, Cache<K>> {
        self.cache.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Cache<K>> {
        self.cache.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The object as the cache keeps it ([`InformerConfig::keep_managed_fields`]).
    fn trim(&self, mut k: K) -> K {
        if !self.config.keep_managed_fields {
            k.meta_mut().managed_fields = None;
        }
        k
    }

    /// List everything and replace the cache; returns the list's resourceVersion.
    async fn relist(&mut self) -> slipway_client::Result<String> {
        let mut params = ListParams {
            label_selector: self.config.label_selector.clone(),
            field_selector: self.config.field_selector.clone(),
            limit: Some(self.config.page_size),
            ..ListParams::default()
        };
        let mut items = Vec::new();
        let version = loop {
            let page = self.api.list(&params).await?;
            items.extend(page.items);
            match page.continue_token {
                Some(token) => params.continue_token = Some(token),
                None => break page.resource_version,
            }
        };
        let mut fresh = self.read_cache().empty_like();
        for k in items {
            fresh.insert(Arc::new(self.trim(k)));
        }
        let applied: Vec<Arc<K>> = fresh.objects.values().cloned().collect();
        let gone: Vec<Arc<K>> = {
            let mut cache = self.write();
            let old = std::mem::replace(&mut *cache, fresh);
            old.objects
                .into_iter()
                .filter(|(key, _)| !cache.objects.contains_key(key))
                .map(|(_, obj)| obj)
                .collect()
        };
        for obj in gone {
            self.send(Event::Deleted(obj));
        }
        for obj in applied {
            self.send(Event::Applied(obj));
        }
        self.lists.fetch_add(1, Ordering::SeqCst);
        self.synced_tx.send_replace(true);
        Ok(version)
    }

    /// Keep the cache in step with the server, forever (drop or abort the task to stop).
    pub async fn run(mut self) {
        let mut failures = 0u32;
        let mut version: Option<String> = None;
        loop {
            let from = match version.take() {
                Some(v) => v,
                None => match self.relist().await {
                    Ok(v) => {
                        failures = 0;
                        v
                    }
                    Err(e) => {
                        let delay = self.config.backoff.delay(failures);
                        failures = failures.saturating_add(1);
                        tracing::warn!(error = %e, ?delay, "informer: list failed");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                },
            };
            match self.watch_from(&from).await {
                WatchEnd::Resume(v) => {
                    failures = 0;
                    version = Some(v);
                }
                WatchEnd::Gone => {
                    tracing::debug!(from, "informer: resourceVersion gone; relisting");
                }
                WatchEnd::Failed(v, e) => {
                    let delay = self.config.backoff.delay(failures);
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, ?delay, "informer: watch failed");
                    tokio::time::sleep(delay).await;
                    version = Some(v);
                }
            }
        }
    }

    /// Watch from `from` until the stream ends.
    async fn watch_from(&mut self, from: &str) -> WatchEnd {
        let params = WatchParams {
            label_selector: self.config.label_selector.clone(),
            field_selector: self.config.field_selector.clone(),
            resource_version: Some(from.to_string()),
            bookmarks: self.config.bookmarks,
            timeout: Some(self.config.watch_timeout),
        };
        let mut last = from.to_string();
        let mut stream = match self.api.watch(&params).await {
            Ok(s) => s,
            Err(e) if e.is_gone() => return WatchEnd::Gone,
            Err(e) => return WatchEnd::Failed(last, e),
        };
        while let Some(event) = stream.next().await {
            match event {
                Ok(WatchEventOf::Added(k)) | Ok(WatchEventOf::Modified(k)) => {
                    if let Some(v) = k.meta().resource_version.clone() {
                        last = v;
                    }
                    let k = Arc::new(self.trim(k));
                    self.write().insert(Arc::clone(&k));
                    self.send(Event::Applied(k));
                }
                Ok(WatchEventOf::Deleted(k)) => {
                    if let Some(v) = k.meta().resource_version.clone() {
                        last = v;
                    }
                    let k = Arc::new(self.trim(k));
                    self.write().remove(&ObjectKey::of(&*k));
                    self.send(Event::Deleted(k));
                }
                Ok(WatchEventOf::Bookmark { resource_version }) => last = resource_version,
                Ok(WatchEventOf::Error(status)) if status.code == 410 => return WatchEnd::Gone,
                Ok(WatchEventOf::Error(status)) => {
                    return WatchEnd::Failed(last, slipway_client::Error::Api(status));
                }
                Err(e) if e.is_gone() => return WatchEnd::Gone,
                Err(e) => return WatchEnd::Failed(last, e),
            }
        }
        WatchEnd::Resume(last)
    }
}

enum WatchEnd {
    /// The stream ended normally: resume from this version.
    Resume(String),
    /// The version is compacted: relist.
    Gone,
    /// Back off, then resume from this version.
    Failed(String, slipway_client::Error),
}
