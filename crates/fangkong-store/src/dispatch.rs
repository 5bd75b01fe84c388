//! Dispatch in the store: incidents with the units sent to them, their append-only
//! timelines, units' dispatch statuses, and the area classes of jurisdictions.
//!
//! A dispatch command writes everything it changed — incidents, assignments, unit statuses
//! and the timeline entries saying so — in one transaction ([`DispatchChange`]), so the
//! record never shows a unit sent without the timeline saying who sent it.

use crate::outbox::{Audited, Outbox};
use fangkong_core::dispatch::{
    AreaClass, Assignment, Incident, IncidentStatus, TimelineEntry, TimelineKind, UnitState, UnitStatus,
};
use fangkong_core::jurisdiction::{Chain, JurisdictionKind};
use fangkong_core::time::Timestamp;
use fangkong_geo::LatLon;
use fangkong_wire::NewIncidentEvent;

use crate::{Store, StoreError};

/// The H3 resolution of the `cell_r7` column (fixed, whatever the configured resolution).
pub const HISTORY_CELL_RESOLUTION: u8 = 7;

/// A new incident with what is stored beside it.
#[derive(Clone, Debug)]
pub struct NewIncident {
    pub incident: Incident,
    /// The caller's name and phone, sealed by the engine (bound to the incident's uid).
    pub caller_sealed: Option<Vec<u8>>,
    /// The creating user's idempotency key and a hash of the request it came with.
    pub idempotency: Option<(String, [u8; 32])>,
    /// Entries for the new incident (their `incident` field is filled in by the store).
    pub timeline: Vec<TimelineEntry>,
}

/// How a new incident is announced in the outbox: `incident.changed` with the id the
/// store gave it (the engine publishes the same event once the insert has committed),
/// encoded before the write and given its id in it.
pub(crate) fn announce_new(incident: &Incident, event: &NewIncidentEvent, id: i64) -> Outbox {
    Outbox::encoded(incident.updated_at, "incident.changed", event.with_id(id))
}

/// What became of an insert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// Stored with this id.
    New(i64),
    /// The creator already used the idempotency key: the incident it created and the hash
    /// of the request that created it. Nothing was written.
    Existing { id: i64, request_hash: Vec<u8> },
}

/// Everything one dispatch command changed, written in one transaction.
#[derive(Clone, Debug, Default)]
pub struct DispatchChange {
    /// Incidents in their new state (with all their assignments).
    pub incidents: Vec<Incident>,
    pub units: Vec<UnitState>,
    pub timeline: Vec<TimelineEntry>,
    /// The events the change announces, stored with it.
    pub outbox: Outbox,
}

/// The columns of `incidents` in the order [`IncidentRow`] reads them.
pub(crate) const INCIDENT_COLUMNS: &str = "id, uid, source, type_code, priority, status, disposition, lat, lon, \
    address, h3, city, district, subdistrict, community, grid, station, police_district, description, \
    caller_phone_masked, possible_duplicates, merged_into, area_class, arrival_target_s, created_by, created_at, \
    updated_at, revision, dispatched_at, arrived_at, resolved_at, closed_at";

/// The chain's levels as stored, in column order.
pub(crate) const CHAIN_LEVELS: [JurisdictionKind; 7] = [
    JurisdictionKind::City,
    JurisdictionKind::District,
    JurisdictionKind::Subdistrict,
    JurisdictionKind::Community,
    JurisdictionKind::Grid,
    JurisdictionKind::PoliceStation,
    JurisdictionKind::PoliceDistrict,
];

/// The column holding the chain's code at `kind`.
pub fn chain_column(kind: JurisdictionKind) -> &'static str {
    match kind {
        JurisdictionKind::City => "city",
        JurisdictionKind::District => "district",
        JurisdictionKind::Subdistrict => "subdistrict",
        JurisdictionKind::Community => "community",
        JurisdictionKind::Grid => "grid",
        JurisdictionKind::PoliceStation => "station",
        JurisdictionKind::PoliceDistrict => "police_district",
    }
}

/// An `incidents` row as both backends read it.
#[derive(Debug)]
pub(crate) struct IncidentRow {
    pub id: i64,
    pub uid: String,
    pub source: String,
    pub type_code: String,
    pub priority: i64,
    pub status: String,
    pub disposition: Option<String>,
    pub lat: f64,
    pub lon: f64,
    pub address: String,
    pub h3: Option<i64>,
    pub chain: [Option<String>; 7],
    pub description: String,
    pub caller_phone_masked: Option<String>,
    pub possible_duplicates: String,
    pub merged_into: Option<i64>,
    pub area_class: String,
    pub arrival_target_s: i64,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub revision: i64,
    pub dispatched_at: Option<i64>,
    pub arrived_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub closed_at: Option<i64>,
}

fn corrupt(id: i64, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("incident {id}: {what}"))
}

fn at(millis: Option<i64>) -> Option<Timestamp> {
    millis.map(Timestamp::from_millis)
}

impl IncidentRow {
    pub fn into_domain(self, assignments: Vec<Assignment>) -> Result<Incident, StoreError> {
        let id = self.id;
        let mut chain = Chain::default();
        for (kind, code) in CHAIN_LEVELS.into_iter().zip(self.chain) {
            if let Some(code) = code {
                chain.set(kind, code);
            }
        }
        Ok(Incident {
            id,
            uid: self.uid,
            source: self.source,
            type_code: self.type_code,
            priority: u8::try_from(self.priority).map_err(|_| corrupt(id, "priority out of range"))?,
            status: IncidentStatus::parse(&self.status).ok_or_else(|| corrupt(id, "unknown status"))?,
            disposition: self.disposition,
            point: LatLon::new(self.lat, self.lon).map_err(|e| corrupt(id, e))?,
            address: self.address,
            chain,
            h3: self.h3.map(|h| h as u64),
            description: self.description,
            caller_phone_masked: self.caller_phone_masked,
            possible_duplicates: id_list(&self.possible_duplicates).ok_or_else(|| corrupt(id, "duplicate list"))?,
            merged_into: self.merged_into,
            area_class: AreaClass::parse(&self.area_class).ok_or_else(|| corrupt(id, "unknown area class"))?,
            arrival_target_s: self.arrival_target_s,
            created_by: self.created_by,
            created_at: Timestamp::from_millis(self.created_at),
            updated_at: Timestamp::from_millis(self.updated_at),
            revision: self.revision,
            dispatched_at: at(self.dispatched_at),
            arrived_at: at(self.arrived_at),
            resolved_at: at(self.resolved_at),
            closed_at: at(self.closed_at),
            assignments,
        })
    }
}

/// Incident ids as stored: comma-separated.
pub(crate) fn id_text(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

fn id_list(text: &str) -> Option<Vec<i64>> {
    text.split(',').filter(|s| !s.is_empty()).map(|s| s.parse().ok()).collect()
}

/// The chain's codes in column order.
pub(crate) fn chain_codes(chain: &Chain) -> [Option<String>; 7] {
    CHAIN_LEVELS.map(|kind| chain.get(kind).map(str::to_string))
}

/// The `cell_r7` of a point.
pub(crate) fn history_cell(point: LatLon) -> i64 {
    point.h3_cell(HISTORY_CELL_RESOLUTION).map_or(0, |c| c as i64)
}

/// An `incident_units` row.
pub(crate) struct AssignmentRow {
    pub incident_id: i64,
    pub unit: String,
    pub dispatched_at: i64,
    pub status: String,
    pub en_route_at: Option<i64>,
    pub on_scene_at: Option<i64>,
    pub cleared_at: Option<i64>,
}

impl AssignmentRow {
    pub fn into_domain(self) -> Result<(i64, Assignment), StoreError> {
        let status = UnitStatus::parse(&self.status).ok_or_else(|| corrupt(self.incident_id, "assignment status"))?;
        Ok((
            self.incident_id,
            Assignment {
                unit: self.unit,
                status,
                dispatched_at: Timestamp::from_millis(self.dispatched_at),
                en_route_at: at(self.en_route_at),
                on_scene_at: at(self.on_scene_at),
                cleared_at: at(self.cleared_at),
            },
        ))
    }
}

/// Groups assignment rows (ordered by incident) onto their incidents.
pub(crate) fn attach(rows: Vec<IncidentRow>, assignments: Vec<(i64, Assignment)>) -> Result<Vec<Incident>, StoreError> {
    let mut by_incident: std::collections::HashMap<i64, Vec<Assignment>> = std::collections::HashMap::new();
    for (incident, assignment) in assignments {
        by_incident.entry(incident).or_default().push(assignment);
    }
    rows.into_iter()
        .map(|row| {
            let mut list = by_incident.remove(&row.id).unwrap_or_default();
            list.sort_by(|a, b| a.dispatched_at.cmp(&b.dispatched_at).then_with(|| a.unit.cmp(&b.unit)));
            row.into_domain(list)
        })
        .collect()
}

pub(crate) fn timeline_entry(
    incident: i64,
    at: i64,
    actor: String,
    kind: String,
    unit: Option<String>,
    detail: String,
) -> Result<TimelineEntry, StoreError> {
    Ok(TimelineEntry {
        incident,
        at: Timestamp::from_millis(at),
        actor,
        kind: TimelineKind::parse(&kind).ok_or_else(|| corrupt(incident, format!("timeline kind {kind:?}")))?,
        unit,
        detail,
    })
}

pub(crate) fn unit_state(
    unit: String,
    status: String,
    since: i64,
    incident: Option<i64>,
    revision: i64,
) -> Result<UnitState, StoreError> {
    Ok(UnitState {
        revision,
        status: UnitStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unit {unit} has status {status:?}")))?,
        unit,
        since: Timestamp::from_millis(since),
        incident,
    })
}

pub(crate) fn area_class(code: &str, text: &str) -> Result<AreaClass, StoreError> {
    AreaClass::parse(text).ok_or_else(|| StoreError::Corrupt(format!("area class of {code} is {text:?}")))
}

impl Store {
    /// Stores a new incident with its first timeline entries, or — when its creator used
    /// the idempotency key before — stores nothing and says which incident the key made.
    pub async fn insert_incident(&self, new: NewIncident) -> Result<Inserted, StoreError> {
        let announced = NewIncidentEvent::new(&new.incident);
        dispatch!(self.insert_incident(new, announced))
    }

    /// Writes what a dispatch command changed, in one transaction.
    pub async fn write_dispatch(&self, change: DispatchChange) -> Result<(), StoreError> {
        dispatch!(self.write_dispatch(change))
    }

    /// Every incident that is not closed or cancelled, with its assignments, by id.
    pub async fn open_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        dispatch!(self.open_incidents())
    }

    pub async fn incident(&self, id: i64) -> Result<Option<Incident>, StoreError> {
        dispatch!(self.incident(id))
    }

    /// The incident `created_by` created with this idempotency key, and the hash of the
    /// request it came with.
    pub async fn incident_by_idempotency(
        &self,
        created_by: &str,
        key: &str,
    ) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        dispatch!(self.incident_by_idempotency(created_by.to_string(), key.to_string()))
    }

    /// The sealed caller details of an incident (`None` if the incident has none).
    pub async fn incident_caller(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self.incident_caller(id))
    }

    /// An incident's timeline, oldest first, each entry with its number.
    pub async fn incident_timeline(&self, id: i64) -> Result<Vec<(i64, TimelineEntry)>, StoreError> {
        dispatch!(self.incident_timeline(id))
    }

    /// Incidents created at or after `since` in the history cells `cells`, newest first
    /// (without assignments).
    pub async fn incidents_in_cells(
        &self,
        cells: &[u64],
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<Incident>, StoreError> {
        let cells: Vec<i64> = cells.iter().map(|&c| c as i64).collect();
        dispatch!(self.incidents_in_cells(cells, since, limit))
    }

    /// Incidents created in `from..to`, oldest first, at most `limit`; with their
    /// assignments if `assignments` (aggregates such as the response measures need only
    /// the incidents' own times).
    pub async fn incidents_between(
        &self,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
        assignments: bool,
    ) -> Result<Vec<Incident>, StoreError> {
        dispatch!(self.incidents_between(from, to, limit, assignments))
    }

    pub async fn unit_statuses(&self) -> Result<Vec<UnitState>, StoreError> {
        dispatch!(self.unit_statuses())
    }

    pub async fn area_classes(&self) -> Result<Vec<(String, AreaClass)>, StoreError> {
        dispatch!(self.area_classes())
    }

    /// Sets (or with `None` clears) a node's area class, with its audit record.
    pub async fn save_area_class(
        &self,
        code: &str,
        class: Option<AreaClass>,
        at: Timestamp,
        entry: impl Into<Audited>,
    ) -> Result<(), StoreError> {
        let key = self.audit_key()?;
        let entry = &entry.into();
        dispatch!(self.save_area_class(key, code.to_string(), class, at, entry))
    }
}
