//! A token signing key revoked while the system runs: `h200 keys revoke KID` against the
//! backend's data folder, then the edge refuses the key's tokens within 60 s (`REVOKED_KEY`)
//! and a fresh login works under the new key. Every token of the old key dies with it, so the
//! scenario runs on a system of its own.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};

use crate::harness::h200;
use crate::{Caller, Outcome, check};

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
    let rules = || {
        caller
            .edge(Method::GET, "/api/v1/rules")
            .bearer_auth(&token)
    };
    let before = caller.send(rules()).await?;
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

    // Until the edge's deny-list has the key, the backend refuses the token (REVOKED_KEY too),
    // or the edge does not know the key any more (its JWKS was refreshed first: INVALID_TOKEN).
    let deadline = Instant::now() + REVOCATION_HORIZON;
    loop {
        let answer = caller.send(rules()).await?;
        if answer.code() == "REVOKED_KEY" {
            answer.refused(401, "REVOKED_KEY")?;
            break;
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
                "the revoked key's token still answers {} {} after {} s",
                answer.status,
                answer.body,
                REVOCATION_HORIZON.as_secs()
            )
        })?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let fresh = caller.token("viewer").await?;
    let fresh_kid = kid_of(&fresh)?;
    check(fresh_kid != kid, || {
        format!("a login after the revocation still signs with {kid}")
    })?;
    let after = caller
        .send(
            caller
                .edge(Method::GET, "/api/v1/rules")
                .bearer_auth(&fresh),
        )
        .await?;
    check(after.status == StatusCode::OK, || {
        format!(
            "a token under the new key {fresh_kid}: {} {}",
            after.status, after.body
        )
    })?;
    caller.send(rules()).await?.refused(401, "REVOKED_KEY")
}
