//! The edge's state in the Spin key-value store `default`, through `wasi:keyvalue`
//! (`0.2.0-draft2`: `store` and `atomics`, which Spin 3 hosts provide for every store named in
//! `key_value_stores`): GCRA timestamps, the deny-list and its cursor, IP blocks, event counters,
//! the JWKS and API-key caches, and when each upkeep task last ran (a Spin component gets a fresh
//! instance per request, so nothing survives in memory). Expired entries are dropped when read
//! or by the upkeep's prune, which sweeps the store a slice at a time.
//!
//! Consistency: every read-modify-write is one compare-and-swap of the store (`atomics::cas`
//! taken on the entry, then `atomics::swap`, which fails when the entry changed in between), so
//! concurrent instances, replicas included, cannot both pass a rate limit on one stale value:
//! [`KvRates::compare_and_set`] is a real compare-and-set, and the failed-login and rate-violation
//! counters ([`KvState::count_event`]) append their events with the same swap, retried. Counters
//! keep their event times (not `atomics::increment`) so the window slides exactly as on the other
//! runtimes. A rate entry whose time has passed is left in place until pruned, so the next swap
//! on the key compares against a value rather than an absence; the prune deletes a spent entry
//! with a plain delete (`wasi:keyvalue` has no conditional delete), so a swap that lands between
//! its read and its delete is dropped and that key starts afresh. A block's tally of refused
//! requests is counted with the same swap, retried a few times only: a refusal never waits long
//! on a busy tally, so under contention the tally may undercount. Plain writes (deny-list, block
//! starts, caches, cursor) replace whatever is there.

use std::sync::Arc;

use edge::ports::{
    BlockCheck, ENDED_BLOCK_KEPT_MS, EdgeState, Entropy, GrantLookup, RateStore, StateError,
    UpkeepTask,
};
use edge::shared::api_key::{ApiKeyCache, ApiKeyDigest, ApiKeyGrant, REVOCATION_HORIZON_SECS};
use edge::shared::token::KeySet;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use spin_sdk::wit::wasi::keyvalue::atomics::{self, Cas, CasError};
use spin_sdk::wit::wasi::keyvalue::store::{self, Bucket};

/// Most event times one counter keeps; no threshold needs more.
const MAX_EVENTS: usize = 64;
/// How often a counter's swap is retried when other instances changed the counter first.
const COUNTER_ATTEMPTS: u32 = 32;
/// The key of the revocation feed's cursor.
const CURSOR: &str = "revocation-cursor";
/// The key of the cached JWKS document.
const JWKS: &str = "jwks";
/// The key after which the next prune sweep starts (empty: from the first key).
const PRUNE_AFTER: &str = "prune-after";
/// Most entries one prune looks at.
const PRUNE_BATCH: usize = 256;

/// A number that may be forgotten after `expires_at_ms`.
#[derive(Debug, Serialize, Deserialize)]
struct Expiring {
    value: u64,
    expires_at_ms: u64,
}

impl Expiring {
    /// The value of `bytes` (an [`Expiring`] entry) if it is still alive at `now_ms`.
    fn alive_in(bytes: Option<&[u8]>, now_ms: u64) -> Option<u64> {
        bytes
            .and_then(|bytes| serde_json::from_slice::<Expiring>(bytes).ok())
            .filter(|entry| entry.expires_at_ms > now_ms)
            .map(|entry| entry.value)
    }
}

/// A block on an address as stored: an [`Expiring`] entry (forgotten
/// [`ENDED_BLOCK_KEPT_MS`] after the block ends) with the block's end and its tally.
#[derive(Debug, Serialize, Deserialize)]
struct StoredBlock {
    /// When the block ends.
    value: u64,
    expires_at_ms: u64,
    /// Requests refused so far.
    #[serde(default)]
    refused: u64,
}

/// How often a refusal tries to add itself to a block's tally before giving up on counting.
const TALLY_ATTEMPTS: u32 = 4;

/// A cached API-key answer and when it was fetched.
#[derive(Debug, Serialize, Deserialize)]
struct CachedGrant {
    grant: Option<ApiKeyGrant>,
    fetched_at_secs: u64,
}

/// The `default` store, opened once per request.
pub struct Kv {
    bucket: Bucket,
}

fn failed(error: impl std::fmt::Debug) -> StateError {
    StateError(format!("key-value: {error:?}"))
}

impl Kv {
    pub fn open() -> Result<Self, StateError> {
        Ok(Kv {
            bucket: store::open("default").map_err(failed)?,
        })
    }

    fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StateError> {
        match self.bucket.get(key).map_err(failed)? {
            None => Ok(None),
            // An entry this version cannot read is treated as absent and overwritten later.
            Some(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        }
    }

    fn set<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(value).map_err(failed)?;
        self.bucket.set(key, &bytes).map_err(failed)
    }

    fn delete(&self, key: &str) -> Result<(), StateError> {
        self.bucket.delete(key).map_err(failed)
    }

    /// Every key of the store, page by page.
    fn keys(&self) -> Result<Vec<String>, StateError> {
        let mut keys = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.bucket.list_keys(cursor.as_deref()).map_err(failed)?;
            keys.extend(page.keys);
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(keys),
            }
        }
    }

    /// Whether the entry under `key` is one the edge no longer needs at `now_ms`: an expired
    /// number (rate, deny-list, block), a counter idle for `max_window_ms`, a stale API-key
    /// answer. Keys of other kinds (cursor, JWKS, upkeep times) are kept.
    fn is_spent(&self, key: &str, now_ms: u64, max_window_ms: u64) -> Result<bool, StateError> {
        let prefix = key.split_once(':').map_or("", |(prefix, _)| prefix);
        Ok(match prefix {
            "rate" | "deny" | "block" => self
                .get::<Expiring>(key)?
                .is_none_or(|entry| entry.expires_at_ms <= now_ms),
            "events" => {
                let horizon = now_ms.saturating_sub(max_window_ms);
                self.get::<Vec<u64>>(key)?
                    .is_none_or(|times| times.last().is_none_or(|last| *last <= horizon))
            }
            "apikey" => self.get::<CachedGrant>(key)?.is_none_or(|cached| {
                cached.fetched_at_secs + REVOCATION_HORIZON_SECS <= now_ms / 1000
            }),
            _ => false,
        })
    }

    /// The value of an expiring entry still alive at `now_ms`; an expired entry is deleted.
    fn alive(&self, key: &str, now_ms: u64) -> Result<Option<u64>, StateError> {
        match self.get::<Expiring>(key)? {
            Some(entry) if entry.expires_at_ms > now_ms => Ok(Some(entry.value)),
            Some(_) => self.delete(key).map(|()| None),
            None => Ok(None),
        }
    }
}

/// The outcome of one swap.
enum Swapped {
    Done,
    /// Another instance changed the entry first; the handle holds what it holds now.
    Lost(Cas),
}

/// Swaps `value` in through `cas`: done, or lost to a newer value, or a store error.
fn swap(cas: Cas, value: &[u8]) -> Result<Swapped, StateError> {
    match atomics::swap(cas, value) {
        Ok(()) => Ok(Swapped::Done),
        Err(CasError::CasFailed(latest)) => Ok(Swapped::Lost(latest)),
        Err(CasError::StoreError(error)) => Err(failed(error)),
    }
}

/// A short random pause (up to `2^min(attempt, 3)` ms) after losing a swap, so instances that
/// collided do not collide again in lockstep.
fn back_off(attempt: u32) {
    let mut byte = [0u8];
    crate::runtime::WasiEntropy.fill(&mut byte);
    let ceiling = 1u64 << attempt.min(3);
    let micros = (u64::from(byte[0]) * ceiling * 1000) / 256;
    std::thread::sleep(std::time::Duration::from_micros(micros));
}

fn now_ms() -> u64 {
    edge::ports::Clock::now_ms(&crate::runtime::WasiClock)
}

/// GCRA timestamps.
pub struct KvRates(pub Arc<Kv>);

impl RateStore for KvRates {
    async fn read(&self, key: &str) -> Result<Option<u64>, StateError> {
        let bytes = self.0.bucket.get(&format!("rate:{key}")).map_err(failed)?;
        Ok(Expiring::alive_in(bytes.as_deref(), now_ms()))
    }

    /// One compare-and-swap of the store: the entry as it is now must still hold `expected`
    /// (an expired entry holds nothing), and the swap fails if another instance wrote it since.
    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<u64>,
        new: u64,
        ttl_ms: u64,
    ) -> Result<bool, StateError> {
        let key = format!("rate:{key}");
        let now = now_ms();
        let cas = Cas::new(&self.0.bucket, &key).map_err(failed)?;
        let current = cas.current().map_err(failed)?;
        if Expiring::alive_in(current.as_deref(), now) != expected {
            return Ok(false);
        }
        let entry = Expiring {
            value: new,
            expires_at_ms: now.saturating_add(ttl_ms),
        };
        let bytes = serde_json::to_vec(&entry).map_err(failed)?;
        match swap(cas, &bytes)? {
            Swapped::Done => Ok(true),
            Swapped::Lost(_) => {
                back_off(0);
                Ok(false)
            }
        }
    }

    /// Nothing of its own: [`KvState`]'s prune sweeps the `rate:` entries with the rest, in one
    /// listing of the store.
    async fn prune(&self, _now_ms: u64) -> Result<usize, StateError> {
        Ok(0)
    }
}

/// Everything else the pipeline remembers.
pub struct KvState(pub Arc<Kv>);

impl EdgeState for KvState {
    async fn denials(&self, keys: &[String], now_ms: u64) -> Result<Vec<Option<u64>>, StateError> {
        keys.iter()
            .map(|key| self.0.alive(&format!("deny:{key}"), now_ms))
            .collect()
    }

    async fn deny(&self, key: &str, cutoff_ms: u64, expires_at_ms: u64) -> Result<(), StateError> {
        let entry = Expiring {
            value: cutoff_ms,
            expires_at_ms,
        };
        self.0.set(&format!("deny:{key}"), &entry)
    }

    async fn revocation_cursor(&self) -> Result<u64, StateError> {
        Ok(self.0.get::<u64>(CURSOR)?.unwrap_or(0))
    }

    async fn set_revocation_cursor(&self, since_ms: u64) -> Result<(), StateError> {
        self.0.set(CURSOR, &since_ms)
    }

    /// While the block lasts, adds one to its tally with the store's compare-and-swap (a few
    /// attempts; the request is refused either way); once it ended, deletes it and reports the
    /// tally.
    async fn check_block(&self, ip: &str, now_ms: u64) -> Result<BlockCheck, StateError> {
        let key = format!("block:{ip}");
        let mut cas = Cas::new(&self.0.bucket, &key).map_err(failed)?;
        let mut attempt = 0;
        loop {
            let Some(mut block) = cas
                .current()
                .map_err(failed)?
                .and_then(|bytes| serde_json::from_slice::<StoredBlock>(&bytes).ok())
            else {
                return Ok(BlockCheck::Clear);
            };
            let until_ms = block.value;
            if until_ms <= now_ms {
                self.0.delete(&key)?;
                return Ok(if block.refused > 0 {
                    BlockCheck::Ended {
                        until_ms,
                        refused: block.refused,
                    }
                } else {
                    BlockCheck::Clear
                });
            }
            block.refused = block.refused.saturating_add(1);
            let bytes = serde_json::to_vec(&block).map_err(failed)?;
            match swap(cas, &bytes)? {
                Swapped::Done => return Ok(BlockCheck::Blocked { until_ms }),
                Swapped::Lost(_) if attempt + 1 >= TALLY_ATTEMPTS => {
                    return Ok(BlockCheck::Blocked { until_ms });
                }
                Swapped::Lost(latest) => {
                    cas = latest;
                    back_off(attempt);
                    attempt += 1;
                }
            }
        }
    }

    async fn block(&self, ip: &str, until_ms: u64) -> Result<(), StateError> {
        let entry = StoredBlock {
            value: until_ms,
            expires_at_ms: until_ms.saturating_add(ENDED_BLOCK_KEPT_MS),
            refused: 0,
        };
        self.0.set(&format!("block:{ip}"), &entry)
    }

    /// Appends `now_ms` to the key's event times with the store's compare-and-swap, retried
    /// (with a short random pause) while other instances append first, so no event is lost to a
    /// concurrent one.
    async fn count_event(&self, key: &str, window_ms: u64, now_ms: u64) -> Result<u32, StateError> {
        let key = format!("events:{key}");
        let horizon = now_ms.saturating_sub(window_ms);
        let mut cas = Cas::new(&self.0.bucket, &key).map_err(failed)?;
        for attempt in 0..COUNTER_ATTEMPTS {
            let mut times: Vec<u64> = cas
                .current()
                .map_err(failed)?
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .unwrap_or_default();
            times.retain(|t| *t > horizon);
            if times.len() >= MAX_EVENTS {
                times.remove(0);
            }
            times.push(now_ms);
            let bytes = serde_json::to_vec(&times).map_err(failed)?;
            match swap(cas, &bytes)? {
                Swapped::Done => return Ok(u32::try_from(times.len()).unwrap_or(u32::MAX)),
                Swapped::Lost(latest) => {
                    cas = latest;
                    back_off(attempt);
                }
            }
        }
        Err(StateError(format!(
            "key-value: {key} changed under each of {COUNTER_ATTEMPTS} attempts to count an event"
        )))
    }

    async fn reset_events(&self, key: &str) -> Result<(), StateError> {
        self.0.delete(&format!("events:{key}"))
    }

    async fn api_key(
        &self,
        digest: &ApiKeyDigest,
        now_secs: u64,
    ) -> Result<GrantLookup, StateError> {
        let Some(cached) = self
            .0
            .get::<CachedGrant>(&format!("apikey:{}", digest.as_str()))?
        else {
            return Ok(GrantLookup::Refetch);
        };
        // The freshness rule is the shared cache's: a one-entry cache decides.
        let mut cache = ApiKeyCache::new(1);
        cache.insert(*digest, cached.grant, cached.fetched_at_secs);
        Ok(cache.lookup(digest, now_secs).into())
    }

    async fn remember_api_key(
        &self,
        digest: ApiKeyDigest,
        grant: Option<ApiKeyGrant>,
        now_secs: u64,
    ) -> Result<(), StateError> {
        let cached = CachedGrant {
            grant,
            fetched_at_secs: now_secs,
        };
        self.0.set(&format!("apikey:{}", digest.as_str()), &cached)
    }

    async fn key_set(&self) -> Result<Option<Arc<KeySet>>, StateError> {
        let Some(bytes) = self.0.bucket.get(JWKS).map_err(failed)? else {
            return Ok(None);
        };
        let text = String::from_utf8(bytes).unwrap_or_default();
        Ok(KeySet::from_jwks_json(&text).ok().map(Arc::new))
    }

    async fn replace_key_set(&self, keys: Arc<KeySet>) -> Result<(), StateError> {
        self.0
            .bucket
            .set(JWKS, keys.to_jwks_json().as_bytes())
            .map_err(failed)
    }

    async fn last_upkeep(&self, task: UpkeepTask) -> Result<u64, StateError> {
        Ok(self
            .0
            .get::<u64>(&format!("upkeep:{}", task.name()))?
            .unwrap_or(0))
    }

    async fn record_upkeep(&self, task: UpkeepTask, at_ms: u64) -> Result<(), StateError> {
        self.0.set(&format!("upkeep:{}", task.name()), &at_ms)
    }

    /// Sweeps the next [`PRUNE_BATCH`] keys in key order (after where the last sweep stopped,
    /// wrapping at the end), so one request never pays for a whole store.
    async fn prune(&self, now_ms: u64, max_window_ms: u64) -> Result<usize, StateError> {
        let mut keys = self.0.keys()?;
        keys.sort_unstable();
        let after: String = self.0.get(PRUNE_AFTER)?.unwrap_or_default();
        let start = keys.partition_point(|key| key.as_str() <= after.as_str());
        let batch = &keys[start..keys.len().min(start + PRUNE_BATCH)];
        let mut dropped = 0;
        for key in batch {
            if self.0.is_spent(key, now_ms, max_window_ms)? {
                self.0.delete(key)?;
                dropped += 1;
            }
        }
        let next = match batch.last() {
            Some(last) if start + batch.len() < keys.len() => last.clone(),
            _ => String::new(),
        };
        self.0.set(PRUNE_AFTER, &next)?;
        Ok(dropped)
    }
}
