//! `slipway.dev/v1alpha1` **ClusterClass** (cluster-scoped): a tier's defaults and policy, so
//! that a Cluster of about twenty lines is enough and nothing outside the platform team's
//! rules is built. A Cluster names it in `spec.class`; admission fills the class's defaults
//! into what the Cluster leaves unset and refuses what the policy forbids, naming the field.

use std::sync::Arc;

use kube_core::CustomResourceExt;
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use slipway_apimachinery::resource::{ResourceDef, Strategy};
use slipway_apimachinery::{FieldError, FieldPath};

use crate::{checks, resource, schema};

/// A tier's defaults and policy.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "slipway.dev",
    version = "v1alpha1",
    kind = "ClusterClass",
    plural = "clusterclasses",
    singular = "clusterclass",
    shortname = "cc",
    category = "slipway",
    doc = "Defaults and policy for the Clusters of one tier (testing, development, staging, production). Cluster-scoped; a Cluster names it in spec.class.",
    printcolumn = r#"{"name": "Tier", "type": "string", "jsonPath": ".spec.tier", "description": "Tier the class's clusters belong to"}"#,
    printcolumn = r#"{"name": "Version", "type": "string", "jsonPath": ".spec.defaults.version", "description": "Default Kubernetes version"}"#,
    printcolumn = r#"{"name": "TTL", "type": "string", "jsonPath": ".spec.defaults.ttl", "description": "Default time to live"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp", "description": "Time since the class was created"}"#,
    crates(
        kube_core = "::kube_core",
        k8s_openapi = "::k8s_openapi",
        schemars = "::schemars",
        serde = "::serde",
        serde_json = "::serde_json"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterClassSpec {
    /// What the class is for, shown to users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,

    /// The tier set on the class's Clusters that leave spec.tier unset, e.g. `production`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,

    /// Values filled into a Cluster where it leaves them unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<ClassDefaults>,

    /// What a Cluster of the class may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<ClassPolicy>,
}

/// Defaults a class fills into its Clusters.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClassDefaults {
    /// Kubernetes version, e.g. `1.33.4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,

    /// Control-plane replicas: 1, 3 or 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_replicas: Option<i32>,

    /// Control-plane machine type, e.g. `m5.large`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_machine_type: Option<String>,

    /// Machine type of node pools that name none, e.g. `m5.xlarge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_pool_machine_type: Option<String>,

    /// Time to live of the class's Clusters, e.g. `72h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// Rules a class enforces on its Clusters at admission.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClassPolicy {
    /// Kubernetes versions allowed: a minor (`1.33`, any patch) or an exact version (`1.32.5`). Unset: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_versions: Option<Vec<String>>,

    /// Machine types allowed for the control plane and every pool. Unset: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_machine_types: Option<Vec<String>>,

    /// Regions allowed. Unset: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_regions: Option<Vec<String>>,

    /// Control-plane replica counts allowed, e.g. `[3, 5]` for production. Unset: 1, 3 or 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_replicas: Option<Vec<i32>>,

    /// Fewest zones a Cluster must spread over, e.g. `2`. Unset: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_zones: Option<i32>,

    /// Whether pools may use spot capacity. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_spot: Option<bool>,

    /// Most machines a pool may scale to (its maxReplicas). Unset: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_nodes_per_pool: Option<i32>,

    /// Longest TTL a Cluster of the class may set, e.g. `168h`. Unset: no limit (and no TTL required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttl: Option<String>,
}

/// The ClusterClass kind: cluster-scoped, no status.
pub fn resource() -> ResourceDef {
    resource::from_crd(ClusterClass::crd(), true, |schema| {
        Arc::new(ClassStrategy {
            spec_schema: schema::property(schema, "spec"),
        })
    })
}

/// ClusterClass validation: versions, durations and replica counts well formed.
pub struct ClassStrategy {
    spec_schema: Value,
}

impl Strategy for ClassStrategy {
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let path = FieldPath::root("spec");
        let Some(spec) =
            schema::decode_checked::<ClusterClassSpec>(obj, "spec", &self.spec_schema, &mut errs)
        else {
            return errs;
        };
        if let Some(d) = &spec.defaults {
            let at = path.child("defaults");
            if let Some(v) = &d.version
                && checks::parse_version(v).is_none()
            {
                errs.push(FieldError::invalid(
                    &at.child("version"),
                    &Value::from(v.clone()),
                    "must be a Kubernetes version MAJOR.MINOR.PATCH such as 1.33.4",
                ));
            }
            if let Some(r) = d.control_plane_replicas
                && ![1, 3, 5].contains(&r)
            {
                errs.push(FieldError::not_supported(
                    &at.child("controlPlaneReplicas"),
                    &Value::from(r),
                    &["1", "3", "5"],
                ));
            }
            if let Some(ttl) = &d.ttl {
                checks::check_duration(&at.child("ttl"), ttl, None, &mut errs);
            }
        }
        if let Some(p) = &spec.policy {
            let at = path.child("policy");
            for (i, v) in p.allowed_versions.iter().flatten().enumerate() {
                let parts: Vec<&str> = v.split('.').collect();
                let ok = (parts.len() == 2 || parts.len() == 3)
                    && parts
                        .iter()
                        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
                if !ok {
                    errs.push(FieldError::invalid(
                        &at.child("allowedVersions").index(i),
                        &Value::from(v.clone()),
                        "must be a minor version (1.33) or an exact version (1.33.4)",
                    ));
                }
            }
            for (i, r) in p.control_plane_replicas.iter().flatten().enumerate() {
                if ![1, 3, 5].contains(r) {
                    errs.push(FieldError::not_supported(
                        &at.child("controlPlaneReplicas").index(i),
                        &Value::from(*r),
                        &["1", "3", "5"],
                    ));
                }
            }
            if let Some(ttl) = &p.max_ttl {
                checks::check_duration(&at.child("maxTtl"), ttl, None, &mut errs);
            }
        }
        errs
    }
}
