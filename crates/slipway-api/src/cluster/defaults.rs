//! Cluster defaulting. Every default here is named in the field's description (types.rs).
//! Defaulting is idempotent: applying it to its own output changes nothing.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::types::{
    Arch, AutoUpdate, CapacityType, ClusterSpec, ControlPlane, EndpointAccess, EtcdTopology,
    NodePool, UpgradePolicy, UpgradeStrategy, Weekday,
};

pub const DEFAULT_PROVIDER: &str = "sim";
pub const DEFAULT_CONTROL_PLANE_REPLICAS: i32 = 1;
pub const DEFAULT_DRAIN_TIMEOUT: &str = "30m";
pub const DEFAULT_WINDOW_DURATION: &str = "4h";
pub const DEFAULT_TIME_ZONE: &str = "UTC";

/// Fill every unset field that has a default.
pub fn apply(spec: &mut ClusterSpec) {
    spec.infrastructure
        .provider
        .get_or_insert_with(|| DEFAULT_PROVIDER.to_string());

    let cp = spec.control_plane.get_or_insert_with(ControlPlane::default);
    cp.replicas.get_or_insert(DEFAULT_CONTROL_PLANE_REPLICAS);
    cp.etcd.get_or_insert(EtcdTopology::Stacked);
    cp.endpoint.get_or_insert(EndpointAccess::Private);

    for pool in spec.node_pools.iter_mut().flatten() {
        pool_defaults(pool);
    }

    let upgrade = spec.upgrade.get_or_insert_with(UpgradePolicy::default);
    let strategy = *upgrade
        .strategy
        .get_or_insert(UpgradeStrategy::RollingReplace);
    // In place, no machine is added: progress comes from taking machines out one at a time.
    let (surge, unavailable) = match strategy {
        UpgradeStrategy::InPlace => (0, 1),
        UpgradeStrategy::RollingReplace | UpgradeStrategy::BlueGreen => (1, 0),
    };
    upgrade.max_surge.get_or_insert(IntOrString::Int(surge));
    upgrade
        .max_unavailable
        .get_or_insert(IntOrString::Int(unavailable));
    upgrade
        .drain_timeout
        .get_or_insert_with(|| DEFAULT_DRAIN_TIMEOUT.to_string());

    if let Some(maintenance) = spec.maintenance.as_mut() {
        if let Some(window) = maintenance.window.as_mut() {
            window.days.get_or_insert_with(|| {
                vec![
                    Weekday::Mon,
                    Weekday::Tue,
                    Weekday::Wed,
                    Weekday::Thu,
                    Weekday::Fri,
                    Weekday::Sat,
                    Weekday::Sun,
                ]
            });
            window
                .duration
                .get_or_insert_with(|| DEFAULT_WINDOW_DURATION.to_string());
            window
                .time_zone
                .get_or_insert_with(|| DEFAULT_TIME_ZONE.to_string());
        }
        let auto = maintenance
            .auto_update
            .get_or_insert_with(AutoUpdate::default);
        auto.patch.get_or_insert(true);
        auto.machine_image.get_or_insert(true);
    }
}

/// Pool sizes: replicas from minReplicas (else 1) capped at maxReplicas; minReplicas from
/// replicas capped at maxReplicas; maxReplicas the larger of replicas and minReplicas. Sizes
/// that contradict each other are left for validation to report.
fn pool_defaults(pool: &mut NodePool) {
    pool.arch.get_or_insert(Arch::Amd64);
    pool.capacity_type.get_or_insert(CapacityType::OnDemand);
    // A negative bound is an error validation reports; it is not propagated into defaults.
    let cap = |n: i32, max: Option<i32>| max.filter(|m| *m >= 0).map_or(n, |m| n.min(m));
    let replicas = *pool
        .replicas
        .get_or_insert_with(|| cap(pool.min_replicas.unwrap_or(1), pool.max_replicas));
    let min = *pool
        .min_replicas
        .get_or_insert_with(|| cap(replicas, pool.max_replicas));
    pool.max_replicas.get_or_insert(replicas.max(min));
}
