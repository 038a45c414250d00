//! The RFC 8941 structured-field subset that message signatures travel in: dictionaries whose
//! members are items or inner lists, with parameters. Strict and bounded; never panics.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::error::SignatureError;

/// Longest header value the parser reads, in bytes.
pub const MAX_HEADER_LEN: usize = 8 * 1024;
/// Most members one dictionary may hold.
pub const MAX_MEMBERS: usize = 16;
/// Most items one inner list may hold.
pub const MAX_INNER_LIST_ITEMS: usize = 32;
/// Most parameters one item or inner list may carry.
pub const MAX_PARAMS: usize = 16;
/// Longest dictionary or parameter key.
pub const MAX_KEY_LEN: usize = 64;
/// Largest magnitude of an RFC 8941 integer.
const MAX_INTEGER: i64 = 999_999_999_999_999;

/// A bare item of RFC 8941 §3.3 (decimals are not supported and are refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BareItem {
    Integer(i64),
    String(String),
    Token(String),
    ByteSequence(Vec<u8>),
    Boolean(bool),
}

/// Parameters in order of appearance; keys are unique.
pub type Parameters = Vec<(String, BareItem)>;

/// A dictionary member's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Member {
    Item(BareItem, Parameters),
    InnerList(Vec<(BareItem, Parameters)>, Parameters),
}

fn malformed(reason: &'static str) -> SignatureError {
    SignatureError::MalformedHeader(reason)
}

/// Parses a dictionary (RFC 8941 §4.2.2). Unlike the RFC, a repeated key or parameter is refused
/// rather than silently overwritten: a signature header must mean one thing.
pub(crate) fn parse_dictionary(input: &str) -> Result<Vec<(String, Member)>, SignatureError> {
    if input.len() > MAX_HEADER_LEN {
        return Err(malformed("header value too long"));
    }
    let mut parser = Parser {
        bytes: input.as_bytes(),
        pos: 0,
    };
    parser.skip_sp();
    let mut members: Vec<(String, Member)> = Vec::new();
    if parser.at_end() {
        return Err(malformed("empty dictionary"));
    }
    loop {
        let key = parser.key()?;
        let member = if parser.eat(b'=') {
            parser.item_or_inner_list()?
        } else {
            Member::Item(BareItem::Boolean(true), parser.parameters()?)
        };
        if members.iter().any(|(existing, _)| *existing == key) {
            return Err(malformed("repeated dictionary key"));
        }
        if members.len() == MAX_MEMBERS {
            return Err(malformed("too many dictionary members"));
        }
        members.push((key, member));
        parser.skip_ows();
        if parser.at_end() {
            return Ok(members);
        }
        if !parser.eat(b',') {
            return Err(malformed("expected a comma between members"));
        }
        parser.skip_ows();
        if parser.at_end() {
            return Err(malformed("trailing comma"));
        }
    }
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        // Trailing spaces after the last member are discarded (RFC 8941 §4.2).
        self.bytes
            .get(self.pos..)
            .is_none_or(|rest| rest.iter().all(|&b| b == b' '))
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn skip_sp(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn take_while(&mut self, accept: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&accept) {
            self.pos += 1;
        }
        // Every accepted byte is ASCII, so the slice is valid UTF-8.
        std::str::from_utf8(self.bytes.get(start..self.pos).unwrap_or_default()).unwrap_or_default()
    }

    fn key(&mut self) -> Result<String, SignatureError> {
        match self.peek() {
            Some(b) if b.is_ascii_lowercase() || b == b'*' => {}
            _ => return Err(malformed("a key must start with a lowercase letter or '*'")),
        }
        let key = self.take_while(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b'*')
        });
        if key.len() > MAX_KEY_LEN {
            return Err(malformed("key too long"));
        }
        Ok(key.to_owned())
    }

    fn item_or_inner_list(&mut self) -> Result<Member, SignatureError> {
        if self.peek() == Some(b'(') {
            self.inner_list()
        } else {
            let item = self.bare_item()?;
            Ok(Member::Item(item, self.parameters()?))
        }
    }

    fn inner_list(&mut self) -> Result<Member, SignatureError> {
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_sp();
            if self.eat(b')') {
                let params = self.parameters()?;
                return Ok(Member::InnerList(items, params));
            }
            if items.len() == MAX_INNER_LIST_ITEMS {
                return Err(malformed("too many items in an inner list"));
            }
            let item = self.bare_item()?;
            let params = self.parameters()?;
            items.push((item, params));
            if !matches!(self.peek(), Some(b' ' | b')')) {
                return Err(malformed("inner list items must be separated by a space"));
            }
        }
    }

    fn parameters(&mut self) -> Result<Parameters, SignatureError> {
        let mut params: Parameters = Vec::new();
        while self.eat(b';') {
            self.skip_sp();
            let key = self.key()?;
            let value = if self.eat(b'=') {
                self.bare_item()?
            } else {
                BareItem::Boolean(true)
            };
            if params.iter().any(|(existing, _)| *existing == key) {
                return Err(malformed("repeated parameter"));
            }
            if params.len() == MAX_PARAMS {
                return Err(malformed("too many parameters"));
            }
            params.push((key, value));
        }
        Ok(params)
    }

    fn bare_item(&mut self) -> Result<BareItem, SignatureError> {
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => self.integer(),
            Some(b'"') => self.string(),
            Some(b':') => self.byte_sequence(),
            Some(b'?') => self.boolean(),
            Some(b) if b.is_ascii_alphabetic() || b == b'*' => Ok(self.token()),
            _ => Err(malformed("expected an item")),
        }
    }

    fn integer(&mut self) -> Result<BareItem, SignatureError> {
        let negative = self.eat(b'-');
        let digits = self.take_while(|b| b.is_ascii_digit());
        if digits.is_empty() {
            return Err(malformed("an integer needs digits"));
        }
        if digits.len() > 15 {
            return Err(malformed("integer too long"));
        }
        if self.peek() == Some(b'.') {
            return Err(malformed("decimals are not supported"));
        }
        let magnitude: i64 = digits
            .parse()
            .map_err(|_| malformed("integer out of range"))?;
        Ok(BareItem::Integer(if negative {
            -magnitude
        } else {
            magnitude
        }))
    }

    fn string(&mut self) -> Result<BareItem, SignatureError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(malformed("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(BareItem::String(out));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(escaped @ (b'"' | b'\\')) => {
                            out.push(char::from(escaped));
                            self.pos += 1;
                        }
                        _ => return Err(malformed("bad escape in a string")),
                    }
                }
                Some(b @ 0x20..=0x7e) => {
                    out.push(char::from(b));
                    self.pos += 1;
                }
                Some(_) => return Err(malformed("a string holds printable ASCII only")),
            }
        }
    }

    fn token(&mut self) -> BareItem {
        let token = self.take_while(|b| is_tchar(b) || b == b':' || b == b'/');
        BareItem::Token(token.to_owned())
    }

    fn byte_sequence(&mut self) -> Result<BareItem, SignatureError> {
        self.pos += 1;
        let encoded =
            self.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
        let encoded = encoded.to_owned();
        if !self.eat(b':') {
            return Err(malformed("unterminated byte sequence"));
        }
        STANDARD
            .decode(encoded)
            .map(BareItem::ByteSequence)
            .map_err(|_| malformed("bad base64 in a byte sequence"))
    }

    fn boolean(&mut self) -> Result<BareItem, SignatureError> {
        self.pos += 1;
        if self.eat(b'1') {
            Ok(BareItem::Boolean(true))
        } else if self.eat(b'0') {
            Ok(BareItem::Boolean(false))
        } else {
            Err(malformed("a boolean is ?0 or ?1"))
        }
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_valid_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'*');
    first_ok
        && key.len() <= MAX_KEY_LEN
        && bytes.all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b'*')
        })
}

/// Appends `value` as an RFC 8941 string: quoted, with `"` and `\` escaped. Only printable ASCII
/// can be a string; anything else is refused.
pub(crate) fn write_string(out: &mut String, value: &str) -> Result<(), SignatureError> {
    if !value.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(malformed("a string holds printable ASCII only"));
    }
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(())
}

/// Appends a bare item in its canonical serialization (RFC 8941 §4.1.3).
pub(crate) fn write_bare_item(out: &mut String, item: &BareItem) -> Result<(), SignatureError> {
    match item {
        BareItem::Integer(value) => {
            if !(-MAX_INTEGER..=MAX_INTEGER).contains(value) {
                return Err(malformed("integer out of range"));
            }
            out.push_str(&value.to_string());
        }
        BareItem::String(value) => write_string(out, value)?,
        BareItem::Token(value) => {
            let mut bytes = value.bytes();
            let first_ok = bytes
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'*');
            if !first_ok || !bytes.all(|b| is_tchar(b) || b == b':' || b == b'/') {
                return Err(malformed("not a token"));
            }
            out.push_str(value);
        }
        BareItem::ByteSequence(bytes) => {
            out.push(':');
            out.push_str(&STANDARD.encode(bytes));
            out.push(':');
        }
        BareItem::Boolean(value) => out.push_str(if *value { "?1" } else { "?0" }),
    }
    Ok(())
}

/// Appends parameters in order; a `true` boolean is written as the bare key.
pub(crate) fn write_parameters(
    out: &mut String,
    params: &[(String, BareItem)],
) -> Result<(), SignatureError> {
    for (index, (key, value)) in params.iter().enumerate() {
        if !is_valid_key(key) {
            return Err(malformed("not a valid parameter key"));
        }
        if params
            .get(..index)
            .is_some_and(|before| before.iter().any(|(k, _)| k == key))
        {
            return Err(malformed("repeated parameter"));
        }
        out.push(';');
        out.push_str(key);
        if *value != BareItem::Boolean(true) {
            out.push('=');
            write_bare_item(out, value)?;
        }
    }
    Ok(())
}

/// Appends a dictionary key, refusing anything that is not one.
pub(crate) fn write_key(out: &mut String, key: &str) -> Result<(), SignatureError> {
    if !is_valid_key(key) {
        return Err(malformed("not a valid dictionary key"));
    }
    out.push_str(key);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_inner_lists_items_and_parameters() {
        let parsed = parse_dictionary(
            r#"sig1=("@method" "x-a\"b");created=12;keyid="k\\1";alg=hmac;flag, b=:AQID:, c=?0, d=-7;x"#,
        )
        .unwrap();
        assert_eq!(parsed.len(), 4);
        assert_eq!(parsed[0].0, "sig1");
        assert_eq!(
            parsed[0].1,
            Member::InnerList(
                vec![
                    (BareItem::String("@method".into()), vec![]),
                    (BareItem::String("x-a\"b".into()), vec![]),
                ],
                vec![
                    ("created".into(), BareItem::Integer(12)),
                    ("keyid".into(), BareItem::String("k\\1".into())),
                    ("alg".into(), BareItem::Token("hmac".into())),
                    ("flag".into(), BareItem::Boolean(true)),
                ],
            )
        );
        assert_eq!(
            parsed[1].1,
            Member::Item(BareItem::ByteSequence(vec![1, 2, 3]), vec![])
        );
        assert_eq!(parsed[2].1, Member::Item(BareItem::Boolean(false), vec![]));
        assert_eq!(
            parsed[3].1,
            Member::Item(
                BareItem::Integer(-7),
                vec![("x".into(), BareItem::Boolean(true))]
            )
        );
    }

    #[test]
    fn refuses_malformed_and_ambiguous_input() {
        for bad in [
            "",
            "   ",
            "Sig=1",
            "a=1,",
            "a=1,,b=2",
            "a=1 b=2",
            "a=1, a=2",
            "a=1;p;p",
            "a=(\"x\"\"y\")",
            "a=\"unterminated",
            "a=\"bad\\n\"",
            "a=\"tab\there\"",
            "a=:not base64!:",
            "a=:AQID",
            "a=1.5",
            "a=1234567890123456",
            "a=?2",
            "a=(",
            "a=\"é\"",
        ] {
            assert!(parse_dictionary(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn refuses_oversized_input() {
        let long = format!("a=\"{}\"", "x".repeat(MAX_HEADER_LEN));
        assert_eq!(
            parse_dictionary(&long),
            Err(malformed("header value too long"))
        );
        let many: Vec<String> = (0..=MAX_MEMBERS).map(|i| format!("k{i}=1")).collect();
        assert_eq!(
            parse_dictionary(&many.join(", ")),
            Err(malformed("too many dictionary members"))
        );
        let items = vec!["1"; MAX_INNER_LIST_ITEMS + 1].join(" ");
        assert!(parse_dictionary(&format!("a=({items})")).is_err());
    }

    #[test]
    fn serializes_strings_with_escapes_and_refuses_non_ascii() {
        let mut out = String::new();
        write_string(&mut out, r#"a"b\c"#).unwrap();
        assert_eq!(out, r#""a\"b\\c""#);
        assert!(write_string(&mut String::new(), "line\nbreak").is_err());
        assert!(write_string(&mut String::new(), "é").is_err());
    }
}
