//! A real backend on an ephemeral port, and a client that signs requests the way the edge does.
#![allow(dead_code)]

use std::path::PathBuf;

use gpu_backend::config::BackendConfig;
use gpu_backend::keys::{EdgeKeyRing, KeyPaths, read_json};
use gpu_backend::server::Backend;
use shared::permissions::{Principal, PrincipalKind, RoleSet};
use shared::signing::{MessageSigningKey, SignableRequest, content_digest, sign_request};
use shared::token::{KeySet, TokenKind, TokenPolicy};

use super::{Backend as DbKind, TestDatabase, unique};

pub const ISSUER: &str = "h200-test";
pub const AUDIENCE: &str = "h200-test-api";

/// A running backend with its own database and data folder.
pub struct TestBackend {
    pub base: String,
    pub data_dir: PathBuf,
    pub db: TestDatabase,
    pub client: reqwest::Client,
    pub edge_key: MessageSigningKey,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub fn args(db: &TestDatabase, data_dir: &std::path::Path) -> BackendConfig {
    let mut config = BackendConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        data_dir.to_owned(),
        db.url.clone(),
    );
    config.token_issuer = ISSUER.into();
    config.token_audience = AUDIENCE.into();
    config.workers = 1;
    config
}

/// Every kernel, as `h200` builds them by default: echo, NCS in exact mode, the shipped detector.
pub fn kernels() -> gpu_backend::queue::Kernels {
    vec![
        std::sync::Arc::new(gpu_backend::queue::noop::EchoKernel),
        std::sync::Arc::new(ncs::kernel::NcsKernel::new(
            ncs::Mode::Exact,
            candle_core::Device::Cpu,
        )),
        std::sync::Arc::new(mug::kernel::AnalysisKernel::new(None)),
    ]
}

impl TestBackend {
    pub async fn start(kind: DbKind) -> TestBackend {
        let db = TestDatabase::new(kind).await;
        let data_dir = std::env::temp_dir().join(unique("h200_backend"));
        Self::start_with(db, data_dir).await
    }

    /// Starts a backend whose arguments `configure` has adjusted.
    pub async fn start_configured(
        kind: DbKind,
        configure: impl FnOnce(&mut BackendConfig),
    ) -> TestBackend {
        let db = TestDatabase::new(kind).await;
        let data_dir = std::env::temp_dir().join(unique("h200_backend"));
        let mut args = args(&db, &data_dir);
        configure(&mut args);
        Self::start_args(db, data_dir, &args).await
    }

    /// Starts (or restarts) a backend over an existing database and data folder.
    pub async fn start_with(db: TestDatabase, data_dir: PathBuf) -> TestBackend {
        let args = args(&db, &data_dir);
        Self::start_args(db, data_dir, &args).await
    }

    async fn start_args(db: TestDatabase, data_dir: PathBuf, args: &BackendConfig) -> TestBackend {
        let backend = Backend::prepare(args, kernels())
            .await
            .expect("backend starts");
        let base = format!("http://{}", backend.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(backend.serve(async move {
            let _ = rx.await;
        }));
        let ring: EdgeKeyRing = read_json(&KeyPaths::new(&data_dir).edge())
            .unwrap()
            .unwrap();
        let current = ring.current().unwrap();
        let edge_key =
            MessageSigningKey::new(current.key_id.clone(), current.secret_bytes().unwrap())
                .unwrap();
        TestBackend {
            base,
            data_dir,
            db,
            client: reqwest::Client::new(),
            edge_key,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the server and hands back its database and data folder.
    pub async fn stop(mut self) -> (TestDatabase, PathBuf) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        let db = std::mem::replace(&mut self.db, TestDatabase::placeholder());
        (db, std::mem::take(&mut self.data_dir))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Builds a request signed as the edge would sign it, for `principal`.
    pub fn signed(
        &self,
        method: &str,
        path_and_query: &str,
        principal: Option<&Principal>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> reqwest::RequestBuilder {
        self.signed_at(
            method,
            path_and_query,
            principal,
            content_type,
            body,
            Stamp::now(),
        )
    }

    pub fn signed_at(
        &self,
        method: &str,
        path_and_query: &str,
        principal: Option<&Principal>,
        content_type: Option<&str>,
        body: Vec<u8>,
        stamp: Stamp,
    ) -> reqwest::RequestBuilder {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let request_id = format!("test-{}", uuid::Uuid::new_v4().simple());
        let digest = content_digest(&body);
        let principal_header = principal.map(Principal::encode_header);
        let signable = SignableRequest {
            method,
            path,
            query,
            content_digest: Some(&digest),
            principal: principal_header.as_deref(),
            request_id: &request_id,
        };
        let signed = sign_request(&signable, &self.edge_key, stamp.created, &stamp.nonce).unwrap();
        let mut builder = self
            .client
            .request(method.parse().unwrap(), self.url(path_and_query))
            .header("x-request-id", &request_id)
            .header("content-digest", signed.content_digest)
            .header("signature-input", signed.signature_input)
            .header("signature", signed.signature)
            .body(body);
        if let Some(value) = principal_header {
            builder = builder.header("x-h200-principal", value);
        }
        if let Some(ct) = content_type {
            builder = builder.header("content-type", ct);
        }
        builder
    }

    pub async fn json(
        &self,
        method: &str,
        path: &str,
        principal: Option<&Principal>,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.signed(
            method,
            path,
            principal,
            Some("application/json"),
            serde_json::to_vec(&body).unwrap(),
        )
        .send()
        .await
        .unwrap()
    }

    pub async fn get(&self, path: &str, principal: Option<&Principal>) -> reqwest::Response {
        self.signed("GET", path, principal, None, Vec::new())
            .send()
            .await
            .unwrap()
    }

    /// Logs in and returns the token response.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        totp: Option<&str>,
    ) -> reqwest::Response {
        let mut body = serde_json::json!({ "username": username, "password": password });
        if let Some(code) = totp {
            body["totp_code"] = code.into();
        }
        self.json("POST", "/auth/login", Some(&anonymous()), body)
            .await
    }

    /// What the edge makes of an access token: its verified principal.
    pub async fn principal_of(&self, access_token: &str) -> Principal {
        let jwks = self
            .client
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let keys = KeySet::from_jwks_json(&jwks).unwrap();
        let verified = keys
            .verify(
                access_token,
                &TokenPolicy::new(ISSUER, AUDIENCE),
                TokenKind::Access,
                now_secs(),
            )
            .unwrap();
        let mut principal = Principal::anonymous();
        principal.subject = verified.subject;
        principal.kind = PrincipalKind::User;
        principal.permissions = RoleSet::default().permissions_of(&verified.claims.roles);
        principal.roles = verified.claims.roles;
        principal.token_id = Some(verified.jwt_id);
        principal.client_ip = Some("198.51.100.7".into());
        principal.token = Some(shared::permissions::TokenStamp {
            key_id: verified.kid,
            issued_at: verified.issued_at,
        });
        principal
    }

    /// Adds a user straight into the store, as `h200 user add` does.
    pub async fn add_user(&self, name: &str, password: &str, roles: &[&str]) -> String {
        let store = self.db.store().await;
        let hash = gpu_backend::auth::password::PasswordHasher::new()
            .hash(password)
            .unwrap();
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        let user = store
            .create_user(gpu_backend::store::users::NewUser {
                username: name,
                password_hash: &hash,
                roles: &roles,
                email_sealed: None,
            })
            .await
            .unwrap();
        user.id
    }

    /// Logs in and returns (principal, access token, refresh token).
    pub async fn session(&self, name: &str, password: &str) -> (Principal, String, String) {
        let response = self.login(name, password, None).await;
        assert_eq!(response.status(), 200, "login of {name}");
        let body: serde_json::Value = response.json().await.unwrap();
        let access = body["access_token"].as_str().unwrap().to_owned();
        let refresh = body["refresh_token"].as_str().unwrap().to_owned();
        (self.principal_of(&access).await, access, refresh)
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if !self.data_dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

pub fn anonymous() -> Principal {
    let mut principal = Principal::anonymous();
    principal.client_ip = Some("198.51.100.7".into());
    principal
}

/// When a signature was made and its nonce.
pub struct Stamp {
    pub created: u64,
    pub nonce: String,
}

impl Stamp {
    pub fn now() -> Stamp {
        Stamp {
            created: now_secs(),
            nonce: nonce(),
        }
    }
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The `code` of a problem+json response, after checking its media type.
pub async fn problem_code(response: reqwest::Response) -> String {
    let content_type = response
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["request_id"].is_string(),
        "problem carries the request id: {body}"
    );
    body["code"].as_str().unwrap().to_owned()
}
