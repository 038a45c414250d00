//! What a token says and the policy it is issued and checked under: the algorithms, the two
//! kinds of token, lifetimes and leeway, issuer and audience, the project's claims and what a
//! verified token yields.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Clock skew tolerated on `exp`, `nbf`, `iat` and the maximum age.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
/// Lifetime of an access token.
pub const DEFAULT_ACCESS_TTL_SECS: u64 = 30 * 60;
/// Lifetime of a refresh token.
pub const DEFAULT_REFRESH_TTL_SECS: u64 = 7 * 24 * 60 * 60;
/// Oldest `iat` an access token may carry, whatever its `exp` says.
pub const DEFAULT_MAX_ACCESS_AGE_SECS: u64 = 24 * 60 * 60;

/// The signature algorithms this system speaks. Each key has exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// Ed25519 (RFC 8037), the default.
    EdDSA,
    /// RSASSA-PKCS1-v1_5 with SHA-256, when configured.
    RS256,
    /// HMAC-SHA-256, only when configured explicitly; never published in a JWKS.
    HS256,
}

impl Algorithm {
    /// The JOSE `alg` name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::RS256 => "RS256",
            Algorithm::HS256 => "HS256",
        }
    }

    /// Whether a header's `alg` names this algorithm (`Ed25519` is the RFC 9864 name of EdDSA
    /// over Ed25519).
    pub(super) fn accepts(self, alg: &str) -> bool {
        match self {
            Algorithm::EdDSA => alg == "EdDSA" || alg == "Ed25519",
            Algorithm::RS256 => alg == "RS256",
            Algorithm::HS256 => alg == "HS256",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// Presented on every API call; short-lived.
    Access,
    /// Presented only to `/auth/refresh`, which rotates it.
    Refresh,
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        })
    }
}

/// The `iss` of tokens when none is configured.
pub const DEFAULT_ISSUER: &str = "h200";
/// The `aud` of tokens when none is configured.
pub const DEFAULT_AUDIENCE: &str = "h200-api";

/// Lifetimes, leeway and the expected issuer and audience of tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPolicy {
    /// Value of `iss` on issue and the only one accepted on verify.
    pub issuer: String,
    /// Value of `aud` on issue; verify requires it among the token's audiences.
    pub audience: String,
    /// Clock skew tolerated on every time check.
    pub leeway_secs: u64,
    /// `exp - iat` of an access token.
    pub access_ttl_secs: u64,
    /// `exp - iat` of a refresh token; also the maximum age of a refresh token.
    pub refresh_ttl_secs: u64,
    /// Maximum `now - iat` of an access token, whatever its `exp`.
    pub max_access_age_secs: u64,
}

impl TokenPolicy {
    /// The design's policy (30 s leeway, 30 min access, 7 days refresh, 24 h maximum access age)
    /// for this issuer and audience.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        TokenPolicy {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway_secs: DEFAULT_LEEWAY_SECS,
            access_ttl_secs: DEFAULT_ACCESS_TTL_SECS,
            refresh_ttl_secs: DEFAULT_REFRESH_TTL_SECS,
            max_access_age_secs: DEFAULT_MAX_ACCESS_AGE_SECS,
        }
    }

    /// How long a token of this kind lives after `iat`.
    pub fn ttl_secs(&self, kind: TokenKind) -> u64 {
        match kind {
            TokenKind::Access => self.access_ttl_secs,
            TokenKind::Refresh => self.refresh_ttl_secs,
        }
    }

    /// The oldest `iat` (as an age) a token of this kind may carry.
    pub fn max_age_secs(&self, kind: TokenKind) -> u64 {
        match kind {
            TokenKind::Access => self.max_access_age_secs,
            TokenKind::Refresh => self.refresh_ttl_secs,
        }
    }
}

/// The project's claims, next to the registered ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct H200Claims {
    /// Role names the subject held at issue.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Permission strings (e.g. `analysis:read`) the subject held at issue.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Access or refresh.
    #[serde(rename = "token_use")]
    pub kind: TokenKind,
    /// Refresh-token family: every rotation keeps it, reuse of a spent token revokes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Whether the session passed a second factor.
    #[serde(default)]
    pub mfa: bool,
}

impl H200Claims {
    /// Claims of an access token.
    pub fn access(roles: Vec<String>, permissions: Vec<String>, mfa: bool) -> Self {
        H200Claims {
            roles,
            permissions,
            kind: TokenKind::Access,
            family: None,
            mfa,
        }
    }

    /// Claims of a refresh token in rotation family `family`; it carries no permissions.
    pub fn refresh(family: impl Into<String>, mfa: bool) -> Self {
        H200Claims {
            roles: Vec::new(),
            permissions: Vec::new(),
            kind: TokenKind::Refresh,
            family: Some(family.into()),
            mfa,
        }
    }
}

/// A token that passed every check, with what the caller needs from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// `sub`: the principal.
    pub subject: String,
    /// `jti`: what a deny-list entry names.
    pub jwt_id: String,
    /// `iat`, unix seconds.
    pub issued_at: u64,
    /// `exp`, unix seconds; a deny-list entry for this token can be dropped after it.
    pub expires_at: u64,
    /// The id of the key that verified it.
    pub kid: String,
    /// The project's claims.
    pub claims: H200Claims,
}
