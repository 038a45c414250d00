//! Refresh-token families: rotation and reuse detection. The deny-list lives in
//! [`super::revocations`].

use sqlx::Row;

use super::{Store, StoreError, StoreResult, now_ms};

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

impl Store {
    /// Starts a new refresh-token family (one per login). [`StoreError::AccountGone`] when the
    /// user is not there (erased meanwhile).
    pub async fn create_token_family(&self, family_id: &str, user_id: &str) -> StoreResult<()> {
        sqlx::query("INSERT INTO token_families (id, user_id, created_at_ms) VALUES ($1, $2, $3)")
            .bind(family_id)
            .bind(user_id)
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .map_err(StoreError::from_insert)?;
        Ok(())
    }

    /// Records an issued refresh token. [`StoreError::AccountGone`] when its user (and with it
    /// the family) is not there.
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
        .await
        .map_err(StoreError::from_insert)?;
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
}
