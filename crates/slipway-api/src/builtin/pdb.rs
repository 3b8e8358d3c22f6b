//! `policy/v1` **PodDisruptionBudget**: namespaced, with a status subresource and generation
//! tracking. Exactly one of `minAvailable` and `maxUnavailable`, each an integer or a
//! percentage. The eviction subresource reads its status (see `slipway-registry`'s eviction).

use std::sync::Arc;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};
use slipway_apimachinery::resource::{ResourceDef, Strategy};
use slipway_apimachinery::selector::LabelSelector;
use slipway_apimachinery::{FieldError, FieldPath};

use crate::checks;
use crate::resource::{Builtin, age_column, builtin, column};

/// The values of `spec.unhealthyPodEvictionPolicy`.
pub const UNHEALTHY_POD_EVICTION_POLICIES: &[&str] = &["IfHealthyBudget", "AlwaysAllow"];

/// PodDisruptionBudget: short name `pdb`; columns NAME MIN AVAILABLE MAX UNAVAILABLE ALLOWED
/// DISRUPTIONS AGE.
pub fn resource() -> ResourceDef {
    let def = builtin::<PodDisruptionBudget>(Builtin {
        short_names: &["pdb"],
        printer_columns: vec![
            column(
                "Min Available",
                "string",
                ".spec.minAvailable",
                "Pods that must stay available",
            ),
            column(
                "Max Unavailable",
                "string",
                ".spec.maxUnavailable",
                "Pods that may be unavailable",
            ),
            column(
                "Allowed Disruptions",
                "integer",
                ".status.disruptionsAllowed",
                "Evictions allowed now",
            ),
            age_column(),
        ],
        status_subresource: true,
        strategy: Arc::new(PdbStrategy),
    });
    ResourceDef {
        tracks_generation: true,
        ..def
    }
}

/// `minAvailable` xor `maxUnavailable`, each a non-negative integer or a percentage of at
/// most 100%; a well-formed selector; a known unhealthy-pod eviction policy; non-negative
/// status counts.
pub struct PdbStrategy;

impl Strategy for PdbStrategy {
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let spec = FieldPath::root("spec");
        let set = |key: &str| {
            obj.pointer(&format!("/spec/{key}"))
                .filter(|v| !v.is_null())
        };
        match (set("minAvailable"), set("maxUnavailable")) {
            (Some(_), Some(_)) => errs.push(FieldError::invalid(
                &spec,
                obj.get("spec").unwrap_or(&Value::Null),
                "minAvailable and maxUnavailable cannot be both set",
            )),
            (None, None) => errs.push(FieldError::required(
                &spec.child("minAvailable"),
                "one of minAvailable or maxUnavailable is required",
            )),
            _ => {}
        }
        for key in ["minAvailable", "maxUnavailable"] {
            if let Some(v) = set(key) {
                match serde_json::from_value::<IntOrString>(v.clone()) {
                    Ok(v) => {
                        checks::int_or_percent(&spec.child(key), &v, Some(100), &mut errs);
                    }
                    Err(_) => errs.push(FieldError::invalid(
                        &spec.child(key),
                        v,
                        "must be an integer or a percentage",
                    )),
                }
            }
        }
        if let Some(sel) = set("selector")
            && let Err(mut e) = LabelSelector::from_json_at(sel, &spec.child("selector"))
        {
            errs.append(&mut e);
        }
        if let Some(policy) = set("unhealthyPodEvictionPolicy")
            && !policy
                .as_str()
                .is_some_and(|p| UNHEALTHY_POD_EVICTION_POLICIES.contains(&p))
        {
            errs.push(FieldError::not_supported(
                &spec.child("unhealthyPodEvictionPolicy"),
                policy,
                UNHEALTHY_POD_EVICTION_POLICIES,
            ));
        }
        let status = FieldPath::root("status");
        for key in [
            "disruptionsAllowed",
            "currentHealthy",
            "desiredHealthy",
            "expectedPods",
        ] {
            if let Some(n) = obj
                .pointer(&format!("/status/{key}"))
                .and_then(Value::as_i64)
                && n < 0
            {
                errs.push(FieldError::invalid(
                    &status.child(key),
                    &json!(n),
                    "must be greater than or equal to 0",
                ));
            }
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_budget() {
        let cases = [
            (json!({"minAvailable": 1}), vec![]),
            (json!({"maxUnavailable": "50%"}), vec![]),
            (json!({}), vec!["spec.minAvailable"]),
            (
                json!({"minAvailable": 1, "maxUnavailable": 1}),
                vec!["spec"],
            ),
            (json!({"minAvailable": "150%"}), vec!["spec.minAvailable"]),
            (json!({"maxUnavailable": -1}), vec!["spec.maxUnavailable"]),
            (
                json!({"minAvailable": 1, "unhealthyPodEvictionPolicy": "Never"}),
                vec!["spec.unhealthyPodEvictionPolicy"],
            ),
            (
                json!({"minAvailable": 1, "selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}),
                vec!["spec.selector.matchExpressions[0].operator"],
            ),
        ];
        for (spec, want) in cases {
            let obj = json!({"spec": spec});
            let got: Vec<_> = PdbStrategy
                .validate(&obj, None)
                .iter()
                .map(|e| e.field.as_str().to_string())
                .collect();
            assert_eq!(got, want, "{obj}");
        }
    }
}
