//! The `/passport/*` endpoints of SPEC §3. Each extracts, calls one domain
//! function, maps the result.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::extract::{AuthUser, ClientMeta, Json};
use crate::app::AppState;
use crate::error::{ok, ApiError, Envelope};
use crate::profiles::ProfileJson;
use crate::refresh::{self, Refreshed};
use crate::users::LoginOk;
use crate::{sessions, users};

type Answer<T> = Result<Envelope<T>, ApiError>;

// Request bodies hold passwords: no Debug, so they cannot be logged by accident.
#[derive(Deserialize)]
pub struct Credentials {
    mobile: String,
    password: String,
}

#[derive(Deserialize)]
pub struct LoginBody {
    mobile: String,
    password: String,
    #[serde(default)]
    device: Option<String>,
}

#[derive(Deserialize)]
pub struct RefreshBody {
    refresh_token: String,
}

#[derive(Deserialize)]
pub struct PasswordBody {
    old_password: String,
    new_password: String,
}

pub async fn register(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Json(body): Json<Credentials>,
) -> Answer<serde_json::Value> {
    let user_id = users::register(&state, &body.mobile, body.password, &meta).await?;
    Ok(Envelope(StatusCode::CREATED, json!({ "user_id": user_id })))
}

pub async fn login(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Json(body): Json<LoginBody>,
) -> Answer<LoginOk> {
    Ok(ok(users::login(
        &state,
        &body.mobile,
        body.password,
        body.device,
        &meta,
    )
    .await?))
}

pub async fn refresh(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Json(body): Json<RefreshBody>,
) -> Answer<Refreshed> {
    Ok(ok(refresh::refresh(&state, &body.refresh_token, &meta).await?))
}

pub async fn logout(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ClientMeta(meta): ClientMeta,
) -> Answer<()> {
    sessions::logout(&state, &who, &meta).await?;
    Ok(ok(()))
}

pub async fn logout_all(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ClientMeta(meta): ClientMeta,
) -> Answer<serde_json::Value> {
    let revoked = sessions::logout_all(&state, &who, &meta).await?;
    Ok(ok(json!({ "revoked": revoked })))
}

pub async fn me(State(state): State<AppState>, AuthUser(who): AuthUser) -> Answer<ProfileJson> {
    Ok(ok(users::profile(&state, &who).await?))
}

pub async fn list_sessions(State(state): State<AppState>, AuthUser(who): AuthUser) -> Answer<serde_json::Value> {
    let list = sessions::list(&state, &who).await?;
    Ok(ok(json!({ "sessions": list })))
}

pub async fn delete_session(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ClientMeta(meta): ClientMeta,
    Path(session_id): Path<String>,
) -> Answer<()> {
    sessions::revoke_own(&state, &who, &session_id, &meta).await?;
    Ok(ok(()))
}

pub async fn change_password(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ClientMeta(meta): ClientMeta,
    Json(body): Json<PasswordBody>,
) -> Answer<()> {
    users::change_password(&state, &who, body.old_password, body.new_password, &meta).await?;
    Ok(ok(()))
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound
}
