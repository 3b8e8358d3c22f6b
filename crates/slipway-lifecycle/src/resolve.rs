//! A Cluster's spec resolved against the provider's catalog.
//!
//! What the spec leaves open is decided here (the region's zones, the cheapest general-purpose
//! machine type of the right architecture offered in every zone of the group); what cannot
//! be built is refused with the field it comes from (an unknown region, zone or machine type,
//! an architecture or GPU the machine type does not have, a type a zone does not offer).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use slipway_api::cluster::{self as api, ClusterSpec};
use slipway_api::machine::MachineRole;
use slipway_provider::{Arch, CapacityType, Catalog, MachineFamily, MachineType};

/// The name of the control-plane group (never a pool name: pool names are DNS labels and the
/// controller refuses this one).
pub const CONTROL_PLANE: &str = "control-plane";

/// Something in the spec that cannot be built, at its field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn problem(field: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        field: field.into(),
        message: message.into(),
    }
}

/// One group of identical machines: the control plane or a node pool.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The pool's name, or [`CONTROL_PLANE`].
    pub name: String,
    pub role: MachineRole,
    pub replicas: usize,
    pub zones: Vec<String>,
    pub machine_type: String,
    pub capacity_type: CapacityType,
    /// A spot group's machines may be bought on demand where spot capacity is out.
    pub fallback_to_on_demand: bool,
    pub node_labels: BTreeMap<String, String>,
    pub node_taints: Vec<api::Taint>,
    /// Changes exactly when a machine of the group must be replaced (machine type, capacity
    /// type, version); labels and taints are updated in place.
    pub template_hash: String,
}

/// The whole cluster as machines.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub region: String,
    pub zones: Vec<String>,
    pub version: String,
    pub control_plane: Group,
    pub pools: Vec<Group>,
}

impl Desired {
    /// Every group, the control plane first.
    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        std::iter::once(&self.control_plane).chain(&self.pools)
    }
}

/// Resolve `spec` (already defaulted by the API) against `catalog`.
pub fn resolve(spec: &ClusterSpec, catalog: &Catalog) -> Result<Desired, Vec<Problem>> {
    let mut problems = Vec::new();
    let infra = &spec.infrastructure;
    let Some(region) = catalog.region(&infra.region) else {
        let known: Vec<&str> = catalog.regions.iter().map(|r| r.name.as_str()).collect();
        return Err(vec![problem(
            "spec.infrastructure.region",
            format!(
                "unknown region {:?}; the provider offers {}",
                infra.region,
                known.join(", ")
            ),
        )]);
    };
    let zones: Vec<String> = match &infra.zones {
        Some(zones) if !zones.is_empty() => {
            for (i, z) in zones.iter().enumerate() {
                if !region.zones.iter().any(|rz| &rz.name == z) {
                    let known: Vec<&str> = region.zones.iter().map(|z| z.name.as_str()).collect();
                    problems.push(problem(
                        format!("spec.infrastructure.zones[{i}]"),
                        format!(
                            "unknown zone {z:?} in {}; it has {}",
                            region.name,
                            known.join(", ")
                        ),
                    ));
                }
            }
            zones.clone()
        }
        _ => region.zones.iter().map(|z| z.name.clone()).collect(),
    };
    let version = match &spec.version {
        Some(v) => v.clone(),
        None => {
            problems.push(problem(
                "spec.version",
                "required: no ClusterClass provides a Kubernetes version",
            ));
            String::new()
        }
    };

    let cp = spec.control_plane.clone().unwrap_or_default();
    let cp_type = machine_type(
        catalog,
        cp.machine_type.as_deref(),
        Arch::Amd64,
        None,
        &zones,
        "spec.controlPlane.machineType",
        &mut problems,
    );
    let control_plane = Group {
        name: CONTROL_PLANE.to_string(),
        role: MachineRole::ControlPlane,
        replicas: usize::try_from(cp.replicas.unwrap_or(1)).unwrap_or(1),
        zones: zones.clone(),
        template_hash: template_hash(&cp_type, CapacityType::OnDemand, &version),
        machine_type: cp_type,
        capacity_type: CapacityType::OnDemand,
        fallback_to_on_demand: false,
        node_labels: BTreeMap::new(),
        node_taints: Vec::new(),
    };

    let mut pools = Vec::new();
    for (i, pool) in spec.node_pools.iter().flatten().enumerate() {
        let at = format!("spec.nodePools[{i}]");
        if pool.name == CONTROL_PLANE {
            problems.push(problem(
                format!("{at}.name"),
                format!("{CONTROL_PLANE:?} names the control plane; choose another pool name"),
            ));
        }
        let pool_zones = match &pool.zones {
            Some(z) if !z.is_empty() => {
                for (j, zone) in z.iter().enumerate() {
                    if !zones.contains(zone) {
                        problems.push(problem(
                            format!("{at}.zones[{j}]"),
                            format!(
                                "zone {zone:?} is not one of the cluster's zones ({})",
                                zones.join(", ")
                            ),
                        ));
                    }
                }
                z.clone()
            }
            _ => zones.clone(),
        };
        let arch = match pool.arch {
            Some(api::Arch::Arm64) => Arch::Arm64,
            _ => Arch::Amd64,
        };
        let gpus = pool
            .gpu
            .as_ref()
            .map(|g| u32::try_from(g.count).unwrap_or(0));
        let t = machine_type(
            catalog,
            pool.machine_type.as_deref(),
            arch,
            gpus,
            &pool_zones,
            &format!("{at}.machineType"),
            &mut problems,
        );
        let capacity = match pool.capacity_type {
            Some(api::CapacityType::Spot) => CapacityType::Spot,
            _ => CapacityType::OnDemand,
        };
        pools.push(Group {
            name: pool.name.clone(),
            role: MachineRole::Worker,
            replicas: usize::try_from(pool.replicas.unwrap_or(0)).unwrap_or(0),
            zones: pool_zones,
            template_hash: template_hash(&t, capacity, &version),
            machine_type: t,
            capacity_type: capacity,
            fallback_to_on_demand: capacity == CapacityType::Spot
                && pool.fallback_to_on_demand == Some(true),
            node_labels: pool.labels.clone().unwrap_or_default(),
            node_taints: pool.taints.clone().unwrap_or_default(),
        });
    }
    if problems.is_empty() {
        Ok(Desired {
            region: region.name.clone(),
            zones,
            version,
            control_plane,
            pools,
        })
    } else {
        Err(problems)
    }
}

/// The machine type asked for, checked; or the cheapest fitting one.
fn machine_type(
    catalog: &Catalog,
    asked: Option<&str>,
    arch: Arch,
    gpus: Option<u32>,
    zones: &[String],
    field: &str,
    problems: &mut Vec<Problem>,
) -> String {
    let fits = |t: &MachineType| {
        t.arch == arch
            && gpus.is_none_or(|n| t.gpu.as_ref().is_some_and(|g| g.count >= n))
            && zones.iter().all(|z| catalog.zone_offers(z, &t.name))
    };
    match asked {
        Some(name) => {
            let Some(t) = catalog.machine_type(name) else {
                problems.push(problem(field, format!("unknown machine type {name:?}")));
                return name.to_string();
            };
            if t.arch != arch {
                problems.push(problem(
                    field,
                    format!(
                        "{name} is {}, the pool asks for {}",
                        t.arch.as_str(),
                        arch.as_str()
                    ),
                ));
            }
            if let Some(n) = gpus
                && t.gpu.as_ref().is_none_or(|g| g.count < n)
            {
                problems.push(problem(field, format!("{name} does not have {n} GPU(s)")));
            }
            for z in zones {
                if catalog.zone(z).is_some() && !catalog.zone_offers(z, name) {
                    problems.push(problem(field, format!("zone {z} does not offer {name}")));
                }
            }
            name.to_string()
        }
        // Zones already refused: choosing a type for them would only repeat the problem.
        None if zones.iter().any(|z| catalog.zone(z).is_none()) => String::new(),
        None => {
            let family = if gpus.is_some() {
                MachineFamily::Gpu
            } else {
                MachineFamily::General
            };
            let best = catalog
                .machine_types
                .iter()
                .filter(|t| t.family == family && t.vcpu >= 2 && fits(t))
                .min_by(|a, b| a.on_demand_hourly.total_cmp(&b.on_demand_hourly));
            match best {
                Some(t) => t.name.clone(),
                None => {
                    problems.push(problem(
                        field,
                        format!(
                            "required: no {} machine type{} is offered in every zone ({})",
                            arch.as_str(),
                            if gpus.is_some() { " with GPUs" } else { "" },
                            zones.join(", ")
                        ),
                    ));
                    String::new()
                }
            }
        }
    }
}

/// A short hash of what a machine is built from.
pub fn template_hash(machine_type: &str, capacity: CapacityType, version: &str) -> String {
    let capacity = match capacity {
        CapacityType::OnDemand => "on-demand",
        CapacityType::Spot => "spot",
    };
    let digest = Sha256::digest(format!("{machine_type}\n{capacity}\n{version}").as_bytes());
    hex::encode(&digest[..5])
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_provider::{Gpu, Region, Zone};

    fn catalog() -> Catalog {
        let t = |name: &str, family, arch, gpu: Option<u32>, price: f64| MachineType {
            name: name.into(),
            family,
            vcpu: 2,
            memory_mib: 8192,
            gpu: gpu.map(|count| Gpu {
                count,
                model: "nvidia-a10g".into(),
            }),
            arch,
            on_demand_hourly: price,
            spot_hourly: price / 3.0,
        };
        Catalog {
            regions: vec![Region {
                name: "eu-west-1".into(),
                zones: vec![
                    Zone {
                        name: "eu-west-1a".into(),
                        machine_types: vec![
                            "m5.large".into(),
                            "m6g.large".into(),
                            "g5.xlarge".into(),
                            "t.cheap".into(),
                        ],
                    },
                    Zone {
                        name: "eu-west-1b".into(),
                        machine_types: vec!["m5.large".into(), "m6g.large".into()],
                    },
                ],
            }],
            machine_types: vec![
                t("m5.large", MachineFamily::General, Arch::Amd64, None, 0.1),
                t("t.cheap", MachineFamily::General, Arch::Amd64, None, 0.01),
                t("m6g.large", MachineFamily::General, Arch::Arm64, None, 0.08),
                t("g5.xlarge", MachineFamily::Gpu, Arch::Amd64, Some(1), 1.0),
            ],
        }
    }

    fn spec(yaml: serde_json::Value) -> ClusterSpec {
        serde_json::from_value(yaml).unwrap_or_default()
    }

    #[test]
    fn defaults_pick_zones_and_the_cheapest_type_offered_everywhere() {
        let s = spec(serde_json::json!({
            "version": "1.33.4",
            "infrastructure": {"region": "eu-west-1"},
            "controlPlane": {"replicas": 3},
            "nodePools": [
                {"name": "general", "replicas": 2},
                {"name": "arm", "arch": "arm64", "replicas": 1},
                {"name": "cheap", "zones": ["eu-west-1a"], "replicas": 1},
            ],
        }));
        let d = resolve(&s, &catalog()).expect("resolves");
        assert_eq!(d.zones, ["eu-west-1a", "eu-west-1b"]);
        assert_eq!(d.control_plane.replicas, 3);
        // t.cheap is cheaper but not offered in eu-west-1b.
        assert_eq!(d.control_plane.machine_type, "m5.large");
        assert_eq!(d.pools[0].machine_type, "m5.large");
        assert_eq!(d.pools[1].machine_type, "m6g.large");
        assert_eq!(d.pools[2].machine_type, "t.cheap");
    }

    #[test]
    fn impossible_asks_name_their_field() {
        let s = spec(serde_json::json!({
            "infrastructure": {"region": "eu-west-1", "zones": ["eu-west-1a", "eu-west-1z"]},
            "controlPlane": {"machineType": "nope"},
            "nodePools": [
                {"name": "a", "machineType": "m6g.large"},
                {"name": "g", "machineType": "m5.large", "gpu": {"count": 1}},
                {"name": "z", "zones": ["us-east-1a"]},
                {"name": "control-plane"},
            ],
        }));
        let problems = resolve(&s, &catalog()).expect_err("refused");
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.infrastructure.zones[1]",
                "spec.version",
                "spec.controlPlane.machineType",
                "spec.nodePools[0].machineType",
                "spec.nodePools[1].machineType",
                "spec.nodePools[2].zones[0]",
                "spec.nodePools[3].name",
            ],
            "{problems:?}"
        );
        let unknown_region =
            spec(serde_json::json!({"version": "1.33.4", "infrastructure": {"region": "mars-1"}}));
        let p = resolve(&unknown_region, &catalog()).expect_err("refused");
        assert!(p[0].message.contains("eu-west-1"), "{p:?}");
    }

    #[test]
    fn the_template_hash_moves_with_what_replaces_machines_only() {
        let base = serde_json::json!({
            "version": "1.33.4",
            "infrastructure": {"region": "eu-west-1"},
            "nodePools": [{"name": "p", "machineType": "m5.large", "replicas": 1, "labels": {"a": "b"}}],
        });
        let h = |v: serde_json::Value| {
            resolve(&spec(v), &catalog()).expect("ok").pools[0]
                .template_hash
                .clone()
        };
        let original = h(base.clone());
        let mut relabelled = base.clone();
        relabelled["nodePools"][0]["labels"] = serde_json::json!({"a": "c"});
        assert_eq!(h(relabelled), original);
        let mut retyped = base.clone();
        retyped["nodePools"][0]["capacityType"] = serde_json::json!("spot");
        assert_ne!(h(retyped), original);
        let mut upgraded = base;
        upgraded["version"] = serde_json::json!("1.33.5");
        assert_ne!(h(upgraded), original);
    }
}
