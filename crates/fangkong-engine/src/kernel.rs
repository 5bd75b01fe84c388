//! The kernel: what every feature shares — the store, the bus, the clock, the keys and the
//! configuration, authorisation and audit (`audit.rs`), the code tables (`codes.rs`), the
//! jurisdiction tree and atlas with the point lookup (`jurisdictions.rs`), the report pool
//! (`reports.rs`) and the lock that serialises administrative changes.
//!
//! The kernel knows no feature. Features keep their own live state beside it in the
//! [`Engine`](crate::Engine), which derefs to the kernel, and change it only by applying
//! events (`feature.rs`).

use std::sync::{Arc, RwLock};

use fangkong_core::codes::CodeTable;
use fangkong_core::jurisdiction::{Atlas, JurisdictionTree};
use fangkong_core::time::Timestamp;
use fangkong_store::{Backend, Store};

use crate::bus::EventBus;
use crate::clock::Clock;
use crate::{EngineConfig, reports};

#[derive(Debug)]
pub struct Kernel {
    pub(crate) store: Arc<Store>,
    pub(crate) bus: Arc<dyn EventBus>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: EngineConfig,
    pub(crate) started_at: Timestamp,
    /// Names this run of the bus: sequence numbers restart with the process, so a client
    /// resuming from a sequence must name the epoch it came from.
    pub(crate) epoch: String,
    pub(crate) schema_version: u32,
    pub(crate) codes: RwLock<CodeTable>,
    /// Serialises administrative changes (codes, jurisdictions, accounts, devices): each is
    /// checked against the live state as the previous change left it. They are rare acts;
    /// serialising them costs nothing and rules out lost updates.
    pub(crate) admin_writes: tokio::sync::Mutex<()>,
    pub(crate) jurisdictions: RwLock<JurisdictionTree>,
    /// The shapes and the point lookup, swapped whole when an import changes them.
    pub(crate) atlas: RwLock<Arc<Atlas>>,
    pub(crate) reports: reports::ReportState,
}

impl Kernel {
    /// Applies an event to what the kernel holds of the features' shared state: the code
    /// tables. (The tree and the atlas are installed by the import that stored them: the
    /// shapes are in no event.)
    pub(crate) fn apply(&self, event: &fangkong_core::event::Event) {
        use fangkong_core::event::Event;
        if let Event::CodeCreated(entry) | Event::CodeUpdated(entry) = event {
            self.codes.write().expect("codes lock").apply(entry.clone());
        }
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

    /// The bus epoch (see [`crate::bus`]): changes with every start.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn bus(&self) -> &Arc<dyn EventBus> {
        &self.bus
    }
}
