//! The route table as data: which method and path pattern needs which permission, which rate
//! classes apply, and how large a body of which type it takes. An embedded TOML default
//! (`route_policy.toml`) can be replaced by an operator's file of the same shape.
//!
//! Resolution rules: the caller passes the path without its query. A path matches a pattern
//! with the same number of segments whose literals are equal byte for byte; a `{param}` matches
//! one non-empty segment of `[A-Za-z0-9._~-]` other than `.` and `..`, so empty,
//! percent-encoded and dot segments never match. When several patterns match, the one with a
//! literal at the first position where they differ wins (`/rules/evaluate` before
//! `/rules/{id}`), and only then is the method looked at (so `GET /rules/evaluate` is 405, not
//! a rule id). `HEAD` resolves to the `GET` route of a pattern that has no `HEAD` route of its
//! own; the edge must then drop the response body. `OPTIONS` is the CORS preflight, answered
//! before routing, and is never listed as allowed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;

use crate::permissions::{Permission, Principal, PrincipalKind};
use crate::problem::ErrorCode;
use crate::rate_limit::{self, GcraStore, Quota, RateDecision};

/// The embedded default route table, used by [`RoutePolicy::default`].
pub const DEFAULT_ROUTE_POLICY_TOML: &str = include_str!("route_policy.toml");

/// Methods a route may name.
pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

const MAX_PATH_LEN: usize = 2048;
const MAX_NAME_LEN: usize = 32;

/// Why a route table was refused. Every variant is an operator's configuration mistake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutePolicyError {
    /// The document is not valid TOML of the expected shape.
    #[error("route policy is not valid: {0}")]
    InvalidToml(String),
    /// A route names a permission that does not exist.
    #[error("route `{route}` names unknown permission `{permission}`")]
    UnknownPermission { route: String, permission: String },
    /// A route names a rate class the document does not define.
    #[error("route `{route}` names undefined rate class `{class}`")]
    UnknownRateClass { route: String, class: String },
    /// A path pattern is not well formed.
    #[error("path pattern `{pattern}` is not valid: {reason}")]
    InvalidPattern {
        pattern: String,
        reason: &'static str,
    },
    /// A route names a method outside [`METHODS`].
    #[error("route `{route}` has unsupported method `{method}`")]
    InvalidMethod { route: String, method: String },
    /// Two routes share a method and a pattern (parameter names aside).
    #[error("route `{method} {pattern}` is defined twice")]
    DuplicateRoute { method: String, pattern: String },
    /// A rate class has an invalid name or values.
    #[error("rate class `{name}` is not valid: {reason}")]
    InvalidRateClass { name: String, reason: &'static str },
    /// A route's settings contradict each other.
    #[error("route `{route}` is not valid: {reason}")]
    InvalidRoute { route: String, reason: &'static str },
}

impl RoutePolicyError {
    /// A broken route table is the operator's fault: always [`ErrorCode::Internal`].
    pub fn code(&self) -> ErrorCode {
        ErrorCode::Internal
    }
}

/// What a route demands of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Auth {
    /// No credentials needed.
    Public,
    /// Any authenticated principal.
    Token,
    /// An authenticated principal holding this permission.
    Permission(Permission),
}

impl Auth {
    fn parse(text: &str) -> Option<Auth> {
        match text {
            "public" => Some(Auth::Public),
            "token" => Some(Auth::Token),
            other => other.parse().ok().map(Auth::Permission),
        }
    }

    /// The permission this demands, if any.
    pub fn permission(self) -> Option<Permission> {
        match self {
            Auth::Permission(permission) => Some(permission),
            Auth::Public | Auth::Token => None,
        }
    }

    /// Whether `principal` may pass: `MissingCredentials` for an anonymous caller on a
    /// non-public route, `InsufficientPermissions` when the permission is missing.
    pub fn permits(self, principal: &Principal) -> Result<(), ErrorCode> {
        let anonymous = principal.kind == PrincipalKind::Anonymous;
        match self {
            Auth::Public => Ok(()),
            Auth::Token | Auth::Permission(_) if anonymous => Err(ErrorCode::MissingCredentials),
            Auth::Token => Ok(()),
            Auth::Permission(permission) if principal.has(permission) => Ok(()),
            Auth::Permission(_) => Err(ErrorCode::InsufficientPermissions),
        }
    }
}

impl fmt::Display for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Public => f.write_str("public"),
            Auth::Token => f.write_str("token"),
            Auth::Permission(permission) => f.write_str(permission.as_str()),
        }
    }
}

/// A kind of request body a route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentKind {
    /// `application/json`
    Json,
    /// `application/x-www-form-urlencoded`
    Form,
    /// `multipart/form-data`
    Multipart,
}

impl ContentKind {
    /// The media type this kind stands for.
    pub const fn media_type(self) -> &'static str {
        match self {
            ContentKind::Json => "application/json",
            ContentKind::Form => "application/x-www-form-urlencoded",
            ContentKind::Multipart => "multipart/form-data",
        }
    }

    /// The kind of a `Content-Type` header value, by its media type (case-insensitive,
    /// parameters ignored); `None` for anything else.
    pub fn of(content_type: &str) -> Option<ContentKind> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        [ContentKind::Json, ContentKind::Form, ContentKind::Multipart]
            .into_iter()
            .find(|kind| essence.eq_ignore_ascii_case(kind.media_type()))
    }
}

/// What one bucket of a rate class counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateKey {
    /// One bucket per client IP.
    Ip,
    /// One bucket per authenticated principal.
    Principal,
    /// One bucket for everybody.
    Global,
}

/// A named rate limit: `limit` requests per `period_secs` per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateClass {
    pub name: String,
    pub limit: u32,
    pub period_secs: u64,
    pub key: RateKey,
    /// Requests allowed back to back; `None` means `limit`.
    pub burst: Option<u32>,
}

impl RateClass {
    /// The GCRA quota of this class.
    pub fn quota(&self) -> Quota {
        let quota = Quota::new(self.limit, self.period_secs.saturating_mul(1000));
        match self.burst {
            Some(burst) => quota.with_burst(burst),
            None => quota,
        }
    }

    /// The store key of the bucket that counts a request from `ip` by principal `subject`,
    /// e.g. `rl:login:ip:203.0.113.7`.
    pub fn bucket_key(&self, ip: &str, subject: &str) -> String {
        match self.key {
            RateKey::Ip => format!("rl:{}:ip:{ip}", self.name),
            RateKey::Principal => format!("rl:{}:principal:{subject}", self.name),
            RateKey::Global => format!("rl:{}:global", self.name),
        }
    }

    /// Checks one request on `bucket_key` against this class, reported under its name.
    pub fn check<S: GcraStore + ?Sized>(
        &self,
        store: &mut S,
        bucket_key: &str,
        now_ms: u64,
    ) -> RateDecision {
        rate_limit::check(store, bucket_key, &self.quota(), now_ms).named(self.name.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// One entry of the route table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Upper-case method, one of [`METHODS`].
    pub method: String,
    /// The pattern as written, e.g. `/api/v1/rules/{id}`.
    pub path: String,
    pub auth: Auth,
    /// Names of the rate classes that all apply, in table order.
    pub rate_classes: Vec<String>,
    /// Largest body in bytes; 0 when the route takes no body.
    pub body_limit: u64,
    /// Body types accepted; empty when the route takes no body.
    pub content_types: Vec<ContentKind>,
    /// A permission that lets the caller act on items of other principals.
    pub admin_permission: Option<Permission>,
    /// A liveness or readiness probe: answered for a blocked address too (public, no body).
    pub probe: bool,
    segments: Vec<Segment>,
}

impl Route {
    /// Whether a body with this `Content-Type` is accepted. A request without a body (`None`)
    /// always is; the body limit still applies.
    pub fn accepts_content_type(&self, content_type: Option<&str>) -> bool {
        match content_type {
            None => true,
            Some(value) => ContentKind::of(value).is_some_and(|k| self.content_types.contains(&k)),
        }
    }

    fn matches<'p>(&self, path_segments: &[&'p str]) -> Option<Vec<(usize, &'p str)>> {
        if self.segments.len() != path_segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (index, (pattern, actual)) in self.segments.iter().zip(path_segments).enumerate() {
            match pattern {
                Segment::Literal(literal) if literal == actual => {}
                Segment::Param(_) if is_param_value(actual) => params.push((index, *actual)),
                _ => return None,
            }
        }
        Some(params)
    }

    fn shape(&self) -> Vec<bool> {
        self.segments
            .iter()
            .map(|s| matches!(s, Segment::Literal(_)))
            .collect()
    }
}

/// A resolved route and the values of its `{param}` segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    pub route: &'a Route,
    /// `(name, value)` in pattern order.
    pub params: Vec<(&'a str, String)>,
}

impl RouteMatch<'_> {
    /// The value of the parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The outcome of [`RoutePolicy::resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution<'a> {
    Found(RouteMatch<'a>),
    /// No pattern matches the path.
    NotFound,
    /// A pattern matches but not with this method; `allowed` is the `Allow` list, sorted.
    MethodNotAllowed {
        allowed: Vec<&'a str>,
    },
}

impl Resolution<'_> {
    /// The refusal code, or `None` when a route was found.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            Resolution::Found(_) => None,
            Resolution::NotFound => Some(ErrorCode::NotFound),
            Resolution::MethodNotAllowed { .. } => Some(ErrorCode::MethodNotAllowed),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    rate_class: BTreeMap<String, RateClassSpec>,
    #[serde(default)]
    route: Vec<RouteSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateClassSpec {
    limit: u32,
    period_secs: u64,
    key: RateKey,
    burst: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSpec {
    method: String,
    path: String,
    auth: String,
    #[serde(default)]
    rate_classes: Vec<String>,
    #[serde(default)]
    body_limit: u64,
    #[serde(default)]
    content_types: Vec<ContentKind>,
    admin_permission: Option<String>,
    #[serde(default)]
    probe: bool,
}

/// The whole route table with its rate classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePolicy {
    routes: Vec<Route>,
    rate_classes: BTreeMap<String, RateClass>,
}

impl Default for RoutePolicy {
    /// The embedded table of the public API.
    fn default() -> Self {
        RoutePolicy::from_toml(DEFAULT_ROUTE_POLICY_TOML)
            .expect("the embedded route policy is valid; this is a bug")
    }
}

impl RoutePolicy {
    /// Reads a route table, refusing unknown permissions, undefined rate classes, malformed
    /// patterns, unsupported methods, duplicate method + pattern pairs and contradictory
    /// settings (a body limit without content types or the reverse, a per-principal class on a
    /// public route).
    pub fn from_toml(text: &str) -> Result<Self, RoutePolicyError> {
        let file: PolicyFile =
            toml::from_str(text).map_err(|e| RoutePolicyError::InvalidToml(e.to_string()))?;

        let mut rate_classes = BTreeMap::new();
        for (name, spec) in file.rate_class {
            let invalid = |reason| RoutePolicyError::InvalidRateClass {
                name: name.clone(),
                reason,
            };
            if !is_name(&name) {
                return Err(invalid("the name must be 1-32 of [a-z0-9_-]"));
            }
            if spec.limit == 0 || spec.period_secs == 0 || spec.burst == Some(0) {
                return Err(invalid("limit, period_secs and burst must be positive"));
            }
            let class = RateClass {
                name: name.clone(),
                limit: spec.limit,
                period_secs: spec.period_secs,
                key: spec.key,
                burst: spec.burst,
            };
            rate_classes.insert(name, class);
        }

        let mut routes = Vec::with_capacity(file.route.len());
        let mut seen = BTreeSet::new();
        for spec in file.route {
            let label = format!("{} {}", spec.method, spec.path);
            if !METHODS.contains(&spec.method.as_str()) {
                return Err(RoutePolicyError::InvalidMethod {
                    route: label,
                    method: spec.method,
                });
            }
            let segments = parse_pattern(&spec.path)?;
            let unknown = |permission: &str| RoutePolicyError::UnknownPermission {
                route: label.clone(),
                permission: permission.to_owned(),
            };
            let auth = Auth::parse(&spec.auth).ok_or_else(|| unknown(&spec.auth))?;
            let admin_permission = match &spec.admin_permission {
                Some(text) => Some(text.parse::<Permission>().map_err(|_| unknown(text))?),
                None => None,
            };
            for class in &spec.rate_classes {
                let Some(found) = rate_classes.get(class) else {
                    return Err(RoutePolicyError::UnknownRateClass {
                        route: label,
                        class: class.clone(),
                    });
                };
                if auth == Auth::Public && found.key == RateKey::Principal {
                    return Err(RoutePolicyError::InvalidRoute {
                        route: label,
                        reason: "a public route cannot be limited per principal",
                    });
                }
            }
            if (spec.body_limit == 0) != spec.content_types.is_empty() {
                return Err(RoutePolicyError::InvalidRoute {
                    route: label,
                    reason: "body_limit and content_types must be set together",
                });
            }
            if spec.probe && (auth != Auth::Public || spec.body_limit > 0) {
                return Err(RoutePolicyError::InvalidRoute {
                    route: label,
                    reason: "a probe must be public and take no body",
                });
            }
            let shape: Vec<String> = segments
                .iter()
                .map(|s| match s {
                    Segment::Literal(literal) => literal.clone(),
                    Segment::Param(_) => "{}".to_owned(),
                })
                .collect();
            if !seen.insert((spec.method.clone(), shape)) {
                return Err(RoutePolicyError::DuplicateRoute {
                    method: spec.method,
                    pattern: spec.path,
                });
            }
            routes.push(Route {
                method: spec.method,
                path: spec.path,
                auth,
                rate_classes: spec.rate_classes,
                body_limit: spec.body_limit,
                content_types: spec.content_types,
                admin_permission,
                probe: spec.probe,
                segments,
            });
        }
        Ok(RoutePolicy {
            routes,
            rate_classes,
        })
    }

    /// Every route, in table order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The rate class called `name`.
    pub fn rate_class(&self, name: &str) -> Option<&RateClass> {
        self.rate_classes.get(name)
    }

    /// Every rate class, sorted by name.
    pub fn rate_classes(&self) -> impl Iterator<Item = &RateClass> {
        self.rate_classes.values()
    }

    /// The rate classes that apply to `route`, in its order.
    pub fn classes_of<'a>(&'a self, route: &'a Route) -> impl Iterator<Item = &'a RateClass> {
        route
            .rate_classes
            .iter()
            .filter_map(|name| self.rate_classes.get(name))
    }

    /// Finds the route for `method` and `path` (without query) by the rules in the module docs.
    pub fn resolve(&self, method: &str, path: &str) -> Resolution<'_> {
        let Some(rest) = path.strip_prefix('/') else {
            return Resolution::NotFound;
        };
        if path.len() > MAX_PATH_LEN {
            return Resolution::NotFound;
        }
        let segments: Vec<&str> = rest.split('/').collect();

        let mut best: Option<Vec<bool>> = None;
        let mut candidates: Vec<(&Route, Vec<(usize, &str)>)> = Vec::new();
        for route in &self.routes {
            let Some(params) = route.matches(&segments) else {
                continue;
            };
            let shape = route.shape();
            match &best {
                Some(current) if *current > shape => continue,
                Some(current) if *current == shape => {}
                _ => {
                    best = Some(shape);
                    candidates.clear();
                }
            }
            candidates.push((route, params));
        }
        if candidates.is_empty() {
            return Resolution::NotFound;
        }

        let chosen = candidates
            .iter()
            .find(|(route, _)| route.method == method)
            .or_else(|| {
                (method == "HEAD")
                    .then(|| candidates.iter().find(|(route, _)| route.method == "GET"))
                    .flatten()
            });
        match chosen {
            Some((route, params)) => {
                let params = params
                    .iter()
                    .filter_map(|(index, value)| match &route.segments[*index] {
                        Segment::Param(name) => Some((name.as_str(), (*value).to_owned())),
                        Segment::Literal(_) => None,
                    })
                    .collect();
                Resolution::Found(RouteMatch { route, params })
            }
            None => {
                let mut allowed: BTreeSet<&str> = candidates
                    .iter()
                    .map(|(route, _)| route.method.as_str())
                    .collect();
                if allowed.contains("GET") {
                    allowed.insert("HEAD");
                }
                Resolution::MethodNotAllowed {
                    allowed: allowed.into_iter().collect(),
                }
            }
        }
    }
}

fn parse_pattern(pattern: &str) -> Result<Vec<Segment>, RoutePolicyError> {
    let invalid = |reason| RoutePolicyError::InvalidPattern {
        pattern: pattern.to_owned(),
        reason,
    };
    let Some(rest) = pattern.strip_prefix('/') else {
        return Err(invalid("it must start with `/`"));
    };
    if pattern.len() > MAX_PATH_LEN {
        return Err(invalid("it is too long"));
    }
    let mut segments = Vec::new();
    let mut names = BTreeSet::new();
    for segment in rest.split('/') {
        if let Some(inner) = segment.strip_prefix('{') {
            let Some(name) = inner.strip_suffix('}') else {
                return Err(invalid("a `{` segment must end with `}`"));
            };
            if !is_param_name(name) {
                return Err(invalid(
                    "a parameter name must be 1-32 of [a-z0-9_], not starting with a digit",
                ));
            }
            if !names.insert(name) {
                return Err(invalid("a parameter name is used twice"));
            }
            segments.push(Segment::Param(name.to_owned()));
        } else if is_param_value(segment) {
            segments.push(Segment::Literal(segment.to_owned()));
        } else {
            return Err(invalid(
                "a segment is empty, a dot segment, or has characters outside [A-Za-z0-9._~-]",
            ));
        }
    }
    Ok(segments)
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

fn is_param_value(segment: &str) -> bool {
    !segment.is_empty() && segment != "." && segment != ".." && segment.bytes().all(is_unreserved)
}

fn is_param_name(name: &str) -> bool {
    name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permissions::{PermissionSet, RoleSet};
    use crate::rate_limit::MemoryGcraStore;

    fn found<'a>(policy: &'a RoutePolicy, method: &str, path: &str) -> RouteMatch<'a> {
        match policy.resolve(method, path) {
            Resolution::Found(m) => m,
            other => panic!("{method} {path} resolved to {other:?}"),
        }
    }

    #[test]
    fn every_design_route_resolves_to_its_permission() {
        let policy = RoutePolicy::default();
        let p = |s: &str| Auth::Permission(s.parse().unwrap());
        let table = [
            ("POST", "/auth/login", Auth::Public),
            ("POST", "/auth/refresh", Auth::Public),
            ("POST", "/auth/password", Auth::Token),
            ("POST", "/auth/logout", Auth::Token),
            ("POST", "/auth/mfa/setup", Auth::Token),
            ("POST", "/auth/mfa/verify", Auth::Token),
            ("POST", "/auth/api-keys", Auth::Token),
            ("GET", "/auth/api-keys", Auth::Token),
            ("DELETE", "/auth/api-keys/key_01", Auth::Token),
            ("GET", "/auth/me", Auth::Token),
            ("GET", "/auth/sessions", Auth::Token),
            ("DELETE", "/auth/sessions/f0", Auth::Token),
            ("GET", "/.well-known/jwks.json", Auth::Public),
            ("POST", "/api/v1/analysis", p("analysis:write")),
            ("GET", "/api/v1/analysis", p("analysis:read")),
            (
                "GET",
                "/api/v1/analysis/0190c0de-7b1a-7000-8000-000000000001",
                p("analysis:read"),
            ),
            ("DELETE", "/api/v1/analysis/42", p("analysis:delete")),
            ("POST", "/api/v1/analysis/42/feedback", p("analysis:write")),
            ("GET", "/api/v1/rules", p("rules:read")),
            ("POST", "/api/v1/rules", p("rules:write")),
            ("GET", "/api/v1/rules/7", p("rules:read")),
            ("PATCH", "/api/v1/rules/7", p("rules:write")),
            ("DELETE", "/api/v1/rules/7", p("rules:delete")),
            ("POST", "/api/v1/rules/evaluate", p("rules:execute")),
            ("POST", "/api/v1/rules/natural-language", p("rules:write")),
            ("POST", "/api/v1/process_points", p("clusters:write")),
            ("GET", "/api/v1/clusters_summary", p("clusters:read")),
            ("GET", "/api/v1/algorithm_status", p("clusters:read")),
            (
                "GET",
                "/api/v1/jobs/0190c0de-7b1a-7000-8000-000000000001",
                p("clusters:read"),
            ),
            ("GET", "/api/v1/streams", p("clusters:read")),
            ("DELETE", "/api/v1/streams/sensor-1", p("clusters:write")),
            ("POST", "/api/v1/ws-tickets", p("clusters:write")),
            ("GET", "/api/v1/streams/sensor-1/ws", p("clusters:write")),
            ("GET", "/api/v1/servers", p("servers:read")),
            ("POST", "/api/v1/servers/gpu-0/pause", p("servers:control")),
            ("POST", "/api/v1/servers/gpu-0/resume", p("servers:control")),
            ("POST", "/api/v1/servers/gpu-0/drain", p("servers:control")),
            ("GET", "/api/v1/admin/audit", p("admin:audit")),
            ("GET", "/api/v1/admin/users", p("admin:users")),
            ("POST", "/api/v1/admin/users", p("admin:users")),
            ("GET", "/api/v1/admin/reports/access", p("admin:audit")),
            ("PATCH", "/api/v1/admin/users/u1", p("admin:users")),
            ("DELETE", "/api/v1/admin/users/u1", p("admin:users")),
            (
                "POST",
                "/api/v1/admin/users/u1/password-reset",
                p("admin:users"),
            ),
            ("GET", "/api/v1/admin/users/u1/sessions", p("admin:users")),
            (
                "DELETE",
                "/api/v1/admin/users/u1/sessions",
                p("admin:users"),
            ),
            ("PATCH", "/api/v1/me", Auth::Token),
            ("GET", "/api/v1/me/export", Auth::Token),
            ("DELETE", "/api/v1/me", Auth::Token),
            ("GET", "/health", Auth::Public),
            ("GET", "/ready", Auth::Public),
            ("GET", "/api/v1/version", Auth::Public),
            ("GET", "/metrics", p("metrics:read")),
            ("GET", "/openapi.json", Auth::Public),
        ];
        assert_eq!(policy.routes().len(), table.len());
        for (method, path, auth) in table {
            let m = found(&policy, method, path);
            assert_eq!(m.route.auth, auth, "{method} {path}");
            assert_eq!(m.route.method, method);
        }
        let probes: Vec<&str> = policy
            .routes()
            .iter()
            .filter(|r| r.probe)
            .map(|r| r.path.as_str())
            .collect();
        assert_eq!(probes, ["/health", "/ready"]);
    }

    #[test]
    fn params_literals_and_route_settings() {
        let policy = RoutePolicy::default();
        let m = found(&policy, "POST", "/api/v1/servers/gpu-0/drain");
        assert_eq!(m.route.path, "/api/v1/servers/{id}/drain");
        assert_eq!(m.param("id"), Some("gpu-0"));
        assert_eq!(m.param("other"), None);
        let keys = found(&policy, "DELETE", "/auth/api-keys/k1");
        assert_eq!(keys.route.admin_permission, Some(Permission::AdminUsers));
        assert_eq!(
            found(&policy, "GET", "/api/v1/rules")
                .route
                .admin_permission,
            Some(Permission::AdminUsers)
        );
        assert_eq!(
            found(&policy, "POST", "/api/v1/rules")
                .route
                .admin_permission,
            None
        );

        let upload = found(&policy, "POST", "/api/v1/analysis");
        assert_eq!(upload.route.body_limit, 10 * 1024 * 1024 + 64 * 1024);
        assert_eq!(upload.route.content_types, vec![ContentKind::Multipart]);
        assert_eq!(
            upload.route.rate_classes,
            ["heavy", "principal", "ip", "global"]
        );
        assert!(
            upload
                .route
                .accepts_content_type(Some("multipart/form-data; boundary=x"))
        );
        assert!(!upload.route.accepts_content_type(Some("application/json")));
        let points = found(&policy, "POST", "/api/v1/process_points");
        assert_eq!(points.route.body_limit, 16 * 1024 * 1024);
        assert_eq!(
            points.route.rate_classes,
            ["heavy", "principal", "ip", "global"]
        );
        let login = found(&policy, "POST", "/auth/login");
        assert_eq!(login.route.rate_classes, ["login", "ip", "global"]);
        assert!(
            login
                .route
                .accepts_content_type(Some("Application/X-WWW-Form-URLencoded"))
        );
        assert!(
            login
                .route
                .accepts_content_type(Some("application/json;charset=utf-8"))
        );
        assert!(!login.route.accepts_content_type(Some("text/plain")));

        for route in policy.routes() {
            if route.auth != Auth::Public {
                for class in ["principal", "ip", "global"] {
                    assert!(
                        route.rate_classes.iter().any(|c| c == class),
                        "{} {}",
                        route.method,
                        route.path
                    );
                }
            }
        }
        let login_class = policy.rate_class("login").unwrap();
        assert_eq!(login_class.quota(), Quota::new(10, 60_000));
        assert_eq!(login_class.key, RateKey::Ip);
        assert_eq!(
            policy.rate_class("heavy").unwrap().quota(),
            Quota::new(60, 60_000).with_burst(10)
        );
        assert_eq!(
            policy.rate_class("global").unwrap().quota(),
            Quota::new(20_000, 1_000)
        );
        assert_eq!(policy.classes_of(login.route).count(), 3);
    }

    #[test]
    fn literals_win_over_params_before_methods_are_considered() {
        let policy = RoutePolicy::default();
        assert_eq!(
            found(&policy, "POST", "/api/v1/rules/evaluate").route.path,
            "/api/v1/rules/evaluate"
        );
        assert_eq!(
            policy.resolve("GET", "/api/v1/rules/evaluate"),
            Resolution::MethodNotAllowed {
                allowed: vec!["POST"]
            }
        );
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405_with_allow() {
        let policy = RoutePolicy::default();
        for path in [
            "/",
            "",
            "health",
            "/health/",
            "//health",
            "/nope",
            "/api/v1/rules/7/extra",
            "/api/v1/rules/..",
            "/api/v1/rules/.",
            "/api/v1/rules/%2e%2e",
            "/api/v1/%72ules",
            "/api/v1/analysis//feedback",
            "/api/v1/analysis/a%2Fb",
            "/HEALTH",
            "/health?x=1",
        ] {
            assert_eq!(policy.resolve("GET", path), Resolution::NotFound, "{path}");
        }
        assert_eq!(
            policy.resolve("GET", &format!("/{}", "a".repeat(3000))),
            Resolution::NotFound
        );
        assert_eq!(
            policy.resolve("PUT", "/api/v1/rules/7"),
            Resolution::MethodNotAllowed {
                allowed: vec!["DELETE", "GET", "HEAD", "PATCH"]
            }
        );
        let refused = policy.resolve("DELETE", "/health");
        assert_eq!(
            refused,
            Resolution::MethodNotAllowed {
                allowed: vec!["GET", "HEAD"]
            }
        );
        assert_eq!(refused.error_code(), Some(ErrorCode::MethodNotAllowed));
        assert_eq!(
            policy.resolve("GET", "/x").error_code(),
            Some(ErrorCode::NotFound)
        );
        assert!(matches!(
            policy.resolve("get", "/health"),
            Resolution::MethodNotAllowed { .. }
        ));
        assert_eq!(
            policy.resolve("GET", "/auth/login"),
            Resolution::MethodNotAllowed {
                allowed: vec!["POST"]
            }
        );
    }

    #[test]
    fn head_follows_get() {
        let policy = RoutePolicy::default();
        let m = found(&policy, "HEAD", "/api/v1/analysis/9");
        assert_eq!(m.route.method, "GET");
        assert_eq!(m.param("id"), Some("9"));
    }

    #[test]
    fn auth_permits_by_principal() {
        let roles = RoleSet::default();
        let viewer = Principal {
            subject: "u1".into(),
            kind: PrincipalKind::User,
            roles: vec!["viewer".into()],
            permissions: roles.permissions_of(&["viewer"]),
            token_id: None,
            client_ip: None,
            token: None,
        };
        let anonymous = Principal::anonymous();
        let read = Auth::Permission(Permission::AnalysisRead);
        let write = Auth::Permission(Permission::AnalysisWrite);
        assert_eq!(Auth::Public.permits(&anonymous), Ok(()));
        assert_eq!(
            Auth::Token.permits(&anonymous),
            Err(ErrorCode::MissingCredentials)
        );
        assert_eq!(read.permits(&anonymous), Err(ErrorCode::MissingCredentials));
        assert_eq!(Auth::Token.permits(&viewer), Ok(()));
        assert_eq!(read.permits(&viewer), Ok(()));
        assert_eq!(
            write.permits(&viewer),
            Err(ErrorCode::InsufficientPermissions)
        );
        let empty = Principal {
            permissions: PermissionSet::empty(),
            ..viewer
        };
        assert_eq!(Auth::Token.permits(&empty), Ok(()));
        assert_eq!(write.to_string(), "analysis:write");
    }

    #[test]
    fn rate_classes_check_under_their_name_and_key() {
        let policy = RoutePolicy::default();
        let login = policy.rate_class("login").unwrap();
        let key = login.bucket_key("203.0.113.7", "ignored");
        assert_eq!(key, "rl:login:ip:203.0.113.7");
        assert_eq!(
            policy
                .rate_class("principal")
                .unwrap()
                .bucket_key("ip", "u1"),
            "rl:principal:principal:u1"
        );
        assert_eq!(
            policy.rate_class("global").unwrap().bucket_key("ip", "u1"),
            "rl:global:global"
        );
        let mut store = MemoryGcraStore::new();
        let mut last = None;
        for _ in 0..11 {
            last = Some(login.check(&mut store, &key, 0));
        }
        let last = last.unwrap();
        assert!(!last.allowed);
        assert_eq!(last.policy_name, "login");
        assert_eq!(last.retry_after_ms, Some(6_000));
    }

    #[test]
    fn an_operator_table_replaces_the_default() {
        let policy = RoutePolicy::from_toml(
            r#"
            [rate_class.tight]
            limit = 1
            period_secs = 10
            key = "global"

            [[route]]
            method = "POST"
            path = "/v2/jobs/{job_id}/cancel"
            auth = "servers:control"
            rate_classes = ["tight"]
            "#,
        )
        .unwrap();
        assert_eq!(policy.routes().len(), 1);
        let m = found(&policy, "POST", "/v2/jobs/j-1/cancel");
        assert_eq!(m.route.auth, Auth::Permission(Permission::ServersControl));
        assert_eq!(m.params, vec![("job_id", "j-1".to_owned())]);
        assert_eq!(m.route.body_limit, 0);
        assert_eq!(policy.resolve("GET", "/health"), Resolution::NotFound);
        assert!(!m.route.probe);
    }

    #[test]
    fn invalid_tables_are_refused() {
        let class = "[rate_class.c]\nlimit = 1\nperiod_secs = 1\nkey = \"ip\"\n";
        let route = |body: &str| format!("{class}[[route]]\n{body}\n");
        type Expected = fn(&RoutePolicyError) -> bool;
        let cases: Vec<(String, Expected)> = vec![
            ("not [toml".into(), |e| matches!(e, RoutePolicyError::InvalidToml(_))),
            (route("method = \"GET\"\npath = \"/a\"\nauth = \"rules:fly\""), |e| {
                matches!(e, RoutePolicyError::UnknownPermission { permission, .. } if permission == "rules:fly")
            }),
            (route("method = \"GET\"\npath = \"/a\"\nauth = \"token\"\nadmin_permission = \"root\""), |e| {
                matches!(e, RoutePolicyError::UnknownPermission { .. })
            }),
            (route("method = \"GET\"\npath = \"/a\"\nauth = \"token\"\nrate_classes = [\"nope\"]"), |e| {
                matches!(e, RoutePolicyError::UnknownRateClass { class, .. } if class == "nope")
            }),
            (route("method = \"GET\"\npath = \"a\"\nauth = \"token\""), |e| {
                matches!(e, RoutePolicyError::InvalidPattern { .. })
            }),
            (route("method = \"GET\"\npath = \"/a//b\"\nauth = \"token\""), |e| {
                matches!(e, RoutePolicyError::InvalidPattern { .. })
            }),
            (route("method = \"GET\"\npath = \"/a/{id\"\nauth = \"token\""), |e| {
                matches!(e, RoutePolicyError::InvalidPattern { .. })
            }),
            (route("method = \"GET\"\npath = \"/a/{id}/{id}\"\nauth = \"token\""), |e| {
                matches!(e, RoutePolicyError::InvalidPattern { .. })
            }),
            (route("method = \"GET\"\npath = \"/a/../b\"\nauth = \"token\""), |e| {
                matches!(e, RoutePolicyError::InvalidPattern { .. })
            }),
            (route("method = \"GET\"\npath = \"/a%20b\"\nauth = \"token\""), |e| {
                matches!(e, RoutePolicyError::InvalidPattern { .. })
            }),
            (route("method = \"FETCH\"\npath = \"/a\"\nauth = \"token\""), |e| {
                matches!(e, RoutePolicyError::InvalidMethod { .. })
            }),
            (
                format!("{}[[route]]\nmethod = \"GET\"\npath = \"/a/{{x}}\"\nauth = \"token\"\n", route("method = \"GET\"\npath = \"/a/{id}\"\nauth = \"token\"")),
                |e| matches!(e, RoutePolicyError::DuplicateRoute { .. }),
            ),
            (route("method = \"GET\"\npath = \"/a\"\nauth = \"token\"\nbody_limit = 10"), |e| {
                matches!(e, RoutePolicyError::InvalidRoute { .. })
            }),
            (route("method = \"GET\"\npath = \"/a\"\nauth = \"token\"\nprobe = true"), |e| {
                matches!(e, RoutePolicyError::InvalidRoute { reason, .. } if reason.contains("probe"))
            }),
            (route("method = \"GET\"\npath = \"/a\"\nauth = \"token\"\nlimit = 10"), |e| {
                matches!(e, RoutePolicyError::InvalidToml(_))
            }),
            (
                "[rate_class.p]\nlimit = 1\nperiod_secs = 1\nkey = \"principal\"\n[[route]]\nmethod = \"GET\"\npath = \"/a\"\nauth = \"public\"\nrate_classes = [\"p\"]".into(),
                |e| matches!(e, RoutePolicyError::InvalidRoute { .. }),
            ),
            ("[rate_class.z]\nlimit = 0\nperiod_secs = 1\nkey = \"ip\"".into(), |e| {
                matches!(e, RoutePolicyError::InvalidRateClass { .. })
            }),
            ("[rate_class.Z]\nlimit = 1\nperiod_secs = 1\nkey = \"ip\"".into(), |e| {
                matches!(e, RoutePolicyError::InvalidRateClass { .. })
            }),
            ("[rate_class.z]\nlimit = 1\nperiod_secs = 1\nkey = \"user\"".into(), |e| {
                matches!(e, RoutePolicyError::InvalidToml(_))
            }),
        ];
        for (text, expected) in cases {
            let err = RoutePolicy::from_toml(&text).expect_err(&text);
            assert!(expected(&err), "{text}\n gave {err:?}");
            assert_eq!(err.code(), ErrorCode::Internal);
        }
    }
}
