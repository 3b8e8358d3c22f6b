//! Build a workload cluster straight through the [`Provider`], the way the platform's
//! controllers do: a network, a subnet per zone, a load balancer, control-plane machines that
//! carry the admin token's hash, and worker machines per pool. For tests, the scale benchmark
//! and demos that need a cluster without the platform's controllers.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use slipway_provider::{
    CLUSTER_TAG, CapacityType, LoadBalancerScheme, LoadBalancerSpec, MACHINE_TAG, Machine,
    MachineSpec, NetworkSpec, POOL_TAG, Provider, ProviderError, SubnetSpec, Tags,
};

use crate::bootstrap::{Bootstrap, Role, Taint};

/// A pool of identical workers.
#[derive(Debug, Clone)]
pub struct Pool {
    pub name: String,
    pub machine_type: String,
    pub capacity_type: CapacityType,
    pub count: usize,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
}

impl Pool {
    pub fn new(name: &str, machine_type: &str, count: usize) -> Self {
        Self {
            name: name.into(),
            machine_type: machine_type.into(),
            capacity_type: CapacityType::OnDemand,
            count,
            labels: BTreeMap::new(),
            taints: Vec::new(),
        }
    }
}

/// What cluster to build.
#[derive(Debug, Clone)]
pub struct ClusterRequest {
    /// The cluster's name (its logical cluster in the simulator).
    pub name: String,
    pub region: String,
    pub zones: Vec<String>,
    pub control_plane_type: String,
    pub control_plane_replicas: usize,
    pub pools: Vec<Pool>,
    pub kubernetes_version: String,
    /// The admin token the cluster's API will accept.
    pub admin_token: String,
    /// The second octet of the cluster's 10.x.0.0/16 network.
    pub network_octet: u8,
}

/// Hex SHA-256 of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn tags(cluster: &str, extra: &[(&str, &str)]) -> Tags {
    let mut t = Tags::from([(CLUSTER_TAG.to_string(), cluster.to_string())]);
    for (k, v) in extra {
        t.insert((*k).to_string(), (*v).to_string());
    }
    t
}

/// Create (or find, every call is idempotent) the cluster's infrastructure and machines.
/// Returns the machines.
pub async fn provision(
    p: &dyn Provider,
    req: &ClusterRequest,
) -> Result<Vec<Machine>, ProviderError> {
    let c = &req.name;
    let net = p
        .create_network(NetworkSpec {
            name: format!("{c}-vpc"),
            region: req.region.clone(),
            cidr: format!("10.{}.0.0/16", req.network_octet)
                .parse()
                .map_err(|e| ProviderError::invalid("cidr", format!("{e}")))?,
            tags: tags(c, &[]),
        })
        .await?;
    let mut subnets = Vec::new();
    for (i, zone) in req.zones.iter().enumerate() {
        subnets.push(
            p.create_subnet(SubnetSpec {
                name: format!("{c}-{zone}"),
                network_id: net.id.clone(),
                zone: zone.clone(),
                cidr: format!("10.{}.{}.0/20", req.network_octet, i * 16)
                    .parse()
                    .map_err(|e| ProviderError::invalid("cidr", format!("{e}")))?,
                tags: tags(c, &[]),
            })
            .await?,
        );
    }
    p.create_load_balancer(LoadBalancerSpec {
        name: format!("{c}-apiserver"),
        region: req.region.clone(),
        scheme: LoadBalancerScheme::Internal,
        port: 6443,
        subnet_ids: subnets.iter().map(|s| s.id.clone()).collect(),
        tags: tags(c, &[]),
    })
    .await?;
    let mut machines = Vec::new();
    let create = |role: Role, pool: Option<&Pool>, index: usize| {
        let zone_index = index % req.zones.len().max(1);
        let (pool_name, machine_type, capacity) = match pool {
            Some(p) => (p.name.clone(), p.machine_type.clone(), p.capacity_type),
            None => (
                "control-plane".to_string(),
                req.control_plane_type.clone(),
                CapacityType::OnDemand,
            ),
        };
        let machine_name = format!("{c}-{pool_name}-{index}").replace('.', "-");
        let bootstrap = Bootstrap {
            cluster: c.clone(),
            role,
            pool: pool.map(|p| p.name.clone()),
            admin_token_sha256: (role == Role::ControlPlane).then(|| token_hash(&req.admin_token)),
            // The scenario's machines do not pin the CA (the simulator checks pins given).
            ca_cert_hash: None,
            etcd_version: (role == Role::ControlPlane).then(|| "3.5.21".to_string()),
            node_labels: pool.map(|p| p.labels.clone()).unwrap_or_default(),
            node_taints: pool.map(|p| p.taints.clone()).unwrap_or_default(),
        };
        (
            machine_name.clone(),
            MachineSpec {
                region: req.region.clone(),
                zone: req.zones[zone_index].clone(),
                machine_type,
                capacity_type: capacity,
                subnet_id: subnets[zone_index].id.clone(),
                image: format!("slipway-node-{}", req.kubernetes_version),
                kubelet_version: format!("v{}", req.kubernetes_version.trim_start_matches('v')),
                tags: tags(c, &[(POOL_TAG, &pool_name), (MACHINE_TAG, &machine_name)]),
                user_data: bootstrap.to_cloud_config().into(),
                private_ip: None,
            },
        )
    };
    let mut specs = Vec::new();
    for i in 0..req.control_plane_replicas {
        specs.push(create(Role::ControlPlane, None, i));
    }
    for pool in &req.pools {
        for i in 0..pool.count {
            specs.push(create(Role::Worker, Some(pool), i));
        }
    }
    for (key, spec) in specs {
        machines.push(p.create_machine(&key, spec).await?);
    }
    Ok(machines)
}
