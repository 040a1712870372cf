//! The HTTP surface: routes and the layers around them.

pub mod connections;
pub mod context;
pub mod extract;
pub mod forward_auth;
pub mod health;
pub mod hooks;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod passport;
pub mod request_id;
pub mod response;
pub mod streams;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use tower::util::MapRequestLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Largest request body accepted (SPEC §2: 413 `payload_too_large` beyond it).
pub const BODY_LIMIT: usize = 16 * 1024;

pub fn router(state: AppState) -> Router {
    // Every JSON endpoint goes through `routes!`: its `#[utoipa::path]` gives both
    // the route and its part of the document.
    let (api, mut doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(passport::register))
        .routes(routes!(passport::login))
        .routes(routes!(passport::refresh))
        .routes(routes!(passport::logout))
        .routes(routes!(passport::logout_all))
        .routes(routes!(passport::me))
        .routes(routes!(passport::list_sessions))
        .routes(routes!(passport::delete_session))
        .routes(routes!(passport::change_password))
        .routes(routes!(streams::create, streams::list))
        .routes(routes!(streams::set_access, streams::delete))
        .routes(routes!(streams::rotate_key))
        .routes(routes!(streams::ticket))
        .routes(routes!(hooks::nginx_rtmp))
        .routes(routes!(hooks::srs))
        .routes(routes!(hooks::mediamtx))
        .routes(routes!(forward_auth::verify))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .split_for_parts();
    openapi::finish(&mut doc);
    let doc = openapi::served(&doc);
    api
        // A path of any depth, which a route of `routes!` cannot be: described in
        // `ApiDoc` under `/auth/verify/{rest}`.
        .route(
            "/auth/verify/{*rest}",
            get(forward_auth::verify_with_path)
                .head(forward_auth::verify_with_path)
                .post(forward_auth::verify_with_path)
                .put(forward_auth::verify_with_path)
                .patch(forward_auth::verify_with_path)
                .delete(forward_auth::verify_with_path)
                .options(forward_auth::verify_with_path),
        )
        .route("/metrics", get(metrics::metrics))
        // The web pages (HTML, not JSON): not in the API document.
        .merge(pages::router())
        .route("/openapi.json", get(move || std::future::ready(doc.clone())))
        .fallback(passport::not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // A panic becomes a bare 500, which the context layer turns into the envelope.
        .layer(CatchPanicLayer::new())
        .layer(axum::middleware::from_fn_with_state(state.clone(), context::middleware))
        .layer(PropagateRequestIdLayer::new(request_id::HEADER))
        // Every log line of a request carries its span: the id, the method and the
        // path (the path only: a query may carry a hook secret or a ticket).
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::extract::Request| {
                let id = request_id::of(req);
                tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
            }),
        )
        .layer(SetRequestIdLayer::new(request_id::HEADER, request_id::NextRequestId))
        .layer(MapRequestLayer::new(request_id::sanitize::<axum::body::Body>))
        .with_state(state)
}
