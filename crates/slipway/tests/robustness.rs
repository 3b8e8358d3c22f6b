//! Crash safety and bad input: nothing acknowledged is lost, nothing malformed gets a 5xx or a
//! partial write.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Backend, Server, cluster_manifest};
use http::{Method, Request};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn crash_during_burst(backend: Backend) {
    let mut server = Server::start(backend);
    for round in 0..3 {
        let client = server.client().await;
        let api: Api<ConfigMap> = Api::namespaced(client, "default");
        let acked: Arc<Mutex<BTreeMap<String, i64>>> = Arc::default();
        let mut writers = Vec::new();
        for w in 0..16 {
            let api = api.clone();
            let acked = Arc::clone(&acked);
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let name = format!("r{round}-w{w}-{i}");
                    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
                        "metadata": {"name": name},
                        "data": {"payload": "x".repeat(200)},
                    }))
                    .expect("configmap");
                    match api.create(&PostParams::default(), &cm).await {
                        Ok(created) => {
                            let rv: i64 = created
                                .metadata
                                .resource_version
                                .as_deref()
                                .unwrap_or("0")
                                .parse()
                                .expect("rv");
                            acked.lock().expect("lock").insert(name, rv);
                        }
                        Err(_) => return,
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(700 + round * 300)).await;
        server.kill();
        for w in writers {
            let _ = w.await;
        }
        server.restart();
        let client = server.client().await;
        let api: Api<ConfigMap> = Api::namespaced(client, "default");
        let list = api
            .list(&Default::default())
            .await
            .expect("list after restart");
        let present: BTreeMap<String, i64> = list
            .items
            .iter()
            .map(|c| {
                (
                    c.metadata.name.clone().unwrap_or_default(),
                    c.metadata
                        .resource_version
                        .as_deref()
                        .unwrap_or("0")
                        .parse()
                        .expect("rv"),
                )
            })
            .collect();
        let acked = acked.lock().expect("lock").clone();
        assert!(!acked.is_empty(), "the burst must have written something");
        for (name, rv) in &acked {
            assert_eq!(
                present.get(name),
                Some(rv),
                "acknowledged write {name} at {rv} lost after kill -9"
            );
        }
        // Revisions only grow across the crash.
        let max_acked = acked.values().max().copied().unwrap_or(0);
        let cm: ConfigMap = serde_json::from_value(
            serde_json::json!({"metadata": {"name": format!("after-{round}")}}),
        )
        .expect("cm");
        let after = api
            .create(&PostParams::default(), &cm)
            .await
            .expect("write after restart");
        let rv: i64 = after
            .metadata
            .resource_version
            .as_deref()
            .unwrap_or("0")
            .parse()
            .expect("rv");
        assert!(
            rv > max_acked,
            "revision went backwards: {rv} <= {max_acked}"
        );
    }
}

fn crash(backend: Backend) {
    runtime().block_on(crash_during_burst(backend));
}
on_every_backend!(kill_9_during_write_burst_loses_nothing_acknowledged, crash);

struct Raw {
    client: kube::Client,
}

impl Raw {
    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, serde_json::Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", content_type)
            .body(kube::client::Body::from(body))
            .expect("request");
        let res = self.client.send(req).await.expect("send");
        let code = res.status().as_u16();
        let bytes = http_body_util_collect(res).await;
        let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (code, value)
    }
}

async fn http_body_util_collect(res: http::Response<kube::client::Body>) -> Vec<u8> {
    use http_body_util::BodyExt;
    res.into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec()
}

const CLUSTERS: &str = "/apis/slipway.dev/v1alpha1/namespaces/default/clusters";

async fn bad_requests(backend: Backend) {
    let server = Server::start(backend);
    let raw = Raw {
        client: server.client().await,
    };
    let good = serde_json::to_vec(&common::yaml(&cluster_manifest(
        "default", "good", "1.33.4",
    )))
    .expect("json");
    // (what, method, path, content type, body, expected code, message must contain)
    type Case<'a> = (&'a str, Method, String, &'a str, Vec<u8>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "malformed JSON",
            Method::POST,
            CLUSTERS.into(),
            "application/json",
            b"{\"apiVersion\": ".to_vec(),
            400,
            "decoded",
        ),
        (
            "malformed YAML",
            Method::POST,
            CLUSTERS.into(),
            "application/yaml",
            b"a: [b".to_vec(),
            400,
            "YAML",
        ),
        (
            "empty body",
            Method::POST,
            CLUSTERS.into(),
            "application/json",
            Vec::new(),
            400,
            "empty",
        ),
        (
            "wrong apiVersion",
            Method::POST,
            CLUSTERS.into(),
            "application/json",
            String::from_utf8_lossy(&good)
                .replace("slipway.dev/v1alpha1", "slipway.dev/v9")
                .into_bytes(),
            400,
            "API version",
        ),
        (
            "wrong kind",
            Method::POST,
            CLUSTERS.into(),
            "application/json",
            String::from_utf8_lossy(&good)
                .replace("\"Cluster\"", "\"Machine\"")
                .into_bytes(),
            400,
            "kind",
        ),
        (
            "missing name",
            Method::POST,
            CLUSTERS.into(),
            "application/json",
            String::from_utf8_lossy(&good)
                .replace("\"name\":\"good\",", "")
                .into_bytes(),
            422,
            "metadata.name",
        ),
        (
            "invalid name",
            Method::POST,
            CLUSTERS.into(),
            "application/json",
            String::from_utf8_lossy(&good)
                .replace("\"name\":\"good\"", "\"name\":\"No Good\"")
                .into_bytes(),
            422,
            "metadata.name",
        ),
        (
            "unknown field under Strict",
            Method::POST,
            format!("{CLUSTERS}?fieldValidation=Strict"),
            "application/json",
            String::from_utf8_lossy(&good)
                .replace("\"version\":", "\"colour\":\"red\",\"version\":")
                .into_bytes(),
            400,
            "spec.colour",
        ),
        (
            "duplicate field under Strict",
            Method::POST,
            format!("{CLUSTERS}?fieldValidation=Strict"),
            "application/json",
            String::from_utf8_lossy(&good)
                .replace(
                    "\"version\":\"1.33.4\"",
                    "\"version\":\"1.33.4\",\"version\":\"1.33.5\"",
                )
                .into_bytes(),
            400,
            "duplicate field",
        ),
        (
            "oversized body",
            Method::POST,
            CLUSTERS.into(),
            "application/json",
            vec![b' '; 4 * 1024 * 1024],
            413,
            "too large",
        ),
        (
            "invalid label selector",
            Method::GET,
            format!("{CLUSTERS}?labelSelector=a%20in%20(b"),
            "application/json",
            Vec::new(),
            400,
            "",
        ),
        (
            "unsupported field selector",
            Method::GET,
            format!("{CLUSTERS}?fieldSelector=spec.version%3D1"),
            "application/json",
            Vec::new(),
            400,
            "field label not supported",
        ),
        (
            "bad resourceVersion",
            Method::GET,
            format!("{CLUSTERS}?resourceVersion=abc"),
            "application/json",
            Vec::new(),
            400,
            "resource version",
        ),
        (
            "bad fieldValidation",
            Method::POST,
            format!("{CLUSTERS}?fieldValidation=Sometimes"),
            "application/json",
            good.clone(),
            400,
            "fieldValidation",
        ),
        (
            "bad dryRun",
            Method::POST,
            format!("{CLUSTERS}?dryRun=Maybe"),
            "application/json",
            good.clone(),
            400,
            "dry run",
        ),
        (
            "strategic merge patch",
            Method::PATCH,
            format!("{CLUSTERS}/good"),
            "application/strategic-merge-patch+json",
            b"{}".to_vec(),
            415,
            "",
        ),
        (
            "unknown resource",
            Method::GET,
            "/apis/slipway.dev/v1alpha1/namespaces/default/widgets".into(),
            "application/json",
            Vec::new(),
            404,
            "",
        ),
        (
            "bad continue token",
            Method::GET,
            format!("{CLUSTERS}?limit=1&continue=%%%"),
            "application/json",
            Vec::new(),
            400,
            "continue",
        ),
    ];
    for (what, method, path, ct, body, code, needle) in cases {
        let (got, status) = raw.send(method, &path, ct, body).await;
        assert_eq!(got, code, "{what}: expected {code}, got {got}: {status}");
        assert_eq!(status["kind"], "Status", "{what}: {status}");
        let message = status["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "{what}: message {message:?} should mention {needle:?}"
        );
    }
    // None of those wrote anything.
    let (_, list) = raw
        .send(Method::GET, CLUSTERS, "application/json", Vec::new())
        .await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{list}");

    // A stale resourceVersion is 409, with the object untouched.
    let (code, created) = raw
        .send(Method::POST, CLUSTERS, "application/json", good.clone())
        .await;
    assert_eq!(code, 201, "{created}");
    let mut stale = created.clone();
    stale["metadata"]["resourceVersion"] = serde_json::json!("1");
    stale["spec"]["version"] = serde_json::json!("1.34.0");
    let (code, status) = raw
        .send(
            Method::PUT,
            &format!("{CLUSTERS}/good"),
            "application/json",
            serde_json::to_vec(&stale).expect("json"),
        )
        .await;
    assert_eq!(code, 409, "{status}");
    assert_eq!(status["reason"], "Conflict");
    // Invalid updates name the field and leave the object as it was.
    let mut invalid = created.clone();
    invalid["spec"]["controlPlane"]["replicas"] = serde_json::json!(2);
    let (code, status) = raw
        .send(
            Method::PUT,
            &format!("{CLUSTERS}/good"),
            "application/json",
            serde_json::to_vec(&invalid).expect("json"),
        )
        .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["details"]["causes"][0]["field"], "spec.controlPlane.replicas",
        "{status}"
    );
    let (_, now) = raw
        .send(
            Method::GET,
            &format!("{CLUSTERS}/good"),
            "application/json",
            Vec::new(),
        )
        .await;
    assert_eq!(
        now["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    // dryRun writes nothing.
    let mut dry = created.clone();
    dry["spec"]["version"] = serde_json::json!("1.34.1");
    let (code, _) = raw
        .send(
            Method::PUT,
            &format!("{CLUSTERS}/good?dryRun=All"),
            "application/json",
            serde_json::to_vec(&dry).expect("json"),
        )
        .await;
    assert_eq!(code, 200);
    let (_, now) = raw
        .send(
            Method::GET,
            &format!("{CLUSTERS}/good"),
            "application/json",
            Vec::new(),
        )
        .await;
    assert_eq!(now["spec"]["version"], "1.33.4");
    // Without credentials: 401.
    let anonymous = reqwest_free_get(&server).await;
    assert_eq!(anonymous, 401);
}

/// A request with no credentials (kube-rs with a kubeconfig that has no token).
async fn reqwest_free_get(server: &Server) -> u16 {
    let mut kubeconfig =
        kube::config::Kubeconfig::read_from(server.kubeconfig()).expect("kubeconfig");
    for user in &mut kubeconfig.auth_infos {
        if let Some(info) = user.auth_info.as_mut() {
            info.token = None;
        }
    }
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    let client = kube::Client::try_from(config).expect("client");
    let req = Request::builder()
        .uri(CLUSTERS)
        .body(kube::client::Body::empty())
        .expect("request");
    client.send(req).await.expect("send").status().as_u16()
}

fn bad_input(backend: Backend) {
    runtime().block_on(bad_requests(backend));
}
on_every_backend!(bad_input_gets_a_clear_4xx, bad_input);
