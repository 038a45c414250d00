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
    backend.serve(shutdown_signal()).await
}

/// The backend library's configuration from the flags.
pub fn config(args: &BackendArgs) -> anyhow::Result<BackendConfig> {
    let mut config = BackendConfig::new(args.addr, args.store.data_dir.clone(), args.store.url());
    config.token_issuer = args.token_issuer.clone();
    config.token_audience = args.token_audience.clone();
    config.keys = args.key_overrides();
    config.routes = route_policy(args.route_policy.as_deref())?;
    config.roles = roles(args.roles.as_deref())?;
    config.retain_images = args.retain_images;
    config.workers = args.workers;
    Ok(config)
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
