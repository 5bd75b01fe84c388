//! The conformance suite's view of a test database: the shared `TestDatabase` plus a
//! migrated store keyed for audit records.

use std::sync::Arc;

use fangkong_store::testing::TestDatabase;
use fangkong_store::{Backend, Store};

/// The audit key every test store chains its records with.
pub const AUDIT_KEY: [u8; 32] = [0x5a; 32];

pub struct TestDb {
    pub store: Arc<Store>,
    /// The URL that opens this database again (for reopen and raw-SQL tests).
    pub url: String,
    database: TestDatabase,
}

impl TestDb {
    async fn open(database: TestDatabase) -> TestDb {
        let (store, _) = Store::open_and_migrate(&database.url).await.expect("test store opens");
        store.set_audit_key(AUDIT_KEY).unwrap();
        TestDb { store: Arc::new(store), url: database.url.clone(), database }
    }

    pub async fn sqlite() -> TestDb {
        TestDb::open(TestDatabase::sqlite()).await
    }

    /// `None` when PostgreSQL is not configured outside CI; panics when it is missing in CI.
    pub async fn postgres() -> Option<TestDb> {
        Some(TestDb::open(TestDatabase::postgres().await?).await)
    }

    pub fn backend(&self) -> Backend {
        self.store.backend()
    }

    /// Runs SQL on the database directly, behind the store's back (to simulate tampering).
    pub async fn execute_raw(&self, sql: &str) {
        self.database.execute_raw(sql).await;
    }

    /// Raw SQL that the database may refuse; its error message if it does.
    pub async fn try_execute_raw(&self, sql: &str) -> Result<(), String> {
        self.database.try_execute_raw(sql).await
    }
}
