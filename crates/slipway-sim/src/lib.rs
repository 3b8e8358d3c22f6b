//! The simulated cloud behind the `sim` provider.
//!
//! [`SimCloud`] models a public cloud faithfully enough that controllers cannot tell: a
//! catalog of regions, zones and machine types ([`catalog`], `catalog/default.yaml` embedded),
//! networks with per-zone subnets whose addresses run out, load balancers, and machines that
//! go `Pending -> Provisioning -> Running -> Terminating -> Terminated` after latencies drawn
//! from a configurable distribution ([`config::LatencyDistribution`]) and run through a time
//! scale (real time, faster, or zero delay). Regions have vCPU quotas; zones can run out of a
//! machine type.
//!
//! Faults ([`faults::Faults`]) are set at run time: provisioning failures, zone outages, spot
//! interruptions, throttling, boot latency scale, time scale, quota and capacity overrides.
//!
//! The cloud is persisted apart from the platform's store, in its own SQLite file
//! (`DATA_DIR/sim/cloud.db`, through `slipway_store::sqlite::SqliteStore`), because the cloud
//! outlives the control plane: after a restart every machine is still there and its lifecycle
//! resumes, so crashes can leave orphans that tests can find.
//!
//! Faces:
//! - in process: `SimCloud` implements [`slipway_provider::Provider`]; [`SimCloud::subscribe`]
//!   and [`SimCloud::list_all`] feed the workload-cluster simulator;
//! - over HTTP: [`http::router`] serves `/cloud/v1/...` (for `slipway sim serve`), and
//!   [`client::HttpProvider`] implements `Provider` against it.
//!
//! ```no_run
//! # async fn demo(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
//! use slipway_sim::{SimCloud, SimConfig, http};
//! let cloud = SimCloud::open(dir, SimConfig::default()).await?;
//! let app: axum::Router = http::router(cloud.clone());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

pub mod catalog;
pub mod client;
pub mod cloud;
pub mod config;
pub mod faults;
pub mod http;
mod lifecycle;
mod tagindex;

pub use catalog::SimCatalog;
pub use client::HttpProvider;
pub use cloud::{MachineEvent, MachineEventKind, SimCloud};
pub use config::{CatalogSource, LatencyDistribution, SimConfig, TimeScale};
pub use faults::{Faults, FaultsPatch};

/// Errors opening or configuring the simulated cloud (its provider calls return
/// [`slipway_provider::ProviderError`]).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The catalog file is unreadable or invalid.
    #[error("catalog: {0}")]
    Catalog(String),
    /// A start-up setting is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A fault setting is out of range or names something unknown.
    #[error("invalid faults: {0}")]
    InvalidFaults(String),
    /// The cloud's database failed.
    #[error("sim store: {0}")]
    Store(#[from] slipway_store::StoreError),
    /// The cloud's database holds something unreadable.
    #[error("sim store is corrupt: {0}")]
    Corrupt(String),
    /// A file-system or persistence failure.
    #[error("{0}")]
    Io(String),
}
