//! Every route of the server, in one table.
//!
//! `/api/v1/…` routes are registered with `utoipa_axum::routes!`, which adds each handler's
//! `#[utoipa::path]` to the OpenAPI document as it adds the route: a route cannot exist
//! without its documentation, nor documentation without its route.

use axum::Router;
use axum::http::StatusCode;
use axum::response::Redirect;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::api::{codes, system};
use crate::error::ApiError;
use crate::{AppState, health, metrics};

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
        (name = "codes", description = "Code tables (代码表): incident types, sources, dispositions"),
    ),
    components(schemas(crate::error::ErrorBody))
)]
struct ApiDoc;

/// The `/api/v1` routes with their OpenAPI document.
pub(crate) fn api_v1() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(system::get_system_info))
        .routes(routes!(codes::list_codes))
        .routes(routes!(codes::get_code))
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
        .route("/", get(|| async { Redirect::temporary("/api/docs/") }))
        // The interactive API page, served from assets compiled into the binary (works offline).
        .merge(SwaggerUi::new("/api/docs").url("/api/v1/openapi.json", document))
}

/// The answer for a path no route matches.
pub(crate) async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route for {}", uri.path()))
}
