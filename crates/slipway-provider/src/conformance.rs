//! The conformance suite every [`Provider`] must pass (feature `conformance`).
//!
//! Each case is a `pub async fn(fixture: &ProviderFixture)` that panics on failure. An
//! implementation runs all of them with
//! [`provider_conformance_tests!`](crate::provider_conformance_tests), which expands into one
//! `#[tokio::test]` per case.
//!
//! What the cases assume about the provider they get:
//! - it is fresh: no networks, subnets, load balancers or machines exist, and nothing else
//!   uses it while the case runs;
//! - its catalog has a region with at least two zones, the first of which offers a machine
//!   type; the cases use the smallest type (fewest vCPUs) the first zone offers;
//! - machines boot and terminate within [`WAIT_TIMEOUT`] (give the suite a fast clock);
//! - quotas and capacity are generous enough for a dozen small machines, unless a case lowers
//!   them through [`ConformanceHooks`]. Cases needing hooks are skipped (with a note on stderr)
//!   when the fixture has none.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{
    CLUSTER_TAG, LoadBalancerScheme, LoadBalancerSpec, MACHINE_TAG, Machine, MachinePatch,
    MachinePhase, MachineSpec, NetworkSpec, POOL_TAG, Provider, ProviderError, Result, Subnet,
    SubnetSpec, Tags,
};

/// How long a case waits for a machine to reach a phase.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Knobs a test can turn on an implementation to make it produce errors it otherwise only
/// produces under real pressure.
#[async_trait]
pub trait ConformanceHooks: Send + Sync {
    /// Sets (or with `None` resets to the default) the vCPU quota of `region`.
    async fn set_vcpu_quota(&self, region: &str, vcpus: Option<u64>) -> Result<()>;
    /// Sets (or with `None` removes) how many machines of `machine_type` zone `zone` can hold.
    async fn set_zone_capacity(
        &self,
        zone: &str,
        machine_type: &str,
        machines: Option<u64>,
    ) -> Result<()>;
}

/// What a case runs against: the provider, optional fault hooks, and a guard (temporary
/// directory, server task...) kept alive until the case ends.
pub struct ProviderFixture {
    pub provider: Arc<dyn Provider>,
    pub hooks: Option<Arc<dyn ConformanceHooks>>,
    pub guard: Box<dyn std::any::Any + Send>,
}

/// Expands into one `#[tokio::test]` per conformance case, each getting a fresh
/// [`ProviderFixture`] from the factory (an async expression evaluated once per test). The
/// calling crate needs `tokio` with `macros` and `rt-multi-thread`.
///
/// ```ignore
/// mod conformance {
///     slipway_provider::provider_conformance_tests!(super::fixture());
/// }
/// ```
#[macro_export]
macro_rules! provider_conformance_tests {
    ($factory:expr) => {
        $crate::provider_conformance_tests!(@cases ($factory);
            catalog_is_consistent,
            network_create_is_idempotent,
            network_rejects_bad_requests,
            subnet_create_is_idempotent_and_counts_addresses,
            subnet_rejects_bad_requests,
            network_delete_waits_for_dependents,
            load_balancer_lifecycle,
            machine_create_is_idempotent,
            machine_boots_to_running,
            list_machines_by_tags,
            machine_delete_is_idempotent_and_terminates,
            machine_patch_in_place,
            unknown_ids_are_not_found,
            invalid_machine_requests_change_nothing,
            subnet_addresses_run_out_and_come_back,
            quota_exceeded,
            capacity_unavailable,
        );
    };
    (@cases ($factory:expr); $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture: $crate::conformance::ProviderFixture = $factory.await;
                $crate::conformance::$case(&fixture).await;
                drop(fixture);
            }
        )*
    };
}

// ---------------------------------------------------------------------------------------------
// helpers

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Where the cases put things: one region, two of its zones, the smallest type of zone A.
struct Place {
    region: String,
    zone_a: String,
    zone_b: String,
    machine_type: String,
    vcpu: u32,
}

async fn place(p: &dyn Provider) -> Place {
    let catalog = p.catalog().await.expect("catalog");
    let region = catalog
        .regions
        .iter()
        .find(|r| r.zones.len() >= 2 && !r.zones[0].machine_types.is_empty())
        .expect("the catalog has a region with two zones, the first offering a machine type");
    let smallest = region.zones[0]
        .machine_types
        .iter()
        .filter_map(|t| catalog.machine_type(t))
        .min_by_key(|t| (t.vcpu, t.memory_mib))
        .expect("zone A's machine types are in the catalog");
    Place {
        region: region.name.clone(),
        zone_a: region.zones[0].name.clone(),
        zone_b: region.zones[1].name.clone(),
        machine_type: smallest.name.clone(),
        vcpu: smallest.vcpu,
    }
}

/// A network `10.0.0.0/16` with one subnet `10.0.<n>.0/24` in zone A.
async fn network_and_subnet(p: &dyn Provider, at: &Place, cluster: &str) -> Subnet {
    let net = p
        .create_network(NetworkSpec {
            name: format!("{cluster}-vpc"),
            region: at.region.clone(),
            cidr: "10.0.0.0/16".parse().expect("cidr"),
            tags: tags(&[(CLUSTER_TAG, cluster)]),
        })
        .await
        .expect("create network");
    p.create_subnet(SubnetSpec {
        name: format!("{cluster}-{}", at.zone_a),
        network_id: net.id,
        zone: at.zone_a.clone(),
        cidr: "10.0.1.0/24".parse().expect("cidr"),
        tags: tags(&[(CLUSTER_TAG, cluster)]),
    })
    .await
    .expect("create subnet")
}

fn machine_spec(at: &Place, subnet: &Subnet, cluster: &str, pool: &str) -> MachineSpec {
    MachineSpec {
        region: at.region.clone(),
        zone: at.zone_a.clone(),
        machine_type: at.machine_type.clone(),
        capacity_type: crate::CapacityType::OnDemand,
        subnet_id: subnet.id.clone(),
        image: "slipway-node-1.33.4".to_string(),
        kubelet_version: "v1.33.4".to_string(),
        tags: tags(&[(CLUSTER_TAG, cluster), (POOL_TAG, pool)]),
        user_data: "#cloud-config\n".into(),
        private_ip: None,
    }
}

/// Polls until the machine is in `phase`, panicking after [`WAIT_TIMEOUT`].
async fn wait_for_phase(p: &dyn Provider, id: &str, phase: MachinePhase) -> Machine {
    let deadline = tokio::time::Instant::now() + WAIT_TIMEOUT;
    loop {
        match p.get_machine(id).await {
            Ok(m) if m.status.phase == phase => return m,
            Ok(m) if tokio::time::Instant::now() > deadline => {
                panic!("machine {id} did not reach {phase:?} (now {:?})", m.status)
            }
            Ok(_) | Err(ProviderError::Throttled { .. }) => {}
            Err(e) => panic!("get machine {id}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_invalid<T: std::fmt::Debug>(result: Result<T>, context: &str) {
    match result {
        Err(ProviderError::InvalidRequest { .. }) => {}
        other => panic!("{context}: expected InvalidRequest, got {other:?}"),
    }
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T>, context: &str) {
    match result {
        Err(ProviderError::NotFound { .. }) => {}
        other => panic!("{context}: expected NotFound, got {other:?}"),
    }
}

fn ids(machines: &[Machine]) -> BTreeSet<String> {
    machines.iter().map(|m| m.id.clone()).collect()
}

// ---------------------------------------------------------------------------------------------
// cases

/// Every zone's types exist, names are unique, prices and sizes are positive, spot is no
/// dearer than on-demand, GPU types say how many GPUs.
pub async fn catalog_is_consistent(f: &ProviderFixture) {
    let catalog = f.provider.catalog().await.expect("catalog");
    assert!(!catalog.regions.is_empty(), "no regions");
    assert!(!catalog.machine_types.is_empty(), "no machine types");
    let mut type_names = BTreeSet::new();
    for t in &catalog.machine_types {
        assert!(type_names.insert(&t.name), "duplicate type {}", t.name);
        assert!(t.vcpu > 0 && t.memory_mib > 0, "{} has no size", t.name);
        assert!(t.on_demand_hourly > 0.0, "{} is free", t.name);
        assert!(
            t.spot_hourly > 0.0 && t.spot_hourly <= t.on_demand_hourly,
            "{}: spot {} vs on-demand {}",
            t.name,
            t.spot_hourly,
            t.on_demand_hourly
        );
        if t.family == crate::MachineFamily::Gpu {
            assert!(
                t.gpu.as_ref().is_some_and(|g| g.count > 0),
                "{} is a GPU type without GPUs",
                t.name
            );
        }
    }
    let mut zone_names = BTreeSet::new();
    for r in &catalog.regions {
        assert!(!r.zones.is_empty(), "region {} has no zones", r.name);
        for z in &r.zones {
            assert!(zone_names.insert(&z.name), "duplicate zone {}", z.name);
            for t in &z.machine_types {
                assert!(
                    catalog.machine_type(t).is_some(),
                    "zone {} offers unknown type {t}",
                    z.name
                );
                assert!(catalog.zone_offers(&z.name, t));
            }
            let (region, _) = catalog.zone(&z.name).expect("zone lookup");
            assert_eq!(region.name, r.name);
        }
    }
}

/// Creating a network twice returns the same one; get and list-by-tag find it.
pub async fn network_create_is_idempotent(f: &ProviderFixture) {
    let p = f.provider.as_ref();
    let at = place(p).await;
    let spec = NetworkSpec {
        name: "vpc-a".into(),
        region: at.region.clone(),
        cidr: "10.1.0.0/16".parse().expect("cidr"),
        tags: tags(&[(CLUSTER_TAG, "team/a")]),
    };
    let first = p.create_network(spec.clone()).await.expect("create");
    let second = p.create_network(spec.clone()).await.expect("create again");
    assert_eq!(first, second);
    assert_eq!(first.spec, spec);
    assert_eq!(p.get_network(&first.id).await.expect("get"), first);

    let other = p
        .create_network(NetworkSpec {
            name: "vpc-b".into(),
            tags: tags(&[(CLUSTER_TAG, "team/b")]),
            ..spec.clone()
        })
        .await
        .expect("create b");
    assert_ne!(other.id, first.id);
    let listed = p
        .list_networks(&tags(&[(CLUSTER_TAG, "team/a")]))
        .await
        .expect("list");
    assert_eq!(listed, vec![first.clone()]);
    assert_eq!(p.list_networks(&Tags::new()).await.expect("list").len(), 2);
}

/// Unknown regions and a name reused with another CIDR are invalid.
pub async fn network_rejects_bad_requests(f: &ProviderFixture) {
    let p = f.provider.as_ref();
    let at = place(p).await;
    let spec = NetworkSpec {
        name: "vpc".into(),
        region: at.region.clone(),
        cidr: "10.0.0.0/16".parse().expect("cidr"),
        tags: Tags::new(),
    };
    assert_invalid(
        p.create_network(NetworkSpec {
            region: "no-such-region-9".into(),
            ..spec.clone()
        })
        .await,
        "unknown region",
    );
    p.create_network(spec.clone()).await.expect("create");
    assert_invalid(
        p.create_network(NetworkSpec {
            cidr: "10.9.0.0/16".parse().expect("cidr"),
            ..spec
        })
        .await,
        "same name, other CIDR",
    );
}

/// Creating a subnet twice returns the same one; its address count follows its CIDR.
pub async fn subnet_create_is_idempotent_and_counts_addresses(f: &ProviderFixture) {
    let p = f.provider.as_ref();
    let at = place(p).await;
    let subnet = network_and_subnet(p, &at, "team/a").await;
    assert_eq!(
        subnet.total_addresses,
        crate::usable_addresses(subnet.spec.cidr)
    );
    assert_eq!(subnet.available_addresses, subnet.total_addresses);
    let again = p
        .create_subnet(subnet.spec.clone())
        .await
        .expect("create again");
    assert_eq!(again, subnet);
    assert_eq!(p.get_subnet(&subnet.id).await.expect("get"), subnet);
    assert_eq!(
        p.list_subnets(&tags(&[(CLUSTER_TAG, "team/a")]))
            .await
            .expect("list"),
        vec![subnet.clone()]
    );
    assert!(
        p.list_subnets(&tags(&[(CLUSTER_TAG, "team/none")]))
            .await
            .expect("list")
            .is_empty()
    );
}

/// A subnet outside its network, overlapping another, in another region's zone, or in an
/// unknown network is invalid; the network's region must contain the zone.
pub async fn subnet_rejects_bad_requests(f: &ProviderFixture) {
    let p = f.provider.as_ref();
    let at = place(p).await;
    let subnet = network_and_subnet(p, &at, "team/a").await;
    let base = SubnetSpec {
        name: "other".into(),
        network_id: subnet.spec.network_id.clone(),
        zone: at.zone_b.clone(),
        cidr: "10.0.2.0/24".parse().expect("cidr"),
        tags: Tags::new(),
    };
    assert_invalid(
        p.create_subnet(SubnetSpec {
            cidr: "192.168.0.0/24".parse().expect("cidr"),
            ..base.clone()
        })
        .await,
        "outside the network",
    );
    assert_invalid(
        p.create_subnet(SubnetSpec {
            cidr: "10.0.1.128/25".parse().expect("cidr"),
            ..base.clone()
        })
        .await,
        "overlapping",
    );
    assert_invalid(
        p.create_subnet(SubnetSpec {
            zone: "no-such-zone-9z".into(),
            ..base.clone()
        })
        .await,
        "unknown zone",
    );
    match p
        .create_subnet(SubnetSpec {
            network_id: "no-such-network".into(),
            ..base.clone()
        })
        .await
    {
        Err(ProviderError::InvalidRequest { .. } | ProviderError::NotFound { .. }) => {}
        other => panic!("unknown network: {other:?}"),
    }
    // The valid one still works after all that.
    p.create_subnet(base).await.expect("valid subnet in zone B");
}

/// A network with subnets is in use; once they are gone it deletes, then it is not found.
pub async fn network_delete_waits_for_dependents(f: &ProviderFixture) {
    let p = f.provider.as_ref();
    let at = place(p).await;
    let subnet = network_and_subnet(p, &at, "team/a").await;
    let network = subnet.spec.network_id.clone();
    match p.delete_network(&network).await {
        Err(ProviderError::InUse { .. }) => {}
        other => panic!("delete a network with a subnet: {other:?}"),
    }
    p.delete_subnet(&subnet.id).await.expect("delete subnet");
    assert_not_found(p.get_subnet(&subnet.id).await, "deleted subnet");
    assert_not_found(p.delete_subnet(&subnet.id).await, "subnet deleted twice");
    p.delete_network(&network).await.expect("delete network");
    assert_not_found(p.get_network(&network).await, "deleted network");
    assert_not_found(p.delete_network(&network).await, "network deleted twice");
}

/// Load balancers: idempotent create, an endpoint, list by tag, delete.
pub async fn load_balancer_lifecycle(f: &ProviderFixture) {
    let p = f.provider.as_ref();
    let at = place(p).await;
    let subnet = network_and_subnet(p, &at, "team/a").await;
    let spec = LoadBalancerSpec {
        name: "team-a-api".into(),
        region: at.region.clone(),
        scheme: LoadBalancerScheme::InternetFacing,
        port: 6443,
        subnet_ids: vec![subnet.id.clone()],
        tags: tags(&[(CLUSTER_TAG, "team/a")]),
    };
    let lb = p.create_load_balancer(spec.clone()).await.expect("create");
    assert_eq!(lb.spec, spec);
    assert!(!lb.dns_name.is_empty());
    assert!(lb.endpoint().ends_with(":6443"), "{}", lb.endpoint());
    assert_eq!(
        p.create_load_balancer(spec.clone())
            .await
            .expect("create again"),
        lb
    );
    assert_eq!(p.get_load_balancer(&lb.id).await.expect("get"), lb);
    assert_eq!(
        p.list_load_balancers(&tags(&[(CLUSTER_TAG, "team/a")]))
            .await
            .expect("list"),
        vec![lb.clone()]
    );
    assert_invalid(
        p.create_load_balancer(LoadBalancerSpec {
            name: "x".into(),
            region: "no-such-region-9".into(),
            ..spec
        })
        .await,
        "unknown region",
    );
    p.delete_load_balancer(&lb.id).await.expect("delete");
    assert_not_found(p.get_load_balancer(&lb.id).await, "deleted lb");
    assert_not_found(p.delete_load_balancer(&lb.id).await, "lb deleted twice");
}

/// The same idempotency key twice (even concurrently) gives one machine; reusing it with
/// another spec is invalid.
pub async fn machine_create_is_idempotent(f: &ProviderFixture) {
    let p = f.provider.clone();
    let at = place(p.as_ref()).await;
    let subnet = network_and_subnet(p.as_ref(), &at, "team/a").await;
    let spec = machine_spec(&at, &subnet, "team/a", "general");
    let first = p
        .create_machine("key-1", spec.clone())
        .await
        .expect("create");
    assert_eq!(first.idempotency_key, "key-1");
    assert_eq!(first.spec, spec);
    let again = p
        .create_machine("key-1", spec.clone())
        .await
        .expect("create again");
    assert_eq!(again.id, first.id);

    let racers: Vec<_> = (0..8)
        .map(|_| {
            let p = p.clone();
            let spec = spec.clone();
            tokio::spawn(async move { p.create_machine("key-2", spec).await })
        })
        .collect();
    let mut raced = BTreeSet::new();
    for r in racers {
        raced.insert(r.await.expect("join").expect("create").id);
    }
    assert_eq!(raced.len(), 1, "concurrent creates with one key: {raced:?}");

    let all = p
        .list_machines(&tags(&[(CLUSTER_TAG, "team/a")]))
        .await
        .expect("list");
    assert_eq!(all.len(), 2, "{all:?}");

    let mut other = spec;
    other.image = "another-image".into();
    assert_invalid(p.create_machine("key-1", other).await, "key reused");
}

/// A machine goes to Running with an address in its subnet and a provider id.
pub async fn machine_boots_to_running(f: &ProviderFixture) {
    let p = f.provider.as_ref();
    let at = place(p).await;
    let subnet = network_and_subnet(p, &at, "team/a").await;
    let m = p
        .create_machine("boot", machine_spec(&at, &subnet, "team/a", "general"))
        .await
        .expect("create");
    assert!(
        matches!(
            m.status.phase,
            MachinePhase::Pending | MachinePhase::Provisioning | MachinePhase::Running
        ),
        "{:?}",
        m.status
    );
    let running = wait_for_phase(p, &m.id, MachinePhase::Running).await;
    let ip = running
        .status
        .private_ip
        .expect("a running machine has an IP");
    assert!(
        subnet.spec.cidr.contains(&ip),
        "{ip} not in {}",
        subnet.spec.cidr
    );
    assert!(!running.status.provider_id.is_empty());
    assert!(running.status.running_at.is_some());
    assert!(running.status.created_at <= running.status.phase_changed_at);
    let after = p.get_subnet(&subnet.id).await.expect("subnet");
    assert_eq!(after.available_addresses, subnet.available_addresses - 1);
}

/// Lists select by cluster tag and by cluster + pool tag.
pub async fn list_machines_by_tags(f: &ProviderFixture) {
    let p = f.provider.as_ref();
    let at = place(p).await;
    let subnet = network_and_subnet(p, &at, "team/a").await;
    let mut want_a = BTreeSet::new();
    let mut want_a_gpu = BTreeSet::new();
    for (key, cluster, pool) in [
        ("a1", "team/a", "general"),
        ("a2", "team/a", "general"),
        ("a3", "team/a", "gpu"),
        ("b1", "team/b", "general"),
    ] {
        let mut spec = machine_spec(&at, &subnet, cluster, pool);
        spec.tags.insert(MACHINE_TAG.into(), key.into());
        let m = p.create_machine(key, spec).await.expect("create");
        if cluster == "team/a" {
            want_a.insert(m.id.clone());
            if pool == "gpu" {
                want_a_gpu.insert(m.id.clone());
            }
        }
    }
    let a = p
        .list_machines(&tags(&[(CLUSTER_TAG, "team/a")]))
        .await
        .expect("list a");
    assert_eq!(ids(&a), want_a);
    let sorted: Vec<_> = a.iter().map(|m| m.id.clone()).collect();
    let mut resorted = sorted.clone();
    resorted.sort();
    assert_eq!(sorted, resorted, "lists are ordered by id");
    let a_gpu = p
        .list_machines(&tags(&[(CLUSTER_TAG, "team/a"), (POOL_TAG, "gpu")]))
        .await
        .expect("list a gpu");
    assert_eq!(ids(&a_gpu), want_a_gpu);
    let by_machine = p
        .list_machines(&tags(&[(MACHINE_TAG, "b1")]))
        .await
        .expect("list b1");
    assert_eq!(by_machine.len(), 1);
    assert_eq!(p.list_machines(&Tags::new()).await.expect("all").len(), 4);
}

/// Delete returns the machine terminating; deleting again is fine; it ends Terminated with
/// reason Deleted, and its address is free again.
pub async fn machine_delete_is_idempotent_and_terminates(f: &ProviderFixture) {
    let p = f.provider.as_ref();
    let at = place(p).await;
    let subnet = network_and_subnet(p, &at, "team/a").await;
    let m = p
        .create_machine("del", machine_spec(&at, &subnet, "team/a", "general"))
        .await
        .expect("create");
    wait_for_phase(p, &m.id, MachinePhase::Running).await;
    let deleting = p.delete_machine(&m.id).await.expect("delete");
    assert!(
        deleting.status.phase.is_terminal(),
        "after delete: {:?}",
        deleting.status
    );
    let again = p.delete_machine(&m.id).await.expect("delete again");
    assert_eq!(again.id, m.id);
    assert!(again.status.phase.is_terminal());
    let gone = wait_for_phase(p, &m.id, MachinePhase::Terminated).await;
    assert_eq!(gone.status.reason, Some(crate::MachineReason::Deleted));
    assert!(gone.status.terminated_at.is_some());
    let third = p
        .delete_machine(&m.id)
        .await
        .expect("delete a terminated one");
    assert_eq!(third.status.phase, MachinePhase::Terminated);
    let after = p.get_subnet(&subnet.id).await.expect("subnet");
    assert_eq!(after.available_addresses, subnet.available_addresses);
    // Its key still names it: no second machine.
    let same = p
        .create_machine("del", machine_spec(&at, &subnet, "team/a", "general"))
        .await
        .expect("create with the old key");
    assert_eq!(same.id, m.id);
    // With nothing left in it the subnet can go.
    p.delete_subnet(&subnet.id)
        .await
        .expect("delete the emptied subnet");
}

/// Image and kubelet version change in place; empty patches and terminated machines are
/// refused.
pub async fn machine_patch_in_place(f: &ProviderFixture) {
    let p = f.provider.as_ref();
    let at = place(p).await;
    let subnet = network_and_subnet(p, &at, "team/a").await;
    let m = p
        .create_machine("patch", machine_spec(&at, &subnet, "team/a", "general"))
        .await
        .expect("create");
    let running = wait_for_phase(p, &m.id, MachinePhase::Running).await;
    let patched = p
        .patch_machine(
            &m.id,
            MachinePatch {
                image: Some("slipway-node-1.34.1".into()),
                kubelet_version: Some("v1.34.1".into()),
            },
        )
        .await
        .expect("patch");
    assert_eq!(patched.spec.image, "slipway-node-1.34.1");
    assert_eq!(patched.spec.kubelet_version, "v1.34.1");
    assert_eq!(patched.id, running.id);
    assert_eq!(patched.status.private_ip, running.status.private_ip);
    let only_kubelet = p
        .patch_machine(
            &m.id,
            MachinePatch {
                image: None,
                kubelet_version: Some("v1.34.2".into()),
            },
        )
        .await
        .expect("patch kubelet only");
    assert_eq!(only_kubelet.spec.image, "slipway-node-1.34.1");
    assert_eq!(only_kubelet.spec.kubelet_version, "v1.34.2");
    assert_eq!(
        p.get_machine(&m.id).await.expect("get").spec,
        only_kubelet.spec
    );
    assert_invalid(
        p.patch_machine(&m.id, MachinePatch::default()).await,
        "empty patch",
    );
    p.delete_machine(&m.id).await.expect("delete");
    assert_invalid(
        p.patch_machine(
            &m.id,
            MachinePatch {
                image: Some("x".into()),
                kubelet_version: None,
            },
        )
        .await,
        "patch a terminating machine",
    );
}

/// Every get, delete and patch of an unknown id is NotFound.
pub async fn unknown_ids_are_not_found(f: &ProviderFixture) {
    let p = f.provider.as_ref();
    assert_not_found(p.get_machine("i-doesnotexist").await, "get machine");
    assert_not_found(p.delete_machine("i-doesnotexist").await, "delete machine");
    assert_not_found(
        p.patch_machine(
            "i-doesnotexist",
            MachinePatch {
                image: Some("x".into()),
                kubelet_version: None,
            },
        )
        .await,
        "patch machine",
    );
    assert_not_found(p.get_network("vpc-doesnotexist").await, "get network");
    assert_not_found(p.get_subnet("subnet-doesnotexist").await, "get subnet");
    assert_not_found(p.get_load_balancer("lb-doesnotexist").await, "get lb");
    assert!(
        p.list_machines(&Tags::new())
            .await
            .expect("list")
            .is_empty()
    );
}

/// Unknown region, zone, type or subnet, a zone outside the region, a subnet in another zone,
/// and an empty key are invalid, and create nothing.
pub async fn invalid_machine_requests_change_nothing(f: &ProviderFixture) {
    let p = f.provider.as_ref();
    let at = place(p).await;
    let subnet = network_and_subnet(p, &at, "team/a").await;
    let good = machine_spec(&at, &subnet, "team/a", "general");
    let cases: Vec<(&str, MachineSpec)> = vec![
        (
            "unknown region",
            MachineSpec {
                region: "no-such-region-9".into(),
                ..good.clone()
            },
        ),
        (
            "unknown zone",
            MachineSpec {
                zone: "no-such-zone-9z".into(),
                ..good.clone()
            },
        ),
        (
            "unknown machine type",
            MachineSpec {
                machine_type: "z99.mega".into(),
                ..good.clone()
            },
        ),
        (
            "unknown subnet",
            MachineSpec {
                subnet_id: "subnet-doesnotexist".into(),
                ..good.clone()
            },
        ),
        (
            "subnet in another zone",
            MachineSpec {
                zone: at.zone_b.clone(),
                ..good.clone()
            },
        ),
    ];
    for (i, (what, spec)) in cases.into_iter().enumerate() {
        assert_invalid(p.create_machine(&format!("bad-{i}"), spec).await, what);
    }
    assert_invalid(p.create_machine("", good).await, "empty idempotency key");
    assert!(
        p.list_machines(&Tags::new())
            .await
            .expect("list")
            .is_empty(),
        "invalid requests created machines"
    );
}

/// A /28 holds 11 machines; the 12th gets AddressesExhausted until one terminates.
pub async fn subnet_addresses_run_out_and_come_back(f: &ProviderFixture) {
    let p = f.provider.as_ref();
    let at = place(p).await;
    let net = p
        .create_network(NetworkSpec {
            name: "small".into(),
            region: at.region.clone(),
            cidr: "10.2.0.0/24".parse().expect("cidr"),
            tags: Tags::new(),
        })
        .await
        .expect("network");
    let subnet = p
        .create_subnet(SubnetSpec {
            name: "tiny".into(),
            network_id: net.id,
            zone: at.zone_a.clone(),
            cidr: "10.2.0.16/28".parse().expect("cidr"),
            tags: Tags::new(),
        })
        .await
        .expect("subnet");
    assert_eq!(subnet.total_addresses, 11);
    let spec = machine_spec(&at, &subnet, "team/a", "general");
    let mut machines = Vec::new();
    for i in 0..11 {
        machines.push(
            p.create_machine(&format!("m{i}"), spec.clone())
                .await
                .expect("create within the subnet's size"),
        );
    }
    let ips: BTreeSet<_> = machines
        .iter()
        .filter_map(|m| m.status.private_ip)
        .collect();
    assert!(ips.len() <= 11);
    match p.create_machine("m11", spec.clone()).await {
        Err(ProviderError::AddressesExhausted { subnet: s }) => assert_eq!(s, subnet.id),
        other => panic!("12th machine in a /28: {other:?}"),
    }
    assert_eq!(
        p.get_subnet(&subnet.id)
            .await
            .expect("subnet")
            .available_addresses,
        0
    );
    p.delete_machine(&machines[0].id).await.expect("delete");
    wait_for_phase(p, &machines[0].id, MachinePhase::Terminated).await;
    p.create_machine("m11", spec)
        .await
        .expect("an address came back");
}

/// With a region's vCPU quota lowered to one machine, the second is QuotaExceeded.
pub async fn quota_exceeded(f: &ProviderFixture) {
    let Some(hooks) = &f.hooks else {
        eprintln!("quota_exceeded: skipped, the fixture has no hooks");
        return;
    };
    let p = f.provider.as_ref();
    let at = place(p).await;
    let subnet = network_and_subnet(p, &at, "team/a").await;
    hooks
        .set_vcpu_quota(&at.region, Some(u64::from(at.vcpu)))
        .await
        .expect("set quota");
    let spec = machine_spec(&at, &subnet, "team/a", "general");
    let first = p.create_machine("q1", spec.clone()).await.expect("first");
    match p.create_machine("q2", spec.clone()).await {
        Err(ProviderError::QuotaExceeded {
            limit,
            requested,
            in_use,
            ..
        }) => {
            assert_eq!(limit, u64::from(at.vcpu));
            assert_eq!(requested, u64::from(at.vcpu));
            assert_eq!(in_use, u64::from(at.vcpu));
        }
        other => panic!("over quota: {other:?}"),
    }
    // The idempotent replay of the first is not a new request.
    assert_eq!(
        p.create_machine("q1", spec.clone())
            .await
            .expect("replay")
            .id,
        first.id
    );
    hooks
        .set_vcpu_quota(&at.region, None)
        .await
        .expect("reset quota");
    p.create_machine("q2", spec).await.expect("quota restored");
}

/// With a zone's capacity for a type at zero, creates there are CapacityUnavailable; other
/// zones are unaffected.
pub async fn capacity_unavailable(f: &ProviderFixture) {
    let Some(hooks) = &f.hooks else {
        eprintln!("capacity_unavailable: skipped, the fixture has no hooks");
        return;
    };
    let p = f.provider.as_ref();
    let at = place(p).await;
    let subnet = network_and_subnet(p, &at, "team/a").await;
    hooks
        .set_zone_capacity(&at.zone_a, &at.machine_type, Some(1))
        .await
        .expect("set capacity");
    let spec = machine_spec(&at, &subnet, "team/a", "general");
    p.create_machine("c1", spec.clone()).await.expect("first");
    match p.create_machine("c2", spec.clone()).await {
        Err(ProviderError::CapacityUnavailable { zone, machine_type }) => {
            assert_eq!(zone, at.zone_a);
            assert_eq!(machine_type, at.machine_type);
        }
        other => panic!("zone full: {other:?}"),
    }
    hooks
        .set_zone_capacity(&at.zone_a, &at.machine_type, None)
        .await
        .expect("reset capacity");
    p.create_machine("c2", spec).await.expect("capacity back");
}
