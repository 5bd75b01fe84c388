//! The outbox: every event, in its one serialised form ([`fangkong_wire`]), stored in the
//! transaction of the change it announces, numbered: on SQLite in commit order without gaps
//! (one writer); on PostgreSQL by an identity column, increasing in the order writers store
//! their events, with a gap where a transaction rolled back (a follower waits a moment at a
//! gap before passing it: the transaction holding that number may not have committed yet).
//!
//! A command hands the store its rows, its audit record and its events together
//! ([`Audited`], or the `outbox` field of the dispatch and position writes); the store
//! writes all of them or none. What the outbox then holds is exactly what happened, in the
//! order it happened: another node follows it, and a fresh engine can rebuild the live
//! picture from it alone ([`Store::outbox_after`]). Rows older than the retention are
//! purged ([`Store::purge_outbox`]): the tables are the record, the outbox the recent story.

use std::sync::Arc;

use fangkong_core::audit::AuditEntry;
use fangkong_core::event::Event;
use fangkong_core::time::Timestamp;

use crate::StoreError;

/// Events in their serialised form, ready to be stored with a change. Encoded before the
/// write (off the SQLite writer thread) — except the events of an insert whose ids the
/// store assigns ([`Outbox::of_new_rows`]), which are made once the ids are known.
#[derive(Clone, Default)]
pub struct Outbox {
    pub(crate) rows: Vec<OutboxRow>,
    of_new_rows: Option<(Timestamp, NewRowEvents)>,
}

/// The events of an insert, given the ids the store assigned (in the order of the rows).
type NewRowEvents = Arc<dyn Fn(&[i64]) -> Vec<Event> + Send + Sync>;

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("rows", &self.rows)
            .field("of_new_rows", &self.of_new_rows.as_ref().map(|(at, _)| at))
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OutboxRow {
    pub at: i64,
    pub kind: &'static str,
    /// UTF-8 JSON.
    pub body: String,
}

impl Outbox {
    /// The events a change announces, in the order they happen.
    pub fn new<'a>(at: Timestamp, events: impl IntoIterator<Item = &'a Event>) -> Outbox {
        let mut outbox = Outbox::default();
        for event in events {
            outbox.push(at, event);
        }
        outbox
    }

    /// One event already in its serialised form.
    pub(crate) fn encoded(at: Timestamp, kind: &'static str, body: Vec<u8>) -> Outbox {
        let body = String::from_utf8(body).expect("the wire form is JSON, hence UTF-8");
        Outbox { rows: vec![OutboxRow { at: at.as_millis(), kind, body }], of_new_rows: None }
    }

    pub fn push(&mut self, at: Timestamp, event: &Event) {
        let body = String::from_utf8(fangkong_wire::encode(event)).expect("the wire form is JSON, hence UTF-8");
        self.rows.push(OutboxRow { at: at.as_millis(), kind: event.name(), body });
    }

    /// The events of an insert that names its new rows by the ids the store gives them:
    /// `events` is called with those ids inside the write's transaction. (A registry import
    /// gives the number of rows it stored instead.)
    pub fn of_new_rows(at: Timestamp, events: impl Fn(&[i64]) -> Vec<Event> + Send + Sync + 'static) -> Outbox {
        Outbox { rows: Vec::new(), of_new_rows: Some((at, Arc::new(events))) }
    }

    /// With the events of the new rows made (a backend calls it once it has the ids).
    pub(crate) fn with_ids(&self, ids: &[i64]) -> Outbox {
        let mut outbox = Outbox { rows: self.rows.clone(), of_new_rows: None };
        if let Some((at, events)) = &self.of_new_rows {
            for event in events(ids) {
                outbox.push(*at, &event);
            }
        }
        outbox
    }

    pub(crate) fn awaits_ids(&self) -> bool {
        self.of_new_rows.is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.of_new_rows.is_none()
    }
}

/// An audited write: its audit record and the events it announces, stored with its rows in
/// one transaction. A bare [`AuditEntry`] converts into one that announces nothing (for
/// the refusals and reads that are audited but change no state).
#[derive(Clone, Debug)]
pub struct Audited {
    pub audit: AuditEntry,
    pub outbox: Outbox,
}

impl Audited {
    pub fn new(audit: AuditEntry, outbox: Outbox) -> Audited {
        Audited { audit, outbox }
    }
}

impl Audited {
    /// With the events of the new rows made (see [`Outbox::of_new_rows`]).
    pub(crate) fn with_ids(&self, ids: &[i64]) -> Audited {
        Audited { audit: self.audit.clone(), outbox: self.outbox.with_ids(ids) }
    }
}

impl From<AuditEntry> for Audited {
    fn from(audit: AuditEntry) -> Audited {
        Audited { audit, outbox: Outbox::default() }
    }
}

impl From<&AuditEntry> for Audited {
    fn from(audit: &AuditEntry) -> Audited {
        Audited { audit: audit.clone(), outbox: Outbox::default() }
    }
}

impl From<&Audited> for Audited {
    fn from(audited: &Audited) -> Audited {
        audited.clone()
    }
}

/// An event of the outbox with its number.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxRecord {
    pub seq: i64,
    pub at: Timestamp,
    pub event: Event,
}

pub(crate) fn record(seq: i64, at: i64, kind: &str, body: &[u8]) -> Result<OutboxRecord, StoreError> {
    let event = fangkong_wire::decode(body)
        .map_err(|error| StoreError::Corrupt(format!("outbox event {seq} ({kind}): {error}")))?;
    Ok(OutboxRecord { seq, at: Timestamp::from_millis(at), event })
}

impl crate::Store {
    /// The events after `after`, oldest first, at most `limit`.
    pub async fn outbox_after(&self, after: i64, limit: u32) -> Result<Vec<OutboxRecord>, StoreError> {
        dispatch!(self.outbox_after(after, limit))
    }

    /// The number of the last event stored (0: none yet).
    pub async fn outbox_head(&self) -> Result<i64, StoreError> {
        dispatch!(self.outbox_head())
    }

    /// Deletes the events stored before `before`; returns how many.
    pub async fn purge_outbox(&self, before: Timestamp) -> Result<u64, StoreError> {
        dispatch!(self.purge_outbox(before))
    }
}
