//! Shape tests over whole documents: what kubectl, client-go and gnostic rely on.

use serde_json::{Value, json};

use super::testdefs::{self, NODE_POOLS_DESCRIPTION};
use super::*;

fn defs() -> Vec<ResourceDef> {
    testdefs::all()
}

fn v3(path: &str) -> Value {
    v3_document_for_path(&defs(), path).unwrap_or_else(|| panic!("no v3 document at {path}"))
}

fn all_v3() -> Vec<(String, Value)> {
    v3_paths(&defs())
        .into_iter()
        .map(|p| (p.clone(), v3(&p)))
        .collect()
}

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// (path, method, operation) of every operation of a document.
fn operations(doc: &Value) -> Vec<(String, &'static str, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                out.push((path.clone(), method, op));
            }
        }
    }
    out
}

fn schemas(doc: &Value) -> &serde_json::Map<String, Value> {
    doc.get("components")
        .and_then(|c| c.get("schemas"))
        .or_else(|| doc.get("definitions"))
        .and_then(Value::as_object)
        .expect("schemas")
}

fn collect_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref"
                    && let Some(r) = v.as_str()
                {
                    out.push(r);
                }
                collect_refs(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

fn assert_refs_resolve(name: &str, doc: &Value, prefix: &str) {
    let mut refs = Vec::new();
    collect_refs(doc, &mut refs);
    assert!(!refs.is_empty(), "{name}: no $ref at all");
    let schemas = schemas(doc);
    for r in refs {
        let target = r
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{name}: $ref {r} is not under {prefix}"));
        assert!(schemas.contains_key(target), "{name}: dangling $ref {r}");
    }
}

#[test]
fn every_ref_resolves_inside_its_document() {
    for (path, doc) in all_v3() {
        if path == "version" || path.starts_with("api") {
            assert_refs_resolve(&path, &doc, "#/components/schemas/");
        }
    }
    assert_refs_resolve("v2", &v2_document(&defs()), "#/definitions/");
}

#[test]
fn strategic_merge_patch_is_never_offered() {
    let api = OpenApi::new(&defs());
    let mut docs: Vec<(&str, &[u8])> = vec![
        ("v2", api.v2_json().bytes()),
        ("v2 protobuf", api.v2_protobuf().bytes()),
    ];
    for path in api.v3_paths() {
        docs.push((path, api.v3(path).expect("listed").bytes()));
    }
    for (name, bytes) in docs {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.contains("strategic-merge-patch"),
            "{name} mentions strategic merge patch"
        );
        assert!(
            !text.contains("apply-patch+cbor"),
            "{name} offers CBOR apply"
        );
    }
}

#[test]
fn patch_takes_exactly_json_patch_merge_patch_and_apply() {
    let expected = json!([
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml"
    ]);
    let mut seen = 0;
    for (_, doc) in all_v3() {
        for (path, method, op) in operations(&doc) {
            if method == "patch" {
                let types: Vec<&String> = op["requestBody"]["content"]
                    .as_object()
                    .expect("content")
                    .keys()
                    .collect();
                let mut want: Vec<&str> = expected
                    .as_array()
                    .expect("list")
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                want.sort_unstable();
                assert_eq!(types, want, "{path}");
                assert_eq!(op["requestBody"]["required"], true);
                seen += 1;
            }
        }
    }
    // Cluster, Cluster status, Namespace, Lease.
    assert_eq!(seen, 4);
    let v2 = v2_document(&defs());
    for (path, method, op) in operations(&v2) {
        if method == "patch" {
            assert_eq!(op["consumes"], expected, "{path}");
        }
    }
}

fn param_names(op: &Value) -> Vec<&str> {
    op["parameters"]
        .as_array()
        .map(|ps| ps.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default()
}

#[test]
fn writes_declare_field_validation_on_the_operation_itself() {
    // client-go's query parameter verifier reads only operation-level parameters.
    let mut docs = all_v3();
    docs.push(("v2".into(), v2_document(&defs())));
    for (name, doc) in docs {
        for (path, method, op) in operations(&doc) {
            let params = param_names(op);
            if matches!(method, "post" | "put" | "patch") {
                assert!(
                    params.contains(&"fieldValidation"),
                    "{name}: {method} {path} lacks fieldValidation"
                );
                assert!(
                    params.contains(&"dryRun") && params.contains(&"fieldManager"),
                    "{name}: {method} {path}"
                );
                let fv = op["parameters"]
                    .as_array()
                    .and_then(|ps| ps.iter().find(|p| p["name"] == "fieldValidation"));
                let description = fv
                    .and_then(|p| p["description"].as_str())
                    .unwrap_or_default();
                for value in ["Ignore", "Warn", "Strict"] {
                    assert!(
                        description.contains(value),
                        "fieldValidation description lacks {value}"
                    );
                }
            }
            assert_eq!(
                params.contains(&"force"),
                method == "patch",
                "{name}: {method} {path}"
            );
        }
        for (path, item) in doc["paths"].as_object().expect("paths") {
            let common: Vec<&str> = param_names(item);
            assert!(
                !common.contains(&"fieldValidation"),
                "{name}: {path} hoists fieldValidation"
            );
        }
    }
}

#[test]
fn resource_operations_carry_action_and_group_version_kind() {
    let doc = v3("apis/slipway.dev/v1alpha1");
    let gvk = json!({"group": "slipway.dev", "kind": "Cluster", "version": "v1alpha1"});
    let mut actions = Vec::new();
    for (path, method, op) in operations(&doc) {
        if path.ends_with("/v1alpha1/") {
            assert!(
                op.get("x-kubernetes-action").is_none(),
                "discovery is not an action"
            );
            continue;
        }
        assert_eq!(
            op["x-kubernetes-group-version-kind"], gvk,
            "{method} {path}"
        );
        actions.push((
            path,
            op["x-kubernetes-action"]
                .as_str()
                .expect("action")
                .to_string(),
        ));
    }
    let count = |a: &str| actions.iter().filter(|(_, x)| x == a).count();
    assert_eq!(count("list"), 2); // namespaced and across all namespaces
    assert_eq!(count("post"), 1);
    assert_eq!(count("deletecollection"), 1);
    assert_eq!(count("get"), 2); // object and status
    assert_eq!(count("put"), 2);
    assert_eq!(count("patch"), 2);
    assert_eq!(count("delete"), 1);
    assert!(
        actions.iter().any(|(p, _)| p
            == "/apis/slipway.dev/v1alpha1/namespaces/{namespace}/clusters/{name}/status")
    );

    let core = v3("api/v1");
    let (_, _, patch) = operations(&core)
        .into_iter()
        .find(|(p, m, _)| p == "/api/v1/namespaces/{name}" && *m == "patch")
        .expect("namespace patch");
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        json!({"group": "", "kind": "Namespace", "version": "v1"})
    );
    assert!(
        !operations(&core)
            .iter()
            .any(|(p, _, _)| p.ends_with("/status")),
        "Namespace has no status subresource here"
    );
}

#[test]
fn every_kind_and_list_kind_is_defined_with_its_gvk() {
    let v2 = v2_document(&defs());
    for def in defs() {
        let doc = v3_document(&defs(), &def.group, &def.version).expect("served group-version");
        for kind in [&def.kind, &def.list_kind] {
            let name = names::definition_name(&def.group, &def.version, kind);
            let gvk = json!([{"group": def.group, "kind": kind, "version": def.version}]);
            assert_eq!(
                schemas(&doc)[&name]["x-kubernetes-group-version-kind"],
                gvk,
                "v3 {name}"
            );
            assert_eq!(
                schemas(&v2)[&name]["x-kubernetes-group-version-kind"],
                gvk,
                "v2 {name}"
            );
        }
    }
    let doc = v3("apis/coordination.k8s.io/v1");
    for name in [
        "io.k8s.api.coordination.v1.Lease",
        "io.k8s.api.coordination.v1.LeaseList",
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
        "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList",
    ] {
        assert!(
            schemas(&doc).contains_key(name),
            "coordination.k8s.io/v1 lacks {name}"
        );
    }
    // A group-version document describes its own kinds only.
    assert!(!schemas(&doc).contains_key("dev.slipway.v1alpha1.Cluster"));
    // Only the definitions a document references are in it.
    let cluster_doc = v3("apis/slipway.dev/v1alpha1");
    assert!(!schemas(&cluster_doc).contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent"));
}

/// kubectl explain (plaintext template): the GVK of the first operation on the resource's
/// paths, the schema carrying that GVK, then properties / items / additionalProperties /
/// allOf / $ref along the field path.
fn explain(
    doc: &Value,
    group: &str,
    version: &str,
    resource: &str,
    field_path: &[&str],
) -> Option<Value> {
    let prefix = if group.is_empty() {
        "/api".to_string()
    } else {
        format!("/apis/{group}")
    };
    let candidates = [
        format!("{prefix}/{version}/{resource}"),
        format!("{prefix}/{version}/{resource}/{{name}}"),
        format!("{prefix}/{version}/namespaces/{{namespace}}/{resource}"),
        format!("{prefix}/{version}/namespaces/{{namespace}}/{resource}/{{name}}"),
    ];
    let gvk = candidates.iter().find_map(|p| {
        let item = doc["paths"].get(p)?;
        ["get", "post", "put", "patch", "delete"]
            .iter()
            .find_map(|m| {
                item.get(*m)?
                    .get("x-kubernetes-group-version-kind")
                    .cloned()
            })
    })?;
    let mut schema = schemas(doc).values().find(|s| {
        s["x-kubernetes-group-version-kind"]
            .as_array()
            .is_some_and(|list| list.contains(&gvk))
    })?;
    let resolve = |s: &'_ Value| -> Option<Value> {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => schemas(doc)
                .get(r.strip_prefix("#/components/schemas/")?)
                .cloned(),
            None => Some(s.clone()),
        }
    };
    let mut owned;
    for field in field_path {
        let mut resolved = resolve(schema)?;
        while resolved
            .get("properties")
            .and_then(|p| p.get(*field))
            .is_none()
        {
            resolved = match resolved.get("items").or_else(|| {
                resolved
                    .get("additionalProperties")
                    .filter(|a| a.is_object())
            }) {
                Some(inner) => resolve(inner)?,
                None => resolve(resolved.get("allOf")?.get(0)?)?,
            };
        }
        owned = resolved["properties"][*field].clone();
        schema = &owned;
    }
    Some(schema.clone())
}

#[test]
fn explain_finds_field_descriptions() {
    let doc = v3("apis/slipway.dev/v1alpha1");
    let pools = explain(
        &doc,
        "slipway.dev",
        "v1alpha1",
        "clusters",
        &["spec", "nodePools"],
    )
    .expect("cluster.spec.nodePools");
    assert_eq!(pools["description"], NODE_POOLS_DESCRIPTION);
    let machine = explain(
        &doc,
        "slipway.dev",
        "v1alpha1",
        "clusters",
        &["spec", "nodePools", "machineType"],
    )
    .expect("machineType");
    assert_eq!(machine["description"], "Machine type of the pool's nodes.");
    let labels = explain(
        &doc,
        "slipway.dev",
        "v1alpha1",
        "clusters",
        &["metadata", "labels"],
    )
    .expect("metadata.labels");
    assert!(
        labels["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("Labels"))
    );
    assert!(
        explain(
            &doc,
            "slipway.dev",
            "v1alpha1",
            "clusters",
            &["spec", "nope"]
        )
        .is_none()
    );
    let core = v3("api/v1");
    let phase = explain(&core, "", "v1", "namespaces", &["status", "phase"])
        .expect("namespace.status.phase");
    assert_eq!(phase["enum"], json!(["Active", "Terminating"]));
}

#[test]
fn index_lists_every_document_with_the_hash_of_what_is_served() {
    let defs = defs();
    let index = v3_index(&defs);
    let paths = index["paths"].as_object().expect("paths");
    let keys: Vec<&str> = paths.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "api",
            "api/v1",
            "apis",
            "apis/coordination.k8s.io",
            "apis/coordination.k8s.io/v1",
            "apis/slipway.dev",
            "apis/slipway.dev/v1alpha1",
            "version"
        ]
    );
    let api = OpenApi::new(&defs);
    for (key, entry) in paths {
        let doc = v3_document_for_path(&defs, key).expect("listed document");
        let bytes = to_bytes(&doc);
        let hash = content_hash(&bytes);
        assert_eq!(hash.len(), 128);
        assert!(
            hash.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );
        assert_eq!(
            entry["serverRelativeURL"],
            format!("/openapi/v3/{key}?hash={hash}")
        );
        let served = api.v3(key).expect("served");
        assert_eq!(served.bytes().as_ref(), bytes.as_slice());
        assert_eq!(served.hash(), hash);
        assert_eq!(served.etag(), format!("\"{hash}\""));
    }
    assert_eq!(api.v3_index().bytes().as_ref(), to_bytes(&index).as_slice());
    assert_eq!(api.v3_group_version("", "v1"), api.v3("api/v1"));
    assert_eq!(
        api.v3("/apis/slipway.dev/v1alpha1"),
        api.v3("apis/slipway.dev/v1alpha1")
    );
    assert!(api.v3("apis/slipway.dev/v1").is_none());
    assert!(v3_document(&defs, "apps", "v1").is_none());
    assert!(v3_document_for_path(&defs, "apis/apps").is_none());
    assert_eq!(
        api.v2_json().bytes().as_ref(),
        to_bytes(&v2_document(&defs)).as_slice()
    );
    assert_eq!(
        api.v2_protobuf().bytes().as_ref(),
        v2_protobuf(&v2_document(&defs)).as_slice()
    );
}

#[test]
fn documents_do_not_depend_on_the_order_of_defs() {
    let mut reversed = defs();
    reversed.reverse();
    let a = OpenApi::new(&defs());
    let b = OpenApi::new(&reversed);
    assert_eq!(a.v3_index(), b.v3_index());
    assert_eq!(a.v2_json(), b.v2_json());
    assert_eq!(a.v2_protobuf(), b.v2_protobuf());
    // ...but do change with them.
    let fewer = OpenApi::new(&defs()[..2]);
    assert_ne!(a.v2_json().hash(), fewer.v2_json().hash());
}

#[test]
fn discovery_documents_describe_their_endpoints() {
    let version = v3("version");
    assert_eq!(
        version["paths"]["/version/"]["get"]["operationId"],
        "getCode"
    );
    assert!(schemas(&version).contains_key("io.k8s.apimachinery.pkg.version.Info"));
    let apis = v3("apis");
    assert_eq!(
        apis["paths"]["/apis/"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.APIGroupList"
    );
    let group = v3("apis/slipway.dev");
    assert_eq!(
        group["paths"]["/apis/slipway.dev/"]["get"]["operationId"],
        "getSlipwayDevAPIGroup"
    );
    assert_eq!(v3("api")["openapi"], "3.0.0");
}

/// kube-openapi's `proto.NewOpenAPIData` (what kubectl builds from the v2 document) rejects
/// the whole document on any of these.
fn check_v2_schema(path: &str, s: &Value, names: &serde_json::Map<String, Value>) {
    if let Some(r) = s.get("$ref") {
        let target = r
            .as_str()
            .and_then(|r| r.strip_prefix("#/definitions/"))
            .expect("v2 ref");
        assert!(names.contains_key(target), "{path}: unknown model {target}");
        assert!(
            s.get("type").is_none() && s.get("properties").is_none(),
            "{path}: $ref with a type or properties"
        );
        return;
    }
    for key in s.as_object().expect("schema object").keys() {
        assert!(
            key.starts_with("x-")
                || !["nullable", "anyOf", "oneOf", "not", "default", "writeOnly"]
                    .contains(&key.as_str()),
            "{path}: {key} is not Swagger 2.0"
        );
    }
    let ty = s.get("type").map(|t| {
        t.as_str()
            .unwrap_or_else(|| panic!("{path}: several types"))
    });
    match ty {
        Some("array") => {
            let items = s
                .get("items")
                .unwrap_or_else(|| panic!("{path}: array without items"));
            assert!(items.is_object(), "{path}: items must be one schema");
            check_v2_schema(&format!("{path}[]"), items, names);
        }
        Some("object") | None => {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, v) in props {
                    check_v2_schema(&format!("{path}.{k}"), v, names);
                }
            }
            if let Some(additional) = s.get("additionalProperties").filter(|a| a.is_object()) {
                check_v2_schema(&format!("{path}{{}}"), additional, names);
            }
        }
        Some(t) => assert!(
            ["string", "number", "integer", "boolean"].contains(&t),
            "{path}: unknown primitive {t}"
        ),
    }
}

#[test]
fn v2_definitions_are_readable_by_kubectl() {
    let doc = v2_document(&defs());
    let defs = schemas(&doc);
    for (name, s) in defs {
        check_v2_schema(name, s, defs);
    }
    assert_eq!(doc["swagger"], "2.0");
}

fn decode(bytes: &[u8]) -> proto::Document {
    <proto::Document as prost::Message>::decode(bytes).expect("decodes")
}

fn ext<'a>(list: &'a [proto::NamedAny], name: &str) -> Option<&'a str> {
    list.iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_ref())
        .map(|a| a.yaml.as_str())
}

fn non_body(item: &proto::ParametersItem) -> Option<&proto::NonBodyParameterOneof> {
    match &item.oneof {
        Some(proto::ParametersItemOneof::Parameter(param)) => match &param.oneof {
            Some(proto::ParameterOneof::NonBodyParameter(nb)) => nb.oneof.as_ref(),
            _ => None,
        },
        _ => None,
    }
}

fn from_yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("valid YAML")
}

#[test]
fn v2_protobuf_decodes_to_the_same_paths_definitions_and_extensions() {
    let json_doc = v2_document(&defs());
    let doc = decode(&v2_protobuf(&json_doc));
    assert_eq!(doc.swagger, "2.0");
    assert_eq!(doc.info.as_ref().map(|i| i.title.as_str()), Some("Slipway"));

    let paths = doc.paths.as_ref().expect("paths");
    let names: Vec<&str> = paths.path.iter().map(|p| p.name.as_str()).collect();
    let json_names: Vec<&str> = json_doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, json_names);

    let item = paths
        .path
        .iter()
        .find(|p| p.name == "/apis/slipway.dev/v1alpha1/namespaces/{namespace}/clusters/{name}")
        .and_then(|p| p.value.as_ref())
        .expect("cluster item path");
    let patch = item.patch.as_ref().expect("patch");
    assert_eq!(patch.consumes, PATCH_CONTENT_TYPES);
    assert_eq!(
        patch.operation_id,
        "patchSlipwayDevV1alpha1NamespacedCluster"
    );
    assert_eq!(
        from_yaml(ext(&patch.vendor_extension, "x-kubernetes-action").expect("action")),
        json!("patch")
    );
    assert_eq!(
        from_yaml(ext(&patch.vendor_extension, "x-kubernetes-group-version-kind").expect("gvk")),
        json!({"group": "slipway.dev", "kind": "Cluster", "version": "v1alpha1"})
    );
    let query: Vec<&str> = patch
        .parameters
        .iter()
        .filter_map(|p| match non_body(p)? {
            proto::NonBodyParameterOneof::QueryParameterSubSchema(q) => Some(q.name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        query,
        ["dryRun", "fieldManager", "fieldValidation", "force"]
    );
    let body = patch.parameters.iter().find_map(|p| match &p.oneof {
        Some(proto::ParametersItemOneof::Parameter(param)) => match &param.oneof {
            Some(proto::ParameterOneof::BodyParameter(b)) => Some(b),
            _ => None,
        },
        _ => None,
    });
    let body = body.expect("body parameter");
    assert!(body.required);
    assert_eq!(
        body.schema.as_ref().map(|s| s.r#ref.as_str()),
        Some("#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch")
    );
    let path_params: Vec<&str> = item
        .parameters
        .iter()
        .filter_map(|p| match non_body(p)? {
            proto::NonBodyParameterOneof::PathParameterSubSchema(q) => Some(q.name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(path_params, ["name", "namespace"]);

    let definitions = &doc
        .definitions
        .as_ref()
        .expect("definitions")
        .additional_properties;
    let json_defs = json_doc["definitions"].as_object().expect("definitions");
    assert_eq!(definitions.len(), json_defs.len());
    for named in definitions {
        let json_schema = &json_defs[&named.name];
        let schema = named.value.as_ref().expect("schema");
        for e in &schema.vendor_extension {
            let yaml = e
                .value
                .as_ref()
                .map(|a| a.yaml.as_str())
                .unwrap_or_default();
            assert_eq!(
                from_yaml(yaml),
                json_schema[&e.name],
                "{} {}",
                named.name,
                e.name
            );
        }
        let json_props = json_schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.len())
            .unwrap_or_default();
        assert_eq!(
            schema
                .properties
                .as_ref()
                .map(|p| p.additional_properties.len())
                .unwrap_or_default(),
            json_props
        );
    }
    let cluster = definitions
        .iter()
        .find(|d| d.name == "dev.slipway.v1alpha1.Cluster")
        .and_then(|d| d.value.as_ref())
        .expect("Cluster");
    assert_eq!(
        from_yaml(ext(&cluster.vendor_extension, "x-kubernetes-group-version-kind").expect("gvk")),
        json!([{"group": "slipway.dev", "kind": "Cluster", "version": "v1alpha1"}])
    );
    let spec = cluster
        .properties
        .as_ref()
        .and_then(|p| p.additional_properties.iter().find(|n| n.name == "spec"))
        .and_then(|n| n.value.as_ref())
        .expect("spec");
    let pools = spec
        .properties
        .as_ref()
        .and_then(|p| {
            p.additional_properties
                .iter()
                .find(|n| n.name == "nodePools")
        })
        .and_then(|n| n.value.as_ref())
        .expect("nodePools");
    assert_eq!(pools.description, NODE_POOLS_DESCRIPTION);
    assert_eq!(
        pools.r#type.as_ref().map(|t| t.value.clone()),
        Some(vec!["array".to_string()])
    );
    assert_eq!(pools.items.as_ref().map(|i| i.schema.len()), Some(1));
    assert_eq!(
        from_yaml(ext(&pools.vendor_extension, "x-kubernetes-list-map-keys").expect("keys")),
        json!(["name"])
    );
    let security = doc
        .security_definitions
        .as_ref()
        .expect("security definitions");
    assert!(matches!(
        security.additional_properties[0].value.as_ref().and_then(|v| v.oneof.as_ref()),
        Some(proto::SecurityDefinitionsItemOneof::ApiKeySecurity(k)) if k.name == "authorization"
    ));
}

/// A small document encoded by protoc from gnostic's own `OpenAPIv2.proto`
/// (`protoc --encode=openapi.v2.Document OpenAPIv2.proto`), from this text format:
///
/// ```text
/// swagger: "2.0"
/// info { title: "t" version: "v" }
/// paths { path { name: "/a" value {
///   patch { operation_id: "p" consumes: "application/merge-patch+json"
///     parameters { parameter { non_body_parameter { query_parameter_sub_schema {
///       in: "query" name: "fieldValidation" type: "string" unique_items: true } } } }
///     parameters { parameter { body_parameter { name: "body" in: "body" required: true
///       schema { _ref: "#/definitions/P" } } } }
///     responses { response_code { name: "200" value { response { description: "OK"
///       schema { schema { _ref: "#/definitions/K" } } } } } }
///     vendor_extension { name: "x-kubernetes-action" value { yaml: "patch\n" } } }
///   parameters { parameter { non_body_parameter { path_parameter_sub_schema {
///     required: true in: "path" name: "name" type: "string" } } } } } } }
/// definitions { additional_properties { name: "K" value {
///   description: "d" required: "a"
///   additional_properties { boolean: false }
///   type { value: "object" }
///   properties { additional_properties { name: "a" value {
///     type { value: "array" } items { schema { type { value: "integer" } format: "int32" maximum: 5 } } } } }
///   vendor_extension { name: "x-kubernetes-group-version-kind" value { yaml: "- group: g\n" } } } } }
/// ```
const GOLDEN: &str = "0a03322e3012060a017412017642e50112e2010a022f6112db0142ba012a01703a1c6170706c69636174696f6e2f6d65\
    7267652d70617463682b6a736f6e42290a2712251a2312057175657279220f6669656c6456616c69646174696f6e3206\
    737472696e67a0010142250a230a211204626f64791a04626f647920012a110a0f232f646566696e6974696f6e732f50\
    4a240a220a03323030121b0a190a024f4b12130a110a0f232f646566696e6974696f6e732f4b6a1f0a13782d6b756265\
    726e657465732d616374696f6e1208120670617463680a4a1c0a1a12182216080112047061746822046e616d652a0673\
    7472696e674a87010a84010a014b127f2201649a010161aa01021000b201080a066f626a656374ca01320a300a016112\
    2bb201070a056172726179ba011e0a1c1205696e743332390000000000001440b201090a07696e7465676572fa01300a\
    1f782d6b756265726e657465732d67726f75702d76657273696f6e2d6b696e64120d120b2d2067726f75703a20670a";

#[test]
fn protobuf_matches_protoc_for_a_known_document() {
    let doc = json!({
        "swagger": "2.0",
        "info": {"title": "t", "version": "v"},
        "paths": {
            "/a": {
                "patch": {
                    "operationId": "p",
                    "consumes": ["application/merge-patch+json"],
                    "parameters": [
                        {"in": "query", "name": "fieldValidation", "type": "string", "uniqueItems": true},
                        {"in": "body", "name": "body", "required": true, "schema": {"$ref": "#/definitions/P"}}
                    ],
                    "responses": {"200": {"description": "OK", "schema": {"$ref": "#/definitions/K"}}},
                    "x-kubernetes-action": "patch"
                },
                "parameters": [{"in": "path", "name": "name", "required": true, "type": "string"}]
            }
        },
        "definitions": {
            "K": {
                "description": "d",
                "required": ["a"],
                "additionalProperties": false,
                "type": "object",
                "properties": {"a": {"type": "array", "items": {"type": "integer", "format": "int32", "maximum": 5}}},
                "x-kubernetes-group-version-kind": [{"group": "g"}]
            }
        }
    });
    let golden: String = GOLDEN.chars().filter(char::is_ascii_hexdigit).collect();
    assert_eq!(hex::encode(v2_protobuf(&doc)), golden);
}

#[test]
fn vendor_extension_yaml_reads_back_as_the_json_value() {
    for value in [
        json!([{"group": "", "kind": "Namespace", "version": "v1"}]),
        json!({"group": "slipway.dev", "kind": "Cluster", "version": "v1alpha1"}),
        json!("true"),
        json!("1.0"),
        json!(["uid"]),
        json!(true),
        json!("patch"),
    ] {
        assert_eq!(from_yaml(&gnostic::yaml(&value)), value, "{value}");
    }
}

#[test]
fn accept_negotiation_follows_upstream() {
    assert_eq!(negotiate_v2(None), Some(V2Format::Json));
    assert_eq!(negotiate_v2(Some("*/*")), Some(V2Format::Json));
    assert_eq!(negotiate_v2(Some("application/json")), Some(V2Format::Json));
    assert_eq!(
        negotiate_v2(Some(
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
        )),
        Some(V2Format::Protobuf)
    );
    assert_eq!(
        negotiate_v2(Some(
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf, application/json"
        )),
        Some(V2Format::Protobuf)
    );
    assert_eq!(
        negotiate_v2(Some(
            "application/json;q=0.5, application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
        )),
        Some(V2Format::Protobuf)
    );
    assert_eq!(negotiate_v2(Some("text/html")), None);
    assert_eq!(negotiate_v2(Some("application/json;q=0")), None);
    assert!(accepts_v3_json(None));
    assert!(accepts_v3_json(Some("application/json")));
    assert!(accepts_v3_json(Some("application/*")));
    assert!(!accepts_v3_json(Some(
        "application/com.github.proto-openapi.spec.v3.v1.0+protobuf"
    )));
    let api = OpenApi::new(&defs());
    let (ct, served) = api
        .v2_for(Some(CONTENT_TYPE_V2_PROTOBUF_DEPRECATED))
        .expect("protobuf");
    assert_eq!(ct, CONTENT_TYPE_V2_PROTOBUF);
    assert_eq!(served, api.v2_protobuf());
}

#[test]
fn the_served_kinds_produce_documents_clients_read() {
    let real = slipway_api::resources();
    for path in v3_paths(&real) {
        let doc = v3_document_for_path(&real, &path).expect("listed document");
        if path.starts_with("api") || path == "version" {
            assert_refs_resolve(&path, &doc, "#/components/schemas/");
        }
    }
    let v2 = v2_document(&real);
    assert_refs_resolve("v2", &v2, "#/definitions/");
    let definitions = schemas(&v2);
    for (name, s) in definitions {
        check_v2_schema(name, s, definitions);
    }
    let cluster = real
        .iter()
        .find(|d| d.kind == "Cluster")
        .expect("Cluster is served");
    let doc = v3_document(&real, &cluster.group, &cluster.version).expect("its document");
    let pools = explain(
        &doc,
        &cluster.group,
        &cluster.version,
        &cluster.plural,
        &["spec", "nodePools"],
    )
    .expect("cluster.spec.nodePools");
    assert_eq!(
        pools["description"],
        cluster.schema["properties"]["spec"]["properties"]["nodePools"]["description"]
    );
    assert!(pools["description"].as_str().is_some_and(|d| !d.is_empty()));
}

/// Writes every document for the real defs under `$SLIPWAY_OPENAPI_DUMP` (v2.json, v2.pb,
/// v3.json and v3/<path>.json), to cross-check them with `protoc --decode` against gnostic's
/// proto file or to serve them to a real kubectl.
#[test]
#[ignore = "writes files; run by hand with SLIPWAY_OPENAPI_DUMP=<dir>"]
fn dump_documents() {
    let Some(dir) = std::env::var_os("SLIPWAY_OPENAPI_DUMP").map(std::path::PathBuf::from) else {
        return;
    };
    let api = OpenApi::new(&slipway_api::resources());
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write");
    };
    write("v2.json", api.v2_json().bytes());
    write("v2.pb", api.v2_protobuf().bytes());
    write("v3.json", api.v3_index().bytes());
    for path in api.v3_paths() {
        write(
            &format!("v3/{path}.json"),
            api.v3(path).expect("listed").bytes(),
        );
    }
}
