//! The one error type of every [`Client`](crate::Client).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A Kubernetes `Status` (the failure a server answered with).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The HTTP code: 404, 409, 410, 422, 429...
    #[serde(default)]
    pub code: u16,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `Expired`, `TooManyRequests`,
    /// `Fenced`...
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    /// `details.retryAfterSeconds`, for 429 and 503.
    #[serde(default, skip)]
    pub retry_after_seconds: Option<u32>,
}

impl Status {
    /// Read a `Status` object (as the API server renders it).
    pub fn from_value(v: &Value) -> Self {
        let mut status: Status = serde_json::from_value(v.clone()).unwrap_or_default();
        status.retry_after_seconds = v
            .pointer("/details/retryAfterSeconds")
            .and_then(Value::as_u64)
            .and_then(|s| u32::try_from(s).ok());
        status
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server refused the request; the `Status` says why.
    #[error("api error: {0}")]
    Api(Status),
    /// The server could not be reached or the connection broke.
    #[error("transport error: {0}")]
    Transport(String),
    /// A response (or an object given to a typed API) did not have the expected shape.
    #[error("cannot decode: {0}")]
    Decode(String),
    /// The client could not be configured (kubeconfig, TLS).
    #[error("client configuration: {0}")]
    Config(String),
}

/// Result of a client call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The server's `Status`, for API errors.
    pub fn status(&self) -> Option<&Status> {
        match self {
            Self::Api(s) => Some(s),
            _ => None,
        }
    }

    fn code(&self) -> Option<u16> {
        self.status().map(|s| s.code)
    }

    /// 404.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    /// 409 AlreadyExists (a create of an existing name).
    pub fn is_already_exists(&self) -> bool {
        self.status()
            .is_some_and(|s| s.code == 409 && s.reason == "AlreadyExists")
    }

    /// 409 Conflict: the object changed since it was read (retry after re-reading).
    pub fn is_conflict(&self) -> bool {
        self.status()
            .is_some_and(|s| s.code == 409 && s.reason == "Conflict")
    }

    /// 409 Fenced: this writer's lease is held by someone else; it must stop acting as leader.
    pub fn is_fenced(&self) -> bool {
        self.status()
            .is_some_and(|s| s.code == 409 && s.reason == slipway_registry::FENCED_REASON)
    }

    /// 410 Gone / Expired: the resourceVersion was compacted; relist.
    pub fn is_gone(&self) -> bool {
        self.code() == Some(410)
    }

    /// 429 Too Many Requests.
    pub fn is_too_many_requests(&self) -> bool {
        self.code() == Some(429)
    }

    /// 422 Invalid.
    pub fn is_invalid(&self) -> bool {
        self.code() == Some(422)
    }

    /// How long the server asked the client to wait (429, 503), if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.status()
            .and_then(|s| s.retry_after_seconds)
            .map(|s| Duration::from_secs(u64::from(s)))
    }
}

impl From<slipway_apimachinery::ApiError> for Error {
    fn from(e: slipway_apimachinery::ApiError) -> Self {
        Self::Api(Status {
            code: e.code,
            reason: e.reason.to_string(),
            message: e.message,
            retry_after_seconds: e.retry_after_seconds,
        })
    }
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(s) => {
                let v = serde_json::to_value(&*s).unwrap_or_default();
                Self::Api(Status::from_value(&v))
            }
            kube::Error::SerdeError(e) => Self::Decode(e.to_string()),
            kube::Error::InferConfig(e) => Self::Config(e.to_string()),
            kube::Error::InferKubeconfig(e) => Self::Config(e.to_string()),
            other => Self::Transport(other.to_string()),
        }
    }
}
