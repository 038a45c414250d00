//! RFC 9421 signature bases and the `Signature-Input` / `Signature` fields, plus RFC 9530
//! content digests: the message-level pieces, independent of this system's signing profile.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::SignatureError;
use super::structured_field::{
    BareItem, Member, Parameters, parse_dictionary, write_bare_item, write_key, write_parameters,
    write_string,
};

/// The parts of an HTTP request that derived components and header fields are read from.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequestParts<'a> {
    /// The method exactly as sent (RFC 9421 does not normalize its case).
    pub method: &'a str,
    /// `https` or `http`; only `@target-uri` reads it.
    pub scheme: &'a str,
    /// Host and optional port; only `@authority` and `@target-uri` read it.
    pub authority: &'a str,
    /// The absolute path, still percent-encoded.
    pub path: &'a str,
    /// The query without its leading `?`; `None` when the target has none.
    pub query: Option<&'a str>,
    /// Header fields as received: any name case, in order; a name may repeat.
    pub headers: &'a [(&'a str, &'a str)],
}

/// The covered components and signature parameters of one signature: the inner list that is
/// both a `Signature-Input` member and the `@signature-params` line of the signature base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureInput {
    /// Component identifiers in order: derived ones start with `@`, header fields are lowercase.
    pub components: Vec<String>,
    /// Signature parameters (`created`, `keyid`, `alg`, `nonce`, ...) in order.
    pub params: Parameters,
}

impl SignatureInput {
    /// An input covering `components` (header names are lowercased) with no parameters yet.
    pub fn covering<S: AsRef<str>>(components: &[S]) -> Self {
        SignatureInput {
            components: components
                .iter()
                .map(|c| c.as_ref().to_ascii_lowercase())
                .collect(),
            params: Vec::new(),
        }
    }

    /// Adds a parameter after the existing ones.
    pub fn with_param(mut self, key: &str, value: BareItem) -> Self {
        self.params.push((key.to_owned(), value));
        self
    }

    /// The value of parameter `key`, if present.
    pub fn param(&self, key: &str) -> Option<&BareItem> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The canonical RFC 8941 serialization of the inner list with its parameters, e.g.
    /// `("@method" "@path");created=1618884473;keyid="k"`.
    pub fn serialize(&self) -> Result<String, SignatureError> {
        let mut out = String::from("(");
        for (index, component) in self.components.iter().enumerate() {
            if index > 0 {
                out.push(' ');
            }
            write_string(&mut out, component)?;
        }
        out.push(')');
        write_parameters(&mut out, &self.params)?;
        Ok(out)
    }
}

/// Builds the signature base of RFC 9421 §2.5: one `"identifier": value` line per covered
/// component, then `"@signature-params"` with the serialized input, with no trailing newline.
///
/// Supported derived components: `@method`, `@authority`, `@path`, `@query`, `@target-uri`.
/// Component parameters (`;sf`, `;key`, `;bs`, `;req`, `;name`) are not supported. A missing
/// header field, a repeated identifier or a value holding a control character is refused.
pub fn signature_base(
    request: &HttpRequestParts<'_>,
    input: &SignatureInput,
) -> Result<String, SignatureError> {
    let mut base = String::new();
    for (index, identifier) in input.components.iter().enumerate() {
        if input
            .components
            .get(..index)
            .is_some_and(|before| before.contains(identifier))
        {
            return Err(SignatureError::InvalidComponent(
                "a component is covered twice",
            ));
        }
        let value = component_value(request, identifier)?;
        if value.chars().any(|c| c.is_ascii_control() && c != '\t') {
            return Err(SignatureError::InvalidComponent(
                "a component value holds a control character",
            ));
        }
        write_string(&mut base, identifier)?;
        base.push_str(": ");
        base.push_str(&value);
        base.push('\n');
    }
    base.push_str("\"@signature-params\": ");
    base.push_str(&input.serialize()?);
    Ok(base)
}

fn component_value(
    request: &HttpRequestParts<'_>,
    identifier: &str,
) -> Result<String, SignatureError> {
    let query = request.query.unwrap_or("");
    let path = if request.path.is_empty() {
        "/"
    } else {
        request.path
    };
    match identifier {
        "@method" => Ok(request.method.to_owned()),
        "@authority" => Ok(request.authority.to_ascii_lowercase()),
        "@path" => Ok(path.to_owned()),
        "@query" => Ok(format!("?{query}")),
        "@target-uri" => {
            let mut uri = format!(
                "{}://{}{}",
                request.scheme.to_ascii_lowercase(),
                request.authority,
                path
            );
            if let Some(query) = request.query {
                uri.push('?');
                uri.push_str(query);
            }
            Ok(uri)
        }
        derived if derived.starts_with('@') => Err(SignatureError::InvalidComponent(
            "unsupported derived component",
        )),
        field => {
            if field.is_empty()
                || field
                    .bytes()
                    .any(|b| !(b.is_ascii_graphic()) || b.is_ascii_uppercase())
            {
                return Err(SignatureError::InvalidComponent(
                    "a header field name must be lowercase",
                ));
            }
            let values: Vec<&str> = request
                .headers
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case(field))
                .map(|(_, value)| value.trim_matches([' ', '\t']))
                .collect();
            if values.is_empty() {
                return Err(SignatureError::MissingComponent(field.to_owned()));
            }
            Ok(values.join(", "))
        }
    }
}

/// Serializes a one-member `Signature-Input` field value: `label=(...);params`.
pub fn signature_input_header(
    label: &str,
    input: &SignatureInput,
) -> Result<String, SignatureError> {
    let mut out = String::new();
    write_key(&mut out, label)?;
    out.push('=');
    out.push_str(&input.serialize()?);
    Ok(out)
}

/// Serializes a one-member `Signature` field value: `label=:base64:`.
pub fn signature_header(label: &str, signature: &[u8]) -> Result<String, SignatureError> {
    let mut out = String::new();
    write_key(&mut out, label)?;
    out.push('=');
    write_bare_item(&mut out, &BareItem::ByteSequence(signature.to_vec()))?;
    Ok(out)
}

/// Parses a `Signature-Input` field: every member must be an inner list of strings without
/// parameters of their own. Bounded and strict; never panics.
pub fn parse_signature_input(
    header: &str,
) -> Result<Vec<(String, SignatureInput)>, SignatureError> {
    parse_dictionary(header)?
        .into_iter()
        .map(|(label, member)| {
            let Member::InnerList(items, params) = member else {
                return Err(SignatureError::MalformedHeader(
                    "a signature input must be an inner list",
                ));
            };
            let components = items
                .into_iter()
                .map(|(item, item_params)| match item {
                    BareItem::String(identifier) if item_params.is_empty() => Ok(identifier),
                    BareItem::String(_) => Err(SignatureError::MalformedHeader(
                        "component parameters are not supported",
                    )),
                    _ => Err(SignatureError::MalformedHeader(
                        "a component identifier must be a string",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((label, SignatureInput { components, params }))
        })
        .collect()
}

/// Parses a `Signature` field: every member must be a byte sequence without parameters.
/// Bounded and strict; never panics.
pub fn parse_signature(header: &str) -> Result<Vec<(String, Vec<u8>)>, SignatureError> {
    parse_dictionary(header)?
        .into_iter()
        .map(|(label, member)| match member {
            Member::Item(BareItem::ByteSequence(bytes), params) if params.is_empty() => {
                Ok((label, bytes))
            }
            _ => Err(SignatureError::MalformedHeader(
                "a signature must be a byte sequence",
            )),
        })
        .collect()
}

/// The RFC 9530 `Content-Digest` field value of `body`: `sha-256=:BASE64:`.
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", STANDARD.encode(Sha256::digest(body)))
}

/// Checks a received `Content-Digest` field against `body`. The field must hold a `sha-256`
/// member (other algorithms beside it are ignored) equal to the body's digest; the comparison is
/// constant-time.
pub fn verify_content_digest(header: &str, body: &[u8]) -> Result<(), SignatureError> {
    let members = parse_dictionary(header)?;
    let claimed = members
        .iter()
        .find(|(algorithm, _)| algorithm == "sha-256")
        .ok_or(SignatureError::UnsupportedDigest)?;
    let Member::Item(BareItem::ByteSequence(claimed), _) = &claimed.1 else {
        return Err(SignatureError::MalformedHeader(
            "a digest must be a byte sequence",
        ));
    };
    let actual = Sha256::digest(body);
    if claimed.len() == actual.len() && bool::from(claimed.as_slice().ct_eq(actual.as_slice())) {
        Ok(())
    } else {
        Err(SignatureError::DigestMismatch)
    }
}

#[cfg(test)]
mod tests {
    use hmac::{Hmac, Mac};

    use super::*;

    /// The test request of RFC 9421 Appendix B.2.
    const RFC_HEADERS: &[(&str, &str)] = &[
        ("Host", "example.com"),
        ("Date", "Tue, 20 Apr 2021 02:07:55 GMT"),
        ("Content-Type", "application/json"),
        (
            "Content-Digest",
            "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
        ),
        ("Content-Length", "18"),
    ];

    fn rfc_request() -> HttpRequestParts<'static> {
        HttpRequestParts {
            method: "POST",
            scheme: "https",
            authority: "example.com",
            path: "/foo",
            query: Some("param=Value&Pet=dog"),
            headers: RFC_HEADERS,
        }
    }

    /// RFC 9421 Appendix B.1.5, `test-shared-secret`.
    const RFC_SHARED_SECRET: &str =
        "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ==";

    #[test]
    fn rfc9421_b_2_5_hmac_sha256_known_answer() {
        let input = SignatureInput::covering(&["date", "@authority", "content-type"])
            .with_param("created", BareItem::Integer(1_618_884_473))
            .with_param("keyid", BareItem::String("test-shared-secret".into()));
        let base = signature_base(&rfc_request(), &input).unwrap();
        assert_eq!(
            base,
            "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\
             \"@authority\": example.com\n\
             \"content-type\": application/json\n\
             \"@signature-params\": (\"date\" \"@authority\" \"content-type\");created=1618884473;keyid=\"test-shared-secret\""
        );
        let secret = STANDARD.decode(RFC_SHARED_SECRET).unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
        mac.update(base.as_bytes());
        let signature = mac.finalize().into_bytes();
        assert_eq!(
            signature_header("sig-b25", &signature).unwrap(),
            "sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:"
        );
        assert_eq!(
            signature_input_header("sig-b25", &input).unwrap(),
            r#"sig-b25=("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret""#
        );
        let parsed =
            parse_signature("sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:").unwrap();
        assert_eq!(parsed, vec![("sig-b25".to_owned(), signature.to_vec())]);
    }

    #[test]
    fn derived_components_follow_rfc9421_section_2_2() {
        let request = rfc_request();
        let input =
            SignatureInput::covering(&["@method", "@authority", "@path", "@query", "@target-uri"]);
        assert_eq!(
            signature_base(&request, &input).unwrap(),
            "\"@method\": POST\n\
             \"@authority\": example.com\n\
             \"@path\": /foo\n\
             \"@query\": ?param=Value&Pet=dog\n\
             \"@target-uri\": https://example.com/foo?param=Value&Pet=dog\n\
             \"@signature-params\": (\"@method\" \"@authority\" \"@path\" \"@query\" \"@target-uri\")"
        );
        let bare = HttpRequestParts {
            query: None,
            path: "",
            ..request
        };
        let input = SignatureInput::covering(&["@path", "@query", "@target-uri"]);
        assert_eq!(
            signature_base(&bare, &input).unwrap(),
            "\"@path\": /\n\"@query\": ?\n\"@target-uri\": https://example.com/\n\
             \"@signature-params\": (\"@path\" \"@query\" \"@target-uri\")"
        );
    }

    #[test]
    fn header_fields_are_trimmed_joined_and_case_insensitive() {
        let headers = [
            ("X-Forwarded", " a "),
            ("x-other", "z"),
            ("x-forwarded", "\tb"),
        ];
        let request = HttpRequestParts {
            headers: &headers,
            ..rfc_request()
        };
        let input = SignatureInput::covering(&["X-Forwarded"]);
        assert_eq!(input.components, vec!["x-forwarded".to_owned()]);
        assert_eq!(
            signature_base(&request, &input).unwrap(),
            "\"x-forwarded\": a, b\n\"@signature-params\": (\"x-forwarded\")"
        );
    }

    #[test]
    fn base_refuses_missing_repeated_unknown_and_injected_components() {
        let request = rfc_request();
        let missing = SignatureInput::covering(&["x-absent"]);
        assert_eq!(
            signature_base(&request, &missing),
            Err(SignatureError::MissingComponent("x-absent".into()))
        );
        let twice = SignatureInput::covering(&["@method", "@method"]);
        assert!(matches!(
            signature_base(&request, &twice),
            Err(SignatureError::InvalidComponent(_))
        ));
        let unknown = SignatureInput::covering(&["@status"]);
        assert!(matches!(
            signature_base(&request, &unknown),
            Err(SignatureError::InvalidComponent(_))
        ));
        let injected = HttpRequestParts {
            method: "GET\n\"@path\": /admin",
            ..request
        };
        let input = SignatureInput::covering(&["@method"]);
        assert!(matches!(
            signature_base(&injected, &input),
            Err(SignatureError::InvalidComponent(_))
        ));
    }

    #[test]
    fn rfc9530_content_digest_known_answer() {
        let body = br#"{"hello": "world"}"#;
        let digest = content_digest(body);
        assert_eq!(
            digest,
            "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
        );
        assert_eq!(verify_content_digest(&digest, body), Ok(()));
        assert_eq!(
            verify_content_digest(&format!("sha-512=:AAAA:, {digest}"), body),
            Ok(()),
            "other algorithms beside sha-256 are ignored"
        );
        assert_eq!(
            verify_content_digest(&digest, br#"{"hello": "World"}"#),
            Err(SignatureError::DigestMismatch)
        );
        assert_eq!(
            verify_content_digest("sha-512=:AAAA:", body),
            Err(SignatureError::UnsupportedDigest)
        );
        assert_eq!(
            verify_content_digest("sha-256=:AAAA:", body),
            Err(SignatureError::DigestMismatch)
        );
        assert!(matches!(
            verify_content_digest(
                "sha-256=\"X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=\"",
                body
            ),
            Err(SignatureError::MalformedHeader(_))
        ));
        assert!(verify_content_digest("sha-256=:X48E9q", body).is_err());
    }

    #[test]
    fn signature_input_parser_refuses_wrong_shapes() {
        assert!(parse_signature_input("sig1=:AAAA:").is_err());
        assert!(parse_signature_input("sig1=(\"@method\";sf)").is_err());
        assert!(parse_signature_input("sig1=(@method)").is_err());
        assert!(parse_signature("sig1=(\"@method\")").is_err());
        assert!(parse_signature("sig1=:AAAA:;x").is_err());
    }
}
