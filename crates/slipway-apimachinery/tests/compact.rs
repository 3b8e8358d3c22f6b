//! `compact` gives memory back: measured with a counting allocator (this test binary's own).

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;

use slipway_apimachinery::compact::compact;

/// The system allocator, counting what it hands out and takes back.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The counts are global: one measuring test at a time.
static MEASURING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn measuring() -> std::sync::MutexGuard<'static, ()> {
    MEASURING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Bytes held at the end of `region` more than at its start.
fn held(region: &Region<'_, System>) -> isize {
    let s = region.change();
    (s.bytes_allocated as isize + s.bytes_reallocated) - s.bytes_deallocated as isize
}

/// A Node-like object as a store holds it: a status and a managedFields tree of small maps.
const NODE: &str = r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"n1","uid":"u","labels":{"kubernetes.io/hostname":"n1","slipway.dev/pool":"p"},"managedFields":[{"manager":"kubelet","operation":"Update","apiVersion":"v1","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{".":{},"f:kubernetes.io/hostname":{},"f:slipway.dev/pool":{}}},"f:status":{"f:conditions":{".":{},"k:{\"type\":\"Ready\"}":{".":{},"f:lastHeartbeatTime":{},"f:lastTransitionTime":{},"f:message":{},"f:reason":{},"f:status":{},"f:type":{}},"k:{\"type\":\"MemoryPressure\"}":{".":{},"f:status":{},"f:type":{}}},"f:addresses":{".":{},"k:{\"type\":\"InternalIP\"}":{".":{},"f:address":{},"f:type":{}}}}}}]},"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady"},{"type":"MemoryPressure","status":"False"}],"addresses":[{"type":"InternalIP","address":"10.0.0.1"}]}}"#;

#[test]
fn a_compacted_object_holds_far_less_memory_and_is_the_same_object() {
    let _one = measuring();
    let region = Region::new(GLOBAL);
    let mut node: serde_json::Value = serde_json::from_str(NODE).expect("decode");
    let decoded = held(&region);
    let original = node.clone();
    let region = Region::new(GLOBAL);
    compact(&mut node);
    let compacted = decoded + held(&region);
    assert_eq!(node, original);
    // Most maps here have one to three keys and were decoded with room for more (about a
    // quarter of this object's memory).
    assert!(
        compacted * 100 < decoded * 85,
        "decoded {decoded} bytes, compacted {compacted}"
    );
}

#[test]
fn parsing_fitted_holds_what_parsing_and_compacting_holds() {
    let _one = measuring();
    let mut compacted: serde_json::Value = serde_json::from_str(NODE).expect("decode");
    compact(&mut compacted);
    let region = Region::new(GLOBAL);
    let mut node: serde_json::Value = serde_json::from_str(NODE).expect("decode");
    compact(&mut node);
    let by_compacting = held(&region);
    drop(node);
    let region = Region::new(GLOBAL);
    let fitted = slipway_apimachinery::compact::from_slice_fitted(NODE.as_bytes()).expect("decode");
    let by_fitting = held(&region);
    assert_eq!(
        serde_json::to_string(&fitted).expect("encode"),
        serde_json::to_string(&compacted).expect("encode")
    );
    // One map slot more, for the resourceVersion a reader stamps into `metadata`.
    assert!(
        by_fitting <= by_compacting + 256,
        "compacted {by_compacting} bytes, fitted {by_fitting}"
    );
}
