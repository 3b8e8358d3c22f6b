//! Watches: events from the watch cache, filtered for one kind, namespace and selectors.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use serde_json::{Value, json};
use slipway_apimachinery::selector::{FieldSelector, LabelSelector};
use slipway_apimachinery::{ApiError, FieldError, FieldPath, ResourceDef, meta};
use slipway_store::{EventKind, Revision};
use tokio::sync::{broadcast, mpsc};

use crate::Registry;
use crate::cache::{CacheEvent, Subscription};
use crate::codec::parse_resource_version;

/// How a watch starts and what it sees.
#[derive(Debug, Clone, Default)]
pub struct WatchParams {
    pub label_selector: Option<LabelSelector>,
    pub field_selector: Option<FieldSelector>,
    /// Unset, "" or "0": start with the current state as ADDED events. Otherwise every change after it.
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub allow_bookmarks: bool,
    /// Send the current state first, then a bookmark annotated `k8s.io/initial-events-end`.
    pub send_initial_events: Option<bool>,
    /// End the watch after this long.
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEventType {
    Added,
    Modified,
    Deleted,
    Bookmark,
    Error,
}

impl WatchEventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
            Self::Bookmark => "BOOKMARK",
            Self::Error => "ERROR",
        }
    }
}

/// One event of a watch.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub type_: WatchEventType,
    pub object: Arc<Value>,
    /// The cache event this came from: its JSON is serialized once for every watcher.
    source: Option<Arc<CacheEvent>>,
}

impl WatchEvent {
    fn synthetic(type_: WatchEventType, object: Value) -> Self {
        Self {
            type_,
            object: Arc::new(object),
            source: None,
        }
    }

    /// The object as JSON (shared between watchers when possible).
    pub fn object_json(&self) -> bytes::Bytes {
        match &self.source {
            Some(src) if Arc::ptr_eq(&src.object, &self.object) => src.object_json(),
            _ => bytes::Bytes::from(serde_json::to_vec(&*self.object).unwrap_or_default()),
        }
    }

    /// The event as one line of a JSON watch stream: `{"type":..,"object":..}` and a
    /// newline. Shared between watchers (no copy) when the event is the cache event as is.
    pub fn json_line(&self) -> bytes::Bytes {
        match &self.source {
            Some(src) if Arc::ptr_eq(&src.object, &self.object) && src.own_type() == self.type_ => {
                src.line()
            }
            _ => event_line(self.type_, &self.object_json()),
        }
    }

    /// A watch line of this event's type around another rendering of its object (a Table
    /// row, partial metadata).
    pub fn line_around(&self, object_json: &[u8]) -> bytes::Bytes {
        event_line(self.type_, object_json)
    }
}

/// What follows the object in a watch line.
pub(crate) const LINE_SUFFIX: &[u8] = b"}\n";
const LINE_TYPE: &[u8] = br#"{"type":""#;
const LINE_OBJECT: &[u8] = br#"","object":"#;

/// The length of a watch line of type `type_` up to the object.
pub(crate) fn line_prefix_len(type_: WatchEventType) -> usize {
    LINE_TYPE.len() + type_.as_str().len() + LINE_OBJECT.len()
}

/// A watch line: `{"type":..,"object":<object_json>}` and a newline.
pub(crate) fn event_line(type_: WatchEventType, object_json: &[u8]) -> bytes::Bytes {
    let mut line =
        Vec::with_capacity(line_prefix_len(type_) + object_json.len() + LINE_SUFFIX.len());
    line.extend_from_slice(LINE_TYPE);
    line.extend_from_slice(type_.as_str().as_bytes());
    line.extend_from_slice(LINE_OBJECT);
    line.extend_from_slice(object_json);
    line.extend_from_slice(LINE_SUFFIX);
    bytes::Bytes::from(line)
}

pub type WatchStream = Pin<Box<dyn Stream<Item = WatchEvent> + Send>>;

struct Filter {
    prefix: String,
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        self.labels
            .as_ref()
            .is_none_or(|s| s.matches(meta::labels(obj)))
            && self.fields.as_ref().is_none_or(|s| s.matches(obj))
    }

    /// What this watcher sees of a cache event, if anything.
    fn translate(&self, ev: &Arc<CacheEvent>) -> Option<WatchEvent> {
        if !ev.key.starts_with(&self.prefix) {
            return None;
        }
        let now = self.matches(&ev.object);
        // A watcher of everything needs only to know there was a previous version; one with
        // selectors decodes it (once per event, shared) to see whether it matched.
        let everything = self.labels.is_none() && self.fields.is_none();
        let prev = if everything { None } else { ev.prev() };
        let before =
            ev.has_prev() && (everything || prev.as_deref().is_some_and(|p| self.matches(p)));
        let type_ = match ev.kind {
            EventKind::Deleted if before => WatchEventType::Deleted,
            EventKind::Deleted => return None,
            _ if now && before => WatchEventType::Modified,
            _ if now => WatchEventType::Added,
            // It no longer matches: for this watcher it is gone, as last seen (kube-apiserver
            // sends the previous state with the new resourceVersion).
            _ if before => {
                let mut last = prev.as_deref().cloned().unwrap_or_default();
                crate::codec::set_resource_version(&mut last, ev.revision);
                return Some(WatchEvent {
                    type_: WatchEventType::Deleted,
                    object: Arc::new(last),
                    source: None,
                });
            }
            _ => return None,
        };
        Some(WatchEvent {
            type_,
            object: Arc::clone(&ev.object),
            source: Some(Arc::clone(ev)),
        })
    }
}

impl Registry {
    /// Watch a kind (in one namespace or all). Errors that happen after the watch started
    /// (such as a too old resourceVersion) arrive as an `Error` event carrying a `Status`.
    pub async fn watch(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        params: WatchParams,
    ) -> Result<WatchStream, ApiError> {
        let ns = if def.namespaced {
            ns.filter(|n| !n.is_empty())
        } else {
            None
        };
        let filter = Filter {
            prefix: self.keys.prefix(def, ns),
            labels: params.label_selector.clone(),
            fields: params.field_selector.clone(),
        };
        let initial_events = params.send_initial_events == Some(true);
        if initial_events {
            let mut errs = Vec::new();
            if params.resource_version_match.as_deref() != Some("NotOlderThan") {
                errs.push(FieldError::forbidden(
                    &FieldPath::root("resourceVersionMatch"),
                    "sendInitialEvents requires resourceVersionMatch=NotOlderThan",
                ));
            }
            if !params.allow_bookmarks {
                errs.push(FieldError::forbidden(
                    &FieldPath::root("allowWatchBookmarks"),
                    "sendInitialEvents requires allowWatchBookmarks=true",
                ));
            }
            if !errs.is_empty() {
                return Err(ApiError::invalid("ListOptions", "meta.k8s.io", "", &errs));
            }
        } else if params.send_initial_events.is_none() && params.resource_version_match.is_some() {
            return Err(ApiError::invalid(
                "ListOptions",
                "meta.k8s.io",
                "",
                &[FieldError::forbidden(
                    &FieldPath::root("resourceVersionMatch"),
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                )],
            ));
        }
        let rv = match params.resource_version.as_deref() {
            None | Some("") => None,
            Some("0") => Some(0),
            Some(rv) => Some(parse_resource_version(rv)?),
        };
        let start = match (initial_events, rv) {
            (true, None) => {
                self.cache_caught_up().await?;
                None
            }
            (true, Some(r)) => {
                self.cache.wait_for(r, self.config.cache_wait).await?;
                None
            }
            (false, None | Some(0)) => None,
            (false, Some(r)) => {
                self.cache.wait_for(r, self.config.cache_wait).await?;
                Some(r)
            }
        };
        let (tx, rx) = mpsc::channel(256);
        let head = Head {
            kind: def.kind.clone(),
            api_version: def.api_version(),
            bookmarks: params.allow_bookmarks,
            initial_events,
        };
        match self.cache.subscribe(start, &filter.prefix) {
            Ok(sub) => {
                let cache = Arc::clone(&self.cache);
                let interval = self.config.bookmark_interval;
                let deadline = params.timeout.unwrap_or_else(default_timeout);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(
                        deadline,
                        pump(cache, sub, filter, head, interval, tx),
                    )
                    .await;
                });
            }
            Err(e) => {
                let _ = tx.try_send(WatchEvent::synthetic(WatchEventType::Error, e.to_status()));
            }
        }
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }
}

/// kube-apiserver ends watches after a random 30 to 60 minutes so clients spread reconnects.
fn default_timeout() -> Duration {
    let jitter = uuid::Uuid::new_v4().as_bytes()[0] as u64 * 1800 / 255;
    Duration::from_secs(1800 + jitter)
}

struct Head {
    kind: String,
    api_version: String,
    bookmarks: bool,
    initial_events: bool,
}

impl Head {
    fn bookmark(&self, revision: Revision, initial_events_end: bool) -> WatchEvent {
        let mut meta = json!({"resourceVersion": revision.to_string()});
        if initial_events_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        WatchEvent::synthetic(
            WatchEventType::Bookmark,
            json!({"kind": self.kind, "apiVersion": self.api_version, "metadata": meta}),
        )
    }
}

/// While a watcher's position stays put, a bookmark goes every this many intervals (and
/// on the first interval of the watch).
const QUIET_BOOKMARKS: u32 = 5;

/// Feed one watcher: backlog first, then live events; catch up from the cache window when
/// the broadcast ran ahead; bookmarks on the interval when asked for.
async fn pump(
    cache: Arc<crate::cache::WatchCache>,
    sub: Subscription,
    filter: Filter,
    head: Head,
    interval: Duration,
    tx: mpsc::Sender<WatchEvent>,
) {
    let Subscription {
        backlog,
        mut live,
        mut position,
    } = sub;
    for ev in &backlog {
        if let Some(out) = filter.translate(ev)
            && tx.send(out).await.is_err()
        {
            return;
        }
    }
    if head.initial_events && tx.send(head.bookmark(position, true)).await.is_err() {
        return;
    }
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    // A bookmark says how far the watcher got. While that has not moved, one goes only
    // every `QUIET_BOOKMARKS` intervals (a keepalive for proxies that cut quiet
    // connections): thousands of idle watchers (a fleet's Node watches) otherwise cost a
    // serialized event each per interval for nothing.
    let mut bookmarked: Option<(Revision, tokio::time::Instant)> = None;
    loop {
        tokio::select! {
            received = live.recv() => match received {
                Ok(ev) => {
                    if ev.revision <= position {
                        continue;
                    }
                    position = ev.revision;
                    if let Some(out) = filter.translate(&ev)
                        && tx.send(out).await.is_err()
                    {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => match cache.resubscribe(position, &filter.prefix) {
                    Ok(again) => {
                        live = again.live;
                        // The backlog has only this watcher's keys: after it, the watcher has
                        // seen everything up to the subscription's position.
                        for ev in again.backlog {
                            position = ev.revision;
                            if let Some(out) = filter.translate(&ev)
                                && tx.send(out).await.is_err()
                            {
                                return;
                            }
                        }
                        position = position.max(again.position);
                    }
                    Err(e) => {
                        let _ = tx.send(WatchEvent::synthetic(WatchEventType::Error, e.to_status())).await;
                        return;
                    }
                },
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = ticker.tick(), if head.bookmarks => {
                if let Some((at, sent)) = bookmarked
                    && at == position
                    && sent.elapsed() + interval / 2 < interval * QUIET_BOOKMARKS
                {
                    continue;
                }
                bookmarked = Some((position, tokio::time::Instant::now()));
                if tx.send(head.bookmark(position, false)).await.is_err() {
                    return;
                }
            }
            () = tx.closed() => return,
        }
    }
}
