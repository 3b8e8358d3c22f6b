//! OpenAPI v3: the index at `/openapi/v3` and one document per path it lists.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use slipway_apimachinery::ResourceDef;

use super::doc::{self, PathGroup};
use super::meta::Refs;
use super::routes::{self, Param, Route};
use super::{content_hash, names, to_bytes};

/// The index keys (`/openapi/v3/<key>`) served for `defs`: `api`, `api/v1`, `apis`,
/// `apis/<group>`, `apis/<group>/<version>` and `version`, sorted.
pub fn v3_paths(defs: &[ResourceDef]) -> Vec<String> {
    let mut paths = vec!["api".to_string(), "apis".to_string(), "version".to_string()];
    for (group, version) in doc::group_versions(defs) {
        paths.push(gv_path(&group, &version));
    }
    for group in doc::groups(defs) {
        paths.push(format!("apis/{group}"));
    }
    paths.sort();
    paths
}

/// `api/v1` for the core group, `apis/<group>/<version>` otherwise.
pub fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The document `/openapi/v3` lists: `{"paths": {"<key>": {"serverRelativeURL":
/// "/openapi/v3/<key>?hash=<HASH>"}}}`, where HASH is the [`content_hash`] of the document as
/// served, so that clients can cache each document by its URL.
pub fn v3_index(defs: &[ResourceDef]) -> Value {
    let docs: Vec<(String, String)> = v3_paths(defs)
        .into_iter()
        .filter_map(|path| {
            let doc = v3_document_for_path(defs, &path)?;
            Some((path, content_hash(&to_bytes(&doc))))
        })
        .collect();
    index(&docs)
}

/// The index from (key, hash) pairs.
pub(crate) fn index(docs: &[(String, String)]) -> Value {
    let paths: Map<String, Value> = docs
        .iter()
        .map(|(path, hash)| {
            (
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
            )
        })
        .collect();
    doc::sorted(json!({"paths": paths}))
}

/// The document of one group-version (`/openapi/v3/apis/<group>/<version>`, or
/// `/openapi/v3/api/v1` for the core group); `None` if nothing is served there.
pub fn v3_document(defs: &[ResourceDef], group: &str, version: &str) -> Option<Value> {
    v3_document_for_path(defs, &gv_path(group, version))
}

/// The document behind any key of the index; `None` for keys it does not list.
pub fn v3_document_for_path(defs: &[ResourceDef], path: &str) -> Option<Value> {
    let served = doc::group_versions(defs);
    let parts: Vec<&str> = path.split('/').collect();
    let (routes, kinds): (Vec<Route>, Vec<&ResourceDef>) = match parts.as_slice() {
        ["version"] => (vec![routes::version_route()], Vec::new()),
        ["api"] => (vec![routes::core_versions_route()], Vec::new()),
        ["apis"] => (vec![routes::groups_route()], Vec::new()),
        ["apis", group] if !group.is_empty() && doc::groups(defs).iter().any(|g| g == group) => {
            (vec![routes::group_route(group)], Vec::new())
        }
        ["api", version] => gv_routes(defs, "", version)?,
        ["apis", group, version] if !group.is_empty() => gv_routes(defs, group, version)?,
        _ => return None,
    };
    Some(render(&routes, &kinds, &served))
}

fn gv_routes<'a>(
    defs: &'a [ResourceDef],
    group: &str,
    version: &str,
) -> Option<(Vec<Route>, Vec<&'a ResourceDef>)> {
    let kinds = doc::defs_in(defs, group, version);
    if kinds.is_empty() {
        return None;
    }
    let mut routes = vec![routes::resources_route(group, version)];
    for def in &kinds {
        routes.extend(routes::resource_routes(def));
    }
    Some((routes, kinds))
}

fn render(routes: &[Route], kinds: &[&ResourceDef], served: &[(String, String)]) -> Value {
    let refs = Refs::V3;
    let paths: Map<String, Value> = doc::by_path(routes)
        .into_iter()
        .map(|(path, group)| (path, path_item(&group)))
        .collect();
    let mut schemas = doc::kind_schemas(kinds, refs);
    let paths = Value::Object(paths);
    doc::close_over_refs(&mut schemas, &[&paths], refs, served);
    doc::sorted(json!({
        "openapi": "3.0.0",
        "info": {"title": doc::TITLE, "version": doc::VERSION},
        "paths": paths,
        "components": {
            "schemas": schemas.into_iter().collect::<Map<_, _>>(),
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "description": "Bearer Token authentication",
                    "name": "authorization",
                    "in": "header"
                }
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
        "schema": {"type": p.ty, "uniqueItems": true},
    });
    if p.required {
        out["required"] = true.into();
    }
    out
}

fn content(types: &[&str], schema: &str) -> Value {
    let refs = Refs::V3;
    Value::Object(
        types
            .iter()
            .map(|t| (t.to_string(), json!({"schema": refs.to(schema)})))
            .collect(),
    )
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
    let mut responses: BTreeMap<String, Value> = route
        .responses
        .iter()
        .map(|r| {
            (r.code.to_string(), json!({"description": r.description, "content": content(route.produces, &r.schema)}))
        })
        .collect();
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    let mut op = json!({
        "description": route.description,
        "operationId": route.operation_id,
        "responses": responses.into_iter().collect::<Map<_, _>>(),
        "tags": [route.tag],
    });
    if !params.is_empty() {
        op["parameters"] = params.iter().map(parameter).collect();
    }
    if let Some(body) = &route.body {
        let mut request = json!({"content": content(body.content_types, &body.schema)});
        if body.required {
            request["required"] = true.into();
        }
        op["requestBody"] = request;
    }
    if let Some((action, gvk)) = &route.action {
        op["x-kubernetes-action"] = (*action).into();
        op["x-kubernetes-group-version-kind"] = names::gvk(&gvk.group, &gvk.version, &gvk.kind);
    }
    op
}
