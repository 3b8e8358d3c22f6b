//! Decoding requests: resource paths, query parameters, bodies and content negotiation.

use std::collections::HashMap;

use serde_json::Value;
use slipway_apimachinery::{ApiError, schema};

/// The largest request body accepted (kube-apiserver's limit is 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// A parsed `/api/v1/...` or `/apis/<group>/<version>/...` resource path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The legacy `/watch/` path prefix was used.
    pub watch_prefix: bool,
}

/// What kind of API path this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiPath {
    /// `/api` or `/apis`.
    Root {
        legacy: bool,
    },
    /// `/apis/<group>`.
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`.
    GroupVersion {
        group: String,
        version: String,
    },
    Resource(ResourcePath),
}

pub fn parse_api_path(path: &str) -> Option<ApiPath> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api"] => return Some(ApiPath::Root { legacy: true }),
        ["apis"] => return Some(ApiPath::Root { legacy: false }),
        ["apis", group] => return Some(ApiPath::Group((*group).to_string())),
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    if rest.is_empty() {
        return Some(ApiPath::GroupVersion {
            group: group.into(),
            version: version.into(),
        });
    }
    if rest.iter().any(|s| s.is_empty()) {
        return None;
    }
    let (watch_prefix, rest) = match rest {
        ["watch", rest @ ..] if !rest.is_empty() => (true, rest),
        other => (false, other),
    };
    let owned = |s: &&str| (*s).to_string();
    let (namespace, resource, name, subresource) = match rest {
        // /namespaces/<ns>/<resource>[/<name>[/<sub>]] — unless it addresses the namespace itself.
        ["namespaces", ns, resource, tail @ ..]
            if !matches!(*resource, "status" | "finalize") || !tail.is_empty() =>
        {
            if tail.len() > 2 {
                return None;
            }
            (
                Some(owned(ns)),
                owned(resource),
                tail.first().map(owned),
                tail.get(1).map(owned),
            )
        }
        [resource, tail @ ..] => {
            if tail.len() > 2 {
                return None;
            }
            (
                None,
                owned(resource),
                tail.first().map(owned),
                tail.get(1).map(owned),
            )
        }
        [] => return None,
    };
    Some(ApiPath::Resource(ResourcePath {
        group: group.into(),
        version: version.into(),
        namespace,
        resource,
        name,
        subresource,
        watch_prefix,
    }))
}

/// Query parameters, last value wins (as Go's `url.Values.Get` would see the first; kubectl
/// never repeats them).
#[derive(Debug, Default, Clone)]
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        let map = raw
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        Self(map)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None | Some("") | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid value {other:?} for {key}: must be true or false"
            ))),
        }
    }

    pub fn optional_flag(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.flag(key).map(Some),
        }
    }

    pub fn number(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .map(Some)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "invalid value {v:?} for {key}: must be a non-negative integer"
                    ))
                }),
        }
    }

    /// `dryRun`: only `All` is allowed, as upstream.
    pub fn dry_run(&self) -> Result<bool, ApiError> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid dry run option {other:?}: the only supported value is \"All\""
            ))),
        }
    }
}

/// A media type with its parameters, from `Accept` or `Content-Type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    pub essence: String,
    pub params: Vec<(String, String)>,
}

impl MediaType {
    pub fn parse(text: &str) -> Self {
        let mut parts = text.split(';');
        let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let params = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| {
                (
                    k.trim().to_ascii_lowercase(),
                    v.trim().trim_matches('"').to_string(),
                )
            })
            .collect();
        Self { essence, params }
    }

    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn list(header: Option<&str>) -> Vec<Self> {
        header
            .map(|h| {
                h.split(',')
                    .map(Self::parse)
                    .filter(|m| !m.essence.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The representation a GET asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    Object,
    Table,
    PartialMetadata,
}

/// Choose the response representation from `Accept`, as kube-apiserver negotiates it: the
/// first acceptable entry wins; only JSON is served.
pub fn negotiate(accept: Option<&str>) -> Result<Representation, ApiError> {
    let types = MediaType::list(accept);
    if types.is_empty() {
        return Ok(Representation::Object);
    }
    for m in &types {
        let json = matches!(
            m.essence.as_str(),
            "application/json" | "application/*" | "*/*" | "application/yaml"
        );
        if !json {
            continue;
        }
        match (m.param("as"), m.param("g"), m.param("v")) {
            (None, _, _) => return Ok(Representation::Object),
            (Some("Table"), Some("meta.k8s.io"), Some("v1" | "v1beta1")) => {
                return Ok(Representation::Table);
            }
            (
                Some("PartialObjectMetadata" | "PartialObjectMetadataList"),
                Some("meta.k8s.io"),
                Some("v1" | "v1beta1"),
            ) => {
                return Ok(Representation::PartialMetadata);
            }
            _ => continue,
        }
    }
    Err(ApiError::not_acceptable(format!(
        "only the following media types are accepted: application/json, application/json;as=Table;v=v1;g=meta.k8s.io (got {:?})",
        accept.unwrap_or_default()
    )))
}

/// How a body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    /// The Kubernetes protobuf envelope (built-in kinds only).
    Protobuf,
    Yaml,
    MergePatch,
    JsonPatch,
    StrategicMergePatch,
    ApplyPatch,
}

pub fn body_format(content_type: Option<&str>, patch: bool) -> Result<BodyFormat, ApiError> {
    let essence = content_type
        .map(|c| MediaType::parse(c).essence)
        .unwrap_or_default();
    let format = match essence.as_str() {
        "" if !patch => BodyFormat::Json,
        "application/json" | "*/*" if !patch => BodyFormat::Json,
        "application/yaml" if !patch => BodyFormat::Yaml,
        crate::protobuf::CONTENT_TYPE if !patch => BodyFormat::Protobuf,
        "application/merge-patch+json" if patch => BodyFormat::MergePatch,
        "application/json-patch+json" if patch => BodyFormat::JsonPatch,
        "application/apply-patch+yaml" if patch => BodyFormat::ApplyPatch,
        "application/strategic-merge-patch+json" if patch => BodyFormat::StrategicMergePatch,
        _ => {
            return Err(ApiError::unsupported_media_type(
                content_type.unwrap_or_default(),
            ));
        }
    };
    Ok(format)
}

/// Decode a body as JSON (or YAML for YAML formats), reporting duplicate keys separately.
pub fn decode_body(bytes: &[u8], format: BodyFormat) -> Result<(Value, Vec<String>), ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    if format == BodyFormat::Protobuf {
        return Ok((crate::protobuf::decode(bytes)?, Vec::new()));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::bad_request("the request body is not valid UTF-8"))?;
    let trimmed = text.trim_start();
    let looks_json = trimmed.starts_with('{') || trimmed.starts_with('[');
    match format {
        BodyFormat::Yaml | BodyFormat::ApplyPatch if !looks_json => {
            let value: Value = serde_saphyr::from_str(text).map_err(|e| {
                ApiError::bad_request(format!("error converting YAML to JSON: {e}"))
            })?;
            Ok((value, Vec::new()))
        }
        _ => {
            let value: Value = serde_json::from_slice(bytes).map_err(|e| {
                ApiError::bad_request(format!(
                    "the request body could not be decoded as JSON: {e}"
                ))
            })?;
            Ok((value, schema::find_duplicate_keys(bytes)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourcePath {
        match parse_api_path(path) {
            Some(ApiPath::Resource(r)) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn paths() {
        let r = res("/apis/slipway.dev/v1alpha1/namespaces/team/clusters/a/status");
        assert_eq!(
            (
                r.group.as_str(),
                r.namespace.as_deref(),
                r.resource.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            (
                "slipway.dev",
                Some("team"),
                "clusters",
                Some("a"),
                Some("status")
            )
        );
        let r = res("/api/v1/namespaces/team");
        assert_eq!(
            (
                r.resource.as_str(),
                r.name.as_deref(),
                r.namespace.as_deref()
            ),
            ("namespaces", Some("team"), None)
        );
        let r = res("/api/v1/namespaces/team/status");
        assert_eq!(
            (
                r.resource.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            ("namespaces", Some("team"), Some("status"))
        );
        let r = res("/api/v1/namespaces/team/configmaps");
        assert_eq!(
            (r.resource.as_str(), r.namespace.as_deref(), r.name),
            ("configmaps", Some("team"), None)
        );
        let r = res("/apis/slipway.dev/v1alpha1/clusters");
        assert_eq!((r.resource.as_str(), r.namespace), ("clusters", None));
        let r = res("/api/v1/watch/namespaces/x/configmaps");
        assert!(r.watch_prefix);
        assert_eq!(
            parse_api_path("/apis/slipway.dev"),
            Some(ApiPath::Group("slipway.dev".into()))
        );
        assert_eq!(parse_api_path("/api/v1/a/b/c/d"), None);
        assert_eq!(parse_api_path("/api/v1/namespaces//configmaps"), None);
    }

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(None).unwrap(), Representation::Object);
        assert_eq!(
            negotiate(Some("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")).unwrap(),
            Representation::Table
        );
        assert_eq!(
            negotiate(Some(
                "application/vnd.kubernetes.protobuf, application/json"
            ))
            .unwrap(),
            Representation::Object
        );
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf"))
                .unwrap_err()
                .code,
            406
        );
    }

    #[test]
    fn bodies() {
        assert_eq!(
            body_format(Some("application/x-unknown"), true)
                .unwrap_err()
                .code,
            415
        );
        assert_eq!(
            body_format(Some("application/merge-patch+json; charset=utf-8"), true).unwrap(),
            BodyFormat::MergePatch
        );
        assert_eq!(
            decode_body(b"{not json", BodyFormat::Json)
                .unwrap_err()
                .code,
            400
        );
        let (v, _) =
            decode_body(b"apiVersion: v1\nkind: ConfigMap\n", BodyFormat::ApplyPatch).unwrap();
        assert_eq!(v["kind"], "ConfigMap");
        assert_eq!(
            decode_body(b"a: [b", BodyFormat::ApplyPatch)
                .unwrap_err()
                .code,
            400
        );
    }
}
