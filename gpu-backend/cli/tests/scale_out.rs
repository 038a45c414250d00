//! Replicas on one machine, as processes: two native edges sharing Redis, two backends sharing
//! Postgres (and their replay nonces in it), three `h200 worker` processes. A login flood over
//! both edges is admitted at most the limit (plus one per emission interval the flood lasted); an
//! address blocked through one edge is blocked at the other; a signed request replayed to the
//! other backend is refused; jobs through either edge are each done once, while one edge, one
//! backend and one worker are killed mid-run and the client moves to the survivors.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, TestDatabase};
use serde_json::{Value, json};
use shared::signing::{SignableRequest, content_digest, sign_request};

const PASSWORD: &str = "Scale-Out-Mug-2026!";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("an ephemeral port")
}

/// A running `h200` process, killed when dropped.
struct Running(Child);

impl Running {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

struct System {
    db: TestDatabase,
    data: std::path::PathBuf,
    prefix: String,
}

impl System {
    fn h200(&self, args: &[&str]) -> Running {
        Running(
            Command::new(env!("CARGO_BIN_EXE_h200"))
                .args(args)
                .env("H200_DATA_DIR", &self.data)
                .env("H200_DATABASE_URL", &self.db.url)
                .env("RUST_LOG", "warn")
                .env_remove("DATABASE_URL")
                .stdout(Stdio::null())
                .spawn()
                .expect("h200 starts"),
        )
    }

    fn backend(&self, port: u16) -> Running {
        self.h200(&[
            "backend",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--state-url",
            &self.db.url,
        ])
    }

    fn edge(&self, port: u16, backend_port: u16) -> Running {
        self.h200(&[
            "edge",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--backend-url",
            &format!("http://127.0.0.1:{backend_port}"),
            "--client-ip-header",
            "x-forwarded-for",
            "--state-url",
            "redis://127.0.0.1:6379",
            "--state-prefix",
            &self.prefix,
        ])
    }
}

async fn wait_until_ok(client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(response) = client.get(url).send().await
            && response.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} did not answer 2xx");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn login(client: &reqwest::Client, edge: u16, ip: &str) -> reqwest::Response {
    client
        .post(format!("http://127.0.0.1:{edge}/auth/login"))
        .header("x-forwarded-for", ip)
        .json(&json!({ "username": "admin", "password": PASSWORD }))
        .send()
        .await
        .expect("the edge answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_edges_two_backends_three_workers_hold_one_limit_one_block_list_and_lose_no_job() {
    let system = System {
        db: TestDatabase::new(Backend::Postgres).await,
        data: std::env::temp_dir().join(common::unique("h200_scale_out")),
        prefix: format!("{}:", common::unique("h200-test:scale-out")),
    };
    let client = reqwest::Client::new();
    let (b1, b2, e1, e2) = (free_port(), free_port(), free_port(), free_port());
    let mut backend1 = system.backend(b1);
    wait_until_ok(&client, &format!("http://127.0.0.1:{b1}/health")).await;
    let mut backend2 = system.backend(b2);
    wait_until_ok(&client, &format!("http://127.0.0.1:{b2}/health")).await;
    let mut add = Command::new(env!("CARGO_BIN_EXE_h200"))
        .args(["user", "add", "admin", "--role", "admin"])
        .env("H200_DATA_DIR", &system.data)
        .env("H200_DATABASE_URL", &system.db.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("h200 user add");
    add.stdin
        .take()
        .expect("stdin")
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .expect("the password");
    assert!(add.wait().expect("user add ends").success());
    let mut edge1 = system.edge(e1, b1);
    let mut edge2 = system.edge(e2, b2);
    for edge in [e1, e2] {
        wait_until_ok(&client, &format!("http://127.0.0.1:{edge}/api/v1/version")).await;
    }
    let mut workers: Vec<Running> = (0..3)
        .map(|i| system.h200(&["worker", "--name", &format!("w{i}"), "--kinds", "ncs"]))
        .collect();

    // A login flood from one address over both edges: one limit (10 a minute).
    let started = Instant::now();
    let mut admitted = 0;
    for i in 0..30 {
        let edge = if i % 2 == 0 { e1 } else { e2 };
        let status = login(&client, edge, "198.51.100.10").await.status();
        admitted += usize::from(status == 200);
    }
    let margin = (started.elapsed().as_secs() / 6) as usize + 1;
    eprintln!(
        "login flood: {admitted} of 30 admitted over two edges in {:.1} s (limit 10, margin {margin})",
        started.elapsed().as_secs_f64()
    );
    assert!(
        (1..=10 + margin).contains(&admitted),
        "{admitted} logins admitted against a limit of 10 (margin {margin})"
    );

    // Five failed logins through edge 1 block the address at edge 2 too.
    for _ in 0..5 {
        let failed = client
            .post(format!("http://127.0.0.1:{e1}/auth/login"))
            .header("x-forwarded-for", "198.51.100.20")
            .json(&json!({ "username": "admin", "password": "wrong-Password-1!" }))
            .send()
            .await
            .expect("the edge answers");
        assert!([401, 403].contains(&failed.status().as_u16()));
    }
    let refused = client
        .get(format!("http://127.0.0.1:{e2}/api/v1/version"))
        .header("x-forwarded-for", "198.51.100.20")
        .send()
        .await
        .expect("the edge answers");
    assert_eq!(refused.status(), 403, "blocked at the other edge");
    let body: Value = refused.json().await.expect("problem+json");
    assert_eq!(body["code"], "IP_BLOCKED");

    // A signed request replayed to the other backend.
    let key = edge_native::args::signing_key(None, &system.data).expect("the edge key");
    let digest = content_digest(b"");
    let request = SignableRequest {
        method: "GET",
        path: "/api/v1/version",
        query: None,
        content_digest: Some(&digest),
        principal: None,
        request_id: "replay-test",
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let signed = sign_request(&request, &key, now, &common::unique("nonce")).expect("signed");
    let send = |port: u16| {
        client
            .get(format!("http://127.0.0.1:{port}/api/v1/version"))
            .header("content-digest", &signed.content_digest)
            .header("signature-input", &signed.signature_input)
            .header("signature", &signed.signature)
            .header("x-request-id", "replay-test")
            .send()
    };
    assert_eq!(send(b1).await.expect("backend 1").status(), 200);
    let replayed = send(b2).await.expect("backend 2");
    assert_eq!(replayed.status(), 401);
    let body: Value = replayed.json().await.expect("problem+json");
    assert_eq!(body["code"], "REPLAYED_REQUEST");

    // Jobs through either edge; edge 2, backend 2 and a worker die mid-run.
    let token = login(&client, e1, "198.51.100.30")
        .await
        .json::<Value>()
        .await
        .expect("a token")["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    let mut answered = 0;
    for i in 0..10 {
        if i == 4 {
            edge2.kill();
            backend2.kill();
            workers[0].kill();
        }
        let mut edges = if i % 2 == 0 {
            vec![e1, e2]
        } else {
            vec![e2, e1]
        };
        if i >= 4 {
            edges.retain(|e| *e == e1);
        }
        let body = json!({ "points": [[i as f64, 1.0], [i as f64 + 0.5, 1.0]], "stream": format!("s{i}") });
        for edge in edges {
            let response = client
                .post(format!("http://127.0.0.1:{edge}/api/v1/process_points"))
                .header("x-forwarded-for", "198.51.100.30")
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await;
            if let Ok(response) = response
                && response.status() == 200
            {
                answered += 1;
                break;
            }
        }
    }
    assert_eq!(answered, 10, "every request answered by a surviving edge");
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&system.db.url)
        .await
        .expect("Postgres");
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, COUNT(*) FROM jobs WHERE kind = 'ncs' GROUP BY state")
            .fetch_all(&mut conn)
            .await
            .expect("job states");
    assert_eq!(
        rows,
        vec![("succeeded".to_owned(), 10)],
        "each job done, once"
    );
    drop(workers);
    edge1.kill();
    backend1.kill();
    let _ = std::fs::remove_dir_all(&system.data);
}
