//! `h200 dev`: the whole system on one machine with embedded defaults: the backend (SQLite and
//! keys in the data folder, generated on first start) and the edge in front of it, sharing the
//! folder, and workers inside the backend process that pull its queued jobs.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use edge_native::args::EdgeArgs;
use gpu_backend::auth::password::{PasswordHasher, check_policy};
use gpu_backend::config::BackendConfig;
use gpu_backend::server::{Backend, shutdown_signal};
use gpu_backend::store::Store;
use gpu_backend::store::users::NewUser;

use crate::cli::KernelArgs;
use crate::command::dev_edge::{self, EdgeRuntime, WasmEdgeSettings};

/// `h200 dev`.
#[derive(Clone, clap::Args)]
pub struct DevArgs {
    /// Folder for the database and the key files (created on first start).
    #[arg(long, env = "H200_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Where the edge (the public API) listens.
    #[arg(long, env = "H200_EDGE_ADDR", default_value = "127.0.0.1:8080")]
    pub edge_addr: SocketAddr,
    /// Where the backend listens (only the edge should call it).
    #[arg(long, env = "H200_BACKEND_ADDR", default_value = "127.0.0.1:8081")]
    pub backend_addr: SocketAddr,
    /// Origins allowed cross-origin at the edge, comma separated.
    #[arg(long, env = "H200_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Workers to run inside the backend process.
    #[arg(long, env = "H200_DEV_WORKERS", default_value_t = 1)]
    pub workers: usize,
    /// If set, creates the user `admin` with this password when no such user exists.
    #[arg(long, env = "H200_DEV_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// A route policy TOML for both the edge and the backend, instead of the embedded one.
    #[arg(long, env = "H200_ROUTE_POLICY")]
    pub route_policy: Option<PathBuf>,
    /// A role table TOML for both the edge and the backend, instead of the embedded one.
    #[arg(long, env = "H200_ROLES")]
    pub roles: Option<PathBuf>,
    /// The runtime that serves the public API: the native edge in this process, the Worker in
    /// Miniflare or the Spin component under `wasmtime serve` (both built from this checkout
    /// when stale; they need the tools of the end-to-end tests, installed on first use).
    #[arg(long, env = "H200_DEV_EDGE", value_enum, default_value = "native")]
    pub edge: EdgeRuntime,
    /// Where the edge keeps rate limits, deny-list and blocks, and the backend its replay nonces:
    /// `memory` (the default) or `redis://host:port[/db]` (as several edges and backends would).
    #[arg(long, env = "H200_STATE_URL", hide_env_values = true)]
    pub state_url: Option<String>,
    #[command(flatten)]
    pub kernels: KernelArgs,
}

impl std::fmt::Debug for DevArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevArgs")
            .field("data_dir", &self.data_dir)
            .field("edge_addr", &self.edge_addr)
            .field("backend_addr", &self.backend_addr)
            .field("edge", &self.edge)
            .finish_non_exhaustive()
    }
}

/// Runs backend and edge until Ctrl-C or SIGTERM; then stops the edge (its buffered audit events
/// delivered) before the backend.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    if args.edge != EdgeRuntime::Native && (args.route_policy.is_some() || args.roles.is_some()) {
        anyhow::bail!(
            "--route-policy and --roles hold at the native edge only: the Worker and the Spin component enforce the tables built into them"
        );
    }
    let database_url = gpu_backend::store::default_sqlite_url(&args.data_dir);
    let mut config = BackendConfig::new(args.backend_addr, args.data_dir.clone(), database_url);
    config.routes = super::backend::route_policy(args.route_policy.as_deref())?;
    config.roles = super::backend::roles(args.roles.as_deref())?;
    config.workers = args.workers;
    config.state_url = args.state_url.clone();
    let backend = Backend::prepare(&config, crate::kernels::all(&args.kernels)?).await?;
    let backend_addr = backend.local_addr();
    ensure_admin(&backend.state.store, args.admin_password.as_deref()).await?;
    if args.edge != EdgeRuntime::Native {
        return run_wasm_edge(&args, backend).await;
    }
    let mut edge_args = EdgeArgs::local(
        args.edge_addr,
        format!("http://{backend_addr}"),
        args.data_dir.clone(),
    );
    edge_args.cors_origins = args.cors_origins.clone();
    edge_args.route_policy = args.route_policy.clone();
    edge_args.roles = args.roles.clone();
    edge_args.state_url = args.state_url.clone();
    let edge = edge_args.bind().await?;
    let edge_addr = edge.local_addr().unwrap_or(args.edge_addr);
    println!(
        "h200 dev: the API is served at http://{edge_addr} (edge), backend at http://{backend_addr}"
    );
    println!("h200 dev: data folder {}", args.data_dir.display());

    // The edge stops first and drains its audit buffer into the backend; the backend stops
    // only once the edge is done, so no event is lost at shutdown.
    let (stop_edge, edge_stopped) = tokio::sync::watch::channel(false);
    let (stop_backend, backend_stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_edge.send(true);
    });
    let wait = |mut receiver: tokio::sync::watch::Receiver<bool>| async move {
        let _ = receiver.wait_for(|stop| *stop).await;
    };
    let edge_then_backend = async move {
        let result = edge.serve(wait(edge_stopped)).await;
        let _ = stop_backend.send(true);
        result
    };
    let (backend_result, edge_result) =
        tokio::join!(backend.serve(wait(backend_stopped)), edge_then_backend);
    backend_result?;
    edge_result.context("serving the edge")?;
    Ok(())
}

/// The backend in this process behind a wasm edge; on Ctrl-C or SIGTERM the edge (front and
/// runtime) stops before the backend.
async fn run_wasm_edge(args: &DevArgs, backend: Backend) -> anyhow::Result<()> {
    let backend_addr = backend.local_addr();
    let settings = WasmEdgeSettings {
        runtime: args.edge,
        edge_addr: args.edge_addr,
        backend_url: format!("http://{backend_addr}"),
        data_dir: args.data_dir.clone(),
        cors_origins: args.cors_origins.clone(),
    };
    println!(
        "h200 dev: starting the {:?} edge (built first when stale; minutes on a first run)",
        args.edge
    );
    let edge = tokio::task::spawn_blocking(move || dev_edge::start(&settings))
        .await
        .context("starting the edge")??;
    let edge_addr = edge.addr;
    let (stop_backend, backend_stopped) = tokio::sync::watch::channel(false);
    let ready = async move {
        match dev_edge::wait_ready(edge_addr).await {
            Ok(()) => println!(
                "h200 dev: the API is served at http://{edge_addr} (edge), backend at http://{backend_addr}"
            ),
            Err(error) => eprintln!("h200 dev: {error:#}"),
        }
        std::future::pending::<()>().await
    };
    let edge_then_backend = async move {
        tokio::select! {
            () = shutdown_signal() => {}
            () = ready => {}
        }
        let _ = tokio::task::spawn_blocking(move || drop(edge)).await;
        let _ = stop_backend.send(true);
    };
    let mut stopped = backend_stopped;
    let (backend_result, ()) = tokio::join!(
        backend.serve(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }),
        edge_then_backend
    );
    backend_result
}

/// Creates `admin` once when a password is given; otherwise says how to add a user.
async fn ensure_admin(store: &Store, password: Option<&str>) -> anyhow::Result<()> {
    if store.user_by_username("admin").await?.is_some() {
        return Ok(());
    }
    let Some(password) = password else {
        println!(
            "h200 dev: no admin user yet; add one with `h200 user add admin --role admin` (password on stdin) or set H200_DEV_ADMIN_PASSWORD"
        );
        return Ok(());
    };
    check_policy(password).map_err(|e| anyhow::anyhow!("H200_DEV_ADMIN_PASSWORD refused: {e}"))?;
    let hash = PasswordHasher::new()
        .hash(password)
        .map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
    let roles = ["admin".to_owned()];
    store
        .create_user(NewUser {
            username: "admin",
            password_hash: &hash,
            roles: &roles,
            email_sealed: None,
        })
        .await
        .context("creating the admin user")?;
    println!("h200 dev: created user admin with role admin");
    Ok(())
}
