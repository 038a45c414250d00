//! Users, their password history and their MFA state.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, StoreResult, now_ms};

/// How many earlier passwords a new one may not repeat.
pub const PASSWORD_HISTORY_DEPTH: i64 = 5;

/// A user as stored. Secrets stay sealed here; the auth service opens them when needed.
#[derive(Clone)]
pub struct UserRecord {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub roles: Vec<String>,
    pub email_sealed: Option<Vec<u8>>,
    pub mfa_secret_sealed: Option<Vec<u8>>,
    pub mfa_enabled: bool,
    pub mfa_last_step: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("roles", &self.roles)
            .field("mfa_enabled", &self.mfa_enabled)
            .finish_non_exhaustive()
    }
}

/// What it takes to create a user.
pub struct NewUser<'a> {
    pub username: &'a str,
    pub password_hash: &'a str,
    pub roles: &'a [String],
    pub email_sealed: Option<Vec<u8>>,
}

const USER_COLUMNS: &str = "id, username, password_hash, roles, email_sealed, mfa_secret_sealed, mfa_enabled, mfa_last_step, created_at_ms, updated_at_ms";

fn user_from_row(row: &AnyRow) -> StoreResult<UserRecord> {
    let roles: String = row.try_get("roles")?;
    Ok(UserRecord {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        roles: roles
            .split(',')
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect(),
        email_sealed: row.try_get("email_sealed")?,
        mfa_secret_sealed: row.try_get("mfa_secret_sealed")?,
        mfa_enabled: row.try_get::<i64, _>("mfa_enabled")? != 0,
        mfa_last_step: row.try_get("mfa_last_step")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

impl Store {
    /// Creates a user and records the first password in its history.
    pub async fn create_user(&self, new: NewUser<'_>) -> StoreResult<UserRecord> {
        let id = uuid::Uuid::now_v7().to_string();
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO users (id, username, password_hash, roles, email_sealed, mfa_enabled, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $6)",
        )
        .bind(&id)
        .bind(new.username)
        .bind(new.password_hash)
        .bind(new.roles.join(","))
        .bind(new.email_sealed)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from_insert)?;
        sqlx::query("INSERT INTO password_history (user_id, password_hash, created_at_ms) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(new.password_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.user_by_id(&id).await?.ok_or(StoreError::NotFound)
    }

    pub async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn user_by_id(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Users ordered by creation, for the admin listing.
    pub async fn list_users(&self, limit: i64, offset: i64) -> StoreResult<Vec<UserRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY created_at_ms, id LIMIT $1 OFFSET $2"
        ))
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// The hashes of the user's most recent passwords, newest first (the current one included).
    pub async fn recent_password_hashes(&self, user_id: &str) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT password_hash FROM password_history WHERE user_id = $1 ORDER BY created_at_ms DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(PASSWORD_HISTORY_DEPTH)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Replaces the password and keeps only the last [`PASSWORD_HISTORY_DEPTH`] in the history.
    pub async fn set_password(&self, user_id: &str, password_hash: &str) -> StoreResult<()> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let updated =
            sqlx::query("UPDATE users SET password_hash = $1, updated_at_ms = $2 WHERE id = $3")
                .bind(password_hash)
                .bind(now)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("INSERT INTO password_history (user_id, password_hash, created_at_ms) VALUES ($1, $2, $3)")
            .bind(user_id)
            .bind(password_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let keep: Vec<i64> = sqlx::query_scalar(
            "SELECT created_at_ms FROM password_history WHERE user_id = $1 ORDER BY created_at_ms DESC LIMIT 1 OFFSET $2",
        )
        .bind(user_id)
        .bind(PASSWORD_HISTORY_DEPTH - 1)
        .fetch_all(&mut *tx)
        .await?;
        if let Some(oldest_kept) = keep.first() {
            sqlx::query("DELETE FROM password_history WHERE user_id = $1 AND created_at_ms < $2")
                .bind(user_id)
                .bind(oldest_kept)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores a new (sealed) MFA secret; MFA stays off until a code has been verified.
    pub async fn set_mfa_secret(&self, user_id: &str, sealed: &[u8]) -> StoreResult<()> {
        sqlx::query(
            "UPDATE users SET mfa_secret_sealed = $1, mfa_enabled = 0, mfa_last_step = NULL, updated_at_ms = $2 WHERE id = $3",
        )
        .bind(sealed)
        .bind(now_ms())
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records that the code of `step` was used (and turns MFA on). Returns false when that step
    /// or a later one was already used, so one code never works twice.
    pub async fn consume_mfa_step(&self, user_id: &str, step: i64) -> StoreResult<bool> {
        let updated = sqlx::query(
            "UPDATE users SET mfa_last_step = $1, mfa_enabled = 1, updated_at_ms = $2 \
             WHERE id = $3 AND mfa_secret_sealed IS NOT NULL AND (mfa_last_step IS NULL OR mfa_last_step < $1)",
        )
        .bind(step)
        .bind(now_ms())
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Replaces the sealed email and MFA secret, e.g. after re-sealing them under a newer key.
    pub async fn update_sealed_fields(
        &self,
        user_id: &str,
        email_sealed: Option<&[u8]>,
        mfa_secret_sealed: Option<&[u8]>,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE users SET email_sealed = $1, mfa_secret_sealed = $2 WHERE id = $3")
            .bind(email_sealed)
            .bind(mfa_secret_sealed)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Erases the user; their keys, tokens and history go with them (the audit trail keeps only
    /// the opaque user id, which no longer leads to anyone).
    pub async fn delete_user(&self, user_id: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        for table in [
            "api_keys",
            "refresh_tokens",
            "token_families",
            "password_history",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        // What the user made: analyses, rules, queued and finished jobs (a job running right
        // now finishes, then goes with its analysis), NCS stream states.
        for statement in [
            "DELETE FROM analyses WHERE owner = $1",
            "DELETE FROM rules WHERE owner = $1",
            "DELETE FROM jobs WHERE owner = $1 AND state <> 'running'",
        ] {
            sqlx::query(statement)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM stream_states WHERE stream_key LIKE $1")
            .bind(format!("ncs:{user_id}:%"))
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }
}
