//! Starting the backend: open the store, load or generate keys, serve until told to stop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use shared::signing::{MessageSigningKey, SignatureVerifier};
use shared::token::TokenPolicy;

use crate::auth::tokens::TokenIssuer;
use crate::config::BackendConfig;
use crate::http::{self, AppState, SharedState};
use crate::keys::{BackendKeys, EdgeKeyRing, KeyPaths, TokenKeyRing, read_json};
use crate::queue::Kernels;
use crate::store::{Store, now_ms};

/// How often the token key file is checked for a rotation.
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// A backend ready to serve: its state and where it listens.
pub struct Backend {
    pub state: SharedState,
    pub listener: tokio::net::TcpListener,
    data_dir: PathBuf,
    /// Workers to start inside this process.
    workers: usize,
    /// What those workers run.
    kernels: Kernels,
    database_url: String,
}

/// The edge verifier for up to two keys, newest first.
pub fn edge_verifier(ring: &EdgeKeyRing) -> anyhow::Result<SignatureVerifier> {
    let mut keys = ring.keys.iter().rev().map(|k| {
        MessageSigningKey::new(k.key_id.clone(), k.secret_bytes()?)
            .map_err(|e| anyhow::anyhow!("edge key {}: {e}", k.key_id))
    });
    let current = keys.next().context("no edge signing key")??;
    let previous = keys.next().transpose()?;
    SignatureVerifier::new(current, previous).map_err(|e| anyhow::anyhow!("edge keys: {e}"))
}

impl Backend {
    /// Opens the store, loads keys (generating missing ones) and binds the address. `kernels`
    /// are what the in-process workers run (`config.workers` of them).
    pub async fn prepare(config: &BackendConfig, kernels: Kernels) -> anyhow::Result<Backend> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating the data folder {}", config.data_dir.display()))?;
        let store = Store::open(&config.database_url)
            .await
            .context("opening the store")?;
        let (keys, created) =
            BackendKeys::load_or_generate(&config.data_dir, &config.keys, now_ms())
                .context("loading key material")?;
        for path in created {
            tracing::info!(path = %path.display(), "generated a missing key file");
        }
        let policy = TokenPolicy::new(config.token_issuer.clone(), config.token_audience.clone());
        let tokens = TokenIssuer::new(policy, &keys.token, now_ms())?;
        let mut state = AppState::new(
            store,
            tokens,
            config.roles.clone(),
            config.routes.clone(),
            edge_verifier(&keys.edge)?,
            keys.seal,
        );
        state.retain_images = config.retain_images;
        let state = Arc::new(state);
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding {}", config.addr))?;
        Ok(Backend {
            state,
            listener,
            data_dir: config.data_dir.clone(),
            workers: config.workers,
            kernels,
            database_url: config.database_url.clone(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address; this is a bug")
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let reload = tokio::spawn(reload_token_keys(self.state.clone(), self.data_dir.clone()));
        let (stop_workers, workers) = crate::queue::spawn_local_workers(
            &self.state.store,
            self.workers,
            &self.kernels,
            &self.database_url,
        )
        .await?;
        let addr = self.local_addr();
        tracing::info!(%addr, "backend listening");
        let app = http::router(self.state.clone());
        let result = axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP");
        reload.abort();
        let _ = stop_workers.send(true);
        for worker in workers {
            let _ = worker.await;
        }
        self.state.store.close().await;
        tracing::info!("backend stopped");
        result
    }
}

/// Picks up `h200 keys rotate` without a restart.
async fn reload_token_keys(state: SharedState, data_dir: PathBuf) {
    let path = KeyPaths::new(&data_dir).token();
    let mut last_modified = modified(&path);
    loop {
        tokio::time::sleep(KEY_RELOAD_INTERVAL).await;
        let now = modified(&path);
        if now == last_modified {
            continue;
        }
        last_modified = now;
        match read_json::<TokenKeyRing>(&path) {
            Ok(Some(ring)) => {
                let policy = state.tokens().policy().clone();
                match TokenIssuer::new(policy, &ring, now_ms()) {
                    Ok(issuer) => {
                        *state.tokens.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(issuer);
                        tracing::info!("token keys reloaded");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "token key file is invalid; keeping the old keys")
                    }
                }
            }
            Ok(None) => tracing::warn!("token key file disappeared; keeping the old keys"),
            Err(e) => {
                tracing::error!(error = %e, "token key file is unreadable; keeping the old keys")
            }
        }
    }
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested");
}
