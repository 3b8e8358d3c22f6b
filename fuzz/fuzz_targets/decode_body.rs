//! Request decoding: any bytes, in any accepted body format, must decode or give a 4xx,
//! never panic; and whatever decodes must survive the schema checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slipway_apiserver::request::{BodyFormat, decode_body};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let format = match selector % 6 {
        0 => BodyFormat::Json,
        1 => BodyFormat::Yaml,
        2 => BodyFormat::MergePatch,
        3 => BodyFormat::JsonPatch,
        4 => BodyFormat::ApplyPatch,
        _ => BodyFormat::Protobuf,
    };
    match decode_body(body, format) {
        Ok((value, _duplicates)) => {
            let schema = serde_json::json!({"type": "object", "properties": {"spec": {"type": "object"}}});
            let _ = slipway_apimachinery::schema::unknown_fields(&schema, &value);
            let _ = slipway_apimachinery::schema::validate(&schema, &value);
        }
        Err(e) => assert!((400..500).contains(&e.code), "decoding error must be a 4xx, got {}", e.code),
    }
});
