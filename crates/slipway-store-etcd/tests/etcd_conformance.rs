//! The store conformance suite against a real etcd.
//!
//! Every case gets its own etcd process: compaction is global to an etcd cluster, and the
//! suite's cases assume a fresh store (a watch from revision 0 replays everything, `list("")`
//! sees only the case's keys). The store uses a key prefix so that the prefix handling is
//! exercised by every case.

use std::sync::Arc;

use slipway_store::Store;
use slipway_store_etcd::{EtcdProcess, EtcdStore};

async fn etcd_store() -> (Arc<dyn Store>, EtcdProcess) {
    let etcd = tokio::task::spawn_blocking(EtcdProcess::start)
        .await
        .expect("start etcd");
    let store = EtcdStore::connect(&etcd.endpoints(), "/conformance")
        .await
        .expect("connect to etcd");
    (Arc::new(store) as Arc<dyn Store>, etcd)
}

mod conformance {
    slipway_store::store_conformance_tests!(super::etcd_store());
}
