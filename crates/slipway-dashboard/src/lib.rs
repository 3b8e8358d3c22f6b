//! The web dashboard, served under `/ui/` by the API server.
//!
//! - **Auth**: a browser signs in once by posting a bearer token to `/ui/login` and gets a
//!   session cookie (`HttpOnly; Secure; SameSite=Strict`; a random id kept server-side with
//!   an expiry); a request carrying `Authorization: Bearer <token>` is accepted as well.
//!   Tokens are checked by the function the server hands in (the API server's own token
//!   authenticator). Pages redirect to the login form without a session; data endpoints
//!   answer 401.
//! - **Pages**: HTML rendered here ([`render`]) from objects read straight from the
//!   [`Registry`] (no HTTP hop), summarised by the pure functions of [`fleet`].
//! - **Live**: `/ui/api/events` is a Server-Sent Events stream fed by registry watches on
//!   Clusters, Machines and Events; the page's script refetches its own sections
//!   (`?fragment=1`) when something it shows changed.
//! - **Offline**: the stylesheet and script are embedded in the binary; a strict
//!   Content-Security-Policy allows nothing else.

pub mod fleet;
pub mod render;
pub mod session;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use k8s_openapi::api::core::v1::Event;
use serde::de::DeserializeOwned;
use serde_json::json;
use slipway_api::cluster::Cluster;
use slipway_api::clusterclass::ClusterClass;
use slipway_api::machine::Machine;
use slipway_registry::{ListParams, Registry, WatchEventType, WatchParams};

use crate::render::Scope;
use crate::session::Sessions;

/// Checks a bearer token: true when it belongs to a user of the API.
pub type Authenticator = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// How long a browser session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// The largest login form accepted.
const MAX_FORM_BYTES: usize = 16 * 1024;

const STYLE: &str = include_str!("../assets/style.css");
const SCRIPT: &str = include_str!("../assets/app.js");

/// Everything allowed to load: this origin's stylesheet and script, nothing inline.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The dashboard over one registry.
pub struct Dashboard {
    registry: Arc<Registry>,
    authenticate: Authenticator,
    sessions: Sessions,
}

impl Dashboard {
    pub fn new(registry: Arc<Registry>, authenticate: Authenticator) -> Arc<Self> {
        Self::with_session_ttl(registry, authenticate, SESSION_TTL)
    }

    pub fn with_session_ttl(
        registry: Arc<Registry>,
        authenticate: Authenticator,
        ttl: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            registry,
            authenticate,
            sessions: Sessions::new(ttl),
        })
    }

    /// Routes under `/ui` (full paths, so it merges into the API server's router). They do
    /// their own authentication: mount them outside the API's bearer-token middleware.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/ui", get(|| async { redirect("/ui/") }))
            .route("/ui/", get(overview))
            .route("/ui/login", get(login_form).post(login))
            .route("/ui/logout", axum::routing::post(logout))
            .route("/ui/clusters/{namespace}/{name}", get(cluster))
            .route("/ui/api/events", get(events))
            .route(
                "/ui/assets/style.css",
                get(|| async { asset("text/css", STYLE) }),
            )
            .route(
                "/ui/assets/app.js",
                get(|| async { asset("text/javascript", SCRIPT) }),
            )
            .route("/ui/{*rest}", get(not_found))
            .layer(middleware::from_fn(security_headers))
            .with_state(Arc::clone(self))
    }

    /// Whether a request is signed in: a valid session cookie or bearer token.
    fn signed_in(&self, headers: &HeaderMap) -> bool {
        if let Some(token) = session::bearer(headers) {
            return (self.authenticate)(token);
        }
        session::cookie(headers, session::COOKIE).is_some_and(|id| self.sessions.valid(id))
    }

    /// Let a page request through: `Ok(fragment)` when signed in (whether it asks for its
    /// sections only); otherwise the login redirect for a page, 401 for the script's refetch.
    fn gate(&self, req: &Request) -> Result<bool, Response> {
        let fragment = wants_fragment(req.uri().query());
        if self.signed_in(req.headers()) {
            Ok(fragment)
        } else if fragment {
            Err(unauthorized())
        } else {
            Err(redirect("/ui/login"))
        }
    }

    async fn list<T: DeserializeOwned>(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        namespace: Option<&str>,
    ) -> Result<Vec<T>, String> {
        let def = self
            .registry
            .resource(group, version, plural)
            .ok_or_else(|| format!("this server does not serve {plural}"))?;
        let list = self
            .registry
            .list(&def, namespace, &ListParams::default())
            .await
            .map_err(|e| format!("listing {plural}: {}", e.message))?;
        Ok(list
            .items
            .iter()
            .filter_map(|v| match serde_json::from_value((**v).clone()) {
                Ok(o) => Some(o),
                Err(e) => {
                    tracing::warn!(plural, error = %e, "dashboard: skipping an object it cannot read");
                    None
                }
            })
            .collect())
    }
}

type Shared = State<Arc<Dashboard>>;

fn redirect(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, "Bearer"),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        "sign in at /ui/login or send Authorization: Bearer <token>\n",
    )
        .into_response()
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Headers on every dashboard response: the CSP, no sniffing, no framing, no referrer, and
/// no caching of pages that show the fleet.
async fn security_headers(req: Request, next: Next) -> Response {
    let is_asset = req.uri().path().starts_with("/ui/assets/");
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !is_asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A page, or only its sections when the live script asks for them.
fn answer(fragment: bool, title: &str, scope: Scope<'_>, body: String) -> Response {
    if fragment {
        html(StatusCode::OK, body)
    } else {
        html(StatusCode::OK, render::page(title, scope, true, &body))
    }
}

fn unavailable(title: &str, error: &str) -> Response {
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        render::message(title, error),
    )
}

/// Whether the page asks for its sections only (the live script's refetch).
fn wants_fragment(req_query: Option<&str>) -> bool {
    req_query.is_some_and(|q| {
        form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "fragment" && v == "1")
    })
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

async fn overview(State(d): Shared, req: Request) -> Response {
    let fragment = match d.gate(&req) {
        Ok(fragment) => fragment,
        Err(refused) => return refused,
    };
    let loaded = async {
        let clusters: Vec<Cluster> = d.list("slipway.dev", "v1alpha1", "clusters", None).await?;
        let machines: Vec<Machine> = d.list("slipway.dev", "v1alpha1", "machines", None).await?;
        let classes: Vec<ClusterClass> = d
            .list("slipway.dev", "v1alpha1", "clusterclasses", None)
            .await?;
        Ok::<_, String>((clusters, machines, classes))
    }
    .await;
    let (clusters, machines, classes) = match loaded {
        Ok(x) => x,
        Err(e) => return unavailable("Cannot read the fleet", &e),
    };
    let body = render::overview_body(&render::Overview {
        clusters: &clusters,
        machines: &machines,
        classes: &classes,
        now: now(),
    });
    answer(fragment, "Fleet", Scope::Overview, body)
}

async fn cluster(
    State(d): Shared,
    Path((namespace, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    let fragment = match d.gate(&req) {
        Ok(fragment) => fragment,
        Err(refused) => return refused,
    };
    let loaded = async {
        let clusters: Vec<Cluster> = d
            .list("slipway.dev", "v1alpha1", "clusters", Some(&namespace))
            .await?;
        let Some(cluster) = clusters
            .into_iter()
            .find(|c| c.metadata.name.as_deref() == Some(name.as_str()))
        else {
            return Ok(None);
        };
        let machines: Vec<Machine> = d
            .list("slipway.dev", "v1alpha1", "machines", Some(&namespace))
            .await?
            .into_iter()
            .filter(|m: &Machine| m.spec.cluster_name == name)
            .collect();
        let events: Vec<Event> = d
            .list("", "v1", "events", Some(&namespace))
            .await?
            .into_iter()
            .filter(|e: &Event| about(e, &name, &machines))
            .collect();
        Ok::<_, String>(Some((cluster, machines, events)))
    }
    .await;
    let (cluster, machines, events) = match loaded {
        Ok(Some(x)) => x,
        Ok(None) => {
            return html(
                StatusCode::NOT_FOUND,
                render::message(
                    "Cluster not found",
                    &format!("There is no cluster {name} in namespace {namespace}."),
                ),
            );
        }
        Err(e) => return unavailable("Cannot read the cluster", &e),
    };
    let body = render::cluster_body(&render::ClusterPage {
        cluster: &cluster,
        machines: &machines,
        events: &events,
        now: now(),
    });
    let scope = Scope::Cluster {
        namespace: &namespace,
        name: &name,
    };
    answer(fragment, &name, scope, body)
}

/// Whether an event is about the cluster `name` or one of its machines.
fn about(e: &Event, name: &str, machines: &[Machine]) -> bool {
    let o = &e.involved_object;
    let object = o.name.as_deref().unwrap_or_default();
    match o.kind.as_deref() {
        Some("Cluster") => object == name,
        Some("Machine") => machines
            .iter()
            .any(|m| m.metadata.name.as_deref() == Some(object)),
        _ => false,
    }
}

async fn login_form(State(d): Shared, headers: HeaderMap) -> Response {
    if d.signed_in(&headers) {
        return redirect("/ui/");
    }
    html(StatusCode::OK, render::login(None))
}

async fn login(State(d): Shared, body: Body) -> Response {
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return html(
            StatusCode::PAYLOAD_TOO_LARGE,
            render::login(Some("The form was too large.")),
        );
    };
    let token = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    if token.is_empty() || !(d.authenticate)(&token) {
        return html(
            StatusCode::UNAUTHORIZED,
            render::login(Some("That token is not valid for this server.")),
        );
    }
    let id = d.sessions.create();
    let mut response = redirect("/ui/");
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&id, d.sessions.ttl())) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

async fn logout(State(d): Shared, headers: HeaderMap) -> Response {
    if let Some(id) = session::cookie(&headers, session::COOKIE) {
        d.sessions.remove(id);
    }
    let mut response = redirect("/ui/login");
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

async fn not_found(State(d): Shared, headers: HeaderMap) -> Response {
    if !d.signed_in(&headers) {
        return redirect("/ui/login");
    }
    html(
        StatusCode::NOT_FOUND,
        render::message("Not found", "There is no such dashboard page."),
    )
}

/// What changed, as the live script reads it.
fn change(kind: &str, object: &serde_json::Value) -> serde_json::Value {
    let meta = &object["metadata"];
    let cluster = match kind {
        "Cluster" => meta["name"].as_str(),
        "Machine" => object["spec"]["clusterName"].as_str(),
        _ => match object["involvedObject"]["kind"].as_str() {
            Some("Cluster") => object["involvedObject"]["name"].as_str(),
            _ => None,
        },
    };
    json!({
        "kind": kind,
        "namespace": meta["namespace"],
        "name": meta["name"],
        "cluster": cluster,
    })
}

/// Server-Sent Events: one `change` event per Cluster, Machine or Event written after the
/// stream opened. The stream ends when a watch does (the browser reconnects by itself and
/// the script then refetches, so nothing is missed).
async fn events(State(d): Shared, headers: HeaderMap) -> Response {
    if !d.signed_in(&headers) {
        return unauthorized();
    }
    let from = d.registry.cache_revision().to_string();
    let mut streams = Vec::new();
    for (group, version, plural, kind) in [
        ("slipway.dev", "v1alpha1", "clusters", "Cluster"),
        ("slipway.dev", "v1alpha1", "machines", "Machine"),
        ("", "v1", "events", "Event"),
    ] {
        let Some(def) = d.registry.resource(group, version, plural) else {
            continue;
        };
        let params = WatchParams {
            resource_version: Some(from.clone()),
            ..WatchParams::default()
        };
        match d.registry.watch(&def, None, params).await {
            Ok(s) => streams.push(s.map(move |ev| (kind, ev)).boxed()),
            Err(e) => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("watching {plural}: {}\n", e.message),
                )
                    .into_response();
            }
        }
    }
    let changes = futures::stream::select_all(streams)
        .take_while(|(_, ev)| std::future::ready(ev.type_ != WatchEventType::Error))
        .filter(|(_, ev)| std::future::ready(ev.type_ != WatchEventType::Bookmark))
        .map(|(kind, ev)| {
            Ok::<_, Infallible>(
                SseEvent::default()
                    .event("change")
                    .data(change(kind, &ev.object).to_string()),
            )
        });
    Sse::new(changes)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

#[cfg(test)]
mod tests;
