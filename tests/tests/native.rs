//! The scenario list against the native runtime: real `h200 backend` and `h200 edge` processes
//! on ephemeral ports with a temporary data folder.

use std::time::Duration;

use h200_e2e::harness::{
    ALLOWED_ORIGIN, BLOCK_SECS, Backend, Running, free_port, h200, run_scenarios, wait_healthy,
};

#[test]
fn every_scenario_passes_against_the_native_edge() {
    let backend = Backend::start("native");
    let edge_port = free_port();
    let edge_url = format!("http://127.0.0.1:{edge_port}");
    let _edge = Running(
        h200(&backend.binary, &backend.data)
            .args([
                "edge",
                "--addr",
                &format!("127.0.0.1:{edge_port}"),
                "--backend-url",
                &backend.url,
                "--client-ip-header",
                "x-forwarded-for",
                "--cors-origins",
                ALLOWED_ORIGIN,
                "--block-duration-secs",
                &BLOCK_SECS.to_string(),
            ])
            .spawn()
            .expect("edge starts"),
    );
    wait_healthy(&edge_url, Duration::from_secs(30));
    run_scenarios(&backend.fixture(&edge_url, "x-forwarded-for"));
}
