//! Stage 12: audit events of the edge (UUIDv7 ids, source `edge`), and the webhook signature
//! of a delivered batch. Delivery is the [`crate::ports::AuditSink`]'s job, off the response
//! path.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use shared::ErrorCode;
use shared::audit::{AuditEvent, AuditEventType, AuditSource};

use crate::ports::Entropy;

/// Longest path or user agent an event keeps.
const MAX_FIELD_CHARS: usize = 256;

/// The header carrying the webhook body's HMAC.
pub const WEBHOOK_SIGNATURE_HEADER: &str = "x-signature";

/// What the edge saw of a request, for its audit events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed<'a> {
    pub request_id: &'a str,
    pub ip: &'a str,
    pub user_agent: Option<&'a str>,
    pub method: &'a str,
    pub path: &'a str,
    /// The authenticated subject, once known.
    pub principal: Option<&'a str>,
}

/// An edge event of `kind` about `observed` at `now_ms`.
pub fn event(
    kind: AuditEventType,
    observed: &Observed<'_>,
    status: Option<u16>,
    code: Option<ErrorCode>,
    detail: &str,
    now_ms: u64,
    entropy: &dyn Entropy,
) -> AuditEvent {
    let mut random = [0u8; 10];
    entropy.fill(&mut random);
    let mut event = AuditEvent::new(kind, AuditSource::Edge, now_ms, random);
    event.request_id = Some(observed.request_id.to_owned());
    event.ip = Some(observed.ip.to_owned());
    event.user_agent = observed.user_agent.map(cut);
    event.method = Some(observed.method.to_owned());
    event.path = Some(cut(observed.path));
    event.principal = observed.principal.map(str::to_owned);
    event.status = status;
    event.code = code;
    if detail.is_empty() {
        event
    } else {
        event.with_detail(detail)
    }
}

/// The event a refusal with `code` produces ([`AuditEventType::for_refusal`]), if any.
pub fn refusal_event(
    code: ErrorCode,
    observed: &Observed<'_>,
    detail: &str,
    now_ms: u64,
    entropy: &dyn Entropy,
) -> Option<AuditEvent> {
    let kind = AuditEventType::for_refusal(code)?;
    Some(event(
        kind,
        observed,
        Some(code.status()),
        Some(code),
        detail,
        now_ms,
        entropy,
    ))
}

/// The `X-Signature` value of a webhook body: `sha256=` and the hex HMAC-SHA256 of `body`.
pub fn webhook_signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)
        .expect("HMAC accepts keys of any length; this is a bug");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn cut(text: &str) -> String {
    text.chars().take(MAX_FIELD_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Zero;
    impl Entropy for Zero {
        fn fill(&self, buf: &mut [u8]) {
            buf.fill(0);
        }
    }

    #[test]
    fn refusals_become_typed_edge_events() {
        let observed = Observed {
            request_id: "rid",
            ip: "203.0.113.2",
            user_agent: Some("curl/8"),
            method: "GET",
            path: "/api/v1/rules",
            principal: None,
        };
        let event = refusal_event(
            ErrorCode::RateLimitExceeded,
            &observed,
            "",
            1_700_000_000_000,
            &Zero,
        )
        .expect("audited");
        assert_eq!(event.event_type, AuditEventType::RateLimited);
        assert_eq!(event.source, AuditSource::Edge);
        assert_eq!(event.status, Some(429));
        assert_eq!(event.id.get_version_num(), 7);
        assert_eq!(event.ip.as_deref(), Some("203.0.113.2"));
        assert!(refusal_event(ErrorCode::NotFound, &observed, "", 0, &Zero).is_none());
    }

    #[test]
    fn the_webhook_signature_is_the_rfc_4231_hmac() {
        // RFC 4231 test case 2.
        assert_eq!(
            webhook_signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
