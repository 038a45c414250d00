//! Stage 9: the body. The declared type must be one the route takes (415), the body is read
//! only up to the route's limit (413), typed JSON bodies are validated with [`shared::body`]
//! and image uploads with [`shared::upload::inspect`] (422), all before anything is forwarded.

use shared::ErrorCode;
use shared::body::stream::TICKETS_PATH;
use shared::body::{
    AccountPatch, AnalysisFeedbackRequest, AnalysisUpload, ApiKeyCreateRequest, LoginRequest,
    LogoutRequest, MfaVerifyRequest, NaturalLanguageRuleRequest, PasswordChangeRequest,
    ProcessPointsRequest, RefreshRequest, RuleDefinition, RuleEvaluateRequest, RulePatch,
    StreamTicketRequest, UserCreateRequest, UserPatch, parse_valid,
};
use shared::route_policy::{ContentKind, Route};
use shared::upload::BodyLimit;

use super::Refusal;
use crate::ports::BodySource;

/// The path of the image upload route.
pub const ANALYSIS_PATH: &str = "/api/v1/analysis";

/// Checks what the headers declare before any byte is read: a content type the route does not
/// take is `UNSUPPORTED_MEDIA_TYPE`, a `Content-Length` over the limit `PAYLOAD_TOO_LARGE`.
/// A request declaring no content (`Content-Length: 0`, or no length on a route that takes no
/// body) is not refused for its `Content-Type`, which means nothing without content (RFC 9110
/// §8.3); [`check_body`] still refuses a body of the wrong type once one arrives.
pub fn check_declared(
    route: &Route,
    content_type: Option<&str>,
    content_length: Option<u64>,
) -> Result<(), Refusal> {
    let declares_no_content = match content_length {
        Some(length) => length == 0,
        None => route.content_types.is_empty(),
    };
    if !declares_no_content && !route.accepts_content_type(content_type) {
        return Err(Refusal::new(ErrorCode::UnsupportedMediaType).with_detail(accepted(route)));
    }
    if let Some(length) = content_length {
        BodyLimit::new(route.body_limit)
            .check_declared_length(length)
            .map_err(|e| Refusal::new(e.code()).with_detail(e.to_string()))?;
    }
    Ok(())
}

fn accepted(route: &Route) -> String {
    if route.content_types.is_empty() {
        return "this route takes no body".to_owned();
    }
    let kinds: Vec<&str> = route.content_types.iter().map(|k| k.media_type()).collect();
    format!("send {}", kinds.join(" or "))
}

/// Reads the body chunk by chunk and stops at the first chunk past `limit`
/// (`PAYLOAD_TOO_LARGE`).
pub async fn read_limited<B: BodySource>(body: &mut B, limit: u64) -> Result<Vec<u8>, Refusal> {
    let mut budget = BodyLimit::new(limit);
    let mut bytes = Vec::new();
    loop {
        let chunk = body
            .next_chunk()
            .await
            .map_err(|e| Refusal::new(ErrorCode::BadRequest).with_detail(e.to_string()))?;
        let Some(chunk) = chunk else {
            return Ok(bytes);
        };
        budget
            .push(chunk.len())
            .map_err(|e| Refusal::new(e.code()).with_detail(e.to_string()))?;
        bytes.extend_from_slice(&chunk);
    }
}

/// Validates a whole body of `route` sent with `content_type`: a body without a type is 415;
/// typed JSON bodies must parse strictly and be within their limits; an analysis upload must be
/// a well-formed form with one `image` part that passes the upload policy and valid options.
pub fn check_body(
    method: &str,
    route: &Route,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), Refusal> {
    if body.is_empty() {
        return Ok(());
    }
    let Some(content_type) = content_type else {
        return Err(Refusal::new(ErrorCode::UnsupportedMediaType).with_detail(accepted(route)));
    };
    if !route.accepts_content_type(Some(content_type)) {
        return Err(Refusal::new(ErrorCode::UnsupportedMediaType).with_detail(accepted(route)));
    }
    let kind = ContentKind::of(content_type);
    let outcome = match (kind, method, route.path.as_str()) {
        (Some(ContentKind::Form), "POST", "/auth/login") => LoginRequest::from_form(body).map(drop),
        (Some(ContentKind::Json), "POST", "/auth/login") => LoginRequest::from_json(body).map(drop),
        (Some(ContentKind::Json), "POST", "/auth/logout") => {
            parse_valid::<LogoutRequest>(body).map(drop)
        }
        (Some(ContentKind::Json), "POST", "/auth/password") => {
            parse_valid::<PasswordChangeRequest>(body).map(drop)
        }
        (Some(ContentKind::Json), "POST", "/auth/refresh") => {
            parse_valid::<RefreshRequest>(body).map(drop)
        }
        (Some(ContentKind::Json), "POST", "/auth/mfa/verify") => {
            parse_valid::<MfaVerifyRequest>(body).map(drop)
        }
        (Some(ContentKind::Json), "POST", "/auth/api-keys") => {
            parse_valid::<ApiKeyCreateRequest>(body).map(drop)
        }
        (Some(ContentKind::Json), "PATCH", "/api/v1/me") => {
            parse_valid::<AccountPatch>(body).map(drop)
        }
        (Some(ContentKind::Json), "POST", "/api/v1/admin/users") => {
            parse_valid::<UserCreateRequest>(body).map(drop)
        }
        (Some(ContentKind::Json), "PATCH", "/api/v1/admin/users/{id}") => {
            parse_valid::<UserPatch>(body).map(drop)
        }
        (Some(ContentKind::Json), "POST", "/api/v1/rules") => {
            parse_valid::<RuleDefinition>(body).map(drop)
        }
        (Some(ContentKind::Json), "PATCH", "/api/v1/rules/{id}") => {
            parse_valid::<RulePatch>(body).map(drop)
        }
        (Some(ContentKind::Json), "POST", "/api/v1/rules/evaluate") => {
            parse_valid::<RuleEvaluateRequest>(body).map(drop)
        }
        (Some(ContentKind::Json), "POST", "/api/v1/rules/natural-language") => {
            parse_valid::<NaturalLanguageRuleRequest>(body).map(drop)
        }
        (Some(ContentKind::Json), "POST", "/api/v1/analysis/{id}/feedback") => {
            parse_valid::<AnalysisFeedbackRequest>(body).map(drop)
        }
        (Some(ContentKind::Json), "POST", "/api/v1/process_points") => {
            parse_valid::<ProcessPointsRequest>(body).map(drop)
        }
        (Some(ContentKind::Json), "POST", TICKETS_PATH) => {
            parse_valid::<StreamTicketRequest>(body).map(drop)
        }
        (Some(ContentKind::Multipart), "POST", ANALYSIS_PATH) => {
            return check_upload(content_type, body);
        }
        _ => Ok(()),
    };
    outcome.map_err(Refusal::from)
}

/// The analysis form, read with [`AnalysisUpload::parse`]: exactly one `image` part passing
/// [`shared::upload::inspect`] against its declared type, and the other fields as
/// [`shared::body::AnalysisOptions`].
pub fn check_upload(content_type: &str, body: &[u8]) -> Result<(), Refusal> {
    AnalysisUpload::parse(content_type, body)
        .map(drop)
        .map_err(Refusal::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::BufferedBody;
    use crate::testing::block_on;
    use shared::route_policy::{Resolution, RoutePolicy};

    fn route<'a>(policy: &'a RoutePolicy, method: &str, path: &str) -> &'a Route {
        match policy.resolve(method, path) {
            Resolution::Found(found) => found.route,
            other => panic!("no route for {method} {path}: {other:?}"),
        }
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13];
        bytes.extend_from_slice(b"IHDR");
        bytes.extend_from_slice(&width.to_be_bytes());
        bytes.extend_from_slice(&height.to_be_bytes());
        bytes.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
        bytes
    }

    fn form(image: &[u8], declared: &str) -> Vec<u8> {
        let mut body = b"--b1\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x\"\r\nContent-Type: ".to_vec();
        body.extend_from_slice(declared.as_bytes());
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(image);
        body.extend_from_slice(b"\r\n--b1\r\nContent-Disposition: form-data; name=\"confidence_threshold\"\r\n\r\n0.4\r\n--b1--\r\n");
        body
    }

    #[test]
    fn declared_types_and_lengths_are_checked_before_reading() {
        let policy = RoutePolicy::default();
        let analysis = route(&policy, "POST", ANALYSIS_PATH);
        let wrong = check_declared(analysis, Some("application/json"), Some(10)).expect_err("415");
        assert_eq!(wrong.code(), ErrorCode::UnsupportedMediaType);
        let huge = check_declared(
            analysis,
            Some("multipart/form-data; boundary=b"),
            Some(20 << 20),
        )
        .expect_err("413");
        assert_eq!(huge.code(), ErrorCode::PayloadTooLarge);
        assert_eq!(
            check_declared(analysis, Some("multipart/form-data; boundary=b"), Some(10)),
            Ok(())
        );
    }

    #[test]
    fn a_request_without_content_is_not_refused_for_its_content_type() {
        let policy = RoutePolicy::default();
        // The NCS SDK sends Content-Type: application/json on every request, GETs included.
        let status = route(&policy, "GET", "/api/v1/algorithm_status");
        assert_eq!(
            check_declared(status, Some("application/json"), None),
            Ok(())
        );
        assert_eq!(check_declared(status, Some("text/plain"), Some(0)), Ok(()));
        assert_eq!(
            check_body("GET", status, Some("application/json"), b""),
            Ok(())
        );
        let points = route(&policy, "POST", "/api/v1/process_points");
        assert_eq!(check_declared(points, Some("text/plain"), Some(0)), Ok(()));
        // A body of the wrong type still is refused, declared or arriving unannounced.
        let declared = check_declared(points, Some("text/plain"), Some(12)).expect_err("415");
        assert_eq!(declared.code(), ErrorCode::UnsupportedMediaType);
        let unlengthed = check_declared(points, Some("text/plain"), None).expect_err("415");
        assert_eq!(unlengthed.code(), ErrorCode::UnsupportedMediaType);
        let arrived = check_body("POST", points, Some("text/plain"), br#"{"points":[[1]]}"#)
            .expect_err("415");
        assert_eq!(arrived.code(), ErrorCode::UnsupportedMediaType);
    }

    #[test]
    fn reading_stops_at_the_limit() {
        struct Endless(u32);
        impl BodySource for Endless {
            async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, crate::ports::BodyError> {
                self.0 += 1;
                Ok(Some(vec![0u8; 1024]))
            }
        }
        let mut endless = Endless(0);
        let refused = block_on(read_limited(&mut endless, 4096)).expect_err("413");
        assert_eq!(refused.code(), ErrorCode::PayloadTooLarge);
        assert_eq!(endless.0, 5);
        let whole = block_on(read_limited(&mut BufferedBody::new(vec![1, 2, 3]), 3));
        assert_eq!(whole, Ok(vec![1, 2, 3]));
    }

    #[test]
    fn uploads_are_inspected_before_forwarding() {
        let policy = RoutePolicy::default();
        let analysis = route(&policy, "POST", ANALYSIS_PATH);
        let ct = "multipart/form-data; boundary=b1";
        assert_eq!(
            check_body("POST", analysis, Some(ct), &form(&png(64, 48), "image/png")),
            Ok(())
        );
        let mismatch = check_body(
            "POST",
            analysis,
            Some(ct),
            &form(&png(64, 48), "image/jpeg"),
        );
        assert_eq!(
            mismatch.map_err(|r| r.code()),
            Err(ErrorCode::InvalidImageFormat)
        );
        let text = check_body("POST", analysis, Some(ct), &form(b"hello", "image/png"));
        assert_eq!(
            text.map_err(|r| r.code()),
            Err(ErrorCode::InvalidImageFormat)
        );
        let bomb = check_body(
            "POST",
            analysis,
            Some(ct),
            &form(&png(5000, 10), "image/png"),
        );
        assert_eq!(bomb.map_err(|r| r.code()), Err(ErrorCode::ImageTooLarge));
    }

    #[test]
    fn typed_json_bodies_are_validated_with_stable_codes() {
        let policy = RoutePolicy::default();
        let points = route(&policy, "POST", "/api/v1/process_points");
        let json = Some("application/json");
        let empty = check_body("POST", points, json, br#"{"points":[]}"#).expect_err("422");
        assert_eq!(empty.code(), ErrorCode::EmptyPoints);
        let extra =
            check_body("POST", points, json, br#"{"points":[[1.0]],"colour":1}"#).expect_err("422");
        assert_eq!(extra.code(), ErrorCode::UnknownField);
        assert_eq!(
            check_body("POST", points, json, br#"{"points":[[1.0,2.0]]}"#),
            Ok(())
        );
        let untyped = check_body("POST", points, None, b"{}").expect_err("415");
        assert_eq!(untyped.code(), ErrorCode::UnsupportedMediaType);
        let login = route(&policy, "POST", "/auth/login");
        let form = Some("application/x-www-form-urlencoded");
        assert_eq!(
            check_body("POST", login, form, b"username=a&password=b"),
            Ok(())
        );
    }
}
