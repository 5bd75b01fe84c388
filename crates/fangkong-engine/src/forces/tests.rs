//! The force registry through the engine: beats, units, the roster, coverage from real
//! tracks, and members as sealed, audited personal data.

use fangkong_core::auth::{DeviceKind, Role};
use fangkong_core::avl::Fix;
use fangkong_core::event::Event;
use fangkong_core::forces::{PatrolMode, Shift};
use fangkong_geo::{Crs, LatLon};

use super::*;
use crate::NewDevice;
use crate::boundaries::BoundaryImport;
use crate::test_support::{FUTIAN, Fixture, LUOHU, T0};

const STATION: &str = "PS440304-01";

fn square(x: f64, y: f64, size: f64) -> Area {
    Area::from_rings(vec![vec![vec![[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]]]).unwrap()
}

fn drawn(code: &str, shape: Area) -> NewBeat {
    NewBeat {
        code: code.into(),
        station: STATION.into(),
        name: format!("巡区{code}"),
        shape: Some(shape),
        grids: Vec::new(),
    }
}

fn unit(code: &str, beat: Option<&str>) -> Unit {
    Unit {
        code: code.into(),
        call_sign: format!("园岭{code}"),
        station: STATION.into(),
        category: ForceCategory::Police,
        mode: PatrolMode::Foot,
        equipment: vec!["对讲机".into()],
        beat: beat.map(Into::into),
        capabilities: Vec::new(),
    }
}

fn system() -> Caller {
    Caller::system("test")
}

#[tokio::test]
async fn beats_are_drawn_or_made_of_grids_under_a_station() {
    let fixture = Fixture::new().await;
    let engine = &fixture.engine;
    // Two grids side by side, imported as boundaries; a beat made of both is their union.
    let file = serde_json::json!({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": "440304001001G01"},
         "geometry": {"type": "Polygon", "coordinates": [[[114.0, 22.5], [114.01, 22.5], [114.01, 22.51], [114.0, 22.51], [114.0, 22.5]]]}},
        {"type": "Feature", "properties": {"code": "440304001001G02", "name_zh": "第二网格", "parent": "440304001001"},
         "geometry": {"type": "Polygon", "coordinates": [[[114.01, 22.5], [114.02, 22.5], [114.02, 22.51], [114.01, 22.51], [114.01, 22.5]]]}},
    ]});
    let options = BoundaryImport::new(JurisdictionKind::Grid, Crs::Wgs84);
    engine.import_boundaries(&system(), &serde_json::to_vec(&file).unwrap(), &options).await.unwrap();
    let grids = NewBeat {
        code: "B1".into(),
        station: STATION.into(),
        name: "园东巡区".into(),
        shape: None,
        grids: vec!["440304001001G01".into(), "440304001001G02".into()],
    };
    let beat = engine.save_beat(&system(), grids).await.unwrap();
    let area = beat.shape.area_m2();
    let expected = square(114.0, 22.5, 0.01).area_m2() + square(114.01, 22.5, 0.01).area_m2();
    assert!((area - expected).abs() < expected * 1e-6, "the union: {area} vs {expected}");
    assert!(beat.shape.contains(114.015, 22.505) && beat.shape.contains(114.005, 22.505));
    assert_eq!(beat.shape.polygons.len(), 1, "the shared edge dissolved");

    // Not under a police station; no shape; an unknown grid.
    let wrong = NewBeat { station: FUTIAN.into(), ..drawn("B2", square(114.0, 22.5, 0.01)) };
    assert!(matches!(engine.save_beat(&system(), wrong).await, Err(EngineError::Invalid { field: "station", .. })));
    let empty = NewBeat { shape: None, ..drawn("B2", square(114.0, 22.5, 0.01)) };
    assert!(matches!(engine.save_beat(&system(), empty).await, Err(EngineError::Invalid { field: "shape", .. })));
    let unknown = NewBeat { shape: None, grids: vec!["nope".into()], ..drawn("B2", square(114.0, 22.5, 0.01)) };
    assert!(matches!(engine.save_beat(&system(), unknown).await, Err(EngineError::NotFound { entity: "grid", .. })));

    // Only commanders and administrators over the station.
    fixture.add_user("cmd.futian", Role::Commander, FUTIAN).await;
    fixture.add_user("cmd.luohu", Role::Commander, LUOHU).await;
    fixture.add_user("disp", Role::Dispatcher, FUTIAN).await;
    let futian = fixture.caller("cmd.futian").await;
    assert!(engine.save_beat(&futian, drawn("B3", square(114.0, 22.52, 0.01))).await.is_ok());
    let luohu = fixture.caller("cmd.luohu").await;
    assert!(matches!(
        engine.save_beat(&luohu, drawn("B4", square(114.0, 22.52, 0.01))).await,
        Err(EngineError::Denied(_))
    ));
    let dispatcher = fixture.caller("disp").await;
    assert!(matches!(
        engine.save_beat(&dispatcher, drawn("B4", square(114.0, 22.52, 0.01))).await,
        Err(EngineError::Denied(_))
    ));
    assert_eq!(engine.beats(&dispatcher).await.unwrap().len(), 2, "but a dispatcher reads them");
    assert!(engine.beats(&fixture.caller("cmd.luohu").await).await.unwrap().is_empty(), "outside Luohu");
}

/// Every change of the force registry is an event (the live state of the features that
/// follow it is applied from it); member events name no one.
#[tokio::test]
async fn every_change_of_the_force_is_an_event_and_members_stay_nameless() {
    let fixture = Fixture::new().await;
    let engine = &fixture.engine;
    let mut events = engine.bus().subscribe();
    engine.save_beat(&system(), drawn("B1", square(114.0, 22.5, 0.01))).await.unwrap();
    engine.save_unit(&system(), unit("U1", Some("B1"))).await.unwrap();
    let start = T0.plus_seconds(3_600);
    let shift = Shift { unit: "U1".into(), beat: "B1".into(), starts_at: start, ends_at: start.plus_seconds(3_600) };
    let ids = engine.add_shifts(&system(), vec![shift.clone()]).await.unwrap();
    engine.delete_shift(&system(), ids[0]).await.unwrap();
    let added = engine.add_member(&system(), member("王小明", "11010519491231002X")).await.unwrap();
    engine.set_member_active(&system(), added.id, false).await.unwrap();
    let mut seen = Vec::new();
    while let Ok(envelope) = events.try_recv() {
        seen.push(envelope.event.clone());
    }
    let names: Vec<&str> = seen.iter().map(Event::name).collect();
    assert_eq!(
        names,
        ["beat.saved", "unit.saved", "roster.added", "roster.deleted", "member.changed", "member.changed"]
    );
    assert!(matches!(&seen[1], Event::UnitsSaved(units) if units[0].beat.as_deref() == Some("B1")));
    assert_eq!(seen[2], Event::ShiftsAdded(vec![(ids[0], shift.clone())]));
    assert_eq!(seen[3], Event::ShiftDeleted { id: ids[0], shift });
    assert!(matches!(seen[5], Event::MemberChanged { active: false, .. }));
    let text = format!("{seen:?}");
    assert!(!text.contains("王小明") && !text.contains("11010519491231002X"), "no name or number: {text}");
    // The unit reached dispatch through its event: it is on the board (off duty).
    assert!(engine.unit_board(&system()).await.unwrap().iter().any(|u| u.unit.code == "U1"));
}

#[tokio::test]
async fn units_and_the_roster_are_checked_and_survive_a_restart() {
    let fixture = Fixture::new().await;
    let engine = &fixture.engine;
    engine.save_beat(&system(), drawn("B1", square(114.0, 22.5, 0.01))).await.unwrap();
    assert!(matches!(
        engine.save_unit(&system(), unit("U1", Some("B9"))).await,
        Err(EngineError::NotFound { entity: "beat", .. })
    ));
    engine.save_unit(&system(), unit("U1", Some("B1"))).await.unwrap();
    engine.save_unit(&system(), unit("U2", None)).await.unwrap();
    let shift = |unit: &str, from: i64, to: i64| Shift {
        unit: unit.into(),
        beat: "B1".into(),
        starts_at: T0.plus_seconds(from * 3_600),
        ends_at: T0.plus_seconds(to * 3_600),
    };
    let ids =
        engine.add_shifts(&system(), vec![shift("U1", 0, 8), shift("U2", 0, 8), shift("U1", 8, 16)]).await.unwrap();
    assert_eq!(ids.len(), 3);
    let overlap = engine.add_shifts(&system(), vec![shift("U1", 7, 9)]).await;
    assert!(matches!(overlap, Err(EngineError::Invalid { field: "shifts", .. })), "{overlap:?}");
    let within_batch = engine.add_shifts(&system(), vec![shift("U2", 20, 22), shift("U2", 21, 23)]).await;
    assert!(matches!(within_batch, Err(EngineError::Invalid { field: "shifts", .. })), "{within_batch:?}");
    assert!(matches!(
        engine.add_shifts(&system(), vec![shift("U9", 0, 1)]).await,
        Err(EngineError::NotFound { entity: "unit", .. })
    ));
    let roster = engine.roster(&system(), T0.plus_seconds(7 * 3_600), T0.plus_seconds(9 * 3_600)).await.unwrap();
    assert_eq!(roster.len(), 3);

    let engine = fixture.restart().await;
    assert_eq!(engine.units(&system()).await.unwrap(), vec![unit("U1", Some("B1")), unit("U2", None)]);
    assert_eq!(engine.beats(&system()).await.unwrap().len(), 1);
}

/// The check: a small hand-made beat and track where the expected minutes are
/// known, through the real pipeline (tracker fixes → history → report).
#[tokio::test]
async fn coverage_counts_the_minutes_an_on_duty_unit_was_inside_its_beat() {
    let fixture = Fixture::new().await;
    let engine = &fixture.engine;
    engine.save_beat(&system(), drawn("B1", square(114.0, 22.5, 0.01))).await.unwrap();
    engine.save_beat(&system(), drawn("B2", square(114.05, 22.5, 0.01))).await.unwrap();
    engine.save_unit(&system(), unit("U1", Some("B1"))).await.unwrap();
    let new = NewDevice {
        unique_id: "T-U1".into(),
        kind: DeviceKind::Tracker,
        unit: Some("U1".into()),
        jurisdiction: FUTIAN.into(),
        name: None,
        location: None,
    };
    engine.add_device(&system(), new).await.unwrap();
    // On duty 00:00–00:30 on B1, then 00:30–01:00 on B2 (where nobody goes).
    let shift = |beat: &str, from: i64, to: i64| Shift {
        unit: "U1".into(),
        beat: beat.into(),
        starts_at: T0.plus_seconds(from * 60),
        ends_at: T0.plus_seconds(to * 60),
    };
    engine.add_shifts(&system(), vec![shift("B1", 0, 30), shift("B2", 30, 60)]).await.unwrap();
    // A fix a minute: inside B1 for minutes 0–19 and 40–59, outside 20–39 (walking, not
    // teleporting: the outside point is ~1 km north).
    fixture.clock.set(T0.plus_seconds(2 * 3_600));
    for minute in 0..60 {
        let lat = if (20..40).contains(&minute) { 22.52 } else { 22.505 };
        let fix = Fix::new(T0.plus_seconds(minute * 60), LatLon::new(lat, 114.005).unwrap());
        engine.ingest_fix("T-U1", fix).await.unwrap();
    }
    while engine.avl_stats().stored < 60 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let report = engine.coverage_report(&system(), FUTIAN, T0, T0.plus_seconds(3_600)).await.unwrap();
    let b1 = report.iter().find(|b| b.beat == "B1").unwrap();
    let b2 = report.iter().find(|b| b.beat == "B2").unwrap();
    // B1: rostered 0–29; inside during 0–19 on duty; 40–59 inside but on B2's shift (still
    // on duty: a unit passing through covers).
    assert_eq!(b1.hours, vec![(T0, HourCoverage { covered_minutes: 40, rostered_minutes: 30 })]);
    assert_eq!(b2.hours, vec![(T0, HourCoverage { covered_minutes: 0, rostered_minutes: 30 })], "a blank beat");
    // The next hour: nothing rostered, nothing covered.
    let later =
        engine.coverage_report(&system(), FUTIAN, T0.plus_seconds(3_600), T0.plus_seconds(7_200)).await.unwrap();
    assert!(later.iter().all(|b| b.hours[0].1 == HourCoverage::default()));
    assert!(matches!(
        engine.coverage_report(&system(), "nowhere", T0, T0.plus_seconds(60)).await,
        Err(EngineError::NotFound { .. })
    ));
}

/// The report from presence marked as fixes arrive gives the same minutes as the core's
/// coverage rule computed from the whole tracks, for units that come and go, trackers that
/// fall silent for longer than the hold, and shifts that start and end mid-hour.
#[tokio::test]
async fn coverage_from_presence_matches_the_rule_over_whole_tracks() {
    use rand::{Rng, SeedableRng};
    let fixture = Fixture::new().await;
    let engine = &fixture.engine;
    let beats = [("B1", square(114.0, 22.5, 0.01)), ("B2", square(114.008, 22.5, 0.01))];
    for (code, shape) in &beats {
        engine.save_beat(&system(), drawn(code, shape.clone())).await.unwrap();
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let units = ["U1", "U2", "U3"];
    let mut shifts = Vec::new();
    let mut traces = Vec::new();
    for (n, code) in units.iter().enumerate() {
        engine.save_unit(&system(), unit(code, Some("B1"))).await.unwrap();
        let new = NewDevice {
            unique_id: format!("T-{code}"),
            kind: DeviceKind::Tracker,
            unit: Some((*code).into()),
            jurisdiction: FUTIAN.into(),
            name: None,
            location: None,
        };
        engine.add_device(&system(), new).await.unwrap();
        let beat = if n == 1 { "B2" } else { "B1" };
        let start = rng.random_range(0..90) * 60 + rng.random_range(0..60);
        let end = start + rng.random_range(20..120) * 60;
        shifts.push(Shift {
            unit: (*code).into(),
            beat: beat.into(),
            starts_at: T0.plus_seconds(start),
            ends_at: T0.plus_seconds(end),
        });
        // A walk that wanders across both beats and outside them, with gaps.
        let mut at = rng.random_range(0..600);
        let (mut lat, mut lon) = (22.505, 114.005);
        let mut fixes = Vec::new();
        while at < 3 * 3_600 {
            lat = (lat + rng.random_range(-0.0015..0.0015f64)).clamp(22.495, 22.515);
            lon = (lon + rng.random_range(-0.0015..0.0015f64)).clamp(113.998, 114.02);
            fixes.push((T0.plus_seconds(at), LatLon::new(lat, lon).unwrap()));
            at += if rng.random_bool(0.05) { rng.random_range(300..900) } else { rng.random_range(10..60) };
        }
        traces.push(fangkong_core::forces::Trace { unit: (*code).into(), fixes });
    }
    engine.add_shifts(&system(), shifts.clone()).await.unwrap();
    fixture.clock.set(T0.plus_seconds(3 * 3_600 + 600));
    let mut total = 0;
    for trace in &traces {
        for (at, point) in &trace.fixes {
            let fix = Fix::new(*at, *point);
            assert_eq!(
                engine.ingest_fix(&format!("T-{}", trace.unit), fix).await.unwrap(),
                crate::avl::Ingested::Accepted
            );
            total += 1;
        }
    }
    while engine.avl_stats().stored < total {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let hours: Vec<Timestamp> = (0..3).map(|h| T0.plus_seconds(h * 3_600)).collect();
    let report = engine.coverage_report(&system(), FUTIAN, T0, T0.plus_seconds(3 * 3_600)).await.unwrap();
    let mut covered = 0;
    for (code, shape) in &beats {
        let expected = fangkong_core::forces::coverage(code, shape, &hours, &shifts, &traces);
        let got = report.iter().find(|b| b.beat == *code).unwrap();
        assert_eq!(got.hours, expected.into_iter().collect::<Vec<_>>(), "beat {code}");
        covered += got.hours.iter().map(|(_, h)| h.covered_minutes).sum::<u32>();
    }
    assert!(covered > 30, "the walk covers something ({covered} minutes)");
    // The report no longer reads tracks: with the history purged, the minutes remain.
    let purged: u64 = {
        let mut n = 0;
        for device in engine.devices(&system()).await.unwrap() {
            n += engine.store.purge_positions(device.id, T0.plus_seconds(86_400)).await.unwrap();
        }
        n
    };
    assert!(purged > 0);
    let again = engine.coverage_report(&system(), FUTIAN, T0, T0.plus_seconds(3 * 3_600)).await.unwrap();
    assert_eq!(again, report);
}

fn member(name: &str, id_number: &str) -> NewMember {
    NewMember {
        category: ForceCategory::Volunteer,
        station: STATION.into(),
        unit: None,
        name: name.into(),
        id_number: id_number.into(),
        phone: Some("13800138000".into()),
    }
}

#[tokio::test]
async fn members_are_sealed_at_rest_found_by_blind_index_and_read_with_a_purpose() {
    let fixture = Fixture::new().await;
    let engine = &fixture.engine;
    let added = engine.add_member(&system(), member("王小明", "11010519491231002x")).await.unwrap();
    assert_eq!(added.id_number, "11010519491231002X", "normalised");
    engine.add_member(&system(), member("李华", "440524188001010014")).await.unwrap();
    let refused = engine.add_member(&system(), member("张三", "440524188001010015")).await;
    assert!(matches!(refused, Err(EngineError::Invalid { field: "id_number", .. })), "a wrong check character");
    let twice = engine.add_member(&system(), member("王小明", "11010519491231002X")).await;
    assert!(matches!(twice, Err(EngineError::Store(fangkong_store::StoreError::Conflict { .. }))), "{twice:?}");

    // At rest: neither the name nor the number appears in the database file or its WAL.
    let bytes = std::fs::read(fixture.dir.path().join("fk.db")).unwrap();
    let wal = std::fs::read(fixture.dir.path().join("fk.db-wal")).unwrap_or_default();
    for secret in ["王小明", "11010519491231002X", "13800138000"] {
        let needle = secret.as_bytes();
        assert!(!bytes.windows(needle.len()).any(|w| w == needle), "{secret} in the database file");
        assert!(!wal.windows(needle.len()).any(|w| w == needle), "{secret} in the WAL");
    }

    fixture.add_user("cmd", Role::Commander, FUTIAN).await;
    fixture.add_user("disp", Role::Dispatcher, FUTIAN).await;
    let commander = fixture.caller("cmd").await;
    let members = engine.members(&commander, None).await.unwrap();
    assert_eq!(members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["王小明", "李华"]);
    assert_eq!(members[0].phone.as_deref(), Some("13800138000"));
    let found = engine.member_by_id_number(&commander, "440524188001010014").await.unwrap();
    assert_eq!(found.name, "李华");
    let no_purpose = Caller { purpose: None, ..commander.clone() };
    assert!(matches!(engine.members(&no_purpose, None).await, Err(EngineError::PurposeRequired)));
    let dispatcher = fixture.caller("disp").await;
    assert!(matches!(engine.members(&dispatcher, None).await, Err(EngineError::Denied(_))));
    // Each read is in the trail with its purpose.
    let trail = fixture.audit().await;
    let reads: Vec<_> = trail.iter().filter(|r| r.entry.action.starts_with("member.")).collect();
    assert!(reads.iter().any(|r| r.entry.action == "member.list" && r.entry.purpose.as_deref() == Some("test")));
    assert!(reads.iter().any(|r| r.entry.action == "member.find"));
    assert!(reads.iter().all(|r| !r.entry.detail.as_deref().unwrap_or("").contains("王小明")), "no names in the trail");
}

/// Members stored before the person index existed (a 32-byte index of their own, seals
/// bound to it) get the person index when the engine starts: the same index a resident
/// with the same number has, so one person matches across registries.
#[tokio::test]
async fn members_indexed_apart_are_rekeyed_to_the_person_index_at_start() {
    let fixture = Fixture::new().await;
    let engine = &fixture.engine;
    let number = "440524188001010014";
    let old_index = fangkong_core::keys::hmac_sha256(&fixture.keys.blind_index(), number.as_bytes()).to_vec();
    let key = fixture.keys.personal_data();
    let seal =
        |field: &str, value: &str| crypto::seal(&key, &Engine::member_context(&old_index, field), value.as_bytes());
    let sealed = SealedMember {
        id: 0,
        category: ForceCategory::Volunteer,
        station: STATION.into(),
        unit: None,
        name_sealed: seal("name", "李华"),
        id_number_sealed: seal("id_number", number),
        id_number_index: old_index.clone(),
        phone_sealed: Some(seal("phone", "13800138000")),
        active: true,
        created_at: T0,
        updated_at: T0,
    };
    let entry = system().entry(T0, "member.add", Outcome::Allowed);
    engine.store.insert_member(&sealed, &entry).await.unwrap();
    fixture.add_user("cmd", Role::Commander, FUTIAN).await;
    let commander = fixture.caller("cmd").await;

    let restarted = fixture.restart().await;
    let stored = restarted.store.list_members().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id_number_index, restarted.person_index(number).to_vec(), "the person index");
    assert_eq!(restarted.person_index(number), restarted.indexer().id_number(number), "a resident's index");
    let found = restarted.member_by_id_number(&commander, number).await.unwrap();
    assert_eq!((found.name.as_str(), found.phone.as_deref()), ("李华", Some("13800138000")));
    // Done once: the next start finds nothing to re-key.
    assert_eq!(restarted.rekey_members().await.unwrap(), 0);
}

/// A shift's minutes in an hour, worked out from its ends, are the minutes whose middle it
/// covers, for shifts that start and end anywhere around the hour.
#[test]
fn a_shifts_minutes_are_those_whose_middle_it_covers() {
    let hour = T0.as_millis();
    let mut checked = 0;
    for start in (-90..150).step_by(7) {
        for length in [1, 29, 30, 31, 59, 60, 61, 600, 3_600, 86_400] {
            let starts_at = Timestamp::from_millis(hour + start * 1_000 * 30 + 15_000);
            let shift =
                Shift { unit: "U".into(), beat: "B".into(), starts_at, ends_at: starts_at.plus_seconds(length) };
            let mut expected = 0u64;
            for minute in 0..60 {
                if shift.covers(Timestamp::from_millis(hour + minute * 60_000 + 30_000)) {
                    expected |= 1 << minute;
                }
            }
            assert_eq!(super::shift_minutes(&[&shift], hour), expected, "{starts_at} + {length} s");
            checked += 1;
        }
    }
    assert!(checked > 300);
}
