//! [`Http`]: the [`Client`] over kube-rs, for any Kubernetes-compatible API server.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use kube::api::{self as kapi, DynamicObject};
use kube::core::WatchEvent as KubeEvent;
use serde_json::Value;

use crate::{
    ApiResource, Client, DeleteParams, Deleted, Error, FENCE_HEADER, Fence, ListParams, ObjectList,
    ObjectVersion, Patch, PatchParams, PostParams, Result, Status, Subresource, WatchEvent,
    WatchParams, WatchStream,
};

/// A [`Client`] over HTTP(S) with kube-rs: our API server, a simulated workload cluster, or
/// a real cluster. A fenced client sends [`FENCE_HEADER`] with every request (the server
/// reads it on writes only).
#[derive(Clone)]
pub struct Http {
    /// The configuration the client was built from (a fenced client adds one header to it).
    config: kube::Config,
    /// The client, or why it could not be built with the fence header.
    client: std::result::Result<kube::Client, String>,
    fence: Option<Fence>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("cluster_url", &self.config.cluster_url)
            .field("fence", &self.fence)
            .finish_non_exhaustive()
    }
}

impl Http {
    /// A client for the current context of the kubeconfig file at `path`.
    pub async fn from_kubeconfig(path: &Path) -> Result<Self> {
        let kubeconfig = kube::config::Kubeconfig::read_from(path)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        Self::from_config(config)
    }

    /// A client from a kube-rs configuration.
    pub fn from_config(config: kube::Config) -> Result<Self> {
        let client = kube::Client::try_from(config.clone())?;
        Ok(Self {
            config,
            client: Ok(client),
            fence: None,
        })
    }

    /// The underlying kube-rs client (for calls this trait does not cover).
    pub fn kube_client(&self) -> Result<kube::Client> {
        self.client.clone().map_err(Error::Config)
    }

    fn api(&self, res: &ApiResource, ns: Option<&str>) -> Result<kube::Api<DynamicObject>> {
        let client = self.kube_client()?;
        let ar = kube::core::ApiResource {
            group: res.group.clone(),
            version: res.version.clone(),
            api_version: res.api_version(),
            kind: res.kind.clone(),
            plural: res.plural.clone(),
        };
        Ok(match res.scope(ns) {
            Some(ns) => kube::Api::namespaced_with(client, ns, &ar),
            None => kube::Api::all_with(client, &ar),
        })
    }
}

fn to_value(obj: DynamicObject) -> Result<Value> {
    serde_json::to_value(obj).map_err(|e| Error::Decode(e.to_string()))
}

fn to_shared(obj: DynamicObject) -> Result<Arc<Value>> {
    to_value(obj).map(Arc::new)
}

fn from_value(obj: Value) -> Result<DynamicObject> {
    serde_json::from_value(obj).map_err(|e| Error::Decode(e.to_string()))
}

fn post_params(p: &PostParams) -> kapi::PostParams {
    kapi::PostParams {
        dry_run: p.dry_run,
        field_manager: p.field_manager.clone(),
    }
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    q.finish()
}

#[async_trait]
impl Client for Http {
    async fn get(&self, res: &ApiResource, ns: Option<&str>, name: &str) -> Result<Arc<Value>> {
        to_shared(self.api(res, ns)?.get(name).await?)
    }

    async fn get_version(
        &self,
        res: &ApiResource,
        ns: Option<&str>,
        name: &str,
    ) -> Result<ObjectVersion> {
        // Only the metadata crosses the wire (a `PartialObjectMetadata`).
        let meta = self.api(res, ns)?.get_metadata(name).await?.metadata;
        Ok(ObjectVersion {
            uid: meta.uid.unwrap_or_default(),
            resource_version: meta.resource_version.unwrap_or_default(),
        })
    }

    async fn list(
        &self,
        res: &ApiResource,
        ns: Option<&str>,
        params: &ListParams,
    ) -> Result<ObjectList> {
        let lp = kapi::ListParams {
            label_selector: params.label_selector.clone(),
            field_selector: params.field_selector.clone(),
            limit: params.limit,
            continue_token: params.continue_token.clone(),
            resource_version: params.resource_version.clone(),
            ..kapi::ListParams::default()
        };
        let list = self.api(res, ns)?.list(&lp).await?;
        let items = list
            .items
            .into_iter()
            .map(|mut o| {
                // Lists carry the kind once; objects from a list get it back.
                if o.types.is_none() {
                    o.types = Some(kube::core::TypeMeta {
                        api_version: res.api_version(),
                        kind: res.kind.clone(),
                    });
                }
                to_value(o)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ObjectList {
            items,
            resource_version: list.metadata.resource_version.unwrap_or_default(),
            continue_token: list.metadata.continue_.filter(|c| !c.is_empty()),
        })
    }

    async fn create(
        &self,
        res: &ApiResource,
        ns: Option<&str>,
        obj: Value,
        params: &PostParams,
    ) -> Result<Arc<Value>> {
        let obj = from_value(obj)?;
        to_shared(
            self.api(res, ns)?
                .create(&post_params(params), &obj)
                .await?,
        )
    }

    async fn replace(
        &self,
        res: &ApiResource,
        ns: Option<&str>,
        name: &str,
        obj: Value,
        params: &PostParams,
    ) -> Result<Arc<Value>> {
        let obj = from_value(obj)?;
        to_shared(
            self.api(res, ns)?
                .replace(name, &post_params(params), &obj)
                .await?,
        )
    }

    async fn replace_status(
        &self,
        res: &ApiResource,
        ns: Option<&str>,
        name: &str,
        obj: Value,
        params: &PostParams,
    ) -> Result<Arc<Value>> {
        let obj = from_value(obj)?;
        to_shared(
            self.api(res, ns)?
                .replace_status(name, &post_params(params), &obj)
                .await?,
        )
    }

    async fn patch(
        &self,
        res: &ApiResource,
        ns: Option<&str>,
        name: &str,
        sub: Subresource,
        patch: &Patch,
        params: &PatchParams,
    ) -> Result<Arc<Value>> {
        let api = self.api(res, ns)?;
        let pp = kapi::PatchParams {
            dry_run: params.dry_run,
            force: params.force,
            field_manager: params.field_manager.clone(),
            ..kapi::PatchParams::default()
        };
        let kpatch = match patch {
            Patch::Merge(p) => kapi::Patch::Merge(p),
            Patch::Apply(p) => kapi::Patch::Apply(p),
            Patch::Json(p) => {
                // kube's JSON patch needs its `jsonpatch` feature; the request is simple enough
                // to send directly.
                let suffix = match sub {
                    Subresource::Main => "",
                    Subresource::Status => "/status",
                };
                let q = query(&[
                    ("fieldManager", params.field_manager.clone()),
                    ("dryRun", params.dry_run.then(|| "All".to_string())),
                ]);
                let url = format!("{}/{name}{suffix}?{q}", api.resource_url());
                let body = serde_json::to_vec(p).map_err(|e| Error::Decode(e.to_string()))?;
                let req = http::Request::patch(url)
                    .header(http::header::CONTENT_TYPE, "application/json-patch+json")
                    .header(http::header::ACCEPT, "application/json")
                    .body(body)
                    .map_err(|e| Error::Transport(e.to_string()))?;
                return Ok(Arc::new(self.kube_client()?.request::<Value>(req).await?));
            }
        };
        let out = match sub {
            Subresource::Main => api.patch(name, &pp, &kpatch).await?,
            Subresource::Status => api.patch_status(name, &pp, &kpatch).await?,
        };
        to_shared(out)
    }

    async fn delete(
        &self,
        res: &ApiResource,
        ns: Option<&str>,
        name: &str,
        params: &DeleteParams,
    ) -> Result<Deleted> {
        let mut dp = kapi::DeleteParams {
            dry_run: params.dry_run,
            ..kapi::DeleteParams::default()
        };
        if params.precondition_uid.is_some() || params.precondition_resource_version.is_some() {
            dp.preconditions = Some(kapi::Preconditions {
                uid: params.precondition_uid.clone(),
                resource_version: params.precondition_resource_version.clone(),
            });
        }
        dp.propagation_policy = params.propagation.map(|p| match p.as_str() {
            "Foreground" => kapi::PropagationPolicy::Foreground,
            "Orphan" => kapi::PropagationPolicy::Orphan,
            _ => kapi::PropagationPolicy::Background,
        });
        match self.api(res, ns)?.delete(name, &dp).await? {
            either::Either::Left(obj) => {
                let obj = to_value(obj)?;
                let pending = obj.pointer("/metadata/deletionTimestamp").is_some()
                    && (obj
                        .pointer("/metadata/finalizers")
                        .and_then(Value::as_array)
                        .is_some_and(|f| !f.is_empty())
                        || obj.pointer("/spec/finalizers").is_some());
                Ok(if pending {
                    Deleted::Pending(obj)
                } else {
                    Deleted::Gone(obj)
                })
            }
            either::Either::Right(status) => Ok(Deleted::Gone(
                serde_json::to_value(status).map_err(|e| Error::Decode(e.to_string()))?,
            )),
        }
    }

    async fn watch(
        &self,
        res: &ApiResource,
        ns: Option<&str>,
        params: &WatchParams,
    ) -> Result<WatchStream> {
        let wp = kapi::WatchParams {
            label_selector: params.label_selector.clone(),
            field_selector: params.field_selector.clone(),
            bookmarks: params.bookmarks,
            timeout: params.timeout.map(|t| {
                u32::try_from(t.as_secs().max(1))
                    .unwrap_or(u32::MAX)
                    .min(290)
            }),
            ..kapi::WatchParams::default()
        };
        let version = params
            .resource_version
            .clone()
            .unwrap_or_else(|| "0".into());
        let stream = self.api(res, ns)?.watch(&wp, &version).await?;
        Ok(stream
            .map_err(Error::from)
            .and_then(|ev| async move {
                Ok(match ev {
                    KubeEvent::Added(o) => WatchEvent::Added(to_shared(o)?),
                    KubeEvent::Modified(o) => WatchEvent::Modified(to_shared(o)?),
                    KubeEvent::Deleted(o) => WatchEvent::Deleted(to_shared(o)?),
                    KubeEvent::Bookmark(b) => WatchEvent::Bookmark {
                        resource_version: b.metadata.resource_version,
                    },
                    KubeEvent::Error(s) => {
                        let v = serde_json::to_value(&*s).unwrap_or_default();
                        WatchEvent::Error(Status::from_value(&v))
                    }
                })
            })
            .boxed())
    }

    fn fenced(&self, fence: Fence) -> Arc<dyn Client> {
        let mut config = self.config.clone();
        let client = http::HeaderValue::from_str(&fence.to_header())
            .map_err(|e| format!("fence {fence} is not a valid header value: {e}"))
            .and_then(|value| {
                config.headers.retain(|(name, _)| name != FENCE_HEADER);
                config
                    .headers
                    .push((http::HeaderName::from_static(FENCE_HEADER), value));
                kube::Client::try_from(config.clone()).map_err(|e| e.to_string())
            });
        Arc::new(Self {
            config,
            client,
            fence: Some(fence),
        })
    }

    fn fence(&self) -> Option<&Fence> {
        self.fence.as_ref()
    }
}
