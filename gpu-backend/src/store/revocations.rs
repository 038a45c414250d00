//! The deny-list, one table for every kind of entry ([`shared::revocation`]): a token by its
//! `jti` (logout), a signing key by its `kid` (`h200 keys revoke`), a subject's tokens issued
//! before a cut-off (by `sub`). The feed the edges poll reads it, and the gate checks it again,
//! from the store's copy in memory ([`super::deny_list`]).

use shared::revocation::{Revocation, RevocationKind, RevokedTarget, TokenFacts};
use sqlx::Row;

use super::deny_list::FeedKey;
use super::{Store, StoreError, StoreResult, now_ms};

/// How far before a reader's cursor the revocation feed starts again.
pub const REVOCATION_FEED_OVERLAP_MS: i64 = 5_000;

const COLUMNS: &str = "kind, target, issued_before_ms, expires_at_ms, revoked_at_ms";

fn read(row: &sqlx::any::AnyRow) -> StoreResult<Revocation> {
    let kind: String = row.try_get("kind")?;
    let kind = RevocationKind::from_claim(&kind)
        .ok_or_else(|| StoreError::Corrupt(format!("revocation of unknown kind {kind:?}")))?;
    let issued_before_ms: Option<i64> = row.try_get("issued_before_ms")?;
    let unsigned = |ms: i64| u64::try_from(ms).unwrap_or(0);
    Ok(Revocation {
        target: RevokedTarget {
            kind,
            id: row.try_get("target")?,
        },
        issued_before_ms: issued_before_ms.map(unsigned),
        expires_at_ms: unsigned(row.try_get("expires_at_ms")?),
        revoked_at_ms: unsigned(row.try_get("revoked_at_ms")?),
    })
}

/// Files `target` on `conn` (which may be inside a transaction), as [`Store::revoke`] says.
pub(crate) async fn file_revocation(
    conn: &mut sqlx::AnyConnection,
    target: &RevokedTarget,
    issued_before_ms: Option<i64>,
    expires_at_ms: i64,
) -> StoreResult<()> {
    if target.id.is_empty() {
        return Err(StoreError::Corrupt("a revocation names an empty id".into()));
    }
    sqlx::query(
        "INSERT INTO revocations (kind, target, issued_before_ms, expires_at_ms, revoked_at_ms) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (kind, target) DO UPDATE SET \
         issued_before_ms = CASE \
             WHEN revocations.issued_before_ms IS NULL OR excluded.issued_before_ms IS NULL THEN NULL \
             WHEN excluded.issued_before_ms > revocations.issued_before_ms THEN excluded.issued_before_ms \
             ELSE revocations.issued_before_ms END, \
         expires_at_ms = CASE WHEN excluded.expires_at_ms > revocations.expires_at_ms \
             THEN excluded.expires_at_ms ELSE revocations.expires_at_ms END, \
         revoked_at_ms = excluded.revoked_at_ms",
    )
    .bind(target.kind.claim())
    .bind(&target.id)
    .bind(issued_before_ms)
    .bind(expires_at_ms)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// Revokes `target`: the tokens it names that were issued before `issued_before_ms`
    /// (`None`: all of them) are refused; the entry is kept until `expires_at_ms`, when no such
    /// token can be alive. Revoking the same target again only ever widens the entry (a later
    /// cut-off, a later expiry) and publishes it again.
    pub async fn revoke(
        &self,
        target: &RevokedTarget,
        issued_before_ms: Option<i64>,
        expires_at_ms: i64,
    ) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        file_revocation(&mut conn, target, issued_before_ms, expires_at_ms).await?;
        self.deny_list.file(target, issued_before_ms, expires_at_ms);
        Ok(())
    }

    /// Puts a token id on the deny-list until its token would have expired.
    pub async fn revoke_token(&self, jti: &str, expires_at_ms: i64) -> StoreResult<()> {
        let target = RevokedTarget {
            kind: RevocationKind::Token,
            id: jti.to_owned(),
        };
        self.revoke(&target, None, expires_at_ms).await
    }

    /// The cut-offs of the entries that name the token `facts` describes, in
    /// [`RevocationKind::ALL`] order (`None`: no entry), for [`TokenFacts::refusal`]. Answered
    /// from memory: what this store filed counts at once, what other processes filed once the
    /// copy has read it (within [`DENY_LIST_REFRESH_MS`](super::deny_list::DENY_LIST_REFRESH_MS)).
    pub async fn denials(&self, facts: &TokenFacts<'_>) -> StoreResult<Vec<Option<u64>>> {
        let now = now_ms();
        if !self.deny_list.is_fresh(now) {
            self.deny_list
                .refresh(now, |after, limit| self.revocations_after(after, limit))
                .await?;
        }
        Ok(self.deny_list.cutoffs(facts, now))
    }

    /// Unexpired entries after `after` in (`revoked_at_ms`, kind, target) order, at most
    /// `limit`: the deny-list copy's read of the feed.
    async fn revocations_after(&self, after: FeedKey, limit: i64) -> StoreResult<Vec<Revocation>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM revocations \
             WHERE (revoked_at_ms, kind, target) > ($1, $2, $3) AND expires_at_ms > $4 \
             ORDER BY revoked_at_ms, kind, target LIMIT $5"
        ))
        .bind(after.revoked_at_ms)
        .bind(after.kind)
        .bind(after.target)
        .bind(now_ms())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(read).collect()
    }

    /// The `kid`s of every revoked signing key.
    pub async fn revoked_key_ids(&self) -> StoreResult<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT target FROM revocations WHERE kind = $1 ORDER BY target")
                .bind(RevocationKind::SigningKey.claim())
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Entries revoked after `since_ms` (less [`REVOCATION_FEED_OVERLAP_MS`]) that have not yet
    /// expired, oldest first: what an edge polls to keep its copy current. A page never ends
    /// inside a millisecond, so a reader that continues from the newest `revoked_at_ms` it saw
    /// misses nothing; the overlap covers revocations committed late within a millisecond the
    /// reader had already passed. Entries may repeat across polls (filing them is idempotent).
    pub async fn revocations_since(
        &self,
        since_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<Revocation>> {
        let now = now_ms();
        let from = since_ms.saturating_sub(REVOCATION_FEED_OVERLAP_MS);
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM revocations WHERE revoked_at_ms > $1 AND expires_at_ms > $2 \
             ORDER BY revoked_at_ms, kind, target LIMIT $3"
        ))
        .bind(from)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut page = rows.iter().map(read).collect::<StoreResult<Vec<_>>>()?;
        if page.len() as i64 == limit
            && let Some(last) = page.last().cloned()
        {
            let rest = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM revocations WHERE revoked_at_ms = $1 \
                 AND (kind > $2 OR (kind = $2 AND target > $3)) AND expires_at_ms > $4 \
                 ORDER BY kind, target"
            ))
            .bind(i64::try_from(last.revoked_at_ms).unwrap_or(i64::MAX))
            .bind(last.target.kind.claim())
            .bind(&last.target.id)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
            for row in &rest {
                page.push(read(row)?);
            }
        }
        Ok(page)
    }

    /// Drops entries that can no longer name a live token.
    pub async fn prune_revocations(&self) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM revocations WHERE expires_at_ms <= $1")
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
