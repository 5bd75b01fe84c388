//! User accounts (administrators, within their jurisdiction). Account details are personal
//! data: reads need `X-Purpose` and are audited.

use axum::extract::State;
use axum::http::StatusCode;
use fangkong_core::auth::Role;
use fangkong_core::auth::account::{NewUser, User};
use fangkong_engine::UserChange;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::rfc3339;
use crate::auth::UserSession;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path};

/// A user account as the API shows it (never the password hash or second-factor secret).
#[derive(Serialize, ToSchema, Debug)]
pub struct UserBody {
    pub id: i64,
    #[schema(example = "zhang.wei")]
    pub username: String,
    #[schema(example = "张伟")]
    pub display_name: String,
    #[schema(example = "dispatcher")]
    pub role: &'static str,
    /// Code of the jurisdiction node the user is bound to.
    #[schema(example = "440304")]
    pub jurisdiction: String,
    pub disabled: bool,
    /// RFC 3339, while the account is locked.
    pub locked_until: Option<String>,
    pub second_factor: bool,
    pub password_changed_at: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&User> for UserBody {
    fn from(user: &User) -> UserBody {
        UserBody {
            id: user.id,
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            role: user.role.as_str(),
            jurisdiction: user.jurisdiction.clone(),
            disabled: user.disabled,
            locked_until: user.login.locked_until.map(rfc3339),
            second_factor: user.has_second_factor(),
            password_changed_at: rfc3339(user.password_changed_at),
            created_at: rfc3339(user.created_at),
            updated_at: rfc3339(user.updated_at),
        }
    }
}

pub(crate) fn parse_role(role: &str) -> Result<Role, ApiError> {
    Role::parse(role).ok_or_else(|| {
        let known: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("role {role:?} is not one of {}", known.join(", ")),
        )
    })
}

/// The users in your jurisdiction.
#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    security(("bearer" = [])),
    params(("X-Purpose" = String, Header, description = "why you read these accounts (audited)")),
    responses(
        (status = 200, description = "users, by username", body = [UserBody]),
        (status = 400, description = "purpose_required", body = ErrorBody),
        (status = 403, description = "forbidden", body = ErrorBody),
    )
)]
pub async fn list_users(State(state): State<AppState>, session: UserSession) -> Result<Json<Vec<UserBody>>, ApiError> {
    let users = state.engine.users(&session.caller).await?;
    Ok(Json(users.iter().map(UserBody::from).collect()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub username: String,
    pub display_name: String,
    #[schema(example = "dispatcher")]
    pub role: String,
    #[schema(example = "440304")]
    pub jurisdiction: String,
    /// The initial password (at least 12 characters, not common).
    pub password: String,
}

/// Create a user in your jurisdiction.
#[utoipa::path(
    post,
    path = "/users",
    tag = "users",
    security(("bearer" = [])),
    request_body = CreateUserRequest,
    responses(
        (status = 201, description = "created", body = UserBody),
        (status = 403, description = "forbidden or outside_jurisdiction", body = ErrorBody),
        (status = 409, description = "username taken", body = ErrorBody),
        (status = 422, description = "invalid_field or weak_password", body = ErrorBody),
    )
)]
pub async fn create_user(
    State(state): State<AppState>,
    session: UserSession,
    Json(request): Json<CreateUserRequest>,
) -> Result<(StatusCode, Json<UserBody>), ApiError> {
    let new = NewUser {
        username: request.username,
        display_name: request.display_name,
        role: parse_role(&request.role)?,
        jurisdiction: request.jurisdiction,
    };
    let user = state.engine.create_user(&session.caller, new, &request.password).await?;
    Ok((StatusCode::CREATED, Json(UserBody::from(&user))))
}

/// One user.
#[utoipa::path(
    get,
    path = "/users/{username}",
    tag = "users",
    security(("bearer" = [])),
    params(("username" = String, Path), ("X-Purpose" = String, Header, description = "why you read this account (audited)")),
    responses(
        (status = 200, description = "the user", body = UserBody),
        (status = 403, description = "forbidden or outside_jurisdiction", body = ErrorBody),
        (status = 404, description = "user_not_found (only for an administrator of the whole city; for others an absent account is outside_jurisdiction, like one in another district)", body = ErrorBody),
    )
)]
pub async fn get_user(
    State(state): State<AppState>,
    session: UserSession,
    Path(username): Path<String>,
) -> Result<Json<UserBody>, ApiError> {
    Ok(Json(UserBody::from(&state.engine.user(&session.caller, &username).await?)))
}

#[derive(Deserialize, ToSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    pub display_name: Option<String>,
    pub role: Option<String>,
    pub jurisdiction: Option<String>,
    pub disabled: Option<bool>,
    /// Remove the user's second factor (lost phone).
    #[serde(default)]
    pub clear_second_factor: bool,
}

/// Change a user's name, role, jurisdiction or status. A change of role, jurisdiction or a
/// disable ends their sessions.
#[utoipa::path(
    patch,
    path = "/users/{username}",
    tag = "users",
    security(("bearer" = [])),
    params(("username" = String, Path)),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, description = "the user as changed", body = UserBody),
        (status = 403, description = "forbidden or outside_jurisdiction", body = ErrorBody),
        (status = 404, description = "user_not_found (only for an administrator of the whole city; for others an absent account is outside_jurisdiction, like one in another district)", body = ErrorBody),
        (status = 409, description = "own_account: you may not disable, demote or move your own account", body = ErrorBody),
    )
)]
pub async fn update_user(
    State(state): State<AppState>,
    session: UserSession,
    Path(username): Path<String>,
    Json(request): Json<UpdateUserRequest>,
) -> Result<Json<UserBody>, ApiError> {
    let change = UserChange {
        display_name: request.display_name,
        role: request.role.as_deref().map(parse_role).transpose()?,
        jurisdiction: request.jurisdiction,
        disabled: request.disabled,
        clear_second_factor: request.clear_second_factor,
    };
    Ok(Json(UserBody::from(&state.engine.update_user(&session.caller, &username, change).await?)))
}

/// Lock an account until it is unlocked; its sessions end.
#[utoipa::path(
    post,
    path = "/users/{username}/lock",
    tag = "users",
    security(("bearer" = [])),
    params(("username" = String, Path)),
    responses(
        (status = 200, description = "locked", body = UserBody),
        (status = 403, description = "forbidden or outside_jurisdiction", body = ErrorBody),
        (status = 409, description = "own_account: you may not lock your own account", body = ErrorBody),
    )
)]
pub async fn lock_user(
    State(state): State<AppState>,
    session: UserSession,
    Path(username): Path<String>,
) -> Result<Json<UserBody>, ApiError> {
    Ok(Json(UserBody::from(&state.engine.lock_user(&session.caller, &username).await?)))
}

/// Unlock an account (administrative lock or after failed sign-ins).
#[utoipa::path(
    post,
    path = "/users/{username}/unlock",
    tag = "users",
    security(("bearer" = [])),
    params(("username" = String, Path)),
    responses((status = 200, description = "unlocked", body = UserBody), (status = 403, description = "forbidden or outside_jurisdiction", body = ErrorBody))
)]
pub async fn unlock_user(
    State(state): State<AppState>,
    session: UserSession,
    Path(username): Path<String>,
) -> Result<Json<UserBody>, ApiError> {
    Ok(Json(UserBody::from(&state.engine.unlock_user(&session.caller, &username).await?)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    pub password: String,
}

/// Set a new password for a user; their sessions end.
#[utoipa::path(
    post,
    path = "/users/{username}/password",
    tag = "users",
    security(("bearer" = [])),
    params(("username" = String, Path)),
    request_body = ResetPasswordRequest,
    responses(
        (status = 204, description = "reset"),
        (status = 403, description = "forbidden or outside_jurisdiction", body = ErrorBody),
        (status = 422, description = "weak_password", body = ErrorBody),
    )
)]
pub async fn reset_password(
    State(state): State<AppState>,
    session: UserSession,
    Path(username): Path<String>,
    Json(request): Json<ResetPasswordRequest>,
) -> Result<StatusCode, ApiError> {
    state.engine.reset_password(&session.caller, &username, &request.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Holds a secret: never printed, not even in debug output.
impl std::fmt::Debug for CreateUserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CreateUserRequest { <redacted> }")
    }
}

/// Holds a secret: never printed, not even in debug output.
impl std::fmt::Debug for ResetPasswordRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetPasswordRequest { <redacted> }")
    }
}
