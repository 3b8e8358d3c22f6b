//! Cluster lifecycle decisions, as pure functions the controllers call with what they observed.
//!
//! - [`resolve`]: a Cluster's spec against the provider's catalog: every default filled
//!   (zones, machine types), every impossible ask refused with its field path, and the result
//!   as machine [`Group`]s (the control plane and each node pool) with the template hash that
//!   says when a machine must be replaced rather than updated in place.
//! - [`plan`]: how one group moves toward its desired size: zone-balanced creates and
//!   deletes, and a rolling replacement of outdated machines within maxSurge/maxUnavailable.
//! - [`cost`]: what a set of machines costs per hour at catalog prices.
//! - [`health`]: when a running machine failed its cluster (a node that never joined, or
//!   stayed NotReady too long).
//! - [`admission`]: the Cluster admission plugin: ClusterClass defaults and policy, and the
//!   catalog's refusals, at apply time.
//!
//! No I/O, no clock: the controllers in `slipway-controllers` own both.

pub mod admission;
pub mod health;
pub mod plan;
pub mod resolve;

pub use admission::ClusterAdmission;
pub use plan::{GroupPlan, Limits, Member, plan_group};
pub use resolve::{Desired, Group, Problem, resolve};

use slipway_provider::{CapacityType, Catalog};

/// Hourly price of machines `(machine type, capacity type)` at catalog prices, in US dollars.
/// Machine types the catalog does not know cost nothing (they cannot have been created).
pub fn cost<'a>(
    catalog: &Catalog,
    machines: impl IntoIterator<Item = (&'a str, CapacityType)>,
) -> f64 {
    let total: f64 = machines
        .into_iter()
        .filter_map(|(t, c)| catalog.machine_type(t).map(|mt| mt.hourly_price(c)))
        .sum();
    (total * 10_000.0).round() / 10_000.0
}
