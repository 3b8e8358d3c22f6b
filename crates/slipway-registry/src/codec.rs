//! Objects as the store holds them: JSON without `metadata.resourceVersion`, which is the
//! store's modification revision and is filled in on every read (as kube-apiserver does with
//! etcd's `mod_revision`).

use bytes::Bytes;
use serde_json::Value;
use slipway_apimachinery::ApiError;
use slipway_store::Revision;

/// Serialize an object for the store, without its resourceVersion.
pub fn encode(obj: &Value) -> Result<Bytes, ApiError> {
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&obj)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(format!("encoding object: {e}")))
}

/// Parse a stored object and stamp its resourceVersion.
pub fn decode(bytes: &[u8], revision: Revision) -> Result<Value, ApiError> {
    let mut obj: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::internal(format!("decoding stored object: {e}")))?;
    set_resource_version(&mut obj, revision);
    Ok(obj)
}

pub fn set_resource_version(obj: &mut Value, revision: Revision) {
    slipway_apimachinery::meta::metadata_mut(obj).insert(
        "resourceVersion".into(),
        Value::String(revision.to_string()),
    );
}

/// Parse a client-supplied resourceVersion.
pub fn parse_resource_version(rv: &str) -> Result<Revision, ApiError> {
    rv.parse::<Revision>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid resource version \"{rv}\": must be a non-negative integer"
            ))
        })
}
