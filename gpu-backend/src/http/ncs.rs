//! The NeuroCluster Streamer API: `POST /api/v1/process_points` queues the points as a job of
//! the caller's stream and answers when a worker has run it (`GET /api/v1/jobs/{id}` answers it
//! later when it outran its `timeout`); `GET /api/v1/clusters_summary` and
//! `GET /api/v1/algorithm_status` read the stream's saved state; `GET /api/v1/streams` and
//! `DELETE /api/v1/streams/{stream}` list and reset the caller's streams.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use shared::ErrorCode;
use shared::body::{ProcessPointsRequest, parse_valid};

use super::SharedState;
use super::error::{ApiError, ApiQuery, ApiResult, internal};
use super::gate::Caller;
use super::jobs::wait_for_job;
use crate::store::StoreError;
use crate::store::jobs::{JobRecord, JobState, NewJob};
use kernel::job_refusal;
use kernel::ncs::{NCS_KIND, NcsJob};
use ncs::StreamRecord;
use shared::route_policy::ContentKind;

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
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !body.is_empty() && declared.is_some_and(|t| ContentKind::of(t) != Some(ContentKind::Json)) {
        return Err(ApiError::detail(
            ErrorCode::UnsupportedMediaType,
            "send application/json",
        ));
    }
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
        batch_mode: request.batch_mode.unwrap_or(false),
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
    let timeout = Duration::from_millis(request.timeout_ms().unwrap_or(DEFAULT_TIMEOUT_MS));
    let Some(finished) = wait_for_job(&state.store, &job.id, timeout).await? else {
        return Err(vanished(&state, &owner, &job.id).await);
    };
    match finished.state {
        JobState::Succeeded | JobState::Dead | JobState::Cancelled => {
            finished_answer(finished, &caller.request_id).map(|mut answer| {
                echo_points(&mut answer, &request.points);
                Json(answer).into_response()
            })
        }
        _ => {
            // Not an error of the caller's: the job stays queued and will still update the stream.
            // The problem's `instance` is where its result will be.
            let mut error = ApiError::detail(
                ErrorCode::UpstreamTimeout,
                format!(
                    "job {} did not finish within {} ms; it is still queued, and \
                     GET /api/v1/jobs/{} answers its result",
                    finished.id,
                    timeout.as_millis(),
                    finished.id
                ),
            );
            error.problem.instance = Some(format!("/api/v1/jobs/{}", finished.id));
            Err(error)
        }
    }
}

/// Puts the caller's own numbers into the points an answer echoes (`outliers`, each cluster's
/// `points`): the job carries them as f32, and 10.1 should come back as 10.1.
fn echo_points(answer: &mut serde_json::Value, points: &[Vec<f64>]) {
    let labels: Vec<Option<u64>> = answer["results"]
        .as_array()
        .map(|results| results.iter().map(|r| r["cluster_id"].as_u64()).collect())
        .unwrap_or_default();
    if labels.len() != points.len() {
        return;
    }
    if let Some(indices) = answer["outlier_indices"].as_array() {
        let outliers: Vec<&Vec<f64>> = indices
            .iter()
            .filter_map(|i| points.get(i.as_u64()? as usize))
            .collect();
        answer["outliers"] = json!(outliers);
    }
    if let Some(clusters) = answer["clusters"].as_array_mut() {
        for cluster in clusters {
            let id = cluster["id"].as_u64();
            let members: Vec<&Vec<f64>> = labels
                .iter()
                .zip(points)
                .filter(|(label, _)| label.is_some() && **label == id)
                .map(|(_, point)| point)
                .collect();
            cluster["points"] = json!(members);
        }
    }
}

/// The answer of a finished `ncs` job: its result with the request id, or the problem the
/// kernel refused its points with, or 503 when it could not be processed.
fn finished_answer(finished: JobRecord, request_id: &str) -> ApiResult<serde_json::Value> {
    match finished.state {
        JobState::Succeeded => {
            let mut result = finished.result.unwrap_or_default();
            if let Some((code, detail)) = job_refusal(&result) {
                let code = ErrorCode::from_name(&code).unwrap_or(ErrorCode::ValidationFailed);
                return Err(ApiError::detail(code, detail));
            }
            result["request_id"] = json!(request_id);
            result["job_id"] = json!(finished.id);
            Ok(result)
        }
        _ => Err(ApiError::detail(
            ErrorCode::ServiceUnavailable,
            format!("job {} could not be processed", finished.id),
        )),
    }
}

/// `GET /api/v1/jobs/{id}`: the result of a `process_points` job, for its owner (anyone's with
/// the route's admin permission): the `process_points` answer once it finished, else 202 with
/// its state. Another principal's job, or no such job, is 404.
pub async fn job_result(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let not_found = || ApiError::detail(ErrorCode::NotFound, "no such job");
    if !super::analysis::is_id(&id) {
        return Err(not_found());
    }
    let job = state.store.job(&id).await?.ok_or_else(not_found)?;
    let own = job.owner.as_deref() == Some(caller.principal.subject.as_str());
    if job.kind != NCS_KIND || !(own || caller.acts_for_others()) {
        return Err(not_found());
    }
    match job.state {
        JobState::Succeeded | JobState::Dead | JobState::Cancelled => {
            finished_answer(job, &caller.request_id).map(|answer| Json(answer).into_response())
        }
        pending => Ok((
            StatusCode::ACCEPTED,
            Json(json!({
                "job_id": job.id,
                "state": pending,
                "request_id": caller.request_id,
            })),
        )
            .into_response()),
    }
}

/// `GET /api/v1/streams`: the caller's streams, by name.
pub async fn list_streams(State(state): State<SharedState>, caller: Caller) -> ApiResult<Response> {
    let prefix = stream_key(&caller.principal.subject, "");
    let streams: Vec<_> = state
        .store
        .stream_states_with_prefix(&prefix)
        .await?
        .into_iter()
        .map(|(key, version, updated_at_ms, size)| {
            json!({
                "stream": &key[prefix.len()..],
                "jobs_saved": version,
                "updated_at": super::ops::rfc3339(updated_at_ms),
                "state_bytes": size,
            })
        })
        .collect();
    Ok(Json(json!({
        "total": streams.len(),
        "streams": streams,
        "request_id": caller.request_id,
    }))
    .into_response())
}

/// `DELETE /api/v1/streams/{stream}`: forgets the stream's clusters and statistics; its next
/// points start a fresh stream (with the `algorithm_params` they bring). Jobs of the stream
/// still queued run on the fresh stream. 404 when the caller has no such stream.
pub async fn reset_stream(
    State(state): State<SharedState>,
    caller: Caller,
    Path(stream): Path<String>,
) -> ApiResult<Response> {
    check_stream_name(&stream)?;
    let key = stream_key(&caller.principal.subject, &stream);
    if !state.store.delete_stream_state(&key).await? {
        return Err(ApiError::detail(
            ErrorCode::NotFound,
            format!("no stream named {stream}"),
        ));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Why job `job_id`, queued for `owner`, is gone: the account was erased meanwhile (erasure
/// deletes its jobs), else a fault of the backend's own.
async fn vanished(state: &SharedState, owner: &str, job_id: &str) -> ApiError {
    match state.store.user_by_id(owner).await {
        Ok(None) => StoreError::AccountGone.into(),
        Ok(Some(_)) => ApiError::internal(
            "waiting for an NCS job",
            &format_args!("job {job_id} vanished from the queue"),
        ),
        Err(error) => error.into(),
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

/// The saved stream and the size of its saved state in bytes.
async fn load_stream(
    state: &SharedState,
    owner: &str,
    stream: &str,
) -> ApiResult<Option<(StreamRecord, usize)>> {
    check_stream_name(stream)?;
    let Some((saved, _)) = state.store.stream_state(&stream_key(owner, stream)).await? else {
        return Ok(None);
    };
    serde_json::from_str(&saved)
        .map(|record| Some((record, saved.len())))
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
        .map(|(r, _)| r.stream.clusters_summary())
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
    let Some((record, saved_bytes)) =
        load_stream(&state, &caller.principal.subject, &stream).await?
    else {
        return Err(ApiError::detail(
            ErrorCode::NotFound,
            format!("no stream named {stream} yet"),
        ));
    };
    let stats = record.stream.stats();
    let metrics = record.stream.metrics();
    let is_ready = super::ops::online_kinds(&state)
        .await
        .iter()
        .any(|k| k == NCS_KIND);
    let error_count = state
        .store
        .count_partition_jobs(
            &stream_key(&caller.principal.subject, &stream),
            JobState::Dead,
        )
        .await?;
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
        // The published NCS contract's fields.
        "is_ready": is_ready,
        "active_clusters": stats.clusters,
        "total_points_processed": stats.points_processed,
        "memory_usage_mb": saved_bytes as f64 / (1024.0 * 1024.0),
        "last_processing_time_ms": record.last_job_secs * 1e3,
        "error_count": error_count,
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
    }))
    .into_response())
}
