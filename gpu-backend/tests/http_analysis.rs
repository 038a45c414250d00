//! The Mug Positioning API end to end on SQLite and Postgres: uploads go through the queue to the
//! shipped detector and back, rules fire when they must and only then, identical requests reuse
//! a result, the image is dropped (or sealed when retention is on), and bad uploads get their
//! stable codes without leaving anything behind.

mod common;

use base64::Engine;
use common::Backend;
use common::backend::{TestBackend, problem_code};
use mug::synthetic::{desk_scene, render};
use serde_json::{Value, json};
use shared::permissions::Principal;

const PASSWORD: &str = "Sturdy-Mug-2026!";
const BOUNDARY: &str = "h200-test-boundary";

fn png_of(mugs: &[(f32, f32, f32)]) -> Vec<u8> {
    let scene = render(&desk_scene(320, 240, mugs));
    let mut out = std::io::Cursor::new(Vec::new());
    scene
        .image
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

/// A centred mug, one at the left edge and one in the bottom-right corner.
fn three_mugs() -> Vec<u8> {
    png_of(&[
        (160.0, 150.0, 60.0),
        (40.0, 130.0, 50.0),
        (285.0, 228.0, 40.0),
    ])
}

/// A form with `images` (type, bytes) parts named `image` and the text `fields`.
fn form(images: &[(&str, &[u8])], fields: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (declared, bytes) in images {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"desk.png\"\r\nContent-Type: {declared}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload(
    backend: &TestBackend,
    who: &Principal,
    query: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    backend
        .signed(
            "POST",
            &format!("/api/v1/analysis{query}"),
            Some(who),
            Some(&format!("multipart/form-data; boundary={BOUNDARY}")),
            body,
        )
        .send()
        .await
        .unwrap()
}

/// Uploads `body` as `who`, waits for the result and expects it (200).
async fn analysed(backend: &TestBackend, who: &Principal, body: Vec<u8>) -> Value {
    json_of(upload(backend, who, "?wait=60", body).await, 200).await
}

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let got = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    body
}

fn keys_of(analysis: &Value) -> Vec<String> {
    let mut keys: Vec<String> = analysis["positioning"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["position_key"].as_str().unwrap().to_owned())
        .collect();
    keys.sort();
    keys
}

async fn analysis_jobs(backend: &TestBackend) -> i64 {
    let store = backend.db.store().await;
    sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE kind = 'analysis'")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

async fn analysis_rows(backend: &TestBackend) -> i64 {
    let store = backend.db.store().await;
    sqlx::query_scalar("SELECT COUNT(*) FROM analyses")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

async fn analysis_api(kind: Backend) {
    let backend = TestBackend::start(kind).await;
    let mia_id = backend.add_user("mia", PASSWORD, &["manager"]).await;
    backend.add_user("ana", PASSWORD, &["analyst"]).await;
    backend.add_user("adm", PASSWORD, &["admin"]).await;
    backend.add_user("vic", PASSWORD, &["viewer"]).await;
    let (mia, _, _) = backend.session("mia", PASSWORD).await;
    let (ana, _, _) = backend.session("ana", PASSWORD).await;
    let (adm, _, _) = backend.session("adm", PASSWORD).await;
    let (vic, _, _) = backend.session("vic", PASSWORD).await;

    // Mia's rules: one drafted from a sentence, one written out, one that must not fire.
    let drafted = json_of(
        backend
            .json(
                "POST",
                "/api/v1/rules/natural-language",
                Some(&mia),
                json!({ "text": "reject when there are more than two mugs", "save": true }),
            )
            .await,
        201,
    )
    .await;
    assert_eq!(drafted["saved"], true);
    let too_many_id = drafted["id"].as_str().unwrap().to_owned();
    let centred = json_of(
        backend
            .json(
                "POST",
                "/api/v1/rules",
                Some(&mia),
                json!({
                    "name": "keep mugs centred",
                    "conditions": [{ "field": "position_key", "operator": "!=", "value": "center" }],
                    "actions": [{ "action": "alert", "message": "A mug is off centre." }],
                    "priority": 200,
                }),
            )
            .await,
        201,
    )
    .await;
    let centred_id = centred["id"].as_str().unwrap().to_owned();
    let empty = json_of(
        backend
            .json(
                "POST",
                "/api/v1/rules",
                Some(&mia),
                json!({
                    "name": "no mug at all",
                    "conditions": [{ "field": "mug_count", "operator": "==", "value": 0 }],
                    "actions": [{ "action": "reject", "message": "Nothing to position." }],
                }),
            )
            .await,
        201,
    )
    .await;
    let empty_id = empty["id"].as_str().unwrap().to_owned();

    // The three-mug scene, waited for.
    let image = three_mugs();
    let fields = [("calibration_mm_per_pixel", "0.5")];
    let response = upload(
        &backend,
        &mia,
        "?wait=60",
        form(&[("image/png", &image)], &fields),
    )
    .await;
    let location = response
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let first = json_of(response, 200).await;
    let id = first["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/analysis/{id}"));
    assert_eq!(first["status"], "completed", "{first}");
    assert_eq!(first["reused"], false);
    assert_eq!(first["mug_count"], 3, "{first}");
    assert_eq!(first["detections"].as_array().unwrap().len(), 3);
    assert_eq!(first["detections"][0]["class_name"], "mug");
    assert!(first["detections"][0]["bbox"]["top_left"]["x"].is_number());
    assert_eq!(keys_of(&first), ["bottom_right", "center", "left_edge"]);
    let centre = first["positioning"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["position_key"] == "center")
        .unwrap();
    assert!(
        centre["offset_mm"]["x"].as_f64().unwrap().abs() < 10.0,
        "{centre}"
    );
    assert!(
        first["model_version"]
            .as_str()
            .unwrap()
            .starts_with("mug-detector-p-")
    );
    assert!(first["processing_time_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(first["image"]["width"], 320);
    assert_eq!(first["image"]["content_type"], "image/png");
    assert_eq!(first["image"]["retained"], false);
    assert_eq!(first["verdict"], "reject", "{first}");
    assert_eq!(first["rules_evaluated"], 3);
    let violations = first["rule_violations"].as_array().unwrap();
    let fired = |rule: &str| violations.iter().filter(|v| v["rule_id"] == rule).count();
    assert_eq!(fired(&too_many_id), 1, "a count rule fires once: {first}");
    assert_eq!(fired(&centred_id), 2, "once per off-centre mug: {first}");
    assert_eq!(fired(&empty_id), 0, "{first}");
    let feedback: Vec<&str> = first["feedback"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(feedback.contains(&"3 mugs were found."), "{feedback:?}");
    assert!(
        feedback.iter().any(|f| f.contains("near the left edge")),
        "{feedback:?}"
    );
    assert!(feedback.contains(&"A mug is off centre."), "{feedback:?}");
    let moves = first["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] == "move")
        .count();
    assert_eq!(moves, 3, "{first}");

    // The job is gone from memory: its payload (the image) was dropped when it finished.
    let store = backend.db.store().await;
    let (records, _) = store.list_analyses(Some(&mia_id), 10, 0).await.unwrap();
    let job = store.job(&records[0].job_id).await.unwrap().unwrap();
    assert_eq!(job.payload, json!({}));
    assert!(job.result.is_some());

    // The same image and parameters again: the stored result, at once, without a new job.
    let again = json_of(
        upload(&backend, &mia, "", form(&[("image/png", &image)], &fields)).await,
        200,
    )
    .await;
    assert_eq!(again["reused"], true);
    assert_ne!(again["id"], first["id"]);
    assert_eq!(again["detections"], first["detections"]);
    assert_eq!(analysis_jobs(&backend).await, 1);
    // Other parameters are another request.
    let stricter = analysed(
        &backend,
        &mia,
        form(&[("image/png", &image)], &[("confidence_threshold", "0.5")]),
    )
    .await;
    assert_eq!(stricter["reused"], false);
    assert!(stricter["offset_mm"].is_null() && stricter["positioning"][0]["offset_mm"].is_null());
    assert_eq!(analysis_jobs(&backend).await, 2);

    // Who sees what.
    let path = format!("/api/v1/analysis/{id}");
    assert_eq!(
        json_of(backend.get(&path, Some(&mia)).await, 200).await["mug_count"],
        3
    );
    assert_eq!(
        problem_code(backend.get(&path, Some(&ana)).await).await,
        "NOT_FOUND"
    );
    assert_eq!(
        problem_code(backend.get(&path, Some(&vic)).await).await,
        "NOT_FOUND"
    );
    assert_eq!(
        json_of(backend.get(&path, Some(&adm)).await, 200).await["id"],
        id
    );
    let mine = json_of(backend.get("/api/v1/analysis", Some(&mia)).await, 200).await;
    assert_eq!(mine["total"], 3);
    assert_eq!(mine["analyses"][0]["id"], stricter["id"], "newest first");
    let theirs = json_of(backend.get("/api/v1/analysis", Some(&ana)).await, 200).await;
    assert_eq!(theirs["total"], 0);
    let others = format!("/api/v1/analysis?owner={mia_id}");
    assert_eq!(
        problem_code(backend.get(&others, Some(&ana)).await).await,
        "INSUFFICIENT_PERMISSIONS"
    );
    assert_eq!(
        json_of(backend.get(&others, Some(&adm)).await, 200).await["total"],
        3
    );
    for query in ["limit=0", "limit=many", "colour=red"] {
        let path = format!("/api/v1/analysis?{query}");
        assert_eq!(
            problem_code(backend.get(&path, Some(&mia)).await).await,
            "VALIDATION_FAILED",
            "{query}"
        );
    }

    // Feedback from the owner only, in the strict body.
    let feedback_path = format!("/api/v1/analysis/{id}/feedback");
    let good =
        json!({ "correct": false, "actual_mug_count": 3, "comment": "the corner mug is half out" });
    assert_eq!(
        problem_code(
            backend
                .json("POST", &feedback_path, Some(&ana), good.clone())
                .await
        )
        .await,
        "NOT_FOUND"
    );
    let noted = json_of(
        backend.json("POST", &feedback_path, Some(&mia), good).await,
        200,
    )
    .await;
    assert_eq!(noted["user_feedback"]["correct"], false);
    assert_eq!(noted["user_feedback"]["reported_mug_count"], 3);
    for (body, code) in [
        (json!({ "correct": "yes" }), "INVALID_JSON"),
        (json!({ "correct": true, "stars": 5 }), "UNKNOWN_FIELD"),
        (
            json!({ "correct": true, "actual_mug_count": 5000 }),
            "VALIDATION_FAILED",
        ),
    ] {
        assert_eq!(
            problem_code(backend.json("POST", &feedback_path, Some(&mia), body).await).await,
            code
        );
    }

    // A picture with no mug, without feedback text: the empty rule fires.
    let nothing = analysed(
        &backend,
        &mia,
        form(
            &[("image/png", &png_of(&[]))],
            &[("include_feedback", "false")],
        ),
    )
    .await;
    assert_eq!(nothing["mug_count"], 0, "{nothing}");
    assert!(nothing["feedback"].is_null() && nothing["suggestions"].is_null());
    assert_eq!(nothing["verdict"], "reject");
    let fired: Vec<&Value> = nothing["rule_violations"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(
        fired.len(),
        1,
        "only the count rule applies to an empty picture: {nothing}"
    );
    assert_eq!(fired[0]["rule_id"], empty_id);

    // The rules of a context only: none of Mia's rules has one.
    let scoped = analysed(
        &backend,
        &mia,
        form(&[("image/png", &image)], &[("rules_context", "kitchen")]),
    )
    .await;
    assert_eq!(scoped["rules_evaluated"], 0);
    assert_eq!(scoped["verdict"], "accept");

    // Bad uploads: stable codes, nothing stored.
    let rows = analysis_rows(&backend).await;
    let jobs = analysis_jobs(&backend).await;
    let mut bomb = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13];
    bomb.extend_from_slice(b"IHDR");
    bomb.extend_from_slice(&50_000u32.to_be_bytes());
    bomb.extend_from_slice(&50_000u32.to_be_bytes());
    bomb.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    let jpeg_magic = [0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F'];
    let refusals: Vec<(Vec<u8>, &str)> = vec![
        (form(&[("image/png", &bomb)], &[]), "IMAGE_TOO_LARGE"),
        (
            form(&[("image/png", b"GIF89a not a png")], &[]),
            "INVALID_IMAGE_FORMAT",
        ),
        (
            form(&[("image/png", &jpeg_magic)], &[]),
            "INVALID_IMAGE_FORMAT",
        ),
        (
            form(&[], &[("confidence_threshold", "0.5")]),
            "VALIDATION_FAILED",
        ),
        (
            form(&[("image/png", &image), ("image/png", &image)], &[]),
            "VALIDATION_FAILED",
        ),
        (
            form(&[("image/png", &image)], &[("threshold", "0.5")]),
            "UNKNOWN_FIELD",
        ),
        (
            form(&[("image/png", &image)], &[("confidence_threshold", "1.5")]),
            "VALIDATION_FAILED",
        ),
        (b"--h200-test-boundary\r\nno end".to_vec(), "BAD_REQUEST"),
    ];
    for (body, code) in refusals {
        assert_eq!(
            problem_code(upload(&backend, &mia, "", body).await).await,
            code
        );
    }
    let as_json = backend
        .json(
            "POST",
            "/api/v1/analysis",
            Some(&mia),
            json!({ "image": "x" }),
        )
        .await;
    assert_eq!(problem_code(as_json).await, "UNSUPPORTED_MEDIA_TYPE");
    let viewer_upload = upload(&backend, &vic, "", form(&[("image/png", &image)], &[])).await;
    assert_eq!(
        problem_code(viewer_upload).await,
        "INSUFFICIENT_PERMISSIONS"
    );
    assert_eq!(analysis_rows(&backend).await, rows);
    assert_eq!(analysis_jobs(&backend).await, jobs);

    // A header that passes but pixels that do not decode: the job says so, as the upload's error.
    let mut truncated = image[..image.len() / 3].to_vec();
    truncated.extend_from_slice(&[0u8; 64]);
    let broken = upload(
        &backend,
        &mia,
        "?wait=60",
        form(&[("image/png", &truncated)], &[]),
    )
    .await;
    assert_eq!(problem_code(broken).await, "INVALID_IMAGE_FORMAT");
    let listed = json_of(
        backend.get("/api/v1/analysis?limit=1", Some(&mia)).await,
        200,
    )
    .await;
    assert_eq!(listed["analyses"][0]["status"], "failed");
    assert_eq!(
        listed["analyses"][0]["error"]["code"],
        "INVALID_IMAGE_FORMAT"
    );

    // Without a wait: 202 and pending (or already done on a fast machine).
    let queued = upload(&backend, &ana, "", form(&[("image/png", &image)], &[])).await;
    assert!(matches!(queued.status().as_u16(), 200 | 202));
    let queued: Value = queued.json().await.unwrap();
    let queued_path = format!(
        "/api/v1/analysis/{}?wait=60",
        queued["id"].as_str().unwrap()
    );
    let done = json_of(backend.get(&queued_path, Some(&ana)).await, 200).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["rules_evaluated"], 0, "Ana has no rules");

    // Deleting: needs analysis:delete; a shared job stays until its last analysis goes.
    let again_path = format!("/api/v1/analysis/{}", again["id"].as_str().unwrap());
    let denied = backend
        .signed("DELETE", &path, Some(&ana), None, Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(problem_code(denied).await, "INSUFFICIENT_PERMISSIONS");
    let jobs = analysis_jobs(&backend).await;
    let gone = backend
        .signed("DELETE", &again_path, Some(&mia), None, Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 204);
    assert_eq!(
        analysis_jobs(&backend).await,
        jobs,
        "the first analysis still uses the job"
    );
    let gone = backend
        .signed("DELETE", &path, Some(&mia), None, Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 204);
    assert_eq!(analysis_jobs(&backend).await, jobs - 1);
    assert_eq!(
        problem_code(backend.get(&path, Some(&mia)).await).await,
        "NOT_FOUND"
    );
    let twice = backend
        .signed("DELETE", &path, Some(&mia), None, Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(problem_code(twice).await, "NOT_FOUND");

    // Export lists rules and analyses; erasure takes them with the account.
    let export = json_of(backend.get("/api/v1/me/export", Some(&mia)).await, 200).await;
    assert_eq!(export["rules"].as_array().unwrap().len(), 3);
    assert!(!export["analyses"].as_array().unwrap().is_empty());
    let erased = backend
        .signed("DELETE", "/api/v1/me", Some(&mia), None, Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status(), 204);
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM analyses WHERE owner = $1")
        .bind(&mia_id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    let rules_left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rules WHERE owner = $1")
        .bind(&mia_id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!((left, rules_left), (0, 0));
}

on_both_stores!(analysis, analysis_api);

async fn rules_api(kind: Backend) {
    let backend = TestBackend::start(kind).await;
    backend.add_user("mo", PASSWORD, &["manager"]).await;
    backend.add_user("al", PASSWORD, &["analyst"]).await;
    backend.add_user("ad", PASSWORD, &["admin"]).await;
    let (mo, _, _) = backend.session("mo", PASSWORD).await;
    let (al, _, _) = backend.session("al", PASSWORD).await;
    let (ad, _, _) = backend.session("ad", PASSWORD).await;

    let rule = |name: &str, priority: i64| {
        json!({
            "name": name,
            "conditions": [{ "field": "mug_count", "operator": ">", "value": 2 }],
            "actions": [{ "action": "reject", "message": format!("{name} fired") }],
            "priority": priority,
            "context": "desk",
        })
    };
    let low = json_of(
        backend
            .json("POST", "/api/v1/rules", Some(&mo), rule("low", 10))
            .await,
        201,
    )
    .await;
    let high = json_of(
        backend
            .json("POST", "/api/v1/rules", Some(&mo), rule("high", 900))
            .await,
        201,
    )
    .await;
    let low_path = format!("/api/v1/rules/{}", low["id"].as_str().unwrap());
    assert_eq!(low["enabled"], true);
    assert_eq!(low["context"], "desk");
    let listed = json_of(backend.get("/api/v1/rules", Some(&mo)).await, 200).await;
    assert_eq!(listed["total"], 2);
    assert_eq!(
        listed["rules"][0]["id"], high["id"],
        "highest priority first"
    );
    assert_eq!(
        json_of(
            backend.get("/api/v1/rules?context=attic", Some(&mo)).await,
            200
        )
        .await["total"],
        0
    );

    // Refusals: permission, body, ownership.
    assert_eq!(
        problem_code(
            backend
                .json("POST", "/api/v1/rules", Some(&al), rule("x", 1))
                .await
        )
        .await,
        "INSUFFICIENT_PERMISSIONS"
    );
    let mut unknown = rule("x", 1);
    unknown["colour"] = json!("red");
    assert_eq!(
        problem_code(
            backend
                .json("POST", "/api/v1/rules", Some(&mo), unknown)
                .await
        )
        .await,
        "UNKNOWN_FIELD"
    );
    let mut bad_operator = rule("x", 1);
    bad_operator["conditions"][0]["operator"] = json!("~=");
    assert_eq!(
        problem_code(
            backend
                .json("POST", "/api/v1/rules", Some(&mo), bad_operator)
                .await
        )
        .await,
        "INVALID_JSON"
    );
    assert_eq!(
        problem_code(
            backend
                .json("POST", "/api/v1/rules", Some(&mo), rule("x", 5000))
                .await
        )
        .await,
        "VALIDATION_FAILED"
    );
    assert_eq!(
        problem_code(backend.get(&low_path, Some(&al)).await).await,
        "NOT_FOUND"
    );
    assert_eq!(
        json_of(backend.get(&low_path, Some(&ad)).await, 200).await["name"],
        "low"
    );
    assert_eq!(
        problem_code(backend.get("/api/v1/rules/not-an-id", Some(&mo)).await).await,
        "NOT_FOUND"
    );

    // Patch: fields replace, the result must still be a rule, nothing changes otherwise.
    let patched = json_of(
        backend
            .json(
                "PATCH",
                &low_path,
                Some(&mo),
                json!({ "priority": 950, "enabled": false }),
            )
            .await,
        200,
    )
    .await;
    assert_eq!(
        (patched["priority"].clone(), patched["enabled"].clone()),
        (json!(950), json!(false))
    );
    assert_eq!(patched["name"], "low");
    for (body, code) in [
        (json!({ "conditions": [] }), "VALIDATION_FAILED"),
        (json!({}), "VALIDATION_FAILED"),
        (json!({ "owner": "me" }), "UNKNOWN_FIELD"),
    ] {
        assert_eq!(
            problem_code(backend.json("PATCH", &low_path, Some(&mo), body).await).await,
            code
        );
    }
    let unchanged = json_of(backend.get(&low_path, Some(&mo)).await, 200).await;
    assert_eq!(unchanged["conditions"].as_array().unwrap().len(), 1);
    assert_eq!(unchanged["priority"], 950);

    // Evaluate: the disabled rule is skipped, the enabled one fires on 3 mugs and not on 2.
    let on = |count: i64| json!({ "context": { "mug_count": count } });
    let three = json_of(
        backend
            .json("POST", "/api/v1/rules/evaluate", Some(&mo), on(3))
            .await,
        200,
    )
    .await;
    assert_eq!(three["verdict"], "reject");
    assert_eq!(three["matches"].as_array().unwrap().len(), 1);
    assert_eq!(three["matches"][0]["rule_id"], high["id"]);
    assert_eq!(three["skipped"], json!([low["id"]]));
    assert_eq!(three["messages"], json!(["high fired"]));
    let two = json_of(
        backend
            .json("POST", "/api/v1/rules/evaluate", Some(&mo), on(2))
            .await,
        200,
    )
    .await;
    assert_eq!(two["verdict"], "accept");
    // An analyst may evaluate (rules:execute) but has no rules of their own.
    let theirs = json_of(
        backend
            .json("POST", "/api/v1/rules/evaluate", Some(&al), on(3))
            .await,
        200,
    )
    .await;
    assert_eq!(
        (theirs["verdict"].clone(), theirs["rules_evaluated"].clone()),
        (json!("accept"), json!(0))
    );
    let foreign = json!({ "rule_ids": [high["id"]], "context": { "mug_count": 3 } });
    assert_eq!(
        problem_code(
            backend
                .json("POST", "/api/v1/rules/evaluate", Some(&al), foreign)
                .await
        )
        .await,
        "NOT_FOUND"
    );
    // An analysis result as the context: one fact set per mug.
    let position = |key: &str, x: f64| {
        json!({
            "detection_index": 0, "position_key": key, "confidence": 0.8,
            "center": { "x": x, "y": 100 }, "relative": { "x": x / 320.0, "y": 0.4 },
            "reference": { "x": 160, "y": 120 }, "offset_px": { "x": x - 160.0, "y": -20 },
            "distance_px": (x - 160.0).abs(),
        })
    };
    let detection = json!({ "bbox": { "top_left": { "x": 0, "y": 0 }, "bottom_right": { "x": 10, "y": 10 }, "confidence": 0.9 }, "class_name": "mug" });
    let centred = json_of(
        backend
            .json(
                "POST",
                "/api/v1/rules",
                Some(&mo),
                json!({
                    "name": "off centre",
                    "conditions": [{ "field": "offset_px.x", "operator": "abs>", "value": 50 }],
                    "actions": [{ "action": "adjust", "parameters": { "target": "center" } }],
                }),
            )
            .await,
        201,
    )
    .await;
    let analysis = json!({
        "rule_ids": [centred["id"]],
        "context": {
            "detections": [detection, detection],
            "positioning": [position("center", 170.0), position("left_edge", 30.0)],
        },
    });
    let per_mug = json_of(
        backend
            .json("POST", "/api/v1/rules/evaluate", Some(&mo), analysis)
            .await,
        200,
    )
    .await;
    assert_eq!(per_mug["fact_sets"], 2);
    assert_eq!(per_mug["matches"].as_array().unwrap().len(), 1, "{per_mug}");
    assert_eq!(per_mug["matches"][0]["mug_index"], 1);
    assert_eq!(per_mug["adjustments"], json!([{ "target": "center" }]));

    // Natural language: a draft is not saved; nonsense is refused with the field.
    let before = json_of(backend.get("/api/v1/rules", Some(&mo)).await, 200).await["total"].clone();
    let draft = json_of(
        backend
            .json(
                "POST",
                "/api/v1/rules/natural-language",
                Some(&mo),
                json!({ "text": "keep the mug within 50 mm of the centre", "context": "desk" }),
            )
            .await,
        200,
    )
    .await;
    assert_eq!(draft["saved"], false);
    assert_eq!(draft["rule"]["actions"][0]["action"], "adjust");
    assert_eq!(draft["rule"]["context"], "desk");
    assert!(draft["interpretation"].as_str().unwrap().contains("50"));
    assert!(draft["confidence"].as_f64().unwrap() > 0.5);
    assert_eq!(
        json_of(backend.get("/api/v1/rules", Some(&mo)).await, 200).await["total"],
        before
    );
    let nonsense = backend
        .json(
            "POST",
            "/api/v1/rules/natural-language",
            Some(&mo),
            json!({ "text": "the weather is lovely" }),
        )
        .await;
    assert_eq!(nonsense.status(), 422);
    let problem: Value = nonsense.json().await.unwrap();
    assert_eq!(problem["code"], "VALIDATION_FAILED");
    assert_eq!(problem["errors"][0]["field"], "text");
    assert_eq!(
        problem_code(
            backend
                .json(
                    "POST",
                    "/api/v1/rules/natural-language",
                    Some(&al),
                    json!({ "text": "alert if the mug is near the left edge" })
                )
                .await
        )
        .await,
        "INSUFFICIENT_PERMISSIONS"
    );

    // Delete: gone for good; another principal's rule cannot be deleted.
    let high_path = format!("/api/v1/rules/{}", high["id"].as_str().unwrap());
    let not_theirs = backend
        .signed("DELETE", &high_path, Some(&al), None, Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(problem_code(not_theirs).await, "INSUFFICIENT_PERMISSIONS");
    let deleted = backend
        .signed("DELETE", &high_path, Some(&mo), None, Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        problem_code(backend.get(&high_path, Some(&mo)).await).await,
        "NOT_FOUND"
    );
}

on_both_stores!(rules, rules_api);

async fn retained_images(kind: Backend) {
    let backend = TestBackend::start_configured(kind, |args| args.retain_images = true).await;
    let owner = backend.add_user("ret", PASSWORD, &["analyst"]).await;
    let (ret, _, _) = backend.session("ret", PASSWORD).await;
    let image = png_of(&[(160.0, 150.0, 60.0)]);
    let analysis = analysed(&backend, &ret, form(&[("image/png", &image)], &[])).await;
    assert_eq!(analysis["image"]["retained"], true);
    assert_eq!(analysis["mug_count"], 1, "{analysis}");
    let store = backend.db.store().await;
    let (records, _) = store.list_analyses(Some(&owner), 1, 0).await.unwrap();
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(records[0].sealed_image.as_deref().unwrap())
        .unwrap();
    assert!(
        !sealed.windows(4).any(|w| w == b"IHDR"),
        "stored sealed, not in clear"
    );
    let (keys, _) =
        gpu_backend::keys::BackendKeys::load_or_generate(&backend.data_dir, &Default::default(), 0)
            .unwrap();
    let context = gpu_backend::http::analysis::image_context(&records[0].id);
    assert_eq!(keys.seal.open(&context, &sealed).unwrap(), image);
    assert!(keys.seal.open("analyses.image:another", &sealed).is_err());
    // The job still drops its copy.
    let job = store.job(&records[0].job_id).await.unwrap().unwrap();
    assert_eq!(job.payload, json!({}));
}

on_both_stores!(retention, retained_images);
