//! The client every Slipway controller is written against.
//!
//! [`Client`] is an object-safe, untyped (JSON) trait with Kubernetes semantics: get, list
//! (selectors, paging, resourceVersion), create, replace, replace_status, patch (merge, JSON,
//! server-side apply; main object or `/status`), delete (preconditions, propagation) and
//! watch (Added/Modified/Deleted/Bookmark/Error events from a resourceVersion). Errors keep the
//! Kubernetes `Status` ([`Error::Api`]) so callers can match NotFound, Conflict, Gone,
//! TooManyRequests (with retry-after), Invalid, and [`Error::is_fenced`].
//!
//! Two implementations, one behavioural suite ([`conformance`], feature `conformance`):
//! - [`InProcess`] calls a [`slipway_registry::Registry`] directly: no HTTP, no serialization
//!   beyond the registry's own; the embedded mode and the simulator use it.
//! - [`Http`] speaks to any Kubernetes-compatible API server through kube-rs: ours, a
//!   simulated workload cluster, a real cluster.
//!
//! [`Api<K>`] is a typed facade (kube-rs style) over any `Arc<dyn Client>` for k8s-openapi
//! types and Slipway's CRD types.
//!
//! **Fencing.** [`Client::fenced`] returns a client that attaches a
//! [`Fence`](slipway_registry::Fence) (lease namespace, name and the holder the writer
//! believes it is) to every write. The registry refuses such a write, atomically at the
//! store, once the lease names another holder, so a leader that lost its lease cannot write
//! even before it notices. Leader election (`slipway-runtime`) hands its controllers a fenced
//! client.

mod api;
#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
mod http_client;
mod in_process;
mod types;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

pub use api::{Api, ObjectListOf, WatchEventOf};
pub use error::{Error, Result, Status};
pub use http_client::Http;
pub use in_process::InProcess;
pub use slipway_registry::{FENCE_HEADER, FENCED_REASON, Fence};
pub use types::{
    ApiResource, DeleteParams, Deleted, ListParams, ObjectList, ObjectVersion, Patch, PatchParams,
    PostParams, Propagation, Subresource, WatchEvent, WatchParams, WatchStream,
};

/// Untyped access to a Kubernetes-style API. Object-safe: controllers hold an
/// `Arc<dyn Client>`.
///
/// `ns` is the namespace for namespaced kinds (`None` lists or watches across all
/// namespaces) and is ignored for cluster-scoped kinds.
#[async_trait]
pub trait Client: Send + Sync + 'static {
    /// One object; [`Error::Api`] with code 404 when it does not exist (see
    /// [`Error::is_not_found`], or [`Api::get_opt`]).
    async fn get(&self, res: &ApiResource, ns: Option<&str>, name: &str) -> Result<Arc<Value>>;

    /// The uid and resourceVersion of one object (404 as [`Client::get`]): for a reader that
    /// keeps something derived from an object and asks only whether it changed. Clients that
    /// can answer without the whole object (the in-process one reads it off the watch cache,
    /// undecoded) override the default, which reads the object.
    async fn get_version(
        &self,
        res: &ApiResource,
        ns: Option<&str>,
        name: &str,
    ) -> Result<ObjectVersion> {
        Ok(ObjectVersion::of(&*self.get(res, ns, name).await?))
    }

    /// One page of objects (every object when `params.limit` is unset).
    async fn list(
        &self,
        res: &ApiResource,
        ns: Option<&str>,
        params: &ListParams,
    ) -> Result<ObjectList>;

    /// Create `obj` (its `metadata.name` names it). Writes answer the object as written,
    /// shared (an in-process client hands out the registry's own copy).
    async fn create(
        &self,
        res: &ApiResource,
        ns: Option<&str>,
        obj: Value,
        params: &PostParams,
    ) -> Result<Arc<Value>>;

    /// Replace the object `name` (optimistic concurrency on `metadata.resourceVersion` when set).
    async fn replace(
        &self,
        res: &ApiResource,
        ns: Option<&str>,
        name: &str,
        obj: Value,
        params: &PostParams,
    ) -> Result<Arc<Value>>;

    /// Replace the status of `name` (the `/status` subresource).
    async fn replace_status(
        &self,
        res: &ApiResource,
        ns: Option<&str>,
        name: &str,
        obj: Value,
        params: &PostParams,
    ) -> Result<Arc<Value>>;

    /// Patch the object or its status.
    async fn patch(
        &self,
        res: &ApiResource,
        ns: Option<&str>,
        name: &str,
        subresource: Subresource,
        patch: &Patch,
        params: &PatchParams,
    ) -> Result<Arc<Value>>;

    /// Delete `name`: gone at once, or pending while finalizers run.
    async fn delete(
        &self,
        res: &ApiResource,
        ns: Option<&str>,
        name: &str,
        params: &DeleteParams,
    ) -> Result<Deleted>;

    /// Watch changes after `params.resource_version` (or the current state as `Added` events
    /// first when it is unset or "0"). A too old resourceVersion ends in an
    /// [`WatchEvent::Error`] with code 410 (or fails at once with [`Error::is_gone`]).
    async fn watch(
        &self,
        res: &ApiResource,
        ns: Option<&str>,
        params: &WatchParams,
    ) -> Result<WatchStream>;

    /// The same client, attaching `fence` to every write (create, replace, patch, delete).
    fn fenced(&self, fence: Fence) -> Arc<dyn Client>;

    /// The fence this client attaches to writes, if any.
    fn fence(&self) -> Option<&Fence>;
}
