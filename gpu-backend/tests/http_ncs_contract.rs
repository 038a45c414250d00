//! The published NCS contract on SQLite and Postgres: `batch_mode` and the SDK's seconds
//! timeout, the fields its client reads from `process_points`, `algorithm_status` and
//! `/health`, bodiless requests with a `Content-Type`, `/ready`, `/api/v1/version`, a timed-out
//! job's result at `/api/v1/jobs/{id}`, and listing and resetting streams.

mod common;

use std::time::Duration;

use common::Backend;
use common::backend::{TestBackend, problem_code};
use serde_json::{Value, json};

const PASSWORD: &str = "Sturdy-Mug-2026!";

fn points(count: usize) -> Vec<Vec<f64>> {
    let centres = [[10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]];
    (0..count)
        .map(|i| {
            let jitter = ((i * 7919) % 100) as f64 / 1000.0;
            centres[i % 3].iter().map(|v| v + jitter).collect()
        })
        .collect()
}

async fn body(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

/// Asks the backend's worker to pause or resume and waits until it says it has.
async fn set_worker(
    backend: &TestBackend,
    admin: &shared::permissions::Principal,
    action: &str,
    state: &str,
) {
    let servers = body(backend.get("/api/v1/servers", Some(admin)).await).await;
    let id = servers["servers"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/servers/{id}/{action}");
    let asked = backend
        .signed("POST", &path, Some(admin), None, Vec::new())
        .send()
        .await
        .unwrap();
    assert!(asked.status().is_success(), "{action}: {}", asked.status());
    for _ in 0..200 {
        let servers = body(backend.get("/api/v1/servers", Some(admin)).await).await;
        if servers["servers"][0]["state"] == state {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the worker never reached {state}");
}

async fn sdk_contract(kind: Backend) {
    let backend = TestBackend::start(kind).await;
    backend.add_user("nia", PASSWORD, &["user"]).await;
    backend.add_user("oli", PASSWORD, &["user"]).await;
    backend.add_user("ada", PASSWORD, &["admin"]).await;
    let (nia, _, _) = backend.session("nia", PASSWORD).await;
    let (oli, _, _) = backend.session("oli", PASSWORD).await;
    let (ada, _, _) = backend.session("ada", PASSWORD).await;

    // process_points, exact and batched: the SDK's fields beside ours, equal results.
    let batch = points(90);
    let exact = backend
        .json(
            "POST",
            "/api/v1/process_points",
            Some(&nia),
            json!({ "points": batch, "stream": "exact" }),
        )
        .await;
    assert_eq!(exact.status(), 200);
    let exact = body(exact).await;
    let batched = backend
        .json(
            "POST",
            "/api/v1/process_points",
            Some(&nia),
            json!({ "points": batch, "stream": "batched", "batch_mode": true, "timeout": 60 }),
        )
        .await;
    assert_eq!(batched.status(), 200);
    let batched = body(batched).await;
    assert_eq!(exact["mode"], "exact");
    assert_eq!(batched["mode"], "batched");
    assert_eq!(exact["results"], batched["results"]);
    assert_eq!(exact["clusters"], batched["clusters"]);
    let clusters = exact["clusters"].as_array().unwrap();
    assert!(clusters.len() >= 3, "{exact}");
    let mut counted = exact["outliers"].as_array().unwrap().len();
    for cluster in clusters {
        assert!(cluster["id"].is_u64(), "{cluster}");
        assert_eq!(cluster["center"].as_array().unwrap().len(), 3);
        let members = cluster["points"].as_array().unwrap();
        assert_eq!(members.len() as u64, cluster["size"].as_u64().unwrap());
        assert_eq!(members[0].as_array().unwrap().len(), 3);
        assert!(cluster["quality"].is_number());
        counted += members.len();
    }
    assert_eq!(
        counted,
        batch.len(),
        "every point in a cluster or an outlier"
    );
    // The points come back as they were sent (the job carries them as f32).
    let sent: Vec<Value> = batch.iter().map(|p| json!(p)).collect();
    for echoed in clusters
        .iter()
        .flat_map(|c| c["points"].as_array().unwrap())
        .chain(exact["outliers"].as_array().unwrap())
    {
        assert!(sent.contains(echoed), "{echoed} was not sent");
    }
    assert_eq!(
        exact["outliers"].as_array().unwrap().len(),
        exact["outlier_indices"].as_array().unwrap().len()
    );
    for field in ["processing_time_ms", "algorithm_quality"] {
        assert!(exact[field].is_number(), "{field} in {exact}");
    }
    assert!(exact["request_id"].is_string());
    for bad in [
        json!({ "points": [[1.0]], "batch_mode": "yes" }),
        json!({ "points": [[1.0]], "timeout": 500 }),
    ] {
        let refused = backend
            .json("POST", "/api/v1/process_points", Some(&nia), bad.clone())
            .await;
        assert_eq!(refused.status(), 422, "{bad}");
    }
    let unknown = backend
        .json(
            "POST",
            "/api/v1/process_points",
            Some(&nia),
            json!({ "points": [[1.0]], "batch_mode": true, "turbo": true }),
        )
        .await;
    assert_eq!(problem_code(unknown).await, "UNKNOWN_FIELD");

    // algorithm_status: the SDK's fields.
    let status = body(
        backend
            .get("/api/v1/algorithm_status?stream=exact", Some(&nia))
            .await,
    )
    .await;
    assert_eq!(status["is_ready"], true, "{status}");
    assert_eq!(status["active_clusters"], exact["clusters_found"]);
    assert_eq!(status["total_points_processed"], 90);
    assert_eq!(status["error_count"], 0);
    for field in [
        "clustering_quality",
        "memory_usage_mb",
        "last_processing_time_ms",
        "uptime_seconds",
    ] {
        assert!(status[field].is_number(), "{field} in {status}");
    }
    assert!(status["memory_usage_mb"].as_f64().unwrap() > 0.0);

    // Bodiless requests with the SDK's Content-Type are not refused; bodies of a wrong type are.
    let health = backend
        .client
        .get(backend.url("/health"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let health = body(health).await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["algorithm_ready"], true);
    assert_eq!(health["components"]["database"], "ok");
    assert_eq!(health["components"]["ncs"], "ok");
    assert!(health["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(health["version"].is_string());
    assert!(health["uptime_seconds"].as_f64().unwrap() >= 0.0);
    let typed_get = backend
        .signed(
            "GET",
            "/api/v1/algorithm_status?stream=exact",
            Some(&nia),
            Some("application/json"),
            Vec::new(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(typed_get.status(), 200);
    let wrong_type = backend
        .signed(
            "POST",
            "/api/v1/process_points",
            Some(&nia),
            Some("text/plain"),
            br#"{"points":[[1.0,2.0,3.0]]}"#.to_vec(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(problem_code(wrong_type).await, "UNSUPPORTED_MEDIA_TYPE");

    for (content_type, body, code) in [
        ("text/plain", &b""[..], "INVALID_JSON"),
        ("text/plain", &b"{}"[..], "UNSUPPORTED_MEDIA_TYPE"),
    ] {
        let answer = backend
            .signed(
                "POST",
                "/auth/mfa/verify",
                Some(&nia),
                Some(content_type),
                body.to_vec(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(problem_code(answer).await, code, "{body:?}");
    }

    // Version and readiness.
    let version = body(backend.get("/api/v1/version", None).await).await;
    assert!(version["version"].is_string(), "{version}");
    assert_eq!(version["api_version"], "v1");
    let ready = backend
        .client
        .get(backend.url("/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(body(ready).await["not_ready"], json!([]));

    // A job that outruns its timeout: 504 naming where its result will be, then that result,
    // for its owner and an admin only.
    set_worker(&backend, &ada, "pause", "paused").await;
    let ready = backend
        .client
        .get(backend.url("/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(body(ready).await["not_ready"], json!(["analysis", "ncs"]));
    let late = backend
        .json(
            "POST",
            "/api/v1/process_points",
            Some(&nia),
            json!({ "points": points(6), "stream": "late", "timeout": 1 }),
        )
        .await;
    assert_eq!(late.status(), 504);
    let late = body(late).await;
    let instance = late["instance"].as_str().unwrap().to_owned();
    assert!(instance.starts_with("/api/v1/jobs/"), "{late}");
    let pending = backend.get(&instance, Some(&nia)).await;
    assert_eq!(pending.status(), 202);
    assert_eq!(body(pending).await["state"], "queued");
    assert_eq!(backend.get(&instance, Some(&oli)).await.status(), 404);
    assert_eq!(backend.get(&instance, Some(&ada)).await.status(), 202);
    assert_eq!(
        backend
            .get(
                "/api/v1/jobs/00000000-0000-0000-0000-000000000000",
                Some(&nia)
            )
            .await
            .status(),
        404
    );
    set_worker(&backend, &ada, "resume", "active").await;
    let mut done = Value::Null;
    for _ in 0..200 {
        let response = backend.get(&instance, Some(&nia)).await;
        if response.status() == 200 {
            done = body(response).await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(done["points_processed"], 6, "{done}");
    assert!(done["clusters"].is_array());

    // Streams: listed by name, reset one, the others stay.
    let listed = body(backend.get("/api/v1/streams", Some(&nia)).await).await;
    let names: Vec<&str> = listed["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stream"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["batched", "exact", "late"]);
    let theirs = body(backend.get("/api/v1/streams", Some(&oli)).await).await;
    assert_eq!(theirs["total"], 0);
    let reset = backend
        .signed(
            "DELETE",
            "/api/v1/streams/exact",
            Some(&nia),
            None,
            Vec::new(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 204);
    let gone = backend
        .get("/api/v1/algorithm_status?stream=exact", Some(&nia))
        .await;
    assert_eq!(gone.status(), 404);
    let again = backend
        .signed(
            "DELETE",
            "/api/v1/streams/exact",
            Some(&nia),
            None,
            Vec::new(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(problem_code(again).await, "NOT_FOUND");
    let others = backend
        .signed(
            "DELETE",
            "/api/v1/streams/batched",
            Some(&oli),
            None,
            Vec::new(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(others.status(), 404, "another user's stream is not theirs");
    let listed = body(backend.get("/api/v1/streams", Some(&nia)).await).await;
    assert_eq!(listed["total"], 2);
}
on_both_stores!(sdk, sdk_contract);
