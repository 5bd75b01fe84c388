//! The registry through the engine: registration and move-out, masked and audited reads
//! scoped by community, alerts, and imports that are all or nothing.

use fangkong_core::auth::Role;
use fangkong_core::documents::check_character;
use fangkong_core::jurisdiction::Jurisdiction;
use fangkong_core::registry::{BuildingKind, UnitUse, parse_date};

use super::*;
use crate::test_support::{Fixture, T0};

const GRID: &str = "440304001001G01";
const COMMUNITY: &str = "440304001001";
const OTHER_GRID: &str = "440303001001G01";

/// A valid resident identity number from its first 17 digits.
pub(crate) fn id_number(first17: &str) -> String {
    format!("{first17}{}", check_character(first17.as_bytes()))
}

fn day(text: &str) -> Day {
    parse_date(text).unwrap()
}

async fn fixture() -> Fixture {
    let fixture = Fixture::new().await;
    let node = |code: &str, kind, parent: &str| Jurisdiction {
        code: code.into(),
        kind,
        parent: Some(parent.into()),
        name_zh: format!("辖区{code}"),
        name_en: None,
    };
    let more = vec![
        node("440303001", JurisdictionKind::Subdistrict, "440303"),
        node("440303001001", JurisdictionKind::Community, "440303001"),
        node(OTHER_GRID, JurisdictionKind::Grid, "440303001001"),
    ];
    fixture.engine.import_jurisdictions(&Caller::system("test"), more).await.unwrap();
    fixture.add_user("coordinator", Role::HousingCoordinator, COMMUNITY).await;
    fixture.add_user("officer", Role::CommunityOfficer, COMMUNITY).await;
    fixture.add_user("coordinator.luohu", Role::HousingCoordinator, "440303001001").await;
    fixture.add_user("dispatcher", Role::Dispatcher, "440300").await;
    fixture
}

fn building(code: &str, grid: &str) -> Building {
    Building {
        code: code.into(),
        address: format!("{code}号楼"),
        grid: grid.into(),
        community: String::new(),
        lon: 114.05,
        lat: 22.55,
        kind: BuildingKind::UrbanVillage,
        floors: 7,
    }
}

fn unit(code: &str, building: &str, area: f64, rooms: u32) -> HousingUnit {
    HousingUnit {
        code: code.into(),
        building: building.into(),
        floor: 3,
        area_m2: area,
        rooms,
        usage: UnitUse::Residential,
        rent_yuan: Some(1_800),
        rental: true,
        landlord: None,
        community: String::new(),
    }
}

fn resident(code: &str, number: &str, unit: &str) -> NewResident {
    NewResident {
        code: code.into(),
        id_number: number.into(),
        name: "张伟".into(),
        phone: Some("138 1234 5678".into()),
        origin_province: Some("湖南".into()),
        unit: Some(unit.into()),
        ..NewResident::default()
    }
}

async fn property(fixture: &Fixture, caller: &Caller) {
    let engine = &fixture.engine;
    let units = vec![unit("B1U1", "B1", 20.0, 1), unit("B1U2", "B1", 60.0, 2)];
    engine.save_property(caller, building("B1", GRID), units).await.unwrap();
}

#[tokio::test]
async fn residents_move_in_and_out_with_dates_in_order_and_every_change_streamed() {
    let fixture = fixture().await;
    let engine = &fixture.engine;
    let coordinator = fixture.caller("coordinator").await;
    let mut events = engine.bus().subscribe();
    property(&fixture, &coordinator).await;
    let zhang = id_number("43010219900307001");
    let view = engine.register_resident(&coordinator, resident("R1", &zhang, "B1U1")).await.unwrap();
    // The birth date and sex come from the number; the coordinator sees it masked.
    assert_eq!((view.birth, view.sex), (day("1990-03-07"), Sex::Male));
    assert_eq!((view.community.as_str(), view.grid.as_str()), (COMMUNITY, GRID));
    assert!(view.id_number_masked && view.id_number.contains('*') && !view.id_number.contains("19900307"));
    assert_eq!(view.phone.as_deref(), Some("+8613812345678"), "the coordinator calls residents");

    // A stated birth date that the number contradicts is refused, naming the field.
    let wrong =
        NewResident { birth: Some(day("1991-01-01")), ..resident("R2", &id_number("43010219900307002"), "B1U1") };
    let error = engine.register_resident(&coordinator, wrong).await.unwrap_err();
    assert!(matches!(error, EngineError::Invalid { field: "birth_date", .. }), "{error}");
    let bad = resident("R2", "430102199003070019", "B1U1");
    let error = engine.register_resident(&coordinator, bad).await.unwrap_err();
    assert!(
        matches!(&error, EngineError::Invalid { field: "id_number", message } if message.contains("MOD 11-2")),
        "{error}"
    );

    let li = id_number("43010219920815002");
    engine
        .register_resident(&coordinator, NewResident { name: "李娜".into(), ..resident("R2", &li, "B1U1") })
        .await
        .unwrap();
    let tenancy = NewTenancy {
        code: "T1".into(),
        unit: "B1U1".into(),
        landlord: None,
        lessee: "R1".into(),
        co_residents: vec!["R2".into()],
        move_in: day("2025-03-01"),
    };
    let moved_in = engine.move_in(&coordinator, tenancy).await.unwrap();
    assert_eq!(moved_in.members, ["R1", "R2"]);
    let error = engine.move_out(&coordinator, "T1", day("2025-02-28")).await.unwrap_err();
    assert!(
        matches!(&error, EngineError::Invalid { field: "move_out", message } if message.contains("before move-in"))
    );
    let error = engine.move_out(&coordinator, "T1", T0.as_millis() / 86_400_000 + 1).await.unwrap_err();
    assert!(matches!(error, EngineError::Invalid { field: "move_out", .. }), "the future");
    let ended = engine.move_out(&coordinator, "T1", day("2025-10-31")).await.unwrap();
    assert_eq!(ended.move_out, Some(day("2025-10-31")));
    let again = engine.move_out(&coordinator, "T1", day("2025-11-01")).await.unwrap_err();
    assert!(matches!(again, EngineError::Invalid { field: "move_out", .. }));

    // The card: units → tenancies → residents.
    let card = engine.property_card(&coordinator, "B1").await.unwrap();
    assert_eq!(card.units.len(), 2);
    assert_eq!(card.tenancies[0].move_out, Some(day("2025-10-31")));
    assert_eq!(card.residents.iter().map(|r| r.code.as_str()).collect::<Vec<_>>(), ["R1", "R2"]);

    // Every change is on the durable stream and the bus, named by code and community.
    let changes = engine.registry_changes(&coordinator, 0, 100).await.unwrap();
    let said: Vec<_> = changes.iter().map(|c| format!("{}:{}:{}", c.entity, c.code, c.change)).collect();
    assert_eq!(
        said,
        [
            "building:B1:saved",
            "resident:R1:registered",
            "resident:R2:registered",
            "tenancy:T1:moved_in",
            "tenancy:T1:moved_out"
        ]
    );
    assert!(changes.iter().all(|c| c.community == COMMUNITY && c.actor == "coordinator"));
    let (mut names, mut seen) = (Vec::new(), Vec::new());
    while let Ok(envelope) = events.try_recv() {
        match &envelope.event {
            Event::RegistryChanged { code, change, .. } => names.push(format!("{code}:{change}")),
            Event::PersonSeen { person, how, record, community } => {
                assert_eq!(community, COMMUNITY);
                seen.push((*person, how.as_str(), record.clone()));
            }
            _ => {}
        }
    }
    assert_eq!(names, ["B1:saved", "R1:registered", "R2:registered", "T1:moved_in", "T1:moved_out"]);
    // Each person was seen (for the wanted list's matching) by the person index, never the
    // number: registered, then in the tenancy.
    let (zhang_index, li_index) = (engine.person_index(&zhang), engine.person_index(&li));
    assert_eq!(
        seen,
        [
            (zhang_index, "resident_registered", "R1".to_string()),
            (li_index, "resident_registered", "R2".to_string()),
            (zhang_index, "tenancy_began", "T1".to_string()),
            (li_index, "tenancy_began", "T1".to_string()),
        ]
    );
}

#[tokio::test]
async fn reads_of_people_are_masked_by_role_scoped_by_community_and_audited() {
    let fixture = fixture().await;
    let engine = &fixture.engine;
    let coordinator = fixture.caller("coordinator").await;
    property(&fixture, &coordinator).await;
    let number = id_number("43010219900307001");
    engine.register_resident(&coordinator, resident("R1", &number, "B1U1")).await.unwrap();

    // The officer sees the whole number; the coordinator and the dispatcher find the
    // person by it but see it masked (the dispatcher the phone masked too).
    let query = ResidentQuery::IdNumber(number.to_lowercase());
    let officer = fixture.caller("officer").await;
    let found = engine.search_residents(&officer, &query).await.unwrap();
    assert_eq!((found[0].id_number.as_str(), found[0].id_number_masked), (number.as_str(), false));
    let found = engine.search_residents(&coordinator, &query).await.unwrap();
    assert_eq!(found[0].id_number, mask_id_number(&number));
    let dispatcher = fixture.caller("dispatcher").await;
    let found = engine.search_residents(&dispatcher, &query).await.unwrap();
    assert_eq!(found[0].phone.as_deref(), Some("***5678"));
    assert_eq!(engine.search_residents(&officer, &ResidentQuery::Phone("13812345678".into())).await.unwrap().len(), 1);
    let by_name = ResidentQuery::Name { name: "张伟".into(), community: None };
    assert_eq!(engine.search_residents(&officer, &by_name).await.unwrap().len(), 1);

    // Another community's coordinator finds nothing and may not open the card.
    let luohu = fixture.caller("coordinator.luohu").await;
    assert!(engine.search_residents(&luohu, &query).await.unwrap().is_empty());
    assert!(engine.search_residents(&luohu, &by_name).await.unwrap().is_empty());
    let denied = engine.property_card(&luohu, "B1").await.unwrap_err();
    assert!(matches!(denied, EngineError::Denied(_)), "{denied}");
    assert!(matches!(engine.resident_card(&luohu, "R1").await.unwrap_err(), EngineError::Denied(_)));
    // Nor write there.
    let error = engine.save_property(&luohu, building("B9", GRID), Vec::new()).await.unwrap_err();
    assert!(matches!(error, EngineError::Denied(_)));

    // No purpose, no read; every read is on the trail with its purpose, never the number.
    let silent = Caller { purpose: None, ..officer.clone() };
    assert!(matches!(engine.search_residents(&silent, &query).await.unwrap_err(), EngineError::PurposeRequired));
    let card = engine.resident_card(&officer, "R1").await.unwrap();
    assert_eq!(card.resident.name, "张伟");
    let trail = fixture.audit().await;
    let reads: Vec<_> = trail.iter().filter(|r| r.entry.action.starts_with("registry.search")).collect();
    assert!(reads.len() >= 6, "{}", reads.len());
    assert!(reads.iter().any(|r| r.entry.purpose.as_deref() == Some("test")));
    assert!(
        trail.iter().any(|r| r.entry.action == "registry.resident.read" && r.entry.target_id.as_deref() == Some("R1"))
    );
    let text = format!("{trail:?}");
    assert!(!text.contains(&number) && !text.contains("13812345678"));
    // The person index needs no decryption to match; a match is a question about a person:
    // asked with a purpose, audited without the number, and silent outside the caller's
    // jurisdiction.
    assert_eq!(engine.match_id_number(&officer, &number).await.unwrap(), Some(("R1".into(), COMMUNITY.into())));
    assert_eq!(engine.match_id_number(&officer, &id_number("43010219900307002")).await.unwrap(), None);
    assert_eq!(engine.match_id_number(&luohu, &number).await.unwrap(), None, "another district's resident");
    let no_purpose = Caller { purpose: None, ..officer.clone() };
    assert!(matches!(engine.match_id_number(&no_purpose, &number).await, Err(EngineError::PurposeRequired)));
    let matches: Vec<_> = fixture.audit().await.into_iter().filter(|r| r.entry.action == "registry.match").collect();
    assert_eq!(matches.len(), 4, "every match is in the trail, the refused one too");
    assert!(!format!("{matches:?}").contains(&number));
}

#[tokio::test]
async fn alerts_list_permits_crowding_unregistered_residents_and_lapsed_pledges() {
    let fixture = fixture().await;
    let engine = &fixture.engine;
    let coordinator = fixture.caller("coordinator").await;
    property(&fixture, &coordinator).await;
    let landlord = NewLandlord {
        code: "L1".into(),
        kind: LandlordKind::Person,
        name: "王房东".into(),
        phone: Some("13900001111".into()),
        safety_person: None,
        safety_phone: None,
        pledge_signed: Some(day("2024-01-01")),
        pledge_expires: Some(day("2025-01-01")),
        community: GRID.into(),
    };
    engine.save_landlord(&coordinator, landlord).await.unwrap();
    for n in 1..=5 {
        let number = id_number(&format!("4301021990030700{n}"));
        engine.register_resident(&coordinator, resident(&format!("R{n}"), &number, "B1U1")).await.unwrap();
    }
    // Five people in 20 m² (4 m² each, the limit is 5).
    let tenancy = NewTenancy {
        code: "T1".into(),
        unit: "B1U1".into(),
        landlord: Some("L1".into()),
        lessee: "R1".into(),
        co_residents: vec!["R2".into(), "R3".into(), "R4".into(), "R5".into()],
        move_in: day("2025-06-01"),
    };
    engine.move_in(&coordinator, tenancy).await.unwrap();
    let today = T0.as_millis() / 86_400_000;
    engine.save_permit(&coordinator, "R1", PermitKind::ResidencePermit, today - 300, today + 10, None).await.unwrap();
    engine.save_permit(&coordinator, "R2", PermitKind::ResidencePermit, today - 400, today - 1, None).await.unwrap();
    engine.save_permit(&coordinator, "R3", PermitKind::ResidencePermit, today - 10, today + 300, None).await.unwrap();
    let error = engine.save_permit(&coordinator, "R4", PermitKind::ResidencePermit, today, today, None).await;
    assert!(matches!(error.unwrap_err(), EngineError::Invalid { field: "expires", .. }));
    // R5 is found living in the other unit on a visit.
    let visit = NewVisit {
        unit: "B1U2".into(),
        day: today,
        outcome: VisitOutcome::UnregisteredOccupants,
        occupants: Some(1),
        note: String::new(),
        found: vec!["R5".into()],
    };
    engine.record_visit(&coordinator, visit).await.unwrap();

    let alerts = engine.registry_alerts(&coordinator, None, None).await.unwrap();
    let seen: Vec<_> = alerts.iter().map(|a| format!("{}:{}", a.kind, a.subject)).collect();
    for expected in
        ["permit_expiring:R1", "permit_expired:R2", "overcrowded:B1U1", "unregistered_resident:R5", "pledge_lapsed:L1"]
    {
        assert!(seen.contains(&expected.to_string()), "{expected} in {seen:?}");
    }
    assert!(!seen.iter().any(|s| s.ends_with(":R3")), "R3's permit is good for 300 days");
    let only = engine.registry_alerts(&coordinator, Some(AlertKind::Overcrowded), None).await.unwrap();
    assert_eq!(only.len(), 1);
    // The Luohu coordinator has none of them.
    let luohu = fixture.caller("coordinator.luohu").await;
    assert!(engine.registry_alerts(&luohu, None, None).await.unwrap().is_empty());
    // A tenancy that lists R5 at B1U2 clears that alert.
    let tenancy = NewTenancy {
        code: "T2".into(),
        unit: "B1U2".into(),
        landlord: None,
        lessee: "R5".into(),
        co_residents: Vec::new(),
        move_in: today,
    };
    engine.move_in(&coordinator, tenancy).await.unwrap();
    let alerts = engine.registry_alerts(&coordinator, Some(AlertKind::UnregisteredResident), None).await.unwrap();
    assert!(alerts.is_empty(), "{alerts:?}");
}

fn csv(text: &str) -> Box<dyn std::io::Read + Send> {
    Box::new(std::io::Cursor::new(text.as_bytes().to_vec()))
}

async fn import(engine: &Engine, caller: &Caller, kind: ImportKind, text: &str) -> Result<ImportReport, EngineError> {
    engine.import_registry(caller, kind, ImportFormat::Csv, csv(text), None, Box::new(|_| {})).await
}

const PROPERTIES: &str = "building,address,grid,lon,lat,kind,floors,unit,floor,area_m2,rooms,usage,rent_yuan,landlord,landlord_name,pledge_expires
B1,园岭新村1号楼,440304001001G01,114.05,22.55,urban_village,7,B1U1,1,25,1,residential,1500,L1,王房东,2027-01-01
B1,园岭新村1号楼,440304001001G01,114.05,22.55,urban_village,7,B1U2,2,30,1,residential,1600,L1,王房东,2027-01-01
";

fn residents_csv(rows: &[(&str, String, &str)]) -> String {
    let mut text = String::from("code,name,sex,birth_date,id_number,phone,unit,grid,permit_expires\n");
    for (code, number, unit) in rows {
        text.push_str(&format!("{code},张三,,,{number},13800000000,{unit},{GRID},2026-06-30\n"));
    }
    text
}

#[tokio::test]
async fn an_import_is_all_or_nothing_and_names_every_bad_row() {
    let fixture = fixture().await;
    let engine = &fixture.engine;
    let coordinator = fixture.caller("coordinator").await;
    let report = import(engine, &coordinator, ImportKind::Properties, PROPERTIES).await.unwrap();
    assert_eq!((report.rows, report.records), (2, 4), "a landlord, a building, two units");
    assert_eq!(engine.store.property_card("B1").await.unwrap().units.len(), 2);

    let good: Vec<_> = (1..=3).map(|n| (format!("R{n}"), id_number(&format!("4301021990030700{n}")), "B1U1")).collect();
    let rows: Vec<_> = good.iter().map(|(c, n, u)| (c.as_str(), n.clone(), *u)).collect();
    let report = import(engine, &coordinator, ImportKind::Residents, &residents_csv(&rows)).await.unwrap();
    assert_eq!((report.rows, report.records), (3, 6), "a resident and a permit per row");
    // Once copied into the database, the import's WAL is emptied, not left holding the
    // page cache (at 20 M residents it is gigabytes).
    engine.store_settled().await;
    let wal = std::fs::metadata(fixture.dir.path().join("fk.db-wal")).map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal, 0, "the WAL after a settled import");

    // A file with two bad rows in the middle: both are reported; nothing is written.
    let mut rows: Vec<_> =
        (4..=9).map(|n| (format!("R{n}"), id_number(&format!("4301021990030700{n}")), "B1U1".to_string())).collect();
    rows[2].1 = "430102199003070061".into();
    rows[4].2 = "NOPE".into();
    rows[5].1 = "E1234".into();
    let refs: Vec<_> = rows.iter().map(|(c, n, u)| (c.as_str(), n.clone(), u.as_str())).collect();
    let error = import(engine, &coordinator, ImportKind::Residents, &residents_csv(&refs)).await.unwrap_err();
    let EngineError::ImportRefused { errors, bad_rows } = error else { panic!("{error}") };
    assert_eq!(bad_rows, 2);
    assert_eq!((errors[0].row, errors[0].field.as_str()), (4, "id_number"));
    assert!(errors[0].message.contains("check character"), "{}", errors[0].message);
    assert_eq!((errors[1].row, errors[1].field.as_str()), (7, "id_number"));
    assert_eq!(engine.store.count_residents().await.unwrap(), 3, "nothing of the failed file");

    // A row the store refuses (its unit is not registered) fails the file the same way.
    let refs: Vec<_> = rows.iter().take(2).map(|(c, n, _)| (c.as_str(), n.clone(), "NOPE")).collect();
    let error = import(engine, &coordinator, ImportKind::Residents, &residents_csv(&refs)).await.unwrap_err();
    let EngineError::ImportRefused { errors, .. } = error else { panic!("{error}") };
    assert_eq!((errors[0].row, errors[0].field.as_str()), (2, "unit"), "{errors:?}");
    assert!(errors[0].message.contains("NOPE"));
    // An identity number registered to another resident: refused, naming the row.
    let taken = residents_csv(&[("R10", good[0].1.clone(), "B1U1")]);
    let error = import(engine, &coordinator, ImportKind::Residents, &taken).await.unwrap_err();
    let EngineError::ImportRefused { errors, .. } = error else { panic!("{error}") };
    assert_eq!((errors[0].row, errors[0].field.as_str()), (2, "id_number"), "{errors:?}");
    assert_eq!(engine.store.count_residents().await.unwrap(), 3);

    // A row outside the caller's jurisdiction is a bad row too.
    let elsewhere = format!("code,name,id_number,grid\nR11,王五,{},{OTHER_GRID}\n", id_number("43010219900307011"));
    let error = import(engine, &coordinator, ImportKind::Residents, &elsewhere).await.unwrap_err();
    assert!(error.to_string().contains("outside your jurisdiction"), "{error}");
    // A header without a required column is refused at row 1.
    let error = import(engine, &coordinator, ImportKind::Residents, "code,name\nR1,x\n").await.unwrap_err();
    assert!(error.to_string().contains("no id_number column"), "{error}");

    // Tenancies from a file; then a re-import of the same file changes nothing.
    let tenancies = "code,unit,landlord,lessee,co_residents,move_in\nT1,B1U1,L1,R1,R2;R3,2025-05-01\n";
    import(engine, &coordinator, ImportKind::Tenancies, tenancies).await.unwrap();
    import(engine, &coordinator, ImportKind::Tenancies, tenancies).await.unwrap();
    let card = engine.store.property_card("B1").await.unwrap();
    assert_eq!(card.tenancies.len(), 1);
    assert_eq!(card.tenancies[0].members, ["R1", "R2", "R3"]);
    let changes = engine.registry_changes(&coordinator, 0, 100).await.unwrap();
    let said: Vec<_> = changes.iter().map(|c| c.change.as_str()).collect();
    assert_eq!(said, ["imported_properties:4", "imported_residents:6", "imported_tenancies:1", "imported_tenancies:1"]);
}

#[tokio::test]
async fn identity_numbers_and_phones_never_reach_the_database_file() {
    let fixture = fixture().await;
    let engine = &fixture.engine;
    let coordinator = fixture.caller("coordinator").await;
    import(engine, &coordinator, ImportKind::Properties, PROPERTIES).await.unwrap();
    let numbers: Vec<_> = (0..50).map(|i| id_number(&format!("430102199003{:02}{:03}", 1 + i % 28, 100 + i))).collect();
    let rows: Vec<_> = numbers.iter().enumerate().map(|(i, n)| (format!("R{i}"), n.clone(), "B1U1")).collect();
    let refs: Vec<_> = rows.iter().map(|(c, n, u)| (c.as_str(), n.clone(), *u)).collect();
    import(engine, &coordinator, ImportKind::Residents, &residents_csv(&refs)).await.unwrap();
    // Once the background checkpoint has moved the rows from the WAL into the database file
    // (scanning while it runs could see them in neither).
    engine.store_settled().await;
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(fixture.dir.path()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(contains("张三"), "the scan reads the data it looks through");
    for number in &numbers {
        assert!(!contains(number), "{number} in plain text");
    }
    assert!(!contains("13800000000") && !contains("+8613800000000"));
}

/// Property test: import files come from other systems and hand-edited spreadsheets, so
/// any file is either imported whole or refused naming its rows and fields, never half
/// written and never a panic.
#[test]
fn any_import_file_is_taken_whole_or_refused_naming_rows() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    /// Each kind's columns and, for each, values that are right for it (so files are often
    /// whole and taken); any cell may instead be one of the wrong or hostile values below.
    /// A column's name and its right values.
    type Column = (&'static str, &'static [&'static str]);
    const COLUMNS: &[(ImportKind, &[Column])] = &[
        (
            ImportKind::Residents,
            &[
                ("code", &["R1", "R2", "R3", "R4"]),
                ("name", &["张三", "李四"]),
                ("id_number", &[]),
                ("sex", &["M", "女", ""]),
                ("phone", &["13800000000", "138 1234 5678", ""]),
                ("unit", &["B1U1", "B1U2", ""]),
                ("grid", &[GRID]),
                ("permit_expires", &["2026-06-30", ""]),
                ("证件类型", &["身份证", ""]),
            ],
        ),
        (
            ImportKind::Tenancies,
            &[
                ("code", &["T1", "T2"]),
                ("unit", &["B1U1", "B1U2"]),
                ("move_in", &["2025-05-01", "2025-06-01"]),
                ("landlord", &["L1", ""]),
                ("move_out", &["", "2025-07-01"]),
            ],
        ),
        (
            ImportKind::Properties,
            &[
                ("building", &["B1", "B2"]),
                ("address", &["园岭新村1号楼"]),
                ("grid", &[GRID]),
                ("lon", &["114.05"]),
                ("lat", &["22.55"]),
                ("unit", &["B1U1", "B2U1", "B2U2"]),
                ("kind", &["urban_village", ""]),
                ("floors", &["7"]),
                ("rooms", &["1", "2"]),
                ("usage", &["residential", ""]),
                ("rent_yuan", &["1500", ""]),
                ("landlord", &["L1", ""]),
                ("landlord_name", &["王房东"]),
                ("pledge_expires", &["2027-01-01", ""]),
            ],
        ),
    ];
    let hostile = || {
        prop_oneof![
            3 => proptest::sample::select(vec![
                "B9", "R1;R2", OTHER_GRID, "2031-02-30", "1990-13-01", "-999", "1e309", "NaN", "0", "palace",
                "yes", "430102199003070019", "\"", "\"\"", "a,b", "line\nbreak", "\u{1f}", "𑇐\u{a4fce}E", " ", "",
            ]).prop_map(str::to_string),
            1 => any::<String>(),
        ]
    };
    // A cell: mostly a right value for its column (picked by index), sometimes hostile.
    let cell = (proptest::bool::weighted(0.93), any::<proptest::sample::Index>(), 1u32..40, hostile());
    let file = (
        0..COLUMNS.len(),
        // Columns dropped, and a column named wrongly or added.
        proptest::collection::vec(any::<proptest::sample::Index>(), 0..2),
        proptest::sample::select(vec!["", "", "", "junk", "\u{feff}code", "姓名"]),
        proptest::collection::vec(proptest::collection::vec(cell, 16), 0..6),
    )
        .prop_map(move |(kind, dropped, extra, cells)| {
            let (kind, columns) = COLUMNS[kind];
            let mut names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
            // Dropping a column (required or not) now and then.
            for index in dropped.iter().take(if cells.len() % 3 == 0 { 1 } else { 0 }) {
                names.remove(index.index(names.len()));
            }
            if !extra.is_empty() {
                names.push(extra);
            }
            let rows: Vec<Vec<String>> = cells
                .iter()
                .map(|row| {
                    names
                        .iter()
                        .zip(row)
                        .map(|(name, (right, pick, serial, wrong))| {
                            let values = columns.iter().find(|(n, _)| n == name).map_or(&[][..], |(_, v)| *v);
                            match (*right, *name) {
                                (true, "id_number") => {
                                    id_number(&format!("430102199003{:02}{:03}", 1 + serial % 28, serial))
                                }
                                (true, _) if !values.is_empty() => values[pick.index(values.len())].to_string(),
                                _ => wrong.clone(),
                            }
                        })
                        .collect()
                })
                .collect();
            (kind, names.into_iter().map(String::from).collect::<Vec<_>>(), rows)
        });

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let fixture = runtime.block_on(fixture());
    let coordinator = runtime.block_on(fixture.caller("coordinator"));
    runtime.block_on(import(&fixture.engine, &coordinator, ImportKind::Properties, PROPERTIES)).unwrap();
    let changes = || runtime.block_on(fixture.engine.registry_changes(&coordinator, 0, 10_000)).unwrap().len();

    let outcomes = std::cell::Cell::new((0u32, 0u32));
    let mut runner = TestRunner::new(Config { cases: 150, failure_persistence: None, ..Config::default() });
    runner
        .run(&file, |(kind, header, rows)| {
            let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(Vec::new());
            writer.write_record(&header).unwrap();
            for row in &rows {
                writer.write_record(row).unwrap();
            }
            let text = String::from_utf8(writer.into_inner().unwrap()).unwrap();
            let before = changes();
            match runtime.block_on(import(&fixture.engine, &coordinator, kind, &text)) {
                Ok(report) => {
                    prop_assert_eq!(report.rows, rows.len() as u64, "{}", text);
                    prop_assert_eq!(changes(), before + 1, "one change row per import");
                    outcomes.set((outcomes.get().0 + 1, outcomes.get().1));
                }
                Err(EngineError::ImportRefused { errors, bad_rows }) => {
                    prop_assert!(bad_rows >= 1 && !errors.is_empty(), "{}", text);
                    for error in &errors {
                        prop_assert!(error.row <= rows.len() as u64 + 1, "{error} of {}", text);
                        prop_assert!(!error.field.is_empty() && !error.message.is_empty(), "{}", error);
                    }
                    prop_assert_eq!(changes(), before, "a refused file writes nothing: {}", text);
                    outcomes.set((outcomes.get().0, outcomes.get().1 + 1));
                }
                Err(other) => return Err(TestCaseError::fail(format!("{other} for {text}"))),
            }
            Ok(())
        })
        .unwrap();
    // The files reach both ends, or the property says little.
    let (taken, refused) = outcomes.get();
    eprintln!("import files taken: {taken}, refused: {refused}");
    assert!(taken >= 5 && refused >= 5, "taken {taken}, refused {refused}");

    // Any bytes named .xlsx: refused as a file, never read as rows.
    let mut runner = TestRunner::new(Config { cases: 40, failure_persistence: None, ..Config::default() });
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..400),
        proptest::collection::vec(any::<u8>(), 0..400).prop_map(|mut tail| {
            let mut zip = b"PK\x03\x04".to_vec();
            zip.append(&mut tail);
            zip
        }),
    ];
    runner
        .run(&bytes, |bytes| {
            let source: Box<dyn std::io::Read + Send> = Box::new(std::io::Cursor::new(bytes));
            let result = runtime.block_on(fixture.engine.import_registry(
                &coordinator,
                ImportKind::Residents,
                ImportFormat::Xlsx,
                source,
                None,
                Box::new(|_| {}),
            ));
            match result {
                Err(EngineError::ImportRefused { errors, .. }) => prop_assert_eq!(errors[0].field.as_str(), "file"),
                other => return Err(TestCaseError::fail(format!("{other:?}"))),
            }
            Ok(())
        })
        .unwrap();
}
