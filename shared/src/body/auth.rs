//! Bodies of the authentication routes: login (JSON or form), refresh, MFA and API keys.

use super::check::{
    Validate, check_length, check_line, check_range, check_six_digits, check_some, invalid, refuse,
};
use super::form::decode_form;
use super::json::parse_valid;
use crate::problem::{ErrorCode, Problem};
use serde::Deserialize;

/// Longest username, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;
/// Longest password, in characters; Argon2 hashes whatever it is given, so bound its cost.
pub const MAX_PASSWORD_CHARS: usize = 1_024;
/// Longest refresh token, in bytes.
pub const MAX_REFRESH_TOKEN_BYTES: usize = 4_096;
/// Longest API key name, in characters.
pub const MAX_API_KEY_NAME_CHARS: usize = 100;
/// Longest API key lifetime, in days.
pub const MAX_API_KEY_DAYS: u32 = 365;

/// `POST /auth/login`, as JSON or as a form. Its `Debug` never shows the password or the code.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// 1 to 64 characters, no control characters.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub username: String,
    /// 1 to 1 024 characters.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1024))]
    pub password: String,
    /// The current TOTP code, 6 digits, when MFA is on.
    #[serde(default)]
    pub totp_code: Option<String>,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("totp_code", &self.totp_code.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl LoginRequest {
    /// Parses and validates a JSON login body.
    pub fn from_json(body: &[u8]) -> Result<Self, Problem> {
        parse_valid(body)
    }

    /// Parses and validates an `application/x-www-form-urlencoded` login body (see
    /// [`decode_form`]). An unknown field is `UNKNOWN_FIELD`; a missing username or password is
    /// `VALIDATION_FAILED`.
    pub fn from_form(body: &[u8]) -> Result<Self, Problem> {
        let (mut username, mut password, mut totp_code) = (None, None, None);
        for (name, value) in decode_form(body)? {
            let slot = match name.as_str() {
                "username" => &mut username,
                "password" => &mut password,
                "totp_code" => &mut totp_code,
                _ => {
                    return Err(refuse(
                        ErrorCode::UnknownField,
                        &name,
                        "is not a field of this form",
                    ));
                }
            };
            *slot = Some(value);
        }
        let request = LoginRequest {
            username: username.ok_or_else(|| invalid("username", "is required"))?,
            password: password.ok_or_else(|| invalid("password", "is required"))?,
            totp_code,
        };
        request.validate()?;
        Ok(request)
    }
}

impl Validate for LoginRequest {
    fn validate(&self) -> Result<(), Problem> {
        check_line("username", &self.username, 1, MAX_USERNAME_CHARS)?;
        check_length("password", &self.password, 1, MAX_PASSWORD_CHARS)?;
        check_some(self.totp_code.as_deref(), |code| {
            check_six_digits("totp_code", code)
        })
    }
}

/// `POST /auth/refresh` with the token in the body. Its `Debug` never shows the token.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// 1 to 4 096 bytes.
    pub refresh_token: String,
}

impl std::fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshRequest")
            .field("refresh_token", &"[redacted]")
            .finish()
    }
}

impl Validate for RefreshRequest {
    fn validate(&self) -> Result<(), Problem> {
        if self.refresh_token.is_empty() || self.refresh_token.len() > MAX_REFRESH_TOKEN_BYTES {
            return Err(invalid(
                "refresh_token",
                format!("must be 1 to {MAX_REFRESH_TOKEN_BYTES} bytes long"),
            ));
        }
        Ok(())
    }
}

/// `POST /auth/mfa/verify`. Its `Debug` never shows the code.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfaVerifyRequest {
    /// 6 digits.
    pub code: String,
}

impl std::fmt::Debug for MfaVerifyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaVerifyRequest")
            .field("code", &"[redacted]")
            .finish()
    }
}

impl Validate for MfaVerifyRequest {
    fn validate(&self) -> Result<(), Problem> {
        check_six_digits("code", &self.code)
    }
}

/// `POST /auth/api-keys`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyCreateRequest {
    /// 1 to 100 characters, no control characters.
    pub name: String,
    /// 1 to 365 days; the key does not expire when absent.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

impl Validate for ApiKeyCreateRequest {
    fn validate(&self) -> Result<(), Problem> {
        check_line("name", &self.name, 1, MAX_API_KEY_NAME_CHARS)?;
        check_some(self.expires_in_days.as_ref(), |&days| {
            check_range("expires_in_days", days, 1, MAX_API_KEY_DAYS)
        })
    }
}

/// `POST /auth/logout`: optionally the session's refresh token, whose family then ends too.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    #[serde(default)]
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for LogoutRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogoutRequest")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

impl Validate for LogoutRequest {
    fn validate(&self) -> Result<(), Problem> {
        check_some(self.refresh_token.as_deref(), |token| {
            check_length("refresh_token", token, 1, MAX_REFRESH_TOKEN_BYTES)
        })
    }
}

/// `POST /auth/password`: the current password and the new one (the strength policy and the
/// history are the backend's to check; this bounds the input).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeRequest {
    pub current_password: String,
    pub new_password: String,
}

impl std::fmt::Debug for PasswordChangeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordChangeRequest")
            .finish_non_exhaustive()
    }
}

impl Validate for PasswordChangeRequest {
    fn validate(&self) -> Result<(), Problem> {
        check_length(
            "current_password",
            &self.current_password,
            1,
            MAX_PASSWORD_CHARS,
        )?;
        check_length("new_password", &self.new_password, 1, MAX_PASSWORD_CHARS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn login_json(value: serde_json::Value) -> Result<LoginRequest, Problem> {
        LoginRequest::from_json(&serde_json::to_vec(&value).unwrap())
    }

    fn field_of(problem: &Problem) -> (ErrorCode, &str) {
        (problem.code, problem.errors[0].field.as_str())
    }

    #[test]
    fn login_from_json_at_the_boundaries() {
        let request = login_json(
            serde_json::json!({"username": "ada", "password": "p", "totp_code": "012345"}),
        )
        .unwrap();
        assert_eq!(
            (request.username.as_str(), request.password.as_str()),
            ("ada", "p")
        );
        assert_eq!(request.totp_code.as_deref(), Some("012345"));
        let longest = login_json(
            serde_json::json!({"username": "u".repeat(64), "password": "é".repeat(1024)}),
        );
        assert!(longest.is_ok());
        let cases = [
            (
                serde_json::json!({"username": "", "password": "p"}),
                "username",
            ),
            (
                serde_json::json!({"username": "u".repeat(65), "password": "p"}),
                "username",
            ),
            (
                serde_json::json!({"username": "a\nb", "password": "p"}),
                "username",
            ),
            (
                serde_json::json!({"username": "u", "password": ""}),
                "password",
            ),
            (
                serde_json::json!({"username": "u", "password": "p".repeat(1025)}),
                "password",
            ),
            (
                serde_json::json!({"username": "u", "password": "p", "totp_code": "12345"}),
                "totp_code",
            ),
            (
                serde_json::json!({"username": "u", "password": "p", "totp_code": "1234567"}),
                "totp_code",
            ),
            (
                serde_json::json!({"username": "u", "password": "p", "totp_code": "12 456"}),
                "totp_code",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(
                field_of(&login_json(body.clone()).unwrap_err()),
                (ErrorCode::ValidationFailed, field),
                "{body}"
            );
        }
        let unknown =
            login_json(serde_json::json!({"username": "u", "password": "p", "remember": true}))
                .unwrap_err();
        assert_eq!(field_of(&unknown), (ErrorCode::UnknownField, "remember"));
        assert_eq!(
            field_of(&login_json(serde_json::json!({"username": "u"})).unwrap_err()),
            (ErrorCode::InvalidJson, "password")
        );
    }

    #[test]
    fn login_from_form() {
        let request =
            LoginRequest::from_form(b"username=ada+l&password=p%26ss%3D%2B1&totp_code=000000")
                .unwrap();
        assert_eq!(request.username, "ada l");
        assert_eq!(request.password, "p&ss=+1");
        assert_eq!(request.totp_code.as_deref(), Some("000000"));
        assert_eq!(
            LoginRequest::from_form(b"password=x&username=u")
                .unwrap()
                .totp_code,
            None
        );
        let cases: [(&[u8], ErrorCode, &str); 8] = [
            (
                b"username=u&password=p&grant_type=password",
                ErrorCode::UnknownField,
                "grant_type",
            ),
            (
                b"username=u&password=p&username=v",
                ErrorCode::ValidationFailed,
                "username",
            ),
            (b"username=u", ErrorCode::ValidationFailed, "password"),
            (b"password=p", ErrorCode::ValidationFailed, "username"),
            (
                b"username=&password=p",
                ErrorCode::ValidationFailed,
                "username",
            ),
            (
                b"username=u&password=p&totp_code=",
                ErrorCode::ValidationFailed,
                "totp_code",
            ),
            (b"username=u&password=%ZZ", ErrorCode::BadRequest, "body"),
            (b"username=%C3%28&password=p", ErrorCode::BadRequest, "body"),
        ];
        for (body, code, field) in cases {
            let problem = LoginRequest::from_form(body).unwrap_err();
            assert_eq!(
                field_of(&problem),
                (code, field),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let request =
            LoginRequest::from_form(b"username=ada&password=hunter2-secret&totp_code=987654")
                .unwrap();
        let shown = format!("{request:?}");
        assert!(shown.contains("ada"));
        assert!(
            !shown.contains("hunter2") && !shown.contains("987654"),
            "{shown}"
        );
        let refresh = RefreshRequest {
            refresh_token: "rt-secret".into(),
        };
        assert!(!format!("{refresh:?}").contains("rt-secret"));
        let mfa = MfaVerifyRequest {
            code: "123456".into(),
        };
        assert!(!format!("{mfa:?}").contains("123456"));
    }

    #[test]
    fn refresh_tokens_are_at_most_4096_bytes() {
        assert!(
            parse_valid::<RefreshRequest>(
                format!(r#"{{"refresh_token":"{}"}}"#, "t".repeat(4096)).as_bytes()
            )
            .is_ok()
        );
        let long = parse_valid::<RefreshRequest>(
            format!(r#"{{"refresh_token":"{}"}}"#, "t".repeat(4097)).as_bytes(),
        );
        assert_eq!(
            field_of(&long.unwrap_err()),
            (ErrorCode::ValidationFailed, "refresh_token")
        );
        assert_eq!(
            field_of(&parse_valid::<RefreshRequest>(br#"{"refresh_token":""}"#).unwrap_err()),
            (ErrorCode::ValidationFailed, "refresh_token")
        );
        assert_eq!(
            parse_valid::<RefreshRequest>(br#"{"refresh_token":"t","x":1}"#)
                .unwrap_err()
                .code,
            ErrorCode::UnknownField
        );
    }

    #[test]
    fn mfa_codes_are_six_digits() {
        assert_eq!(
            parse_valid::<MfaVerifyRequest>(br#"{"code":"000123"}"#)
                .unwrap()
                .code,
            "000123"
        );
        for bad in [
            &br#"{"code":"00012"}"#[..],
            br#"{"code":"0001234"}"#,
            br#"{"code":"00012a"}"#,
        ] {
            assert_eq!(
                field_of(&parse_valid::<MfaVerifyRequest>(bad).unwrap_err()),
                (ErrorCode::ValidationFailed, "code")
            );
        }
        assert_eq!(
            parse_valid::<MfaVerifyRequest>(br#"{"code":123456}"#)
                .unwrap_err()
                .code,
            ErrorCode::InvalidJson
        );
    }

    #[test]
    fn api_key_names_and_lifetimes() {
        let create = |body: &str| parse_valid::<ApiKeyCreateRequest>(body.as_bytes());
        assert_eq!(create(r#"{"name":"ci"}"#).unwrap().expires_in_days, None);
        assert_eq!(
            create(r#"{"name":"ci","expires_in_days":1}"#)
                .unwrap()
                .expires_in_days,
            Some(1)
        );
        assert_eq!(
            create(r#"{"name":"ci","expires_in_days":365}"#)
                .unwrap()
                .expires_in_days,
            Some(365)
        );
        assert!(create(&format!(r#"{{"name":"{}"}}"#, "n".repeat(100))).is_ok());
        assert_eq!(
            field_of(&create(r#"{"name":"ci","expires_in_days":0}"#).unwrap_err()),
            (ErrorCode::ValidationFailed, "expires_in_days")
        );
        assert_eq!(
            field_of(&create(r#"{"name":"ci","expires_in_days":366}"#).unwrap_err()),
            (ErrorCode::ValidationFailed, "expires_in_days")
        );
        assert_eq!(
            field_of(&create(r#"{"name":""}"#).unwrap_err()),
            (ErrorCode::ValidationFailed, "name")
        );
        assert_eq!(
            field_of(&create(&format!(r#"{{"name":"{}"}}"#, "n".repeat(101))).unwrap_err()),
            (ErrorCode::ValidationFailed, "name")
        );
        assert_eq!(
            field_of(&create(r#"{"name":"ci","scopes":[]}"#).unwrap_err()),
            (ErrorCode::UnknownField, "scopes")
        );
    }

    proptest! {
        #[test]
        fn form_login_never_panics(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = LoginRequest::from_form(&body);
        }

        #[test]
        fn form_like_login_never_panics(body in "[a-z_=&%+0-9A-F]{0,80}") {
            let _ = LoginRequest::from_form(body.as_bytes());
        }
    }

    #[test]
    fn logout_and_password_change_bodies_are_strict() {
        assert!(
            parse_valid::<LogoutRequest>(b"{}")
                .unwrap()
                .refresh_token
                .is_none()
        );
        let empty = parse_valid::<LogoutRequest>(br#"{"refresh_token": ""}"#).unwrap_err();
        assert_eq!(
            field_of(&empty),
            (ErrorCode::ValidationFailed, "refresh_token")
        );
        let extra = parse_valid::<LogoutRequest>(br#"{"everywhere": true}"#).unwrap_err();
        assert_eq!(extra.code, ErrorCode::UnknownField);
        let ok = parse_valid::<PasswordChangeRequest>(
            br#"{"current_password": "a", "new_password": "b"}"#,
        );
        let long = format!(
            r#"{{"current_password": "a", "new_password": "{}"}}"#,
            "x".repeat(1025)
        );
        let refused = parse_valid::<PasswordChangeRequest>(long.as_bytes()).unwrap_err();
        assert_eq!(
            field_of(&refused),
            (ErrorCode::ValidationFailed, "new_password")
        );
        let secret = PasswordChangeRequest {
            current_password: "Old-Secret-1".into(),
            new_password: "New-Secret-2".into(),
        };
        assert!(
            !format!("{secret:?}").contains("Secret"),
            "passwords never reach a log"
        );
        assert!(ok.is_ok());
    }
}
