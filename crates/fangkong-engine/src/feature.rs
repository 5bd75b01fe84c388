//! How a feature joins the engine, and the one way its live state changes.
//!
//! A feature (identity, forces, positions, dispatch, and the ones to come) is a module with
//! its live state — a type that implements [`Feature`] — and its commands, `impl Engine`
//! blocks in the same module that authorise, check, store their change with its events and
//! publish them. The state changes only in [`Feature::apply`]: for this node's commands,
//! for another node's events, for a replay of the outbox. A feature reads what every
//! feature shares through the kernel ([`crate::Kernel`]) and never calls another feature;
//! what it must know of another's changes it takes from their events (dispatch keeps its
//! own copy of the beats and units it ranks, from `BeatsSaved` and `UnitsSaved`).
//!
//! Registering a feature is two lines in `lib.rs`: its state as a field of `Engine` (with
//! its load at start, if it keeps state across restarts) and its entry in
//! [`Engine::features`]. See "Adding a feature" in ARCHITECTURE.md.

use fangkong_core::event::Event;
use fangkong_core::time::Timestamp;

use crate::Engine;
use crate::avl::LivePosition;

/// A feature's live state, as the engine applies events to it.
pub(crate) trait Feature: Send + Sync + std::fmt::Debug {
    /// Applies an event (stored at `at`) to the feature's live state. Kinds the feature
    /// does not follow are ignored. Memory only: the event is already stored.
    fn apply(&self, at: Timestamp, event: &Event);

    /// Takes in a tracker's newest accepted fix. Positions are telemetry, applied when
    /// they are accepted (before they are stored); only the features that follow them
    /// implement this.
    fn apply_position(&self, _live: &LivePosition) {}
}

impl Engine {
    /// Every feature, in the order events are applied to them: the one list a new feature
    /// is added to.
    pub(crate) fn features(&self) -> [&dyn Feature; 4] {
        [&self.identity, &self.forces, &self.avl, &self.dispatch]
    }
}
