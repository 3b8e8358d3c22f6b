//! What Pods and the pod templates of Deployments and ReplicaSets share: upstream's pod spec
//! defaulting (`SetDefaults_PodSpec`, `SetDefaults_Container`) and the structural checks of a
//! pod spec (containers present, names unique DNS labels, images given), and kubectl-style
//! text for the `Containers`, `Images` and `Selector` columns.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};
use slipway_apimachinery::selector::LabelSelector;
use slipway_apimachinery::{FieldError, FieldPath, meta};

/// The toleration every pod gets for a not-ready or unreachable node (upstream's
/// DefaultTolerationSeconds admission plugin), so that it is evicted after five minutes.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// Default a pod spec in place, as kube-apiserver does on create: restart, DNS and scheduler
/// policy, the grace period, container pull policy, termination message and port protocol.
/// `with_admission_tolerations` adds the not-ready/unreachable tolerations (pods only, not
/// templates, as upstream's admission plugin does).
pub fn default_pod_spec(spec: &mut Value, with_admission_tolerations: bool) {
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    set_if_absent(spec, "restartPolicy", json!("Always"));
    set_if_absent(spec, "terminationGracePeriodSeconds", json!(30));
    set_if_absent(spec, "dnsPolicy", json!("ClusterFirst"));
    set_if_absent(spec, "schedulerName", json!("default-scheduler"));
    set_if_absent(spec, "securityContext", json!({}));
    set_if_absent(spec, "enableServiceLinks", json!(true));
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(containers)) = spec.get_mut(list) {
            for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                default_container(c);
            }
        }
    }
    if with_admission_tolerations {
        let tolerations = spec
            .entry("tolerations")
            .or_insert_with(|| Value::Array(Vec::new()));
        if tolerations.is_null() {
            *tolerations = Value::Array(Vec::new());
        }
        if let Some(list) = tolerations.as_array_mut() {
            for key in [
                "node.kubernetes.io/not-ready",
                "node.kubernetes.io/unreachable",
            ] {
                let present = list.iter().any(|t| {
                    t.get("key").and_then(Value::as_str) == Some(key)
                        && t.get("effect")
                            .and_then(Value::as_str)
                            .is_none_or(|e| e.is_empty() || e == "NoExecute")
                });
                if !present {
                    list.push(json!({
                        "key": key,
                        "operator": "Exists",
                        "effect": "NoExecute",
                        "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
                    }));
                }
            }
        }
    }
}

fn default_container(c: &mut Map<String, Value>) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    // Upstream: Always for `:latest` or an untagged image, IfNotPresent otherwise.
    let last = image.rsplit('/').next().unwrap_or_default();
    let policy = if image.contains('@') || last.contains(':') && !last.ends_with(":latest") {
        "IfNotPresent"
    } else {
        "Always"
    };
    set_if_absent(c, "imagePullPolicy", json!(policy));
    set_if_absent(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_if_absent(c, "terminationMessagePolicy", json!("File"));
    set_if_absent(c, "resources", json!({}));
    if let Some(Value::Array(ports)) = c.get_mut("ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_if_absent(p, "protocol", json!("TCP"));
        }
    }
}

fn set_if_absent(map: &mut Map<String, Value>, key: &str, value: Value) {
    let slot = map.entry(key).or_insert(Value::Null);
    if slot.is_null() || slot.as_str().is_some_and(str::is_empty) {
        *slot = value;
    }
}

/// The restart policies a pod may have.
pub const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
/// The effects a taint or toleration may have.
pub const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// Check a pod spec at `path`: at least one container, container names unique DNS-1123
/// labels, every container with an image, a known restart policy, tolerations well formed.
pub fn check_pod_spec(spec: Option<&Value>, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let Some(spec) = spec.filter(|s| s.is_object()) else {
        errs.push(FieldError::required(path, ""));
        return;
    };
    let containers = spec.get("containers").and_then(Value::as_array);
    if containers.is_none_or(Vec::is_empty) {
        errs.push(FieldError::required(&path.child("containers"), ""));
    }
    let mut names = BTreeSet::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = path.child(list).index(i);
            match c.get("name").and_then(Value::as_str) {
                None | Some("") => errs.push(FieldError::required(&at.child("name"), "")),
                Some(name) => {
                    if let Some(problem) = meta::check_dns1123_label(name) {
                        errs.push(FieldError::invalid(
                            &at.child("name"),
                            &json!(name),
                            problem,
                        ));
                    } else if !names.insert(name.to_string()) {
                        errs.push(FieldError::duplicate(&at.child("name"), &json!(name)));
                    }
                }
            }
            if c.get("image")
                .and_then(Value::as_str)
                .is_none_or(|i| i.trim().is_empty())
            {
                errs.push(FieldError::required(&at.child("image"), ""));
            }
        }
    }
    if let Some(policy) = spec.get("restartPolicy")
        && !policy
            .as_str()
            .is_some_and(|p| RESTART_POLICIES.contains(&p))
    {
        errs.push(FieldError::not_supported(
            &path.child("restartPolicy"),
            policy,
            RESTART_POLICIES,
        ));
    }
    check_tolerations(spec, path, errs);
}

fn check_tolerations(spec: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    for (i, t) in spec
        .get("tolerations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = path.child("tolerations").index(i);
        let key = t.get("key").and_then(Value::as_str).unwrap_or_default();
        let operator = t.get("operator").and_then(Value::as_str).unwrap_or("Equal");
        match operator {
            "Exists" => {
                if t.get("value")
                    .and_then(Value::as_str)
                    .is_some_and(|v| !v.is_empty())
                {
                    errs.push(FieldError::invalid(
                        &at.child("operator"),
                        &json!(operator),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            "Equal" if key.is_empty() => errs.push(FieldError::invalid(
                &at.child("operator"),
                &json!(operator),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            )),
            "Equal" => {}
            other => errs.push(FieldError::not_supported(
                &at.child("operator"),
                &json!(other),
                &["Equal", "Exists"],
            )),
        }
        if let Some(effect) = t.get("effect").and_then(Value::as_str)
            && !effect.is_empty()
            && !TAINT_EFFECTS.contains(&effect)
        {
            errs.push(FieldError::not_supported(
                &at.child("effect"),
                &json!(effect),
                TAINT_EFFECTS,
            ));
        }
        if t.get("tolerationSeconds").is_some_and(|s| !s.is_null())
            && t.get("effect").and_then(Value::as_str) != Some("NoExecute")
        {
            errs.push(FieldError::invalid(
                &at.child("effect"),
                t.get("effect").unwrap_or(&Value::Null),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
    }
}

/// Check a workload's `spec.selector` (required, non-empty, well formed) against its
/// `spec.template.metadata.labels` (the selector must select them), and on update that the
/// selector did not change (it is immutable in `apps/v1`).
pub fn check_selector_and_template(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let spec = FieldPath::root("spec");
    let selector_path = spec.child("selector");
    match obj.pointer("/spec/selector") {
        None | Some(Value::Null) => errs.push(FieldError::required(&selector_path, "")),
        Some(raw) => match LabelSelector::from_json_at(raw, &selector_path) {
            Err(mut e) => errs.append(&mut e),
            Ok(selector) if selector.is_empty() => errs.push(FieldError::invalid(
                &selector_path,
                raw,
                "empty selector is invalid for deployment",
            )),
            Ok(selector) => {
                let labels = obj
                    .pointer("/spec/template/metadata/labels")
                    .and_then(Value::as_object);
                if !selector.matches(labels) {
                    errs.push(FieldError::invalid(
                        &spec.child("template").child("metadata").child("labels"),
                        &labels.map_or(Value::Null, |l| Value::Object(l.clone())),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        },
    }
    if let Some(old) = old
        && old.pointer("/spec/selector") != obj.pointer("/spec/selector")
    {
        errs.push(FieldError::invalid(
            &selector_path,
            obj.pointer("/spec/selector").unwrap_or(&Value::Null),
            "field is immutable",
        ));
    }
    check_pod_spec(
        obj.pointer("/spec/template/spec"),
        &spec.child("template").child("spec"),
        errs,
    );
}

/// `replicas` at `path` must be a non-negative integer when present.
pub fn check_replicas(obj: &Value, errs: &mut Vec<FieldError>) {
    if let Some(n) = obj.pointer("/spec/replicas").and_then(Value::as_i64)
        && n < 0
    {
        errs.push(FieldError::invalid(
            &FieldPath::root("spec").child("replicas"),
            &json!(n),
            "must be greater than or equal to 0",
        ));
    }
}

/// Comma-separated container names of a pod spec (the `Containers` column).
pub fn container_names(spec: Option<&Value>) -> Value {
    joined(spec, "name")
}

/// Comma-separated container images of a pod spec (the `Images` column).
pub fn container_images(spec: Option<&Value>) -> Value {
    joined(spec, "image")
}

fn joined(spec: Option<&Value>, field: &str) -> Value {
    let items: Vec<&str> = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get(field).and_then(Value::as_str))
        .collect();
    Value::String(items.join(","))
}

/// A `spec.selector` as kubectl prints it (`app=web,tier in (a,b)`).
pub fn selector_text(obj: &Value) -> Value {
    match obj.pointer("/spec/selector").map(LabelSelector::from_json) {
        Some(Ok(s)) if !s.is_empty() => Value::String(s.to_string()),
        _ => Value::String("<none>".into()),
    }
}

/// An integer at a JSON pointer, 0 when absent.
pub(crate) fn int_at(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_what_kubectl_and_controllers_expect() {
        let mut spec = json!({"containers": [
            {"name": "a", "image": "nginx"},
            {"name": "b", "image": "nginx:1.27", "ports": [{"containerPort": 80}]},
            {"name": "c", "image": "registry:5000/app"},
            {"name": "d", "image": "app@sha256:abc"},
        ]});
        default_pod_spec(&mut spec, true);
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        let policies: Vec<_> = spec["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["imagePullPolicy"].as_str().unwrap())
            .collect();
        assert_eq!(
            policies,
            ["Always", "IfNotPresent", "Always", "IfNotPresent"]
        );
        assert_eq!(spec["containers"][1]["ports"][0]["protocol"], "TCP");
        assert_eq!(spec["tolerations"].as_array().unwrap().len(), 2);
        // Idempotent: defaulting twice adds nothing.
        let again = {
            let mut s = spec.clone();
            default_pod_spec(&mut s, true);
            s
        };
        assert_eq!(again, spec);
    }

    #[test]
    fn pod_spec_checks_name_the_field() {
        let cases = [
            (json!({"containers": []}), vec!["spec.containers"]),
            (
                json!({"containers": [{"name": "a"}, {"name": "a", "image": "x"}]}),
                vec!["spec.containers[0].image", "spec.containers[1].name"],
            ),
            (
                json!({"containers": [{"name": "Bad_Name", "image": "x"}], "restartPolicy": "Sometimes"}),
                vec!["spec.containers[0].name", "spec.restartPolicy"],
            ),
            (
                json!({"containers": [{"name": "a", "image": "x"}],
                       "tolerations": [{"operator": "Equal"}, {"key": "k", "effect": "Bad"},
                                       {"key": "k", "operator": "Exists", "tolerationSeconds": 5}]}),
                vec![
                    "spec.tolerations[0].operator",
                    "spec.tolerations[1].effect",
                    "spec.tolerations[2].effect",
                ],
            ),
            (json!({"containers": [{"name": "a", "image": "x"}]}), vec![]),
        ];
        for (spec, want) in cases {
            let mut errs = Vec::new();
            check_pod_spec(Some(&spec), &FieldPath::root("spec"), &mut errs);
            let got: Vec<_> = errs.iter().map(|e| e.field.as_str().to_string()).collect();
            assert_eq!(got, want, "{spec}");
        }
    }

    #[test]
    fn selector_must_match_template_and_stay() {
        let obj = |sel: Value, labels: Value| {
            json!({"spec": {"selector": sel, "template": {"metadata": {"labels": labels},
                "spec": {"containers": [{"name": "a", "image": "x"}]}}}})
        };
        let good = obj(
            json!({"matchLabels": {"app": "web"}}),
            json!({"app": "web"}),
        );
        let mut errs = Vec::new();
        check_selector_and_template(&good, None, &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        let cases = [
            (obj(Value::Null, json!({})), "spec.selector"),
            (obj(json!({}), json!({})), "spec.selector"),
            (
                obj(json!({"matchLabels": {"app": "db"}}), json!({"app": "web"})),
                "spec.template.metadata.labels",
            ),
        ];
        for (o, field) in cases {
            let mut errs = Vec::new();
            check_selector_and_template(&o, None, &mut errs);
            assert_eq!(errs.len(), 1, "{o}: {errs:?}");
            assert_eq!(errs[0].field.as_str(), field);
        }
        let changed = obj(
            json!({"matchLabels": {"app": "web", "x": "y"}}),
            json!({"app": "web", "x": "y"}),
        );
        let mut errs = Vec::new();
        check_selector_and_template(&changed, Some(&good), &mut errs);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].detail, "field is immutable");
        assert_eq!(selector_text(&good), "app=web");
    }
}
