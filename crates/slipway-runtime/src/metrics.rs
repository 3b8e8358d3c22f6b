//! Per-controller Prometheus metrics (`prometheus-client`), labelled by controller name.
//!
//! One [`Metrics`] is shared by every controller of a process and registered once into the
//! `/metrics` registry with [`Metrics::register`]:
//! `slipway_controller_reconciles_total{controller,result}`,
//! `slipway_controller_reconcile_errors_total{controller}`,
//! `slipway_controller_reconcile_duration_seconds{controller}`,
//! `slipway_controller_queue_depth{controller}` and
//! `slipway_controller_queue_latency_seconds{controller}` (time from add to start).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `controller` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: String,
}

/// `controller` and `result` (`success`, `requeue`, `error`) labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub controller: String,
    pub result: String,
}

fn histogram() -> Histogram {
    // 1 ms .. ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// The controller metrics of a process (a cheap handle: clones share the series).
#[derive(Debug, Clone)]
pub struct Metrics {
    pub(crate) reconciles: Family<ResultLabels, Counter>,
    pub(crate) errors: Family<ControllerLabels, Counter>,
    pub(crate) duration: Family<ControllerLabels, Histogram, fn() -> Histogram>,
    pub(crate) queue_depth: Family<ControllerLabels, Gauge>,
    pub(crate) queue_latency: Family<ControllerLabels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            reconciles: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(histogram as fn() -> Histogram),
            queue_depth: Family::default(),
            queue_latency: Family::new_with_constructor(histogram as fn() -> Histogram),
        }
    }
}

impl Metrics {
    /// Fresh, unregistered metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register every series under the `slipway_controller` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("slipway_controller");
        sub.register(
            "reconciles",
            "Reconciles run, by controller and result",
            self.reconciles.clone(),
        );
        sub.register(
            "reconcile_errors",
            "Reconciles that returned an error",
            self.errors.clone(),
        );
        sub.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            self.duration.clone(),
        );
        sub.register(
            "queue_depth",
            "Keys waiting in the work queue",
            self.queue_depth.clone(),
        );
        sub.register(
            "queue_latency_seconds",
            "Time from a key's add to the start of its reconcile",
            self.queue_latency.clone(),
        );
    }

    /// Reconciles of `controller` with `result` so far (for tests and status pages).
    pub fn reconciles(&self, controller: &str, result: &str) -> u64 {
        self.reconciles
            .get_or_create(&ResultLabels {
                controller: controller.to_string(),
                result: result.to_string(),
            })
            .get()
    }

    /// Keys waiting in `controller`'s queue now (for tests and benchmarks).
    pub fn queue_depth(&self, controller: &str) -> i64 {
        self.queue_depth
            .get_or_create(&ControllerLabels {
                controller: controller.to_string(),
            })
            .get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_series_render() {
        let metrics = Metrics::new();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let labels = ControllerLabels {
            controller: "c".into(),
        };
        metrics
            .reconciles
            .get_or_create(&ResultLabels {
                controller: "c".into(),
                result: "success".into(),
            })
            .inc();
        metrics.duration.get_or_create(&labels).observe(0.01);
        metrics.queue_depth.get_or_create(&labels).set(3);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains(
                "slipway_controller_reconciles_total{controller=\"c\",result=\"success\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("slipway_controller_queue_depth{controller=\"c\"} 3"),
            "{text}"
        );
        assert!(
            text.contains(
                "slipway_controller_reconcile_duration_seconds_count{controller=\"c\"} 1"
            ),
            "{text}"
        );
        assert_eq!(metrics.reconciles("c", "success"), 1);
    }
}
