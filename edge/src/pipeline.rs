//! The stages in order: request id → security headers → CORS → intrusion check → authenticate
//! → deny-list → authorize → rate limit → validate → sign → forward → audit. Platform-free: the
//! runtime comes in through [`crate::ports`].

use std::sync::Arc;

use serde::Deserialize;
use shared::ErrorCode;
use shared::api_key::{ApiKeyDigest, ApiKeyGrant};
use shared::audit::AuditEventType;
use shared::headers::REQUEST_ID_HEADER;
use shared::permissions::{Principal, PrincipalKind};
use shared::rate_limit::RateDecision;
use shared::route_policy::{Auth, Resolution, Route};
use shared::token::{KeySet, TokenError, VerifiedToken};

use crate::config::EdgeConfig;
use crate::message::{EdgeRequest, EdgeResponse};
use crate::ports::{
    AuditSink, BodySource, Clock, EdgeState, Entropy, GrantLookup, RateStore, StateError, Upstream,
    UpstreamError, UpstreamResponse,
};
use crate::stage::audit::{Observed, event, refusal_event};
use crate::stage::authenticate::{self, Credentials};
use crate::stage::sign::{self, Outbound};
use crate::stage::{
    Refusal, authorize, cors, intrusion, rate_limit, request_id, respond, validate,
};
use crate::token_cache::VerifiedTokenCache;

/// The login route, whose 401 answers count as failed logins.
pub const LOGIN_PATH: &str = "/auth/login";
/// The metrics route, whose answer gets the edge's own counters appended.
pub const METRICS_PATH: &str = "/metrics";
/// Where the backend publishes its token keys.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// The deny-list feed.
pub const REVOCATIONS_PATH: &str = "/internal/v1/revocations";
/// API-key grants by digest.
pub const API_KEYS_PATH: &str = "/internal/v1/api-keys/";
/// The audit ingest.
pub const AUDIT_PATH: &str = "/internal/v1/audit";
/// The rate-limit bucket of JWKS refetches.
const JWKS_REFETCH_KEY: &str = "edge:jwks-refetch";
/// Most pages one revocation sync reads.
const MAX_REVOCATION_PAGES: usize = 20;

/// Why a background call of the edge (revocation sync, JWKS refresh) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("the backend answered {0}")]
    Status(u16),
    #[error("the backend's answer is malformed")]
    Malformed,
    #[error(transparent)]
    State(#[from] StateError),
    #[error("the request could not be signed")]
    Signing,
}

/// What one request has revealed so far, for the response and the audit events.
#[derive(Debug, Default)]
struct Exchange {
    request_id: String,
    /// The authenticated subject, once known.
    subject: Option<String>,
    /// The rate decision the response reports.
    rate: Option<RateDecision>,
}

impl Exchange {
    fn observed<'a>(&'a self, request: &'a EdgeRequest) -> Observed<'a> {
        Observed {
            request_id: &self.request_id,
            ip: &request.client_ip,
            user_agent: request.header("user-agent"),
            method: &request.method,
            path: &request.path,
            principal: self.subject.as_deref(),
        }
    }
}

/// The gateway for one runtime: its configuration and the services the runtime provides.
pub struct Pipeline<R, S, U> {
    config: EdgeConfig,
    rates: R,
    state: S,
    upstream: U,
    clock: Box<dyn Clock>,
    entropy: Box<dyn Entropy>,
    audit: Box<dyn AuditSink>,
    /// Access tokens whose signature verified against the cached JWKS, so a repeated token
    /// skips the signature check (expiry and deny-list are still checked per request).
    verified_tokens: VerifiedTokenCache,
}

impl<R: RateStore, S: EdgeState, U: Upstream> Pipeline<R, S, U> {
    /// A pipeline over the given services.
    pub fn new(
        config: EdgeConfig,
        rates: R,
        state: S,
        upstream: U,
        clock: Box<dyn Clock>,
        entropy: Box<dyn Entropy>,
        audit: Box<dyn AuditSink>,
    ) -> Self {
        Pipeline {
            config,
            rates,
            state,
            upstream,
            clock,
            entropy,
            audit,
            verified_tokens: VerifiedTokenCache::default(),
        }
    }

    pub fn config(&self) -> &EdgeConfig {
        &self.config
    }

    pub fn rates(&self) -> &R {
        &self.rates
    }

    pub fn state(&self) -> &S {
        &self.state
    }

    pub fn upstream(&self) -> &U {
        &self.upstream
    }

    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    pub fn entropy(&self) -> &dyn Entropy {
        self.entropy.as_ref()
    }

    pub fn audit(&self) -> &dyn AuditSink {
        self.audit.as_ref()
    }

    pub fn verified_tokens(&self) -> &VerifiedTokenCache {
        &self.verified_tokens
    }

    /// Answers one request. Never fails: every refusal is a problem+json response with its
    /// code, audited; every response carries the security headers and the request id.
    pub async fn handle<B: BodySource>(&self, request: EdgeRequest, mut body: B) -> EdgeResponse {
        let mut exchange = Exchange {
            request_id: request_id::assign(request.header(REQUEST_ID_HEADER), self.entropy()),
            ..Exchange::default()
        };
        let mut response = match self.run(&request, &mut body, &mut exchange).await {
            Ok(response) => response,
            Err(refusal) => {
                self.audit_refusal(&request, &exchange, &refusal);
                respond::refusal_response(&refusal, &exchange.request_id)
            }
        };
        let cors_fields = if cors::is_preflight(&request) {
            Vec::new()
        } else {
            self.config.cors.actual_headers(request.header("origin"))
        };
        respond::finish(
            &mut response,
            &exchange.request_id,
            &cors_fields,
            exchange.rate.as_ref(),
        );
        if request.method == "HEAD" {
            response.body.clear();
        }
        response
    }

    async fn run<B: BodySource>(
        &self,
        request: &EdgeRequest,
        body: &mut B,
        exchange: &mut Exchange,
    ) -> Result<EdgeResponse, Refusal> {
        if cors::is_preflight(request) {
            return cors::preflight(&self.config.cors, request);
        }
        let now_ms = self.clock.now_ms();
        self.check_intrusion(request, exchange, now_ms).await?;
        let route = match self.config.routes.resolve(&request.method, &request.path) {
            Resolution::Found(found) => found.route,
            Resolution::MethodNotAllowed { allowed } => {
                return Err(Refusal::new(ErrorCode::MethodNotAllowed)
                    .with_header("Allow", allowed.join(", ")));
            }
            Resolution::NotFound => return Err(Refusal::new(ErrorCode::NotFound)),
        };
        let principal = self.authenticate(request, route, now_ms).await?;
        if principal.kind != PrincipalKind::Anonymous {
            exchange.subject = Some(principal.subject.clone());
        }
        authorize::authorize(route, &principal)?;

        let rate = rate_limit::check_route(
            &self.rates,
            &self.config.routes,
            route,
            &request.client_ip,
            &principal.subject,
            now_ms,
        )
        .await
        .map_err(unavailable)?;
        exchange.rate = rate.reported().cloned();
        if let Some(refusal) = rate.refusal() {
            self.note_rate_violation(request, exchange, now_ms).await;
            return Err(refusal);
        }

        let content_type = request.header("content-type");
        let content_length = request
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        validate::check_declared(route, content_type, content_length)?;
        let bytes = validate::read_limited(body, route.body_limit).await?;
        validate::check_body(&request.method, route, content_type, &bytes)?;

        let outbound = Outbound {
            method: &request.method,
            path: &request.path,
            query: request.query.as_deref(),
            body: bytes,
            principal: Some(&principal),
            request_id: &exchange.request_id,
            headers: sign::forwarded_headers(request),
        };
        let signed = sign::sign(
            outbound,
            &self.config.signing_key,
            self.clock.now_ms(),
            self.entropy(),
        )?;
        let upstream = self.upstream.send(signed).await.map_err(upstream_refusal)?;
        let mut response = respond::from_upstream(upstream);
        self.after_response(request, route, &response, exchange)
            .await;
        if route.path == METRICS_PATH && response.status == 200 {
            response
                .body
                .extend_from_slice(self.metrics_text().as_bytes());
        }
        Ok(response)
    }

    /// Blocked addresses, attack patterns, and a note of tool user agents.
    async fn check_intrusion(
        &self,
        request: &EdgeRequest,
        exchange: &Exchange,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        let ip = &request.client_ip;
        if let Some(until) = self
            .state
            .blocked_until(ip, now_ms)
            .await
            .map_err(unavailable)?
        {
            let retry_secs = until.saturating_sub(now_ms).div_ceil(1000).max(1);
            return Err(Refusal::new(ErrorCode::IpBlocked)
                .with_header("Retry-After", retry_secs.to_string()));
        }
        if let Some(family) = intrusion::find_attack(&request.path, request.query.as_deref()) {
            return Err(Refusal::new(ErrorCode::SuspiciousRequest).with_detail(family));
        }
        if let Some(tool) = request.header("user-agent").and_then(intrusion::tool_agent) {
            let window = self.config.intrusion.tool_note_window_ms;
            let key = format!("tool-agent:{ip}");
            if let Ok(1) = self.state.count_event(&key, window, now_ms).await {
                let detail = format!("tool user agent {tool}");
                self.audit.emit(event(
                    AuditEventType::SuspiciousActivity,
                    &exchange.observed(request),
                    None,
                    None,
                    &detail,
                    now_ms,
                    self.entropy(),
                ));
            }
        }
        Ok(())
    }

    /// The principal of the request: anonymous on public routes (credentials are not looked
    /// at there), else from the Bearer token (deny-list checked) or the API key.
    async fn authenticate(
        &self,
        request: &EdgeRequest,
        route: &Route,
        now_ms: u64,
    ) -> Result<Principal, Refusal> {
        let ip = &request.client_ip;
        if route.auth == Auth::Public {
            return Ok(authenticate::anonymous(ip));
        }
        match authenticate::credentials(request)? {
            Credentials::None => Ok(authenticate::anonymous(ip)),
            Credentials::Bearer(token) => {
                let verified = self.verify_bearer(token, now_ms).await?;
                let denied = self
                    .state
                    .is_denied(&verified.jwt_id, now_ms)
                    .await
                    .map_err(unavailable)?;
                if denied {
                    return Err(Refusal::new(ErrorCode::RevokedToken));
                }
                Ok(authenticate::user_principal(
                    &verified,
                    &self.config.roles,
                    ip,
                ))
            }
            Credentials::ApiKey(key) => {
                let digest = key.digest();
                let now_secs = now_ms / 1000;
                let lookup = self
                    .state
                    .api_key(&digest, now_secs)
                    .await
                    .map_err(unavailable)?;
                let grant = match lookup {
                    GrantLookup::Fresh(grant) => grant,
                    GrantLookup::Refetch => {
                        let grant = self.fetch_grant(&digest).await?;
                        self.state
                            .remember_api_key(digest, grant.clone(), now_secs)
                            .await
                            .map_err(unavailable)?;
                        grant
                    }
                };
                authenticate::api_key_principal(grant.as_ref(), now_secs, ip)
            }
        }
    }

    /// Verifies a Bearer token against the cached JWKS; an unknown `kid` (or no cache yet)
    /// refetches the JWKS once, at most as often as the configured quota allows. A token that
    /// verified against the same key set before skips the signature check, not the time checks.
    async fn verify_bearer(&self, token: &str, now_ms: u64) -> Result<VerifiedToken, Refusal> {
        let policy = &self.config.token_policy;
        let now_secs = now_ms / 1000;
        let cached = self.state.key_set().await.map_err(unavailable)?;
        if let Some(keys) = &cached {
            if let Some(verified) = self.verified_tokens.get(keys, policy, token, now_secs) {
                return Ok(verified);
            }
            match authenticate::verify_token(keys, policy, token, now_secs) {
                Err(TokenError::UnknownKeyId(_)) => {}
                Ok(verified) => {
                    self.verified_tokens
                        .insert(keys, token, &verified, now_secs);
                    return Ok(verified);
                }
                Err(error) => return Err(authenticate::token_refusal(&error)),
            }
        }
        let allowed = rate_limit::check(
            &self.rates,
            JWKS_REFETCH_KEY,
            &self.config.jwks_refetch,
            now_ms,
        )
        .await
        .map_err(unavailable)?
        .allowed;
        if !allowed {
            let code = if cached.is_some() {
                ErrorCode::InvalidToken
            } else {
                ErrorCode::ServiceUnavailable
            };
            return Err(Refusal::new(code).with_detail("the token's signing key is not known"));
        }
        let keys = self
            .refresh_keys()
            .await
            .map_err(|e| Refusal::new(ErrorCode::UpstreamUnavailable).with_detail(e.to_string()))?;
        let verified = authenticate::verify_token(&keys, policy, token, now_secs)
            .map_err(|e| authenticate::token_refusal(&e))?;
        self.verified_tokens
            .insert(&keys, token, &verified, now_secs);
        Ok(verified)
    }

    /// Fetches the backend's JWKS and replaces the cached key set.
    pub async fn refresh_keys(&self) -> Result<Arc<KeySet>, SyncError> {
        let response = self.internal_get(JWKS_PATH, None).await?;
        if response.status != 200 {
            return Err(SyncError::Status(response.status));
        }
        let text = std::str::from_utf8(&response.body).map_err(|_| SyncError::Malformed)?;
        let keys = Arc::new(KeySet::from_jwks_json(text).map_err(|_| SyncError::Malformed)?);
        self.state.replace_key_set(keys.clone()).await?;
        Ok(keys)
    }

    /// Reads the backend's deny-list feed from the stored cursor on and adds every entry to the
    /// local deny-list; returns how many entries it added. Adapters call it every few seconds.
    pub async fn sync_revocations(&self) -> Result<usize, SyncError> {
        #[derive(Deserialize)]
        struct Entry {
            jti: String,
            expires_at_ms: i64,
            revoked_at_ms: i64,
        }
        #[derive(Deserialize)]
        struct Feed {
            revoked: Vec<Entry>,
        }
        let mut added = 0;
        for _ in 0..MAX_REVOCATION_PAGES {
            let cursor = self.state.revocation_cursor().await?;
            let query = format!("since_ms={cursor}");
            let response = self.internal_get(REVOCATIONS_PATH, Some(&query)).await?;
            if response.status != 200 {
                return Err(SyncError::Status(response.status));
            }
            let feed: Feed =
                serde_json::from_slice(&response.body).map_err(|_| SyncError::Malformed)?;
            let mut next = cursor;
            for entry in &feed.revoked {
                let expires = u64::try_from(entry.expires_at_ms).unwrap_or(0);
                self.state.deny(&entry.jti, expires).await?;
                next = next.max(u64::try_from(entry.revoked_at_ms).unwrap_or(0));
            }
            added += feed.revoked.len();
            if next == cursor {
                break;
            }
            self.state.set_revocation_cursor(next).await?;
        }
        Ok(added)
    }

    async fn fetch_grant(&self, digest: &ApiKeyDigest) -> Result<Option<ApiKeyGrant>, Refusal> {
        let path = format!("{API_KEYS_PATH}{}", digest.as_str());
        let unavailable =
            |detail: String| Refusal::new(ErrorCode::UpstreamUnavailable).with_detail(detail);
        let response = self
            .internal_get(&path, None)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        match response.status {
            200 => serde_json::from_slice(&response.body)
                .map(Some)
                .map_err(|_| unavailable("malformed API key grant".into())),
            404 => Ok(None),
            status => Err(unavailable(format!("API key lookup answered {status}"))),
        }
    }

    /// A signed `GET` of the edge's own (no principal).
    async fn internal_get(
        &self,
        path: &str,
        query: Option<&str>,
    ) -> Result<UpstreamResponse, SyncError> {
        let mut id = [0u8; 16];
        self.entropy.fill(&mut id);
        let request_id = format!("edge-{}", hex::encode(id));
        let outbound = Outbound {
            method: "GET",
            path,
            query,
            body: Vec::new(),
            principal: None,
            request_id: &request_id,
            headers: vec![("accept".into(), "application/json".into())],
        };
        let signed = sign::sign(
            outbound,
            &self.config.signing_key,
            self.clock.now_ms(),
            self.entropy(),
        )
        .map_err(|_| SyncError::Signing)?;
        Ok(self.upstream.send(signed).await?)
    }

    /// Counts failed logins (401 on the login route) and blocks the address at the threshold.
    async fn after_response(
        &self,
        request: &EdgeRequest,
        route: &Route,
        response: &EdgeResponse,
        exchange: &Exchange,
    ) {
        if route.path != LOGIN_PATH || response.status != 401 {
            return;
        }
        let policy = self.config.intrusion;
        let now_ms = self.clock.now_ms();
        let key = format!("failed-logins:{}", request.client_ip);
        let count = self
            .state
            .count_event(&key, policy.failed_login_window_ms, now_ms)
            .await;
        if count.is_ok_and(|n| n >= policy.failed_logins) {
            let detail = format!(
                "{} failed logins within {} s",
                policy.failed_logins,
                policy.failed_login_window_ms / 1000
            );
            self.start_block(request, exchange, &key, policy.login_block_ms, &detail)
                .await;
        }
    }

    /// Counts a rate-limit violation and blocks the address beyond the threshold.
    async fn note_rate_violation(&self, request: &EdgeRequest, exchange: &Exchange, now_ms: u64) {
        let policy = self.config.intrusion;
        let key = format!("rate-violations:{}", request.client_ip);
        let count = self
            .state
            .count_event(&key, policy.violation_window_ms, now_ms)
            .await;
        if count.is_ok_and(|n| n > policy.rate_violations) {
            let detail = format!(
                "more than {} rate-limit violations within {} s",
                policy.rate_violations,
                policy.violation_window_ms / 1000
            );
            self.start_block(request, exchange, &key, policy.violation_block_ms, &detail)
                .await;
        }
    }

    async fn start_block(
        &self,
        request: &EdgeRequest,
        exchange: &Exchange,
        counter: &str,
        duration_ms: u64,
        detail: &str,
    ) {
        let now_ms = self.clock.now_ms();
        let blocked = self
            .state
            .block(&request.client_ip, now_ms.saturating_add(duration_ms))
            .await;
        let _ = self.state.reset_events(counter).await;
        if blocked.is_ok() {
            let detail = format!("address blocked for {} s: {detail}", duration_ms / 1000);
            self.audit.emit(event(
                AuditEventType::IpBlocked,
                &exchange.observed(request),
                None,
                Some(ErrorCode::IpBlocked),
                &detail,
                now_ms,
                self.entropy(),
            ));
        }
    }

    fn audit_refusal(&self, request: &EdgeRequest, exchange: &Exchange, refusal: &Refusal) {
        let detail = refusal.problem.detail.as_deref().unwrap_or("");
        if let Some(event) = refusal_event(
            refusal.code(),
            &exchange.observed(request),
            detail,
            self.clock.now_ms(),
            self.entropy(),
        ) {
            self.audit.emit(event);
        }
    }

    /// The edge's own counters in the Prometheus text format.
    pub fn metrics_text(&self) -> String {
        format!(
            "# HELP h200_edge_audit_events_dropped_total Audit events the edge dropped because its buffer was full.\n\
             # TYPE h200_edge_audit_events_dropped_total counter\n\
             h200_edge_audit_events_dropped_total {}\n",
            self.audit.dropped()
        )
    }
}

fn unavailable(error: StateError) -> Refusal {
    Refusal::new(ErrorCode::ServiceUnavailable).with_detail(error.to_string())
}

fn upstream_refusal(error: UpstreamError) -> Refusal {
    match error {
        UpstreamError::Timeout => Refusal::new(ErrorCode::UpstreamTimeout),
        UpstreamError::Unreachable(_) => Refusal::new(ErrorCode::UpstreamUnavailable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryRateStore, MemoryState};
    use crate::ports::BufferedBody;
    use crate::testing::{
        CountingEntropy, ManualClock, RecordingAudit, ScriptedUpstream, block_on, json,
    };
    use shared::signing::MessageSigningKey;
    use shared::token::{H200Claims, SigningKey};
    use std::sync::atomic::Ordering;

    const NOW_MS: u64 = 1_700_000_000_000;

    struct Rig {
        pipeline: Pipeline<MemoryRateStore, MemoryState, Arc<ScriptedUpstream>>,
        clock: Arc<ManualClock>,
        audit: Arc<RecordingAudit>,
        upstream: Arc<ScriptedUpstream>,
        signing: SigningKey,
    }

    fn rig() -> Rig {
        let signing = SigningKey::generate_ed25519("kid-1", [5u8; 32]).expect("key");
        let mut keys = KeySet::new();
        keys.insert(signing.verification_key());
        let jwks = keys.to_jwks_json();
        let upstream = Arc::new(ScriptedUpstream::new(move |request| {
            let path = request.path_and_query.as_str();
            Ok(match path {
                JWKS_PATH => json(200, &jwks),
                "/auth/login" => json(401, r#"{"code":"INVALID_CREDENTIALS"}"#),
                p if p.starts_with(REVOCATIONS_PATH) && !p.ends_with("since_ms=0") => {
                    json(200, r#"{"revoked":[],"now_ms":1700000000000}"#)
                }
                p if p.starts_with(REVOCATIONS_PATH) => json(
                    200,
                    r#"{"revoked":[{"jti":"jti-revoked","expires_at_ms":1800000000000,"revoked_at_ms":1700000000000}],"now_ms":1700000000000}"#,
                ),
                p if p.starts_with(API_KEYS_PATH) => json(
                    200,
                    r#"{"key_id":"k1","subject":"svc","roles":["user"],"permissions":["clusters:read"],"expires_at":null,"revoked":false}"#,
                ),
                _ => json(200, r#"{"ok":true}"#),
            })
        }));
        let clock = Arc::new(ManualClock::at(NOW_MS));
        let audit = Arc::new(RecordingAudit::default());
        let key = MessageSigningKey::new("edge-1", vec![1u8; 32]).expect("key");
        let mut config = EdgeConfig::new("http://backend", key);
        config.cors =
            shared::cors::CorsPolicy::new(&["https://app.example"], false).expect("origin");
        let pipeline = Pipeline::new(
            config,
            MemoryRateStore::default(),
            MemoryState::default(),
            upstream.clone(),
            Box::new(clock.clone()),
            Box::new(CountingEntropy::default()),
            Box::new(audit.clone()),
        );
        Rig {
            pipeline,
            clock,
            audit,
            upstream,
            signing,
        }
    }

    impl Rig {
        fn token(&self, role: &str, jti: &str) -> String {
            let claims = H200Claims::access(vec![role.into()], Vec::new(), false);
            self.signing
                .issue(
                    &self.pipeline.config().token_policy,
                    "user-1",
                    jti,
                    &claims,
                    self.clock.now_ms() / 1000,
                )
                .expect("issue")
        }

        fn send(
            &self,
            method: &str,
            path: &str,
            headers: &[(&str, &str)],
            body: &[u8],
        ) -> EdgeResponse {
            let (path, query) = match path.split_once('?') {
                Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
                None => (path.to_owned(), None),
            };
            let request = EdgeRequest {
                method: method.into(),
                path,
                query,
                headers: headers
                    .iter()
                    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                    .collect(),
                client_ip: "203.0.113.50".into(),
            };
            block_on(
                self.pipeline
                    .handle(request, BufferedBody::new(body.to_vec())),
            )
        }

        fn events(&self) -> Vec<AuditEventType> {
            self.audit
                .0
                .lock()
                .expect("test lock")
                .iter()
                .map(|e| e.event_type)
                .collect()
        }
    }

    fn code(response: &EdgeResponse) -> String {
        let body: serde_json::Value = serde_json::from_slice(&response.body).expect("json body");
        body["code"].as_str().unwrap_or_default().to_owned()
    }

    #[test]
    fn a_valid_token_is_forwarded_signed_with_its_principal() {
        let rig = rig();
        let bearer = format!("Bearer {}", rig.token("viewer", "jti-1"));
        let response = rig.send(
            "GET",
            "/api/v1/rules?limit=5",
            &[("authorization", &bearer), ("x-request-id", "rid-7")],
            b"",
        );
        assert_eq!(response.status, 200);
        assert_eq!(response.header("x-request-id"), Some("rid-7"));
        assert_eq!(response.header("x-frame-options"), Some("DENY"));
        assert_eq!(response.header("x-ratelimit-limit"), Some("600"));
        let sent = rig.upstream.sent.lock().expect("test lock");
        let forwarded = sent.last().expect("forwarded");
        assert_eq!(forwarded.path_and_query, "/api/v1/rules?limit=5");
        let header = |name: &str| {
            forwarded
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        assert!(header("authorization").is_none());
        assert!(header("signature").is_some_and(|s| s.starts_with("sig1=:")));
        let principal = Principal::decode_header(&header("x-h200-principal").expect("principal"))
            .expect("decodes");
        assert_eq!(principal.subject, "user-1");
        assert_eq!(principal.token_id.as_deref(), Some("jti-1"));
        assert_eq!(principal.client_ip.as_deref(), Some("203.0.113.50"));
    }

    #[test]
    fn refusals_are_problem_json_audited_and_never_forwarded() {
        let rig = rig();
        let missing = rig.send("GET", "/api/v1/rules", &[], b"");
        assert_eq!(
            (missing.status, code(&missing).as_str()),
            (401, "MISSING_CREDENTIALS")
        );
        assert_eq!(
            missing.header("content-type"),
            Some("application/problem+json")
        );
        let bearer = format!("Bearer {}", rig.token("viewer", "jti-2"));
        let denied = rig.send(
            "DELETE",
            "/api/v1/rules/r1",
            &[("authorization", &bearer)],
            b"",
        );
        assert_eq!(
            (denied.status, code(&denied).as_str()),
            (403, "INSUFFICIENT_PERMISSIONS")
        );
        let attack = rig.send(
            "GET",
            "/api/v1/rules?q=%27%20OR%201=1",
            &[("authorization", &bearer)],
            b"",
        );
        assert_eq!(
            (attack.status, code(&attack).as_str()),
            (400, "SUSPICIOUS_REQUEST")
        );
        let unknown = rig.send("PUT", "/api/v1/rules", &[], b"");
        assert_eq!(unknown.status, 405);
        assert_eq!(unknown.header("allow"), Some("GET, HEAD, POST"));
        assert_eq!(
            rig.events(),
            vec![
                AuditEventType::TokenInvalid,
                AuditEventType::PermissionDenied,
                AuditEventType::SuspiciousActivity
            ]
        );
        assert_eq!(rig.upstream.paths(), vec![JWKS_PATH.to_owned()]);
    }

    #[test]
    fn five_failed_logins_block_the_address_until_the_block_ends() {
        let rig = rig();
        let login = |rig: &Rig| {
            rig.send(
                "POST",
                "/auth/login",
                &[("content-type", "application/json")],
                br#"{"username":"a","password":"wrong"}"#,
            )
        };
        for _ in 0..5 {
            assert_eq!(login(&rig).status, 401);
        }
        let blocked = login(&rig);
        assert_eq!(
            (blocked.status, code(&blocked).as_str()),
            (403, "IP_BLOCKED")
        );
        assert_eq!(blocked.header("retry-after"), Some("3600"));
        assert!(rig.events().contains(&AuditEventType::IpBlocked));
        rig.clock.0.fetch_add(3_600_000, Ordering::SeqCst);
        assert_eq!(login(&rig).status, 401);
    }

    #[test]
    fn more_than_ten_rate_violations_block_for_two_hours() {
        let rig = rig();
        let bad = br#"{"username":"a"}"#;
        let headers = [("content-type", "application/json")];
        for _ in 0..10 {
            assert_eq!(rig.send("POST", "/auth/login", &headers, bad).status, 422);
        }
        for _ in 0..11 {
            let limited = rig.send("POST", "/auth/login", &headers, bad);
            assert_eq!(limited.status, 429);
            assert!(limited.header("retry-after").is_some());
        }
        let blocked = rig.send("GET", "/health", &[], b"");
        assert_eq!(
            (blocked.status, code(&blocked).as_str()),
            (403, "IP_BLOCKED")
        );
        assert_eq!(blocked.header("retry-after"), Some("7200"));
    }

    #[test]
    fn an_unknown_key_id_refetches_the_jwks_at_most_once_per_quota() {
        let rig = rig();
        let bearer = format!("Bearer {}", rig.token("viewer", "jti-3"));
        assert_eq!(
            rig.send("GET", "/api/v1/rules", &[("authorization", &bearer)], b"")
                .status,
            200
        );
        let stranger = SigningKey::generate_ed25519("kid-unknown", [8u8; 32]).expect("key");
        let claims = H200Claims::access(vec!["viewer".into()], Vec::new(), false);
        let policy = rig.pipeline.config().token_policy.clone();
        let forged = stranger
            .issue(&policy, "user-1", "jti-4", &claims, NOW_MS / 1000)
            .expect("issue");
        let forged = format!("Bearer {forged}");
        for _ in 0..3 {
            let refused = rig.send("GET", "/api/v1/rules", &[("authorization", &forged)], b"");
            assert_eq!(
                (refused.status, code(&refused).as_str()),
                (401, "INVALID_TOKEN")
            );
        }
        let fetches = rig
            .upstream
            .paths()
            .iter()
            .filter(|p| *p == JWKS_PATH)
            .count();
        assert_eq!(fetches, 1);
    }

    #[test]
    fn revoked_tokens_and_cached_api_keys() {
        let rig = rig();
        assert_eq!(block_on(rig.pipeline.sync_revocations()), Ok(1));
        let bearer = format!("Bearer {}", rig.token("admin", "jti-revoked"));
        let revoked = rig.send("GET", "/api/v1/rules", &[("authorization", &bearer)], b"");
        assert_eq!(
            (revoked.status, code(&revoked).as_str()),
            (401, "REVOKED_TOKEN")
        );
        let key = "ncs_0123456789abcdef0123456789abcdef";
        let allowed = rig.send(
            "GET",
            "/api/v1/clusters_summary",
            &[("x-api-key", key)],
            b"",
        );
        assert_eq!(allowed.status, 200);
        let denied = rig.send("POST", "/api/v1/process_points", &[("x-api-key", key)], b"");
        assert_eq!(denied.status, 403);
        let lookups = rig
            .upstream
            .paths()
            .iter()
            .filter(|p| p.starts_with(API_KEYS_PATH))
            .count();
        assert_eq!(lookups, 1);
    }

    #[test]
    fn a_remembered_token_is_still_checked_for_revocation_expiry_and_key_rotation() {
        let rig = rig();
        let bearer = format!("Bearer {}", rig.token("viewer", "jti-cached"));
        let get = |rig: &Rig| rig.send("GET", "/api/v1/rules", &[("authorization", &bearer)], b"");
        assert_eq!(get(&rig).status, 200);
        assert_eq!(rig.pipeline.verified_tokens().len(), 1);
        assert_eq!(get(&rig).status, 200);

        block_on(rig.pipeline.state().deny("jti-cached", NOW_MS + 3_600_000)).expect("memory");
        let revoked = get(&rig);
        assert_eq!(
            (revoked.status, code(&revoked).as_str()),
            (401, "REVOKED_TOKEN")
        );

        let rig = self::rig();
        assert_eq!(get(&rig).status, 200);
        let policy = rig.pipeline.config().token_policy.clone();
        let expiry_ms = (policy.access_ttl_secs + policy.leeway_secs + 1) * 1000;
        rig.clock.0.store(NOW_MS + expiry_ms, Ordering::SeqCst);
        let expired = get(&rig);
        assert_eq!(
            (expired.status, code(&expired).as_str()),
            (401, "EXPIRED_TOKEN")
        );

        let rig = self::rig();
        assert_eq!(get(&rig).status, 200);
        let other = SigningKey::generate_ed25519("kid-2", [6u8; 32]).expect("key");
        let mut rotated = KeySet::new();
        rotated.insert(other.verification_key());
        block_on(rig.pipeline.state().replace_key_set(Arc::new(rotated))).expect("memory");
        let retired = get(&rig);
        assert_eq!(
            retired.status, 401,
            "a key dropped from the JWKS no longer admits its tokens"
        );
    }

    #[test]
    fn preflights_are_answered_at_the_edge() {
        let rig = rig();
        let allowed = rig.send(
            "OPTIONS",
            "/api/v1/rules",
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "GET"),
            ],
            b"",
        );
        assert_eq!(allowed.status, 204);
        assert_eq!(
            allowed.header("access-control-allow-origin"),
            Some("https://app.example")
        );
        assert_eq!(allowed.header("x-content-type-options"), Some("nosniff"));
        let refused = rig.send(
            "OPTIONS",
            "/api/v1/rules",
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "GET"),
            ],
            b"",
        );
        assert_eq!(
            (refused.status, code(&refused).as_str()),
            (403, "CORS_ORIGIN_DENIED")
        );
        assert!(rig.upstream.paths().is_empty());
    }
}
