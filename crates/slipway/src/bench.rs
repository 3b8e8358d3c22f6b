//! `slipway bench api`: throughput and latency of the API server on each store backend,
//! measured through the real HTTPS API with kube-rs clients, plus raw store figures.
//!
//! Figures are printed, never asserted: see docs/benchmarks.md for how to read them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use slipway_store::Store;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(clap::Subcommand, Debug)]
enum Scenario {
    /// The API server: creates, updates, gets, lists and watch delivery, per store backend.
    Api(ApiArgs),
    /// The simulator at scale: many workload clusters full of pods, built at zero delay.
    Sim(crate::bench_sim::SimArgs),
    /// The platform's controllers at scale: a fleet of Clusters applied at once, until Ready.
    Fleet(crate::bench_fleet::FleetArgs),
}

#[derive(clap::Args, Debug)]
struct ApiArgs {
    /// Backends to measure: sqlite, etcd (needs the etcd feature and an `etcd` binary), or all.
    #[arg(long, default_value = "all")]
    backend: String,
    /// Concurrent clients for the throughput phases.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Objects created (and then listed).
    #[arg(long, default_value_t = 10_000)]
    objects: usize,
    /// Watcher counts for the watch delivery phase.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    watchers: Vec<usize>,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.scenario {
        Scenario::Api(a) => api(a).await,
        Scenario::Sim(a) => crate::bench_sim::run(a).await,
        Scenario::Fleet(a) => crate::bench_fleet::run(a).await,
    }
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn api(args: ApiArgs) -> anyhow::Result<()> {
    let want = |b: &str| args.backend == "all" || args.backend == b;
    println!(
        "slipway bench api: {} clients, {} objects, watchers {:?}",
        args.clients, args.objects, args.watchers
    );
    println!(
        "machine: {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    if want("sqlite") {
        let dir = tempfile::tempdir()?;
        let store: Arc<dyn Store> = Arc::new(slipway_store::sqlite::SqliteStore::open(
            &dir.path().join("bench.db"),
        )?);
        println!("\n== sqlite (embedded, WAL, synchronous=FULL) ==");
        raw_store(&store, args.clients).await?;
        through_api(store, dir.path(), &args).await?;
    }
    if want("etcd") {
        etcd(&args).await?;
    }
    Ok(())
}

#[cfg(feature = "etcd")]
async fn etcd(args: &ApiArgs) -> anyhow::Result<()> {
    // etcd's data on the same disk as SQLite's, so both pay for the same fsyncs.
    let dir = tempfile::tempdir()?;
    let etcd = slipway_store_etcd::testing::EtcdProcess::start_in(dir.path());
    let store: Arc<dyn Store> =
        Arc::new(slipway_store_etcd::EtcdStore::connect(&etcd.endpoints(), "/bench").await?);
    println!("\n== etcd ({}) ==", etcd.endpoints().join(","));
    raw_store(&store, args.clients).await?;
    through_api(store, dir.path(), args).await?;
    Ok(())
}

#[cfg(not(feature = "etcd"))]
async fn etcd(args: &ApiArgs) -> anyhow::Result<()> {
    if args.backend == "etcd" {
        anyhow::bail!(
            "this slipway was built without the etcd feature: cargo run --release --features etcd -- bench api"
        );
    }
    println!("\n== etcd: skipped (build with --features etcd) ==");
    Ok(())
}

/// The store alone: concurrent creates (the backend's raw write throughput) and one writer's latency.
async fn raw_store(store: &Arc<dyn Store>, clients: usize) -> anyhow::Result<()> {
    let total = 20_000usize;
    let value = bytes::Bytes::from(vec![b'x'; 512]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let store = Arc::clone(store);
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            for i in (c..total).step_by(clients) {
                store
                    .create(&format!("/bench/raw/{i:08}"), value.clone())
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = started.elapsed();
    println!(
        "store writes ({clients} writers):      {:>10.0} writes/s",
        total as f64 / elapsed.as_secs_f64()
    );
    let mut lat = Vec::new();
    for i in 0..500 {
        let t = Instant::now();
        store
            .create(&format!("/bench/single/{i:08}"), value.clone())
            .await?;
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "store single write (1 writer):  p50 {}  p99 {}",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99))
    );
    let t = Instant::now();
    let mut n = 0;
    let mut start_after = None;
    loop {
        let page = store
            .list(
                "/bench/raw/",
                slipway_store::ListOptions {
                    start_after: start_after.clone(),
                    limit: Some(10_000),
                    revision: None,
                },
            )
            .await?;
        n += page.items.len();
        start_after = page.items.last().map(|kv| kv.key.clone());
        if !page.more || n >= 10_000 {
            break;
        }
    }
    println!("store list {n} keys:            {}", ms(t.elapsed()));
    Ok(())
}

async fn through_api(
    store: Arc<dyn Store>,
    dir: &std::path::Path,
    args: &ApiArgs,
) -> anyhow::Result<()> {
    let config = slipway_registry::RegistryConfig {
        compaction_interval: None,
        ..Default::default()
    };
    let registry = slipway_registry::Registry::start(store, slipway_api::resources(), config)
        .await
        .map_err(|e| anyhow::anyhow!("registry: {e}"))?;
    let running = slipway_apiserver::serve(
        registry,
        &slipway_apiserver::ServeConfig {
            data_dir: dir.to_path_buf(),
            listen: "127.0.0.1:0".parse()?,
        },
    )
    .await?;
    let kubeconfig = kube::config::Kubeconfig::read_from(&running.kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    // Several connections, as many independent clients would have.
    let clients: Vec<kube::Client> = (0..8)
        .map(|_| kube::Client::try_from(config.clone()))
        .collect::<Result<_, _>>()?;
    let api_for = |i: usize| -> Api<ConfigMap> {
        Api::namespaced(clients[i % clients.len()].clone(), "default")
    };

    // Creates.
    let payload = "x".repeat(512);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let api = api_for(c);
        let payload = payload.clone();
        let (clients_n, total) = (args.clients, args.objects);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for i in (c..total).step_by(clients_n) {
                let cm = configmap(&format!("cm-{i:06}"), &payload);
                let t = Instant::now();
                api.create(&PostParams::default(), &cm).await?;
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let elapsed = started.elapsed();
    lat.sort();
    println!(
        "API creates ({} clients):        {:>10.0} /s   p50 {}  p99 {}",
        args.clients,
        args.objects as f64 / elapsed.as_secs_f64(),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99))
    );

    // Updates (merge patches, each a read-modify-CAS in the registry).
    let updates = args.objects.min(10_000);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let api = api_for(c);
        let (clients_n, total) = (args.clients, updates);
        tasks.push(tokio::spawn(async move {
            for i in (c..total).step_by(clients_n) {
                let patch = serde_json::json!({"data": {"n": i.to_string()}});
                api.patch(
                    &format!("cm-{i:06}"),
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    println!(
        "API updates ({} clients):        {:>10.0} /s",
        args.clients,
        updates as f64 / started.elapsed().as_secs_f64()
    );

    // Single-writer latency.
    let api = api_for(0);
    let mut lat = Vec::new();
    for i in 0..500 {
        let t = Instant::now();
        api.create(
            &PostParams::default(),
            &configmap(&format!("single-{i:04}"), "x"),
        )
        .await?;
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "API single write (1 client):    p50 {}  p99 {}",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99))
    );

    // Gets.
    let started = Instant::now();
    let gets = 10_000usize;
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let api = api_for(c);
        let (clients_n, objects) = (args.clients, args.objects);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for i in (c..gets).step_by(clients_n) {
                let t = Instant::now();
                api.get(&format!("cm-{:06}", i % objects)).await?;
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    lat.sort();
    println!(
        "API gets ({} clients):           {:>10.0} /s   p50 {}  p99 {}",
        args.clients,
        gets as f64 / started.elapsed().as_secs_f64(),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99))
    );

    // List everything.
    let mut best = Duration::MAX;
    let mut count = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let list = api.list(&ListParams::default()).await?;
        best = best.min(t.elapsed());
        count = list.items.len();
    }
    println!("API list {count} objects (best of 3): {}", ms(best));

    // Watch delivery.
    let h2: Vec<kube::Client> = (0..8)
        .map(|_| http2_client(&config))
        .collect::<Result<_, _>>()?;
    for &n in &args.watchers {
        watch_delivery(&clients, "HTTP/1.1", n).await?;
        watch_delivery(&h2, "HTTP/2", n).await?;
    }
    running.task.abort();
    Ok(())
}

/// A kube-rs client that speaks HTTP/2 (ALPN `h2`) over one connection, as client-go does:
/// every request and watch of the client is a stream on that connection. kube-rs itself
/// speaks HTTP/1.1, a connection per concurrent request.
fn http2_client(config: &kube::Config) -> anyhow::Result<kube::Client> {
    use kube::client::ConfigExt as _;
    let tls = config.rustls_client_config()?;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http2()
        .wrap_connector(http);
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build(https);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .map_err(tower::BoxError::from)
        .service(hyper);
    Ok(kube::Client::new(service, config.default_namespace.clone()))
}

fn configmap(name: &str, payload: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.to_string());
    cm.data = Some(
        [("payload".to_string(), payload.to_string())]
            .into_iter()
            .collect(),
    );
    cm
}

/// One kube-rs watcher (`Api::watch`, decoding every event into a typed ConfigMap): waits
/// for `events` ADDED events and returns how long each took to arrive.
async fn watcher(
    client: kube::Client,
    ns: String,
    events: usize,
    epoch: Instant,
    ready: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<Vec<Duration>> {
    let api: Api<ConfigMap> = Api::namespaced(client, &ns);
    let mut stream = api
        .watch(&WatchParams::default().timeout(120), "0")
        .await?
        .boxed();
    let _ = ready.send(()).await;
    let mut lat = Vec::with_capacity(events);
    while lat.len() < events {
        match stream.next().await {
            Some(Ok(WatchEvent::Added(cm))) => {
                let sent: u128 = cm
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("sent-nanos"))
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let now = epoch.elapsed().as_nanos();
                lat.push(Duration::from_nanos(now.saturating_sub(sent) as u64));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(anyhow::anyhow!("watch: {e}")),
            None => break,
        }
    }
    Ok(lat)
}

/// `n` watchers on one namespace, spread over `clients` (and so over their connections); a
/// writer creates objects stamped with the send time; each watcher records how long every
/// event took to arrive.
async fn watch_delivery(clients: &[kube::Client], transport: &str, n: usize) -> anyhow::Result<()> {
    // One namespace per phase, e.g. `watch-1000-http2`.
    let slug: String = transport
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let ns = format!("watch-{n}-{}", slug.to_ascii_lowercase());
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(clients[0].clone());
    let mut namespace = k8s_openapi::api::core::v1::Namespace::default();
    namespace.metadata.name = Some(ns.clone());
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .context("namespace")?;
    let epoch = Instant::now();
    let events = 50usize;
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(n);
    let mut tasks = Vec::new();
    for w in 0..n {
        tasks.push(tokio::spawn(watcher(
            clients[w % clients.len()].clone(),
            ns.clone(),
            events,
            epoch,
            ready_tx.clone(),
        )));
    }
    drop(ready_tx);
    for _ in 0..n {
        ready_rx.recv().await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let api: Api<ConfigMap> = Api::namespaced(clients[0].clone(), &ns);
    let cpu_before = crate::bench_sim::cpu_seconds();
    for i in 0..events {
        let mut cm = configmap(&format!("w-{i:04}"), "x");
        cm.metadata.annotations = Some(
            [(
                "sent-nanos".to_string(),
                epoch.elapsed().as_nanos().to_string(),
            )]
            .into_iter()
            .collect(),
        );
        api.create(&PostParams::default(), &cm).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    // The whole process's CPU (server, writer and watchers) per delivery: steadier than the
    // latencies on a shared machine, and what they follow.
    let cpu = match (cpu_before, crate::bench_sim::cpu_seconds()) {
        (Some(a), Some(b)) if !lat.is_empty() => {
            format!("{:.1} µs CPU each", (b - a) * 1e6 / lat.len() as f64)
        }
        _ => "CPU unknown".to_string(),
    };
    lat.sort();
    println!(
        "watch delivery ({n:>4} watchers, {transport:<8}):  p50 {}  p99 {}  ({} deliveries, {cpu})",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        lat.len()
    );
    Ok(())
}
