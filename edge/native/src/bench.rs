//! `h200 bench edge`: what the edge pipeline costs per request, next to a plain pass-through proxy
//! in front of the same stand-in backend, and what each stage costs when called alone.
//!
//! Everything runs in this process on loopback ephemeral ports, each part on its own one-thread
//! tokio runtime so its CPU time can be read per thread: the stand-in backend (`bench-upstream`),
//! the real native edge (`bench-edge`), the pass-through proxy (`bench-proxy`) and the client
//! (`bench-client`).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
use edge::stage::{Stage, StageObserver};
use edge::{EdgeConfig, EdgeRequest, Pipeline};
use shared::audit::AuditEvent;
use shared::route_policy::{DEFAULT_ROUTE_POLICY_TOML, RoutePolicy};
use shared::token::{H200Claims, KeySet, SigningKey, TokenPolicy};

use crate::{EdgeServer, OsEntropy, SystemClock};

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
        let token = issue_bench_token(&token_key, "bench")?;
        let edge_key = format!("bench-edge:{}", B64.encode(random_bytes::<32>()?));
        Ok(Material {
            token_key,
            jwks: keys.to_jwks_json(),
            token,
            edge_key,
        })
    }

    /// Another valid token of the benchmark user, never seen before (its own `jti`).
    fn fresh_token(&self, index: usize) -> anyhow::Result<String> {
        issue_bench_token(&self.token_key, &format!("bench-fresh-{index}"))
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

/// An access token of the benchmark user (roles [`BENCH_ROLES`]) with a random `jti` under
/// `prefix`, issued now.
fn issue_bench_token(key: &SigningKey, prefix: &str) -> anyhow::Result<String> {
    let policy = TokenPolicy::new(
        shared::token::DEFAULT_ISSUER,
        shared::token::DEFAULT_AUDIENCE,
    );
    let claims = H200Claims::access(
        BENCH_ROLES.iter().map(|r| (*r).to_owned()).collect(),
        vec!["clusters:read".into()],
        false,
    );
    let jti = format!("{prefix}-{}", hex::encode(random_bytes::<8>()?));
    key.issue(&policy, "bench-user", &jti, &claims, now_ms() / 1000)
        .map_err(|e| anyhow::anyhow!("issuing a token: {e}"))
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
    let text = unthrottled_route_table()?;
    RoutePolicy::from_toml(&text).map_err(|e| anyhow::anyhow!("unthrottled route table: {e}"))
}

/// The embedded route table with every rate class's limit raised out of reach (and no burst):
/// the same classes and buckets are checked as in production, but one bench user is never
/// refused. As TOML, for processes that read a `--route-policy` file (`h200 bench api`).
pub fn unthrottled_route_table() -> anyhow::Result<String> {
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
    toml::to_string(&table).context("writing the route table")
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

/// Times the gaps between the pipeline's own stage marks ([`Stage::ALL`]): per stage, the total
/// time of the requests that finished it and how many did.
#[derive(Default, Clone)]
struct StageClock {
    inner: Arc<Mutex<StageTimes>>,
}

#[derive(Default)]
struct StageTimes {
    last: Option<Instant>,
    totals: BTreeMap<Stage, (Duration, u64)>,
}

impl StageObserver for StageClock {
    fn started(&self) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).last = Some(Instant::now());
    }

    fn finished(&self, stage: Stage) {
        let now = Instant::now();
        let mut times = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(last) = times.last.replace(now) {
            let entry = times.totals.entry(stage).or_default();
            entry.0 += now - last;
            entry.1 += 1;
        }
    }
}

impl StageClock {
    fn reset(&self) {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = StageTimes::default();
    }

    /// Mean µs of each stage, in pipeline order.
    fn means(&self) -> Vec<(Stage, f64)> {
        let times = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Stage::ALL
            .iter()
            .filter_map(|stage| {
                let (total, count) = times.totals.get(stage)?;
                Some((*stage, total.as_secs_f64() * 1e6 / (*count).max(1) as f64))
            })
            .collect()
    }
}

/// The real pipeline in memory (canned backend answer, in-memory state), timed stage by stage
/// from its own marks: first with one repeated token (the verified-token cache), then with a
/// fresh token per request (Ed25519 verification against the cached JWKS). Median of
/// [`STAGE_BATCHES`] batches of [`STAGE_ITERATIONS`] requests for the whole request.
async fn stage_costs(config: &EdgeConfig, material: &Material) -> anyhow::Result<Vec<String>> {
    let upstream_answer = UpstreamResponse {
        status: 200,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("content-length".into(), BENCH_BODY.len().to_string()),
            ("date".into(), "Mon, 24 Nov 2025 12:00:00 GMT".into()),
        ],
        body: BENCH_BODY.as_bytes().to_vec(),
    };
    let state = MemoryState::default();
    state
        .replace_key_set(material.key_set())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut pipeline = Pipeline::new(
        config.clone(),
        MemoryRateStore::default(),
        state,
        CannedUpstream(upstream_answer),
        Box::new(SystemClock),
        Box::new(OsEntropy),
        Box::new(NoAudit),
    );
    let clock = StageClock::default();
    pipeline.set_observer(Box::new(clock.clone()));
    let request = |token: &str| EdgeRequest {
        method: "GET".into(),
        path: BENCH_PATH.into(),
        query: None,
        headers: vec![
            ("accept".into(), "application/json".into()),
            ("authorization".into(), format!("Bearer {token}")),
            ("host".into(), "127.0.0.1".into()),
        ],
        client_ip: "127.0.0.1".into(),
    };
    let repeated = request(&material.token);
    let first = pipeline
        .handle(repeated.clone(), BufferedBody::default())
        .await;
    if first.status != 200 {
        bail!("the in-memory pipeline answered {}", first.status);
    }

    clock.reset();
    let mut batches = Vec::with_capacity(STAGE_BATCHES);
    for _ in 0..STAGE_BATCHES {
        let started = Instant::now();
        for _ in 0..STAGE_ITERATIONS {
            black_box(
                pipeline
                    .handle(repeated.clone(), BufferedBody::default())
                    .await,
            );
        }
        batches.push(started.elapsed().as_secs_f64() * 1e6 / STAGE_ITERATIONS as f64);
    }
    batches.sort_by(f64::total_cmp);
    let whole = batches[STAGE_BATCHES / 2];
    let repeated_stages = clock.means();

    let fresh: Vec<EdgeRequest> = (0..STAGE_ITERATIONS)
        .map(|i| material.fresh_token(i).map(|token| request(&token)))
        .collect::<anyhow::Result<_>>()?;
    clock.reset();
    for request in fresh {
        black_box(pipeline.handle(request, BufferedBody::default()).await);
    }
    let fresh_stages = clock.means();

    let mut lines: Vec<String> = Vec::new();
    for (stage, us) in &repeated_stages {
        lines.push(format!("stage {}: {us:.1} µs", stage.name()));
        if *stage == Stage::Authenticate
            && let Some((_, fresh)) = fresh_stages.iter().find(|(s, _)| s == stage)
        {
            lines.push(format!(
                "stage authenticate (first use of a token: EdDSA verification, cached JWKS): {fresh:.1} µs"
            ));
        }
    }
    let sum: f64 = repeated_stages.iter().map(|(_, us)| us).sum();
    let fresh_sum: f64 = fresh_stages.iter().map(|(_, us)| us).sum();
    lines.push(format!(
        "pipeline per request, by its stages: {sum:.1} µs (first use of a token: {fresh_sum:.1} µs)"
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
    use shared::route_policy::Resolution;

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

    /// The stage figures come from the pipeline's own marks: every stage of [`Stage::ALL`], in
    /// order, and the first use of a token costs more than a remembered one.
    #[test]
    fn stage_costs_report_every_pipeline_stage_in_order() {
        let material = Material::generate().expect("material");
        let config = edge_config("http://127.0.0.1:9", &material).expect("config");
        let lines = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(stage_costs(&config, &material))
            .expect("stage costs");
        let named: Vec<&str> = lines
            .iter()
            .filter_map(|line| line.strip_prefix("stage "))
            .filter(|rest| !rest.contains("first use"))
            .filter_map(|rest| rest.split(':').next())
            .collect();
        let expected: Vec<&str> = Stage::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(named, expected, "{lines:#?}");
        let micros = |prefix: &str| -> f64 {
            let line = lines.iter().find(|l| l.starts_with(prefix)).expect(prefix);
            line.rsplit(": ")
                .next()
                .unwrap()
                .trim_end_matches(" µs")
                .parse()
                .unwrap()
        };
        assert!(
            micros("stage authenticate (first use") > micros("stage authenticate:"),
            "{lines:#?}"
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
