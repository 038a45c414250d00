//! The backend over real HTTP, on SQLite and on Postgres: the signature gate, the auth service,
//! audit, administration and personal data.

mod common;

use common::Backend;
use common::backend::{Stamp, TestBackend, anonymous, nonce, now_secs, problem_code};
use serde_json::json;
use shared::audit::{AuditBatch, AuditEvent, AuditEventType, AuditSource};
use shared::permissions::{Permission, PrincipalKind};

const PASSWORD: &str = "Sturdy-Mug-2026!";

async fn open_routes_and_the_gate(kind: Backend) {
    let backend = TestBackend::start(kind).await;
    let health = backend
        .client
        .get(backend.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));
    let jwks: serde_json::Value = backend
        .client
        .get(backend.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert!(jwks["keys"][0]["kid"].is_string());

    // Unsigned.
    let unsigned = backend
        .client
        .get(backend.url("/api/v1/admin/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    assert_eq!(problem_code(unsigned).await, "MISSING_SIGNATURE");

    // Signed, then replayed with the very same headers.
    let admin_id = backend.add_user("root", PASSWORD, &["admin"]).await;
    let (admin, _, _) = backend.session("root", PASSWORD).await;
    assert_eq!(admin.subject, admin_id);
    let request = backend
        .signed("GET", "/api/v1/admin/users", Some(&admin), None, Vec::new())
        .build()
        .unwrap();
    let replay = request.try_clone().unwrap();
    assert_eq!(backend.client.execute(request).await.unwrap().status(), 200);
    let replayed = backend.client.execute(replay).await.unwrap();
    assert_eq!(replayed.status(), 401);
    assert_eq!(problem_code(replayed).await, "REPLAYED_REQUEST");

    // Stale: created 61 s ago.
    let stale = backend
        .signed_at(
            "GET",
            "/api/v1/admin/users",
            Some(&admin),
            None,
            Vec::new(),
            Stamp {
                created: now_secs() - 61,
                nonce: nonce(),
            },
        )
        .send()
        .await
        .unwrap();
    assert_eq!(problem_code(stale).await, "STALE_SIGNATURE");

    // Tampered: the principal header swapped after signing (privilege escalation attempt).
    let (viewer_principal, _) = {
        backend.add_user("vera", PASSWORD, &["viewer"]).await;
        let (p, access, _) = backend.session("vera", PASSWORD).await;
        (p, access)
    };
    let mut forged = backend
        .signed(
            "GET",
            "/api/v1/admin/users",
            Some(&viewer_principal),
            None,
            Vec::new(),
        )
        .build()
        .unwrap();
    forged
        .headers_mut()
        .insert("x-h200-principal", admin.encode_header().parse().unwrap());
    let forged = backend.client.execute(forged).await.unwrap();
    assert_eq!(problem_code(forged).await, "INVALID_SIGNATURE");

    // Tampered body.
    let mut tampered = backend
        .signed(
            "POST",
            "/auth/login",
            Some(&anonymous()),
            Some("application/json"),
            br#"{"username":"root","password":"x"}"#.to_vec(),
        )
        .build()
        .unwrap();
    *tampered.body_mut() = Some(br#"{"username":"root","password":"y"}"#.to_vec().into());
    let tampered = backend.client.execute(tampered).await.unwrap();
    assert_eq!(problem_code(tampered).await, "INVALID_SIGNATURE");

    // The backend re-checks the route permission the edge should have checked.
    let denied = backend
        .get("/api/v1/admin/users", Some(&viewer_principal))
        .await;
    assert_eq!(denied.status(), 403);
    assert_eq!(problem_code(denied).await, "INSUFFICIENT_PERMISSIONS");

    // Every refusal above is in the audit log.
    let audit: serde_json::Value = backend
        .get(
            "/api/v1/admin/audit?type=token_invalid&limit=50",
            Some(&admin),
        )
        .await
        .json()
        .await
        .unwrap();
    let codes: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["code"].as_str())
        .collect();
    for expected in [
        "MISSING_SIGNATURE",
        "REPLAYED_REQUEST",
        "STALE_SIGNATURE",
        "INVALID_SIGNATURE",
    ] {
        assert!(codes.contains(&expected), "{expected} audited: {codes:?}");
    }
    let denied_events: serde_json::Value = backend
        .get("/api/v1/admin/audit?type=permission_denied", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(denied_events["events"].as_array().unwrap().len(), 1);
}
on_both_stores!(gate, open_routes_and_the_gate);

async fn login_refresh_logout(kind: Backend) {
    let backend = TestBackend::start(kind).await;
    let user_id = backend.add_user("ana", PASSWORD, &["analyst"]).await;

    // JSON login and its shape.
    let response = backend.login("ana", PASSWORD, None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let tokens: serde_json::Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 1800);
    let scope = tokens["scope"].as_str().unwrap();
    for permission in [
        "analysis:read",
        "analysis:write",
        "rules:read",
        "rules:execute",
        "servers:read",
    ] {
        assert!(
            scope.split(' ').any(|s| s == permission),
            "{permission} in {scope}"
        );
    }
    assert!(!scope.contains("admin:users"));
    let principal = backend
        .principal_of(tokens["access_token"].as_str().unwrap())
        .await;
    assert_eq!(principal.subject, user_id);
    assert!(principal.has(Permission::AnalysisWrite));

    // Form login.
    let form = backend
        .signed(
            "POST",
            "/auth/login",
            Some(&anonymous()),
            Some("application/x-www-form-urlencoded"),
            format!("username=ana&password={}", PASSWORD.replace('!', "%21")).into_bytes(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);

    // Wrong password and unknown user look the same.
    let wrong = backend.login("ana", "Sturdy-Mug-2026?", None).await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(problem_code(wrong).await, "INVALID_CREDENTIALS");
    let unknown = backend.login("nobody", PASSWORD, None).await;
    assert_eq!(problem_code(unknown).await, "INVALID_CREDENTIALS");
    // Unknown field and wrong media type.
    let extra = backend
        .json(
            "POST",
            "/auth/login",
            Some(&anonymous()),
            json!({"username": "ana", "password": PASSWORD, "admin": true}),
        )
        .await;
    assert_eq!(extra.status(), 422);
    assert_eq!(problem_code(extra).await, "UNKNOWN_FIELD");
    let text = backend
        .signed(
            "POST",
            "/auth/login",
            Some(&anonymous()),
            Some("text/plain"),
            b"ana".to_vec(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 415);

    // Refresh rotates; the spent token presented again revokes the family.
    let first_refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let rotated = backend
        .json(
            "POST",
            "/auth/refresh",
            Some(&anonymous()),
            json!({ "refresh_token": first_refresh }),
        )
        .await;
    assert_eq!(rotated.status(), 200);
    let rotated: serde_json::Value = rotated.json().await.unwrap();
    let second_refresh = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, first_refresh);
    let reuse = backend
        .json(
            "POST",
            "/auth/refresh",
            Some(&anonymous()),
            json!({ "refresh_token": first_refresh }),
        )
        .await;
    assert_eq!(reuse.status(), 401);
    assert_eq!(problem_code(reuse).await, "REFRESH_TOKEN_REUSED");
    let after_reuse = backend
        .json(
            "POST",
            "/auth/refresh",
            Some(&anonymous()),
            json!({ "refresh_token": second_refresh }),
        )
        .await;
    assert_eq!(
        problem_code(after_reuse).await,
        "INVALID_TOKEN",
        "the whole family is revoked"
    );
    // An access token is not a refresh token.
    let wrong_kind = backend
        .json(
            "POST",
            "/auth/refresh",
            Some(&anonymous()),
            json!({ "refresh_token": tokens["access_token"] }),
        )
        .await;
    assert_eq!(problem_code(wrong_kind).await, "INVALID_TOKEN");
    // Refresh token as Bearer works too.
    let (_, _, refresh) = backend.session("ana", PASSWORD).await;
    let bearer = backend
        .signed(
            "POST",
            "/auth/refresh",
            Some(&anonymous()),
            None,
            Vec::new(),
        )
        .header("authorization", format!("Bearer {refresh}"))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);

    // Logout deny-lists the access token: the backend refuses it and the edge feed lists it.
    let (session, _, _) = backend.session("ana", PASSWORD).await;
    let logout = backend
        .signed("POST", "/auth/logout", Some(&session), None, Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    let after = backend.get("/auth/api-keys", Some(&session)).await;
    assert_eq!(after.status(), 401);
    assert_eq!(problem_code(after).await, "REVOKED_TOKEN");
    let feed: serde_json::Value = backend
        .get("/internal/v1/revocations?since_ms=0", None)
        .await
        .json()
        .await
        .unwrap();
    let revoked: Vec<&str> = feed["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["jti"].as_str().unwrap())
        .collect();
    assert!(revoked.contains(&session.token_id.as_deref().unwrap()));

    // Login events are audited with the client address.
    let store = backend.db.store().await;
    let failures = store
        .query_audit(&gpu_backend::store::audit::AuditFilter {
            event_type: Some("login_failure".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(failures.len(), 2);
    assert!(
        failures
            .iter()
            .all(|e| e.event.ip.as_deref() == Some("198.51.100.7"))
    );
}
on_both_stores!(login, login_refresh_logout);

async fn mfa_with_totp(kind: Backend) {
    let backend = TestBackend::start(kind).await;
    backend.add_user("mo", PASSWORD, &["viewer"]).await;
    let (session, _, _) = backend.session("mo", PASSWORD).await;
    let setup: serde_json::Value = backend
        .signed("POST", "/auth/mfa/setup", Some(&session), None, Vec::new())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = shared::totp::base32_decode(setup["secret"].as_str().unwrap()).unwrap();
    assert!(
        setup["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/H200:mo?")
    );

    let live: Vec<String> = [now_secs() - 30, now_secs(), now_secs() + 30]
        .iter()
        .map(|&t| shared::totp::current_code(&secret, t))
        .collect();
    let wrong_code = ["000000", "111111", "222222", "333333"]
        .into_iter()
        .find(|c| !live.iter().any(|l| l == c))
        .unwrap();
    let wrong = backend
        .json(
            "POST",
            "/auth/mfa/verify",
            Some(&session),
            json!({ "code": wrong_code }),
        )
        .await;
    assert_eq!(problem_code(wrong).await, "INVALID_MFA_CODE");
    let code = shared::totp::current_code(&secret, now_secs());
    let verified = backend
        .json(
            "POST",
            "/auth/mfa/verify",
            Some(&session),
            json!({ "code": code }),
        )
        .await;
    assert_eq!(verified.status(), 200);

    let missing = backend.login("mo", PASSWORD, None).await;
    assert_eq!(problem_code(missing).await, "MFA_REQUIRED");
    let reused = backend.login("mo", PASSWORD, Some(&code)).await;
    assert_eq!(
        problem_code(reused).await,
        "INVALID_MFA_CODE",
        "a used code never works twice"
    );
    let bad = backend.login("mo", PASSWORD, Some("12345x")).await;
    assert_eq!(
        bad.status(),
        422,
        "malformed codes are refused by validation"
    );
    let next = shared::totp::current_code(&secret, now_secs() + 30);
    let ok = backend.login("mo", PASSWORD, Some(&next)).await;
    assert_eq!(ok.status(), 200);
    let tokens: serde_json::Value = ok.json().await.unwrap();
    assert!(tokens["access_token"].is_string());
    let again = backend
        .signed("POST", "/auth/mfa/setup", Some(&session), None, Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(problem_code(again).await, "CONFLICT");
}
on_both_stores!(mfa, mfa_with_totp);

async fn api_keys_lifecycle(kind: Backend) {
    let backend = TestBackend::start(kind).await;
    let owner = backend.add_user("svc", PASSWORD, &["service"]).await;
    backend.add_user("eve", PASSWORD, &["admin"]).await;
    let (session, _, _) = backend.session("svc", PASSWORD).await;
    let created = backend
        .json(
            "POST",
            "/auth/api-keys",
            Some(&session),
            json!({ "name": "ci", "expires_in_days": 30 }),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created: serde_json::Value = created.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("ncs_") && key.len() == 36, "{key}");
    let key_id = created["id"].as_str().unwrap().to_owned();

    let listed: serde_json::Value = backend
        .get("/auth/api-keys", Some(&session))
        .await
        .json()
        .await
        .unwrap();
    let listed_text = listed.to_string();
    assert!(!listed_text.contains(&key), "a listing never shows the key");
    assert_eq!(listed["keys"].as_array().unwrap().len(), 1);

    // The edge's lookup by digest.
    let digest = shared::api_key::ApiKey::parse(&key).unwrap().digest();
    let grant: serde_json::Value = backend
        .get(&format!("/internal/v1/api-keys/{}", digest.as_str()), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(grant["subject"], owner);
    assert_eq!(grant["revoked"], false);
    assert!(
        grant["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "clusters:write")
    );

    // Someone else cannot revoke it; the owner can, and then the key is refused.
    let (other, _, _) = {
        backend.add_user("mal", PASSWORD, &["user"]).await;
        backend.session("mal", PASSWORD).await
    };
    let foreign = backend
        .signed(
            "DELETE",
            &format!("/auth/api-keys/{key_id}"),
            Some(&other),
            None,
            Vec::new(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 404);
    let revoked = backend
        .signed(
            "DELETE",
            &format!("/auth/api-keys/{key_id}"),
            Some(&session),
            None,
            Vec::new(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let grant: serde_json::Value = backend
        .get(&format!("/internal/v1/api-keys/{}", digest.as_str()), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(grant["revoked"], true);
    let mut key_principal = anonymous();
    key_principal.subject = owner.clone();
    key_principal.kind = PrincipalKind::ApiKey;
    key_principal.permissions =
        shared::permissions::RoleSet::default().permissions_of(&["service"]);
    key_principal.token_id = Some(key_id.clone());
    let refused = backend.get("/api/v1/me/export", Some(&key_principal)).await;
    assert_eq!(problem_code(refused).await, "REVOKED_API_KEY");

    // Admins see every key; others may not ask for that.
    let (admin, _, _) = backend.session("eve", PASSWORD).await;
    let all: serde_json::Value = backend
        .get("/auth/api-keys?all=true", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["keys"].as_array().unwrap().len(), 1);
    let not_admin = backend.get("/auth/api-keys?all=true", Some(&session)).await;
    assert_eq!(not_admin.status(), 403);
    let unknown = backend
        .get(&format!("/internal/v1/api-keys/{}", "0".repeat(64)), None)
        .await;
    assert_eq!(unknown.status(), 404);
}
on_both_stores!(api_keys, api_keys_lifecycle);

async fn audit_ingest_admin_and_gdpr(kind: Backend) {
    let backend = TestBackend::start(kind).await;
    backend.add_user("root", PASSWORD, &["admin"]).await;
    let user_id = backend.add_user("gina", PASSWORD, &["viewer"]).await;
    let (admin, _, _) = backend.session("root", PASSWORD).await;
    let (gina, _, _) = backend.session("gina", PASSWORD).await;

    // Edge audit ingest, redelivered once.
    let mut event = AuditEvent::new(
        AuditEventType::RateLimited,
        AuditSource::Edge,
        1_700_000_000_000,
        [9; 10],
    );
    event.ip = Some("203.0.113.5".into());
    event.principal = Some(user_id.clone());
    let batch = AuditBatch {
        events: vec![event.clone(), event.clone()],
    };
    let ingested: serde_json::Value = backend
        .signed(
            "POST",
            "/internal/v1/audit",
            None,
            Some("application/json"),
            serde_json::to_vec(&batch).unwrap(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ingested, json!({ "inserted": 1, "duplicates": 1 }));
    // Internal routes refuse a principal (they are never called on a user's behalf).
    let with_principal = backend
        .signed(
            "POST",
            "/internal/v1/audit",
            Some(&admin),
            Some("application/json"),
            serde_json::to_vec(&batch).unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(with_principal.status(), 403);

    let by_ip: serde_json::Value = backend
        .get("/api/v1/admin/audit?ip=203.0.113.5", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_ip["events"].as_array().unwrap().len(), 1);
    assert_eq!(by_ip["events"][0]["event_type"], "rate_limited");
    let window: serde_json::Value = backend
        .get(
            "/api/v1/admin/audit?from=1600000000000&to=1700000000000",
            Some(&admin),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        window["events"].as_array().unwrap().is_empty(),
        "`to` is exclusive"
    );
    let bad_type = backend
        .get("/api/v1/admin/audit?type=nonsense", Some(&admin))
        .await;
    assert_eq!(problem_code(bad_type).await, "VALIDATION_FAILED");
    let forbidden = backend.get("/api/v1/admin/audit", Some(&gina)).await;
    assert_eq!(forbidden.status(), 403);

    let users: serde_json::Value = backend
        .get("/api/v1/admin/users?limit=10", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["root", "gina"]);

    // Export, then erasure: the account goes, the audit trail stays without the person.
    let export: serde_json::Value = backend
        .get("/api/v1/me/export", Some(&gina))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(export["user"]["username"], "gina");
    assert!(!export["audit_events"].as_array().unwrap().is_empty());
    let erased = backend
        .signed("DELETE", "/api/v1/me", Some(&gina), None, Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status(), 204);
    assert_eq!(
        problem_code(backend.login("gina", PASSWORD, None).await).await,
        "INVALID_CREDENTIALS"
    );
    let trail: serde_json::Value = backend
        .get(
            &format!("/api/v1/admin/audit?principal={user_id}&limit=100"),
            Some(&admin),
        )
        .await
        .json()
        .await
        .unwrap();
    let trail_text = trail.to_string();
    assert!(trail["events"].as_array().unwrap().len() >= 3);
    assert!(!trail_text.contains("gina"), "the trail names no one");
    let store = backend.db.store().await;
    assert!(store.verify_audit_chain().await.unwrap() >= 5);

    // Metrics need metrics:read.
    let metrics = backend.get("/metrics", Some(&admin)).await;
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("h200_logins_total{outcome=\"success\"}"),
        "{text}"
    );
    assert!(
        text.contains("h200_audit_events_duplicate_total 1"),
        "{text}"
    );
    assert_eq!(
        backend.get("/metrics", Some(&anonymous())).await.status(),
        401
    );
}
on_both_stores!(admin, audit_ingest_admin_and_gdpr);

async fn key_rotation_keeps_old_tokens_valid(kind: Backend) {
    let backend = TestBackend::start(kind).await;
    backend.add_user("rita", PASSWORD, &["viewer"]).await;
    let (_, old_access, old_refresh) = backend.session("rita", PASSWORD).await;
    let (db, data_dir) = backend.stop().await;
    gpu_backend::keys::rotate_key_files(&data_dir, false, false).unwrap();
    let backend = TestBackend::start_with(db, data_dir).await;
    let jwks: serde_json::Value = backend
        .client
        .get(backend.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        jwks["keys"].as_array().unwrap().len(),
        2,
        "old and new key are both published"
    );
    // The old token still verifies, and refreshing gives a token under the new key.
    backend.principal_of(&old_access).await;
    let refreshed = backend
        .json(
            "POST",
            "/auth/refresh",
            Some(&anonymous()),
            json!({ "refresh_token": old_refresh }),
        )
        .await;
    let status = refreshed.status();
    let refreshed: serde_json::Value = refreshed.json().await.unwrap();
    assert_eq!(status, 200, "refresh after the rotation: {refreshed}");
    let new_access = refreshed["access_token"].as_str().unwrap();
    let kid_of = |token: &str| {
        use base64::Engine;
        let header = token.split('.').next().unwrap();
        let header: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(header)
                .unwrap(),
        )
        .unwrap();
        header["kid"].as_str().unwrap().to_owned()
    };
    assert_ne!(kid_of(new_access), kid_of(&old_access));
}
on_both_stores!(rotation, key_rotation_keeps_old_tokens_valid);

async fn password_policy_and_history(kind: Backend) {
    let backend = TestBackend::start(kind).await;
    backend.add_user("pat", PASSWORD, &["viewer"]).await;
    let (session, _, refresh) = backend.session("pat", PASSWORD).await;
    let change =
        |current: &str, new: &str| json!({ "current_password": current, "new_password": new });

    let weak = backend
        .json(
            "POST",
            "/auth/password",
            Some(&session),
            change(PASSWORD, "short1!A"),
        )
        .await;
    assert_eq!(problem_code(weak).await, "WEAK_PASSWORD");
    let no_symbol = backend
        .json(
            "POST",
            "/auth/password",
            Some(&session),
            change(PASSWORD, "NoSymbolsHere123"),
        )
        .await;
    assert_eq!(problem_code(no_symbol).await, "WEAK_PASSWORD");
    let wrong_current = backend
        .json(
            "POST",
            "/auth/password",
            Some(&session),
            change("Not-The-Password-1", "Brand-New-Pass-1"),
        )
        .await;
    assert_eq!(problem_code(wrong_current).await, "INVALID_CREDENTIALS");

    let mut current = PASSWORD.to_owned();
    for i in 1..=5 {
        let next = format!("Rotating-Pass-{i}!");
        let ok = backend
            .json(
                "POST",
                "/auth/password",
                Some(&session),
                change(&current, &next),
            )
            .await;
        assert_eq!(ok.status(), 204, "change {i}");
        current = next;
    }
    // The original is now six back: allowed again. One of the last five is not.
    let recent = backend
        .json(
            "POST",
            "/auth/password",
            Some(&session),
            change(&current, "Rotating-Pass-2!"),
        )
        .await;
    assert_eq!(problem_code(recent).await, "PASSWORD_REUSED");
    let same = backend
        .json(
            "POST",
            "/auth/password",
            Some(&session),
            change(&current, &current),
        )
        .await;
    assert_eq!(problem_code(same).await, "PASSWORD_REUSED");
    let original = backend
        .json(
            "POST",
            "/auth/password",
            Some(&session),
            change(&current, PASSWORD),
        )
        .await;
    assert_eq!(original.status(), 204);
    assert_eq!(backend.login("pat", PASSWORD, None).await.status(), 200);
    // Changing the password ended the old sessions' refresh families.
    let old = backend
        .json(
            "POST",
            "/auth/refresh",
            Some(&anonymous()),
            json!({ "refresh_token": refresh }),
        )
        .await;
    assert_eq!(problem_code(old).await, "INVALID_TOKEN");
}
on_both_stores!(password, password_policy_and_history);
