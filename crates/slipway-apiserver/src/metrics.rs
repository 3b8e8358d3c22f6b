//! Prometheus metrics of the API server, served as text on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub verb: String,
    pub resource: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabels {
    pub verb: String,
    pub resource: String,
}

pub struct Metrics {
    registry: Registry,
    /// Other components' registries served on the same `/metrics` (see [`Metrics::include`]).
    extra: std::sync::RwLock<Vec<std::sync::Arc<Registry>>>,
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<VerbLabels, Histogram>,
    pub watchers: Gauge,
    pub store_revision: Gauge,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("slipway_apiserver");
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<VerbLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let watchers = Gauge::default();
        let store_revision = Gauge::default();
        registry.register(
            "request",
            "API requests by verb, resource and HTTP code",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "API request latency by verb and resource (watches excluded)",
            duration.clone(),
        );
        registry.register("watchers", "Open watch streams", watchers.clone());
        registry.register(
            "store_revision",
            "Latest store revision seen by the watch cache",
            store_revision.clone(),
        );
        Self {
            registry,
            extra: std::sync::RwLock::default(),
            requests,
            duration,
            watchers,
            store_revision,
        }
    }

    /// Serve `registry` (for example the controllers' metrics) on `/metrics` too.
    pub fn include(&self, registry: std::sync::Arc<Registry>) {
        self.extra
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(registry);
    }

    pub fn encode(&self) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::new();
        let extra = self
            .extra
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let result = std::iter::once(&self.registry)
            .chain(extra.iter().map(|r| &**r))
            .try_for_each(|r| encode_registry(&mut out, r))
            .and_then(|()| encode_eof(&mut out));
        if let Err(e) = result {
            tracing::error!(error = %e, "encoding metrics");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
