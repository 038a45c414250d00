//! The native audit fan-out: a bounded channel the pipeline emits into without waiting, drained
//! by one task that logs a JSON line per event, sends batches to the backend's ingest (signed,
//! retried; the backend deduplicates by event id) and to an optional signed webhook.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shared::audit::{AuditEvent, MAX_BATCH_EVENTS};
use shared::signing::MessageSigningKey;
use tokio::sync::mpsc;

use super::{HttpUpstream, OsEntropy, SystemClock};
use edge::config::WebhookConfig;
use edge::fanout;
use edge::ports::{AuditSink, Clock, Upstream};

/// Events the buffer holds before new ones are dropped (and counted).
pub const DEFAULT_AUDIT_BUFFER: usize = 10_000;
/// How long the drain waits to fill a batch after its first event.
const BATCH_WINDOW: Duration = Duration::from_millis(100);
/// Pauses before the second and third ingest attempt.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_millis(250), Duration::from_secs(1)];

/// The pipeline's end of the channel.
#[derive(Debug, Clone)]
pub struct ChannelAudit {
    sender: mpsc::Sender<AuditEvent>,
    /// Events lost: buffer full, or undeliverable to the ingest after every retry.
    dropped: Arc<AtomicU64>,
}

impl AuditSink for ChannelAudit {
    fn emit(&self, event: AuditEvent) {
        if self.sender.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The draining end: where events go.
pub struct AuditFanout {
    receiver: mpsc::Receiver<AuditEvent>,
    upstream: HttpUpstream,
    key: MessageSigningKey,
    webhook: Option<WebhookConfig>,
    dropped: Arc<AtomicU64>,
}

/// A channel of `capacity` events: the sink for the pipeline and the fan-out to spawn.
pub fn channel(
    capacity: usize,
    upstream: HttpUpstream,
    key: MessageSigningKey,
    webhook: Option<WebhookConfig>,
) -> (ChannelAudit, AuditFanout) {
    let (sender, receiver) = mpsc::channel(capacity.max(1));
    let dropped = Arc::new(AtomicU64::new(0));
    let sink = ChannelAudit {
        sender,
        dropped: dropped.clone(),
    };
    let fanout = AuditFanout {
        receiver,
        upstream,
        key,
        webhook,
        dropped,
    };
    (sink, fanout)
}

impl AuditFanout {
    /// Drains until every sender is gone, in batches of at most [`MAX_BATCH_EVENTS`].
    pub async fn run(mut self) {
        while let Some(first) = self.receiver.recv().await {
            let mut batch = vec![first];
            let window = tokio::time::sleep(BATCH_WINDOW);
            tokio::pin!(window);
            while batch.len() < MAX_BATCH_EVENTS {
                tokio::select! {
                    next = self.receiver.recv() => match next {
                        Some(event) => batch.push(event),
                        None => break,
                    },
                    () = &mut window => break,
                }
            }
            self.deliver(batch).await;
        }
    }

    async fn deliver(&self, events: Vec<AuditEvent>) {
        for event in &events {
            if let Ok(line) = serde_json::to_string(event) {
                tracing::info!(target: "h200::audit", event = %line, "audit");
            }
        }
        let count = events.len() as u64;
        let Some(body) = fanout::batch_body(events) else {
            self.dropped.fetch_add(count, Ordering::Relaxed);
            return;
        };
        if !self.ingest(&body).await {
            tracing::error!(events = count, "audit ingest failed after retries");
            self.dropped.fetch_add(count, Ordering::Relaxed);
        }
        if let Some(webhook) = &self.webhook {
            self.post_webhook(webhook, body).await;
        }
    }

    async fn ingest(&self, body: &[u8]) -> bool {
        for attempt in 0..=RETRY_DELAYS.len() {
            if let Some(delay) = attempt.checked_sub(1).and_then(|i| RETRY_DELAYS.get(i)) {
                tokio::time::sleep(*delay).await;
            }
            let Some(signed) =
                fanout::ingest_request(body, &self.key, SystemClock.now_ms(), &OsEntropy)
            else {
                return false;
            };
            match self.upstream.send(signed).await {
                Ok(response) if response.status == 200 => return true,
                Ok(response) => tracing::warn!(status = response.status, "audit ingest refused"),
                Err(error) => tracing::warn!(%error, "audit ingest unreachable"),
            }
        }
        false
    }

    async fn post_webhook(&self, webhook: &WebhookConfig, body: Vec<u8>) {
        let request = fanout::webhook_request(webhook, body);
        match self.upstream.send_to(&webhook.url, request).await {
            Ok(response) if (200..300).contains(&response.status) => {}
            Ok(response) => tracing::warn!(status = response.status, "audit webhook refused"),
            Err(error) => tracing::warn!(%error, "audit webhook unreachable"),
        }
    }
}
