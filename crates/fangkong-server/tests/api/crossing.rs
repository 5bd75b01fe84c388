//! Writes that cross a jurisdiction's border, on every store: every route that takes a code
//! or an id is called by a caller of Futian with codes and ids that belong to Luohu — the
//! record itself, or a record it refers to. Each must be refused, audited, and leave the
//! other jurisdiction's record as it was (the outside review's reproductions, issue 24).

use axum::http::{Method, StatusCode};
use fangkong_core::audit::Outcome;
use fangkong_core::auth::Role;
use fangkong_core::forces::{ForceCategory, PatrolMode, Unit};
use fangkong_core::registry::Workstation;
use fangkong_engine::registry::{NewLandlord, NewResident};
use fangkong_engine::{Caller, NewBeat, NewMember};
use fangkong_store::testing::TestDatabase;
use serde_json::{Value, json};

use crate::support::{FUTIAN, TestServer};

/// Futian's community and grid (the callers'), Luohu's (the other side).
const OWN_COMMUNITY: &str = "440304001001";
const OWN_GRID: &str = "440304001001G01";
const OTHER_COMMUNITY: &str = "440303001001";
const OTHER_GRID: &str = "440303001001G01";
const OWN_STATION: &str = "PS440304-01";
const OTHER_STATION: &str = "PS440303-01";

/// A valid resident identity number from a serial.
fn id_number(serial: u32) -> String {
    let first17 = format!("4403041990{:02}{:02}{:03}", 1 + serial % 12, 1 + serial / 12 % 28, serial % 1000);
    let first17 = first17.as_str();
    format!("{first17}{}", fangkong_core::documents::check_character(first17.as_bytes()))
}

fn square(x: f64, y: f64) -> fangkong_geo::Area {
    let d = 0.0005;
    fangkong_geo::Area::from_rings(vec![vec![vec![[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]]]).unwrap()
}

async fn resident(server: &TestServer, code: &str, unit: &str, serial: u32, name: &str) {
    let new = NewResident {
        code: code.into(),
        id_number: id_number(serial),
        name: name.into(),
        phone: Some("13800138000".into()),
        unit: Some(unit.into()),
        ..Default::default()
    };
    server.engine.register_resident(&Caller::system("test"), new).await.unwrap();
}

fn police_unit(code: &str, station: &str, beat: Option<&str>) -> Unit {
    Unit {
        code: code.into(),
        call_sign: format!("巡{code}"),
        station: station.into(),
        category: ForceCategory::Police,
        mode: PatrolMode::Vehicle,
        equipment: Vec::new(),
        beat: beat.map(Into::into),
        capabilities: Vec::new(),
    }
}

/// Luohu's records (and a few of Futian's own to refer from).
async fn the_other_side(server: &TestServer) {
    let system = Caller::system("test");
    let engine = &server.engine;
    let landlord = |code: &str, community: &str| NewLandlord {
        code: code.into(),
        kind: fangkong_core::registry::LandlordKind::Person,
        name: "房东".into(),
        phone: None,
        safety_person: None,
        safety_phone: None,
        pledge_signed: None,
        pledge_expires: None,
        community: community.into(),
    };
    engine.save_landlord(&system, landlord("L-LH", OTHER_COMMUNITY)).await.unwrap();
    server.property("B-LH", "U-LH", OTHER_GRID, Some("L-LH")).await;
    resident(server, "R-LH", "U-LH", 1, "罗湖居民").await;
    resident(server, "R-LH2", "U-LH", 2, "罗湖居民二").await;
    let workstation = Workstation {
        code: "W-LH".into(),
        community: OTHER_COMMUNITY.into(),
        name: "桂木园工作站".into(),
        address: String::new(),
    };
    engine.save_workstation(&system, workstation).await.unwrap();
    server.property("B-FT", "U-FT", OWN_GRID, None).await;
    resident(server, "R-FT", "U-FT", 3, "福田居民").await;

    let beat = |code: &str, station: &str, x: f64| NewBeat {
        code: code.into(),
        station: station.into(),
        name: "巡区".into(),
        shape: Some(square(x, 22.52)),
        grids: Vec::new(),
    };
    engine.save_beat(&system, beat("BT-LH", OTHER_STATION, 114.15)).await.unwrap();
    engine.save_beat(&system, beat("BT-FT", OWN_STATION, 114.05)).await.unwrap();
    engine.save_unit(&system, police_unit("PU-LH", OTHER_STATION, Some("BT-LH"))).await.unwrap();
    engine.save_unit(&system, police_unit("PU-FT", OWN_STATION, Some("BT-FT"))).await.unwrap();
    let member = NewMember {
        category: ForceCategory::Volunteer,
        station: OTHER_STATION.into(),
        unit: None,
        name: "志愿者".into(),
        id_number: id_number(9),
        phone: None,
    };
    engine.add_member(&system, member).await.unwrap();
}

/// One attempt: who calls, what, and what must hold afterwards.
struct Case {
    what: &'static str,
    role: Role,
    method: Method,
    path: &'static str,
    body: Value,
    /// The status it must get (403 for a refusal, or 422 for an import naming its row).
    status: StatusCode,
}

fn cases() -> Vec<Case> {
    use Role::*;
    let case = |what, role, method, path, body, status| Case { what, role, method, path, body, status };
    let post = Method::POST;
    let forbidden = StatusCode::FORBIDDEN;
    vec![
        case(
            "take over a resident by code",
            CommunityOfficer,
            post.clone(),
            "/api/v1/registry/residents",
            json!({"code": "R-LH", "id_number": id_number(20), "name": "冒名", "unit": "U-FT"}),
            forbidden,
        ),
        case(
            "take over a building by code",
            CommunityOfficer,
            post.clone(),
            "/api/v1/registry/properties",
            json!({"code": "B-LH", "address": "抢占1栋", "grid": OWN_GRID, "lat": 22.55, "lon": 114.05,
                "kind": "urban_village", "floors": 3, "units": []}),
            forbidden,
        ),
        case(
            "take over a housing unit inside a new building",
            CommunityOfficer,
            post.clone(),
            "/api/v1/registry/properties",
            json!({"code": "B-NEW", "address": "新楼", "grid": OWN_GRID, "lat": 22.55, "lon": 114.05,
                "kind": "urban_village", "floors": 3, "units": [{"code": "U-LH", "floor": 1, "area_m2": 30.0}]}),
            forbidden,
        ),
        case(
            "name another community's landlord for a unit",
            CommunityOfficer,
            post.clone(),
            "/api/v1/registry/properties",
            json!({"code": "B-NEW2", "address": "新楼", "grid": OWN_GRID, "lat": 22.55, "lon": 114.05,
                "kind": "urban_village", "floors": 3,
                "units": [{"code": "U-NEW2", "floor": 1, "area_m2": 30.0, "landlord": "L-LH"}]}),
            forbidden,
        ),
        case(
            "take over a landlord by code",
            CommunityOfficer,
            post.clone(),
            "/api/v1/registry/landlords",
            json!({"code": "L-LH", "kind": "person", "name": "冒名房东", "community": OWN_COMMUNITY}),
            forbidden,
        ),
        case(
            "take over a workstation by code",
            HousingCoordinator,
            post.clone(),
            "/api/v1/registry/workstations",
            json!({"code": "W-LH", "community": OWN_COMMUNITY, "name": "冒名工作站"}),
            forbidden,
        ),
        case(
            "move another community's resident in as lessee",
            CommunityOfficer,
            post.clone(),
            "/api/v1/registry/tenancies",
            json!({"code": "T-X1", "unit": "U-FT", "lessee": "R-LH", "move_in": "2025-06-01"}),
            forbidden,
        ),
        case(
            "move another community's resident in as co-resident",
            CommunityOfficer,
            post.clone(),
            "/api/v1/registry/tenancies",
            json!({"code": "T-X2", "unit": "U-FT", "lessee": "R-FT", "co_residents": ["R-LH2"], "move_in": "2025-06-01"}),
            forbidden,
        ),
        case(
            "name another community's landlord on a tenancy",
            CommunityOfficer,
            post.clone(),
            "/api/v1/registry/tenancies",
            json!({"code": "T-X3", "unit": "U-FT", "lessee": "R-FT", "landlord": "L-LH", "move_in": "2025-06-01"}),
            forbidden,
        ),
        case(
            "report another community's resident found on a visit",
            CommunityOfficer,
            post.clone(),
            "/api/v1/registry/visits",
            json!({"unit": "U-FT", "day": "2025-11-01", "outcome": "verified", "found": ["R-LH"]}),
            forbidden,
        ),
        case(
            "take over a police unit by code",
            Commander,
            post.clone(),
            "/api/v1/units",
            json!({"code": "PU-LH", "call_sign": "抢占", "station": OWN_STATION, "category": "police", "mode": "foot"}),
            forbidden,
        ),
        case(
            "put a unit on another district's beat",
            Commander,
            post.clone(),
            "/api/v1/units",
            json!({"code": "PU-NEW", "call_sign": "新", "station": OWN_STATION, "category": "police",
                "mode": "foot", "beat": "BT-LH"}),
            forbidden,
        ),
        case(
            "take over a beat by code",
            Commander,
            post.clone(),
            "/api/v1/beats",
            json!({"code": "BT-LH", "station": OWN_STATION, "name": "抢占巡区", "geometry": {"type": "Polygon",
                "coordinates": [[[114.05, 22.53], [114.0505, 22.53], [114.0505, 22.5305], [114.05, 22.5305], [114.05, 22.53]]]}}),
            forbidden,
        ),
        case(
            "make a beat of another district's grid",
            Commander,
            post.clone(),
            "/api/v1/beats",
            json!({"code": "BT-GRID", "station": OWN_STATION, "name": "网格巡区", "grids": [OTHER_GRID]}),
            forbidden,
        ),
        case(
            "roster an own unit on another district's beat",
            Commander,
            post.clone(),
            "/api/v1/roster",
            json!({"shifts": [{"unit": "PU-FT", "beat": "BT-LH", "starts_at": "2025-11-28T00:00:00Z",
                "ends_at": "2025-11-28T08:00:00Z"}]}),
            forbidden,
        ),
        case(
            "register a member to another district's unit",
            Commander,
            post.clone(),
            "/api/v1/members",
            json!({"category": "police", "station": OWN_STATION, "unit": "PU-LH", "name": "张三", "id_number": id_number(30)}),
            forbidden,
        ),
        case(
            "bind a tracker to another district's unit",
            Administrator,
            post.clone(),
            "/api/v1/devices",
            json!({"unique_id": "trk-cross", "kind": "tracker", "jurisdiction": FUTIAN, "unit": "PU-LH"}),
            forbidden,
        ),
        case(
            "send another district's unit",
            Dispatcher,
            post.clone(),
            "/api/v1/incidents/{own_incident}/assign",
            json!({"units": ["PU-LH"]}),
            forbidden,
        ),
        case(
            "merge into another district's incident",
            Dispatcher,
            post.clone(),
            "/api/v1/incidents/{own_incident}/merge",
            json!({"into": "{other_incident}"}),
            forbidden,
        ),
    ]
}

/// The state of Luohu's records that no Futian caller may change.
async fn snapshot(server: &TestServer) -> Vec<String> {
    let engine = &server.engine;
    // A second connection to the same database: what is stored, not what the engine holds.
    let store = fangkong_engine::Store::open(&server.db.url).await.unwrap();
    let resident = store.resident("R-LH").await.unwrap().unwrap();
    let building = store.building("B-LH").await.unwrap().unwrap();
    let unit = store.housing_unit("U-LH").await.unwrap().unwrap();
    let landlord = store.landlord("L-LH").await.unwrap().unwrap();
    let workstation = store.workstation("W-LH").await.unwrap().unwrap();
    let system = Caller::system("test");
    let units = engine.units(&system).await.unwrap();
    let beats = engine.beats(&system).await.unwrap();
    let devices = engine.devices(&system).await.unwrap();
    let tenancies = store.tenancies_of("R-LH").await.unwrap().len() + store.tenancies_of("R-LH2").await.unwrap().len();
    vec![
        format!("resident {} {} {}", resident.name, resident.grid, hex(&resident.id_index)),
        format!("building {} {}", building.address, building.grid),
        format!("unit {} {}", unit.building, unit.community),
        format!("landlord {} {}", landlord.name, landlord.community),
        format!("workstation {} {}", workstation.name, workstation.community),
        format!("tenancies {tenancies}"),
        format!("units {:?}", units.iter().map(|u| (&u.code, &u.station, &u.beat)).collect::<Vec<_>>()),
        format!("beats {:?}", beats.iter().map(|b| (&b.code, &b.station)).collect::<Vec<_>>()),
        format!("devices {:?}", devices.iter().map(|d| (&d.unique_id, &d.unit)).collect::<Vec<_>>()),
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn run(db: TestDatabase) {
    let backend = db.backend();
    let server = TestServer::on(db).await;
    the_other_side(&server).await;
    let system = Caller::system("test");
    let incident = |lon: f64| fangkong_engine::NewIncident {
        source: "110".into(),
        type_code: "010301".into(),
        point: Some(fangkong_geo::LatLon::new(22.53, lon).unwrap()),
        ..Default::default()
    };
    let own_incident = server.engine.create_incident(&system, incident(114.05)).await.unwrap().incident.id;
    let other_incident = server.engine.create_incident(&system, incident(114.15)).await.unwrap().incident.id;
    server.engine.set_unit_status(&system, "PU-LH", fangkong_core::dispatch::UnitStatus::Available).await.unwrap();

    let mut tokens = std::collections::HashMap::new();
    for role in
        [Role::CommunityOfficer, Role::HousingCoordinator, Role::Commander, Role::Administrator, Role::Dispatcher]
    {
        let jurisdiction = match role {
            Role::CommunityOfficer | Role::HousingCoordinator => OWN_COMMUNITY,
            _ => FUTIAN,
        };
        let username = format!("{}.ft", role.as_str());
        tokens.insert(role, server.signed_in(&username, role, jurisdiction).await);
    }

    let before = snapshot(&server).await;
    let mut failures = Vec::new();
    for case in cases() {
        let path = case
            .path
            .replace("{own_incident}", &own_incident.to_string())
            .replace("{other_incident}", &other_incident.to_string());
        let body: Value =
            serde_json::from_str(&case.body.to_string().replace("\"{other_incident}\"", &other_incident.to_string()))
                .unwrap();
        let head = server.audit_head().await;
        let reply = server.request(case.method.clone(), &path).token(&tokens[&case.role]).json(body).send().await;
        if reply.status != case.status {
            failures.push(format!("{}: {} {} → {} {}", case.what, case.method, path, reply.status, reply.text));
            continue;
        }
        let denied = server.audit_after(head).await.iter().any(|r| r.entry.outcome == Outcome::Denied);
        if case.status == StatusCode::FORBIDDEN && !denied {
            failures.push(format!("{}: refused but not audited", case.what));
        }
    }
    assert!(failures.is_empty(), "{backend:?}:\n{}", failures.join("\n"));
    assert_eq!(snapshot(&server).await, before, "{backend:?}: Luohu's records are as they were");

    // The incident was not merged away, nor the unit sent.
    let own = server.engine.incident(&system, own_incident).await.unwrap();
    assert!(own.merged_into.is_none() && own.assignments.is_empty(), "{own:?}");

    // The same by import: a row with another community's resident code is refused, naming it.
    let csv = format!("code,name,id_number,unit,grid\nR-LH,冒名,{},U-FT,{OWN_GRID}\n", id_number(40));
    let reply = server
        .request(Method::POST, "/api/v1/registry/import/residents")
        .token(&tokens[&Role::CommunityOfficer])
        .bytes("text/csv", csv.into_bytes())
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.text);
    assert!(reply.text.contains("outside your jurisdiction"), "{}", reply.text);
    let csv = "code,unit,lessee,move_in\nT-IMP,U-FT,R-LH,2025-06-01\n";
    let reply = server
        .request(Method::POST, "/api/v1/registry/import/tenancies")
        .token(&tokens[&Role::CommunityOfficer])
        .bytes("text/csv", csv.as_bytes().to_vec())
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.text);
    assert!(reply.text.contains("lessee"), "{}", reply.text);
    assert_eq!(snapshot(&server).await, before, "{backend:?}: imports changed nothing either");

    // Inside their own jurisdiction the same callers still work: the guard refuses the
    // crossing, not the command.
    let own_tenancy = json!({"code": "T-OK", "unit": "U-FT", "lessee": "R-FT", "move_in": "2025-06-01"});
    let reply = server
        .request(Method::POST, "/api/v1/registry/tenancies")
        .token(&tokens[&Role::CommunityOfficer])
        .json(own_tenancy)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let own_unit = json!({"code": "PU-FT", "call_sign": "园岭巡", "station": OWN_STATION, "category": "police",
        "mode": "foot", "beat": "BT-FT"});
    let reply =
        server.request(Method::POST, "/api/v1/units").token(&tokens[&Role::Commander]).json(own_unit).send().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

/// Roles that may not change the roster or members at all are refused before any lookup,
/// so an id that does not exist answers as one that does (no probing).
async fn refusals_before_lookups(db: TestDatabase) {
    let server = TestServer::on(db).await;
    let token = server.signed_in("dispatcher.ft", Role::Dispatcher, FUTIAN).await;
    for (method, path, body) in [
        (Method::DELETE, "/api/v1/roster/987654", None),
        (Method::PATCH, "/api/v1/members/987654", Some(json!({"active": false}))),
    ] {
        let mut call = server.request(method.clone(), path).token(&token);
        if let Some(body) = body {
            call = call.json(body);
        }
        call.send().await.assert_error(StatusCode::FORBIDDEN, "forbidden");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_across_the_border_are_refused_on_sqlite() {
    run(TestDatabase::sqlite()).await;
    refusals_before_lookups(TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_across_the_border_are_refused_on_postgres() {
    if let Some(db) = TestDatabase::postgres().await {
        run(db).await;
    }
    if let Some(db) = TestDatabase::postgres().await {
        refusals_before_lookups(db).await;
    }
}
