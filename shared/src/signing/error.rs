//! Why a request could not be signed or its signature was refused, and the wire code of each.

use crate::problem::ErrorCode;

/// Why a request could not be signed or its signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request carries no Signature-Input or no Signature")]
    Missing,
    #[error("malformed structured field: {0}")]
    MalformedHeader(&'static str),
    #[error("the signature does not follow the edge signing profile: {0}")]
    UnexpectedProfile(&'static str),
    #[error("the signature names a key id that is not active")]
    UnknownKey,
    #[error("the signature does not match the request")]
    Mismatch,
    #[error("the covered component {0:?} is absent from the request")]
    MissingComponent(String),
    #[error("a covered component is not usable: {0}")]
    InvalidComponent(&'static str),
    #[error("the content digest does not match the body")]
    DigestMismatch,
    #[error("the content digest has no sha-256 member")]
    UnsupportedDigest,
    #[error("the nonce must be 1 to 128 printable ASCII characters")]
    InvalidNonce,
    #[error("the signature was created at {created}, outside the window at {now}")]
    Expired { created: u64, now: u64 },
    #[error("the signature was created at {created}, too far ahead of {now}")]
    CreatedInFuture { created: u64, now: u64 },
    #[error("the nonce was already used within the window")]
    Replayed,
    #[error("signing key configuration: {0}")]
    InvalidKey(&'static str),
}

impl SignatureError {
    /// The stable wire code this refusal is answered with.
    pub fn code(&self) -> ErrorCode {
        match self {
            SignatureError::Missing => ErrorCode::MissingSignature,
            SignatureError::MalformedHeader(_)
            | SignatureError::UnexpectedProfile(_)
            | SignatureError::UnknownKey
            | SignatureError::Mismatch
            | SignatureError::MissingComponent(_)
            | SignatureError::InvalidComponent(_)
            | SignatureError::DigestMismatch
            | SignatureError::UnsupportedDigest
            | SignatureError::InvalidNonce => ErrorCode::InvalidSignature,
            SignatureError::Expired { .. } | SignatureError::CreatedInFuture { .. } => {
                ErrorCode::StaleSignature
            }
            SignatureError::Replayed => ErrorCode::ReplayedRequest,
            SignatureError::InvalidKey(_) => ErrorCode::Internal,
        }
    }
}
