//! The NCS API end to end on SQLite and Postgres: points go through the queue to a worker and
//! back, the stream's state persists between requests and across a restart, and bad input gets
//! the stable codes.

mod common;

use common::Backend;
use common::backend::{TestBackend, problem_code};
use serde_json::{Value, json};

const PASSWORD: &str = "Sturdy-Mug-2026!";

/// Points around three well-separated centres in 4 dimensions, deterministic.
fn points(count: usize, offset: usize) -> Vec<Vec<f64>> {
    let centres = [
        [10.0, 0.0, 0.0, 0.0],
        [0.0, 10.0, 0.0, 0.0],
        [0.0, 0.0, 10.0, 0.0],
    ];
    (offset..offset + count)
        .map(|i| {
            let c = centres[i % 3];
            let jitter = ((i * 7919) % 100) as f64 / 1000.0;
            c.iter().map(|v| v + jitter).collect()
        })
        .collect()
}

async fn process(
    backend: &TestBackend,
    principal: &shared::permissions::Principal,
    body: Value,
) -> reqwest::Response {
    backend
        .json("POST", "/api/v1/process_points", Some(principal), body)
        .await
}

fn labels(response: &Value) -> Vec<i64> {
    response["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cluster_id"].as_i64().unwrap())
        .collect()
}

async fn ncs_api(kind: Backend) {
    let backend = TestBackend::start(kind).await;
    backend.add_user("nia", PASSWORD, &["user"]).await;
    backend.add_user("val", PASSWORD, &["viewer"]).await;
    backend.add_user("oli", PASSWORD, &["user"]).await;
    let (nia, _, _) = backend.session("nia", PASSWORD).await;
    let (viewer, _, _) = backend.session("val", PASSWORD).await;
    let (oli, _, _) = backend.session("oli", PASSWORD).await;

    // One request on stream "whole" and the same points split in two on stream "split".
    let all = points(60, 0);
    let whole = process(&backend, &nia, json!({ "points": all, "stream": "whole" })).await;
    assert_eq!(whole.status(), 200);
    let whole: Value = whole.json().await.unwrap();
    assert_eq!(whole["points_processed"], 60);
    assert!(whole["request_id"].is_string());
    assert_eq!(whole["results"].as_array().unwrap().len(), 60);
    assert!(whole["clusters_found"].as_u64().unwrap() >= 3, "{whole}");
    for field in ["outliers", "algorithm_quality", "processing_time_ms"] {
        assert!(!whole[field].is_null(), "{field} in {whole}");
    }
    let first: Value = process(
        &backend,
        &nia,
        json!({ "points": &all[..25], "stream": "split" }),
    )
    .await
    .json()
    .await
    .unwrap();
    let second: Value = process(
        &backend,
        &nia,
        json!({ "points": &all[25..], "stream": "split", "timeout": 10000 }),
    )
    .await
    .json()
    .await
    .unwrap();
    let mut split = labels(&first);
    split.extend(labels(&second));
    assert_eq!(
        split,
        labels(&whole),
        "a stream split across two jobs answers like one job"
    );

    // The summary and status read the saved stream.
    let summary: Value = backend
        .get("/api/v1/clusters_summary?stream=whole", Some(&nia))
        .await
        .json()
        .await
        .unwrap();
    let clusters = summary["clusters_info"].as_array().unwrap();
    assert_eq!(
        clusters.len() as u64,
        whole["clusters_found"].as_u64().unwrap()
    );
    for field in [
        "cluster_id",
        "centroid",
        "confidence",
        "age",
        "update_count",
        "health_score",
        "health_status",
        "last_updated",
    ] {
        assert!(!clusters[0][field].is_null(), "{field} in {}", clusters[0]);
    }
    assert_eq!(clusters[0]["centroid"].as_array().unwrap().len(), 4);
    let big: Value = backend
        .get(
            "/api/v1/clusters_summary?stream=whole&min_size=1000",
            Some(&nia),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(big["clusters_info"].as_array().unwrap().is_empty());
    let one: Value = backend
        .get("/api/v1/clusters_summary?stream=whole&limit=1", Some(&nia))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["clusters_info"].as_array().unwrap().len(), 1);
    let bad = backend
        .get("/api/v1/clusters_summary?health_status=sunny", Some(&nia))
        .await;
    assert_eq!(problem_code(bad).await, "VALIDATION_FAILED");
    let status: Value = backend
        .get("/api/v1/algorithm_status?stream=split", Some(&nia))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["points_processed"], 60);
    assert_eq!(status["jobs"], 2);
    for field in [
        "current_threshold",
        "clustering_quality",
        "global_stability",
        "adaptation_rate",
        "throughput_points_per_second",
    ] {
        assert!(status[field].is_number(), "{field} in {status}");
    }
    assert!(
        status["latency_us_per_point"]["p99"].as_f64().unwrap()
            >= status["latency_us_per_point"]["p50"].as_f64().unwrap()
    );
    let missing = backend
        .get("/api/v1/algorithm_status?stream=nothing-here", Some(&nia))
        .await;
    assert_eq!(missing.status(), 404);

    // Streams belong to their owner.
    let theirs = backend
        .get("/api/v1/algorithm_status?stream=whole", Some(&oli))
        .await;
    assert_eq!(
        theirs.status(),
        404,
        "another user's stream of the same name is not visible"
    );

    // Refusals, each with its code.
    let cases = [
        (json!({ "points": [] }), "EMPTY_POINTS"),
        (
            json!({ "points": [[1.0, 2.0], [1.0]] }),
            "DIMENSION_MISMATCH",
        ),
        (json!({ "points": [[1e11]] }), "INVALID_INPUT"),
        (json!({ "points": [vec![0.5; 1001]] }), "INVALID_INPUT"),
        (json!({ "points": vec![[0.5]; 10_001] }), "TOO_MANY_POINTS"),
        (
            json!({ "points": [[1.0]], "timeout": 500 }),
            "VALIDATION_FAILED",
        ),
        (
            json!({ "points": [[1.0]], "algorithm_params": { "base_threshold": 2.0 } }),
            "VALIDATION_FAILED",
        ),
        (json!({ "points": [[1.0]], "surprise": 1 }), "UNKNOWN_FIELD"),
        // The stream "whole" has 4 dimensions; a 2-dimensional batch does not fit it.
        (
            json!({ "points": [[1.0, 2.0]], "stream": "whole" }),
            "DIMENSION_MISMATCH",
        ),
        // Parameters are fixed when a stream starts.
        (
            json!({ "points": [[1.0, 2.0, 3.0, 4.0]], "stream": "whole", "algorithm_params": { "max_clusters": 7 } }),
            "CONFLICT",
        ),
    ];
    for (body, code) in cases {
        let response = process(&backend, &nia, body.clone()).await;
        assert_eq!(problem_code(response).await, code, "{body}");
    }
    let after: Value = backend
        .get("/api/v1/algorithm_status?stream=whole", Some(&nia))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        after["points_processed"], 60,
        "refused batches leave the stream as it was"
    );
    let forbidden = process(&backend, &viewer, json!({ "points": [[1.0]] })).await;
    assert_eq!(problem_code(forbidden).await, "INSUFFICIENT_PERMISSIONS");

    // The stream survives a restart of the backend and its worker.
    let (db, data_dir) = backend.stop().await;
    let backend = TestBackend::start_with(db, data_dir).await;
    let (nia, _, _) = backend.session("nia", PASSWORD).await;
    let more: Value = process(
        &backend,
        &nia,
        json!({ "points": points(3, 60), "stream": "whole" }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(more["points_processed"], 3);
    let status: Value = backend
        .get("/api/v1/algorithm_status?stream=whole", Some(&nia))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["points_processed"], 63);
}
on_both_stores!(ncs, ncs_api);
