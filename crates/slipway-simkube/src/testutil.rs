//! Builders for the unit tests.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;

use crate::node::{MachineNode, NodeRole, build_node};

pub fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).expect("timestamp")
}

pub fn machine(name: &str, zone: &str, vcpu: u32) -> MachineNode {
    MachineNode {
        name: name.into(),
        cluster: "c".into(),
        pool: "general".into(),
        role: NodeRole::Worker,
        zone: zone.into(),
        region: "eu-west-1".into(),
        arch: "amd64".into(),
        instance_type: "m5.xlarge".into(),
        vcpu,
        memory_mib: 16384,
        gpus: 0,
        kubelet_version: "1.33.4".into(),
        internal_ip: "10.0.0.1".into(),
        pod_cidr: Some("10.244.1.0/24".into()),
        provider_id: None,
        labels: BTreeMap::new(),
        taints: vec![],
    }
}

pub fn node(name: &str, zone: &str, vcpu: u32) -> Node {
    build_node(&machine(name, zone, vcpu), true, t(0))
}

/// A pod requesting `cpu` (e.g. `500m`), labelled `app`, owned by controller `owner`.
pub fn pod(name: &str, cpu: &str, app: &str, owner: Option<&str>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            labels: Some(BTreeMap::from([("app".to_string(), app.to_string())])),
            owner_references: owner.map(|o| {
                vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: o.into(),
                    uid: format!("uid-{o}"),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]
            }),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: Some("nginx".into()),
                resources: Some(ResourceRequirements {
                    requests: Some(BTreeMap::from([("cpu".to_string(), Quantity(cpu.into()))])),
                    ..ResourceRequirements::default()
                }),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: None,
    }
}

/// `p` bound to `node`.
pub fn on(mut p: Pod, node: &str) -> Pod {
    if let Some(spec) = p.spec.as_mut() {
        spec.node_name = Some(node.into());
    }
    p
}
