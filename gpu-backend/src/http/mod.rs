//! The backend's HTTP surface. Every route but `/health`, `/ready` and `/.well-known/jwks.json`
//! sits behind the signature [`gate`]; handlers translate HTTP into calls on the store and the
//! auth service.
//! The router is built from one list ([`routes`]), which the route table must match; the route
//! table alone says what each route needs.

pub mod account;
pub mod admin;
pub mod analysis;
pub mod auth;
pub mod error;
pub mod gate;
pub mod internal;
pub mod jobs;
pub mod live;
pub mod ncs;
pub mod ops;
pub mod report;
pub mod rules;
pub mod servers;

use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use shared::permissions::RoleSet;
use shared::route_policy::RoutePolicy;
use shared::signing::SignatureVerifier;

use crate::auth::password::PasswordHasher;
use crate::auth::token_keys::TokenKeyFile;
use crate::auth::tokens::TokenIssuer;
use crate::metrics::Metrics;
use crate::seal::SealKeys;
use crate::store::Store;
use error::ProblemMarker;

/// Everything a handler may need, shared by all requests.
pub struct AppState {
    pub store: Store,
    /// The token issuer; swapped whole when the key file changes (rotation) or a key in it is
    /// revoked.
    pub tokens: RwLock<Arc<TokenIssuer>>,
    /// The key file the issuer is reloaded from; `None` when the state was built by hand.
    pub token_key_file: Option<TokenKeyFile>,
    pub hasher: Arc<PasswordHasher>,
    pub roles: RoleSet,
    pub routes: RoutePolicy,
    pub verifier: SignatureVerifier,
    /// Nonces of accepted signatures, for as long as their signature could be replayed (shared
    /// by the backends when `--state-url` names a store).
    pub nonces: crate::replay::ReplayStore,
    pub seal: SealKeys,
    pub metrics: Metrics,
    /// Shown as the issuer in authenticator apps.
    pub totp_issuer: String,
    /// Whether uploaded images are kept (sealed) with their analyses.
    pub retain_images: bool,
    /// When this state was built: the start of `uptime_seconds` in `/health`.
    pub started: Instant,
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
            token_key_file: None,
            hasher: Arc::new(PasswordHasher::new()),
            roles,
            routes,
            verifier,
            nonces: crate::replay::ReplayStore::memory(),
            seal,
            metrics: Metrics::default(),
            totp_issuer: "H200".into(),
            retain_images: false,
            started: Instant::now(),
        }
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

/// Who may call a route the router serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// Served without the signature gate (`/health`, `/ready`, the JWKS).
    Open,
    /// Behind the signature gate, with the permission the route table names.
    Gated,
    /// Behind the signature gate, for the edge itself: under [`gate::INTERNAL_PREFIX`], never in
    /// the route table, and never on behalf of a principal.
    Internal,
}

/// One route of the router: the method and path pattern as the route table writes them, and the
/// handler that answers it.
struct Served {
    exposure: Exposure,
    method: Method,
    path: &'static str,
    handler: MethodRouter<SharedState>,
}

fn serve<H, T>(exposure: Exposure, method: Method, path: &'static str, handler: H) -> Served
where
    H: Handler<T, SharedState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone())
        .expect("every method of the route list has a filter; this is a bug");
    Served {
        exposure,
        method,
        path,
        handler: on(filter, handler),
    }
}

/// Every route the backend serves, the one list the router is built from. Apart from the
/// internal ones, the route table (`RoutePolicy::default()`) lists exactly these.
fn served() -> Vec<Served> {
    use Exposure::{Gated, Internal, Open};
    vec![
        serve(Open, Method::GET, "/health", ops::health),
        serve(Open, Method::GET, "/ready", ops::ready),
        serve(Gated, Method::GET, "/api/v1/version", ops::version),
        serve(Open, Method::GET, "/.well-known/jwks.json", jwks),
        serve(Open, Method::GET, "/openapi.json", openapi),
        serve(Gated, Method::POST, "/auth/login", auth::login),
        serve(Gated, Method::POST, "/auth/refresh", auth::refresh),
        serve(Gated, Method::POST, "/auth/logout", auth::logout),
        serve(Gated, Method::POST, "/auth/password", auth::change_password),
        serve(Gated, Method::POST, "/auth/mfa/setup", auth::mfa_setup),
        serve(Gated, Method::POST, "/auth/mfa/verify", auth::mfa_verify),
        serve(Gated, Method::POST, "/auth/api-keys", auth::create_api_key),
        serve(Gated, Method::GET, "/auth/api-keys", auth::list_api_keys),
        serve(
            Gated,
            Method::DELETE,
            "/auth/api-keys/{id}",
            auth::revoke_api_key,
        ),
        serve(Gated, Method::GET, "/auth/me", account::me),
        serve(Gated, Method::GET, "/auth/sessions", account::sessions),
        serve(
            Gated,
            Method::DELETE,
            "/auth/sessions/{id}",
            account::end_session,
        ),
        serve(Gated, Method::GET, "/api/v1/admin/audit", admin::audit_log),
        serve(Gated, Method::GET, "/api/v1/admin/users", admin::users),
        serve(
            Gated,
            Method::GET,
            "/api/v1/admin/reports/access",
            report::access,
        ),
        serve(
            Gated,
            Method::POST,
            "/api/v1/admin/users",
            account::create_user,
        ),
        serve(
            Gated,
            Method::PATCH,
            "/api/v1/admin/users/{id}",
            account::patch_user,
        ),
        serve(
            Gated,
            Method::DELETE,
            "/api/v1/admin/users/{id}",
            account::delete_user,
        ),
        serve(
            Gated,
            Method::POST,
            "/api/v1/admin/users/{id}/password-reset",
            account::reset_password,
        ),
        serve(
            Gated,
            Method::GET,
            "/api/v1/admin/users/{id}/sessions",
            account::user_sessions,
        ),
        serve(
            Gated,
            Method::DELETE,
            "/api/v1/admin/users/{id}/sessions",
            account::end_user_sessions,
        ),
        serve(Gated, Method::PATCH, "/api/v1/me", account::patch_me),
        serve(Gated, Method::GET, "/api/v1/me/export", admin::export_me),
        serve(Gated, Method::DELETE, "/api/v1/me", admin::erase_me),
        serve(Gated, Method::POST, "/api/v1/analysis", analysis::submit),
        serve(Gated, Method::GET, "/api/v1/analysis", analysis::list),
        serve(
            Gated,
            Method::GET,
            "/api/v1/analysis/{id}",
            analysis::get_one,
        ),
        serve(
            Gated,
            Method::DELETE,
            "/api/v1/analysis/{id}",
            analysis::delete_one,
        ),
        serve(
            Gated,
            Method::POST,
            "/api/v1/analysis/{id}/feedback",
            analysis::feedback,
        ),
        serve(Gated, Method::GET, "/api/v1/rules", rules::list),
        serve(Gated, Method::POST, "/api/v1/rules", rules::create),
        serve(
            Gated,
            Method::POST,
            "/api/v1/rules/evaluate",
            rules::evaluate,
        ),
        serve(
            Gated,
            Method::POST,
            "/api/v1/rules/natural-language",
            rules::natural_language,
        ),
        serve(Gated, Method::GET, "/api/v1/rules/{id}", rules::get_one),
        serve(Gated, Method::PATCH, "/api/v1/rules/{id}", rules::update),
        serve(
            Gated,
            Method::DELETE,
            "/api/v1/rules/{id}",
            rules::delete_one,
        ),
        serve(
            Gated,
            Method::POST,
            "/api/v1/process_points",
            ncs::process_points,
        ),
        serve(
            Gated,
            Method::GET,
            "/api/v1/clusters_summary",
            ncs::clusters_summary,
        ),
        serve(
            Gated,
            Method::GET,
            "/api/v1/algorithm_status",
            ncs::algorithm_status,
        ),
        serve(Gated, Method::GET, "/api/v1/streams", ncs::list_streams),
        serve(
            Gated,
            Method::DELETE,
            "/api/v1/streams/{stream}",
            ncs::reset_stream,
        ),
        serve(Gated, Method::GET, "/api/v1/jobs/{id}", ncs::job_result),
        serve(Gated, Method::POST, "/api/v1/ws-tickets", live::ws_ticket),
        serve(
            Gated,
            Method::GET,
            "/api/v1/streams/{stream}/ws",
            live::stream_socket,
        ),
        serve(Gated, Method::GET, "/api/v1/servers", servers::list),
        serve(
            Gated,
            Method::POST,
            "/api/v1/servers/{id}/pause",
            servers::pause,
        ),
        serve(
            Gated,
            Method::POST,
            "/api/v1/servers/{id}/resume",
            servers::resume,
        ),
        serve(
            Gated,
            Method::POST,
            "/api/v1/servers/{id}/drain",
            servers::drain,
        ),
        serve(Gated, Method::GET, "/metrics", metrics),
        serve(
            Internal,
            Method::GET,
            "/internal/v1/revocations",
            internal::revocations,
        ),
        serve(
            Internal,
            Method::GET,
            "/internal/v1/api-keys/{digest}",
            internal::api_key,
        ),
        serve(
            Internal,
            Method::POST,
            "/internal/v1/audit",
            internal::ingest_audit,
        ),
    ]
}

/// What the router answers: each route's exposure, method and path pattern, in list order.
pub fn routes() -> Vec<(Exposure, Method, &'static str)> {
    served()
        .into_iter()
        .map(|route| (route.exposure, route.method, route.path))
        .collect()
}

/// The whole router: open routes, then everything else behind the signature gate.
pub fn router(state: SharedState) -> Router {
    let mut open = Router::new();
    let mut gated = Router::new();
    for route in served() {
        match route.exposure {
            Exposure::Open => open = open.route(route.path, route.handler),
            Exposure::Gated | Exposure::Internal => gated = gated.route(route.path, route.handler),
        }
    }
    let gated = gated
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            gate::verify_signature,
        ));
    open.merge(gated)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
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

/// `GET /openapi.json`: the committed OpenAPI document, the one every edge answers itself.
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        shared::openapi::DOCUMENT,
    )
        .into_response()
}

/// `GET /metrics`: the route table names its permission (`metrics:read`), the gate checks it.
async fn metrics(State(state): State<SharedState>) -> Response {
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
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

/// Counts requests and their durations by route pattern, and logs each one at `debug` under the
/// target `h200::access` (off by default: a line per request costs more than the request).
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
    tracing::debug!(target: "h200::access", route = %route, status = %status, elapsed_ms = elapsed * 1e3, "answered");
    response
}
