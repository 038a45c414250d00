//! TLS everywhere, with a CA and certificates made in the test: the backend and the edge serve
//! HTTPS, the edge calls the backend over mutual TLS, plain HTTP only redirects, a renewed
//! certificate is served without a restart, and the Postgres driver speaks TLS.

#[path = "support/pki.rs"]
mod pki;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pki::Ca;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("an ephemeral port")
}

/// A running `h200` process, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn h200(args: &[&str], data: &Path) -> Running {
    Running(
        Command::new(env!("CARGO_BIN_EXE_h200"))
            .args(args)
            .env("H200_DATA_DIR", data)
            .env("RUST_LOG", "warn")
            .env_remove("DATABASE_URL")
            .env_remove("H200_DATABASE_URL")
            .env_remove("H200_STATE_URL")
            .stdout(Stdio::null())
            .spawn()
            .expect("h200 starts"),
    )
}

async fn wait_until_ok(client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
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

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writing a test file");
    path.to_str().expect("a UTF-8 path").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_edge_and_backend_with_mutual_tls_between_them_redirects_and_reloads() {
    let dir = std::env::temp_dir().join(format!("h200_tls_{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a test folder");
    let ca = Ca::new("h200 test CA");
    let server = ca.server(&["localhost", "127.0.0.1"]);
    let edge_client = ca.client("edge");
    let ca_file = write(&dir, "ca.crt", &ca.pem);
    let server_cert = write(&dir, "server.crt", &server.cert);
    let server_key = write(&dir, "server.key", &server.key);
    let client_cert = write(&dir, "edge.crt", &edge_client.cert);
    let client_key = write(&dir, "edge.key", &edge_client.key);
    let data = dir.join("data");
    let (backend_port, edge_port, redirect_port) = (free_port(), free_port(), free_port());

    let _backend = h200(
        &[
            "backend",
            "--addr",
            &format!("127.0.0.1:{backend_port}"),
            "--tls-cert",
            &server_cert,
            "--tls-key",
            &server_key,
            "--tls-client-ca",
            &ca_file,
        ],
        &data,
    );
    let with_identity = ca
        .client_builder()
        .identity(edge_client.identity())
        .build()
        .expect("a client");
    let backend_health = format!("https://localhost:{backend_port}/health");
    wait_until_ok(&with_identity, &backend_health).await;
    let without_identity = ca.client_builder().build().expect("a client");
    assert!(
        without_identity.get(&backend_health).send().await.is_err(),
        "the backend refuses a client without a certificate from its CA"
    );
    let other_ca = Ca::new("another CA");
    let stranger = ca
        .client_builder()
        .identity(other_ca.client("stranger").identity())
        .build()
        .expect("a client");
    assert!(
        stranger.get(&backend_health).send().await.is_err(),
        "the backend refuses a client certificate of another CA"
    );

    let _edge = h200(
        &[
            "edge",
            "--addr",
            &format!("127.0.0.1:{edge_port}"),
            "--backend-url",
            &format!("https://localhost:{backend_port}"),
            "--backend-ca",
            &ca_file,
            "--backend-client-cert",
            &client_cert,
            "--backend-client-key",
            &client_key,
            "--tls-cert",
            &server_cert,
            "--tls-key",
            &server_key,
            "--http-redirect-addr",
            &format!("127.0.0.1:{redirect_port}"),
        ],
        &data,
    );
    // A public route the edge forwards: it reaches the backend over mutual TLS.
    let version = format!("https://localhost:{edge_port}/api/v1/version");
    wait_until_ok(&without_identity, &version).await;
    let answer: serde_json::Value = without_identity
        .get(&version)
        .send()
        .await
        .expect("the edge answers")
        .json()
        .await
        .expect("JSON");
    assert!(answer["version"].is_string(), "{answer}");
    let untrusting = other_ca.client_builder().build().expect("a client");
    assert!(
        untrusting.get(&version).send().await.is_err(),
        "a client that does not trust the CA gets no connection"
    );

    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let redirected = plain
        .get(format!(
            "http://localhost:{redirect_port}/api/v1/version?x=1"
        ))
        .send()
        .await
        .expect("the redirect listener answers");
    assert_eq!(redirected.status(), 308);
    assert_eq!(
        redirected.headers()["location"],
        format!("https://localhost:{edge_port}/api/v1/version?x=1").as_str()
    );

    // A renewed certificate from another CA, written over the files: served without a restart.
    let renewed_ca = Ca::new("renewed CA");
    let renewed = renewed_ca.server(&["localhost", "127.0.0.1"]);
    std::fs::write(&server_key, &renewed.key).expect("writing the key");
    std::fs::write(&server_cert, &renewed.cert).expect("writing the certificate");
    let renewed_client = renewed_ca.client_builder().build().expect("a client");
    let edge_health = format!("https://localhost:{edge_port}/health");
    wait_until_ok(&renewed_client, &edge_health).await;
    // A new connection (the pooled ones were made before the renewal).
    let old_ca_only = ca.client_builder().build().expect("a client");
    assert!(
        old_ca_only.get(&edge_health).send().await.is_err(),
        "the old certificate is no longer served"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn postgres_connections_use_tls_and_verify_the_server_against_the_ca_file() {
    use sqlx::{Connection, Row};
    let base = std::env::var("H200_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let separator = if base.contains('?') { '&' } else { '?' };
    let mut required = sqlx::PgConnection::connect(&format!("{base}{separator}sslmode=require"))
        .await
        .expect("PostgreSQL with TLS (ssl = on) is required for this test");
    let row = sqlx::query("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut required)
        .await
        .expect("pg_stat_ssl");
    assert!(row.get::<bool, _>("ssl"), "sslmode=require runs over TLS");
    let version: String = row.get("version");
    assert!(version.starts_with("TLSv1."), "{version}");

    let dir = std::env::temp_dir().join(format!("h200_pg_tls_{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a test folder");
    let unrelated = write(&dir, "ca.crt", &Ca::new("not the server's CA").pem);
    let refused = sqlx::PgConnection::connect(&format!(
        "{base}{separator}sslmode=verify-full&sslrootcert={unrelated}"
    ))
    .await
    .expect_err("a server certificate the CA file did not issue is refused");
    let message = refused.to_string().to_lowercase();
    assert!(
        message.contains("certificate") || message.contains("tls"),
        "{message}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
