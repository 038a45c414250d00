//! Browser sessions: the web console keeps its refresh token in an `HttpOnly; Secure;
//! SameSite=Strict` cookie scoped to `/auth`, which the edge sets and reads, so no script ever
//! holds it; API clients keep sending the refresh token in the JSON body, unchanged.
//!
//! A request opts into the cookie session with the custom header
//! [`SESSION_HEADER`]`: cookie`. Then:
//!
//! - `POST /auth/login` and `POST /auth/refresh`: a 200 answer's `refresh_token` leaves the JSON
//!   body and becomes the cookie (its `Max-Age` the token's remaining lifetime, so an idle
//!   session ends with its refresh token). Beside it goes [`SESSION_MARKER_COOKIE`], readable by
//!   scripts and holding no secret, so a page load asks for a refresh only when a session may
//!   exist (the refresh cookie is `HttpOnly` and scoped to `/auth`: the page cannot see it).
//! - `POST /auth/refresh` takes the refresh token from the cookie (none: 401
//!   `MISSING_CREDENTIALS`, answered by the edge); a refusal clears the cookie.
//! - `POST /auth/logout` hands the cookie's token to the backend, which ends its family, and the
//!   answer clears the cookie.
//!
//! CSRF: the cookie authenticates refresh and logout, so a request to those that carries the
//! cookie must also carry the header (a cross-site page cannot set a custom header without a
//! CORS preflight, which the edge refuses for origins not on its list), and a browser's
//! `Sec-Fetch-Site`, when sent, must say `same-origin`. Otherwise: 403 `CSRF_REJECTED`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use shared::ErrorCode;
use shared::route_policy::Route;

use super::Refusal;
use crate::message::{EdgeRequest, EdgeResponse};

/// The custom header of cookie sessions (and their CSRF guard); its one value is `cookie`.
pub const SESSION_HEADER: &str = "x-h200-session";
/// The value of [`SESSION_HEADER`].
pub const SESSION_HEADER_VALUE: &str = "cookie";
/// The cookie that carries the refresh token.
pub const REFRESH_COOKIE: &str = "h200_refresh";
/// The cookie that tells the console a session cookie was set (value `1`, no secret).
pub const SESSION_MARKER_COOKIE: &str = "h200_session";
/// The cookie's path: only the authentication routes ever receive it.
pub const COOKIE_PATH: &str = "/auth";
/// The cookie's lifetime when the token's own expiry cannot be read (the refresh lifetime).
const FALLBACK_MAX_AGE_SECS: u64 = 7 * 24 * 3600;

const LOGIN: &str = "/auth/login";
const REFRESH: &str = "/auth/refresh";
const LOGOUT: &str = "/auth/logout";

/// What a request says about the cookie session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// The request carried `X-H200-Session: cookie`.
    pub cookie_mode: bool,
    /// The refresh token from the cookie, when one came.
    pub refresh_token: Option<String>,
}

impl Session {
    /// Reads the session header and cookie of `request` on `route`, refusing a
    /// cookie-authenticated request (refresh, logout) that lacks the header or comes from
    /// another site.
    pub fn inspect(request: &EdgeRequest, route: &Route) -> Result<Session, Refusal> {
        let cookie_mode = request
            .header(SESSION_HEADER)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(SESSION_HEADER_VALUE));
        let refresh_token = refresh_cookie(request);
        let uses_cookie = matches!(route.path.as_str(), REFRESH | LOGOUT);
        if uses_cookie && refresh_token.is_some() && !cookie_mode {
            return Err(Refusal::new(ErrorCode::CsrfRejected).with_detail(format!(
                "a request with the session cookie must carry the {SESSION_HEADER} header"
            )));
        }
        let cross_site = request
            .header("sec-fetch-site")
            .is_some_and(|site| !matches!(site.trim(), "same-origin" | "none"));
        if cookie_mode && cross_site {
            return Err(Refusal::new(ErrorCode::CsrfRejected)
                .with_detail("cookie sessions are same-origin only"));
        }
        Ok(Session {
            cookie_mode,
            refresh_token,
        })
    }

    /// The body (and its content type) to send the backend on `route`: in a cookie session,
    /// refresh and logout carry the cookie's refresh token; anything else goes unchanged.
    pub fn outbound_body(
        &self,
        route: &Route,
        body: Vec<u8>,
    ) -> Result<(Vec<u8>, Option<&'static str>), Refusal> {
        if !self.cookie_mode || !matches!(route.path.as_str(), REFRESH | LOGOUT) {
            return Ok((body, None));
        }
        match (&self.refresh_token, route.path.as_str()) {
            (Some(token), _) => {
                let body = serde_json::json!({ "refresh_token": token }).to_string();
                Ok((body.into_bytes(), Some("application/json")))
            }
            (None, REFRESH) => Err(Refusal::new(ErrorCode::MissingCredentials)
                .with_detail("no session cookie: sign in again")),
            (None, _) => Ok((body, None)),
        }
    }

    /// Turns the backend's answer into the browser's: the refresh token of a login or refresh
    /// moves into the cookie; a failed refresh and every logout clear it. `now_secs` dates the
    /// cookie's lifetime.
    pub fn inbound(&self, route: &Route, response: &mut EdgeResponse, now_secs: u64) {
        if !self.cookie_mode {
            return;
        }
        match route.path.as_str() {
            LOGIN | REFRESH if response.status == 200 => move_into_cookie(response, now_secs),
            REFRESH if response.status == 401 => clear_cookie(response),
            LOGOUT => clear_cookie(response),
            _ => {}
        }
    }
}

/// `headers` with their content type replaced by `content_type` when one is given (the body a
/// cookie session made in [`Session::outbound_body`]).
pub fn with_content_type(
    mut headers: Vec<(String, String)>,
    content_type: Option<&str>,
) -> Vec<(String, String)> {
    if let Some(content_type) = content_type {
        headers.retain(|(name, _)| !name.eq_ignore_ascii_case("content-type"));
        headers.push(("content-type".into(), content_type.into()));
    }
    headers
}

/// The refresh token of the request's `Cookie` fields, when one is there.
fn refresh_cookie(request: &EdgeRequest) -> Option<String> {
    request
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("cookie"))
        .flat_map(|(_, value)| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == REFRESH_COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// `Set-Cookie` value of the refresh cookie with `value`, living `max_age_secs`.
pub fn cookie(value: &str, max_age_secs: u64) -> String {
    format!(
        "{REFRESH_COOKIE}={value}; Path={COOKIE_PATH}; Max-Age={max_age_secs}; HttpOnly; Secure; \
         SameSite=Strict"
    )
}

/// `Set-Cookie` value of the session marker, living `max_age_secs`.
fn marker(max_age_secs: u64) -> String {
    let value = if max_age_secs == 0 { "" } else { "1" };
    format!(
        "{SESSION_MARKER_COOKIE}={value}; Path=/; Max-Age={max_age_secs}; Secure; SameSite=Strict"
    )
}

/// Sets the refresh cookie (first) and the session marker, replacing any earlier cookies.
fn set_cookies(response: &mut EdgeResponse, token: &str, max_age_secs: u64) {
    response.set_header("set-cookie", cookie(token, max_age_secs));
    response
        .headers
        .push(("set-cookie".into(), marker(max_age_secs)));
}

fn clear_cookie(response: &mut EdgeResponse) {
    set_cookies(response, "", 0);
}

/// Moves `refresh_token` out of a token answer's JSON into the cookie.
fn move_into_cookie(response: &mut EdgeResponse, now_secs: u64) {
    let Ok(serde_json::Value::Object(mut answer)) = serde_json::from_slice(&response.body) else {
        return;
    };
    let Some(serde_json::Value::String(token)) = answer.remove("refresh_token") else {
        return;
    };
    let max_age = expiry_secs(&token)
        .map(|exp| exp.saturating_sub(now_secs))
        .unwrap_or(FALLBACK_MAX_AGE_SECS);
    response.body = serde_json::Value::Object(answer).to_string().into_bytes();
    set_cookies(response, &token, max_age);
}

/// The `exp` claim of a JWT, read without verifying it (the backend issued it a moment ago;
/// it only dates the cookie).
fn expiry_secs(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::route_policy::{Resolution, RoutePolicy};

    fn route(path: &str) -> Route {
        let policy = RoutePolicy::default();
        match policy.resolve("POST", path) {
            Resolution::Found(found) => found.route.clone(),
            _ => panic!("{path} is in the table"),
        }
    }

    fn request(path: &str, headers: &[(&str, &str)]) -> EdgeRequest {
        EdgeRequest {
            method: "POST".into(),
            path: path.into(),
            query: None,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            client_ip: "198.51.100.7".into(),
        }
    }

    fn token_with_exp(exp: u64) -> String {
        let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{exp},"sub":"u"}}"#));
        format!("eyJhbGciOiJFZERTQSJ9.{payload}.c2ln")
    }

    #[test]
    fn a_cookie_without_the_session_header_is_refused_on_refresh_and_logout() {
        for path in [REFRESH, LOGOUT] {
            let refused = Session::inspect(
                &request(path, &[("cookie", "other=1; h200_refresh=rt")]),
                &route(path),
            )
            .expect_err(path);
            assert_eq!(refused.code(), ErrorCode::CsrfRejected, "{path}");
            assert_eq!(refused.problem.status, 403);
        }
        let session = Session::inspect(
            &request(
                REFRESH,
                &[("cookie", "h200_refresh=rt"), ("x-h200-session", "cookie")],
            ),
            &route(REFRESH),
        )
        .expect("with the header");
        assert_eq!(session.refresh_token.as_deref(), Some("rt"));
        assert!(session.cookie_mode);
    }

    #[test]
    fn a_cross_site_cookie_session_is_refused_and_api_clients_are_untouched() {
        let refused = Session::inspect(
            &request(
                LOGIN,
                &[
                    ("x-h200-session", "cookie"),
                    ("sec-fetch-site", "cross-site"),
                ],
            ),
            &route(LOGIN),
        )
        .expect_err("cross-site");
        assert_eq!(refused.code(), ErrorCode::CsrfRejected);
        let same = Session::inspect(
            &request(
                LOGIN,
                &[
                    ("x-h200-session", "cookie"),
                    ("sec-fetch-site", "same-origin"),
                ],
            ),
            &route(LOGIN),
        );
        assert!(same.is_ok());

        let api = Session::inspect(&request(REFRESH, &[]), &route(REFRESH)).expect("api client");
        assert_eq!(api, Session::default());
        let body = br#"{"refresh_token":"from-body"}"#.to_vec();
        let (sent, content_type) = api
            .outbound_body(&route(REFRESH), body.clone())
            .expect("unchanged");
        assert_eq!((sent, content_type), (body, None));
        let mut response = EdgeResponse::new(200);
        response.body = br#"{"access_token":"a","refresh_token":"r"}"#.to_vec();
        let before = response.clone();
        api.inbound(&route(LOGIN), &mut response, 0);
        assert_eq!(
            response, before,
            "an API client still gets its refresh token"
        );
    }

    #[test]
    fn refresh_and_logout_send_the_cookie_token_and_refresh_needs_one() {
        let session = Session {
            cookie_mode: true,
            refresh_token: Some("rt-1".into()),
        };
        for path in [REFRESH, LOGOUT] {
            let (body, content_type) = session.outbound_body(&route(path), Vec::new()).unwrap();
            assert_eq!(body, br#"{"refresh_token":"rt-1"}"#, "{path}");
            assert_eq!(content_type, Some("application/json"));
        }
        let without = Session {
            cookie_mode: true,
            refresh_token: None,
        };
        let refused = without
            .outbound_body(&route(REFRESH), Vec::new())
            .expect_err("no cookie");
        assert_eq!(refused.code(), ErrorCode::MissingCredentials);
        assert!(
            without
                .outbound_body(&route(LOGOUT), b"{}".to_vec())
                .is_ok()
        );
    }

    #[test]
    fn a_token_answer_moves_its_refresh_token_into_the_cookie() {
        let session = Session {
            cookie_mode: true,
            refresh_token: None,
        };
        let token = token_with_exp(1_000 + 600);
        let mut response = EdgeResponse::new(200);
        response.body = serde_json::json!({
            "access_token": "at", "refresh_token": token, "expires_in": 1800,
        })
        .to_string()
        .into_bytes();
        session.inbound(&route(LOGIN), &mut response, 1_000);
        let answer: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(answer.get("refresh_token"), None);
        assert_eq!(answer["access_token"], "at");
        assert_eq!(
            response.header("set-cookie"),
            Some(
                format!(
                    "h200_refresh={token}; Path=/auth; Max-Age=600; HttpOnly; Secure; \
                     SameSite=Strict"
                )
                .as_str()
            )
        );
        let cookies: Vec<_> = response
            .headers
            .iter()
            .filter(|(name, _)| name == "set-cookie")
            .map(|(_, value)| value.as_str())
            .collect();
        assert_eq!(
            cookies[1], "h200_session=1; Path=/; Max-Age=600; Secure; SameSite=Strict",
            "the marker lives as long and holds no secret"
        );
    }

    #[test]
    fn a_refused_refresh_and_a_logout_clear_the_cookie() {
        let session = Session {
            cookie_mode: true,
            refresh_token: Some("rt".into()),
        };
        for (path, status) in [(REFRESH, 401), (LOGOUT, 204), (LOGOUT, 401)] {
            let mut response = EdgeResponse::new(status);
            session.inbound(&route(path), &mut response, 0);
            let cleared = response.header("set-cookie").expect(path);
            assert!(cleared.starts_with("h200_refresh=; Path=/auth; Max-Age=0"));
            assert!(
                response.headers.contains(&("set-cookie".into(), marker(0))),
                "{path}: the marker goes too"
            );
        }
        let mut failed_login = EdgeResponse::new(401);
        session.inbound(&route(LOGIN), &mut failed_login, 0);
        assert_eq!(failed_login.header("set-cookie"), None);
    }
}
