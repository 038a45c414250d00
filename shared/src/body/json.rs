//! Strict JSON parsing: unknown fields, malformed JSON and wrong types are refused as a
//! [`Problem`] that names the field's path.

use serde::de::DeserializeOwned;

use super::check::{Validate, refuse};
use crate::problem::{ErrorCode, Problem};

/// Parses a JSON body into `T`. Malformed JSON, a wrong type or a missing field is
/// `INVALID_JSON`; a field `T` does not declare is `UNKNOWN_FIELD`. The problem names the path of
/// the field (e.g. `points[3][1]`) where the parser knows it, and never quotes more than
/// [`MAX_DETAIL_CHARS`](super::MAX_DETAIL_CHARS) of the parser's message.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::check::{MAX_DETAIL_CHARS, MAX_FIELD_NAME_CHARS};
    use crate::problem::FieldError;

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
}
