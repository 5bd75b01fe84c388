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
    components(schemas(crate::error::ErrorBody, crate::api::stream::StreamMessage)),
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

/// Documents the answers any route may give in the one error shape, where its own
/// documentation does not already: a request that cannot be read (400: a bad query, path or
/// body), a body of another media type (415) or too large (413), an invalid field (422), a
/// missing or ended session and a refusal (401, 403) on routes that need a credential, an
/// unknown record (404) on routes that name one, and a server shutting down, overloaded or without
/// its database (503). Clients generated from the document then know every status they can
/// meet, and the property-based run (`.ci/schemathesis`) holds the server to it.
struct CommonErrors;

impl utoipa::Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
            ResponseBuilder::new().description(description).content("application/json", content).build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                let secured = operation.security.as_ref().is_some_and(|list| !list.is_empty());
                let body = operation.request_body.is_some();
                // A parameter can carry a value the rules refuse, as a body can.
                let parameters = operation.parameters.as_ref().is_some_and(|list| !list.is_empty());
                let mut answers = vec![
                    ("400", "the request cannot be read: a bad query, path or body"),
                    ("503", "shutting down, overloaded or without its database: retry shortly"),
                ];
                if secured {
                    answers.push(("401", "no valid session or device credential"));
                    answers.push(("403", "not permitted for your role or outside your jurisdiction"));
                }
                if body {
                    answers.push(("413", "the body is too large"));
                    answers.push(("415", "the body is not of the documented media type"));
                }
                if body || parameters {
                    answers.push(("422", "a field is invalid; the error names it"));
                }
                // A path, a parameter or a body can name a record that does not exist.
                if path.contains('{') || parameters || body {
                    answers.push(("404", "no such record"));
                }
                for (status, description) in answers {
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error(description).into());
                }
            }
        }
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
    let (router, mut document) =
        OpenApiRouter::with_openapi(ApiDoc::openapi()).nest("/api/v1", api_v1()).split_for_parts();
    // After the routes are in: a modifier of `ApiDoc` would run before there are paths.
    utoipa::Modify::modify(&CommonErrors, &mut document);
    (router, document)
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
