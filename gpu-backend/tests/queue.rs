//! The job queue on SQLite and on Postgres: idempotency, partition order, leases, retries, dead
//! letters, cancel, and many workers taking every job exactly once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::{Backend, TestDatabase};
use gpu_backend::queue::noop::{ECHO_KIND, EchoKernel};
use gpu_backend::queue::{Kernel, Worker, WorkerExit, WorkerOptions};
use gpu_backend::store::Store;
use gpu_backend::store::jobs::{JobState, NewJob};
use serde_json::json;

fn echo(payload: serde_json::Value) -> NewJob {
    NewJob::new(ECHO_KIND, payload)
}

async fn enqueue_is_idempotent_and_claims_respect_partitions(kind: Backend) {
    let db = TestDatabase::new(kind).await;
    let store = db.store().await;
    let mut job = echo(json!({"n": 1}));
    job.idempotency_key = Some("owner:abc".into());
    let (first, created) = store.enqueue(&job).await.unwrap();
    assert!(created);
    let (again, created_again) = store.enqueue(&job).await.unwrap();
    assert!(!created_again);
    assert_eq!(again.id, first.id, "the same key names the same job");

    // Two jobs of one partition and one free job: a claim gets the partition's head and the free
    // job, never the second of the partition while the first is pending or running.
    let mut a1 = echo(json!({"p": "a1"}));
    a1.partition_key = Some("stream-a".into());
    let mut a2 = echo(json!({"p": "a2"}));
    a2.partition_key = Some("stream-a".into());
    let (a1, _) = store.enqueue(&a1).await.unwrap();
    let (a2, _) = store.enqueue(&a2).await.unwrap();
    let claimed = store.claim("w1", &[ECHO_KIND], 10, 30_000).await.unwrap();
    let ids: BTreeSet<String> = claimed.iter().map(|j| j.id.clone()).collect();
    assert!(ids.contains(&a1.id) && ids.contains(&first.id));
    assert!(!ids.contains(&a2.id), "second job of the partition waits");
    assert!(
        claimed
            .iter()
            .all(|j| j.state == JobState::Running && j.attempts == 1)
    );
    assert!(
        store
            .claim("w2", &[ECHO_KIND], 10, 30_000)
            .await
            .unwrap()
            .is_empty()
    );
    // Other kinds are not claimed by a worker that does not run them.
    let (other, _) = store.enqueue(&NewJob::new("ncs", json!({}))).await.unwrap();
    assert!(
        store
            .claim("w2", &[ECHO_KIND], 10, 30_000)
            .await
            .unwrap()
            .is_empty()
    );

    assert!(
        store
            .complete("w1", &a1.id, &json!({"ok": 1}), Some(("stream-a", "1")))
            .await
            .unwrap()
    );
    assert_eq!(
        store.stream_state("stream-a").await.unwrap(),
        Some(("1".into(), 1))
    );
    let next = store.claim("w2", &[ECHO_KIND], 10, 30_000).await.unwrap();
    assert_eq!(
        next.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        vec![a2.id.clone()]
    );
    // A worker that does not hold the lease cannot complete it.
    assert!(
        !store
            .complete("w1", &a2.id, &json!({}), None)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .complete_batch("w2", &[(a2.id.clone(), json!({"done": true}))])
            .await
            .unwrap(),
        1
    );
    let stored = store.job(&a2.id).await.unwrap().unwrap();
    assert_eq!(stored.state, JobState::Succeeded);
    assert_eq!(stored.result, Some(json!({"done": true})));

    assert!(store.cancel_job(&other.id).await.unwrap());
    assert_eq!(
        store.job(&other.id).await.unwrap().unwrap().state,
        JobState::Cancelled
    );
    assert!(
        !store.cancel_job(&a2.id).await.unwrap(),
        "a finished job cannot be cancelled"
    );
}
on_both_stores!(basics, enqueue_is_idempotent_and_claims_respect_partitions);

async fn priorities_leases_retries_and_dead_letters(kind: Backend) {
    let db = TestDatabase::new(kind).await;
    let store = db.store().await;
    let (low, _) = store.enqueue(&echo(json!({"p": "low"}))).await.unwrap();
    let mut urgent = echo(json!({"p": "high"}));
    urgent.priority = 10;
    let (high, _) = store.enqueue(&urgent).await.unwrap();
    let first = store.claim("w1", &[ECHO_KIND], 1, 30_000).await.unwrap();
    assert_eq!(first[0].id, high.id, "higher priority first");
    assert!(
        store
            .complete("w1", &high.id, &json!(null), None)
            .await
            .unwrap()
    );

    // A lease that runs out puts the job back; the old holder's late result is refused.
    let taken = store.claim("w1", &[ECHO_KIND], 1, 1).await.unwrap();
    assert_eq!(taken[0].id, low.id);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.requeue_expired().await.unwrap(), 1);
    let requeued = store.job(&low.id).await.unwrap().unwrap();
    assert_eq!(requeued.state, JobState::Failed);
    assert_eq!(requeued.error.as_deref(), Some("lease expired"));
    assert!(
        !store
            .complete("w1", &low.id, &json!({"late": true}), None)
            .await
            .unwrap()
    );

    // Failures back off exponentially and end in the dead letters.
    let mut fragile = echo(json!({}));
    fragile.max_attempts = 2;
    let (fragile, _) = store.enqueue(&fragile).await.unwrap();
    let claimed = store.claim("w1", &[ECHO_KIND], 10, 30_000).await.unwrap();
    assert!(claimed.iter().any(|j| j.id == fragile.id));
    let state = store.fail("w1", &fragile.id, "boom").await.unwrap();
    assert_eq!(state, Some(JobState::Failed));
    let after = store.job(&fragile.id).await.unwrap().unwrap();
    assert!(
        after.run_at_ms >= after.updated_at_ms + 900,
        "waits about a second before the retry"
    );
    assert!(
        store
            .claim("w1", &[ECHO_KIND], 10, 30_000)
            .await
            .unwrap()
            .iter()
            .all(|j| j.id != fragile.id),
        "not before its backoff"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let retry = store.claim("w1", &[ECHO_KIND], 10, 30_000).await.unwrap();
    assert!(retry.iter().any(|j| j.id == fragile.id && j.attempts == 2));
    assert_eq!(
        store.fail("w1", &fragile.id, "boom again").await.unwrap(),
        Some(JobState::Dead)
    );
    let dead = store.job(&fragile.id).await.unwrap().unwrap();
    assert_eq!((dead.state, dead.attempts), (JobState::Dead, 2));
    assert!(dead.finished_at_ms.is_some());
}
on_both_stores!(leases, priorities_leases_retries_and_dead_letters);

async fn run_workers(
    store: &Store,
    count: usize,
) -> Vec<(
    String,
    tokio::task::JoinHandle<anyhow::Result<WorkerExit>>,
    tokio::sync::oneshot::Sender<()>,
)> {
    let mut workers = Vec::new();
    for i in 0..count {
        let options = WorkerOptions {
            name: format!("test-{i}"),
            batch_size: 16,
            poll: Duration::from_millis(50),
            heartbeat: Duration::from_millis(200),
            ..WorkerOptions::default()
        };
        let kernel: Arc<dyn Kernel> = Arc::new(EchoKernel);
        let worker = Worker::register(store.clone(), vec![kernel], options)
            .await
            .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let id = worker.id().to_owned();
        let handle = tokio::spawn(worker.run(async move {
            let _ = rx.await;
        }));
        workers.push((id, handle, tx));
    }
    workers
}

async fn wait_all_final(store: &Store, total: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let counts: BTreeMap<_, _> = store.job_counts().await.unwrap().into_iter().collect();
        let finished: i64 = counts
            .iter()
            .filter(|(s, _)| s.is_final())
            .map(|(_, n)| n)
            .sum();
        if finished == total {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "jobs still open: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn thousand_jobs_over_four_workers_exactly_once(kind: Backend) {
    let db = TestDatabase::new(kind).await;
    let store = db.store().await;
    let jobs: Vec<NewJob> = (0..1000)
        .map(|i| {
            let mut job = echo(json!({"i": i}));
            // Five ordered streams of 100 jobs among 500 free ones.
            if i % 2 == 0 {
                job.partition_key = Some(format!("stream-{}", i % 10));
            }
            job
        })
        .collect();
    assert_eq!(store.enqueue_batch(&jobs).await.unwrap(), 1000);
    let workers = run_workers(&store, 4).await;
    wait_all_final(&store, 1000).await;

    let mut seen = BTreeSet::new();
    let mut order: BTreeMap<String, Vec<(u64, i64)>> = BTreeMap::new();
    let mut by_worker: BTreeMap<String, usize> = BTreeMap::new();
    for job in store.list_jobs(ECHO_KIND, None, 2000, 0).await.unwrap() {
        assert_eq!(job.state, JobState::Succeeded);
        assert_eq!(job.attempts, 1, "no job ran twice");
        let result = job.result.unwrap();
        let i = result["echo"]["i"].as_i64().unwrap();
        assert!(seen.insert(i), "job {i} has one result");
        *by_worker.entry(job.locked_by.unwrap()).or_default() += 1;
        if let Some(key) = job.partition_key {
            order
                .entry(key)
                .or_default()
                .push((result["partition_position"].as_u64().unwrap(), i));
        }
    }
    assert_eq!(seen.len(), 1000);
    // Within a stream, jobs ran in enqueue order: the position counter follows i.
    for (key, mut positions) in order {
        positions.sort();
        let is: Vec<i64> = positions.iter().map(|(_, i)| *i).collect();
        let mut sorted = is.clone();
        sorted.sort();
        assert_eq!(is, sorted, "{key} ran out of order");
        assert_eq!(positions.last().unwrap().0, 100);
    }
    assert!(by_worker.len() >= 2, "work was shared: {by_worker:?}");
    for (_, handle, tx) in workers {
        let _ = tx.send(());
        assert_eq!(handle.await.unwrap().unwrap(), WorkerExit::Shutdown);
    }
}
on_both_stores!(exactly_once, thousand_jobs_over_four_workers_exactly_once);

async fn retries_then_success_and_operator_requests(kind: Backend) {
    let db = TestDatabase::new(kind).await;
    let store = db.store().await;
    let (flaky, _) = store
        .enqueue(&echo(json!({"fail_attempts": 1})))
        .await
        .unwrap();
    let workers = run_workers(&store, 1).await;
    let (worker_id, handle, _tx) = workers.into_iter().next().unwrap();
    wait_all_final(&store, 1).await;
    let flaky = store.job(&flaky.id).await.unwrap().unwrap();
    assert_eq!((flaky.state, flaky.attempts), (JobState::Succeeded, 2));

    // Pause: queued work waits. Resume: it runs. Drain: the worker exits.
    assert!(
        store
            .request_worker_state(&worker_id, "pause")
            .await
            .unwrap()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.worker(&worker_id).await.unwrap().unwrap().state != "paused" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker never paused"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (waiting, _) = store
        .enqueue(&echo(json!({"after": "pause"})))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        store.job(&waiting.id).await.unwrap().unwrap().state,
        JobState::Queued
    );
    assert!(
        store
            .request_worker_state(&worker_id, "resume")
            .await
            .unwrap()
    );
    wait_all_final(&store, 2).await;
    assert!(
        store
            .request_worker_state(&worker_id, "drain")
            .await
            .unwrap()
    );
    let exit = tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(exit, WorkerExit::Drained);
    let record = store.worker(&worker_id).await.unwrap().unwrap();
    assert_eq!(record.state, "stopped");
    assert_eq!(record.jobs_done, 2);
    assert_eq!(record.jobs_failed, 1);
    assert!(
        !store
            .request_worker_state(&worker_id, "resume")
            .await
            .unwrap(),
        "a stopped worker takes no requests"
    );
}
on_both_stores!(operator, retries_then_success_and_operator_requests);

/// The poll interval of the wake-up tests: a job that waits for it fails their 2 s bound.
const LONG_POLL: Duration = Duration::from_secs(10);
/// How soon a woken worker must have finished an echo job: a fifth of [`LONG_POLL`].
const WAKE_BOUND: Duration = Duration::from_secs(2);

/// Starts one worker that polls only every [`LONG_POLL`] and, on Postgres, listens for `NOTIFY`.
async fn start_slow_polling_worker(
    db: &TestDatabase,
    store: &Store,
) -> (
    String,
    tokio::task::JoinHandle<anyhow::Result<WorkerExit>>,
    tokio::sync::oneshot::Sender<()>,
) {
    let options = WorkerOptions {
        name: "slow-poll".into(),
        poll: LONG_POLL,
        heartbeat: Duration::from_secs(60),
        listen_url: (db.backend == Backend::Postgres).then(|| db.url.clone()),
        ..WorkerOptions::default()
    };
    let kernel: Arc<dyn Kernel> = Arc::new(EchoKernel);
    let worker = Worker::register(store.clone(), vec![kernel], options)
        .await
        .unwrap();
    let id = worker.id().to_owned();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(worker.run(async move {
        let _ = rx.await;
    }));
    (id, handle, tx)
}

/// Waits up to [`WAKE_BOUND`] from `since` for every job in `ids` to succeed.
async fn assert_done_within_wake_bound(store: &Store, ids: &[String], since: tokio::time::Instant) {
    loop {
        let mut open = Vec::new();
        for id in ids {
            if store.job(id).await.unwrap().unwrap().state != JobState::Succeeded {
                open.push(id.clone());
            }
        }
        if open.is_empty() {
            return;
        }
        assert!(
            since.elapsed() < WAKE_BOUND,
            "jobs {open:?} still open after {:?} with a poll of {LONG_POLL:?}: the worker missed its wake-up",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn idle_listening_worker_takes_a_job_from_another_process(kind: Backend) {
    let db = TestDatabase::new(kind).await;
    let worker_store = db.store().await;
    // Another store: its enqueues reach the worker only through Postgres, not this process.
    let client = db.store().await;
    let (id, handle, tx) = start_slow_polling_worker(&db, &worker_store).await;
    // Idle: it has heartbeated (its first step), found nothing and gone to wait.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while client.worker(&id).await.unwrap().unwrap().heartbeat_at_ms == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never heartbeated"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let since = tokio::time::Instant::now();
    let (job, _) = client.enqueue(&echo(json!({"idle": true}))).await.unwrap();
    assert_done_within_wake_bound(&client, &[job.id], since).await;
    let _ = tx.send(());
    assert_eq!(handle.await.unwrap().unwrap(), WorkerExit::Shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_listening_worker_wakes_on_notify() {
    idle_listening_worker_takes_a_job_from_another_process(Backend::Postgres).await;
}

/// Jobs enqueued at short intervals while a worker starts (before, during and after its
/// `LISTEN` and first claim) are all taken without waiting for the poll. On SQLite the enqueuing
/// store is the worker's, and only its in-process signal can wake it.
async fn jobs_enqueued_while_a_worker_starts_are_taken_at_once(
    kind: Backend,
    separate_client: bool,
) {
    let db = TestDatabase::new(kind).await;
    let worker_store = db.store().await;
    let client = if separate_client {
        db.store().await
    } else {
        worker_store.clone()
    };
    let (_, handle, tx) = start_slow_polling_worker(&db, &worker_store).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        let (job, _) = client.enqueue(&echo(json!({ "i": i }))).await.unwrap();
        ids.push(job.id);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_done_within_wake_bound(&client, &ids, tokio::time::Instant::now()).await;
    let _ = tx.send(());
    assert_eq!(handle.await.unwrap().unwrap(), WorkerExit::Shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_listening_worker_takes_jobs_from_another_process() {
    jobs_enqueued_while_a_worker_starts_are_taken_at_once(Backend::Postgres, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_worker_takes_jobs_enqueued_in_its_process_on_sqlite() {
    jobs_enqueued_while_a_worker_starts_are_taken_at_once(Backend::Sqlite, false).await;
}
