//! Secrets at rest (MFA secrets, emails, retained images) sealed with AES-256-GCM under a
//! versioned key, so keys can rotate while older rows stay readable.
//!
//! Sealed bytes are `version (4 bytes, big endian) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`. The
//! caller names what the bytes are for (`context`, e.g. `users.email:<id>`); it is bound in as
//! associated data, so a sealed value copied to another row or column does not open.

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

const NONCE_BYTES: usize = 12;
const VERSION_BYTES: usize = 4;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("sealed data is too short")]
    Truncated,
    #[error("no key of version {0}")]
    UnknownKeyVersion(u32),
    #[error("sealed data does not open with its key and context")]
    Tampered,
    #[error("the random source failed: {0}")]
    Random(getrandom::Error),
    #[error("a seal key must be 32 bytes, version at least 1")]
    BadKey,
}

/// The seal keys by version; new data is sealed under the newest.
#[derive(Clone)]
pub struct SealKeys {
    keys: BTreeMap<u32, [u8; 32]>,
}

impl std::fmt::Debug for SealKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKeys")
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SealKeys {
    /// A key ring from `(version, key)` pairs.
    pub fn new(keys: impl IntoIterator<Item = (u32, Vec<u8>)>) -> Result<SealKeys, SealError> {
        let mut ring = BTreeMap::new();
        for (version, key) in keys {
            let key: [u8; 32] = key.try_into().map_err(|_| SealError::BadKey)?;
            if version == 0 {
                return Err(SealError::BadKey);
            }
            ring.insert(version, key);
        }
        if ring.is_empty() {
            return Err(SealError::BadKey);
        }
        Ok(SealKeys { keys: ring })
    }

    /// The version new data is sealed under.
    pub fn current_version(&self) -> u32 {
        *self
            .keys
            .keys()
            .next_back()
            .expect("a key ring is never empty; this is a bug")
    }

    /// Seals `plaintext` for `context` under the newest key.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let version = self.current_version();
        let cipher =
            Aes256Gcm::new_from_slice(&self.keys[&version]).map_err(|_| SealError::BadKey)?;
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(SealError::Random)?;
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError::Tampered)?;
        let mut out = Vec::with_capacity(VERSION_BYTES + NONCE_BYTES + ciphertext.len());
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Opens bytes sealed for `context` under any key version still in the ring.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < VERSION_BYTES + NONCE_BYTES + 16 {
            return Err(SealError::Truncated);
        }
        let (version, rest) = sealed.split_at(VERSION_BYTES);
        let version = u32::from_be_bytes(version.try_into().map_err(|_| SealError::Truncated)?);
        let key = self
            .keys
            .get(&version)
            .ok_or(SealError::UnknownKeyVersion(version))?;
        let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| SealError::BadKey)?;
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError::Tampered)
    }

    /// A 32-byte key for `purpose` derived from each seal key (HMAC-SHA256 of the purpose under
    /// the seal key), newest version first: keys for other uses (a blind index) that rotate with
    /// the seal keys and never expose them.
    pub fn derived(&self, purpose: &str) -> Vec<(u32, [u8; 32])> {
        use hmac::{Hmac, Mac};
        self.keys
            .iter()
            .rev()
            .map(|(&version, key)| {
                let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key)
                    .expect("HMAC takes a key of any length; this is a bug");
                mac.update(purpose.as_bytes());
                (version, mac.finalize().into_bytes().into())
            })
            .collect()
    }

    /// The key version a sealed value was made with.
    pub fn version_of(sealed: &[u8]) -> Option<u32> {
        Some(u32::from_be_bytes(
            sealed.get(..VERSION_BYTES)?.try_into().ok()?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(versions: &[u32]) -> SealKeys {
        SealKeys::new(versions.iter().map(|&v| (v, vec![v as u8; 32]))).unwrap()
    }

    #[test]
    fn round_trip_under_the_newest_key() {
        let keys = ring(&[1, 2]);
        let sealed = keys.seal("users.email:u1", b"ana@example.com").unwrap();
        assert_eq!(SealKeys::version_of(&sealed), Some(2));
        assert_eq!(
            keys.open("users.email:u1", &sealed).unwrap(),
            b"ana@example.com"
        );
        assert!(
            !sealed.windows(3).any(|w| w == b"ana"),
            "plaintext must not show"
        );
    }

    #[test]
    fn old_versions_stay_readable_and_dropped_ones_do_not() {
        let old = ring(&[1]);
        let sealed = old.seal("c", b"secret").unwrap();
        assert_eq!(ring(&[1, 2]).open("c", &sealed).unwrap(), b"secret");
        assert_eq!(
            ring(&[2]).open("c", &sealed),
            Err(SealError::UnknownKeyVersion(1))
        );
    }

    #[test]
    fn context_tampering_and_truncation_are_refused() {
        let keys = ring(&[1]);
        let mut sealed = keys.seal("users.email:u1", b"x").unwrap();
        assert_eq!(
            keys.open("users.email:u2", &sealed),
            Err(SealError::Tampered)
        );
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(
            keys.open("users.email:u1", &sealed),
            Err(SealError::Tampered)
        );
        assert_eq!(
            keys.open("users.email:u1", &sealed[..10]),
            Err(SealError::Truncated)
        );
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(
            SealKeys::new([(1, vec![0; 31])]).err(),
            Some(SealError::BadKey)
        );
        assert_eq!(
            SealKeys::new([(0, vec![0; 32])]).err(),
            Some(SealError::BadKey)
        );
        assert_eq!(SealKeys::new(Vec::new()).err(), Some(SealError::BadKey));
    }
}
