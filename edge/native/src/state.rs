//! Where a native edge keeps its state: in process memory (one edge, the default) or in Redis
//! (several edges that must hold one rate limit, one deny-list and one set of blocks), chosen by
//! `--state-url`.

use std::sync::Arc;

use shared::api_key::{ApiKeyDigest, ApiKeyGrant};
use shared::token::KeySet;

use edge::memory::{MemoryRateStore, MemoryState};
use edge::ports::{BlockCheck, EdgeState, GrantLookup, RateStore, StateError, UpkeepTask};

use crate::redis_state::{self, RedisRateStore, RedisState, RedisTarget};

/// The default prefix of the keys an edge writes to a shared store.
pub const DEFAULT_STATE_PREFIX: &str = "h200:edge:";

/// The state store a `--state-url` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateTarget {
    /// This process's memory.
    Memory,
    /// A Redis server shared with other edges.
    Redis(RedisTarget),
}

impl StateTarget {
    /// `None`, `""` or `memory` → memory; `redis://…` → Redis with the keys under `prefix`.
    pub fn parse(url: Option<&str>, prefix: &str) -> Result<StateTarget, String> {
        match url.map(str::trim) {
            None | Some("") | Some("memory") => Ok(StateTarget::Memory),
            Some(url) if url.starts_with("redis://") => Ok(StateTarget::Redis(RedisTarget {
                url: url.to_owned(),
                prefix: prefix.to_owned(),
            })),
            Some(url) => Err(format!(
                "unsupported edge state URL {:?}: use memory or redis://host:port",
                url.split_once("://").map_or(url, |(scheme, _)| scheme)
            )),
        }
    }

    /// Opens the stores; a Redis that does not answer is an error (no silent fallback to memory,
    /// which would split the limits between edges).
    pub async fn open(&self) -> Result<(NativeRates, NativeState), StateError> {
        match self {
            StateTarget::Memory => Ok((
                NativeRates::Memory(MemoryRateStore::default()),
                NativeState::Memory(MemoryState::default()),
            )),
            StateTarget::Redis(target) => {
                let (rates, state) = redis_state::connect(target).await?;
                Ok((NativeRates::Redis(rates), NativeState::Redis(state)))
            }
        }
    }
}

/// The rate store a native edge runs with.
#[derive(Debug)]
pub enum NativeRates {
    Memory(MemoryRateStore),
    Redis(RedisRateStore),
}

impl RateStore for NativeRates {
    async fn read(&self, key: &str) -> Result<Option<u64>, StateError> {
        match self {
            NativeRates::Memory(store) => store.read(key).await,
            NativeRates::Redis(store) => store.read(key).await,
        }
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<u64>,
        new: u64,
        ttl_ms: u64,
    ) -> Result<bool, StateError> {
        match self {
            NativeRates::Memory(store) => store.compare_and_set(key, expected, new, ttl_ms).await,
            NativeRates::Redis(store) => store.compare_and_set(key, expected, new, ttl_ms).await,
        }
    }

    async fn prune(&self, now_ms: u64) -> Result<usize, StateError> {
        match self {
            NativeRates::Memory(store) => RateStore::prune(store, now_ms).await,
            NativeRates::Redis(store) => store.prune(now_ms).await,
        }
    }
}

/// The rest of the edge state a native edge runs with.
#[derive(Debug)]
pub enum NativeState {
    Memory(MemoryState),
    Redis(RedisState),
}

/// Calls the same method on whichever store this is.
macro_rules! delegate {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            NativeState::Memory($store) => $call,
            NativeState::Redis($store) => $call,
        }
    };
}

impl EdgeState for NativeState {
    async fn denials(&self, keys: &[String], now_ms: u64) -> Result<Vec<Option<u64>>, StateError> {
        delegate!(self, s => s.denials(keys, now_ms).await)
    }

    async fn deny(&self, key: &str, cutoff_ms: u64, expires_at_ms: u64) -> Result<(), StateError> {
        delegate!(self, s => s.deny(key, cutoff_ms, expires_at_ms).await)
    }

    async fn revocation_cursor(&self) -> Result<u64, StateError> {
        delegate!(self, s => s.revocation_cursor().await)
    }

    async fn set_revocation_cursor(&self, since_ms: u64) -> Result<(), StateError> {
        delegate!(self, s => s.set_revocation_cursor(since_ms).await)
    }

    async fn check_block(&self, ip: &str, now_ms: u64) -> Result<BlockCheck, StateError> {
        delegate!(self, s => s.check_block(ip, now_ms).await)
    }

    async fn block(&self, ip: &str, until_ms: u64) -> Result<(), StateError> {
        delegate!(self, s => s.block(ip, until_ms).await)
    }

    async fn count_event(&self, key: &str, window_ms: u64, now_ms: u64) -> Result<u32, StateError> {
        delegate!(self, s => s.count_event(key, window_ms, now_ms).await)
    }

    async fn reset_events(&self, key: &str) -> Result<(), StateError> {
        delegate!(self, s => s.reset_events(key).await)
    }

    async fn api_key(
        &self,
        digest: &ApiKeyDigest,
        now_secs: u64,
    ) -> Result<GrantLookup, StateError> {
        delegate!(self, s => s.api_key(digest, now_secs).await)
    }

    async fn remember_api_key(
        &self,
        digest: ApiKeyDigest,
        grant: Option<ApiKeyGrant>,
        now_secs: u64,
    ) -> Result<(), StateError> {
        delegate!(self, s => s.remember_api_key(digest, grant, now_secs).await)
    }

    async fn key_set(&self) -> Result<Option<Arc<KeySet>>, StateError> {
        delegate!(self, s => s.key_set().await)
    }

    async fn replace_key_set(&self, keys: Arc<KeySet>) -> Result<(), StateError> {
        delegate!(self, s => s.replace_key_set(keys).await)
    }

    async fn last_upkeep(&self, task: UpkeepTask) -> Result<u64, StateError> {
        delegate!(self, s => s.last_upkeep(task).await)
    }

    async fn record_upkeep(&self, task: UpkeepTask, at_ms: u64) -> Result<(), StateError> {
        delegate!(self, s => s.record_upkeep(task, at_ms).await)
    }

    async fn prune(&self, now_ms: u64, max_window_ms: u64) -> Result<usize, StateError> {
        delegate!(self, s => EdgeState::prune(s, now_ms, max_window_ms).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_urls_name_memory_or_redis_and_nothing_else() {
        assert_eq!(StateTarget::parse(None, "p:"), Ok(StateTarget::Memory));
        assert_eq!(
            StateTarget::parse(Some("memory"), "p:"),
            Ok(StateTarget::Memory)
        );
        assert_eq!(
            StateTarget::parse(Some("redis://127.0.0.1:6379/0"), "p:"),
            Ok(StateTarget::Redis(RedisTarget {
                url: "redis://127.0.0.1:6379/0".into(),
                prefix: "p:".into()
            }))
        );
        let refused = StateTarget::parse(Some("postgres://u:secret@db/x"), "p:")
            .expect_err("an edge keeps no state in Postgres");
        assert!(!refused.contains("secret"), "{refused}");
    }
}
