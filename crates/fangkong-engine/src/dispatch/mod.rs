//! Command and dispatch (the 110 centre): incidents from every source, the recommendation
//! of units by estimated arrival, sending units, their statuses and timers, the incident
//! lifecycle with its append-only timeline, duplicates, prior history and response
//! measures.
//!
//! The board (open incidents) and every unit's status and position live in memory; the
//! store is the record. A command locks the incidents and units it touches (by shard, in
//! a fixed order, so two dispatchers cannot send one unit to two places), checks them
//! against the live state, writes the whole change with its timeline entries in one
//! transaction, applies it in memory and publishes the new state. Creating an incident
//! locks nothing: it conflicts with nobody, and concurrent creations share a commit.

mod live;
mod recommend;

pub use recommend::Recommended;

use std::collections::BTreeMap;
use std::sync::RwLock;

use fangkong_core::auth::Action;
use fangkong_core::codes::CodeKind;
use fangkong_core::dispatch::{
    AreaClass, Assignment, DuplicateRule, GroupMeasures, Incident, IncidentAction, IncidentStatus,
    MAX_POSSIBLE_DUPLICATES, ResponseTargets, StatusTimers, TimelineEntry, TimelineKind, TravelModel, UnitState,
    UnitStatus, apply_action, check_unit_transition, group_measures, mask_phone,
};
use fangkong_core::event::Event;
use fangkong_core::forces::Unit;
use fangkong_core::jurisdiction::{Chain, JurisdictionKind};
use fangkong_core::keys::hmac_sha256;
use fangkong_core::time::Timestamp;
use fangkong_geo::LatLon;
use fangkong_store::{Audited, DispatchChange, Inserted, NewIncident as StoredNewIncident, Outbox, StoreError};
use tokio::sync::{Mutex, MutexGuard};

pub(crate) use live::{Board, LiveUnits};

use crate::avl::LivePosition;
use crate::feature::Feature;
use crate::{Caller, Engine, EngineError, crypto};

/// How dispatch runs; every figure is a setting.
#[derive(Clone, Debug, PartialEq)]
pub struct DispatchConfig {
    pub duplicates: DuplicateRule,
    /// Prior history: incidents within this radius…
    pub history_radius_m: f64,
    /// …in this many days before.
    pub history_days: u32,
    pub travel: TravelModel,
    pub timers: StatusTimers,
    pub targets: ResponseTargets,
    /// A unit whose last fix is older than this is not recommended (its position is unknown).
    pub position_stale_ms: i64,
    /// Units recommended by default.
    pub recommendations: usize,
    /// Incident type code prefixes and the unit capability they prefer (`03` → `traffic`):
    /// the longest matching prefix wins.
    pub suitability: Vec<(String, String)>,
    /// What a tracker's panic alarm becomes.
    pub panic: PanicRule,
    /// The disposition a merged duplicate is closed with.
    pub merge_disposition: String,
    /// This centre's agency identifier in exchange documents (EIDO), a domain name.
    pub agency_id: String,
}

/// The incident a panic alarm raises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PanicRule {
    pub source: String,
    pub incident_type: String,
    pub priority: u8,
}

impl Default for DispatchConfig {
    fn default() -> DispatchConfig {
        DispatchConfig {
            duplicates: DuplicateRule::default(),
            history_radius_m: 200.0,
            history_days: 90,
            travel: TravelModel::default(),
            timers: StatusTimers::default(),
            targets: ResponseTargets::default(),
            position_stale_ms: 10 * 60_000,
            recommendations: 5,
            suitability: vec![("03".into(), "traffic".into()), ("04".into(), "fire".into())],
            panic: PanicRule { source: "app_sos".into(), incident_type: "050000".into(), priority: 1 },
            merge_disposition: "duplicate".into(),
            agency_id: "psap.fangkong.local".into(),
        }
    }
}

const LOCK_SHARDS: usize = 128;

/// What the engine holds for dispatch.
#[derive(Debug)]
pub(crate) struct DispatchState {
    pub board: RwLock<Board>,
    pub units: RwLock<LiveUnits>,
    pub area_classes: RwLock<BTreeMap<String, AreaClass>>,
    locks: Vec<Mutex<()>>,
}

impl Default for DispatchState {
    fn default() -> DispatchState {
        DispatchState {
            board: RwLock::default(),
            units: RwLock::default(),
            area_classes: RwLock::default(),
            locks: (0..LOCK_SHARDS).map(|_| Mutex::new(())).collect(),
        }
    }
}

/// What a lock is taken on.
enum Key<'a> {
    Incident(i64),
    Unit(&'a str),
}

fn shard(key: &Key<'_>) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    match key {
        Key::Incident(id) => (0u8, id).hash(&mut hasher),
        Key::Unit(code) => (1u8, code).hash(&mut hasher),
    }
    (hasher.finish() % LOCK_SHARDS as u64) as usize
}

/// A new incident as a call taker (or a device, or the system) reports it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewIncident {
    pub source: String,
    pub type_code: String,
    /// Default: the type's priority from the code table.
    pub priority: Option<u8>,
    pub point: Option<LatLon>,
    pub address: String,
    pub description: String,
    pub caller_name: Option<String>,
    pub caller_phone: Option<String>,
    /// Makes a retried request return the first incident instead of a second one.
    pub idempotency_key: Option<String>,
    /// Rank the free units for the new incident and return them with it (a call-taker's
    /// screen shows them at once). Off for callers that do not show them (a panic alarm's
    /// reaction, the simulator), which would pay for a ranking nobody reads.
    pub recommend: bool,
}

/// What creating an incident did.
#[derive(Clone, Debug, PartialEq)]
pub struct Created {
    pub incident: Incident,
    /// The request was a retry: this is the incident the first one created.
    pub replayed: bool,
    /// The best free units now, with their details, if the caller reads incidents there
    /// (the call-taker sees them with the incident, in one call).
    pub recommendations: Vec<Recommended>,
}

/// The caller's details (personal data).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerDetails {
    pub name: Option<String>,
    pub phone: Option<String>,
}

/// A unit on the dispatch board.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitOnBoard {
    pub unit: Unit,
    pub state: UnitState,
    pub position: Option<(LatLon, Timestamp)>,
    /// Whether it has been in its status longer than the limit.
    pub overdue: bool,
}

/// Counts for `/metrics`, from memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DispatchStats {
    pub open_incidents: usize,
    /// Every status, with how many units are in it.
    pub units_by_status: Vec<(UnitStatus, usize)>,
}

/// A prior incident near an incident's place.
#[derive(Clone, Debug, PartialEq)]
pub struct PriorIncident {
    pub incident: Incident,
    pub distance_m: f64,
}

/// Response measures over a period: the whole ground and each part of it.
#[derive(Clone, Debug, PartialEq)]
pub struct MeasuresReport {
    pub within: String,
    pub total: GroupMeasures,
    /// By the nodes one level below `within` (e.g. the sub-districts of a district).
    pub parts: Vec<(String, GroupMeasures)>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> EngineError {
    EngineError::Invalid { field, message: message.into() }
}

fn check_free_text(field: &'static str, text: &str, max: usize, required: bool) -> Result<(), EngineError> {
    if (required && text.trim().is_empty()) || text.chars().count() > max || fangkong_core::text::has_hidden(text, true)
    {
        let need = if required { "1" } else { "0" };
        return Err(invalid(field, format!("{need}–{max} characters, no control or invisible formatting characters")));
    }
    Ok(())
}

fn caller_context(uid: &str) -> Vec<u8> {
    [b"incident-caller:".as_slice(), uid.as_bytes()].concat()
}

impl Engine {
    pub(crate) async fn load_dispatch(&self) -> Result<(), EngineError> {
        let classes = self.store.area_classes().await?;
        *self.dispatch.area_classes.write().expect("area classes lock") = classes.into_iter().collect();
        let open = self.store.open_incidents().await?;
        let states = self.store.unit_statuses().await?;
        let (units, beats): (Vec<Unit>, Vec<_>) = {
            let forces = self.forces.read().expect("forces lock");
            (forces.units().cloned().collect(), forces.beats().cloned().collect())
        };
        {
            let mut board = self.dispatch.board.write().expect("board lock");
            for incident in open {
                board.put(incident);
            }
        }
        let mut live = self.dispatch.units.write().expect("units lock");
        let now = self.now();
        for unit in units {
            live.put_unit(unit, now);
        }
        live.put_beats(&beats);
        for state in states {
            live.set_state(state);
        }
        Ok(())
    }

    async fn lock(&self, keys: &[Key<'_>]) -> Vec<MutexGuard<'_, ()>> {
        let mut shards: Vec<usize> = keys.iter().map(shard).collect();
        shards.sort_unstable();
        shards.dedup();
        let mut guards = Vec::with_capacity(shards.len());
        for s in shards {
            guards.push(self.dispatch.locks[s].lock().await);
        }
        guards
    }

    /// The area class of a place: the nearest setting up its chain, urban by default.
    pub fn area_class_of(&self, chain: &Chain) -> AreaClass {
        use JurisdictionKind::*;
        let classes = self.dispatch.area_classes.read().expect("area classes lock");
        [Grid, Community, Subdistrict, PoliceDistrict, PoliceStation, District, City]
            .into_iter()
            .filter_map(|kind| chain.get(kind))
            .find_map(|code| classes.get(code).copied())
            .unwrap_or(AreaClass::Urban)
    }

    /// Area classes set on nodes (others inherit).
    pub fn area_classes(&self) -> Vec<(String, AreaClass)> {
        self.dispatch.area_classes.read().expect("area classes lock").iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Sets (or clears, with `None`) the area class of a node in the caller's jurisdiction.
    pub async fn set_area_class(
        &self,
        caller: &Caller,
        code: &str,
        class: Option<AreaClass>,
    ) -> Result<(), EngineError> {
        let place =
            self.chain_of(code).ok_or_else(|| EngineError::NotFound { entity: "jurisdiction", key: code.into() })?;
        self.authorize(
            caller,
            Action::ManageJurisdictions,
            Some(&place),
            "area_class.set",
            Some(("jurisdiction", code)),
        )
        .await?;
        let _serial = self.admin_writes.lock().await;
        let entry = caller
            .entry(self.now(), "area_class.set", fangkong_core::audit::Outcome::Allowed)
            .target("jurisdiction", code)
            .detail(class.map_or("inherited", AreaClass::as_str).to_string());
        let now = self.now();
        let changed = Event::AreaClassChanged { code: code.to_string(), class };
        self.store.save_area_class(code, class, now, Audited::new(entry, Outbox::new(now, [&changed]))).await?;
        self.publish(now, changed);
        Ok(())
    }

    /// The capability the incident type prefers (longest configured prefix).
    fn capability_for(&self, type_code: &str) -> Option<&str> {
        self.config
            .dispatch
            .suitability
            .iter()
            .filter(|(prefix, _)| type_code.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, capability)| capability.as_str())
    }

    /// The events of a change: each incident's and each unit's new state.
    fn dispatch_events(&self, change: &DispatchChange) -> Vec<Event> {
        let units = self.dispatch.units.read().expect("units lock");
        let incidents = change.incidents.iter().map(|incident| Event::IncidentChanged(Box::new(incident.clone())));
        let states = change.units.iter().map(|state| {
            let station = units.get(&state.unit).map(|u| u.unit.station.clone()).unwrap_or_default();
            Event::UnitStatusChanged { state: state.clone(), station }
        });
        incidents.chain(states).collect()
    }
}

/// Dispatch's live picture as the events say: the board, the units it ranks with their
/// statuses and points, the beats.
impl Feature for DispatchState {
    fn apply(&self, at: Timestamp, event: &Event) {
        match event {
            Event::IncidentChanged(incident) => self.board.write().expect("board lock").put(Incident::clone(incident)),
            Event::UnitStatusChanged { state, .. } => {
                self.board.write().expect("board lock").alerted.retain(|(unit, _)| unit != &state.unit);
                self.units.write().expect("units lock").set_state(state.clone());
            }
            Event::UnitsSaved(units) => {
                let mut live = self.units.write().expect("units lock");
                for unit in units {
                    live.put_unit(unit.clone(), at);
                }
            }
            Event::BeatsSaved(beats) => self.units.write().expect("units lock").put_beats(beats),
            Event::AreaClassChanged { code, class } => {
                let mut classes = self.area_classes.write().expect("area classes lock");
                match class {
                    Some(class) => classes.insert(code.clone(), *class),
                    None => classes.remove(code),
                };
            }
            Event::FixesAccepted(fixes) => {
                let mut live = self.units.write().expect("units lock");
                for accepted in fixes {
                    if let Some(unit) = &accepted.unit {
                        live.set_position(unit, accepted.fix.point, accepted.fix.fixed_at);
                    }
                }
            }
            _ => {}
        }
    }

    fn apply_position(&self, live: &LivePosition) {
        if let Some(unit) = &live.unit {
            self.units.write().expect("units lock").set_position(unit, live.fix.point, live.fix.fixed_at);
        }
    }
}

impl Engine {
    fn timeline(
        &self,
        caller: &Caller,
        incident: i64,
        kind: TimelineKind,
        unit: Option<&str>,
        detail: String,
    ) -> TimelineEntry {
        TimelineEntry {
            incident,
            at: self.now(),
            actor: caller.actor.name(),
            kind,
            unit: unit.map(str::to_string),
            detail,
        }
    }

    // ---- intake -----------------------------------------------------------------------------

    /// Creates an incident: checks its codes and place, flags possible duplicates, seals the
    /// caller's details, stores it with its first timeline entry and puts it on the board.
    pub async fn create_incident(&self, caller: &Caller, new: NewIncident) -> Result<Created, EngineError> {
        let point = new.point.ok_or_else(|| invalid("location", "a point (lat, lon) is required"))?;
        let location = self.place(point).ok_or(EngineError::OutsideCity { point })?;
        self.authorize(caller, Action::ManageIncidents, Some(&location.chain), "incident.create", None).await?;
        let type_entry = {
            let codes = self.codes.read().expect("codes lock");
            if !codes.is_usable(CodeKind::IncidentSource, &new.source) {
                return Err(invalid("source", format!("{:?} is not an active incident source code", new.source)));
            }
            if !codes.is_usable(CodeKind::IncidentType, &new.type_code) {
                return Err(invalid("type_code", format!("{:?} is not an active incident type code", new.type_code)));
            }
            codes.get(CodeKind::IncidentType, &new.type_code).cloned().expect("usable code exists")
        };
        let priority = match new.priority {
            Some(p) if fangkong_core::codes::PRIORITY_RANGE.contains(&p) => p,
            Some(p) => return Err(invalid("priority", format!("{p} is not 1–4"))),
            None => type_entry.priority.unwrap_or(3),
        };
        check_free_text("address", &new.address, 200, false)?;
        check_free_text("description", &new.description, 2_000, false)?;
        if let Some(name) = &new.caller_name {
            check_free_text("caller_name", name, 32, true)?;
        }
        if let Some(phone) = &new.caller_phone
            && !(phone.len() <= 20
                && phone.bytes().any(|b| b.is_ascii_digit())
                && phone.bytes().all(|b| b.is_ascii_digit() || b"+- ".contains(&b)))
        {
            return Err(invalid("caller_phone", "digits, spaces, + and -, at most 20"));
        }
        if let Some(key) = &new.idempotency_key
            && !(1..=128).contains(&key.len())
        {
            return Err(invalid("idempotency_key", "1–128 characters"));
        }
        let created_by = caller.actor.name();
        let idempotency = new.idempotency_key.as_ref().map(|key| (key.clone(), self.request_hash(&new)));
        if let Some((key, hash)) = &idempotency
            && let Some(found) = self.replay(caller, key, hash, new.recommend).await?
        {
            return Ok(found);
        }
        let now = self.now();
        let class = self.area_class_of(&location.chain);
        let possible_duplicates: Vec<i64> = {
            let board = self.dispatch.board.read().expect("board lock");
            let rule = self.config.dispatch.duplicates;
            let category = &new.type_code[0..2];
            let mut ids: Vec<i64> = board
                .near(point, rule.radius_m)
                .filter(|open| rule.matches(category, point, now, open))
                .map(|i| i.id)
                .collect();
            // The most recent few: a dispatcher compares a call with the latest calls about
            // the same thing, and a mass event (a fire seen by hundreds) must not grow every
            // new incident and its audit record by hundreds of ids.
            ids.sort_unstable();
            ids.split_off(ids.len().saturating_sub(MAX_POSSIBLE_DUPLICATES))
        };
        let uid = crate::crypto::random_bytes::<16>().iter().map(|b| format!("{b:02x}")).collect::<String>();
        let caller_sealed = (new.caller_name.is_some() || new.caller_phone.is_some()).then(|| {
            let plain =
                format!("{}\n{}", new.caller_phone.as_deref().unwrap_or(""), new.caller_name.as_deref().unwrap_or(""));
            crypto::seal(&self.config.keys.personal_data(), &caller_context(&uid), plain.as_bytes())
        });
        let mut incident = Incident {
            id: 0,
            uid,
            source: new.source.clone(),
            type_code: new.type_code.clone(),
            priority,
            status: IncidentStatus::New,
            disposition: None,
            point,
            address: new.address.trim().to_string(),
            chain: location.chain,
            h3: Some(location.h3_cell),
            description: new.description.trim().to_string(),
            caller_phone_masked: new.caller_phone.as_deref().map(mask_phone),
            possible_duplicates,
            merged_into: None,
            area_class: class,
            arrival_target_s: self.config.dispatch.targets.for_class(class),
            created_by: created_by.clone(),
            created_at: now,
            updated_at: now,
            revision: 1,
            dispatched_at: None,
            arrived_at: None,
            resolved_at: None,
            closed_at: None,
            assignments: Vec::new(),
        };
        let mut detail = format!("{} {} P{}", incident.source, incident.type_code, priority);
        if !incident.possible_duplicates.is_empty() {
            detail.push_str(&format!("; possible duplicate of {:?}", incident.possible_duplicates));
        }
        let entry = self.timeline(caller, 0, TimelineKind::Created, None, detail);
        let stored = StoredNewIncident {
            incident: incident.clone(),
            caller_sealed,
            idempotency: idempotency.clone(),
            timeline: vec![entry],
        };
        match self.store.insert_incident(stored).await? {
            Inserted::New(id) => incident.id = id,
            Inserted::Existing { .. } => {
                // A concurrent retry with the same key got there first.
                let (key, hash) = idempotency.expect("only keyed inserts meet an existing key");
                return self.replay(caller, &key, &hash, new.recommend).await?.ok_or_else(|| {
                    EngineError::Store(StoreError::Corrupt("an idempotency key without its incident".into()))
                });
            }
        }
        // The store announced it in the outbox, with its id; the same event goes on the board
        // and the bus.
        self.publish(now, Event::IncidentChanged(Box::new(incident.clone())));
        let recommendations =
            if new.recommend { self.recommendations_for(caller, &incident, None) } else { Vec::new() };
        Ok(Created { incident, replayed: false, recommendations })
    }

    /// A hash of what a request asked for, so a reused key with another request is caught.
    fn request_hash(&self, new: &NewIncident) -> [u8; 32] {
        let point = new.point.map(|p| p.to_string()).unwrap_or_default();
        let text = format!(
            "{}\u{1f}{}\u{1f}{:?}\u{1f}{point}\u{1f}{}\u{1f}{}\u{1f}{:?}\u{1f}{:?}",
            new.source, new.type_code, new.priority, new.address, new.description, new.caller_name, new.caller_phone
        );
        hmac_sha256(&self.config.keys.blind_index(), text.as_bytes())
    }

    async fn replay(
        &self,
        caller: &Caller,
        key: &str,
        hash: &[u8; 32],
        recommend: bool,
    ) -> Result<Option<Created>, EngineError> {
        match self.store.incident_by_idempotency(&caller.actor.name(), key).await? {
            None => Ok(None),
            Some((id, request_hash)) if request_hash == hash.as_slice() => {
                let incident = self.load_incident(id).await?;
                let recommendations =
                    if recommend { self.recommendations_for(caller, &incident, None) } else { Vec::new() };
                Ok(Some(Created { incident, replayed: true, recommendations }))
            }
            Some(_) => Err(EngineError::IdempotencyKeyReused { key: key.to_string() }),
        }
    }

    /// An incident from the board, or from the store if it is closed.
    async fn load_incident(&self, id: i64) -> Result<Incident, EngineError> {
        if let Some(incident) = self.dispatch.board.read().expect("board lock").incidents.get(&id) {
            return Ok(incident.clone());
        }
        self.store.incident(id).await?.ok_or_else(|| EngineError::NotFound { entity: "incident", key: id.to_string() })
    }
}

impl Engine {
    fn board_incident(&self, id: i64) -> Option<Incident> {
        self.dispatch.board.read().expect("board lock").incidents.get(&id).cloned()
    }

    fn open_incident(&self, id: i64) -> Result<Incident, EngineError> {
        self.board_incident(id).ok_or_else(|| EngineError::NotFound { entity: "open incident", key: id.to_string() })
    }

    /// A unit's live dispatch state (off duty and never stored if the unit is unknown).
    fn unit_state_of(&self, code: &str) -> UnitState {
        let units = self.dispatch.units.read().expect("units lock");
        units.get(code).map(|live| live.state.clone()).unwrap_or_else(|| UnitState {
            unit: code.to_string(),
            status: UnitStatus::OffDuty,
            since: self.now(),
            incident: None,
            revision: 0,
        })
    }

    fn live_unit(&self, code: &str) -> Result<(Unit, UnitState), EngineError> {
        let units = self.dispatch.units.read().expect("units lock");
        let live = units.get(code).ok_or_else(|| EngineError::NotFound { entity: "unit", key: code.to_string() })?;
        Ok((live.unit.clone(), live.state.clone()))
    }

    /// Writes a change with its events (in the outbox, one transaction), then publishes
    /// them: applied to the board and the units, then announced.
    async fn commit(&self, mut change: DispatchChange) -> Result<(), EngineError> {
        let now = self.now();
        let events = self.dispatch_events(&change);
        change.outbox = Outbox::new(now, &events);
        if let Err(error) = self.store.write_dispatch(change.clone()).await {
            if matches!(error, StoreError::Stale { .. }) {
                // Another server changed these records first: take what it stored, so the
                // caller's retry starts from the records as they are.
                self.reload_dispatch_records(&change).await;
            }
            return Err(error.into());
        }
        for event in events {
            self.publish(now, event);
        }
        Ok(())
    }

    /// Reads the incidents and units of a refused change back from the store into the
    /// live state (best effort: a failed read leaves the next attempt to find out).
    async fn reload_dispatch_records(&self, change: &DispatchChange) {
        for incident in &change.incidents {
            match self.store.incident(incident.id).await {
                Ok(Some(stored)) => self.dispatch.board.write().expect("board lock").put(stored),
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, incident = incident.id, "could not reload a changed incident"),
            }
        }
        if change.units.is_empty() {
            return;
        }
        match self.store.unit_statuses().await {
            Ok(states) => {
                let mut units = self.dispatch.units.write().expect("units lock");
                for state in states.into_iter().filter(|s| change.units.iter().any(|u| u.unit == s.unit)) {
                    units.set_state(state);
                }
            }
            Err(error) => tracing::warn!(%error, "could not reload changed unit statuses"),
        }
    }

    fn bump(&self, incident: &mut Incident) {
        incident.revision += 1;
        incident.updated_at = self.now();
    }

    /// Sends units to an incident. Each must be free (available or returning), at a
    /// station in the caller's jurisdiction; volunteer and guard units may join police
    /// units (联防互动).
    pub async fn assign_units(&self, caller: &Caller, id: i64, units: &[String]) -> Result<Incident, EngineError> {
        if units.is_empty() || units.len() > 20 {
            return Err(invalid("units", "1–20 unit codes"));
        }
        let mut keys = vec![Key::Incident(id)];
        keys.extend(units.iter().map(|u| Key::Unit(u)));
        let _guards = self.lock(&keys).await;
        let mut incident = self.open_incident(id)?;
        self.authorize(
            caller,
            Action::ManageIncidents,
            Some(&incident.chain),
            "incident.assign",
            Some(("incident", &id.to_string())),
        )
        .await?;
        if !matches!(
            incident.status,
            IncidentStatus::New | IncidentStatus::Dispatched | IncidentStatus::EnRoute | IncidentStatus::OnScene
        ) {
            return Err(EngineError::Dispatch(fangkong_core::dispatch::DispatchError::IncidentTransition {
                status: incident.status.as_str(),
                action: "sent units",
            }));
        }
        let now = self.now();
        let mut change = DispatchChange::default();
        for code in units {
            let (unit, state) = self.live_unit(code)?;
            let station = self.chain_of(&unit.station).unwrap_or_default();
            self.authorize(caller, Action::ManageIncidents, Some(&station), "incident.assign", Some(("unit", code)))
                .await?;
            check_unit_transition(state.status, UnitStatus::Dispatched)?;
            if change.units.iter().any(|u: &UnitState| &u.unit == code) {
                return Err(invalid("units", format!("{code} is listed twice")));
            }
            incident.assignments.push(Assignment::new(code.clone(), now));
            change.units.push(state.next(UnitStatus::Dispatched, now, Some(id)));
            change.timeline.push(self.timeline(caller, id, TimelineKind::Dispatched, Some(code), String::new()));
        }
        incident.follow_units();
        self.bump(&mut incident);
        change.incidents.push(incident.clone());
        self.commit(change).await?;
        Ok(incident)
    }

    /// Changes a unit's status: the unit reporting (en route, on scene, clear, off duty) or
    /// the centre setting it. Working an incident, the change is the incident's too.
    pub async fn set_unit_status(&self, caller: &Caller, code: &str, to: UnitStatus) -> Result<UnitState, EngineError> {
        if to == UnitStatus::Dispatched {
            return Err(invalid("status", "units are dispatched by assigning them to an incident"));
        }
        for _ in 0..3 {
            let (_, before) = self.live_unit(code)?;
            let mut keys = vec![Key::Unit(code)];
            if let Some(incident) = before.incident {
                keys.push(Key::Incident(incident));
            }
            let _guards = self.lock(&keys).await;
            let (unit, state) = self.live_unit(code)?;
            if state.incident != before.incident {
                continue; // sent elsewhere while we waited: look again
            }
            let station = self.chain_of(&unit.station).unwrap_or_default();
            self.authorize(caller, Action::UpdateUnitStatus, Some(&station), "unit.status", Some(("unit", code)))
                .await?;
            check_unit_transition(state.status, to)?;
            let now = self.now();
            let working = to.is_assigned();
            let next = state.next(to, now, if working { state.incident } else { None });
            let mut change = DispatchChange { units: vec![next.clone()], ..DispatchChange::default() };
            if let Some(id) = state.incident
                && let Some(mut incident) = self.board_incident(id)
            {
                if let Some(assignment) = incident.active_assignment_mut(code) {
                    assignment.advance(to, now);
                }
                incident.follow_units();
                self.bump(&mut incident);
                change.timeline.push(self.timeline(
                    caller,
                    id,
                    TimelineKind::UnitStatus,
                    Some(code),
                    to.as_str().into(),
                ));
                change.incidents.push(incident);
            }
            self.commit(change).await?;
            return Ok(next);
        }
        Err(invalid("unit", "the unit kept changing; try again"))
    }

    /// Resolves, closes (with a disposition), reopens or cancels an incident. Resolving
    /// releases its units (returning); cancelling recalls them (available).
    pub async fn incident_action(
        &self,
        caller: &Caller,
        id: i64,
        action: IncidentAction,
        disposition: Option<&str>,
    ) -> Result<Incident, EngineError> {
        let current = self.load_incident(id).await?;
        let mut keys = vec![Key::Incident(id)];
        keys.extend(current.assignments.iter().filter(|a| a.is_active()).map(|a| Key::Unit(&a.unit)));
        let _guards = self.lock(&keys).await;
        let mut incident = self.load_incident(id).await?;
        self.authorize(
            caller,
            Action::ManageIncidents,
            Some(&incident.chain),
            "incident.action",
            Some(("incident", &id.to_string())),
        )
        .await?;
        let next = apply_action(incident.status, action)?;
        let now = self.now();
        let mut change = DispatchChange::default();
        let (kind, mut detail) = match action {
            IncidentAction::Resolve => (TimelineKind::Resolved, String::new()),
            IncidentAction::Close => (TimelineKind::Closed, String::new()),
            IncidentAction::Reopen => (TimelineKind::Reopened, String::new()),
            IncidentAction::Cancel => (TimelineKind::Cancelled, String::new()),
        };
        match action {
            IncidentAction::Close => {
                let code = disposition.ok_or(fangkong_core::dispatch::DispatchError::NoDisposition)?;
                if !self.codes.read().expect("codes lock").is_usable(CodeKind::Disposition, code) {
                    return Err(invalid("disposition", format!("{code:?} is not an active disposition code")));
                }
                incident.disposition = Some(code.to_string());
                incident.closed_at = Some(now);
                detail = code.to_string();
            }
            IncidentAction::Reopen => {
                incident.disposition = None;
                incident.closed_at = None;
                incident.resolved_at = None;
            }
            IncidentAction::Resolve => incident.resolved_at = Some(now),
            IncidentAction::Cancel => {
                if let Some(code) = disposition {
                    if !self.codes.read().expect("codes lock").is_usable(CodeKind::Disposition, code) {
                        return Err(invalid("disposition", format!("{code:?} is not an active disposition code")));
                    }
                    incident.disposition = Some(code.to_string());
                    detail = code.to_string();
                }
                incident.closed_at = Some(now);
            }
        }
        let released = if action == IncidentAction::Cancel { UnitStatus::Available } else { UnitStatus::Returning };
        if matches!(action, IncidentAction::Resolve | IncidentAction::Cancel) {
            for assignment in incident.assignments.iter_mut().filter(|a| a.is_active()) {
                assignment.advance(released, now);
                change.units.push(self.unit_state_of(&assignment.unit).next(released, now, None));
            }
        }
        incident.status = next;
        self.bump(&mut incident);
        change.timeline.push(self.timeline(caller, id, kind, None, detail));
        change.incidents.push(incident.clone());
        self.commit(change).await?;
        Ok(incident)
    }

    /// Merges a duplicate into the incident it repeats: the duplicate is closed (with the
    /// configured disposition) pointing at the other; units working it now work the other.
    pub async fn merge_incident(&self, caller: &Caller, id: i64, into: i64) -> Result<Incident, EngineError> {
        if id == into {
            return Err(invalid("into", "an incident cannot be merged into itself"));
        }
        let current = self.open_incident(id)?;
        let mut keys = vec![Key::Incident(id), Key::Incident(into)];
        keys.extend(current.assignments.iter().filter(|a| a.is_active()).map(|a| Key::Unit(&a.unit)));
        let _guards = self.lock(&keys).await;
        let mut duplicate = self.open_incident(id)?;
        let mut target = self.open_incident(into)?;
        for incident in [&duplicate, &target] {
            let target_id = incident.id.to_string();
            self.authorize(
                caller,
                Action::ManageIncidents,
                Some(&incident.chain),
                "incident.merge",
                Some(("incident", &target_id)),
            )
            .await?;
        }
        let disposition = &self.config.dispatch.merge_disposition;
        if !self.codes.read().expect("codes lock").is_usable(CodeKind::Disposition, disposition) {
            return Err(invalid("disposition", format!("the merge disposition {disposition:?} is not an active code")));
        }
        let now = self.now();
        let mut change = DispatchChange::default();
        for assignment in duplicate.assignments.iter_mut().filter(|a| a.is_active()) {
            let moved = Assignment { cleared_at: None, ..assignment.clone() };
            assignment.cleared_at = Some(now);
            change.units.push(self.unit_state_of(&moved.unit).next(moved.status, now, Some(into)));
            target.assignments.push(moved);
        }
        duplicate.status = IncidentStatus::Closed;
        duplicate.disposition = Some(disposition.clone());
        duplicate.merged_into = Some(into);
        duplicate.closed_at = Some(now);
        self.bump(&mut duplicate);
        target.follow_units();
        self.bump(&mut target);
        change.timeline.push(self.timeline(caller, id, TimelineKind::Merged, None, format!("into {into}")));
        change.timeline.push(self.timeline(caller, into, TimelineKind::MergedFrom, None, format!("from {id}")));
        change.incidents = vec![duplicate.clone(), target];
        self.commit(change).await?;
        Ok(duplicate)
    }

    /// Keeps an incident flagged as a possible duplicate: it is its own incident.
    pub async fn keep_incident(&self, caller: &Caller, id: i64) -> Result<Incident, EngineError> {
        let _guards = self.lock(&[Key::Incident(id)]).await;
        let mut incident = self.open_incident(id)?;
        self.authorize(
            caller,
            Action::ManageIncidents,
            Some(&incident.chain),
            "incident.keep",
            Some(("incident", &id.to_string())),
        )
        .await?;
        if incident.possible_duplicates.is_empty() {
            return Err(invalid("possible_duplicates", "this incident is not flagged as a possible duplicate"));
        }
        let detail = format!("not a duplicate of {:?}", incident.possible_duplicates);
        incident.possible_duplicates.clear();
        self.bump(&mut incident);
        let change = DispatchChange {
            timeline: vec![self.timeline(caller, id, TimelineKind::DuplicateKept, None, detail)],
            incidents: vec![incident.clone()],
            units: Vec::new(),
            outbox: Default::default(),
        };
        self.commit(change).await?;
        Ok(incident)
    }

    /// Adds a note to an open incident's timeline.
    pub async fn note_incident(&self, caller: &Caller, id: i64, text: &str) -> Result<Incident, EngineError> {
        check_free_text("text", text, 2_000, true)?;
        let _guards = self.lock(&[Key::Incident(id)]).await;
        let mut incident = self.open_incident(id)?;
        self.authorize(
            caller,
            Action::ManageIncidents,
            Some(&incident.chain),
            "incident.note",
            Some(("incident", &id.to_string())),
        )
        .await?;
        self.bump(&mut incident);
        let change = DispatchChange {
            timeline: vec![self.timeline(caller, id, TimelineKind::Note, None, text.trim().to_string())],
            incidents: vec![incident.clone()],
            units: Vec::new(),
            outbox: Default::default(),
        };
        self.commit(change).await?;
        Ok(incident)
    }

    // ---- reads ----------------------------------------------------------------------------

    /// The open incidents the caller may see (inside `within` when given), by id.
    pub async fn open_incidents(&self, caller: &Caller, within: Option<&str>) -> Result<Vec<Incident>, EngineError> {
        self.authorize(caller, Action::ReadIncidents, None, "incident.list", None).await?;
        let within = within.map(|code| self.scope(code)).transpose()?;
        let board = self.dispatch.board.read().expect("board lock");
        let mut incidents: Vec<Incident> = board
            .incidents
            .values()
            .filter(|i| caller.actor.check_in(Action::ReadIncidents, &i.chain).is_ok())
            .filter(|i| within.as_ref().is_none_or(|scope| scope.covers(&i.chain)))
            .cloned()
            .collect();
        incidents.sort_by_key(|i| i.id);
        Ok(incidents)
    }

    /// Incidents created in `from..to` (open or not) that the caller may see.
    pub async fn incidents_between(
        &self,
        caller: &Caller,
        within: Option<&str>,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<Incident>, EngineError> {
        self.authorize(caller, Action::ReadIncidents, None, "incident.list", None).await?;
        let within = within.map(|code| self.scope(code)).transpose()?;
        Ok(self
            .store
            .incidents_between(from, to, limit.clamp(1, 10_000), true)
            .await?
            .into_iter()
            .filter(|i| caller.actor.check_in(Action::ReadIncidents, &i.chain).is_ok())
            .filter(|i| within.as_ref().is_none_or(|scope| scope.covers(&i.chain)))
            .collect())
    }

    /// One incident with its assignments.
    pub async fn incident(&self, caller: &Caller, id: i64) -> Result<Incident, EngineError> {
        self.authorize(caller, Action::ReadIncidents, None, "incident.read", None).await?;
        let incident = self.load_incident(id).await?;
        self.authorize(
            caller,
            Action::ReadIncidents,
            Some(&incident.chain),
            "incident.read",
            Some(("incident", &id.to_string())),
        )
        .await?;
        Ok(incident)
    }

    /// An incident's timeline, oldest first.
    pub async fn incident_timeline(&self, caller: &Caller, id: i64) -> Result<Vec<(i64, TimelineEntry)>, EngineError> {
        self.incident(caller, id).await?;
        Ok(self.store.incident_timeline(id).await?)
    }

    /// Who called (personal data: the centre only, with a stated purpose, audited).
    pub async fn incident_caller(&self, caller: &Caller, id: i64) -> Result<CallerDetails, EngineError> {
        self.authorize(caller, Action::ReadIncidentCallers, None, "incident.caller", None).await?;
        let incident = self.load_incident(id).await?;
        let target = id.to_string();
        self.authorize(
            caller,
            Action::ReadIncidentCallers,
            Some(&incident.chain),
            "incident.caller",
            Some(("incident", &target)),
        )
        .await?;
        self.audit_personal_read(caller, "incident.caller", ("incident", &target), None).await?;
        let Some(sealed) = self.store.incident_caller(id).await? else {
            return Ok(CallerDetails { name: None, phone: None });
        };
        let plain = crypto::open(&self.config.keys.personal_data(), &caller_context(&incident.uid), &sealed)
            .and_then(|p| String::from_utf8(p).ok())
            .ok_or_else(|| EngineError::Store(StoreError::Corrupt(format!("incident {id} caller does not open"))))?;
        let (phone, name) = plain.split_once('\n').unwrap_or((&plain, ""));
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Ok(CallerDetails { name: some(name), phone: some(phone) })
    }

    /// Incidents near an incident's place in the configured days before it (any status),
    /// nearest first.
    pub async fn prior_history(&self, caller: &Caller, id: i64) -> Result<Vec<PriorIncident>, EngineError> {
        let incident = self.incident(caller, id).await?;
        let config = &self.config.dispatch;
        let cells = incident.point.h3_cells_within(fangkong_store::HISTORY_CELL_RESOLUTION, config.history_radius_m);
        let since = incident.created_at.plus_seconds(-i64::from(config.history_days) * 86_400);
        let mut prior: Vec<PriorIncident> = self
            .store
            .incidents_in_cells(&cells, since, 1_000)
            .await?
            .into_iter()
            .filter(|other| other.id != id && other.created_at <= incident.created_at)
            .map(|other| PriorIncident { distance_m: other.point.distance_m(incident.point), incident: other })
            .filter(|p| p.distance_m <= config.history_radius_m)
            .filter(|p| caller.actor.check_in(Action::ReadIncidents, &p.incident.chain).is_ok())
            .collect();
        prior.sort_by_key(|p| std::cmp::Reverse(p.incident.created_at));
        prior.truncate(100);
        Ok(prior)
    }

    pub fn dispatch_stats(&self) -> DispatchStats {
        let open_incidents = self.dispatch.board.read().expect("board lock").incidents.len();
        let units = self.dispatch.units.read().expect("units lock");
        let units_by_status = UnitStatus::ALL
            .into_iter()
            .map(|status| (status, units.iter().filter(|u| u.state.status == status).count()))
            .collect();
        DispatchStats { open_incidents, units_by_status }
    }

    /// Every unit the caller may see, with its dispatch status, timer and position.
    pub async fn unit_board(&self, caller: &Caller) -> Result<Vec<UnitOnBoard>, EngineError> {
        self.authorize(caller, Action::ReadIncidents, None, "unit.board", None).await?;
        let now = self.now();
        let timers = &self.config.dispatch.timers;
        let units = self.dispatch.units.read().expect("units lock");
        let mut board: Vec<UnitOnBoard> = units
            .iter()
            .filter(|u| {
                self.chain_of(&u.unit.station).is_some_and(|c| caller.actor.check_in(Action::ReadIncidents, &c).is_ok())
            })
            .map(|u| UnitOnBoard {
                unit: u.unit.clone(),
                state: u.state.clone(),
                position: u.position,
                overdue: timers.is_overdue(u.state.status, u.state.since, now),
            })
            .collect();
        board.sort_by(|a, b| a.unit.code.cmp(&b.unit.code));
        Ok(board)
    }

    /// Response measures for incidents created in `from..to` inside `within`: the whole,
    /// and each node one level down.
    pub async fn response_measures(
        &self,
        caller: &Caller,
        within: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<MeasuresReport, EngineError> {
        let place = self
            .chain_of(within)
            .ok_or_else(|| EngineError::NotFound { entity: "jurisdiction", key: within.into() })?;
        self.authorize(caller, Action::ReadIncidents, Some(&place), "incident.measures", None).await?;
        if to <= from || to.millis_since(from) > 366 * 86_400_000 {
            return Err(invalid("to", "the period must be positive and at most 366 days"));
        }
        let scope = self.scope(within)?;
        let within = within.to_string();
        let read = async { Ok(self.store.incidents_between(from, to, 5_000_000, false).await?) };
        self.run_report("measures", read, move |incidents, budget| {
            budget.check()?;
            let inside: Vec<&Incident> = incidents.iter().filter(|i| scope.covers(&i.chain)).collect();
            let child_kind = match scope.kind {
                JurisdictionKind::City => Some(JurisdictionKind::District),
                JurisdictionKind::District => Some(JurisdictionKind::Subdistrict),
                JurisdictionKind::Subdistrict => Some(JurisdictionKind::Community),
                JurisdictionKind::Community => Some(JurisdictionKind::Grid),
                JurisdictionKind::PoliceStation => Some(JurisdictionKind::PoliceDistrict),
                JurisdictionKind::Grid | JurisdictionKind::PoliceDistrict => None,
            };
            let mut parts: BTreeMap<String, Vec<&Incident>> = BTreeMap::new();
            if let Some(kind) = child_kind {
                for incident in &inside {
                    if let Some(code) = incident.chain.get(kind) {
                        parts.entry(code.to_string()).or_default().push(incident);
                    }
                }
            }
            budget.check()?;
            Ok(MeasuresReport {
                within,
                total: group_measures(inside.iter().copied()),
                parts: parts.into_iter().map(|(code, list)| (code, group_measures(list))).collect(),
            })
        })
        .await
    }

    // ---- timers and panic alarms ----------------------------------------------------------

    /// Raises an alert (an event) for each unit that has just become overdue in its
    /// status; each status episode alerts once. Returns how many were raised.
    pub fn check_timers(&self) -> usize {
        let now = self.now();
        let timers = &self.config.dispatch.timers;
        let overdue: Vec<(String, String, UnitStatus, Timestamp, i64)> = {
            let units = self.dispatch.units.read().expect("units lock");
            units
                .iter()
                .filter(|u| timers.is_overdue(u.state.status, u.state.since, now))
                .map(|u| {
                    let limit = timers.limit(u.state.status).unwrap_or_default();
                    (u.unit.code.clone(), u.unit.station.clone(), u.state.status, u.state.since, limit)
                })
                .collect()
        };
        let mut raised = 0;
        for (unit, station, status, since, limit_ms) in overdue {
            let fresh = self.dispatch.board.write().expect("board lock").alerted.insert((unit.clone(), since));
            if fresh {
                raised += 1;
                self.publish(now, Event::UnitOverdue { unit, station, status, since, limit_ms });
            }
        }
        raised
    }

    /// A tracker's panic alarm becomes a priority incident at its position (once per open
    /// incident: later alarms from the same tracker add to its timeline).
    pub(crate) async fn raise_panic(&self, unique_id: &str, unit: Option<&str>, point: LatLon, alarm: &str) {
        let system = Caller::system(format!("sos:{unique_id}"));
        let open = self.dispatch.board.read().expect("board lock").panics.get(unique_id).copied();
        let result = match open {
            Some(id) => self.note_incident(&system, id, &format!("{alarm} again at {point}")).await.map(|_| id),
            None => {
                let rule = &self.config.dispatch.panic;
                let who = unit.map_or_else(|| unique_id.to_string(), |u| format!("{u} ({unique_id})"));
                let new = NewIncident {
                    source: rule.source.clone(),
                    type_code: rule.incident_type.clone(),
                    priority: Some(rule.priority),
                    point: Some(point),
                    description: format!("{alarm}: panic alarm from {who}"),
                    ..NewIncident::default()
                };
                self.create_incident(&system, new).await.map(|created| created.incident.id)
            }
        };
        match result {
            Ok(id) => {
                self.dispatch.board.write().expect("board lock").panics.insert(unique_id.to_string(), id);
            }
            Err(error) => tracing::error!(%error, device = unique_id, "a panic alarm could not become an incident"),
        }
    }
}

#[cfg(test)]
mod tests;
