//! The jurisdiction tree (辖区): nodes, their boundaries as GeoJSON, the lookup of a point's
//! chain, and boundary imports.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use fangkong_core::jurisdiction::{Jurisdiction, JurisdictionKind};
use fangkong_engine::boundaries::DEFAULT_TOLERANCE_M2;
use fangkong_engine::{BoundaryImport, Location, Placed};
use fangkong_geo::{Area, Crs, LatLon};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::UserSession;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path, Query};

/// The largest boundary file the API takes (the full city's grids are ~15 MB of GeoJSON).
pub(crate) const IMPORT_LIMIT_BYTES: usize = 64 * 1024 * 1024;

#[derive(Serialize, ToSchema, Debug)]
pub struct JurisdictionBody {
    #[schema(example = "440304")]
    pub code: String,
    /// `city`, `district`, `subdistrict`, `community`, `grid`, `police_station`, `police_district`.
    pub kind: &'static str,
    pub parent: Option<String>,
    #[schema(example = "福田区")]
    pub name_zh: String,
    #[schema(example = "Futian District")]
    pub name_en: Option<String>,
}

impl From<&Jurisdiction> for JurisdictionBody {
    fn from(node: &Jurisdiction) -> JurisdictionBody {
        JurisdictionBody {
            code: node.code.clone(),
            kind: node.kind.as_str(),
            parent: node.parent.clone(),
            name_zh: node.name_zh.clone(),
            name_en: node.name_en.clone(),
        }
    }
}

/// Every node of the tree, in code order.
#[utoipa::path(
    get,
    path = "/jurisdictions",
    tag = "jurisdictions",
    security(("bearer" = [])),
    responses((status = 200, description = "the tree", body = [JurisdictionBody]), (status = 401, description = "not signed in", body = ErrorBody))
)]
pub async fn list_jurisdictions(
    State(state): State<AppState>,
    session: UserSession,
) -> Result<Json<Vec<JurisdictionBody>>, ApiError> {
    Ok(Json(state.engine.jurisdictions(&session.caller).await?.iter().map(JurisdictionBody::from).collect()))
}

fn parse_crs(crs: Option<&str>) -> Result<Crs, ApiError> {
    match crs {
        None => Ok(Crs::Wgs84),
        Some(text) => Crs::parse(text)
            .ok_or_else(|| ApiError::bad_request("invalid_crs", format!("crs {text:?}: use wgs84 or gcj02"))),
    }
}

fn parse_kind(kind: &str) -> Result<JurisdictionKind, ApiError> {
    JurisdictionKind::parse(kind).ok_or_else(|| {
        let known: Vec<_> = JurisdictionKind::ALL.iter().map(|k| k.as_str()).collect();
        ApiError::bad_request("invalid_level", format!("level {kind:?}: use one of {}", known.join(", ")))
    })
}

// ---- lookup -------------------------------------------------------------------------------

#[derive(Deserialize, IntoParams, Debug)]
#[into_params(parameter_in = Query)]
pub struct LookupQuery {
    /// Latitude in degrees.
    #[param(example = 22.5431)]
    pub lat: f64,
    /// Longitude in degrees.
    #[param(example = 114.0579)]
    pub lon: f64,
    /// The datum of `lat`/`lon`: `wgs84` (default, GPS) or `gcj02` (AMap, Tencent maps).
    pub crs: Option<String>,
}

/// A node named in a chain.
#[derive(Serialize, ToSchema, Debug)]
pub struct NodeRef {
    #[schema(example = "440304")]
    pub code: String,
    #[schema(example = "福田区")]
    pub name_zh: String,
    #[schema(example = "Futian District")]
    pub name_en: Option<String>,
}

/// The node holding the point at each level of both hierarchies (`null` where the tree has
/// no shaped node there).
#[derive(Serialize, ToSchema, Debug, Default)]
pub struct ChainBody {
    pub city: Option<NodeRef>,
    pub district: Option<NodeRef>,
    pub subdistrict: Option<NodeRef>,
    pub community: Option<NodeRef>,
    pub grid: Option<NodeRef>,
    pub police_station: Option<NodeRef>,
    pub police_district: Option<NodeRef>,
}

#[derive(Serialize, ToSchema, Debug)]
pub struct H3Body {
    /// The H3 index in its usual 15-hex-digit form.
    #[schema(example = "89411c0e4b3ffff")]
    pub cell: String,
    #[schema(example = 9)]
    pub resolution: u8,
}

#[derive(Serialize, ToSchema, Debug)]
pub struct LocationBody {
    /// The point in WGS84 (converted when it was given in GCJ-02).
    pub lat: f64,
    pub lon: f64,
    pub chain: ChainBody,
    pub h3: H3Body,
}

fn location_body(state: &AppState, location: &Location) -> LocationBody {
    let node = |kind: JurisdictionKind| {
        let code = location.chain.get(kind)?;
        let node = state.engine.jurisdiction(code)?;
        Some(NodeRef { code: node.code, name_zh: node.name_zh, name_en: node.name_en })
    };
    use JurisdictionKind::*;
    LocationBody {
        lat: location.point.lat(),
        lon: location.point.lon(),
        chain: ChainBody {
            city: node(City),
            district: node(District),
            subdistrict: node(Subdistrict),
            community: node(Community),
            grid: node(Grid),
            police_station: node(PoliceStation),
            police_district: node(PoliceDistrict),
        },
        h3: H3Body { cell: format!("{:x}", location.h3_cell), resolution: location.h3_resolution },
    }
}

/// Which district, sub-district, community and grid — and which police station and police
/// district — a point lies in, and its H3 cell. Exact at borders: a point on a shared
/// border belongs to exactly one side.
#[utoipa::path(
    get,
    path = "/jurisdictions/lookup",
    tag = "jurisdictions",
    security(("bearer" = [])),
    params(LookupQuery),
    responses(
        (status = 200, description = "the point's chain", body = LocationBody),
        (status = 400, description = "bad coordinates or crs (`invalid_coordinates`, `invalid_crs`)", body = ErrorBody),
        (status = 404, description = "the point is outside the city (`outside_city`)", body = ErrorBody),
    )
)]
pub async fn lookup(
    State(state): State<AppState>,
    session: UserSession,
    Query(query): Query<LookupQuery>,
) -> Result<Json<LocationBody>, ApiError> {
    let point = match parse_crs(query.crs.as_deref())? {
        Crs::Wgs84 => LatLon::new(query.lat, query.lon),
        Crs::Gcj02 => LatLon::new(query.lat, query.lon).and_then(|_| LatLon::from_gcj02(query.lat, query.lon)),
    }
    .map_err(|e| ApiError::bad_request("invalid_coordinates", e.to_string()))?;
    let location = state.engine.locate(&session.caller, point).await?;
    Ok(Json(location_body(&state, &location)))
}

// ---- GeoJSON out --------------------------------------------------------------------------

#[derive(Deserialize, IntoParams, Debug)]
#[into_params(parameter_in = Query)]
pub struct ShapeQuery {
    /// The datum of the coordinates returned: `wgs84` (default) or `gcj02`.
    pub crs: Option<String>,
}

#[derive(Deserialize, IntoParams, Debug)]
#[into_params(parameter_in = Query)]
pub struct FeaturesQuery {
    /// Only nodes of this level (`district`, `grid`, `police_station`, …).
    pub kind: Option<String>,
    /// Only this node and the nodes below it.
    #[param(example = "440304")]
    pub within: Option<String>,
    /// The datum of the coordinates returned: `wgs84` (default) or `gcj02`.
    pub crs: Option<String>,
}

fn geometry(area: &Area, crs: Crs) -> Value {
    let convert = |ring: Vec<[f64; 2]>| -> Vec<[f64; 2]> { ring.into_iter().map(|p| crs.from_wgs84(p)).collect() };
    let polygons: Vec<Vec<Vec<[f64; 2]>>> =
        area.to_rings().into_iter().map(|rings| rings.into_iter().map(convert).collect()).collect();
    match polygons.len() {
        1 => json!({"type": "Polygon", "coordinates": polygons.into_iter().next()}),
        _ => json!({"type": "MultiPolygon", "coordinates": polygons}),
    }
}

fn feature(placed: &Placed, crs: Crs) -> Value {
    let node = &placed.node;
    json!({
        "type": "Feature",
        "id": node.code,
        "properties": {
            "code": node.code,
            "kind": node.kind.as_str(),
            "parent": node.parent,
            "name_zh": node.name_zh,
            "name_en": node.name_en,
            "area_km2": placed.shape.as_ref().map(|a| (a.area_m2() / 10_000.0).round() / 100.0),
        },
        "geometry": placed.shape.as_ref().map(|a| geometry(a, crs)),
    })
}

/// GeoJSON, with its media type (RFC 7946).
struct GeoJson(Value);

impl IntoResponse for GeoJson {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.0).expect("a JSON value serialises");
        ([(CONTENT_TYPE, "application/geo+json")], body).into_response()
    }
}

/// The boundaries of many nodes as a GeoJSON FeatureCollection (RFC 7946: WGS84 unless
/// `crs=gcj02` is asked for). A node without a boundary has a `null` geometry.
#[utoipa::path(
    get,
    path = "/jurisdictions/features",
    tag = "jurisdictions",
    security(("bearer" = [])),
    params(FeaturesQuery),
    responses(
        (status = 200, description = "a GeoJSON FeatureCollection", content_type = "application/geo+json", body = Object),
        (status = 400, description = "unknown kind or crs", body = ErrorBody),
        (status = 404, description = "`within` names no node", body = ErrorBody),
    )
)]
pub async fn list_features(
    State(state): State<AppState>,
    session: UserSession,
    Query(query): Query<FeaturesQuery>,
) -> Result<Response, ApiError> {
    let crs = parse_crs(query.crs.as_deref())?;
    let kind = query.kind.as_deref().map(parse_kind).transpose()?;
    let placed = state.engine.jurisdiction_shapes(&session.caller, kind, query.within.as_deref()).await?;
    let features: Vec<Value> = placed.iter().map(|p| feature(p, crs)).collect();
    Ok(GeoJson(json!({"type": "FeatureCollection", "features": features})).into_response())
}

/// One node and its boundary as a GeoJSON Feature.
#[utoipa::path(
    get,
    path = "/jurisdictions/{code}",
    tag = "jurisdictions",
    security(("bearer" = [])),
    params(("code" = String, Path, description = "the node's code"), ShapeQuery),
    responses(
        (status = 200, description = "a GeoJSON Feature", content_type = "application/geo+json", body = Object),
        (status = 404, description = "no such node (`jurisdiction_not_found`)", body = ErrorBody),
    )
)]
pub async fn get_feature(
    State(state): State<AppState>,
    session: UserSession,
    Path(code): Path<String>,
    Query(query): Query<ShapeQuery>,
) -> Result<Response, ApiError> {
    let crs = parse_crs(query.crs.as_deref())?;
    let placed = state.engine.jurisdiction_shape(&session.caller, &code).await?;
    Ok(GeoJson(feature(&placed, crs)).into_response())
}

// ---- import -------------------------------------------------------------------------------

#[derive(Deserialize, IntoParams, Debug)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// The level of every feature in the file.
    #[param(example = "subdistrict")]
    pub level: String,
    /// The datum of the file: `wgs84` (default) or `gcj02`.
    pub crs: Option<String>,
    /// The parent of new nodes that do not name one (`properties.parent`); otherwise the
    /// node of the level above holding the feature.
    pub parent: Option<String>,
    /// Allowed overlap between siblings and overhang beyond the parent, in m² (default 1000).
    pub tolerance_m2: Option<f64>,
}

#[derive(Serialize, ToSchema, Debug)]
pub struct ImportBody {
    pub level: &'static str,
    /// New nodes.
    pub added: usize,
    /// Existing nodes whose shape and names were replaced.
    pub updated: usize,
    pub vertices: usize,
}

/// Imports a boundary file (a GeoJSON FeatureCollection of Polygon/MultiPolygon features)
/// at one level. Every feature is checked — ring closure and winding, self-intersections,
/// holes, children outside their parent, overlapping siblings — and the file is stored
/// whole or not at all; a refusal lists every fault with its feature in `error.details`.
#[utoipa::path(
    post,
    path = "/jurisdictions/import",
    operation_id = "import_boundaries",
    tag = "jurisdictions",
    security(("bearer" = [])),
    params(ImportQuery),
    request_body(content = Object, content_type = "application/geo+json", description = "a GeoJSON FeatureCollection"),
    responses(
        (status = 200, description = "imported", body = ImportBody),
        (status = 400, description = "bad level, crs or tolerance", body = ErrorBody),
        (status = 403, description = "not an administrator over the parent", body = ErrorBody),
        (status = 413, description = "the file is larger than 64 MiB", body = ErrorBody),
        (status = 422, description = "the file was refused (`invalid_boundaries`); nothing was stored", body = ErrorBody),
    )
)]
pub async fn import(
    State(state): State<AppState>,
    session: UserSession,
    Query(query): Query<ImportQuery>,
    body: Bytes,
) -> Result<Json<ImportBody>, ApiError> {
    let mut options = BoundaryImport::new(parse_kind(&query.level)?, parse_crs(query.crs.as_deref())?);
    options.parent = query.parent;
    options.tolerance_m2 = match query.tolerance_m2 {
        None => DEFAULT_TOLERANCE_M2,
        Some(t) if t.is_finite() && t >= 0.0 => t,
        Some(t) => return Err(ApiError::bad_request("invalid_tolerance", format!("tolerance_m2 {t} must be ≥ 0"))),
    };
    let summary = state.engine.import_boundaries(&session.caller, &body, &options).await?;
    Ok(Json(ImportBody {
        level: summary.level.as_str(),
        added: summary.added,
        updated: summary.updated,
        vertices: summary.vertices,
    }))
}
