//! Settings of the `h200` commands: every flag is also an `H200_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::keys::KeyOverrides;

/// Where the backend keeps its state.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Folder for the SQLite database and the key files (created on first start).
    #[arg(long, env = "H200_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Database URL: `sqlite:…` or `postgres://…`. Default: `h200.db` in the data folder.
    /// `DATABASE_URL` is read when this is not set.
    #[arg(long, env = "H200_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl StoreArgs {
    /// The database URL in force: the flag, then `DATABASE_URL`, then SQLite in the data folder.
    pub fn url(&self) -> String {
        self.database_url
            .clone()
            .or_else(|| std::env::var("DATABASE_URL").ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| crate::store::default_sqlite_url(&self.data_dir))
    }
}

/// `h200 backend`.
#[derive(Clone, clap::Args)]
pub struct BackendArgs {
    /// Address to listen on.
    #[arg(long, env = "H200_BACKEND_ADDR", default_value = "127.0.0.1:8081")]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub store: StoreArgs,
    /// `iss` of issued tokens.
    #[arg(long, env = "H200_TOKEN_ISSUER", default_value = "h200")]
    pub token_issuer: String,
    /// `aud` of issued tokens.
    #[arg(long, env = "H200_TOKEN_AUDIENCE", default_value = "h200-api")]
    pub token_audience: String,
    /// Edge signing keys as `key_id:base64` pairs, oldest first (at most two). Default: the
    /// key file in the data folder.
    #[arg(long, env = "H200_EDGE_SIGNING_KEYS", hide_env_values = true)]
    pub edge_signing_keys: Option<String>,
    /// Seal keys as `version:base64` pairs. Default: the key file in the data folder.
    #[arg(long, env = "H200_SEAL_KEYS", hide_env_values = true)]
    pub seal_keys: Option<String>,
    /// A route policy TOML to use instead of the embedded one.
    #[arg(long, env = "H200_ROUTE_POLICY")]
    pub route_policy: Option<PathBuf>,
    /// A role table TOML to use instead of the embedded one.
    #[arg(long, env = "H200_ROLES")]
    pub roles: Option<PathBuf>,
    /// Keep each uploaded image, sealed with the seal key (AES-256-GCM), with its analysis.
    /// Off by default: the image lives only in the queued job and is dropped once it is done.
    #[arg(long, env = "H200_RETAIN_IMAGES")]
    pub retain_images: bool,
    /// Workers to run inside the backend process (0: jobs wait for `h200 worker` processes).
    #[arg(long, env = "H200_BACKEND_WORKERS", default_value_t = 0)]
    pub workers: usize,
}

impl std::fmt::Debug for BackendArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendArgs")
            .field("addr", &self.addr)
            .field("store", &self.store.data_dir)
            .field("token_issuer", &self.token_issuer)
            .field("token_audience", &self.token_audience)
            .field("keys", &self.key_overrides())
            .finish_non_exhaustive()
    }
}

impl BackendArgs {
    pub fn key_overrides(&self) -> KeyOverrides {
        KeyOverrides {
            edge_keys: self.edge_signing_keys.clone(),
            seal_keys: self.seal_keys.clone(),
        }
    }
}
