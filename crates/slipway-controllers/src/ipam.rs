//! Addresses from IPPools: a Machine about to be created in a region (or zone) some IPPool
//! covers gets an address from it, claimed as an IPAddress object named after the address, so
//! the store refuses a second claim of the same address whatever the race. The address is
//! handed to the provider in the machine spec; it goes back when the provider machine is gone.
//!
//! The IPPool controller keeps each pool's status: total, allocated, free, and an `Exhausted`
//! condition that names the pool.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use kube::{Resource, ResourceExt};
use slipway_api::ipam::{
    AddressSet, IPAddress, IPAddressSpec, IPPool, IPPoolStatus, MACHINE_UID_LABEL,
    MachineReference, POOL_LABEL, address_name,
};
use slipway_api::machine::Machine;
use slipway_client::{Api, ListParams, PostParams};
use slipway_runtime::{Action, Controller, InformerConfig, ObjectKey};

use crate::{Context, Error, delete_if_present, set_condition, write_status};

/// Where a machine's address comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Allocation {
    /// No IPPool covers the machine's region and zone: the provider's subnet picks.
    NoPool,
    /// The machine holds this address (claimed now or before).
    Held { address: Ipv4Addr, pool: String },
    /// Every pool covering the machine is full; their names.
    Exhausted(Vec<String>),
}

/// The valid pools covering `region`/`zone`, by name.
async fn pools_for(
    ctx: &Context,
    region: &str,
    zone: &str,
) -> Result<Vec<(String, AddressSet)>, Error> {
    let pools: Api<IPPool> = Api::all(Arc::clone(&ctx.client));
    let mut found: Vec<(String, AddressSet)> = pools
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|p| p.meta().deletion_timestamp.is_none())
        .filter(|p| p.spec.region == region && p.spec.zone.as_deref().is_none_or(|z| z == zone))
        .filter_map(|p| Some((p.name_any(), AddressSet::parse(&p.spec).ok()?)))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// The address `machine` (in `region`) holds or gets now.
pub(crate) async fn allocate(
    ctx: &Context,
    machine: &Machine,
    region: &str,
) -> Result<Allocation, Error> {
    let pools = pools_for(ctx, region, &machine.spec.zone).await?;
    if pools.is_empty() {
        return Ok(Allocation::NoPool);
    }
    let uid = machine.uid().unwrap_or_default();
    let addresses: Api<IPAddress> = Api::all(Arc::clone(&ctx.client));
    // Claimed before (by a reconcile that did not get to record it)?
    for held in addresses
        .list(&ListParams::default().labels(&format!("{MACHINE_UID_LABEL}={uid}")))
        .await?
        .items
    {
        if let Ok(ip) = held.spec.address.parse::<Ipv4Addr>()
            && pools
                .iter()
                .any(|(name, set)| *name == held.spec.pool && set.contains(ip))
        {
            return Ok(Allocation::Held {
                address: ip,
                pool: held.spec.pool,
            });
        }
    }
    for (pool, set) in &pools {
        // Taken: by any pool, so overlapping pools never hand out one address twice.
        let taken: HashSet<String> = addresses
            .list(&ListParams::default().labels(&format!("{POOL_LABEL}={pool}")))
            .await?
            .items
            .into_iter()
            .map(|a| a.name_any())
            .collect();
        for ip in set.addresses() {
            let name = address_name(ip);
            if taken.contains(&name) {
                continue;
            }
            let claim = IPAddress {
                metadata: kube::api::ObjectMeta {
                    name: Some(name),
                    labels: Some(BTreeMap::from([
                        (POOL_LABEL.to_string(), pool.clone()),
                        (MACHINE_UID_LABEL.to_string(), uid.clone()),
                    ])),
                    ..Default::default()
                },
                spec: IPAddressSpec {
                    address: ip.to_string(),
                    pool: pool.clone(),
                    machine: MachineReference {
                        namespace: machine.namespace().unwrap_or_default(),
                        name: machine.name_any(),
                        uid: uid.clone(),
                    },
                },
            };
            match addresses.create(&PostParams::default(), &claim).await {
                Ok(_) => {
                    return Ok(Allocation::Held {
                        address: ip,
                        pool: pool.clone(),
                    });
                }
                // Someone else holds it (another pool's machine, a concurrent claim): next.
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(Allocation::Exhausted(
        pools.into_iter().map(|(name, _)| name).collect(),
    ))
}

/// Give back every address machine `uid` holds.
pub(crate) async fn release(ctx: &Context, uid: &str) -> Result<(), Error> {
    let addresses: Api<IPAddress> = Api::all(Arc::clone(&ctx.client));
    for held in addresses
        .list(&ListParams::default().labels(&format!("{MACHINE_UID_LABEL}={uid}")))
        .await?
        .items
    {
        delete_if_present(&addresses, &held.name_any()).await?;
    }
    Ok(())
}

/// The IPPool controller: a pool's status follows its IPAddresses.
pub fn controller(ctx: Arc<Context>) -> Controller<IPPool> {
    Controller::new(
        "ippool",
        Api::all(Arc::clone(&ctx.client)),
        InformerConfig::default(),
    )
    .watches(
        Api::<IPAddress>::all(Arc::clone(&ctx.client)),
        InformerConfig::default(),
        |a: &IPAddress| vec![ObjectKey::cluster(&a.spec.pool)],
    )
    .with_metrics(ctx.metrics.clone())
    .with_config(ctx.controller_config())
}

/// After an error: the key's backoff.
pub fn error_policy(pool: &Arc<IPPool>, error: &Error, _: &Arc<Context>) -> Action {
    tracing::warn!(pool = %pool.name_any(), %error, "ippool reconcile failed");
    Action::backoff()
}

/// Count a pool's addresses into its status.
pub async fn reconcile(pool: Arc<IPPool>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = pool.name_any();
    let pools: Api<IPPool> = Api::all(Arc::clone(&ctx.client));
    let addresses: Api<IPAddress> = Api::all(Arc::clone(&ctx.client));
    let generation = pool.meta().generation;
    let mut status = pool.status.clone().unwrap_or_default();
    let mut conditions = status.conditions.take().unwrap_or_default();
    let Ok(set) = AddressSet::parse(&pool.spec) else {
        return Ok(Action::await_change());
    };
    let allocated = addresses
        .list(&ListParams::default().labels(&format!("{POOL_LABEL}={name}")))
        .await?
        .items
        .iter()
        .filter_map(|a| a.spec.address.parse::<Ipv4Addr>().ok())
        .filter(|ip| set.contains(*ip))
        .count() as u64;
    let total = set.total();
    let free = total.saturating_sub(allocated);
    let exhausted = free == 0;
    set_condition(
        &mut conditions,
        "Exhausted",
        exhausted,
        if exhausted {
            "NoFreeAddress"
        } else {
            "FreeAddresses"
        },
        if exhausted {
            format!("IPPool {name} has no free address ({allocated} of {total} allocated)")
        } else {
            format!("{free} of {total} addresses free")
        },
        generation,
    );
    let count = |n: u64| Some(i64::try_from(n).unwrap_or(i64::MAX));
    let new = IPPoolStatus {
        total: count(total),
        allocated: count(allocated),
        free: count(free),
        conditions: Some(conditions),
        observed_generation: generation,
    };
    write_status(&pools, &*pool, pool.status.as_ref(), new).await?;
    Ok(Action::await_change())
}
