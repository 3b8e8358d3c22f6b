//! The orphan sweeper: provider objects tagged for a cluster or machine the platform no longer
//! has (a crash between a provider call and the write that records it, a cluster deleted while
//! the controller was down), and IPAddresses whose Machine is gone, are deleted once older than
//! a grace period, which covers a create whose record is still being written.

use std::collections::HashSet;
use std::sync::Arc;

use kube::{Resource, ResourceExt};
use slipway_api::cluster::Cluster;
use slipway_api::ipam::IPAddress;
use slipway_api::machine::Machine;
use slipway_client::{Api, ListParams};
use slipway_provider::{CLUSTER_TAG, MACHINE_TAG, ProviderError, Tags};

use crate::{Context, Error, delete_if_present, deleted, identity};

/// Sweep every `orphan_sweep`, the first half a period after the start, until the task is
/// aborted. The half-period phase keeps the sweep (a list of every provider machine) out of
/// the minutes of other passes that run every few minutes from the start, such as the
/// simulator's full pass, so that their costs do not stack.
pub async fn run(ctx: Arc<Context>) {
    let period = ctx.config.orphan_sweep;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period / 2, period);
    loop {
        tick.tick().await;
        match sweep(&ctx).await {
            Ok(n) if n > 0 => tracing::info!(deleted = n, "orphan sweep deleted provider objects"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "orphan sweep failed"),
        }
    }
}

fn cluster_key(c: &Cluster) -> String {
    identity(&c.namespace().unwrap_or_default(), &c.name_any())
}

/// `namespace/name` and uid, as provider machines are tagged.
fn machine_key(m: &Machine) -> (String, String) {
    (
        format!("{}/{}", m.namespace().unwrap_or_default(), m.name_any()),
        m.uid().unwrap_or_default(),
    )
}

/// The Clusters and Machines the platform has: the Cluster controller's caches, looked up per
/// provider object (a sweep of a large fleet then copies nothing), or lists from the API.
enum Known {
    Cached {
        clusters: slipway_runtime::Store<Cluster>,
        machines: slipway_runtime::Store<Machine>,
    },
    Listed {
        clusters: HashSet<String>,
        machines: HashSet<(String, String)>,
    },
}

impl Known {
    /// Whether Cluster `identity` (`namespace.name`, as tagged) exists.
    fn cluster(&self, identity: &str) -> bool {
        match self {
            Known::Cached { clusters, .. } => identity.split_once('.').is_some_and(|(ns, name)| {
                clusters
                    .get(&slipway_runtime::ObjectKey::namespaced(ns, name))
                    .is_some()
            }),
            Known::Listed { clusters, .. } => clusters.contains(identity),
        }
    }

    /// Whether Machine `key` (`namespace/name`, as tagged) exists with uid `uid`.
    fn machine(&self, key: &str, uid: &str) -> bool {
        match self {
            Known::Cached { machines, .. } => key.split_once('/').is_some_and(|(ns, name)| {
                machines
                    .get(&slipway_runtime::ObjectKey::namespaced(ns, name))
                    .is_some_and(|m| m.metadata.uid.as_deref() == Some(uid))
            }),
            Known::Listed { machines, .. } => {
                machines.contains(&(key.to_string(), uid.to_string()))
            }
        }
    }
}

/// One sweep; returns how many provider objects it deleted.
pub async fn sweep(ctx: &Context) -> Result<usize, Error> {
    let clusters: Api<Cluster> = Api::all(Arc::clone(&ctx.client));
    let machines: Api<Machine> = Api::all(Arc::clone(&ctx.client));
    // What the platform has, listed after the provider so that anything created before the
    // lists is in them.
    let cloud_machines = ctx.provider.list_machines(&Tags::new()).await?;
    let addresses: Api<IPAddress> = Api::all(Arc::clone(&ctx.client));
    let claims = addresses.list(&ListParams::default()).await?.items;
    let lbs = ctx.provider.list_load_balancers(&Tags::new()).await?;
    let subnets = ctx.provider.list_subnets(&Tags::new()).await?;
    let networks = ctx.provider.list_networks(&Tags::new()).await?;
    // From the Cluster controller's caches once they have listed (they lag the store by
    // moments; the grace period is minutes), else from the API.
    let cached = ctx
        .clusters
        .get()
        .zip(ctx.machines.get())
        .filter(|(c, m)| c.has_synced() && m.has_synced());
    let known = match cached {
        Some((c, m)) => Known::Cached {
            clusters: c.clone(),
            machines: m.clone(),
        },
        None => Known::Listed {
            clusters: clusters
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .map(cluster_key)
                .collect(),
            machines: machines
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .map(machine_key)
                .collect(),
        },
    };
    let now = jiff::Timestamp::now();
    let grace = i64::try_from(ctx.config.orphan_grace.as_secs()).unwrap_or(i64::MAX);
    let old = |t: jiff::Timestamp| now.as_second() - t.as_second() >= grace;
    let mut count = 0;
    for m in cloud_machines {
        if m.status.phase.is_terminal() || !old(m.status.created_at) {
            continue;
        }
        let Some(cluster) = m.spec.tags.get(CLUSTER_TAG) else {
            continue;
        };
        let owned = match m.spec.tags.get(MACHINE_TAG) {
            Some(key) => known.machine(key, &m.idempotency_key),
            None => known.cluster(cluster),
        };
        if !owned {
            tracing::info!(machine = %m.id, cluster, "deleting an orphaned provider machine");
            deleted(ctx.provider.delete_machine(&m.id).await.map(|_| ()))?;
            count += 1;
        }
    }
    // Addresses whose Machine is gone (its delete releases them; this catches the rest).
    for a in claims {
        let holder = (
            format!("{}/{}", a.spec.machine.namespace, a.spec.machine.name),
            a.spec.machine.uid.clone(),
        );
        let created = a.meta().creation_timestamp.as_ref().map_or(now, |t| t.0);
        if known.machine(&holder.0, &holder.1) || !old(created) {
            continue;
        }
        tracing::info!(address = %a.spec.address, machine = %holder.0, "releasing an orphaned address");
        if delete_if_present(&addresses, &a.name_any()).await? {
            count += 1;
        }
    }
    let orphaned = |tags: &Tags| tags.get(CLUSTER_TAG).is_some_and(|c| !known.cluster(c));
    for lb in lbs
        .iter()
        .filter(|lb| orphaned(&lb.spec.tags) && old(lb.created_at))
    {
        deleted(ctx.provider.delete_load_balancer(&lb.id).await)?;
        count += 1;
    }
    // Subnets and networks go once nothing uses them (machines terminate first).
    for s in subnets
        .iter()
        .filter(|s| orphaned(&s.spec.tags) && old(s.created_at))
    {
        match ctx.provider.delete_subnet(&s.id).await {
            Ok(()) => count += 1,
            Err(ProviderError::NotFound { .. } | ProviderError::InUse { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    for n in networks
        .iter()
        .filter(|n| orphaned(&n.spec.tags) && old(n.created_at))
    {
        match ctx.provider.delete_network(&n.id).await {
            Ok(()) => count += 1,
            Err(ProviderError::NotFound { .. } | ProviderError::InUse { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(count)
}
