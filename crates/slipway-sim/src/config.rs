//! How a simulated cloud is set up at start: catalog, latencies, time scale, seed.

use std::path::PathBuf;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::SimError;

/// How fast simulated time runs against real time.
///
/// `1.0` is real time, `60.0` makes a minute pass in a second (demos), and `0.0` means zero
/// delay: every simulated wait is skipped (scale tests). Serialized as that number.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TimeScale(f64);

impl TimeScale {
    /// Real time.
    pub const REAL_TIME: TimeScale = TimeScale(1.0);
    /// No delays at all.
    pub const INSTANT: TimeScale = TimeScale(0.0);

    /// A speed-up factor (`60.0`: sixty simulated seconds per real second); `0.0` is
    /// [`TimeScale::INSTANT`]. Negative, NaN and infinite factors are refused.
    pub fn new(factor: f64) -> Result<TimeScale, SimError> {
        if factor.is_finite() && factor >= 0.0 {
            Ok(TimeScale(factor))
        } else {
            Err(SimError::InvalidConfig(format!(
                "time scale must be a finite number >= 0 (0 = no delays), got {factor}"
            )))
        }
    }

    /// The factor (0 for instant).
    pub fn factor(self) -> f64 {
        self.0
    }

    /// True for zero delay.
    pub fn is_instant(self) -> bool {
        self.0 == 0.0
    }

    /// The real time a simulated duration takes.
    pub fn real(self, simulated: Duration) -> Duration {
        if self.is_instant() {
            Duration::ZERO
        } else {
            Duration::try_from_secs_f64(simulated.as_secs_f64() / self.0).unwrap_or(Duration::MAX)
        }
    }

    /// Checks the invariant after deserialization.
    pub(crate) fn validate(self) -> Result<TimeScale, SimError> {
        TimeScale::new(self.0)
    }
}

impl Default for TimeScale {
    fn default() -> Self {
        TimeScale::REAL_TIME
    }
}

/// A distribution of simulated durations (boot latency).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum LatencyDistribution {
    /// Always the same.
    #[serde(rename_all = "camelCase")]
    Fixed { millis: u64 },
    /// Uniform between `min_millis` and `max_millis` (inclusive).
    #[serde(rename_all = "camelCase")]
    Uniform { min_millis: u64, max_millis: u64 },
    /// Log-normal: half the samples below `median_millis`, spread `sigma` (0.25 ≈ most
    /// within ±50%). A long right tail, like real boot times.
    #[serde(rename_all = "camelCase")]
    LogNormal { median_millis: u64, sigma: f64 },
}

impl LatencyDistribution {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), SimError> {
        match *self {
            LatencyDistribution::Fixed { .. } => Ok(()),
            LatencyDistribution::Uniform {
                min_millis,
                max_millis,
            } if min_millis > max_millis => Err(SimError::InvalidConfig(format!(
                "uniform latency: min {min_millis}ms > max {max_millis}ms"
            ))),
            LatencyDistribution::Uniform { .. } => Ok(()),
            LatencyDistribution::LogNormal { sigma, .. }
                if !(sigma.is_finite() && sigma >= 0.0) =>
            {
                Err(SimError::InvalidConfig(format!(
                    "log-normal latency: sigma must be finite and >= 0, got {sigma}"
                )))
            }
            LatencyDistribution::LogNormal { .. } => Ok(()),
        }
    }

    /// Draws one simulated duration.
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        match *self {
            LatencyDistribution::Fixed { millis } => Duration::from_millis(millis),
            LatencyDistribution::Uniform {
                min_millis,
                max_millis,
            } => Duration::from_millis(rng.random_range(min_millis..=max_millis.max(min_millis))),
            LatencyDistribution::LogNormal {
                median_millis,
                sigma,
            } => {
                // Box-Muller: one standard normal draw from two uniforms in (0, 1].
                let u1: f64 = 1.0 - rng.random::<f64>();
                let u2: f64 = rng.random::<f64>();
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                let millis = median_millis as f64 * (sigma * z).exp();
                Duration::try_from_secs_f64(millis / 1000.0).unwrap_or(Duration::MAX)
            }
        }
    }
}

/// Where the catalog comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CatalogSource {
    /// `catalog/default.yaml`, embedded in the binary.
    #[default]
    Default,
    /// A YAML file in the same format.
    Path(PathBuf),
}

/// Start-up settings of a [`SimCloud`](crate::SimCloud). Durations are simulated time unless
/// said otherwise; the time scale turns them into real time.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    pub catalog: CatalogSource,
    /// From `Pending` to `Provisioning` (finding a host).
    pub pending_delay: Duration,
    /// From `Provisioning` to `Running`, before the fault knob `boot_latency_scale`.
    pub boot_latency: LatencyDistribution,
    /// From `Terminating` to `Terminated`.
    pub termination_delay: Duration,
    /// How often running spot machines are checked for interruption (each check interrupts
    /// each with probability `spot_interruption_rate`). At zero delay the check runs on
    /// every tick of the lifecycle loop.
    pub spot_check_interval: Duration,
    /// Real time a terminated machine stays readable before its record is purged.
    pub terminated_retention: Duration,
    /// When set, replaces the persisted time scale at start (e.g. `--time-scale 0` for a
    /// scale test); otherwise the persisted one (real time on a fresh cloud) applies.
    pub time_scale: Option<TimeScale>,
    /// The cloud's store keeps every revision until compacted, and nothing reads its
    /// history: it is compacted once this many revisions piled up.
    pub compact_every_revisions: u64,
    /// Seed of the random draws (latencies, failures, interruptions, throttling), for
    /// reproducible runs; `None` seeds from the OS.
    pub seed: Option<u64>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            catalog: CatalogSource::Default,
            pending_delay: Duration::from_secs(2),
            boot_latency: LatencyDistribution::LogNormal {
                median_millis: 40_000,
                sigma: 0.25,
            },
            termination_delay: Duration::from_secs(20),
            spot_check_interval: Duration::from_secs(60),
            terminated_retention: Duration::from_secs(15 * 60),
            time_scale: None,
            compact_every_revisions: 10_000,
            seed: None,
        }
    }
}

impl SimConfig {
    /// A configuration for tests and scale runs: zero delay, a fixed seed.
    pub fn instant() -> SimConfig {
        SimConfig {
            time_scale: Some(TimeScale::INSTANT),
            seed: Some(1),
            ..SimConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn time_scale_table() {
        let s = Duration::from_secs(60);
        assert_eq!(TimeScale::REAL_TIME.real(s), s);
        assert_eq!(
            TimeScale::new(60.0).expect("x60").real(s),
            Duration::from_secs(1)
        );
        assert_eq!(TimeScale::INSTANT.real(s), Duration::ZERO);
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(TimeScale::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn distributions_stay_in_range_and_are_seeded() {
        let mut rng = StdRng::seed_from_u64(7);
        let uniform = LatencyDistribution::Uniform {
            min_millis: 100,
            max_millis: 200,
        };
        for _ in 0..1000 {
            let d = uniform.sample(&mut rng);
            assert!((100..=200).contains(&d.as_millis()), "{d:?}");
        }
        let lognormal = LatencyDistribution::LogNormal {
            median_millis: 1000,
            sigma: 0.25,
        };
        let mut samples: Vec<_> = (0..2001).map(|_| lognormal.sample(&mut rng)).collect();
        samples.sort();
        let median = samples[1000].as_millis();
        assert!((900..1100).contains(&median), "median {median}ms");
        assert!(samples.iter().all(|d| *d > Duration::ZERO));
        let a: Vec<_> = {
            let mut r = StdRng::seed_from_u64(3);
            (0..5).map(|_| lognormal.sample(&mut r)).collect()
        };
        let b: Vec<_> = {
            let mut r = StdRng::seed_from_u64(3);
            (0..5).map(|_| lognormal.sample(&mut r)).collect()
        };
        assert_eq!(a, b);
        assert_eq!(
            LatencyDistribution::Fixed { millis: 5 }.sample(&mut rng),
            Duration::from_millis(5)
        );
    }

    #[test]
    fn bad_distributions_are_refused() {
        assert!(
            LatencyDistribution::Uniform {
                min_millis: 2,
                max_millis: 1
            }
            .validate()
            .is_err()
        );
        assert!(
            LatencyDistribution::LogNormal {
                median_millis: 1,
                sigma: -1.0
            }
            .validate()
            .is_err()
        );
    }
}
