//! Starting the backend: open the store, load or generate keys, serve until told to stop.

use std::net::SocketAddr;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use shared::signing::{MessageSigningKey, SignatureVerifier};
use shared::token::TokenPolicy;

use crate::auth::token_keys::{self, TokenKeyFile};
use crate::config::BackendConfig;
use crate::http::{self, AppState, SharedState};
use crate::keys::{BackendKeys, EdgeKeyRing};
use crate::queue::Kernels;
use crate::replay::ReplayStore;
use crate::store::{Store, now_ms};

/// How often the token key file and the revoked signing keys are checked for a change.
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// A backend ready to serve: its state and where it listens.
pub struct Backend {
    pub state: SharedState,
    pub listener: tokio::net::TcpListener,
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
        let mut policy =
            TokenPolicy::new(config.token_issuer.clone(), config.token_audience.clone());
        policy.access_ttl_secs = config.access_token_ttl_secs;
        policy.refresh_ttl_secs = config.refresh_token_ttl_secs;
        let revoked = store
            .revoked_key_ids()
            .await
            .context("reading the revoked signing keys")?;
        let tokens = token_keys::issuer(policy, &keys.token, &revoked, now_ms())?;
        let token_key_file = TokenKeyFile::new(&config.data_dir, revoked);
        let indexed = crate::auth::email_index::fill(&store, &keys.seal)
            .await
            .context("filing users' emails under the blind index")?;
        if indexed > 0 {
            tracing::info!(users = indexed, "filed emails under the blind index");
        }
        let mut state = AppState::new(
            store,
            tokens,
            config.roles.clone(),
            config.routes.clone(),
            edge_verifier(&keys.edge)?,
            keys.seal,
        );
        state.retain_images = config.retain_images;
        state.nonces = ReplayStore::open(config.state_url.as_deref(), &config.state_prefix)
            .await
            .context("opening the replay store (--state-url)")?;
        state.token_key_file = Some(token_key_file);
        let state = Arc::new(state);
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding {}", config.addr))?;
        Ok(Backend {
            state,
            listener,
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
        self.serve_wrapped(Ok, shutdown).await
    }

    /// [`Backend::serve`] on the listener `wrap` makes of the bound socket (a TLS listener):
    /// stops accepting when `shutdown` resolves, finishes the requests in flight, then stops
    /// the in-process workers once they finished the jobs in hand.
    pub async fn serve_wrapped<L>(
        self,
        wrap: impl FnOnce(tokio::net::TcpListener) -> anyhow::Result<L>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()>
    where
        L: axum::serve::Listener<Addr = SocketAddr>,
    {
        let reload = tokio::spawn(reload_token_keys(self.state.clone()));
        let (stop_workers, workers) = crate::queue::spawn_local_workers(
            &self.state.store,
            self.workers,
            &self.kernels,
            &self.database_url,
        )
        .await?;
        let addr = self.local_addr();
        let listener = wrap(self.listener)?;
        tracing::info!(%addr, "backend listening");
        let app = http::router(self.state.clone());
        let result = axum::serve(
            listener.tap_io(|_| {}),
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

/// Picks up `h200 keys rotate` and `h200 keys revoke` without a restart.
async fn reload_token_keys(state: SharedState) {
    loop {
        tokio::time::sleep(KEY_RELOAD_INTERVAL).await;
        match token_keys::reload(&state, false).await {
            Ok(true) => tracing::info!("token keys reloaded"),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "token keys could not be reloaded; keeping the old keys")
            }
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM. The SIGTERM handler is installed when this is called, not
/// when the future is first awaited, so a SIGTERM that arrives while the caller is busy (a
/// worker in the middle of its first batch) asks for a graceful stop instead of killing it.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let terminate = async move {
            match terminate {
                Some(mut signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
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
}
