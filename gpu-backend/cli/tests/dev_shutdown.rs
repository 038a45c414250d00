//! `h200 dev` shuts down without losing audit events: on SIGTERM the edge drains its buffer into
//! the backend before the backend stops.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Row;

/// Requests sent right before the shutdown; each one is audited (`token_invalid`).
const REQUESTS: usize = 1_000;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("an ephemeral port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_loses_no_audit_event_buffered_at_the_edge() {
    let data = std::env::temp_dir().join(format!("h200_dev_shutdown_{}", uuid::Uuid::new_v4()));
    let edge_addr = format!("127.0.0.1:{}", free_port());
    let backend_addr = format!("127.0.0.1:{}", free_port());
    let mut dev = Command::new(env!("CARGO_BIN_EXE_h200"))
        .args([
            "dev",
            "--edge-addr",
            &edge_addr,
            "--backend-addr",
            &backend_addr,
        ])
        .env("H200_DATA_DIR", &data)
        .env("H200_DEV_WORKERS", "0")
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .env_remove("H200_DATABASE_URL")
        .stdout(Stdio::null())
        .spawn()
        .expect("h200 dev starts");
    let client = reqwest::Client::new();
    let health = format!("http://{edge_addr}/health");
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.get(&health).send().await.is_err() {
        assert!(Instant::now() < deadline, "h200 dev did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the events of the readiness probes reach the backend first.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let summary = format!("http://{edge_addr}/api/v1/clusters_summary");
    let sends = (0..REQUESTS).map(|i| {
        let client = client.clone();
        let summary = summary.clone();
        async move {
            client
                .get(&summary)
                .bearer_auth(format!("not-a-token-{i}"))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    let statuses = futures_join_all(sends).await;
    assert!(
        statuses.iter().all(|s| matches!(s, Ok(401))),
        "every request is refused 401: {:?}",
        statuses.iter().find(|s| !matches!(s, Ok(401)))
    );
    let status = Command::new("kill")
        .args(["-TERM", &dev.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = dev.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "h200 dev did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "h200 dev exits cleanly: {exit:?}");

    let url = format!("sqlite:{}?mode=ro", data.join("h200.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let row =
        sqlx::query("SELECT COUNT(*) AS n FROM audit_events WHERE event_type = 'token_invalid'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let stored: i64 = row.get("n");
    pool.close().await;
    std::fs::remove_dir_all(&data).ok();
    assert_eq!(
        stored as usize, REQUESTS,
        "every audited request reached the backend before it stopped"
    );
}

/// Runs the futures concurrently and collects their outputs in order.
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.expect("the request task finishes"));
    }
    outputs
}
