//! The kinds Slipway serves, each as a [`ResourceDef`]: names, scope, a structural OpenAPI v3
//! schema of the whole object, printer columns, and a strategy with its defaulting and
//! validation. No I/O.
//!
//! - [`cluster`]: `slipway.dev/v1alpha1` Cluster, typed Rust structs whose doc comments are the
//!   schema's descriptions, described by `#[derive(CustomResource)]`.
//! - [`builtin`]: core `v1` Namespace, Secret, ConfigMap, Event and `coordination.k8s.io/v1`
//!   Lease, from their k8s-openapi types.
//! - The workload-cluster kinds ([`workload_resources`]): core `v1` Node and Pod (with the
//!   `eviction` subresource), `apps/v1` Deployment and ReplicaSet (with `scale`), and
//!   `policy/v1` PodDisruptionBudget. Each simulated workload cluster serves these; the
//!   platform API ([`resources`]) does not.
//!
//! Adding a kind is one module: for a Slipway kind, types with `#[derive(CustomResource)]`, a
//! `Strategy`, and `resource::from_crd`; for a built-in kind, `resource::builtin::<K>` with its
//! short names, columns and strategy. Then one line in [`resources`].

pub mod builtin;
pub mod checks;
pub mod cluster;
pub mod clusterclass;
pub mod ipam;
pub mod machine;
mod resource;
pub mod schema;

use slipway_apimachinery::ResourceDef;

/// Every kind the server serves.
pub fn resources() -> Vec<ResourceDef> {
    vec![
        cluster_resource(),
        cluster_class_resource(),
        machine_resource(),
        ip_pool_resource(),
        ip_address_resource(),
        namespace_resource(),
        secret_resource(),
        config_map_resource(),
        event_resource(),
        lease_resource(),
    ]
}

/// Every kind a simulated workload cluster serves: what `kubectl get nodes`, `create
/// deployment`, `scale`, `drain` and the simulated kubelet, scheduler and controllers use.
pub fn workload_resources() -> Vec<ResourceDef> {
    vec![
        namespace_resource(),
        node_resource(),
        pod_resource(),
        deployment_resource(),
        replica_set_resource(),
        pod_disruption_budget_resource(),
        event_resource(),
        config_map_resource(),
        secret_resource(),
        lease_resource(),
    ]
}

/// core `v1` Node.
pub fn node_resource() -> ResourceDef {
    builtin::node::resource()
}

/// core `v1` Pod.
pub fn pod_resource() -> ResourceDef {
    builtin::pod::resource()
}

/// `apps/v1` Deployment.
pub fn deployment_resource() -> ResourceDef {
    builtin::apps::deployment()
}

/// `apps/v1` ReplicaSet.
pub fn replica_set_resource() -> ResourceDef {
    builtin::apps::replica_set()
}

/// `policy/v1` PodDisruptionBudget.
pub fn pod_disruption_budget_resource() -> ResourceDef {
    builtin::pdb::resource()
}

/// `slipway.dev/v1alpha1` Cluster.
pub fn cluster_resource() -> ResourceDef {
    cluster::resource()
}

/// `slipway.dev/v1alpha1` ClusterClass.
pub fn cluster_class_resource() -> ResourceDef {
    clusterclass::resource()
}

/// `slipway.dev/v1alpha1` Machine.
pub fn machine_resource() -> ResourceDef {
    machine::resource()
}

/// `slipway.dev/v1alpha1` IPPool.
pub fn ip_pool_resource() -> ResourceDef {
    ipam::pool_resource()
}

/// `slipway.dev/v1alpha1` IPAddress.
pub fn ip_address_resource() -> ResourceDef {
    ipam::address_resource()
}

/// core `v1` Namespace.
pub fn namespace_resource() -> ResourceDef {
    builtin::namespace::resource()
}

/// core `v1` Secret.
pub fn secret_resource() -> ResourceDef {
    builtin::secret::resource()
}

/// core `v1` ConfigMap.
pub fn config_map_resource() -> ResourceDef {
    builtin::configmap::resource()
}

/// core `v1` Event.
pub fn event_resource() -> ResourceDef {
    builtin::event::resource()
}

/// `coordination.k8s.io/v1` Lease.
pub fn lease_resource() -> ResourceDef {
    builtin::lease::resource()
}
