//! `h200 bench edge`: what the edge pipeline costs per request, next to a plain pass-through proxy
//! in front of the same stand-in backend, and what each stage costs when called alone.
//!
//! Everything runs in this process on loopback ephemeral ports, each part on its own one-thread
//! tokio runtime so its CPU time can be read per thread: the stand-in backend (`bench-upstream`),
//! the real native edge (`bench-edge`), the pass-through proxy (`bench-proxy`) and the client
//! (`bench-client`).

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::{EdgeServer, OsEntropy, SystemClock};
use anyhow::{Context, bail};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use edge::backend_sync::{JWKS_PATH, REVOCATIONS_PATH};
use edge::memory::{MemoryRateStore, MemoryState};
use edge::ports::{
    AuditSink, BufferedBody, Clock, EdgeState, Upstream, UpstreamError, UpstreamRequest,
    UpstreamResponse,
};
use edge::stage::authenticate::{self, Credentials};
use edge::stage::sign::{self, Outbound};
use edge::stage::{authorize, cors, intrusion, rate_limit, request_id, respond, validate};
use edge::token_cache::VerifiedTokenCache;
use edge::{EdgeConfig, EdgeRequest, Pipeline};
use shared::audit::AuditEvent;
use shared::revocation::TokenFacts;
use shared::route_policy::{DEFAULT_ROUTE_POLICY_TOML, Resolution, RoutePolicy};
use shared::token::{H200Claims, KeySet, SigningKey, TokenPolicy};

use crate::args::EdgeArgs;

/// The route every benchmark request takes: an authenticated `GET` of the route table.
pub const BENCH_PATH: &str = "/api/v1/clusters_summary";
/// What the stand-in backend answers on [`BENCH_PATH`].
const BENCH_BODY: &str = r#"{"clusters":[{"id":1,"points":128,"centroid":[0.12,0.34]}],"total":1}"#;
/// The request budget of every rate class during the run: the same classes and buckets are
/// checked as in production, but the default quotas (600 per minute per principal) would answer
/// 429 after the first few hundred requests of one user.
const UNTHROTTLED_LIMIT: i64 = 1_000_000_000;
/// The roles of the benchmark user; `readonly` holds `clusters:read` in the default role table.
const BENCH_ROLES: &[&str] = &["readonly"];
/// Calls of each stage per batch, and batches (the median batch is reported).
const STAGE_ITERATIONS: usize = 2_000;
const STAGE_BATCHES: usize = 5;
/// Alternating rounds of pass-through and edge, so a change in machine load hits both alike.
const ROUNDS: usize = 2;

/// What `h200 bench edge` measures.
#[derive(Debug, Clone, Copy)]
pub struct EdgeBench {
    /// Measured requests per target.
    pub requests: usize,
    /// Concurrent keep-alive connections of the client.
    pub concurrency: usize,
    /// Requests per target before measuring.
    pub warmup: usize,
}

/// Runs the benchmark and returns its lines. Blocks: it drives runtimes of its own, so call it
/// from a thread outside any tokio runtime.
pub fn run(bench: EdgeBench) -> anyhow::Result<Vec<String>> {
    if bench.requests == 0 || bench.concurrency == 0 {
        bail!("--requests and --concurrency must be at least 1");
    }
    let material = Material::generate()?;
    let upstream_rt = runtime("bench-upstream")?;
    let edge_rt = runtime("bench-edge")?;
    let proxy_rt = runtime("bench-proxy")?;
    let client_rt = runtime("bench-client")?;

    let upstream_addr = upstream_rt.block_on(serve_upstream(material.jwks.clone()))?;
    let backend_url = format!("http://{upstream_addr}");
    let config = edge_config(&backend_url, &material)?;
    let edge_addr = edge_rt.block_on(async {
        let server = EdgeServer::bind(config.clone(), loopback(), DEFAULT_AUDIT_BUFFER)
            .await
            .context("starting the edge")?;
        let addr = server.local_addr().context("the edge has no address")?;
        tokio::spawn(server.serve(std::future::pending()));
        anyhow::Ok(addr)
    })?;
    let proxy_addr = proxy_rt.block_on(serve_pass_through(backend_url.clone()))?;

    let edge_target = Target::new("edge", "bench-edge", edge_addr);
    let proxy_target = Target::new("pass-through", "bench-proxy", proxy_addr);
    let client = Client {
        bearer: format!("Bearer {}", material.token),
        concurrency: bench.concurrency,
    };
    let mut edge_run = Measured::default();
    let mut proxy_run = Measured::default();
    client_rt.block_on(async {
        client.drive(&proxy_target, bench.warmup).await?;
        client.drive(&edge_target, bench.warmup).await?;
        for round in 0..ROUNDS {
            let share = round_share(bench.requests, round);
            proxy_run.add(client.measure(&proxy_target, share).await?);
            edge_run.add(client.measure(&edge_target, share).await?);
        }
        anyhow::Ok(())
    })?;
    client_rt.shutdown_timeout(Duration::from_secs(1));
    proxy_rt.shutdown_timeout(Duration::from_secs(1));
    edge_rt.shutdown_timeout(Duration::from_secs(1));
    upstream_rt.shutdown_timeout(Duration::from_secs(1));

    let mut lines = vec![format!(
        "edge bench: GET {BENCH_PATH} with an EdDSA Bearer token, {} requests per target after {} warm-up, {} keep-alive connections",
        bench.requests, bench.warmup, bench.concurrency
    )];
    lines.push(edge_run.line("edge"));
    lines.push(proxy_run.line("pass-through"));
    lines.push(format!(
        "added: p50 +{:.0} µs, req/s x{:.2} of pass-through",
        edge_run.percentile(50.0) - proxy_run.percentile(50.0),
        edge_run.rate() / proxy_run.rate()
    ));
    lines.push(
        match (edge_run.cpu_per_request(), proxy_run.cpu_per_request()) {
            (Some(edge), Some(proxy)) => format!(
                "edge CPU per request: {edge:.1} µs (pass-through: {proxy:.1} µs, added: {:.1} µs)",
                edge - proxy
            ),
            _ => {
                "edge CPU per request: not measurable here (no /proc/self/task/*/schedstat)".into()
            }
        },
    );
    let stages = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the stage runtime")?
        .block_on(stage_costs(&config, &material))?;
    lines.extend(stages);
    Ok(lines)
}

/// The audit buffer of `h200 edge`'s default.
const DEFAULT_AUDIT_BUFFER: usize = crate::audit::DEFAULT_AUDIT_BUFFER;

fn runtime(name: &str) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .with_context(|| format!("building the {name} runtime"))
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Requests of round `round` when `total` are split over [`ROUNDS`].
fn round_share(total: usize, round: usize) -> usize {
    total / ROUNDS + usize::from(round < total % ROUNDS)
}

/// The keys and the token of one run, generated fresh.
struct Material {
    /// Signs the benchmark user's token.
    token_key: SigningKey,
    /// The public half, as the backend publishes it.
    jwks: String,
    /// A valid access token of the benchmark user.
    token: String,
    /// The edge's HMAC key, as `key_id:base64`.
    edge_key: String,
}

impl Material {
    fn generate() -> anyhow::Result<Self> {
        let token_key = SigningKey::generate_ed25519("bench-1", random_bytes::<32>()?)
            .map_err(|e| anyhow::anyhow!("token key: {e}"))?;
        let mut keys = KeySet::new();
        keys.insert(token_key.verification_key());
        let policy = TokenPolicy::new(
            shared::token::DEFAULT_ISSUER,
            shared::token::DEFAULT_AUDIENCE,
        );
        let claims = H200Claims::access(
            BENCH_ROLES.iter().map(|r| (*r).to_owned()).collect(),
            vec!["clusters:read".into()],
            false,
        );
        let jti = format!("bench-{}", hex::encode(random_bytes::<8>()?));
        let now_secs = now_ms() / 1000;
        let token = token_key
            .issue(&policy, "bench-user", &jti, &claims, now_secs)
            .map_err(|e| anyhow::anyhow!("issuing the token: {e}"))?;
        let edge_key = format!("bench-edge:{}", B64.encode(random_bytes::<32>()?));
        Ok(Material {
            token_key,
            jwks: keys.to_jwks_json(),
            token,
            edge_key,
        })
    }

    fn key_set(&self) -> Arc<KeySet> {
        let mut keys = KeySet::new();
        keys.insert(self.token_key.verification_key());
        Arc::new(keys)
    }
}

fn now_ms() -> u64 {
    SystemClock.now_ms()
}

/// The configuration `h200 edge` builds, with the generated edge key and every rate class's
/// budget raised to [`UNTHROTTLED_LIMIT`].
fn edge_config(backend_url: &str, material: &Material) -> anyhow::Result<EdgeConfig> {
    let mut args = EdgeArgs::local(loopback(), backend_url.to_owned(), ".".into());
    args.edge_signing_keys = Some(material.edge_key.clone());
    let mut config = args.config()?;
    config.routes = unthrottled_routes()?;
    Ok(config)
}

/// The embedded route table with every rate class's limit raised and its burst dropped.
fn unthrottled_routes() -> anyhow::Result<RoutePolicy> {
    let mut table: toml::Table = DEFAULT_ROUTE_POLICY_TOML
        .parse()
        .context("reading the embedded route table")?;
    let classes = table
        .get_mut("rate_class")
        .and_then(toml::Value::as_table_mut)
        .context("the route table has no rate classes")?;
    for class in classes.iter_mut().filter_map(|(_, c)| c.as_table_mut()) {
        class.insert("limit".into(), toml::Value::Integer(UNTHROTTLED_LIMIT));
        class.remove("burst");
    }
    let text = toml::to_string(&table).context("writing the route table")?;
    RoutePolicy::from_toml(&text).map_err(|e| anyhow::anyhow!("unthrottled route table: {e}"))
}

/// The stand-in backend: the benchmark route, the JWKS and an empty revocation feed.
async fn serve_upstream(jwks: String) -> anyhow::Result<SocketAddr> {
    let app = Router::new()
        .route(BENCH_PATH, get(|| async { json(BENCH_BODY.to_owned()) }))
        .route(JWKS_PATH, get(move || async move { json(jwks.clone()) }))
        .route(
            REVOCATIONS_PATH,
            get(|| async { json(r#"{"revoked":[]}"#.to_owned()) }),
        );
    serve(app, "the stand-in backend").await
}

fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn serve(app: Router, what: &str) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(loopback())
        .await
        .with_context(|| format!("binding {what}"))?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// The pass-through proxy: forwards method, path, query, headers and body with the edge's HTTP
/// client (reqwest, same timeout), and the answer back, buffered like the edge buffers it.
#[derive(Clone)]
struct PassThrough {
    client: reqwest::Client,
    backend_url: String,
}

/// Header fields that describe one connection and are not forwarded.
const HOP_BY_HOP: &[header::HeaderName] = &[
    header::CONNECTION,
    header::HOST,
    header::TRANSFER_ENCODING,
    header::CONTENT_LENGTH,
    header::UPGRADE,
    header::TE,
    header::TRAILER,
];

async fn serve_pass_through(backend_url: String) -> anyhow::Result<SocketAddr> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .context("building the pass-through client")?;
    let app = Router::new()
        .fallback(pass_through)
        .with_state(PassThrough {
            client,
            backend_url,
        });
    serve(app, "the pass-through proxy").await
}

async fn pass_through(State(proxy): State<PassThrough>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut outbound = proxy
        .client
        .request(parts.method, format!("{}{path}", proxy.backend_url));
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(name) {
            outbound = outbound.header(name, value);
        }
    }
    let Ok(answer) = outbound.body(body).send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer.status();
    let mut headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if !HOP_BY_HOP.contains(name) {
            headers.append(name, value.clone());
        }
    }
    let Ok(bytes) = answer.bytes().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// A server under measurement: its address and the name of its runtime's threads.
struct Target {
    name: &'static str,
    thread_name: &'static str,
    url: String,
}

impl Target {
    fn new(name: &'static str, thread_name: &'static str, addr: SocketAddr) -> Self {
        Target {
            name,
            thread_name,
            url: format!("http://{addr}{BENCH_PATH}"),
        }
    }
}

/// The load generator: `concurrency` tasks, each one request at a time on its own keep-alive
/// connection, together sending a fixed number of requests.
struct Client {
    bearer: String,
    concurrency: usize,
}

/// One measured run (or several, merged): latencies, wall time and server CPU time.
#[derive(Debug, Default)]
struct Measured {
    /// Latency of every request, in nanoseconds (sorted by [`Measured::add`]).
    latencies_ns: Vec<u64>,
    wall: Duration,
    /// CPU time of the server's threads, when readable.
    server_cpu_ns: Option<u64>,
}

impl Measured {
    fn add(&mut self, other: Measured) {
        let first = self.latencies_ns.is_empty();
        self.latencies_ns.extend(other.latencies_ns);
        self.latencies_ns.sort_unstable();
        self.wall += other.wall;
        self.server_cpu_ns = match (first, self.server_cpu_ns, other.server_cpu_ns) {
            (true, _, cpu) => cpu,
            (false, Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
    }

    fn rate(&self) -> f64 {
        self.latencies_ns.len() as f64 / self.wall.as_secs_f64()
    }

    /// The `p`th percentile latency in µs (nearest rank).
    fn percentile(&self, p: f64) -> f64 {
        let n = self.latencies_ns.len();
        if n == 0 {
            return 0.0;
        }
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.latencies_ns[rank.clamp(1, n) - 1] as f64 / 1000.0
    }

    fn cpu_per_request(&self) -> Option<f64> {
        let requests = self.latencies_ns.len().max(1) as f64;
        self.server_cpu_ns.map(|ns| ns as f64 / 1000.0 / requests)
    }

    fn line(&self, name: &str) -> String {
        format!(
            "{name}: {:.0} req/s, p50 {:.0} µs, p99 {:.0} µs",
            self.rate(),
            self.percentile(50.0),
            self.percentile(99.0)
        )
    }
}

impl Client {
    /// Sends `requests` requests to `target` without recording them.
    async fn drive(&self, target: &Target, requests: usize) -> anyhow::Result<()> {
        self.send(target, requests).await.map(drop)
    }

    /// Sends `requests` requests to `target` and measures them.
    async fn measure(&self, target: &Target, requests: usize) -> anyhow::Result<Measured> {
        let cpu_before = thread_cpu_ns(target.thread_name);
        let started = Instant::now();
        let latencies_ns = self.send(target, requests).await?;
        let wall = started.elapsed();
        let server_cpu_ns = cpu_before
            .zip(thread_cpu_ns(target.thread_name))
            .map(|(before, after)| after.saturating_sub(before));
        let mut measured = Measured::default();
        measured.add(Measured {
            latencies_ns,
            wall,
            server_cpu_ns,
        });
        Ok(measured)
    }

    async fn send(&self, target: &Target, requests: usize) -> anyhow::Result<Vec<u64>> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(self.concurrency)
            .build()
            .context("building the bench client")?;
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..self.concurrency {
            let (http, next, url, bearer) = (
                http.clone(),
                next.clone(),
                target.url.clone(),
                self.bearer.clone(),
            );
            tasks.spawn(async move {
                let mut latencies = Vec::with_capacity(requests / 4 + 1);
                while next.fetch_add(1, Ordering::Relaxed) < requests {
                    let started = Instant::now();
                    let response = http
                        .get(&url)
                        .header(header::AUTHORIZATION, &bearer)
                        .header(header::ACCEPT, "application/json")
                        .send()
                        .await?;
                    let status = response.status();
                    let body = response.bytes().await?;
                    if status != StatusCode::OK {
                        bail!(
                            "{url} answered {status}: {}",
                            String::from_utf8_lossy(&body)
                        );
                    }
                    latencies.push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
                }
                anyhow::Ok(latencies)
            });
        }
        let mut all = Vec::with_capacity(requests);
        while let Some(joined) = tasks.join_next().await {
            let latencies = joined
                .context("a client task panicked")?
                .with_context(|| format!("driving {}", target.name))?;
            all.extend(latencies);
        }
        Ok(all)
    }
}

/// CPU time (ns) so far of this process's threads named `name`, from the scheduler's per-thread
/// run time; `None` where `/proc` does not offer it.
fn thread_cpu_ns(name: &str) -> Option<u64> {
    let mut total = 0;
    let mut found = false;
    for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let path = entry.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
        found = true;
    }
    found.then_some(total)
}

/// The stand-in backend's answer, for the stage loops and the in-memory pipeline.
#[derive(Debug, Clone)]
struct CannedUpstream(UpstreamResponse);

impl Upstream for CannedUpstream {
    async fn send(&self, _request: UpstreamRequest) -> Result<UpstreamResponse, UpstreamError> {
        Ok(self.0.clone())
    }
}

/// Drops every event (a successful request emits none).
struct NoAudit;

impl AuditSink for NoAudit {
    fn emit(&self, _event: AuditEvent) {}

    fn dropped(&self) -> u64 {
        0
    }
}

/// Mean µs per call of `op`: [`STAGE_BATCHES`] batches of `iterations` calls, the median batch.
async fn per_call_us(iterations: usize, mut op: impl AsyncFnMut()) -> f64 {
    let mut batches = Vec::with_capacity(STAGE_BATCHES);
    for _ in 0..STAGE_BATCHES {
        let started = Instant::now();
        for _ in 0..iterations {
            op().await;
        }
        batches.push(started.elapsed().as_secs_f64() * 1e6 / iterations as f64);
    }
    batches.sort_by(f64::total_cmp);
    batches[STAGE_BATCHES / 2]
}

/// Each stage function of `edge::stage` called alone in a loop on the benchmark request, in
/// pipeline order, then their sum and the whole pipeline in memory (canned backend answer).
async fn stage_costs(config: &EdgeConfig, material: &Material) -> anyhow::Result<Vec<String>> {
    let request = EdgeRequest {
        method: "GET".into(),
        path: BENCH_PATH.into(),
        query: None,
        headers: vec![
            ("accept".into(), "application/json".into()),
            ("authorization".into(), format!("Bearer {}", material.token)),
            ("host".into(), "127.0.0.1".into()),
        ],
        client_ip: "127.0.0.1".into(),
    };
    let upstream_answer = UpstreamResponse {
        status: 200,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("content-length".into(), BENCH_BODY.len().to_string()),
            ("date".into(), "Mon, 24 Nov 2025 12:00:00 GMT".into()),
        ],
        body: BENCH_BODY.as_bytes().to_vec(),
    };
    let keys = material.key_set();
    let state = MemoryState::default();
    state
        .replace_key_set(keys.clone())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let rates = MemoryRateStore::default();
    let route = match config.routes.resolve("GET", BENCH_PATH) {
        Resolution::Found(found) => found.route,
        _ => bail!("{BENCH_PATH} is not in the route table"),
    };
    let token = match authenticate::credentials(&request) {
        Ok(Credentials::Bearer(token)) => token,
        _ => bail!("the bench request carries no Bearer token"),
    };
    let policy = &config.token_policy;
    let verified = authenticate::verify_token(&keys, policy, token, now_ms() / 1000)
        .map_err(|e| anyhow::anyhow!("the bench token does not verify: {e}"))?;
    let principal = authenticate::user_principal(&verified, &config.roles, &request.client_ip);
    let rate = rate_limit::check_route(
        &rates,
        &config.routes,
        route,
        &request.client_ip,
        &principal.subject,
        now_ms(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let request_id = request_id::assign(None, &OsEntropy);
    let n = STAGE_ITERATIONS;

    let mut stages: Vec<(&str, f64)> = Vec::new();
    stages.push((
        "request_id",
        per_call_us(n, async || {
            black_box(request_id::assign(
                request.header("x-request-id"),
                &OsEntropy,
            ));
        })
        .await,
    ));
    stages.push((
        "cors",
        per_call_us(n, async || {
            black_box(cors::is_preflight(&request));
            black_box(config.cors.actual_headers(request.header("origin")));
        })
        .await,
    ));
    stages.push((
        "intrusion",
        per_call_us(n, async || {
            let blocked = state.blocked_until(&request.client_ip, now_ms()).await;
            black_box(blocked.ok());
            black_box(intrusion::find_attack(
                &request.path,
                request.query.as_deref(),
            ));
            black_box(request.header("user-agent").and_then(intrusion::tool_agent));
        })
        .await,
    ));
    stages.push((
        "route",
        per_call_us(n, async || {
            black_box(config.routes.resolve(&request.method, &request.path));
        })
        .await,
    ));
    let authenticate = async |tokens: &VerifiedTokenCache| {
        let Ok(Credentials::Bearer(token)) = authenticate::credentials(&request) else {
            return;
        };
        let Ok(Some(keys)) = state.key_set().await else {
            return;
        };
        let now_secs = now_ms() / 1000;
        let verified = match tokens.get(&keys, policy, token, now_secs) {
            Some(verified) => verified,
            None => match authenticate::verify_token(&keys, policy, token, now_secs) {
                Ok(verified) => verified,
                Err(_) => return,
            },
        };
        let facts = TokenFacts {
            token_id: &verified.jwt_id,
            key_id: &verified.kid,
            subject: &verified.subject,
            issued_at_secs: verified.issued_at,
        };
        let cutoffs = state.denials(&facts.deny_keys(), now_ms()).await;
        black_box(cutoffs.map(|c| facts.refusal(&c)).ok());
        black_box(authenticate::user_principal(
            &verified,
            &config.roles,
            &request.client_ip,
        ));
    };
    let remembered = VerifiedTokenCache::default();
    remembered.insert(&keys, token, &verified, now_ms() / 1000);
    stages.push((
        "authenticate (repeated token: verified-token cache, deny-list, expiry)",
        per_call_us(n, async || authenticate(&remembered).await).await,
    ));
    let authenticate_index = stages.len() - 1;
    let never = VerifiedTokenCache::new(0);
    let first_use = per_call_us(n, async || authenticate(&never).await).await;
    stages.push((
        "authorize",
        per_call_us(n, async || {
            black_box(authorize::authorize(route, &principal).is_ok());
        })
        .await,
    ));
    let classes = config.routes.classes_of(route).count();
    let rate_name = format!("rate_limit ({classes} classes)");
    stages.push((
        &rate_name,
        per_call_us(n, async || {
            let rate = rate_limit::check_route(
                &rates,
                &config.routes,
                route,
                &request.client_ip,
                &principal.subject,
                now_ms(),
            )
            .await;
            black_box(rate.ok());
        })
        .await,
    ));
    stages.push((
        "validate",
        per_call_us(n, async || {
            let content_type = request.header("content-type");
            black_box(validate::check_declared(route, content_type, None).is_ok());
            let body = validate::read_limited(&mut BufferedBody::default(), route.body_limit).await;
            if let Ok(body) = body {
                black_box(validate::check_body("GET", route, content_type, &body).is_ok());
            }
        })
        .await,
    ));
    stages.push((
        "sign (RFC 9421, HMAC-SHA256)",
        per_call_us(n, async || {
            let outbound = Outbound {
                method: &request.method,
                path: &request.path,
                query: request.query.as_deref(),
                body: Vec::new(),
                principal: Some(&principal),
                request_id: &request_id,
                headers: sign::forwarded_headers(&request),
            };
            black_box(sign::sign(outbound, &config.signing_key, now_ms(), &OsEntropy).is_ok());
        })
        .await,
    ));
    stages.push((
        "respond",
        per_call_us(n, async || {
            let mut response = respond::from_upstream(upstream_answer.clone());
            let cors = config.cors.actual_headers(request.header("origin"));
            respond::finish(&mut response, &request_id, &cors, rate.reported());
            black_box(response);
        })
        .await,
    ));

    let pipeline = Pipeline::new(
        config.clone(),
        MemoryRateStore::default(),
        MemoryState::default(),
        CannedUpstream(upstream_answer.clone()),
        Box::new(SystemClock),
        Box::new(OsEntropy),
        Box::new(NoAudit),
    );
    pipeline
        .state()
        .replace_key_set(keys.clone())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let first = pipeline
        .handle(request.clone(), BufferedBody::default())
        .await;
    if first.status != 200 {
        bail!(
            "the in-memory pipeline answered {}: {}",
            first.status,
            String::from_utf8_lossy(&first.body)
        );
    }
    let whole = per_call_us(n, async || {
        let response = pipeline
            .handle(request.clone(), BufferedBody::default())
            .await;
        black_box(response);
    })
    .await;

    let mut lines: Vec<String> = stages
        .iter()
        .map(|(name, us)| format!("stage {name}: {us:.1} µs"))
        .collect();
    lines.insert(
        authenticate_index + 1,
        format!(
            "stage authenticate (first use of a token: EdDSA verification, cached JWKS): {first_use:.1} µs"
        ),
    );
    let sum: f64 = stages.iter().map(|(_, us)| us).sum();
    let first_sum = sum - stages[authenticate_index].1 + first_use;
    lines.push(format!(
        "pipeline CPU per request: {sum:.1} µs (first use of a token: {first_sum:.1} µs)"
    ));
    lines.push(format!(
        "pipeline.handle in memory (canned backend answer): {whole:.1} µs"
    ));
    Ok(lines)
}

/// Runs `work` on a thread of its own, outside the caller's runtime, and waits for it.
pub async fn on_own_thread<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench".into())
        .spawn(move || {
            let _ = done.send(work());
        })
        .context("starting the bench thread")?;
    result.await.context("the bench thread stopped")?
}

fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unthrottled_table_keeps_every_class_of_the_bench_route() {
        let routes = unthrottled_routes().expect("table");
        let defaults = RoutePolicy::default();
        let (Resolution::Found(ours), Resolution::Found(theirs)) = (
            routes.resolve("GET", BENCH_PATH),
            defaults.resolve("GET", BENCH_PATH),
        ) else {
            panic!("{BENCH_PATH} is routed");
        };
        assert_eq!(ours.route, theirs.route);
        assert!(
            routes
                .rate_classes()
                .all(|c| c.limit as i64 == UNTHROTTLED_LIMIT)
        );
        assert_eq!(
            routes.rate_classes().count(),
            defaults.rate_classes().count()
        );
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut measured = Measured::default();
        measured.add(Measured {
            latencies_ns: (1..=100).rev().map(|us| us * 1000).collect(),
            wall: Duration::from_secs(1),
            server_cpu_ns: Some(5_000),
        });
        assert_eq!(measured.percentile(50.0), 50.0);
        assert_eq!(measured.percentile(99.0), 99.0);
        assert_eq!(measured.rate(), 100.0);
        assert_eq!(measured.cpu_per_request(), Some(0.05));
        assert_eq!(round_share(5, 0) + round_share(5, 1), 5);
    }
}
