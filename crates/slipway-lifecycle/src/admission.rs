//! Cluster admission: the ClusterClass a Cluster names fills its defaults and enforces its
//! policy, and the provider's catalog refuses what cannot be built, all at apply time with the
//! field and the reason.
//!
//! Defaults only fill what the Cluster leaves unset. Policy and catalog are checked on create
//! and whenever the spec changes, never on a write that leaves the spec alone (status updates,
//! finalizer removal): a class tightened later never blocks a running cluster's controllers
//! or its deletion.

use serde_json::{Value, json};
use slipway_api::checks;
use slipway_api::cluster::{CapacityType, ClusterSpec};
use slipway_api::clusterclass::{ClassPolicy, ClusterClassSpec};
use slipway_apimachinery::{Admission, FieldError, FieldPath, Lookup};
use slipway_provider::Catalog;

use crate::resolve;

/// Admission of `slipway.dev` Clusters.
pub struct ClusterAdmission {
    catalog: Option<Catalog>,
}

impl ClusterAdmission {
    /// With `catalog`, specs the provider cannot satisfy are refused too.
    pub fn new(catalog: Option<Catalog>) -> Self {
        Self { catalog }
    }
}

fn class_of(
    obj: &Value,
    lookup: &dyn Lookup,
) -> Result<Option<(String, ClusterClassSpec)>, FieldError> {
    let Some(name) = obj.pointer("/spec/class").and_then(Value::as_str) else {
        return Ok(None);
    };
    let path = FieldPath::root("spec").child("class");
    let Some(class) = lookup.get("slipway.dev", "ClusterClass", None, name) else {
        return Err(FieldError::invalid(
            &path,
            &Value::from(name),
            format!("no ClusterClass named {name:?} exists"),
        ));
    };
    let spec = class
        .get("spec")
        .cloned()
        .and_then(|s| serde_json::from_value::<ClusterClassSpec>(s).ok())
        .unwrap_or_default();
    Ok(Some((name.to_string(), spec)))
}

/// Set `obj[pointer]` to `value` when it is unset.
fn fill(obj: &mut Value, path: &[&str], value: Value) {
    let mut node = obj;
    for (i, key) in path.iter().enumerate() {
        let Some(map) = node.as_object_mut() else {
            return;
        };
        if i + 1 == path.len() {
            map.entry(key.to_string()).or_insert(value);
            return;
        }
        node = map.entry(key.to_string()).or_insert_with(|| json!({}));
    }
}

impl Admission for ClusterAdmission {
    fn group(&self) -> &str {
        "slipway.dev"
    }

    fn kind(&self) -> &str {
        "Cluster"
    }

    fn mutate(
        &self,
        obj: &mut Value,
        _old: Option<&Value>,
        lookup: &dyn Lookup,
    ) -> Vec<FieldError> {
        let (_, class) = match class_of(obj, lookup) {
            Ok(Some(c)) => c,
            Ok(None) => return Vec::new(),
            Err(e) => return vec![e],
        };
        if let Some(tier) = &class.tier {
            fill(obj, &["spec", "tier"], json!(tier));
        }
        let Some(d) = class.defaults else {
            return Vec::new();
        };
        let has_release = obj.pointer("/spec/release").is_some();
        if let Some(v) = d.version
            && !has_release
        {
            fill(obj, &["spec", "version"], json!(v));
        }
        if let Some(r) = d.control_plane_replicas {
            fill(obj, &["spec", "controlPlane", "replicas"], json!(r));
        }
        if let Some(t) = d.control_plane_machine_type {
            fill(obj, &["spec", "controlPlane", "machineType"], json!(t));
        }
        if let Some(t) = d.node_pool_machine_type
            && let Some(pools) = obj
                .pointer_mut("/spec/nodePools")
                .and_then(Value::as_array_mut)
        {
            for pool in pools {
                fill(pool, &["machineType"], json!(t));
            }
        }
        if let Some(ttl) = d.ttl {
            fill(obj, &["spec", "ttl"], json!(ttl));
        }
        Vec::new()
    }

    fn validate(&self, obj: &Value, old: Option<&Value>, lookup: &dyn Lookup) -> Vec<FieldError> {
        if let Some(old) = old
            && old.get("spec") == obj.get("spec")
        {
            return Vec::new();
        }
        let Some(spec) = obj
            .get("spec")
            .cloned()
            .and_then(|s| serde_json::from_value::<ClusterSpec>(s).ok())
        else {
            return Vec::new();
        };
        let mut errs = Vec::new();
        match class_of(obj, lookup) {
            Ok(Some((name, class))) => {
                if let Some(policy) = &class.policy {
                    check_policy(&name, policy, &spec, self.catalog.as_ref(), &mut errs);
                }
            }
            Ok(None) => {}
            Err(e) => errs.push(e),
        }
        if let Some(catalog) = &self.catalog
            && let Err(problems) = resolve(&spec, catalog)
        {
            for p in problems {
                errs.push(FieldError::invalid(
                    &FieldPath::root(&p.field),
                    &value_at(obj, &p.field),
                    p.message,
                ));
            }
        }
        errs
    }
}

/// The value at a dotted field path with `[i]` indices (for the error's `value`).
fn value_at(obj: &Value, field: &str) -> Value {
    let mut node = obj;
    for part in field.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let Some(next) = node.get(key) else {
            return Value::Null;
        };
        node = match index {
            Some(i) => match next.get(i) {
                Some(v) => v,
                None => return Value::Null,
            },
            None => next,
        };
    }
    node.clone()
}

fn version_allowed(version: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|a| {
        version == a
            || version
                .strip_prefix(a.as_str())
                .is_some_and(|rest| rest.starts_with('.') && a.matches('.').count() == 1)
    })
}

fn check_policy(
    class: &str,
    policy: &ClassPolicy,
    spec: &ClusterSpec,
    catalog: Option<&Catalog>,
    errs: &mut Vec<FieldError>,
) {
    let root = FieldPath::root("spec");
    let by = format!("by ClusterClass {class:?}");
    if let (Some(allowed), Some(version)) = (&policy.allowed_versions, &spec.version)
        && !version_allowed(version, allowed)
    {
        errs.push(FieldError::invalid(
            &root.child("version"),
            &Value::from(version.clone()),
            format!(
                "not allowed {by}: allowed versions are {}",
                allowed.join(", ")
            ),
        ));
    }
    if let Some(allowed) = &policy.allowed_regions
        && !allowed.contains(&spec.infrastructure.region)
    {
        errs.push(FieldError::invalid(
            &root.child("infrastructure").child("region"),
            &Value::from(spec.infrastructure.region.clone()),
            format!(
                "not allowed {by}: allowed regions are {}",
                allowed.join(", ")
            ),
        ));
    }
    let cp = spec.control_plane.clone().unwrap_or_default();
    if let Some(allowed) = &policy.control_plane_replicas {
        let replicas = cp.replicas.unwrap_or(1);
        if !allowed.contains(&replicas) {
            let shown: Vec<String> = allowed.iter().map(ToString::to_string).collect();
            errs.push(FieldError::invalid(
                &root.child("controlPlane").child("replicas"),
                &Value::from(replicas),
                format!(
                    "not allowed {by}: allowed control-plane replicas are {}",
                    shown.join(", ")
                ),
            ));
        }
    }
    if let Some(min) = policy.min_zones {
        let zones = match &spec.infrastructure.zones {
            Some(z) if !z.is_empty() => z.len(),
            _ => catalog
                .and_then(|c| c.region(&spec.infrastructure.region))
                .map_or(0, |r| r.zones.len()),
        };
        if i32::try_from(zones).unwrap_or(i32::MAX) < min {
            errs.push(FieldError::invalid(
                &root.child("infrastructure").child("zones"),
                &Value::from(zones),
                format!("{by}, a cluster spreads over at least {min} zones"),
            ));
        }
    }
    if let Some(allowed) = &policy.allowed_machine_types {
        let mut check = |path: FieldPath, t: Option<&String>| match t {
            Some(t) if !allowed.contains(t) => errs.push(FieldError::invalid(
                &path,
                &Value::from(t.clone()),
                format!(
                    "not allowed {by}: allowed machine types are {}",
                    allowed.join(", ")
                ),
            )),
            Some(_) => {}
            None => errs.push(FieldError::required(
                &path,
                format!("{by}, name one of {}", allowed.join(", ")),
            )),
        };
        check(
            root.child("controlPlane").child("machineType"),
            cp.machine_type.as_ref(),
        );
        for (i, pool) in spec.node_pools.iter().flatten().enumerate() {
            check(
                root.child("nodePools").index(i).child("machineType"),
                pool.machine_type.as_ref(),
            );
        }
    }
    for (i, pool) in spec.node_pools.iter().flatten().enumerate() {
        let at = root.child("nodePools").index(i);
        if policy.allow_spot == Some(false) && pool.capacity_type == Some(CapacityType::Spot) {
            errs.push(FieldError::invalid(
                &at.child("capacityType"),
                &Value::from("spot"),
                format!("spot capacity is not allowed {by}"),
            ));
        }
        if let Some(max) = policy.max_nodes_per_pool {
            let asked = pool.max_replicas.or(pool.replicas).unwrap_or(0);
            if asked > max {
                errs.push(FieldError::invalid(
                    &at.child("maxReplicas"),
                    &Value::from(asked),
                    format!("{by}, a pool has at most {max} machines"),
                ));
            }
        }
    }
    if let Some(max) = &policy.max_ttl {
        let limit = checks::parse_duration(max).unwrap_or(u64::MAX);
        match spec.ttl.as_deref().map(checks::parse_duration) {
            Some(Ok(ttl)) if ttl > limit => errs.push(FieldError::invalid(
                &root.child("ttl"),
                &Value::from(spec.ttl.clone()),
                format!("longer than the {max} allowed {by}"),
            )),
            Some(_) => {}
            None => errs.push(FieldError::required(
                &root.child("ttl"),
                format!("{by}, clusters live at most {max}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    struct Classes(Vec<(String, Value)>);

    impl Lookup for Classes {
        fn get(
            &self,
            group: &str,
            kind: &str,
            _ns: Option<&str>,
            name: &str,
        ) -> Option<Arc<Value>> {
            (group == "slipway.dev" && kind == "ClusterClass")
                .then(|| {
                    self.0
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| Arc::new(v.clone()))
                })
                .flatten()
        }
    }

    fn production() -> Classes {
        Classes(vec![(
            "production".into(),
            json!({"spec": {
                "tier": "production",
                "defaults": {"version": "1.33.4", "controlPlaneReplicas": 3, "controlPlaneMachineType": "m5.large", "nodePoolMachineType": "m5.xlarge"},
                "policy": {
                    "allowedVersions": ["1.33", "1.32.5"],
                    "allowedMachineTypes": ["m5.large", "m5.xlarge"],
                    "controlPlaneReplicas": [3, 5],
                    "minZones": 2,
                    "allowSpot": false,
                    "maxNodesPerPool": 20,
                    "maxTtl": "168h",
                },
            }}),
        )])
    }

    fn cluster(spec: Value) -> Value {
        json!({"apiVersion": "slipway.dev/v1alpha1", "kind": "Cluster", "metadata": {"name": "c", "namespace": "t"}, "spec": spec})
    }

    #[test]
    fn a_short_manifest_gets_the_class_defaults() {
        let mut obj = cluster(json!({
            "class": "production",
            "infrastructure": {"region": "eu-west-1"},
            "nodePools": [{"name": "general", "replicas": 3}],
        }));
        let admission = ClusterAdmission::new(None);
        assert!(admission.mutate(&mut obj, None, &production()).is_empty());
        assert_eq!(obj.pointer("/spec/version"), Some(&json!("1.33.4")));
        assert_eq!(obj.pointer("/spec/tier"), Some(&json!("production")));
        assert_eq!(obj.pointer("/spec/controlPlane/replicas"), Some(&json!(3)));
        assert_eq!(
            obj.pointer("/spec/nodePools/0/machineType"),
            Some(&json!("m5.xlarge"))
        );
        // What the cluster says wins.
        let mut obj = cluster(
            json!({"class": "production", "version": "1.32.5", "infrastructure": {"region": "eu-west-1"}}),
        );
        admission.mutate(&mut obj, None, &production());
        assert_eq!(obj.pointer("/spec/version"), Some(&json!("1.32.5")));
    }

    #[test]
    fn policy_violations_name_the_field_and_the_rule() {
        let obj = cluster(json!({
            "class": "production",
            "version": "1.31.2",
            "ttl": "400h",
            "infrastructure": {"region": "eu-west-1", "zones": ["eu-west-1a"]},
            "controlPlane": {"replicas": 1, "machineType": "m5.large"},
            "nodePools": [{"name": "gpu", "machineType": "g5.2xlarge", "capacityType": "spot", "maxReplicas": 50}],
        }));
        let errs = ClusterAdmission::new(None).validate(&obj, None, &production());
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.version",
                "spec.controlPlane.replicas",
                "spec.infrastructure.zones",
                "spec.nodePools[0].machineType",
                "spec.nodePools[0].capacityType",
                "spec.nodePools[0].maxReplicas",
                "spec.ttl",
            ],
            "{errs:?}"
        );
        assert!(
            errs[0].detail.contains("1.33, 1.32.5"),
            "{}",
            errs[0].detail
        );
    }

    #[test]
    fn an_unknown_class_is_refused_and_unchanged_specs_are_not_rechecked() {
        let mut obj = cluster(json!({"class": "nope", "infrastructure": {"region": "eu-west-1"}}));
        let admission = ClusterAdmission::new(None);
        let errs = admission.mutate(&mut obj, None, &production());
        assert_eq!(errs[0].field.as_str(), "spec.class");
        // A status write to a cluster the class no longer allows goes through.
        let old = cluster(
            json!({"class": "production", "version": "1.30.1", "infrastructure": {"region": "eu-west-1"}}),
        );
        assert!(
            admission
                .validate(&old, Some(&old), &production())
                .is_empty()
        );
    }

    #[test]
    fn versions_match_a_minor_or_exactly() {
        let allowed = vec!["1.33".to_string(), "1.32.5".to_string()];
        assert!(version_allowed("1.33.0", &allowed));
        assert!(version_allowed("1.33.12", &allowed));
        assert!(version_allowed("1.32.5", &allowed));
        assert!(!version_allowed("1.32.6", &allowed));
        assert!(!version_allowed("1.3.1", &allowed));
        assert!(!version_allowed("1.330.1", &allowed));
    }
}
