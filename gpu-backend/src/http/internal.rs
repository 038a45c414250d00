//! Routes only the edge calls for itself: the deny-list feed, API-key lookups and audit ingest.
//! They are signed like every other request and carry no principal.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use shared::ErrorCode;
use shared::audit::{AuditBatch, MAX_BATCH_EVENTS};
use shared::body::parse_json;

use super::SharedState;
use super::error::{ApiError, ApiQuery, ApiResult};
use crate::store::now_ms;

/// Most deny-list entries in one answer; the edge pages with `since_ms`.
const REVOCATION_PAGE: i64 = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationQuery {
    #[serde(default)]
    since_ms: i64,
}

/// `GET /internal/v1/revocations?since_ms=N`: deny-list entries (a token's `jti`, a signing
/// key's `kid`, a subject's `sub` with its cut-off) revoked after N and not yet expired.
pub async fn revocations(
    State(state): State<SharedState>,
    ApiQuery(query): ApiQuery<RevocationQuery>,
) -> ApiResult<Response> {
    let revoked = state
        .store
        .revocations_since(query.since_ms, REVOCATION_PAGE)
        .await?;
    Ok(Json(json!({ "revoked": revoked, "now_ms": now_ms() })).into_response())
}

/// `GET /internal/v1/api-keys/{digest}`: the grant of a key, looked up by its SHA-256 digest.
pub async fn api_key(
    State(state): State<SharedState>,
    Path(digest): Path<String>,
) -> ApiResult<Response> {
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::field(
            ErrorCode::ValidationFailed,
            "digest",
            "must be 64 hex characters",
        ));
    }
    let key = state
        .store
        .api_key_by_digest(&digest)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound))?;
    let user = state
        .store
        .user_by_id(&key.user_id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound))?;
    let permissions = state.roles.permissions_of(&user.roles);
    state.store.touch_api_key(&key.id).await?;
    Ok(Json(json!({
        "key_id": key.id,
        "subject": user.id,
        "roles": user.roles,
        "permissions": permissions.to_strings(),
        "expires_at": key.expires_at_ms.map(|ms| ms / 1000),
        "revoked": key.revoked_at_ms.is_some(),
    }))
    .into_response())
}

/// `POST /internal/v1/audit`: a batch of edge events, stored once each (ids deduplicate).
pub async fn ingest_audit(State(state): State<SharedState>, body: Bytes) -> ApiResult<Response> {
    let batch: AuditBatch = parse_json(&body)?;
    if batch.events.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::field(
            ErrorCode::ValidationFailed,
            "events",
            format!("at most {MAX_BATCH_EVENTS} per batch"),
        ));
    }
    let outcome = state.store.append_audit(&batch.events).await?;
    state.metrics.add(
        "h200_audit_events_ingested_total",
        &[("source", "edge")],
        outcome.inserted as u64,
    );
    state.metrics.add(
        "h200_audit_events_duplicate_total",
        &[],
        outcome.duplicates as u64,
    );
    Ok(Json(outcome).into_response())
}
