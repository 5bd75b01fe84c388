//! Fangkong's engine: every use case of the system, over live state in memory, the store
//! as the record and the event bus as the announcement.
//!
//! The engine is a kernel (`kernel.rs`: store, bus, clock, keys, authorisation and audit,
//! code tables, the jurisdiction atlas, the report pool) and features beside it, each with
//! its own live state (`feature.rs`). The pattern of every command is the same: authorise
//! the caller (role and jurisdiction, refusals audited), check the command against the
//! core's rules and the live state, write it durably to the store together with its audit
//! record and its events (the outbox), apply the events to the live state, publish them. Queries are answered from memory where the live picture lives (SYSTEM.md:
//! "the live picture is served from memory; the store is the record"); reads of personal
//! data are audited with their stated purpose before anything is returned.
//!
//! The engine knows nothing of HTTP or JSON; the server calls it, the CLI and the simulator
//! drive it through the same commands, and the benchmarks time it.

mod audit;
pub mod avl;
pub mod boundaries;
pub mod bus;
mod caller;
pub mod clock;
mod codes;
pub mod crypto;
mod defaults;
pub mod dispatch;
mod feature;
mod forces;
mod guard;
mod identity;
mod jurisdictions;
mod kernel;
pub mod keys;
mod person;
mod reactions;
pub mod registry;
mod replay;
mod reports;
mod stream;

use std::sync::{Arc, RwLock};

use fangkong_core::auth::Denial;
use fangkong_core::auth::account::AccountError;
use fangkong_core::auth::lockout::LockoutPolicy;
use fangkong_core::auth::password::PasswordError;
use fangkong_core::auth::session::SessionPolicy;
use fangkong_core::codes::{CodeError, CodeKind};
use fangkong_core::jurisdiction::JurisdictionError;
use fangkong_core::time::Timestamp;
use fangkong_geo::LatLon;
pub use fangkong_store::{AuditQuery, Backend, MigrationReport, RejectedFix, Store, StoreError, StoredFix};

use crate::bus::{EventBus, InProcessBus};
pub use crate::caller::Caller;
use crate::clock::{Clock, SystemClock};
use crate::crypto::PasswordCost;
use crate::keys::KeyRing;

pub use audit::AuditVerification;
pub use boundaries::{BoundaryFault, BoundaryImport};
pub use codes::{CodeChange, NewCode};
pub use dispatch::{
    CallerDetails, Created, DispatchConfig, DispatchStats, MeasuresReport, NewIncident, PanicRule, PriorIncident,
    Recommended, UnitOnBoard,
};
pub use fangkong_store::NodeWrite;
pub use forces::{BeatCoverage, HotspotCoverage, NewBeat, NewMember, OnDuty};
pub use identity::{Authenticated, LoginSuccess, NewDevice, Site, TotpSetup, UserChange};
pub use jurisdictions::{ImportSummary, Location, Placed};
pub use kernel::Kernel;
pub use replay::LivePicture;
pub use reports::{Budget, ReportConfig, ReportCounters};
pub use stream::{BoardSnapshot, BoardView};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A code-table rule refused the change; the message names the code and the rule.
    #[error(transparent)]
    Code(#[from] CodeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The built-in defaults could not be loaded (a defect of this build).
    #[error("built-in defaults: {0}")]
    Defaults(String),
    /// The permission table or the jurisdiction refused the caller. Audited.
    #[error("not permitted: {0}")]
    Denied(Denial),
    /// No valid session or device credential.
    #[error("authentication required")]
    Unauthenticated,
    #[error("the session has ended; sign in again")]
    SessionExpired,
    /// Wrong username or password (never says which).
    #[error("wrong username or password")]
    InvalidCredentials,
    /// Too many failed attempts; the same answer whether or not the username exists.
    #[error("too many failed sign-in attempts; try again later")]
    AccountLocked { retry_after_secs: i64 },
    #[error("this account needs a one-time code from its authenticator app")]
    TotpRequired,
    #[error("the one-time code is wrong or was already used")]
    InvalidTotp,
    #[error("this device's credential was revoked")]
    DeviceRevoked,
    /// Reads of personal data must state why (`X-Purpose`).
    #[error("reading personal data needs a stated purpose")]
    PurposeRequired,
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Jurisdiction(#[from] JurisdictionError),
    /// A boundary file was refused; every fault names its feature. Nothing was stored.
    #[error("the boundary file was refused ({} problems): {}", .0.len(), summarize_faults(.0))]
    Boundaries(Vec<BoundaryFault>),
    /// No tracker is registered with this unique id.
    #[error("unknown device {unique_id}")]
    UnknownDevice { unique_id: String },
    /// The position history is behind and its queue is full: try again shortly.
    #[error("the server is overloaded; retry shortly")]
    Overloaded,
    /// No district of the city holds the point.
    #[error("{point} (lat,lon) is outside the city's jurisdictions")]
    OutsideCity { point: LatLon },
    #[error("{entity} {key} does not exist")]
    NotFound { entity: &'static str, key: String },
    /// A dispatch rule refused the change (a unit's or an incident's status).
    #[error(transparent)]
    Dispatch(#[from] fangkong_core::dispatch::DispatchError),
    /// The idempotency key was used before with a different request.
    #[error("the idempotency key {key:?} was already used for a different request")]
    IdempotencyKeyReused { key: String },
    /// Invalid input that no typed rule covers; names the field.
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// The key file does not belong to this database.
    #[error(
        "the key file does not match this database (database key check {stored}, key file {given}); \
         start with the key file the database was created with"
    )]
    WrongKey { stored: String, given: String },
    /// An import was refused; nothing of it was stored. The bad rows (up to
    /// [`registry::import::MAX_REPORTED`]) name their field and rule.
    #[error("the import was refused: {bad_rows} bad rows; first: {}", .errors.first().map(ToString::to_string).unwrap_or_default())]
    ImportRefused { errors: Vec<registry::ImportError>, bad_rows: u64 },
    /// Every place on the report pool is taken: try again shortly.
    #[error("too many reports are running; try again shortly")]
    ReportBusy,
    /// The report ran past its time budget and was stopped.
    #[error("the report took longer than its budget of {} s; ask for a shorter period or a smaller area", .budget_ms / 1000)]
    ReportTimeout { budget_ms: u64 },
    /// Nobody waits for the report any more (the client went away); it was stopped.
    #[error("the report was abandoned by its caller")]
    ReportAbandoned,
}

/// The first faults of a refused file, for one-line messages (the full list travels in
/// the error).
fn summarize_faults(faults: &[BoundaryFault]) -> String {
    let shown: Vec<String> = faults.iter().take(3).map(ToString::to_string).collect();
    match faults.len() {
        n if n > 3 => format!("{}; and {} more", shown.join("; "), n - 3),
        _ => shown.join("; "),
    }
}

/// How the engine runs: keys and the security policies, all with sensible defaults but
/// the keys.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub keys: KeyRing,
    pub sessions: SessionPolicy,
    pub lockout: LockoutPolicy,
    pub password_cost: PasswordCost,
    /// Audit records older than this are purged (behind a seal).
    pub audit_retention_days: u32,
    /// Events older than this are purged from the outbox (the tables stay the record; a
    /// node away for longer reloads from them).
    pub outbox_retention_days: u32,
    /// The H3 resolution of located records' cells (0–15; 9 ≈ 0.1 km² hexagons).
    pub h3_resolution: u8,
    /// The position pipeline.
    pub avl: avl::AvlConfig,
    /// Dispatch: duplicates, history, travel model, timers, targets, suitability, panic.
    pub dispatch: DispatchConfig,
    /// The housing registry: occupancy limits, permit warnings.
    pub registry: registry::RegistryConfig,
    /// Reports: how many at once, how long each may take.
    pub reports: ReportConfig,
}

impl EngineConfig {
    pub fn new(keys: KeyRing) -> EngineConfig {
        EngineConfig {
            keys,
            sessions: SessionPolicy::default(),
            lockout: LockoutPolicy::default(),
            password_cost: PasswordCost::default(),
            audit_retention_days: 730,
            outbox_retention_days: 3,
            h3_resolution: 9,
            avl: avl::AvlConfig::default(),
            dispatch: DispatchConfig::default(),
            registry: registry::RegistryConfig::default(),
            reports: ReportConfig::default(),
        }
    }
}

/// Counts for `/metrics` and the system page, read without touching the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub codes_by_kind: Vec<(CodeKind, usize)>,
    pub jurisdictions: usize,
    pub users: usize,
    pub live_sessions: usize,
    pub devices: usize,
    pub bus: bus::BusStats,
}

/// The engine: the kernel every feature shares, and the features, each with its own live
/// state (see `feature.rs` for how a feature is registered). `Engine` derefs to its
/// [`Kernel`], so a feature's commands reach the store, the clock, authorisation and the
/// atlas as `self.store`, `self.now()`, `self.authorize(…)`, `self.place(…)`.
#[derive(Debug)]
pub struct Engine {
    kernel: Kernel,
    identity: identity::IdentityState,
    avl: avl::AvlState,
    forces: RwLock<forces::ForceState>,
    dispatch: dispatch::DispatchState,
    reactions: reactions::ReactionState,
}

impl std::ops::Deref for Engine {
    type Target = Kernel;

    fn deref(&self) -> &Kernel {
        &self.kernel
    }
}

const KEY_CHECK: &str = "key.check";

impl Engine {
    /// Opens the store at `db_url`, migrates it and starts with the system clock and an
    /// in-process bus.
    pub async fn open(db_url: &str, config: EngineConfig) -> Result<Arc<Engine>, EngineError> {
        let store = Store::open(db_url).await?;
        Engine::start(store, Arc::new(InProcessBus::default()), Arc::new(SystemClock), config).await
    }

    /// Starts the engine over an opened store: migrates it, checks the key, seeds the
    /// built-in defaults into a new database, loads the live state and starts the reaction
    /// task (see [`reactions`]), which lives as long as the engine.
    pub async fn start(
        store: Store,
        bus: Arc<dyn EventBus>,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> Result<Arc<Engine>, EngineError> {
        let report = store.migrate().await?;
        let given = config.keys.check_value();
        match store.meta_get(KEY_CHECK).await? {
            Some(stored) if stored != given => return Err(EngineError::WrongKey { stored, given }),
            Some(_) => {}
            None => store.meta_set(KEY_CHECK, &given).await?,
        }
        store.set_audit_key(config.keys.audit_chain())?;
        let started_at = clock.now();
        let identity = identity::IdentityState::new(config.password_cost);
        let store = Arc::new(store);
        let avl = avl::AvlState::start(Arc::clone(&store), Arc::clone(&bus), &config.avl);
        let reports = reports::ReportState::new(&config.reports);
        let kernel = Kernel {
            store,
            bus,
            clock,
            config,
            started_at,
            epoch: crypto::random_bytes::<8>().iter().map(|b| format!("{b:02x}")).collect(),
            schema_version: report.version,
            codes: RwLock::default(),
            admin_writes: tokio::sync::Mutex::new(()),
            jurisdictions: RwLock::default(),
            atlas: RwLock::default(),
            reports,
        };
        let engine = Engine {
            kernel,
            identity,
            avl,
            forces: RwLock::default(),
            dispatch: dispatch::DispatchState::default(),
            reactions: reactions::ReactionState::default(),
        };
        engine.seed_defaults().await?;
        engine.load_codes().await?;
        engine.load_jurisdictions().await?;
        engine.load_forces().await?;
        engine.rekey_members().await?;
        engine.load_dispatch().await?;
        engine.load_identity().await?;
        tracing::info!(
            backend = engine.store.backend().as_str(),
            schema_version = engine.schema_version,
            codes = engine.codes.read().expect("codes lock").len(),
            "engine started"
        );
        let engine = Arc::new(engine);
        reactions::spawn(&engine);
        Ok(engine)
    }

    /// Whether the store answers.
    pub async fn health(&self) -> Result<(), EngineError> {
        Ok(self.store.ping().await?)
    }

    /// Whether a signed-in user may read the server's figures (`/metrics`); a refusal is
    /// audited like any other. A scraper's configured token is the server's business.
    pub async fn authorize_metrics(&self, caller: &Caller) -> Result<(), EngineError> {
        self.authorize(caller, fangkong_core::auth::Action::ReadMetrics, None, "metrics.read", None).await
    }

    pub fn stats(&self) -> EngineStats {
        let codes = self.codes.read().expect("codes lock");
        EngineStats {
            codes_by_kind: CodeKind::ALL.into_iter().map(|kind| (kind, codes.list(kind).count())).collect(),
            jurisdictions: self.jurisdictions.read().expect("jurisdictions lock").len(),
            users: self.identity.user_count(),
            live_sessions: self.identity.session_count(),
            devices: self.identity.device_count(),
            bus: self.bus.stats(),
        }
    }

    /// Periodic upkeep: records when sessions were last used, picks up account changes made
    /// by other processes, and enforces audit retention.
    /// The server runs it every minute; tests call it directly.
    pub async fn maintain(&self) -> Result<(), EngineError> {
        self.flush_session_touches().await?;
        self.refresh_identity().await?;
        self.enforce_audit_retention().await?;
        self.enforce_position_retention().await?;
        self.enforce_outbox_retention().await?;
        Ok(())
    }

    /// Purges events older than the outbox's retention.
    async fn enforce_outbox_retention(&self) -> Result<(), EngineError> {
        let days = i64::from(self.config.outbox_retention_days.max(1));
        let purged = self.store.purge_outbox(self.now().plus_seconds(-days * 86_400)).await?;
        if purged > 0 {
            tracing::info!(purged, retention_days = days, "outbox purged");
        }
        Ok(())
    }

    /// Waits until the store's background work after a bulk write (an import's checkpoint
    /// on SQLite) has finished.
    pub async fn store_settled(&self) {
        self.store.settled().await;
    }

    /// Finishes every write already accepted and closes the store. Commands after this
    /// fail with [`StoreError::Closed`].
    pub async fn shutdown(&self) {
        if let Err(error) = self.flush_session_touches().await {
            tracing::warn!(%error, "could not record session use at shutdown");
        }
        self.avl.close().await;
        self.store.close().await;
        tracing::info!("engine stopped; all accepted writes are stored");
    }

    /// The last step of every command, after its change and its events are stored (the
    /// outbox, in the change's transaction): the event is applied to the live state of
    /// every feature that follows it (`reactions`), then published.
    fn publish(&self, at: Timestamp, event: fangkong_core::event::Event) {
        self.apply(at, &event);
        self.bus.publish(at, event);
    }
}

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
