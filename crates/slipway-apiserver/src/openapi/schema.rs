//! A kind's published schema, built from its `ResourceDef` the way the apiextensions server
//! builds a custom resource's: `metadata` becomes a reference to ObjectMeta, `apiVersion` and
//! `kind` get their standard descriptions, embedded resources get theirs, and the kind is tagged
//! with `x-kubernetes-group-version-kind`. OpenAPI v2 additionally loses what Swagger 2.0 and
//! kubectl's v2 reader cannot express (nullable, junctors, `default`, untyped containers).

use serde_json::{Map, Value, json};
use slipway_apimachinery::ResourceDef;

use super::meta::{
    self, API_VERSION_DESCRIPTION, KIND_DESCRIPTION, LIST_META_DESCRIPTION,
    OBJECT_META_DESCRIPTION, Refs,
};
use super::names;

/// The published schema of a def's kind.
pub(crate) fn kind_schema(def: &ResourceDef, refs: Refs) -> Value {
    let gvk = json!([names::gvk(&def.group, &def.version, &def.kind)]);
    let mut schema = match def.schema.as_object() {
        Some(map) => Value::Object(map.clone()),
        None => json!({"type": "object"}),
    };
    let preserve_root = is_true(&schema, "x-kubernetes-preserve-unknown-fields");
    if refs == Refs::V2 && preserve_root {
        // kubectl's v2 validation would reject every field a preserve-unknown-fields root does
        // not list, so upstream publishes such a kind as a bare object.
        return json!({"type": "object", "x-kubernetes-group-version-kind": gvk});
    }
    match refs {
        Refs::V3 => unfold(&mut schema),
        Refs::V2 => to_v2(&mut schema),
    }
    if let Some(map) = schema.as_object_mut() {
        map.insert("type".into(), "object".into());
        if let Some(properties) = properties_mut(map) {
            properties.insert(
                "metadata".into(),
                refs.field(&names::meta("ObjectMeta"), OBJECT_META_DESCRIPTION),
            );
            properties.insert("apiVersion".into(), meta::string(API_VERSION_DESCRIPTION));
            properties.insert("kind".into(), meta::string(KIND_DESCRIPTION));
        }
    }
    add_embedded_properties(&mut schema, refs);
    if let Some(map) = schema.as_object_mut() {
        map.insert("x-kubernetes-group-version-kind".into(), gvk);
    }
    schema
}

/// The published schema of a def's list kind.
pub(crate) fn list_schema(def: &ResourceDef, refs: Refs) -> Value {
    let item = names::definition_name(&def.group, &def.version, &def.kind);
    let mut items = json!({
        "type": "array",
        "description": format!(
            "List of {}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md",
            def.plural
        ),
    });
    items["items"] = refs.to(&item);
    json!({
        "description": format!("{} is a list of {}", def.list_kind, def.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": meta::string(API_VERSION_DESCRIPTION),
            "items": items,
            "kind": meta::string(KIND_DESCRIPTION),
            "metadata": refs.field(&names::meta("ListMeta"), LIST_META_DESCRIPTION),
        },
        "x-kubernetes-group-version-kind": [names::gvk(&def.group, &def.version, &def.list_kind)],
    })
}

fn is_true(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

/// `properties`, created (or replaced, if it is not an object) as needed.
fn properties_mut(map: &mut Map<String, Value>) -> Option<&mut Map<String, Value>> {
    let entry = map
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut()
}

/// Calls `f` on every schema directly nested in `schema` (properties, items,
/// additionalProperties and the junctors).
fn for_each_child(schema: &mut Value, f: &mut dyn FnMut(&mut Value)) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(properties)) = map.get_mut("properties") {
        properties.values_mut().for_each(&mut *f);
    }
    match map.get_mut("items") {
        Some(Value::Array(items)) => items.iter_mut().for_each(&mut *f),
        Some(items @ Value::Object(_)) => f(items),
        _ => {}
    }
    if let Some(additional @ Value::Object(_)) = map.get_mut("additionalProperties") {
        f(additional);
    }
    for junctor in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(list)) = map.get_mut(junctor) {
            list.iter_mut().for_each(&mut *f);
        }
    }
    if let Some(not @ Value::Object(_)) = map.get_mut("not") {
        f(not);
    }
}

/// Upstream's `Unfold`: an int-or-string field spells its two types out as `anyOf`.
fn unfold(schema: &mut Value) {
    if is_true(schema, "x-kubernetes-int-or-string")
        && let Some(map) = schema.as_object_mut()
        && map
            .get("anyOf")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
    {
        map.insert(
            "anyOf".into(),
            json!([{"type": "integer"}, {"type": "string"}]),
        );
    }
    for_each_child(schema, &mut unfold);
}

/// The keys a Swagger 2.0 schema object may have (besides `x-` extensions).
const V2_SCHEMA_KEYS: &[&str] = &[
    "$ref",
    "additionalProperties",
    "allOf",
    "default",
    "description",
    "discriminator",
    "enum",
    "example",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "externalDocs",
    "format",
    "items",
    "maxItems",
    "maxLength",
    "maxProperties",
    "maximum",
    "minItems",
    "minLength",
    "minProperties",
    "minimum",
    "multipleOf",
    "pattern",
    "properties",
    "readOnly",
    "required",
    "title",
    "type",
    "uniqueItems",
    "xml",
];

/// Upstream's `ToStructuralOpenAPIV2`: what remains is a schema kubectl's v2 reader accepts.
fn to_v2(schema: &mut Value) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    for junctor in ["allOf", "anyOf", "oneOf", "not"] {
        map.remove(junctor);
    }
    let preserve = map
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    if map.remove("nullable").and_then(|v| v.as_bool()) == Some(true) {
        map.remove("type");
        map.remove("items");
        map.remove("properties");
    }
    if preserve {
        map.remove("items");
        map.remove("properties");
    }
    let ty = map.get("type").and_then(Value::as_str).map(str::to_string);
    if ty.as_deref() == Some("array") && !map.contains_key("items") {
        map.remove("type");
    }
    if preserve && ty.as_deref() == Some("object") {
        map.remove("type");
    }
    // A nullable field cannot be required in v2 (its value may be null), nor may anything be
    // required of a map whose values are nullable.
    let nullable_fields: Vec<String> = match map.get("properties") {
        Some(Value::Object(properties)) => properties
            .iter()
            .filter(|(_, s)| s.get("nullable").and_then(Value::as_bool) == Some(true))
            .map(|(name, _)| name.clone())
            .collect(),
        _ => Vec::new(),
    };
    let nullable_values = map
        .get("additionalProperties")
        .and_then(|s| s.get("nullable"))
        .and_then(Value::as_bool)
        == Some(true);
    if nullable_values {
        map.remove("required");
    } else if let Some(Value::Array(required)) = map.get_mut("required") {
        required.retain(|r| {
            !r.as_str()
                .is_some_and(|r| nullable_fields.iter().any(|n| n == r))
        });
        if required.is_empty() {
            map.remove("required");
        }
    }
    map.retain(|key, _| key.starts_with("x-") || V2_SCHEMA_KEYS.contains(&key.as_str()));
    for_each_child(schema, &mut to_v2);
}

/// Upstream's `PruneDefaults`, which its v2 handler applies to every definition it serves.
pub(crate) fn prune_defaults(schema: &mut Value) {
    if let Some(map) = schema.as_object_mut() {
        map.remove("default");
    }
    for_each_child(schema, &mut prune_defaults);
}

/// Upstream's `addEmbeddedProperties`: a field marked `x-kubernetes-embedded-resource` is a
/// whole object, with apiVersion, kind and metadata.
fn add_embedded_properties(schema: &mut Value, refs: Refs) {
    for_each_child(schema, &mut |child| add_embedded_properties(child, refs));
    if refs == Refs::V2 && is_true(schema, "x-kubernetes-preserve-unknown-fields") {
        return;
    }
    if !is_true(schema, "x-kubernetes-embedded-resource") {
        return;
    }
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    if let Some(properties) = properties_mut(map) {
        properties.insert("apiVersion".into(), meta::string(API_VERSION_DESCRIPTION));
        properties.insert("kind".into(), meta::string(KIND_DESCRIPTION));
        properties.insert(
            "metadata".into(),
            refs.field(&names::meta("ObjectMeta"), OBJECT_META_DESCRIPTION),
        );
    }
    let required = map
        .entry("required")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(required) = required {
        for key in ["kind", "apiVersion"] {
            if !required.iter().any(|r| r == key) {
                required.push(key.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::testdefs;

    #[test]
    fn kind_schema_references_object_meta_and_keeps_field_descriptions() {
        let def = testdefs::cluster();
        let s = kind_schema(&def, Refs::V3);
        assert_eq!(
            s["properties"]["metadata"]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert_eq!(
            s["x-kubernetes-group-version-kind"],
            json!([{"group": "slipway.dev", "kind": "Cluster", "version": "v1alpha1"}])
        );
        assert_eq!(
            s["properties"]["spec"]["properties"]["nodePools"]["description"],
            def.schema["properties"]["spec"]["properties"]["nodePools"]["description"]
        );
        assert!(
            s["properties"]["kind"]["description"]
                .as_str()
                .is_some_and(|d| d.contains("CamelCase"))
        );
    }

    #[test]
    fn v3_spells_int_or_string_out_and_keeps_nullable() {
        let s = kind_schema(&testdefs::cluster(), Refs::V3);
        let surge = &s["properties"]["spec"]["properties"]["upgrade"]["properties"]["maxSurge"];
        assert_eq!(
            surge["anyOf"],
            json!([{"type": "integer"}, {"type": "string"}])
        );
        assert_eq!(
            s["properties"]["spec"]["properties"]["ttl"]["nullable"],
            true
        );
    }

    #[test]
    fn v2_drops_what_swagger_cannot_say() {
        let s = kind_schema(&testdefs::cluster(), Refs::V2);
        let spec = &s["properties"]["spec"];
        let surge = &spec["properties"]["upgrade"]["properties"]["maxSurge"];
        assert!(surge.get("anyOf").is_none());
        assert_eq!(surge["x-kubernetes-int-or-string"], true);
        // nullable: untyped, and no longer required.
        let ttl = &spec["properties"]["ttl"];
        assert!(ttl.get("nullable").is_none() && ttl.get("type").is_none());
        assert!(
            !spec["required"]
                .as_array()
                .is_some_and(|r| r.iter().any(|f| f == "ttl"))
        );
        // preserve-unknown-fields objects lose type and properties.
        let addons = &spec["properties"]["addons"]["items"]["properties"]["values"];
        assert!(addons.get("type").is_none() && addons.get("properties").is_none());
        // defaults stay until the whole document is pruned.
        let replicas = &spec["properties"]["controlPlane"]["properties"]["replicas"];
        assert_eq!(replicas["default"], 3);
        let mut pruned = s.clone();
        prune_defaults(&mut pruned);
        assert!(
            pruned["properties"]["spec"]["properties"]["controlPlane"]["properties"]["replicas"]
                .get("default")
                .is_none()
        );
        assert_eq!(
            pruned["properties"]["spec"]["properties"]["controlPlane"]["properties"]["replicas"]["enum"],
            json!([1, 3, 5])
        );
        assert_eq!(
            s["properties"]["metadata"]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
    }

    #[test]
    fn embedded_resources_get_type_and_object_meta() {
        let s = kind_schema(&testdefs::cluster(), Refs::V3);
        let template = &s["properties"]["spec"]["properties"]["template"];
        assert_eq!(
            template["properties"]["metadata"]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert!(
            template["required"]
                .as_array()
                .is_some_and(|r| r.contains(&json!("kind")) && r.contains(&json!("apiVersion")))
        );
    }

    #[test]
    fn preserve_unknown_root_is_a_bare_object_in_v2() {
        let mut def = testdefs::namespace();
        def.schema["x-kubernetes-preserve-unknown-fields"] = true.into();
        let s = kind_schema(&def, Refs::V2);
        assert_eq!(
            s,
            json!({"type": "object", "x-kubernetes-group-version-kind": [{"group": "", "kind": "Namespace", "version": "v1"}]})
        );
    }

    #[test]
    fn list_schema_points_at_its_items() {
        let s = list_schema(&testdefs::cluster(), Refs::V3);
        assert_eq!(
            s["properties"]["items"]["items"]["$ref"],
            "#/components/schemas/dev.slipway.v1alpha1.Cluster"
        );
        assert_eq!(
            s["x-kubernetes-group-version-kind"][0]["kind"],
            "ClusterList"
        );
        assert_eq!(s["required"], json!(["items"]));
    }
}
