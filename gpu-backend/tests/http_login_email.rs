//! Login by email on SQLite and Postgres: the sealed email is found through its blind index
//! (filled at start for users who had none), by form or JSON, in any letter case; an unknown
//! address answers like a wrong password, in about the same time.

mod common;

use std::time::{Duration, Instant};

use common::Backend;
use common::backend::{TestBackend, anonymous, problem_code};
use gpu_backend::keys::{BackendKeys, KeyOverrides};

const PASSWORD: &str = "Sturdy-Mug-2026!";

async fn form_login(backend: &TestBackend, name: &str, password: &str) -> reqwest::Response {
    let body = format!(
        "username={}&password={}",
        name.replace('@', "%40"),
        password.replace('!', "%21")
    );
    backend
        .signed(
            "POST",
            "/auth/login",
            Some(&anonymous()),
            Some("application/x-www-form-urlencoded"),
            body.into_bytes(),
        )
        .send()
        .await
        .unwrap()
}

/// The median time of three logins.
async fn login_time(backend: &TestBackend, name: &str, password: &str) -> Duration {
    let mut times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let response = backend.login(name, password, None).await;
        assert_eq!(response.status(), 401);
        times.push(started.elapsed());
    }
    times.sort();
    times[1]
}

async fn login_by_email(kind: Backend) {
    let backend = TestBackend::start(kind).await;
    let ana = backend.add_user("ana", PASSWORD, &["user"]).await;
    // The email is sealed as `h200 user add --email` seals it, but left without its index, as
    // rows written before the index existed are.
    let (keys, _) = BackendKeys::load_or_generate(
        &backend.data_dir,
        &KeyOverrides {
            edge_keys: None,
            seal_keys: None,
        },
        0,
    )
    .unwrap();
    let sealed = keys
        .seal
        .seal(
            &gpu_backend::http::admin::email_context(&ana),
            b"Ana.Lopez@Example.com",
        )
        .unwrap();
    let store = backend.db.store().await;
    store
        .update_sealed_fields(&ana, Some(&sealed), None)
        .await
        .unwrap();
    assert_eq!(
        problem_code(backend.login("ana.lopez@example.com", PASSWORD, None).await).await,
        "INVALID_CREDENTIALS",
        "not indexed yet"
    );

    // A restart files it under the blind index; the address itself is nowhere in the row.
    let (db, data_dir) = backend.stop().await;
    let backend = TestBackend::start_with(db, data_dir).await;
    let store = backend.db.store().await;
    let row = store
        .users_to_index(keys.seal.current_version())
        .await
        .unwrap();
    assert!(
        row.is_empty(),
        "every sealed email is indexed after the start"
    );
    for name in ["ana.lopez@example.com", " ANA.LOPEZ@example.COM"] {
        let response = backend.login(name.trim(), PASSWORD, None).await;
        assert_eq!(response.status(), 200, "JSON login as {name}");
    }
    let by_form = form_login(&backend, "ana.lopez@example.com", PASSWORD).await;
    assert_eq!(by_form.status(), 200);
    let token: serde_json::Value = by_form.json().await.unwrap();
    let principal = backend
        .principal_of(token["access_token"].as_str().unwrap())
        .await;
    assert_eq!(principal.subject, ana, "the email names ana's account");
    assert_eq!(backend.login("ana", PASSWORD, None).await.status(), 200);

    // Wrong password and unknown address: the same answer.
    for (name, password) in [
        ("ana.lopez@example.com", "Wrong-Password-99!"),
        ("nobody@example.com", PASSWORD),
    ] {
        let response = backend.login(name, password, None).await;
        assert_eq!(
            problem_code(response).await,
            "INVALID_CREDENTIALS",
            "{name}"
        );
    }
    // ... in about the same time: both verify a password hash.
    let wrong = login_time(&backend, "ana.lopez@example.com", "Wrong-Password-99!").await;
    let unknown = login_time(&backend, "nobody@example.com", PASSWORD).await;
    assert!(
        unknown * 2 >= wrong && wrong * 2 >= unknown,
        "unknown {unknown:?} vs wrong password {wrong:?}"
    );
}
on_both_stores!(email, login_by_email);
