//! Discovery documents: the legacy per-group lists (`/api`, `/apis`, `/apis/<g>/<v>`) and the
//! aggregated `apidiscovery.k8s.io/v2` form kubectl prefers, built once from the served kinds.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};
use slipway_apimachinery::ResourceDef;

use crate::request::MediaType;

/// Media type kubectl asks for to get aggregated discovery.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const AGGREGATED_V2BETA1: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// Which aggregated discovery version an `Accept` header asks for, if any.
pub fn wants_aggregated(accept: Option<&str>) -> Option<&'static str> {
    for m in MediaType::list(accept) {
        if m.essence != "application/json" {
            continue;
        }
        match (m.param("g"), m.param("v"), m.param("as")) {
            (Some("apidiscovery.k8s.io"), Some("v2"), Some("APIGroupDiscoveryList")) => {
                return Some("v2");
            }
            (Some("apidiscovery.k8s.io"), Some("v2beta1"), Some("APIGroupDiscoveryList")) => {
                return Some("v2beta1");
            }
            (None, _, _) => return None,
            _ => continue,
        }
    }
    None
}

pub fn aggregated_content_type(version: &str) -> &'static str {
    if version == "v2beta1" {
        AGGREGATED_V2BETA1
    } else {
        AGGREGATED_V2
    }
}

/// Every discovery document, precomputed.
pub struct Discovery {
    /// Group name ("" for core) -> version -> kinds.
    groups: BTreeMap<String, BTreeMap<String, Vec<Arc<ResourceDef>>>>,
}

impl Discovery {
    pub fn new(defs: &[Arc<ResourceDef>]) -> Self {
        let mut groups: BTreeMap<String, BTreeMap<String, Vec<Arc<ResourceDef>>>> = BTreeMap::new();
        for def in defs {
            groups
                .entry(def.group.clone())
                .or_default()
                .entry(def.version.clone())
                .or_default()
                .push(Arc::clone(def));
        }
        Self { groups }
    }

    /// `/api`.
    pub fn api_versions(&self) -> Value {
        let versions: Vec<&String> = self
            .groups
            .get("")
            .map(|v| v.keys().collect())
            .unwrap_or_default();
        json!({
            "kind": "APIVersions",
            "versions": versions,
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
        })
    }

    fn group_json(name: &str, versions: &BTreeMap<String, Vec<Arc<ResourceDef>>>) -> Value {
        let list: Vec<Value> = versions
            .keys()
            .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
            .collect();
        json!({
            "name": name,
            "versions": list,
            "preferredVersion": list.first().cloned().unwrap_or(Value::Null),
        })
    }

    /// `/apis`.
    pub fn api_group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .groups
            .iter()
            .filter(|(name, _)| !name.is_empty())
            .map(|(name, versions)| Self::group_json(name, versions))
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// `/apis/<group>`.
    pub fn api_group(&self, group: &str) -> Option<Value> {
        if group.is_empty() {
            return None;
        }
        let versions = self.groups.get(group)?;
        let mut doc = Self::group_json(group, versions);
        doc["kind"] = json!("APIGroup");
        doc["apiVersion"] = json!("v1");
        Some(doc)
    }

    /// `/api/v1` or `/apis/<group>/<version>`.
    pub fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let defs = self.groups.get(group)?.get(version)?;
        let group_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        let mut resources = Vec::new();
        for def in defs {
            let mut entry = json!({
                "name": def.plural,
                "singularName": def.singular,
                "namespaced": def.namespaced,
                "kind": def.kind,
                "verbs": def.verbs(),
                "storageVersionHash": storage_version_hash(def),
            });
            if !def.short_names.is_empty() {
                entry["shortNames"] = json!(def.short_names);
            }
            if !def.categories.is_empty() {
                entry["categories"] = json!(def.categories);
            }
            resources.push(entry);
            if def.status_subresource {
                resources.push(json!({
                    "name": format!("{}/status", def.plural),
                    "singularName": "",
                    "namespaced": def.namespaced,
                    "kind": def.kind,
                    "verbs": ["get", "patch", "update"],
                }));
            }
            for sub in extra_subresources(def) {
                resources.push(json!({
                    "name": format!("{}/{}", def.plural, sub.name),
                    "singularName": "",
                    "namespaced": def.namespaced,
                    "group": sub.group,
                    "version": sub.version,
                    "kind": sub.kind,
                    "verbs": sub.verbs,
                }));
            }
        }
        Some(
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
        )
    }

    /// Aggregated discovery for `/api` (`legacy`) or `/apis`.
    pub fn aggregated(&self, legacy: bool, version: &str) -> Value {
        let items: Vec<Value> = self
            .groups
            .iter()
            .filter(|(name, _)| name.is_empty() == legacy)
            .map(|(name, versions)| {
                let versions: Vec<Value> = versions
                    .iter()
                    .map(|(v, defs)| {
                        let resources: Vec<Value> =
                            defs.iter().map(|d| aggregated_resource(d)).collect();
                        json!({"version": v, "resources": resources, "freshness": "Current"})
                    })
                    .collect();
                let metadata = if name.is_empty() {
                    json!({"creationTimestamp": null})
                } else {
                    json!({"name": name, "creationTimestamp": null})
                };
                json!({"metadata": metadata, "versions": versions})
            })
            .collect();
        json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": format!("apidiscovery.k8s.io/{version}"),
            "metadata": {},
            "items": items,
        })
    }
}

fn aggregated_resource(def: &ResourceDef) -> Value {
    let kind = json!({"group": def.group, "version": def.version, "kind": def.kind});
    let mut entry = json!({
        "resource": def.plural,
        "responseKind": kind,
        "scope": if def.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": def.singular,
        "verbs": def.verbs(),
    });
    if !def.short_names.is_empty() {
        entry["shortNames"] = json!(def.short_names);
    }
    if !def.categories.is_empty() {
        entry["categories"] = json!(def.categories);
    }
    let mut subresources = Vec::new();
    if def.status_subresource {
        subresources.push(json!({
            "subresource": "status",
            "responseKind": kind,
            "verbs": ["get", "patch", "update"],
        }));
    }
    for sub in extra_subresources(def) {
        subresources.push(json!({
            "subresource": sub.name,
            "responseKind": {"group": sub.group, "version": sub.version, "kind": sub.kind},
            "verbs": sub.verbs,
        }));
    }
    if !subresources.is_empty() {
        entry["subresources"] = Value::Array(subresources);
    }
    entry
}

/// A subresource besides `status`, as discovery describes it.
struct ExtraSubresource {
    name: &'static str,
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    verbs: &'static [&'static str],
}

/// The subresources besides `status` a kind serves: `scale` answers an `autoscaling/v1`
/// Scale; `eviction` takes a `policy/v1` Eviction (kubectl drain looks for `pods/eviction`
/// with that group and version before it evicts).
fn extra_subresources(def: &ResourceDef) -> Vec<ExtraSubresource> {
    let mut out = Vec::new();
    if def.scale.is_some() {
        out.push(ExtraSubresource {
            name: "scale",
            group: "autoscaling",
            version: "v1",
            kind: "Scale",
            verbs: &["get", "patch", "update"],
        });
    }
    if def.eviction {
        out.push(ExtraSubresource {
            name: "eviction",
            group: "policy",
            version: "v1",
            kind: "Eviction",
            verbs: &["create"],
        });
    }
    out
}

/// A stable hash of a kind's storage identity (what `storageVersionHash` is for).
fn storage_version_hash(def: &ResourceDef) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("{}/{}/{}", def.group, def.version, def.kind));
    base64::engine::general_purpose::STANDARD.encode(&digest[..8])
}
