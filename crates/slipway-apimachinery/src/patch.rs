//! JSON merge patch (RFC 7386) and JSON patch (RFC 6902), with the errors the Kubernetes
//! apiserver gives.
//!
//! Upstream (`k8s.io/apiserver/pkg/endpoints/handlers/patch.go`, on `evanphx/json-patch`):
//!
//! - a JSON patch document that is not a list of operation objects is **400 BadRequest**;
//! - more than 10,000 operations is **413 RequestEntityTooLarge**;
//! - an operation that cannot be applied (a `test` that fails, a path that does not exist, an
//!   unknown `op`, a missing `path`) is **422 Invalid**;
//! - a merge patch that is not a JSON object is **400 BadRequest** `Invalid JSON Patch`.
//!
//! One deliberate difference: for a failed operation upstream answers 422 with the fixed text
//! "the server rejected our request due to an error in our request" and drops the detail.
//! Slipway keeps upstream's code and reason but puts the detail (worded as `evanphx/json-patch`
//! words it, e.g. `testing value /spec/version failed: test failed`) in the message, so kubectl
//! prints `The request is invalid: testing value /spec/version failed: test failed`.
//!
//! Like upstream, `replace` of a missing member of an existing object adds it (kubectl users
//! rely on `replace /metadata/labels/x` working whether or not the label exists).

use json_patch::jsonptr::{Pointer, PointerBuf};
use json_patch::{
    AddOperation, CopyOperation, MoveOperation, PatchErrorKind, PatchOperation, RemoveOperation,
    ReplaceOperation, TestOperation,
};
use serde_json::Value;

use crate::status::ApiError;

/// The most operations one JSON patch may carry (upstream's `maxJSONPatchOperations`).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Apply a JSON merge patch (RFC 7386): objects merge recursively, `null` removes a member,
/// anything else (including arrays) replaces. A patch that is not an object replaces the whole
/// target; the server rejects such patches first with [`check_merge_patch`].
pub fn apply_merge_patch(target: &Value, patch: &Value) -> Value {
    let mut doc = target.clone();
    json_patch::merge(&mut doc, patch);
    doc
}

/// Reject a merge patch document upstream would not apply to an object: anything but a JSON
/// object is `400 Invalid JSON Patch`.
#[allow(clippy::result_large_err)] // `ApiError` is the crate-wide error type.
pub fn check_merge_patch(patch: &Value) -> Result<(), ApiError> {
    if patch.is_object() {
        Ok(())
    } else {
        Err(ApiError::bad_request("Invalid JSON Patch"))
    }
}

/// Apply a JSON patch (RFC 6902) to `target`. All or nothing: on error `target` is untouched
/// (it is never modified; the result is a new value).
#[allow(clippy::result_large_err)] // `ApiError` is the crate-wide error type.
pub fn apply_json_patch(target: &Value, patch: &Value) -> Result<Value, ApiError> {
    let ops = match patch {
        // Upstream decodes `null` as an empty patch.
        Value::Null => return Ok(target.clone()),
        Value::Array(ops) => ops,
        other => {
            return Err(ApiError::bad_request(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
                json_kind(other)
            )));
        }
    };
    if let Some(bad) = ops.iter().find(|op| !op.is_object() && !op.is_null()) {
        return Err(ApiError::bad_request(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
            json_kind(bad)
        )));
    }
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(ApiError::too_large(format!(
            "Request entity too large: The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
            ops.len()
        )));
    }
    let mut doc = target.clone();
    for raw in ops {
        let op = decode_operation(raw).map_err(ApiError::unprocessable)?;
        apply_operation(&mut doc, op).map_err(ApiError::unprocessable)?;
    }
    Ok(doc)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Decode one operation object, with upstream's wording for what is missing or unknown.
fn decode_operation(raw: &Value) -> Result<PatchOperation, String> {
    let kind = raw.get("op").and_then(Value::as_str).unwrap_or("unknown");
    let member = |name: &str| raw.get(name);
    let pointer = |name: &str| -> Result<PointerBuf, String> {
        let what = if name == "from" { "from" } else { "path" };
        match member(name) {
            None | Some(Value::Null) => Err(format!(
                "{kind} operation failed to decode {what}: missing value"
            )),
            Some(Value::String(s)) => PointerBuf::parse(s.as_str()).map_err(|e| {
                format!("{kind} operation failed to decode {what}: invalid JSON pointer {s:?}: {e}")
            }),
            Some(other) => Err(format!(
                "{kind} operation failed to decode {what}: json: cannot unmarshal {} into Go value of type string",
                json_kind(other)
            )),
        }
    };
    let value = || -> Result<Value, String> {
        member("value")
            .cloned()
            .ok_or_else(|| format!("{kind} operation, missing value field: missing value"))
    };
    Ok(match kind {
        "add" => PatchOperation::Add(AddOperation {
            path: pointer("path")?,
            value: value()?,
        }),
        "remove" => PatchOperation::Remove(RemoveOperation {
            path: pointer("path")?,
        }),
        "replace" => PatchOperation::Replace(ReplaceOperation {
            path: pointer("path")?,
            value: value()?,
        }),
        "move" => PatchOperation::Move(MoveOperation {
            from: pointer("from")?,
            path: pointer("path")?,
        }),
        "copy" => PatchOperation::Copy(CopyOperation {
            from: pointer("from")?,
            path: pointer("path")?,
        }),
        "test" => PatchOperation::Test(TestOperation {
            path: pointer("path")?,
            value: value()?,
        }),
        other => return Err(format!("Unexpected kind: {other}")),
    })
}

/// Apply one operation in place, explaining a failure the way `evanphx/json-patch` does.
fn apply_operation(doc: &mut Value, op: PatchOperation) -> Result<(), String> {
    // Upstream quirks first: `replace` of a missing object member adds it, and `test` of a
    // missing member against `null` passes.
    let op = match op {
        PatchOperation::Replace(r) if parent_is_object_missing_key(doc, &r.path) => {
            PatchOperation::Add(AddOperation {
                path: r.path,
                value: r.value,
            })
        }
        PatchOperation::Test(t)
            if t.value.is_null() && parent_is_object_missing_key(doc, &t.path) =>
        {
            return Ok(());
        }
        other => other,
    };
    let Err(err) = json_patch::patch_unsafe(doc, std::slice::from_ref(&op)) else {
        return Ok(());
    };
    Err(explain(doc, &op, &err.kind))
}

fn parent_is_object_missing_key(doc: &Value, path: &Pointer) -> bool {
    let Some((parent, last)) = path.split_back() else {
        return false;
    };
    matches!(doc.pointer(parent.as_str()), Some(Value::Object(map)) if !map.contains_key(last.decoded().as_ref()))
}

fn parent_exists(doc: &Value, path: &Pointer) -> bool {
    match path.split_back() {
        Some((parent, _)) => matches!(
            doc.pointer(parent.as_str()),
            Some(Value::Object(_) | Value::Array(_))
        ),
        None => true,
    }
}

fn last_token(path: &Pointer) -> String {
    path.last()
        .map(|t| t.decoded().into_owned())
        .unwrap_or_default()
}

fn is_array_parent(doc: &Value, path: &Pointer) -> bool {
    path.split_back()
        .is_some_and(|(parent, _)| matches!(doc.pointer(parent.as_str()), Some(Value::Array(_))))
}

fn explain(doc: &Value, op: &PatchOperation, kind: &PatchErrorKind) -> String {
    let path = op.path();
    let p = path.as_str();
    match op {
        PatchOperation::Test(_) if matches!(kind, PatchErrorKind::TestFailed) => {
            format!("testing value {p} failed: test failed")
        }
        PatchOperation::Test(_) if !parent_exists(doc, path) => {
            format!("test operation does not apply: is missing path: {p}: missing value")
        }
        PatchOperation::Test(_) if is_array_parent(doc, path) => format!(
            "error in test for path: '{p}': Unable to access invalid index: {}: invalid index referenced",
            last_token(path)
        ),
        PatchOperation::Test(_) => format!("testing value {p} failed: test failed"),
        PatchOperation::Add(_) if !parent_exists(doc, path) => {
            format!("add operation does not apply: doc is missing path: \"{p}\": missing value")
        }
        PatchOperation::Add(_) => format!(
            "error in add for path: '{p}': Unable to access invalid index: {}: invalid index referenced",
            last_token(path)
        ),
        PatchOperation::Remove(_) if !parent_exists(doc, path) || path.is_root() => {
            format!("remove operation does not apply: doc is missing path: \"{p}\": missing value")
        }
        PatchOperation::Remove(_) if is_array_parent(doc, path) => format!(
            "error in remove for path: '{p}': Unable to access invalid index: {}: invalid index referenced",
            last_token(path)
        ),
        PatchOperation::Remove(_) => format!(
            "error in remove for path: '{p}': Unable to remove nonexistent key: {}: missing value",
            last_token(path)
        ),
        PatchOperation::Replace(_) if !parent_exists(doc, path) => {
            format!("replace operation does not apply: doc is missing path: {p}: missing value")
        }
        PatchOperation::Replace(_) => {
            format!("replace operation does not apply: doc is missing key: {p}: missing value")
        }
        PatchOperation::Move(m) => explain_from("move", doc, &m.from, &m.path, kind),
        PatchOperation::Copy(c) => explain_from("copy", doc, &c.from, &c.path, kind),
    }
}

fn explain_from(
    name: &str,
    doc: &Value,
    from: &Pointer,
    path: &Pointer,
    kind: &PatchErrorKind,
) -> String {
    match kind {
        PatchErrorKind::CannotMoveInsideItself => format!(
            "{name} operation does not apply: cannot move {} into its own child {}",
            from.as_str(),
            path.as_str()
        ),
        PatchErrorKind::InvalidFromPointer => format!(
            "{name} operation does not apply: doc is missing from path: {}: missing value",
            from.as_str()
        ),
        _ if !parent_exists(doc, path) => format!(
            "{name} operation does not apply: doc is missing destination path: {}: missing value",
            path.as_str()
        ),
        _ => format!(
            "error in {name} for path: '{}': Unable to access invalid index: {}: invalid index referenced",
            path.as_str(),
            last_token(path)
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster() -> Value {
        json!({
            "apiVersion": "slipway.dev/v1alpha1",
            "kind": "Cluster",
            "metadata": {"name": "payments-eu", "labels": {"tier": "production"}},
            "spec": {
                "version": "1.33.4",
                "nodePools": [{"name": "general", "replicas": 3}, {"name": "gpu", "replicas": 0}]
            }
        })
    }

    #[test]
    fn merge_patch_follows_rfc7386() {
        // Cases from RFC 7386 appendix A.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (target, patch, want) in cases {
            assert_eq!(
                apply_merge_patch(&target, &patch),
                want,
                "{target} + {patch}"
            );
        }
    }

    #[test]
    fn merge_patch_leaves_the_target_alone_and_keeps_order() {
        let target = cluster();
        let out = apply_merge_patch(&target, &json!({"spec": {"version": "1.34.0"}}));
        assert_eq!(target, cluster());
        assert_eq!(out["spec"]["version"], "1.34.0");
        let keys: Vec<&String> = out["spec"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["version", "nodePools"]);
    }

    #[test]
    fn merge_patch_documents_must_be_objects() {
        assert!(check_merge_patch(&json!({"spec": {}})).is_ok());
        for bad in [json!(null), json!([1]), json!("x"), json!(3)] {
            let err = check_merge_patch(&bad).unwrap_err();
            assert_eq!(
                (err.code, err.reason, err.message.as_str()),
                (400, "BadRequest", "Invalid JSON Patch")
            );
        }
    }

    #[test]
    fn json_patch_applies_every_operation() {
        let patch = json!([
            {"op": "test", "path": "/spec/version", "value": "1.33.4"},
            {"op": "replace", "path": "/spec/version", "value": "1.34.0"},
            {"op": "add", "path": "/spec/nodePools/-", "value": {"name": "arm", "replicas": 1}},
            {"op": "remove", "path": "/spec/nodePools/1"},
            {"op": "copy", "from": "/spec/version", "path": "/metadata/labels/version"},
            {"op": "move", "from": "/metadata/labels/tier", "path": "/metadata/labels/class"},
            {"op": "add", "path": "/metadata/annotations", "value": {"a~b/c": "x"}},
            {"op": "replace", "path": "/metadata/annotations/a~0b~1c", "value": "y"}
        ]);
        let out = apply_json_patch(&cluster(), &patch).unwrap();
        assert_eq!(out["spec"]["version"], "1.34.0");
        assert_eq!(
            out["spec"]["nodePools"],
            json!([{"name": "general", "replicas": 3}, {"name": "arm", "replicas": 1}])
        );
        assert_eq!(
            out["metadata"]["labels"],
            json!({"version": "1.34.0", "class": "production"})
        );
        assert_eq!(out["metadata"]["annotations"], json!({"a~b/c": "y"}));
    }

    #[test]
    fn replace_of_a_missing_member_adds_it_like_upstream() {
        let patch =
            json!([{"op": "replace", "path": "/metadata/labels/team", "value": "payments"}]);
        let out = apply_json_patch(&cluster(), &patch).unwrap();
        assert_eq!(out["metadata"]["labels"]["team"], "payments");
        // ...but not when the parent itself is missing.
        let patch = json!([{"op": "replace", "path": "/metadata/annotations/x", "value": "y"}]);
        let err = apply_json_patch(&cluster(), &patch).unwrap_err();
        assert_eq!(
            err.message,
            "replace operation does not apply: doc is missing path: /metadata/annotations/x: missing value"
        );
    }

    #[test]
    fn failed_operations_are_422_with_upstream_wording() {
        let cases = [
            (
                json!([{"op": "test", "path": "/spec/version", "value": "1.30.0"}]),
                "testing value /spec/version failed: test failed",
            ),
            (
                json!([{"op": "test", "path": "/spec/colour", "value": "blue"}]),
                "testing value /spec/colour failed: test failed",
            ),
            (
                json!([{"op": "test", "path": "/spec/a/b", "value": 1}]),
                "test operation does not apply: is missing path: /spec/a/b: missing value",
            ),
            (
                json!([{"op": "remove", "path": "/spec/colour"}]),
                "error in remove for path: '/spec/colour': Unable to remove nonexistent key: colour: missing value",
            ),
            (
                json!([{"op": "remove", "path": "/spec/nodePools/7"}]),
                "error in remove for path: '/spec/nodePools/7': Unable to access invalid index: 7: invalid index referenced",
            ),
            (
                json!([{"op": "add", "path": "/spec/upgrade/maxSurge", "value": 1}]),
                "add operation does not apply: doc is missing path: \"/spec/upgrade/maxSurge\": missing value",
            ),
            (
                json!([{"op": "add", "path": "/spec/nodePools/9", "value": {}}]),
                "error in add for path: '/spec/nodePools/9': Unable to access invalid index: 9: invalid index referenced",
            ),
            (
                json!([{"op": "move", "from": "/spec/nope", "path": "/spec/x"}]),
                "move operation does not apply: doc is missing from path: /spec/nope: missing value",
            ),
            (
                json!([{"op": "copy", "from": "/spec/version", "path": "/status/x/y"}]),
                "copy operation does not apply: doc is missing destination path: /status/x/y: missing value",
            ),
            (
                json!([{"op": "frobnicate", "path": "/spec"}]),
                "Unexpected kind: frobnicate",
            ),
            (json!([{"path": "/spec"}]), "Unexpected kind: unknown"),
            (json!([null]), "Unexpected kind: unknown"),
            (
                json!([{"op": "add", "value": 1}]),
                "add operation failed to decode path: missing value",
            ),
            (
                json!([{"op": "add", "path": "/spec/x"}]),
                "add operation, missing value field: missing value",
            ),
            (
                json!([{"op": "move", "path": "/spec/x"}]),
                "move operation failed to decode from: missing value",
            ),
        ];
        for (patch, want) in cases {
            let err = apply_json_patch(&cluster(), &patch).unwrap_err();
            assert_eq!((err.code, err.reason), (422, "Invalid"), "{patch}");
            assert_eq!(err.message, want, "{patch}");
        }
        let err = apply_json_patch(
            &cluster(),
            &json!([{"op": "add", "path": "spec", "value": 1}]),
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
        assert!(
            err.message
                .starts_with("add operation failed to decode path: invalid JSON pointer \"spec\""),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_failing_operation_leaves_nothing_half_applied() {
        let target = cluster();
        let patch = json!([
            {"op": "replace", "path": "/spec/version", "value": "9.9.9"},
            {"op": "test", "path": "/spec/version", "value": "1.0.0"}
        ]);
        assert!(apply_json_patch(&target, &patch).is_err());
        assert_eq!(target, cluster());
    }

    #[test]
    fn malformed_documents_are_400() {
        for (patch, want) in [
            (
                json!({"op": "add"}),
                "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
            ),
            (
                json!("x"),
                "json: cannot unmarshal string into Go value of type jsonpatch.Patch",
            ),
            (
                json!([1]),
                "json: cannot unmarshal number into Go value of type jsonpatch.Operation",
            ),
            (
                json!([[]]),
                "json: cannot unmarshal array into Go value of type jsonpatch.Operation",
            ),
        ] {
            let err = apply_json_patch(&cluster(), &patch).unwrap_err();
            assert_eq!(
                (err.code, err.reason, err.message.as_str()),
                (400, "BadRequest", want)
            );
        }
        assert_eq!(
            apply_json_patch(&cluster(), &json!(null)).unwrap(),
            cluster()
        );
        assert_eq!(apply_json_patch(&cluster(), &json!([])).unwrap(), cluster());
    }

    #[test]
    fn too_many_operations_is_413() {
        let ops: Vec<Value> = (0..=MAX_JSON_PATCH_OPERATIONS)
            .map(|_| json!({"op": "test", "path": "/kind", "value": "Cluster"}))
            .collect();
        let err = apply_json_patch(&cluster(), &Value::Array(ops)).unwrap_err();
        assert_eq!((err.code, err.reason), (413, "RequestEntityTooLarge"));
        assert_eq!(
            err.message,
            "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001"
        );
        let ops: Vec<Value> = (0..MAX_JSON_PATCH_OPERATIONS)
            .map(|_| json!({"op": "test", "path": "/kind", "value": "Cluster"}))
            .collect();
        assert!(apply_json_patch(&cluster(), &Value::Array(ops)).is_ok());
    }

    #[test]
    fn test_of_a_missing_member_against_null_passes_like_upstream() {
        let patch = json!([{"op": "test", "path": "/spec/colour", "value": null}]);
        assert_eq!(apply_json_patch(&cluster(), &patch).unwrap(), cluster());
    }
}

/// Strategic merge patch, for the built-in kinds only (upstream answers 415 for custom
/// resources, and so does Slipway for its own kinds). This is a JSON merge patch plus the
/// merge-keyed lists of the built-in kinds (containers by name, ports by containerPort, ...;
/// see `list_merge_key`) and the directives kubectl sends (`$patch: replace|delete` on maps, `$retainKeys`,
/// `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>`) and the two merging lists of
/// `metadata`: `finalizers` (merged as a set) and `ownerReferences` (merged by `uid`).
pub fn apply_strategic_merge_patch(target: &Value, patch: &Value) -> Result<Value, ApiError> {
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "a strategic merge patch must be a JSON object",
        ));
    }
    Ok(smp_merge(Some(target), patch, ""))
}

fn smp_merge(target: Option<&Value>, patch: &Value, path: &str) -> Value {
    let Some(patch_map) = patch.as_object() else {
        return patch.clone();
    };
    match patch_map.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replaced = patch_map.clone();
            replaced.remove("$patch");
            return strip_directives(Value::Object(replaced));
        }
        Some("delete") => return Value::Null,
        _ => {}
    }
    let mut out = match target {
        Some(Value::Object(m)) => m.clone(),
        _ => serde_json::Map::new(),
    };
    if let Some(keep) = patch_map.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        out.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (key, value) in patch_map {
        if key.starts_with("$setElementOrder/") || key == "$retainKeys" || key == "$patch" {
            continue;
        }
        if let Some(list) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Some(remove)) = (out.get_mut(list), value.as_array())
            {
                items.retain(|i| !remove.contains(i));
            }
            continue;
        }
        let child = format!("{path}/{key}");
        if value.is_null() {
            out.remove(key);
            continue;
        }
        let merged = match (child.as_str(), out.get(key), value) {
            ("/metadata/finalizers", Some(Value::Array(old)), Value::Array(new)) => {
                let mut all = old.clone();
                all.extend(new.iter().filter(|v| !old.contains(v)).cloned());
                Value::Array(all)
            }
            ("/metadata/ownerReferences", Some(Value::Array(old)), Value::Array(new)) => {
                merge_by_key(old, new, "uid")
            }
            (_, Some(Value::Array(old)), Value::Array(new)) if list_merge_key(&child).is_some() => {
                merge_by_key(old, new, list_merge_key(&child).unwrap_or("name"))
            }
            (_, existing, Value::Object(_)) => smp_merge(existing, value, &child),
            _ => strip_directives(value.clone()),
        };
        if merged.is_null() {
            out.remove(key);
        } else {
            out.insert(key.clone(), merged);
        }
    }
    Value::Object(out)
}

/// The `patchMergeKey` of the merging lists of the built-in kinds Slipway serves (pod specs,
/// in Pods and in the templates of Deployments and ReplicaSets, and the conditions and
/// addresses of statuses), by the list's field name; every other list is replaced, as
/// upstream does for lists without a merge strategy.
fn list_merge_key(path: &str) -> Option<&'static str> {
    let field = path.rsplit('/').next().unwrap_or_default();
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => Some("name"),
        "ports" => Some("containerPort"),
        "volumeMounts" => Some("mountPath"),
        "hostAliases" => Some("ip"),
        "conditions" | "addresses" => Some("type"),
        _ => None,
    }
}

fn merge_by_key(old: &[Value], new: &[Value], key: &str) -> Value {
    let mut out: Vec<Value> = old.to_vec();
    for item in new {
        let id = item.get(key);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match out.iter().position(|o| o.get(key) == id && id.is_some()) {
            Some(i) if delete => {
                out.remove(i);
            }
            // Nested lists are keyed by their own field names (`ports`, `env`).
            Some(i) => out[i] = smp_merge(Some(&out[i]), item, "/[]"),
            None if delete => {}
            None => out.push(strip_directives(item.clone())),
        }
    }
    Value::Array(out)
}

fn strip_directives(value: Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k, strip_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_directives).collect()),
        other => other,
    }
}

#[cfg(test)]
mod smp_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keyed_lists_merge_like_kubectl_set_image_expects() {
        let live = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
             "env": [{"name": "A", "value": "1"}]},
            {"name": "sidecar", "image": "envoy"},
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
            "containers": [{"name": "web", "image": "nginx:1.28",
                            "env": [{"name": "B", "value": "2"}]}],
        }}}});
        let out = apply_strategic_merge_patch(&live, &patch).unwrap();
        let containers = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "nginx:1.28");
        assert_eq!(containers[0]["ports"][0]["containerPort"], 80);
        assert_eq!(containers[0]["env"].as_array().unwrap().len(), 2);
        assert_eq!(containers[1]["name"], "sidecar");
        // A container removed with the delete directive.
        let delete = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "sidecar", "$patch": "delete"}]}}}});
        let out = apply_strategic_merge_patch(&live, &delete).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        // Lists without a merge key are replaced.
        let args = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "sidecar", "args": ["a"]}]}}}});
        let out = apply_strategic_merge_patch(&live, &args).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][1]["args"],
            json!(["a"])
        );
    }

    #[test]
    fn kubectl_apply_patches_merge_like_upstream() {
        let live = json!({"metadata": {"name": "a", "labels": {"x": "1", "y": "2"}, "finalizers": ["f1"]}, "data": {"a": "1", "b": "2"}});
        let patch = json!({"$setElementOrder/finalizers": ["f1", "f2"], "metadata": {"labels": {"y": null}, "finalizers": ["f2"]}, "data": {"b": "3"}});
        let out = apply_strategic_merge_patch(&live, &patch).unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"name": "a", "labels": {"x": "1"}, "finalizers": ["f1", "f2"]}, "data": {"a": "1", "b": "3"}})
        );
        let replace = json!({"data": {"$patch": "replace", "c": "4"}});
        assert_eq!(
            apply_strategic_merge_patch(&live, &replace).unwrap()["data"],
            json!({"c": "4"})
        );
        let out = apply_strategic_merge_patch(
            &live,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["f1"]}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!([]));
        assert_eq!(
            apply_strategic_merge_patch(&live, &json!([]))
                .unwrap_err()
                .code,
            400
        );
    }
}
