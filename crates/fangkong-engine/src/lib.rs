//! Fangkong's engine: every use case of the system, over live state in memory, the store
//! as the record and the event bus as the announcement.
//!
//! The pattern of every command is the same: check it against the core's rules and the
//! live state, write it durably to the store, update the live state, publish the event.
//! Queries are answered from memory where the live picture lives (SYSTEM.md: "the live
//! picture is served from memory; the store is the record").
//!
//! The engine knows nothing of HTTP or JSON; the server calls it, the simulator drives it
//! through the same commands, and the benchmarks time it.

pub mod bus;
pub mod clock;
mod codes;
mod defaults;

use std::sync::{Arc, RwLock};

use fangkong_core::codes::{CodeError, CodeKind, CodeTable};
use fangkong_core::time::Timestamp;
pub use fangkong_store::{Backend, MigrationReport, Store, StoreError};

use crate::bus::{EventBus, InProcessBus};
use crate::clock::{Clock, SystemClock};

pub use codes::{CodeChange, NewCode};

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
}

/// Counts for `/metrics` and the system page, read without touching the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub codes_by_kind: Vec<(CodeKind, usize)>,
    pub bus: bus::BusStats,
}

#[derive(Debug)]
pub struct Engine {
    store: Store,
    bus: Arc<dyn EventBus>,
    clock: Arc<dyn Clock>,
    started_at: Timestamp,
    schema_version: u32,
    codes: RwLock<CodeTable>,
    /// Serialises code-table changes: each is checked against the table as the previous
    /// change left it. Code edits are rare administrative acts; this costs nothing.
    code_writes: tokio::sync::Mutex<()>,
}

impl Engine {
    /// Opens the store at `db_url`, migrates it and starts with the system clock and an
    /// in-process bus.
    pub async fn open(db_url: &str) -> Result<Engine, EngineError> {
        let store = Store::open(db_url).await?;
        Engine::start(store, Arc::new(InProcessBus::default()), Arc::new(SystemClock)).await
    }

    /// Starts the engine over an opened store: migrates it, seeds the built-in defaults
    /// into a new database and loads the live state.
    pub async fn start(store: Store, bus: Arc<dyn EventBus>, clock: Arc<dyn Clock>) -> Result<Engine, EngineError> {
        let report = store.migrate().await?;
        let started_at = clock.now();
        let engine = Engine {
            store,
            bus,
            clock,
            started_at,
            schema_version: report.version,
            codes: RwLock::default(),
            code_writes: tokio::sync::Mutex::new(()),
        };
        engine.seed_defaults().await?;
        engine.load_codes().await?;
        tracing::info!(
            backend = engine.store.backend().as_str(),
            schema_version = engine.schema_version,
            codes = engine.codes.read().expect("codes lock").len(),
            "engine started"
        );
        Ok(engine)
    }

    pub fn backend(&self) -> Backend {
        self.store.backend()
    }

    pub fn schema_version(&self) -> u32 {
        self.schema_version
    }

    pub fn started_at(&self) -> Timestamp {
        self.started_at
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn bus(&self) -> &Arc<dyn EventBus> {
        &self.bus
    }

    /// Whether the store answers.
    pub async fn health(&self) -> Result<(), EngineError> {
        Ok(self.store.ping().await?)
    }

    pub fn stats(&self) -> EngineStats {
        let codes = self.codes.read().expect("codes lock");
        EngineStats {
            codes_by_kind: CodeKind::ALL.into_iter().map(|kind| (kind, codes.list(kind).count())).collect(),
            bus: self.bus.stats(),
        }
    }

    /// Finishes every write already accepted and closes the store. Commands after this
    /// fail with [`StoreError::Closed`].
    pub async fn shutdown(&self) {
        self.store.close().await;
        tracing::info!("engine stopped; all accepted writes are stored");
    }

    fn publish(&self, at: Timestamp, event: fangkong_core::event::Event) {
        self.bus.publish(at, event);
    }
}

#[cfg(test)]
mod tests;
