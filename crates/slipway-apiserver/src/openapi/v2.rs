//! OpenAPI v2 (Swagger 2.0): one document for everything, at `/openapi/v2`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use slipway_apimachinery::ResourceDef;

use super::doc::{self, PathGroup};
use super::meta::Refs;
use super::names;
use super::routes::{self, Param, Route};
use super::schema;

/// The Swagger 2.0 document of every served group-version plus discovery and `/version`.
/// As upstream serves it, its definitions carry no `default`s.
pub fn v2_document(defs: &[ResourceDef]) -> Value {
    let refs = Refs::V2;
    let served = doc::group_versions(defs);
    let mut routes = vec![
        routes::version_route(),
        routes::core_versions_route(),
        routes::groups_route(),
    ];
    for group in doc::groups(defs) {
        routes.push(routes::group_route(&group));
    }
    for (group, version) in &served {
        routes.push(routes::resources_route(group, version));
    }
    for def in defs {
        routes.extend(routes::resource_routes(def));
    }
    let paths: Map<String, Value> = doc::by_path(&routes)
        .into_iter()
        .map(|(path, group)| (path, path_item(&group)))
        .collect();
    let paths = Value::Object(paths);
    let all: Vec<&ResourceDef> = defs.iter().collect();
    let mut definitions = doc::kind_schemas(&all, refs);
    doc::close_over_refs(&mut definitions, &[&paths], refs, &served);
    definitions.values_mut().for_each(schema::prune_defaults);
    doc::sorted(json!({
        "swagger": "2.0",
        "info": {"title": doc::TITLE, "version": doc::VERSION},
        "paths": paths,
        "definitions": definitions.into_iter().collect::<Map<_, _>>(),
        "securityDefinitions": {
            "BearerToken": {
                "type": "apiKey",
                "description": "Bearer Token authentication",
                "name": "authorization",
                "in": "header"
            }
        },
        "security": [{"BearerToken": []}],
    }))
}

fn parameter(p: &Param) -> Value {
    let mut out = json!({
        "name": p.name,
        "in": p.location.key(),
        "description": p.description,
        "type": p.ty,
        "uniqueItems": true,
    });
    if p.required {
        out["required"] = true.into();
    }
    out
}

fn path_item(group: &PathGroup<'_>) -> Value {
    let mut item = Map::new();
    if !group.common.is_empty() {
        item.insert(
            "parameters".into(),
            group.common.iter().map(parameter).collect(),
        );
    }
    for (route, params) in &group.operations {
        item.insert(route.method.key().into(), operation(route, params));
    }
    Value::Object(item)
}

fn operation(route: &Route, params: &[Param]) -> Value {
    let refs = Refs::V2;
    let mut responses: BTreeMap<String, Value> = route
        .responses
        .iter()
        .map(|r| {
            (
                r.code.to_string(),
                json!({"description": r.description, "schema": refs.to(&r.schema)}),
            )
        })
        .collect();
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    let mut parameters: Vec<Value> = Vec::new();
    let mut op = json!({
        "description": route.description,
        "operationId": route.operation_id,
        "produces": route.produces,
        "responses": responses.into_iter().collect::<Map<_, _>>(),
        "schemes": ["https"],
        "tags": [route.tag],
    });
    if let Some(body) = &route.body {
        let mut param = json!({"in": "body", "name": "body", "schema": refs.to(&body.schema)});
        if body.required {
            param["required"] = true.into();
        }
        parameters.push(param);
        op["consumes"] = body.content_types.into();
    }
    parameters.extend(params.iter().map(parameter));
    if !parameters.is_empty() {
        op["parameters"] = parameters.into();
    }
    if let Some((action, gvk)) = &route.action {
        op["x-kubernetes-action"] = (*action).into();
        op["x-kubernetes-group-version-kind"] = names::gvk(&gvk.group, &gvk.version, &gvk.kind);
    }
    op
}
