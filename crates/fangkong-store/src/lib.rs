//! Fangkong's persistence: the record of everything the system knows.
//!
//! One [`Store`] value, two backends with one behaviour:
//! * **SQLite** (`sqlite://PATH`), embedded, the default. WAL mode with `synchronous=FULL`,
//!   so a write is on disk before it is acknowledged. All writes go through one writer
//!   thread that commits whatever has queued up together (group commit): one fsync serves
//!   many concurrent writers, each of which still gets its own all-or-nothing result.
//! * **PostgreSQL** (`postgres://…`), for deployments that outgrow one machine's disk.
//!
//! What "the same behaviour" means is decided by one conformance suite
//! (`tests/conformance`), generic over the backend, which runs on SQLite always and on
//! PostgreSQL when `FANGKONG_TEST_POSTGRES_URL` is set (and must be set in CI).
//!
//! The store speaks in core types (`fangkong_core`): rows are converted at this edge and no
//! SQL type or driver error leaks out except as a [`StoreError`].

pub mod backup;
mod error;
pub mod migrate;
mod postgres;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;
mod url;

use std::sync::OnceLock;

use fangkong_core::codes::{CodeEntry, CodeKind};

pub use error::StoreError;
pub use migrate::MigrationReport;
pub use url::{DbUrl, redact as redact_url};

/// Which database engine a [`Store`] runs on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The store. Cheap to share behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct Store {
    inner: Inner,
    /// The key that chains audit records; set once by the engine at start.
    audit_key: OnceLock<[u8; 32]>,
}

#[derive(Debug)]
enum Inner {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

/// Calls the same method on whichever backend this store is.
macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match &$self.inner {
            $crate::Inner::Sqlite(store) => store.$method($($arg),*).await,
            $crate::Inner::Postgres(store) => store.$method($($arg),*).await,
        }
    };
}

/// CPU time the calling thread has used, where Linux tells it (0 elsewhere): for the log
/// lines of bulk work, since on a shared machine wall time says little about the work done.
pub fn thread_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else { return 0.0 };
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime, in clock ticks of 1/100 s.
    (ticks(11) + ticks(12)) / 100.0
}

/// Time the calling thread has spent ready to run but waiting for a CPU, where Linux tells
/// it (`/proc/thread-self/schedstat`; 0 elsewhere): with more busy threads than cores, the
/// part of a bulk write's wall time that is neither its CPU time nor a wait of its own.
pub fn thread_run_queue_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/schedstat") else { return 0.0 };
    stat.split_whitespace().nth(1).and_then(|ns| ns.parse::<f64>().ok()).map_or(0.0, |ns| ns / 1e9)
}

// After the macro, so that these modules can use it.
mod audit;
mod dispatch;
mod forces;
mod identity;
mod outbox;
mod positions;
pub mod registry;

pub use audit::{AuditHead, AuditQuery};
pub use dispatch::{DispatchChange, HISTORY_CELL_RESOLUTION, Inserted, NewIncident, chain_column};
pub use forces::SealedMember;
pub use identity::NodeWrite;
pub use outbox::{Audited, Outbox, OutboxRecord};
pub use positions::{HOUR_MINUTES, Presence, RejectedFix, StoredFix};

impl Store {
    /// Opens (and for SQLite creates) the database named by `url`, without migrating it.
    /// Fails fast with [`StoreError::InvalidUrl`] or [`StoreError::Unavailable`].
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let inner = match DbUrl::parse(url)? {
            DbUrl::Sqlite { path } => Inner::Sqlite(sqlite::SqliteStore::open(&path).await?),
            DbUrl::Postgres { url } => Inner::Postgres(postgres::PgStore::open(&url).await?),
        };
        Ok(Store { inner, audit_key: OnceLock::new() })
    }

    /// Opens the database and brings its schema up to date.
    pub async fn open_and_migrate(url: &str) -> Result<(Store, MigrationReport), StoreError> {
        let store = Store::open(url).await?;
        let report = store.migrate().await?;
        Ok((store, report))
    }

    pub fn backend(&self) -> Backend {
        match &self.inner {
            Inner::Sqlite(_) => Backend::Sqlite,
            Inner::Postgres(_) => Backend::Postgres,
        }
    }

    /// Sets the key that chains audit records (derived from the deployment's master key).
    /// Audited writes fail until it is set; it cannot be changed afterwards.
    pub fn set_audit_key(&self, key: [u8; 32]) -> Result<(), StoreError> {
        match self.audit_key.get() {
            Some(existing) if *existing == key => Ok(()),
            Some(_) => Err(StoreError::Corrupt("the audit key of an open store cannot change".into())),
            None => {
                let _ = self.audit_key.set(key);
                Ok(())
            }
        }
    }

    fn audit_key(&self) -> Result<[u8; 32], StoreError> {
        self.audit_key.get().copied().ok_or_else(|| StoreError::Corrupt("no audit key set on the store".into()))
    }

    /// Applies the migrations this binary knows and the database has not seen. Refuses a
    /// database whose applied migrations were edited or that is newer than this binary.
    pub async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        dispatch!(self.migrate())
    }

    /// Migrations this binary knows that the database has not applied yet (read only).
    pub async fn pending_migrations(&self) -> Result<Vec<&'static migrate::Migration>, StoreError> {
        dispatch!(self.pending_migrations())
    }

    /// A cheap round trip to the database, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self.ping())
    }

    /// Finishes every write already accepted, then closes. Later calls fail with
    /// [`StoreError::Closed`].
    pub async fn close(&self) {
        dispatch!(self.close())
    }

    /// Waits until background maintenance after a bulk write has finished (SQLite: the
    /// checkpoint that copies an import's WAL into the database file; PostgreSQL: nothing).
    pub async fn settled(&self) {
        match &self.inner {
            Inner::Sqlite(store) => store.checkpoint_settled().await,
            Inner::Postgres(_) => {}
        }
    }

    // ---- meta -------------------------------------------------------------------------

    pub async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self.meta_get(key))
    }

    /// Sets `key` to `value`, replacing any earlier value.
    pub async fn meta_set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        dispatch!(self.meta_set(key, value))
    }

    // ---- code tables ------------------------------------------------------------------

    /// All code entries of all kinds, ordered by kind and code.
    pub async fn list_codes(&self) -> Result<Vec<CodeEntry>, StoreError> {
        dispatch!(self.list_codes())
    }

    pub async fn get_code(&self, kind: CodeKind, code: &str) -> Result<Option<CodeEntry>, StoreError> {
        dispatch!(self.get_code(kind, code))
    }

    /// Inserts a new code; [`StoreError::Conflict`] if the kind and code exist.
    pub async fn insert_code(&self, entry: &CodeEntry) -> Result<(), StoreError> {
        self.insert_codes(std::slice::from_ref(entry), None).await
    }

    /// Inserts many codes in one transaction, with the audit record if given: all of them,
    /// or (on any error) none.
    pub async fn insert_codes(&self, entries: &[CodeEntry], audit: Option<Audited>) -> Result<(), StoreError> {
        let audit = self.keyed(audit)?;
        dispatch!(self.insert_codes(entries, audit))
    }

    /// Replaces an existing code's fields (with the audit record if given);
    /// [`StoreError::NotFound`] if it does not exist.
    pub async fn update_code(&self, entry: &CodeEntry, audit: Option<Audited>) -> Result<(), StoreError> {
        let audit = self.keyed(audit)?;
        dispatch!(self.update_code(entry, audit))
    }

    /// An audit entry with the key that chains it, for backends.
    fn keyed(&self, audit: Option<Audited>) -> Result<Option<([u8; 32], Audited)>, StoreError> {
        audit.map(|entry| Ok((self.audit_key()?, entry))).transpose()
    }
}

/// How a stored code row becomes a core value; shared by both backends so they agree on
/// what a corrupt row is.
pub(crate) struct CodeRow {
    pub kind: String,
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    pub priority: Option<i64>,
    pub active: bool,
    pub updated_at: i64,
}

impl CodeRow {
    pub fn into_domain(self) -> Result<CodeEntry, StoreError> {
        let kind = CodeKind::parse(&self.kind)
            .ok_or_else(|| StoreError::Corrupt(format!("code_entries row has unknown kind {:?}", self.kind)))?;
        let priority = self
            .priority
            .map(|p| {
                u8::try_from(p).map_err(|_| {
                    StoreError::Corrupt(format!("code_entries {}/{} has priority {p}", self.kind, self.code))
                })
            })
            .transpose()?;
        Ok(CodeEntry {
            kind,
            code: self.code,
            name_zh: self.name_zh,
            name_en: self.name_en,
            priority,
            active: self.active,
            updated_at: fangkong_core::time::Timestamp::from_millis(self.updated_at),
        })
    }
}

/// Milliseconds since the Unix epoch, for bookkeeping columns the store fills itself
/// (such as when a migration was applied). Domain instants come from the engine's clock.
pub(crate) fn wall_clock_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
