//! Liveness and readiness.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::openapi::{Failure, Success};
use super::response::{ok, Envelope};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct Live {
    #[schema(example = "ok")]
    pub status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    #[schema(example = "ok")]
    pub users: &'static str,
    #[schema(example = "ok")]
    pub sessions: &'static str,
}

/// Liveness: answers while the process serves; no I/O.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process serves", body = Success<Live>))
)]
pub async fn healthz() -> Envelope<Live> {
    ok(Live { status: "ok" })
}

/// Readiness: 200 only when both stores answer.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Both stores answer", body = Success<Ready>),
        (status = 503, description = "`store_unavailable`: a store does not answer", body = Failure),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Envelope<Ready>, ApiError> {
    state.stores.users.ping().await?;
    state.stores.sessions.ping().await?;
    Ok(ok(Ready {
        users: "ok",
        sessions: "ok",
    }))
}
