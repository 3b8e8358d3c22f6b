//! Small helpers over k8s-openapi types the controllers share: label selectors, owner
//! references, conditions, readiness.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector as LabelSelectorType, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::jiff::Timestamp;
use slipway_apimachinery::selector::LabelSelector;

/// Whether `selector` selects `labels` (`metav1.LabelSelector` semantics: an empty selector
/// selects everything; an invalid one selects nothing).
pub fn selects(selector: &LabelSelectorType, labels: Option<&BTreeMap<String, String>>) -> bool {
    let Ok(value) = serde_json::to_value(selector) else {
        return false;
    };
    let Ok(parsed) = LabelSelector::from_json(&value) else {
        return false;
    };
    let labels: serde_json::Map<String, serde_json::Value> = labels
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    parsed.matches(Some(&labels))
}

/// The controller owner reference of an object, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_deref()
        .into_iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// Whether `meta` is controlled by the object with this uid.
pub fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == uid)
}

/// A controller owner reference to an object (`controller` and `blockOwnerDeletion` set, as
/// controllers write them).
pub fn controller_ref(api_version: &str, kind: &str, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The status of a pod's condition of this type.
pub fn pod_condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_deref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Whether the pod's `Ready` condition is True.
pub fn pod_ready(pod: &Pod) -> bool {
    pod_condition(pod, "Ready").is_some_and(|c| c.status == "True")
}

/// Whether a pod is available: Ready for at least `min_ready_seconds` at `now`.
pub fn pod_available(pod: &Pod, min_ready_seconds: i64, now: Timestamp) -> bool {
    match pod_condition(pod, "Ready") {
        Some(c) if c.status == "True" => {
            min_ready_seconds <= 0
                || c.last_transition_time
                    .as_ref()
                    .is_none_or(|t| now.as_second() - t.0.as_second() >= min_ready_seconds)
        }
        _ => false,
    }
}

/// The pod's phase (`Pending` when it has none yet).
pub fn pod_phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Whether a pod is active: not being deleted and not finished (upstream's `IsPodActive`).
pub fn pod_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && !matches!(pod_phase(pod), "Succeeded" | "Failed")
}

/// Whether the node's `Ready` condition is True.
pub fn node_ready(node: &Node) -> bool {
    node_condition_status(node, "Ready") == Some("True")
}

/// The status of a node condition.
pub fn node_condition_status<'a>(node: &'a Node, type_: &str) -> Option<&'a str> {
    node.status
        .as_ref()?
        .conditions
        .as_deref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// A timestamp as a k8s-openapi `Time`.
pub fn time(now: Timestamp) -> Time {
    Time(now)
}

/// Set (or replace) a pod condition, keeping `lastTransitionTime` when the status does not
/// change, as every Kubernetes component does.
pub fn set_pod_condition(conditions: &mut Vec<PodCondition>, mut new: PodCondition) {
    if let Some(existing) = conditions.iter_mut().find(|c| c.type_ == new.type_) {
        if existing.status == new.status {
            new.last_transition_time = existing.last_transition_time.clone();
        }
        *existing = new;
    } else {
        conditions.push(new);
    }
}
