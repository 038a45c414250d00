//! Audit delivery for every runtime: the signed batch for the backend's ingest, the signed
//! webhook post, and the per-isolate buffer the wasm runtimes drain after each response
//! (Cloudflare through `wait_until`, Spin after the response is sent).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use shared::audit::{AuditBatch, AuditEvent, MAX_BATCH_EVENTS};
use shared::signing::MessageSigningKey;

use crate::backend_sync::AUDIT_PATH;
use crate::config::{EdgeConfig, WebhookConfig};
use crate::ports::{AuditSink, Entropy, Upstream, UpstreamRequest};
use crate::stage::audit::{WEBHOOK_SIGNATURE_HEADER, webhook_signature};
use crate::stage::sign::{self, Outbound};

/// Events a [`BufferedAudit`] holds before new ones are dropped (and counted).
pub const DEFAULT_BUFFER: usize = 1_000;

/// The JSON body of one ingest batch.
pub fn batch_body(events: Vec<AuditEvent>) -> Option<Vec<u8>> {
    serde_json::to_vec(&AuditBatch { events }).ok()
}

/// `body` as a request to the backend's audit ingest, signed with the edge `key` at `now_ms`.
pub fn ingest_request(
    body: &[u8],
    key: &MessageSigningKey,
    now_ms: u64,
    entropy: &dyn Entropy,
) -> Option<UpstreamRequest> {
    let mut id = [0u8; 8];
    entropy.fill(&mut id);
    let request_id = format!("edge-audit-{}", hex::encode(id));
    let outbound = Outbound {
        method: "POST",
        path: AUDIT_PATH,
        query: None,
        body: body.to_vec(),
        principal: None,
        request_id: &request_id,
        headers: vec![("content-type".into(), "application/json".into())],
    };
    sign::sign(outbound, key, now_ms, entropy).ok()
}

/// `body` as a post to the webhook's own URL (the request's path is empty), signed
/// `X-Signature: sha256=…` with the webhook secret.
pub fn webhook_request(webhook: &WebhookConfig, body: Vec<u8>) -> UpstreamRequest {
    let signature = webhook_signature(&webhook.secret, &body);
    UpstreamRequest {
        method: "POST".into(),
        path_and_query: String::new(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            (WEBHOOK_SIGNATURE_HEADER.into(), signature),
        ],
        body,
    }
}

/// What one delivery achieved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Events the backend's ingest accepted.
    pub ingested: usize,
    /// Events lost: the ingest refused or was unreachable twice.
    pub lost: usize,
    /// Whether the webhook (when one is set) answered 2xx to every batch.
    pub webhook_ok: bool,
}

/// Sends `events` in batches of at most [`MAX_BATCH_EVENTS`] to the backend's ingest (one retry;
/// the backend deduplicates by event id) and, when configured, to the webhook through `webhook`
/// (an upstream whose base URL is the webhook's).
pub async fn deliver<U: Upstream, W: Upstream>(
    events: Vec<AuditEvent>,
    config: &EdgeConfig,
    backend: &U,
    webhook: Option<&W>,
    now_ms: u64,
    entropy: &dyn Entropy,
) -> Delivery {
    let mut delivery = Delivery {
        webhook_ok: true,
        ..Delivery::default()
    };
    let mut events = events;
    while !events.is_empty() {
        let rest = events.split_off(events.len().min(MAX_BATCH_EVENTS));
        let count = events.len();
        let Some(body) = batch_body(std::mem::replace(&mut events, rest)) else {
            delivery.lost += count;
            continue;
        };
        let mut ingested = false;
        for _ in 0..2 {
            let Some(request) = ingest_request(&body, &config.signing_key, now_ms, entropy) else {
                break;
            };
            if backend.send(request).await.is_ok_and(|r| r.status == 200) {
                ingested = true;
                break;
            }
        }
        if ingested {
            delivery.ingested += count;
        } else {
            delivery.lost += count;
        }
        if let (Some(webhook), Some(target)) = (&config.webhook, webhook) {
            let answer = target.send(webhook_request(webhook, body)).await;
            delivery.webhook_ok &= answer.is_ok_and(|r| (200..300).contains(&r.status));
        }
    }
    delivery
}

/// Audit events held in memory until the adapter drains them after a response.
#[derive(Debug)]
pub struct BufferedAudit {
    events: Mutex<Vec<AuditEvent>>,
    capacity: usize,
    /// Events lost: buffer full, or undeliverable (see [`BufferedAudit::count_lost`]).
    dropped: AtomicU64,
}

impl BufferedAudit {
    /// A buffer of at most `capacity` events.
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(BufferedAudit {
            events: Mutex::new(Vec::new()),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
        })
    }

    /// Everything buffered so far, oldest first; the buffer is left empty.
    pub fn take(&self) -> Vec<AuditEvent> {
        std::mem::take(&mut *self.lock())
    }

    /// Counts `n` events that could not be delivered.
    pub fn count_lost(&self, n: usize) {
        self.dropped
            .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<AuditEvent>> {
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl AuditSink for Arc<BufferedAudit> {
    fn emit(&self, event: AuditEvent) {
        let mut events = self.lock();
        if events.len() < self.capacity {
            events.push(event);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{CountingEntropy, ScriptedUpstream, block_on, json};
    use shared::audit::{AuditEventType, AuditSource};

    fn config(webhook: bool) -> EdgeConfig {
        let key = MessageSigningKey::new("edge-1", vec![7u8; 32]).expect("valid key");
        let mut config = EdgeConfig::new("http://backend", key);
        if webhook {
            config.webhook = Some(WebhookConfig {
                url: "https://hooks.example/a".into(),
                secret: b"hook-secret".to_vec(),
            });
        }
        config
    }

    fn events(n: usize) -> Vec<AuditEvent> {
        (0..n)
            .map(|i| {
                AuditEvent::new(
                    AuditEventType::TokenInvalid,
                    AuditSource::Edge,
                    1_700_000_000_000 + i as u64,
                    [i as u8; 10],
                )
            })
            .collect()
    }

    #[test]
    fn batches_are_signed_for_the_ingest_and_the_webhook() {
        let backend = Arc::new(ScriptedUpstream::new(|_| Ok(json(200, "{}"))));
        let hook = Arc::new(ScriptedUpstream::new(|_| Ok(json(204, ""))));
        let count = MAX_BATCH_EVENTS + 3;
        let delivery = block_on(deliver(
            events(count),
            &config(true),
            &backend,
            Some(&hook),
            1_700_000_000_000,
            &CountingEntropy::default(),
        ));
        assert_eq!(delivery.ingested, count);
        assert_eq!(delivery.lost, 0);
        assert!(delivery.webhook_ok);
        assert_eq!(backend.paths(), vec![AUDIT_PATH.to_owned(); 2]);
        let sent = backend.sent.lock().expect("test lock");
        assert!(sent[0].headers.iter().any(|(n, _)| n == "signature"));
        let hooked = hook.sent.lock().expect("test lock");
        assert_eq!(hooked.len(), 2);
        let signature = hooked[0]
            .headers
            .iter()
            .find(|(n, _)| n == WEBHOOK_SIGNATURE_HEADER)
            .map(|(_, v)| v.clone());
        assert_eq!(
            signature,
            Some(webhook_signature(b"hook-secret", &hooked[0].body))
        );
    }

    #[test]
    fn a_refusing_ingest_is_retried_once_then_counted_lost() {
        let backend = Arc::new(ScriptedUpstream::new(|_| Ok(json(503, "{}"))));
        let delivery = block_on(deliver::<_, Arc<ScriptedUpstream>>(
            events(2),
            &config(false),
            &backend,
            None,
            1_700_000_000_000,
            &CountingEntropy::default(),
        ));
        assert_eq!(delivery.lost, 2);
        assert_eq!(backend.paths().len(), 2);
    }

    #[test]
    fn a_full_buffer_drops_and_counts() {
        let buffer = BufferedAudit::new(2);
        for event in events(3) {
            buffer.emit(event);
        }
        assert_eq!(buffer.dropped(), 1);
        assert_eq!(buffer.take().len(), 2);
        assert!(buffer.take().is_empty());
        buffer.count_lost(2);
        assert_eq!(buffer.dropped(), 3);
    }
}
