//! The edge's own calls to the backend, signed like forwarded requests but with no principal:
//! the JWKS, the revocation feed and API-key grants. [`BackendSync`] fetches; its `sync_*` and
//! `refresh_*` functions put what came back into the edge state.

use std::sync::Arc;

use serde::Deserialize;
use shared::api_key::{ApiKeyDigest, ApiKeyGrant};
use shared::revocation::Revocation;
use shared::signing::MessageSigningKey;
use shared::token::KeySet;

use crate::ports::{
    Clock, EdgeState, Entropy, StateError, Upstream, UpstreamError, UpstreamResponse,
};
use crate::stage::sign::{self, Outbound};

/// Where the backend publishes its token keys.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// The deny-list feed.
pub const REVOCATIONS_PATH: &str = "/internal/v1/revocations";
/// API-key grants by digest.
pub const API_KEYS_PATH: &str = "/internal/v1/api-keys/";
/// The audit ingest.
pub const AUDIT_PATH: &str = "/internal/v1/audit";
/// Most pages one revocation sync reads.
const MAX_REVOCATION_PAGES: usize = 20;

/// Why a call of the edge to the backend failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("the backend answered {0}")]
    Status(u16),
    #[error("the backend's answer is malformed")]
    Malformed,
    #[error(transparent)]
    State(#[from] StateError),
    #[error("the request could not be signed")]
    Signing,
}

/// A client of the backend's routes for the edge itself.
pub struct BackendSync<'a, U> {
    pub upstream: &'a U,
    pub signing_key: &'a MessageSigningKey,
    pub clock: &'a dyn Clock,
    pub entropy: &'a dyn Entropy,
}

/// One page of the revocation feed.
#[derive(Debug, Deserialize)]
struct FeedPage {
    revoked: Vec<Revocation>,
}

impl<U: Upstream> BackendSync<'_, U> {
    /// The backend's JWKS as a key set.
    pub async fn fetch_key_set(&self) -> Result<KeySet, SyncError> {
        let response = self.get(JWKS_PATH, None).await?;
        if response.status != 200 {
            return Err(SyncError::Status(response.status));
        }
        let text = std::str::from_utf8(&response.body).map_err(|_| SyncError::Malformed)?;
        KeySet::from_jwks_json(text).map_err(|_| SyncError::Malformed)
    }

    /// The feed's entries revoked after `since_ms` (the backend repeats a few seconds before it).
    pub async fn fetch_revocations(&self, since_ms: u64) -> Result<Vec<Revocation>, SyncError> {
        let query = format!("since_ms={since_ms}");
        let response = self.get(REVOCATIONS_PATH, Some(&query)).await?;
        if response.status != 200 {
            return Err(SyncError::Status(response.status));
        }
        let page: FeedPage =
            serde_json::from_slice(&response.body).map_err(|_| SyncError::Malformed)?;
        Ok(page.revoked)
    }

    /// The grant of an API key by its digest; `None` when the backend knows no such key.
    pub async fn fetch_grant(
        &self,
        digest: &ApiKeyDigest,
    ) -> Result<Option<ApiKeyGrant>, SyncError> {
        let path = format!("{API_KEYS_PATH}{}", digest.as_str());
        let response = self.get(&path, None).await?;
        match response.status {
            200 => serde_json::from_slice(&response.body)
                .map(Some)
                .map_err(|_| SyncError::Malformed),
            404 => Ok(None),
            status => Err(SyncError::Status(status)),
        }
    }

    /// A signed `GET` of the edge's own (no principal).
    async fn get(&self, path: &str, query: Option<&str>) -> Result<UpstreamResponse, SyncError> {
        let mut id = [0u8; 16];
        self.entropy.fill(&mut id);
        let request_id = format!("edge-{}", hex::encode(id));
        let outbound = Outbound {
            method: "GET",
            path,
            query,
            body: Vec::new(),
            principal: None,
            request_id: &request_id,
            headers: vec![("accept".into(), "application/json".into())],
        };
        let signed = sign::sign(
            outbound,
            self.signing_key,
            self.clock.now_ms(),
            self.entropy,
        )
        .map_err(|_| SyncError::Signing)?;
        Ok(self.upstream.send(signed).await?)
    }
}

/// Fetches the backend's JWKS and makes it the cached key set; a key the backend dropped stops
/// verifying tokens from then on.
pub async fn refresh_keys<U: Upstream, S: EdgeState>(
    backend: &BackendSync<'_, U>,
    state: &S,
) -> Result<Arc<KeySet>, SyncError> {
    let keys = Arc::new(backend.fetch_key_set().await?);
    state.replace_key_set(keys.clone()).await?;
    Ok(keys)
}

/// Reads the revocation feed from the stored cursor on and files every entry (a token, a
/// signing key or a subject's older tokens) in the deny-list; returns how many entries it filed.
pub async fn sync_revocations<U: Upstream, S: EdgeState>(
    backend: &BackendSync<'_, U>,
    state: &S,
) -> Result<usize, SyncError> {
    let mut filed = 0;
    for _ in 0..MAX_REVOCATION_PAGES {
        let cursor = state.revocation_cursor().await?;
        let entries = backend.fetch_revocations(cursor).await?;
        let mut next = cursor;
        for entry in &entries {
            state
                .deny(
                    &entry.target.deny_key(),
                    entry.cutoff_ms(),
                    entry.expires_at_ms,
                )
                .await?;
            next = next.max(entry.revoked_at_ms);
        }
        filed += entries.len();
        if next == cursor {
            break;
        }
        state.set_revocation_cursor(next).await?;
    }
    Ok(filed)
}
