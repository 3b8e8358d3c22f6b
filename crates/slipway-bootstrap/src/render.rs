//! Rendering a machine's cloud-init user data: kubeadm `v1beta4` configuration, the
//! simulator's bootstrap document, and the command that runs kubeadm.
//!
//! Everything is built from typed structs whose field order is the output order, with maps
//! as `BTreeMap`s, so the output is byte-for-byte deterministic (snapshot-tested).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_saphyr::LitString;

use crate::document::{BOOTSTRAP_PATH, Bootstrap, Role, Taint};
use crate::validate::{RenderError, validate};

/// Where the user data writes the kubeadm configuration `kubeadm init|join --config` reads.
pub const KUBEADM_CONFIG_PATH: &str = "/etc/kubernetes/kubeadm.yaml";

const KUBEADM_API_VERSION: &str = "kubeadm.k8s.io/v1beta4";
const KUBELET_API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";
/// containerd's socket, where kubeadm-based node images run their CRI.
const CRI_SOCKET: &str = "unix:///var/run/containerd/containerd.sock";
/// The group kubeadm's join RBAC (CSR auto-approval, cluster-info) is bound to.
const BOOTSTRAP_TOKEN_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
/// kubeadm's default token lifetime: the controller refreshes tokens for later joins.
const BOOTSTRAP_TOKEN_TTL: &str = "24h0m0s";

/// Everything needed to render one machine's user data.
///
/// `Debug` redacts `bootstrap_token`, so logging a config does not leak a join credential.
#[derive(Clone, PartialEq, Eq)]
pub struct MachineConfig {
    /// The workload cluster's identity: its logical cluster name in the simulator, e.g. "team-a.payments".
    pub cluster: String,
    /// The node (and hostname) the machine registers as, e.g. "payments-general-7xk2p".
    pub node_name: String,
    /// Control plane or worker.
    pub role: Role,
    /// Control plane only: true for the machine that runs `kubeadm init`; others `kubeadm join`
    /// (control-plane join with `controlPlane:` set, or worker join).
    pub init: bool,
    /// Kubernetes version without a leading v, e.g. "1.33.4".
    pub kubernetes_version: String,
    /// The API server endpoint behind the load balancer, "host:port".
    pub control_plane_endpoint: String,
    /// The cluster's pod network, e.g. "100.64.0.0/16".
    pub pod_subnet: String,
    /// The cluster's Service network, e.g. "10.96.0.0/12".
    pub service_subnet: String,
    /// Worker pool name (None for control plane).
    pub pool: Option<String>,
    /// Labels the Node registers with (kubelet `--node-labels`).
    pub node_labels: BTreeMap<String, String>,
    /// Taints the Node registers with; empty means kubeadm's default (the control-plane
    /// taint on control-plane machines, none on workers).
    pub node_taints: Vec<Taint>,
    /// Control plane only: hex SHA-256 of the cluster admin token.
    pub admin_token_sha256: Option<String>,
    /// The kubeadm bootstrap token the machine joins with, "[a-z0-9]{6}.[a-z0-9]{16}".
    pub bootstrap_token: String,
    /// The cluster CA a joining machine pins (`caCertHashes`), as [`ca_cert_hash`] computes
    /// it: "sha256:" and 64 lower-case hex digits.
    ///
    /// [`ca_cert_hash`]: crate::ca_cert_hash
    pub ca_cert_hash: String,
    /// Control plane only: the stacked etcd version, e.g. "3.5.21".
    pub etcd_version: Option<String>,
}

impl std::fmt::Debug for MachineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MachineConfig")
            .field("cluster", &self.cluster)
            .field("node_name", &self.node_name)
            .field("role", &self.role)
            .field("init", &self.init)
            .field("kubernetes_version", &self.kubernetes_version)
            .field("control_plane_endpoint", &self.control_plane_endpoint)
            .field("pod_subnet", &self.pod_subnet)
            .field("service_subnet", &self.service_subnet)
            .field("pool", &self.pool)
            .field("node_labels", &self.node_labels)
            .field("node_taints", &self.node_taints)
            .field("admin_token_sha256", &self.admin_token_sha256)
            .field("bootstrap_token", &"<redacted>")
            .field("ca_cert_hash", &self.ca_cert_hash)
            .field("etcd_version", &self.etcd_version)
            .finish()
    }
}

impl MachineConfig {
    /// The simulator's view of this machine ([`BOOTSTRAP_PATH`]).
    fn bootstrap(&self) -> Bootstrap {
        Bootstrap {
            cluster: self.cluster.clone(),
            role: self.role,
            pool: self.pool.clone(),
            admin_token_sha256: self.admin_token_sha256.clone(),
            ca_cert_hash: (!self.init).then(|| self.ca_cert_hash.clone()),
            etcd_version: self.etcd_version.clone(),
            node_labels: self.node_labels.clone(),
            node_taints: self.node_taints.clone(),
        }
    }
}

/// The cloud-init user data (`#cloud-config`) for one machine.
///
/// It sets the hostname to `node_name`, writes [`KUBEADM_CONFIG_PATH`] and [`BOOTSTRAP_PATH`]
/// (both `0600`: they carry the bootstrap token and the admin token's hash), and runs
/// `kubeadm init` (the control-plane machine with `init`) or `kubeadm join`. The same config
/// always renders the same bytes.
pub fn render_user_data(config: &MachineConfig) -> Result<String, RenderError> {
    validate(config)?;
    let bootstrap = serde_json::to_string(&config.bootstrap()).map_err(internal)?;
    let command = if config.init { "init" } else { "join" };
    let cloud = CloudConfig {
        hostname: &config.node_name,
        preserve_hostname: false,
        write_files: vec![
            WriteFile {
                path: KUBEADM_CONFIG_PATH,
                owner: "root:root",
                permissions: "0600",
                content: Content::Literal(LitString(kubeadm_config(config)?)),
            },
            WriteFile {
                path: BOOTSTRAP_PATH,
                owner: "root:root",
                permissions: "0600",
                content: Content::Plain(bootstrap),
            },
        ],
        runcmd: vec![format!("kubeadm {command} --config {KUBEADM_CONFIG_PATH}")],
    };
    let yaml = serde_saphyr::to_string(&cloud).map_err(internal)?;
    Ok(format!("#cloud-config\n{yaml}"))
}

/// The kubeadm configuration: init documents or one join document, `---`-separated.
fn kubeadm_config(c: &MachineConfig) -> Result<String, RenderError> {
    let node_registration = NodeRegistration {
        name: &c.node_name,
        cri_socket: CRI_SOCKET,
        kubelet_extra_args: node_labels_arg(&c.node_labels).into_iter().collect(),
        taints: (!c.node_taints.is_empty()).then_some(&c.node_taints),
    };
    let docs = if c.init {
        vec![
            yaml(&InitConfiguration {
                api_version: KUBEADM_API_VERSION,
                kind: "InitConfiguration",
                bootstrap_tokens: vec![BootstrapToken {
                    token: &c.bootstrap_token,
                    ttl: BOOTSTRAP_TOKEN_TTL,
                    groups: vec![BOOTSTRAP_TOKEN_GROUP],
                    usages: vec!["signing", "authentication"],
                }],
                node_registration,
            })?,
            yaml(&ClusterConfiguration {
                api_version: KUBEADM_API_VERSION,
                kind: "ClusterConfiguration",
                cluster_name: &c.cluster,
                kubernetes_version: format!("v{}", c.kubernetes_version),
                control_plane_endpoint: &c.control_plane_endpoint,
                networking: Networking {
                    pod_subnet: &c.pod_subnet,
                    service_subnet: &c.service_subnet,
                },
                etcd: Etcd {
                    local: LocalEtcd {
                        data_dir: "/var/lib/etcd",
                        // registry.k8s.io/etcd tags are the etcd version and an image revision.
                        image_tag: c.etcd_version.as_ref().map(|v| format!("{v}-0")),
                    },
                },
            })?,
            yaml(&KubeletConfiguration {
                api_version: KUBELET_API_VERSION,
                kind: "KubeletConfiguration",
                cgroup_driver: "systemd",
            })?,
        ]
    } else {
        vec![yaml(&JoinConfiguration {
            api_version: KUBEADM_API_VERSION,
            kind: "JoinConfiguration",
            discovery: Discovery {
                bootstrap_token: BootstrapTokenDiscovery {
                    api_server_endpoint: &c.control_plane_endpoint,
                    token: &c.bootstrap_token,
                    ca_cert_hashes: vec![&c.ca_cert_hash],
                },
            },
            node_registration,
            control_plane: (c.role == Role::ControlPlane).then_some(JoinControlPlane {}),
        })?]
    };
    Ok(docs.iter().map(|d| format!("---\n{d}")).collect())
}

/// The kubelet's `--node-labels` flag, `k=v` pairs in key order, when there are labels.
fn node_labels_arg(labels: &BTreeMap<String, String>) -> Option<Arg> {
    (!labels.is_empty()).then(|| Arg {
        name: "node-labels",
        value: labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    })
}

fn yaml<T: Serialize>(doc: &T) -> Result<String, RenderError> {
    serde_saphyr::to_string(doc).map_err(internal)
}

/// Serializing these plain structs cannot fail; were it to, validation missed something, and
/// saying so beats rendering a half document.
fn internal(e: impl std::fmt::Display) -> RenderError {
    RenderError::Internal(e.to_string())
}

#[derive(Serialize)]
struct CloudConfig<'a> {
    hostname: &'a str,
    preserve_hostname: bool,
    write_files: Vec<WriteFile>,
    runcmd: Vec<String>,
}

#[derive(Serialize)]
struct WriteFile {
    path: &'static str,
    owner: &'static str,
    permissions: &'static str,
    content: Content,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Content {
    /// A multi-line file, as a literal block scalar.
    Literal(LitString),
    /// A one-line file, as a (quoted as needed) scalar.
    Plain(String),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InitConfiguration<'a> {
    api_version: &'static str,
    kind: &'static str,
    bootstrap_tokens: Vec<BootstrapToken<'a>>,
    node_registration: NodeRegistration<'a>,
}

#[derive(Serialize)]
struct BootstrapToken<'a> {
    token: &'a str,
    ttl: &'static str,
    groups: Vec<&'static str>,
    usages: Vec<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeRegistration<'a> {
    name: &'a str,
    cri_socket: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    kubelet_extra_args: Vec<Arg>,
    /// Absent, not empty, when there are none: kubeadm then taints control-plane nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    taints: Option<&'a Vec<Taint>>,
}

/// A v1beta4 extra argument (`{name, value}`; v1beta3 used a map).
#[derive(Serialize)]
struct Arg {
    name: &'static str,
    value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterConfiguration<'a> {
    api_version: &'static str,
    kind: &'static str,
    cluster_name: &'a str,
    kubernetes_version: String,
    control_plane_endpoint: &'a str,
    networking: Networking<'a>,
    etcd: Etcd,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Networking<'a> {
    pod_subnet: &'a str,
    service_subnet: &'a str,
}

#[derive(Serialize)]
struct Etcd {
    local: LocalEtcd,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LocalEtcd {
    data_dir: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_tag: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KubeletConfiguration {
    api_version: &'static str,
    kind: &'static str,
    cgroup_driver: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JoinConfiguration<'a> {
    api_version: &'static str,
    kind: &'static str,
    discovery: Discovery<'a>,
    node_registration: NodeRegistration<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    control_plane: Option<JoinControlPlane>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Discovery<'a> {
    bootstrap_token: BootstrapTokenDiscovery<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BootstrapTokenDiscovery<'a> {
    api_server_endpoint: &'a str,
    token: &'a str,
    /// The cluster CA's public key pin: discovery trusts the API only if its CA matches.
    #[serde(rename = "caCertHashes")]
    ca_cert_hashes: Vec<&'a str>,
}

/// `controlPlane: {}`: join as a control-plane member, advertising the detected address.
#[derive(Serialize)]
struct JoinControlPlane {}
