//! Two logical clusters behind one HTTPS listener, driven with the real kubectl: each sees
//! only its own objects, accepts only its own token, and answers 503 while marked down.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use slipway_apiserver::pki::{self, User};
use slipway_apiserver::tenants::{Tenants, path_prefix};
use slipway_apiserver::{Surface, spawn_https};
use slipway_registry::keys::Keys;
use slipway_registry::{Registry, RegistryConfig};
use slipway_store::Store;
use slipway_store::sqlite::SqliteStore;

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    let found = Command::new("sh")
        .args(["-c", "command -v kubectl"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`kubectl` is not installed: scripts/test installs Debian's kubernetes-client"
    );
    let cache = kubeconfig.with_extension("cache");
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env("KUBECACHEDIR", cache)
        .stdin(Stdio::null())
        .output()
        .expect("run kubectl")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logical_clusters_behind_one_listener() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("s.db")).expect("open store"));
    let defs: Vec<_> = slipway_api::resources().into_iter().map(Arc::new).collect();
    let tenants = Tenants::new(Surface::new(&defs));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cert =
        pki::ensure_serving_cert(&dir.path().join("pki"), &pki::serving_names(addr)).expect("cert");
    let _task = spawn_https(listener, &cert, tenants.router()).expect("serve");

    let mut kubeconfigs: Vec<PathBuf> = Vec::new();
    for name in ["a", "b"] {
        let registry = Registry::start_shared(
            Arc::clone(&store),
            defs.clone(),
            RegistryConfig {
                compaction_interval: None,
                keys: Keys::for_logical_cluster(name),
                ..Default::default()
            },
        )
        .await
        .expect("registry");
        let token = format!("token-of-{name}");
        let tokens = pki::Tokens::single(
            &hex::encode(pki::hash_token(&token)),
            User {
                name: "admin".into(),
                groups: vec!["system:masters".into()],
            },
        )
        .expect("tokens");
        tenants.insert(name, registry, tokens);
        let url = format!("{}{}", pki::client_url(addr), path_prefix(name));
        let path = dir.path().join(format!("{name}.kubeconfig"));
        std::fs::write(
            &path,
            pki::render_kubeconfig(name, &url, &cert.ca_pem, "admin", &token),
        )
        .expect("write kubeconfig");
        kubeconfigs.push(path);
    }
    let (a, b) = (&kubeconfigs[0], &kubeconfigs[1]);

    ok(kubectl(
        a,
        &["create", "configmap", "only-in-a", "--from-literal=k=v"],
    ));
    ok(kubectl(
        b,
        &["create", "configmap", "only-in-b", "--from-literal=k=v"],
    ));
    let in_a = ok(kubectl(a, &["get", "configmaps", "-o", "name"]));
    let in_b = ok(kubectl(b, &["get", "configmaps", "-o", "name"]));
    assert_eq!(in_a.trim(), "configmap/only-in-a");
    assert_eq!(in_b.trim(), "configmap/only-in-b");
    // /version under the prefix.
    assert!(ok(kubectl(a, &["version", "-o", "json"])).contains("serverVersion"));

    // b's token is not valid for a.
    let cross = dir.path().join("cross.kubeconfig");
    let text = std::fs::read_to_string(b)
        .expect("read")
        .replace(&path_prefix("b"), &path_prefix("a"));
    std::fs::write(&cross, text).expect("write");
    let out = kubectl(&cross, &["get", "configmaps"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("provide credentials"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A tenant marked down answers 503 with the reason; back up, it serves again.
    assert!(tenants.set_unavailable("a", Some("0 of 3 control-plane machines running".into())));
    let out = kubectl(a, &["get", "configmaps", "--request-timeout=5s"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unavailable") || err.contains("unable to handle"),
        "{err}"
    );
    ok(kubectl(b, &["get", "configmaps"]));
    tenants.set_unavailable("a", None);
    assert_eq!(
        ok(kubectl(a, &["get", "configmaps", "-o", "name"])).trim(),
        "configmap/only-in-a"
    );

    // A removed tenant is gone.
    assert!(tenants.remove("b").is_some());
    assert!(!kubectl(b, &["get", "configmaps"]).status.success());
    assert_eq!(tenants.names(), ["a"]);
}
