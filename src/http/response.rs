//! How an answer goes on the wire: the envelope of SPEC §2.
//!
//! Every response body is `{code, msg, data}` (plus `error` on failures). An
//! `ApiError` gets its status, `WWW-Authenticate` on 401 and `Retry-After` where it
//! applies; its `msg` is in the request's language (`context`). 5xx bodies stay
//! opaque: the cause goes to tracing, never to the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::context::RequestContext;
use crate::error::ApiError;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let ctx = RequestContext::current();
        let status = self.status();
        if status.is_server_error() {
            // The target this event has always had, for RUST_LOG filters.
            tracing::error!(target: "passport::error", error = %self, code = self.code(), "request failed");
        }
        let msg = self.message(ctx.lang);
        let body = Body {
            code: status.as_u16(),
            msg: &msg,
            data: None::<()>,
            error: Some(self.code()),
        };
        let mut resp = (status, axum::Json(body)).into_response();
        let headers = resp.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            let mut value = format!("{} realm=\"passport\"", ctx.scheme.as_str());
            if self.is_token_failure() {
                value.push_str(", error=\"invalid_token\"");
            }
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(header::WWW_AUTHENTICATE, v);
            }
        }
        if let Some(secs) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// The envelope of SPEC §2; `error` only on failures.
#[derive(serde::Serialize)]
struct Body<'a, T> {
    code: u16,
    msg: &'a str,
    data: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
}

/// A success envelope: `{code, msg, data}` with `code` equal to the status.
pub struct Envelope<T>(pub StatusCode, pub T);

impl<T: serde::Serialize> IntoResponse for Envelope<T> {
    fn into_response(self) -> Response {
        let lang = RequestContext::current().lang;
        let body = Body {
            code: self.0.as_u16(),
            msg: lang.ok(),
            data: self.1,
            error: None,
        };
        (self.0, axum::Json(body)).into_response()
    }
}

pub fn ok<T: serde::Serialize>(data: T) -> Envelope<T> {
    Envelope(StatusCode::OK, data)
}
