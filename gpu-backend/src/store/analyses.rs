//! Image analyses. An analysis is a caller's request; the work is an `analysis` job, whose result
//! the analysis reads. Identical requests (same owner, image, options and rules) within the reuse
//! window share one job instead of running the detector again.

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::jobs::{JobState, NewJob, insert_job};
use super::{Store, StoreError, StoreResult, now_ms};

/// An analysis to record.
#[derive(Debug, Clone)]
pub struct NewAnalysis {
    pub owner: String,
    /// SHA-256 over owner, image, options and rules: equal keys give equal results.
    pub cache_key: String,
    pub image_sha256: String,
    /// `image/jpeg`, `image/png` or `image/webp`, as sniffed.
    pub image_type: String,
    pub image_width: u32,
    pub image_height: u32,
    pub image_bytes: usize,
    /// The analysis options, as JSON.
    pub options: Value,
}

/// An analysis with the state of its job.
#[derive(Debug, Clone, Serialize)]
pub struct AnalysisRecord {
    pub id: String,
    pub owner: String,
    pub job_id: String,
    /// Whether the result is another request's, reused.
    pub reused: bool,
    pub image_sha256: String,
    pub image_type: String,
    pub image_width: i64,
    pub image_height: i64,
    pub image_bytes: i64,
    pub options: Value,
    /// The uploaded image sealed at rest (base64), when retention is on.
    #[serde(skip)]
    pub sealed_image: Option<String>,
    pub feedback: Option<Value>,
    pub feedback_at_ms: Option<i64>,
    pub created_at_ms: i64,
    /// The job's state; `None` when the job is gone.
    pub job_state: Option<JobState>,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub finished_at_ms: Option<i64>,
}

/// What deleting an analysis did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The analysis is gone (and its job, when no other analysis shares it).
    Done,
    /// There is no such analysis.
    Missing,
    /// Its job is running right now and shared by no other analysis: nothing was deleted.
    Busy,
}

const ANALYSIS_COLUMNS: &str = "a.id, a.owner, a.job_id, a.reused, a.image_sha256, a.image_type, a.image_width, a.image_height, a.image_bytes, a.options, a.sealed_image, a.feedback, a.feedback_at_ms, a.created_at_ms, \
     j.state AS job_state, j.result AS job_result, j.error AS job_error, j.finished_at_ms AS job_finished_at_ms";

const FROM_ANALYSES: &str = "analyses a LEFT JOIN jobs j ON j.id = a.job_id";

fn analysis_from_row(row: &AnyRow) -> StoreResult<AnalysisRecord> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("analysis {what}"));
    let json = |text: Option<String>, what: &str| {
        text.map(|t| serde_json::from_str::<Value>(&t))
            .transpose()
            .map_err(|e| corrupt(&format!("{what}: {e}")))
    };
    let options: String = row.try_get("options")?;
    let state: Option<String> = row.try_get("job_state")?;
    let reused: i64 = row.try_get("reused")?;
    Ok(AnalysisRecord {
        id: row.try_get("id")?,
        owner: row.try_get("owner")?,
        job_id: row.try_get("job_id")?,
        reused: reused != 0,
        image_sha256: row.try_get("image_sha256")?,
        image_type: row.try_get("image_type")?,
        image_width: row.try_get("image_width")?,
        image_height: row.try_get("image_height")?,
        image_bytes: row.try_get("image_bytes")?,
        options: serde_json::from_str(&options).map_err(|e| corrupt(&format!("options: {e}")))?,
        sealed_image: row.try_get("sealed_image")?,
        feedback: json(row.try_get("feedback")?, "feedback")?,
        feedback_at_ms: row.try_get("feedback_at_ms")?,
        created_at_ms: row.try_get("created_at_ms")?,
        job_state: state
            .map(|s| JobState::parse(&s).ok_or_else(|| corrupt("job state")))
            .transpose()?,
        result: json(row.try_get("job_result")?, "result")?,
        error: row.try_get("job_error")?,
        finished_at_ms: row.try_get("job_finished_at_ms")?,
    })
}

impl Store {
    /// Records `analysis` as `id`. When a job with the same cache key was enqueued at or after
    /// `reuse_since_ms` and has not failed for good, the analysis shares it; otherwise `job` is
    /// enqueued in the same transaction. `sealed_image` is the image sealed at rest, when images
    /// are retained. The returned analysis says whether it shares an earlier job (`reused`).
    /// [`StoreError::AccountGone`] when the owner's account is not there (erased meanwhile):
    /// nothing is written.
    pub async fn create_analysis(
        &self,
        id: &str,
        analysis: &NewAnalysis,
        job: &NewJob,
        reuse_since_ms: i64,
        sealed_image: Option<String>,
    ) -> StoreResult<AnalysisRecord> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        self.hold_account(&mut tx, &analysis.owner).await?;
        let shared: Option<String> = sqlx::query_scalar(
            "SELECT a.job_id FROM analyses a JOIN jobs j ON j.id = a.job_id \
             WHERE a.cache_key = $1 AND j.created_at_ms >= $2 AND j.state IN ('queued', 'running', 'failed', 'succeeded') \
             ORDER BY j.created_at_ms DESC LIMIT 1",
        )
        .bind(&analysis.cache_key)
        .bind(reuse_since_ms)
        .fetch_optional(&mut *tx)
        .await?;
        let reused = shared.is_some();
        let job_id = match shared {
            Some(job_id) => job_id,
            None => {
                let job_id = uuid::Uuid::now_v7().to_string();
                insert_job(&mut tx, &job_id, job, now).await?;
                job_id
            }
        };
        sqlx::query(
            "INSERT INTO analyses (id, owner, job_id, cache_key, reused, image_sha256, image_type, image_width, image_height, image_bytes, options, sealed_image, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(id)
        .bind(&analysis.owner)
        .bind(&job_id)
        .bind(&analysis.cache_key)
        .bind(i64::from(reused))
        .bind(&analysis.image_sha256)
        .bind(&analysis.image_type)
        .bind(i64::from(analysis.image_width))
        .bind(i64::from(analysis.image_height))
        .bind(analysis.image_bytes as i64)
        .bind(analysis.options.to_string())
        .bind(sealed_image)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if !reused {
            self.notify_enqueued(&job.kind).await;
        }
        self.analysis(id).await?.ok_or(StoreError::NotFound)
    }

    pub async fn analysis(&self, id: &str) -> StoreResult<Option<AnalysisRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {ANALYSIS_COLUMNS} FROM {FROM_ANALYSES} WHERE a.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(analysis_from_row).transpose()
    }

    /// Analyses, newest first, only `owner`'s when given; and how many there are in all.
    pub async fn list_analyses(
        &self,
        owner: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> StoreResult<(Vec<AnalysisRecord>, i64)> {
        let (condition, first) = match owner {
            Some(_) => ("a.owner = $1", 2),
            None => ("1 = 1", 1),
        };
        let sql = format!(
            "SELECT {ANALYSIS_COLUMNS} FROM {FROM_ANALYSES} WHERE {condition} ORDER BY a.created_at_ms DESC, a.id DESC LIMIT ${first} OFFSET ${}",
            first + 1
        );
        let mut query = sqlx::query(&sql);
        if let Some(owner) = owner {
            query = query.bind(owner);
        }
        let rows = query.bind(limit).bind(offset).fetch_all(&self.pool).await?;
        let sql = format!("SELECT COUNT(*) FROM analyses a WHERE {condition}");
        let mut count = sqlx::query_scalar(&sql);
        if let Some(owner) = owner {
            count = count.bind(owner);
        }
        let total: i64 = count.fetch_one(&self.pool).await?;
        Ok((
            rows.iter()
                .map(analysis_from_row)
                .collect::<StoreResult<_>>()?,
            total,
        ))
    }

    /// Deletes analysis `id`, and its job when no other analysis shares it. A job that is
    /// running and not shared makes it [`Deleted::Busy`], and nothing is written.
    pub async fn delete_analysis(&self, id: &str) -> StoreResult<Deleted> {
        let mut tx = self.begin_write().await?;
        let job_id: Option<String> =
            sqlx::query_scalar("SELECT job_id FROM analyses WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(job_id) = job_id else {
            return Ok(Deleted::Missing);
        };
        let sharing: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM analyses WHERE job_id = $1 AND id <> $2")
                .bind(&job_id)
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        if sharing == 0 {
            let state: Option<String> = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
                .bind(&job_id)
                .fetch_optional(&mut *tx)
                .await?;
            if state.as_deref() == Some(JobState::Running.as_str()) {
                return Ok(Deleted::Busy);
            }
            let gone = sqlx::query("DELETE FROM jobs WHERE id = $1 AND state <> 'running'")
                .bind(&job_id)
                .execute(&mut *tx)
                .await?;
            if state.is_some() && gone.rows_affected() == 0 {
                // A worker claimed it between the two statements.
                return Ok(Deleted::Busy);
            }
        }
        sqlx::query("DELETE FROM analyses WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Deleted::Done)
    }

    /// Records the owner's feedback on analysis `id` (replacing earlier feedback); false when
    /// there is no such analysis.
    pub async fn record_analysis_feedback(&self, id: &str, feedback: &Value) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE analyses SET feedback = $1, feedback_at_ms = $2 WHERE id = $3")
                .bind(feedback.to_string())
                .bind(now_ms())
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }
}
