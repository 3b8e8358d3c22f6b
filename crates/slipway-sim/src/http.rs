//! The simulated cloud's HTTP face, `/cloud/v1/...`: everything the [`Provider`] trait does,
//! plus the fault and time-scale knobs. JSON bodies (camelCase, the types of
//! `slipway_provider`). Errors are `{"error": <ProviderError>, "message": "..."}` with the
//! status a controller would expect from a real cloud API:
//!
//! | error | status |
//! |---|---|
//! | `notFound` | 404 |
//! | `quotaExceeded` | 403 |
//! | `addressesExhausted`, `inUse` | 409 |
//! | `invalidRequest` | 422 (400 when the body or query cannot be decoded) |
//! | `throttled` | 429 with `Retry-After` (whole seconds, rounded up) |
//! | `capacityUnavailable` | 503 |
//! | `internal` / `transport` | 500 / 502 |
//!
//! Routes: `GET /cloud/v1/catalog`; `GET|POST /cloud/v1/{networks,subnets,load-balancers,
//! machines}` (list with `?tag.<key>=<value>` selectors, create); `GET|DELETE .../{id}`;
//! `PATCH /cloud/v1/machines/{id}`; `GET|PUT|PATCH /cloud/v1/faults`;
//! `GET|PUT /cloud/v1/time-scale` (body: a number, 0 = no delays).

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use slipway_provider::{
    LoadBalancerSpec, MachinePatch, MachineSpec, NetworkSpec, Provider, ProviderError, SubnetSpec,
    Tags,
};

use crate::SimError;
use crate::cloud::SimCloud;
use crate::config::TimeScale;
use crate::faults::{Faults, FaultsPatch};

/// The body of `POST /cloud/v1/machines`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateMachineRequest {
    pub idempotency_key: String,
    pub spec: MachineSpec,
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ProviderError,
    pub message: String,
}

/// The HTTP status for a provider error.
pub fn status_of(e: &ProviderError) -> StatusCode {
    match e {
        ProviderError::NotFound { .. } => StatusCode::NOT_FOUND,
        ProviderError::QuotaExceeded { .. } => StatusCode::FORBIDDEN,
        ProviderError::AddressesExhausted { .. } | ProviderError::InUse { .. } => {
            StatusCode::CONFLICT
        }
        ProviderError::InvalidRequest { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        ProviderError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        ProviderError::CapacityUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        ProviderError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        ProviderError::Transport(_) => StatusCode::BAD_GATEWAY,
    }
}

/// A provider error as a response (with an optional status override for decode errors).
struct ApiError(ProviderError, Option<StatusCode>);

impl From<ProviderError> for ApiError {
    fn from(e: ProviderError) -> Self {
        ApiError(e, None)
    }
}

impl From<SimError> for ApiError {
    fn from(e: SimError) -> Self {
        match e {
            SimError::InvalidFaults(reason) | SimError::InvalidConfig(reason) => {
                ApiError(ProviderError::invalid("faults", reason), None)
            }
            other => ApiError(ProviderError::Internal(other.to_string()), None),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.1.unwrap_or_else(|| status_of(&self.0));
        let retry_after = self.0.retry_after();
        let body = ErrorBody {
            message: self.0.to_string(),
            error: self.0,
        };
        let mut resp = (status, Json(body)).into_response();
        if let Some(d) = retry_after {
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn body<T>(r: Result<Json<T>, JsonRejection>) -> ApiResult<T> {
    r.map(|Json(v)| v).map_err(|e| {
        ApiError(
            ProviderError::invalid("body", e.body_text()),
            Some(StatusCode::BAD_REQUEST),
        )
    })
}

/// `?tag.<key>=<value>&...` as a tag selector; any other parameter is refused.
fn selector(query: Option<String>) -> ApiResult<Tags> {
    let mut tags = Tags::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.strip_prefix("tag.") {
            Some(key) if !key.is_empty() => {
                tags.insert(key.to_string(), v.into_owned());
            }
            _ => {
                return Err(ApiError(
                    ProviderError::invalid(
                        "query",
                        format!("unknown parameter {k:?}; select with tag.<key>=<value>"),
                    ),
                    Some(StatusCode::BAD_REQUEST),
                ));
            }
        }
    }
    Ok(tags)
}

/// The router serving `cloud` under `/cloud/v1`.
pub fn router(cloud: Arc<SimCloud>) -> Router {
    Router::new()
        .route("/cloud/v1/catalog", get(catalog))
        .route(
            "/cloud/v1/networks",
            get(list_networks).post(create_network),
        )
        .route(
            "/cloud/v1/networks/{id}",
            get(get_network).delete(delete_network),
        )
        .route("/cloud/v1/subnets", get(list_subnets).post(create_subnet))
        .route(
            "/cloud/v1/subnets/{id}",
            get(get_subnet).delete(delete_subnet),
        )
        .route("/cloud/v1/load-balancers", get(list_lbs).post(create_lb))
        .route(
            "/cloud/v1/load-balancers/{id}",
            get(get_lb).delete(delete_lb),
        )
        .route(
            "/cloud/v1/machines",
            get(list_machines).post(create_machine),
        )
        .route(
            "/cloud/v1/machines/{id}",
            get(get_machine).delete(delete_machine).patch(patch_machine),
        )
        .route(
            "/cloud/v1/faults",
            get(get_faults).put(put_faults).patch(patch_faults),
        )
        .route(
            "/cloud/v1/time-scale",
            get(get_time_scale).put(put_time_scale),
        )
        .with_state(cloud)
}

type S = State<Arc<SimCloud>>;

async fn catalog(State(c): S) -> ApiResult<Response> {
    Ok(Json(c.catalog().await?).into_response())
}

async fn list_networks(State(c): S, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let sel = selector(q)?;
    Ok(Json(c.list_networks(&sel).await?).into_response())
}

async fn create_network(
    State(c): S,
    spec: Result<Json<NetworkSpec>, JsonRejection>,
) -> ApiResult<Response> {
    Ok(Json(c.create_network(body(spec)?).await?).into_response())
}

async fn get_network(State(c): S, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(c.get_network(&id).await?).into_response())
}

async fn delete_network(State(c): S, Path(id): Path<String>) -> ApiResult<StatusCode> {
    c.delete_network(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_subnets(State(c): S, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let sel = selector(q)?;
    Ok(Json(c.list_subnets(&sel).await?).into_response())
}

async fn create_subnet(
    State(c): S,
    spec: Result<Json<SubnetSpec>, JsonRejection>,
) -> ApiResult<Response> {
    Ok(Json(c.create_subnet(body(spec)?).await?).into_response())
}

async fn get_subnet(State(c): S, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(c.get_subnet(&id).await?).into_response())
}

async fn delete_subnet(State(c): S, Path(id): Path<String>) -> ApiResult<StatusCode> {
    c.delete_subnet(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_lbs(State(c): S, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let sel = selector(q)?;
    Ok(Json(c.list_load_balancers(&sel).await?).into_response())
}

async fn create_lb(
    State(c): S,
    spec: Result<Json<LoadBalancerSpec>, JsonRejection>,
) -> ApiResult<Response> {
    Ok(Json(c.create_load_balancer(body(spec)?).await?).into_response())
}

async fn get_lb(State(c): S, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(c.get_load_balancer(&id).await?).into_response())
}

async fn delete_lb(State(c): S, Path(id): Path<String>) -> ApiResult<StatusCode> {
    c.delete_load_balancer(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_machines(State(c): S, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let sel = selector(q)?;
    Ok(Json(c.list_machines(&sel).await?).into_response())
}

async fn create_machine(
    State(c): S,
    req: Result<Json<CreateMachineRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let req = body(req)?;
    Ok(Json(c.create_machine(&req.idempotency_key, req.spec).await?).into_response())
}

async fn get_machine(State(c): S, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(c.get_machine(&id).await?).into_response())
}

async fn delete_machine(State(c): S, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(c.delete_machine(&id).await?).into_response())
}

async fn patch_machine(
    State(c): S,
    Path(id): Path<String>,
    patch: Result<Json<MachinePatch>, JsonRejection>,
) -> ApiResult<Response> {
    Ok(Json(c.patch_machine(&id, body(patch)?).await?).into_response())
}

async fn get_faults(State(c): S) -> Json<Faults> {
    Json(c.faults())
}

async fn put_faults(
    State(c): S,
    faults: Result<Json<Faults>, JsonRejection>,
) -> ApiResult<Json<Faults>> {
    Ok(Json(c.set_faults(body(faults)?).await?))
}

async fn patch_faults(
    State(c): S,
    patch: Result<Json<FaultsPatch>, JsonRejection>,
) -> ApiResult<Json<Faults>> {
    Ok(Json(c.patch_faults(&body(patch)?).await?))
}

async fn get_time_scale(State(c): S) -> Json<TimeScale> {
    Json(c.faults().time_scale)
}

async fn put_time_scale(
    State(c): S,
    scale: Result<Json<f64>, JsonRejection>,
) -> ApiResult<Json<TimeScale>> {
    let scale = TimeScale::new(body(scale)?)
        .map_err(|e| ApiError(ProviderError::invalid("timeScale", e.to_string()), None))?;
    Ok(Json(c.set_time_scale(scale).await?.time_scale))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use slipway_provider::ResourceKind;

    #[test]
    fn status_table() {
        let cases = [
            (ProviderError::not_found(ResourceKind::Machine, "x"), 404),
            (
                ProviderError::QuotaExceeded {
                    quota: "vcpus".into(),
                    scope: "r".into(),
                    limit: 1,
                    in_use: 1,
                    requested: 1,
                },
                403,
            ),
            (
                ProviderError::CapacityUnavailable {
                    zone: "z".into(),
                    machine_type: "t".into(),
                },
                503,
            ),
            (
                ProviderError::Throttled {
                    retry_after: Duration::from_millis(1),
                },
                429,
            ),
            (ProviderError::invalid("a", "b"), 422),
            (
                ProviderError::AddressesExhausted { subnet: "s".into() },
                409,
            ),
            (ProviderError::Internal("x".into()), 500),
        ];
        for (e, want) in cases {
            assert_eq!(status_of(&e).as_u16(), want, "{e}");
        }
    }

    #[test]
    fn throttled_responses_carry_retry_after_rounded_up() {
        let resp = ApiError::from(ProviderError::Throttled {
            retry_after: Duration::from_millis(1500),
        })
        .into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            resp.headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"2"[..])
        );
    }

    #[test]
    fn selectors_parse_tag_parameters_only() {
        let sel = selector(Some(
            "tag.slipway.dev%2Fcluster=team%2Fa&tag.pool=gpu".to_string(),
        ))
        .map_err(|e| e.0)
        .expect("selector");
        assert_eq!(
            sel.get("slipway.dev/cluster").map(String::as_str),
            Some("team/a")
        );
        assert_eq!(sel.get("pool").map(String::as_str), Some("gpu"));
        assert!(selector(Some("limit=3".to_string())).is_err());
        assert!(selector(None).map_err(|e| e.0).expect("empty").is_empty());
    }
}
