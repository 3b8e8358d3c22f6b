//! The embedded backend: one SQLite file (bundled SQLite, WAL, `synchronous=FULL` unless
//! opened with [`Durability::ProcessCrash`]).
//!
//! # Model
//!
//! Like k3s's kine, every write appends one row to a log, keyed by its revision:
//!
//! - `log(rev PRIMARY KEY, key, value, create_rev, prev_rev, deleted)`, indexed on
//!   `(key, rev)`: the history. A deletion is a tombstone row (`deleted = 1`, empty value);
//!   `prev_rev` points at the row the write replaced (`NULL` for a creation), which is how a
//!   replayed event finds its `prev`.
//! - `current(key PRIMARY KEY, rev)`: the latest live row of every key, for fast reads.
//! - `meta(name, value)`: the current revision, the compacted revision and how far the
//!   physical purge of compacted rows has got.
//!
//! Reading at a past revision `r` picks, per key, the newest log row with `rev <= r` and drops
//! tombstones. Compacting to `c` records `c` at once (reads and watches before `c` fail from
//! then on) and then purges, in small chunks between write batches, every row with
//! `rev <= c` that a read at or after `c` can no longer need: tombstones, and rows replaced by
//! a write at or before `c`. Rows still live at `c` stay, so lists at `c` and later, and the
//! `prev` of every event after `c`, keep working. The purge covers only the log written since
//! the previous one and follows each write's `prev_rev` to the row it replaced, so its cost
//! is the number of writes since, never the number of keys. The writer journals in memory
//! what each write it committed replaced, so the purge deletes by rowid without reading those
//! writes back; it reads the log only for writes from before the store was opened.
//!
//! # Writes
//!
//! One dedicated writer thread owns the only writing connection. It drains every queued
//! request into one transaction (group commit: one fsync for the whole batch), checks each
//! request's precondition on its own (a failed compare-and-swap only fails that request), and
//! acknowledges the requests only after `COMMIT` returned, so an acknowledged write is on disk
//! (in the WAL file, and fsynced unless the store was opened with [`Durability::ProcessCrash`]).
//! After the commit it publishes the batch's events to the in-process watchers.
//!
//! # Reads and watches
//!
//! Reads run on a small pool of read connections on tokio's blocking threads; a list reads its
//! revision and its rows in one read transaction, so every page is a consistent snapshot. A
//! watch subscribes to the live events first, then replays the log after its start revision,
//! and then streams live events, skipping what the replay already delivered: no gap, no
//! duplicate. A watcher that falls more than [`EVENT_BUFFER`] batches behind does not slow the
//! writer: it goes back to the log and catches up from there (or ends with `Compacted` if the
//! history it needs is gone).

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{broadcast, oneshot};

use crate::{
    EventKind, Guard, KeyValue, ListOptions, ListResult, Result, Revision, Store, StoreError,
    WatchEvent, WatchStream,
};

/// The schema version this code writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;
/// At most this many requests go into one transaction.
const MAX_BATCH: usize = 1024;
/// Revisions (log rows at most) one purge transaction looks at after a compaction.
const PURGE_CHUNK: i64 = 2000;
/// Events read from the log per replay step of a watch.
const WATCH_PAGE: usize = 1000;
/// Committed batches buffered for live watchers; a watcher further behind replays the log.
///
/// Memory held for live events is bounded by this many batches (a batch holds at most
/// `MAX_BATCH` events), whatever the watchers do.
pub const EVENT_BUFFER: usize = 256;
/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;
/// How often the background checkpointer copies the WAL into the database file.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);
/// The writer checkpoints by itself only when the WAL grows past this many pages (a safety
/// net should the background checkpointer fall behind).
const WRITER_AUTOCHECKPOINT_PAGES: i64 = 20_000;

/// Migrations, applied in order; `MIGRATIONS[i]` moves `user_version` from `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the log, the current state and the metadata.
    "CREATE TABLE log (
         rev INTEGER PRIMARY KEY,
         key BLOB NOT NULL,
         value BLOB NOT NULL,
         create_rev INTEGER NOT NULL,
         prev_rev INTEGER,
         deleted INTEGER NOT NULL
     );
     CREATE INDEX log_key_rev ON log (key, rev);
     CREATE TABLE current (
         key BLOB PRIMARY KEY,
         rev INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE meta (
         name TEXT PRIMARY KEY,
         value INTEGER NOT NULL
     ) WITHOUT ROWID;
     INSERT INTO meta (name, value) VALUES ('revision', 0), ('compacted', 0), ('purge_next', 1);",
];

/// What a committed (acknowledged) write survives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Every commit is on disk before it is acknowledged (`synchronous=FULL`): it survives a
    /// crash of the process, of the OS and a power loss. The platform's store.
    #[default]
    PowerLoss,
    /// A commit is in the WAL file but not yet fsynced (`synchronous=NORMAL`): it survives a
    /// crash of the process (kill -9); an OS crash or a power loss may roll back the last
    /// commits, never corrupt the file. For stores that stand in for systems outside the
    /// platform, such as the simulator's cloud and clusters, which need the first and not
    /// the cost of the second.
    ProcessCrash,
}

/// A revisioned key/value store in one SQLite file. See the [module docs](self).
///
/// One process at a time: [`SqliteStore::open`] takes an exclusive lock on `<path>.lock`
/// and fails with [`StoreError::Unavailable`] while another store holds it.
pub struct SqliteStore {
    shared: Arc<Shared>,
    requests: mpsc::Sender<Request>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The background checkpointer; dropping the sender stops it.
    checkpointer: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
    lock: Mutex<Option<File>>,
}

/// State shared by the store handle, the writer thread and the watch streams.
struct Shared {
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
    /// The revision of the last committed write.
    revision: AtomicI64,
    compacted: AtomicI64,
    /// Live events; `None` once the store is closed.
    events: Mutex<Option<broadcast::Sender<Arc<Batch>>>>,
    closed: AtomicBool,
}

/// The events of one committed transaction, in revision order.
struct Batch {
    events: Vec<WatchEvent>,
    /// The store's revision after the transaction.
    revision: Revision,
}

enum Op {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
}

/// What a successful write reports back: its revision and, for a deletion, the last value.
struct Written {
    revision: Revision,
    prev: Option<KeyValue>,
}

enum Request {
    Write {
        op: Op,
        /// Checked in the same transaction, before the write.
        guard: Option<Guard>,
        reply: oneshot::Sender<Result<Written>>,
    },
    Compact {
        revision: Revision,
        reply: oneshot::Sender<Result<()>>,
    },
    Shutdown,
}

/// Errors inside a read: SQLite's, or the store's own (compacted, future revision...).
enum ReadError {
    Db(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for ReadError {
    fn from(e: rusqlite::Error) -> Self {
        ReadError::Db(e)
    }
}

impl From<StoreError> for ReadError {
    fn from(e: StoreError) -> Self {
        ReadError::Store(e)
    }
}

impl From<ReadError> for StoreError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Db(e) => db_error(e),
            ReadError::Store(e) => e,
        }
    }
}

fn db_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(format!("sqlite: {e}"))
        }
        _ => StoreError::Internal(format!("sqlite: {e}")),
    }
}

fn closed_error() -> StoreError {
    StoreError::Unavailable("the store is closed".to_string())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The byte range `[lo, hi)` of keys starting with `prefix` and, if given, after `start_after`.
fn key_range(prefix: &str, start_after: Option<&str>) -> (Vec<u8>, Vec<u8>) {
    let mut lo = prefix.as_bytes().to_vec();
    if let Some(after) = start_after {
        // The smallest key greater than `after` is `after` followed by a NUL byte.
        let mut next = after.as_bytes().to_vec();
        next.push(0);
        if next > lo {
            lo = next;
        }
    }
    // Valid UTF-8 never contains 0xff, so [0xff] is above every key.
    let hi = crate::prefix_end(prefix).unwrap_or_else(|| vec![0xff]);
    (lo, hi)
}

fn key_string(bytes: Vec<u8>) -> rusqlite::Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    })
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(StoreError::Invalid("the key must not be empty".to_string()));
    }
    Ok(())
}

fn limit_param(limit: Option<usize>) -> i64 {
    match limit {
        // One more than asked, to learn whether more keys follow.
        Some(n) if n > 0 => i64::try_from(n).map_or(-1, |n| n.saturating_add(1)),
        _ => -1,
    }
}

fn read_meta(conn: &Connection) -> rusqlite::Result<(Revision, Revision)> {
    conn.prepare_cached(
        "SELECT (SELECT value FROM meta WHERE name = 'revision'),
                (SELECT value FROM meta WHERE name = 'compacted')",
    )?
    .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
}

fn read_meta_value(conn: &Connection, name: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT value FROM meta WHERE name = ?1")?
        .query_row([name], |row| row.get(0))
}

fn write_meta_value(conn: &Connection, name: &str, value: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE meta SET value = ?2 WHERE name = ?1")?
        .execute(params![name, value])?;
    Ok(())
}

const CURRENT_KV: &str = "SELECT l.value, l.create_rev, l.rev
                            FROM current c JOIN log l ON l.rev = c.rev
                           WHERE c.key = ?1";

/// The latest live key/value of `key`.
fn current_kv(conn: &Connection, key: &str) -> rusqlite::Result<Option<KeyValue>> {
    conn.prepare_cached(CURRENT_KV)?
        .query_row([key.as_bytes()], |row| {
            Ok(KeyValue {
                key: key.to_string(),
                value: Bytes::from(row.get::<_, Vec<u8>>(0)?),
                create_revision: row.get(1)?,
                mod_revision: row.get(2)?,
            })
        })
        .optional()
}

fn kv_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<KeyValue> {
    Ok(KeyValue {
        key: key_string(row.get(0)?)?,
        value: Bytes::from(row.get::<_, Vec<u8>>(1)?),
        create_revision: row.get(2)?,
        mod_revision: row.get(3)?,
    })
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // Plans do not depend on bound values. Without this, SQLite marks statements comparing
    // a BLOB column with a parameter (`WHERE c.key = ?1`) to be re-prepared on every new
    // binding: parsing and planning the point read again on each get and on each write's
    // precondition check, 17x the cost of the read itself.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.pragma_update(None, "cache_size", -32_000)?;
    Ok(())
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&conn)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

/// Applies the migrations the file has not seen yet.
fn migrate(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(db_error)?;
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if version > known {
        return Err(StoreError::Internal(format!(
            "the store file has schema version {version}, newer than this build understands \
             ({known}); upgrade Slipway"
        )));
    }
    for (to, sql) in (1_i64..)
        .zip(MIGRATIONS.iter())
        .skip(usize::try_from(version).unwrap_or(0))
    {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Exclusive)
            .map_err(db_error)?;
        tx.execute_batch(sql).map_err(db_error)?;
        tx.pragma_update(None, "user_version", to)
            .map_err(db_error)?;
        tx.commit().map_err(db_error)?;
        tracing::info!(version = to, "sqlite store: migrated schema");
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the store in the SQLite file at `path`, every commit
    /// durable against a power loss ([`Durability::PowerLoss`]).
    pub fn open(path: &Path) -> Result<SqliteStore> {
        SqliteStore::open_with(path, Durability::PowerLoss)
    }

    /// Opens (creating if needed) the store in the SQLite file at `path` with the given
    /// durability of its commits.
    pub fn open_with(path: &Path, durability: Durability) -> Result<SqliteStore> {
        let lock_path = {
            let mut p = path.as_os_str().to_owned();
            p.push(".lock");
            PathBuf::from(p)
        };
        let lock_file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| {
                StoreError::Internal(format!("cannot open {}: {e}", lock_path.display()))
            })?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Unavailable(format!(
                    "{} is in use by another store (lock {} is held)",
                    path.display(),
                    lock_path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Internal(format!(
                    "cannot lock {}: {e}",
                    lock_path.display()
                )));
            }
        }

        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db_error)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(db_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Internal(format!(
                "{}: cannot switch to WAL mode (got {mode})",
                path.display()
            )));
        }
        configure(&conn).map_err(db_error)?;
        // The writer's page cache: most pages it touches are log pages it appends and never
        // reads again, so a reader's 32 MB would fill with them; 8 MB keeps the indexes a
        // write looks up hot.
        conn.pragma_update(None, "cache_size", -8_000)
            .map_err(db_error)?;
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
            .map_err(db_error)?;
        if durability == Durability::ProcessCrash {
            conn.pragma_update(None, "synchronous", "NORMAL")
                .map_err(db_error)?;
        }
        // Checkpoints (which fsync the database file) run on their own thread, off the
        // write path; see `checkpoint_loop`.
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)
            .map_err(db_error)?;
        migrate(&mut conn)?;
        let (revision, compacted) = read_meta(&conn).map_err(db_error)?;
        let purge_next = read_meta_value(&conn, "purge_next").map_err(db_error)?;

        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            readers: Mutex::new(Vec::new()),
            revision: AtomicI64::new(revision),
            compacted: AtomicI64::new(compacted),
            events: Mutex::new(Some(events.clone())),
            closed: AtomicBool::new(false),
        });
        let (requests, queue) = mpsc::channel();
        let mut writer = Writer {
            conn,
            queue,
            shared: shared.clone(),
            events,
            compacted,
            purge_next,
            journal: VecDeque::new(),
            journal_from: revision + 1,
        };
        let handle = std::thread::Builder::new()
            .name("sqlite-writer".to_string())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::Internal(format!("cannot start the writer thread: {e}")))?;
        let checkpointer = {
            let (stop, stopped) = mpsc::channel();
            let shared = shared.clone();
            match std::thread::Builder::new()
                .name("sqlite-checkpoint".to_string())
                .spawn(move || checkpoint_loop(&shared, &stopped))
            {
                Ok(handle) => Some((stop, handle)),
                Err(e) => {
                    // The writer's own auto-checkpoint still bounds the WAL.
                    tracing::warn!(error = %e, "sqlite store: no background checkpointer");
                    None
                }
            }
        };
        tracing::info!(path = %path.display(), revision, compacted, "sqlite store opened");
        Ok(SqliteStore {
            shared,
            requests,
            writer: Mutex::new(Some(handle)),
            checkpointer: Mutex::new(checkpointer),
            lock: Mutex::new(Some(lock_file)),
        })
    }

    /// The path of the SQLite file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Stops the writer after it committed every write queued before this call, ends every
    /// watch and releases the file. Later calls fail with [`StoreError::Unavailable`].
    /// Blocks for at most one write batch. Dropping the store does the same.
    pub fn close(&self) {
        let handle = lock(&self.writer).take();
        if let Some(handle) = handle {
            // The writer exits after this batch; if it already exited, nothing to wait for.
            let _ = self.requests.send(Request::Shutdown);
            if handle.join().is_err() {
                tracing::error!("sqlite store: the writer thread panicked");
            }
        }
        let checkpointer = lock(&self.checkpointer).take();
        if let Some((stop, handle)) = checkpointer {
            drop(stop);
            if handle.join().is_err() {
                tracing::error!("sqlite store: the checkpointer thread panicked");
            }
        }
        lock(&self.shared.events).take();
        self.shared.closed.store(true, Ordering::SeqCst);
        lock(&self.shared.readers).clear();
        if let Some(file) = lock(&self.lock).take() {
            // Unlock explicitly: a process forked meanwhile may still share the descriptor
            // (until it execs), and closing ours alone would not release the lock.
            if let Err(e) = file.unlock() {
                tracing::warn!(error = %e, "sqlite store: cannot release the lock file");
            }
        }
    }

    /// Checks the file (SQLite's `integrity_check`) and the store's own invariants: the
    /// current table matches the newest row of every key in the log, and no row is newer
    /// than the recorded revision. For tests and `slipway` diagnostics; reads the whole file.
    pub async fn check_integrity(&self) -> Result<()> {
        self.shared
            .read(|conn| {
                let tx = conn.transaction()?;
                let report: Vec<String> = tx
                    .prepare("PRAGMA integrity_check")?
                    .query_map([], |row| row.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                if report != ["ok"] {
                    return Err(StoreError::Internal(format!(
                        "integrity_check: {}",
                        report.join("; ")
                    ))
                    .into());
                }
                let (revision, compacted) = read_meta(&tx)?;
                let max: Option<i64> =
                    tx.query_row("SELECT max(rev) FROM log", [], |r| r.get(0))?;
                if max.unwrap_or(0) > revision {
                    return Err(StoreError::Internal(format!(
                        "log holds revision {max:?} beyond the recorded revision {revision}"
                    ))
                    .into());
                }
                if compacted > revision {
                    return Err(StoreError::Internal(format!(
                        "compacted revision {compacted} beyond the revision {revision}"
                    ))
                    .into());
                }
                // Keys whose newest log row is live must be in `current`, pointing at it;
                // nothing else may be.
                let bad: i64 = tx.query_row(
                    "SELECT
                       (SELECT count(*) FROM
                          (SELECT key, max(rev) AS rev FROM log GROUP BY key) m
                          JOIN log l ON l.rev = m.rev
                          LEFT JOIN current c ON c.key = m.key
                         WHERE (l.deleted = 0 AND (c.rev IS NULL OR c.rev <> m.rev))
                            OR (l.deleted = 1 AND c.key IS NOT NULL))
                     + (SELECT count(*) FROM current c LEFT JOIN log l ON l.rev = c.rev
                         WHERE l.rev IS NULL OR l.key <> c.key OR l.deleted <> 0)",
                    [],
                    |r| r.get(0),
                )?;
                if bad != 0 {
                    return Err(StoreError::Internal(format!(
                        "{bad} keys disagree between the log and the current state"
                    ))
                    .into());
                }
                Ok(())
            })
            .await
    }

    async fn write(&self, op: Op, guard: Option<Guard>) -> Result<Written> {
        if let Some(guard) = &guard {
            check_key(&guard.key)?;
        }
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(Request::Write { op, guard, reply })
            .map_err(|_| closed_error())?;
        rx.await.map_err(|_| closed_error())?
    }
}

impl SqliteStore {
    async fn create_with(&self, key: &str, value: Bytes, guard: Option<Guard>) -> Result<Revision> {
        check_key(key)?;
        let op = Op::Create {
            key: key.to_string(),
            value,
        };
        Ok(self.write(op, guard).await?.revision)
    }

    async fn update_with(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        guard: Option<Guard>,
    ) -> Result<Revision> {
        check_key(key)?;
        let op = Op::Update {
            key: key.to_string(),
            value,
            expected,
        };
        Ok(self.write(op, guard).await?.revision)
    }

    async fn delete_with(
        &self,
        key: &str,
        expected: Option<Revision>,
        guard: Option<Guard>,
    ) -> Result<(Revision, KeyValue)> {
        check_key(key)?;
        let op = Op::Delete {
            key: key.to_string(),
            expected,
        };
        let written = self.write(op, guard).await?;
        match written.prev {
            Some(prev) => Ok((written.revision, prev)),
            None => Err(StoreError::Internal(
                "a deletion did not report the deleted value".to_string(),
            )),
        }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.shared.path)
            .field("revision", &self.shared.revision.load(Ordering::Acquire))
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Runs `f` on a read connection on a blocking thread.
    async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, ReadError> + Send + 'static,
    {
        let shared = Arc::clone(self);
        match tokio::task::spawn_blocking(move || shared.read_blocking(f)).await {
            Ok(r) => r,
            Err(e) => Err(StoreError::Internal(format!("read task failed: {e}"))),
        }
    }

    fn read_blocking<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, ReadError>,
    ) -> Result<T> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed_error());
        }
        let idle = lock(&self.readers).pop();
        let mut conn = match idle {
            Some(c) => c,
            None => open_reader(&self.path).map_err(db_error)?,
        };
        let result = f(&mut conn).map_err(StoreError::from);
        if !self.closed.load(Ordering::Acquire) {
            let mut idle = lock(&self.readers);
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
        result
    }

    fn subscribe(&self) -> Result<broadcast::Receiver<Arc<Batch>>> {
        lock(&self.events)
            .as_ref()
            .map(broadcast::Sender::subscribe)
            .ok_or_else(closed_error)
    }
}

/// Copies the WAL into the database file every [`CHECKPOINT_INTERVAL`] while there are new
/// writes, with PASSIVE checkpoints: they never block the writer or the readers.
fn checkpoint_loop(shared: &Shared, stop: &mpsc::Receiver<()>) {
    let conn = match open_reader(&shared.path).and_then(|c| {
        c.pragma_update(None, "query_only", false)?;
        Ok(c)
    }) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "sqlite store: checkpointer cannot open the file");
            return;
        }
    };
    let mut checkpointed_at = shared.revision.load(Ordering::Acquire);
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_INTERVAL) {
        let revision = shared.revision.load(Ordering::Acquire);
        if revision == checkpointed_at {
            continue;
        }
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        }) {
            Ok((log, done)) => {
                checkpointed_at = revision;
                tracing::trace!(log, done, "sqlite store: checkpoint");
            }
            Err(e) => tracing::warn!(error = %e, "sqlite store: checkpoint failed"),
        }
    }
}

/// Reads the events after `after` under `[lo, hi)`, at most [`WATCH_PAGE`] of them.
/// Returns them with the revision the read saw; `complete` when nothing more was there.
fn read_events(
    conn: &mut Connection,
    lo: &[u8],
    hi: &[u8],
    after: Revision,
) -> Result<(Vec<WatchEvent>, Revision, bool), ReadError> {
    let tx = conn.transaction()?;
    let (revision, compacted) = read_meta(&tx)?;
    if after < compacted {
        return Err(StoreError::Compacted {
            requested: after,
            compacted,
        }
        .into());
    }
    let mut events = Vec::new();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT l.rev, l.key, l.value, l.create_rev, l.deleted,
                    p.rev, p.value, p.create_rev
               FROM log l LEFT JOIN log p ON p.rev = l.prev_rev
              WHERE l.rev > ?1 AND l.rev <= ?2 AND l.key >= ?3 AND l.key < ?4
              ORDER BY l.rev
              LIMIT ?5",
        )?;
        let page = i64::try_from(WATCH_PAGE).unwrap_or(i64::MAX);
        let mut rows = stmt.query(params![after, revision, lo, hi, page])?;
        while let Some(row) = rows.next()? {
            let rev: Revision = row.get(0)?;
            let key = key_string(row.get(1)?)?;
            let deleted: bool = row.get(4)?;
            let prev_rev: Option<Revision> = row.get(5)?;
            let prev = match prev_rev {
                Some(prev_rev) => Some(KeyValue {
                    key: key.clone(),
                    value: Bytes::from(row.get::<_, Vec<u8>>(6)?),
                    create_revision: row.get(7)?,
                    mod_revision: prev_rev,
                }),
                None => None,
            };
            let event = if deleted {
                let Some(last) = prev else {
                    return Err(StoreError::Internal(format!(
                        "the deletion of {key:?} at revision {rev} has lost its previous value"
                    ))
                    .into());
                };
                WatchEvent {
                    kind: EventKind::Deleted,
                    kv: KeyValue {
                        mod_revision: rev,
                        ..last.clone()
                    },
                    prev: Some(last),
                }
            } else {
                WatchEvent {
                    kind: if prev.is_some() {
                        EventKind::Updated
                    } else {
                        EventKind::Created
                    },
                    kv: KeyValue {
                        key,
                        value: Bytes::from(row.get::<_, Vec<u8>>(2)?),
                        create_revision: row.get(3)?,
                        mod_revision: rev,
                    },
                    prev,
                }
            };
            events.push(event);
        }
    }
    let complete = events.len() < WATCH_PAGE;
    Ok((events, revision, complete))
}

/// One watch: replays from the log, then follows the live events.
struct Watcher {
    shared: Arc<Shared>,
    prefix: String,
    lo: Vec<u8>,
    hi: Vec<u8>,
    live: broadcast::Receiver<Arc<Batch>>,
    /// Every event up to this revision has been queued (or did not match).
    upto: Revision,
    replaying: bool,
    pending: VecDeque<WatchEvent>,
    done: bool,
    /// Report `Progress` for revisions that changed nothing under the prefix.
    progress: bool,
    /// The revision of the last event or progress report handed out.
    reported: Revision,
}

impl Watcher {
    /// Reads one page of history. Subscribes afresh first, so that once a page comes back
    /// complete the live receiver holds everything committed after it.
    async fn replay_page(&mut self) -> Result<()> {
        self.live = self.live.resubscribe();
        let (lo, hi, after) = (self.lo.clone(), self.hi.clone(), self.upto);
        let (events, revision, complete) = self
            .shared
            .read(move |conn| read_events(conn, &lo, &hi, after))
            .await?;
        if complete {
            self.upto = self.upto.max(revision);
            self.replaying = false;
        } else if let Some(last) = events.last() {
            self.upto = last.revision();
        }
        self.pending.extend(events);
        if complete {
            self.report_progress();
        }
        Ok(())
    }

    /// Queue a progress report when the watcher is ahead of everything it handed out.
    fn report_progress(&mut self) {
        let last = self
            .pending
            .back()
            .map_or(self.reported, WatchEvent::revision);
        if self.progress && self.upto > last {
            self.pending.push_back(WatchEvent {
                kind: EventKind::Progress,
                kv: KeyValue {
                    key: self.prefix.clone(),
                    value: Bytes::new(),
                    create_revision: 0,
                    mod_revision: self.upto,
                },
                prev: None,
            });
        }
    }

    async fn next(&mut self) -> Option<Result<WatchEvent>> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                self.reported = ev.revision();
                return Some(Ok(ev));
            }
            if self.done {
                return None;
            }
            if self.replaying {
                if let Err(e) = self.replay_page().await {
                    self.done = true;
                    return Some(Err(e));
                }
                continue;
            }
            match self.live.recv().await {
                Ok(batch) => {
                    if batch.revision <= self.upto {
                        continue;
                    }
                    self.pending.extend(
                        batch
                            .events
                            .iter()
                            .filter(|e| {
                                e.revision() > self.upto && e.kv.key.starts_with(&self.prefix)
                            })
                            .cloned(),
                    );
                    self.upto = batch.revision;
                    self.report_progress();
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, prefix = %self.prefix, "watch fell behind, replaying");
                    self.replaying = true;
                }
                Err(broadcast::error::RecvError::Closed) => {
                    self.done = true;
                }
            }
        }
    }
}

impl SqliteStore {
    async fn watch_from(
        &self,
        prefix: &str,
        after: Revision,
        progress: bool,
    ) -> Result<WatchStream> {
        let live = self.shared.subscribe()?;
        let (lo, hi) = key_range(prefix, None);
        let mut watcher = Watcher {
            shared: self.shared.clone(),
            prefix: prefix.to_string(),
            lo,
            hi,
            live,
            upto: after.max(0),
            replaying: true,
            pending: VecDeque::new(),
            done: false,
            progress,
            reported: after.max(0),
        };
        // The first page runs now, so a compacted start fails the call itself.
        watcher.replay_page().await?;
        let stream = futures::stream::unfold(watcher, |mut w| async move {
            w.next().await.map(|item| (item, w))
        });
        Ok(Box::pin(stream))
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_string();
        self.shared
            .read(move |conn| Ok(current_kv(conn, &key)?))
            .await
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        let (lo, hi) = key_range(prefix, opts.start_after.as_deref());
        let limit = limit_param(opts.limit);
        let wanted = opts.limit.filter(|n| *n > 0);
        self.shared
            .read(move |conn| {
                let tx = conn.transaction()?;
                let (revision, compacted) = read_meta(&tx)?;
                let at = match opts.revision {
                    Some(r) if r > 0 => r,
                    _ => revision,
                };
                if at > revision {
                    return Err(StoreError::FutureRevision {
                        requested: at,
                        current: revision,
                    }
                    .into());
                }
                if at < compacted {
                    return Err(StoreError::Compacted {
                        requested: at,
                        compacted,
                    }
                    .into());
                }
                let mut items = if at == revision {
                    tx.prepare_cached(
                        "SELECT c.key, l.value, l.create_rev, l.rev
                           FROM current c JOIN log l ON l.rev = c.rev
                          WHERE c.key >= ?1 AND c.key < ?2
                          ORDER BY c.key
                          LIMIT ?3",
                    )?
                    .query_map(params![lo, hi, limit], kv_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?
                } else {
                    tx.prepare_cached(
                        "SELECT l.key, l.value, l.create_rev, l.rev
                           FROM log l
                          WHERE l.key >= ?1 AND l.key < ?2 AND l.rev <= ?3
                            AND l.rev = (SELECT max(x.rev) FROM log x
                                          WHERE x.key = l.key AND x.rev <= ?3)
                            AND l.deleted = 0
                          ORDER BY l.key
                          LIMIT ?4",
                    )?
                    .query_map(params![lo, hi, at, limit], kv_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?
                };
                let more = wanted.is_some_and(|n| items.len() > n);
                if let Some(n) = wanted {
                    items.truncate(n);
                }
                Ok(ListResult {
                    items,
                    revision: at,
                    more,
                })
            })
            .await
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        let (lo, hi) = key_range(prefix, None);
        self.shared
            .read(move |conn| {
                let n: i64 = conn
                    .prepare_cached("SELECT count(*) FROM current WHERE key >= ?1 AND key < ?2")?
                    .query_row(params![lo, hi], |row| row.get(0))?;
                Ok(u64::try_from(n).unwrap_or(0))
            })
            .await
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
        self.create_with(key, value, Some(guard.clone())).await
    }

    async fn update_guarded(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        guard: &Guard,
    ) -> Result<Revision> {
        self.update_with(key, value, expected, Some(guard.clone()))
            .await
    }

    async fn delete_guarded(
        &self,
        key: &str,
        expected: Option<Revision>,
        guard: &Guard,
    ) -> Result<(Revision, KeyValue)> {
        self.delete_with(key, expected, Some(guard.clone())).await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        self.watch_from(prefix, after, false).await
    }

    async fn watch_with_progress(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        self.watch_from(prefix, after, true).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(closed_error());
        }
        Ok(self.shared.revision.load(Ordering::Acquire))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(Request::Compact { revision, reply })
            .map_err(|_| closed_error())?;
        rx.await.map_err(|_| closed_error())?
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(closed_error());
        }
        Ok(self.shared.compacted.load(Ordering::Acquire))
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

// ---------------------------------------------------------------------------------------------
// the writer thread

struct Writer {
    conn: Connection,
    queue: mpsc::Receiver<Request>,
    shared: Arc<Shared>,
    events: broadcast::Sender<Arc<Batch>>,
    compacted: Revision,
    /// The next log revision the purge of compacted rows looks at.
    purge_next: Revision,
    /// What the writes not purged yet will make obsolete, in revision order, as they were
    /// committed: the purge takes it from here instead of reading the rows back (most of its
    /// cost, a row being about a page). Bounded by [`JOURNAL_MAX`].
    journal: VecDeque<Journaled>,
    /// Every write at or after this revision is in `journal`; the purge reads the log for
    /// older ones (written before this process opened the store, or dropped from a full
    /// journal).
    journal_from: Revision,
}

/// One committed write, as the purge needs it.
#[derive(Clone, Copy)]
struct Journaled {
    rev: Revision,
    /// The row it replaced (`prev_rev`).
    replaced: Option<Revision>,
    /// Whether it is a deletion's tombstone.
    tombstone: bool,
}

/// At most this many writes are journaled for the purge (about 6 MiB); past it the oldest go
/// and the purge reads the log for them.
const JOURNAL_MAX: usize = 1 << 18;

/// What one request of a batch came to, before the commit decides whether it stands.
enum Outcome {
    Write(Result<Written>),
    Compact(Result<()>),
}

impl Writer {
    fn run(&mut self) {
        loop {
            let purging = self.purge_next <= self.compacted;
            let first = if purging {
                match self.queue.try_recv() {
                    Ok(r) => Some(r),
                    Err(mpsc::TryRecvError::Empty) => None,
                    Err(mpsc::TryRecvError::Disconnected) => break,
                }
            } else {
                match self.queue.recv() {
                    Ok(r) => Some(r),
                    Err(_) => break,
                }
            };
            if let Some(first) = first {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match self.queue.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
                if self.commit_batch(batch) {
                    break;
                }
            }
            if self.purge_next <= self.compacted
                && let Err(e) = self.purge_chunk()
            {
                tracing::error!(error = %e, "sqlite store: purging compacted history failed");
                // Try again later rather than spin on a failing purge.
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        tracing::debug!("sqlite store: writer stopped");
    }

    /// Commits one batch and answers its requests. Returns true when asked to shut down.
    fn commit_batch(&mut self, batch: Vec<Request>) -> bool {
        let mut shutdown = false;
        let mut requests = Vec::with_capacity(batch.len());
        for r in batch {
            match r {
                Request::Shutdown => shutdown = true,
                other => requests.push(other),
            }
        }
        if requests.is_empty() {
            return shutdown;
        }
        match self.apply_batch(&requests) {
            Ok((outcomes, events, revision, compacted)) => {
                self.shared.revision.store(revision, Ordering::Release);
                if compacted > self.compacted {
                    self.compacted = compacted;
                    self.shared.compacted.store(compacted, Ordering::Release);
                    tracing::info!(compacted, "sqlite store: compacted");
                }
                self.journal(&events);
                if !events.is_empty() {
                    // No receiver is fine: nobody is watching.
                    let _ = self.events.send(Arc::new(Batch { events, revision }));
                }
                for (request, outcome) in requests.into_iter().zip(outcomes) {
                    match (request, outcome) {
                        (Request::Write { reply, .. }, Outcome::Write(r)) => {
                            let _ = reply.send(r);
                        }
                        (Request::Compact { reply, .. }, Outcome::Compact(r)) => {
                            let _ = reply.send(r);
                        }
                        _ => tracing::error!("sqlite store: batch outcomes out of step"),
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "sqlite store: write transaction failed");
                let err = db_error(e);
                for request in requests {
                    match request {
                        Request::Write { reply, .. } => {
                            let _ = reply.send(Err(err.clone()));
                        }
                        Request::Compact { reply, .. } => {
                            let _ = reply.send(Err(err.clone()));
                        }
                        Request::Shutdown => {}
                    }
                }
            }
        }
        shutdown
    }

    /// Runs the batch in one transaction and commits it.
    #[allow(clippy::type_complexity)]
    fn apply_batch(
        &mut self,
        requests: &[Request],
    ) -> rusqlite::Result<(Vec<Outcome>, Vec<WatchEvent>, Revision, Revision)> {
        let mut tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (start, mut compacted) = read_meta(&tx)?;
        let mut revision = start;
        let mut outcomes = Vec::with_capacity(requests.len());
        let mut events = Vec::new();
        for request in requests {
            match request {
                Request::Write { op, guard, .. } => {
                    let sp = tx.savepoint()?;
                    match apply_op(&sp, revision + 1, op, guard.as_ref()) {
                        Ok(Ok(event)) => {
                            sp.commit()?;
                            revision += 1;
                            outcomes.push(Outcome::Write(Ok(Written {
                                revision,
                                prev: event.prev.clone(),
                            })));
                            events.push(event);
                        }
                        Ok(Err(e)) => {
                            drop(sp);
                            outcomes.push(Outcome::Write(Err(e)));
                        }
                        Err(e) => {
                            // Only this request fails; the savepoint rolls back its rows.
                            drop(sp);
                            outcomes.push(Outcome::Write(Err(db_error(e))));
                        }
                    }
                }
                Request::Compact { revision: to, .. } => {
                    let r = if *to <= compacted {
                        Ok(())
                    } else if *to > revision {
                        Err(StoreError::FutureRevision {
                            requested: *to,
                            current: revision,
                        })
                    } else {
                        compacted = *to;
                        Ok(())
                    };
                    outcomes.push(Outcome::Compact(r));
                }
                Request::Shutdown => {}
            }
        }
        if revision != start {
            write_meta_value(&tx, "revision", revision)?;
        }
        if compacted > self.compacted {
            write_meta_value(&tx, "compacted", compacted)?;
        }
        tx.commit()?;
        Ok((outcomes, events, revision, compacted))
    }

    /// Deletes one chunk of the rows no read at or after the compacted revision needs.
    ///
    /// A row stops being needed when a write at or before the compacted revision replaced it,
    /// or when it is a tombstone at or before it. Every write records the row it replaced
    /// (`prev_rev`), so the purge walks only the log written since the last purge, deleting
    /// the rows those writes replaced and their tombstones: its cost follows the write rate,
    /// not the number of keys, and a compaction never re-reads history an earlier one
    /// already purged.
    fn purge_chunk(&mut self) -> rusqlite::Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let lo = self.purge_next;
        // Every revision has at most one row, and nothing at or after `purge_next` has been
        // purged yet (a chunk deletes only rows its writes replaced, which are older, and its
        // own tombstones): the chunk is its revision range, found without reading the log.
        let hi = lo.saturating_add(PURGE_CHUNK).min(self.compacted + 1);
        // What goes is collected before any row is deleted, so a chunk holding both a write
        // and the write it replaced loses neither link: from the journal, or for writes it
        // does not hold, from one pass over the chunk's rows.
        let mut doomed = Vec::new();
        let mut doom = |w: Journaled| {
            doomed.extend(w.replaced);
            if w.tombstone {
                doomed.push(w.rev);
            }
        };
        if lo < self.journal_from {
            let mut scan = tx.prepare_cached(
                "SELECT rev, prev_rev, deleted FROM log WHERE rev >= ?1 AND rev < ?2",
            )?;
            let mut rows = scan.query(params![lo, hi.min(self.journal_from)])?;
            while let Some(row) = rows.next()? {
                doom(Journaled {
                    rev: row.get(0)?,
                    replaced: row.get(1)?,
                    tombstone: row.get(2)?,
                });
            }
        }
        // The journal holds nothing before `lo`: each chunk drains what it covered.
        let journaled = self.journal.iter().take_while(|w| w.rev < hi).count();
        self.journal.range(..journaled).copied().for_each(doom);
        let mut deleted = 0;
        {
            let mut delete = tx.prepare_cached("DELETE FROM log WHERE rev = ?1")?;
            // In revision order, so the deletes walk the table (and the WAL's pages) forward.
            doomed.sort_unstable();
            doomed.dedup();
            for rev in doomed {
                deleted += delete.execute(params![rev])?;
            }
        }
        write_meta_value(&tx, "purge_next", hi)?;
        tx.commit()?;
        // Only once committed: a failed chunk is tried again from the same journal.
        self.journal.drain(..journaled);
        self.purge_next = hi;
        tracing::debug!(
            from = lo,
            to = hi,
            deleted,
            "sqlite store: purged compacted history"
        );
        Ok(())
    }

    /// Journal a committed batch's writes for the purge.
    fn journal(&mut self, events: &[WatchEvent]) {
        for e in events {
            self.journal.push_back(Journaled {
                rev: e.kv.mod_revision,
                replaced: e.prev.as_ref().map(|p| p.mod_revision),
                tombstone: e.kind == EventKind::Deleted,
            });
        }
        let excess = self.journal.len().saturating_sub(JOURNAL_MAX);
        if excess > 0 {
            self.journal.drain(..excess);
            self.journal_from = self.journal.front().map_or(self.journal_from, |w| w.rev);
        }
    }
}

/// Applies one write at revision `rev`: `Ok(Err(_))` when its precondition fails.
fn apply_op(
    conn: &Connection,
    rev: Revision,
    op: &Op,
    guard: Option<&Guard>,
) -> rusqlite::Result<Result<WatchEvent, StoreError>> {
    let key = match op {
        Op::Create { key, .. } | Op::Update { key, .. } | Op::Delete { key, .. } => key,
    };
    if let Some(guard) = guard {
        let current = current_kv(conn, &guard.key)?.map(|kv| kv.mod_revision);
        if current != Some(guard.mod_revision) {
            return Ok(Err(StoreError::GuardFailed {
                key: guard.key.clone(),
                expected: guard.mod_revision,
                current,
            }));
        }
    }
    let current = current_kv(conn, key)?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO log (rev, key, value, create_rev, prev_rev, deleted)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    match op {
        Op::Create { key, value } => {
            if current.is_some() {
                return Ok(Err(StoreError::AlreadyExists { key: key.clone() }));
            }
            insert.execute(params![
                rev,
                key.as_bytes(),
                value.as_ref(),
                rev,
                None::<Revision>,
                false
            ])?;
            conn.prepare_cached("INSERT INTO current (key, rev) VALUES (?1, ?2)")?
                .execute(params![key.as_bytes(), rev])?;
            Ok(Ok(WatchEvent {
                kind: EventKind::Created,
                kv: KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision: rev,
                    mod_revision: rev,
                },
                prev: None,
            }))
        }
        Op::Update {
            key,
            value,
            expected,
        } => {
            let Some(current) = current else {
                return Ok(Err(StoreError::NotFound { key: key.clone() }));
            };
            if current.mod_revision != *expected {
                return Ok(Err(StoreError::Conflict {
                    key: key.clone(),
                    expected: *expected,
                    current: Some(current.mod_revision),
                }));
            }
            insert.execute(params![
                rev,
                key.as_bytes(),
                value.as_ref(),
                current.create_revision,
                current.mod_revision,
                false
            ])?;
            conn.prepare_cached("UPDATE current SET rev = ?2 WHERE key = ?1")?
                .execute(params![key.as_bytes(), rev])?;
            Ok(Ok(WatchEvent {
                kind: EventKind::Updated,
                kv: KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision: current.create_revision,
                    mod_revision: rev,
                },
                prev: Some(current),
            }))
        }
        Op::Delete { key, expected } => {
            let Some(current) = current else {
                return Ok(Err(StoreError::NotFound { key: key.clone() }));
            };
            if let Some(expected) = expected
                && current.mod_revision != *expected
            {
                return Ok(Err(StoreError::Conflict {
                    key: key.clone(),
                    expected: *expected,
                    current: Some(current.mod_revision),
                }));
            }
            insert.execute(params![
                rev,
                key.as_bytes(),
                &[] as &[u8],
                current.create_revision,
                current.mod_revision,
                true
            ])?;
            conn.prepare_cached("DELETE FROM current WHERE key = ?1")?
                .execute(params![key.as_bytes()])?;
            Ok(Ok(WatchEvent {
                kind: EventKind::Deleted,
                kv: KeyValue {
                    mod_revision: rev,
                    ..current.clone()
                },
                prev: Some(current),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_reads_are_planned_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut conn = Connection::open(dir.path().join("db")).expect("open");
        configure(&conn).expect("configure");
        migrate(&mut conn).expect("migrate");
        for i in 0..50 {
            current_kv(&conn, &format!("/k/{i}")).expect("read");
        }
        let stmt = conn.prepare_cached(CURRENT_KV).expect("cached");
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }
}
