//! The store behaves the same on SQLite and Postgres.

mod common;

use common::{Backend, TestDatabase};
use gpu_backend::store::tokens::RefreshUse;
use gpu_backend::store::users::NewUser;
use gpu_backend::store::{StoreError, audit::AuditFilter};
use shared::ErrorCode;
use shared::audit::{AuditEvent, AuditEventType, AuditSource};
use shared::revocation::{EVERY_TOKEN, RevocationKind, RevokedTarget, TokenFacts};

async fn users_and_password_history(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    let roles = vec!["analyst".to_string()];
    let user = store
        .create_user(NewUser {
            username: "ana",
            password_hash: "h0",
            roles: &roles,
            email_sealed: Some(vec![1, 2]),
        })
        .await
        .unwrap();
    assert_eq!(user.roles, roles);
    assert_eq!(user.email_sealed, Some(vec![1, 2]));
    let duplicate = store
        .create_user(NewUser {
            username: "ana",
            password_hash: "h",
            roles: &roles,
            email_sealed: None,
        })
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict)),
        "{duplicate:?}"
    );
    for i in 1..=6 {
        store
            .set_password(&user.id, &format!("h{i}"))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let history = store.recent_password_hashes(&user.id).await.unwrap();
    assert_eq!(history, ["h6", "h5", "h4", "h3", "h2"]);
    assert_eq!(
        store
            .user_by_username("ana")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "h6"
    );

    store.set_mfa_secret(&user.id, b"sealed").await.unwrap();
    assert!(store.consume_mfa_step(&user.id, 10).await.unwrap());
    assert!(
        !store.consume_mfa_step(&user.id, 10).await.unwrap(),
        "a step is used once"
    );
    assert!(
        !store.consume_mfa_step(&user.id, 9).await.unwrap(),
        "older steps are dead"
    );
    assert!(
        store
            .user_by_id(&user.id)
            .await
            .unwrap()
            .unwrap()
            .mfa_enabled
    );

    store.delete_user(&user.id, 60_000).await.unwrap();
    assert!(store.user_by_id(&user.id).await.unwrap().is_none());
    assert!(
        store
            .recent_password_hashes(&user.id)
            .await
            .unwrap()
            .is_empty()
    );
}
on_both_stores!(users, users_and_password_history);

async fn refresh_rotation_and_reuse(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    let user = store
        .create_user(NewUser {
            username: "bo",
            password_hash: "h",
            roles: &[],
            email_sealed: None,
        })
        .await
        .unwrap();
    let far = gpu_backend::store::now_ms() + 60_000;
    store.create_token_family("f1", &user.id).await.unwrap();
    store
        .record_refresh_token("r1", "f1", &user.id, far)
        .await
        .unwrap();
    store
        .record_refresh_token("r2", "f1", &user.id, far)
        .await
        .unwrap();
    assert_eq!(
        store.use_refresh_token("r1").await.unwrap(),
        RefreshUse::Rotated {
            user_id: user.id.clone(),
            family_id: "f1".into()
        }
    );
    assert_eq!(
        store.use_refresh_token("r1").await.unwrap(),
        RefreshUse::Reused {
            user_id: user.id.clone(),
            family_id: "f1".into()
        }
    );
    assert_eq!(
        store.use_refresh_token("r2").await.unwrap(),
        RefreshUse::Invalid,
        "family revoked"
    );
    assert_eq!(
        store.use_refresh_token("nope").await.unwrap(),
        RefreshUse::Invalid
    );
}
on_both_stores!(refresh, refresh_rotation_and_reuse);

fn facts<'a>(jti: &'a str, kid: &'a str, sub: &'a str, issued_at_secs: u64) -> TokenFacts<'a> {
    TokenFacts {
        token_id: jti,
        key_id: kid,
        subject: sub,
        issued_at_secs,
    }
}

async fn deny_list_of_every_kind(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    let far = gpu_backend::store::now_ms() + 60_000;
    let target = |kind, id: &str| RevokedTarget {
        kind,
        id: id.to_owned(),
    };

    store.revoke_token("j1", far).await.unwrap();
    store.revoke_token("j1", far).await.unwrap();
    let token = facts("j1", "k1", "u1", 100);
    let refusal = |cutoffs: Vec<Option<u64>>| token.refusal(&cutoffs);
    assert_eq!(
        refusal(store.denials(&token).await.unwrap()),
        Some(ErrorCode::RevokedToken)
    );
    assert_eq!(
        store.denials(&facts("j2", "k1", "u1", 100)).await.unwrap(),
        vec![None, None, None]
    );

    store
        .revoke(&target(RevocationKind::SigningKey, "k1"), None, far)
        .await
        .unwrap();
    assert_eq!(
        refusal(store.denials(&token).await.unwrap()),
        Some(ErrorCode::RevokedKey)
    );
    assert_eq!(
        store.revoked_key_ids().await.unwrap(),
        vec!["k1".to_owned()]
    );

    // A subject's cut-off only ever moves later.
    let subject = target(RevocationKind::Subject, "u2");
    store.revoke(&subject, Some(200_000), far).await.unwrap();
    store.revoke(&subject, Some(150_000), far).await.unwrap();
    let cutoffs = store.denials(&facts("j3", "k2", "u2", 199)).await.unwrap();
    assert_eq!(cutoffs, vec![None, Some(200_000), None]);
    assert_eq!(
        facts("j3", "k2", "u2", 199).refusal(&cutoffs),
        Some(ErrorCode::RevokedToken)
    );
    assert_eq!(facts("j4", "k2", "u2", 200).refusal(&cutoffs), None);

    let listed = store.revocations_since(0, 10).await.unwrap();
    let keys: Vec<String> = listed.iter().map(|r| r.target.deny_key()).collect();
    assert_eq!(keys, ["jti:j1", "kid:k1", "sub:u2"]);
    assert_eq!(listed[2].issued_before_ms, Some(200_000));
    assert_eq!(listed[1].cutoff_ms(), EVERY_TOKEN);

    // A page never ends inside a millisecond: all entries of the last one come along.
    for (kind, id) in [("jti", "m1"), ("kid", "m2"), ("sub", "m3")] {
        sqlx::query(
            "INSERT INTO revocations (kind, target, expires_at_ms, revoked_at_ms) VALUES ($1, $2, $3, 1000)",
        )
        .bind(kind)
        .bind(id)
        .bind(far)
        .execute(store.pool())
        .await
        .unwrap();
    }
    let page = store.revocations_since(0, 2).await.unwrap();
    let ids: Vec<&str> = page.iter().map(|r| r.target.id.as_str()).collect();
    assert_eq!(ids, ["m1", "m2", "m3"]);
    // A reader that already passed a millisecond still sees entries from just before it.
    let again = store.revocations_since(1000 + 4_000, 10).await.unwrap();
    assert!(again.iter().any(|r| r.target.id == "m2"));

    sqlx::query("UPDATE revocations SET expires_at_ms = 1 WHERE target = 'm1'")
        .execute(store.pool())
        .await
        .unwrap();
    assert_eq!(store.prune_revocations().await.unwrap(), 1);
}
on_both_stores!(deny_list, deny_list_of_every_kind);

/// The deny-list is checked from memory: what one store files counts in that store at once, and
/// in another store on the same database (another process) once its copy reads the feed again,
/// however many entries came in meanwhile.
async fn deny_list_copies_follow_other_stores(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let here = db.store().await;
    let there = db.store().await;
    let far = gpu_backend::store::now_ms() + 60_000;
    let token = facts("j1", "k1", "u1", 100);
    assert_eq!(token.refusal(&here.denials(&token).await.unwrap()), None);

    there.revoke_token("j1", far).await.unwrap();
    for i in 0..1_200 {
        there
            .revoke_token(&format!("burst-{i}"), far)
            .await
            .unwrap();
    }
    assert_eq!(
        token.refusal(&there.denials(&token).await.unwrap()),
        Some(ErrorCode::RevokedToken),
        "at once in the store that filed it"
    );
    tokio::time::sleep(std::time::Duration::from_millis(
        gpu_backend::store::deny_list::DENY_LIST_REFRESH_MS as u64 + 50,
    ))
    .await;
    assert_eq!(
        token.refusal(&here.denials(&token).await.unwrap()),
        Some(ErrorCode::RevokedToken),
        "in the other store after its refresh"
    );
    let last = facts("burst-1199", "k1", "u1", 100);
    assert_eq!(
        last.refusal(&here.denials(&last).await.unwrap()),
        Some(ErrorCode::RevokedToken),
        "the whole burst, past a page of the feed"
    );
}
on_both_stores!(deny_list_copies, deny_list_copies_follow_other_stores);

/// The deny-list entries of a database migrated before version 4 move to the one table.
async fn jti_entries_survive_the_move_to_one_table(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    let far = gpu_backend::store::now_ms() + 60_000;
    sqlx::query("DROP TABLE revocations")
        .execute(store.pool())
        .await
        .unwrap();
    for statement in [
        "CREATE TABLE revoked_tokens (jti TEXT PRIMARY KEY, expires_at_ms BIGINT NOT NULL, revoked_at_ms BIGINT NOT NULL)",
        "DELETE FROM schema_migrations WHERE version = 4",
    ] {
        sqlx::query(statement).execute(store.pool()).await.unwrap();
    }
    sqlx::query(
        "INSERT INTO revoked_tokens (jti, expires_at_ms, revoked_at_ms) VALUES ('old', $1, 5)",
    )
    .bind(far)
    .execute(store.pool())
    .await
    .unwrap();
    store.close().await;
    let store = db.store().await;
    let token = facts("old", "k", "u", 1);
    assert_eq!(
        token.refusal(&store.denials(&token).await.unwrap()),
        Some(ErrorCode::RevokedToken)
    );
}
on_both_stores!(
    deny_list_migration,
    jti_entries_survive_the_move_to_one_table
);

fn event(kind: AuditEventType, ms: u64, seed: u8, principal: &str) -> AuditEvent {
    let mut e = AuditEvent::new(kind, AuditSource::Edge, ms, [seed; 10]);
    e.principal = Some(principal.into());
    e
}

/// Read-then-write transactions racing each other: each spends its own refresh token while
/// the others commit. On SQLite a deferred transaction would fail with `SQLITE_BUSY` the moment
/// another connection wrote between its read and its write; every one must succeed.
async fn concurrent_read_then_write(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    let user = store
        .create_user(NewUser {
            username: "cy",
            password_hash: "h",
            roles: &[],
            email_sealed: None,
        })
        .await
        .unwrap();
    let far = gpu_backend::store::now_ms() + 60_000;
    const TOKENS: usize = 48;
    for i in 0..TOKENS {
        store
            .create_token_family(&format!("f{i}"), &user.id)
            .await
            .unwrap();
        store
            .record_refresh_token(&format!("r{i}"), &format!("f{i}"), &user.id, far)
            .await
            .unwrap();
    }
    let spends = (0..TOKENS).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { store.use_refresh_token(&format!("r{i}")).await })
    });
    for outcome in futures_join(spends).await {
        assert!(
            matches!(outcome, Ok(RefreshUse::Rotated { .. })),
            "{outcome:?}"
        );
    }
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.unwrap());
    }
    out
}

on_both_stores!(concurrent_spends, concurrent_read_then_write);

async fn audit_chain_dedup_filters_and_tampering(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    let batch: Vec<AuditEvent> = (0..5)
        .map(|i| {
            event(
                if i % 2 == 0 {
                    AuditEventType::LoginFailure
                } else {
                    AuditEventType::DataAccess
                },
                1000 + i,
                i as u8,
                if i < 3 { "u1" } else { "u2" },
            )
        })
        .collect();
    let outcome = store.append_audit(&batch).await.unwrap();
    assert_eq!((outcome.inserted, outcome.duplicates), (5, 0));
    let outcome = store.append_audit(&batch[3..]).await.unwrap();
    assert_eq!(
        (outcome.inserted, outcome.duplicates),
        (0, 2),
        "redelivered events are deduplicated"
    );
    assert_eq!(store.verify_audit_chain().await.unwrap(), 5);

    let failures = store
        .query_audit(&AuditFilter {
            event_type: Some("login_failure".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        failures.iter().map(|e| e.position).collect::<Vec<_>>(),
        [5, 3, 1]
    );
    let u2 = store
        .query_audit(&AuditFilter {
            principal: Some("u2".into()),
            from_ms: Some(1004),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(u2.len(), 1);
    assert_eq!(u2[0].event, batch[4]);

    // The table refuses updates and deletes outright.
    assert!(
        sqlx::query("DELETE FROM audit_events WHERE position = 2")
            .execute(store.pool())
            .await
            .is_err()
    );
    // Someone with the power to lift that protection still cannot hide a change.
    match backend {
        Backend::Sqlite => {
            sqlx::query("DROP TRIGGER audit_events_no_update")
                .execute(store.pool())
                .await
                .unwrap();
            sqlx::query("DROP TRIGGER audit_events_no_delete")
                .execute(store.pool())
                .await
                .unwrap();
        }
        Backend::Postgres => {
            sqlx::query("DROP TRIGGER audit_events_no_change ON audit_events")
                .execute(store.pool())
                .await
                .unwrap();
        }
    }
    sqlx::query(
        "UPDATE audit_events SET event_json = REPLACE(event_json, 'u1', 'u9') WHERE position = 2",
    )
    .execute(store.pool())
    .await
    .unwrap();
    assert!(
        store.verify_audit_chain().await.is_err(),
        "a changed row is detected"
    );
}
on_both_stores!(audit, audit_chain_dedup_filters_and_tampering);

async fn audit_deletions_are_detected(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    let batch: Vec<AuditEvent> = (0..4)
        .map(|i| event(AuditEventType::AdminAction, 10 + i, i as u8, "a"))
        .collect();
    store.append_audit(&batch).await.unwrap();
    let drop_protection = match backend {
        Backend::Sqlite => "DROP TRIGGER audit_events_no_delete",
        Backend::Postgres => "DROP TRIGGER audit_events_no_change ON audit_events",
    };
    sqlx::query(drop_protection)
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_events WHERE position = 4")
        .execute(store.pool())
        .await
        .unwrap();
    let error = store.verify_audit_chain().await.unwrap_err().to_string();
    assert!(error.contains("head says 4"), "{error}");
    sqlx::query("DELETE FROM audit_events WHERE position = 2")
        .execute(store.pool())
        .await
        .unwrap();
    let error = store.verify_audit_chain().await.unwrap_err().to_string();
    assert!(error.contains("missing"), "{error}");
}
on_both_stores!(audit_deletions, audit_deletions_are_detected);
