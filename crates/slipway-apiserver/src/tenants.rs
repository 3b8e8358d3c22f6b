//! Many Kubernetes APIs behind one listener: each logical cluster (a simulated workload
//! cluster) is served under `/clusters/<name>/`, by the same handlers as the platform API, over
//! its own [`Registry`] (its own key root in a shared store) and with its own credentials.
//!
//! A kubeconfig whose `server` is `https://HOST:PORT/clusters/<name>` works unchanged with
//! kubectl and kube-rs: both keep the path prefix of the server URL. The discovery and OpenAPI
//! documents ([`Surface`]) and the metrics are built once and shared, so a tenant costs little
//! more than its registry. A tenant can be marked unavailable (its control plane lost quorum):
//! it then answers every request with 503, as a load balancer in front of dead API servers
//! would, until marked available again.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::Uri;
use slipway_apimachinery::ApiError;
use slipway_registry::Registry;
use tower::ServiceExt as _;

use crate::metrics::Metrics;
use crate::response::Reply;
use crate::{ApiServer, Surface, pki};

/// The path prefix of a tenant.
pub fn path_prefix(name: &str) -> String {
    format!("/clusters/{name}")
}

struct Tenant {
    server: Arc<ApiServer>,
    router: Router,
    /// Why the tenant's API is down, when it is.
    unavailable: Option<String>,
}

/// The set of logical clusters served by one listener.
pub struct Tenants {
    surface: Arc<Surface>,
    metrics: Arc<Metrics>,
    tenants: RwLock<HashMap<String, Tenant>>,
}

impl Tenants {
    /// Tenants serving the kinds described by `surface`.
    pub fn new(surface: Arc<Surface>) -> Arc<Self> {
        Arc::new(Self {
            surface,
            metrics: Arc::new(Metrics::new()),
            tenants: RwLock::new(HashMap::new()),
        })
    }

    /// Serve `registry` as tenant `name`, accepting `tokens`. Replaces a tenant of that name.
    pub fn insert(&self, name: &str, registry: Arc<Registry>, tokens: pki::Tokens) {
        let server = ApiServer::with_surface(
            registry,
            tokens,
            Arc::clone(&self.surface),
            Arc::clone(&self.metrics),
        );
        let router = server.router();
        self.write().insert(
            name.to_string(),
            Tenant {
                server,
                router,
                unavailable: None,
            },
        );
    }

    /// Stop serving tenant `name`; its registry is returned (dropping it stops its loops).
    pub fn remove(&self, name: &str) -> Option<Arc<Registry>> {
        self.write()
            .remove(name)
            .map(|t| Arc::clone(&t.server.registry))
    }

    /// The registry of tenant `name`.
    pub fn registry(&self, name: &str) -> Option<Arc<Registry>> {
        self.read()
            .get(name)
            .map(|t| Arc::clone(&t.server.registry))
    }

    /// Mark tenant `name` down (`Some(reason)`) or up (`None`). False if there is no such tenant.
    pub fn set_unavailable(&self, name: &str, reason: Option<String>) -> bool {
        match self.write().get_mut(name) {
            Some(t) => {
                t.unavailable = reason;
                true
            }
            None => false,
        }
    }

    /// Whether tenant `name` answers requests.
    pub fn is_available(&self, name: &str) -> bool {
        self.read()
            .get(name)
            .is_some_and(|t| t.unavailable.is_none())
    }

    /// The names of every tenant, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<_> = self.read().keys().cloned().collect();
        names.sort();
        names
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// The router dispatching `/clusters/<name>/...` to each tenant's API.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .fallback(dispatch)
            .with_state(Arc::clone(self))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Tenant>> {
        self.tenants
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Tenant>> {
        self.tenants
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Split `/clusters/<name>/<rest>` into the tenant name and the path inside its API.
fn split_tenant_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/clusters/")?;
    let (name, inner) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    (!name.is_empty()).then_some((name, inner))
}

async fn dispatch(State(tenants): State<Arc<Tenants>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let Some((name, inner)) = split_tenant_path(&path) else {
        return Reply::error(ApiError::path_not_found(&path)).into_response();
    };
    let router = {
        let map = tenants.read();
        match map.get(name) {
            None => {
                return Reply::error(ApiError::path_not_found(&path)).into_response();
            }
            Some(t) => match &t.unavailable {
                Some(reason) => {
                    return Reply::error(ApiError::service_unavailable(format!(
                        "the API server of cluster {name:?} is unavailable: {reason}"
                    )))
                    .into_response();
                }
                None => t.router.clone(),
            },
        }
    };
    let (mut parts, body) = req.into_parts();
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{inner}?{q}"),
        None => inner.to_string(),
    };
    parts.uri = match Uri::builder().path_and_query(path_and_query).build() {
        Ok(uri) => uri,
        Err(e) => {
            return Reply::error(ApiError::bad_request(format!("bad request path: {e}")))
                .into_response();
        }
    };
    match router.oneshot(Request::from_parts(parts, body)).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::split_tenant_path;

    #[test]
    fn tenant_paths() {
        assert_eq!(
            split_tenant_path("/clusters/a/api/v1/pods"),
            Some(("a", "/api/v1/pods"))
        );
        assert_eq!(split_tenant_path("/clusters/a"), Some(("a", "/")));
        assert_eq!(split_tenant_path("/clusters/a/"), Some(("a", "/")));
        assert_eq!(split_tenant_path("/clusters/"), None);
        assert_eq!(split_tenant_path("/api/v1"), None);
    }
}
