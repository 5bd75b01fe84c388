//! Live positions of trackers and their history (AVL). Positions show where officers are:
//! only the roles that send, lead or are units, and analysts, read them, each within their
//! jurisdiction.

use axum::extract::State;
use fangkong_core::avl::Fix;
use fangkong_core::jurisdiction::JurisdictionKind;
use fangkong_engine::avl::LivePosition;
use fangkong_engine::{RejectedFix, StoredFix};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::{parse_rfc3339, rfc3339};
use crate::auth::UserSession;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path, Query};

/// One fix, in the units people read: km/h, degrees, metres, percent.
#[derive(Serialize, ToSchema, Debug)]
pub struct FixBody {
    /// When the device took the fix (RFC 3339).
    pub fixed_at: String,
    /// WGS84.
    pub lat: f64,
    pub lon: f64,
    pub speed_kmh: Option<f64>,
    pub course: Option<f64>,
    pub altitude_m: Option<f64>,
    pub accuracy_m: Option<f64>,
    pub battery_pct: Option<f64>,
    pub alarm: Option<String>,
    /// Everything else the device sent.
    pub attributes: std::collections::BTreeMap<String, String>,
}

impl From<&Fix> for FixBody {
    fn from(fix: &Fix) -> FixBody {
        FixBody {
            fixed_at: rfc3339(fix.fixed_at),
            lat: fix.point.lat(),
            lon: fix.point.lon(),
            speed_kmh: fix.speed_mps.map(|s| (s * 3.6 * 10.0).round() / 10.0),
            course: fix.course_deg,
            altitude_m: fix.altitude_m,
            accuracy_m: fix.accuracy_m,
            battery_pct: fix.battery_pct,
            alarm: fix.alarm.clone(),
            attributes: fix.attributes.iter().cloned().collect(),
        }
    }
}

#[derive(Serialize, ToSchema, Debug)]
pub struct LivePositionBody {
    #[schema(example = "862118020000001")]
    pub device: String,
    pub unit: Option<String>,
    pub fix: FixBody,
    pub received_at: String,
    /// Where the fix is (absent outside the city).
    pub district: Option<String>,
    pub subdistrict: Option<String>,
    pub community: Option<String>,
    pub grid: Option<String>,
    pub police_station: Option<String>,
    pub police_district: Option<String>,
    /// H3 cell (hex), at the server's resolution.
    pub h3: Option<String>,
}

impl From<&LivePosition> for LivePositionBody {
    fn from(live: &LivePosition) -> LivePositionBody {
        let at = |kind| live.chain.get(kind).map(str::to_string);
        use JurisdictionKind::*;
        LivePositionBody {
            device: live.unique_id.clone(),
            unit: live.unit.clone(),
            fix: FixBody::from(&live.fix),
            received_at: rfc3339(live.received_at),
            district: at(District),
            subdistrict: at(Subdistrict),
            community: at(Community),
            grid: at(Grid),
            police_station: at(PoliceStation),
            police_district: at(PoliceDistrict),
            h3: live.h3.map(|h| format!("{h:x}")),
        }
    }
}

#[derive(Deserialize, IntoParams, Debug)]
#[into_params(parameter_in = Query)]
pub struct LiveQuery {
    /// Only trackers inside this jurisdiction node (and inside yours).
    #[param(example = "440304")]
    pub within: Option<String>,
}

/// The latest position of every tracker in your jurisdiction.
#[utoipa::path(
    get,
    path = "/positions",
    tag = "positions",
    security(("bearer" = [])),
    params(LiveQuery),
    responses(
        (status = 200, description = "latest positions", body = [LivePositionBody]),
        (status = 403, description = "your role does not read positions", body = ErrorBody),
    )
)]
pub async fn live_positions(
    State(state): State<AppState>,
    session: UserSession,
    Query(query): Query<LiveQuery>,
) -> Result<Json<Vec<LivePositionBody>>, ApiError> {
    let positions = state.engine.live_positions(&session.caller, query.within.as_deref()).await?;
    Ok(Json(positions.iter().map(LivePositionBody::from).collect()))
}

#[derive(Deserialize, IntoParams, Debug)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// Start (RFC 3339, inclusive); default 24 hours before `to`.
    pub from: Option<String>,
    /// End (RFC 3339, exclusive); default now.
    pub to: Option<String>,
    /// At most this many (default 10,000; at most 100,000).
    pub limit: Option<u32>,
}

struct Range {
    from: fangkong_core::time::Timestamp,
    to: fangkong_core::time::Timestamp,
    limit: u32,
}

fn range(state: &AppState, query: &RangeQuery) -> Result<Range, ApiError> {
    let to = match &query.to {
        Some(text) => parse_rfc3339("to", text)?,
        None => state.engine.now().plus_millis(1),
    };
    let from = match &query.from {
        Some(text) => parse_rfc3339("from", text)?,
        None => to.plus_seconds(-86_400),
    };
    if from > to {
        return Err(ApiError::bad_request("invalid_query", "from must not be after to"));
    }
    let limit = query.limit.unwrap_or(10_000);
    if !(1..=100_000).contains(&limit) {
        return Err(ApiError::bad_request("invalid_query", "limit must be 1–100,000"));
    }
    Ok(Range { from, to, limit })
}

#[derive(Serialize, ToSchema, Debug)]
pub struct TrackBody {
    pub device: String,
    pub from: String,
    pub to: String,
    /// Oldest first.
    pub fixes: Vec<TrackFixBody>,
}

#[derive(Serialize, ToSchema, Debug)]
pub struct TrackFixBody {
    #[serde(flatten)]
    pub fix: FixBody,
    pub received_at: String,
    pub h3: Option<String>,
}

impl From<&StoredFix> for TrackFixBody {
    fn from(stored: &StoredFix) -> TrackFixBody {
        TrackFixBody {
            fix: FixBody::from(&stored.fix),
            received_at: rfc3339(stored.received_at),
            h3: stored.h3.map(|h| format!("{h:x}")),
        }
    }
}

/// A tracker's history, for a tracker registered in your jurisdiction.
#[utoipa::path(
    get,
    path = "/devices/{unique_id}/track",
    tag = "positions",
    security(("bearer" = [])),
    params(("unique_id" = String, Path, description = "the tracker"), RangeQuery),
    responses(
        (status = 200, description = "the track", body = TrackBody),
        (status = 400, description = "bad range", body = ErrorBody),
        (status = 403, description = "not yours to see", body = ErrorBody),
        (status = 404, description = "no such device", body = ErrorBody),
    )
)]
pub async fn track(
    State(state): State<AppState>,
    session: UserSession,
    Path(unique_id): Path<String>,
    Query(query): Query<RangeQuery>,
) -> Result<Json<TrackBody>, ApiError> {
    let range = range(&state, &query)?;
    let fixes = state.engine.track(&session.caller, &unique_id, range.from, range.to, range.limit).await?;
    Ok(Json(TrackBody {
        device: unique_id,
        from: rfc3339(range.from),
        to: rfc3339(range.to),
        fixes: fixes.iter().map(TrackFixBody::from).collect(),
    }))
}

#[derive(Serialize, ToSchema, Debug)]
pub struct RefusedFixBody {
    pub received_at: String,
    pub fixed_at: String,
    pub lat: f64,
    pub lon: f64,
    /// `invalid`, `null_island`, `duplicate`, `out_of_order`, `in_future` or `impossible_speed`.
    pub reason: &'static str,
}

impl From<&RejectedFix> for RefusedFixBody {
    fn from(refused: &RejectedFix) -> RefusedFixBody {
        RefusedFixBody {
            received_at: rfc3339(refused.received_at),
            fixed_at: rfc3339(refused.fixed_at),
            lat: refused.point.lat(),
            lon: refused.point.lon(),
            reason: refused.reason.as_str(),
        }
    }
}

/// The fixes of a tracker that the screen refused, newest first, with the reason.
#[utoipa::path(
    get,
    path = "/devices/{unique_id}/refused",
    tag = "positions",
    security(("bearer" = [])),
    params(("unique_id" = String, Path, description = "the tracker"), RangeQuery),
    responses(
        (status = 200, description = "refused fixes", body = [RefusedFixBody]),
        (status = 403, description = "not yours to see", body = ErrorBody),
        (status = 404, description = "no such device", body = ErrorBody),
    )
)]
pub async fn refused(
    State(state): State<AppState>,
    session: UserSession,
    Path(unique_id): Path<String>,
    Query(query): Query<RangeQuery>,
) -> Result<Json<Vec<RefusedFixBody>>, ApiError> {
    let range = range(&state, &query)?;
    let refused = state.engine.refused_fixes(&session.caller, &unique_id, range.from, range.to, range.limit).await?;
    Ok(Json(refused.iter().map(RefusedFixBody::from).collect()))
}
