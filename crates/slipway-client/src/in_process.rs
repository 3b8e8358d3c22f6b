//! [`InProcess`]: the [`Client`] that calls a [`Registry`] directly.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::Value;
use slipway_apimachinery::selector::{FieldSelector, LabelSelector};
use slipway_apimachinery::{ApiError, ResourceDef};
use slipway_registry::{self as registry, Registry};

use crate::{
    ApiResource, Client, DeleteParams, Deleted, Error, Fence, ListParams, ObjectList,
    ObjectVersion, Patch, PatchParams, PostParams, Propagation, Result, Status, Subresource,
    WatchEvent, WatchParams, WatchStream,
};

/// A [`Client`] straight to a [`Registry`] in this process: same semantics as the HTTP API
/// (it is the code behind it), without HTTP or serialization.
#[derive(Clone)]
pub struct InProcess {
    registry: Arc<Registry>,
    fence: Option<Fence>,
    /// The field manager recorded when a write names none.
    default_manager: String,
}

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcess")
            .field("fence", &self.fence)
            .field("default_manager", &self.default_manager)
            .finish_non_exhaustive()
    }
}

impl InProcess {
    /// A client over `registry`, recording writes as field manager `slipway`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self {
            registry,
            fence: None,
            default_manager: "slipway".to_string(),
        }
    }

    /// Record writes that name no field manager as `manager`.
    pub fn with_manager(mut self, manager: &str) -> Self {
        self.default_manager = manager.to_string();
        self
    }

    /// The registry this client writes to.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    fn def(&self, res: &ApiResource) -> Result<Arc<ResourceDef>> {
        self.registry
            .resource(&res.group, &res.version, &res.plural)
            .ok_or_else(|| {
                Error::from(ApiError::path_not_found(&format!(
                    "{}/{}",
                    res.api_version(),
                    res.plural
                )))
            })
    }

    fn write_options(
        &self,
        dry_run: bool,
        manager: Option<&String>,
        force: bool,
    ) -> registry::WriteOptions {
        registry::WriteOptions {
            dry_run,
            field_manager: Some(manager.unwrap_or(&self.default_manager).clone()),
            force,
            fence: self.fence.clone(),
            ..registry::WriteOptions::default()
        }
    }
}

fn label_selector(s: Option<&String>) -> Result<Option<LabelSelector>> {
    match s {
        Some(s) if !s.trim().is_empty() => Ok(Some(LabelSelector::parse(s)?)),
        _ => Ok(None),
    }
}

/// Field selectors support what the API server supports for the kind (metadata.name,
/// metadata.namespace and the kind's selectable fields, such as a Pod's `spec.nodeName`).
fn field_selector(def: &ResourceDef, s: Option<&String>) -> Result<Option<FieldSelector>> {
    match s {
        Some(s) if !s.trim().is_empty() => {
            Ok(Some(FieldSelector::parse(s, &def.field_selector_fields())?))
        }
        _ => Ok(None),
    }
}

fn subresource(s: Subresource) -> registry::Subresource {
    match s {
        Subresource::Main => registry::Subresource::Main,
        Subresource::Status => registry::Subresource::Status,
    }
}

#[async_trait]
impl Client for InProcess {
    async fn get(&self, res: &ApiResource, ns: Option<&str>, name: &str) -> Result<Arc<Value>> {
        let def = self.def(res)?;
        Ok(self.registry.get_shared(&def, res.scope(ns), name).await?)
    }

    async fn get_version(
        &self,
        res: &ApiResource,
        ns: Option<&str>,
        name: &str,
    ) -> Result<ObjectVersion> {
        let def = self.def(res)?;
        let (uid, revision) = self.registry.get_version(&def, res.scope(ns), name).await?;
        Ok(ObjectVersion {
            uid: uid.into(),
            resource_version: revision.to_string(),
        })
    }

    async fn list(
        &self,
        res: &ApiResource,
        ns: Option<&str>,
        params: &ListParams,
    ) -> Result<ObjectList> {
        let def = self.def(res)?;
        let p = registry::ListParams {
            label_selector: label_selector(params.label_selector.as_ref())?,
            field_selector: field_selector(&def, params.field_selector.as_ref())?,
            limit: params.limit.map(|l| l as usize),
            continue_token: params.continue_token.clone(),
            resource_version: params.resource_version.clone(),
            resource_version_match: None,
        };
        let list = self.registry.list(&def, res.scope(ns), &p).await?;
        Ok(ObjectList {
            items: list.items.iter().map(|o| (**o).clone()).collect(),
            resource_version: list.resource_version.to_string(),
            continue_token: list.continue_token,
        })
    }

    async fn create(
        &self,
        res: &ApiResource,
        ns: Option<&str>,
        obj: Value,
        params: &PostParams,
    ) -> Result<Arc<Value>> {
        let def = self.def(res)?;
        let opts = self.write_options(params.dry_run, params.field_manager.as_ref(), false);
        Ok(self
            .registry
            .create(&def, res.scope(ns), obj, &opts)
            .await?
            .object)
    }

    async fn replace(
        &self,
        res: &ApiResource,
        ns: Option<&str>,
        name: &str,
        obj: Value,
        params: &PostParams,
    ) -> Result<Arc<Value>> {
        let def = self.def(res)?;
        let opts = self.write_options(params.dry_run, params.field_manager.as_ref(), false);
        let written = self
            .registry
            .update(
                &def,
                res.scope(ns),
                name,
                obj,
                registry::Subresource::Main,
                &opts,
            )
            .await?;
        Ok(written.object)
    }

    async fn replace_status(
        &self,
        res: &ApiResource,
        ns: Option<&str>,
        name: &str,
        obj: Value,
        params: &PostParams,
    ) -> Result<Arc<Value>> {
        let def = self.def(res)?;
        let opts = self.write_options(params.dry_run, params.field_manager.as_ref(), false);
        let written = self
            .registry
            .update(
                &def,
                res.scope(ns),
                name,
                obj,
                registry::Subresource::Status,
                &opts,
            )
            .await?;
        Ok(written.object)
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
        let def = self.def(res)?;
        let patch = match patch {
            Patch::Merge(p) => registry::Patch::Merge(p.clone()),
            Patch::Json(p) => registry::Patch::Json(p.clone()),
            Patch::Apply(p) => {
                if params.field_manager.is_none() {
                    return Err(ApiError::bad_request(
                        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                    )
                    .into());
                }
                registry::Patch::Apply(p.clone())
            }
        };
        let opts = self.write_options(params.dry_run, params.field_manager.as_ref(), params.force);
        let written = self
            .registry
            .patch(&def, res.scope(ns), name, patch, subresource(sub), &opts)
            .await?;
        Ok(written.object)
    }

    async fn delete(
        &self,
        res: &ApiResource,
        ns: Option<&str>,
        name: &str,
        params: &DeleteParams,
    ) -> Result<Deleted> {
        let def = self.def(res)?;
        let opts = registry::DeleteOptions {
            dry_run: params.dry_run,
            precondition_uid: params.precondition_uid.clone(),
            precondition_resource_version: params.precondition_resource_version.clone(),
            propagation: params.propagation.map(|p| match p {
                Propagation::Background => registry::Propagation::Background,
                Propagation::Foreground => registry::Propagation::Foreground,
                Propagation::Orphan => registry::Propagation::Orphan,
            }),
            fence: self.fence.clone(),
        };
        Ok(
            match self
                .registry
                .delete(&def, res.scope(ns), name, &opts)
                .await?
            {
                registry::Deleted::Gone(v) => Deleted::Gone(v),
                registry::Deleted::Pending(v) => Deleted::Pending(v),
            },
        )
    }

    async fn watch(
        &self,
        res: &ApiResource,
        ns: Option<&str>,
        params: &WatchParams,
    ) -> Result<WatchStream> {
        let def = self.def(res)?;
        let p = registry::WatchParams {
            label_selector: label_selector(params.label_selector.as_ref())?,
            field_selector: field_selector(&def, params.field_selector.as_ref())?,
            resource_version: params.resource_version.clone(),
            resource_version_match: None,
            allow_bookmarks: params.bookmarks,
            send_initial_events: None,
            timeout: params.timeout,
        };
        let stream = self.registry.watch(&def, res.scope(ns), p).await?;
        Ok(stream.map(|ev| Ok(convert_event(ev))).boxed())
    }

    fn fenced(&self, fence: Fence) -> Arc<dyn Client> {
        Arc::new(Self {
            fence: Some(fence),
            ..self.clone()
        })
    }

    fn fence(&self) -> Option<&Fence> {
        self.fence.as_ref()
    }
}

fn convert_event(ev: registry::WatchEvent) -> WatchEvent {
    use registry::WatchEventType as T;
    let object = ev.object;
    match ev.type_ {
        T::Added => WatchEvent::Added(object),
        T::Modified => WatchEvent::Modified(object),
        T::Deleted => WatchEvent::Deleted(object),
        T::Bookmark => WatchEvent::Bookmark {
            resource_version: object
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        },
        T::Error => WatchEvent::Error(Status::from_value(&object)),
    }
}
