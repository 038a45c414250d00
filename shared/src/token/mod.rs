//! Access and refresh tokens: their claims, how the backend issues them and how the edge verifies
//! them against the JWKS it caches. The key decides the algorithm; `alg` in a header only has to
//! agree with it.
//!
//! - `claims`: the algorithms, token kinds, lifetimes and the [`TokenPolicy`], the
//!   project's [`H200Claims`] and what a [`VerifiedToken`] yields.
//! - `error`: [`TokenError`] and its wire code.
//! - `verify`: [`VerificationKey`], the [`KeySet`] read from and published as a JWKS, and
//!   [`KeySet::verify`].
//! - `issue`: the backend's [`SigningKey`] and [`SigningKey::issue`].

mod claims;
mod error;
mod issue;
mod verify;

#[cfg(test)]
mod tests;

pub use claims::{
    Algorithm, DEFAULT_ACCESS_TTL_SECS, DEFAULT_AUDIENCE, DEFAULT_ISSUER, DEFAULT_LEEWAY_SECS,
    DEFAULT_MAX_ACCESS_AGE_SECS, DEFAULT_REFRESH_TTL_SECS, H200Claims, TokenKind, TokenPolicy,
    VerifiedToken,
};
pub use error::TokenError;
pub use issue::SigningKey;
pub use verify::{
    KeySet, MAX_KEY_ID_BYTES, MAX_TOKEN_BYTES, MIN_HS256_SECRET_BYTES, VerificationKey,
};
