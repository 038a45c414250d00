//! Stage 3: CORS preflights are answered here and never forwarded; other origins get 403.

use shared::cors::CorsPolicy;

use super::Refusal;
use crate::message::{EdgeRequest, EdgeResponse};

/// Whether `request` is a CORS preflight (`OPTIONS`).
pub fn is_preflight(request: &EdgeRequest) -> bool {
    request.method == "OPTIONS"
}

/// The answer to a preflight: 204 with the `Access-Control-*` fields for an allowed origin
/// asking for allowed methods and headers, else `CORS_ORIGIN_DENIED` (403). A preflight without
/// `Origin` or `Access-Control-Request-Method` is refused the same way.
pub fn preflight(policy: &CorsPolicy, request: &EdgeRequest) -> Result<EdgeResponse, Refusal> {
    let origin = request.header("origin");
    let method = request.header("access-control-request-method");
    let (Some(origin), Some(method)) = (origin, method) else {
        return Err(Refusal::new(shared::ErrorCode::CorsOriginDenied)
            .with_detail("a preflight needs Origin and Access-Control-Request-Method"));
    };
    let asked_headers = request.header("access-control-request-headers");
    match policy.preflight(origin, method, asked_headers) {
        Ok(fields) => {
            let mut response = EdgeResponse::new(204);
            for (name, value) in fields {
                response.set_header(name, value);
            }
            Ok(response)
        }
        Err(error) => Err(Refusal::new(error.code()).with_detail(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(origin: &str, method: &str) -> EdgeRequest {
        EdgeRequest {
            method: "OPTIONS".into(),
            path: "/api/v1/rules".into(),
            query: None,
            headers: vec![
                ("origin".into(), origin.into()),
                ("access-control-request-method".into(), method.into()),
                (
                    "access-control-request-headers".into(),
                    "authorization, content-type".into(),
                ),
            ],
            client_ip: "203.0.113.1".into(),
        }
    }

    #[test]
    fn an_allowed_origin_gets_204_and_another_403() {
        let policy = CorsPolicy::new(&["https://app.example"], false).expect("valid origin");
        let allowed = preflight(&policy, &request("https://app.example", "POST")).expect("allowed");
        assert_eq!(allowed.status, 204);
        assert_eq!(
            allowed.header("access-control-allow-origin"),
            Some("https://app.example")
        );
        let refused =
            preflight(&policy, &request("https://evil.example", "POST")).expect_err("refused");
        assert_eq!(refused.problem.status, 403);
        assert_eq!(refused.code(), shared::ErrorCode::CorsOriginDenied);
        let bad_method =
            preflight(&policy, &request("https://app.example", "PUT")).expect_err("refused");
        assert_eq!(bad_method.code(), shared::ErrorCode::CorsOriginDenied);
    }
}
