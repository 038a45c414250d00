//! The backend's HTTP surface. Every route but `/health` and `/.well-known/jwks.json` sits behind
//! the signature [`gate`]; handlers translate HTTP into calls on the store and the auth service.

pub mod admin;
pub mod analysis;
pub mod auth;
pub mod error;
pub mod gate;
pub mod internal;
pub mod jobs;
pub mod ncs;
pub mod rules;
pub mod servers;

use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use shared::permissions::RoleSet;
use shared::route_policy::RoutePolicy;
use shared::signing::{MemoryNonceStore, SignatureVerifier};

use crate::auth::password::PasswordHasher;
use crate::auth::tokens::TokenIssuer;
use crate::metrics::Metrics;
use crate::seal::SealKeys;
use crate::store::Store;
use error::ProblemMarker;

/// Most nonces the replay store holds: a minute of traffic at well over 10 000 requests/s.
const NONCE_CAPACITY: usize = 1_000_000;

/// Everything a handler may need, shared by all requests.
pub struct AppState {
    pub store: Store,
    /// The token issuer; swapped whole when the key file changes (rotation).
    pub tokens: RwLock<Arc<TokenIssuer>>,
    pub hasher: Arc<PasswordHasher>,
    pub roles: RoleSet,
    pub routes: RoutePolicy,
    pub verifier: SignatureVerifier,
    /// Nonces of accepted signatures, for as long as their signature could be replayed.
    pub nonces: Mutex<MemoryNonceStore>,
    pub seal: SealKeys,
    pub metrics: Metrics,
    /// Shown as the issuer in authenticator apps.
    pub totp_issuer: String,
    /// Whether uploaded images are kept (sealed) with their analyses.
    pub retain_images: bool,
}

impl AppState {
    pub fn new(
        store: Store,
        tokens: TokenIssuer,
        roles: RoleSet,
        routes: RoutePolicy,
        verifier: SignatureVerifier,
        seal: SealKeys,
    ) -> AppState {
        AppState {
            store,
            tokens: RwLock::new(Arc::new(tokens)),
            hasher: Arc::new(PasswordHasher::new()),
            roles,
            routes,
            verifier,
            nonces: Mutex::new(MemoryNonceStore::new(NONCE_CAPACITY)),
            seal,
            metrics: Metrics::default(),
            totp_issuer: "H200".into(),
            retain_images: false,
        }
    }

    /// Whether `caller` may act on other principals' items on `method path` (a request path): the
    /// route policy names the permission (`admin_permission`), and the caller holds it.
    pub fn acts_for_others(&self, caller: &gate::Caller, method: &str, path: &str) -> bool {
        match self.routes.resolve(method, path) {
            shared::route_policy::Resolution::Found(found) => found
                .route
                .admin_permission
                .is_some_and(|p| caller.principal.has(p)),
            _ => false,
        }
    }

    /// Whose items a listing on `path` shows: `requested`, or the caller when absent. Another
    /// principal's needs the route's admin permission (`what` names the items in the refusal).
    pub fn listing_owner(
        &self,
        caller: &gate::Caller,
        requested: Option<String>,
        path: &str,
        what: &str,
    ) -> Result<String, error::ApiError> {
        let owner = requested.unwrap_or_else(|| caller.principal.subject.clone());
        if owner != caller.principal.subject && !self.acts_for_others(caller, "GET", path) {
            return Err(error::ApiError::detail(
                shared::ErrorCode::InsufficientPermissions,
                format!("listing another principal's {what} needs the admin permission"),
            ));
        }
        Ok(owner)
    }

    /// The issuer in force now.
    pub fn tokens(&self) -> Arc<TokenIssuer> {
        self.tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

pub type SharedState = Arc<AppState>;

/// The whole router: open routes, then everything else behind the signature gate.
pub fn router(state: SharedState) -> Router {
    let gated = Router::new()
        .route("/auth/login", post(auth::login))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/password", post(auth::change_password))
        .route("/auth/mfa/setup", post(auth::mfa_setup))
        .route("/auth/mfa/verify", post(auth::mfa_verify))
        .route(
            "/auth/api-keys",
            post(auth::create_api_key).get(auth::list_api_keys),
        )
        .route("/auth/api-keys/{id}", delete(auth::revoke_api_key))
        .route("/api/v1/admin/audit", get(admin::audit_log))
        .route("/api/v1/admin/users", get(admin::users))
        .route("/api/v1/me/export", get(admin::export_me))
        .route("/api/v1/me", delete(admin::erase_me))
        .route(
            "/api/v1/analysis",
            post(analysis::submit).get(analysis::list),
        )
        .route(
            "/api/v1/analysis/{id}",
            get(analysis::get_one).delete(analysis::delete_one),
        )
        .route("/api/v1/analysis/{id}/feedback", post(analysis::feedback))
        .route("/api/v1/rules", get(rules::list).post(rules::create))
        .route("/api/v1/rules/evaluate", post(rules::evaluate))
        .route(
            "/api/v1/rules/natural-language",
            post(rules::natural_language),
        )
        .route(
            "/api/v1/rules/{id}",
            get(rules::get_one)
                .patch(rules::update)
                .delete(rules::delete_one),
        )
        .route("/api/v1/process_points", post(ncs::process_points))
        .route("/api/v1/clusters_summary", get(ncs::clusters_summary))
        .route("/api/v1/algorithm_status", get(ncs::algorithm_status))
        .route("/api/v1/servers", get(servers::list))
        .route("/api/v1/servers/{id}/{action}", post(servers::control))
        .route("/metrics", get(metrics))
        .route("/internal/v1/revocations", get(internal::revocations))
        .route("/internal/v1/api-keys/{digest}", get(internal::api_key))
        .route("/internal/v1/audit", post(internal::ingest_audit))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            gate::verify_signature,
        ));
    Router::new()
        .route("/health", get(health))
        .route("/.well-known/jwks.json", get(jwks))
        .merge(gated)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

async fn health(State(state): State<SharedState>) -> Response {
    let database = state.store.ping().await;
    let body = serde_json::json!({
        "status": if database { "ok" } else { "degraded" },
        "database": if database { "ok" } else { "unreachable" },
        "version": env!("CARGO_PKG_VERSION"),
    });
    let status = if database {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn jwks(State(state): State<SharedState>) -> Response {
    let mut response = state.tokens().jwks_json().to_owned().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

async fn metrics(
    State(state): State<SharedState>,
    caller: gate::Caller,
) -> Result<Response, error::ApiError> {
    caller.require(shared::permissions::Permission::MetricsRead)?;
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

async fn not_found() -> error::ApiError {
    error::ApiError::new(shared::ErrorCode::NotFound)
}

/// A page of a listing from `?limit=&offset=`: `limit` 1 to `max` (`default` when absent),
/// `offset` 0 or more.
pub fn page(
    limit: Option<i64>,
    offset: Option<i64>,
    default: i64,
    max: i64,
) -> error::ApiResult<(i64, i64)> {
    let limit = limit.unwrap_or(default);
    let offset = offset.unwrap_or(0);
    if !(1..=max).contains(&limit) {
        return Err(error::ApiError::field(
            shared::ErrorCode::ValidationFailed,
            "limit",
            format!("must be 1 to {max}"),
        ));
    }
    if offset < 0 {
        return Err(error::ApiError::field(
            shared::ErrorCode::ValidationFailed,
            "offset",
            "must not be negative",
        ));
    }
    Ok((limit, offset))
}

/// The request id of a request: the edge's (validated), or a fresh UUIDv7.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Assigns the request id, echoes it on the response and writes it into problem bodies.
async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(shared::headers::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| shared::headers::is_valid_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    let _entered = span.enter();
    drop(_entered);
    let mut response = tracing::Instrument::instrument(next.run(request), span).await;
    if let Some(ProblemMarker(problem)) = response.extensions_mut().remove::<ProblemMarker>() {
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        response = (status, problem.with_request_id(id.clone()).to_json()).into_response();
        *response.headers_mut() = headers;
        response.headers_mut().remove(header::CONTENT_LENGTH);
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(shared::headers::REQUEST_ID_HEADER, value);
    }
    response
}

/// Counts requests and their durations by route pattern, and logs each one.
async fn observe(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    let elapsed = started.elapsed().as_secs_f64();
    let status = response.status().as_u16().to_string();
    state.metrics.inc(
        "h200_http_requests_total",
        &[("route", &route), ("method", &method), ("status", &status)],
    );
    state.metrics.observe_duration(&route, elapsed);
    tracing::info!(route = %route, status = %status, elapsed_ms = elapsed * 1e3, "answered");
    response
}
