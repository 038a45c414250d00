//! Process plumbing shared by the runtime tests: build and start a real `h200 backend` on an
//! ephemeral port with users of every role and an API key, and turn a finished backend plus an
//! edge URL into a [`Fixture`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use shared::signing::MessageSigningKey;

use crate::{Fixture, TestUser};

pub use h200_runtimes::process::{Running, free_port, target_dir, workspace_root};

/// The password of every fixture user.
pub const PASSWORD: &str = "E2e-passw0rd!long";
/// How long the edges under test block an address (short, so the expiry scenario is quick).
pub const BLOCK_SECS: u64 = 2;
/// The origin the edges under test allow.
pub const ALLOWED_ORIGIN: &str = "https://app.example";
/// The roles of the default role set, one fixture user each.
pub const ROLES: [&str; 7] = [
    "viewer", "analyst", "manager", "admin", "readonly", "user", "service",
];

/// Builds `h200` once per test process and returns its path, so every system a test binary
/// starts (an isolated scenario's too) runs the same build.
pub fn h200_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(build_h200).clone()
}

fn build_h200() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "-p",
            "h200",
            "--bin",
            "h200",
            "--message-format=json",
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(output.status.success(), "building h200 failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|message| message["executable"].as_str().map(PathBuf::from))
        .find(|path| path.file_stem().is_some_and(|s| s == "h200"))
        .expect("cargo reports the h200 executable")
}

/// `h200` with the data folder set and no database URL from the environment.
pub fn h200(binary: &Path, data: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .env("H200_DATA_DIR", data)
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .env_remove("H200_DATABASE_URL");
    command
}

/// Adds user `name` with `role` and [`PASSWORD`] through `h200 user add` on the data folder.
pub fn add_user(binary: &Path, data: &Path, name: &str, role: &str) {
    let mut child = h200(binary, data)
        .args(["user", "add", name, "--role", role])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("h200 user add starts");
    if let Some(stdin) = child.stdin.as_mut() {
        writeln!(stdin, "{PASSWORD}").expect("password written");
    }
    assert!(
        child.wait().expect("h200 user add ends").success(),
        "adding {name}"
    );
}

/// Waits until `GET {url}/health` answers 2xx, at most `limit`.
pub fn wait_healthy(url: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    loop {
        let ok = runtime.block_on(async {
            reqwest::get(format!("{url}/health"))
                .await
                .is_ok_and(|r| r.status().is_success())
        });
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never became healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running backend with a temporary data folder, users of every role and an API key.
pub struct Backend {
    pub url: String,
    pub binary: PathBuf,
    pub data: PathBuf,
    pub api_key: String,
    pub edge_key: MessageSigningKey,
    _process: Running,
}

impl Backend {
    /// Builds `h200`, prepares a data folder named after `label`, and starts the backend.
    pub fn start(label: &str) -> Backend {
        let binary = h200_binary();
        let data = std::env::temp_dir().join(format!("h200-e2e-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).expect("data folder");
        for role in ROLES {
            add_user(&binary, &data, &format!("e2e-{role}"), role);
        }
        let key = h200(&binary, &data)
            .args(["apikey", "create", "--user", "e2e-user"])
            .stderr(Stdio::null())
            .output()
            .expect("h200 apikey create runs");
        assert!(key.status.success(), "creating the API key");
        let api_key = String::from_utf8_lossy(&key.stdout).trim().to_owned();

        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let process = Running(
            h200(&binary, &data)
                .args(["backend", "--addr", &format!("127.0.0.1:{port}")])
                // One worker in the backend runs the analysis jobs of the mug scenario.
                .env("H200_BACKEND_WORKERS", "1")
                .spawn()
                .expect("backend starts"),
        );
        wait_healthy(&url, Duration::from_secs(30));
        let edge_key = edge_key(&data);
        Backend {
            url,
            binary,
            data,
            api_key,
            edge_key,
            _process: process,
        }
    }

    /// The edge key's secret, base64, as the wasm runtimes take it.
    pub fn edge_secret_base64(&self) -> String {
        let (_, secret) = edge_key_parts(&self.data);
        base64::engine::general_purpose::STANDARD.encode(secret)
    }

    /// The fixture for an edge at `edge_url` that trusts `client_ip_header`.
    pub fn fixture(&self, edge_url: &str, client_ip_header: &str) -> Fixture {
        Fixture {
            edge_url: edge_url.to_owned(),
            backend_url: self.url.clone(),
            client_ip_header: client_ip_header.to_owned(),
            users: ROLES
                .iter()
                .map(|role| TestUser {
                    role: (*role).into(),
                    username: format!("e2e-{role}"),
                    password: PASSWORD.into(),
                })
                .collect(),
            api_key: self.api_key.clone(),
            edge_key: self.edge_key.clone(),
            allowed_origin: ALLOWED_ORIGIN.into(),
            block_duration: Duration::from_secs(BLOCK_SECS),
            data_dir: self.data.clone(),
            h200_binary: self.binary.clone(),
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn edge_key_parts(data: &Path) -> (String, Vec<u8>) {
    let text = std::fs::read_to_string(data.join("keys/edge-signing.json")).expect("edge key file");
    let ring: serde_json::Value = serde_json::from_str(&text).expect("key file is JSON");
    let current = ring["keys"]
        .as_array()
        .and_then(|k| k.last())
        .expect("a key");
    let secret = base64::engine::general_purpose::STANDARD
        .decode(current["secret"].as_str().unwrap_or(""))
        .expect("base64 secret");
    (current["key_id"].as_str().unwrap_or("").to_owned(), secret)
}

/// The backend's current edge key, from its data folder.
pub fn edge_key(data: &Path) -> MessageSigningKey {
    let (key_id, secret) = edge_key_parts(data);
    MessageSigningKey::new(key_id, secret).expect("valid key")
}
