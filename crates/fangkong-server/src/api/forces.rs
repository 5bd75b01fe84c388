//! The force registry: beats (巡区), units, the roster, coverage, and members (personal data).

use axum::extract::State;
use axum::http::StatusCode;
use fangkong_core::forces::{Beat, ForceCategory, Member, PatrolMode, Shift, Unit};
use fangkong_engine::{NewBeat, NewMember};
use fangkong_geo::{Area, Crs};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::{parse_rfc3339, rfc3339};
use crate::auth::UserSession;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Query};

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", format!("{field}: {}", message.into()))
}

// ---- beats --------------------------------------------------------------------------------

#[derive(Serialize, ToSchema, Debug)]
pub struct BeatBody {
    #[schema(example = "FT-YL-01")]
    pub code: String,
    /// The police station it belongs to.
    pub station: String,
    #[schema(example = "园岭一巡区")]
    pub name: String,
    pub area_km2: f64,
    /// GeoJSON geometry (WGS84).
    #[schema(value_type = Object)]
    pub geometry: Value,
}

fn geometry(area: &Area) -> Value {
    let polygons = area.to_rings();
    match polygons.len() {
        1 => serde_json::json!({"type": "Polygon", "coordinates": polygons[0]}),
        _ => serde_json::json!({"type": "MultiPolygon", "coordinates": polygons}),
    }
}

impl From<&Beat> for BeatBody {
    fn from(beat: &Beat) -> BeatBody {
        BeatBody {
            code: beat.code.clone(),
            station: beat.station.clone(),
            name: beat.name.clone(),
            area_km2: (beat.shape.area_m2() / 10_000.0).round() / 100.0,
            geometry: geometry(&beat.shape),
        }
    }
}

#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct NewBeatBody {
    pub code: String,
    pub station: String,
    pub name: String,
    /// A GeoJSON Polygon or MultiPolygon (RFC 7946 winding), or…
    #[schema(value_type = Option<Object>)]
    pub geometry: Option<Value>,
    /// …the grids it is made of (their union).
    #[serde(default)]
    pub grids: Vec<String>,
    /// The datum of `geometry`: `wgs84` (default) or `gcj02`.
    pub crs: Option<String>,
}

fn area_from_geometry(value: &Value, crs: Crs) -> Result<Area, ApiError> {
    let feature = serde_json::json!({"type": "Feature", "properties": {"code": "beat"}, "geometry": value});
    let bytes = serde_json::to_vec(&feature).map_err(|e| invalid("geometry", e.to_string()))?;
    let features = fangkong_engine::boundaries::parse_geojson(&bytes, crs).map_err(|faults| {
        invalid("geometry", faults.iter().map(|f| f.reason.clone()).collect::<Vec<_>>().join("; "))
    })?;
    Ok(features.into_iter().next().map(|f| f.shape).expect("one feature parsed"))
}

/// Beats under the police stations in your jurisdiction.
#[utoipa::path(get, path = "/beats", tag = "forces", security(("bearer" = [])),
    responses((status = 200, description = "beats", body = [BeatBody]), (status = 403, description = "forbidden", body = ErrorBody)))]
pub async fn list_beats(State(state): State<AppState>, session: UserSession) -> Result<Json<Vec<BeatBody>>, ApiError> {
    Ok(Json(state.engine.beats(&session.caller).await?.iter().map(BeatBody::from).collect()))
}

/// Adds or replaces a beat, drawn (`geometry`) or made of grids (`grids`).
#[utoipa::path(post, path = "/beats", tag = "forces", security(("bearer" = [])), request_body = NewBeatBody,
    responses((status = 200, description = "the beat", body = BeatBody), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 404, description = "no such station or grid", body = ErrorBody), (status = 422, description = "invalid", body = ErrorBody)))]
pub async fn save_beat(
    State(state): State<AppState>,
    session: UserSession,
    Json(body): Json<NewBeatBody>,
) -> Result<Json<BeatBody>, ApiError> {
    let crs = match body.crs.as_deref() {
        None => Crs::Wgs84,
        Some(text) => Crs::parse(text).ok_or_else(|| invalid("crs", "use wgs84 or gcj02"))?,
    };
    let shape = body.geometry.as_ref().map(|g| area_from_geometry(g, crs)).transpose()?;
    let new = NewBeat { code: body.code, station: body.station, name: body.name, shape, grids: body.grids };
    Ok(Json(BeatBody::from(&state.engine.save_beat(&session.caller, new).await?)))
}

// ---- units --------------------------------------------------------------------------------

#[derive(Serialize, Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct UnitBody {
    #[schema(example = "FT-YL-P03")]
    pub code: String,
    #[schema(example = "园岭巡03")]
    pub call_sign: String,
    pub station: String,
    /// `police`, `security_guard`, `internal_guard` or `volunteer`.
    pub category: String,
    /// `foot`, `vehicle`, `bicycle`, `plain_clothes`, `fixed_post` or `checkpoint`.
    pub mode: String,
    #[serde(default)]
    pub equipment: Vec<String>,
    pub beat: Option<String>,
    /// What it is trained and equipped for beyond patrol (`traffic`, `fire`, `medical`…);
    /// dispatch prefers such units for the incident types configured to need them.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Its trackers (devices registered with the unit's code); read only.
    #[serde(default, skip_deserializing)]
    pub devices: Vec<String>,
}

impl From<&Unit> for UnitBody {
    fn from(unit: &Unit) -> UnitBody {
        UnitBody {
            code: unit.code.clone(),
            call_sign: unit.call_sign.clone(),
            station: unit.station.clone(),
            category: unit.category.as_str().into(),
            mode: unit.mode.as_str().into(),
            equipment: unit.equipment.clone(),
            beat: unit.beat.clone(),
            capabilities: unit.capabilities.clone(),
            devices: Vec::new(),
        }
    }
}

fn unit_body(state: &AppState, unit: &Unit) -> UnitBody {
    UnitBody { devices: state.engine.unit_devices(&unit.code), ..UnitBody::from(unit) }
}

/// Units at the police stations in your jurisdiction.
#[utoipa::path(get, path = "/units", tag = "forces", security(("bearer" = [])),
    responses((status = 200, description = "units", body = [UnitBody]), (status = 403, description = "forbidden", body = ErrorBody)))]
pub async fn list_units(State(state): State<AppState>, session: UserSession) -> Result<Json<Vec<UnitBody>>, ApiError> {
    Ok(Json(state.engine.units(&session.caller).await?.iter().map(|u| unit_body(&state, u)).collect()))
}

#[derive(Serialize, ToSchema, Debug)]
pub struct OnDutyBody {
    pub unit: UnitBody,
    pub shift: ShiftBody,
    /// The latest positions of its trackers that you may see.
    pub positions: Vec<crate::api::positions::LivePositionBody>,
}

#[derive(Deserialize, IntoParams, Debug)]
#[into_params(parameter_in = Query)]
pub struct AtQuery {
    /// The instant (RFC 3339); default: now.
    pub at: Option<String>,
}

/// The units on duty (on a shift of the roster) at an instant, with their shift and where
/// their trackers are.
#[utoipa::path(get, path = "/units/on-duty", tag = "forces", security(("bearer" = [])), params(AtQuery),
    responses((status = 200, description = "units on duty", body = [OnDutyBody]), (status = 403, description = "forbidden", body = ErrorBody)))]
pub async fn on_duty(
    State(state): State<AppState>,
    session: UserSession,
    Query(query): Query<AtQuery>,
) -> Result<Json<Vec<OnDutyBody>>, ApiError> {
    let at = match &query.at {
        Some(text) => parse_rfc3339("at", text)?,
        None => state.engine.now(),
    };
    let on_duty = state.engine.on_duty(&session.caller, at).await?;
    Ok(Json(
        on_duty
            .iter()
            .map(|d| OnDutyBody {
                unit: unit_body(&state, &d.unit),
                shift: ShiftBody {
                    id: None,
                    unit: d.shift.unit.clone(),
                    beat: d.shift.beat.clone(),
                    starts_at: rfc3339(d.shift.starts_at),
                    ends_at: rfc3339(d.shift.ends_at),
                },
                positions: d.positions.iter().map(crate::api::positions::LivePositionBody::from).collect(),
            })
            .collect(),
    ))
}

/// Adds or replaces a unit.
#[utoipa::path(post, path = "/units", tag = "forces", security(("bearer" = [])), request_body = UnitBody,
    responses((status = 200, description = "the unit", body = UnitBody), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 404, description = "no such station or beat", body = ErrorBody), (status = 422, description = "invalid", body = ErrorBody)))]
pub async fn save_unit(
    State(state): State<AppState>,
    session: UserSession,
    Json(body): Json<UnitBody>,
) -> Result<Json<UnitBody>, ApiError> {
    let unit = Unit {
        category: ForceCategory::parse(&body.category)
            .ok_or_else(|| invalid("category", "police, security_guard, internal_guard or volunteer"))?,
        mode: PatrolMode::parse(&body.mode)
            .ok_or_else(|| invalid("mode", "foot, vehicle, bicycle, plain_clothes, fixed_post or checkpoint"))?,
        code: body.code,
        call_sign: body.call_sign,
        station: body.station,
        equipment: body.equipment,
        beat: body.beat,
        capabilities: body.capabilities,
    };
    Ok(Json(unit_body(&state, &state.engine.save_unit(&session.caller, unit).await?)))
}

// ---- the roster ---------------------------------------------------------------------------

#[derive(Serialize, Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct ShiftBody {
    /// Assigned by the server.
    #[serde(default, skip_deserializing)]
    pub id: Option<i64>,
    pub unit: String,
    pub beat: String,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339 (exclusive).
    pub ends_at: String,
}

#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct NewShiftsBody {
    pub shifts: Vec<ShiftBody>,
}

#[derive(Deserialize, IntoParams, Debug)]
#[into_params(parameter_in = Query)]
pub struct WindowQuery {
    /// Start (RFC 3339); default: now.
    pub from: Option<String>,
    /// End (RFC 3339); default: 24 hours after `from`.
    pub to: Option<String>,
}

fn window(
    state: &AppState,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(fangkong_core::time::Timestamp, fangkong_core::time::Timestamp), ApiError> {
    let from = match from {
        Some(text) => parse_rfc3339("from", text)?,
        None => state.engine.now(),
    };
    let to = match to {
        Some(text) => parse_rfc3339("to", text)?,
        None => from.plus_seconds(86_400),
    };
    if to <= from || to.millis_since(from) > 31 * 86_400_000 {
        return Err(ApiError::bad_request("invalid_query", "to must be after from, at most 31 days later"));
    }
    Ok((from, to))
}

/// The shifts running in a window, of the units in your jurisdiction.
#[utoipa::path(get, path = "/roster", tag = "forces", security(("bearer" = [])), params(WindowQuery),
    responses((status = 200, description = "shifts", body = [ShiftBody]), (status = 403, description = "forbidden", body = ErrorBody)))]
pub async fn roster(
    State(state): State<AppState>,
    session: UserSession,
    Query(query): Query<WindowQuery>,
) -> Result<Json<Vec<ShiftBody>>, ApiError> {
    let (from, to) = window(&state, query.from.as_deref(), query.to.as_deref())?;
    let shifts = state.engine.roster(&session.caller, from, to).await?;
    Ok(Json(
        shifts
            .into_iter()
            .map(|(id, s)| ShiftBody {
                id: Some(id),
                unit: s.unit,
                beat: s.beat,
                starts_at: rfc3339(s.starts_at),
                ends_at: rfc3339(s.ends_at),
            })
            .collect(),
    ))
}

#[derive(Serialize, ToSchema, Debug)]
pub struct CreatedShifts {
    pub ids: Vec<i64>,
}

/// Adds shifts to the roster, all or none (a shift lasts at most 24 h and never overlaps
/// another of its unit).
#[utoipa::path(post, path = "/roster", tag = "forces", security(("bearer" = [])), request_body = NewShiftsBody,
    responses((status = 201, description = "added", body = CreatedShifts), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 404, description = "no such unit or beat", body = ErrorBody), (status = 422, description = "invalid or overlapping", body = ErrorBody)))]
pub async fn add_shifts(
    State(state): State<AppState>,
    session: UserSession,
    Json(body): Json<NewShiftsBody>,
) -> Result<(StatusCode, Json<CreatedShifts>), ApiError> {
    let shifts = body
        .shifts
        .into_iter()
        .map(|s| {
            Ok(Shift {
                starts_at: parse_rfc3339("starts_at", &s.starts_at)?,
                ends_at: parse_rfc3339("ends_at", &s.ends_at)?,
                unit: s.unit,
                beat: s.beat,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let ids = state.engine.add_shifts(&session.caller, shifts).await?;
    Ok((StatusCode::CREATED, Json(CreatedShifts { ids })))
}

// ---- coverage -----------------------------------------------------------------------------

#[derive(Deserialize, IntoParams, Debug)]
#[into_params(parameter_in = Query)]
pub struct CoverageQuery {
    /// The jurisdiction whose beats are reported.
    #[param(example = "440304")]
    pub within: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(Serialize, ToSchema, Debug)]
pub struct HourBody {
    pub hour: String,
    /// Minutes with an on-duty unit inside the beat.
    pub covered_minutes: u32,
    /// Minutes the roster had a unit on the beat.
    pub rostered_minutes: u32,
}

#[derive(Serialize, ToSchema, Debug)]
pub struct BeatCoverageBody {
    pub beat: String,
    pub station: String,
    pub covered_minutes: u32,
    pub rostered_minutes: u32,
    /// Hours nobody on duty was inside the beat.
    pub blank_hours: Vec<String>,
    pub hours: Vec<HourBody>,
}

#[derive(Serialize, ToSchema, Debug)]
pub struct CoverageBody {
    pub within: String,
    pub from: String,
    pub to: String,
    /// Beats nobody on duty entered in the whole window.
    pub blank_beats: Vec<String>,
    pub beats: Vec<BeatCoverageBody>,
}

/// Coverage of the beats in a jurisdiction, hour by hour: the minutes an on-duty unit was
/// inside each beat against the minutes the roster planned; blank beats and blank hours.
#[utoipa::path(get, path = "/coverage", tag = "forces", security(("bearer" = [])), params(CoverageQuery),
    responses((status = 200, description = "the report", body = CoverageBody), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 404, description = "no such jurisdiction", body = ErrorBody)))]
pub async fn coverage(
    State(state): State<AppState>,
    session: UserSession,
    Query(query): Query<CoverageQuery>,
) -> Result<Json<CoverageBody>, ApiError> {
    let (from, to) = match (&query.from, &query.to) {
        (None, None) => {
            let to = state.engine.now();
            (to.plus_seconds(-86_400), to)
        }
        _ => window(&state, query.from.as_deref(), query.to.as_deref())?,
    };
    let report = state.engine.coverage_report(&session.caller, &query.within, from, to).await?;
    let beats: Vec<BeatCoverageBody> = report
        .into_iter()
        .map(|beat| BeatCoverageBody {
            covered_minutes: beat.hours.iter().map(|(_, h)| h.covered_minutes).sum(),
            rostered_minutes: beat.hours.iter().map(|(_, h)| h.rostered_minutes).sum(),
            blank_hours: beat
                .hours
                .iter()
                .filter(|(_, h)| h.covered_minutes == 0)
                .map(|(at, _)| rfc3339(*at))
                .collect(),
            hours: beat
                .hours
                .iter()
                .map(|(at, h)| HourBody {
                    hour: rfc3339(*at),
                    covered_minutes: h.covered_minutes,
                    rostered_minutes: h.rostered_minutes,
                })
                .collect(),
            beat: beat.beat,
            station: beat.station,
        })
        .collect();
    Ok(Json(CoverageBody {
        within: query.within,
        from: rfc3339(from),
        to: rfc3339(to),
        blank_beats: beats.iter().filter(|b| b.covered_minutes == 0).map(|b| b.beat.clone()).collect(),
        beats,
    }))
}

// ---- members ------------------------------------------------------------------------------

#[derive(Serialize, ToSchema, Debug)]
pub struct MemberBody {
    pub id: i64,
    pub category: &'static str,
    pub station: String,
    pub unit: Option<String>,
    pub name: String,
    pub id_number: String,
    pub phone: Option<String>,
    pub active: bool,
}

impl From<&Member> for MemberBody {
    fn from(m: &Member) -> MemberBody {
        MemberBody {
            id: m.id,
            category: m.category.as_str(),
            station: m.station.clone(),
            unit: m.unit.clone(),
            name: m.name.clone(),
            id_number: m.id_number.clone(),
            phone: m.phone.clone(),
            active: m.active,
        }
    }
}

#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct NewMemberBody {
    pub category: String,
    pub station: String,
    pub unit: Option<String>,
    pub name: String,
    /// 18-character PRC identity number.
    pub id_number: String,
    pub phone: Option<String>,
}

#[derive(Deserialize, IntoParams, Debug)]
#[into_params(parameter_in = Query)]
pub struct MembersQuery {
    /// Only this police station's members.
    pub station: Option<String>,
}

/// Members of the force at the stations in your jurisdiction (personal data: send
/// `X-Purpose`; the read is audited).
#[utoipa::path(get, path = "/members", tag = "forces", security(("bearer" = [])), params(MembersQuery),
    responses((status = 200, description = "members", body = [MemberBody]), (status = 400, description = "no purpose stated", body = ErrorBody),
              (status = 403, description = "forbidden", body = ErrorBody)))]
pub async fn list_members(
    State(state): State<AppState>,
    session: UserSession,
    Query(query): Query<MembersQuery>,
) -> Result<Json<Vec<MemberBody>>, ApiError> {
    let members = state.engine.members(&session.caller, query.station.as_deref()).await?;
    Ok(Json(members.iter().map(MemberBody::from).collect()))
}

/// Registers a member (name, identity number and phone are encrypted at rest).
#[utoipa::path(post, path = "/members", tag = "forces", security(("bearer" = [])), request_body = NewMemberBody,
    responses((status = 201, description = "registered", body = MemberBody), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 409, description = "this identity number is registered", body = ErrorBody), (status = 422, description = "invalid", body = ErrorBody)))]
pub async fn add_member(
    State(state): State<AppState>,
    session: UserSession,
    Json(body): Json<NewMemberBody>,
) -> Result<(StatusCode, Json<MemberBody>), ApiError> {
    let new = NewMember {
        category: ForceCategory::parse(&body.category)
            .ok_or_else(|| invalid("category", "police, security_guard, internal_guard or volunteer"))?,
        station: body.station,
        unit: body.unit,
        name: body.name,
        id_number: body.id_number,
        phone: body.phone,
    };
    let member = state.engine.add_member(&session.caller, new).await?;
    Ok((StatusCode::CREATED, Json(MemberBody::from(&member))))
}

#[derive(Deserialize, IntoParams, Debug)]
#[into_params(parameter_in = Query)]
pub struct HotspotQuery {
    /// A jurisdiction node in yours.
    pub within: String,
    /// Start (RFC 3339); default 24 hours before `to`.
    pub from: Option<String>,
    /// End (RFC 3339, exclusive); default now. At most 31 days after `from`.
    pub to: Option<String>,
    /// How many cells (default 20, at most 500).
    pub top: Option<usize>,
}

#[derive(Serialize, ToSchema, Debug)]
pub struct HotspotBody {
    /// The H3 cell (hex) at the server's resolution.
    pub h3: String,
    /// Its centre (WGS84).
    pub lat: f64,
    pub lon: f64,
    /// Incidents created there in the period.
    pub incidents: u64,
    /// Minutes units' trackers spent inside it in the period.
    pub patrol_minutes: f64,
}

/// Hotspots and the patrol time spent in them: the cells with the most incidents in the
/// period inside `within`, each with the minutes units spent there.
#[utoipa::path(get, path = "/coverage/hotspots", tag = "forces", security(("bearer" = [])), params(HotspotQuery),
    responses((status = 200, description = "hotspot cells, busiest first", body = [HotspotBody]),
              (status = 403, description = "forbidden", body = ErrorBody), (status = 404, description = "no such jurisdiction", body = ErrorBody),
              (status = 422, description = "invalid period", body = ErrorBody)))]
pub async fn hotspots(
    State(state): State<AppState>,
    session: UserSession,
    Query(query): Query<HotspotQuery>,
) -> Result<Json<Vec<HotspotBody>>, ApiError> {
    let to = query.to.as_deref().map(|t| parse_rfc3339("to", t)).transpose()?.unwrap_or_else(|| state.engine.now());
    let from = query.from.as_deref().map(|t| parse_rfc3339("from", t)).transpose()?.unwrap_or(to.plus_seconds(-86_400));
    let cells =
        state.engine.hotspot_coverage(&session.caller, &query.within, from, to, query.top.unwrap_or(20)).await?;
    Ok(Json(
        cells
            .iter()
            .map(|c| {
                let (lat, lon) = fangkong_geo::h3_centre(c.cell).unwrap_or((0.0, 0.0));
                HotspotBody {
                    h3: format!("{:x}", c.cell),
                    lat,
                    lon,
                    incidents: c.incidents,
                    patrol_minutes: (c.patrol_minutes * 10.0).round() / 10.0,
                }
            })
            .collect(),
    ))
}

#[derive(Deserialize, IntoParams, Debug)]
#[into_params(parameter_in = Path)]
pub struct IdPath {
    pub id: i64,
}

/// Removes a shift from the roster.
#[utoipa::path(delete, path = "/roster/{id}", tag = "forces", security(("bearer" = [])), params(IdPath),
    responses((status = 204, description = "removed"), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 404, description = "no such shift", body = ErrorBody)))]
pub async fn delete_shift(
    State(state): State<AppState>,
    session: UserSession,
    crate::extract::Path(path): crate::extract::Path<IdPath>,
) -> Result<StatusCode, ApiError> {
    state.engine.delete_shift(&session.caller, path.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct MemberChangeBody {
    /// `false` when a member leaves the force (the record stays), `true` when they return.
    pub active: bool,
}

/// Marks a member as serving or not.
#[utoipa::path(patch, path = "/members/{id}", tag = "forces", security(("bearer" = [])), params(IdPath), request_body = MemberChangeBody,
    responses((status = 204, description = "changed"), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 404, description = "no such member", body = ErrorBody)))]
pub async fn update_member(
    State(state): State<AppState>,
    session: UserSession,
    crate::extract::Path(path): crate::extract::Path<IdPath>,
    Json(body): Json<MemberChangeBody>,
) -> Result<StatusCode, ApiError> {
    state.engine.set_member_active(&session.caller, path.id, body.active).await?;
    Ok(StatusCode::NO_CONTENT)
}
