//! Encoding responses: objects, lists, `Status` errors, warnings and watch streams.

use std::io::Write as _;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use slipway_apimachinery::{ApiError, ResourceDef};
use slipway_registry::ObjectList;

/// A response before it becomes an HTTP one.
pub struct Reply {
    pub status: StatusCode,
    content_type: &'static str,
    body: Body,
    warnings: Vec<String>,
    retry_after: Option<u32>,
}

impl Reply {
    pub fn json(status: StatusCode, value: &Value) -> Self {
        Self::bytes(
            status,
            Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
        )
    }

    pub fn bytes(status: StatusCode, bytes: Bytes) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: Body::from(bytes),
            warnings: Vec::new(),
            retry_after: None,
        }
    }

    pub fn with_content_type(mut self, content_type: &'static str) -> Self {
        self.content_type = content_type;
        self
    }

    pub fn stream(body: Body) -> Self {
        Self {
            status: StatusCode::OK,
            content_type: "application/json",
            body,
            warnings: Vec::new(),
            retry_after: None,
        }
    }

    pub fn error(err: ApiError) -> Self {
        let status = StatusCode::from_u16(err.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // 503 is a state the server reports on purpose (a simulated workload API without
        // quorum, a store that is catching up), not a fault of the server.
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::debug!(code = err.code, reason = err.reason, message = %err.message, "request refused");
        } else if status.is_server_error() {
            tracing::warn!(code = err.code, reason = err.reason, message = %err.message, "request failed");
        }
        let mut reply = Self::json(status, &err.to_status());
        reply.retry_after = err.retry_after_seconds;
        reply
    }

    pub fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings = warnings;
        self
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = Response::new(self.body);
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, private"),
        );
        for warning in self.warnings {
            // RFC 7234 warning: 299 - "text", with quotes and backslashes escaped.
            let text = warning.replace('\\', "\\\\").replace('"', "\\\"");
            if let Ok(value) = HeaderValue::from_str(&format!("299 - \"{text}\"")) {
                headers.append(header::WARNING, value);
            }
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// `<Kind>List` JSON, written item by item.
pub fn encode_list(def: &ResourceDef, list: &ObjectList) -> Bytes {
    let mut out = Vec::with_capacity(64 + list.items.len() * 1024);
    let meta = list_metadata(list);
    let _ = write!(
        out,
        "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
        def.list_kind,
        def.api_version(),
        meta
    );
    for (i, item) in list.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = serde_json::to_writer(&mut out, &**item);
    }
    out.extend_from_slice(b"]}");
    Bytes::from(out)
}

fn list_metadata(list: &ObjectList) -> Value {
    let mut meta = json!({"resourceVersion": list.resource_version.to_string()});
    if let Some(c) = &list.continue_token {
        meta["continue"] = json!(c);
    }
    if let Some(n) = list.remaining_item_count {
        meta["remainingItemCount"] = json!(n);
    }
    meta
}

/// `meta.k8s.io/v1` `PartialObjectMetadata` of an object.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

pub fn partial_metadata_list(list: &ObjectList) -> Value {
    let items: Vec<Value> = list.items.iter().map(|o| partial_metadata(o)).collect();
    json!({
        "kind": "PartialObjectMetadataList",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata(list),
        "items": items,
    })
}
