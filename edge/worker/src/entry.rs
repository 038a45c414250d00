//! The Worker's fetch handler: builds the pipeline once per isolate from the Worker's vars and
//! secrets, translates requests and responses, and drives the edge's upkeep schedule: a stale
//! deny-list is synced before the request is answered, and after each response the buffered audit
//! events and whatever upkeep is due go to `wait_until`.
//!
//! The client's address is `CF-Connecting-IP`, which Cloudflare sets to the connecting address
//! after dropping any the client sent (or the configured `CLIENT_IP_HEADER` of a trusted proxy in
//! front). A request without one is refused (503 `CLIENT_ADDRESS_UNKNOWN`), never counted under
//! a shared placeholder.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use edge::fanout::{self, BufferedAudit};
use edge::settings;
use edge::shared::ErrorCode;
use edge::stage::{Refusal, request_id, respond};
use edge::upkeep::{TaskOutcome, Upkeep};
use edge::{EdgeRequest, EdgeResponse, Pipeline};
use worker::{Context, Env, Headers, Request, Response, ResponseBuilder, event};

use crate::durable::{DurableRates, DurableState, Objects};
use crate::runtime::{FetchUpstream, WorkerBody, WorkerClock, WorkerEntropy};

/// The header Cloudflare sets to the connecting client's address.
const CLIENT_ADDRESS_HEADER: &str = "cf-connecting-ip";

type WorkerPipeline = Pipeline<DurableRates, DurableState, FetchUpstream>;

/// What one isolate keeps between requests.
struct Gateway {
    pipeline: WorkerPipeline,
    /// Audit events of the requests in flight, drained after each response.
    audit: Arc<BufferedAudit>,
    /// The webhook as an upstream, when one is configured.
    webhook: Option<FetchUpstream>,
    /// The upkeep schedule, with what this isolate has seen of its last runs.
    upkeep: Upkeep,
}

thread_local! {
    static GATEWAY: RefCell<Option<Rc<Gateway>>> = const { RefCell::new(None) };
}

/// The isolate's gateway, built on the first request.
fn gateway(env: &Env) -> Result<Rc<Gateway>, String> {
    if let Some(gateway) = GATEWAY.with(|g| g.borrow().clone()) {
        return Ok(gateway);
    }
    let lookup = |name: &str| {
        let upper = name.to_ascii_uppercase();
        env.secret(&upper)
            .or_else(|_| env.var(&upper))
            .ok()
            .map(|value| value.to_string())
    };
    let config = settings::edge_config(lookup).map_err(|e| e.to_string())?;
    let objects = Objects::new(env).map_err(|e| e.to_string())?;
    let audit = BufferedAudit::new(fanout::DEFAULT_BUFFER);
    let webhook = config.webhook.as_ref().map(|w| FetchUpstream::new(&w.url));
    let upstream = FetchUpstream::new(&config.backend_url);
    let pipeline = Pipeline::new(
        config,
        DurableRates(objects.clone()),
        DurableState::new(objects),
        upstream,
        Box::new(WorkerClock),
        Box::new(WorkerEntropy),
        Box::new(audit.clone()),
    );
    let gateway = Rc::new(Gateway {
        pipeline,
        audit,
        webhook,
        upkeep: Upkeep::default(),
    });
    GATEWAY.with(|g| *g.borrow_mut() = Some(gateway.clone()));
    Ok(gateway)
}

#[event(fetch)]
async fn fetch(request: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let gateway = match gateway(&env) {
        Ok(gateway) => gateway,
        Err(error) => {
            worker::console_error!("edge configuration: {error}");
            return into_worker(unconfigured());
        }
    };
    let headers: Vec<(String, String)> = request
        .headers()
        .entries()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect();
    let url = request.url()?;
    // Cloudflare drops any CF-Connecting-IP the client sent and sets its own, so its one value
    // is the connecting address.
    let peer = request.headers().get(CLIENT_ADDRESS_HEADER)?;
    let Some(client_ip) = gateway
        .pipeline
        .config()
        .client_ip(&headers, peer.as_deref())
    else {
        worker::console_error!(
            "{} {}: no client address (no {CLIENT_ADDRESS_HEADER}); refused",
            request.method(),
            url.path()
        );
        return into_worker(no_client_address(&gateway.pipeline));
    };
    let edge_request = EdgeRequest {
        method: request.method().to_string(),
        path: url.path().to_owned(),
        query: url.query().map(str::to_owned),
        headers,
        client_ip,
    };
    log_failures(gateway.upkeep.run_overdue(&gateway.pipeline).await);
    let mut body = WorkerBody::new(request);
    let response = gateway.pipeline.handle(edge_request, &mut body).await;
    body.discard().await;
    after_response(&gateway, &ctx);
    into_worker(response)
}

/// Hands the buffered audit events and the upkeep that is due to `wait_until`.
fn after_response(gateway: &Rc<Gateway>, ctx: &Context) {
    let now_ms = gateway.pipeline.clock().now_ms();
    let events = gateway.audit.take();
    let gateway = gateway.clone();
    ctx.wait_until(async move {
        if !events.is_empty() {
            let pipeline = &gateway.pipeline;
            let delivery = fanout::deliver(
                events,
                pipeline.config(),
                pipeline.upstream(),
                gateway.webhook.as_ref(),
                now_ms,
                pipeline.entropy(),
            )
            .await;
            if delivery.lost > 0 {
                gateway.audit.count_lost(delivery.lost);
                worker::console_error!("audit ingest lost {} events", delivery.lost);
            }
            if !delivery.webhook_ok {
                worker::console_warn!("audit webhook refused a batch");
            }
        }
        log_failures(gateway.upkeep.run_due(&gateway.pipeline).await);
    });
}

fn log_failures(outcomes: Vec<TaskOutcome>) {
    for outcome in outcomes {
        if let Err(error) = outcome.result {
            worker::console_warn!("edge upkeep ({}) failed: {error}", outcome.task.name());
        }
    }
}

/// The answer while the Worker's settings are missing or invalid: 503, no detail.
fn unconfigured() -> EdgeResponse {
    let request_id = "edge-unconfigured";
    let mut response =
        respond::refusal_response(&Refusal::new(ErrorCode::ServiceUnavailable), request_id);
    respond::finish(&mut response, request_id, &[], None);
    response
}

/// The answer to a request that came with no trustworthy client address: 503
/// `CLIENT_ADDRESS_UNKNOWN`. Without one, every such request would share one rate-limit bucket
/// and one block, so one client's brute force would lock everybody out.
fn no_client_address(pipeline: &WorkerPipeline) -> EdgeResponse {
    let request_id = request_id::assign(None, pipeline.entropy());
    let refusal = Refusal::new(ErrorCode::ClientAddressUnknown)
        .with_detail(format!("the request carries no {CLIENT_ADDRESS_HEADER}"));
    let mut response = respond::refusal_response(&refusal, &request_id);
    respond::finish(&mut response, &request_id, &[], None);
    response
}

fn into_worker(response: EdgeResponse) -> worker::Result<Response> {
    let headers = Headers::new();
    for (name, value) in &response.headers {
        headers.append(name, value)?;
    }
    let builder = ResponseBuilder::new()
        .with_status(response.status)
        .with_headers(headers);
    Ok(if response.body.is_empty() {
        builder.empty()
    } else {
        builder.fixed(response.body)
    })
}
