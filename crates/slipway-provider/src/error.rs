//! Typed provider errors: what went wrong, in terms a controller can act on.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The kind of infrastructure object an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ResourceKind {
    Network,
    Subnet,
    LoadBalancer,
    Machine,
    Region,
    Zone,
    MachineType,
}

impl std::fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResourceKind::Network => "network",
            ResourceKind::Subnet => "subnet",
            ResourceKind::LoadBalancer => "load balancer",
            ResourceKind::Machine => "machine",
            ResourceKind::Region => "region",
            ResourceKind::Zone => "zone",
            ResourceKind::MachineType => "machine type",
        })
    }
}

/// Every way a [`Provider`](crate::Provider) call can fail.
///
/// The variants are the decisions a controller makes: forget the object (`NotFound`), pick
/// another zone or type (`CapacityUnavailable`), wait for an operator (`QuotaExceeded`), back
/// off (`Throttled`), fix the request (`InvalidRequest`), wait for dependents to go (`InUse`).
/// The enum is serializable so that an HTTP provider carries it across the wire unchanged.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ProviderError {
    /// The object does not exist (or no longer does).
    #[error("{kind} {id:?} not found")]
    NotFound { kind: ResourceKind, id: String },
    /// Granting the request would exceed a quota (such as a region's vCPUs).
    #[error(
        "quota {quota:?} exceeded in {scope}: {in_use} in use + {requested} requested > limit {limit}"
    )]
    #[serde(rename_all = "camelCase")]
    QuotaExceeded {
        /// Which quota, e.g. `"vcpus"`.
        quota: String,
        /// Where it applies, e.g. a region name.
        scope: String,
        limit: u64,
        in_use: u64,
        requested: u64,
    },
    /// The zone cannot supply this machine type now (sold out, or the zone is down).
    #[error("no capacity for {machine_type} in zone {zone}")]
    #[serde(rename_all = "camelCase")]
    CapacityUnavailable { zone: String, machine_type: String },
    /// The subnet has no free private address left.
    #[error("subnet {subnet:?} has no free addresses")]
    AddressesExhausted { subnet: String },
    /// Too many calls: retry after the given delay.
    #[error("throttled: retry after {retry_after:?}")]
    #[serde(rename_all = "camelCase")]
    Throttled {
        #[serde(with = "duration_ms")]
        retry_after: Duration,
    },
    /// The request is malformed or names things that do not exist in the catalog.
    #[error("invalid {what}: {reason}")]
    InvalidRequest { what: String, reason: String },
    /// The object cannot be deleted while other objects depend on it.
    #[error("{kind} {id:?} is in use: {reason}")]
    InUse {
        kind: ResourceKind,
        id: String,
        reason: String,
    },
    /// The provider failed internally (a bug or a broken backend).
    #[error("provider internal error: {0}")]
    Internal(String),
    /// The provider could not be reached or answered garbage; the call may or may not have
    /// taken effect, so only idempotent calls should be retried blindly.
    #[error("provider transport error: {0}")]
    Transport(String),
}

impl ProviderError {
    /// Shorthand for [`ProviderError::InvalidRequest`].
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> ProviderError {
        ProviderError::InvalidRequest {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`ProviderError::NotFound`].
    pub fn not_found(kind: ResourceKind, id: impl Into<String>) -> ProviderError {
        ProviderError::NotFound {
            kind,
            id: id.into(),
        }
    }

    /// True when the same call may succeed later without changing the request: throttling,
    /// transient capacity shortage, dependents still going away, transport and internal
    /// failures. Quota, invalid requests and not-found need a different request or an operator.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::Throttled { .. }
                | ProviderError::CapacityUnavailable { .. }
                | ProviderError::AddressesExhausted { .. }
                | ProviderError::InUse { .. }
                | ProviderError::Internal(_)
                | ProviderError::Transport(_)
        )
    }

    /// True for [`ProviderError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, ProviderError::NotFound { .. })
    }

    /// The delay the provider asked for, when it throttled the call.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Throttled { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

/// Durations on the wire as whole milliseconds, readable in JSON and YAML.
mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_table() {
        let cases = [
            (
                ProviderError::not_found(ResourceKind::Machine, "i-1"),
                false,
            ),
            (
                ProviderError::QuotaExceeded {
                    quota: "vcpus".into(),
                    scope: "eu-west-1".into(),
                    limit: 8,
                    in_use: 8,
                    requested: 2,
                },
                false,
            ),
            (
                ProviderError::CapacityUnavailable {
                    zone: "eu-west-1a".into(),
                    machine_type: "m5.large".into(),
                },
                true,
            ),
            (
                ProviderError::Throttled {
                    retry_after: Duration::from_secs(2),
                },
                true,
            ),
            (ProviderError::invalid("zone", "unknown"), false),
            (ProviderError::Transport("reset".into()), true),
        ];
        for (err, retryable) in cases {
            assert_eq!(err.is_retryable(), retryable, "{err}");
        }
    }

    #[test]
    fn errors_round_trip_through_json() {
        let errs = [
            ProviderError::Throttled {
                retry_after: Duration::from_millis(1500),
            },
            ProviderError::CapacityUnavailable {
                zone: "z".into(),
                machine_type: "t".into(),
            },
            ProviderError::not_found(ResourceKind::Subnet, "subnet-1"),
        ];
        for err in errs {
            let json = serde_json::to_string(&err).expect("serialize");
            let back: ProviderError = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, err, "{json}");
        }
        let json = serde_json::to_value(ProviderError::Throttled {
            retry_after: Duration::from_millis(1500),
        })
        .expect("serialize");
        assert_eq!(
            json,
            serde_json::json!({"type": "throttled", "retryAfter": 1500})
        );
    }

    #[test]
    fn retry_after_only_for_throttled() {
        assert_eq!(
            ProviderError::Throttled {
                retry_after: Duration::from_secs(3)
            }
            .retry_after(),
            Some(Duration::from_secs(3))
        );
        assert_eq!(ProviderError::Internal("x".into()).retry_after(), None);
    }
}
