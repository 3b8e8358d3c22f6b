//! `ResourceDef`: everything the registry and the API server need to serve one kind.
//!
//! Every kind, built-in or Slipway's own, is described the way a CustomResourceDefinition
//! describes a custom resource: names, scope, an OpenAPI v3 structural schema, printer columns
//! and subresources, plus a [`Strategy`] with the kind's defaulting and semantic validation.
//! Adding a kind is adding one `ResourceDef`.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::field::FieldError;

/// A column of `kubectl get` output (a CRD's `additionalPrinterColumns`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterColumn {
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: String,
    pub format: Option<String>,
    pub description: String,
    /// A JSONPath evaluated against the object, e.g. `.status.conditions[?(@.type=="Ready")].status`.
    pub json_path: String,
    /// 0 for default columns; higher ones only show with `-o wide`.
    pub priority: i32,
}

/// Kind-specific behaviour: defaulting and semantic validation (the schema already checked
/// structure and types). Implementations are pure functions of their arguments.
pub trait Strategy: Send + Sync {
    /// Fill defaults into an object about to be written (create or update).
    fn default(&self, _obj: &mut Value) {}

    /// Check an object about to be written; `old` is the stored object on update.
    fn validate(&self, _obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        Vec::new()
    }

    /// The text of printer column `column` for `obj` when a JSONPath cannot compute it (a
    /// Pod's `Ready` is `1/2`, a Node's `Status` is `Ready,SchedulingDisabled`, as kubectl's
    /// built-in printers show them). `None` uses the column's JSONPath.
    fn printer_cell(&self, _column: &str, _obj: &Value) -> Option<Value> {
        None
    }

    /// Whether a create keeps the status it carries (for a kind with a `/status`
    /// subresource). Most kinds start without one, written later through `/status` by
    /// their controller; a Node may be created with its status, as upstream's node strategy
    /// allows, since the kubelet registers its Node with capacity and conditions in one
    /// create.
    fn status_on_create(&self) -> bool {
        false
    }
}

/// The strategy of a kind without special rules.
pub struct NoStrategy;
impl Strategy for NoStrategy {}

/// One served kind.
#[derive(Clone)]
pub struct ResourceDef {
    /// API group; empty for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    pub list_kind: String,
    /// Lower-case plural used in URLs (`clusters`).
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub namespaced: bool,
    /// Served with a `/status` subresource: the main endpoint ignores status changes and
    /// `/status` ignores everything but status.
    pub status_subresource: bool,
    /// OpenAPI v3 structural schema of the whole object (apiVersion, kind, metadata, spec, ...).
    pub schema: Value,
    pub printer_columns: Vec<PrinterColumn>,
    /// Whether metadata.generation tracks spec changes (kinds with a spec/status split).
    pub tracks_generation: bool,
    pub strategy: Arc<dyn Strategy>,
    /// Served with a `/scale` subresource (`autoscaling/v1` Scale), as a CRD's
    /// `subresources.scale` or the built-in Deployment and ReplicaSet.
    pub scale: Option<ScaleSubresource>,
    /// Fields a field selector may name besides `metadata.name` and `metadata.namespace`
    /// (upstream's per-kind selectable fields, e.g. a Pod's `spec.nodeName`).
    pub selectable_fields: Vec<String>,
    /// Served with the `/eviction` subresource (`policy/v1` Eviction): Pods only.
    pub eviction: bool,
}

/// Where the `/scale` subresource reads and writes, as a CRD's `subresources.scale` says:
/// JSON paths in the dotted form (`.spec.replicas`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleSubresource {
    /// The desired replicas, written by `PUT/PATCH .../scale` (`.spec.replicas`).
    pub spec_replicas_path: String,
    /// The observed replicas, read into the Scale's `status.replicas` (`.status.replicas`).
    pub status_replicas_path: String,
    /// A serialized label selector read into the Scale's `status.selector`
    /// (`.status.selector` for CRDs; `None` when the kind derives it from `spec.selector`).
    pub label_selector_path: Option<String>,
}

impl ScaleSubresource {
    /// The paths Deployment and ReplicaSet use.
    pub fn replicas() -> Self {
        Self {
            spec_replicas_path: ".spec.replicas".into(),
            status_replicas_path: ".status.replicas".into(),
            label_selector_path: None,
        }
    }
}

impl fmt::Debug for ResourceDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceDef")
            .field("group", &self.group)
            .field("version", &self.version)
            .field("kind", &self.kind)
            .field("plural", &self.plural)
            .field("namespaced", &self.namespaced)
            .finish_non_exhaustive()
    }
}

impl ResourceDef {
    /// `v1` for the core group, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `clusters.slipway.dev`, or `namespaces` for the core group.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Built-in Kubernetes kinds accept strategic merge patches (kubectl sends them for the
    /// types it knows); custom kinds answer 415 to them, as upstream does for CRDs.
    pub fn accepts_strategic_merge(&self) -> bool {
        // Upstream's own groups are either dot-less (`apps`, `policy`, `batch`) or `*.k8s.io`.
        !self.group.contains('.') || self.group.ends_with(".k8s.io")
    }

    /// The fields a field selector may name for this kind.
    pub fn field_selector_fields(&self) -> Vec<&str> {
        let mut fields = vec!["metadata.name"];
        if self.namespaced {
            fields.push("metadata.namespace");
        }
        fields.extend(self.selectable_fields.iter().map(String::as_str));
        fields
    }

    /// The verbs served for this kind, as discovery lists them.
    pub fn verbs(&self) -> Vec<&'static str> {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}
