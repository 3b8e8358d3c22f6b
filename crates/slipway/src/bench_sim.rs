//! `slipway bench sim`: the simulator at scale. Builds many simulated workload clusters at
//! zero delay (machines through the `sim` provider, a Deployment filling every worker), then
//! measures API latency into one of them while all exist, and reports time to build and peak
//! memory. Figures are printed, never asserted: see docs/benchmarks.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;
use slipway_registry::{ListParams, WriteOptions};
use slipway_sim::{FaultsPatch, SimCloud, SimConfig};
use slipway_simhost::scenario::{ClusterRequest, Pool, provision};
use slipway_simhost::world::World;
use slipway_simhost::{HostConfig, WorkloadHost};

use crate::bench::{ms, percentile};

#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// Workload clusters to build.
    #[arg(long, default_value_t = 1000)]
    clusters: usize,
    /// Worker nodes per cluster (plus one control-plane machine).
    #[arg(long, default_value_t = 10)]
    nodes: usize,
    /// Pods per worker node.
    #[arg(long, default_value_t = 30)]
    pods_per_node: usize,
    /// Clusters being built at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Requests per latency figure.
    #[arg(long, default_value_t = 300)]
    samples: usize,
}

const TOKEN: &str = "bench-admin-token";

pub(crate) fn peak_rss_mib() -> Option<f64> {
    proc_status_mib("VmHWM:")
}

/// The resident set now, in MiB.
pub(crate) fn rss_mib() -> Option<f64> {
    proc_status_mib("VmRSS:")
}

fn proc_status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// A zero-delay simulated cloud with quotas raised for a fleet, its workload host and the
/// simulator's in-cluster components (not yet spawned), all under `dir`.
pub(crate) async fn instant_simulator(
    dir: &std::path::Path,
) -> anyhow::Result<(Arc<SimCloud>, Arc<WorkloadHost>, Arc<World>)> {
    let cloud = SimCloud::open(dir, SimConfig::instant())
        .await
        .context("opening the simulated cloud")?;
    // A fleet this size is far above a default account's quota.
    let regions: Vec<String> = cloud
        .sim_catalog()
        .catalog
        .regions
        .iter()
        .map(|r| r.name.clone())
        .collect();
    cloud
        .patch_faults(&FaultsPatch {
            vcpu_quotas: regions
                .iter()
                .map(|r| (r.clone(), Some(u64::MAX / 4)))
                .collect(),
            ..Default::default()
        })
        .await
        .context("raising quotas")?;
    let host = WorkloadHost::start(
        HostConfig {
            dir: dir.join("sim"),
            listen: "127.0.0.1:0".parse()?,
            compaction_interval: Some(Duration::from_secs(60)),
        },
        slipway_api::workload_resources(),
    )
    .await
    .context("starting the workload host")?;
    let world = World::new(Arc::clone(&host), Arc::clone(&cloud));
    Ok((cloud, host, world))
}

/// CPU time (user + system) the process used so far, in seconds.
pub(crate) fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // Linux reports clock ticks of 1/100 s (USER_HZ) to user space.
    Some(ticks / 100.0)
}

fn cluster_name(i: usize) -> String {
    format!("bench-{i:04}")
}

pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let pods_per_cluster = args.nodes * args.pods_per_node;
    println!(
        "slipway bench sim: {} clusters x {} nodes x {} pods/node = {} pods, zero delay, {} at once",
        args.clusters,
        args.nodes,
        args.pods_per_node,
        args.clusters * pods_per_cluster,
        args.concurrency
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

    let started = Instant::now();
    let cpu_start = cpu_seconds().unwrap_or(0.0);
    let built = futures::stream::iter(0..args.clusters)
        .map(|i| {
            let cloud = Arc::clone(&cloud);
            let host = Arc::clone(&host);
            let nodes = args.nodes;
            async move {
                let t = Instant::now();
                build_one(&cloud, &host, i, nodes, pods_per_cluster).await?;
                anyhow::Ok(t.elapsed())
            }
        })
        .buffer_unordered(args.concurrency.max(1));
    futures::pin_mut!(built);
    let mut per_cluster = Vec::with_capacity(args.clusters);
    while let Some(r) = built.next().await {
        per_cluster.push(r?);
        if per_cluster.len() % 100 == 0 || per_cluster.len() == args.clusters {
            println!(
                "  {:>5} clusters ready after {:.1} s (CPU {:.0} s, peak RSS {:.0} MiB)",
                per_cluster.len(),
                started.elapsed().as_secs_f64(),
                cpu_seconds().unwrap_or(0.0) - cpu_start,
                peak_rss_mib().unwrap_or(0.0)
            );
        }
    }
    let build_time = started.elapsed();
    per_cluster.sort();
    // What every cluster costs when nothing changes: the process's CPU over a quiet window.
    let quiet = Duration::from_secs(20);
    let before = cpu_seconds().unwrap_or(0.0);
    let revision_before = host.store().current_revision().await?;
    tokio::time::sleep(quiet).await;
    let idle_cpu = (cpu_seconds().unwrap_or(0.0) - before) / quiet.as_secs_f64();
    let idle_writes = host.store().current_revision().await? - revision_before;
    println!("\n== build ==");
    println!(
        "time to build:           {:.1} s ({:.1} clusters/s, {:.0} pods/s)",
        build_time.as_secs_f64(),
        args.clusters as f64 / build_time.as_secs_f64(),
        (args.clusters * pods_per_cluster) as f64 / build_time.as_secs_f64()
    );
    println!(
        "per cluster (concurrent): p50 {}  p99 {}",
        ms(percentile(&per_cluster, 0.5)),
        ms(percentile(&per_cluster, 0.99))
    );
    println!(
        "peak RSS:                {:.0} MiB",
        peak_rss_mib().unwrap_or(0.0)
    );
    println!(
        "idle CPU once built:     {:.1}% of a core, {} writes ({} s window)",
        idle_cpu * 100.0,
        idle_writes,
        quiet.as_secs()
    );
    let size = std::fs::metadata(dir.path().join("sim/workloads.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "workload store:          {:.0} MiB (+ WAL), revision {}",
        size as f64 / 1048576.0,
        host.store().current_revision().await?
    );

    // Latency into one cluster while every cluster exists, through its HTTPS API.
    let target = cluster_name(args.clusters / 2);
    let kubeconfig = host.kubeconfig(&target, TOKEN);
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::from_yaml(&kubeconfig)?,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    let client = kube::Client::try_from(config)?;
    let pods: kube::Api<Pod> = kube::Api::namespaced(client.clone(), "default");
    let nodes: kube::Api<Node> = kube::Api::all(client.clone());
    let some_pod = pods
        .list(&kube::api::ListParams::default().limit(1))
        .await?
        .items
        .into_iter()
        .next()
        .and_then(|p| p.metadata.name)
        .context("the target cluster has no pods")?;
    println!(
        "\n== API latency into {target} ({} samples each, one client) ==",
        args.samples
    );
    let report = |what: &str, mut samples: Vec<Duration>| {
        samples.sort();
        println!(
            "{what:<28} p50 {:>9}  p99 {:>9}",
            ms(percentile(&samples, 0.5)),
            ms(percentile(&samples, 0.99))
        );
    };
    let mut s = Vec::new();
    for _ in 0..args.samples {
        let t = Instant::now();
        pods.get(&some_pod).await?;
        s.push(t.elapsed());
    }
    report("GET pod", s);
    let mut s = Vec::new();
    for _ in 0..args.samples {
        let t = Instant::now();
        let l = pods.list(&kube::api::ListParams::default()).await?;
        anyhow::ensure!(
            l.items.len() == pods_per_cluster,
            "listed {} pods",
            l.items.len()
        );
        s.push(t.elapsed());
    }
    report(&format!("LIST pods ({pods_per_cluster})"), s);
    let mut s = Vec::new();
    for _ in 0..args.samples {
        let t = Instant::now();
        nodes.list(&kube::api::ListParams::default()).await?;
        s.push(t.elapsed());
    }
    report(&format!("LIST nodes ({})", args.nodes + 1), s);
    let mut s = Vec::new();
    for i in 0..args.samples {
        let t = Instant::now();
        let name = format!("probe-{i}");
        pods.create(
            &kube::api::PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name},
                // A scheduler nobody runs: the pod stays as created, untouched by the simulator.
                "spec": {"containers": [{"name": "c", "image": "busybox"}], "schedulerName": "bench-probe"}
            }))?,
        )
        .await?;
        s.push(t.elapsed());
        pods.delete(&name, &kube::api::DeleteParams::default())
            .await?;
    }
    report("CREATE pod", s);
    println!(
        "peak RSS (end):          {:.0} MiB",
        peak_rss_mib().unwrap_or(0.0)
    );
    world_task.abort();
    drop(world);
    host.shutdown().await;
    cloud.shutdown().await;
    Ok(())
}

/// Provision one cluster, wait for its nodes, fill it with a Deployment and wait until every
/// pod is available.
async fn build_one(
    cloud: &Arc<SimCloud>,
    host: &Arc<WorkloadHost>,
    i: usize,
    nodes: usize,
    pods: usize,
) -> anyhow::Result<()> {
    let name = cluster_name(i);
    let regions = ["eu-west-1", "us-east-1", "ap-southeast-1"];
    let region = regions[i % regions.len()];
    let zones: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|z| format!("{region}{z}"))
        .collect();
    provision(
        cloud.as_ref(),
        &ClusterRequest {
            name: name.clone(),
            region: region.into(),
            zones,
            control_plane_type: "m5.large".into(),
            control_plane_replicas: 1,
            pools: vec![Pool::new("general", "m5.2xlarge", nodes)],
            kubernetes_version: "1.33.4".into(),
            admin_token: TOKEN.into(),
            network_octet: (i % 250) as u8,
        },
    )
    .await
    .with_context(|| format!("provisioning {name}"))?;
    let registry = loop {
        if let Some(r) = host.registry(&name) {
            let node_def = r.resource("", "v1", "nodes").context("nodes served")?;
            // Under load a consistent read can time out (504, as kube-apiserver's would):
            // a client retries.
            if let Ok(n) = r.list(&node_def, None, &ListParams::default()).await
                && n.items.len() == nodes + 1
            {
                break r;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let deployments = registry
        .resource("apps", "v1", "deployments")
        .context("deployments served")?;
    let manifest = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "fill"},
        "spec": {
            "replicas": pods,
            "selector": {"matchLabels": {"app": "fill"}},
            "template": {"metadata": {"labels": {"app": "fill"}}, "spec": {"containers": [{"name": "app", "image": "registry.example/app:1", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}
        }
    });
    let mut attempts = 0;
    loop {
        match registry
            .create(
                &deployments,
                Some("default"),
                manifest.clone(),
                &WriteOptions::default(),
            )
            .await
        {
            Ok(_) => break,
            Err(e) if e.code == 409 => break,
            Err(e) if e.code >= 500 && attempts < 20 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => anyhow::bail!("creating the deployment in {name}: {}", e.message),
        }
    }
    loop {
        if let Ok(d) = registry.get(&deployments, Some("default"), "fill").await
            && d["status"]["availableReplicas"].as_u64() == Some(pods as u64)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
