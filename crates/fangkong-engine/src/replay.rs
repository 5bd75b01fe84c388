//! Rebuilding the live picture from events alone.
//!
//! Every command stores its events in the outbox, in its transaction, and changes live
//! state only by applying them ([`Engine::apply`]). So a fresh engine that applies another
//! engine's outbox, in order, holds the same live picture: what a node following another
//! does (issue 27), and what the replay test checks ([`Engine::live_picture`]).
//!
//! What the picture holds, and what it leaves out on purpose: sessions by their token's
//! hash, with their user and opening time (not their last use, which is telemetry written
//! in batches, not an event); every unit with its registry record and dispatch status;
//! the open incidents with their assignments; every tracker's last fix, placed; the beats.
//! Accounts and devices hold secrets no event carries (password hashes, credentials) and
//! jurisdictions hold shapes too large for events: a follower reads those from the store
//! when their events say they changed.

use std::collections::BTreeMap;

use fangkong_core::avl::Fix;
use fangkong_core::dispatch::{AreaClass, Incident, UnitState};
use fangkong_core::forces::{Beat, Unit};
use fangkong_core::jurisdiction::Chain;
use fangkong_core::time::Timestamp;
use fangkong_geo::LatLon;
use fangkong_store::OutboxRecord;

use crate::Engine;

/// The live picture in a form that compares (see the module's notes for what it holds).
#[derive(Debug, PartialEq)]
pub struct LivePicture {
    /// By token hash: the user and when the session opened.
    pub sessions: BTreeMap<[u8; 32], (i64, Timestamp)>,
    /// The force registry's units and beats.
    pub units: BTreeMap<String, Unit>,
    pub beats: BTreeMap<String, Beat>,
    /// Dispatch's units: the record it ranks, the status and the last known point.
    pub dispatch_units: BTreeMap<String, DispatchUnit>,
    pub open_incidents: BTreeMap<i64, Incident>,
    /// The area classes set on nodes (the rest inherit).
    pub area_classes: BTreeMap<String, AreaClass>,
    /// By device id: the tracker, its unit, the fix and where it was placed.
    pub last_fixes: BTreeMap<i64, (String, Option<String>, Fix, Chain)>,
}

/// A unit as dispatch holds it: the record it ranks, the status, the last known point.
pub type DispatchUnit = (Unit, UnitState, Option<(LatLon, Timestamp)>);

impl Engine {
    /// Applies events another engine stored (its outbox), in order, to this engine's live
    /// state, storing nothing.
    pub fn apply_recorded(&self, records: &[OutboxRecord]) {
        for record in records {
            self.apply(record.at, &record.event);
        }
    }

    /// The live picture, for comparing two engines (see [`LivePicture`]).
    pub fn live_picture(&self) -> LivePicture {
        let sessions = self.identity.session_summaries();
        let (units, beats) = {
            let forces = self.forces.read().expect("forces lock");
            (
                forces.units().map(|u| (u.code.clone(), u.clone())).collect(),
                forces.beats().map(|b| (b.code.clone(), b.clone())).collect(),
            )
        };
        let dispatch_units = self
            .dispatch
            .units
            .read()
            .expect("units lock")
            .iter()
            .map(|live| (live.unit.code.clone(), (live.unit.clone(), live.state.clone(), live.position)))
            .collect();
        let open_incidents =
            self.dispatch.board.read().expect("board lock").incidents.iter().map(|(id, i)| (*id, i.clone())).collect();
        let last_fixes = self
            .newest_fixes()
            .into_iter()
            .map(|live| (live.device_id, (live.unique_id, live.unit, live.fix, live.chain)))
            .collect();
        let area_classes = self.dispatch.area_classes.read().expect("area classes lock").clone();
        LivePicture { sessions, units, beats, dispatch_units, open_incidents, area_classes, last_fixes }
    }
}

#[cfg(test)]
mod tests;
