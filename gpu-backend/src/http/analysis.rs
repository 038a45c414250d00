//! The Mug Positioning API: `POST /api/v1/analysis` queues an uploaded image as an `analysis` job
//! (or reuses the result of an identical request from the last hour), `GET` reads one analysis or
//! lists them, `DELETE` removes one, and `POST …/{id}/feedback` records whether it was right.
//!
//! The edge has already checked the upload; the backend reads the same form with the same
//! [`AnalysisUpload::parse`] again, since it trusts no body it did not read itself. A completed
//! analysis carries the result fields at the top level, in the seed's response shape.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use shared::ErrorCode;
use shared::body::{AnalysisFeedbackRequest, AnalysisUpload, parse_valid};
use shared::route_policy::ContentKind;

use super::error::{ApiError, ApiQuery, ApiResult, internal};
use super::gate::Caller;
use super::jobs::{WaitQuery, wait_for_job};
use super::{SharedState, page};
use crate::store::analyses::{AnalysisRecord, Deleted, NewAnalysis};
use crate::store::jobs::{JobState, NewJob};
use crate::store::now_ms;
use kernel::analysis::{ANALYSIS_KIND, AnalysisJob};
use kernel::job_refusal;

/// Identical requests within this long share one result.
pub const REUSE_WINDOW_MS: i64 = 60 * 60 * 1000;
/// Attempts of an analysis job before it is dead-lettered.
const MAX_ATTEMPTS: i64 = 3;
/// Default and largest page of `GET /api/v1/analysis`.
const DEFAULT_PAGE: i64 = 20;
const MAX_PAGE: i64 = 100;

/// What a sealed image is bound to.
pub fn image_context(analysis_id: &str) -> String {
    format!("analyses.image:{analysis_id}")
}

/// Where an analysis stands, as clients see it.
fn status_of(record: &AnalysisRecord) -> &'static str {
    match record.job_state {
        Some(JobState::Queued | JobState::Failed) => "pending",
        Some(JobState::Running) => "processing",
        Some(JobState::Succeeded) if refusal_of(record).is_none() => "completed",
        _ => "failed",
    }
}

/// The refusal a finished job reported (the image did not decode), if any.
fn refusal_of(record: &AnalysisRecord) -> Option<(String, String)> {
    record.result.as_ref().and_then(job_refusal)
}

/// An analysis as clients see it. When completed, the result's fields (`detections`,
/// `positioning`, `mug_count`, `rule_violations`, `verdict`, `feedback`, `suggestions`,
/// `processing_time_ms`, `model_version`, …) are at the top level.
pub fn analysis_view(record: &AnalysisRecord) -> Value {
    let status = status_of(record);
    let error = match (refusal_of(record), record.job_state) {
        (Some((code, detail)), _) => json!({ "code": code, "detail": detail }),
        (None, Some(JobState::Dead | JobState::Cancelled) | None) => json!({
            "code": ErrorCode::ServiceUnavailable.as_str(),
            "detail": "the analysis could not be processed",
        }),
        _ => Value::Null,
    };
    let mut view = json!({
        "id": record.id,
        "owner": record.owner,
        "status": status,
        "reused": record.reused,
        "created_at_ms": record.created_at_ms,
        "completed_at_ms": record.finished_at_ms,
        "image": {
            "sha256": record.image_sha256,
            "content_type": record.image_type,
            "width": record.image_width,
            "height": record.image_height,
            "bytes": record.image_bytes,
            "retained": record.sealed_image.is_some(),
        },
        "options": record.options,
        "error": error,
        "user_feedback": record.feedback,
    });
    if status == "completed"
        && let (Some(Value::Object(result)), Some(target)) =
            (record.result.as_ref(), view.as_object_mut())
    {
        for (key, value) in result {
            target.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    view
}

fn with_request_id(mut view: Value, caller: &Caller) -> Value {
    view["request_id"] = json!(caller.request_id);
    view
}

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut digest = Sha256::new();
    for part in parts {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part);
    }
    hex::encode(digest.finalize())
}

/// `POST /api/v1/analysis[?wait=SECONDS]`: 202 with the pending analysis, or 200 with the result
/// when it is ready within the wait (at once for a reused result).
pub async fn submit(
    State(state): State<SharedState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<WaitQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if ContentKind::of(content_type) != Some(ContentKind::Multipart) {
        return Err(ApiError::detail(
            ErrorCode::UnsupportedMediaType,
            "send multipart/form-data with an image part",
        ));
    }
    let upload = AnalysisUpload::parse(content_type, &body)?;
    let owner = caller.principal.subject.clone();
    let rules: Vec<_> = state
        .store
        .rules_of(&owner, upload.options.rules_context.as_deref())
        .await?
        .into_iter()
        .map(|r| r.stored)
        .collect();
    let options =
        serde_json::to_value(&upload.options).map_err(internal("serializing analysis options"))?;
    let image_sha256 = sha256_hex(&[upload.image]);
    let cache_key = sha256_hex(&[
        b"analysis-v1",
        owner.as_bytes(),
        image_sha256.as_bytes(),
        options.to_string().as_bytes(),
        serde_json::to_string(&rules)
            .map_err(internal("serializing the rule snapshot"))?
            .as_bytes(),
    ]);
    let payload = AnalysisJob {
        image_base64: base64::engine::general_purpose::STANDARD.encode(upload.image),
        declared_type: upload.declared_type.clone(),
        options: upload.options.clone(),
        rules,
    };
    let mut job = NewJob::new(
        ANALYSIS_KIND,
        serde_json::to_value(&payload).map_err(internal("serializing an analysis job"))?,
    );
    job.owner = Some(owner.clone());
    job.max_attempts = MAX_ATTEMPTS;
    job.transient_payload = true;
    let id = uuid::Uuid::now_v7().to_string();
    let sealed_image = if state.retain_images {
        let sealed = state
            .seal
            .seal(&image_context(&id), upload.image)
            .map_err(internal("sealing an uploaded image"))?;
        Some(base64::engine::general_purpose::STANDARD.encode(sealed))
    } else {
        None
    };
    let analysis = NewAnalysis {
        owner,
        cache_key,
        image_sha256,
        image_type: upload.info.kind.mime().to_owned(),
        image_width: upload.info.width,
        image_height: upload.info.height,
        image_bytes: upload.image.len(),
        options,
    };
    let mut record = state
        .store
        .create_analysis(
            &id,
            &analysis,
            &job,
            now_ms() - REUSE_WINDOW_MS,
            sealed_image,
        )
        .await?;
    if let Some(wait) = query.wait {
        wait_for_job(&state.store, &record.job_id, Duration::from_secs(wait)).await?;
        record = state
            .store
            .analysis(&id)
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound))?;
        // The caller waited for the answer: an image that did not decode is their error.
        if let Some((code, detail)) = refusal_of(&record) {
            let code = ErrorCode::from_name(&code).unwrap_or(ErrorCode::InvalidImageFormat);
            return Err(ApiError::field(code, "image", detail));
        }
    }
    let status = if record.job_state.is_some_and(JobState::is_final) {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let mut response = (
        status,
        Json(with_request_id(analysis_view(&record), &caller)),
    )
        .into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/analysis/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// The analysis `id` if `caller` may see it on this route: their own, or anyone's with the
/// route's admin permission. Another principal's analysis is "not found", so ids leak nothing.
async fn visible(state: &SharedState, caller: &Caller, id: &str) -> ApiResult<AnalysisRecord> {
    let not_found = || ApiError::detail(ErrorCode::NotFound, "no such analysis");
    if !is_id(id) {
        return Err(not_found());
    }
    let record = state.store.analysis(id).await?.ok_or_else(not_found)?;
    if record.owner == caller.principal.subject || caller.acts_for_others() {
        Ok(record)
    } else {
        Err(not_found())
    }
}

/// Ids are UUIDs; anything else names nothing.
pub fn is_id(id: &str) -> bool {
    id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// `GET /api/v1/analysis/{id}[?wait=SECONDS]`.
pub async fn get_one(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<WaitQuery>,
) -> ApiResult<Response> {
    let mut record = visible(&state, &caller, &id).await?;
    if let Some(wait) = query.wait
        && !record.job_state.is_some_and(JobState::is_final)
    {
        wait_for_job(&state.store, &record.job_id, Duration::from_secs(wait)).await?;
        record = visible(&state, &caller, &id).await?;
    }
    Ok(Json(with_request_id(analysis_view(&record), &caller)).into_response())
}

/// `GET /api/v1/analysis` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Whose analyses: the caller's when absent; another principal's needs the admin permission.
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

/// `GET /api/v1/analysis`: the caller's analyses, newest first.
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    let (limit, offset) = page(query.limit, query.offset, DEFAULT_PAGE, MAX_PAGE)?;
    let owner = caller.listing_owner(query.owner, "the analyses")?;
    let (records, total) = state
        .store
        .list_analyses(Some(&owner), limit, offset)
        .await?;
    Ok(Json(json!({
        "analyses": records.iter().map(analysis_view).collect::<Vec<_>>(),
        "total": total,
        "limit": limit,
        "offset": offset,
        "request_id": caller.request_id,
    }))
    .into_response())
}

/// `DELETE /api/v1/analysis/{id}`: 204; 409 while its job is running.
pub async fn delete_one(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    visible(&state, &caller, &id).await?;
    match state.store.delete_analysis(&id).await? {
        Deleted::Done => Ok(StatusCode::NO_CONTENT),
        Deleted::Missing => Err(ApiError::detail(ErrorCode::NotFound, "no such analysis")),
        Deleted::Busy => Err(ApiError::detail(
            ErrorCode::Conflict,
            "the analysis is being processed; delete it once it has finished",
        )),
    }
}

/// `POST /api/v1/analysis/{id}/feedback`: the owner says whether a completed analysis was right.
pub async fn feedback(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let request: AnalysisFeedbackRequest = parse_valid(&body)?;
    let not_found = || ApiError::detail(ErrorCode::NotFound, "no such analysis");
    if !is_id(&id) {
        return Err(not_found());
    }
    let record = state.store.analysis(&id).await?.ok_or_else(not_found)?;
    if record.owner != caller.principal.subject {
        return Err(not_found());
    }
    if status_of(&record) != "completed" {
        return Err(ApiError::detail(
            ErrorCode::Conflict,
            "feedback is taken on completed analyses only",
        ));
    }
    let reported = record
        .result
        .as_ref()
        .and_then(|r| r.get("mug_count"))
        .cloned()
        .unwrap_or(Value::Null);
    let stored = json!({
        "correct": request.correct,
        "actual_mug_count": request.actual_mug_count,
        "comment": request.comment,
        "reported_mug_count": reported,
        "model_version": record.result.as_ref().and_then(|r| r.get("model_version")).cloned(),
    });
    if !state.store.record_analysis_feedback(&id, &stored).await? {
        return Err(not_found());
    }
    let record = state.store.analysis(&id).await?.ok_or_else(not_found)?;
    Ok(Json(with_request_id(analysis_view(&record), &caller)).into_response())
}
