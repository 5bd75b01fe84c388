//! What this server is: version, store, schema, uptime.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::api::rfc3339;
use crate::extract::Json;

#[derive(Serialize, ToSchema, Debug)]
pub struct SystemInfo {
    #[schema(example = "fangkong")]
    pub name: &'static str,
    #[schema(example = "0.1.0")]
    pub version: &'static str,
    /// `sqlite` or `postgres`.
    #[schema(example = "sqlite")]
    pub store: &'static str,
    /// The number of the last migration applied to the database.
    pub schema_version: u32,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// The server's clock, RFC 3339 UTC: lets a console detect its own clock skew.
    pub now: String,
    /// Sequence number of the latest event on the bus.
    pub last_event_seq: u64,
    /// The MapLibre style of the deployment's base map, if it has a tile server; the
    /// console otherwise draws its own boundary layers on a plain background.
    pub map_style_url: Option<String>,
    /// Whether this binary carries the browser console.
    pub console: bool,
}

/// About this server.
#[utoipa::path(get, path = "/system", tag = "system", responses((status = 200, description = "this server", body = SystemInfo)))]
pub async fn get_system_info(State(state): State<AppState>) -> Json<SystemInfo> {
    let engine = &state.engine;
    Json(SystemInfo {
        name: "fangkong",
        version: env!("CARGO_PKG_VERSION"),
        store: engine.backend().as_str(),
        schema_version: engine.schema_version(),
        started_at: rfc3339(engine.started_at()),
        now: rfc3339(engine.now()),
        last_event_seq: engine.bus().last_seq(),
        map_style_url: state.map_style_url.as_deref().map(str::to_string),
        console: crate::console::built(),
    })
}
