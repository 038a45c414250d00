//! The edge's one typed configuration. Adapters read it from flags, `wrangler.toml` vars or Spin
//! variables; the pipeline only ever sees this. It also decides which address is the client's
//! ([`EdgeConfig::client_ip`]): a trusted proxy's header, else the runtime's own, else none.

use shared::cors::CorsPolicy;
use shared::permissions::RoleSet;
use shared::rate_limit::Quota;
use shared::route_policy::RoutePolicy;
use shared::signing::MessageSigningKey;
use shared::token::TokenPolicy;

pub use shared::token::{DEFAULT_AUDIENCE, DEFAULT_ISSUER};

/// When an address is blocked, per the design.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntrusionPolicy {
    /// Failed logins from one address within `failed_login_window_ms` that block it (5).
    pub failed_logins: u32,
    pub failed_login_window_ms: u64,
    /// How long failed logins block an address (1 h).
    pub login_block_ms: u64,
    /// Rate-limit violations within `violation_window_ms` beyond which an address is blocked
    /// (more than 10).
    pub rate_violations: u32,
    pub violation_window_ms: u64,
    /// How long rate-limit violations block an address (2 h).
    pub violation_block_ms: u64,
    /// A tool user agent is noted at most once per address in this window.
    pub tool_note_window_ms: u64,
}

impl Default for IntrusionPolicy {
    fn default() -> Self {
        IntrusionPolicy {
            failed_logins: 5,
            failed_login_window_ms: 15 * 60 * 1000,
            login_block_ms: 60 * 60 * 1000,
            rate_violations: 10,
            violation_window_ms: 15 * 60 * 1000,
            violation_block_ms: 2 * 60 * 60 * 1000,
            tool_note_window_ms: 60 * 60 * 1000,
        }
    }
}

/// An optional audit webhook; the body is signed `X-Signature: sha256=<hex HMAC>`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub url: String,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &url_origin(&self.url))
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A URL as logs may show it: scheme and host only. Webhook URLs often carry their credential in
/// the path or query (Slack-style incoming webhooks), and any userinfo is a credential.
pub fn url_origin(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<redacted>".to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let tail = if end < rest.len() { "/…" } else { "" };
    format!("{scheme}://{host}{tail}")
}

/// Everything the edge needs to decide and forward. `Debug` never shows a secret
/// ([`MessageSigningKey`] and [`WebhookConfig`] redact themselves).
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Base URL of the backend, e.g. `http://127.0.0.1:8081`.
    pub backend_url: String,
    /// The HMAC key the edge signs forwarded requests with.
    pub signing_key: MessageSigningKey,
    /// Issuer, audience, leeway and lifetimes of accepted tokens.
    pub token_policy: TokenPolicy,
    /// The route table: permission, rate classes and body limit of every route.
    pub routes: RoutePolicy,
    /// Role → permissions; decides a token's permissions (not the token's own list).
    pub roles: RoleSet,
    pub cors: CorsPolicy,
    /// The header a trusted proxy in front of the edge sets (or appends to) with the client's
    /// address, e.g. `X-Forwarded-For`; `None`: the address the runtime reports (the socket
    /// peer, `CF-Connecting-IP` on Cloudflare, `spin-client-addr` on Spin). Only for use behind
    /// such a proxy: see [`EdgeConfig::client_ip`].
    pub client_ip_header: Option<String>,
    pub intrusion: IntrusionPolicy,
    /// How often an unknown `kid` may trigger a JWKS refetch.
    pub jwks_refetch: Quota,
    pub webhook: Option<WebhookConfig>,
}

impl EdgeConfig {
    /// The embedded defaults (route table, roles, token issuer and audience, no CORS origin,
    /// the socket peer as client address, no webhook) for `backend_url` and `signing_key`.
    pub fn new(backend_url: impl Into<String>, signing_key: MessageSigningKey) -> Self {
        EdgeConfig {
            backend_url: backend_url.into(),
            signing_key,
            token_policy: TokenPolicy::new(DEFAULT_ISSUER, DEFAULT_AUDIENCE),
            routes: RoutePolicy::default(),
            roles: RoleSet::default(),
            cors: CorsPolicy::default(),
            client_ip_header: None,
            intrusion: IntrusionPolicy::default(),
            jwks_refetch: Quota::new(1, 10_000),
            webhook: None,
        }
    }

    /// The client's address: the trusted header when one is configured and present, else `peer`
    /// (the address the runtime reports), else `None`: there is no address to trust, and the
    /// adapter refuses the request rather than let it share a bucket with every other such
    /// request.
    ///
    /// The trusted header is read as a proxy in front of the edge leaves it: its last occurrence,
    /// and of a list (`X-Forwarded-For`) the last entry, which is what the proxy appended after
    /// whatever the client sent. Only a header that such a proxy sets should be trusted: a client
    /// that reaches the edge directly chooses its value. Header names in `headers` are compared
    /// case-insensitively.
    pub fn client_ip(&self, headers: &[(String, String)], peer: Option<&str>) -> Option<String> {
        let from_header = self.client_ip_header.as_deref().and_then(|name| {
            headers
                .iter()
                .rev()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .and_then(|(_, value)| value.rsplit(',').next())
                .map(str::trim)
                .filter(|ip| is_address_text(ip))
        });
        from_header
            .or(peer.filter(|ip| is_address_text(ip)))
            .map(str::to_owned)
    }
}

/// Text that may stand for an IPv4 or IPv6 address: 1 to 45 of hex digits, `.` and `:`.
fn is_address_text(text: &str) -> bool {
    (1..=45).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_are_shown_without_their_credentials() {
        let webhook = WebhookConfig {
            url: "https://user:pw@hooks.example.com/services/T000/B000/XXXXSECRET?token=abc".into(),
            secret: b"hmac-secret".to_vec(),
        };
        let printed = format!("{webhook:?}");
        for secret in ["XXXXSECRET", "abc", "pw", "hmac-secret"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(printed.contains("https://hooks.example.com/…"), "{printed}");
        assert_eq!(url_origin("http://127.0.0.1:9000"), "http://127.0.0.1:9000");
        assert_eq!(url_origin("not a url"), "<redacted>");
    }

    fn config(header: Option<&str>) -> EdgeConfig {
        let key = MessageSigningKey::new("edge-1", vec![7u8; 32]).expect("valid key");
        let mut config = EdgeConfig::new("http://backend", key);
        config.client_ip_header = header.map(str::to_owned);
        config
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_socket_peer_is_the_client_unless_a_header_is_trusted() {
        let spoofed = headers(&[("x-forwarded-for", "198.51.100.9")]);
        assert_eq!(
            config(None)
                .client_ip(&spoofed, Some("10.0.0.1"))
                .as_deref(),
            Some("10.0.0.1")
        );
        let trusted = config(Some("X-Forwarded-For"));
        let chain = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.7")]);
        assert_eq!(
            trusted.client_ip(&chain, Some("10.0.0.1")).as_deref(),
            Some("203.0.113.7")
        );
        let junk = headers(&[("x-forwarded-for", "<script>")]);
        assert_eq!(
            trusted.client_ip(&junk, Some("10.0.0.1")).as_deref(),
            Some("10.0.0.1")
        );
    }

    #[test]
    fn the_trusted_header_is_what_the_proxy_appended_after_the_client() {
        let trusted = config(Some("X-Forwarded-For"));
        // The client sent its own line (a list, even); the proxy added one after it.
        let forged = headers(&[
            ("x-forwarded-for", "198.51.100.9, 198.51.100.10"),
            ("content-type", "application/json"),
            ("X-Forwarded-For", "203.0.113.7"),
        ]);
        assert_eq!(
            trusted.client_ip(&forged, Some("10.0.0.1")).as_deref(),
            Some("203.0.113.7")
        );
    }

    #[test]
    fn no_address_is_none_never_a_shared_placeholder() {
        let trusted = config(Some("X-Forwarded-For"));
        assert_eq!(trusted.client_ip(&[], None), None);
        assert_eq!(config(None).client_ip(&[], Some("unknown")), None);
        assert_eq!(config(None).client_ip(&[], None), None);
    }

    #[test]
    fn debug_never_shows_secrets() {
        let mut config = config(None);
        config.webhook = Some(WebhookConfig {
            url: "https://hooks.example/audit".into(),
            secret: b"webhook-secret-value".to_vec(),
        });
        let text = format!("{config:?}");
        assert!(!text.contains("webhook-secret-value"));
        assert!(text.contains("<redacted>"));
    }
}
