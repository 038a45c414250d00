//! Snapshots of the public JSON shapes, taken through the edge with insta (the `.snap` files in
//! `snapshots/`): a renamed, added or removed field fails its test. Ids, tokens, timestamps and
//! timings are redacted, and so are the detector's measurements (they move in the last digits
//! between machines; the mug scenario checks what they mean), so a snapshot changes with the
//! shape only. After an intended change, `INSTA_UPDATE=always cargo test -p h200-e2e --test native
//! shape` rewrites them (or `cargo insta review`).

use insta::internals::{Content, Redaction};
use insta::{Settings, assert_json_snapshot, dynamic_redaction};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Caller, Outcome, Scenario, analysis_form, check};

macro_rules! shape {
    ($description:literal, $function:ident) => {
        Scenario {
            name: $description,
            function: stringify!($function),
            run: |caller| Box::pin($function(caller)),
            isolated: false,
        }
    };
}

/// The snapshot tests, run like scenarios against one edge.
pub fn snapshots() -> Vec<Scenario> {
    vec![
        shape!("the login answer", login_answer_shape),
        shape!("a problem+json refusal", problem_refusal_shape),
        shape!("the answer to process_points", process_points_shape),
        shape!("the clusters summary", clusters_summary_shape),
        shape!("an analysis result", analysis_result_shape),
    ]
}

/// Compares `value` with the snapshot `name`, `redactions` applied first.
fn snapshot(name: &str, value: &Value, redactions: Vec<(&str, Redaction)>) {
    let mut settings = Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.set_sort_maps(true);
    for (selector, redaction) in redactions {
        settings.add_redaction(selector, redaction);
    }
    settings.bind(|| assert_json_snapshot!(name, value));
}

fn marker(text: &'static str) -> Redaction {
    Redaction::from(text)
}

/// A number the detector measured (it moves in the last digits between machines): `[number]`,
/// anything else as it is, so a number that turns into another type still shows.
fn measured() -> Redaction {
    dynamic_redaction(
        |value, _| match value.as_f64().or(value.as_u64().map(|n| n as f64)) {
            Some(_) => Content::from("[number]"),
            None => value,
        },
    )
}

async fn login_answer_shape(caller: &Caller) -> Outcome {
    let pair = caller.login_from("viewer", &caller.ip).await?;
    snapshot(
        "login_answer",
        &pair,
        vec![
            (".access_token", marker("[token]")),
            (".refresh_token", marker("[token]")),
        ],
    );
    Ok(())
}

async fn problem_refusal_shape(caller: &Caller) -> Outcome {
    let answer = caller
        .send(caller.edge(Method::GET, "/api/v1/rules"))
        .await?;
    answer.refused(401, "MISSING_CREDENTIALS")?;
    snapshot(
        "problem_refusal",
        &answer.body,
        vec![(".request_id", marker("[request id]"))],
    );
    Ok(())
}

/// Posts two well-separated groups of points into `stream` as the `user` fixture user.
async fn process_points(caller: &Caller, stream: &str) -> Result<(String, Value), String> {
    let token = caller.token("user").await?;
    let body = json!({
        "points": [[0.0, 0.0], [0.1, 0.1], [0.0, 0.1], [10.0, 10.0], [10.1, 9.9], [9.9, 10.1]],
        "stream": stream,
    });
    let answer = caller
        .send(
            caller
                .edge(Method::POST, "/api/v1/process_points")
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await?;
    check(answer.status == StatusCode::OK, || {
        format!("process_points: {} {}", answer.status, answer.body)
    })?;
    Ok((token, answer.body))
}

async fn process_points_shape(caller: &Caller) -> Outcome {
    let (_, answer) = process_points(caller, "shape-points").await?;
    snapshot(
        "process_points_answer",
        &answer,
        vec![
            (".request_id", marker("[request id]")),
            (".job_id", marker("[job id]")),
            (".processing_time_ms", marker("[timing]")),
        ],
    );
    Ok(())
}

async fn clusters_summary_shape(caller: &Caller) -> Outcome {
    let (token, _) = process_points(caller, "shape-summary").await?;
    let answer = caller
        .send(
            caller
                .edge(Method::GET, "/api/v1/clusters_summary?stream=shape-summary")
                .bearer_auth(&token),
        )
        .await?;
    check(answer.status == StatusCode::OK, || {
        format!("clusters_summary: {} {}", answer.status, answer.body)
    })?;
    snapshot(
        "clusters_summary",
        &answer.body,
        vec![
            (".request_id", marker("[request id]")),
            (".clusters_info[].last_updated", marker("[timestamp]")),
        ],
    );
    Ok(())
}

/// An admin saves a rule from a sentence and uploads the example photo, waiting for the result.
async fn analysis_result_shape(caller: &Caller) -> Outcome {
    let admin = caller.token("admin").await?;
    let drafted = caller
        .send(
            caller
                .edge(Method::POST, "/api/v1/rules/natural-language")
                .bearer_auth(&admin)
                .header("content-type", "application/json")
                .body(r#"{"text":"alert if the mug is near the left edge","save":true}"#),
        )
        .await?;
    check(drafted.status == StatusCode::CREATED, || {
        format!("drafting a rule: {} {}", drafted.status, drafted.body)
    })?;
    let boundary = "h200-e2e-shape";
    let answer = caller
        .send(
            caller
                .edge(Method::POST, "/api/v1/analysis?wait=60")
                .bearer_auth(&admin)
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(analysis_form(
                    boundary,
                    &[("calibration_mm_per_pixel", "0.5")],
                )),
        )
        .await?;
    check(answer.status == StatusCode::OK, || {
        format!("upload: {} {}", answer.status, answer.body)
    })?;
    snapshot(
        "analysis_result",
        &answer.body,
        vec![
            (".id", marker("[analysis id]")),
            (".owner", marker("[user id]")),
            (".request_id", marker("[request id]")),
            (".created_at_ms", marker("[timestamp]")),
            (".completed_at_ms", marker("[timestamp]")),
            (".processing_time_ms", marker("[timing]")),
            (".model_version", marker("[model version]")),
            (".rule_violations[].rule_id", marker("[rule id]")),
            (".detections[].bbox.confidence", measured()),
            (".detections[].bbox.top_left.*", measured()),
            (".detections[].bbox.bottom_right.*", measured()),
            (".positioning[].center.*", measured()),
            (".positioning[].confidence", measured()),
            (".positioning[].distance_mm", measured()),
            (".positioning[].distance_px", measured()),
            (".positioning[].offset_mm.*", measured()),
            (".positioning[].offset_px.*", measured()),
            (".positioning[].relative.*", measured()),
            (".suggestions[].dx_mm", measured()),
            (".suggestions[].dx_px", measured()),
            (".suggestions[].dy_mm", measured()),
            (".suggestions[].dy_px", measured()),
        ],
    );
    Ok(())
}
