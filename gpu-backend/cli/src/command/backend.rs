//! `h200 backend`: the backend API (signed requests only), with in-process workers if asked.

use std::path::Path;

use anyhow::Context;
use gpu_backend::config::BackendConfig;
use gpu_backend::server::{Backend, shutdown_signal};
use shared::permissions::RoleSet;
use shared::route_policy::RoutePolicy;

use super::read_file;
use crate::cli::BackendArgs;

/// Serves until Ctrl-C or SIGTERM.
pub async fn run(args: BackendArgs) -> anyhow::Result<()> {
    let backend = Backend::prepare(&config(&args)?, crate::kernels::all(&args.kernels)?).await?;
    if !args.tls.enabled() {
        return backend.serve(shutdown_signal()).await;
    }
    if let Err(error) = args.tls.spawn_redirect(backend.local_addr().port()).await {
        anyhow::bail!("the HTTP redirect listener: {error}");
    }
    let tls = args.tls.clone();
    backend
        .serve_wrapped(
            move |tcp| tls.tls_listener(tcp).context("setting up TLS"),
            shutdown_signal(),
        )
        .await
}

/// The backend library's configuration from the flags.
pub fn config(args: &BackendArgs) -> anyhow::Result<BackendConfig> {
    let mut config = BackendConfig::new(args.addr, args.store.data_dir.clone(), args.store.url());
    config.token_issuer = args.token_issuer.clone();
    config.token_audience = args.token_audience.clone();
    if args.refresh_token_ttl_secs < args.access_token_ttl_secs {
        anyhow::bail!("--refresh-token-ttl-secs must be at least --access-token-ttl-secs");
    }
    config.access_token_ttl_secs = args.access_token_ttl_secs;
    config.refresh_token_ttl_secs = args.refresh_token_ttl_secs;
    config.keys = args.key_overrides();
    config.routes = route_policy(args.route_policy.as_deref())?;
    config.roles = roles(args.roles.as_deref())?;
    config.retain_images = args.retain_images;
    config.workers = args.workers;
    args.state.apply(&mut config);
    Ok(config)
}

/// Where several backends keep what they must share beyond the database: the nonces of the
/// edge signatures they accepted, so that a request replayed to another replica is refused.
#[derive(Clone, Default, clap::Args)]
pub struct StateArgs {
    /// `memory` (this process; the default), or `postgres://…` or `redis://host:port[/db]`
    /// shared by every backend behind the same edges.
    #[arg(long = "state-url", env = "H200_STATE_URL", hide_env_values = true)]
    pub url: Option<String>,
    /// Prefix of the keys written to a shared Redis.
    #[arg(
        long = "state-prefix",
        env = "H200_STATE_PREFIX",
        default_value = gpu_backend::replay::DEFAULT_REPLAY_PREFIX
    )]
    pub prefix: String,
}

impl StateArgs {
    /// Hands the choice to the backend's configuration.
    pub fn apply(&self, config: &mut BackendConfig) {
        config.state_url = self.url.clone();
        config.state_prefix = self.prefix.clone();
    }
}

/// The route table in a file, or the embedded one.
pub fn route_policy(path: Option<&Path>) -> anyhow::Result<RoutePolicy> {
    match path {
        Some(path) => RoutePolicy::from_toml(&read_file(path)?)
            .map_err(|e| anyhow::anyhow!("route policy {}: {e}", path.display())),
        None => Ok(RoutePolicy::default()),
    }
}

/// The role table in a file, or the embedded one.
pub fn roles(path: Option<&Path>) -> anyhow::Result<RoleSet> {
    match path {
        Some(path) => RoleSet::from_toml(&read_file(path)?)
            .with_context(|| format!("roles {}", path.display())),
        None => Ok(RoleSet::default()),
    }
}
