//! What every response needs to know about its request: the language of `msg`
//! and the scheme for `WWW-Authenticate`.
//!
//! A middleware puts it in a task-local for the duration of the request, so that
//! `ApiError` and `Envelope` render themselves in one place (`response.rs`) without
//! every handler threading the request headers through. The same middleware turns
//! the bare error responses that axum and tower layers produce (405, 413, …) into
//! envelopes, so that every response body is JSON.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::credentials::Scheme;
use crate::error::ApiError;
use crate::i18n::Lang;
use crate::state::AppState;

#[derive(Clone, Copy, Debug)]
pub struct RequestContext {
    pub lang: Lang,
    pub scheme: Scheme,
}

tokio::task_local! {
    static CURRENT: RequestContext;
}

impl RequestContext {
    pub fn from_headers(headers: &HeaderMap, default_lang: Lang) -> Self {
        let lang = Lang::negotiate(
            headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()),
            default_lang,
        );
        let scheme = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| Scheme::of_header(v.as_bytes()))
            .unwrap_or(Scheme::Jwt);
        RequestContext { lang, scheme }
    }

    /// The context of the request being served; English and `JWT` outside one.
    pub fn current() -> RequestContext {
        CURRENT.try_with(|c| *c).unwrap_or(RequestContext {
            lang: Lang::En,
            scheme: Scheme::Jwt,
        })
    }
}

pub async fn middleware(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let ctx = RequestContext::from_headers(req.headers(), state.config.default_lang);
    // Every request passes here after routing, so this is where it is timed (with
    // its route's pattern) when metrics are on; a panic is timed as the 500 it becomes.
    let timed = state.metrics.is_some().then(|| {
        let route = req.extensions().get::<MatchedPath>().cloned();
        (route, req.method().clone(), Instant::now())
    });
    CURRENT
        .scope(ctx, async move {
            let resp = envelope(next.run(req).await);
            if let Some((route, method, started)) = timed {
                super::metrics::record(route.as_ref(), &method, resp.status().as_u16(), started);
            }
            resp
        })
        .await
}

/// A response no handler of ours rendered (a bare 405, 413, …): given our envelope.
fn envelope(resp: Response) -> Response {
    if is_json(&resp) || !(resp.status().is_client_error() || resp.status().is_server_error()) {
        return resp;
    }
    // A response no handler of ours rendered: keep its status and headers
    // (such as `Allow` on 405), give it our envelope.
    let (parts, _) = resp.into_parts();
    let mut fixed = ApiError::from_status(parts.status).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fixed.headers_mut().entry(name).or_insert(value.clone());
        }
    }
    fixed
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
}
