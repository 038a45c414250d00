//! Accounts over HTTP: the caller's own record (`GET /auth/me`, `PATCH /api/v1/me`), their
//! sessions, and the lifecycle an administrator drives (`/api/v1/admin/users/…`: create,
//! change roles, disable, delete, reset the password, end sessions). Everything that takes
//! access away ends the account's credentials at once at the backend and within the revocation
//! horizon at every edge (see [`crate::store::accounts`]).
//!
//! An account whose password an administrator set (created or reset) gets tokens that can only
//! change the password: they carry the one role [`PASSWORD_CHANGE_ROLE`], which grants no
//! permission in any role table, and the gate lets them reach only [`PASSWORD_CHANGE_ROUTES`].

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use shared::ErrorCode;
use shared::audit::AuditEventType;
use shared::body::{AccountPatch, UserCreateRequest, UserPatch};
use shared::permissions::Principal;
use shared::route_policy::Route;

use super::SharedState;
use super::admin::email_context;
use super::auth::{audit, json_body};
use super::error::{ApiError, ApiResult, internal};
use super::gate::Caller;
use crate::auth::{email_index, password, revocation};
use crate::store::StoreError;
use crate::store::accounts::SessionRecord;
use crate::store::users::{NewUser, UserRecord};

/// The role a token of an account that must change its password carries instead of its own.
/// The `!` keeps it apart from the names of a role table's roles.
pub const PASSWORD_CHANGE_ROLE: &str = "!password-change";

/// What a token carrying [`PASSWORD_CHANGE_ROLE`] may call: change the password, read the
/// account, log out.
pub const PASSWORD_CHANGE_ROUTES: &[(&str, &str)] = &[
    ("POST", "/auth/password"),
    ("GET", "/auth/me"),
    ("POST", "/auth/logout"),
];

/// The roles a token issued to `user` carries: its own, or only [`PASSWORD_CHANGE_ROLE`] while
/// an administrator's password stands.
pub fn token_roles(user: &UserRecord) -> Vec<String> {
    if user.must_change_password {
        vec![PASSWORD_CHANGE_ROLE.to_owned()]
    } else {
        user.roles.clone()
    }
}

/// Refuses (403) a token restricted to changing the password on any route but
/// [`PASSWORD_CHANGE_ROUTES`].
pub fn check_restriction(principal: &Principal, route: &Route) -> ApiResult<()> {
    if !principal.roles.iter().any(|r| r == PASSWORD_CHANGE_ROLE) {
        return Ok(());
    }
    let allowed = PASSWORD_CHANGE_ROUTES
        .iter()
        .any(|&(method, path)| route.method.as_str() == method && route.path == path);
    if allowed {
        return Ok(());
    }
    Err(ApiError::detail(
        ErrorCode::InsufficientPermissions,
        "the password must be changed first (POST /auth/password), then log in again",
    ))
}

/// The account as its owner and administrators see it. Never a secret.
pub(crate) fn account_view(state: &SharedState, user: &UserRecord) -> ApiResult<Value> {
    let permissions = state.roles.permissions_of(&user.roles).to_strings();
    Ok(json!({
        "id": user.id,
        "username": user.username,
        "email": open_email(state, user)?,
        "roles": user.roles,
        "permissions": permissions,
        "mfa_enabled": user.mfa_enabled,
        "password_change_required": user.must_change_password,
        "disabled": user.disabled_at_ms.is_some(),
        "disabled_at_ms": user.disabled_at_ms,
        "created_at_ms": user.created_at_ms,
        "updated_at_ms": user.updated_at_ms,
    }))
}

/// The user's email, opened; `None` when there is none.
pub fn open_email(state: &SharedState, user: &UserRecord) -> ApiResult<Option<String>> {
    let Some(sealed) = user.email_sealed.as_deref() else {
        return Ok(None);
    };
    let opened = state
        .seal
        .open(&email_context(&user.id), sealed)
        .map_err(internal("opening a sealed email"))?;
    String::from_utf8(opened)
        .map(Some)
        .map_err(internal("reading an opened email as UTF-8"))
}

/// The email of user `user_id` sealed to it, with its blind index entry.
fn seal_email(state: &SharedState, user_id: &str, email: &str) -> ApiResult<(Vec<u8>, String)> {
    let sealed = state
        .seal
        .seal(&email_context(user_id), email.as_bytes())
        .map_err(internal("sealing an email"))?;
    Ok((sealed, email_index::entry(&state.seal, email)))
}

/// The calling user's record (401 `REVOKED_TOKEN` when the account is gone).
async fn own_record(state: &SharedState, caller: &Caller) -> ApiResult<UserRecord> {
    let user_id = caller.require_user()?;
    state
        .store
        .user_by_id(user_id)
        .await?
        .ok_or_else(|| StoreError::AccountGone.into())
}

/// Another account, by id (404 when there is none).
async fn account(state: &SharedState, id: &str) -> ApiResult<UserRecord> {
    state
        .store
        .user_by_id(id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound))
}

/// A store error about another account: gone is 404, not the caller's revoked token.
fn about_account(error: StoreError) -> ApiError {
    match error {
        StoreError::AccountGone => ApiError::new(ErrorCode::NotFound),
        other => other.into(),
    }
}

/// The longest a token lives: how long a `sub` revocation must be kept.
fn token_lifetime_ms(state: &SharedState) -> i64 {
    revocation::token_lifetime_ms(state.tokens().policy())
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// `GET /auth/me`: the caller's profile, roles, permissions and MFA state.
pub async fn me(State(state): State<SharedState>, caller: Caller) -> ApiResult<Response> {
    let user = own_record(&state, &caller).await?;
    Ok(Json(account_view(&state, &user)?).into_response())
}

/// `PATCH /api/v1/me`: rectification of the caller's email (sealed, re-indexed for login).
pub async fn patch_me(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let patch: AccountPatch = json_body(&headers, &body)?;
    let user = own_record(&state, &caller).await?;
    let email = patch.email.flatten();
    let sealed = email
        .as_deref()
        .map(|email| seal_email(&state, &user.id, email))
        .transpose()?;
    let (sealed, index) = match &sealed {
        Some((sealed, index)) => (Some(sealed.as_slice()), Some(index.as_str())),
        None => (None, None),
    };
    state.store.set_email(&user.id, sealed, index).await?;
    audit(
        &state,
        &caller,
        AuditEventType::ConfigurationChange,
        Some(&user.id),
        if email.is_some() {
            "email rectified"
        } else {
            "email removed"
        },
    )
    .await;
    let user = own_record(&state, &caller).await?;
    Ok(Json(account_view(&state, &user)?).into_response())
}

fn session_view(session: &SessionRecord) -> Value {
    json!({
        "id": session.id,
        "created_at_ms": session.created_at_ms,
        "last_used_at_ms": session.last_used_at_ms,
        "ip": session.ip,
        "user_agent": session.user_agent,
    })
}

fn sessions_view(sessions: &[SessionRecord]) -> Value {
    json!({ "sessions": sessions.iter().map(session_view).collect::<Vec<_>>() })
}

/// `GET /auth/sessions`: the caller's live sessions, newest first.
pub async fn sessions(State(state): State<SharedState>, caller: Caller) -> ApiResult<Response> {
    let user_id = caller.require_user()?;
    let sessions = state.store.sessions_of(user_id).await?;
    Ok(Json(sessions_view(&sessions)).into_response())
}

/// `DELETE /auth/sessions/{id}`: ends one of the caller's sessions (its refresh token is
/// refused from now on); 404 when there is no such live session of theirs.
pub async fn end_session(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let user_id = caller.require_user()?;
    if !state.store.end_session(user_id, &id).await? {
        return Err(ApiError::new(ErrorCode::NotFound));
    }
    audit(
        &state,
        &caller,
        AuditEventType::ConfigurationChange,
        Some(user_id),
        "session ended",
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// A password to hand over once: 22 random URL-safe characters between fixed ones that meet the
/// policy's classes.
fn temporary_password() -> ApiResult<String> {
    let bytes =
        crate::keys::random_bytes::<16>().map_err(internal("drawing a temporary password"))?;
    Ok(format!(
        "Tmp-{}-9a",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// Argon2id of `password`, off the async threads.
async fn hash_password(state: &SharedState, password: String) -> ApiResult<String> {
    let hasher = state.hasher.clone();
    tokio::task::spawn_blocking(move || hasher.hash(&password))
        .await
        .map_err(internal("hashing a password"))?
        .map_err(internal("hashing a password"))
}

/// Refuses role names the role table does not know.
fn check_roles(state: &SharedState, roles: &[String]) -> ApiResult<()> {
    match roles.iter().find(|role| state.roles.role(role).is_none()) {
        Some(unknown) => Err(ApiError::field(
            ErrorCode::ValidationFailed,
            "roles",
            format!("{unknown} is not a role of the role table"),
        )),
        None => Ok(()),
    }
}

/// Records an administrator's action: the administrator is the principal, the account acted on
/// is named in the detail.
async fn audit_admin(state: &SharedState, caller: &Caller, detail: String) {
    audit(
        state,
        caller,
        AuditEventType::AdminAction,
        Some(&caller.principal.subject),
        &detail,
    )
    .await;
}

/// `POST /api/v1/admin/users`: a new account whose password must be changed at its first
/// login; the temporary password, when the backend drew it, is in the answer once.
pub async fn create_user(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let request: UserCreateRequest = json_body(&headers, &body)?;
    check_roles(&state, &request.roles)?;
    let drawn = match &request.password {
        Some(given) => {
            password::check_policy(given).map_err(|reason| {
                ApiError::field(ErrorCode::WeakPassword, "password", reason.to_string())
            })?;
            None
        }
        None => Some(temporary_password()?),
    };
    let initial = drawn
        .clone()
        .or_else(|| request.password.clone())
        .unwrap_or_default();
    let hash = hash_password(&state, initial).await?;
    let id = uuid::Uuid::now_v7().to_string();
    let email = request
        .email
        .as_deref()
        .map(|email| seal_email(&state, &id, email))
        .transpose()?;
    let (email_sealed, index) = match email {
        Some((sealed, index)) => (Some(sealed), Some(index)),
        None => (None, None),
    };
    let user = state
        .store
        .insert_user(
            &id,
            NewUser {
                username: &request.username,
                password_hash: &hash,
                roles: &request.roles,
                email_sealed,
            },
            true,
            index.as_deref(),
        )
        .await
        .map_err(|error| match error {
            StoreError::Conflict => ApiError::field(ErrorCode::Conflict, "username", "is taken"),
            other => other.into(),
        })?;
    audit_admin(
        &state,
        &caller,
        format!(
            "user {} created with roles {}",
            user.id,
            user.roles.join(",")
        ),
    )
    .await;
    let mut view = account_view(&state, &user)?;
    if let Some(drawn) = drawn {
        view["temporary_password"] = json!(drawn);
    }
    Ok(no_store((StatusCode::CREATED, Json(view)).into_response()))
}

/// `PATCH /api/v1/admin/users/{id}`: new roles and/or disabled. A change of roles or a
/// disabling ends every session and token of the account (disabling its API keys too); an
/// administrator cannot disable their own account.
pub async fn patch_user(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let patch: UserPatch = json_body(&headers, &body)?;
    if let Some(roles) = &patch.roles {
        check_roles(&state, roles)?;
    }
    if patch.disabled == Some(true) && id == caller.principal.subject {
        return Err(ApiError::detail(
            ErrorCode::Conflict,
            "an administrator cannot disable their own account",
        ));
    }
    let lifetime = token_lifetime_ms(&state);
    let mut changes = Vec::new();
    if let Some(roles) = &patch.roles {
        state
            .store
            .set_roles(&id, roles, lifetime)
            .await
            .map_err(about_account)?;
        changes.push(format!("roles set to {}", roles.join(",")));
    }
    if let Some(disabled) = patch.disabled {
        state
            .store
            .set_account_disabled(&id, disabled, lifetime)
            .await
            .map_err(about_account)?;
        changes.push(if disabled { "disabled" } else { "enabled" }.to_owned());
    }
    audit_admin(
        &state,
        &caller,
        format!("user {id}: {}", changes.join("; ")),
    )
    .await;
    let user = account(&state, &id).await?;
    Ok(Json(account_view(&state, &user)?).into_response())
}

/// `DELETE /api/v1/admin/users/{id}`: erases the account as `DELETE /api/v1/me` does.
pub async fn delete_user(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let policy = state.tokens().policy().clone();
    revocation::erase_account(&state.store, &id, &policy)
        .await
        .map_err(about_account)?;
    audit_admin(&state, &caller, format!("user {id} erased")).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/admin/users/{id}/password-reset`: a temporary password, answered once, that
/// must be changed at the next login; every session and token of the account ends.
pub async fn reset_password(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    account(&state, &id).await?;
    let drawn = temporary_password()?;
    let hash = hash_password(&state, drawn.clone()).await?;
    state
        .store
        .reset_password(&id, &hash, token_lifetime_ms(&state))
        .await
        .map_err(about_account)?;
    audit_admin(&state, &caller, format!("user {id}: password reset")).await;
    Ok(no_store(
        Json(json!({
            "id": id,
            "temporary_password": drawn,
            "password_change_required": true,
        }))
        .into_response(),
    ))
}

/// `GET /api/v1/admin/users/{id}/sessions`: the account's live sessions.
pub async fn user_sessions(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    account(&state, &id).await?;
    let sessions = state.store.sessions_of(&id).await?;
    audit(
        &state,
        &caller,
        AuditEventType::DataAccess,
        Some(&caller.principal.subject),
        &format!("listed the sessions of user {id}"),
    )
    .await;
    Ok(Json(sessions_view(&sessions)).into_response())
}

/// `DELETE /api/v1/admin/users/{id}/sessions`: ends every session and token of the account.
pub async fn end_user_sessions(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .store
        .end_sessions(&id, token_lifetime_ms(&state))
        .await
        .map_err(about_account)?;
    audit_admin(&state, &caller, format!("user {id}: every session ended")).await;
    Ok(StatusCode::NO_CONTENT)
}
