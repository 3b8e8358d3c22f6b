//! `slipway.dev/v1alpha1` **Machine**: one host of a cluster (a VM of the provider), created and
//! owned by its Cluster's controller; a user reads Machines, and deletes one to have it replaced.
//!
//! Its labels say where it belongs: `slipway.dev/cluster` (the Cluster's name), and either
//! `slipway.dev/pool` (the node pool's name) or `slipway.dev/role: control-plane`, so
//! `kubectl get machines -l slipway.dev/cluster=NAME` lists a cluster's machines.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube_core::CustomResourceExt;
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use slipway_apimachinery::resource::{ResourceDef, Strategy};
use slipway_apimachinery::{FieldError, FieldPath};

use crate::cluster::types::string_enum;
use crate::cluster::{CapacityType, Condition, Taint};
use crate::{checks, resource, schema};

/// The label naming a machine's Cluster.
pub const CLUSTER_LABEL: &str = "slipway.dev/cluster";
/// The label naming a worker machine's node pool.
pub const POOL_LABEL: &str = "slipway.dev/pool";
/// The label marking control-plane machines (`slipway.dev/role: control-plane`).
pub const ROLE_LABEL: &str = "slipway.dev/role";

string_enum! {
    /// What a machine does in its cluster.
    MachineRole { ControlPlane = "control-plane", Worker = "worker" }
}

string_enum! {
    /// Where a machine is in its life.
    MachinePhase {
        Pending = "Pending",
        Provisioning = "Provisioning",
        Running = "Running",
        Deleting = "Deleting",
        Failed = "Failed",
    }
}

/// The desired state of a Machine, written by the Cluster controller when it creates it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "slipway.dev",
    version = "v1alpha1",
    kind = "Machine",
    plural = "machines",
    singular = "machine",
    namespaced,
    status = "MachineStatus",
    shortname = "ma",
    category = "slipway",
    doc = "One host of a Cluster: a machine of the infrastructure provider that runs a control-plane member or a node of a pool. Created and deleted by the Cluster controller.",
    printcolumn = r#"{"name": "Cluster", "type": "string", "jsonPath": ".spec.clusterName", "description": "The Cluster the machine belongs to"}"#,
    printcolumn = r#"{"name": "Role", "type": "string", "jsonPath": ".spec.role", "description": "control-plane or worker"}"#,
    printcolumn = r#"{"name": "Pool", "type": "string", "jsonPath": ".spec.pool", "description": "Node pool of a worker"}"#,
    printcolumn = r#"{"name": "Zone", "type": "string", "jsonPath": ".spec.zone", "description": "Zone the machine runs in"}"#,
    printcolumn = r#"{"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Pending, Provisioning, Running, Deleting or Failed"}"#,
    printcolumn = r#"{"name": "Node", "type": "string", "jsonPath": ".status.nodeName", "description": "The node the machine registered as"}"#,
    printcolumn = r#"{"name": "Version", "type": "string", "jsonPath": ".spec.version", "description": "Kubernetes version of the kubelet"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp", "description": "Time since the machine was created"}"#,
    printcolumn = r#"{"name": "Type", "type": "string", "jsonPath": ".spec.machineType", "priority": 1, "description": "Machine type"}"#,
    printcolumn = r#"{"name": "Address", "type": "string", "jsonPath": ".status.address", "priority": 1, "description": "Private IP address"}"#,
    printcolumn = r#"{"name": "Provider ID", "type": "string", "jsonPath": ".status.providerID", "priority": 1, "description": "The provider's id of the machine"}"#,
    crates(
        kube_core = "::kube_core",
        k8s_openapi = "::k8s_openapi",
        schemars = "::schemars",
        serde = "::serde",
        serde_json = "::serde_json"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MachineSpec {
    /// Name of the Cluster (in the same namespace) the machine belongs to. Required. Immutable.
    pub cluster_name: String,

    /// `control-plane` or `worker`. Required. Immutable.
    pub role: MachineRole,

    /// The node pool of a worker (required for workers, unset for control-plane machines). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,

    /// Zone the machine runs in, e.g. `eu-west-1a`. Required. Immutable.
    pub zone: String,

    /// Machine type, e.g. `m5.xlarge`. Required. Immutable.
    pub machine_type: String,

    /// `on-demand` or `spot`. Default `on-demand`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_type: Option<CapacityType>,

    /// Spot machines only: bought on demand when the zone has no spot capacity (see `status.capacityType`). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_to_on_demand: Option<bool>,

    /// Kubernetes version the machine's kubelet runs, e.g. `1.33.4`. Required.
    pub version: String,

    /// Labels the machine's node carries; changed in place on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_labels: Option<BTreeMap<String, String>>,

    /// Taints the machine's node carries; changed in place on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_taints: Option<Vec<Taint>>,
}

/// The observed state of a Machine.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineStatus {
    /// `Pending` (not yet created at the provider), `Provisioning`, `Running`, `Deleting` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<MachinePhase>,

    /// The provider's id of the machine.
    #[serde(
        default,
        rename = "providerID",
        skip_serializing_if = "Option::is_none"
    )]
    pub provider_id: Option<String>,

    /// The machine's private IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,

    /// How the machine was bought: `spot`, or `on-demand` (also for a spot machine that fell back to on-demand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_type: Option<CapacityType>,

    /// The node the machine registered as in its cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,

    /// When the provider reported the machine running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_since: Option<Time>,

    /// When the machine's node was first Ready: from then on its startup is over, and the
    /// health check judges it by the unhealthy timeout alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_node_ready_time: Option<Time>,

    /// Why the machine failed, in CamelCase (e.g. `SpotInterruption`, `ZoneOutage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,

    /// Details of the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_message: Option<String>,

    /// Current state as conditions: `InfrastructureReady`, `NodeReady`, `Ready`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Option<Vec<Condition>>,

    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The Machine kind: namespaced, `/status` subresource, generation tracks spec changes.
pub fn resource() -> ResourceDef {
    resource::from_crd(Machine::crd(), true, |schema| {
        Arc::new(MachineStrategy {
            spec_schema: schema::property(schema, "spec"),
        })
    })
}

/// Machine validation: the role and pool agree, and what makes the machine is immutable.
pub struct MachineStrategy {
    spec_schema: Value,
}

impl Strategy for MachineStrategy {
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let path = FieldPath::root("spec");
        let Some(spec) =
            schema::decode_checked::<MachineSpec>(obj, "spec", &self.spec_schema, &mut errs)
        else {
            if obj.get("spec").is_none() {
                errs.push(FieldError::required(&path, ""));
            }
            return errs;
        };
        for (field, value) in [
            ("clusterName", &spec.cluster_name),
            ("zone", &spec.zone),
            ("machineType", &spec.machine_type),
        ] {
            if value.is_empty() {
                errs.push(FieldError::required(&path.child(field), ""));
            }
        }
        if checks::parse_version(&spec.version).is_none() {
            errs.push(FieldError::invalid(
                &path.child("version"),
                &Value::from(spec.version.clone()),
                "must be a Kubernetes version MAJOR.MINOR.PATCH such as 1.33.4",
            ));
        }
        match (spec.role, &spec.pool) {
            (MachineRole::Worker, None) => {
                errs.push(FieldError::required(
                    &path.child("pool"),
                    "workers belong to a node pool",
                ));
            }
            (MachineRole::ControlPlane, Some(pool)) => errs.push(FieldError::invalid(
                &path.child("pool"),
                &Value::from(pool.clone()),
                "control-plane machines belong to no pool",
            )),
            _ => {}
        }
        if let Some(labels) = &spec.node_labels {
            checks::check_labels(&path.child("nodeLabels"), labels, &mut errs);
        }
        let old_spec = old
            .and_then(|o| o.get("spec"))
            .and_then(|s| MachineSpec::deserialize(s).ok());
        if let Some(old) = old_spec {
            let fields: [(&str, Value, Value); 6] = [
                (
                    "clusterName",
                    old.cluster_name.clone().into(),
                    spec.cluster_name.clone().into(),
                ),
                ("role", old.role.as_str().into(), spec.role.as_str().into()),
                ("pool", old.pool.clone().into(), spec.pool.clone().into()),
                ("zone", old.zone.clone().into(), spec.zone.clone().into()),
                (
                    "machineType",
                    old.machine_type.clone().into(),
                    spec.machine_type.clone().into(),
                ),
                (
                    "capacityType",
                    old.capacity_type.map(|c| c.as_str()).into(),
                    spec.capacity_type.map(|c| c.as_str()).into(),
                ),
            ];
            for (field, before, after) in fields {
                if before != after {
                    errs.push(FieldError::invalid(
                        &path.child(field),
                        &after,
                        "field is immutable: the machine is replaced instead",
                    ));
                }
            }
        }
        errs
    }
}
