//! Dispatch through the engine: intake, recommendation, sending units, the lifecycle and
//! its timeline, duplicates, idempotent retries, panic alarms, timers, restarts, measures.

use fangkong_core::auth::{DeviceKind, Role};
use fangkong_core::avl::Fix;
use fangkong_core::dispatch::{
    AreaClass, IncidentAction, IncidentStatus, MAX_POSSIBLE_DUPLICATES, TimelineKind, UnitStatus,
};
use fangkong_core::event::Event;
use fangkong_core::forces::{ForceCategory, PatrolMode, Unit};
use fangkong_core::jurisdiction::JurisdictionKind;
use fangkong_geo::{Area, Crs, LatLon};

use super::NewIncident;
use crate::boundaries::BoundaryImport;
use crate::test_support::{FUTIAN, Fixture, T0};
use crate::{Caller, EngineError, NewBeat, NewDevice};

const STATION: &str = "PS440304-01";
/// The incident's place, in Futian (west of 114.1°E).
const LAT: f64 = 22.54;
const LON: f64 = 114.05;

fn system() -> Caller {
    Caller::system("test")
}

fn point(lat: f64, lon: f64) -> LatLon {
    LatLon::new(lat, lon).unwrap()
}

/// A fixture whose districts have shapes (Futian 114.0–114.1°E, Luohu 114.1–114.2°E).
async fn city() -> Fixture {
    let fixture = Fixture::new().await;
    let rectangle = |x0: f64, x1: f64| {
        serde_json::json!({"type": "Polygon",
        "coordinates": [[[x0, 22.5], [x1, 22.5], [x1, 22.6], [x0, 22.6], [x0, 22.5]]]})
    };
    let file = serde_json::json!({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": "440304"}, "geometry": rectangle(114.0, 114.1)},
        {"type": "Feature", "properties": {"code": "440303"}, "geometry": rectangle(114.1, 114.2)},
    ]});
    let options = BoundaryImport::new(JurisdictionKind::District, Crs::Wgs84);
    fixture.engine.import_boundaries(&system(), &serde_json::to_vec(&file).unwrap(), &options).await.unwrap();
    fixture.add_user("dispatcher", Role::Dispatcher, FUTIAN).await;
    fixture
}

/// A unit with a tracker at (lat, lon), on duty and available.
async fn unit_at(fixture: &Fixture, code: &str, mode: PatrolMode, capabilities: &[&str], lat: f64, lon: f64) {
    let engine = &fixture.engine;
    let unit = Unit {
        code: code.into(),
        call_sign: code.into(),
        station: STATION.into(),
        category: ForceCategory::Police,
        mode,
        equipment: Vec::new(),
        beat: None,
        capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
    };
    engine.save_unit(&system(), unit).await.unwrap();
    let device = format!("trk-{code}");
    let new = NewDevice {
        unique_id: device.clone(),
        kind: DeviceKind::Tracker,
        unit: Some(code.into()),
        jurisdiction: FUTIAN.into(),
        name: None,
        location: None,
    };
    engine.add_device(&system(), new).await.unwrap();
    move_unit(fixture, code, lat, lon).await;
    engine.set_unit_status(&system(), code, UnitStatus::Available).await.unwrap();
}

async fn move_unit(fixture: &Fixture, code: &str, lat: f64, lon: f64) {
    let fix = Fix::new(fixture.engine.now(), point(lat, lon));
    fixture.engine.ingest_fix(&format!("trk-{code}"), fix).await.unwrap();
}

fn call(type_code: &str, lat: f64, lon: f64) -> NewIncident {
    NewIncident {
        source: "110".into(),
        type_code: type_code.into(),
        point: Some(point(lat, lon)),
        address: "园岭街道红荔路".into(),
        description: "有人抢包".into(),
        caller_name: Some("李先生".into()),
        caller_phone: Some("13812345678".into()),
        ..NewIncident::default()
    }
}

fn units_of(recommendations: &[super::Recommended]) -> Vec<&str> {
    recommendations.iter().map(|r| r.unit.code.as_str()).collect()
}

#[tokio::test]
async fn a_call_is_answered_by_the_fastest_unit_and_its_whole_life_is_timed_and_recorded() {
    let fixture = city().await;
    let engine = &fixture.engine;
    let dispatcher = fixture.caller("dispatcher").await;
    // A car ~2.2 km away arrives before a walker ~1.1 km away.
    unit_at(&fixture, "CAR", PatrolMode::Vehicle, &[], LAT + 0.02, LON).await;
    unit_at(&fixture, "WALK", PatrolMode::Foot, &[], LAT + 0.01, LON).await;
    let created = engine.create_incident(&dispatcher, call("010301", LAT, LON)).await.unwrap();
    let incident = created.incident;
    assert!(!created.replayed);
    assert_eq!((incident.status, incident.priority), (IncidentStatus::New, 1), "priority from the code table");
    assert_eq!(incident.chain.get(JurisdictionKind::District), Some(FUTIAN));
    assert_eq!(incident.caller_phone_masked.as_deref(), Some("*******5678"));
    assert_eq!((incident.area_class, incident.arrival_target_s), (AreaClass::Urban, 300));

    let recommended = engine.recommend(&dispatcher, incident.id, None).await.unwrap();
    assert_eq!(units_of(&recommended), ["CAR", "WALK"]);
    assert!((recommended[0].distance_m - 2_224.0).abs() < 10.0, "{:?}", recommended[0]);

    fixture.clock.advance_millis(1000 * (40));
    let sent = engine.assign_units(&dispatcher, incident.id, &["CAR".into()]).await.unwrap();
    assert_eq!(sent.status, IncidentStatus::Dispatched);
    assert!(
        engine.assign_units(&dispatcher, incident.id, &["CAR".into()]).await.is_err(),
        "a busy unit is not sent twice"
    );
    assert_eq!(
        units_of(&engine.recommend(&dispatcher, incident.id, None).await.unwrap()),
        ["WALK"],
        "busy units are not recommended"
    );

    fixture.clock.advance_millis(1000 * (20));
    engine.set_unit_status(&dispatcher, "CAR", UnitStatus::EnRoute).await.unwrap();
    fixture.clock.advance_millis(1000 * (200));
    engine.set_unit_status(&dispatcher, "CAR", UnitStatus::OnScene).await.unwrap();
    let on_scene = engine.incident(&dispatcher, incident.id).await.unwrap();
    assert_eq!(on_scene.status, IncidentStatus::OnScene);
    let times = on_scene.measures();
    assert_eq!(
        (times.call_to_dispatch_s, times.dispatch_to_arrival_s, times.call_to_arrival_s),
        (Some(40.0), Some(220.0), Some(260.0))
    );
    assert_eq!(times.within_target, Some(true));

    fixture.clock.advance_millis(1000 * (600));
    let resolved = engine.incident_action(&dispatcher, incident.id, IncidentAction::Resolve, None).await.unwrap();
    assert_eq!(resolved.status, IncidentStatus::Resolved);
    let car = engine.unit_board(&dispatcher).await.unwrap().into_iter().find(|u| u.unit.code == "CAR").unwrap();
    assert_eq!((car.state.status, car.state.incident), (UnitStatus::Returning, None), "resolving releases the unit");
    let refused = engine.incident_action(&dispatcher, incident.id, IncidentAction::Close, None).await;
    assert!(matches!(refused, Err(EngineError::Dispatch(_))), "closing needs a disposition");
    let bad = engine.incident_action(&dispatcher, incident.id, IncidentAction::Close, Some("no_such_code")).await;
    assert!(matches!(bad, Err(EngineError::Invalid { field: "disposition", .. })));
    let closed = engine
        .incident_action(&dispatcher, incident.id, IncidentAction::Close, Some("suspect_detained"))
        .await
        .unwrap();
    assert_eq!((closed.status, closed.disposition.as_deref()), (IncidentStatus::Closed, Some("suspect_detained")));
    assert!(engine.open_incidents(&dispatcher, None).await.unwrap().is_empty(), "closed incidents leave the board");

    let timeline = engine.incident_timeline(&dispatcher, incident.id).await.unwrap();
    let kinds: Vec<(TimelineKind, Option<&str>, &str)> =
        timeline.iter().map(|(_, e)| (e.kind, e.unit.as_deref(), e.actor.as_str())).collect();
    use TimelineKind as K;
    assert_eq!(
        kinds,
        [
            (K::Created, None, "dispatcher"),
            (K::Dispatched, Some("CAR"), "dispatcher"),
            (K::UnitStatus, Some("CAR"), "dispatcher"),
            (K::UnitStatus, Some("CAR"), "dispatcher"),
            (K::Resolved, None, "dispatcher"),
            (K::Closed, None, "dispatcher"),
        ]
    );
    // Reopened, it is back on the board.
    let reopened = engine.incident_action(&dispatcher, incident.id, IncidentAction::Reopen, None).await.unwrap();
    assert_eq!((reopened.status, reopened.disposition), (IncidentStatus::New, None));
    assert_eq!(engine.open_incidents(&dispatcher, None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_recommendation_prefers_capable_units_and_the_beats_own_unit_and_skips_stale_ones() {
    let fixture = city().await;
    let engine = &fixture.engine;
    let dispatcher = fixture.caller("dispatcher").await;
    unit_at(&fixture, "PATROL", PatrolMode::Vehicle, &[], LAT + 0.005, LON).await;
    unit_at(&fixture, "TRAFFIC", PatrolMode::Vehicle, &["traffic"], LAT + 0.03, LON).await;
    // A traffic accident (03…) prefers the traffic unit although it is further away.
    let accident = engine.create_incident(&dispatcher, call("030101", LAT, LON)).await.unwrap().incident;
    let ranked = engine.recommend(&dispatcher, accident.id, None).await.unwrap();
    assert_eq!(units_of(&ranked), ["TRAFFIC", "PATROL"]);
    assert!(ranked[0].suitable && !ranked[1].suitable);
    // A robbery has no preference: nearest first.
    let robbery = engine.create_incident(&dispatcher, call("010301", LAT, LON + 0.01)).await.unwrap().incident;
    assert_eq!(units_of(&engine.recommend(&dispatcher, robbery.id, None).await.unwrap()), ["PATROL", "TRAFFIC"]);

    // A unit whose beat holds the place gets the beat bonus (60 s ≈ 360 m for a car).
    let beat = Area::from_rings(vec![vec![vec![
        [114.04, 22.53],
        [114.07, 22.53],
        [114.07, 22.55],
        [114.04, 22.55],
        [114.04, 22.53],
    ]]])
    .unwrap();
    let new_beat = NewBeat {
        code: "B1".into(),
        station: STATION.into(),
        name: "红荔巡区".into(),
        shape: Some(beat),
        grids: Vec::new(),
    };
    engine.save_beat(&system(), new_beat).await.unwrap();
    unit_at(&fixture, "OWNER", PatrolMode::Vehicle, &[], LAT + 0.007, LON).await;
    let mut owner = engine.units(&system()).await.unwrap().into_iter().find(|u| u.code == "OWNER").unwrap();
    owner.beat = Some("B1".into());
    engine.save_unit(&system(), owner).await.unwrap();
    let ranked = engine.recommend(&dispatcher, robbery.id, None).await.unwrap();
    assert_eq!(units_of(&ranked)[..2], ["OWNER", "PATROL"], "{ranked:?}");
    assert!(ranked[0].owns_beat);

    // Ten minutes without a fix: PATROL's position is unknown, so it is not recommended.
    fixture.clock.advance_millis(1000 * (11 * 60));
    move_unit(&fixture, "OWNER", LAT + 0.007, LON).await;
    move_unit(&fixture, "TRAFFIC", LAT + 0.03, LON).await;
    assert_eq!(units_of(&engine.recommend(&dispatcher, robbery.id, None).await.unwrap()), ["OWNER", "TRAFFIC"]);
    // Off duty units are not recommended either.
    engine.set_unit_status(&system(), "TRAFFIC", UnitStatus::OffDuty).await.unwrap();
    assert_eq!(units_of(&engine.recommend(&dispatcher, robbery.id, None).await.unwrap()), ["OWNER"]);
}

#[tokio::test]
async fn a_retried_create_returns_the_first_incident_and_a_reused_key_is_refused() {
    let fixture = city().await;
    let engine = &fixture.engine;
    let dispatcher = fixture.caller("dispatcher").await;
    let keyed = NewIncident { idempotency_key: Some("call-0001".into()), ..call("010301", LAT, LON) };
    let first = engine.create_incident(&dispatcher, keyed.clone()).await.unwrap();
    let retry = engine.create_incident(&dispatcher, keyed.clone()).await.unwrap();
    assert!(retry.replayed);
    assert_eq!(retry.incident.id, first.incident.id);
    assert_eq!(engine.open_incidents(&dispatcher, None).await.unwrap().len(), 1);
    let other = NewIncident { description: "另一件事".into(), ..keyed };
    assert!(matches!(engine.create_incident(&dispatcher, other).await, Err(EngineError::IdempotencyKeyReused { .. })));
}

#[tokio::test]
async fn repeat_calls_are_flagged_and_merged_with_their_units_or_kept() {
    let fixture = city().await;
    let engine = &fixture.engine;
    let dispatcher = fixture.caller("dispatcher").await;
    unit_at(&fixture, "CAR", PatrolMode::Vehicle, &[], LAT + 0.01, LON).await;
    let first = engine.create_incident(&dispatcher, call("010301", LAT, LON)).await.unwrap().incident;
    fixture.clock.advance_millis(1000 * (120));
    // 150 m away, same category (criminal), two minutes later: a possible duplicate.
    let second = engine.create_incident(&dispatcher, call("010302", LAT + 0.00135, LON)).await.unwrap().incident;
    assert_eq!(second.possible_duplicates, [first.id]);
    // Another category, or far away, is not.
    let fight = engine.create_incident(&dispatcher, call("020100", LAT, LON)).await.unwrap().incident;
    assert!(fight.possible_duplicates.is_empty());
    let far = engine.create_incident(&dispatcher, call("010301", LAT + 0.02, LON)).await.unwrap().incident;
    assert!(far.possible_duplicates.is_empty());

    // The second was dispatched before anyone noticed; merging moves its unit to the first.
    engine.assign_units(&dispatcher, second.id, &["CAR".into()]).await.unwrap();
    let merged = engine.merge_incident(&dispatcher, second.id, first.id).await.unwrap();
    assert_eq!(
        (merged.status, merged.merged_into, merged.disposition.as_deref()),
        (IncidentStatus::Closed, Some(first.id), Some("duplicate"))
    );
    let original = engine.incident(&dispatcher, first.id).await.unwrap();
    assert_eq!(original.status, IncidentStatus::Dispatched);
    assert!(original.active_assignment("CAR").is_some());
    let car = engine.unit_board(&dispatcher).await.unwrap().into_iter().find(|u| u.unit.code == "CAR").unwrap();
    assert_eq!(car.state.incident, Some(first.id));
    let kinds: Vec<TimelineKind> =
        engine.incident_timeline(&dispatcher, first.id).await.unwrap().into_iter().map(|(_, e)| e.kind).collect();
    assert!(kinds.contains(&TimelineKind::MergedFrom));

    // Keeping clears the flag; keeping an unflagged incident is refused.
    fixture.clock.advance_millis(1000 * (60));
    let third = engine.create_incident(&dispatcher, call("010301", LAT, LON + 0.001)).await.unwrap().incident;
    assert_eq!(third.possible_duplicates, [first.id]);
    assert!(engine.keep_incident(&dispatcher, third.id).await.unwrap().possible_duplicates.is_empty());
    assert!(engine.keep_incident(&dispatcher, third.id).await.is_err());
}

#[tokio::test]
async fn a_mass_event_lists_only_the_most_recent_possible_duplicates() {
    let fixture = city().await;
    let engine = &fixture.engine;
    let dispatcher = fixture.caller("dispatcher").await;
    let mut ids = Vec::new();
    for _ in 0..MAX_POSSIBLE_DUPLICATES + 5 {
        fixture.clock.advance_millis(1_000);
        ids.push(engine.create_incident(&dispatcher, call("010301", LAT, LON)).await.unwrap().incident.id);
    }
    fixture.clock.advance_millis(1_000);
    let next = engine.create_incident(&dispatcher, call("010301", LAT, LON)).await.unwrap().incident;
    assert_eq!(next.possible_duplicates, ids[ids.len() - MAX_POSSIBLE_DUPLICATES..], "the latest, oldest first");
    let timeline = engine.incident_timeline(&dispatcher, next.id).await.unwrap();
    let (_, created) = timeline.iter().find(|(_, e)| e.kind == TimelineKind::Created).unwrap();
    let detail = &created.detail;
    assert!(detail.contains(&ids[ids.len() - 1].to_string()) && detail.len() < 300, "the entry stays small: {detail}");
}

#[tokio::test]
async fn cancelling_recalls_units_and_units_follow_their_rules() {
    let fixture = city().await;
    let engine = &fixture.engine;
    let dispatcher = fixture.caller("dispatcher").await;
    unit_at(&fixture, "CAR", PatrolMode::Vehicle, &[], LAT + 0.01, LON).await;
    unit_at(&fixture, "VOL", PatrolMode::Foot, &[], LAT + 0.001, LON).await;
    let incident = engine.create_incident(&dispatcher, call("080200", LAT, LON)).await.unwrap().incident;
    // Police and a volunteer team respond together.
    let both = engine.assign_units(&dispatcher, incident.id, &["CAR".into(), "VOL".into()]).await.unwrap();
    assert_eq!(both.assignments.len(), 2);
    assert!(matches!(
        engine.set_unit_status(&dispatcher, "CAR", UnitStatus::OffDuty).await,
        Err(EngineError::Dispatch(_))
    ));
    assert!(matches!(
        engine.set_unit_status(&dispatcher, "CAR", UnitStatus::Dispatched).await,
        Err(EngineError::Invalid { .. })
    ));
    engine.set_unit_status(&dispatcher, "VOL", UnitStatus::OnScene).await.unwrap();
    // On scene, an incident cannot be cancelled: resolve it.
    assert!(engine.incident_action(&dispatcher, incident.id, IncidentAction::Cancel, None).await.is_err());
    let other = engine.create_incident(&dispatcher, call("080200", LAT + 0.05, LON)).await.unwrap().incident;
    engine.assign_units(&dispatcher, other.id, &["CAR".into()]).await.unwrap_err(); // CAR is busy
    let cancelled = engine.incident_action(&dispatcher, incident.id, IncidentAction::Resolve, None).await.unwrap();
    assert!(cancelled.assignments.iter().all(|a| !a.is_active()));
    engine.assign_units(&dispatcher, other.id, &["CAR".into()]).await.unwrap();
    let cancelled = engine
        .incident_action(&dispatcher, other.id, IncidentAction::Cancel, Some("cancelled_by_caller"))
        .await
        .unwrap();
    assert_eq!(cancelled.status, IncidentStatus::Cancelled);
    let car = engine.unit_board(&dispatcher).await.unwrap().into_iter().find(|u| u.unit.code == "CAR").unwrap();
    assert_eq!(car.state.status, UnitStatus::Available, "a cancelled incident recalls its units");
}

#[tokio::test]
async fn a_panic_alarm_raises_one_priority_incident_at_the_trackers_position() {
    let fixture = city().await;
    let engine = &fixture.engine;
    unit_at(&fixture, "CAR", PatrolMode::Vehicle, &[], LAT + 0.01, LON).await;
    let mut events = engine.bus().subscribe();
    // Where the unit is (a fix far from its last one would be refused as too fast).
    let mut sos = Fix::new(engine.now(), point(LAT + 0.01, LON));
    sos.alarm = Some("sos".into());
    fixture.clock.advance_millis(1000 * (5));
    sos.fixed_at = engine.now();
    engine.ingest_fix("trk-CAR", sos.clone()).await.unwrap();
    fixture.clock.advance_millis(1000 * (5));
    sos.fixed_at = engine.now();
    engine.ingest_fix("trk-CAR", sos).await.unwrap();
    // The incident is a reaction to the stored alarm: it follows on the reaction task.
    engine.reactions_settled().await;
    let open = engine.open_incidents(&system(), None).await.unwrap();
    assert_eq!(open.len(), 1, "one incident for repeated alarms");
    let panic = &open[0];
    assert_eq!((panic.source.as_str(), panic.type_code.as_str(), panic.priority), ("app_sos", "050000", 1));
    assert!(panic.point.distance_m(point(LAT + 0.01, LON)) < 1.0);
    let timeline = engine.incident_timeline(&system(), panic.id).await.unwrap();
    assert_eq!(timeline.last().unwrap().1.kind, TimelineKind::Note, "the second alarm is in the timeline");
    let mut incident_events = 0;
    while let Ok(envelope) = events.try_recv() {
        incident_events += usize::from(matches!(envelope.event, Event::IncidentChanged(_)));
    }
    assert_eq!(incident_events, 2);
}

#[tokio::test]
async fn overdue_units_raise_one_alert_per_status() {
    let fixture = city().await;
    let engine = &fixture.engine;
    let dispatcher = fixture.caller("dispatcher").await;
    unit_at(&fixture, "CAR", PatrolMode::Vehicle, &[], LAT + 0.01, LON).await;
    let incident = engine.create_incident(&dispatcher, call("010301", LAT, LON)).await.unwrap().incident;
    engine.assign_units(&dispatcher, incident.id, &["CAR".into()]).await.unwrap();
    assert_eq!(engine.check_timers(), 0);
    fixture.clock.advance_millis(1000 * (61)); // not acknowledged within a minute
    let mut events = engine.bus().subscribe();
    assert_eq!(engine.check_timers(), 1);
    assert_eq!(engine.check_timers(), 0, "once per status");
    assert!(matches!(events.try_recv().unwrap().event, Event::UnitOverdue { status: UnitStatus::Dispatched, .. }));
    assert!(engine.unit_board(&dispatcher).await.unwrap()[0].overdue);
    engine.set_unit_status(&dispatcher, "CAR", UnitStatus::EnRoute).await.unwrap();
    assert!(!engine.unit_board(&dispatcher).await.unwrap()[0].overdue);
}

#[tokio::test]
async fn the_board_and_unit_statuses_survive_a_restart() {
    let fixture = city().await;
    let dispatcher = fixture.caller("dispatcher").await;
    unit_at(&fixture, "CAR", PatrolMode::Vehicle, &[], LAT + 0.01, LON).await;
    let incident = fixture.engine.create_incident(&dispatcher, call("010301", LAT, LON)).await.unwrap().incident;
    fixture.engine.assign_units(&dispatcher, incident.id, &["CAR".into()]).await.unwrap();
    let restarted = fixture.restart().await;
    let open = restarted.open_incidents(&system(), None).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].status, IncidentStatus::Dispatched);
    let board = restarted.unit_board(&system()).await.unwrap();
    assert_eq!((board[0].state.status, board[0].state.incident), (UnitStatus::Dispatched, Some(incident.id)));
    // The duplicate index came back too.
    let again = restarted.create_incident(&system(), call("010301", LAT, LON)).await.unwrap().incident;
    assert_eq!(again.possible_duplicates, [incident.id]);
}

#[tokio::test]
async fn caller_details_are_sealed_at_rest_and_read_only_by_the_centre_with_a_purpose() {
    let fixture = city().await;
    let engine = &fixture.engine;
    let dispatcher = fixture.caller("dispatcher").await;
    let incident = engine.create_incident(&dispatcher, call("010301", LAT, LON)).await.unwrap().incident;
    for file in std::fs::read_dir(fixture.dir.path()).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        assert!(!bytes.windows(11).any(|w| w == b"13812345678"), "the phone is not in the clear on disk");
        assert!(!bytes.windows("李先生".len()).any(|w| w == "李先生".as_bytes()), "nor the name");
    }
    let details = engine.incident_caller(&dispatcher, incident.id).await.unwrap();
    assert_eq!((details.name.as_deref(), details.phone.as_deref()), (Some("李先生"), Some("13812345678")));
    let mut no_purpose = dispatcher.clone();
    no_purpose.purpose = None;
    assert!(matches!(engine.incident_caller(&no_purpose, incident.id).await, Err(EngineError::PurposeRequired)));
    fixture.add_user("analyst", Role::Analyst, FUTIAN).await;
    let analyst = fixture.caller("analyst").await;
    assert!(matches!(engine.incident_caller(&analyst, incident.id).await, Err(EngineError::Denied(_))));
    assert!(engine.incident(&analyst, incident.id).await.is_ok(), "analysts read incidents, not callers");
}

#[tokio::test]
async fn measures_count_arrivals_against_the_target_of_the_area_class() {
    let fixture = city().await;
    let engine = &fixture.engine;
    let city_dispatcher = {
        fixture.add_user("chief", Role::Commander, "440300").await;
        fixture.caller("chief").await
    };
    // Luohu is suburban: a 10-minute target.
    engine.set_area_class(&system(), "440303", Some(AreaClass::Suburban)).await.unwrap();
    unit_at(&fixture, "CAR", PatrolMode::Vehicle, &[], LAT, LON).await;
    let arrive_after = |incident: i64, seconds: i64| {
        let engine = engine.clone();
        let clock = fixture.clock.clone();
        let chief = city_dispatcher.clone();
        async move {
            engine.assign_units(&chief, incident, &["CAR".into()]).await.unwrap();
            clock.advance_millis(1000 * (seconds));
            engine.set_unit_status(&chief, "CAR", UnitStatus::OnScene).await.unwrap();
            engine.incident_action(&chief, incident, IncidentAction::Resolve, None).await.unwrap();
            engine.set_unit_status(&chief, "CAR", UnitStatus::Available).await.unwrap();
        }
    };
    let futian = engine.create_incident(&city_dispatcher, call("010301", LAT, LON)).await.unwrap().incident;
    arrive_after(futian.id, 400).await; // late for urban (300 s)
    let luohu = engine.create_incident(&city_dispatcher, call("010301", LAT, 114.15)).await.unwrap().incident;
    assert_eq!((luohu.area_class, luohu.arrival_target_s), (AreaClass::Suburban, 600));
    arrive_after(luohu.id, 400).await; // in time for suburban (600 s)
    engine.create_incident(&city_dispatcher, call("020600", LAT, LON)).await.unwrap(); // never attended
    let report = engine.response_measures(&city_dispatcher, "440300", T0, T0.plus_seconds(86_400)).await.unwrap();
    assert_eq!((report.total.incidents, report.total.arrived, report.total.within_target), (3, 2, 1));
    assert_eq!(report.total.share_within_target, Some(0.5));
    let parts: Vec<(&str, u64, Option<f64>)> =
        report.parts.iter().map(|(c, m)| (c.as_str(), m.incidents, m.share_within_target)).collect();
    assert_eq!(parts, [("440303", 1, Some(1.0)), ("440304", 2, Some(0.0))]);
    let dispatcher = {
        fixture.add_user("dispatcher2", Role::Dispatcher, FUTIAN).await;
        fixture.caller("dispatcher2").await
    };
    assert!(matches!(
        engine.response_measures(&dispatcher, "440303", T0, T0.plus_seconds(86_400)).await,
        Err(EngineError::Denied(_))
    ));
}

#[tokio::test]
async fn hotspots_rank_cells_by_incidents_and_count_the_patrol_time_spent_in_them() {
    let fixture = city().await;
    let engine = &fixture.engine;
    let dispatcher = fixture.caller("dispatcher").await;
    let start = engine.now();
    // Three calls at one spot, one elsewhere.
    for _ in 0..3 {
        engine.create_incident(&dispatcher, call("020100", LAT, LON)).await.unwrap();
    }
    engine.create_incident(&dispatcher, call("020100", LAT + 0.03, LON + 0.03)).await.unwrap();
    // A unit stands at the spot for three minutes (fixes at 0 and 2 min, gone at 3 min).
    unit_at(&fixture, "CAR", PatrolMode::Vehicle, &[], LAT, LON).await;
    fixture.clock.advance_millis(120_000);
    move_unit(&fixture, "CAR", LAT, LON).await;
    fixture.clock.advance_millis(60_000);
    move_unit(&fixture, "CAR", LAT + 0.01, LON).await;
    while engine.avl_stats().stored < 3 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let to = engine.now().plus_seconds(3_600);
    let hotspots = engine.hotspot_coverage(&system(), FUTIAN, start.plus_seconds(-3_600), to, 10).await.unwrap();
    assert_eq!(hotspots.len(), 2);
    assert_eq!(hotspots[0].cell, point(LAT, LON).h3_cell(9).unwrap());
    assert_eq!(hotspots[0].incidents, 3);
    assert!((hotspots[0].patrol_minutes - 3.0).abs() < 1e-9, "{hotspots:?}");
    assert_eq!((hotspots[1].incidents, hotspots[1].patrol_minutes), (1, 0.0));
    let one = engine.hotspot_coverage(&system(), FUTIAN, start.plus_seconds(-3_600), to, 1).await.unwrap();
    assert_eq!(one.len(), 1);
    let bad = engine.hotspot_coverage(&system(), FUTIAN, to, start, 10).await;
    assert!(matches!(bad, Err(EngineError::Invalid { .. })));
}
