//! Stage 8: GCRA per route class (route, principal, IP, global) over an async
//! [`RateStore`]; the math and the compare-and-set loop are [`shared::rate_limit::check_async`].

use shared::ErrorCode;
use shared::rate_limit::{self, AsyncGcraStore, Quota, RateDecision, most_restrictive};
use shared::route_policy::{Route, RoutePolicy};

use super::Refusal;
use crate::ports::{RateStore, StateError};

/// One request on `key` against `quota` at `now_ms` ([`shared::rate_limit::check_async`] over
/// the runtime's store); losing every race refuses (fail closed), a store error fails the request.
pub async fn check<R: RateStore + ?Sized>(
    store: &R,
    key: &str,
    quota: &Quota,
    now_ms: u64,
) -> Result<RateDecision, StateError> {
    rate_limit::check_async(&mut Tats(store), key, quota, now_ms).await
}

/// The runtime's [`RateStore`] as the store [`shared::rate_limit`]'s loop runs over.
struct Tats<'a, R: ?Sized>(&'a R);

impl<R: RateStore + ?Sized> AsyncGcraStore for Tats<'_, R> {
    type Error = StateError;

    fn read(&mut self, key: &str) -> impl Future<Output = Result<Option<u64>, StateError>> {
        self.0.read(key)
    }

    fn compare_and_set(
        &mut self,
        key: &str,
        expected: Option<u64>,
        new: u64,
        ttl_ms: u64,
    ) -> impl Future<Output = Result<bool, StateError>> {
        self.0.compare_and_set(key, expected, new, ttl_ms)
    }
}

/// The decisions of every rate class of a route, checked in table order and stopping at the
/// first refusal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteRate {
    pub decisions: Vec<RateDecision>,
}

impl RouteRate {
    /// The decision whose fields the response reports.
    pub fn reported(&self) -> Option<&RateDecision> {
        most_restrictive(&self.decisions)
    }

    /// `RATE_LIMIT_EXCEEDED` with `Retry-After` and the rate-limit fields, if a class refused.
    pub fn refusal(&self) -> Option<Refusal> {
        let refused = self.decisions.iter().find(|d| !d.allowed)?;
        let mut refusal = Refusal::new(ErrorCode::RateLimitExceeded)
            .with_detail(format!("rate class {}", refused.policy_name));
        refusal.headers = refused.response_headers();
        Some(refusal)
    }
}

/// Checks `route`'s classes for a request from `ip` by `subject` at `now_ms`.
pub async fn check_route<R: RateStore + ?Sized>(
    store: &R,
    policy: &RoutePolicy,
    route: &Route,
    ip: &str,
    subject: &str,
    now_ms: u64,
) -> Result<RouteRate, StateError> {
    let mut rate = RouteRate::default();
    for class in policy.classes_of(route) {
        let key = class.bucket_key(ip, subject);
        let decision = check(store, &key, &class.quota(), now_ms)
            .await?
            .named(class.name.as_str());
        let refused = !decision.allowed;
        rate.decisions.push(decision);
        if refused {
            break;
        }
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryRateStore;
    use crate::testing::block_on;
    use shared::route_policy::Resolution;

    #[test]
    fn the_login_class_refuses_the_eleventh_request_in_a_minute() {
        let store = MemoryRateStore::default();
        let policy = RoutePolicy::default();
        let Resolution::Found(login) = policy.resolve("POST", "/auth/login") else {
            panic!("route exists");
        };
        let now = 1_700_000_000_000;
        for n in 0..10 {
            let rate = block_on(check_route(
                &store,
                &policy,
                login.route,
                "ip1",
                "anonymous",
                now,
            ))
            .expect("store works");
            assert!(rate.refusal().is_none(), "request {n} allowed");
        }
        let rate = block_on(check_route(
            &store,
            &policy,
            login.route,
            "ip1",
            "anonymous",
            now,
        ))
        .expect("store works");
        let refusal = rate.refusal().expect("eleventh refused");
        assert_eq!(refusal.problem.status, 429);
        let retry = refusal
            .headers
            .iter()
            .find(|(n, _)| *n == "Retry-After")
            .map(|(_, v)| v.as_str());
        assert_eq!(retry, Some("6"));
        let other_ip = block_on(check_route(
            &store,
            &policy,
            login.route,
            "ip2",
            "anonymous",
            now,
        ))
        .expect("store works");
        assert!(other_ip.refusal().is_none());
        assert_eq!(
            other_ip.reported().map(|d| d.policy_name.as_str()),
            Some("login")
        );
    }
}
