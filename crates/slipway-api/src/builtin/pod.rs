//! core `v1` **Pod**: namespaced, with a status subresource and the `eviction` subresource;
//! `kubectl get pods` columns as kubectl's built-in printer shows them.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Map, Value, json};
use slipway_apimachinery::resource::{ResourceDef, Strategy};
use slipway_apimachinery::{FieldError, FieldPath};

use super::podspec;
use crate::resource::{Builtin, age_column, builtin, column, wide_column};

/// The phases a pod can be in.
pub const PHASES: &[&str] = &["Pending", "Running", "Succeeded", "Failed", "Unknown"];

/// The fields of a pod a field selector may name (upstream's `PodToSelectableFields`).
pub const SELECTABLE_FIELDS: &[&str] = &[
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];

/// Pod: short name `po`, category `all`; columns NAME READY STATUS RESTARTS AGE, wide IP and
/// NODE; `/status` and `/eviction` subresources; selectable by node, phase and IP.
pub fn resource() -> ResourceDef {
    let def = builtin::<Pod>(Builtin {
        short_names: &["po"],
        printer_columns: vec![
            column(
                "Ready",
                "string",
                ".status.containerStatuses",
                "Ready containers out of all containers",
            ),
            column(
                "Status",
                "string",
                ".status.phase",
                "The pod's status as kubectl summarises it",
            ),
            column(
                "Restarts",
                "integer",
                ".status.containerStatuses[0].restartCount",
                "Container restarts",
            ),
            age_column(),
            wide_column("IP", "string", ".status.podIP", "The pod's IP address"),
            wide_column(
                "Node",
                "string",
                ".spec.nodeName",
                "The node the pod is bound to",
            ),
            wide_column(
                "Nominated Node",
                "string",
                ".status.nominatedNodeName",
                "The node the scheduler nominated for preemption",
            ),
            wide_column(
                "Readiness Gates",
                "string",
                ".spec.readinessGates",
                "Readiness gates met out of all",
            ),
        ],
        status_subresource: true,
        strategy: Arc::new(PodStrategy),
    });
    ResourceDef {
        categories: vec!["all".into()],
        selectable_fields: SELECTABLE_FIELDS.iter().map(|f| (*f).to_string()).collect(),
        eviction: true,
        ..def
    }
}

/// Defaulting of the spec (see [`podspec::default_pod_spec`]) and of `status.phase`
/// (`Pending`) and `status.qosClass`; validation of the spec and of what may change after
/// creation: upstream allows only container images, `activeDeadlineSeconds` and added
/// tolerations; Slipway also allows `spec.nodeName` to be set once while empty (the binding
/// the scheduler makes; upstream uses the `binding` subresource for it).
pub struct PodStrategy;

impl Strategy for PodStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(root) = obj.as_object_mut() else {
            return;
        };
        if let Some(spec) = root.get_mut("spec") {
            podspec::default_pod_spec(spec, true);
        }
        let qos = qos_class(root.get("spec"));
        let status = root
            .entry("status")
            .or_insert_with(|| Value::Object(Map::new()));
        if status.is_null() {
            *status = Value::Object(Map::new());
        }
        if let Some(status) = status.as_object_mut() {
            if status
                .get("phase")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                status.insert("phase".into(), json!("Pending"));
            }
            status.entry("qosClass").or_insert_with(|| json!(qos));
        }
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let spec_path = FieldPath::root("spec");
        podspec::check_pod_spec(obj.get("spec"), &spec_path, &mut errs);
        if let Some(phase) = obj.pointer("/status/phase")
            && !phase.as_str().is_some_and(|p| PHASES.contains(&p))
        {
            errs.push(FieldError::not_supported(
                &FieldPath::root("status").child("phase"),
                phase,
                PHASES,
            ));
        }
        if let Some(old) = old {
            check_spec_update(obj, old, &mut errs);
        }
        errs
    }

    fn printer_cell(&self, column: &str, obj: &Value) -> Option<Value> {
        match column {
            "Ready" => {
                let total = obj
                    .pointer("/spec/containers")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                let ready = container_statuses(obj)
                    .filter(|s| s.get("ready").and_then(Value::as_bool) == Some(true))
                    .count();
                Some(json!(format!("{ready}/{total}")))
            }
            "Status" => Some(json!(display_status(obj))),
            "Restarts" => Some(json!(
                container_statuses(obj)
                    .map(|s| podspec::int_at(s, "/restartCount"))
                    .sum::<i64>()
            )),
            "Readiness Gates" => {
                let gates = obj
                    .pointer("/spec/readinessGates")
                    .and_then(Value::as_array);
                match gates {
                    None => Some(json!("<none>")),
                    Some(gates) if gates.is_empty() => Some(json!("<none>")),
                    Some(gates) => {
                        let met = gates
                            .iter()
                            .filter(|g| {
                                let t = g.get("conditionType");
                                condition_status(obj, t.and_then(Value::as_str).unwrap_or(""))
                                    == Some("True")
                            })
                            .count();
                        Some(json!(format!("{met}/{}", gates.len())))
                    }
                }
            }
            "IP" | "Node" | "Nominated Node" => None,
            _ => None,
        }
    }
}

fn container_statuses(obj: &Value) -> impl Iterator<Item = &Value> {
    obj.pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The status of condition `type_` of a pod or node, if it has one.
pub fn condition_status<'a>(obj: &'a Value, type_: &str) -> Option<&'a str> {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
}

/// The `STATUS` kubectl prints for a pod: `Terminating` once deleted, else the pod's reason
/// (`Evicted`, `NodeLost`), else a waiting or terminated container's reason
/// (`ContainerCreating`, `CrashLoopBackOff`, `Completed`), else the phase.
pub fn display_status(obj: &Value) -> String {
    let str_at = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|d| !d.is_null())
    {
        return "Terminating".into();
    }
    let mut reason = str_at("/status/reason")
        .or_else(|| str_at("/status/phase"))
        .unwrap_or("Pending")
        .to_string();
    for s in container_statuses(obj) {
        let waiting = s.pointer("/state/waiting/reason").and_then(Value::as_str);
        let terminated = s
            .pointer("/state/terminated/reason")
            .and_then(Value::as_str);
        if let Some(r) = waiting.or(terminated).filter(|r| !r.is_empty()) {
            reason = r.to_string();
        }
    }
    reason
}

/// Upstream's QoS class: `Guaranteed` when every container has equal, non-zero CPU and memory
/// requests and limits; `BestEffort` when none has any; `Burstable` otherwise.
pub fn qos_class(spec: Option<&Value>) -> &'static str {
    let containers: Vec<&Value> = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        any |= requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty());
        for res in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(res));
            // A request defaults to the limit when only the limit is given.
            let request = requests.and_then(|r| r.get(res)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Pod spec fields are immutable after creation except container images,
/// `activeDeadlineSeconds`, additions to `tolerations`, and `nodeName` set once from empty.
fn check_spec_update(obj: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let (Some(new_spec), Some(old_spec)) = (obj.get("spec"), old.get("spec")) else {
        return;
    };
    let spec_path = FieldPath::root("spec");
    let old_node = old_spec
        .get("nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    let new_node = new_spec
        .get("nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if old_node != new_node && !old_node.is_empty() {
        errs.push(FieldError::invalid(
            &spec_path.child("nodeName"),
            &json!(new_node),
            format!("field is immutable once set: the pod is bound to node {old_node:?}"),
        ));
    }
    if let (Some(new_t), Some(old_t)) = (
        new_spec.get("tolerations").and_then(Value::as_array),
        old_spec.get("tolerations").and_then(Value::as_array),
    ) && old_t.iter().any(|t| !new_t.contains(t))
    {
        errs.push(FieldError::forbidden(
            &spec_path.child("tolerations"),
            "existing toleration can not be modified except its tolerationSeconds: only additions are allowed",
        ));
    } else if new_spec.get("tolerations").is_none()
        && old_spec
            .get("tolerations")
            .and_then(Value::as_array)
            .is_some_and(|t| !t.is_empty())
    {
        errs.push(FieldError::forbidden(
            &spec_path.child("tolerations"),
            "existing toleration can not be removed",
        ));
    }
    // Everything else must be unchanged, once the mutable fields are masked.
    let masked = |spec: &Value, node: &str| {
        let mut spec = spec.clone();
        if let Some(map) = spec.as_object_mut() {
            map.remove("activeDeadlineSeconds");
            map.remove("tolerations");
            map.insert("nodeName".into(), json!(node));
            for list in ["containers", "initContainers"] {
                if let Some(Value::Array(cs)) = map.get_mut(list) {
                    for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                        c.remove("image");
                    }
                }
            }
        }
        spec
    };
    if masked(new_spec, new_node) != masked(old_spec, new_node) {
        errs.push(FieldError::forbidden(
            &spec_path,
            "pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations) or `spec.nodeName` (set once while empty)",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        let mut p = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                "resources": {"requests": {"cpu": "100m"}}}]},
        });
        PodStrategy.default(&mut p);
        p
    }

    #[test]
    fn defaults_status_and_qos() {
        let p = pod();
        assert_eq!(p["status"]["phase"], "Pending");
        assert_eq!(p["status"]["qosClass"], "Burstable");
        assert!(PodStrategy.validate(&p, None).is_empty());
        assert_eq!(
            qos_class(Some(
                &json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]})
            )),
            "Guaranteed"
        );
        assert_eq!(qos_class(Some(&json!({"containers": [{}]}))), "BestEffort");
    }

    #[test]
    fn spec_updates_allowed_and_forbidden() {
        let old = pod();
        type Edit = fn(&mut Value);
        let allowed: [Edit; 4] = [
            |p| p["spec"]["nodeName"] = json!("node-a"),
            |p| p["spec"]["containers"][0]["image"] = json!("nginx:1.28"),
            |p| p["spec"]["activeDeadlineSeconds"] = json!(60),
            |p| {
                p["spec"]["tolerations"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"key": "k", "operator": "Exists"}))
            },
        ];
        for edit in allowed {
            let mut new = old.clone();
            edit(&mut new);
            let errs = PodStrategy.validate(&new, Some(&old));
            assert!(errs.is_empty(), "{new}: {errs:?}");
        }
        let forbidden: [(Edit, &str); 3] = [
            (|p| p["spec"]["restartPolicy"] = json!("Never"), "spec"),
            (|p| p["spec"]["tolerations"] = json!([]), "spec.tolerations"),
            (
                |p| p["spec"]["containers"][0]["name"] = json!("other"),
                "spec",
            ),
        ];
        for (edit, field) in forbidden {
            let mut new = old.clone();
            edit(&mut new);
            let errs = PodStrategy.validate(&new, Some(&old));
            assert_eq!(errs.len(), 1, "{new}: {errs:?}");
            assert_eq!(errs[0].field.as_str(), field);
        }
        // nodeName is set once: moving a bound pod is refused.
        let mut bound = old.clone();
        bound["spec"]["nodeName"] = json!("node-a");
        let mut moved = bound.clone();
        moved["spec"]["nodeName"] = json!("node-b");
        let errs = PodStrategy.validate(&moved, Some(&bound));
        assert_eq!(errs[0].field.as_str(), "spec.nodeName");
    }

    #[test]
    fn printer_cells_like_kubectl() {
        let mut p = pod();
        let cell = |p: &Value, c: &str| PodStrategy.printer_cell(c, p).unwrap();
        assert_eq!(cell(&p, "Ready"), "0/1");
        assert_eq!(cell(&p, "Status"), "Pending");
        p["status"] = json!({"phase": "Running", "containerStatuses": [
            {"name": "web", "ready": true, "restartCount": 2, "state": {"running": {}}}]});
        assert_eq!(cell(&p, "Ready"), "1/1");
        assert_eq!(cell(&p, "Status"), "Running");
        assert_eq!(cell(&p, "Restarts"), 2);
        p["status"]["containerStatuses"][0]["state"] =
            json!({"waiting": {"reason": "CrashLoopBackOff"}});
        assert_eq!(cell(&p, "Status"), "CrashLoopBackOff");
        p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(cell(&p, "Status"), "Terminating");
        assert!(PodStrategy.printer_cell("IP", &p).is_none());
    }
}
