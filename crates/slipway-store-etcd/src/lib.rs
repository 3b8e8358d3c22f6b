//! etcd v3 backend of the Slipway store (see `slipway_store::Store`).
