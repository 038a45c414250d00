//! The web console on every runtime: the edge serves it at `/` with the console's CSP, and keeps
//! a browser's refresh token in an `HttpOnly; Secure; SameSite=Strict` cookie scoped to `/auth`
//! that only requests carrying `X-H200-Session: cookie` may use; sign-out clears it and ends its
//! family. API clients keep the refresh token in the JSON body.

use reqwest::{Method, StatusCode};

use crate::{Answer, Caller, Outcome, check};

const SESSION: (&str, &str) = ("x-h200-session", "cookie");

pub async fn console_is_served_at_the_root(caller: &Caller) -> Outcome {
    let response = caller
        .edge(Method::GET, "/")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    check(response.status() == StatusCode::OK, || {
        format!("GET /: {}", response.status())
    })?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    check(header("content-type").starts_with("text/html"), || {
        format!("content type {}", header("content-type"))
    })?;
    check(
        header("content-security-policy") == shared::headers::CONSOLE_CSP,
        || format!("console CSP {}", header("content-security-policy")),
    )?;
    check(header("x-frame-options") == "DENY", || {
        "x-frame-options".into()
    })?;
    let html = response.text().await.map_err(|e| e.to_string())?;
    check(html.contains("/assets/app.js"), || {
        format!("the page loads the console script: {html}")
    })?;
    let script = caller
        .edge(Method::GET, "/assets/app.js")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    check(script.status() == StatusCode::OK, || {
        format!("GET /assets/app.js: {}", script.status())
    })?;
    check(
        script
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/javascript")),
        || "the script's content type".into(),
    )?;
    // The API keeps its own CSP.
    let api = caller
        .send(caller.edge(Method::GET, "/api/v1/rules"))
        .await?;
    api.refused(401, "MISSING_CREDENTIALS")?;
    api.hardened()
}

/// The refresh token of a `Set-Cookie` of the refresh cookie, checking its attributes.
fn session_cookie(answer: &Answer) -> Result<String, String> {
    let cookie = answer
        .header("set-cookie")
        .ok_or_else(|| format!("no set-cookie: {} {}", answer.status, answer.body))?;
    for attribute in [
        "Path=/auth",
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Max-Age=",
    ] {
        check(cookie.contains(attribute), || {
            format!("cookie lacks {attribute}: {cookie}")
        })?;
    }
    let value = cookie
        .split(';')
        .next()
        .and_then(|pair| pair.strip_prefix("h200_refresh="))
        .ok_or_else(|| format!("not the refresh cookie: {cookie}"))?;
    Ok(value.to_owned())
}

pub async fn cookie_session_refresh_csrf_and_sign_out(caller: &Caller) -> Outcome {
    let user = caller.user("viewer")?;
    let body = serde_json::json!({"username": user.username, "password": user.password});
    let login = caller
        .send(
            caller
                .edge(Method::POST, "/auth/login")
                .header(SESSION.0, SESSION.1)
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await?;
    check(login.status == StatusCode::OK, || {
        format!("login: {} {}", login.status, login.body)
    })?;
    check(login.body.get("refresh_token").is_none(), || {
        "a cookie session's answer carries no refresh token".into()
    })?;
    let first = session_cookie(&login)?;
    let cookie = |token: &str| format!("h200_refresh={token}");

    // The cookie without the custom header: refused before it reaches the backend.
    caller
        .send(
            caller
                .edge(Method::POST, "/auth/refresh")
                .header("cookie", cookie(&first)),
        )
        .await?
        .refused(403, "CSRF_REJECTED")?;
    caller
        .send(
            caller
                .edge(Method::POST, "/auth/refresh")
                .header("cookie", cookie(&first))
                .header(SESSION.0, SESSION.1)
                .header("sec-fetch-site", "cross-site"),
        )
        .await?
        .refused(403, "CSRF_REJECTED")?;

    let refreshed = caller
        .send(
            caller
                .edge(Method::POST, "/auth/refresh")
                .header("cookie", cookie(&first))
                .header(SESSION.0, SESSION.1),
        )
        .await?;
    check(refreshed.status == StatusCode::OK, || {
        format!("refresh: {} {}", refreshed.status, refreshed.body)
    })?;
    check(refreshed.body["access_token"].is_string(), || {
        "a new access token".into()
    })?;
    check(refreshed.body.get("refresh_token").is_none(), || {
        "the rotated refresh token stays in the cookie".into()
    })?;
    let second = session_cookie(&refreshed)?;
    check(second != first, || "the cookie rotates".into())?;

    // No cookie at all: the edge says so.
    caller
        .send(
            caller
                .edge(Method::POST, "/auth/refresh")
                .header(SESSION.0, SESSION.1),
        )
        .await?
        .refused(401, "MISSING_CREDENTIALS")?;

    let access = refreshed.body["access_token"].as_str().unwrap_or("");
    let logout = caller
        .send(
            caller
                .edge(Method::POST, "/auth/logout")
                .bearer_auth(access)
                .header("cookie", cookie(&second))
                .header(SESSION.0, SESSION.1),
        )
        .await?;
    check(logout.status == StatusCode::NO_CONTENT, || {
        format!("logout: {} {}", logout.status, logout.body)
    })?;
    check(
        logout
            .header("set-cookie")
            .is_some_and(|c| c.starts_with("h200_refresh=;") && c.contains("Max-Age=0")),
        || {
            format!(
                "logout clears the cookie: {:?}",
                logout.header("set-cookie")
            )
        },
    )?;
    // The family ended: the cookie's token no longer refreshes, and the answer clears it.
    let after = caller
        .send(
            caller
                .edge(Method::POST, "/auth/refresh")
                .header("cookie", cookie(&second))
                .header(SESSION.0, SESSION.1),
        )
        .await?;
    check(after.status == StatusCode::UNAUTHORIZED, || {
        format!("refresh after sign-out: {} {}", after.status, after.body)
    })?;
    check(
        after
            .header("set-cookie")
            .is_some_and(|c| c.contains("Max-Age=0")),
        || "a refused refresh clears the cookie".into(),
    )
}
