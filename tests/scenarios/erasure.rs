//! An account erased while the system runs: a user of its own (`h200 user add` against the
//! backend's data folder) logs in twice and erases the account with one token (`DELETE
//! /api/v1/me`); the other token is refused within 60 s (`REVOKED_TOKEN`, by the edge once its
//! deny-list has the account's entry, by the backend until then), as are a write with it and the
//! second login's refresh token, and the password logs in no more. No answer is a 5xx. Only its
//! own user is erased, so the scenario shares the system with the others.

use std::io::Write;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::h200;
use crate::{Answer, Caller, Outcome, check};

/// How long a revocation may take to reach every edge.
pub(crate) const REVOCATION_HORIZON: Duration = Duration::from_secs(60);
const PASSWORD: &str = "Erased-Mug-2026!";

pub async fn account_erasure(caller: &Caller) -> Outcome {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let username = format!("erased-{stamp}");
    add_user(caller, &username)?;
    let first = login(caller, &username).await?;
    let second = login(caller, &username).await?;
    let (first_token, second_token) = (access_token(&first)?, access_token(&second)?);
    for token in [first_token, second_token] {
        let answer = get_rules(caller, token).await?;
        check(answer.status == StatusCode::OK, || {
            format!("before the erasure: {} {}", answer.status, answer.body)
        })?;
    }

    let erased = caller
        .send(
            caller
                .edge(Method::DELETE, "/api/v1/me")
                .bearer_auth(first_token),
        )
        .await?;
    check(erased.status == StatusCode::NO_CONTENT, || {
        format!("DELETE /api/v1/me: {} {}", erased.status, erased.body)
    })?;

    refused_as_revoked(caller, second_token, Instant::now() + REVOCATION_HORIZON).await?;
    let rule = json!({
        "name": "after the erasure",
        "conditions": [{ "field": "mug_count", "operator": ">", "value": 2 }],
        "actions": [{ "action": "reject", "message": "too many mugs" }],
    });
    caller
        .send(
            caller
                .edge(Method::POST, "/api/v1/rules")
                .bearer_auth(second_token)
                .header("content-type", "application/json")
                .body(rule.to_string()),
        )
        .await?
        .refused(401, "REVOKED_TOKEN")
        .map_err(|e| format!("a write with the other token: {e}"))?;
    let refresh_token = second["refresh_token"]
        .as_str()
        .ok_or("no refresh_token in the second login")?;
    caller
        .send(
            caller
                .edge(Method::POST, "/auth/refresh")
                .header("content-type", "application/json")
                .body(json!({ "refresh_token": refresh_token }).to_string()),
        )
        .await?
        .refused(401, "REVOKED_TOKEN")
        .map_err(|e| format!("the other login's refresh token: {e}"))?;
    let again = try_login(caller, &username).await?;
    again
        .refused(401, "INVALID_CREDENTIALS")
        .map_err(|e| format!("a login after the erasure: {e}"))
}

/// `h200 user add NAME --role manager` against the backend's data folder.
fn add_user(caller: &Caller, username: &str) -> Outcome {
    let fixture = &caller.fixture;
    let mut child = h200(&fixture.h200_binary, &fixture.data_dir)
        .args(["user", "add", username, "--role", "manager"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("h200 user add: {e}"))?;
    if let Some(stdin) = child.stdin.as_mut() {
        writeln!(stdin, "{PASSWORD}").map_err(|e| format!("h200 user add: {e}"))?;
    }
    let done = child
        .wait_with_output()
        .map_err(|e| format!("h200 user add: {e}"))?;
    check(done.status.success(), || {
        format!(
            "h200 user add {username}: {}\n{}",
            done.status,
            String::from_utf8_lossy(&done.stderr)
        )
    })
}

/// A login as `username` from a fresh address (so the login rate class never trips).
async fn try_login(caller: &Caller, username: &str) -> Result<Answer, String> {
    try_login_with(caller, username, PASSWORD).await
}

/// A login as `username` with `password` from a fresh address.
pub(crate) async fn try_login_with(
    caller: &Caller,
    username: &str,
    password: &str,
) -> Result<Answer, String> {
    let n = caller.logins.fetch_add(1, Ordering::Relaxed);
    let ip = format!("10.{}.{}.{}", caller.index, n / 250, n % 250 + 1);
    let body = json!({ "username": username, "password": password });
    caller
        .send(
            caller
                .edge_from(Method::POST, "/auth/login", &ip)
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
}

/// The token pair of a successful login as `username`.
async fn login(caller: &Caller, username: &str) -> Result<Value, String> {
    login_with(caller, username, PASSWORD).await
}

/// The token pair of a successful login as `username` with `password`.
pub(crate) async fn login_with(
    caller: &Caller,
    username: &str,
    password: &str,
) -> Result<Value, String> {
    let answer = try_login_with(caller, username, password).await?;
    check(answer.status == StatusCode::OK, || {
        format!("login as {username}: {} {}", answer.status, answer.body)
    })?;
    Ok(answer.body)
}

pub(crate) fn access_token(pair: &Value) -> Result<&str, String> {
    pair["access_token"]
        .as_str()
        .ok_or_else(|| format!("no access_token in {pair}"))
}

/// `GET /api/v1/rules` (managers may) with `token`.
pub(crate) async fn get_rules(caller: &Caller, token: &str) -> Result<Answer, String> {
    caller
        .send(caller.edge(Method::GET, "/api/v1/rules").bearer_auth(token))
        .await
}

/// Polls with `token` until it is refused `REVOKED_TOKEN`, failing after `deadline`. Meanwhile
/// the token may still pass (the erasure has not reached this edge, nor the backend behind it);
/// any other answer, a 5xx above all, fails at once.
pub(crate) async fn refused_as_revoked(caller: &Caller, token: &str, deadline: Instant) -> Outcome {
    loop {
        let answer = get_rules(caller, token).await?;
        if answer.code() == "REVOKED_TOKEN" {
            return answer.refused(401, "REVOKED_TOKEN");
        }
        check(answer.status == StatusCode::OK, || {
            format!(
                "the other token after its account lost access: {} {}",
                answer.status, answer.body
            )
        })?;
        check(Instant::now() < deadline, || {
            format!(
                "the account's other token still answers {} {} {} s after it lost access",
                answer.status,
                answer.body,
                REVOCATION_HORIZON.as_secs()
            )
        })?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
