//! Issuing at the backend: signing keys (Ed25519 by default, RS256 or HS256 when configured) and
//! the compact tokens they sign.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_simple::prelude::{
    Audiences, Ed25519PublicKey, HS256Key, JWTClaims, MACLike, RS256KeyPair, RSAKeyPairLike,
    UnixTimeStamp,
};
use serde::Serialize;

use super::claims::{Algorithm, H200Claims, TokenPolicy};
use super::error::TokenError;
use super::verify::{
    PublicMaterial, VerificationKey, checked_hs256_secret, checked_kid, key_error,
};

pub(super) enum PrivateMaterial {
    Ed25519 {
        key_pair: ed25519_compact::KeyPair,
        public: Ed25519PublicKey,
    },
    Rs256(Box<RS256KeyPair>),
    Hs256(HS256Key),
}

/// A key the backend issues tokens with: one algorithm, one key id.
pub struct SigningKey {
    pub(super) kid: String,
    pub(super) material: PrivateMaterial,
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

    /// A shared HS256 secret of at least
    /// [`MIN_HS256_SECRET_BYTES`](super::MIN_HS256_SECRET_BYTES), for deployments that configure
    /// HS256 explicitly.
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

    pub(super) fn sign_ed25519(
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
    use super::*;

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
            URL_SAFE_NO_PAD.encode(&signature[..]),
            "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
        );
    }

    #[test]
    fn debug_output_never_shows_key_material() {
        let key = SigningKey::generate_ed25519("ed-1", [7; 32]).unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains("ed-1") && shown.contains("EdDSA"), "{shown}");
        assert!(!shown.contains("key_pair"), "{shown}");
    }
}
