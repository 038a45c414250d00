//! RFC 9457 problem details and the stable machine codes of the public API.
//!
//! Every refusal anywhere in the system is one [`ErrorCode`]; the code decides the HTTP status and
//! the title, so the mapping lives here once and both sides of the wire agree on it.

use serde::{Deserialize, Serialize};

/// Media type of every error body.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Prefix of the `type` URI of a problem; the code in kebab case follows it.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:h200:problem:";

macro_rules! error_codes {
    ($($variant:ident => ($name:literal, $status:literal, $title:literal)),+ $(,)?) => {
        /// A stable, machine-readable reason for refusing a request.
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ErrorCode {
            $(#[serde(rename = $name)] $variant),+
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            /// The HTTP status this code is always answered with.
            pub const fn status(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $status),+
                }
            }

            /// The code as it appears on the wire, e.g. `EXPIRED_TOKEN`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name),+
                }
            }

            /// A short, human-readable summary that never depends on the request.
            pub const fn title(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $title),+
                }
            }
        }
    };
}

error_codes! {
    // Authentication (401).
    MissingCredentials => ("MISSING_CREDENTIALS", 401, "Authentication is required"),
    InvalidCredentials => ("INVALID_CREDENTIALS", 401, "Invalid username or password"),
    InvalidToken => ("INVALID_TOKEN", 401, "The access token is not valid"),
    ExpiredToken => ("EXPIRED_TOKEN", 401, "The access token has expired"),
    RevokedToken => ("REVOKED_TOKEN", 401, "The token has been revoked"),
    RevokedKey => ("REVOKED_KEY", 401, "The key that signed the token has been revoked"),
    InvalidApiKey => ("INVALID_API_KEY", 401, "The API key is not valid"),
    RevokedApiKey => ("REVOKED_API_KEY", 401, "The API key has been revoked"),
    MfaRequired => ("MFA_REQUIRED", 401, "A one-time code is required"),
    InvalidMfaCode => ("INVALID_MFA_CODE", 401, "The one-time code is not valid"),
    RefreshTokenReused => ("REFRESH_TOKEN_REUSED", 401, "The refresh token was already used; its session is revoked"),
    InvalidTicket => ("INVALID_TICKET", 401, "The socket ticket is not valid, has expired, was used already or names another stream"),
    // Edge-to-backend signatures (401).
    MissingSignature => ("MISSING_SIGNATURE", 401, "The request is not signed"),
    InvalidSignature => ("INVALID_SIGNATURE", 401, "The request signature is not valid"),
    StaleSignature => ("STALE_SIGNATURE", 401, "The request signature is outside the accepted window"),
    ReplayedRequest => ("REPLAYED_REQUEST", 401, "The request was already seen"),
    // Authorization and access (403).
    InsufficientPermissions => ("INSUFFICIENT_PERMISSIONS", 403, "The caller lacks the permission this route requires"),
    IpBlocked => ("IP_BLOCKED", 403, "Requests from this address are blocked"),
    CorsOriginDenied => ("CORS_ORIGIN_DENIED", 403, "The origin is not allowed"),
    CsrfRejected => ("CSRF_REJECTED", 403, "A cookie session request lacks its X-H200-Session header or comes from another site"),
    // Shape of the request.
    BadRequest => ("BAD_REQUEST", 400, "The request is malformed"),
    SuspiciousRequest => ("SUSPICIOUS_REQUEST", 400, "The request looks like an attack and was refused"),
    NotFound => ("NOT_FOUND", 404, "No such resource"),
    MethodNotAllowed => ("METHOD_NOT_ALLOWED", 405, "The method is not allowed on this route"),
    Conflict => ("CONFLICT", 409, "The request conflicts with the current state"),
    PayloadTooLarge => ("PAYLOAD_TOO_LARGE", 413, "The request body is too large"),
    UnsupportedMediaType => ("UNSUPPORTED_MEDIA_TYPE", 415, "The content type is not supported here"),
    InvalidJson => ("INVALID_JSON", 422, "The body is not valid JSON for this route"),
    UnknownField => ("UNKNOWN_FIELD", 422, "The body has a field this route does not accept"),
    ValidationFailed => ("VALIDATION_FAILED", 422, "A field is out of its allowed range"),
    WeakPassword => ("WEAK_PASSWORD", 422, "The password does not meet the password policy"),
    PasswordReused => ("PASSWORD_REUSED", 422, "The password was used recently"),
    // Uploads.
    InvalidImageFormat => ("INVALID_IMAGE_FORMAT", 422, "The upload is not a JPEG, PNG or WebP image of the declared type"),
    ImageTooLarge => ("IMAGE_TOO_LARGE", 422, "The image dimensions exceed the allowed maximum"),
    // NeuroCluster Streamer input.
    EmptyPoints => ("EMPTY_POINTS", 422, "No points were given"),
    TooManyPoints => ("TOO_MANY_POINTS", 422, "Too many points in one request"),
    DimensionMismatch => ("DIMENSION_MISMATCH", 422, "Points of one request must share one dimension"),
    InvalidInput => ("INVALID_INPUT", 422, "A point value is not a finite number within bounds"),
    // Limits.
    UpgradeRequired => ("UPGRADE_REQUIRED", 426, "This route takes a WebSocket upgrade"),
    RateLimitExceeded => ("RATE_LIMIT_EXCEEDED", 429, "Too many requests"),
    // Server side.
    Internal => ("INTERNAL", 500, "Internal error"),
    NotImplemented => ("NOT_IMPLEMENTED", 501, "This runtime does not offer this route"),
    UpstreamUnavailable => ("UPSTREAM_UNAVAILABLE", 502, "The backend is unavailable"),
    ServiceUnavailable => ("SERVICE_UNAVAILABLE", 503, "The service is unavailable"),
    ClientAddressUnknown => ("CLIENT_ADDRESS_UNKNOWN", 503, "The runtime gave no trustworthy client address"),
    UpstreamTimeout => ("UPSTREAM_TIMEOUT", 504, "The backend did not answer in time"),
}

impl ErrorCode {
    /// The `type` URI of this problem, e.g. `urn:h200:problem:expired-token`.
    pub fn type_uri(self) -> String {
        let kebab = self.as_str().to_ascii_lowercase().replace('_', "-");
        format!("{PROBLEM_TYPE_PREFIX}{kebab}")
    }

    /// Looks a code up by its wire name.
    pub fn from_name(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|code| code.as_str() == name)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One field-level reason inside a validation problem.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// JSON pointer-ish path of the offending field, e.g. `points[3][0]`.
    pub field: String,
    pub code: ErrorCode,
    pub message: String,
}

/// An RFC 9457 problem document with the project's extensions (`code`, `request_id`, `errors`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub code: ErrorCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    /// A problem for `code` with its fixed status and title.
    pub fn new(code: ErrorCode) -> Self {
        Problem {
            type_uri: code.type_uri(),
            title: code.title().to_owned(),
            status: code.status(),
            detail: None,
            instance: None,
            code,
            request_id: None,
            errors: Vec::new(),
        }
    }

    /// Adds a human-readable explanation. It must never carry a secret or internal detail.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    pub fn with_field_error(mut self, error: FieldError) -> Self {
        self.errors.push(error);
        self
    }

    /// The JSON body of the problem.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a problem always serializes; this is a bug")
    }
}

impl From<ErrorCode> for Problem {
    fn from(code: ErrorCode) -> Self {
        Problem::new(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_are_screaming_snake_case_and_round_trip() {
        assert_eq!(ErrorCode::ExpiredToken.as_str(), "EXPIRED_TOKEN");
        assert_eq!(ErrorCode::RateLimitExceeded.as_str(), "RATE_LIMIT_EXCEEDED");
        assert_eq!(
            ErrorCode::InsufficientPermissions.as_str(),
            "INSUFFICIENT_PERMISSIONS"
        );
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_name(code.as_str()), Some(*code));
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
        assert_eq!(ErrorCode::from_name("NOT_A_CODE"), None);
    }

    #[test]
    fn statuses_match_the_design() {
        assert_eq!(ErrorCode::ExpiredToken.status(), 401);
        assert_eq!(ErrorCode::InsufficientPermissions.status(), 403);
        assert_eq!(ErrorCode::RateLimitExceeded.status(), 429);
        assert_eq!(ErrorCode::PayloadTooLarge.status(), 413);
        assert_eq!(ErrorCode::UnsupportedMediaType.status(), 415);
        assert_eq!(ErrorCode::InvalidImageFormat.status(), 422);
        assert_eq!(ErrorCode::DimensionMismatch.status(), 422);
        assert_eq!(ErrorCode::SuspiciousRequest.status(), 400);
        for code in ErrorCode::ALL {
            assert!(
                (400..600).contains(&code.status()),
                "{code} has status {}",
                code.status()
            );
        }
    }

    #[test]
    fn problem_json_has_rfc9457_members_and_the_code() {
        let problem = Problem::new(ErrorCode::ExpiredToken)
            .with_detail("token expired 12 s ago")
            .with_request_id("req-1");
        let value: serde_json::Value = serde_json::from_str(&problem.to_json()).unwrap();
        assert_eq!(value["type"], "urn:h200:problem:expired-token");
        assert_eq!(value["status"], 401);
        assert_eq!(value["code"], "EXPIRED_TOKEN");
        assert_eq!(value["request_id"], "req-1");
        assert_eq!(value["title"], "The access token has expired");
        assert!(value.get("errors").is_none(), "empty errors are omitted");
        let back: Problem = serde_json::from_value(value).unwrap();
        assert_eq!(back, problem);
    }
}
