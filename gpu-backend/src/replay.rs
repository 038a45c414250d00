//! The nonces of accepted edge signatures, kept for as long as the signature could be replayed:
//! in process memory for one backend (the default), or in Postgres or Redis when several
//! backends serve the same edges, so a request replayed to another replica is refused too.
//!
//! The signature check itself stays synchronous ([`shared::signing::SignatureVerifier::verify`]);
//! it hands the nonce to a [`PendingNonce`], and the gate files it here afterwards with one
//! atomic insert-if-absent (a primary key in Postgres, `SET NX` in Redis).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use redis::aio::ConnectionManager;
use shared::signing::{MemoryNonceStore, NonceStore};
use sqlx::postgres::{PgPool, PgPoolOptions};

/// Most nonces the in-memory store holds: a minute of traffic at well over 10 000 requests/s.
const NONCE_CAPACITY: usize = 1_000_000;
/// How often the Postgres store deletes nonces whose window has passed.
const PRUNE_EVERY_SECS: u64 = 60;
/// The prefix of the nonce keys in a shared Redis, unless the configuration names another.
pub const DEFAULT_REPLAY_PREFIX: &str = "h200:backend:";

/// Why a shared store could not answer; the request is refused (fail closed).
#[derive(Debug, thiserror::Error)]
#[error("the replay store is unavailable: {0}")]
pub struct ReplayError(pub String);

/// The nonce a verified signature carries, caught on its way to the store so that the gate can
/// file it in an asynchronous one.
#[derive(Debug, Default)]
pub struct PendingNonce {
    /// `(key id, nonce, expires_at_unix)` of the signature that passed every other check.
    pub taken: Option<(String, String, u64)>,
}

impl NonceStore for PendingNonce {
    fn remember(&mut self, key_id: &str, nonce: &str, expires_at_unix: u64) -> bool {
        self.taken = Some((key_id.to_owned(), nonce.to_owned(), expires_at_unix));
        true
    }
}

/// Where accepted nonces are kept.
pub enum ReplayStore {
    /// This process only.
    Memory(Mutex<MemoryNonceStore>),
    /// A table `h200_replay_nonces` in a Postgres shared by the backends.
    Postgres {
        pool: PgPool,
        /// When expired nonces were last deleted (unix seconds).
        pruned_at: AtomicU64,
    },
    /// Keys `{prefix}nonce:{key id}:{nonce}` in a Redis shared by the backends.
    Redis {
        connection: ConnectionManager,
        prefix: String,
    },
}

impl std::fmt::Debug for ReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReplayStore::Memory(_) => "ReplayStore::Memory",
            ReplayStore::Postgres { .. } => "ReplayStore::Postgres",
            ReplayStore::Redis { .. } => "ReplayStore::Redis",
        })
    }
}

impl Default for ReplayStore {
    fn default() -> Self {
        ReplayStore::memory()
    }
}

impl ReplayStore {
    /// A store in this process's memory.
    pub fn memory() -> ReplayStore {
        ReplayStore::Memory(Mutex::new(MemoryNonceStore::new(NONCE_CAPACITY)))
    }

    /// The store `url` names: none or `memory` → memory, `postgres://…` → a table there
    /// (created if missing), `redis://…` → keys under `prefix`. A shared store that does not
    /// answer is an error: falling back to memory would reopen replays across replicas.
    pub async fn open(url: Option<&str>, prefix: &str) -> Result<ReplayStore, ReplayError> {
        match url.map(str::trim) {
            None | Some("") | Some("memory") => Ok(ReplayStore::memory()),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let pool = PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(std::time::Duration::from_secs(5))
                    .connect(url)
                    .await
                    .map_err(|e| ReplayError(format!("postgres: {e}")))?;
                sqlx::query(
                    "CREATE TABLE IF NOT EXISTS h200_replay_nonces (
                        key_id TEXT NOT NULL,
                        nonce TEXT NOT NULL,
                        expires_at BIGINT NOT NULL,
                        PRIMARY KEY (key_id, nonce))",
                )
                .execute(&pool)
                .await
                .map_err(|e| ReplayError(format!("creating h200_replay_nonces: {e}")))?;
                Ok(ReplayStore::Postgres {
                    pool,
                    pruned_at: AtomicU64::new(0),
                })
            }
            Some(url) if url.starts_with("redis://") => {
                let client = redis::Client::open(url).map_err(redis_failed)?;
                let mut connection = ConnectionManager::new(client).await.map_err(redis_failed)?;
                let _: String = redis::cmd("PING")
                    .query_async(&mut connection)
                    .await
                    .map_err(redis_failed)?;
                Ok(ReplayStore::Redis {
                    connection,
                    prefix: prefix.to_owned(),
                })
            }
            Some(url) => Err(ReplayError(format!(
                "unsupported state URL scheme {:?}: use memory, postgres:// or redis://",
                url.split_once("://").map_or("", |(scheme, _)| scheme)
            ))),
        }
    }

    /// Files `nonce` of `key_id` until `expires_at_unix` (inclusive); true if it was new,
    /// false if any backend sharing the store saw it before.
    pub async fn remember(
        &self,
        key_id: &str,
        nonce: &str,
        expires_at_unix: u64,
        now_unix: u64,
    ) -> Result<bool, ReplayError> {
        match self {
            ReplayStore::Memory(store) => {
                let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
                store.forget_expired(now_unix);
                Ok(store.remember(key_id, nonce, expires_at_unix))
            }
            ReplayStore::Postgres { pool, pruned_at } => {
                let expires = i64::try_from(expires_at_unix).unwrap_or(i64::MAX);
                let now = i64::try_from(now_unix).unwrap_or(i64::MAX);
                let filed = sqlx::query(
                    "INSERT INTO h200_replay_nonces (key_id, nonce, expires_at) VALUES ($1, $2, $3)
                     ON CONFLICT (key_id, nonce) DO UPDATE SET expires_at = EXCLUDED.expires_at
                     WHERE h200_replay_nonces.expires_at < $4",
                )
                .bind(key_id)
                .bind(nonce)
                .bind(expires)
                .bind(now)
                .execute(pool)
                .await
                .map_err(|e| ReplayError(format!("postgres: {e}")))?;
                let last = pruned_at.load(Ordering::Relaxed);
                if now_unix.saturating_sub(last) >= PRUNE_EVERY_SECS
                    && pruned_at
                        .compare_exchange(last, now_unix, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    let pruned =
                        sqlx::query("DELETE FROM h200_replay_nonces WHERE expires_at < $1")
                            .bind(now)
                            .execute(pool)
                            .await;
                    if let Err(error) = pruned {
                        tracing::warn!(%error, "pruning expired replay nonces failed");
                    }
                }
                Ok(filed.rows_affected() == 1)
            }
            ReplayStore::Redis { connection, prefix } => {
                // Kept through the whole second `expires_at_unix`, like the memory store.
                let filed: Option<String> = redis::cmd("SET")
                    .arg(format!("{prefix}nonce:{key_id}:{nonce}"))
                    .arg(1)
                    .arg("NX")
                    .arg("EXAT")
                    .arg(expires_at_unix.saturating_add(1).max(now_unix + 1))
                    .query_async(&mut connection.clone())
                    .await
                    .map_err(redis_failed)?;
                Ok(filed.is_some())
            }
        }
    }
}

fn redis_failed(error: redis::RedisError) -> ReplayError {
    ReplayError(format!("redis: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_refuses_a_nonce_seen_before_until_its_window_ends() {
        let store = ReplayStore::memory();
        assert!(store.remember("k", "n", 100, 50).await.expect("memory"));
        assert!(!store.remember("k", "n", 100, 60).await.expect("memory"));
        assert!(store.remember("other", "n", 100, 60).await.expect("memory"));
        assert!(store.remember("k", "n", 200, 101).await.expect("memory"));
    }

    #[tokio::test]
    async fn other_schemes_are_refused_without_echoing_the_url() {
        let error = ReplayStore::open(Some("mysql://u:secret@db/x"), DEFAULT_REPLAY_PREFIX)
            .await
            .expect_err("no nonces in MySQL");
        assert!(!error.to_string().contains("secret"), "{error}");
    }
}
