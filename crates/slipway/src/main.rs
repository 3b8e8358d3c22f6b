//! `slipway`: the one binary. `serve` runs the API server over an embedded SQLite store (or
//! etcd) with the simulated cloud in-process; `sim` runs or steers the simulator; `bench` runs
//! the benchmark scenarios.

/// mimalloc: a fleet's watch caches and JSON churn through many small allocations, and glibc's
/// `free` (`malloc_consolidate`) dominated a converged 1,000-cluster run's CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod bench_fleet;
mod bench_sim;
mod sim;
mod stores;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "slipway",
    version,
    about = "Kubernetes cluster fleets as a declarative API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the API server (embedded SQLite store by default).
    Serve(ServeArgs),
    /// Run the simulated cloud on its own, or turn its fault knobs.
    Sim(sim::SimCommand),
    /// Run a benchmark scenario and print its figures.
    Bench(bench::BenchArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// Where Slipway keeps its state: the SQLite database, certificates, tokens, kubeconfig.
    #[arg(long, default_value = "./slipway-data", env = "SLIPWAY_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Store backend: `sqlite` (embedded, default) or `etcd` (needs the `etcd` build feature).
    #[arg(long, default_value = "sqlite")]
    pub store: String,
    /// etcd client URLs, comma-separated (with `--store etcd`).
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    pub etcd_endpoints: Vec<String>,
    /// Prefix of every key Slipway writes to etcd (with `--store etcd`).
    #[arg(long, default_value = "/slipway")]
    pub etcd_prefix: String,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address to serve HTTPS on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Compact store history every interval, keeping one interval of it (e.g. `5m`, `30s`).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    compaction_interval: Duration,
    /// Interval between watch bookmarks for watchers that ask for them.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    bookmark_interval: Duration,
    /// Events the watch cache keeps for watchers resuming from a resourceVersion.
    #[arg(long, default_value_t = 100_000)]
    watch_window: usize,
    /// Do not run the simulated cloud in this process (e.g. it runs as `slipway sim serve`).
    #[arg(long)]
    no_sim: bool,
    #[command(flatten)]
    sim: sim::SimArgs,
    /// Run the platform's controllers (Clusters into machines) against the in-process
    /// simulated cloud. `--controllers=false` serves the API alone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    controllers: bool,
    /// How old a provider object or address whose owner is gone must be before the orphan
    /// sweeper deletes it (a create may still be recording it).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    orphan_grace: Duration,
    /// How often the orphan sweeper looks.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    orphan_sweep: Duration,
    /// A machine whose node has not joined this long after the machine runs is replaced.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    node_startup_timeout: Duration,
    /// A machine whose node has been NotReady (or whose zone has been out) this long is
    /// replaced.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    node_unhealthy_timeout: Duration,
    /// Failed machines of a cluster are not replaced while more than this share of its
    /// machines is unhealthy, e.g. `40%` (a zone outage must not start a replacement storm;
    /// machines whose instance is gone for good are replaced regardless).
    #[arg(long, default_value = "40%", value_parser = parse_percent)]
    max_unhealthy: f64,
    /// At most this many machines are being replaced for failing at once, fleet-wide.
    #[arg(long, default_value_t = 50)]
    max_remediating: usize,
    /// How often a converged Cluster or Machine is looked at again, as a safety net: changes
    /// arrive as events (the platform API's, and each workload cluster's Node watch).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    resync: Duration,
    /// Serve the kinds of a simulated workload cluster (Node, Pod, Deployment, ReplicaSet,
    /// PodDisruptionBudget, ...) instead of the platform API: for testing those kinds with
    /// kubectl until workload clusters are hosted inside the platform server.
    #[arg(long, hide = true)]
    workload_kinds: bool,
}

/// Parse a share as `40%` (or `40`) into 0.4.
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let n: f64 = text
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("invalid percentage {text:?}: expected e.g. 40%"))?;
    if (0.0..=100.0).contains(&n) {
        Ok(n / 100.0)
    } else {
        Err(format!("invalid percentage {text:?}: must be 0% to 100%"))
    }
}

/// Parse `500ms`, `30s`, `5m`, `2h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 500ms, 30s, 5m, 2h"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("invalid duration {text:?}: units are ms, s, m, h")),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLIPWAY_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Sim(args) => sim::run(args).await,
            Command::Bench(args) => bench::run(args).await,
        }
    })
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.store.data_dir)
        .with_context(|| format!("creating data directory {}", args.store.data_dir.display()))?;
    let store = stores::open(&args.store).await?;
    let simulator = if args.no_sim {
        None
    } else {
        Some(sim::start(&args.store.data_dir, &args.sim).await?)
    };
    // Cluster admission: ClusterClass defaults and policy, and the catalog's refusals.
    let catalog = match &simulator {
        Some(s) => Some(
            slipway_provider::Provider::catalog(&*s.cloud)
                .await
                .map_err(|e| anyhow::anyhow!("reading the catalog: {e}"))?,
        ),
        None => None,
    };
    let admission: Vec<std::sync::Arc<dyn slipway_apimachinery::Admission>> =
        vec![std::sync::Arc::new(
            slipway_lifecycle::ClusterAdmission::new(catalog),
        )];
    let config = slipway_registry::RegistryConfig {
        admission,
        watch_window: args.watch_window,
        compaction_interval: (!args.compaction_interval.is_zero())
            .then_some(args.compaction_interval),
        bookmark_interval: args.bookmark_interval,
        ..Default::default()
    };
    let kinds = if args.workload_kinds {
        slipway_api::workload_resources()
    } else {
        slipway_api::resources()
    };
    let registry = slipway_registry::Registry::start(store, kinds, config)
        .await
        .map_err(|e| anyhow::anyhow!("starting the registry: {e}"))?;
    let running = slipway_apiserver::serve(
        std::sync::Arc::clone(&registry),
        &slipway_apiserver::ServeConfig {
            data_dir: args.store.data_dir.clone(),
            listen: args.listen,
        },
    )
    .await?;
    eprintln!(
        "Slipway API server listening on https://{}",
        running.local_addr
    );
    eprintln!(
        "  store:      {} ({})",
        args.store.store,
        args.store.data_dir.display()
    );
    eprintln!("  kubeconfig: {}", running.kubeconfig.display());
    eprintln!("  dashboard:  https://{}/ui/", running.local_addr);
    eprintln!(
        "  try:        kubectl --kubeconfig {} api-resources",
        running.kubeconfig.display()
    );
    let controllers = match &simulator {
        Some(s) if args.controllers && !args.workload_kinds => {
            let client: std::sync::Arc<dyn slipway_client::Client> = std::sync::Arc::new(
                slipway_client::InProcess::new(std::sync::Arc::clone(&registry))
                    .with_manager(slipway_controllers::MANAGER),
            );
            let provider: std::sync::Arc<dyn slipway_provider::Provider> = s.cloud.clone();
            let ctx = slipway_controllers::Context::new(
                client,
                provider,
                slipway_controllers::LifecycleConfig {
                    orphan_grace: args.orphan_grace,
                    orphan_sweep: args.orphan_sweep,
                    resync: args.resync,
                    max_unhealthy: args.max_unhealthy,
                    max_remediating: args.max_remediating,
                    health: slipway_lifecycle::health::HealthTimeouts {
                        startup: args.node_startup_timeout,
                        unhealthy: args.node_unhealthy_timeout,
                    },
                    ..slipway_controllers::LifecycleConfig::default()
                },
            )
            .await
            .context("starting the controllers")?;
            let mut series = prometheus_client::registry::Registry::default();
            ctx.metrics.register(&mut series);
            running.server.metrics.include(std::sync::Arc::new(series));
            eprintln!("  controllers: cluster, machine, ippool, orphan sweeper (provider: sim)");
            Some(tokio::spawn(slipway_controllers::run(
                ctx,
                std::future::pending(),
            )))
        }
        _ => None,
    };
    if let Some(s) = &simulator {
        eprintln!("  simulator:  cloud API {}", s.endpoints.cloud_api);
        eprintln!(
            "              workload clusters {}/clusters/<name>",
            s.endpoints.clusters
        );
        eprintln!(
            "              faults: slipway sim faults --data-dir {} --help",
            args.store.data_dir.display()
        );
    }
    tokio::select! {
        result = running.task => result.context("server task failed")?,
        _ = tokio::signal::ctrl_c() => eprintln!("shutting down"),
    }
    if let Some(c) = controllers {
        c.abort();
    }
    if let Some(s) = simulator {
        s.shutdown().await;
    }
    Ok(())
}
