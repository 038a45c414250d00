//! Spin's runtime behind the pipeline's ports: the WASI clock and random source, outbound HTTP,
//! and the request body as a stream.

use std::pin::Pin;

use edge::ports::{
    BodyError, BodySource, Clock, Entropy, Upstream, UpstreamError, UpstreamRequest,
    UpstreamResponse,
};
use futures::{Stream, StreamExt};
use spin_sdk::http::{IncomingResponse, Method, Request};

/// The WASI wall clock.
pub struct WasiClock;

impl Clock for WasiClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// `wasi:random`, the host's CSPRNG.
pub struct WasiEntropy;

impl Entropy for WasiEntropy {
    fn fill(&self, buf: &mut [u8]) {
        if getrandom::fill(buf).is_err() {
            // Without randomness request ids and nonces would repeat; refuse to go on.
            std::process::abort();
        }
    }
}

/// An HTTP peer over Spin's outbound HTTP: the backend, or the audit webhook.
pub struct SpinUpstream {
    base_url: String,
}

impl SpinUpstream {
    /// Requests go to `base_url` followed by their path and query.
    pub fn new(base_url: &str) -> Self {
        SpinUpstream {
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }
}

fn method(name: &str) -> Method {
    match name {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        "HEAD" => Method::Head,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_owned()),
    }
}

impl Upstream for SpinUpstream {
    async fn send(&self, request: UpstreamRequest) -> Result<UpstreamResponse, UpstreamError> {
        let url = format!("{}{}", self.base_url, request.path_and_query);
        let outgoing = Request::builder()
            .method(method(&request.method))
            .uri(url)
            .headers(request.headers)
            .body(request.body)
            .build();
        let response: IncomingResponse = spin_sdk::http::send(outgoing)
            .await
            .map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .filter_map(|(name, value)| Some((name, String::from_utf8(value).ok()?)))
            .collect();
        let body = response
            .into_body()
            .await
            .map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
        Ok(UpstreamResponse {
            status,
            headers,
            body,
        })
    }
}

/// The client's body as the host streams it.
pub struct SpinBody<S>(pub Pin<Box<S>>);

impl<S, E> BodySource for SpinBody<S>
where
    S: Stream<Item = Result<Vec<u8>, E>>,
    E: std::fmt::Debug,
{
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, BodyError> {
        loop {
            match self.0.next().await {
                None => return Ok(None),
                Some(Err(error)) => return Err(BodyError(format!("{error:?}"))),
                Some(Ok(chunk)) if chunk.is_empty() => continue,
                Some(Ok(chunk)) => return Ok(Some(chunk)),
            }
        }
    }
}
