//! Structural OpenAPI v3 schemas for served kinds: generated with schemars, made structural
//! (inlined, every node typed), and a light check of objects against them.
//!
//! Kubernetes' structural schema rules, in short: no `$ref`; every node has a `type`, except
//! the ones marked `x-kubernetes-int-or-string` or `x-kubernetes-preserve-unknown-fields`;
//! an object has either `properties` or `additionalProperties`; arrays have `items`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};
use slipway_apimachinery::{FieldError, FieldPath};

/// How deep `$ref`s are inlined before a node is left as a free-form object (only recursive
/// types get that deep; none of the served kinds is recursive).
const MAX_DEPTH: usize = 64;

const API_VERSION_DESCRIPTION: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND_DESCRIPTION: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";
const METADATA_DESCRIPTION: &str = "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// The schema of property `name` of an object schema (`Null` when it has none), what a
/// kind's strategy checks `spec` or `status` against before decoding it.
pub(crate) fn property(object_schema: &Value, name: &str) -> Value {
    object_schema
        .pointer(&format!("/properties/{name}"))
        .cloned()
        .unwrap_or(Value::Null)
}

/// The schema of `T` as schemars renders it for OpenAPI 3, with kube-rs' structural rewrites,
/// then made structural by [`normalize`].
pub(crate) fn generate<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(kube_core::schema::StructuralSchemaRewriter)
        .with_transform(kube_core::schema::OptionalEnum)
        .with_transform(kube_core::schema::OptionalIntOrString)
        .into_generator();
    normalize(generator.into_root_schema_for::<T>().to_value())
}

/// `metadata`: the full `ObjectMeta` schema, with the list semantics upstream declares.
pub(crate) fn object_meta() -> Value {
    let mut meta = generate::<ObjectMeta>();
    if let Some(props) = meta.get_mut("properties").and_then(Value::as_object_mut) {
        if let Some(finalizers) = props.get_mut("finalizers").and_then(Value::as_object_mut) {
            finalizers.insert("x-kubernetes-list-type".into(), json!("set"));
        }
        if let Some(owners) = props
            .get_mut("ownerReferences")
            .and_then(Value::as_object_mut)
        {
            owners.insert("x-kubernetes-list-type".into(), json!("map"));
            owners.insert("x-kubernetes-list-map-keys".into(), json!(["uid"]));
        }
    }
    if let Some(m) = meta.as_object_mut() {
        m.insert("description".into(), json!(METADATA_DESCRIPTION));
    }
    meta
}

/// Finish the schema of a whole object: `apiVersion`, `kind` and the full `metadata` schema at
/// the root (a CRD's generated schema leaves them out or as a bare object), and `metadata` not
/// required (a missing name is reported by metadata validation, with a better message).
pub(crate) fn finish_root(schema: Value) -> Value {
    let mut schema = normalize(schema);
    let Some(root) = schema.as_object_mut() else {
        return schema;
    };
    root.insert("type".into(), json!("object"));
    // apiVersion, kind and metadata first, as upstream documents list them.
    let mut props = Map::new();
    props.insert(
        "apiVersion".into(),
        json!({"type": "string", "description": API_VERSION_DESCRIPTION}),
    );
    props.insert(
        "kind".into(),
        json!({"type": "string", "description": KIND_DESCRIPTION}),
    );
    props.insert("metadata".into(), object_meta());
    if let Some(Value::Object(rest)) = root.remove("properties") {
        for (name, prop) in rest {
            props.entry(name).or_insert(prop);
        }
    }
    root.insert("properties".into(), Value::Object(props));
    if let Some(required) = root.get_mut("required").and_then(Value::as_array_mut) {
        required.retain(|r| r != "metadata");
        if required.is_empty() {
            root.remove("required");
        }
    }
    schema
}

/// Make a schemars schema structural: inline every `$ref`, drop JSON-Schema-only keywords,
/// turn `const` into `enum`, drop `null` from enums (`nullable` says it), and mark objects
/// without properties as free-form (`x-kubernetes-preserve-unknown-fields`).
pub(crate) fn normalize(mut schema: Value) -> Value {
    let mut defs = Map::new();
    if let Some(root) = schema.as_object_mut() {
        for key in ["$defs", "definitions"] {
            if let Some(Value::Object(found)) = root.remove(key) {
                defs.extend(found);
            }
        }
        if let Some(Value::Object(components)) = root.remove("components")
            && let Some(Value::Object(found)) = components.get("schemas")
        {
            defs.extend(found.clone());
        }
    }
    normalize_node(&mut schema, &defs, 0);
    schema
}

fn normalize_node(node: &mut Value, defs: &Map<String, Value>, depth: usize) {
    let Some(obj) = node.as_object_mut() else {
        // `true` (anything goes) as a schema: a free-form value.
        if node.as_bool() == Some(true) {
            *node = json!({"x-kubernetes-preserve-unknown-fields": true});
        }
        return;
    };
    if let Some(Value::String(reference)) = obj.remove("$ref") {
        let name = reference.rsplit('/').next().unwrap_or_default();
        let mut inlined = match defs.get(name) {
            Some(Value::Object(def)) if depth < MAX_DEPTH => def.clone(),
            _ => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        };
        // Keywords next to the `$ref` (a field's description) win over the definition's.
        for (k, v) in std::mem::take(obj) {
            inlined.insert(k, v);
        }
        *obj = inlined;
        return normalize_node(node, defs, depth + 1);
    }
    for key in [
        "$schema",
        "$id",
        "title",
        "examples",
        "definitions",
        "$defs",
    ] {
        obj.remove(key);
    }
    if let Some(value) = obj.remove("const") {
        obj.insert("enum".into(), Value::Array(vec![value]));
    }
    if let Some(Value::Array(values)) = obj.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    if let Some(Value::Array(types)) = obj.get("type") {
        let non_null: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        if non_null.len() < types.len() {
            obj.insert("nullable".into(), json!(true));
        }
        if let [single] = non_null.as_slice() {
            obj.insert("type".into(), single.clone());
        }
    }
    match obj.get("additionalProperties") {
        Some(Value::Bool(false)) => {
            obj.remove("additionalProperties");
        }
        Some(Value::Bool(true)) => {
            obj.remove("additionalProperties");
            obj.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
        }
        _ => {}
    }
    let free_form = obj.get("type").and_then(Value::as_str) == Some("object")
        && !obj.contains_key("properties")
        && !obj.contains_key("additionalProperties");
    if free_form {
        obj.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
    }
    if let Some(Value::Object(props)) = obj.get_mut("properties") {
        for prop in props.values_mut() {
            normalize_node(prop, defs, depth + 1);
        }
    }
    for key in ["additionalProperties", "items"] {
        if let Some(sub) = obj.get_mut(key) {
            normalize_node(sub, defs, depth + 1);
        }
    }
}

/// Why `schema` is not structural, one line per problem with its JSON path; empty when it is.
///
/// Checked: no `$ref`, `anyOf`, `oneOf`, `allOf` or `not`; every node typed (or marked
/// int-or-string / preserve-unknown-fields); arrays have `items`; objects do not mix
/// `properties` and `additionalProperties`; map-keyed lists have their keys required.
pub fn structural_problems(schema: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    structural_node(schema, "", &mut problems);
    problems
}

fn structural_node(node: &Value, at: &str, problems: &mut Vec<String>) {
    let here = if at.is_empty() { "<root>" } else { at };
    let Some(obj) = node.as_object() else {
        problems.push(format!("{here}: schema is not an object"));
        return;
    };
    for key in [
        "$ref",
        "anyOf",
        "oneOf",
        "allOf",
        "not",
        "definitions",
        "$defs",
    ] {
        if obj.contains_key(key) {
            problems.push(format!("{here}: has {key}"));
        }
    }
    let flagged = |k: &str| obj.get(k) == Some(&Value::Bool(true));
    let typ = obj.get("type").and_then(Value::as_str);
    if typ.is_none()
        && !flagged("x-kubernetes-int-or-string")
        && !flagged("x-kubernetes-preserve-unknown-fields")
    {
        problems.push(format!("{here}: no type"));
    }
    if let Some(t) = typ
        && !matches!(
            t,
            "object" | "array" | "string" | "integer" | "number" | "boolean"
        )
    {
        problems.push(format!("{here}: unknown type {t}"));
    }
    if typ == Some("array") && !obj.contains_key("items") {
        problems.push(format!("{here}: array without items"));
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        problems.push(format!("{here}: both properties and additionalProperties"));
    }
    if obj.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map") {
        let required: Vec<&str> = obj
            .get("items")
            .and_then(|i| i.get("required"))
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match obj
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
        {
            Some(keys) if !keys.is_empty() => {
                for key in keys.iter().filter_map(Value::as_str) {
                    if !required.contains(&key) {
                        problems.push(format!(
                            "{here}: list-map key {key} is not required in items"
                        ));
                    }
                }
            }
            _ => problems.push(format!("{here}: list-type map without list-map-keys")),
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            structural_node(prop, &format!("{at}.{name}"), problems);
        }
    }
    if let Some(additional) = obj.get("additionalProperties") {
        structural_node(additional, &format!("{at}[*]"), problems);
    }
    if let Some(items) = obj.get("items") {
        structural_node(items, &format!("{at}[]"), problems);
    }
}

/// Check `value` against `schema` for what a typed decode needs: types (with int32 range),
/// required fields and enums. Each problem becomes a `FieldError` at its path; an enum
/// violation is also repaired in place (replaced by the first allowed value), so that the
/// caller can still decode the object and report its semantic errors in the same response.
pub(crate) fn check(
    schema: &Value,
    value: &mut Value,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    let Some(s) = schema.as_object() else { return };
    let flagged = |k: &str| s.get(k) == Some(&Value::Bool(true));
    if value.is_null() {
        if !flagged("nullable") {
            errs.push(FieldError::type_invalid(path, value, "must not be null"));
        }
        return;
    }
    if flagged("x-kubernetes-int-or-string") {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            errs.push(FieldError::type_invalid(
                path,
                value,
                "must be an integer or a string",
            ));
        }
        return;
    }
    if let Some(t) = s.get("type").and_then(Value::as_str) {
        let ok = match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            _ => true,
        };
        if !ok {
            let article = if t == "object" || t == "array" || t == "integer" {
                "an"
            } else {
                "a"
            };
            errs.push(FieldError::type_invalid(
                path,
                value,
                format!("must be {article} {t}"),
            ));
            return;
        }
        if t == "integer" && s.get("format").and_then(Value::as_str) == Some("int32") {
            let fits = value.as_i64().is_some_and(|n| i32::try_from(n).is_ok());
            if !fits {
                errs.push(FieldError::invalid(
                    path,
                    value,
                    "must fit in a 32-bit signed integer",
                ));
                return;
            }
        }
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array)
        && !allowed.is_empty()
        && !allowed.contains(value)
    {
        let names: Vec<String> = allowed
            .iter()
            .map(|a| a.as_str().map_or_else(|| a.to_string(), str::to_string))
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        errs.push(FieldError::not_supported(path, value, &names));
        *value = allowed[0].clone();
        return;
    }
    if flagged("x-kubernetes-preserve-unknown-fields") {
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(required) = s.get("required").and_then(Value::as_array) {
                for name in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(name) {
                        errs.push(FieldError::required(&path.child(name), ""));
                    }
                }
            }
            let props = s.get("properties").and_then(Value::as_object);
            let additional = s.get("additionalProperties");
            for (name, child) in map.iter_mut() {
                if let Some(prop) = props.and_then(|p| p.get(name)) {
                    check(prop, child, &path.child(name), errs);
                } else if let Some(additional) = additional {
                    check(additional, child, &path.key(name), errs);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    check(item_schema, item, &path.index(i), errs);
                }
            }
        }
        _ => {}
    }
}

/// Decode `obj[key]` into `T` after [`check`]ing it against `schema`: the problems found go
/// to `errs` with their paths, and the decode sees the repaired value. `None` when the part is
/// absent or cannot be decoded (then `errs` says why).
pub(crate) fn decode_checked<T: serde::de::DeserializeOwned>(
    obj: &Value,
    key: &str,
    schema: &Value,
    errs: &mut Vec<FieldError>,
) -> Option<T> {
    let mut value = obj.get(key)?.clone();
    let path = FieldPath::root(key);
    let before = errs.len();
    check(schema, &mut value, &path, errs);
    match serde::Deserialize::deserialize(&value) {
        Ok(decoded) => Some(decoded),
        Err(e) => {
            if errs.len() == before {
                errs.push(FieldError::type_invalid(
                    &path,
                    &Value::String(key.into()),
                    format!("cannot be decoded: {e}"),
                ));
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_are_inlined_and_enums_lose_null() {
        let schema = json!({
            "type": "object",
            "properties": {
                "a": {"$ref": "#/$defs/A", "description": "field doc"},
                "e": {"type": ["string", "null"], "enum": ["x", "y", null]},
                "free": {"type": "object"},
            },
            "$defs": {"A": {"type": "object", "description": "type doc", "properties": {"n": {"type": "integer"}}}},
        });
        let out = normalize(schema);
        assert_eq!(out["properties"]["a"]["description"], "field doc");
        assert_eq!(out["properties"]["a"]["properties"]["n"]["type"], "integer");
        assert_eq!(
            out["properties"]["e"],
            json!({"type": "string", "nullable": true, "enum": ["x", "y"]})
        );
        assert_eq!(
            out["properties"]["free"]["x-kubernetes-preserve-unknown-fields"],
            true
        );
        assert!(out.get("$defs").is_none());
        assert!(
            structural_problems(&out).is_empty(),
            "{:?}",
            structural_problems(&out)
        );
    }

    #[test]
    fn structural_problems_are_found() {
        let schema = json!({
            "type": "object",
            "properties": {
                "untyped": {"description": "x"},
                "r": {"$ref": "#/x"},
                "list": {"type": "array"},
                "m": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                      "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            },
        });
        let problems = structural_problems(&schema);
        assert_eq!(
            problems,
            vec![
                ".untyped: no type",
                ".r: has $ref",
                ".r: no type",
                ".list: array without items",
                ".m: list-map key name is not required in items",
            ]
        );
    }

    #[test]
    fn check_reports_types_required_and_enums_and_repairs_enums() {
        let schema = json!({
            "type": "object",
            "required": ["name"],
            "properties": {
                "mode": {"type": "string", "enum": ["a", "b"]},
                "n": {"type": "integer", "format": "int32"},
                "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                "io": {"x-kubernetes-int-or-string": true},
            },
        });
        let mut value = json!({"mode": "c", "n": 5_000_000_000_i64, "tags": {"k": 1}, "io": true});
        let mut errs = Vec::new();
        check(&schema, &mut value, &FieldPath::root("spec"), &mut errs);
        let got: Vec<(String, &str)> = errs
            .iter()
            .map(|e| (e.field.to_string(), e.kind.reason()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("spec.name".to_string(), "FieldValueRequired"),
                ("spec.mode".to_string(), "FieldValueNotSupported"),
                ("spec.n".to_string(), "FieldValueInvalid"),
                ("spec.tags[k]".to_string(), "FieldValueTypeInvalid"),
                ("spec.io".to_string(), "FieldValueTypeInvalid"),
            ]
        );
        assert_eq!(value["mode"], "a");
    }
}
