//! Objects as the store holds them: JSON without `metadata.resourceVersion`, which is the
//! store's modification revision and is filled in on every read (as kube-apiserver does with
//! etcd's `mod_revision`).

use bytes::Bytes;
use serde_json::Value;
use slipway_apimachinery::ApiError;
use slipway_store::Revision;

/// Serialize an object for the store, without its resourceVersion.
pub fn encode(obj: &Value) -> Result<Bytes, ApiError> {
    serde_json::to_vec(&Stored(obj))
        .map(|mut v| {
            // The bytes are kept (by the store's events and the watch cache) as long as the
            // object is current; the buffer grew by doubling, so a quarter of it is spare.
            v.shrink_to_fit();
            Bytes::from(v)
        })
        .map_err(|e| ApiError::internal(format!("encoding object: {e}")))
}

/// An object serialized as stored: as is, except `metadata.resourceVersion` (written without
/// copying the object to remove it).
struct Stored<'a>(&'a Value);

/// `metadata` serialized without `resourceVersion`.
struct WithoutResourceVersion<'a>(&'a serde_json::Map<String, Value>);

impl serde::Serialize for Stored<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Value::Object(map) = self.0 else {
            return self.0.serialize(serializer);
        };
        let mut out = serializer.serialize_map(Some(map.len()))?;
        for (k, v) in map {
            match v {
                Value::Object(meta) if k == "metadata" => {
                    out.serialize_entry(k, &WithoutResourceVersion(meta))?
                }
                _ => out.serialize_entry(k, v)?,
            }
        }
        out.end()
    }
}

impl serde::Serialize for WithoutResourceVersion<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut out = serializer.serialize_map(None)?;
        for (k, v) in self.0 {
            if k != "resourceVersion" {
                out.serialize_entry(k, v)?;
            }
        }
        out.end()
    }
}

/// Parse a stored object and stamp its resourceVersion.
pub fn decode(bytes: &[u8], revision: Revision) -> Result<Value, ApiError> {
    let mut obj: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::internal(format!("decoding stored object: {e}")))?;
    set_resource_version(&mut obj, revision);
    Ok(obj)
}

/// [`decode`] for an object that is kept (the watch cache's): parsed shrunk to fit
/// ([`slipway_apimachinery::compact::from_slice_fitted`]).
pub fn decode_kept(bytes: &[u8], revision: Revision) -> Result<Value, ApiError> {
    let mut obj = slipway_apimachinery::compact::from_slice_fitted(bytes)
        .map_err(|e| ApiError::internal(format!("decoding stored object: {e}")))?;
    set_resource_version(&mut obj, revision);
    Ok(obj)
}

/// Set `metadata.resourceVersion`, last in `metadata` as [`decode`] puts it: an object
/// written and the same object read back are identical, to the order of their fields.
pub fn set_resource_version(obj: &mut Value, revision: Revision) {
    let meta = slipway_apimachinery::meta::metadata_mut(obj);
    meta.shift_remove("resourceVersion");
    meta.insert(
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_form_drops_only_the_resource_version_and_keeps_order() {
        let obj = json!({
            "kind": "ConfigMap",
            "metadata": {"name": "a", "resourceVersion": "7", "uid": "u",
                         "annotations": {"resourceVersion": "kept"}},
            "data": {"metadata": {"resourceVersion": "kept too"}},
        });
        let bytes = encode(&obj).unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"kind":"ConfigMap","metadata":{"name":"a","uid":"u","annotations":{"resourceVersion":"kept"}},"data":{"metadata":{"resourceVersion":"kept too"}}}"#
        );
        let back = decode(&bytes, 9).unwrap();
        let mut written = obj.clone();
        set_resource_version(&mut written, 9);
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            serde_json::to_string(&written).unwrap(),
            "an object written and read back are identical, to the order of their fields"
        );
        assert_eq!(back["metadata"]["resourceVersion"], "9");
        assert_eq!(back["data"], obj["data"]);
        // Not an object, or metadata not an object: stored as it is.
        assert_eq!(&encode(&json!([1])).unwrap()[..], b"[1]");
        assert_eq!(
            &encode(&json!({"metadata": 1})).unwrap()[..],
            br#"{"metadata":1}"#
        );
    }
}
