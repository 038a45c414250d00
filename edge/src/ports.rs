//! The traits a runtime implements for the pipeline: time, randomness, state, the backend and
//! the audit sinks. Async methods return `impl Future + MaybeSend`, so one definition serves
//! native axum (futures must be `Send`) and the single-threaded wasm runtimes (they are not).

use std::future::Future;
use std::sync::Arc;

use shared::api_key::{ApiKeyDigest, ApiKeyGrant, CacheLookup};
use shared::audit::AuditEvent;
use shared::token::KeySet;

/// `Send` on native targets, nothing on wasm32, where futures and handles are `!Send`.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + ?Sized> MaybeSend for T {}

/// `Send` on native targets, nothing on wasm32, where futures and handles are `!Send`.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSend for T {}

/// `Sync` on native targets, nothing on wasm32.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSync: Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Sync + ?Sized> MaybeSync for T {}

/// `Sync` on native targets, nothing on wasm32.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSync {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSync for T {}

/// Wall-clock time.
pub trait Clock: MaybeSend + MaybeSync {
    /// Milliseconds since the unix epoch.
    fn now_ms(&self) -> u64;
}

/// A source of unpredictable bytes (request ids, nonces, audit ids).
pub trait Entropy: MaybeSend + MaybeSync {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]);
}

/// A store the pipeline could not reach or that refused an operation; the request fails closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("edge state is unavailable: {0}")]
pub struct StateError(pub String);

/// One GCRA timestamp per key with an atomic compare-and-set (the async twin of
/// [`shared::rate_limit::GcraStore`], for Durable Objects and Spin key-value).
pub trait RateStore: MaybeSend + MaybeSync {
    /// The TAT stored for `key` (µs), if any.
    fn read(&self, key: &str) -> impl Future<Output = Result<Option<u64>, StateError>> + MaybeSend;

    /// Stores `new` for `key` only if the stored value is still `expected`; says whether it did.
    /// The entry may be dropped `ttl_ms` later.
    fn compare_and_set(
        &self,
        key: &str,
        expected: Option<u64>,
        new: u64,
        ttl_ms: u64,
    ) -> impl Future<Output = Result<bool, StateError>> + MaybeSend;

    /// Drops timestamps that lie before `now_ms` (no decision changes); returns how many.
    fn prune(&self, now_ms: u64) -> impl Future<Output = Result<usize, StateError>> + MaybeSend;
}

/// What the edge state knows about an API key digest (an owned [`shared::api_key::CacheLookup`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantLookup {
    /// Recent enough to act on: the grant, or `None` when the backend knows no such key.
    Fresh(Option<ApiKeyGrant>),
    /// Unknown or too old: ask the backend.
    Refetch,
}

impl From<CacheLookup<'_>> for GrantLookup {
    fn from(lookup: CacheLookup<'_>) -> Self {
        match lookup {
            CacheLookup::Fresh(grant) => GrantLookup::Fresh(grant.cloned()),
            CacheLookup::Stale | CacheLookup::Missing => GrantLookup::Refetch,
        }
    }
}

/// How long a store keeps a block after it ended, so that the next request from the address
/// reports the block's tally ([`EdgeState::check_block`]).
pub const ENDED_BLOCK_KEPT_MS: u64 = 24 * 60 * 60 * 1000;

/// What [`EdgeState::check_block`] found for an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "block", rename_all = "snake_case")]
pub enum BlockCheck {
    /// Not blocked, and no ended block left to report.
    Clear,
    /// Blocked until `until_ms`; this request was counted as refused.
    Blocked { until_ms: u64 },
    /// A block that ended at `until_ms` after refusing `refused` requests; reported once.
    Ended { until_ms: u64, refused: u64 },
}

/// One task of the upkeep schedule ([`crate::upkeep`]); a state store files each task's last
/// run beside the state the task keeps current.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpkeepTask {
    /// Pull the backend's revocation feed into the deny-list.
    Revocations,
    /// Refetch the backend's JWKS into the key-set cache.
    Jwks,
    /// Drop state that no decision needs any more.
    Prune,
}

impl UpkeepTask {
    /// Every task, in the order one upkeep run performs them.
    pub const ALL: [UpkeepTask; 3] = [UpkeepTask::Revocations, UpkeepTask::Jwks, UpkeepTask::Prune];

    /// A short name, for state keys and logs.
    pub const fn name(self) -> &'static str {
        match self {
            UpkeepTask::Revocations => "revocations",
            UpkeepTask::Jwks => "jwks",
            UpkeepTask::Prune => "prune",
        }
    }
}

/// The edge's shared memory: deny-list, IP blocks, event counters, the JWKS and API-key caches,
/// and when each upkeep task last ran.
pub trait EdgeState: MaybeSend + MaybeSync {
    /// The cut-offs of the deny-list entries filed under `keys` that are alive at `now_ms`, in
    /// the same order (`None`: no live entry). A token an entry names is refused when it was
    /// issued before the cut-off ([`shared::revocation::TokenFacts::refusal`]).
    fn denials(
        &self,
        keys: &[String],
        now_ms: u64,
    ) -> impl Future<Output = Result<Vec<Option<u64>>, StateError>> + MaybeSend;

    /// Files a deny-list entry under `key` (see [`shared::revocation::RevokedTarget::deny_key`]):
    /// tokens it names issued before `cutoff_ms` are refused until `expires_at_ms`. A later entry
    /// under the same key replaces it.
    fn deny(
        &self,
        key: &str,
        cutoff_ms: u64,
        expires_at_ms: u64,
    ) -> impl Future<Output = Result<(), StateError>> + MaybeSend;

    /// The `since_ms` cursor of the revocation feed (0 before the first poll).
    fn revocation_cursor(&self) -> impl Future<Output = Result<u64, StateError>> + MaybeSend;

    /// Moves the revocation cursor.
    fn set_revocation_cursor(
        &self,
        since_ms: u64,
    ) -> impl Future<Output = Result<(), StateError>> + MaybeSend;

    /// Checks a request from `ip` against its block at `now_ms`. While the block lasts, the
    /// request is added to the block's tally of refused requests ([`BlockCheck::Blocked`]). The
    /// first check after a block ended reports that tally once ([`BlockCheck::Ended`], when it
    /// refused anything) and forgets the block. A block that ended is kept for
    /// [`ENDED_BLOCK_KEPT_MS`] so its tally can be reported; a tally may undercount when many
    /// instances refuse the same address at once, never overcount.
    fn check_block(
        &self,
        ip: &str,
        now_ms: u64,
    ) -> impl Future<Output = Result<BlockCheck, StateError>> + MaybeSend;

    /// Blocks `ip` until `until_ms`, with an empty tally of refused requests.
    fn block(
        &self,
        ip: &str,
        until_ms: u64,
    ) -> impl Future<Output = Result<(), StateError>> + MaybeSend;

    /// Records one event under `key` at `now_ms` and returns how many events the key holds
    /// within the last `window_ms` (this one included).
    fn count_event(
        &self,
        key: &str,
        window_ms: u64,
        now_ms: u64,
    ) -> impl Future<Output = Result<u32, StateError>> + MaybeSend;

    /// Forgets every event under `key`.
    fn reset_events(&self, key: &str) -> impl Future<Output = Result<(), StateError>> + MaybeSend;

    /// What is cached about an API key digest at `now_secs`.
    fn api_key(
        &self,
        digest: &ApiKeyDigest,
        now_secs: u64,
    ) -> impl Future<Output = Result<GrantLookup, StateError>> + MaybeSend;

    /// Caches what the backend said about `digest` (`None`: no such key).
    fn remember_api_key(
        &self,
        digest: ApiKeyDigest,
        grant: Option<ApiKeyGrant>,
        now_secs: u64,
    ) -> impl Future<Output = Result<(), StateError>> + MaybeSend;

    /// The cached token verification keys, if fetched.
    fn key_set(&self) -> impl Future<Output = Result<Option<Arc<KeySet>>, StateError>> + MaybeSend;

    /// Replaces the cached token verification keys.
    fn replace_key_set(
        &self,
        keys: Arc<KeySet>,
    ) -> impl Future<Output = Result<(), StateError>> + MaybeSend;

    /// When `task` last ran (ms; 0: never). Where the task keeps state every instance shares,
    /// its time is shared too, so every instance follows one schedule.
    fn last_upkeep(
        &self,
        task: UpkeepTask,
    ) -> impl Future<Output = Result<u64, StateError>> + MaybeSend;

    /// Records that `task` ran at `at_ms`.
    fn record_upkeep(
        &self,
        task: UpkeepTask,
        at_ms: u64,
    ) -> impl Future<Output = Result<(), StateError>> + MaybeSend;

    /// Drops what no decision needs at `now_ms` any more: expired deny-list entries and blocks,
    /// counters without an event in the last `max_window_ms`, stale cache entries. Returns how
    /// many entries went.
    fn prune(
        &self,
        now_ms: u64,
        max_window_ms: u64,
    ) -> impl Future<Output = Result<usize, StateError>> + MaybeSend;
}

/// A request to the backend, already signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRequest {
    pub method: String,
    /// Path and query, e.g. `/api/v1/rules?limit=5`.
    pub path_and_query: String,
    /// Header fields (lower-case names) to send as they are.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The backend's answer, buffered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamResponse {
    pub status: u16,
    /// Header fields, lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why the backend gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// No connection or a broken one.
    #[error("the backend is unreachable: {0}")]
    Unreachable(String),
    /// No answer in time.
    #[error("the backend did not answer in time")]
    Timeout,
}

/// The backend.
pub trait Upstream: MaybeSend + MaybeSync {
    /// Sends one request and returns the whole answer.
    fn send(
        &self,
        request: UpstreamRequest,
    ) -> impl Future<Output = Result<UpstreamResponse, UpstreamError>> + MaybeSend;
}

/// Where audit events go. `emit` never blocks and never fails the request: a full buffer drops
/// the event and counts it.
pub trait AuditSink: MaybeSend + MaybeSync {
    /// Hands one event to the sinks.
    fn emit(&self, event: AuditEvent);

    /// Events dropped so far because the buffer was full.
    fn dropped(&self) -> u64;
}

/// Why a request body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the request body could not be read: {0}")]
pub struct BodyError(pub String);

/// A request body read chunk by chunk, so the pipeline stops reading at the route's limit.
pub trait BodySource: MaybeSend {
    /// The next chunk, or `None` at the end.
    fn next_chunk(
        &mut self,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, BodyError>> + MaybeSend;
}

/// A body that is already in memory (wasm runtimes hand over whole bodies; tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BufferedBody(Option<Vec<u8>>);

impl BufferedBody {
    /// The body `bytes`, delivered as one chunk.
    pub fn new(bytes: Vec<u8>) -> Self {
        BufferedBody(Some(bytes))
    }
}

impl BodySource for BufferedBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, BodyError> {
        Ok(self.0.take().filter(|bytes| !bytes.is_empty()))
    }
}
