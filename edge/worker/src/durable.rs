//! The edge state that must agree across isolates (GCRA timestamps, the deny-list, its
//! revocation cursor and when it was last synced, IP blocks, event counters) in a Durable Object:
//! one object per key, so every operation on a key is serialised by the runtime and a
//! compare-and-set is atomic. Each object deletes its data with an alarm once the data has
//! expired, which is all the pruning they need.
//!
//! The JWKS and API-key caches stay in isolate memory (`MemoryState`), and so do the times of
//! their upkeep (JWKS refresh, pruning): they are caches the backend refills per isolate, and
//! the API-key cache expires within 60 s as the revocation rule demands.

use std::sync::Arc;

use edge::memory::MemoryState;
use edge::ports::{
    BlockCheck, ENDED_BLOCK_KEPT_MS, EdgeState, GrantLookup, RateStore, StateError, UpkeepTask,
};
use edge::shared::api_key::{ApiKeyDigest, ApiKeyGrant};
use edge::shared::revocation::EVERY_TOKEN;
use edge::shared::token::KeySet;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use worker::{
    DurableObject, Env, Headers, Method, ObjectNamespace, Request, RequestInit, Response, Result,
    State, durable_object,
};

/// The binding name of the namespace in `wrangler.toml`.
pub const BINDING: &str = "EDGE_STATE";
/// Most event times one counter keeps; no threshold needs more.
const MAX_EVENTS: usize = 64;

/// One operation on one key's object.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    /// The stored number, if any → `Option<u64>`.
    Read,
    /// Stores `new` if the stored number is still `expected` → `bool`.
    CompareAndSet {
        expected: Option<u64>,
        new: u64,
        /// When the object may forget the number; `None`: never.
        expires_at_ms: Option<u64>,
    },
    /// Stores a number unconditionally, forgotten after `expires_at_ms` → `()`.
    Put {
        value: u64,
        expires_at_ms: Option<u64>,
    },
    /// Files a deny-list entry: tokens issued before the cut-off are refused until
    /// `expires_at_ms`, when the object forgets it → `()`.
    Deny { cutoff: Cutoff, expires_at_ms: u64 },
    /// The cut-off of the deny-list entry if it is alive at `now_ms` → `Option<Cutoff>`.
    Denial { now_ms: u64 },
    /// Starts a block until `until_ms` with an empty tally, forgotten
    /// [`ENDED_BLOCK_KEPT_MS`] after it ends → `()`.
    Block { until_ms: u64 },
    /// Checks a request against the block at `now_ms`, counting it while the block lasts and
    /// reporting the tally once after it ended → [`BlockCheck`].
    CheckBlock { now_ms: u64 },
    /// Records one event at `now_ms` → how many lie within `window_ms` (`u32`).
    Count { window_ms: u64, now_ms: u64 },
    /// Forgets everything → `()`.
    Clear,
}

const VALUE: &str = "value";
const EVENTS: &str = "events";
const DENIAL: &str = "denial";
const TALLY: &str = "tally";

/// A deny-list cut-off as it crosses JavaScript, whose numbers hold integers only up to 2^53:
/// the cut-off that refuses every token ([`EVERY_TOKEN`], `u64::MAX`) travels as
/// `{"before_ms":null}`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Cutoff {
    before_ms: Option<u64>,
}

impl Cutoff {
    fn from_ms(ms: u64) -> Cutoff {
        Cutoff {
            before_ms: (ms != EVERY_TOKEN).then_some(ms),
        }
    }

    fn ms(self) -> u64 {
        self.before_ms.unwrap_or(EVERY_TOKEN)
    }
}

/// A deny-list entry as one object stores it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct StoredDenial {
    cutoff: Cutoff,
    expires_at_ms: u64,
}

/// The Durable Object class (`EdgeStateObject` in `wrangler.toml`): the state of one key.
#[durable_object]
pub struct EdgeStateObject {
    state: State,
}

impl DurableObject for EdgeStateObject {
    fn new(state: State, _env: Env) -> Self {
        EdgeStateObject { state }
    }

    async fn fetch(&self, mut request: Request) -> Result<Response> {
        let op: Op = request.json().await?;
        let storage = self.state.storage();
        match op {
            Op::Read => Response::from_json(&storage.get::<u64>(VALUE).await?),
            Op::CompareAndSet {
                expected,
                new,
                expires_at_ms,
            } => {
                let swapped = storage.get::<u64>(VALUE).await? == expected;
                if swapped {
                    storage.put(VALUE, new).await?;
                    self.expire_at(expires_at_ms).await?;
                }
                Response::from_json(&swapped)
            }
            Op::Put {
                value,
                expires_at_ms,
            } => {
                storage.put(VALUE, value).await?;
                self.expire_at(expires_at_ms).await?;
                Response::from_json(&())
            }
            Op::Deny {
                cutoff,
                expires_at_ms,
            } => {
                let denial = StoredDenial {
                    cutoff,
                    expires_at_ms,
                };
                storage.put(DENIAL, denial).await?;
                self.expire_at(Some(expires_at_ms)).await?;
                Response::from_json(&())
            }
            Op::Denial { now_ms } => {
                let denial = storage.get::<StoredDenial>(DENIAL).await?;
                let alive = denial.filter(|d| d.expires_at_ms > now_ms);
                Response::from_json(&alive.map(|d| d.cutoff))
            }
            Op::Block { until_ms } => {
                storage.put(VALUE, until_ms).await?;
                storage.put(TALLY, 0u64).await?;
                self.expire_at(Some(until_ms.saturating_add(ENDED_BLOCK_KEPT_MS)))
                    .await?;
                Response::from_json(&())
            }
            Op::CheckBlock { now_ms } => {
                let Some(until_ms) = storage.get::<u64>(VALUE).await? else {
                    return Response::from_json(&BlockCheck::Clear);
                };
                let refused = storage.get::<u64>(TALLY).await?.unwrap_or(0);
                if until_ms > now_ms {
                    storage.put(TALLY, refused.saturating_add(1)).await?;
                    return Response::from_json(&BlockCheck::Blocked { until_ms });
                }
                storage.delete_all().await?;
                Response::from_json(&if refused > 0 {
                    BlockCheck::Ended { until_ms, refused }
                } else {
                    BlockCheck::Clear
                })
            }
            Op::Count { window_ms, now_ms } => {
                let mut times = storage.get::<Vec<u64>>(EVENTS).await?.unwrap_or_default();
                let horizon = now_ms.saturating_sub(window_ms);
                times.retain(|t| *t > horizon);
                if times.len() >= MAX_EVENTS {
                    times.remove(0);
                }
                times.push(now_ms);
                storage.put(EVENTS, &times).await?;
                self.expire_at(Some(now_ms.saturating_add(window_ms)))
                    .await?;
                Response::from_json(&u32::try_from(times.len()).unwrap_or(u32::MAX))
            }
            Op::Clear => {
                storage.delete_all().await?;
                Response::from_json(&())
            }
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.state.storage().delete_all().await?;
        Response::empty()
    }
}

impl EdgeStateObject {
    /// Moves the alarm that forgets this key's data to `at_ms` (never earlier than a later
    /// deadline already set).
    async fn expire_at(&self, at_ms: Option<u64>) -> Result<()> {
        let storage = self.state.storage();
        match at_ms {
            None => storage.delete_alarm().await,
            Some(at) => {
                let at = i64::try_from(at).unwrap_or(i64::MAX);
                let current = storage.get_alarm().await?;
                if current.is_none_or(|c| c < at) {
                    storage.set_alarm(worker::ScheduledTime::from(at)).await?;
                }
                Ok(())
            }
        }
    }
}

/// The client side: the object of `name` in the namespace.
#[derive(Clone)]
pub struct Objects {
    namespace: Arc<ObjectNamespace>,
}

impl Objects {
    pub fn new(env: &Env) -> Result<Self> {
        Ok(Objects {
            namespace: Arc::new(env.durable_object(BINDING)?),
        })
    }

    async fn call<T: DeserializeOwned>(&self, name: &str, op: &Op) -> Result<T> {
        let stub = self.namespace.id_from_name(name)?.get_stub()?;
        let headers = Headers::new();
        headers.set("content-type", "application/json")?;
        let body =
            serde_json::to_string(op).map_err(|e| worker::Error::RustError(e.to_string()))?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(body.into()));
        let request = Request::new_with_init("https://edge-state/op", &init)?;
        let mut response = stub.fetch_with_request(request).await?;
        if response.status_code() != 200 {
            return Err(worker::Error::RustError(format!(
                "state object answered {}",
                response.status_code()
            )));
        }
        response.json().await
    }

    async fn ask<T: DeserializeOwned>(
        &self,
        name: &str,
        op: Op,
    ) -> std::result::Result<T, StateError> {
        self.call(name, &op)
            .await
            .map_err(|e| StateError(e.to_string()))
    }
}

/// GCRA timestamps, one object per rate key.
#[derive(Clone)]
pub struct DurableRates(pub Objects);

impl RateStore for DurableRates {
    async fn read(&self, key: &str) -> std::result::Result<Option<u64>, StateError> {
        self.0.ask(&format!("rate:{key}"), Op::Read).await
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<u64>,
        new: u64,
        ttl_ms: u64,
    ) -> std::result::Result<bool, StateError> {
        let expires_at_ms = Some(worker::Date::now().as_millis().saturating_add(ttl_ms));
        let op = Op::CompareAndSet {
            expected,
            new,
            expires_at_ms,
        };
        self.0.ask(&format!("rate:{key}"), op).await
    }

    /// Nothing to do: each bucket's object forgets it by alarm.
    async fn prune(&self, _now_ms: u64) -> std::result::Result<usize, StateError> {
        Ok(0)
    }
}

/// The deny-list, blocks and counters in objects; the caches in isolate memory.
pub struct DurableState {
    objects: Objects,
    caches: MemoryState,
}

impl DurableState {
    pub fn new(objects: Objects) -> Self {
        DurableState {
            objects,
            caches: MemoryState::default(),
        }
    }
}

/// The object that holds the revocation feed's cursor.
const CURSOR: &str = "revocation-cursor";
/// The object that holds when the revocation feed was last pulled, by any isolate.
const REVOCATIONS_RUN: &str = "upkeep:revocations";

impl EdgeState for DurableState {
    /// One object per key, asked all at once.
    async fn denials(
        &self,
        keys: &[String],
        now_ms: u64,
    ) -> std::result::Result<Vec<Option<u64>>, StateError> {
        let asks = keys.iter().map(|key| async move {
            let name = format!("deny:{key}");
            self.objects
                .ask::<Option<Cutoff>>(&name, Op::Denial { now_ms })
                .await
                .map(|cutoff| cutoff.map(Cutoff::ms))
        });
        futures_util::future::join_all(asks)
            .await
            .into_iter()
            .collect()
    }

    async fn deny(
        &self,
        key: &str,
        cutoff_ms: u64,
        expires_at_ms: u64,
    ) -> std::result::Result<(), StateError> {
        let op = Op::Deny {
            cutoff: Cutoff::from_ms(cutoff_ms),
            expires_at_ms,
        };
        self.objects.ask(&format!("deny:{key}"), op).await
    }

    async fn revocation_cursor(&self) -> std::result::Result<u64, StateError> {
        let cursor: Option<u64> = self.objects.ask(CURSOR, Op::Read).await?;
        Ok(cursor.unwrap_or(0))
    }

    async fn set_revocation_cursor(&self, since_ms: u64) -> std::result::Result<(), StateError> {
        let op = Op::Put {
            value: since_ms,
            expires_at_ms: None,
        };
        self.objects.ask(CURSOR, op).await
    }

    /// One call to the address's object, which serialises the tally.
    async fn check_block(
        &self,
        ip: &str,
        now_ms: u64,
    ) -> std::result::Result<BlockCheck, StateError> {
        self.objects
            .ask(&format!("block:{ip}"), Op::CheckBlock { now_ms })
            .await
    }

    async fn block(&self, ip: &str, until_ms: u64) -> std::result::Result<(), StateError> {
        self.objects
            .ask(&format!("block:{ip}"), Op::Block { until_ms })
            .await
    }

    async fn count_event(
        &self,
        key: &str,
        window_ms: u64,
        now_ms: u64,
    ) -> std::result::Result<u32, StateError> {
        let op = Op::Count { window_ms, now_ms };
        self.objects.ask(&format!("events:{key}"), op).await
    }

    async fn reset_events(&self, key: &str) -> std::result::Result<(), StateError> {
        self.objects.ask(&format!("events:{key}"), Op::Clear).await
    }

    async fn api_key(
        &self,
        digest: &ApiKeyDigest,
        now_secs: u64,
    ) -> std::result::Result<GrantLookup, StateError> {
        self.caches.api_key(digest, now_secs).await
    }

    async fn remember_api_key(
        &self,
        digest: ApiKeyDigest,
        grant: Option<ApiKeyGrant>,
        now_secs: u64,
    ) -> std::result::Result<(), StateError> {
        self.caches.remember_api_key(digest, grant, now_secs).await
    }

    async fn key_set(&self) -> std::result::Result<Option<Arc<KeySet>>, StateError> {
        self.caches.key_set().await
    }

    async fn replace_key_set(&self, keys: Arc<KeySet>) -> std::result::Result<(), StateError> {
        self.caches.replace_key_set(keys).await
    }

    /// The revocation sync's time is shared (the deny-list is); the others are this isolate's
    /// (so are the caches they keep).
    async fn last_upkeep(&self, task: UpkeepTask) -> std::result::Result<u64, StateError> {
        match task {
            UpkeepTask::Revocations => {
                let at: Option<u64> = self.objects.ask(REVOCATIONS_RUN, Op::Read).await?;
                Ok(at.unwrap_or(0))
            }
            UpkeepTask::Jwks | UpkeepTask::Prune => self.caches.last_upkeep(task).await,
        }
    }

    async fn record_upkeep(
        &self,
        task: UpkeepTask,
        at_ms: u64,
    ) -> std::result::Result<(), StateError> {
        match task {
            UpkeepTask::Revocations => {
                let op = Op::Put {
                    value: at_ms,
                    expires_at_ms: None,
                };
                self.objects.ask(REVOCATIONS_RUN, op).await
            }
            UpkeepTask::Jwks | UpkeepTask::Prune => self.caches.record_upkeep(task, at_ms).await,
        }
    }

    /// The objects forget by alarm; only the isolate's caches are pruned here.
    async fn prune(
        &self,
        now_ms: u64,
        max_window_ms: u64,
    ) -> std::result::Result<usize, StateError> {
        Ok(self.caches.prune(now_ms, max_window_ms))
    }
}
