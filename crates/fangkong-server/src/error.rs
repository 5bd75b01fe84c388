//! The one error type of the API, and the one shape every failure takes on the wire:
//!
//! ```json
//! {"error": {"code": "snake_case_code", "message": "human text"}}
//! ```
//!
//! Handlers return `Result<_, ApiError>` and use `?`; `From` conversions decide status and
//! code in one place. Internal errors are logged with their details and sent to the client
//! only as "internal error". A middleware ([`crate::middleware::shape_errors`]) gives the
//! same shape to failures that never pass through a handler (unknown route, wrong method,
//! body too large, a panic).

use std::borrow::Cow;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use fangkong_core::auth::Denial;
use fangkong_core::codes::CodeError;
use fangkong_core::jurisdiction::JurisdictionError;
use fangkong_engine::{EngineError, StoreError};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Cow<'static, str>,
    pub message: String,
    /// Headers the answer needs (`Retry-After`, `WWW-Authenticate`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Structured detail for errors with many parts (each refused feature of a file).
    pub details: Option<Vec<ErrorItem>>,
}

/// Marks a response whose body already has the error shape.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShapedError;

/// The body of every error response.
#[derive(Serialize, ToSchema, Debug)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema, Debug)]
pub struct ErrorDetail {
    /// Stable, machine-readable, snake_case. Clients branch on this.
    #[schema(example = "code_not_found")]
    pub code: String,
    /// For people; may change between versions.
    #[schema(example = "incident_type 010399 does not exist")]
    pub message: String,
    /// Present when one request failed in several places (e.g. every refused feature of a
    /// boundary file), each naming where and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<ErrorItem>>,
}

/// One part of a failure with many parts.
#[derive(Serialize, ToSchema, Debug, Clone)]
pub struct ErrorItem {
    /// Where: `feature 3 (440304 福田区)`, or `file`.
    #[schema(example = "feature 3 (440304 福田区)")]
    pub at: String,
    #[schema(example = "ring 0.exterior is not closed (its first and last positions differ)")]
    pub reason: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> ApiError {
        ApiError { status, code: code.into(), message: message.into(), headers: Vec::new(), details: None }
    }

    pub fn with_header(mut self, name: HeaderName, value: impl ToString) -> ApiError {
        if let Ok(value) = HeaderValue::from_str(&value.to_string()) {
            self.headers.push((name, value));
        }
        self
    }

    /// 401 with the challenge a client needs to know how to authenticate.
    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
            .with_header(WWW_AUTHENTICATE, "Bearer realm=\"fangkong\"")
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    /// `422 invalid_field` naming the field, with the reason also as the one detail (the
    /// console shows details at their fields).
    pub fn invalid_field(field: &str, reason: impl Into<String>) -> ApiError {
        let reason = reason.into();
        ApiError {
            details: Some(vec![ErrorItem { at: field.to_string(), reason: reason.clone() }]),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", format!("{field}: {reason}"))
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// Logs `error` in full and returns a 500 that says nothing about it.
    pub fn internal(error: &dyn std::error::Error) -> ApiError {
        tracing::error!(error = %error, debug = ?error, "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; it has been logged")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail { code: self.code.into_owned(), message: self.message, details: self.details },
        };
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().extend(self.headers);
        response.extensions_mut().insert(ShapedError);
        response
    }
}

impl ApiError {
    /// The body of this error as bytes, for the one place that writes an answer without a
    /// response type: a connection hyper refused before the router (`listener.rs`).
    pub(crate) fn body_bytes(self) -> Vec<u8> {
        let body = ErrorBody {
            error: ErrorDetail { code: self.code.into_owned(), message: self.message, details: self.details },
        };
        serde_json::to_vec(&body).expect("an error body always serialises")
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::Conflict { .. } | StoreError::Stale { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string())
            }
            StoreError::NotFound { .. } => ApiError::not_found("not_found", error.to_string()),
            StoreError::Rejected { field, ref message, .. } => ApiError {
                details: Some(vec![ErrorItem { at: field.to_string(), reason: message.clone() }]),
                ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", error.to_string())
            },
            StoreError::Closed => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "the server is shutting down; retry")
            }
            StoreError::Busy => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", error.to_string())
                .with_header(RETRY_AFTER, 1),
            StoreError::Unavailable(_) => {
                tracing::error!(%error, "store unavailable");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", "the database is unavailable")
            }
            StoreError::InvalidUrl(_) | StoreError::Migration(_) | StoreError::Corrupt(_) | StoreError::Backend(_) => {
                ApiError::internal(&error)
            }
        }
    }
}

impl From<CodeError> for ApiError {
    fn from(error: CodeError) -> ApiError {
        let (status, code) = match &error {
            CodeError::Duplicate { .. } => (StatusCode::CONFLICT, "code_exists"),
            CodeError::Unknown { .. } => (StatusCode::NOT_FOUND, "code_not_found"),
            CodeError::Malformed { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "malformed_code"),
            CodeError::BadField { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            CodeError::MissingParent { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "parent_code_missing"),
            CodeError::RetiredParent { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "parent_code_retired"),
            CodeError::ActiveChild { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "active_child_codes"),
        };
        ApiError::new(status, code, error.to_string())
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        let message = error.to_string();
        let unprocessable = |code| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message.clone());
        match error {
            EngineError::Code(error) => error.into(),
            EngineError::Store(error) => error.into(),
            EngineError::Denied(Denial::Jurisdiction) => {
                ApiError::new(StatusCode::FORBIDDEN, "outside_jurisdiction", message)
            }
            // Not a matter of rights: the caller may do this to anyone but themselves.
            EngineError::Denied(Denial::OwnAccount) => ApiError::new(StatusCode::CONFLICT, "own_account", message),
            EngineError::Denied(_) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", message),
            EngineError::Unauthenticated => ApiError::unauthenticated(message),
            EngineError::SessionExpired => ApiError::new(StatusCode::UNAUTHORIZED, "session_expired", message)
                .with_header(WWW_AUTHENTICATE, "Bearer realm=\"fangkong\", error=\"invalid_token\""),
            EngineError::InvalidCredentials => ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", message),
            EngineError::AccountLocked { retry_after_secs } => {
                ApiError::new(StatusCode::LOCKED, "account_locked", message).with_header(RETRY_AFTER, retry_after_secs)
            }
            EngineError::TotpRequired => ApiError::new(StatusCode::UNAUTHORIZED, "totp_required", message),
            EngineError::InvalidTotp => unprocessable("invalid_totp_code"),
            EngineError::DeviceRevoked => ApiError::new(StatusCode::UNAUTHORIZED, "device_revoked", message),
            EngineError::PurposeRequired => {
                ApiError::bad_request("purpose_required", format!("{message}: send the X-Purpose header"))
            }
            EngineError::Password(_) => unprocessable("weak_password"),
            EngineError::Invalid { field, message: reason } => ApiError {
                details: Some(vec![ErrorItem { at: field.to_string(), reason }]),
                ..unprocessable("invalid_field")
            },
            EngineError::Account(_) => unprocessable("invalid_field"),
            EngineError::ImportRefused { errors, .. } => ApiError {
                details: Some(
                    errors
                        .into_iter()
                        .map(|e| ErrorItem { at: format!("row {}, {}", e.row, e.field), reason: e.message })
                        .collect(),
                ),
                ..unprocessable("import_refused")
            },
            EngineError::Jurisdiction(JurisdictionError::Unknown(_)) => {
                ApiError::not_found("jurisdiction_not_found", message)
            }
            EngineError::Jurisdiction(_) => unprocessable("invalid_jurisdiction"),
            EngineError::NotFound { entity, .. } => ApiError::not_found(not_found_code(entity), message),
            EngineError::Boundaries(faults) => ApiError {
                details: Some(faults.into_iter().map(|f| ErrorItem { at: f.feature, reason: f.reason }).collect()),
                ..unprocessable("invalid_boundaries")
            },
            EngineError::OutsideCity { .. } => ApiError::not_found("outside_city", message),
            EngineError::UnknownDevice { .. } => ApiError::new(StatusCode::FORBIDDEN, "unknown_device", message),
            EngineError::Overloaded => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message).with_header(RETRY_AFTER, 1)
            }
            EngineError::ReportBusy => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "reports_busy", message).with_header(RETRY_AFTER, 5)
            }
            EngineError::ReportTimeout { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "report_timeout", message)
            }
            // Nobody reads this answer (the client went away); it still has the one shape.
            EngineError::ReportAbandoned => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "report_abandoned", message),
            EngineError::Dispatch(fangkong_core::dispatch::DispatchError::NoDisposition) => {
                unprocessable("disposition_required")
            }
            EngineError::Dispatch(_) => ApiError::new(StatusCode::CONFLICT, "invalid_transition", message),
            EngineError::IdempotencyKeyReused { .. } => unprocessable("idempotency_key_reused"),
            EngineError::Defaults(_) | EngineError::WrongKey { .. } => ApiError::internal(&error),
        }
    }
}

fn not_found_code(entity: &str) -> &'static str {
    match entity {
        "user" => "user_not_found",
        "device" => "device_not_found",
        "jurisdiction" => "jurisdiction_not_found",
        "incident" | "open incident" => "incident_not_found",
        "unit" => "unit_not_found",
        _ => "not_found",
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        let code = match &rejection {
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            JsonRejection::JsonSyntaxError(_) => "invalid_json",
            JsonRejection::JsonDataError(_) => "invalid_body",
            _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            _ => "invalid_body",
        };
        ApiError::new(rejection.status(), code, rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::bad_request("invalid_query", rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::bad_request("invalid_path", rejection.body_text())
    }
}

/// The code used for a failure that did not come from a handler, by status.
pub(crate) fn code_for_status(status: StatusCode) -> Cow<'static, str> {
    match status {
        StatusCode::BAD_REQUEST => "bad_request".into(),
        StatusCode::NOT_FOUND => "not_found".into(),
        StatusCode::URI_TOO_LONG => "uri_too_long".into(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large".into(),
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed".into(),
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large".into(),
        StatusCode::REQUEST_TIMEOUT => "request_timeout".into(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type".into(),
        StatusCode::SERVICE_UNAVAILABLE => "unavailable".into(),
        StatusCode::INTERNAL_SERVER_ERROR => "internal".into(),
        other => format!("http_{}", other.as_u16()).into(),
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    /// A store whose writer's queue stayed full answers 503 with a retry time, in the one
    /// error shape.
    #[tokio::test]
    async fn a_busy_store_is_a_503_with_retry_after() {
        let response = ApiError::from(EngineError::Store(StoreError::Busy)).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(RETRY_AFTER).unwrap(), "1");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "overloaded");
    }
}
