//! `GET /healthz`: whether this server can do its job right now (for load balancers and
//! orchestrators). 200 when the store answers, 503 with the error shape when it does not.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Json;

#[derive(Serialize, Debug)]
pub struct Health {
    status: &'static str,
    store: &'static str,
}

pub(crate) async fn get_healthz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    match state.engine.health().await {
        Ok(()) => Ok(Json(Health { status: "ok", store: state.engine.backend().as_str() })),
        Err(error) => {
            tracing::warn!(%error, "health check failed");
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", "the database does not answer"))
        }
    }
}
