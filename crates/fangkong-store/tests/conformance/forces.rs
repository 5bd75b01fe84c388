//! The force registry: beats, units, the roster and sealed members on both backends.

use fangkong_core::audit::{AuditEntry, Outcome};
use fangkong_core::auth::Actor;
use fangkong_core::forces::{Beat, ForceCategory, PatrolMode, Shift, Unit};
use fangkong_core::time::Timestamp;
use fangkong_geo::Area;
use fangkong_store::{SealedMember, StoreError};

use crate::support::{TestDb, station};

conformance!(
    beats_and_units_round_trip_and_update_in_place,
    shifts_are_found_by_the_window_they_run_in,
    members_round_trip_sealed_and_identity_numbers_are_unique,
    batches_of_beats_and_units_are_stored_all_or_none,
    a_shift_is_read_and_deleted_by_id_and_a_member_deactivated,
);

async fn a_shift_is_read_and_deleted_by_id_and_a_member_deactivated(db: &TestDb) {
    station(db).await;
    db.store.save_beat(&beat("B1", 114.0), T0, &entry("beat.save")).await.unwrap();
    db.store.save_unit(&unit("U1"), T0, &entry("unit.save")).await.unwrap();
    let ids = db.store.insert_shifts(&[shift("U1", 0, 8)], &entry("roster.add")).await.unwrap();
    assert_eq!(db.store.shift(ids[0]).await.unwrap(), Some(shift("U1", 0, 8)));
    db.store.delete_shift(ids[0], &entry("roster.delete")).await.unwrap();
    assert_eq!(db.store.shift(ids[0]).await.unwrap(), None);
    assert!(matches!(db.store.delete_shift(ids[0], &entry("roster.delete")).await, Err(StoreError::NotFound { .. })));
    let id = db.store.insert_member(&member(1), &entry("member.add")).await.unwrap();
    db.store.set_member_active(id, false, T0.plus_seconds(60), &entry("member.update")).await.unwrap();
    let stored = db.store.list_members().await.unwrap();
    assert_eq!((stored[0].active, stored[0].updated_at), (false, T0.plus_seconds(60)));
    assert!(matches!(
        db.store.set_member_active(id + 1, false, T0, &entry("member.update")).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn batches_of_beats_and_units_are_stored_all_or_none(db: &TestDb) {
    station(db).await;
    db.store.save_beats(&[beat("B1", 114.0), beat("B2", 114.1)], T0, &entry("beat.save")).await.unwrap();
    assert_eq!(db.store.list_beats().await.unwrap().len(), 2);
    db.store.save_units(&[unit("U1"), unit("U2")], T0, &entry("unit.save")).await.unwrap();
    // The third unit's beat does not exist: none of the batch is stored.
    let broken = Unit { beat: Some("nowhere".into()), ..unit("U5") };
    assert!(db.store.save_units(&[unit("U3"), unit("U4"), broken], T0, &entry("unit.save")).await.is_err());
    let codes: Vec<String> = db.store.list_units().await.unwrap().into_iter().map(|u| u.code).collect();
    assert_eq!(codes, ["U1", "U2"]);
}

const T0: Timestamp = Timestamp::from_millis(1_764_288_000_000);

fn entry(action: &str) -> AuditEntry {
    AuditEntry::new(T0, &Actor::System { name: "test".into() }, action, Outcome::Allowed)
}

fn beat(code: &str, x: f64) -> Beat {
    let shape =
        Area::from_rings(vec![vec![vec![[x, 22.5], [x + 0.01, 22.5], [x + 0.01, 22.51], [x, 22.51], [x, 22.5]]]])
            .unwrap();
    Beat { code: code.into(), station: "440304501".into(), name: format!("巡区{code}"), shape }
}

fn unit(code: &str) -> Unit {
    Unit {
        code: code.into(),
        call_sign: format!("福田{code}"),
        station: "440304501".into(),
        category: ForceCategory::SecurityGuard,
        mode: PatrolMode::Bicycle,
        equipment: vec!["对讲机".into(), "执法记录仪".into()],
        beat: Some("B1".into()),
        capabilities: vec!["traffic".into()],
    }
}

async fn beats_and_units_round_trip_and_update_in_place(db: &TestDb) {
    station(db).await;
    db.store.save_beat(&beat("B1", 114.0), T0, &entry("beat.save")).await.unwrap();
    db.store.save_beat(&beat("B2", 114.01), T0, &entry("beat.save")).await.unwrap();
    db.store.save_unit(&unit("U1"), T0, &entry("unit.save")).await.unwrap();
    assert_eq!(db.store.list_beats().await.unwrap(), vec![beat("B1", 114.0), beat("B2", 114.01)]);
    assert_eq!(db.store.list_units().await.unwrap(), vec![unit("U1")]);
    let moved = Unit { mode: PatrolMode::Foot, equipment: Vec::new(), beat: Some("B2".into()), ..unit("U1") };
    db.store.save_unit(&moved, T0, &entry("unit.save")).await.unwrap();
    db.store.save_beat(&beat("B1", 114.05), T0, &entry("beat.save")).await.unwrap();
    assert_eq!(db.store.list_units().await.unwrap(), vec![moved]);
    assert_eq!(db.store.list_beats().await.unwrap()[0], beat("B1", 114.05));
}

fn shift(unit: &str, from_hours: i64, to_hours: i64) -> Shift {
    Shift {
        unit: unit.into(),
        beat: "B1".into(),
        starts_at: T0.plus_seconds(from_hours * 3_600),
        ends_at: T0.plus_seconds(to_hours * 3_600),
    }
}

async fn shifts_are_found_by_the_window_they_run_in(db: &TestDb) {
    station(db).await;
    db.store.save_beat(&beat("B1", 114.0), T0, &entry("beat.save")).await.unwrap();
    db.store.save_unit(&unit("U1"), T0, &entry("unit.save")).await.unwrap();
    db.store.save_unit(&unit("U2"), T0, &entry("unit.save")).await.unwrap();
    let ids = db
        .store
        .insert_shifts(&[shift("U1", 0, 8), shift("U1", 8, 16), shift("U2", 20, 30)], &entry("roster.add"))
        .await
        .unwrap();
    assert_eq!(ids.len(), 3);
    let window = |from: i64, to: i64| {
        let store = &db.store;
        async move {
            store
                .shifts_between(T0.plus_seconds(from * 3_600), T0.plus_seconds(to * 3_600))
                .await
                .unwrap()
                .into_iter()
                .map(|(_, s)| s)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(window(7, 9).await, vec![shift("U1", 0, 8), shift("U1", 8, 16)]);
    assert_eq!(window(16, 20).await, Vec::<Shift>::new(), "half-open at both ends");
    assert_eq!(window(25, 26).await, vec![shift("U2", 20, 30)], "a shift that started before the window");
    db.store.delete_shift(ids[0], &entry("roster.delete")).await.unwrap();
    assert_eq!(window(0, 1).await, Vec::<Shift>::new());
    let missing = db.store.delete_shift(999_999, &entry("roster.delete")).await;
    assert!(matches!(missing, Err(StoreError::NotFound { entity: "shift", .. })), "{missing:?}");
    // A shift for a unit that does not exist is refused by the database.
    assert!(db.store.insert_shifts(&[shift("U9", 0, 1)], &entry("roster.add")).await.is_err());
}

fn member(index: u8) -> SealedMember {
    SealedMember {
        id: 0,
        category: ForceCategory::Volunteer,
        station: "440304501".into(),
        unit: None,
        name_sealed: vec![1, 2, 3, index],
        id_number_sealed: vec![4, 5, 6, index],
        id_number_index: vec![index; 32],
        phone_sealed: Some(vec![7, 8]),
        active: true,
        created_at: T0,
        updated_at: T0,
    }
}

async fn members_round_trip_sealed_and_identity_numbers_are_unique(db: &TestDb) {
    station(db).await;
    let first = db.store.insert_member(&member(1), &entry("member.add")).await.unwrap();
    let second =
        db.store.insert_member(&SealedMember { phone_sealed: None, ..member(2) }, &entry("member.add")).await.unwrap();
    assert!(second > first);
    let stored = db.store.list_members().await.unwrap();
    assert_eq!(
        stored,
        vec![SealedMember { id: first, ..member(1) }, SealedMember { id: second, phone_sealed: None, ..member(2) }]
    );
    let duplicate = db.store.insert_member(&member(1), &entry("member.add")).await;
    assert!(matches!(duplicate, Err(StoreError::Conflict { entity: "force member", .. })), "{duplicate:?}");
    // Re-keyed: a new (16-byte) index and new seals replace the old ones, all or none.
    let rekeyed = SealedMember { id: first, id_number_index: vec![9; 16], name_sealed: vec![9], ..member(1) };
    let unknown = SealedMember { id: second + 100, ..member(3) };
    assert!(db.store.rekey_members(vec![rekeyed.clone(), unknown]).await.is_err());
    assert_eq!(db.store.list_members().await.unwrap()[0], SealedMember { id: first, ..member(1) }, "none");
    db.store.rekey_members(vec![rekeyed.clone()]).await.unwrap();
    assert_eq!(db.store.list_members().await.unwrap()[0], rekeyed);
}
