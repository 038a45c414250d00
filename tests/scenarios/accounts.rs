//! An account an administrator creates and then disables while the system runs, all through the
//! edge: the new account's first token can only change its password; after the change it works
//! (`GET /auth/me`, a manager's route); once disabled (`PATCH /api/v1/admin/users/{id}`) its
//! token is refused within 60 s (`REVOKED_TOKEN`, by the edge once its deny-list has the
//! account's `sub` entry, by the backend until then), as are its refresh token and its password.
//! No answer is a 5xx. Only its own account changes, so the scenario shares the system.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::erasure::{
    REVOCATION_HORIZON, access_token, get_rules, login_with, refused_as_revoked, try_login_with,
};
use crate::{Answer, Caller, Outcome, check};

const INITIAL_PASSWORD: &str = "Initial-Mug-2026!";
const CHOSEN_PASSWORD: &str = "Chosen-Mug-2027?";

pub async fn disabled_account_refused(caller: &Caller) -> Outcome {
    let admin = caller.token("admin").await?;
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let username = format!("disabled-{stamp}");
    let created = json_call(
        caller,
        Method::POST,
        "/api/v1/admin/users",
        &admin,
        Some(json!({ "username": username, "roles": ["manager"], "password": INITIAL_PASSWORD })),
    )
    .await?;
    check(created.status == StatusCode::CREATED, || {
        format!(
            "POST /api/v1/admin/users: {} {}",
            created.status, created.body
        )
    })?;
    let id = created.body["id"]
        .as_str()
        .ok_or_else(|| format!("no id in {}", created.body))?
        .to_owned();

    let first = login_with(caller, &username, INITIAL_PASSWORD).await?;
    check(first["password_change_required"] == true, || {
        format!("the first login of a created account: {first}")
    })?;
    let restricted = access_token(&first)?;
    get_rules(caller, restricted)
        .await?
        .refused(403, "INSUFFICIENT_PERMISSIONS")
        .map_err(|e| format!("a token that may only change the password: {e}"))?;
    let changed = json_call(
        caller,
        Method::POST,
        "/auth/password",
        restricted,
        Some(json!({ "current_password": INITIAL_PASSWORD, "new_password": CHOSEN_PASSWORD })),
    )
    .await?;
    check(changed.status == StatusCode::NO_CONTENT, || {
        format!("POST /auth/password: {} {}", changed.status, changed.body)
    })?;

    let session = login_with(caller, &username, CHOSEN_PASSWORD).await?;
    let token = access_token(&session)?;
    let me = json_call(caller, Method::GET, "/auth/me", token, None).await?;
    check(
        me.status == StatusCode::OK && me.body["username"] == json!(username),
        || format!("GET /auth/me: {} {}", me.status, me.body),
    )?;
    let rules = get_rules(caller, token).await?;
    check(rules.status == StatusCode::OK, || {
        format!("before disabling: {} {}", rules.status, rules.body)
    })?;

    let disabled = json_call(
        caller,
        Method::PATCH,
        &format!("/api/v1/admin/users/{id}"),
        &admin,
        Some(json!({ "disabled": true })),
    )
    .await?;
    check(
        disabled.status == StatusCode::OK && disabled.body["disabled"] == true,
        || format!("disabling: {} {}", disabled.status, disabled.body),
    )?;
    refused_as_revoked(caller, token, Instant::now() + REVOCATION_HORIZON).await?;
    let refresh_token = session["refresh_token"]
        .as_str()
        .ok_or("no refresh_token in the login")?;
    caller
        .send(
            caller
                .edge(Method::POST, "/auth/refresh")
                .header("content-type", "application/json")
                .body(json!({ "refresh_token": refresh_token }).to_string()),
        )
        .await?
        .refused(401, "REVOKED_TOKEN")
        .map_err(|e| format!("the disabled account's refresh token: {e}"))?;
    try_login_with(caller, &username, CHOSEN_PASSWORD)
        .await?
        .refused(401, "INVALID_CREDENTIALS")
        .map_err(|e| format!("a login of the disabled account: {e}"))
}

/// A call through the edge with `token`, with a JSON body when there is one.
async fn json_call(
    caller: &Caller,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Result<Answer, String> {
    let mut request = caller.edge(method, path).bearer_auth(token);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let answer = caller.send(request).await?;
    check(answer.status.as_u16() < 500, || {
        format!("{path}: {} {}", answer.status, answer.body)
    })?;
    Ok(answer)
}
