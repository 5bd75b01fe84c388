//! Replay: a fresh engine that applies another engine's outbox holds its live picture.

use std::sync::Arc;

use fangkong_core::auth::account::NewUser;
use fangkong_core::auth::{DeviceKind, Role};
use fangkong_core::avl::Fix;
use fangkong_core::dispatch::{AreaClass, IncidentAction, UnitStatus};
use fangkong_core::forces::{ForceCategory, PatrolMode, Unit};
use fangkong_core::jurisdiction::{Jurisdiction, JurisdictionKind};
use fangkong_geo::{Area, Crs, LatLon};
use fangkong_store::Store;
use fangkong_store::testing::TestDatabase;

use crate::boundaries::BoundaryImport;
use crate::clock::ManualClock;
use crate::keys::KeyRing;
use crate::test_support::{FUTIAN, LUOHU, PASSWORD, T0, config, start};
use crate::{Caller, Engine, NewBeat, NewDevice, NewIncident, UserChange};

const STATION: &str = "PS440304-01";

fn system() -> Caller {
    Caller::system("replay test")
}

fn point(lat: f64, lon: f64) -> LatLon {
    LatLon::new(lat, lon).unwrap()
}

fn square(x: f64, y: f64, size: f64) -> Area {
    Area::from_rings(vec![vec![vec![[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]]]).unwrap()
}

/// A city with shapes: Futian 114.0–114.1°E, Luohu 114.1–114.2°E.
async fn city(engine: &Engine) {
    use JurisdictionKind::*;
    let node = |code: &str, kind, parent: Option<&str>| Jurisdiction {
        code: code.into(),
        kind,
        parent: parent.map(Into::into),
        name_zh: format!("辖区{code}"),
        name_en: None,
    };
    let tree = vec![
        node("440300", City, None),
        node(FUTIAN, District, Some("440300")),
        node(LUOHU, District, Some("440300")),
        node(STATION, PoliceStation, Some(FUTIAN)),
    ];
    engine.import_jurisdictions(&system(), tree).await.unwrap();
    let rectangle = |x0: f64, x1: f64| {
        serde_json::json!({"type": "Polygon",
        "coordinates": [[[x0, 22.5], [x1, 22.5], [x1, 22.6], [x0, 22.6], [x0, 22.5]]]})
    };
    let file = serde_json::json!({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": FUTIAN}, "geometry": rectangle(114.0, 114.1)},
        {"type": "Feature", "properties": {"code": LUOHU}, "geometry": rectangle(114.1, 114.2)},
    ]});
    let options = BoundaryImport::new(District, Crs::Wgs84);
    engine.import_boundaries(&system(), &serde_json::to_vec(&file).unwrap(), &options).await.unwrap();
}

async fn user(engine: &Engine, username: &str, role: Role) {
    let new = NewUser { username: username.into(), display_name: username.into(), role, jurisdiction: FUTIAN.into() };
    engine.create_user(&system(), new, PASSWORD).await.unwrap();
}

async fn signed_in(engine: &Engine, username: &str) -> (Caller, String) {
    let login = engine.login(username, PASSWORD, None, Some("10.0.0.9")).await.unwrap();
    let actor = engine.authenticate(&login.token).unwrap().actor;
    (Caller::new(fangkong_core::auth::Actor::User(actor)).with_purpose("replay test"), login.token)
}

/// Everything the live picture holds, changed the way users change it: sessions opened,
/// one signed out and a disabled user's ended; beats and units saved and one re-saved;
/// trackers moving (one refused fix, one fix outside the city); incidents created, sent,
/// worked, one closed; a panic alarm that became an incident.
async fn a_shift_of_work(engine: &Arc<Engine>, clock: &ManualClock) {
    city(engine).await;
    for (name, role) in [("disp.1", Role::Dispatcher), ("disp.2", Role::Dispatcher), ("officer.1", Role::PatrolMember)]
    {
        user(engine, name, role).await;
    }
    let (dispatcher, _) = signed_in(engine, "disp.1").await;
    let (_, second) = signed_in(engine, "disp.1").await;
    let (leaving, token) = signed_in(engine, "disp.2").await;
    signed_in(engine, "officer.1").await;
    engine.logout(&leaving, &token).await.unwrap();
    drop(second);

    let beats = ["B1", "B2"].map(|code| NewBeat {
        code: code.into(),
        station: STATION.into(),
        name: format!("巡区{code}"),
        shape: Some(square(114.02 + if code == "B1" { 0.0 } else { 0.03 }, 22.52, 0.02)),
        grids: Vec::new(),
    });
    engine.save_beats(&system(), beats.to_vec()).await.unwrap();
    engine.set_area_class(&system(), LUOHU, Some(AreaClass::Suburban)).await.unwrap();
    engine.set_area_class(&system(), FUTIAN, Some(AreaClass::Suburban)).await.unwrap();
    engine.set_area_class(&system(), FUTIAN, None).await.unwrap();
    let unit = |code: &str, mode, beat: Option<&str>| Unit {
        code: code.into(),
        call_sign: format!("呼号{code}"),
        station: STATION.into(),
        category: ForceCategory::Police,
        mode,
        equipment: vec!["radio".into()],
        beat: beat.map(Into::into),
        capabilities: Vec::new(),
    };
    let units = vec![
        unit("CAR1", PatrolMode::Vehicle, Some("B1")),
        unit("CAR2", PatrolMode::Vehicle, Some("B2")),
        unit("FOOT1", PatrolMode::Foot, None),
        unit("IDLE", PatrolMode::Foot, None),
    ];
    engine.save_units(&system(), units).await.unwrap();
    clock.advance_millis(1_000);
    engine.save_unit(&system(), unit("FOOT1", PatrolMode::Bicycle, Some("B2"))).await.unwrap();
    for code in ["CAR1", "CAR2", "FOOT1", "IDLE"] {
        let new = NewDevice {
            unique_id: format!("trk-{code}"),
            kind: DeviceKind::Tracker,
            unit: Some(code.into()),
            jurisdiction: FUTIAN.into(),
            name: None,
            location: None,
        };
        engine.add_device(&system(), new).await.unwrap();
        if code != "IDLE" {
            engine.set_unit_status(&system(), code, UnitStatus::Available).await.unwrap();
        }
    }
    for step in 0..5 {
        clock.advance_millis(10_000);
        for (n, code) in ["CAR1", "CAR2", "FOOT1"].iter().enumerate() {
            let at = point(22.53 + 0.002 * step as f64, 114.03 + 0.02 * n as f64);
            engine.ingest_fix(&format!("trk-{code}"), Fix::new(engine.now(), at)).await.unwrap();
        }
    }
    // A fix from the past (refused) and one outside the city (accepted, placed nowhere).
    let stale = engine.ingest_fix("trk-CAR1", Fix::new(T0, point(22.54, 114.05))).await.unwrap();
    assert!(matches!(stale, crate::avl::Ingested::Rejected(_)));
    clock.advance_millis(10_000);
    let outside = engine.ingest_fix("trk-IDLE", Fix::new(engine.now(), point(22.7, 113.8))).await.unwrap();
    assert_eq!(outside, crate::avl::Ingested::Accepted);

    let call = |type_code: &str, lat: f64, lon: f64| NewIncident {
        source: "110".into(),
        type_code: type_code.into(),
        point: Some(point(lat, lon)),
        address: "红荔路".into(),
        description: "replay".into(),
        caller_phone: Some("13812345678".into()),
        ..NewIncident::default()
    };
    let first = engine.create_incident(&dispatcher, call("010301", 22.54, 114.04)).await.unwrap().incident;
    let second = engine.create_incident(&dispatcher, call("020100", 22.55, 114.06)).await.unwrap().incident;
    let third = engine.create_incident(&dispatcher, call("010301", 22.53, 114.05)).await.unwrap().incident;
    engine.assign_units(&dispatcher, first.id, &["CAR1".into()]).await.unwrap();
    clock.advance_millis(30_000);
    engine.set_unit_status(&system(), "CAR1", UnitStatus::EnRoute).await.unwrap();
    engine.set_unit_status(&system(), "CAR1", UnitStatus::OnScene).await.unwrap();
    engine.assign_units(&dispatcher, second.id, &["CAR2".into()]).await.unwrap();
    engine.note_incident(&dispatcher, second.id, "caller called back").await.unwrap();
    engine.incident_action(&dispatcher, third.id, IncidentAction::Cancel, Some("duplicate")).await.unwrap();

    // A panic alarm: stored, then an incident raised by the reaction task.
    clock.advance_millis(10_000);
    let mut sos = Fix::new(engine.now(), point(22.539, 114.07));
    sos.alarm = Some("sos".into());
    engine.ingest_fix("trk-FOOT1", sos).await.unwrap();
    engine.reactions_settled().await;

    // A disabled user's sessions end.
    engine
        .update_user(&system(), "officer.1", UserChange { disabled: Some(true), ..Default::default() })
        .await
        .unwrap();
    // And a session is used (its last use is telemetry, not part of the picture).
    clock.advance_millis(1_000);
    engine.authenticate(&token).ok();
}

#[tokio::test]
async fn a_fresh_engine_fed_the_outbox_alone_holds_the_live_picture_of_the_engine_that_wrote_it() {
    for written in TestDatabase::all().await {
        let backend = written.backend();
        let clock = ManualClock::new(T0);
        let keys = KeyRing::generate();
        let engine = start(&written.url, &clock, config(&keys)).await.unwrap();
        a_shift_of_work(&engine, &clock).await;
        // Every accepted fix stored (the history writer batches), then the picture taken.
        engine.shutdown().await;
        let picture = engine.live_picture();
        assert_eq!(picture.sessions.len(), 2, "{backend:?}: disp.1 twice; disp.2 signed out, officer.1 disabled");
        assert_eq!((picture.units.len(), picture.beats.len(), picture.dispatch_units.len()), (4, 2, 4));
        assert_eq!(picture.open_incidents.len(), 3, "{backend:?}: two calls and the panic; one cancelled");
        assert_eq!(picture.last_fixes.len(), 4);
        assert_eq!(picture.area_classes.iter().collect::<Vec<_>>(), [(&LUOHU.to_string(), &AreaClass::Suburban)]);
        assert!(picture.last_fixes.values().any(|(_, _, _, chain)| *chain == Default::default()), "one placed nowhere");
        assert_eq!(picture.dispatch_units["CAR1"].1.status, UnitStatus::OnScene);
        assert_eq!(picture.units["FOOT1"].mode, PatrolMode::Bicycle, "the re-saved record");

        let store = Store::open(&written.url).await.unwrap();
        let outbox = store.outbox_after(0, 1_000_000).await.unwrap();
        assert!(outbox.windows(2).all(|w| w[1].seq > w[0].seq), "{backend:?}: numbered in order");
        store.close().await;

        let fresh = match backend {
            fangkong_store::Backend::Sqlite => TestDatabase::sqlite(),
            fangkong_store::Backend::Postgres => TestDatabase::postgres().await.unwrap(),
        };
        let replayed = start(&fresh.url, &clock, config(&keys)).await.unwrap();
        let empty = replayed.live_picture();
        assert!(empty.sessions.is_empty() && empty.units.is_empty() && empty.open_incidents.is_empty());
        replayed.apply_recorded(&outbox);
        assert_eq!(replayed.live_picture(), picture, "{backend:?}");
        replayed.shutdown().await;
    }
}
