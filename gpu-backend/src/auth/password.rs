//! Passwords: the policy (12+ characters with upper, lower, digit and symbol; none of the last
//! five) and Argon2id hashing with the same work for an unknown user as for a wrong password.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted, in bytes (bounds the hashing work an attacker can ask for).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a new password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyError {
    #[error("at least {MIN_PASSWORD_CHARS} characters are required")]
    TooShort,
    #[error("at most {MAX_PASSWORD_BYTES} bytes are allowed")]
    TooLong,
    #[error("an upper-case letter is required")]
    NoUpper,
    #[error("a lower-case letter is required")]
    NoLower,
    #[error("a digit is required")]
    NoDigit,
    #[error("a symbol is required")]
    NoSymbol,
}

/// Checks a new password against the policy (not the history: that needs the store).
pub fn check_policy(password: &str) -> Result<(), PasswordPolicyError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordPolicyError::TooLong);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordPolicyError::TooShort);
    }
    if !password.chars().any(char::is_uppercase) {
        return Err(PasswordPolicyError::NoUpper);
    }
    if !password.chars().any(char::is_lowercase) {
        return Err(PasswordPolicyError::NoLower);
    }
    if !password.chars().any(|c| c.is_ascii_digit()) {
        return Err(PasswordPolicyError::NoDigit);
    }
    if !password
        .chars()
        .any(|c| !c.is_alphanumeric() && !c.is_whitespace())
    {
        return Err(PasswordPolicyError::NoSymbol);
    }
    Ok(())
}

/// Argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane), and a decoy hash so that
/// checking an unknown user costs what checking a real one does.
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    decoy_hash: String,
}

impl Default for PasswordHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl PasswordHasher {
    pub fn new() -> Self {
        let params = Params::new(19 * 1024, 2, 1, None)
            .expect("the Argon2 parameters are valid; this is a bug");
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut hasher = PasswordHasher {
            argon2,
            decoy_hash: String::new(),
        };
        hasher.decoy_hash = hasher
            .hash("decoy password that never matches")
            .expect("hashing a constant cannot fail; this is a bug");
        hasher
    }

    /// A PHC-format Argon2id hash of `password` with a fresh random salt.
    pub fn hash(&self, password: &str) -> Result<String, argon2::password_hash::Error> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| {
            // The hash error cannot carry the cause, so it is logged here.
            tracing::error!(error = %e, "the random source failed drawing a salt");
            argon2::password_hash::Error::Crypto
        })?;
        let salt = SaltString::encode_b64(&salt)?;
        Ok(self
            .argon2
            .hash_password(password.as_bytes(), &salt)?
            .to_string())
    }

    /// Whether `password` matches `hash`. A malformed hash never matches.
    pub fn verify(&self, password: &str, hash: &str) -> bool {
        if password.len() > MAX_PASSWORD_BYTES {
            return false;
        }
        match PasswordHash::new(hash) {
            Ok(parsed) => self
                .argon2
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    }

    /// Spends the same work as [`verify`](Self::verify) for a user that does not exist.
    pub fn verify_decoy(&self, password: &str) -> bool {
        let _ = self.verify(password, &self.decoy_hash);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_requires_each_class_and_length() {
        assert_eq!(check_policy("Aa1!aaaaaaaa"), Ok(()));
        assert_eq!(
            check_policy("Aa1!aaaaaaa"),
            Err(PasswordPolicyError::TooShort)
        );
        assert_eq!(
            check_policy("aa1!aaaaaaaa"),
            Err(PasswordPolicyError::NoUpper)
        );
        assert_eq!(
            check_policy("AA1!AAAAAAAA"),
            Err(PasswordPolicyError::NoLower)
        );
        assert_eq!(
            check_policy("Aab!aaaaaaaa"),
            Err(PasswordPolicyError::NoDigit)
        );
        assert_eq!(
            check_policy("Aa1aaaaaaaaa"),
            Err(PasswordPolicyError::NoSymbol)
        );
        assert_eq!(
            check_policy("Aa1 aaaaaaaa"),
            Err(PasswordPolicyError::NoSymbol)
        );
        assert_eq!(
            check_policy(&format!("Aa1!{}", "a".repeat(2000))),
            Err(PasswordPolicyError::TooLong)
        );
    }

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let hasher = PasswordHasher::new();
        let a = hasher.hash("Correct-Horse-9").unwrap();
        let b = hasher.hash("Correct-Horse-9").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "salts differ");
        assert!(hasher.verify("Correct-Horse-9", &a));
        assert!(!hasher.verify("Correct-Horse-8", &a));
        assert!(!hasher.verify("Correct-Horse-9", "not a hash"));
        assert!(!hasher.verify_decoy("Correct-Horse-9"));
    }
}
