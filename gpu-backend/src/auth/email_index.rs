//! The blind index of users' emails: emails are sealed at rest, so login by email looks a user
//! up by a keyed hash of the normalised address, never by the address itself.
//!
//! The index is `version:hex(HMAC-SHA256(key_v, normalised email))`, where `key_v` is derived
//! from seal key `version` ([`SealKeys::derived`]). A lookup tries every key version in the
//! ring, so rows indexed before a rotation still match; the backend (re)indexes every row not
//! under the newest key at start ([`fill`]), and `h200 user add` indexes the email it writes.

use hmac::{Hmac, Mac};

use crate::seal::SealKeys;
use crate::store::{Store, StoreResult};

/// What the index keys are derived for.
const PURPOSE: &str = "h200 users.email blind index v1";

/// The form of an address that is indexed: surrounding space trimmed, lower case.
pub fn normalise(email: &str) -> String {
    email.trim().to_lowercase()
}

/// The index entries `email` may be filed under, newest key first; the first is the one to
/// write.
pub fn candidates(keys: &SealKeys, email: &str) -> Vec<String> {
    let normalised = normalise(email);
    keys.derived(PURPOSE)
        .into_iter()
        .map(|(version, key)| {
            let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key)
                .expect("HMAC takes a key of any length; this is a bug");
            mac.update(normalised.as_bytes());
            format!("{version}:{}", hex::encode(mac.finalize().into_bytes()))
        })
        .collect()
}

/// The entry to write for `email`: under the newest key.
pub fn entry(keys: &SealKeys, email: &str) -> String {
    candidates(keys, email)
        .into_iter()
        .next()
        .expect("a key ring is never empty; this is a bug")
}

/// Files every sealed email whose index is missing or under an older key under the newest key;
/// how many rows it wrote. A row whose email does not open is left out (and logged).
pub async fn fill(store: &Store, keys: &SealKeys) -> StoreResult<usize> {
    let mut written = 0;
    for (id, sealed) in store.users_to_index(keys.current_version()).await? {
        let email = match keys.open(&crate::http::admin::email_context(&id), &sealed) {
            Ok(email) => email,
            Err(error) => {
                tracing::warn!(user = %id, error = %error, "a sealed email does not open; not indexed");
                continue;
            }
        };
        let email = String::from_utf8_lossy(&email);
        store
            .set_email_index(&id, Some(&entry(keys, &email)))
            .await?;
        written += 1;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(versions: &[u32]) -> SealKeys {
        SealKeys::new(versions.iter().map(|&v| (v, vec![v as u8; 32]))).unwrap()
    }

    #[test]
    fn the_index_is_keyed_normalised_and_follows_rotation() {
        let old = ring(&[1]);
        let entry_v1 = entry(&old, "Ana@Example.com ");
        assert!(entry_v1.starts_with("1:"));
        assert_eq!(entry_v1, entry(&old, "ana@example.com"));
        assert_ne!(entry_v1, entry(&old, "ana@example.org"));
        assert!(!entry_v1.contains("ana"));
        // Another key gives another index: without the key, the index says nothing.
        assert_ne!(entry_v1[2..], entry(&ring(&[2]), "ana@example.com")[2..]);
        // After a rotation the new entry is under v2, and the v1 entry is still a candidate.
        let rotated = ring(&[1, 2]);
        let found = candidates(&rotated, "ana@example.com");
        assert!(found[0].starts_with("2:"));
        assert_eq!(found[1], entry_v1);
    }
}
