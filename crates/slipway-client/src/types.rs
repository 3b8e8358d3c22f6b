//! Request parameters, results and the resource descriptor shared by every [`Client`](crate::Client).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use serde_json::Value;

use crate::{Result, Status};

/// Which kind a request addresses: the group/version/kind, its plural (the URL segment and
/// registry name) and whether it is namespaced.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiResource {
    /// `""` for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
}

impl ApiResource {
    /// The descriptor of a typed resource (k8s-openapi or `kube::CustomResource` types).
    pub fn of<K>() -> Self
    where
        K: kube::Resource<DynamicType = ()>,
        K::Scope: 'static,
    {
        Self {
            group: K::group(&()).into_owned(),
            version: K::version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            plural: K::plural(&()).into_owned(),
            namespaced: std::any::TypeId::of::<K::Scope>()
                == std::any::TypeId::of::<k8s_openapi::NamespaceResourceScope>(),
        }
    }

    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The namespace a request uses: `ns` for namespaced kinds, none for cluster-scoped ones.
    pub(crate) fn scope<'a>(&self, ns: Option<&'a str>) -> Option<&'a str> {
        if self.namespaced {
            ns.filter(|n| !n.is_empty())
        } else {
            None
        }
    }
}

/// How to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams {
    /// `app=web,tier!=db`, set-based terms too.
    pub label_selector: Option<String>,
    /// `metadata.name=x`, `metadata.namespace!=y`.
    pub field_selector: Option<String>,
    /// Page size; `None` for everything.
    pub limit: Option<u32>,
    /// The previous page's [`ObjectList::continue_token`].
    pub continue_token: Option<String>,
    /// Read at (or not older than) this resourceVersion.
    pub resource_version: Option<String>,
}

impl ListParams {
    /// Select by labels.
    pub fn labels(mut self, selector: &str) -> Self {
        self.label_selector = Some(selector.to_string());
        self
    }

    /// Select by fields.
    pub fn fields(mut self, selector: &str) -> Self {
        self.field_selector = Some(selector.to_string());
        self
    }

    /// Page size.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Continue from a previous page.
    pub fn continue_token(mut self, token: &str) -> Self {
        self.continue_token = Some(token.to_string());
        self
    }
}

/// A page of objects.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectList {
    pub items: Vec<Value>,
    /// The list's resourceVersion: watch from here to see every later change.
    pub resource_version: String,
    /// Set when more items follow; pass it back in [`ListParams::continue_token`].
    pub continue_token: Option<String>,
}

/// Options of create and replace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostParams {
    pub dry_run: bool,
    pub field_manager: Option<String>,
}

/// Options of a patch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatchParams {
    pub dry_run: bool,
    /// Required for server-side apply.
    pub field_manager: Option<String>,
    /// Server-side apply: take ownership of fields other managers own.
    pub force: bool,
}

impl PatchParams {
    /// Server-side apply as `manager`.
    pub fn apply(manager: &str) -> Self {
        Self {
            field_manager: Some(manager.to_string()),
            ..Self::default()
        }
    }

    /// Take ownership of conflicting fields.
    pub fn force(mut self) -> Self {
        self.force = true;
        self
    }
}

/// A patch body.
#[derive(Debug, Clone, PartialEq)]
pub enum Patch {
    /// RFC 7386 JSON merge patch.
    Merge(Value),
    /// RFC 6902 JSON patch (an array of operations).
    Json(Value),
    /// Server-side apply of this configuration (needs [`PatchParams::field_manager`]).
    Apply(Value),
}

/// The part of an object a patch addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Subresource {
    #[default]
    Main,
    Status,
}

/// Deletion propagation to dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

impl Propagation {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Background => "Background",
            Self::Foreground => "Foreground",
            Self::Orphan => "Orphan",
        }
    }
}

/// Options of a delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteParams {
    pub dry_run: bool,
    /// Delete only if the object still has this uid.
    pub precondition_uid: Option<String>,
    /// Delete only if the object is still at this resourceVersion.
    pub precondition_resource_version: Option<String>,
    pub propagation: Option<Propagation>,
}

/// Which version of an object a reader saw ([`Client::get_version`](crate::Client::get_version)):
/// a new uid is a different object under the same name, a new resourceVersion a change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ObjectVersion {
    pub uid: String,
    pub resource_version: String,
}

impl ObjectVersion {
    /// The version of `obj` (empty strings for what it lacks).
    pub fn of(obj: &Value) -> Self {
        let meta = |field: &str| {
            obj.get("metadata")
                .and_then(|m| m.get(field))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Self {
            uid: meta("uid"),
            resource_version: meta("resourceVersion"),
        }
    }
}

/// What a delete did.
#[derive(Debug, Clone, PartialEq)]
pub enum Deleted {
    /// The object is gone; its last state (the HTTP API may answer with a bare `Status`, in
    /// which case this is that `Status` object).
    Gone(Value),
    /// The object is marked (deletionTimestamp) and waits for its finalizers.
    Pending(Value),
}

impl Deleted {
    /// The object (last state, or marked).
    pub fn object(&self) -> &Value {
        match self {
            Self::Gone(v) | Self::Pending(v) => v,
        }
    }
}

/// How to watch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchParams {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    /// Every change after this resourceVersion; unset or "0" starts with the current state.
    pub resource_version: Option<String>,
    /// Ask for periodic [`WatchEvent::Bookmark`]s.
    pub bookmarks: bool,
    /// End the watch after this long (the server may end it earlier).
    pub timeout: Option<Duration>,
}

impl WatchParams {
    /// Watch from `resource_version`.
    pub fn from_version(resource_version: &str) -> Self {
        Self {
            resource_version: Some(resource_version.to_string()),
            ..Self::default()
        }
    }
}

/// One watch event.
#[derive(Debug, Clone, PartialEq)]
///
/// Objects are shared: an in-process watch hands out the registry's own copy.
pub enum WatchEvent {
    Added(Arc<Value>),
    Modified(Arc<Value>),
    /// The object's last state.
    Deleted(Arc<Value>),
    /// Nothing changed, but the watch has seen everything up to this resourceVersion.
    Bookmark {
        resource_version: String,
    },
    /// The watch failed (410 Gone when its resourceVersion was compacted); it ends after this.
    Error(Status),
}

/// A live watch; it ends when the server ends it (timeout, shutdown) or after an error.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent>> + Send>>;
