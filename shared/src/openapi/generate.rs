//! Builds the OpenAPI 3.1 document from the route table, the body types and the error codes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

use super::operations::{self, Operation, Reply, Request};
use crate::body::analysis::MAX_RULES_CONTEXT_CHARS;
use crate::body::{
    AccountPatch, AnalysisFeedbackRequest, ApiKeyCreateRequest, LoginRequest, LogoutRequest,
    MfaVerifyRequest, NaturalLanguageRuleRequest, PasswordChangeRequest, ProcessPointsRequest,
    RefreshRequest, RuleDefinition, RuleEvaluateRequest, RulePatch, StreamTicketRequest,
    UserCreateRequest, UserPatch,
};
use crate::problem::{ErrorCode, PROBLEM_CONTENT_TYPE, Problem};
use crate::route_policy::{Auth, Route, RoutePolicy};
use crate::upload::MAX_UPLOAD_BYTES;

/// The codes a token route refuses a caller's credentials with.
const CREDENTIAL_CODES: &[ErrorCode] = &[
    ErrorCode::MissingCredentials,
    ErrorCode::InvalidToken,
    ErrorCode::ExpiredToken,
    ErrorCode::RevokedToken,
    ErrorCode::RevokedKey,
    ErrorCode::InvalidApiKey,
    ErrorCode::RevokedApiKey,
];

/// The codes any request may meet, whatever its route: the intrusion check (a probe route never
/// meets `IP_BLOCKED`), and the edge's and the backend's own failures.
const EVERY_ROUTE_CODES: &[ErrorCode] = &[
    ErrorCode::BadRequest,
    ErrorCode::SuspiciousRequest,
    ErrorCode::IpBlocked,
    ErrorCode::Internal,
    ErrorCode::UpstreamUnavailable,
    ErrorCode::ServiceUnavailable,
    ErrorCode::ClientAddressUnknown,
    ErrorCode::UpstreamTimeout,
];

/// The codes a route taking a body may refuse it with.
const BODY_CODES: &[ErrorCode] = &[
    ErrorCode::PayloadTooLarge,
    ErrorCode::UnsupportedMediaType,
    ErrorCode::InvalidJson,
    ErrorCode::UnknownField,
    ErrorCode::ValidationFailed,
];

/// The rate-limit header fields of [`crate::rate_limit`], and what each says.
const RATE_HEADERS: &[(&str, &str, &str)] = &[
    (
        "X-RateLimit-Limit",
        "integer",
        "Requests allowed in the window of the tightest class",
    ),
    (
        "X-RateLimit-Remaining",
        "integer",
        "Requests left in that window",
    ),
    (
        "X-RateLimit-Reset",
        "integer",
        "Seconds until the window is full again",
    ),
    (
        "RateLimit",
        "string",
        "IETF RateLimit field: `NAME;r=REMAINING;t=RESET`",
    ),
    (
        "RateLimit-Policy",
        "string",
        "IETF RateLimit-Policy field: `NAME;q=LIMIT;w=WINDOW`",
    ),
];

/// The document generated from `policy` (the default route table for the committed one).
///
/// Panics when a route of the table has no description in `operations`, or a description has
/// no route: the document covers the table exactly.
pub fn document(policy: &RoutePolicy) -> Value {
    let described = operations::all();
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for route in policy.routes() {
        let operation = described
            .iter()
            .find(|op| op.method == route.method && op.path == route.path)
            .unwrap_or_else(|| {
                panic!(
                    "route {} {} has no description in shared/src/openapi/operations.rs",
                    route.method, route.path
                )
            });
        paths.entry(route.path.clone()).or_default().insert(
            route.method.to_ascii_lowercase(),
            operation_of(policy, route, operation),
        );
    }
    for op in &described {
        assert!(
            policy
                .routes()
                .iter()
                .any(|route| route.method == op.method && route.path == op.path),
            "{} {} is described but not in the route table",
            op.method,
            op.path
        );
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "H200 System public API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Served at the edge. Every refusal is RFC 9457 `application/problem+json` with a stable `code`; every response carries `X-Request-ID`; rate-limited routes carry the rate-limit fields.",
        },
        "servers": [{ "url": "/" }],
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "An access token from `POST /auth/login` (EdDSA by default)" },
                "apiKey": { "type": "apiKey", "in": "header", "name": "X-API-Key",
                    "description": "An `ncs_` key from `POST /auth/api-keys`" },
            },
            "headers": headers(),
        },
    })
}

/// The codes `route` may answer with, by status: what its policy implies plus what its handler
/// names.
pub fn codes_of(
    route: &Route,
    handler_codes: &[ErrorCode],
) -> BTreeMap<u16, BTreeSet<&'static str>> {
    let mut codes: Vec<ErrorCode> = EVERY_ROUTE_CODES.to_vec();
    if route.probe {
        codes.retain(|code| *code != ErrorCode::IpBlocked);
    }
    if route.auth != Auth::Public {
        codes.extend_from_slice(CREDENTIAL_CODES);
    }
    if route.auth.permission().is_some() || route.admin_permission.is_some() {
        codes.push(ErrorCode::InsufficientPermissions);
    }
    if !route.rate_classes.is_empty() {
        codes.push(ErrorCode::RateLimitExceeded);
    }
    if route.body_limit > 0 {
        codes.extend_from_slice(BODY_CODES);
    }
    if route.path.contains('{') {
        codes.push(ErrorCode::NotFound);
    }
    codes.extend_from_slice(handler_codes);
    let mut by_status: BTreeMap<u16, BTreeSet<&'static str>> = BTreeMap::new();
    for code in codes {
        by_status
            .entry(code.status())
            .or_default()
            .insert(code.as_str());
    }
    by_status
}

fn operation_of(policy: &RoutePolicy, route: &Route, op: &Operation) -> Value {
    let rate_limited = !route.rate_classes.is_empty();
    let mut responses = Map::new();
    for (status, reply) in &op.success {
        // Two replies of one status (JSON or CSV) are two media types of one response.
        let mut response = responses.remove(&status.to_string()).unwrap_or_else(|| {
            json!({
                "description": "Success",
                "headers": response_headers(rate_limited, false),
            })
        });
        match reply {
            Reply::Empty => {}
            Reply::Json(schema) => {
                response["content"]["application/json"] = json!({ "schema": schema() });
            }
            Reply::JwkSet => {
                response["content"] =
                    json!({ "application/jwk-set+json": { "schema": operations::jwks() } });
            }
            Reply::Csv => {
                response["content"]["text/csv"] = json!({ "schema": { "type": "string" } });
            }
            Reply::Text => {
                response["content"] = json!({ "text/plain": { "schema": { "type": "string" } } });
            }
            Reply::Upgrade => {
                response["description"] = json!("Switching Protocols: the WebSocket is open");
            }
        }
        responses.insert(status.to_string(), response);
    }
    let mut handler_codes = op.codes.to_vec();
    if !op.query.is_empty() {
        // A query parameter of the wrong type, or one the route does not read.
        handler_codes.push(ErrorCode::ValidationFailed);
    }
    for (status, codes) in codes_of(route, &handler_codes) {
        let titles: Vec<String> = codes
            .iter()
            .filter_map(|name| ErrorCode::from_name(name))
            .map(|code| format!("`{}`: {}", code.as_str(), code.title()))
            .collect();
        let problem = json!({
            "description": titles.join("; "),
            "headers": response_headers(rate_limited && status == 429, status == 429),
            "content": { PROBLEM_CONTENT_TYPE: { "schema": {
                    "allOf": [
                        { "$ref": "#/components/schemas/Problem" },
                        { "properties": {
                            "status": { "const": status },
                            "code": { "enum": codes },
                        } },
                    ],
                } } },
        });
        match responses.get_mut(&status.to_string()) {
            Some(own) => {
                own["description"] =
                    json!(format!("The handler's answer, or {}", titles.join("; ")));
                if let (Some(content), Some(problems)) = (
                    own.get_mut("content").and_then(Value::as_object_mut),
                    problem["content"].as_object(),
                ) {
                    content.extend(problems.clone());
                }
            }
            None => {
                responses.insert(status.to_string(), problem);
            }
        }
    }
    let classes: Vec<String> = policy
        .classes_of(route)
        .map(|class| {
            format!(
                "`{}` ({} per {} s per {:?})",
                class.name, class.limit, class.period_secs, class.key
            )
            .to_lowercase()
        })
        .collect();
    let access = match route.auth {
        Auth::Public => "public".to_owned(),
        Auth::Token => "any authenticated caller".to_owned(),
        Auth::Permission(permission) => format!("permission `{}`", permission.as_str()),
    };
    let mut description = format!("Access: {access}.");
    if let Some(admin) = route.admin_permission {
        description.push_str(&format!(
            " Other principals' items need `{}`.",
            admin.as_str()
        ));
    }
    if !classes.is_empty() {
        description.push_str(&format!(" Rate classes: {}.", classes.join(", ")));
    }
    let mut operation = json!({
        "operationId": operation_id(route),
        "tags": [op.tag],
        "summary": op.summary,
        "description": description,
        "responses": responses,
    });
    operation["security"] = match route.auth {
        Auth::Public => json!([]),
        Auth::Token | Auth::Permission(_) => json!([{ "bearer": [] }, { "apiKey": [] }]),
    };
    let mut parameters: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            json!({
                "name": name, "in": "path", "required": true,
                "schema": { "type": "string", "pattern": "^[A-Za-z0-9._~-]+$" },
            })
        })
        .collect();
    parameters.extend(op.query.iter().map(|(name, kind)| {
        json!({ "name": name, "in": "query", "required": false, "schema": { "type": kind } })
    }));
    if !parameters.is_empty() {
        operation["parameters"] = json!(parameters);
    }
    if let Some(body) = request_body(&op.request) {
        operation["requestBody"] = body;
    }
    operation
}

fn request_body(request: &Request) -> Option<Value> {
    let schema = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}") });
    let content = match request {
        Request::None => return None,
        Request::Json(name) => json!({ "application/json": { "schema": schema(name) } }),
        Request::JsonOrForm(name) => json!({
            "application/json": { "schema": schema(name) },
            "application/x-www-form-urlencoded": { "schema": schema(name) },
        }),
        Request::Multipart => json!({ "multipart/form-data": { "schema": upload_schema() } }),
    };
    Some(json!({ "required": true, "content": content }))
}

/// The form of `POST /api/v1/analysis`: the fields [`crate::body::AnalysisUpload`] reads.
fn upload_schema() -> Value {
    json!({
        "type": "object",
        "required": ["image"],
        "properties": {
            "image": { "type": "string", "contentMediaType": "application/octet-stream",
                "description": format!("JPEG, PNG or WebP, at most {MAX_UPLOAD_BYTES} bytes and 4096 px a side") },
            "confidence_threshold": { "type": "string", "description": "0 to 1" },
            "rules_context": { "type": "string",
                "pattern": format!("^[A-Za-z0-9_\\- ]{{1,{MAX_RULES_CONTEXT_CHARS}}}$") },
            "include_feedback": { "type": "string", "enum": ["true", "false"] },
            "calibration_mm_per_pixel": { "type": "string", "description": "above 0, at most 100" },
            "reference_point": { "type": "string", "description": "`x,y` in pixels" },
        },
    })
}

fn operation_id(route: &Route) -> String {
    let mut id = route.method.to_ascii_lowercase();
    for segment in route.path.split('/').filter(|s| !s.is_empty()) {
        let word = segment.trim_start_matches('{').trim_end_matches('}');
        id.push('_');
        id.extend(
            word.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
        );
    }
    id
}

/// `X-Request-ID` on every answer; the rate-limit fields on successes and 429s of a rate-limited
/// route (refusals after the rate check carry them too); `Retry-After` on a 429.
fn response_headers(rate_limited: bool, refused_by_rate: bool) -> Value {
    let mut headers = Map::new();
    headers.insert(
        "X-Request-ID".into(),
        json!({ "$ref": "#/components/headers/X-Request-ID" }),
    );
    if rate_limited {
        for (name, _, _) in RATE_HEADERS {
            headers.insert(
                (*name).into(),
                json!({ "$ref": format!("#/components/headers/{name}") }),
            );
        }
    }
    if refused_by_rate {
        headers.insert(
            "Retry-After".into(),
            json!({ "$ref": "#/components/headers/Retry-After" }),
        );
    }
    Value::Object(headers)
}

fn headers() -> Value {
    let mut headers = Map::new();
    headers.insert(
        "X-Request-ID".into(),
        json!({ "description": "The request's id, also in problem bodies", "schema": { "type": "string" } }),
    );
    for (name, kind, description) in RATE_HEADERS {
        headers.insert(
            (*name).into(),
            json!({ "description": description, "schema": { "type": kind } }),
        );
    }
    headers.insert(
        "Retry-After".into(),
        json!({ "description": "Seconds to wait before retrying (at least 1)", "schema": { "type": "integer", "minimum": 1 } }),
    );
    Value::Object(headers)
}

/// Registers `T` and the schemas it refers to.
fn add<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
}

fn schemas() -> Value {
    let mut found = Vec::new();
    add::<Problem>(&mut found);
    add::<LoginRequest>(&mut found);
    add::<RefreshRequest>(&mut found);
    add::<LogoutRequest>(&mut found);
    add::<PasswordChangeRequest>(&mut found);
    add::<MfaVerifyRequest>(&mut found);
    add::<ApiKeyCreateRequest>(&mut found);
    add::<AnalysisFeedbackRequest>(&mut found);
    add::<RuleDefinition>(&mut found);
    add::<RulePatch>(&mut found);
    add::<RuleEvaluateRequest>(&mut found);
    add::<NaturalLanguageRuleRequest>(&mut found);
    add::<ProcessPointsRequest>(&mut found);
    add::<StreamTicketRequest>(&mut found);
    add::<AccountPatch>(&mut found);
    add::<UserCreateRequest>(&mut found);
    add::<UserPatch>(&mut found);
    let sorted: BTreeMap<String, RefOr<Schema>> = found.into_iter().collect();
    let mut schemas = serde_json::to_value(sorted).expect("schemas serialize; this is a bug");
    // The codes as they go on the wire: the derive cannot read the renames the `error_codes!`
    // macro writes, so the list comes from `ErrorCode::ALL` itself.
    let wire_names: Vec<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
    schemas["ErrorCode"] = json!({
        "type": "string",
        "description": "A stable, machine-readable reason for refusing a request",
        "enum": wire_names,
    });
    schemas
}
