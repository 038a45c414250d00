//! A strict `application/x-www-form-urlencoded` decoder for small bodies such as a login form.

use super::check::{invalid, refuse};
use crate::problem::{ErrorCode, Problem};

/// Most fields one form may carry; the forms this decoder serves have a handful.
pub const MAX_FORM_FIELDS: usize = 64;

/// Decodes a urlencoded body into (name, value) pairs in order: `+` is a space, `%XX` a byte,
/// and the decoded bytes must be UTF-8. Empty segments (`a=1&&b=2`) are skipped and a segment
/// without `=` has an empty value. A bad escape, invalid UTF-8, an empty name or more than
/// [`MAX_FORM_FIELDS`] fields is `BAD_REQUEST`; a name given twice is `VALIDATION_FAILED`.
pub fn decode_form(body: &[u8]) -> Result<Vec<(String, String)>, Problem> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for segment in body
        .split(|&b| b == b'&')
        .filter(|segment| !segment.is_empty())
    {
        let (name, value) = match segment.iter().position(|&b| b == b'=') {
            Some(at) => (&segment[..at], &segment[at + 1..]),
            None => (segment, &b""[..]),
        };
        let name = decode_component(name)?;
        if name.is_empty() {
            return Err(refuse(
                ErrorCode::BadRequest,
                "body",
                "a form field has an empty name",
            ));
        }
        let value = decode_component(value)?;
        if fields.len() == MAX_FORM_FIELDS {
            return Err(refuse(
                ErrorCode::BadRequest,
                "body",
                format!("a form has at most {MAX_FORM_FIELDS} fields"),
            ));
        }
        if fields.iter().any(|(seen, _)| *seen == name) {
            return Err(invalid(&name, "is given more than once"));
        }
        fields.push((name, value));
    }
    Ok(fields)
}

fn decode_component(encoded: &[u8]) -> Result<String, Problem> {
    let mut decoded = Vec::with_capacity(encoded.len());
    let mut bytes = encoded.iter();
    while let Some(&byte) = bytes.next() {
        match byte {
            b'+' => decoded.push(b' '),
            b'%' => {
                let high = bytes.next().and_then(|&b| hex_value(b));
                let low = bytes.next().and_then(|&b| hex_value(b));
                match (high, low) {
                    (Some(high), Some(low)) => decoded.push(high << 4 | low),
                    _ => {
                        return Err(refuse(
                            ErrorCode::BadRequest,
                            "body",
                            "the form has a malformed percent-escape",
                        ));
                    }
                }
            }
            other => decoded.push(other),
        }
    }
    String::from_utf8(decoded)
        .map_err(|_| refuse(ErrorCode::BadRequest, "body", "the form is not UTF-8"))
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pairs(body: &[u8]) -> Vec<(String, String)> {
        decode_form(body).unwrap()
    }

    fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn decodes_plus_and_percent_escapes() {
        assert_eq!(
            pairs(b"a=1&b=two+words"),
            owned(&[("a", "1"), ("b", "two words")])
        );
        assert_eq!(
            pairs(b"p=%41%2b%2B%25%26%3D%20"),
            owned(&[("p", "A++%&= ")])
        );
        assert_eq!(pairs(b"name=caf%C3%A9"), owned(&[("name", "café")]));
        assert_eq!(pairs(b"f%5Fx=1"), owned(&[("f_x", "1")]));
        assert_eq!(pairs(b"a==b"), owned(&[("a", "=b")]));
    }

    #[test]
    fn empty_bodies_segments_and_values() {
        assert_eq!(pairs(b""), owned(&[]));
        assert_eq!(pairs(b"&&a=1&&"), owned(&[("a", "1")]));
        assert_eq!(pairs(b"flag&b="), owned(&[("flag", ""), ("b", "")]));
    }

    #[test]
    fn malformed_forms_are_bad_requests() {
        for body in [
            &b"a=%"[..],
            b"a=%4",
            b"a=%zz",
            b"a=%4g&b=1",
            b"=1",
            b"%=1",
            b"a=%FF",
            b"a=\xff",
            b"a=%C3",
        ] {
            let problem = decode_form(body).unwrap_err();
            assert_eq!(problem.code, ErrorCode::BadRequest, "{body:?}");
            assert_eq!(problem.status, 400);
        }
        assert_eq!(decode_form(b"%20=1").unwrap(), owned(&[(" ", "1")]));
    }

    #[test]
    fn repeated_names_are_refused_even_when_spelled_differently() {
        let problem = decode_form(b"a=1&b=2&%61=3").unwrap_err();
        assert_eq!(problem.code, ErrorCode::ValidationFailed);
        assert_eq!(problem.errors[0].field, "a");
    }

    #[test]
    fn field_count_is_capped() {
        let body = |n: usize| {
            (0..n)
                .map(|i| format!("f{i}=1"))
                .collect::<Vec<_>>()
                .join("&")
        };
        assert_eq!(decode_form(body(64).as_bytes()).unwrap().len(), 64);
        let problem = decode_form(body(65).as_bytes()).unwrap_err();
        assert_eq!(problem.code, ErrorCode::BadRequest);
        assert_eq!(
            decode_form(body(100_000).as_bytes()).unwrap_err().code,
            ErrorCode::BadRequest
        );
    }

    proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_form(&body);
        }

        #[test]
        fn encoded_text_round_trips(name in "[a-z_]{1,8}", value in "\\PC{0,16}") {
            let encode = |text: &str| -> String { text.bytes().map(|b| format!("%{b:02X}")).collect() };
            let body = format!("{}={}", encode(&name), encode(&value));
            prop_assert_eq!(decode_form(body.as_bytes()).unwrap(), vec![(name, value)]);
        }
    }
}
