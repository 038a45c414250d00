//! `GET /api/v1/admin/reports/access`: the compliance report of a time window, as JSON or CSV.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shared::ErrorCode;
use shared::audit::AuditEventType;

use super::SharedState;
use super::auth::audit;
use super::error::{ApiError, ApiQuery, ApiResult};
use super::gate::Caller;
use crate::store::now_ms;

/// The window a report covers when `from` is not given: the 30 days before `to`.
pub const DEFAULT_WINDOW_MS: i64 = 30 * 86_400_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// Inclusive lower bound, unix milliseconds; default `to` less 30 days.
    #[serde(default)]
    from: Option<i64>,
    /// Exclusive upper bound, unix milliseconds; default now.
    #[serde(default)]
    to: Option<i64>,
    /// `json` (default) or `csv`; without it, an `Accept` of `text/csv` asks for CSV.
    #[serde(default)]
    format: Option<String>,
}

/// Whether the caller asked for CSV: `?format=csv`, or an `Accept` naming `text/csv`.
fn wants_csv(format: Option<&str>, headers: &HeaderMap) -> ApiResult<bool> {
    match format {
        Some("csv") => Ok(true),
        Some("json") => Ok(false),
        Some(_) => Err(ApiError::field(
            ErrorCode::ValidationFailed,
            "format",
            "must be json or csv",
        )),
        None => Ok(headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/csv"))),
    }
}

/// `GET /api/v1/admin/reports/access?from=&to=&format=`: access events by principal and type,
/// and the totals (failed logins, permission denials, administrator actions, data exports,
/// erasures, blocks) of `[from, to)`.
pub async fn access(
    State(state): State<SharedState>,
    caller: Caller,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> ApiResult<Response> {
    let csv = wants_csv(query.format.as_deref(), &headers)?;
    let to = query.to.unwrap_or_else(now_ms);
    let from = query.from.unwrap_or(to.saturating_sub(DEFAULT_WINDOW_MS));
    if from >= to {
        return Err(ApiError::field(
            ErrorCode::ValidationFailed,
            "from",
            "must be before to",
        ));
    }
    let report = state.store.access_report(from, to).await?;
    audit(
        &state,
        &caller,
        AuditEventType::DataAccess,
        Some(&caller.principal.subject),
        &format!("access report {from}..{to}"),
    )
    .await;
    if !csv {
        return Ok(Json(report).into_response());
    }
    let mut response = report.to_csv().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) =
        HeaderValue::from_str(&format!("attachment; filename=\"access-{from}-{to}.csv\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
