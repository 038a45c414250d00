//! In-process state for one edge instance: rate buckets, deny-list, IP blocks, event counters,
//! the JWKS and API-key caches and the upkeep times. Used by the native server (and for what one
//! Worker isolate keeps to itself); the Cloudflare and Spin adapters keep the shared data in a
//! Durable Object and Spin key-value.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use shared::api_key::{ApiKeyCache, ApiKeyDigest, ApiKeyGrant};
use shared::rate_limit::{GcraStore, MemoryGcraStore};
use shared::token::KeySet;

use crate::ports::{
    BlockCheck, ENDED_BLOCK_KEPT_MS, EdgeState, GrantLookup, RateStore, StateError, UpkeepTask,
};

/// Most events one counter key remembers; a count never needs more than the largest threshold.
const MAX_EVENTS_PER_KEY: usize = 64;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// GCRA buckets in memory ([`MemoryGcraStore`] behind a lock).
#[derive(Debug, Default)]
pub struct MemoryRateStore {
    buckets: Mutex<MemoryGcraStore>,
}

impl MemoryRateStore {
    /// Drops buckets whose TAT lies before `now_ms` (no decision changes); returns how many.
    pub fn prune(&self, now_ms: u64) -> usize {
        lock(&self.buckets).prune(now_ms)
    }

    /// How many buckets are held.
    pub fn len(&self) -> usize {
        lock(&self.buckets).len()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RateStore for MemoryRateStore {
    async fn read(&self, key: &str) -> Result<Option<u64>, StateError> {
        Ok(lock(&self.buckets).read(key))
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<u64>,
        new: u64,
        ttl_ms: u64,
    ) -> Result<bool, StateError> {
        Ok(lock(&self.buckets).compare_and_set(key, expected, new, ttl_ms))
    }

    async fn prune(&self, now_ms: u64) -> Result<usize, StateError> {
        Ok(MemoryRateStore::prune(self, now_ms))
    }
}

/// A deny-list entry: tokens issued before `cutoff_ms` are refused until `expires_at_ms`.
#[derive(Debug, Clone, Copy)]
struct Denial {
    cutoff_ms: u64,
    expires_at_ms: u64,
}

/// A block on an address: when it ends and how many requests it refused so far.
#[derive(Debug, Clone, Copy)]
struct Block {
    until_ms: u64,
    refused: u64,
}

#[derive(Debug, Default)]
struct Inner {
    /// Deny-list key (`jti:…`, `kid:…`, `sub:…`) → its entry.
    denied: HashMap<String, Denial>,
    revocation_cursor: u64,
    /// Address → its block, kept [`ENDED_BLOCK_KEPT_MS`] after it ends to report its tally.
    blocks: HashMap<String, Block>,
    /// Counter key → event times (ms), oldest first.
    events: HashMap<String, VecDeque<u64>>,
    api_keys: ApiKeyCache,
    key_set: Option<Arc<KeySet>>,
    /// When each upkeep task last ran (ms).
    upkeep: HashMap<UpkeepTask, u64>,
}

/// Every other piece of edge state, in memory.
#[derive(Debug, Default)]
pub struct MemoryState {
    inner: Mutex<Inner>,
}

impl MemoryState {
    /// Drops expired deny-list entries, blocks ended [`ENDED_BLOCK_KEPT_MS`] ago, and counters with no event in the last
    /// `max_window_ms`; returns how many entries went.
    pub fn prune(&self, now_ms: u64, max_window_ms: u64) -> usize {
        let mut inner = lock(&self.inner);
        let before = inner.denied.len() + inner.blocks.len() + inner.events.len();
        inner
            .denied
            .retain(|_, denial| denial.expires_at_ms > now_ms);
        inner
            .blocks
            .retain(|_, block| block.until_ms.saturating_add(ENDED_BLOCK_KEPT_MS) > now_ms);
        let horizon = now_ms.saturating_sub(max_window_ms);
        inner
            .events
            .retain(|_, times| times.back().is_some_and(|last| *last > horizon));
        before - (inner.denied.len() + inner.blocks.len() + inner.events.len())
    }

    /// How many token ids are on the deny-list.
    pub fn denied_len(&self) -> usize {
        lock(&self.inner).denied.len()
    }
}

impl EdgeState for MemoryState {
    async fn denials(&self, keys: &[String], now_ms: u64) -> Result<Vec<Option<u64>>, StateError> {
        let inner = lock(&self.inner);
        Ok(keys
            .iter()
            .map(|key| {
                inner
                    .denied
                    .get(key)
                    .filter(|denial| denial.expires_at_ms > now_ms)
                    .map(|denial| denial.cutoff_ms)
            })
            .collect())
    }

    async fn deny(&self, key: &str, cutoff_ms: u64, expires_at_ms: u64) -> Result<(), StateError> {
        let denial = Denial {
            cutoff_ms,
            expires_at_ms,
        };
        lock(&self.inner).denied.insert(key.to_owned(), denial);
        Ok(())
    }

    async fn revocation_cursor(&self) -> Result<u64, StateError> {
        Ok(lock(&self.inner).revocation_cursor)
    }

    async fn set_revocation_cursor(&self, since_ms: u64) -> Result<(), StateError> {
        lock(&self.inner).revocation_cursor = since_ms;
        Ok(())
    }

    async fn check_block(&self, ip: &str, now_ms: u64) -> Result<BlockCheck, StateError> {
        let mut inner = lock(&self.inner);
        let Some(block) = inner.blocks.get_mut(ip) else {
            return Ok(BlockCheck::Clear);
        };
        if block.until_ms > now_ms {
            block.refused = block.refused.saturating_add(1);
            return Ok(BlockCheck::Blocked {
                until_ms: block.until_ms,
            });
        }
        let Block { until_ms, refused } = *block;
        inner.blocks.remove(ip);
        Ok(if refused > 0 {
            BlockCheck::Ended { until_ms, refused }
        } else {
            BlockCheck::Clear
        })
    }

    async fn block(&self, ip: &str, until_ms: u64) -> Result<(), StateError> {
        let block = Block {
            until_ms,
            refused: 0,
        };
        lock(&self.inner).blocks.insert(ip.to_owned(), block);
        Ok(())
    }

    async fn count_event(&self, key: &str, window_ms: u64, now_ms: u64) -> Result<u32, StateError> {
        let mut inner = lock(&self.inner);
        let times = inner.events.entry(key.to_owned()).or_default();
        let horizon = now_ms.saturating_sub(window_ms);
        while times.front().is_some_and(|t| *t <= horizon) {
            times.pop_front();
        }
        if times.len() == MAX_EVENTS_PER_KEY {
            times.pop_front();
        }
        times.push_back(now_ms);
        Ok(u32::try_from(times.len()).unwrap_or(u32::MAX))
    }

    async fn reset_events(&self, key: &str) -> Result<(), StateError> {
        lock(&self.inner).events.remove(key);
        Ok(())
    }

    async fn api_key(
        &self,
        digest: &ApiKeyDigest,
        now_secs: u64,
    ) -> Result<GrantLookup, StateError> {
        Ok(lock(&self.inner).api_keys.lookup(digest, now_secs).into())
    }

    async fn remember_api_key(
        &self,
        digest: ApiKeyDigest,
        grant: Option<ApiKeyGrant>,
        now_secs: u64,
    ) -> Result<(), StateError> {
        lock(&self.inner).api_keys.insert(digest, grant, now_secs);
        Ok(())
    }

    async fn key_set(&self) -> Result<Option<Arc<KeySet>>, StateError> {
        Ok(lock(&self.inner).key_set.clone())
    }

    async fn replace_key_set(&self, keys: Arc<KeySet>) -> Result<(), StateError> {
        lock(&self.inner).key_set = Some(keys);
        Ok(())
    }

    async fn last_upkeep(&self, task: UpkeepTask) -> Result<u64, StateError> {
        Ok(lock(&self.inner).upkeep.get(&task).copied().unwrap_or(0))
    }

    async fn record_upkeep(&self, task: UpkeepTask, at_ms: u64) -> Result<(), StateError> {
        lock(&self.inner).upkeep.insert(task, at_ms);
        Ok(())
    }

    async fn prune(&self, now_ms: u64, max_window_ms: u64) -> Result<usize, StateError> {
        Ok(MemoryState::prune(self, now_ms, max_window_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::block_on;

    #[test]
    fn counters_forget_events_outside_their_window() {
        let state = MemoryState::default();
        let count = |now| block_on(state.count_event("k", 1000, now)).expect("memory works");
        assert_eq!(count(10_000), 1);
        assert_eq!(count(10_500), 2);
        assert_eq!(count(11_001), 2);
        assert_eq!(count(12_000), 2);
        block_on(state.reset_events("k")).expect("memory works");
        assert_eq!(count(12_001), 1);
    }

    #[test]
    fn blocks_and_denials_end_when_they_expire() {
        let state = MemoryState::default();
        block_on(state.block("ip", 5_000)).expect("memory works");
        block_on(state.block("quiet", 5_000)).expect("memory works");
        let blocked = Ok(BlockCheck::Blocked { until_ms: 5_000 });
        assert_eq!(block_on(state.check_block("ip", 4_000)), blocked);
        assert_eq!(block_on(state.check_block("ip", 4_999)), blocked);
        let ended = Ok(BlockCheck::Ended {
            until_ms: 5_000,
            refused: 2,
        });
        assert_eq!(block_on(state.check_block("ip", 5_000)), ended);
        assert_eq!(
            block_on(state.check_block("ip", 5_001)),
            Ok(BlockCheck::Clear)
        );
        assert_eq!(
            block_on(state.check_block("other", 1)),
            Ok(BlockCheck::Clear)
        );
        let keys = ["jti:j".to_owned(), "sub:u".to_owned()];
        block_on(state.deny("jti:j", u64::MAX, 5_000)).expect("memory works");
        block_on(state.deny("sub:u", 1_500, 5_000)).expect("memory works");
        assert_eq!(
            block_on(state.denials(&keys, 4_000)),
            Ok(vec![Some(u64::MAX), Some(1_500)])
        );
        assert_eq!(block_on(state.denials(&keys, 5_000)), Ok(vec![None, None]));
        assert_eq!(
            state.prune(6_000, 1_000),
            2,
            "two denials; the ended block is kept"
        );
        let kept_until = 5_000 + ENDED_BLOCK_KEPT_MS;
        assert_eq!(state.prune(kept_until, 1_000), 1, "the unreported block");
        assert_eq!(state.denied_len(), 0);
        assert_eq!(block_on(state.denials(&keys, 4_000)), Ok(vec![None, None]));
    }
}
