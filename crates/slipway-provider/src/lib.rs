//! The infrastructure boundary: the [`Provider`] trait every controller reaches machines,
//! networks and load balancers through, the objects it manages ([`types`]), its typed errors
//! ([`ProviderError`]), and (feature `conformance`) the suite any implementation must pass.
//!
//! The crate does no I/O. Implementations live elsewhere: the simulated cloud
//! (`slipway-sim`, in-process or over HTTP), later a Cluster API bridge and managed clouds.
//!
//! Contract every implementation keeps (and the conformance suite checks):
//! - **Idempotent creation.** Networks and load balancers are keyed by `(region, name)`,
//!   subnets by `(network, name)`, machines by an idempotency key chosen by the caller: creating
//!   the same thing twice returns the first one, never a second object. Reusing a key with a
//!   different spec is an [`ProviderError::InvalidRequest`].
//! - **Ownership by tags.** Lists filter by tag selectors (every pair must match); controllers
//!   tag what they create with [`types::CLUSTER_TAG`] (and [`types::POOL_TAG`],
//!   [`types::MACHINE_TAG`]) and find it again by those tags after a restart.
//! - **Asynchronous machines.** `create_machine` returns at once (phase `Pending`); the machine
//!   reaches `Running` later. `delete_machine` is idempotent: it moves the machine to
//!   `Terminating` and later `Terminated`; deleting again returns the machine as it is.
//!   A terminated machine's record stays readable for a while, then `get` says `NotFound`.
//! - **Validation before effect.** A request naming an unknown region, zone or machine type,
//!   or a zone that does not offer the type, fails with `InvalidRequest` and changes nothing.

use async_trait::async_trait;

#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
pub mod types;

pub use error::{ProviderError, ResourceKind};
pub use types::*;

/// Results of provider calls.
pub type Result<T, E = ProviderError> = std::result::Result<T, E>;

/// The only way Slipway reaches infrastructure.
///
/// Every method may fail with [`ProviderError::Throttled`] (back off and retry),
/// [`ProviderError::Transport`] or [`ProviderError::Internal`], besides the errors listed on it.
#[async_trait]
pub trait Provider: Send + Sync {
    /// A short name for logs ("sim", "http-sim", ...).
    fn name(&self) -> &str;

    /// Regions, zones, machine types and which zone offers which type.
    async fn catalog(&self) -> Result<Catalog>;

    // -- networks ----------------------------------------------------------------------------

    /// Creates a network, or returns the one with the same `(region, name)`.
    /// `InvalidRequest` for an unknown region, or when that name exists with another CIDR.
    async fn create_network(&self, spec: NetworkSpec) -> Result<Network>;
    /// The network with this id; `NotFound` otherwise.
    async fn get_network(&self, id: &str) -> Result<Network>;
    /// Networks whose tags match `selector`, ordered by id.
    async fn list_networks(&self, selector: &Tags) -> Result<Vec<Network>>;
    /// Deletes a network. `InUse` while it has subnets or load balancers; `NotFound` if gone.
    async fn delete_network(&self, id: &str) -> Result<()>;

    // -- subnets -----------------------------------------------------------------------------

    /// Creates a subnet, or returns the one with the same `(network, name)`. `InvalidRequest`
    /// when the zone is not in the network's region, the CIDR is outside the network's or
    /// overlaps another subnet, or the name exists with another zone or CIDR.
    async fn create_subnet(&self, spec: SubnetSpec) -> Result<Subnet>;
    /// The subnet with this id, with its current address accounting.
    async fn get_subnet(&self, id: &str) -> Result<Subnet>;
    /// Subnets whose tags match `selector`, ordered by id.
    async fn list_subnets(&self, selector: &Tags) -> Result<Vec<Subnet>>;
    /// Deletes a subnet. `InUse` while machines that are not terminated use it.
    async fn delete_subnet(&self, id: &str) -> Result<()>;

    // -- load balancers ----------------------------------------------------------------------

    /// Creates a load balancer, or returns the one with the same `(region, name)`.
    async fn create_load_balancer(&self, spec: LoadBalancerSpec) -> Result<LoadBalancer>;
    /// The load balancer with this id.
    async fn get_load_balancer(&self, id: &str) -> Result<LoadBalancer>;
    /// Load balancers whose tags match `selector`, ordered by id.
    async fn list_load_balancers(&self, selector: &Tags) -> Result<Vec<LoadBalancer>>;
    /// Deletes a load balancer; `NotFound` if gone.
    async fn delete_load_balancer(&self, id: &str) -> Result<()>;

    // -- machines ----------------------------------------------------------------------------

    /// Creates a machine, or returns the machine created earlier with `idempotency_key`
    /// (whatever its phase). Errors: `InvalidRequest` (unknown region/zone/type/subnet, a zone
    /// that does not offer the type, a key reused with another spec), `QuotaExceeded`,
    /// `CapacityUnavailable`, `AddressesExhausted`.
    async fn create_machine(&self, idempotency_key: &str, spec: MachineSpec) -> Result<Machine>;
    /// The machine with this id (terminated ones for a while after they terminated).
    async fn get_machine(&self, id: &str) -> Result<Machine>;
    /// Machines whose tags match `selector`, ordered by id, terminated ones included while
    /// they are remembered.
    async fn list_machines(&self, selector: &Tags) -> Result<Vec<Machine>>;
    /// Starts terminating a machine and returns it; idempotent. `NotFound` if unknown.
    async fn delete_machine(&self, id: &str) -> Result<Machine>;
    /// Changes a machine's image and/or kubelet version in place. `InvalidRequest` for an
    /// empty patch or a machine that is terminating or terminated.
    async fn patch_machine(&self, id: &str, patch: MachinePatch) -> Result<Machine>;

    /// Asks to be told, as it happens, of every machine the cloud stops or fails on its own
    /// (a spot interruption, a failure, a zone outage; not a termination asked for): `notify`
    /// gets each such machine, once it is in its new phase. Like a cloud's instance
    /// state-change notifications (Karpenter follows EC2's through an interruption queue).
    /// Returns false when the provider has no such feed, the default: then a machine that
    /// is not polled learns of it only through its workload cluster's Node or a resync.
    /// Delivery is best effort (a notification may be lost); it speeds up, it does not
    /// replace, level-triggered reconciles.
    fn watch_interruptions(&self, notify: InterruptionHandler) -> bool {
        let _ = notify;
        false
    }
}

/// What [`Provider::watch_interruptions`] calls with each interrupted machine.
pub type InterruptionHandler = Box<dyn Fn(&Machine) + Send + Sync>;
