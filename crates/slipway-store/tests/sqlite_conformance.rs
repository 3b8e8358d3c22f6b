//! The store conformance suite on the SQLite backend, each case on a fresh file in a
//! temporary directory.

use std::sync::Arc;

use slipway_store::Store;
use slipway_store::sqlite::SqliteStore;

async fn fresh_store() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("store.db")).expect("open store");
    (Arc::new(store), dir)
}

slipway_store::store_conformance_tests!(fresh_store());
