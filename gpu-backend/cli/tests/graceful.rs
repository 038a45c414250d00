//! Rolling restarts lose no job: an `h200 worker` that gets SIGTERM with jobs in hand finishes
//! them, records their results, takes no more and exits cleanly; the jobs it did not take stay
//! queued for the next worker. (The edge's audit drain on SIGTERM is `dev_shutdown.rs`.)

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "support/workers.rs"]
mod workers;

use std::time::{Duration, Instant};

use common::{Backend, TestDatabase};
use gpu_backend::queue::noop::ECHO_KIND;
use gpu_backend::store::jobs::{JobState, NewJob};
use serde_json::json;
use workers::{WorkerProcess, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_worker_finish_the_jobs_in_hand_and_leaves_the_rest_queued() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let store = db.store().await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let (job, _) = store
            .enqueue(&NewJob::new(ECHO_KIND, json!({ "sleep_ms": 1500, "i": i })))
            .await
            .expect("enqueue");
        ids.push(job.id);
    }
    let mut worker = WorkerProcess::start(&db, "rolling", 30);
    wait_for(
        "the worker to take jobs",
        Duration::from_secs(20),
        async || {
            let mut running = 0;
            for id in &ids {
                let job = store.job(id).await.unwrap().unwrap();
                running += usize::from(job.state == JobState::Running);
            }
            running > 0
        },
    )
    .await;
    let mut in_hand = Vec::new();
    for id in &ids {
        if store.job(id).await.unwrap().unwrap().state == JobState::Running {
            in_hand.push(id.clone());
        }
    }
    let terminated = std::process::Command::new("kill")
        .args(["-TERM", &worker.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(terminated.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = worker.try_wait() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the worker did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "a clean exit: {status}");
    let mut queued = 0;
    for id in &ids {
        let job = store.job(id).await.unwrap().unwrap();
        if in_hand.contains(id) {
            assert_eq!(job.state, JobState::Succeeded, "a job in hand is finished");
            assert_eq!(job.attempts, 1, "by the worker that had it, once");
            assert!(job.result.is_some());
        } else if job.state == JobState::Queued {
            queued += 1;
        } else {
            assert_eq!(job.state, JobState::Succeeded, "{id}: {:?}", job.state);
        }
    }
    assert!(!in_hand.is_empty());
    let next = WorkerProcess::start(&db, "next", 30);
    wait_for(
        "the next worker to finish the rest",
        Duration::from_secs(60),
        async || {
            let mut done = 0;
            for id in &ids {
                done +=
                    usize::from(store.job(id).await.unwrap().unwrap().state == JobState::Succeeded);
            }
            done == ids.len()
        },
    )
    .await;
    for id in &ids {
        assert_eq!(
            store.job(id).await.unwrap().unwrap().attempts,
            1,
            "each job ran once"
        );
    }
    drop(next);
    let _ = queued;
}
