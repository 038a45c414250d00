//! Users, their password history and their MFA state.

use sqlx::Row;
use sqlx::any::AnyRow;

use shared::revocation::{RevocationKind, RevokedTarget};

use super::revocations::file_revocation;
use super::{Dialect, Store, StoreError, StoreResult, now_ms};

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
    /// When an administrator disabled the account; a disabled account logs in no more.
    pub disabled_at_ms: Option<i64>,
    /// The password was set by an administrator: its tokens can only change it.
    pub must_change_password: bool,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("roles", &self.roles)
            .field("mfa_enabled", &self.mfa_enabled)
            .field("disabled_at_ms", &self.disabled_at_ms)
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

const USER_COLUMNS: &str = "id, username, password_hash, roles, email_sealed, mfa_secret_sealed, mfa_enabled, mfa_last_step, created_at_ms, updated_at_ms, disabled_at_ms, must_change_password";

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
        disabled_at_ms: row.try_get("disabled_at_ms")?,
        must_change_password: row.try_get::<i64, _>("must_change_password")? != 0,
    })
}

impl Store {
    /// Creates a user and records the first password in its history.
    pub async fn create_user(&self, new: NewUser<'_>) -> StoreResult<UserRecord> {
        let id = uuid::Uuid::now_v7().to_string();
        self.insert_user(&id, new, false, None).await
    }

    /// Creates user `id` (a UUIDv7 the caller drew, so it could seal the email to it), flagged
    /// when an administrator chose its password (it must then be changed before anything
    /// else), with its email's blind index `email_index`; one transaction.
    pub(crate) async fn insert_user(
        &self,
        id: &str,
        new: NewUser<'_>,
        must_change_password: bool,
        email_index: Option<&str>,
    ) -> StoreResult<UserRecord> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO users (id, username, password_hash, roles, email_sealed, mfa_enabled, created_at_ms, updated_at_ms, must_change_password, email_index) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $6, $7, $8)",
        )
        .bind(id)
        .bind(new.username)
        .bind(new.password_hash)
        .bind(new.roles.join(","))
        .bind(new.email_sealed)
        .bind(now)
        .bind(i64::from(must_change_password))
        .bind(email_index)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from_insert)?;
        sqlx::query("INSERT INTO password_history (user_id, password_hash, created_at_ms) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(new.password_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.user_by_id(id).await?.ok_or(StoreError::NotFound)
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

    /// Replaces the password (the user's own choice: one an administrator set need not be
    /// changed any more) and keeps only the last [`PASSWORD_HISTORY_DEPTH`] in the history.
    /// [`StoreError::AccountGone`] when the user is not there.
    pub async fn set_password(&self, user_id: &str, password_hash: &str) -> StoreResult<()> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let updated =
            sqlx::query("UPDATE users SET password_hash = $1, must_change_password = 0, updated_at_ms = $2 WHERE id = $3")
                .bind(password_hash)
                .bind(now)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::AccountGone);
        }
        record_password(&mut tx, user_id, password_hash, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a new (sealed) MFA secret; MFA stays off until a code has been verified.
    /// [`StoreError::AccountGone`] when the user is not there.
    pub async fn set_mfa_secret(&self, user_id: &str, sealed: &[u8]) -> StoreResult<()> {
        let updated = sqlx::query(
            "UPDATE users SET mfa_secret_sealed = $1, mfa_enabled = 0, mfa_last_step = NULL, updated_at_ms = $2 WHERE id = $3",
        )
        .bind(sealed)
        .bind(now_ms())
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::AccountGone);
        }
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

    /// The users whose email blind index is one of `entries` (at most two: more than one means
    /// the address does not name one account).
    pub async fn users_by_email_index(&self, entries: &[String]) -> StoreResult<Vec<UserRecord>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=entries.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email_index IN ({}) LIMIT 2",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for entry in entries {
            query = query.bind(entry);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Files the user's email under blind index `entry` (`None`: no email).
    pub async fn set_email_index(&self, user_id: &str, entry: Option<&str>) -> StoreResult<()> {
        sqlx::query("UPDATE users SET email_index = $1 WHERE id = $2")
            .bind(entry)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Users with a sealed email whose index is missing or not under key `version`: each id
    /// with its sealed email.
    pub async fn users_to_index(&self, version: u32) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let prefix = format!("{version}:");
        let rows = sqlx::query(
            "SELECT id, email_sealed FROM users WHERE email_sealed IS NOT NULL \
             AND (email_index IS NULL OR substr(email_index, 1, CAST($1 AS INTEGER)) <> $2)",
        )
        .bind(prefix.len() as i64)
        .bind(&prefix)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("id")?, row.try_get("email_sealed")?)))
            .collect()
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

    /// Holds the account `user_id` until the transaction of `conn` ends, or finds it gone
    /// ([`StoreError::AccountGone`]). A write of a row that belongs to an account but has no
    /// foreign key to it (a rule, an analysis, a job) calls this first in its transaction, so it
    /// either commits before an erasure ([`Store::delete_user`], which then takes the row with
    /// the account) or finds the account gone and writes nothing. On Postgres the row lock is
    /// the one a foreign key takes (`FOR KEY SHARE`, which an erasure's `FOR UPDATE` waits for
    /// and blocks); on SQLite the write transaction already excludes the erasure's.
    pub(crate) async fn hold_account(
        &self,
        conn: &mut sqlx::AnyConnection,
        user_id: &str,
    ) -> StoreResult<()> {
        let sql = match self.dialect {
            Dialect::Postgres => "SELECT id FROM users WHERE id = $1 FOR KEY SHARE",
            Dialect::Sqlite => "SELECT id FROM users WHERE id = $1",
        };
        let held: Option<String> = sqlx::query_scalar(sql)
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await?;
        held.map(drop).ok_or(StoreError::AccountGone)
    }

    /// Erases the user and ends every credential of theirs, in one transaction: their API keys,
    /// refresh families, password history and everything they made (analyses, rules, jobs —
    /// running ones too, whose results then find no job and are dropped — and NCS stream
    /// states) go, and one deny-list entry for their subject refuses every token issued until
    /// now, kept for `token_lifetime_ms` (the longest a token lives). So no moment exists when
    /// the account is gone but one of its tokens is still taken, and a write racing the erasure
    /// either lands first and goes with it or finds the account gone ([`Store::hold_account`],
    /// the foreign keys). The audit trail keeps only the opaque user id, which no longer leads
    /// to anyone. [`StoreError::AccountGone`] when there is no such user.
    pub async fn delete_user(&self, user_id: &str, token_lifetime_ms: i64) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        // The account first: writes that hold it finish before this goes on, later ones wait
        // and then find it gone.
        self.lock_account(&mut tx, user_id).await?;
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
        for statement in [
            "DELETE FROM analyses WHERE owner = $1",
            "DELETE FROM rules WHERE owner = $1",
            "DELETE FROM jobs WHERE owner = $1",
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
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let cutoff = now_ms();
        let subject = RevokedTarget {
            kind: RevocationKind::Subject,
            id: user_id.to_owned(),
        };
        let expires = cutoff.saturating_add(token_lifetime_ms);
        file_revocation(&mut tx, &subject, Some(cutoff), expires).await?;
        tx.commit().await?;
        self.deny_list.file(&subject, Some(cutoff), expires);
        Ok(())
    }
}

/// Adds `password_hash` to the history of `user_id` and keeps only the last
/// [`PASSWORD_HISTORY_DEPTH`], on `conn` (inside the transaction that sets the password).
pub(super) async fn record_password(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    password_hash: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO password_history (user_id, password_hash, created_at_ms) VALUES ($1, $2, $3)",
    )
    .bind(user_id)
    .bind(password_hash)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let keep: Vec<i64> = sqlx::query_scalar(
            "SELECT created_at_ms FROM password_history WHERE user_id = $1 ORDER BY created_at_ms DESC LIMIT 1 OFFSET $2",
        )
        .bind(user_id)
        .bind(PASSWORD_HISTORY_DEPTH - 1)
        .fetch_all(&mut *conn)
        .await?;
    if let Some(oldest_kept) = keep.first() {
        sqlx::query("DELETE FROM password_history WHERE user_id = $1 AND created_at_ms < $2")
            .bind(user_id)
            .bind(oldest_kept)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
