//! Why a token was refused, or why a key or token could not be made, with its wire code.

use crate::problem::ErrorCode;

use super::claims::{Algorithm, TokenKind};

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

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
