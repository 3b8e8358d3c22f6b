//! `slipway`: the one binary. `serve` runs the API server over an embedded SQLite store (or
//! etcd) with the simulated cloud in-process; `sim` runs or steers the simulator; `bench` runs
//! the benchmark scenarios.

/// mimalloc: a fleet's watch caches and JSON churn through many small allocations, and glibc's
/// `free` (`malloc_consolidate`) dominated a converged 1,000-cluster run's CPU. The
/// `system-allocator` feature leaves it out, for heap profilers that hook the C allocator
/// (heaptrack; docs/benchmarks.md).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod bench_fleet;
mod bench_sim;
mod cli;
mod demo;
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
    #[command(flatten)]
    global: cli::Global,
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
    #[command(flatten)]
    Client(cli::ClientCommand),
}

#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// The global `--data-dir` (set after parsing).
    #[arg(skip)]
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
    #[arg(long, default_value_t = slipway_registry::DEFAULT_WATCH_WINDOW)]
    watch_window: usize,
    /// Load the demo fleet from `examples/` (four tiers' classes, a dozen clusters over two
    /// regions) and run the simulator at a speed that shows clusters coming up in seconds.
    #[arg(long)]
    demo: bool,
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
    /// How often the orphan sweeper looks, the first time half this long after the start
    /// (each look lists every provider machine, about a CPU-second at 90,000 machines; an
    /// orphan is deleted between one and two grace periods after it was made).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
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
    // The client commands print what they did; their logs are only for trouble.
    let default_log = if matches!(cli.command, Command::Client(_)) {
        "warn,kube_client=off"
    } else {
        // kube-rs logs every failed call of the controllers' workload clients at ERROR; the
        // controllers report what matters in conditions and their own logs.
        "info,kube_client=off"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLIPWAY_LOG")
                .unwrap_or_else(|_| default_log.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let data_dir = cli.global.data_dir_or_default();
        match cli.command {
            Command::Serve(mut args) => {
                args.store.data_dir = data_dir;
                if args.demo && args.sim.time_scale.is_none() {
                    args.sim.time_scale = Some(demo::TIME_SCALE);
                }
                serve(args).await
            }
            Command::Sim(args) => sim::run(args, &data_dir).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Client(command) => {
                if let Err(e) = cli::run(command, &cli.global).await {
                    // A person reads this: the whole chain, no backtrace.
                    eprintln!("error: {e:#}");
                    std::process::exit(1);
                }
                Ok(())
            }
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
    if args.demo {
        if controllers.is_none() {
            anyhow::bail!("--demo needs the controllers and the in-process simulator");
        }
        let clusters = demo::load(&running.kubeconfig)
            .await
            .context("loading the demo fleet")?;
        let kubeconfig = running.kubeconfig.display();
        let data_dir = args.store.data_dir.display();
        eprintln!();
        eprintln!(
            "Demo fleet: {clusters} clusters in 4 tiers over eu-west-1 and us-east-1 are coming up."
        );
        eprintln!("  dashboard:  https://{}/ui/", running.local_addr);
        eprintln!("              sign in with the admin token: grep token: {kubeconfig}");
        eprintln!("              (the certificate is the server's own CA: accept it once)");
        eprintln!("  watch:      slipway --data-dir {data_dir} get clusters -A -w");
        eprintln!("  pools:      slipway --data-dir {data_dir} get pools -A -o wide");
        eprintln!(
            "  a tree:     slipway --data-dir {data_dir} describe cluster payments-eu -n team-payments"
        );
        eprintln!(
            "  scale:      slipway --data-dir {data_dir} scale cluster payments-eu -n team-payments --pool general --size 5 --wait"
        );
        eprintln!("  kubectl:    kubectl --kubeconfig {kubeconfig} get clusters -A");
        eprintln!(
            "  a fault:    slipway --data-dir {data_dir} sim faults --zone-outage us-east-1a"
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
