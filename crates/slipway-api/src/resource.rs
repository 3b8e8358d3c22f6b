//! Building `ResourceDef`s: from a derived CustomResourceDefinition (Slipway's kinds) or from
//! a k8s-openapi type (built-in kinds). Each kind's module calls one of these once.

use std::sync::Arc;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition,
};
use k8s_openapi::{ClusterResourceScope, ListableResource, NamespaceResourceScope, Resource};
use schemars::JsonSchema;
use serde_json::{Value, json};
use slipway_apimachinery::resource::{PrinterColumn, ResourceDef, Strategy};

use crate::schema;

/// Whether a k8s-openapi scope is namespaced.
pub(crate) trait Scope {
    const NAMESPACED: bool;
}

impl Scope for NamespaceResourceScope {
    const NAMESPACED: bool = true;
}

impl Scope for ClusterResourceScope {
    const NAMESPACED: bool = false;
}

/// A printer column shown by default.
pub(crate) fn column(name: &str, type_: &str, json_path: &str, description: &str) -> PrinterColumn {
    PrinterColumn {
        name: name.into(),
        type_: type_.into(),
        format: None,
        description: description.into(),
        json_path: json_path.into(),
        priority: 0,
    }
}

/// A printer column shown only with `-o wide`.
pub(crate) fn wide_column(
    name: &str,
    type_: &str,
    json_path: &str,
    description: &str,
) -> PrinterColumn {
    PrinterColumn {
        priority: 1,
        ..column(name, type_, json_path, description)
    }
}

/// The `Age` column every kind shows last among its default columns.
pub(crate) fn age_column() -> PrinterColumn {
    column(
        "Age",
        "date",
        ".metadata.creationTimestamp",
        "Time since the object was created",
    )
}

/// A Slipway kind, described by the CRD that `#[derive(CustomResource)]` generates: names,
/// scope, printer columns and status subresource come from its `#[kube(...)]` attributes, the
/// schema from its Rust types, so the CRD installed into a management cluster (in-cluster mode)
/// and the kind served here cannot drift apart. The strategy is made from the finished schema.
pub(crate) fn from_crd(
    crd: CustomResourceDefinition,
    tracks_generation: bool,
    strategy: impl FnOnce(&Value) -> Arc<dyn Strategy>,
) -> ResourceDef {
    let spec = crd.spec;
    let version = spec.versions.into_iter().next().unwrap_or_default();
    let schema = version
        .schema
        .and_then(|s| s.open_api_v3_schema)
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    let schema = schema::finish_root(schema);
    let strategy = strategy(&schema);
    let names = spec.names;
    ResourceDef {
        group: spec.group,
        version: version.name,
        list_kind: names
            .list_kind
            .unwrap_or_else(|| format!("{}List", names.kind)),
        singular: names.singular.unwrap_or_else(|| names.kind.to_lowercase()),
        kind: names.kind,
        plural: names.plural,
        short_names: names.short_names.unwrap_or_default(),
        categories: names.categories.unwrap_or_default(),
        namespaced: spec.scope == "Namespaced",
        status_subresource: version.subresources.is_some_and(|s| s.status.is_some()),
        schema,
        printer_columns: version
            .additional_printer_columns
            .unwrap_or_default()
            .into_iter()
            .map(printer_column)
            .collect(),
        tracks_generation,
        strategy,
        scale: None,
        selectable_fields: Vec::new(),
        eviction: false,
    }
}

fn printer_column(c: CustomResourceColumnDefinition) -> PrinterColumn {
    PrinterColumn {
        name: c.name,
        type_: c.type_,
        format: c.format,
        description: c.description.unwrap_or_default(),
        json_path: c.json_path,
        priority: c.priority.unwrap_or(0),
    }
}

/// What a built-in kind adds to what its k8s-openapi type already says.
pub(crate) struct Builtin {
    pub short_names: &'static [&'static str],
    pub printer_columns: Vec<PrinterColumn>,
    pub status_subresource: bool,
    pub strategy: Arc<dyn Strategy>,
}

/// A built-in Kubernetes kind: group, version, kind, plural and scope from its k8s-openapi
/// type, the schema generated from the same type. Built-in kinds do not track generation
/// (upstream Namespace, ConfigMap, Secret, Event and Lease have none).
pub(crate) fn builtin<K>(extra: Builtin) -> ResourceDef
where
    K: Resource + ListableResource + JsonSchema,
    K::Scope: Scope,
{
    ResourceDef {
        group: K::GROUP.into(),
        version: K::VERSION.into(),
        kind: K::KIND.into(),
        list_kind: K::LIST_KIND.into(),
        plural: K::URL_PATH_SEGMENT.into(),
        singular: K::KIND.to_lowercase(),
        short_names: extra.short_names.iter().map(|s| (*s).to_string()).collect(),
        categories: Vec::new(),
        namespaced: <K::Scope as Scope>::NAMESPACED,
        status_subresource: extra.status_subresource,
        schema: schema::finish_root(schema::generate::<K>()),
        printer_columns: extra.printer_columns,
        tracks_generation: false,
        strategy: extra.strategy,
        scale: None,
        selectable_fields: Vec::new(),
        eviction: false,
    }
}
