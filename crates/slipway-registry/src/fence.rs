//! Fencing: writes that succeed only while the writer still holds a `Lease`.
//!
//! Leader election by lease expiry alone cannot stop a leader that was paused (GC, a frozen
//! renew loop, a network partition) from writing after another replica took the lease over:
//! it has not noticed yet. A [`Fence`] on a write closes that window at the store. The
//! registry reads the lease, refuses the write if the lease names another holder, and
//! otherwise makes the store write conditional on the lease key's modification revision (a
//! [`Guard`]), atomically. A takeover changes the lease key, so a stale leader's write fails
//! with 409 reason [`FENCED_REASON`] even if it raced the takeover. When the lease was merely
//! renewed (same holder, new revision) in between, the registry re-reads it and retries.
//!
//! A fence names the holder the writer believes it is; it does not look at expiry times.
//! While no other replica has taken the lease over, its last holder may still write: nobody
//! else can be leader then, and the fence only needs to stop two leaders writing at once.

use bytes::Bytes;
use serde_json::Value;
use slipway_apimachinery::ApiError;
use slipway_store::{Guard, KeyValue, Revision, StoreError};

use crate::{Registry, codec, store_error};

/// `Status.reason` of a write refused because the writer no longer holds its lease.
pub const FENCED_REASON: &str = "Fenced";

/// The HTTP request header carrying a [`Fence`] (`namespace/name/holder`).
pub const FENCE_HEADER: &str = "x-slipway-fence";

/// How many times a fenced write re-reads a lease that keeps being renewed under it.
const MAX_GUARD_RETRIES: usize = 16;

/// The lease (a `coordination.k8s.io/v1` `Lease`) a write is fenced on, and the holder
/// identity the writer believes holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fence {
    pub lease_namespace: String,
    pub lease_name: String,
    pub holder: String,
}

impl Fence {
    /// Parse the [`FENCE_HEADER`] form `namespace/name/holder` (the holder may contain `/`).
    pub fn parse(value: &str) -> Result<Self, ApiError> {
        let mut parts = value.splitn(3, '/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(ns), Some(name), Some(holder))
                if !ns.is_empty() && !name.is_empty() && !holder.is_empty() =>
            {
                Ok(Self {
                    lease_namespace: ns.to_string(),
                    lease_name: name.to_string(),
                    holder: holder.to_string(),
                })
            }
            _ => Err(ApiError::bad_request(format!(
                "{FENCE_HEADER} {value:?} is malformed: expected namespace/name/holder"
            ))),
        }
    }

    /// The [`FENCE_HEADER`] value for this fence.
    pub fn to_header(&self) -> String {
        format!(
            "{}/{}/{}",
            self.lease_namespace, self.lease_name, self.holder
        )
    }
}

impl std::fmt::Display for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_header())
    }
}

/// The error a fenced writer gets: 409 with reason [`FENCED_REASON`].
pub fn fenced(fence: &Fence, actual: Option<&str>) -> ApiError {
    let actual = match actual {
        Some(h) => format!("is held by {h:?}"),
        None => "has no holder".to_string(),
    };
    ApiError::new(
        409,
        FENCED_REASON,
        format!(
            "write fenced: lease {}/{} {actual}, not by {:?}; this writer is no longer the leader",
            fence.lease_namespace, fence.lease_name, fence.holder
        ),
    )
    .with_details("coordination.k8s.io", "leases", &fence.lease_name)
}

/// The holder a stored lease names (`spec.holderIdentity`), if any.
fn holder(lease: &Value) -> Option<&str> {
    lease
        .pointer("/spec/holderIdentity")
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())
}

impl Registry {
    /// The guard that keeps a write to the revision of `fence`'s lease at which it names the
    /// fence's holder, or the fenced error.
    async fn fence_guard(&self, fence: &Fence) -> Result<Guard, ApiError> {
        let def = self
            .resource("coordination.k8s.io", "v1", "leases")
            .ok_or_else(|| ApiError::bad_request("fenced write: leases are not served"))?;
        let key = self
            .keys
            .key(&def, Some(&fence.lease_namespace), &fence.lease_name);
        let Some(kv) = self.store.get(&key).await.map_err(store_error)? else {
            return Err(fenced(fence, None));
        };
        let lease = codec::decode(&kv.value, kv.mod_revision)?;
        let actual = holder(&lease);
        if actual != Some(fence.holder.as_str()) {
            return Err(fenced(fence, actual));
        }
        Ok(Guard {
            key,
            mod_revision: kv.mod_revision,
        })
    }

    /// Refuse a fenced request up front when its lease names another holder, so that a
    /// fenced writer learns it is fenced rather than chasing conflicts it cannot win. The
    /// store write re-checks atomically ([`Guard`]); this read only orders the errors.
    pub(crate) async fn check_fence(&self, fence: Option<&Fence>) -> Result<(), ApiError> {
        match fence {
            Some(fence) => self.fence_guard(fence).await.map(drop),
            None => Ok(()),
        }
    }

    /// The guard for the next attempt of a fenced write (`None` when unfenced), or the
    /// fenced error. `attempt` counts the guard failures so far: the lease moved between
    /// reading it and writing, renewed (retry) or taken over (the next read says so).
    async fn next_guard(
        &self,
        fence: Option<&Fence>,
        attempt: usize,
    ) -> Result<Option<Guard>, ApiError> {
        let Some(fence) = fence else {
            return Ok(None);
        };
        if attempt >= MAX_GUARD_RETRIES {
            return Err(ApiError::conflict(
                "leases",
                "coordination.k8s.io",
                &fence.lease_name,
                "the lease kept changing under a fenced write; retry",
            ));
        }
        self.fence_guard(fence).await.map(Some)
    }

    /// [`Store::create`](slipway_store::Store::create), fenced when `fence` is given. The
    /// outer error is the fence's; the inner result is the write's own.
    pub(crate) async fn store_create(
        &self,
        key: &str,
        value: Bytes,
        fence: Option<&Fence>,
    ) -> Result<Result<Revision, StoreError>, ApiError> {
        let mut attempt = 0;
        loop {
            let result = match self.next_guard(fence, attempt).await? {
                Some(g) => self.store.create_guarded(key, value.clone(), &g).await,
                None => self.store.create(key, value.clone()).await,
            };
            match result {
                Err(StoreError::GuardFailed { .. }) => attempt += 1,
                other => return Ok(other),
            }
        }
    }

    /// [`Store::update`](slipway_store::Store::update), fenced when `fence` is given.
    pub(crate) async fn store_update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        fence: Option<&Fence>,
    ) -> Result<Result<Revision, StoreError>, ApiError> {
        let mut attempt = 0;
        loop {
            let result = match self.next_guard(fence, attempt).await? {
                Some(g) => {
                    self.store
                        .update_guarded(key, value.clone(), expected, &g)
                        .await
                }
                None => self.store.update(key, value.clone(), expected).await,
            };
            match result {
                Err(StoreError::GuardFailed { .. }) => attempt += 1,
                other => return Ok(other),
            }
        }
    }

    /// [`Store::delete`](slipway_store::Store::delete), fenced when `fence` is given.
    pub(crate) async fn store_delete(
        &self,
        key: &str,
        expected: Option<Revision>,
        fence: Option<&Fence>,
    ) -> Result<Result<(Revision, KeyValue), StoreError>, ApiError> {
        let mut attempt = 0;
        loop {
            let result = match self.next_guard(fence, attempt).await? {
                Some(g) => self.store.delete_guarded(key, expected, &g).await,
                None => self.store.delete(key, expected).await,
            };
            match result {
                Err(StoreError::GuardFailed { .. }) => attempt += 1,
                other => return Ok(other),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_rejects() {
        let f = Fence::parse("kube-system/controllers/replica-a/1").expect("parse");
        assert_eq!(
            f,
            Fence {
                lease_namespace: "kube-system".into(),
                lease_name: "controllers".into(),
                holder: "replica-a/1".into(),
            }
        );
        assert_eq!(Fence::parse(&f.to_header()).expect("reparse"), f);
        for bad in ["", "ns", "ns/name", "ns/name/", "/name/h", "ns//h"] {
            let e = Fence::parse(bad).expect_err(bad);
            assert_eq!(e.code, 400, "{bad}");
        }
    }

    #[test]
    fn fenced_error_is_409_fenced() {
        let f = Fence::parse("ns/l/a").expect("parse");
        let e = fenced(&f, Some("b"));
        assert_eq!((e.code, e.reason), (409, FENCED_REASON));
        assert!(e.message.contains("\"b\""), "{}", e.message);
    }
}
