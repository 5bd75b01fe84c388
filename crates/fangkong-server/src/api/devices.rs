//! Devices with their own credentials (administrators), and the devices' own heartbeat.

use axum::extract::State;
use axum::http::StatusCode;
use fangkong_core::auth::DeviceKind;
use fangkong_core::auth::account::Device;
use fangkong_engine::{NewDevice, Site};
use fangkong_geo::LatLon;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::rfc3339;
use crate::auth::{DeviceSession, UserSession};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path};

#[derive(Serialize, ToSchema, Debug)]
pub struct DeviceBody {
    pub id: i64,
    #[schema(example = "862118020000001")]
    pub unique_id: String,
    /// `tracker`, `alarm_point` or `checkpoint`.
    pub kind: &'static str,
    pub unit: Option<String>,
    pub jurisdiction: String,
    /// What people call the place of a fixed device.
    pub name: Option<String>,
    /// Where a fixed device stands (WGS 84), if it has a place.
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub created_at: String,
    pub revoked_at: Option<String>,
    pub last_seen_at: Option<String>,
}

impl From<&Device> for DeviceBody {
    fn from(device: &Device) -> DeviceBody {
        DeviceBody {
            id: device.id,
            unique_id: device.unique_id.clone(),
            kind: device.kind.as_str(),
            unit: device.unit.clone(),
            jurisdiction: device.jurisdiction.clone(),
            name: device.name.clone(),
            lat: device.location.map(|p| p.lat()),
            lon: device.location.map(|p| p.lon()),
            created_at: rfc3339(device.created_at),
            revoked_at: device.revoked_at.map(rfc3339),
            last_seen_at: device.last_seen_at.map(rfc3339),
        }
    }
}

/// The devices in your jurisdiction.
#[utoipa::path(
    get,
    path = "/devices",
    tag = "devices",
    security(("bearer" = [])),
    responses((status = 200, description = "devices", body = [DeviceBody]), (status = 403, description = "forbidden", body = ErrorBody))
)]
pub async fn list_devices(
    State(state): State<AppState>,
    session: UserSession,
) -> Result<Json<Vec<DeviceBody>>, ApiError> {
    Ok(Json(state.engine.devices(&session.caller).await?.iter().map(DeviceBody::from).collect()))
}

#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct AddDeviceRequest {
    /// What the device sends to identify itself (for OsmAnd trackers, its `id`).
    pub unique_id: String,
    #[schema(example = "tracker")]
    pub kind: String,
    /// The patrol unit, alarm point or checkpoint it belongs to.
    pub unit: Option<String>,
    #[schema(example = "440304")]
    pub jurisdiction: String,
    /// What people call the place of a fixed device (an alarm point's shop, a checkpoint).
    #[schema(example = "莲花加油站报警点")]
    pub name: Option<String>,
    /// Where a fixed device stands (WGS 84): both or neither, inside the jurisdiction.
    #[schema(example = 22.5431)]
    pub lat: Option<f64>,
    #[schema(example = 114.0579)]
    pub lon: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct AddDeviceResponse {
    pub device: DeviceBody,
    /// The device's secret: shown this once, stored only as a keyed hash.
    pub secret: String,
}

/// Register a device and issue its credential.
#[utoipa::path(
    post,
    path = "/devices",
    tag = "devices",
    security(("bearer" = [])),
    request_body = AddDeviceRequest,
    responses(
        (status = 201, description = "registered", body = AddDeviceResponse),
        (status = 403, description = "forbidden or outside_jurisdiction", body = ErrorBody),
        (status = 409, description = "unique id taken", body = ErrorBody),
    )
)]
pub async fn add_device(
    State(state): State<AppState>,
    session: UserSession,
    Json(request): Json<AddDeviceRequest>,
) -> Result<(StatusCode, Json<AddDeviceResponse>), ApiError> {
    let kind = DeviceKind::parse(&request.kind).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("kind {:?} is not one of tracker, alarm_point, checkpoint", request.kind),
        )
    })?;
    let location = match (request.lat, request.lon) {
        (Some(lat), Some(lon)) => {
            Some(LatLon::new(lat, lon).map_err(|e| ApiError::invalid_field("lat/lon", e.to_string()))?)
        }
        (None, None) => None,
        _ => return Err(ApiError::invalid_field("lat/lon", "give both or neither")),
    };
    let new = NewDevice {
        unique_id: request.unique_id,
        kind,
        unit: request.unit,
        jurisdiction: request.jurisdiction,
        name: request.name,
        location,
    };
    let (device, secret) = state.engine.add_device(&session.caller, new).await?;
    Ok((StatusCode::CREATED, Json(AddDeviceResponse { device: DeviceBody::from(&device), secret })))
}

/// An alarm point or checkpoint terminal on the map, and whether it is reporting.
#[derive(Serialize, ToSchema, Debug)]
pub struct SiteBody {
    #[schema(example = "440304001001A001")]
    pub unique_id: String,
    /// `alarm_point` or `checkpoint`.
    pub kind: &'static str,
    #[schema(example = "莲花加油站报警点")]
    pub name: Option<String>,
    pub lat: f64,
    pub lon: f64,
    pub jurisdiction: String,
    pub last_seen_at: Option<String>,
    /// Heard from within the supervision window (`device_offline_minutes`).
    pub online: bool,
}

impl From<&Site> for SiteBody {
    fn from(site: &Site) -> SiteBody {
        SiteBody {
            unique_id: site.unique_id.clone(),
            kind: site.kind.as_str(),
            name: site.name.clone(),
            lat: site.location.lat(),
            lon: site.location.lon(),
            jurisdiction: site.jurisdiction.clone(),
            last_seen_at: site.last_seen_at.map(rfc3339),
            online: site.online,
        }
    }
}

/// The alarm points (报警点) and checkpoints (卡口) in your jurisdiction, where they stand
/// and whether each is online (heartbeat supervision) — for the board's map.
#[utoipa::path(
    get,
    path = "/sites",
    tag = "devices",
    security(("bearer" = [])),
    responses((status = 200, description = "sites", body = [SiteBody]), (status = 403, description = "forbidden", body = ErrorBody))
)]
pub async fn list_sites(State(state): State<AppState>, session: UserSession) -> Result<Json<Vec<SiteBody>>, ApiError> {
    Ok(Json(state.engine.sites(&session.caller).await?.iter().map(SiteBody::from).collect()))
}

/// Revoke a device's credential.
#[utoipa::path(
    post,
    path = "/devices/{unique_id}/revoke",
    tag = "devices",
    security(("bearer" = [])),
    params(("unique_id" = String, Path)),
    responses(
        (status = 200, description = "revoked", body = DeviceBody),
        (status = 403, description = "forbidden or outside_jurisdiction", body = ErrorBody),
        (status = 404, description = "device_not_found", body = ErrorBody),
    )
)]
pub async fn revoke_device(
    State(state): State<AppState>,
    session: UserSession,
    Path(unique_id): Path<String>,
) -> Result<Json<DeviceBody>, ApiError> {
    Ok(Json(DeviceBody::from(&state.engine.revoke_device(&session.caller, &unique_id).await?)))
}

/// A device reports that it is alive (devices only, each for itself).
#[utoipa::path(
    post,
    path = "/devices/{unique_id}/heartbeat",
    tag = "devices",
    security(("device" = [])),
    params(("unique_id" = String, Path)),
    responses(
        (status = 200, description = "recorded", body = DeviceBody),
        (status = 401, description = "unauthenticated or device_revoked", body = ErrorBody),
        (status = 403, description = "another device's id", body = ErrorBody),
    )
)]
pub async fn device_heartbeat(
    State(state): State<AppState>,
    device: DeviceSession,
    Path(unique_id): Path<String>,
) -> Result<Json<DeviceBody>, ApiError> {
    Ok(Json(DeviceBody::from(&state.engine.device_heartbeat(&device.caller, &unique_id).await?)))
}

/// Holds a secret: never printed, not even in debug output.
impl std::fmt::Debug for AddDeviceResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AddDeviceResponse { <redacted> }")
    }
}
