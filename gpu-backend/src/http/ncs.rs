//! The NeuroCluster Streamer API: `POST /api/v1/process_points` queues the points as a job of
//! the caller's stream and answers when a worker has run it; `GET /api/v1/clusters_summary` and
//! `GET /api/v1/algorithm_status` read the stream's saved state.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use shared::ErrorCode;
use shared::body::{ProcessPointsRequest, parse_valid};

use super::SharedState;
use super::error::{ApiError, ApiQuery, ApiResult, internal};
use super::gate::Caller;
use super::jobs::wait_for_job;
use crate::store::jobs::{JobState, NewJob};
use kernel::job_refusal;
use kernel::ncs::{NCS_KIND, NcsJob};
use ncs::StreamRecord;

/// The stream a request names when it names none.
pub const DEFAULT_STREAM: &str = "default";
/// How long `process_points` waits for its job unless the request says otherwise.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// Streams are private to their owner: the partition key joins both.
fn stream_key(owner: &str, stream: &str) -> String {
    format!("ncs:{owner}:{stream}")
}

fn check_stream_name(stream: &str) -> ApiResult<()> {
    let ok = (1..=64).contains(&stream.len())
        && stream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            ErrorCode::ValidationFailed,
            "stream",
            "must be 1 to 64 of [A-Za-z0-9_.:-]",
        ))
    }
}

/// `POST /api/v1/process_points`.
pub async fn process_points(
    State(state): State<SharedState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Response> {
    let request: ProcessPointsRequest = parse_valid(&body)?;
    let stream = request
        .stream
        .clone()
        .unwrap_or_else(|| DEFAULT_STREAM.to_owned());
    let overrides = request.algorithm_params.unwrap_or_default();
    let payload = NcsJob {
        stream: stream.clone(),
        points: request
            .points
            .iter()
            .map(|p| p.iter().map(|&v| v as f32).collect())
            .collect(),
        overrides,
    };
    let owner = caller.principal.subject.clone();
    let mut job = NewJob::new(
        NCS_KIND,
        serde_json::to_value(&payload).map_err(internal("serializing an NCS job"))?,
    );
    job.owner = Some(owner.clone());
    job.partition_key = Some(stream_key(&owner, &stream));
    job.max_attempts = 3;
    let (job, _) = state.store.enqueue(&job).await?;
    let timeout = Duration::from_millis(request.timeout.unwrap_or(DEFAULT_TIMEOUT_MS));
    let finished = wait_for_job(&state.store, &job.id, timeout)
        .await?
        .ok_or_else(|| {
            ApiError::internal(
                "waiting for an NCS job",
                &format_args!("job {} vanished from the queue", job.id),
            )
        })?;
    match finished.state {
        JobState::Succeeded => {
            let mut result = finished.result.unwrap_or_default();
            if let Some((code, detail)) = job_refusal(&result) {
                let code = ErrorCode::from_name(&code).unwrap_or(ErrorCode::ValidationFailed);
                return Err(ApiError::detail(code, detail));
            }
            result["request_id"] = json!(caller.request_id);
            result["job_id"] = json!(finished.id);
            Ok(Json(result).into_response())
        }
        JobState::Dead | JobState::Cancelled => Err(ApiError::detail(
            ErrorCode::ServiceUnavailable,
            format!("job {} could not be processed", finished.id),
        )),
        _ => {
            // Not an error of the caller's: the job stays queued and will still update the stream.
            Err(ApiError::detail(
                ErrorCode::UpstreamTimeout,
                format!(
                    "job {} did not finish within {} ms; it is still queued",
                    finished.id,
                    timeout.as_millis()
                ),
            ))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryQuery {
    #[serde(default)]
    stream: Option<String>,
    /// Only clusters with at least this many updates.
    #[serde(default)]
    min_size: Option<u64>,
    /// Only clusters of this status: healthy, warning, critical or inactive.
    #[serde(default)]
    health_status: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    offset: Option<usize>,
}

async fn load_stream(
    state: &SharedState,
    owner: &str,
    stream: &str,
) -> ApiResult<Option<StreamRecord>> {
    check_stream_name(stream)?;
    let Some((saved, _)) = state.store.stream_state(&stream_key(owner, stream)).await? else {
        return Ok(None);
    };
    serde_json::from_str(&saved)
        .map(Some)
        .map_err(internal("reading a saved stream state"))
}

/// `GET /api/v1/clusters_summary`.
pub async fn clusters_summary(
    State(state): State<SharedState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<SummaryQuery>,
) -> ApiResult<Response> {
    let stream = query.stream.unwrap_or_else(|| DEFAULT_STREAM.to_owned());
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::field(
            ErrorCode::ValidationFailed,
            "limit",
            "must be 1 to 1000",
        ));
    }
    if let Some(status) = query.health_status.as_deref()
        && !matches!(status, "healthy" | "warning" | "critical" | "inactive")
    {
        return Err(ApiError::field(
            ErrorCode::ValidationFailed,
            "health_status",
            "must be healthy, warning, critical or inactive",
        ));
    }
    let record = load_stream(&state, &caller.principal.subject, &stream).await?;
    let clusters = record
        .as_ref()
        .map(|r| r.stream.clusters_summary())
        .unwrap_or_default();
    let matching: Vec<_> = clusters
        .into_iter()
        .filter(|c| query.min_size.is_none_or(|min| c.update_count >= min))
        .filter(|c| {
            query.health_status.as_deref().is_none_or(|s| {
                serde_json::to_value(c.health_status)
                    .ok()
                    .and_then(|v| v.as_str().map(|v| v == s))
                    == Some(true)
            })
        })
        .collect();
    let total = matching.len();
    let page: Vec<_> = matching
        .into_iter()
        .skip(query.offset.unwrap_or(0))
        .take(limit)
        .map(|c| {
            json!({
                "cluster_id": c.id,
                "centroid": c.centroid,
                "confidence": c.confidence,
                "age": c.age,
                "update_count": c.update_count,
                "health_score": c.health_score,
                "health_status": c.health_status,
                "last_updated": c.last_updated,
            })
        })
        .collect();
    Ok(Json(json!({
        "stream": stream,
        "clusters_info": page,
        "total_clusters": total,
        "limit": limit,
        "offset": query.offset.unwrap_or(0),
        "request_id": caller.request_id,
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusQuery {
    #[serde(default)]
    stream: Option<String>,
}

/// `GET /api/v1/algorithm_status`.
pub async fn algorithm_status(
    State(state): State<SharedState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<StatusQuery>,
) -> ApiResult<Response> {
    let stream = query.stream.unwrap_or_else(|| DEFAULT_STREAM.to_owned());
    let Some(record) = load_stream(&state, &caller.principal.subject, &stream).await? else {
        return Err(ApiError::detail(
            ErrorCode::NotFound,
            format!("no stream named {stream} yet"),
        ));
    };
    let stats = record.stream.stats();
    let metrics = record.stream.metrics();
    let throughput = if record.processing_secs > 0.0 {
        stats.points_processed as f64 / record.processing_secs
    } else {
        0.0
    };
    Ok(Json(json!({
        "stream": stream,
        "current_threshold": metrics.current_threshold,
        "clustering_quality": metrics.clustering_quality,
        "global_stability": metrics.global_stability,
        "adaptation_rate": metrics.adaptation_rate,
        "points_processed": stats.points_processed,
        "outliers_detected": stats.outliers,
        "clusters": stats.clusters,
        "clusters_created": stats.clusters_created,
        "clusters_merged": stats.clusters_merged,
        "clusters_dropped": stats.clusters_dropped,
        "dimension": stats.dimension,
        "jobs": record.jobs,
        "throughput_points_per_second": throughput,
        "latency_us_per_point": {
            "p50": record.latency_percentile(50.0),
            "p95": record.latency_percentile(95.0),
            "p99": record.latency_percentile(99.0),
        },
        "request_id": caller.request_id,
    }))
    .into_response())
}
