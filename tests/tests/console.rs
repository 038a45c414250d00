//! The web console in a real browser: Debian's Chromium (headless) driven by playwright-core
//! (`tests/browser/console.mjs`) against a real system: a backend with a worker, and the native
//! edge (every flow) or the Cloudflare Worker in Miniflare behind the test front (sign-in,
//! reload, a rule from a sentence, the example photo, sign-out). A CSP violation, a console
//! error or an uncaught page error fails the test. Screenshots of each page at 375 px and
//! 1280 px land in `<target>/console-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use h200_e2e::front::{Front, Platform};
use h200_e2e::harness::{
    ALLOWED_ORIGIN, Backend, PASSWORD, ROLES, Running, free_port, h200, target_dir, wait_healthy,
    workspace_root,
};
use h200_e2e::runtimes::{START_LIMIT, Served, gateway_worker, start_worker};
use h200_e2e::tools::{check_node, node_packages};

/// Debian's Chromium (`apt-get install chromium`); `H200_CHROMIUM` names another.
fn chromium() -> PathBuf {
    let path = std::env::var_os("H200_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.is_file(),
        "the console tests need Chromium at {} (Debian: apt-get install -y chromium \
         chromium-driver; .ci/run installs them); H200_CHROMIUM names another",
        path.display()
    );
    path
}

/// The native edge in front of `backend`, taking the socket peer as the client's address (as a
/// browser reaches it).
fn native_edge(backend: &Backend) -> Served {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let process = Running(
        h200(&backend.binary, &backend.data)
            .args([
                "edge",
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--backend-url",
                &backend.url,
                "--cors-origins",
                ALLOWED_ORIGIN,
            ])
            .spawn()
            .expect("edge starts"),
    );
    wait_healthy(&url, Duration::from_secs(30));
    Served::new(url, process)
}

/// The Worker in Miniflare behind the test front, in front of `backend`.
fn worker_edge(backend: &Backend) -> Served {
    let worker = start_worker(
        &gateway_worker(),
        &[
            ("BACKEND_URL", backend.url.clone()),
            ("EDGE_SIGNING_KEY_ID", backend.edge_key.key_id().to_owned()),
            ("EDGE_SIGNING_KEY", backend.edge_secret_base64()),
            ("CORS_ALLOWED_ORIGINS", ALLOWED_ORIGIN.to_owned()),
        ],
    );
    let front = Front::start(&worker.url, Platform::Cloudflare);
    let worker = worker.behind(front);
    wait_healthy(&worker.url, START_LIMIT);
    worker
}

/// Runs the browser script's `flow` against `edge_url`; fails with its report.
fn run_browser(flow: &str, edge_url: &str) {
    check_node();
    let chromium = chromium();
    let root = workspace_root();
    let users: serde_json::Map<String, serde_json::Value> = ROLES
        .iter()
        .map(|role| {
            (
                (*role).to_owned(),
                serde_json::json!({ "username": format!("e2e-{role}"), "password": PASSWORD }),
            )
        })
        .collect();
    let shots = target_dir().join("console-screenshots");
    let output = Command::new("node")
        .arg(root.join("tests/browser/console.mjs"))
        .env("NODE_PATH", node_packages().join("node_modules"))
        .env("H200_CHROMIUM", &chromium)
        .env("H200_CONSOLE_URL", edge_url)
        .env("H200_CONSOLE_FLOW", flow)
        .env(
            "H200_CONSOLE_USERS",
            serde_json::Value::Object(users).to_string(),
        )
        .env("H200_CONSOLE_PHOTO", photo(&root))
        .env("H200_CONSOLE_SHOTS", &shots)
        .output()
        .expect("node runs the browser script");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{report}\nscreenshots: {}", shots.display());
    assert!(
        output.status.success(),
        "the console's {flow} flow failed in Chromium:\n{report}"
    );
}

fn photo(root: &Path) -> PathBuf {
    root.join("tests/fixtures/desk-two-mugs.png")
}

#[test]
fn console_in_chromium_through_the_native_edge() {
    let backend = Backend::start("console-native");
    let edge = native_edge(&backend);
    run_browser("full", &edge.url);
}

#[test]
fn console_sign_in_and_upload_in_chromium_through_the_worker() {
    let backend = Backend::start("console-worker");
    let edge = worker_edge(&backend);
    run_browser("upload", &edge.url);
}
