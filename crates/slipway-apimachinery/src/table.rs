//! `meta.k8s.io/v1` `Table` responses (what `kubectl get` asks for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), built the way the apiserver's
//! custom resource table convertor builds them:
//!
//! - columns: `Name` (format `name`) first, then the kind's printer columns in order, each with
//!   its `priority` (kubectl shows priority > 0 only with `-o wide`); a kind without printer
//!   columns gets `Name` and `Age` (`.metadata.creationTimestamp`, type `date`);
//! - cells: the first value the column's JSONPath selects, typed by the column type: strings
//!   as printed text (numbers and booleans as text, objects and arrays as JSON), integers as
//!   numbers (fractions truncated), dates as human durations (`45s`, `5m`, `3h2m`, `2d`;
//!   `<unknown>` for an empty or zero timestamp, `<invalid>` for an unparseable one); no
//!   value, `null` or a value of the wrong type gives a `null` cell, which kubectl prints as
//!   `<none>`;
//! - each row's `object` per `includeObject`: `None` (null), `Metadata` (the default, a
//!   `PartialObjectMetadata`) or `Object` (the whole object).

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use crate::jsonpath::JsonPath;
use crate::resource::ResourceDef;
use crate::status::ApiError;

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

const CREATION_TIMESTAMP_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// What each table row carries in `object` (the `includeObject` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    /// A `PartialObjectMetadata` with the object's metadata (the default).
    #[default]
    Metadata,
    Object,
}

impl IncludeObject {
    /// `None`, `Metadata` or `Object`; absent or empty means `Metadata`. Anything else is a
    /// 400 `unrecognized includeObject value: "..."`, as upstream.
    #[allow(clippy::result_large_err)] // ApiError is the crate-wide error type
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None | Some("") | Some("Metadata") => Ok(Self::Metadata),
            Some("None") => Ok(Self::None),
            Some("Object") => Ok(Self::Object),
            Some(other) => Err(ApiError::bad_request(format!(
                "unrecognized includeObject value: {other:?}"
            ))),
        }
    }
}

/// One column: its definition and how to compute its cells.
struct Column {
    definition: Value,
    type_: String,
    /// `None` when the column's JSONPath does not parse: its cells are all null.
    path: Option<JsonPath>,
}

fn columns(def: &ResourceDef) -> Vec<Column> {
    if def.printer_columns.is_empty() {
        return vec![Column {
            definition: json!({
                "name": "Age",
                "type": "date",
                "format": "",
                "description": CREATION_TIMESTAMP_DESCRIPTION,
                "priority": 0,
            }),
            type_: "date".into(),
            path: JsonPath::parse(".metadata.creationTimestamp").ok(),
        }];
    }
    def.printer_columns
        .iter()
        .map(|c| {
            let description = if c.description.is_empty() {
                format!(
                    "Custom resource definition column (in JSONPath format): {}",
                    c.json_path
                )
            } else {
                c.description.clone()
            };
            Column {
                definition: json!({
                    "name": c.name,
                    "type": c.type_,
                    "format": c.format.clone().unwrap_or_default(),
                    "description": description,
                    "priority": c.priority,
                }),
                type_: c.type_.clone(),
                path: JsonPath::parse(&c.json_path).ok(),
            }
        })
        .collect()
}

/// The `columnDefinitions` of the kind's tables.
pub fn column_definitions(def: &ResourceDef) -> Vec<Value> {
    let mut out = vec![name_column()];
    out.extend(columns(def).into_iter().map(|c| c.definition));
    out
}

fn name_column() -> Value {
    json!({
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": NAME_DESCRIPTION,
        "priority": 0,
    })
}

/// A `Table` of `objects` (one row each, in order). `list_metadata` becomes the table's
/// `metadata` (`resourceVersion`, `continue`, `remainingItemCount`); `now` is the time ages
/// are measured from.
pub fn build_table(
    def: &ResourceDef,
    objects: &[Value],
    include: IncludeObject,
    now: Timestamp,
    list_metadata: Value,
) -> Value {
    let columns = columns(def);
    let mut definitions = vec![name_column()];
    definitions.extend(columns.iter().map(|c| c.definition.clone()));
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let mut cells = Vec::with_capacity(columns.len() + 1);
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            cells.push(Value::String(name.to_string()));
            for column in &columns {
                let name = column.definition["name"].as_str().unwrap_or_default();
                if let Some(computed) = def.strategy.printer_cell(name, obj) {
                    cells.push(computed);
                    continue;
                }
                let value = column
                    .path
                    .as_ref()
                    .and_then(|p| p.eval(obj).into_iter().next());
                cells.push(value.map_or(Value::Null, |v| cell(&column.type_, v, now)));
            }
            json!({"cells": cells, "object": row_object(obj, include)})
        })
        .collect();
    let metadata = match list_metadata {
        Value::Null => Value::Object(Map::new()),
        other => other,
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

fn row_object(obj: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => obj.clone(),
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| Value::Object(Map::new())),
        }),
    }
}

/// One cell of a column of type `type_` from the value its JSONPath selected.
fn cell(type_: &str, value: &Value, now: Timestamp) -> Value {
    match (type_, value) {
        (_, Value::Null) => Value::Null,
        ("string", Value::String(s)) => Value::String(s.clone()),
        ("string", Value::Number(n)) => Value::String(n.to_string()),
        ("string", Value::Bool(b)) => Value::String(b.to_string()),
        ("string", other) => Value::String(other.to_string()),
        ("integer", Value::Number(n)) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => json!(i),
            (None, Some(u), _) => json!(u),
            // Saturating conversion: a fraction is truncated, as upstream's int64(float64).
            (None, None, Some(f)) => json!(f.trunc() as i64),
            _ => Value::Null,
        },
        ("number", Value::Number(_)) => value.clone(),
        ("boolean", Value::Bool(_)) => value.clone(),
        ("date", Value::String(s)) => Value::String(age(s, now)),
        _ => Value::Null,
    }
}

/// How long ago an RFC 3339 timestamp was, as `kubectl get` shows ages.
fn age(text: &str, now: Timestamp) -> String {
    if text.is_empty() || text == "null" {
        return "<unknown>".into();
    }
    match text.parse::<Timestamp>() {
        // Go's zero time, what an unset metav1.Time serializes as.
        Ok(ts) if ts.as_second() == -62_135_596_800 => "<unknown>".into(),
        Ok(ts) => human_duration(now.duration_since(ts)),
        Err(_) => "<invalid>".into(),
    }
}

/// A duration the way kubectl prints ages (upstream's `duration.HumanDuration`): `45s`,
/// `5m30s`, `42m`, `3h2m`, `20h`, `2d4h`, `30d`, `2y45d`, `9y`; up to a second in the future
/// is `0s`, further is `<invalid>`.
pub fn human_duration(d: SignedDuration) -> String {
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        let dy = days % 365;
        return if dy == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{dy}d")
        };
    }
    format!("{years}y")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::resource::{NoStrategy, PrinterColumn};
    use std::sync::Arc;

    fn def(columns: Vec<PrinterColumn>) -> ResourceDef {
        ResourceDef {
            group: "slipway.dev".into(),
            version: "v1alpha1".into(),
            kind: "Cluster".into(),
            list_kind: "ClusterList".into(),
            plural: "clusters".into(),
            singular: "cluster".into(),
            short_names: vec![],
            categories: vec![],
            namespaced: true,
            status_subresource: true,
            schema: json!({}),
            printer_columns: columns,
            tracks_generation: true,
            strategy: Arc::new(NoStrategy),
            scale: None,
            selectable_fields: Vec::new(),
            eviction: false,
        }
    }

    fn column(name: &str, type_: &str, json_path: &str, priority: i32) -> PrinterColumn {
        PrinterColumn {
            name: name.into(),
            type_: type_.into(),
            format: None,
            description: String::new(),
            json_path: json_path.into(),
            priority,
        }
    }

    fn now() -> Timestamp {
        "2025-06-01T12:00:00Z".parse().unwrap()
    }

    fn cluster(name: &str, created: &str) -> Value {
        json!({
            "apiVersion": "slipway.dev/v1alpha1",
            "kind": "Cluster",
            "metadata": {"name": name, "namespace": "team", "creationTimestamp": created, "resourceVersion": "7"},
            "spec": {"version": "1.33.4", "controlPlane": {"replicas": 3}, "nodePools": [{"name": "general", "replicas": 3}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodes": 4.0, "costPerHour": 1.25, "paused": false}
        })
    }

    #[test]
    fn human_durations_like_kubectl() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (45, "45s"),
            (119, "119s"),
            (120, "2m"),
            (5 * 60 + 30, "5m30s"),
            (5 * 60, "5m"),
            (42 * 60 + 5, "42m"),
            (179 * 60, "179m"),
            (3 * 3600 + 2 * 60, "3h2m"),
            (3 * 3600, "3h"),
            (20 * 3600 + 59 * 60, "20h"),
            (2 * 86400, "2d"),
            (2 * 86400 + 4 * 3600, "2d4h"),
            (30 * 86400, "30d"),
            (2 * 365 * 86400 + 45 * 86400, "2y45d"),
            (3 * 365 * 86400, "3y"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(
                human_duration(SignedDuration::from_secs(secs)),
                want,
                "{secs}s"
            );
        }
    }

    #[test]
    fn default_columns_are_name_and_age() {
        let objs = vec![
            cluster("a", "2025-06-01T11:55:00Z"),
            cluster("b", ""),
            cluster("c", "garbage"),
            json!({"metadata": {"name": "d"}}),
            cluster("e", "0001-01-01T00:00:00Z"),
        ];
        let table = build_table(
            &def(vec![]),
            &objs,
            IncludeObject::None,
            now(),
            json!({"resourceVersion": "9"}),
        );
        assert_eq!(table["kind"], "Table");
        assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(table["metadata"], json!({"resourceVersion": "9"}));
        let cols: Vec<&str> = table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(cols, vec!["Name", "Age"]);
        assert_eq!(table["columnDefinitions"][0]["format"], "name");
        assert_eq!(table["columnDefinitions"][1]["type"], "date");
        let cells: Vec<Value> = table["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["cells"].clone())
            .collect();
        assert_eq!(
            cells,
            vec![
                json!(["a", "5m"]),
                json!(["b", "<unknown>"]),
                json!(["c", "<invalid>"]),
                json!(["d", null]),
                json!(["e", "<unknown>"]),
            ]
        );
        assert_eq!(table["rows"][0]["object"], Value::Null);
    }

    #[test]
    fn printer_columns_in_order_with_types_and_priority() {
        let mut version = column("Version", "string", ".spec.version", 0);
        version.description = "Kubernetes version".into();
        version.format = Some("semver".into());
        let d = def(vec![
            version,
            column("Control Plane", "integer", ".spec.controlPlane.replicas", 0),
            column("Nodes", "integer", ".status.nodes", 0),
            column(
                "Ready",
                "string",
                ".status.conditions[?(@.type==\"Ready\")].status",
                0,
            ),
            column("Pools", "string", ".spec.nodePools[*].name", 1),
            column("Pool", "string", ".spec.nodePools[0]", 1),
            column("Cost", "number", ".status.costPerHour", 1),
            column("Paused", "boolean", ".status.paused", 1),
            column(
                "Replicas As Text",
                "string",
                "{.spec.controlPlane.replicas}",
                1,
            ),
            column("Missing", "string", ".status.endpoint", 1),
            column("Wrong Type", "integer", ".spec.version", 1),
            column("Age", "date", ".metadata.creationTimestamp", 0),
        ]);
        let table = build_table(
            &d,
            &[cluster("payments-eu", "2025-05-29T09:00:00Z")],
            IncludeObject::Metadata,
            now(),
            Value::Null,
        );
        let defs = table["columnDefinitions"].as_array().unwrap();
        let names: Vec<&str> = defs.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            vec![
                "Name",
                "Version",
                "Control Plane",
                "Nodes",
                "Ready",
                "Pools",
                "Pool",
                "Cost",
                "Paused",
                "Replicas As Text",
                "Missing",
                "Wrong Type",
                "Age"
            ]
        );
        assert_eq!(
            defs[1],
            json!({"name": "Version", "type": "string", "format": "semver", "description": "Kubernetes version", "priority": 0})
        );
        assert_eq!(
            defs[2]["description"],
            "Custom resource definition column (in JSONPath format): .spec.controlPlane.replicas"
        );
        assert_eq!(defs[2]["format"], "");
        assert_eq!(defs[5]["priority"], 1);
        assert_eq!(
            table["rows"][0]["cells"],
            json!([
                "payments-eu",
                "1.33.4",
                3,
                4,
                "True",
                "general",
                "{\"name\":\"general\",\"replicas\":3}",
                1.25,
                false,
                "3",
                null,
                null,
                "3d3h"
            ])
        );
        assert_eq!(table["metadata"], json!({}));
        assert_eq!(
            table["rows"][0]["object"],
            json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": {"name": "payments-eu", "namespace": "team", "creationTimestamp": "2025-05-29T09:00:00Z", "resourceVersion": "7"}
            })
        );
        assert_eq!(column_definitions(&d), defs.clone());
    }

    #[test]
    fn include_object_variants() {
        assert_eq!(IncludeObject::parse(None).unwrap(), IncludeObject::Metadata);
        assert_eq!(
            IncludeObject::parse(Some("")).unwrap(),
            IncludeObject::Metadata
        );
        assert_eq!(
            IncludeObject::parse(Some("Metadata")).unwrap(),
            IncludeObject::Metadata
        );
        assert_eq!(
            IncludeObject::parse(Some("None")).unwrap(),
            IncludeObject::None
        );
        assert_eq!(
            IncludeObject::parse(Some("Object")).unwrap(),
            IncludeObject::Object
        );
        let err = IncludeObject::parse(Some("Everything")).unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(
            err.message,
            "unrecognized includeObject value: \"Everything\""
        );
        let obj = cluster("a", "2025-06-01T11:59:15Z");
        let table = build_table(
            &def(vec![]),
            std::slice::from_ref(&obj),
            IncludeObject::Object,
            now(),
            json!({}),
        );
        assert_eq!(table["rows"][0]["object"], obj);
        assert_eq!(table["rows"][0]["cells"], json!(["a", "45s"]));
        let empty = build_table(
            &def(vec![]),
            &[],
            IncludeObject::Metadata,
            now(),
            json!({"continue": "x"}),
        );
        assert_eq!(empty["rows"], json!([]));
        assert_eq!(empty["columnDefinitions"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn unparseable_column_paths_give_null_cells() {
        let d = def(vec![column("Bad", "string", ".spec[", 0)]);
        let table = build_table(
            &d,
            &[cluster("a", "")],
            IncludeObject::None,
            now(),
            Value::Null,
        );
        assert_eq!(table["rows"][0]["cells"], json!(["a", null]));
    }
}
