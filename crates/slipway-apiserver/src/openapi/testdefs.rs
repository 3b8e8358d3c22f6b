//! Hand-built `ResourceDef`s for the tests: a namespaced `slipway.dev/v1alpha1` kind with a
//! status subresource and a schema exercising every transformation, a cluster-scoped core kind
//! and a namespaced built-in kind of another group.

use std::sync::Arc;

use serde_json::{Value, json};
use slipway_apimachinery::ResourceDef;
use slipway_apimachinery::resource::NoStrategy;

fn def(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    status: bool,
    schema: Value,
) -> ResourceDef {
    ResourceDef {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        list_kind: format!("{kind}List"),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        short_names: Vec::new(),
        categories: Vec::new(),
        namespaced,
        status_subresource: status,
        schema,
        printer_columns: Vec::new(),
        tracks_generation: status,
        strategy: Arc::new(NoStrategy),
        scale: None,
        selectable_fields: Vec::new(),
        eviction: false,
    }
}

pub(crate) const NODE_POOLS_DESCRIPTION: &str = "NodePools are the groups of worker machines of the cluster, each with its machine type and size.";

pub(crate) fn cluster() -> ResourceDef {
    let schema = json!({
        "type": "object",
        "description": "Cluster is a Kubernetes cluster managed by Slipway.",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "description": "Spec is the desired state of the cluster.",
                "required": ["version", "ttl"],
                "properties": {
                    "version": {"type": "string", "description": "Kubernetes version, e.g. 1.33.4."},
                    "ttl": {"type": "string", "nullable": true, "description": "Time to live."},
                    "controlPlane": {
                        "type": "object",
                        "properties": {
                            "replicas": {"type": "integer", "format": "int32", "default": 3, "enum": [1, 3, 5]}
                        }
                    },
                    "nodePools": {
                        "type": "array",
                        "description": NODE_POOLS_DESCRIPTION,
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {
                            "type": "object",
                            "required": ["name", "machineType"],
                            "properties": {
                                "name": {"type": "string", "description": "Name of the pool, unique in the cluster."},
                                "machineType": {"type": "string", "description": "Machine type of the pool's nodes."},
                                "capacityType": {"type": "string", "enum": ["on-demand", "spot"]},
                                "labels": {"type": "object", "additionalProperties": {"type": "string"}}
                            }
                        }
                    },
                    "upgrade": {
                        "type": "object",
                        "properties": {
                            "maxSurge": {"x-kubernetes-int-or-string": true, "description": "Extra machines during an upgrade."}
                        }
                    },
                    "addons": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "values": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"a": {"type": "string"}}}
                            }
                        }
                    },
                    "template": {
                        "type": "object",
                        "x-kubernetes-embedded-resource": true,
                        "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
                    }
                }
            },
            "status": {
                "type": "object",
                "properties": {
                    "conditions": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["type"],
                        "items": {
                            "type": "object",
                            "required": ["type", "status"],
                            "properties": {
                                "type": {"type": "string"},
                                "status": {"type": "string"},
                                "lastTransitionTime": {"type": "string", "format": "date-time"}
                            }
                        }
                    }
                }
            }
        }
    });
    def(
        "slipway.dev",
        "v1alpha1",
        "Cluster",
        "clusters",
        true,
        true,
        schema,
    )
}

pub(crate) fn namespace() -> ResourceDef {
    let schema = json!({
        "type": "object",
        "description": "Namespace provides a scope for names.",
        "properties": {
            "spec": {"type": "object", "properties": {"finalizers": {"type": "array", "items": {"type": "string"}}}},
            "status": {"type": "object", "properties": {"phase": {"type": "string", "enum": ["Active", "Terminating"]}}}
        }
    });
    def("", "v1", "Namespace", "namespaces", false, false, schema)
}

pub(crate) fn lease() -> ResourceDef {
    let schema = json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "holderIdentity": {"type": "string"},
                    "leaseDurationSeconds": {"type": "integer", "format": "int32"},
                    "renewTime": {"type": "string", "format": "date-time"}
                }
            }
        }
    });
    def(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        true,
        false,
        schema,
    )
}

pub(crate) fn all() -> Vec<ResourceDef> {
    vec![cluster(), namespace(), lease()]
}
