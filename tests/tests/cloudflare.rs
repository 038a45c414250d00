//! The scenario list against the Cloudflare Worker, one test per scenario (`cloudflare::NAME`):
//! the artifact `worker-build` makes (`main` of `wrangler.toml`, built when missing or stale), run
//! by Miniflare (workerd) with the Durable Object, compatibility date and vars of
//! `wrangler.toml`, in front of a real `h200 backend`.
//!
//! The client address comes from `CF-Connecting-IP`. Cloudflare drops any the client sent and
//! sets its own; Miniflare sets it only when the client sent none, so the Worker is reached
//! through the test front ([`h200_e2e::front`]), which overwrites it as Cloudflare does.

use std::process::ExitCode;

use h200_e2e::front::{Front, PEER_HEADER, Platform};
use h200_e2e::harness::{ALLOWED_ORIGIN, BLOCK_SECS, Backend, wait_healthy};
use h200_e2e::runtimes::{START_LIMIT, gateway_worker, start_worker};
use h200_e2e::scenarios;
use h200_e2e::suite::{self, System};

fn start(label: &str) -> System {
    let script = gateway_worker();
    let backend = Backend::start(label);
    let worker = start_worker(
        &script,
        &[
            ("BACKEND_URL", backend.url.clone()),
            ("EDGE_SIGNING_KEY_ID", backend.edge_key.key_id().to_owned()),
            ("EDGE_SIGNING_KEY", backend.edge_secret_base64()),
            ("CORS_ALLOWED_ORIGINS", ALLOWED_ORIGIN.to_owned()),
            ("BLOCK_DURATION_SECS", BLOCK_SECS.to_string()),
        ],
    );
    let front = Front::start(&worker.url, Platform::Cloudflare);
    let worker = worker.behind(front);
    wait_healthy(&worker.url, START_LIMIT);
    let fixture = backend.fixture(&worker.url, PEER_HEADER);
    System::new(backend, worker, fixture)
}

fn main() -> ExitCode {
    suite::main("cloudflare", start, vec![scenarios()])
}
