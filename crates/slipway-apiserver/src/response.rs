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

/// A list response body is sent in chunks of about this size once it outgrows one.
const LIST_CHUNK: usize = 64 * 1024;

/// `<Kind>List` JSON as a response body, serialized item by item into chunks of about
/// [`LIST_CHUNK`] bytes as the connection takes them (as kube-apiserver's streaming list
/// encoding does): a list of 10,000 objects never sits whole in one buffer, and its first
/// bytes are on the wire while the rest is being serialized. A list that fits in one chunk
/// is sent whole, with its length.
pub fn list_body(def: &ResourceDef, list: ObjectList) -> Body {
    let mut chunks = ListChunks::new(def, list);
    let first = chunks.next().unwrap_or_default();
    if chunks.done() {
        return Body::from(first);
    }
    let rest = futures::stream::iter(
        std::iter::once(first)
            .chain(chunks)
            .map(Ok::<_, std::convert::Infallible>),
    );
    Body::from_stream(rest)
}

/// The chunks of a `<Kind>List`'s JSON: the header with the list's metadata, the items, and
/// the closing brackets.
struct ListChunks {
    header: Option<Vec<u8>>,
    items: std::vec::IntoIter<std::sync::Arc<Value>>,
    first: bool,
    finished: bool,
}

impl ListChunks {
    fn new(def: &ResourceDef, list: ObjectList) -> Self {
        let mut header = Vec::with_capacity(128);
        let _ = write!(
            header,
            "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
            def.list_kind,
            def.api_version(),
            list_metadata(&list)
        );
        Self {
            header: Some(header),
            items: list.items.into_iter(),
            first: true,
            finished: false,
        }
    }

    fn done(&self) -> bool {
        self.finished
    }
}

impl Iterator for ListChunks {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        let mut out = Vec::with_capacity(LIST_CHUNK + LIST_CHUNK / 4);
        if let Some(header) = self.header.take() {
            out.extend_from_slice(&header);
        }
        while out.len() < LIST_CHUNK {
            let Some(item) = self.items.next() else {
                out.extend_from_slice(b"]}");
                self.finished = true;
                break;
            };
            if !std::mem::take(&mut self.first) {
                out.push(b',');
            }
            let _ = serde_json::to_writer(&mut out, &*item);
        }
        Some(Bytes::from(out))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::testdefs;
    use std::sync::Arc;

    fn list(n: usize) -> ObjectList {
        ObjectList {
            items: (0..n)
                .map(|i| {
                    Arc::new(json!({
                        "kind": "Namespace",
                        "metadata": {"name": format!("ns-{i:05}"), "resourceVersion": "7"},
                        "spec": {"padding": "x".repeat(300)},
                    }))
                })
                .collect(),
            resource_version: 42,
            continue_token: Some("next".into()),
            remaining_item_count: None,
        }
    }

    fn whole(n: usize) -> (Vec<Bytes>, Value) {
        let def = testdefs::namespace();
        let chunks: Vec<Bytes> = ListChunks::new(&def, list(n)).collect();
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let value = serde_json::from_slice(&joined).expect("the chunks join into one JSON list");
        (chunks, value)
    }

    #[test]
    fn a_list_is_sent_in_chunks_that_join_into_the_whole_list() {
        let (chunks, value) = whole(1_000);
        assert!(
            chunks.len() > 3,
            "a list of ~350 KB comes in several chunks, got {}",
            chunks.len()
        );
        assert!(
            chunks[..chunks.len() - 1]
                .iter()
                .all(|c| c.len() >= LIST_CHUNK && c.len() < LIST_CHUNK + 1024),
            "every chunk but the last is about {LIST_CHUNK} bytes"
        );
        assert_eq!(value["kind"], "NamespaceList");
        assert_eq!(value["apiVersion"], "v1");
        assert_eq!(value["metadata"]["resourceVersion"], "42");
        assert_eq!(value["metadata"]["continue"], "next");
        let items = value["items"].as_array().expect("items");
        assert_eq!(items.len(), 1_000);
        assert_eq!(items[0], *list(1).items[0]);
        assert_eq!(items[999]["metadata"]["name"], "ns-00999");
    }

    #[test]
    fn a_small_or_empty_list_is_one_chunk() {
        let (chunks, value) = whole(0);
        assert_eq!(chunks.len(), 1);
        assert_eq!(value["items"], json!([]));
        let (chunks, value) = whole(3);
        assert_eq!(chunks.len(), 1);
        assert_eq!(value["items"].as_array().map(Vec::len), Some(3));
    }
}
