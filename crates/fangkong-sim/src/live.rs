//! The live city of the demo: 110/119/122 calls arrive over the day and the force answers
//! them — through the engine's own commands, as call takers, dispatchers and patrol units
//! would, never behind its back.
//!
//! * **The force** — the plan's teams (from [`crate::population::generate_force`], at the
//!   demo's scale), each on the beat of its police district (警务区) with one tracker, on a
//!   24-hour shift of the roster, available.
//! * **Calls** — arrivals follow the hourly curve and weekend nights ([`crate::calls`]);
//!   places are drawn by the grids' shares of residents, a quarter of them near one of a
//!   dozen hotspots. The call mix of synthetic-city.md: 30 % invalid (closed as such), 20 %
//!   for other agencies (closed as referred), the rest dispatched by category — criminal 10,
//!   public order 25, traffic 30, disputes 15, help 12, fire 1, reports 2, other 5 — with
//!   traffic heavier at 07–09 and 17–19, robbery and snatching at 21–02, disputes at 19–23.
//! * **Units** patrol their beat towards random waypoints at their mode's speed, report a
//!   fix every tick, and when sent: acknowledge (en route) within a minute, drive to the
//!   scene at the speed the recommendation assumes, stay on scene 10–40 minutes, clear
//!   (the last one out resolves and closes the incident with a disposition), return to
//!   their beat and become available again.
//! * **Alarm points and checkpoints** — the city's alarm points (at the force's scale) and
//!   all its checkpoints are registered as devices at their places and send a heartbeat
//!   every five minutes; now and then one falls silent for hours (about 2 % at any moment),
//!   which is what the centre's supervision shows.
//!
//! Time is the engine's clock: the demo runs it `speed` times faster than the wall clock,
//! so every timestamp, timer and measure is consistent in simulated time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use fangkong_core::auth::DeviceKind;
use fangkong_core::avl::Fix;
use fangkong_core::codes::CodeKind;
use fangkong_core::dispatch::{IncidentAction, IncidentStatus, Mobility, UnitStatus};
use fangkong_core::forces::{ForceCategory, PatrolMode, Shift, Unit};
use fangkong_core::jurisdiction::JurisdictionKind;
use fangkong_core::time::Timestamp;
use fangkong_engine::{Caller, Engine, EngineError, NewBeat, NewDevice, NewIncident};
use fangkong_geo::{Area, LatLon};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::calls::{Arrivals, CallProfile};
use crate::city::CityMap;
use crate::population::{
    Building, ForceMember, ForceUnit, Informant, Landlord, Place, PopulationOptions, PopulationSink, Resident, Tenancy,
    Unit as RentalUnit, generate_force, grid_weights, point_in,
};

/// How the live city runs.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveOptions {
    pub seed: u64,
    /// Share of the plan's 50,000-strong force on the streets (0.05 ≈ 900 teams).
    pub force_scale: f64,
    /// Calls a day for the whole city; by default the real 15,000 scaled like the force, so
    /// the force is as busy as the real one.
    pub calls_per_day: f64,
    /// Wall-clock time between two steps of the simulation.
    pub tick: Duration,
}

impl LiveOptions {
    pub fn new(force_scale: f64) -> LiveOptions {
        LiveOptions {
            seed: 2003,
            force_scale,
            calls_per_day: CallProfile::default().calls_per_day * force_scale,
            tick: Duration::from_millis(500),
        }
    }
}

/// Collects the generator's teams and places (and nothing else).
#[derive(Default)]
struct Collected {
    teams: Vec<ForceUnit>,
    places: Vec<Place>,
}

impl PopulationSink for Collected {
    fn building(&mut self, _: &Building) {}
    fn unit(&mut self, _: &RentalUnit) {}
    fn resident(&mut self, _: &Resident) {}
    fn landlord(&mut self, _: &Landlord) {}
    fn tenancy(&mut self, _: &Tenancy) {}
    fn force_unit(&mut self, unit: &ForceUnit) {
        self.teams.push(unit.clone());
    }
    fn force_member(&mut self, _: &ForceMember) {}
    fn place(&mut self, place: &Place) {
        self.places.push(place.clone());
    }
    fn informant(&mut self, _: &Informant) {}
}

fn tracker_of(unit: &str) -> String {
    format!("SIM-{unit}")
}

/// A tracker for `unit`, registered in the unit's district (its station where the tree
/// names no district): how the live city, and benchmarks that build the same force, equip
/// a unit.
pub fn unit_tracker(engine: &Engine, unit: &Unit, unique_id: String) -> NewDevice {
    let district = engine.chain_of(&unit.station).and_then(|c| c.get(JurisdictionKind::District).map(String::from));
    NewDevice {
        unique_id,
        kind: DeviceKind::Tracker,
        unit: Some(unit.code.clone()),
        jurisdiction: district.unwrap_or_else(|| unit.station.clone()),
        name: None,
        location: None,
    }
}

/// Registers the force on a new database: beats, units with capabilities, trackers, a day
/// of roster; every unit available at its beat. Returns the units (also when they were
/// registered by an earlier run).
pub async fn populate(engine: &Engine, city: &CityMap, options: &LiveOptions) -> Result<Vec<Unit>, EngineError> {
    let system = Caller::system("demo");
    let existing = engine.units(&system).await?;
    if !existing.is_empty() {
        return Ok(existing);
    }
    let mut teams = Collected::default();
    let population =
        PopulationOptions { seed: options.seed, scale: options.force_scale, ..PopulationOptions::default() };
    generate_force(city, &population, &mut teams);
    let mut beats: BTreeMap<String, String> = BTreeMap::new();
    for team in &teams.teams {
        beats.insert(team.beat.clone(), team.station.clone());
    }
    let new_beats: Vec<NewBeat> = beats
        .iter()
        .filter_map(|(code, station)| {
            let shape = city.areas.get(code)?.clone();
            let name = city.nodes.iter().find(|n| &n.code == code).map_or_else(|| code.clone(), |n| n.name_zh.clone());
            Some(NewBeat { code: code.clone(), station: station.clone(), name, shape: Some(shape), grids: Vec::new() })
        })
        .collect();
    engine.save_beats(&system, new_beats).await?;
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0x11_0110);
    let mut new_units = Vec::new();
    for team in teams.teams.iter().filter(|t| city.areas.contains_key(&t.beat)) {
        // Some police cars are traffic units (交警): traffic incidents prefer them.
        // The generator's categories and modes are the registry's, by name.
        let category = ForceCategory::parse(team.category.as_str()).unwrap_or(ForceCategory::Volunteer);
        let mode = PatrolMode::parse(team.mode.as_str()).unwrap_or(PatrolMode::Foot);
        let traffic = category == ForceCategory::Police && mode == PatrolMode::Vehicle && rng.random_bool(0.2);
        let unit = Unit {
            code: team.id.clone(),
            call_sign: team.call_sign.clone(),
            station: team.station.clone(),
            category,
            mode,
            equipment: match mode {
                PatrolMode::Vehicle => vec!["警车".into(), "对讲机".into()],
                _ => vec!["对讲机".into()],
            },
            beat: Some(team.beat.clone()),
            capabilities: if traffic { vec!["traffic".into()] } else { Vec::new() },
        };
        new_units.push(unit);
    }
    let units = engine.save_units(&system, new_units).await?;
    // Trackers, a first fix and availability, many at once (the store commits them together).
    for chunk in units.chunks(128) {
        let jobs = chunk.iter().map(|unit| {
            let system = system.clone();
            let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ hash(&unit.code));
            async move {
                let device = unit_tracker(engine, unit, tracker_of(&unit.code));
                engine.add_device(&system, device).await?;
                if let Some(shape) = unit.beat.as_ref().and_then(|b| city.areas.get(b)) {
                    let [lon, lat] = point_in(&mut rng, shape);
                    let point = LatLon::new(lat, lon)
                        .map_err(|e| EngineError::Invalid { field: "point", message: e.to_string() })?;
                    engine.ingest_fix(&tracker_of(&unit.code), Fix::new(engine.now(), point)).await?;
                }
                engine.set_unit_status(&system, &unit.code, UnitStatus::Available).await?;
                Ok::<(), EngineError>(())
            }
        });
        for result in futures_util::future::join_all(jobs).await {
            result?;
        }
    }
    roster_day(engine, &units, engine.now()).await?;
    Ok(units)
}

/// One 24-hour shift per unit from `from`, on its beat.
async fn roster_day(engine: &Engine, units: &[Unit], from: Timestamp) -> Result<(), EngineError> {
    let shifts: Vec<Shift> = units
        .iter()
        .filter_map(|u| {
            Some(Shift {
                unit: u.code.clone(),
                beat: u.beat.clone()?,
                starts_at: from,
                ends_at: from.plus_seconds(86_400),
            })
        })
        .collect();
    for chunk in shifts.chunks(10_000) {
        engine.add_shifts(&Caller::system("demo"), chunk.to_vec()).await?;
    }
    Ok(())
}

// ---- the alarm points and checkpoints ------------------------------------------------------

/// A fixed site's terminal as the demo runs it: a heartbeat every few minutes while it is
/// up; now and then it goes silent for a while (a power cut, a cable dug up), which is
/// what the centre's supervision is there to notice.
struct SimSite {
    caller: Caller,
    unique_id: String,
    next_beat: Timestamp,
    silent_until: Option<Timestamp>,
}

/// Seconds between heartbeats (in the engine's time), and the chance a site falls silent
/// at a heartbeat: about 2 % of sites are silent at any moment.
const HEARTBEAT_S: i64 = 300;
const SILENCE_CHANCE: f64 = 0.0005;

/// Registers the city's alarm points and checkpoint terminals on a new database (at the
/// force's scale, every checkpoint), each with its place, in the district it stands in.
/// Returns them ready to report (also when an earlier run registered them).
async fn sites(engine: &Engine, city: &CityMap, options: &LiveOptions) -> Result<Vec<SimSite>, EngineError> {
    let system = Caller::system("demo");
    let fixed = |devices: Vec<fangkong_core::auth::account::Device>| {
        devices.into_iter().filter(|d| d.kind != DeviceKind::Tracker && d.location.is_some()).collect::<Vec<_>>()
    };
    let mut devices = fixed(engine.devices(&system).await?);
    if devices.is_empty() {
        let mut found = Collected::default();
        let population =
            PopulationOptions { seed: options.seed, scale: options.force_scale, ..PopulationOptions::default() };
        crate::population::generate_sites(city, &population, &mut found);
        let mut new_devices = Vec::new();
        for place in &found.places {
            // Checkpoints sit on borders: step inside when the border point itself is not.
            let inside = [(0.0, 0.0), (0.0005, 0.0), (-0.0005, 0.0), (0.0, 0.0005), (0.0, -0.0005)]
                .into_iter()
                .filter_map(|(dlat, dlon)| LatLon::new(place.lat + dlat, place.lon + dlon).ok())
                .find_map(|point| engine.place(point).map(|at| (point, at)));
            let Some((point, at)) = inside else { continue };
            let Some(district) = at.chain.get(JurisdictionKind::District) else { continue };
            new_devices.push(NewDevice {
                unique_id: format!("SITE-{}", place.id),
                kind: if place.kind == "alarm_point" { DeviceKind::AlarmPoint } else { DeviceKind::Checkpoint },
                unit: Some(place.id.clone()),
                jurisdiction: district.to_string(),
                name: Some(place.name.clone()),
                location: Some(point),
            });
        }
        for chunk in new_devices.chunks(128) {
            let added = futures_util::future::join_all(chunk.iter().map(|new| engine.add_device(&system, new.clone())));
            for result in added.await {
                result?;
            }
        }
        devices = fixed(engine.devices(&system).await?);
    }
    let now = engine.now();
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0xA1A2);
    Ok(devices
        .into_iter()
        .filter(|d| d.revoked_at.is_none())
        .map(|device| {
            let actor = fangkong_core::auth::DeviceActor {
                device_id: device.id,
                unique_id: device.unique_id.clone(),
                kind: device.kind,
            };
            // Heartbeats spread over the interval; a few sites start out silent.
            let silent_until = rng.random_bool(0.02).then(|| now.plus_seconds(rng.random_range(1_800..6 * 3_600)));
            SimSite {
                caller: Caller::new(fangkong_core::auth::Actor::Device(actor)),
                unique_id: device.unique_id,
                next_beat: now.plus_seconds(rng.random_range(0..HEARTBEAT_S)),
                silent_until,
            }
        })
        .collect())
}

/// Whether the engine refused one device (revoked, removed, or no longer the kind the
/// simulation drives) rather than failed as a whole: the simulation then stops only that
/// device's reports and the rest of the city goes on.
fn refuses_the_device(error: &EngineError) -> bool {
    matches!(
        error,
        EngineError::DeviceRevoked
            | EngineError::UnknownDevice { .. }
            | EngineError::Invalid { .. }
            | EngineError::Denied(_)
            | EngineError::NotFound { .. }
    )
}

/// The sites whose heartbeat is due report it. A site whose terminal the engine refuses
/// (an administrator revoked it) is dropped from `sites` with one log line.
async fn heartbeats(
    engine: &Engine,
    sites: &mut Vec<SimSite>,
    now: Timestamp,
    rng: &mut ChaCha8Rng,
) -> Result<(), EngineError> {
    let mut due = Vec::new();
    for site in sites.iter_mut().filter(|site| site.next_beat <= now) {
        site.next_beat = now.plus_seconds(HEARTBEAT_S);
        if site.silent_until.is_some_and(|until| now < until) {
            continue;
        }
        site.silent_until = None;
        if rng.random_bool(SILENCE_CHANCE) {
            site.silent_until = Some(now.plus_seconds(rng.random_range(1_800..6 * 3_600)));
            continue;
        }
        due.push(&*site);
    }
    let mut refused = Vec::new();
    for chunk in due.chunks(128) {
        let beats = chunk.iter().map(|site| engine.device_heartbeat(&site.caller, &site.unique_id));
        for (site, result) in chunk.iter().zip(futures_util::future::join_all(beats).await) {
            match result {
                Ok(_) => {}
                Err(error) if refuses_the_device(&error) => {
                    tracing::warn!(
                        device = %site.unique_id,
                        %error,
                        "a simulated site was refused; it stops reporting, the rest of the city goes on"
                    );
                    refused.push(site.unique_id.clone());
                }
                Err(error) => return Err(error),
            }
        }
    }
    if !refused.is_empty() {
        sites.retain(|site| !refused.contains(&site.unique_id));
    }
    Ok(())
}

fn hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

// ---- the calls ------------------------------------------------------------------------------

/// What a call turns out to be.
#[derive(Clone, Debug, PartialEq)]
enum CallKind {
    /// Closed at once with a disposition (invalid, or for another agency).
    Closed { type_code: String, disposition: &'static str },
    /// Dispatched: of this type, closed afterwards with this disposition.
    Dispatched { type_code: String, source: &'static str, disposition: &'static str },
}

/// The calls' mix, places and types.
struct Caller110 {
    rng: ChaCha8Rng,
    grids: Vec<(String, f64)>,
    total_weight: f64,
    hotspots: Vec<LatLon>,
    /// Active incident type codes by two-digit category.
    types: BTreeMap<String, Vec<String>>,
}

/// Local hour (UTC+8).
fn local_hour(at: Timestamp) -> i64 {
    (at.as_millis() / 3_600_000 + 8).rem_euclid(24)
}

impl Caller110 {
    async fn new(engine: &Engine, city: &CityMap, seed: u64) -> Result<Caller110, EngineError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0110);
        let grids: Vec<(String, f64)> =
            grid_weights(city).into_iter().filter(|(g, _)| city.areas.contains_key(g)).collect();
        let total_weight = grids.iter().map(|(_, w)| w).sum();
        let mut types: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for entry in engine.codes(&Caller::system("sim-110"), CodeKind::IncidentType).await? {
            if entry.active && !entry.code.ends_with("0000") {
                types.entry(entry.code[0..2].to_string()).or_default().push(entry.code.clone());
            }
        }
        let mut caller = Caller110 { rng: rng.clone(), grids, total_weight, hotspots: Vec::new(), types };
        caller.hotspots = (0..12).filter_map(|_| caller.grid_point(city)).collect();
        caller.rng = ChaCha8Rng::seed_from_u64(rng.random());
        Ok(caller)
    }

    fn grid_point(&mut self, city: &CityMap) -> Option<LatLon> {
        let mut pick = self.rng.random::<f64>() * self.total_weight;
        let grid = self.grids.iter().find(|(_, w)| {
            let hit = pick < *w;
            pick -= w;
            hit
        })?;
        let [lon, lat] = point_in(&mut self.rng, city.areas.get(&grid.0)?);
        LatLon::new(lat, lon).ok()
    }

    fn place(&mut self, city: &CityMap) -> Option<LatLon> {
        if !self.hotspots.is_empty() && self.rng.random_bool(0.25) {
            let centre = self.hotspots[self.rng.random_range(0..self.hotspots.len())];
            // Within ~250 m (a degree of latitude is 111 km).
            let (dy, dx): (f64, f64) = (self.rng.random_range(-1.0..1.0), self.rng.random_range(-1.0..1.0));
            return LatLon::new(centre.lat() + dy * 0.00225, centre.lon() + dx * 0.0024).ok();
        }
        self.grid_point(city)
    }

    fn type_in(&mut self, category: &str, preferred: &[&str]) -> String {
        let codes = self.types.get(category).cloned().unwrap_or_default();
        let preferred: Vec<&String> = codes.iter().filter(|c| preferred.iter().any(|p| c.starts_with(p))).collect();
        if !preferred.is_empty() && self.rng.random_bool(0.6) {
            return preferred[self.rng.random_range(0..preferred.len())].clone();
        }
        if codes.is_empty() {
            return format!("{category}0000");
        }
        codes[self.rng.random_range(0..codes.len())].clone()
    }

    fn kind(&mut self, at: Timestamp) -> CallKind {
        let roll: f64 = self.rng.random();
        if roll < 0.30 {
            return CallKind::Closed { type_code: "990000".into(), disposition: "invalid_call" };
        }
        if roll < 0.50 {
            let type_code = self.type_in("06", &["0602"]);
            return CallKind::Closed { type_code, disposition: "referred" };
        }
        let hour = local_hour(at);
        let rush = matches!(hour, 7..=9 | 17..=19);
        let night = matches!(hour, 21..=23 | 0..=2);
        let evening = matches!(hour, 19..=23);
        let weights = [
            ("01", 10.0 * if night { 1.6 } else { 1.0 }),
            ("02", 25.0),
            ("03", 30.0 * if rush { 1.5 } else { 1.0 }),
            ("08", 15.0 * if evening { 1.5 } else { 1.0 }),
            ("05", 12.0),
            ("04", 1.0),
            ("06", 2.0),
            ("99", 5.0),
        ];
        let mut pick = self.rng.random::<f64>() * weights.iter().map(|(_, w)| w).sum::<f64>();
        let category = weights
            .iter()
            .find(|(_, w)| {
                let hit = pick < *w;
                pick -= w;
                hit
            })
            .map_or("02", |(c, _)| *c);
        let (type_code, source, disposition) = match category {
            // Robbery and snatching ≈ 35–40 % of criminal calls (more at night), theft ≈ half.
            "01" => (self.type_in("01", if night { &["0103"] } else { &["0104", "0103"] }), "110", "case_filed"),
            "03" => (self.type_in("03", &["0301"]), "122", "resolved_on_scene"),
            "04" => (self.type_in("04", &["0401", "0402"]), "119", "resolved_on_scene"),
            "08" => (self.type_in("08", &[]), "110", "mediated"),
            "99" => ("999900".to_string(), "110", "no_trace"),
            other => (self.type_in(other, &[]), "110", "resolved_on_scene"),
        };
        CallKind::Dispatched { type_code, source, disposition }
    }
}

// ---- the units ------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Task {
    Patrol,
    /// Sent; acknowledges at `ack_at`.
    Dispatched {
        incident: i64,
        to: LatLon,
        ack_at: Timestamp,
    },
    EnRoute {
        incident: i64,
        to: LatLon,
    },
    OnScene {
        incident: i64,
        until: Timestamp,
    },
    /// Cleared; back to patrol at `until`.
    Returning {
        until: Timestamp,
    },
}

struct SimUnit {
    code: String,
    tracker: String,
    mobility: Mobility,
    /// Fixed posts and checkpoints stay put while on patrol.
    moves_on_patrol: bool,
    beat: Option<Area>,
    at: LatLon,
    waypoint: Option<LatLon>,
    task: Task,
    /// Whether its tracker still reports: false once the engine refused it (revoked by an
    /// administrator), so it is logged once and the unit works on unseen.
    reporting: bool,
}

fn beat_centre(beat: &Area) -> LatLon {
    let bbox = beat.bbox();
    LatLon::new((bbox.min_lat + bbox.max_lat) / 2.0, (bbox.min_lon + bbox.max_lon) / 2.0)
        .unwrap_or_else(|_| LatLon::new(22.54, 114.05).expect("Shenzhen"))
}

/// Moves `from` towards `to` by at most `metres`; the new point and whether it arrived.
fn step_towards(from: LatLon, to: LatLon, metres: f64) -> (LatLon, bool) {
    let distance = from.distance_m(to);
    if distance <= metres.max(1.0) {
        return (to, true);
    }
    let share = metres / distance;
    let lat = from.lat() + (to.lat() - from.lat()) * share;
    let lon = from.lon() + (to.lon() - from.lon()) * share;
    (LatLon::new(lat, lon).unwrap_or(to), false)
}

/// The latest simulated moment the engine's record shows (units' statuses, open
/// incidents), so a restarted demo can carry on after it.
pub async fn latest_activity(engine: &Engine) -> Result<Option<Timestamp>, EngineError> {
    let system = Caller::system("demo");
    let units = engine.unit_board(&system).await?.into_iter().map(|u| u.state.since);
    let incidents = engine.open_incidents(&system, None).await?.into_iter().map(|i| i.updated_at);
    Ok(units.chain(incidents).max())
}

/// Runs the live city until the engine stops taking commands. Logs what it does at debug
/// level, and a summary every simulated hour.
pub async fn run(engine: Arc<Engine>, city: Arc<CityMap>, options: LiveOptions) {
    if let Err(error) = live(&engine, &city, &options).await {
        match error {
            EngineError::Store(fangkong_engine::StoreError::Closed) => tracing::info!("the live simulation stopped"),
            error => tracing::error!(%error, "the live simulation stopped"),
        }
    }
}

async fn live(engine: &Arc<Engine>, city: &CityMap, options: &LiveOptions) -> Result<(), EngineError> {
    let started = std::time::Instant::now();
    let units = populate(engine, city, options).await?;
    let mut sites = sites(engine, city, options).await?;
    tracing::info!(
        units = units.len(),
        sites = sites.len(),
        seconds = started.elapsed().as_secs_f64(),
        "the live force is on duty"
    );
    let dispatcher = Caller::system("sim-110");
    let travel = engine.config().dispatch.travel.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0x5EED);
    let board: HashMap<String, fangkong_engine::UnitOnBoard> =
        engine.unit_board(&dispatcher).await?.into_iter().map(|u| (u.unit.code.clone(), u)).collect();
    let open: HashMap<i64, fangkong_core::dispatch::Incident> =
        engine.open_incidents(&dispatcher, None).await?.into_iter().map(|i| (i.id, i)).collect();
    let now = engine.now();
    let mut fleet: Vec<SimUnit> = Vec::new();
    for unit in &units {
        let beat = unit.beat.as_ref().and_then(|b| city.areas.get(b)).cloned();
        let on_board = board.get(&unit.code);
        // After a restart the live index is empty: a unit starts again somewhere on its beat.
        let at = match (on_board.and_then(|u| u.position), &beat) {
            (Some((at, _)), _) => at,
            (None, Some(beat)) => {
                let [lon, lat] = point_in(&mut rng, beat);
                LatLon::new(lat, lon).unwrap_or_else(|_| beat_centre(beat))
            }
            (None, None) => continue,
        };
        // Carry on with what the record says the unit was doing.
        let state = on_board.map(|u| u.state.clone());
        let working = state.as_ref().and_then(|s| s.incident.and_then(|id| open.get(&id)).map(|i| (s.status, i)));
        let task = match (state.as_ref().map(|s| s.status), working) {
            (Some(UnitStatus::Dispatched), Some((_, incident))) => {
                Task::Dispatched { incident: incident.id, to: incident.point, ack_at: now }
            }
            (Some(UnitStatus::EnRoute), Some((_, incident))) => {
                Task::EnRoute { incident: incident.id, to: incident.point }
            }
            (Some(UnitStatus::OnScene), Some((_, incident))) => {
                Task::OnScene { incident: incident.id, until: now.plus_seconds(300) }
            }
            (Some(UnitStatus::Returning), _) => Task::Returning { until: now },
            (Some(UnitStatus::OffDuty), _) => {
                engine.set_unit_status(&dispatcher, &unit.code, UnitStatus::Available).await?;
                Task::Patrol
            }
            _ => Task::Patrol,
        };
        fleet.push(SimUnit {
            code: unit.code.clone(),
            tracker: tracker_of(&unit.code),
            mobility: Mobility::of(unit.mode),
            moves_on_patrol: !matches!(unit.mode, PatrolMode::FixedPost | PatrolMode::Checkpoint),
            beat,
            at,
            waypoint: None,
            task,
            reporting: true,
        });
    }
    let index: HashMap<String, usize> = fleet.iter().enumerate().map(|(i, u)| (u.code.clone(), i)).collect();
    let profile = CallProfile { calls_per_day: options.calls_per_day, ..CallProfile::default() };
    let mut arrivals = Arrivals::new(profile, options.seed, engine.now()).peekable();
    let mut caller = Caller110::new(engine, city, options.seed).await?;
    // Incidents waiting for a unit: when the call taker has the details (a call takes
    // 20–90 s to take down), and the disposition they will close with.
    let mut queue: Vec<(i64, Timestamp, &'static str)> = open
        .values()
        .filter(|i| i.status == IncidentStatus::New && i.created_by == "sim-110")
        .map(|i| (i.id, now, "resolved_on_scene"))
        .collect();
    let mut dispositions: HashMap<i64, &'static str> = HashMap::new();
    let mut last = engine.now();
    let mut next_roster = engine.now().plus_seconds(86_400 - 3_600);
    let mut ticks = tokio::time::interval(options.tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut calls, mut sent) = (0u64, 0u64);
    let mut next_report = engine.now().plus_seconds(3_600);
    loop {
        ticks.tick().await;
        let now = engine.now();
        let elapsed_s = (now.millis_since(last) as f64 / 1000.0).max(0.0);
        last = now;
        heartbeats(engine, &mut sites, now, &mut rng).await?;
        if now >= next_roster {
            roster_day(engine, &units, now.plus_seconds(3_600)).await?;
            next_roster = now.plus_seconds(86_400);
        }
        // New calls.
        while arrivals.peek().is_some_and(|at| *at <= now) {
            arrivals.next();
            let Some(place) = caller.place(city) else { continue };
            calls += 1;
            let (source, type_code, closing) = match caller.kind(now) {
                CallKind::Closed { type_code, disposition } => ("110", type_code, Closing::Now(disposition)),
                CallKind::Dispatched { type_code, source, disposition } => {
                    (source, type_code, Closing::AfterWork(disposition))
                }
            };
            let new = NewIncident {
                source: source.into(),
                type_code,
                point: Some(place),
                address: String::new(),
                description: String::new(),
                caller_phone: Some(format!("13{:09}", rng.random_range(0..1_000_000_000u64))),
                ..NewIncident::default()
            };
            let incident = match engine.create_incident(&dispatcher, new).await {
                Ok(created) => created.incident,
                Err(EngineError::OutsideCity { .. }) => continue,
                Err(error) => return Err(error),
            };
            match closing {
                Closing::Now(disposition) => {
                    engine.incident_action(&dispatcher, incident.id, IncidentAction::Close, Some(disposition)).await?;
                }
                Closing::AfterWork(disposition) => {
                    dispositions.insert(incident.id, disposition);
                    queue.push((incident.id, now.plus_seconds(rng.random_range(20..90)), disposition));
                }
            }
        }
        // The dispatcher sends the best free unit to each waiting incident.
        let mut waiting = Vec::new();
        for (id, ready_at, disposition) in std::mem::take(&mut queue) {
            if now < ready_at {
                waiting.push((id, ready_at, disposition));
                continue;
            }
            let best = engine.recommend(&dispatcher, id, Some(1)).await?;
            let Some(best) = best.first().filter(|r| index.contains_key(&r.unit.code)) else {
                waiting.push((id, ready_at, disposition));
                continue;
            };
            match engine.assign_units(&dispatcher, id, std::slice::from_ref(&best.unit.code)).await {
                Ok(incident) => {
                    sent += 1;
                    let unit = &mut fleet[index[&best.unit.code]];
                    let ack_at = now.plus_seconds(rng.random_range(10..50));
                    unit.task = Task::Dispatched { incident: id, to: incident.point, ack_at };
                }
                Err(EngineError::Dispatch(_)) | Err(EngineError::NotFound { .. }) => {
                    waiting.push((id, ready_at, disposition))
                }
                Err(error) => return Err(error),
            }
        }
        queue = waiting;
        // Every unit moves, reports, and works its task.
        for unit in &mut fleet {
            let speed = travel.speed(unit.mobility);
            match unit.task.clone() {
                Task::Patrol | Task::Returning { .. } => {
                    if let Task::Returning { until } = unit.task
                        && now >= until
                    {
                        engine.set_unit_status(&dispatcher, &unit.code, UnitStatus::Available).await?;
                        unit.task = Task::Patrol;
                    }
                    if unit.moves_on_patrol
                        && let Some(beat) = &unit.beat
                    {
                        // Patrols go at a third of the response speed.
                        let target = match unit.waypoint {
                            Some(target) => target,
                            None => {
                                let [lon, lat] = point_in(&mut rng, beat);
                                LatLon::new(lat, lon).unwrap_or(unit.at)
                            }
                        };
                        let (at, arrived) = step_towards(unit.at, target, speed / 3.0 * elapsed_s);
                        unit.at = at;
                        unit.waypoint = (!arrived).then_some(target);
                    }
                }
                Task::Dispatched { incident, to, ack_at } => {
                    if now >= ack_at {
                        engine.set_unit_status(&dispatcher, &unit.code, UnitStatus::EnRoute).await?;
                        unit.task = Task::EnRoute { incident, to };
                    }
                }
                Task::EnRoute { incident, to } => {
                    // Straight at the speed ÷ road factor the recommendation assumes.
                    let (at, arrived) = step_towards(unit.at, to, speed / travel.road_factor * elapsed_s);
                    unit.at = at;
                    if arrived {
                        engine.set_unit_status(&dispatcher, &unit.code, UnitStatus::OnScene).await?;
                        let until = now.plus_seconds(rng.random_range(600..2_400));
                        unit.task = Task::OnScene { incident, until };
                    }
                }
                Task::OnScene { incident, until } => {
                    if now >= until {
                        engine.set_unit_status(&dispatcher, &unit.code, UnitStatus::Returning).await?;
                        let record = engine.incident(&dispatcher, incident).await?;
                        if record.status == IncidentStatus::OnScene && record.assignments.iter().all(|a| !a.is_active())
                        {
                            engine.incident_action(&dispatcher, incident, IncidentAction::Resolve, None).await?;
                            let disposition = dispositions.remove(&incident).unwrap_or("resolved_on_scene");
                            engine
                                .incident_action(&dispatcher, incident, IncidentAction::Close, Some(disposition))
                                .await?;
                        }
                        unit.task = Task::Returning { until: now.plus_seconds(rng.random_range(300..900)) };
                    }
                }
            }
            let mut fix = Fix::new(now, unit.at);
            fix.speed_mps = Some(match unit.task {
                Task::EnRoute { .. } => speed / travel.road_factor,
                Task::OnScene { .. } | Task::Dispatched { .. } => 0.0,
                _ if unit.moves_on_patrol => speed / 3.0,
                _ => 0.0,
            });
            if !unit.reporting {
                continue;
            }
            match engine.ingest_fix(&unit.tracker, fix).await {
                Ok(_) | Err(EngineError::Overloaded) => {}
                Err(error) if refuses_the_device(&error) => {
                    tracing::warn!(
                        unit = %unit.code,
                        tracker = %unit.tracker,
                        %error,
                        "a simulated tracker was refused; its unit stops reporting, the rest of the city goes on"
                    );
                    unit.reporting = false;
                }
                Err(error) => return Err(error),
            }
        }
        if now >= next_report {
            next_report = now.plus_seconds(3_600);
            tracing::info!(calls, sent, waiting = queue.len(), "live simulation: another simulated hour");
        }
    }
}

/// When a call's incident is closed.
enum Closing {
    Now(&'static str),
    AfterWork(&'static str),
}
