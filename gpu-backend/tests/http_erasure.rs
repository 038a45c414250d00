//! Erasing an account (`DELETE /api/v1/me`) ends every credential it has, over real HTTP on
//! SQLite and Postgres: its other access tokens (a second login's, a refresh's), its refresh
//! tokens and its API keys are refused at once, and no write lands for the account afterwards,
//! not even from a request that passed the gate just before the erasure committed. No request
//! answers 5xx.

mod common;

use common::Backend;
use common::backend::{TestBackend, anonymous};
use gpu_backend::store::analyses::NewAnalysis;
use gpu_backend::store::jobs::NewJob;
use gpu_backend::store::{Store, StoreError};
use mug::synthetic::{desk_scene, render};
use serde_json::{Value, json};
use shared::permissions::{Principal, PrincipalKind, RoleSet};

const PASSWORD: &str = "Sturdy-Mug-2026!";
const BOUNDARY: &str = "h200-erasure-boundary";
/// Rules, analyses and NCS points: the writes an account makes.
const ROLES: &[&str] = &["manager", "user"];

/// How many rows of each table belong to `user_id`.
async fn rows_of(store: &Store, user_id: &str) -> Vec<(&'static str, i64)> {
    let mut counts = Vec::new();
    for (table, column) in [
        ("rules", "owner"),
        ("analyses", "owner"),
        ("jobs", "owner"),
        ("api_keys", "user_id"),
        ("token_families", "user_id"),
        ("refresh_tokens", "user_id"),
        ("password_history", "user_id"),
        ("users", "id"),
    ] {
        let count: i64 =
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table} WHERE {column} = $1"))
                .bind(user_id)
                .fetch_one(store.pool())
                .await
                .unwrap();
        counts.push((table, count));
    }
    let streams: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM stream_states WHERE stream_key LIKE $1")
            .bind(format!("ncs:{user_id}:%"))
            .fetch_one(store.pool())
            .await
            .unwrap();
    counts.push(("stream_states", streams));
    counts
}

fn nothing_left(counts: &[(&'static str, i64)]) -> bool {
    counts.iter().all(|(_, count)| *count == 0)
}

fn rule(name: &str) -> Value {
    json!({
        "name": name,
        "conditions": [{ "field": "mug_count", "operator": ">", "value": 2 }],
        "actions": [{ "action": "reject", "message": "too many mugs" }],
    })
}

fn points() -> Value {
    json!({ "points": [[1.0, 2.0], [1.1, 2.1], [9.0, 9.0]], "stream": "s1", "timeout": 20000 })
}

/// A small PNG with one mug, as a multipart form.
fn upload_form() -> Vec<u8> {
    let scene = render(&desk_scene(160, 120, &[(80.0, 70.0, 30.0)]));
    let mut png = std::io::Cursor::new(Vec::new());
    scene
        .image
        .write_to(&mut png, image::ImageFormat::Png)
        .unwrap();
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"desk.png\"\r\nContent-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&png.into_inner());
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload(backend: &TestBackend, who: &Principal) -> reqwest::Response {
    backend
        .signed(
            "POST",
            "/api/v1/analysis",
            Some(who),
            Some(&format!("multipart/form-data; boundary={BOUNDARY}")),
            upload_form(),
        )
        .send()
        .await
        .unwrap()
}

async fn erase(backend: &TestBackend, who: &Principal) -> reqwest::Response {
    backend
        .signed("DELETE", "/api/v1/me", Some(who), None, Vec::new())
        .send()
        .await
        .unwrap()
}

async fn refresh(backend: &TestBackend, refresh_token: &str) -> reqwest::Response {
    backend
        .json(
            "POST",
            "/auth/refresh",
            Some(&anonymous()),
            json!({ "refresh_token": refresh_token }),
        )
        .await
}

/// Creates an API key for `session`'s user and returns the principal the edge makes of it.
async fn api_key_principal(backend: &TestBackend, session: &Principal) -> Principal {
    let created = backend
        .json(
            "POST",
            "/auth/api-keys",
            Some(session),
            json!({ "name": "ci" }),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let mut principal = anonymous();
    principal.subject = session.subject.clone();
    principal.kind = PrincipalKind::ApiKey;
    principal.roles = ROLES.iter().map(|r| r.to_string()).collect();
    principal.permissions = RoleSet::default().permissions_of(&principal.roles);
    principal.token_id = Some(created["id"].as_str().unwrap().to_owned());
    principal
}

/// `status` and `code` of a response that must be a refusal: problem+json with the request id,
/// never a 5xx.
async fn refused(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let problem = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/problem+json");
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(
        problem && status < 500 && body["request_id"].is_string(),
        "expected a refusal, got {status} {body}"
    );
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

async fn erasure_ends_every_credential(kind: Backend) {
    let backend = TestBackend::start(kind).await;
    let user_id = backend.add_user("erin", PASSWORD, ROLES).await;
    let (eraser, _, _) = backend.session("erin", PASSWORD).await;
    let (sibling, _, sibling_refresh) = backend.session("erin", PASSWORD).await;
    // A token from a refresh taken before the erasure.
    let (_, _, third_refresh) = backend.session("erin", PASSWORD).await;
    let refreshed = refresh(&backend, &third_refresh).await;
    assert_eq!(refreshed.status(), 200);
    let refreshed: Value = refreshed.json().await.unwrap();
    let from_refresh = backend
        .principal_of(refreshed["access_token"].as_str().unwrap())
        .await;
    let later_refresh = refreshed["refresh_token"].as_str().unwrap().to_owned();
    let key = api_key_principal(&backend, &sibling).await;
    // Before the erasure every credential writes.
    let before = backend
        .json("POST", "/api/v1/rules", Some(&sibling), rule("before"))
        .await;
    assert_eq!(before.status(), 201);
    assert_eq!(
        backend
            .get("/api/v1/clusters_summary", Some(&key))
            .await
            .status(),
        200
    );

    assert_eq!(erase(&backend, &eraser).await.status(), 204);
    let store = backend.db.store().await;
    let after_erasure = rows_of(&store, &user_id).await;
    assert!(nothing_left(&after_erasure), "{after_erasure:?}");

    for (who, what) in [(&sibling, "a second login"), (&from_refresh, "a refresh")] {
        for response in [
            backend.get("/api/v1/rules", Some(who)).await,
            backend
                .json("POST", "/api/v1/rules", Some(who), rule("after"))
                .await,
            backend
                .json("POST", "/api/v1/process_points", Some(who), points())
                .await,
            upload(&backend, who).await,
            backend
                .json(
                    "POST",
                    "/auth/api-keys",
                    Some(who),
                    json!({ "name": "late" }),
                )
                .await,
            erase(&backend, who).await,
        ] {
            assert_eq!(
                refused(response).await,
                (401, "REVOKED_TOKEN".to_owned()),
                "the token of {what}"
            );
        }
    }
    for token in [&sibling_refresh, &later_refresh] {
        assert_eq!(
            refused(refresh(&backend, token).await).await,
            (401, "REVOKED_TOKEN".to_owned()),
            "a refresh token of the erased account"
        );
    }
    assert_eq!(
        refused(backend.get("/api/v1/clusters_summary", Some(&key)).await).await,
        (401, "INVALID_API_KEY".to_owned()),
        "an API key of the erased account"
    );
    assert_eq!(
        refused(
            backend
                .json("POST", "/api/v1/process_points", Some(&key), points())
                .await
        )
        .await,
        (401, "INVALID_API_KEY".to_owned())
    );
    assert_eq!(
        refused(backend.login("erin", PASSWORD, None).await).await,
        (401, "INVALID_CREDENTIALS".to_owned())
    );
    let after_attempts = rows_of(&store, &user_id).await;
    assert_eq!(after_attempts, after_erasure, "no write landed");

    // The edges learn it from the feed: one entry for the subject, kept for as long as the
    // longest-lived token (a refresh token, 7 days) could be alive.
    let feed: Value = backend
        .get("/internal/v1/revocations?since_ms=0", None)
        .await
        .json()
        .await
        .unwrap();
    let entry = feed["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["sub"] == user_id.as_str())
        .unwrap_or_else(|| panic!("no sub entry for the erased account: {feed}"))
        .clone();
    let cutoff = entry["issued_before_ms"].as_u64().unwrap();
    let expires = entry["expires_at_ms"].as_u64().unwrap();
    assert!(cutoff >= sibling.token.as_ref().unwrap().issued_at * 1000);
    assert!(expires >= cutoff + 7 * 86_400_000, "{entry}");

    // The audit trail keeps the erasure, under the opaque id only.
    let events = store
        .query_audit(&gpu_backend::store::audit::AuditFilter {
            principal: Some(user_id.clone()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let trail = serde_json::to_string(&events).unwrap();
    assert!(trail.contains("account erased"), "{trail}");
    assert!(!trail.contains("erin"), "the trail names no one");
    store.close().await;
}
on_both_stores!(credentials, erasure_ends_every_credential);

/// Requests that passed the gate just before the erasure committed: the deny-list entry is
/// taken out again, so the gate admits the sibling token as it did a moment before, and each
/// write meets the erased account in the store.
async fn a_request_admitted_before_the_erasure_writes_nothing(kind: Backend) {
    let backend = TestBackend::start(kind).await;
    let user_id = backend.add_user("lena", PASSWORD, ROLES).await;
    let (eraser, _, _) = backend.session("lena", PASSWORD).await;
    let (late, _, _) = backend.session("lena", PASSWORD).await;
    assert_eq!(erase(&backend, &eraser).await.status(), 204);
    let store = backend.db.store().await;
    sqlx::query("DELETE FROM revocations WHERE target = $1")
        .bind(&user_id)
        .execute(store.pool())
        .await
        .unwrap();

    let mut natural = json!({ "text": "reject when more than 2 mugs", "save": true });
    natural["name"] = json!("nl");
    for (what, response) in [
        (
            "a rule",
            backend
                .json("POST", "/api/v1/rules", Some(&late), rule("late"))
                .await,
        ),
        (
            "a drafted rule",
            backend
                .json(
                    "POST",
                    "/api/v1/rules/natural-language",
                    Some(&late),
                    natural,
                )
                .await,
        ),
        (
            "NCS points",
            backend
                .json("POST", "/api/v1/process_points", Some(&late), points())
                .await,
        ),
        ("an analysis", upload(&backend, &late).await),
        (
            "an API key",
            backend
                .json(
                    "POST",
                    "/auth/api-keys",
                    Some(&late),
                    json!({ "name": "k" }),
                )
                .await,
        ),
        (
            "an MFA secret",
            backend
                .signed("POST", "/auth/mfa/setup", Some(&late), None, Vec::new())
                .send()
                .await
                .unwrap(),
        ),
        ("a second erasure", erase(&backend, &late).await),
    ] {
        assert_eq!(
            refused(response).await,
            (401, "REVOKED_TOKEN".to_owned()),
            "{what} for the erased account"
        );
    }
    let left = rows_of(&store, &user_id).await;
    assert!(nothing_left(&left), "{left:?}");

    // The store itself refuses every write that names the erased account.
    let gone = |result: Result<(), StoreError>, what: &str| match result {
        Err(StoreError::AccountGone) => {}
        other => panic!("{what}: {other:?}"),
    };
    let definition = serde_json::from_value(rule("direct")).unwrap();
    gone(
        store.create_rule(&user_id, &definition).await.map(|_| ()),
        "create_rule",
    );
    let mut job = NewJob::new("ncs", json!({}));
    job.owner = Some(user_id.clone());
    gone(store.enqueue(&job).await.map(|_| ()), "enqueue");
    gone(
        store
            .create_api_key(&user_id, "k", &"a".repeat(64), "ncs_aaaa", None)
            .await
            .map(|_| ()),
        "create_api_key",
    );
    gone(
        store.create_token_family("f-late", &user_id).await,
        "create_token_family",
    );
    gone(
        store
            .record_refresh_token("r-late", "f-late", &user_id, i64::MAX)
            .await,
        "record_refresh_token",
    );
    let analysis = NewAnalysis {
        owner: user_id.clone(),
        cache_key: "c".repeat(64),
        image_sha256: "d".repeat(64),
        image_type: "image/png".into(),
        image_width: 1,
        image_height: 1,
        image_bytes: 1,
        options: json!({}),
    };
    gone(
        store
            .create_analysis("a-late", &analysis, &job, 0, None)
            .await
            .map(|_| ()),
        "create_analysis",
    );
    gone(
        store.set_mfa_secret(&user_id, b"sealed").await,
        "set_mfa_secret",
    );
    gone(store.set_password(&user_id, "h").await, "set_password");
    let left = rows_of(&store, &user_id).await;
    assert!(nothing_left(&left), "{left:?}");
    store.close().await;
}
on_both_stores!(
    late_request,
    a_request_admitted_before_the_erasure_writes_nothing
);

/// Writes racing the erasure over HTTP: each is either done before it (and erased with the
/// account) or refused with 401; nothing is left, and nothing answers 5xx.
async fn writes_racing_the_erasure_leave_nothing(kind: Backend) {
    let backend = std::sync::Arc::new(TestBackend::start(kind).await);
    let user_id = backend.add_user("rory", PASSWORD, ROLES).await;
    let (eraser, _, _) = backend.session("rory", PASSWORD).await;
    let (sibling, _, _) = backend.session("rory", PASSWORD).await;

    let mut writes = Vec::new();
    for i in 0..24 {
        let backend = backend.clone();
        let sibling = sibling.clone();
        writes.push(tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(10 * i)).await;
            let response = match i % 4 {
                0 => {
                    backend
                        .json("POST", "/api/v1/process_points", Some(&sibling), points())
                        .await
                }
                1 => {
                    backend
                        .json(
                            "POST",
                            "/auth/api-keys",
                            Some(&sibling),
                            json!({ "name": "r" }),
                        )
                        .await
                }
                _ => {
                    backend
                        .json("POST", "/api/v1/rules", Some(&sibling), rule("race"))
                        .await
                }
            };
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (i, status, body)
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(erase(&backend, &eraser).await.status(), 204);
    // And once more after the erasure has answered.
    let late = backend
        .json("POST", "/api/v1/rules", Some(&sibling), rule("after"))
        .await;
    assert_eq!(refused(late).await, (401, "REVOKED_TOKEN".to_owned()));
    for write in writes {
        let (i, status, body) = write.await.unwrap();
        match status {
            200 | 201 => {}
            401 => assert_eq!(body["code"], "REVOKED_TOKEN", "write {i}: {body}"),
            other => panic!("write {i} answered {other}: {body}"),
        }
    }
    let store = backend.db.store().await;
    let left = rows_of(&store, &user_id).await;
    assert!(nothing_left(&left), "{left:?}");
    store.close().await;
}
on_both_stores!(race, writes_racing_the_erasure_leave_nothing);
