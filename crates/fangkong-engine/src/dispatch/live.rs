//! The live picture of dispatch: open incidents (the board) and every unit's status and
//! position, with the spatial index the recommendation searches.
//!
//! Only units that can be sent now (available or returning) and whose position is known
//! sit in the point grids; the search skips those whose last fix has gone stale.

use std::collections::{BTreeMap, HashMap, HashSet};

use fangkong_core::dispatch::{Incident, Mobility, Recommendation, TravelModel, UnitState, UnitStatus};
use fangkong_core::forces::{Beat, Unit};
use fangkong_core::time::Timestamp;
use fangkong_geo::{LatLon, PointGrid, SlotId};

use crate::forces::BeatIndex;

/// Cell sizes: fine for the grid of every unit, coarse for the (sparser) grids of units
/// with a capability.
const ALL_CELL_DEG: f64 = 0.005;
const CAPABILITY_CELL_DEG: f64 = 0.05;
/// The H3 resolution of the board's own index of open incidents (~0.1 km² cells): fine
/// enough that a duplicate check reads only the incidents a few hundred metres around.
const BOARD_CELL_RESOLUTION: u8 = 9;

/// Open incidents, and where they are (for duplicate detection).
#[derive(Debug, Default)]
pub(crate) struct Board {
    pub incidents: HashMap<i64, Incident>,
    /// Open incidents by their H3 cell at [`BOARD_CELL_RESOLUTION`].
    cells: HashMap<u64, Vec<i64>>,
    /// The open panic incident of each tracker that raised one.
    pub panics: HashMap<String, i64>,
    /// Overdue alerts already raised, by unit and the start of the status.
    pub alerted: HashSet<(String, Timestamp)>,
}

fn board_cell(point: LatLon) -> u64 {
    point.h3_cell(BOARD_CELL_RESOLUTION).unwrap_or(0)
}

impl Board {
    /// Puts an incident on the board, or takes it off when it is no longer open.
    pub fn put(&mut self, incident: Incident) {
        let id = incident.id;
        let cell = board_cell(incident.point);
        let on_board = self.incidents.contains_key(&id);
        if incident.status.is_open() {
            if !on_board {
                self.cells.entry(cell).or_default().push(id);
            }
            self.incidents.insert(id, incident);
        } else {
            self.incidents.remove(&id);
            if let Some(list) = self.cells.get_mut(&cell) {
                list.retain(|&i| i != id);
            }
            self.panics.retain(|_, &mut i| i != id);
        }
    }

    /// Open incidents in the cells within `radius_m` of `point`.
    pub fn near(&self, point: LatLon, radius_m: f64) -> impl Iterator<Item = &Incident> {
        point
            .h3_cells_within(BOARD_CELL_RESOLUTION, radius_m)
            .into_iter()
            .filter_map(|cell| self.cells.get(&cell))
            .flatten()
            .filter_map(|id| self.incidents.get(id))
    }
}

/// A unit as dispatch sees it.
#[derive(Debug)]
pub(crate) struct LiveUnit {
    pub unit: Unit,
    pub mobility: Mobility,
    pub state: UnitState,
    pub position: Option<(LatLon, Timestamp)>,
    /// Its entries in the grids: the grid of all units, then one per capability.
    slots: Vec<(Option<String>, SlotId)>,
}

/// What the search reads of a unit, kept in the grid beside its point so a query does
/// not chase each unit's record.
#[derive(Clone, Copy, Debug)]
struct Hot {
    unit: u32,
    mobility: Mobility,
    fixed_at: Timestamp,
    /// Its beat's number in the beat index (`u32::MAX`: none).
    beat: u32,
    /// One bit per capability (see `LiveUnits::capability_bits`).
    capabilities: u64,
}

/// Every unit's status and position, and the grids of those that can be sent.
#[derive(Debug)]
pub(crate) struct LiveUnits {
    units: Vec<LiveUnit>,
    by_code: HashMap<String, u32>,
    all: PointGrid<Hot>,
    by_capability: HashMap<String, PointGrid<Hot>>,
    /// Capabilities by bit (the first 64 seen; others are still searched by their grid).
    capability_bits: HashMap<String, u32>,
    /// Every beat, as saved, and their lookup.
    beat_records: BTreeMap<String, Beat>,
    beats: BeatIndex,
}

impl Default for LiveUnits {
    fn default() -> LiveUnits {
        LiveUnits {
            units: Vec::new(),
            by_code: HashMap::new(),
            all: PointGrid::new(ALL_CELL_DEG),
            by_capability: HashMap::new(),
            capability_bits: HashMap::new(),
            beat_records: BTreeMap::new(),
            beats: BeatIndex::default(),
        }
    }
}

/// What a recommendation asks for.
#[derive(Debug)]
pub(crate) struct Query<'a> {
    pub point: LatLon,
    /// The capability the incident type prefers, if any.
    pub capability: Option<&'a str>,
    pub limit: usize,
    /// Fixes older than this do not count as a position.
    pub fresh_after: Timestamp,
    pub exclude: &'a [String],
}

/// A unit being ranked (no strings: the search's hot loop allocates nothing).
#[derive(Clone, Copy, Debug)]
struct Ranked {
    unit: u32,
    distance_m: f64,
    eta_s: f64,
    score: f64,
    owns_beat: bool,
    suitable: bool,
}

impl LiveUnits {
    pub fn get(&self, code: &str) -> Option<&LiveUnit> {
        self.by_code.get(code).map(|&i| &self.units[i as usize])
    }

    pub fn iter(&self) -> impl Iterator<Item = &LiveUnit> {
        self.units.iter()
    }

    /// Takes in beats saved (new or changed), and indexes them with the others.
    pub fn put_beats(&mut self, saved: &[Beat]) {
        for beat in saved {
            self.beat_records.insert(beat.code.clone(), beat.clone());
        }
        let all: Vec<Beat> = self.beat_records.values().cloned().collect();
        self.beats = BeatIndex::new(&all);
        for i in 0..self.units.len() as u32 {
            self.refresh(i);
        }
    }

    /// Adds a unit (off duty) or takes in its new registry record.
    pub fn put_unit(&mut self, unit: Unit, at: Timestamp) {
        for capability in &unit.capabilities {
            let next = self.capability_bits.len() as u32;
            if next < 64 {
                self.capability_bits.entry(capability.clone()).or_insert(next);
            }
        }
        match self.by_code.get(&unit.code) {
            Some(&i) => {
                self.unindex(i);
                let live = &mut self.units[i as usize];
                live.mobility = Mobility::of(unit.mode);
                live.unit = unit;
                self.reindex(i);
            }
            None => {
                let i = self.units.len() as u32;
                let state = UnitState {
                    unit: unit.code.clone(),
                    status: UnitStatus::OffDuty,
                    since: at,
                    incident: None,
                    revision: 0,
                };
                self.by_code.insert(unit.code.clone(), i);
                self.units.push(LiveUnit {
                    mobility: Mobility::of(unit.mode),
                    unit,
                    state,
                    position: None,
                    slots: Vec::new(),
                });
            }
        }
    }

    pub fn set_state(&mut self, state: UnitState) {
        let Some(&i) = self.by_code.get(&state.unit) else { return };
        self.units[i as usize].state = state;
        self.reindex(i);
    }

    /// Records a unit's newest position (older fixes than the one held are ignored).
    pub fn set_position(&mut self, code: &str, point: LatLon, fixed_at: Timestamp) {
        let Some(&i) = self.by_code.get(code) else { return };
        let live = &mut self.units[i as usize];
        if live.position.is_some_and(|(_, at)| at > fixed_at) {
            return;
        }
        live.position = Some((point, fixed_at));
        if live.slots.is_empty() {
            return self.reindex(i);
        }
        for (capability, slot) in &live.slots {
            let grid = match capability {
                None => &mut self.all,
                Some(c) => self.by_capability.get_mut(c).expect("capability grid"),
            };
            grid.move_to(*slot, point);
            grid.update(*slot, |hot| hot.fixed_at = fixed_at);
        }
    }

    fn hot(&self, i: u32) -> Hot {
        let live = &self.units[i as usize];
        let capabilities = live
            .unit
            .capabilities
            .iter()
            .filter_map(|c| self.capability_bits.get(c))
            .fold(0u64, |bits, bit| bits | (1 << bit));
        Hot {
            unit: i,
            mobility: live.mobility,
            fixed_at: live.position.map_or(Timestamp::UNIX_EPOCH, |(_, at)| at),
            beat: self.beats.number(live.unit.beat.as_deref()),
            capabilities,
        }
    }

    /// Rewrites a unit's grid entries after its beat's number changed.
    fn refresh(&mut self, i: u32) {
        let hot = self.hot(i);
        for (capability, slot) in &self.units[i as usize].slots {
            let grid = match capability {
                None => &mut self.all,
                Some(c) => self.by_capability.get_mut(c).expect("capability grid"),
            };
            grid.update(*slot, |entry| *entry = hot);
        }
    }

    fn unindex(&mut self, i: u32) {
        for (capability, slot) in std::mem::take(&mut self.units[i as usize].slots) {
            match capability {
                None => self.all.remove(slot),
                Some(c) => self.by_capability.get_mut(&c).and_then(|g| g.remove(slot)),
            };
        }
    }

    /// Puts the unit into the grids if it can be sent and has a position, out otherwise.
    fn reindex(&mut self, i: u32) {
        let live = &self.units[i as usize];
        let wanted = live.state.status.can_be_dispatched() && live.position.is_some();
        if wanted != live.slots.is_empty() {
            return;
        }
        if !wanted {
            return self.unindex(i);
        }
        let point = live.position.expect("checked").0;
        let capabilities = live.unit.capabilities.clone();
        let hot = self.hot(i);
        let mut slots = vec![(None, self.all.insert(point, hot))];
        for capability in capabilities {
            let grid =
                self.by_capability.entry(capability.clone()).or_insert_with(|| PointGrid::new(CAPABILITY_CELL_DEG));
            slots.push((Some(capability), grid.insert(point, hot)));
        }
        self.units[i as usize].slots = slots;
    }

    /// The best units for `query`: suitable ones (with the capability, when one is asked
    /// for) first, then by estimated arrival less the beat bonus, then by unit code.
    pub fn recommend(&self, query: &Query<'_>, model: &TravelModel) -> Vec<Recommendation> {
        let owning = self.beats.containing(query.point);
        let bit = query.capability.and_then(|c| self.capability_bits.get(c)).map(|&b| 1u64 << b);
        let best: std::cell::RefCell<Vec<Ranked>> = std::cell::RefCell::default();
        let order = |a: &Ranked, b: &Ranked| {
            (!a.suitable)
                .cmp(&!b.suitable)
                .then(a.score.total_cmp(&b.score))
                .then_with(|| self.units[a.unit as usize].unit.code.cmp(&self.units[b.unit as usize].unit.code))
        };
        let consider = |point: LatLon, hot: &Hot, suitable: bool| {
            if hot.fixed_at < query.fresh_after {
                return;
            }
            if !suitable && bit.is_some_and(|bit| hot.capabilities & bit != 0) {
                return; // already considered among the suitable
            }
            let distance_m = point.distance_m(query.point);
            let eta_s = model.eta_s(distance_m, hot.mobility);
            let owns_beat = hot.beat != u32::MAX && owning.contains(&hot.beat);
            let candidate =
                Ranked { unit: hot.unit, distance_m, eta_s, score: model.score(eta_s, owns_beat), owns_beat, suitable };
            let mut best = best.borrow_mut();
            if best.len() >= query.limit && best.last().is_some_and(|w| order(w, &candidate).is_lt()) {
                return;
            }
            if !query.exclude.is_empty() && query.exclude.contains(&self.units[hot.unit as usize].unit.code) {
                return;
            }
            let at = best.partition_point(|r| order(r, &candidate).is_lt());
            best.insert(at, candidate);
            best.truncate(query.limit);
        };
        // Nothing further out can beat the worst kept: stop. Without a beat holding the
        // place, no unit gets the bonus, so the bound is tighter.
        let bonus = if owning.is_empty() { 0.0 } else { model.beat_bonus_s };
        let done = |distance: f64| {
            let best = best.borrow();
            let bound = model.score_bound(distance) + model.beat_bonus_s - bonus;
            best.len() >= query.limit && best.last().is_some_and(|w| w.score < bound)
        };
        match query.capability {
            Some(capability) => {
                if let Some(grid) = self.by_capability.get(capability) {
                    grid.search(query.point, |p, hot| consider(p, hot, true), &done);
                }
                if best.borrow().len() < query.limit {
                    self.all.search(query.point, |p, hot| consider(p, hot, false), &done);
                }
            }
            None => self.all.search(query.point, |p, hot| consider(p, hot, true), &done),
        }
        best.into_inner()
            .into_iter()
            .map(|r| Recommendation {
                unit: self.units[r.unit as usize].unit.code.clone(),
                distance_m: r.distance_m,
                eta_s: r.eta_s,
                owns_beat: r.owns_beat,
                suitable: r.suitable,
            })
            .collect()
    }
}
