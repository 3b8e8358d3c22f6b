//! The simulated cloud end to end: the provider conformance suite in process and over HTTP,
//! every fault knob, events, time scale, and restarts.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use slipway_provider::conformance::{ConformanceHooks, ProviderFixture};
use slipway_provider::{
    CLUSTER_TAG, CapacityType, Machine, MachinePhase, MachineReason, MachineSpec, NetworkSpec,
    Provider, ProviderError, Subnet, SubnetSpec, Tags,
};
use slipway_sim::{
    Faults, FaultsPatch, HttpProvider, LatencyDistribution, MachineEventKind, SimCloud, SimConfig,
    TimeScale, http,
};

const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// fixtures

struct SimHooks(Arc<SimCloud>);

#[async_trait]
impl ConformanceHooks for SimHooks {
    async fn set_vcpu_quota(
        &self,
        region: &str,
        vcpus: Option<u64>,
    ) -> slipway_provider::Result<()> {
        let mut patch = FaultsPatch::default();
        patch.vcpu_quotas.insert(region.to_string(), vcpus);
        self.0
            .patch_faults(&patch)
            .await
            .map(|_| ())
            .map_err(|e| ProviderError::Internal(e.to_string()))
    }

    async fn set_zone_capacity(
        &self,
        zone: &str,
        machine_type: &str,
        machines: Option<u64>,
    ) -> slipway_provider::Result<()> {
        let mut patch = FaultsPatch::default();
        patch
            .zone_capacity
            .insert(format!("{zone}/{machine_type}"), machines);
        self.0
            .patch_faults(&patch)
            .await
            .map(|_| ())
            .map_err(|e| ProviderError::Internal(e.to_string()))
    }
}

/// The same knobs, set through `PATCH /cloud/v1/faults`.
struct HttpHooks(HttpProvider);

#[async_trait]
impl ConformanceHooks for HttpHooks {
    async fn set_vcpu_quota(
        &self,
        region: &str,
        vcpus: Option<u64>,
    ) -> slipway_provider::Result<()> {
        let mut patch = FaultsPatch::default();
        patch.vcpu_quotas.insert(region.to_string(), vcpus);
        self.0.patch_faults(&patch).await.map(|_| ())
    }

    async fn set_zone_capacity(
        &self,
        zone: &str,
        machine_type: &str,
        machines: Option<u64>,
    ) -> slipway_provider::Result<()> {
        let mut patch = FaultsPatch::default();
        patch
            .zone_capacity
            .insert(format!("{zone}/{machine_type}"), machines);
        self.0.patch_faults(&patch).await.map(|_| ())
    }
}

/// Aborts the server task when the test ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn open_instant(dir: &std::path::Path) -> Arc<SimCloud> {
    SimCloud::open(dir, SimConfig::instant())
        .await
        .expect("open the sim cloud")
}

async fn serve(cloud: Arc<SimCloud>) -> (HttpProvider, AbortOnDrop) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let app = http::router(cloud);
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("sim http server: {e}");
        }
    });
    let provider = HttpProvider::new(&format!("http://{addr}")).expect("provider");
    (provider, AbortOnDrop(server))
}

async fn in_process_fixture() -> ProviderFixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let cloud = open_instant(dir.path()).await;
    ProviderFixture {
        provider: cloud.clone(),
        hooks: Some(Arc::new(SimHooks(cloud.clone()))),
        guard: Box::new((cloud, dir)),
    }
}

async fn http_fixture() -> ProviderFixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let cloud = open_instant(dir.path()).await;
    let (provider, server) = serve(cloud.clone()).await;
    ProviderFixture {
        provider: Arc::new(provider.clone()),
        hooks: Some(Arc::new(HttpHooks(provider))),
        guard: Box::new((server, cloud, dir)),
    }
}

mod conformance_in_process {
    slipway_provider::provider_conformance_tests!(super::in_process_fixture());
}

mod conformance_over_http {
    slipway_provider::provider_conformance_tests!(super::http_fixture());
}

// ---------------------------------------------------------------------------------------------
// helpers

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn subnet_in(p: &dyn Provider, zone: &str, cidr: &str) -> Subnet {
    let net = p
        .create_network(NetworkSpec {
            name: "vpc".into(),
            region: "eu-west-1".into(),
            cidr: "10.0.0.0/16".parse().expect("cidr"),
            tags: Tags::new(),
        })
        .await
        .expect("network");
    p.create_subnet(SubnetSpec {
        name: zone.into(),
        network_id: net.id,
        zone: zone.into(),
        cidr: cidr.parse().expect("cidr"),
        tags: Tags::new(),
    })
    .await
    .expect("subnet")
}

fn spec(subnet: &Subnet, capacity: CapacityType) -> MachineSpec {
    MachineSpec {
        region: "eu-west-1".into(),
        zone: subnet.spec.zone.clone(),
        machine_type: "m5.large".into(),
        capacity_type: capacity,
        subnet_id: subnet.id.clone(),
        image: "slipway-node-1.33.4".into(),
        kubelet_version: "v1.33.4".into(),
        tags: tags(&[(CLUSTER_TAG, "team/a")]),
        user_data: Default::default(),
        private_ip: None,
    }
}

/// Polls until `check` holds for the machine, panicking after [`WAIT`].
async fn wait_until(
    p: &dyn Provider,
    id: &str,
    what: &str,
    check: impl Fn(&Machine) -> bool,
) -> Machine {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = p.get_machine(id).await.expect("get machine");
        if check(&m) {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "machine {id} never became {what}: {:?}",
            m.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_phase(p: &dyn Provider, id: &str, phase: MachinePhase) -> Machine {
    wait_until(p, id, &format!("{phase:?}"), |m| m.status.phase == phase).await
}

// ---------------------------------------------------------------------------------------------
// faults

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_answers_throttled_with_retry_after_in_process_and_over_http() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cloud = open_instant(dir.path()).await;
    let (http, _server) = serve(cloud.clone()).await;
    http.patch_faults(&FaultsPatch {
        throttle_rate: Some(1.0),
        throttle_retry_after_ms: Some(2500),
        ..FaultsPatch::default()
    })
    .await
    .expect("turn throttling on over HTTP");
    for (name, p) in [
        ("in process", cloud.clone() as Arc<dyn Provider>),
        ("over http", Arc::new(http.clone()) as Arc<dyn Provider>),
    ] {
        match p.list_machines(&Tags::new()).await {
            Err(e @ ProviderError::Throttled { .. }) => {
                assert_eq!(e.retry_after(), Some(Duration::from_millis(2500)), "{name}");
                assert!(e.is_retryable());
            }
            other => panic!("{name}: expected Throttled, got {other:?}"),
        }
    }
    // The knobs themselves are never throttled, so they can be turned off again.
    http.patch_faults(&FaultsPatch {
        throttle_rate: Some(0.0),
        ..FaultsPatch::default()
    })
    .await
    .expect("turn throttling off");
    http.catalog().await.expect("served again");
    cloud.catalog().await.expect("served again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_throttling_throttles_some_calls_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cloud = open_instant(dir.path()).await;
    cloud
        .patch_faults(&FaultsPatch {
            throttle_rate: Some(0.5),
            ..FaultsPatch::default()
        })
        .await
        .expect("faults");
    let mut throttled = 0;
    for _ in 0..200 {
        if cloud.catalog().await.is_err() {
            throttled += 1;
        }
    }
    assert!(
        (40..=160).contains(&throttled),
        "{throttled} of 200 throttled at 0.5"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_failure_rate_one_fails_every_machine() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cloud = open_instant(dir.path()).await;
    let p: &dyn Provider = cloud.as_ref();
    let subnet = subnet_in(p, "eu-west-1a", "10.0.1.0/24").await;
    cloud
        .patch_faults(&FaultsPatch {
            provisioning_failure_rate: Some(1.0),
            ..FaultsPatch::default()
        })
        .await
        .expect("faults");
    let mut ids = Vec::new();
    for i in 0..5 {
        let m = p
            .create_machine(&format!("f{i}"), spec(&subnet, CapacityType::OnDemand))
            .await
            .expect("create is accepted");
        ids.push(m.id);
    }
    for id in &ids {
        let m = wait_phase(p, id, MachinePhase::Terminated).await;
        assert_eq!(m.status.reason, Some(MachineReason::ProvisioningFailed));
        assert!(m.status.running_at.is_none(), "a failed machine never ran");
    }
    let subnet = p.get_subnet(&subnet.id).await.expect("subnet");
    assert_eq!(subnet.available_addresses, subnet.total_addresses);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_outage_refuses_creates_and_fails_machines_until_it_ends() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cloud = open_instant(dir.path()).await;
    let p: &dyn Provider = cloud.as_ref();
    let a = subnet_in(p, "eu-west-1a", "10.0.1.0/24").await;
    let b = subnet_in(p, "eu-west-1b", "10.0.2.0/24").await;
    let in_a = p
        .create_machine("a", spec(&a, CapacityType::OnDemand))
        .await
        .expect("create in a");
    let in_b = p
        .create_machine("b", spec(&b, CapacityType::OnDemand))
        .await
        .expect("create in b");
    wait_phase(p, &in_a.id, MachinePhase::Running).await;
    wait_phase(p, &in_b.id, MachinePhase::Running).await;
    let mut events = cloud.subscribe();

    cloud
        .patch_faults(&FaultsPatch {
            zone_outages: Some(["eu-west-1a".to_string()].into_iter().collect()),
            ..FaultsPatch::default()
        })
        .await
        .expect("zone a down");
    match p
        .create_machine("a2", spec(&a, CapacityType::OnDemand))
        .await
    {
        Err(ProviderError::CapacityUnavailable { zone, machine_type }) => {
            assert_eq!(zone, "eu-west-1a");
            assert_eq!(machine_type, "m5.large");
        }
        other => panic!("create in a zone that is down: {other:?}"),
    }
    let failed = wait_phase(p, &in_a.id, MachinePhase::Failed).await;
    assert_eq!(failed.status.reason, Some(MachineReason::ZoneOutage));
    assert_eq!(
        p.get_machine(&in_b.id).await.expect("b").status.phase,
        MachinePhase::Running,
        "the other zone is unaffected"
    );
    p.create_machine("b2", spec(&b, CapacityType::OnDemand))
        .await
        .expect("zone b still takes machines");
    // The workload simulator hears of it.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("an event for the failed machine")
            .expect("event stream");
        if ev.machine.id == in_a.id && ev.machine.status.phase == MachinePhase::Failed {
            assert_eq!(
                ev.kind,
                MachineEventKind::PhaseChanged {
                    from: MachinePhase::Running
                }
            );
            break;
        }
    }

    cloud
        .patch_faults(&FaultsPatch {
            zone_outages: Some(BTreeSet::new()),
            ..FaultsPatch::default()
        })
        .await
        .expect("zone a back");
    let back = wait_phase(p, &in_a.id, MachinePhase::Running).await;
    assert_eq!(back.status.private_ip, in_a.status.private_ip);
    p.create_machine("a2", spec(&a, CapacityType::OnDemand))
        .await
        .expect("zone a takes machines again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spot_interruption_rate_one_interrupts_running_spot_machines_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cloud = open_instant(dir.path()).await;
    let p: &dyn Provider = cloud.as_ref();
    let subnet = subnet_in(p, "eu-west-1a", "10.0.1.0/24").await;
    let spot = p
        .create_machine("spot", spec(&subnet, CapacityType::Spot))
        .await
        .expect("spot");
    let on_demand = p
        .create_machine("od", spec(&subnet, CapacityType::OnDemand))
        .await
        .expect("on-demand");
    wait_phase(p, &spot.id, MachinePhase::Running).await;
    wait_phase(p, &on_demand.id, MachinePhase::Running).await;
    // The interruption feed tells of the spot machine, and not of a termination asked for.
    let (tx, mut told) = tokio::sync::mpsc::unbounded_channel();
    assert!(p.watch_interruptions(Box::new(move |m| {
        let _ = tx.send((m.id.clone(), m.status.phase, m.status.reason));
    })));
    let asked = p
        .create_machine("asked", spec(&subnet, CapacityType::OnDemand))
        .await
        .expect("asked");
    wait_phase(p, &asked.id, MachinePhase::Running).await;
    p.delete_machine(&asked.id).await.expect("delete");
    wait_phase(p, &asked.id, MachinePhase::Terminated).await;
    cloud
        .patch_faults(&FaultsPatch {
            spot_interruption_rate: Some(1.0),
            ..FaultsPatch::default()
        })
        .await
        .expect("faults");
    let gone = wait_phase(p, &spot.id, MachinePhase::Terminated).await;
    assert_eq!(gone.status.reason, Some(MachineReason::SpotInterruption));
    assert_eq!(
        p.get_machine(&on_demand.id).await.expect("od").status.phase,
        MachinePhase::Running
    );
    let first = tokio::time::timeout(Duration::from_secs(10), told.recv())
        .await
        .expect("told in time")
        .expect("feed open");
    assert_eq!(
        first,
        (
            spot.id.clone(),
            MachinePhase::Terminating,
            Some(MachineReason::SpotInterruption)
        ),
        "the first news is the interruption, not the asked-for termination"
    );
    while let Ok((id, _, _)) = told.try_recv() {
        assert_eq!(id, spot.id, "only the interrupted machine is told of");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_fault_settings_are_refused_over_http() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cloud = open_instant(dir.path()).await;
    let (http, _server) = serve(cloud.clone()).await;
    let bad = Faults {
        provisioning_failure_rate: 2.0,
        ..Faults::default()
    };
    match http.set_faults(&bad).await {
        Err(ProviderError::InvalidRequest { reason, .. }) => {
            assert!(reason.contains("provisioningFailureRate"), "{reason}")
        }
        other => panic!("a rate of 2: {other:?}"),
    }
    match http
        .patch_faults(&FaultsPatch {
            zone_outages: Some(["mars-1a".to_string()].into_iter().collect()),
            ..FaultsPatch::default()
        })
        .await
    {
        Err(ProviderError::InvalidRequest { .. }) => {}
        other => panic!("an unknown zone: {other:?}"),
    }
    assert_eq!(cloud.faults(), http.faults().await.expect("faults"));
    assert_eq!(cloud.faults().provisioning_failure_rate, 0.0);
    // A time scale round trip.
    assert_eq!(
        http.set_time_scale(TimeScale::new(60.0).expect("x60"))
            .await
            .expect("x60"),
        TimeScale::new(60.0).expect("x60")
    );
    assert_eq!(cloud.faults().time_scale.factor(), 60.0);
}

// ---------------------------------------------------------------------------------------------
// time

/// Real time with a one-hour boot: nothing would boot during the test unless a knob says so.
fn slow_config() -> SimConfig {
    SimConfig {
        pending_delay: Duration::ZERO,
        boot_latency: LatencyDistribution::Fixed { millis: 3_600_000 },
        time_scale: Some(TimeScale::REAL_TIME),
        seed: Some(5),
        ..SimConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_to_zero_delay_finishes_a_slow_boot() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cloud = SimCloud::open(dir.path(), slow_config())
        .await
        .expect("open");
    let p: &dyn Provider = cloud.as_ref();
    let subnet = subnet_in(p, "eu-west-1a", "10.0.1.0/24").await;
    let m = p
        .create_machine("slow", spec(&subnet, CapacityType::OnDemand))
        .await
        .expect("create");
    wait_phase(p, &m.id, MachinePhase::Provisioning).await;
    cloud
        .set_time_scale(TimeScale::INSTANT)
        .await
        .expect("instant");
    wait_phase(p, &m.id, MachinePhase::Running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_latency_scale_zero_boots_at_once_even_in_real_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cloud = SimCloud::open(dir.path(), slow_config())
        .await
        .expect("open");
    let p: &dyn Provider = cloud.as_ref();
    cloud
        .patch_faults(&FaultsPatch {
            boot_latency_scale: Some(0.0),
            ..FaultsPatch::default()
        })
        .await
        .expect("faults");
    let subnet = subnet_in(p, "eu-west-1a", "10.0.1.0/24").await;
    let m = p
        .create_machine("quick", spec(&subnet, CapacityType::OnDemand))
        .await
        .expect("create");
    wait_phase(p, &m.id, MachinePhase::Running).await;
}

// ---------------------------------------------------------------------------------------------
// events

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_a_machine_from_creation_to_purge() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cloud = SimCloud::open(
        dir.path(),
        SimConfig {
            terminated_retention: Duration::ZERO,
            ..SimConfig::instant()
        },
    )
    .await
    .expect("open");
    let p: &dyn Provider = cloud.as_ref();
    let subnet = subnet_in(p, "eu-west-1a", "10.0.1.0/24").await;
    let mut events = cloud.subscribe();
    let m = p
        .create_machine("ev", spec(&subnet, CapacityType::OnDemand))
        .await
        .expect("create");
    wait_phase(p, &m.id, MachinePhase::Running).await;
    assert_eq!(cloud.list_all().len(), 1);
    p.patch_machine(
        &m.id,
        slipway_provider::MachinePatch {
            image: None,
            kubelet_version: Some("v1.34.0".into()),
        },
    )
    .await
    .expect("patch");
    p.delete_machine(&m.id).await.expect("delete");

    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !seen.iter().any(|(k, _)| *k == MachineEventKind::Deleted) {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("events so far: {seen:?}"))
            .expect("event stream");
        assert_eq!(ev.machine.id, m.id);
        seen.push((ev.kind, ev.machine.status.phase));
    }
    use MachineEventKind::*;
    use MachinePhase::*;
    assert_eq!(
        seen,
        vec![
            (Created, Pending),
            (PhaseChanged { from: Pending }, Provisioning),
            (PhaseChanged { from: Provisioning }, Running),
            (Updated, Running),
            (PhaseChanged { from: Running }, Terminating),
            (PhaseChanged { from: Terminating }, Terminated),
            (Deleted, Terminated),
        ]
    );
    assert!(cloud.list_all().is_empty());
    assert!(
        p.get_machine(&m.id)
            .await
            .expect_err("purged")
            .is_not_found()
    );
}

// ---------------------------------------------------------------------------------------------
// restarts

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_every_machine_and_resumes_lifecycles() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (running, booting, subnet_before, faults) = {
        let cloud = open_instant(dir.path()).await;
        let p: &dyn Provider = cloud.as_ref();
        let subnet = subnet_in(p, "eu-west-1a", "10.0.1.0/24").await;
        let mut running = Vec::new();
        for i in 0..3 {
            let m = p
                .create_machine(&format!("r{i}"), spec(&subnet, CapacityType::OnDemand))
                .await
                .expect("create");
            running.push(wait_phase(p, &m.id, MachinePhase::Running).await);
        }
        // From now on boots take an hour: the next machine is still booting at shutdown.
        cloud
            .patch_faults(&FaultsPatch {
                boot_latency_scale: Some(1e6),
                time_scale: Some(TimeScale::REAL_TIME),
                throttle_retry_after_ms: Some(1234),
                ..FaultsPatch::default()
            })
            .await
            .expect("slow boots");
        let booting = p
            .create_machine("booting", spec(&subnet, CapacityType::Spot))
            .await
            .expect("create");
        wait_phase(p, &booting.id, MachinePhase::Provisioning).await;
        let subnet_before = p.get_subnet(&subnet.id).await.expect("subnet");
        let faults = cloud.faults();
        cloud.shutdown().await;
        (running, booting, subnet_before, faults)
    };

    // Reopen at the persisted (real-time) scale: everything is as it was.
    let cloud = SimCloud::open(
        dir.path(),
        SimConfig {
            time_scale: None,
            ..SimConfig::instant()
        },
    )
    .await
    .expect("reopen");
    let p: &dyn Provider = cloud.as_ref();
    assert_eq!(cloud.faults(), faults, "faults survive a restart");
    for m in &running {
        let now = p.get_machine(&m.id).await.expect("still there");
        assert_eq!(now.status.phase, MachinePhase::Running);
        assert_eq!(now.status.private_ip, m.status.private_ip);
        assert_eq!(now.spec, m.spec);
    }
    assert_eq!(
        p.get_machine(&booting.id)
            .await
            .expect("booting")
            .status
            .phase,
        MachinePhase::Provisioning
    );
    assert_eq!(
        p.get_subnet(&subnet_before.id).await.expect("subnet"),
        subnet_before,
        "address accounting is rebuilt"
    );
    let replay = p
        .create_machine("r0", running[0].spec.clone())
        .await
        .expect("replay a key");
    assert_eq!(
        replay.id, running[0].id,
        "idempotency keys survive a restart"
    );
    let fresh = p
        .create_machine(
            "after-restart",
            spec(&subnet_before, CapacityType::OnDemand),
        )
        .await
        .expect("create after restart");
    assert!(
        !running
            .iter()
            .any(|m| m.status.private_ip == fresh.status.private_ip),
        "a restarted cloud does not hand out a used address"
    );
    cloud.shutdown().await;
    drop(cloud);

    // Reopen at zero delay: the interrupted boot finishes.
    let cloud = SimCloud::open(
        dir.path(),
        SimConfig {
            time_scale: Some(TimeScale::INSTANT),
            ..SimConfig::instant()
        },
    )
    .await
    .expect("reopen instant");
    let p: &dyn Provider = cloud.as_ref();
    wait_phase(p, &booting.id, MachinePhase::Running).await;
    assert_eq!(p.list_machines(&Tags::new()).await.expect("list").len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_cannot_open_the_same_cloud() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cloud = open_instant(dir.path()).await;
    let second = SimCloud::open(dir.path(), SimConfig::instant()).await;
    assert!(second.is_err(), "two clouds on one database");
    cloud.shutdown().await;
    drop(cloud);
    let again = open_instant(dir.path()).await;
    again.shutdown().await;
}

/// Networks, subnets and load balancers are found by name again after a restart (a create
/// returns the one that exists, a clashing subnet is still refused), and the address of a
/// deleted load balancer is the next one handed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_resources_and_load_balancer_addresses_survive_a_restart() {
    use slipway_provider::{LoadBalancerScheme, LoadBalancerSpec};
    let dir = tempfile::tempdir().expect("temp dir");
    let lb_spec = |name: &str, subnet: &Subnet| LoadBalancerSpec {
        name: name.into(),
        region: "eu-west-1".into(),
        scheme: LoadBalancerScheme::Internal,
        port: 6443,
        subnet_ids: vec![subnet.id.clone()],
        tags: Tags::new(),
    };
    let (subnet, lbs) = {
        let cloud = open_instant(dir.path()).await;
        let p: &dyn Provider = cloud.as_ref();
        let subnet = subnet_in(p, "eu-west-1a", "10.0.1.0/24").await;
        let mut lbs = Vec::new();
        for name in ["a", "b", "c"] {
            lbs.push(
                p.create_load_balancer(lb_spec(name, &subnet))
                    .await
                    .expect("lb"),
            );
        }
        let addresses: BTreeSet<_> = lbs.iter().map(|lb| lb.address).collect();
        assert_eq!(addresses.len(), 3, "distinct addresses: {lbs:?}");
        cloud.shutdown().await;
        (subnet, lbs)
    };
    let cloud = open_instant(dir.path()).await;
    let p: &dyn Provider = cloud.as_ref();
    assert_eq!(subnet_in(p, "eu-west-1a", "10.0.1.0/24").await, subnet);
    let clash = p
        .create_subnet(SubnetSpec {
            name: "other".into(),
            network_id: subnet.spec.network_id.clone(),
            zone: "eu-west-1a".into(),
            cidr: "10.0.1.128/25".parse().expect("cidr"),
            tags: Tags::new(),
        })
        .await;
    assert!(
        matches!(clash, Err(ProviderError::InvalidRequest { .. })),
        "an overlapping subnet after a restart: {clash:?}"
    );
    assert_eq!(
        p.create_load_balancer(lb_spec("b", &subnet))
            .await
            .expect("b again")
            .id,
        lbs[1].id
    );
    p.delete_load_balancer(&lbs[1].id).await.expect("delete b");
    let d = p
        .create_load_balancer(lb_spec("d", &subnet))
        .await
        .expect("d");
    assert_eq!(d.address, lbs[1].address, "the freed address is reused");
    let e = p
        .create_load_balancer(lb_spec("e", &subnet))
        .await
        .expect("e");
    assert!(
        lbs.iter().chain([&d]).all(|lb| lb.address != e.address),
        "a fresh address for e"
    );
    cloud.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// accounting, HTTP statuses, many machines

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_and_capacity_are_released_when_a_machine_terminates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cloud = open_instant(dir.path()).await;
    let p: &dyn Provider = cloud.as_ref();
    let subnet = subnet_in(p, "eu-west-1a", "10.0.1.0/24").await;
    let mut patch = FaultsPatch::default();
    patch.vcpu_quotas.insert("eu-west-1".into(), Some(2));
    patch
        .zone_capacity
        .insert("eu-west-1a/m5.large".into(), Some(1));
    cloud.patch_faults(&patch).await.expect("faults");
    let first = p
        .create_machine("one", spec(&subnet, CapacityType::OnDemand))
        .await
        .expect("first");
    let err = p
        .create_machine("two", spec(&subnet, CapacityType::OnDemand))
        .await
        .expect_err("full");
    assert!(
        matches!(
            err,
            ProviderError::CapacityUnavailable { .. } | ProviderError::QuotaExceeded { .. }
        ),
        "{err:?}"
    );
    p.delete_machine(&first.id).await.expect("delete");
    // Still counted while terminating.
    wait_phase(p, &first.id, MachinePhase::Terminated).await;
    p.create_machine("two", spec(&subnet, CapacityType::OnDemand))
        .await
        .expect("room again after termination");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_statuses_and_retry_after_header() {
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let dir = tempfile::tempdir().expect("temp dir");
    let cloud = open_instant(dir.path()).await;
    let (provider, _server) = serve(cloud.clone()).await;
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let send = |method: &str, path: &str, body: &str| {
        let req = ::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", provider.base_url()))
            .header("content-type", "application/json")
            .body(Full::new(bytes::Bytes::from(body.to_string())))
            .expect("request");
        let client = client.clone();
        async move {
            let resp = client.request(req).await.expect("response");
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().expect("ascii").to_string());
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            (
                status,
                retry_after,
                String::from_utf8_lossy(&body).to_string(),
            )
        }
    };
    let (status, _, body) = send("GET", "/cloud/v1/machines/i-nope", "").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("\"notFound\""), "{body}");
    let (status, _, body) = send("POST", "/cloud/v1/networks", "{not json").await;
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = send(
        "POST",
        "/cloud/v1/networks",
        r#"{"name":"n","region":"mars-1","cidr":"10.0.0.0/16"}"#,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, _, _) = send("GET", "/cloud/v1/machines?limit=1", "").await;
    assert_eq!(status, 400);

    let subnet = subnet_in(&provider, "eu-west-1a", "10.0.1.0/24").await;
    let mut patch = FaultsPatch::default();
    patch.vcpu_quotas.insert("eu-west-1".into(), Some(0));
    provider.patch_faults(&patch).await.expect("quota 0");
    let create = serde_json::json!({
        "idempotencyKey": "k",
        "spec": spec(&subnet, CapacityType::OnDemand),
    })
    .to_string();
    let (status, _, body) = send("POST", "/cloud/v1/machines", &create).await;
    assert_eq!(status, 403, "{body}");
    patch.vcpu_quotas.insert("eu-west-1".into(), None);
    provider
        .patch_faults(&FaultsPatch {
            zone_outages: Some(["eu-west-1a".to_string()].into_iter().collect()),
            vcpu_quotas: patch.vcpu_quotas.clone(),
            ..FaultsPatch::default()
        })
        .await
        .expect("outage");
    let (status, _, body) = send("POST", "/cloud/v1/machines", &create).await;
    assert_eq!(status, 503, "{body}");
    provider
        .patch_faults(&FaultsPatch {
            zone_outages: Some(BTreeSet::new()),
            throttle_rate: Some(1.0),
            throttle_retry_after_ms: Some(3000),
            ..FaultsPatch::default()
        })
        .await
        .expect("throttle");
    let (status, retry_after, body) = send("GET", "/cloud/v1/catalog", "").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(retry_after.as_deref(), Some("3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_concurrent_creates_all_boot_with_distinct_addresses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cloud = open_instant(dir.path()).await;
    let subnet = subnet_in(cloud.as_ref(), "eu-west-1a", "10.0.16.0/20").await;
    let mut events = cloud.subscribe();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let cloud = cloud.clone();
            let spec = spec(&subnet, CapacityType::OnDemand);
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..50 {
                    let m = cloud
                        .create_machine(&format!("t{t}-{i}"), spec.clone())
                        .await
                        .expect("create");
                    ids.push(m.id);
                }
                ids
            })
        })
        .collect();
    let mut ids = BTreeSet::new();
    for t in tasks {
        ids.extend(t.await.expect("join"));
    }
    assert_eq!(ids.len(), 400);
    let mut running = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while running.len() < ids.len() {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(ev)) if ev.machine.status.phase == MachinePhase::Running => {
                running.insert(ev.machine.id);
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("event stream: {e}"),
            Err(_) => panic!("{} of {} running", running.len(), ids.len()),
        }
    }
    let all = cloud.list_all();
    let ips: BTreeSet<_> = all.iter().filter_map(|m| m.status.private_ip).collect();
    assert_eq!(ips.len(), 400, "every machine has its own address");
    let s = cloud.get_subnet(&subnet.id).await.expect("subnet");
    assert_eq!(s.available_addresses, s.total_addresses - 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloud_store_is_compacted_as_it_goes() {
    use slipway_store::Store;

    let dir = tempfile::tempdir().expect("temp dir");
    let cloud = SimCloud::open(
        dir.path(),
        SimConfig {
            compact_every_revisions: 20,
            ..SimConfig::instant()
        },
    )
    .await
    .expect("open");
    let p: &dyn Provider = cloud.as_ref();
    let subnet = subnet_in(p, "eu-west-1a", "10.0.1.0/24").await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let m = p
            .create_machine(&format!("c{i}"), spec(&subnet, CapacityType::OnDemand))
            .await
            .expect("create");
        ids.push(m.id);
    }
    for id in &ids {
        wait_phase(p, id, MachinePhase::Running).await;
    }
    let db = cloud.db_path().to_path_buf();
    cloud.shutdown().await;
    drop(cloud);
    let store = slipway_store::sqlite::SqliteStore::open(&db).expect("open the cloud's store");
    let compacted = store.compacted_revision().await.expect("compacted");
    let current = store.current_revision().await.expect("current");
    assert!(
        compacted > 0,
        "never compacted (current revision {current})"
    );
    assert!(
        current - compacted < 40,
        "compacted {compacted}, current {current}"
    );
    store.close();
    // And the cloud still opens with everything in it.
    let cloud = open_instant(dir.path()).await;
    assert_eq!(cloud.list_all().len(), 10);
    cloud.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_caught_booting_by_an_outage_boots_again_afterwards() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cloud = SimCloud::open(dir.path(), slow_config())
        .await
        .expect("open");
    let p: &dyn Provider = cloud.as_ref();
    let subnet = subnet_in(p, "eu-west-1a", "10.0.1.0/24").await;
    let m = p
        .create_machine("booting", spec(&subnet, CapacityType::OnDemand))
        .await
        .expect("create");
    wait_phase(p, &m.id, MachinePhase::Provisioning).await;
    let outage = |zones: &[&str]| FaultsPatch {
        zone_outages: Some(zones.iter().map(|z| z.to_string()).collect()),
        ..FaultsPatch::default()
    };
    cloud
        .patch_faults(&outage(&["eu-west-1a"]))
        .await
        .expect("down");
    wait_phase(p, &m.id, MachinePhase::Failed).await;
    cloud.patch_faults(&outage(&[])).await.expect("back");
    // It starts over (Pending, then Provisioning for another hour), never Running directly.
    let again = wait_phase(p, &m.id, MachinePhase::Provisioning).await;
    assert!(again.status.running_at.is_none());
    assert_eq!(again.status.reason, None);
}
