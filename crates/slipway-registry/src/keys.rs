//! Where objects live in the store.
//!
//! `/registry/<group>/<plural>/<namespace>/<name>` for namespaced kinds and
//! `/registry/<group>/<plural>/<name>` for cluster-scoped ones, with `core` as the core group's
//! name, as kube-apiserver lays out etcd. Every object of the registry is under [`ROOT`], so one
//! store watch on it feeds the watch cache.

use slipway_apimachinery::ResourceDef;

pub const ROOT: &str = "/registry/";

/// The prefix holding every object of a kind (in `namespace` only, when given).
pub fn prefix(def: &ResourceDef, namespace: Option<&str>) -> String {
    let group = if def.group.is_empty() {
        "core"
    } else {
        &def.group
    };
    match namespace {
        Some(ns) if def.namespaced => format!("{ROOT}{group}/{}/{ns}/", def.plural),
        _ => format!("{ROOT}{group}/{}/", def.plural),
    }
}

/// The key of one object.
pub fn key(def: &ResourceDef, namespace: Option<&str>, name: &str) -> String {
    let mut key = prefix(def, namespace);
    key.push_str(name);
    key
}
