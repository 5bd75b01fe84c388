//! A small engine for unit tests: SQLite in a temporary directory, a manual clock, a
//! cheap password hash, a two-district city, and one administrator per district.

use std::sync::Arc;

use fangkong_core::auth::Role;
use fangkong_core::auth::account::NewUser;
use fangkong_core::jurisdiction::{Jurisdiction, JurisdictionKind};
use fangkong_core::time::Timestamp;

use crate::bus::InProcessBus;
use crate::clock::ManualClock;
use crate::crypto::PasswordCost;
use crate::keys::KeyRing;
use crate::{Caller, Engine, EngineConfig, Store};

pub(crate) const T0: Timestamp = Timestamp::from_millis(1_764_288_000_000);
pub(crate) const PASSWORD: &str = "correct horse battery staple";

pub(crate) struct Fixture {
    pub engine: Arc<Engine>,
    pub clock: ManualClock,
    pub url: String,
    pub keys: KeyRing,
    pub dir: tempfile::TempDir,
}

pub(crate) fn config(keys: &KeyRing) -> EngineConfig {
    EngineConfig { password_cost: PasswordCost { memory_kib: 256, iterations: 1 }, ..EngineConfig::new(keys.clone()) }
}

pub(crate) async fn start(
    url: &str,
    clock: &ManualClock,
    config: EngineConfig,
) -> Result<Arc<Engine>, crate::EngineError> {
    let store = Store::open(url).await.unwrap();
    Engine::start(store, Arc::new(InProcessBus::default()), Arc::new(clock.clone()), config).await
}

fn node(code: &str, kind: JurisdictionKind, parent: Option<&str>) -> Jurisdiction {
    Jurisdiction {
        code: code.into(),
        kind,
        parent: parent.map(Into::into),
        name_zh: format!("辖区{code}"),
        name_en: None,
    }
}

pub(crate) const FUTIAN: &str = "440304";
pub(crate) const LUOHU: &str = "440303";

impl Fixture {
    /// An engine with the city tree but no users.
    pub async fn bare() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("fk.db").display());
        let clock = ManualClock::new(T0);
        let keys = KeyRing::generate();
        let engine = start(&url, &clock, config(&keys)).await.unwrap();
        use JurisdictionKind::*;
        let tree = vec![
            node("440300", City, None),
            node(FUTIAN, District, Some("440300")),
            node(LUOHU, District, Some("440300")),
            node("440304001", Subdistrict, Some(FUTIAN)),
            node("440304001001", Community, Some("440304001")),
            node("440304001001G01", Grid, Some("440304001001")),
            node("PS440304-01", PoliceStation, Some(FUTIAN)),
        ];
        engine.import_jurisdictions(&Caller::system("test"), tree).await.unwrap();
        Fixture { engine, clock, url, keys, dir }
    }

    /// With `admin.futian` and `admin.luohu`, each administering their district.
    pub async fn new() -> Fixture {
        let fixture = Fixture::bare().await;
        fixture.add_user("admin.futian", Role::Administrator, FUTIAN).await;
        fixture.add_user("admin.luohu", Role::Administrator, LUOHU).await;
        fixture
    }

    pub async fn add_user(&self, username: &str, role: Role, jurisdiction: &str) {
        let new = NewUser {
            username: username.into(),
            display_name: format!("用户 {username}"),
            role,
            jurisdiction: jurisdiction.into(),
        };
        self.engine.create_user(&Caller::system("test"), new, PASSWORD).await.unwrap();
    }

    /// Signs `username` in and returns a caller acting as them, with a purpose stated.
    pub async fn caller(&self, username: &str) -> Caller {
        let login = self.engine.login(username, PASSWORD, None, Some("10.0.0.9")).await.unwrap();
        let actor = self.engine.authenticate(&login.token).unwrap().actor;
        Caller::new(fangkong_core::auth::Actor::User(actor)).with_ip("10.0.0.9").with_purpose("test")
    }

    /// Stops this engine and starts another on the same database and key.
    pub async fn restart(&self) -> Arc<Engine> {
        self.engine.shutdown().await;
        start(&self.url, &self.clock, config(&self.keys)).await.unwrap()
    }

    /// Audit records, oldest first.
    pub async fn audit(&self) -> Vec<fangkong_core::audit::AuditRecord> {
        let mut records = self.engine.store.audit_page(0, 100_000).await.unwrap();
        records.sort_by_key(|r| r.seq);
        records
    }
}
