//! The Redis edge state against a real Redis (127.0.0.1:6379, or `H200_TEST_REDIS_URL`): two
//! stores opened apart, as two edges would, under one key prefix of this test run.

use std::sync::Arc;

use edge::ports::{BlockCheck, EdgeState, GrantLookup, UpkeepTask};
use edge::stage::rate_limit;
use edge_native::redis_state::{self, RedisRateStore, RedisState, RedisTarget};
use shared::api_key::{ApiKey, ApiKeyGrant};
use shared::rate_limit::Quota;

fn redis_url() -> String {
    std::env::var("H200_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Two edges' stores under a prefix no other test run shares.
async fn two_edges(test: &str) -> [(RedisRateStore, RedisState); 2] {
    let prefix = format!("h200-test:{test}:{}:{}:", std::process::id(), uuid_like());
    let target = RedisTarget {
        url: redis_url(),
        prefix,
    };
    let open = || async {
        redis_state::connect(&target).await.unwrap_or_else(|e| {
            panic!(
                "Redis is required at {} (set H200_TEST_REDIS_URL): {e}",
                target.url
            )
        })
    };
    [open().await, open().await]
}

fn uuid_like() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("OS randomness");
    hex::encode(bytes)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_edges_racing_on_one_bucket_admit_the_burst_once() {
    let [(a, _), (b, _)] = two_edges("gcra").await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let quota = Quota::new(10, 60_000);
    let now = now_ms();
    let mut tasks = Vec::new();
    for i in 0..60 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            rate_limit::check(&*store, "login:ip:203.0.113.9", &quota, now)
                .await
                .expect("Redis answers")
                .allowed
        }));
    }
    let mut allowed = 0;
    for task in tasks {
        allowed += usize::from(task.await.expect("the check ran"));
    }
    // Losing every compare-and-set race refuses (fail closed), so fewer is possible, more never.
    assert!(
        (1..=10).contains(&allowed),
        "{allowed} of 60 admitted against a burst of 10"
    );
    let later = rate_limit::check(&*a, "login:ip:203.0.113.9", &quota, now + 6_000)
        .await
        .expect("Redis answers");
    assert!(
        later.allowed,
        "one emission interval later a request passes"
    );
}

#[tokio::test]
async fn a_block_filed_by_one_edge_refuses_at_the_other_and_reports_its_tally_once() {
    let [(_, a), (_, b)] = two_edges("block").await;
    let now = now_ms();
    assert_eq!(
        b.check_block("198.51.100.7", now).await,
        Ok(BlockCheck::Clear)
    );
    a.block("198.51.100.7", now + 1_000).await.expect("Redis");
    let blocked = Ok(BlockCheck::Blocked {
        until_ms: now + 1_000,
    });
    assert_eq!(b.check_block("198.51.100.7", now + 10).await, blocked);
    assert_eq!(a.check_block("198.51.100.7", now + 20).await, blocked);
    assert_eq!(
        b.check_block("198.51.100.7", now + 1_000).await,
        Ok(BlockCheck::Ended {
            until_ms: now + 1_000,
            refused: 2
        })
    );
    assert_eq!(
        a.check_block("198.51.100.7", now + 1_001).await,
        Ok(BlockCheck::Clear)
    );
}

#[tokio::test]
async fn counters_add_up_across_edges_within_their_window() {
    let [(_, a), (_, b)] = two_edges("events").await;
    let now = now_ms();
    let key = "login_failures:192.0.2.1";
    assert_eq!(a.count_event(key, 1_000, now).await, Ok(1));
    assert_eq!(b.count_event(key, 1_000, now).await, Ok(2), "same ms");
    assert_eq!(a.count_event(key, 1_000, now + 500).await, Ok(3));
    assert_eq!(
        b.count_event(key, 1_000, now + 1_200).await,
        Ok(2),
        "the two at `now` left the window"
    );
    b.reset_events(key).await.expect("Redis");
    assert_eq!(a.count_event(key, 1_000, now + 1_300).await, Ok(1));
    for i in 0..100 {
        a.count_event("busy", 60_000, now + i).await.expect("Redis");
    }
    assert_eq!(b.count_event("busy", 60_000, now + 100).await, Ok(64));
}

#[tokio::test]
async fn deny_list_cursor_and_shared_upkeep_times_are_seen_by_every_edge() {
    let [(_, a), (_, b)] = two_edges("deny").await;
    let now = now_ms();
    let keys = [
        "jti:one".to_owned(),
        "sub:two".to_owned(),
        "kid:none".to_owned(),
    ];
    a.deny("jti:one", u64::MAX, now + 60_000)
        .await
        .expect("Redis");
    a.deny("sub:two", now - 5, now + 60_000)
        .await
        .expect("Redis");
    assert_eq!(
        b.denials(&keys, now).await,
        Ok(vec![Some(u64::MAX), Some(now - 5), None])
    );
    assert_eq!(
        b.denials(&keys, now + 60_000).await,
        Ok(vec![None, None, None]),
        "expired entries deny nothing"
    );
    assert_eq!(b.revocation_cursor().await, Ok(0));
    a.set_revocation_cursor(1234).await.expect("Redis");
    assert_eq!(b.revocation_cursor().await, Ok(1234));
    a.record_upkeep(UpkeepTask::Revocations, now)
        .await
        .expect("Redis");
    assert_eq!(b.last_upkeep(UpkeepTask::Revocations).await, Ok(now));
    a.record_upkeep(UpkeepTask::Jwks, now).await.expect("Redis");
    assert_eq!(
        b.last_upkeep(UpkeepTask::Jwks).await,
        Ok(0),
        "each edge fetches the JWKS itself"
    );
}

#[tokio::test]
async fn an_api_key_grant_cached_by_one_edge_serves_the_other_until_its_horizon() {
    let [(_, a), (_, b)] = two_edges("apikey").await;
    let digest = ApiKey::from_random([7; 16]).digest();
    let unknown = ApiKey::from_random([8; 16]).digest();
    let now = now_ms() / 1000;
    assert_eq!(b.api_key(&digest, now).await, Ok(GrantLookup::Refetch));
    let grant = ApiKeyGrant {
        key_id: "k1".into(),
        subject: "u1".into(),
        permissions: vec!["clusters:read".into()],
        roles: vec!["readonly".into()],
        expires_at: None,
        revoked: false,
    };
    a.remember_api_key(digest, Some(grant.clone()), now)
        .await
        .expect("Redis");
    a.remember_api_key(unknown, None, now).await.expect("Redis");
    assert_eq!(
        b.api_key(&digest, now + 59).await,
        Ok(GrantLookup::Fresh(Some(grant)))
    );
    assert_eq!(b.api_key(&digest, now + 60).await, Ok(GrantLookup::Refetch));
    assert_eq!(
        b.api_key(&unknown, now + 9).await,
        Ok(GrantLookup::Fresh(None))
    );
    assert_eq!(
        b.api_key(&unknown, now + 10).await,
        Ok(GrantLookup::Refetch)
    );
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_not_a_fallback() {
    let target = RedisTarget {
        url: "redis://127.0.0.1:1".into(),
        prefix: "h200-test:none:".into(),
    };
    assert!(redis_state::connect(&target).await.is_err());
}
