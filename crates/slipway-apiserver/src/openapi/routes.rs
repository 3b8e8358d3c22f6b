//! The operations the server serves, described once and rendered into both OpenAPI versions
//! (upstream likewise builds one route list and hands it to its v2 and v3 builders).

use slipway_apimachinery::ResourceDef;

use super::names;

/// The PATCH request body types the server accepts, in upstream's order for custom resources.
/// kubectl computes a strategic merge patch only when the operation lists
/// `application/strategic-merge-patch+json`, which the server refuses (415); it is therefore
/// never listed. `application/apply-patch+cbor` is listed upstream only behind the alpha
/// CBOR feature gate, so it is not listed either.
pub const PATCH_CONTENT_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
];

/// Request body types of POST and PUT (and of the optional DeleteOptions body).
pub(crate) const BODY_CONTENT_TYPES: &[&str] = &["application/json", "application/yaml"];

/// Response types of single objects and Status.
pub(crate) const PRODUCES: &[&str] = &["application/json", "application/yaml"];

/// Response types of list (which also serves watches through `?watch=true`).
pub(crate) const PRODUCES_LIST: &[&str] = &[
    "application/json",
    "application/json;stream=watch",
    "application/yaml",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Method {
    Get,
    Put,
    Post,
    Delete,
    Patch,
}

impl Method {
    /// The key of the operation in a path item.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Put => "put",
            Method::Post => "post",
            Method::Delete => "delete",
            Method::Patch => "patch",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum In {
    Path,
    Query,
}

impl In {
    pub(crate) fn key(self) -> &'static str {
        match self {
            In::Path => "path",
            In::Query => "query",
        }
    }
}

/// A path or query parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Param {
    pub name: &'static str,
    pub location: In,
    /// `string`, `integer` or `boolean`.
    pub ty: &'static str,
    pub description: String,
    pub required: bool,
}

fn query(name: &'static str, ty: &'static str, description: &str) -> Param {
    Param {
        name,
        location: In::Query,
        ty,
        description: description.to_string(),
        required: false,
    }
}

fn path(name: &'static str, description: String) -> Param {
    Param {
        name,
        location: In::Path,
        ty: "string",
        description,
        required: true,
    }
}

/// A request body: the definition it references and the content types accepted.
#[derive(Debug, Clone)]
pub(crate) struct Body {
    pub schema: String,
    pub content_types: &'static [&'static str],
    pub required: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub code: u16,
    pub description: &'static str,
    pub schema: String,
}

/// The group, version and kind an operation acts on (`x-kubernetes-group-version-kind`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub path: String,
    pub method: Method,
    pub operation_id: String,
    pub description: String,
    pub tag: String,
    /// `x-kubernetes-action` and `x-kubernetes-group-version-kind`: set on resource
    /// operations, absent on discovery ones (as upstream).
    pub action: Option<(&'static str, Gvk)>,
    pub params: Vec<Param>,
    pub body: Option<Body>,
    pub responses: Vec<Response>,
    pub produces: &'static [&'static str],
}

const PRETTY: &str = "If 'true', then the output is pretty printed.";

fn pretty() -> Param {
    query("pretty", "string", PRETTY)
}

pub(crate) const FIELD_VALIDATION_DESCRIPTION: &str = "fieldValidation instructs the server how to \
    handle fields in the request object (in POST, PUT and PATCH bodies) that are unknown to the \
    schema or duplicated. Valid values are: - Ignore: ignores unknown and duplicate fields, \
    dropping them. - Warn: drops them too, but answers with a warning for each (a `Warning` \
    header), and serves the request. - Strict: fails the request with a 4xx naming every unknown \
    or duplicate field.";

const DRY_RUN: &str = "When present, indicates that modifications should not be persisted: the \
    request is validated, defaulted and admitted as usual and the response shows the result, but \
    nothing is stored. An invalid or unrecognized dryRun directive results in an error response \
    and no further processing. Valid values are: - All: all dry run stages will be processed";

const FIELD_MANAGER: &str = "fieldManager is the name of the actor or entity making these \
    changes, recorded in managedFields. It must be at most 128 characters of printable text.";

const FIELD_MANAGER_PATCH: &str = "fieldManager is the name of the actor or entity making these \
    changes, recorded in managedFields. It must be at most 128 characters of printable text. It is \
    required for apply requests (application/apply-patch+yaml) and optional for the other patch \
    types.";

const FORCE: &str = "Force makes an apply request take ownership of fields other managers own, \
    instead of failing with 409 Conflict. It must be unset for patch types other than apply.";

fn write_params(patch: bool) -> Vec<Param> {
    let mut params = vec![
        query("dryRun", "string", DRY_RUN),
        query(
            "fieldManager",
            "string",
            if patch {
                FIELD_MANAGER_PATCH
            } else {
                FIELD_MANAGER
            },
        ),
        query("fieldValidation", "string", FIELD_VALIDATION_DESCRIPTION),
    ];
    if patch {
        params.push(query("force", "boolean", FORCE));
    }
    params
}

fn selector_params() -> Vec<Param> {
    vec![
        query(
            "labelSelector",
            "string",
            "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
        ),
        query(
            "fieldSelector",
            "string",
            "A selector to restrict the list of returned objects by their fields (metadata.name, metadata.namespace). Defaults to everything.",
        ),
    ]
}

fn list_window_params() -> Vec<Param> {
    vec![
        query(
            "resourceVersion",
            "string",
            "resourceVersion sets a constraint on what resource versions a request may be served from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details. Defaults to unset.",
        ),
        query(
            "resourceVersionMatch",
            "string",
            "resourceVersionMatch determines how resourceVersion is applied to list calls (Exact or NotOlderThan). See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details. Defaults to unset.",
        ),
        query(
            "timeoutSeconds",
            "integer",
            "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity.",
        ),
        query(
            "limit",
            "integer",
            "limit is the maximum number of objects to return in one response. When more exist, the list's metadata.continue is set to a token that fetches the next page; the pages together are a consistent snapshot. Not supported with watch.",
        ),
        query(
            "continue",
            "string",
            "continue is the token a previous paged list returned in metadata.continue, to fetch the next page with otherwise identical parameters. An expired token is answered with 410 Gone. Not supported with watch.",
        ),
    ]
}

fn list_params(watch: bool) -> Vec<Param> {
    let mut params = selector_params();
    if watch {
        params.push(query("watch", "boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion."));
        params.push(query("allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\", which carry only the resourceVersion the watch has reached. Servers send them at their discretion. Ignored unless this is a watch."));
    }
    params.extend(list_window_params());
    if watch {
        params.push(query("sendInitialEvents", "boolean", "sendInitialEvents=true makes a watch start with synthetic ADDED events for every existing object, followed by a BOOKMARK annotated with \"k8s.io/initial-events-end\": \"true\". Requires watch=true, allowWatchBookmarks=true and resourceVersionMatch=NotOlderThan."));
    }
    params
}

fn delete_params() -> Vec<Param> {
    vec![
        query(
            "gracePeriodSeconds",
            "integer",
            "The duration in seconds before the object should be deleted. The value zero indicates delete immediately.",
        ),
        query(
            "orphanDependents",
            "boolean",
            "Deprecated: please use propagationPolicy. Whether the dependent objects should be orphaned.",
        ),
        query(
            "propagationPolicy",
            "string",
            "Whether and how garbage collection is performed: 'Orphan' - orphan the dependents; 'Background' - let the garbage collector delete the dependents in the background; 'Foreground' - delete the dependents first.",
        ),
        query("dryRun", "string", DRY_RUN),
    ]
}

fn ok(schema: &str) -> Response {
    Response {
        code: 200,
        description: "OK",
        schema: schema.to_string(),
    }
}

fn created(schema: &str) -> Response {
    Response {
        code: 201,
        description: "Created",
        schema: schema.to_string(),
    }
}

fn accepted(schema: &str) -> Response {
    Response {
        code: 202,
        description: "Accepted",
        schema: schema.to_string(),
    }
}

/// The operations of one kind: list (and watch, with `?watch=true`), create and
/// deletecollection on the collection; get, replace, patch and delete on an item; get,
/// replace and patch on `/status` when the kind has that subresource; and for a namespaced
/// kind, list across all namespaces.
pub(crate) fn resource_routes(def: &ResourceDef) -> Vec<Route> {
    let verbs = def.verbs();
    let has = |verb: &str| verbs.contains(&verb);
    let root = if def.group.is_empty() {
        format!("/api/{}", def.version)
    } else {
        format!("/apis/{}/{}", def.group, def.version)
    };
    let gv = names::group_version_word(&def.group, &def.version);
    let tag = names::tag(&def.group, &def.version);
    let kind_def = names::definition_name(&def.group, &def.version, &def.kind);
    let list_def = names::definition_name(&def.group, &def.version, &def.list_kind);
    let status_def = names::meta("Status");
    let gvk = Gvk {
        group: def.group.clone(),
        version: def.version.clone(),
        kind: def.kind.clone(),
    };
    let kind = &def.kind;
    let scoped = if def.namespaced { "Namespaced" } else { "" };
    let namespace_param = || {
        path(
            "namespace",
            "object name and auth scope, such as for teams and projects".to_string(),
        )
    };
    let name_param = || path("name", format!("name of the {kind}"));

    let route = |path: &str, method, action, id: String, description: String| Route {
        path: path.to_string(),
        method,
        operation_id: id,
        description,
        tag: tag.clone(),
        action: Some((action, gvk.clone())),
        params: Vec::new(),
        body: None,
        responses: Vec::new(),
        produces: PRODUCES,
    };

    let mut routes = Vec::new();
    let collection = if def.namespaced {
        format!("{root}/namespaces/{{namespace}}/{}", def.plural)
    } else {
        format!("{root}/{}", def.plural)
    };
    let item = format!("{collection}/{{name}}");
    let scope_params = |with_name: bool| {
        let mut params = Vec::new();
        if with_name {
            params.push(name_param());
        }
        if def.namespaced {
            params.push(namespace_param());
        }
        params.push(pretty());
        params
    };

    if has("list") {
        let list_route = |path: &str, id: String, scope: Vec<Param>| {
            let mut r = route(
                path,
                Method::Get,
                "list",
                id,
                format!("list or watch objects of kind {kind}"),
            );
            r.params = scope;
            r.params.extend(list_params(has("watch")));
            r.responses = vec![ok(&list_def)];
            r.produces = PRODUCES_LIST;
            r
        };
        if def.namespaced {
            routes.push(list_route(
                &format!("{root}/{}", def.plural),
                format!("list{gv}{kind}ForAllNamespaces"),
                vec![pretty()],
            ));
        }
        routes.push(list_route(
            &collection,
            format!("list{gv}{scoped}{kind}"),
            scope_params(false),
        ));
    }
    if has("create") {
        let mut r = route(
            &collection,
            Method::Post,
            "post",
            format!("create{gv}{scoped}{kind}"),
            format!("create {}", names::with_article(kind)),
        );
        r.params = scope_params(false);
        r.params.extend(write_params(false));
        r.body = Some(Body {
            schema: kind_def.clone(),
            content_types: BODY_CONTENT_TYPES,
            required: true,
        });
        r.responses = vec![ok(&kind_def), created(&kind_def), accepted(&kind_def)];
        routes.push(r);
    }
    if has("deletecollection") {
        let mut r = route(
            &collection,
            Method::Delete,
            "deletecollection",
            format!("delete{gv}Collection{scoped}{kind}"),
            format!("delete collection of {kind}"),
        );
        r.params = scope_params(false);
        r.params.extend(delete_params());
        r.params.extend(selector_params());
        r.params.extend(list_window_params());
        r.body = Some(Body {
            schema: names::meta("DeleteOptions"),
            content_types: BODY_CONTENT_TYPES,
            required: false,
        });
        r.responses = vec![ok(&status_def)];
        routes.push(r);
    }
    let item_routes = |base: &str, subresource: &str| {
        let mut out = Vec::new();
        let sub_title = match subresource {
            "" => String::new(),
            s => names::group_word_title(s),
        };
        let sub_of = match subresource {
            "" => String::new(),
            s => format!("{s} of "),
        };
        if has("get") {
            let mut r = route(
                base,
                Method::Get,
                "get",
                format!("read{gv}{scoped}{kind}{sub_title}"),
                format!("read {sub_of}the specified {kind}"),
            );
            r.params = scope_params(true);
            r.responses = vec![ok(&kind_def)];
            out.push(r);
        }
        if has("update") {
            let mut r = route(
                base,
                Method::Put,
                "put",
                format!("replace{gv}{scoped}{kind}{sub_title}"),
                format!("replace {sub_of}the specified {kind}"),
            );
            r.params = scope_params(true);
            r.params.extend(write_params(false));
            r.body = Some(Body {
                schema: kind_def.clone(),
                content_types: BODY_CONTENT_TYPES,
                required: true,
            });
            r.responses = vec![ok(&kind_def), created(&kind_def)];
            out.push(r);
        }
        if has("patch") {
            let mut r = route(
                base,
                Method::Patch,
                "patch",
                format!("patch{gv}{scoped}{kind}{sub_title}"),
                format!("partially update {sub_of}the specified {kind}"),
            );
            r.params = scope_params(true);
            r.params.extend(write_params(true));
            r.body = Some(Body {
                schema: names::meta("Patch"),
                content_types: PATCH_CONTENT_TYPES,
                required: true,
            });
            r.responses = vec![ok(&kind_def), created(&kind_def)];
            out.push(r);
        }
        out
    };
    routes.extend(item_routes(&item, ""));
    if has("delete") {
        let mut r = route(
            &item,
            Method::Delete,
            "delete",
            format!("delete{gv}{scoped}{kind}"),
            format!("delete {}", names::with_article(kind)),
        );
        r.params = scope_params(true);
        r.params.extend(delete_params());
        r.body = Some(Body {
            schema: names::meta("DeleteOptions"),
            content_types: BODY_CONTENT_TYPES,
            required: false,
        });
        r.responses = vec![ok(&status_def), accepted(&status_def)];
        routes.push(r);
    }
    if def.status_subresource {
        routes.extend(item_routes(&format!("{item}/status"), "status"));
    }
    routes
}

fn discovery(path: String, id: String, description: &str, tag: String, schema: String) -> Route {
    Route {
        path,
        method: Method::Get,
        operation_id: id,
        description: description.to_string(),
        tag,
        action: None,
        params: Vec::new(),
        body: None,
        responses: vec![ok(&schema)],
        produces: PRODUCES,
    }
}

/// `GET /apis/<group>/<version>/` (or `/api/v1/`): the group-version's resource list.
pub(crate) fn resources_route(group: &str, version: &str) -> Route {
    let path = if group.is_empty() {
        format!("/api/{version}/")
    } else {
        format!("/apis/{group}/{version}/")
    };
    discovery(
        path,
        format!(
            "get{}APIResources",
            names::group_version_word(group, version)
        ),
        "get available resources",
        names::tag(group, version),
        names::meta("APIResourceList"),
    )
}

/// `GET /apis/<group>/`: the group and its versions.
pub(crate) fn group_route(group: &str) -> Route {
    discovery(
        format!("/apis/{group}/"),
        format!("get{}APIGroup", names::group_word_title(group)),
        "get information of a group",
        names::group_tag(group),
        names::meta("APIGroup"),
    )
}

/// `GET /api/`: the core group's versions.
pub(crate) fn core_versions_route() -> Route {
    discovery(
        "/api/".into(),
        "getCoreAPIVersions".into(),
        "get available API versions",
        "core".into(),
        names::meta("APIVersions"),
    )
}

/// `GET /apis/`: the groups.
pub(crate) fn groups_route() -> Route {
    discovery(
        "/apis/".into(),
        "getAPIVersions".into(),
        "get available API versions",
        "apis".into(),
        names::meta("APIGroupList"),
    )
}

/// `GET /version/`: the server's version.
pub(crate) fn version_route() -> Route {
    discovery(
        "/version/".into(),
        "getCode".into(),
        "get the version information for this server",
        "version".into(),
        "io.k8s.apimachinery.pkg.version.Info".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::testdefs;

    fn find<'a>(routes: &'a [Route], path: &str, method: Method) -> &'a Route {
        routes
            .iter()
            .find(|r| r.path == path && r.method == method)
            .unwrap_or_else(|| panic!("no {method:?} {path}"))
    }

    #[test]
    fn namespaced_kind_with_status_has_every_operation() {
        let routes = resource_routes(&testdefs::cluster());
        let base = "/apis/slipway.dev/v1alpha1";
        let coll = format!("{base}/namespaces/{{namespace}}/clusters");
        let item = format!("{coll}/{{name}}");
        let status = format!("{item}/status");
        let expected = [
            (
                format!("{base}/clusters"),
                Method::Get,
                "list",
                "listSlipwayDevV1alpha1ClusterForAllNamespaces",
            ),
            (
                coll.clone(),
                Method::Get,
                "list",
                "listSlipwayDevV1alpha1NamespacedCluster",
            ),
            (
                coll.clone(),
                Method::Post,
                "post",
                "createSlipwayDevV1alpha1NamespacedCluster",
            ),
            (
                coll.clone(),
                Method::Delete,
                "deletecollection",
                "deleteSlipwayDevV1alpha1CollectionNamespacedCluster",
            ),
            (
                item.clone(),
                Method::Get,
                "get",
                "readSlipwayDevV1alpha1NamespacedCluster",
            ),
            (
                item.clone(),
                Method::Put,
                "put",
                "replaceSlipwayDevV1alpha1NamespacedCluster",
            ),
            (
                item.clone(),
                Method::Patch,
                "patch",
                "patchSlipwayDevV1alpha1NamespacedCluster",
            ),
            (
                item.clone(),
                Method::Delete,
                "delete",
                "deleteSlipwayDevV1alpha1NamespacedCluster",
            ),
            (
                status.clone(),
                Method::Get,
                "get",
                "readSlipwayDevV1alpha1NamespacedClusterStatus",
            ),
            (
                status.clone(),
                Method::Put,
                "put",
                "replaceSlipwayDevV1alpha1NamespacedClusterStatus",
            ),
            (
                status.clone(),
                Method::Patch,
                "patch",
                "patchSlipwayDevV1alpha1NamespacedClusterStatus",
            ),
        ];
        assert_eq!(routes.len(), expected.len());
        for (path, method, action, id) in expected {
            let r = find(&routes, &path, method);
            assert_eq!(r.operation_id, id);
            let (a, gvk) = r
                .action
                .as_ref()
                .expect("resource operations carry an action");
            assert_eq!(*a, action);
            assert_eq!(gvk.kind, "Cluster");
        }
        assert_eq!(
            find(&routes, &status, Method::Patch).description,
            "partially update status of the specified Cluster"
        );
    }

    #[test]
    fn list_serves_watch_through_its_parameters() {
        let routes = resource_routes(&testdefs::namespace());
        let list = find(&routes, "/api/v1/namespaces", Method::Get);
        let names: Vec<_> = list.params.iter().map(|p| p.name).collect();
        for p in [
            "pretty",
            "labelSelector",
            "fieldSelector",
            "watch",
            "allowWatchBookmarks",
            "sendInitialEvents",
            "resourceVersion",
            "resourceVersionMatch",
            "timeoutSeconds",
            "limit",
            "continue",
        ] {
            assert!(names.contains(&p), "list lacks {p}");
        }
        assert!(!routes.iter().any(|r| r.path.contains("/watch/")));
        assert!(list.produces.contains(&"application/json;stream=watch"));
    }

    #[test]
    fn writes_take_field_validation_and_patch_takes_force() {
        let routes = resource_routes(&testdefs::lease());
        for r in &routes {
            let names: Vec<_> = r.params.iter().map(|p| p.name).collect();
            let writes = matches!(r.method, Method::Post | Method::Put | Method::Patch);
            assert_eq!(
                names.contains(&"fieldValidation"),
                writes,
                "{:?} {}",
                r.method,
                r.path
            );
            assert_eq!(
                names.contains(&"fieldManager"),
                writes,
                "{:?} {}",
                r.method,
                r.path
            );
            assert_eq!(
                names.contains(&"force"),
                r.method == Method::Patch,
                "{:?} {}",
                r.method,
                r.path
            );
        }
        let patch = find(
            &routes,
            "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}",
            Method::Patch,
        );
        assert_eq!(
            patch.body.as_ref().map(|b| b.content_types),
            Some(PATCH_CONTENT_TYPES)
        );
    }
}
