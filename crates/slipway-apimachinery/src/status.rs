//! `ApiError`: what every layer above the store returns, convertible to a `meta/v1` `Status`.

use serde_json::{Value, json};

use crate::field::FieldError;

/// One `details.causes` entry of a `Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCause {
    /// A machine-readable reason such as `FieldValueInvalid` or `FieldValueRequired`.
    pub reason: String,
    pub message: String,
    /// The field path, e.g. `spec.nodePools[0].minReplicas`.
    pub field: String,
}

/// An API error: HTTP code, `Status.reason`, message and optional details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: u16,
    /// `Status.reason`: NotFound, AlreadyExists, Conflict, Invalid, BadRequest, Expired, ...
    pub reason: &'static str,
    pub message: String,
    pub group: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub causes: Vec<StatusCause>,
    pub retry_after_seconds: Option<u32>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            group: None,
            kind: None,
            name: None,
            causes: Vec::new(),
            retry_after_seconds: None,
        }
    }

    /// Attach the group, kind and name the error is about (`Status.details`).
    pub fn with_details(mut self, group: &str, kind: &str, name: &str) -> Self {
        self.group = Some(group.to_string());
        self.kind = Some(kind.to_string());
        self.name = Some(name.to_string());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// `plural.group "name" not found`, as upstream words it.
    pub fn not_found(resource: &str, group: &str, name: &str) -> Self {
        let what = qualified(resource, group);
        Self::new(404, "NotFound", format!("{what} \"{name}\" not found"))
            .with_name(group, resource, name)
    }

    pub fn path_not_found(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    pub fn already_exists(resource: &str, group: &str, name: &str) -> Self {
        let what = qualified(resource, group);
        Self::new(
            409,
            "AlreadyExists",
            format!("{what} \"{name}\" already exists"),
        )
        .with_name(group, resource, name)
    }

    /// An optimistic-concurrency failure: the object changed since it was read.
    pub fn conflict(resource: &str, group: &str, name: &str, detail: &str) -> Self {
        let what = qualified(resource, group);
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {what} \"{name}\": {detail}"),
        )
        .with_name(group, resource, name)
    }

    /// The requested resourceVersion is too old (compacted): 410 Gone, reason Expired.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "RequestEntityTooLarge", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type:?})"
            ),
        )
    }

    /// A 422 `Invalid` naming every failing field, as the apiserver phrases it:
    /// `Cluster.slipway.dev "x" is invalid: [spec.a: Invalid value: ..., ...]`.
    pub fn invalid(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> Self {
        let what = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let joined = match errors {
            [one] => one.to_string(),
            many => format!(
                "[{}]",
                many.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut err = Self::new(
            422,
            "Invalid",
            format!("{what} \"{name}\" is invalid: {joined}"),
        );
        err.group = Some(group.to_string());
        err.kind = Some(kind.to_string());
        err.name = Some(name.to_string());
        err.causes = errors.iter().map(FieldError::to_cause).collect();
        err
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message)
    }

    pub fn too_many_requests(message: impl Into<String>, retry_after_seconds: u32) -> Self {
        let mut err = Self::new(429, "TooManyRequests", message);
        err.retry_after_seconds = Some(retry_after_seconds);
        err
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }

    fn with_name(mut self, group: &str, resource: &str, name: &str) -> Self {
        self.group = Some(group.to_string());
        self.kind = Some(resource.to_string());
        self.name = Some(name.to_string());
        self
    }

    /// The `meta/v1` `Status` object for this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        let mut details = serde_json::Map::new();
        if let Some(name) = &self.name {
            details.insert("name".into(), json!(name));
        }
        if let Some(group) = &self.group {
            details.insert("group".into(), json!(group));
        }
        if let Some(kind) = &self.kind {
            details.insert("kind".into(), json!(kind));
        }
        if !self.causes.is_empty() {
            let causes: Vec<Value> = self
                .causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(secs) = self.retry_after_seconds {
            details.insert("retryAfterSeconds".into(), json!(secs));
        }
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}

fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::{FieldError, FieldPath};

    #[test]
    fn invalid_lists_every_cause_with_its_field() {
        let path = FieldPath::root("spec")
            .child("controlPlane")
            .child("replicas");
        let errs = vec![FieldError::not_supported(
            &path,
            &json!(2),
            &["1", "3", "5"],
        )];
        let err = ApiError::invalid("Cluster", "slipway.dev", "payments", &errs);
        assert_eq!(err.code, 422);
        let status = err.to_status();
        assert_eq!(status["reason"], "Invalid");
        assert_eq!(
            status["details"]["causes"][0]["field"],
            "spec.controlPlane.replicas"
        );
        assert_eq!(
            status["details"]["causes"][0]["reason"],
            "FieldValueNotSupported"
        );
        assert!(
            err.message
                .starts_with("Cluster.slipway.dev \"payments\" is invalid: spec.controlPlane.replicas: Unsupported value: 2"),
            "{}",
            err.message
        );
    }

    #[test]
    fn not_found_reads_like_upstream() {
        let err = ApiError::not_found("clusters", "slipway.dev", "x");
        assert_eq!(err.message, "clusters.slipway.dev \"x\" not found");
        assert_eq!(err.to_status()["code"], 404);
    }
}
