//! CORS: an allow-list of exact origins, the preflight answer, and the headers of actual
//! responses. Preflights from other origins, or asking for other methods or headers, are refused.

use crate::problem::ErrorCode;

/// Why a CORS policy or a preflight was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorsError {
    /// The `Origin` is not on the allow-list (or is `null`).
    #[error("origin is not allowed")]
    OriginDenied,
    /// The preflight asks for a method the policy does not allow.
    #[error("method `{0}` is not allowed cross-origin")]
    MethodDenied(String),
    /// The preflight asks for a header the policy does not allow.
    #[error("header `{0}` is not allowed cross-origin")]
    HeaderDenied(String),
    /// A configured origin is not an exact `scheme://host[:port]`.
    #[error("configured origin `{0}` is not an exact http(s) origin")]
    InvalidOrigin(String),
}

impl CorsError {
    /// Every refused preflight is [`ErrorCode::CorsOriginDenied`] (403); a bad configured
    /// origin is [`ErrorCode::Internal`].
    pub fn code(&self) -> ErrorCode {
        match self {
            CorsError::OriginDenied | CorsError::MethodDenied(_) | CorsError::HeaderDenied(_) => {
                ErrorCode::CorsOriginDenied
            }
            CorsError::InvalidOrigin(_) => ErrorCode::Internal,
        }
    }
}

/// Which cross-origin callers may use the API, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    /// Exact origins, `scheme://host[:port]` in lower case; never `*` or `null`.
    pub allowed_origins: Vec<String>,
    /// Methods a preflight may ask for (case-sensitive, as HTTP methods are).
    pub allowed_methods: Vec<String>,
    /// Request headers a preflight may ask for, in lower case.
    pub allowed_headers: Vec<String>,
    /// Response headers scripts of an allowed origin may read.
    pub exposed_headers: Vec<String>,
    /// How long a browser may cache a preflight answer.
    pub max_age_secs: u32,
    /// Whether cookies and `Authorization` may be sent cross-origin.
    pub allow_credentials: bool,
}

impl Default for CorsPolicy {
    /// No allowed origin, with the API's methods, request headers and exposed headers.
    fn default() -> Self {
        let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
        CorsPolicy {
            allowed_origins: Vec::new(),
            allowed_methods: strings(&["GET", "HEAD", "POST", "PATCH", "DELETE"]),
            allowed_headers: strings(&[
                "authorization",
                "content-type",
                "x-api-key",
                "x-request-id",
            ]),
            exposed_headers: strings(&[
                "x-request-id",
                "x-ratelimit-limit",
                "x-ratelimit-remaining",
                "x-ratelimit-reset",
                "ratelimit",
                "ratelimit-policy",
                "retry-after",
            ]),
            max_age_secs: 600,
            allow_credentials: false,
        }
    }
}

impl CorsPolicy {
    /// The default policy allowing `origins`, each checked by [`validate_origin`] and stored in
    /// lower case.
    pub fn new<S: AsRef<str>>(origins: &[S], allow_credentials: bool) -> Result<Self, CorsError> {
        let allowed_origins = origins
            .iter()
            .map(|origin| validate_origin(origin.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(CorsPolicy {
            allowed_origins,
            allow_credentials,
            ..CorsPolicy::default()
        })
    }

    /// Whether `origin` (an `Origin` header value) is on the allow-list. `null` never is.
    pub fn allows_origin(&self, origin: &str) -> bool {
        origin != "null" && self.allowed_origins.iter().any(|allowed| allowed == origin)
    }

    /// The answer to a preflight: the `Access-Control-*` headers for an allowed origin asking
    /// for allowed methods and headers (header names compared case-insensitively, the list
    /// split on commas), else the reason to refuse with 403.
    pub fn preflight(
        &self,
        origin: &str,
        request_method: &str,
        request_headers: Option<&str>,
    ) -> Result<Vec<(&'static str, String)>, CorsError> {
        if !self.allows_origin(origin) {
            return Err(CorsError::OriginDenied);
        }
        if !self.allowed_methods.iter().any(|m| m == request_method) {
            return Err(CorsError::MethodDenied(
                request_method.chars().take(32).collect(),
            ));
        }
        for name in request_headers.unwrap_or("").split(',').map(str::trim) {
            if name.is_empty() {
                continue;
            }
            if !self
                .allowed_headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case(name))
            {
                return Err(CorsError::HeaderDenied(name.chars().take(64).collect()));
            }
        }
        let mut headers = vec![("Access-Control-Allow-Origin", origin.to_owned())];
        if self.allow_credentials {
            headers.push(("Access-Control-Allow-Credentials", "true".to_owned()));
        }
        headers.push((
            "Access-Control-Allow-Methods",
            self.allowed_methods.join(", "),
        ));
        headers.push((
            "Access-Control-Allow-Headers",
            self.allowed_headers.join(", "),
        ));
        headers.push(("Access-Control-Max-Age", self.max_age_secs.to_string()));
        headers.push((
            "Vary",
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers".to_owned(),
        ));
        Ok(headers)
    }

    /// Headers for an actual (non-preflight) response: `Access-Control-Allow-Origin`, the
    /// credentials flag and the exposed headers only for an allowed origin; `Vary: Origin`
    /// always, because the answer depends on the origin and a shared cache must know it.
    pub fn actual_headers(&self, origin: Option<&str>) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        if let Some(origin) = origin.filter(|o| self.allows_origin(o)) {
            headers.push(("Access-Control-Allow-Origin", origin.to_owned()));
            if self.allow_credentials {
                headers.push(("Access-Control-Allow-Credentials", "true".to_owned()));
            }
            if !self.exposed_headers.is_empty() {
                headers.push((
                    "Access-Control-Expose-Headers",
                    self.exposed_headers.join(", "),
                ));
            }
        }
        headers.push(("Vary", "Origin".to_owned()));
        headers
    }
}

/// Checks that `origin` is an exact `http(s)://host[:port]` (no path, query, user info or
/// wildcard) and returns it in lower case.
pub fn validate_origin(origin: &str) -> Result<String, CorsError> {
    let invalid = || CorsError::InvalidOrigin(origin.chars().take(64).collect());
    let lower = origin.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or_else(invalid)?;
    let (host, port) = if rest.starts_with('[') {
        let end = rest.find(']').ok_or_else(invalid)? + 1;
        match &rest[end..] {
            "" => (&rest[..end], None),
            tail => (
                &rest[..end],
                Some(tail.strip_prefix(':').ok_or_else(invalid)?),
            ),
        }
    } else {
        match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner.strip_suffix(']').is_some_and(|ip| {
            !ip.is_empty()
                && ip
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        })
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    };
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok_and(|n| n > 0)
    });
    if host_ok && port_ok {
        Ok(lower)
    } else {
        Err(invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CorsPolicy {
        CorsPolicy::new(
            &["https://console.h200.example", "http://localhost:5173"],
            true,
        )
        .unwrap()
    }

    #[test]
    fn an_allowed_origin_gets_the_preflight_answer() {
        let headers = policy()
            .preflight(
                "https://console.h200.example",
                "POST",
                Some("Authorization, Content-Type,X-Request-ID"),
            )
            .unwrap();
        assert_eq!(
            headers,
            vec![
                (
                    "Access-Control-Allow-Origin",
                    "https://console.h200.example".to_owned()
                ),
                ("Access-Control-Allow-Credentials", "true".to_owned()),
                (
                    "Access-Control-Allow-Methods",
                    "GET, HEAD, POST, PATCH, DELETE".to_owned()
                ),
                (
                    "Access-Control-Allow-Headers",
                    "authorization, content-type, x-api-key, x-request-id".to_owned()
                ),
                ("Access-Control-Max-Age", "600".to_owned()),
                (
                    "Vary",
                    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
                        .to_owned()
                ),
            ]
        );
        assert!(
            policy()
                .preflight("http://localhost:5173", "GET", None)
                .is_ok()
        );
        assert!(
            policy()
                .preflight("http://localhost:5173", "DELETE", Some(" , "))
                .is_ok()
        );
    }

    #[test]
    fn other_origins_methods_and_headers_are_refused() {
        let p = policy();
        for origin in [
            "null",
            "https://evil.example",
            "https://console.h200.example.evil.example",
            "http://console.h200.example",
            "https://console.h200.example:8443",
            "https://console.h200.example/",
            "",
            "*",
        ] {
            let err = p.preflight(origin, "GET", None).unwrap_err();
            assert_eq!(err, CorsError::OriginDenied, "{origin}");
            assert_eq!(err.code(), ErrorCode::CorsOriginDenied);
            assert_eq!(err.code().status(), 403);
        }
        let origin = "https://console.h200.example";
        assert_eq!(
            p.preflight(origin, "PUT", None),
            Err(CorsError::MethodDenied("PUT".into()))
        );
        assert_eq!(
            p.preflight(origin, "post", None),
            Err(CorsError::MethodDenied("post".into()))
        );
        let err = p
            .preflight(origin, "GET", Some("authorization, X-Admin"))
            .unwrap_err();
        assert_eq!(err, CorsError::HeaderDenied("X-Admin".into()));
        assert_eq!(err.code(), ErrorCode::CorsOriginDenied);
    }

    #[test]
    fn actual_responses_name_only_allowed_origins() {
        let p = policy();
        let headers = p.actual_headers(Some("http://localhost:5173"));
        assert_eq!(
            headers[0],
            (
                "Access-Control-Allow-Origin",
                "http://localhost:5173".to_owned()
            )
        );
        assert_eq!(
            headers[1],
            ("Access-Control-Allow-Credentials", "true".to_owned())
        );
        assert_eq!(headers[2].0, "Access-Control-Expose-Headers");
        for exposed in [
            "x-request-id",
            "ratelimit",
            "ratelimit-policy",
            "retry-after",
            "x-ratelimit-reset",
        ] {
            assert!(headers[2].1.split(", ").any(|h| h == exposed), "{exposed}");
        }
        assert_eq!(headers[3], ("Vary", "Origin".to_owned()));
        let vary_only = vec![("Vary", "Origin".to_owned())];
        assert_eq!(p.actual_headers(Some("https://evil.example")), vary_only);
        assert_eq!(p.actual_headers(Some("null")), vary_only);
        assert_eq!(p.actual_headers(None), vary_only);
        let without_credentials = CorsPolicy::new(&["https://a.example"], false).unwrap();
        let headers = without_credentials.actual_headers(Some("https://a.example"));
        assert!(
            headers
                .iter()
                .all(|(n, _)| *n != "Access-Control-Allow-Credentials")
        );
    }

    #[test]
    fn configured_origins_must_be_exact() {
        assert_eq!(
            CorsPolicy::new(&["HTTPS://Console.Example:8443"], false)
                .unwrap()
                .allowed_origins,
            ["https://console.example:8443"]
        );
        assert!(validate_origin("http://[::1]:3000").is_ok());
        assert!(validate_origin("http://[::1]").is_ok());
        assert!(validate_origin("http://[::1]x").is_err());
        assert!(validate_origin("http://[::1").is_err());
        assert!(validate_origin("http://127.0.0.1").is_ok());
        for bad in [
            "*",
            "null",
            "https://*.example",
            "console.example",
            "ftp://console.example",
            "https://console.example/",
            "https://console.example/path",
            "https://user@console.example",
            "https://console.example:",
            "https://console.example:0",
            "https://console.example:99999",
            "https://",
            "https://-bad.example",
            "https://a..example",
            "https://console.example?x",
        ] {
            let err = validate_origin(bad).unwrap_err();
            assert!(matches!(err, CorsError::InvalidOrigin(_)), "{bad}");
            assert_eq!(err.code(), ErrorCode::Internal);
        }
        assert!(CorsPolicy::new(&["https://ok.example", "*"], true).is_err());
    }
}
