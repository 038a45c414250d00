//! The scenario list against the Cloudflare Worker: the artifact `worker-build` made
//! (`main` of `wrangler.toml`), run by Miniflare (workerd) with the Durable Object, compatibility
//! date and vars of `wrangler.toml`, in front of a real `h200 backend`. The client address comes
//! from `CF-Connecting-IP`, the header Cloudflare sets.

use h200_e2e::harness::{ALLOWED_ORIGIN, BLOCK_SECS, Backend, run_scenarios, wait_healthy};
use h200_e2e::runtimes::{START_LIMIT, gateway_worker, start_worker};

#[test]
fn every_scenario_passes_against_the_cloudflare_worker() {
    let script = gateway_worker();
    let backend = Backend::start("cloudflare");
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
    wait_healthy(&worker.url, START_LIMIT);
    run_scenarios(&backend.fixture(&worker.url, "cf-connecting-ip"));
}
