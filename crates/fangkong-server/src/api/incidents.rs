//! Command and dispatch (the 110 centre): incidents, recommendations, sending units, unit
//! statuses, the lifecycle, duplicates, prior history, callers (personal data), response
//! measures, area classes and the EIDO export.

use axum::extract::State;
use axum::http::header::HeaderName;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use fangkong_core::dispatch::{
    AreaClass, Assignment, GroupMeasures, Incident, IncidentAction, TimelineEntry, UnitState, UnitStatus,
};
use fangkong_core::jurisdiction::{Chain, JurisdictionKind};
use fangkong_engine::{NewIncident, Recommended, UnitOnBoard};
use fangkong_geo::{Crs, LatLon};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::{parse_rfc3339, rfc3339};
use crate::auth::UserSession;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path, Query};

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", format!("{field}: {}", message.into()))
}

// ---- wire types ---------------------------------------------------------------------------

/// Where a record lies in both hierarchies, by node code (the jurisdiction lookup's
/// `ChainBody` names each node too).
#[derive(Serialize, ToSchema, Debug, Default)]
pub struct ChainCodesBody {
    pub district: Option<String>,
    pub subdistrict: Option<String>,
    pub community: Option<String>,
    pub grid: Option<String>,
    pub police_station: Option<String>,
    pub police_district: Option<String>,
}

impl From<&Chain> for ChainCodesBody {
    fn from(chain: &Chain) -> ChainCodesBody {
        use JurisdictionKind::*;
        let at = |kind| chain.get(kind).map(str::to_string);
        ChainCodesBody {
            district: at(District),
            subdistrict: at(Subdistrict),
            community: at(Community),
            grid: at(Grid),
            police_station: at(PoliceStation),
            police_district: at(PoliceDistrict),
        }
    }
}

#[derive(Serialize, ToSchema, Debug)]
pub struct AssignmentBody {
    pub unit: String,
    /// Where this sending stands: `dispatched`, `en_route`, `on_scene`, or once cleared
    /// `returning`/`available`.
    pub status: &'static str,
    pub dispatched_at: String,
    pub en_route_at: Option<String>,
    pub on_scene_at: Option<String>,
    pub cleared_at: Option<String>,
}

impl From<&Assignment> for AssignmentBody {
    fn from(a: &Assignment) -> AssignmentBody {
        AssignmentBody {
            unit: a.unit.clone(),
            status: a.status.as_str(),
            dispatched_at: rfc3339(a.dispatched_at),
            en_route_at: a.en_route_at.map(rfc3339),
            on_scene_at: a.on_scene_at.map(rfc3339),
            cleared_at: a.cleared_at.map(rfc3339),
        }
    }
}

/// Response times in seconds (absent until the step happened).
#[derive(Serialize, ToSchema, Debug)]
pub struct ResponseTimesBody {
    pub call_to_dispatch_s: Option<f64>,
    pub dispatch_to_arrival_s: Option<f64>,
    pub call_to_arrival_s: Option<f64>,
    /// The arrival target of the place when the call came (300 s urban, 600 s suburban).
    pub arrival_target_s: i64,
    /// Whether the first unit arrived within the target.
    pub within_target: Option<bool>,
}

#[derive(Serialize, ToSchema, Debug)]
pub struct IncidentBody {
    pub id: i64,
    /// A globally unique reference for exchange with other centres.
    pub uid: String,
    /// Code table `incident_source`: `110`, `119`, `122`, `alarm_point`, `app_sos`…
    #[schema(example = "110")]
    pub source: String,
    /// Code table `incident_type` (AABBCC).
    #[schema(example = "010301")]
    pub type_code: String,
    /// 1 (most urgent) to 4.
    pub priority: u8,
    /// `new`, `dispatched`, `en_route`, `on_scene`, `resolved`, `closed` or `cancelled`.
    pub status: &'static str,
    /// Code table `disposition`, once closed.
    pub disposition: Option<String>,
    /// WGS84 (or GCJ-02 with `crs=gcj02`).
    pub lat: f64,
    pub lon: f64,
    pub address: String,
    pub jurisdiction: ChainCodesBody,
    /// H3 cell (hex) at the server's resolution.
    pub h3: Option<String>,
    pub description: String,
    /// The caller's phone with all but the last four digits hidden; the full details are
    /// at `/incidents/{id}/caller` (personal data).
    pub caller_phone_masked: Option<String>,
    /// Open incidents this one may repeat: merge it into one of them, or keep it.
    pub possible_duplicates: Vec<i64>,
    pub merged_into: Option<i64>,
    /// `urban` or `suburban`.
    pub area_class: &'static str,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    /// Increases with every change: ignore a copy with a lower revision than one you hold.
    pub revision: i64,
    pub dispatched_at: Option<String>,
    pub arrived_at: Option<String>,
    pub resolved_at: Option<String>,
    pub closed_at: Option<String>,
    pub units: Vec<AssignmentBody>,
    pub response: ResponseTimesBody,
}

impl IncidentBody {
    pub fn new(incident: &Incident, crs: Crs) -> IncidentBody {
        let [lon, lat] = crs.from_wgs84([incident.point.lon(), incident.point.lat()]);
        let times = incident.measures();
        IncidentBody {
            id: incident.id,
            uid: incident.uid.clone(),
            source: incident.source.clone(),
            type_code: incident.type_code.clone(),
            priority: incident.priority,
            status: incident.status.as_str(),
            disposition: incident.disposition.clone(),
            lat,
            lon,
            address: incident.address.clone(),
            jurisdiction: ChainCodesBody::from(&incident.chain),
            h3: incident.h3.map(|h| format!("{h:x}")),
            description: incident.description.clone(),
            caller_phone_masked: incident.caller_phone_masked.clone(),
            possible_duplicates: incident.possible_duplicates.clone(),
            merged_into: incident.merged_into,
            area_class: incident.area_class.as_str(),
            created_by: incident.created_by.clone(),
            created_at: rfc3339(incident.created_at),
            updated_at: rfc3339(incident.updated_at),
            revision: incident.revision,
            dispatched_at: incident.dispatched_at.map(rfc3339),
            arrived_at: incident.arrived_at.map(rfc3339),
            resolved_at: incident.resolved_at.map(rfc3339),
            closed_at: incident.closed_at.map(rfc3339),
            units: incident.assignments.iter().map(AssignmentBody::from).collect(),
            response: ResponseTimesBody {
                call_to_dispatch_s: times.call_to_dispatch_s,
                dispatch_to_arrival_s: times.dispatch_to_arrival_s,
                call_to_arrival_s: times.call_to_arrival_s,
                arrival_target_s: incident.arrival_target_s,
                within_target: times.within_target,
            },
        }
    }
}

impl From<&Incident> for IncidentBody {
    fn from(incident: &Incident) -> IncidentBody {
        IncidentBody::new(incident, Crs::Wgs84)
    }
}

#[derive(Deserialize, IntoParams, Debug)]
#[into_params(parameter_in = Query)]
pub struct CrsQuery {
    /// The datum of coordinates in and out: `wgs84` (default) or `gcj02`.
    pub crs: Option<String>,
}

fn crs_of(text: Option<&str>) -> Result<Crs, ApiError> {
    match text {
        None => Ok(Crs::Wgs84),
        Some(text) => Crs::parse(text).ok_or_else(|| ApiError::bad_request("invalid_query", "crs: use wgs84 or gcj02")),
    }
}

#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct NewIncidentBody {
    /// Code table `incident_source`.
    #[schema(example = "110")]
    pub source: String,
    /// Code table `incident_type`.
    #[schema(example = "010301")]
    pub type_code: String,
    /// Default: the type's priority.
    pub priority: Option<u8>,
    /// Where (WGS84 unless `crs` says `gcj02`).
    #[schema(example = 22.5431)]
    pub lat: f64,
    #[schema(example = 114.0579)]
    pub lon: f64,
    pub crs: Option<String>,
    #[serde(default)]
    #[schema(example = "福田区红荔路与华富路交叉口")]
    pub address: String,
    #[serde(default)]
    pub description: String,
    pub caller_name: Option<String>,
    #[schema(example = "13812345678")]
    pub caller_phone: Option<String>,
}

// ---- intake -------------------------------------------------------------------------------

/// A new incident with the units recommended for it at once.
#[derive(Serialize, ToSchema, Debug)]
pub struct CreatedIncidentBody {
    #[serde(flatten)]
    pub incident: IncidentBody,
    /// The best free units now, best first (as `GET /incidents/{id}/recommendations`).
    pub recommendations: Vec<RecommendationBody>,
}

/// Creates an incident. Send an `Idempotency-Key` header (any unique text per call, up to
/// 128 characters) and a retried request returns the first incident (with
/// `Idempotent-Replayed: true`) instead of creating a second one; the same key with a
/// different request is refused (`422 idempotency_key_reused`). The answer says whether
/// the incident may repeat an open one (`possible_duplicates`).
#[utoipa::path(post, path = "/incidents", tag = "dispatch", security(("bearer" = [])), request_body = NewIncidentBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "makes retries safe")),
    responses((status = 201, description = "created (or, for a retry, the first one), with the units recommended", body = CreatedIncidentBody),
              (status = 403, description = "forbidden", body = ErrorBody),
              (status = 404, description = "outside the city (`outside_city`)", body = ErrorBody),
              (status = 422, description = "invalid field or reused key", body = ErrorBody)))]
pub async fn create_incident(
    State(state): State<AppState>,
    session: UserSession,
    headers: HeaderMap,
    Json(body): Json<NewIncidentBody>,
) -> Result<Response, ApiError> {
    let crs = crs_of(body.crs.as_deref())?;
    let [lon, lat] = crs.to_wgs84([body.lon, body.lat]);
    let point = LatLon::new(lat, lon).map_err(|e| invalid("lat/lon", e.to_string()))?;
    let idempotency_key = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::bad_request("invalid_header", "Idempotency-Key must be visible ASCII"))?
                .trim()
                .to_string(),
        ),
    };
    let new = NewIncident {
        source: body.source,
        type_code: body.type_code,
        priority: body.priority,
        point: Some(point),
        address: body.address,
        description: body.description,
        caller_name: body.caller_name,
        caller_phone: body.caller_phone,
        idempotency_key,
        recommend: true,
    };
    let created = state.engine.create_incident(&session.caller, new).await?;
    let recommendations = created.recommendations.iter().map(recommendation_body).collect();
    let body = CreatedIncidentBody { incident: IncidentBody::new(&created.incident, crs), recommendations };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if created.replayed {
        response.headers_mut().insert(REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}

#[derive(Deserialize, IntoParams, Debug)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `open` (default: the live board) or `all` (by creation time, from the record).
    pub status: Option<String>,
    /// Only inside this jurisdiction node (and inside yours).
    pub within: Option<String>,
    /// With `status=all`: start (RFC 3339); default 24 hours before `to`.
    pub from: Option<String>,
    /// With `status=all`: end (RFC 3339, exclusive); default now.
    pub to: Option<String>,
    /// With `status=all`: at most this many (default 1,000; at most 10,000).
    pub limit: Option<u32>,
    pub crs: Option<String>,
}

/// Open incidents (the live board), or all incidents of a period.
#[utoipa::path(get, path = "/incidents", tag = "dispatch", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, description = "incidents", body = [IncidentBody]), (status = 403, description = "forbidden", body = ErrorBody)))]
pub async fn list_incidents(
    State(state): State<AppState>,
    session: UserSession,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<IncidentBody>>, ApiError> {
    let crs = crs_of(query.crs.as_deref())?;
    let within = query.within.as_deref();
    let incidents = match query.status.as_deref() {
        None | Some("open") => state.engine.open_incidents(&session.caller, within).await?,
        Some("all") => {
            let to =
                query.to.as_deref().map(|t| parse_rfc3339("to", t)).transpose()?.unwrap_or_else(|| state.engine.now());
            let from = query
                .from
                .as_deref()
                .map(|t| parse_rfc3339("from", t))
                .transpose()?
                .unwrap_or(to.plus_seconds(-86_400));
            state.engine.incidents_between(&session.caller, within, from, to, query.limit.unwrap_or(1_000)).await?
        }
        Some(_) => return Err(ApiError::bad_request("invalid_query", "status: open or all")),
    };
    Ok(Json(incidents.iter().map(|i| IncidentBody::new(i, crs)).collect()))
}

#[derive(Deserialize, IntoParams, Debug)]
#[into_params(parameter_in = Path)]
pub struct IncidentPath {
    /// The incident's id.
    pub id: i64,
}

/// One incident with its units and response times.
#[utoipa::path(get, path = "/incidents/{id}", tag = "dispatch", security(("bearer" = [])), params(IncidentPath, CrsQuery),
    responses((status = 200, description = "the incident", body = IncidentBody), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 404, description = "no such incident", body = ErrorBody)))]
pub async fn get_incident(
    State(state): State<AppState>,
    session: UserSession,
    Path(path): Path<IncidentPath>,
    Query(query): Query<CrsQuery>,
) -> Result<Json<IncidentBody>, ApiError> {
    let crs = crs_of(query.crs.as_deref())?;
    Ok(Json(IncidentBody::new(&state.engine.incident(&session.caller, path.id).await?, crs)))
}

#[derive(Serialize, ToSchema, Debug)]
pub struct TimelineEntryBody {
    pub seq: i64,
    pub at: String,
    /// Who acted: a user, a device (`sos:…`) or a system task.
    pub actor: String,
    /// `created`, `dispatched`, `unit_status`, `resolved`, `closed`, `reopened`,
    /// `cancelled`, `merged`, `merged_from`, `duplicate_kept` or `note`.
    pub kind: &'static str,
    pub unit: Option<String>,
    pub detail: String,
}

impl TimelineEntryBody {
    fn new(seq: i64, entry: &TimelineEntry) -> TimelineEntryBody {
        TimelineEntryBody {
            seq,
            at: rfc3339(entry.at),
            actor: entry.actor.clone(),
            kind: entry.kind.as_str(),
            unit: entry.unit.clone(),
            detail: entry.detail.clone(),
        }
    }
}

/// The incident's timeline: every step, with who took it and when. Append-only.
#[utoipa::path(get, path = "/incidents/{id}/timeline", tag = "dispatch", security(("bearer" = [])), params(IncidentPath),
    responses((status = 200, description = "oldest first", body = [TimelineEntryBody]), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 404, description = "no such incident", body = ErrorBody)))]
pub async fn incident_timeline(
    State(state): State<AppState>,
    session: UserSession,
    Path(path): Path<IncidentPath>,
) -> Result<Json<Vec<TimelineEntryBody>>, ApiError> {
    let timeline = state.engine.incident_timeline(&session.caller, path.id).await?;
    Ok(Json(timeline.iter().map(|(seq, e)| TimelineEntryBody::new(*seq, e)).collect()))
}

#[derive(Serialize, ToSchema, Debug)]
pub struct CallerBody {
    pub name: Option<String>,
    pub phone: Option<String>,
}

/// Who called (personal data): needs `X-Purpose`; the read is audited.
#[utoipa::path(get, path = "/incidents/{id}/caller", tag = "dispatch", security(("bearer" = [])), params(IncidentPath),
    responses((status = 200, description = "the caller", body = CallerBody), (status = 400, description = "no purpose stated", body = ErrorBody),
              (status = 403, description = "forbidden", body = ErrorBody), (status = 404, description = "no such incident", body = ErrorBody)))]
pub async fn incident_caller(
    State(state): State<AppState>,
    session: UserSession,
    Path(path): Path<IncidentPath>,
) -> Result<Json<CallerBody>, ApiError> {
    let details = state.engine.incident_caller(&session.caller, path.id).await?;
    Ok(Json(CallerBody { name: details.name, phone: details.phone }))
}

#[derive(Serialize, ToSchema, Debug)]
pub struct PriorIncidentBody {
    pub distance_m: f64,
    pub incident: IncidentBody,
}

/// Prior history: incidents near the same spot in the days before this one, newest first.
#[utoipa::path(get, path = "/incidents/{id}/history", tag = "dispatch", security(("bearer" = [])), params(IncidentPath),
    responses((status = 200, description = "newest first", body = [PriorIncidentBody]), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 404, description = "no such incident", body = ErrorBody)))]
pub async fn incident_history(
    State(state): State<AppState>,
    session: UserSession,
    Path(path): Path<IncidentPath>,
) -> Result<Json<Vec<PriorIncidentBody>>, ApiError> {
    let prior = state.engine.prior_history(&session.caller, path.id).await?;
    Ok(Json(
        prior
            .iter()
            .map(|p| PriorIncidentBody { distance_m: p.distance_m.round(), incident: IncidentBody::from(&p.incident) })
            .collect(),
    ))
}

#[derive(Serialize, ToSchema, Debug)]
pub struct RecommendationBody {
    pub unit: String,
    pub call_sign: Option<String>,
    pub mode: Option<&'static str>,
    pub category: Option<&'static str>,
    /// Straight-line distance from the unit's last fix.
    pub distance_m: f64,
    /// Estimated seconds to arrive (distance × road factor ÷ the mode's speed).
    pub eta_s: f64,
    /// The unit's beat holds the place.
    pub owns_beat: bool,
    /// The unit has the capability the incident type prefers (or none is preferred).
    pub suitable: bool,
}

#[derive(Deserialize, IntoParams, Debug)]
#[into_params(parameter_in = Query)]
pub struct RecommendQuery {
    /// How many (default 5, at most 50).
    pub limit: Option<usize>,
}

fn recommendation_body(r: &Recommended) -> RecommendationBody {
    RecommendationBody {
        unit: r.unit.code.clone(),
        call_sign: Some(r.unit.call_sign.clone()),
        mode: Some(r.unit.mode.as_str()),
        category: Some(r.unit.category.as_str()),
        distance_m: r.distance_m.round(),
        eta_s: r.eta_s.round(),
        owns_beat: r.owns_beat,
        suitable: r.suitable,
    }
}

/// The best free units for the incident now: suitable first, then by estimated arrival
/// (the beat's own unit breaking near ties). Served from the live index.
#[utoipa::path(get, path = "/incidents/{id}/recommendations", tag = "dispatch", security(("bearer" = [])), params(IncidentPath, RecommendQuery),
    responses((status = 200, description = "best first", body = [RecommendationBody]), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 404, description = "no such incident", body = ErrorBody)))]
pub async fn recommendations(
    State(state): State<AppState>,
    session: UserSession,
    Path(path): Path<IncidentPath>,
    Query(query): Query<RecommendQuery>,
) -> Result<Json<Vec<RecommendationBody>>, ApiError> {
    Ok(Json(recommendation_bodies(&state, &session, path.id, query.limit).await?))
}

async fn recommendation_bodies(
    state: &AppState,
    session: &UserSession,
    id: i64,
    limit: Option<usize>,
) -> Result<Vec<RecommendationBody>, ApiError> {
    Ok(state.engine.recommend(&session.caller, id, limit).await?.iter().map(recommendation_body).collect())
}

// ---- commands -----------------------------------------------------------------------------

#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    /// Unit codes to send (free units at stations in your jurisdiction).
    pub units: Vec<String>,
}

/// Sends units to the incident.
#[utoipa::path(post, path = "/incidents/{id}/assign", tag = "dispatch", security(("bearer" = [])), params(IncidentPath), request_body = AssignBody,
    responses((status = 200, description = "the incident", body = IncidentBody), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 404, description = "no such open incident or unit", body = ErrorBody),
              (status = 409, description = "a unit is not free (`invalid_transition`)", body = ErrorBody)))]
pub async fn assign_units(
    State(state): State<AppState>,
    session: UserSession,
    Path(path): Path<IncidentPath>,
    Json(body): Json<AssignBody>,
) -> Result<Json<IncidentBody>, ApiError> {
    Ok(Json(IncidentBody::from(&state.engine.assign_units(&session.caller, path.id, &body.units).await?)))
}

#[derive(Deserialize, ToSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// Code table `disposition`: required to close; optional when cancelling.
    pub disposition: Option<String>,
}

async fn act(
    state: &AppState,
    session: &UserSession,
    id: i64,
    action: IncidentAction,
    body: Option<ActionBody>,
) -> Result<Json<IncidentBody>, ApiError> {
    let disposition = body.and_then(|b| b.disposition);
    let incident = state.engine.incident_action(&session.caller, id, action, disposition.as_deref()).await?;
    Ok(Json(IncidentBody::from(&incident)))
}

/// Resolves the incident (the work on scene is done); its units become free (returning).
#[utoipa::path(post, path = "/incidents/{id}/resolve", tag = "dispatch", security(("bearer" = [])), params(IncidentPath),
    responses((status = 200, description = "the incident", body = IncidentBody), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 404, description = "no such incident", body = ErrorBody), (status = 409, description = "not in a status that allows it", body = ErrorBody)))]
pub async fn resolve_incident(
    State(state): State<AppState>,
    session: UserSession,
    Path(path): Path<IncidentPath>,
) -> Result<Json<IncidentBody>, ApiError> {
    act(&state, &session, path.id, IncidentAction::Resolve, None).await
}

/// Closes the incident with a disposition code (an invalid or prank call is closed from
/// `new` with its disposition, never deleted).
#[utoipa::path(post, path = "/incidents/{id}/close", tag = "dispatch", security(("bearer" = [])), params(IncidentPath), request_body = ActionBody,
    responses((status = 200, description = "the incident", body = IncidentBody), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 404, description = "no such incident", body = ErrorBody), (status = 409, description = "not in a status that allows it", body = ErrorBody),
              (status = 422, description = "no or unknown disposition", body = ErrorBody)))]
pub async fn close_incident(
    State(state): State<AppState>,
    session: UserSession,
    Path(path): Path<IncidentPath>,
    Json(body): Json<ActionBody>,
) -> Result<Json<IncidentBody>, ApiError> {
    act(&state, &session, path.id, IncidentAction::Close, Some(body)).await
}

/// Reopens a resolved or closed incident (back to `new`).
#[utoipa::path(post, path = "/incidents/{id}/reopen", tag = "dispatch", security(("bearer" = [])), params(IncidentPath),
    responses((status = 200, description = "the incident", body = IncidentBody), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 404, description = "no such incident", body = ErrorBody), (status = 409, description = "not in a status that allows it", body = ErrorBody)))]
pub async fn reopen_incident(
    State(state): State<AppState>,
    session: UserSession,
    Path(path): Path<IncidentPath>,
) -> Result<Json<IncidentBody>, ApiError> {
    act(&state, &session, path.id, IncidentAction::Reopen, None).await
}

/// Cancels the incident before anyone arrived; its units are recalled (available).
#[utoipa::path(post, path = "/incidents/{id}/cancel", tag = "dispatch", security(("bearer" = [])), params(IncidentPath), request_body = ActionBody,
    responses((status = 200, description = "the incident", body = IncidentBody), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 404, description = "no such incident", body = ErrorBody), (status = 409, description = "not in a status that allows it", body = ErrorBody)))]
pub async fn cancel_incident(
    State(state): State<AppState>,
    session: UserSession,
    Path(path): Path<IncidentPath>,
    Json(body): Json<ActionBody>,
) -> Result<Json<IncidentBody>, ApiError> {
    act(&state, &session, path.id, IncidentAction::Cancel, Some(body)).await
}

#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    /// The incident this one repeats.
    pub into: i64,
}

/// Merges a duplicate into the incident it repeats: it is closed (disposition
/// `duplicate`), and units working it now work the other.
#[utoipa::path(post, path = "/incidents/{id}/merge", tag = "dispatch", security(("bearer" = [])), params(IncidentPath), request_body = MergeBody,
    responses((status = 200, description = "the merged duplicate", body = IncidentBody), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 404, description = "no such open incident", body = ErrorBody), (status = 422, description = "invalid", body = ErrorBody)))]
pub async fn merge_incident(
    State(state): State<AppState>,
    session: UserSession,
    Path(path): Path<IncidentPath>,
    Json(body): Json<MergeBody>,
) -> Result<Json<IncidentBody>, ApiError> {
    Ok(Json(IncidentBody::from(&state.engine.merge_incident(&session.caller, path.id, body.into).await?)))
}

/// Keeps an incident flagged as a possible duplicate as an incident of its own.
#[utoipa::path(post, path = "/incidents/{id}/keep", tag = "dispatch", security(("bearer" = [])), params(IncidentPath),
    responses((status = 200, description = "the incident", body = IncidentBody), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 404, description = "no such open incident", body = ErrorBody), (status = 422, description = "not flagged", body = ErrorBody)))]
pub async fn keep_incident(
    State(state): State<AppState>,
    session: UserSession,
    Path(path): Path<IncidentPath>,
) -> Result<Json<IncidentBody>, ApiError> {
    Ok(Json(IncidentBody::from(&state.engine.keep_incident(&session.caller, path.id).await?)))
}

#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    pub text: String,
}

/// Adds a note to the incident's timeline.
#[utoipa::path(post, path = "/incidents/{id}/notes", tag = "dispatch", security(("bearer" = [])), params(IncidentPath), request_body = NoteBody,
    responses((status = 200, description = "the incident", body = IncidentBody), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 404, description = "no such open incident", body = ErrorBody), (status = 422, description = "invalid", body = ErrorBody)))]
pub async fn note_incident(
    State(state): State<AppState>,
    session: UserSession,
    Path(path): Path<IncidentPath>,
    Json(body): Json<NoteBody>,
) -> Result<Json<IncidentBody>, ApiError> {
    Ok(Json(IncidentBody::from(&state.engine.note_incident(&session.caller, path.id, &body.text).await?)))
}

// ---- units --------------------------------------------------------------------------------

#[derive(Serialize, ToSchema, Debug)]
pub struct UnitStateBody {
    pub unit: String,
    /// `available`, `dispatched`, `en_route`, `on_scene`, `returning`, `off_duty` or
    /// `out_of_service`.
    pub status: &'static str,
    /// When the unit entered the status (its timer).
    pub since: String,
    pub incident: Option<i64>,
    /// Counts the status's stored changes (newer states have higher revisions).
    pub revision: i64,
}

impl From<&UnitState> for UnitStateBody {
    fn from(state: &UnitState) -> UnitStateBody {
        UnitStateBody {
            unit: state.unit.clone(),
            status: state.status.as_str(),
            since: rfc3339(state.since),
            incident: state.incident,
            revision: state.revision,
        }
    }
}

#[derive(Serialize, ToSchema, Debug)]
pub struct UnitOnBoardBody {
    pub unit: String,
    pub call_sign: String,
    pub station: String,
    pub category: &'static str,
    pub mode: &'static str,
    pub capabilities: Vec<String>,
    pub beat: Option<String>,
    pub state: UnitStateBody,
    /// The unit's last known position (WGS84) and when it was taken.
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub fixed_at: Option<String>,
    /// In its status longer than the configured limit.
    pub overdue: bool,
}

impl From<&UnitOnBoard> for UnitOnBoardBody {
    fn from(u: &UnitOnBoard) -> UnitOnBoardBody {
        UnitOnBoardBody {
            unit: u.unit.code.clone(),
            call_sign: u.unit.call_sign.clone(),
            station: u.unit.station.clone(),
            category: u.unit.category.as_str(),
            mode: u.unit.mode.as_str(),
            capabilities: u.unit.capabilities.clone(),
            beat: u.unit.beat.clone(),
            state: UnitStateBody::from(&u.state),
            lat: u.position.map(|(p, _)| p.lat()),
            lon: u.position.map(|(p, _)| p.lon()),
            fixed_at: u.position.map(|(_, at)| rfc3339(at)),
            overdue: u.overdue,
        }
    }
}

/// Every unit in your jurisdiction with its dispatch status, timer and position.
#[utoipa::path(get, path = "/dispatch/units", tag = "dispatch", security(("bearer" = [])),
    responses((status = 200, description = "units", body = [UnitOnBoardBody]), (status = 403, description = "forbidden", body = ErrorBody)))]
pub async fn unit_board(
    State(state): State<AppState>,
    session: UserSession,
) -> Result<Json<Vec<UnitOnBoardBody>>, ApiError> {
    Ok(Json(state.engine.unit_board(&session.caller).await?.iter().map(UnitOnBoardBody::from).collect()))
}

#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct UnitStatusBody {
    /// `available`, `en_route`, `on_scene`, `returning`, `off_duty` or `out_of_service`
    /// (units become `dispatched` by being assigned).
    pub status: String,
}

#[derive(Deserialize, IntoParams, Debug)]
#[into_params(parameter_in = Path)]
pub struct UnitPath {
    pub code: String,
}

/// Changes a unit's status (the unit reporting, or the centre); working an incident, the
/// incident follows.
#[utoipa::path(post, path = "/units/{code}/status", tag = "dispatch", security(("bearer" = [])), params(UnitPath), request_body = UnitStatusBody,
    responses((status = 200, description = "the unit's new state", body = UnitStateBody), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 404, description = "no such unit", body = ErrorBody), (status = 409, description = "not allowed from its status", body = ErrorBody)))]
pub async fn set_unit_status(
    State(state): State<AppState>,
    session: UserSession,
    Path(path): Path<UnitPath>,
    Json(body): Json<UnitStatusBody>,
) -> Result<Json<UnitStateBody>, ApiError> {
    let status = UnitStatus::parse(&body.status)
        .ok_or_else(|| invalid("status", "available, en_route, on_scene, returning, off_duty or out_of_service"))?;
    Ok(Json(UnitStateBody::from(&state.engine.set_unit_status(&session.caller, &path.code, status).await?)))
}

// ---- measures and area classes ------------------------------------------------------------

#[derive(Serialize, ToSchema, Debug)]
pub struct MeasuresBody {
    pub incidents: u64,
    pub dispatched: u64,
    pub arrived: u64,
    pub within_target: u64,
    /// Of the incidents a unit reached, the share reached within their target.
    pub share_within_target: Option<f64>,
    pub median_call_to_dispatch_s: Option<f64>,
    pub median_dispatch_to_arrival_s: Option<f64>,
    pub median_call_to_arrival_s: Option<f64>,
    pub p90_call_to_arrival_s: Option<f64>,
}

impl From<&GroupMeasures> for MeasuresBody {
    fn from(m: &GroupMeasures) -> MeasuresBody {
        MeasuresBody {
            incidents: m.incidents,
            dispatched: m.dispatched,
            arrived: m.arrived,
            within_target: m.within_target,
            share_within_target: m.share_within_target,
            median_call_to_dispatch_s: m.median_call_to_dispatch_s,
            median_dispatch_to_arrival_s: m.median_dispatch_to_arrival_s,
            median_call_to_arrival_s: m.median_call_to_arrival_s,
            p90_call_to_arrival_s: m.p90_call_to_arrival_s,
        }
    }
}

#[derive(Serialize, ToSchema, Debug)]
pub struct MeasuresPartBody {
    pub jurisdiction: String,
    pub measures: MeasuresBody,
}

#[derive(Serialize, ToSchema, Debug)]
pub struct MeasuresReportBody {
    pub within: String,
    pub from: String,
    pub to: String,
    pub total: MeasuresBody,
    /// The nodes one level below `within`.
    pub parts: Vec<MeasuresPartBody>,
}

#[derive(Deserialize, IntoParams, Debug)]
#[into_params(parameter_in = Query)]
pub struct MeasuresQuery {
    /// A jurisdiction node in yours.
    pub within: String,
    /// Start (RFC 3339); default 24 hours before `to`.
    pub from: Option<String>,
    /// End (RFC 3339, exclusive); default now. At most 366 days after `from`.
    pub to: Option<String>,
}

/// Response measures for incidents created in a period: call → dispatch, dispatch →
/// arrival, call → arrival, and the share within the 5/10-minute targets (urban/suburban
/// by the area class of the place), for the node and each node one level below.
#[utoipa::path(get, path = "/measures/response", tag = "dispatch", security(("bearer" = [])), params(MeasuresQuery),
    responses((status = 200, description = "measures", body = MeasuresReportBody), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 404, description = "no such jurisdiction", body = ErrorBody)))]
pub async fn response_measures(
    State(state): State<AppState>,
    session: UserSession,
    Query(query): Query<MeasuresQuery>,
) -> Result<Json<MeasuresReportBody>, ApiError> {
    let to = query.to.as_deref().map(|t| parse_rfc3339("to", t)).transpose()?.unwrap_or_else(|| state.engine.now());
    let from = query.from.as_deref().map(|t| parse_rfc3339("from", t)).transpose()?.unwrap_or(to.plus_seconds(-86_400));
    let report = state.engine.response_measures(&session.caller, &query.within, from, to).await?;
    Ok(Json(MeasuresReportBody {
        within: report.within,
        from: rfc3339(from),
        to: rfc3339(to),
        total: MeasuresBody::from(&report.total),
        parts: report
            .parts
            .iter()
            .map(|(code, m)| MeasuresPartBody { jurisdiction: code.clone(), measures: MeasuresBody::from(m) })
            .collect(),
    }))
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct AreaClassBody {
    /// `urban`, `suburban`, or null to inherit from the node above (urban at the top).
    pub area_class: Option<String>,
}

#[derive(Serialize, ToSchema, Debug)]
pub struct AreaClassEntry {
    pub jurisdiction: String,
    pub area_class: &'static str,
}

/// The area classes set on nodes (the others inherit from above; urban by default).
#[utoipa::path(get, path = "/area-classes", tag = "dispatch", security(("bearer" = [])),
    responses((status = 200, description = "settings", body = [AreaClassEntry])))]
pub async fn list_area_classes(
    State(state): State<AppState>,
    _session: UserSession,
) -> Result<Json<Vec<AreaClassEntry>>, ApiError> {
    Ok(Json(
        state
            .engine
            .area_classes()
            .into_iter()
            .map(|(code, class)| AreaClassEntry { jurisdiction: code, area_class: class.as_str() })
            .collect(),
    ))
}

#[derive(Deserialize, IntoParams, Debug)]
#[into_params(parameter_in = Path)]
pub struct CodePath {
    pub code: String,
}

/// Sets whether a node is urban or suburban ground (administrators): incidents there get
/// the matching arrival target from now on.
#[utoipa::path(put, path = "/jurisdictions/{code}/area-class", tag = "dispatch", security(("bearer" = [])), params(CodePath), request_body = AreaClassBody,
    responses((status = 204, description = "set"), (status = 403, description = "forbidden", body = ErrorBody),
              (status = 404, description = "no such jurisdiction", body = ErrorBody), (status = 422, description = "invalid", body = ErrorBody)))]
pub async fn set_area_class(
    State(state): State<AppState>,
    session: UserSession,
    Path(path): Path<CodePath>,
    Json(body): Json<AreaClassBody>,
) -> Result<StatusCode, ApiError> {
    let class = match body.area_class.as_deref() {
        None => None,
        Some(text) => Some(AreaClass::parse(text).ok_or_else(|| invalid("area_class", "urban, suburban or null"))?),
    };
    state.engine.set_area_class(&session.caller, &path.code, class).await?;
    Ok(StatusCode::NO_CONTENT)
}
