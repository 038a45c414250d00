//! API keys: the `ncs_` key format, the SHA-256 digest the store keeps instead of the key, and the
//! edge's grant cache that makes a revocation effective within [`REVOCATION_HORIZON_SECS`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::problem::ErrorCode;

/// Every key starts with this.
pub const API_KEY_PREFIX: &str = "ncs_";
/// Lowercase hex digits after the prefix (16 random bytes).
pub const API_KEY_HEX_LEN: usize = 32;
/// Longest time a cached grant is trusted: a revocation reaches the edge within this.
pub const REVOCATION_HORIZON_SECS: u64 = 60;
/// How long the edge remembers that a digest names no key.
pub const NEGATIVE_CACHE_SECS: u64 = 10;
/// Default number of digests the edge cache holds.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

/// Why an API key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    /// Not `ncs_` followed by exactly 32 lowercase hex digits.
    #[error("the API key is not of the ncs_ format")]
    Malformed,
    /// No key has this digest.
    #[error("the API key is not known")]
    Unknown,
    /// The key's `expires_at` has passed.
    #[error("the API key has expired")]
    Expired,
    /// The key was revoked.
    #[error("the API key has been revoked")]
    Revoked,
}

impl ApiKeyError {
    /// The stable wire code: `REVOKED_API_KEY` for a revoked key, `INVALID_API_KEY` otherwise.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiKeyError::Revoked => ErrorCode::RevokedApiKey,
            ApiKeyError::Malformed | ApiKeyError::Unknown | ApiKeyError::Expired => {
                ErrorCode::InvalidApiKey
            }
        }
    }
}

/// A secret API key in clear. It exists only when a key is created (shown once) and while a
/// request presents it; `Debug` shows only its listing prefix.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// The key made of 16 bytes of caller-provided randomness.
    pub fn from_random(bytes: [u8; 16]) -> Self {
        ApiKey(format!("{API_KEY_PREFIX}{}", hex::encode(bytes)))
    }

    /// Accepts exactly `ncs_` + 32 lowercase hex digits; no whitespace, no uppercase.
    pub fn parse(presented: &str) -> Result<Self, ApiKeyError> {
        let hex_part = presented
            .strip_prefix(API_KEY_PREFIX)
            .ok_or(ApiKeyError::Malformed)?;
        let well_formed = hex_part.len() == API_KEY_HEX_LEN
            && hex_part
                .bytes()
                .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
        if !well_formed {
            return Err(ApiKeyError::Malformed);
        }
        Ok(ApiKey(presented.to_owned()))
    }

    /// The key in clear, to show its owner once.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the whole key: what the store keeps and the edge looks up.
    pub fn digest(&self) -> ApiKeyDigest {
        ApiKeyDigest::from_bytes(Sha256::digest(self.0.as_bytes()).into())
    }

    /// The prefix and the first 8 hex digits, e.g. `ncs_1a2b3c4d…`, safe to list.
    pub fn display_prefix(&self) -> String {
        let shown = API_KEY_PREFIX.len() + 8;
        format!("{}…", &self.0[..shown])
    }
}

impl PartialEq for ApiKey {
    /// Constant-time in the key's content.
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for ApiKey {}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ApiKey")
            .field(&self.display_prefix())
            .finish()
    }
}

/// The SHA-256 digest of an API key, held as 64 lowercase hex digits (how it is stored, looked up
/// and serialized).
#[derive(Clone, Copy)]
pub struct ApiKeyDigest([u8; 64]);

impl ApiKeyDigest {
    fn from_bytes(bytes: [u8; 32]) -> Self {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0u8; 64];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(bytes) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0x0f)];
        }
        ApiKeyDigest(hex)
    }

    /// Reads 64 hex digits, as stored; either case is accepted and kept lowercase.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(ApiKeyDigest::from_bytes(bytes))
    }

    /// The digest as 64 lowercase hex digits.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// Whether `key` hashes to this digest, in constant time.
    pub fn matches(&self, key: &ApiKey) -> bool {
        *self == key.digest()
    }
}

impl PartialEq for ApiKeyDigest {
    /// Constant-time in the digest's content.
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for ApiKeyDigest {}

impl Hash for ApiKeyDigest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for ApiKeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyDigest({})", self.as_str())
    }
}

impl fmt::Display for ApiKeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ApiKeyDigest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ApiKeyDigest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ApiKeyDigest::from_hex(&text)
            .ok_or_else(|| serde::de::Error::custom("an API key digest is 64 hex digits"))
    }
}

/// What a key allows, as the backend tells the edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyGrant {
    /// The key's id in the store (what listing and revocation name).
    pub key_id: String,
    /// The principal the key acts for.
    pub subject: String,
    /// Permission strings the key carries.
    pub permissions: Vec<String>,
    /// Role names the key carries.
    pub roles: Vec<String>,
    /// Unix second after which the key is refused; `None` for no expiry.
    pub expires_at: Option<u64>,
    /// Whether the key was revoked.
    pub revoked: bool,
}

/// What the edge cache knows about a digest at some second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheLookup<'a> {
    /// Fetched recently enough to act on: the grant, or `None` when the backend knows no such
    /// key. Pass it to [`ApiKeyCache::decide`].
    Fresh(Option<&'a ApiKeyGrant>),
    /// Known but too old to act on; fetch from the backend and insert again.
    Stale,
    /// Never fetched (or evicted); fetch from the backend and insert.
    Missing,
}

#[derive(Debug, Clone)]
struct CacheEntry {
    grant: Option<ApiKeyGrant>,
    fetched_at: u64,
    /// Insertion sequence number: with `fetched_at`, this entry's place in the age index.
    sequence: u64,
}

/// The edge's bounded cache of grants by key digest. Pure data: the edge fetches from the backend
/// on `Stale` or `Missing` and inserts what it got, so a request costs no backend round trip while
/// its entry is fresh.
#[derive(Debug, Clone)]
pub struct ApiKeyCache {
    entries: HashMap<ApiKeyDigest, CacheEntry>,
    /// Entries by (fetched_at, sequence), so the oldest is evicted first.
    by_age: BTreeMap<(u64, u64), ApiKeyDigest>,
    capacity: usize,
    next_sequence: u64,
}

impl Default for ApiKeyCache {
    fn default() -> Self {
        ApiKeyCache::new(DEFAULT_CACHE_CAPACITY)
    }
}

impl ApiKeyCache {
    /// An empty cache holding at most `capacity` digests (at least one).
    pub fn new(capacity: usize) -> Self {
        ApiKeyCache {
            entries: HashMap::new(),
            by_age: BTreeMap::new(),
            capacity: capacity.max(1),
            next_sequence: 0,
        }
    }

    /// Number of digests held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What is known about `digest` at `now`: a grant is fresh for less than
    /// [`REVOCATION_HORIZON_SECS`] after it was fetched, an unknown key for less than
    /// [`NEGATIVE_CACHE_SECS`].
    pub fn lookup(&self, digest: &ApiKeyDigest, now: u64) -> CacheLookup<'_> {
        let Some(entry) = self.entries.get(digest) else {
            return CacheLookup::Missing;
        };
        let horizon = match entry.grant {
            Some(_) => REVOCATION_HORIZON_SECS,
            None => NEGATIVE_CACHE_SECS,
        };
        if now.saturating_sub(entry.fetched_at) < horizon {
            CacheLookup::Fresh(entry.grant.as_ref())
        } else {
            CacheLookup::Stale
        }
    }

    /// Remembers what the backend said about `digest` at `now` (`None`: no such key), replacing
    /// any earlier entry and evicting the oldest entries beyond capacity.
    pub fn insert(&mut self, digest: ApiKeyDigest, grant: Option<ApiKeyGrant>, now: u64) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let entry = CacheEntry {
            grant,
            fetched_at: now,
            sequence,
        };
        if let Some(previous) = self.entries.insert(digest, entry) {
            self.by_age
                .remove(&(previous.fetched_at, previous.sequence));
        }
        self.by_age.insert((now, sequence), digest);
        while self.entries.len() > self.capacity {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }

    /// Forgets `digest`, e.g. when the edge learns of a revocation directly.
    pub fn remove(&mut self, digest: &ApiKeyDigest) {
        if let Some(entry) = self.entries.remove(digest) {
            self.by_age.remove(&(entry.fetched_at, entry.sequence));
        }
    }

    /// Whether a fresh lookup result admits the request at `now`: an unknown key or one past
    /// `expires_at` is invalid, a revoked key is revoked.
    pub fn decide(grant: Option<&ApiKeyGrant>, now: u64) -> Result<&ApiKeyGrant, ApiKeyError> {
        let grant = grant.ok_or(ApiKeyError::Unknown)?;
        if grant.revoked {
            return Err(ApiKeyError::Revoked);
        }
        if grant.expires_at.is_some_and(|expires_at| now >= expires_at) {
            return Err(ApiKeyError::Expired);
        }
        Ok(grant)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const NOW: u64 = 1_750_000_000;
    const KEY: &str = "ncs_00112233445566778899aabbccddeeff";

    fn grant(key_id: &str) -> ApiKeyGrant {
        ApiKeyGrant {
            key_id: key_id.into(),
            subject: "user-42".into(),
            permissions: vec!["clusters:read".into(), "clusters:write".into()],
            roles: vec!["user".into()],
            expires_at: None,
            revoked: false,
        }
    }

    fn digest_of(n: u8) -> ApiKeyDigest {
        ApiKey::from_random([n; 16]).digest()
    }

    #[test]
    fn keys_are_made_from_random_bytes_in_the_exact_format() {
        let bytes = [
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ];
        let key = ApiKey::from_random(bytes);
        assert_eq!(key.as_str(), KEY);
        assert_eq!(ApiKey::parse(KEY).unwrap(), key);
        assert_eq!(key.display_prefix(), "ncs_00112233…");
        assert_eq!(format!("{key:?}"), "ApiKey(\"ncs_00112233…\")");
    }

    #[test]
    fn parse_refuses_anything_but_the_exact_format() {
        let refused = [
            "",
            "ncs_",
            "ncs_00112233445566778899aabbccddeef",
            "ncs_00112233445566778899aabbccddeeff0",
            "ncs_00112233445566778899AABBCCDDEEFF",
            "NCS_00112233445566778899aabbccddeeff",
            "ncx_00112233445566778899aabbccddeeff",
            "00112233445566778899aabbccddeeff",
            " ncs_00112233445566778899aabbccddeeff",
            "ncs_00112233445566778899aabbccddeeff\n",
            "ncs_00112233445566778899aabbccddeegg",
            "ncs_0011223344556677889９aabbccddeef",
        ];
        for text in refused {
            assert_eq!(ApiKey::parse(text), Err(ApiKeyError::Malformed), "{text:?}");
        }
        assert_eq!(ApiKeyError::Malformed.code(), ErrorCode::InvalidApiKey);
        assert!(ApiKey::parse("ncs_0123456789abcdef0123456789abcdef").is_ok());
    }

    #[test]
    fn digest_is_sha256_hex_of_the_whole_key() {
        let key = ApiKey::parse(KEY).unwrap();
        let expected = hex::encode(Sha256::digest(KEY.as_bytes()));
        // `printf '%s' ncs_00112233445566778899aabbccddeeff | sha256sum`
        assert_eq!(
            expected,
            "27273d48cf1fdd7a22a1177c43246c91dfaf6653bccbd9d232c9429d70ef5aef"
        );
        assert_eq!(key.digest().as_str(), expected);
        assert_eq!(key.digest().to_string(), expected);
        assert_eq!(ApiKeyDigest::from_hex(&expected), Some(key.digest()));
        assert_eq!(
            ApiKeyDigest::from_hex(&expected.to_uppercase())
                .unwrap()
                .as_str(),
            expected
        );
        assert_eq!(ApiKeyDigest::from_hex(&expected[..63]), None);
        assert!(key.digest().matches(&key));
        assert!(!key.digest().matches(&ApiKey::from_random([1; 16])));
        let json = serde_json::to_string(&key.digest()).unwrap();
        assert_eq!(json, format!("\"{expected}\""));
        assert_eq!(
            serde_json::from_str::<ApiKeyDigest>(&json).unwrap(),
            key.digest()
        );
        assert!(serde_json::from_str::<ApiKeyDigest>("\"abcd\"").is_err());
        // SHA-256("abc"), FIPS 180-2 appendix B.1: the digest is the plain hash.
        assert_eq!(
            hex::encode(Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn grants_are_fresh_for_less_than_the_revocation_horizon() {
        let mut cache = ApiKeyCache::default();
        let digest = digest_of(1);
        assert_eq!(cache.lookup(&digest, NOW), CacheLookup::Missing);
        cache.insert(digest, Some(grant("k1")), NOW);
        let granted = grant("k1");
        assert_eq!(
            cache.lookup(&digest, NOW),
            CacheLookup::Fresh(Some(&granted))
        );
        assert_eq!(
            cache.lookup(&digest, NOW + 59),
            CacheLookup::Fresh(Some(&granted))
        );
        assert_eq!(cache.lookup(&digest, NOW + 60), CacheLookup::Stale);
        assert_eq!(cache.lookup(&digest, NOW + 61), CacheLookup::Stale);
        cache.insert(digest, Some(grant("k1")), NOW + 61);
        assert_eq!(
            cache.lookup(&digest, NOW + 100),
            CacheLookup::Fresh(Some(&granted))
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn unknown_keys_are_remembered_for_ten_seconds() {
        let mut cache = ApiKeyCache::default();
        let digest = digest_of(2);
        cache.insert(digest, None, NOW);
        assert_eq!(cache.lookup(&digest, NOW + 9), CacheLookup::Fresh(None));
        assert_eq!(cache.lookup(&digest, NOW + 10), CacheLookup::Stale);
        let refused = ApiKeyCache::decide(None, NOW);
        assert_eq!(refused, Err(ApiKeyError::Unknown));
        assert_eq!(refused.unwrap_err().code(), ErrorCode::InvalidApiKey);
    }

    #[test]
    fn revocation_takes_effect_once_the_entry_is_refetched() {
        let mut cache = ApiKeyCache::default();
        let digest = digest_of(3);
        cache.insert(digest, Some(grant("k3")), NOW);
        let CacheLookup::Fresh(fresh) = cache.lookup(&digest, NOW + 30) else {
            panic!("fresh");
        };
        assert_eq!(ApiKeyCache::decide(fresh, NOW + 30).unwrap().key_id, "k3");
        assert_eq!(cache.lookup(&digest, NOW + 60), CacheLookup::Stale);
        let revoked = ApiKeyGrant {
            revoked: true,
            ..grant("k3")
        };
        cache.insert(digest, Some(revoked), NOW + 60);
        let CacheLookup::Fresh(fresh) = cache.lookup(&digest, NOW + 60) else {
            panic!("fresh");
        };
        let refused = ApiKeyCache::decide(fresh, NOW + 60);
        assert_eq!(refused, Err(ApiKeyError::Revoked));
        assert_eq!(refused.unwrap_err().code(), ErrorCode::RevokedApiKey);
    }

    #[test]
    fn expired_grants_are_refused_from_their_expiry() {
        let expiring = ApiKeyGrant {
            expires_at: Some(NOW + 100),
            ..grant("k4")
        };
        assert!(ApiKeyCache::decide(Some(&expiring), NOW + 99).is_ok());
        assert_eq!(
            ApiKeyCache::decide(Some(&expiring), NOW + 100),
            Err(ApiKeyError::Expired)
        );
        assert_eq!(ApiKeyError::Expired.code(), ErrorCode::InvalidApiKey);
        let revoked_and_expired = ApiKeyGrant {
            revoked: true,
            ..expiring
        };
        assert_eq!(
            ApiKeyCache::decide(Some(&revoked_and_expired), NOW + 200),
            Err(ApiKeyError::Revoked)
        );
    }

    #[test]
    fn the_oldest_entries_are_evicted_beyond_capacity() {
        let mut cache = ApiKeyCache::new(3);
        for n in 0..3u8 {
            cache.insert(digest_of(n), Some(grant("k")), NOW + u64::from(n));
        }
        // Refreshing the oldest makes the second one the oldest.
        cache.insert(digest_of(0), Some(grant("k")), NOW + 3);
        cache.insert(digest_of(9), None, NOW + 4);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.lookup(&digest_of(1), NOW + 5), CacheLookup::Missing);
        for n in [0, 2] {
            assert!(matches!(
                cache.lookup(&digest_of(n), NOW + 5),
                CacheLookup::Fresh(Some(_))
            ));
        }
        assert_eq!(
            cache.lookup(&digest_of(9), NOW + 5),
            CacheLookup::Fresh(None)
        );
        cache.remove(&digest_of(9));
        assert_eq!(cache.lookup(&digest_of(9), NOW + 5), CacheLookup::Missing);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.by_age.len(), 2);
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_accepts_only_the_format(text in "\\PC{0,48}") {
            if let Ok(key) = ApiKey::parse(&text) {
                prop_assert_eq!(key.as_str(), text.as_str());
                prop_assert_eq!(text.len(), 36);
            }
        }

        #[test]
        fn cache_never_exceeds_capacity(inserts in proptest::collection::vec((0u8..20, 0u64..1000), 0..200)) {
            let mut cache = ApiKeyCache::new(5);
            for (n, now) in inserts {
                cache.insert(digest_of(n), Some(grant("k")), now);
                prop_assert!(cache.len() <= 5);
                prop_assert_eq!(cache.len(), cache.by_age.len());
            }
        }
    }
}
