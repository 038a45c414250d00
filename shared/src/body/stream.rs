//! The live NCS stream: the body of `POST /api/v1/ws-tickets` and the messages a client sends
//! over a stream's WebSocket (`GET /api/v1/streams/{stream}/ws`). A points message becomes the
//! body of one `process_points` request, which the edge then checks like any other.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::check::{Validate, check_charset, invalid};
use super::points::{MAX_STREAM_CHARS, is_stream_char};
use crate::problem::Problem;

/// The route that hands out socket tickets.
pub const TICKETS_PATH: &str = "/api/v1/ws-tickets";

/// The route (as the table writes it) that upgrades to a stream's WebSocket.
pub const SOCKET_ROUTE: &str = "/api/v1/streams/{stream}/ws";

/// Most characters of a message id.
pub const MAX_MESSAGE_ID_CHARS: usize = 64;

/// A ticket for one stream's WebSocket.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamTicketRequest {
    /// The stream the socket will carry: 1 to 64 characters of `[A-Za-z0-9_.:-]`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_.:-]{1,64}$"))]
    pub stream: String,
}

impl Validate for StreamTicketRequest {
    fn validate(&self) -> Result<(), Problem> {
        check_stream(&self.stream)
    }
}

/// Refuses a stream name outside 1 to 64 characters of `[A-Za-z0-9_.:-]`.
pub fn check_stream(stream: &str) -> Result<(), Problem> {
    check_charset(
        "stream",
        stream,
        1,
        MAX_STREAM_CHARS,
        is_stream_char,
        "letters, digits, '_', '.', ':' and '-'",
    )
}

/// A client's message over a stream's socket.
#[derive(Debug, Clone, PartialEq)]
pub enum SocketMessage {
    /// A batch: its id and the `process_points` body it stands for (the socket's stream set).
    Points { id: String, body: Vec<u8> },
    /// A question for the stream's `algorithm_status`, with the client's optional id.
    Status { id: Option<String> },
}

/// A message that could not be read: the id it carried, if one could be read, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketMessageError {
    pub id: Option<String>,
    pub problem: Problem,
}

impl SocketMessage {
    /// Reads `text` as a message for `stream`: `{"type":"points","id":…,"points":…}` (with any
    /// other field of a `process_points` body but `stream`, which the path names) or
    /// `{"type":"status"}` with an optional `id`. The points body is not validated here; the
    /// edge validates it as the `process_points` body it becomes.
    pub fn parse(text: &str, stream: &str) -> Result<SocketMessage, SocketMessageError> {
        let mut fields: Map<String, Value> =
            serde_json::from_str(text).map_err(|e| SocketMessageError {
                id: None,
                problem: invalid("message", format!("not a JSON object: {e}")),
            })?;
        let id = match fields.remove("id") {
            None => None,
            Some(Value::String(id)) => Some(id),
            Some(_) => return Err(unread(None, invalid("id", "must be a string"))),
        };
        if let Some(id) = &id {
            check_charset(
                "id",
                id,
                1,
                MAX_MESSAGE_ID_CHARS,
                is_stream_char,
                "letters, digits, '_', '.', ':' and '-'",
            )
            .map_err(|problem| unread(None, problem))?;
        }
        let kind = match fields.remove("type") {
            Some(Value::String(kind)) => kind,
            _ => {
                return Err(unread(
                    id,
                    invalid("type", "must be \"points\" or \"status\""),
                ));
            }
        };
        match kind.as_str() {
            "points" => {
                let Some(id) = id else {
                    return Err(unread(None, invalid("id", "a points message needs an id")));
                };
                if fields.contains_key("stream") {
                    return Err(unread(
                        Some(id),
                        invalid("stream", "the socket's path names the stream"),
                    ));
                }
                fields.insert("stream".to_owned(), Value::String(stream.to_owned()));
                let body =
                    serde_json::to_vec(&fields).expect("a JSON map serializes; this is a bug");
                Ok(SocketMessage::Points { id, body })
            }
            "status" => match fields.keys().next() {
                Some(field) => {
                    let field = field.clone();
                    Err(unread(
                        id,
                        invalid(field, "a status message has no other field"),
                    ))
                }
                None => Ok(SocketMessage::Status { id }),
            },
            _ => Err(unread(
                id,
                invalid("type", "must be \"points\" or \"status\""),
            )),
        }
    }
}

fn unread(id: Option<String>, problem: Problem) -> SocketMessageError {
    SocketMessageError { id, problem }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn a_points_message_becomes_a_body_for_the_sockets_stream() {
        let parsed = SocketMessage::parse(
            r#"{"type":"points","id":"b-1","points":[[1.0,2.0]],"batch_mode":true}"#,
            "s1",
        )
        .unwrap();
        let SocketMessage::Points { id, body } = parsed else {
            panic!("a points message")
        };
        assert_eq!(id, "b-1");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["stream"], "s1");
        assert_eq!(body["points"][0][1], 2.0);
        assert_eq!(body["batch_mode"], true);
        assert!(body.get("type").is_none() && body.get("id").is_none());
    }

    #[test]
    fn refusals_keep_the_id_they_could_read() {
        let error = SocketMessage::parse(r#"{"type":"points","id":"x","stream":"other"}"#, "s")
            .unwrap_err();
        assert_eq!(error.id.as_deref(), Some("x"));
        assert_eq!(error.problem.code, ErrorCode::ValidationFailed);
        let error = SocketMessage::parse(r#"{"type":"points","points":[[1]]}"#, "s").unwrap_err();
        assert_eq!(error.id, None);
        let error = SocketMessage::parse(r#"{"type":"points","id":"<script>"}"#, "s").unwrap_err();
        assert_eq!(error.id, None, "an id outside its charset is not echoed");
        let error = SocketMessage::parse(r#"{"type":"drop","id":"y"}"#, "s").unwrap_err();
        assert_eq!(error.id.as_deref(), Some("y"));
        assert!(SocketMessage::parse("[1]", "s").is_err());
    }

    #[test]
    fn a_status_message_takes_only_an_id() {
        assert_eq!(
            SocketMessage::parse(r#"{"type":"status"}"#, "s").unwrap(),
            SocketMessage::Status { id: None }
        );
        assert!(SocketMessage::parse(r#"{"type":"status","points":[]}"#, "s").is_err());
    }

    #[test]
    fn ticket_requests_name_a_plain_stream() {
        assert!(
            StreamTicketRequest {
                stream: "cam-1:a".into()
            }
            .validate()
            .is_ok()
        );
        assert!(
            StreamTicketRequest {
                stream: "a/b".into()
            }
            .validate()
            .is_err()
        );
        assert!(
            StreamTicketRequest {
                stream: String::new()
            }
            .validate()
            .is_err()
        );
    }
}
