//! Revocation over real HTTP, on SQLite and on Postgres: `h200 keys revoke` takes a signing key
//! out at once (gate and refresh within the deny-list copy's refresh, JWKS, the edges' feed) and
//! for good (a restart), and a subject's older tokens can be revoked in one entry. The
//! revocations here are filed through a store of their own, as by another process, so the
//! backend's gate sees them once its copy of the deny-list reads the feed again.

mod common;

use std::time::{Duration, Instant};

use common::Backend;
use common::backend::{AUDIENCE, ISSUER, TestBackend, anonymous, problem_code};
use gpu_backend::auth::revocation::revoke_subject;
use gpu_backend::auth::token_keys::revoke_signing_key;
use gpu_backend::store::deny_list::DENY_LIST_REFRESH_MS;
use serde_json::{Value, json};
use shared::token::TokenPolicy;

const PASSWORD: &str = "Sturdy-Mug-2026!";

async fn jwks_kids(backend: &TestBackend) -> Vec<String> {
    let jwks: Value = backend
        .client
        .get(backend.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn feed(backend: &TestBackend) -> Vec<Value> {
    let response = backend
        .get("/internal/v1/revocations?since_ms=0", None)
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["revoked"].as_array().unwrap().clone()
}

async fn a_revoked_signing_key_is_refused_at_once_and_replaced(kind: Backend) {
    let backend = TestBackend::start(kind).await;
    backend.add_user("kim", PASSWORD, &["viewer"]).await;
    let (principal, _, refresh) = backend.session("kim", PASSWORD).await;
    let kid = principal.token.as_ref().unwrap().key_id.clone();
    assert_eq!(
        backend
            .get("/api/v1/rules", Some(&principal))
            .await
            .status(),
        200
    );

    let store = backend.db.store().await;
    assert!(
        revoke_signing_key(&store, &backend.data_dir, "k-no-such-key")
            .await
            .is_err(),
        "an unknown kid is refused"
    );
    assert!(feed(&backend).await.is_empty());
    let report = revoke_signing_key(&store, &backend.data_dir, &kid)
        .await
        .unwrap();
    assert!(
        report
            .iter()
            .any(|line| line.contains("new token signing key")),
        "{report:?}"
    );

    // At once (as soon as the gate's copy reads the feed): the gate and the refresh route
    // refuse the key's tokens.
    refused_soon(&backend, &principal, "REVOKED_KEY").await;
    let refreshed = backend
        .json(
            "POST",
            "/auth/refresh",
            Some(&anonymous()),
            json!({ "refresh_token": refresh }),
        )
        .await;
    assert_eq!(refreshed.status(), 401);
    assert_eq!(problem_code(refreshed).await, "REVOKED_KEY");

    // The edges learn it from the feed: a kid entry, nothing else.
    let entries = feed(&backend).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["kid"], kid.as_str());
    assert!(entries[0].get("jti").is_none() && entries[0].get("issued_before_ms").is_none());
    assert!(
        entries[0]["expires_at_ms"].as_u64().unwrap()
            > entries[0]["revoked_at_ms"].as_u64().unwrap()
    );

    // A login right away signs with the new key, which works; the old key is out of the JWKS.
    let (fresh, _, _) = backend.session("kim", PASSWORD).await;
    let fresh_kid = fresh.token.as_ref().unwrap().key_id.clone();
    assert_ne!(fresh_kid, kid);
    assert_eq!(jwks_kids(&backend).await, vec![fresh_kid.clone()]);
    assert_eq!(
        backend.get("/api/v1/rules", Some(&fresh)).await.status(),
        200
    );

    // For good: a restarted backend still refuses the key and does not publish it.
    store.close().await;
    let (db, data_dir) = backend.stop().await;
    let backend = TestBackend::start_with(db, data_dir).await;
    let refused = backend.get("/api/v1/rules", Some(&principal)).await;
    assert_eq!(problem_code(refused).await, "REVOKED_KEY");
    assert_eq!(jwks_kids(&backend).await, vec![fresh_kid]);
    assert_eq!(
        backend.get("/api/v1/rules", Some(&fresh)).await.status(),
        200
    );
}
on_both_stores!(
    signing_key,
    a_revoked_signing_key_is_refused_at_once_and_replaced
);

/// Without a login to trigger it, the backend's own reload drops a revoked key from the JWKS.
async fn a_running_backend_drops_a_revoked_retired_key_on_its_own(kind: Backend) {
    let backend = TestBackend::start(kind).await;
    let before = jwks_kids(&backend).await;
    gpu_backend::keys::rotate_key_files(&backend.data_dir, false, false).unwrap();
    let rotated = wait_for_kids(&backend, |kids| kids.len() == 2).await;
    let retired = before[0].clone();
    assert!(rotated.contains(&retired));

    let store = backend.db.store().await;
    revoke_signing_key(&store, &backend.data_dir, &retired)
        .await
        .unwrap();
    let after = wait_for_kids(&backend, |kids| kids.len() == 1).await;
    assert!(!after.contains(&retired), "{after:?}");
    store.close().await;
}
on_both_stores!(
    reload,
    a_running_backend_drops_a_revoked_retired_key_on_its_own
);

/// Polls `GET /api/v1/rules` as `principal` until the gate refuses it with 401 `code`: a
/// revocation filed by another process holds once the backend's deny-list copy reads the feed,
/// at most [`DENY_LIST_REFRESH_MS`] after its last read (allowed four times that here).
async fn refused_soon(
    backend: &TestBackend,
    principal: &shared::permissions::Principal,
    code: &str,
) {
    let started = Instant::now();
    let limit = Duration::from_millis(4 * DENY_LIST_REFRESH_MS as u64);
    loop {
        let answer = backend.get("/api/v1/rules", Some(principal)).await;
        let status = answer.status();
        if status == 401 {
            assert_eq!(problem_code(answer).await, code);
            return;
        }
        assert_eq!(status, 200, "before the refusal the token still works");
        assert!(
            started.elapsed() < limit,
            "the gate still accepts the token {:?} after the revocation",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the JWKS until `done` holds for its kids, at most 15 s (the reload looks every 5 s).
async fn wait_for_kids(backend: &TestBackend, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let kids = jwks_kids(backend).await;
        if done(&kids) {
            return kids;
        }
        assert!(Instant::now() < deadline, "the JWKS stayed at {kids:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn a_subject_revocation_refuses_only_its_older_tokens(kind: Backend) {
    let backend = TestBackend::start(kind).await;
    let user_id = backend.add_user("sam", PASSWORD, &["viewer"]).await;
    backend.add_user("other", PASSWORD, &["viewer"]).await;
    let (older, _, refresh) = backend.session("sam", PASSWORD).await;
    let (bystander, _, _) = backend.session("other", PASSWORD).await;

    let store = backend.db.store().await;
    let cutoff = gpu_backend::store::now_ms();
    revoke_subject(
        &store,
        &user_id,
        cutoff,
        &TokenPolicy::new(ISSUER, AUDIENCE),
    )
    .await
    .unwrap();
    refused_soon(&backend, &older, "REVOKED_TOKEN").await;
    let refreshed = backend
        .json(
            "POST",
            "/auth/refresh",
            Some(&anonymous()),
            json!({ "refresh_token": refresh }),
        )
        .await;
    assert_eq!(problem_code(refreshed).await, "REVOKED_TOKEN");
    assert_eq!(
        backend
            .get("/api/v1/rules", Some(&bystander))
            .await
            .status(),
        200
    );
    let entries = feed(&backend).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["sub"], user_id.as_str());
    assert_eq!(entries[0]["issued_before_ms"], cutoff);

    // A token issued in a later second than the cut-off is not touched.
    let next_second = Duration::from_millis(1000 - (cutoff % 1000) as u64 + 10);
    tokio::time::sleep(next_second).await;
    let (newer, _, _) = backend.session("sam", PASSWORD).await;
    assert_eq!(
        backend.get("/api/v1/rules", Some(&newer)).await.status(),
        200
    );
    store.close().await;
}
on_both_stores!(subject, a_subject_revocation_refuses_only_its_older_tokens);
