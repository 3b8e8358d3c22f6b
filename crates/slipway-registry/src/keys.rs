//! Where objects live in the store.
//!
//! `<root><group>/<plural>/<namespace>/<name>` for namespaced kinds and
//! `<root><group>/<plural>/<name>` for cluster-scoped ones, with `core` as the core group's
//! name, as kube-apiserver lays out etcd. The root is [`ROOT`] (`/registry/`) for the platform's
//! own API; a registry serving one logical cluster of many in a shared store (a simulated
//! workload cluster) has its own root, such as `/clusters/<name>/registry/`. Every object of a
//! registry is under its root, so one store watch on it feeds the watch cache, and no two
//! registries with disjoint roots can see each other's objects.

use slipway_apimachinery::ResourceDef;

/// The root of the platform API's objects.
pub const ROOT: &str = "/registry/";

/// The prefix under which every logical cluster has its root.
pub const LOGICAL_CLUSTERS: &str = "/clusters/";

/// Key layout of one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    root: String,
}

impl Default for Keys {
    fn default() -> Self {
        Self {
            root: ROOT.to_string(),
        }
    }
}

impl Keys {
    /// Keys under `root`, which must start and end with `/`.
    pub fn new(root: impl Into<String>) -> Self {
        Self { root: root.into() }
    }

    /// The root of a logical cluster's objects in a store shared by many of them.
    pub fn for_logical_cluster(name: &str) -> Self {
        Self::new(format!("{LOGICAL_CLUSTERS}{name}/registry/"))
    }

    /// The prefix holding every object of the registry.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The prefix holding every object of a kind (in `namespace` only, when given).
    pub fn prefix(&self, def: &ResourceDef, namespace: Option<&str>) -> String {
        let group = if def.group.is_empty() {
            "core"
        } else {
            &def.group
        };
        match namespace {
            Some(ns) if def.namespaced => format!("{}{group}/{}/{ns}/", self.root, def.plural),
            _ => format!("{}{group}/{}/", self.root, def.plural),
        }
    }

    /// The key of one object.
    pub fn key(&self, def: &ResourceDef, namespace: Option<&str>, name: &str) -> String {
        let mut key = self.prefix(def, namespace);
        key.push_str(name);
        key
    }
}
