//! Test databases: a fresh SQLite file, or a fresh schema in the PostgreSQL named by
//! `FANGKONG_TEST_POSTGRES_URL`, dropped when the test ends.

use std::sync::atomic::{AtomicU32, Ordering};

use fangkong_store::{Backend, Store};

pub const POSTGRES_URL_VAR: &str = "FANGKONG_TEST_POSTGRES_URL";

/// The audit key every test store chains its records with.
pub const AUDIT_KEY: [u8; 32] = [0x5a; 32];

pub struct TestDb {
    pub store: std::sync::Arc<Store>,
    /// The URL that opens this database again (for reopen and raw-SQL tests).
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, schema: String },
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("fangkong.db").display());
        let (store, _) = Store::open_and_migrate(&url).await.expect("SQLite test store opens");
        store.set_audit_key(AUDIT_KEY).unwrap();
        TestDb { store: store.into(), url, cleanup: Cleanup::Sqlite(dir) }
    }

    /// `None` when PostgreSQL is not configured outside CI; panics when it is missing in CI.
    pub async fn postgres() -> Option<TestDb> {
        let admin_url = postgres_url()?;
        let schema = unique_schema_name();
        let (client, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR}={admin_url} is set but PostgreSQL is unreachable: {e}"));
        tokio::spawn(connection);
        client.batch_execute(&format!("CREATE SCHEMA {schema}")).await.expect("create test schema");
        let url = with_search_path(&admin_url, &schema);
        let (store, _) = Store::open_and_migrate(&url).await.expect("PostgreSQL test store opens");
        store.set_audit_key(AUDIT_KEY).unwrap();
        Some(TestDb { store: store.into(), url, cleanup: Cleanup::Postgres { admin_url, schema } })
    }

    pub fn backend(&self) -> Backend {
        self.store.backend()
    }

    /// Runs SQL on the database directly, behind the store's back (to simulate tampering).
    pub async fn execute_raw(&self, sql: &str) {
        match &self.cleanup {
            Cleanup::Sqlite(dir) => {
                let conn = rusqlite::Connection::open(dir.path().join("fangkong.db")).unwrap();
                conn.execute_batch(sql).unwrap();
            }
            Cleanup::Postgres { .. } => {
                let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(connection);
                client.batch_execute(sql).await.unwrap();
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, schema } = &self.cleanup {
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
            panic!("CI=true but {POSTGRES_URL_VAR} is not set: the PostgreSQL conformance tests must run in CI")
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
