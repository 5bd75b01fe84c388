//! The outbox: a change's events are stored with it, in its transaction, numbered in
//! increasing order; a refused change stores none.

use std::sync::Arc;

use fangkong_core::audit::{AuditEntry, Outcome};
use fangkong_core::auth::Actor;
use fangkong_core::event::Event;
use fangkong_core::forces::{ForceCategory, PatrolMode, Unit};
use fangkong_core::time::Timestamp;
use fangkong_store::{Audited, Backend, Outbox, StoreError};

use crate::support::{TestDb, station};

conformance!(
    a_changes_events_are_stored_with_it_in_order_and_read_back_as_written,
    a_refused_change_stores_none_of_its_events,
    the_events_of_an_insert_name_the_id_the_store_gave,
    concurrent_writers_each_store_their_events_once_numbered_in_order,
    old_events_are_purged_and_numbers_are_never_given_twice,
);

const T0: Timestamp = Timestamp::from_millis(1_764_288_000_000);

fn entry(action: &str) -> AuditEntry {
    AuditEntry::new(T0, &Actor::System { name: "test".into() }, action, Outcome::Allowed)
}

fn unit(code: &str) -> Unit {
    Unit {
        code: code.into(),
        call_sign: code.into(),
        station: "440304501".into(),
        category: ForceCategory::Police,
        mode: PatrolMode::Vehicle,
        equipment: Vec::new(),
        beat: None,
        capabilities: Vec::new(),
    }
}

/// Saves units with their `unit.saved` event.
async fn save(db: &TestDb, codes: &[&str], at: Timestamp) -> Result<(), StoreError> {
    let units: Vec<Unit> = codes.iter().map(|c| unit(c)).collect();
    let event = Event::UnitsSaved(units.clone());
    db.store.save_units(&units, at, Audited::new(entry("unit.save"), Outbox::new(at, [&event]))).await.map(|_| ())
}

async fn a_changes_events_are_stored_with_it_in_order_and_read_back_as_written(db: &TestDb) {
    station(db).await;
    assert_eq!(db.store.outbox_head().await.unwrap(), 0, "a change without events stores none");
    save(db, &["U1"], T0).await.unwrap();
    let two = [Event::SessionsEnded { user_id: 7 }, Event::UnitsSaved(vec![unit("U2")])];
    let at = T0.plus_seconds(5);
    db.store.save_units(&[unit("U2")], at, Audited::new(entry("unit.save"), Outbox::new(at, &two))).await.unwrap();
    let stored = db.store.outbox_after(0, 100).await.unwrap();
    let seen: Vec<(i64, Timestamp, &Event)> = stored.iter().map(|r| (r.seq, r.at, &r.event)).collect();
    assert_eq!(seen, vec![(1, T0, &Event::UnitsSaved(vec![unit("U1")])), (2, at, &two[0]), (3, at, &two[1]),]);
    assert_eq!(db.store.outbox_head().await.unwrap(), 3);
    assert_eq!(db.store.outbox_after(1, 1).await.unwrap().len(), 1, "paged");
    assert_eq!(db.store.outbox_after(3, 100).await.unwrap(), Vec::new());
}

async fn a_refused_change_stores_none_of_its_events(db: &TestDb) {
    // No station yet: the unit's foreign key refuses the write, and its event with it.
    assert!(save(db, &["U1"], T0).await.is_err());
    assert_eq!(db.store.outbox_head().await.unwrap(), 0);
    assert_eq!(db.store.audit_head().await.unwrap().seq, 0, "nor its audit record");
    station(db).await;
    save(db, &["U1"], T0).await.unwrap();
    assert_eq!(db.store.outbox_after(0, 10).await.unwrap().len(), 1);
}

async fn the_events_of_an_insert_name_the_id_the_store_gave(db: &TestDb) {
    station(db).await;
    let members = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&members);
    let outbox = Outbox::of_new_rows(T0, move |ids| {
        seen.lock().unwrap().extend_from_slice(ids);
        vec![Event::MemberChanged {
            id: ids[0],
            category: ForceCategory::Police,
            station: "440304501".into(),
            unit: None,
            active: true,
        }]
    });
    let member = fangkong_store::SealedMember {
        id: 0,
        category: ForceCategory::Police,
        station: "440304501".into(),
        unit: None,
        name_sealed: vec![1],
        id_number_sealed: vec![2],
        phone_sealed: None,
        id_number_index: vec![3; 16],
        active: true,
        created_at: T0,
        updated_at: T0,
    };
    let id = db.store.insert_member(&member, Audited::new(entry("member.add"), outbox)).await.unwrap();
    assert_eq!(*members.lock().unwrap(), vec![id]);
    let stored = db.store.outbox_after(0, 10).await.unwrap();
    assert!(matches!(stored[0].event, Event::MemberChanged { id: named, .. } if named == id));
}

async fn concurrent_writers_each_store_their_events_once_numbered_in_order(db: &TestDb) {
    station(db).await;
    let writers: Vec<_> = (0..24)
        .map(|n| {
            let store = Arc::clone(&db.store);
            tokio::spawn(async move {
                let units = vec![unit(&format!("U{n:02}"))];
                let event = Event::UnitsSaved(units.clone());
                let audited = Audited::new(entry("unit.save"), Outbox::new(T0, [&event]));
                store.save_units(&units, T0, audited).await.unwrap();
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let stored = db.store.outbox_after(0, 100).await.unwrap();
    assert_eq!(stored.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..=24).collect::<Vec<_>>());
    let mut codes: Vec<String> = stored
        .iter()
        .map(|r| match &r.event {
            Event::UnitsSaved(units) => units[0].code.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), 24, "every writer's event once");
    let audit = db.store.audit_page(0, 100).await.unwrap();
    assert_eq!(audit.iter().filter(|r| r.entry.action == "unit.save").count(), 24);
}

async fn old_events_are_purged_and_numbers_are_never_given_twice(db: &TestDb) {
    station(db).await;
    save(db, &["U1"], T0).await.unwrap();
    save(db, &["U2"], T0.plus_seconds(10)).await.unwrap();
    save(db, &["U3"], T0.plus_seconds(20)).await.unwrap();
    // Everything is older than the cut-off; the newest stays on SQLite (which would
    // otherwise number the next event with a number already given).
    let purged = db.store.purge_outbox(T0.plus_seconds(60)).await.unwrap();
    let left = db.store.outbox_after(0, 10).await.unwrap();
    match db.backend() {
        Backend::Sqlite => assert_eq!((purged, left.iter().map(|r| r.seq).collect::<Vec<_>>()), (2, vec![3])),
        Backend::Postgres => assert_eq!((purged, left.len()), (3, 0)),
    }
    save(db, &["U4"], T0.plus_seconds(70)).await.unwrap();
    assert_eq!(db.store.outbox_after(3, 10).await.unwrap()[0].seq, 4);
    assert_eq!(db.store.outbox_head().await.unwrap(), 4);
}
