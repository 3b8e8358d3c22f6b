//! The OpenAPI documents the server publishes, as pure functions of the served
//! [`ResourceDef`]s, and [`OpenApi`], which builds them once and keeps their bytes.
//!
//! - `/openapi/v3` ([`v3_index`]) lists one document per group-version (`api/v1`,
//!   `apis/<group>/<version>`) plus `api`, `apis`, `apis/<group>` and `version`, each with a
//!   `?hash=` of its content so clients can cache it for good.
//! - `/openapi/v3/<path>` ([`v3_document_for_path`], [`v3_document`]) describes every operation
//!   of the group-version with `x-kubernetes-action` and `x-kubernetes-group-version-kind`,
//!   and every kind under its upstream definition name (`dev.slipway.v1alpha1.Cluster`,
//!   `io.k8s.api.core.v1.Namespace`) with its list kind and the meta types they reference.
//!   `kubectl explain` reads the field descriptions from here, and kubectl decides from the
//!   PATCH operation whether the server validates fields (`fieldValidation`) and whether to
//!   send a strategic merge patch (only if `application/strategic-merge-patch+json` is listed,
//!   which it never is: the server answers 415 to it).
//! - `/openapi/v2` ([`v2_document`]) is the Swagger 2.0 form of all of it, in JSON or in
//!   gnostic's protobuf encoding ([`v2_protobuf`]), which older kubectl releases and Argo CD
//!   request.
//!
//! The shapes follow what kube-apiserver publishes for custom resources (the apiextensions
//! server's OpenAPI builder), including the hash (upper-case hex SHA-512) and the ETags.

mod doc;
mod gnostic;
mod meta;
mod names;
mod routes;
mod schema;
#[cfg(test)]
pub(crate) mod testdefs;
mod v2;
mod v3;

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::Value;
use sha2::{Digest, Sha512};
use slipway_apimachinery::ResourceDef;

pub use gnostic::v2_protobuf;
pub use routes::PATCH_CONTENT_TYPES;
pub use v2::v2_document;
pub use v3::{gv_path, v3_document, v3_document_for_path, v3_index, v3_paths};

/// The gnostic protobuf messages, for clients and tests that decode [`v2_protobuf`] output.
pub mod proto {
    pub use super::gnostic::*;
}

/// Content type of JSON documents.
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// Content type of the protobuf OpenAPI v2 document, as upstream answers it.
pub const CONTENT_TYPE_V2_PROTOBUF: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The older spelling of [`CONTENT_TYPE_V2_PROTOBUF`] that clients still put in `Accept`.
pub const CONTENT_TYPE_V2_PROTOBUF_DEPRECATED: &str =
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// The content hash upstream uses for `?hash=` and ETags: upper-case hex SHA-512.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode_upper(Sha512::digest(bytes))
}

/// A document as served: compact JSON, keys sorted.
pub(crate) fn to_bytes(doc: &Value) -> Vec<u8> {
    doc.to_string().into_bytes()
}

/// One served document: its bytes and their hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    bytes: Bytes,
    hash: String,
}

impl Served {
    fn new(bytes: Vec<u8>) -> Self {
        let hash = content_hash(&bytes);
        Self {
            bytes: Bytes::from(bytes),
            hash,
        }
    }

    /// The body to send (cheap to clone).
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// [`content_hash`] of the bytes: the `?hash=` of v3 documents.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The `ETag` header value: the hash in double quotes.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.hash)
    }
}

/// Every OpenAPI document for one set of defs, built once (at startup) and kept serialized.
///
/// Each representation has its own ETag, the hash of its own bytes (upstream reuses the JSON
/// hash for the protobuf form and relies on `Vary: Accept`; distinct tags are safe either way).
#[derive(Debug, Clone)]
pub struct OpenApi {
    v2_json: Served,
    v2_protobuf: Served,
    v3_index: Served,
    v3: BTreeMap<String, Served>,
}

impl OpenApi {
    pub fn new(defs: &[ResourceDef]) -> OpenApi {
        let v2 = v2_document(defs);
        let v2_json = Served::new(to_bytes(&v2));
        let v2_protobuf = Served::new(gnostic::v2_protobuf(&v2));
        let v3: BTreeMap<String, Served> = v3_paths(defs)
            .into_iter()
            .filter_map(|path| {
                let doc = v3_document_for_path(defs, &path)?;
                Some((path, Served::new(to_bytes(&doc))))
            })
            .collect();
        let hashes: Vec<(String, String)> = v3
            .iter()
            .map(|(path, s)| (path.clone(), s.hash.clone()))
            .collect();
        let v3_index = Served::new(to_bytes(&v3::index(&hashes)));
        OpenApi {
            v2_json,
            v2_protobuf,
            v3_index,
            v3,
        }
    }

    /// `/openapi/v2` as JSON.
    pub fn v2_json(&self) -> &Served {
        &self.v2_json
    }

    /// `/openapi/v2` as gnostic protobuf ([`CONTENT_TYPE_V2_PROTOBUF`]).
    pub fn v2_protobuf(&self) -> &Served {
        &self.v2_protobuf
    }

    /// `/openapi/v2` in the format `Accept` asks for; `None` means 406 Not Acceptable.
    pub fn v2_for(&self, accept: Option<&str>) -> Option<(&'static str, &Served)> {
        match negotiate_v2(accept)? {
            V2Format::Json => Some((CONTENT_TYPE_JSON, &self.v2_json)),
            V2Format::Protobuf => Some((CONTENT_TYPE_V2_PROTOBUF, &self.v2_protobuf)),
        }
    }

    /// `/openapi/v3`.
    pub fn v3_index(&self) -> &Served {
        &self.v3_index
    }

    /// `/openapi/v3/<path>`, e.g. `apis/slipway.dev/v1alpha1`, `api/v1` or `version`.
    pub fn v3(&self, path: &str) -> Option<&Served> {
        self.v3.get(path.trim_matches('/'))
    }

    /// The v3 document of a group-version (`""` for the core group).
    pub fn v3_group_version(&self, group: &str, version: &str) -> Option<&Served> {
        self.v3.get(&gv_path(group, version))
    }

    /// The paths the v3 index lists.
    pub fn v3_paths(&self) -> impl Iterator<Item = &str> {
        self.v3.keys().map(String::as_str)
    }
}

/// The representations of `/openapi/v2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V2Format {
    Json,
    Protobuf,
}

/// The media ranges of an `Accept` header, best first (by `q`, then specificity, then order),
/// without those with `q=0`.
fn accept_ranges(accept: &str) -> Vec<(String, String)> {
    let mut ranges: Vec<(f32, u8, usize, String, String)> = accept
        .split(',')
        .enumerate()
        .filter_map(|(i, part)| {
            let mut pieces = part.split(';');
            let range = pieces.next()?.trim().to_ascii_lowercase();
            let (ty, sub) = range.split_once('/')?;
            let mut q = 1.0f32;
            for param in pieces {
                if let Some((k, v)) = param.split_once('=')
                    && k.trim().eq_ignore_ascii_case("q")
                {
                    q = v.trim().parse().unwrap_or(0.0);
                }
            }
            let specificity = u8::from(ty != "*") + u8::from(sub != "*");
            (q > 0.0).then(|| (q, specificity, i, ty.to_string(), sub.to_string()))
        })
        .collect();
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    ranges
        .into_iter()
        .map(|(_, _, _, ty, sub)| (ty, sub))
        .collect()
}

/// The `/openapi/v2` representation for an `Accept` header, as upstream negotiates it (JSON
/// for a missing header and for wildcards); `None` means 406 Not Acceptable.
pub fn negotiate_v2(accept: Option<&str>) -> Option<V2Format> {
    let accept = accept.filter(|a| !a.trim().is_empty()).unwrap_or("*/*");
    let offered = [
        ("json", V2Format::Json),
        (
            "com.github.proto-openapi.spec.v2@v1.0+protobuf",
            V2Format::Protobuf,
        ),
        (
            "com.github.proto-openapi.spec.v2.v1.0+protobuf",
            V2Format::Protobuf,
        ),
    ];
    accept_ranges(accept).iter().find_map(|(ty, sub)| {
        offered
            .iter()
            .find(|(offer, _)| (ty == "application" || ty == "*") && (sub == offer || sub == "*"))
            .map(|(_, format)| *format)
    })
}

/// Whether an `Accept` header admits the JSON v3 documents (the only form served); `false`
/// means 406 Not Acceptable.
pub fn accepts_v3_json(accept: Option<&str>) -> bool {
    let accept = accept.filter(|a| !a.trim().is_empty()).unwrap_or("*/*");
    accept_ranges(accept)
        .iter()
        .any(|(ty, sub)| (ty == "application" || ty == "*") && (sub == "json" || sub == "*"))
}

#[cfg(test)]
mod tests;
