//! The deny-list: what a revocation names (one token, a signing key, or every token of a subject
//! issued before an instant), how an entry travels in the backend's revocation feed, and which
//! tokens it refuses. The edge and the backend both decide with [`TokenFacts::refusal`].

use serde::{Deserialize, Serialize};

use crate::problem::ErrorCode;

/// What kind of thing a deny-list entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationKind {
    /// One token, by its `jti` (logout, a spent refresh family).
    Token,
    /// Every token a signing key made, by the key's `kid` (`h200 keys revoke`).
    SigningKey,
    /// Every token of one subject (`sub`, a user id) issued before a cut-off (an account that
    /// was disabled or erased).
    Subject,
}

impl RevocationKind {
    /// Every kind, in the order a token is checked against them.
    pub const ALL: [RevocationKind; 3] = [
        RevocationKind::SigningKey,
        RevocationKind::Subject,
        RevocationKind::Token,
    ];

    /// The claim an entry of this kind matches, which is also its name on the wire and in the
    /// store: `jti`, `kid` or `sub`.
    pub const fn claim(self) -> &'static str {
        match self {
            RevocationKind::Token => "jti",
            RevocationKind::SigningKey => "kid",
            RevocationKind::Subject => "sub",
        }
    }

    /// The kind whose [`claim`](Self::claim) is `name`.
    pub fn from_claim(name: &str) -> Option<RevocationKind> {
        RevocationKind::ALL.into_iter().find(|k| k.claim() == name)
    }

    /// The code a token refused by an entry of this kind is answered with.
    pub const fn code(self) -> ErrorCode {
        match self {
            RevocationKind::Token | RevocationKind::Subject => ErrorCode::RevokedToken,
            RevocationKind::SigningKey => ErrorCode::RevokedKey,
        }
    }
}

/// One thing a deny-list entry names: a kind and the claim value it matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RevokedTarget {
    pub kind: RevocationKind,
    pub id: String,
}

impl RevokedTarget {
    /// The key a state store files the entry under: `jti:…`, `kid:…` or `sub:…`.
    pub fn deny_key(&self) -> String {
        deny_key(self.kind, &self.id)
    }
}

fn deny_key(kind: RevocationKind, id: &str) -> String {
    format!("{}:{id}", kind.claim())
}

/// A cut-off that refuses every token the entry names, whenever it was issued.
pub const EVERY_TOKEN: u64 = u64::MAX;

/// One deny-list entry as the backend's feed (`GET /internal/v1/revocations`) publishes it.
///
/// On the wire it is an object with exactly one of `jti`, `kid` or `sub`, plus
/// `issued_before_ms` (absent: every token it names), `expires_at_ms` and `revoked_at_ms`;
/// fields it does not know are ignored. A `jti` entry reads as it always did:
/// `{"jti":"…","expires_at_ms":…,"revoked_at_ms":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WireRevocation", into = "WireRevocation")]
pub struct Revocation {
    pub target: RevokedTarget,
    /// Tokens issued before this instant (unix ms) are refused; `None`: every token named.
    pub issued_before_ms: Option<u64>,
    /// When the entry may be forgotten: no token it refuses can still be alive by then.
    pub expires_at_ms: u64,
    /// When the revocation was made (the feed's cursor moves by it).
    pub revoked_at_ms: u64,
}

impl Revocation {
    /// The instant (unix ms) before which a named token counts as issued and is refused:
    /// `issued_before_ms`, or [`EVERY_TOKEN`].
    pub fn cutoff_ms(&self) -> u64 {
        self.issued_before_ms.unwrap_or(EVERY_TOKEN)
    }
}

/// The feed entry as JSON: one optional field per kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WireRevocation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    issued_before_ms: Option<u64>,
    expires_at_ms: u64,
    revoked_at_ms: u64,
}

impl TryFrom<WireRevocation> for Revocation {
    type Error = String;

    fn try_from(wire: WireRevocation) -> Result<Self, Self::Error> {
        let named = [
            (RevocationKind::Token, wire.jti),
            (RevocationKind::SigningKey, wire.kid),
            (RevocationKind::Subject, wire.sub),
        ];
        let mut targets = named
            .into_iter()
            .filter_map(|(kind, id)| id.map(|id| RevokedTarget { kind, id }));
        let target = targets
            .next()
            .ok_or("a revocation names one of jti, kid or sub")?;
        if targets.next().is_some() {
            return Err("a revocation names only one of jti, kid or sub".into());
        }
        if target.id.is_empty() {
            return Err("a revocation names a non-empty value".into());
        }
        Ok(Revocation {
            target,
            issued_before_ms: wire.issued_before_ms,
            expires_at_ms: wire.expires_at_ms,
            revoked_at_ms: wire.revoked_at_ms,
        })
    }
}

impl From<Revocation> for WireRevocation {
    fn from(revocation: Revocation) -> Self {
        let RevokedTarget { kind, id } = revocation.target;
        let pick = |wanted: RevocationKind| (kind == wanted).then(|| id.clone());
        WireRevocation {
            jti: pick(RevocationKind::Token),
            kid: pick(RevocationKind::SigningKey),
            sub: pick(RevocationKind::Subject),
            issued_before_ms: revocation.issued_before_ms,
            expires_at_ms: revocation.expires_at_ms,
            revoked_at_ms: revocation.revoked_at_ms,
        }
    }
}

/// What a deny-list check needs to know about a verified token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenFacts<'a> {
    /// `jti`.
    pub token_id: &'a str,
    /// The `kid` of the key that signed it.
    pub key_id: &'a str,
    /// `sub`.
    pub subject: &'a str,
    /// `iat`, unix seconds.
    pub issued_at_secs: u64,
}

impl TokenFacts<'_> {
    /// The deny-list keys that could name this token, one per kind in [`RevocationKind::ALL`]
    /// order; look each up and hand the cut-offs found to [`TokenFacts::refusal`].
    pub fn deny_keys(&self) -> [String; 3] {
        RevocationKind::ALL.map(|kind| deny_key(kind, self.claim(kind)))
    }

    /// The claim of this token an entry of `kind` matches.
    pub fn claim(&self, kind: RevocationKind) -> &str {
        match kind {
            RevocationKind::Token => self.token_id,
            RevocationKind::SigningKey => self.key_id,
            RevocationKind::Subject => self.subject,
        }
    }

    /// Whether an entry with `cutoff_ms` refuses this token. `iat` has whole seconds, so a token
    /// issued within the second of the cut-off counts as issued before it: a revocation never
    /// lets through a token minted just before it.
    pub fn refused_by(&self, cutoff_ms: u64) -> bool {
        self.issued_at_secs.saturating_mul(1000) < cutoff_ms
    }

    /// The code to refuse this token with, given the cut-offs of the live entries found under
    /// [`TokenFacts::deny_keys`] (same order; `None`: no entry); `None` when none refuses it.
    pub fn refusal(&self, cutoffs: &[Option<u64>]) -> Option<ErrorCode> {
        RevocationKind::ALL
            .into_iter()
            .zip(cutoffs)
            .find(|(_, cutoff)| cutoff.is_some_and(|c| self.refused_by(c)))
            .map(|(kind, _)| kind.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(issued_at_secs: u64) -> TokenFacts<'static> {
        TokenFacts {
            token_id: "j1",
            key_id: "k1",
            subject: "u1",
            issued_at_secs,
        }
    }

    #[test]
    fn a_jti_entry_reads_and_writes_as_the_feed_always_had_it() {
        let text = r#"{"jti":"j1","expires_at_ms":2000,"revoked_at_ms":1000}"#;
        let entry: Revocation = serde_json::from_str(text).expect("parses");
        assert_eq!(entry.target.kind, RevocationKind::Token);
        assert_eq!(entry.target.deny_key(), "jti:j1");
        assert_eq!(entry.cutoff_ms(), EVERY_TOKEN);
        assert_eq!(serde_json::to_string(&entry).expect("serializes"), text);
    }

    #[test]
    fn key_and_subject_entries_round_trip() {
        for text in [
            r#"{"kid":"k1","expires_at_ms":2000,"revoked_at_ms":1000}"#,
            r#"{"sub":"u1","issued_before_ms":1500,"expires_at_ms":2000,"revoked_at_ms":1000}"#,
        ] {
            let entry: Revocation = serde_json::from_str(text).expect("parses");
            assert_eq!(serde_json::to_string(&entry).expect("serializes"), text);
        }
        let subject: Revocation = serde_json::from_str(
            r#"{"sub":"u1","issued_before_ms":1500,"expires_at_ms":2000,"revoked_at_ms":1000,"later":1}"#,
        )
        .expect("unknown fields are ignored");
        assert_eq!(subject.target.deny_key(), "sub:u1");
        assert_eq!(subject.cutoff_ms(), 1500);
    }

    #[test]
    fn an_entry_names_exactly_one_thing() {
        for text in [
            r#"{"expires_at_ms":2000,"revoked_at_ms":1000}"#,
            r#"{"jti":"j1","kid":"k1","expires_at_ms":2000,"revoked_at_ms":1000}"#,
            r#"{"kid":"","expires_at_ms":2000,"revoked_at_ms":1000}"#,
        ] {
            assert!(serde_json::from_str::<Revocation>(text).is_err(), "{text}");
        }
    }

    #[test]
    fn each_kind_refuses_with_its_code() {
        let token = facts(100);
        assert_eq!(token.deny_keys(), ["kid:k1", "sub:u1", "jti:j1"]);
        assert_eq!(token.refusal(&[None, None, None]), None);
        assert_eq!(
            token.refusal(&[Some(EVERY_TOKEN), None, None]),
            Some(ErrorCode::RevokedKey)
        );
        assert_eq!(
            token.refusal(&[None, Some(100_001), None]),
            Some(ErrorCode::RevokedToken)
        );
        assert_eq!(
            token.refusal(&[None, None, Some(EVERY_TOKEN)]),
            Some(ErrorCode::RevokedToken)
        );
        assert_eq!(
            token.refusal(&[Some(EVERY_TOKEN), None, Some(EVERY_TOKEN)]),
            Some(ErrorCode::RevokedKey),
            "a revoked key names the cause before the token's own entry"
        );
    }

    #[test]
    fn a_subject_cutoff_spares_only_tokens_issued_in_a_later_second() {
        let cutoff = 100_500;
        assert!(facts(99).refused_by(cutoff));
        assert!(
            facts(100).refused_by(cutoff),
            "issued within the cut-off's second"
        );
        assert!(!facts(101).refused_by(cutoff));
        assert_eq!(facts(101).refusal(&[None, Some(cutoff), None]), None);
    }
}
