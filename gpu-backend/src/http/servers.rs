//! `GET /api/v1/servers` and `POST /api/v1/servers/{id}/{pause,resume,drain}`: the workers pulling
//! jobs, and what an operator may ask of them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shared::ErrorCode;
use shared::audit::AuditEventType;

use super::SharedState;
use super::auth::audit;
use super::error::{ApiError, ApiResult};
use super::gate::Caller;
use crate::store::now_ms;

/// A worker whose last heartbeat is older than this is shown as offline.
pub const OFFLINE_AFTER_MS: i64 = 15_000;
/// Stopped workers stay listed this long.
const STOPPED_LISTED_MS: i64 = 3_600_000;

/// `GET /api/v1/servers`.
pub async fn list(State(state): State<SharedState>) -> ApiResult<Response> {
    let now = now_ms();
    let workers = state.store.list_workers(now - STOPPED_LISTED_MS).await?;
    let servers: Vec<_> = workers
        .into_iter()
        .map(|w| {
            let online = w.state != "stopped" && now - w.heartbeat_at_ms <= OFFLINE_AFTER_MS;
            let mut view = serde_json::to_value(&w).unwrap_or_default();
            view["status"] = json!(if online { "online" } else { "offline" });
            view["heartbeat_age_ms"] = json!(now - w.heartbeat_at_ms);
            view
        })
        .collect();
    Ok(Json(json!({ "servers": servers })).into_response())
}

/// `POST /api/v1/servers/{id}/pause`: the worker claims no more jobs until resumed.
pub async fn pause(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    control(&state, &caller, &id, "pause").await
}

/// `POST /api/v1/servers/{id}/resume`: a paused worker claims jobs again.
pub async fn resume(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    control(&state, &caller, &id, "resume").await
}

/// `POST /api/v1/servers/{id}/drain`: the worker finishes the jobs in hand, then stops.
pub async fn drain(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    control(&state, &caller, &id, "drain").await
}

/// Asks worker `id` to take the state `action` names (202), and audits the request.
async fn control(
    state: &SharedState,
    caller: &Caller,
    id: &str,
    action: &str,
) -> ApiResult<Response> {
    if !state.store.request_worker_state(id, action).await? {
        return Err(ApiError::detail(
            ErrorCode::NotFound,
            "no running worker with that id",
        ));
    }
    audit(
        state,
        caller,
        AuditEventType::AdminAction,
        Some(&caller.principal.subject),
        &format!("asked worker {id} to {action}"),
    )
    .await;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "requested_state": action })),
    )
        .into_response())
}
