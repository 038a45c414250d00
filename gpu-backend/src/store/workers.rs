//! Registered workers: the "servers" of the API. Each heartbeats its state and counters and
//! reads back what an operator asked of it (pause, resume, drain).

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreResult, now_ms};

/// A worker as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerRecord {
    pub id: String,
    pub name: String,
    pub host: String,
    pub pid: i64,
    pub kinds: Vec<String>,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// `active`, `paused`, `draining` or `stopped`.
    pub state: String,
    /// What an operator asked for and the worker has not yet acted on.
    pub requested_state: Option<String>,
    pub jobs_in_hand: i64,
    pub jobs_done: i64,
    pub jobs_failed: i64,
    pub started_at_ms: i64,
    pub heartbeat_at_ms: i64,
}

fn worker_from_row(row: &AnyRow) -> StoreResult<WorkerRecord> {
    let kinds: String = row.try_get("kinds")?;
    Ok(WorkerRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        host: row.try_get("host")?,
        pid: row.try_get("pid")?,
        kinds: kinds
            .split(',')
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect(),
        device: row.try_get("device")?,
        state: row.try_get("state")?,
        requested_state: row.try_get("requested_state")?,
        jobs_in_hand: row.try_get("jobs_in_hand")?,
        jobs_done: row.try_get("jobs_done")?,
        jobs_failed: row.try_get("jobs_failed")?,
        started_at_ms: row.try_get("started_at_ms")?,
        heartbeat_at_ms: row.try_get("heartbeat_at_ms")?,
    })
}

const WORKER_COLUMNS: &str = "id, name, host, pid, kinds, device, state, requested_state, jobs_in_hand, jobs_done, jobs_failed, started_at_ms, heartbeat_at_ms";

/// A heartbeat's counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkerCounters {
    pub in_hand: i64,
    pub done: i64,
    pub failed: i64,
}

impl Store {
    pub async fn register_worker(&self, worker: &WorkerRecord) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO workers ({WORKER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, 0, 0, 0, $8, $8)"
        ))
        .bind(&worker.id)
        .bind(&worker.name)
        .bind(&worker.host)
        .bind(worker.pid)
        .bind(worker.kinds.join(","))
        .bind(&worker.device)
        .bind(&worker.state)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a heartbeat and returns the state an operator requested, if any.
    pub async fn worker_heartbeat(
        &self,
        id: &str,
        state: &str,
        counters: WorkerCounters,
    ) -> StoreResult<Option<String>> {
        sqlx::query(
            "UPDATE workers SET state = $1, jobs_in_hand = $2, jobs_done = $3, jobs_failed = $4, heartbeat_at_ms = $5 WHERE id = $6",
        )
        .bind(state)
        .bind(counters.in_hand)
        .bind(counters.done)
        .bind(counters.failed)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        let requested: Option<Option<String>> =
            sqlx::query_scalar("SELECT requested_state FROM workers WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(requested.flatten())
    }

    /// Clears a request the worker has acted on (only if it is still the same request).
    pub async fn acknowledge_worker_request(&self, id: &str, requested: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE workers SET requested_state = NULL WHERE id = $1 AND requested_state = $2",
        )
        .bind(id)
        .bind(requested)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Asks a worker to pause, resume or drain; false when there is no such worker or it stopped.
    pub async fn request_worker_state(&self, id: &str, requested: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE workers SET requested_state = $1 WHERE id = $2 AND state <> 'stopped'",
        )
        .bind(requested)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn worker(&self, id: &str) -> StoreResult<Option<WorkerRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {WORKER_COLUMNS} FROM workers WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(worker_from_row).transpose()
    }

    /// Workers seen within `since_ms` (and all that have not stopped), newest first.
    pub async fn list_workers(&self, seen_after_ms: i64) -> StoreResult<Vec<WorkerRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {WORKER_COLUMNS} FROM workers WHERE heartbeat_at_ms >= $1 OR state <> 'stopped' ORDER BY started_at_ms DESC, id"
        ))
        .bind(seen_after_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(worker_from_row).collect()
    }
}
