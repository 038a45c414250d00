//! The OpenAPI document is the edge's own answer on every runtime: `GET /openapi.json` is public,
//! JSON, hardened like any answer and equal to the committed `shared/openapi.json`.

use reqwest::Method;
use serde_json::Value;

use crate::{Caller, Outcome, check};

pub async fn openapi_document_served(caller: &Caller) -> Outcome {
    let answer = caller
        .send(caller.edge(Method::GET, shared::openapi::PATH))
        .await?;
    check(answer.status.as_u16() == 200, || {
        format!("expected 200, got {} {}", answer.status, answer.body)
    })?;
    check(
        answer
            .header("content-type")
            .is_some_and(|value| value.starts_with("application/json")),
        || format!("content type {:?}", answer.header("content-type")),
    )?;
    let committed: Value =
        serde_json::from_str(shared::openapi::DOCUMENT).map_err(|e| e.to_string())?;
    check(answer.body == committed, || {
        let paths = |document: &Value| {
            document["paths"]
                .as_object()
                .map(|paths| paths.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        format!(
            "the served document differs from shared/openapi.json (served {} paths: {:?}; committed {} paths)",
            paths(&answer.body).len(),
            paths(&answer.body),
            paths(&committed).len(),
        )
    })?;
    answer.hardened()
}
