//! Fault injection knobs, settable at run time and persisted with the cloud.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::SimError;
use crate::catalog::SimCatalog;
use crate::config::TimeScale;

/// Every knob of the simulated cloud that can change while it runs.
///
/// Rates are probabilities in `[0, 1]`. The JSON form (camelCase) is what
/// `GET/PUT /cloud/v1/faults` carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Faults {
    /// Probability that a machine fails to boot (it ends `Terminated`, reason
    /// `ProvisioningFailed`).
    pub provisioning_failure_rate: f64,
    /// Zones that are down: creates there fail with `CapacityUnavailable` and their machines
    /// go `Failed` (reason `ZoneOutage`) until the zone is back, when they run again.
    pub zone_outages: BTreeSet<String>,
    /// Probability that a running spot machine is interrupted at each spot check.
    pub spot_interruption_rate: f64,
    /// Zones without spot capacity: spot creates there fail with `CapacityUnavailable`
    /// (on-demand ones succeed; running spot machines are not affected).
    pub spot_unavailable: BTreeSet<String>,
    /// Probability that a provider call is answered `Throttled`.
    pub throttle_rate: f64,
    /// The `retry_after` of throttled calls, in milliseconds.
    pub throttle_retry_after_ms: u64,
    /// Multiplies boot latencies drawn from the configured distribution.
    pub boot_latency_scale: f64,
    /// How fast simulated time runs.
    pub time_scale: TimeScale,
    /// Per-region vCPU quota overrides (the catalog's otherwise).
    pub vcpu_quotas: BTreeMap<String, u64>,
    /// Per-zone, per-type capacity overrides, keyed `"<zone>/<machine type>"` (the catalog's
    /// otherwise; no entry in either: unlimited).
    pub zone_capacity: BTreeMap<String, u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            provisioning_failure_rate: 0.0,
            zone_outages: BTreeSet::new(),
            spot_interruption_rate: 0.0,
            spot_unavailable: BTreeSet::new(),
            throttle_rate: 0.0,
            throttle_retry_after_ms: 1000,
            boot_latency_scale: 1.0,
            time_scale: TimeScale::REAL_TIME,
            vcpu_quotas: BTreeMap::new(),
            zone_capacity: BTreeMap::new(),
        }
    }
}

/// A partial update of [`Faults`] (`PATCH /cloud/v1/faults`): absent fields stay; in the maps
/// a `null` value removes the override.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct FaultsPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provisioning_failure_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_outages: Option<BTreeSet<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spot_interruption_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spot_unavailable: Option<BTreeSet<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttle_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttle_retry_after_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_latency_scale: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_scale: Option<TimeScale>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub vcpu_quotas: BTreeMap<String, Option<u64>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub zone_capacity: BTreeMap<String, Option<u64>>,
}

impl FaultsPatch {
    /// `faults` with this patch applied (not yet validated).
    pub fn apply(&self, faults: &Faults) -> Faults {
        let mut f = faults.clone();
        if let Some(v) = self.provisioning_failure_rate {
            f.provisioning_failure_rate = v;
        }
        if let Some(v) = &self.zone_outages {
            f.zone_outages = v.clone();
        }
        if let Some(v) = self.spot_interruption_rate {
            f.spot_interruption_rate = v;
        }
        if let Some(v) = &self.spot_unavailable {
            f.spot_unavailable = v.clone();
        }
        if let Some(v) = self.throttle_rate {
            f.throttle_rate = v;
        }
        if let Some(v) = self.throttle_retry_after_ms {
            f.throttle_retry_after_ms = v;
        }
        if let Some(v) = self.boot_latency_scale {
            f.boot_latency_scale = v;
        }
        if let Some(v) = self.time_scale {
            f.time_scale = v;
        }
        for (k, v) in &self.vcpu_quotas {
            match v {
                Some(v) => f.vcpu_quotas.insert(k.clone(), *v),
                None => f.vcpu_quotas.remove(k),
            };
        }
        for (k, v) in &self.zone_capacity {
            match v {
                Some(v) => f.zone_capacity.insert(k.clone(), *v),
                None => f.zone_capacity.remove(k),
            };
        }
        f
    }
}

/// The key of [`Faults::zone_capacity`] for a zone and machine type.
pub fn capacity_key(zone: &str, machine_type: &str) -> String {
    format!("{zone}/{machine_type}")
}

impl Faults {
    /// The throttling delay as a duration.
    pub fn throttle_retry_after(&self) -> Duration {
        Duration::from_millis(self.throttle_retry_after_ms)
    }

    /// Checks every knob against its range and the catalog; the error names the field.
    pub fn validate(&self, catalog: &SimCatalog) -> Result<(), SimError> {
        let rate = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(SimError::InvalidFaults(format!(
                    "{name}: must be a probability in [0, 1], got {v}"
                )))
            }
        };
        rate("provisioningFailureRate", self.provisioning_failure_rate)?;
        rate("spotInterruptionRate", self.spot_interruption_rate)?;
        rate("throttleRate", self.throttle_rate)?;
        if !(self.boot_latency_scale.is_finite() && self.boot_latency_scale >= 0.0) {
            return Err(SimError::InvalidFaults(format!(
                "bootLatencyScale: must be a finite number >= 0, got {}",
                self.boot_latency_scale
            )));
        }
        self.time_scale
            .validate()
            .map_err(|e| SimError::InvalidFaults(format!("timeScale: {e}")))?;
        for zone in &self.zone_outages {
            if catalog.catalog.zone(zone).is_none() {
                return Err(SimError::InvalidFaults(format!(
                    "zoneOutages: unknown zone {zone}"
                )));
            }
        }
        for zone in &self.spot_unavailable {
            if catalog.catalog.zone(zone).is_none() {
                return Err(SimError::InvalidFaults(format!(
                    "spotUnavailable: unknown zone {zone}"
                )));
            }
        }
        for region in self.vcpu_quotas.keys() {
            if catalog.catalog.region(region).is_none() {
                return Err(SimError::InvalidFaults(format!(
                    "vcpuQuotas: unknown region {region}"
                )));
            }
        }
        for key in self.zone_capacity.keys() {
            let ok = key
                .split_once('/')
                .is_some_and(|(zone, ty)| catalog.catalog.zone_offers(zone, ty));
            if !ok {
                return Err(SimError::InvalidFaults(format!(
                    "zoneCapacity: {key:?} is not \"<zone>/<machine type>\" of a zone offering that type"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_sets_and_removes() {
        let base = Faults {
            vcpu_quotas: [("eu-west-1".to_string(), 8)].into_iter().collect(),
            ..Faults::default()
        };
        let patch: FaultsPatch = serde_json::from_value(serde_json::json!({
            "throttleRate": 0.5,
            "vcpuQuotas": {"eu-west-1": null, "us-east-1": 16},
            "zoneOutages": ["eu-west-1a"],
        }))
        .expect("patch");
        let f = patch.apply(&base);
        assert_eq!(f.throttle_rate, 0.5);
        assert_eq!(
            f.vcpu_quotas,
            [("us-east-1".to_string(), 16)].into_iter().collect()
        );
        assert!(f.zone_outages.contains("eu-west-1a"));
        assert_eq!(f.provisioning_failure_rate, 0.0);
    }

    #[test]
    fn validation_table() {
        let catalog = SimCatalog::default_catalog().expect("catalog");
        let ok = Faults::default();
        assert!(ok.validate(&catalog).is_ok());
        let cases: Vec<(Faults, &str)> = vec![
            (
                Faults {
                    provisioning_failure_rate: 1.5,
                    ..Faults::default()
                },
                "provisioningFailureRate",
            ),
            (
                Faults {
                    throttle_rate: -0.1,
                    ..Faults::default()
                },
                "throttleRate",
            ),
            (
                Faults {
                    boot_latency_scale: f64::NAN,
                    ..Faults::default()
                },
                "bootLatencyScale",
            ),
            (
                Faults {
                    zone_outages: ["mars-1a".to_string()].into_iter().collect(),
                    ..Faults::default()
                },
                "zoneOutages",
            ),
            (
                Faults {
                    vcpu_quotas: [("mars-1".to_string(), 1)].into_iter().collect(),
                    ..Faults::default()
                },
                "vcpuQuotas",
            ),
            (
                Faults {
                    zone_capacity: [("eu-west-1c/g5.2xlarge".to_string(), 1)]
                        .into_iter()
                        .collect(),
                    ..Faults::default()
                },
                "zoneCapacity",
            ),
        ];
        for (faults, field) in cases {
            let err = faults.validate(&catalog).expect_err(field).to_string();
            assert!(err.contains(field), "{err}");
        }
    }
}
