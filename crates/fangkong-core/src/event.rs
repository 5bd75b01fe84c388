//! Domain events: every change of state in Fangkong is described by one [`Event`].
//!
//! The engine publishes an event after the change is durable in the store, so a subscriber
//! (the live board, another server node, an exporter) never sees a change that a crash
//! could take back. Events carry the new state, not a diff, so a subscriber that joins late
//! needs no history to apply them.

use crate::codes::CodeEntry;

#[derive(Clone, PartialEq, Debug)]
pub enum Event {
    /// A code was added to a code table.
    CodeCreated(CodeEntry),
    /// A code's names, priority or active flag changed.
    CodeUpdated(CodeEntry),
}

impl Event {
    /// A stable dotted name, used for filtering and as the message subject on a bus.
    pub fn name(&self) -> &'static str {
        match self {
            Event::CodeCreated(_) => "code.created",
            Event::CodeUpdated(_) => "code.updated",
        }
    }

    /// The record the event is about, as `kind/key` (e.g. `code/incident_type/010300`).
    pub fn subject(&self) -> String {
        match self {
            Event::CodeCreated(entry) | Event::CodeUpdated(entry) => format!("code/{}/{}", entry.kind, entry.code),
        }
    }
}
