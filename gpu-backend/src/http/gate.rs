//! The signature gate: the backend trusts only requests the edge signed (RFC 9421, 60 s window,
//! no replays). It also re-checks what the edge decided (deny-list, route permission), so a
//! mistake at the edge does not become a hole. The permission comes from the route table alone:
//! the gate resolves the request in the same [`RoutePolicy`](shared::route_policy::RoutePolicy)
//! the edge enforces and hands the handler the route it found ([`Caller::route`]), so handlers
//! state no permission of their own.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use shared::ErrorCode;
use shared::audit::{AuditEvent, AuditEventType, AuditSource};
use shared::permissions::{Principal, PrincipalKind};
use shared::route_policy::{Auth, Resolution, Route};
use shared::signing::{CONTENT_DIGEST_HEADER, PRINCIPAL_HEADER, SignableRequest, SignatureError};

use super::error::{ApiError, ApiResult, problem_response};
use super::{RequestId, SharedState};
use crate::auth::revocation;
use crate::replay::PendingNonce;
use crate::store::now_ms;

/// Largest body the backend reads (the edge enforces tighter limits per route).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Internal routes: only the edge itself calls them, never on behalf of a user.
pub const INTERNAL_PREFIX: &str = "/internal/";

/// Who is calling, as the edge vouched for it, and the route-table entry the request resolved to.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub request_id: String,
    /// The client's address as the edge saw it.
    pub client_ip: Option<String>,
    /// The route the gate resolved the request to, whose permission the principal holds; `None`
    /// on the edge's internal routes, which the table does not list.
    pub route: Option<Arc<Route>>,
}

impl Caller {
    /// Refuses with 401 unless a user (not an API key, not anonymous) is calling.
    pub fn require_user(&self) -> Result<&str, ApiError> {
        match self.principal.kind {
            PrincipalKind::User => Ok(&self.principal.subject),
            PrincipalKind::ApiKey => Err(ApiError::detail(
                ErrorCode::InsufficientPermissions,
                "this route needs a user's token, not an API key",
            )),
            PrincipalKind::Anonymous => Err(ApiError::new(ErrorCode::MissingCredentials)),
        }
    }

    /// Whether the caller may act on other principals' items on this route: the route names an
    /// `admin_permission` and the principal holds it.
    pub fn acts_for_others(&self) -> bool {
        self.route
            .as_ref()
            .and_then(|route| route.admin_permission)
            .is_some_and(|permission| self.principal.has(permission))
    }

    /// Refuses with 403 unless [`Caller::acts_for_others`]; `what` names the other principals'
    /// items in the refusal.
    pub fn require_acting_for_others(&self, what: &str) -> ApiResult<()> {
        if self.acts_for_others() {
            return Ok(());
        }
        let needed = self.route.as_ref().and_then(|route| route.admin_permission);
        Err(ApiError::detail(
            ErrorCode::InsufficientPermissions,
            match needed {
                Some(permission) => format!(
                    "access to {what} of another principal requires {}",
                    permission.as_str()
                ),
                None => format!("this route gives no access to {what} of another principal"),
            },
        ))
    }

    /// Whose items a listing shows: `requested`, or the caller's own when absent. Another
    /// principal's needs the route's admin permission (`what` names the items in the refusal).
    pub fn listing_owner(&self, requested: Option<String>, what: &str) -> ApiResult<String> {
        let owner = requested.unwrap_or_else(|| self.principal.subject.clone());
        if owner != self.principal.subject {
            self.require_acting_for_others(what)?;
        }
        Ok(owner)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::new(ErrorCode::MissingSignature))
    }
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Verifies the signature, then the principal, then the route's permission; only then does the
/// handler run. Refusals are audited.
pub async fn verify_signature(
    State(state): State<SharedState>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => return ApiError::new(ErrorCode::PayloadTooLarge).into_response(),
    };
    match admit(&state, &parts, &body, &request_id).await {
        Ok(caller) => {
            parts.extensions.insert(caller);
            next.run(Request::from_parts(parts, Body::from(body))).await
        }
        Err(error) => {
            refuse_audited(&state, &parts, &request_id, &error).await;
            problem_response(*error.problem)
        }
    }
}

async fn admit(
    state: &SharedState,
    parts: &Parts,
    body: &[u8],
    request_id: &str,
) -> Result<Caller, ApiError> {
    let principal_header = header(parts, PRINCIPAL_HEADER);
    let signable = SignableRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        content_digest: header(parts, CONTENT_DIGEST_HEADER),
        principal: principal_header,
        request_id: header(parts, shared::headers::REQUEST_ID_HEADER).unwrap_or(""),
    };
    let now_secs = (now_ms() / 1000) as u64;
    let mut pending = PendingNonce::default();
    let verified = state.verifier.verify(
        &signable,
        header(parts, "signature-input"),
        header(parts, "signature"),
        body,
        now_secs,
        &mut pending,
    );
    let verified = match (verified, pending.taken) {
        (Ok(_), Some((key_id, nonce, expires_at))) => {
            match state
                .nonces
                .remember(&key_id, &nonce, expires_at, now_secs)
                .await
            {
                Ok(true) => Ok(()),
                Ok(false) => Err(SignatureError::Replayed),
                Err(error) => {
                    tracing::error!(%error, "the replay store did not answer; refusing");
                    return Err(ApiError::new(ErrorCode::ServiceUnavailable));
                }
            }
        }
        (Ok(_), None) => Err(SignatureError::Replayed),
        (Err(error), _) => Err(error),
    };
    if let Err(error) = verified {
        state.metrics.inc(
            "h200_signature_refusals_total",
            &[("code", error.code().as_str())],
        );
        return Err(ApiError::new(error.code()));
    }

    let internal = parts.uri.path().starts_with(INTERNAL_PREFIX);
    let principal = match principal_header {
        Some(value) if !internal => Principal::decode_header(value).map_err(|e| {
            // Signed by the edge yet unreadable: the two disagree on the header's format.
            tracing::warn!(error = %e, "a signed principal header does not decode");
            ApiError::detail(ErrorCode::BadRequest, "malformed principal header")
        })?,
        Some(_) => {
            return Err(ApiError::detail(
                ErrorCode::InsufficientPermissions,
                "internal routes take no principal",
            ));
        }
        None => Principal::anonymous(),
    };
    check_not_revoked(state, &principal).await?;
    let route = if internal {
        None
    } else {
        let route = permitted_route(state, parts, &principal)?;
        super::account::check_restriction(&principal, &route)?;
        Some(route)
    };
    Ok(Caller {
        client_ip: principal.client_ip.clone(),
        principal,
        request_id: request_id.to_owned(),
        route,
    })
}

/// The deny-list (the token, its signing key, its subject) and API-key revocation, checked
/// again here (the edge's copy may be up to a minute behind).
async fn check_not_revoked(state: &SharedState, principal: &Principal) -> Result<(), ApiError> {
    let Some(token_id) = principal.token_id.as_deref() else {
        return Ok(());
    };
    match principal.kind {
        PrincipalKind::User => {
            if let Some(facts) = revocation::principal_facts(principal)
                && let Some(code) = revocation::refusal(&state.store, &facts).await?
            {
                return Err(ApiError::new(code));
            }
        }
        PrincipalKind::ApiKey => {
            let key = state.store.api_key_by_id(token_id).await?;
            match key {
                Some(key) if key.revoked_at_ms.is_some() => {
                    return Err(ApiError::new(ErrorCode::RevokedApiKey));
                }
                Some(key) if key.expires_at_ms.is_some_and(|at| at <= now_ms()) => {
                    return Err(ApiError::new(ErrorCode::InvalidApiKey));
                }
                Some(_) => {}
                None => return Err(ApiError::new(ErrorCode::InvalidApiKey)),
            }
        }
        PrincipalKind::Anonymous => {}
    }
    Ok(())
}

/// The route of the request in the route table (the same table the edge enforces), once
/// `principal` is found to meet what it demands.
fn permitted_route(
    state: &SharedState,
    parts: &Parts,
    principal: &Principal,
) -> Result<Arc<Route>, ApiError> {
    match state
        .routes
        .resolve(parts.method.as_str(), parts.uri.path())
    {
        Resolution::Found(matched) => {
            let route = matched.route;
            route
                .auth
                .permits(principal)
                .map_err(|code| match route.auth {
                    Auth::Permission(permission) if code == ErrorCode::InsufficientPermissions => {
                        ApiError::detail(code, format!("requires {}", permission.as_str()))
                    }
                    _ => ApiError::new(code),
                })?;
            Ok(Arc::new(route.clone()))
        }
        other => Err(ApiError::new(
            other.error_code().unwrap_or(ErrorCode::NotFound),
        )),
    }
}

/// Records a refusal of the gate as an audit event of the backend.
async fn refuse_audited(state: &SharedState, parts: &Parts, request_id: &str, error: &ApiError) {
    let Some(event_type) = AuditEventType::for_refusal(error.code()) else {
        return;
    };
    let mut event = AuditEvent::new(
        event_type,
        AuditSource::Backend,
        now_ms() as u64,
        random_tail(),
    );
    event.request_id = Some(request_id.to_owned());
    event.method = Some(parts.method.as_str().to_owned());
    event.path = Some(parts.uri.path().chars().take(256).collect());
    event.status = Some(error.problem.status);
    event.code = Some(error.code());
    if let Err(e) = state.store.append_audit(&[event]).await {
        tracing::error!(error = %e, "could not record an audit event");
    }
}

/// 10 random bytes for a UUIDv7.
pub fn random_tail() -> [u8; 10] {
    let mut bytes = [0u8; 10];
    if getrandom::fill(&mut bytes).is_err() {
        bytes = uuid::Uuid::new_v4().as_bytes()[..10]
            .try_into()
            .unwrap_or([0; 10]);
    }
    bytes
}
