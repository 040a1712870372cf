//! The `/passport/streams` endpoints of SPEC §11. Each extracts, calls one domain
//! function, maps the result.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::extract::{AuthUser, ClientMeta, Json};
use super::response::{ok, Envelope};
use crate::error::ApiError;
use crate::state::AppState;
use crate::stream_auth::IssuedTicket;
use crate::streams::{Actor, CreatedStream, StreamView};

type Answer<T> = Result<Envelope<T>, ApiError>;

#[derive(Deserialize)]
pub struct NewStream {
    name: String,
    #[serde(default)]
    access: Option<String>,
}

#[derive(Deserialize)]
pub struct AccessBody {
    access: String,
}

pub async fn create(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ClientMeta(meta): ClientMeta,
    Json(body): Json<NewStream>,
) -> Answer<CreatedStream> {
    let access = body.access.as_deref();
    let created = state.streams.create(&who, &body.name, access, &meta).await?;
    Ok(Envelope(StatusCode::CREATED, created))
}

pub async fn list(State(state): State<AppState>, AuthUser(who): AuthUser) -> Answer<serde_json::Value> {
    let streams = state.streams.list_own(&who).await?;
    Ok(ok(json!({ "streams": streams })))
}

pub async fn set_access(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    Path(name): Path<String>,
    Json(body): Json<AccessBody>,
) -> Answer<StreamView> {
    Ok(ok(state.streams.set_access(&who, &name, &body.access).await?))
}

pub async fn rotate_key(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ClientMeta(meta): ClientMeta,
    Path(name): Path<String>,
) -> Answer<serde_json::Value> {
    let key = state.streams.rotate(Actor::Owner(&who), &name, &meta).await?;
    Ok(ok(json!({ "key": key })))
}

pub async fn ticket(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    Path(name): Path<String>,
) -> Answer<IssuedTicket> {
    Ok(ok(state.stream_auth.ticket(&who, &name).await?))
}

pub async fn delete(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ClientMeta(meta): ClientMeta,
    Path(name): Path<String>,
) -> Answer<()> {
    state.streams.delete(Actor::Owner(&who), &name, &meta).await?;
    Ok(ok(()))
}
