//! The scenario list against the Spin component, one test per scenario (`spin::NAME`): the
//! artifact of `cargo build --release --target wasm32-wasip2 -p h200-edge-spin` (built when
//! missing or stale), composed with the test-only `spin-services` component (Spin key-value with
//! its atomics, and variables; see `wit/gateway.wit`) and served by `wasmtime serve`, in front of
//! a real `h200 backend`, with the variables of `spin.toml` and the test's values on top.
//!
//! `wasmtime serve` sets no `spin-client-addr`, so the component is reached through the test
//! front ([`h200_e2e::front`]), which appends it after the client's headers as Spin's HTTP
//! trigger does; no `client_ip_header` is configured, so the component's own choice of address
//! is what the scenarios measure. The front also lets a scenario leave the address out.

use std::process::ExitCode;

use h200_e2e::front::{Front, PEER_HEADER, Platform};
use h200_e2e::harness::{ALLOWED_ORIGIN, BLOCK_SECS, Backend, wait_healthy};
use h200_e2e::runtimes::{START_LIMIT, gateway_component, start_component};
use h200_e2e::suite::{self, System};
use h200_e2e::{scenarios, without_platform_address};

fn start(label: &str) -> System {
    let component = gateway_component();
    let backend = Backend::start(label);
    let served = start_component(
        &component,
        &backend.data.join("spin"),
        true,
        &[
            ("backend_url", backend.url.clone()),
            ("edge_signing_key_id", backend.edge_key.key_id().to_owned()),
            ("edge_signing_key", backend.edge_secret_base64()),
            ("cors_allowed_origins", ALLOWED_ORIGIN.to_owned()),
            ("block_duration_secs", BLOCK_SECS.to_string()),
        ],
    );
    let front = Front::start(&served.url, Platform::Spin);
    let served = served.behind(front);
    wait_healthy(&served.url, START_LIMIT);
    let fixture = backend.fixture(&served.url, PEER_HEADER);
    System::new(backend, served, fixture)
}

fn main() -> ExitCode {
    suite::main("spin", start, vec![scenarios(), without_platform_address()])
}
