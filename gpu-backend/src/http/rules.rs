//! Placement rules over HTTP: CRUD on the caller's rules, evaluation against analysis facts, and
//! drafting a rule from an English sentence.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::ErrorCode;
use shared::body::{
    NaturalLanguageRuleRequest, RuleDefinition, RuleEvaluateRequest, RulePatch, Validate,
    parse_valid,
};

use super::analysis::is_id;
use super::error::{ApiError, ApiQuery, ApiResult};
use super::gate::Caller;
use super::{SharedState, page};
use crate::store::StoreError;
use crate::store::rules::{MAX_RULES_PER_OWNER, RuleFilter, RuleRecord};
use mug::Analysis;
use mug::language::parse_rule;
use mug::rules::{self as engine, StoredRule, mug_facts};

/// Default and largest page of `GET /api/v1/rules`.
const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 1_000;

fn rule_view(record: &RuleRecord, caller: &Caller) -> Value {
    let mut view = serde_json::to_value(record).unwrap_or_default();
    view["request_id"] = json!(caller.request_id);
    view
}

/// `status` with `body` and the `Location` of rule `id`.
fn with_location(status: StatusCode, body: Value, id: &str) -> Response {
    let mut response = (status, Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/rules/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn too_many(error: StoreError) -> ApiError {
    match error {
        StoreError::Conflict => ApiError::detail(
            ErrorCode::Conflict,
            format!("a principal keeps at most {MAX_RULES_PER_OWNER} rules"),
        ),
        other => other.into(),
    }
}

/// Rule `id` if `caller` may use it on this route: their own, or anyone's with the route's admin
/// permission; otherwise "not found".
async fn visible(state: &SharedState, caller: &Caller, id: &str) -> ApiResult<RuleRecord> {
    let not_found = || ApiError::detail(ErrorCode::NotFound, "no such rule");
    if !is_id(id) {
        return Err(not_found());
    }
    let record = state.store.rule(id).await?.ok_or_else(not_found)?;
    if record.owner == caller.principal.subject || caller.acts_for_others() {
        Ok(record)
    } else {
        Err(not_found())
    }
}

/// `GET /api/v1/rules` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    context: Option<String>,
    /// Whose rules: the caller's when absent; another principal's needs the admin permission.
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

/// `GET /api/v1/rules`: highest priority first.
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    let (limit, offset) = page(query.limit, query.offset, DEFAULT_PAGE, MAX_PAGE)?;
    let owner = caller.listing_owner(query.owner, "the rules")?;
    let (rules, total) = state
        .store
        .list_rules(&RuleFilter {
            owner: Some(&owner),
            context: query.context.as_deref(),
            limit,
            offset,
        })
        .await?;
    Ok(Json(json!({
        "rules": rules,
        "total": total,
        "limit": limit,
        "offset": offset,
        "request_id": caller.request_id,
    }))
    .into_response())
}

/// `POST /api/v1/rules`: 201 with the stored rule.
pub async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Response> {
    let rule: RuleDefinition = parse_valid(&body)?;
    let record = state
        .store
        .create_rule(&caller.principal.subject, &rule)
        .await
        .map_err(too_many)?;
    Ok(with_location(
        StatusCode::CREATED,
        rule_view(&record, &caller),
        &record.stored.id,
    ))
}

/// `GET /api/v1/rules/{id}`.
pub async fn get_one(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let record = visible(&state, &caller, &id).await?;
    Ok(Json(rule_view(&record, &caller)).into_response())
}

/// `PATCH /api/v1/rules/{id}`: the fields given replace the stored ones; the result must still
/// be a valid rule, or nothing changes.
pub async fn update(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let patch: RulePatch = parse_valid(&body)?;
    visible(&state, &caller, &id).await?;
    let updated = state
        .store
        .update_rule(&id, &patch, RuleDefinition::validate)
        .await?
        .ok_or_else(|| ApiError::detail(ErrorCode::NotFound, "no such rule"))?;
    let record = updated?;
    Ok(Json(rule_view(&record, &caller)).into_response())
}

/// `DELETE /api/v1/rules/{id}`: 204.
pub async fn delete_one(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    visible(&state, &caller, &id).await?;
    if state.store.delete_rule(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::detail(ErrorCode::NotFound, "no such rule"))
    }
}

/// The fact sets of an evaluation `context`: one per mug when it is an analysis result (it has
/// `detections` and `positioning`), else the object itself.
fn fact_sets(context: &Value) -> Vec<Value> {
    let looks_like_analysis = context.get("detections").is_some_and(Value::is_array)
        && context.get("positioning").is_some_and(Value::is_array);
    if looks_like_analysis
        && let Ok(mut analysis) = serde_json::from_value::<Analysis>(context.clone())
    {
        if analysis.mug_count == 0 {
            analysis.mug_count = analysis.detections.len();
        }
        return mug_facts(&analysis);
    }
    vec![context.clone()]
}

/// The named rules (or all the caller's) evaluated against the facts given.
async fn evaluate_rules(
    state: &SharedState,
    caller: &Caller,
    request: &RuleEvaluateRequest,
) -> ApiResult<Value> {
    let owner = &caller.principal.subject;
    let rules: Vec<StoredRule> = match &request.rule_ids {
        Some(ids) => {
            let mut rules = Vec::with_capacity(ids.len());
            for id in ids {
                let missing =
                    || ApiError::field(ErrorCode::NotFound, "rule_ids", format!("no rule {id}"));
                if !is_id(id) {
                    return Err(missing());
                }
                let record = state.store.rule(id).await?.ok_or_else(missing)?;
                if &record.owner != owner {
                    return Err(missing());
                }
                rules.push(record.stored);
            }
            rules
        }
        None => state
            .store
            .rules_of(owner, None)
            .await?
            .into_iter()
            .map(|record| record.stored)
            .collect(),
    };
    let facts = fact_sets(&request.context);
    let evaluation = engine::evaluate(&rules, &facts);
    Ok(json!({
        "verdict": evaluation.verdict,
        "matches": evaluation.matches,
        "messages": evaluation.messages,
        "adjustments": evaluation.adjustments,
        "skipped": evaluation.skipped,
        "rules_evaluated": rules.len(),
        "fact_sets": facts.len(),
        "request_id": caller.request_id,
    }))
}

/// `POST /api/v1/rules/evaluate`.
pub async fn evaluate(
    State(state): State<SharedState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Response> {
    let request: RuleEvaluateRequest = parse_valid(&body)?;
    Ok(Json(evaluate_rules(&state, &caller, &request).await?).into_response())
}

/// `POST /api/v1/rules/natural-language`: a drafted rule with its interpretation, confidence and
/// warnings; with `"save": true` it is also stored (201, with its `id` and the stored `rule`).
pub async fn natural_language(
    State(state): State<SharedState>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Response> {
    let request: NaturalLanguageRuleRequest = parse_valid(&body)?;
    let mut parsed = parse_rule(&request.text, request.name.as_deref())
        .map_err(|e| ApiError::field(ErrorCode::ValidationFailed, "text", e.to_string()))?;
    parsed.rule.context = request.context.clone();
    parsed.rule.validate()?;
    let draft = json!({
        "interpretation": parsed.interpretation,
        "confidence": parsed.confidence,
        "warnings": parsed.warnings,
    });
    if request.save {
        let record = state
            .store
            .create_rule(&caller.principal.subject, &parsed.rule)
            .await
            .map_err(too_many)?;
        let mut body = draft;
        body["id"] = json!(record.stored.id);
        body["saved"] = json!(true);
        body["rule"] = serde_json::to_value(&record).unwrap_or_default();
        body["request_id"] = json!(caller.request_id);
        return Ok(with_location(StatusCode::CREATED, body, &record.stored.id));
    }
    let mut body = draft;
    body["saved"] = json!(false);
    body["rule"] = serde_json::to_value(&parsed.rule).unwrap_or_default();
    body["request_id"] = json!(caller.request_id);
    Ok(Json(body).into_response())
}
