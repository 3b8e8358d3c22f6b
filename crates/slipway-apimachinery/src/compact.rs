//! JSON values shrunk to fit, for objects that are kept (watch caches).
//!
//! A `serde_json::Map` (an `IndexMap` with `preserve_order`) grows its entries by doubling from
//! four, and each entry is over a hundred bytes: a decoded one-key map, of which a
//! `managedFields` tree is mostly made, holds room for four. Kept for the life of an object,
//! that slack is most of a cache's memory.

use serde_json::{Map, Value};

/// Rebuild every map of `value` at exactly its length, and shrink its arrays and strings to
/// theirs. The value is unchanged (keys keep their order).
pub fn compact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let old = std::mem::take(map);
            let mut fitted = Map::with_capacity(old.len());
            for (mut key, mut item) in old {
                key.shrink_to_fit();
                compact(&mut item);
                fitted.insert(key, item);
            }
            *map = fitted;
        }
        Value::Array(items) => {
            items.iter_mut().for_each(compact);
            items.shrink_to_fit();
        }
        Value::String(s) => s.shrink_to_fit(),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Parse JSON into a value already shrunk to fit, as [`compact`] would leave it, without
/// building the grown value first: each map is collected and then built at its length (with
/// room for one member more in a top-level `metadata`, where the reader stamps
/// `resourceVersion`), arrays are shrunk once full, and strings are copied at their length.
/// The value and its key order are those `serde_json::from_slice` gives.
pub fn from_slice_fitted(bytes: &[u8]) -> serde_json::Result<Value> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Fitted {
        spare: 0,
        top: true,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// One value to parse: `spare` extra map slots, `top` for the document's root.
struct Fitted {
    spare: usize,
    top: bool,
}

impl<'de> serde::de::DeserializeSeed<'de> for Fitted {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Fitted {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, mut v: String) -> Result<Value, E> {
        v.shrink_to_fit();
        Ok(Value::String(v))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        serde::de::DeserializeSeed::deserialize(self, d)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(Fitted {
            spare: 0,
            top: false,
        })? {
            items.push(item);
        }
        items.shrink_to_fit();
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut members: Vec<(String, Value)> = Vec::new();
        while let Some(key) = access.next_key::<String>()? {
            let spare = usize::from(self.top && key == "metadata");
            let value = access.next_value_seed(Fitted { spare, top: false })?;
            members.push((key, value));
        }
        let mut map = Map::with_capacity(members.len() + self.spare);
        for (mut key, value) in members {
            key.shrink_to_fit();
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compacting_keeps_the_value_and_its_order() {
        let original = json!({
            "metadata": {"name": "n", "labels": {"z": "1", "a": "2"}, "managedFields": [
                {"manager": "m", "fieldsV1": {"f:metadata": {"f:labels": {"f:z": {}}}}}
            ]},
            "spec": {"list": [1, "two", null, true, {"k": []}]},
        });
        let mut v = original.clone();
        compact(&mut v);
        assert_eq!(v, original);
        assert_eq!(
            serde_json::to_string(&v).expect("serialize"),
            serde_json::to_string(&original).expect("serialize")
        );
    }

    #[test]
    fn parsing_fitted_gives_the_value_parsing_gives() {
        let text = r#"{"kind": "Node", "metadata": {"name": "n", "labels": {"z": "1", "a": "2", "z": "3"},
            "managedFields": [{"manager": "m", "fieldsV1": {"f:metadata": {"f:labels": {"f:z": {}}}}}]},
            "spec": {"list": [1, -2, 3.5, 1e300, "two \u00e9\n", null, true, {"k": []}, []], "empty": {}}}"#;
        let parsed: Value = serde_json::from_str(text).expect("parse");
        let fitted = from_slice_fitted(text.as_bytes()).expect("parse fitted");
        assert_eq!(
            serde_json::to_string(&fitted).expect("serialize"),
            serde_json::to_string(&parsed).expect("serialize")
        );
        for bad in ["{", "[1,]", "{} x", "", r#"{"a": tru}"#] {
            assert!(from_slice_fitted(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
