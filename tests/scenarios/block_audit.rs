//! An address blocked for failed logins: its liveness and readiness probes still answer, every
//! other request is refused, and the audit trail holds one `ip_blocked` event for the block's
//! start and one with its tally after it ended, not one per refused request.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::scenarios::client_address::audit_events;
use crate::{Caller, Outcome, check, fail_logins};

/// Requests sent while the address is blocked; each must be refused and counted.
const REFUSED: usize = 8;

/// How long audit events may take to reach the backend.
const AUDIT_DELIVERY: Duration = Duration::from_secs(15);

/// Five wrong-password logins earn a block; the probes answer, [`REFUSED`] requests are refused
/// 403 `IP_BLOCKED`; after the block the trail holds exactly two `ip_blocked` events of the
/// edge for the address: the start and the tally of [`REFUSED`].
pub async fn a_block_is_audited_once_with_its_tally(caller: &Caller) -> Outcome {
    fail_logins(caller, 5).await?;
    for n in 0..REFUSED {
        let path = if n % 2 == 0 {
            "/api/v1/rules"
        } else {
            "/openapi.json"
        };
        caller
            .send(caller.edge(Method::GET, path))
            .await?
            .refused(403, "IP_BLOCKED")
            .map_err(|e| format!("request {n} ({path}) while blocked: {e}"))?;
        if n == 0 {
            let health = caller.send(caller.edge(Method::GET, "/health")).await?;
            check(health.status.as_u16() == 200, || {
                format!(
                    "/health from the blocked address: {} {}",
                    health.status, health.body
                )
            })?;
            let ready = caller.send(caller.edge(Method::GET, "/ready")).await?;
            check(ready.code() != "IP_BLOCKED", || {
                format!(
                    "/ready from the blocked address: {} {}",
                    ready.status, ready.body
                )
            })?;
        }
    }

    let admin = caller.token("admin").await?;
    let query = format!("type=ip_blocked&ip={}", caller.ip);
    let from_edge = |events: Vec<Value>| -> Vec<Value> {
        events
            .into_iter()
            .filter(|e| e["source"] == "edge")
            .collect()
    };
    let deadline = Instant::now() + AUDIT_DELIVERY;
    while from_edge(audit_events(caller, &admin, &query).await?).is_empty() {
        check(Instant::now() < deadline, || {
            format!("no ip_blocked event for {} reached the backend", caller.ip)
        })?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    tokio::time::sleep(caller.fixture.block_duration + Duration::from_millis(500)).await;
    let after = caller
        .send(caller.edge(Method::GET, "/openapi.json"))
        .await?;
    check(after.status.as_u16() == 200, || {
        format!("after the block: {} {}", after.status, after.body)
    })?;
    let tally = format!("after refusing {REFUSED} requests");
    let deadline = Instant::now() + AUDIT_DELIVERY;
    let events = loop {
        let events = from_edge(audit_events(caller, &admin, &query).await?);
        let reported = events
            .iter()
            .any(|e| e["detail"].as_str().is_some_and(|d| d.contains(&tally)));
        if reported {
            break events;
        }
        check(Instant::now() < deadline, || {
            format!(
                "no ip_blocked event with \"{tally}\" for {}: {events:?}",
                caller.ip
            )
        })?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    check(events.len() == 2, || {
        format!(
            "{REFUSED} refused requests: expected 2 ip_blocked events (the block's start and its \
             tally), got {}: {events:?}",
            events.len()
        )
    })
}
