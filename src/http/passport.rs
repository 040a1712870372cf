//! The `/passport/*` endpoints of SPEC §3. Each extracts, calls one domain
//! function, maps the result.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{AuthUser, ClientMeta, Json};
use super::openapi::{Failure, Null, Success};
use super::response::{ok, Envelope};
use crate::error::ApiError;
use crate::profiles::{Profile, ProfileJson};
use crate::refresh::Refreshed;
use crate::sessions::SessionView;
use crate::state::AppState;
use crate::users::LoginOk;

type Answer<T> = Result<Envelope<T>, ApiError>;

// Request bodies hold passwords: no Debug, so they cannot be logged by accident.
#[derive(Deserialize, ToSchema)]
pub struct Credentials {
    /// A mobile number: with `+` and its country code, or national in the
    /// default region (`PASSPORT_DEFAULT_REGION`); valid as libphonenumber has it.
    #[schema(example = "+86 138 0000 0001", format = "mobile")]
    mobile: String,
    /// At least `PASSPORT_PASSWORD_MIN_LENGTH` characters, not a common password
    /// nor one that contains the mobile number (else 400 `weak_password`).
    #[schema(example = "correct horse battery staple", format = Password)]
    password: String,
}

#[derive(Deserialize, ToSchema)]
pub struct LoginBody {
    #[schema(example = "+86 138 0000 0001", format = "mobile")]
    mobile: String,
    #[schema(example = "correct horse battery staple")]
    password: String,
    /// A name for this device, shown in the session list: at most 128 characters,
    /// none of them a control character.
    #[serde(default)]
    #[schema(example = "laptop", max_length = 128, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    device: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct RefreshBody {
    refresh_token: String,
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordBody {
    old_password: String,
    /// As at registration (else 400 `weak_password`).
    #[schema(format = Password)]
    new_password: String,
}

#[derive(Serialize, ToSchema)]
pub struct Registered {
    pub user_id: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Revoked {
    /// How many sessions were ended.
    pub revoked: usize,
}

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    /// Oldest first.
    pub sessions: Vec<SessionView>,
}

#[utoipa::path(
    post, path = "/passport/register", tag = "accounts",
    request_body = Credentials,
    responses(
        (status = 201, description = "Registered", body = Success<Registered>),
        (status = 400, description = "`invalid_params` (not a valid mobile number) or `weak_password`", body = Failure),
        (status = 409, description = "`mobile_taken`", body = Failure),
        (status = 429, description = "`rate_limited`: too many registrations from this address", body = Failure,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Json(body): Json<Credentials>,
) -> Answer<Registered> {
    let user_id = state.accounts.register(&body.mobile, body.password, &meta).await?;
    Ok(Envelope(StatusCode::CREATED, Registered { user_id }))
}

#[utoipa::path(
    post, path = "/passport/login", tag = "accounts",
    request_body = LoginBody,
    responses(
        (status = 200, description = "Logged in: an access token and a refresh token", body = Success<LoginOk>),
        (status = 400, description = "`invalid_params` (not a valid mobile number, a bad device name)", body = Failure),
        (status = 401, description = "`invalid_credentials`: the same for an unknown mobile and a wrong password", body = Failure),
        (status = 403, description = "`account_disabled`, or `session_limit_reached` when overflow is `reject`", body = Failure),
        (status = 429, description = "`rate_limited`: too many attempts for this account or from this address", body = Failure,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Json(body): Json<LoginBody>,
) -> Answer<LoginOk> {
    let outcome = state
        .accounts
        .login(&body.mobile, body.password, body.device, &meta)
        .await;
    crate::observe::login(match &outcome {
        Ok(_) => "ok",
        Err(e) => e.code(),
    });
    Ok(ok(outcome?))
}

#[utoipa::path(
    post, path = "/passport/refresh", tag = "sessions",
    request_body = RefreshBody,
    responses(
        (status = 200, description = "A new access token and a new refresh token (each refresh token is single use)", body = Success<Refreshed>),
        (status = 401, description = "`invalid_refresh_token`, or `refresh_token_reused` (the session is ended)", body = Failure),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Json(body): Json<RefreshBody>,
) -> Answer<Refreshed> {
    Ok(ok(state.refresher.refresh(&body.refresh_token, &meta).await?))
}

#[utoipa::path(
    post, path = "/passport/logout", tag = "sessions",
    security(("jwt" = []), ("bearer" = [])),
    responses((status = 200, description = "The caller's session is ended", body = Success<Null>))
)]
pub async fn logout(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ClientMeta(meta): ClientMeta,
) -> Answer<()> {
    state.sessions.logout(&who, &meta).await?;
    Ok(ok(()))
}

#[utoipa::path(
    post, path = "/passport/logout_all", tag = "sessions",
    security(("jwt" = []), ("bearer" = [])),
    responses((status = 200, description = "Every session of the user is ended", body = Success<Revoked>))
)]
pub async fn logout_all(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ClientMeta(meta): ClientMeta,
) -> Answer<Revoked> {
    let revoked = state.sessions.logout_all(&who, &meta).await?;
    Ok(ok(Revoked { revoked }))
}

#[utoipa::path(
    get, path = "/passport/me", tag = "accounts",
    security(("jwt" = []), ("bearer" = [])),
    responses((status = 200, description = "The caller's profile", body = Success<Profile>))
)]
pub async fn me(State(state): State<AppState>, AuthUser(who): AuthUser) -> Answer<ProfileJson> {
    Ok(ok(state.accounts.profile(&who).await?))
}

#[utoipa::path(
    get, path = "/passport/sessions", tag = "sessions",
    security(("jwt" = []), ("bearer" = [])),
    responses((status = 200, description = "The caller's live sessions", body = Success<SessionList>))
)]
pub async fn list_sessions(State(state): State<AppState>, AuthUser(who): AuthUser) -> Answer<SessionList> {
    let sessions = state.sessions.list(&who).await?;
    Ok(ok(SessionList { sessions }))
}

#[utoipa::path(
    delete, path = "/passport/sessions/{session_id}", tag = "sessions",
    params(("session_id" = String, Path, description = "A session of the caller's, as the session list gives it")),
    security(("jwt" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "That session is ended", body = Success<Null>),
        (status = 404, description = "`not_found`: no live session of the caller's by that id", body = Failure),
    )
)]
pub async fn delete_session(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ClientMeta(meta): ClientMeta,
    Path(session_id): Path<String>,
) -> Answer<()> {
    state.sessions.revoke_own(&who, &session_id, &meta).await?;
    Ok(ok(()))
}

#[utoipa::path(
    post, path = "/passport/password", tag = "accounts",
    request_body = PasswordBody,
    security(("jwt" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Changed; every session of the user is ended", body = Success<Null>),
        (status = 400, description = "`weak_password`, or `invalid_params`", body = Failure),
        (status = 403, description = "`wrong_password`: the old password is not right", body = Failure),
    )
)]
pub async fn change_password(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ClientMeta(meta): ClientMeta,
    Json(body): Json<PasswordBody>,
) -> Answer<()> {
    state
        .accounts
        .change_password(&who, body.old_password, body.new_password, &meta)
        .await?;
    Ok(ok(()))
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound
}
