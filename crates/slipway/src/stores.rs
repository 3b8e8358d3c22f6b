//! Opening the configured store backend.

use std::sync::Arc;

use anyhow::Context as _;
use slipway_store::Store;

use crate::StoreArgs;

pub async fn open(args: &StoreArgs) -> anyhow::Result<Arc<dyn Store>> {
    match args.store.as_str() {
        "sqlite" => {
            std::fs::create_dir_all(&args.data_dir)
                .with_context(|| format!("creating {}", args.data_dir.display()))?;
            let path = args.data_dir.join("slipway.db");
            let store = slipway_store::sqlite::SqliteStore::open(&path)
                .with_context(|| format!("opening SQLite store {}", path.display()))?;
            Ok(Arc::new(store))
        }
        "etcd" => open_etcd(args).await,
        other => anyhow::bail!("unknown store {other:?}: use sqlite or etcd"),
    }
}

#[cfg(feature = "etcd")]
async fn open_etcd(args: &StoreArgs) -> anyhow::Result<Arc<dyn Store>> {
    let store = slipway_store_etcd::EtcdStore::connect(&args.etcd_endpoints, &args.etcd_prefix)
        .await
        .with_context(|| format!("connecting to etcd at {}", args.etcd_endpoints.join(",")))?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "etcd"))]
async fn open_etcd(_: &StoreArgs) -> anyhow::Result<Arc<dyn Store>> {
    anyhow::bail!(
        "this slipway was built without etcd support: rebuild with `--features etcd` (needs protoc)"
    )
}
