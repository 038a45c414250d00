//! A real `h200 worker` process killed with SIGKILL mid-job: its lease expires, another worker
//! finishes the job, and no result is written twice.

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "support/workers.rs"]
mod workers;

use std::time::Duration;

use common::{Backend, TestDatabase};
use gpu_backend::queue::noop::ECHO_KIND;
use gpu_backend::store::jobs::{JobState, NewJob};
use serde_json::json;
use workers::{WorkerProcess, wait_for};

async fn sigkill_mid_job(kind: Backend) {
    let db = TestDatabase::new(kind).await;
    let store = db.store().await;
    let (job, _) = store
        .enqueue(&NewJob::new(ECHO_KIND, json!({"sleep_ms": 3000})))
        .await
        .unwrap();
    let mut first = WorkerProcess::start(&db, "doomed", 2);
    let first_id = first.id.clone();
    wait_for(
        "the first worker to take the job",
        Duration::from_secs(20),
        async || {
            let job = store.job(&job.id).await.unwrap().unwrap();
            job.state == JobState::Running && job.locked_by.as_deref() == Some(first_id.as_str())
        },
    )
    .await;
    // The process dies with the job in hand: no chance to clean up.
    first.kill();
    let second = WorkerProcess::start(&db, "survivor", 2);
    wait_for(
        "another worker to finish the job",
        Duration::from_secs(40),
        async || store.job(&job.id).await.unwrap().unwrap().state.is_final(),
    )
    .await;
    let done = store.job(&job.id).await.unwrap().unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(
        done.attempts, 2,
        "one attempt died with the worker, the second finished"
    );
    assert_eq!(done.locked_by.as_deref(), Some(second.id.as_str()));
    assert_eq!(
        done.result.unwrap()["attempt"],
        2,
        "the result is the second attempt's"
    );
    let servers = store.list_workers(0).await.unwrap();
    assert!(
        servers
            .iter()
            .any(|w| w.id == second.id && w.jobs_done == 1)
    );
}
on_both_stores!(sigkill, sigkill_mid_job);
