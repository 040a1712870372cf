//! `GET /metrics` (SPEC §13) and the layer that times every request for it.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::Extension;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// Prometheus's text exposition format.
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Records each request under its route's pattern (`/passport/streams/{name}`, never
/// the path itself: one series per route, and no names or ids in labels).
pub async fn record(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let method = method_label(req.method());
    let resp = next.run(req).await;
    crate::observe::request(
        route.as_deref().unwrap_or("unmatched"),
        method,
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
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
pub async fn metrics(State(state): State<AppState>, peer: Option<Extension<ConnectInfo<SocketAddr>>>) -> Response {
    let Some(handle) = &state.metrics else {
        return ApiError::NotFound.into_response();
    };
    // An IPv4 client of a dual-stack listener arrives as ::ffff:a.b.c.d.
    let peer = peer.map(|Extension(ConnectInfo(addr))| addr.ip().to_canonical());
    if !peer.is_some_and(|ip| state.config.metrics_allow.iter().any(|net| net.contains(&ip))) {
        return ApiError::Forbidden.into_response();
    }
    if let Some(live) = state.stores.sessions.live_sessions() {
        crate::observe::sessions_live(live);
    }
    ([(header::CONTENT_TYPE, EXPOSITION)], handle.render()).into_response()
}
