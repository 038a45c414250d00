//! Job results over HTTP: the public view of a queued job and the `?wait=SECONDS` long poll used
//! on submit and on get.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiResult;
use crate::store::Store;
use crate::store::jobs::{JobRecord, JobState};

/// Longest long poll a client may ask for.
pub const MAX_WAIT_SECS: u64 = 60;
/// How often a long poll re-reads a job finished by a worker in another process.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// `?wait=SECONDS`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    #[serde(default)]
    pub wait: Option<u64>,
}

/// A job as clients see it.
pub fn job_view(job: &JobRecord) -> Value {
    let status = match job.state {
        JobState::Queued | JobState::Failed => "pending",
        JobState::Running => "processing",
        JobState::Succeeded => "completed",
        JobState::Dead => "failed",
        JobState::Cancelled => "cancelled",
    };
    json!({
        "id": job.id,
        "kind": job.kind,
        "status": status,
        "state": job.state,
        "attempts": job.attempts,
        "result": job.result,
        "error": if job.state == JobState::Dead { job.error.clone() } else { None },
        "created_at_ms": job.created_at_ms,
        "finished_at_ms": job.finished_at_ms,
    })
}

/// Reads job `id`, waiting up to `wait` (capped at [`MAX_WAIT_SECS`]) for it to finish.
pub async fn wait_for_job(store: &Store, id: &str, wait: Duration) -> ApiResult<Option<JobRecord>> {
    let deadline = tokio::time::Instant::now() + wait.min(Duration::from_secs(MAX_WAIT_SECS));
    loop {
        let job = store.job(id).await?;
        match &job {
            Some(j) if !j.state.is_final() && tokio::time::Instant::now() < deadline => {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                store.wait_finished(left.min(POLL_INTERVAL)).await;
            }
            _ => return Ok(job),
        }
    }
}
