//! The conformance suite's view of a test database: the shared `TestDatabase` plus a
//! migrated store keyed for audit records.

use std::sync::Arc;

use fangkong_core::audit::{AuditEntry, Outcome};
use fangkong_core::auth::Actor;
use fangkong_core::jurisdiction::{Jurisdiction, JurisdictionKind};
use fangkong_core::time::Timestamp;
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

/// The city, a district and its police station `440304501`, for records kept at a station
/// (beats, units, members).
pub async fn station(db: &TestDb) {
    let node = |code: &str, kind, parent: Option<&str>| Jurisdiction {
        code: code.into(),
        kind,
        parent: parent.map(Into::into),
        name_zh: code.into(),
        name_en: None,
    };
    let nodes = [
        node("440300", JurisdictionKind::City, None),
        node("440304", JurisdictionKind::District, Some("440300")),
        node("440304501", JurisdictionKind::PoliceStation, Some("440304")),
    ];
    let entry = AuditEntry::new(
        Timestamp::from_millis(1_764_288_000_000),
        &Actor::System { name: "test".into() },
        "jurisdiction.import",
        Outcome::Allowed,
    );
    db.store.insert_jurisdictions(&nodes, entry.at, &entry).await.unwrap();
}
