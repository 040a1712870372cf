//! Liveness and readiness.

use axum::extract::State;
use serde_json::json;

use crate::app::AppState;
use crate::error::{ok, ApiError, Envelope};

/// Liveness: answers while the process serves; no I/O.
pub async fn healthz() -> Envelope<serde_json::Value> {
    ok(json!({ "status": "ok" }))
}

/// Readiness: 200 only when both stores answer.
pub async fn readyz(State(state): State<AppState>) -> Result<Envelope<serde_json::Value>, ApiError> {
    state.users.ping().await?;
    state.sessions.ping().await?;
    Ok(ok(json!({ "users": "ok", "sessions": "ok" })))
}
