//! Devices with their own credentials (administrators), and the devices' own heartbeat.

use axum::extract::State;
use axum::http::StatusCode;
use fangkong_core::auth::DeviceKind;
use fangkong_core::auth::account::Device;
use fangkong_engine::NewDevice;
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
    let new = NewDevice { unique_id: request.unique_id, kind, unit: request.unit, jurisdiction: request.jurisdiction };
    let (device, secret) = state.engine.add_device(&session.caller, new).await?;
    Ok((StatusCode::CREATED, Json(AddDeviceResponse { device: DeviceBody::from(&device), secret })))
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
