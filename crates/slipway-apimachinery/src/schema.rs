//! OpenAPI v3 structural schemas (a CRD's `openAPIV3Schema`) applied to untyped objects:
//! unknown fields, validation, pruning, defaulting, duplicate keys in the raw JSON, and
//! sub-schema lookup.
//!
//! The schema is the one of the whole object. At the root, and in every object marked
//! `x-kubernetes-embedded-resource`, `apiVersion` and `kind` are always known and `metadata` is
//! checked against the `ObjectMeta` fields ([`object_meta_schema`]) whatever the schema says
//! about it, as the apiserver does for custom resources. A root schema that is `null` or `{}`
//! means "no schema": nothing is unknown and nothing is pruned.
//!
//! Supported keywords: `type`, `properties`, `items`, `additionalProperties`, `required`,
//! `enum`, `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`,
//! `minLength`, `maxLength`, `minItems`, `maxItems`, `minProperties`, `maxProperties`,
//! `nullable`, `format` (`int32`, `int64`, `date-time`, `date`, `uuid`, `ipv4`, `ipv6`; other
//! formats are accepted unchecked), `default`, `allOf`, `anyOf`, `oneOf`, `not`, and the
//! `x-kubernetes-preserve-unknown-fields`, `-int-or-string`, `-embedded-resource`,
//! `-list-type` and `-list-map-keys` extensions. `pattern` is not checked (it would need a
//! regular expression engine).

use std::collections::HashSet;
use std::sync::LazyLock;

use serde_json::{Map, Value, json};

use crate::field::{FieldError, FieldErrorType, FieldPath};

const PRESERVE: &str = "x-kubernetes-preserve-unknown-fields";
const INT_OR_STRING: &str = "x-kubernetes-int-or-string";
const EMBEDDED: &str = "x-kubernetes-embedded-resource";
const LIST_TYPE: &str = "x-kubernetes-list-type";
const LIST_MAP_KEYS: &str = "x-kubernetes-list-map-keys";

static OBJECT_META: LazyLock<Value> = LazyLock::new(|| {
    let string = json!({"type": "string"});
    let string_map = json!({"type": "object", "additionalProperties": {"type": "string"}});
    let time = json!({"type": "string", "format": "date-time", "nullable": true});
    json!({
        "type": "object",
        "properties": {
            "name": string,
            "generateName": string,
            "namespace": string,
            "selfLink": string,
            "uid": string,
            "resourceVersion": string,
            "generation": {"type": "integer", "format": "int64"},
            "creationTimestamp": time,
            "deletionTimestamp": time,
            "deletionGracePeriodSeconds": {"type": "integer", "format": "int64"},
            "labels": string_map,
            "annotations": string_map,
            "ownerReferences": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["uid"],
                "items": {
                    "type": "object",
                    "required": ["apiVersion", "kind", "name", "uid"],
                    "properties": {
                        "apiVersion": string,
                        "kind": string,
                        "name": string,
                        "uid": string,
                        "controller": {"type": "boolean"},
                        "blockOwnerDeletion": {"type": "boolean"}
                    }
                }
            },
            "finalizers": {"type": "array", "x-kubernetes-list-type": "set", "items": string},
            "managedFields": {
                "type": "array",
                "x-kubernetes-list-type": "atomic",
                "items": {
                    "type": "object",
                    "properties": {
                        "manager": string,
                        "operation": string,
                        "apiVersion": string,
                        "time": time,
                        "fieldsType": string,
                        "fieldsV1": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "subresource": string
                    }
                }
            }
        }
    })
});

/// The structural schema of `metav1.ObjectMeta`: what `metadata` may contain at the root of
/// an object and in embedded resources.
pub fn object_meta_schema() -> &'static Value {
    &OBJECT_META
}

fn flag(s: &Value, name: &str) -> bool {
    s.get(name).and_then(Value::as_bool).unwrap_or(false)
}

fn is_no_schema(s: &Value) -> bool {
    s.as_object().is_none_or(Map::is_empty)
}

fn schema_type(s: &Value) -> Option<&str> {
    s.get("type").and_then(Value::as_str)
}

fn properties(s: &Value) -> Option<&Map<String, Value>> {
    s.get("properties").and_then(Value::as_object)
}

/// `additionalProperties` when it is a schema (`true` counts as preserving unknown fields).
fn additional(s: &Value) -> Option<&Value> {
    s.get("additionalProperties").filter(|v| v.is_object())
}

fn items(s: &Value) -> Option<&Value> {
    s.get("items").filter(|v| v.is_object())
}

fn preserves_unknown(s: &Value) -> bool {
    flag(s, PRESERVE) || s.get("additionalProperties") == Some(&Value::Bool(true))
}

fn nullable(s: &Value) -> bool {
    flag(s, "nullable")
}

/// Whether an object value is walked field by field under this schema (a value of another
/// declared type is a type error, reported by [`validate`], not a set of unknown fields).
fn walks_objects(s: &Value) -> bool {
    match schema_type(s) {
        None => !flag(s, INT_OR_STRING),
        Some(t) => t == "object",
    }
}

fn walks_arrays(s: &Value) -> bool {
    matches!(schema_type(s), None | Some("array"))
}

/// What to do with one field of an object.
enum FieldRule<'s> {
    /// Declared (or implied): walk it with this schema; `true` when it is a resource root.
    Known(&'s Value, bool),
    /// Kept without looking inside (preserve-unknown-fields, or apiVersion/kind).
    Opaque,
    Unknown,
}

fn field_rule<'s>(s: &'s Value, resource_root: bool, key: &str) -> FieldRule<'s> {
    if resource_root {
        match key {
            "metadata" => return FieldRule::Known(object_meta_schema(), false),
            "apiVersion" | "kind" => {
                return match properties(s).and_then(|p| p.get(key)) {
                    Some(ps) => FieldRule::Known(ps, false),
                    None => FieldRule::Opaque,
                };
            }
            _ => {}
        }
    }
    if let Some(ps) = properties(s).and_then(|p| p.get(key)) {
        FieldRule::Known(ps, flag(ps, EMBEDDED))
    } else if let Some(a) = additional(s) {
        FieldRule::Known(a, flag(a, EMBEDDED))
    } else if preserves_unknown(s) {
        FieldRule::Opaque
    } else {
        FieldRule::Unknown
    }
}

/// Every field of `obj` the schema does not declare, by path (`spec.nodePools[0].colour`), in
/// document order. What strict field validation reports as `unknown field "<path>"`.
pub fn unknown_fields(schema: &Value, obj: &Value) -> Vec<FieldPath> {
    let mut out = Vec::new();
    if !is_no_schema(schema) {
        collect_unknown(schema, obj, true, &mut Vec::new(), &mut out);
    }
    out
}

/// One step of the path to the node [`collect_unknown`] is at: the path itself is only
/// spelled out for a field it reports (this walk runs on every write, over the whole object).
enum Step<'a> {
    Field(&'a str),
    Index(usize),
}

fn spelled(steps: &[Step<'_>]) -> FieldPath {
    steps
        .iter()
        .fold(FieldPath::default(), |path, step| match step {
            Step::Field(name) => path.child(name),
            Step::Index(i) => path.index(*i),
        })
}

fn collect_unknown<'a>(
    s: &Value,
    obj: &'a Value,
    resource_root: bool,
    steps: &mut Vec<Step<'a>>,
    out: &mut Vec<FieldPath>,
) {
    match obj {
        Value::Object(map) if walks_objects(s) => {
            for (k, v) in map {
                match field_rule(s, resource_root, k) {
                    FieldRule::Known(cs, root) => {
                        steps.push(Step::Field(k));
                        collect_unknown(cs, v, root, steps, out);
                        steps.pop();
                    }
                    FieldRule::Opaque => {}
                    FieldRule::Unknown => {
                        steps.push(Step::Field(k));
                        out.push(spelled(steps));
                        steps.pop();
                    }
                }
            }
        }
        Value::Array(values) if walks_arrays(s) => {
            if let Some(is) = items(s) {
                let root = flag(is, EMBEDDED);
                for (i, v) in values.iter().enumerate() {
                    steps.push(Step::Index(i));
                    collect_unknown(is, v, root, steps, out);
                    steps.pop();
                }
            }
        }
        _ => {}
    }
}

/// Drop every field [`unknown_fields`] would report. Nothing below
/// `x-kubernetes-preserve-unknown-fields` is dropped unless a declared property's own schema
/// says so (preservation is not inherited by declared properties, as upstream).
pub fn prune(schema: &Value, obj: &mut Value) {
    if !is_no_schema(schema) {
        prune_node(schema, obj, true);
    }
}

fn prune_node(s: &Value, obj: &mut Value, resource_root: bool) {
    match obj {
        Value::Object(map) if walks_objects(s) => {
            map.retain(|k, v| match field_rule(s, resource_root, k) {
                FieldRule::Known(cs, root) => {
                    prune_node(cs, v, root);
                    true
                }
                FieldRule::Opaque => true,
                FieldRule::Unknown => false,
            })
        }
        Value::Array(values) if walks_arrays(s) => {
            if let Some(is) = items(s) {
                let root = flag(is, EMBEDDED);
                for v in values {
                    prune_node(is, v, root);
                }
            }
        }
        _ => {}
    }
}

/// Fill schema `default`s into absent fields of existing objects (and into `null`s where the
/// field is not nullable), then walk into the result, so defaults of nested properties apply
/// inside defaulted objects. Like upstream, `null`s of non-nullable fields without a default
/// are removed first.
pub fn apply_defaults(schema: &Value, obj: &mut Value) {
    if !is_no_schema(schema) {
        default_node(schema, obj);
    }
}

fn default_node(s: &Value, obj: &mut Value) {
    match obj {
        Value::Object(map) => {
            if let Some(props) = properties(s) {
                map.retain(|k, v| {
                    !(v.is_null()
                        && props
                            .get(k)
                            .is_some_and(|ps| !nullable(ps) && ps.get("default").is_none()))
                });
                for (k, ps) in props {
                    let Some(default) = ps.get("default") else {
                        continue;
                    };
                    match map.get(k) {
                        None => {
                            map.insert(k.clone(), default.clone());
                        }
                        Some(Value::Null) if !nullable(ps) => {
                            map.insert(k.clone(), default.clone());
                        }
                        _ => {}
                    }
                }
            }
            let addl = additional(s);
            if let Some(a) = addl
                && !nullable(a)
            {
                match a.get("default") {
                    None => map.retain(|k, v| {
                        !(v.is_null() && properties(s).is_none_or(|p| !p.contains_key(k)))
                    }),
                    Some(default) => {
                        for (k, v) in map.iter_mut() {
                            if v.is_null() && properties(s).is_none_or(|p| !p.contains_key(k)) {
                                *v = default.clone();
                            }
                        }
                    }
                }
            }
            for (k, v) in map.iter_mut() {
                if let Some(ps) = properties(s).and_then(|p| p.get(k)) {
                    default_node(ps, v);
                } else if let Some(a) = addl {
                    default_node(a, v);
                }
            }
        }
        Value::Array(values) => {
            if let Some(is) = items(s) {
                for v in values {
                    if v.is_null()
                        && !nullable(is)
                        && let Some(default) = is.get("default")
                    {
                        *v = default.clone();
                    }
                    default_node(is, v);
                }
            }
        }
        _ => {}
    }
}

/// The sub-schema at a path of field names from the root, e.g. `["spec", "nodePools"]`. At an
/// array schema a segment `*`, `[]` or an index selects the items; a field name continues in
/// the items' schema. `metadata` at a resource root resolves into [`object_meta_schema`].
pub fn lookup<'a, S: AsRef<str>>(schema: &'a Value, path: &[S]) -> Option<&'a Value> {
    let mut cur = schema;
    let mut resource_root = true;
    for seg in path {
        let seg = seg.as_ref();
        if let Some(is) = items(cur) {
            if seg == "*" || seg == "[]" || seg.parse::<usize>().is_ok() {
                resource_root = flag(is, EMBEDDED);
                cur = is;
                continue;
            }
            resource_root = flag(is, EMBEDDED);
            cur = is;
        }
        if resource_root && seg == "metadata" {
            cur = object_meta_schema();
            resource_root = false;
            continue;
        }
        cur = properties(cur)
            .and_then(|p| p.get(seg))
            .or_else(|| additional(cur))?;
        resource_root = flag(cur, EMBEDDED);
    }
    Some(cur)
}

/// Check `obj` against the schema: types, `nullable`, `enum` (NotSupported naming the allowed
/// values), numeric and length bounds, `required`, formats, list-set and list-map uniqueness
/// (Duplicate), embedded resources' `apiVersion`/`kind`. Messages follow the apiserver's
/// (`spec.replicas in body must be of type integer: "string"`). `metadata` is only checked
/// against what the schema itself declares for it.
pub fn validate(schema: &Value, obj: &Value) -> Vec<FieldError> {
    validate_update(schema, obj, None)
}

/// Validate `obj`, an update of `old`, with validation ratcheting (Kubernetes' CRD validation
/// ratcheting): a field whose value is the same as in `old` is not validated again, so an
/// update is judged by what it changes, and an unchanged value that a later schema would
/// refuse does not block the update. `None` validates everything, as for a create.
pub fn validate_update(schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if !is_no_schema(schema) {
        validate_node(schema, obj, old, &FieldPath::default(), &mut errs);
    }
    errs
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => {
            n.is_i64()
                || n.is_u64()
                || n.as_f64()
                    .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
        }
        _ => false,
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => is_integer(v),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => true,
    }
}

/// Where a field error names the field in its message (`spec.x in body ...`).
fn body_name(path: &FieldPath) -> &str {
    if path.as_str().is_empty() {
        "body"
    } else {
        path.as_str()
    }
}

fn invalid_type(path: &FieldPath, expected: &str, actual: &str) -> FieldError {
    FieldError::type_invalid(
        path,
        &Value::String(actual.to_string()),
        format!(
            "{} in body must be of type {expected}: \"{actual}\"",
            body_name(path)
        ),
    )
}

/// `old`: the same field's value before the update, if there was one (see [`validate_update`]).
fn validate_node(
    s: &Value,
    v: &Value,
    old: Option<&Value>,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    if !s.is_object() {
        return;
    }
    if v.is_null() {
        if nullable(s) {
            return;
        }
        if let Some(t) = schema_type(s) {
            errs.push(invalid_type(path, t, "null"));
        } else if flag(s, INT_OR_STRING) {
            errs.push(invalid_type(path, "integer-or-string", "null"));
        }
        return;
    }
    if let Some(t) = schema_type(s)
        && !type_matches(t, v)
    {
        errs.push(invalid_type(path, t, type_name(v)));
        return;
    }
    if flag(s, INT_OR_STRING) && !is_integer(v) && !v.is_string() {
        errs.push(invalid_type(path, "integer-or-string", type_name(v)));
        return;
    }
    validate_enum(s, v, path, errs);
    validate_format(s, v, path, errs);
    validate_composition(s, v, path, errs);
    match v {
        Value::Number(n) => validate_number(s, n, v, path, errs),
        Value::String(text) => validate_string(s, text, v, path, errs),
        Value::Array(values) => validate_array(s, values, path, errs),
        Value::Object(map) => validate_object(s, map, old.and_then(Value::as_object), path, errs),
        _ => {}
    }
}

fn enum_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn validate_enum(s: &Value, v: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let Some(allowed) = s.get("enum").and_then(Value::as_array) else {
        return;
    };
    if allowed.iter().any(|a| loose_eq(a, v)) {
        return;
    }
    let texts: Vec<String> = allowed.iter().map(enum_text).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    errs.push(FieldError::not_supported(path, v, &refs));
}

fn validate_format(s: &Value, v: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let Some(format) = s.get("format").and_then(Value::as_str) else {
        return;
    };
    let ok = match (format, v) {
        // A non-integral number is a type error when `type: integer`, and fine for `number`.
        ("int32", Value::Number(n)) => {
            !is_integer(v)
                || n.as_f64()
                    .is_some_and(|f| (f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&f))
        }
        ("int64", Value::Number(n)) => {
            !is_integer(v)
                || n.as_i64().is_some()
                || n.as_f64().is_some_and(|f| {
                    (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f)
                })
        }
        ("date-time", Value::String(t)) => t.parse::<jiff::Timestamp>().is_ok(),
        ("date", Value::String(t)) => t.parse::<jiff::civil::Date>().is_ok(),
        ("uuid", Value::String(t)) => is_uuid(t),
        ("ipv4", Value::String(t)) => t.parse::<std::net::Ipv4Addr>().is_ok(),
        ("ipv6", Value::String(t)) => t.parse::<std::net::Ipv6Addr>().is_ok(),
        _ => true,
    };
    if !ok {
        errs.push(FieldError::invalid(
            path,
            v,
            format!(
                "{} in body must be of type {format}: {}",
                body_name(path),
                quoted(v)
            ),
        ));
    }
}

fn quoted(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        other => format!("\"{other}\""),
    }
}

fn is_uuid(t: &str) -> bool {
    let parts: Vec<&str> = t.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn validate_composition(s: &Value, v: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let passes = |sub: &Value| {
        let mut sub_errs = Vec::new();
        validate_node(sub, v, None, path, &mut sub_errs);
        sub_errs.is_empty()
    };
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        for sub in all {
            validate_node(sub, v, None, path, errs);
        }
    }
    if let Some(any) = s.get("anyOf").and_then(Value::as_array)
        && !any.is_empty()
        && !any.iter().any(passes)
    {
        errs.push(FieldError::invalid(
            path,
            v,
            format!(
                "{} in body must validate at least one schema (anyOf)",
                body_name(path)
            ),
        ));
    }
    if let Some(one) = s.get("oneOf").and_then(Value::as_array)
        && !one.is_empty()
        && one.iter().filter(|sub| passes(sub)).count() != 1
    {
        errs.push(FieldError::invalid(
            path,
            v,
            format!(
                "{} in body must validate one and only one schema (oneOf)",
                body_name(path)
            ),
        ));
    }
    if let Some(not) = s.get("not")
        && not.is_object()
        && passes(not)
    {
        errs.push(FieldError::invalid(
            path,
            v,
            format!(
                "{} in body must not validate the schema (not)",
                body_name(path)
            ),
        ));
    }
}

fn number_text(n: &Value) -> String {
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => n.to_string(),
    }
}

fn validate_number(
    s: &Value,
    n: &serde_json::Number,
    v: &Value,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    let Some(x) = n.as_f64() else {
        return;
    };
    let name = body_name(path);
    if let Some(min) = s.get("minimum").filter(|m| m.is_number()) {
        let m = min.as_f64().unwrap_or(f64::MIN);
        let exclusive = flag(s, "exclusiveMinimum");
        if exclusive && x <= m {
            errs.push(FieldError::invalid(
                path,
                v,
                format!("{name} in body should be greater than {}", number_text(min)),
            ));
        } else if !exclusive && x < m {
            errs.push(FieldError::invalid(
                path,
                v,
                format!(
                    "{name} in body should be greater than or equal to {}",
                    number_text(min)
                ),
            ));
        }
    }
    if let Some(max) = s.get("maximum").filter(|m| m.is_number()) {
        let m = max.as_f64().unwrap_or(f64::MAX);
        let exclusive = flag(s, "exclusiveMaximum");
        if exclusive && x >= m {
            errs.push(FieldError::invalid(
                path,
                v,
                format!("{name} in body should be less than {}", number_text(max)),
            ));
        } else if !exclusive && x > m {
            errs.push(FieldError::invalid(
                path,
                v,
                format!(
                    "{name} in body should be less than or equal to {}",
                    number_text(max)
                ),
            ));
        }
    }
    if let Some(multiple) = s.get("multipleOf").and_then(Value::as_f64)
        && multiple > 0.0
    {
        let q = x / multiple;
        if (q - q.round()).abs() > 1e-9 {
            errs.push(FieldError::invalid(
                path,
                v,
                format!(
                    "{name} in body should be a multiple of {}",
                    number_text(&json!(multiple))
                ),
            ));
        }
    }
}

fn validate_string(s: &Value, text: &str, v: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let len = text.chars().count() as u64;
    if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        errs.push(FieldError {
            kind: FieldErrorType::TooLong,
            field: path.clone(),
            value: Some(v.clone()),
            detail: format!("may not be more than {max} bytes"),
        });
    }
    if let Some(min) = s.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        errs.push(FieldError::invalid(
            path,
            v,
            format!(
                "{} in body should be at least {min} chars long",
                body_name(path)
            ),
        ));
    }
}

fn validate_array(s: &Value, values: &[Value], path: &FieldPath, errs: &mut Vec<FieldError>) {
    let len = values.len() as u64;
    if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
        && len > max
    {
        errs.push(FieldError {
            kind: FieldErrorType::TooMany,
            field: path.clone(),
            value: Some(json!(len)),
            detail: format!("{len}: must have at most {max} items"),
        });
    }
    if let Some(min) = s.get("minItems").and_then(Value::as_u64)
        && len < min
    {
        errs.push(FieldError::invalid(
            path,
            &Value::Array(values.to_vec()),
            format!(
                "{} in body should have at least {min} items",
                body_name(path)
            ),
        ));
    }
    let item_schema = items(s);
    if let Some(is) = item_schema {
        for (i, v) in values.iter().enumerate() {
            validate_node(is, v, None, &path.index(i), errs);
        }
    }
    match s.get(LIST_TYPE).and_then(Value::as_str) {
        Some("set") => {
            for (i, v) in values.iter().enumerate() {
                if values[..i].iter().any(|earlier| loose_eq(earlier, v)) {
                    errs.push(FieldError::duplicate(&path.index(i), v));
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = s
                .get(LIST_MAP_KEYS)
                .and_then(Value::as_array)
                .map(|ks| ks.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if keys.is_empty() {
                return;
            }
            let key_of = |item: &Value| -> Vec<Value> {
                keys.iter()
                    .map(|k| {
                        item.get(*k)
                            .or_else(|| {
                                item_schema
                                    .and_then(|is| lookup(is, &[*k]))
                                    .and_then(|ks| ks.get("default"))
                            })
                            .cloned()
                            .unwrap_or(Value::Null)
                    })
                    .collect()
            };
            let mut seen: Vec<Vec<Value>> = Vec::with_capacity(values.len());
            for (i, item) in values.iter().enumerate() {
                if !item.is_object() {
                    continue;
                }
                let key = key_of(item);
                if seen
                    .iter()
                    .any(|k| k.iter().zip(&key).all(|(a, b)| loose_eq(a, b)))
                {
                    let shown: Map<String, Value> = keys
                        .iter()
                        .zip(&key)
                        .filter(|(_, v)| !v.is_null())
                        .map(|(k, v)| ((*k).to_string(), v.clone()))
                        .collect();
                    errs.push(FieldError::duplicate(&path.index(i), &Value::Object(shown)));
                }
                seen.push(key);
            }
        }
        _ => {}
    }
}

fn validate_object(
    s: &Value,
    map: &Map<String, Value>,
    old: Option<&Map<String, Value>>,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    if let Some(required) = s.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(name) {
                errs.push(FieldError::required(&path.child(name), ""));
            }
        }
    }
    let count = map.len() as u64;
    if let Some(max) = s.get("maxProperties").and_then(Value::as_u64)
        && count > max
    {
        errs.push(FieldError {
            kind: FieldErrorType::TooMany,
            field: path.clone(),
            value: Some(json!(count)),
            detail: format!("{count}: must have at most {max} items"),
        });
    }
    if let Some(min) = s.get("minProperties").and_then(Value::as_u64)
        && count < min
    {
        errs.push(FieldError::invalid(
            path,
            &Value::Object(map.clone()),
            format!(
                "{} in body should have at least {min} properties",
                body_name(path)
            ),
        ));
    }
    if flag(s, EMBEDDED) {
        validate_embedded(map, path, errs);
    }
    let props = properties(s);
    let addl = additional(s);
    for (k, v) in map {
        let was = old.and_then(|o| o.get(k));
        if was == Some(v) {
            // Ratcheting: unchanged by this update.
            continue;
        }
        if let Some(ps) = props.and_then(|p| p.get(k)) {
            validate_node(ps, v, was, &path.child(k), errs);
        } else if let Some(a) = addl {
            validate_node(a, v, was, &path.child(k), errs);
        }
    }
}

fn validate_embedded(map: &Map<String, Value>, path: &FieldPath, errs: &mut Vec<FieldError>) {
    for field in ["apiVersion", "kind"] {
        let child = path.child(field);
        match map.get(field) {
            None => errs.push(FieldError::required(&child, "must not be empty")),
            Some(Value::String(s)) if s.is_empty() => {
                errs.push(FieldError::invalid(&child, &json!(""), "must not be empty"))
            }
            Some(Value::String(_)) => {}
            Some(other) => errs.push(FieldError::invalid(&child, other, "must be a string")),
        }
    }
}

/// Paths of object keys that occur more than once in the same object of a raw JSON document
/// (`spec.version`, `spec.nodePools[1].name`), in document order, each once. serde_json keeps
/// the last value silently; strict field validation reports these as
/// `duplicate field "<path>"`. Invalid JSON yields whatever was found before the error.
pub fn find_duplicate_keys(raw_json: &[u8]) -> Vec<String> {
    enum Frame {
        Object {
            path: String,
            keys: HashSet<String>,
            expect_key: bool,
        },
        Array {
            path: String,
            index: usize,
        },
    }
    fn element(path: &str, index: usize) -> String {
        format!("{path}[{index}]")
    }

    let mut dups: Vec<String> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    // The path of the value about to be read.
    let mut next_path = String::new();
    let mut i = 0;
    while i < raw_json.len() {
        match raw_json[i] {
            b'{' => {
                stack.push(Frame::Object {
                    path: std::mem::take(&mut next_path),
                    keys: HashSet::new(),
                    expect_key: true,
                });
                i += 1;
            }
            b'[' => {
                let path = std::mem::take(&mut next_path);
                next_path = element(&path, 0);
                stack.push(Frame::Array { path, index: 0 });
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                i += 1;
            }
            b',' => {
                match stack.last_mut() {
                    Some(Frame::Object { expect_key, .. }) => *expect_key = true,
                    Some(Frame::Array { path, index }) => {
                        *index += 1;
                        next_path = element(path, *index);
                    }
                    None => {}
                }
                i += 1;
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < raw_json.len() && raw_json[i] != b'"' {
                    i += if raw_json[i] == b'\\' { 2 } else { 1 };
                }
                let end = (i + 1).min(raw_json.len());
                i = end;
                if let Some(Frame::Object {
                    path,
                    keys,
                    expect_key,
                }) = stack.last_mut()
                    && *expect_key
                {
                    *expect_key = false;
                    let raw = &raw_json[start..end];
                    let key = serde_json::from_slice::<String>(raw)
                        .unwrap_or_else(|_| String::from_utf8_lossy(raw).into_owned());
                    let child = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    if !keys.insert(key) && !dups.contains(&child) {
                        dups.push(child.clone());
                    }
                    next_path = child;
                }
            }
            _ => i += 1,
        }
    }
    dups
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cluster_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": {
                    "type": "object",
                    "required": ["version"],
                    "properties": {
                        "version": {"type": "string", "minLength": 1, "maxLength": 10},
                        "tier": {"type": "string", "enum": ["production", "staging", "testing"]},
                        "ttl": {"type": "string", "format": "duration"},
                        "controlPlane": {
                            "type": "object",
                            "default": {},
                            "properties": {
                                "replicas": {"type": "integer", "format": "int32", "default": 3, "enum": [1, 3, 5]},
                                "endpoint": {"type": "string", "default": "private"}
                            }
                        },
                        "nodePools": {
                            "type": "array",
                            "maxItems": 3,
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["name"],
                            "items": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "replicas": {"type": "integer", "minimum": 0, "maximum": 100},
                                    "capacityType": {"type": "string", "default": "on-demand"},
                                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                    "taints": {"type": "array", "items": {"type": "object", "properties": {"key": {"type": "string"}}}}
                                }
                            }
                        },
                        "zones": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                        "maxSurge": {"x-kubernetes-int-or-string": true},
                        "window": {"type": "string", "nullable": true},
                        "addons": {
                            "type": "array",
                            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                                      "properties": {"name": {"type": "string"}, "config": {"type": "object", "properties": {"a": {"type": "string"}}}}}
                        },
                        "template": {
                            "type": "object",
                            "x-kubernetes-embedded-resource": true,
                            "properties": {"spec": {"type": "object", "properties": {"x": {"type": "string"}}}}
                        },
                        "created": {"type": "string", "format": "date-time"},
                        "id": {"type": "string", "format": "uuid"}
                    }
                },
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }
        })
    }

    fn paths(v: Vec<FieldPath>) -> Vec<String> {
        v.into_iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn unknown_fields_by_path() {
        let obj = json!({
            "apiVersion": "slipway.dev/v1alpha1",
            "kind": "Cluster",
            "metadata": {"name": "a", "labels": {"x": "y"}, "colour": "red",
                         "ownerReferences": [{"uid": "1", "name": "n", "kind": "K", "apiVersion": "v1", "extra": 1}],
                         "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {}}}]},
            "spec": {
                "version": "1.33.4",
                "colour": "blue",
                "nodePools": [{"name": "a", "colour": "green", "labels": {"any": "thing"}, "taints": [{"key": "k", "effect": "x"}]}],
                "addons": [{"name": "x", "anything": {"goes": 1}, "config": {"a": "b", "c": "d"}}],
                "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "bogus": 1}, "spec": {"x": "1", "y": "2"}, "other": 1},
                "maxSurge": {"odd": 1},
                "version2": null
            },
            "status": {"whatever": {"deep": true}},
            "top": 1
        });
        assert_eq!(
            paths(unknown_fields(&cluster_schema(), &obj)),
            vec![
                "metadata.colour",
                "metadata.ownerReferences[0].extra",
                "spec.colour",
                "spec.nodePools[0].colour",
                "spec.nodePools[0].taints[0].effect",
                "spec.addons[0].config.c",
                "spec.template.metadata.bogus",
                "spec.template.spec.y",
                "spec.template.other",
                "spec.version2",
                "top",
            ]
        );
    }

    #[test]
    fn no_schema_means_nothing_is_unknown() {
        let obj = json!({"spec": {"anything": 1}});
        assert!(unknown_fields(&Value::Null, &obj).is_empty());
        assert!(unknown_fields(&json!({}), &obj).is_empty());
        let mut copy = obj.clone();
        prune(&json!({}), &mut copy);
        assert_eq!(copy, obj);
        // A bare `type: object` root still knows apiVersion, kind and metadata.
        let bare = json!({"type": "object"});
        let obj =
            json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a", "x": 1}, "spec": {}});
        assert_eq!(
            paths(unknown_fields(&bare, &obj)),
            vec!["metadata.x", "spec"]
        );
    }

    #[test]
    fn prune_drops_exactly_the_unknown_fields() {
        let mut obj = json!({
            "apiVersion": "slipway.dev/v1alpha1",
            "kind": "Cluster",
            "metadata": {"name": "a", "colour": "red"},
            "spec": {
                "version": "1.33.4",
                "colour": "blue",
                "nodePools": [{"name": "a", "colour": "green"}],
                "addons": [{"name": "x", "anything": {"goes": 1}, "config": {"a": "b", "c": "d"}}]
            },
            "status": {"whatever": {"deep": true}}
        });
        prune(&cluster_schema(), &mut obj);
        assert_eq!(
            obj,
            json!({
                "apiVersion": "slipway.dev/v1alpha1",
                "kind": "Cluster",
                "metadata": {"name": "a"},
                "spec": {
                    "version": "1.33.4",
                    "nodePools": [{"name": "a"}],
                    "addons": [{"name": "x", "anything": {"goes": 1}, "config": {"a": "b"}}]
                },
                "status": {"whatever": {"deep": true}}
            })
        );
        assert!(unknown_fields(&cluster_schema(), &obj).is_empty());
    }

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn validation_table() {
        let s = cluster_schema();
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({"spec": {"version": "1.33"}}), vec![]),
            (json!({"spec": {}}), vec!["spec.version: Required value"]),
            (
                json!({"spec": {"version": 1}}),
                vec![
                    "spec.version: Invalid value: \"integer\": spec.version in body must be of type string: \"integer\"",
                ],
            ),
            (
                json!({"spec": {"version": ""}}),
                vec![
                    "spec.version: Invalid value: \"\": spec.version in body should be at least 1 chars long",
                ],
            ),
            (
                json!({"spec": {"version": "12345678901"}}),
                vec!["spec.version: Too long: may not be more than 10 bytes"],
            ),
            (
                json!({"spec": {"version": "1", "tier": "gold"}}),
                vec![
                    "spec.tier: Unsupported value: \"gold\": supported values: \"production\", \"staging\", \"testing\"",
                ],
            ),
            (
                json!({"spec": {"version": "1", "controlPlane": {"replicas": 2}}}),
                vec![
                    "spec.controlPlane.replicas: Unsupported value: 2: supported values: \"1\", \"3\", \"5\"",
                ],
            ),
            (
                json!({"spec": {"version": "1", "controlPlane": {"replicas": 3.0}}}),
                vec![],
            ),
            (
                json!({"spec": {"version": "1", "controlPlane": {"replicas": 1.5}}}),
                vec![
                    "spec.controlPlane.replicas: Invalid value: \"number\": spec.controlPlane.replicas in body must be of type integer: \"number\"",
                ],
            ),
            (
                json!({"spec": {"version": "1", "nodePools": [{"name": "a", "replicas": -1}, {"name": "b", "replicas": 101}]}}),
                vec![
                    "spec.nodePools[0].replicas: Invalid value: -1: spec.nodePools[0].replicas in body should be greater than or equal to 0",
                    "spec.nodePools[1].replicas: Invalid value: 101: spec.nodePools[1].replicas in body should be less than or equal to 100",
                ],
            ),
            (
                json!({"spec": {"version": "1", "nodePools": [{"name": "a"}, {"name": "b"}, {"name": "a"}]}}),
                vec!["spec.nodePools[2]: Duplicate value: {\"name\":\"a\"}"],
            ),
            (
                json!({"spec": {"version": "1", "nodePools": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}]}}),
                vec!["spec.nodePools: Too many: 4: must have at most 3 items"],
            ),
            (
                json!({"spec": {"version": "1", "nodePools": [{}]}}),
                vec!["spec.nodePools[0].name: Required value"],
            ),
            (
                json!({"spec": {"version": "1", "nodePools": [{"name": "a", "labels": {"k": 1}}]}}),
                vec![
                    "spec.nodePools[0].labels.k: Invalid value: \"integer\": spec.nodePools[0].labels.k in body must be of type string: \"integer\"",
                ],
            ),
            (
                json!({"spec": {"version": "1", "zones": ["a", "b", "a"]}}),
                vec!["spec.zones[2]: Duplicate value: \"a\""],
            ),
            (json!({"spec": {"version": "1", "maxSurge": 1}}), vec![]),
            (json!({"spec": {"version": "1", "maxSurge": "10%"}}), vec![]),
            (
                json!({"spec": {"version": "1", "maxSurge": true}}),
                vec![
                    "spec.maxSurge: Invalid value: \"boolean\": spec.maxSurge in body must be of type integer-or-string: \"boolean\"",
                ],
            ),
            (json!({"spec": {"version": "1", "window": null}}), vec![]),
            (
                json!({"spec": {"version": null}}),
                vec![
                    "spec.version: Invalid value: \"null\": spec.version in body must be of type string: \"null\"",
                ],
            ),
            (
                json!({"spec": {"version": "1", "template": {"spec": {}}}}),
                vec![
                    "spec.template.apiVersion: Required value: must not be empty",
                    "spec.template.kind: Required value: must not be empty",
                ],
            ),
            (
                json!({"spec": {"version": "1", "template": {"apiVersion": "v1", "kind": "Pod"}}}),
                vec![],
            ),
            (
                json!({"spec": {"version": "1", "created": "2025-01-02T03:04:05Z", "id": "0f8fad5b-d9cb-469f-a165-70867728950e"}}),
                vec![],
            ),
            (
                json!({"spec": {"version": "1", "created": "yesterday", "id": "nope"}}),
                vec![
                    "spec.created: Invalid value: \"yesterday\": spec.created in body must be of type date-time: \"yesterday\"",
                    "spec.id: Invalid value: \"nope\": spec.id in body must be of type uuid: \"nope\"",
                ],
            ),
            (
                json!({"spec": {"version": "1"}, "status": {"anything": [1, "x"]}}),
                vec![],
            ),
            (
                json!({"spec": "text"}),
                vec![
                    "spec: Invalid value: \"string\": spec in body must be of type object: \"string\"",
                ],
            ),
        ];
        for (obj, want) in cases {
            assert_eq!(messages(&validate(&s, &obj)), want, "{obj}");
        }
        let errs = validate(&s, &json!({"spec": {"version": "1", "tier": "gold"}}));
        assert_eq!(errs[0].kind, FieldErrorType::NotSupported);
        let errs = validate(&s, &json!({"spec": {"version": "1", "zones": ["a", "a"]}}));
        assert_eq!(errs[0].kind, FieldErrorType::Duplicate);
    }

    #[test]
    fn bounds_formats_and_composition() {
        let s = json!({"type": "object", "properties": {
            "n": {"type": "number", "minimum": 0, "exclusiveMinimum": true, "maximum": 1.5, "exclusiveMaximum": true},
            "m": {"type": "integer", "multipleOf": 5},
            "i": {"type": "integer", "format": "int32"},
            "ip": {"type": "string", "format": "ipv4"},
            "d": {"type": "string", "format": "date"},
            "l": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            "o": {"type": "object", "maxProperties": 1, "minProperties": 1, "additionalProperties": {"type": "integer"}},
            "any": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            "one": {"type": "integer", "oneOf": [{"minimum": 0}, {"maximum": 10}]},
            "not": {"type": "string", "not": {"enum": ["forbidden"]}},
            "all": {"type": "integer", "allOf": [{"minimum": 1}, {"maximum": 2}]}
        }});
        let ok = json!({"n": 1, "m": 10, "i": 7, "ip": "10.0.0.1", "d": "2025-02-03", "l": ["a"], "o": {"a": 1},
                        "any": "x", "one": 20, "not": "fine", "all": 2});
        assert_eq!(messages(&validate(&s, &ok)), Vec::<String>::new());
        let bad = json!({"n": 0, "m": 7, "i": 3000000000u64, "ip": "10.0.0", "d": "2025-13-01", "l": [], "o": {"a": 1, "b": 2},
                         "any": true, "one": 5, "not": "forbidden", "all": 3});
        assert_eq!(
            messages(&validate(&s, &bad)),
            vec![
                "n: Invalid value: 0: n in body should be greater than 0",
                "m: Invalid value: 7: m in body should be a multiple of 5",
                "i: Invalid value: 3000000000: i in body must be of type int32: \"3000000000\"",
                "ip: Invalid value: \"10.0.0\": ip in body must be of type ipv4: \"10.0.0\"",
                "d: Invalid value: \"2025-13-01\": d in body must be of type date: \"2025-13-01\"",
                "l: Invalid value: []: l in body should have at least 1 items",
                "o: Too many: 2: must have at most 1 items",
                "any: Invalid value: true: any in body must validate at least one schema (anyOf)",
                "one: Invalid value: 5: one in body must validate one and only one schema (oneOf)",
                "not: Invalid value: \"forbidden\": not in body must not validate the schema (not)",
                "all: Invalid value: 3: all in body should be less than or equal to 2",
            ]
        );
        assert_eq!(
            messages(&validate(&s, &json!({"n": 1.5}))),
            vec!["n: Invalid value: 1.5: n in body should be less than 1.5"]
        );
    }

    #[test]
    fn updates_are_judged_by_what_they_change() {
        let s = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "replicas": {"type": "integer", "minimum": 1},
                "name": {"type": "string", "maxLength": 3}
            }},
            "status": {"type": "object", "properties": {"ready": {"type": "integer", "minimum": 0}}}
        }});
        // Stored before a stricter schema: replicas 0 is invalid now.
        let old = json!({"spec": {"replicas": 0, "name": "abc"}, "status": {"ready": 1}});
        let status_update = json!({"spec": {"replicas": 0, "name": "abc"}, "status": {"ready": 2}});
        assert_eq!(
            messages(&validate_update(&s, &status_update, Some(&old))),
            Vec::<String>::new()
        );
        // The same object as a create, or without its previous version, is refused.
        assert_eq!(
            messages(&validate(&s, &status_update)),
            vec![
                "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"
            ]
        );
        // A changed field is validated, its unchanged sibling still is not.
        let renamed = json!({"spec": {"replicas": 0, "name": "abcd"}, "status": {"ready": -1}});
        assert_eq!(
            messages(&validate_update(&s, &renamed, Some(&old))),
            vec![
                "spec.name: Too long: may not be more than 3 bytes",
                "status.ready: Invalid value: -1: status.ready in body should be greater than or equal to 0",
            ]
        );
        // Changing the invalid value to another invalid value is refused.
        let still_bad = json!({"spec": {"replicas": -1, "name": "abc"}, "status": {"ready": 1}});
        assert_eq!(
            messages(&validate_update(&s, &still_bad, Some(&old))),
            vec![
                "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 1"
            ]
        );
    }

    #[test]
    fn defaults_fill_absent_fields_recursively() {
        let mut obj = json!({"spec": {"version": "1", "nodePools": [{"name": "a"}, {"name": "b", "capacityType": "spot"}], "tier": null, "window": null}});
        apply_defaults(&cluster_schema(), &mut obj);
        assert_eq!(
            obj,
            json!({"spec": {
                "version": "1",
                "nodePools": [{"name": "a", "capacityType": "on-demand"}, {"name": "b", "capacityType": "spot"}],
                "window": null,
                "controlPlane": {"replicas": 3, "endpoint": "private"}
            }})
        );
        // Present values win, nulls of non-nullable fields with defaults are replaced.
        let mut obj = json!({"spec": {"controlPlane": {"replicas": 5, "endpoint": null}}});
        apply_defaults(&cluster_schema(), &mut obj);
        assert_eq!(
            obj["spec"]["controlPlane"],
            json!({"replicas": 5, "endpoint": "private"})
        );
        let map_schema =
            json!({"type": "object", "additionalProperties": {"type": "string", "default": "d"}});
        let mut m = json!({"a": null, "b": "x"});
        apply_defaults(&map_schema, &mut m);
        assert_eq!(m, json!({"a": "d", "b": "x"}));
        let items_schema = json!({"type": "array", "items": {"type": "object", "default": {}, "properties": {"x": {"type": "integer", "default": 1}}}});
        let mut l = json!([null, {"x": 2}]);
        apply_defaults(&items_schema, &mut l);
        assert_eq!(l, json!([{"x": 1}, {"x": 2}]));
    }

    #[test]
    fn lookup_finds_sub_schemas() {
        let s = cluster_schema();
        let pools = lookup(&s, &["spec", "nodePools"]).unwrap();
        assert_eq!(pools[LIST_TYPE], "map");
        assert_eq!(
            lookup(&s, &["spec", "nodePools", "*", "name"]).unwrap()["type"],
            "string"
        );
        assert_eq!(
            lookup(&s, &["spec", "nodePools", "0", "replicas"]).unwrap()["type"],
            "integer"
        );
        assert_eq!(
            lookup(&s, &["spec", "nodePools", "labels"]).unwrap()["type"],
            "object"
        );
        assert_eq!(
            lookup(&s, &["spec", "nodePools", "[]", "labels", "anything"]).unwrap()["type"],
            "string"
        );
        assert_eq!(
            lookup(&s, &["metadata", "finalizers"]).unwrap()[LIST_TYPE],
            "set"
        );
        assert_eq!(
            lookup(&s, &["spec", "template", "metadata", "ownerReferences"]).unwrap()
                [LIST_MAP_KEYS],
            json!(["uid"])
        );
        assert!(lookup(&s, &["spec", "nope"]).is_none());
        assert_eq!(lookup::<&str>(&s, &[]), Some(&s));
        let owned: Vec<String> = vec!["spec".into(), "zones".into()];
        assert_eq!(lookup(&s, &owned).unwrap()[LIST_TYPE], "set");
    }

    #[test]
    fn duplicate_keys_in_raw_json() {
        let cases: Vec<(&str, Vec<&str>)> = vec![
            (r#"{"a": 1, "b": 2}"#, vec![]),
            (
                r#"{"spec": {"version": "1", "version": "2"}}"#,
                vec!["spec.version"],
            ),
            (r#"{"a": 1, "a": 2, "a": 3}"#, vec!["a"]),
            (
                r#"{"spec": {"nodePools": [{"name": "a"}, {"name": "b", "name": "c"}]}}"#,
                vec!["spec.nodePools[1].name"],
            ),
            (r#"{"a": {"x": 1}, "b": {"x": 1}}"#, vec![]),
            (r#"{"a": "\"a\"", "\u0061": 2}"#, vec!["a"]),
            (
                r#"{"k\"ey": 1, "k\"ey": {"n": [1, {"n": 1, "n": 2}]}}"#,
                vec!["k\"ey", "k\"ey.n[1].n"],
            ),
            (r#"[{"a": 1}, {"a": 1, "a": 2}]"#, vec!["[1].a"]),
            (r#"{"a": [1, 2, "x,y", {"b": 1}], "a": 1}"#, vec!["a"]),
            (r#"{"a": "}", "b": 1, "b": 2"#, vec!["b"]),
            ("", vec![]),
            ("{\"a", vec![]),
        ];
        for (raw, want) in cases {
            assert_eq!(find_duplicate_keys(raw.as_bytes()), want, "{raw}");
        }
    }

    proptest::proptest! {
        #[test]
        fn duplicate_scanner_never_panics(raw in proptest::collection::vec(proptest::sample::select(b"{}[]\",:\\ab1 ".to_vec()), 0..40)) {
            let _ = find_duplicate_keys(&raw);
        }

        #[test]
        fn serialized_values_have_no_duplicates(keys in proptest::collection::vec("[a-c\"\\\\]{1,3}", 0..6)) {
            let mut map = Map::new();
            for (i, k) in keys.iter().enumerate() {
                map.insert(k.clone(), json!({"inner": [i, {"x": k}]}));
            }
            let text = serde_json::to_vec(&Value::Object(map)).unwrap();
            proptest::prop_assert!(find_duplicate_keys(&text).is_empty());
        }
    }
}
