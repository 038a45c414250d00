//! Verification at the edge: public keys (Ed25519, RS256, HS256 when configured), the key set
//! read from and published as a JWKS, and the checks every presented token goes through.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use jwt_simple::JWTError;
use jwt_simple::prelude::{
    Duration, Ed25519PublicKey, EdDSAPublicKeyLike, HS256Key, JWTClaims, MACLike, RS256PublicKey,
    RSAPublicKeyLike, Token, UnixTimeStamp, VerificationOptions,
};
use serde::Deserialize;

use super::claims::{Algorithm, H200Claims, TokenKind, TokenPolicy, VerifiedToken};
use super::error::TokenError;

/// Longest compact token the verifier reads; anything longer is refused before decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Longest `kid` accepted in a header or a JWKS.
pub const MAX_KEY_ID_BYTES: usize = 128;
/// Shortest HS256 secret accepted (the SHA-256 output size, RFC 7518 §3.2).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

pub(super) enum PublicMaterial {
    Ed25519(Ed25519PublicKey),
    Rs256(RS256PublicKey),
    Hs256(HS256Key),
}

/// A key that verifies tokens of exactly one algorithm, under one key id.
pub struct VerificationKey {
    pub(super) kid: String,
    pub(super) material: PublicMaterial,
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

pub(super) fn checked_kid(kid: &str) -> Result<String, TokenError> {
    if kid.is_empty() || kid.len() > MAX_KEY_ID_BYTES {
        return Err(TokenError::InvalidKey(format!(
            "a key id must be 1 to {MAX_KEY_ID_BYTES} bytes"
        )));
    }
    Ok(kid.to_owned())
}

pub(super) fn key_error(error: impl fmt::Display) -> TokenError {
    TokenError::InvalidKey(error.to_string())
}

pub(super) fn checked_hs256_secret(secret: &[u8]) -> Result<HS256Key, TokenError> {
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
    pub(super) keys: BTreeMap<String, VerificationKey>,
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
