//! `fangkong bench reports`: the coverage report over a year of beat presence, and call
//! intake while reports run (issue 24).
//!
//! * **coverage** — the demo city's force (its beats and units, at the demo's force scale),
//!   a year of roster (each unit on its beat 8 hours a day) and a year of beat presence as
//!   the position pipeline would have written it (40–60 minutes of each duty hour inside
//!   the beat, some minutes passing through a neighbouring beat, some minutes off duty),
//!   stored with `Store::record_presence` in batches; the last hours come from real fixes
//!   through `Engine::ingest_fix`, so the open part is read too. Then
//!   `Engine::coverage_report` for every district over the last 31 days and the last 24
//!   hours. Beside it, with `--postgres`, PostgreSQL answering the same report from the same
//!   rows and shifts (primary key (beat, hour, unit), shifts indexed by unit and by beat),
//!   checked to give the same answer for one district.
//! * **intake under report load** — the HTTP server over the same engine: `POST
//!   /api/v1/incidents` from many keep-alive clients, first alone, then while three clients
//!   loop 31-day district coverage reports and one loops the residents export, then alone
//!   again (the ratio is to the mean of the two alone phases: the board of open incidents
//!   grows through the run), with `/healthz` polled every 100 ms throughout. Refusals as busy (`503 reports_busy`) are
//!   counted: the pool runs two reports at once by design.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use fangkong_core::auth::account::NewUser;
use fangkong_core::auth::{Actor, Role};
use fangkong_core::avl::Fix;
use fangkong_core::forces::{ForceCategory, PatrolMode, Shift, Unit};
use fangkong_core::jurisdiction::JurisdictionKind;
use fangkong_core::time::Timestamp;
use fangkong_engine::{Caller, Engine, EngineConfig, NewBeat, NodeWrite};
use fangkong_geo::{Area, LatLon, PreparedArea};
use fangkong_sim::city::CityMap;
use fangkong_sim::population::{
    Building, ForceMember, ForceUnit, Informant, Landlord, Place, PopulationOptions, PopulationSink, Resident, Tenancy,
    Unit as RentalUnit,
};
use fangkong_store::{Presence, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod peer;

use peer::Peer;

use crate::report::{Better, Figure, median, percentile};

const BENCH: &str = "reports";
/// The coverage peer's `work_mem` (PostgreSQL's default is 4MB).
const PEER_WORK_MEM: &str = "64MB";
const PEER: &str = "postgres (same rows and shifts, PK (beat, hour, unit), shifts indexed by unit and by beat, \
     VACUUM ANALYZE after the load, work_mem=64MB; one SQL query)";
const PASSWORD: &str = "a long bench passphrase";
const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// Hours of a shift.
const SHIFT_HOURS: i64 = 8;
/// Presence rows handed to the store at once.
const PRESENCE_BATCH: usize = 20_000;
/// Seconds between two fixes of a tracker in the live hours.
const FIX_EVERY_S: i64 = 30;

#[derive(Clone, Debug)]
pub struct ReportsBenchOptions {
    pub sqlite_dir: Option<std::path::PathBuf>,
    pub postgres_url: Option<String>,
    /// Share of the plan's 50,000-strong force (the demo's default: 0.05).
    pub force_scale: f64,
    /// Days of roster and presence.
    pub days: i64,
    /// The last hours, fed as real fixes instead of written presence.
    pub live_hours: i64,
    /// Scale of the housing registry the export reads (the demo's default: 0.01).
    pub registry_scale: f64,
    /// Timed runs of each district's report.
    pub runs: usize,
    /// Seconds of each intake phase.
    pub seconds: u64,
    /// Intake clients.
    pub clients: usize,
}

impl Default for ReportsBenchOptions {
    fn default() -> ReportsBenchOptions {
        ReportsBenchOptions {
            sqlite_dir: None,
            postgres_url: None,
            force_scale: 0.05,
            days: 365,
            live_hours: 2,
            registry_scale: 0.01,
            runs: 3,
            seconds: 20,
            clients: 50,
        }
    }
}

impl ReportsBenchOptions {
    /// Every code path, no meaningful figures.
    pub fn quick() -> ReportsBenchOptions {
        ReportsBenchOptions {
            force_scale: 0.002,
            days: 3,
            live_hours: 1,
            registry_scale: 0.0002,
            runs: 1,
            seconds: 2,
            clients: 4,
            ..ReportsBenchOptions::default()
        }
    }
}

/// A deterministic stream of numbers.
struct Random(u64);

impl Random {
    fn seeded(seed: u64) -> Random {
        let mut random = Random(seed ^ 0x9E37_79B9_7F4A_7C15);
        random.next();
        random
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 11
    }

    fn unit(&mut self) -> f64 {
        self.next() as f64 / (1u64 << 53) as f64
    }

    /// An integer in `low..=high`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// Bits `from..to` (minutes) of an hour.
fn bits(from: u64, to: u64) -> u64 {
    if to <= from { 0 } else { ((1u64 << to) - 1) & !((1u64 << from) - 1) }
}

/// Collects the generator's teams (and nothing else).
#[derive(Default)]
struct Teams(Vec<ForceUnit>);

impl PopulationSink for Teams {
    fn building(&mut self, _: &Building) {}
    fn unit(&mut self, _: &RentalUnit) {}
    fn resident(&mut self, _: &Resident) {}
    fn landlord(&mut self, _: &Landlord) {}
    fn tenancy(&mut self, _: &Tenancy) {}
    fn force_unit(&mut self, unit: &ForceUnit) {
        self.0.push(unit.clone());
    }
    fn force_member(&mut self, _: &ForceMember) {}
    fn place(&mut self, _: &Place) {}
    fn informant(&mut self, _: &Informant) {}
}

/// The force as the bench registered it.
struct Force {
    units: Vec<Unit>,
    /// Beat codes, sorted; a unit's neighbour is the next beat of its station.
    beats: Vec<String>,
    neighbour: HashMap<String, String>,
    shapes: HashMap<String, Area>,
    districts: Vec<String>,
}

fn tracker_of(unit: &str) -> String {
    format!("RB-{unit}")
}

/// Unit `n`'s shift on `day` (ms of the day's start): 8 hours from 00:00, 08:00 or 16:00,
/// every fourth unit half an hour later, so some hours are only partly on duty.
fn shift_of(n: usize, unit: &Unit, day_start: i64) -> Option<Shift> {
    let start =
        day_start + (n % 3) as i64 * SHIFT_HOURS * HOUR_MS + if n.is_multiple_of(4) { 30 * MINUTE_MS } else { 0 };
    Some(Shift {
        unit: unit.code.clone(),
        beat: unit.beat.clone()?,
        starts_at: Timestamp::from_millis(start),
        ends_at: Timestamp::from_millis(start + SHIFT_HOURS * HOUR_MS),
    })
}

/// The presence rows of one shift's hours before `until`, as the pipeline would have
/// written them: 40–60 minutes of each hour inside the beat (one gap), some of the gap in
/// the neighbouring beat, and now and then a quarter of an hour in the beat after the shift
/// (going back off duty, which the report must not count).
fn presence_of(shift: &Shift, neighbour: Option<&String>, until: i64, random: &mut Random, rows: &mut Vec<Presence>) {
    let first = shift.starts_at.as_millis().div_euclid(HOUR_MS) * HOUR_MS;
    let mut hour = first;
    let mut push = |beat: &str, hour: i64, minutes: u64| {
        if minutes != 0 && hour + HOUR_MS <= until {
            rows.push(Presence {
                beat: beat.into(),
                unit: shift.unit.clone(),
                hour: Timestamp::from_millis(hour),
                minutes,
            });
        }
    };
    while hour < shift.ends_at.as_millis() {
        let inside = random.range(40, 60);
        let gap = 60 - inside;
        let gap_at = random.range(0, inside);
        push(&shift.beat, hour, bits(0, 60) & !bits(gap_at, gap_at + gap));
        if gap > 0
            && random.unit() < 0.5
            && let Some(next) = neighbour
        {
            let through = random.range(1, gap);
            push(next, hour, bits(gap_at, gap_at + through));
        }
        hour += HOUR_MS;
    }
    if random.unit() < 0.1 {
        let from = random.range(0, 44);
        push(&shift.beat, hour, bits(from, from + 15));
    }
}

pub async fn run(options: &ReportsBenchOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    let dir = match &options.sqlite_dir {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .context("creating the benchmark directory")?;
    let path = dir.path().join("reports.db");
    let url = format!("sqlite://{}", path.display());
    let config = EngineConfig::new(fangkong_engine::keys::KeyRing::generate());
    let city = fangkong_sim::city::shenzhen(&fangkong_sim::city::CityOptions::default());

    let started = Instant::now();
    let engine = Engine::open(&url, config.clone()).await?;
    let force = register(&engine, &city, options).await?;
    let now = engine.now().as_millis();
    let live_start = (now - options.live_hours * HOUR_MS).div_euclid(HOUR_MS) * HOUR_MS;
    let first_day = now.div_euclid(DAY_MS) * DAY_MS - options.days * DAY_MS;
    let shifts = roster(&engine, &force, first_day, now).await?;
    registry(&engine, &city, dir.path(), options.registry_scale, first_day).await?;
    engine.shutdown().await;
    eprintln!(
        "bench reports: {} beats, {} units, {} shifts registered in {:.1} s",
        force.beats.len(),
        force.units.len(),
        shifts.len(),
        started.elapsed().as_secs_f64()
    );

    // Presence goes straight to the store, as the history writer would have written it; the
    // same rows go to PostgreSQL when it is measured.
    let peer = match &options.postgres_url {
        Some(admin_url) => Some(Peer::create(admin_url, &shifts).await?),
        None => None,
    };
    let written = write_presence(&url, &force, &shifts, live_start, peer.as_ref()).await?;
    if let Some(peer) = &peer {
        peer.settle().await?;
    }
    let engine = Engine::open(&url, config).await?;
    let fixes = live_fixes(&engine, &force, &shifts, live_start).await?;
    engine.store_settled().await;
    eprintln!(
        "bench reports: {written} presence rows written, {fixes} live fixes ingested; {:.1} s in all",
        started.elapsed().as_secs_f64()
    );

    let result = async {
        coverage(&engine, &force, peer.as_ref(), live_start, options, out).await?;
        under_load(&engine, &force, options, out).await
    }
    .await;
    engine.shutdown().await;
    if let Some(peer) = peer {
        peer.schema.drop().await;
    }
    result?;
    // Counted with the engine closed: the store's connections are gone.
    let rows = presence_rows(&path)?;
    Figure::new(BENCH, "beat_presence_rows", rows as f64, "rows", Better::Higher).print(out)?;
    Ok(())
}

fn presence_rows(path: &std::path::Path) -> anyhow::Result<i64> {
    let db = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok(db.query_row("SELECT count(*) FROM beat_presence", [], |row| row.get(0))?)
}

/// The city, the demo's force (beats, units, a tracker each) and the accounts.
async fn register(engine: &Engine, city: &CityMap, options: &ReportsBenchOptions) -> anyhow::Result<Force> {
    let system = Caller::system("bench");
    let nodes: Vec<NodeWrite> =
        city.nodes.iter().cloned().map(|node| NodeWrite { shape: city.areas.get(&node.code).cloned(), node }).collect();
    engine.add_jurisdictions(&system, nodes).await?;
    let mut teams = Teams::default();
    let population = PopulationOptions { seed: 2003, scale: options.force_scale, ..PopulationOptions::default() };
    fangkong_sim::population::generate_force(city, &population, &mut teams);
    let mut stations: BTreeMap<String, String> = BTreeMap::new();
    for team in teams.0.iter().filter(|t| city.areas.contains_key(&t.beat)) {
        stations.insert(team.beat.clone(), team.station.clone());
    }
    let new_beats: Vec<NewBeat> = stations
        .iter()
        .map(|(code, station)| NewBeat {
            code: code.clone(),
            station: station.clone(),
            name: code.clone(),
            shape: city.areas.get(code).cloned(),
            grids: Vec::new(),
        })
        .collect();
    engine.save_beats(&system, new_beats).await?;
    // The neighbour: the next beat of the same station (police districts of a station
    // touch), else none.
    let beats: Vec<String> = stations.keys().cloned().collect();
    let mut neighbour = HashMap::new();
    for pair in beats.windows(2) {
        if stations[&pair[0]] == stations[&pair[1]] {
            neighbour.insert(pair[0].clone(), pair[1].clone());
        }
    }
    let units: Vec<Unit> = teams
        .0
        .iter()
        .filter(|t| stations.contains_key(&t.beat))
        .map(|team| {
            let mode = PatrolMode::parse(team.mode.as_str()).unwrap_or(PatrolMode::Foot);
            Unit {
                code: team.id.clone(),
                call_sign: team.call_sign.clone(),
                station: team.station.clone(),
                category: ForceCategory::parse(team.category.as_str()).unwrap_or(ForceCategory::Volunteer),
                mode,
                equipment: Vec::new(),
                beat: Some(team.beat.clone()),
                capabilities: Vec::new(),
            }
        })
        .collect();
    for chunk in units.chunks(10_000) {
        engine.save_units(&system, chunk.to_vec()).await?;
    }
    for chunk in units.chunks(128) {
        let jobs = chunk.iter().map(|unit| {
            let system = system.clone();
            async move {
                let device = fangkong_sim::live::unit_tracker(engine, unit, tracker_of(&unit.code));
                engine.add_device(&system, device).await
            }
        });
        for result in futures_util::future::join_all(jobs).await {
            result?;
        }
    }
    for (username, role, jurisdiction) in
        [("dispatcher", Role::Dispatcher, "440300"), ("officer", Role::CommunityOfficer, "440304")]
    {
        let user = NewUser {
            username: username.into(),
            display_name: username.into(),
            role,
            jurisdiction: jurisdiction.into(),
        };
        engine.create_user(&system, user, PASSWORD).await?;
    }
    let districts =
        city.nodes.iter().filter(|n| n.kind == JurisdictionKind::District).map(|n| n.code.clone()).collect();
    let shapes = beats.iter().filter_map(|b| Some((b.clone(), city.areas.get(b)?.clone()))).collect();
    Ok(Force { units, beats, neighbour, shapes, districts })
}

/// A shift a day for every unit from `first_day` until `now`, through the engine's roster
/// command (a day at a time: each call checks its shifts against those already stored).
async fn roster(engine: &Engine, force: &Force, first_day: i64, now: i64) -> anyhow::Result<Vec<Shift>> {
    let system = Caller::system("bench");
    let mut all = Vec::new();
    let mut day = first_day;
    while day <= now {
        let shifts: Vec<Shift> = force
            .units
            .iter()
            .enumerate()
            .filter_map(|(n, unit)| shift_of(n, unit, day))
            .filter(|s| s.starts_at.as_millis() < now)
            .collect();
        for chunk in shifts.chunks(10_000) {
            engine.add_shifts(&system, chunk.to_vec()).await?;
        }
        all.extend(shifts);
        day += DAY_MS;
    }
    Ok(all)
}

/// The synthetic registry (properties, residents, tenancies) imported as the demo does,
/// for the residents export.
async fn registry(
    engine: &Engine,
    city: &CityMap,
    dir: &std::path::Path,
    scale: f64,
    first_day: i64,
) -> anyhow::Result<()> {
    use fangkong_engine::registry::{ImportFormat, ImportKind};
    let files = dir.join("registry");
    std::fs::create_dir_all(&files)?;
    let options = PopulationOptions { scale, as_of_day: first_day.div_euclid(DAY_MS), ..PopulationOptions::default() };
    let mut sink = fangkong_sim::registry_files::RegistryFiles::new(options.as_of_day);
    fangkong_sim::population::generate(city, &options, &mut sink, &mut |_| {});
    let written = sink.write(&files)?;
    let system = Caller::system("bench").with_purpose("bench registry import");
    for (kind, name) in [
        (ImportKind::Properties, "properties.csv"),
        (ImportKind::Residents, "residents.csv"),
        (ImportKind::Tenancies, "tenancies.csv"),
    ] {
        let path = files.join(name);
        let size = std::fs::metadata(&path)?.len();
        let file = Box::new(std::io::BufReader::new(std::fs::File::open(&path)?));
        engine
            .import_registry(&system, kind, ImportFormat::Csv, file, Some(size), Box::new(|_| {}))
            .await
            .with_context(|| format!("importing {}", path.display()))?;
    }
    std::fs::remove_dir_all(&files)?;
    eprintln!("bench reports: registry of {} residents imported", written.residents);
    Ok(())
}

/// Writes a year of presence into the SQLite file (the engine closed) and into the peer.
async fn write_presence(
    url: &str,
    force: &Force,
    shifts: &[Shift],
    live_start: i64,
    peer: Option<&Peer>,
) -> anyhow::Result<u64> {
    let store = Store::open(url).await?;
    let started = Instant::now();
    let mut written = 0u64;
    let mut batch = Vec::with_capacity(PRESENCE_BATCH + 64);
    let flush = async |batch: &mut Vec<Presence>| -> anyhow::Result<()> {
        if let Some(peer) = peer {
            peer.load_presence(batch).await?;
        }
        store.record_presence(std::mem::take(batch)).await?;
        Ok(())
    };
    for (n, shift) in shifts.iter().enumerate() {
        let mut random = Random::seeded(n as u64);
        presence_of(shift, force.neighbour.get(&shift.beat), live_start, &mut random, &mut batch);
        if batch.len() >= PRESENCE_BATCH {
            written += batch.len() as u64;
            flush(&mut batch).await?;
        }
    }
    written += batch.len() as u64;
    flush(&mut batch).await?;
    store.close().await;
    eprintln!("bench reports: presence written in {:.1} s", started.elapsed().as_secs_f64());
    Ok(written)
}

/// A random point inside `shape`.
fn point_in(shape: &Area, prepared: &PreparedArea, random: &mut Random) -> anyhow::Result<LatLon> {
    let bbox = shape.bbox();
    for _ in 0..10_000 {
        let lon = bbox.min_lon + random.unit() * (bbox.max_lon - bbox.min_lon);
        let lat = bbox.min_lat + random.unit() * (bbox.max_lat - bbox.min_lat);
        if prepared.contains(lon, lat) {
            return Ok(LatLon::new(lat, lon)?);
        }
    }
    anyhow::bail!("no point found inside a beat")
}

/// Fixes every 30 s from `live_start` until now for each unit on duty, wandering a little
/// around a point of its beat: the pipeline marks their presence as they arrive.
async fn live_fixes(engine: &Engine, force: &Force, shifts: &[Shift], live_start: i64) -> anyhow::Result<u64> {
    let now = engine.now().as_millis();
    let mut walkers = Vec::new();
    for (n, shift) in shifts.iter().enumerate() {
        if shift.ends_at.as_millis() <= live_start {
            continue;
        }
        let Some(shape) = force.shapes.get(&shift.beat) else { continue };
        let prepared = PreparedArea::new(shape);
        let mut random = Random::seeded(n as u64 ^ 0xF1F1);
        let home = point_in(shape, &prepared, &mut random)?;
        walkers.push((shift, prepared, home, home, random));
    }
    let mut ingested = 0u64;
    let mut at = live_start;
    while at < now {
        for (shift, prepared, home, point, random) in &mut walkers {
            if !(shift.starts_at.as_millis()..shift.ends_at.as_millis()).contains(&at) {
                continue;
            }
            // A step of up to ~50 m; back home if it would leave the beat.
            let lat = point.lat() + (random.unit() - 0.5) * 0.0009;
            let lon = point.lon() + (random.unit() - 0.5) * 0.0009;
            *point = if prepared.contains(lon, lat) { LatLon::new(lat, lon)? } else { *home };
            engine.ingest_fix(&tracker_of(&shift.unit), Fix::new(Timestamp::from_millis(at), *point)).await?;
            ingested += 1;
        }
        at += FIX_EVERY_S * 1_000;
    }
    Ok(ingested)
}

// ---- the coverage report ------------------------------------------------------------------

async fn dispatcher(engine: &Engine) -> anyhow::Result<(String, Caller)> {
    let login = engine.login("dispatcher", PASSWORD, None, None).await?;
    let caller = Caller::new(Actor::User(engine.authenticate(&login.token)?.actor));
    Ok((login.token, caller))
}

/// (beat, hour) → (covered, rostered) minutes, leaving out hours with neither.
type Answer = BTreeMap<(String, i64), (u32, u32)>;

async fn coverage(
    engine: &Engine,
    force: &Force,
    peer: Option<&Peer>,
    live_start: i64,
    options: &ReportsBenchOptions,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let (_, caller) = dispatcher(engine).await?;
    let now = engine.now();
    for (name, window_ms) in [("31d", 31 * DAY_MS), ("24h", DAY_MS)] {
        let from = now.plus_millis(-window_ms);
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let mut beat_hours = 0usize;
        for _ in 0..options.runs {
            for district in &force.districts {
                let at = Instant::now();
                let report = engine.coverage_report(&caller, district, from, now).await?;
                let elapsed = at.elapsed().as_secs_f64() * 1e3;
                beat_hours = beat_hours.max(report.iter().map(|b| b.hours.len()).sum());
                ours.push(elapsed);
                eprintln!("bench reports: coverage {name} {district}: {} beats, {elapsed:.1} ms", report.len());
                if let Some(peer) = peer {
                    let beats = beats_within(engine, force, district);
                    let at = Instant::now();
                    peer.coverage(&beats, from.as_millis(), now.as_millis()).await?;
                    theirs.push(at.elapsed().as_secs_f64() * 1e3);
                }
            }
        }
        eprintln!("bench reports: coverage {name}: at most {beat_hours} beat-hours in a district's report");
        for (metric, value, peer_value) in [
            ("median", median(&ours), (!theirs.is_empty()).then(|| median(&theirs))),
            (
                "max",
                ours.iter().copied().fold(0.0, f64::max),
                (!theirs.is_empty()).then(|| theirs.iter().copied().fold(0.0, f64::max)),
            ),
        ] {
            let figure = Figure::new(BENCH, format!("coverage_{name}_district_{metric}"), value, "ms", Better::Lower);
            match peer_value {
                Some(peer_value) => figure.with_peer(PEER, peer_value),
                None => figure.without_peer("no PostgreSQL given (--postgres)"),
            }
            .print(out)?;
        }
    }
    if let Some(peer) = peer {
        // Over hours that the written presence alone covers (the live hours' presence came
        // from fixes, which only the engine saw), for the first district with beats.
        let to = Timestamp::from_millis(live_start);
        let from = to.plus_millis(-30 * DAY_MS);
        let district = force
            .districts
            .iter()
            .find(|d| !beats_within(engine, force, d).is_empty())
            .context("no district with beats")?;
        let report = engine.coverage_report(&caller, district, from, to).await?;
        let mut ours = Answer::new();
        for beat in report {
            for (hour, h) in beat.hours {
                if h.covered_minutes > 0 || h.rostered_minutes > 0 {
                    ours.insert((beat.beat.clone(), hour.as_millis()), (h.covered_minutes, h.rostered_minutes));
                }
            }
        }
        let theirs = peer.coverage(&beats_within(engine, force, district), from.as_millis(), to.as_millis()).await?;
        let differ = ours.iter().filter(|(k, v)| theirs.get(*k) != Some(v)).count()
            + theirs.keys().filter(|k| !ours.contains_key(*k)).count();
        eprintln!(
            "bench reports: {district} over 30 days: {} beat-hours with minutes, {differ} differ from PostgreSQL's",
            ours.len()
        );
        anyhow::ensure!(differ == 0, "PostgreSQL's coverage of {district} differs from ours in {differ} beat-hours");
        Figure::new(BENCH, "coverage_peer_beat_hours_compared", ours.len() as f64, "beat-hours", Better::Higher)
            .print(out)?;
    }
    Ok(())
}

/// The beats whose station lies in `district` (what the report covers).
fn beats_within(engine: &Engine, force: &Force, district: &str) -> Vec<String> {
    let stations: HashMap<&str, &str> =
        force.units.iter().filter_map(|u| Some((u.beat.as_deref()?, u.station.as_str()))).collect();
    force
        .beats
        .iter()
        .filter(|b| {
            stations
                .get(b.as_str())
                .and_then(|s| engine.chain_of(s))
                .is_some_and(|c| c.get(JurisdictionKind::District) == Some(district))
        })
        .cloned()
        .collect()
}

// ---- intake under report load -------------------------------------------------------------

/// An answer read off a keep-alive connection: its status, its error code if any, and how
/// many body bytes came.
struct Answered {
    status: u16,
    body: Vec<u8>,
}

/// A minimal HTTP/1.1 client over one keep-alive connection (content-length and chunked
/// bodies), so the load generator costs little beside the server on the same cores.
struct Connection {
    stream: tokio::net::TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    async fn open(address: SocketAddr) -> anyhow::Result<Connection> {
        let stream = tokio::net::TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(Connection { stream, buffer: Vec::with_capacity(16_384) })
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        // Straight into the buffer: no chunk on the stack (it would bloat every future).
        self.buffer.reserve(16_384);
        let n = self.stream.read_buf(&mut self.buffer).await?;
        anyhow::ensure!(n > 0, "the server closed the connection");
        Ok(())
    }

    /// Takes a line (without its CRLF) from the buffer, reading more as needed.
    async fn line(&mut self) -> anyhow::Result<String> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
                self.buffer.drain(..end + 2);
                return Ok(line);
            }
            self.fill().await?;
        }
    }

    async fn take(&mut self, length: usize) -> anyhow::Result<Vec<u8>> {
        while self.buffer.len() < length {
            self.fill().await?;
        }
        Ok(self.buffer.drain(..length).collect())
    }

    async fn request(&mut self, method: &str, path: &str, headers: &str, body: &str) -> anyhow::Result<Answered> {
        let request =
            format!("{method} {path} HTTP/1.1\r\nhost: bench\r\n{headers}content-length: {}\r\n\r\n{body}", body.len());
        self.stream.write_all(request.as_bytes()).await?;
        let status_line = self.line().await?;
        let status: u16 = status_line.split(' ').nth(1).context("no status")?.parse()?;
        let (mut length, mut chunked) = (0usize, false);
        loop {
            let line = self.line().await?.to_ascii_lowercase();
            if line.is_empty() {
                break;
            }
            if let Some(value) = line.strip_prefix("content-length:") {
                length = value.trim().parse()?;
            } else if line.starts_with("transfer-encoding:") && line.contains("chunked") {
                chunked = true;
            }
        }
        let body = if chunked {
            let mut body = Vec::new();
            loop {
                let size = usize::from_str_radix(self.line().await?.split(';').next().unwrap_or("").trim(), 16)?;
                let mut piece = self.take(size + 2).await?;
                piece.truncate(size);
                body.append(&mut piece);
                if size == 0 {
                    break;
                }
            }
            body
        } else {
            self.take(length).await?
        };
        Ok(Answered { status, body })
    }
}

/// RFC 3339 UTC of a Unix time in milliseconds (whole seconds).
fn rfc3339(millis: i64) -> String {
    let seconds = millis.div_euclid(1_000);
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Civil from days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3_600, rest % 3_600 / 60, rest % 60)
}

/// What one phase of intake measured.
#[derive(Default)]
struct Intake {
    latencies_us: Vec<f64>,
    seconds: f64,
}

/// What the report loopers saw.
#[derive(Default, Debug)]
struct ReportTally {
    completed: u64,
    busy: u64,
    timed_out: u64,
    failed: u64,
    latencies_ms: Vec<f64>,
}

/// What the `/healthz` poller saw.
#[derive(Default, Debug)]
struct Health {
    polls: u64,
    failures: u64,
    max_ms: f64,
}

/// Upper bounds on every loop besides its time: no phase can run away.
const MAX_REQUESTS_PER_CLIENT: usize = 1_000_000;
const MAX_REPORTS_PER_CLIENT: usize = 10_000;
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

async fn intake_client(
    address: SocketAddr,
    token: String,
    client: usize,
    points: Arc<Vec<LatLon>>,
    deadline: Instant,
) -> anyhow::Result<Vec<f64>> {
    let mut connection = Connection::open(address).await?;
    let headers = format!("authorization: Bearer {token}\r\ncontent-type: application/json\r\n");
    let mut latencies = Vec::new();
    let mut random = Random::seeded(client as u64 ^ 0x110);
    while Instant::now() < deadline && latencies.len() < MAX_REQUESTS_PER_CLIENT {
        let point = points[random.next() as usize % points.len()];
        let body = format!(
            r#"{{"source":"110","type_code":"020100","lat":{:.6},"lon":{:.6},"address":"bench {client}","caller_phone":"13900000000"}}"#,
            point.lat(),
            point.lon()
        );
        let at = Instant::now();
        let answer = connection.request("POST", "/api/v1/incidents", &headers, &body).await?;
        latencies.push(at.elapsed().as_secs_f64() * 1e6);
        anyhow::ensure!(answer.status == 201, "intake: {} {}", answer.status, String::from_utf8_lossy(&answer.body));
    }
    Ok(latencies)
}

/// Loops one report until the deadline, counting what came back.
async fn report_client(
    address: SocketAddr,
    headers: String,
    path: String,
    deadline: Instant,
) -> anyhow::Result<ReportTally> {
    let mut connection = Connection::open(address).await?;
    let mut tally = ReportTally::default();
    let mut asked = 0;
    while Instant::now() < deadline && asked < MAX_REPORTS_PER_CLIENT {
        asked += 1;
        let at = Instant::now();
        let answer = connection.request("GET", &path, &headers, "").await?;
        let body = String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)]).into_owned();
        match answer.status {
            200 => {
                tally.completed += 1;
                tally.latencies_ms.push(at.elapsed().as_secs_f64() * 1e3);
            }
            503 if body.contains("reports_busy") => {
                tally.busy += 1;
                // A client told to come back later does not hammer the pool.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            503 if body.contains("report_timeout") => tally.timed_out += 1,
            status => {
                tally.failed += 1;
                eprintln!("bench reports: {path}: {status} {body}");
            }
        }
    }
    Ok(tally)
}

/// Polls `/healthz` every 100 ms until the deadline; a poll fails on an error, a status
/// other than 200, or no answer within 5 s.
async fn health_poller(address: SocketAddr, deadline: Instant) -> Health {
    let mut health = Health::default();
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut connection: Option<Connection> = None;
    while Instant::now() < deadline {
        ticks.tick().await;
        health.polls += 1;
        let at = Instant::now();
        let answer = tokio::time::timeout(HEALTH_TIMEOUT, async {
            let mut open = match connection.take() {
                Some(open) => open,
                None => Connection::open(address).await?,
            };
            let answer = open.request("GET", "/healthz", "", "").await?;
            connection = Some(open);
            anyhow::Ok(answer.status)
        })
        .await;
        health.max_ms = health.max_ms.max(at.elapsed().as_secs_f64() * 1e3);
        if !matches!(answer, Ok(Ok(200))) {
            health.failures += 1;
            connection = None;
        }
    }
    health
}

/// Points inside beats, where calls come from.
fn call_points(force: &Force) -> anyhow::Result<Vec<LatLon>> {
    let mut random = Random::seeded(0xCA11);
    let mut points = Vec::new();
    // Calls from anywhere in the first 500 beats, forty places in each: a call repeats
    // another's place now and then (the duplicate rule's work), not every time.
    for beat in force.beats.iter().take(500) {
        let shape = &force.shapes[beat];
        let prepared = PreparedArea::new(shape);
        for _ in 0..40 {
            points.push(point_in(shape, &prepared, &mut random)?);
        }
    }
    anyhow::ensure!(!points.is_empty(), "no beats");
    Ok(points)
}

async fn intake_phase(
    address: SocketAddr,
    token: &str,
    points: &Arc<Vec<LatLon>>,
    options: &ReportsBenchOptions,
    deadline: Instant,
) -> anyhow::Result<Intake> {
    let started = Instant::now();
    let clients: Vec<_> = (0..options.clients)
        .map(|client| tokio::spawn(intake_client(address, token.to_string(), client, Arc::clone(points), deadline)))
        .collect();
    let mut intake = Intake::default();
    for client in clients {
        intake.latencies_us.append(&mut client.await??);
    }
    intake.seconds = started.elapsed().as_secs_f64();
    Ok(intake)
}

async fn under_load(
    engine: &Arc<Engine>,
    force: &Force,
    options: &ReportsBenchOptions,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let (token, _) = dispatcher(engine).await?;
    let officer = engine.login("officer", PASSWORD, None, None).await?.token;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let app = fangkong_server::router(fangkong_server::AppState::new(Arc::clone(engine)));
    let server =
        tokio::spawn(
            async move { axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await },
        );
    let points = Arc::new(call_points(force)?);
    let phase = Duration::from_secs(options.seconds);

    let deadline = Instant::now() + phase;
    let health = tokio::spawn(health_poller(address, deadline));
    let alone = intake_phase(address, &token, &points, options, deadline).await?;
    let health_alone = health.await?;

    // Three districts with the most beats, each looped by its own client.
    let mut districts: Vec<(usize, &String)> =
        force.districts.iter().map(|d| (beats_within(engine, force, d).len(), d)).collect();
    districts.sort_by_key(|d| std::cmp::Reverse(d.0));
    let now = engine.now().as_millis();
    let window = format!("from={}&to={}", rfc3339(now - 31 * DAY_MS), rfc3339(now));
    let deadline = Instant::now() + phase;
    let health = tokio::spawn(health_poller(address, deadline));
    let coverage_headers = format!("authorization: Bearer {token}\r\n");
    let mut reports: Vec<_> = districts
        .iter()
        .take(3)
        .map(|(_, district)| {
            let path = format!("/api/v1/coverage?within={district}&{window}");
            tokio::spawn(report_client(address, coverage_headers.clone(), path, deadline))
        })
        .collect();
    let export_headers = format!("authorization: Bearer {officer}\r\nx-purpose: bench export\r\n");
    let export =
        tokio::spawn(report_client(address, export_headers, "/api/v1/registry/export/residents".into(), deadline));
    let loaded = intake_phase(address, &token, &points, options, deadline).await?;
    let mut coverage = ReportTally::default();
    for report in reports.drain(..) {
        let mut tally = report.await??;
        coverage.completed += tally.completed;
        coverage.busy += tally.busy;
        coverage.timed_out += tally.timed_out;
        coverage.failed += tally.failed;
        coverage.latencies_ms.append(&mut tally.latencies_ms);
    }
    let export = export.await??;
    let health_loaded = health.await?;
    // Intake alone once more: the board of open incidents grows through every phase (the
    // duplicate rule looks at more of it), so the loaded phase is compared with the mean of
    // the phases before and after it, not only with the smaller board before it.
    let deadline = Instant::now() + phase;
    let health = tokio::spawn(health_poller(address, deadline));
    let after = intake_phase(address, &token, &points, options, deadline).await?;
    let health_after = health.await?;
    server.abort();
    for (name, tally) in [("coverage", &coverage), ("export", &export)] {
        eprintln!(
            "bench reports: {name} loopers: {} completed (median {:.1} ms), {} busy, {} timed out, {} failed",
            tally.completed,
            if tally.latencies_ms.is_empty() { 0.0 } else { median(&tally.latencies_ms) },
            tally.busy,
            tally.timed_out,
            tally.failed
        );
    }
    eprintln!("bench reports: /healthz alone {health_alone:?}, under reports {health_loaded:?}");

    let p99_before = percentile(&alone.latencies_us, 99.0) / 1e3;
    let p99_after = percentile(&after.latencies_us, 99.0) / 1e3;
    let p99_alone = (p99_before + p99_after) / 2.0;
    let p99_loaded = percentile(&loaded.latencies_us, 99.0) / 1e3;
    eprintln!(
        "bench reports: intake alone p99 {p99_before:.1} ms before, {p99_after:.1} ms after; /healthz after {health_after:?}"
    );
    let figures = [
        ("intake_alone_rate", alone.latencies_us.len() as f64 / alone.seconds, "incidents/s", Better::Higher),
        ("intake_alone_p50", percentile(&alone.latencies_us, 50.0) / 1e3, "ms", Better::Lower),
        ("intake_alone_p99", p99_before, "ms", Better::Lower),
        ("intake_alone_after_rate", after.latencies_us.len() as f64 / after.seconds, "incidents/s", Better::Higher),
        ("intake_alone_after_p99", p99_after, "ms", Better::Lower),
        ("intake_under_reports_rate", loaded.latencies_us.len() as f64 / loaded.seconds, "incidents/s", Better::Higher),
        ("intake_under_reports_p50", percentile(&loaded.latencies_us, 50.0) / 1e3, "ms", Better::Lower),
        ("intake_under_reports_p99", p99_loaded, "ms", Better::Lower),
        (
            "intake_p99_under_reports_over_alone",
            p99_loaded / p99_alone,
            "x (over the mean of before and after)",
            Better::Lower,
        ),
        ("intake_p99_under_reports_over_alone_before", p99_loaded / p99_before, "x", Better::Lower),
        ("coverage_reports_completed", coverage.completed as f64, "reports", Better::Higher),
        ("coverage_reports_busy", coverage.busy as f64, "refusals", Better::Lower),
        ("coverage_reports_timed_out", coverage.timed_out as f64, "reports", Better::Lower),
        ("coverage_reports_failed", coverage.failed as f64, "reports", Better::Lower),
        (
            "coverage_report_http_median",
            if coverage.latencies_ms.is_empty() { 0.0 } else { median(&coverage.latencies_ms) },
            "ms",
            Better::Lower,
        ),
        ("exports_completed", export.completed as f64, "exports", Better::Higher),
        ("exports_busy", export.busy as f64, "refusals", Better::Lower),
        ("exports_failed", (export.failed + export.timed_out) as f64, "exports", Better::Lower),
        ("healthz_alone_max", health_alone.max_ms, "ms", Better::Lower),
        ("healthz_under_reports_max", health_loaded.max_ms, "ms", Better::Lower),
        ("healthz_under_reports_polls", health_loaded.polls as f64, "polls", Better::Higher),
        (
            "healthz_under_reports_failures",
            (health_loaded.failures + health_alone.failures + health_after.failures) as f64,
            "polls",
            Better::Lower,
        ),
    ];
    for (metric, value, unit, better) in figures {
        Figure::new(BENCH, metric, value, unit, better).print(out)?;
    }
    anyhow::ensure!(coverage.failed == 0 && export.failed == 0, "reports failed under load");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_and_dates() {
        assert_eq!(bits(0, 60), (1u64 << 60) - 1);
        assert_eq!(bits(3, 5), 0b11000);
        assert_eq!(bits(5, 5), 0);
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_764_288_000_000), "2025-11-28T00:00:00Z");
    }
}
