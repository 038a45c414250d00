//! Edge state in Redis, shared by every native edge that names the same server and key prefix
//! (`--state-url redis://…`): GCRA timestamps, the deny-list and its revocation cursor, IP
//! blocks with their tallies, intrusion counters, the API-key cache, and when the shared upkeep
//! tasks last ran. Each operation that reads and writes is one Lua script, so Redis runs it
//! atomically however many edges race on the key; the GCRA math itself stays in
//! [`shared::rate_limit`] and only its compare-and-set step runs in Redis.
//!
//! The JWKS stays in process memory (each edge fetches it from the backend), and so does the time
//! of its refresh. Entries carry Redis expiries, so Redis drops what no decision needs and
//! [`RedisState::prune`] has nothing to do.

use std::sync::Arc;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use shared::api_key::{
    ApiKeyCache, ApiKeyDigest, ApiKeyGrant, NEGATIVE_CACHE_SECS, REVOCATION_HORIZON_SECS,
};
use shared::token::KeySet;

use edge::memory::MemoryState;
use edge::ports::{
    BlockCheck, ENDED_BLOCK_KEPT_MS, EdgeState, GrantLookup, RateStore, StateError, UpkeepTask,
};

/// Most events one counter key remembers; a count never needs more than the largest threshold
/// (the same bound as the in-memory state).
const MAX_EVENTS_PER_KEY: u32 = 64;

/// Stores `ARGV[2]` under `KEYS[1]` for `ARGV[3]` ms if the stored value is still `ARGV[1]`
/// (`''`: none); 1 if it did.
const COMPARE_AND_SET: &str = r"
local current = redis.call('GET', KEYS[1])
if current == false then current = '' end
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
";

/// Checks a request at `ARGV[1]` (ms) against the block under `KEYS[1]`:
/// `{0}` clear, `{1, until}` blocked (and counted), `{2, until, refused}` ended (and forgotten).
const CHECK_BLOCK: &str = r"
local until_ms = redis.call('HGET', KEYS[1], 'until')
if not until_ms then return {0} end
if tonumber(until_ms) > tonumber(ARGV[1]) then
  redis.call('HINCRBY', KEYS[1], 'refused', 1)
  return {1, until_ms}
end
local refused = redis.call('HGET', KEYS[1], 'refused') or '0'
redis.call('DEL', KEYS[1])
return {2, until_ms, refused}
";

/// Records the event `ARGV[4]` at `ARGV[1]` (ms) under `KEYS[1]`, forgets events at or before
/// `ARGV[2]` and beyond the newest `ARGV[3]`, lets the key expire `ARGV[5]` ms later; returns
/// how many events it holds.
const COUNT_EVENT: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
local held = redis.call('ZCARD', KEYS[1])
local most = tonumber(ARGV[3])
if held > most then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, held - most - 1)
  held = most
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return held
";

/// Where the state lives: a Redis server and the prefix of every key this system writes there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTarget {
    /// `redis://[user:password@]host[:port][/db]`.
    pub url: String,
    /// Prepended to every key, so several systems (or tests) share one server apart.
    pub prefix: String,
}

/// One connection (multiplexed, reconnecting) and the scripts, shared by the two stores.
#[derive(Clone)]
struct Redis {
    connection: ConnectionManager,
    prefix: Arc<str>,
    compare_and_set: Arc<Script>,
    check_block: Arc<Script>,
    count_event: Arc<Script>,
}

impl Redis {
    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}{kind}:{name}", self.prefix)
    }

    fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }
}

fn failed(error: redis::RedisError) -> StateError {
    StateError(format!("redis: {error}"))
}

/// Opens the connection both stores use; fails when the server does not answer.
pub async fn connect(target: &RedisTarget) -> Result<(RedisRateStore, RedisState), StateError> {
    let client = redis::Client::open(target.url.as_str()).map_err(failed)?;
    let mut connection = ConnectionManager::new(client).await.map_err(failed)?;
    let _: String = redis::cmd("PING")
        .query_async(&mut connection)
        .await
        .map_err(failed)?;
    let redis = Redis {
        connection,
        prefix: target.prefix.as_str().into(),
        compare_and_set: Arc::new(Script::new(COMPARE_AND_SET)),
        check_block: Arc::new(Script::new(CHECK_BLOCK)),
        count_event: Arc::new(Script::new(COUNT_EVENT)),
    };
    let state = RedisState {
        redis: redis.clone(),
        local: MemoryState::default(),
    };
    Ok((RedisRateStore { redis }, state))
}

/// GCRA timestamps in Redis: one string per bucket, expiring when its TAT has passed.
#[derive(Clone)]
pub struct RedisRateStore {
    redis: Redis,
}

impl std::fmt::Debug for RedisRateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateStore")
            .field("prefix", &self.redis.prefix)
            .finish_non_exhaustive()
    }
}

impl RateStore for RedisRateStore {
    async fn read(&self, key: &str) -> Result<Option<u64>, StateError> {
        let stored: Option<u64> = self
            .redis
            .connection()
            .get(self.redis.key("rate", key))
            .await
            .map_err(failed)?;
        Ok(stored)
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<u64>,
        new: u64,
        ttl_ms: u64,
    ) -> Result<bool, StateError> {
        let expected = expected.map(|tat| tat.to_string()).unwrap_or_default();
        let stored: i64 = self
            .redis
            .compare_and_set
            .key(self.redis.key("rate", key))
            .arg(expected)
            .arg(new)
            .arg(ttl_ms.max(1))
            .invoke_async(&mut self.redis.connection())
            .await
            .map_err(failed)?;
        Ok(stored == 1)
    }

    async fn prune(&self, _now_ms: u64) -> Result<usize, StateError> {
        // Each bucket expires in Redis once its TAT has passed.
        Ok(0)
    }
}

/// The API-key cache entry as Redis holds it.
#[derive(Serialize, Deserialize)]
struct CachedGrant {
    grant: Option<ApiKeyGrant>,
    fetched_at: u64,
}

/// The deny-list, blocks, counters, API-key cache and shared upkeep times in Redis; the JWKS in
/// process memory.
pub struct RedisState {
    redis: Redis,
    /// What each edge keeps to itself: the JWKS and when it was last fetched.
    local: MemoryState,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("prefix", &self.redis.prefix)
            .finish_non_exhaustive()
    }
}

/// A deny-list entry as stored: `cutoff:expires_at` (ms).
fn denial(stored: &str, now_ms: u64) -> Option<u64> {
    let (cutoff, expires_at) = stored.split_once(':')?;
    let expires_at: u64 = expires_at.parse().ok()?;
    (expires_at > now_ms).then(|| cutoff.parse().ok()).flatten()
}

fn unique_member(now_ms: u64) -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // Without OS randomness two events could share a member and count once; refuse to go on.
        std::process::abort();
    }
    format!("{now_ms}-{}", hex::encode(bytes))
}

impl EdgeState for RedisState {
    async fn denials(&self, keys: &[String], now_ms: u64) -> Result<Vec<Option<u64>>, StateError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = keys.iter().map(|k| self.redis.key("deny", k)).collect();
        let stored: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&names)
            .query_async(&mut self.redis.connection())
            .await
            .map_err(failed)?;
        Ok(stored
            .iter()
            .map(|entry| entry.as_deref().and_then(|entry| denial(entry, now_ms)))
            .collect())
    }

    async fn deny(&self, key: &str, cutoff_ms: u64, expires_at_ms: u64) -> Result<(), StateError> {
        let _: () = redis::cmd("SET")
            .arg(self.redis.key("deny", key))
            .arg(format!("{cutoff_ms}:{expires_at_ms}"))
            .arg("PXAT")
            .arg(expires_at_ms.max(1))
            .query_async(&mut self.redis.connection())
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn revocation_cursor(&self) -> Result<u64, StateError> {
        let cursor: Option<u64> = self
            .redis
            .connection()
            .get(self.redis.key("revocations", "cursor"))
            .await
            .map_err(failed)?;
        Ok(cursor.unwrap_or(0))
    }

    async fn set_revocation_cursor(&self, since_ms: u64) -> Result<(), StateError> {
        let _: () = self
            .redis
            .connection()
            .set(self.redis.key("revocations", "cursor"), since_ms)
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn check_block(&self, ip: &str, now_ms: u64) -> Result<BlockCheck, StateError> {
        let answer: Vec<u64> = self
            .redis
            .check_block
            .key(self.redis.key("block", ip))
            .arg(now_ms)
            .invoke_async(&mut self.redis.connection())
            .await
            .map_err(failed)?;
        Ok(match answer.as_slice() {
            [1, until_ms] => BlockCheck::Blocked {
                until_ms: *until_ms,
            },
            [2, until_ms, refused] if *refused > 0 => BlockCheck::Ended {
                until_ms: *until_ms,
                refused: *refused,
            },
            _ => BlockCheck::Clear,
        })
    }

    async fn block(&self, ip: &str, until_ms: u64) -> Result<(), StateError> {
        let key = self.redis.key("block", ip);
        let kept_until = until_ms.saturating_add(ENDED_BLOCK_KEPT_MS);
        let _: () = redis::pipe()
            .atomic()
            .hset_multiple(&key, &[("until", until_ms), ("refused", 0)])
            .ignore()
            .cmd("PEXPIREAT")
            .arg(&key)
            .arg(kept_until)
            .ignore()
            .query_async(&mut self.redis.connection())
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn count_event(&self, key: &str, window_ms: u64, now_ms: u64) -> Result<u32, StateError> {
        let held: u32 = self
            .redis
            .count_event
            .key(self.redis.key("events", key))
            .arg(now_ms)
            .arg(now_ms.saturating_sub(window_ms))
            .arg(MAX_EVENTS_PER_KEY)
            .arg(unique_member(now_ms))
            .arg(window_ms.max(1))
            .invoke_async(&mut self.redis.connection())
            .await
            .map_err(failed)?;
        Ok(held)
    }

    async fn reset_events(&self, key: &str) -> Result<(), StateError> {
        let _: () = self
            .redis
            .connection()
            .del(self.redis.key("events", key))
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn api_key(
        &self,
        digest: &ApiKeyDigest,
        now_secs: u64,
    ) -> Result<GrantLookup, StateError> {
        let stored: Option<String> = self
            .redis
            .connection()
            .get(self.redis.key("api-key", digest.as_str()))
            .await
            .map_err(failed)?;
        let Some(cached) = stored.and_then(|text| serde_json::from_str::<CachedGrant>(&text).ok())
        else {
            return Ok(GrantLookup::Refetch);
        };
        // One entry in the shared cache type, so freshness follows the one rule it states.
        let mut cache = ApiKeyCache::new(1);
        cache.insert(*digest, cached.grant, cached.fetched_at);
        Ok(cache.lookup(digest, now_secs).into())
    }

    async fn remember_api_key(
        &self,
        digest: ApiKeyDigest,
        grant: Option<ApiKeyGrant>,
        now_secs: u64,
    ) -> Result<(), StateError> {
        let lifetime = if grant.is_some() {
            REVOCATION_HORIZON_SECS
        } else {
            NEGATIVE_CACHE_SECS
        };
        let cached = CachedGrant {
            grant,
            fetched_at: now_secs,
        };
        let text = serde_json::to_string(&cached)
            .map_err(|e| StateError(format!("encoding an API-key grant: {e}")))?;
        let _: () = self
            .redis
            .connection()
            .set_ex(self.redis.key("api-key", digest.as_str()), text, lifetime)
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn key_set(&self) -> Result<Option<Arc<KeySet>>, StateError> {
        self.local.key_set().await
    }

    async fn replace_key_set(&self, keys: Arc<KeySet>) -> Result<(), StateError> {
        self.local.replace_key_set(keys).await
    }

    async fn last_upkeep(&self, task: UpkeepTask) -> Result<u64, StateError> {
        if task == UpkeepTask::Jwks {
            return self.local.last_upkeep(task).await;
        }
        let at: Option<u64> = self
            .redis
            .connection()
            .get(self.redis.key("upkeep", task.name()))
            .await
            .map_err(failed)?;
        Ok(at.unwrap_or(0))
    }

    async fn record_upkeep(&self, task: UpkeepTask, at_ms: u64) -> Result<(), StateError> {
        if task == UpkeepTask::Jwks {
            return self.local.record_upkeep(task, at_ms).await;
        }
        let _: () = self
            .redis
            .connection()
            .set(self.redis.key("upkeep", task.name()), at_ms)
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn prune(&self, _now_ms: u64, _max_window_ms: u64) -> Result<usize, StateError> {
        // Deny-list entries, blocks, counters and cache entries carry their own Redis expiry.
        Ok(0)
    }
}
