//! The backend's token issuer: signs access and refresh tokens with the current Ed25519 key and
//! publishes every key whose tokens may still be alive as the JWKS.

use shared::token::{
    H200Claims, KeySet, SigningKey, TokenError, TokenKind, TokenPolicy, VerifiedToken,
};

use crate::keys::TokenKeyRing;

/// Signs new tokens and verifies presented refresh tokens.
pub struct TokenIssuer {
    policy: TokenPolicy,
    current: SigningKey,
    published: KeySet,
    jwks_json: String,
}

/// A freshly issued token and its facts.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub jti: String,
    pub expires_at: u64,
}

impl TokenIssuer {
    /// An issuer over `ring` at `now_ms`: the ring's current key signs, its published keys verify.
    pub fn new(
        policy: TokenPolicy,
        ring: &TokenKeyRing,
        now_ms: i64,
    ) -> anyhow::Result<TokenIssuer> {
        let current = ring
            .current()
            .ok_or_else(|| anyhow::anyhow!("no current token signing key"))?;
        let current = SigningKey::generate_ed25519(&current.kid, current.seed_bytes()?)
            .map_err(|e| anyhow::anyhow!("loading the token signing key: {e}"))?;
        let mut published = KeySet::new();
        for material in ring.published(now_ms) {
            let key = SigningKey::generate_ed25519(&material.kid, material.seed_bytes()?)
                .map_err(|e| anyhow::anyhow!("loading token key {}: {e}", material.kid))?;
            published.insert(key.verification_key());
        }
        let jwks_json = published.to_jwks_json();
        Ok(TokenIssuer {
            policy,
            current,
            published,
            jwks_json,
        })
    }

    pub fn policy(&self) -> &TokenPolicy {
        &self.policy
    }

    /// The `kid` of the key that signs new tokens.
    pub fn current_kid(&self) -> &str {
        self.current.kid()
    }

    /// The JWKS document served at `/.well-known/jwks.json`.
    pub fn jwks_json(&self) -> &str {
        &self.jwks_json
    }

    /// The key set that verifies tokens (what an edge builds from the JWKS).
    pub fn key_set(&self) -> &KeySet {
        &self.published
    }

    /// Issues a token of `claims.kind` for `subject` at `now_secs`.
    pub fn issue(
        &self,
        subject: &str,
        claims: &H200Claims,
        now_secs: u64,
    ) -> Result<IssuedToken, TokenError> {
        let jti = uuid::Uuid::new_v4().simple().to_string();
        let token = self
            .current
            .issue(&self.policy, subject, &jti, claims, now_secs)?;
        Ok(IssuedToken {
            token,
            jti,
            expires_at: now_secs + self.policy.ttl_secs(claims.kind),
        })
    }

    /// Verifies a presented token of `kind`.
    pub fn verify(
        &self,
        token: &str,
        kind: TokenKind,
        now_secs: u64,
    ) -> Result<VerifiedToken, TokenError> {
        self.published.verify(token, &self.policy, kind, now_secs)
    }
}
