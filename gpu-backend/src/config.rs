//! The backend's plain configuration. The `h200` binary builds it from flags and environment;
//! nothing in this library reads either.

use std::net::SocketAddr;
use std::path::PathBuf;

use shared::permissions::RoleSet;
use shared::route_policy::RoutePolicy;

use crate::keys::KeyOverrides;

/// Everything [`crate::server::Backend::prepare`] needs.
#[derive(Clone)]
pub struct BackendConfig {
    /// Address to listen on (port 0 picks a free one).
    pub addr: SocketAddr,
    /// Folder of the key files (and of the SQLite database by default).
    pub data_dir: PathBuf,
    /// `sqlite:…` or `postgres://…`; may carry a password, so `Debug` never prints it.
    pub database_url: String,
    /// `iss` of issued tokens.
    pub token_issuer: String,
    /// `aud` of issued tokens.
    pub token_audience: String,
    /// How long an access token lives, in seconds.
    pub access_token_ttl_secs: u64,
    /// How long a refresh token (a session between two uses) lives, in seconds.
    pub refresh_token_ttl_secs: u64,
    /// Key material given directly instead of the key files.
    pub keys: KeyOverrides,
    /// The route table (the same one the edge enforces).
    pub routes: RoutePolicy,
    /// The role table.
    pub roles: RoleSet,
    /// Keep each uploaded image, sealed, with its analysis.
    pub retain_images: bool,
    /// Workers to run inside the backend process.
    pub workers: usize,
    /// Where the nonces of accepted edge signatures are kept: `None` (this process), or a
    /// `postgres://` or `redis://` URL shared by several backends. May carry a password.
    pub state_url: Option<String>,
    /// Prefix of the nonce keys in a shared Redis.
    pub state_prefix: String,
}

impl BackendConfig {
    /// The defaults for a backend at `addr` over `database_url`, keys in `data_dir`.
    pub fn new(addr: SocketAddr, data_dir: PathBuf, database_url: String) -> BackendConfig {
        BackendConfig {
            addr,
            data_dir,
            database_url,
            token_issuer: shared::token::DEFAULT_ISSUER.to_owned(),
            token_audience: shared::token::DEFAULT_AUDIENCE.to_owned(),
            access_token_ttl_secs: shared::token::DEFAULT_ACCESS_TTL_SECS,
            refresh_token_ttl_secs: shared::token::DEFAULT_REFRESH_TTL_SECS,
            keys: KeyOverrides::default(),
            routes: RoutePolicy::default(),
            roles: RoleSet::default(),
            retain_images: false,
            workers: 0,
            state_url: None,
            state_prefix: crate::replay::DEFAULT_REPLAY_PREFIX.to_owned(),
        }
    }
}

impl std::fmt::Debug for BackendConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendConfig")
            .field("addr", &self.addr)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact_url(&self.database_url))
            .field("token_issuer", &self.token_issuer)
            .field("token_audience", &self.token_audience)
            .field("keys", &self.keys)
            .field("retain_images", &self.retain_images)
            .field("workers", &self.workers)
            .field("state_url", &self.state_url.as_deref().map(redact_url))
            .finish_non_exhaustive()
    }
}

/// A database URL with any password replaced by `***`, for logs and `Debug`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = redact_query_password(tail);
    format!("{scheme}://{authority}{tail}")
}

fn redact_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_database_password() {
        let config = BackendConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            "./data".into(),
            "postgres://app:s3cret-pw@db.internal:5432/h200?sslmode=require&password=other".into(),
        );
        let printed = format!("{config:?}");
        assert!(!printed.contains("s3cret-pw"), "{printed}");
        assert!(!printed.contains("other"), "{printed}");
        assert!(
            printed.contains("postgres://app:***@db.internal:5432/h200"),
            "{printed}"
        );
    }

    #[test]
    fn urls_without_a_password_stay_readable() {
        assert_eq!(redact_url("sqlite:./data/h200.db"), "sqlite:./data/h200.db");
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/test"
        );
    }
}
