//! Strict request bodies: JSON that refuses unknown fields, NaN and infinities, and the lengths and
//! ranges of the public API; every refusal is a [`Problem`] with a stable code naming the field.
//!
//! One submodule per family of routes: [`points`] (NCS), [`analysis`] (the upload and its
//! feedback), [`rules`], [`auth`], [`form`] (a strict `application/x-www-form-urlencoded`
//! decoder) and [`multipart`] (a strict `multipart/form-data` reader).
//!
//! Bodies refuse rather than report everything: the first broken rule found is the answer.

// A refusal is the `Problem` that goes on the wire; it is built on the cold path only, so it is
// returned by value rather than boxed.
#![allow(clippy::result_large_err)]

pub mod analysis;
pub mod auth;
pub mod form;
pub mod multipart;
pub mod points;
pub mod rules;

pub use analysis::{AnalysisFeedbackRequest, AnalysisOptions, AnalysisUpload};
pub use auth::{
    ApiKeyCreateRequest, LoginRequest, LogoutRequest, MfaVerifyRequest, PasswordChangeRequest,
    RefreshRequest,
};
pub use form::decode_form;
pub use points::{AlgorithmOverrides, ProcessPointsRequest};
pub use rules::{
    ActionKind, ConditionOperator, NaturalLanguageRuleRequest, RuleAction, RuleCondition,
    RuleDefinition, RuleEvaluateRequest, RulePatch, StoredRule,
};

use crate::problem::{ErrorCode, FieldError, Problem};
use serde::de::DeserializeOwned;

/// Longest detail or field-error message a refusal carries; parser messages can quote input.
pub const MAX_DETAIL_CHARS: usize = 200;

/// Longest field name or path echoed back in a refusal.
pub const MAX_FIELD_NAME_CHARS: usize = 64;

/// A body that knows the limits of its route.
pub trait Validate {
    /// `Ok` when every field is within its limits, else the first refusal found.
    fn validate(&self) -> Result<(), Problem>;
}

/// Parses a JSON body into `T`. Malformed JSON, a wrong type or a missing field is
/// `INVALID_JSON`; a field `T` does not declare is `UNKNOWN_FIELD`. The problem names the path of
/// the field (e.g. `points[3][1]`) where the parser knows it, and never quotes more than
/// [`MAX_DETAIL_CHARS`] of the parser's message.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(bytes).map_err(|error| json_problem::<T>(bytes, &error))
}

/// [`parse_json`], then [`Validate::validate`].
pub fn parse_valid<T: DeserializeOwned + Validate>(bytes: &[u8]) -> Result<T, Problem> {
    let body: T = parse_json(bytes)?;
    body.validate()?;
    Ok(body)
}

/// Builds the problem for a failed parse. Parsing again with path tracking costs nothing on the
/// accepted path and yields the field path on the refused one.
fn json_problem<T: DeserializeOwned>(bytes: &[u8], error: &serde_json::Error) -> Problem {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let path = match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Err(tracked) => tracked.path().to_string(),
        Ok(_) => String::new(),
    };
    // `.` is the root and `?` a segment the tracker could not name.
    let path = path.trim_end_matches("?").trim_end_matches('.').to_owned();
    let message = error.to_string();
    let quoted = quoted_name(&message);
    let (code, field) = if error.is_data() && message.starts_with("unknown field") {
        (ErrorCode::UnknownField, join_path(&path, quoted))
    } else if error.is_data() && message.starts_with("missing field") {
        (ErrorCode::InvalidJson, join_path(&path, quoted))
    } else {
        (ErrorCode::InvalidJson, path)
    };
    let field = if field.is_empty() {
        "body".to_owned()
    } else {
        field
    };
    refuse(code, field, message)
}

/// The first name the parser quoted in backticks, as in "unknown field `colour`".
fn quoted_name(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

fn join_path(path: &str, name: Option<&str>) -> String {
    match name {
        None => path.to_owned(),
        Some(name) if path.is_empty() => name.to_owned(),
        Some(name) if path == name || path.ends_with(&format!(".{name}")) => path.to_owned(),
        Some(name) => format!("{path}.{name}"),
    }
}

/// Cuts `text` to at most `max` characters, marking the cut.
fn cap(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

/// A refusal with `code` about `field`, whose message is also the problem's detail.
pub(crate) fn refuse(code: ErrorCode, field: impl AsRef<str>, message: impl AsRef<str>) -> Problem {
    let field = cap(field.as_ref(), MAX_FIELD_NAME_CHARS);
    let message = cap(message.as_ref(), MAX_DETAIL_CHARS);
    Problem::new(code)
        .with_detail(format!("{field}: {message}"))
        .with_field_error(FieldError {
            field,
            code,
            message,
        })
}

/// `VALIDATION_FAILED` about `field`.
pub(crate) fn invalid(field: impl AsRef<str>, message: impl AsRef<str>) -> Problem {
    refuse(ErrorCode::ValidationFailed, field, message)
}

/// Length of `value` in characters between `min` and `max`.
pub(crate) fn check_length(
    field: &str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<(), Problem> {
    let length = value.chars().take(max + 1).count();
    if length < min || length > max {
        return Err(invalid(
            field,
            format!("must be {min} to {max} characters long"),
        ));
    }
    Ok(())
}

/// [`check_length`], and no control characters: for names and other single-line text that ends
/// up in logs and lists.
pub(crate) fn check_line(field: &str, value: &str, min: usize, max: usize) -> Result<(), Problem> {
    check_length(field, value, min, max)?;
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// [`check_length`], and every character `allowed`; `charset` describes them for the caller.
pub(crate) fn check_charset(
    field: &str,
    value: &str,
    min: usize,
    max: usize,
    allowed: fn(char) -> bool,
    charset: &str,
) -> Result<(), Problem> {
    check_length(field, value, min, max)?;
    if !value.chars().all(allowed) {
        return Err(invalid(field, format!("may only contain {charset}")));
    }
    Ok(())
}

/// `value` within `min..=max`; NaN and infinities are never within.
pub(crate) fn check_range<T: PartialOrd + std::fmt::Display>(
    field: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), Problem> {
    if !(min <= value && value <= max) {
        return Err(invalid(field, format!("must be between {min} and {max}")));
    }
    Ok(())
}

/// Exactly six ASCII digits, as a TOTP code.
pub(crate) fn check_six_digits(field: &str, value: &str) -> Result<(), Problem> {
    if value.len() != 6 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(field, "must be exactly 6 digits"));
    }
    Ok(())
}

/// Optional fields are checked only when present.
pub(crate) fn check_some<T>(
    value: Option<&T>,
    check: impl FnOnce(&T) -> Result<(), Problem>,
) -> Result<(), Problem>
where
    T: ?Sized,
{
    value.map_or(Ok(()), check)
}

/// Characters of a rules context: `[A-Za-z0-9_\- ]`.
pub(crate) fn is_context_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
        list: Vec<u8>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        size: u32,
    }

    fn only_error(problem: &Problem) -> &FieldError {
        assert_eq!(problem.errors.len(), 1, "{problem:?}");
        &problem.errors[0]
    }

    #[test]
    fn unknown_fields_are_refused_with_their_path() {
        let root =
            parse_json::<Outer>(br#"{"inner":{"size":1},"list":[],"colour":"red"}"#).unwrap_err();
        assert_eq!(root.code, ErrorCode::UnknownField);
        assert_eq!(root.status, 422);
        assert_eq!(only_error(&root).field, "colour");
        let nested =
            parse_json::<Outer>(br#"{"inner":{"size":1,"extra":2},"list":[]}"#).unwrap_err();
        assert_eq!(nested.code, ErrorCode::UnknownField);
        assert_eq!(only_error(&nested).field, "inner.extra");
    }

    #[test]
    fn parse_failures_are_invalid_json_with_the_path() {
        let wrong_type =
            parse_json::<Outer>(br#"{"inner":{"size":1},"list":[1,"x"]}"#).unwrap_err();
        assert_eq!(wrong_type.code, ErrorCode::InvalidJson);
        assert_eq!(only_error(&wrong_type).field, "list[1]");
        let missing = parse_json::<Outer>(br#"{"inner":{},"list":[]}"#).unwrap_err();
        assert_eq!(missing.code, ErrorCode::InvalidJson);
        assert_eq!(only_error(&missing).field, "inner.size");
        for body in [
            &b""[..],
            b"{",
            b"nul",
            b"{\"inner\":{\"size\":1},\"list\":[]} trailing",
            b"\xff",
        ] {
            let problem = parse_json::<Outer>(body).unwrap_err();
            assert_eq!(problem.code, ErrorCode::InvalidJson, "{body:?}");
            assert_eq!(only_error(&problem).field, "body", "{body:?}");
        }
        let duplicate = parse_json::<Inner>(br#"{"size":1,"size":2}"#).unwrap_err();
        assert_eq!(duplicate.code, ErrorCode::InvalidJson);
    }

    #[test]
    fn refusals_do_not_echo_large_input() {
        let long = "x".repeat(10_000);
        let body = format!(r#"{{"inner":{{"size":"{long}"}},"list":[]}}"#);
        let problem = parse_json::<Outer>(body.as_bytes()).unwrap_err();
        assert_eq!(problem.code, ErrorCode::InvalidJson);
        let error = only_error(&problem);
        assert_eq!(error.field, "inner.size");
        assert!(error.message.chars().count() <= MAX_DETAIL_CHARS + 1);
        assert!(
            problem.detail.as_ref().unwrap().chars().count()
                <= MAX_FIELD_NAME_CHARS + MAX_DETAIL_CHARS + 4
        );
        let long_key = format!(r#"{{"{long}":1}}"#);
        let problem = parse_json::<Inner>(long_key.as_bytes()).unwrap_err();
        assert_eq!(problem.code, ErrorCode::UnknownField);
        assert!(problem.to_json().len() < 1_000);
    }

    #[test]
    fn caps_cut_on_character_boundaries() {
        assert_eq!(cap("héllo", 2), "hé…");
        assert_eq!(cap("héllo", 5), "héllo");
        assert_eq!(cap("", 0), "");
    }

    #[test]
    fn length_and_range_checks_are_inclusive() {
        assert!(check_length("f", "ab", 1, 2).is_ok());
        assert!(check_length("f", "ééé", 1, 3).is_ok());
        assert_eq!(
            check_length("f", "abc", 1, 2).unwrap_err().code,
            ErrorCode::ValidationFailed
        );
        assert_eq!(
            check_length("f", "", 1, 2).unwrap_err().code,
            ErrorCode::ValidationFailed
        );
        assert!(check_line("f", "a\tb", 1, 10).is_err());
        assert!(check_range("f", 1.0, 0.0, 1.0).is_ok());
        assert!(check_range("f", f64::NAN, 0.0, 1.0).is_err());
        assert!(check_range("f", f64::INFINITY, 0.0, f64::MAX).is_err());
        assert!(check_six_digits("f", "012345").is_ok());
        for code in ["12345", "1234567", "12345a", "١٢٣٤٥٦"] {
            assert!(check_six_digits("f", code).is_err(), "{code}");
        }
    }
}
