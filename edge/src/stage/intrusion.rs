//! Stage 4: intrusion check. Blocked addresses are refused (403 `IP_BLOCKED`), except on the
//! liveness and readiness probes (routes marked `probe` in the route table: they reveal nothing
//! and cost nothing, so a health checker behind a blocked address still sees the service);
//! traversal, script and SQL-injection patterns in the path or query are refused (400
//! `SUSPICIOUS_REQUEST`); tool user agents are only noted. [`IntrusionWatch`] also keeps the
//! counters that start a block: failed logins and rate-limit violations per address.
//!
//! A block is audited as at most two `ip_blocked` events, however many requests it refuses: one
//! when it starts (its reason and until when), and one with the number of requests it refused,
//! written by the first request from the address after the block ended (the state keeps an
//! ended block for [`crate::ports::ENDED_BLOCK_KEPT_MS`] for that). The refused requests
//! themselves are not audited one by one; the state's tally counts them
//! ([`EdgeState::check_block`]).

use shared::ErrorCode;
use shared::audit::{AuditEventType, Severity};
use shared::route_policy::{Resolution, RoutePolicy};

use super::Refusal;
use super::audit::{Observed, event};
use crate::config::IntrusionPolicy;
use crate::ports::{AuditSink, BlockCheck, EdgeState, Entropy};

/// The intrusion policy over the state that counts and blocks, and the sink its events go to.
pub struct IntrusionWatch<'a, S> {
    pub state: &'a S,
    pub policy: &'a IntrusionPolicy,
    /// The route table, which marks the probes a block lets through.
    pub routes: &'a RoutePolicy,
    pub audit: &'a dyn AuditSink,
    pub entropy: &'a dyn Entropy,
}

impl<S: EdgeState> IntrusionWatch<'_, S> {
    /// Refuses blocked addresses (but for the probe routes) and attack patterns, and
    /// notes a tool user agent once per address and window. A state store that cannot answer
    /// refuses the request. The first request after a block ended audits how many requests the
    /// block refused.
    pub async fn check(
        &self,
        observed: &Observed<'_>,
        query: Option<&str>,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        let ip = observed.ip;
        if !self.is_probe(observed.method, observed.path) {
            match self.state.check_block(ip, now_ms).await.map_err(|e| {
                Refusal::new(ErrorCode::ServiceUnavailable).with_detail(e.to_string())
            })? {
                BlockCheck::Clear => {}
                BlockCheck::Blocked { until_ms } => {
                    let retry_secs = until_ms.saturating_sub(now_ms).div_ceil(1000).max(1);
                    return Err(Refusal::new(ErrorCode::IpBlocked)
                        .with_header("Retry-After", retry_secs.to_string()));
                }
                BlockCheck::Ended { until_ms, refused } => {
                    let detail =
                        format!("block ended at {until_ms} ms after refusing {refused} requests");
                    let code = Some(ErrorCode::IpBlocked);
                    self.emit(AuditEventType::IpBlocked, observed, code, &detail, now_ms);
                }
            }
        }
        if let Some(family) = find_attack(observed.path, query) {
            return Err(Refusal::new(ErrorCode::SuspiciousRequest).with_detail(family));
        }
        if let Some(tool) = observed.user_agent.and_then(tool_agent) {
            let key = format!("tool-agent:{ip}");
            if let Ok(1) = self
                .state
                .count_event(&key, self.policy.tool_note_window_ms, now_ms)
                .await
            {
                // A tool is no attack (the README's own examples use curl): noted at `info`,
                // so it pages no one.
                let detail = format!("tool user agent {tool}");
                let mut noted = event(
                    AuditEventType::SuspiciousActivity,
                    observed,
                    None,
                    None,
                    &detail,
                    now_ms,
                    self.entropy,
                );
                noted.severity = Severity::Info;
                self.audit.emit(noted);
            }
        }
        Ok(())
    }

    /// Counts a failed login (a 401 on the login route) and blocks the address at the threshold.
    pub async fn note_failed_login(&self, observed: &Observed<'_>, now_ms: u64) {
        let policy = self.policy;
        let key = format!("failed-logins:{}", observed.ip);
        let count = self
            .state
            .count_event(&key, policy.failed_login_window_ms, now_ms)
            .await;
        if count.is_ok_and(|n| n >= policy.failed_logins) {
            let detail = format!(
                "{} failed logins within {} s",
                policy.failed_logins,
                policy.failed_login_window_ms / 1000
            );
            self.block(observed, &key, policy.login_block_ms, &detail, now_ms)
                .await;
        }
    }

    /// Counts a rate-limit violation and blocks the address beyond the threshold.
    pub async fn note_rate_violation(&self, observed: &Observed<'_>, now_ms: u64) {
        let policy = self.policy;
        let key = format!("rate-violations:{}", observed.ip);
        let count = self
            .state
            .count_event(&key, policy.violation_window_ms, now_ms)
            .await;
        if count.is_ok_and(|n| n > policy.rate_violations) {
            let detail = format!(
                "more than {} rate-limit violations within {} s",
                policy.rate_violations,
                policy.violation_window_ms / 1000
            );
            self.block(observed, &key, policy.violation_block_ms, &detail, now_ms)
                .await;
        }
    }

    /// Blocks the address for `duration_ms`, forgets the counter that led to it and audits the
    /// block's start.
    async fn block(
        &self,
        observed: &Observed<'_>,
        counter: &str,
        duration_ms: u64,
        detail: &str,
        now_ms: u64,
    ) {
        let until_ms = now_ms.saturating_add(duration_ms);
        let blocked = self.state.block(observed.ip, until_ms).await;
        let _ = self.state.reset_events(counter).await;
        if blocked.is_ok() {
            let detail = format!(
                "address blocked for {} s (until {until_ms} ms): {detail}",
                duration_ms / 1000
            );
            let code = Some(ErrorCode::IpBlocked);
            self.emit(AuditEventType::IpBlocked, observed, code, &detail, now_ms);
        }
    }

    /// Whether the request resolves to a probe route of the route table.
    fn is_probe(&self, method: &str, path: &str) -> bool {
        matches!(
            self.routes.resolve(method, path),
            Resolution::Found(found) if found.route.probe
        )
    }

    fn emit(
        &self,
        kind: AuditEventType,
        observed: &Observed<'_>,
        code: Option<ErrorCode>,
        detail: &str,
        now_ms: u64,
    ) {
        self.audit.emit(event(
            kind,
            observed,
            None,
            code,
            detail,
            now_ms,
            self.entropy,
        ));
    }
}

/// Patterns looked for in the path and query after percent-decoding twice, lower-cased, with
/// whitespace runs collapsed to one space. Each names the attack family for the audit detail.
const ATTACK_PATTERNS: &[(&str, &str)] = &[
    ("../", "path traversal"),
    ("..\\", "path traversal"),
    ("/..", "path traversal"),
    ("/etc/passwd", "path traversal"),
    ("<script", "script injection"),
    ("javascript:", "script injection"),
    ("onerror=", "script injection"),
    ("onload=", "script injection"),
    ("<iframe", "script injection"),
    ("<svg", "script injection"),
    ("' or ", "SQL injection"),
    ("\" or ", "SQL injection"),
    (" or 1=1", "SQL injection"),
    ("'or'", "SQL injection"),
    ("union select", "SQL injection"),
    ("union all select", "SQL injection"),
    ("'--", "SQL injection"),
    ("' --", "SQL injection"),
    ("';", "SQL injection"),
    ("drop table", "SQL injection"),
    ("sleep(", "SQL injection"),
    ("benchmark(", "SQL injection"),
    ("information_schema", "SQL injection"),
    ("xp_cmdshell", "SQL injection"),
];

/// User agents of tools and scanners: noted in the audit log, never blocked.
const TOOL_AGENTS: &[&str] = &[
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "python-httpx",
    "aiohttp",
    "go-http-client",
    "httpie",
    "sqlmap",
    "nikto",
    "nmap",
    "masscan",
    "zgrab",
];

/// The attack family whose pattern appears in `path` or `query`, if any.
pub fn find_attack(path: &str, query: Option<&str>) -> Option<&'static str> {
    let mut text = normalize(path);
    if let Some(query) = query {
        text.push('?');
        text.push_str(&normalize(&query.replace('+', " ")));
    }
    ATTACK_PATTERNS
        .iter()
        .find(|(pattern, _)| text.contains(pattern))
        .map(|(_, family)| *family)
}

/// The tool a user agent names, if it is one worth noting.
pub fn tool_agent(user_agent: &str) -> Option<&'static str> {
    let lower = user_agent.to_ascii_lowercase();
    TOOL_AGENTS
        .iter()
        .find(|tool| lower.contains(*tool))
        .copied()
}

fn normalize(text: &str) -> String {
    let once = percent_decode(text.as_bytes());
    let twice = percent_decode(&once);
    let lower = String::from_utf8_lossy(&twice).to_lowercase();
    let mut out = String::with_capacity(lower.len());
    let mut in_space = false;
    for c in lower.chars() {
        if c.is_whitespace() {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as it is.
fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if byte == b'%'
            && let (Some(high), Some(low)) = (
                bytes.get(index + 1).and_then(|b| hex_value(*b)),
                bytes.get(index + 2).and_then(|b| hex_value(*b)),
            )
        {
            out.push(high * 16 + low);
            index += 3;
            continue;
        }
        out.push(byte);
        index += 1;
    }
    out
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attacks_are_found_through_encoding_and_case() {
        assert_eq!(
            find_attack("/api/v1/../../etc", None),
            Some("path traversal")
        );
        assert_eq!(
            find_attack("/api/v1/%2e%2e%2fsecret", None),
            Some("path traversal")
        );
        assert_eq!(
            find_attack("/api/%252e%252e%252f", None),
            Some("path traversal")
        );
        assert_eq!(
            find_attack("/api/v1/rules", Some("q=%3CScRiPt%3Ealert(1)")),
            Some("script injection")
        );
        assert_eq!(
            find_attack("/api/v1/rules", Some("name=x'%20OR%20%201=1")),
            Some("SQL injection")
        );
        assert_eq!(
            find_attack("/api/v1/rules", Some("q=1+UNION++SELECT+password")),
            Some("SQL injection")
        );
    }

    #[test]
    fn ordinary_requests_pass() {
        assert_eq!(
            find_attack("/api/v1/rules/r-1", Some("limit=10&offset=20")),
            None
        );
        assert_eq!(find_attack("/api/v1/analysis", Some("wait=5")), None);
        assert_eq!(find_attack("/health", None), None);
        assert_eq!(find_attack("/a%zz", Some("%")), None);
    }

    #[test]
    fn a_tool_agent_is_noted_once_at_info_and_an_attack_is_critical() {
        use crate::memory::MemoryState;
        use crate::testing::{CountingEntropy, RecordingAudit, block_on};
        let (state, policy, routes) = (
            MemoryState::default(),
            IntrusionPolicy::default(),
            RoutePolicy::default(),
        );
        let audit = std::sync::Arc::new(RecordingAudit::default());
        let entropy = CountingEntropy::default();
        let watch = IntrusionWatch {
            state: &state,
            policy: &policy,
            routes: &routes,
            audit: &audit,
            entropy: &entropy,
        };
        let observed = Observed {
            request_id: "r1",
            ip: "203.0.113.9",
            user_agent: Some("curl/8.5.0"),
            method: "GET",
            path: "/health",
            principal: None,
        };
        for _ in 0..3 {
            assert!(block_on(watch.check(&observed, None, 1_000)).is_ok());
        }
        let refused = block_on(watch.check(&observed, Some("q=1+UNION+SELECT+x"), 2_000));
        assert!(refused.is_err());
        let events = audit.0.lock().expect("test lock");
        assert_eq!(events.len(), 1, "noted once per window: {events:?}");
        assert_eq!(events[0].event_type, AuditEventType::SuspiciousActivity);
        assert_eq!(events[0].severity, Severity::Info);
        assert_eq!(
            AuditEventType::SuspiciousActivity.severity(),
            Severity::Critical,
            "an attack pattern stays critical"
        );
    }

    #[test]
    fn tool_agents_are_recognised() {
        assert_eq!(tool_agent("curl/8.5.0"), Some("curl/"));
        assert_eq!(tool_agent("python-requests/2.31"), Some("python-requests"));
        assert_eq!(tool_agent("Mozilla/5.0 (X11; Linux x86_64)"), None);
    }
}
