#![allow(clippy::unwrap_used)]

use super::*;
use serde_json::json;

const AV: &str = "slipway.dev/v1alpha1";
const T1: &str = "2025-01-01T00:00:00Z";
const T2: &str = "2025-01-01T00:01:00Z";
const T3: &str = "2025-01-01T00:02:00Z";

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": {
                "version": {"type": "string"},
                "class": {"type": "string"},
                "infrastructure": {"type": "object", "properties": {
                    "provider": {"type": "string"},
                    "region": {"type": "string"},
                    "zones": {"type": "array", "items": {"type": "string"}}
                }},
                "nodePools": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "properties": {
                        "name": {"type": "string"},
                        "machineType": {"type": "string"},
                        "replicas": {"type": "integer"},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}}
                    }}
                },
                "features": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "maintenance": {"type": "object", "x-kubernetes-map-type": "atomic", "properties": {
                    "window": {"type": "string"}, "timeZone": {"type": "string"}
                }},
                "endpoints": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["port", "protocol"],
                    "items": {"type": "object", "properties": {
                        "port": {"type": "integer"},
                        "protocol": {"type": "string", "default": "TCP"}
                    }}
                }
            }},
            "status": {"type": "object", "properties": {
                "phase": {"type": "string"},
                "conditions": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["type"],
                    "items": {"type": "object", "properties": {
                        "type": {"type": "string"}, "status": {"type": "string"}
                    }}
                }
            }}
        }
    })
}

/// An apply configuration for the Cluster `payments-eu` with the given spec (and extra
/// top-level members).
fn config(spec: Value) -> Value {
    json!({
        "apiVersion": AV,
        "kind": "Cluster",
        "metadata": {"name": "payments-eu", "namespace": "team-payments"},
        "spec": spec
    })
}

/// An apply configuration with no spec at all.
fn bare() -> Value {
    json!({"apiVersion": AV, "kind": "Cluster", "metadata": {"name": "payments-eu", "namespace": "team-payments"}})
}

fn with(mut obj: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = if parent.is_empty() {
        &mut obj
    } else {
        obj.pointer_mut(parent).unwrap()
    };
    target
        .as_object_mut()
        .unwrap()
        .insert(key.to_string(), value);
    obj
}

fn run(
    live: Option<&Value>,
    cfg: &Value,
    manager: &str,
    force: bool,
    scope: Scope,
    now: &str,
) -> Result<Value, ApplyError> {
    apply(live, cfg, &schema(), manager, force, scope, now)
}

fn ok(live: Option<&Value>, cfg: &Value, manager: &str, now: &str) -> Value {
    run(live, cfg, manager, false, Scope::Main, now).unwrap()
}

fn entry<'a>(obj: &'a Value, manager: &str, operation: &str) -> Option<&'a Value> {
    obj.pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
}

/// The `fieldsV1` of a manager's entry, as compact JSON.
fn fields(obj: &Value, manager: &str, operation: &str) -> String {
    entry(obj, manager, operation)
        .map(|e| serde_json::to_string(&e["fieldsV1"]).unwrap())
        .unwrap_or_else(|| "<no entry>".into())
}

fn managers(obj: &Value) -> Vec<String> {
    managed_fields(obj)
        .iter()
        .map(|e| {
            let sub = e
                .subresource
                .as_deref()
                .map(|s| format!("/{s}"))
                .unwrap_or_default();
            format!("{}:{}{sub}", e.manager, e.operation)
        })
        .collect()
}

fn cluster_config() -> Value {
    with(
        config(json!({
            "version": "1.33.4",
            "infrastructure": {"provider": "sim", "region": "eu-west-1", "zones": ["eu-west-1a", "eu-west-1b"]},
            "nodePools": [{"name": "general", "machineType": "m5.xlarge", "replicas": 3}]
        })),
        "/metadata/labels",
        json!({"tier": "production"}),
    )
}

#[test]
fn create_via_apply_owns_what_the_config_sets() {
    let cfg = cluster_config();
    let out = ok(None, &cfg, "kubectl", T1);
    let mf = out["metadata"]["managedFields"].clone();
    assert_eq!(without_managed_fields(&out), cfg);
    assert_eq!(
        serde_json::to_string(&mf).unwrap(),
        concat!(
            r#"[{"manager":"kubectl","operation":"Apply","apiVersion":"slipway.dev/v1alpha1","#,
            r#""time":"2025-01-01T00:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"#,
            r#""f:metadata":{"f:labels":{"f:tier":{}}},"#,
            r#""f:spec":{"f:infrastructure":{"f:provider":{},"f:region":{},"f:zones":{}},"#,
            r#""f:nodePools":{"k:{\"name\":\"general\"}":{".":{},"f:machineType":{},"f:name":{},"f:replicas":{}}},"#,
            r#""f:version":{}}}}]"#
        )
    );
}

#[test]
fn reapplying_the_same_config_changes_nothing() {
    let cfg = cluster_config();
    let first = ok(None, &cfg, "kubectl", T1);
    let second = ok(Some(&first), &cfg, "kubectl", T2);
    assert_eq!(
        serde_json::to_string(&second).unwrap(),
        serde_json::to_string(&first).unwrap()
    );
    assert_eq!(entry(&second, "kubectl", "Apply").unwrap()["time"], T1);
}

#[test]
fn applying_without_a_field_removes_it() {
    let first = ok(None, &cluster_config(), "kubectl", T1);
    // No version, no labels, no infrastructure.region.
    let cfg = config(json!({
        "infrastructure": {"provider": "sim", "zones": ["eu-west-1a", "eu-west-1b"]},
        "nodePools": [{"name": "general", "machineType": "m5.xlarge", "replicas": 3}]
    }));
    let out = ok(Some(&first), &cfg, "kubectl", T2);
    assert_eq!(out["spec"].get("version"), None);
    assert_eq!(out["spec"]["infrastructure"].get("region"), None);
    assert_eq!(
        out["metadata"].get("labels"),
        None,
        "an emptied map goes away"
    );
    assert_eq!(out["metadata"]["name"], "payments-eu");
    assert_eq!(entry(&out, "kubectl", "Apply").unwrap()["time"], T2);
    assert_eq!(
        fields(&out, "kubectl", "Apply"),
        r#"{"f:spec":{"f:infrastructure":{"f:provider":{},"f:zones":{}},"f:nodePools":{"k:{\"name\":\"general\"}":{".":{},"f:machineType":{},"f:name":{},"f:replicas":{}}}}}"#
    );
}

#[test]
fn fields_nobody_owns_stay_unless_their_parent_goes() {
    let first = ok(
        None,
        &config(json!({"version": "1.33.4", "nodePools": [{"name": "a"}]})),
        "kubectl",
        T1,
    );
    // The server defaulted spec.class; nobody owns it.
    let live = with(first, "/spec/class", json!("standard"));
    let out = ok(
        Some(&live),
        &config(json!({"nodePools": [{"name": "a"}]})),
        "kubectl",
        T2,
    );
    assert_eq!(
        out["spec"],
        json!({"nodePools": [{"name": "a"}], "class": "standard"})
    );
    // Applying nothing under spec any more removes spec, as upstream does for a struct
    // whose owned fields all went.
    let out = ok(Some(&out), &bare(), "kubectl", T3);
    assert_eq!(out.get("spec"), None);
    assert_eq!(
        out["metadata"].get("managedFields"),
        None,
        "an empty entry is dropped"
    );
}

#[test]
fn two_managers_share_a_field_with_the_same_value() {
    let a = ok(
        None,
        &config(json!({"version": "1.33.4", "class": "standard"})),
        "alice",
        T1,
    );
    let b = ok(Some(&a), &config(json!({"version": "1.33.4"})), "bob", T2);
    assert_eq!(
        fields(&b, "alice", "Apply"),
        r#"{"f:spec":{"f:class":{},"f:version":{}}}"#
    );
    assert_eq!(fields(&b, "bob", "Apply"), r#"{"f:spec":{"f:version":{}}}"#);
    // Alice lets go: bob still owns the version, so it stays.
    let c = ok(Some(&b), &config(json!({"class": "standard"})), "alice", T3);
    assert_eq!(c["spec"]["version"], "1.33.4");
    assert_eq!(fields(&c, "alice", "Apply"), r#"{"f:spec":{"f:class":{}}}"#);
    // Bob lets go too: now it goes.
    let d = ok(Some(&c), &bare(), "bob", T3);
    assert_eq!(d["spec"], json!({"class": "standard"}));
    assert_eq!(managers(&d), ["alice:Apply"]);
}

#[test]
fn a_conflict_names_the_manager_and_field_like_upstream() {
    // Created by client-side apply (an Update), then applied server-side with a new version.
    let created = track_update(
        None,
        cluster_config().clone(),
        &schema(),
        "kubectl-client-side-apply",
        Scope::Main,
        T1,
    );
    let mut cfg = cluster_config();
    cfg["spec"]["version"] = json!("1.34.0");
    let err = run(Some(&created), &cfg, "kubectl", false, Scope::Main, T2).unwrap_err();
    let ApplyError::Conflicts(conflicts) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        conflicts.conflicts,
        [Conflict {
            manager: "kubectl-client-side-apply".into(),
            operation: Operation::Update,
            api_version: AV.into(),
            field: ".spec.version".into(),
        }]
    );
    let api = err.to_api_error();
    assert_eq!((api.code, api.reason), (409, "Conflict"));
    assert_eq!(
        api.message,
        r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using slipway.dev/v1alpha1: .spec.version"#
    );
    assert_eq!(
        api.causes,
        [StatusCause {
            reason: "FieldManagerConflict".into(),
            message: r#"conflict with "kubectl-client-side-apply" using slipway.dev/v1alpha1"#
                .into(),
            field: ".spec.version".into(),
        }]
    );
    assert_eq!(ApiError::from(err.clone()), api);

    // Forced, the field changes hands.
    let forced = run(Some(&created), &cfg, "kubectl", true, Scope::Main, T2).unwrap();
    assert_eq!(forced["spec"]["version"], "1.34.0");
    let kubectl = fields(&forced, "kubectl", "Apply");
    assert!(kubectl.contains(r#""f:version":{}"#), "{kubectl}");
    let csa = fields(&forced, "kubectl-client-side-apply", "Update");
    assert!(!csa.contains("f:version"), "{csa}");
    assert!(csa.contains("f:region"), "{csa}");
}

#[test]
fn every_conflict_is_listed_grouped_by_manager() {
    let a = ok(
        None,
        &config(json!({"version": "1.33.4", "nodePools": [{"name": "general", "replicas": 3}]})),
        "alice",
        T1,
    );
    let b = track_update(
        Some(&a),
        with(
            a.clone(),
            "/spec/infrastructure",
            json!({"region": "eu-west-1"}),
        )
        .clone(),
        &schema(),
        "bob",
        Scope::Main,
        T2,
    );
    let cfg = config(json!({
        "version": "1.34.0",
        "infrastructure": {"region": "us-east-1"},
        "nodePools": [{"name": "general", "replicas": 5}]
    }));
    let err = run(Some(&b), &cfg, "carol", false, Scope::Main, T3).unwrap_err();
    assert_eq!(
        err.to_api_error().message,
        "Apply failed with 3 conflicts: conflicts with \"alice\":\n- .spec.nodePools[name=\"general\"].replicas\n- .spec.version\nconflicts with \"bob\" using slipway.dev/v1alpha1:\n- .spec.infrastructure.region"
    );
    let causes: Vec<(String, String)> = err
        .to_api_error()
        .causes
        .into_iter()
        .map(|c| (c.message, c.field))
        .collect();
    assert_eq!(
        causes,
        [
            (
                "conflict with \"alice\"".to_string(),
                ".spec.nodePools[name=\"general\"].replicas".to_string()
            ),
            (
                "conflict with \"alice\"".to_string(),
                ".spec.version".to_string()
            ),
            (
                "conflict with \"bob\" using slipway.dev/v1alpha1".to_string(),
                ".spec.infrastructure.region".to_string()
            ),
        ]
    );
    // Nothing changed on error, and forcing takes all three.
    let forced = run(Some(&b), &cfg, "carol", true, Scope::Main, T3).unwrap();
    assert_eq!(
        forced["spec"]["nodePools"],
        json!([{"name": "general", "replicas": 5}])
    );
    assert_eq!(
        fields(&forced, "alice", "Apply"),
        r#"{"f:spec":{"f:nodePools":{"k:{\"name\":\"general\"}":{".":{},"f:name":{}}}}}"#
    );
    // Bob keeps the struct his update created.
    assert_eq!(
        fields(&forced, "bob", "Update"),
        r#"{"f:spec":{"f:infrastructure":{}}}"#
    );
}

#[test]
fn node_pools_merge_by_name_and_each_manager_removes_only_its_own() {
    let a = ok(
        None,
        &config(json!({"nodePools": [{"name": "a", "replicas": 1}]})),
        "alice",
        T1,
    );
    let ab = ok(
        Some(&a),
        &config(json!({"nodePools": [{"name": "b", "replicas": 2}]})),
        "bob",
        T2,
    );
    assert_eq!(
        ab["spec"]["nodePools"],
        json!([{"name": "a", "replicas": 1}, {"name": "b", "replicas": 2}])
    );
    assert_eq!(
        fields(&ab, "bob", "Apply"),
        r#"{"f:spec":{"f:nodePools":{"k:{\"name\":\"b\"}":{".":{},"f:name":{},"f:replicas":{}}}}}"#
    );

    // Alice re-applies her pool only: bob's stays.
    let again = ok(
        Some(&ab),
        &config(json!({"nodePools": [{"name": "a", "replicas": 1}]})),
        "alice",
        T3,
    );
    assert_eq!(again, ab);
    // Alice drops her pool: only hers goes.
    let dropped = ok(Some(&ab), &config(json!({"nodePools": []})), "alice", T3);
    assert_eq!(
        dropped["spec"]["nodePools"],
        json!([{"name": "b", "replicas": 2}])
    );
    assert_eq!(managers(&dropped), ["bob:Apply"]);
    // Bob drops his: the emptied list goes away.
    let none = ok(Some(&dropped), &bare(), "bob", T3);
    assert_eq!(none.get("spec"), None);

    // Changing a field of someone else's pool conflicts on exactly that field.
    let err = run(
        Some(&ab),
        &config(json!({"nodePools": [{"name": "a", "replicas": 9}]})),
        "bob",
        false,
        Scope::Main,
        T3,
    )
    .unwrap_err();
    assert_eq!(
        err.to_api_error().message,
        r#"Apply failed with 1 conflict: conflict with "alice": .spec.nodePools[name="a"].replicas"#
    );
}

#[test]
fn list_items_keep_the_applied_order_and_live_only_items_stay_in_place() {
    let live = ok(
        None,
        &config(json!({"nodePools": [{"name": "a"}, {"name": "x"}, {"name": "b"}]})),
        "alice",
        T1,
    );
    let out = ok(
        Some(&live),
        &config(json!({"nodePools": [{"name": "c"}, {"name": "b"}, {"name": "a"}]})),
        "bob",
        T2,
    );
    let names: Vec<&str> = out["spec"]["nodePools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["c", "b", "a", "x"]);
}

#[test]
fn atomic_lists_and_maps_are_owned_whole() {
    let cfg = config(json!({
        "infrastructure": {"zones": ["eu-west-1a", "eu-west-1b"]},
        "maintenance": {"window": "Tue 02:00", "timeZone": "UTC"}
    }));
    let a = ok(None, &cfg, "alice", T1);
    assert_eq!(
        fields(&a, "alice", "Apply"),
        r#"{"f:spec":{"f:infrastructure":{"f:zones":{}},"f:maintenance":{}}}"#
    );
    // The same list from bob is shared; a different one conflicts on the whole list.
    let shared = ok(
        Some(&a),
        &config(json!({"infrastructure": {"zones": ["eu-west-1a", "eu-west-1b"]}})),
        "bob",
        T2,
    );
    assert_eq!(
        fields(&shared, "bob", "Apply"),
        r#"{"f:spec":{"f:infrastructure":{"f:zones":{}}}}"#
    );
    let err = run(
        Some(&a),
        &config(json!({"infrastructure": {"zones": ["eu-west-1a"]}})),
        "bob",
        false,
        Scope::Main,
        T2,
    )
    .unwrap_err();
    assert_eq!(
        err.to_api_error().causes[0].field,
        ".spec.infrastructure.zones"
    );
    let err = run(
        Some(&a),
        &config(json!({"maintenance": {"window": "Wed 02:00"}})),
        "bob",
        false,
        Scope::Main,
        T2,
    )
    .unwrap_err();
    assert_eq!(err.to_api_error().causes[0].field, ".spec.maintenance");
    // Replacing an atomic map does not merge it.
    let replaced = run(
        Some(&a),
        &config(json!({"maintenance": {"window": "Wed 02:00"}})),
        "bob",
        true,
        Scope::Main,
        T2,
    )
    .unwrap();
    assert_eq!(
        replaced["spec"]["maintenance"],
        json!({"window": "Wed 02:00"})
    );
}

#[test]
fn set_lists_own_each_value() {
    let a = ok(
        None,
        &config(json!({"features": ["audit", "gpu"]})),
        "alice",
        T1,
    );
    let b = ok(
        Some(&a),
        &config(json!({"features": ["gpu", "spot"]})),
        "bob",
        T2,
    );
    assert_eq!(b["spec"]["features"], json!(["audit", "gpu", "spot"]));
    assert_eq!(
        fields(&b, "alice", "Apply"),
        r#"{"f:spec":{"f:features":{"v:\"audit\"":{},"v:\"gpu\"":{}}}}"#
    );
    let c = ok(Some(&b), &bare(), "alice", T3);
    assert_eq!(c["spec"]["features"], json!(["gpu", "spot"]));
}

#[test]
fn labels_from_two_managers() {
    let a = ok(
        None,
        &with(bare(), "/metadata/labels", json!({"tier": "production"})),
        "alice",
        T1,
    );
    let b = ok(
        Some(&a),
        &with(bare(), "/metadata/labels", json!({"team": "payments"})),
        "bob",
        T2,
    );
    assert_eq!(
        b["metadata"]["labels"],
        json!({"tier": "production", "team": "payments"})
    );
    assert_eq!(
        fields(&b, "bob", "Apply"),
        r#"{"f:metadata":{"f:labels":{"f:team":{}}}}"#
    );
    let c = ok(Some(&b), &bare(), "alice", T3);
    assert_eq!(c["metadata"]["labels"], json!({"team": "payments"}));
    let err = run(
        Some(&b),
        &with(bare(), "/metadata/labels", json!({"tier": "dev"})),
        "bob",
        false,
        Scope::Main,
        T3,
    )
    .unwrap_err();
    assert_eq!(err.to_api_error().causes[0].field, ".metadata.labels.tier");
}

#[test]
fn finalizers_and_owner_references() {
    let cfg = with(
        with(
            bare(),
            "/metadata/finalizers",
            json!(["slipway.dev/cleanup"]),
        ),
        "/metadata/ownerReferences",
        json!([{"apiVersion": "v1", "kind": "Namespace", "name": "team-payments", "uid": "u-1"}]),
    );
    let out = ok(None, &cfg, "alice", T1);
    assert_eq!(
        fields(&out, "alice", "Apply"),
        r#"{"f:metadata":{"f:finalizers":{"v:\"slipway.dev/cleanup\"":{}},"f:ownerReferences":{"k:{\"uid\":\"u-1\"}":{".":{},"f:apiVersion":{},"f:kind":{},"f:name":{},"f:uid":{}}}}}"#
    );
    let b = ok(
        Some(&out),
        &with(bare(), "/metadata/finalizers", json!(["x.dev/other"])),
        "bob",
        T2,
    );
    assert_eq!(
        b["metadata"]["finalizers"],
        json!(["slipway.dev/cleanup", "x.dev/other"])
    );
    let c = ok(Some(&b), &bare(), "alice", T3);
    assert_eq!(c["metadata"]["finalizers"], json!(["x.dev/other"]));
    assert_eq!(c["metadata"].get("ownerReferences"), None);
}

#[test]
fn list_map_keys_take_schema_defaults() {
    let out = ok(
        None,
        &config(json!({"endpoints": [{"port": 443}]})),
        "alice",
        T1,
    );
    assert_eq!(
        fields(&out, "alice", "Apply"),
        r#"{"f:spec":{"f:endpoints":{"k:{\"port\":443,\"protocol\":\"TCP\"}":{".":{},"f:port":{}}}}}"#
    );
}

#[test]
fn status_is_untouched_by_the_main_resource_and_only_status_by_status() {
    let live = with(
        ok(None, &config(json!({"version": "1.33.4"})), "kubectl", T1),
        "/status",
        json!({"phase": "Running"}),
    );
    let cfg = with(
        config(json!({"version": "1.33.4"})),
        "/status",
        json!({"phase": "Failed"}),
    );
    let out = ok(Some(&live), &cfg, "kubectl", T2);
    assert_eq!(
        out, live,
        "status in an apply to the main resource is ignored"
    );

    let cfg = with(
        config(json!({"version": "9.9.9"})),
        "/status",
        json!({"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]}),
    );
    let out = run(
        Some(&live),
        &cfg,
        "slipway-controller",
        false,
        Scope::Status,
        T2,
    )
    .unwrap();
    assert_eq!(out["spec"]["version"], "1.33.4");
    assert_eq!(
        out["status"],
        json!({"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]})
    );
    let e = entry(&out, "slipway-controller", "Apply").unwrap();
    assert_eq!(e["subresource"], "status");
    assert_eq!(
        serde_json::to_string(&e["fieldsV1"]).unwrap(),
        r#"{"f:status":{"f:conditions":{"k:{\"type\":\"Ready\"}":{".":{},"f:status":{},"f:type":{}}},"f:phase":{}}}"#
    );
    // Its status fields do not conflict with a later apply of the main resource.
    let again = ok(
        Some(&out),
        &config(json!({"version": "1.34.0"})),
        "kubectl",
        T3,
    );
    assert_eq!(again["status"]["phase"], "Ready");
    assert_eq!(
        managers(&again),
        ["slipway-controller:Apply/status", "kubectl:Apply"],
        "oldest first"
    );

    // Without a status subresource, status is an ordinary field.
    let out = run(Some(&live), &cfg, "kubectl", false, Scope::Object, T2).unwrap();
    assert_eq!(out["status"]["phase"], "Ready");
    assert!(fields(&out, "kubectl", "Apply").contains("f:status"));
}

#[test]
fn track_update_on_create_writes_upstreams_shape() {
    let out = track_update(
        None,
        cluster_config().clone(),
        &schema(),
        "kubectl-create",
        Scope::Main,
        T1,
    );
    assert_eq!(without_managed_fields(&out), cluster_config());
    assert_eq!(
        serde_json::to_string(&out["metadata"]["managedFields"]).unwrap(),
        concat!(
            r#"[{"manager":"kubectl-create","operation":"Update","apiVersion":"slipway.dev/v1alpha1","#,
            r#""time":"2025-01-01T00:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"#,
            r#""f:metadata":{"f:labels":{".":{},"f:tier":{}}},"#,
            r#""f:spec":{".":{},"f:infrastructure":{".":{},"f:provider":{},"f:region":{},"f:zones":{}},"#,
            r#""f:nodePools":{".":{},"k:{\"name\":\"general\"}":{".":{},"f:machineType":{},"f:name":{},"f:replicas":{}}},"#,
            r#""f:version":{}}}}]"#
        )
    );
}

#[test]
fn track_update_moves_ownership_to_the_writer() {
    let applied = ok(None, &cluster_config(), "kubectl", T1);
    let mut edited = applied.clone();
    edited["spec"]["version"] = json!("1.34.0");
    edited["spec"]["infrastructure"]
        .as_object_mut()
        .unwrap()
        .shift_remove("region");
    let out = track_update(
        Some(&applied),
        edited.clone(),
        &schema(),
        "kubectl-edit",
        Scope::Main,
        T2,
    );
    assert_eq!(
        fields(&out, "kubectl-edit", "Update"),
        r#"{"f:spec":{"f:version":{}}}"#
    );
    assert_eq!(entry(&out, "kubectl-edit", "Update").unwrap()["time"], T2);
    let kubectl = fields(&out, "kubectl", "Apply");
    assert!(
        !kubectl.contains("f:version") && !kubectl.contains("f:region"),
        "{kubectl}"
    );
    assert_eq!(entry(&out, "kubectl", "Apply").unwrap()["time"], T1);
    assert_eq!(managers(&out), ["kubectl:Apply", "kubectl-edit:Update"]);

    // Re-applying the old version now conflicts with the editor.
    let err = run(
        Some(&out),
        &cluster_config(),
        "kubectl",
        false,
        Scope::Main,
        T3,
    )
    .unwrap_err();
    assert_eq!(
        err.to_api_error().message,
        r#"Apply failed with 1 conflict: conflict with "kubectl-edit" using slipway.dev/v1alpha1: .spec.version"#
    );

    // A write that changes nothing leaves managed fields and times alone.
    let same = track_update(Some(&out), out.clone(), &schema(), "other", Scope::Main, T3);
    assert_eq!(same, out);
}

#[test]
fn track_update_of_main_ignores_status_and_status_ignores_the_rest() {
    let live = ok(None, &config(json!({"version": "1.33.4"})), "kubectl", T1);
    let mut new = with(live.clone(), "/status", json!({"phase": "Running"}));
    new["spec"]["version"] = json!("1.34.0");
    let main = track_update(
        Some(&live),
        new.clone(),
        &schema(),
        "editor",
        Scope::Main,
        T2,
    );
    assert_eq!(
        fields(&main, "editor", "Update"),
        r#"{"f:spec":{"f:version":{}}}"#
    );
    let status = track_update(
        Some(&live),
        new.clone(),
        &schema(),
        "controller",
        Scope::Status,
        T2,
    );
    assert_eq!(
        fields(&status, "controller", "Update"),
        r#"{"f:status":{".":{},"f:phase":{}}}"#
    );
    assert_eq!(
        entry(&status, "controller", "Update").unwrap()["subresource"],
        "status"
    );
    assert!(fields(&status, "kubectl", "Apply").contains("f:version"));
}

#[test]
fn client_managed_fields_on_update() {
    let live = ok(
        None,
        &config(json!({"version": "1.33.4", "class": "standard"})),
        "alice",
        T1,
    );
    let live = ok(
        Some(&live),
        &config(json!({"version": "1.33.4"})),
        "bob",
        T1,
    );
    let mut new = live.clone();
    new["spec"]["class"] = json!("premium");

    // Absent: the live entries are kept.
    let mut absent = new.clone();
    absent["metadata"]
        .as_object_mut()
        .unwrap()
        .shift_remove("managedFields");
    let out = track_update(
        Some(&live),
        absent.clone(),
        &schema(),
        "editor",
        Scope::Main,
        T2,
    );
    assert_eq!(
        managers(&out),
        ["alice:Apply", "bob:Apply", "editor:Update"]
    );

    // `[]` and `[{}]` reset tracking: only this write's change is left.
    for reset in [json!([]), json!([{}])] {
        let out = track_update(
            Some(&live),
            with(new.clone(), "/metadata/managedFields", reset).clone(),
            &schema(),
            "editor",
            Scope::Main,
            T2,
        );
        assert_eq!(managers(&out), ["editor:Update"]);
        assert_eq!(
            fields(&out, "editor", "Update"),
            r#"{"f:spec":{"f:class":{}}}"#
        );
    }
    // A reset that changes nothing else clears managedFields entirely.
    let out = track_update(
        Some(&live),
        with(live.clone(), "/metadata/managedFields", json!([])).clone(),
        &schema(),
        "editor",
        Scope::Main,
        T2,
    );
    assert_eq!(out["metadata"].get("managedFields"), None);

    // Entries the client edited are honoured: here bob's is dropped.
    let only_alice: Vec<Value> = live["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["manager"] == "alice")
        .cloned()
        .collect();
    let out = track_update(
        Some(&live),
        with(live.clone(), "/metadata/managedFields", json!(only_alice)).clone(),
        &schema(),
        "editor",
        Scope::Main,
        T2,
    );
    assert_eq!(managers(&out), ["alice:Apply"]);

    // Malformed entries fall back to the live ones (the server answers 422 first).
    let bad = with(
        new.clone(),
        "/metadata/managedFields",
        json!([{"manager": "x", "operation": "Patch"}]),
    );
    let out = track_update(
        Some(&live),
        bad.clone(),
        &schema(),
        "editor",
        Scope::Main,
        T2,
    );
    assert_eq!(
        managers(&out),
        ["alice:Apply", "bob:Apply", "editor:Update"]
    );
    // And /status writes never take them from the client.
    let out = track_update(
        Some(&live),
        with(new, "/metadata/managedFields", json!([])).clone(),
        &schema(),
        "editor",
        Scope::Status,
        T2,
    );
    assert_eq!(managers(&out), ["alice:Apply", "bob:Apply"]);
}

#[test]
fn managed_fields_from_clients_are_validated_with_paths() {
    let valid = ok(None, &cluster_config(), "kubectl", T1);
    assert!(validate_managed_fields(&valid).is_empty());
    assert!(validate_managed_fields(&bare()).is_empty());
    for reset in [json!([]), json!([{}]), json!(null)] {
        assert!(
            validate_managed_fields(&with(valid.clone(), "/metadata/managedFields", reset))
                .is_empty()
        );
    }
    let good = valid["metadata"]["managedFields"][0].clone();
    let cases = [
        (
            json!([with(good.clone(), "/operation", json!("Patch"))]),
            vec![
                "metadata.managedFields[0].operation: Invalid value: \"Patch\": must be `Apply` or `Update`",
            ],
        ),
        (
            json!([
                good.clone(),
                with(good.clone(), "/fieldsType", json!("FieldsV2"))
            ]),
            vec![
                "metadata.managedFields[1].fieldsType: Invalid value: \"FieldsV2\": must be `FieldsV1`",
            ],
        ),
        (
            json!([with(good.clone(), "/fieldsV1", json!({"x:spec": {}}))]),
            vec![
                "metadata.managedFields[0].fieldsV1: Invalid value: {\"x:spec\":{}}: unknown path element prefix \"x\" in \"x:spec\": expected f:, k:, v: or i:",
            ],
        ),
        (
            json!([with(good.clone(), "/manager", json!("bad\u{7}name"))]),
            vec![
                "metadata.managedFields[0].manager: Invalid value: \"bad\u{7}name\": invalid character U+0007 (at position 3)",
            ],
        ),
        (
            json!([with(good.clone(), "/manager", json!("m".repeat(129)))]),
            vec!["metadata.managedFields[0].manager: Too long: may not be more than 128 bytes"],
        ),
        (
            json!([with(good.clone(), "/time", json!("yesterday"))]),
            vec![
                "metadata.managedFields[0].time: Invalid value: \"yesterday\": must be an RFC 3339 date-time such as 2025-01-01T00:00:00Z",
            ],
        ),
        (
            json!([with(good.clone(), "/apiVersion", json!(""))]),
            vec!["metadata.managedFields[0].apiVersion: Required value"],
        ),
        (
            json!(["x"]),
            vec!["metadata.managedFields[0]: Invalid value: \"x\": must be an object"],
        ),
        (
            json!("x"),
            vec![
                "metadata.managedFields: Invalid value: \"x\": must be a list of managed fields entries",
            ],
        ),
    ];
    for (mf, want) in cases {
        let errs =
            validate_managed_fields(&with(valid.clone(), "/metadata/managedFields", mf.clone()));
        let got: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(got, want, "{mf}");
    }
    let errs = validate_managed_fields(&with(
        valid,
        "/metadata/managedFields",
        json!([{"operation": "Apply"}]),
    ));
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "metadata.managedFields[0].apiVersion",
            "metadata.managedFields[0].fieldsType"
        ]
    );
}

#[test]
fn apply_rejects_configurations_upstream_rejects() {
    let err = run(
        None,
        &with(bare(), "/metadata/managedFields", json!([])),
        "kubectl",
        false,
        Scope::Main,
        T1,
    )
    .unwrap_err()
    .to_api_error();
    assert_eq!(
        (err.code, err.message.as_str()),
        (400, "metadata.managedFields must be nil")
    );
    let err = run(None, &json!([1]), "kubectl", false, Scope::Main, T1)
        .unwrap_err()
        .to_api_error();
    assert_eq!(err.code, 400);

    let err = run(
        None,
        &config(json!({"nodePools": [{"name": "a"}, {"replicas": 1}]})),
        "kubectl",
        false,
        Scope::Main,
        T1,
    )
    .unwrap_err()
    .to_api_error();
    assert_eq!((err.code, err.reason), (422, "Invalid"));
    assert_eq!(
        err.message,
        "Cluster.slipway.dev \"payments-eu\" is invalid: spec.nodePools[1].name: Required value: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)"
    );
    assert_eq!(err.causes[0].field, "spec.nodePools[1].name");

    let err = run(
        None,
        &config(json!({"nodePools": [{"name": "a"}, {"name": "a"}], "features": ["x", {"y": 1}]})),
        "kubectl",
        false,
        Scope::Main,
        T1,
    )
    .unwrap_err()
    .to_api_error();
    let causes: Vec<(&str, &str)> = err
        .causes
        .iter()
        .map(|c| (c.field.as_str(), c.message.as_str()))
        .collect();
    assert_eq!(
        causes,
        [
            ("spec.nodePools[1]", "Duplicate value: {\"name\":\"a\"}"),
            (
                "spec.features[1]",
                "Invalid value: {\"y\":1}: associative list without keys has an element that's a map type"
            ),
        ]
    );
}

#[test]
fn a_null_in_a_config_conflicts_then_removes_the_field() {
    let live = ok(
        None,
        &config(json!({"version": "1.33.4", "class": "standard"})),
        "alice",
        T1,
    );
    let err = run(
        Some(&live),
        &config(json!({"class": null})),
        "bob",
        false,
        Scope::Main,
        T2,
    )
    .unwrap_err();
    assert_eq!(
        err.to_api_error().message,
        r#"Apply failed with 1 conflict: conflict with "alice": .spec.class"#
    );
    let out = run(
        Some(&live),
        &config(json!({"class": null})),
        "bob",
        true,
        Scope::Main,
        T2,
    )
    .unwrap();
    assert_eq!(out["spec"], json!({"version": "1.33.4"}));
    assert_eq!(fields(&out, "bob", "Apply"), r#"{"f:spec":{"f:class":{}}}"#);
    assert_eq!(
        fields(&out, "alice", "Apply"),
        r#"{"f:spec":{"f:version":{}}}"#
    );
    // Unowned, a null simply removes it; for untracked metadata it means nothing.
    let cfg = with(
        config(json!({"version": null})),
        "/metadata/creationTimestamp",
        json!(null),
    );
    let live = with(bare(), "/spec", json!({"version": "1.33.4"}));
    let live = with(live, "/metadata/creationTimestamp", json!(T1));
    let out = ok(Some(&live), &cfg, "bob", T2);
    assert_eq!(out["spec"], json!({}));
    assert_eq!(out["metadata"]["creationTimestamp"], T1);
}

#[test]
fn entries_are_sorted_like_upstream() {
    let a = track_update(
        None,
        config(json!({"version": "1"})).clone(),
        &schema(),
        "zed",
        Scope::Main,
        T1,
    );
    let b = ok(Some(&a), &config(json!({"class": "x"})), "bob", T3);
    let c = ok(
        Some(&b),
        &config(json!({"infrastructure": {"region": "r"}})),
        "amy",
        T2,
    );
    let d = track_update(
        Some(&c),
        with(c.clone(), "/spec/features", json!(["f"])).clone(),
        &schema(),
        "abe",
        Scope::Main,
        T3,
    );
    assert_eq!(
        managers(&d),
        ["amy:Apply", "bob:Apply", "zed:Update", "abe:Update"]
    );
}

#[test]
fn scope_from_request() {
    assert_eq!(Scope::new(true, None), Scope::Main);
    assert_eq!(Scope::new(false, None), Scope::Object);
    assert_eq!(Scope::new(true, Some("status")), Scope::Status);
    assert_eq!(Scope::Status.subresource(), Some("status"));
    assert_eq!(Scope::Main.subresource(), None);
}

#[test]
fn objects_without_a_schema_are_maps_and_their_lists_atomic() {
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}, "list": [1, 2]});
    let out = apply(None, &cfg, &json!({}), "kubectl", false, Scope::Object, T1).unwrap();
    assert_eq!(
        fields(&out, "kubectl", "Apply"),
        r#"{"f:data":{".":{},"f:a":{}},"f:list":{}}"#
    );
}

#[test]
fn conflicts_by_kind_of_field() {
    // Alice owns everything below; bob applies one config each: same value shares, a
    // different value conflicts on exactly the owned node.
    let alice = with(
        config(json!({
            "version": "1.33.4",
            "infrastructure": {"zones": ["a", "b"]},
            "nodePools": [{"name": "general", "replicas": 3, "labels": {"role": "web"}}],
            "features": ["audit"],
            "maintenance": {"window": "Tue"}
        })),
        "/metadata/labels",
        json!({"tier": "production"}),
    );
    let live = ok(None, &alice, "alice", T1);
    let cases: [(Value, Option<&str>); 12] = [
        (config(json!({"version": "1.33.4"})), None),
        (config(json!({"version": "1.34.0"})), Some(".spec.version")),
        (
            config(json!({"infrastructure": {"zones": ["a", "b"]}})),
            None,
        ),
        (
            config(json!({"infrastructure": {"zones": ["b", "a"]}})),
            Some(".spec.infrastructure.zones"),
        ),
        (config(json!({"features": ["audit", "gpu"]})), None),
        (config(json!({"nodePools": [{"name": "general"}]})), None),
        (
            config(json!({"nodePools": [{"name": "gpu", "replicas": 1}]})),
            None,
        ),
        (
            config(json!({"nodePools": [{"name": "general", "replicas": 4}]})),
            Some(".spec.nodePools[name=\"general\"].replicas"),
        ),
        (
            config(json!({"nodePools": [{"name": "general", "labels": {"role": "db"}}]})),
            Some(".spec.nodePools[name=\"general\"].labels.role"),
        ),
        (
            config(json!({"maintenance": {"window": "Tue", "timeZone": "UTC"}})),
            Some(".spec.maintenance"),
        ),
        (with(bare(), "/metadata/labels", json!({"team": "x"})), None),
        (
            with(bare(), "/metadata/labels", json!({"tier": "dev"})),
            Some(".metadata.labels.tier"),
        ),
    ];
    for (cfg, want) in cases {
        let got = match run(Some(&live), &cfg, "bob", false, Scope::Main, T2) {
            Ok(_) => None,
            Err(ApplyError::Conflicts(c)) => {
                assert_eq!(c.conflicts.len(), 1, "{cfg}");
                assert_eq!(c.conflicts[0].manager, "alice");
                Some(c.conflicts[0].field.clone())
            }
            Err(other) => panic!("{cfg}: {other:?}"),
        };
        assert_eq!(got.as_deref(), want, "{cfg}");
    }
}

/// The in-place update of stored entries writes what decoding and encoding every entry
/// writes, through a run of writes by several managers: fields gained, moved between
/// managers, removed, a manager losing all it had, keyed and set lists, `/status` writes,
/// a write that changes nothing, and requests with and without the stored entries.
#[test]
fn updating_stored_entries_in_place_matches_decoding_them_all() {
    let step = |live: &Value, new: Value, manager: &str, scope: Scope, now: &str| {
        let decoded = track_update_decoded(Some(live), new.clone(), &schema(), manager, scope, now);
        let mut request = new;
        let stored = stored_entries(Some(live), &mut request, scope)
            .expect("the request carries the stored entries or none");
        let in_place =
            track_update_stored(Some(live), request, stored, &schema(), manager, scope, now);
        assert_eq!(
            serde_json::to_string(&in_place).unwrap(),
            serde_json::to_string(&decoded).unwrap(),
            "{manager} at {now}"
        );
        in_place
    };
    let without_entries = |obj: &Value| {
        let mut obj = obj.clone();
        obj["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        obj
    };

    let live = ok(None, &cluster_config(), "kubectl", T1);
    // Another manager scales a pool and adds a feature (a set list) and a label.
    let mut new = live.clone();
    new["spec"]["nodePools"][0]["replicas"] = json!(5);
    new["spec"]["features"] = json!(["gpu", "spot"]);
    new["metadata"]["labels"]["team"] = json!("payments");
    let live = step(&live, new, "autoscaler", Scope::Main, T2);
    // The status writer, twice: conditions (a keyed list), then one condition more.
    let mut new = live.clone();
    new["status"] =
        json!({"phase": "Provisioning", "conditions": [{"type": "Ready", "status": "False"}]});
    let live = step(&live, new, "controller", Scope::Status, T2);
    let mut new = without_entries(&live);
    new["status"] = json!({"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True"}, {"type": "NodePoolsReady", "status": "True"}]});
    let live = step(&live, new, "controller", Scope::Status, T3);
    // The applier's field taken by an editor, whose request carries no entries.
    let mut new = without_entries(&live);
    new["spec"]["version"] = json!("1.34.0");
    new["spec"]["nodePools"][0]["replicas"] = json!(4);
    let live = step(&live, new, "kubectl-edit", Scope::Main, T3);
    // Everything the autoscaler had goes: its entry goes with it.
    let mut new = live.clone();
    new["spec"].as_object_mut().unwrap().remove("features");
    new["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("team");
    new["spec"]["nodePools"][0]["replicas"] = json!(6);
    let live = step(&live, new, "kubectl-edit", Scope::Main, T3);
    assert!(entry(&live, "autoscaler", "Update").is_none());
    // A write that changes nothing, and a status write that drops a condition.
    let live = step(&live, live.clone(), "other", Scope::Main, T3);
    let mut new = live.clone();
    new["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    let live = step(&live, new, "controller", Scope::Status, T1);
    assert_eq!(
        managers(&live),
        [
            "kubectl:Apply",
            "controller:Update/status",
            "kubectl-edit:Update"
        ]
    );
}
