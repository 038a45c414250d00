//! Administration and personal data: the audit log, the user list, GDPR export and erasure.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use shared::ErrorCode;
use shared::audit::AuditEventType;

use super::auth::audit;
use super::error::{ApiError, ApiQuery, ApiResult};
use super::gate::Caller;
use super::{SharedState, page};
use crate::auth::revocation;
use crate::store::audit::AuditFilter;

/// Most rows one page may ask for.
pub const MAX_PAGE: i64 = 500;
const DEFAULT_PAGE: i64 = 50;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Event type, e.g. `login_failure`.
    #[serde(default, rename = "type")]
    event_type: Option<String>,
    #[serde(default)]
    principal: Option<String>,
    #[serde(default)]
    ip: Option<String>,
    /// Inclusive lower bound, unix milliseconds.
    #[serde(default)]
    from: Option<i64>,
    /// Exclusive upper bound, unix milliseconds.
    #[serde(default)]
    to: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

/// `GET /api/v1/admin/audit`: filtered by type, principal, ip and time; newest first.
pub async fn audit_log(
    State(state): State<SharedState>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Response> {
    if let Some(kind) = query.event_type.as_deref()
        && AuditEventType::from_name(kind).is_none()
    {
        return Err(ApiError::field(
            ErrorCode::ValidationFailed,
            "type",
            "is not an audit event type",
        ));
    }
    let (limit, offset) = page(query.limit, query.offset, DEFAULT_PAGE, MAX_PAGE)?;
    let filter = AuditFilter {
        event_type: query.event_type,
        principal: query.principal,
        ip: query.ip,
        from_ms: query.from,
        to_ms: query.to,
        limit,
        offset,
    };
    let events = state.store.query_audit(&filter).await?;
    Ok(Json(json!({ "events": events, "limit": limit, "offset": offset })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

/// `GET /api/v1/admin/users`.
pub async fn users(
    State(state): State<SharedState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Response> {
    let (limit, offset) = page(query.limit, query.offset, DEFAULT_PAGE, MAX_PAGE)?;
    let users = state.store.list_users(limit, offset).await?;
    let users = users
        .iter()
        .map(|user| super::account::account_view(&state, user))
        .collect::<ApiResult<Vec<_>>>()?;
    audit(
        &state,
        &caller,
        AuditEventType::DataAccess,
        Some(&caller.principal.subject),
        "listed users",
    )
    .await;
    Ok(Json(json!({ "users": users, "limit": limit, "offset": offset })).into_response())
}

/// `GET /api/v1/me/export`: everything stored about the caller (GDPR access).
pub async fn export_me(State(state): State<SharedState>, caller: Caller) -> ApiResult<Response> {
    let user_id = caller.require_user()?;
    let user = state
        .store
        .user_by_id(user_id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound))?;
    let email = super::account::open_email(&state, &user)?;
    let sessions = state.store.sessions_of(user_id).await?;
    let keys = state.store.list_api_keys(Some(user_id)).await?;
    let rules = state.store.rules_of(user_id, None).await?;
    let (analyses, _) = state
        .store
        .list_analyses(Some(user_id), EXPORT_ANALYSES, 0)
        .await?;
    let events = state
        .store
        .query_audit(&AuditFilter {
            principal: Some(user.id.clone()),
            limit: 1000,
            ..Default::default()
        })
        .await?;
    audit(
        &state,
        &caller,
        AuditEventType::DataAccess,
        Some(&user.id),
        "personal data export",
    )
    .await;
    Ok(Json(json!({
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at_ms": crate::store::now_ms(),
        "user": {
            "id": user.id,
            "username": user.username,
            "email": email,
            "roles": user.roles,
            "mfa_enabled": user.mfa_enabled,
            "created_at_ms": user.created_at_ms,
            "updated_at_ms": user.updated_at_ms,
        },
        "sessions": sessions,
        "api_keys": keys.iter().map(|k| json!({
            "id": k.id, "name": k.name, "prefix": k.prefix, "created_at_ms": k.created_at_ms,
            "expires_at_ms": k.expires_at_ms, "revoked_at_ms": k.revoked_at_ms,
        })).collect::<Vec<_>>(),
        "rules": rules,
        "analyses": analyses.iter().map(super::analysis::analysis_view).collect::<Vec<_>>(),
        "audit_events": events,
    }))
    .into_response())
}

/// What a personal-data export is, and the version of its shape: fields are only ever added
/// within a version; a removal or a change of meaning makes the next one.
pub const EXPORT_FORMAT: &str = "h200.personal-data";
pub const EXPORT_VERSION: u32 = 1;

/// Most analyses an export lists (newest first).
const EXPORT_ANALYSES: i64 = 10_000;

/// `DELETE /api/v1/me`: erases the account and ends every credential it has: every token of
/// it (this one, other logins', refreshed ones) is refused by the backend at once and by every
/// edge within 60 s, and its refresh families and API keys go with it. A request of the account
/// that passed the gate just before writes nothing (401 `REVOKED_TOKEN`). The audit trail stays
/// (it is append-only and chained) but names the user only by an id that no longer leads
/// anywhere.
pub async fn erase_me(State(state): State<SharedState>, caller: Caller) -> ApiResult<StatusCode> {
    let user_id = caller.require_user()?.to_owned();
    let policy = state.tokens().policy().clone();
    revocation::erase_account(&state.store, &user_id, &policy).await?;
    audit(
        &state,
        &caller,
        AuditEventType::AdminAction,
        Some(&user_id),
        "account erased at the user's request",
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// What a sealed email is bound to.
pub fn email_context(user_id: &str) -> String {
    format!("users.email:{user_id}")
}
