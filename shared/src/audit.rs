//! Audit events: the types and fields the edge and the backend record, their UUIDv7 ids, and the
//! hash chain that makes tampering with stored events show.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::problem::ErrorCode;

/// Longest free-text detail an event may carry; longer text is cut at a character boundary.
pub const MAX_DETAIL_CHARS: usize = 512;
/// Most events in one batch sent to the backend's ingest.
pub const MAX_BATCH_EVENTS: usize = 500;
/// The hash that precedes the first event of a chain.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditEventType {
    LoginSuccess,
    LoginFailure,
    TokenExpired,
    TokenInvalid,
    PermissionDenied,
    RateLimited,
    IpBlocked,
    SuspiciousActivity,
    DataAccess,
    AdminAction,
    ConfigurationChange,
}

impl AuditEventType {
    /// Every type, for filters and metrics.
    pub const ALL: [AuditEventType; 11] = [
        AuditEventType::LoginSuccess,
        AuditEventType::LoginFailure,
        AuditEventType::TokenExpired,
        AuditEventType::TokenInvalid,
        AuditEventType::PermissionDenied,
        AuditEventType::RateLimited,
        AuditEventType::IpBlocked,
        AuditEventType::SuspiciousActivity,
        AuditEventType::DataAccess,
        AuditEventType::AdminAction,
        AuditEventType::ConfigurationChange,
    ];

    /// The wire name, e.g. `login_failure`.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuditEventType::LoginSuccess => "login_success",
            AuditEventType::LoginFailure => "login_failure",
            AuditEventType::TokenExpired => "token_expired",
            AuditEventType::TokenInvalid => "token_invalid",
            AuditEventType::PermissionDenied => "permission_denied",
            AuditEventType::RateLimited => "rate_limited",
            AuditEventType::IpBlocked => "ip_blocked",
            AuditEventType::SuspiciousActivity => "suspicious_activity",
            AuditEventType::DataAccess => "data_access",
            AuditEventType::AdminAction => "admin_action",
            AuditEventType::ConfigurationChange => "configuration_change",
        }
    }

    /// Parses a wire name.
    pub fn from_name(name: &str) -> Option<AuditEventType> {
        AuditEventType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }

    /// How loud the event is by default.
    pub const fn severity(self) -> Severity {
        match self {
            AuditEventType::LoginSuccess
            | AuditEventType::DataAccess
            | AuditEventType::AdminAction
            | AuditEventType::ConfigurationChange => Severity::Info,
            AuditEventType::LoginFailure
            | AuditEventType::TokenExpired
            | AuditEventType::TokenInvalid
            | AuditEventType::PermissionDenied
            | AuditEventType::RateLimited => Severity::Warning,
            AuditEventType::IpBlocked | AuditEventType::SuspiciousActivity => Severity::Critical,
        }
    }

    /// The audit event a refusal with `code` produces, if it is worth recording.
    pub const fn for_refusal(code: ErrorCode) -> Option<AuditEventType> {
        match code {
            ErrorCode::InvalidCredentials | ErrorCode::MfaRequired | ErrorCode::InvalidMfaCode => {
                Some(AuditEventType::LoginFailure)
            }
            ErrorCode::ExpiredToken => Some(AuditEventType::TokenExpired),
            ErrorCode::MissingCredentials
            | ErrorCode::InvalidToken
            | ErrorCode::RevokedToken
            | ErrorCode::RevokedKey
            | ErrorCode::InvalidApiKey
            | ErrorCode::RevokedApiKey
            | ErrorCode::RefreshTokenReused
            | ErrorCode::MissingSignature
            | ErrorCode::InvalidSignature
            | ErrorCode::StaleSignature
            | ErrorCode::ReplayedRequest => Some(AuditEventType::TokenInvalid),
            ErrorCode::InsufficientPermissions
            | ErrorCode::CorsOriginDenied
            | ErrorCode::CsrfRejected => Some(AuditEventType::PermissionDenied),
            ErrorCode::RateLimitExceeded => Some(AuditEventType::RateLimited),
            ErrorCode::IpBlocked => Some(AuditEventType::IpBlocked),
            ErrorCode::SuspiciousRequest => Some(AuditEventType::SuspiciousActivity),
            _ => None,
        }
    }
}

/// How much attention an event deserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// Where the event was observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditSource {
    Edge,
    Backend,
}

/// One audit event. Field order is the canonical order used by the hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// UUIDv7: time-ordered, and unique so every sink can deduplicate.
    pub id: Uuid,
    pub event_type: AuditEventType,
    pub severity: Severity,
    pub source: AuditSource,
    /// Milliseconds since the Unix epoch.
    pub occurred_at_ms: u64,
    #[serde(default)]
    pub request_id: Option<String>,
    /// The subject of the authenticated principal, if any.
    #[serde(default)]
    pub principal: Option<String>,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub code: Option<ErrorCode>,
    #[serde(default)]
    pub detail: Option<String>,
}

impl AuditEvent {
    /// A new event of `event_type` at `occurred_at_ms`, its id built from that time and
    /// `random` (10 bytes from the caller's random source).
    pub fn new(
        event_type: AuditEventType,
        source: AuditSource,
        occurred_at_ms: u64,
        random: [u8; 10],
    ) -> Self {
        AuditEvent {
            id: event_id(occurred_at_ms, random),
            event_type,
            severity: event_type.severity(),
            source,
            occurred_at_ms,
            request_id: None,
            principal: None,
            ip: None,
            user_agent: None,
            method: None,
            path: None,
            status: None,
            code: None,
            detail: None,
        }
    }

    /// Sets the free-text detail, cut to [`MAX_DETAIL_CHARS`].
    pub fn with_detail(mut self, detail: &str) -> Self {
        self.detail = Some(truncate_chars(detail, MAX_DETAIL_CHARS).to_owned());
        self
    }

    /// The canonical bytes the hash chain covers: the event's JSON in field order.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an audit event always serializes; this is a bug")
    }
}

/// A UUIDv7 from a millisecond timestamp and 10 random bytes (RFC 9562 §5.7).
pub fn event_id(unix_ms: u64, random: [u8; 10]) -> Uuid {
    uuid::Builder::from_unix_timestamp_millis(unix_ms, &random).into_uuid()
}

/// The chain hash of `event` after `previous`: SHA-256(previous ‖ canonical bytes).
pub fn chain_hash(previous: &[u8; 32], event: &AuditEvent) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(event.canonical_bytes());
    hasher.finalize().into()
}

/// Where a stored chain stops agreeing with its events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("event {index} ({id}) does not hash to its stored chain value")]
    HashMismatch { index: usize, id: Uuid },
}

/// Checks a stored chain: each `(event, stored_hash)` must equal the hash over the one before,
/// starting from `start` ([`GENESIS_HASH`] for a whole chain). A changed event, a changed hash, a
/// deleted or reordered row all break it.
pub fn verify_chain<'a>(
    start: [u8; 32],
    rows: impl IntoIterator<Item = (&'a AuditEvent, [u8; 32])>,
) -> Result<[u8; 32], ChainBreak> {
    let mut previous = start;
    for (index, (event, stored)) in rows.into_iter().enumerate() {
        let expected = chain_hash(&previous, event);
        if expected != stored {
            return Err(ChainBreak::HashMismatch {
                index,
                id: event.id,
            });
        }
        previous = stored;
    }
    Ok(previous)
}

/// A batch of events on its way to the backend's ingest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditBatch {
    pub events: Vec<AuditEvent>,
}

fn truncate_chars(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: AuditEventType, ms: u64, seed: u8) -> AuditEvent {
        AuditEvent::new(kind, AuditSource::Edge, ms, [seed; 10])
    }

    #[test]
    fn ids_are_uuid_v7_ordered_by_time() {
        let early = event_id(1_700_000_000_000, [0xff; 10]);
        let late = event_id(1_700_000_000_001, [0x00; 10]);
        assert_eq!(early.get_version_num(), 7);
        assert!(early < late, "v7 ids sort by their timestamp first");
        let (secs, nanos) = early.get_timestamp().unwrap().to_unix();
        assert_eq!((secs, nanos), (1_700_000_000, 0));
    }

    #[test]
    fn wire_names_match_the_design() {
        let names: Vec<&str> = AuditEventType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(
            names,
            [
                "login_success",
                "login_failure",
                "token_expired",
                "token_invalid",
                "permission_denied",
                "rate_limited",
                "ip_blocked",
                "suspicious_activity",
                "data_access",
                "admin_action",
                "configuration_change"
            ]
        );
        for kind in AuditEventType::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
            assert_eq!(AuditEventType::from_name(kind.as_str()), Some(kind));
        }
    }

    #[test]
    fn refusals_map_to_their_event_types() {
        assert_eq!(
            AuditEventType::for_refusal(ErrorCode::ExpiredToken),
            Some(AuditEventType::TokenExpired)
        );
        assert_eq!(
            AuditEventType::for_refusal(ErrorCode::InsufficientPermissions),
            Some(AuditEventType::PermissionDenied)
        );
        assert_eq!(
            AuditEventType::for_refusal(ErrorCode::SuspiciousRequest),
            Some(AuditEventType::SuspiciousActivity)
        );
        assert_eq!(AuditEventType::for_refusal(ErrorCode::NotFound), None);
    }

    #[test]
    fn detail_is_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_DETAIL_CHARS + 10);
        let e = event(AuditEventType::DataAccess, 1, 1).with_detail(&long);
        assert_eq!(e.detail.unwrap().chars().count(), MAX_DETAIL_CHARS);
    }

    #[test]
    fn events_round_trip_and_refuse_unknown_fields() {
        let mut e = event(AuditEventType::LoginFailure, 1_700_000_000_123, 7);
        e.ip = Some("203.0.113.9".into());
        e.code = Some(ErrorCode::InvalidCredentials);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["event_type"], "login_failure");
        assert_eq!(json["severity"], "warning");
        assert_eq!(json["code"], "INVALID_CREDENTIALS");
        assert_eq!(
            serde_json::from_value::<AuditEvent>(json.clone()).unwrap(),
            e
        );
        let mut extra = json;
        extra["sneaky"] = serde_json::Value::Bool(true);
        assert!(serde_json::from_value::<AuditEvent>(extra).is_err());
    }

    fn chain(events: &[AuditEvent]) -> Vec<[u8; 32]> {
        let mut previous = GENESIS_HASH;
        events
            .iter()
            .map(|e| {
                previous = chain_hash(&previous, e);
                previous
            })
            .collect()
    }

    #[test]
    fn chain_detects_changed_deleted_and_reordered_rows() {
        let events: Vec<AuditEvent> = (0..5)
            .map(|i| event(AuditEventType::DataAccess, 1000 + i, i as u8))
            .collect();
        let hashes = chain(&events);
        let rows = || events.iter().zip(hashes.iter().copied());
        assert_eq!(verify_chain(GENESIS_HASH, rows()), Ok(hashes[4]));

        let mut changed = events.clone();
        changed[2].principal = Some("mallory".into());
        let result = verify_chain(GENESIS_HASH, changed.iter().zip(hashes.iter().copied()));
        assert_eq!(
            result,
            Err(ChainBreak::HashMismatch {
                index: 2,
                id: events[2].id
            })
        );

        let deleted = rows().enumerate().filter(|(i, _)| *i != 1).map(|(_, r)| r);
        assert_eq!(
            verify_chain(GENESIS_HASH, deleted),
            Err(ChainBreak::HashMismatch {
                index: 1,
                id: events[2].id
            })
        );

        let mut swapped: Vec<_> = rows().collect();
        swapped.swap(3, 4);
        assert!(verify_chain(GENESIS_HASH, swapped).is_err());
    }
}
