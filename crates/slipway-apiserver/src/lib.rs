//! The Kubernetes-compatible API server.
//!
//! HTTPS (rustls) with HTTP/1.1 and HTTP/2, bearer-token authentication, discovery (legacy
//! and aggregated v2), OpenAPI v2 (JSON and protobuf) and v3, and the resource endpoints of
//! every kind the registry serves. Everything protocol-shaped lives here; the semantics live
//! in `slipway-registry`.

mod coalesce;
mod discovery;
mod handlers;
pub mod metrics;
pub mod openapi;
pub mod pki;
mod protobuf;
pub mod request;
mod response;
pub mod tenants;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::json;
use slipway_apimachinery::{ApiError, ResourceDef};
use slipway_registry::Registry;
use tokio::net::TcpListener;

use crate::discovery::Discovery;
use crate::metrics::Metrics;
use crate::request::{ApiPath, MAX_BODY_BYTES, Query};
use crate::response::Reply;

/// The Kubernetes version the API reports (kubectl picks its behaviour by it).
pub const KUBERNETES_MAJOR: &str = "1";
pub const KUBERNETES_MINOR: &str = "33";

/// What the API serves about itself, derived from the kinds alone (discovery and OpenAPI
/// documents): built once and shared by every API serving the same kinds.
pub struct Surface {
    discovery: Discovery,
    openapi: openapi::OpenApi,
}

impl Surface {
    pub fn new(defs: &[Arc<ResourceDef>]) -> Arc<Self> {
        let discovery = Discovery::new(defs);
        let owned: Vec<_> = defs.iter().map(|d| (**d).clone()).collect();
        Arc::new(Self {
            discovery,
            openapi: openapi::OpenApi::new(&owned),
        })
    }
}

/// Shared state of the HTTP handlers of one API (one registry).
pub struct ApiServer {
    pub registry: Arc<Registry>,
    tokens: pki::Tokens,
    surface: Arc<Surface>,
    pub metrics: Arc<Metrics>,
}

impl ApiServer {
    pub fn new(registry: Arc<Registry>, tokens: pki::Tokens) -> Arc<Self> {
        let surface = Surface::new(registry.resources());
        Self::with_surface(registry, tokens, surface, Arc::new(Metrics::new()))
    }

    /// An API over `registry` sharing its discovery/OpenAPI documents and metrics with others.
    pub fn with_surface(
        registry: Arc<Registry>,
        tokens: pki::Tokens,
        surface: Arc<Surface>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            registry,
            tokens,
            surface,
            metrics,
        })
    }

    /// The axum router of the whole API.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/version", get(version))
            .route("/healthz", get(healthz))
            .route("/livez", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics_text))
            .route("/openapi/v2", get(openapi_v2))
            .route("/openapi/v3", get(openapi_v3_index))
            .route("/openapi/v3/{*path}", get(openapi_v3_doc))
            .fallback(api)
            .layer(middleware::from_fn_with_state(
                Arc::clone(self),
                authenticate,
            ))
            .with_state(Arc::clone(self))
    }
}

impl ApiServer {
    /// [`ApiServer::router`] plus the web dashboard under `/ui`. The dashboard authenticates
    /// its own requests (a session cookie from its login form, or the same bearer tokens as
    /// the API), so its routes are merged outside the API's bearer-token middleware: a layer
    /// wraps only the routes (and fallback) added before it.
    pub fn router_with_dashboard(self: &Arc<Self>) -> Router {
        let server = Arc::clone(self);
        let dashboard = slipway_dashboard::Dashboard::new(
            Arc::clone(&self.registry),
            Arc::new(move |token: &str| server.tokens.authenticate(token).is_some()),
        );
        self.router().merge(dashboard.router())
    }
}

/// Paths anyone may read, as kube-apiserver's `system:public-info-viewer` allows.
fn is_public(path: &str) -> bool {
    matches!(path, "/version" | "/healthz" | "/livez" | "/readyz")
        || path.starts_with("/healthz/")
        || path.starts_with("/readyz/")
}

async fn authenticate(State(server): State<Arc<ApiServer>>, req: Request, next: Next) -> Response {
    if is_public(req.uri().path()) {
        return next.run(req).await;
    }
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match token.and_then(|t| server.tokens.authenticate(t)) {
        Some(_) => next.run(req).await,
        None => Reply::error(ApiError::unauthorized()).into_response(),
    }
}

async fn version() -> Response {
    Reply::json(
        StatusCode::OK,
        &json!({
            "major": KUBERNETES_MAJOR,
            "minor": KUBERNETES_MINOR,
            "gitVersion": format!("v{KUBERNETES_MAJOR}.{KUBERNETES_MINOR}.0-slipway.{}", env!("CARGO_PKG_VERSION")),
            "gitCommit": "",
            "gitTreeState": "clean",
            "buildDate": "",
            "goVersion": "",
            "compiler": "rustc",
            "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        }),
    )
    .into_response()
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(server): State<Arc<ApiServer>>) -> Response {
    match server.registry.store().current_revision().await {
        Ok(_) => "ok".into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}")).into_response(),
    }
}

async fn metrics_text(State(server): State<Arc<ApiServer>>) -> Response {
    server
        .metrics
        .store_revision
        .set(server.registry.cache_revision());
    let mut response = server.metrics.encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

fn accept_of(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
}

fn not_acceptable(req: &Request) -> Response {
    Reply::error(ApiError::not_acceptable(format!(
        "the OpenAPI documents are served as JSON (and /openapi/v2 also as protobuf); got Accept {:?}",
        accept_of(req).unwrap_or_default()
    )))
    .into_response()
}

async fn openapi_v2(State(server): State<Arc<ApiServer>>, req: Request) -> Response {
    match server.surface.openapi.v2_for(accept_of(&req)) {
        Some((content_type, doc)) => cached(&req, content_type, doc),
        None => not_acceptable(&req),
    }
}

async fn openapi_v3_index(State(server): State<Arc<ApiServer>>, req: Request) -> Response {
    if !openapi::accepts_v3_json(accept_of(&req)) {
        return not_acceptable(&req);
    }
    cached(&req, "application/json", server.surface.openapi.v3_index())
}

async fn openapi_v3_doc(State(server): State<Arc<ApiServer>>, req: Request) -> Response {
    if !openapi::accepts_v3_json(accept_of(&req)) {
        return not_acceptable(&req);
    }
    let path = req
        .uri()
        .path()
        .trim_start_matches("/openapi/v3/")
        .to_string();
    match server.surface.openapi.v3(&path) {
        Some(doc) => cached(&req, "application/json", doc),
        None => Reply::error(ApiError::path_not_found(req.uri().path())).into_response(),
    }
}

/// A cacheable document: honours `If-None-Match`.
fn cached(req: &Request, content_type: &'static str, doc: &openapi::Served) -> Response {
    let etag = doc.etag();
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Response::new(Body::from(doc.bytes().clone()))
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    response
}

/// Everything under `/api` and `/apis`.
async fn api(State(server): State<Arc<ApiServer>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Some(path) = request::parse_api_path(parts.uri.path()) else {
        return Reply::error(ApiError::path_not_found(parts.uri.path())).into_response();
    };
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let discovery_reply = |value: Option<serde_json::Value>| match value {
        Some(v) => Reply::json(StatusCode::OK, &v).into_response(),
        None => Reply::error(ApiError::path_not_found(parts.uri.path())).into_response(),
    };
    let resource = match path {
        ApiPath::Root { legacy } => {
            if parts.method != Method::GET {
                return Reply::error(ApiError::method_not_allowed(
                    "only GET is allowed on discovery",
                ))
                .into_response();
            }
            if let Some(v) = discovery::wants_aggregated(accept.as_deref()) {
                let doc = server.surface.discovery.aggregated(legacy, v);
                return Reply::json(StatusCode::OK, &doc)
                    .with_content_type(discovery::aggregated_content_type(v))
                    .into_response();
            }
            let doc = if legacy {
                server.surface.discovery.api_versions()
            } else {
                server.surface.discovery.api_group_list()
            };
            return discovery_reply(Some(doc));
        }
        ApiPath::Group(group) => {
            return discovery_reply(server.surface.discovery.api_group(&group));
        }
        ApiPath::GroupVersion { group, version } => {
            return discovery_reply(server.surface.discovery.resource_list(&group, &version));
        }
        ApiPath::Resource(r) => r,
    };
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(reply) => return reply.into_response(),
    };
    let query = Query::parse(parts.uri.query());
    handlers::handle(server, parts.method, resource, query, parts.headers, body)
        .await
        .into_response()
}

/// Read a request body up to [`MAX_BODY_BYTES`]. A larger body is still drained (up to a
/// bound) before the 413, so the client reads the answer instead of a reset connection.
async fn read_body(body: Body) -> Result<bytes::Bytes, Reply> {
    use http_body_util::BodyExt as _;
    const DRAIN_LIMIT: usize = 8 * MAX_BODY_BYTES;
    let mut body = body;
    let mut out = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            Reply::error(ApiError::bad_request(format!(
                "reading the request body: {e}"
            )))
        })?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen > DRAIN_LIMIT {
                break;
            }
            if seen <= MAX_BODY_BYTES {
                out.extend_from_slice(&data);
            }
        }
    }
    if seen > MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(out.freeze())
}

fn too_large() -> Reply {
    Reply::error(ApiError::too_large(format!(
        "the request body is too large: the limit is {} bytes",
        MAX_BODY_BYTES
    )))
}

/// Where and how to listen.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
}

/// A running server.
pub struct Running {
    pub local_addr: SocketAddr,
    pub kubeconfig: PathBuf,
    pub task: tokio::task::JoinHandle<()>,
    /// The server's shared state (e.g. `server.metrics.include(..)` for controller metrics).
    pub server: Arc<ApiServer>,
}

/// Prepare TLS material and credentials in the data directory, bind, and serve until the task
/// is dropped or aborted.
pub async fn serve(registry: Arc<Registry>, config: &ServeConfig) -> Result<Running, ServeError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| ServeError::Bind {
            addr: config.listen,
            source: e,
        })?;
    let local_addr = listener.local_addr().map_err(|e| ServeError::Bind {
        addr: config.listen,
        source: e,
    })?;
    let names = pki::serving_names(local_addr);
    let cert = pki::ensure_serving_cert(&config.data_dir, &names)?;
    let (tokens, kubeconfig) =
        pki::ensure_admin_kubeconfig(&config.data_dir, &pki::client_url(local_addr), &cert.ca_pem)?;
    let server = ApiServer::new(registry, tokens);
    let task = spawn_https(listener, &cert, server.router_with_dashboard())?;
    Ok(Running {
        local_addr,
        kubeconfig,
        task,
        server,
    })
}

/// Serve `router` over HTTPS (HTTP/2 and HTTP/1.1) on `listener` with `cert`, until the
/// returned task is aborted.
pub fn spawn_https(
    listener: TcpListener,
    cert: &pki::ServingCert,
    router: Router,
) -> Result<tokio::task::JoinHandle<()>, ServeError> {
    let tls = tls_config(cert)?;
    Ok(tokio::spawn(accept_loop(listener, tls, router)))
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error("TLS configuration: {0}")]
    Tls(String),
}

fn tls_config(cert: &pki::ServingCert) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| ServeError::Tls(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes())
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

async fn accept_loop(listener: TcpListener, tls: Arc<rustls::ServerConfig>, router: Router) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            // HTTP/2 multiplexes many streams (client-go's watches) over the connection: its
            // writes are coalesced (`coalesce`). HTTP/1.1 carries one response at a time and
            // hyper already writes each in one go.
            let result = if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                serve_connection(coalesce::CoalescedWrites::new(stream), router).await
            } else {
                serve_connection(stream, router).await
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

async fn serve_connection<I>(
    io: I,
    router: Router,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(router);
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    // kube-apiserver allows 1000 concurrent streams per HTTP/2 connection; watches use one each.
    builder.http2().max_concurrent_streams(1000);
    builder
        .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(io), service)
        .await
}

/// Where `slipway serve` keeps its admin kubeconfig.
pub fn admin_kubeconfig_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.kubeconfig")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    async fn status_of(router: &Router, path: &str, token: Option<&str>) -> (StatusCode, String) {
        let mut req = http::Request::get(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let response = router
            .clone()
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (response.status(), location)
    }

    #[tokio::test]
    async fn the_dashboard_does_its_own_auth_and_the_api_still_requires_a_token() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            slipway_store::sqlite::SqliteStore::open(&dir.path().join("store.db")).expect("store");
        let registry = Registry::start(
            Arc::new(store),
            slipway_api::resources(),
            Default::default(),
        )
        .await
        .expect("registry");
        let token = "the-admin-token".to_string();
        let tokens = pki::Tokens::single(
            &hex::encode(pki::hash_token(&token)),
            pki::User {
                name: "admin".to_string(),
                groups: vec!["system:masters".to_string()],
            },
        )
        .expect("tokens");
        let router = ApiServer::new(registry, tokens).router_with_dashboard();
        // Without a token: the API refuses, the dashboard sends the browser to its login.
        assert_eq!(
            status_of(&router, "/api/v1/namespaces", None).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status_of(&router, "/ui/", None).await,
            (StatusCode::SEE_OTHER, "/ui/login".to_string())
        );
        assert_eq!(
            status_of(&router, "/ui/login", None).await.0,
            StatusCode::OK
        );
        assert_eq!(
            status_of(&router, "/ui/api/events?x", None).await.0,
            StatusCode::UNAUTHORIZED
        );
        // The API's own tokens open both.
        assert_eq!(
            status_of(&router, "/api/v1/namespaces", Some(&token))
                .await
                .0,
            StatusCode::OK
        );
        assert_eq!(
            status_of(&router, "/ui/", Some(&token)).await.0,
            StatusCode::OK
        );
        assert_eq!(
            status_of(&router, "/ui/", Some("wrong")).await.0,
            StatusCode::SEE_OTHER
        );
    }
}
