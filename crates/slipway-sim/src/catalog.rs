//! The simulated cloud's catalog: regions, zones, machine types, quotas and zone capacity,
//! read from YAML (the embedded [`DEFAULT_CATALOG_YAML`] or a file).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;
use slipway_provider::{Catalog, MachineType, Region, Zone};

use crate::SimError;

/// The default catalog, `catalog/default.yaml` in this crate.
pub const DEFAULT_CATALOG_YAML: &str = include_str!("../catalog/default.yaml");

/// The catalog plus what only the simulator knows: quotas and capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct SimCatalog {
    /// What the provider's `catalog()` returns.
    pub catalog: Catalog,
    /// Default vCPU quota per region.
    pub vcpu_quotas: BTreeMap<String, u64>,
    /// Default machine capacity per `(zone, machine type)`; absent means unlimited.
    pub capacity: BTreeMap<(String, String), u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CatalogFile {
    machine_types: Vec<MachineType>,
    regions: Vec<RegionFile>,
    #[serde(default)]
    capacity: Vec<CapacityFile>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RegionFile {
    name: String,
    vcpu_quota: u64,
    zones: Vec<ZoneFile>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ZoneFile {
    name: String,
    /// Absent: every machine type.
    machine_types: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CapacityFile {
    zone: String,
    machine_type: String,
    machines: u64,
}

impl SimCatalog {
    /// The embedded default catalog.
    pub fn default_catalog() -> Result<SimCatalog, SimError> {
        SimCatalog::from_yaml(DEFAULT_CATALOG_YAML, "the embedded default catalog")
    }

    /// Reads a catalog file.
    pub fn from_path(path: &Path) -> Result<SimCatalog, SimError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SimError::Catalog(format!("cannot read {}: {e}", path.display())))?;
        SimCatalog::from_yaml(&text, &path.display().to_string())
    }

    /// Parses and validates catalog YAML; `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<SimCatalog, SimError> {
        let file: CatalogFile = serde_saphyr::from_str(text)
            .map_err(|e| SimError::Catalog(format!("{origin}: {e}")))?;
        build(file).map_err(|e| SimError::Catalog(format!("{origin}: {e}")))
    }
}

fn build(file: CatalogFile) -> Result<SimCatalog, String> {
    let mut type_names = BTreeSet::new();
    for t in &file.machine_types {
        if !type_names.insert(t.name.clone()) {
            return Err(format!("machineTypes: {} is listed twice", t.name));
        }
        if t.vcpu == 0 || t.memory_mib == 0 {
            return Err(format!(
                "machineTypes.{}: vcpu and memoryMib must be positive",
                t.name
            ));
        }
        let prices_ok = t.on_demand_hourly.is_finite()
            && t.on_demand_hourly > 0.0
            && t.spot_hourly.is_finite()
            && t.spot_hourly > 0.0
            && t.spot_hourly <= t.on_demand_hourly;
        if !prices_ok {
            return Err(format!(
                "machineTypes.{}: prices must be positive and spot at most on-demand",
                t.name
            ));
        }
        if t.gpu.as_ref().is_some_and(|g| g.count == 0) {
            return Err(format!(
                "machineTypes.{}: gpu.count must be positive",
                t.name
            ));
        }
    }
    let mut zone_names = BTreeSet::new();
    let mut region_names = BTreeSet::new();
    let mut vcpu_quotas = BTreeMap::new();
    let mut regions = Vec::new();
    for r in file.regions {
        if !region_names.insert(r.name.clone()) {
            return Err(format!("regions: {} is listed twice", r.name));
        }
        if r.zones.is_empty() {
            return Err(format!("regions.{}: no zones", r.name));
        }
        let mut zones = Vec::new();
        for z in r.zones {
            if !zone_names.insert(z.name.clone()) {
                return Err(format!("zones: {} is listed twice", z.name));
            }
            let machine_types = match z.machine_types {
                None => file.machine_types.iter().map(|t| t.name.clone()).collect(),
                Some(list) => {
                    if let Some(unknown) = list.iter().find(|t| !type_names.contains(*t)) {
                        return Err(format!(
                            "regions.{}.zones.{}: unknown machine type {unknown}",
                            r.name, z.name
                        ));
                    }
                    list
                }
            };
            zones.push(Zone {
                name: z.name,
                machine_types,
            });
        }
        vcpu_quotas.insert(r.name.clone(), r.vcpu_quota);
        regions.push(Region {
            name: r.name,
            zones,
        });
    }
    if regions.is_empty() {
        return Err("regions: none".to_string());
    }
    let catalog = Catalog {
        regions,
        machine_types: file.machine_types,
    };
    let mut capacity = BTreeMap::new();
    for c in file.capacity {
        if !catalog.zone_offers(&c.zone, &c.machine_type) {
            return Err(format!(
                "capacity: zone {} does not offer {}",
                c.zone, c.machine_type
            ));
        }
        capacity.insert((c.zone, c.machine_type), c.machines);
    }
    Ok(SimCatalog {
        catalog,
        vcpu_quotas,
        capacity,
    })
}

#[cfg(test)]
mod tests {
    use slipway_provider::{Arch, MachineFamily};

    use super::*;

    #[test]
    fn default_catalog_meets_the_brief() {
        let c = SimCatalog::default_catalog().expect("default catalog");
        assert!(c.catalog.regions.len() >= 3);
        for r in &c.catalog.regions {
            assert!(r.zones.len() >= 3, "{}", r.name);
            assert!(c.vcpu_quotas[&r.name] > 0);
        }
        for name in ["eu-west-1", "us-east-1", "ap-southeast-1"] {
            assert!(c.catalog.region(name).is_some(), "{name}");
        }
        let types = &c.catalog.machine_types;
        assert!(types.len() >= 12);
        for family in [
            MachineFamily::General,
            MachineFamily::Compute,
            MachineFamily::Memory,
            MachineFamily::Gpu,
        ] {
            assert!(types.iter().any(|t| t.family == family), "{family:?}");
        }
        for arch in [Arch::Amd64, Arch::Arm64] {
            assert!(types.iter().any(|t| t.arch == arch), "{arch:?}");
        }
        for name in [
            "m5.large",
            "m5.xlarge",
            "m5.2xlarge",
            "c6g.xlarge",
            "r6i.large",
            "g5.2xlarge",
        ] {
            assert!(c.catalog.machine_type(name).is_some(), "{name}");
        }
        assert_eq!(
            c.catalog.machine_type("c6g.xlarge").map(|t| t.arch),
            Some(Arch::Arm64)
        );
        assert!(c.catalog.zone_offers("eu-west-1a", "g5.2xlarge"));
        assert!(!c.catalog.zone_offers("eu-west-1c", "g5.2xlarge"));
        assert_eq!(
            c.capacity
                .get(&("eu-west-1a".to_string(), "g5.12xlarge".to_string())),
            Some(&4)
        );
    }

    #[test]
    fn bad_catalogs_say_what_is_wrong() {
        let ty = "{name: a.large, family: general, vcpu: 2, memoryMib: 1024, arch: amd64, onDemandHourly: 0.1, spotHourly: 0.05}";
        let cases = [
            (
                format!("machineTypes: [{ty}, {ty}]\nregions: [{{name: r, vcpuQuota: 1, zones: [{{name: z}}]}}]"),
                "listed twice",
            ),
            (
                format!("machineTypes: [{ty}]\nregions: [{{name: r, vcpuQuota: 1, zones: [{{name: z, machineTypes: [b.large]}}]}}]"),
                "unknown machine type b.large",
            ),
            (
                format!("machineTypes: [{ty}]\nregions: [{{name: r, vcpuQuota: 1, zones: []}}]"),
                "no zones",
            ),
            (
                format!("machineTypes: [{ty}]\nregions: [{{name: r, vcpuQuota: 1, zones: [{{name: z}}]}}]\ncapacity: [{{zone: y, machineType: a.large, machines: 1}}]"),
                "does not offer",
            ),
            (
                "machineTypes: [{name: a.large, family: general, vcpu: 2, memoryMib: 1024, arch: amd64, onDemandHourly: 0.1, spotHourly: 0.5}]\nregions: [{name: r, vcpuQuota: 1, zones: [{name: z}]}]".to_string(),
                "spot at most on-demand",
            ),
            (
                format!("machineTypes: [{ty}]\nregions: [{{name: r, vcpuQuota: 1, zones: [{{name: z}}], extra: 1}}]"),
                "extra",
            ),
        ];
        for (yaml, want) in cases {
            let err = SimCatalog::from_yaml(&yaml, "test")
                .expect_err(want)
                .to_string();
            assert!(err.contains(want), "{err} (wanted {want:?})");
        }
    }
}
