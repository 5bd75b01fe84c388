//! The housing registry on both backends: records round-trip, a failed import leaves
//! nothing, references and unique identity indexes are enforced with the field named.

use fangkong_core::audit::{AuditEntry, Outcome};
use fangkong_core::auth::Actor;
use fangkong_core::documents::DocumentKind;
use fangkong_core::registry::{
    Building, BuildingKind, HousingUnit, Permit, PermitKind, Sex, Sighting, Tenancy, UnitUse,
};
use fangkong_core::time::Timestamp;
use fangkong_store::StoreError;
use fangkong_store::registry::{ImportFeed, RegistryChange, RegistryRecord, SealedResident};

use crate::support::TestDb;

conformance!(registry_records_round_trip_and_imports_are_all_or_nothing);

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

fn resident(code: &str, index: u8) -> RegistryRecord {
    RegistryRecord::Resident(Box::new(SealedResident {
        code: code.into(),
        document: DocumentKind::ResidentId,
        sealed: vec![index; 40],
        id_index: [index; 16],
        phone_index: Some([index ^ 0xff; 16]),
        name: "张伟".into(),
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
    let building = Building {
        code: "B1".into(),
        address: "园岭新村1号楼".into(),
        grid: "G1".into(),
        community: "C1".into(),
        lon: 114.05,
        lat: 22.55,
        kind: BuildingKind::UrbanVillage,
        floors: 7,
    };
    let unit = HousingUnit {
        code: "U1".into(),
        building: "B1".into(),
        floor: 3,
        area_m2: 20.0,
        rooms: 1,
        usage: UnitUse::Residential,
        rent_yuan: Some(1500),
        rental: true,
        landlord: None,
        community: "C1".into(),
    };
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
    assert_eq!(db.store.residents_by_name("张伟", Some(vec!["C1".into()]), 10).await.unwrap().len(), 2);
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
}
