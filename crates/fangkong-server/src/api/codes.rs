//! Code tables (代码表): incident types, sources and dispositions.

use axum::extract::State;
use fangkong_core::codes::{CodeEntry, CodeKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use axum::http::StatusCode;
use fangkong_engine::{CodeChange, NewCode};

use crate::AppState;
use crate::api::rfc3339;
use crate::auth::UserSession;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path, Query};

/// One entry of a code table.
#[derive(Serialize, ToSchema, Debug)]
pub struct CodeBody {
    /// `incident_type`, `incident_source` or `disposition`.
    #[schema(example = "incident_type")]
    pub kind: &'static str,
    #[schema(example = "010301")]
    pub code: String,
    /// For hierarchical incident types, the code one level up (`010301` → `010300`).
    #[schema(example = "010300")]
    pub parent: Option<String>,
    #[schema(example = "抢劫")]
    pub name_zh: String,
    #[schema(example = "Robbery")]
    pub name_en: String,
    /// Default priority of an incident of this type, 1 (most urgent) to 4.
    #[schema(example = 1, minimum = 1, maximum = 4)]
    pub priority: Option<u8>,
    /// Retired codes stay readable but may not be used for new records.
    pub active: bool,
    /// RFC 3339, UTC.
    pub updated_at: String,
}

impl From<&CodeEntry> for CodeBody {
    fn from(entry: &CodeEntry) -> CodeBody {
        CodeBody {
            kind: entry.kind.as_str(),
            code: entry.code.clone(),
            parent: entry.parent_code(),
            name_zh: entry.name_zh.clone(),
            name_en: entry.name_en.clone(),
            priority: entry.priority,
            active: entry.active,
            updated_at: rfc3339(entry.updated_at),
        }
    }
}

#[derive(Deserialize, IntoParams, Debug)]
#[into_params(parameter_in = Query)]
pub struct ListCodesQuery {
    /// Only active (`true`) or only retired (`false`) codes; both when absent.
    pub active: Option<bool>,
}

fn parse_kind(kind: &str) -> Result<CodeKind, ApiError> {
    CodeKind::parse(kind).ok_or_else(|| {
        let known: Vec<_> = CodeKind::ALL.iter().map(|k| k.as_str()).collect();
        ApiError::not_found("unknown_code_kind", format!("no code table {kind:?}; the tables are {}", known.join(", ")))
    })
}

/// The entries of one code table, in code order.
#[utoipa::path(
    get,
    path = "/codes/{kind}",
    tag = "codes",
    security(("bearer" = [])),
    params(("kind" = String, Path, description = "incident_type, incident_source or disposition"), ListCodesQuery),
    responses((status = 200, description = "the table's entries", body = [CodeBody]), (status = 404, description = "no such code table", body = ErrorBody))
)]
pub async fn list_codes(
    State(state): State<AppState>,
    session: UserSession,
    Path(kind): Path<String>,
    Query(query): Query<ListCodesQuery>,
) -> Result<Json<Vec<CodeBody>>, ApiError> {
    let kind = parse_kind(&kind)?;
    let entries = state.engine.codes(&session.caller, kind).await?;
    Ok(Json(
        entries.iter().filter(|e| query.active.is_none_or(|active| e.active == active)).map(CodeBody::from).collect(),
    ))
}

/// One code.
#[utoipa::path(
    get,
    path = "/codes/{kind}/{code}",
    tag = "codes",
    security(("bearer" = [])),
    params(
        ("kind" = String, Path, description = "incident_type, incident_source or disposition"),
        ("code" = String, Path, description = "the code, e.g. 010301")
    ),
    responses((status = 200, description = "the entry", body = CodeBody), (status = 404, description = "no such table or code", body = ErrorBody))
)]
pub async fn get_code(
    State(state): State<AppState>,
    session: UserSession,
    Path((kind, code)): Path<(String, String)>,
) -> Result<Json<CodeBody>, ApiError> {
    let kind = parse_kind(&kind)?;
    let entry = state
        .engine
        .code(&session.caller, kind, &code)
        .await?
        .ok_or_else(|| ApiError::not_found("code_not_found", format!("{kind} {code} does not exist")))?;
    Ok(Json(CodeBody::from(&entry)))
}

#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct CreateCodeRequest {
    #[schema(example = "010303")]
    pub code: String,
    #[schema(example = "入户抢劫")]
    pub name_zh: String,
    #[schema(example = "Home-invasion robbery")]
    pub name_en: String,
    /// Required for incident types (1 = most urgent … 4); absent for other tables.
    pub priority: Option<u8>,
}

/// Add a code (administrators).
#[utoipa::path(
    post,
    path = "/codes/{kind}",
    tag = "codes",
    security(("bearer" = [])),
    params(("kind" = String, Path, description = "incident_type, incident_source or disposition")),
    request_body = CreateCodeRequest,
    responses(
        (status = 201, description = "created", body = CodeBody),
        (status = 403, description = "forbidden", body = ErrorBody),
        (status = 409, description = "code_exists", body = ErrorBody),
        (status = 422, description = "malformed_code, invalid_field, parent_code_missing or parent_code_retired", body = ErrorBody),
    )
)]
pub async fn create_code(
    State(state): State<AppState>,
    session: UserSession,
    Path(kind): Path<String>,
    Json(request): Json<CreateCodeRequest>,
) -> Result<(StatusCode, Json<CodeBody>), ApiError> {
    let kind = parse_kind(&kind)?;
    let new = NewCode {
        kind,
        code: request.code,
        name_zh: request.name_zh,
        name_en: request.name_en,
        priority: request.priority,
    };
    let entry = state.engine.create_code(&session.caller, new).await?;
    Ok((StatusCode::CREATED, Json(CodeBody::from(&entry))))
}

#[derive(Deserialize, ToSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateCodeRequest {
    pub name_zh: Option<String>,
    pub name_en: Option<String>,
    pub priority: Option<u8>,
    /// `false` retires the code: old records keep it, new ones cannot use it.
    pub active: Option<bool>,
}

/// Change or retire a code (administrators). Codes are never deleted.
#[utoipa::path(
    patch,
    path = "/codes/{kind}/{code}",
    tag = "codes",
    security(("bearer" = [])),
    params(("kind" = String, Path), ("code" = String, Path)),
    request_body = UpdateCodeRequest,
    responses(
        (status = 200, description = "the code as changed", body = CodeBody),
        (status = 403, description = "forbidden", body = ErrorBody),
        (status = 404, description = "code_not_found", body = ErrorBody),
        (status = 422, description = "invalid_field or active_child_codes", body = ErrorBody),
    )
)]
pub async fn update_code(
    State(state): State<AppState>,
    session: UserSession,
    Path((kind, code)): Path<(String, String)>,
    Json(request): Json<UpdateCodeRequest>,
) -> Result<Json<CodeBody>, ApiError> {
    let kind = parse_kind(&kind)?;
    let change = CodeChange {
        name_zh: request.name_zh,
        name_en: request.name_en,
        priority: request.priority,
        active: request.active,
    };
    Ok(Json(CodeBody::from(&state.engine.update_code(&session.caller, kind, &code, change).await?)))
}
