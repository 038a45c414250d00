//! Operational endpoints: `GET /health` (liveness), `GET /ready` (readiness: the database and
//! an online worker for every kernel kind the backend queues) and `GET /api/v1/version`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::BTreeMap;

use super::SharedState;
use super::servers::OFFLINE_AFTER_MS;
use crate::store::now_ms;
use kernel::analysis::ANALYSIS_KIND;
use kernel::ncs::NCS_KIND;

/// The job kinds the backend queues, each needing a worker: NCS batches and image analyses
/// (the mug detector's model loads before its worker registers, so an online `analysis` worker
/// means a loaded model).
pub const QUEUED_KINDS: [&str; 2] = [NCS_KIND, ANALYSIS_KIND];

/// `GET /health`: liveness, in the published NCS contract's shape plus our `database`.
#[derive(Debug, Serialize)]
pub struct HealthBody {
    /// `ok` when the database answers, else `degraded` (and 503).
    pub status: &'static str,
    /// `ok` or `unreachable`.
    pub database: &'static str,
    /// Now, RFC 3339 in UTC.
    pub timestamp: String,
    /// The backend's version.
    pub version: &'static str,
    /// Whether a worker runs the NCS kernel now.
    pub algorithm_ready: bool,
    /// Seconds since this backend process started.
    pub uptime_seconds: f64,
    /// Each component (`database`, `ncs`, `analysis`) and its state: `ok`, `unreachable` or
    /// `no_worker`.
    pub components: BTreeMap<&'static str, &'static str>,
}

/// `GET /ready`: 200 when every component is ready, else 503 naming the ones that are not.
#[derive(Debug, Serialize)]
pub struct ReadyBody {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// Each component and its state, as in [`HealthBody::components`].
    pub components: BTreeMap<&'static str, &'static str>,
    /// The components that are not ready, in name order.
    pub not_ready: Vec<&'static str>,
}

/// `GET /api/v1/version`.
#[derive(Debug, Serialize)]
pub struct VersionBody {
    /// The backend's version.
    pub version: &'static str,
    /// The public API's version prefix.
    pub api_version: &'static str,
    /// The NCS algorithm version the exact mode follows.
    pub algorithm_version: &'static str,
}

/// The kinds some online, unpaused worker serves now.
pub async fn online_kinds(state: &SharedState) -> Vec<String> {
    let now = now_ms();
    let workers = state
        .store
        .list_workers(now - OFFLINE_AFTER_MS)
        .await
        .unwrap_or_default();
    let mut kinds: Vec<String> = workers
        .into_iter()
        .filter(|w| {
            w.state != "stopped"
                && w.state != "paused"
                && now - w.heartbeat_at_ms <= OFFLINE_AFTER_MS
        })
        .flat_map(|w| w.kinds)
        .collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

async fn components(state: &SharedState) -> BTreeMap<&'static str, &'static str> {
    let database = state.store.ping().await;
    let mut components = BTreeMap::new();
    components.insert("database", if database { "ok" } else { "unreachable" });
    let online = if database {
        online_kinds(state).await
    } else {
        Vec::new()
    };
    for kind in QUEUED_KINDS {
        let ready = online.iter().any(|k| k == kind);
        components.insert(kind, if ready { "ok" } else { "no_worker" });
    }
    components
}

pub async fn health(State(state): State<SharedState>) -> Response {
    let components = components(&state).await;
    let database = components["database"] == "ok";
    let body = HealthBody {
        status: if database { "ok" } else { "degraded" },
        database: components["database"],
        timestamp: rfc3339(now_ms()),
        version: env!("CARGO_PKG_VERSION"),
        algorithm_ready: components[NCS_KIND] == "ok",
        uptime_seconds: state.started.elapsed().as_secs_f64(),
        components,
    };
    let status = if database {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

pub async fn ready(State(state): State<SharedState>) -> Response {
    let components = components(&state).await;
    let not_ready: Vec<&'static str> = components
        .iter()
        .filter(|(_, v)| **v != "ok")
        .map(|(k, _)| *k)
        .collect();
    let status = if not_ready.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = ReadyBody {
        status: if not_ready.is_empty() {
            "ready"
        } else {
            "not_ready"
        },
        components,
        not_ready,
    };
    (status, Json(body)).into_response()
}

pub async fn version() -> Response {
    Json(VersionBody {
        version: env!("CARGO_PKG_VERSION"),
        api_version: "v1",
        algorithm_version: "8",
    })
    .into_response()
}

/// `ms` since the Unix epoch as RFC 3339 in UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_798_761_599_999), "2026-12-31T23:59:59.999Z");
    }
}
