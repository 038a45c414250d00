//! `h200 edge`'s settings: every flag is also an `H200_*` environment variable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::audit::DEFAULT_AUDIT_BUFFER;
use crate::state::{DEFAULT_STATE_PREFIX, StateTarget};
use crate::tls::{BackendTlsArgs, TlsArgs};
use crate::{EdgeServer, HttpUpstream};
use anyhow::{Context, bail};
use edge::EdgeConfig;
use edge::config::WebhookConfig;
use shared::cors::CorsPolicy;
use shared::permissions::RoleSet;
use shared::route_policy::RoutePolicy;
use shared::signing::MessageSigningKey;
use shared::token::TokenPolicy;

use shared::signing::key_list::{EdgeKeyRing, parse_key_list};

/// `h200 edge`.
#[derive(Clone, clap::Args)]
pub struct EdgeArgs {
    /// Address to listen on.
    #[arg(long, env = "H200_EDGE_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Base URL of the backend.
    #[arg(
        long,
        env = "H200_BACKEND_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub backend_url: String,
    /// Folder whose `keys/edge-signing.json` holds the edge key (the backend's data folder).
    #[arg(long, env = "H200_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Edge signing keys as `key_id:base64` pairs, oldest first; the last one signs. Default:
    /// the key file in the data folder.
    #[arg(long, env = "H200_EDGE_SIGNING_KEYS", hide_env_values = true)]
    pub edge_signing_keys: Option<String>,
    /// `iss` accepted on tokens.
    #[arg(long, env = "H200_TOKEN_ISSUER", default_value = shared::token::DEFAULT_ISSUER)]
    pub token_issuer: String,
    /// `aud` required on tokens.
    #[arg(long, env = "H200_TOKEN_AUDIENCE", default_value = shared::token::DEFAULT_AUDIENCE)]
    pub token_audience: String,
    /// Origins allowed cross-origin, comma separated (exact `scheme://host[:port]`).
    #[arg(long, env = "H200_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// A header a trusted proxy in front of the edge sets to the client's address (e.g.
    /// `X-Forwarded-For`): its last occurrence, and of a list its last entry, the one the proxy
    /// appended. Only for use behind such a proxy (a client that reaches the edge directly
    /// chooses the header's value); without it the socket peer is the client.
    #[arg(long, env = "H200_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<String>,
    /// A route policy TOML to use instead of the embedded one.
    #[arg(long, env = "H200_ROUTE_POLICY")]
    pub route_policy: Option<PathBuf>,
    /// A role table TOML to use instead of the embedded one.
    #[arg(long, env = "H200_ROLES")]
    pub roles: Option<PathBuf>,
    /// URL that receives audit batches (plain HTTP), signed `X-Signature: sha256=…`.
    #[arg(long, env = "H200_AUDIT_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// The webhook's HMAC secret.
    #[arg(long, env = "H200_AUDIT_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Seconds an address stays blocked after 5 failed logins in 15 minutes.
    #[arg(long, env = "H200_BLOCK_DURATION_SECS", default_value_t = 3600)]
    pub block_duration_secs: u64,
    /// Seconds an address stays blocked after more than 10 rate-limit violations.
    #[arg(long, env = "H200_RATE_BLOCK_DURATION_SECS", default_value_t = 7200)]
    pub rate_block_duration_secs: u64,
    /// Audit events buffered before new ones are dropped (and counted).
    #[arg(long, env = "H200_AUDIT_BUFFER", default_value_t = DEFAULT_AUDIT_BUFFER)]
    pub audit_buffer: usize,
    /// Where rate limits, the deny-list, blocks, counters and the API-key cache live: `memory`
    /// (this process) or `redis://host:port[/db]`, shared by every edge that names it.
    #[arg(long, env = "H200_STATE_URL", hide_env_values = true)]
    pub state_url: Option<String>,
    /// Prefix of the keys this edge writes to a shared state store.
    #[arg(long, env = "H200_STATE_PREFIX", default_value = DEFAULT_STATE_PREFIX)]
    pub state_prefix: String,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub backend_tls: BackendTlsArgs,
}

impl std::fmt::Debug for EdgeArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeArgs")
            .field("addr", &self.addr)
            .field("backend_url", &self.backend_url)
            .field("data_dir", &self.data_dir)
            .field("cors_origins", &self.cors_origins)
            .field(
                "webhook_url",
                &self.webhook_url.as_deref().map(edge::config::url_origin),
            )
            .finish_non_exhaustive()
    }
}

impl EdgeArgs {
    /// The defaults for an edge in front of `backend_url`, keys from `data_dir`.
    pub fn local(addr: SocketAddr, backend_url: String, data_dir: PathBuf) -> Self {
        EdgeArgs {
            addr,
            backend_url,
            data_dir,
            edge_signing_keys: None,
            token_issuer: shared::token::DEFAULT_ISSUER.into(),
            token_audience: shared::token::DEFAULT_AUDIENCE.into(),
            cors_origins: Vec::new(),
            client_ip_header: None,
            route_policy: None,
            roles: None,
            webhook_url: None,
            webhook_secret: None,
            block_duration_secs: 3600,
            rate_block_duration_secs: 7200,
            audit_buffer: DEFAULT_AUDIT_BUFFER,
            state_url: None,
            state_prefix: DEFAULT_STATE_PREFIX.into(),
            tls: TlsArgs::default(),
            backend_tls: BackendTlsArgs::default(),
        }
    }

    /// The pipeline's configuration from these settings.
    pub fn config(&self) -> anyhow::Result<EdgeConfig> {
        let key = signing_key(self.edge_signing_keys.as_deref(), &self.data_dir)?;
        let mut config = EdgeConfig::new(self.backend_url.clone(), key);
        config.token_policy = TokenPolicy::new(&self.token_issuer, &self.token_audience);
        config.cors = CorsPolicy::new(&self.cors_origins, false)
            .map_err(|e| anyhow::anyhow!("CORS origins: {e}"))?;
        config.client_ip_header = self.client_ip_header.clone();
        if let Some(path) = &self.route_policy {
            config.routes = RoutePolicy::from_toml(&read(path)?)
                .map_err(|e| anyhow::anyhow!("route policy {}: {e}", path.display()))?;
        }
        if let Some(path) = &self.roles {
            config.roles = RoleSet::from_toml(&read(path)?)
                .map_err(|e| anyhow::anyhow!("roles {}: {e}", path.display()))?;
        }
        config.webhook = match (&self.webhook_url, &self.webhook_secret) {
            (Some(url), Some(secret)) => Some(WebhookConfig {
                url: url.clone(),
                secret: secret.as_bytes().to_vec(),
            }),
            (None, None) => None,
            _ => bail!("set both the audit webhook URL and its secret, or neither"),
        };
        config.intrusion.login_block_ms = self.block_duration_secs.saturating_mul(1000);
        config.intrusion.violation_block_ms = self.rate_block_duration_secs.saturating_mul(1000);
        Ok(config)
    }

    /// Binds the edge.
    pub async fn bind(&self) -> anyhow::Result<EdgeServer> {
        let target = StateTarget::parse(self.state_url.as_deref(), &self.state_prefix)
            .map_err(|e| anyhow::anyhow!("--state-url: {e}"))?;
        let (rates, state) = target
            .open()
            .await
            .context("opening the edge state (--state-url)")?;
        let config = self.config()?;
        let upstream = HttpUpstream::with_tls(&config.backend_url, &self.backend_tls)
            .context("the client to the backend")?;
        let edge = EdgeServer::bind_with_state(
            config,
            self.addr,
            self.audit_buffer,
            (rates, state),
            upstream,
        )
        .await
        .context("starting the edge")?;
        Ok(edge.with_tls(self.tls.clone()))
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// The key file the backend keeps in its data folder and the native edge reads.
pub const EDGE_KEY_FILE: &str = "keys/edge-signing.json";

/// The key the edge signs with: the last `key_id:base64` pair of `overrides`, else the current
/// key of the data folder's `keys/edge-signing.json`.
pub fn signing_key(overrides: Option<&str>, data_dir: &Path) -> anyhow::Result<MessageSigningKey> {
    let (key_id, secret) = match overrides {
        Some(text) => {
            let last = parse_key_list(text)
                .context("H200_EDGE_SIGNING_KEYS")?
                .pop()
                .context("H200_EDGE_SIGNING_KEYS holds no key")?;
            (last.name, last.secret)
        }
        None => {
            let path = data_dir.join(EDGE_KEY_FILE);
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                    "no edge signing key in {}: start `h200 backend` once with this data folder, or set H200_EDGE_SIGNING_KEYS",
                    path.display()
                ),
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            let ring: EdgeKeyRing = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            let current = ring.current().context("the edge key file holds no key")?;
            (current.key_id.clone(), current.secret_bytes()?)
        }
    };
    MessageSigningKey::new(key_id, secret).map_err(|e| anyhow::anyhow!("edge signing key: {e}"))
}
