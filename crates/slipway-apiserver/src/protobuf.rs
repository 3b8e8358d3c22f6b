//! Decoding the Kubernetes protobuf wire form of the built-in kinds kubectl creates with
//! typed clients (`kubectl create namespace|configmap|secret` send
//! `application/vnd.kubernetes.protobuf`). Responses are always JSON, which those clients
//! also accept. Only the kinds kubectl's generators produce are understood (including the
//! `apps/v1` Deployment of `kubectl create deployment`, see [`apps`], and the `policy/v1`
//! Eviction `kubectl drain` posts); anything else is 415 as before.
//!
//! Wire form: the magic `k8s\0`, then a `runtime.Unknown` whose `raw` holds the object's
//! message (field numbers from k8s.io/api's generated.proto).

mod apps;

use std::collections::BTreeMap;

use base64::Engine as _;
use prost::Message;
use serde_json::{Map, Value, json};
use slipway_apimachinery::ApiError;

pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";

#[derive(Clone, PartialEq, Message)]
struct Unknown {
    #[prost(message, optional, tag = "1")]
    type_meta: Option<TypeMeta>,
    #[prost(bytes = "vec", optional, tag = "2")]
    raw: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct TypeMeta {
    #[prost(string, optional, tag = "1")]
    api_version: Option<String>,
    #[prost(string, optional, tag = "2")]
    kind: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct Time {
    #[prost(int64, optional, tag = "1")]
    seconds: Option<i64>,
}

#[derive(Clone, PartialEq, Message)]
struct OwnerReference {
    #[prost(string, optional, tag = "1")]
    kind: Option<String>,
    #[prost(string, optional, tag = "3")]
    name: Option<String>,
    #[prost(string, optional, tag = "4")]
    uid: Option<String>,
    #[prost(string, optional, tag = "5")]
    api_version: Option<String>,
    #[prost(bool, optional, tag = "6")]
    controller: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    block_owner_deletion: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
struct ObjectMeta {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "2")]
    generate_name: Option<String>,
    #[prost(string, optional, tag = "3")]
    namespace: Option<String>,
    #[prost(string, optional, tag = "5")]
    uid: Option<String>,
    #[prost(string, optional, tag = "6")]
    resource_version: Option<String>,
    #[prost(message, optional, tag = "8")]
    creation_timestamp: Option<Time>,
    #[prost(btree_map = "string, string", tag = "11")]
    labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "12")]
    annotations: BTreeMap<String, String>,
    #[prost(message, repeated, tag = "13")]
    owner_references: Vec<OwnerReference>,
    #[prost(string, repeated, tag = "14")]
    finalizers: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct NamespaceSpec {
    #[prost(string, repeated, tag = "1")]
    finalizers: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct Namespace {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<NamespaceSpec>,
}

#[derive(Clone, PartialEq, Message)]
struct Preconditions {
    #[prost(string, optional, tag = "1")]
    uid: Option<String>,
    #[prost(string, optional, tag = "2")]
    resource_version: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct DeleteOptions {
    #[prost(int64, optional, tag = "1")]
    grace_period_seconds: Option<i64>,
    #[prost(message, optional, tag = "2")]
    preconditions: Option<Preconditions>,
    #[prost(bool, optional, tag = "3")]
    orphan_dependents: Option<bool>,
    #[prost(string, optional, tag = "4")]
    propagation_policy: Option<String>,
    #[prost(string, repeated, tag = "5")]
    dry_run: Vec<String>,
}

/// `policy/v1` Eviction (what `kubectl drain` posts to `pods/{name}/eviction`).
#[derive(Clone, PartialEq, Message)]
struct Eviction {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    delete_options: Option<DeleteOptions>,
}

fn delete_options_json(o: DeleteOptions) -> Value {
    let mut out = Map::new();
    insert_opt(
        &mut out,
        "gracePeriodSeconds",
        o.grace_period_seconds.map(Value::from),
    );
    if let Some(p) = o.preconditions {
        let mut pre = Map::new();
        insert_opt(&mut pre, "uid", p.uid.map(Value::String));
        insert_opt(
            &mut pre,
            "resourceVersion",
            p.resource_version.map(Value::String),
        );
        out.insert("preconditions".into(), Value::Object(pre));
    }
    insert_opt(
        &mut out,
        "orphanDependents",
        o.orphan_dependents.map(Value::Bool),
    );
    insert_opt(
        &mut out,
        "propagationPolicy",
        o.propagation_policy.map(Value::String),
    );
    if !o.dry_run.is_empty() {
        out.insert("dryRun".into(), json!(o.dry_run));
    }
    Value::Object(out)
}

#[derive(Clone, PartialEq, Message)]
struct ConfigMap {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(btree_map = "string, string", tag = "2")]
    data: BTreeMap<String, String>,
    #[prost(btree_map = "string, bytes", tag = "3")]
    binary_data: BTreeMap<String, Vec<u8>>,
    #[prost(bool, optional, tag = "4")]
    immutable: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
struct Secret {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(btree_map = "string, bytes", tag = "2")]
    data: BTreeMap<String, Vec<u8>>,
    #[prost(string, optional, tag = "3")]
    type_: Option<String>,
    #[prost(btree_map = "string, string", tag = "4")]
    string_data: BTreeMap<String, String>,
    #[prost(bool, optional, tag = "5")]
    immutable: Option<bool>,
}

fn b64(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn insert_opt(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        map.insert(key.into(), v);
    }
}

fn string_map(m: &BTreeMap<String, String>) -> Option<Value> {
    (!m.is_empty()).then(|| json!(m))
}

fn meta_json(meta: Option<ObjectMeta>) -> Value {
    let Some(m) = meta else { return json!({}) };
    let mut out = Map::new();
    insert_opt(&mut out, "name", m.name.map(Value::String));
    insert_opt(&mut out, "generateName", m.generate_name.map(Value::String));
    insert_opt(&mut out, "namespace", m.namespace.map(Value::String));
    insert_opt(&mut out, "uid", m.uid.map(Value::String));
    insert_opt(
        &mut out,
        "resourceVersion",
        m.resource_version
            .filter(|r| !r.is_empty())
            .map(Value::String),
    );
    let _ = m.creation_timestamp;
    insert_opt(&mut out, "labels", string_map(&m.labels));
    insert_opt(&mut out, "annotations", string_map(&m.annotations));
    if !m.owner_references.is_empty() {
        let refs: Vec<Value> = m
            .owner_references
            .into_iter()
            .map(|r| {
                let mut o = Map::new();
                insert_opt(&mut o, "apiVersion", r.api_version.map(Value::String));
                insert_opt(&mut o, "kind", r.kind.map(Value::String));
                insert_opt(&mut o, "name", r.name.map(Value::String));
                insert_opt(&mut o, "uid", r.uid.map(Value::String));
                insert_opt(&mut o, "controller", r.controller.map(Value::Bool));
                insert_opt(
                    &mut o,
                    "blockOwnerDeletion",
                    r.block_owner_deletion.map(Value::Bool),
                );
                Value::Object(o)
            })
            .collect();
        out.insert("ownerReferences".into(), Value::Array(refs));
    }
    if !m.finalizers.is_empty() {
        out.insert("finalizers".into(), json!(m.finalizers));
    }
    Value::Object(out)
}

fn bad(message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "the protobuf request body could not be decoded: {message}"
    ))
}

/// Decode a protobuf request body into the JSON object it stands for.
pub fn decode(bytes: &[u8]) -> Result<Value, ApiError> {
    let body = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("missing the k8s protobuf magic prefix"))?;
    let unknown = Unknown::decode(body).map_err(bad)?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => {
            let ns = Namespace::decode(raw.as_slice()).map_err(bad)?;
            obj.insert("metadata".into(), meta_json(ns.metadata));
            if let Some(spec) = ns.spec.filter(|s| !s.finalizers.is_empty()) {
                obj.insert("spec".into(), json!({"finalizers": spec.finalizers}));
            }
        }
        ("v1", "ConfigMap") => {
            let cm = ConfigMap::decode(raw.as_slice()).map_err(bad)?;
            obj.insert("metadata".into(), meta_json(cm.metadata));
            insert_opt(&mut obj, "data", string_map(&cm.data));
            if !cm.binary_data.is_empty() {
                let m: Map<String, Value> = cm
                    .binary_data
                    .iter()
                    .map(|(k, v)| (k.clone(), b64(v)))
                    .collect();
                obj.insert("binaryData".into(), Value::Object(m));
            }
            insert_opt(&mut obj, "immutable", cm.immutable.map(Value::Bool));
        }
        ("v1", "Secret") => {
            let s = Secret::decode(raw.as_slice()).map_err(bad)?;
            obj.insert("metadata".into(), meta_json(s.metadata));
            if !s.data.is_empty() {
                let m: Map<String, Value> =
                    s.data.iter().map(|(k, v)| (k.clone(), b64(v))).collect();
                obj.insert("data".into(), Value::Object(m));
            }
            insert_opt(&mut obj, "stringData", string_map(&s.string_data));
            insert_opt(&mut obj, "type", s.type_.map(Value::String));
            insert_opt(&mut obj, "immutable", s.immutable.map(Value::Bool));
        }
        ("apps/v1", "Deployment") => {
            apps::check_zero_fields(&raw)?;
            apps::deployment(&raw, &mut obj)?;
        }
        ("policy/v1" | "policy/v1beta1", "Eviction") => {
            let e = Eviction::decode(raw.as_slice()).map_err(bad)?;
            obj.insert("metadata".into(), meta_json(e.metadata));
            if let Some(o) = e.delete_options {
                obj.insert("deleteOptions".into(), delete_options_json(o));
            }
        }
        _ => {
            return Err(ApiError::unsupported_media_type(&format!(
                "{CONTENT_TYPE} (for {api_version} {kind}: send application/json)"
            )));
        }
    }
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
        };
        let mut out = MAGIC.to_vec();
        out.extend(unknown.encode_to_vec());
        out
    }

    #[test]
    fn secrets_and_configmaps_decode_to_their_json_form() {
        let meta = ObjectMeta {
            name: Some("creds".into()),
            namespace: Some("team".into()),
            ..Default::default()
        };
        let secret = Secret {
            metadata: Some(meta.clone()),
            data: [("password".to_string(), b"hunter2".to_vec())]
                .into_iter()
                .collect(),
            type_: Some("Opaque".into()),
            ..Default::default()
        };
        let json = decode(&envelope("v1", "Secret", secret.encode_to_vec())).unwrap();
        assert_eq!(json["data"]["password"], "aHVudGVyMg==");
        assert_eq!(json["metadata"]["name"], "creds");
        let cm = ConfigMap {
            metadata: Some(meta),
            data: [("a".to_string(), "b".to_string())].into_iter().collect(),
            ..Default::default()
        };
        let json = decode(&envelope("v1", "ConfigMap", cm.encode_to_vec())).unwrap();
        assert_eq!(
            json,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "creds", "namespace": "team"}, "data": {"a": "b"}})
        );
    }

    #[test]
    fn evictions_decode_with_their_delete_options() {
        let eviction = Eviction {
            metadata: Some(ObjectMeta {
                name: Some("web-1".into()),
                namespace: Some("default".into()),
                ..Default::default()
            }),
            delete_options: Some(DeleteOptions {
                grace_period_seconds: Some(5),
                preconditions: Some(Preconditions {
                    uid: Some("u-1".into()),
                    resource_version: None,
                }),
                dry_run: vec!["All".into()],
                ..Default::default()
            }),
        };
        let json = decode(&envelope("policy/v1", "Eviction", eviction.encode_to_vec())).unwrap();
        assert_eq!(
            json,
            json!({"apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": "web-1", "namespace": "default"},
                "deleteOptions": {"gracePeriodSeconds": 5, "preconditions": {"uid": "u-1"},
                    "dryRun": ["All"]}})
        );
    }

    #[test]
    fn garbage_is_a_400_and_other_kinds_a_415() {
        assert_eq!(decode(b"nope").unwrap_err().code, 400);
        assert_eq!(
            decode(&envelope("apps/v1", "StatefulSet", vec![]))
                .unwrap_err()
                .code,
            415
        );
    }
}
