//! GCRA rate limiting: one theoretical arrival time (TAT) per key, a pure decision function
//! ([`gcra`]), and one compare-and-set loop ([`check_async`]) over a store trait, so every runtime
//! (Durable Object, Spin KV, memory) shares the math and the retry policy.
//!
//! The loop is async so that stores answering over the network can drive it; [`check`] runs the
//! same loop over a synchronous [`GcraStore`] (memory), whose answers are ready at once, without
//! an async runtime.
//!
//! A TAT is stored as microseconds since the unix epoch; callers pass time in milliseconds. The
//! emission interval `T = period / limit` is rounded up to a whole microsecond, so rounding only
//! ever makes the limit stricter.
//!
//! Guarantee (checked by a property test): for a quota of `limit` per `period` with burst `B`,
//! the requests allowed on one key at times inside any half-open window `[s, s + period)` number
//! at most `B + limit - 1`. With the default `B = limit`, that is `2 * limit - 1`: a full burst
//! at the end of one period plus the steady rate through the next.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Compare-and-set attempts [`check`] makes before it gives up and refuses the request.
pub const MAX_CAS_ATTEMPTS: usize = 4;

/// How many requests a key may make: `limit` per `period_ms`, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    /// Requests per period; 0 refuses everything.
    pub limit: u32,
    /// Length of the period in milliseconds.
    pub period_ms: u64,
    /// Requests that may arrive back to back after a quiet spell; 0 refuses everything.
    pub burst: u32,
}

impl Quota {
    /// `limit` requests per `period_ms`, with a burst of `limit`.
    pub const fn new(limit: u32, period_ms: u64) -> Self {
        Quota {
            limit,
            period_ms,
            burst: limit,
        }
    }

    /// The same quota with a different burst.
    pub const fn with_burst(self, burst: u32) -> Self {
        Quota { burst, ..self }
    }

    /// The time between two requests at the steady rate, in microseconds (at least 1).
    pub fn emission_interval_us(&self) -> u64 {
        let period_us = u128::from(self.period_ms) * 1000;
        let limit = u128::from(self.limit.max(1));
        let interval = period_us.div_ceil(limit).max(1);
        u64::try_from(interval).unwrap_or(u64::MAX)
    }

    fn is_closed(&self) -> bool {
        self.limit == 0 || self.burst == 0
    }
}

/// The outcome of one rate-limit check, with what the response headers report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request may go on.
    pub allowed: bool,
    /// The quota's `limit`.
    pub limit: u32,
    /// Requests that could still go through right now.
    pub remaining: u32,
    /// Milliseconds until the whole burst is available again.
    pub reset_after_ms: u64,
    /// Milliseconds until this request would be allowed; `Some` exactly when refused.
    pub retry_after_ms: Option<u64>,
    /// The quota's window (its period) in milliseconds, reported in `RateLimit-Policy`.
    pub window_ms: u64,
    /// The name of the rate class, reported in the IETF fields; empty reads as `default`.
    pub policy_name: String,
}

impl RateDecision {
    /// The same decision reported under the rate class `name`.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.policy_name = name.into();
        self
    }

    /// Response header fields: `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`
    /// (seconds, rounded up), the IETF `RateLimit-Policy` and `RateLimit` structured fields, and
    /// `Retry-After` (seconds, rounded up, at least 1) when refused.
    pub fn response_headers(&self) -> Vec<(&'static str, String)> {
        let reset_secs = ceil_secs(self.reset_after_ms);
        let window_secs = ceil_secs(self.window_ms);
        let name = sf_string(if self.policy_name.is_empty() {
            "default"
        } else {
            &self.policy_name
        });
        let mut headers = vec![
            ("X-RateLimit-Limit", self.limit.to_string()),
            ("X-RateLimit-Remaining", self.remaining.to_string()),
            ("X-RateLimit-Reset", reset_secs.to_string()),
            (
                "RateLimit-Policy",
                format!("{name};q={};w={window_secs}", self.limit),
            ),
            (
                "RateLimit",
                format!("{name};r={};t={reset_secs}", self.remaining),
            ),
        ];
        if let Some(retry) = self.retry_after_ms {
            headers.push(("Retry-After", ceil_secs(retry).max(1).to_string()));
        }
        headers
    }
}

fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

/// An RFC 8941 sf-string: printable ASCII with `"` and `\` escaped; anything else is dropped.
fn sf_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars().filter(|c| (' '..='~').contains(c)) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The GCRA decision for one request at `now_ms` on a key whose stored TAT is `tat` (µs).
/// Returns the decision and, only when allowed, the TAT to store. Never panics.
pub fn gcra(tat: Option<u64>, quota: &Quota, now_ms: u64) -> (RateDecision, Option<u64>) {
    let interval = quota.emission_interval_us();
    let window_ms = quota.period_ms;
    if quota.is_closed() {
        let decision = RateDecision {
            allowed: false,
            limit: quota.limit,
            remaining: 0,
            reset_after_ms: window_ms,
            retry_after_ms: Some(window_ms.max(1)),
            window_ms,
            policy_name: String::new(),
        };
        return (decision, None);
    }
    let now = now_ms.saturating_mul(1000);
    let tolerance = interval.saturating_mul(u64::from(quota.burst));
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat.saturating_add(interval);
    let allow_at = new_tat.saturating_sub(tolerance);

    if now < allow_at {
        let remaining = remaining(now, tolerance, tat, interval);
        let decision = RateDecision {
            allowed: false,
            limit: quota.limit,
            remaining,
            reset_after_ms: us_to_ms_ceil(tat - now),
            retry_after_ms: Some(us_to_ms_ceil(allow_at - now).max(1)),
            window_ms,
            policy_name: String::new(),
        };
        return (decision, None);
    }
    let decision = RateDecision {
        allowed: true,
        limit: quota.limit,
        remaining: remaining(now, tolerance, new_tat, interval),
        reset_after_ms: us_to_ms_ceil(new_tat - now),
        retry_after_ms: None,
        window_ms,
        policy_name: String::new(),
    };
    (decision, Some(new_tat))
}

fn remaining(now: u64, tolerance: u64, tat: u64, interval: u64) -> u32 {
    let headroom = now.saturating_add(tolerance).saturating_sub(tat);
    u32::try_from(headroom / interval).unwrap_or(u32::MAX)
}

fn us_to_ms_ceil(us: u64) -> u64 {
    us.div_ceil(1000)
}

/// Storage of one TAT per key with an atomic compare-and-set, answering at once (memory).
pub trait GcraStore {
    /// The TAT stored for `key`, if any. An expired TAT may still be returned: it is in the past,
    /// so GCRA treats it exactly like no TAT.
    fn read(&mut self, key: &str) -> Option<u64>;

    /// Stores `new` for `key` only if the stored value is still `expected`, and says whether it
    /// did. The entry may be dropped `ttl_ms` after the call.
    fn compare_and_set(&mut self, key: &str, expected: Option<u64>, new: u64, ttl_ms: u64) -> bool;
}

/// Storage of one TAT per key with an atomic compare-and-set that answers asynchronously (a
/// Durable Object, Spin key-value), with the same contract as [`GcraStore`].
///
/// The futures carry no `Send` bound, so single-threaded runtimes (wasm) can implement it; a
/// caller that needs `Send` futures gets them from a store whose futures are `Send`.
pub trait AsyncGcraStore {
    /// Why the store could not answer; the caller fails closed.
    type Error;

    /// The TAT stored for `key`, if any (see [`GcraStore::read`]).
    fn read(&mut self, key: &str) -> impl Future<Output = Result<Option<u64>, Self::Error>>;

    /// Stores `new` for `key` only if the stored value is still `expected`, and says whether it
    /// did (see [`GcraStore::compare_and_set`]).
    fn compare_and_set(
        &mut self,
        key: &str,
        expected: Option<u64>,
        new: u64,
        ttl_ms: u64,
    ) -> impl Future<Output = Result<bool, Self::Error>>;
}

/// Checks one request on `key` against `quota` at `now_ms`, retrying the compare-and-set up to
/// [`MAX_CAS_ATTEMPTS`] times. If every attempt loses a race, the request is refused (fail
/// closed) with a retry after one emission interval. A store error ends the check with that
/// error.
pub async fn check_async<S: AsyncGcraStore + ?Sized>(
    store: &mut S,
    key: &str,
    quota: &Quota,
    now_ms: u64,
) -> Result<RateDecision, S::Error> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let stored = store.read(key).await?;
        let (decision, new_tat) = gcra(stored, quota, now_ms);
        let Some(new_tat) = new_tat else {
            return Ok(decision);
        };
        let ttl_ms = us_to_ms_ceil(new_tat.saturating_sub(now_ms.saturating_mul(1000)));
        if store.compare_and_set(key, stored, new_tat, ttl_ms).await? {
            return Ok(decision);
        }
    }
    let retry = us_to_ms_ceil(quota.emission_interval_us()).max(1);
    Ok(RateDecision {
        allowed: false,
        limit: quota.limit,
        remaining: 0,
        reset_after_ms: retry,
        retry_after_ms: Some(retry),
        window_ms: quota.period_ms,
        policy_name: String::new(),
    })
}

/// [`check_async`] over a synchronous store: the same loop, run to completion on the spot.
pub fn check<S: GcraStore + ?Sized>(
    store: &mut S,
    key: &str,
    quota: &Quota,
    now_ms: u64,
) -> RateDecision {
    let mut store = ReadyStore(store);
    let checked = pin!(check_async(&mut store, key, quota, now_ms));
    match checked.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Ok(decision)) => decision,
        Poll::Ready(Err(never)) => match never {},
        Poll::Pending => unreachable!("a synchronous store never waits; this is a bug"),
    }
}

/// A [`GcraStore`] seen as an [`AsyncGcraStore`] whose futures are ready at once.
struct ReadyStore<'a, S: ?Sized>(&'a mut S);

impl<S: GcraStore + ?Sized> AsyncGcraStore for ReadyStore<'_, S> {
    type Error = Infallible;

    fn read(&mut self, key: &str) -> impl Future<Output = Result<Option<u64>, Infallible>> {
        std::future::ready(Ok(self.0.read(key)))
    }

    fn compare_and_set(
        &mut self,
        key: &str,
        expected: Option<u64>,
        new: u64,
        ttl_ms: u64,
    ) -> impl Future<Output = Result<bool, Infallible>> {
        std::future::ready(Ok(self.0.compare_and_set(key, expected, new, ttl_ms)))
    }
}

/// Picks the decision whose headers a response reports when several rate classes apply: a
/// refusal with the longest retry, else the allowance with the fewest remaining (then the
/// longest reset). `None` for no decisions.
pub fn most_restrictive(decisions: &[RateDecision]) -> Option<&RateDecision> {
    decisions.iter().max_by(|a, b| {
        a.retry_after_ms
            .is_some()
            .cmp(&b.retry_after_ms.is_some())
            .then(a.retry_after_ms.cmp(&b.retry_after_ms))
            .then(b.remaining.cmp(&a.remaining))
            .then(a.reset_after_ms.cmp(&b.reset_after_ms))
    })
}

/// An in-memory [`GcraStore`] for the native server and tests; one process, no sharing.
#[derive(Debug, Default, Clone)]
pub struct MemoryGcraStore {
    tats: HashMap<String, u64>,
}

impl MemoryGcraStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with room for `capacity` keys.
    pub fn with_capacity(capacity: usize) -> Self {
        MemoryGcraStore {
            tats: HashMap::with_capacity(capacity),
        }
    }

    /// Drops every key whose TAT is not after `now_ms` (whose TTL has run out) and returns how
    /// many it dropped. Dropping them changes no decision.
    pub fn prune(&mut self, now_ms: u64) -> usize {
        let now = now_ms.saturating_mul(1000);
        let before = self.tats.len();
        self.tats.retain(|_, tat| *tat > now);
        before - self.tats.len()
    }

    /// How many keys the store holds.
    pub fn len(&self) -> usize {
        self.tats.len()
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.tats.is_empty()
    }
}

impl GcraStore for MemoryGcraStore {
    fn read(&mut self, key: &str) -> Option<u64> {
        self.tats.get(key).copied()
    }

    fn compare_and_set(
        &mut self,
        key: &str,
        expected: Option<u64>,
        new: u64,
        _ttl_ms: u64,
    ) -> bool {
        match (self.tats.get_mut(key), expected) {
            (Some(current), Some(expected)) if *current == expected => {
                *current = new;
                true
            }
            (None, None) => {
                self.tats.insert(key.to_owned(), new);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MINUTE: u64 = 60_000;

    #[test]
    fn a_full_burst_passes_then_the_next_waits_one_interval() {
        let quota = Quota::new(10, MINUTE);
        let mut store = MemoryGcraStore::new();
        let now = 1_700_000_000_000;
        for i in 0..10u32 {
            let d = check(&mut store, "ip:1", &quota, now);
            assert!(d.allowed, "request {i} refused");
            assert_eq!(d.remaining, 9 - i);
            assert_eq!(d.retry_after_ms, None);
            assert_eq!(d.reset_after_ms, 6_000 * u64::from(i + 1));
        }
        let refused = check(&mut store, "ip:1", &quota, now);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.retry_after_ms, Some(6_000));
        assert_eq!(refused.reset_after_ms, MINUTE);
        assert!(!check(&mut store, "ip:1", &quota, now + 5_999).allowed);
        assert!(check(&mut store, "ip:1", &quota, now + 6_000).allowed);
        assert!(
            check(&mut store, "ip:2", &quota, now).allowed,
            "keys are independent"
        );
    }

    #[test]
    fn the_steady_rate_is_always_allowed() {
        let quota = Quota::new(600, MINUTE).with_burst(1);
        let mut store = MemoryGcraStore::new();
        for i in 0..2_000u64 {
            let d = check(&mut store, "k", &quota, 5_000 + i * 100);
            assert!(d.allowed, "request {i} refused");
            assert_eq!(d.remaining, 0);
        }
        assert!(!check(&mut store, "k", &quota, 5_000 + 1_999 * 100 + 99).allowed);
    }

    #[test]
    fn waiting_a_period_restores_the_whole_burst() {
        let quota = Quota::new(5, 10_000);
        let mut store = MemoryGcraStore::new();
        for _ in 0..5 {
            assert!(check(&mut store, "k", &quota, 0).allowed);
        }
        assert!(!check(&mut store, "k", &quota, 0).allowed);
        let d = check(&mut store, "k", &quota, 10_000);
        assert!(d.allowed);
        assert_eq!(d.remaining, 4);
    }

    #[test]
    fn sub_millisecond_intervals_keep_their_precision() {
        let quota = Quota::new(20_000, 1_000);
        assert_eq!(quota.emission_interval_us(), 50);
        let mut tat = None;
        let mut allowed = 0;
        for _ in 0..25_000 {
            let (d, new) = gcra(tat, &quota, 0);
            if d.allowed {
                allowed += 1;
                tat = new;
            }
        }
        assert_eq!(allowed, 20_000);
        let (d, _) = gcra(tat, &quota, 1);
        assert_eq!((d.allowed, d.remaining), (true, 19));
    }

    #[test]
    fn refusals_do_not_move_the_tat() {
        let quota = Quota::new(1, 1_000);
        let (_, tat) = gcra(None, &quota, 0);
        assert_eq!(tat, Some(1_000_000));
        let (d, none) = gcra(tat, &quota, 500);
        assert!(!d.allowed);
        assert_eq!(none, None);
        assert_eq!(d.retry_after_ms, Some(500));
    }

    #[test]
    fn closed_quotas_refuse_everything() {
        for quota in [Quota::new(0, 1_000), Quota::new(5, 1_000).with_burst(0)] {
            let (d, tat) = gcra(None, &quota, 0);
            assert!(!d.allowed);
            assert_eq!(tat, None);
            assert_eq!(d.retry_after_ms, Some(1_000));
        }
        let (d, _) = gcra(Some(u64::MAX), &Quota::new(u32::MAX, u64::MAX), u64::MAX);
        assert!(d.allowed || d.retry_after_ms.is_some());
    }

    struct FlakyStore {
        inner: MemoryGcraStore,
        failures_left: usize,
        attempts: usize,
    }

    impl GcraStore for FlakyStore {
        fn read(&mut self, key: &str) -> Option<u64> {
            self.inner.read(key)
        }

        fn compare_and_set(
            &mut self,
            key: &str,
            expected: Option<u64>,
            new: u64,
            ttl: u64,
        ) -> bool {
            self.attempts += 1;
            if self.failures_left > 0 {
                self.failures_left -= 1;
                self.inner.tats.insert(key.to_owned(), 0);
                return false;
            }
            self.inner.compare_and_set(key, expected, new, ttl)
        }
    }

    #[test]
    fn a_lost_compare_and_set_is_retried() {
        let mut store = FlakyStore {
            inner: MemoryGcraStore::new(),
            failures_left: 1,
            attempts: 0,
        };
        let d = check(&mut store, "k", &Quota::new(10, 1_000), 10);
        assert!(d.allowed);
        assert_eq!(d.remaining, 9);
        assert_eq!(store.attempts, 2);
        assert_eq!(store.inner.read("k"), Some(110_000));
    }

    #[test]
    fn endless_contention_fails_closed() {
        let mut store = FlakyStore {
            inner: MemoryGcraStore::new(),
            failures_left: usize::MAX,
            attempts: 0,
        };
        let d = check(&mut store, "k", &Quota::new(10, 1_000), 10);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, Some(100));
        assert_eq!(store.attempts, MAX_CAS_ATTEMPTS);
    }

    /// An async store over a memory store whose every answer first waits once (returns
    /// `Pending`), and which can fail.
    struct SlowStore {
        inner: MemoryGcraStore,
        waits: usize,
        broken: bool,
    }

    /// A future that is pending on its first poll and ready with `value` on the second.
    struct AfterOneWait<T>(Option<T>, bool);

    impl<T: Unpin> Future for AfterOneWait<T> {
        type Output = T;

        fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
            if !self.1 {
                self.1 = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(self.0.take().expect("polled after completion"))
        }
    }

    impl AsyncGcraStore for SlowStore {
        type Error = &'static str;

        fn read(&mut self, key: &str) -> impl Future<Output = Result<Option<u64>, Self::Error>> {
            self.waits += 1;
            let answer = if self.broken {
                Err("store unreachable")
            } else {
                Ok(self.inner.tats.get(key).copied())
            };
            AfterOneWait(Some(answer), false)
        }

        fn compare_and_set(
            &mut self,
            key: &str,
            expected: Option<u64>,
            new: u64,
            ttl_ms: u64,
        ) -> impl Future<Output = Result<bool, Self::Error>> {
            self.waits += 1;
            let done = GcraStore::compare_and_set(&mut self.inner, key, expected, new, ttl_ms);
            AfterOneWait(Some(Ok(done)), false)
        }
    }

    /// Polls `future` until it is ready, counting the polls.
    fn run_to_end<F: Future>(future: F) -> (F::Output, usize) {
        let mut future = pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        for polls in 1.. {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return (output, polls);
            }
        }
        unreachable!()
    }

    #[test]
    fn the_async_loop_waits_for_its_store_and_decides_like_the_sync_one() {
        let quota = Quota::new(3, 1_000);
        let mut slow = SlowStore {
            inner: MemoryGcraStore::new(),
            waits: 0,
            broken: false,
        };
        let mut memory = MemoryGcraStore::new();
        for i in 0..5u64 {
            let (decision, polls) = run_to_end(check_async(&mut slow, "k", &quota, i));
            assert_eq!(
                decision,
                Ok(check(&mut memory, "k", &quota, i)),
                "request {i}"
            );
            // A read and, when allowed, a compare-and-set: one wait each.
            assert_eq!(polls, if i < 3 { 3 } else { 2 }, "request {i}");
        }
        assert_eq!(slow.waits, 3 * 2 + 2);
        assert_eq!(slow.inner.tats, memory.tats);
    }

    #[test]
    fn a_store_error_ends_the_async_check() {
        let mut broken = SlowStore {
            inner: MemoryGcraStore::new(),
            waits: 0,
            broken: true,
        };
        let (decision, _) = run_to_end(check_async(&mut broken, "k", &Quota::new(3, 1_000), 0));
        assert_eq!(decision, Err("store unreachable"));
        assert!(broken.inner.is_empty());
    }

    #[test]
    fn the_store_sets_ttl_to_the_tat_and_prunes_expired_keys() {
        struct Recording(Vec<u64>);
        impl GcraStore for Recording {
            fn read(&mut self, _: &str) -> Option<u64> {
                None
            }
            fn compare_and_set(&mut self, _: &str, _: Option<u64>, _: u64, ttl: u64) -> bool {
                self.0.push(ttl);
                true
            }
        }
        let mut recording = Recording(Vec::new());
        check(&mut recording, "k", &Quota::new(3, 1_000), 0);
        assert_eq!(recording.0, vec![334]);

        let mut store = MemoryGcraStore::new();
        check(&mut store, "short", &Quota::new(10, 1_000), 0);
        check(&mut store, "long", &Quota::new(1, 60_000), 0);
        assert_eq!(store.prune(99), 0);
        assert_eq!(store.prune(100), 1);
        assert_eq!(store.len(), 1);
        assert_eq!(store.read("short"), None);
        assert_eq!(store.prune(60_000), 1);
        assert!(store.is_empty());
    }

    #[test]
    fn header_values_are_exact() {
        let mut store = MemoryGcraStore::new();
        let quota = Quota::new(10, MINUTE);
        let d = check(&mut store, "k", &quota, 0).named("login");
        assert_eq!(
            d.response_headers(),
            vec![
                ("X-RateLimit-Limit", "10".to_owned()),
                ("X-RateLimit-Remaining", "9".to_owned()),
                ("X-RateLimit-Reset", "6".to_owned()),
                ("RateLimit-Policy", "\"login\";q=10;w=60".to_owned()),
                ("RateLimit", "\"login\";r=9;t=6".to_owned()),
            ]
        );
        for _ in 0..9 {
            check(&mut store, "k", &quota, 0);
        }
        let refused = check(&mut store, "k", &quota, 1_500).named("lo\"gin\n");
        assert_eq!(refused.retry_after_ms, Some(4_500));
        assert_eq!(
            refused.response_headers(),
            vec![
                ("X-RateLimit-Limit", "10".to_owned()),
                ("X-RateLimit-Remaining", "0".to_owned()),
                ("X-RateLimit-Reset", "59".to_owned()),
                ("RateLimit-Policy", "\"lo\\\"gin\";q=10;w=60".to_owned()),
                ("RateLimit", "\"lo\\\"gin\";r=0;t=59".to_owned()),
                ("Retry-After", "5".to_owned()),
            ]
        );
        let unnamed = gcra(None, &Quota::new(2, 500), 0).0;
        assert_eq!(unnamed.response_headers()[3].1, "\"default\";q=2;w=1");
    }

    #[test]
    fn most_restrictive_prefers_the_longest_refusal_then_the_fewest_remaining() {
        let base = gcra(None, &Quota::new(10, 1_000), 0).0;
        let few = RateDecision {
            remaining: 2,
            ..base.clone()
        }
        .named("few");
        let many = RateDecision {
            remaining: 8,
            ..base.clone()
        }
        .named("many");
        let short = RateDecision {
            allowed: false,
            retry_after_ms: Some(10),
            ..base.clone()
        }
        .named("short");
        let long = RateDecision {
            allowed: false,
            retry_after_ms: Some(900),
            ..base.clone()
        }
        .named("long");
        let pick = |ds: &[RateDecision]| most_restrictive(ds).map(|d| d.policy_name.clone());
        assert_eq!(pick(&[many.clone(), few.clone()]), Some("few".into()));
        assert_eq!(
            pick(&[few.clone(), short.clone(), many.clone()]),
            Some("short".into())
        );
        assert_eq!(pick(&[long.clone(), short, few]), Some("long".into()));
        assert_eq!(pick(&[]), None);
    }

    proptest! {
        #[test]
        fn allowed_requests_in_any_period_window_never_exceed_burst_plus_limit_minus_one(
            limit in 1u32..20,
            burst in 1u32..20,
            period_ms in 1u64..5_000,
            gaps in proptest::collection::vec(0u64..400, 1..300),
        ) {
            let quota = Quota::new(limit, period_ms).with_burst(burst);
            let mut tat = None;
            let mut now = 1_000_000u64;
            let mut allowed_at = Vec::new();
            for gap in gaps {
                now += gap;
                let (decision, new_tat) = gcra(tat, &quota, now);
                prop_assert_eq!(decision.allowed, new_tat.is_some());
                prop_assert_eq!(decision.allowed, decision.retry_after_ms.is_none());
                if let Some(new_tat) = new_tat {
                    tat = Some(new_tat);
                    allowed_at.push(now);
                }
            }
            let bound = (burst + limit - 1) as usize;
            for (i, start) in allowed_at.iter().enumerate() {
                let in_window = allowed_at[i..].iter().take_while(|t| **t < start + period_ms).count();
                prop_assert!(in_window <= bound, "{} allowed in one window, bound {}", in_window, bound);
            }
        }
    }
}
