//! Access and refresh tokens: their claims, how the backend issues them and how the edge verifies
//! them against the JWKS it caches. The key decides the algorithm; `alg` in a header only has to
//! agree with it.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_simple::JWTError;
use jwt_simple::prelude::{
    Audiences, Duration, Ed25519PublicKey, EdDSAPublicKeyLike, HS256Key, JWTClaims, MACLike,
    RS256KeyPair, RS256PublicKey, RSAKeyPairLike, RSAPublicKeyLike, Token, UnixTimeStamp,
    VerificationOptions,
};
use serde::{Deserialize, Serialize};

use crate::problem::ErrorCode;

/// Clock skew tolerated on `exp`, `nbf`, `iat` and the maximum age.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
/// Lifetime of an access token.
pub const DEFAULT_ACCESS_TTL_SECS: u64 = 30 * 60;
/// Lifetime of a refresh token.
pub const DEFAULT_REFRESH_TTL_SECS: u64 = 7 * 24 * 60 * 60;
/// Oldest `iat` an access token may carry, whatever its `exp` says.
pub const DEFAULT_MAX_ACCESS_AGE_SECS: u64 = 24 * 60 * 60;
/// Longest compact token the verifier reads; anything longer is refused before decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Longest `kid` accepted in a header or a JWKS.
pub const MAX_KEY_ID_BYTES: usize = 128;
/// Shortest HS256 secret accepted (the SHA-256 output size, RFC 7518 §3.2).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// Why a token was refused, or why a key or token could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a compact JWS we can read: bad base64, bad JSON, too long, wrong claim types.
    #[error("the token is malformed")]
    Malformed,
    /// The header names no `kid` and the key set holds more than one key.
    #[error("the token names no key id and several keys could verify it")]
    MissingKeyId,
    /// No key in the set has this id; the edge may refetch the JWKS once.
    #[error("no verification key has id {0:?}")]
    UnknownKeyId(String),
    /// The header's `alg` is not the algorithm of the key its `kid` names (`none` included).
    #[error("the token claims algorithm {found:?} but its key is {expected}")]
    AlgorithmMismatch { expected: Algorithm, found: String },
    /// The signature or MAC does not verify under the key.
    #[error("the token signature does not verify")]
    BadSignature,
    /// `exp` is more than the leeway in the past.
    #[error("the token has expired")]
    ExpiredToken,
    /// `nbf` or `iat` is more than the leeway in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iat` is older than the policy's maximum age for this kind of token.
    #[error("the token is older than the maximum token age")]
    TooOld,
    /// `iss` is not the configured issuer.
    #[error("the token was issued by someone else")]
    WrongIssuer,
    /// `aud` does not include the configured audience.
    #[error("the token is meant for another audience")]
    WrongAudience,
    /// A claim the policy requires is absent or empty.
    #[error("the token lacks the {0} claim")]
    MissingClaim(&'static str),
    /// An access token was presented where a refresh token was expected, or the reverse.
    #[error("expected a {expected} token, got a {found} token")]
    WrongKind {
        expected: TokenKind,
        found: TokenKind,
    },
    /// The token uses a feature this verifier refuses (e.g. a `crit` header).
    #[error("the token uses an unsupported feature")]
    Unsupported,
    /// A key could not be built from the given material, or a JWKS entry is unusable.
    #[error("invalid key material: {0}")]
    InvalidKey(String),
    /// A JWKS document is not JSON of the RFC 7517 shape.
    #[error("the key set document is malformed")]
    MalformedKeySet,
    /// Issuing failed inside the signer.
    #[error("the token could not be signed")]
    Signing,
}

impl TokenError {
    /// The stable wire code: expiry is `EXPIRED_TOKEN`, every other refusal `INVALID_TOKEN`,
    /// and failures of our own keys are `INTERNAL`.
    pub fn code(&self) -> ErrorCode {
        match self {
            TokenError::ExpiredToken => ErrorCode::ExpiredToken,
            TokenError::InvalidKey(_) | TokenError::MalformedKeySet | TokenError::Signing => {
                ErrorCode::Internal
            }
            _ => ErrorCode::InvalidToken,
        }
    }
}

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
    fn accepts(self, alg: &str) -> bool {
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

enum PublicMaterial {
    Ed25519(Ed25519PublicKey),
    Rs256(RS256PublicKey),
    Hs256(HS256Key),
}

/// A key that verifies tokens of exactly one algorithm, under one key id.
pub struct VerificationKey {
    kid: String,
    material: PublicMaterial,
}

impl Clone for VerificationKey {
    fn clone(&self) -> Self {
        let material = match &self.material {
            PublicMaterial::Ed25519(key) => PublicMaterial::Ed25519(key.clone()),
            PublicMaterial::Rs256(key) => PublicMaterial::Rs256(key.clone()),
            PublicMaterial::Hs256(key) => PublicMaterial::Hs256(key.clone()),
        };
        VerificationKey {
            kid: self.kid.clone(),
            material,
        }
    }
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

fn checked_kid(kid: &str) -> Result<String, TokenError> {
    if kid.is_empty() || kid.len() > MAX_KEY_ID_BYTES {
        return Err(TokenError::InvalidKey(format!(
            "a key id must be 1 to {MAX_KEY_ID_BYTES} bytes"
        )));
    }
    Ok(kid.to_owned())
}

fn key_error(error: impl fmt::Display) -> TokenError {
    TokenError::InvalidKey(error.to_string())
}

fn checked_hs256_secret(secret: &[u8]) -> Result<HS256Key, TokenError> {
    if secret.len() < MIN_HS256_SECRET_BYTES {
        return Err(TokenError::InvalidKey(format!(
            "an HS256 secret must be at least {MIN_HS256_SECRET_BYTES} bytes"
        )));
    }
    Ok(HS256Key::from_bytes(secret))
}

impl VerificationKey {
    /// An Ed25519 public key from its 32 raw bytes; weak (small-order) keys are refused.
    pub fn ed25519_from_bytes(kid: &str, public_key: &[u8]) -> Result<Self, TokenError> {
        let key = Ed25519PublicKey::from_bytes(public_key).map_err(key_error)?;
        Self::new(kid, PublicMaterial::Ed25519(key))
    }

    /// An Ed25519 public key from an SPKI PEM document.
    pub fn ed25519_from_pem(kid: &str, pem: &str) -> Result<Self, TokenError> {
        let key = Ed25519PublicKey::from_pem(pem).map_err(key_error)?;
        Self::new(kid, PublicMaterial::Ed25519(key))
    }

    /// An RSA public key (2048 to 4096 bits, e = 65537) from SPKI or PKCS#1 PEM.
    pub fn rs256_from_pem(kid: &str, pem: &str) -> Result<Self, TokenError> {
        let key = RS256PublicKey::from_pem(pem).map_err(key_error)?;
        Self::new(kid, PublicMaterial::Rs256(key))
    }

    /// An RSA public key (2048 to 4096 bits, e = 65537) from SPKI or PKCS#1 DER.
    pub fn rs256_from_der(kid: &str, der: &[u8]) -> Result<Self, TokenError> {
        let key = RS256PublicKey::from_der(der).map_err(key_error)?;
        Self::new(kid, PublicMaterial::Rs256(key))
    }

    /// An RSA public key from its big-endian modulus and exponent.
    pub fn rs256_from_components(kid: &str, n: &[u8], e: &[u8]) -> Result<Self, TokenError> {
        let key = RS256PublicKey::from_components(n, e).map_err(key_error)?;
        Self::new(kid, PublicMaterial::Rs256(key))
    }

    /// A shared HS256 secret of at least [`MIN_HS256_SECRET_BYTES`]. Only for deployments that
    /// configure HS256 explicitly; such a key is never published.
    pub fn hs256(kid: &str, secret: &[u8]) -> Result<Self, TokenError> {
        Self::new(kid, PublicMaterial::Hs256(checked_hs256_secret(secret)?))
    }

    fn new(kid: &str, material: PublicMaterial) -> Result<Self, TokenError> {
        Ok(VerificationKey {
            kid: checked_kid(kid)?,
            material,
        })
    }

    /// The key id tokens name in their header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The only algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        match self.material {
            PublicMaterial::Ed25519(_) => Algorithm::EdDSA,
            PublicMaterial::Rs256(_) => Algorithm::RS256,
            PublicMaterial::Hs256(_) => Algorithm::HS256,
        }
    }

    /// The RFC 7517 public JWK with `kid`, `alg` and `use: sig`; `None` for an HS256 secret.
    pub fn to_jwk(&self) -> Option<serde_json::Value> {
        let json = match &self.material {
            PublicMaterial::Ed25519(key) => key.clone().with_key_id(&self.kid).to_jwk(),
            PublicMaterial::Rs256(key) => key.clone().with_key_id(&self.kid).to_jwk(),
            PublicMaterial::Hs256(_) => return None,
        };
        serde_json::from_str(&json).ok()
    }

    /// Reads one JWKS entry: `Ok(None)` for a key type, curve, algorithm or use this system does
    /// not verify with; an error for a supported key whose material is wrong.
    fn from_jwk(jwk: &serde_json::Value) -> Result<Option<Self>, TokenError> {
        let member = |name: &str| jwk.get(name).and_then(serde_json::Value::as_str);
        if !jwk.is_object() || member("kty").is_none() {
            return Err(TokenError::MalformedKeySet);
        }
        if member("use").is_some_and(|key_use| key_use != "sig") {
            return Ok(None);
        }
        let json = jwk.to_string();
        let (material, thumbprint) = match (member("kty"), member("crv"), member("alg")) {
            (Some("OKP"), Some("Ed25519"), None | Some("EdDSA" | "Ed25519")) => {
                let key = Ed25519PublicKey::from_jwk(&json).map_err(key_error)?;
                let thumbprint = key.jwk_thumbprint();
                (PublicMaterial::Ed25519(key), thumbprint)
            }
            (Some("RSA"), _, None | Some("RS256")) => {
                let key = RS256PublicKey::from_jwk(&json).map_err(key_error)?;
                let thumbprint = key.jwk_thumbprint();
                (PublicMaterial::Rs256(key), thumbprint)
            }
            _ => return Ok(None),
        };
        let kid = match jwk.get("kid") {
            None => thumbprint,
            Some(serde_json::Value::String(kid)) => kid.clone(),
            Some(_) => return Err(TokenError::MalformedKeySet),
        };
        Self::new(&kid, material).map(Some)
    }
}

/// The verification keys the edge trusts, by key id.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: BTreeMap<String, VerificationKey>,
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

impl KeySet {
    /// An empty set.
    pub fn new() -> Self {
        KeySet::default()
    }

    /// Adds `key`, replacing any key with the same id.
    pub fn insert(&mut self, key: VerificationKey) {
        self.keys.insert(key.kid.clone(), key);
    }

    /// The key with this id.
    pub fn get(&self, kid: &str) -> Option<&VerificationKey> {
        self.keys.get(kid)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Parses an RFC 7517 JWK Set. Ed25519 (`OKP`) and RSA signature keys are kept; keys of
    /// other types, curves, algorithms or uses are skipped. A document that is not a JWKS, a
    /// supported key with bad material, or two keys with one id are refused. A key without
    /// `kid` is filed under its RFC 7638 thumbprint.
    pub fn from_jwks_json(json: &str) -> Result<KeySet, TokenError> {
        let document: JwksDocument =
            serde_json::from_str(json).map_err(|_| TokenError::MalformedKeySet)?;
        let mut set = KeySet::new();
        for jwk in &document.keys {
            if let Some(key) = VerificationKey::from_jwk(jwk)? {
                if set.keys.contains_key(&key.kid) {
                    return Err(TokenError::InvalidKey(format!(
                        "two keys share the id {:?}",
                        key.kid
                    )));
                }
                set.insert(key);
            }
        }
        Ok(set)
    }

    /// The public keys as an RFC 7517 JWK Set document, ordered by key id; HS256 secrets are
    /// never included.
    pub fn to_jwks_json(&self) -> String {
        let keys: Vec<serde_json::Value> = self
            .keys
            .values()
            .filter_map(VerificationKey::to_jwk)
            .collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    /// Verifies `token` as a token of kind `expected` at `now_unix_secs`: the `kid` picks the
    /// key, the key picks the algorithm, then signature, `iss`, `aud`, `exp`, `nbf`, `iat`
    /// (with the policy's leeway), the maximum age and the kind are checked, and `sub`, `jti`,
    /// `iat`, `nbf` and `exp` must be present.
    pub fn verify(
        &self,
        token: &str,
        policy: &TokenPolicy,
        expected: TokenKind,
        now_unix_secs: u64,
    ) -> Result<VerifiedToken, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let metadata = Token::decode_metadata(token).map_err(|_| TokenError::Malformed)?;
        let key = match metadata.key_id() {
            Some(kid) if kid.len() > MAX_KEY_ID_BYTES => return Err(TokenError::Malformed),
            Some(kid) => self
                .keys
                .get(kid)
                .ok_or_else(|| TokenError::UnknownKeyId(kid.to_owned()))?,
            None => match self.keys.values().next() {
                Some(only) if self.keys.len() == 1 => only,
                Some(_) => return Err(TokenError::MissingKeyId),
                None => return Err(TokenError::UnknownKeyId(String::new())),
            },
        };
        let expected_algorithm = key.algorithm();
        if !expected_algorithm.accepts(metadata.algorithm()) {
            return Err(TokenError::AlgorithmMismatch {
                expected: expected_algorithm,
                found: metadata.algorithm().chars().take(32).collect(),
            });
        }

        let options = VerificationOptions {
            artificial_time: Some(UnixTimeStamp::from_secs(now_unix_secs)),
            time_tolerance: Some(Duration::from_secs(policy.leeway_secs)),
            allowed_issuers: Some(HashSet::from([policy.issuer.clone()])),
            allowed_audiences: Some(HashSet::from([policy.audience.clone()])),
            max_token_length: Some(MAX_TOKEN_BYTES),
            ..VerificationOptions::default()
        };
        let verified: Result<JWTClaims<H200Claims>, jwt_simple::Error> = match &key.material {
            PublicMaterial::Ed25519(public) => public.verify_token(token, Some(options)),
            PublicMaterial::Rs256(public) => public.verify_token(token, Some(options)),
            PublicMaterial::Hs256(secret) => secret.verify_token(token, Some(options)),
        };
        let claims = verified.map_err(|error| refusal(&error))?;

        let issued_at = claims
            .issued_at
            .ok_or(TokenError::MissingClaim("iat"))?
            .as_secs();
        let expires_at = claims
            .expires_at
            .ok_or(TokenError::MissingClaim("exp"))?
            .as_secs();
        claims
            .invalid_before
            .ok_or(TokenError::MissingClaim("nbf"))?;
        let subject = claims
            .subject
            .filter(|subject| !subject.is_empty())
            .ok_or(TokenError::MissingClaim("sub"))?;
        let jwt_id = claims
            .jwt_id
            .filter(|jwt_id| !jwt_id.is_empty())
            .ok_or(TokenError::MissingClaim("jti"))?;

        let max_age = policy
            .max_age_secs(claims.custom.kind)
            .saturating_add(policy.leeway_secs);
        if now_unix_secs.saturating_sub(issued_at) > max_age {
            return Err(TokenError::TooOld);
        }
        if claims.custom.kind != expected {
            return Err(TokenError::WrongKind {
                expected,
                found: claims.custom.kind,
            });
        }
        Ok(VerifiedToken {
            subject,
            jwt_id,
            issued_at,
            expires_at,
            kid: key.kid.clone(),
            claims: claims.custom,
        })
    }
}

/// Maps a jwt-simple refusal onto ours; anything it does not name (base64, JSON, claim types)
/// is a malformed token.
fn refusal(error: &jwt_simple::Error) -> TokenError {
    match error.downcast_ref::<JWTError>() {
        Some(JWTError::InvalidSignature | JWTError::InvalidAuthenticationTag) => {
            TokenError::BadSignature
        }
        Some(JWTError::TokenHasExpired) => TokenError::ExpiredToken,
        Some(JWTError::TokenNotValidYet | JWTError::ClockDrift) => TokenError::NotYetValid,
        Some(JWTError::TokenIsTooOld | JWTError::OldTokenReused) => TokenError::TooOld,
        Some(JWTError::RequiredIssuerMismatch) => TokenError::WrongIssuer,
        Some(JWTError::RequiredIssuerMissing) => TokenError::MissingClaim("iss"),
        Some(JWTError::RequiredAudienceMismatch) => TokenError::WrongAudience,
        Some(JWTError::RequiredAudienceMissing) => TokenError::MissingClaim("aud"),
        Some(JWTError::UnknownCriticalExtension) => TokenError::Unsupported,
        // The key was chosen and checked before verifying, so these mean a broken key or token.
        Some(JWTError::WeakKey | JWTError::MissingSalt) => TokenError::Unsupported,
        _ => TokenError::Malformed,
    }
}

enum PrivateMaterial {
    Ed25519 {
        key_pair: ed25519_compact::KeyPair,
        public: Ed25519PublicKey,
    },
    Rs256(Box<RS256KeyPair>),
    Hs256(HS256Key),
}

/// A key the backend issues tokens with: one algorithm, one key id.
pub struct SigningKey {
    kid: String,
    material: PrivateMaterial,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct CompactHeader<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

impl SigningKey {
    /// An Ed25519 key derived from 32 bytes of caller-provided randomness (the RFC 8032 seed).
    /// The same seed always gives the same key; an all-zero seed is refused.
    pub fn generate_ed25519(kid: &str, seed: [u8; 32]) -> Result<Self, TokenError> {
        let seed = ed25519_compact::Seed::new(seed);
        let key_pair = ed25519_compact::KeyPair::try_from_seed(seed).map_err(key_error)?;
        Self::ed25519(kid, key_pair)
    }

    /// An Ed25519 key from a PKCS#8 PEM document (`BEGIN PRIVATE KEY`).
    pub fn ed25519_from_pem(kid: &str, pem: &str) -> Result<Self, TokenError> {
        let key_pair = ed25519_compact::KeyPair::from_pem(pem).map_err(key_error)?;
        Self::ed25519(kid, key_pair)
    }

    /// An Ed25519 key from PKCS#8 DER.
    pub fn ed25519_from_der(kid: &str, der: &[u8]) -> Result<Self, TokenError> {
        let key_pair = ed25519_compact::KeyPair::from_der(der).map_err(key_error)?;
        Self::ed25519(kid, key_pair)
    }

    /// An RSA key (2048 to 4096 bits) from PKCS#1 or PKCS#8 PEM.
    pub fn rs256_from_pem(kid: &str, pem: &str) -> Result<Self, TokenError> {
        let key_pair = RS256KeyPair::from_pem(pem).map_err(key_error)?;
        Self::new(
            kid,
            PrivateMaterial::Rs256(Box::new(key_pair.with_key_id(kid))),
        )
    }

    /// An RSA key (2048 to 4096 bits) from PKCS#1 or PKCS#8 DER.
    pub fn rs256_from_der(kid: &str, der: &[u8]) -> Result<Self, TokenError> {
        let key_pair = RS256KeyPair::from_der(der).map_err(key_error)?;
        Self::new(
            kid,
            PrivateMaterial::Rs256(Box::new(key_pair.with_key_id(kid))),
        )
    }

    /// A shared HS256 secret of at least [`MIN_HS256_SECRET_BYTES`], for deployments that
    /// configure HS256 explicitly.
    pub fn hs256(kid: &str, secret: &[u8]) -> Result<Self, TokenError> {
        let key = checked_hs256_secret(secret)?.with_key_id(kid);
        Self::new(kid, PrivateMaterial::Hs256(key))
    }

    fn ed25519(kid: &str, key_pair: ed25519_compact::KeyPair) -> Result<Self, TokenError> {
        let public = Ed25519PublicKey::from_bytes(&key_pair.pk[..]).map_err(key_error)?;
        Self::new(kid, PrivateMaterial::Ed25519 { key_pair, public })
    }

    fn new(kid: &str, material: PrivateMaterial) -> Result<Self, TokenError> {
        Ok(SigningKey {
            kid: checked_kid(kid)?,
            material,
        })
    }

    /// The key id put in every token's header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The only algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        match self.material {
            PrivateMaterial::Ed25519 { .. } => Algorithm::EdDSA,
            PrivateMaterial::Rs256(_) => Algorithm::RS256,
            PrivateMaterial::Hs256(_) => Algorithm::HS256,
        }
    }

    /// The key that verifies this key's tokens (for HS256, the same secret).
    pub fn verification_key(&self) -> VerificationKey {
        let material = match &self.material {
            PrivateMaterial::Ed25519 { public, .. } => PublicMaterial::Ed25519(public.clone()),
            PrivateMaterial::Rs256(key_pair) => PublicMaterial::Rs256(key_pair.public_key()),
            PrivateMaterial::Hs256(key) => PublicMaterial::Hs256(key.clone()),
        };
        VerificationKey {
            kid: self.kid.clone(),
            material,
        }
    }

    /// The public JWK to publish at `/.well-known/jwks.json`; `None` for HS256.
    pub fn public_jwk(&self) -> Option<serde_json::Value> {
        self.verification_key().to_jwk()
    }

    /// Issues a token for `subject` with id `jti`: `iss` and `aud` from the policy, `iat` and
    /// `nbf` at `now_unix_secs`, `exp` after the policy's lifetime for `claims.kind`, and this
    /// key's `kid` and algorithm in the header. Ed25519 signatures are deterministic (RFC 8032).
    pub fn issue(
        &self,
        policy: &TokenPolicy,
        subject: &str,
        jti: &str,
        claims: &H200Claims,
        now_unix_secs: u64,
    ) -> Result<String, TokenError> {
        if subject.is_empty() {
            return Err(TokenError::MissingClaim("sub"));
        }
        if jti.is_empty() {
            return Err(TokenError::MissingClaim("jti"));
        }
        let expires_at = now_unix_secs.saturating_add(policy.ttl_secs(claims.kind));
        let claims = JWTClaims {
            issued_at: Some(UnixTimeStamp::from_secs(now_unix_secs)),
            expires_at: Some(UnixTimeStamp::from_secs(expires_at)),
            invalid_before: Some(UnixTimeStamp::from_secs(now_unix_secs)),
            issuer: Some(policy.issuer.clone()),
            subject: Some(subject.to_owned()),
            audiences: Some(Audiences::AsString(policy.audience.clone())),
            jwt_id: Some(jti.to_owned()),
            nonce: None,
            custom: claims.clone(),
        };
        match &self.material {
            PrivateMaterial::Ed25519 { key_pair, .. } => self.sign_ed25519(key_pair, &claims),
            PrivateMaterial::Rs256(key_pair) => {
                key_pair.sign(claims).map_err(|_| TokenError::Signing)
            }
            PrivateMaterial::Hs256(key) => {
                key.authenticate(claims).map_err(|_| TokenError::Signing)
            }
        }
    }

    fn sign_ed25519(
        &self,
        key_pair: &ed25519_compact::KeyPair,
        claims: &JWTClaims<H200Claims>,
    ) -> Result<String, TokenError> {
        let header = CompactHeader {
            alg: Algorithm::EdDSA.as_str(),
            typ: "JWT",
            kid: &self.kid,
        };
        let header = serde_json::to_vec(&header).map_err(|_| TokenError::Signing)?;
        let payload = serde_json::to_vec(claims).map_err(|_| TokenError::Signing)?;
        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let signature = key_pair.sk.sign(token.as_bytes(), None);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature[..], &mut token);
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use jwt_simple::prelude::RS256KeyPair;
    use proptest::prelude::*;

    use super::*;

    const NOW: u64 = 1_750_000_000;
    const ISSUER: &str = "https://auth.h200.example";
    const AUDIENCE: &str = "h200-api";

    fn policy() -> TokenPolicy {
        TokenPolicy::new(ISSUER, AUDIENCE)
    }

    fn ed_key(kid: &str) -> SigningKey {
        SigningKey::generate_ed25519(kid, [7; 32]).unwrap()
    }

    /// One 2048-bit RSA key (PKCS#8 DER) for the whole test run: generating it is slow.
    fn rsa_der() -> &'static [u8] {
        static DER: OnceLock<Vec<u8>> = OnceLock::new();
        DER.get_or_init(|| RS256KeyPair::generate(2048).unwrap().to_der().unwrap())
    }

    fn rsa_key(kid: &str) -> SigningKey {
        SigningKey::rs256_from_der(kid, rsa_der()).unwrap()
    }

    fn access_claims() -> H200Claims {
        H200Claims::access(
            vec!["viewer".into()],
            vec!["analysis:read".into(), "rules:read".into()],
            false,
        )
    }

    fn set_of(keys: &[&SigningKey]) -> KeySet {
        let mut set = KeySet::new();
        for key in keys {
            set.insert(key.verification_key());
        }
        set
    }

    fn access_token(key: &SigningKey, now: u64) -> String {
        key.issue(&policy(), "user-42", "jti-1", &access_claims(), now)
            .unwrap()
    }

    fn b64(bytes: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn parts(token: &str) -> (String, String, String) {
        let mut parts = token.split('.').map(str::to_owned);
        (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        )
    }

    fn decoded_json(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    /// Claims as `issue` would make them, for tests that need one registered claim changed.
    fn registered_claims(now: u64) -> JWTClaims<H200Claims> {
        JWTClaims {
            issued_at: Some(UnixTimeStamp::from_secs(now)),
            expires_at: Some(UnixTimeStamp::from_secs(now + 1800)),
            invalid_before: Some(UnixTimeStamp::from_secs(now)),
            issuer: Some(ISSUER.into()),
            subject: Some("user-42".into()),
            audiences: Some(Audiences::AsString(AUDIENCE.into())),
            jwt_id: Some("jti-1".into()),
            nonce: None,
            custom: access_claims(),
        }
    }

    fn sign_raw(key: &SigningKey, claims: &JWTClaims<H200Claims>) -> String {
        match &key.material {
            PrivateMaterial::Ed25519 { key_pair, .. } => {
                key.sign_ed25519(key_pair, claims).unwrap()
            }
            _ => panic!("tests sign raw claims with Ed25519 keys only"),
        }
    }

    /// A compact token over `header` and `payload`, really signed by the Ed25519 `key`.
    fn sign_with_header(key: &SigningKey, header: &str, payload: &str) -> String {
        let PrivateMaterial::Ed25519 { key_pair, .. } = &key.material else {
            panic!("an Ed25519 key");
        };
        let signing_input = format!("{}.{payload}", b64(header));
        let signature = key_pair.sk.sign(signing_input.as_bytes(), None);
        format!("{signing_input}.{}", b64(&signature[..]))
    }

    #[test]
    fn ed25519_key_from_the_rfc8032_seed_matches_the_rfc8037_vector() {
        // RFC 8037 appendix A.1 (the RFC 8032 test 1 key) and A.4 (the JWS signature).
        let seed = URL_SAFE_NO_PAD
            .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
            .unwrap();
        let key = SigningKey::generate_ed25519("rfc", seed.try_into().unwrap()).unwrap();
        let jwk = key.public_jwk().unwrap();
        assert_eq!(jwk["x"], "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["crv"], "Ed25519");
        assert_eq!(jwk["kid"], "rfc");
        let PrivateMaterial::Ed25519 { key_pair, .. } = &key.material else {
            panic!("an Ed25519 key");
        };
        let signature = key_pair.sk.sign(
            "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc",
            None,
        );
        assert_eq!(
            b64(&signature[..]),
            "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
        );
    }

    #[test]
    fn issued_ed25519_access_token_verifies_with_its_claims() {
        let key = ed_key("ed-1");
        let token = access_token(&key, NOW);
        assert_eq!(
            token,
            access_token(&key, NOW),
            "Ed25519 issuance is deterministic"
        );
        let (header, payload, _) = parts(&token);
        assert_eq!(
            decoded_json(&header),
            serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": "ed-1"})
        );
        let payload = decoded_json(&payload);
        assert_eq!(payload["iss"], ISSUER);
        assert_eq!(payload["aud"], AUDIENCE);
        assert_eq!(payload["iat"], NOW);
        assert_eq!(payload["nbf"], NOW);
        assert_eq!(payload["exp"], NOW + 1800);
        assert_eq!(payload["token_use"], "access");

        let verified = set_of(&[&key])
            .verify(&token, &policy(), TokenKind::Access, NOW + 60)
            .unwrap();
        assert_eq!(
            verified,
            VerifiedToken {
                subject: "user-42".into(),
                jwt_id: "jti-1".into(),
                issued_at: NOW,
                expires_at: NOW + 1800,
                kid: "ed-1".into(),
                claims: access_claims(),
            }
        );
    }

    #[test]
    fn issued_rs256_and_hs256_tokens_verify() {
        let rsa = rsa_key("rsa-1");
        let token = access_token(&rsa, NOW);
        assert_eq!(decoded_json(&parts(&token).0)["alg"], "RS256");
        let verified = set_of(&[&rsa])
            .verify(&token, &policy(), TokenKind::Access, NOW)
            .unwrap();
        assert_eq!(verified.kid, "rsa-1");
        assert_eq!(verified.claims, access_claims());

        let hmac = SigningKey::hs256("hs-1", &[9; 32]).unwrap();
        let token = access_token(&hmac, NOW);
        assert_eq!(decoded_json(&parts(&token).0)["alg"], "HS256");
        let verified = set_of(&[&hmac])
            .verify(&token, &policy(), TokenKind::Access, NOW)
            .unwrap();
        assert_eq!(verified.subject, "user-42");
        assert!(
            hmac.public_jwk().is_none(),
            "an HMAC secret is never published"
        );
        assert!(matches!(
            SigningKey::hs256("hs-short", &[9; 31]),
            Err(TokenError::InvalidKey(_))
        ));
    }

    #[test]
    fn alg_none_token_is_refused() {
        let key = ed_key("ed-1");
        let (_, payload, _) = parts(&access_token(&key, NOW));
        let set = set_of(&[&key]);
        for header in [
            r#"{"alg":"none","typ":"JWT","kid":"ed-1"}"#,
            r#"{"alg":"none"}"#,
            r#"{"alg":"None","kid":"ed-1"}"#,
        ] {
            let forged = format!("{}.{payload}.", b64(header));
            assert_eq!(
                set.verify(&forged, &policy(), TokenKind::Access, NOW),
                Err(TokenError::AlgorithmMismatch {
                    expected: Algorithm::EdDSA,
                    found: decoded_json(&b64(header))["alg"].as_str().unwrap().into(),
                }),
                "{header}"
            );
        }
    }

    #[test]
    fn hs256_token_keyed_with_the_rsa_public_key_is_refused() {
        let rsa = rsa_key("rsa-1");
        let VerificationKey {
            material: PublicMaterial::Rs256(public),
            ..
        } = rsa.verification_key()
        else {
            panic!("an RSA key");
        };
        let set = set_of(&[&rsa]);
        let pem = public.to_pem().unwrap();
        let der = public.to_der().unwrap();
        for secret in [pem.as_bytes(), pem.trim().as_bytes(), &der[..]] {
            let forger = HS256Key::from_bytes(secret).with_key_id("rsa-1");
            let forged = forger.authenticate(registered_claims(NOW)).unwrap();
            // The forgery is sound HS256: a verifier that let the header pick HS256 would accept it.
            let naive = HS256Key::from_bytes(secret).verify_token::<H200Claims>(
                &forged,
                Some(VerificationOptions {
                    artificial_time: Some(UnixTimeStamp::from_secs(NOW)),
                    ..VerificationOptions::default()
                }),
            );
            assert!(naive.is_ok());
            assert_eq!(
                set.verify(&forged, &policy(), TokenKind::Access, NOW),
                Err(TokenError::AlgorithmMismatch {
                    expected: Algorithm::RS256,
                    found: "HS256".into(),
                })
            );
        }
    }

    #[test]
    fn token_naming_key_b_but_signed_by_key_a_is_refused() {
        let key_a = ed_key("ed-a");
        let key_b = SigningKey::generate_ed25519("ed-b", [8; 32]).unwrap();
        let set = set_of(&[&key_a, &key_b]);
        let impostor = SigningKey::generate_ed25519("ed-b", [7; 32]).unwrap();
        let forged = access_token(&impostor, NOW);
        assert_eq!(decoded_json(&parts(&forged).0)["kid"], "ed-b");
        assert_eq!(
            set.verify(&forged, &policy(), TokenKind::Access, NOW),
            Err(TokenError::BadSignature)
        );
        // The same bytes are fine under key A's id, so only the key choice refused it.
        let honest = access_token(&key_a, NOW);
        assert!(
            set.verify(&honest, &policy(), TokenKind::Access, NOW)
                .is_ok()
        );
    }

    #[test]
    fn ed25519_token_relabelled_rs256_is_refused() {
        let ed = ed_key("ed-1");
        let rsa = rsa_key("rsa-1");
        let set = set_of(&[&ed, &rsa]);
        let (_, payload, signature) = parts(&access_token(&ed, NOW));
        for kid in ["ed-1", "rsa-1"] {
            let header = format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{kid}"}}"#);
            let forged = format!("{}.{payload}.{signature}", b64(header));
            let refused = set.verify(&forged, &policy(), TokenKind::Access, NOW);
            match kid {
                "ed-1" => assert_eq!(
                    refused,
                    Err(TokenError::AlgorithmMismatch {
                        expected: Algorithm::EdDSA,
                        found: "RS256".into(),
                    })
                ),
                _ => assert_eq!(refused, Err(TokenError::BadSignature)),
            }
        }
    }

    #[test]
    fn expiry_allows_exactly_the_leeway() {
        let key = ed_key("ed-1");
        let set = set_of(&[&key]);
        let token = access_token(&key, NOW);
        let exp = NOW + 1800;
        for late in [0, 20, 30] {
            assert!(
                set.verify(&token, &policy(), TokenKind::Access, exp + late)
                    .is_ok(),
                "{late} s after exp"
            );
        }
        let expired = set.verify(&token, &policy(), TokenKind::Access, exp + 31);
        assert_eq!(expired, Err(TokenError::ExpiredToken));
        assert_eq!(expired.unwrap_err().code(), ErrorCode::ExpiredToken);
        assert_eq!(
            set.verify(&token, &policy(), TokenKind::Access, exp + 86_400 * 3),
            Err(TokenError::ExpiredToken),
            "a long-expired token still reads as expired, so the client refreshes"
        );
    }

    #[test]
    fn token_not_valid_yet_is_refused() {
        let key = ed_key("ed-1");
        let set = set_of(&[&key]);
        let mut claims = registered_claims(NOW);
        claims.invalid_before = Some(UnixTimeStamp::from_secs(NOW + 120));
        let token = sign_raw(&key, &claims);
        assert_eq!(
            set.verify(&token, &policy(), TokenKind::Access, NOW),
            Err(TokenError::NotYetValid)
        );
        assert!(
            set.verify(&token, &policy(), TokenKind::Access, NOW + 90)
                .is_ok()
        );

        let issued_in_future = access_token(&key, NOW + 3600);
        let refused = set.verify(&issued_in_future, &policy(), TokenKind::Access, NOW);
        assert_eq!(refused, Err(TokenError::NotYetValid));
        assert_eq!(refused.unwrap_err().code(), ErrorCode::InvalidToken);
        let skewed = access_token(&key, NOW + 20);
        assert!(
            set.verify(&skewed, &policy(), TokenKind::Access, NOW)
                .is_ok()
        );
    }

    #[test]
    fn wrong_issuer_or_audience_is_refused() {
        let key = ed_key("ed-1");
        let set = set_of(&[&key]);
        let token = access_token(&key, NOW);
        let other_issuer = TokenPolicy::new("https://evil.example", AUDIENCE);
        assert_eq!(
            set.verify(&token, &other_issuer, TokenKind::Access, NOW),
            Err(TokenError::WrongIssuer)
        );
        let other_audience = TokenPolicy::new(ISSUER, "another-api");
        assert_eq!(
            set.verify(&token, &other_audience, TokenKind::Access, NOW),
            Err(TokenError::WrongAudience)
        );
        let mut claims = registered_claims(NOW);
        claims.audiences = None;
        assert_eq!(
            set.verify(&sign_raw(&key, &claims), &policy(), TokenKind::Access, NOW),
            Err(TokenError::MissingClaim("aud"))
        );
    }

    #[test]
    fn access_token_older_than_a_day_is_refused_whatever_its_exp() {
        let key = ed_key("ed-1");
        let set = set_of(&[&key]);
        let mut lax = policy();
        lax.access_ttl_secs = 7 * 86_400;
        let token = key
            .issue(&lax, "user-42", "jti-1", &access_claims(), NOW)
            .unwrap();
        let day = 86_400;
        assert!(
            set.verify(&token, &policy(), TokenKind::Access, NOW + day)
                .is_ok()
        );
        assert!(
            set.verify(&token, &policy(), TokenKind::Access, NOW + day + 30)
                .is_ok()
        );
        assert_eq!(
            set.verify(&token, &policy(), TokenKind::Access, NOW + day + 31),
            Err(TokenError::TooOld)
        );
    }

    #[test]
    fn refresh_and_access_tokens_are_not_interchangeable() {
        let key = ed_key("ed-1");
        let set = set_of(&[&key]);
        let refresh = key
            .issue(
                &policy(),
                "user-42",
                "jti-r",
                &H200Claims::refresh("fam-1", true),
                NOW,
            )
            .unwrap();
        assert_eq!(
            set.verify(&refresh, &policy(), TokenKind::Access, NOW),
            Err(TokenError::WrongKind {
                expected: TokenKind::Access,
                found: TokenKind::Refresh,
            })
        );
        let access = access_token(&key, NOW);
        assert_eq!(
            set.verify(&access, &policy(), TokenKind::Refresh, NOW),
            Err(TokenError::WrongKind {
                expected: TokenKind::Refresh,
                found: TokenKind::Access,
            })
        );
        let six_days = NOW + 6 * 86_400;
        let verified = set
            .verify(&refresh, &policy(), TokenKind::Refresh, six_days)
            .unwrap();
        assert_eq!(verified.claims.family.as_deref(), Some("fam-1"));
        assert_eq!(verified.expires_at, NOW + 7 * 86_400);
        assert_eq!(
            set.verify(
                &refresh,
                &policy(),
                TokenKind::Refresh,
                NOW + 7 * 86_400 + 31
            ),
            Err(TokenError::ExpiredToken)
        );
    }

    #[test]
    fn tampered_payload_is_refused() {
        for key in [ed_key("ed-1"), rsa_key("rsa-1")] {
            let set = set_of(&[&key]);
            let (header, payload, signature) = parts(&access_token(&key, NOW));
            let mut claims = decoded_json(&payload);
            claims["roles"] = serde_json::json!(["admin"]);
            claims["permissions"] = serde_json::json!(["admin:users"]);
            let forged = format!("{header}.{}.{signature}", b64(claims.to_string()));
            assert_eq!(
                set.verify(&forged, &policy(), TokenKind::Access, NOW),
                Err(TokenError::BadSignature),
                "{:?}",
                key.algorithm()
            );
            let mut bad_signature = signature.into_bytes();
            bad_signature[5] = if bad_signature[5] == b'A' { b'B' } else { b'A' };
            let forged = format!(
                "{header}.{payload}.{}",
                String::from_utf8(bad_signature).unwrap()
            );
            assert_eq!(
                set.verify(&forged, &policy(), TokenKind::Access, NOW),
                Err(TokenError::BadSignature)
            );
        }
    }

    #[test]
    fn missing_registered_claims_are_refused() {
        let key = ed_key("ed-1");
        let set = set_of(&[&key]);
        type StripClaim = fn(&mut JWTClaims<H200Claims>);
        let cases: [(&str, StripClaim); 6] = [
            ("exp", |c| c.expires_at = None),
            ("nbf", |c| c.invalid_before = None),
            ("iat", |c| c.issued_at = None),
            ("sub", |c| c.subject = None),
            ("jti", |c| c.jwt_id = Some(String::new())),
            ("iss", |c| c.issuer = None),
        ];
        for (name, strip) in cases {
            let mut claims = registered_claims(NOW);
            strip(&mut claims);
            assert_eq!(
                set.verify(&sign_raw(&key, &claims), &policy(), TokenKind::Access, NOW),
                Err(TokenError::MissingClaim(name))
            );
        }
        assert_eq!(
            key.issue(&policy(), "", "jti", &access_claims(), NOW),
            Err(TokenError::MissingClaim("sub"))
        );
    }

    #[test]
    fn key_ids_pick_the_key() {
        let key_a = ed_key("ed-a");
        let key_b = SigningKey::generate_ed25519("ed-b", [8; 32]).unwrap();
        let both = set_of(&[&key_a, &key_b]);
        let token = access_token(&key_a, NOW);
        assert_eq!(
            both.verify(&token, &policy(), TokenKind::Access, NOW)
                .unwrap()
                .kid,
            "ed-a"
        );
        let (_, payload, _) = parts(&token);
        let without_kid = sign_with_header(&key_a, r#"{"alg":"EdDSA"}"#, &payload);
        assert_eq!(
            both.verify(&without_kid, &policy(), TokenKind::Access, NOW),
            Err(TokenError::MissingKeyId)
        );
        let only_a = set_of(&[&key_a]);
        assert!(
            only_a
                .verify(&without_kid, &policy(), TokenKind::Access, NOW)
                .is_ok()
        );
        let other = access_token(&SigningKey::generate_ed25519("ed-c", [3; 32]).unwrap(), NOW);
        let unknown = both.verify(&other, &policy(), TokenKind::Access, NOW);
        assert_eq!(unknown, Err(TokenError::UnknownKeyId("ed-c".into())));
        assert_eq!(unknown.unwrap_err().code(), ErrorCode::InvalidToken);
    }

    #[test]
    fn jwks_round_trip_verifies_ed25519_and_rs256_tokens() {
        let ed = ed_key("ed-1");
        let rsa = rsa_key("rsa-1");
        let hmac = SigningKey::hs256("hs-1", &[9; 32]).unwrap();
        let published = set_of(&[&ed, &rsa, &hmac]).to_jwks_json();
        let document: serde_json::Value = serde_json::from_str(&published).unwrap();
        let keys = document["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2, "the HMAC secret is not published");
        assert_eq!(keys[0]["kid"], "ed-1");
        assert_eq!(keys[0]["alg"], "EdDSA");
        assert_eq!(keys[1]["kid"], "rsa-1");
        assert_eq!(keys[1]["kty"], "RSA");
        assert_eq!(keys[1]["e"], "AQAB");
        assert!(keys.iter().all(|key| key.get("d").is_none()));

        let fetched = KeySet::from_jwks_json(&published).unwrap();
        assert_eq!(fetched.len(), 2);
        assert_eq!(fetched.get("rsa-1").unwrap().algorithm(), Algorithm::RS256);
        for key in [&ed, &rsa] {
            let verified = fetched
                .verify(&access_token(key, NOW), &policy(), TokenKind::Access, NOW)
                .unwrap();
            assert_eq!(verified.kid, key.kid());
        }
        assert_eq!(fetched.to_jwks_json(), published);
    }

    #[test]
    fn jwks_skips_unsupported_keys_and_refuses_malformed_documents() {
        let ed = ed_key("ed-1").public_jwk().unwrap();
        let mut without_kid = ed.clone();
        without_kid.as_object_mut().unwrap().remove("kid");
        let document = serde_json::json!({ "keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "OKP", "crv": "X25519", "kid": "x", "x": "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"},
            {"kty": "RSA", "use": "enc", "kid": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "alg": "RS512", "kid": "rs512", "n": "AQAB", "e": "AQAB"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            without_kid,
        ]});
        let set = KeySet::from_jwks_json(&document.to_string()).unwrap();
        assert_eq!(set.len(), 1);
        let thumbprint = set.keys.keys().next().unwrap().clone();
        assert_eq!(
            thumbprint.len(),
            43,
            "RFC 7638 SHA-256 thumbprint, base64url"
        );

        for malformed in [
            "",
            "{",
            "[]",
            r#"{"keys": 3}"#,
            r#"{"keys": [1]}"#,
            r#"{"keys": [{}]}"#,
        ] {
            assert_eq!(
                KeySet::from_jwks_json(malformed).unwrap_err(),
                TokenError::MalformedKeySet,
                "{malformed}"
            );
        }
        let mut leaked = ed.clone();
        leaked["d"] = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A".into();
        let mut bad_x = ed.clone();
        bad_x["x"] = "not base64!".into();
        for bad in [leaked, bad_x] {
            let document = serde_json::json!({ "keys": [bad] }).to_string();
            assert!(matches!(
                KeySet::from_jwks_json(&document),
                Err(TokenError::InvalidKey(_))
            ));
        }
        let duplicate = serde_json::json!({ "keys": [ed.clone(), ed] }).to_string();
        assert!(matches!(
            KeySet::from_jwks_json(&duplicate),
            Err(TokenError::InvalidKey(_))
        ));
        assert!(
            KeySet::from_jwks_json(r#"{"keys": []}"#)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn malformed_tokens_are_refused_as_invalid() {
        let key = ed_key("ed-1");
        let set = set_of(&[&key]);
        let token = access_token(&key, NOW);
        let too_long = format!("{token}{}", "A".repeat(MAX_TOKEN_BYTES));
        for garbage in [
            "",
            ".",
            "..",
            "a.b.c",
            "a.b",
            &too_long,
            &format!("{token}.x"),
        ] {
            let refused = set.verify(garbage, &policy(), TokenKind::Access, NOW);
            assert_eq!(refused, Err(TokenError::Malformed), "{garbage:.40}");
            assert_eq!(refused.unwrap_err().code(), ErrorCode::InvalidToken);
        }
        let (_, payload, _) = parts(&token);
        let critical = sign_with_header(
            &key,
            r#"{"alg":"EdDSA","kid":"ed-1","crit":["exp"]}"#,
            &payload,
        );
        assert_eq!(
            set.verify(&critical, &policy(), TokenKind::Access, NOW),
            Err(TokenError::Unsupported)
        );
    }

    #[test]
    fn keys_can_be_shared_across_threads() {
        fn shared<T: Send + Sync + 'static>() {}
        shared::<KeySet>();
        shared::<SigningKey>();
        shared::<TokenPolicy>();
    }

    #[test]
    fn error_codes_follow_the_design() {
        assert_eq!(TokenError::ExpiredToken.code(), ErrorCode::ExpiredToken);
        for refusal in [
            TokenError::Malformed,
            TokenError::BadSignature,
            TokenError::WrongIssuer,
            TokenError::TooOld,
            TokenError::MissingKeyId,
            TokenError::UnknownKeyId("k".into()),
        ] {
            assert_eq!(refusal.code(), ErrorCode::InvalidToken);
        }
        assert_eq!(TokenError::Signing.code(), ErrorCode::Internal);
        assert!(!format!("{:?}", ed_key("ed-1")).contains("key_pair"));
    }

    proptest! {
        #[test]
        fn arbitrary_tokens_never_verify_nor_panic(token in "\\PC{0,300}") {
            let set = set_of(&[&ed_key("ed-1")]);
            prop_assert!(set.verify(&token, &policy(), TokenKind::Access, NOW).is_err());
        }

        #[test]
        fn arbitrary_jwks_documents_never_panic(document in "\\PC{0,200}") {
            let _ = KeySet::from_jwks_json(&document);
        }
    }
}
