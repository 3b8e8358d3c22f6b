//! Validation of a [`MachineConfig`] before anything is rendered.
//!
//! Every check mirrors what the machine would reject later (kubeadm, the kubelet, the API
//! server's Node validation), so the controller sees the mistake at once, with the field named.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use slipway_apimachinery::meta::{
    check_dns1123_label, check_dns1123_subdomain, check_label_value, check_qualified_name,
};

use crate::document::Role;
use crate::render::MachineConfig;

/// An invalid [`MachineConfig`]: one variant per kind of mistake, naming the field and what
/// it allows. Secrets (the bootstrap token) are never echoed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    /// `cluster` is not a DNS-1123 subdomain.
    #[error("cluster {value:?}: {reason}")]
    Cluster { value: String, reason: String },
    /// `node_name` is not a DNS-1123 subdomain (a Node name and the machine's hostname).
    #[error("node_name {value:?}: {reason}")]
    NodeName { value: String, reason: String },
    /// `kubernetes_version` is not `MAJOR.MINOR.PATCH` (optionally `-pre.release`).
    #[error(
        "kubernetes_version {value:?}: must be MAJOR.MINOR.PATCH without a leading v, e.g. 1.33.4"
    )]
    KubernetesVersion { value: String },
    /// `control_plane_endpoint` is not `host:port`.
    #[error("control_plane_endpoint {value:?}: {reason}")]
    ControlPlaneEndpoint { value: String, reason: String },
    /// `pod_subnet` is not a CIDR with its host bits zero.
    #[error("pod_subnet {value:?}: {reason}")]
    PodSubnet { value: String, reason: String },
    /// `service_subnet` is not a CIDR with its host bits zero.
    #[error("service_subnet {value:?}: {reason}")]
    ServiceSubnet { value: String, reason: String },
    /// `pod_subnet` and `service_subnet` overlap: Service VIPs would shadow pod addresses.
    #[error("pod_subnet {pod_subnet} and service_subnet {service_subnet} must not overlap")]
    SubnetsOverlap {
        pod_subnet: String,
        service_subnet: String,
    },
    /// `init` is set on a worker: only a control-plane machine runs `kubeadm init`.
    #[error("init: only a control-plane machine can run kubeadm init")]
    InitOnWorker,
    /// `pool` is missing on a worker.
    #[error("pool: a worker must name its pool")]
    PoolMissing,
    /// `pool` is set on a control-plane machine.
    #[error("pool: must be None for a control-plane machine")]
    PoolOnControlPlane,
    /// `pool` is not a DNS-1123 label.
    #[error("pool {value:?}: {reason}")]
    Pool { value: String, reason: String },
    /// A `node_labels` key is not a qualified name.
    #[error("node_labels key {key:?}: {reason}")]
    NodeLabelKey { key: String, reason: String },
    /// A `node_labels` key is in the `kubernetes.io`/`k8s.io` namespaces the kubelet refuses
    /// to set (`--node-labels`), so the kubelet would not start.
    #[error(
        "node_labels key {key:?}: the kubelet may only set labels in kubernetes.io or k8s.io \
         namespaces under kubelet.kubernetes.io, node.kubernetes.io or the well-known \
         topology/os/arch/instance-type/hostname labels"
    )]
    RestrictedNodeLabel { key: String },
    /// A `node_labels` value is not a label value.
    #[error("node_labels[{key:?}] value {value:?}: {reason}")]
    NodeLabelValue {
        key: String,
        value: String,
        reason: String,
    },
    /// A `node_taints` key is not a qualified name.
    #[error("node_taints key {key:?}: {reason}")]
    TaintKey { key: String, reason: String },
    /// A `node_taints` value is not a label value.
    #[error("node_taints[{key:?}] value {value:?}: {reason}")]
    TaintValue {
        key: String,
        value: String,
        reason: String,
    },
    /// A `node_taints` effect is not one Kubernetes knows.
    #[error(
        "node_taints[{key:?}] effect {effect:?}: must be NoSchedule, PreferNoSchedule or NoExecute"
    )]
    TaintEffect { key: String, effect: String },
    /// Two `node_taints` share key and effect, which Node validation rejects.
    #[error("node_taints: {key:?} with effect {effect} appears more than once")]
    DuplicateTaint { key: String, effect: String },
    /// `ca_cert_hash` is not "sha256:" and 64 lower-case hex digits.
    #[error(
        "ca_cert_hash {value:?}: must be sha256: and 64 lower-case hex digits (see ca_cert_hash)"
    )]
    CaCertHash { value: String },
    /// `admin_token_sha256` is missing on a control-plane machine.
    #[error("admin_token_sha256: a control-plane machine needs the admin token's hash")]
    AdminTokenMissing,
    /// `admin_token_sha256` is set on a worker, which must not carry credentials it never uses.
    #[error("admin_token_sha256: must be None for a worker")]
    AdminTokenOnWorker,
    /// `admin_token_sha256` is not 64 lower-case hex digits.
    #[error("admin_token_sha256 {value:?}: must be 64 lower-case hex digits (a SHA-256)")]
    AdminTokenSha256 { value: String },
    /// `bootstrap_token` is not a kubeadm bootstrap token (its value is not echoed).
    #[error("bootstrap_token: must match [a-z0-9]{{6}}.[a-z0-9]{{16}}")]
    BootstrapToken,
    /// `etcd_version` is set on a worker, which runs no etcd.
    #[error("etcd_version: must be None for a worker")]
    EtcdVersionOnWorker,
    /// `etcd_version` is not `MAJOR.MINOR.PATCH`.
    #[error("etcd_version {value:?}: must be MAJOR.MINOR.PATCH without a leading v, e.g. 3.5.21")]
    EtcdVersion { value: String },
    /// The YAML or JSON serializer failed on a validated config. Not expected to happen; it
    /// is an error rather than a panic or a half-rendered document.
    #[error("rendering failed: {0}")]
    Internal(String),
}

/// Check every field of `c`; the first problem found, in field order, is returned.
pub(crate) fn validate(c: &MachineConfig) -> Result<(), RenderError> {
    if let Some(reason) = check_dns1123_subdomain(&c.cluster) {
        return Err(RenderError::Cluster {
            value: c.cluster.clone(),
            reason,
        });
    }
    if let Some(reason) = check_dns1123_subdomain(&c.node_name) {
        return Err(RenderError::NodeName {
            value: c.node_name.clone(),
            reason,
        });
    }
    if !is_version(&c.kubernetes_version, true) {
        return Err(RenderError::KubernetesVersion {
            value: c.kubernetes_version.clone(),
        });
    }
    if let Some(reason) = check_endpoint(&c.control_plane_endpoint) {
        return Err(RenderError::ControlPlaneEndpoint {
            value: c.control_plane_endpoint.clone(),
            reason,
        });
    }
    let pods = parse_cidr(&c.pod_subnet).map_err(|reason| RenderError::PodSubnet {
        value: c.pod_subnet.clone(),
        reason,
    })?;
    let services = parse_cidr(&c.service_subnet).map_err(|reason| RenderError::ServiceSubnet {
        value: c.service_subnet.clone(),
        reason,
    })?;
    if pods.contains(&services.network()) || services.contains(&pods.network()) {
        return Err(RenderError::SubnetsOverlap {
            pod_subnet: c.pod_subnet.clone(),
            service_subnet: c.service_subnet.clone(),
        });
    }
    let control_plane = c.role == Role::ControlPlane;
    if c.init && !control_plane {
        return Err(RenderError::InitOnWorker);
    }
    match (&c.pool, control_plane) {
        (None, false) => return Err(RenderError::PoolMissing),
        (Some(_), true) => return Err(RenderError::PoolOnControlPlane),
        (Some(pool), false) => {
            if let Some(reason) = check_dns1123_label(pool) {
                return Err(RenderError::Pool {
                    value: pool.clone(),
                    reason,
                });
            }
        }
        (None, true) => {}
    }
    for (key, value) in &c.node_labels {
        if let Some(reason) = check_qualified_name(key) {
            return Err(RenderError::NodeLabelKey {
                key: key.clone(),
                reason,
            });
        }
        if !kubelet_may_set(key) {
            return Err(RenderError::RestrictedNodeLabel { key: key.clone() });
        }
        if let Some(reason) = check_label_value(value) {
            return Err(RenderError::NodeLabelValue {
                key: key.clone(),
                value: value.clone(),
                reason,
            });
        }
    }
    let mut seen = BTreeSet::new();
    for t in &c.node_taints {
        if let Some(reason) = check_qualified_name(&t.key) {
            return Err(RenderError::TaintKey {
                key: t.key.clone(),
                reason,
            });
        }
        if let Some(value) = &t.value
            && let Some(reason) = check_label_value(value)
        {
            return Err(RenderError::TaintValue {
                key: t.key.clone(),
                value: value.clone(),
                reason,
            });
        }
        if !matches!(
            t.effect.as_str(),
            "NoSchedule" | "PreferNoSchedule" | "NoExecute"
        ) {
            return Err(RenderError::TaintEffect {
                key: t.key.clone(),
                effect: t.effect.clone(),
            });
        }
        if !seen.insert((t.key.as_str(), t.effect.as_str())) {
            return Err(RenderError::DuplicateTaint {
                key: t.key.clone(),
                effect: t.effect.clone(),
            });
        }
    }
    match (&c.admin_token_sha256, control_plane) {
        (None, true) => return Err(RenderError::AdminTokenMissing),
        (Some(_), false) => return Err(RenderError::AdminTokenOnWorker),
        (Some(h), true) => {
            if h.len() != 64
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(RenderError::AdminTokenSha256 { value: h.clone() });
            }
        }
        (None, false) => {}
    }
    if !is_bootstrap_token(&c.bootstrap_token) {
        return Err(RenderError::BootstrapToken);
    }
    if !crate::is_ca_cert_hash(&c.ca_cert_hash) {
        return Err(RenderError::CaCertHash {
            value: c.ca_cert_hash.clone(),
        });
    }
    match (&c.etcd_version, control_plane) {
        (Some(_), false) => return Err(RenderError::EtcdVersionOnWorker),
        (Some(v), true) if !is_version(v, false) => {
            return Err(RenderError::EtcdVersion { value: v.clone() });
        }
        _ => {}
    }
    Ok(())
}

/// `MAJOR.MINOR.PATCH` of decimal numbers without leading zeros, optionally followed (when
/// `pre_release`) by `-` and dot-separated alphanumeric identifiers, as in `1.34.0-rc.1`.
fn is_version(v: &str, pre_release: bool) -> bool {
    let (core, pre) = match v.split_once('-') {
        Some((core, pre)) if pre_release => (core, Some(pre)),
        Some(_) => return false,
        None => (v, None),
    };
    let number = |n: &str| {
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && (n == "0" || !n.starts_with('0'))
    };
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| number(p))
        && pre.is_none_or(|pre| {
            pre.split('.')
                .all(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()))
        })
}

/// `host:port`: a DNS-1123 subdomain or IPv4 address, or a bracketed IPv6 address, and a
/// port from 1 to 65535. `None` when valid.
fn check_endpoint(endpoint: &str) -> Option<String> {
    let Some((host, port)) = endpoint.rsplit_once(':') else {
        return Some("must be host:port".into());
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 && !port.starts_with('0') => {}
        _ => return Some(format!("port {port:?} must be a number from 1 to 65535")),
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return match v6.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => None,
            _ => Some(format!("{v6:?} in brackets must be an IPv6 address")),
        };
    }
    if host.contains(':') {
        return Some("an IPv6 host must be in brackets, as [fd00::1]:6443".into());
    }
    if host.parse::<IpAddr>().is_ok() {
        return None;
    }
    if host
        .split('.')
        .all(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Some(format!("host {host:?} is not a valid IPv4 address"));
    }
    check_dns1123_subdomain(host).map(|reason| format!("host {host:?} {reason}"))
}

/// A CIDR whose address is its network address (`10.96.0.0/12`, not `10.96.0.1/12`).
fn parse_cidr(cidr: &str) -> Result<IpNet, String> {
    let net: IpNet = cidr
        .parse()
        .map_err(|e| format!("must be a CIDR such as 10.96.0.0/12: {e}"))?;
    if net.trunc() != net {
        return Err(format!("has host bits set; the network is {}", net.trunc()));
    }
    Ok(net)
}

/// `[a-z0-9]{6}.[a-z0-9]{16}`, kubeadm's bootstrap token format (id.secret).
fn is_bootstrap_token(token: &str) -> bool {
    let ok = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    token
        .split_once('.')
        .is_some_and(|(id, secret)| ok(id, 6) && ok(secret, 16))
}

/// Labels the kubelet refuses in `--node-labels` (it will not start): keys in the
/// `kubernetes.io` and `k8s.io` namespaces unless they are well-known kubelet labels or in
/// the `kubelet.kubernetes.io`/`node.kubernetes.io` namespaces (`IsKubeletLabel` upstream).
fn kubelet_may_set(key: &str) -> bool {
    const KUBELET_LABELS: &[&str] = &[
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
    ];
    const KUBELET_NAMESPACES: &[&str] = &["kubelet.kubernetes.io", "node.kubernetes.io"];
    let Some((namespace, _)) = key.split_once('/') else {
        return true;
    };
    let in_ns = |ns: &str, root: &str| ns == root || ns.ends_with(&format!(".{root}"));
    if !in_ns(namespace, "kubernetes.io") && !in_ns(namespace, "k8s.io") {
        return true;
    }
    KUBELET_LABELS.contains(&key) || KUBELET_NAMESPACES.iter().any(|r| in_ns(namespace, r))
}
