//! What the route table does not say about each public operation: its summary, its request body
//! type, its success answers and the codes its handler may refuse with. The generator refuses a
//! table route without an entry here, and an entry without a route.

use serde_json::{Value, json};

use crate::problem::ErrorCode;

/// The request body an operation takes.
pub(super) enum Request {
    /// No body.
    None,
    /// A JSON body of the named schema (a type of [`crate::body`]).
    Json(&'static str),
    /// The named schema as JSON or as `application/x-www-form-urlencoded`.
    JsonOrForm(&'static str),
    /// The analysis upload (`multipart/form-data`).
    Multipart,
}

/// One answer of the handler's own (a 503 of `/health` or `/ready` shares its status with the
/// problem answers and is merged with them).
pub(super) enum Reply {
    /// No body (204).
    Empty,
    /// A JSON body of this schema.
    Json(fn() -> Value),
    /// Plain text (Prometheus exposition format).
    Text,
    /// CSV (`text/csv`, RFC 4180).
    Csv,
    /// A JWK set (`application/jwk-set+json`, RFC 7517).
    JwkSet,
    /// The switch to a WebSocket (101, no body).
    Upgrade,
}

/// The description of one operation of the route table.
pub(super) struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub request: Request,
    pub success: Vec<(u16, Reply)>,
    /// Codes the handler itself may answer with, beyond those the route's policy implies.
    pub codes: &'static [ErrorCode],
    /// The query parameters the handler reads: name and JSON type. Any other is refused
    /// (`VALIDATION_FAILED`).
    pub query: &'static [(&'static str, &'static str)],
}

fn op(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    request: Request,
    success: Vec<(u16, Reply)>,
    codes: &'static [ErrorCode],
) -> Operation {
    Operation {
        method,
        path,
        tag,
        summary,
        request,
        success,
        codes,
        query: &[],
    }
}

impl Operation {
    fn with_query(mut self, query: &'static [(&'static str, &'static str)]) -> Operation {
        self.query = query;
        self
    }
}

const PAGE: &[(&str, &str)] = &[("limit", "integer"), ("offset", "integer")];
const OWNED_PAGE: &[(&str, &str)] = &[
    ("owner", "string"),
    ("limit", "integer"),
    ("offset", "integer"),
];
const WAIT: &[(&str, &str)] = &[("wait", "integer")];
const STREAM: &[(&str, &str)] = &[("stream", "string")];

/// An object with these documented fields (name, schema); more fields may come.
fn object(fields: &[(&str, Value)]) -> Value {
    let properties: serde_json::Map<String, Value> = fields
        .iter()
        .map(|(name, schema)| ((*name).to_owned(), schema.clone()))
        .collect();
    json!({ "type": "object", "properties": properties })
}

fn tokens() -> Value {
    let mut schema = object(&[
        ("access_token", json!({ "type": "string" })),
        ("refresh_token", json!({ "type": "string" })),
        ("token_type", json!({ "type": "string", "const": "Bearer" })),
        ("expires_in", json!({ "type": "integer" })),
        ("scope", json!({ "type": "string" })),
    ]);
    schema["required"] = json!(["access_token", "token_type", "expires_in"]);
    schema
}

fn mfa_setup() -> Value {
    object(&[
        ("secret", json!({ "type": "string" })),
        ("otpauth_uri", json!({ "type": "string" })),
    ])
}

fn mfa_enabled() -> Value {
    object(&[("mfa_enabled", json!({ "type": "boolean" }))])
}

fn api_key() -> Value {
    object(&[
        ("id", json!({ "type": "string" })),
        ("name", json!({ "type": "string" })),
        (
            "key",
            json!({ "type": "string", "description": "`ncs_` + 32 hex, shown once" }),
        ),
    ])
}

fn api_keys() -> Value {
    object(&[("keys", json!({ "type": "array", "items": api_key() }))])
}

pub(super) fn jwks() -> Value {
    object(&[(
        "keys",
        json!({ "type": "array", "items": { "type": "object" } }),
    )])
}

fn analysis() -> Value {
    let mut analysis = object(&[
        ("id", json!({ "type": "string" })),
        (
            "status",
            json!({ "type": "string", "enum": ["pending", "processing", "completed", "failed"] }),
        ),
        ("reused", json!({ "type": "boolean" })),
        ("image", json!({ "type": "object" })),
        ("options", json!({ "type": "object" })),
        ("result", json!({ "type": ["object", "null"] })),
    ]);
    analysis["required"] = json!(["id", "status"]);
    analysis
}

fn page(items: &str) -> Value {
    object(&[
        (
            items,
            json!({ "type": "array", "items": { "type": "object" } }),
        ),
        ("limit", json!({ "type": "integer" })),
        ("offset", json!({ "type": "integer" })),
        ("total", json!({ "type": "integer" })),
    ])
}

fn analyses() -> Value {
    page("analyses")
}

fn rules() -> Value {
    let mut list = page("rules");
    list["properties"]["rules"]["items"] = rule();
    list
}

fn audit() -> Value {
    page("events")
}

fn users() -> Value {
    let mut list = page("users");
    list["properties"]["users"]["items"] = account();
    list
}

/// An account as `GET /auth/me` and the administration routes answer it.
fn account() -> Value {
    let mut account = object(&[
        ("id", json!({ "type": "string" })),
        ("username", json!({ "type": "string" })),
        ("email", json!({ "type": ["string", "null"] })),
        (
            "roles",
            json!({ "type": "array", "items": { "type": "string" } }),
        ),
        (
            "permissions",
            json!({ "type": "array", "items": { "type": "string" } }),
        ),
        ("mfa_enabled", json!({ "type": "boolean" })),
        ("password_change_required", json!({ "type": "boolean" })),
        ("disabled", json!({ "type": "boolean" })),
        ("disabled_at_ms", json!({ "type": ["integer", "null"] })),
        ("created_at_ms", json!({ "type": "integer" })),
        ("updated_at_ms", json!({ "type": "integer" })),
    ]);
    account["required"] = json!(["id", "username", "roles", "permissions", "mfa_enabled"]);
    account
}

/// A new account: its record, and the temporary password once when the backend drew it.
fn created_account() -> Value {
    let mut created = account();
    created["properties"]["temporary_password"] = json!({ "type": "string" });
    created
}

fn password_reset() -> Value {
    object(&[
        ("id", json!({ "type": "string" })),
        ("temporary_password", json!({ "type": "string" })),
        ("password_change_required", json!({ "type": "boolean" })),
    ])
}

/// The compliance report of a window.
fn access_report() -> Value {
    let count = json!({ "type": "integer" });
    object(&[
        ("from_ms", count.clone()),
        ("to_ms", count.clone()),
        (
            "by_principal",
            json!({ "type": "array", "items": object(&[
                ("principal", json!({ "type": ["string", "null"] })),
                ("event_type", json!({ "type": "string" })),
                ("count", count.clone()),
            ]) }),
        ),
        (
            "totals",
            object(&[
                ("events", count.clone()),
                ("login_failures", count.clone()),
                ("permission_denials", count.clone()),
                ("admin_actions", count.clone()),
                ("data_exports", count.clone()),
                ("erasures", count.clone()),
                ("blocks", count.clone()),
                (
                    "by_type",
                    json!({ "type": "object", "additionalProperties": count }),
                ),
            ]),
        ),
    ])
}

fn sessions() -> Value {
    object(&[(
        "sessions",
        json!({ "type": "array", "items": object(&[
            ("id", json!({ "type": "string" })),
            ("created_at_ms", json!({ "type": "integer" })),
            ("last_used_at_ms", json!({ "type": "integer" })),
            ("ip", json!({ "type": ["string", "null"] })),
            ("user_agent", json!({ "type": ["string", "null"] })),
        ]) }),
    )])
}

/// A stored rule on the wire: one flat object, the definition's fields beside `id`, `owner` and
/// the times.
fn rule() -> Value {
    let schema = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}") });
    let mut rule = object(&[
        ("id", json!({ "type": "string" })),
        ("owner", json!({ "type": "string" })),
        ("name", json!({ "type": "string" })),
        ("description", json!({ "type": "string" })),
        (
            "conditions",
            json!({ "type": "array", "items": schema("RuleCondition") }),
        ),
        (
            "actions",
            json!({ "type": "array", "items": schema("RuleAction") }),
        ),
        ("priority", json!({ "type": "integer" })),
        ("enabled", json!({ "type": "boolean" })),
        ("context", json!({ "type": "string" })),
        ("created_at_ms", json!({ "type": "integer" })),
        ("updated_at_ms", json!({ "type": "integer" })),
    ]);
    rule["required"] = json!(["id", "name", "conditions", "actions"]);
    rule
}

fn evaluation() -> Value {
    object(&[("results", json!({ "type": "array" }))])
}

fn drafted_rule() -> Value {
    object(&[
        ("rule", json!({ "type": "object" })),
        ("interpretation", json!({ "type": "string" })),
        ("confidence", json!({ "type": "number" })),
        (
            "warnings",
            json!({ "type": "array", "items": { "type": "string" } }),
        ),
        ("saved", json!({ "type": "boolean" })),
    ])
}

fn points_result() -> Value {
    object(&[
        ("request_id", json!({ "type": "string" })),
        (
            "results",
            json!({ "type": "array", "items": object(&[
                ("cluster_id", json!({ "type": "integer" })),
                ("is_outlier", json!({ "type": "boolean" })),
                ("outlier_score", json!({ "type": "number" })),
            ]) }),
        ),
        (
            "clusters",
            json!({ "type": "array", "items": object(&[
                ("id", json!({ "type": "integer" })),
                ("center", numbers()),
                ("points", json!({ "type": "array", "items": numbers() })),
                ("size", json!({ "type": "integer" })),
                ("quality", json!({ "type": "number" })),
            ]) }),
        ),
        ("outliers", json!({ "type": "array", "items": numbers() })),
        (
            "outlier_indices",
            json!({ "type": "array", "items": { "type": "integer" } }),
        ),
        ("algorithm_quality", json!({ "type": "number" })),
        ("processing_time_ms", json!({ "type": "number" })),
        ("points_processed", json!({ "type": "integer" })),
        ("clusters_found", json!({ "type": "integer" })),
        (
            "mode",
            json!({ "type": "string", "enum": ["exact", "batched"] }),
        ),
        ("job_id", json!({ "type": "string" })),
    ])
}

fn numbers() -> Value {
    json!({ "type": "array", "items": { "type": "number" } })
}

fn clusters_summary() -> Value {
    object(&[(
        "clusters_info",
        json!({ "type": "array", "items": { "type": "object" } }),
    )])
}

fn stream_ticket() -> Value {
    object(&[
        ("ticket", json!({ "type": "string" })),
        ("stream", json!({ "type": "string" })),
        ("expires_in", json!({ "type": "integer" })),
        ("url", json!({ "type": "string" })),
    ])
}

fn algorithm_status() -> Value {
    object(&[
        ("stream", json!({ "type": "string" })),
        ("is_ready", json!({ "type": "boolean" })),
        ("active_clusters", json!({ "type": "integer" })),
        ("total_points_processed", json!({ "type": "integer" })),
        ("clustering_quality", json!({ "type": "number" })),
        ("memory_usage_mb", json!({ "type": "number" })),
        ("last_processing_time_ms", json!({ "type": "number" })),
        ("error_count", json!({ "type": "integer" })),
        ("uptime_seconds", json!({ "type": "number" })),
        ("points_processed", json!({ "type": "integer" })),
        ("clusters", json!({ "type": "integer" })),
        ("request_id", json!({ "type": "string" })),
    ])
}

fn servers() -> Value {
    object(&[(
        "servers",
        json!({ "type": "array", "items": { "type": "object" } }),
    )])
}

fn server_request() -> Value {
    object(&[
        ("id", json!({ "type": "string" })),
        ("requested_state", json!({ "type": "string" })),
    ])
}

fn export() -> Value {
    let mut export = object(&[
        (
            "format",
            json!({ "type": "string", "const": "h200.personal-data" }),
        ),
        ("version", json!({ "type": "integer" })),
        ("exported_at_ms", json!({ "type": "integer" })),
        ("user", json!({ "type": "object" })),
        ("sessions", json!({ "type": "array" })),
        ("api_keys", json!({ "type": "array" })),
        ("rules", json!({ "type": "array" })),
        ("analyses", json!({ "type": "array" })),
        ("audit_events", json!({ "type": "array" })),
    ]);
    export["required"] = json!(["format", "version", "user"]);
    export
}

fn health() -> Value {
    object(&[
        ("status", json!({ "type": "string" })),
        ("database", json!({ "type": "string" })),
        (
            "timestamp",
            json!({ "type": "string", "format": "date-time" }),
        ),
        ("version", json!({ "type": "string" })),
        ("algorithm_ready", json!({ "type": "boolean" })),
        ("uptime_seconds", json!({ "type": "number" })),
        (
            "components",
            json!({ "type": "object", "additionalProperties": { "type": "string" } }),
        ),
    ])
}

fn job() -> Value {
    object(&[
        ("job_id", json!({ "type": "string" })),
        (
            "state",
            json!({ "type": "string", "enum": ["queued", "running"] }),
        ),
        ("request_id", json!({ "type": "string" })),
    ])
}

fn streams() -> Value {
    object(&[
        ("total", json!({ "type": "integer" })),
        (
            "streams",
            json!({ "type": "array", "items": object(&[
                ("stream", json!({ "type": "string" })),
                ("jobs_saved", json!({ "type": "integer" })),
                ("updated_at", json!({ "type": "string", "format": "date-time" })),
                ("state_bytes", json!({ "type": "integer" })),
            ]) }),
        ),
        ("request_id", json!({ "type": "string" })),
    ])
}

fn ready() -> Value {
    object(&[
        ("status", json!({ "type": "string" })),
        ("components", json!({ "type": "object" })),
        (
            "not_ready",
            json!({ "type": "array", "items": { "type": "string" } }),
        ),
    ])
}

fn version() -> Value {
    object(&[
        ("version", json!({ "type": "string" })),
        ("api_version", json!({ "type": "string" })),
        ("algorithm_version", json!({ "type": "string" })),
    ])
}

fn openapi() -> Value {
    object(&[("openapi", json!({ "type": "string" }))])
}

/// Every public operation, in the route table's order.
pub(super) fn all() -> Vec<Operation> {
    use ErrorCode as E;
    use Reply::{Csv, Empty, Json, JwkSet, Text, Upgrade};
    use Request::{JsonOrForm, Multipart, None as NoBody};
    let json = Request::Json;
    vec![
        op(
            "POST",
            "/auth/login",
            "auth",
            "Log in: access and refresh tokens",
            JsonOrForm("LoginRequest"),
            vec![(200, Json(tokens))],
            &[E::InvalidCredentials, E::MfaRequired, E::InvalidMfaCode],
        ),
        op(
            "POST",
            "/auth/refresh",
            "auth",
            "Rotate a refresh token",
            json("RefreshRequest"),
            vec![(200, Json(tokens))],
            &[
                E::InvalidToken,
                E::ExpiredToken,
                E::RevokedToken,
                E::RevokedKey,
                E::RefreshTokenReused,
                E::MissingCredentials,
                E::CsrfRejected,
            ],
        ),
        op(
            "POST",
            "/auth/logout",
            "auth",
            "Revoke the presented access token (and a refresh token)",
            json("LogoutRequest"),
            vec![(204, Empty)],
            &[E::CsrfRejected],
        ),
        op(
            "POST",
            "/auth/password",
            "auth",
            "Change the caller's password",
            json("PasswordChangeRequest"),
            vec![(204, Empty)],
            &[E::InvalidCredentials, E::WeakPassword, E::PasswordReused],
        ),
        op(
            "POST",
            "/auth/mfa/setup",
            "auth",
            "Start TOTP setup: a new secret, shown once",
            NoBody,
            vec![(200, Json(mfa_setup))],
            &[E::Conflict],
        ),
        op(
            "POST",
            "/auth/mfa/verify",
            "auth",
            "Turn MFA on with the first valid code",
            json("MfaVerifyRequest"),
            vec![(200, Json(mfa_enabled))],
            &[E::InvalidMfaCode, E::Conflict],
        ),
        op(
            "POST",
            "/auth/api-keys",
            "auth",
            "Create an API key (shown once)",
            json("ApiKeyCreateRequest"),
            vec![(201, Json(api_key))],
            &[E::Conflict],
        ),
        op(
            "GET",
            "/auth/api-keys",
            "auth",
            "List the caller's API keys",
            NoBody,
            vec![(200, Json(api_keys))],
            &[],
        )
        .with_query(&[("all", "boolean")]),
        op(
            "DELETE",
            "/auth/api-keys/{id}",
            "auth",
            "Revoke an API key",
            NoBody,
            vec![(204, Empty)],
            &[E::Conflict],
        ),
        op(
            "GET",
            "/auth/me",
            "account",
            "The caller's account: profile, roles, permissions, MFA state",
            NoBody,
            vec![(200, Json(account))],
            &[],
        ),
        op(
            "GET",
            "/auth/sessions",
            "account",
            "The caller's live sessions (one per login)",
            NoBody,
            vec![(200, Json(sessions))],
            &[],
        ),
        op(
            "DELETE",
            "/auth/sessions/{id}",
            "account",
            "End one of the caller's sessions",
            NoBody,
            vec![(204, Empty)],
            &[],
        ),
        op(
            "GET",
            "/.well-known/jwks.json",
            "auth",
            "The public token signing keys",
            NoBody,
            vec![(200, JwkSet)],
            &[],
        ),
        op(
            "POST",
            "/api/v1/analysis",
            "analysis",
            "Upload a photo for mug positioning",
            Multipart,
            vec![(200, Json(analysis)), (202, Json(analysis))],
            &[E::InvalidImageFormat, E::ImageTooLarge, E::Conflict],
        )
        .with_query(WAIT),
        op(
            "GET",
            "/api/v1/analysis",
            "analysis",
            "List analyses, newest first",
            NoBody,
            vec![(200, Json(analyses))],
            &[],
        )
        .with_query(OWNED_PAGE),
        op(
            "GET",
            "/api/v1/analysis/{id}",
            "analysis",
            "One analysis",
            NoBody,
            vec![(200, Json(analysis))],
            &[],
        )
        .with_query(WAIT),
        op(
            "DELETE",
            "/api/v1/analysis/{id}",
            "analysis",
            "Delete an analysis",
            NoBody,
            vec![(204, Empty)],
            &[E::Conflict],
        ),
        op(
            "POST",
            "/api/v1/analysis/{id}/feedback",
            "analysis",
            "Say whether an analysis was right",
            json("AnalysisFeedbackRequest"),
            vec![(200, Json(analysis))],
            &[E::Conflict],
        ),
        op(
            "GET",
            "/api/v1/rules",
            "rules",
            "List rules, highest priority first",
            NoBody,
            vec![(200, Json(rules))],
            &[],
        )
        .with_query(&[
            ("context", "string"),
            ("owner", "string"),
            ("limit", "integer"),
            ("offset", "integer"),
        ]),
        op(
            "POST",
            "/api/v1/rules",
            "rules",
            "Create a rule",
            json("RuleDefinition"),
            vec![(201, Json(rule))],
            &[E::Conflict],
        ),
        op(
            "GET",
            "/api/v1/rules/{id}",
            "rules",
            "One rule",
            NoBody,
            vec![(200, Json(rule))],
            &[],
        ),
        op(
            "PATCH",
            "/api/v1/rules/{id}",
            "rules",
            "Change a rule",
            json("RulePatch"),
            vec![(200, Json(rule))],
            &[],
        ),
        op(
            "DELETE",
            "/api/v1/rules/{id}",
            "rules",
            "Delete a rule",
            NoBody,
            vec![(204, Empty)],
            &[],
        ),
        op(
            "POST",
            "/api/v1/rules/evaluate",
            "rules",
            "Evaluate rules against analysis facts",
            json("RuleEvaluateRequest"),
            vec![(200, Json(evaluation))],
            &[],
        ),
        op(
            "POST",
            "/api/v1/rules/natural-language",
            "rules",
            "Draft a rule from a sentence",
            json("NaturalLanguageRuleRequest"),
            vec![(200, Json(drafted_rule)), (201, Json(drafted_rule))],
            &[E::Conflict],
        ),
        op(
            "POST",
            "/api/v1/process_points",
            "ncs",
            "Cluster a batch of points of one stream",
            json("ProcessPointsRequest"),
            vec![(200, Json(points_result))],
            &[
                E::EmptyPoints,
                E::TooManyPoints,
                E::DimensionMismatch,
                E::InvalidInput,
                E::Conflict,
            ],
        ),
        op(
            "GET",
            "/api/v1/clusters_summary",
            "ncs",
            "The clusters of a stream",
            NoBody,
            vec![(200, Json(clusters_summary))],
            &[E::NotFound, E::ValidationFailed],
        )
        .with_query(&[
            ("stream", "string"),
            ("min_size", "integer"),
            ("health_status", "string"),
            ("limit", "integer"),
            ("offset", "integer"),
        ]),
        op(
            "GET",
            "/api/v1/algorithm_status",
            "ncs",
            "The state of a stream's algorithm",
            NoBody,
            vec![(200, Json(algorithm_status))],
            &[E::NotFound, E::ValidationFailed],
        )
        .with_query(STREAM),
        op(
            "GET",
            "/api/v1/jobs/{id}",
            "ncs",
            "The result of a process_points that outran its timeout",
            NoBody,
            vec![(200, Json(points_result)), (202, Json(job))],
            &[
                E::Conflict,
                E::ValidationFailed,
                E::EmptyPoints,
                E::TooManyPoints,
                E::DimensionMismatch,
                E::InvalidInput,
            ],
        ),
        op(
            "GET",
            "/api/v1/streams",
            "ncs",
            "The caller's streams",
            NoBody,
            vec![(200, Json(streams))],
            &[],
        ),
        op(
            "DELETE",
            "/api/v1/streams/{stream}",
            "ncs",
            "Forget one of the caller's streams",
            NoBody,
            vec![(204, Empty)],
            &[E::ValidationFailed],
        ),
        op(
            "POST",
            "/api/v1/ws-tickets",
            "ncs",
            "A single-use ticket, good for 30 s, that opens one stream's WebSocket",
            json("StreamTicketRequest"),
            vec![(201, Json(stream_ticket))],
            &[],
        ),
        op(
            "GET",
            "/api/v1/streams/{stream}/ws",
            "ncs",
            "Open the stream's WebSocket with a ticket (the Origin must be allowed)",
            NoBody,
            vec![(101, Upgrade)],
            &[
                E::InvalidTicket,
                E::CorsOriginDenied,
                E::UpgradeRequired,
                E::NotImplemented,
            ],
        )
        .with_query(&[("ticket", "string")]),
        op(
            "GET",
            "/api/v1/servers",
            "servers",
            "The GPU workers",
            NoBody,
            vec![(200, Json(servers))],
            &[],
        ),
        op(
            "POST",
            "/api/v1/servers/{id}/pause",
            "servers",
            "Pause a worker",
            NoBody,
            vec![(202, Json(server_request))],
            &[],
        ),
        op(
            "POST",
            "/api/v1/servers/{id}/resume",
            "servers",
            "Resume a worker",
            NoBody,
            vec![(202, Json(server_request))],
            &[],
        ),
        op(
            "POST",
            "/api/v1/servers/{id}/drain",
            "servers",
            "Drain a worker",
            NoBody,
            vec![(202, Json(server_request))],
            &[],
        ),
        op(
            "GET",
            "/api/v1/admin/audit",
            "admin",
            "The audit trail",
            NoBody,
            vec![(200, Json(audit))],
            &[],
        )
        .with_query(&[
            ("type", "string"),
            ("principal", "string"),
            ("ip", "string"),
            ("from", "integer"),
            ("to", "integer"),
            ("limit", "integer"),
            ("offset", "integer"),
        ]),
        op(
            "GET",
            "/api/v1/admin/users",
            "admin",
            "The users",
            NoBody,
            vec![(200, Json(users))],
            &[],
        )
        .with_query(PAGE),
        op(
            "GET",
            "/api/v1/admin/reports/access",
            "admin",
            "The compliance report of a window: access events by principal and type, and totals",
            NoBody,
            vec![(200, Json(access_report)), (200, Csv)],
            &[],
        )
        .with_query(&[("from", "integer"), ("to", "integer"), ("format", "string")]),
        op(
            "POST",
            "/api/v1/admin/users",
            "admin",
            "Create an account (its password must be changed at the first login)",
            json("UserCreateRequest"),
            vec![(201, Json(created_account))],
            &[E::Conflict, E::WeakPassword],
        ),
        op(
            "PATCH",
            "/api/v1/admin/users/{id}",
            "admin",
            "Change an account's roles or disable it (ends its credentials)",
            json("UserPatch"),
            vec![(200, Json(account))],
            &[E::Conflict],
        ),
        op(
            "DELETE",
            "/api/v1/admin/users/{id}",
            "admin",
            "Erase an account",
            NoBody,
            vec![(204, Empty)],
            &[],
        ),
        op(
            "POST",
            "/api/v1/admin/users/{id}/password-reset",
            "admin",
            "A temporary password for an account (ends its credentials)",
            NoBody,
            vec![(200, Json(password_reset))],
            &[],
        ),
        op(
            "GET",
            "/api/v1/admin/users/{id}/sessions",
            "admin",
            "An account's live sessions",
            NoBody,
            vec![(200, Json(sessions))],
            &[],
        ),
        op(
            "DELETE",
            "/api/v1/admin/users/{id}/sessions",
            "admin",
            "End every session and token of an account",
            NoBody,
            vec![(204, Empty)],
            &[],
        ),
        op(
            "PATCH",
            "/api/v1/me",
            "account",
            "Rectify the caller's email (GDPR)",
            json("AccountPatch"),
            vec![(200, Json(account))],
            &[],
        ),
        op(
            "GET",
            "/api/v1/me/export",
            "account",
            "Everything stored about the caller (GDPR)",
            NoBody,
            vec![(200, Json(export))],
            &[],
        ),
        op(
            "DELETE",
            "/api/v1/me",
            "account",
            "Erase the caller's account (GDPR)",
            NoBody,
            vec![(204, Empty)],
            &[],
        ),
        op(
            "GET",
            "/health",
            "operations",
            "Health, the database included",
            NoBody,
            vec![(200, Json(health)), (503, Json(health))],
            &[],
        ),
        op(
            "GET",
            "/ready",
            "operations",
            "Readiness: the database and a worker for every kernel kind",
            NoBody,
            vec![(200, Json(ready)), (503, Json(ready))],
            &[],
        ),
        op(
            "GET",
            "/api/v1/version",
            "operations",
            "Versions of the service, the API and the algorithm",
            NoBody,
            vec![(200, Json(version))],
            &[],
        ),
        op(
            "GET",
            "/metrics",
            "operations",
            "Prometheus metrics",
            NoBody,
            vec![(200, Text)],
            &[],
        ),
        op(
            "GET",
            "/openapi.json",
            "operations",
            "This document",
            NoBody,
            vec![(200, Json(openapi))],
            &[],
        ),
    ]
}
