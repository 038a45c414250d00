//! What every body check shares: the [`Validate`] trait a body implements, refusals that name
//! their field and never quote more than a capped amount of input, and the length, charset and
//! range checks of the public API.

use crate::problem::{ErrorCode, FieldError, Problem};

/// Longest detail or field-error message a refusal carries; parser messages can quote input.
pub const MAX_DETAIL_CHARS: usize = 200;

/// Longest field name or path echoed back in a refusal.
pub const MAX_FIELD_NAME_CHARS: usize = 64;

/// A body that knows the limits of its route.
pub trait Validate {
    /// `Ok` when every field is within its limits, else the first refusal found.
    fn validate(&self) -> Result<(), Problem>;
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
