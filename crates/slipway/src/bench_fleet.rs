//! `slipway bench fleet`: the platform's controllers at scale. In one process: the platform
//! registry (SQLite, with Cluster admission), the zero-delay simulated cloud with its workload
//! clusters, and the Cluster and Machine controllers over the in-process client. A fleet of
//! Clusters (3 control-plane machines and 2 pools of 3 nodes each) is applied at once; the
//! scenario prints the time until every one is Ready, reconciles per second, peak memory, and
//! the CPU the converged fleet costs while nothing changes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use serde_json::json;
use slipway_api::cluster::Cluster;
use slipway_client::{Api, ApiResource, Client, InProcess, PostParams, WatchEvent, WatchParams};

use crate::bench_sim::{cpu_seconds, instant_simulator, peak_rss_mib, rss_mib};

#[derive(clap::Args, Debug)]
pub struct FleetArgs {
    /// Clusters in the fleet.
    #[arg(long, default_value_t = 1000)]
    clusters: usize,
    /// Reconciles in flight per controller.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 1800)]
    timeout: u64,
    /// Events the platform registry's watch cache keeps (as `serve --watch-window`).
    #[arg(long, default_value_t = slipway_registry::DEFAULT_WATCH_WINDOW)]
    watch_window: usize,
    /// How the controllers reach the simulated workload clusters' APIs: `memory` hands each
    /// request to the simulator's API router in this process (no socket, no TLS); `https`
    /// connects to its listener, two connections per cluster at each end.
    #[arg(long, value_enum, default_value_t = WorkloadTransport::Memory)]
    workload_transport: WorkloadTransport,
    /// Minutes of the converged fleet to measure the idle CPU over, each printed. The
    /// orphan sweep and the simulator's full pass come every five minutes: give 6 or more
    /// to see a window that holds both (the controllers' resync is spread over every
    /// minute).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=120))]
    idle_minutes: u64,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum WorkloadTransport {
    Memory,
    Https,
}

const NAMESPACE: &str = "fleet";
const REGIONS: [&str; 3] = ["eu-west-1", "us-east-1", "ap-southeast-1"];

fn manifest(i: usize, region: &str) -> serde_json::Value {
    json!({
        "apiVersion": "slipway.dev/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": format!("c{i:05}"), "namespace": NAMESPACE},
        "spec": {
            "version": "1.33.4",
            "infrastructure": {"provider": "sim", "region": region},
            "controlPlane": {"replicas": 3, "machineType": "m5.large"},
            "nodePools": [
                {"name": "general", "machineType": "m5.xlarge", "replicas": 3},
                {"name": "compute", "machineType": "c5.xlarge", "replicas": 3},
            ],
        },
    })
}

/// Whether a Cluster (as JSON) has the condition Ready=True.
fn ready(c: &serde_json::Value) -> bool {
    c.pointer("/status/conditions")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(serde_json::Value::as_str) == Some("Ready")
                    && c.get("status").and_then(serde_json::Value::as_str) == Some("True")
            })
        })
}

/// The Ready clusters, kept by a watch (so that counting them costs the fleet nothing).
async fn watch_ready(
    client: &Arc<dyn Client>,
) -> anyhow::Result<futures::stream::BoxStream<'static, slipway_client::Result<WatchEvent>>> {
    Ok(client
        .watch(
            &ApiResource::of::<Cluster>(),
            Some(NAMESPACE),
            &WatchParams::default(),
        )
        .await?)
}

pub async fn run(args: FleetArgs) -> anyhow::Result<()> {
    println!(
        "slipway bench fleet: {} clusters x (3 control-plane + 2 pools x 3 nodes), zero delay",
        args.clusters
    );
    println!(
        "machine: {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let dir = tempfile::tempdir()?;
    let (cloud, host, world) = instant_simulator(dir.path()).await?;
    let world_task = world.spawn();
    let catalog = slipway_provider::Provider::catalog(&*cloud)
        .await
        .map_err(|e| anyhow::anyhow!("catalog: {e}"))?;
    let regions: Vec<&str> = REGIONS
        .iter()
        .copied()
        .filter(|r| catalog.region(r).is_some())
        .collect();
    anyhow::ensure!(!regions.is_empty(), "the catalog has none of {REGIONS:?}");
    let store: Arc<dyn slipway_store::Store> = Arc::new(
        slipway_store::sqlite::SqliteStore::open(&dir.path().join("slipway.db"))
            .context("opening the platform store")?,
    );
    let registry = slipway_registry::Registry::start(
        Arc::clone(&store),
        slipway_api::resources(),
        slipway_registry::RegistryConfig {
            compaction_interval: Some(Duration::from_secs(60)),
            watch_window: args.watch_window,
            admission: vec![Arc::new(slipway_lifecycle::ClusterAdmission::new(Some(
                catalog,
            )))],
            ..Default::default()
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("starting the registry: {e}"))?;
    let client: Arc<dyn Client> =
        Arc::new(InProcess::new(Arc::clone(&registry)).with_manager(slipway_controllers::MANAGER));
    let ctx = slipway_controllers::Context::new(
        Arc::clone(&client),
        cloud.clone(),
        slipway_controllers::LifecycleConfig {
            concurrency: args.concurrency,
            poll: Duration::from_millis(500),
            ..Default::default()
        },
    )
    .await?;
    if args.workload_transport == WorkloadTransport::Memory {
        ctx.workloads
            .serve_in_process(host.base_url(), host.in_process_api());
    }
    println!(
        "workload APIs reached: {}",
        match args.workload_transport {
            WorkloadTransport::Memory => "in memory (the simulator's API router, no sockets)",
            WorkloadTransport::Https => "over HTTPS on loopback",
        }
    );
    let metrics = ctx.metrics.clone();
    let controllers = tokio::spawn(slipway_controllers::run(
        Arc::clone(&ctx),
        std::future::pending(),
    ));

    let namespaces = client
        .as_ref()
        .create(
            &slipway_client::ApiResource::of::<k8s_openapi::api::core::v1::Namespace>(),
            None,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
            &PostParams::default(),
        )
        .await;
    namespaces.context("creating the namespace")?;
    let clusters: Api<Cluster> = Api::namespaced(Arc::clone(&client), NAMESPACE);
    let started = Instant::now();
    let cpu_start = cpu_seconds().unwrap_or(0.0);
    let created = futures::stream::iter(0..args.clusters)
        .map(|i| {
            let clusters = clusters.clone();
            let obj = manifest(i, regions[i % regions.len()]);
            async move {
                let c: Cluster = serde_json::from_value(obj)?;
                clusters.create(&PostParams::default(), &c).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    for r in created {
        r?;
    }
    println!(
        "  applied {} clusters in {:.1} s",
        args.clusters,
        started.elapsed().as_secs_f64()
    );
    let deadline = started + Duration::from_secs(args.timeout);
    let mut reported = 0;
    // Starts with every Cluster as ADDED; a watch that ends (compaction) is opened again.
    let mut events = watch_ready(&client).await?;
    let mut ready_clusters = std::collections::HashSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    // A large fleet goes breadth-first: between the tenths, where its Machines are.
    let progress_every = Duration::from_secs(30);
    let mut next_progress = Instant::now() + progress_every;
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(WatchEvent::Added(c) | WatchEvent::Modified(c))) => {
                    let name = c.pointer("/metadata/name").and_then(serde_json::Value::as_str).unwrap_or_default().to_string();
                    if ready(&c) {
                        ready_clusters.insert(name);
                    } else {
                        ready_clusters.remove(&name);
                    }
                }
                Some(Ok(WatchEvent::Deleted(c))) => {
                    if let Some(name) = c.pointer("/metadata/name").and_then(serde_json::Value::as_str) {
                        ready_clusters.remove(name);
                    }
                }
                Some(Ok(WatchEvent::Bookmark { .. })) => {}
                Some(Ok(WatchEvent::Error(_)) | Err(_)) | None => {
                    ready_clusters.clear();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    events = watch_ready(&client).await?;
                }
            },
            _ = tick.tick() => {}
        }
        let n = ready_clusters.len();
        let tenths = (n * 10 / args.clusters.max(1)).min(10);
        if tenths > reported {
            reported = tenths;
            println!(
                "  {:>5} clusters Ready after {:.1} s (CPU {:.0} s, peak RSS {:.0} MiB)",
                n,
                started.elapsed().as_secs_f64(),
                cpu_seconds().unwrap_or(0.0) - cpu_start,
                peak_rss_mib().unwrap_or(0.0)
            );
        }
        if n == args.clusters {
            break;
        }
        if Instant::now() >= next_progress {
            next_progress += progress_every;
            let m = ctx.machine_progress();
            println!(
                "  {:>5} clusters Ready after {:.1} s; machines: {} running, {} registered, {} Ready, {} failed, {} deleting of {}; queued: {} clusters, {} machines (CPU {:.0} s, RSS {:.0} MiB)",
                n,
                started.elapsed().as_secs_f64(),
                m.running,
                m.registered,
                m.ready,
                m.failed,
                m.deleting,
                m.total,
                metrics.queue_depth("cluster"),
                metrics.queue_depth("machine"),
                cpu_seconds().unwrap_or(0.0) - cpu_start,
                rss_mib().unwrap_or(0.0)
            );
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {n} of {} clusters Ready after {} s",
            args.clusters,
            args.timeout
        );
    }
    let converged = started.elapsed();
    let cpu_to_ready = cpu_seconds().unwrap_or(0.0) - cpu_start;
    // One store revision per write: what the platform wrote to get there.
    let writes = store.current_revision().await.unwrap_or(0);
    let reconciles: u64 = ["cluster", "machine"]
        .iter()
        .flat_map(|c| ["success", "error"].map(|r| metrics.reconciles(c, r)))
        .sum();
    let machines = cloud.list_all().len();
    // Ready is not the end of the work: the last status writes, Events and the garbage
    // collector's passes follow, and the simulated clusters finish starting their own
    // components. The fleet has settled once neither the platform nor the simulated clusters
    // have written anything for a few seconds (or after two minutes, whichever comes first).
    let settle_start = Instant::now();
    let revisions = || async {
        (
            store.current_revision().await.unwrap_or(0),
            host.store().current_revision().await.unwrap_or(0),
        )
    };
    let at_ready = revisions().await;
    let mut last = at_ready;
    let mut still_since = Instant::now();
    while still_since.elapsed() < Duration::from_secs(5)
        && settle_start.elapsed() < Duration::from_secs(120)
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = revisions().await;
        if now != last {
            last = now;
            still_since = Instant::now();
        }
    }
    let settled = settle_start.elapsed();
    let platform_after_ready = last.0 - writes;
    let simulated_after_ready = last.1 - at_ready.1;
    // A converged fleet should cost next to nothing while nothing changes. Whole minutes,
    // so that the periodic work (the orphan sweep, the simulator's resync) falls in each;
    // two at least, since the first also holds the one-off aftermath of the build-up (the
    // store compacting away its history).
    let quiet = Duration::from_secs(60);
    let mut idle = Vec::new();
    let writes_before = revisions().await;
    // What ran in each minute: the controllers' reconciles and the simulator's cluster syncs
    // (applied, or skipped because nothing of the cluster had changed).
    let activity = || {
        let (applied, skipped) = world.sync_counts();
        (
            metrics.reconciles("cluster", "success") + metrics.reconciles("cluster", "error"),
            metrics.reconciles("machine", "success") + metrics.reconciles("machine", "error"),
            applied,
            skipped,
        )
    };
    for minute in 0..args.idle_minutes {
        let before = cpu_seconds().unwrap_or(0.0);
        let was = activity();
        tokio::time::sleep(quiet).await;
        let share = (cpu_seconds().unwrap_or(0.0) - before) / quiet.as_secs_f64();
        let now = activity();
        if args.idle_minutes > 2 {
            println!(
                "  idle minute {}: {:.1}% of a core ({} Cluster and {} Machine reconciles; \
                 simulator: {} cluster syncs applied, {} skipped)",
                minute + 1,
                share * 100.0,
                now.0 - was.0,
                now.1 - was.1,
                now.2 - was.2,
                now.3 - was.3,
            );
        }
        idle.push(share);
    }
    let writes_idle = revisions().await;

    println!("\n== fleet ==");
    println!(
        "all {} clusters Ready:    {:.1} s ({} provider machines)",
        args.clusters,
        converged.as_secs_f64(),
        machines
    );
    println!(
        "reconciles:              {} ({:.0}/s)",
        reconciles,
        reconciles as f64 / converged.as_secs_f64()
    );
    println!(
        "CPU until Ready:         {:.1} s ({:.0} ms per cluster)",
        cpu_to_ready,
        cpu_to_ready * 1000.0 / args.clusters.max(1) as f64
    );
    println!(
        "platform writes:         {} ({:.1} per cluster)",
        writes,
        writes as f64 / args.clusters.max(1) as f64
    );
    println!(
        "peak RSS:                {:.0} MiB",
        peak_rss_mib().unwrap_or(0.0)
    );
    println!(
        "settled:                 {:.1} s after Ready ({} platform writes more, {} in the simulated clusters)",
        settled.as_secs_f64(),
        platform_after_ready,
        simulated_after_ready
    );
    let percent = |share: &f64| format!("{:.1}%", share * 100.0);
    let after_first = &idle[1.min(idle.len() - 1)..];
    println!(
        "idle CPU once settled:   {} of a core in the first minute, {} on average over the {} after it ({} platform writes, {} in the simulated clusters)",
        percent(&idle[0]),
        percent(&(after_first.iter().sum::<f64>() / after_first.len() as f64)),
        if after_first.len() == 1 {
            "one minute".to_string()
        } else {
            format!("{} minutes", after_first.len())
        },
        writes_idle.0 - writes_before.0,
        writes_idle.1 - writes_before.1
    );
    controllers.abort();
    world_task.abort();
    Ok(())
}
