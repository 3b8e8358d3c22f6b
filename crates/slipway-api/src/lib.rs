//! The kinds Slipway serves, each as a [`ResourceDef`]: names, scope, a structural OpenAPI v3
//! schema of the whole object, printer columns, and a strategy with its defaulting and
//! validation. No I/O.
//!
//! - [`cluster`]: `slipway.dev/v1alpha1` Cluster, typed Rust structs whose doc comments are the
//!   schema's descriptions, described by `#[derive(CustomResource)]`.
//! - [`builtin`]: core `v1` Namespace, Secret, ConfigMap, Event and `coordination.k8s.io/v1`
//!   Lease, from their k8s-openapi types.
//!
//! Adding a kind is one module: for a Slipway kind, types with `#[derive(CustomResource)]`, a
//! `Strategy`, and `resource::from_crd`; for a built-in kind, `resource::builtin::<K>` with its
//! short names, columns and strategy. Then one line in [`resources`].

pub mod builtin;
pub mod checks;
pub mod cluster;
mod resource;
pub mod schema;

use slipway_apimachinery::ResourceDef;

/// Every kind the server serves.
pub fn resources() -> Vec<ResourceDef> {
    vec![
        cluster_resource(),
        namespace_resource(),
        secret_resource(),
        config_map_resource(),
        event_resource(),
        lease_resource(),
    ]
}

/// `slipway.dev/v1alpha1` Cluster.
pub fn cluster_resource() -> ResourceDef {
    cluster::resource()
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
