//! The objects a provider manages: catalog, networks, subnets, load balancers, machines.
//!
//! All types serialize as camelCase JSON so that an HTTP provider and the simulator's files
//! share one wire format.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Free-form key/value tags on every object; the way controllers find what they own.
pub type Tags = BTreeMap<String, String>;

/// The tag naming the Slipway cluster an object belongs to (`namespace/name`).
pub const CLUSTER_TAG: &str = "slipway.dev/cluster";
/// The tag naming the node pool (or `control-plane`) a machine belongs to.
pub const POOL_TAG: &str = "slipway.dev/pool";
/// The tag naming the Slipway `Machine` object a provider machine backs.
pub const MACHINE_TAG: &str = "slipway.dev/machine";

/// True when `tags` contains every pair of `selector` (an empty selector matches everything).
pub fn tags_match(tags: &Tags, selector: &Tags) -> bool {
    selector.iter().all(|(k, v)| tags.get(k) == Some(v))
}

// ---------------------------------------------------------------------------------------------
// catalog

/// What a provider offers: regions, their zones, and machine types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Catalog {
    pub regions: Vec<Region>,
    pub machine_types: Vec<MachineType>,
}

impl Catalog {
    /// The region called `name`.
    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name == name)
    }

    /// The zone called `name` with its region.
    pub fn zone(&self, name: &str) -> Option<(&Region, &Zone)> {
        self.regions
            .iter()
            .find_map(|r| r.zones.iter().find(|z| z.name == name).map(|z| (r, z)))
    }

    /// The machine type called `name`.
    pub fn machine_type(&self, name: &str) -> Option<&MachineType> {
        self.machine_types.iter().find(|t| t.name == name)
    }

    /// True when zone `zone` offers machine type `machine_type`.
    pub fn zone_offers(&self, zone: &str, machine_type: &str) -> bool {
        self.zone(zone)
            .is_some_and(|(_, z)| z.machine_types.iter().any(|t| t == machine_type))
    }
}

/// A region: a set of zones sharing a network space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Region {
    pub name: String,
    pub zones: Vec<Zone>,
}

/// An availability zone and the machine types it offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Zone {
    pub name: String,
    pub machine_types: Vec<String>,
}

/// The family of a machine type: what it is sized for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MachineFamily {
    General,
    Compute,
    Memory,
    Gpu,
}

/// CPU architecture, named as Kubernetes names it (`kubernetes.io/arch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    /// The `kubernetes.io/arch` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }
}

/// The accelerators attached to a machine type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gpu {
    pub count: u32,
    pub model: String,
}

/// A machine type: size, architecture and hourly prices in USD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineType {
    pub name: String,
    pub family: MachineFamily,
    pub vcpu: u32,
    pub memory_mib: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<Gpu>,
    pub arch: Arch,
    pub on_demand_hourly: f64,
    pub spot_hourly: f64,
}

impl MachineType {
    /// The hourly price for `capacity`.
    pub fn hourly_price(&self, capacity: CapacityType) -> f64 {
        match capacity {
            CapacityType::OnDemand => self.on_demand_hourly,
            CapacityType::Spot => self.spot_hourly,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// networks, subnets, load balancers

/// What to create: a network (VPC) in a region. Networks are identified for idempotency by
/// `(region, name)`: creating one that exists with the same CIDR returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    pub name: String,
    pub region: String,
    pub cidr: Ipv4Net,
    #[serde(default)]
    pub tags: Tags,
}

/// A network as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    pub id: String,
    pub spec: NetworkSpec,
    pub created_at: Timestamp,
}

/// What to create: a subnet of a network in one zone. Identified for idempotency by
/// `(network, name)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubnetSpec {
    pub name: String,
    pub network_id: String,
    pub zone: String,
    pub cidr: Ipv4Net,
    #[serde(default)]
    pub tags: Tags,
}

/// A subnet with its address accounting. Like the large clouds, five addresses of every
/// subnet are reserved (network, router, DNS, future use, broadcast).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subnet {
    pub id: String,
    pub spec: SubnetSpec,
    /// Usable addresses in the CIDR.
    pub total_addresses: u64,
    /// Usable addresses not allocated to a machine.
    pub available_addresses: u64,
    pub created_at: Timestamp,
}

/// Addresses of a subnet the provider keeps for itself.
pub const RESERVED_ADDRESSES_PER_SUBNET: u64 = 5;

/// Usable addresses of `cidr` after the reserved ones (0 for tiny subnets).
pub fn usable_addresses(cidr: Ipv4Net) -> u64 {
    let size = 1u64 << (32 - u32::from(cidr.prefix_len()));
    size.saturating_sub(RESERVED_ADDRESSES_PER_SUBNET)
}

/// Whether a load balancer is reachable from outside the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum LoadBalancerScheme {
    #[default]
    Internal,
    InternetFacing,
}

/// What to create: a TCP load balancer (a cluster's API endpoint). Identified for idempotency
/// by `(region, name)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerSpec {
    pub name: String,
    pub region: String,
    #[serde(default)]
    pub scheme: LoadBalancerScheme,
    /// The TCP port it listens on (6443 for a Kubernetes API).
    pub port: u16,
    /// Subnets it places its nodes in (one per zone).
    #[serde(default)]
    pub subnet_ids: Vec<String>,
    #[serde(default)]
    pub tags: Tags,
}

/// A load balancer with its endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancer {
    pub id: String,
    pub spec: LoadBalancerSpec,
    /// The DNS name clients use.
    pub dns_name: String,
    /// The address the DNS name resolves to.
    pub address: Ipv4Addr,
    pub created_at: Timestamp,
    /// Where clients reach the listener, when that is not `https://<dns name>:<port>`: the
    /// simulator serves every cluster's API on one address, routed by path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// PEM bundle of the CA that signs the listener's certificate, when the provider
    /// terminates TLS itself (the simulator); otherwise clients trust the cluster's own CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

impl LoadBalancer {
    /// The URL clients use (a kubeconfig's `server`): [`LoadBalancer::url`] when the provider
    /// gives one, else `https://<dns name>:<port>`.
    pub fn endpoint(&self) -> String {
        self.url
            .clone()
            .unwrap_or_else(|| format!("https://{}:{}", self.dns_name, self.spec.port))
    }
}

// ---------------------------------------------------------------------------------------------
// machines

/// How a machine is paid for: on-demand, or spot (cheaper, may be interrupted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CapacityType {
    #[default]
    OnDemand,
    Spot,
}

/// What to create: one machine (VM/host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineSpec {
    pub region: String,
    pub zone: String,
    pub machine_type: String,
    #[serde(default)]
    pub capacity_type: CapacityType,
    pub subnet_id: String,
    /// The machine image (OS + kubelet build) it boots.
    pub image: String,
    /// The kubelet version the image runs, e.g. `v1.33.4`.
    pub kubelet_version: String,
    #[serde(default)]
    pub tags: Tags,
    /// Opaque bootstrap data (cloud-init, a join token...) handed to the machine. Shared:
    /// it is most of a machine's size and never changes, and lists copy machines.
    #[serde(default)]
    pub user_data: std::sync::Arc<str>,
    /// The private address to give the machine, from the platform's IPAM; unset: the subnet
    /// picks one. A provider refuses an address another live machine holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<std::net::Ipv4Addr>,
}

/// Where a machine is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub enum MachinePhase {
    /// Accepted; waiting for a host.
    Pending,
    /// A host is booting the image.
    Provisioning,
    /// Booted and reachable.
    Running,
    /// Not running through no request of the owner (its zone is down); it keeps its address
    /// and may come back. `reason` says why.
    Failed,
    /// Shutting down, after a delete or an interruption.
    Terminating,
    /// Gone; only the record remains (for a while).
    Terminated,
}

impl MachinePhase {
    /// True once the machine will never run again.
    pub fn is_terminal(self) -> bool {
        matches!(self, MachinePhase::Terminating | MachinePhase::Terminated)
    }
}

/// Why a machine is not (or no longer) running when nobody asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub enum MachineReason {
    /// The owner deleted it.
    Deleted,
    /// The host failed to boot it.
    ProvisioningFailed,
    /// The provider reclaimed a spot machine.
    SpotInterruption,
    /// Its zone is down.
    ZoneOutage,
}

/// A machine's observed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineStatus {
    pub phase: MachinePhase,
    /// The Kubernetes `spec.providerID` of the node it becomes.
    pub provider_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<Ipv4Addr>,
    pub created_at: Timestamp,
    /// When the phase last changed.
    pub phase_changed_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<MachineReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A machine as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Machine {
    pub id: String,
    /// The key it was created with; creating again with it returns this machine.
    pub idempotency_key: String,
    pub spec: MachineSpec,
    pub status: MachineStatus,
}

/// An in-place change to a machine: a new image or kubelet version without replacing it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachinePatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet_version: Option<String>,
}

impl MachinePatch {
    /// True when the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.image.is_none() && self.kubelet_version.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_addresses_table() {
        let cases = [
            ("10.0.0.0/16", 65531),
            ("10.0.0.0/24", 251),
            ("10.0.0.0/28", 11),
            ("10.0.0.0/30", 0),
            ("10.0.0.1/32", 0),
        ];
        for (cidr, want) in cases {
            let net: Ipv4Net = cidr.parse().expect("cidr");
            assert_eq!(usable_addresses(net), want, "{cidr}");
        }
    }

    #[test]
    fn tag_selectors() {
        let tags: Tags = [("a", "1"), ("b", "2")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let sel = |pairs: &[(&str, &str)]| -> Tags {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(tags_match(&tags, &sel(&[])));
        assert!(tags_match(&tags, &sel(&[("a", "1")])));
        assert!(tags_match(&tags, &sel(&[("a", "1"), ("b", "2")])));
        assert!(!tags_match(&tags, &sel(&[("a", "2")])));
        assert!(!tags_match(&tags, &sel(&[("c", "1")])));
    }

    #[test]
    fn wire_names() {
        let json = serde_json::to_value(CapacityType::OnDemand).expect("json");
        assert_eq!(json, serde_json::json!("on-demand"));
        let json = serde_json::to_value(MachinePhase::Running).expect("json");
        assert_eq!(json, serde_json::json!("Running"));
        let json = serde_json::to_value(Arch::Arm64).expect("json");
        assert_eq!(json, serde_json::json!("arm64"));
    }
}
