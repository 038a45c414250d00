//! Stream sockets on the native edge: axum's WebSocket upgrade behind the pipeline's admission
//! ([`edge::pipeline::Pipeline::admit_socket`]), and one socket's loop: messages read in order
//! into a bounded queue (when it is full the socket is not read, so TCP pushes back on the
//! client), answered one at a time by [`edge::pipeline::Pipeline::socket_message`] (so results
//! leave in the order batches came and a stream's points reach the backend in order), pings
//! while nothing is heard, and a recheck of the credential on a timer that closes the socket
//! once it is revoked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use edge::message::EdgeRequest;
use edge::pipeline::StreamSocket;
use edge::stage::Refusal;
use futures_util::{SinkExt, StreamExt};
use shared::ErrorCode;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::NativePipeline;

/// Close code for a socket whose credential no longer holds (RFC 6455 "policy violation").
const CLOSE_POLICY: u16 = 1008;
/// Close code for a socket closed for silence ("going away").
const CLOSE_IDLE: u16 = 1001;

/// The limits of stream sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketLimits {
    /// Largest message read; a larger one closes the socket (1009), since it cannot be read in
    /// bounded memory. Messages up to this size but over the `process_points` body limit are
    /// refused with an error message like an HTTP body would be.
    pub max_message_bytes: usize,
    /// Batches read but not yet answered; at this many the socket is not read until one is.
    pub in_flight: usize,
    /// Sockets one principal may hold open on this edge at once.
    pub per_principal: usize,
    /// A socket that sends nothing (no message, no pong) for this long is closed.
    pub idle_timeout: Duration,
    /// How often a ping goes out.
    pub ping_interval: Duration,
    /// How often the socket's credential is checked again (the deny-list, retired keys,
    /// expiry), so a revocation closes it within this plus the revocation sync interval.
    pub recheck_interval: Duration,
}

impl Default for SocketLimits {
    fn default() -> Self {
        SocketLimits {
            max_message_bytes: 16 * 1024 * 1024 + 64 * 1024,
            in_flight: 8,
            per_principal: 8,
            idle_timeout: Duration::from_secs(60),
            ping_interval: Duration::from_secs(20),
            recheck_interval: Duration::from_secs(5),
        }
    }
}

/// Open sockets per principal on this process.
#[derive(Debug, Default)]
struct SocketCount(Mutex<HashMap<String, usize>>);

impl SocketCount {
    /// Takes a place for `subject` if it holds fewer than `limit`.
    fn enter(self: &Arc<Self>, subject: &str, limit: usize) -> Option<SocketPlace> {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(subject.to_owned()).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(SocketPlace {
            count: Arc::clone(self),
            subject: subject.to_owned(),
        })
    }
}

/// One open socket's place in the count, given back when dropped.
struct SocketPlace {
    count: Arc<SocketCount>,
    subject: String,
}

impl Drop for SocketPlace {
    fn drop(&mut self) {
        let mut counts = self.count.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.subject) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.subject);
            }
        }
    }
}

/// The stream sockets of one edge: their limits and the count of open ones.
#[derive(Debug, Default)]
pub struct StreamSockets {
    limits: SocketLimits,
    open: Arc<SocketCount>,
}

impl StreamSockets {
    pub fn new(limits: SocketLimits) -> Self {
        StreamSockets {
            limits,
            open: Arc::default(),
        }
    }

    /// Whether `request` asks to upgrade to a WebSocket (the pipeline decides whether the path
    /// is a socket route; any other path upgrades to nothing).
    pub fn is_upgrade(request: &EdgeRequest) -> bool {
        request
            .header("upgrade")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
            && request.path.starts_with("/api/v1/streams/")
    }

    /// Admits the upgrade in `parts` and hands the socket to its loop, or answers the refusal.
    pub async fn upgrade(
        &self,
        pipeline: Arc<NativePipeline>,
        request: EdgeRequest,
        mut parts: Parts,
    ) -> Response {
        let socket = match pipeline.admit_socket(&request).await {
            Ok(socket) => socket,
            Err(refusal) => return crate::into_axum(refusal),
        };
        let Some(place) = self.open.enter(&socket.subject, self.limits.per_principal) else {
            let refusal = Refusal::new(ErrorCode::RateLimitExceeded).with_detail(format!(
                "at most {} open sockets per principal",
                self.limits.per_principal
            ));
            return crate::into_axum(pipeline.refuse_socket(&request, &socket, &refusal));
        };
        let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(upgrade) => upgrade,
            Err(rejection) => return rejection.into_response(),
        };
        let limits = self.limits;
        upgrade
            .max_message_size(limits.max_message_bytes)
            .max_frame_size(limits.max_message_bytes)
            .on_upgrade(move |ws| async move {
                serve_socket(pipeline, ws, socket, limits).await;
                drop(place);
            })
    }
}

/// One socket from upgrade to close.
async fn serve_socket(
    pipeline: Arc<NativePipeline>,
    ws: WebSocket,
    socket: StreamSocket,
    limits: SocketLimits,
) {
    let socket = Arc::new(socket);
    let (sink, mut incoming) = ws.split();
    let (out, outgoing) = mpsc::channel::<Message>(limits.in_flight + 2);
    let writer = tokio::spawn(write_all(sink, outgoing));
    let (batches, queued) = mpsc::channel::<String>(limits.in_flight);
    let answering = tokio::spawn(answer_in_order(
        Arc::clone(&pipeline),
        Arc::clone(&socket),
        queued,
        out.clone(),
    ));

    let mut heard = Instant::now();
    let mut ping = tokio::time::interval_at(heard + limits.ping_interval, limits.ping_interval);
    let mut recheck =
        tokio::time::interval_at(heard + limits.recheck_interval, limits.recheck_interval);
    let close: Option<CloseFrame> = loop {
        tokio::select! {
            frame = incoming.next() => match frame {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break None,
                Some(Ok(Message::Text(text))) => {
                    heard = Instant::now();
                    // Waits while `in_flight` batches are unanswered: the socket is not read.
                    if batches.send(text.as_str().to_owned()).await.is_err() {
                        break None;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    heard = Instant::now();
                    let refusal = Refusal::new(ErrorCode::UnsupportedMediaType)
                        .with_detail("send JSON text messages");
                    let message = socket.error_message(None, &refusal);
                    if out.send(Message::Text(message.into())).await.is_err() {
                        break None;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => heard = Instant::now(),
            },
            _ = ping.tick() => {
                if heard.elapsed() >= limits.idle_timeout {
                    break Some(CloseFrame { code: CLOSE_IDLE, reason: "idle".into() });
                }
                if out.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break None;
                }
            }
            _ = recheck.tick() => {
                if let Err(refusal) = pipeline.recheck_socket(&socket).await {
                    let _ = out.send(Message::Text(socket.error_message(None, &refusal).into())).await;
                    break Some(CloseFrame {
                        code: CLOSE_POLICY,
                        reason: refusal.code().as_str().into(),
                    });
                }
            }
        }
    };
    if close.is_some() {
        // A closed socket answers nothing more: batches still queued are dropped.
        answering.abort();
    }
    drop(batches);
    let _ = answering.await;
    if let Some(frame) = close {
        let _ = out.send(Message::Close(Some(frame))).await;
    }
    drop(out);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
}

/// Answers queued batches one at a time, in the order they came.
async fn answer_in_order(
    pipeline: Arc<NativePipeline>,
    socket: Arc<StreamSocket>,
    mut queued: mpsc::Receiver<String>,
    out: mpsc::Sender<Message>,
) {
    while let Some(text) = queued.recv().await {
        let reply = pipeline.socket_message(&socket, &text).await;
        if out.send(Message::Text(reply.into())).await.is_err() {
            return;
        }
    }
}

/// Writes every outgoing message, then closes the sink.
async fn write_all(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut outgoing: mpsc::Receiver<Message>,
) {
    while let Some(message) = outgoing.recv().await {
        let closing = matches!(message, Message::Close(_));
        if sink.send(message).await.is_err() || closing {
            break;
        }
    }
    let _ = sink.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_principal_holds_at_most_its_sockets_and_gets_places_back() {
        let count = Arc::new(SocketCount::default());
        let first = count.enter("ana", 2).unwrap();
        let _second = count.enter("ana", 2).unwrap();
        assert!(count.enter("ana", 2).is_none());
        assert!(count.enter("bob", 2).is_some());
        drop(first);
        assert!(count.enter("ana", 2).is_some());
    }
}
