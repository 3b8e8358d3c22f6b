//! Patch application: any patch document against any object must apply or give a 4xx,
//! never panic, and a failed patch must leave the target as it was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slipway_apimachinery::patch;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (target, doc) = text.split_once('\n').unwrap_or((r#"{"spec":{"a":[1,2]}}"#, &text));
    let (Ok(target), Ok(doc)) = (serde_json::from_str::<serde_json::Value>(target), serde_json::from_str::<serde_json::Value>(doc)) else {
        return;
    };
    let before = target.clone();
    let _ = patch::apply_merge_patch(&target, &doc);
    if let Err(e) = patch::apply_json_patch(&target, &doc) {
        assert!((400..500).contains(&e.code));
    }
    if let Err(e) = patch::apply_strategic_merge_patch(&target, &doc) {
        assert!((400..500).contains(&e.code));
    }
    assert_eq!(target, before);
});
