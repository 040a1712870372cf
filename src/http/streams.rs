//! The `/passport/streams` endpoints of SPEC §11. Each extracts, calls one domain
//! function, maps the result.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{AuthUser, ClientMeta, Json};
use super::openapi::{Failure, Null, Success};
use super::response::{ok, Envelope};
use crate::error::ApiError;
use crate::state::AppState;
use crate::stream_auth::IssuedTicket;
use crate::streams::{Actor, CreatedStream, StreamView};

type Answer<T> = Result<Envelope<T>, ApiError>;

#[derive(Deserialize, ToSchema)]
pub struct NewStream {
    /// Unique on the platform.
    #[schema(example = "my-show", pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    name: String,
    /// `login` (the default: players need a play ticket) or `public`.
    #[serde(default)]
    #[schema(example = "login", pattern = "^(login|public)$")]
    access: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct AccessBody {
    #[schema(example = "public", pattern = "^(login|public)$")]
    access: String,
}

#[derive(Serialize, ToSchema)]
pub struct StreamList {
    pub streams: Vec<StreamView>,
}

#[derive(Serialize, ToSchema)]
pub struct NewKey {
    /// The stream's new key, shown only here; the old one stops working at once.
    pub key: String,
}

#[utoipa::path(
    post, path = "/passport/streams", tag = "streams",
    request_body = NewStream,
    security(("jwt" = []), ("bearer" = [])),
    responses(
        (status = 201, description = "Created; its key is shown only here", body = Success<CreatedStream>),
        (status = 400, description = "`invalid_params`: a bad name or access", body = Failure),
        (status = 403, description = "`forbidden`: the caller does not have the streamer role", body = Failure),
        (status = 409, description = "`stream_taken`", body = Failure),
    )
)]
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

#[utoipa::path(
    get, path = "/passport/streams", tag = "streams",
    security(("jwt" = []), ("bearer" = [])),
    responses((status = 200, description = "The caller's own streams", body = Success<StreamList>))
)]
pub async fn list(State(state): State<AppState>, AuthUser(who): AuthUser) -> Answer<StreamList> {
    let streams = state.streams.list_own(&who).await?;
    Ok(ok(StreamList { streams }))
}

#[utoipa::path(
    patch, path = "/passport/streams/{name}", tag = "streams",
    params(("name" = String, Path, description = "The stream's name")),
    request_body = AccessBody,
    security(("jwt" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The stream, with its new access", body = Success<StreamView>),
        (status = 400, description = "`invalid_params`: access is neither `login` nor `public`", body = Failure),
        (status = 404, description = "`not_found`: no such stream, or another user's", body = Failure),
    )
)]
pub async fn set_access(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    Path(name): Path<String>,
    Json(body): Json<AccessBody>,
) -> Answer<StreamView> {
    Ok(ok(state.streams.set_access(&who, &name, &body.access).await?))
}

#[utoipa::path(
    post, path = "/passport/streams/{name}/key", tag = "streams",
    params(("name" = String, Path, description = "The stream's name")),
    security(("jwt" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "A new key", body = Success<NewKey>),
        (status = 404, description = "`not_found`: no such stream, or another user's", body = Failure),
    )
)]
pub async fn rotate_key(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ClientMeta(meta): ClientMeta,
    Path(name): Path<String>,
) -> Answer<NewKey> {
    let key = state.streams.rotate(Actor::Owner(&who), &name, &meta).await?;
    Ok(ok(NewKey { key }))
}

#[utoipa::path(
    post, path = "/passport/streams/{name}/ticket", tag = "streams",
    params(("name" = String, Path, description = "The stream's name")),
    security(("jwt" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "A play ticket for the caller's session and this stream, for the player's URL", body = Success<IssuedTicket>),
        (status = 404, description = "`not_found`: no such stream", body = Failure),
    )
)]
pub async fn ticket(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    Path(name): Path<String>,
) -> Answer<IssuedTicket> {
    Ok(ok(state.stream_auth.ticket(&who, &name).await?))
}

#[utoipa::path(
    delete, path = "/passport/streams/{name}", tag = "streams",
    params(("name" = String, Path, description = "The stream's name")),
    security(("jwt" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Deleted", body = Success<Null>),
        (status = 404, description = "`not_found`: no such stream, or another user's", body = Failure),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ClientMeta(meta): ClientMeta,
    Path(name): Path<String>,
) -> Answer<()> {
    state.streams.delete(Actor::Owner(&who), &name, &meta).await?;
    Ok(ok(()))
}
