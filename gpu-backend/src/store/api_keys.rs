//! API keys: stored as digests, listed by prefix, revoked by time stamp.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, StoreResult, now_ms};

/// An API key as stored: never the key itself, only its digest and display prefix.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiKeyRecord {
    pub id: String,
    pub user_id: String,
    pub name: String,
    #[serde(skip)]
    pub digest: String,
    pub prefix: String,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    pub last_used_at_ms: Option<i64>,
}

const KEY_COLUMNS: &str = "id, user_id, name, digest, prefix, created_at_ms, expires_at_ms, revoked_at_ms, last_used_at_ms";

fn key_from_row(row: &AnyRow) -> StoreResult<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        digest: row.try_get("digest")?,
        prefix: row.try_get("prefix")?,
        created_at_ms: row.try_get("created_at_ms")?,
        expires_at_ms: row.try_get("expires_at_ms")?,
        revoked_at_ms: row.try_get("revoked_at_ms")?,
        last_used_at_ms: row.try_get("last_used_at_ms")?,
    })
}

impl Store {
    /// Stores a new key of `user_id`. [`StoreError::AccountGone`] when the user is not there.
    pub async fn create_api_key(
        &self,
        user_id: &str,
        name: &str,
        digest: &str,
        prefix: &str,
        expires_at_ms: Option<i64>,
    ) -> StoreResult<ApiKeyRecord> {
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, name, digest, prefix, created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(user_id)
        .bind(name)
        .bind(digest)
        .bind(prefix)
        .bind(now_ms())
        .bind(expires_at_ms)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from_insert)?;
        self.api_key_by_id(&id).await?.ok_or(StoreError::NotFound)
    }

    pub async fn api_key_by_id(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    pub async fn api_key_by_digest(&self, digest: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE digest = $1"
        ))
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    /// Keys of one user, or of everyone when `user_id` is `None`.
    pub async fn list_api_keys(&self, user_id: Option<&str>) -> StoreResult<Vec<ApiKeyRecord>> {
        let rows = match user_id {
            Some(user_id) => sqlx::query(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE user_id = $1 ORDER BY created_at_ms, id"
            ))
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?,
            None => {
                sqlx::query(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at_ms, id"
                ))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(key_from_row).collect()
    }

    /// Marks a key revoked; false when it was not there or already revoked.
    pub async fn revoke_api_key(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn touch_api_key(&self, id: &str) -> StoreResult<()> {
        sqlx::query("UPDATE api_keys SET last_used_at_ms = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
