//! The security headers every response carries, the headers the edge strips, and the request id
//! the edge accepts from a client or makes itself.
//!
//! Choices: `Referrer-Policy: no-referrer` (neither the API nor the console ever needs to tell
//! another site where a user came from); `Cross-Origin-Resource-Policy: same-site` (the console
//! on a sibling subdomain may embed API images; CORS requests are not affected by CORP);
//! `Cache-Control: no-store` for API responses and `no-cache` for the console (its HTML must be
//! revalidated; fingerprinted assets may override it).

/// Which kind of body a response carries; the CSP and caching differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseProfile {
    /// JSON and problem+json responses of the API.
    Api,
    /// The web console's HTML, scripts and styles.
    Console,
}

/// HSTS for two years, subdomains included, fit for the preload list.
pub const HSTS: &str = "max-age=63072000; includeSubDomains; preload";

/// The CSP of API responses: nothing may load, nothing may frame them.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The CSP of the web console: same-origin scripts, styles and connections only.
pub const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; \
base-uri 'none'; form-action 'self'";

/// Browser features no H200 page uses.
pub const PERMISSIONS_POLICY: &str = "accelerometer=(), autoplay=(), camera=(), \
display-capture=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), \
payment=(), usb=()";

const API_HEADERS: &[(&str, &str)] = &[
    ("Strict-Transport-Security", HSTS),
    ("Content-Security-Policy", API_CSP),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Permissions-Policy", PERMISSIONS_POLICY),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-site"),
    ("X-Permitted-Cross-Domain-Policies", "none"),
    ("Cache-Control", "no-store"),
];

const CONSOLE_HEADERS: &[(&str, &str)] = &[
    ("Strict-Transport-Security", HSTS),
    ("Content-Security-Policy", CONSOLE_CSP),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Permissions-Policy", PERMISSIONS_POLICY),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-site"),
    ("X-Permitted-Cross-Domain-Policies", "none"),
    ("Cache-Control", "no-cache"),
];

/// Headers the edge removes from every response (lower case), so nothing advertises the stack.
pub const REMOVED_HEADERS: &[&str] = &["server", "x-powered-by"];

/// The header that carries the request id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest request id accepted from a client.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The security headers a response of `profile` carries, set (replacing any upstream value).
pub fn security_headers(profile: ResponseProfile) -> &'static [(&'static str, &'static str)] {
    match profile {
        ResponseProfile::Api => API_HEADERS,
        ResponseProfile::Console => CONSOLE_HEADERS,
    }
}

/// Whether a client's request id may be kept: 1 to 128 characters of `[A-Za-z0-9._:-]`.
pub fn is_valid_request_id(id: &str) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The request id to use: the client's when valid, else one made from 16 random bytes (a UUIDv4).
pub fn request_id(client: Option<&str>, random: [u8; 16]) -> String {
    match client {
        Some(id) if is_valid_request_id(id) => id.to_owned(),
        _ => uuid::Builder::from_random_bytes(random)
            .into_uuid()
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(profile: ResponseProfile, name: &str) -> Option<&'static str> {
        security_headers(profile)
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    #[test]
    fn api_and_console_headers_have_the_exact_values() {
        use ResponseProfile::*;
        for profile in [Api, Console] {
            assert_eq!(
                value(profile, "Strict-Transport-Security"),
                Some("max-age=63072000; includeSubDomains; preload")
            );
            assert_eq!(value(profile, "X-Frame-Options"), Some("DENY"));
            assert_eq!(value(profile, "X-Content-Type-Options"), Some("nosniff"));
            assert_eq!(value(profile, "Referrer-Policy"), Some("no-referrer"));
            assert_eq!(
                value(profile, "Cross-Origin-Opener-Policy"),
                Some("same-origin")
            );
            assert_eq!(
                value(profile, "Cross-Origin-Resource-Policy"),
                Some("same-site")
            );
            let permissions = value(profile, "Permissions-Policy").unwrap();
            for feature in ["camera=()", "microphone=()", "geolocation=()"] {
                assert!(permissions.contains(feature), "{feature}");
            }
            let names: Vec<_> = security_headers(profile).iter().map(|(n, _)| n).collect();
            for name in REMOVED_HEADERS {
                assert!(!names.iter().any(|n| n.eq_ignore_ascii_case(name)));
            }
        }
        assert_eq!(
            value(Api, "Content-Security-Policy"),
            Some("default-src 'none'; frame-ancestors 'none'")
        );
        assert_eq!(
            value(Console, "Content-Security-Policy"),
            Some(
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; \
                 form-action 'self'"
            )
        );
        assert_eq!(value(Api, "Cache-Control"), Some("no-store"));
        assert_eq!(value(Console, "Cache-Control"), Some("no-cache"));
        assert_eq!(REMOVED_HEADERS, ["server", "x-powered-by"]);
    }

    #[test]
    fn request_ids_are_kept_only_when_safe() {
        for good in [
            "a",
            "req-1",
            "0190c0de-7b1a-7000-8000-000000000001",
            "trace:span.1_x",
        ] {
            assert!(is_valid_request_id(good), "{good}");
        }
        assert!(is_valid_request_id(&"x".repeat(128)));
        for bad in [
            "",
            "has space",
            "semi;colon",
            "new\nline",
            "é",
            "<script>",
            "a/b",
        ] {
            assert!(!is_valid_request_id(bad), "{bad:?}");
        }
        assert!(!is_valid_request_id(&"x".repeat(129)));
        assert_eq!(request_id(Some("req-1"), [0; 16]), "req-1");
        let made = request_id(Some("bad id"), [0xab; 16]);
        assert_eq!(made, "abababab-abab-4bab-abab-abababababab");
        assert_eq!(
            request_id(None, [0; 16]),
            "00000000-0000-4000-8000-000000000000"
        );
    }
}
