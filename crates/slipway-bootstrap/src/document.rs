//! What a simulated machine learns from its bootstrap user data.
//!
//! A real machine boots with cloud-init user data that runs `kubeadm init` or `kubeadm join`
//! with its node registration (labels, taints) and credentials. The simulator reads the same
//! kind of document: a `#cloud-config` whose `write_files` carries `/etc/slipway/bootstrap.json`
//! ([`BOOTSTRAP_PATH`]), a JSON [`Bootstrap`]. Everything else in the user data (kubeadm
//! configuration, scripts) is ignored, as a fake kubelet would.
//!
//! The JSON format is a contract with machines already created: fields are only ever added,
//! optional, and skipped when empty.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where in the machine's files the simulator finds its bootstrap document.
pub const BOOTSTRAP_PATH: &str = "/etc/slipway/bootstrap.json";

/// A machine's role in its cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs the API server and a stacked etcd member (`control-plane` in JSON).
    ControlPlane,
    /// Runs workloads, in a node pool (`worker` in JSON).
    Worker,
}

/// A taint the kubelet registers its Node with (`--register-with-taints`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taint {
    /// A qualified name, like a label key.
    pub key: String,
    /// A label value; absent for a key-only taint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
}

/// The simulator's view of a machine's bootstrap: which cluster it joins, how, and with
/// which credentials and registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bootstrap {
    /// The workload cluster's name (its logical cluster in the simulator).
    pub cluster: String,
    pub role: Role,
    /// The node pool, for workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Hex SHA-256 of the admin token the cluster's API accepts (set by `kubeadm init` on the
    /// first control-plane machine; ignored once the cluster exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token_sha256: Option<String>,
    /// The CA pin a joining machine checks the cluster's API against (`caCertHashes`); the
    /// join fails when the API's CA does not match. None for the machine that runs init.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_hash: Option<String>,
    /// The etcd version a control-plane machine runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_version: Option<String>,
    /// Labels the Node registers with.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_labels: BTreeMap<String, String>,
    /// Taints the Node registers with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_taints: Vec<Taint>,
}

/// Why a machine's user data carries no readable [`Bootstrap`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BootstrapError {
    /// The user data does not parse as YAML with a `write_files` list.
    #[error("the user data is not a #cloud-config YAML document: {0}")]
    NotCloudConfig(String),
    /// No entry of `write_files` has the path [`BOOTSTRAP_PATH`].
    #[error("the user data writes no {BOOTSTRAP_PATH}")]
    Missing,
    /// The file is there but is not a JSON [`Bootstrap`].
    #[error("{BOOTSTRAP_PATH} is not a valid bootstrap document: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
struct CloudConfig {
    #[serde(default)]
    write_files: Vec<WriteFile>,
}

#[derive(Deserialize)]
struct WriteFile {
    path: String,
    #[serde(default)]
    content: String,
}

impl Bootstrap {
    /// Read the bootstrap document out of cloud-init user data.
    pub fn from_user_data(user_data: &str) -> Result<Self, BootstrapError> {
        let config: CloudConfig = serde_saphyr::from_str(user_data)
            .map_err(|e| BootstrapError::NotCloudConfig(e.to_string()))?;
        let file = config
            .write_files
            .iter()
            .find(|f| f.path == BOOTSTRAP_PATH)
            .ok_or(BootstrapError::Missing)?;
        serde_json::from_str(&file.content).map_err(|e| BootstrapError::Invalid(e.to_string()))
    }

    /// A minimal `#cloud-config` carrying only this document, for machines that need nothing
    /// but the simulator (tests, `scenario`). [`crate::render_user_data`] renders the full
    /// kubeadm user data, which carries the same document.
    pub fn to_cloud_config(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        // JSON is valid YAML in a double-quoted scalar once escaped as JSON again.
        let quoted = serde_json::to_string(&json).unwrap_or_default();
        format!(
            "#cloud-config\nwrite_files:\n- path: {BOOTSTRAP_PATH}\n  permissions: '0600'\n  content: {quoted}\n"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bootstrap {
        Bootstrap {
            cluster: "team-a.payments".into(),
            role: Role::Worker,
            pool: Some("general".into()),
            admin_token_sha256: None,
            ca_cert_hash: None,
            etcd_version: None,
            node_labels: BTreeMap::from([("workload".into(), "general".into())]),
            node_taints: vec![Taint {
                key: "nvidia.com/gpu".into(),
                value: Some("true".into()),
                effect: "NoSchedule".into(),
            }],
        }
    }

    #[test]
    fn round_trips_through_cloud_config() {
        let b = sample();
        assert_eq!(Bootstrap::from_user_data(&b.to_cloud_config()), Ok(b));
    }

    #[test]
    fn other_files_and_keys_are_ignored() {
        let doc = format!(
            "#cloud-config\nruncmd: [kubeadm join]\nwrite_files:\n- path: /etc/kubeadm.yaml\n  content: 'kind: JoinConfiguration'\n- path: {BOOTSTRAP_PATH}\n  content: '{{\"cluster\":\"c\",\"role\":\"control-plane\",\"adminTokenSha256\":\"ab\"}}'\n"
        );
        let b = Bootstrap::from_user_data(&doc).expect("parses");
        assert_eq!(b.role, Role::ControlPlane);
        assert_eq!(b.admin_token_sha256.as_deref(), Some("ab"));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(
            Bootstrap::from_user_data("#cloud-config\nwrite_files: []\n"),
            Err(BootstrapError::Missing)
        );
        assert!(matches!(
            Bootstrap::from_user_data("#cloud-config\nwrite_files: 7\n"),
            Err(BootstrapError::NotCloudConfig(_))
        ));
        let bad =
            format!("#cloud-config\nwrite_files:\n- path: {BOOTSTRAP_PATH}\n  content: '{{}}'\n");
        assert!(matches!(
            Bootstrap::from_user_data(&bad),
            Err(BootstrapError::Invalid(_))
        ));
    }
}
