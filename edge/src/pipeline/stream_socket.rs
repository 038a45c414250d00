//! A stream's WebSocket through the pipeline: the ticket route, the admission of an upgrade
//! (origin, ticket, credential, permission, rate classes), and each message run as the
//! `process_points` (or `algorithm_status`) request it stands for, through [`Pipeline::handle`],
//! so a message meets every check an HTTP request meets and is forwarded as a signed request.
//! The runtime adapters hold the socket itself (frames, limits, ping, the recheck timer).

use shared::ErrorCode;
use shared::body::stream::SOCKET_ROUTE;
use shared::body::{SocketMessage, StreamTicketRequest, parse_valid};
use shared::headers::REQUEST_ID_HEADER;
use shared::problem::Problem;
use shared::route_policy::{Resolution, Route};

use super::{Exchange, Pipeline};
use crate::message::{EdgeRequest, EdgeResponse};
use crate::ports::{BufferedBody, EdgeState, RateStore, Upstream};
use crate::stage::authenticate::{self, Credentials};
use crate::stage::{Refusal, authorize, request_id, respond};
use crate::stream_ticket::{self, SocketCredential, TICKET_TTL_MS};

/// The route a points message stands for.
const POINTS_PATH: &str = "/api/v1/process_points";
/// The route a status message stands for.
const STATUS_PATH: &str = "/api/v1/algorithm_status";

/// An admitted socket: who it acts for, on which stream, and how its messages present
/// themselves. It holds the ticket's credential, so it is never logged.
pub struct StreamSocket {
    /// The upgrade request's id.
    pub request_id: String,
    pub stream: String,
    /// The principal's subject, for the per-principal socket count.
    pub subject: String,
    credential: SocketCredential,
    client_ip: String,
    user_agent: Option<String>,
}

impl std::fmt::Debug for StreamSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSocket")
            .field("request_id", &self.request_id)
            .field("stream", &self.stream)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl StreamSocket {
    /// An `error` message for a refusal of the socket's own (a message that could not be read,
    /// a revoked credential), with the message's id if one was read.
    pub fn error_message(&self, id: Option<&str>, refusal: &Refusal) -> String {
        let problem = refusal
            .problem
            .as_ref()
            .clone()
            .with_request_id(&self.request_id);
        error_message(id, &problem_fields(&problem), None)
    }

    /// A request from this socket's client to `path` with `body`, presenting its credential.
    fn request(&self, method: &str, path: &str, query: Option<String>, body: &[u8]) -> EdgeRequest {
        let mut headers = vec![self.credential.header()];
        if !body.is_empty() {
            headers.push(("content-type".into(), "application/json".into()));
            headers.push(("content-length".into(), body.len().to_string()));
        }
        if let Some(agent) = &self.user_agent {
            headers.push(("user-agent".into(), agent.clone()));
        }
        EdgeRequest {
            method: method.into(),
            path: path.into(),
            query,
            headers,
            client_ip: self.client_ip.clone(),
        }
    }
}

/// The answer to a request for the socket route that the runtime did not upgrade: a runtime
/// without inbound WebSockets (Spin) says so with 501; a plain request is told to upgrade.
pub(super) fn not_upgraded(request: &EdgeRequest) -> Refusal {
    let upgrade = request
        .header("upgrade")
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("websocket"));
    if upgrade {
        Refusal::new(ErrorCode::NotImplemented).with_detail(
            "this edge runtime cannot hold an inbound WebSocket; stream through an edge that can \
             (native or Cloudflare) or send batches to POST /api/v1/process_points",
        )
    } else {
        Refusal::new(ErrorCode::UpgradeRequired)
            .with_detail("open a WebSocket with a ticket from POST /api/v1/ws-tickets")
            .with_header("Upgrade", "websocket")
    }
}

impl<R: RateStore, S: EdgeState, U: Upstream> Pipeline<R, S, U> {
    /// `POST /api/v1/ws-tickets`, once the request passed every stage: a ticket sealing the
    /// request's credential for the stream its body names.
    pub(super) fn issue_ticket(
        &self,
        request: &EdgeRequest,
        body: &[u8],
    ) -> Result<EdgeResponse, Refusal> {
        let asked: StreamTicketRequest = parse_valid(body)?;
        let credential = match authenticate::credentials(request)? {
            Credentials::Bearer(token) => SocketCredential::Bearer(token.to_owned()),
            Credentials::ApiKey(key) => SocketCredential::ApiKey(key.as_str().to_owned()),
            Credentials::None => return Err(Refusal::new(ErrorCode::MissingCredentials)),
        };
        let ticket = stream_ticket::issue(
            &self.config.signing_key,
            credential,
            &asked.stream,
            self.clock.now_ms(),
            self.entropy(),
        );
        let answer = serde_json::json!({
            "ticket": ticket,
            "stream": asked.stream,
            "expires_in": TICKET_TTL_MS / 1000,
            "url": format!("/api/v1/streams/{}/ws?ticket={ticket}", asked.stream),
        });
        let mut response = EdgeResponse::new(201);
        response.set_header("content-type", "application/json");
        response.set_header("cache-control", "no-store");
        response.body = answer.to_string().into_bytes();
        Ok(response)
    }

    /// Admits a WebSocket upgrade of the socket route: the address is not blocked and the path
    /// and query carry no attack pattern, the `Origin` is allowed (or the edge's own), the
    /// `ticket` query parameter opens for this stream and was not used before, its credential
    /// authenticates and holds the route's permission, and the route's rate classes allow one
    /// more socket. A refusal is the problem+json answer to send instead of upgrading (audited).
    pub async fn admit_socket(&self, request: &EdgeRequest) -> Result<StreamSocket, EdgeResponse> {
        let mut exchange = Exchange {
            request_id: request_id::assign(request.header(REQUEST_ID_HEADER), self.entropy()),
            ..Exchange::default()
        };
        match self.admit(request, &mut exchange).await {
            Ok(socket) => Ok(socket),
            Err(refusal) => {
                self.audit_refusal(request, &exchange, &refusal);
                let mut response = respond::refusal_response(&refusal, &exchange.request_id);
                let cors = self.config.cors.actual_headers(request.header("origin"));
                respond::finish(
                    &mut response,
                    &exchange.request_id,
                    &cors,
                    exchange.rate.as_ref(),
                );
                Err(response)
            }
        }
    }

    async fn admit(
        &self,
        request: &EdgeRequest,
        exchange: &mut Exchange,
    ) -> Result<StreamSocket, Refusal> {
        let now_ms = self.clock.now_ms();
        self.intrusion()
            .check(
                &exchange.observed(request),
                request.query.as_deref(),
                now_ms,
            )
            .await?;
        let (route, stream) = match self.config.routes.resolve(&request.method, &request.path) {
            Resolution::Found(found) if found.route.path == SOCKET_ROUTE => (
                found.route,
                found.param("stream").unwrap_or_default().to_owned(),
            ),
            _ => return Err(Refusal::new(ErrorCode::NotFound)),
        };
        self.check_socket_origin(request)?;
        let ticket = query_param(request.query.as_deref(), "ticket").ok_or_else(|| {
            Refusal::new(ErrorCode::InvalidTicket)
                .with_detail("the `ticket` query parameter is required")
        })?;
        let ticket = stream_ticket::open(&self.config.signing_key, ticket, &stream, now_ms)
            .map_err(|e| Refusal::new(ErrorCode::InvalidTicket).with_detail(e.to_string()))?;
        let uses = self
            .state
            .count_event(&ticket.use_key, 2 * TICKET_TTL_MS, now_ms)
            .await
            .map_err(super::unavailable)?;
        if uses > 1 {
            return Err(
                Refusal::new(ErrorCode::InvalidTicket).with_detail("the ticket was used already")
            );
        }
        let socket = StreamSocket {
            request_id: exchange.request_id.clone(),
            stream,
            subject: String::new(),
            credential: ticket.credential,
            client_ip: request.client_ip.clone(),
            user_agent: request.header("user-agent").map(str::to_owned),
        };
        let presented = socket.request(&request.method, &request.path, None, &[]);
        let principal = self.authenticate(&presented, route, now_ms).await?;
        exchange.subject = Some(principal.subject.clone());
        authorize::authorize(route, &principal)?;
        self.count_rate(request, route, &principal.subject, exchange, now_ms)
            .await?;
        Ok(StreamSocket {
            subject: principal.subject,
            ..socket
        })
    }

    /// The `Origin` of an upgrade must be one the CORS policy allows, or the edge's own (the
    /// console it serves); a request without one is refused, so a page of another site cannot
    /// open a socket with a ticket it obtained.
    fn check_socket_origin(&self, request: &EdgeRequest) -> Result<(), Refusal> {
        let refused = |detail: &str| Refusal::new(ErrorCode::CorsOriginDenied).with_detail(detail);
        let origin = request
            .header("origin")
            .ok_or_else(|| refused("a socket upgrade must carry an Origin"))?;
        if self.config.cors.allows_origin(origin) {
            return Ok(());
        }
        let own = request.header("host").is_some_and(|host| {
            origin.split_once("://").is_some_and(|(scheme, rest)| {
                matches!(scheme, "http" | "https") && rest.eq_ignore_ascii_case(host)
            })
        });
        if own {
            Ok(())
        } else {
            Err(refused("the origin may not open sockets here"))
        }
    }

    /// Checks that the socket's credential still authenticates and holds the socket route's
    /// permission (the deny-list, a retired signing key, a revoked or expired API key, an
    /// expired token): the runtime closes the socket when it does not. Runtimes call it on a
    /// timer, so a revocation closes idle sockets too.
    pub async fn recheck_socket(&self, socket: &StreamSocket) -> Result<(), Refusal> {
        let path = format!("/api/v1/streams/{}/ws", socket.stream);
        let Resolution::Found(found) = self.config.routes.resolve("GET", &path) else {
            return Err(Refusal::new(ErrorCode::NotFound));
        };
        let route: &Route = found.route;
        let presented = socket.request("GET", &path, None, &[]);
        let principal = self
            .authenticate(&presented, route, self.clock.now_ms())
            .await?;
        authorize::authorize(route, &principal)
    }

    /// The problem+json answer to an upgrade that was admitted but is refused after all (the
    /// runtime's own limits, such as sockets per principal), audited like any refusal.
    pub fn refuse_socket(
        &self,
        request: &EdgeRequest,
        socket: &StreamSocket,
        refusal: &Refusal,
    ) -> EdgeResponse {
        let exchange = Exchange {
            request_id: socket.request_id.clone(),
            subject: Some(socket.subject.clone()),
            rate: None,
        };
        self.audit_refusal(request, &exchange, refusal);
        let mut response = respond::refusal_response(refusal, &exchange.request_id);
        let cors = self.config.cors.actual_headers(request.header("origin"));
        respond::finish(&mut response, &exchange.request_id, &cors, None);
        response
    }

    /// Answers one text message of `socket` with the text message to send back: a points
    /// message runs as a `process_points` request and a status message as an
    /// `algorithm_status` request through [`Pipeline::handle`] (every stage, a signed request to
    /// the backend); their answers come back as `result` and `status` messages, any refusal
    /// as an `error` message carrying the problem's fields and the message's id.
    pub async fn socket_message(&self, socket: &StreamSocket, text: &str) -> String {
        let (kind, id, request, body) = match SocketMessage::parse(text, &socket.stream) {
            Ok(SocketMessage::Points { id, body }) => {
                let request = socket.request("POST", POINTS_PATH, None, &body);
                ("result", Some(id), request, body)
            }
            Ok(SocketMessage::Status { id }) => {
                let query = format!("stream={}", socket.stream);
                let request = socket.request("GET", STATUS_PATH, Some(query), &[]);
                ("status", id, request, Vec::new())
            }
            Err(error) => {
                return socket.error_message(error.id.as_deref(), &Refusal::from(error.problem));
            }
        };
        let response = self.handle(request, BufferedBody::new(body)).await;
        if (200..300).contains(&response.status) {
            return server_message(kind, id.as_deref(), &response.body);
        }
        error_message(
            id.as_deref(),
            &response.body,
            response.header("retry-after"),
        )
    }
}

/// The value of `name` in a query string (not percent-decoded: a ticket is base64url).
fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

fn problem_fields(problem: &Problem) -> Vec<u8> {
    serde_json::to_vec(problem).expect("a problem serializes; this is a bug")
}

/// `{"type":kind,"id":id,…}` followed by the members of the JSON object `answer`, spliced
/// rather than parsed: a result of ten thousand points is not decoded and encoded again.
fn server_message(kind: &str, id: Option<&str>, answer: &[u8]) -> String {
    let mut message = format!("{{\"type\":\"{kind}\"");
    if let Some(id) = id {
        message.push_str(",\"id\":");
        message.push_str(&serde_json::Value::from(id).to_string());
    }
    let members = std::str::from_utf8(answer)
        .ok()
        .map(str::trim)
        .and_then(|object| object.strip_prefix('{'))
        .and_then(|rest| rest.strip_suffix('}'))
        .map(str::trim);
    match members {
        Some("") => {}
        Some(members) => {
            message.push(',');
            message.push_str(members);
        }
        None => {
            message.push_str(",\"body\":");
            message.push_str(&serde_json::Value::from(String::from_utf8_lossy(answer)).to_string());
        }
    }
    message.push('}');
    message
}

/// An `error` message: the members of the problem document `problem` (as the pipeline or the
/// backend answered it) after the message's id, its `type` URI as `problem_type` (the message's
/// own `type` is `error`), and for a rate refusal `retry_after` in seconds.
fn error_message(id: Option<&str>, problem: &[u8], retry_after: Option<&str>) -> String {
    let mut message = serde_json::Map::new();
    message.insert("type".into(), "error".into());
    if let Some(id) = id {
        message.insert("id".into(), id.into());
    }
    match serde_json::from_slice::<serde_json::Value>(problem) {
        Ok(serde_json::Value::Object(fields)) => {
            for (name, value) in fields {
                let name = if name == "type" {
                    "problem_type".to_owned()
                } else {
                    name
                };
                message.entry(name).or_insert(value);
            }
        }
        _ => {
            message.insert(
                "body".into(),
                String::from_utf8_lossy(problem).into_owned().into(),
            );
        }
    }
    if let Some(seconds) = retry_after.and_then(|v| v.trim().parse::<u64>().ok()) {
        message.insert("retry_after".into(), seconds.into());
    }
    serde_json::Value::Object(message).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_spliced_after_type_and_id() {
        let message = server_message("result", Some("b\"1"), br#"{"results":[1],"n":2}"#);
        let value: serde_json::Value = serde_json::from_str(&message).unwrap();
        assert_eq!(value["type"], "result");
        assert_eq!(value["id"], "b\"1");
        assert_eq!(value["results"][0], 1);
        assert_eq!(
            server_message("status", None, b"{}"),
            r#"{"type":"status"}"#
        );
        let odd: serde_json::Value =
            serde_json::from_str(&server_message("result", None, b"[1]")).unwrap();
        assert_eq!(odd["body"], "[1]");
    }

    #[test]
    fn errors_carry_the_retry_delay() {
        let message = error_message(
            Some("x"),
            br#"{"type":"urn:h200:problem:rate-limit-exceeded","code":"RATE_LIMIT_EXCEEDED"}"#,
            Some("3"),
        );
        let value: serde_json::Value = serde_json::from_str(&message).unwrap();
        assert_eq!(value["type"], "error");
        assert_eq!(value["id"], "x");
        assert_eq!(
            value["problem_type"],
            "urn:h200:problem:rate-limit-exceeded"
        );
        assert_eq!(value["code"], "RATE_LIMIT_EXCEEDED");
        assert_eq!(value["retry_after"], 3);
    }

    #[test]
    fn only_an_upgrade_hears_that_the_runtime_cannot_hold_sockets() {
        let mut request = EdgeRequest {
            method: "GET".into(),
            path: "/api/v1/streams/s/ws".into(),
            query: None,
            headers: vec![],
            client_ip: "10.0.0.1".into(),
        };
        assert_eq!(not_upgraded(&request).code(), ErrorCode::UpgradeRequired);
        request.headers.push(("upgrade".into(), "websocket".into()));
        assert_eq!(not_upgraded(&request).code(), ErrorCode::NotImplemented);
    }

    #[test]
    fn query_params_are_found_by_name() {
        assert_eq!(query_param(Some("a=1&ticket=xyz"), "ticket"), Some("xyz"));
        assert_eq!(query_param(Some("ticket="), "ticket"), None);
        assert_eq!(query_param(None, "ticket"), None);
    }
}
