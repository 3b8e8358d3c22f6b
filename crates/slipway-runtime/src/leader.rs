//! Leader election on a `coordination.k8s.io/v1` `Lease`, with fencing.
//!
//! Candidates share one lease. The holder renews `renewTime` every `retry_period`; the others
//! watch it, and take it over (`holderIdentity` = themselves, `leaseTransitions` + 1) once it
//! has not changed for `leaseDurationSeconds` by *their own* clock (client-go's rule: no
//! clock comparison across machines). Every write is a compare-and-swap on the lease's
//! resourceVersion, so two candidates can never both win.
//!
//! Expiry alone does not stop a paused leader from writing after a takeover, so the leader's
//! work gets a **fenced** client ([`LeaderHandle::wait_leading`]): every write it makes carries
//! the lease and the leader's identity, and the registry refuses it, atomically at the store,
//! once the lease names someone else.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use slipway_client::{Api, Client, Fence, PostParams};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

/// How a candidate competes for a lease.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This candidate's unique identity (e.g. hostname + a random suffix).
    pub identity: String,
    /// How long a lease stays valid without renewal.
    pub lease_duration: Duration,
    /// The leader gives up leading when it could not renew for this long (< lease_duration).
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry.
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// The fence a leader with this configuration writes under.
    pub fn fence(&self) -> Fence {
        Fence {
            lease_namespace: self.namespace.clone(),
            lease_name: self.name.clone(),
            holder: self.identity.clone(),
        }
    }
}

/// What a candidate should do with the lease as it sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No lease exists: create it, holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Nobody holds it, or its holder let it expire: take it over.
    TakeOver,
    /// Someone else holds a live lease: wait.
    Wait,
}

/// The pure decision: `lease` as read, and how long it has been unchanged by our clock.
pub fn decide(
    lease: Option<&LeaseSpec>,
    me: &str,
    unchanged_for: Duration,
    default_duration: Duration,
) -> Decision {
    let Some(spec) = lease else {
        return Decision::Create;
    };
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == me => Decision::Renew,
        None | Some("") => Decision::TakeOver,
        Some(_) => {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(default_duration, Duration::from_secs);
            if unchanged_for >= duration {
                Decision::TakeOver
            } else {
                Decision::Wait
            }
        }
    }
}

/// One candidate. [`LeaderElector::try_acquire_or_renew`] is one step; [`LeaderElector::spawn`]
/// runs the loop.
pub struct LeaderElector {
    leases: Api<Lease>,
    client: Arc<dyn Client>,
    config: LeaseConfig,
    /// The lease's resourceVersion when we last saw it change, and when (our clock).
    observed: Option<(String, Instant)>,
    /// The holder the lease named when last read or written.
    holder: Option<String>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

impl LeaderElector {
    /// A candidate using `client` (unfenced) for the lease itself.
    pub fn new(client: Arc<dyn Client>, config: LeaseConfig) -> Self {
        Self {
            leases: Api::namespaced(Arc::clone(&client), &config.namespace),
            client,
            config,
            observed: None,
            holder: None,
        }
    }

    /// The client the leader's work must use: writes fenced on this candidate's lease.
    pub fn fenced_client(&self) -> Arc<dyn Client> {
        self.client.fenced(self.config.fence())
    }

    /// One round: read the lease, decide, write. `Ok(true)` when we hold the lease after it.
    pub async fn try_acquire_or_renew(&mut self) -> slipway_client::Result<bool> {
        let current = self.leases.get_opt(&self.config.name).await?;
        let rv = current
            .as_ref()
            .and_then(|l| l.metadata.resource_version.clone())
            .unwrap_or_default();
        let unchanged_for = match &self.observed {
            Some((seen, at)) if *seen == rv => at.elapsed(),
            _ => {
                self.observed = Some((rv, Instant::now()));
                Duration::ZERO
            }
        };
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        self.holder = spec.and_then(|s| s.holder_identity.clone());
        let decision = decide(
            spec,
            &self.config.identity,
            unchanged_for,
            self.config.lease_duration,
        );
        let duration =
            i32::try_from(self.config.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let result = match (decision, current) {
            (Decision::Wait, _) => return Ok(false),
            (Decision::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.config.identity.clone()),
                        lease_duration_seconds: Some(duration),
                        acquire_time: Some(now()),
                        renew_time: Some(now()),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                self.leases.create(&PostParams::default(), &lease).await
            }
            (_, None) => return Ok(false),
            (Decision::Renew, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                spec.renew_time = Some(now());
                spec.lease_duration_seconds = Some(duration);
                self.leases
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
            }
            (Decision::TakeOver, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                spec.holder_identity = Some(self.config.identity.clone());
                spec.lease_duration_seconds = Some(duration);
                spec.acquire_time = Some(now());
                spec.renew_time = Some(now());
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                self.leases
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(lease) => {
                let rv = lease.metadata.resource_version.unwrap_or_default();
                self.observed = Some((rv, Instant::now()));
                self.holder = Some(self.config.identity.clone());
                if decision == Decision::TakeOver {
                    tracing::info!(identity = %self.config.identity, lease = %self.config.name, "took over the lease");
                }
                Ok(true)
            }
            // Someone else wrote first: we lost this round.
            Err(e) if e.is_conflict() || e.is_already_exists() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The holder the lease named when last read (or written by us), if any.
    pub fn observed_holder(&self) -> Option<&str> {
        self.holder.as_deref()
    }

    /// Give the lease up if we hold it (so the next candidate need not wait for expiry).
    pub async fn release(&mut self) -> slipway_client::Result<()> {
        let Some(mut lease) = self.leases.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = Some(now());
        match self
            .leases
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_conflict() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Run the election loop in the background.
    pub fn spawn(mut self) -> LeaderHandle {
        let (state_tx, state_rx) = watch::channel(false);
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let fenced = self.fenced_client();
        let task = tokio::spawn(async move {
            let mut last_renew: Option<Instant> = None;
            loop {
                let held = match self.try_acquire_or_renew().await {
                    Ok(held) => held,
                    Err(e) => {
                        tracing::warn!(error = %e, "leader election: lease request failed");
                        false
                    }
                };
                let leading = *state_tx.borrow();
                if held {
                    last_renew = Some(Instant::now());
                    if !leading {
                        state_tx.send_replace(true);
                    }
                } else if leading
                    && (last_renew.is_none_or(|t| t.elapsed() >= self.config.renew_deadline)
                        || self
                            .observed_holder()
                            .is_some_and(|h| h != self.config.identity))
                {
                    tracing::warn!(identity = %self.config.identity, "leader election: lost the lease");
                    state_tx.send_replace(false);
                }
                tokio::select! {
                    _ = &mut stop_rx => break,
                    () = tokio::time::sleep(self.config.retry_period) => {}
                }
            }
            if *state_tx.borrow() {
                state_tx.send_replace(false);
                if let Err(e) = self.release().await {
                    tracing::warn!(error = %e, "leader election: release failed");
                }
            }
        });
        LeaderHandle {
            state: state_rx,
            stop: Some(stop_tx),
            task: Some(task),
            fenced,
        }
    }
}

/// A running election: observe leadership, get the fenced client, stop (releasing the lease).
pub struct LeaderHandle {
    state: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    fenced: Arc<dyn Client>,
}

impl std::fmt::Debug for LeaderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderHandle")
            .field("leading", &self.is_leader())
            .field("fence", &self.fenced.fence())
            .finish_non_exhaustive()
    }
}

impl LeaderHandle {
    /// True while this candidate leads (as far as it knows).
    pub fn is_leader(&self) -> bool {
        *self.state.borrow()
    }

    /// A channel that is `true` while leading (on-started / on-stopped leading).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.state.clone()
    }

    /// Wait until leading; returns the fenced client the leader's work must use.
    pub async fn wait_leading(&self) -> Arc<dyn Client> {
        let mut state = self.state.clone();
        let _ = state.wait_for(|l| *l).await;
        Arc::clone(&self.fenced)
    }

    /// Wait until no longer leading (lost the lease, or stopped).
    pub async fn wait_lost(&self) {
        let mut state = self.state.clone();
        let _ = state.wait_for(|l| !*l).await;
    }

    /// Stop competing; release the lease if held.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LeaderHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, secs: Option<i32>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            lease_duration_seconds: secs,
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn decision_table() {
        let d = Duration::from_secs(15);
        let s = Duration::from_secs;
        let cases: &[(Option<LeaseSpec>, Duration, Decision)] = &[
            (None, s(0), Decision::Create),
            (Some(spec(Some("me"), Some(10))), s(100), Decision::Renew),
            (Some(spec(None, Some(10))), s(0), Decision::TakeOver),
            (Some(spec(Some(""), Some(10))), s(0), Decision::TakeOver),
            (Some(spec(Some("other"), Some(10))), s(9), Decision::Wait),
            (
                Some(spec(Some("other"), Some(10))),
                s(10),
                Decision::TakeOver,
            ),
            // No duration in the lease: our default applies.
            (Some(spec(Some("other"), None)), s(14), Decision::Wait),
            (Some(spec(Some("other"), None)), s(15), Decision::TakeOver),
        ];
        for (lease, unchanged, want) in cases {
            assert_eq!(
                decide(lease.as_ref(), "me", *unchanged, d),
                *want,
                "{lease:?} unchanged for {unchanged:?}"
            );
        }
    }
}
