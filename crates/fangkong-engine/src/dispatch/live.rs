//! The live picture of dispatch: open incidents (the board) and every unit's status and
//! position, with the spatial index the recommendation searches.
//!
//! Only units that can be sent now (available or returning) and whose position is known
//! sit in the point grids; the search skips those whose last fix has gone stale.

use std::collections::{HashMap, HashSet};

use fangkong_core::dispatch::{
    Incident, Mobility, Recommendation, TravelModel, UnitState, UnitStatus, recommendation_order,
};
use fangkong_core::forces::{Beat, Unit};
use fangkong_core::time::Timestamp;
use fangkong_geo::{LatLon, PointGrid, PreparedArea, SlotId};
use fangkong_store::HISTORY_CELL_RESOLUTION;

/// Cell sizes: fine for the grid of every unit, coarse for the (sparser) grids of units
/// with a capability.
const ALL_CELL_DEG: f64 = 0.005;
const CAPABILITY_CELL_DEG: f64 = 0.05;
/// Cell size of the beat lookup.
const BEAT_CELL_DEG: f64 = 0.02;

/// Open incidents, and where they are (for duplicate detection).
#[derive(Debug, Default)]
pub(crate) struct Board {
    pub incidents: HashMap<i64, Incident>,
    /// Open incidents by their history cell (`cell_r7`).
    cells: HashMap<u64, Vec<i64>>,
    /// The open panic incident of each tracker that raised one.
    pub panics: HashMap<String, i64>,
    /// Overdue alerts already raised, by unit and the start of the status.
    pub alerted: HashSet<(String, Timestamp)>,
}

fn history_cell(point: LatLon) -> u64 {
    point.h3_cell(HISTORY_CELL_RESOLUTION).unwrap_or(0)
}

impl Board {
    /// Puts an incident on the board, or takes it off when it is no longer open.
    pub fn put(&mut self, incident: Incident) {
        let id = incident.id;
        let cell = history_cell(incident.point);
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

    /// Open incidents in the history cells within `radius_m` of `point`.
    pub fn near(&self, point: LatLon, radius_m: f64) -> impl Iterator<Item = &Incident> {
        point
            .h3_cells_within(HISTORY_CELL_RESOLUTION, radius_m)
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

/// Beats by a coarse grid of their boxes, to find the beats holding a point.
#[derive(Debug, Default)]
struct BeatIndex {
    beats: Vec<(String, PreparedArea)>,
    cells: HashMap<(i32, i32), Vec<u32>>,
}

impl BeatIndex {
    fn new(beats: &[Beat]) -> BeatIndex {
        let mut index = BeatIndex::default();
        for beat in beats {
            let bbox = beat.shape.bbox();
            let n = index.beats.len() as u32;
            let cell = |v: f64| (v / BEAT_CELL_DEG).floor() as i32;
            for x in cell(bbox.min_lon)..=cell(bbox.max_lon) {
                for y in cell(bbox.min_lat)..=cell(bbox.max_lat) {
                    index.cells.entry((x, y)).or_default().push(n);
                }
            }
            index.beats.push((beat.code.clone(), PreparedArea::new(&beat.shape)));
        }
        index
    }

    fn containing(&self, point: LatLon) -> Vec<&str> {
        let key = ((point.lon() / BEAT_CELL_DEG).floor() as i32, (point.lat() / BEAT_CELL_DEG).floor() as i32);
        let Some(list) = self.cells.get(&key) else { return Vec::new() };
        list.iter()
            .map(|&n| &self.beats[n as usize])
            .filter(|(_, area)| area.contains(point.lon(), point.lat()))
            .map(|(code, _)| code.as_str())
            .collect()
    }
}

/// Every unit's status and position, and the grids of those that can be sent.
#[derive(Debug)]
pub(crate) struct LiveUnits {
    units: Vec<LiveUnit>,
    by_code: HashMap<String, u32>,
    all: PointGrid<u32>,
    by_capability: HashMap<String, PointGrid<u32>>,
    beats: BeatIndex,
}

impl Default for LiveUnits {
    fn default() -> LiveUnits {
        LiveUnits {
            units: Vec::new(),
            by_code: HashMap::new(),
            all: PointGrid::new(ALL_CELL_DEG),
            by_capability: HashMap::new(),
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

impl LiveUnits {
    pub fn get(&self, code: &str) -> Option<&LiveUnit> {
        self.by_code.get(code).map(|&i| &self.units[i as usize])
    }

    pub fn iter(&self) -> impl Iterator<Item = &LiveUnit> {
        self.units.iter()
    }

    pub fn set_beats(&mut self, beats: &[Beat]) {
        self.beats = BeatIndex::new(beats);
    }

    /// Adds a unit (off duty) or takes in its new registry record.
    pub fn put_unit(&mut self, unit: Unit, at: Timestamp) {
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
                let state =
                    UnitState { unit: unit.code.clone(), status: UnitStatus::OffDuty, since: at, incident: None };
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
            self.reindex(i);
        } else {
            for (capability, slot) in &live.slots {
                let grid = match capability {
                    None => &mut self.all,
                    Some(c) => self.by_capability.get_mut(c).expect("capability grid"),
                };
                grid.move_to(*slot, point);
            }
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
        let mut slots = vec![(None, self.all.insert(point, i))];
        for capability in &live.unit.capabilities {
            let grid =
                self.by_capability.entry(capability.clone()).or_insert_with(|| PointGrid::new(CAPABILITY_CELL_DEG));
            slots.push((Some(capability.clone()), grid.insert(point, i)));
        }
        self.units[i as usize].slots = slots;
    }

    /// The best units for `query`: suitable ones (with the capability, when one is asked
    /// for) first, then by estimated arrival less the beat bonus.
    pub fn recommend(&self, query: &Query<'_>, model: &TravelModel) -> Vec<Recommendation> {
        let owning = self.beats.containing(query.point);
        let best: std::cell::RefCell<Vec<Recommendation>> = std::cell::RefCell::default();
        let consider = |i: u32, suitable: bool| {
            let live = &self.units[i as usize];
            let Some((position, fixed_at)) = live.position else { return };
            if fixed_at < query.fresh_after || query.exclude.contains(&live.unit.code) {
                return;
            }
            if !suitable && query.capability.is_some_and(|c| live.unit.capabilities.iter().any(|u| u == c)) {
                return; // already considered among the suitable
            }
            let distance_m = position.distance_m(query.point);
            let candidate = Recommendation {
                unit: live.unit.code.clone(),
                distance_m,
                eta_s: model.eta_s(distance_m, live.mobility),
                owns_beat: live.unit.beat.as_deref().is_some_and(|b| owning.contains(&b)),
                suitable,
            };
            let mut best = best.borrow_mut();
            let at = best.partition_point(|r| recommendation_order(r, &candidate, model).is_lt());
            if at < query.limit {
                best.insert(at, candidate);
                best.truncate(query.limit);
            }
        };
        // Stop once nothing further out can beat the worst kept (of the kind searched).
        let done = |bound: f64| {
            let best = best.borrow();
            best.len() >= query.limit && best.last().is_some_and(|w| model.score(w.eta_s, w.owns_beat) < bound)
        };
        let score_bound = |d: f64| model.score_bound(d);
        match query.capability {
            Some(capability) => {
                if let Some(grid) = self.by_capability.get(capability) {
                    grid.search(query.point, |_, &i| consider(i, true), |d| done(score_bound(d)));
                }
                if best.borrow().len() < query.limit {
                    self.all.search(query.point, |_, &i| consider(i, false), |d| done(score_bound(d)));
                }
            }
            None => self.all.search(query.point, |_, &i| consider(i, true), |d| done(score_bound(d))),
        }
        best.into_inner()
    }
}
