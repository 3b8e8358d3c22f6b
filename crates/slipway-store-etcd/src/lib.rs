//! etcd v3 backend of the Slipway store (see [`slipway_store::Store`]).
//!
//! etcd already has the store's model (one global revision, create/mod revisions per key,
//! compare-and-swap transactions, watch from a revision, compaction), so every trait method is
//! one or two etcd requests:
//!
//! | trait | etcd |
//! |---|---|
//! | `get` | range of one key (linearizable, like every read here) |
//! | `create` | txn: `create_revision(key) == 0` → put, else nothing → `AlreadyExists` |
//! | `update` | txn: `version(key) > 0 && mod_revision(key) == expected` → put, else get → `Conflict` / `NotFound` |
//! | `delete` | txn: `version(key) > 0 [&& mod_revision(key) == expected]` → delete with `prev_kv`, else get |
//! | `list` | range `[prefix, prefix_end)` (from `start_after + "\0"`) at a revision, with a limit |
//! | `count` | range with `count_only` |
//! | `watch` | watch from `after + 1` with `prev_kv`; `Created` when `create_revision == mod_revision` |
//! | `compact` | physical compaction: returns once etcd has removed the old revisions |
//!
//! The `version(key) > 0` guard matters: a missing key has `mod_revision` 0, so without it an
//! update or delete "expecting revision 0" would act on a key that does not exist.
//!
//! **Namespacing.** Every key is stored as `key_prefix + key`, so several stores (several
//! Slipway installations, or tests) can share one etcd; keys seen through the trait never
//! include the prefix. A non-empty prefix always ends in `/` (one is added if missing), so no
//! store's prefix is a prefix of another's and a list of `""` sees only its own keys.
//! Revisions and compaction are global to the etcd cluster, not to a prefix.
//!
//! **Compacted revision.** etcd has no request that returns its compaction revision, so
//! [`Store::compacted_revision`] derives it: a range at revision `r` fails with "required
//! revision has been compacted" exactly when `r` is below the compaction point, so the oldest
//! readable revision is found by probing. The store remembers the highest compaction revision
//! it has seen (from its own `compact` calls, from probes and from watch responses'
//! `compact_revision`), a lower bound because compaction never goes back; one single-key
//! range at that revision confirms it, and only when someone else (another replica, etcdctl,
//! etcd's auto-compaction) compacted further does a binary search between it and the current
//! revision run (about log2(current revision) single-key ranges). Compaction at revision 1
//! forgets nothing, so a store that did not request it itself reports 0 for it.
//!
//! **Watches.** `watch(prefix, after)` first checks that `after` is still readable (etcd alone
//! would accept `after` = compacted revision - 1, the trait does not), then watches from
//! `after + 1`. Each watch is its own gRPC stream on the shared connection; dropping the stream
//! cancels it. A watch that falls so far behind that etcd must replay it from history that has
//! since been compacted is cancelled by etcd; its stream then ends with
//! [`StoreError::Compacted`] whose `requested` is the revision of the last event it delivered
//! (the `after` to resume from). Any other end (etcd gone, connection broken, leader lost) is
//! [`StoreError::Unavailable`]. A `Deleted` event's value comes from etcd's `prev_kv`.
//!
//! **Errors.** "required revision has been compacted" → [`StoreError::Compacted`], "required
//! revision is a future revision" → [`StoreError::FutureRevision`]; transport failures, gRPC
//! `Unavailable`/`DeadlineExceeded`/`Cancelled`/`Unknown` (tonic's code for a connection that
//! broke mid-request) and requests unanswered after 30 s → [`StoreError::Unavailable`];
//! `InvalidArgument` and gRPC's "received message larger than max" (a value over etcd's
//! request limit, 1.5 MiB by default) →
//! [`StoreError::Invalid`]; anything else → [`StoreError::Internal`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType,
    GetOptions, GetResponse, KvClient, PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse,
    WatchClient, WatchOptions,
};
use futures::StreamExt;
use slipway_store::{
    EventKind, Guard, KeyValue, ListOptions, ListResult, Result, Revision, Store, StoreError,
    WatchEvent, WatchStream, prefix_end,
};

#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "testing")]
pub use testing::{ETCD_BIN_ENV, EtcdProcess};

/// How long one unary request may take before the store reports `Unavailable`. Watches are
/// long-lived and are not bounded by it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a compaction may take (it waits until etcd has removed the old revisions).
const COMPACT_TIMEOUT: Duration = Duration::from_secs(600);
/// The largest response accepted from etcd (etcd itself has no limit on what it sends).
const MAX_RESPONSE_BYTES: usize = i32::MAX as usize;
/// How long `connect` waits for etcd to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`Store`] backed by an etcd v3 cluster, every key under `key_prefix`.
#[derive(Clone)]
pub struct EtcdStore {
    /// Kept for the connection: it owns the channel's endpoint list.
    _client: Client,
    kv: KvClient,
    watch: WatchClient,
    prefix: String,
    /// The highest compaction revision this store has seen (a lower bound of etcd's own).
    compacted: Arc<AtomicI64>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to etcd at `endpoints` (`host:port` or `http://host:port`) and checks that it
    /// answers. Every key is stored under `key_prefix`, which may be empty; a non-empty prefix
    /// gets a trailing `/` if it lacks one, so that the stores of `/a` and `/ab` do not overlap
    /// (`/a` stores key `/x` as `/a//x`).
    pub async fn connect(endpoints: &[String], key_prefix: &str) -> Result<EtcdStore> {
        if endpoints.is_empty() {
            return Err(StoreError::Invalid(
                "no etcd endpoints given: expected at least one host:port".into(),
            ));
        }
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true)
            // A member cut off from its cluster's leader fails requests (and cancels watches)
            // instead of serving stale data; the client then tries another endpoint.
            .with_require_leader(true);
        let client =
            Client::connect(endpoints, Some(options))
                .await
                .map_err(|e| match classify(e) {
                    Failure::Store(StoreError::Invalid(msg)) => {
                        StoreError::Invalid(format!("etcd endpoints {endpoints:?}: {msg}"))
                    }
                    other => other.into_store(),
                })?;
        // etcd sends responses of any size (a list of 10,000 objects is tens of MiB); tonic's
        // default limit of 4 MiB would fail such lists.
        let kv = client
            .kv_client()
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        let watch = client
            .watch_client()
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        let store = EtcdStore {
            _client: client,
            kv,
            watch,
            prefix: normalize_prefix(key_prefix),
            compacted: Arc::new(AtomicI64::new(0)),
        };
        // The client connects lazily; make sure etcd is really there.
        match tokio::time::timeout(CONNECT_TIMEOUT, store.current_revision_inner()).await {
            Ok(Ok(_)) => Ok(store),
            Ok(Err(e)) => Err(match e {
                StoreError::Unavailable(msg) => {
                    StoreError::Unavailable(format!("cannot reach etcd at {endpoints:?}: {msg}"))
                }
                other => other,
            }),
            Err(_) => Err(StoreError::Unavailable(format!(
                "etcd at {endpoints:?} did not answer within {CONNECT_TIMEOUT:?}"
            ))),
        }
    }

    /// The prefix every key of this store is stored under (normalized: empty or ending in `/`).
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    fn full_key(&self, key: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + key.len());
        k.extend_from_slice(self.prefix.as_bytes());
        k.extend_from_slice(key.as_bytes());
        k
    }

    /// The etcd range `[start, end)` holding every key of this store that starts with `prefix`.
    fn prefix_range(&self, prefix: &str) -> (Vec<u8>, Vec<u8>) {
        etcd_range(&format!("{}{prefix}", self.prefix))
    }

    /// A key that exists only to hang probing reads (current revision, compaction) on.
    fn probe_key(&self) -> Vec<u8> {
        if self.prefix.is_empty() {
            vec![0]
        } else {
            self.prefix.clone().into_bytes()
        }
    }

    /// Turns an etcd key back into a store key (without the prefix).
    fn store_key(&self, key: &[u8]) -> Result<String> {
        let rest = key.strip_prefix(self.prefix.as_bytes()).ok_or_else(|| {
            StoreError::Internal(format!(
                "etcd returned key {:?} outside prefix {:?}",
                String::from_utf8_lossy(key),
                self.prefix
            ))
        })?;
        String::from_utf8(rest.to_vec()).map_err(|_| {
            StoreError::Internal(format!(
                "etcd key {:?} under prefix {:?} is not UTF-8",
                String::from_utf8_lossy(key),
                self.prefix
            ))
        })
    }

    fn convert(&self, kv: etcd_client::KeyValue) -> Result<KeyValue> {
        let (create_revision, mod_revision) = (kv.create_revision(), kv.mod_revision());
        let (key, value) = kv.into_key_value();
        Ok(KeyValue {
            key: self.store_key(&key)?,
            value: Bytes::from(value),
            create_revision,
            mod_revision,
        })
    }

    fn first_kv(&self, mut resp: GetResponse) -> Result<Option<KeyValue>> {
        resp.take_kvs()
            .into_iter()
            .next()
            .map(|kv| self.convert(kv))
            .transpose()
    }

    fn remember_compacted(&self, revision: Revision) {
        self.compacted.fetch_max(revision, Ordering::SeqCst);
    }

    async fn get_raw(&self, key: Vec<u8>, options: GetOptions) -> Result<GetResponse, Failure> {
        let mut kv = self.kv.clone();
        bounded(kv.get(key, Some(options))).await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let mut kv = self.kv.clone();
        bounded(kv.txn(txn)).await.map_err(Failure::into_store)
    }

    async fn current_revision_inner(&self) -> Result<Revision> {
        let resp = self
            .get_raw(self.probe_key(), GetOptions::new().with_count_only())
            .await
            .map_err(Failure::into_store)?;
        header_revision(resp.header())
    }

    /// Reads one key at `revision` (>= 1), to learn whether that revision is still readable.
    async fn probe(&self, revision: Revision) -> Result<(), Failure> {
        let options = GetOptions::new().with_count_only().with_revision(revision);
        self.get_raw(self.probe_key(), options).await.map(|_| ())
    }

    /// Whether revision `revision` (>= 1) can still be read.
    async fn readable(&self, revision: Revision) -> Result<bool> {
        match self.probe(revision).await {
            Ok(()) => Ok(true),
            Err(Failure::Compacted) => Ok(false),
            Err(Failure::Future) => Err(self.future_error(revision).await),
            Err(Failure::Store(e)) => Err(e),
        }
    }

    async fn compacted_error(&self, requested: Revision) -> StoreError {
        match self.compacted_revision().await {
            Ok(compacted) => StoreError::Compacted {
                requested,
                compacted,
            },
            Err(e) => e,
        }
    }

    async fn future_error(&self, requested: Revision) -> StoreError {
        match self.current_revision_inner().await {
            Ok(current) => StoreError::FutureRevision { requested, current },
            Err(e) => e,
        }
    }

    /// Maps a failed read at `revision` to the store's error.
    async fn read_error(&self, failure: Failure, revision: Revision) -> StoreError {
        match failure {
            Failure::Compacted => self.compacted_error(revision).await,
            Failure::Future => self.future_error(revision).await,
            Failure::Store(e) => e,
        }
    }
}

/// Runs one unary etcd request with [`REQUEST_TIMEOUT`].
async fn bounded<T>(
    request: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, Failure> {
    bounded_by(REQUEST_TIMEOUT, request).await
}

async fn bounded_by<T>(
    timeout: Duration,
    request: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(timeout, request).await {
        Ok(result) => result.map_err(classify),
        Err(_) => Err(Failure::Store(StoreError::Unavailable(format!(
            "etcd did not answer within {timeout:?}"
        )))),
    }
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision> {
    header
        .map(|h| h.revision())
        .ok_or_else(|| StoreError::Internal("etcd response without header".into()))
}

/// An etcd error, before the revision-related ones get the context they need.
#[derive(Debug)]
enum Failure {
    /// "required revision has been compacted"
    Compacted,
    /// "required revision is a future revision"
    Future,
    Store(StoreError),
}

impl Failure {
    /// For requests that carry no revision: a compaction or future-revision error is unexpected.
    fn into_store(self) -> StoreError {
        match self {
            Failure::Compacted => {
                StoreError::Internal("etcd: required revision has been compacted".into())
            }
            Failure::Future => {
                StoreError::Internal("etcd: required revision is a future revision".into())
            }
            Failure::Store(e) => e,
        }
    }
}

const MSG_COMPACTED: &str = "required revision has been compacted";
const MSG_FUTURE: &str = "required revision is a future revision";

// gRPC status codes (tonic::Code discriminants; tonic is not a direct dependency).
const CODE_CANCELLED: i32 = 1;
const CODE_UNKNOWN: i32 = 2;
const CODE_INVALID_ARGUMENT: i32 = 3;
const CODE_DEADLINE_EXCEEDED: i32 = 4;
const CODE_RESOURCE_EXHAUSTED: i32 = 8;
const CODE_UNAVAILABLE: i32 = 14;

fn classify(error: etcd_client::Error) -> Failure {
    use etcd_client::Error as E;
    let store = match error {
        E::GRpcStatus(status) => return classify_status(status.code() as i32, status.message()),
        E::TransportError(e) => StoreError::Unavailable(format!("etcd transport: {e}")),
        E::IoError(e) => StoreError::Unavailable(format!("etcd i/o: {e}")),
        E::WatchError(e) => StoreError::Unavailable(format!("etcd watch: {e}")),
        E::InvalidArgs(e) => StoreError::Invalid(e),
        E::InvalidUri(e) => StoreError::Invalid(format!("invalid etcd endpoint: {e}")),
        E::EndpointError(e) => StoreError::Invalid(format!("invalid etcd endpoint: {e}")),
        other => StoreError::Internal(format!("etcd: {other}")),
    };
    Failure::Store(store)
}

/// Maps a gRPC status (its code and message) from etcd.
fn classify_status(code: i32, message: &str) -> Failure {
    if message.contains(MSG_COMPACTED) {
        return Failure::Compacted;
    }
    if message.contains(MSG_FUTURE) {
        return Failure::Future;
    }
    let text = format!("etcd: {message}");
    Failure::Store(match code {
        // tonic reports a connection that breaks mid-request ("h2 protocol error: error reading
        // a body from connection") as Unknown; etcd itself does not use that code.
        CODE_CANCELLED | CODE_UNKNOWN | CODE_DEADLINE_EXCEEDED | CODE_UNAVAILABLE => {
            StoreError::Unavailable(text)
        }
        CODE_RESOURCE_EXHAUSTED if message.contains("too many requests") => {
            StoreError::Unavailable(text)
        }
        // Over etcd's request limit: "request is too large" (InvalidArgument), or past gRPC's
        // own limit: "received message larger than max" (ResourceExhausted).
        CODE_RESOURCE_EXHAUSTED if message.contains("larger than max") => StoreError::Invalid(text),
        CODE_INVALID_ARGUMENT => StoreError::Invalid(text),
        _ => StoreError::Internal(format!("etcd (gRPC code {code}): {message}")),
    })
}

/// The etcd range `[start, end)` of the keys starting with `full_prefix`.
fn etcd_range(full_prefix: &str) -> (Vec<u8>, Vec<u8>) {
    // UTF-8 never contains 0xff, so a non-empty prefix always has an end; the empty one means
    // every key, which etcd spells as key "\0" with range end "\0".
    match prefix_end(full_prefix) {
        Some(end) if !full_prefix.is_empty() => (full_prefix.as_bytes().to_vec(), end),
        _ => (vec![0], vec![0]),
    }
}

fn normalize_prefix(prefix: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    }
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(StoreError::Invalid("key must not be empty".into()));
    }
    Ok(())
}

/// The compares that make a write conditional on a [`Guard`]: the guard key exists
/// (`version > 0`, since a missing key has `mod_revision` 0) at exactly the named revision.
fn guard_compares(full: &[u8], guard: &Guard) -> [Compare; 2] {
    [
        Compare::version(full.to_vec(), CompareOp::Greater, 0),
        Compare::mod_revision(full.to_vec(), CompareOp::Equal, guard.mod_revision),
    ]
}

/// Every `Get` answer of a failed transaction's `else` branch, in order.
fn else_gets(resp: &TxnResponse) -> Vec<GetResponse> {
    resp.op_responses()
        .into_iter()
        .filter_map(|op| match op {
            TxnOpResponse::Get(get) => Some(get),
            _ => None,
        })
        .collect()
}

/// The modification revision a `Get` answer reports, if the key exists.
fn got_revision(get: Option<&GetResponse>) -> Option<Revision> {
    get.and_then(|get| get.kvs().first().map(|kv| kv.mod_revision()))
}

impl EtcdStore {
    /// Adds the guard's compares and a read of the guard key (in the `else` branch, last) to a
    /// transaction's parts; returns the error to report if the guard is what failed.
    fn guarded(
        &self,
        guard: Option<&Guard>,
        when: &mut Vec<Compare>,
        or_else: &mut Vec<TxnOp>,
    ) -> Result<()> {
        if let Some(guard) = guard {
            check_key(&guard.key)?;
            let full = self.full_key(&guard.key);
            when.extend(guard_compares(&full, guard));
            or_else.push(TxnOp::get(full, None));
        }
        Ok(())
    }

    /// After a failed transaction built with [`Self::guarded`]: the guard error if the guard
    /// does not hold (its read is the last `Get` of the `else` branch).
    fn guard_failure(guard: Option<&Guard>, gets: &[GetResponse]) -> Option<StoreError> {
        let guard = guard?;
        let current = got_revision(gets.last());
        (current != Some(guard.mod_revision)).then(|| StoreError::GuardFailed {
            key: guard.key.clone(),
            expected: guard.mod_revision,
            current,
        })
    }

    async fn create_with(
        &self,
        key: &str,
        value: Bytes,
        guard: Option<&Guard>,
    ) -> Result<Revision> {
        check_key(key)?;
        let full = self.full_key(key);
        let mut when = vec![Compare::create_revision(full.clone(), CompareOp::Equal, 0)];
        let mut or_else = Vec::new();
        self.guarded(guard, &mut when, &mut or_else)?;
        let txn = Txn::new()
            .when(when)
            .and_then([TxnOp::put(full, value.to_vec(), None)])
            .or_else(or_else);
        let resp = self.txn(txn).await?;
        if !resp.succeeded() {
            if let Some(e) = Self::guard_failure(guard, &else_gets(&resp)) {
                return Err(e);
            }
            return Err(StoreError::AlreadyExists {
                key: key.to_owned(),
            });
        }
        header_revision(resp.header())
    }

    async fn update_with(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        guard: Option<&Guard>,
    ) -> Result<Revision> {
        check_key(key)?;
        let full = self.full_key(key);
        // `version > 0`: without it, `mod_revision == 0` would match a missing key and create it.
        let mut when = vec![
            Compare::version(full.clone(), CompareOp::Greater, 0),
            Compare::mod_revision(full.clone(), CompareOp::Equal, expected),
        ];
        let mut or_else = vec![TxnOp::get(full.clone(), None)];
        self.guarded(guard, &mut when, &mut or_else)?;
        let txn = Txn::new()
            .when(when)
            .and_then([TxnOp::put(full, value.to_vec(), None::<PutOptions>)])
            .or_else(or_else);
        let resp = self.txn(txn).await?;
        if resp.succeeded() {
            return header_revision(resp.header());
        }
        let gets = else_gets(&resp);
        if let Some(e) = Self::guard_failure(guard, &gets) {
            return Err(e);
        }
        Err(match got_revision(gets.first()) {
            None => StoreError::NotFound {
                key: key.to_owned(),
            },
            Some(current) => StoreError::Conflict {
                key: key.to_owned(),
                expected,
                current: Some(current),
            },
        })
    }

    async fn delete_with(
        &self,
        key: &str,
        expected: Option<Revision>,
        guard: Option<&Guard>,
    ) -> Result<(Revision, KeyValue)> {
        check_key(key)?;
        let full = self.full_key(key);
        let mut when = vec![Compare::version(full.clone(), CompareOp::Greater, 0)];
        if let Some(expected) = expected {
            when.push(Compare::mod_revision(
                full.clone(),
                CompareOp::Equal,
                expected,
            ));
        }
        let mut or_else = vec![TxnOp::get(full.clone(), None)];
        self.guarded(guard, &mut when, &mut or_else)?;
        let txn = Txn::new()
            .when(when)
            .and_then([TxnOp::delete(
                full,
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else(or_else);
        let resp = self.txn(txn).await?;
        if resp.succeeded() {
            let revision = header_revision(resp.header())?;
            let prev = resp
                .op_responses()
                .into_iter()
                .find_map(|op| match op {
                    TxnOpResponse::Delete(mut del) => del.take_prev_kvs().into_iter().next(),
                    _ => None,
                })
                .ok_or_else(|| {
                    StoreError::Internal(format!("etcd deleted {key:?} without its last value"))
                })?;
            return Ok((revision, self.convert(prev)?));
        }
        let gets = else_gets(&resp);
        if let Some(e) = Self::guard_failure(guard, &gets) {
            return Err(e);
        }
        Err(match (got_revision(gets.first()), expected) {
            (None, _) => StoreError::NotFound {
                key: key.to_owned(),
            },
            (Some(current), Some(expected)) => StoreError::Conflict {
                key: key.to_owned(),
                expected,
                current: Some(current),
            },
            (Some(_), None) => StoreError::Internal(format!(
                "etcd refused to delete existing key {key:?} without a precondition"
            )),
        })
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        check_key(key)?;
        let resp = self
            .get_raw(self.full_key(key), GetOptions::new())
            .await
            .map_err(Failure::into_store)?;
        self.first_kv(resp)
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        let (mut start, end) = self.prefix_range(prefix);
        if let Some(after) = &opts.start_after {
            let mut from = self.full_key(after);
            from.push(0);
            if from > start {
                start = from;
            }
        }
        let mut options = GetOptions::new().with_range(end);
        // A revision <= 0 means the current one (as in etcd and the SQLite backend).
        let at = opts.revision.filter(|&r| r > 0);
        if let Some(revision) = at {
            options = options.with_revision(revision);
        }
        if let Some(limit) = opts.limit.filter(|&l| l > 0) {
            let limit = i64::try_from(limit)
                .map_err(|_| StoreError::Invalid(format!("list limit {limit} is too large")))?;
            options = options.with_limit(limit);
        }
        let mut resp = match self.get_raw(start, options).await {
            Ok(resp) => resp,
            Err(failure) => {
                return Err(self.read_error(failure, at.unwrap_or_default()).await);
            }
        };
        let current = header_revision(resp.header())?;
        let more = resp.more();
        let items = resp
            .take_kvs()
            .into_iter()
            .map(|kv| self.convert(kv))
            .collect::<Result<Vec<_>>>()?;
        let revision = at.unwrap_or(current);
        Ok(ListResult {
            items,
            revision,
            more,
        })
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        let (start, end) = self.prefix_range(prefix);
        let resp = self
            .get_raw(start, GetOptions::new().with_range(end).with_count_only())
            .await
            .map_err(Failure::into_store)?;
        u64::try_from(resp.count())
            .map_err(|_| StoreError::Internal(format!("etcd count {} < 0", resp.count())))
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        self.create_with(key, value, None).await
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<Revision> {
        self.update_with(key, value, expected, None).await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        self.delete_with(key, expected, None).await
    }

    async fn create_guarded(&self, key: &str, value: Bytes, guard: &Guard) -> Result<Revision> {
        self.create_with(key, value, Some(guard)).await
    }

    async fn update_guarded(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        guard: &Guard,
    ) -> Result<Revision> {
        self.update_with(key, value, expected, Some(guard)).await
    }

    async fn delete_guarded(
        &self,
        key: &str,
        expected: Option<Revision>,
        guard: &Guard,
    ) -> Result<(Revision, KeyValue)> {
        self.delete_with(key, expected, Some(guard)).await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        // A negative `after` means "from the beginning", as in the SQLite backend.
        let after = after.max(0);
        // etcd would still replay from `after + 1` when `after` itself is just compacted away;
        // the trait's contract is stricter ("after older than the compacted revision fails"),
        // so check that `after` is readable first. A compaction racing with this check still
        // ends the stream with `Compacted` (etcd cancels the watch). A future `after` is fine:
        // the watch sees the writes once the store gets there.
        let compacted = after < self.compacted.load(Ordering::SeqCst)
            || match self.probe(after.max(1)).await {
                Ok(()) | Err(Failure::Future) => false,
                Err(Failure::Compacted) => true,
                Err(Failure::Store(e)) => return Err(e),
            };
        if compacted {
            return Err(self.compacted_error(after).await);
        }
        let (start, end) = self.prefix_range(prefix);
        let options = WatchOptions::new()
            .with_range(end)
            .with_start_revision(after + 1)
            .with_prev_key()
            // Replays batch up to 1,000 revisions per response; let etcd split big ones.
            .with_fragment();
        let mut client = self.watch.clone();
        let stream = bounded(client.watch(start, Some(options)))
            .await
            .map_err(Failure::into_store)?;
        let state = WatchState {
            store: self.clone(),
            stream,
            pending: VecDeque::new(),
            last: after,
            finished: false,
        };
        Ok(futures::stream::unfold(state, WatchState::next).boxed())
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.current_revision_inner().await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        // Nothing is older than revision 1 (the SQLite backend treats these as no-ops too).
        if revision <= 0 {
            return Ok(());
        }
        let mut kv = self.kv.clone();
        let request = kv.compact(revision, Some(CompactionOptions::new().with_physical()));
        match bounded_by(COMPACT_TIMEOUT, request).await {
            Ok(_) => {}
            // Already compacted at or past `revision`: nothing to do.
            Err(Failure::Compacted) => {}
            Err(Failure::Future) => return Err(self.future_error(revision).await),
            Err(Failure::Store(e)) => return Err(e),
        }
        self.remember_compacted(revision);
        Ok(())
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        let known = self.compacted.load(Ordering::SeqCst);
        let floor = known.max(1);
        if self.readable(floor).await? {
            // Nobody compacted past what we know (compaction only moves forward).
            return Ok(known);
        }
        // Someone else compacted further: the answer is in (floor, current].
        let (mut bad, mut good) = (floor, self.current_revision_inner().await?);
        while good - bad > 1 {
            let mid = bad + (good - bad) / 2;
            if self.readable(mid).await? {
                good = mid;
            } else {
                bad = mid;
            }
        }
        self.remember_compacted(good);
        Ok(good)
    }

    fn backend(&self) -> &'static str {
        "etcd"
    }
}

/// The state of one watch stream: etcd's stream and the events of its last response not yet
/// handed out.
struct WatchState {
    store: EtcdStore,
    stream: etcd_client::WatchStream,
    pending: VecDeque<WatchEvent>,
    /// Revision of the last event handed out (or the `after` the watch started from).
    last: Revision,
    finished: bool,
}

impl WatchState {
    async fn next(mut self) -> Option<(Result<WatchEvent>, WatchState)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.last = event.revision();
                return Some((Ok(event), self));
            }
            if self.finished {
                return None;
            }
            match self.stream.message().await {
                Ok(Some(resp)) => {
                    if resp.compact_revision() > 0 {
                        self.store.remember_compacted(resp.compact_revision());
                    }
                    if resp.canceled() {
                        tracing::debug!(
                            after = self.last,
                            compact_revision = resp.compact_revision(),
                            reason = resp.cancel_reason(),
                            "etcd cancelled a watch"
                        );
                        self.finished = true;
                        let error = if resp.compact_revision() > 0 {
                            StoreError::Compacted {
                                requested: self.last,
                                compacted: resp.compact_revision(),
                            }
                        } else {
                            StoreError::Unavailable(format!(
                                "etcd cancelled the watch: {}",
                                resp.cancel_reason()
                            ))
                        };
                        return Some((Err(error), self));
                    }
                    for event in resp.events() {
                        match self.convert(event) {
                            Ok(event) => self.pending.push_back(event),
                            Err(e) => {
                                self.finished = true;
                                self.pending.clear();
                                return Some((Err(e), self));
                            }
                        }
                    }
                }
                Ok(None) => {
                    self.finished = true;
                    let error = StoreError::Unavailable("etcd closed the watch stream".into());
                    return Some((Err(error), self));
                }
                Err(e) => {
                    self.finished = true;
                    return Some((Err(classify(e).into_store()), self));
                }
            }
        }
    }

    fn convert(&self, event: &etcd_client::Event) -> Result<WatchEvent> {
        let store = &self.store;
        let kv = event
            .kv()
            .ok_or_else(|| StoreError::Internal("etcd watch event without a key".into()))?;
        let prev = event
            .prev_kv()
            .map(|p| store.convert(p.clone()))
            .transpose()?;
        match event.event_type() {
            EventType::Put => {
                let kv = store.convert(kv.clone())?;
                let kind = if kv.create_revision == kv.mod_revision {
                    EventKind::Created
                } else {
                    EventKind::Updated
                };
                Ok(WatchEvent { kind, kv, prev })
            }
            EventType::Delete => {
                // etcd's delete event has only the key and the deletion revision; the last
                // value comes from prev_kv (absent only if that revision was compacted).
                let key = store.store_key(kv.key())?;
                let last = match &prev {
                    Some(p) => KeyValue {
                        key,
                        value: p.value.clone(),
                        create_revision: p.create_revision,
                        mod_revision: kv.mod_revision(),
                    },
                    None => KeyValue {
                        key,
                        value: Bytes::new(),
                        create_revision: 0,
                        mod_revision: kv.mod_revision(),
                    },
                };
                Ok(WatchEvent {
                    kind: EventKind::Deleted,
                    kv: last,
                    prev,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_normalized_to_end_in_a_slash() {
        assert_eq!(normalize_prefix(""), "");
        assert_eq!(normalize_prefix("/slipway"), "/slipway/");
        assert_eq!(normalize_prefix("/slipway/"), "/slipway/");
        assert_eq!(normalize_prefix("tenant-a"), "tenant-a/");
    }

    #[test]
    fn ranges_cover_exactly_the_prefix() {
        assert_eq!(etcd_range(""), (vec![0], vec![0]));
        assert_eq!(etcd_range("/a/"), (b"/a/".to_vec(), b"/a0".to_vec()));
        assert_eq!(etcd_range("/a"), (b"/a".to_vec(), b"/b".to_vec()));
        // Multi-byte UTF-8: the last byte is incremented, never past 0xff.
        let (start, end) = etcd_range("/\u{e9}");
        assert_eq!(start, "/\u{e9}".as_bytes());
        assert_eq!(end, vec![b'/', 0xc3, 0xaa]);
    }

    #[test]
    fn etcd_errors_map_to_store_errors() {
        let status = classify_status;
        assert!(matches!(
            status(11, "etcdserver: mvcc: required revision has been compacted"),
            Failure::Compacted
        ));
        assert!(matches!(
            status(
                11,
                "etcdserver: mvcc: required revision is a future revision"
            ),
            Failure::Future
        ));
        assert!(matches!(
            status(14, "etcdserver: leader changed"),
            Failure::Store(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            status(2, "h2 protocol error: error reading a body from connection"),
            Failure::Store(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            status(4, "context deadline exceeded"),
            Failure::Store(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            status(3, "etcdserver: request is too large"),
            Failure::Store(StoreError::Invalid(_))
        ));
        assert!(matches!(
            status(
                8,
                "grpc: received message larger than max (3145760 vs. 2097152)"
            ),
            Failure::Store(StoreError::Invalid(_))
        ));
        assert!(matches!(
            status(8, "etcdserver: mvcc: database space exceeded"),
            Failure::Store(StoreError::Internal(_))
        ));
        assert!(matches!(
            classify(etcd_client::Error::IoError(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused
            ))),
            Failure::Store(StoreError::Unavailable(_))
        ));
    }
}
