//! Stage 8: GCRA per route class (route, principal, IP, global) over an async
//! [`RateStore`]; the math is [`shared::rate_limit::gcra`].

use shared::ErrorCode;
use shared::rate_limit::{MAX_CAS_ATTEMPTS, Quota, RateDecision, gcra, most_restrictive};
use shared::route_policy::{Route, RoutePolicy};

use super::Refusal;
use crate::ports::{RateStore, StateError};

/// One request on `key` against `quota` at `now_ms`, retrying the compare-and-set like
/// [`shared::rate_limit::check`]; losing every race refuses (fail closed).
pub async fn check<R: RateStore + ?Sized>(
    store: &R,
    key: &str,
    quota: &Quota,
    now_ms: u64,
) -> Result<RateDecision, StateError> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let stored = store.read(key).await?;
        let (decision, new_tat) = gcra(stored, quota, now_ms);
        let Some(new_tat) = new_tat else {
            return Ok(decision);
        };
        let ttl_ms = new_tat
            .saturating_sub(now_ms.saturating_mul(1000))
            .div_ceil(1000);
        if store.compare_and_set(key, stored, new_tat, ttl_ms).await? {
            return Ok(decision);
        }
    }
    let retry = quota.emission_interval_us().div_ceil(1000).max(1);
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
