//! Access tokens whose signature already verified, so a repeated token skips the signature check
//! (an Ed25519 verification is most of a request's CPU). Only the signature is remembered: every
//! time check is made again on each use, and the pipeline still checks the deny-list per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use sha2::{Digest, Sha256};
use shared::token::{KeySet, TokenKind, TokenPolicy, VerifiedToken};

/// Tokens remembered at most; beyond it expired entries are dropped, then all of them.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// Verified access tokens by the SHA-256 of their text, valid only with the key set that verified
/// them.
#[derive(Debug)]
pub struct VerifiedTokenCache {
    capacity: usize,
    /// One lock for the key set and the entries, so an entry never outlives its key set.
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    /// The key set every entry was verified with. Holding the `Arc` keeps its address from being
    /// reused, so pointer equality means the same key set.
    keys: Option<Arc<KeySet>>,
    tokens: HashMap<[u8; 32], Entry>,
}

#[derive(Debug)]
struct Entry {
    token: VerifiedToken,
    /// When it verified (unix seconds); a clock that goes back before it verifies again.
    verified_at: u64,
}

impl Default for VerifiedTokenCache {
    fn default() -> Self {
        VerifiedTokenCache::new(DEFAULT_CAPACITY)
    }
}

impl VerifiedTokenCache {
    /// A cache of at most `capacity` tokens (0 remembers nothing).
    pub fn new(capacity: usize) -> Self {
        VerifiedTokenCache {
            capacity,
            inner: Mutex::new(Entries::default()),
        }
    }

    /// The access token `token` as it verified against this very `keys` before, if at
    /// `now_secs` it is still within every time limit `policy` sets (expiry and maximum age,
    /// each with the leeway) and the clock has not gone back since. Otherwise `None`, and the
    /// caller verifies it in full (which also names what is wrong with it).
    pub fn get(
        &self,
        keys: &Arc<KeySet>,
        policy: &TokenPolicy,
        token: &str,
        now_secs: u64,
    ) -> Option<VerifiedToken> {
        let mut inner = self.lock();
        if !inner.keys.as_ref().is_some_and(|k| Arc::ptr_eq(k, keys)) {
            return None;
        }
        let digest = digest(token);
        let entry = inner.tokens.get(&digest)?;
        if still_valid(entry, policy, now_secs) {
            return Some(entry.token.clone());
        }
        inner.tokens.remove(&digest);
        None
    }

    /// Remembers that `token` verified as `verified` against `keys` at `now_secs`. A different
    /// key set than the one held empties the cache first.
    pub fn insert(&self, keys: &Arc<KeySet>, token: &str, verified: &VerifiedToken, now_secs: u64) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.lock();
        if !inner.keys.as_ref().is_some_and(|k| Arc::ptr_eq(k, keys)) {
            inner.tokens.clear();
            inner.keys = Some(keys.clone());
        }
        if inner.tokens.len() >= self.capacity {
            inner
                .tokens
                .retain(|_, entry| entry.token.expires_at >= now_secs);
            if inner.tokens.len() >= self.capacity {
                inner.tokens.clear();
            }
        }
        inner.tokens.insert(
            digest(token),
            Entry {
                token: verified.clone(),
                verified_at: now_secs,
            },
        );
    }

    /// How many tokens are remembered.
    pub fn len(&self) -> usize {
        self.lock().tokens.len()
    }

    /// Whether no token is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The time checks of [`KeySet::verify`] for an access token that passed them at
/// `entry.verified_at`: not expired (`exp` + leeway), not older than the maximum age (+ leeway).
/// `nbf` and `iat` in the future only get further in the past as long as the clock moves on.
fn still_valid(entry: &Entry, policy: &TokenPolicy, now_secs: u64) -> bool {
    let leeway = policy.leeway_secs;
    let token = &entry.token;
    let max_age = policy
        .max_age_secs(TokenKind::Access)
        .saturating_add(leeway);
    now_secs >= entry.verified_at
        && now_secs <= token.expires_at.saturating_add(leeway)
        && now_secs.saturating_sub(token.issued_at) <= max_age
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::token::{H200Claims, SigningKey, TokenError};

    const NOW: u64 = 1_700_000_000;

    struct Fixture {
        keys: Arc<KeySet>,
        policy: TokenPolicy,
        token: String,
        verified: VerifiedToken,
    }

    fn fixture() -> Fixture {
        let signing = SigningKey::generate_ed25519("k1", [9u8; 32]).expect("key");
        let mut keys = KeySet::new();
        keys.insert(signing.verification_key());
        let policy = TokenPolicy::new(
            shared::token::DEFAULT_ISSUER,
            shared::token::DEFAULT_AUDIENCE,
        );
        let claims = H200Claims::access(vec!["viewer".into()], Vec::new(), false);
        let token = signing
            .issue(&policy, "user-1", "jti-1", &claims, NOW)
            .expect("issue");
        let verified = keys
            .verify(&token, &policy, TokenKind::Access, NOW)
            .expect("verifies");
        Fixture {
            keys: Arc::new(keys),
            policy,
            token,
            verified,
        }
    }

    #[test]
    fn a_remembered_token_is_returned_only_for_its_exact_text_and_key_set() {
        let f = fixture();
        let cache = VerifiedTokenCache::default();
        assert_eq!(cache.get(&f.keys, &f.policy, &f.token, NOW), None);
        cache.insert(&f.keys, &f.token, &f.verified, NOW);
        assert_eq!(
            cache.get(&f.keys, &f.policy, &f.token, NOW + 1),
            Some(f.verified.clone())
        );
        let mut tampered = f.token.clone();
        tampered.push('A');
        assert_eq!(cache.get(&f.keys, &f.policy, &tampered, NOW + 1), None);
        let same_keys_new_set =
            Arc::new(KeySet::from_jwks_json(&f.keys.to_jwks_json()).expect("jwks"));
        assert_eq!(
            cache.get(&same_keys_new_set, &f.policy, &f.token, NOW + 1),
            None
        );
    }

    #[test]
    fn a_new_key_set_forgets_every_token() {
        let f = fixture();
        let cache = VerifiedTokenCache::default();
        cache.insert(&f.keys, &f.token, &f.verified, NOW);
        let rotated = Arc::new(KeySet::new());
        cache.insert(&rotated, "other-token", &f.verified, NOW);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&f.keys, &f.policy, &f.token, NOW), None);
    }

    #[test]
    fn expiry_and_maximum_age_are_checked_on_every_use_like_a_full_verification() {
        let f = fixture();
        let cache = VerifiedTokenCache::default();
        cache.insert(&f.keys, &f.token, &f.verified, NOW);
        let last_valid = f.verified.expires_at + f.policy.leeway_secs;
        let full = |now| f.keys.verify(&f.token, &f.policy, TokenKind::Access, now);
        assert!(full(last_valid).is_ok());
        assert!(
            cache
                .get(&f.keys, &f.policy, &f.token, last_valid)
                .is_some()
        );
        assert_eq!(full(last_valid + 1), Err(TokenError::ExpiredToken));
        assert_eq!(
            cache.get(&f.keys, &f.policy, &f.token, last_valid + 1),
            None
        );
        assert!(cache.is_empty(), "an expired entry is dropped");

        let mut old = f.verified.clone();
        old.expires_at = u64::MAX / 2;
        cache.insert(&f.keys, &f.token, &old, NOW);
        let max_age = f.policy.max_age_secs(TokenKind::Access) + f.policy.leeway_secs;
        assert!(
            cache
                .get(&f.keys, &f.policy, &f.token, NOW + max_age)
                .is_some()
        );
        assert_eq!(
            cache.get(&f.keys, &f.policy, &f.token, NOW + max_age + 1),
            None
        );
    }

    #[test]
    fn a_clock_that_goes_back_verifies_again() {
        let f = fixture();
        let cache = VerifiedTokenCache::default();
        cache.insert(&f.keys, &f.token, &f.verified, NOW);
        assert_eq!(cache.get(&f.keys, &f.policy, &f.token, NOW - 1), None);
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let f = fixture();
        let cache = VerifiedTokenCache::new(3);
        for i in 0..10 {
            cache.insert(&f.keys, &format!("token-{i}"), &f.verified, NOW);
            assert!(cache.len() <= 3);
        }
        let mut expired = f.verified.clone();
        expired.expires_at = NOW - 100;
        let cache = VerifiedTokenCache::new(2);
        cache.insert(&f.keys, "stale", &expired, NOW - 200);
        cache.insert(&f.keys, "live", &f.verified, NOW);
        cache.insert(&f.keys, "new", &f.verified, NOW);
        assert_eq!(cache.len(), 2, "the expired entry made room");
        assert!(cache.get(&f.keys, &f.policy, "live", NOW).is_some());
        let none = VerifiedTokenCache::new(0);
        none.insert(&f.keys, &f.token, &f.verified, NOW);
        assert!(none.is_empty());
    }
}
