//! Test databases for every crate's tests (feature `testing`): a fresh SQLite file, or a
//! fresh schema in the PostgreSQL named by `FANGKONG_TEST_POSTGRES_URL`, dropped when the
//! value is dropped.
//!
//! Without the variable, [`TestDatabase::postgres`] returns `None` after printing a note
//! ("did not run"), so a laptop without PostgreSQL can run the suite; with `CI=true` it
//! panics instead, because CI must run every backend.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::Backend;

pub const POSTGRES_URL_VAR: &str = "FANGKONG_TEST_POSTGRES_URL";

#[derive(Debug)]
pub struct TestDatabase {
    /// The URL to open this database with.
    pub url: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Sqlite { dir: tempfile::TempDir },
    Postgres { admin_url: String, schema: String },
}

impl TestDatabase {
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("fangkong.db").display());
        TestDatabase { url, kind: Kind::Sqlite { dir } }
    }

    /// A fresh schema; `None` (with a note) outside CI when PostgreSQL is not configured.
    pub async fn postgres() -> Option<TestDatabase> {
        let admin_url = postgres_url()?;
        let schema = unique_schema_name();
        let (client, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is set but PostgreSQL is unreachable: {e}"));
        tokio::spawn(connection);
        client.batch_execute(&format!("CREATE SCHEMA {schema}")).await.expect("create test schema");
        let url = with_search_path(&admin_url, &schema);
        Some(TestDatabase { url, kind: Kind::Postgres { admin_url, schema } })
    }

    /// Both backends: SQLite always, PostgreSQL when configured.
    pub async fn all() -> Vec<TestDatabase> {
        let mut databases = vec![TestDatabase::sqlite()];
        databases.extend(TestDatabase::postgres().await);
        databases
    }

    pub fn backend(&self) -> Backend {
        match self.kind {
            Kind::Sqlite { .. } => Backend::Sqlite,
            Kind::Postgres { .. } => Backend::Postgres,
        }
    }

    /// The SQLite file, for tests that read or tamper with it directly.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        match &self.kind {
            Kind::Sqlite { dir } => Some(dir.path().join("fangkong.db")),
            Kind::Postgres { .. } => None,
        }
    }

    /// Runs SQL on the database directly, behind the store's back (to simulate tampering).
    pub async fn execute_raw(&self, sql: &str) {
        if let Err(error) = self.try_execute_raw(sql).await {
            panic!("raw SQL failed: {error}");
        }
    }

    /// [`TestDatabase::execute_raw`], returning the database's refusal instead of panicking
    /// (to show that a trigger or constraint holds).
    pub async fn try_execute_raw(&self, sql: &str) -> Result<(), String> {
        match &self.kind {
            Kind::Sqlite { dir } => {
                let conn = rusqlite::Connection::open(dir.path().join("fangkong.db")).map_err(|e| e.to_string())?;
                conn.execute_batch(sql).map_err(|e| e.to_string())
            }
            Kind::Postgres { .. } => {
                let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(connection);
                client
                    .batch_execute(sql)
                    .await
                    .map_err(|e| e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string()))
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Kind::Postgres { admin_url, schema } = &self.kind {
            let (admin_url, schema) = (admin_url.clone(), schema.clone());
            // Drop runs outside async context; use a short-lived runtime on its own thread.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(async {
                    if let Ok((client, connection)) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await {
                        tokio::spawn(connection);
                        let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
                    }
                });
            })
            .join();
        }
    }
}

/// The configured PostgreSQL URL; `None` (with a note) outside CI; a panic inside CI.
pub fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("CI=true but {POSTGRES_URL_VAR} is not set: the PostgreSQL tests must run in CI")
        }
        _ => {
            eprintln!("note: {POSTGRES_URL_VAR} is not set; this PostgreSQL test did not run");
            None
        }
    }
}

fn unique_schema_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("fk_test_{}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), nanos)
}

/// The URL with `search_path` pointing at `schema`, so every unqualified table lives there.
pub fn with_search_path(url: &str, schema: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-c%20search_path%3D{schema}")
}
