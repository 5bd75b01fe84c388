//! The audit trail, for auditors: read it (newest first) and verify it. Nobody can change
//! it through the API.

use axum::extract::State;
use fangkong_core::audit::{AuditRecord, Outcome};
use fangkong_engine::AuditQuery;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::{parse_rfc3339, rfc3339};
use crate::auth::UserSession;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Query};

#[derive(Serialize, ToSchema, Debug)]
pub struct AuditRecordBody {
    pub seq: i64,
    pub at: String,
    /// `user`, `device`, `system` or `anonymous`.
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub actor_name: String,
    pub actor_role: Option<String>,
    #[schema(example = "user.read")]
    pub action: String,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    /// `allowed`, `denied` or `failed`.
    pub outcome: &'static str,
    pub ip: Option<String>,
    pub purpose: Option<String>,
    pub detail: Option<String>,
    /// Hex SHA-256 HMAC chaining this record to the previous one.
    pub hash: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl From<&AuditRecord> for AuditRecordBody {
    fn from(record: &AuditRecord) -> AuditRecordBody {
        let e = &record.entry;
        AuditRecordBody {
            seq: record.seq,
            at: rfc3339(e.at),
            actor_kind: e.actor_kind.clone(),
            actor_id: e.actor_id.clone(),
            actor_name: e.actor_name.clone(),
            actor_role: e.actor_role.clone(),
            action: e.action.clone(),
            target_kind: e.target_kind.clone(),
            target_id: e.target_id.clone(),
            outcome: e.outcome.as_str(),
            ip: e.ip.clone(),
            purpose: e.purpose.clone(),
            detail: e.detail.clone(),
            hash: hex(&record.hash),
        }
    }
}

#[derive(Deserialize, IntoParams, Debug)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Records before this sequence number (the cursor for the next page).
    pub before_seq: Option<i64>,
    /// RFC 3339; records at or after.
    pub from: Option<String>,
    /// RFC 3339; records before.
    pub to: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// `allowed`, `denied` or `failed`.
    pub outcome: Option<String>,
    pub target: Option<String>,
    /// 1–1000, default 100.
    pub limit: Option<u32>,
}

/// Audit records, newest first (auditors only; the read is itself recorded).
#[utoipa::path(
    get,
    path = "/audit",
    tag = "audit",
    security(("bearer" = [])),
    params(AuditParams),
    responses(
        (status = 200, description = "records, newest first", body = [AuditRecordBody]),
        (status = 400, description = "invalid_query", body = ErrorBody),
        (status = 403, description = "forbidden", body = ErrorBody),
    )
)]
pub async fn list_audit(
    State(state): State<AppState>,
    session: UserSession,
    Query(params): Query<AuditParams>,
) -> Result<Json<Vec<AuditRecordBody>>, ApiError> {
    let outcome = params
        .outcome
        .as_deref()
        .map(|text| {
            Outcome::parse(text)
                .ok_or_else(|| ApiError::bad_request("invalid_query", "outcome is one of allowed, denied, failed"))
        })
        .transpose()?;
    let query = AuditQuery {
        before_seq: params.before_seq,
        from: params.from.as_deref().map(|t| parse_rfc3339("from", t)).transpose()?,
        to: params.to.as_deref().map(|t| parse_rfc3339("to", t)).transpose()?,
        actor_name: params.actor,
        action: params.action,
        outcome,
        target_id: params.target,
        limit: params.limit.unwrap_or(100),
    };
    let records = state.engine.audit_records(&session.caller, &query).await?;
    Ok(Json(records.iter().map(AuditRecordBody::from).collect()))
}

#[derive(Serialize, ToSchema, Debug)]
pub struct VerificationBody {
    /// `true` when every record from the seal (or the first) to the head verifies.
    pub intact: bool,
    pub checked: u64,
    pub head_seq: i64,
    /// Hex; keep it somewhere else to prove later that nothing was removed from the end.
    pub head_hash: String,
    pub sealed_through: Option<i64>,
    /// The first broken record, when not intact.
    pub broken_seq: Option<i64>,
    pub problem: Option<String>,
}

/// Verify the whole chain (auditors only).
#[utoipa::path(
    get,
    path = "/audit/verify",
    tag = "audit",
    security(("bearer" = [])),
    responses((status = 200, description = "the verification", body = VerificationBody), (status = 403, description = "forbidden", body = ErrorBody))
)]
pub async fn verify_audit(
    State(state): State<AppState>,
    session: UserSession,
) -> Result<Json<VerificationBody>, ApiError> {
    let result = state.engine.verify_audit(&session.caller).await?;
    Ok(Json(VerificationBody {
        intact: result.broken.is_none(),
        checked: result.checked,
        head_seq: result.head_seq,
        head_hash: hex(&result.head_hash),
        sealed_through: result.sealed_through,
        broken_seq: result.broken.as_ref().and_then(|b| b.record()),
        problem: result.broken.map(|b| b.to_string()),
    }))
}
