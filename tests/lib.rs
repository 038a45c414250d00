//! End-to-end scenarios over real HTTP. The scenario list is shared by every edge runtime: each
//! runtime's test target hands [`suite::main`] a way to start its edge in front of a backend, and
//! every scenario becomes a named test (`cargo test NAME` runs one on each runtime). [`harness`]
//! starts the backend, [`runtimes`] builds and starts the wasm runtimes, [`tools`] installs the
//! pinned tools they need, [`front`] stands where the platform stands in front of a wasm runtime
//! (and sets the client's address as it would; these three live in the `h200-runtimes` crate,
//! which `h200 dev --edge` uses too), [`shapes`] snapshots the public JSON shapes.

pub mod harness;
pub mod shapes;
pub mod suite;

pub use h200_runtimes::serve as runtimes;
pub use h200_runtimes::{front, tools};

/// Scenarios that live in files of their own.
mod scenarios {
    pub mod accounts;
    pub mod block_audit;
    pub mod client_address;
    pub mod console_session;
    pub mod erasure;
    pub mod hostile_input;
    pub mod key_revocation;
    pub mod openapi;
    pub mod sdk_contract;
}

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

use reqwest::{Method, Response, StatusCode};
use serde_json::Value;
use shared::permissions::{Permission, RoleSet};
use shared::signing::{MessageSigningKey, SignableRequest, content_digest, sign_request};

use scenarios::accounts::disabled_account_refused;
use scenarios::block_audit::a_block_is_audited_once_with_its_tally;
use scenarios::client_address::{
    concurrent_logins_hold_the_login_limit, forged_address_headers_do_not_escape_the_login_block,
};
use scenarios::console_session::{
    console_is_served_at_the_root, cookie_session_refresh_csrf_and_sign_out,
};
use scenarios::erasure::account_erasure;
use scenarios::hostile_input::hostile_input_refused_alike;
use scenarios::key_revocation::key_revocation;
use scenarios::openapi::openapi_document_served;
use scenarios::sdk_contract::sdk_contract;

pub use scenarios::client_address::without_platform_address;

/// A user the fixture created, with the password it logs in with.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub role: String,
    pub username: String,
    pub password: String,
}

/// What a runtime's test prepares before running the scenarios.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// Base URL of the edge, e.g. `http://127.0.0.1:8080`.
    pub edge_url: String,
    /// Base URL of the backend, for the checks that bypass the edge.
    pub backend_url: String,
    /// The header the edge trusts for the client's address; every scenario uses its own.
    pub client_ip_header: String,
    /// One user per role of the default role set.
    pub users: Vec<TestUser>,
    /// An API key of a user with the role `user` (clusters:read, clusters:write).
    pub api_key: String,
    /// The edge's signing key, to sign requests straight to the backend.
    pub edge_key: MessageSigningKey,
    /// An origin the edge allows cross-origin.
    pub allowed_origin: String,
    /// How long the edge blocks an address after 5 failed logins.
    pub block_duration: Duration,
    /// The backend's data folder (its SQLite database and key files), for `h200` commands.
    pub data_dir: PathBuf,
    /// The `h200` binary the backend runs.
    pub h200_binary: PathBuf,
}

/// The steps of a scenario, running against one caller.
pub type Steps<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + 'a>>;

/// One scenario: a name and its steps against the fixture.
pub struct Scenario {
    /// What the scenario shows, in words.
    pub name: &'static str,
    /// The scenario function's name: the test's name on each runtime.
    pub function: &'static str,
    pub run: for<'a> fn(&'a Caller) -> Steps<'a>,
    /// The scenario changes state every other scenario depends on (a revoked signing key, say),
    /// so it gets a system of its own instead of sharing one with the others.
    pub isolated: bool,
}

/// An HTTP client for one scenario, calling from its own client address.
pub struct Caller {
    pub fixture: Fixture,
    client: reqwest::Client,
    /// This scenario's client address.
    ip: String,
    /// The scenario's index, so the addresses of its logins are its own.
    index: usize,
    /// Logins made so far; each gets a fresh address, so the login rate class never trips.
    logins: std::sync::atomic::AtomicUsize,
}

impl Caller {
    /// A caller for the scenario at `index` of its list: its own client, and client addresses
    /// no other scenario of the list uses.
    pub fn new(fixture: Fixture, index: usize) -> Caller {
        Caller {
            fixture,
            client: reqwest::Client::new(),
            ip: format!("198.51.100.{}", index + 1),
            index,
            logins: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl Scenario {
    /// Runs the steps against `fixture` as the scenario at `index` of its list.
    pub fn run_against(&self, fixture: &Fixture, index: usize) -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let caller = Caller::new(fixture.clone(), index);
        runtime.block_on((self.run)(&caller))
    }
}

macro_rules! scenario {
    ($name:literal, $function:ident) => {
        Scenario {
            name: $name,
            function: stringify!($function),
            run: |caller| Box::pin($function(caller)),
            isolated: false,
        }
    };
    (isolated $name:literal, $function:ident) => {
        Scenario {
            name: $name,
            function: stringify!($function),
            run: |caller| Box::pin($function(caller)),
            isolated: true,
        }
    };
}

/// The whole list.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        scenario!("login and use the token", login_and_use_token),
        scenario!(
            "an API key works within its scope",
            api_key_within_its_scope
        ),
        scenario!(
            "an API key outside its scope is refused",
            api_key_outside_its_scope_refused
        ),
        scenario!("an unknown API key is refused", unknown_api_key_refused),
        scenario!("permission boundaries of every role", permission_boundaries),
        scenario!("refresh and logout", refresh_and_logout),
        scenario!("401 without credentials", missing_credentials_refused),
        scenario!("401 for a malformed token", malformed_token_refused),
        scenario!("413 for an oversized body", oversized_body_refused),
        scenario!(
            "415 for an upload that is not multipart",
            unsupported_media_type_refused
        ),
        scenario!(
            "422 for an upload that is no image",
            upload_that_is_no_image_refused
        ),
        scenario!("422 for no points", empty_points_refused),
        scenario!("429 with retry-after", rate_limited),
        scenario!(
            "cors preflight from an allowed origin",
            cors_preflight_from_allowed_origin
        ),
        scenario!(
            "cors preflight from another origin refused",
            cors_preflight_from_other_origin_refused
        ),
        scenario!("suspicious query refused", suspicious),
        scenario!(
            "backend refuses unsigned requests",
            backend_refuses_unsigned
        ),
        scenario!(
            "backend refuses a replayed request",
            backend_refuses_replayed
        ),
        scenario!("audit events reach the backend", audit_reaches_backend),
        scenario!("ip block and its expiry", ip_block_and_expiry),
        scenario!("mug analysis with rules", mug_analysis),
        scenario!(isolated "signing key revoked", key_revocation),
        scenario!("an erased account's tokens are refused", account_erasure),
        scenario!(
            "a disabled account's tokens are refused",
            disabled_account_refused
        ),
        scenario!(
            "forged address headers do not escape the failed-login block",
            forged_address_headers_do_not_escape_the_login_block
        ),
        scenario!(
            "concurrent logins from one address hold the login limit",
            concurrent_logins_hold_the_login_limit
        ),
        scenario!("the openapi document is served", openapi_document_served),
        scenario!(
            "a block is audited once with its tally",
            a_block_is_audited_once_with_its_tally
        ),
        scenario!("the published NCS SDK's calls", sdk_contract),
        scenario!(
            "hostile input is refused alike on every edge",
            hostile_input_refused_alike
        ),
        scenario!(
            "the console is served at the root",
            console_is_served_at_the_root
        ),
        scenario!(
            "cookie session: refresh, csrf and sign-out",
            cookie_session_refresh_csrf_and_sign_out
        ),
    ]
}

/// A content type and a body sent with a probe.
type ProbeBody = Option<(&'static str, &'static str)>;

/// A probe per permission: a route that needs exactly it, and a body that does not matter.
const PROBES: &[(Permission, &str, &str, ProbeBody)] = &[
    (Permission::AnalysisRead, "GET", "/api/v1/analysis", None),
    (
        Permission::AnalysisWrite,
        "POST",
        "/api/v1/analysis",
        Some(("multipart/form-data; boundary=x", "")),
    ),
    (
        Permission::AnalysisDelete,
        "DELETE",
        "/api/v1/analysis/a1",
        None,
    ),
    (Permission::RulesRead, "GET", "/api/v1/rules", None),
    (
        Permission::RulesWrite,
        "POST",
        "/api/v1/rules",
        Some(("application/json", "{}")),
    ),
    (Permission::RulesDelete, "DELETE", "/api/v1/rules/r1", None),
    (
        Permission::RulesExecute,
        "POST",
        "/api/v1/rules/evaluate",
        Some(("application/json", "{}")),
    ),
    (Permission::ServersRead, "GET", "/api/v1/servers", None),
    (
        Permission::ServersControl,
        "POST",
        "/api/v1/servers/s1/pause",
        None,
    ),
    (
        Permission::ClustersRead,
        "GET",
        "/api/v1/clusters_summary",
        None,
    ),
    (
        Permission::ClustersWrite,
        "POST",
        "/api/v1/process_points",
        Some(("application/json", "{}")),
    ),
    (Permission::MetricsRead, "GET", "/metrics", None),
    (Permission::AdminAudit, "GET", "/api/v1/admin/audit", None),
    (Permission::AdminUsers, "GET", "/api/v1/admin/users", None),
];

/// Headers every edge response carries.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
];

type Outcome = Result<(), String>;

fn check(condition: bool, message: impl FnOnce() -> String) -> Outcome {
    if condition { Ok(()) } else { Err(message()) }
}

/// A response read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// Status and problem code as expected, with the security headers, a request id and
    /// `application/problem+json`.
    fn refused(&self, status: u16, code: &str) -> Outcome {
        check(
            self.status.as_u16() == status && self.code() == code,
            || {
                format!(
                    "expected {status} {code}, got {} {}",
                    self.status, self.body
                )
            },
        )?;
        check(
            self.header("content-type") == Some("application/problem+json"),
            || {
                format!(
                    "problem content type missing: {:?}",
                    self.header("content-type")
                )
            },
        )?;
        self.hardened()
    }

    fn hardened(&self) -> Outcome {
        for (name, value) in SECURITY_HEADERS {
            check(self.header(name) == Some(value), || {
                format!("{name} is {:?}", self.header(name))
            })?;
        }
        check(self.header("x-request-id").is_some(), || {
            "no x-request-id".into()
        })?;
        check(self.header("server").is_none(), || {
            "server header leaks".into()
        })
    }
}

/// An error with its causes, so a failed connection says why.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn read(response: Response) -> Result<Answer, String> {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Answer {
        status,
        headers,
        body,
    })
}

impl Caller {
    /// A request to the edge from this scenario's address.
    pub fn edge(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.edge_from(method, path, &self.ip)
    }

    fn edge_from(&self, method: Method, path: &str, ip: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.fixture.edge_url))
            .header(self.fixture.client_ip_header.as_str(), ip)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Answer, String> {
        read(request.send().await.map_err(|e| error_chain(&e))?).await
    }

    fn user(&self, role: &str) -> Result<&TestUser, String> {
        self.fixture
            .users
            .iter()
            .find(|u| u.role == role)
            .ok_or_else(|| format!("the fixture has no {role} user"))
    }

    /// Logs in as the user of `role` from `ip`; returns the token pair's JSON.
    async fn login_from(&self, role: &str, ip: &str) -> Result<Value, String> {
        let user = self.user(role)?;
        let body = serde_json::json!({"username": user.username, "password": user.password});
        let answer = self
            .send(
                self.edge_from(Method::POST, "/auth/login", ip)
                    .header("content-type", "application/json")
                    .body(body.to_string()),
            )
            .await?;
        check(answer.status == StatusCode::OK, || {
            format!("login as {role}: {} {}", answer.status, answer.body)
        })?;
        Ok(answer.body)
    }

    async fn token(&self, role: &str) -> Result<String, String> {
        let n = self
            .logins
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ip = format!("10.{}.{}.{}", self.index, n / 250, n % 250 + 1);
        let pair = self.login_from(role, &ip).await?;
        pair["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "no access_token".into())
    }
}

async fn login_and_use_token(caller: &Caller) -> Outcome {
    let pair = caller.login_from("admin", &caller.ip).await?;
    check(pair["token_type"] == "Bearer", || {
        format!("token_type: {}", pair["token_type"])
    })?;
    check(pair["refresh_token"].is_string(), || {
        "no refresh token".into()
    })?;
    let token = pair["access_token"].as_str().unwrap_or("");
    let answer = caller
        .send(
            caller
                .edge(Method::GET, "/api/v1/admin/users")
                .bearer_auth(token),
        )
        .await?;
    check(answer.status == StatusCode::OK, || {
        format!("admin users: {} {}", answer.status, answer.body)
    })?;
    answer.hardened()?;
    check(answer.header("x-ratelimit-limit") == Some("600"), || {
        format!(
            "rate-limit header: {:?}",
            answer.header("x-ratelimit-limit")
        )
    })
}

async fn api_key_within_its_scope(caller: &Caller) -> Outcome {
    let allowed = caller
        .send(
            caller
                .edge(Method::GET, "/api/v1/clusters_summary")
                .header("x-api-key", &caller.fixture.api_key),
        )
        .await?;
    check(!matches!(allowed.status.as_u16(), 401 | 403), || {
        format!(
            "API key on its own scope: {} {}",
            allowed.status, allowed.body
        )
    })
}

async fn api_key_outside_its_scope_refused(caller: &Caller) -> Outcome {
    caller
        .send(
            caller
                .edge(Method::GET, "/api/v1/admin/users")
                .header("x-api-key", &caller.fixture.api_key),
        )
        .await?
        .refused(403, "INSUFFICIENT_PERMISSIONS")
}

async fn unknown_api_key_refused(caller: &Caller) -> Outcome {
    caller
        .send(
            caller
                .edge(Method::GET, "/api/v1/clusters_summary")
                .header("x-api-key", "ncs_00000000000000000000000000000000"),
        )
        .await?
        .refused(401, "INVALID_API_KEY")
}

async fn permission_boundaries(caller: &Caller) -> Outcome {
    let roles = RoleSet::default();
    for user in &caller.fixture.users {
        let granted = roles.permissions_of(std::slice::from_ref(&user.role));
        let token = caller.token(&user.role).await?;
        for (permission, method, path, body) in PROBES {
            let method = Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
            let mut request = caller.edge(method.clone(), path).bearer_auth(&token);
            if let Some((content_type, text)) = body {
                request = request.header("content-type", *content_type).body(*text);
            }
            let answer = caller.send(request).await?;
            let context = || {
                format!(
                    "{} {method} {path}: {} {}",
                    user.role, answer.status, answer.body
                )
            };
            if granted.contains(*permission) {
                check(!matches!(answer.status.as_u16(), 401 | 403), context)?;
            } else {
                answer
                    .refused(403, "INSUFFICIENT_PERMISSIONS")
                    .map_err(|e| format!("{}: {e}", context()))?;
            }
        }
    }
    Ok(())
}

async fn refresh_and_logout(caller: &Caller) -> Outcome {
    let pair = caller.login_from("viewer", &caller.ip).await?;
    let refresh = pair["refresh_token"].as_str().unwrap_or("").to_owned();
    let body = serde_json::json!({ "refresh_token": refresh }).to_string();
    let rotate = || {
        caller
            .edge(Method::POST, "/auth/refresh")
            .header("content-type", "application/json")
            .body(body.clone())
    };
    let rotated = caller.send(rotate()).await?;
    check(rotated.status == StatusCode::OK, || {
        format!("refresh: {} {}", rotated.status, rotated.body)
    })?;
    caller
        .send(rotate())
        .await?
        .refused(401, "REFRESH_TOKEN_REUSED")?;
    let fresh = caller.login_from("viewer", &caller.ip).await?;
    let access = fresh["access_token"].as_str().unwrap_or("").to_owned();
    let logout = caller
        .send(
            caller
                .edge(Method::POST, "/auth/logout")
                .bearer_auth(&access),
        )
        .await?;
    check(logout.status == StatusCode::NO_CONTENT, || {
        format!("logout: {} {}", logout.status, logout.body)
    })?;
    caller
        .send(
            caller
                .edge(Method::GET, "/api/v1/rules")
                .bearer_auth(&access),
        )
        .await?
        .refused(401, "REVOKED_TOKEN")
}

async fn missing_credentials_refused(caller: &Caller) -> Outcome {
    caller
        .send(caller.edge(Method::GET, "/api/v1/rules"))
        .await?
        .refused(401, "MISSING_CREDENTIALS")
}

async fn malformed_token_refused(caller: &Caller) -> Outcome {
    caller
        .send(
            caller
                .edge(Method::GET, "/api/v1/rules")
                .bearer_auth("not.a.token"),
        )
        .await?
        .refused(401, "INVALID_TOKEN")
}

async fn oversized_body_refused(caller: &Caller) -> Outcome {
    let manager = caller.token("manager").await?;
    let huge = format!("{{\"name\":\"{}\"}}", "x".repeat(70_000));
    caller
        .send(
            caller
                .edge(Method::POST, "/api/v1/rules")
                .bearer_auth(&manager)
                .header("content-type", "application/json")
                .body(huge),
        )
        .await?
        .refused(413, "PAYLOAD_TOO_LARGE")
}

async fn unsupported_media_type_refused(caller: &Caller) -> Outcome {
    let analyst = caller.token("analyst").await?;
    caller
        .send(
            caller
                .edge(Method::POST, "/api/v1/analysis")
                .bearer_auth(&analyst)
                .header("content-type", "application/json")
                .body("{}"),
        )
        .await?
        .refused(415, "UNSUPPORTED_MEDIA_TYPE")
}

async fn upload_that_is_no_image_refused(caller: &Caller) -> Outcome {
    let analyst = caller.token("analyst").await?;
    let form = "--b1\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\nnot an image\r\n--b1--\r\n";
    caller
        .send(
            caller
                .edge(Method::POST, "/api/v1/analysis")
                .bearer_auth(&analyst)
                .header("content-type", "multipart/form-data; boundary=b1")
                .body(form),
        )
        .await?
        .refused(422, "INVALID_IMAGE_FORMAT")
}

async fn empty_points_refused(caller: &Caller) -> Outcome {
    let user = caller.token("user").await?;
    caller
        .send(
            caller
                .edge(Method::POST, "/api/v1/process_points")
                .bearer_auth(&user)
                .header("content-type", "application/json")
                .body(r#"{"points":[]}"#),
        )
        .await?
        .refused(422, "EMPTY_POINTS")
}

async fn rate_limited(caller: &Caller) -> Outcome {
    let attempt = || {
        caller
            .edge(Method::POST, "/auth/login")
            .header("content-type", "application/json")
            .body("{}")
    };
    for n in 0..10 {
        let answer = caller.send(attempt()).await?;
        check(answer.status.as_u16() == 422, || {
            format!("attempt {n}: {} {}", answer.status, answer.body)
        })?;
    }
    let limited = caller.send(attempt()).await?;
    limited.refused(429, "RATE_LIMIT_EXCEEDED")?;
    check(
        limited
            .header("retry-after")
            .is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s >= 1)),
        || format!("retry-after: {:?}", limited.header("retry-after")),
    )?;
    check(
        limited.header("x-ratelimit-limit") == Some("10")
            && limited.header("x-ratelimit-remaining") == Some("0"),
        || format!("rate-limit headers: {:?}", limited.headers),
    )
}

/// A CORS preflight from `origin` for a POST with a token and a JSON body.
fn preflight(caller: &Caller, origin: &str) -> reqwest::RequestBuilder {
    caller
        .edge(Method::OPTIONS, "/api/v1/rules")
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
}

async fn cors_preflight_from_allowed_origin(caller: &Caller) -> Outcome {
    let allowed = caller
        .send(preflight(caller, &caller.fixture.allowed_origin))
        .await?;
    check(allowed.status == StatusCode::NO_CONTENT, || {
        format!("allowed preflight: {}", allowed.status)
    })?;
    check(
        allowed.header("access-control-allow-origin")
            == Some(caller.fixture.allowed_origin.as_str()),
        || {
            format!(
                "allow-origin: {:?}",
                allowed.header("access-control-allow-origin")
            )
        },
    )?;
    allowed.hardened()
}

async fn cors_preflight_from_other_origin_refused(caller: &Caller) -> Outcome {
    caller
        .send(preflight(caller, "https://evil.example"))
        .await?
        .refused(403, "CORS_ORIGIN_DENIED")
}

async fn suspicious(caller: &Caller) -> Outcome {
    caller
        .send(caller.edge(Method::GET, "/api/v1/rules?q=%27%20OR%201%3D1%20--"))
        .await?
        .refused(400, "SUSPICIOUS_REQUEST")
}

async fn backend_refuses_unsigned(caller: &Caller) -> Outcome {
    let backend = &caller.fixture.backend_url;
    let unsigned = caller
        .send(caller.client.get(format!("{backend}/api/v1/admin/users")))
        .await?;
    check(
        unsigned.status.as_u16() == 401 && unsigned.code() == "MISSING_SIGNATURE",
        || format!("unsigned: {} {}", unsigned.status, unsigned.body),
    )
}

async fn backend_refuses_replayed(caller: &Caller) -> Outcome {
    let backend = &caller.fixture.backend_url;
    let path = "/internal/v1/revocations";
    let query = "since_ms=0";
    let digest = content_digest(b"");
    let request_id = "e2e-replay";
    let signable = SignableRequest {
        method: "GET",
        path,
        query: Some(query),
        content_digest: Some(&digest),
        principal: None,
        request_id,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let signed = sign_request(&signable, &caller.fixture.edge_key, now, "e2e-nonce-1")
        .map_err(|e| e.to_string())?;
    let send = || {
        caller
            .client
            .get(format!("{backend}{path}?{query}"))
            .header("signature-input", &signed.signature_input)
            .header("signature", &signed.signature)
            .header("content-digest", &signed.content_digest)
            .header("x-request-id", request_id)
    };
    let first = caller.send(send()).await?;
    check(first.status == StatusCode::OK, || {
        format!("signed: {} {}", first.status, first.body)
    })?;
    let replayed = caller.send(send()).await?;
    check(
        replayed.status.as_u16() == 401 && replayed.code() == "REPLAYED_REQUEST",
        || format!("replayed: {} {}", replayed.status, replayed.body),
    )
}

async fn audit_reaches_backend(caller: &Caller) -> Outcome {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_nanos();
    let request_id = format!("e2e-audit-{nanos}");
    caller
        .send(
            caller
                .edge(Method::GET, "/api/v1/rules")
                .header("x-request-id", &request_id),
        )
        .await?
        .refused(401, "MISSING_CREDENTIALS")?;
    let admin = caller.token("admin").await?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let path = format!(
            "/api/v1/admin/audit?type=token_invalid&ip={}&limit=50",
            caller.ip
        );
        let page = caller
            .send(caller.edge(Method::GET, &path).bearer_auth(&admin))
            .await?;
        let found = page.body["events"].as_array().is_some_and(|events| {
            events
                .iter()
                .any(|e| e["request_id"] == request_id.as_str() && e["source"] == "edge")
        });
        if found {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no edge event for {request_id}: {} {}",
                page.status, page.body
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `count` logins of the viewer with a wrong password from the caller's address, each answered
/// 401 (5 of them earn the address a block).
pub async fn fail_logins(caller: &Caller, count: usize) -> Outcome {
    let user = caller.user("viewer")?;
    let body =
        serde_json::json!({"username": user.username, "password": "Wrong-passw0rd!"}).to_string();
    for n in 0..count {
        let answer = caller
            .send(
                caller
                    .edge(Method::POST, "/auth/login")
                    .header("content-type", "application/json")
                    .body(body.clone()),
            )
            .await?;
        check(answer.status.as_u16() == 401, || {
            format!("failed login {n}: {} {}", answer.status, answer.body)
        })?;
    }
    Ok(())
}

async fn ip_block_and_expiry(caller: &Caller) -> Outcome {
    fail_logins(caller, 5).await?;
    let blocked = caller
        .send(caller.edge(Method::GET, "/openapi.json"))
        .await?;
    blocked.refused(403, "IP_BLOCKED")?;
    check(blocked.header("retry-after").is_some(), || {
        "blocked without retry-after".into()
    })?;
    tokio::time::sleep(caller.fixture.block_duration + Duration::from_millis(500)).await;
    let after = caller
        .send(caller.edge(Method::GET, "/openapi.json"))
        .await?;
    check(after.status == StatusCode::OK, || {
        format!("after the block: {} {}", after.status, after.body)
    })
}

/// The example photo: a centred mug and one at the left edge (see `gpu-backend/tests/mug.rs`).
const EXAMPLE_IMAGE: &[u8] = include_bytes!("fixtures/desk-two-mugs.png");

/// An analysis form: the example image and `fields`.
fn analysis_form(boundary: &str, fields: &[(&str, &str)]) -> Vec<u8> {
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"desk.png\"\r\nContent-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(EXAMPLE_IMAGE);
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

/// A manager drafts and saves a rule from a sentence, uploads a photo through the edge, waits
/// for the worker's result and finds both mugs, the rule fired for the one at the edge, and the
/// result readable only by its owner.
async fn mug_analysis(caller: &Caller) -> Outcome {
    let manager = caller.token("manager").await?;
    let drafted = caller
        .send(
            caller
                .edge(Method::POST, "/api/v1/rules/natural-language")
                .bearer_auth(&manager)
                .header("content-type", "application/json")
                .body(r#"{"text":"alert if the mug is near the left edge","save":true}"#),
        )
        .await?;
    check(drafted.status == StatusCode::CREATED, || {
        format!("drafting a rule: {} {}", drafted.status, drafted.body)
    })?;
    let rule_id = drafted.body["id"].as_str().unwrap_or_default().to_owned();
    let boundary = "h200-e2e-form";
    let answer = caller
        .send(
            caller
                .edge(Method::POST, "/api/v1/analysis?wait=60")
                .bearer_auth(&manager)
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(analysis_form(
                    boundary,
                    &[("calibration_mm_per_pixel", "0.5")],
                )),
        )
        .await?;
    let result = &answer.body;
    check(answer.status == StatusCode::OK, || {
        format!("upload: {} {result}", answer.status)
    })?;
    answer.hardened()?;
    let mut keys: Vec<&str> = result["positioning"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(|p| p["position_key"].as_str())
                .collect()
        })
        .unwrap_or_default();
    keys.sort_unstable();
    check(
        result["mug_count"] == 2 && keys == ["center", "left_edge"],
        || format!("expected a centred mug and one at the left edge: {result}"),
    )?;
    check(result["verdict"] == "alert", || {
        format!("the left-edge rule should alert: {result}")
    })?;
    let fired: Vec<&Value> = result["rule_violations"]
        .as_array()
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    check(
        fired.len() == 1 && fired[0]["rule_id"] == rule_id.as_str(),
        || format!("rule {rule_id} should fire once: {result}"),
    )?;
    check(
        result["positioning"]
            .as_array()
            .is_some_and(|p| p.iter().all(|p| p["offset_mm"]["x"].is_number())),
        || format!("offsets in mm with the calibration: {result}"),
    )?;
    let path = format!("/api/v1/analysis/{}", result["id"].as_str().unwrap_or("-"));
    let again = caller
        .send(caller.edge(Method::GET, &path).bearer_auth(&manager))
        .await?;
    check(
        again.status == StatusCode::OK && again.body["detections"] == result["detections"],
        || format!("reading it back: {} {}", again.status, again.body),
    )?;
    let analyst = caller.token("analyst").await?;
    caller
        .send(caller.edge(Method::GET, &path).bearer_auth(&analyst))
        .await?
        .refused(404, "NOT_FOUND")?;
    let feedback = caller
        .send(
            caller
                .edge(Method::POST, &format!("{path}/feedback"))
                .bearer_auth(&manager)
                .header("content-type", "application/json")
                .body(r#"{"correct":true}"#),
        )
        .await?;
    check(
        feedback.status == StatusCode::OK && feedback.body["user_feedback"]["correct"] == true,
        || format!("feedback: {} {}", feedback.status, feedback.body),
    )
}
