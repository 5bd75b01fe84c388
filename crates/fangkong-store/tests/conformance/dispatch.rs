//! Dispatch: incidents, assignments, unit statuses, timelines and area classes on both
//! backends.

use fangkong_core::audit::{AuditEntry, Outcome};
use fangkong_core::auth::Actor;
use fangkong_core::dispatch::{
    AreaClass, Assignment, Incident, IncidentStatus, TimelineEntry, TimelineKind, UnitState, UnitStatus,
};
use fangkong_core::forces::{ForceCategory, PatrolMode, Unit};
use fangkong_core::jurisdiction::{Chain, Jurisdiction, JurisdictionKind};
use fangkong_core::time::Timestamp;
use fangkong_geo::LatLon;
use fangkong_store::{DispatchChange, HISTORY_CELL_RESOLUTION, Inserted, NewIncident, StoreError};

use crate::support::TestDb;

conformance!(
    incidents_round_trip_with_their_timeline,
    an_idempotency_key_finds_the_first_incident_and_writes_nothing,
    dispatch_changes_write_incidents_assignments_units_and_timeline_together,
    a_failed_dispatch_change_leaves_nothing_behind,
    a_change_from_a_stale_revision_is_refused,
    timelines_are_append_only,
    incidents_are_found_by_history_cell_and_by_period,
    area_classes_are_set_and_cleared,
);

const T0: Timestamp = Timestamp::from_millis(1_764_288_000_000);

fn entry(action: &str) -> AuditEntry {
    AuditEntry::new(T0, &Actor::System { name: "test".into() }, action, Outcome::Allowed)
}

async fn city(db: &TestDb) {
    let node = |code: &str, kind, parent: Option<&str>| Jurisdiction {
        code: code.into(),
        kind,
        parent: parent.map(Into::into),
        name_zh: code.into(),
        name_en: None,
    };
    let nodes = [
        node("440300", JurisdictionKind::City, None),
        node("440304", JurisdictionKind::District, Some("440300")),
        node("440304501", JurisdictionKind::PoliceStation, Some("440304")),
    ];
    db.store.insert_jurisdictions(&nodes, T0, &entry("jurisdiction.import")).await.unwrap();
    for code in ["U1", "U2"] {
        let unit = Unit {
            code: code.into(),
            call_sign: code.into(),
            station: "440304501".into(),
            category: ForceCategory::Police,
            mode: PatrolMode::Vehicle,
            equipment: Vec::new(),
            beat: None,
            capabilities: Vec::new(),
        };
        db.store.save_unit(&unit, T0, &entry("unit.save")).await.unwrap();
    }
}

fn incident(uid: &str, lat: f64, created: Timestamp) -> Incident {
    let mut chain = Chain::default();
    chain.set(JurisdictionKind::City, "440300");
    chain.set(JurisdictionKind::District, "440304");
    chain.set(JurisdictionKind::PoliceStation, "440304501");
    let point = LatLon::new(lat, 114.05).unwrap();
    Incident {
        id: 0,
        uid: uid.into(),
        source: "110".into(),
        type_code: "010301".into(),
        priority: 1,
        status: IncidentStatus::New,
        disposition: None,
        point,
        address: "福田区园岭街道".into(),
        chain,
        h3: point.h3_cell(9),
        description: "抢劫".into(),
        caller_phone_masked: Some("*******5678".into()),
        possible_duplicates: vec![7, 9],
        merged_into: None,
        area_class: AreaClass::Suburban,
        arrival_target_s: 600,
        created_by: "dispatcher".into(),
        created_at: created,
        updated_at: created,
        revision: 1,
        dispatched_at: None,
        arrived_at: None,
        resolved_at: None,
        closed_at: None,
        assignments: Vec::new(),
    }
}

fn created(at: Timestamp) -> TimelineEntry {
    TimelineEntry {
        incident: 0,
        at,
        actor: "dispatcher".into(),
        kind: TimelineKind::Created,
        unit: None,
        detail: "110".into(),
    }
}

async fn insert(db: &TestDb, incident: Incident, key: Option<&str>) -> Inserted {
    let new = NewIncident {
        timeline: vec![created(incident.created_at)],
        incident,
        caller_sealed: Some(vec![1, 2, 3]),
        idempotency: key.map(|k| (k.to_string(), [7; 32])),
    };
    db.store.insert_incident(new).await.unwrap()
}

async fn incidents_round_trip_with_their_timeline(db: &TestDb) {
    city(db).await;
    let Inserted::New(id) = insert(db, incident("a1", 22.54, T0), None).await else { panic!("inserted") };
    let stored = db.store.incident(id).await.unwrap().expect("stored");
    assert_eq!(stored, Incident { id, ..incident("a1", 22.54, T0) });
    assert_eq!(db.store.incident_caller(id).await.unwrap(), Some(vec![1, 2, 3]));
    let timeline = db.store.incident_timeline(id).await.unwrap();
    assert_eq!(timeline.len(), 1);
    assert_eq!(timeline[0].1, TimelineEntry { incident: id, ..created(T0) });
    assert_eq!(db.store.open_incidents().await.unwrap().len(), 1);
    assert!(db.store.incident(id + 100).await.unwrap().is_none());
}

async fn an_idempotency_key_finds_the_first_incident_and_writes_nothing(db: &TestDb) {
    city(db).await;
    let Inserted::New(id) = insert(db, incident("b1", 22.54, T0), Some("key-1")).await else { panic!() };
    let again = insert(db, incident("b2", 22.55, T0), Some("key-1")).await;
    assert_eq!(again, Inserted::Existing { id, request_hash: vec![7; 32] });
    // Another user may use the same key.
    let other = Incident { created_by: "other".into(), ..incident("b3", 22.55, T0) };
    assert!(matches!(insert(db, other, Some("key-1")).await, Inserted::New(_)));
    assert_eq!(db.store.open_incidents().await.unwrap().len(), 2, "the retry stored nothing");
}

async fn dispatch_changes_write_incidents_assignments_units_and_timeline_together(db: &TestDb) {
    city(db).await;
    let Inserted::New(id) = insert(db, incident("c1", 22.54, T0), None).await else { panic!() };
    let mut changed = db.store.incident(id).await.unwrap().unwrap();
    let t1 = T0.plus_seconds(30);
    let mut first = Assignment::new("U1", t1);
    first.advance(UnitStatus::EnRoute, t1.plus_seconds(5));
    changed.assignments = vec![first, Assignment::new("U2", t1)];
    changed.status = IncidentStatus::EnRoute;
    changed.dispatched_at = Some(t1);
    changed.revision = 2;
    changed.possible_duplicates.clear();
    let units = vec![
        UnitState { unit: "U1".into(), status: UnitStatus::EnRoute, since: t1, incident: Some(id), revision: 1 },
        UnitState { unit: "U2".into(), status: UnitStatus::Dispatched, since: t1, incident: Some(id), revision: 1 },
    ];
    let sent = TimelineEntry {
        incident: id,
        at: t1,
        actor: "dispatcher".into(),
        kind: TimelineKind::Dispatched,
        unit: Some("U1".into()),
        detail: String::new(),
    };
    let change = DispatchChange {
        incidents: vec![changed.clone()],
        units: units.clone(),
        timeline: vec![sent],
        outbox: Default::default(),
    };
    db.store.write_dispatch(change).await.unwrap();
    assert_eq!(db.store.incident(id).await.unwrap().unwrap(), changed);
    let listed = db.store.incidents_between(T0, T0.plus_seconds(60), 10, true).await.unwrap();
    assert_eq!(listed, [changed.clone()], "listed with their assignments");
    let bare = db.store.incidents_between(T0, T0.plus_seconds(60), 10, false).await.unwrap();
    assert_eq!(bare, [Incident { assignments: Vec::new(), ..changed.clone() }], "or without");
    assert_eq!(db.store.unit_statuses().await.unwrap(), units);
    assert_eq!(db.store.incident_timeline(id).await.unwrap().len(), 2);
    // Updating an assignment in place, and closing.
    changed.assignments[0].advance(UnitStatus::Returning, t1.plus_seconds(600));
    changed.assignments[1].advance(UnitStatus::Available, t1.plus_seconds(60));
    changed.status = IncidentStatus::Closed;
    changed.disposition = Some("resolved_on_scene".into());
    changed.closed_at = Some(t1.plus_seconds(700));
    changed.revision = 3;
    let freed = UnitState { unit: "U1".into(), status: UnitStatus::Available, since: t1, incident: None, revision: 2 };
    let change = DispatchChange {
        incidents: vec![changed.clone()],
        units: vec![freed.clone()],
        timeline: Vec::new(),
        outbox: Default::default(),
    };
    db.store.write_dispatch(change).await.unwrap();
    assert_eq!(db.store.incident(id).await.unwrap().unwrap(), changed);
    assert_eq!(db.store.unit_statuses().await.unwrap()[0], freed);
    assert!(db.store.open_incidents().await.unwrap().is_empty(), "closed incidents are not open");
}

async fn a_failed_dispatch_change_leaves_nothing_behind(db: &TestDb) {
    city(db).await;
    let Inserted::New(id) = insert(db, incident("d1", 22.54, T0), None).await else { panic!() };
    let mut changed = db.store.incident(id).await.unwrap().unwrap();
    changed.status = IncidentStatus::Dispatched;
    changed.assignments = vec![Assignment::new("U1", T0)];
    // A unit that does not exist breaks the change after the incident was updated.
    let ghost = UnitState {
        unit: "no-such-unit".into(),
        status: UnitStatus::Dispatched,
        since: T0,
        incident: None,
        revision: 1,
    };
    let change = DispatchChange {
        incidents: vec![changed],
        units: vec![ghost],
        timeline: Vec::new(),
        outbox: Default::default(),
    };
    assert!(db.store.write_dispatch(change).await.is_err());
    let stored = db.store.incident(id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.assignments.len()), (IncidentStatus::New, 0));
    assert!(db.store.unit_statuses().await.unwrap().is_empty());
    let missing = Incident { id: id + 1, ..incident("d2", 22.5, T0) };
    let change = DispatchChange { incidents: vec![missing], ..DispatchChange::default() };
    assert!(db.store.write_dispatch(change).await.is_err(), "an unknown incident is an error");
}

/// A change read at an older revision than the stored one is refused whole as stale: for
/// an incident, for a unit's status, and for a unit's first status when one was stored.
async fn a_change_from_a_stale_revision_is_refused(db: &TestDb) {
    city(db).await;
    let Inserted::New(id) = insert(db, incident("s1", 22.54, T0), None).await else { panic!() };
    let read = db.store.incident(id).await.unwrap().unwrap();
    let sent = |unit: &str, revision: i64| UnitState {
        unit: unit.into(),
        status: UnitStatus::Dispatched,
        since: T0,
        incident: Some(id),
        revision,
    };
    let mut first = read.clone();
    first.revision += 1;
    first.status = IncidentStatus::Dispatched;
    let change = DispatchChange {
        incidents: vec![first.clone()],
        units: vec![sent("U1", 1)],
        timeline: Vec::new(),
        outbox: Default::default(),
    };
    db.store.write_dispatch(change).await.unwrap();
    // Another writer read the same revision of the incident.
    let mut second = read.clone();
    second.revision += 1;
    second.description = "stale".into();
    let change = DispatchChange { incidents: vec![second], ..DispatchChange::default() };
    let refused = db.store.write_dispatch(change).await;
    assert!(matches!(refused, Err(StoreError::Stale { entity: "incident", .. })), "{refused:?}");
    // …or the unit's status before the first one was stored.
    let mut third = first.clone();
    third.revision += 1;
    let change = DispatchChange {
        incidents: vec![third.clone()],
        units: vec![sent("U1", 1)],
        timeline: Vec::new(),
        outbox: Default::default(),
    };
    let refused = db.store.write_dispatch(change).await;
    assert!(matches!(refused, Err(StoreError::Stale { entity: "unit", .. })), "{refused:?}");
    // …or at an older revision of it.
    let change = DispatchChange {
        incidents: vec![third.clone()],
        units: vec![sent("U1", 3)],
        timeline: Vec::new(),
        outbox: Default::default(),
    };
    assert!(matches!(db.store.write_dispatch(change).await, Err(StoreError::Stale { entity: "unit", .. })));
    // Nothing of the refused changes was stored (the incident's update went back too).
    assert_eq!(db.store.incident(id).await.unwrap().unwrap(), first);
    assert_eq!(db.store.unit_statuses().await.unwrap(), [sent("U1", 1)]);
    // The next revision is taken.
    let change = DispatchChange {
        incidents: vec![third.clone()],
        units: vec![sent("U1", 2)],
        timeline: Vec::new(),
        outbox: Default::default(),
    };
    db.store.write_dispatch(change).await.unwrap();
    assert_eq!(db.store.unit_statuses().await.unwrap(), [sent("U1", 2)]);
}

async fn timelines_are_append_only(db: &TestDb) {
    city(db).await;
    let Inserted::New(id) = insert(db, incident("e1", 22.54, T0), None).await else { panic!() };
    let update =
        db.try_execute_raw(&format!("UPDATE incident_timeline SET actor = 'x' WHERE incident_id = {id}")).await;
    assert!(update.is_err_and(|e| e.contains("append-only")));
    let delete = db.try_execute_raw(&format!("DELETE FROM incident_timeline WHERE incident_id = {id}")).await;
    assert!(delete.is_err_and(|e| e.contains("append-only")));
    assert_eq!(db.store.incident_timeline(id).await.unwrap().len(), 1);
}

async fn incidents_are_found_by_history_cell_and_by_period(db: &TestDb) {
    city(db).await;
    let old = T0.plus_seconds(-40 * 86_400);
    insert(db, incident("f1", 22.54, old), None).await;
    insert(db, incident("f2", 22.54, T0), None).await;
    insert(db, incident("f3", 22.5401, T0.plus_seconds(60)), None).await;
    insert(db, incident("f4", 22.70, T0), None).await;
    let cell = LatLon::new(22.54, 114.05).unwrap().h3_cell(HISTORY_CELL_RESOLUTION).unwrap();
    let near = db.store.incidents_in_cells(&[cell], T0.plus_seconds(-30 * 86_400), 10).await.unwrap();
    assert_eq!(near.iter().map(|i| i.uid.as_str()).collect::<Vec<_>>(), ["f3", "f2"], "newest first, recent only");
    let limited = db.store.incidents_in_cells(&[cell], old, 1).await.unwrap();
    assert_eq!(limited.len(), 1);
    let day = db.store.incidents_between(T0, T0.plus_seconds(86_400), 100, false).await.unwrap();
    assert_eq!(day.iter().map(|i| i.uid.as_str()).collect::<Vec<_>>(), ["f2", "f4", "f3"]);
}

async fn area_classes_are_set_and_cleared(db: &TestDb) {
    city(db).await;
    db.store.save_area_class("440304", Some(AreaClass::Suburban), T0, &entry("area_class.set")).await.unwrap();
    db.store.save_area_class("440300", Some(AreaClass::Urban), T0, &entry("area_class.set")).await.unwrap();
    db.store.save_area_class("440304", Some(AreaClass::Urban), T0, &entry("area_class.set")).await.unwrap();
    assert_eq!(
        db.store.area_classes().await.unwrap(),
        [("440300".to_string(), AreaClass::Urban), ("440304".to_string(), AreaClass::Urban)]
    );
    db.store.save_area_class("440304", None, T0, &entry("area_class.clear")).await.unwrap();
    assert_eq!(db.store.area_classes().await.unwrap().len(), 1);
    assert!(db.store.save_area_class("nowhere", Some(AreaClass::Urban), T0, &entry("x")).await.is_err());
}
