//! The one serialised form of Fangkong's domain events: what the outbox stores, what one
//! server node sends another, and what the live stream will carry. JSON, one object per
//! event, versioned: `{"v": 1, "event": "incident.changed", …its fields}`.
//!
//! The rules of the form:
//! - within a version a field never changes its name or its meaning; a field added later is
//!   optional to readers of that version;
//! - a change old readers cannot read is a new version, and [`decode`] upgrades every older
//!   version it knows to the current one;
//! - a reader refuses an event of a newer version than its own ([`WireError::NewerVersion`])
//!   instead of misreading it: a node is upgraded before it reads a newer node's events.
//!
//! The core stays free of wire formats: the types here mirror the core's and convert both
//! ways, and `decode(encode(e)) == e` for every event (`tests`). Times are milliseconds
//! since the epoch (UTC); shapes are WKB in hex; the person index is hex.

use std::collections::BTreeMap;

use fangkong_core::auth::account::Session;
use fangkong_core::auth::{DeviceKind, Role};
use fangkong_core::avl::{AcceptedFix, Fix};
use fangkong_core::codes::{CodeEntry, CodeKind};
use fangkong_core::dispatch::{AreaClass, Assignment, Incident, IncidentStatus, UnitState, UnitStatus};
use fangkong_core::event::{AccountSummary, DeviceSummary, Event, SeenHow};
use fangkong_core::forces::{Beat, ForceCategory, PatrolMode, Shift, Unit};
use fangkong_core::jurisdiction::{Chain, Jurisdiction, JurisdictionKind};
use fangkong_core::time::Timestamp;
use fangkong_geo::{Area, LatLon};
use serde::{Deserialize, Serialize};

/// The version this build writes, and the newest it reads.
pub const VERSION: u32 = 1;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not JSON, not an object, or a field missing or of the wrong type.
    #[error("not a Fangkong event: {0}")]
    Malformed(String),
    /// Written by a newer build: upgrade this node before it reads such events.
    #[error("event version {found} is newer than this build's {VERSION}")]
    NewerVersion { found: u32 },
    /// A field's value is not one the core accepts (an unknown status, a bad point…).
    #[error("{field}: {value:?} is not valid")]
    Invalid { field: &'static str, value: String },
}

/// The event in its serialised form (UTF-8 JSON).
pub fn encode(event: &Event) -> Vec<u8> {
    // Written straight from the wire types (no intermediate JSON value), with the version
    // put first: the event is an object (internally tagged), so its text starts with `{`.
    let body = serde_json::to_vec(&WireEvent::from(event)).expect("wire events always serialise");
    let version = format!("{{\"v\":{VERSION},");
    let mut bytes = Vec::with_capacity(body.len() + version.len());
    bytes.extend_from_slice(version.as_bytes());
    bytes.extend_from_slice(&body[1..]);
    bytes
}

/// A new incident's `incident.changed` event, encoded before the store gives the incident
/// its id: the id is written in last ([`NewIncidentEvent::with_id`]), so the encoding is
/// done by the caller and not on a single database writer's path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewIncidentEvent {
    /// Everything before the id's digits, and everything after them.
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl NewIncidentEvent {
    pub fn new(incident: &Incident) -> NewIncidentEvent {
        let bytes = encode(&Event::IncidentChanged(Box::new(Incident { id: 0, ..incident.clone() })));
        // The wire types serialise in their declared order: the version, the kind, then the
        // incident, whose first field is its id.
        let head = format!("{{\"v\":{VERSION},\"event\":\"incident.changed\",\"incident\":{{\"id\":");
        assert!(bytes.starts_with(head.as_bytes()), "the incident's id leads its wire form");
        let digits = head.len();
        assert_eq!(bytes[digits], b'0', "encoded with id 0");
        NewIncidentEvent { head: bytes[..digits].to_vec(), tail: bytes[digits + 1..].to_vec() }
    }

    /// The event's serialised form with the incident's id.
    pub fn with_id(&self, id: i64) -> Vec<u8> {
        let id = id.to_string();
        let mut bytes = Vec::with_capacity(self.head.len() + id.len() + self.tail.len());
        bytes.extend_from_slice(&self.head);
        bytes.extend_from_slice(id.as_bytes());
        bytes.extend_from_slice(&self.tail);
        bytes
    }
}

/// An event from its serialised form, of this version or an older one.
pub fn decode(bytes: &[u8]) -> Result<Event, WireError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
    let version = value
        .get("v")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| WireError::Malformed("no version (`v`)".into()))?;
    let version = u32::try_from(version).map_err(|_| WireError::Malformed(format!("version {version}")))?;
    if version > VERSION {
        return Err(WireError::NewerVersion { found: version });
    }
    // Version 1 is the first: nothing older to upgrade yet.
    let wire: WireEvent = serde_json::from_value(value).map_err(|e| WireError::Malformed(e.to_string()))?;
    wire.try_into()
}

// ---- the wire types -------------------------------------------------------------------------

#[derive(Serialize, Deserialize, Debug)]
#[serde(tag = "event")]
enum WireEvent {
    #[serde(rename = "code.created")]
    CodeCreated { code: WireCode },
    #[serde(rename = "code.updated")]
    CodeUpdated { code: WireCode },
    #[serde(rename = "jurisdiction.added")]
    JurisdictionsAdded { nodes: Vec<WireJurisdiction> },
    #[serde(rename = "jurisdiction.changed")]
    JurisdictionsChanged { nodes: Vec<WireJurisdiction> },
    #[serde(rename = "account.changed")]
    AccountChanged { account: WireAccount },
    #[serde(rename = "session.signed_in")]
    SignedIn { session: WireSession },
    #[serde(rename = "session.signed_out")]
    SignedOut { user_id: i64, token_hash: String },
    #[serde(rename = "session.ended_all")]
    SessionsEnded { user_id: i64 },
    #[serde(rename = "device.changed")]
    DeviceChanged { device: WireDevice },
    #[serde(rename = "device.seen")]
    DeviceSeen { unique_id: String, at: i64 },
    #[serde(rename = "device.panic")]
    PanicAlarm {
        unique_id: String,
        unit: Option<String>,
        alarm: String,
        lat: f64,
        lon: f64,
        fixed_at: i64,
        chain: WireChain,
    },
    #[serde(rename = "incident.changed")]
    IncidentChanged { incident: Box<WireIncident> },
    #[serde(rename = "unit.status")]
    UnitStatusChanged { state: WireUnitState, station: String },
    #[serde(rename = "unit.overdue")]
    UnitOverdue { unit: String, station: String, status: String, since: i64, limit_ms: i64 },
    #[serde(rename = "unit.saved")]
    UnitsSaved { units: Vec<WireUnit> },
    #[serde(rename = "beat.saved")]
    BeatsSaved { beats: Vec<WireBeat> },
    #[serde(rename = "roster.added")]
    ShiftsAdded { shifts: Vec<WireShift> },
    #[serde(rename = "roster.deleted")]
    ShiftDeleted { shift: WireShift },
    #[serde(rename = "member.changed")]
    MemberChanged { id: i64, category: String, station: String, unit: Option<String>, active: bool },
    #[serde(rename = "person.seen")]
    PersonSeen { person: String, how: String, record: String, community: String },
    #[serde(rename = "registry.changed")]
    RegistryChanged { entity: String, code: String, community: String, change: String },
    #[serde(rename = "position.accepted")]
    FixesAccepted { fixes: Vec<WireFix> },
    #[serde(rename = "area_class.changed")]
    AreaClassChanged { code: String, class: Option<String> },
}

#[derive(Serialize, Deserialize, Debug)]
struct WireSession {
    /// The SHA-256 of the token, in hex (the token itself is never stored or sent).
    token_hash: String,
    user_id: i64,
    created_at: i64,
    last_used_at: i64,
    revoked_at: Option<i64>,
    ip: Option<String>,
}

/// An accepted fix: compact, since a stored batch of fixes is one event of many of these.
/// Absent optional readings are left out.
#[derive(Serialize, Deserialize, Debug)]
struct WireFix {
    device_id: i64,
    unique_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unit: Option<String>,
    received_at: i64,
    fixed_at: i64,
    lat: f64,
    lon: f64,
    valid: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    speed_mps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    course_deg: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    altitude_m: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    accuracy_m: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hdop: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    battery_pct: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alarm: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    attributes: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    chain: WireChain,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    h3: Option<u64>,
}

#[derive(Serialize, Deserialize, Debug)]
struct WireCode {
    kind: String,
    code: String,
    name_zh: String,
    name_en: String,
    priority: Option<u8>,
    active: bool,
    updated_at: i64,
}

#[derive(Serialize, Deserialize, Debug)]
struct WireJurisdiction {
    code: String,
    kind: String,
    parent: Option<String>,
    name_zh: String,
    name_en: Option<String>,
}

#[derive(Serialize, Deserialize, Debug)]
struct WireAccount {
    user_id: i64,
    username: String,
    role: String,
    jurisdiction: String,
    disabled: bool,
    locked_until: Option<i64>,
    second_factor: bool,
}

#[derive(Serialize, Deserialize, Debug)]
struct WireDevice {
    device_id: i64,
    unique_id: String,
    kind: String,
    unit: Option<String>,
    jurisdiction: String,
    revoked_at: Option<i64>,
    last_seen_at: Option<i64>,
}

/// A chain as the code of each level it has, by the level's name.
type WireChain = BTreeMap<String, String>;

#[derive(Serialize, Deserialize, Debug)]
struct WireIncident {
    id: i64,
    uid: String,
    source: String,
    type_code: String,
    priority: u8,
    status: String,
    disposition: Option<String>,
    lat: f64,
    lon: f64,
    address: String,
    chain: WireChain,
    h3: Option<u64>,
    description: String,
    caller_phone_masked: Option<String>,
    possible_duplicates: Vec<i64>,
    merged_into: Option<i64>,
    area_class: String,
    arrival_target_s: i64,
    created_by: String,
    created_at: i64,
    updated_at: i64,
    revision: i64,
    dispatched_at: Option<i64>,
    arrived_at: Option<i64>,
    resolved_at: Option<i64>,
    closed_at: Option<i64>,
    assignments: Vec<WireAssignment>,
}

#[derive(Serialize, Deserialize, Debug)]
struct WireAssignment {
    unit: String,
    status: String,
    dispatched_at: i64,
    en_route_at: Option<i64>,
    on_scene_at: Option<i64>,
    cleared_at: Option<i64>,
}

#[derive(Serialize, Deserialize, Debug)]
struct WireUnitState {
    unit: String,
    status: String,
    since: i64,
    incident: Option<i64>,
    revision: i64,
}

#[derive(Serialize, Deserialize, Debug)]
struct WireUnit {
    code: String,
    call_sign: String,
    station: String,
    category: String,
    mode: String,
    equipment: Vec<String>,
    beat: Option<String>,
    capabilities: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug)]
struct WireBeat {
    code: String,
    station: String,
    name: String,
    /// The shape as OGC WKB, in hex.
    shape: String,
}

#[derive(Serialize, Deserialize, Debug)]
struct WireShift {
    /// The shift's id in the roster.
    id: i64,
    unit: String,
    beat: String,
    starts_at: i64,
    ends_at: i64,
}

// ---- core → wire ----------------------------------------------------------------------------

fn millis(at: Timestamp) -> i64 {
    at.as_millis()
}

fn chain_out(chain: &Chain) -> WireChain {
    JurisdictionKind::ALL
        .into_iter()
        .filter_map(|kind| chain.get(kind).map(|code| (kind.as_str().to_string(), code.to_string())))
        .collect()
}

fn shift_out(id: i64, shift: &Shift) -> WireShift {
    WireShift {
        id,
        unit: shift.unit.clone(),
        beat: shift.beat.clone(),
        starts_at: millis(shift.starts_at),
        ends_at: millis(shift.ends_at),
    }
}

fn code_out(entry: &CodeEntry) -> WireCode {
    WireCode {
        kind: entry.kind.as_str().into(),
        code: entry.code.clone(),
        name_zh: entry.name_zh.clone(),
        name_en: entry.name_en.clone(),
        priority: entry.priority,
        active: entry.active,
        updated_at: millis(entry.updated_at),
    }
}

fn nodes_out(nodes: &[Jurisdiction]) -> Vec<WireJurisdiction> {
    nodes
        .iter()
        .map(|node| WireJurisdiction {
            code: node.code.clone(),
            kind: node.kind.as_str().into(),
            parent: node.parent.clone(),
            name_zh: node.name_zh.clone(),
            name_en: node.name_en.clone(),
        })
        .collect()
}

fn state_out(state: &UnitState) -> WireUnitState {
    WireUnitState {
        unit: state.unit.clone(),
        status: state.status.as_str().into(),
        since: millis(state.since),
        incident: state.incident,
        revision: state.revision,
    }
}

fn incident_out(incident: &Incident) -> WireIncident {
    WireIncident {
        id: incident.id,
        uid: incident.uid.clone(),
        source: incident.source.clone(),
        type_code: incident.type_code.clone(),
        priority: incident.priority,
        status: incident.status.as_str().into(),
        disposition: incident.disposition.clone(),
        lat: incident.point.lat(),
        lon: incident.point.lon(),
        address: incident.address.clone(),
        chain: chain_out(&incident.chain),
        h3: incident.h3,
        description: incident.description.clone(),
        caller_phone_masked: incident.caller_phone_masked.clone(),
        possible_duplicates: incident.possible_duplicates.clone(),
        merged_into: incident.merged_into,
        area_class: incident.area_class.as_str().into(),
        arrival_target_s: incident.arrival_target_s,
        created_by: incident.created_by.clone(),
        created_at: millis(incident.created_at),
        updated_at: millis(incident.updated_at),
        revision: incident.revision,
        dispatched_at: incident.dispatched_at.map(millis),
        arrived_at: incident.arrived_at.map(millis),
        resolved_at: incident.resolved_at.map(millis),
        closed_at: incident.closed_at.map(millis),
        assignments: incident
            .assignments
            .iter()
            .map(|a| WireAssignment {
                unit: a.unit.clone(),
                status: a.status.as_str().into(),
                dispatched_at: millis(a.dispatched_at),
                en_route_at: a.en_route_at.map(millis),
                on_scene_at: a.on_scene_at.map(millis),
                cleared_at: a.cleared_at.map(millis),
            })
            .collect(),
    }
}

impl From<&Event> for WireEvent {
    fn from(event: &Event) -> WireEvent {
        match event {
            Event::CodeCreated(entry) => WireEvent::CodeCreated { code: code_out(entry) },
            Event::CodeUpdated(entry) => WireEvent::CodeUpdated { code: code_out(entry) },
            Event::JurisdictionsAdded(nodes) => WireEvent::JurisdictionsAdded { nodes: nodes_out(nodes) },
            Event::JurisdictionsChanged(nodes) => WireEvent::JurisdictionsChanged { nodes: nodes_out(nodes) },
            Event::AccountChanged(a) => WireEvent::AccountChanged {
                account: WireAccount {
                    user_id: a.user_id,
                    username: a.username.clone(),
                    role: a.role.as_str().into(),
                    jurisdiction: a.jurisdiction.clone(),
                    disabled: a.disabled,
                    locked_until: a.locked_until.map(millis),
                    second_factor: a.second_factor,
                },
            },
            Event::SignedIn(session) => WireEvent::SignedIn {
                session: WireSession {
                    token_hash: hex::encode(session.token_hash),
                    user_id: session.user_id,
                    created_at: millis(session.created_at),
                    last_used_at: millis(session.last_used_at),
                    revoked_at: session.revoked_at.map(millis),
                    ip: session.ip.clone(),
                },
            },
            Event::SignedOut { user_id, token_hash } => {
                WireEvent::SignedOut { user_id: *user_id, token_hash: hex::encode(token_hash) }
            }
            Event::AreaClassChanged { code, class } => {
                WireEvent::AreaClassChanged { code: code.clone(), class: class.map(|c| c.as_str().to_string()) }
            }
            Event::FixesAccepted(fixes) => WireEvent::FixesAccepted {
                fixes: fixes
                    .iter()
                    .map(|a| WireFix {
                        device_id: a.device_id,
                        unique_id: a.unique_id.clone(),
                        unit: a.unit.clone(),
                        received_at: millis(a.received_at),
                        fixed_at: millis(a.fix.fixed_at),
                        lat: a.fix.point.lat(),
                        lon: a.fix.point.lon(),
                        valid: a.fix.valid,
                        speed_mps: a.fix.speed_mps,
                        course_deg: a.fix.course_deg,
                        altitude_m: a.fix.altitude_m,
                        accuracy_m: a.fix.accuracy_m,
                        hdop: a.fix.hdop,
                        battery_pct: a.fix.battery_pct,
                        alarm: a.fix.alarm.clone(),
                        attributes: a.fix.attributes.clone(),
                        chain: chain_out(&a.chain),
                        h3: a.h3,
                    })
                    .collect(),
            },
            Event::SessionsEnded { user_id } => WireEvent::SessionsEnded { user_id: *user_id },
            Event::DeviceChanged(d) => WireEvent::DeviceChanged {
                device: WireDevice {
                    device_id: d.device_id,
                    unique_id: d.unique_id.clone(),
                    kind: d.kind.as_str().into(),
                    unit: d.unit.clone(),
                    jurisdiction: d.jurisdiction.clone(),
                    revoked_at: d.revoked_at.map(millis),
                    last_seen_at: d.last_seen_at.map(millis),
                },
            },
            Event::DeviceSeen { unique_id, at } => {
                WireEvent::DeviceSeen { unique_id: unique_id.clone(), at: millis(*at) }
            }
            Event::PanicAlarm { unique_id, unit, alarm, lat, lon, fixed_at, chain } => WireEvent::PanicAlarm {
                unique_id: unique_id.clone(),
                unit: unit.clone(),
                alarm: alarm.clone(),
                lat: *lat,
                lon: *lon,
                fixed_at: millis(*fixed_at),
                chain: chain_out(chain),
            },
            Event::IncidentChanged(incident) => {
                WireEvent::IncidentChanged { incident: Box::new(incident_out(incident)) }
            }
            Event::UnitStatusChanged { state, station } => {
                WireEvent::UnitStatusChanged { state: state_out(state), station: station.clone() }
            }
            Event::UnitOverdue { unit, station, status, since, limit_ms } => WireEvent::UnitOverdue {
                unit: unit.clone(),
                station: station.clone(),
                status: status.as_str().into(),
                since: millis(*since),
                limit_ms: *limit_ms,
            },
            Event::UnitsSaved(units) => WireEvent::UnitsSaved {
                units: units
                    .iter()
                    .map(|u| WireUnit {
                        code: u.code.clone(),
                        call_sign: u.call_sign.clone(),
                        station: u.station.clone(),
                        category: u.category.as_str().into(),
                        mode: u.mode.as_str().into(),
                        equipment: u.equipment.clone(),
                        beat: u.beat.clone(),
                        capabilities: u.capabilities.clone(),
                    })
                    .collect(),
            },
            Event::BeatsSaved(beats) => WireEvent::BeatsSaved {
                beats: beats
                    .iter()
                    .map(|b| WireBeat {
                        code: b.code.clone(),
                        station: b.station.clone(),
                        name: b.name.clone(),
                        shape: hex::encode(b.shape.to_wkb()),
                    })
                    .collect(),
            },
            Event::ShiftsAdded(shifts) => {
                WireEvent::ShiftsAdded { shifts: shifts.iter().map(|(id, shift)| shift_out(*id, shift)).collect() }
            }
            Event::ShiftDeleted { id, shift } => WireEvent::ShiftDeleted { shift: shift_out(*id, shift) },
            Event::MemberChanged { id, category, station, unit, active } => WireEvent::MemberChanged {
                id: *id,
                category: category.as_str().into(),
                station: station.clone(),
                unit: unit.clone(),
                active: *active,
            },
            Event::PersonSeen { person, how, record, community } => WireEvent::PersonSeen {
                person: hex::encode(person),
                how: how.as_str().into(),
                record: record.clone(),
                community: community.clone(),
            },
            Event::RegistryChanged { entity, code, community, change } => WireEvent::RegistryChanged {
                entity: entity.clone(),
                code: code.clone(),
                community: community.clone(),
                change: change.clone(),
            },
        }
    }
}

// ---- wire → core ----------------------------------------------------------------------------

fn parsed<T>(field: &'static str, text: &str, parse: impl Fn(&str) -> Option<T>) -> Result<T, WireError> {
    parse(text).ok_or_else(|| WireError::Invalid { field, value: text.to_string() })
}

/// A 32-byte hash from its hex form.
fn hash32(field: &'static str, text: &str) -> Result<[u8; 32], WireError> {
    let invalid = || WireError::Invalid { field, value: text.to_string() };
    hex::decode(text).map_err(|_| invalid())?.try_into().map_err(|_| invalid())
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn point(lat: f64, lon: f64) -> Result<LatLon, WireError> {
    LatLon::new(lat, lon).map_err(|e| WireError::Invalid { field: "lat/lon", value: e.to_string() })
}

fn chain_in(wire: WireChain) -> Result<Chain, WireError> {
    let mut chain = Chain::default();
    for (level, code) in wire {
        chain.set(parsed("chain", &level, JurisdictionKind::parse)?, code);
    }
    Ok(chain)
}

fn shift_in(wire: WireShift) -> (i64, Shift) {
    let shift = Shift { unit: wire.unit, beat: wire.beat, starts_at: at(wire.starts_at), ends_at: at(wire.ends_at) };
    (wire.id, shift)
}

fn code_in(wire: WireCode) -> Result<CodeEntry, WireError> {
    Ok(CodeEntry {
        kind: parsed("code.kind", &wire.kind, CodeKind::parse)?,
        code: wire.code,
        name_zh: wire.name_zh,
        name_en: wire.name_en,
        priority: wire.priority,
        active: wire.active,
        updated_at: at(wire.updated_at),
    })
}

fn nodes_in(wire: Vec<WireJurisdiction>) -> Result<Vec<Jurisdiction>, WireError> {
    wire.into_iter()
        .map(|node| {
            Ok(Jurisdiction {
                kind: parsed("node.kind", &node.kind, JurisdictionKind::parse)?,
                code: node.code,
                parent: node.parent,
                name_zh: node.name_zh,
                name_en: node.name_en,
            })
        })
        .collect()
}

fn status_in(field: &'static str, text: &str) -> Result<UnitStatus, WireError> {
    parsed(field, text, UnitStatus::parse)
}

fn incident_in(wire: WireIncident) -> Result<Incident, WireError> {
    let assignments = wire
        .assignments
        .into_iter()
        .map(|a| {
            Ok(Assignment {
                status: status_in("assignment.status", &a.status)?,
                unit: a.unit,
                dispatched_at: at(a.dispatched_at),
                en_route_at: a.en_route_at.map(at),
                on_scene_at: a.on_scene_at.map(at),
                cleared_at: a.cleared_at.map(at),
            })
        })
        .collect::<Result<Vec<_>, WireError>>()?;
    Ok(Incident {
        id: wire.id,
        uid: wire.uid,
        source: wire.source,
        type_code: wire.type_code,
        priority: wire.priority,
        status: parsed("incident.status", &wire.status, IncidentStatus::parse)?,
        disposition: wire.disposition,
        point: point(wire.lat, wire.lon)?,
        address: wire.address,
        chain: chain_in(wire.chain)?,
        h3: wire.h3,
        description: wire.description,
        caller_phone_masked: wire.caller_phone_masked,
        possible_duplicates: wire.possible_duplicates,
        merged_into: wire.merged_into,
        area_class: parsed("incident.area_class", &wire.area_class, AreaClass::parse)?,
        arrival_target_s: wire.arrival_target_s,
        created_by: wire.created_by,
        created_at: at(wire.created_at),
        updated_at: at(wire.updated_at),
        revision: wire.revision,
        dispatched_at: wire.dispatched_at.map(at),
        arrived_at: wire.arrived_at.map(at),
        resolved_at: wire.resolved_at.map(at),
        closed_at: wire.closed_at.map(at),
        assignments,
    })
}

impl TryFrom<WireEvent> for Event {
    type Error = WireError;

    fn try_from(wire: WireEvent) -> Result<Event, WireError> {
        Ok(match wire {
            WireEvent::CodeCreated { code } => Event::CodeCreated(code_in(code)?),
            WireEvent::CodeUpdated { code } => Event::CodeUpdated(code_in(code)?),
            WireEvent::JurisdictionsAdded { nodes } => Event::JurisdictionsAdded(nodes_in(nodes)?),
            WireEvent::JurisdictionsChanged { nodes } => Event::JurisdictionsChanged(nodes_in(nodes)?),
            WireEvent::AccountChanged { account: a } => Event::AccountChanged(AccountSummary {
                role: parsed("account.role", &a.role, Role::parse)?,
                user_id: a.user_id,
                username: a.username,
                jurisdiction: a.jurisdiction,
                disabled: a.disabled,
                locked_until: a.locked_until.map(at),
                second_factor: a.second_factor,
            }),
            WireEvent::SignedIn { session: s } => Event::SignedIn(Session {
                token_hash: hash32("session.token_hash", &s.token_hash)?,
                user_id: s.user_id,
                created_at: at(s.created_at),
                last_used_at: at(s.last_used_at),
                revoked_at: s.revoked_at.map(at),
                ip: s.ip,
            }),
            WireEvent::SignedOut { user_id, token_hash } => {
                Event::SignedOut { user_id, token_hash: hash32("token_hash", &token_hash)? }
            }
            WireEvent::AreaClassChanged { code, class } => Event::AreaClassChanged {
                code,
                class: class.map(|c| parsed("class", &c, AreaClass::parse)).transpose()?,
            },
            WireEvent::FixesAccepted { fixes } => Event::FixesAccepted(
                fixes
                    .into_iter()
                    .map(|f| {
                        Ok(AcceptedFix {
                            device_id: f.device_id,
                            unique_id: f.unique_id,
                            unit: f.unit,
                            received_at: at(f.received_at),
                            fix: Fix {
                                fixed_at: at(f.fixed_at),
                                point: point(f.lat, f.lon)?,
                                valid: f.valid,
                                speed_mps: f.speed_mps,
                                course_deg: f.course_deg,
                                altitude_m: f.altitude_m,
                                accuracy_m: f.accuracy_m,
                                hdop: f.hdop,
                                battery_pct: f.battery_pct,
                                alarm: f.alarm,
                                attributes: f.attributes,
                            },
                            chain: chain_in(f.chain)?,
                            h3: f.h3,
                        })
                    })
                    .collect::<Result<_, WireError>>()?,
            ),
            WireEvent::SessionsEnded { user_id } => Event::SessionsEnded { user_id },
            WireEvent::DeviceChanged { device: d } => Event::DeviceChanged(DeviceSummary {
                kind: parsed("device.kind", &d.kind, DeviceKind::parse)?,
                device_id: d.device_id,
                unique_id: d.unique_id,
                unit: d.unit,
                jurisdiction: d.jurisdiction,
                revoked_at: d.revoked_at.map(at),
                last_seen_at: d.last_seen_at.map(at),
            }),
            WireEvent::DeviceSeen { unique_id, at: seen } => Event::DeviceSeen { unique_id, at: at(seen) },
            WireEvent::PanicAlarm { unique_id, unit, alarm, lat, lon, fixed_at, chain } => {
                point(lat, lon)?;
                Event::PanicAlarm { unique_id, unit, alarm, lat, lon, fixed_at: at(fixed_at), chain: chain_in(chain)? }
            }
            WireEvent::IncidentChanged { incident } => Event::IncidentChanged(Box::new(incident_in(*incident)?)),
            WireEvent::UnitStatusChanged { state: s, station } => Event::UnitStatusChanged {
                state: UnitState {
                    status: status_in("state.status", &s.status)?,
                    unit: s.unit,
                    since: at(s.since),
                    incident: s.incident,
                    revision: s.revision,
                },
                station,
            },
            WireEvent::UnitOverdue { unit, station, status, since, limit_ms } => {
                Event::UnitOverdue { status: status_in("status", &status)?, unit, station, since: at(since), limit_ms }
            }
            WireEvent::UnitsSaved { units } => Event::UnitsSaved(
                units
                    .into_iter()
                    .map(|u| {
                        Ok(Unit {
                            category: parsed("unit.category", &u.category, ForceCategory::parse)?,
                            mode: parsed("unit.mode", &u.mode, PatrolMode::parse)?,
                            code: u.code,
                            call_sign: u.call_sign,
                            station: u.station,
                            equipment: u.equipment,
                            beat: u.beat,
                            capabilities: u.capabilities,
                        })
                    })
                    .collect::<Result<_, WireError>>()?,
            ),
            WireEvent::BeatsSaved { beats } => Event::BeatsSaved(
                beats
                    .into_iter()
                    .map(|b| {
                        let invalid = |value: String| WireError::Invalid { field: "beat.shape", value };
                        let bytes = hex::decode(&b.shape).map_err(|e| invalid(e.to_string()))?;
                        let shape = Area::from_wkb(&bytes).map_err(|e| invalid(e.to_string()))?;
                        Ok(Beat { code: b.code, station: b.station, name: b.name, shape })
                    })
                    .collect::<Result<_, WireError>>()?,
            ),
            WireEvent::ShiftsAdded { shifts } => Event::ShiftsAdded(shifts.into_iter().map(shift_in).collect()),
            WireEvent::ShiftDeleted { shift } => {
                let (id, shift) = shift_in(shift);
                Event::ShiftDeleted { id, shift }
            }
            WireEvent::MemberChanged { id, category, station, unit, active } => Event::MemberChanged {
                category: parsed("member.category", &category, ForceCategory::parse)?,
                id,
                station,
                unit,
                active,
            },
            WireEvent::PersonSeen { person, how, record, community } => {
                let invalid = || WireError::Invalid { field: "person", value: person.clone() };
                let bytes = hex::decode(&person).map_err(|_| invalid())?;
                Event::PersonSeen {
                    person: bytes.try_into().map_err(|_| invalid())?,
                    how: parsed("how", &how, SeenHow::parse)?,
                    record,
                    community,
                }
            }
            WireEvent::RegistryChanged { entity, code, community, change } => {
                Event::RegistryChanged { entity, code, community, change }
            }
        })
    }
}

#[cfg(test)]
mod tests;
