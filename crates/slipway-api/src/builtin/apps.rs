//! `apps/v1` **Deployment** and **ReplicaSet**: namespaced, with status and scale
//! subresources and generation tracking (their controllers report `observedGeneration`).
//! `spec.selector` is required, immutable and must select the template's labels.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use serde_json::{Map, Value, json};
use slipway_apimachinery::resource::{ResourceDef, Strategy};
use slipway_apimachinery::{FieldError, FieldPath, ScaleSubresource};

use super::podspec::{self, int_at};
use crate::checks;
use crate::resource::{Builtin, age_column, builtin, column, wide_column};

/// The deployment strategies.
pub const DEPLOYMENT_STRATEGIES: &[&str] = &["RollingUpdate", "Recreate"];

fn containers_images_selector() -> Vec<slipway_apimachinery::PrinterColumn> {
    vec![
        wide_column(
            "Containers",
            "string",
            ".spec.template.spec.containers[*].name",
            "The containers of the pod template",
        ),
        wide_column(
            "Images",
            "string",
            ".spec.template.spec.containers[*].image",
            "The images of the pod template",
        ),
        wide_column(
            "Selector",
            "string",
            ".spec.selector",
            "The label selector of the pods",
        ),
    ]
}

/// Deployment: short name `deploy`, category `all`; columns NAME READY UP-TO-DATE AVAILABLE
/// AGE (wide CONTAINERS IMAGES SELECTOR); `/status` and `/scale`.
pub fn deployment() -> ResourceDef {
    let mut columns = vec![
        column(
            "Ready",
            "string",
            ".status.readyReplicas",
            "Ready replicas out of desired replicas",
        ),
        column(
            "Up-to-date",
            "integer",
            ".status.updatedReplicas",
            "Replicas running the current pod template",
        ),
        column(
            "Available",
            "integer",
            ".status.availableReplicas",
            "Replicas available to users",
        ),
        age_column(),
    ];
    columns.extend(containers_images_selector());
    let def = builtin::<Deployment>(Builtin {
        short_names: &["deploy"],
        printer_columns: columns,
        status_subresource: true,
        strategy: Arc::new(DeploymentStrategy),
    });
    ResourceDef {
        categories: vec!["all".into()],
        tracks_generation: true,
        scale: Some(ScaleSubresource::replicas()),
        ..def
    }
}

/// ReplicaSet: short name `rs`, category `all`; columns NAME DESIRED CURRENT READY AGE (wide
/// CONTAINERS IMAGES SELECTOR); `/status` and `/scale`.
pub fn replica_set() -> ResourceDef {
    let mut columns = vec![
        column("Desired", "integer", ".spec.replicas", "Desired replicas"),
        column(
            "Current",
            "integer",
            ".status.replicas",
            "Replicas that exist",
        ),
        column(
            "Ready",
            "integer",
            ".status.readyReplicas",
            "Ready replicas",
        ),
        age_column(),
    ];
    columns.extend(containers_images_selector());
    let def = builtin::<ReplicaSet>(Builtin {
        short_names: &["rs"],
        printer_columns: columns,
        status_subresource: true,
        strategy: Arc::new(ReplicaSetStrategy),
    });
    ResourceDef {
        categories: vec!["all".into()],
        tracks_generation: true,
        scale: Some(ScaleSubresource::replicas()),
        selectable_fields: vec!["status.replicas".into()],
        ..def
    }
}

fn ensure_object<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    let slot = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

fn default_common(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.get("replicas").is_none_or(Value::is_null) {
        spec.insert("replicas".into(), json!(1));
    }
    if let Some(template_spec) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
        podspec::default_pod_spec(template_spec, false);
    }
}

fn printer_cells(column: &str, obj: &Value) -> Option<Value> {
    let template = obj.pointer("/spec/template/spec");
    match column {
        "Containers" => Some(podspec::container_names(template)),
        "Images" => Some(podspec::container_images(template)),
        "Selector" => Some(podspec::selector_text(obj)),
        _ => None,
    }
}

/// Defaults as upstream (`replicas` 1, `RollingUpdate` with 25% surge and unavailability,
/// `revisionHistoryLimit` 10, `progressDeadlineSeconds` 600, the template's pod spec);
/// validation of the selector, template, replicas and strategy.
pub struct DeploymentStrategy;

impl Strategy for DeploymentStrategy {
    fn default(&self, obj: &mut Value) {
        default_common(obj);
        let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        spec.entry("revisionHistoryLimit").or_insert(json!(10));
        spec.entry("progressDeadlineSeconds").or_insert(json!(600));
        let Some(strategy) = ensure_object(spec, "strategy") else {
            return;
        };
        if strategy
            .get("type")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            strategy.insert("type".into(), json!("RollingUpdate"));
        }
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(rolling) = ensure_object(strategy, "rollingUpdate")
        {
            rolling.entry("maxSurge").or_insert(json!("25%"));
            rolling.entry("maxUnavailable").or_insert(json!("25%"));
        }
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        podspec::check_selector_and_template(obj, old, &mut errs);
        podspec::check_replicas(obj, &mut errs);
        let strategy = FieldPath::root("spec").child("strategy");
        let kind = obj
            .pointer("/spec/strategy/type")
            .and_then(Value::as_str)
            .unwrap_or("RollingUpdate");
        if !DEPLOYMENT_STRATEGIES.contains(&kind) {
            errs.push(FieldError::not_supported(
                &strategy.child("type"),
                &json!(kind),
                DEPLOYMENT_STRATEGIES,
            ));
        }
        let rolling = obj.pointer("/spec/strategy/rollingUpdate");
        if kind == "Recreate" && rolling.is_some_and(|r| !r.is_null()) {
            errs.push(FieldError::forbidden(
                &strategy.child("rollingUpdate"),
                "may not be specified when strategy `type` is 'Recreate'",
            ));
        }
        if kind == "RollingUpdate"
            && let Some(rolling) = rolling
        {
            let path = strategy.child("rollingUpdate");
            let parse = |key: &str, errs: &mut Vec<FieldError>| {
                let v = rolling.get(key)?;
                let v = serde_json::from_value(v.clone()).ok().or_else(|| {
                    errs.push(FieldError::invalid(
                        &path.child(key),
                        v,
                        "must be an integer or a percentage",
                    ));
                    None
                })?;
                checks::int_or_percent(&path.child(key), &v, Some(100), errs)
            };
            let surge_zero = parse("maxSurge", &mut errs);
            let unavailable_zero = parse("maxUnavailable", &mut errs);
            if surge_zero == Some(true) && unavailable_zero == Some(true) {
                errs.push(FieldError::invalid(
                    &path.child("maxUnavailable"),
                    rolling.get("maxUnavailable").unwrap_or(&Value::Null),
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
        }
        errs
    }

    fn printer_cell(&self, column: &str, obj: &Value) -> Option<Value> {
        match column {
            "Ready" => Some(json!(format!(
                "{}/{}",
                int_at(obj, "/status/readyReplicas"),
                int_at(obj, "/spec/replicas")
            ))),
            "Up-to-date" => Some(json!(int_at(obj, "/status/updatedReplicas"))),
            "Available" => Some(json!(int_at(obj, "/status/availableReplicas"))),
            other => printer_cells(other, obj),
        }
    }
}

/// Defaults `replicas` to 1 and the template's pod spec; validates selector, template and
/// replicas.
pub struct ReplicaSetStrategy;

impl Strategy for ReplicaSetStrategy {
    fn default(&self, obj: &mut Value) {
        default_common(obj);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        podspec::check_selector_and_template(obj, old, &mut errs);
        podspec::check_replicas(obj, &mut errs);
        errs
    }

    fn printer_cell(&self, column: &str, obj: &Value) -> Option<Value> {
        match column {
            "Current" => Some(json!(int_at(obj, "/status/replicas"))),
            "Ready" => Some(json!(int_at(obj, "/status/readyReplicas"))),
            other => printer_cells(other, obj),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}},
            },
        })
    }

    #[test]
    fn deployment_defaults_like_upstream() {
        let mut d = deploy();
        DeploymentStrategy.default(&mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert!(d["spec"]["template"]["spec"].get("tolerations").is_none());
        assert!(DeploymentStrategy.validate(&d, None).is_empty());
        assert_eq!(DeploymentStrategy.printer_cell("Ready", &d).unwrap(), "0/1");
        assert_eq!(
            DeploymentStrategy.printer_cell("Images", &d).unwrap(),
            "nginx"
        );
        assert_eq!(
            DeploymentStrategy.printer_cell("Selector", &d).unwrap(),
            "app=web"
        );
    }

    #[test]
    fn deployment_validation_names_the_field() {
        type Edit = fn(&mut Value);
        let cases: [(Edit, &str); 5] = [
            (|d| d["spec"]["replicas"] = json!(-1), "spec.replicas"),
            (
                |d| d["spec"]["strategy"] = json!({"type": "Blue"}),
                "spec.strategy.type",
            ),
            (
                |d| d["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {}}),
                "spec.strategy.rollingUpdate",
            ),
            (
                |d| {
                    d["spec"]["strategy"] = json!({"type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}})
                },
                "spec.strategy.rollingUpdate.maxUnavailable",
            ),
            (
                |d| {
                    d["spec"]["strategy"] = json!({"type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "150%"}})
                },
                "spec.strategy.rollingUpdate.maxSurge",
            ),
        ];
        for (edit, field) in cases {
            let mut d = deploy();
            edit(&mut d);
            let errs = DeploymentStrategy.validate(&d, None);
            assert_eq!(errs.len(), 1, "{d}: {errs:?}");
            assert_eq!(errs[0].field.as_str(), field);
        }
    }

    #[test]
    fn replica_set_defaults_and_columns() {
        let mut rs = deploy();
        rs["kind"] = json!("ReplicaSet");
        ReplicaSetStrategy.default(&mut rs);
        assert_eq!(rs["spec"]["replicas"], 1);
        assert!(rs["spec"].get("strategy").is_none());
        assert!(ReplicaSetStrategy.validate(&rs, None).is_empty());
        assert_eq!(ReplicaSetStrategy.printer_cell("Current", &rs).unwrap(), 0);
        let defs = [deployment(), replica_set()];
        assert!(
            defs.iter()
                .all(|d| d.scale.is_some() && d.tracks_generation)
        );
    }
}
