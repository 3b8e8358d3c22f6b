//! What both OpenAPI versions share when assembling a document: the served group-versions,
//! the grouping of operations by path, and the closure of referenced definitions.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};
use slipway_apimachinery::ResourceDef;

use super::meta::{self, Refs};
use super::names;
use super::routes::{Param, Route};
use super::schema;

/// The title and version in every document's `info`.
pub(crate) const TITLE: &str = "Slipway";
pub(crate) const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

/// The served (group, version) pairs, sorted, the core group first.
pub(crate) fn group_versions(defs: &[ResourceDef]) -> Vec<(String, String)> {
    let set: BTreeSet<(String, String)> = defs
        .iter()
        .map(|d| (d.group.clone(), d.version.clone()))
        .collect();
    set.into_iter().collect()
}

/// The served groups (without the core group), sorted.
pub(crate) fn groups(defs: &[ResourceDef]) -> Vec<String> {
    let set: BTreeSet<&str> = defs
        .iter()
        .filter(|d| !d.group.is_empty())
        .map(|d| d.group.as_str())
        .collect();
    set.into_iter().map(str::to_string).collect()
}

pub(crate) fn defs_in<'a>(
    defs: &'a [ResourceDef],
    group: &str,
    version: &str,
) -> Vec<&'a ResourceDef> {
    defs.iter()
        .filter(|d| d.group == group && d.version == version)
        .collect()
}

/// The kind and list schemas of `defs`, by definition name.
pub(crate) fn kind_schemas(defs: &[&ResourceDef], refs: Refs) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for def in defs {
        out.insert(
            names::definition_name(&def.group, &def.version, &def.kind),
            schema::kind_schema(def, refs),
        );
        out.insert(
            names::definition_name(&def.group, &def.version, &def.list_kind),
            schema::list_schema(def, refs),
        );
    }
    out
}

/// Every `$ref` target (definition name) in `value`.
fn refs_in(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "$ref"
                    && let Some(name) = v.as_str().and_then(|r| r.strip_prefix(prefix))
                {
                    out.push(name.to_string());
                }
                refs_in(v, prefix, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs_in(v, prefix, out)),
        _ => {}
    }
}

/// Adds to `schemas` every shared definition reachable from `roots` (operations) or from the
/// schemas already in it, as upstream publishes exactly the definitions a document uses.
pub(crate) fn close_over_refs(
    schemas: &mut BTreeMap<String, Value>,
    roots: &[&Value],
    refs: Refs,
    served: &[(String, String)],
) {
    let mut pending = Vec::new();
    for root in roots {
        refs_in(root, refs.prefix(), &mut pending);
    }
    for schema in schemas.values() {
        refs_in(schema, refs.prefix(), &mut pending);
    }
    while let Some(name) = pending.pop() {
        if schemas.contains_key(&name) {
            continue;
        }
        if let Some(schema) = meta::schema(&name, refs, served) {
            refs_in(&schema, refs.prefix(), &mut pending);
            schemas.insert(name, schema);
        }
    }
}

/// Operations grouped by path, each path with the parameters all its operations share (which
/// upstream hoists to the path item) and, per operation, the rest.
pub(crate) struct PathGroup<'a> {
    pub common: Vec<Param>,
    pub operations: Vec<(&'a Route, Vec<Param>)>,
}

pub(crate) fn by_path(routes: &[Route]) -> BTreeMap<String, PathGroup<'_>> {
    let mut grouped: BTreeMap<String, Vec<&Route>> = BTreeMap::new();
    for route in routes {
        grouped.entry(route.path.clone()).or_default().push(route);
    }
    grouped
        .into_iter()
        .map(|(path, routes)| {
            let mut common: Vec<Param> = routes
                .first()
                .map(|first| {
                    first
                        .params
                        .iter()
                        .filter(|p| routes.iter().all(|r| r.params.contains(p)))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            common.sort_by(|a, b| a.name.cmp(b.name));
            let operations = routes
                .into_iter()
                .map(|r| {
                    (
                        r,
                        r.params
                            .iter()
                            .filter(|p| !common.contains(p))
                            .cloned()
                            .collect(),
                    )
                })
                .collect();
            (path, PathGroup { common, operations })
        })
        .collect()
}

/// `value` with the keys of every object sorted, as Go's encoder writes maps: documents and
/// their hashes are the same whatever order they were built in.
pub(crate) fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sorted(v)))
                    .collect::<Map<_, _>>(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}
