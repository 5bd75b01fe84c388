//! The permission matrix: every API route × every role (plus no credentials, plus a device
//! credential) × a target inside and outside the caller's jurisdiction, on every store.
//!
//! The expectations below are written out by hand from the access rules of the product
//! (SYSTEM.md, issue 3), not derived from `PERMISSIONS`: the test fails on any request that
//! is allowed but should be refused, and on any that is refused but should be allowed. A
//! route added to the API without a row here fails `every_route_has_a_row`.
//!
//! Every refusal must leave a `denied` audit record naming the caller, and every read of
//! personal data an `allowed` record with its stated purpose.

use std::sync::atomic::{AtomicU32, Ordering};

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use fangkong_core::audit::Outcome;
use fangkong_core::auth::{DeviceKind, Role};
use fangkong_engine::{Caller, NewDevice};
use fangkong_store::testing::TestDatabase;
use serde_json::json;

use crate::support::{FUTIAN, LUOHU, TestServer};

/// Who may call a route.
#[derive(Clone, Copy, Debug)]
enum Who {
    /// No credentials needed.
    Anyone,
    /// Any signed-in user, whatever the role.
    SignedIn,
    /// Only these roles.
    Roles(&'static [Role]),
    /// Only a device, and only for itself.
    Devices,
    /// Only administrators bound to the whole city (city-wide records such as the code
    /// tables). Every subject here is bound to Futian, so all are refused; the city's
    /// administrator is checked in `codes`.
    CityAdministrators,
}

/// Whether the route acts on a record that lies somewhere (then the caller's jurisdiction
/// decides too).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Place {
    Unlocated,
    Located,
}

const ADMIN: &[Role] = &[Role::Administrator];
const AUDITOR: &[Role] = &[Role::Auditor];
/// Who runs the force and keeps its registry.
const FORCE_MANAGERS: &[Role] = &[Role::Commander, Role::Administrator];
/// Who sees where units are: those who send, lead or are units, and analysts.
const POSITIONS: &[Role] =
    &[Role::Commander, Role::Dispatcher, Role::PatrolMember, Role::CommunityOfficer, Role::Analyst];
/// Who sees the live board and incident history: the same people.
const BOARD: &[Role] = POSITIONS;
/// Who takes calls and sends units: the 110 centre.
const CENTRE: &[Role] = &[Role::Dispatcher, Role::Commander];
/// Who reports a unit's progress: the centre and patrol members.
const UNIT_STATUS: &[Role] = &[Role::Dispatcher, Role::Commander, Role::PatrolMember];
/// Who keeps the housing registry: community police and the workstations' coordinators.
const REGISTRARS: &[Role] = &[Role::CommunityOfficer, Role::HousingCoordinator];
/// Who sees the registry without people: those, the centre, commanders and analysts.
const REGISTRY: &[Role] =
    &[Role::CommunityOfficer, Role::HousingCoordinator, Role::Commander, Role::Dispatcher, Role::Analyst];
/// Who reads people on the registry (masked numbers for all but community officers).
const RESIDENTS: &[Role] = &[Role::CommunityOfficer, Role::HousingCoordinator, Role::Commander, Role::Dispatcher];

/// The oracle: method, path template, who, place, and whether a successful call reads
/// personal data.
const ROUTES: &[(&str, &str, Who, Place, bool)] = &[
    ("POST", "/api/v1/registry/properties", Who::Roles(REGISTRARS), Place::Located, false),
    ("GET", "/api/v1/registry/buildings", Who::Roles(REGISTRY), Place::Unlocated, false),
    ("GET", "/api/v1/registry/buildings/{code}", Who::Roles(RESIDENTS), Place::Located, true),
    ("POST", "/api/v1/registry/landlords", Who::Roles(REGISTRARS), Place::Located, false),
    ("GET", "/api/v1/registry/workstations", Who::Roles(REGISTRY), Place::Unlocated, false),
    ("POST", "/api/v1/registry/workstations", Who::Roles(REGISTRARS), Place::Located, false),
    ("POST", "/api/v1/registry/residents", Who::Roles(REGISTRARS), Place::Located, false),
    ("GET", "/api/v1/registry/residents", Who::Roles(RESIDENTS), Place::Unlocated, true),
    ("GET", "/api/v1/registry/residents/{code}", Who::Roles(RESIDENTS), Place::Located, true),
    ("POST", "/api/v1/registry/residents/{code}/permit", Who::Roles(REGISTRARS), Place::Located, false),
    ("POST", "/api/v1/registry/tenancies", Who::Roles(REGISTRARS), Place::Located, false),
    ("POST", "/api/v1/registry/tenancies/{code}/move-out", Who::Roles(REGISTRARS), Place::Located, false),
    ("POST", "/api/v1/registry/visits", Who::Roles(REGISTRARS), Place::Located, false),
    ("GET", "/api/v1/registry/alerts", Who::Roles(REGISTRY), Place::Unlocated, false),
    ("GET", "/api/v1/registry/changes", Who::Roles(REGISTRY), Place::Unlocated, false),
    ("POST", "/api/v1/registry/import/{kind}", Who::Roles(REGISTRARS), Place::Unlocated, false),
    (
        "GET",
        "/api/v1/registry/export/residents",
        Who::Roles(&[Role::CommunityOfficer, Role::HousingCoordinator]),
        Place::Unlocated,
        true,
    ),
    ("GET", "/api/v1/system", Who::Anyone, Place::Unlocated, false),
    ("POST", "/api/v1/auth/login", Who::Anyone, Place::Unlocated, false),
    ("POST", "/api/v1/auth/logout", Who::SignedIn, Place::Unlocated, false),
    ("GET", "/api/v1/auth/me", Who::SignedIn, Place::Unlocated, false),
    ("POST", "/api/v1/auth/password", Who::SignedIn, Place::Unlocated, false),
    ("POST", "/api/v1/auth/totp", Who::SignedIn, Place::Unlocated, false),
    ("POST", "/api/v1/auth/totp/confirm", Who::SignedIn, Place::Unlocated, false),
    ("GET", "/api/v1/users", Who::Roles(ADMIN), Place::Unlocated, true),
    ("POST", "/api/v1/users", Who::Roles(ADMIN), Place::Located, false),
    ("GET", "/api/v1/users/{username}", Who::Roles(ADMIN), Place::Located, true),
    ("PATCH", "/api/v1/users/{username}", Who::Roles(ADMIN), Place::Located, false),
    ("POST", "/api/v1/users/{username}/lock", Who::Roles(ADMIN), Place::Located, false),
    ("POST", "/api/v1/users/{username}/unlock", Who::Roles(ADMIN), Place::Located, false),
    ("POST", "/api/v1/users/{username}/password", Who::Roles(ADMIN), Place::Located, false),
    ("GET", "/api/v1/devices", Who::Roles(ADMIN), Place::Unlocated, false),
    ("POST", "/api/v1/devices", Who::Roles(ADMIN), Place::Located, false),
    ("POST", "/api/v1/devices/{unique_id}/revoke", Who::Roles(ADMIN), Place::Located, false),
    ("POST", "/api/v1/devices/{unique_id}/heartbeat", Who::Devices, Place::Located, false),
    ("GET", "/api/v1/positions", Who::Roles(POSITIONS), Place::Unlocated, false),
    ("GET", "/api/v1/sites", Who::Roles(POSITIONS), Place::Unlocated, false),
    ("GET", "/api/v1/beats", Who::Roles(POSITIONS), Place::Unlocated, false),
    ("POST", "/api/v1/beats", Who::Roles(FORCE_MANAGERS), Place::Located, false),
    ("GET", "/api/v1/units", Who::Roles(POSITIONS), Place::Unlocated, false),
    ("POST", "/api/v1/units", Who::Roles(FORCE_MANAGERS), Place::Located, false),
    ("GET", "/api/v1/units/on-duty", Who::Roles(POSITIONS), Place::Unlocated, false),
    ("GET", "/api/v1/roster", Who::Roles(POSITIONS), Place::Unlocated, false),
    ("POST", "/api/v1/roster", Who::Roles(FORCE_MANAGERS), Place::Located, false),
    ("GET", "/api/v1/coverage", Who::Roles(POSITIONS), Place::Located, false),
    ("GET", "/api/v1/coverage/hotspots", Who::Roles(POSITIONS), Place::Located, false),
    ("GET", "/api/v1/members", Who::Roles(FORCE_MANAGERS), Place::Unlocated, true),
    ("POST", "/api/v1/members", Who::Roles(FORCE_MANAGERS), Place::Located, false),
    ("PATCH", "/api/v1/members/{id}", Who::Roles(FORCE_MANAGERS), Place::Located, false),
    ("DELETE", "/api/v1/roster/{id}", Who::Roles(FORCE_MANAGERS), Place::Located, false),
    // A plain GET passes the checks and is then told to upgrade (426): counted as allowed.
    ("GET", "/api/v1/stream", Who::Roles(POSITIONS), Place::Unlocated, false),
    ("GET", "/api/v1/devices/{unique_id}/track", Who::Roles(POSITIONS), Place::Located, false),
    ("GET", "/api/v1/devices/{unique_id}/refused", Who::Roles(POSITIONS), Place::Located, false),
    ("GET", "/api/v1/incidents", Who::Roles(BOARD), Place::Unlocated, false),
    ("POST", "/api/v1/incidents", Who::Roles(CENTRE), Place::Located, false),
    ("GET", "/api/v1/incidents/{id}", Who::Roles(BOARD), Place::Located, false),
    ("GET", "/api/v1/incidents/{id}/timeline", Who::Roles(BOARD), Place::Located, false),
    ("GET", "/api/v1/incidents/{id}/caller", Who::Roles(CENTRE), Place::Located, true),
    ("GET", "/api/v1/incidents/{id}/history", Who::Roles(BOARD), Place::Located, false),
    ("GET", "/api/v1/incidents/{id}/recommendations", Who::Roles(BOARD), Place::Located, false),
    ("POST", "/api/v1/incidents/{id}/assign", Who::Roles(CENTRE), Place::Located, false),
    ("POST", "/api/v1/incidents/{id}/resolve", Who::Roles(CENTRE), Place::Located, false),
    ("POST", "/api/v1/incidents/{id}/close", Who::Roles(CENTRE), Place::Located, false),
    ("POST", "/api/v1/incidents/{id}/reopen", Who::Roles(CENTRE), Place::Located, false),
    ("POST", "/api/v1/incidents/{id}/cancel", Who::Roles(CENTRE), Place::Located, false),
    ("POST", "/api/v1/incidents/{id}/merge", Who::Roles(CENTRE), Place::Located, false),
    ("POST", "/api/v1/incidents/{id}/keep", Who::Roles(CENTRE), Place::Located, false),
    ("POST", "/api/v1/incidents/{id}/notes", Who::Roles(CENTRE), Place::Located, false),
    ("GET", "/api/v1/incidents/{id}/eido", Who::Roles(BOARD), Place::Located, false),
    ("GET", "/api/v1/dispatch/units", Who::Roles(BOARD), Place::Unlocated, false),
    ("POST", "/api/v1/units/{code}/status", Who::Roles(UNIT_STATUS), Place::Located, false),
    ("GET", "/api/v1/measures/response", Who::Roles(BOARD), Place::Located, false),
    ("GET", "/api/v1/area-classes", Who::SignedIn, Place::Unlocated, false),
    ("PUT", "/api/v1/jurisdictions/{code}/area-class", Who::Roles(ADMIN), Place::Located, false),
    ("GET", "/api/v1/audit", Who::Roles(AUDITOR), Place::Unlocated, false),
    ("GET", "/api/v1/audit/verify", Who::Roles(AUDITOR), Place::Unlocated, false),
    ("GET", "/api/v1/jurisdictions", Who::SignedIn, Place::Unlocated, false),
    ("GET", "/api/v1/jurisdictions/lookup", Who::SignedIn, Place::Unlocated, false),
    ("GET", "/api/v1/jurisdictions/features", Who::SignedIn, Place::Unlocated, false),
    ("GET", "/api/v1/jurisdictions/{code}", Who::SignedIn, Place::Unlocated, false),
    ("POST", "/api/v1/jurisdictions/import", Who::Roles(ADMIN), Place::Located, false),
    ("GET", "/api/v1/codes/{kind}", Who::SignedIn, Place::Unlocated, false),
    ("POST", "/api/v1/codes/{kind}", Who::CityAdministrators, Place::Unlocated, false),
    ("GET", "/api/v1/codes/{kind}/{code}", Who::SignedIn, Place::Unlocated, false),
    ("PATCH", "/api/v1/codes/{kind}/{code}", Who::CityAdministrators, Place::Unlocated, false),
];

#[test]
fn every_route_has_a_row() {
    let document = serde_json::to_value(fangkong_server::openapi()).unwrap();
    let mut documented = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    let mut rows: Vec<String> = ROUTES.iter().map(|(m, p, ..)| format!("{m} {p}")).collect();
    documented.sort();
    rows.sort();
    assert_eq!(documented, rows, "the matrix must have exactly one row per documented route");
}

/// The caller of one cell of the matrix.
#[derive(Clone, Copy, Debug)]
enum Subject {
    Nobody,
    Device,
    User(Role),
}

/// How a response counts.
#[derive(Debug, PartialEq)]
enum Verdict {
    Allowed,
    Denied,
    Unauthenticated,
}

fn expected(who: Who, place: Place, subject: Subject, inside: bool) -> Verdict {
    let located_outside = place == Place::Located && !inside;
    match (who, subject) {
        (Who::Anyone, _) => Verdict::Allowed,
        (Who::SignedIn, Subject::User(_)) => Verdict::Allowed,
        (Who::Roles(roles), Subject::User(role)) if roles.contains(&role) => {
            if located_outside {
                Verdict::Denied
            } else {
                Verdict::Allowed
            }
        }
        (Who::Roles(_) | Who::CityAdministrators, Subject::User(_)) => Verdict::Denied,
        (Who::Devices, Subject::Device) => {
            if located_outside {
                Verdict::Denied
            } else {
                Verdict::Allowed
            }
        }
        (Who::Devices, Subject::User(_)) | (_, Subject::Nobody) | (_, Subject::Device) => Verdict::Unauthenticated,
    }
}

static NEXT: AtomicU32 = AtomicU32::new(1);

/// The police station inside (Futian) or outside (Luohu) the callers' jurisdiction.
fn station(inside: bool) -> &'static str {
    if inside { "PS440304-01" } else { "PS440303-01" }
}

/// A valid identity number not used before in this run.
fn fresh_id_number() -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let first17 = format!("110105{:04}0101{:03}", 1950 + n / 1000, n % 1000);
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first17.bytes().zip(WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    format!("{first17}{}", b"10X98765432"[(sum % 11) as usize] as char)
}

fn fresh(prefix: &str) -> String {
    format!("{prefix}{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// One prepared request: path, body, and the credential to send.
struct Prepared {
    path: String,
    body: Option<serde_json::Value>,
    /// A body that is not JSON: its content type and bytes.
    raw: Option<(&'static str, Vec<u8>)>,
    authorization: Option<String>,
    /// The username the audit trail will show for this caller.
    actor_name: Option<String>,
}

async fn new_device(server: &TestServer, jurisdiction: &str) -> (String, String) {
    let unique_id = fresh("dev-");
    let new = NewDevice {
        unique_id: unique_id.clone(),
        kind: DeviceKind::Tracker,
        unit: None,
        jurisdiction: jurisdiction.into(),
        name: None,
        location: None,
    };
    let (_, secret) = server.engine.add_device(&Caller::system("test"), new).await.unwrap();
    (unique_id, secret)
}

/// A small beat at the station inside or outside the callers' jurisdiction; its code.
async fn new_beat(server: &TestServer, inside: bool) -> String {
    let code = fresh("rb");
    let square = fangkong_geo::Area::from_rings(vec![vec![vec![
        [114.0, 22.5],
        [114.001, 22.5],
        [114.001, 22.501],
        [114.0, 22.501],
        [114.0, 22.5],
    ]]])
    .unwrap();
    let new = fangkong_engine::NewBeat {
        code: code.clone(),
        station: station(inside).into(),
        name: "巡区".into(),
        shape: Some(square),
        grids: Vec::new(),
    };
    server.engine.save_beat(&Caller::system("test"), new).await.unwrap();
    code
}

/// A free unit at the station inside or outside the callers' jurisdiction.
async fn free_unit(server: &TestServer, inside: bool) -> String {
    let code = fresh("fu");
    let unit = fangkong_core::forces::Unit {
        code: code.clone(),
        call_sign: "机动".into(),
        station: station(inside).into(),
        category: fangkong_core::forces::ForceCategory::Police,
        mode: fangkong_core::forces::PatrolMode::Vehicle,
        equipment: Vec::new(),
        beat: None,
        capabilities: Vec::new(),
    };
    let system = Caller::system("test");
    server.engine.save_unit(&system, unit).await.unwrap();
    server.engine.set_unit_status(&system, &code, fangkong_core::dispatch::UnitStatus::Available).await.unwrap();
    code
}

/// A new incident in Futian (inside) or Luohu (outside), each at a spot of its own.
async fn new_incident(server: &TestServer, inside: bool) -> i64 {
    let n = f64::from(NEXT.fetch_add(1, Ordering::Relaxed) % 5000);
    let lon = if inside { 114.01 } else { 114.11 } + (n % 80.0) * 0.001;
    let lat = 22.505 + (n / 80.0).floor() * 0.001;
    new_incident_at(server, lat, lon).await
}

async fn new_incident_at(server: &TestServer, lat: f64, lon: f64) -> i64 {
    let new = fangkong_engine::NewIncident {
        source: "110".into(),
        type_code: "010301".into(),
        point: Some(fangkong_geo::LatLon::new(lat, lon).unwrap()),
        caller_phone: Some("13800000000".into()),
        ..Default::default()
    };
    server.engine.create_incident(&Caller::system("test"), new).await.unwrap().incident.id
}

/// The grid and community of a registry record inside (Futian) or outside (Luohu).
fn registry_place(inside: bool) -> (&'static str, &'static str) {
    if inside { ("440304001001G01", "440304001001") } else { ("440303001001G01", "440303001001") }
}

/// A building with one unit in the grid inside or outside: their codes.
async fn new_property(server: &TestServer, inside: bool) -> (String, String) {
    let (grid, _) = registry_place(inside);
    let (code, unit) = (fresh("B"), fresh("U"));
    let building = fangkong_core::registry::Building {
        code: code.clone(),
        address: "园岭新村2栋".into(),
        grid: grid.into(),
        community: String::new(),
        lon: 114.05,
        lat: 22.55,
        kind: fangkong_core::registry::BuildingKind::UrbanVillage,
        floors: 6,
    };
    let units = vec![fangkong_core::registry::HousingUnit {
        code: unit.clone(),
        building: code.clone(),
        floor: 2,
        area_m2: 25.0,
        rooms: 1,
        usage: fangkong_core::registry::UnitUse::Residential,
        rent_yuan: None,
        rental: true,
        landlord: None,
        community: String::new(),
    }];
    server.engine.save_property(&Caller::system("test"), building, units).await.unwrap();
    (code, unit)
}

/// A resident living in a new unit inside or outside: their code and the unit's.
async fn new_resident(server: &TestServer, inside: bool, number: &str) -> (String, String) {
    let (_, unit) = new_property(server, inside).await;
    let code = fresh("R");
    let new = fangkong_engine::registry::NewResident {
        code: code.clone(),
        id_number: number.into(),
        name: "李娜".into(),
        unit: Some(unit.clone()),
        ..Default::default()
    };
    server.engine.register_resident(&Caller::system("test"), new).await.unwrap();
    (code, unit)
}

async fn new_user(server: &TestServer, role: Role, jurisdiction: &str) -> String {
    let username = fresh("user");
    server.add_user(&username, role, jurisdiction).await;
    username
}

/// Builds the request for `path` as `subject`, with a fresh target inside (Futian) or
/// outside (Luohu) the caller's jurisdiction. Every user subject is bound to Futian.
async fn prepare(server: &TestServer, method: &str, template: &str, subject: Subject, inside: bool) -> Prepared {
    let area = if inside { FUTIAN } else { LUOHU };
    let (mut authorization, mut actor_name) = (None, None);
    let mut device_id = None;
    match subject {
        Subject::Nobody => {}
        Subject::Device => {
            let (id, secret) = new_device(server, FUTIAN).await;
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
            authorization = Some(format!("Basic {basic}"));
            actor_name = Some(id.clone());
            device_id = Some(id);
        }
        Subject::User(role) => {
            let username = new_user(server, role, FUTIAN).await;
            authorization = Some(format!("Bearer {}", server.token(&username).await));
            actor_name = Some(username);
        }
    }
    let mut body = None;
    let mut raw = None;
    let path = match (method, template) {
        ("POST", "/api/v1/auth/login") => {
            let username = new_user(server, Role::Dispatcher, FUTIAN).await;
            body = Some(json!({"username": username, "password": crate::support::PASSWORD}));
            template.to_string()
        }
        ("POST", "/api/v1/auth/password") => {
            body = Some(
                json!({"current_password": crate::support::PASSWORD, "new_password": "an entirely new passphrase"}),
            );
            template.to_string()
        }
        ("POST", "/api/v1/auth/totp/confirm") => {
            // A pending second factor to confirm, with the right code.
            let code = match (subject, &authorization) {
                (Subject::User(_), Some(auth)) => {
                    let token = auth.trim_start_matches("Bearer ");
                    let setup = server.request(Method::POST, "/api/v1/auth/totp").token(token).send().await.json();
                    let secret = fangkong_core::auth::totp::base32_decode(setup["secret"].as_str().unwrap()).unwrap();
                    fangkong_core::auth::totp::code_at(&secret, server.engine.now().as_millis() / 1000)
                }
                _ => "000000".into(),
            };
            body = Some(json!({"code": code}));
            template.to_string()
        }
        ("POST", "/api/v1/users") => {
            body = Some(json!({
                "username": fresh("new"), "display_name": "新用户", "role": "dispatcher",
                "jurisdiction": area, "password": "a decent long passphrase"
            }));
            template.to_string()
        }
        (_, t) if t.starts_with("/api/v1/users/{username}") => {
            let victim = new_user(server, Role::Dispatcher, area).await;
            if t.ends_with("/password") {
                body = Some(json!({"password": "a decent long passphrase"}));
            } else if method == "PATCH" {
                body = Some(json!({"display_name": "改名"}));
            }
            t.replace("{username}", &victim)
        }
        ("POST", "/api/v1/devices") => {
            body = Some(json!({"unique_id": fresh("nd-"), "kind": "alarm_point", "jurisdiction": area}));
            template.to_string()
        }
        ("POST", "/api/v1/devices/{unique_id}/revoke") => {
            let (id, _) = new_device(server, area).await;
            template.replace("{unique_id}", &id)
        }
        ("POST", "/api/v1/devices/{unique_id}/heartbeat") => {
            // Inside: the device's own id. Outside: another device's.
            let id = match (&device_id, inside) {
                (Some(own), true) => own.clone(),
                _ => new_device(server, FUTIAN).await.0,
            };
            template.replace("{unique_id}", &id)
        }
        ("GET", "/api/v1/jurisdictions/lookup") => format!("{template}?lat=22.54&lon=114.05"),
        ("GET", "/api/v1/jurisdictions/features") => format!("{template}?kind=district"),
        ("GET", "/api/v1/jurisdictions/{code}") => template.replace("{code}", FUTIAN),
        ("POST", "/api/v1/jurisdictions/import") => {
            // A new sub-district: a small square of its own inside the target district, so
            // that no two cells' imports overlap.
            let n = f64::from(NEXT.fetch_add(1, Ordering::Relaxed) % 5000);
            let x = if inside { 114.0 } else { 114.1 } + (n % 90.0) * 0.001;
            let y = 22.5 + (n / 90.0).floor() * 0.001;
            let square = [[x, y], [x + 0.0005, y], [x + 0.0005, y + 0.0005], [x, y + 0.0005], [x, y]];
            body = Some(json!({"type": "FeatureCollection", "features": [{
                "type": "Feature",
                "properties": {"code": fresh("sd"), "name_zh": "测试街道", "parent": area},
                "geometry": {"type": "Polygon", "coordinates": [square]},
            }]}));
            format!("{template}?level=subdistrict")
        }
        ("GET", "/api/v1/devices/{unique_id}/track" | "/api/v1/devices/{unique_id}/refused") => {
            let (id, _) = new_device(server, area).await;
            template.replace("{unique_id}", &id)
        }
        ("POST", "/api/v1/beats") => {
            let n = f64::from(NEXT.fetch_add(1, Ordering::Relaxed) % 5000);
            let (x, y) = (114.0 + (n % 90.0) * 0.001, 22.5 + (n / 90.0).floor() * 0.001);
            body = Some(json!({"code": fresh("b"), "station": station(inside), "name": "巡区",
                "geometry": {"type": "Polygon", "coordinates": [[[x, y], [x + 0.0005, y], [x + 0.0005, y + 0.0005], [x, y + 0.0005], [x, y]]]}}));
            template.to_string()
        }
        ("POST", "/api/v1/units") => {
            body = Some(
                json!({"code": fresh("u"), "call_sign": "巡逻", "station": station(inside), "category": "police", "mode": "foot"}),
            );
            template.to_string()
        }
        ("POST", "/api/v1/roster") => {
            let unit = fresh("ru");
            let beat = new_beat(server, inside).await;
            let system = Caller::system("test");
            let new_unit = fangkong_core::forces::Unit {
                code: unit.clone(),
                call_sign: "巡逻".into(),
                station: station(inside).into(),
                category: fangkong_core::forces::ForceCategory::Police,
                mode: fangkong_core::forces::PatrolMode::Foot,
                equipment: Vec::new(),
                beat: None,
                capabilities: Vec::new(),
            };
            server.engine.save_unit(&system, new_unit).await.unwrap();
            body = Some(
                json!({"shifts": [{"unit": unit, "beat": beat, "starts_at": "2025-11-28T00:00:00Z", "ends_at": "2025-11-28T08:00:00Z"}]}),
            );
            template.to_string()
        }
        ("GET", "/api/v1/coverage" | "/api/v1/coverage/hotspots") => format!("{template}?within={area}"),
        ("PATCH", "/api/v1/members/{id}") => {
            let new = fangkong_engine::NewMember {
                category: fangkong_core::forces::ForceCategory::Volunteer,
                station: station(inside).into(),
                unit: None,
                name: "李娜".into(),
                id_number: fresh_id_number(),
                phone: None,
            };
            let member = server.engine.add_member(&Caller::system("test"), new).await.unwrap();
            body = Some(json!({"active": false}));
            template.replace("{id}", &member.id.to_string())
        }
        ("DELETE", "/api/v1/roster/{id}") => {
            let system = Caller::system("test");
            let unit = free_unit(server, inside).await;
            let beat = new_beat(server, inside).await;
            let t0 = server.engine.now();
            let shift = fangkong_core::forces::Shift { unit, beat, starts_at: t0, ends_at: t0.plus_seconds(3_600) };
            let ids = server.engine.add_shifts(&system, vec![shift]).await.unwrap();
            template.replace("{id}", &ids[0].to_string())
        }
        ("POST", "/api/v1/members") => {
            body = Some(
                json!({"category": "volunteer", "station": station(inside), "name": "张伟", "id_number": fresh_id_number()}),
            );
            template.to_string()
        }
        ("POST", "/api/v1/incidents") => {
            let lon = if inside { 114.05 } else { 114.15 };
            body = Some(json!({"source": "122", "type_code": "030101", "lat": 22.55, "lon": lon}));
            template.to_string()
        }
        (_, t) if t.starts_with("/api/v1/incidents/{id}") => {
            let system = Caller::system("test");
            let id = new_incident(server, inside).await;
            match t.rsplit('/').next() {
                Some("assign") => body = Some(json!({"units": [free_unit(server, inside).await]})),
                Some("resolve") => {
                    let unit = free_unit(server, inside).await;
                    server.engine.assign_units(&system, id, &[unit]).await.unwrap();
                }
                Some("close") => body = Some(json!({"disposition": "invalid_call"})),
                Some("cancel") => body = Some(json!({})),
                Some("reopen") => {
                    let action = fangkong_core::dispatch::IncidentAction::Close;
                    server.engine.incident_action(&system, id, action, Some("false_alarm")).await.unwrap();
                }
                Some("merge") => body = Some(json!({"into": new_incident(server, inside).await})),
                Some("keep") => {
                    // A second call next to this one is flagged as its possible duplicate.
                    let first = server.engine.incident(&system, id).await.unwrap();
                    let flagged = new_incident_at(server, first.point.lat() + 0.0002, first.point.lon()).await;
                    return Prepared {
                        path: t.replace("{id}", &flagged.to_string()),
                        body,
                        raw: None,
                        authorization,
                        actor_name,
                    };
                }
                Some("notes") => body = Some(json!({"text": "报警人再次来电"})),
                _ => {}
            }
            t.replace("{id}", &id.to_string())
        }
        ("POST", "/api/v1/units/{code}/status") => {
            body = Some(json!({"status": "off_duty"}));
            template.replace("{code}", &free_unit(server, inside).await)
        }
        ("GET", "/api/v1/measures/response") => format!("{template}?within={area}"),
        ("PUT", "/api/v1/jurisdictions/{code}/area-class") => {
            body = Some(json!({"area_class": "urban"}));
            template.replace("{code}", area)
        }
        ("POST", "/api/v1/codes/{kind}") => {
            body = Some(json!({"code": fresh("case_"), "name_zh": "测试处置", "name_en": "Test disposition"}));
            template.replace("{kind}", "disposition")
        }
        ("PATCH", "/api/v1/codes/{kind}/{code}") => {
            body = Some(json!({"name_en": fresh("Mediated ")}));
            template.replace("{kind}", "disposition").replace("{code}", "mediated")
        }
        (_, t) if t.starts_with("/api/v1/registry/") => {
            let (grid, community) = registry_place(inside);
            let system = Caller::system("test");
            let engine = &server.engine;
            match (method, t) {
                ("POST", "/api/v1/registry/properties") => {
                    body = Some(json!({"code": fresh("B"), "address": "园岭新村1栋", "grid": grid, "lat": 22.55,
                        "lon": 114.05, "kind": "urban_village", "floors": 7,
                        "units": [{"code": fresh("U"), "floor": 1, "area_m2": 30.0}]}));
                    t.to_string()
                }
                ("GET", "/api/v1/registry/buildings") => format!("{t}?q=新村"),
                ("GET", "/api/v1/registry/buildings/{code}") => {
                    t.replace("{code}", &new_property(server, inside).await.0)
                }
                ("POST", "/api/v1/registry/landlords") => {
                    body =
                        Some(json!({"code": fresh("L"), "kind": "person", "name": "王房东", "community": community}));
                    t.to_string()
                }
                ("POST", "/api/v1/registry/workstations") => {
                    body = Some(json!({"code": fresh("W"), "community": community, "name": "社区工作站"}));
                    t.to_string()
                }
                ("POST", "/api/v1/registry/residents") => {
                    let (_, unit) = new_property(server, inside).await;
                    body =
                        Some(json!({"code": fresh("R"), "id_number": fresh_id_number(), "name": "张伟", "unit": unit}));
                    t.to_string()
                }
                ("GET", "/api/v1/registry/residents") => {
                    let number = fresh_id_number();
                    new_resident(server, inside, &number).await;
                    format!("{t}?id_number={number}")
                }
                ("GET", "/api/v1/registry/residents/{code}") => {
                    t.replace("{code}", &new_resident(server, inside, &fresh_id_number()).await.0)
                }
                ("POST", "/api/v1/registry/residents/{code}/permit") => {
                    body = Some(json!({"issued": "2025-01-01", "expires": "2026-01-01"}));
                    t.replace("{code}", &new_resident(server, inside, &fresh_id_number()).await.0)
                }
                ("POST", "/api/v1/registry/tenancies") => {
                    let (resident, unit) = new_resident(server, inside, &fresh_id_number()).await;
                    body = Some(json!({"code": fresh("T"), "unit": unit, "lessee": resident, "move_in": "2025-06-01"}));
                    t.to_string()
                }
                ("POST", "/api/v1/registry/tenancies/{code}/move-out") => {
                    let (resident, unit) = new_resident(server, inside, &fresh_id_number()).await;
                    let code = fresh("T");
                    let new = fangkong_engine::registry::NewTenancy {
                        code: code.clone(),
                        unit,
                        landlord: None,
                        lessee: resident,
                        co_residents: Vec::new(),
                        move_in: fangkong_core::registry::parse_date("2025-06-01").unwrap(),
                    };
                    engine.move_in(&system, new).await.unwrap();
                    body = Some(json!({"move_out": "2025-09-30"}));
                    t.replace("{code}", &code)
                }
                ("POST", "/api/v1/registry/visits") => {
                    let (_, unit) = new_property(server, inside).await;
                    body = Some(json!({"unit": unit, "day": "2025-11-01", "outcome": "verified"}));
                    t.to_string()
                }
                ("POST", "/api/v1/registry/import/{kind}") => {
                    let (_, unit) = new_property(server, inside).await;
                    let csv = format!(
                        "code,name,id_number,unit,grid\n{},张伟,{},{unit},{grid}\n",
                        fresh("R"),
                        fresh_id_number()
                    );
                    raw = Some(("text/csv", csv.into_bytes()));
                    t.replace("{kind}", "residents")
                }
                ("GET", "/api/v1/registry/export/residents") => format!("{t}?community={community}"),
                _ => t.to_string(),
            }
        }
        (_, t) => t.replace("{kind}", "incident_type").replace("{code}", "010301"),
    };
    Prepared { path, body, raw, authorization, actor_name }
}

async fn run_matrix(db: TestDatabase) {
    let backend = db.backend();
    let server = TestServer::on(db).await;
    let mut subjects = vec![Subject::Nobody, Subject::Device];
    subjects.extend(Role::ALL.into_iter().map(Subject::User));
    let mut failures = Vec::new();
    let mut cells = 0;
    for &(method, template, who, place, personal) in ROUTES {
        for &subject in &subjects {
            let sides: &[bool] = if place == Place::Located { &[true, false] } else { &[true] };
            for &inside in sides {
                cells += 1;
                let prepared = prepare(&server, method, template, subject, inside).await;
                let before = server.audit_head().await;
                let mut call =
                    server.request(method.parse::<Method>().unwrap(), &prepared.path).purpose("permission matrix");
                if let Some(authorization) = &prepared.authorization {
                    call = call.header("authorization", authorization);
                }
                if let Some(body) = prepared.body {
                    call = call.json(body);
                }
                if let Some((content_type, bytes)) = prepared.raw {
                    call = call.bytes(content_type, bytes);
                }
                let reply = call.send().await;
                let verdict = match reply.status {
                    s if s.is_success() => Verdict::Allowed,
                    StatusCode::UPGRADE_REQUIRED if template == "/api/v1/stream" => Verdict::Allowed,
                    StatusCode::FORBIDDEN => Verdict::Denied,
                    StatusCode::UNAUTHORIZED => Verdict::Unauthenticated,
                    other => {
                        failures.push(format!(
                            "{method} {template} as {subject:?} inside={inside}: unexpected {other}: {:.160}",
                            reply.text
                        ));
                        continue;
                    }
                };
                let want = expected(who, place, subject, inside);
                if verdict != want {
                    failures.push(format!(
                        "{method} {template} as {subject:?} inside={inside}: got {verdict:?}, expected {want:?} ({:.160})",
                        reply.text
                    ));
                    continue;
                }
                let new_records = server.audit_after(before).await;
                let by_caller = |outcome: Outcome| {
                    new_records.iter().any(|r| {
                        r.entry.outcome == outcome && Some(&r.entry.actor_name) == prepared.actor_name.as_ref()
                    })
                };
                if verdict == Verdict::Denied && !by_caller(Outcome::Denied) {
                    failures.push(format!("{method} {template} as {subject:?} inside={inside}: refusal not audited"));
                }
                if verdict == Verdict::Allowed && personal {
                    let audited = new_records.iter().any(|r| {
                        r.entry.outcome == Outcome::Allowed
                            && r.entry.purpose.as_deref() == Some("permission matrix")
                            && Some(&r.entry.actor_name) == prepared.actor_name.as_ref()
                    });
                    if !audited {
                        failures.push(format!(
                            "{method} {template} as {subject:?}: personal-data read not audited with purpose"
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{backend:?}: {} of {cells} cells wrong:\n{}", failures.len(), failures.join("\n"));
    assert!(cells > 400, "the matrix covered {cells} cells");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_permission_matrix_holds_on_sqlite() {
    run_matrix(TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_permission_matrix_holds_on_postgres() {
    if let Some(db) = TestDatabase::postgres().await {
        run_matrix(db).await;
    }
}
