//! Every served kind's schema is structural and says what clients need: descriptions,
//! list semantics, int-or-string and enums; and the ResourceDefs name the kinds as upstream.

use serde_json::{Value, json};
use slipway_api::schema::structural_problems;
use slipway_api::{cluster_resource, resources};

fn prop<'a>(schema: &'a Value, path: &str) -> &'a Value {
    let mut node = schema;
    for part in path.split('.') {
        node = match part {
            "[]" => &node["items"],
            "[*]" => &node["additionalProperties"],
            name => &node["properties"][name],
        };
        assert!(!node.is_null(), "no {part} in {path}");
    }
    node
}

#[test]
fn every_schema_is_structural_and_inlined() {
    let defs = resources();
    assert_eq!(defs.len(), 10);
    for def in &defs {
        let problems = structural_problems(&def.schema);
        assert!(problems.is_empty(), "{}: {problems:#?}", def.kind);
        let text = def.schema.to_string();
        for forbidden in ["$ref", "$schema", "definitions", "anyOf", "oneOf", "allOf"] {
            assert!(
                !text.contains(forbidden),
                "{} schema contains {forbidden}",
                def.kind
            );
        }
        for root_field in ["apiVersion", "kind"] {
            assert_eq!(
                prop(&def.schema, root_field)["type"],
                "string",
                "{}",
                def.kind
            );
        }
        let meta = prop(&def.schema, "metadata");
        assert_eq!(prop(meta, "name")["type"], "string", "{}", def.kind);
        assert_eq!(
            prop(meta, "creationTimestamp"),
            &json!({"type": "string", "format": "date-time", "description": prop(meta, "creationTimestamp")["description"]})
        );
        assert_eq!(prop(meta, "labels.[*]")["type"], "string");
        assert_eq!(prop(meta, "finalizers")["x-kubernetes-list-type"], "set");
        assert_eq!(
            prop(meta, "ownerReferences")["x-kubernetes-list-map-keys"],
            json!(["uid"])
        );
        assert_eq!(
            prop(meta, "managedFields.[].fieldsV1")["x-kubernetes-preserve-unknown-fields"],
            true
        );
        let required = def
            .schema
            .get("required")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        assert!(
            !required.contains(&json!("metadata")),
            "{}: metadata should not be required",
            def.kind
        );
    }
}

#[test]
fn the_structural_check_can_fail() {
    let mut schema = cluster_resource().schema;
    schema["properties"]["spec"]["properties"]["version"] = json!({"description": "no type"});
    assert_eq!(structural_problems(&schema), vec![".spec.version: no type"]);
}

/// Every field of spec and status has a description: `kubectl explain` prints them.
#[test]
fn every_cluster_field_is_described() {
    fn walk(node: &Value, at: &str, missing: &mut Vec<String>) {
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (name, child) in props {
                let here = format!("{at}.{name}");
                let described = child
                    .get("description")
                    .and_then(Value::as_str)
                    .is_some_and(|d| d.len() > 10);
                if !described {
                    missing.push(here.clone());
                }
                walk(child, &here, missing);
            }
        }
        if let Some(items) = node.get("items") {
            walk(items, at, missing);
        }
    }
    let schema = cluster_resource().schema;
    let mut missing = Vec::new();
    walk(prop(&schema, "spec"), "spec", &mut missing);
    walk(prop(&schema, "status"), "status", &mut missing);
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:?}"
    );
    assert!(
        schema["description"]
            .as_str()
            .is_some_and(|d| d.contains("Kubernetes cluster"))
    );
    let pools = prop(&schema, "spec.nodePools")["description"]
        .as_str()
        .unwrap_or_default();
    assert!(pools.contains("node pools"), "{pools}");
    let capacity = prop(&schema, "spec.nodePools.[].capacityType")["description"]
        .as_str()
        .unwrap_or_default();
    assert!(
        capacity.contains("on-demand") && capacity.contains("Default"),
        "{capacity}"
    );
}

#[test]
fn cluster_schema_declares_list_semantics_int_or_string_and_enums() {
    let schema = cluster_resource().schema;
    let pools = prop(&schema, "spec.nodePools");
    assert_eq!(pools["type"], "array");
    assert_eq!(pools["x-kubernetes-list-type"], "map");
    assert_eq!(pools["x-kubernetes-list-map-keys"], json!(["name"]));
    assert_eq!(
        prop(&schema, "spec.addons")["x-kubernetes-list-map-keys"],
        json!(["name"])
    );
    let conditions = prop(&schema, "status.conditions");
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
    assert_eq!(
        prop(&schema, "status.conditions.[].lastTransitionTime")["format"],
        "date-time"
    );
    assert_eq!(
        prop(&schema, "status.conditions.[].status")["enum"],
        json!(["True", "False", "Unknown"])
    );
    for field in ["maxSurge", "maxUnavailable"] {
        let node = prop(&schema, &format!("spec.upgrade.{field}"));
        assert_eq!(node["x-kubernetes-int-or-string"], true, "{field}");
        assert!(node.get("type").is_none(), "{field}");
    }
    let enums = [
        ("spec.controlPlane.replicas", json!([1, 3, 5])),
        ("spec.controlPlane.etcd", json!(["stacked", "external"])),
        ("spec.controlPlane.endpoint", json!(["private", "public"])),
        ("spec.nodePools.[].arch", json!(["amd64", "arm64"])),
        (
            "spec.nodePools.[].capacityType",
            json!(["on-demand", "spot"]),
        ),
        (
            "spec.nodePools.[].taints.[].effect",
            json!(["NoSchedule", "PreferNoSchedule", "NoExecute"]),
        ),
        (
            "spec.upgrade.strategy",
            json!(["RollingReplace", "InPlace", "BlueGreen"]),
        ),
        (
            "spec.maintenance.window.days.[]",
            json!(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]),
        ),
    ];
    for (path, values) in enums {
        assert_eq!(prop(&schema, path)["enum"], values, "{path}");
    }
    assert_eq!(
        prop(&schema, "spec.addons.[].config")["x-kubernetes-preserve-unknown-fields"],
        true
    );
    assert_eq!(prop(&schema, "spec")["required"], json!(["infrastructure"]));
    assert_eq!(
        prop(&schema, "spec.infrastructure")["required"],
        json!(["region"])
    );
    assert_eq!(
        prop(&schema, "spec.nodePools.[].taints.[]")["required"],
        json!(["effect", "key"])
    );
    assert_eq!(prop(&schema, "status.costPerHour")["type"], "number");
}

#[test]
fn builtin_schemas_come_from_k8s_openapi() {
    let by_kind = |kind: &str| {
        resources()
            .into_iter()
            .find(|d| d.kind == kind)
            .map(|d| d.schema)
            .unwrap_or_default()
    };
    let secret = by_kind("Secret");
    assert_eq!(
        prop(&secret, "data.[*]"),
        &json!({"type": "string", "format": "byte"})
    );
    assert_eq!(prop(&secret, "stringData.[*]")["type"], "string");
    assert_eq!(
        prop(&by_kind("ConfigMap"), "binaryData.[*]")["format"],
        "byte"
    );
    assert_eq!(
        prop(&by_kind("Namespace"), "status.phase")["type"],
        "string"
    );
    assert_eq!(
        prop(
            &by_kind("Namespace"),
            "status.conditions.[].lastTransitionTime"
        )["format"],
        "date-time"
    );
    let lease = by_kind("Lease");
    assert_eq!(prop(&lease, "spec.renewTime")["format"], "date-time");
    assert_eq!(prop(&lease, "spec.leaseDurationSeconds")["type"], "integer");
    let event = by_kind("Event");
    assert_eq!(prop(&event, "involvedObject.name")["type"], "string");
    assert_eq!(
        prop(&event, "series.lastObservedTime")["format"],
        "date-time"
    );
    assert_eq!(event["required"], json!(["involvedObject"]));
}

#[test]
fn resource_defs_name_the_kinds_like_upstream() {
    let got: Vec<_> = resources()
        .into_iter()
        .map(|d| {
            (
                d.api_version(),
                d.kind.clone(),
                d.list_kind.clone(),
                d.plural.clone(),
                d.singular.clone(),
                d.short_names.clone(),
                d.namespaced,
                d.status_subresource,
                d.tracks_generation,
            )
        })
        .collect();
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_string()).collect::<Vec<_>>();
    let expected = vec![
        (
            "slipway.dev/v1alpha1".to_string(),
            "Cluster".to_string(),
            "ClusterList".to_string(),
            "clusters".to_string(),
            "cluster".to_string(),
            s(&["cl"]),
            true,
            true,
            true,
        ),
        (
            "slipway.dev/v1alpha1".into(),
            "ClusterClass".into(),
            "ClusterClassList".into(),
            "clusterclasses".into(),
            "clusterclass".into(),
            s(&["cc"]),
            false,
            false,
            true,
        ),
        (
            "slipway.dev/v1alpha1".into(),
            "Machine".into(),
            "MachineList".into(),
            "machines".into(),
            "machine".into(),
            s(&["ma"]),
            true,
            true,
            true,
        ),
        (
            "slipway.dev/v1alpha1".into(),
            "IPPool".into(),
            "IPPoolList".into(),
            "ippools".into(),
            "ippool".into(),
            s(&["ipp"]),
            false,
            true,
            true,
        ),
        (
            "slipway.dev/v1alpha1".into(),
            "IPAddress".into(),
            "IPAddressList".into(),
            "ipaddresses".into(),
            "ipaddress".into(),
            s(&["ipa"]),
            false,
            false,
            true,
        ),
        (
            "v1".into(),
            "Namespace".into(),
            "NamespaceList".into(),
            "namespaces".into(),
            "namespace".into(),
            s(&["ns"]),
            false,
            true,
            false,
        ),
        (
            "v1".into(),
            "Secret".into(),
            "SecretList".into(),
            "secrets".into(),
            "secret".into(),
            s(&[]),
            true,
            false,
            false,
        ),
        (
            "v1".into(),
            "ConfigMap".into(),
            "ConfigMapList".into(),
            "configmaps".into(),
            "configmap".into(),
            s(&["cm"]),
            true,
            false,
            false,
        ),
        (
            "v1".into(),
            "Event".into(),
            "EventList".into(),
            "events".into(),
            "event".into(),
            s(&["ev"]),
            true,
            false,
            false,
        ),
        (
            "coordination.k8s.io/v1".into(),
            "Lease".into(),
            "LeaseList".into(),
            "leases".into(),
            "lease".into(),
            s(&[]),
            true,
            false,
            false,
        ),
    ];
    assert_eq!(got, expected);
    assert_eq!(cluster_resource().categories, vec!["slipway".to_string()]);
}

#[test]
fn printer_columns() {
    let cols = |kind: &str| -> Vec<(String, String, String, i32)> {
        resources()
            .into_iter()
            .find(|d| d.kind == kind)
            .map(|d| d.printer_columns)
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.name, c.type_, c.json_path, c.priority))
            .collect()
    };
    let c =
        |n: &str, t: &str, p: &str, prio: i32| (n.to_string(), t.to_string(), p.to_string(), prio);
    assert_eq!(
        cols("Cluster"),
        vec![
            c("Version", "string", ".spec.version", 0),
            c("Control Plane", "integer", ".spec.controlPlane.replicas", 0),
            c("Nodes", "integer", ".status.readyNodes", 0),
            c(
                "Ready",
                "string",
                ".status.conditions[?(@.type==\"Ready\")].status",
                0
            ),
            c("Age", "date", ".metadata.creationTimestamp", 0),
            c("Region", "string", ".spec.infrastructure.region", 1),
            c("Class", "string", ".spec.class", 1),
        ]
    );
    assert_eq!(
        cols("Namespace"),
        vec![
            c("Status", "string", ".status.phase", 0),
            c("Age", "date", ".metadata.creationTimestamp", 0)
        ]
    );
    assert_eq!(cols("Secret")[0], c("Type", "string", ".type", 0));
    assert_eq!(
        cols("ConfigMap"),
        vec![c("Age", "date", ".metadata.creationTimestamp", 0)]
    );
    assert_eq!(
        cols("Lease")[0],
        c("Holder", "string", ".spec.holderIdentity", 0)
    );
    let events: Vec<String> = cols("Event")
        .into_iter()
        .filter(|c| c.3 == 0)
        .map(|c| c.0)
        .collect();
    assert_eq!(
        events,
        vec!["Last Seen", "Type", "Reason", "Object", "Message"]
    );
}

/// The schemas work with the machinery's validator: sample objects of every kind pass, with
/// no unknown fields, and a bad enum in a Cluster is caught there too.
#[test]
fn sample_objects_pass_the_machinery_schema_checks() {
    use slipway_apimachinery::schema::{unknown_fields, validate};
    let cluster: Value =
        serde_saphyr::from_str(include_str!("fixtures/cluster-example.yaml")).expect("example");
    let samples = [
        ("Cluster", cluster.clone()),
        (
            "Namespace",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}, "status": {"phase": "Active"}}),
        ),
        (
            "Secret",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "a"}, "type": "Opaque", "data": {"k": "dg=="}}),
        ),
        (
            "ConfigMap",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "a"}, "data": {"k": "v"}}),
        ),
        (
            "Event",
            json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "a"}, "involvedObject": {"kind": "Cluster", "name": "c"}, "reason": "Created", "type": "Normal", "lastTimestamp": "2026-11-21T11:00:00Z", "count": 1}),
        ),
        (
            "Lease",
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l", "namespace": "a"}, "spec": {"holderIdentity": "x", "leaseDurationSeconds": 15, "renewTime": "2026-11-21T11:00:00.000000Z"}}),
        ),
    ];
    for (kind, obj) in samples {
        let def = resources()
            .into_iter()
            .find(|d| d.kind == kind)
            .expect("served");
        assert_eq!(validate(&def.schema, &obj), vec![], "{kind}");
        assert_eq!(unknown_fields(&def.schema, &obj), vec![], "{kind}");
    }
    let schema = cluster_resource().schema;
    let mut bad = cluster;
    bad["spec"]["nodePools"][0]["capacityType"] = json!("reserved");
    bad["spec"]["colour"] = json!("red");
    let errs = validate(&schema, &bad);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].field.as_str(), "spec.nodePools[0].capacityType");
    let unknown: Vec<String> = unknown_fields(&schema, &bad)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(unknown, vec!["spec.colour"]);
}
