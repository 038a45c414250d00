//! The client's address under hostile input and load: address headers a client forges do not
//! move it out of its failed-login block nor into someone else's audit trail, a burst of
//! concurrent logins from one address gets no more through than the login class allows, and
//! (on Spin, whose platform address the test front can leave out) a request without a
//! trustworthy address is refused instead of sharing one bucket with every such request.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::front::PEER_HEADER;
use crate::{Answer, Caller, Outcome, Scenario, check, read};

/// Headers a client could send to pose as another address: the platforms' own and the usual
/// proxy ones. None of them may decide the address unless the platform or a trusted proxy set it.
const FORGEABLE: &[&str] = &[
    "spin-client-addr",
    "cf-connecting-ip",
    "x-forwarded-for",
    "x-real-ip",
    "true-client-ip",
];

/// Concurrent logins in the burst, and what the login rate class admits per address.
const BURST: usize = 60;
const LOGIN_LIMIT: usize = 10;

const WRONG_PASSWORD: &str = "Wrong-passw0rd!";

/// How long audit events may take to reach the backend.
const AUDIT_DELIVERY: Duration = Duration::from_secs(15);

/// The scenarios that only a runtime behind the test front can run: the front can leave the
/// platform's address out, which no client of a real platform can.
pub fn without_platform_address() -> Vec<Scenario> {
    vec![Scenario {
        name: "a request without the platform's client address is refused",
        function: "no_platform_address_refused",
        run: |caller| Box::pin(no_platform_address_refused(caller)),
        isolated: false,
    }]
}

/// A login as the viewer with `password` from the caller's real address; with `forged`, that
/// address is in every [`FORGEABLE`] header too, before the real one (a trusted proxy appends
/// after the client).
fn login(
    caller: &Caller,
    forged: Option<&str>,
    password: &str,
) -> Result<reqwest::RequestBuilder, String> {
    let user = caller.user("viewer")?;
    let body = serde_json::json!({"username": user.username, "password": password});
    let mut request = caller.client.request(
        Method::POST,
        format!("{}/auth/login", caller.fixture.edge_url),
    );
    for name in FORGEABLE.iter().filter(|_| forged.is_some()) {
        let forged = forged.unwrap_or_default();
        let value = if *name == "spin-client-addr" {
            format!("{forged}:4711")
        } else {
            forged.to_owned()
        };
        request = request.header(*name, value);
    }
    Ok(request
        .header(caller.fixture.client_ip_header.as_str(), &caller.ip)
        .header("content-type", "application/json")
        .body(body.to_string()))
}

/// The audit events the backend holds for `query` (admin token `admin`), asked from an address
/// of the scenario's that is not blocked.
pub(crate) async fn audit_events(
    caller: &Caller,
    admin: &str,
    query: &str,
) -> Result<Vec<Value>, String> {
    let path = format!("/api/v1/admin/audit?{query}&limit=100");
    let reader = format!("10.{}.254.254", caller.index);
    let page = caller
        .send(
            caller
                .edge_from(Method::GET, &path, &reader)
                .bearer_auth(admin),
        )
        .await?;
    check(page.status == StatusCode::OK, || {
        format!(
            "reading the audit log ({query}): {} {}",
            page.status, page.body
        )
    })?;
    Ok(page.body["events"].as_array().cloned().unwrap_or_default())
}

/// 8 wrong logins, each with other forged address headers, then the right password: the real
/// address is blocked after 5 (403 `IP_BLOCKED`), the good login too, and the audit trail names
/// the real address, never a forged one.
pub async fn forged_address_headers_do_not_escape_the_login_block(caller: &Caller) -> Outcome {
    let forged: Vec<String> = (1..=9)
        .map(|n| format!("203.0.{}.{n}", 100 + caller.index))
        .collect();
    for (n, value) in forged.iter().take(8).enumerate() {
        let answer = caller
            .send(login(caller, Some(value), WRONG_PASSWORD)?)
            .await?;
        let refused = matches!(
            (answer.status.as_u16(), answer.code()),
            (401, _) | (403, "IP_BLOCKED")
        );
        check(refused, || {
            format!(
                "wrong login {n} (forged {value}): {} {}",
                answer.status, answer.body
            )
        })?;
    }
    let password = caller.user("viewer")?.password.clone();
    let good = caller
        .send(login(caller, Some(&forged[8]), &password)?)
        .await?;
    check(good.status.as_u16() == 403, || {
        format!(
            "8 wrong logins behind forged address headers, then the right password from the same \
             client: expected 403 IP_BLOCKED (the forged headers chose the address), got {} {}",
            good.status, good.body
        )
    })?;
    good.refused(403, "IP_BLOCKED")?;

    let admin = caller.token("admin").await?;
    let deadline = Instant::now() + AUDIT_DELIVERY;
    loop {
        let query = format!("type=ip_blocked&ip={}", caller.ip);
        let blocked = audit_events(caller, &admin, &query).await?;
        if blocked.iter().any(|e| e["source"] == "edge") {
            break;
        }
        check(Instant::now() < deadline, || {
            format!(
                "no ip_blocked event for the real address {}: {blocked:?}",
                caller.ip
            )
        })?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for value in &forged {
        let events = audit_events(caller, &admin, &format!("ip={value}")).await?;
        check(events.is_empty(), || {
            format!("the audit trail records the forged address {value}: {events:?}")
        })?;
    }
    Ok(())
}

/// 60 wrong-password logins at once from one address: at most 10 reach the backend (the login
/// class, 10 a minute per address), the others are refused 429 (or 403 once the address is
/// blocked), and the address is blocked afterwards.
pub async fn concurrent_logins_hold_the_login_limit(caller: &Caller) -> Outcome {
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..BURST {
        let request = login(caller, None, WRONG_PASSWORD)?;
        burst.spawn(async move {
            let response = request.send().await.map_err(|e| e.to_string())?;
            read(response).await
        });
    }
    let mut answers: Vec<Answer> = Vec::with_capacity(BURST);
    while let Some(joined) = burst.join_next().await {
        answers.push(joined.map_err(|e| e.to_string())??);
    }
    let count = |status: u16, code: &str| {
        answers
            .iter()
            .filter(|a| a.status.as_u16() == status && (code.is_empty() || a.code() == code))
            .count()
    };
    let admitted = count(401, "");
    let limited = count(429, "RATE_LIMIT_EXCEEDED");
    let blocked = count(403, "IP_BLOCKED");
    eprintln!("{BURST} concurrent logins: {admitted} admitted, {limited} 429, {blocked} 403");
    check(admitted + limited + blocked == BURST, || {
        let other: Vec<String> = answers
            .iter()
            .filter(|a| !matches!(a.status.as_u16(), 401 | 429 | 403))
            .map(|a| format!("{} {}", a.status, a.body))
            .collect();
        format!("answers other than 401, 429 and 403 IP_BLOCKED: {other:?}")
    })?;
    check((1..=LOGIN_LIMIT).contains(&admitted), || {
        format!(
            "{admitted} of {BURST} concurrent logins from one address reached the backend; the \
             login class admits {LOGIN_LIMIT} a minute ({limited} were 429, {blocked} 403)"
        )
    })?;
    caller
        .send(caller.edge(Method::GET, "/openapi.json"))
        .await?
        .refused(403, "IP_BLOCKED")
}

/// The front stamps no platform address: the edge refuses (503 `CLIENT_ADDRESS_UNKNOWN`) rather
/// than putting the request in a bucket every address-less request shares.
async fn no_platform_address_refused(caller: &Caller) -> Outcome {
    let request = caller
        .client
        .request(Method::GET, format!("{}/health", caller.fixture.edge_url))
        .header(PEER_HEADER, "none");
    caller
        .send(request)
        .await?
        .refused(503, "CLIENT_ADDRESS_UNKNOWN")
}
