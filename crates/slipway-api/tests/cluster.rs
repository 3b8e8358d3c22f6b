//! Cluster defaulting and validation, driven through the kind's `Strategy` on untyped objects
//! exactly as the registry calls it.

use serde_json::{Value, json};
use slipway_api::cluster::{Cluster, ClusterSpec};
use slipway_api::cluster_resource;
use slipway_apimachinery::{FieldError, ResourceDef};

fn example() -> Value {
    let text = include_str!("fixtures/cluster-example.yaml");
    serde_saphyr::from_str(text).expect("the example parses")
}

fn set(obj: &mut Value, pointer: &str, value: Value) {
    let (parent, last) = pointer.rsplit_once('/').expect("a pointer");
    let parent = obj
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent}"));
    match parent {
        Value::Object(map) => {
            map.insert(last.to_string(), value);
        }
        Value::Array(items) => {
            let i: usize = last.parse().expect("an index");
            if i == items.len() {
                items.push(value);
            } else {
                items[i] = value;
            }
        }
        other => panic!("cannot set {pointer} in {other}"),
    }
}

fn remove(obj: &mut Value, pointer: &str) {
    let (parent, last) = pointer.rsplit_once('/').expect("a pointer");
    if let Some(Value::Object(map)) = obj.pointer_mut(parent) {
        map.remove(last);
    }
}

/// Default, then validate, as the registry does on create.
fn create_errors(def: &ResourceDef, mut obj: Value) -> Vec<FieldError> {
    def.strategy.default(&mut obj);
    def.strategy.validate(&obj, None)
}

fn fields(errs: &[FieldError]) -> Vec<(String, &'static str)> {
    errs.iter()
        .map(|e| (e.field.to_string(), e.kind.reason()))
        .collect()
}

#[test]
fn the_design_example_is_valid_before_and_after_defaulting() {
    let def = cluster_resource();
    let obj = example();
    assert_eq!(
        obj["spec"]["nodePools"][1]["taints"][0]["value"], "true",
        "YAML kept the quoted string"
    );
    assert_eq!(def.strategy.validate(&obj, None), vec![]);
    assert_eq!(create_errors(&def, obj), vec![]);
}

/// Every value the user wrote survives defaulting unchanged.
#[test]
fn defaulting_keeps_what_was_written() {
    fn leaves(v: &Value, at: String, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Object(m) => m
                .iter()
                .for_each(|(k, c)| leaves(c, format!("{at}/{k}"), out)),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, c)| leaves(c, format!("{at}/{i}"), out)),
            leaf => out.push((at, leaf.clone())),
        }
    }
    let def = cluster_resource();
    let original = example();
    let mut defaulted = original.clone();
    def.strategy.default(&mut defaulted);
    let mut written = Vec::new();
    leaves(&original, String::new(), &mut written);
    assert!(written.len() > 40);
    for (pointer, value) in written {
        assert_eq!(
            defaulted.pointer(&pointer),
            Some(&value),
            "{pointer} changed"
        );
    }
    assert_eq!(defaulted["metadata"], original["metadata"]);
    // And the typed form reads it back.
    let typed: Cluster = serde_json::from_value(defaulted).expect("a Cluster");
    assert_eq!(typed.spec.node_pools.as_ref().map(Vec::len), Some(2));
}

#[test]
fn defaults_are_applied() {
    let def = cluster_resource();
    let mut obj = example();
    def.strategy.default(&mut obj);
    let spec = &obj["spec"];
    assert_eq!(spec["controlPlane"]["etcd"], "stacked");
    assert_eq!(spec["controlPlane"]["replicas"], 3, "written values win");
    let gpu = &spec["nodePools"][1];
    assert_eq!(gpu["arch"], "amd64");
    assert_eq!(gpu["minReplicas"], 0, "from replicas");
    assert_eq!(gpu["maxReplicas"], 8);
    assert_eq!(spec["nodePools"][0]["arch"], "amd64");
    assert_eq!(spec["maintenance"]["window"]["days"], json!(["Tue", "Wed"]));

    let mut minimal = json!({
        "apiVersion": "slipway.dev/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": "dev", "namespace": "team-a"},
        "spec": {
            "version": "1.33.4",
            "infrastructure": {"region": "eu-west-1"},
            "nodePools": [{"name": "a"}, {"name": "b", "minReplicas": 2}, {"name": "c", "maxReplicas": 0}, {"name": "d", "replicas": 5, "maxReplicas": 3}],
            "maintenance": {"window": {"start": "03:30"}},
        },
    });
    def.strategy.default(&mut minimal);
    let spec = &minimal["spec"];
    assert_eq!(
        spec["infrastructure"],
        json!({"provider": "sim", "region": "eu-west-1"})
    );
    assert_eq!(
        spec["controlPlane"],
        json!({"replicas": 1, "etcd": "stacked", "endpoint": "private"})
    );
    assert_eq!(
        spec["nodePools"][0],
        json!({"name": "a", "arch": "amd64", "replicas": 1, "minReplicas": 1, "maxReplicas": 1, "capacityType": "on-demand"})
    );
    let sizes = |i: usize| {
        let p = &spec["nodePools"][i];
        (
            p["replicas"].clone(),
            p["minReplicas"].clone(),
            p["maxReplicas"].clone(),
        )
    };
    assert_eq!(sizes(1), (json!(2), json!(2), json!(2)));
    assert_eq!(sizes(2), (json!(0), json!(0), json!(0)));
    assert_eq!(
        sizes(3),
        (json!(5), json!(3), json!(3)),
        "min is capped by max"
    );
    assert_eq!(
        spec["upgrade"],
        json!({"strategy": "RollingReplace", "maxSurge": 1, "maxUnavailable": 0, "drainTimeout": "30m"})
    );
    assert_eq!(
        spec["maintenance"],
        json!({
            "window": {"days": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], "start": "03:30", "duration": "4h", "timeZone": "UTC"},
            "autoUpdate": {"patch": true, "machineImage": true},
        })
    );
    assert!(
        spec.get("addons").is_none() && spec.get("ttl").is_none() && spec.get("tier").is_none()
    );
    // Pool d asks for 5 machines but at most 3: defaulting leaves that for validation.
    assert_eq!(
        fields(&def.strategy.validate(&minimal, None)),
        vec![(
            "spec.nodePools[3].replicas".to_string(),
            "FieldValueInvalid"
        )]
    );

    let mut in_place = json!({"metadata": {"name": "x"}, "spec": {"version": "1.33.4", "infrastructure": {"region": "eu-west-1"}, "upgrade": {"strategy": "InPlace"}}});
    def.strategy.default(&mut in_place);
    assert_eq!(in_place["spec"]["upgrade"]["maxSurge"], 0);
    assert_eq!(in_place["spec"]["upgrade"]["maxUnavailable"], 1);
    assert_eq!(def.strategy.validate(&in_place, None), vec![]);
}

#[test]
fn defaulting_is_idempotent() {
    let def = cluster_resource();
    for mut obj in [
        example(),
        json!({"metadata": {"name": "x"}, "spec": {"version": "1.33.4", "infrastructure": {"region": "us-east-1"}, "nodePools": [{"name": "p", "maxReplicas": 4}], "maintenance": {}}}),
    ] {
        def.strategy.default(&mut obj);
        let once = obj.clone();
        def.strategy.default(&mut obj);
        assert_eq!(obj, once);
    }
}

/// Strict field validation may run after defaulting: unknown fields must still be there.
#[test]
fn defaulting_keeps_unknown_fields() {
    let def = cluster_resource();
    let mut obj = example();
    set(&mut obj, "/spec/colour", json!("red"));
    set(&mut obj, "/spec/nodePools/1/colour", json!("blue"));
    def.strategy.default(&mut obj);
    assert_eq!(obj["spec"]["colour"], "red");
    assert_eq!(obj["spec"]["nodePools"][1]["colour"], "blue");
    assert_eq!(obj["spec"]["nodePools"][1]["minReplicas"], 0);
}

#[test]
fn defaulting_leaves_undecodable_objects_alone() {
    let def = cluster_resource();
    for garbage in [
        json!(null),
        json!([]),
        json!({"spec": "x"}),
        json!({"spec": {"infrastructure": {"region": 3}}}),
    ] {
        let mut obj = garbage.clone();
        def.strategy.default(&mut obj);
        assert_eq!(obj, garbage);
    }
}

/// One broken field each (on top of the DESIGN.md example): the exact path and reason.
#[test]
fn invalid_clusters_are_rejected_at_the_exact_field() {
    let def = cluster_resource();
    type Edit = fn(&mut Value);
    /// Name, edit of the example, expected (field, reason) list, a text one message contains.
    type Case = (
        &'static str,
        Edit,
        Vec<(&'static str, &'static str)>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "control plane of 2",
            |o| set(o, "/spec/controlPlane/replicas", json!(2)),
            vec![("spec.controlPlane.replicas", "FieldValueNotSupported")],
            "supported values: \"1\", \"3\", \"5\"",
        ),
        (
            "min above max",
            |o| set(o, "/spec/nodePools/1/minReplicas", json!(9)),
            vec![("spec.nodePools[1].minReplicas", "FieldValueInvalid")],
            "must be less than or equal to maxReplicas (8)",
        ),
        (
            "replicas above max",
            |o| set(o, "/spec/nodePools/0/replicas", json!(31)),
            vec![("spec.nodePools[0].replicas", "FieldValueInvalid")],
            "must be less than or equal to maxReplicas (30)",
        ),
        (
            "replicas below min",
            |o| set(o, "/spec/nodePools/0/replicas", json!(2)),
            vec![("spec.nodePools[0].replicas", "FieldValueInvalid")],
            "must be greater than or equal to minReplicas (3)",
        ),
        (
            "negative replicas",
            |o| set(o, "/spec/nodePools/1/maxReplicas", json!(-1)),
            vec![("spec.nodePools[1].maxReplicas", "FieldValueInvalid")],
            "greater than or equal to 0",
        ),
        (
            "duplicate pool",
            |o| set(o, "/spec/nodePools/1/name", json!("general")),
            vec![("spec.nodePools[1].name", "FieldValueDuplicate")],
            "Duplicate value: \"general\"",
        ),
        (
            "pool name not a label",
            |o| set(o, "/spec/nodePools/0/name", json!("General_Pool")),
            vec![("spec.nodePools[0].name", "FieldValueInvalid")],
            "RFC 1123 label",
        ),
        (
            "version with v",
            |o| set(o, "/spec/version", json!("v1.33.4")),
            vec![("spec.version", "FieldValueInvalid")],
            "without a leading 'v'",
        ),
        (
            "version without patch",
            |o| set(o, "/spec/version", json!("1.33")),
            vec![("spec.version", "FieldValueInvalid")],
            "MAJOR.MINOR.PATCH",
        ),
        (
            "version and release",
            |o| set(o, "/spec/release", json!("2026.11.0")),
            vec![("spec.release", "FieldValueForbidden")],
            "together with spec.version",
        ),
        (
            "neither version nor release nor class",
            |o| {
                remove(o, "/spec/version");
                remove(o, "/spec/class");
            },
            vec![("spec.version", "FieldValueRequired")],
            "spec.release",
        ),
        (
            "bad release",
            |o| {
                remove(o, "/spec/version");
                set(o, "/spec/release", json!("november"));
            },
            vec![("spec.release", "FieldValueInvalid")],
            "2026.11.0",
        ),
        (
            "class not a name",
            |o| set(o, "/spec/class", json!("Production")),
            vec![("spec.class", "FieldValueInvalid")],
            "RFC 1123 subdomain",
        ),
        (
            "capacity type",
            |o| set(o, "/spec/nodePools/0/capacityType", json!("reserved")),
            vec![("spec.nodePools[0].capacityType", "FieldValueNotSupported")],
            "\"on-demand\", \"spot\"",
        ),
        (
            "arch",
            |o| set(o, "/spec/nodePools/0/arch", json!("x86")),
            vec![("spec.nodePools[0].arch", "FieldValueNotSupported")],
            "\"amd64\", \"arm64\"",
        ),
        (
            "taint effect",
            |o| set(o, "/spec/nodePools/1/taints/0/effect", json!("NoRun")),
            vec![(
                "spec.nodePools[1].taints[0].effect",
                "FieldValueNotSupported",
            )],
            "NoExecute",
        ),
        (
            "upgrade strategy",
            |o| set(o, "/spec/upgrade/strategy", json!("Recreate")),
            vec![("spec.upgrade.strategy", "FieldValueNotSupported")],
            "BlueGreen",
        ),
        (
            "endpoint",
            |o| set(o, "/spec/controlPlane/endpoint", json!("internet")),
            vec![("spec.controlPlane.endpoint", "FieldValueNotSupported")],
            "\"private\", \"public\"",
        ),
        (
            "etcd",
            |o| set(o, "/spec/controlPlane/etcd", json!("embedded")),
            vec![("spec.controlPlane.etcd", "FieldValueNotSupported")],
            "stacked",
        ),
        (
            "day",
            |o| set(o, "/spec/maintenance/window/days/1", json!("Funday")),
            vec![("spec.maintenance.window.days[1]", "FieldValueNotSupported")],
            "\"Mon\"",
        ),
        (
            "duplicate day",
            |o| set(o, "/spec/maintenance/window/days/1", json!("Tue")),
            vec![("spec.maintenance.window.days[1]", "FieldValueDuplicate")],
            "Tue",
        ),
        (
            "no surge and no unavailability",
            |o| set(o, "/spec/upgrade/maxSurge", json!(0)),
            vec![("spec.upgrade.maxUnavailable", "FieldValueInvalid")],
            "may not be 0 when maxSurge is 0",
        ),
        (
            "zero percent each",
            |o| {
                set(o, "/spec/upgrade/maxSurge", json!("0%"));
                set(o, "/spec/upgrade/maxUnavailable", json!("0%"));
            },
            vec![("spec.upgrade.maxUnavailable", "FieldValueInvalid")],
            "may not be 0",
        ),
        (
            "negative surge",
            |o| set(o, "/spec/upgrade/maxSurge", json!(-1)),
            vec![("spec.upgrade.maxSurge", "FieldValueInvalid")],
            "greater than or equal to 0",
        ),
        (
            "surge not a percent",
            |o| set(o, "/spec/upgrade/maxSurge", json!("two")),
            vec![("spec.upgrade.maxSurge", "FieldValueInvalid")],
            "percentage such as 25%",
        ),
        (
            "unavailable above 100%",
            |o| set(o, "/spec/upgrade/maxUnavailable", json!("150%")),
            vec![("spec.upgrade.maxUnavailable", "FieldValueInvalid")],
            "100%",
        ),
        (
            "in place without unavailability",
            |o| {
                set(o, "/spec/upgrade/strategy", json!("InPlace"));
            },
            vec![("spec.upgrade.maxUnavailable", "FieldValueInvalid")],
            "InPlace",
        ),
        (
            "drain timeout",
            |o| set(o, "/spec/upgrade/drainTimeout", json!("30 minutes")),
            vec![("spec.upgrade.drainTimeout", "FieldValueInvalid")],
            "such as 30m",
        ),
        (
            "zero drain timeout",
            |o| set(o, "/spec/upgrade/drainTimeout", json!("0s")),
            vec![("spec.upgrade.drainTimeout", "FieldValueInvalid")],
            "greater than zero",
        ),
        (
            "ttl in days",
            |o| set(o, "/spec/ttl", json!("3d")),
            vec![("spec.ttl", "FieldValueInvalid")],
            "1h30m",
        ),
        (
            "window too long",
            |o| set(o, "/spec/maintenance/window/duration", json!("25h")),
            vec![("spec.maintenance.window.duration", "FieldValueInvalid")],
            "at most 24h",
        ),
        (
            "window start",
            |o| set(o, "/spec/maintenance/window/start", json!("2am")),
            vec![("spec.maintenance.window.start", "FieldValueInvalid")],
            "HH:MM",
        ),
        (
            "time zone",
            |o| {
                set(
                    o,
                    "/spec/maintenance/window/timeZone",
                    json!("Europe Berlin"),
                )
            },
            vec![("spec.maintenance.window.timeZone", "FieldValueInvalid")],
            "IANA",
        ),
        (
            "zone of another region",
            |o| set(o, "/spec/infrastructure/zones/1", json!("us-east-1a")),
            vec![("spec.infrastructure.zones[1]", "FieldValueInvalid")],
            "zone of region eu-west-1",
        ),
        (
            "region as zone",
            |o| set(o, "/spec/infrastructure/zones/1", json!("eu-west-1")),
            vec![("spec.infrastructure.zones[1]", "FieldValueInvalid")],
            "eu-west-1a",
        ),
        (
            "duplicate zone",
            |o| set(o, "/spec/infrastructure/zones/2", json!("eu-west-1a")),
            vec![("spec.infrastructure.zones[2]", "FieldValueDuplicate")],
            "eu-west-1a",
        ),
        (
            "pool zone outside the cluster's",
            |o| {
                set(
                    o,
                    "/spec/nodePools/0/zones",
                    json!(["eu-west-1a", "eu-west-1d"]),
                )
            },
            vec![("spec.nodePools[0].zones[1]", "FieldValueNotSupported")],
            "\"eu-west-1b\"",
        ),
        (
            "pool zone of another region",
            |o| {
                remove(o, "/spec/infrastructure/zones");
                set(o, "/spec/nodePools/0/zones", json!(["us-east-1a"]));
            },
            vec![("spec.nodePools[0].zones[0]", "FieldValueInvalid")],
            "zone of region eu-west-1",
        ),
        (
            "region missing",
            |o| remove(o, "/spec/infrastructure/region"),
            vec![("spec.infrastructure.region", "FieldValueRequired")],
            "Required value",
        ),
        (
            "region not a name",
            |o| {
                set(o, "/spec/infrastructure/region", json!("EU West"));
                remove(o, "/spec/infrastructure/zones");
            },
            vec![("spec.infrastructure.region", "FieldValueInvalid")],
            "RFC 1123 label",
        ),
        (
            "label key",
            |o| set(o, "/spec/nodePools/0/labels/bad key!", json!("x")),
            vec![("spec.nodePools[0].labels", "FieldValueInvalid")],
            "\"bad key!\"",
        ),
        (
            "label value",
            |o| set(o, "/spec/nodePools/0/labels/workload", json!("-general")),
            vec![("spec.nodePools[0].labels[workload]", "FieldValueInvalid")],
            "valid label",
        ),
        (
            "taint key",
            |o| set(o, "/spec/nodePools/1/taints/0/key", json!("nvidia.com/")),
            vec![("spec.nodePools[1].taints[0].key", "FieldValueInvalid")],
            "name part",
        ),
        (
            "taint value",
            |o| set(o, "/spec/nodePools/1/taints/0/value", json!("not ok")),
            vec![("spec.nodePools[1].taints[0].value", "FieldValueInvalid")],
            "valid label",
        ),
        (
            "duplicate taint",
            |o| {
                set(
                    o,
                    "/spec/nodePools/1/taints/1",
                    json!({"key": "nvidia.com/gpu", "value": "false", "effect": "NoSchedule"}),
                )
            },
            vec![("spec.nodePools[1].taints[1]", "FieldValueDuplicate")],
            "nvidia.com/gpu:NoSchedule",
        ),
        (
            "taint without effect",
            |o| remove(o, "/spec/nodePools/1/taints/0/effect"),
            vec![("spec.nodePools[1].taints[0].effect", "FieldValueRequired")],
            "Required value",
        ),
        (
            "no GPUs",
            |o| set(o, "/spec/nodePools/1/gpu", json!({"count": 0})),
            vec![("spec.nodePools[1].gpu.count", "FieldValueInvalid")],
            "at least 1",
        ),
        (
            "machine type",
            |o| set(o, "/spec/nodePools/0/machineType", json!("m5 large")),
            vec![("spec.nodePools[0].machineType", "FieldValueInvalid")],
            "m5.large",
        ),
        (
            "duplicate addon",
            |o| set(o, "/spec/addons/1", json!({"name": "ingress-nginx"})),
            vec![("spec.addons[1].name", "FieldValueDuplicate")],
            "ingress-nginx",
        ),
        (
            "tier",
            |o| set(o, "/spec/tier", json!("Prod")),
            vec![("spec.tier", "FieldValueInvalid")],
            "RFC 1123 label",
        ),
        (
            "name with a dot",
            |o| set(o, "/metadata/name", json!("payments.eu")),
            vec![("metadata.name", "FieldValueInvalid")],
            "RFC 1123 label",
        ),
        (
            "name too long",
            |o| set(o, "/metadata/name", json!("a".repeat(64))),
            vec![("metadata.name", "FieldValueInvalid")],
            "no more than 63 characters",
        ),
        (
            "replicas not a number",
            |o| set(o, "/spec/nodePools/0/replicas", json!("three")),
            vec![("spec.nodePools[0].replicas", "FieldValueTypeInvalid")],
            "must be an integer",
        ),
        (
            "replicas too big",
            |o| {
                set(
                    o,
                    "/spec/nodePools/0/maxReplicas",
                    json!(10_000_000_000_i64),
                )
            },
            vec![("spec.nodePools[0].maxReplicas", "FieldValueInvalid")],
            "32-bit",
        ),
        (
            "spec not an object",
            |o| set(o, "/spec", json!("big")),
            vec![("spec", "FieldValueTypeInvalid")],
            "must be an object",
        ),
        (
            "no spec",
            |o| remove(o, "/spec"),
            vec![("spec", "FieldValueRequired")],
            "Required value",
        ),
        (
            "conditions",
            |o| {
                set(
                    o,
                    "/status",
                    json!({"conditions": [{"type": "Ready", "status": "Yes"}, {"type": "Ready", "status": "True"}]}),
                )
            },
            vec![
                ("status.conditions[0].status", "FieldValueNotSupported"),
                ("status.conditions[1].type", "FieldValueDuplicate"),
            ],
            "\"Unknown\"",
        ),
        (
            "negative status counts",
            |o| set(o, "/status", json!({"readyNodes": -1, "costPerHour": -0.5})),
            vec![
                ("status.readyNodes", "FieldValueInvalid"),
                ("status.costPerHour", "FieldValueInvalid"),
            ],
            "non-negative",
        ),
    ];
    let mut failures = Vec::new();
    for (name, edit, expected, message) in cases {
        let mut obj = example();
        edit(&mut obj);
        let errs = create_errors(&def, obj);
        let got = fields(&errs);
        let expected: Vec<(String, &str)> = expected
            .into_iter()
            .map(|(f, r)| (f.to_string(), r))
            .collect();
        let messages: Vec<String> = errs.iter().map(ToString::to_string).collect();
        if got != expected || !messages.iter().any(|m| m.contains(message)) {
            failures.push(format!(
                "{name}: expected {expected:?} with {message:?}, got {messages:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_error_is_reported_at_once() {
    let def = cluster_resource();
    let mut obj = example();
    set(&mut obj, "/spec/controlPlane/replicas", json!(4));
    set(
        &mut obj,
        "/spec/nodePools/0/capacityType",
        json!("reserved"),
    );
    set(&mut obj, "/spec/nodePools/1/minReplicas", json!(9));
    set(&mut obj, "/spec/version", json!("latest"));
    set(&mut obj, "/spec/ttl", json!("forever"));
    let errs = create_errors(&def, obj);
    assert_eq!(
        fields(&errs),
        vec![
            (
                "spec.controlPlane.replicas".to_string(),
                "FieldValueNotSupported"
            ),
            (
                "spec.nodePools[0].capacityType".to_string(),
                "FieldValueNotSupported"
            ),
            ("spec.version".to_string(), "FieldValueInvalid"),
            (
                "spec.nodePools[1].minReplicas".to_string(),
                "FieldValueInvalid"
            ),
            ("spec.ttl".to_string(), "FieldValueInvalid"),
        ]
    );
}

#[test]
fn provider_and_region_are_immutable() {
    let def = cluster_resource();
    let mut old = example();
    def.strategy.default(&mut old);

    let mut same = old.clone();
    set(&mut same, "/spec/nodePools/0/replicas", json!(5));
    set(&mut same, "/spec/version", json!("1.34.0"));
    set(
        &mut same,
        "/spec/infrastructure/zones",
        json!(["eu-west-1a", "eu-west-1b"]),
    );
    assert_eq!(def.strategy.validate(&same, Some(&old)), vec![]);

    let mut moved = old.clone();
    set(
        &mut moved,
        "/spec/infrastructure/region",
        json!("us-east-1"),
    );
    set(
        &mut moved,
        "/spec/infrastructure/zones",
        json!(["us-east-1a"]),
    );
    set(&mut moved, "/spec/infrastructure/provider", json!("capi"));
    let errs = def.strategy.validate(&moved, Some(&old));
    assert_eq!(
        fields(&errs),
        vec![
            (
                "spec.infrastructure.provider".to_string(),
                "FieldValueInvalid"
            ),
            (
                "spec.infrastructure.region".to_string(),
                "FieldValueInvalid"
            ),
        ]
    );
    assert!(
        errs.iter().all(|e| e.detail == "field is immutable"),
        "{errs:?}"
    );
    assert_eq!(
        errs[1].to_string(),
        "spec.infrastructure.region: Invalid value: \"us-east-1\": field is immutable"
    );

    // An old object stored before defaulting had no provider: that meant the default.
    let mut undefaulted = old.clone();
    remove(&mut undefaulted, "/spec/infrastructure/provider");
    assert_eq!(def.strategy.validate(&old, Some(&undefaulted)), vec![]);
}

#[test]
fn the_minor_version_cannot_go_down() {
    let def = cluster_resource();
    let old = example();
    let with_version = |v: &str| {
        let mut new = old.clone();
        set(&mut new, "/spec/version", json!(v));
        fields(&def.strategy.validate(&new, Some(&old)))
    };
    assert_eq!(
        with_version("1.32.9"),
        vec![("spec.version".to_string(), "FieldValueForbidden")]
    );
    assert_eq!(
        with_version("1.33.1"),
        vec![],
        "patch rollbacks are allowed"
    );
    assert_eq!(with_version("1.35.0"), vec![]);
}

#[test]
fn typed_callers_share_the_rules() {
    let mut spec: ClusterSpec = serde_json::from_value(example()["spec"].clone()).expect("a spec");
    slipway_api::cluster::defaults::apply(&mut spec);
    let path = slipway_apimachinery::FieldPath::root("spec");
    assert_eq!(
        slipway_api::cluster::validation::validate_spec(&spec, &path),
        vec![]
    );
    spec.control_plane.as_mut().expect("defaulted").replicas = Some(2);
    let errs = slipway_api::cluster::validation::validate_spec(&spec, &path);
    assert_eq!(
        fields(&errs),
        vec![(
            "spec.controlPlane.replicas".to_string(),
            "FieldValueNotSupported"
        )]
    );
}
