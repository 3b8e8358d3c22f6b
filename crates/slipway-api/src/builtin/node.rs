//! core `v1` **Node**: cluster-scoped, with a status subresource; `spec.unschedulable` is
//! what `kubectl cordon` and `kubectl drain` set. Columns NAME STATUS ROLES AGE VERSION as
//! kubectl's built-in printer shows them.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use serde_json::{Value, json};
use slipway_apimachinery::resource::{ResourceDef, Strategy};
use slipway_apimachinery::{FieldError, FieldPath, meta};

use super::pod::condition_status;
use super::podspec::TAINT_EFFECTS;
use crate::resource::{Builtin, age_column, builtin, column, wide_column};

/// The label prefix whose keys name a node's roles (`node-role.kubernetes.io/control-plane`).
pub const ROLE_LABEL_PREFIX: &str = "node-role.kubernetes.io/";

/// Node: short name `no`; columns NAME STATUS ROLES AGE VERSION, wide INTERNAL-IP,
/// EXTERNAL-IP, OS-IMAGE, KERNEL-VERSION, CONTAINER-RUNTIME; selectable by
/// `spec.unschedulable`.
pub fn resource() -> ResourceDef {
    let def = builtin::<Node>(Builtin {
        short_names: &["no"],
        printer_columns: vec![
            column(
                "Status",
                "string",
                ".status.conditions",
                "Ready or NotReady (Unknown without a Ready condition), and SchedulingDisabled when cordoned",
            ),
            column(
                "Roles",
                "string",
                ".metadata.labels",
                "The node's roles, from its node-role.kubernetes.io/<role> labels",
            ),
            age_column(),
            column(
                "Version",
                "string",
                ".status.nodeInfo.kubeletVersion",
                "The kubelet version",
            ),
            wide_column(
                "Internal-IP",
                "string",
                ".status.addresses[?(@.type==\"InternalIP\")].address",
                "The node's internal IP address",
            ),
            wide_column(
                "External-IP",
                "string",
                ".status.addresses[?(@.type==\"ExternalIP\")].address",
                "The node's external IP address",
            ),
            wide_column(
                "OS-Image",
                "string",
                ".status.nodeInfo.osImage",
                "The operating system image",
            ),
            wide_column(
                "Kernel-Version",
                "string",
                ".status.nodeInfo.kernelVersion",
                "The kernel version",
            ),
            wide_column(
                "Container-Runtime",
                "string",
                ".status.nodeInfo.containerRuntimeVersion",
                "The container runtime and its version",
            ),
        ],
        status_subresource: true,
        strategy: Arc::new(NodeStrategy),
    });
    ResourceDef {
        selectable_fields: vec!["spec.unschedulable".into()],
        ..def
    }
}

/// Names are DNS subdomains; taints have a key and a known effect and are unique by
/// key and effect; `spec.podCIDR` may not change once set. A Node is created with its
/// status, as the kubelet registers it (kube-apiserver's node strategy keeps it too).
pub struct NodeStrategy;

impl Strategy for NodeStrategy {
    fn status_on_create(&self) -> bool {
        true
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let spec = FieldPath::root("spec");
        let mut seen = Vec::new();
        for (i, t) in obj
            .pointer("/spec/taints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = spec.child("taints").index(i);
            let key = t.get("key").and_then(Value::as_str).unwrap_or_default();
            if key.is_empty() {
                errs.push(FieldError::required(&at.child("key"), ""));
            } else if let Some(problem) = meta::check_qualified_name(key) {
                errs.push(FieldError::invalid(&at.child("key"), &json!(key), problem));
            }
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or_default();
            if !TAINT_EFFECTS.contains(&effect) {
                errs.push(FieldError::not_supported(
                    &at.child("effect"),
                    &json!(effect),
                    TAINT_EFFECTS,
                ));
            }
            if seen.contains(&(key, effect)) {
                errs.push(FieldError::duplicate(
                    &at,
                    &json!({"key": key, "effect": effect}),
                ));
            }
            seen.push((key, effect));
        }
        if let Some(old) = old {
            let cidr = |o: &Value| {
                o.pointer("/spec/podCIDR")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            if !cidr(old).is_empty() && cidr(old) != cidr(obj) {
                errs.push(FieldError::forbidden(
                    &spec.child("podCIDR"),
                    "node updates may not change podCIDR except from \"\" to valid",
                ));
            }
        }
        errs
    }

    fn printer_cell(&self, column: &str, obj: &Value) -> Option<Value> {
        match column {
            "Status" => Some(json!(display_status(obj))),
            "Roles" => Some(json!(roles(obj))),
            _ => None,
        }
    }
}

/// `Ready` or `NotReady` from the Ready condition (`NotReady` also when its status is
/// `Unknown`), `Unknown` without one, with `,SchedulingDisabled` when the node is cordoned,
/// as kube-apiserver's printer does.
pub fn display_status(obj: &Value) -> String {
    let mut status = match condition_status(obj, "Ready") {
        Some("True") => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }
    .to_string();
    if obj.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    status
}

/// The node's roles from its `node-role.kubernetes.io/<role>` labels (and the legacy
/// `kubernetes.io/role`), comma-separated, or `<none>`.
pub fn roles(obj: &Value) -> String {
    let mut roles: Vec<&str> = meta::labels(obj)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| match k.strip_prefix(ROLE_LABEL_PREFIX) {
            Some(role) if !role.is_empty() => Some(role),
            _ if k == "kubernetes.io/role" => v.as_str(),
            _ => None,
        })
        .collect();
    roles.sort_unstable();
    roles.dedup();
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_roles_like_kubectl() {
        let cases = [
            (json!({}), "Unknown", "<none>"),
            (
                json!({"metadata": {"labels": {"node-role.kubernetes.io/control-plane": ""}},
                       "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
                "Ready",
                "control-plane",
            ),
            (
                json!({"spec": {"unschedulable": true},
                       "status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
                "NotReady,SchedulingDisabled",
                "<none>",
            ),
            (
                json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
                "NotReady",
                "<none>",
            ),
        ];
        for (node, status, role) in cases {
            assert_eq!(NodeStrategy.printer_cell("Status", &node).unwrap(), status);
            assert_eq!(NodeStrategy.printer_cell("Roles", &node).unwrap(), role);
        }
    }

    #[test]
    fn taints_and_pod_cidr() {
        let node = json!({"spec": {"taints": [
            {"key": "a", "effect": "NoSchedule"},
            {"key": "a", "effect": "NoSchedule"},
            {"key": "", "effect": "Sometimes"},
        ]}});
        let fields: Vec<_> = NodeStrategy
            .validate(&node, None)
            .iter()
            .map(|e| e.field.as_str().to_string())
            .collect();
        assert_eq!(
            fields,
            [
                "spec.taints[1]",
                "spec.taints[2].key",
                "spec.taints[2].effect"
            ]
        );
        let old = json!({"spec": {"podCIDR": "10.0.1.0/24"}});
        let new = json!({"spec": {"podCIDR": "10.0.2.0/24"}});
        assert_eq!(NodeStrategy.validate(&new, Some(&old)).len(), 1);
        assert!(
            NodeStrategy
                .validate(&old, Some(&json!({"spec": {}})))
                .is_empty()
        );
    }
}
