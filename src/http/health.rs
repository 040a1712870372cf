//! Liveness and readiness.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::openapi::{Failure, Success};
use super::response::{ok, Envelope};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::redis_topology::Topology;

#[derive(Serialize, ToSchema)]
pub struct Live {
    #[schema(example = "ok")]
    pub status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    #[schema(example = "ok")]
    pub users: &'static str,
    /// `ok`, or `degraded` when Redis answers but some users are refused: slots
    /// no primary serves, or a primary with no replica to confirm a logout on.
    #[schema(example = "ok")]
    pub sessions: &'static str,
    /// What Passport sees of its Redis: `mode` (`node`, `sentinel`, `cluster`),
    /// `durable_revocations`, `session_cache_current` (where sessions are kept in
    /// memory: whether they may be used now), `primaries` (`address`, `replicas`,
    /// and `slots` on a Cluster), `slots_served` and `failing` nodes. Absent on the
    /// embedded store.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub redis: Option<Topology>,
}

/// Liveness: answers while the process serves; no I/O.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process serves", body = Success<Live>))
)]
pub async fn healthz() -> Envelope<Live> {
    ok(Live { status: "ok" })
}

/// Readiness: 200 only when both stores answer. A degraded Redis still answers
/// 200: taking every Passport out of rotation would refuse every user, where only
/// the users on a failed shard are refused, request by request.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Both stores answer", body = Success<Ready>),
        (status = 503, description = "`store_unavailable`: a store does not answer", body = Failure),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Envelope<Ready>, ApiError> {
    state.stores.users.ping().await?;
    let redis = state.stores.sessions.topology().await?;
    Ok(ok(Ready {
        users: "ok",
        sessions: if redis.as_ref().is_some_and(Topology::degraded) {
            "degraded"
        } else {
            "ok"
        },
        redis,
    }))
}
