//! The account lifecycle an administrator drives (roles, disabling, password resets) and the
//! sessions a user holds (one per refresh family). Whatever takes access away ends the
//! account's credentials in the same transaction: its refresh families, its API keys where
//! asked, and a `sub` deny-list entry that refuses every token issued until then.

use sqlx::Row;
use sqlx::any::AnyRow;

use shared::revocation::{RevocationKind, RevokedTarget};

use super::revocations::file_revocation;
use super::users::record_password;
use super::{Dialect, Store, StoreError, StoreResult, now_ms};

/// A session: one refresh family, from its login to its last refresh.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionRecord {
    pub id: String,
    pub created_at_ms: i64,
    /// The last login or refresh of the family.
    pub last_used_at_ms: i64,
    /// The client's address and user agent at that last use.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

fn session_from_row(row: &AnyRow) -> StoreResult<SessionRecord> {
    let created_at_ms: i64 = row.try_get("created_at_ms")?;
    Ok(SessionRecord {
        id: row.try_get("id")?,
        created_at_ms,
        last_used_at_ms: row
            .try_get::<Option<i64>, _>("last_used_at_ms")?
            .unwrap_or(created_at_ms),
        ip: row.try_get("ip")?,
        user_agent: row.try_get("user_agent")?,
    })
}

/// A `sub` entry filed in a transaction, to publish once it committed.
struct SubjectCut {
    subject: RevokedTarget,
    cutoff_ms: i64,
    expires_at_ms: i64,
}

/// Which credentials an account change ends besides its sessions and tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ApiKeys {
    Keep,
    Revoke,
}

impl Store {
    /// Takes the write lock on account `user_id` for the transaction of `conn`, or finds it gone.
    pub(crate) async fn lock_account(
        &self,
        conn: &mut sqlx::AnyConnection,
        user_id: &str,
    ) -> StoreResult<()> {
        let sql = match self.dialect {
            Dialect::Postgres => "SELECT id FROM users WHERE id = $1 FOR UPDATE",
            Dialect::Sqlite => "SELECT id FROM users WHERE id = $1",
        };
        let found: Option<String> = sqlx::query_scalar(sql)
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await?;
        found.map(drop).ok_or(StoreError::AccountGone)
    }

    /// Ends every session and token of `user_id` (and its API keys with [`ApiKeys::Revoke`])
    /// inside the transaction of `conn`: its refresh families are revoked and a `sub` entry
    /// refuses every token issued until now, kept `token_lifetime_ms`; [`Store::publish`] it
    /// after the commit.
    async fn end_credentials(
        conn: &mut sqlx::AnyConnection,
        user_id: &str,
        keys: ApiKeys,
        token_lifetime_ms: i64,
    ) -> StoreResult<SubjectCut> {
        let now = now_ms();
        sqlx::query(
            "UPDATE token_families SET revoked_at_ms = $1 WHERE user_id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
        if keys == ApiKeys::Revoke {
            sqlx::query(
                "UPDATE api_keys SET revoked_at_ms = $1 WHERE user_id = $2 AND revoked_at_ms IS NULL",
            )
            .bind(now)
            .bind(user_id)
            .execute(&mut *conn)
            .await?;
        }
        let cut = SubjectCut {
            subject: RevokedTarget {
                kind: RevocationKind::Subject,
                id: user_id.to_owned(),
            },
            cutoff_ms: now,
            expires_at_ms: now.saturating_add(token_lifetime_ms),
        };
        file_revocation(conn, &cut.subject, Some(cut.cutoff_ms), cut.expires_at_ms).await?;
        Ok(cut)
    }

    /// Files a committed `sub` entry again through [`Store::revoke`] (an upsert that only ever
    /// widens it), so this process's deny-list holds it at once. Should that fail, the committed
    /// entry still holds once the deny-list next reads the table.
    async fn publish(&self, cut: SubjectCut) {
        if let Err(error) = self
            .revoke(&cut.subject, Some(cut.cutoff_ms), cut.expires_at_ms)
            .await
        {
            tracing::warn!(error = %error, "a committed subject revocation was not republished");
        }
    }

    /// Disables the account (it logs in no more, and every credential it has ends: sessions,
    /// tokens, API keys) or enables it again (its ended credentials stay ended).
    /// [`StoreError::AccountGone`] when there is no such user.
    pub async fn set_account_disabled(
        &self,
        user_id: &str,
        disabled: bool,
        token_lifetime_ms: i64,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        self.lock_account(&mut tx, user_id).await?;
        let now = now_ms();
        if !disabled {
            sqlx::query("UPDATE users SET disabled_at_ms = NULL, updated_at_ms = $1 WHERE id = $2")
                .bind(now)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(());
        }
        sqlx::query(
            "UPDATE users SET disabled_at_ms = $1, updated_at_ms = $1 WHERE id = $2 AND disabled_at_ms IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        let cut =
            Self::end_credentials(&mut tx, user_id, ApiKeys::Revoke, token_lifetime_ms).await?;
        tx.commit().await?;
        self.publish(cut).await;
        Ok(())
    }

    /// Replaces the account's roles; its sessions and tokens end (they carry the old roles), so
    /// the change holds at every edge within the revocation horizon. Its API keys stay: their
    /// grants follow the account's roles. [`StoreError::AccountGone`] when there is no such user.
    pub async fn set_roles(
        &self,
        user_id: &str,
        roles: &[String],
        token_lifetime_ms: i64,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        self.lock_account(&mut tx, user_id).await?;
        sqlx::query("UPDATE users SET roles = $1, updated_at_ms = $2 WHERE id = $3")
            .bind(roles.join(","))
            .bind(now_ms())
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let cut = Self::end_credentials(&mut tx, user_id, ApiKeys::Keep, token_lifetime_ms).await?;
        tx.commit().await?;
        self.publish(cut).await;
        Ok(())
    }

    /// Sets a password an administrator chose: it must be changed at the next login, and every
    /// session and token of the account ends. [`StoreError::AccountGone`] when there is no such
    /// user.
    pub async fn reset_password(
        &self,
        user_id: &str,
        password_hash: &str,
        token_lifetime_ms: i64,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        self.lock_account(&mut tx, user_id).await?;
        let now = now_ms();
        sqlx::query(
            "UPDATE users SET password_hash = $1, must_change_password = 1, updated_at_ms = $2 WHERE id = $3",
        )
        .bind(password_hash)
        .bind(now)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        record_password(&mut tx, user_id, password_hash, now).await?;
        let cut = Self::end_credentials(&mut tx, user_id, ApiKeys::Keep, token_lifetime_ms).await?;
        tx.commit().await?;
        self.publish(cut).await;
        Ok(())
    }

    /// Replaces the sealed email and its blind index (`None`, `None`: no email).
    /// [`StoreError::AccountGone`] when there is no such user.
    pub async fn set_email(
        &self,
        user_id: &str,
        email_sealed: Option<&[u8]>,
        email_index: Option<&str>,
    ) -> StoreResult<()> {
        let updated = sqlx::query(
            "UPDATE users SET email_sealed = $1, email_index = $2, updated_at_ms = $3 WHERE id = $4",
        )
        .bind(email_sealed)
        .bind(email_index)
        .bind(now_ms())
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::AccountGone);
        }
        Ok(())
    }

    /// Records a use of session `family_id` (its login or a refresh) from `ip` with
    /// `user_agent`.
    pub async fn touch_session(
        &self,
        family_id: &str,
        ip: Option<&str>,
        user_agent: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE token_families SET last_used_at_ms = $1, ip = $2, user_agent = $3 WHERE id = $4",
        )
        .bind(now_ms())
        .bind(ip)
        .bind(user_agent)
        .bind(family_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The live sessions of `user_id`, newest first: families not revoked that hold a refresh
    /// token neither spent nor expired.
    pub async fn sessions_of(&self, user_id: &str) -> StoreResult<Vec<SessionRecord>> {
        let rows = sqlx::query(
            "SELECT f.id, f.created_at_ms, f.last_used_at_ms, f.ip, f.user_agent FROM token_families f \
             WHERE f.user_id = $1 AND f.revoked_at_ms IS NULL AND EXISTS (SELECT 1 FROM refresh_tokens r \
             WHERE r.family_id = f.id AND r.used_at_ms IS NULL AND r.expires_at_ms > $2) \
             ORDER BY f.created_at_ms DESC, f.id",
        )
        .bind(user_id)
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    /// Ends session `family_id` of `user_id`; false when the user has no such live session.
    pub async fn end_session(&self, user_id: &str, family_id: &str) -> StoreResult<bool> {
        let ended = sqlx::query(
            "UPDATE token_families SET revoked_at_ms = $1 WHERE id = $2 AND user_id = $3 AND revoked_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(family_id)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(ended.rows_affected() == 1)
    }

    /// Ends every session of `user_id` and every token issued to it until now (an
    /// administrator's sign-out of the account). [`StoreError::AccountGone`] when there is no
    /// such user.
    pub async fn end_sessions(&self, user_id: &str, token_lifetime_ms: i64) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        self.lock_account(&mut tx, user_id).await?;
        let cut = Self::end_credentials(&mut tx, user_id, ApiKeys::Keep, token_lifetime_ms).await?;
        tx.commit().await?;
        self.publish(cut).await;
        Ok(())
    }
}
