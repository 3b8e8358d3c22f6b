//! The protobuf `apps/v1` Deployment that `kubectl create deployment` sends: metadata, the
//! replicas, selector, strategy and a pod template whose containers have a name, image,
//! command, args, working directory, ports, plain environment variables and resources.
//!
//! Nothing may be lost silently: before decoding, every message is scanned at the wire level
//! and a field number this decoder does not understand (a probe, a volume, a security context,
//! ...) makes the request 415, so the client can send JSON instead of having fields dropped.
//! Fields Go always writes with their zero value (empty strings, `false`, `0`) are accepted
//! and left out of the JSON, as `omitempty` would.

use std::collections::BTreeMap;

use prost::Message;
use serde_json::{Map, Value, json};
use slipway_apimachinery::ApiError;

use super::{ObjectMeta, bad, insert_opt, meta_json, string_map};

#[derive(Clone, PartialEq, Message)]
pub(super) struct Deployment {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<DeploymentSpec>,
}

#[derive(Clone, PartialEq, Message)]
struct DeploymentSpec {
    #[prost(int32, optional, tag = "1")]
    replicas: Option<i32>,
    #[prost(message, optional, tag = "2")]
    selector: Option<LabelSelector>,
    #[prost(message, optional, tag = "3")]
    template: Option<PodTemplateSpec>,
    #[prost(message, optional, tag = "4")]
    strategy: Option<DeploymentStrategy>,
    #[prost(int32, optional, tag = "5")]
    min_ready_seconds: Option<i32>,
    #[prost(int32, optional, tag = "6")]
    revision_history_limit: Option<i32>,
    #[prost(bool, optional, tag = "7")]
    paused: Option<bool>,
    #[prost(int32, optional, tag = "9")]
    progress_deadline_seconds: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
struct LabelSelectorRequirement {
    #[prost(string, optional, tag = "1")]
    key: Option<String>,
    #[prost(string, optional, tag = "2")]
    operator: Option<String>,
    #[prost(string, repeated, tag = "3")]
    values: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct LabelSelector {
    #[prost(btree_map = "string, string", tag = "1")]
    match_labels: BTreeMap<String, String>,
    #[prost(message, repeated, tag = "2")]
    match_expressions: Vec<LabelSelectorRequirement>,
}

#[derive(Clone, PartialEq, Message)]
struct IntOrString {
    #[prost(int64, optional, tag = "1")]
    type_: Option<i64>,
    #[prost(int32, optional, tag = "2")]
    int_val: Option<i32>,
    #[prost(string, optional, tag = "3")]
    str_val: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct RollingUpdate {
    #[prost(message, optional, tag = "1")]
    max_unavailable: Option<IntOrString>,
    #[prost(message, optional, tag = "2")]
    max_surge: Option<IntOrString>,
}

#[derive(Clone, PartialEq, Message)]
struct DeploymentStrategy {
    #[prost(string, optional, tag = "1")]
    type_: Option<String>,
    #[prost(message, optional, tag = "2")]
    rolling_update: Option<RollingUpdate>,
}

#[derive(Clone, PartialEq, Message)]
struct PodTemplateSpec {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<PodSpec>,
}

#[derive(Clone, PartialEq, Message)]
struct PodSpec {
    #[prost(message, repeated, tag = "2")]
    containers: Vec<Container>,
    #[prost(string, optional, tag = "3")]
    restart_policy: Option<String>,
    #[prost(int64, optional, tag = "4")]
    termination_grace_period_seconds: Option<i64>,
    #[prost(string, optional, tag = "6")]
    dns_policy: Option<String>,
    #[prost(string, optional, tag = "8")]
    service_account_name: Option<String>,
    #[prost(string, optional, tag = "10")]
    node_name: Option<String>,
    #[prost(string, optional, tag = "19")]
    scheduler_name: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct Quantity {
    #[prost(string, optional, tag = "1")]
    string: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct ResourceRequirements {
    #[prost(btree_map = "string, message", tag = "1")]
    limits: BTreeMap<String, Quantity>,
    #[prost(btree_map = "string, message", tag = "2")]
    requests: BTreeMap<String, Quantity>,
}

#[derive(Clone, PartialEq, Message)]
struct ContainerPort {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(int32, optional, tag = "2")]
    host_port: Option<i32>,
    #[prost(int32, optional, tag = "3")]
    container_port: Option<i32>,
    #[prost(string, optional, tag = "4")]
    protocol: Option<String>,
    #[prost(string, optional, tag = "5")]
    host_ip: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct EnvVar {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "2")]
    value: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct Container {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "2")]
    image: Option<String>,
    #[prost(string, repeated, tag = "3")]
    command: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    args: Vec<String>,
    #[prost(string, optional, tag = "5")]
    working_dir: Option<String>,
    #[prost(message, repeated, tag = "6")]
    ports: Vec<ContainerPort>,
    #[prost(message, repeated, tag = "7")]
    env: Vec<EnvVar>,
    #[prost(message, optional, tag = "8")]
    resources: Option<ResourceRequirements>,
    #[prost(string, optional, tag = "13")]
    termination_message_path: Option<String>,
    #[prost(string, optional, tag = "14")]
    image_pull_policy: Option<String>,
    #[prost(bool, optional, tag = "16")]
    stdin: Option<bool>,
    #[prost(bool, optional, tag = "17")]
    stdin_once: Option<bool>,
    #[prost(bool, optional, tag = "18")]
    tty: Option<bool>,
    #[prost(string, optional, tag = "20")]
    termination_message_policy: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Wire-level check: every field present is one this decoder maps.
// ---------------------------------------------------------------------------------------------

/// The fields of one message: number and, for length-delimited ones, the payload.
fn fields(bytes: &[u8]) -> Result<Vec<(u32, &[u8])>, ApiError> {
    fn varint(bytes: &[u8], pos: &mut usize) -> Result<u64, ApiError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *bytes.get(*pos).ok_or_else(|| bad("truncated varint"))?;
            *pos += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(bad("varint too long"))
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let key = varint(bytes, &mut pos)?;
        let number = u32::try_from(key >> 3).map_err(|_| bad("field number too large"))?;
        let start = pos;
        match key & 7 {
            0 => {
                varint(bytes, &mut pos)?;
            }
            1 => pos += 8,
            5 => pos += 4,
            2 => {
                let len = usize::try_from(varint(bytes, &mut pos)?)
                    .map_err(|_| bad("length too large"))?;
                let begin = pos;
                pos = pos
                    .checked_add(len)
                    .ok_or_else(|| bad("length too large"))?;
                if pos > bytes.len() {
                    return Err(bad("truncated message"));
                }
                out.push((number, &bytes[begin..pos]));
                continue;
            }
            other => return Err(bad(format!("unsupported wire type {other}"))),
        }
        if pos > bytes.len() {
            return Err(bad("truncated message"));
        }
        out.push((number, &bytes[start..pos]));
    }
    Ok(out)
}

/// How the fields of a message are checked: the numbers allowed, and for some of them the
/// rule of the nested message.
struct Rule {
    allowed: &'static [u32],
    nested: &'static [(u32, &'static Rule)],
}

// selfLink (4), generation (7) and creationTimestamp (8) are written by Go even when unset;
// the server sets or ignores them.
const META: Rule = Rule {
    allowed: &[1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 14],
    nested: &[],
};
const RESOURCES: Rule = Rule {
    allowed: &[1, 2],
    nested: &[],
};
const PORT: Rule = Rule {
    allowed: &[1, 2, 3, 4, 5],
    nested: &[],
};
const ENV: Rule = Rule {
    allowed: &[1, 2],
    nested: &[],
};
const CONTAINER: Rule = Rule {
    allowed: &[1, 2, 3, 4, 5, 6, 7, 8, 13, 14, 16, 17, 18, 20],
    nested: &[(6, &PORT), (7, &ENV), (8, &RESOURCES)],
};
// hostNetwork (11), hostPID (12), hostIPC (13), serviceAccount (9), hostname (16),
// subdomain (17) and priorityClassName (24) are always written; only their zero values are
// accepted (checked while converting).
const POD_SPEC: Rule = Rule {
    allowed: &[2, 3, 4, 6, 8, 9, 10, 11, 12, 13, 16, 17, 19, 24],
    nested: &[(2, &CONTAINER)],
};
const TEMPLATE: Rule = Rule {
    allowed: &[1, 2],
    nested: &[(1, &META), (2, &POD_SPEC)],
};
const ROLLING: Rule = Rule {
    allowed: &[1, 2],
    nested: &[],
};
const STRATEGY: Rule = Rule {
    allowed: &[1, 2],
    nested: &[(2, &ROLLING)],
};
const SELECTOR: Rule = Rule {
    allowed: &[1, 2],
    nested: &[],
};
const SPEC: Rule = Rule {
    allowed: &[1, 2, 3, 4, 5, 6, 7, 9],
    nested: &[(2, &SELECTOR), (3, &TEMPLATE), (4, &STRATEGY)],
};
// status (3) is accepted and ignored: a create never writes status.
const DEPLOYMENT: Rule = Rule {
    allowed: &[1, 2, 3],
    nested: &[(1, &META), (2, &SPEC)],
};

fn check(bytes: &[u8], rule: &Rule, path: &str) -> Result<(), ApiError> {
    for (number, payload) in fields(bytes)? {
        if !rule.allowed.contains(&number) {
            return Err(ApiError::unsupported_media_type(&format!(
                "{} (field {number} of {path} is not understood in protobuf: send application/json)",
                super::CONTENT_TYPE
            )));
        }
        if let Some((_, nested)) = rule.nested.iter().find(|(n, _)| *n == number) {
            check(payload, nested, &format!("{path}.{number}"))?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Conversion to JSON.
// ---------------------------------------------------------------------------------------------

fn non_empty(s: Option<String>) -> Option<Value> {
    s.filter(|s| !s.is_empty()).map(Value::String)
}

fn int_or_string(v: IntOrString) -> Value {
    match (v.type_.unwrap_or(0), v.int_val, v.str_val) {
        (1, _, Some(s)) => json!(s),
        (_, i, _) => json!(i.unwrap_or(0)),
    }
}

fn quantities(m: BTreeMap<String, Quantity>) -> Option<Value> {
    (!m.is_empty()).then(|| {
        Value::Object(
            m.into_iter()
                .map(|(k, q)| (k, json!(q.string.unwrap_or_default())))
                .collect(),
        )
    })
}

fn container_json(c: Container) -> Value {
    let mut o = Map::new();
    insert_opt(&mut o, "name", non_empty(c.name));
    insert_opt(&mut o, "image", non_empty(c.image));
    if !c.command.is_empty() {
        o.insert("command".into(), json!(c.command));
    }
    if !c.args.is_empty() {
        o.insert("args".into(), json!(c.args));
    }
    insert_opt(&mut o, "workingDir", non_empty(c.working_dir));
    if !c.ports.is_empty() {
        let ports: Vec<Value> = c
            .ports
            .into_iter()
            .map(|p| {
                let mut m = Map::new();
                insert_opt(&mut m, "name", non_empty(p.name));
                insert_opt(
                    &mut m,
                    "hostPort",
                    p.host_port.filter(|n| *n != 0).map(Value::from),
                );
                m.insert("containerPort".into(), json!(p.container_port.unwrap_or(0)));
                insert_opt(&mut m, "protocol", non_empty(p.protocol));
                insert_opt(&mut m, "hostIP", non_empty(p.host_ip));
                Value::Object(m)
            })
            .collect();
        o.insert("ports".into(), Value::Array(ports));
    }
    if !c.env.is_empty() {
        let env: Vec<Value> = c
            .env
            .into_iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("name".into(), json!(e.name.unwrap_or_default()));
                insert_opt(&mut m, "value", non_empty(e.value));
                Value::Object(m)
            })
            .collect();
        o.insert("env".into(), Value::Array(env));
    }
    let mut resources = Map::new();
    if let Some(r) = c.resources {
        insert_opt(&mut resources, "limits", quantities(r.limits));
        insert_opt(&mut resources, "requests", quantities(r.requests));
    }
    o.insert("resources".into(), Value::Object(resources));
    insert_opt(
        &mut o,
        "terminationMessagePath",
        non_empty(c.termination_message_path),
    );
    insert_opt(
        &mut o,
        "terminationMessagePolicy",
        non_empty(c.termination_message_policy),
    );
    insert_opt(&mut o, "imagePullPolicy", non_empty(c.image_pull_policy));
    for (key, flag) in [
        ("stdin", c.stdin),
        ("stdinOnce", c.stdin_once),
        ("tty", c.tty),
    ] {
        if flag == Some(true) {
            o.insert(key.into(), json!(true));
        }
    }
    Value::Object(o)
}

fn pod_spec_json(s: PodSpec) -> Value {
    let mut o = Map::new();
    o.insert(
        "containers".into(),
        Value::Array(s.containers.into_iter().map(container_json).collect()),
    );
    insert_opt(&mut o, "restartPolicy", non_empty(s.restart_policy));
    insert_opt(
        &mut o,
        "terminationGracePeriodSeconds",
        s.termination_grace_period_seconds.map(Value::from),
    );
    insert_opt(&mut o, "dnsPolicy", non_empty(s.dns_policy));
    insert_opt(
        &mut o,
        "serviceAccountName",
        non_empty(s.service_account_name),
    );
    insert_opt(&mut o, "nodeName", non_empty(s.node_name));
    insert_opt(&mut o, "schedulerName", non_empty(s.scheduler_name));
    Value::Object(o)
}

/// Refuse the always-written PodSpec fields this decoder drops unless they hold zero values.
fn check_pod_spec_zero_fields(bytes: &[u8]) -> Result<(), ApiError> {
    for (number, payload) in fields(bytes)? {
        if matches!(number, 9 | 11 | 12 | 13 | 16 | 17 | 24) && payload.iter().any(|b| *b != 0) {
            return Err(ApiError::unsupported_media_type(&format!(
                "{} (pod spec field {number} is not understood in protobuf: send application/json)",
                super::CONTENT_TYPE
            )));
        }
    }
    Ok(())
}

/// Decode a protobuf Deployment into its JSON object (without apiVersion and kind).
pub(super) fn deployment(raw: &[u8], obj: &mut Map<String, Value>) -> Result<(), ApiError> {
    check(raw, &DEPLOYMENT, "Deployment")?;
    let d = Deployment::decode(raw).map_err(bad)?;
    obj.insert("metadata".into(), meta_json(d.metadata));
    let Some(spec) = d.spec else {
        return Ok(());
    };
    let mut s = Map::new();
    insert_opt(&mut s, "replicas", spec.replicas.map(Value::from));
    if let Some(sel) = spec.selector {
        let mut m = Map::new();
        insert_opt(&mut m, "matchLabels", string_map(&sel.match_labels));
        if !sel.match_expressions.is_empty() {
            let exprs: Vec<Value> = sel
                .match_expressions
                .into_iter()
                .map(|e| {
                    let mut r = Map::new();
                    r.insert("key".into(), json!(e.key.unwrap_or_default()));
                    r.insert("operator".into(), json!(e.operator.unwrap_or_default()));
                    if !e.values.is_empty() {
                        r.insert("values".into(), json!(e.values));
                    }
                    Value::Object(r)
                })
                .collect();
            m.insert("matchExpressions".into(), Value::Array(exprs));
        }
        s.insert("selector".into(), Value::Object(m));
    }
    if let Some(t) = spec.template {
        let mut m = Map::new();
        m.insert("metadata".into(), meta_json(t.metadata));
        if let Some(ps) = t.spec {
            m.insert("spec".into(), pod_spec_json(ps));
        }
        s.insert("template".into(), Value::Object(m));
    }
    if let Some(st) = spec.strategy {
        let mut m = Map::new();
        insert_opt(&mut m, "type", non_empty(st.type_));
        if let Some(r) = st.rolling_update {
            let mut ru = Map::new();
            insert_opt(
                &mut ru,
                "maxUnavailable",
                r.max_unavailable.map(int_or_string),
            );
            insert_opt(&mut ru, "maxSurge", r.max_surge.map(int_or_string));
            m.insert("rollingUpdate".into(), Value::Object(ru));
        }
        s.insert("strategy".into(), Value::Object(m));
    }
    insert_opt(
        &mut s,
        "minReadySeconds",
        spec.min_ready_seconds.filter(|n| *n != 0).map(Value::from),
    );
    insert_opt(
        &mut s,
        "revisionHistoryLimit",
        spec.revision_history_limit.map(Value::from),
    );
    insert_opt(
        &mut s,
        "paused",
        spec.paused.filter(|p| *p).map(Value::Bool),
    );
    insert_opt(
        &mut s,
        "progressDeadlineSeconds",
        spec.progress_deadline_seconds.map(Value::from),
    );
    obj.insert("spec".into(), Value::Object(s));
    Ok(())
}

/// Find the pod spec inside a Deployment's bytes and check its zero-valued fields.
pub(super) fn check_zero_fields(raw: &[u8]) -> Result<(), ApiError> {
    for (n, spec) in fields(raw)? {
        if n != 2 {
            continue;
        }
        for (n, template) in fields(spec)? {
            if n != 3 {
                continue;
            }
            for (n, pod_spec) in fields(template)? {
                if n == 2 {
                    check_pod_spec_zero_fields(pod_spec)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `kubectl create deployment web --image=nginx:1.27 --replicas=2 --port=80` sends,
    /// with the zero-valued fields Go always writes.
    fn kubectl_deployment() -> Deployment {
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        let meta = |name: Option<&str>| ObjectMeta {
            name: name.map(Into::into),
            labels: labels.clone(),
            ..ObjectMeta::default()
        };
        Deployment {
            metadata: Some(meta(Some("web"))),
            spec: Some(DeploymentSpec {
                replicas: Some(2),
                selector: Some(LabelSelector {
                    match_labels: labels.clone(),
                    match_expressions: vec![],
                }),
                template: Some(PodTemplateSpec {
                    metadata: Some(meta(None)),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: Some("nginx".into()),
                            image: Some("nginx:1.27".into()),
                            ports: vec![ContainerPort {
                                container_port: Some(80),
                                name: Some(String::new()),
                                host_port: Some(0),
                                protocol: Some(String::new()),
                                host_ip: Some(String::new()),
                            }],
                            resources: Some(ResourceRequirements::default()),
                            working_dir: Some(String::new()),
                            stdin: Some(false),
                            ..Container::default()
                        }],
                        restart_policy: Some(String::new()),
                        dns_policy: Some(String::new()),
                        ..PodSpec::default()
                    }),
                }),
                strategy: Some(DeploymentStrategy {
                    type_: Some(String::new()),
                    rolling_update: None,
                }),
                min_ready_seconds: Some(0),
                ..DeploymentSpec::default()
            }),
        }
    }

    #[test]
    fn kubectl_create_deployment_decodes() {
        let raw = kubectl_deployment().encode_to_vec();
        check_zero_fields(&raw).unwrap();
        let mut obj = Map::new();
        deployment(&raw, &mut obj).unwrap();
        assert_eq!(
            Value::Object(obj),
            json!({
                "metadata": {"name": "web", "labels": {"app": "web"}},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27",
                            "ports": [{"containerPort": 80}], "resources": {}}]},
                    },
                    "strategy": {},
                },
            })
        );
    }

    #[test]
    fn fields_it_does_not_understand_are_a_415_not_a_loss() {
        let mut raw = kubectl_deployment().encode_to_vec();
        // A top-level field this decoder does not know.
        raw.extend([(15 << 3) | 2, 0]);
        let err = check(&raw, &DEPLOYMENT, "Deployment").unwrap_err();
        assert_eq!(err.code, 415);
        // A nested one: a probe (field 10) in the container.
        let d = kubectl_deployment();
        let pod_spec = d
            .spec
            .and_then(|s| s.template)
            .and_then(|t| t.spec)
            .unwrap();
        let mut container = pod_spec.containers[0].encode_to_vec();
        container.extend([(10 << 3) | 2, 0]);
        assert_eq!(check(&container, &CONTAINER, "c").unwrap_err().code, 415);
        // hostNetwork=true is always written but must be false here.
        let pod_spec = [(11 << 3), 1];
        assert_eq!(check_pod_spec_zero_fields(&pod_spec).unwrap_err().code, 415);
        assert!(check_pod_spec_zero_fields(&[(11 << 3), 0]).is_ok());
    }
}
