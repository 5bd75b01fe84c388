//! The position pipeline: screening, the live index, the history, who may see what,
//! backpressure and retention.

use fangkong_core::auth::{DeviceKind, Role};
use fangkong_core::avl::{Fix, Rejection};
use fangkong_core::event::Event;
use fangkong_core::jurisdiction::JurisdictionKind;
use fangkong_geo::{Crs, LatLon};

use super::*;
use crate::boundaries::BoundaryImport;
use crate::test_support::{FUTIAN, Fixture, LUOHU, T0};
use crate::{EngineConfig, NewDevice};

/// Futian west of 114.1°E, Luohu east of it (rectangles), so fixes get a chain.
async fn shaped(fixture: &Fixture) {
    let square = |x0: f64, x1: f64| serde_json::json!([[[x0, 22.5], [x1, 22.5], [x1, 22.6], [x0, 22.6], [x0, 22.5]]]);
    let file = serde_json::json!({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": FUTIAN}, "geometry": {"type": "Polygon", "coordinates": square(114.0, 114.1)}},
        {"type": "Feature", "properties": {"code": LUOHU}, "geometry": {"type": "Polygon", "coordinates": square(114.1, 114.2)}},
    ]});
    let options = BoundaryImport::new(JurisdictionKind::District, Crs::Wgs84);
    fixture
        .engine
        .import_boundaries(&Caller::system("test"), &serde_json::to_vec(&file).unwrap(), &options)
        .await
        .unwrap();
}

async fn tracker(fixture: &Fixture, unique_id: &str, jurisdiction: &str) {
    let new = NewDevice {
        unique_id: unique_id.into(),
        kind: DeviceKind::Tracker,
        unit: Some(format!("unit-{unique_id}")),
        jurisdiction: jurisdiction.into(),
        name: None,
        location: None,
    };
    fixture.engine.add_device(&Caller::system("test"), new).await.unwrap();
}

fn fix(seconds: i64, lat: f64, lon: f64) -> Fix {
    Fix::new(T0.plus_seconds(seconds), LatLon::new(lat, lon).unwrap())
}

/// Waits until the writer has stored `count` fixes.
async fn stored(fixture: &Fixture, count: u64) {
    for _ in 0..200 {
        if fixture.engine.avl_stats().stored >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("only {} of {count} fixes stored", fixture.engine.avl_stats().stored);
}

#[tokio::test]
async fn an_accepted_fix_is_live_at_once_placed_and_then_in_the_history() {
    let fixture = Fixture::new().await;
    shaped(&fixture).await;
    tracker(&fixture, "T1", FUTIAN).await;
    fixture.clock.set(T0.plus_seconds(60));
    let mut feed = fixture.engine.position_feed();
    let mut first = fix(0, 22.55, 114.05);
    first.speed_mps = Some(10.0);
    first.attributes.push(("ignition".into(), "true".into()));
    assert_eq!(fixture.engine.ingest_fix("T1", first.clone()).await.unwrap(), Ingested::Accepted);

    let system = Caller::system("test");
    let live = fixture.engine.live_positions(&system, None).await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].fix, first);
    assert_eq!(live[0].unit.as_deref(), Some("unit-T1"));
    assert_eq!(live[0].chain.get(JurisdictionKind::District), Some(FUTIAN));
    assert_eq!(live[0].h3, first.point.h3_cell(9));
    assert_eq!(feed.try_recv().unwrap().fix, first, "offered to live subscribers");

    fixture.engine.ingest_fix("T1", fix(10, 22.5501, 114.05)).await.unwrap();
    stored(&fixture, 2).await;
    let track = fixture.engine.track(&system, "T1", T0, T0.plus_seconds(3_600), 100).await.unwrap();
    assert_eq!(track.len(), 2);
    assert_eq!(track[0].fix, first);
    assert_eq!(track[0].received_at, T0.plus_seconds(60));
}

#[tokio::test]
async fn refused_fixes_are_recorded_with_their_reasons_and_leave_the_live_index_alone() {
    let fixture = Fixture::new().await;
    tracker(&fixture, "T1", FUTIAN).await;
    fixture.clock.set(T0.plus_seconds(600));
    let engine = &fixture.engine;
    assert_eq!(engine.ingest_fix("T1", fix(100, 22.55, 114.05)).await.unwrap(), Ingested::Accepted);
    let mut invalid = fix(110, 22.55, 114.05);
    invalid.valid = false;
    let cases = [
        (fix(110, 0.0, 0.0), Rejection::NullIsland),
        (invalid, Rejection::Invalid),
        (fix(100, 22.5501, 114.05), Rejection::Duplicate),
        (fix(90, 22.5501, 114.05), Rejection::OutOfOrder),
        (fix(600 + 3_600, 22.5501, 114.05), Rejection::InFuture),
        (fix(120, 22.75, 114.25), Rejection::ImpossibleSpeed),
    ];
    for (bad, reason) in &cases {
        assert_eq!(engine.ingest_fix("T1", bad.clone()).await.unwrap(), Ingested::Rejected(*reason));
    }
    let live = engine.live_positions(&Caller::system("test"), None).await.unwrap();
    assert_eq!(live[0].fix, fix(100, 22.55, 114.05), "still the last good fix");
    engine.shutdown().await;
    let refused = engine.store.rejections(live[0].device_id, T0, T0.plus_seconds(10_000), 100).await;
    // The store is closed after shutdown; reopen it to read what was written.
    assert!(refused.is_err());
    let engine = fixture.restart().await;
    let refused = engine.refused_fixes(&Caller::system("test"), "T1", T0, T0.plus_seconds(10_000), 100).await.unwrap();
    let mut reasons: Vec<&str> = refused.iter().map(|r| r.reason.as_str()).collect();
    reasons.sort();
    let mut expected: Vec<&str> = cases.iter().map(|(_, r)| r.as_str()).collect();
    expected.sort();
    assert_eq!(reasons, expected, "every refusal is in the history, with its reason");
    let stats = engine.avl_stats();
    assert_eq!(stats.accepted, 0, "a fresh engine counts afresh");
}

#[tokio::test]
async fn unknown_revoked_and_non_tracker_devices_are_refused() {
    let fixture = Fixture::new().await;
    tracker(&fixture, "T1", FUTIAN).await;
    let engine = &fixture.engine;
    let result = engine.ingest_fix("nobody", fix(0, 22.55, 114.05)).await;
    assert!(matches!(result, Err(EngineError::UnknownDevice { .. })), "{result:?}");
    let alarm = NewDevice {
        unique_id: "A1".into(),
        kind: DeviceKind::AlarmPoint,
        unit: None,
        jurisdiction: FUTIAN.into(),
        name: None,
        location: None,
    };
    engine.add_device(&Caller::system("test"), alarm).await.unwrap();
    assert!(matches!(
        engine.ingest_fix("A1", fix(0, 22.55, 114.05)).await,
        Err(EngineError::Invalid { field: "id", .. })
    ));
    engine.revoke_device(&Caller::system("test"), "T1").await.unwrap();
    assert!(matches!(engine.ingest_fix("T1", fix(0, 22.55, 114.05)).await, Err(EngineError::DeviceRevoked)));
    assert_eq!(engine.avl_stats().unknown_device, 1);
}

#[tokio::test]
async fn a_panic_alarm_is_announced_with_its_position() {
    let fixture = Fixture::new().await;
    tracker(&fixture, "T1", FUTIAN).await;
    let mut events = fixture.engine.bus().subscribe();
    let mut sos = fix(0, 22.55, 114.05);
    sos.alarm = Some("sos".into());
    let ingest = fixture.engine.ingest_fix("T1", sos);
    let engine = &fixture.engine;
    // When the alarm is heard, its fix is already stored, not only queued. (On this
    // single-threaded runtime the writer cannot run between the publish and this look.)
    let heard = async {
        let envelope = events.recv().await.unwrap();
        (envelope, engine.avl_stats().stored)
    };
    let (ingested, (envelope, stored)) = tokio::join!(ingest, heard);
    ingested.unwrap();
    assert_eq!(stored, 1, "the alarm was announced before its fix was stored");
    match &envelope.event {
        Event::PanicAlarm { unique_id, unit, alarm, lat, lon, chain, .. } => {
            assert_eq!((unique_id.as_str(), unit.as_deref(), alarm.as_str()), ("T1", Some("unit-T1"), "sos"));
            assert_eq!((*lat, *lon), (22.55, 114.05));
            assert_eq!(chain, &engine.live_position_of(&Caller::system("test"), "T1").unwrap().chain);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn callers_see_positions_inside_their_jurisdiction_only() {
    let fixture = Fixture::new().await;
    shaped(&fixture).await;
    tracker(&fixture, "T1", FUTIAN).await;
    tracker(&fixture, "T2", LUOHU).await;
    fixture.engine.ingest_fix("T1", fix(0, 22.55, 114.05)).await.unwrap();
    fixture.engine.ingest_fix("T2", fix(0, 22.55, 114.15)).await.unwrap();
    fixture.add_user("disp.futian", Role::Dispatcher, FUTIAN).await;
    fixture.add_user("housing", Role::HousingCoordinator, FUTIAN).await;
    let dispatcher = fixture.caller("disp.futian").await;
    let seen: Vec<String> =
        fixture.engine.live_positions(&dispatcher, None).await.unwrap().into_iter().map(|l| l.unique_id).collect();
    assert_eq!(seen, ["T1"]);
    let housing = fixture.caller("housing").await;
    assert!(matches!(fixture.engine.live_positions(&housing, None).await, Err(EngineError::Denied(_))));
    // Tracks follow the device's registration.
    assert!(fixture.engine.track(&dispatcher, "T1", T0, T0.plus_seconds(60), 10).await.is_ok());
    assert!(matches!(
        fixture.engine.track(&dispatcher, "T2", T0, T0.plus_seconds(60), 10).await,
        Err(EngineError::Denied(_))
    ));
    let within = fixture.engine.live_positions(&Caller::system("test"), Some(LUOHU)).await.unwrap();
    assert_eq!(within.iter().map(|l| l.unique_id.as_str()).collect::<Vec<_>>(), ["T2"]);
}

/// With the database locked by another process, the writer cannot store; the queue fills;
/// further fixes are refused as overloaded instead of piling up in memory. Once the lock
/// goes, everything queued is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_pushes_back_and_drains_when_the_store_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fk.db").display());
    let clock = crate::clock::ManualClock::new(T0);
    let keys = crate::keys::KeyRing::generate();
    let mut config = crate::test_support::config(&keys);
    config.avl = AvlConfig { queue: 4, batch: 2, enqueue_timeout_ms: 50, ..AvlConfig::default() };
    let engine = crate::test_support::start(&url, &clock, EngineConfig { ..config }).await.unwrap();
    let city = fangkong_core::jurisdiction::Jurisdiction {
        code: "440300".into(),
        kind: JurisdictionKind::City,
        parent: None,
        name_zh: "深圳市".into(),
        name_en: None,
    };
    engine.import_jurisdictions(&Caller::system("test"), vec![city]).await.unwrap();
    let new = NewDevice {
        unique_id: "T1".into(),
        kind: DeviceKind::Tracker,
        unit: None,
        jurisdiction: "440300".into(),
        name: None,
        location: None,
    };
    engine.add_device(&Caller::system("test"), new).await.unwrap();

    let blocker = rusqlite::Connection::open(dir.path().join("fk.db")).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut accepted = 0;
    let mut overloaded = 0;
    for second in 0..20 {
        match engine.ingest_fix("T1", fix(second, 22.55, 114.05)).await {
            Ok(Ingested::Accepted) => accepted += 1,
            Err(EngineError::Overloaded) => overloaded += 1,
            other => panic!("{other:?}"),
        }
    }
    // The writer holds one batch (2) it cannot store; the queue holds 4 more.
    assert!((4..=6).contains(&accepted), "{accepted} accepted");
    assert_eq!(overloaded, 20 - accepted);
    assert_eq!(engine.avl_stats().overloaded, overloaded);
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    engine.shutdown().await;
    let engine = crate::test_support::start(&url, &clock, crate::test_support::config(&keys)).await.unwrap();
    let track = engine.track(&Caller::system("test"), "T1", T0, T0.plus_seconds(60), 100).await.unwrap();
    assert_eq!(track.len(), accepted as usize, "every accepted fix was stored once the lock went");
}

#[tokio::test]
async fn the_upkeep_purges_history_older_than_the_retention() {
    let fixture = Fixture::new().await;
    tracker(&fixture, "T1", FUTIAN).await;
    let day = 86_400;
    fixture.clock.set(T0.plus_seconds(100 * day));
    // Fixes from day 0 (older than 90 days by then) and day 95.
    fixture
        .engine
        .store
        .write_positions(
            vec![
                StoredFix { device_id: 1, received_at: T0, h3: None, fix: fix(0, 22.55, 114.05) },
                StoredFix { device_id: 1, received_at: T0, h3: None, fix: fix(95 * day, 22.55, 114.05) },
            ],
            Vec::new(),
            Default::default(),
        )
        .await
        .unwrap();
    fixture.engine.maintain().await.unwrap();
    let track = fixture.engine.track(&Caller::system("test"), "T1", T0, T0.plus_seconds(200 * day), 10).await.unwrap();
    assert_eq!(track.len(), 1);
    assert_eq!(track[0].fix.fixed_at, T0.plus_seconds(95 * day));
}

#[tokio::test]
async fn alarm_points_and_checkpoints_stand_in_their_jurisdiction_and_are_supervised_by_heartbeat() {
    let fixture = Fixture::new().await;
    shaped(&fixture).await;
    let engine = &fixture.engine;
    let admin = fixture.caller("admin.futian").await;
    let site = |id: &str, kind: DeviceKind, jurisdiction: &str, at: Option<(f64, f64)>| NewDevice {
        unique_id: id.into(),
        kind,
        unit: None,
        jurisdiction: jurisdiction.into(),
        name: Some(format!("  {id}便利店报警点 ")),
        location: at.map(|(lat, lon)| LatLon::new(lat, lon).unwrap()),
    };
    // A place in Luohu, or outside the city, is refused for a Futian device; so is a novel.
    let in_luohu = engine.add_device(&admin, site("A0", DeviceKind::AlarmPoint, FUTIAN, Some((22.55, 114.15)))).await;
    assert!(
        matches!(&in_luohu, Err(EngineError::Invalid { field: "location", message }) if message.contains(LUOHU)),
        "{in_luohu:?}"
    );
    let outside = engine.add_device(&admin, site("A0", DeviceKind::AlarmPoint, FUTIAN, Some((23.5, 114.05)))).await;
    assert!(matches!(outside, Err(EngineError::Invalid { field: "location", .. })), "{outside:?}");
    let long = NewDevice { name: Some("长".repeat(101)), ..site("A0", DeviceKind::AlarmPoint, FUTIAN, None) };
    assert!(matches!(engine.add_device(&admin, long).await, Err(EngineError::Invalid { field: "name", .. })));

    let (a1, secret) =
        engine.add_device(&admin, site("A1", DeviceKind::AlarmPoint, FUTIAN, Some((22.55, 114.05)))).await.unwrap();
    assert_eq!(a1.name.as_deref(), Some("A1便利店报警点"), "trimmed");
    let system = Caller::system("test");
    engine.add_device(&system, site("C1", DeviceKind::Checkpoint, LUOHU, Some((22.58, 114.15)))).await.unwrap();
    engine.add_device(&system, site("A2", DeviceKind::AlarmPoint, FUTIAN, None)).await.unwrap();
    engine.add_device(&system, site("A3", DeviceKind::AlarmPoint, FUTIAN, Some((22.51, 114.01)))).await.unwrap();
    engine.revoke_device(&system, "A3").await.unwrap();
    tracker(&fixture, "T1", FUTIAN).await;

    // A Futian dispatcher sees Futian's located, unrevoked sites; a coordinator none.
    fixture.add_user("disp.futian", Role::Dispatcher, FUTIAN).await;
    fixture.add_user("coord.futian", Role::HousingCoordinator, FUTIAN).await;
    let dispatcher = fixture.caller("disp.futian").await;
    let sites = engine.sites(&dispatcher).await.unwrap();
    let ids: Vec<&str> = sites.iter().map(|s| s.unique_id.as_str()).collect();
    assert_eq!(ids, ["A1"]);
    assert_eq!((sites[0].kind, sites[0].online, sites[0].last_seen_at), (DeviceKind::AlarmPoint, false, None));
    let city_wide: Vec<String> = engine.sites(&system).await.unwrap().into_iter().map(|s| s.unique_id).collect();
    assert_eq!(city_wide, ["A1", "C1"]);
    let coordinator = fixture.caller("coord.futian").await;
    assert!(matches!(engine.sites(&coordinator).await, Err(EngineError::Denied(_))));

    // Online while heartbeats come; offline once the window passes without one.
    let actor = engine.authenticate_device("A1", &secret, None).await.unwrap();
    let device = Caller::new(fangkong_core::auth::Actor::Device(actor));
    engine.device_heartbeat(&device, "A1").await.unwrap();
    fixture.clock.advance_millis(engine.config().avl.device_offline_ms);
    assert!(engine.sites(&dispatcher).await.unwrap()[0].online, "on the edge of the window");
    fixture.clock.advance_millis(1);
    let silent = &engine.sites(&dispatcher).await.unwrap()[0];
    assert!(!silent.online && silent.last_seen_at == Some(T0), "{silent:?}");

    // The place survives a restart.
    let restarted = fixture.restart().await;
    let again = restarted.sites(&Caller::system("test")).await.unwrap();
    assert_eq!(again[0].location, LatLon::new(22.55, 114.05).unwrap());
    assert_eq!(again[0].name.as_deref(), Some("A1便利店报警点"));
    restarted.shutdown().await;
}
