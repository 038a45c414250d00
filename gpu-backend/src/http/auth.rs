//! `/auth/*`: login, refresh with rotation, logout, TOTP MFA and API keys.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use shared::ErrorCode;
use shared::api_key::ApiKey;
use shared::audit::{AuditEvent, AuditEventType, AuditSource};
use shared::body::auth::{
    ApiKeyCreateRequest, LoginRequest, LogoutRequest, MfaVerifyRequest, PasswordChangeRequest,
    RefreshRequest,
};
use shared::body::parse_valid;
use shared::token::{H200Claims, TokenKind};
use shared::totp;

use super::SharedState;
use super::error::{ApiError, ApiQuery, ApiResult, internal};
use super::gate::{Caller, random_tail};
use crate::auth::{revocation, token_keys};
use crate::store::api_keys::ApiKeyRecord;
use crate::store::tokens::RefreshUse;
use crate::store::users::UserRecord;
use crate::store::{StoreError, now_ms};

fn now_secs() -> u64 {
    (now_ms() / 1000) as u64
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v.starts_with("application/json") || v.contains("+json")
        })
}

/// Parses a JSON body, refusing other media types with 415. An empty body is not refused for
/// its `Content-Type` (it means nothing without content); it fails as JSON instead.
pub(crate) fn json_body<T: serde::de::DeserializeOwned + shared::body::Validate>(
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<T> {
    if !body.is_empty() && !is_json(headers) {
        return Err(ApiError::detail(
            ErrorCode::UnsupportedMediaType,
            "send application/json",
        ));
    }
    Ok(parse_valid(body)?)
}

/// Records an audit event of the backend for `caller`, at its type's severity.
pub(crate) async fn audit(
    state: &SharedState,
    caller: &Caller,
    event_type: AuditEventType,
    subject: Option<&str>,
    detail: &str,
) {
    record(state, backend_event(caller, event_type, subject, detail)).await;
}

/// An audit event of the backend about `subject` for `caller`.
pub(crate) fn backend_event(
    caller: &Caller,
    event_type: AuditEventType,
    subject: Option<&str>,
    detail: &str,
) -> AuditEvent {
    let mut event = AuditEvent::new(
        event_type,
        AuditSource::Backend,
        now_ms() as u64,
        random_tail(),
    )
    .with_detail(detail);
    event.request_id = Some(caller.request_id.clone());
    event.principal = subject.map(str::to_owned);
    event.ip = caller.client_ip.clone();
    event
}

/// Appends `event` to the audit trail; a failure is logged, never the request's.
pub(crate) async fn record(state: &SharedState, event: AuditEvent) {
    if let Err(e) = state.store.append_audit(&[event]).await {
        tracing::error!(error = %e, "could not record an audit event");
    }
}

/// The token pair of a login or refresh, signed by a key that is not revoked.
async fn token_response(
    state: &SharedState,
    user: &UserRecord,
    family: &str,
    mfa: bool,
) -> ApiResult<(serde_json::Value, String, u64)> {
    let issuer = token_keys::signing_issuer(state).await.map_err(|error| {
        tracing::error!(error = %error, "no token signing key to issue with");
        ApiError::new(ErrorCode::ServiceUnavailable)
    })?;
    let roles = super::account::token_roles(user);
    let permissions = state.roles.permissions_of(&roles);
    let scope = permissions.to_strings();
    let now = now_secs();
    let access = issuer
        .issue(
            &user.id,
            &H200Claims::access(roles, scope.iter().map(|s| s.to_string()).collect(), mfa),
            now,
        )
        .map_err(internal("issuing an access token"))?;
    let refresh = issuer
        .issue(&user.id, &H200Claims::refresh(family, mfa), now)
        .map_err(internal("issuing a refresh token"))?;
    let mut body = json!({
        "access_token": access.token,
        "refresh_token": refresh.token,
        "token_type": "Bearer",
        "expires_in": issuer.policy().access_ttl_secs,
        "scope": scope.join(" "),
    });
    if user.must_change_password {
        body["password_change_required"] = json!(true);
    }
    Ok((body, refresh.jti, refresh.expires_at))
}

/// The user a login names: by username, else, for a name with an `@`, by email through the
/// blind index (an address filed for more than one account names none). Both lookups run for
/// every name with an `@`, found or not, so the time says nothing about which matched.
async fn find_login_user(state: &SharedState, name: &str) -> ApiResult<Option<UserRecord>> {
    let by_name = state.store.user_by_username(name).await?;
    if !name.contains('@') {
        return Ok(by_name);
    }
    let entries = crate::auth::email_index::candidates(&state.seal, name);
    let mut by_email = state.store.users_by_email_index(&entries).await?;
    if by_name.is_some() {
        return Ok(by_name);
    }
    Ok(if by_email.len() == 1 {
        by_email.pop()
    } else {
        None
    })
}

/// `POST /auth/login`: form or JSON, by username or email; the same work whether the user
/// exists or not.
pub async fn login(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let request = if is_form(&headers) {
        LoginRequest::from_form(&body)?
    } else if is_json(&headers) {
        LoginRequest::from_json(&body)?
    } else {
        return Err(ApiError::detail(
            ErrorCode::UnsupportedMediaType,
            "send application/json or application/x-www-form-urlencoded",
        ));
    };
    let user = find_login_user(&state, &request.username).await?;
    let hasher = state.hasher.clone();
    let password = request.password.clone();
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
    let password_ok = tokio::task::spawn_blocking(move || match stored_hash {
        Some(hash) => hasher.verify(&password, &hash),
        None => hasher.verify_decoy(&password),
    })
    .await
    .map_err(internal("checking a password"))?;
    let user = match (user, password_ok) {
        (Some(user), true) if user.disabled_at_ms.is_none() => user,
        // A disabled account is refused as a wrong password is; only the trail tells them apart.
        (user, password_ok) => {
            state
                .metrics
                .inc("h200_logins_total", &[("outcome", "failure")]);
            audit(
                &state,
                &caller,
                AuditEventType::LoginFailure,
                user.as_ref().map(|u| u.id.as_str()),
                if password_ok {
                    "account disabled"
                } else {
                    "wrong username or password"
                },
            )
            .await;
            return Err(ApiError::new(ErrorCode::InvalidCredentials));
        }
    };
    if user.mfa_enabled {
        let Some(code) = request.totp_code.as_deref() else {
            state
                .metrics
                .inc("h200_logins_total", &[("outcome", "mfa_required")]);
            return Err(ApiError::detail(
                ErrorCode::MfaRequired,
                "send totp_code with the password",
            ));
        };
        if !check_totp(&state, &user, code).await? {
            state
                .metrics
                .inc("h200_logins_total", &[("outcome", "failure")]);
            audit(
                &state,
                &caller,
                AuditEventType::LoginFailure,
                Some(&user.id),
                "wrong one-time code",
            )
            .await;
            return Err(ApiError::new(ErrorCode::InvalidMfaCode));
        }
    }
    // An account erased since its password was checked gets no session: the same answer as a
    // login after the erasure.
    let erased_meanwhile = |error: StoreError| match error {
        StoreError::AccountGone => ApiError::new(ErrorCode::InvalidCredentials),
        other => other.into(),
    };
    let family = uuid::Uuid::new_v4().simple().to_string();
    state
        .store
        .create_token_family(&family, &user.id)
        .await
        .map_err(erased_meanwhile)?;
    state
        .store
        .touch_session(&family, caller.client_ip.as_deref(), user_agent(&headers))
        .await?;
    let (body, refresh_jti, refresh_expires) =
        token_response(&state, &user, &family, user.mfa_enabled).await?;
    state
        .store
        .record_refresh_token(
            &refresh_jti,
            &family,
            &user.id,
            refresh_expires as i64 * 1000,
        )
        .await
        .map_err(erased_meanwhile)?;
    state
        .metrics
        .inc("h200_logins_total", &[("outcome", "success")]);
    audit(
        &state,
        &caller,
        AuditEventType::LoginSuccess,
        Some(&user.id),
        "password login",
    )
    .await;
    Ok(no_store(Json(body).into_response()))
}

/// Checks a TOTP code against the user's sealed secret and spends its time step.
async fn check_totp(state: &SharedState, user: &UserRecord, code: &str) -> ApiResult<bool> {
    let Some(sealed) = user.mfa_secret_sealed.as_deref() else {
        return Ok(false);
    };
    let secret = state
        .seal
        .open(&mfa_context(&user.id), sealed)
        .map_err(internal("opening a sealed MFA secret"))?;
    let last = user.mfa_last_step.map(|s| s as u64);
    match totp::verify(&secret, code, now_secs(), last) {
        Some(step) => Ok(state.store.consume_mfa_step(&user.id, step as i64).await?),
        None => Ok(false),
    }
}

fn mfa_context(user_id: &str) -> String {
    format!("users.mfa_secret:{user_id}")
}

/// The client's user agent as the edge forwarded it, cut to 256 characters.
fn user_agent(headers: &HeaderMap) -> Option<&str> {
    let agent = headers.get(header::USER_AGENT)?.to_str().ok()?;
    Some(match agent.char_indices().nth(256) {
        Some((end, _)) => &agent[..end],
        None => agent,
    })
}

/// Tokens must never be cached by intermediaries.
fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// `POST /auth/refresh`: `{"refresh_token": …}` or the refresh token as Bearer. Rotates; a spent
/// token presented again revokes its whole family.
pub async fn refresh(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let token = if body.is_empty() {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned)
            .ok_or_else(|| ApiError::new(ErrorCode::MissingCredentials))?
    } else {
        json_body::<RefreshRequest>(&headers, &body)?.refresh_token
    };
    let issuer = state.tokens();
    let verified = issuer
        .verify(&token, TokenKind::Refresh, now_secs())
        .map_err(|e| ApiError::new(e.code()))?;
    if let Some(code) =
        revocation::refusal(&state.store, &revocation::verified_facts(&verified)).await?
    {
        return Err(ApiError::new(code));
    }
    let family = verified
        .claims
        .family
        .clone()
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken))?;
    match state.store.use_refresh_token(&verified.jwt_id).await? {
        RefreshUse::Rotated { user_id, family_id } if family_id == family => {
            let user = caller_record(&state, &user_id).await?;
            if user.disabled_at_ms.is_some() {
                return Err(ApiError::detail(
                    ErrorCode::RevokedToken,
                    "the account is disabled",
                ));
            }
            state
                .store
                .touch_session(&family, caller.client_ip.as_deref(), user_agent(&headers))
                .await?;
            let (body, jti, expires) =
                token_response(&state, &user, &family, verified.claims.mfa).await?;
            state
                .store
                .record_refresh_token(&jti, &family, &user.id, expires as i64 * 1000)
                .await?;
            Ok(no_store(Json(body).into_response()))
        }
        RefreshUse::Reused { user_id, .. } => {
            // A spent refresh token presented again means it was stolen (or its holder was):
            // critical, whatever a token_invalid usually is.
            let mut event = backend_event(
                &caller,
                AuditEventType::TokenInvalid,
                Some(&user_id),
                "refresh token reused; family revoked",
            );
            event.severity = shared::audit::Severity::Critical;
            record(&state, event).await;
            Err(ApiError::new(ErrorCode::RefreshTokenReused))
        }
        _ => Err(ApiError::new(ErrorCode::InvalidToken)),
    }
}

/// Puts the caller's access token on the deny-list. An access token lives at most its TTL
/// (plus leeway) from issue, so the entry outlives it.
pub(crate) async fn deny_presented_token(state: &SharedState, caller: &Caller) -> ApiResult<()> {
    if let Some(jti) = caller.principal.token_id.as_deref() {
        let policy = state.tokens().policy().clone();
        let expires_ms = now_ms() + (policy.access_ttl_secs + policy.leeway_secs) as i64 * 1000;
        state.store.revoke_token(jti, expires_ms).await?;
    }
    Ok(())
}

/// The calling user's record; a token whose account is gone (erased after the gate admitted
/// it) is refused as the erasure's revocation refuses it.
async fn caller_record(state: &SharedState, user_id: &str) -> ApiResult<UserRecord> {
    state
        .store
        .user_by_id(user_id)
        .await?
        .ok_or_else(|| StoreError::AccountGone.into())
}

/// `POST /auth/logout`: the presented access token goes on the deny-list; a refresh token in the
/// body also ends its family.
pub async fn logout(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let user_id = caller.require_user()?.to_owned();
    if caller.principal.token_id.is_none() {
        return Err(ApiError::new(ErrorCode::InvalidToken));
    }
    deny_presented_token(&state, &caller).await?;
    let issuer = state.tokens();
    if !body.is_empty() {
        let request: LogoutRequest = json_body(&headers, &body)?;
        if let Some(token) = request.refresh_token
            && let Ok(verified) = issuer.verify(&token, TokenKind::Refresh, now_secs())
            && verified.subject == user_id
            && let Some(family) = verified.claims.family
        {
            state.store.revoke_family(&family).await?;
        }
    }
    audit(
        &state,
        &caller,
        AuditEventType::DataAccess,
        Some(&user_id),
        "logout",
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /auth/mfa/setup`: a new TOTP secret, shown once; MFA turns on at the first verified code.
pub async fn mfa_setup(State(state): State<SharedState>, caller: Caller) -> ApiResult<Response> {
    let user_id = caller.require_user()?;
    let user = caller_record(&state, user_id).await?;
    if user.mfa_enabled {
        return Err(ApiError::detail(
            ErrorCode::Conflict,
            "MFA is already on for this account",
        ));
    }
    let secret = crate::keys::random_bytes::<{ totp::SECRET_BYTES }>()
        .map_err(internal("drawing an MFA secret"))?;
    let sealed = state
        .seal
        .seal(&mfa_context(&user.id), &secret)
        .map_err(internal("sealing an MFA secret"))?;
    state.store.set_mfa_secret(&user.id, &sealed).await?;
    audit(
        &state,
        &caller,
        AuditEventType::ConfigurationChange,
        Some(&user.id),
        "MFA setup started",
    )
    .await;
    Ok(no_store(
        Json(json!({
            "secret": totp::base32_encode(&secret),
            "otpauth_uri": totp::provisioning_uri(&state.totp_issuer, &user.username, &secret),
            "digits": totp::DIGITS,
            "period": totp::STEP_SECS,
        }))
        .into_response(),
    ))
}

/// `POST /auth/mfa/verify`: `{"code": "123456"}` confirms the secret and turns MFA on.
pub async fn mfa_verify(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let user_id = caller.require_user()?;
    let request: MfaVerifyRequest = json_body(&headers, &body)?;
    let user = caller_record(&state, user_id).await?;
    if user.mfa_secret_sealed.is_none() {
        return Err(ApiError::detail(
            ErrorCode::Conflict,
            "call /auth/mfa/setup first",
        ));
    }
    if !check_totp(&state, &user, &request.code).await? {
        audit(
            &state,
            &caller,
            AuditEventType::LoginFailure,
            Some(&user.id),
            "wrong one-time code at MFA verify",
        )
        .await;
        return Err(ApiError::new(ErrorCode::InvalidMfaCode));
    }
    audit(
        &state,
        &caller,
        AuditEventType::ConfigurationChange,
        Some(&user.id),
        "MFA enabled",
    )
    .await;
    Ok(Json(json!({ "mfa_enabled": true })).into_response())
}

/// A key as listed: never the key or its digest.
fn key_view(key: &ApiKeyRecord) -> serde_json::Value {
    json!({
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "user_id": key.user_id,
        "created_at_ms": key.created_at_ms,
        "expires_at_ms": key.expires_at_ms,
        "revoked_at_ms": key.revoked_at_ms,
        "last_used_at_ms": key.last_used_at_ms,
    })
}

/// `POST /auth/api-keys`: creates a key for the caller and shows it once.
pub async fn create_api_key(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let user_id = caller.require_user()?;
    let request: ApiKeyCreateRequest = json_body(&headers, &body)?;
    let key = ApiKey::from_random(
        crate::keys::random_bytes::<16>().map_err(internal("drawing an API key"))?,
    );
    let expires_at_ms = request
        .expires_in_days
        .map(|days| now_ms() + i64::from(days) * 86_400_000);
    let record = state
        .store
        .create_api_key(
            user_id,
            &request.name,
            key.digest().as_str(),
            &key.display_prefix(),
            expires_at_ms,
        )
        .await?;
    audit(
        &state,
        &caller,
        AuditEventType::ConfigurationChange,
        Some(user_id),
        "API key created",
    )
    .await;
    let mut view = key_view(&record);
    view["key"] = json!(key.as_str());
    Ok(no_store((StatusCode::CREATED, Json(view)).into_response()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyListQuery {
    /// Every user's keys; needs the route's admin permission (`admin:users` in the default
    /// table).
    #[serde(default)]
    all: bool,
}

/// `GET /auth/api-keys`: the caller's keys, or with `?all=true` everyone's for a holder of the
/// route's admin permission.
pub async fn list_api_keys(
    State(state): State<SharedState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<KeyListQuery>,
) -> ApiResult<Response> {
    let user_id = caller.require_user()?;
    let keys = if query.all {
        caller.require_acting_for_others("the API keys")?;
        state.store.list_api_keys(None).await?
    } else {
        state.store.list_api_keys(Some(user_id)).await?
    };
    Ok(Json(json!({ "keys": keys.iter().map(key_view).collect::<Vec<_>>() })).into_response())
}

/// `DELETE /auth/api-keys/{id}`: revokes one of the caller's keys (any key with the route's admin
/// permission).
pub async fn revoke_api_key(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let user_id = caller.require_user()?;
    let key = state
        .store
        .api_key_by_id(&id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound))?;
    if key.user_id != user_id && !caller.acts_for_others() {
        // Someone else's key looks exactly like a missing one.
        return Err(ApiError::new(ErrorCode::NotFound));
    }
    if !state.store.revoke_api_key(&id).await? {
        return Err(ApiError::detail(
            ErrorCode::Conflict,
            "the key is already revoked",
        ));
    }
    audit(
        &state,
        &caller,
        AuditEventType::ConfigurationChange,
        Some(user_id),
        "API key revoked",
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /auth/password`: changes the caller's password under the policy (strength, none of the
/// last five); every refresh family of the user ends with it.
pub async fn change_password(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let user_id = caller.require_user()?.to_owned();
    let request: PasswordChangeRequest = json_body(&headers, &body)?;
    let user = caller_record(&state, &user_id).await?;
    if let Err(reason) = crate::auth::password::check_policy(&request.new_password) {
        return Err(ApiError::field(
            ErrorCode::WeakPassword,
            "new_password",
            reason.to_string(),
        ));
    }
    let history = state.store.recent_password_hashes(&user_id).await?;
    let hasher = state.hasher.clone();
    let current_hash = user.password_hash.clone();
    let (current_ok, reused, new_hash) = tokio::task::spawn_blocking(move || {
        let current_ok = hasher.verify(&request.current_password, &current_hash);
        let reused = history
            .iter()
            .any(|old| hasher.verify(&request.new_password, old));
        (current_ok, reused, hasher.hash(&request.new_password))
    })
    .await
    .map_err(internal("checking a password change"))?;
    if !current_ok {
        audit(
            &state,
            &caller,
            AuditEventType::LoginFailure,
            Some(&user_id),
            "wrong current password at password change",
        )
        .await;
        return Err(ApiError::new(ErrorCode::InvalidCredentials));
    }
    if reused {
        return Err(ApiError::field(
            ErrorCode::PasswordReused,
            "new_password",
            "must differ from the last five passwords",
        ));
    }
    let new_hash = new_hash.map_err(internal("hashing a new password"))?;
    state.store.set_password(&user_id, &new_hash).await?;
    state.store.revoke_user_families(&user_id).await?;
    audit(
        &state,
        &caller,
        AuditEventType::ConfigurationChange,
        Some(&user_id),
        "password changed",
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
