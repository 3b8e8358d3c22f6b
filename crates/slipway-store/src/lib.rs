//! The revisioned key/value store every Slipway object lives in.
//!
//! The model is etcd's (and k3s kine's): one global, strictly increasing revision counter;
//! every successful write gets the next revision; every key remembers the revision that created
//! it and the revision that last modified it; writes may be conditioned on the current
//! modification revision (compare-and-swap); a watch replays every change after a revision and
//! then streams live ones; compaction forgets history older than a revision, after which
//! watching or listing from before it fails with [`StoreError::Compacted`].
//!
//! Backends: [`sqlite::SqliteStore`] (embedded, the default) and `slipway-store-etcd`.
//! `conformance` (feature `conformance`) is the suite every backend must pass.

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod sqlite;

/// A store revision. Revision 0 means "nothing written yet"; the first write is revision 1.
pub type Revision = i64;

/// One key with its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// Revision of the write that created this key (since its last deletion).
    pub create_revision: Revision,
    /// Revision of the write that last changed this key.
    pub mod_revision: Revision,
}

/// What a list returns: a consistent snapshot of one page at `revision`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListResult {
    pub items: Vec<KeyValue>,
    /// The revision the list was read at. Pass it back (with `start_after`) for the next page.
    pub revision: Revision,
    /// True when more keys after the last item match the prefix at `revision`.
    pub more: bool,
}

/// How to read a list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Read at this revision instead of the current one (for consistent paging).
    pub revision: Option<Revision>,
    /// Only keys strictly greater than this one (the last key of the previous page).
    pub start_after: Option<String>,
    /// At most this many items; `None` or `Some(0)` means no limit.
    pub limit: Option<usize>,
}

/// The kind of change a watch event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The key did not exist before this write.
    Created,
    /// The key existed and got a new value.
    Updated,
    /// The key was deleted; the event carries its last value.
    Deleted,
    /// No change: every change under the watched prefix up to `kv.mod_revision` has been
    /// delivered (`kv.key` is the prefix, the value empty). Only from
    /// [`Store::watch_with_progress`].
    Progress,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: EventKind,
    /// For `Created`/`Updated` the new key/value; for `Deleted` the last value the key had,
    /// with `mod_revision` set to the revision of the deletion.
    pub kv: KeyValue,
    /// The value before this change, when the backend knows it (`Updated`, `Deleted`).
    pub prev: Option<KeyValue>,
}

impl WatchEvent {
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// A live watch. It ends with an error (such as [`StoreError::Compacted`] or
/// [`StoreError::Unavailable`]) or when the store shuts down.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, StoreError>> + Send>>;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("key {key:?} not found")]
    NotFound { key: String },
    #[error("key {key:?} already exists")]
    AlreadyExists { key: String },
    /// The precondition failed: the key's modification revision is not the expected one.
    /// `current` is `None` when the key no longer exists.
    #[error("key {key:?} was modified (expected revision {expected}, current {current:?})")]
    Conflict {
        key: String,
        expected: Revision,
        current: Option<Revision>,
    },
    /// The requested revision is older than the oldest one the store still remembers.
    #[error("revision {requested} has been compacted (oldest available is {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    /// The requested revision is newer than the store's current revision.
    #[error("revision {requested} is in the future (current is {current})")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    /// A guarded write was refused: the guard key's modification revision is not the one the
    /// writer named (`current` is `None` when the guard key does not exist). Nothing was
    /// written. See [`Guard`].
    #[error("guard on key {key:?} failed (expected revision {expected}, current {current:?})")]
    GuardFailed {
        key: String,
        expected: Revision,
        current: Option<Revision>,
    },
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The backend cannot be reached right now; retrying may succeed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend failed in a way retrying will not fix.
    #[error("store failure: {0}")]
    Internal(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A condition on *another* key, checked atomically with a write: the write happens only if
/// `key` currently exists with modification revision `mod_revision`.
///
/// This is how fencing works: a leader writes with a guard on its lease key at the revision
/// it last saw; once another replica takes the lease over (changing the lease key), every
/// write of the stale leader fails with [`StoreError::GuardFailed`] even if it has not
/// noticed yet. The check and the write are one transaction (SQLite's writer transaction,
/// one etcd `Txn`), so there is no window between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    /// The guarding key (for example a `Lease` object's key).
    pub key: String,
    /// The modification revision `key` must have for the write to go ahead.
    pub mod_revision: Revision,
}

/// A revisioned key/value store with watch. Keys are UTF-8 strings compared bytewise.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The latest key/value, or `None`.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Keys starting with `prefix`, in key order, as of one revision.
    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult>;

    /// Number of keys starting with `prefix` at the current revision.
    async fn count(&self, prefix: &str) -> Result<u64>;

    /// Create `key`; fails with `AlreadyExists` if it exists. Returns the new revision.
    async fn create(&self, key: &str, value: Bytes) -> Result<Revision>;

    /// Replace the value of `key` if its modification revision is `expected`
    /// (`Conflict` otherwise, `NotFound` if it does not exist). Returns the new revision.
    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<Revision>;

    /// Delete `key`, if `expected` is given only when its modification revision matches.
    /// Returns the deletion's revision and the last value.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)>;

    /// [`Store::create`], only if `guard` holds at the moment of the write
    /// ([`StoreError::GuardFailed`] otherwise, checked before the write's own precondition).
    async fn create_guarded(&self, key: &str, value: Bytes, guard: &Guard) -> Result<Revision>;

    /// [`Store::update`], only if `guard` holds at the moment of the write.
    async fn update_guarded(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        guard: &Guard,
    ) -> Result<Revision>;

    /// [`Store::delete`], only if `guard` holds at the moment of the write.
    async fn delete_guarded(
        &self,
        key: &str,
        expected: Option<Revision>,
        guard: &Guard,
    ) -> Result<(Revision, KeyValue)>;

    /// Every change to keys starting with `prefix` after revision `after`, then live ones.
    /// `after` older than the compacted revision fails with `Compacted`.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// Like [`Store::watch`], and also reports progress: when the store moved past revisions
    /// that changed nothing under `prefix`, a [`EventKind::Progress`] event says so (etcd's
    /// progress notifications). A reader following one prefix of a store shared with other
    /// writers needs this to know it is up to date. Backends that cannot report progress
    /// return a plain watch: correct for a store whose every write is under the prefix.
    async fn watch_with_progress(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        self.watch(prefix, after).await
    }

    /// The store's current revision (that of the last write).
    async fn current_revision(&self) -> Result<Revision>;

    /// Forget history before `revision`: reads and watches from before it fail with
    /// `Compacted` afterwards. Compacting to an already compacted revision is a no-op.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The oldest revision still readable (0 if nothing was compacted).
    async fn compacted_revision(&self) -> Result<Revision>;

    /// A short name for logs and benchmarks ("sqlite", "etcd").
    fn backend(&self) -> &'static str;
}

/// The smallest string greater than every string starting with `prefix`, for range reads
/// (`None` when no such string exists, i.e. the range is open-ended).
pub fn prefix_end(prefix: &str) -> Option<Vec<u8>> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}
