//! Signing in and out, and the signed-in user's own account.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::rfc3339;
use crate::api::users::UserBody;
use crate::auth::{RequestMeta, UserSession};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Json;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// The 6-digit code from the authenticator app, for accounts with a second factor.
    pub totp: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`. Shown once; the server keeps only a hash.
    pub token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// RFC 3339: the session ends then at the latest.
    pub expires_at: String,
    /// The session also ends after this many seconds without use.
    pub idle_timeout_secs: i64,
    pub user: UserBody,
}

/// Sign in with username and password (and a one-time code if the account has one).
///
/// Wrong username and wrong password answer the same (`invalid_credentials`). After 5
/// consecutive failures the account is locked for 10 minutes (`account_locked`, with
/// `Retry-After`), whether or not the username exists.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "signed in", body = LoginResponse),
        (status = 401, description = "invalid_credentials or totp_required", body = ErrorBody),
        (status = 423, description = "account_locked", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    meta: RequestMeta,
    Json(request): Json<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let success =
        state.engine.login(&request.username, &request.password, request.totp.as_deref(), meta.ip.as_deref()).await?;
    Ok(Json(LoginResponse {
        token: success.token,
        token_type: "Bearer",
        expires_at: rfc3339(success.expires_at),
        idle_timeout_secs: success.idle_timeout_secs,
        user: UserBody::from(&success.user),
    }))
}

/// Sign out: the token stops working at once.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 204, description = "signed out"), (status = 401, description = "not signed in", body = ErrorBody))
)]
pub async fn logout(State(state): State<AppState>, session: UserSession) -> Result<StatusCode, ApiError> {
    state.engine.logout(&session.caller, &session.token).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema, Debug)]
pub struct MeResponse {
    pub user: UserBody,
    /// What this user's role may do (the console shows only these screens).
    #[schema(example = json!(["manage_own_account", "read_codes"]))]
    pub permissions: Vec<&'static str>,
    /// RFC 3339: when the session ends if not used again.
    pub session_ends_at: String,
}

/// The signed-in user, their permissions and their session.
#[utoipa::path(
    get,
    path = "/auth/me",
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, description = "the signed-in user", body = MeResponse), (status = 401, description = "not signed in", body = ErrorBody))
)]
pub async fn me(State(state): State<AppState>, session: UserSession) -> Result<Json<MeResponse>, ApiError> {
    let user = state.engine.me(&session.caller)?;
    let permissions = state.engine.permissions(&session.caller)?.into_iter().map(|action| action.as_str()).collect();
    Ok(Json(MeResponse { user: UserBody::from(&user), permissions, session_ends_at: rfc3339(session.session.ends_at) }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    /// At least 12 characters, not a common password, not containing the username.
    pub new_password: String,
}

/// Change your own password. All your sessions end, this one too: sign in again.
#[utoipa::path(
    post,
    path = "/auth/password",
    tag = "auth",
    security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "changed"),
        (status = 401, description = "wrong current password", body = ErrorBody),
        (status = 422, description = "weak_password", body = ErrorBody),
    )
)]
pub async fn change_password(
    State(state): State<AppState>,
    session: UserSession,
    Json(request): Json<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    state.engine.change_own_password(&session.caller, &request.current_password, &request.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct TotpSetupResponse {
    /// Base32 secret to type into an authenticator app.
    pub secret: String,
    /// `otpauth://` URI (show as a QR code).
    pub uri: String,
}

/// Start setting up a second factor (TOTP, RFC 6238). Confirm it with a first code.
#[utoipa::path(
    post,
    path = "/auth/totp",
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, description = "secret to enrol", body = TotpSetupResponse), (status = 422, description = "already set up", body = ErrorBody))
)]
pub async fn begin_totp(
    State(state): State<AppState>,
    session: UserSession,
) -> Result<Json<TotpSetupResponse>, ApiError> {
    let setup = state.engine.begin_totp(&session.caller).await?;
    Ok(Json(TotpSetupResponse { secret: setup.secret_base32, uri: setup.uri }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirmRequest {
    #[schema(example = "492039")]
    pub code: String,
}

/// Confirm the second factor with a code from the app; sign-in needs a code from then on.
#[utoipa::path(
    post,
    path = "/auth/totp/confirm",
    tag = "auth",
    security(("bearer" = [])),
    request_body = TotpConfirmRequest,
    responses((status = 204, description = "enabled"), (status = 422, description = "invalid_totp_code", body = ErrorBody))
)]
pub async fn confirm_totp(
    State(state): State<AppState>,
    session: UserSession,
    Json(request): Json<TotpConfirmRequest>,
) -> Result<StatusCode, ApiError> {
    state.engine.confirm_totp(&session.caller, &request.code).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Holds a secret: never printed, not even in debug output.
impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginRequest { <redacted> }")
    }
}

/// Holds a secret: never printed, not even in debug output.
impl std::fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginResponse { <redacted> }")
    }
}

/// Holds a secret: never printed, not even in debug output.
impl std::fmt::Debug for ChangePasswordRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChangePasswordRequest { <redacted> }")
    }
}

/// Holds a secret: never printed, not even in debug output.
impl std::fmt::Debug for TotpSetupResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSetupResponse { <redacted> }")
    }
}

/// Holds a secret: never printed, not even in debug output.
impl std::fmt::Debug for TotpConfirmRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpConfirmRequest { <redacted> }")
    }
}
