//! The simulator, in-process (`slipway serve`) or as its own process (`slipway sim serve`),
//! and the `slipway sim ...` commands that turn its knobs at run time.
//!
//! A running simulator has two endpoints: the cloud API (`/cloud/v1/...`, plain HTTP on
//! loopback, what the `sim` provider and `slipway sim faults` talk to) and the workload
//! clusters' Kubernetes APIs (`https://HOST:PORT/clusters/<name>`). Both addresses are written
//! to `DATA_DIR/sim/endpoints.json` so other commands find them.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use slipway_provider::Provider as _;
use slipway_sim::{FaultsPatch, HttpProvider, SimCloud, SimConfig, TimeScale};
use slipway_simhost::world::World;
use slipway_simhost::{HostConfig, WorkloadHost};

/// Where the simulator listens and how fast it runs.
#[derive(Args, Debug, Clone)]
pub struct SimArgs {
    /// Address of the simulated cloud's API (plain HTTP; keep it on loopback).
    #[arg(long, default_value = "127.0.0.1:6480")]
    pub sim_api_listen: SocketAddr,
    /// Address of the simulated workload clusters' Kubernetes APIs (HTTPS).
    #[arg(long, default_value = "127.0.0.1:6444")]
    pub sim_clusters_listen: SocketAddr,
    /// Simulated time per real time: 1 is real time, 60 makes a 40 s boot take under a
    /// second, 0 removes every delay. Unset: what the simulator last ran with.
    #[arg(long)]
    pub time_scale: Option<f64>,
}

/// The endpoints of a running simulator, as written to `DATA_DIR/sim/endpoints.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    pub cloud_api: String,
    pub clusters: String,
}

pub fn sim_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("sim")
}

fn endpoints_path(data_dir: &Path) -> PathBuf {
    sim_dir(data_dir).join("endpoints.json")
}

/// A simulator running in this process.
pub struct RunningSim {
    pub cloud: Arc<SimCloud>,
    pub host: Arc<WorkloadHost>,
    pub endpoints: Endpoints,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    world: Arc<World>,
}

impl RunningSim {
    /// Stop serving and close the simulator's stores.
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        // The world's in-cluster tasks hold the clusters' registries: stop them first.
        drop(self.world);
        self.host.shutdown().await;
        self.cloud.shutdown().await;
    }
}

/// Open the simulator's state in `DATA_DIR/sim` and start everything it runs.
pub async fn start(data_dir: &Path, args: &SimArgs) -> anyhow::Result<RunningSim> {
    let dir = sim_dir(data_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let time_scale = args
        .time_scale
        .map(TimeScale::new)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--time-scale: {e}"))?;
    let cloud = SimCloud::open(
        data_dir,
        SimConfig {
            time_scale,
            ..SimConfig::default()
        },
    )
    .await
    .context("opening the simulated cloud")?;
    let host = WorkloadHost::start(
        HostConfig {
            dir: dir.clone(),
            listen: args.sim_clusters_listen,
            compaction_interval: Some(std::time::Duration::from_secs(300)),
        },
        slipway_api::workload_resources(),
    )
    .await
    .context("starting the simulated workload clusters")?;
    let world = World::new(Arc::clone(&host), Arc::clone(&cloud));
    let world_task = world.spawn();
    let listener = tokio::net::TcpListener::bind(args.sim_api_listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.sim_api_listen))?;
    let api_addr = listener.local_addr()?;
    let router = slipway_sim::http::router(Arc::clone(&cloud));
    let api_task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "the simulated cloud's API stopped");
        }
    });
    let endpoints = Endpoints {
        cloud_api: format!("http://{api_addr}"),
        clusters: slipway_apiserver::pki::client_url(host.local_addr()),
    };
    std::fs::write(
        endpoints_path(data_dir),
        serde_json::to_vec_pretty(&endpoints)?,
    )
    .context("writing the simulator's endpoints")?;
    Ok(RunningSim {
        cloud,
        host,
        endpoints,
        tasks: vec![world_task, api_task],
        world,
    })
}

#[derive(Args, Debug)]
pub struct SimCommand {
    #[command(subcommand)]
    command: SimSub,
}

#[derive(Subcommand, Debug)]
enum SimSub {
    /// Run the simulator as its own process (cloud API + workload clusters).
    Serve(SimServeArgs),
    /// Show or change the fault knobs of a running simulator.
    Faults(FaultsArgs),
    /// List the simulated cloud's machines.
    Machines(ClientArgs),
    /// Print everything the simulated cloud holds (networks, subnets, load balancers and
    /// machines) as JSON: what is left after a fleet is deleted, which address each machine has.
    Inventory(ClientArgs),
    /// Print a kubeconfig for a simulated workload cluster.
    Kubeconfig(KubeconfigArgs),
}

#[derive(Args, Debug)]
struct KubeconfigArgs {
    /// The workload cluster's name.
    cluster: String,
    /// The admin token its control plane was bootstrapped with.
    #[arg(long, env = "SLIPWAY_SIM_TOKEN")]
    token: String,
}

#[derive(Args, Debug)]
struct SimServeArgs {
    #[command(flatten)]
    sim: SimArgs,
}

#[derive(Args, Debug)]
struct ClientArgs {
    /// The simulated cloud's API; default: the one recorded in `DATA_DIR/sim/endpoints.json`.
    #[arg(long)]
    sim_url: Option<String>,
}

#[derive(Args, Debug)]
struct FaultsArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Probability (0..1) that a new machine fails to boot.
    #[arg(long)]
    provisioning_failure_rate: Option<f64>,
    /// Take a zone down (repeatable).
    #[arg(long = "zone-outage", value_name = "ZONE")]
    zone_outage: Vec<String>,
    /// Bring a zone back (repeatable).
    #[arg(long = "zone-restore", value_name = "ZONE")]
    zone_restore: Vec<String>,
    /// Probability (0..1) that a running spot machine is interrupted at each check.
    #[arg(long)]
    spot_interruption_rate: Option<f64>,
    /// Run a zone out of spot capacity: spot creates there fail (repeatable).
    #[arg(long = "spot-unavailable", value_name = "ZONE")]
    spot_unavailable: Vec<String>,
    /// Give a zone its spot capacity back (repeatable).
    #[arg(long = "spot-available", value_name = "ZONE")]
    spot_available: Vec<String>,
    /// Probability (0..1) that a cloud API call is throttled (429 with Retry-After).
    #[arg(long)]
    throttle_rate: Option<f64>,
    /// Multiplier of boot latencies.
    #[arg(long)]
    boot_latency_scale: Option<f64>,
    /// Simulated time per real time (0: no delays).
    #[arg(long)]
    time_scale: Option<f64>,
    /// Turn every fault off (rates 0, no outages, latency scale 1).
    #[arg(long)]
    clear: bool,
}

/// A set of zones after `add` and `remove` (from `patched`, else `current`); `patched` itself
/// when neither names a zone.
fn toggled(
    patched: Option<BTreeSet<String>>,
    current: &BTreeSet<String>,
    add: &[String],
    remove: &[String],
) -> Option<BTreeSet<String>> {
    if add.is_empty() && remove.is_empty() {
        return patched;
    }
    let mut zones = patched.unwrap_or_else(|| current.clone());
    zones.extend(add.iter().cloned());
    for z in remove {
        zones.remove(z);
    }
    Some(zones)
}

/// The endpoints a simulator using `data_dir` recorded when it started.
pub fn read_endpoints(data_dir: &Path) -> anyhow::Result<Endpoints> {
    let path = endpoints_path(data_dir);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no simulator found: {} is missing. Start one with `slipway serve` or `slipway sim serve`, or pass --sim-url",
            path.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))
}

impl ClientArgs {
    fn provider(&self, data_dir: &Path) -> anyhow::Result<HttpProvider> {
        let url = match &self.sim_url {
            Some(u) => u.clone(),
            None => read_endpoints(data_dir)?.cloud_api,
        };
        HttpProvider::new(&url).map_err(|e| anyhow::anyhow!("--sim-url: {e}"))
    }
}

/// Run `slipway sim ...` with the simulator's state under `data_dir`.
pub async fn run(cmd: SimCommand, data_dir: &Path) -> anyhow::Result<()> {
    match cmd.command {
        SimSub::Serve(args) => {
            let running = start(data_dir, &args.sim).await?;
            eprintln!("Slipway simulator running");
            eprintln!("  cloud API:         {}", running.endpoints.cloud_api);
            eprintln!(
                "  workload clusters: {}/clusters/<name>",
                running.endpoints.clusters
            );
            eprintln!("  state:             {}", sim_dir(data_dir).display());
            tokio::signal::ctrl_c().await?;
            eprintln!("shutting down");
            running.shutdown().await;
            Ok(())
        }
        SimSub::Faults(args) => {
            let provider = args.client.provider(data_dir)?;
            let current = provider
                .faults()
                .await
                .map_err(|e| anyhow::anyhow!("reading the faults: {e}"))?;
            let mut patch = FaultsPatch {
                provisioning_failure_rate: args.provisioning_failure_rate,
                spot_interruption_rate: args.spot_interruption_rate,
                throttle_rate: args.throttle_rate,
                boot_latency_scale: args.boot_latency_scale,
                time_scale: args
                    .time_scale
                    .map(TimeScale::new)
                    .transpose()
                    .map_err(|e| anyhow::anyhow!("--time-scale: {e}"))?,
                ..FaultsPatch::default()
            };
            if args.clear {
                patch.provisioning_failure_rate = Some(0.0);
                patch.spot_interruption_rate = Some(0.0);
                patch.throttle_rate = Some(0.0);
                patch.boot_latency_scale = Some(1.0);
                patch.zone_outages = Some(BTreeSet::new());
                patch.spot_unavailable = Some(BTreeSet::new());
            }
            if !args.spot_unavailable.is_empty() || !args.spot_available.is_empty() {
                let mut zones = patch
                    .spot_unavailable
                    .clone()
                    .unwrap_or_else(|| current.spot_unavailable.clone());
                zones.extend(args.spot_unavailable.iter().cloned());
                for z in &args.spot_available {
                    zones.remove(z);
                }
                patch.spot_unavailable = Some(zones);
            }
            patch.zone_outages = toggled(
                patch.zone_outages.take(),
                &current.zone_outages,
                &args.zone_outage,
                &args.zone_restore,
            );
            patch.spot_unavailable = toggled(
                patch.spot_unavailable.take(),
                &current.spot_unavailable,
                &args.spot_unavailable,
                &args.spot_available,
            );
            let faults = if patch == FaultsPatch::default() {
                current
            } else {
                provider
                    .patch_faults(&patch)
                    .await
                    .map_err(|e| anyhow::anyhow!("setting the faults: {e}"))?
            };
            println!("{}", serde_json::to_string_pretty(&faults)?);
            Ok(())
        }
        SimSub::Kubeconfig(args) => {
            let endpoints = read_endpoints(data_dir)?;
            let ca_path = sim_dir(data_dir).join("pki").join("ca.crt");
            let ca = std::fs::read_to_string(&ca_path)
                .with_context(|| format!("reading the simulator's CA {}", ca_path.display()))?;
            let url = format!(
                "{}{}",
                endpoints.clusters,
                slipway_apiserver::tenants::path_prefix(&args.cluster)
            );
            print!(
                "{}",
                slipway_apiserver::pki::render_kubeconfig(
                    &args.cluster,
                    &url,
                    &ca,
                    "admin",
                    &args.token
                )
            );
            Ok(())
        }
        SimSub::Machines(args) => {
            let provider = args.provider(data_dir)?;
            let machines = provider
                .list_machines(&Default::default())
                .await
                .map_err(|e| anyhow::anyhow!("listing machines: {e}"))?;
            println!(
                "{:<24} {:<14} {:<14} {:<12} {:<10} {:<16} CLUSTER",
                "ID", "ZONE", "TYPE", "CAPACITY", "PHASE", "IP"
            );
            for m in machines {
                println!(
                    "{:<24} {:<14} {:<14} {:<12} {:<10} {:<16} {}",
                    m.id,
                    m.spec.zone,
                    m.spec.machine_type,
                    serde_json::to_value(m.spec.capacity_type)?
                        .as_str()
                        .unwrap_or_default(),
                    serde_json::to_value(m.status.phase)?
                        .as_str()
                        .unwrap_or_default(),
                    m.status
                        .private_ip
                        .map(|ip| ip.to_string())
                        .unwrap_or_default(),
                    m.spec
                        .tags
                        .get(slipway_provider::CLUSTER_TAG)
                        .cloned()
                        .unwrap_or_default(),
                );
            }
            Ok(())
        }
        SimSub::Inventory(args) => {
            let provider = args.provider(data_dir)?;
            let all = Default::default();
            let inventory = serde_json::json!({
                "networks": provider.list_networks(&all).await.map_err(|e| anyhow::anyhow!("listing networks: {e}"))?,
                "subnets": provider.list_subnets(&all).await.map_err(|e| anyhow::anyhow!("listing subnets: {e}"))?,
                "loadBalancers": provider.list_load_balancers(&all).await.map_err(|e| anyhow::anyhow!("listing load balancers: {e}"))?,
                "machines": provider.list_machines(&all).await.map_err(|e| anyhow::anyhow!("listing machines: {e}"))?,
            });
            println!("{}", serde_json::to_string_pretty(&inventory)?);
            Ok(())
        }
    }
}
