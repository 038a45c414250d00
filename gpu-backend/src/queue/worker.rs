//! A worker: registers, heartbeats, claims batches of the kinds its kernels run, keeps their
//! leases alive while the device works, and records each outcome. It obeys pause, resume and
//! drain requests (drain: finish what is in hand, take nothing more, exit).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;

use crate::store::jobs::JobRecord;
use crate::store::workers::{WorkerCounters, WorkerRecord};
use crate::store::{Dialect, Store};
use kernel::{ClaimedJob, Kernel, KernelError, KernelResult};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// A human name shown in `GET /api/v1/servers`.
    pub name: String,
    /// The machine it runs on, as shown in `GET /api/v1/servers`.
    pub host: String,
    /// Most jobs claimed at once (also capped by each kernel's batch size).
    pub batch_size: usize,
    /// How long a claim holds before another worker may take the job.
    pub lease: Duration,
    /// How often the worker reports, reads operator requests and requeues expired leases.
    pub heartbeat: Duration,
    /// Longest idle wait before looking for work again without a wake-up.
    pub poll: Duration,
    /// Postgres URL for `LISTEN`; idle workers wake on `NOTIFY` instead of waiting for the poll.
    pub listen_url: Option<String>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            name: format!("worker-{}", std::process::id()),
            host: "localhost".to_owned(),
            batch_size: 64,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(2),
            poll: Duration::from_secs(1),
            listen_url: None,
        }
    }
}

/// Why [`Worker::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerExit {
    /// The shutdown future resolved.
    Shutdown,
    /// An operator asked it to drain, and it did.
    Drained,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunState {
    Active,
    Paused,
    Draining,
}

impl RunState {
    fn as_str(self) -> &'static str {
        match self {
            RunState::Active => "active",
            RunState::Paused => "paused",
            RunState::Draining => "draining",
        }
    }
}

/// One worker over one store and a set of kernels.
pub struct Worker {
    id: String,
    store: Store,
    /// The kernel of each job kind.
    kernels: BTreeMap<&'static str, Arc<dyn Kernel>>,
    options: WorkerOptions,
    /// Jobs finished and failed, for the heartbeat.
    done: AtomicI64,
    failed: AtomicI64,
}

impl Worker {
    /// Registers a worker for `kernels` and returns it ready to run.
    pub async fn register(
        store: Store,
        kernels: Vec<Arc<dyn Kernel>>,
        options: WorkerOptions,
    ) -> anyhow::Result<Worker> {
        let kernels: BTreeMap<_, _> = kernels.into_iter().map(|k| (k.kind(), k)).collect();
        anyhow::ensure!(!kernels.is_empty(), "a worker needs at least one kernel");
        for kernel in kernels.values() {
            // A health check may load a model: keep it off the async threads.
            let checked = kernel.clone();
            tokio::task::spawn_blocking(move || checked.health())
                .await
                .context("a kernel health check panicked")?
                .map_err(|e| anyhow::anyhow!("kernel {} is unhealthy: {e}", kernel.kind()))?;
        }
        let id = uuid::Uuid::now_v7().to_string();
        let device = kernels
            .values()
            .next()
            .map(|k| k.device())
            .unwrap_or_else(|| "cpu".into());
        let record = WorkerRecord {
            id: id.clone(),
            name: options.name.clone(),
            host: options.host.clone(),
            pid: i64::from(std::process::id()),
            kinds: kernels.keys().map(|k| k.to_string()).collect(),
            device,
            state: RunState::Active.as_str().into(),
            requested_state: None,
            jobs_in_hand: 0,
            jobs_done: 0,
            jobs_failed: 0,
            started_at_ms: 0,
            heartbeat_at_ms: 0,
        };
        store
            .register_worker(&record)
            .await
            .context("registering the worker")?;
        tracing::info!(worker = %id, name = %options.name, kinds = ?record.kinds, "worker registered");
        Ok(Worker {
            id,
            store,
            kernels,
            options,
            done: AtomicI64::new(0),
            failed: AtomicI64::new(0),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn counters(&self, in_hand: i64) -> WorkerCounters {
        WorkerCounters {
            in_hand,
            done: self.done.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    /// Works until `shutdown` resolves or a drain request is carried out. Database outages are
    /// ridden out: the worker logs, backs off and carries on when the database is back.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<WorkerExit> {
        tokio::pin!(shutdown);
        let kinds: Vec<&str> = self.kernels.keys().copied().collect();
        let batch = self
            .kernels
            .values()
            .map(|k| k.max_batch_size())
            .min()
            .unwrap_or(1)
            .min(self.options.batch_size)
            .max(1) as i64;
        let mut state = RunState::Active;
        // Registration has just reported; the first upkeep (which scans for expired leases, and
        // can take long on a large table) waits one period so the first claim does not wait on it.
        let mut next_heartbeat = Instant::now() + self.options.heartbeat;
        let mut listener = self.listen().await;
        let exit = loop {
            if Instant::now() >= next_heartbeat {
                state = self.heartbeat(state).await;
                next_heartbeat = Instant::now() + self.options.heartbeat;
                if listener.is_none() {
                    listener = self.listen().await;
                }
            }
            if state == RunState::Draining {
                break WorkerExit::Drained;
            }
            // Armed before the claim: an enqueue in this process while the claim runs is not lost.
            let enqueued = self.store.enqueued_signal();
            let claimed = if state == RunState::Active {
                match self
                    .store
                    .claim(
                        &self.id,
                        &kinds,
                        batch,
                        self.options.lease.as_millis() as i64,
                    )
                    .await
                {
                    Ok(jobs) => jobs,
                    Err(e) => {
                        tracing::warn!(worker = %self.id, error = %e, "claim failed; retrying");
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            if claimed.is_empty() {
                let wait = self
                    .options
                    .poll
                    .min(next_heartbeat.saturating_duration_since(Instant::now()));
                tokio::select! {
                    biased;
                    _ = &mut shutdown => break WorkerExit::Shutdown,
                    _ = tokio::time::timeout(wait, enqueued) => {}
                    woke = recv_notification(&mut listener) => {
                        if !woke {
                            listener = None;
                        }
                    }
                }
                continue;
            }
            self.process(claimed).await;
            if futures_ready(&mut shutdown).await {
                break WorkerExit::Shutdown;
            }
        };
        let _ = self
            .store
            .worker_heartbeat(&self.id, "stopped", self.counters(0))
            .await;
        tracing::info!(worker = %self.id, ?exit, "worker stopped");
        Ok(exit)
    }

    async fn listen(&self) -> Option<sqlx::postgres::PgListener> {
        let url = self.options.listen_url.as_deref()?;
        if self.store.dialect() != Dialect::Postgres {
            return None;
        }
        let mut listener = sqlx::postgres::PgListener::connect(url).await.ok()?;
        listener.listen("h200_jobs").await.ok()?;
        Some(listener)
    }

    /// Reports, applies an operator's request, and requeues jobs whose leases expired.
    async fn heartbeat(&self, state: RunState) -> RunState {
        let requested = match self
            .store
            .worker_heartbeat(&self.id, state.as_str(), self.counters(0))
            .await
        {
            Ok(requested) => requested,
            Err(e) => {
                tracing::warn!(worker = %self.id, error = %e, "heartbeat failed");
                return state;
            }
        };
        if let Err(e) = self.store.requeue_expired().await {
            tracing::warn!(worker = %self.id, error = %e, "requeueing expired leases failed");
        }
        let Some(requested) = requested else {
            return state;
        };
        let next = match requested.as_str() {
            "pause" => RunState::Paused,
            "resume" => RunState::Active,
            "drain" => RunState::Draining,
            _ => state,
        };
        let _ = self
            .store
            .acknowledge_worker_request(&self.id, &requested)
            .await;
        if next != state {
            tracing::info!(worker = %self.id, from = state.as_str(), to = next.as_str(), "operator request applied");
            let _ = self
                .store
                .worker_heartbeat(&self.id, next.as_str(), self.counters(0))
                .await;
        }
        next
    }

    /// Runs claimed jobs kind by kind and records every outcome.
    async fn process(&self, claimed: Vec<JobRecord>) {
        let mut by_kind: BTreeMap<String, Vec<JobRecord>> = BTreeMap::new();
        for job in claimed {
            by_kind.entry(job.kind.clone()).or_default().push(job);
        }
        for (kind, jobs) in by_kind {
            let Some(kernel) = self.kernels.get(kind.as_str()).cloned() else {
                continue;
            };
            let mut batch = Vec::with_capacity(jobs.len());
            for job in jobs {
                let partition_state = match &job.partition_key {
                    Some(key) => match self.store.stream_state(key).await {
                        Ok(state) => state.map(|(s, _)| s),
                        Err(e) => {
                            // Running without the partition's state would compute from a blank
                            // slate; hand the job back instead (or let its lease expire).
                            tracing::warn!(job = %job.id, error = %e, "partition state unavailable; job handed back");
                            let _ = self
                                .store
                                .fail(&self.id, &job.id, "partition state unavailable")
                                .await;
                            continue;
                        }
                    },
                    None => None,
                };
                batch.push(ClaimedJob {
                    id: job.id,
                    kind: job.kind,
                    owner: job.owner,
                    partition_key: job.partition_key,
                    payload: job.payload,
                    attempt: job.attempts,
                    partition_state,
                });
            }
            let ids: Vec<String> = batch.iter().map(|j| j.id.clone()).collect();
            let keeper = self.keep_leases(ids.clone());
            let batch = Arc::new(batch);
            let run_on = batch.clone();
            let outcomes = tokio::task::spawn_blocking(move || kernel.run_batch(&run_on)).await;
            keeper.abort();
            let outcomes: Vec<KernelResult> = match outcomes {
                Ok(outcomes) if outcomes.len() == batch.len() => outcomes,
                Ok(_) => vec![
                    Err(KernelError::Failed(
                        "kernel returned a wrong number of outcomes".into()
                    ));
                    batch.len()
                ],
                Err(_) => vec![Err(KernelError::Failed("kernel panicked".into())); batch.len()],
            };
            self.record(&batch, outcomes).await;
        }
    }

    /// Extends the batch's leases at a third of the lease period while the kernel runs.
    fn keep_leases(&self, ids: Vec<String>) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let worker = self.id.clone();
        let lease = self.options.lease;
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(lease / 3);
            interval.tick().await;
            loop {
                interval.tick().await;
                if let Err(e) = store
                    .extend_leases(&worker, &ids, lease.as_millis() as i64)
                    .await
                {
                    tracing::warn!(worker = %worker, error = %e, "extending leases failed");
                }
            }
        })
    }

    async fn record(&self, batch: &[ClaimedJob], outcomes: Vec<KernelResult>) {
        let mut plain = Vec::new();
        for (job, outcome) in batch.iter().zip(outcomes) {
            match outcome {
                Ok(output) => match (&job.partition_key, output.partition_state) {
                    (Some(key), Some(state)) => {
                        match self
                            .store
                            .complete(&self.id, &job.id, &output.result, Some((key, &state)))
                            .await
                        {
                            Ok(true) => {
                                self.done.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(false) => {
                                tracing::warn!(job = %job.id, "lease lost before completion; result discarded")
                            }
                            Err(e) => {
                                tracing::warn!(job = %job.id, error = %e, "recording a result failed; the lease will expire and the job rerun")
                            }
                        }
                    }
                    _ => plain.push((job.id.clone(), output.result)),
                },
                Err(error) => {
                    let message = error.to_string();
                    let recorded = match error {
                        KernelError::Invalid(_) => {
                            self.store.dead_letter(&self.id, &job.id, &message).await
                        }
                        KernelError::Failed(_) => {
                            self.store.fail(&self.id, &job.id, &message).await
                        }
                    };
                    match recorded {
                        Ok(Some(state)) => {
                            self.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(job = %job.id, state = state.as_str(), error = %message, "job attempt failed");
                        }
                        Ok(None) => {
                            tracing::warn!(job = %job.id, "lease lost before recording a failure")
                        }
                        Err(e) => {
                            tracing::warn!(job = %job.id, error = %e, "recording a failure failed")
                        }
                    }
                }
            }
        }
        if !plain.is_empty() {
            match self.store.complete_batch(&self.id, &plain).await {
                Ok(n) => {
                    self.done.fetch_add(n as i64, Ordering::Relaxed);
                    if (n as usize) < plain.len() {
                        tracing::warn!(
                            lost = plain.len() - n as usize,
                            "leases lost before completion; results discarded"
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "recording results failed; the leases will expire and the jobs rerun")
                }
            }
        }
    }
}

/// Waits for a `NOTIFY`; false when the listener broke (the caller falls back to polling).
async fn recv_notification(listener: &mut Option<sqlx::postgres::PgListener>) -> bool {
    match listener {
        Some(l) => l.recv().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// Whether `future` has already resolved, without waiting for it.
async fn futures_ready(
    future: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> bool {
    tokio::select! {
        biased;
        _ = future.as_mut() => true,
        _ = std::future::ready(()) => false,
    }
}
