//! The shared replay-nonce stores against a real Postgres and Redis: a nonce one backend
//! accepted is refused by another that shares the store, and only for as long as the signature
//! could be replayed.

use gpu_backend::replay::ReplayStore;

fn postgres_url() -> String {
    std::env::var("H200_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn redis_url() -> String {
    std::env::var("H200_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn unique(what: &str) -> String {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).expect("OS randomness");
    format!("{what}-{}", hex::encode(bytes))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

async fn two_backends(url: &str, prefix: &str) -> (ReplayStore, ReplayStore) {
    let open = || async {
        ReplayStore::open(Some(url), prefix)
            .await
            .unwrap_or_else(|e| panic!("the shared store is required for this test: {e}"))
    };
    (open().await, open().await)
}

async fn replayed_to_the_other_backend_is_refused(one: &ReplayStore, other: &ReplayStore) {
    let now = now_secs();
    let nonce = unique("nonce");
    assert_eq!(
        one.remember("edge-1", &nonce, now + 60, now).await.ok(),
        Some(true)
    );
    assert_eq!(
        other
            .remember("edge-1", &nonce, now + 60, now + 1)
            .await
            .ok(),
        Some(false),
        "the other backend refuses the replay"
    );
    assert_eq!(
        one.remember("edge-1", &nonce, now + 60, now + 2).await.ok(),
        Some(false),
        "and so does the first"
    );
    assert_eq!(
        other.remember("edge-2", &nonce, now + 60, now).await.ok(),
        Some(true),
        "nonces are per key id"
    );
}

#[tokio::test]
async fn postgres_shares_nonces_between_backends() {
    let (one, other) = two_backends(&postgres_url(), "").await;
    replayed_to_the_other_backend_is_refused(&one, &other).await;
    // A nonce whose window has passed may be filed again (the signature itself is stale by then).
    let now = now_secs();
    let nonce = unique("old");
    assert_eq!(
        one.remember("edge-1", &nonce, now - 1, now - 61).await.ok(),
        Some(true)
    );
    assert_eq!(
        other.remember("edge-1", &nonce, now + 60, now).await.ok(),
        Some(true)
    );
}

#[tokio::test]
async fn redis_shares_nonces_between_backends() {
    let prefix = format!("{}:", unique("h200-test:replay"));
    let (one, other) = two_backends(&redis_url(), &prefix).await;
    replayed_to_the_other_backend_is_refused(&one, &other).await;
}

#[tokio::test]
async fn an_unreachable_shared_store_is_an_error() {
    assert!(
        ReplayStore::open(Some("redis://127.0.0.1:1"), "x:")
            .await
            .is_err()
    );
    assert!(
        ReplayStore::open(Some("postgres://postgres@127.0.0.1:1/test"), "")
            .await
            .is_err()
    );
}
