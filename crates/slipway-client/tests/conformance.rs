//! The client behavioural suite against both implementations.

mod in_process {
    slipway_client::client_conformance_tests!(slipway_client::conformance::in_process());
}

mod http {
    slipway_client::client_conformance_tests!(slipway_client::conformance::http());
}
