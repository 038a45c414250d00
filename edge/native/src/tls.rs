//! HTTPS for the native servers (the edge, and the backend through the `h200` binary): a
//! listener that terminates TLS with rustls from a certificate and key file, picks up new files
//! without a restart, can require client certificates from a CA (mutual TLS on the edge →
//! backend hop), and a plain-HTTP listener that only redirects to HTTPS. Also the TLS settings
//! of the edge's client to the backend.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How often the certificate and key files are checked for a change.
const RELOAD_EVERY: Duration = Duration::from_secs(2);
/// Longest a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes finished but not yet taken by the server.
const ACCEPTED_BACKLOG: usize = 256;

/// The TLS settings of a native server; no certificate means plain HTTP.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// PEM certificate chain to serve HTTPS with (re-read when the file changes).
    #[arg(long, env = "H200_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate (re-read when the file changes).
    #[arg(long, env = "H200_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates issued by this PEM CA (mutual TLS).
    #[arg(long, env = "H200_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Also listen for plain HTTP here, answering every request with a redirect to HTTPS.
    #[arg(long, env = "H200_HTTP_REDIRECT_ADDR", requires = "tls_cert")]
    pub http_redirect_addr: Option<SocketAddr>,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: {what}")]
    Pem { path: PathBuf, what: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The files a server's TLS configuration is built from.
#[derive(Debug, Clone)]
struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
}

impl TlsFiles {
    fn load(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &self.client_ca {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in certificates(path)? {
                    roots
                        .add(cert)
                        .map_err(|e| TlsError::Config(format!("client CA: {e}")))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|e| TlsError::Config(format!("client CA: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(certificates(&self.cert)?, private_key(&self.key)?)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The newest modification time of the files, to notice a change.
    fn stamp(&self) -> Option<SystemTime> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok())
            .max()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate of a PEM file (at least one).
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            what: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            what: "no certificate".into(),
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
        path: path.to_owned(),
        what: format!("no private key ({e})"),
    })
}

impl TlsArgs {
    /// Whether HTTPS is asked for.
    pub fn enabled(&self) -> bool {
        self.tls_cert.is_some()
    }

    fn files(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.tls_client_ca.clone(),
        })
    }

    /// A TLS listener over `tcp` when a certificate is configured (its files checked now, so a
    /// bad file stops the start), else `tcp` as it is.
    pub fn listener(&self, tcp: TcpListener) -> Result<Listening, TlsError> {
        match self.files() {
            Some(files) => TlsListener::new(tcp, files).map(Listening::Tls),
            None => Ok(Listening::Plain(tcp)),
        }
    }

    /// A TLS listener over `tcp`; an error when no certificate is configured.
    pub fn tls_listener(&self, tcp: TcpListener) -> Result<TlsListener, TlsError> {
        match self.listener(tcp)? {
            Listening::Tls(listener) => Ok(listener),
            Listening::Plain(_) => Err(TlsError::Config("no --tls-cert given".into())),
        }
    }

    /// Starts the plain-HTTP redirect listener when one is asked for, redirecting to HTTPS on
    /// `https_port`; it ends with the process.
    pub async fn spawn_redirect(&self, https_port: u16) -> io::Result<Option<SocketAddr>> {
        let Some(addr) = self.http_redirect_addr else {
            return Ok(None);
        };
        let listener = TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let app = Router::new().fallback(move |request: Request| async move {
            redirect_to_https(&request, https_port)
        });
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "the HTTP redirect listener stopped");
            }
        });
        tracing::info!(addr = %bound, "redirecting plain HTTP to HTTPS");
        Ok(Some(bound))
    }
}

/// `308 Permanent Redirect` to the same host and path over HTTPS; 400 without a usable `Host`.
fn redirect_to_https(request: &Request, https_port: u16) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(host_without_port);
    let Some(host) = host else {
        return (StatusCode::BAD_REQUEST, "HTTPS only").into_response();
    };
    let authority = if https_port == 443 {
        host.to_owned()
    } else {
        format!("{host}:{https_port}")
    };
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    match HeaderValue::from_str(&format!("https://{authority}{path}")) {
        Ok(location) => (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "HTTPS only").into_response(),
    }
}

/// The host of a `Host` header (a name, an IPv4 address or a bracketed IPv6 address), without
/// its port; `None` for anything else, so a redirect never carries injected text.
fn host_without_port(value: &str) -> Option<&str> {
    let host = if value.starts_with('[') {
        &value[..=value.find(']')?]
    } else {
        value.split(':').next()?
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-.[]:".contains(c);
    (!host.is_empty() && host.len() <= 255 && host.chars().all(allowed)).then_some(host)
}

/// What a server accepts connections on.
pub enum Listening {
    Plain(TcpListener),
    Tls(TlsListener),
}

/// A listener that hands the server TLS connections. Handshakes run in their own tasks, so a
/// slow client holds up no one else; the configuration is swapped when its files change.
pub struct TlsListener {
    local_addr: SocketAddr,
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    fn new(tcp: TcpListener, files: TlsFiles) -> Result<TlsListener, TlsError> {
        let config = Arc::new(RwLock::new(files.load()?));
        let local_addr = tcp
            .local_addr()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let (sender, accepted) = mpsc::channel(ACCEPTED_BACKLOG);
        tokio::spawn(reload(files, config.clone(), sender.clone()));
        tokio::spawn(accept_loop(tcp, config, sender));
        Ok(TlsListener {
            local_addr,
            accepted,
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The accept loop ends only with the listener; wait for the shutdown to finish.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local_addr)
    }
}

type Accepted = mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>;

async fn accept_loop(tcp: TcpListener, config: Arc<RwLock<Arc<ServerConfig>>>, sender: Accepted) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a TCP connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = sender.closed() => return,
        };
        let current = config.read().unwrap_or_else(|p| p.into_inner()).clone();
        let sender = sender.clone();
        tokio::spawn(async move {
            let handshake = TlsAcceptor::from(current).accept(stream);
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                Ok(Ok(tls)) => {
                    let _ = sender.send((tls, peer)).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// Re-reads the files when they change; a broken new file keeps the old configuration.
async fn reload(files: TlsFiles, config: Arc<RwLock<Arc<ServerConfig>>>, sender: Accepted) {
    let mut seen = files.stamp();
    loop {
        tokio::select! {
            () = tokio::time::sleep(RELOAD_EVERY) => {}
            () = sender.closed() => return,
        }
        let stamp = files.stamp();
        if stamp == seen {
            continue;
        }
        match files.load() {
            Ok(fresh) => {
                *config.write().unwrap_or_else(|p| p.into_inner()) = fresh;
                seen = stamp;
                tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded");
            }
            Err(error) => {
                tracing::error!(%error, "the new TLS files do not load; keeping the old ones");
            }
        }
    }
}

/// The TLS side of the edge's client to the backend: extra trusted roots and a client identity
/// for mutual TLS.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BackendTlsArgs {
    /// PEM CA certificate(s) to trust for an `https://` backend besides the public roots.
    #[arg(long, env = "H200_BACKEND_CA")]
    pub backend_ca: Option<PathBuf>,
    /// PEM client certificate the edge presents to the backend (mutual TLS).
    #[arg(
        long,
        env = "H200_BACKEND_CLIENT_CERT",
        requires = "backend_client_key"
    )]
    pub backend_client_cert: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[arg(
        long,
        env = "H200_BACKEND_CLIENT_KEY",
        requires = "backend_client_cert"
    )]
    pub backend_client_key: Option<PathBuf>,
}

impl BackendTlsArgs {
    /// Adds the roots and the identity to a client builder.
    pub fn apply(
        &self,
        mut builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, TlsError> {
        if let Some(path) = &self.backend_ca {
            for cert in
                reqwest::Certificate::from_pem_bundle(&read(path)?).map_err(|e| TlsError::Pem {
                    path: path.clone(),
                    what: e.to_string(),
                })?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let (Some(cert), Some(key)) = (&self.backend_client_cert, &self.backend_client_key) {
            let mut pem = read(cert)?;
            pem.push(b'\n');
            pem.extend(read(key)?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| TlsError::Pem {
                path: cert.clone(),
                what: e.to_string(),
            })?;
            builder = builder.identity(identity);
        }
        Ok(builder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_keep_the_host_and_path_and_refuse_odd_hosts() {
        assert_eq!(
            host_without_port("api.example.com:80"),
            Some("api.example.com")
        );
        assert_eq!(host_without_port("[::1]:8080"), Some("[::1]"));
        assert_eq!(host_without_port("evil.com/x"), None);
        assert_eq!(host_without_port(""), None);
        let request = Request::builder()
            .uri("/api/v1/rules?limit=5")
            .header(header::HOST, "api.example.com:8080")
            .body(axum::body::Body::empty())
            .expect("a valid request");
        let response = redirect_to_https(&request, 8443);
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            response.headers()[header::LOCATION],
            "https://api.example.com:8443/api/v1/rules?limit=5"
        );
    }
}
