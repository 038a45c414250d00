//! `h200 dev --edge worker|spin`: the whole system on one machine with the public API served by
//! the Cloudflare Worker (Miniflare) or the Spin component (`wasmtime serve`), built from this
//! checkout by the command. A login, an admin call and a refusal go through the runtime, the
//! runtime is a child of `h200 dev`, and SIGTERM stops both.
//!
//! The first run installs the runtimes' tools (see the README's test section) and builds the
//! artifacts, which takes minutes; later runs reuse them.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "Dev-Edge-passw0rd!";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("an ephemeral port")
}

/// `h200 dev` killed (with its process group) when the test ends, however it ends.
struct Dev {
    child: Child,
    data: PathBuf,
}

impl Drop for Dev {
    fn drop(&mut self) {
        // Miniflare leads a process group of its own.
        let mut groups: Vec<u32> = children(self.child.id())
            .into_iter()
            .map(|(pid, _)| pid)
            .collect();
        groups.push(self.child.id());
        for group in groups {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// The children of `pid`: their ids and command lines.
fn children(pid: u32) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid …`; comm may hold spaces, so split after the last `)`.
            let ppid: u32 = stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()?;
            let child: u32 = entry.file_name().to_str()?.parse().ok()?;
            (ppid == pid).then(|| {
                let cmdline = std::fs::read(entry.path().join("cmdline"))
                    .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
                    .unwrap_or_default();
                (child, cmdline)
            })
        })
        .collect()
}

async fn serves_the_api_through(edge: &str, runtime_program: &str) {
    use std::os::unix::process::CommandExt;
    let data = std::env::temp_dir().join(format!("h200_dev_{edge}_{}", uuid::Uuid::new_v4()));
    let edge_addr = format!("127.0.0.1:{}", free_port());
    let backend_addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_h200"))
        .args(["dev", "--edge", edge, "--edge-addr", &edge_addr])
        .args(["--backend-addr", &backend_addr])
        .env("H200_DATA_DIR", &data)
        .env("H200_DEV_WORKERS", "0")
        .env("H200_DEV_ADMIN_PASSWORD", PASSWORD)
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .env_remove("H200_DATABASE_URL")
        .process_group(0)
        .stdout(Stdio::null())
        .spawn()
        .expect("h200 dev starts");
    let mut dev = Dev { child, data };

    // A first run installs tools and builds the artifact before the runtime starts.
    let client = reqwest::Client::new();
    let base = format!("http://{edge_addr}");
    let deadline = Instant::now() + Duration::from_secs(40 * 60);
    loop {
        if let Some(exit) = dev.child.try_wait().expect("h200 dev's state") {
            panic!("h200 dev --edge {edge} exited before serving: {exit:?}");
        }
        let up = client
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if up {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "h200 dev --edge {edge} never served /health"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let runtimes = children(dev.child.id());
    assert!(
        runtimes
            .iter()
            .any(|(_, cmd)| cmd.contains(runtime_program)),
        "h200 dev runs {runtime_program}: its children are {runtimes:?}"
    );

    let login = client
        .post(format!("{base}/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": PASSWORD}))
        .send()
        .await
        .expect("login answered");
    assert_eq!(login.status(), 200, "login through the {edge} edge");
    let pair: serde_json::Value = login.json().await.expect("a token pair");
    let token = pair["access_token"].as_str().expect("an access token");
    let users = client
        .get(format!("{base}/api/v1/admin/users"))
        .bearer_auth(token)
        .send()
        .await
        .expect("users answered");
    assert_eq!(users.status(), 200, "an admin call through the {edge} edge");
    let refused = client
        .get(format!("{base}/api/v1/rules"))
        .send()
        .await
        .expect("refusal answered");
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let problem: serde_json::Value = refused.json().await.expect("a problem");
    assert_eq!(problem["code"], "MISSING_CREDENTIALS");

    let status = Command::new("kill")
        .args(["-TERM", &dev.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = dev.child.try_wait().expect("h200 dev's state") {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "h200 dev --edge {edge} did not stop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        exit.success(),
        "h200 dev --edge {edge} exits cleanly: {exit:?}"
    );
    assert!(
        client.get(format!("{base}/health")).send().await.is_err(),
        "nothing serves the edge address after the shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_serves_the_api_through_the_worker_in_miniflare() {
    serves_the_api_through("worker", "miniflare.mjs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_serves_the_api_through_the_spin_component_under_wasmtime() {
    serves_the_api_through("spin", "wasmtime").await;
}
