//! [`Api<K>`]: a typed facade over any [`Client`], in the style of `kube::Api`.

use std::marker::PhantomData;
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{
    ApiResource, Client, DeleteParams, Deleted, Error, ListParams, Patch, PatchParams, PostParams,
    Result, Status, Subresource, WatchEvent, WatchParams,
};

/// A typed list page.
#[derive(Debug, Clone)]
pub struct ObjectListOf<K> {
    pub items: Vec<K>,
    pub resource_version: String,
    pub continue_token: Option<String>,
}

/// A typed watch event.
#[derive(Debug, Clone)]
pub enum WatchEventOf<K> {
    Added(K),
    Modified(K),
    Deleted(K),
    Bookmark { resource_version: String },
    Error(Status),
}

/// Typed access to one kind, in one namespace or across all, over any `Arc<dyn Client>`:
///
/// ```no_run
/// # async fn f(client: std::sync::Arc<dyn slipway_client::Client>) -> slipway_client::Result<()> {
/// use k8s_openapi::api::coordination::v1::Lease;
/// let leases = slipway_client::Api::<Lease>::namespaced(client, "kube-system");
/// let lease = leases.get_opt("controllers").await?;
/// # Ok(()) }
/// ```
pub struct Api<K> {
    client: Arc<dyn Client>,
    res: ApiResource,
    ns: Option<String>,
    _kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Api<K> {
    fn clone(&self) -> Self {
        Self {
            client: Arc::clone(&self.client),
            res: self.res.clone(),
            ns: self.ns.clone(),
            _kind: PhantomData,
        }
    }
}

impl<K> std::fmt::Debug for Api<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("resource", &self.res)
            .field("namespace", &self.ns)
            .finish_non_exhaustive()
    }
}

fn decode<K: DeserializeOwned>(v: Value) -> Result<K> {
    serde_json::from_value(v).map_err(|e| Error::Decode(e.to_string()))
}

/// Decode a shared object in place, without copying it first.
fn decode_shared<K: DeserializeOwned>(v: &Value) -> Result<K> {
    K::deserialize(v).map_err(|e| Error::Decode(e.to_string()))
}

fn encode<K: Serialize>(k: &K) -> Result<Value> {
    serde_json::to_value(k).map_err(|e| Error::Decode(e.to_string()))
}

impl<K> Api<K>
where
    K: kube::Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Send + 'static,
    K::Scope: 'static,
{
    /// Objects in namespace `ns` (for a namespaced kind).
    pub fn namespaced(client: Arc<dyn Client>, ns: &str) -> Self {
        Self {
            client,
            res: ApiResource::of::<K>(),
            ns: Some(ns.to_string()),
            _kind: PhantomData,
        }
    }

    /// Objects of every namespace (lists and watches), or of a cluster-scoped kind.
    pub fn all(client: Arc<dyn Client>) -> Self {
        Self {
            client,
            res: ApiResource::of::<K>(),
            ns: None,
            _kind: PhantomData,
        }
    }
}

impl<K> Api<K>
where
    K: Serialize + DeserializeOwned + Clone + Send + 'static,
{
    /// Typed access to a kind described at run time (the object type must still fit it).
    pub fn with_resource(client: Arc<dyn Client>, res: ApiResource, ns: Option<&str>) -> Self {
        Self {
            client,
            res,
            ns: ns.map(str::to_string),
            _kind: PhantomData,
        }
    }

    /// The kind this API addresses.
    pub fn resource(&self) -> &ApiResource {
        &self.res
    }

    /// The namespace, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.ns.as_deref()
    }

    /// The untyped client underneath.
    pub fn client(&self) -> &Arc<dyn Client> {
        &self.client
    }

    /// One object (404 [`Error::is_not_found`] when missing).
    pub async fn get(&self, name: &str) -> Result<K> {
        decode_shared(&*self.client.get(&self.res, self.ns.as_deref(), name).await?)
    }

    /// One object, `None` when missing.
    pub async fn get_opt(&self, name: &str) -> Result<Option<K>> {
        match self.get(name).await {
            Ok(k) => Ok(Some(k)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One page of objects.
    pub async fn list(&self, params: &ListParams) -> Result<ObjectListOf<K>> {
        let list = self
            .client
            .list(&self.res, self.ns.as_deref(), params)
            .await?;
        Ok(ObjectListOf {
            items: list.items.into_iter().map(decode).collect::<Result<_>>()?,
            resource_version: list.resource_version,
            continue_token: list.continue_token,
        })
    }

    /// Create an object.
    pub async fn create(&self, params: &PostParams, obj: &K) -> Result<K> {
        decode_shared(
            &*self
                .client
                .create(&self.res, self.ns.as_deref(), encode(obj)?, params)
                .await?,
        )
    }

    /// Replace an object.
    pub async fn replace(&self, name: &str, params: &PostParams, obj: &K) -> Result<K> {
        decode_shared(
            &*self
                .client
                .replace(&self.res, self.ns.as_deref(), name, encode(obj)?, params)
                .await?,
        )
    }

    /// Replace an object's status.
    pub async fn replace_status(&self, name: &str, params: &PostParams, obj: &K) -> Result<K> {
        decode_shared(
            &*self
                .client
                .replace_status(&self.res, self.ns.as_deref(), name, encode(obj)?, params)
                .await?,
        )
    }

    /// Patch an object.
    pub async fn patch(&self, name: &str, params: &PatchParams, patch: &Patch) -> Result<K> {
        decode_shared(
            &*self
                .client
                .patch(
                    &self.res,
                    self.ns.as_deref(),
                    name,
                    Subresource::Main,
                    patch,
                    params,
                )
                .await?,
        )
    }

    /// Patch an object's status.
    pub async fn patch_status(&self, name: &str, params: &PatchParams, patch: &Patch) -> Result<K> {
        decode_shared(&*self.patch_status_value(name, params, patch).await?)
    }

    /// [`Api::patch_status`] answering the written object as shared JSON, for a caller that
    /// needs at most a field of it (decoding the whole object into `K` is the larger part of
    /// a status write's cost to an in-process caller).
    pub async fn patch_status_value(
        &self,
        name: &str,
        params: &PatchParams,
        patch: &Patch,
    ) -> Result<Arc<Value>> {
        self.client
            .patch(
                &self.res,
                self.ns.as_deref(),
                name,
                Subresource::Status,
                patch,
                params,
            )
            .await
    }

    /// Delete an object (see [`Deleted`]).
    pub async fn delete(&self, name: &str, params: &DeleteParams) -> Result<Deleted> {
        self.client
            .delete(&self.res, self.ns.as_deref(), name, params)
            .await
    }

    /// Watch changes (see [`Client::watch`]).
    pub async fn watch(
        &self,
        params: &WatchParams,
    ) -> Result<futures::stream::BoxStream<'static, Result<WatchEventOf<K>>>> {
        let stream = self
            .client
            .watch(&self.res, self.ns.as_deref(), params)
            .await?;
        Ok(stream
            .map(|ev| {
                Ok(match ev? {
                    WatchEvent::Added(v) => WatchEventOf::Added(decode_shared(&v)?),
                    WatchEvent::Modified(v) => WatchEventOf::Modified(decode_shared(&v)?),
                    WatchEvent::Deleted(v) => WatchEventOf::Deleted(decode_shared(&v)?),
                    WatchEvent::Bookmark { resource_version } => {
                        WatchEventOf::Bookmark { resource_version }
                    }
                    WatchEvent::Error(s) => WatchEventOf::Error(s),
                })
            })
            .boxed())
    }
}
