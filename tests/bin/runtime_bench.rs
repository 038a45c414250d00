//! Measures each wasm runtime's gateway against a hello-world of the same runtime, in one run on
//! this machine: cold start (process start to the first 200) and the latency of sequential
//! kept-alive requests, a public route (`GET /health`) and an authenticated one (`GET
//! /api/v1/servers` with a Bearer token). Installs and builds what the runtime tests do, plus the
//! hello-worlds of `tests/runtimes/hello`. Run: `cargo run -p h200-e2e --bin runtime-bench`.

use std::path::Path;
use std::time::{Duration, Instant};

use h200_e2e::harness::{Backend, PASSWORD};
use h200_e2e::runtimes::{
    START_LIMIT, Served, gateway_component, gateway_worker, hello_component, hello_worker,
    start_component, start_worker,
};

/// Requests per measured series, after as many again to warm up.
const REQUESTS: usize = 200;

struct Series {
    p50: f64,
    p90: f64,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Milliseconds from `started` until `GET {url}/health` answers 200 (the client's address in
/// `ip_header`, which the gateway is configured to trust; without an address it refuses).
fn cold_start(url: &str, ip_header: &str, started: Instant) -> f64 {
    let client = reqwest::Client::new();
    runtime().block_on(async {
        loop {
            let probe = client
                .get(format!("{url}/health"))
                .header(ip_header, "10.77.0.1");
            if let Ok(response) = probe.send().await
                && response.status().is_success()
            {
                return started.elapsed().as_secs_f64() * 1000.0;
            }
            assert!(started.elapsed() < START_LIMIT, "{url} never answered");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

/// Latency of sequential `GET {url}{path}` on one kept-alive connection, from one client address
/// (its state is warm, as for a returning client).
fn series(url: &str, path: &str, ip_header: &str, token: Option<&str>) -> Series {
    let client = reqwest::Client::new();
    let mut times: Vec<f64> = runtime().block_on(async {
        let mut times = Vec::new();
        for n in 0..REQUESTS * 2 {
            let mut request = client
                .get(format!("{url}{path}"))
                .header(ip_header, "10.77.0.1");
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let started = Instant::now();
            let response = request.send().await.expect("request sent");
            let status = response.status();
            let _ = response.bytes().await;
            assert!(status.is_success(), "{url}{path} answered {status}");
            if n >= REQUESTS {
                times.push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        times
    });
    times.sort_by(f64::total_cmp);
    Series {
        p50: times[times.len() / 2],
        p90: times[times.len() * 9 / 10],
    }
}

fn login(url: &str, ip_header: &str) -> String {
    runtime().block_on(async {
        let bytes = reqwest::Client::new()
            .post(format!("{url}/auth/login"))
            .header(ip_header, "10.78.0.1")
            .header("content-type", "application/json")
            .body(serde_json::json!({"username": "e2e-viewer", "password": PASSWORD}).to_string())
            .send()
            .await
            .expect("login sent")
            .bytes()
            .await
            .expect("login answer");
        let answer: serde_json::Value = serde_json::from_slice(&bytes).expect("login JSON");
        answer["access_token"]
            .as_str()
            .expect("an access token")
            .to_owned()
    })
}

fn report(name: &str, ip_header: &str, hello: (Served, f64), gateway: (Served, f64)) {
    let (hello, hello_cold) = hello;
    let (gateway, gateway_cold) = gateway;
    let base = series(&hello.url, "/health", ip_header, None);
    let public = series(&gateway.url, "/health", ip_header, None);
    let token = login(&gateway.url, ip_header);
    let authed = series(&gateway.url, "/api/v1/servers", ip_header, Some(&token));
    println!("{name}");
    println!(
        "  cold start (process start to first 200): hello {hello_cold:.0} ms, gateway {gateway_cold:.0} ms"
    );
    println!(
        "  hello-world          p50 {:6.2} ms  p90 {:6.2} ms",
        base.p50, base.p90
    );
    println!(
        "  gateway /health      p50 {:6.2} ms  p90 {:6.2} ms  added p50 {:+.2} ms",
        public.p50,
        public.p90,
        public.p50 - base.p50
    );
    println!(
        "  gateway /api/v1/servers p50 {:6.2} ms  p90 {:6.2} ms  added p50 {:+.2} ms",
        authed.p50,
        authed.p90,
        authed.p50 - base.p50
    );
}

fn timed(ip_header: &str, start: impl FnOnce() -> Served) -> (Served, f64) {
    let started = Instant::now();
    let served = start();
    let cold = cold_start(&served.url, ip_header, started);
    (served, cold)
}

fn main() {
    let worker = gateway_worker();
    let hello_js = hello_worker();
    let component = gateway_component();
    let hello_wasm = hello_component();
    let backend = Backend::start("bench");
    let direct = series(&backend.url, "/health", "x-forwarded-for", None);
    println!(
        "backend /health direct  p50 {:6.2} ms  p90 {:6.2} ms  ({REQUESTS} sequential requests per series)",
        direct.p50, direct.p90
    );

    let cloudflare = [
        ("BACKEND_URL", backend.url.clone()),
        ("EDGE_SIGNING_KEY_ID", backend.edge_key.key_id().to_owned()),
        ("EDGE_SIGNING_KEY", backend.edge_secret_base64()),
    ];
    report(
        "Cloudflare Worker (Miniflare/workerd)",
        "cf-connecting-ip",
        timed("cf-connecting-ip", || start_worker(&hello_js, &cloudflare)),
        timed("cf-connecting-ip", || start_worker(&worker, &cloudflare)),
    );

    let spin = [
        ("backend_url", backend.url.clone()),
        ("edge_signing_key_id", backend.edge_key.key_id().to_owned()),
        ("edge_signing_key", backend.edge_secret_base64()),
        ("client_ip_header", "x-forwarded-for".to_owned()),
    ];
    let scratch = |name: &str| backend.data.join(name);
    report(
        "Spin component (wasmtime serve, key-value in files)",
        "x-forwarded-for",
        timed("x-forwarded-for", || {
            start_component(&hello_wasm, Path::new(&scratch("hello")), false, &spin)
        }),
        timed("x-forwarded-for", || {
            start_component(&component, Path::new(&scratch("gateway")), true, &spin)
        }),
    );
}
