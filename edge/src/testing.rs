//! Test-only helpers: a poll loop for futures that never wait, and fakes of the ports for the
//! unit tests of one module.

use std::future::Future;
use std::pin::pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use shared::audit::AuditEvent;

use crate::ports::{
    AuditSink, Clock, Entropy, Upstream, UpstreamError, UpstreamRequest, UpstreamResponse,
};

/// Runs a future whose every await is ready at once (the in-memory ports and fakes).
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    for _ in 0..1_000_000 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
    panic!("a test future kept waiting");
}

/// A clock the test moves.
#[derive(Debug, Default)]
pub struct ManualClock(pub AtomicU64);

impl ManualClock {
    pub fn at(ms: u64) -> Self {
        ManualClock(AtomicU64::new(ms))
    }
}

impl Clock for std::sync::Arc<ManualClock> {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Bytes from a counter: distinct, predictable.
#[derive(Debug, Default)]
pub struct CountingEntropy(AtomicU64);

impl Entropy for CountingEntropy {
    fn fill(&self, buf: &mut [u8]) {
        let n = self.0.fetch_add(1, Ordering::Relaxed).to_le_bytes();
        for (i, byte) in buf.iter_mut().enumerate() {
            *byte = n[i % 8] ^ (i as u8);
        }
    }
}

/// Keeps every emitted event.
#[derive(Debug, Default)]
pub struct RecordingAudit(pub Mutex<Vec<AuditEvent>>);

impl AuditSink for std::sync::Arc<RecordingAudit> {
    fn emit(&self, event: AuditEvent) {
        self.0.lock().expect("test lock").push(event);
    }

    fn dropped(&self) -> u64 {
        0
    }
}

type Script = dyn Fn(&UpstreamRequest) -> Result<UpstreamResponse, UpstreamError> + Send + Sync;

/// A backend that answers by a script and records what it was sent.
pub struct ScriptedUpstream {
    pub sent: Mutex<Vec<UpstreamRequest>>,
    script: Box<Script>,
}

impl ScriptedUpstream {
    pub fn new(
        script: impl Fn(&UpstreamRequest) -> Result<UpstreamResponse, UpstreamError>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        ScriptedUpstream {
            sent: Mutex::new(Vec::new()),
            script: Box::new(script),
        }
    }

    /// Paths (with query) of every request sent so far.
    pub fn paths(&self) -> Vec<String> {
        self.sent
            .lock()
            .expect("test lock")
            .iter()
            .map(|r| r.path_and_query.clone())
            .collect()
    }
}

impl Upstream for std::sync::Arc<ScriptedUpstream> {
    async fn send(&self, request: UpstreamRequest) -> Result<UpstreamResponse, UpstreamError> {
        let answer = (self.script)(&request);
        self.sent.lock().expect("test lock").push(request);
        answer
    }
}

/// A JSON answer.
pub fn json(status: u16, body: &str) -> UpstreamResponse {
    UpstreamResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
    }
}
