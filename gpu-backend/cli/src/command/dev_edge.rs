//! `h200 dev --edge worker|spin`: the public API served by a wasm edge runtime instead of the
//! native edge. The artifact is built from this checkout when missing or stale, and served as the
//! end-to-end tests serve it (crate `h200-runtimes`): the Worker in Miniflare configured from
//! `wrangler.toml`, the Spin component under `wasmtime serve` configured from `spin.toml`. Both
//! sit behind a loopback front on the edge address that sets the client's address as the
//! platform does (Cloudflare's `CF-Connecting-IP`, Spin's `spin-client-addr`, from the socket
//! peer), since neither local runtime does it the way the platform does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use h200_runtimes::front::{Front, Peer, Platform};
use h200_runtimes::serve::{self, Served};
use shared::signing::key_list::EdgeKeyRing;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use edge_native::args::EDGE_KEY_FILE;

/// The runtime that serves the public API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EdgeRuntime {
    /// The native edge, in this process.
    Native,
    /// The Cloudflare Worker in Miniflare (Node.js 20+).
    Worker,
    /// The Spin component under `wasmtime serve`.
    Spin,
}

/// A wasm edge and its front; dropping it stops both (the front first).
pub struct WasmEdge {
    /// Where the front (the public API) listens.
    pub addr: SocketAddr,
    _front: Front,
    _served: Served,
}

/// What the wasm edge is told besides `wrangler.toml`'s or `spin.toml`'s defaults.
pub struct WasmEdgeSettings {
    pub runtime: EdgeRuntime,
    pub edge_addr: SocketAddr,
    pub backend_url: String,
    pub data_dir: PathBuf,
    pub cors_origins: Vec<String>,
}

/// How long the runtime may take to answer its first request once built.
const START_LIMIT: Duration = Duration::from_secs(120);

/// Builds (when stale) and starts the runtime, with its front listening on the edge address.
/// Blocking: run it off the async workers.
pub fn start(settings: &WasmEdgeSettings) -> anyhow::Result<WasmEdge> {
    // The address is taken first, so a busy port fails before minutes of building.
    let listener = std::net::TcpListener::bind(settings.edge_addr)
        .with_context(|| format!("binding the edge address {}", settings.edge_addr))?;
    let (key_id, secret) = current_edge_key(&settings.data_dir)?;
    let cors = settings.cors_origins.join(",");
    let backend_url = settings.backend_url.clone();
    let data_dir = settings.data_dir.clone();
    let runtime = settings.runtime;
    let (served, platform) = catching(move || match runtime {
        EdgeRuntime::Worker => {
            let script = serve::gateway_worker();
            let served = serve::start_worker(
                &script,
                &[
                    ("BACKEND_URL", backend_url),
                    ("EDGE_SIGNING_KEY_ID", key_id),
                    ("EDGE_SIGNING_KEY", secret),
                    ("CORS_ALLOWED_ORIGINS", cors),
                ],
            );
            (served, Platform::Cloudflare)
        }
        EdgeRuntime::Spin => {
            let component = serve::gateway_component();
            let served = serve::start_component(
                &component,
                &data_dir.join("edge-spin"),
                true,
                &[
                    ("backend_url", backend_url),
                    ("edge_signing_key_id", key_id),
                    ("edge_signing_key", secret),
                    ("cors_allowed_origins", cors),
                ],
            );
            (served, Platform::Spin)
        }
        EdgeRuntime::Native => unreachable!("the native edge runs in process"),
    })?;
    listener
        .set_nonblocking(true)
        .context("a non-blocking edge listener")?;
    let addr = listener.local_addr().context("the edge address")?;
    let front = Front::serve(listener, &served.url, platform, Peer::Socket);
    Ok(WasmEdge {
        addr,
        _front: front,
        _served: served,
    })
}

/// The data folder's current edge key: its id and its secret in base64, as the wasm edges take
/// them.
fn current_edge_key(data_dir: &Path) -> anyhow::Result<(String, String)> {
    let path = data_dir.join(EDGE_KEY_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let ring: EdgeKeyRing =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let Some(current) = ring.current() else {
        bail!("{} holds no key", path.display());
    };
    Ok((current.key_id.clone(), current.secret.clone()))
}

/// Runs `f`, turning a panic of the runtime harness (a tool that cannot be installed, a build
/// that fails) into an error with its message.
fn catching<T>(f: impl FnOnce() -> T) -> anyhow::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "the runtime harness failed".to_owned());
        anyhow::anyhow!("starting the edge runtime: {message}")
    })
}

/// Waits until `GET /health` at `addr` answers 200 (the runtime compiled and reached the
/// backend), at most [`START_LIMIT`].
pub async fn wait_ready(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_LIMIT;
    loop {
        if health_status(addr).await.ok() == Some(200) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the edge at {addr} did not answer GET /health with 200 within {} s",
                START_LIMIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn health_status(addr: SocketAddr) -> std::io::Result<u16> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await?;
    std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP status line"))
}
