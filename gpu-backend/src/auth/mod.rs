//! The auth service: passwords, the token issuer and its keys, and the revocations the backend
//! enforces itself.

pub mod email_index;
pub mod password;
pub mod revocation;
pub mod token_keys;
pub mod tokens;
