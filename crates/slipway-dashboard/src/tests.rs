//! The dashboard's HTTP behaviour over a real registry (SQLite in a temp dir): auth,
//! sessions, pages, headers and the live stream.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::json;
use slipway_registry::{Registry, RegistryConfig, WriteOptions};
use tower::ServiceExt as _;

use super::*;

const TOKEN: &str = "right-token";

struct Fixture {
    registry: Arc<Registry>,
    router: Router,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store =
        slipway_store::sqlite::SqliteStore::open(&dir.path().join("store.db")).expect("open store");
    let registry = Registry::start(
        Arc::new(store),
        slipway_api::resources(),
        RegistryConfig::default(),
    )
    .await
    .expect("registry");
    let namespaces = registry
        .resource("", "v1", "namespaces")
        .expect("namespaces");
    registry
        .create(
            &namespaces,
            None,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
            &WriteOptions::default(),
        )
        .await
        .expect("namespace");
    let dashboard = Dashboard::new(Arc::clone(&registry), Arc::new(|t: &str| t == TOKEN));
    Fixture {
        router: dashboard.router(),
        registry,
        _dir: dir,
    }
}

impl Fixture {
    async fn send(&self, req: Request<Body>) -> Response {
        self.router.clone().oneshot(req).await.expect("infallible")
    }

    async fn get(&self, path: &str, auth: Option<(&str, &str)>) -> Response {
        let mut req = Request::get(path);
        if let Some((name, value)) = auth {
            req = req.header(name, value);
        }
        self.send(req.body(Body::empty()).expect("request")).await
    }

    async fn create(&self, plural: &str, group: &str, version: &str, obj: serde_json::Value) {
        let def = self
            .registry
            .resource(group, version, plural)
            .expect("served kind");
        self.registry
            .create(&def, Some("team"), obj, &WriteOptions::default())
            .await
            .expect("create");
    }
}

async fn text(r: Response) -> String {
    let bytes = r.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

fn location(r: &Response) -> &str {
    r.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn bearer() -> Option<(&'static str, &'static str)> {
    Some(("authorization", "Bearer right-token"))
}

#[tokio::test]
async fn nothing_is_readable_without_a_session_or_token() {
    let f = fixture().await;
    for path in ["/ui/", "/ui/clusters/team/a", "/ui/nope"] {
        let r = f.get(path, None).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&r), "/ui/login", "{path}");
    }
    for path in [
        "/ui/api/events",
        "/ui/?fragment=1",
        "/ui/clusters/team/a?fragment=1",
    ] {
        assert_eq!(
            f.get(path, None).await.status(),
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
        let wrong = f.get(path, Some(("authorization", "Bearer wrong"))).await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let forged = f
        .get("/ui/", Some(("cookie", "slipway_session=00ff")))
        .await;
    assert_eq!(forged.status(), StatusCode::SEE_OTHER);
    // The login form and the assets are public, and carry the policy.
    let r = f.get("/ui/login", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()[header::CONTENT_SECURITY_POLICY],
        CONTENT_SECURITY_POLICY
    );
    assert!(text(r).await.contains("name=\"token\""));
    let css = f.get("/ui/assets/style.css", None).await;
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(css.headers()[header::CONTENT_TYPE], "text/css");
}

#[tokio::test]
async fn login_sets_a_strict_session_cookie_and_logout_ends_it() {
    let f = fixture().await;
    let post = |token: &str| {
        Request::post("/ui/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={token}")))
            .expect("request")
    };
    let refused = f.send(post("wrong")).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.headers().get(header::SET_COOKIE).is_none());
    assert!(text(refused).await.contains("not valid"));

    let ok = f.send(post(TOKEN)).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&ok), "/ui/");
    let set = ok.headers()[header::SET_COOKIE]
        .to_str()
        .expect("ascii")
        .to_string();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/ui"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains(TOKEN), "the token itself is never the cookie");
    let cookie = set.split(';').next().expect("pair").to_string();

    let page = f.get("/ui/", Some(("cookie", &cookie))).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()[header::CACHE_CONTROL], "no-store");
    assert!(
        text(page)
            .await
            .contains("<h1 id=\"fleet-title\">Fleet</h1>")
    );
    // Signed in, the login form sends the browser on.
    assert_eq!(
        f.get("/ui/login", Some(("cookie", &cookie))).await.status(),
        StatusCode::SEE_OTHER
    );

    let out = f
        .send(
            Request::post("/ui/logout")
                .header("cookie", &cookie)
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(
        out.headers()[header::SET_COOKIE]
            .to_str()
            .expect("ascii")
            .contains("Max-Age=0")
    );
    let after = f.get("/ui/", Some(("cookie", &cookie))).await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
}

fn cluster(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "slipway.dev/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": name, "namespace": "team"},
        "spec": {
            "class": "development",
            "version": "1.33.4",
            "infrastructure": {"provider": "sim", "region": "eu-west-1", "zones": ["eu-west-1a"]},
            "controlPlane": {"replicas": 1, "machineType": "m5.large"},
            "nodePools": [{"name": "general", "machineType": "m5.xlarge", "replicas": 2}]
        }
    })
}

#[tokio::test]
async fn pages_show_clusters_machines_and_events_to_a_bearer_token() {
    let f = fixture().await;
    f.create("clusters", "slipway.dev", "v1alpha1", cluster("payments"))
        .await;
    f.create(
        "machines",
        "slipway.dev",
        "v1alpha1",
        json!({
            "apiVersion": "slipway.dev/v1alpha1",
            "kind": "Machine",
            "metadata": {"name": "payments-general-x1", "namespace": "team"},
            "spec": {"clusterName": "payments", "role": "worker", "pool": "general",
                     "zone": "eu-west-1a", "machineType": "m5.xlarge", "version": "1.33.4"}
        }),
    )
    .await;
    f.create(
        "events",
        "",
        "v1",
        json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "payments.1", "namespace": "team"},
            "involvedObject": {"kind": "Machine", "name": "payments-general-x1", "namespace": "team"},
            "reason": "MachineCreated", "message": "created <in> eu-west-1a", "type": "Normal"
        }),
    )
    .await;

    let overview = text(f.get("/ui/", bearer()).await).await;
    assert!(overview.contains("href=\"/ui/clusters/team/payments\""));
    assert!(overview.contains("development"));
    assert!(overview.contains("data-version=\"1.33.4\""));

    let page = f.get("/ui/clusters/team/payments", bearer()).await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = text(page).await;
    assert!(page.contains("data-scope=\"cluster\""));
    assert!(page.contains("payments-general-x1"));
    assert!(page.contains("MachineCreated"));
    assert!(page.contains("created &lt;in&gt; eu-west-1a"));
    // Nothing is Ready yet: the progress view shows the pool converging.
    assert!(page.contains("data-converging=\"true\""));
    assert!(page.contains("<progress max=\"2\" value=\"0\""));

    let fragment = text(
        f.get("/ui/clusters/team/payments?fragment=1", bearer())
            .await,
    )
    .await;
    assert!(fragment.starts_with("<section id=\"summary\""));
    assert_eq!(
        f.get("/ui/clusters/team/absent", bearer()).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_event_stream_reports_changes_as_they_are_written() {
    let f = fixture().await;
    let r = f.get("/ui/api/events", bearer()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = r.into_body();
    f.create("clusters", "slipway.dev", "v1alpha1", cluster("live"))
        .await;
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains("\n\n") {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .expect("an event within 10s")
            .expect("stream open")
            .expect("frame");
        if let Ok(data) = frame.into_data() {
            seen.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert!(seen.starts_with("event: change\n"), "{seen}");
    let data = seen
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("data line");
    let change: serde_json::Value = serde_json::from_str(data).expect("json");
    assert_eq!(
        change,
        json!({"kind": "Cluster", "namespace": "team", "name": "live", "cluster": "live"})
    );
}
