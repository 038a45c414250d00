//! The stages in order: request id → security headers → CORS → intrusion check → authenticate
//! → deny-list → authorize → rate limit → validate → sign → forward → audit. Platform-free: the
//! runtime comes in through [`crate::ports`]; the backend's own routes through
//! [`crate::backend_sync`].

mod stream_socket;

use std::sync::Arc;

use shared::ErrorCode;
use shared::api_key::ApiKeyGrant;
use shared::body::stream::{SOCKET_ROUTE, TICKETS_PATH};
use shared::headers::REQUEST_ID_HEADER;
use shared::permissions::{Principal, PrincipalKind};
use shared::rate_limit::RateDecision;
use shared::revocation::{RevocationKind, TokenFacts};
use shared::route_policy::{Auth, Resolution, Route};
use shared::token::{KeySet, TokenError, VerifiedToken};

use crate::backend_sync::{self, BackendSync, SyncError};
use crate::config::EdgeConfig;
use crate::console;
use crate::message::{EdgeRequest, EdgeResponse};
use crate::ports::{
    AuditSink, BodySource, Clock, EdgeState, Entropy, GrantLookup, RateStore, StateError, Upstream,
    UpstreamError,
};
use crate::stage::audit::{Observed, refusal_event};
use crate::stage::authenticate::{self, Credentials};
use crate::stage::intrusion::IntrusionWatch;
use crate::stage::session::{self, Session};
use crate::stage::sign::{self, Outbound};
use crate::stage::{
    Refusal, Stage, StageObserver, authorize, cors, rate_limit, request_id, respond, validate,
};
use crate::token_cache::VerifiedTokenCache;

pub use stream_socket::StreamSocket;

/// The login route, whose 401 answers count as failed logins.
pub const LOGIN_PATH: &str = "/auth/login";
/// The metrics route, whose answer gets the edge's own counters appended.
pub const METRICS_PATH: &str = "/metrics";
/// The rate-limit bucket of JWKS refetches.
const JWKS_REFETCH_KEY: &str = "edge:jwks-refetch";

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
    /// Told as each stage finishes; only a benchmark sets one.
    observer: Option<Box<dyn StageObserver>>,
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
            observer: None,
        }
    }

    /// Tells `observer` as each stage of a request finishes from now on.
    pub fn set_observer(&mut self, observer: Box<dyn StageObserver>) {
        self.observer = Some(observer);
    }

    fn finished(&self, stage: Stage) {
        if let Some(observer) = &self.observer {
            observer.finished(stage);
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

    /// The client of the backend's routes for the edge itself.
    pub fn backend(&self) -> BackendSync<'_, U> {
        BackendSync {
            upstream: &self.upstream,
            signing_key: &self.config.signing_key,
            clock: self.clock(),
            entropy: self.entropy(),
        }
    }

    /// The intrusion counters and blocks over this pipeline's state.
    fn intrusion(&self) -> IntrusionWatch<'_, S> {
        IntrusionWatch {
            state: &self.state,
            policy: &self.config.intrusion,
            routes: &self.config.routes,
            audit: self.audit(),
            entropy: self.entropy(),
        }
    }

    /// Fetches the backend's JWKS and replaces the cached key set, then pulls the revocation
    /// feed: a key the backend dropped because it was revoked is on the deny-list before its
    /// tokens meet the new key set, so they are refused as revoked (`REVOKED_KEY`), not as
    /// unknown. A failed pull is left to the next scheduled one.
    pub async fn refresh_keys(&self) -> Result<Arc<KeySet>, SyncError> {
        let keys = backend_sync::refresh_keys(&self.backend(), &self.state).await?;
        let _ = self.sync_revocations().await;
        Ok(keys)
    }

    /// Pulls the backend's revocation feed into the deny-list; returns how many entries came.
    pub async fn sync_revocations(&self) -> Result<usize, SyncError> {
        backend_sync::sync_revocations(&self.backend(), &self.state).await
    }

    /// Drops expired rate buckets, deny-list entries, blocks and idle counters; returns how many
    /// entries went.
    pub async fn prune(&self) -> Result<usize, StateError> {
        let now_ms = self.clock.now_ms();
        let intrusion = &self.config.intrusion;
        let window = intrusion
            .failed_login_window_ms
            .max(intrusion.violation_window_ms)
            .max(intrusion.tool_note_window_ms);
        let buckets = self.rates.prune(now_ms).await?;
        Ok(buckets + self.state.prune(now_ms, window).await?)
    }

    /// Answers one request. Never fails: every refusal is a problem+json response with its
    /// code, audited; every response carries the security headers and the request id.
    pub async fn handle<B: BodySource>(&self, request: EdgeRequest, mut body: B) -> EdgeResponse {
        if let Some(observer) = &self.observer {
            observer.started();
        }
        let mut exchange = Exchange {
            request_id: request_id::assign(request.header(REQUEST_ID_HEADER), self.entropy()),
            ..Exchange::default()
        };
        self.finished(Stage::RequestId);
        let console_asset = console::answer(&request);
        let is_console = console_asset.is_some();
        let mut response = match console_asset {
            Some(asset) => asset,
            None => match self.run(&request, &mut body, &mut exchange).await {
                Ok(response) => response,
                Err(refusal) => {
                    self.audit_refusal(&request, &exchange, &refusal);
                    respond::refusal_response(&refusal, &exchange.request_id)
                }
            },
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
        if is_console {
            console::secure(&mut response);
        }
        if request.method == "HEAD" {
            response.body.clear();
        }
        self.finished(Stage::Respond);
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
        self.finished(Stage::Cors);
        let now_ms = self.clock.now_ms();
        self.intrusion()
            .check(
                &exchange.observed(request),
                request.query.as_deref(),
                now_ms,
            )
            .await?;
        self.finished(Stage::Intrusion);
        let route = match self.config.routes.resolve(&request.method, &request.path) {
            Resolution::Found(found) => found.route,
            Resolution::MethodNotAllowed { allowed } => {
                return Err(Refusal::new(ErrorCode::MethodNotAllowed)
                    .with_header("Allow", allowed.join(", ")));
            }
            Resolution::NotFound => return Err(Refusal::new(ErrorCode::NotFound)),
        };
        if route.path == SOCKET_ROUTE {
            // The runtime upgrades a socket through `admit_socket`; this one did not.
            return Err(stream_socket::not_upgraded(request));
        }
        self.finished(Stage::Route);
        let session = Session::inspect(request, route)?;
        let principal = self.authenticate(request, route, now_ms).await?;
        if principal.kind != PrincipalKind::Anonymous {
            exchange.subject = Some(principal.subject.clone());
        }
        self.finished(Stage::Authenticate);
        authorize::authorize(route, &principal)?;
        self.finished(Stage::Authorize);

        self.count_rate(request, route, &principal.subject, exchange, now_ms)
            .await?;
        self.finished(Stage::RateLimit);

        let content_type = request.header("content-type");
        let content_length = request
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        validate::check_declared(route, content_type, content_length)?;
        let bytes = validate::read_limited(body, route.body_limit).await?;
        let (bytes, session_type) = session.outbound_body(route, bytes)?;
        let content_type = session_type.or(content_type);
        validate::check_body(&request.method, route, content_type, &bytes)?;
        self.finished(Stage::Validate);
        if route.path == TICKETS_PATH {
            return self.issue_ticket(request, &bytes);
        }
        if route.path == shared::openapi::PATH {
            // The committed document, the same on every runtime; the backend is not asked.
            return Ok(respond::json_document(shared::openapi::DOCUMENT));
        }

        let outbound = Outbound {
            method: &request.method,
            path: &request.path,
            query: request.query.as_deref(),
            body: bytes,
            principal: Some(&principal),
            request_id: &exchange.request_id,
            headers: session::with_content_type(sign::forwarded_headers(request), session_type),
        };
        let signed = sign::sign(
            outbound,
            &self.config.signing_key,
            self.clock.now_ms(),
            self.entropy(),
        )?;
        self.finished(Stage::Sign);
        let upstream = self.upstream.send(signed).await.map_err(upstream_refusal)?;
        self.finished(Stage::Forward);
        let mut response = respond::from_upstream(upstream);
        session.inbound(route, &mut response, self.clock.now_ms() / 1000);
        if route.path == LOGIN_PATH && response.status == 401 {
            self.intrusion()
                .note_failed_login(&exchange.observed(request), self.clock.now_ms())
                .await;
        }
        if route.path == METRICS_PATH && response.status == 200 {
            response
                .body
                .extend_from_slice(self.metrics_text().as_bytes());
        }
        Ok(response)
    }

    /// Counts the request in every rate class of `route`; a refusal is noted as a rate-limit
    /// violation of the client's address.
    async fn count_rate(
        &self,
        request: &EdgeRequest,
        route: &Route,
        subject: &str,
        exchange: &mut Exchange,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        let rate = rate_limit::check_route(
            &self.rates,
            &self.config.routes,
            route,
            &request.client_ip,
            subject,
            now_ms,
        )
        .await
        .map_err(unavailable)?;
        exchange.rate = rate.reported().cloned();
        if let Some(refusal) = rate.refusal() {
            self.intrusion()
                .note_rate_violation(&exchange.observed(request), now_ms)
                .await;
            return Err(refusal);
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
                self.check_deny_list(&verified, now_ms).await?;
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
                        let grant: Option<ApiKeyGrant> =
                            self.backend().fetch_grant(&digest).await.map_err(|e| {
                                Refusal::new(ErrorCode::UpstreamUnavailable)
                                    .with_detail(format!("API key lookup: {e}"))
                            })?;
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

    /// Refuses a token the deny-list names: by its `jti`, by the key that signed it, or by its
    /// subject when it was issued before the subject's cut-off.
    async fn check_deny_list(&self, token: &VerifiedToken, now_ms: u64) -> Result<(), Refusal> {
        let facts = TokenFacts {
            token_id: &token.jwt_id,
            key_id: &token.kid,
            subject: &token.subject,
            issued_at_secs: token.issued_at,
        };
        let cutoffs = self
            .state
            .denials(&facts.deny_keys(), now_ms)
            .await
            .map_err(unavailable)?;
        match facts.refusal(&cutoffs) {
            Some(code) => Err(Refusal::new(code)),
            None => Ok(()),
        }
    }

    /// Verifies a Bearer token against the cached JWKS; an unknown `kid` (or no cache yet)
    /// refetches the JWKS once, at most as often as the configured quota allows. A token that
    /// verified against the same key set before skips the signature check, not the time checks.
    /// A `kid` the deny-list names is refused as revoked without a refetch.
    async fn verify_bearer(&self, token: &str, now_ms: u64) -> Result<VerifiedToken, Refusal> {
        let policy = &self.config.token_policy;
        let now_secs = now_ms / 1000;
        let cached = self.state.key_set().await.map_err(unavailable)?;
        if let Some(keys) = &cached {
            if let Some(verified) = self.verified_tokens.get(keys, policy, token, now_secs) {
                return Ok(verified);
            }
            match authenticate::verify_token(keys, policy, token, now_secs) {
                Err(TokenError::UnknownKeyId(kid)) => {
                    self.check_key_not_revoked(&kid, now_ms).await?
                }
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

    /// Refuses with `REVOKED_KEY` when the deny-list names the signing key `kid`.
    async fn check_key_not_revoked(&self, kid: &str, now_ms: u64) -> Result<(), Refusal> {
        if kid.is_empty() {
            return Ok(());
        }
        let key = shared::revocation::RevokedTarget {
            kind: RevocationKind::SigningKey,
            id: kid.to_owned(),
        }
        .deny_key();
        let cutoffs = self
            .state
            .denials(&[key], now_ms)
            .await
            .map_err(unavailable)?;
        if cutoffs.first().copied().flatten().is_some() {
            return Err(Refusal::new(RevocationKind::SigningKey.code()));
        }
        Ok(())
    }

    /// Audits a refusal, but for `IP_BLOCKED`: the intrusion stage audits a block once as it
    /// starts and once with its tally, not per refused request.
    fn audit_refusal(&self, request: &EdgeRequest, exchange: &Exchange, refusal: &Refusal) {
        if refusal.code() == ErrorCode::IpBlocked {
            return;
        }
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
    use crate::backend_sync::{API_KEYS_PATH, JWKS_PATH, REVOCATIONS_PATH};
    use crate::memory::{MemoryRateStore, MemoryState};
    use crate::ports::BufferedBody;
    use crate::testing::{
        CountingEntropy, ManualClock, RecordingAudit, ScriptedUpstream, block_on, json,
    };
    use shared::audit::AuditEventType;
    use shared::signing::MessageSigningKey;
    use shared::token::{H200Claims, SigningKey};
    use std::sync::Mutex;
    use std::sync::atomic::Ordering;

    const NOW_MS: u64 = 1_700_000_000_000;

    struct Rig {
        pipeline: Pipeline<MemoryRateStore, MemoryState, Arc<ScriptedUpstream>>,
        clock: Arc<ManualClock>,
        audit: Arc<RecordingAudit>,
        upstream: Arc<ScriptedUpstream>,
        signing: SigningKey,
        /// The backend's revocation feed: `(revoked_at_ms, entry JSON)`.
        feed: Arc<Mutex<Vec<(u64, String)>>>,
        /// The keys the backend's JWKS publishes.
        jwks: Arc<Mutex<String>>,
    }

    fn rig() -> Rig {
        let signing = SigningKey::generate_ed25519("kid-1", [5u8; 32]).expect("key");
        let mut keys = KeySet::new();
        keys.insert(signing.verification_key());
        let jwks = Arc::new(Mutex::new(keys.to_jwks_json()));
        let feed = Arc::new(Mutex::new(vec![(
            NOW_MS,
            r#"{"jti":"jti-revoked","expires_at_ms":1800000000000,"revoked_at_ms":1700000000000}"#
                .to_owned(),
        )]));
        let (published, entries) = (jwks.clone(), feed.clone());
        let upstream = Arc::new(ScriptedUpstream::new(move |request| {
            let path = request.path_and_query.as_str();
            Ok(match path {
                JWKS_PATH => json(200, &published.lock().expect("test lock")),
                "/auth/login" => json(401, r#"{"code":"INVALID_CREDENTIALS"}"#),
                p if p.starts_with(REVOCATIONS_PATH) => {
                    let since: u64 = p
                        .rsplit("since_ms=")
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    let entries = entries.lock().expect("test lock");
                    let newer: Vec<&str> = entries
                        .iter()
                        .filter(|(at, _)| *at > since)
                        .map(|(_, entry)| entry.as_str())
                        .collect();
                    let body = format!(r#"{{"revoked":[{}],"now_ms":{NOW_MS}}}"#, newer.join(","));
                    json(200, &body)
                }
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
            feed,
            jwks,
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

    /// Records the stages a request finishes.
    #[derive(Default)]
    struct StageLog(Mutex<Vec<Stage>>);

    impl StageObserver for Arc<StageLog> {
        fn started(&self) {
            self.0.lock().expect("test lock").clear();
        }

        fn finished(&self, stage: Stage) {
            self.0.lock().expect("test lock").push(stage);
        }
    }

    #[test]
    fn a_forwarded_request_finishes_every_stage_in_order_and_a_refused_one_stops_early() {
        let mut rig = rig();
        let log = Arc::new(StageLog::default());
        rig.pipeline.set_observer(Box::new(log.clone()));
        let bearer = format!("Bearer {}", rig.token("viewer", "jti-stages"));
        let response = rig.send("GET", "/api/v1/rules", &[("authorization", &bearer)], b"");
        assert_eq!(response.status, 200);
        assert_eq!(*log.0.lock().expect("test lock"), Stage::ALL.to_vec());

        let response = rig.send(
            "GET",
            "/api/v1/servers",
            &[("authorization", "Bearer x")],
            b"",
        );
        assert_eq!(response.status, 401);
        assert_eq!(
            *log.0.lock().expect("test lock"),
            [
                Stage::RequestId,
                Stage::Cors,
                Stage::Intrusion,
                Stage::Route,
                Stage::Respond
            ]
        );
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
        assert_eq!(
            rig.upstream.paths(),
            vec![
                JWKS_PATH.to_owned(),
                format!("{REVOCATIONS_PATH}?since_ms=0"),
                format!("{REVOCATIONS_PATH}?since_ms={NOW_MS}"),
            ],
            "the JWKS and the deny-list it must not run ahead of; nothing forwarded"
        );
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
        let blocked = rig.send("GET", "/openapi.json", &[], b"");
        assert_eq!(
            (blocked.status, code(&blocked).as_str()),
            (403, "IP_BLOCKED")
        );
        assert_eq!(blocked.header("retry-after"), Some("7200"));
    }

    impl Rig {
        /// Five wrong-password logins: the address is blocked for an hour.
        fn earn_login_block(&self) {
            for _ in 0..5 {
                let failed = self.send(
                    "POST",
                    "/auth/login",
                    &[("content-type", "application/json")],
                    br#"{"username":"a","password":"wrong"}"#,
                );
                assert_eq!(failed.status, 401);
            }
        }

        /// The `ip_blocked` events audited so far, with their details.
        fn block_events(&self) -> Vec<String> {
            self.audit
                .0
                .lock()
                .expect("test lock")
                .iter()
                .filter(|e| e.event_type == AuditEventType::IpBlocked)
                .map(|e| e.detail.clone().unwrap_or_default())
                .collect()
        }
    }

    #[test]
    fn a_block_is_audited_when_it_starts_and_once_with_its_tally_when_it_ends() {
        let rig = rig();
        rig.earn_login_block();
        for _ in 0..20 {
            let refused = rig.send("GET", "/api/v1/rules", &[], b"");
            assert_eq!(
                (refused.status, code(&refused).as_str()),
                (403, "IP_BLOCKED")
            );
        }
        let events = rig.block_events();
        assert_eq!(
            events.len(),
            1,
            "one event for the block, not one per refusal: {events:?}"
        );
        let until = NOW_MS + 3_600_000;
        assert!(
            events[0].contains(&format!("until {until} ms")),
            "{events:?}"
        );
        assert!(events[0].contains("5 failed logins"), "{events:?}");

        rig.clock.0.store(until, Ordering::SeqCst);
        assert_eq!(rig.send("GET", "/api/v1/rules", &[], b"").status, 401);
        assert_eq!(rig.send("GET", "/api/v1/rules", &[], b"").status, 401);
        let events = rig.block_events();
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(
            events[1].contains("after refusing 20 requests"),
            "the tally, reported once: {events:?}"
        );
    }

    #[test]
    fn probes_answer_for_a_blocked_address_and_nothing_else_does() {
        let rig = rig();
        rig.earn_login_block();
        for path in ["/health", "/ready"] {
            assert_eq!(rig.send("GET", path, &[], b"").status, 200, "{path}");
            assert_eq!(rig.send("HEAD", path, &[], b"").status, 200, "{path}");
        }
        for (method, path) in [
            ("GET", "/openapi.json"),
            ("GET", "/metrics"),
            ("POST", "/health"),
            ("GET", "/health/x"),
        ] {
            let refused = rig.send(method, path, &[], b"");
            assert_eq!(
                (refused.status, code(&refused).as_str()),
                (403, "IP_BLOCKED"),
                "{method} {path}"
            );
        }
        rig.clock.0.fetch_add(3_600_000, Ordering::SeqCst);
        assert_eq!(rig.send("GET", "/api/v1/rules", &[], b"").status, 401);
        let events = rig.block_events();
        assert!(
            events
                .last()
                .is_some_and(|e| e.contains("after refusing 4 requests")),
            "probes are not counted as refused: {events:?}"
        );
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

    impl Rig {
        /// Adds an entry to the backend's revocation feed, revoked at the clock's time.
        fn publish(&self, entry: &str) {
            let at = self.clock.now_ms();
            let entry = entry.replace("AT", &at.to_string());
            self.feed.lock().expect("test lock").push((at, entry));
        }

        fn get_rules(&self, bearer: &str) -> EdgeResponse {
            self.send("GET", "/api/v1/rules", &[("authorization", bearer)], b"")
        }
    }

    #[test]
    fn a_revoked_signing_key_refuses_its_tokens_even_remembered_ones() {
        let rig = rig();
        let bearer = format!("Bearer {}", rig.token("viewer", "jti-key"));
        assert_eq!(rig.get_rules(&bearer).status, 200);
        assert_eq!(rig.get_rules(&bearer).status, 200, "the remembered token");

        rig.clock.0.fetch_add(1_000, Ordering::SeqCst);
        rig.publish(r#"{"kid":"kid-1","expires_at_ms":1800000000000,"revoked_at_ms":AT}"#);
        assert_eq!(block_on(rig.pipeline.sync_revocations()), Ok(1));
        let refused = rig.get_rules(&bearer);
        assert_eq!(
            (refused.status, code(&refused).as_str()),
            (401, "REVOKED_KEY")
        );
        assert_eq!(
            refused.header("content-type"),
            Some("application/problem+json")
        );
        assert!(rig.events().contains(&AuditEventType::TokenInvalid));
        assert_eq!(
            rig.upstream
                .paths()
                .iter()
                .filter(|p| p.starts_with("/api/"))
                .count(),
            2,
            "the refused request never reached the backend"
        );
    }

    #[test]
    fn a_token_of_a_key_gone_from_the_jwks_and_revoked_is_refused_without_a_refetch() {
        let rig = rig();
        let bearer = format!("Bearer {}", rig.token("viewer", "jti-gone"));
        rig.publish(r#"{"kid":"kid-1","expires_at_ms":1800000000000,"revoked_at_ms":AT}"#);
        assert_eq!(block_on(rig.pipeline.sync_revocations()), Ok(2));
        let other = SigningKey::generate_ed25519("kid-2", [6u8; 32]).expect("key");
        let mut rotated = KeySet::new();
        rotated.insert(other.verification_key());
        *rig.jwks.lock().expect("test lock") = rotated.to_jwks_json();
        assert!(block_on(rig.pipeline.refresh_keys()).is_ok());
        let fetches_before = rig.upstream.paths().len();

        let refused = rig.get_rules(&bearer);
        assert_eq!(
            (refused.status, code(&refused).as_str()),
            (401, "REVOKED_KEY")
        );
        assert_eq!(
            rig.upstream.paths().len(),
            fetches_before,
            "no JWKS refetch"
        );
    }

    #[test]
    fn a_subject_revocation_refuses_only_tokens_issued_before_its_cutoff() {
        let rig = rig();
        let older = format!("Bearer {}", rig.token("viewer", "jti-older"));
        assert_eq!(rig.get_rules(&older).status, 200);
        rig.clock.0.fetch_add(10_000, Ordering::SeqCst);
        rig.publish(
            r#"{"sub":"user-1","issued_before_ms":AT,"expires_at_ms":1800000000000,"revoked_at_ms":AT}"#,
        );
        assert_eq!(block_on(rig.pipeline.sync_revocations()), Ok(1));
        let refused = rig.get_rules(&older);
        assert_eq!(
            (refused.status, code(&refused).as_str()),
            (401, "REVOKED_TOKEN")
        );
        rig.clock.0.fetch_add(1_000, Ordering::SeqCst);
        let newer = format!("Bearer {}", rig.token("viewer", "jti-newer"));
        assert_eq!(rig.get_rules(&newer).status, 200);
    }

    #[test]
    fn a_remembered_token_is_still_checked_for_revocation_expiry_and_key_rotation() {
        let rig = rig();
        let bearer = format!("Bearer {}", rig.token("viewer", "jti-cached"));
        let get = |rig: &Rig| rig.send("GET", "/api/v1/rules", &[("authorization", &bearer)], b"");
        assert_eq!(get(&rig).status, 200);
        assert_eq!(rig.pipeline.verified_tokens().len(), 1);
        assert_eq!(get(&rig).status, 200);

        block_on(
            rig.pipeline
                .state()
                .deny("jti:jti-cached", u64::MAX, NOW_MS + 3_600_000),
        )
        .expect("memory");
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
    fn the_openapi_document_is_answered_at_the_edge_with_its_headers() {
        let rig = rig();
        let response = rig.send("GET", "/openapi.json", &[], b"");
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert_eq!(response.body, shared::openapi::DOCUMENT.as_bytes());
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        assert!(response.header("x-ratelimit-limit").is_some());
        assert!(rig.upstream.paths().is_empty());
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
