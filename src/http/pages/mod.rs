//! The web pages of SPEC §14: sign up, log in, the account and the streams, served
//! at `/` with every asset inside the binary.
//!
//! The pages are one server-rendered document (`view.rs`) and a small script
//! (`web/app.js`) that talks to the same JSON API as any other client. The access
//! and refresh tokens live only in the script's memory: nothing in `localStorage`,
//! no cookie that authenticates, so there is nothing for a cross-site request to
//! ride on (docs/src/security.md, "The web pages").

pub mod text;
pub mod view;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::http::context::RequestContext;
use crate::i18n::Lang;
use crate::state::AppState;

/// Scripts, styles, images and requests from this origin only; no inline script or
/// style, no plugins, no framing, forms post only here; and no string may become
/// HTML or script (Trusted Types with no policy: the page's script writes text only).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'; \
     require-trusted-types-for 'script'; trusted-types 'none'";

/// The cookie that remembers a language chosen with the switch. Not a credential.
const LANG_COOKIE: &str = "passport_lang";

const APP_JS: &str = include_str!("../../../web/app.js");
const APP_CSS: &str = include_str!("../../../web/app.css");
const ICON_SVG: &str = include_str!("../../../web/icon.svg");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route(
            "/assets/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route("/assets/app.css", get(|| asset("text/css; charset=utf-8", APP_CSS)))
        .route("/assets/icon.svg", get(|| asset("image/svg+xml", ICON_SVG)))
        .route("/assets/i18n/en.json", get(|| asset("application/json", text::EN_JSON)))
        .route("/assets/i18n/zh.json", get(|| asset("application/json", text::ZH_JSON)))
}

/// The document, in the language of `?lang=`, else of the cookie the switch set,
/// else of `Accept-Language` (the request context), else the configured default.
async fn page(State(state): State<AppState>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let asked = query
        .as_deref()
        .and_then(|q| param(q, '&', "lang"))
        .and_then(Lang::from_code);
    let remembered = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| param(v, ';', LANG_COOKIE))
        .and_then(Lang::from_code);
    let lang = asked.or(remembered).unwrap_or_else(|| RequestContext::current().lang);
    let markup = view::document(&view::Page {
        lang,
        password_min: state.config.password_min_length,
        publish_url: state.config.publish_url.as_deref(),
    });
    let mut resp = (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::VARY, HeaderValue::from_static("Accept-Language, Cookie")),
        ],
        markup.into_string(),
    )
        .into_response();
    if let Some(lang) = asked {
        let cookie = format!("{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax", lang.code());
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    protect(resp)
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    let resp = (
        [
            (header::CONTENT_TYPE, content_type),
            // Part of the binary: a new version is a restart, so a browser asks again
            // each time (cheap) rather than keep a stale script beside a new page.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response();
    protect(resp)
}

/// The headers every page and asset carries.
fn protect(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// The value of `name` in `a=1<sep>b=2` (a query or a Cookie header).
fn param<'a>(s: &'a str, sep: char, name: &str) -> Option<&'a str> {
    s.split(sep)
        .filter_map(|kv| kv.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}
