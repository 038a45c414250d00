//! The scenario list against the native runtime, one test per scenario (`native::NAME`): real
//! `h200 backend` and `h200 edge` processes on ephemeral ports with a temporary data folder;
//! and the snapshots of the public JSON shapes, taken through this edge.

use std::process::ExitCode;
use std::time::Duration;

use h200_e2e::harness::{
    ALLOWED_ORIGIN, BLOCK_SECS, Backend, Running, free_port, h200, wait_healthy,
};
use h200_e2e::runtimes::Served;
use h200_e2e::suite::{self, System};
use h200_e2e::{scenarios, shapes};

/// The client address header the native edge is told to trust.
const CLIENT_IP_HEADER: &str = "x-forwarded-for";

fn start(label: &str) -> System {
    let backend = Backend::start(label);
    let edge_port = free_port();
    let edge = Served::new(
        format!("http://127.0.0.1:{edge_port}"),
        Running(
            h200(&backend.binary, &backend.data)
                .args([
                    "edge",
                    "--addr",
                    &format!("127.0.0.1:{edge_port}"),
                    "--backend-url",
                    &backend.url,
                    "--client-ip-header",
                    CLIENT_IP_HEADER,
                    "--cors-origins",
                    ALLOWED_ORIGIN,
                    "--block-duration-secs",
                    &BLOCK_SECS.to_string(),
                ])
                .spawn()
                .expect("edge starts"),
        ),
    );
    wait_healthy(&edge.url, Duration::from_secs(30));
    let fixture = backend.fixture(&edge.url, CLIENT_IP_HEADER);
    System::new(backend, edge, fixture)
}

fn main() -> ExitCode {
    suite::main("native", start, vec![scenarios(), shapes::snapshots()])
}
