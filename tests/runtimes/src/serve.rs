//! Building and starting the wasm runtimes on ephemeral ports for the tests and the bench: a
//! Worker in Miniflare (workerd) configured from `wrangler.toml`, a Spin component under
//! `wasmtime serve` with Spin key-value and variables composed in (the `spin-services` world of
//! `wit/gateway.wit`) and configured from `spin.toml`. Each artifact is (re)built when missing
//! or older than its sources, with the pinned tools of [`crate::tools`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::front::Front;
use crate::process::{Running, free_port, target_dir, workspace_root};
use crate::tools;

/// The Worker the repository deploys (`main` of `wrangler.toml`), built by worker-build in
/// `edge/worker` when missing or older than its sources.
pub fn gateway_worker() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let wrangler = wrangler_toml();
            let main = wrangler["main"].as_str().expect("wrangler.toml names main");
            let script = workspace_root().join(main);
            build_worker(&workspace_root().join("edge/worker"), "h200_edge_worker");
            assert!(
                script.is_file(),
                "worker-build made no {} (main of wrangler.toml)",
                script.display()
            );
            script
        })
        .clone()
}

/// The bench's hello-world Worker, built like the gateway.
pub fn hello_worker() -> PathBuf {
    let crate_dir = workspace_root().join("tests/runtimes/hello");
    build_worker(&crate_dir, "h200_runtime_hello");
    crate_dir.join("build/index.js")
}

/// The gateway component (`source` of `spin.toml`, in the cargo target folder).
pub fn gateway_component() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| component("h200-edge-spin")).clone()
}

/// The bench's hello-world component.
pub fn hello_component() -> PathBuf {
    component("h200-runtime-hello")
}

/// The test-only component that gives a Spin component key-value and variables.
fn spin_services_component() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| component("h200-spin-services"))
        .clone()
}

/// Runs worker-build in `crate_dir` unless its `build/` is newer than every source of the last
/// build (the files cargo's dep-info lists for `lib_name`) and the manifests. A dep-info that
/// lists no file of `crate_dir` was written for another checkout sharing the target folder, and
/// does not count.
fn build_worker(crate_dir: &Path, lib_name: &str) {
    let wasm = crate_dir.join("build/index_bg.wasm");
    tools::hold_lock(&artifacts_lock(), || {
        let dep_info = target_dir().join(format!("wasm32-unknown-unknown/release/{lib_name}.d"));
        let mut sources = dep_info_sources(&dep_info);
        let ours = sources.iter().any(|source| source.starts_with(crate_dir));
        let root = workspace_root();
        sources.extend([
            crate_dir.join("Cargo.toml"),
            root.join("Cargo.toml"),
            root.join("Cargo.lock"),
        ]);
        if !ours || newer_than(&sources, &wasm) {
            tools::rust_target("wasm32-unknown-unknown");
            let build = tools::worker_build();
            let npm = tools::node_packages().join("node_modules");
            eprintln!(
                "h200-runtimes: building {} with worker-build --release",
                crate_dir.display()
            );
            let status = Command::new(&build.worker_build)
                .arg("--release")
                .current_dir(crate_dir)
                .env("WASM_BINDGEN_BIN", &build.wasm_bindgen)
                .env("WASM_OPT_BIN", npm.join("binaryen/bin/wasm-opt"))
                .env("ESBUILD_BIN", npm.join("esbuild/bin/esbuild"))
                .stdout(Stdio::from(std::io::stderr()))
                .status()
                .expect("worker-build runs");
            assert!(
                status.success(),
                "worker-build --release in {} failed",
                crate_dir.display()
            );
        }
    });
}

/// The files a cargo dep-info file lists (none when it is missing).
fn dep_info_sources(path: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    // `outputs: sources` lines; a space inside a path is escaped with a backslash.
    text.lines()
        .filter_map(|line| line.split_once(": "))
        .flat_map(|(_, deps)| {
            deps.replace("\\ ", "\0")
                .split_whitespace()
                .map(|dep| PathBuf::from(dep.replace('\0', " ")))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether any of `sources` is newer than `artifact` (or gone, or `artifact` missing).
fn newer_than(sources: &[PathBuf], artifact: &Path) -> bool {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let Some(built) = modified(artifact) else {
        return true;
    };
    sources
        .iter()
        .any(|source| modified(source).is_none_or(|changed| changed > built))
}

/// Builds `package` for wasm32-wasip2 in release (cargo decides whether anything changed) and
/// returns its component.
fn component(package: &str) -> PathBuf {
    tools::rust_target("wasm32-wasip2");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = tools::hold_lock(&artifacts_lock(), || {
        Command::new(cargo)
            .args(["build", "--release", "--target", "wasm32-wasip2", "-p"])
            .arg(package)
            .arg("--message-format=json")
            .current_dir(workspace_root())
            .stderr(Stdio::inherit())
            .output()
            .expect("cargo runs")
    });
    assert!(output.status.success(), "building {package} failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|message| message["target"]["name"] == package.replace('-', "_"))
        .filter_map(|message| message["filenames"].as_array().cloned())
        .flatten()
        .filter_map(|file| file.as_str().map(PathBuf::from))
        .find(|file| file.extension().is_some_and(|e| e == "wasm"))
        .unwrap_or_else(|| panic!("cargo reports no component for {package}"))
}

/// One artifact build at a time across test processes (worker-build writes into the tree).
fn artifacts_lock() -> PathBuf {
    let dir = target_dir();
    std::fs::create_dir_all(&dir).expect("the cargo target folder");
    dir.join("h200-e2e-artifacts.lock")
}

fn wrangler_toml() -> toml::Value {
    let text =
        std::fs::read_to_string(workspace_root().join("wrangler.toml")).expect("wrangler.toml");
    toml::from_str(&text).expect("wrangler.toml parses")
}

/// A runtime serving on 127.0.0.1.
pub struct Served {
    pub url: String,
    /// The test front the runtime is reached through, if any (stops before the runtime).
    _front: Option<Front>,
    _process: Running,
}

impl Served {
    /// A runtime started elsewhere, serving at `url`; dropping it stops `process`.
    pub fn new(url: String, process: Running) -> Served {
        Served {
            url,
            _front: None,
            _process: process,
        }
    }

    /// The same runtime reached through `front` (at the front's URL).
    pub fn behind(self, front: Front) -> Served {
        Served {
            url: front.url.clone(),
            _front: Some(front),
            _process: self._process,
        }
    }
}

/// Runs `script` in Miniflare with the compatibility date, Durable Objects and vars of
/// `wrangler.toml`, `overrides` on top of the vars.
pub fn start_worker(script: &Path, overrides: &[(&str, String)]) -> Served {
    let root = workspace_root();
    let packages = tools::node_packages();
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
        "packages": packages,
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
    .expect("node runs");
    Served::new(url, process)
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
    let tools::Wasmtime {
        wasmtime,
        wasm_tools,
    } = tools::wasmtime();
    let services = spin_services_component();
    let kv = work.join("kv");
    std::fs::create_dir_all(work.join("deps")).expect("deps folder");
    std::fs::create_dir_all(&kv).expect("key-value folder");
    // `wasm-tools compose` names a dependency after its file: it must be kebab-case.
    let dependency = work.join("deps/spin-services.wasm");
    std::fs::copy(&services, &dependency).expect("copy the services component");
    let composed = work.join("composed.wasm");
    if spin_services {
        let status = Command::new(wasm_tools)
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
    let mut serve = Command::new(wasmtime);
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
    Served::new(format!("http://127.0.0.1:{port}"), Running(process))
}

/// How long a runtime may take to answer its first request (compilation included).
pub const START_LIMIT: Duration = Duration::from_secs(60);
