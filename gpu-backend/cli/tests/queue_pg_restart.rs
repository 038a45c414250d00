//! Postgres restarted under running `h200 worker` processes: they reconnect and carry on, no job
//! is lost, none runs twice to completion, and every stream keeps its order. This is the only
//! test in its binary, because it restarts the server every other test uses.

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "support/workers.rs"]
mod workers;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use common::{Backend, TestDatabase};
use gpu_backend::queue::noop::ECHO_KIND;
use gpu_backend::store::Store;
use gpu_backend::store::jobs::{JobState, NewJob};
use serde_json::json;
use workers::{WorkerProcess, wait_for};

/// Restarts the local Postgres cluster, as an operator or a crash would.
fn restart_postgres() {
    let versions = std::fs::read_dir("/etc/postgresql")
        .expect("a local Postgres cluster is required for this test");
    let version = versions
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .max()
        .expect("a Postgres cluster version");
    let status = Command::new("pg_ctlcluster")
        .args([
            "--skip-systemctl-redirect",
            &version,
            "main",
            "restart",
            "--mode",
            "fast",
        ])
        .status()
        .expect("running pg_ctlcluster");
    assert!(status.success(), "Postgres restart failed");
}

async fn count_final(store: &Store) -> Option<i64> {
    let counts = store.job_counts().await.ok()?;
    Some(
        counts
            .iter()
            .filter(|(s, _)| s.is_final())
            .map(|(_, n)| n)
            .sum(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_under_running_workers() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let store = db.store().await;
    let jobs: Vec<NewJob> = (0..300)
        .map(|i| {
            let mut job = NewJob::new(ECHO_KIND, json!({"i": i, "sleep_ms": 150}));
            job.partition_key = Some(format!("stream-{}", i % 20));
            job
        })
        .collect();
    store.enqueue_batch(&jobs).await.unwrap();
    let workers = [
        WorkerProcess::start(&db, "pg-a", 3),
        WorkerProcess::start(&db, "pg-b", 3),
    ];
    wait_for("work to start", Duration::from_secs(20), async || {
        count_final(&store).await.unwrap_or(0) > 20
    })
    .await;
    let before = count_final(&store).await.unwrap();
    assert!(
        before < 300,
        "the restart must land mid-run ({before} of 300 already done)"
    );
    tokio::task::spawn_blocking(restart_postgres).await.unwrap();
    wait_for(
        "every job to finish after the restart",
        Duration::from_secs(120),
        async || count_final(&store).await == Some(300),
    )
    .await;

    let mut seen = BTreeSet::new();
    let mut streams: BTreeMap<String, Vec<(u64, i64)>> = BTreeMap::new();
    for job in store.list_jobs(ECHO_KIND, None, 1000, 0).await.unwrap() {
        assert_eq!(
            job.state,
            JobState::Succeeded,
            "job {} ended {:?}",
            job.id,
            job.error
        );
        let result = job.result.unwrap();
        let i = result["echo"]["i"].as_i64().unwrap();
        assert!(seen.insert(i), "job {i} has one result");
        streams
            .entry(job.partition_key.unwrap())
            .or_default()
            .push((result["partition_position"].as_u64().unwrap(), i));
    }
    assert_eq!(seen.len(), 300, "no job lost");
    for (stream, mut positions) in streams {
        positions.sort();
        let order: Vec<i64> = positions.iter().map(|(_, i)| *i).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "{stream} kept its order across the restart");
        assert_eq!(
            positions.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            (1..=15).collect::<Vec<u64>>()
        );
    }
    drop(workers);
}
