//! The `/passport/*` endpoints of SPEC §3. Each extracts, calls one domain
//! function, maps the result.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::extract::{AuthUser, ClientMeta, Json};
use super::response::{ok, Envelope};
use crate::error::ApiError;
use crate::profiles::ProfileJson;
use crate::refresh::Refreshed;
use crate::state::AppState;
use crate::users::LoginOk;

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
    let user_id = state.accounts.register(&body.mobile, body.password, &meta).await?;
    Ok(Envelope(StatusCode::CREATED, json!({ "user_id": user_id })))
}

pub async fn login(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Json(body): Json<LoginBody>,
) -> Answer<LoginOk> {
    let outcome = state.accounts.login(&body.mobile, body.password, body.device, &meta).await;
    crate::observe::login(match &outcome {
        Ok(_) => "ok",
        Err(e) => e.code(),
    });
    Ok(ok(outcome?))
}

pub async fn refresh(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Json(body): Json<RefreshBody>,
) -> Answer<Refreshed> {
    Ok(ok(state.refresher.refresh(&body.refresh_token, &meta).await?))
}

pub async fn logout(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ClientMeta(meta): ClientMeta,
) -> Answer<()> {
    state.sessions.logout(&who, &meta).await?;
    Ok(ok(()))
}

pub async fn logout_all(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ClientMeta(meta): ClientMeta,
) -> Answer<serde_json::Value> {
    let revoked = state.sessions.logout_all(&who, &meta).await?;
    Ok(ok(json!({ "revoked": revoked })))
}

pub async fn me(State(state): State<AppState>, AuthUser(who): AuthUser) -> Answer<ProfileJson> {
    Ok(ok(state.accounts.profile(&who).await?))
}

pub async fn list_sessions(State(state): State<AppState>, AuthUser(who): AuthUser) -> Answer<serde_json::Value> {
    let list = state.sessions.list(&who).await?;
    Ok(ok(json!({ "sessions": list })))
}

pub async fn delete_session(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ClientMeta(meta): ClientMeta,
    Path(session_id): Path<String>,
) -> Answer<()> {
    state.sessions.revoke_own(&who, &session_id, &meta).await?;
    Ok(ok(()))
}

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
