//! The jurisdiction tree (names and codes; geometry comes with the city's boundaries).

use axum::extract::State;
use fangkong_core::jurisdiction::Jurisdiction;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::UserSession;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Json;

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
