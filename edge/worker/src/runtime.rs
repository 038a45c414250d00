//! The Workers runtime behind the pipeline's ports: the clock, `crypto.getRandomValues`, the
//! backend over `fetch`, and the request body as a stream.

use edge::ports::{
    BodyError, BodySource, Clock, Entropy, Upstream, UpstreamError, UpstreamRequest,
    UpstreamResponse,
};
use futures_util::StreamExt;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::{ByteStream, Fetch, Headers, Method, Request, RequestInit};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues)]
    fn get_random_values(buf: &mut [u8]);
}

/// `Date.now()`.
pub struct WorkerClock;

impl Clock for WorkerClock {
    fn now_ms(&self) -> u64 {
        worker::Date::now().as_millis()
    }
}

/// `crypto.getRandomValues`, the runtime's CSPRNG.
pub struct WorkerEntropy;

impl Entropy for WorkerEntropy {
    fn fill(&self, buf: &mut [u8]) {
        // getRandomValues fills at most 65 536 bytes per call.
        for chunk in buf.chunks_mut(65_536) {
            get_random_values(chunk);
        }
    }
}

/// An HTTP peer over `fetch`: the backend, or the audit webhook.
pub struct FetchUpstream {
    base_url: String,
}

impl FetchUpstream {
    /// Requests go to `base_url` followed by their path and query.
    pub fn new(base_url: &str) -> Self {
        FetchUpstream {
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    async fn fetch(&self, request: UpstreamRequest) -> worker::Result<UpstreamResponse> {
        let headers = Headers::new();
        for (name, value) in &request.headers {
            headers.append(name, value)?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::from(request.method))
            .with_headers(headers);
        if !request.body.is_empty() {
            init.with_body(Some(
                js_sys::Uint8Array::from(request.body.as_slice()).into(),
            ));
        }
        let url = format!("{}{}", self.base_url, request.path_and_query);
        let outgoing = Request::new_with_init(&url, &init)?;
        let mut response = Fetch::Request(outgoing).send().await?;
        Ok(UpstreamResponse {
            status: response.status_code(),
            headers: response.headers().entries().collect(),
            body: response.bytes().await?,
        })
    }
}

impl Upstream for FetchUpstream {
    async fn send(&self, request: UpstreamRequest) -> Result<UpstreamResponse, UpstreamError> {
        self.fetch(request)
            .await
            .map_err(|e| UpstreamError::Unreachable(e.to_string()))
    }
}

/// The client's body as the runtime streams it, opened on the first read.
pub struct WorkerBody {
    request: Option<Request>,
    stream: Option<ByteStream>,
}

impl WorkerBody {
    pub fn new(request: Request) -> Self {
        WorkerBody {
            request: Some(request),
            stream: None,
        }
    }
}

/// Most bytes of an unread body discarded after the response; a larger rest is left to the
/// runtime, which then drops the connection.
const MAX_DISCARD: usize = 1 << 20;

impl WorkerBody {
    /// Reads and drops what the pipeline left of the body (at most [`MAX_DISCARD`] bytes), so a
    /// kept-alive client connection stays usable after an early refusal.
    pub async fn discard(&mut self) {
        let mut discarded = 0;
        while discarded < MAX_DISCARD {
            match self.next_chunk().await {
                Ok(Some(chunk)) => discarded += chunk.len(),
                Ok(None) | Err(_) => return,
            }
        }
    }
}

impl BodySource for &mut WorkerBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, BodyError> {
        WorkerBody::next_chunk(self).await
    }
}

impl BodySource for WorkerBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, BodyError> {
        if let Some(mut request) = self.request.take() {
            // A request without a body has no stream: it reads as empty.
            self.stream = request.stream().ok();
        }
        let Some(stream) = self.stream.as_mut() else {
            return Ok(None);
        };
        loop {
            match stream.next().await {
                None => return Ok(None),
                Some(Err(error)) => return Err(BodyError(error.to_string())),
                Some(Ok(chunk)) if chunk.is_empty() => continue,
                Some(Ok(chunk)) => return Ok(Some(chunk)),
            }
        }
    }
}
