//! The scenario list against the Cloudflare Worker: the artifact `worker-build` made
//! (`edge/worker/build`), run by Miniflare (workerd) with the Durable Object, main module,
//! compatibility date and vars of `wrangler.toml`, in front of a real `h200 backend`. The client
//! address comes from `CF-Connecting-IP`, the header Cloudflare sets.

use std::process::{Command, Stdio};
use std::time::Duration;

use h200_e2e::harness::{
    ALLOWED_ORIGIN, BLOCK_SECS, Backend, Running, required, run_scenarios, wait_for_line,
    workspace_root,
};
use serde_json::{Map, Value, json};

/// The Miniflare options for the Worker of `wrangler.toml` with `overrides` on top of its vars.
fn miniflare_options(overrides: &[(&str, String)]) -> Value {
    let root = workspace_root();
    let text = std::fs::read_to_string(root.join("wrangler.toml")).expect("wrangler.toml");
    let wrangler: toml::Value = toml::from_str(&text).expect("wrangler.toml parses");
    let main = wrangler["main"].as_str().expect("wrangler.toml names main");
    let script = required(
        root.join(main),
        "build the Worker with `worker-build --release` in edge/worker",
    );
    let mut bindings = Map::new();
    if let Some(vars) = wrangler.get("vars").and_then(toml::Value::as_table) {
        for (name, value) in vars {
            let value = value
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            bindings.insert(name.clone(), Value::String(value));
        }
    }
    for (name, value) in overrides {
        bindings.insert((*name).to_owned(), Value::String(value.clone()));
    }
    let durable_objects: Map<String, Value> = wrangler["durable_objects"]["bindings"]
        .as_array()
        .expect("wrangler.toml binds a Durable Object")
        .iter()
        .map(|b| {
            let name = b["name"].as_str().unwrap_or_default().to_owned();
            (
                name,
                Value::String(b["class_name"].as_str().unwrap_or_default().to_owned()),
            )
        })
        .collect();
    json!({
        "script": script,
        "compatibilityDate": wrangler["compatibility_date"].as_str(),
        "port": 0,
        "bindings": bindings,
        "durableObjects": durable_objects,
    })
}

#[test]
fn every_scenario_passes_against_the_cloudflare_worker() {
    let root = workspace_root();
    let runner = root.join("tests/runtimes/miniflare.mjs");
    required(
        root.join("tests/runtimes/node_modules/miniflare"),
        "install it with `npm ci` in tests/runtimes",
    );
    let backend = Backend::start("cloudflare");
    let options = miniflare_options(&[
        ("BACKEND_URL", backend.url.clone()),
        ("EDGE_SIGNING_KEY_ID", backend.edge_key.key_id().to_owned()),
        ("EDGE_SIGNING_KEY", backend.edge_secret_base64()),
        ("CORS_ALLOWED_ORIGINS", ALLOWED_ORIGIN.to_owned()),
        ("BLOCK_DURATION_SECS", BLOCK_SECS.to_string()),
    ]);
    let mut child = Command::new("node")
        .arg(&runner)
        .arg(options.to_string())
        .current_dir(&root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs (Node 20 or later is required)");
    let stdout = child.stdout.take().expect("piped stdout");
    let worker = Running(child);
    let edge_url = wait_for_line(stdout, "ready ", Duration::from_secs(60));
    run_scenarios(&backend.fixture(&edge_url, "cf-connecting-ip"));
    drop(worker);
}
