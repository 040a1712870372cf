//! `GET /metrics` (SPEC §13) and the timing of every request for it.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};

use super::extract::peer_in;
use crate::error::ApiError;
use crate::state::AppState;

/// The OpenMetrics text format, which Prometheus reads.
const EXPOSITION: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Records a request under its route's pattern (`/passport/streams/{name}`, never
/// the path itself: one series per route, and no names or ids in labels). Called
/// by the context middleware, which every request passes after routing: a layer of
/// its own would cost a boxed service and future per request.
pub fn record(route: Option<&MatchedPath>, method: &Method, status: u16, started: Instant) {
    let route = route.map_or("unmatched", MatchedPath::as_str);
    crate::observe::request(route, method_label(method), status, started.elapsed());
}

/// Methods outside the usual ones are one series, not one per spelling.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The metrics, for addresses in `metrics_allow`; 404 when metrics are off.
pub async fn metrics(State(state): State<AppState>, req: Request) -> Response {
    let Some(metrics) = state.metrics else {
        return ApiError::NotFound.into_response();
    };
    if !peer_in(req.extensions(), &state.config.metrics_allow) {
        return ApiError::Forbidden.into_response();
    }
    if let Some(live) = state.stores.sessions.live_sessions() {
        crate::observe::sessions_live(live);
    }
    ([(header::CONTENT_TYPE, EXPOSITION)], metrics.render()).into_response()
}
