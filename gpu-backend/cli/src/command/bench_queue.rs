//! `h200 bench queue`: enqueue, claim and end-to-end throughput of the queue, and the same figures
//! for a naive queue (`SELECT … FOR UPDATE` without `SKIP LOCKED`, one job at a time) measured in
//! the same run. End to end also splits into the time to the first finished job and the steady
//! rate after it. Run it against a scratch database: it adds and removes `echo` jobs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use sqlx::Row;

use gpu_backend::queue::noop::{ECHO_KIND, EchoKernel};
use gpu_backend::queue::{Kernel, Worker, WorkerOptions};
use gpu_backend::store::jobs::NewJob;
use gpu_backend::store::{Dialect, Store, now_ms};

/// What to measure.
#[derive(Debug, Clone, Copy)]
pub struct QueueBench {
    pub jobs: usize,
    pub workers: usize,
    /// Jobs per claim and per enqueue statement.
    pub batch: usize,
    /// Jobs for the naive queue (it is slow; a smaller count keeps the run short).
    pub naive_jobs: usize,
}

/// One measured figure: a rate (`jobs` in `seconds`), or a delay when `jobs` is `None`.
#[derive(Debug, Clone)]
pub struct Figure {
    pub queue: &'static str,
    pub phase: &'static str,
    pub jobs: Option<usize>,
    pub seconds: f64,
}

impl Figure {
    pub fn per_second(&self) -> f64 {
        self.jobs.unwrap_or(0) as f64 / self.seconds.max(1e-9)
    }
}

impl std::fmt::Display for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let prefix = if self.queue == "h200" {
            String::new()
        } else {
            format!("{} ", self.queue)
        };
        match self.jobs {
            Some(jobs) => write!(
                f,
                "{prefix}{}: {:.0} jobs/s ({jobs} jobs in {:.3} s)",
                self.phase,
                self.per_second(),
                self.seconds
            ),
            None => write!(f, "{prefix}{}: {:.3} s", self.phase, self.seconds),
        }
    }
}

fn bench_jobs(run: &str, count: usize) -> Vec<NewJob> {
    (0..count)
        .map(|i| {
            let mut job = NewJob::new(ECHO_KIND, json!({ "i": i }));
            job.owner = Some(run.to_owned());
            job
        })
        .collect()
}

async fn open_jobs(store: &Store, run: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE owner = $1 AND state NOT IN ('succeeded', 'dead', 'cancelled')")
        .bind(run)
        .fetch_one(store.pool())
        .await?)
}

async fn clean(store: &Store, run: &str) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM jobs WHERE owner = $1")
        .bind(run)
        .execute(store.pool())
        .await?;
    Ok(())
}

async fn enqueue_all(store: &Store, jobs: &[NewJob], batch: usize) -> anyhow::Result<()> {
    for chunk in jobs.chunks(batch.max(1)) {
        store.enqueue_batch(chunk).await.context("enqueueing")?;
    }
    Ok(())
}

/// Runs the whole benchmark and returns its figures in print order.
pub async fn run(store: &Store, bench: QueueBench) -> anyhow::Result<Vec<Figure>> {
    let mut figures = Vec::new();
    let run = format!("bench:{}", uuid::Uuid::new_v4().simple());

    // Enqueue.
    let jobs = bench_jobs(&run, bench.jobs);
    let started = Instant::now();
    enqueue_all(store, &jobs, bench.batch).await?;
    figures.push(Figure {
        queue: "h200",
        phase: "enqueue",
        jobs: Some(bench.jobs),
        seconds: started.elapsed().as_secs_f64(),
    });

    // Claim: W claimers take everything, as fast as they can.
    let started = Instant::now();
    let mut claimers = Vec::new();
    for i in 0..bench.workers {
        let store = store.clone();
        let batch = bench.batch as i64;
        claimers.push(tokio::spawn(async move {
            let worker = format!("bench-claimer-{i}");
            let mut claimed = Vec::new();
            loop {
                let jobs = store.claim(&worker, &[ECHO_KIND], batch, 600_000).await?;
                if jobs.is_empty() {
                    break;
                }
                claimed.extend(jobs.into_iter().map(|j| (j.id, json!(null))));
            }
            anyhow::Ok((worker, claimed))
        }));
    }
    let mut held = Vec::new();
    for claimer in claimers {
        held.push(claimer.await??);
    }
    let claimed: usize = held.iter().map(|(_, jobs)| jobs.len()).sum();
    figures.push(Figure {
        queue: "h200",
        phase: "claim",
        jobs: Some(claimed),
        seconds: started.elapsed().as_secs_f64(),
    });
    for (worker, jobs) in held {
        for chunk in jobs.chunks(1000) {
            store.complete_batch(&worker, chunk).await?;
        }
    }
    clean(store, &run).await?;

    // End to end: enqueue while W real workers claim, run the echo kernel and complete.
    let jobs = bench_jobs(&run, bench.jobs);
    let mut stops = Vec::new();
    let mut handles = Vec::new();
    for i in 0..bench.workers {
        let kernel: Arc<dyn Kernel> = Arc::new(EchoKernel);
        let options = WorkerOptions {
            name: format!("bench-{i}"),
            batch_size: bench.batch,
            poll: Duration::from_millis(5),
            heartbeat: Duration::from_secs(5),
            ..WorkerOptions::default()
        };
        let worker = Worker::register(store.clone(), vec![kernel], options).await?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        stops.push(tx);
        handles.push(tokio::spawn(worker.run(async move {
            let _ = rx.await;
        })));
    }
    let started = Instant::now();
    let started_ms = now_ms();
    enqueue_all(store, &jobs, bench.batch).await?;
    // Finishing is signalled in this process; the count confirms it without hammering the table.
    while open_jobs(store, &run).await? > 0 {
        store.wait_finished(Duration::from_millis(20)).await;
    }
    figures.push(Figure {
        queue: "h200",
        phase: "end-to-end",
        jobs: Some(bench.jobs),
        seconds: started.elapsed().as_secs_f64(),
    });
    figures.extend(first_job_and_steady_rate(store, &run, started_ms).await?);
    for stop in stops {
        let _ = stop.send(());
    }
    for handle in handles {
        handle.await??;
    }
    clean(store, &run).await?;

    if store.dialect() == Dialect::Postgres && bench.naive_jobs > 0 {
        figures.extend(naive(store, &run, bench).await?);
        clean(store, &run).await?;
    }
    Ok(figures)
}

/// From the jobs' finishing times: the delay from the start of the enqueue to the first finished
/// job, and the rate of the jobs that finished after it.
async fn first_job_and_steady_rate(
    store: &Store,
    run: &str,
    started_ms: i64,
) -> anyhow::Result<Vec<Figure>> {
    let row = sqlx::query(
        "SELECT MIN(finished_at_ms) AS first_ms, MAX(finished_at_ms) AS last_ms FROM jobs WHERE owner = $1",
    )
    .bind(run)
    .fetch_one(store.pool())
    .await?;
    let (Some(first_ms), Some(last_ms)) = (
        row.try_get::<Option<i64>, _>("first_ms")?,
        row.try_get::<Option<i64>, _>("last_ms")?,
    ) else {
        return Ok(Vec::new());
    };
    let after_first: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE owner = $1 AND finished_at_ms > $2")
            .bind(run)
            .bind(first_ms)
            .fetch_one(store.pool())
            .await?;
    Ok(vec![
        Figure {
            queue: "h200",
            phase: "time to first job",
            jobs: None,
            seconds: (first_ms - started_ms) as f64 / 1000.0,
        },
        Figure {
            queue: "h200",
            phase: "steady state",
            jobs: Some(after_first as usize),
            seconds: (last_ms - first_ms) as f64 / 1000.0,
        },
    ])
}

/// The naive queue: one INSERT per job; one transaction per claim that locks the oldest queued
/// row with `FOR UPDATE` (so concurrent workers wait on each other) and marks it running; one
/// UPDATE per completion.
async fn naive(store: &Store, run: &str, bench: QueueBench) -> anyhow::Result<Vec<Figure>> {
    let count = bench.naive_jobs;
    let insert = |i: usize| {
        sqlx::query(
            "INSERT INTO jobs (id, kind, owner, priority, state, payload, attempts, max_attempts, run_at_ms, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, 0, 'queued', $4, 0, 1, $5, $5, $5)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(ECHO_KIND)
        .bind(run.to_owned())
        .bind(json!({ "i": i }).to_string())
        .bind(now_ms())
    };
    let started = Instant::now();
    for i in 0..count {
        insert(i).execute(store.pool()).await?;
    }
    let enqueue = Figure {
        queue: "naive",
        phase: "enqueue",
        jobs: Some(count),
        seconds: started.elapsed().as_secs_f64(),
    };

    async fn claim_one(store: &Store, owner: &str, worker: &str) -> anyhow::Result<Option<String>> {
        let mut tx = store.pool().begin().await?;
        let row = sqlx::query("SELECT id FROM jobs WHERE owner = $1 AND state = 'queued' ORDER BY seq LIMIT 1 FOR UPDATE")
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let id: String = row.try_get("id")?;
        sqlx::query("UPDATE jobs SET state = 'running', locked_by = $1, attempts = attempts + 1 WHERE id = $2")
            .bind(worker)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    let drive = |complete: bool| async move {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..bench.workers {
            let store = store.clone();
            let owner = run.to_owned();
            tasks.push(tokio::spawn(async move {
                let worker = format!("naive-{i}");
                let mut done = 0usize;
                while let Some(id) = claim_one(&store, &owner, &worker).await? {
                    if complete {
                        sqlx::query(
                            "UPDATE jobs SET state = 'succeeded', result = $1 WHERE id = $2",
                        )
                        .bind(json!({ "echo": id }).to_string())
                        .bind(&id)
                        .execute(store.pool())
                        .await?;
                    }
                    done += 1;
                }
                anyhow::Ok(done)
            }));
        }
        let mut done = 0;
        for task in tasks {
            done += task.await??;
        }
        anyhow::Ok((done, started.elapsed().as_secs_f64()))
    };
    let (claimed, seconds) = drive(false).await?;
    let claim = Figure {
        queue: "naive",
        phase: "claim",
        jobs: Some(claimed),
        seconds,
    };
    clean(store, run).await?;
    let started = Instant::now();
    for i in 0..count {
        insert(i).execute(store.pool()).await?;
    }
    let (done, _) = drive(true).await?;
    let end_to_end = Figure {
        queue: "naive",
        phase: "end-to-end",
        jobs: Some(done),
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok(vec![enqueue, claim, end_to_end])
}
