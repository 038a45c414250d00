//! The job queue's table: enqueue (idempotent), claim under a lease (`FOR UPDATE SKIP LOCKED` on
//! Postgres, one atomic statement under SQLite's single writer), complete or fail (only by the
//! lease holder), retry with exponential backoff, dead-letter, cancel. Jobs that share a
//! partition key run one at a time, in the order they were enqueued.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Dialect, Store, StoreError, StoreResult, now_ms};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// Held by a worker under a lease.
    Running,
    Succeeded,
    /// The last attempt failed; it runs again at `run_at_ms`.
    Failed,
    /// Every attempt failed (or leases expired): dead-lettered.
    Dead,
    Cancelled,
}

impl JobState {
    pub const fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<JobState> {
        [
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Dead,
            JobState::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Whether the job will never change again.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Dead | JobState::Cancelled
        )
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, Serialize)]
pub struct NewJob {
    pub kind: String,
    /// The account the job works for: [`Store::enqueue`] and [`Store::create_analysis`] queue
    /// it only while the account exists, and erasing the account deletes its jobs.
    /// [`Store::enqueue_batch`] takes any tag here and checks nothing.
    pub owner: Option<String>,
    /// Jobs with the same key run one at a time, in enqueue order (an NCS stream).
    pub partition_key: Option<String>,
    /// The same key always names the same job.
    pub idempotency_key: Option<String>,
    /// Higher runs first.
    pub priority: i64,
    pub payload: serde_json::Value,
    pub max_attempts: i64,
    /// The payload is replaced by `{}` once the job is final (succeeded, dead or cancelled), so
    /// what it carried (an uploaded image) is not kept. Not supported by
    /// [`Store::enqueue_batch`].
    pub transient_payload: bool,
}

impl NewJob {
    pub fn new(kind: impl Into<String>, payload: serde_json::Value) -> NewJob {
        NewJob {
            kind: kind.into(),
            owner: None,
            partition_key: None,
            idempotency_key: None,
            priority: 0,
            payload,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            transient_payload: false,
        }
    }
}

/// Attempts before a job is dead-lettered, unless the job says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: i64 = 5;
/// First retry delay; each further attempt doubles it, up to [`MAX_BACKOFF_MS`].
pub const BASE_BACKOFF_MS: i64 = 1_000;
pub const MAX_BACKOFF_MS: i64 = 5 * 60 * 1_000;

/// The delay before attempt `attempts + 1`, after `attempts` failures.
pub fn backoff_ms(attempts: i64) -> i64 {
    let exponent = attempts.clamp(1, 20) - 1;
    (BASE_BACKOFF_MS << exponent).min(MAX_BACKOFF_MS)
}

/// A job as stored.
#[derive(Debug, Clone, Serialize)]
pub struct JobRecord {
    pub id: String,
    #[serde(skip)]
    pub seq: i64,
    pub kind: String,
    pub owner: Option<String>,
    pub partition_key: Option<String>,
    pub priority: i64,
    pub state: JobState,
    #[serde(skip)]
    pub payload: serde_json::Value,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at_ms: i64,
    pub locked_by: Option<String>,
    pub locked_until_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

const JOB_COLUMNS: &str = "seq, id, kind, owner, partition_key, priority, state, payload, result, error, attempts, max_attempts, run_at_ms, locked_by, locked_until_ms, created_at_ms, updated_at_ms, finished_at_ms";

fn job_from_row(row: &AnyRow) -> StoreResult<JobRecord> {
    let state: String = row.try_get("state")?;
    let payload: String = row.try_get("payload")?;
    let result: Option<String> = row.try_get("result")?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("job {what}"));
    let unreadable = |what: &'static str| {
        move |e: serde_json::Error| StoreError::Corrupt(format!("job {what}: {e}"))
    };
    Ok(JobRecord {
        seq: row.try_get("seq")?,
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        owner: row.try_get("owner")?,
        partition_key: row.try_get("partition_key")?,
        priority: row.try_get("priority")?,
        state: JobState::parse(&state).ok_or_else(|| corrupt("state"))?,
        payload: serde_json::from_str(&payload).map_err(unreadable("payload"))?,
        result: result
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(unreadable("result"))?,
        error: row.try_get("error")?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        run_at_ms: row.try_get("run_at_ms")?,
        locked_by: row.try_get("locked_by")?,
        locked_until_ms: row.try_get("locked_until_ms")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
        finished_at_ms: row.try_get("finished_at_ms")?,
    })
}

/// The rows of a JSON array bound as parameter `param`, and how to read field `f` of one.
struct JsonRows {
    from: String,
    field: fn(&str) -> String,
}

fn json_rows(dialect: Dialect, param: usize) -> JsonRows {
    match dialect {
        Dialect::Postgres => JsonRows {
            from: format!("json_array_elements(${param}::json) AS x"),
            field: |f| format!("(x->>'{f}')"),
        },
        Dialect::Sqlite => JsonRows {
            from: format!("json_each(${param}) AS x"),
            field: |f| format!("json_extract(x.value, '$.{f}')"),
        },
    }
}

/// A list of strings bound as one JSON parameter, usable after `IN`.
fn json_list(dialect: Dialect, param: usize) -> String {
    match dialect {
        Dialect::Postgres => format!("(SELECT json_array_elements_text(${param}::json))"),
        Dialect::Sqlite => format!("(SELECT value FROM json_each(${param}))"),
    }
}

/// Inserts `job` as `id` on `conn` (which may be inside a transaction); false when a job with
/// its idempotency key exists already. Workers are not woken: see [`Store::notify_enqueued`].
pub(crate) async fn insert_job(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    job: &NewJob,
    now: i64,
) -> StoreResult<bool> {
    let inserted = sqlx::query(
        "INSERT INTO jobs (id, kind, owner, partition_key, idempotency_key, priority, state, payload, attempts, max_attempts, run_at_ms, created_at_ms, updated_at_ms, transient_payload) \
         VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, 0, $8, $9, $9, $9, $10) ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(id)
    .bind(&job.kind)
    .bind(job.owner.as_deref())
    .bind(job.partition_key.as_deref())
    .bind(job.idempotency_key.as_deref())
    .bind(job.priority)
    .bind(job.payload.to_string())
    .bind(job.max_attempts.max(1))
    .bind(now)
    .bind(i64::from(job.transient_payload))
    .execute(&mut *conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The payload column once a job is final: `{}` for a transient payload.
const FINAL_PAYLOAD: &str = "payload = CASE WHEN transient_payload = 1 THEN '{}' ELSE payload END";

/// What the job at the head of its partition must satisfy to be claimed.
const READY: &str = "j.state IN ('queued', 'failed') AND j.run_at_ms <= $3 \
     AND (j.partition_key IS NULL OR NOT EXISTS (SELECT 1 FROM jobs p WHERE p.partition_key = j.partition_key \
     AND p.seq < j.seq AND p.state IN ('queued', 'failed', 'running')))";

impl Store {
    /// Enqueues a job, or returns the job already enqueued under its idempotency key.
    /// The flag says whether this call created it. A job with an owner is queued only while
    /// that account exists ([`StoreError::AccountGone`] otherwise, and nothing is queued).
    pub async fn enqueue(&self, job: &NewJob) -> StoreResult<(JobRecord, bool)> {
        let id = uuid::Uuid::now_v7().to_string();
        let created = match job.owner.as_deref() {
            Some(owner) => {
                let mut tx = self.begin_write().await?;
                self.hold_account(&mut tx, owner).await?;
                let created = insert_job(&mut tx, &id, job, now_ms()).await?;
                tx.commit().await?;
                created
            }
            None => {
                let mut conn = self.pool.acquire().await?;
                insert_job(&mut conn, &id, job, now_ms()).await?
            }
        };
        let record = if created {
            self.notify_enqueued(&job.kind).await;
            self.job(&id).await?
        } else {
            let key = job.idempotency_key.as_deref().unwrap_or_default();
            let row = sqlx::query(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE idempotency_key = $1"
            ))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(job_from_row).transpose()?
        };
        Ok((record.ok_or(StoreError::NotFound)?, created))
    }

    /// Enqueues many jobs in one statement (no idempotency keys; owners are not checked against
    /// accounts: bulk loads, the queue benchmark); returns how many.
    pub async fn enqueue_batch(&self, jobs: &[NewJob]) -> StoreResult<u64> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let now = now_ms();
        let rows: Vec<serde_json::Value> = jobs
            .iter()
            .map(|job| {
                serde_json::json!({
                    "id": uuid::Uuid::now_v7().to_string(),
                    "kind": job.kind,
                    "owner": job.owner,
                    "partition_key": job.partition_key,
                    "priority": job.priority,
                    "payload": job.payload.to_string(),
                    "max_attempts": job.max_attempts.max(1),
                })
            })
            .collect();
        let JsonRows { from, field } = json_rows(self.dialect, 1);
        let int = |f: &str| match self.dialect {
            Dialect::Postgres => format!("{}::bigint", field(f)),
            Dialect::Sqlite => field(f),
        };
        let sql = format!(
            "INSERT INTO jobs (id, kind, owner, partition_key, priority, state, payload, attempts, max_attempts, run_at_ms, created_at_ms, updated_at_ms) \
             SELECT {}, {}, {}, {}, {}, 'queued', {}, 0, {}, $2, $2, $2 FROM {from}",
            field("id"),
            field("kind"),
            field("owner"),
            field("partition_key"),
            int("priority"),
            field("payload"),
            int("max_attempts"),
        );
        let done = sqlx::query(&sql)
            .bind(serde_json::Value::Array(rows).to_string())
            .bind(now)
            .execute(&self.pool)
            .await?;
        for kind in jobs
            .iter()
            .map(|j| j.kind.as_str())
            .collect::<std::collections::BTreeSet<_>>()
        {
            self.notify_enqueued(kind).await;
        }
        Ok(done.rows_affected())
    }

    /// Wakes idle workers: in this process at once, elsewhere through Postgres `NOTIFY`.
    pub(crate) async fn notify_enqueued(&self, kind: &str) {
        self.signals.enqueued.notify_waiters();
        if self.dialect == Dialect::Postgres {
            let _ = sqlx::query("SELECT pg_notify('h200_jobs', $1)")
                .bind(kind)
                .execute(&self.pool)
                .await;
        }
    }

    pub async fn job(&self, id: &str) -> StoreResult<Option<JobRecord>> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// Jobs of one kind, newest first; only `owner`'s when given.
    pub async fn list_jobs(
        &self,
        kind: &str,
        owner: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> StoreResult<Vec<JobRecord>> {
        let rows = match owner {
            Some(owner) => {
                sqlx::query(&format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE kind = $1 AND owner = $2 ORDER BY seq DESC LIMIT $3 OFFSET $4"
                ))
                .bind(kind)
                .bind(owner)
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE kind = $1 ORDER BY seq DESC LIMIT $2 OFFSET $3"))
                    .bind(kind)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(job_from_row).collect()
    }

    /// Claims up to `limit` ready jobs of `kinds` for `worker` for `lease_ms`: each is the head of
    /// its partition, highest priority first, then oldest. Two workers never get the same job.
    pub async fn claim(
        &self,
        worker: &str,
        kinds: &[&str],
        limit: i64,
        lease_ms: i64,
    ) -> StoreResult<Vec<JobRecord>> {
        let now = now_ms();
        let lock = match self.dialect {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let sql = format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_by = $1, locked_until_ms = $2, updated_at_ms = $3 \
             WHERE id IN (SELECT j.id FROM jobs j WHERE {READY} AND j.kind IN {kinds} ORDER BY j.priority DESC, j.seq LIMIT $5{lock}) \
             RETURNING {JOB_COLUMNS}",
            kinds = json_list(self.dialect, 4),
        );
        let rows = sqlx::query(&sql)
            .bind(worker)
            .bind(now + lease_ms)
            .bind(now)
            .bind(serde_json::to_string(kinds).expect("strings serialize; this is a bug"))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut jobs = rows
            .iter()
            .map(job_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        jobs.sort_by_key(|j| (-j.priority, j.seq));
        Ok(jobs)
    }

    /// Extends the leases `worker` holds on `ids`; returns how many it still held.
    pub async fn extend_leases(
        &self,
        worker: &str,
        ids: &[String],
        lease_ms: i64,
    ) -> StoreResult<u64> {
        let sql = format!(
            "UPDATE jobs SET locked_until_ms = $1 WHERE locked_by = $2 AND state = 'running' AND id IN {}",
            json_list(self.dialect, 3)
        );
        let done = sqlx::query(&sql)
            .bind(now_ms() + lease_ms)
            .bind(worker)
            .bind(serde_json::to_string(ids).expect("strings serialize; this is a bug"))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Records success, only if `worker` still holds the lease; with `stream_state`, the
    /// partition's state is saved in the same transaction. False when the lease was lost (the
    /// job went back to the queue and may already run elsewhere): nothing is written.
    pub async fn complete(
        &self,
        worker: &str,
        id: &str,
        result: &serde_json::Value,
        stream_state: Option<(&str, &str)>,
    ) -> StoreResult<bool> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            &format!("UPDATE jobs SET state = 'succeeded', result = $1, error = NULL, locked_until_ms = NULL, finished_at_ms = $2, updated_at_ms = $2, {FINAL_PAYLOAD} \
             WHERE id = $3 AND locked_by = $4 AND state = 'running'"),
        )
        .bind(result.to_string())
        .bind(now)
        .bind(id)
        .bind(worker)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        if let Some((key, state)) = stream_state {
            sqlx::query(
                "INSERT INTO stream_states (stream_key, state, version, updated_at_ms) VALUES ($1, $2, 1, $3) \
                 ON CONFLICT (stream_key) DO UPDATE SET state = excluded.state, version = stream_states.version + 1, updated_at_ms = excluded.updated_at_ms",
            )
            .bind(key)
            .bind(state)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.signals.finished.notify_waiters();
        Ok(true)
    }

    /// Records success for many jobs of `worker` in one statement; returns how many it still held.
    pub async fn complete_batch(
        &self,
        worker: &str,
        results: &[(String, serde_json::Value)],
    ) -> StoreResult<u64> {
        if results.is_empty() {
            return Ok(0);
        }
        let rows: Vec<serde_json::Value> = results
            .iter()
            .map(|(id, result)| serde_json::json!({ "id": id, "result": result.to_string() }))
            .collect();
        let sql = match self.dialect {
            Dialect::Postgres => format!(
                "UPDATE jobs SET state = 'succeeded', result = v.result, error = NULL, locked_until_ms = NULL, finished_at_ms = $1, updated_at_ms = $1, {FINAL_PAYLOAD} \
                 FROM (SELECT x->>'id' AS id, x->>'result' AS result FROM json_array_elements($3::json) AS x) AS v \
                 WHERE jobs.id = v.id AND jobs.locked_by = $2 AND jobs.state = 'running'"
            ),
            Dialect::Sqlite => format!(
                "UPDATE jobs SET state = 'succeeded', \
                 result = (SELECT json_extract(x.value, '$.result') FROM json_each($3) AS x WHERE json_extract(x.value, '$.id') = jobs.id), \
                 error = NULL, locked_until_ms = NULL, finished_at_ms = $1, updated_at_ms = $1, {FINAL_PAYLOAD} \
                 WHERE id IN (SELECT json_extract(x.value, '$.id') FROM json_each($3) AS x) AND locked_by = $2 AND state = 'running'"
            ),
        };
        let done = sqlx::query(&sql)
            .bind(now_ms())
            .bind(worker)
            .bind(serde_json::Value::Array(rows).to_string())
            .execute(&self.pool)
            .await?;
        self.signals.finished.notify_waiters();
        Ok(done.rows_affected())
    }

    /// Records a failed attempt by the lease holder: back to the queue after a backoff, or
    /// dead-lettered once attempts are spent. `None` when the lease was already lost.
    pub async fn fail(&self, worker: &str, id: &str, error: &str) -> StoreResult<Option<JobState>> {
        self.record_failure(worker, id, error, false).await
    }

    /// Dead-letters a job at once: its payload can never succeed.
    pub async fn dead_letter(
        &self,
        worker: &str,
        id: &str,
        error: &str,
    ) -> StoreResult<Option<JobState>> {
        self.record_failure(worker, id, error, true).await
    }

    async fn record_failure(
        &self,
        worker: &str,
        id: &str,
        error: &str,
        permanent: bool,
    ) -> StoreResult<Option<JobState>> {
        let Some(job) = self.job(id).await? else {
            return Ok(None);
        };
        let now = now_ms();
        let next = if permanent || job.attempts >= job.max_attempts {
            JobState::Dead
        } else {
            JobState::Failed
        };
        let finished = (next == JobState::Dead).then_some(now);
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, error = $2, locked_by = NULL, locked_until_ms = NULL, run_at_ms = $3, finished_at_ms = $4, updated_at_ms = $5, \
             payload = CASE WHEN transient_payload = 1 AND $1 = 'dead' THEN '{}' ELSE payload END \
             WHERE id = $6 AND locked_by = $7 AND state = 'running'",
        )
        .bind(next.as_str())
        .bind(error.chars().take(1000).collect::<String>())
        .bind(now + backoff_ms(job.attempts))
        .bind(finished)
        .bind(now)
        .bind(id)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        if next == JobState::Dead {
            self.signals.finished.notify_waiters();
        }
        Ok(Some(next))
    }

    /// Returns jobs whose lease expired (their worker died or hung) to the queue, or to the
    /// dead letters when their attempts are spent. Returns how many.
    pub async fn requeue_expired(&self) -> StoreResult<u64> {
        let now = now_ms();
        let expired = sqlx::query("SELECT id, attempts, max_attempts FROM jobs WHERE state = 'running' AND locked_until_ms < $1")
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        let mut moved = 0;
        for row in expired {
            let id: String = row.try_get("id")?;
            let attempts: i64 = row.try_get("attempts")?;
            let max_attempts: i64 = row.try_get("max_attempts")?;
            let next = if attempts >= max_attempts {
                JobState::Dead
            } else {
                JobState::Failed
            };
            let done = sqlx::query(
                "UPDATE jobs SET state = $1, error = 'lease expired', locked_by = NULL, locked_until_ms = NULL, run_at_ms = $2, finished_at_ms = $3, updated_at_ms = $4, \
                 payload = CASE WHEN transient_payload = 1 AND $1 = 'dead' THEN '{}' ELSE payload END \
                 WHERE id = $5 AND state = 'running' AND locked_until_ms < $4",
            )
            .bind(next.as_str())
            // A dead worker says nothing about the job itself: retry after the base delay.
            .bind(now + BASE_BACKOFF_MS)
            .bind((next == JobState::Dead).then_some(now))
            .bind(now)
            .bind(&id)
            .execute(&self.pool)
            .await?;
            moved += done.rows_affected();
        }
        if moved > 0 {
            self.signals.enqueued.notify_waiters();
        }
        Ok(moved)
    }

    /// Cancels a job that has not started; false when it is running or finished.
    pub async fn cancel_job(&self, id: &str) -> StoreResult<bool> {
        let now = now_ms();
        let done = sqlx::query(&format!(
            "UPDATE jobs SET state = 'cancelled', finished_at_ms = $1, updated_at_ms = $1, {FINAL_PAYLOAD} WHERE id = $2 AND state IN ('queued', 'failed')",
        ))
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            self.signals.finished.notify_waiters();
        }
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a finished or waiting job; false when it is running.
    pub async fn delete_job(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM jobs WHERE id = $1 AND state <> 'running'")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Counts jobs by state, for metrics and tests.
    pub async fn job_counts(&self) -> StoreResult<Vec<(JobState, i64)>> {
        let rows =
            sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state ORDER BY state")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                let state: String = row.try_get("state")?;
                Ok((
                    JobState::parse(&state)
                        .ok_or_else(|| StoreError::Corrupt("job state".into()))?,
                    row.try_get("n")?,
                ))
            })
            .collect()
    }

    /// The saved state of a partition (an NCS stream) and its version.
    pub async fn stream_state(&self, key: &str) -> StoreResult<Option<(String, i64)>> {
        let row = sqlx::query("SELECT state, version FROM stream_states WHERE stream_key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| Ok((row.try_get("state")?, row.try_get("version")?)))
            .transpose()
    }

    /// The saved partitions (NCS streams) whose key starts with `prefix`, in key order: each
    /// key, its version, when it was last saved and the size of its saved state in bytes.
    pub async fn stream_states_with_prefix(
        &self,
        prefix: &str,
    ) -> StoreResult<Vec<(String, i64, i64, i64)>> {
        // substr, not LIKE: a prefix may hold `%` or `_`.
        let rows = sqlx::query(
            "SELECT stream_key, version, updated_at_ms, CAST(length(state) AS BIGINT) AS size \
             FROM stream_states WHERE substr(stream_key, 1, CAST($1 AS INTEGER)) = $2 \
             ORDER BY stream_key",
        )
        .bind(prefix.chars().count() as i64)
        .bind(prefix)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("stream_key")?,
                    row.try_get("version")?,
                    row.try_get("updated_at_ms")?,
                    row.try_get::<i64, _>("size")?,
                ))
            })
            .collect()
    }

    /// How many jobs of a partition are in `state`.
    pub async fn count_partition_jobs(&self, partition: &str, state: JobState) -> StoreResult<i64> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE partition_key = $1 AND state = $2")
                .bind(partition)
                .bind(state.as_str())
                .fetch_one(&self.pool)
                .await?;
        Ok(row.try_get("n")?)
    }

    /// Forgets the saved state of a partition; whether there was one.
    pub async fn delete_stream_state(&self, key: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM stream_states WHERE stream_key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// A wake-up for the next enqueue in this process, armed from this call on: an enqueue that
    /// lands before it is awaited (while its holder looks for work) still wakes it.
    pub fn enqueued_signal(&self) -> std::pin::Pin<Box<tokio::sync::futures::Notified<'_>>> {
        let mut signal = Box::pin(self.signals.enqueued.notified());
        signal.as_mut().enable();
        signal
    }

    /// Waits until a job may have finished (in this process) or `timeout` passes.
    pub async fn wait_finished(&self, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, self.signals.finished.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_ms(1), 1_000);
        assert_eq!(backoff_ms(2), 2_000);
        assert_eq!(backoff_ms(4), 8_000);
        assert_eq!(backoff_ms(30), MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(0), 1_000);
    }
}
