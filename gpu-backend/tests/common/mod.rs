//! Test databases: a fresh SQLite file, or a fresh schema in the Postgres at
//! `H200_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`). A missing
//! Postgres fails the test; it is never skipped.
#![allow(dead_code)]

pub mod backend;

use gpu_backend::store::Store;

pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database private to one test: its URL and how to drop it.
pub struct TestDatabase {
    pub url: String,
    pub backend: Backend,
    cleanup: Option<(String, String)>,
    dir: Option<std::path::PathBuf>,
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> TestDatabase {
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(unique("h200_test"));
                std::fs::create_dir_all(&dir).unwrap();
                TestDatabase {
                    url: gpu_backend::store::default_sqlite_url(&dir),
                    backend,
                    cleanup: None,
                    dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let base = std::env::var("H200_TEST_DATABASE_URL")
                    .unwrap_or_else(|_| DEFAULT_POSTGRES.into());
                let schema = unique("h200_test");
                sqlx::any::install_default_drivers();
                let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&base)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL at {base} is required for this test: {e}")
                    });
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let separator = if base.contains('?') { '&' } else { '?' };
                TestDatabase {
                    url: format!("{base}{separator}options=-csearch_path%3D{schema}"),
                    backend,
                    cleanup: Some((base, schema)),
                    dir: None,
                }
            }
        }
    }

    /// An empty stand-in, for moving a database out of a struct that implements Drop.
    pub fn placeholder() -> TestDatabase {
        TestDatabase {
            url: String::new(),
            backend: Backend::Sqlite,
            cleanup: None,
            dir: None,
        }
    }

    pub async fn store(&self) -> Store {
        Store::open(&self.url)
            .await
            .expect("opening the test store")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some((base, schema)) = self.cleanup.take() {
            // Drop on a separate thread with its own runtime: Drop cannot be async.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    if let Ok(mut conn) =
                        <sqlx::AnyConnection as sqlx::Connection>::connect(&base).await
                    {
                        let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                            .execute(&mut conn)
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Runs one async test body once on SQLite and once on Postgres.
#[macro_export]
macro_rules! on_both_stores {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body($crate::common::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$body($crate::common::Backend::Postgres).await;
            }
        }
    };
}
