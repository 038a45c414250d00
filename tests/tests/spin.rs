//! The scenario list against the Spin component: the artifact of `cargo build --release --target
//! wasm32-wasip2 -p h200-edge-spin`, composed with the test-only `spin-services` component
//! (Spin key-value and variables, see `wit/gateway.wit`) and served by `wasmtime serve`, in
//! front of a real `h200 backend`, with the variables of `spin.toml` and the test's values on
//! top.

use h200_e2e::harness::{ALLOWED_ORIGIN, BLOCK_SECS, Backend, run_scenarios, wait_healthy};
use h200_e2e::runtimes::{START_LIMIT, gateway_component, start_component};

/// The client address header the test sets: `wasmtime serve` does not set Spin's own
/// `spin-client-addr`.
const CLIENT_IP_HEADER: &str = "x-forwarded-for";

#[test]
fn every_scenario_passes_against_the_spin_component() {
    let component = gateway_component();
    let backend = Backend::start("spin");
    let served = start_component(
        &component,
        &backend.data.join("spin"),
        true,
        &[
            ("backend_url", backend.url.clone()),
            ("edge_signing_key_id", backend.edge_key.key_id().to_owned()),
            ("edge_signing_key", backend.edge_secret_base64()),
            ("cors_allowed_origins", ALLOWED_ORIGIN.to_owned()),
            ("client_ip_header", CLIENT_IP_HEADER.to_owned()),
            ("block_duration_secs", BLOCK_SECS.to_string()),
        ],
    );
    wait_healthy(&served.url, START_LIMIT);
    run_scenarios(&backend.fixture(&served.url, CLIENT_IP_HEADER));
}
