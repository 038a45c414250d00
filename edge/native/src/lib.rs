//! The native runtime: the edge pipeline in an axum server with in-memory state, a reqwest
//! upstream, the audit fan-out task, and a tokio interval that drives the edge's upkeep schedule
//! ([`edge::upkeep`]). `h200 edge` and `h200 dev` run this.
//!
//! - this file: [`EdgeServer`] and the native ports ([`SystemClock`], [`OsEntropy`],
//!   [`HttpUpstream`]).
//! - [`args`]: `h200 edge`'s flags ([`args::EdgeArgs`]) and the key file they read.
//! - [`audit`]: the bounded audit channel and its delivery task.
//! - [`bench`]: `h200 bench edge`, the pipeline against a plain pass-through proxy.
//! - [`stream_socket`]: stream WebSockets (upgrade, per-socket loop, limits).
//! - [`stream_bench`]: `h200 bench stream`, a stream's socket against HTTP batches.

pub mod args;
pub mod audit;
pub mod bench;
pub mod redis_state;
pub mod state;
pub mod stream_bench;
pub mod stream_socket;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::serve::ListenerExt;
use http_body_util::BodyExt;

use edge::config::EdgeConfig;
use edge::message::{EdgeRequest, EdgeResponse};
use edge::pipeline::Pipeline;
use edge::ports::{
    BodyError, BodySource, Clock, Entropy, Upstream, UpstreamError, UpstreamRequest,
    UpstreamResponse,
};
use edge::upkeep::Upkeep;
use state::{NativeRates, NativeState};
use stream_socket::StreamSockets;

/// How long the backend may take to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// The pipeline as the native server runs it.
pub type NativePipeline = Pipeline<NativeRates, NativeState, HttpUpstream>;

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// The operating system's random source.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&self, buf: &mut [u8]) {
        if getrandom::fill(buf).is_err() {
            // Without OS randomness request ids and nonces would repeat; refuse to go on.
            std::process::abort();
        }
    }
}

/// The backend over HTTP.
#[derive(Debug, Clone)]
pub struct HttpUpstream {
    client: reqwest::Client,
    base_url: String,
}

impl HttpUpstream {
    /// An upstream for `base_url` (e.g. `http://127.0.0.1:8081`).
    pub fn new(base_url: &str) -> Result<Self, NativeError> {
        HttpUpstream::with_tls(base_url, &tls::BackendTlsArgs::default())
    }

    /// An upstream for `base_url` that also trusts the CA and presents the client certificate
    /// of `tls` (an `https://` backend, mutual TLS).
    pub fn with_tls(base_url: &str, tls: &tls::BackendTlsArgs) -> Result<Self, NativeError> {
        let builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(UPSTREAM_TIMEOUT);
        let client = tls
            .apply(builder)
            .map_err(|e| NativeError::Client(e.to_string()))?
            .build()
            .map_err(|e| NativeError::Client(e.to_string()))?;
        Ok(HttpUpstream {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// Sends `request` to the absolute `url` followed by its path and query.
    pub async fn send_to(
        &self,
        url: &str,
        request: UpstreamRequest,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
        let mut builder = self
            .client
            .request(method, format!("{url}{}", request.path_and_query));
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let response = builder.body(request.body).send().await.map_err(failure)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let body = response.bytes().await.map_err(failure)?.to_vec();
        Ok(UpstreamResponse {
            status,
            headers,
            body,
        })
    }
}

fn failure(error: reqwest::Error) -> UpstreamError {
    if error.is_timeout() {
        UpstreamError::Timeout
    } else {
        UpstreamError::Unreachable(error.to_string())
    }
}

impl Upstream for HttpUpstream {
    async fn send(&self, request: UpstreamRequest) -> Result<UpstreamResponse, UpstreamError> {
        self.send_to(&self.base_url, request).await
    }
}

/// Why the native edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    #[error("building the HTTP client: {0}")]
    Client(String),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("serving HTTP: {0}")]
    Serve(std::io::Error),
    #[error("opening the edge state: {0}")]
    State(String),
    #[error("setting up TLS: {0}")]
    Tls(String),
}

/// An axum request body read frame by frame.
pub struct StreamedBody(Body);

impl BodySource for StreamedBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, BodyError> {
        loop {
            match self.0.frame().await {
                None => return Ok(None),
                Some(Err(error)) => return Err(BodyError(error.to_string())),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data.to_vec()));
                    }
                }
            }
        }
    }
}

/// A bound, ready edge: the pipeline, its listener and the audit fan-out to run beside it.
pub struct EdgeServer {
    pipeline: Arc<NativePipeline>,
    listener: tokio::net::TcpListener,
    fanout: audit::AuditFanout,
    /// HTTPS settings; plain HTTP without a certificate.
    tls: tls::TlsArgs,
}

impl EdgeServer {
    /// Builds the pipeline for `config` with in-memory state and binds `addr`.
    pub async fn bind(
        config: EdgeConfig,
        addr: SocketAddr,
        audit_buffer: usize,
    ) -> Result<EdgeServer, NativeError> {
        let (rates, state) = state::StateTarget::Memory
            .open()
            .await
            .map_err(|e| NativeError::State(e.to_string()))?;
        let upstream = HttpUpstream::new(&config.backend_url)?;
        EdgeServer::bind_with_state(config, addr, audit_buffer, (rates, state), upstream).await
    }

    /// Builds the pipeline for `config` over the given state stores and backend client, and
    /// binds `addr`.
    pub async fn bind_with_state(
        config: EdgeConfig,
        addr: SocketAddr,
        audit_buffer: usize,
        (rates, state): (NativeRates, NativeState),
        upstream: HttpUpstream,
    ) -> Result<EdgeServer, NativeError> {
        let (sink, fanout) = audit::channel(
            audit_buffer,
            upstream.clone(),
            config.signing_key.clone(),
            config.webhook.clone(),
        );
        let pipeline = Arc::new(Pipeline::new(
            config,
            rates,
            state,
            upstream,
            Box::new(SystemClock),
            Box::new(OsEntropy),
            Box::new(sink),
        ));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| NativeError::Bind { addr, source })?;
        Ok(EdgeServer {
            pipeline,
            listener,
            fanout,
            tls: tls::TlsArgs::default(),
        })
    }

    /// Serves HTTPS with these settings (plain HTTP when they name no certificate).
    pub fn with_tls(mut self, tls: tls::TlsArgs) -> Self {
        self.tls = tls;
        self
    }

    /// Where it listens.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// The pipeline it serves.
    pub fn pipeline(&self) -> Arc<NativePipeline> {
        self.pipeline.clone()
    }

    /// Serves until `shutdown` resolves; the sync and audit tasks run alongside.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), NativeError> {
        let local_addr = self.listener.local_addr().ok();
        let https_port = local_addr.map_or(443, |a| a.port());
        let listening = self
            .tls
            .listener(self.listener)
            .map_err(|e| NativeError::Tls(e.to_string()))?;
        let fanout = tokio::spawn(self.fanout.run());
        let upkeep = tokio::spawn(upkeep(self.pipeline.clone()));
        tracing::info!(
            addr = %local_addr.unwrap_or(SocketAddr::from(([0, 0, 0, 0], https_port))),
            backend = %self.pipeline.config().backend_url,
            tls = self.tls.enabled(),
            "edge listening"
        );
        let app = router(self.pipeline).into_make_service_with_connect_info::<SocketAddr>();
        let served = match listening {
            tls::Listening::Tls(listener) => {
                if let Err(error) = self.tls.spawn_redirect(https_port).await {
                    tracing::error!(%error, "the HTTP redirect listener did not start");
                }
                axum::serve(listener.tap_io(|_| {}), app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            tls::Listening::Plain(listener) => {
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
        }
        .map_err(NativeError::Serve);
        upkeep.abort();
        // The pipeline (and with it the channel's sender) is gone: the fan-out drains and ends.
        let _ = tokio::time::timeout(Duration::from_secs(5), fanout).await;
        served
    }
}

/// The axum router: every request goes through the pipeline.
pub fn router(pipeline: Arc<NativePipeline>) -> Router {
    Router::new().fallback(handle).with_state(pipeline)
}

async fn handle(
    State(pipeline): State<Arc<NativePipeline>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let peer_ip = peer.ip().to_string();
    // The socket peer is always an address, so a request here is never without one.
    let client_ip = pipeline
        .config()
        .client_ip(&headers, Some(&peer_ip))
        .unwrap_or(peer_ip);
    let request = EdgeRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers,
        client_ip,
    };
    if StreamSockets::is_upgrade(&request) {
        return SOCKETS.upgrade(pipeline, request, parts).await;
    }
    into_axum(pipeline.handle(request, StreamedBody(body)).await)
}

/// The stream sockets of this process, with the default limits.
static SOCKETS: std::sync::LazyLock<StreamSockets> =
    std::sync::LazyLock::new(StreamSockets::default);

fn into_axum(response: EdgeResponse) -> Response {
    // A body refused part-way is left unread: the connection cannot carry another request.
    let close = response.status == StatusCode::PAYLOAD_TOO_LARGE.as_u16();
    let mut out = Response::new(Body::from(response.body));
    *out.status_mut() =
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = out.headers_mut();
    for (name, value) in response.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.append(name, value);
        }
    }
    if close {
        headers.insert(
            axum::http::header::CONNECTION,
            HeaderValue::from_static("close"),
        );
    }
    out
}

/// Drives the upkeep schedule from a timer: at start everything runs (the JWKS and the deny-list
/// are fetched before the first requests need them), then each task when it falls due.
async fn upkeep(pipeline: Arc<NativePipeline>) {
    let upkeep = Upkeep::default();
    let mut tick = tokio::time::interval(Duration::from_millis(upkeep.schedule().tick_ms()));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for outcome in upkeep.run_due(&pipeline).await {
            if let Err(error) = outcome.result {
                tracing::warn!(task = outcome.task.name(), %error, "edge upkeep failed");
            }
        }
    }
}
