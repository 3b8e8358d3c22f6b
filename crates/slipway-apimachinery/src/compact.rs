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
}
