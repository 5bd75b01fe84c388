//! Code tables (代码表): incident types, sources and dispositions.

use axum::extract::State;
use fangkong_core::codes::{CodeEntry, CodeKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::rfc3339;
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
    params(("kind" = String, Path, description = "incident_type, incident_source or disposition"), ListCodesQuery),
    responses((status = 200, description = "the table's entries", body = [CodeBody]), (status = 404, description = "no such code table", body = ErrorBody))
)]
pub async fn list_codes(
    State(state): State<AppState>,
    Path(kind): Path<String>,
    Query(query): Query<ListCodesQuery>,
) -> Result<Json<Vec<CodeBody>>, ApiError> {
    let kind = parse_kind(&kind)?;
    let entries = state.engine.codes(kind);
    Ok(Json(
        entries.iter().filter(|e| query.active.is_none_or(|active| e.active == active)).map(CodeBody::from).collect(),
    ))
}

/// One code.
#[utoipa::path(
    get,
    path = "/codes/{kind}/{code}",
    tag = "codes",
    params(
        ("kind" = String, Path, description = "incident_type, incident_source or disposition"),
        ("code" = String, Path, description = "the code, e.g. 010301")
    ),
    responses((status = 200, description = "the entry", body = CodeBody), (status = 404, description = "no such table or code", body = ErrorBody))
)]
pub async fn get_code(
    State(state): State<AppState>,
    Path((kind, code)): Path<(String, String)>,
) -> Result<Json<CodeBody>, ApiError> {
    let kind = parse_kind(&kind)?;
    let entry = state
        .engine
        .code(kind, &code)
        .ok_or_else(|| ApiError::not_found("code_not_found", format!("{kind} {code} does not exist")))?;
    Ok(Json(CodeBody::from(&entry)))
}
