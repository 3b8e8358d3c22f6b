//! The fence travels as a request header; the API server refuses a malformed one.

use serde_json::json;
use slipway_client::{FENCE_HEADER, Http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_fence_header_is_a_bad_request() {
    let f = slipway_client::conformance::http().await;
    let kube = Http::from_kubeconfig(f.kubeconfig.as_deref().expect("kubeconfig"))
        .await
        .expect("client")
        .kube_client()
        .expect("kube client");
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
    let req = http::Request::post("/api/v1/namespaces/default/configmaps")
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(FENCE_HEADER, "only-a-namespace")
        .body(serde_json::to_vec(&body).expect("json"))
        .expect("request");
    let e = kube
        .request::<serde_json::Value>(req)
        .await
        .expect_err("a malformed fence must be refused");
    let e = slipway_client::Error::from(e);
    assert_eq!(e.status().map(|s| s.code), Some(400), "{e}");
    assert!(e.to_string().contains(FENCE_HEADER), "{e}");
    // Nothing was written.
    let kube_get = http::Request::get("/api/v1/namespaces/default/configmaps/x")
        .body(Vec::new())
        .expect("request");
    let e = kube
        .request::<serde_json::Value>(kube_get)
        .await
        .expect_err("not created");
    assert_eq!(
        slipway_client::Error::from(e).status().map(|s| s.code),
        Some(404)
    );
}
