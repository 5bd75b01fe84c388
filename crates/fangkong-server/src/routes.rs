//! Every route of the server, in one table.
//!
//! `/api/v1/…` routes are registered with `utoipa_axum::routes!`, which adds each handler's
//! `#[utoipa::path]` to the OpenAPI document as it adds the route: a route cannot exist
//! without its documentation, nor documentation without its route.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::api::{
    audit, auth, codes, devices, eido, forces, incidents, jurisdictions, positions, registry, stream, system, users,
};
use crate::error::ApiError;
use crate::{AppState, console, health, metrics};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Fangkong API",
        description = "Fangkong (防控): the public-safety prevention and control platform. \
            Every failure answers `{\"error\":{\"code\":\"snake_case_code\",\"message\":\"…\"}}`; \
            branch on `code`, show `message`.",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "system", description = "The server itself"),
        (name = "auth", description = "Signing in and out; your own account, password and second factor"),
        (name = "users", description = "User accounts (administrators, within their jurisdiction)"),
        (name = "devices", description = "Trackers, alarm points and checkpoint terminals with their own credentials"),
        (name = "audit", description = "The tamper-evident audit trail (auditors)"),
        (name = "jurisdictions", description = "The jurisdiction tree (辖区)"),
        (name = "positions", description = "Live positions of trackers and their history (AVL)"),
        (name = "forces", description = "The force registry: beats (巡区), units, the roster, coverage, members"),
        (name = "registry", description = "Residence and rental housing (流动人口和出租屋): properties, residents, tenancies, permits, visits, alerts, imports"),
        (name = "dispatch", description = "Command and dispatch (110): incidents, recommendations, units' statuses, measures"),
        (name = "codes", description = "Code tables (代码表): incident types, sources, dispositions"),
    ),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&SecuritySchemes)
)]
struct ApiDoc;

/// Declares how callers authenticate: users with a bearer token, devices with Basic.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some("The token from POST /api/v1/auth/login".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        let mut basic = Http::new(HttpAuthScheme::Basic);
        basic.description = Some("Devices: unique id as user name, issued secret as password".into());
        components.add_security_scheme("device", SecurityScheme::Http(basic));
    }
}

/// The `/api/v1` routes with their OpenAPI document.
pub(crate) fn api_v1() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(system::get_system_info))
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(auth::change_password))
        .routes(routes!(auth::begin_totp))
        .routes(routes!(auth::confirm_totp))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(users::get_user, users::update_user))
        .routes(routes!(users::lock_user))
        .routes(routes!(users::unlock_user))
        .routes(routes!(users::reset_password))
        .routes(routes!(devices::list_devices, devices::add_device))
        .routes(routes!(devices::revoke_device))
        .routes(routes!(devices::device_heartbeat))
        .routes(routes!(devices::list_sites))
        .routes(routes!(positions::live_positions))
        .routes(routes!(positions::track))
        .routes(routes!(positions::refused))
        .routes(routes!(stream::stream))
        .routes(routes!(forces::list_beats, forces::save_beat))
        .routes(routes!(forces::list_units, forces::save_unit))
        .routes(routes!(forces::on_duty))
        .routes(routes!(forces::roster, forces::add_shifts))
        .routes(routes!(forces::coverage))
        .routes(routes!(forces::hotspots))
        .routes(routes!(forces::list_members, forces::add_member))
        .routes(routes!(forces::update_member))
        .routes(routes!(forces::delete_shift))
        .routes(routes!(incidents::list_incidents, incidents::create_incident))
        .routes(routes!(incidents::get_incident))
        .routes(routes!(incidents::incident_timeline))
        .routes(routes!(incidents::incident_caller))
        .routes(routes!(incidents::incident_history))
        .routes(routes!(incidents::recommendations))
        .routes(routes!(incidents::assign_units))
        .routes(routes!(incidents::resolve_incident))
        .routes(routes!(incidents::close_incident))
        .routes(routes!(incidents::reopen_incident))
        .routes(routes!(incidents::cancel_incident))
        .routes(routes!(incidents::merge_incident))
        .routes(routes!(incidents::keep_incident))
        .routes(routes!(incidents::note_incident))
        .routes(routes!(eido::export_eido))
        .routes(routes!(incidents::unit_board))
        .routes(routes!(incidents::set_unit_status))
        .routes(routes!(incidents::response_measures))
        .routes(routes!(incidents::list_area_classes))
        .routes(routes!(incidents::set_area_class))
        .routes(routes!(audit::list_audit))
        .routes(routes!(audit::verify_audit))
        .routes(routes!(jurisdictions::list_jurisdictions))
        .routes(routes!(jurisdictions::lookup))
        .routes(routes!(jurisdictions::list_features))
        .routes(routes!(jurisdictions::get_feature))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(jurisdictions::import))
                .layer(axum::extract::DefaultBodyLimit::max(jurisdictions::IMPORT_LIMIT_BYTES)),
        )
        .routes(routes!(registry::save_property))
        .routes(routes!(registry::search_buildings))
        .routes(routes!(registry::property_card))
        .routes(routes!(registry::save_landlord))
        .routes(routes!(registry::list_workstations, registry::save_workstation))
        .routes(routes!(registry::register_resident, registry::search_residents))
        .routes(routes!(registry::resident_card))
        .routes(routes!(registry::save_permit))
        .routes(routes!(registry::move_in))
        .routes(routes!(registry::move_out))
        .routes(routes!(registry::record_visit))
        .routes(routes!(registry::alerts))
        .routes(routes!(registry::changes))
        .routes(routes!(registry::export_residents))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(registry::import))
                .layer(axum::extract::DefaultBodyLimit::max(registry::IMPORT_LIMIT_BYTES)),
        )
        .routes(routes!(codes::list_codes, codes::create_code))
        .routes(routes!(codes::get_code, codes::update_code))
}

/// The OpenAPI document of the whole API, as served at `/api/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    build().1
}

fn build() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).nest("/api/v1", api_v1()).split_for_parts()
}

/// All routes, before state and layers are applied.
pub(crate) fn all() -> Router<AppState> {
    let (api, document) = build();
    api.route("/healthz", get(health::get_healthz))
        .route("/metrics", get(metrics::get_metrics))
        // The browser console, compiled into the binary (`build.rs`).
        .route("/", get(console::index))
        .route("/assets/{*file}", get(console::file))
        // The interactive API page, served from assets compiled into the binary (works offline).
        .merge(SwaggerUi::new("/api/docs").url("/api/v1/openapi.json", document))
}

/// The answer for a path no route matches.
pub(crate) async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route for {}", uri.path()))
}
