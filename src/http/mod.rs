//! The HTTP surface: routes and the layers around them.

pub mod connections;
pub mod context;
pub mod extract;
pub mod forward_auth;
pub mod health;
pub mod hooks;
pub mod metrics;
pub mod passport;
pub mod request_id;
pub mod response;
pub mod streams;

use axum::extract::DefaultBodyLimit;
use axum::routing::{any, delete, get, patch, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use axum::http::HeaderName;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tower::util::MapRequestLayer;

use crate::state::AppState;

/// Largest request body accepted (SPEC §2: 413 `payload_too_large` beyond it).
pub const BODY_LIMIT: usize = 16 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/passport/register", post(passport::register))
        .route("/passport/login", post(passport::login))
        .route("/passport/refresh", post(passport::refresh))
        .route("/passport/logout", post(passport::logout))
        .route("/passport/logout_all", post(passport::logout_all))
        .route("/passport/me", get(passport::me))
        .route("/passport/sessions", get(passport::list_sessions))
        .route("/passport/sessions/{session_id}", delete(passport::delete_session))
        .route("/passport/password", post(passport::change_password))
        .route("/passport/streams", post(streams::create).get(streams::list))
        .route(
            "/passport/streams/{name}",
            patch(streams::set_access).delete(streams::delete),
        )
        .route("/passport/streams/{name}/key", post(streams::rotate_key))
        .route("/passport/streams/{name}/ticket", post(streams::ticket))
        .route("/hooks/nginx-rtmp", post(hooks::nginx_rtmp))
        .route("/hooks/srs", post(hooks::srs))
        .route("/hooks/mediamtx", post(hooks::mediamtx))
        .route("/auth/verify", any(forward_auth::verify))
        .route("/auth/verify/{*rest}", any(forward_auth::verify_with_path))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .fallback(passport::not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // A panic becomes a bare 500, which the context layer turns into the envelope.
        .layer(CatchPanicLayer::new())
        // Outside the panic catcher, so that a panic is counted as the 500 it becomes.
        .layer(axum::middleware::from_fn(metrics::record))
        .layer(axum::middleware::from_fn_with_state(state.clone(), context::middleware))
        .layer(PropagateRequestIdLayer::new(HeaderName::from_static(request_id::HEADER)))
        // Every log line of a request carries its span: the id, the method and the
        // path (the path only: a query may carry a hook secret or a ticket).
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::extract::Request| {
            let id = request_id::of(req);
            tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
        }))
        .layer(SetRequestIdLayer::new(
            HeaderName::from_static(request_id::HEADER),
            request_id::NextRequestId,
        ))
        .layer(MapRequestLayer::new(request_id::sanitize::<axum::body::Body>))
        .with_state(state)
}
