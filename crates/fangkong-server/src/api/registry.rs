//! The residence and rental-housing registry (流动人口和出租屋): properties, landlords,
//! residents, tenancies, permits, visits; search, cards, alerts, the change stream,
//! imports and exports.
//!
//! Reads of people (search, a resident, a property's card, an export) need `X-Purpose` and
//! are audited; identity numbers come back masked unless the role may read them whole
//! (`id_number_masked` says which).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fangkong_core::documents::DocumentKind;
use fangkong_core::registry::{
    AlertKind, Building, BuildingKind, Day, HousingUnit, LandlordKind, PermitKind, Sex, UnitUse, VisitOutcome,
    Workstation, format_date, parse_date,
};
use fangkong_engine::registry::{
    ExportFormat, ImportFormat, ImportKind, NewLandlord, NewResident, NewTenancy, NewVisit, ResidentQuery, ResidentView,
};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::UserSession;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Query};

/// The largest file an import through the API takes (bigger ones: `fangkong import`).
pub const IMPORT_LIMIT_BYTES: usize = 64 << 20;

fn date(field: &str, text: &str) -> Result<Day, ApiError> {
    parse_date(text).ok_or_else(|| ApiError::invalid_field(field, format!("{text:?} is not a date (YYYY-MM-DD)")))
}

fn optional_date(field: &str, text: &Option<String>) -> Result<Option<Day>, ApiError> {
    text.as_deref().filter(|t| !t.is_empty()).map(|t| date(field, t)).transpose()
}

fn word<T>(field: &str, text: &str, parse: impl Fn(&str) -> Option<T>, words: String) -> Result<T, ApiError> {
    parse(text).ok_or_else(|| ApiError::invalid_field(field, format!("{text:?} is not one of {words}")))
}

// ---- properties ---------------------------------------------------------------------------

/// A dwelling of a building; named apart from the force's `UnitBody` in the document.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
#[schema(as = HousingUnitBody)]
pub struct UnitBody {
    #[schema(example = "440304001001B0001U001")]
    pub code: String,
    #[serde(default)]
    pub floor: i32,
    pub area_m2: f64,
    #[serde(default = "one")]
    pub rooms: u32,
    /// `residential`, `dormitory`, `mixed`, `commercial`.
    #[serde(default = "residential")]
    pub usage: String,
    pub rent_yuan: Option<u32>,
    #[serde(default = "yes")]
    pub rental: bool,
    pub landlord: Option<String>,
}

fn one() -> u32 {
    1
}
fn residential() -> String {
    "residential".into()
}
fn yes() -> bool {
    true
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct PropertyBody {
    #[schema(example = "440304001001B0001")]
    pub code: String,
    #[schema(example = "园岭新村12栋")]
    pub address: String,
    /// The grid (网格) it stands in.
    pub grid: String,
    /// Filled in by the server.
    #[serde(default)]
    pub community: String,
    pub lat: f64,
    pub lon: f64,
    /// `urban_village`, `dormitory`, `residential`, `commercial`, `other`.
    pub kind: String,
    pub floors: u32,
    #[serde(default)]
    pub units: Vec<UnitBody>,
}

fn building_body(b: &Building, units: &[HousingUnit]) -> PropertyBody {
    PropertyBody {
        code: b.code.clone(),
        address: b.address.clone(),
        grid: b.grid.clone(),
        community: b.community.clone(),
        lat: b.lat,
        lon: b.lon,
        kind: b.kind.as_str().into(),
        floors: b.floors,
        units: units.iter().map(unit_body).collect(),
    }
}

fn unit_body(u: &HousingUnit) -> UnitBody {
    UnitBody {
        code: u.code.clone(),
        floor: u.floor,
        area_m2: u.area_m2,
        rooms: u.rooms,
        usage: u.usage.as_str().into(),
        rent_yuan: u.rent_yuan,
        rental: u.rental,
        landlord: u.landlord.clone(),
    }
}

/// Registers (or replaces) a building with its units.
#[utoipa::path(post, path = "/registry/properties", tag = "registry", security(("bearer" = [])), request_body = PropertyBody,
    responses((status = 200, description = "the property", body = PropertyBody), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 422, description = "invalid (the field is named)", body = ErrorBody)))]
pub async fn save_property(
    State(state): State<AppState>,
    session: UserSession,
    Json(body): Json<PropertyBody>,
) -> Result<Json<PropertyBody>, ApiError> {
    let building = Building {
        code: body.code.clone(),
        address: body.address,
        grid: body.grid,
        community: String::new(),
        lon: body.lon,
        lat: body.lat,
        kind: word("kind", &body.kind, BuildingKind::parse, BuildingKind::words())?,
        floors: body.floors,
    };
    let mut units = Vec::new();
    for u in body.units {
        units.push(HousingUnit {
            code: u.code,
            building: body.code.clone(),
            floor: u.floor,
            area_m2: u.area_m2,
            rooms: u.rooms,
            usage: word("usage", &u.usage, UnitUse::parse, UnitUse::words())?,
            rent_yuan: u.rent_yuan,
            rental: u.rental,
            landlord: u.landlord,
            community: String::new(),
        });
    }
    let (building, units) = state.engine.save_property(&session.caller, building, units).await?;
    Ok(Json(building_body(&building, &units)))
}

#[derive(Deserialize, IntoParams, Debug)]
pub struct BuildingQuery {
    /// A building code, or part of an address.
    pub q: String,
}

/// Buildings by code or address in your jurisdiction.
#[utoipa::path(get, path = "/registry/buildings", tag = "registry", security(("bearer" = [])), params(BuildingQuery),
    responses((status = 200, description = "buildings", body = [PropertyBody]), (status = 403, description = "forbidden", body = ErrorBody)))]
pub async fn search_buildings(
    State(state): State<AppState>,
    session: UserSession,
    Query(query): Query<BuildingQuery>,
) -> Result<Json<Vec<PropertyBody>>, ApiError> {
    let found = state.engine.search_buildings(&session.caller, &query.q).await?;
    Ok(Json(found.iter().map(|b| building_body(b, &[])).collect()))
}

#[derive(Serialize, ToSchema, Debug)]
pub struct LandlordView {
    pub code: String,
    pub kind: String,
    pub name: String,
    pub phone: Option<String>,
    pub safety_person: String,
    pub safety_phone: Option<String>,
    pub pledge_signed: Option<String>,
    pub pledge_expires: Option<String>,
}

#[derive(Serialize, ToSchema, Debug)]
pub struct TenancyBody {
    pub code: String,
    pub unit: String,
    pub landlord: Option<String>,
    pub lessee: String,
    pub members: Vec<String>,
    pub move_in: String,
    pub move_out: Option<String>,
    pub community: String,
}

fn tenancy_body(t: &fangkong_core::registry::Tenancy) -> TenancyBody {
    TenancyBody {
        code: t.code.clone(),
        unit: t.unit.clone(),
        landlord: t.landlord.clone(),
        lessee: t.lessee.clone(),
        members: t.members.clone(),
        move_in: format_date(t.move_in),
        move_out: t.move_out.map(format_date),
        community: t.community.clone(),
    }
}

#[derive(Serialize, ToSchema, Debug)]
pub struct PermitBody {
    pub resident: String,
    pub kind: String,
    pub issued: String,
    pub expires: String,
    pub endorsed: Option<String>,
}

fn permit_body(p: &fangkong_core::registry::Permit) -> PermitBody {
    PermitBody {
        resident: p.resident.clone(),
        kind: p.kind.as_str().into(),
        issued: format_date(p.issued),
        expires: format_date(p.expires),
        endorsed: p.endorsed.map(format_date),
    }
}

#[derive(Serialize, ToSchema, Debug)]
pub struct VisitBody {
    pub id: i64,
    pub unit: String,
    pub day: String,
    pub by: String,
    pub outcome: String,
    pub occupants: Option<u32>,
    pub note: String,
}

#[derive(Serialize, ToSchema, Debug)]
pub struct ResidentBody {
    pub code: String,
    pub document: String,
    /// Masked (`110***********002X`) unless your role may read it whole.
    pub id_number: String,
    pub id_number_masked: bool,
    pub name: String,
    pub sex: String,
    pub birth_date: String,
    pub phone: Option<String>,
    pub phone_masked: bool,
    pub origin_province: Option<String>,
    pub origin_city: Option<String>,
    pub employer: Option<String>,
    pub unit: Option<String>,
    pub grid: String,
    pub community: String,
}

fn resident_body(r: &ResidentView) -> ResidentBody {
    ResidentBody {
        code: r.code.clone(),
        document: r.document.as_str().into(),
        id_number: r.id_number.clone(),
        id_number_masked: r.id_number_masked,
        name: r.name.clone(),
        sex: r.sex.as_str().into(),
        birth_date: format_date(r.birth),
        phone: r.phone.clone(),
        phone_masked: r.phone_masked,
        origin_province: r.origin_province.clone(),
        origin_city: r.origin_city.clone(),
        employer: r.employer.clone(),
        unit: r.unit.clone(),
        grid: r.grid.clone(),
        community: r.community.clone(),
    }
}

#[derive(Serialize, ToSchema, Debug)]
pub struct CardBody {
    pub building: PropertyBody,
    pub landlords: Vec<LandlordView>,
    pub tenancies: Vec<TenancyBody>,
    pub residents: Vec<ResidentBody>,
    pub permits: Vec<PermitBody>,
    pub visits: Vec<VisitBody>,
}

/// A property's card: units → tenancies → residents → permits, and visits (audited).
#[utoipa::path(get, path = "/registry/buildings/{code}", tag = "registry", security(("bearer" = [])),
    params(("code" = String, Path, description = "building code"), ("X-Purpose" = String, Header, description = "why you read it")),
    responses((status = 200, description = "the card", body = CardBody), (status = 403, description = "forbidden or no purpose", body = ErrorBody),
              (status = 404, description = "no such building", body = ErrorBody)))]
pub async fn property_card(
    State(state): State<AppState>,
    session: UserSession,
    Path(code): Path<String>,
) -> Result<Json<CardBody>, ApiError> {
    let card = state.engine.property_card(&session.caller, &code).await?;
    Ok(Json(CardBody {
        building: building_body(&card.building, &card.units),
        landlords: card
            .landlords
            .iter()
            .map(|l| LandlordView {
                code: l.code.clone(),
                kind: l.kind.as_str().into(),
                name: l.name.clone(),
                phone: l.phone.clone(),
                safety_person: l.safety_person.clone(),
                safety_phone: l.safety_phone.clone(),
                pledge_signed: l.pledge_signed.map(format_date),
                pledge_expires: l.pledge_expires.map(format_date),
            })
            .collect(),
        tenancies: card.tenancies.iter().map(tenancy_body).collect(),
        residents: card.residents.iter().map(resident_body).collect(),
        permits: card.permits.iter().map(permit_body).collect(),
        visits: card
            .visits
            .iter()
            .map(|v| VisitBody {
                id: v.id,
                unit: v.unit.clone(),
                day: format_date(v.day),
                by: v.by.clone(),
                outcome: v.outcome.as_str().into(),
                occupants: v.occupants,
                note: v.note.clone(),
            })
            .collect(),
    }))
}

#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct LandlordBody {
    pub code: String,
    /// `person` or `organisation`.
    pub kind: String,
    pub name: String,
    pub phone: Option<String>,
    pub safety_person: Option<String>,
    pub safety_phone: Option<String>,
    pub pledge_signed: Option<String>,
    pub pledge_expires: Option<String>,
    /// The community (or grid) whose workstation keeps the file.
    pub community: String,
}

/// Registers (or replaces) a landlord and the safety pledge.
#[utoipa::path(post, path = "/registry/landlords", tag = "registry", security(("bearer" = [])), request_body = LandlordBody,
    responses((status = 204, description = "saved"), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 422, description = "invalid", body = ErrorBody)))]
pub async fn save_landlord(
    State(state): State<AppState>,
    session: UserSession,
    Json(body): Json<LandlordBody>,
) -> Result<StatusCode, ApiError> {
    let new = NewLandlord {
        code: body.code,
        kind: word("kind", &body.kind, LandlordKind::parse, LandlordKind::words())?,
        name: body.name,
        phone: body.phone,
        safety_person: body.safety_person,
        safety_phone: body.safety_phone,
        pledge_signed: optional_date("pledge_signed", &body.pledge_signed)?,
        pledge_expires: optional_date("pledge_expires", &body.pledge_expires)?,
        community: body.community,
    };
    state.engine.save_landlord(&session.caller, new).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- workstations -------------------------------------------------------------------------

#[derive(Serialize, Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct WorkstationBody {
    pub code: String,
    pub community: String,
    #[schema(example = "园东社区工作站")]
    pub name: String,
    #[serde(default)]
    pub address: String,
}

fn workstation_body(w: &Workstation) -> WorkstationBody {
    WorkstationBody {
        code: w.code.clone(),
        community: w.community.clone(),
        name: w.name.clone(),
        address: w.address.clone(),
    }
}

/// Community workstations (社区工作站) in your jurisdiction.
#[utoipa::path(get, path = "/registry/workstations", tag = "registry", security(("bearer" = [])),
    responses((status = 200, description = "workstations", body = [WorkstationBody]), (status = 403, description = "forbidden", body = ErrorBody)))]
pub async fn list_workstations(
    State(state): State<AppState>,
    session: UserSession,
) -> Result<Json<Vec<WorkstationBody>>, ApiError> {
    Ok(Json(state.engine.workstations(&session.caller).await?.iter().map(workstation_body).collect()))
}

/// Registers (or renames) a community workstation.
#[utoipa::path(post, path = "/registry/workstations", tag = "registry", security(("bearer" = [])), request_body = WorkstationBody,
    responses((status = 200, description = "saved", body = WorkstationBody), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 422, description = "invalid", body = ErrorBody)))]
pub async fn save_workstation(
    State(state): State<AppState>,
    session: UserSession,
    Json(body): Json<WorkstationBody>,
) -> Result<Json<WorkstationBody>, ApiError> {
    let w = Workstation { code: body.code, community: body.community, name: body.name, address: body.address };
    Ok(Json(workstation_body(&state.engine.save_workstation(&session.caller, w).await?)))
}

// ---- residents ----------------------------------------------------------------------------

#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct NewResidentBody {
    pub code: String,
    /// `resident_id` (default), `hk_macau_taiwan_residence_permit`, `chinese_passport`,
    /// `foreign_passport`, `hk_macau_travel_permit`, `taiwan_travel_permit`,
    /// `foreign_permanent_residence`.
    pub document: Option<String>,
    pub id_number: String,
    pub name: String,
    /// `M` or `F` (taken from a resident identity number when not given).
    pub sex: Option<String>,
    pub birth_date: Option<String>,
    pub phone: Option<String>,
    pub origin_province: Option<String>,
    pub origin_city: Option<String>,
    pub employer: Option<String>,
    /// The unit they live in (their community follows from it), or…
    pub unit: Option<String>,
    /// …the grid.
    pub grid: Option<String>,
}

/// Registers (or re-registers) a resident. Every refusal names its field.
#[utoipa::path(post, path = "/registry/residents", tag = "registry", security(("bearer" = [])), request_body = NewResidentBody,
    responses((status = 200, description = "registered", body = ResidentBody), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 409, description = "the identity number is registered to another resident", body = ErrorBody),
              (status = 422, description = "invalid (the field is named in details[0].at)", body = ErrorBody)))]
pub async fn register_resident(
    State(state): State<AppState>,
    session: UserSession,
    Json(body): Json<NewResidentBody>,
) -> Result<Json<ResidentBody>, ApiError> {
    let document = body
        .document
        .as_deref()
        .map(|d| word("document", d, DocumentKind::parse, DocumentKind::ALL.map(|k| k.as_str()).join(", ")))
        .transpose()?;
    let sex = body.sex.as_deref().map(|s| word("sex", s, Sex::parse, Sex::words())).transpose()?;
    let new = NewResident {
        code: body.code,
        document,
        id_number: body.id_number,
        name: body.name,
        sex,
        birth: optional_date("birth_date", &body.birth_date)?,
        phone: body.phone,
        origin_province: body.origin_province,
        origin_city: body.origin_city,
        employer: body.employer,
        unit: body.unit,
        grid: body.grid,
    };
    Ok(Json(resident_body(&state.engine.register_resident(&session.caller, new).await?)))
}

#[derive(Deserialize, IntoParams, Debug)]
pub struct ResidentSearch {
    /// Exactly one of `id_number`, `name`, `phone`.
    pub id_number: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    /// Narrows a name search to one community.
    pub community: Option<String>,
}

/// Finds residents by identity number (any case, 15 or 18 digits), exact name within your
/// jurisdiction, or phone. Audited with `X-Purpose`.
#[utoipa::path(get, path = "/registry/residents", tag = "registry", security(("bearer" = [])),
    params(ResidentSearch, ("X-Purpose" = String, Header, description = "why you read it")),
    responses((status = 200, description = "residents", body = [ResidentBody]), (status = 403, description = "forbidden or no purpose", body = ErrorBody),
              (status = 422, description = "no or several criteria", body = ErrorBody)))]
pub async fn search_residents(
    State(state): State<AppState>,
    session: UserSession,
    Query(query): Query<ResidentSearch>,
) -> Result<Json<Vec<ResidentBody>>, ApiError> {
    let query = match (query.id_number, query.name, query.phone) {
        (Some(number), None, None) => ResidentQuery::IdNumber(number),
        (None, Some(name), None) => ResidentQuery::Name { name, community: query.community },
        (None, None, Some(phone)) => ResidentQuery::Phone(phone),
        _ => return Err(ApiError::invalid_field("q", "give exactly one of id_number, name or phone")),
    };
    let found = state.engine.search_residents(&session.caller, &query).await?;
    Ok(Json(found.iter().map(resident_body).collect()))
}

#[derive(Serialize, ToSchema, Debug)]
pub struct ResidentCardBody {
    pub resident: ResidentBody,
    pub tenancies: Vec<TenancyBody>,
    pub permit: Option<PermitBody>,
}

/// A resident with their tenancies and permit (audited).
#[utoipa::path(get, path = "/registry/residents/{code}", tag = "registry", security(("bearer" = [])),
    params(("code" = String, Path, description = "resident code"), ("X-Purpose" = String, Header, description = "why you read it")),
    responses((status = 200, description = "the resident", body = ResidentCardBody), (status = 403, description = "forbidden or no purpose", body = ErrorBody),
              (status = 404, description = "no such resident", body = ErrorBody)))]
pub async fn resident_card(
    State(state): State<AppState>,
    session: UserSession,
    Path(code): Path<String>,
) -> Result<Json<ResidentCardBody>, ApiError> {
    let card = state.engine.resident_card(&session.caller, &code).await?;
    Ok(Json(ResidentCardBody {
        resident: resident_body(&card.resident),
        tenancies: card.tenancies.iter().map(tenancy_body).collect(),
        permit: card.permit.as_ref().map(permit_body),
    }))
}

#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct PermitRequest {
    /// `residence_permit` (default) or `temporary_permit`.
    pub kind: Option<String>,
    pub issued: String,
    pub expires: String,
    pub endorsed: Option<String>,
}

/// Records a resident's residence permit (replacing the previous one).
#[utoipa::path(post, path = "/registry/residents/{code}/permit", tag = "registry", security(("bearer" = [])),
    params(("code" = String, Path, description = "resident code")), request_body = PermitRequest,
    responses((status = 200, description = "the permit", body = PermitBody), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 422, description = "invalid dates or no such resident", body = ErrorBody)))]
pub async fn save_permit(
    State(state): State<AppState>,
    session: UserSession,
    Path(code): Path<String>,
    Json(body): Json<PermitRequest>,
) -> Result<Json<PermitBody>, ApiError> {
    let kind = match body.kind.as_deref() {
        Some(k) => word("kind", k, PermitKind::parse, PermitKind::words())?,
        None => PermitKind::ResidencePermit,
    };
    let issued = date("issued", &body.issued)?;
    let expires = date("expires", &body.expires)?;
    let endorsed = optional_date("endorsed", &body.endorsed)?;
    let permit = state.engine.save_permit(&session.caller, &code, kind, issued, expires, endorsed).await?;
    Ok(Json(permit_body(&permit)))
}

// ---- tenancies and visits -----------------------------------------------------------------

#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct MoveInBody {
    pub code: String,
    pub unit: String,
    pub landlord: Option<String>,
    pub lessee: String,
    #[serde(default)]
    pub co_residents: Vec<String>,
    pub move_in: String,
}

/// Registers a move-in (a tenancy with its lessee and co-residents).
#[utoipa::path(post, path = "/registry/tenancies", tag = "registry", security(("bearer" = [])), request_body = MoveInBody,
    responses((status = 200, description = "the tenancy", body = TenancyBody), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 409, description = "the code is taken", body = ErrorBody), (status = 422, description = "invalid", body = ErrorBody)))]
pub async fn move_in(
    State(state): State<AppState>,
    session: UserSession,
    Json(body): Json<MoveInBody>,
) -> Result<Json<TenancyBody>, ApiError> {
    let new = NewTenancy {
        code: body.code,
        unit: body.unit,
        landlord: body.landlord,
        lessee: body.lessee,
        co_residents: body.co_residents,
        move_in: date("move_in", &body.move_in)?,
    };
    Ok(Json(tenancy_body(&state.engine.move_in(&session.caller, new).await?)))
}

#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct MoveOutBody {
    pub move_out: String,
}

/// Registers a move-out: on or after the move-in, not in the future.
#[utoipa::path(post, path = "/registry/tenancies/{code}/move-out", tag = "registry", security(("bearer" = [])),
    params(("code" = String, Path, description = "tenancy code")), request_body = MoveOutBody,
    responses((status = 200, description = "the ended tenancy", body = TenancyBody), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 404, description = "no such tenancy", body = ErrorBody), (status = 422, description = "invalid date (details[0].at = move_out)", body = ErrorBody)))]
pub async fn move_out(
    State(state): State<AppState>,
    session: UserSession,
    Path(code): Path<String>,
    Json(body): Json<MoveOutBody>,
) -> Result<Json<TenancyBody>, ApiError> {
    let day = date("move_out", &body.move_out)?;
    Ok(Json(tenancy_body(&state.engine.move_out(&session.caller, &code, day).await?)))
}

#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct VisitRequest {
    pub unit: String,
    pub day: String,
    /// `verified`, `discrepancy`, `unregistered_occupants`, `nobody_home`.
    pub outcome: String,
    pub occupants: Option<u32>,
    #[serde(default)]
    pub note: String,
    /// Registered residents found living there without a tenancy saying so.
    #[serde(default)]
    pub found: Vec<String>,
}

/// Records a verification visit (核查走访) to a unit.
#[utoipa::path(post, path = "/registry/visits", tag = "registry", security(("bearer" = [])), request_body = VisitRequest,
    responses((status = 204, description = "recorded"), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 422, description = "invalid", body = ErrorBody)))]
pub async fn record_visit(
    State(state): State<AppState>,
    session: UserSession,
    Json(body): Json<VisitRequest>,
) -> Result<StatusCode, ApiError> {
    let new = NewVisit {
        unit: body.unit,
        day: date("day", &body.day)?,
        outcome: word("outcome", &body.outcome, VisitOutcome::parse, VisitOutcome::words())?,
        occupants: body.occupants,
        note: body.note,
        found: body.found,
    };
    state.engine.record_visit(&session.caller, new).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- alerts, changes, import, export -----------------------------------------------------

#[derive(Deserialize, IntoParams, Debug)]
pub struct AlertQuery {
    /// `permit_expiring`, `permit_expired`, `overcrowded`, `unregistered_resident`,
    /// `pledge_lapsed`; all when absent.
    pub kind: Option<String>,
    pub community: Option<String>,
}

#[derive(Serialize, ToSchema, Debug)]
pub struct AlertBody {
    pub kind: String,
    pub community: String,
    /// A resident, unit or landlord code.
    pub subject: String,
    pub due: Option<String>,
    pub detail: String,
}

/// What needs attention in your jurisdiction (records named by code, no personal data).
#[utoipa::path(get, path = "/registry/alerts", tag = "registry", security(("bearer" = [])), params(AlertQuery),
    responses((status = 200, description = "alerts", body = [AlertBody]), (status = 403, description = "forbidden", body = ErrorBody)))]
pub async fn alerts(
    State(state): State<AppState>,
    session: UserSession,
    Query(query): Query<AlertQuery>,
) -> Result<Json<Vec<AlertBody>>, ApiError> {
    let kind = query.kind.as_deref().map(|k| word("kind", k, AlertKind::parse, AlertKind::words())).transpose()?;
    let found = state.engine.registry_alerts(&session.caller, kind, query.community.as_deref()).await?;
    Ok(Json(
        found
            .iter()
            .map(|a| AlertBody {
                kind: a.kind.as_str().into(),
                community: a.community.clone(),
                subject: a.subject.clone(),
                due: a.due.map(format_date),
                detail: a.detail.clone(),
            })
            .collect(),
    ))
}

#[derive(Deserialize, IntoParams, Debug)]
pub struct ChangesQuery {
    /// The last sequence number you have (0 for the start).
    #[serde(default)]
    pub after: i64,
    pub limit: Option<u32>,
}

#[derive(Serialize, ToSchema, Debug)]
pub struct ChangeBody {
    pub seq: i64,
    pub at: String,
    pub entity: String,
    pub code: String,
    pub community: String,
    pub change: String,
    pub actor: String,
}

/// The registry's durable change stream after `after`: poll it to stay in step.
#[utoipa::path(get, path = "/registry/changes", tag = "registry", security(("bearer" = [])), params(ChangesQuery),
    responses((status = 200, description = "changes, oldest first", body = [ChangeBody]), (status = 403, description = "forbidden", body = ErrorBody)))]
pub async fn changes(
    State(state): State<AppState>,
    session: UserSession,
    Query(query): Query<ChangesQuery>,
) -> Result<Json<Vec<ChangeBody>>, ApiError> {
    let found = state.engine.registry_changes(&session.caller, query.after, query.limit.unwrap_or(500)).await?;
    Ok(Json(
        found
            .into_iter()
            .map(|c| ChangeBody {
                seq: c.seq,
                at: crate::api::rfc3339(c.at),
                entity: c.entity,
                code: c.code,
                community: c.community,
                change: c.change,
                actor: c.actor,
            })
            .collect(),
    ))
}

#[derive(Serialize, ToSchema, Debug)]
pub struct ImportResultBody {
    pub rows: u64,
    pub records: u64,
    pub ignored_columns: Vec<String>,
}

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// Imports a CSV (`text/csv`) or XLSX file of `residents`, `tenancies` or `properties`, all
/// or nothing; a refusal (`import_refused`) lists each bad row in `details`.
#[utoipa::path(post, path = "/registry/import/{kind}", operation_id = "import_registry", tag = "registry", security(("bearer" = [])),
    params(("kind" = String, Path, description = "residents, tenancies or properties")),
    request_body(content = String, content_type = "text/csv", description = "the file (or XLSX)"),
    responses((status = 200, description = "imported", body = ImportResultBody), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 413, description = "larger than 64 MiB", body = ErrorBody), (status = 415, description = "not CSV or XLSX", body = ErrorBody),
              (status = 422, description = "refused; nothing was stored", body = ErrorBody)))]
pub async fn import(
    State(state): State<AppState>,
    session: UserSession,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ImportResultBody>, ApiError> {
    let kind = ImportKind::parse(&kind).ok_or_else(|| {
        ApiError::not_found("unknown_import", format!("{kind}: import residents, tenancies or properties"))
    })?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("text/csv");
    let format = if content_type.starts_with(XLSX) {
        ImportFormat::Xlsx
    } else if content_type.starts_with("text/csv") || content_type.starts_with("text/plain") {
        ImportFormat::Csv
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send text/csv or XLSX",
        ));
    };
    let size = body.len() as u64;
    let source = Box::new(std::io::Cursor::new(body));
    let report =
        state.engine.import_registry(&session.caller, kind, format, source, Some(size), Box::new(|_| {})).await?;
    Ok(Json(ImportResultBody { rows: report.rows, records: report.records, ignored_columns: report.ignored_columns }))
}

#[derive(Deserialize, IntoParams, Debug)]
pub struct ExportQuery {
    /// `csv` (default) or `xlsx`.
    pub format: Option<String>,
    pub community: Option<String>,
}

/// Exports the residents of your jurisdiction (or one community) as you may see them
/// (audited with `X-Purpose`).
#[utoipa::path(get, path = "/registry/export/residents", tag = "registry", security(("bearer" = [])),
    params(ExportQuery, ("X-Purpose" = String, Header, description = "why you export")),
    responses((status = 200, description = "the file", content_type = "text/csv"), (status = 403, description = "forbidden or no purpose", body = ErrorBody)))]
pub async fn export_residents(
    State(state): State<AppState>,
    session: UserSession,
    Query(query): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let format = match query.format.as_deref() {
        None | Some("csv") => ExportFormat::Csv,
        Some("xlsx") => ExportFormat::Xlsx,
        Some(other) => return Err(ApiError::invalid_field("format", format!("{other:?}: use csv or xlsx"))),
    };
    // The export runs as its own task and sends the file a page at a time; the response
    // starts with its first chunk, so a refusal (role, jurisdiction, purpose, a busy pool)
    // is still an error status, and a failure later cuts the body short (the client sees an
    // incomplete transfer, never a file that looks whole). When the client goes away the
    // body, and with it the channel, is dropped and the export stops.
    let (out, mut chunks) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let engine = state.engine.clone();
    let caller = session.caller.clone();
    let community = query.community.clone();
    let export = tokio::spawn(async move { engine.export_residents(&caller, community.as_deref(), format, out).await });
    let first = match chunks.recv().await {
        Some(chunk) => chunk,
        // The export ended without a byte: it was refused (or failed).
        None => {
            return match export.await {
                Ok(Err(error)) => Err(error.into()),
                Ok(Ok(_)) => Err(ApiError::internal(&std::io::Error::other("the export ended without a file"))),
                Err(error) => Err(ApiError::internal(&error)),
            };
        }
    };
    let rest = futures_util::stream::unfold((chunks, Some(export)), |(mut chunks, export)| async move {
        if let Some(chunk) = chunks.recv().await {
            return Some((Ok(Bytes::from(chunk)), (chunks, export)));
        }
        // The channel is closed: the export has ended; a failure cuts the body short.
        match export?.await {
            Ok(Ok(_)) => None,
            Ok(Err(error)) => {
                tracing::warn!(%error, "the export stopped part way");
                Some((Err(std::io::Error::other(error.to_string())), (chunks, None)))
            }
            Err(error) => Some((Err(std::io::Error::other(error.to_string())), (chunks, None))),
        }
    });
    let body = axum::body::Body::from_stream(
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(first)) }).chain(rest),
    );
    let (content_type, name) = match format {
        ExportFormat::Csv => ("text/csv; charset=utf-8", "residents.csv"),
        ExportFormat::Xlsx => (XLSX, "residents.xlsx"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename={name}")),
        ],
        body,
    )
        .into_response())
}
