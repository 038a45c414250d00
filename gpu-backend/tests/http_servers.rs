//! `GET /api/v1/servers` shows real workers with their state; operators pause, resume and drain
//! them over HTTP.

mod common;

use std::time::Duration;

use common::Backend;
use common::backend::{TestBackend, problem_code};

const PASSWORD: &str = "Sturdy-Mug-2026!";

async fn servers_show_and_obey(kind: Backend) {
    let backend = TestBackend::start(kind).await;
    backend.add_user("ops", PASSWORD, &["manager"]).await;
    backend.add_user("vic", PASSWORD, &["viewer"]).await;
    let (ops, _, _) = backend.session("ops", PASSWORD).await;
    let (viewer, _, _) = backend.session("vic", PASSWORD).await;

    let listed: serde_json::Value = backend
        .get("/api/v1/servers", Some(&viewer))
        .await
        .json()
        .await
        .unwrap();
    let servers = listed["servers"].as_array().unwrap();
    assert_eq!(
        servers.len(),
        1,
        "the backend's in-process worker: {listed}"
    );
    let server = &servers[0];
    assert_eq!(server["state"], "active");
    assert_eq!(server["status"], "online");
    assert_eq!(
        server["kinds"],
        serde_json::json!(["analysis", "echo", "ncs"])
    );
    assert_eq!(server["device"], "cpu");
    let id = server["id"].as_str().unwrap().to_owned();

    let refused = backend
        .signed(
            "POST",
            &format!("/api/v1/servers/{id}/pause"),
            Some(&viewer),
            None,
            Vec::new(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(problem_code(refused).await, "INSUFFICIENT_PERMISSIONS");
    let unknown = backend
        .signed(
            "POST",
            "/api/v1/servers/nope/pause",
            Some(&ops),
            None,
            Vec::new(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    let state_of = async |backend: &TestBackend| -> String {
        let listed: serde_json::Value = backend
            .get("/api/v1/servers", Some(&ops))
            .await
            .json()
            .await
            .unwrap();
        listed["servers"][0]["state"].as_str().unwrap().to_owned()
    };
    for (action, expected) in [
        ("pause", "paused"),
        ("resume", "active"),
        ("drain", "stopped"),
    ] {
        let accepted = backend
            .signed(
                "POST",
                &format!("/api/v1/servers/{id}/{action}"),
                Some(&ops),
                None,
                Vec::new(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(accepted.status(), 202, "{action}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while state_of(&backend).await != expected {
            assert!(
                tokio::time::Instant::now() < deadline,
                "worker never became {expected}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let listed: serde_json::Value = backend
        .get("/api/v1/servers", Some(&ops))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["servers"][0]["status"], "offline",
        "a drained worker is gone"
    );
}
on_both_stores!(servers, servers_show_and_obey);
