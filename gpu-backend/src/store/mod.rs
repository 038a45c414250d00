//! The backend's store on sqlx: SQLite by default (a file created and migrated on first start),
//! Postgres when the database URL says so. Both run the same queries through sqlx's `Any` driver;
//! only the DDL differs, and each migration carries both dialects.

pub mod accounts;
pub mod analyses;
pub mod api_keys;
pub mod audit;
pub mod deny_list;
pub mod jobs;
pub mod report;
pub mod revocations;
pub mod rules;
pub mod tokens;
pub mod users;
pub mod workers;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

/// Which SQL dialect the pool speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Failures of the store, kept apart from HTTP concerns.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("unsupported database URL (expected sqlite: or postgres:)")]
    UnsupportedUrl,
    #[error("the row is not there")]
    NotFound,
    #[error("the row already exists")]
    Conflict,
    /// The account a write belongs to no longer exists (it was erased), so nothing was written.
    #[error("the account no longer exists")]
    AccountGone,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Maps unique-constraint violations of either dialect to [`StoreError::Conflict`], and
    /// foreign-key violations to [`StoreError::AccountGone`]: every foreign key of the schema
    /// leads to a user (a token's family goes with its user), so a row that names a missing one
    /// was written for an account that is gone.
    fn from_insert(error: sqlx::Error) -> StoreError {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::AccountGone,
            _ => StoreError::Database(error),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The database handle every part of the backend shares.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    /// Serializes appends to the audit hash chain within this process (Postgres also takes an
    /// advisory lock, so several backends agree).
    audit_append: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Wakes waiters in this process when jobs are enqueued or finish (other processes poll, or
    /// listen to Postgres `NOTIFY`).
    signals: std::sync::Arc<JobSignals>,
    /// The deny-list in memory, which the gate checks on every request.
    deny_list: std::sync::Arc<deny_list::DenyList>,
}

/// In-process wake-ups of the job queue.
#[derive(Debug, Default)]
pub(crate) struct JobSignals {
    pub(crate) enqueued: tokio::sync::Notify,
    pub(crate) finished: tokio::sync::Notify,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dialect", &self.dialect)
            .finish()
    }
}

/// The SQLite URL of the default database file inside `data_dir`.
pub fn default_sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", data_dir.join("h200.db").display())
}

impl Store {
    /// Connects to `url` (`sqlite:` or `postgres:`) and brings the schema up to date.
    pub async fn open(url: &str) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Dialect::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let options = AnyConnectOptions::from_str(url)?.disable_statement_logging();
        let mut pool_options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        pool_options = match dialect {
            // One writer at a time is SQLite's model; WAL lets readers carry on meanwhile.
            Dialect::Sqlite => pool_options.max_connections(8).after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
                        .await?;
                    Ok(())
                })
            }),
            Dialect::Postgres => pool_options.max_connections(16),
        };
        let pool = pool_options.connect_with(options).await?;
        let store = Store {
            pool,
            dialect,
            audit_append: Default::default(),
            signals: Default::default(),
            deny_list: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Begins a transaction that writes. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`, waiting up to the busy timeout): a deferred transaction that reads and then
    /// writes fails at once with `SQLITE_BUSY` when another connection wrote in between.
    pub(crate) async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.pool.begin().await?,
        })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        if self.dialect == Dialect::Postgres {
            // Two backends starting together must not migrate at the same time.
            sqlx::query("SELECT pg_advisory_xact_lock(720001)")
                .execute(&mut *tx)
                .await?;
        }
        tx.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at_ms BIGINT NOT NULL)")
            .await?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
            .fetch_all(&mut *tx)
            .await?;
        for migration in MIGRATIONS {
            if applied.contains(&migration.version) {
                continue;
            }
            let sql = match self.dialect {
                Dialect::Sqlite => migration.sqlite,
                Dialect::Postgres => migration.postgres,
            };
            for statement in sql.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
                tx.execute(statement).await?;
            }
            sqlx::query("INSERT INTO schema_migrations (version, applied_at_ms) VALUES ($1, $2)")
                .bind(migration.version)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

struct Migration {
    version: i64,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sqlite: include_str!("migrations/0001_auth_audit.sqlite.sql"),
        postgres: include_str!("migrations/0001_auth_audit.postgres.sql"),
    },
    Migration {
        version: 2,
        sqlite: include_str!("migrations/0002_jobs.sqlite.sql"),
        postgres: include_str!("migrations/0002_jobs.postgres.sql"),
    },
    // Portable DDL: one file serves both dialects.
    Migration {
        version: 3,
        sqlite: include_str!("migrations/0003_analysis_rules.sql"),
        postgres: include_str!("migrations/0003_analysis_rules.sql"),
    },
    // The deny-list of every kind (jti, kid, sub) in one table; the jti entries move over.
    Migration {
        version: 4,
        sqlite: include_str!("migrations/0004_revocations.sql"),
        postgres: include_str!("migrations/0004_revocations.sql"),
    },
    // The blind index of sealed emails, for login by email; filled at start by
    // `auth::email_index::fill`.
    Migration {
        version: 5,
        sqlite: include_str!("migrations/0005_email_index.sql"),
        postgres: include_str!("migrations/0005_email_index.sql"),
    },
    // Account lifecycle (disabled accounts, passwords that must be changed) and sessions (a
    // refresh family's last use, address and user agent).
    Migration {
        version: 6,
        sqlite: include_str!("migrations/0006_accounts_sessions.sql"),
        postgres: include_str!("migrations/0006_accounts_sessions.sql"),
    },
];

/// Milliseconds since the Unix epoch, the one time unit of the store.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
