//! The published NCS Python SDK (`sdk/python/ncs_client.py` of the NCS project) against this
//! system: the calls its `NCSClient` makes, with its session's headers (`Content-Type:
//! application/json` on every request, bodiless ones included; its `User-Agent` and `Accept`;
//! its Bearer token after a form login) and its bodies, reading exactly the fields it reads, and
//! the answers its error handling depends on (`detail` of a 422, an integer `Retry-After` on 429,
//! `X-Request-ID` on each).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Answer, Caller, Outcome, check};

/// The SDK session's `User-Agent`.
const USER_AGENT: &str = "ncs-python-sdk/1.0.0";

/// The fixture user the SDK logs in as: `service` (clusters:read and clusters:write), which no
/// other scenario uses, so the rate-limit step drains no one else's bucket.
const ROLE: &str = "service";

/// A request as the SDK's session sends it: its default headers, and its token once it has one.
fn sdk(
    caller: &Caller,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> reqwest::RequestBuilder {
    sdk_typed(caller, method, path, token, "application/json")
}

/// The same with the `Content-Type` a call sets over the session's (its form login).
fn sdk_typed(
    caller: &Caller,
    method: Method,
    path: &str,
    token: Option<&str>,
    content_type: &str,
) -> reqwest::RequestBuilder {
    let request = caller
        .edge(method, path)
        .header("user-agent", USER_AGENT)
        .header("accept", "application/json")
        .header("content-type", content_type);
    match token {
        Some(token) => request.header("authorization", format!("Bearer {token}")),
        None => request,
    }
}

/// `application/x-www-form-urlencoded` as `requests` writes it.
fn form(fields: &[(&str, &str)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn field<'a>(body: &'a Value, name: &str) -> Result<&'a Value, String> {
    body.get(name)
        .ok_or_else(|| format!("the SDK reads {name}, missing in {body}"))
}

fn number(body: &Value, name: &str) -> Result<f64, String> {
    field(body, name)?
        .as_f64()
        .ok_or_else(|| format!("{name} is no number in {body}"))
}

fn integer(body: &Value, name: &str) -> Result<u64, String> {
    field(body, name)?
        .as_u64()
        .ok_or_else(|| format!("{name} is no integer in {body}"))
}

fn ok(answer: &Answer, what: &str) -> Outcome {
    check(answer.status == StatusCode::OK, || {
        format!("{what}: {} {}", answer.status, answer.body)
    })?;
    check(answer.header("x-request-id").is_some(), || {
        format!("{what}: no X-Request-ID")
    })
}

/// `NCSClient.process_points`: the `ProcessingResult` it builds, checked; how many points it
/// counts (`total_points`: the clusters' points plus the outliers).
fn processing_result(body: &Value) -> Result<usize, String> {
    let mut total = 0;
    let clusters = field(body, "clusters")?
        .as_array()
        .ok_or("clusters is no list")?;
    for cluster in clusters {
        integer(cluster, "id")?;
        let center = field(cluster, "center")?.as_array().ok_or("center")?;
        let points = field(cluster, "points")?.as_array().ok_or("points")?;
        let size = integer(cluster, "size")?;
        number(cluster, "quality")?;
        check(size as usize == points.len(), || {
            format!("size {size} but {} points in {cluster}", points.len())
        })?;
        check(
            points
                .iter()
                .all(|p| p.as_array().is_some_and(|p| p.len() == center.len())),
            || format!("points of another dimension than the center in {cluster}"),
        )?;
        for optional in ["created_at", "last_updated"] {
            // `cluster.get(...)`: absent is fine, a present value must be an ISO string.
            check(
                cluster
                    .get(optional)
                    .is_none_or(|v| v.is_null() || v.is_string()),
                || format!("{optional} in {cluster}"),
            )?;
        }
        total += points.len();
    }
    total += field(body, "outliers")?
        .as_array()
        .ok_or("outliers is no list")?
        .len();
    number(body, "processing_time_ms")?;
    number(body, "algorithm_quality")?;
    check(field(body, "request_id")?.is_string(), || {
        "request_id is no string".into()
    })?;
    Ok(total)
}

fn points(count: usize) -> Vec<Vec<f64>> {
    (0..count)
        .map(|i| {
            let centre = [[0.0, 0.0], [10.0, 10.0], [-10.0, 10.0]][i % 3];
            let jitter = (i % 7) as f64 * 0.01;
            vec![centre[0] + jitter, centre[1] - jitter]
        })
        .collect()
}

pub async fn sdk_contract(caller: &Caller) -> Outcome {
    // NCSClient.authenticate: a form login; the answer's access_token.
    let user = caller.user(ROLE)?;
    let login = caller
        .send(
            sdk_typed(
                caller,
                Method::POST,
                "/auth/login",
                None,
                "application/x-www-form-urlencoded",
            )
            .body(form(&[
                ("username", &user.username),
                ("password", &user.password),
            ])),
        )
        .await?;
    ok(&login, "authenticate")?;
    let token = field(&login.body, "access_token")?
        .as_str()
        .ok_or("access_token is no string")?
        .to_owned();
    let token = Some(token.as_str());

    // health_check.
    let health = caller
        .send(sdk(caller, Method::GET, "/health", token))
        .await?;
    ok(&health, "health_check")?;
    let body = &health.body;
    check(field(body, "status")?.is_string(), || {
        format!("status in {body}")
    })?;
    let timestamp = field(body, "timestamp")?.as_str().unwrap_or("");
    check(
        timestamp.len() >= 20
            && timestamp.as_bytes()[10] == b'T'
            && timestamp.ends_with('Z')
            && timestamp[..4].parse::<u32>().is_ok(),
        || format!("timestamp {timestamp:?} is no ISO 8601 UTC time"),
    )?;
    check(field(body, "version")?.is_string(), || {
        format!("version in {body}")
    })?;
    check(field(body, "algorithm_ready")?.is_boolean(), || {
        format!("algorithm_ready in {body}")
    })?;
    number(body, "uptime_seconds")?;
    check(body.get("components").is_none_or(Value::is_object), || {
        format!("components in {body}")
    })?;

    // process_points, then process_points_batch (batch_mode and its timeout in seconds).
    let first = points(30);
    let answer = caller
        .send(
            sdk(caller, Method::POST, "/api/v1/process_points", token)
                .body(json!({ "points": first }).to_string()),
        )
        .await?;
    ok(&answer, "process_points")?;
    let counted = processing_result(&answer.body)?;
    check(counted == first.len(), || {
        format!("the SDK counts {counted} points of {}", first.len())
    })?;
    let batch = points(45);
    let answer = caller
        .send(
            sdk(caller, Method::POST, "/api/v1/process_points", token)
                .body(json!({ "points": batch, "batch_mode": true, "timeout": 60 }).to_string()),
        )
        .await?;
    ok(&answer, "process_points_batch")?;
    let counted = processing_result(&answer.body)?;
    check(counted == batch.len(), || {
        format!("the SDK counts {counted} points of {}", batch.len())
    })?;

    // get_clusters_summary: GET with no parameters, the JSON object as it is.
    let summary = caller
        .send(sdk(caller, Method::GET, "/api/v1/clusters_summary", token))
        .await?;
    ok(&summary, "get_clusters_summary")?;
    check(summary.body.is_object(), || {
        format!("clusters summary {}", summary.body)
    })?;

    // get_algorithm_status.
    let status = caller
        .send(sdk(caller, Method::GET, "/api/v1/algorithm_status", token))
        .await?;
    ok(&status, "get_algorithm_status")?;
    let body = &status.body;
    check(field(body, "is_ready")?.is_boolean(), || {
        format!("is_ready in {body}")
    })?;
    integer(body, "active_clusters")?;
    let total = integer(body, "total_points_processed")?;
    check(total == (first.len() + batch.len()) as u64, || {
        format!("total_points_processed {total}")
    })?;
    for name in [
        "clustering_quality",
        "memory_usage_mb",
        "last_processing_time_ms",
        "uptime_seconds",
    ] {
        number(body, name)?;
    }
    integer(body, "error_count")?;

    // Its error handling: 401 is AuthenticationError; 422 reads `detail`.
    let anonymous = caller
        .send(sdk(caller, Method::GET, "/api/v1/algorithm_status", None))
        .await?;
    anonymous.refused(401, "MISSING_CREDENTIALS")?;
    let empty =
        || sdk(caller, Method::POST, "/api/v1/process_points", token).body(r#"{"points":[]}"#);
    let invalid = caller.send(empty()).await?;
    invalid.refused(422, "EMPTY_POINTS")?;
    check(invalid.body["detail"].is_string(), || {
        format!("a 422 without detail: {}", invalid.body)
    })?;

    // 429: `int(response.headers.get("Retry-After", 60))`. NCS batches have a burst of 10 per
    // principal; the requests above used some of it.
    for attempt in 0..30 {
        let answer = caller.send(empty()).await?;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            answer.refused(429, "RATE_LIMIT_EXCEEDED")?;
            let retry_after = answer.header("retry-after").unwrap_or("");
            return check(retry_after.parse::<u64>().is_ok_and(|s| s >= 1), || {
                format!("Retry-After {retry_after:?} is no integer of seconds")
            });
        }
        answer
            .refused(422, "EMPTY_POINTS")
            .map_err(|e| format!("attempt {attempt}: {e}"))?;
    }
    Err("30 batches in a row were never rate-limited".into())
}
