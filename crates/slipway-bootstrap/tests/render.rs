//! The three shapes of user data (snapshots), their round trip through the simulator's
//! reader, their YAML structure, and every validation error.

use std::collections::BTreeMap;

use serde::Deserialize;
use slipway_bootstrap::{
    BOOTSTRAP_PATH, Bootstrap, KUBEADM_CONFIG_PATH, MachineConfig, RenderError, Role, Taint,
    render_user_data,
};

const ADMIN_HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const CA_PIN: &str = "sha256:54c3a1e817313cec1d9e2de9c341d5b457a0257e73ce3940d6c27fc379271531";

fn init_control_plane() -> MachineConfig {
    MachineConfig {
        cluster: "team-a.payments".into(),
        node_name: "payments-control-plane-4m9tq".into(),
        role: Role::ControlPlane,
        init: true,
        kubernetes_version: "1.33.4".into(),
        control_plane_endpoint: "payments-apiserver.team-a.internal:6443".into(),
        pod_subnet: "100.64.0.0/16".into(),
        service_subnet: "10.96.0.0/12".into(),
        pool: None,
        node_labels: BTreeMap::new(),
        node_taints: Vec::new(),
        admin_token_sha256: Some(ADMIN_HASH.into()),
        bootstrap_token: "abcdef.0123456789abcdef".into(),
        ca_cert_hash: CA_PIN.into(),
        etcd_version: Some("3.5.21".into()),
    }
}

fn join_control_plane() -> MachineConfig {
    MachineConfig {
        node_name: "payments-control-plane-x2b7k".into(),
        init: false,
        ..init_control_plane()
    }
}

fn worker() -> MachineConfig {
    MachineConfig {
        node_name: "payments-gpu-7xk2p".into(),
        role: Role::Worker,
        init: false,
        pool: Some("gpu".into()),
        node_labels: BTreeMap::from([
            ("workload".into(), "ml".into()),
            (
                "node.kubernetes.io/instance-type".into(),
                "g5.xlarge".into(),
            ),
            ("slipway.dev/pool".into(), "gpu".into()),
        ]),
        node_taints: vec![
            Taint {
                key: "nvidia.com/gpu".into(),
                value: Some("true".into()),
                effect: "NoSchedule".into(),
            },
            Taint {
                key: "dedicated".into(),
                value: None,
                effect: "PreferNoSchedule".into(),
            },
        ],
        admin_token_sha256: None,
        etcd_version: None,
        ..init_control_plane()
    }
}

fn render(c: &MachineConfig) -> String {
    render_user_data(c).expect("a valid config renders")
}

#[test]
fn init_control_plane_snapshot() {
    insta::assert_snapshot!(render(&init_control_plane()));
}

#[test]
fn join_control_plane_snapshot() {
    insta::assert_snapshot!(render(&join_control_plane()));
}

#[test]
fn worker_snapshot() {
    insta::assert_snapshot!(render(&worker()));
}

#[test]
fn debug_redacts_the_bootstrap_token() {
    let shown = format!("{:?}", worker());
    assert!(shown.contains("payments-gpu-7xk2p"));
    assert!(!shown.contains("0123456789abcdef"));
}

#[test]
fn rendering_is_deterministic() {
    for c in [init_control_plane(), join_control_plane(), worker()] {
        assert_eq!(render(&c), render(&c.clone()));
    }
}

#[test]
fn the_simulator_reads_back_each_shape() {
    let cp = Bootstrap {
        cluster: "team-a.payments".into(),
        role: Role::ControlPlane,
        pool: None,
        admin_token_sha256: Some(ADMIN_HASH.into()),
        ca_cert_hash: None,
        etcd_version: Some("3.5.21".into()),
        node_labels: BTreeMap::new(),
        node_taints: Vec::new(),
    };
    let w = worker();
    let wb = Bootstrap {
        cluster: "team-a.payments".into(),
        role: Role::Worker,
        pool: Some("gpu".into()),
        admin_token_sha256: None,
        ca_cert_hash: Some(CA_PIN.into()),
        etcd_version: None,
        node_labels: w.node_labels.clone(),
        node_taints: w.node_taints.clone(),
    };
    assert_eq!(
        Bootstrap::from_user_data(&render(&init_control_plane())),
        Ok(cp.clone())
    );
    assert_eq!(
        Bootstrap::from_user_data(&render(&join_control_plane())),
        Ok(Bootstrap {
            ca_cert_hash: Some(CA_PIN.into()),
            ..cp
        })
    );
    assert_eq!(Bootstrap::from_user_data(&render(&w)), Ok(wb));
}

#[derive(Deserialize)]
struct CloudConfig {
    hostname: String,
    write_files: Vec<WriteFile>,
    runcmd: Vec<String>,
}

#[derive(Deserialize)]
struct WriteFile {
    path: String,
    permissions: String,
    content: String,
}

/// The fields of a kubeadm document the tests look at.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct KubeadmDoc {
    api_version: String,
    kind: String,
    #[serde(default)]
    node_registration: Option<serde_json::Value>,
    #[serde(default)]
    control_plane: Option<serde_json::Value>,
    #[serde(default)]
    discovery: Option<serde_json::Value>,
    #[serde(default)]
    kubernetes_version: Option<String>,
    #[serde(default)]
    networking: Option<serde_json::Value>,
    #[serde(default)]
    bootstrap_tokens: Option<serde_json::Value>,
}

fn parse(c: &MachineConfig) -> (CloudConfig, Vec<KubeadmDoc>) {
    let user_data = render(c);
    assert!(user_data.starts_with("#cloud-config\n"));
    let cloud: CloudConfig = serde_saphyr::from_str(&user_data).expect("user data is YAML");
    let kubeadm = cloud
        .write_files
        .iter()
        .find(|f| f.path == KUBEADM_CONFIG_PATH)
        .expect("writes the kubeadm configuration");
    let docs: Vec<KubeadmDoc> =
        serde_saphyr::from_multiple(&kubeadm.content).expect("kubeadm.yaml is multi-document YAML");
    (cloud, docs)
}

fn kinds(docs: &[KubeadmDoc]) -> Vec<(&str, &str)> {
    docs.iter()
        .map(|d| (d.api_version.as_str(), d.kind.as_str()))
        .collect()
}

#[test]
fn init_is_yaml_with_the_init_documents() {
    let (cloud, docs) = parse(&init_control_plane());
    assert_eq!(cloud.hostname, "payments-control-plane-4m9tq");
    assert_eq!(
        cloud.runcmd,
        ["kubeadm init --config /etc/kubernetes/kubeadm.yaml"]
    );
    assert!(cloud.write_files.iter().all(|f| f.permissions == "0600"));
    assert!(cloud.write_files.iter().any(|f| f.path == BOOTSTRAP_PATH));
    assert_eq!(
        kinds(&docs),
        [
            ("kubeadm.k8s.io/v1beta4", "InitConfiguration"),
            ("kubeadm.k8s.io/v1beta4", "ClusterConfiguration"),
            ("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration"),
        ]
    );
    assert_eq!(
        docs[0].bootstrap_tokens.as_ref().expect("tokens")[0]["token"],
        "abcdef.0123456789abcdef"
    );
    // No taints key: kubeadm applies its control-plane taint.
    let reg = docs[0]
        .node_registration
        .as_ref()
        .expect("nodeRegistration");
    assert_eq!(reg["name"], "payments-control-plane-4m9tq");
    assert!(reg.get("taints").is_none());
    assert_eq!(docs[1].kubernetes_version.as_deref(), Some("v1.33.4"));
    let net = docs[1].networking.as_ref().expect("networking");
    assert_eq!(net["podSubnet"], "100.64.0.0/16");
    assert_eq!(net["serviceSubnet"], "10.96.0.0/12");
}

#[test]
fn control_plane_join_is_yaml_with_a_control_plane_join() {
    let (cloud, docs) = parse(&join_control_plane());
    assert_eq!(
        cloud.runcmd,
        ["kubeadm join --config /etc/kubernetes/kubeadm.yaml"]
    );
    assert_eq!(
        kinds(&docs),
        [("kubeadm.k8s.io/v1beta4", "JoinConfiguration")]
    );
    assert_eq!(docs[0].control_plane, Some(serde_json::json!({})));
    let discovery = &docs[0].discovery.as_ref().expect("discovery")["bootstrapToken"];
    assert_eq!(
        discovery["apiServerEndpoint"],
        "payments-apiserver.team-a.internal:6443"
    );
    assert_eq!(discovery["token"], "abcdef.0123456789abcdef");
    // The join pins the cluster CA; nothing skips verification.
    assert_eq!(discovery["caCertHashes"], serde_json::json!([CA_PIN]));
    assert!(discovery.get("unsafeSkipCAVerification").is_none());
}

#[test]
fn worker_join_is_yaml_with_labels_and_taints() {
    let (_, docs) = parse(&worker());
    assert_eq!(
        kinds(&docs),
        [("kubeadm.k8s.io/v1beta4", "JoinConfiguration")]
    );
    assert_eq!(docs[0].control_plane, None);
    let reg = docs[0]
        .node_registration
        .as_ref()
        .expect("nodeRegistration");
    assert_eq!(
        reg["kubeletExtraArgs"],
        serde_json::json!([{
            "name": "node-labels",
            "value": "node.kubernetes.io/instance-type=g5.xlarge,slipway.dev/pool=gpu,workload=ml"
        }])
    );
    assert_eq!(
        reg["taints"],
        serde_json::json!([
            {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"},
            {"key": "dedicated", "effect": "PreferNoSchedule"}
        ])
    );
}

#[test]
fn every_invalid_input_is_named() {
    fn with(base: fn() -> MachineConfig, f: impl FnOnce(&mut MachineConfig)) -> MachineConfig {
        let mut c = base();
        f(&mut c);
        c
    }
    fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(Into::into),
            effect: effect.into(),
        }
    }
    let reason = |e: &RenderError| e.to_string();
    type Case = (&'static str, MachineConfig, fn(&RenderError) -> bool);
    let cases: Vec<Case> = vec![
        (
            "cluster upper case",
            with(worker, |c| c.cluster = "Team-A".into()),
            |e| matches!(e, RenderError::Cluster { value, .. } if value == "Team-A"),
        ),
        (
            "cluster empty",
            with(worker, |c| c.cluster = String::new()),
            |e| matches!(e, RenderError::Cluster { .. }),
        ),
        (
            "node name with underscore",
            with(worker, |c| c.node_name = "node_1".into()),
            |e| matches!(e, RenderError::NodeName { value, .. } if value == "node_1"),
        ),
        (
            "version with leading v",
            with(worker, |c| c.kubernetes_version = "v1.33.4".into()),
            |e| matches!(e, RenderError::KubernetesVersion { value } if value == "v1.33.4"),
        ),
        (
            "version without patch",
            with(worker, |c| c.kubernetes_version = "1.33".into()),
            |e| matches!(e, RenderError::KubernetesVersion { .. }),
        ),
        (
            "version with leading zero",
            with(worker, |c| c.kubernetes_version = "1.033.4".into()),
            |e| matches!(e, RenderError::KubernetesVersion { .. }),
        ),
        (
            "version with empty pre-release",
            with(worker, |c| c.kubernetes_version = "1.34.0-".into()),
            |e| matches!(e, RenderError::KubernetesVersion { .. }),
        ),
        (
            "endpoint without port",
            with(worker, |c| {
                c.control_plane_endpoint = "api.example.com".into()
            }),
            |e| matches!(e, RenderError::ControlPlaneEndpoint { .. }),
        ),
        (
            "endpoint port 0",
            with(worker, |c| c.control_plane_endpoint = "10.0.0.1:0".into()),
            |e| matches!(e, RenderError::ControlPlaneEndpoint { .. }),
        ),
        (
            "endpoint port too large",
            with(worker, |c| {
                c.control_plane_endpoint = "10.0.0.1:70000".into()
            }),
            |e| matches!(e, RenderError::ControlPlaneEndpoint { .. }),
        ),
        (
            "endpoint bad IPv4",
            with(worker, |c| {
                c.control_plane_endpoint = "10.0.0.300:6443".into()
            }),
            |e| matches!(e, RenderError::ControlPlaneEndpoint { .. }),
        ),
        (
            "endpoint unbracketed IPv6",
            with(worker, |c| c.control_plane_endpoint = "fd00::1:6443".into()),
            |e| matches!(e, RenderError::ControlPlaneEndpoint { .. }),
        ),
        (
            "endpoint IPv4 in brackets",
            with(worker, |c| {
                c.control_plane_endpoint = "[10.0.0.1]:6443".into()
            }),
            |e| matches!(e, RenderError::ControlPlaneEndpoint { .. }),
        ),
        (
            "endpoint host with underscore",
            with(worker, |c| {
                c.control_plane_endpoint = "api_server:6443".into()
            }),
            |e| matches!(e, RenderError::ControlPlaneEndpoint { .. }),
        ),
        (
            "pod subnet not a CIDR",
            with(worker, |c| c.pod_subnet = "100.64.0.0".into()),
            |e| matches!(e, RenderError::PodSubnet { value, .. } if value == "100.64.0.0"),
        ),
        (
            "service subnet with host bits",
            with(worker, |c| c.service_subnet = "10.96.0.1/12".into()),
            |e| matches!(e, RenderError::ServiceSubnet { .. }),
        ),
        (
            "subnets overlap",
            with(worker, |c| c.service_subnet = "100.64.128.0/20".into()),
            |e| matches!(e, RenderError::SubnetsOverlap { .. }),
        ),
        ("init on a worker", with(worker, |c| c.init = true), |e| {
            *e == RenderError::InitOnWorker
        }),
        (
            "worker without pool",
            with(worker, |c| c.pool = None),
            |e| *e == RenderError::PoolMissing,
        ),
        (
            "control plane with pool",
            with(init_control_plane, |c| c.pool = Some("general".into())),
            |e| *e == RenderError::PoolOnControlPlane,
        ),
        (
            "pool not a DNS label",
            with(worker, |c| c.pool = Some("GPU.pool".into())),
            |e| matches!(e, RenderError::Pool { value, .. } if value == "GPU.pool"),
        ),
        (
            "label key with two slashes",
            with(worker, |c| {
                c.node_labels.insert("a/b/c".into(), "x".into());
            }),
            |e| matches!(e, RenderError::NodeLabelKey { key, .. } if key == "a/b/c"),
        ),
        (
            "label in kubernetes.io the kubelet may not set",
            with(worker, |c| {
                c.node_labels
                    .insert("node-role.kubernetes.io/worker".into(), String::new());
            }),
            |e| matches!(e, RenderError::RestrictedNodeLabel { key } if key == "node-role.kubernetes.io/worker"),
        ),
        (
            "label in k8s.io the kubelet may not set",
            with(worker, |c| {
                c.node_labels.insert("k8s.io/thing".into(), "x".into());
            }),
            |e| matches!(e, RenderError::RestrictedNodeLabel { .. }),
        ),
        (
            "label value with a comma",
            with(worker, |c| {
                c.node_labels.insert("team".into(), "a,b".into());
            }),
            |e| matches!(e, RenderError::NodeLabelValue { key, value, .. } if key == "team" && value == "a,b"),
        ),
        (
            "taint key invalid",
            with(worker, |c| {
                c.node_taints.push(taint("-bad", None, "NoSchedule"))
            }),
            |e| matches!(e, RenderError::TaintKey { key, .. } if key == "-bad"),
        ),
        (
            "taint value too long",
            with(worker, |c| {
                c.node_taints
                    .push(taint("x", Some(&"v".repeat(64)), "NoSchedule"))
            }),
            |e| matches!(e, RenderError::TaintValue { key, .. } if key == "x"),
        ),
        (
            "taint effect unknown",
            with(worker, |c| c.node_taints.push(taint("x", None, "NoRun"))),
            |e| matches!(e, RenderError::TaintEffect { effect, .. } if effect == "NoRun"),
        ),
        (
            "taint repeated with the same effect",
            with(worker, |c| {
                c.node_taints
                    .push(taint("nvidia.com/gpu", Some("false"), "NoSchedule"))
            }),
            |e| matches!(e, RenderError::DuplicateTaint { key, effect } if key == "nvidia.com/gpu" && effect == "NoSchedule"),
        ),
        (
            "control plane without admin token hash",
            with(init_control_plane, |c| c.admin_token_sha256 = None),
            |e| *e == RenderError::AdminTokenMissing,
        ),
        (
            "worker with admin token hash",
            with(worker, |c| c.admin_token_sha256 = Some(ADMIN_HASH.into())),
            |e| *e == RenderError::AdminTokenOnWorker,
        ),
        (
            "admin token hash upper case",
            with(join_control_plane, |c| {
                c.admin_token_sha256 = Some(ADMIN_HASH.to_uppercase())
            }),
            |e| matches!(e, RenderError::AdminTokenSha256 { .. }),
        ),
        (
            "admin token hash too short",
            with(join_control_plane, |c| {
                c.admin_token_sha256 = Some("abc".into())
            }),
            |e| matches!(e, RenderError::AdminTokenSha256 { value } if value == "abc"),
        ),
        (
            "bootstrap token without a dot",
            with(worker, |c| {
                c.bootstrap_token = "abcdef0123456789abcdef".into()
            }),
            |e| *e == RenderError::BootstrapToken,
        ),
        (
            "bootstrap token with upper case",
            with(worker, |c| {
                c.bootstrap_token = "ABCDEF.0123456789abcdef".into()
            }),
            |e| *e == RenderError::BootstrapToken,
        ),
        (
            "bootstrap token secret too short",
            with(worker, |c| c.bootstrap_token = "abcdef.0123456789".into()),
            |e| *e == RenderError::BootstrapToken,
        ),
        (
            "CA pin without its algorithm",
            with(worker, |c| {
                c.ca_cert_hash = CA_PIN.trim_start_matches("sha256:").into()
            }),
            |e| matches!(e, RenderError::CaCertHash { .. }),
        ),
        (
            "CA pin left empty",
            with(join_control_plane, |c| c.ca_cert_hash = String::new()),
            |e| matches!(e, RenderError::CaCertHash { value } if value.is_empty()),
        ),
        (
            "worker with etcd version",
            with(worker, |c| c.etcd_version = Some("3.5.21".into())),
            |e| *e == RenderError::EtcdVersionOnWorker,
        ),
        (
            "etcd version malformed",
            with(init_control_plane, |c| c.etcd_version = Some("3.5".into())),
            |e| matches!(e, RenderError::EtcdVersion { value } if value == "3.5"),
        ),
        (
            "etcd version with pre-release",
            with(init_control_plane, |c| {
                c.etcd_version = Some("3.5.21-0".into())
            }),
            |e| matches!(e, RenderError::EtcdVersion { .. }),
        ),
    ];
    for (name, config, expected) in cases {
        match render_user_data(&config) {
            Err(e) => assert!(expected(&e), "{name}: unexpected error {e:?}"),
            Ok(_) => panic!("{name}: rendered an invalid config"),
        }
    }
    // Messages name the field and never echo the bootstrap token.
    let e = render_user_data(&with(worker, |c| {
        c.bootstrap_token = "abcdef.0123456789abcdeX".into()
    }))
    .expect_err("invalid token");
    assert!(reason(&e).starts_with("bootstrap_token:"));
    assert!(!reason(&e).contains("0123456789abcde"));
    let e = render_user_data(&with(worker, |c| c.pod_subnet = "x".into())).expect_err("bad");
    assert!(reason(&e).starts_with("pod_subnet \"x\":"), "{e}");
}

#[test]
fn valid_variations_render() {
    let cases = [
        with_endpoint("10.0.0.10:6443"),
        with_endpoint("[fd00::10]:443"),
        MachineConfig {
            kubernetes_version: "1.34.0-rc.1".into(),
            ..worker()
        },
        MachineConfig {
            etcd_version: None,
            node_taints: vec![Taint {
                key: "node-role.kubernetes.io/control-plane".into(),
                value: None,
                effect: "NoSchedule".into(),
            }],
            ..init_control_plane()
        },
        MachineConfig {
            node_labels: BTreeMap::from([
                ("kubernetes.io/arch".into(), "arm64".into()),
                ("topology.kubernetes.io/zone".into(), "eu-west-1a".into()),
                ("team.node.kubernetes.io/owner".into(), String::new()),
            ]),
            ..worker()
        },
        MachineConfig {
            pod_subnet: "fd00:10::/56".into(),
            service_subnet: "fd00:20::/112".into(),
            ..worker()
        },
    ];
    for c in cases {
        assert!(
            render_user_data(&c).is_ok(),
            "{c:?}: {:?}",
            render_user_data(&c)
        );
    }
}

fn with_endpoint(endpoint: &str) -> MachineConfig {
    MachineConfig {
        control_plane_endpoint: endpoint.into(),
        ..worker()
    }
}
