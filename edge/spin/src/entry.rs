//! The component's HTTP handler: builds the pipeline from Spin variables over key-value, syncs a
//! stale deny-list before answering, answers the request, and only after the response is sent
//! delivers the audit events and runs whatever upkeep the edge's schedule says is due (the
//! last-run times live in key-value, so every instance follows one schedule).
//!
//! The client's address is the last `spin-client-addr` (Spin's trigger appends it after the
//! client's headers, so an earlier one is the client's own), or the configured
//! `client_ip_header` of a trusted proxy in front. A request with neither is refused (503
//! `CLIENT_ADDRESS_UNKNOWN`, logged), never counted under a shared placeholder.

use std::sync::Arc;

use edge::fanout::{self, BufferedAudit};
use edge::settings;
use edge::shared::ErrorCode;
use edge::stage::{Refusal, request_id, respond};
use edge::upkeep::{TaskOutcome, Upkeep};
use edge::{EdgeConfig, EdgeRequest, EdgeResponse, Pipeline};
use futures::SinkExt;
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;

use crate::kv::{Kv, KvRates, KvState};
use crate::runtime::{SpinBody, SpinUpstream, WasiClock, WasiEntropy};

/// The header Spin's HTTP trigger adds with the connecting client's `address:port`, after the
/// client's own headers (a client may send one too: only the last is Spin's).
const CLIENT_ADDRESS_HEADER: &str = "spin-client-addr";

type SpinPipeline = Pipeline<KvRates, KvState, SpinUpstream>;

fn config() -> Result<EdgeConfig, String> {
    settings::edge_config(|name| spin_sdk::variables::get(name).ok()).map_err(|e| e.to_string())
}

#[http_component]
async fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    let config = match config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("edge configuration: {error}");
            return send(response_out, unavailable("edge-unconfigured")).await;
        }
    };
    let kv = match Kv::open() {
        Ok(kv) => Arc::new(kv),
        Err(error) => {
            eprintln!("{error}");
            return send(response_out, unavailable("edge-no-state")).await;
        }
    };
    let audit = BufferedAudit::new(fanout::DEFAULT_BUFFER);
    let upstream = SpinUpstream::new(&config.backend_url);
    let pipeline: SpinPipeline = Pipeline::new(
        config,
        KvRates(kv.clone()),
        KvState(kv),
        upstream,
        Box::new(WasiClock),
        Box::new(WasiEntropy),
        Box::new(audit.clone()),
    );

    let headers: Vec<(String, String)> = request
        .headers()
        .entries()
        .into_iter()
        .filter_map(|(name, value)| {
            Some((name.to_ascii_lowercase(), String::from_utf8(value).ok()?))
        })
        .collect();
    let peer = headers
        .iter()
        .rev()
        .find(|(name, _)| name == CLIENT_ADDRESS_HEADER)
        .map(|(_, value)| peer_address(value));
    let path_and_query = request.path_with_query().unwrap_or_else(|| "/".into());
    let Some(client_ip) = pipeline.config().client_ip(&headers, peer.as_deref()) else {
        eprintln!(
            "{} {path_and_query}: no client address (no {CLIENT_ADDRESS_HEADER}, no trusted \
             header); refused 503 CLIENT_ADDRESS_UNKNOWN",
            request.method()
        );
        return send(response_out, no_client_address(&pipeline)).await;
    };
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
        None => (path_and_query, None),
    };
    let edge_request = EdgeRequest {
        method: request.method().to_string(),
        path,
        query,
        headers,
        client_ip,
    };
    let upkeep = Upkeep::default();
    log_failures(upkeep.run_overdue(&pipeline).await);
    let body = SpinBody(Box::pin(request.into_body_stream()));
    let response = pipeline.handle(edge_request, body).await;
    send(response_out, response).await;
    after_response(&pipeline, &audit, &upkeep).await;
}

/// The address part of Spin's `address:port` (IPv6 addresses come bracketed).
fn peer_address(value: &str) -> String {
    value
        .parse::<std::net::SocketAddr>()
        .map(|addr| addr.ip().to_string())
        .unwrap_or_else(|_| value.to_owned())
}

/// Delivers the request's audit events and runs the upkeep that is due.
async fn after_response(pipeline: &SpinPipeline, audit: &Arc<BufferedAudit>, upkeep: &Upkeep) {
    let now_ms = pipeline.clock().now_ms();
    let webhook = pipeline
        .config()
        .webhook
        .as_ref()
        .map(|w| SpinUpstream::new(&w.url));
    let events = audit.take();
    if !events.is_empty() {
        let delivery = fanout::deliver(
            events,
            pipeline.config(),
            pipeline.upstream(),
            webhook.as_ref(),
            now_ms,
            pipeline.entropy(),
        )
        .await;
        if delivery.lost > 0 {
            eprintln!("audit ingest lost {} events", delivery.lost);
        }
        if !delivery.webhook_ok {
            eprintln!("audit webhook refused a batch");
        }
    }
    log_failures(upkeep.run_due(pipeline).await);
}

fn log_failures(outcomes: Vec<TaskOutcome>) {
    for outcome in outcomes {
        if let Err(error) = outcome.result {
            eprintln!("edge upkeep ({}) failed: {error}", outcome.task.name());
        }
    }
}

/// 503 with no detail: the component cannot work (settings or state missing).
fn unavailable(request_id: &str) -> EdgeResponse {
    let mut response =
        respond::refusal_response(&Refusal::new(ErrorCode::ServiceUnavailable), request_id);
    respond::finish(&mut response, request_id, &[], None);
    response
}

/// 503 `CLIENT_ADDRESS_UNKNOWN`: the host gave no client address. Without one, every such
/// request would share one rate-limit bucket and one block, so one client's brute force would
/// lock everybody out.
fn no_client_address(pipeline: &SpinPipeline) -> EdgeResponse {
    let request_id = request_id::assign(None, pipeline.entropy());
    let refusal = Refusal::new(ErrorCode::ClientAddressUnknown).with_detail(format!(
        "the request carries no {CLIENT_ADDRESS_HEADER}: the host is not a Spin HTTP trigger"
    ));
    let mut response = respond::refusal_response(&refusal, &request_id);
    respond::finish(&mut response, &request_id, &[], None);
    response
}

async fn send(response_out: ResponseOutparam, response: EdgeResponse) {
    let fields: Vec<(String, Vec<u8>)> = response
        .headers
        .into_iter()
        .map(|(name, value)| (name, value.into_bytes()))
        .collect();
    let headers = Fields::from_list(&fields).unwrap_or_else(|_| Fields::new());
    let outgoing = OutgoingResponse::new(headers);
    if outgoing.set_status_code(response.status).is_err() {
        let _ = outgoing.set_status_code(500);
    }
    let mut body = outgoing.take_body();
    response_out.set(outgoing);
    if !response.body.is_empty() && body.send(response.body).await.is_err() {
        eprintln!("the client went away before the response was written");
    }
    let _ = body.close().await;
}
