//! The audit log: append-only rows, each chained to the one before by a SHA-256 hash, with a head
//! row that records where the chain ends, so changed, deleted and truncated rows all show.

use shared::audit::{AuditEvent, ChainBreak, GENESIS_HASH, chain_hash, verify_chain};
use sqlx::Row;

use super::{Dialect, Store, StoreError, StoreResult, now_ms};

/// Filters of the admin audit listing. All optional; results are newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub event_type: Option<String>,
    pub principal: Option<String>,
    pub ip: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub limit: i64,
    pub offset: i64,
}

/// An event as stored, with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredAuditEvent {
    pub position: i64,
    #[serde(flatten)]
    pub event: AuditEvent,
    pub chain_hash: String,
}

/// What an ingest did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct AppendOutcome {
    pub inserted: usize,
    pub duplicates: usize,
}

/// Why `audit verify` failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditIntegrityError {
    #[error(transparent)]
    Chain(#[from] ChainBreak),
    #[error("row at position {found} where position {expected} was expected (a row is missing)")]
    Gap { expected: i64, found: i64 },
    #[error("the chain ends at position {last}, but the head says {head}")]
    Truncated { last: i64, head: i64 },
    #[error("the last row's hash does not match the head")]
    HeadMismatch,
    #[error("row at position {0} cannot be read")]
    Unreadable(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn decode_hash(hex_text: &str) -> Option<[u8; 32]> {
    hex::decode(hex_text).ok()?.try_into().ok()
}

impl Store {
    /// Appends events in order, skipping ids already stored (sinks may deliver twice).
    pub async fn append_audit(&self, events: &[AuditEvent]) -> StoreResult<AppendOutcome> {
        let _one_appender = self.audit_append.lock().await;
        let mut tx = self.begin_write().await?;
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(720002)")
                .execute(&mut *tx)
                .await?;
        }
        let head = sqlx::query("SELECT last_position, chain_hash FROM audit_head WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?;
        let (mut position, mut previous) = match head {
            Some(row) => {
                let hash: String = row.try_get("chain_hash")?;
                let hash = decode_hash(&hash)
                    .ok_or_else(|| StoreError::Corrupt("audit head hash".into()))?;
                (row.try_get::<i64, _>("last_position")?, hash)
            }
            None => (0, GENESIS_HASH),
        };
        let mut outcome = AppendOutcome::default();
        let now = now_ms();
        for event in events {
            let id = event.id.to_string();
            let seen: Option<i64> =
                sqlx::query_scalar("SELECT position FROM audit_events WHERE id = $1")
                    .bind(&id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if seen.is_some() {
                outcome.duplicates += 1;
                continue;
            }
            let hash = chain_hash(&previous, event);
            position += 1;
            let json = String::from_utf8(event.canonical_bytes())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            sqlx::query(
                "INSERT INTO audit_events (position, id, event_type, principal, ip, occurred_at_ms, event_json, chain_hash, ingested_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(position)
            .bind(&id)
            .bind(event.event_type.as_str())
            .bind(event.principal.as_deref())
            .bind(event.ip.as_deref())
            .bind(event.occurred_at_ms as i64)
            .bind(json)
            .bind(hex::encode(hash))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            previous = hash;
            outcome.inserted += 1;
        }
        if outcome.inserted > 0 {
            sqlx::query(
                "INSERT INTO audit_head (id, last_position, chain_hash) VALUES (1, $1, $2) \
                 ON CONFLICT (id) DO UPDATE SET last_position = excluded.last_position, chain_hash = excluded.chain_hash",
            )
            .bind(position)
            .bind(hex::encode(previous))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// Events matching `filter`, newest first.
    pub async fn query_audit(&self, filter: &AuditFilter) -> StoreResult<Vec<StoredAuditEvent>> {
        let mut sql =
            String::from("SELECT position, event_json, chain_hash FROM audit_events WHERE 1 = 1");
        let mut args: Vec<String> = Vec::new();
        let mut numbers: Vec<i64> = Vec::new();
        let mut next = 1;
        for (column, value) in [
            ("event_type", &filter.event_type),
            ("principal", &filter.principal),
            ("ip", &filter.ip),
        ] {
            if let Some(value) = value {
                sql.push_str(&format!(" AND {column} = ${next}"));
                next += 1;
                args.push(value.clone());
            }
        }
        let mut number_clauses = String::new();
        for (clause, value) in [(">=", filter.from_ms), ("<", filter.to_ms)] {
            if let Some(value) = value {
                number_clauses.push_str(&format!(" AND occurred_at_ms {clause} ${next}"));
                next += 1;
                numbers.push(value);
            }
        }
        sql.push_str(&number_clauses);
        sql.push_str(&format!(
            " ORDER BY position DESC LIMIT ${} OFFSET ${}",
            next,
            next + 1
        ));
        let mut query = sqlx::query(&sql);
        for arg in &args {
            query = query.bind(arg);
        }
        for number in &numbers {
            query = query.bind(number);
        }
        let rows = query
            .bind(filter.limit)
            .bind(filter.offset)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let json: String = row.try_get("event_json")?;
                Ok(StoredAuditEvent {
                    position: row.try_get("position")?,
                    event: serde_json::from_str(&json)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    chain_hash: row.try_get("chain_hash")?,
                })
            })
            .collect()
    }

    /// Walks the whole chain and the head. Returns the number of rows checked.
    pub async fn verify_audit_chain(&self) -> Result<i64, AuditIntegrityError> {
        const PAGE: i64 = 1000;
        let mut previous = GENESIS_HASH;
        let mut expected = 1;
        loop {
            let rows = sqlx::query(
                "SELECT position, event_json, chain_hash FROM audit_events WHERE position >= $1 ORDER BY position LIMIT $2",
            )
            .bind(expected)
            .bind(PAGE)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::from)?;
            if rows.is_empty() {
                break;
            }
            let mut page = Vec::with_capacity(rows.len());
            for row in &rows {
                let position: i64 = row.try_get("position").map_err(StoreError::from)?;
                if position != expected {
                    return Err(AuditIntegrityError::Gap {
                        expected,
                        found: position,
                    });
                }
                let json: String = row.try_get("event_json").map_err(StoreError::from)?;
                let hash: String = row.try_get("chain_hash").map_err(StoreError::from)?;
                let event: AuditEvent = serde_json::from_str(&json)
                    .map_err(|_| AuditIntegrityError::Unreadable(position))?;
                let hash = decode_hash(&hash).ok_or(AuditIntegrityError::Unreadable(position))?;
                page.push((event, hash));
                expected += 1;
            }
            previous = verify_chain(previous, page.iter().map(|(e, h)| (e, *h)))?;
        }
        let last = expected - 1;
        let head = sqlx::query("SELECT last_position, chain_hash FROM audit_head WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::from)?;
        match head {
            None if last == 0 => Ok(0),
            None => Err(AuditIntegrityError::HeadMismatch),
            Some(row) => {
                let head_position: i64 = row.try_get("last_position").map_err(StoreError::from)?;
                let head_hash: String = row.try_get("chain_hash").map_err(StoreError::from)?;
                if head_position != last {
                    return Err(AuditIntegrityError::Truncated {
                        last,
                        head: head_position,
                    });
                }
                if decode_hash(&head_hash) != Some(previous) {
                    return Err(AuditIntegrityError::HeadMismatch);
                }
                Ok(last)
            }
        }
    }
}
