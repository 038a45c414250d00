//! A token signing key revoked while the system runs: `h200 keys revoke KID` against the
//! backend's data folder, then the edge refuses the key's tokens within 60 s (`REVOKED_KEY`)
//! and a fresh login works under the new key. Every token of the old key dies with it, so the
//! scenario runs on a system of its own.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};

use crate::harness::h200;
use crate::{Answer, Caller, Outcome, check};

/// How long a revocation may take to reach every edge.
const REVOCATION_HORIZON: Duration = Duration::from_secs(60);

/// The `kid` in a JWT's header.
fn kid_of(token: &str) -> Result<String, String> {
    let header = token.split('.').next().unwrap_or_default();
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|e| format!("token header: {e}"))?;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("token header: {e}"))?;
    header["kid"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no kid in the token header {header}"))
}

pub async fn key_revocation(caller: &Caller) -> Outcome {
    let token = caller.token("viewer").await?;
    let kid = kid_of(&token)?;
    let before = get_rules(caller, &token).await?;
    check(before.status == StatusCode::OK, || {
        format!("before the revocation: {} {}", before.status, before.body)
    })?;

    let fixture = &caller.fixture;
    let revoked = h200(&fixture.h200_binary, &fixture.data_dir)
        .args(["keys", "revoke", &kid])
        .output()
        .map_err(|e| format!("h200 keys revoke: {e}"))?;
    let printed = String::from_utf8_lossy(&revoked.stdout);
    check(revoked.status.success() && printed.contains(&kid), || {
        format!(
            "h200 keys revoke {kid}: {}\n{printed}{}",
            revoked.status,
            String::from_utf8_lossy(&revoked.stderr)
        )
    })?;

    let deadline = Instant::now() + REVOCATION_HORIZON;
    refused_as_revoked(caller, &token, deadline).await?;
    let fresh = caller.token("viewer").await?;
    let fresh_kid = kid_of(&fresh)?;
    check(fresh_kid != kid, || {
        format!("a login after the revocation still signs with {kid}")
    })?;
    let after = get_rules(caller, &fresh).await?;
    check(after.status == StatusCode::OK, || {
        format!(
            "a token under the new key {fresh_kid}: {} {}",
            after.status, after.body
        )
    })?;
    // The new key in the edge's key set does not bring the old one back.
    refused_as_revoked(caller, &token, deadline).await
}

/// `GET /api/v1/rules` (viewers may) with `token`.
async fn get_rules(caller: &Caller, token: &str) -> Result<Answer, String> {
    caller
        .send(caller.edge(Method::GET, "/api/v1/rules").bearer_auth(token))
        .await
}

/// Polls with `token` until it is refused `REVOKED_KEY`, failing after `deadline`. Meanwhile
/// the token may still pass (the revocation has not reached this edge yet), or be refused as
/// signed by a key the edge does not know (its JWKS dropped the key before its deny-list had
/// it); any other answer fails at once.
async fn refused_as_revoked(caller: &Caller, token: &str, deadline: Instant) -> Outcome {
    loop {
        let answer = get_rules(caller, token).await?;
        if answer.code() == "REVOKED_KEY" {
            return answer.refused(401, "REVOKED_KEY");
        }
        check(
            answer.status == StatusCode::OK || answer.code() == "INVALID_TOKEN",
            || {
                format!(
                    "while the revocation spreads: {} {}",
                    answer.status, answer.body
                )
            },
        )?;
        check(Instant::now() < deadline, || {
            format!(
                "the revoked key's token still answers {} {} {} s after the revocation",
                answer.status,
                answer.body,
                REVOCATION_HORIZON.as_secs()
            )
        })?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
