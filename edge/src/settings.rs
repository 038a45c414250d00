//! The edge's settings as named strings (Cloudflare vars and secrets, Spin variables) turned into
//! the one typed [`EdgeConfig`]. Both wasm adapters read the same names; Cloudflare spells them
//! in upper case (`BACKEND_URL`), Spin in lower case (`backend_url`).

use base64::Engine;
use shared::cors::CorsPolicy;
use shared::signing::MessageSigningKey;
use shared::token::TokenPolicy;

use crate::config::{EdgeConfig, WebhookConfig};

/// Base URL of the backend (required).
pub const BACKEND_URL: &str = "backend_url";
/// Key id of the edge-to-backend HMAC key.
pub const EDGE_SIGNING_KEY_ID: &str = "edge_signing_key_id";
/// The HMAC key itself, base64 (a secret; required).
pub const EDGE_SIGNING_KEY: &str = "edge_signing_key";
/// Origins allowed cross-origin, comma separated.
pub const CORS_ALLOWED_ORIGINS: &str = "cors_allowed_origins";
/// A header a trusted proxy sets to the client's address, besides the runtime's own.
pub const CLIENT_IP_HEADER: &str = "client_ip_header";
/// `iss` accepted on tokens.
pub const TOKEN_ISSUER: &str = "token_issuer";
/// `aud` required on tokens.
pub const TOKEN_AUDIENCE: &str = "token_audience";
/// Where audit batches are posted, signed `X-Signature: sha256=…` (optional).
pub const AUDIT_WEBHOOK_URL: &str = "audit_webhook_url";
/// The webhook's HMAC secret (a secret; required with the URL).
pub const AUDIT_WEBHOOK_SECRET: &str = "audit_webhook_secret";
/// Seconds an address stays blocked after 5 failed logins in 15 minutes.
pub const BLOCK_DURATION_SECS: &str = "block_duration_secs";
/// Seconds an address stays blocked after more than 10 rate-limit violations.
pub const RATE_BLOCK_DURATION_SECS: &str = "rate_block_duration_secs";

/// Every setting name, for documentation and for runtimes that must declare them.
pub const ALL: &[&str] = &[
    BACKEND_URL,
    EDGE_SIGNING_KEY_ID,
    EDGE_SIGNING_KEY,
    CORS_ALLOWED_ORIGINS,
    CLIENT_IP_HEADER,
    TOKEN_ISSUER,
    TOKEN_AUDIENCE,
    AUDIT_WEBHOOK_URL,
    AUDIT_WEBHOOK_SECRET,
    BLOCK_DURATION_SECS,
    RATE_BLOCK_DURATION_SECS,
];

/// A setting that is missing or malformed; names the setting, never shows a secret's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("the setting {0} is required")]
    Missing(&'static str),
    #[error("the setting {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// The configuration from `lookup` (a setting's value by its lower-case name; empty counts as
/// unset). Settings left unset take the defaults of [`EdgeConfig::new`].
pub fn edge_config(lookup: impl Fn(&str) -> Option<String>) -> Result<EdgeConfig, SettingsError> {
    let get = |name: &str| {
        lookup(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let invalid = |name: &'static str, reason: String| SettingsError::Invalid { name, reason };

    let backend_url = get(BACKEND_URL).ok_or(SettingsError::Missing(BACKEND_URL))?;
    let secret = get(EDGE_SIGNING_KEY).ok_or(SettingsError::Missing(EDGE_SIGNING_KEY))?;
    let secret = base64::engine::general_purpose::STANDARD
        .decode(secret)
        .map_err(|_| invalid(EDGE_SIGNING_KEY, "not base64".into()))?;
    let key_id = get(EDGE_SIGNING_KEY_ID).unwrap_or_else(|| "edge-1".into());
    let key = MessageSigningKey::new(key_id, secret)
        .map_err(|e| invalid(EDGE_SIGNING_KEY, e.to_string()))?;

    let mut config = EdgeConfig::new(backend_url.trim_end_matches('/'), key);
    let issuer = get(TOKEN_ISSUER).unwrap_or_else(|| crate::config::DEFAULT_ISSUER.into());
    let audience = get(TOKEN_AUDIENCE).unwrap_or_else(|| crate::config::DEFAULT_AUDIENCE.into());
    config.token_policy = TokenPolicy::new(&issuer, &audience);
    if let Some(origins) = get(CORS_ALLOWED_ORIGINS) {
        let origins: Vec<String> = origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect();
        config.cors = CorsPolicy::new(&origins, false)
            .map_err(|e| invalid(CORS_ALLOWED_ORIGINS, e.to_string()))?;
    }
    config.client_ip_header = get(CLIENT_IP_HEADER);
    config.webhook = match (get(AUDIT_WEBHOOK_URL), get(AUDIT_WEBHOOK_SECRET)) {
        (Some(url), Some(secret)) => Some(WebhookConfig {
            url,
            secret: secret.into_bytes(),
        }),
        (None, None) => None,
        (Some(_), None) => return Err(SettingsError::Missing(AUDIT_WEBHOOK_SECRET)),
        (None, Some(_)) => return Err(SettingsError::Missing(AUDIT_WEBHOOK_URL)),
    };
    let seconds = |name: &'static str| -> Result<Option<u64>, SettingsError> {
        get(name)
            .map(|v| v.parse::<u64>().map_err(|e| invalid(name, e.to_string())))
            .transpose()
    };
    if let Some(secs) = seconds(BLOCK_DURATION_SECS)? {
        config.intrusion.login_block_ms = secs.saturating_mul(1000);
    }
    if let Some(secs) = seconds(RATE_BLOCK_DURATION_SECS)? {
        config.intrusion.violation_block_ms = secs.saturating_mul(1000);
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn a_backend_and_a_key_are_enough() {
        let config = edge_config(lookup(&[
            (BACKEND_URL, "http://backend:8081/"),
            (EDGE_SIGNING_KEY, KEY),
        ]))
        .expect("valid settings");
        assert_eq!(config.backend_url, "http://backend:8081");
        assert_eq!(config.client_ip_header, None);
        assert!(config.webhook.is_none());
    }

    #[test]
    fn every_setting_is_read() {
        let config = edge_config(lookup(&[
            (BACKEND_URL, "http://backend"),
            (EDGE_SIGNING_KEY_ID, "edge-7"),
            (EDGE_SIGNING_KEY, KEY),
            (CORS_ALLOWED_ORIGINS, "https://a.example, https://b.example"),
            (CLIENT_IP_HEADER, "X-Forwarded-For"),
            (AUDIT_WEBHOOK_URL, "https://hooks.example/a"),
            (AUDIT_WEBHOOK_SECRET, "s3cret"),
            (BLOCK_DURATION_SECS, "2"),
            (RATE_BLOCK_DURATION_SECS, "3"),
        ]))
        .expect("valid settings");
        assert_eq!(config.signing_key.key_id(), "edge-7");
        assert_eq!(config.client_ip_header.as_deref(), Some("X-Forwarded-For"));
        assert_eq!(config.intrusion.login_block_ms, 2000);
        assert_eq!(config.intrusion.violation_block_ms, 3000);
        assert!(config.webhook.is_some());
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn missing_and_malformed_settings_are_named() {
        assert_eq!(
            edge_config(lookup(&[(EDGE_SIGNING_KEY, KEY)])).err(),
            Some(SettingsError::Missing(BACKEND_URL))
        );
        let bad_key = edge_config(lookup(&[
            (BACKEND_URL, "http://b"),
            (EDGE_SIGNING_KEY, "%%"),
        ]));
        assert!(
            matches!(bad_key, Err(SettingsError::Invalid { name, .. }) if name == EDGE_SIGNING_KEY)
        );
        let half_webhook = edge_config(lookup(&[
            (BACKEND_URL, "http://b"),
            (EDGE_SIGNING_KEY, KEY),
            (AUDIT_WEBHOOK_URL, "https://hooks.example"),
        ]));
        assert_eq!(
            half_webhook.err(),
            Some(SettingsError::Missing(AUDIT_WEBHOOK_SECRET))
        );
    }
}
