//! Liveness and readiness.

use axum::extract::State;
use serde_json::json;

use super::response::{ok, Envelope};
use crate::error::ApiError;
use crate::state::AppState;

/// Liveness: answers while the process serves; no I/O.
pub async fn healthz() -> Envelope<serde_json::Value> {
    ok(json!({ "status": "ok" }))
}

/// Readiness: 200 only when both stores answer.
pub async fn readyz(State(state): State<AppState>) -> Result<Envelope<serde_json::Value>, ApiError> {
    state.stores.users.ping().await?;
    state.stores.sessions.ping().await?;
    Ok(ok(json!({ "users": "ok", "sessions": "ok" })))
}
