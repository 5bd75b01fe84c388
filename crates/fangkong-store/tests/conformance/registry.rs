//! The housing registry on both backends: records round-trip, a failed import leaves
//! nothing, references and unique identity indexes are enforced with the field named.

use fangkong_core::audit::{AuditEntry, Outcome};
use fangkong_core::auth::Actor;
use fangkong_core::documents::DocumentKind;
use fangkong_core::registry::{
    Building, BuildingKind, HousingUnit, Permit, PermitKind, Sex, Sighting, Tenancy, UnitUse, Workstation,
};
use fangkong_core::time::Timestamp;
use fangkong_store::StoreError;
use fangkong_store::registry::{ImportFeed, RegistryChange, RegistryRecord, SealedResident};

use crate::support::TestDb;

conformance!(
    registry_records_round_trip_and_imports_are_all_or_nothing,
    residents_are_found_by_their_current_keys_only,
    an_import_stores_each_resident_as_given_whatever_its_neighbours_share
);

const T0: Timestamp = Timestamp::from_millis(1_764_288_000_000);

fn entry(action: &str) -> AuditEntry {
    AuditEntry::new(T0, &Actor::System { name: "test".into() }, action, Outcome::Allowed)
}

fn change(code: &str) -> RegistryChange {
    RegistryChange {
        seq: 0,
        at: T0,
        entity: "test".into(),
        code: code.into(),
        community: "C1".into(),
        change: "saved".into(),
        actor: "test".into(),
    }
}

/// Building B1 of grid G1, community C1.
fn building_b1() -> Building {
    Building {
        code: "B1".into(),
        address: "园岭新村1号楼".into(),
        grid: "G1".into(),
        community: "C1".into(),
        lon: 114.05,
        lat: 22.55,
        kind: BuildingKind::UrbanVillage,
        floors: 7,
    }
}

/// A rental unit of building B1.
fn unit_of_b1(code: &str) -> HousingUnit {
    HousingUnit {
        code: code.into(),
        building: "B1".into(),
        floor: 3,
        area_m2: 20.0,
        rooms: 1,
        usage: UnitUse::Residential,
        rent_yuan: None,
        rental: true,
        landlord: None,
        community: "C1".into(),
    }
}

fn resident(code: &str, index: u8) -> RegistryRecord {
    person(code, index, "张伟")
}

fn person(code: &str, index: u8, name: &str) -> RegistryRecord {
    RegistryRecord::Resident(Box::new(SealedResident {
        code: code.into(),
        document: DocumentKind::ResidentId,
        sealed: vec![index; 40],
        id_index: [index; 16],
        phone_index: Some([index ^ 0xff; 16]),
        name: name.into(),
        sex: Sex::Male,
        birth: 7_000,
        origin_province: None,
        origin_city: None,
        employer: None,
        unit: Some("U1".into()),
        grid: "G1".into(),
        community: "C1".into(),
    }))
}

async fn feed(db: &TestDb, batches: Vec<ImportFeed>) -> Result<u64, StoreError> {
    let (send, receive) = tokio::sync::mpsc::channel(4);
    let sending = async move {
        for batch in batches {
            send.send(batch).await.unwrap();
        }
    };
    let audit = entry("import");
    let (result, ()) = tokio::join!(db.store.import_registry(receive, change("import"), &audit), sending);
    result.map(|counts| counts.rows)
}

async fn registry_records_round_trip_and_imports_are_all_or_nothing(db: &TestDb) {
    let building = building_b1();
    let unit = HousingUnit { rent_yuan: Some(1500), ..unit_of_b1("U1") };
    let records = vec![RegistryRecord::Building(building.clone()), RegistryRecord::Unit(unit.clone())];
    db.store.write_registry(records, vec![change("B1")], &entry("property")).await.unwrap();
    assert_eq!(db.store.building("B1").await.unwrap(), Some(building.clone()));
    assert_eq!(db.store.housing_unit("U1").await.unwrap(), Some(unit.clone()));
    assert_eq!(db.store.search_buildings("新村", None, 10).await.unwrap(), vec![building.clone()]);
    assert!(db.store.search_buildings("新村", Some(vec!["C2".into()]), 10).await.unwrap().is_empty());

    // An import that ends in an abort leaves nothing; one that ends cleanly everything.
    let aborted = feed(db, vec![ImportFeed::Batch(vec![(2, resident("R1", 1))]), ImportFeed::Abort("bad".into())]);
    assert!(matches!(aborted.await, Err(StoreError::Rejected { .. })));
    assert_eq!(db.store.count_residents().await.unwrap(), 0);
    let rows = vec![(2, resident("R1", 1)), (3, resident("R2", 2))];
    assert_eq!(feed(db, vec![ImportFeed::Batch(rows)]).await.unwrap(), 2);
    let found = db.store.resident_by_id_index(&[1; 16]).await.unwrap().unwrap();
    assert_eq!((found.code.as_str(), found.sealed.as_slice()), ("R1", &[1u8; 40][..]));
    assert_eq!(db.store.residents_by_phone_index(&[2 ^ 0xff; 16], None, 10).await.unwrap()[0].code, "R2");
    assert_eq!(db.store.residents_by_name("张伟", vec!["C1".into()], 10).await.unwrap().len(), 2);
    assert_eq!(db.store.residents_page(None, 0, 1).await.unwrap().len(), 1);

    // A row the store refuses names its row and field, and the import leaves nothing.
    let taken = vec![(2, resident("R3", 3)), (3, resident("R4", 1))];
    match feed(db, vec![ImportFeed::Batch(taken)]).await {
        Err(StoreError::Rejected { row: 3, field: "id_number", .. }) => {}
        other => panic!("{other:?}"),
    }
    let missing = RegistryRecord::Tenancy(Tenancy {
        code: "T9".into(),
        unit: "U9".into(),
        landlord: None,
        lessee: "R1".into(),
        members: vec!["R1".into()],
        move_in: 20_000,
        move_out: None,
        community: "C1".into(),
    });
    match feed(db, vec![ImportFeed::Batch(vec![(5, missing)])]).await {
        Err(StoreError::Rejected { row: 5, field: "unit", message }) => assert!(message.contains("U9")),
        other => panic!("{other:?}"),
    }
    assert_eq!(db.store.count_residents().await.unwrap(), 2);

    // Tenancies with members, move-out, permits, sightings, the card and the stream.
    let tenancy = Tenancy {
        code: "T1".into(),
        unit: "U1".into(),
        landlord: None,
        lessee: "R2".into(),
        members: vec!["R2".into(), "R1".into()],
        move_in: 20_000,
        move_out: None,
        community: "C1".into(),
    };
    let permit = Permit {
        resident: "R1".into(),
        kind: PermitKind::ResidencePermit,
        issued: 19_900,
        expires: 20_300,
        endorsed: None,
        community: "C1".into(),
    };
    let sighting = Sighting {
        id: 0,
        resident: "R1".into(),
        unit: "U1".into(),
        community: "C1".into(),
        day: 20_100,
        by: "coordinator".into(),
        note: String::new(),
    };
    let records = vec![
        RegistryRecord::Tenancy(tenancy.clone()),
        RegistryRecord::Permit(permit.clone()),
        RegistryRecord::Sighting(sighting),
    ];
    db.store.write_registry(records, vec![change("T1")], &entry("move_in")).await.unwrap();
    assert_eq!(db.store.tenancy("T1").await.unwrap(), Some(tenancy.clone()));
    assert_eq!(db.store.tenancies_of("R1").await.unwrap(), vec![tenancy.clone()]);
    assert!(db.store.unmatched_sightings(None, 10).await.unwrap().is_empty(), "T1 lists R1 at U1");
    let occupancy = db.store.occupancies(None, 10).await.unwrap();
    assert_eq!((occupancy[0].unit.as_str(), occupancy[0].persons), ("U1", 2));
    assert_eq!(db.store.permits_due(None, 20_300, 10).await.unwrap(), vec![permit]);
    assert!(db.store.permits_due(None, 20_299, 10).await.unwrap().is_empty());
    let out = vec![RegistryRecord::MoveOut { tenancy: "T1".into(), day: 19_000 }];
    match db.store.write_registry(out, Vec::new(), &entry("move_out")).await {
        Err(StoreError::Rejected { field: "move_out", .. }) => {}
        other => panic!("a move-out before move-in: {other:?}"),
    }
    let out = vec![RegistryRecord::MoveOut { tenancy: "T1".into(), day: 20_200 }];
    db.store.write_registry(out, vec![change("T1")], &entry("move_out")).await.unwrap();
    assert_eq!(db.store.tenancy("T1").await.unwrap().unwrap().move_out, Some(20_200));
    assert_eq!(db.store.unmatched_sightings(None, 10).await.unwrap().len(), 1, "no open tenancy now");
    let card = db.store.property_card("B1").await.unwrap();
    assert_eq!((card.units.len(), card.tenancies.len(), card.residents.len()), (1, 1, 2));
    let changes = db.store.registry_changes(0, 100).await.unwrap();
    let said: Vec<_> = changes.iter().map(|c| c.change.as_str()).collect();
    assert_eq!(said, ["saved", "saved:2", "saved", "saved"]);
    assert!(changes.windows(2).all(|w| w[0].seq < w[1].seq));

    // A workstation is found by its code (the write guard asks where a code is filed).
    let station =
        Workstation {
            code: "W1".into(), community: "C1".into(), name: "园岭工作站".into(), address: String::new()
        };
    let records = vec![RegistryRecord::Workstation(station.clone())];
    db.store.write_registry(records, vec![change("W1")], &entry("workstation")).await.unwrap();
    assert_eq!(db.store.workstation("W1").await.unwrap(), Some(station));
    assert_eq!(db.store.workstation("W2").await.unwrap(), None);

    // An imported resident's unit must be on the registry, whether it was there before the
    // import (U1), is not (U8: the import fails at its row), or is written by the same import.
    let in_unit = |code: &str, index: u8, unit: &str| match resident(code, index) {
        RegistryRecord::Resident(mut r) => {
            r.unit = Some(unit.into());
            (index.into(), RegistryRecord::Resident(r))
        }
        _ => unreachable!(),
    };
    let rows = vec![in_unit("R5", 5, "U1"), in_unit("R6", 6, "U8"), in_unit("R7", 7, "U1")];
    match feed(db, vec![ImportFeed::Batch(rows)]).await {
        Err(StoreError::Rejected { row: 6, field: "unit", message }) => assert!(message.contains("U8"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(db.store.resident("R5").await.unwrap().is_none());
    // The first batch has the resident's statement ready on the import's connection before
    // the second asks for the unit's (PostgreSQL once ran them out of order then).
    let first = vec![in_unit("R7", 7, "U1")];
    let then = vec![(4, RegistryRecord::Unit(unit_of_b1("U8"))), in_unit("R6", 6, "U8")];
    assert_eq!(feed(db, vec![ImportFeed::Batch(first), ImportFeed::Batch(then)]).await.unwrap(), 3);
    assert_eq!(db.store.resident("R6").await.unwrap().unwrap().unit.as_deref(), Some("U8"));
    let rows = vec![in_unit("R5", 5, "U8")];
    assert_eq!(feed(db, vec![ImportFeed::Batch(rows)]).await.unwrap(), 1);
}

/// Re-registrations, imports that update residents or list one twice, and clashes of
/// identity numbers: lookups by number, phone and name find exactly the current holders.
async fn residents_are_found_by_their_current_keys_only(db: &TestDb) {
    let by_id = |i: u8| async move { db.store.resident_by_id_index(&[i; 16]).await.unwrap().map(|r| r.code) };
    let by_phone = |i: u8| async move {
        db.store.residents_by_phone_index(&[i ^ 0xff; 16], None, 10).await.unwrap().into_iter().map(|r| r.code)
    };
    let by_name = |name: &'static str| async move {
        let found = db.store.residents_by_name(name, vec!["C1".into(), "C2".into()], 10).await.unwrap();
        found.into_iter().map(|r| r.code).collect::<Vec<_>>()
    };
    let property = vec![RegistryRecord::Building(building_b1()), RegistryRecord::Unit(unit_of_b1("U1"))];
    db.store.write_registry(property, Vec::new(), &entry("property")).await.unwrap();
    let rows = vec![(2, resident("R1", 1)), (3, resident("R2", 2))];
    feed(db, vec![ImportFeed::Batch(rows)]).await.unwrap();
    assert_eq!(by_name("张伟").await, ["R1", "R2"]);

    // R1 registers again with another number, phone and name: only the new ones find them.
    let again = vec![person("R1", 9, "李娜")];
    db.store.write_registry(again, Vec::new(), &entry("resident")).await.unwrap();
    assert_eq!((by_id(1).await, by_id(9).await), (None, Some("R1".to_string())));
    assert_eq!((by_phone(1).await.count(), by_phone(9).await.collect::<Vec<_>>()), (0, vec!["R1".to_string()]));
    assert_eq!((by_name("张伟").await, by_name("李娜").await), (vec!["R2".to_string()], vec!["R1".to_string()]));

    // Another resident may not take a number that is registered.
    match db.store.write_registry(vec![resident("R3", 2)], Vec::new(), &entry("resident")).await {
        Err(StoreError::Conflict { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(db.store.resident("R3").await.unwrap().is_none());

    // An import that moves R2 to a new number frees the old one for a new resident; a
    // resident on two rows is registered as the later row says.
    let rows = vec![(2, resident("R2", 12)), (3, resident("R4", 2)), (4, resident("R5", 5)), (5, resident("R5", 6))];
    feed(db, vec![ImportFeed::Batch(rows)]).await.unwrap();
    let found = [by_id(2).await, by_id(12).await, by_id(5).await, by_id(6).await];
    assert_eq!(found, [Some("R4".into()), Some("R2".into()), None, Some("R5".into())]);
    assert_eq!(by_phone(5).await.count(), 0);
    assert_eq!(by_name("张伟").await, ["R2", "R4", "R5"]);

    // A number another resident holds fails the import at its row; nothing of it stays.
    let rows = vec![(2, resident("R6", 7)), (3, resident("R2", 13)), (4, resident("R7", 9))];
    match feed(db, vec![ImportFeed::Batch(rows)]).await {
        Err(StoreError::Rejected { row: 4, field: "id_number", .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(db.store.resident("R6").await.unwrap().is_none());
    assert_eq!((by_id(12).await, by_id(13).await), (Some("R2".into()), None));

    // A permit on the resident's row comes in with them.
    let permit = Permit {
        resident: "R8".into(),
        kind: PermitKind::ResidencePermit,
        issued: 19_900,
        expires: 20_100,
        endorsed: Some(20_000),
        community: "C1".into(),
    };
    let rows = vec![(2, resident("R8", 8)), (2, RegistryRecord::Permit(permit.clone()))];
    feed(db, vec![ImportFeed::Batch(rows)]).await.unwrap();
    assert_eq!(db.store.permit("R8").await.unwrap(), Some(permit.clone()));
    assert_eq!(db.store.permits_due(Some(vec!["C1".into()]), 20_100, 10).await.unwrap(), vec![permit]);
    assert!(db.store.permits_due(Some(vec!["C2".into()]), 20_100, 10).await.unwrap().is_empty());
    assert_eq!(db.store.count_residents().await.unwrap(), 5);
}

/// Neighbouring rows of an import share most fields (SQLite binds a parameter again only
/// when it changes): each resident and permit reads back exactly as its own row gave it,
/// with fields that come and go, change and change back from row to row.
async fn an_import_stores_each_resident_as_given_whatever_its_neighbours_share(db: &TestDb) {
    let records = vec![
        RegistryRecord::Building(building_b1()),
        RegistryRecord::Unit(unit_of_b1("U1")),
        RegistryRecord::Unit(unit_of_b1("U2")),
    ];
    db.store.write_registry(records, vec![change("B1")], &entry("property")).await.unwrap();

    let people: Vec<(SealedResident, Option<Permit>)> = (1u8..=8)
        .map(|i| {
            let code = format!("R{i}");
            let odd = i % 2 == 1;
            let resident = SealedResident {
                code: code.clone(),
                document: if i % 3 == 0 { DocumentKind::HkMacauPermit } else { DocumentKind::ResidentId },
                sealed: vec![i; 40],
                id_index: [i; 16],
                phone_index: odd.then_some([i ^ 0xff; 16]),
                name: format!("居民{i}"),
                sex: if odd { Sex::Male } else { Sex::Female },
                birth: 7_000 + i64::from(i),
                origin_province: (i % 4 == 1).then(|| "湖南省".to_string()),
                origin_city: (i % 4 == 1).then(|| format!("城市{i}")),
                employer: (i == 5).then(|| "华强电子".to_string()),
                unit: match i {
                    1..=3 | 6 => Some("U1".into()),
                    4 | 5 => Some("U2".into()),
                    _ => None,
                },
                grid: if i < 7 { "G1".into() } else { "G2".into() },
                community: if i < 8 { "C1".into() } else { "C2".into() },
            };
            let permit = (i % 3 != 2).then(|| Permit {
                resident: code,
                kind: if i == 4 { PermitKind::TemporaryPermit } else { PermitKind::ResidencePermit },
                issued: 19_000 + i64::from(i),
                expires: 20_000 + i64::from(i),
                endorsed: (i == 3).then_some(19_500),
                community: resident.community.clone(),
            });
            (resident, permit)
        })
        .collect();
    let mut rows = Vec::new();
    for (n, (resident, permit)) in people.iter().enumerate() {
        let row = n as u64 + 2;
        rows.push((row, RegistryRecord::Resident(Box::new(resident.clone()))));
        if let Some(permit) = permit {
            rows.push((row, RegistryRecord::Permit(permit.clone())));
        }
    }
    assert_eq!(feed(db, vec![ImportFeed::Batch(rows)]).await.unwrap(), 13);
    for (resident, permit) in &people {
        assert_eq!(db.store.resident(&resident.code).await.unwrap().as_ref(), Some(resident), "{}", resident.code);
        assert_eq!(&db.store.permit(&resident.code).await.unwrap(), permit, "{}", resident.code);
    }
}
