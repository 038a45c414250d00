//! Accounts over real HTTP on SQLite and Postgres: the caller's own record (`GET /auth/me`,
//! `PATCH /api/v1/me`, the versioned export), sessions (`/auth/sessions`), and the lifecycle an
//! administrator drives (`/api/v1/admin/users/…`): a created or reset account must change its
//! password before anything else, and disabling, a change of roles, a reset, ending the sessions
//! and deleting end every credential of the account at once. No answer is a 5xx.

mod common;

use common::Backend;
use common::backend::{TestBackend, anonymous};
use serde_json::{Value, json};
use shared::permissions::{Principal, PrincipalKind, RoleSet};

const PASSWORD: &str = "Sturdy-Mug-2026!";
const NEW_PASSWORD: &str = "Another-Mug-2027?";

/// `status` and `code` of a refusal: problem+json, never a 5xx.
async fn refused(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    assert!(status < 500, "a refusal is never a 5xx: {status}");
    let body: Value = response.json().await.unwrap();
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

async fn ok_json(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    body
}

async fn admin(backend: &TestBackend) -> Principal {
    backend.add_user("root", PASSWORD, &["admin"]).await;
    backend.session("root", PASSWORD).await.0
}

async fn send(
    backend: &TestBackend,
    method: &str,
    path: &str,
    principal: &Principal,
    body: Option<Value>,
) -> reqwest::Response {
    match body {
        Some(body) => backend.json(method, path, Some(principal), body).await,
        None => backend
            .signed(method, path, Some(principal), None, Vec::new())
            .send()
            .await
            .unwrap(),
    }
}

/// A whole second after now: a token issued then is not within the second of a revocation's
/// cut-off (a `sub` entry refuses tokens issued within its second).
async fn next_second() {
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
}

async fn me_and_rectification(kind: Backend) {
    let backend = TestBackend::start(kind).await;
    backend.add_user("ana", PASSWORD, &["analyst"]).await;
    let (ana, _, _) = backend.session("ana", PASSWORD).await;

    let me = ok_json(backend.get("/auth/me", Some(&ana)).await, 200).await;
    assert_eq!(me["username"], "ana");
    assert_eq!(me["roles"], json!(["analyst"]));
    let permissions: Vec<&str> = me["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(permissions.contains(&"analysis:write"), "{me}");
    assert!(!permissions.contains(&"admin:users"), "{me}");
    assert_eq!(me["mfa_enabled"], false);
    assert_eq!(me["password_change_required"], false);
    assert_eq!(me["email"], Value::Null);

    let patched = ok_json(
        backend
            .json(
                "PATCH",
                "/api/v1/me",
                Some(&ana),
                json!({ "email": "Ana@Example.com" }),
            )
            .await,
        200,
    )
    .await;
    assert_eq!(patched["email"], "Ana@Example.com");
    // The rectified address logs in (through the blind index).
    let by_email = backend.login("ana@example.com", PASSWORD, None).await;
    assert_eq!(by_email.status(), 200);
    for bad in [
        json!({}),
        json!({ "email": "nope" }),
        json!({ "roles": ["admin"] }),
    ] {
        let (status, code) =
            refused(backend.json("PATCH", "/api/v1/me", Some(&ana), bad).await).await;
        assert_eq!(status, 422, "{code}");
    }

    let export = ok_json(backend.get("/api/v1/me/export", Some(&ana)).await, 200).await;
    assert_eq!(export["format"], "h200.personal-data");
    assert_eq!(export["version"], 1);
    assert_eq!(export["user"]["email"], "Ana@Example.com");
    assert!(export["exported_at_ms"].as_i64().unwrap() > 0);
    assert_eq!(export["sessions"].as_array().unwrap().len(), 2, "{export}");

    let removed = ok_json(
        backend
            .json("PATCH", "/api/v1/me", Some(&ana), json!({ "email": null }))
            .await,
        200,
    )
    .await;
    assert_eq!(removed["email"], Value::Null);
    assert_eq!(
        backend
            .login("ana@example.com", PASSWORD, None)
            .await
            .status(),
        401
    );
}
on_both_stores!(me_and_rectification_over_http, me_and_rectification);

async fn created_account_must_change_its_password(kind: Backend) {
    let backend = TestBackend::start(kind).await;
    let root = admin(&backend).await;
    let created = ok_json(
        send(
            &backend,
            "POST",
            "/api/v1/admin/users",
            &root,
            Some(json!({ "username": "bo", "roles": ["manager"], "email": "bo@example.com" })),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(created["password_change_required"], true);
    assert_eq!(created["email"], "bo@example.com");
    let temporary = created["temporary_password"].as_str().unwrap().to_owned();

    for (body, status) in [
        (json!({ "username": "bo", "roles": ["manager"] }), 409),
        (json!({ "username": "cy", "roles": ["no-such-role"] }), 422),
        (
            json!({ "username": "cy", "roles": ["viewer"], "password": "short" }),
            422,
        ),
        (json!({ "username": "c y", "roles": ["viewer"] }), 422),
    ] {
        let (got, code) = refused(
            send(
                &backend,
                "POST",
                "/api/v1/admin/users",
                &root,
                Some(body.clone()),
            )
            .await,
        )
        .await;
        assert_eq!(got, status, "{body}: {code}");
    }
    // The listing shows the account; a user without admin:users may not create one.
    let users = ok_json(backend.get("/api/v1/admin/users", Some(&root)).await, 200).await;
    assert!(
        users["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["username"] == "bo"),
        "{users}"
    );

    let login: Value = ok_json(backend.login("bo", &temporary, None).await, 200).await;
    assert_eq!(login["password_change_required"], true);
    let restricted = backend
        .principal_of(login["access_token"].as_str().unwrap())
        .await;
    let (status, code) = refused(backend.get("/api/v1/rules", Some(&restricted)).await).await;
    assert_eq!((status, code.as_str()), (403, "INSUFFICIENT_PERMISSIONS"));
    let (status, _) = refused(
        send(
            &backend,
            "POST",
            "/auth/api-keys",
            &restricted,
            Some(json!({ "name": "escape" })),
        )
        .await,
    )
    .await;
    assert_eq!(status, 403, "a restricted token makes no API key");
    let me = ok_json(backend.get("/auth/me", Some(&restricted)).await, 200).await;
    assert_eq!(me["password_change_required"], true);
    assert_eq!(me["roles"], json!(["manager"]));
    let (status, _) = refused(
        send(
            &backend,
            "POST",
            "/api/v1/admin/users",
            &restricted,
            Some(json!({ "username": "dee", "roles": ["admin"] })),
        )
        .await,
    )
    .await;
    assert_eq!(status, 403);

    let changed = backend
        .json(
            "POST",
            "/auth/password",
            Some(&restricted),
            json!({ "current_password": temporary, "new_password": NEW_PASSWORD }),
        )
        .await;
    assert_eq!(changed.status(), 204);
    let (full, _, _) = backend.session("bo", NEW_PASSWORD).await;
    assert_eq!(full.roles, vec!["manager".to_owned()]);
    assert_eq!(
        backend.get("/api/v1/rules", Some(&full)).await.status(),
        200
    );
    let (status, _) = refused(
        send(
            &backend,
            "POST",
            "/api/v1/admin/users",
            &full,
            Some(json!({ "username": "dee", "roles": ["admin"] })),
        )
        .await,
    )
    .await;
    assert_eq!(status, 403, "a manager has no admin:users");
}
on_both_stores!(
    created_account_must_change_its_password_over_http,
    created_account_must_change_its_password
);

/// An API-key principal of `owner`, as the edge makes it from a key grant.
fn key_principal(owner: &Principal, key_id: &str) -> Principal {
    let mut principal = anonymous();
    principal.subject = owner.subject.clone();
    principal.kind = PrincipalKind::ApiKey;
    principal.roles = owner.roles.clone();
    principal.permissions = RoleSet::default().permissions_of(&principal.roles);
    principal.token_id = Some(key_id.to_owned());
    principal
}

async fn disabling_ends_every_credential(kind: Backend) {
    let backend = TestBackend::start(kind).await;
    let root = admin(&backend).await;
    let id = backend.add_user("cy", PASSWORD, &["manager"]).await;
    let (first, _, _) = backend.session("cy", PASSWORD).await;
    let (second, _, refresh) = backend.session("cy", PASSWORD).await;
    let key = ok_json(
        backend
            .json(
                "POST",
                "/auth/api-keys",
                Some(&first),
                json!({ "name": "ci" }),
            )
            .await,
        201,
    )
    .await;
    let by_key = key_principal(&first, key["id"].as_str().unwrap());
    assert_eq!(
        backend.get("/api/v1/rules", Some(&by_key)).await.status(),
        200
    );

    let path = format!("/api/v1/admin/users/{id}");
    let disabled = ok_json(
        send(
            &backend,
            "PATCH",
            &path,
            &root,
            Some(json!({ "disabled": true })),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(disabled["disabled"], true);

    for principal in [&first, &second] {
        let (status, code) = refused(backend.get("/api/v1/rules", Some(principal)).await).await;
        assert_eq!((status, code.as_str()), (401, "REVOKED_TOKEN"));
        let (status, code) = refused(
            backend
                .json(
                    "POST",
                    "/api/v1/rules",
                    Some(principal),
                    json!({
                        "name": "after disabling",
                        "conditions": [{ "field": "mug_count", "operator": ">", "value": 2 }],
                        "actions": [{ "action": "reject", "message": "too many mugs" }],
                    }),
                )
                .await,
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (401, "REVOKED_TOKEN"),
            "no write lands"
        );
    }
    let (status, code) = refused(backend.get("/api/v1/rules", Some(&by_key)).await).await;
    assert_eq!((status, code.as_str()), (401, "REVOKED_API_KEY"));
    let (status, code) = refused(
        backend
            .json(
                "POST",
                "/auth/refresh",
                Some(&anonymous()),
                json!({ "refresh_token": refresh }),
            )
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (401, "REVOKED_TOKEN"));
    let (status, code) = refused(backend.login("cy", PASSWORD, None).await).await;
    assert_eq!((status, code.as_str()), (401, "INVALID_CREDENTIALS"));
    let rules: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rules WHERE owner = $1")
        .bind(&id)
        .fetch_one(backend.db.store().await.pool())
        .await
        .unwrap();
    assert_eq!(rules, 0);

    // An administrator cannot lock themselves out; an unknown account is 404.
    let (status, _) = refused(
        send(
            &backend,
            "PATCH",
            &format!("/api/v1/admin/users/{}", root.subject),
            &root,
            Some(json!({ "disabled": true })),
        )
        .await,
    )
    .await;
    assert_eq!(status, 409);
    let (status, _) = refused(
        send(
            &backend,
            "PATCH",
            "/api/v1/admin/users/no-such-user",
            &root,
            Some(json!({ "disabled": true })),
        )
        .await,
    )
    .await;
    assert_eq!(status, 404);

    // Enabled again, the account logs in; its old credentials stay ended.
    let enabled = ok_json(
        send(
            &backend,
            "PATCH",
            &path,
            &root,
            Some(json!({ "disabled": false })),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(enabled["disabled"], false);
    next_second().await;
    let (again, _, _) = backend.session("cy", PASSWORD).await;
    assert_eq!(
        backend.get("/api/v1/rules", Some(&again)).await.status(),
        200
    );
    assert_eq!(
        refused(backend.get("/api/v1/rules", Some(&first)).await)
            .await
            .0,
        401
    );
    assert_eq!(
        refused(backend.get("/api/v1/rules", Some(&by_key)).await)
            .await
            .0,
        401
    );
}
on_both_stores!(
    disabling_ends_every_credential_over_http,
    disabling_ends_every_credential
);

async fn roles_reset_and_deletion(kind: Backend) {
    let backend = TestBackend::start(kind).await;
    let root = admin(&backend).await;
    let id = backend.add_user("dee", PASSWORD, &["manager"]).await;
    let path = format!("/api/v1/admin/users/{id}");
    let (before, _, _) = backend.session("dee", PASSWORD).await;

    let changed = ok_json(
        send(
            &backend,
            "PATCH",
            &path,
            &root,
            Some(json!({ "roles": ["viewer"] })),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(changed["roles"], json!(["viewer"]));
    assert_eq!(
        refused(backend.get("/api/v1/rules", Some(&before)).await).await,
        (401, "REVOKED_TOKEN".to_owned()),
        "a token carrying the old roles is refused"
    );
    next_second().await;
    let (viewer, _, _) = backend.session("dee", PASSWORD).await;
    assert_eq!(viewer.roles, vec!["viewer".to_owned()]);

    let reset = ok_json(
        send(
            &backend,
            "POST",
            &format!("{path}/password-reset"),
            &root,
            None,
        )
        .await,
        200,
    )
    .await;
    let temporary = reset["temporary_password"].as_str().unwrap().to_owned();
    assert_eq!(
        refused(backend.get("/api/v1/rules", Some(&viewer)).await)
            .await
            .0,
        401
    );
    assert_eq!(
        refused(backend.login("dee", PASSWORD, None).await).await.0,
        401
    );
    next_second().await;
    let login = ok_json(backend.login("dee", &temporary, None).await, 200).await;
    assert_eq!(login["password_change_required"], true);

    let deleted = send(&backend, "DELETE", &path, &root, None).await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        refused(send(&backend, "DELETE", &path, &root, None).await)
            .await
            .0,
        404
    );
    assert_eq!(
        refused(
            send(
                &backend,
                "POST",
                &format!("{path}/password-reset"),
                &root,
                None
            )
            .await
        )
        .await
        .0,
        404
    );
    assert_eq!(
        refused(backend.login("dee", &temporary, None).await)
            .await
            .0,
        401
    );
    let audit = ok_json(
        backend
            .get("/api/v1/admin/audit?type=admin_action", Some(&root))
            .await,
        200,
    )
    .await;
    let details: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["principal"] == json!(root.subject))
        .filter_map(|e| e["detail"].as_str())
        .collect();
    for expected in ["roles set to viewer", "password reset", "erased"] {
        assert!(
            details.iter().any(|d| d.contains(expected)),
            "{expected} in {details:?}"
        );
    }
}
on_both_stores!(roles_reset_and_deletion_over_http, roles_reset_and_deletion);

async fn sessions_listed_and_ended(kind: Backend) {
    let backend = TestBackend::start(kind).await;
    let root = admin(&backend).await;
    let id = backend.add_user("eve", PASSWORD, &["analyst"]).await;
    let mut refresh_tokens = Vec::new();
    for agent in ["phone/1.0", "laptop/2.0"] {
        let response = backend
            .signed(
                "POST",
                "/auth/login",
                Some(&anonymous()),
                Some("application/json"),
                serde_json::to_vec(&json!({ "username": "eve", "password": PASSWORD })).unwrap(),
            )
            .header("user-agent", agent)
            .send()
            .await
            .unwrap();
        let body = ok_json(response, 200).await;
        refresh_tokens.push(body["refresh_token"].as_str().unwrap().to_owned());
    }
    let (eve, _, _) = backend.session("eve", PASSWORD).await;
    let listed = ok_json(backend.get("/auth/sessions", Some(&eve)).await, 200).await;
    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3, "{listed}");
    let laptop = sessions
        .iter()
        .find(|s| s["user_agent"] == "laptop/2.0")
        .expect("the laptop's session");
    assert_eq!(laptop["ip"], "198.51.100.7");
    assert!(laptop["last_used_at_ms"].as_i64() >= laptop["created_at_ms"].as_i64());

    // Ending the laptop's session refuses its refresh token; the phone's still rotates.
    let laptop_id = laptop["id"].as_str().unwrap();
    let ended = send(
        &backend,
        "DELETE",
        &format!("/auth/sessions/{laptop_id}"),
        &eve,
        None,
    )
    .await;
    assert_eq!(ended.status(), 204);
    let again = send(
        &backend,
        "DELETE",
        &format!("/auth/sessions/{laptop_id}"),
        &eve,
        None,
    )
    .await;
    assert_eq!(refused(again).await.0, 404);
    let anonymous = anonymous();
    let refresh = |token: &str| {
        backend.json(
            "POST",
            "/auth/refresh",
            Some(&anonymous),
            json!({ "refresh_token": token }),
        )
    };
    assert_eq!(refused(refresh(&refresh_tokens[1]).await).await.0, 401);
    assert_eq!(refresh(&refresh_tokens[0]).await.status(), 200);
    let listed = ok_json(backend.get("/auth/sessions", Some(&eve)).await, 200).await;
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 2, "{listed}");

    // Another user cannot end eve's session; an administrator sees and ends them all.
    backend.add_user("fay", PASSWORD, &["analyst"]).await;
    let (fay, _, _) = backend.session("fay", PASSWORD).await;
    let live_id = listed["sessions"][0]["id"].as_str().unwrap().to_owned();
    let foreign = send(
        &backend,
        "DELETE",
        &format!("/auth/sessions/{live_id}"),
        &fay,
        None,
    )
    .await;
    assert_eq!(refused(foreign).await.0, 404);
    let of_eve = ok_json(
        backend
            .get(&format!("/api/v1/admin/users/{id}/sessions"), Some(&root))
            .await,
        200,
    )
    .await;
    assert_eq!(of_eve["sessions"].as_array().unwrap().len(), 2);
    let ended = send(
        &backend,
        "DELETE",
        &format!("/api/v1/admin/users/{id}/sessions"),
        &root,
        None,
    )
    .await;
    assert_eq!(ended.status(), 204);
    assert_eq!(
        refused(backend.get("/auth/sessions", Some(&eve)).await).await,
        (401, "REVOKED_TOKEN".to_owned())
    );
    let of_eve = ok_json(
        backend
            .get(&format!("/api/v1/admin/users/{id}/sessions"), Some(&root))
            .await,
        200,
    )
    .await;
    assert_eq!(of_eve["sessions"], json!([]));
}
on_both_stores!(
    sessions_listed_and_ended_over_http,
    sessions_listed_and_ended
);

/// The claims of a JWT, unverified (the backend issued it; only its times are read).
fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn token_lifetimes_are_configurable(kind: Backend) {
    let backend = TestBackend::start_configured(kind, |config| {
        config.access_token_ttl_secs = 8 * 3600;
        config.refresh_token_ttl_secs = 7 * 86_400;
    })
    .await;
    backend.add_user("gus", PASSWORD, &["viewer"]).await;
    let login = ok_json(backend.login("gus", PASSWORD, None).await, 200).await;
    assert_eq!(login["expires_in"], 8 * 3600);
    for (field, lifetime) in [("access_token", 8 * 3600), ("refresh_token", 7 * 86_400)] {
        let claims = claims_of(login[field].as_str().unwrap());
        let lived = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
        assert_eq!(lived, lifetime, "{field}: {claims}");
    }
}
on_both_stores!(
    token_lifetimes_are_configurable_over_http,
    token_lifetimes_are_configurable
);
