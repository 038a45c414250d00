//! Stage 2 (applied on the way out): security headers on every response, refusals included;
//! `Server` and `X-Powered-By` removed; the request id echoed; CORS and rate-limit fields added.

use shared::headers::{REMOVED_HEADERS, REQUEST_ID_HEADER, ResponseProfile, security_headers};
use shared::problem::PROBLEM_CONTENT_TYPE;
use shared::rate_limit::RateDecision;

use super::Refusal;
use crate::message::EdgeResponse;
use crate::ports::UpstreamResponse;

/// Header fields that describe one connection and never cross the edge.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// The problem+json answer for `refusal`, carrying `request_id`.
pub fn refusal_response(refusal: &Refusal, request_id: &str) -> EdgeResponse {
    let problem = refusal.problem.as_ref().clone().with_request_id(request_id);
    let mut response = EdgeResponse::new(problem.status);
    response.set_header("content-type", PROBLEM_CONTENT_TYPE);
    response.set_header("cache-control", "no-store");
    for (name, value) in &refusal.headers {
        response.set_header(name, value.clone());
    }
    response.body = problem.to_json().into_bytes();
    response
}

/// A JSON document the edge answers itself (the OpenAPI document), cacheable for a minute.
pub fn json_document(document: &str) -> EdgeResponse {
    let mut response = EdgeResponse::new(200);
    response.set_header("content-type", "application/json");
    response.set_header("cache-control", "public, max-age=60");
    response.body = document.as_bytes().to_vec();
    response
}

/// The backend's answer as the client will see it, without hop-by-hop fields.
pub fn from_upstream(upstream: UpstreamResponse) -> EdgeResponse {
    let headers = upstream
        .headers
        .into_iter()
        .filter(|(name, _)| !HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)))
        .collect();
    EdgeResponse {
        status: upstream.status,
        headers,
        body: upstream.body,
    }
}

/// Makes `response` ready to leave: removes [`REMOVED_HEADERS`], sets the API security headers
/// (replacing upstream values), the request id, the CORS fields and, when the route was
/// rate-limited, the fields of the most restrictive decision.
pub fn finish(
    response: &mut EdgeResponse,
    request_id: &str,
    cors: &[(&'static str, String)],
    rate: Option<&RateDecision>,
) {
    for name in REMOVED_HEADERS {
        response.remove_header(name);
    }
    for (name, value) in security_headers(ResponseProfile::Api) {
        response.set_header(name, *value);
    }
    response.set_header(REQUEST_ID_HEADER, request_id);
    for (name, value) in cors {
        response.set_header(name, value.clone());
    }
    if let Some(decision) = rate {
        for (name, value) in decision.response_headers() {
            response.set_header(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::ErrorCode;

    #[test]
    fn every_response_gets_the_security_headers_and_loses_the_stack_banner() {
        let upstream = UpstreamResponse {
            status: 200,
            headers: vec![
                ("server".into(), "axum".into()),
                ("x-powered-by".into(), "rust".into()),
                ("transfer-encoding".into(), "chunked".into()),
                ("content-type".into(), "application/json".into()),
                ("x-frame-options".into(), "ALLOWALL".into()),
            ],
            body: b"{}".to_vec(),
        };
        let mut response = from_upstream(upstream);
        finish(&mut response, "rid-1", &[("Vary", "Origin".into())], None);
        assert_eq!(response.header("server"), None);
        assert_eq!(response.header("x-powered-by"), None);
        assert_eq!(response.header("transfer-encoding"), None);
        assert_eq!(response.header("x-frame-options"), Some("DENY"));
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(
            response.header("strict-transport-security"),
            Some(shared::headers::HSTS)
        );
        assert_eq!(response.header("x-request-id"), Some("rid-1"));
        assert_eq!(response.header("vary"), Some("Origin"));
        assert_eq!(response.header("content-type"), Some("application/json"));
    }

    #[test]
    fn a_refusal_is_problem_json_with_its_code_request_id_and_headers() {
        let refusal = Refusal::new(ErrorCode::RateLimitExceeded).with_header("Retry-After", "7");
        let response = refusal_response(&refusal, "rid-9");
        assert_eq!(response.status, 429);
        assert_eq!(response.header("content-type"), Some(PROBLEM_CONTENT_TYPE));
        assert_eq!(response.header("retry-after"), Some("7"));
        let body: serde_json::Value = serde_json::from_slice(&response.body).expect("problem json");
        assert_eq!(body["code"], "RATE_LIMIT_EXCEEDED");
        assert_eq!(body["request_id"], "rid-9");
        assert_eq!(body["status"], 429);
    }
}
