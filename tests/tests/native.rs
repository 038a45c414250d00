//! The scenario list against the native runtime: real `h200 backend` and `h200 edge` processes
//! on ephemeral ports with a temporary data folder.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use h200_e2e::{Fixture, TestUser, run_all};
use shared::signing::MessageSigningKey;

const PASSWORD: &str = "E2e-passw0rd!long";
const BLOCK_SECS: u64 = 2;

/// A child process killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Builds `h200` once and returns its path.
fn h200_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "-p",
            "h200-gpu-backend",
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("an ephemeral port")
}

fn h200(binary: &Path, data: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .env("H200_DATA_DIR", data)
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .env_remove("H200_DATABASE_URL");
    command
}

fn add_user(binary: &Path, data: &Path, name: &str, role: &str) {
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

fn wait_healthy(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
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
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn edge_key(data: &Path) -> MessageSigningKey {
    let text = std::fs::read_to_string(data.join("keys/edge-signing.json")).expect("edge key file");
    let ring: serde_json::Value = serde_json::from_str(&text).expect("key file is JSON");
    let current = ring["keys"]
        .as_array()
        .and_then(|k| k.last())
        .expect("a key");
    let secret = base64::engine::general_purpose::STANDARD
        .decode(current["secret"].as_str().unwrap_or(""))
        .expect("base64 secret");
    MessageSigningKey::new(current["key_id"].as_str().unwrap_or(""), secret).expect("valid key")
}

#[test]
fn every_scenario_passes_against_the_native_edge() {
    let binary = h200_binary();
    let data = std::env::temp_dir().join(format!("h200-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).expect("data folder");

    let roles = [
        "viewer", "analyst", "manager", "admin", "readonly", "user", "service",
    ];
    for role in roles {
        add_user(&binary, &data, &format!("e2e-{role}"), role);
    }
    let key = h200(&binary, &data)
        .args(["apikey", "create", "--user", "e2e-user"])
        .stderr(Stdio::null())
        .output()
        .expect("h200 apikey create runs");
    assert!(key.status.success(), "creating the API key");
    let api_key = String::from_utf8_lossy(&key.stdout).trim().to_owned();

    let backend_port = free_port();
    let edge_port = free_port();
    let backend_url = format!("http://127.0.0.1:{backend_port}");
    let edge_url = format!("http://127.0.0.1:{edge_port}");
    let _backend = Running(
        h200(&binary, &data)
            .args(["backend", "--addr", &format!("127.0.0.1:{backend_port}")])
            .spawn()
            .expect("backend starts"),
    );
    wait_healthy(&backend_url);
    let _edge = Running(
        h200(&binary, &data)
            .args([
                "edge",
                "--addr",
                &format!("127.0.0.1:{edge_port}"),
                "--backend-url",
                &backend_url,
                "--client-ip-header",
                "x-forwarded-for",
                "--cors-origins",
                "https://app.example",
                "--block-duration-secs",
                &BLOCK_SECS.to_string(),
            ])
            .spawn()
            .expect("edge starts"),
    );
    wait_healthy(&edge_url);

    let fixture = Fixture {
        edge_url,
        backend_url,
        client_ip_header: "x-forwarded-for".into(),
        users: roles
            .iter()
            .map(|role| TestUser {
                role: (*role).into(),
                username: format!("e2e-{role}"),
                password: PASSWORD.into(),
            })
            .collect(),
        api_key,
        edge_key: edge_key(&data),
        allowed_origin: "https://app.example".into(),
        block_duration: Duration::from_secs(BLOCK_SECS),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let outcomes = runtime.block_on(run_all(&fixture));
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|(name, outcome)| outcome.as_ref().err().map(|e| format!("{name}: {e}")))
        .collect();
    let _ = std::fs::remove_dir_all(&data);
    assert!(
        failures.is_empty(),
        "failed scenarios:\n{}",
        failures.join("\n")
    );
    assert_eq!(outcomes.len(), h200_e2e::scenarios().len());
}
