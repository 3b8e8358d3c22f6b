//! IP address management: `slipway.dev/v1alpha1` **IPPool** and **IPAddress**, both
//! cluster-scoped.
//!
//! An IPPool is a set of addresses machines of one region (or one zone) get theirs from: CIDRs
//! minus exclusions. Each address handed out is an IPAddress object *named after the address*
//! (`10-20-0-5`), so the store's create-if-absent makes it impossible to hand one address to
//! two machines, whatever races, crashes or overlapping pools there are: the second create of
//! a name fails. The machine controller deletes its IPAddress once its provider machine is
//! gone; the orphan sweeper deletes those whose Machine no longer exists.

use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::Ipv4Net;
use kube_core::CustomResourceExt;
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use slipway_apimachinery::resource::{ResourceDef, Strategy};
use slipway_apimachinery::{FieldError, FieldPath};

use crate::cluster::Condition;
use crate::{resource, schema};

/// Label on an IPAddress naming its pool.
pub const POOL_LABEL: &str = "slipway.dev/ip-pool";
/// Label on an IPAddress holding the uid of the Machine it belongs to.
pub const MACHINE_UID_LABEL: &str = "slipway.dev/machine-uid";

/// Addresses machines of one region or zone get theirs from.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "slipway.dev",
    version = "v1alpha1",
    kind = "IPPool",
    plural = "ippools",
    singular = "ippool",
    shortname = "ipp",
    category = "slipway",
    status = "IPPoolStatus",
    doc = "Addresses machines of one region (or one zone) get theirs from: CIDRs minus exclusions. Cluster-scoped.",
    printcolumn = r#"{"name": "Region", "type": "string", "jsonPath": ".spec.region", "description": "Region whose machines use the pool"}"#,
    printcolumn = r#"{"name": "Zone", "type": "string", "jsonPath": ".spec.zone", "description": "Zone whose machines use the pool (empty: every zone of the region)"}"#,
    printcolumn = r#"{"name": "Total", "type": "integer", "jsonPath": ".status.total", "description": "Addresses the pool can hand out"}"#,
    printcolumn = r#"{"name": "Allocated", "type": "integer", "jsonPath": ".status.allocated", "description": "Addresses held by machines"}"#,
    printcolumn = r#"{"name": "Free", "type": "integer", "jsonPath": ".status.free", "description": "Addresses left"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp", "description": "Time since the pool was created"}"#,
    crates(
        kube_core = "::kube_core",
        k8s_openapi = "::k8s_openapi",
        schemars = "::schemars",
        serde = "::serde",
        serde_json = "::serde_json"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct IPPoolSpec {
    /// Region whose machines get addresses from the pool, e.g. `eu-west-1`.
    pub region: String,

    /// Zone whose machines get addresses from the pool; unset: every zone of the region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,

    /// IPv4 CIDRs the addresses come from, e.g. `10.20.0.0/24`. A block's network and
    /// broadcast addresses are never handed out.
    pub cidrs: Vec<String>,

    /// Addresses or CIDRs never handed out, e.g. `10.20.0.1` (a gateway) or `10.20.0.0/28`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Vec<String>>,
}

/// How much of a pool is used.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IPPoolStatus {
    /// Addresses the pool can hand out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    /// Addresses held by machines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated: Option<i64>,
    /// Addresses left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free: Option<i64>,
    /// `Exhausted`: True when no address is left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One address held by one machine; named after the address (`10-20-0-5`).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "slipway.dev",
    version = "v1alpha1",
    kind = "IPAddress",
    plural = "ipaddresses",
    singular = "ipaddress",
    shortname = "ipa",
    category = "slipway",
    doc = "An address a Machine holds, from an IPPool. Named after the address, so no address is ever held twice. Cluster-scoped.",
    printcolumn = r#"{"name": "Address", "type": "string", "jsonPath": ".spec.address", "description": "The address"}"#,
    printcolumn = r#"{"name": "Pool", "type": "string", "jsonPath": ".spec.pool", "description": "The pool it comes from"}"#,
    printcolumn = r#"{"name": "Machine", "type": "string", "jsonPath": ".spec.machine.name", "description": "The Machine holding it"}"#,
    printcolumn = r#"{"name": "Namespace", "type": "string", "jsonPath": ".spec.machine.namespace", "description": "The Machine's namespace"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp", "description": "Time since it was handed out"}"#,
    crates(
        kube_core = "::kube_core",
        k8s_openapi = "::k8s_openapi",
        schemars = "::schemars",
        serde = "::serde",
        serde_json = "::serde_json"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressSpec {
    /// The address, e.g. `10.20.0.5`.
    pub address: String,
    /// The IPPool it comes from.
    pub pool: String,
    /// The Machine holding it.
    pub machine: MachineReference,
}

/// A Machine, by namespace, name and uid.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineReference {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// The IPAddress object name of `ip`: `10.20.0.5` -> `10-20-0-5`.
pub fn address_name(ip: Ipv4Addr) -> String {
    ip.to_string().replace('.', "-")
}

/// A pool's blocks and exclusions, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressSet {
    blocks: Vec<Ipv4Net>,
    exclude: Vec<Ipv4Net>,
}

impl AddressSet {
    /// Parse a pool's spec; problems name the field.
    pub fn parse(spec: &IPPoolSpec) -> Result<Self, Vec<FieldError>> {
        let path = FieldPath::root("spec");
        let mut errs = Vec::new();
        let mut blocks = Vec::new();
        let mut exclude = Vec::new();
        if spec.cidrs.is_empty() {
            errs.push(FieldError::required(
                &path.child("cidrs"),
                "at least one CIDR",
            ));
        }
        for (i, c) in spec.cidrs.iter().enumerate() {
            match c.parse::<Ipv4Net>() {
                Ok(net) if net.trunc() == net => blocks.push(net),
                Ok(net) => errs.push(FieldError::invalid(
                    &path.child("cidrs").index(i),
                    &Value::from(c.clone()),
                    format!("host bits are set; did you mean {}?", net.trunc()),
                )),
                Err(_) => errs.push(FieldError::invalid(
                    &path.child("cidrs").index(i),
                    &Value::from(c.clone()),
                    "must be an IPv4 CIDR such as 10.20.0.0/24",
                )),
            }
        }
        for (i, e) in spec.exclude.iter().flatten().enumerate() {
            let parsed = e
                .parse::<Ipv4Net>()
                .map(|n| n.trunc())
                .or_else(|_| e.parse::<Ipv4Addr>().map(Ipv4Net::from));
            match parsed {
                Ok(net) => exclude.push(net),
                Err(_) => errs.push(FieldError::invalid(
                    &path.child("exclude").index(i),
                    &Value::from(e.clone()),
                    "must be an IPv4 address or CIDR",
                )),
            }
        }
        if errs.is_empty() {
            Ok(Self { blocks, exclude })
        } else {
            Err(errs)
        }
    }

    /// True when the pool may hand out `ip`.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.blocks.iter().any(|b| usable(b, ip)) && !self.exclude.iter().any(|e| e.contains(&ip))
    }

    /// Every address the pool may hand out, in order (blocks in spec order).
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.blocks.iter().flat_map(move |b| {
            b.hosts()
                .filter(move |ip| usable(b, *ip) && !self.exclude.iter().any(|e| e.contains(ip)))
        })
    }

    /// How many addresses the pool may hand out (overlapping blocks count once per block).
    pub fn total(&self) -> u64 {
        self.addresses().count() as u64
    }
}

/// Network and broadcast addresses of a block are never handed out (a /31 or /32 has none).
fn usable(block: &Ipv4Net, ip: Ipv4Addr) -> bool {
    block.contains(&ip)
        && (block.prefix_len() >= 31 || (ip != block.network() && ip != block.broadcast()))
}

/// The IPPool kind: cluster-scoped, `/status` subresource.
pub fn pool_resource() -> ResourceDef {
    resource::from_crd(IPPool::crd(), true, |schema| {
        Arc::new(PoolStrategy {
            spec_schema: schema::property(schema, "spec"),
        })
    })
}

/// The IPAddress kind: cluster-scoped, immutable.
pub fn address_resource() -> ResourceDef {
    resource::from_crd(IPAddress::crd(), true, |schema| {
        Arc::new(AddressStrategy {
            spec_schema: schema::property(schema, "spec"),
        })
    })
}

/// IPPool validation: CIDRs and exclusions parse, the region is named.
pub struct PoolStrategy {
    spec_schema: Value,
}

impl Strategy for PoolStrategy {
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let Some(spec) =
            schema::decode_checked::<IPPoolSpec>(obj, "spec", &self.spec_schema, &mut errs)
        else {
            return errs;
        };
        if spec.region.is_empty() {
            errs.push(FieldError::required(
                &FieldPath::root("spec").child("region"),
                "",
            ));
        }
        if let Err(problems) = AddressSet::parse(&spec) {
            errs.extend(problems);
        }
        errs
    }
}

/// IPAddress validation: the name is the address, and nothing changes after creation.
pub struct AddressStrategy {
    spec_schema: Value,
}

impl Strategy for AddressStrategy {
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let path = FieldPath::root("spec");
        let Some(spec) =
            schema::decode_checked::<IPAddressSpec>(obj, "spec", &self.spec_schema, &mut errs)
        else {
            return errs;
        };
        match spec.address.parse::<Ipv4Addr>() {
            Ok(ip) => {
                let name = obj.pointer("/metadata/name").and_then(Value::as_str);
                if name.is_some_and(|n| n != address_name(ip)) {
                    errs.push(FieldError::invalid(
                        &FieldPath::root("metadata").child("name"),
                        &Value::from(name.unwrap_or_default()),
                        format!("must be the address with dashes: {}", address_name(ip)),
                    ));
                }
            }
            Err(_) => errs.push(FieldError::invalid(
                &path.child("address"),
                &Value::from(spec.address.clone()),
                "must be an IPv4 address",
            )),
        }
        if let Some(old) = old.and_then(|o| o.get("spec"))
            && obj.get("spec") != Some(old)
        {
            errs.push(FieldError::invalid(
                &path,
                &Value::Null,
                "field is immutable: delete the IPAddress and create another",
            ));
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(cidrs: &[&str], exclude: &[&str]) -> IPPoolSpec {
        IPPoolSpec {
            region: "eu-west-1".into(),
            zone: None,
            cidrs: cidrs.iter().map(ToString::to_string).collect(),
            exclude: Some(exclude.iter().map(ToString::to_string).collect()),
        }
    }

    #[test]
    fn addresses_skip_network_broadcast_and_exclusions() {
        let set = AddressSet::parse(&spec(&["10.0.0.0/29"], &["10.0.0.1", "10.0.0.4/31"]))
            .expect("valid");
        let all: Vec<String> = set.addresses().map(|ip| ip.to_string()).collect();
        assert_eq!(all, ["10.0.0.2", "10.0.0.3", "10.0.0.6"]);
        assert_eq!(set.total(), 3);
        assert!(set.contains("10.0.0.6".parse().expect("ip")));
        assert!(!set.contains("10.0.0.7".parse().expect("ip")), "broadcast");
        assert!(!set.contains("10.0.0.5".parse().expect("ip")), "excluded");
        assert!(!set.contains("10.0.1.2".parse().expect("ip")), "outside");
    }

    #[test]
    fn bad_cidrs_name_the_field() {
        let errs = AddressSet::parse(&spec(&["10.0.0.0/33", "10.0.0.1/24"], &["nope"]))
            .expect_err("invalid");
        let fields: Vec<String> = errs.iter().map(|e| e.field.to_string()).collect();
        assert_eq!(
            fields,
            ["spec.cidrs[0]", "spec.cidrs[1]", "spec.exclude[0]"],
            "{errs:?}"
        );
        assert!(
            AddressSet::parse(&spec(&[], &[])).is_err(),
            "a pool needs a CIDR"
        );
    }

    #[test]
    fn address_names_are_the_address() {
        assert_eq!(address_name("10.20.0.5".parse().expect("ip")), "10-20-0-5");
    }
}
