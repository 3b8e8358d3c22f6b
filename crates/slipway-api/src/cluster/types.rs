//! The typed `Cluster` (`slipway.dev/v1alpha1`): spec, status and their parts.
//!
//! Field doc comments become the schema's `description`s, which is what
//! `kubectl explain cluster.spec...` prints: keep them short, and name allowed values and
//! defaults. Every default named here is applied by [`super::defaults`].

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A string enum: serde names, the schema's `enum`, and `ALL` (for error messages) from one list.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $value:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
        pub enum $name {
            $(#[serde(rename = $value)] $variant),+
        }

        impl $name {
            /// Every allowed value, as written in manifests.
            pub const ALL: &'static [&'static str] = &[$($value),+];

            /// The value as written in manifests.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $value),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use string_enum;

string_enum! {
    /// How the control plane runs etcd.
    EtcdTopology { Stacked = "stacked", External = "external" }
}

string_enum! {
    /// Where the API server endpoint is reachable from.
    EndpointAccess { Private = "private", Public = "public" }
}

string_enum! {
    /// CPU architecture of a node pool's machines.
    Arch { Amd64 = "amd64", Arm64 = "arm64" }
}

string_enum! {
    /// How machines are bought: on-demand, or spot (cheaper, may be interrupted).
    CapacityType { OnDemand = "on-demand", Spot = "spot" }
}

string_enum! {
    /// A Kubernetes taint effect.
    TaintEffect { NoSchedule = "NoSchedule", PreferNoSchedule = "PreferNoSchedule", NoExecute = "NoExecute" }
}

string_enum! {
    /// How machines are moved to a new version or machine image.
    UpgradeStrategy { RollingReplace = "RollingReplace", InPlace = "InPlace", BlueGreen = "BlueGreen" }
}

string_enum! {
    /// A day of the week, abbreviated to three letters.
    Weekday { Mon = "Mon", Tue = "Tue", Wed = "Wed", Thu = "Thu", Fri = "Fri", Sat = "Sat", Sun = "Sun" }
}

string_enum! {
    /// The status of a condition.
    ConditionStatus { True = "True", False = "False", Unknown = "Unknown" }
}

/// The desired state of a Cluster.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "slipway.dev",
    version = "v1alpha1",
    kind = "Cluster",
    plural = "clusters",
    singular = "cluster",
    namespaced,
    status = "ClusterStatus",
    shortname = "cl",
    category = "slipway",
    doc = "A Kubernetes cluster that Slipway creates, scales, upgrades and retires. The namespace it lives in is the team that owns it.",
    // Printer columns as JSON: clippy's duplicated_attributes lint misreads the list form.
    printcolumn = r#"{"name": "Version", "type": "string", "jsonPath": ".spec.version", "description": "Desired Kubernetes version"}"#,
    printcolumn = r#"{"name": "Control Plane", "type": "integer", "jsonPath": ".spec.controlPlane.replicas", "description": "Control plane replicas"}"#,
    printcolumn = r#"{"name": "Nodes", "type": "integer", "jsonPath": ".status.readyNodes", "description": "Ready worker nodes"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status", "description": "Whether the cluster is ready"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp", "description": "Time since the cluster was created"}"#,
    printcolumn = r#"{"name": "Region", "type": "string", "jsonPath": ".spec.infrastructure.region", "priority": 1, "description": "Infrastructure region"}"#,
    printcolumn = r#"{"name": "Class", "type": "string", "jsonPath": ".spec.class", "priority": 1, "description": "ClusterClass"}"#,
    crates(
        kube_core = "::kube_core",
        k8s_openapi = "::k8s_openapi",
        schemars = "::schemars",
        serde = "::serde",
        serde_json = "::serde_json"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// Name of a ClusterClass (cluster-scoped) that fills defaults and enforces policy, e.g. `production`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,

    /// Kubernetes version, `MAJOR.MINOR.PATCH` without a leading `v`, e.g. `1.33.4`. Mutually exclusive with `release`; one of the two is required unless `class` provides it. The minor version may not be lowered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,

    /// Platform release (a PlatformRelease bundling Kubernetes version, machine image and add-on versions), e.g. `2026.11.0`. Mutually exclusive with `version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,

    /// Where the cluster runs: provider, region and zones. `provider` and `region` cannot change after creation.
    pub infrastructure: Infrastructure,

    /// The control plane: replicas, machine type, etcd topology and endpoint access. Defaults to one replica with stacked etcd and a private endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<ControlPlane>,

    /// Worker node pools, keyed by name. Each pool is a group of identical machines that the autoscaler moves between `minReplicas` and `maxReplicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub node_pools: Option<Vec<NodePool>>,

    /// How machines are replaced or updated when the version or machine image changes. Defaults: strategy RollingReplace, maxSurge 1, maxUnavailable 0 (InPlace: 0 and 1), drainTimeout 30m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<UpgradePolicy>,

    /// When automatic updates may happen. Without it, the cluster only changes when its spec changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Maintenance>,

    /// Add-ons installed into the cluster, keyed by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub addons: Option<Vec<Addon>>,

    /// Environment tier the cluster belongs to, e.g. `testing`, `development`, `staging`, `production`; rollouts move through tiers in waves. A DNS-1123 label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,

    /// Time to live after creation, after which the cluster is deleted, e.g. `72h`. A duration of hours, minutes and seconds (`1h30m`). Unset: the cluster lives until deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// Where a cluster runs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Infrastructure {
    /// Infrastructure provider, e.g. `sim` (the built-in simulated cloud). Default `sim`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,

    /// Provider region, e.g. `eu-west-1`. Required. Immutable.
    pub region: String,

    /// Zones of the region to spread machines over, e.g. `[eu-west-1a, eu-west-1b]`; each starts with the region name. Unset: every zone of the region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub zones: Option<Vec<String>>,
}

/// The control plane of a cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlane {
    /// Number of control plane machines: 1, 3 or 5 (an odd number keeps etcd quorum). Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = [1, 3, 5]))]
    pub replicas: Option<i32>,

    /// Machine type of the control plane machines, e.g. `m5.large`. Unset: the ClusterClass's or provider's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_type: Option<String>,

    /// etcd topology: `stacked` (on the control plane machines) or `external`. Default `stacked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdTopology>,

    /// Where the API server endpoint is reachable from: `private` (inside the network) or `public`. Default `private`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<EndpointAccess>,
}

/// A group of identical worker machines.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodePool {
    /// Pool name, unique in the cluster: a DNS-1123 label such as `general`. Required.
    pub name: String,

    /// Machine type, e.g. `m5.xlarge`, `c6g.xlarge` (arm64), `g5.2xlarge` (GPU). Unset: the ClusterClass's or provider's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_type: Option<String>,

    /// CPU architecture: `amd64` or `arm64`. Default `amd64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<Arch>,

    /// GPUs per machine. Unset: none requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<Gpu>,

    /// Desired number of machines; the autoscaler moves it within [minReplicas, maxReplicas]. Default: minReplicas if set, else 1 (at most maxReplicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,

    /// Lowest number of machines the autoscaler may scale to; at most maxReplicas. Default: replicas (at most maxReplicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i32>,

    /// Highest number of machines the autoscaler may scale to. Default: the larger of replicas and minReplicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<i32>,

    /// How machines are bought: `on-demand` or `spot` (cheaper, may be interrupted). Default `on-demand`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_type: Option<CapacityType>,

    /// Spot pools only: when a zone has no spot capacity, buy that machine on demand instead of waiting. The stand-in keeps its place until it is replaced (a rollout, a failure); a replacement tries spot again. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_to_on_demand: Option<bool>,

    /// Zones for this pool's machines, a subset of spec.infrastructure.zones. Unset: the cluster's zones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub zones: Option<Vec<String>>,

    /// Labels put on every node of the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,

    /// Taints put on every node of the pool, e.g. `{key: nvidia.com/gpu, value: "true", effect: NoSchedule}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taints: Option<Vec<Taint>>,
}

/// GPUs attached to each machine of a pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Gpu {
    /// GPUs per machine, at least 1. Required.
    pub count: i32,

    /// GPU model, e.g. `nvidia-a10g`. Unset: whatever the machine type carries.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
}

/// A node taint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Taint {
    /// Taint key, a qualified name such as `nvidia.com/gpu`. Required.
    pub key: String,

    /// Taint value, a label value (may be empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,

    /// Effect on pods that do not tolerate the taint: `NoSchedule`, `PreferNoSchedule` or `NoExecute`. Required.
    pub effect: TaintEffect,
}

/// How machines move to a new version or machine image.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradePolicy {
    /// `RollingReplace` (new machines replace old ones), `InPlace` (machines are updated where they stand) or `BlueGreen` (a whole new pool, then a switch). Default `RollingReplace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<UpgradeStrategy>,

    /// Machines created above the desired count during an upgrade: a non-negative number (`1`) or a percentage of the pool (`25%`). Default 1 (InPlace: 0). maxSurge and maxUnavailable may not both be 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,

    /// Machines that may be unavailable during an upgrade: a non-negative number (`0`) or a percentage of the pool up to `100%`. Default 0 (InPlace: 1, and at least 1 is required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,

    /// How long to wait for a node to drain before it is removed anyway: a positive duration such as `30m` or `1h30m`. Default `30m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_timeout: Option<String>,
}

/// When automatic updates may happen.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Maintenance {
    /// The recurring window in which disruptive automatic updates run. Unset: any time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<MaintenanceWindow>,

    /// Which automatic updates are applied in the window. Default: patch and machineImage both true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_update: Option<AutoUpdate>,
}

/// A weekly maintenance window.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceWindow {
    /// Days the window opens on: `Mon`, `Tue`, `Wed`, `Thu`, `Fri`, `Sat`, `Sun`. Default: every day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub days: Option<Vec<Weekday>>,

    /// Time of day the window opens, `HH:MM` (24-hour clock) in timeZone, e.g. `02:00`. Required.
    pub start: String,

    /// How long the window stays open, at most `24h`, e.g. `4h`. Default `4h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,

    /// IANA time zone of start, e.g. `Europe/Berlin`. Default `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// Which automatic updates are applied.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoUpdate {
    /// Move to new Kubernetes patch versions of the same minor automatically. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<bool>,

    /// Move to new machine images automatically. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_image: Option<bool>,
}

/// An add-on installed into the cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Addon {
    /// Add-on name, unique in the cluster: a DNS-1123 label such as `ingress-nginx`. Required.
    pub name: String,

    /// Add-on version. Unset: the version the release or class pins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,

    /// Add-on specific settings, passed through as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub config: Option<Map<String, Value>>,
}

fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// The observed state of a Cluster, written by its controllers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// Current state as conditions, keyed by type: `Ready`, `ControlPlaneReady`, `NodePoolsReady`, `Upgrading`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Option<Vec<Condition>>,

    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// URL of the cluster's Kubernetes API server, e.g. `https://10.0.0.10:6443`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,

    /// Versions actually running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<ClusterVersions>,

    /// Machine counts per node pool, keyed by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub node_pools: Option<Vec<NodePoolStatus>>,

    /// Worker nodes registered, over all pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<i32>,

    /// Worker nodes ready, over all pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_nodes: Option<i32>,

    /// What the cluster's machines cost per hour, in US dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_hour: Option<f64>,
}

/// One aspect of the current state, in the Kubernetes condition shape.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type in CamelCase, e.g. `Ready`. Required; unique in the list.
    #[serde(rename = "type")]
    pub type_: String,

    /// `True`, `False` or `Unknown`. Required.
    pub status: ConditionStatus,

    /// Why the condition last changed, in CamelCase, e.g. `MachinesProvisioning`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,

    /// Human-readable details of the last change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// When status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,

    /// The metadata.generation the condition was set from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Versions running in a cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterVersions {
    /// Kubernetes version of the control plane, e.g. `1.33.4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<String>,

    /// Oldest kubelet version among the worker nodes (the one version skew is measured against).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<String>,

    /// Machine image the nodes run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_image: Option<String>,

    /// Platform release the cluster runs, when it follows one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}

/// Machine counts of one node pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodePoolStatus {
    /// Pool name, as in spec.nodePools.
    pub name: String,

    /// Machines that exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,

    /// Machines whose node is Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
}
