//! Refresh-token families (rotation and reuse detection) and the `jti` deny-list.

use sqlx::Row;

use super::{Store, StoreResult, now_ms};

/// How far before a reader's cursor the revocation feed starts again.
pub const REVOCATION_FEED_OVERLAP_MS: i64 = 5_000;

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    /// The token was live and is now spent; issue its successor in `family_id`.
    Rotated { user_id: String, family_id: String },
    /// The token was spent before: the whole family is now revoked.
    Reused { user_id: String, family_id: String },
    /// Unknown, expired, or its family is revoked.
    Invalid,
}

/// A revoked token id and when its token would have expired anyway.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RevokedToken {
    pub jti: String,
    pub expires_at_ms: i64,
    pub revoked_at_ms: i64,
}

impl Store {
    /// Starts a new refresh-token family (one per login).
    pub async fn create_token_family(&self, family_id: &str, user_id: &str) -> StoreResult<()> {
        sqlx::query("INSERT INTO token_families (id, user_id, created_at_ms) VALUES ($1, $2, $3)")
            .bind(family_id)
            .bind(user_id)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records an issued refresh token.
    pub async fn record_refresh_token(
        &self,
        jti: &str,
        family_id: &str,
        user_id: &str,
        expires_at_ms: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO refresh_tokens (jti, family_id, user_id, issued_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(jti)
        .bind(family_id)
        .bind(user_id)
        .bind(now_ms())
        .bind(expires_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Spends a refresh token exactly once. A second presentation revokes its family.
    pub async fn use_refresh_token(&self, jti: &str) -> StoreResult<RefreshUse> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT r.user_id, r.family_id, r.expires_at_ms, r.used_at_ms, f.revoked_at_ms \
             FROM refresh_tokens r JOIN token_families f ON f.id = r.family_id WHERE r.jti = $1",
        )
        .bind(jti)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(RefreshUse::Invalid);
        };
        let user_id: String = row.try_get("user_id")?;
        let family_id: String = row.try_get("family_id")?;
        let expires_at_ms: i64 = row.try_get("expires_at_ms")?;
        let family_revoked: Option<i64> = row.try_get("revoked_at_ms")?;
        if family_revoked.is_some() || expires_at_ms <= now {
            return Ok(RefreshUse::Invalid);
        }
        // The conditional update is the single point of truth under concurrency: only one of two
        // racing presentations can flip `used_at_ms`.
        let spent = sqlx::query(
            "UPDATE refresh_tokens SET used_at_ms = $1 WHERE jti = $2 AND used_at_ms IS NULL",
        )
        .bind(now)
        .bind(jti)
        .execute(&mut *tx)
        .await?;
        if spent.rows_affected() == 1 {
            tx.commit().await?;
            return Ok(RefreshUse::Rotated { user_id, family_id });
        }
        sqlx::query(
            "UPDATE token_families SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(now)
        .bind(&family_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(RefreshUse::Reused { user_id, family_id })
    }

    /// Revokes every refresh family of a user (logout everywhere, password change).
    pub async fn revoke_user_families(&self, user_id: &str) -> StoreResult<()> {
        sqlx::query("UPDATE token_families SET revoked_at_ms = $1 WHERE user_id = $2 AND revoked_at_ms IS NULL")
            .bind(now_ms())
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Revokes one refresh family.
    pub async fn revoke_family(&self, family_id: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE token_families SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(family_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Puts a token id on the deny-list until its token would have expired.
    pub async fn revoke_token(&self, jti: &str, expires_at_ms: i64) -> StoreResult<()> {
        let sql = "INSERT INTO revoked_tokens (jti, expires_at_ms, revoked_at_ms) VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING";
        sqlx::query(sql)
            .bind(jti)
            .bind(expires_at_ms)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn is_token_revoked(&self, jti: &str) -> StoreResult<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT expires_at_ms FROM revoked_tokens WHERE jti = $1")
                .bind(jti)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }

    /// Deny-list entries revoked after `since_ms` (less [`REVOCATION_FEED_OVERLAP_MS`]) that have
    /// not yet expired, oldest first: what an edge polls to keep its copy current. A page never
    /// ends inside a millisecond, so a reader that continues from the newest `revoked_at_ms` it
    /// saw misses nothing; the overlap covers revocations committed late within a millisecond
    /// the reader had already passed. Entries may repeat across polls (adding them is idempotent).
    pub async fn revoked_tokens_since(
        &self,
        since_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<RevokedToken>> {
        let now = now_ms();
        let from = since_ms.saturating_sub(REVOCATION_FEED_OVERLAP_MS);
        let read = |row: &sqlx::any::AnyRow| -> StoreResult<RevokedToken> {
            Ok(RevokedToken {
                jti: row.try_get("jti")?,
                expires_at_ms: row.try_get("expires_at_ms")?,
                revoked_at_ms: row.try_get("revoked_at_ms")?,
            })
        };
        let rows = sqlx::query(
            "SELECT jti, expires_at_ms, revoked_at_ms FROM revoked_tokens \
             WHERE revoked_at_ms > $1 AND expires_at_ms > $2 ORDER BY revoked_at_ms, jti LIMIT $3",
        )
        .bind(from)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut page = rows.iter().map(read).collect::<StoreResult<Vec<_>>>()?;
        if page.len() as i64 == limit
            && let Some(last) = page.last().cloned()
        {
            let rest = sqlx::query(
                "SELECT jti, expires_at_ms, revoked_at_ms FROM revoked_tokens \
                 WHERE revoked_at_ms = $1 AND jti > $2 AND expires_at_ms > $3 ORDER BY jti",
            )
            .bind(last.revoked_at_ms)
            .bind(&last.jti)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
            for row in &rest {
                page.push(read(row)?);
            }
        }
        Ok(page)
    }

    /// Drops deny-list entries whose tokens have expired anyway.
    pub async fn prune_revoked_tokens(&self) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at_ms <= $1")
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
