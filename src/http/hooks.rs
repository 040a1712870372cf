//! The media-server hooks of SPEC §11: nginx-rtmp's form, SRS's JSON and MediaMTX's
//! JSON, each parsed into one call of `stream_auth` and answered in its own
//! dialect. Only addresses in `hook_allow` may call them, with `?secret=` when a
//! hook secret is set.

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::{IntoParams, ToSchema};

use super::extract::{peer_in, request_meta, Json};
use super::openapi::{Failure, Null, Success};
use super::response::ok;
use crate::audit::RequestMeta;
use crate::error::ApiError;
use crate::state::AppState;
use crate::stream_auth::{KeyAsName, Phase, Verdict};

/// The first value of each key of a query or form: nginx-rtmp appends the client's
/// own query after its fields, so a later `key=` or `call=` is the client's and is
/// never believed.
pub struct FirstValues(Vec<(String, String)>);

impl FirstValues {
    pub fn parse(text: &[u8]) -> FirstValues {
        let mut seen: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(text) {
            if !seen.iter().any(|(key, _)| *key == k) {
                seen.push((k.into_owned(), v.into_owned()));
            }
        }
        FirstValues(seen)
    }

    /// The value, when given and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// A hook call from an allowed address, with the hook secret when one is set.
/// Carries who the media server says the client is, for the audit log.
pub struct HookCaller(pub RequestMeta);

impl FromRequestParts<AppState> for HookCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if !peer_in(&parts.extensions, &state.config.hook_allow) {
            return Err(ApiError::Forbidden);
        }
        if let Some(secret) = &state.config.hook_secret {
            let query = FirstValues::parse(parts.uri.query().unwrap_or("").as_bytes());
            // Digests of equal length, so that the comparison says nothing of the
            // secret's length either.
            let digest = |b: &[u8]| -> [u8; 32] { Sha256::digest(b).into() };
            let given = digest(query.get("secret").unwrap_or("").as_bytes());
            if !bool::from(given.ct_eq(&digest(secret.expose()))) {
                return Err(ApiError::Forbidden);
            }
        }
        Ok(HookCaller(request_meta(parts, state)))
    }
}

/// The media server's word for its client's address, when it is one.
fn with_client(mut meta: RequestMeta, addr: Option<&str>) -> RequestMeta {
    if let Some(ip) = addr.and_then(|a| a.parse::<IpAddr>().ok()) {
        meta.ip = Some(ip.to_string());
    }
    meta
}

/// What every hook URL may carry in its query.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HookQuery {
    /// `PASSPORT_HOOK_SECRET`, when one is set.
    pub secret: Option<String>,
}

/// The fields of nginx-rtmp's `on_publish` / `on_play` / `on_update` /
/// `on_*_done` form that Passport reads (it sends more; they are ignored).
#[derive(ToSchema)]
#[allow(dead_code)] // documents the form; `FirstValues` reads it
pub struct NginxRtmpForm {
    #[schema(pattern = "^(publish|update_publish|play|update_play|publish_done|play_done|done)$")]
    call: String,
    /// The stream's name, or (publish) its key given as the name.
    name: Option<String>,
    /// The stream key (`?key=` of the publisher's URL).
    key: Option<String>,
    /// A play ticket (`?ticket=` of the player's URL).
    ticket: Option<String>,
    /// The client's address.
    addr: Option<String>,
}

/// nginx-rtmp: 2xx allows, 3xx with `Location` renames the stream, anything else
/// drops the client.
#[utoipa::path(
    post, path = "/hooks/nginx-rtmp", tag = "media servers",
    params(HookQuery),
    request_body(content = NginxRtmpForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Allowed", body = Success<Null>),
        (status = 302, description = "Allowed: a key given as the name publishes under the stream's name",
            headers(("Location" = String, description = "The stream's name"))),
        (status = 400, description = "`invalid_params`: an unknown `call`", body = Failure),
        (status = 403, description = "Denied: `invalid_stream_key`, `invalid_ticket` or `forbidden` (an address not allowed, a wrong hook secret)", body = Failure),
    )
)]
pub async fn nginx_rtmp(State(state): State<AppState>, HookCaller(meta): HookCaller, body: Bytes) -> Response {
    let args = FirstValues::parse(&body);
    let meta = with_client(meta, args.get("addr"));
    let name = args.get("name").unwrap_or("");
    let auth = &state.stream_auth;
    let (call, decided) = match args.get("call").unwrap_or("") {
        "publish" => (
            "publish",
            auth.publish(name, args.get("key"), KeyAsName::Allowed, Phase::Start, &meta)
                .await,
        ),
        "update_publish" => (
            "update_publish",
            auth.publish(name, args.get("key"), KeyAsName::Allowed, Phase::Update, &meta)
                .await,
        ),
        "play" => (
            "play",
            auth.play(name, args.get("ticket"), None, Phase::Start, &meta).await,
        ),
        "update_play" => (
            "update_play",
            auth.play(name, args.get("ticket"), None, Phase::Update, &meta).await,
        ),
        "publish_done" | "play_done" | "done" => return ok(()).into_response(),
        _ => return ApiError::InvalidParams(crate::error::BadInput::WrongShape).into_response(),
    };
    count("nginx-rtmp", call, &decided);
    match decided {
        // The key given as the name: nginx-rtmp publishes under the stream's name.
        // Its updates then carry the key as the name again, answered 2xx.
        Ok(Verdict::Allow { renamed: Some(real) }) if args.get("call") == Some("publish") => {
            (StatusCode::FOUND, [(header::LOCATION, real)]).into_response()
        }
        Ok(Verdict::Allow { .. }) => ok(()).into_response(),
        Ok(Verdict::Deny(why)) => why.error().into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize, ToSchema)]
pub struct SrsHook {
    #[schema(pattern = "^(on_publish|on_play|on_unpublish|on_stop)$")]
    action: String,
    #[serde(default)]
    stream: String,
    /// `?key=…`, as the client gave it.
    #[serde(default)]
    param: String,
    #[serde(default)]
    ip: Option<String>,
}

/// SRS's word for "allowed".
#[derive(Serialize, ToSchema)]
pub struct SrsAllowed {
    /// 0: allowed.
    #[schema(example = 0)]
    code: u8,
    #[schema(example = "ok")]
    msg: &'static str,
}

/// SRS: allowed only by HTTP 200 with a body whose `code` is 0; anything else
/// denies (its rule, an exception to the envelope).
#[utoipa::path(
    post, path = "/hooks/srs", tag = "media servers",
    params(HookQuery),
    request_body = SrsHook,
    responses(
        (status = 200, description = "Allowed (`code` 0)", body = SrsAllowed),
        (status = 400, description = "`invalid_params`: an unknown `action`", body = Failure),
        (status = 403, description = "Denied: `invalid_stream_key`, `invalid_ticket` or `forbidden`", body = Failure),
    )
)]
pub async fn srs(State(state): State<AppState>, HookCaller(meta): HookCaller, Json(hook): Json<SrsHook>) -> Response {
    let allow = || (StatusCode::OK, axum::Json(SrsAllowed { code: 0, msg: "ok" })).into_response();
    let args = FirstValues::parse(hook.param.trim_start_matches('?').as_bytes());
    let meta = with_client(meta, hook.ip.as_deref());
    let auth = &state.stream_auth;
    let (call, decided) = match hook.action.as_str() {
        "on_publish" => {
            let key = args.get("key");
            let decided = auth
                .publish(&hook.stream, key, KeyAsName::Refused, Phase::Start, &meta)
                .await;
            ("on_publish", decided)
        }
        "on_play" => {
            let decided = auth
                .play(&hook.stream, args.get("ticket"), None, Phase::Start, &meta)
                .await;
            ("on_play", decided)
        }
        "on_unpublish" | "on_stop" => return allow(),
        _ => return ApiError::InvalidParams(crate::error::BadInput::WrongShape).into_response(),
    };
    count("srs", call, &decided);
    match decided {
        Ok(Verdict::Deny(why)) => why.error().into_response(),
        Ok(_) => allow(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize, ToSchema)]
pub struct MediaMtxHook {
    #[schema(pattern = "^(publish|read|playback)$")]
    action: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    query: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    ip: Option<String>,
}

/// MediaMTX: any 2xx allows. A request with no credential at all gets 401, so that
/// RTSP and HLS clients ask their user for one; other refusals are 403.
#[utoipa::path(
    post, path = "/hooks/mediamtx", tag = "media servers",
    params(HookQuery),
    request_body = MediaMtxHook,
    responses(
        (status = 200, description = "Allowed", body = Success<Null>),
        (status = 401, description = "`missing_credentials`: no key, ticket, password or token at all", body = Failure),
        (status = 403, description = "Denied: `invalid_stream_key`, `invalid_ticket` or `forbidden`", body = Failure),
    )
)]
pub async fn mediamtx(
    State(state): State<AppState>,
    HookCaller(meta): HookCaller,
    Json(hook): Json<MediaMtxHook>,
) -> Response {
    let args = FirstValues::parse(hook.query.as_bytes());
    let meta = with_client(meta, hook.ip.as_deref());
    let given = |arg: &str| {
        args.get(arg)
            .or(Some(hook.password.as_str()).filter(|p| !p.is_empty()))
            .or(Some(hook.token.as_str()).filter(|t| !t.is_empty()))
    };
    let auth = &state.stream_auth;
    let (call, decided) = match hook.action.as_str() {
        "publish" => (
            "publish",
            auth.publish(&hook.path, given("key"), KeyAsName::Refused, Phase::Start, &meta)
                .await,
        ),
        "read" => (
            "read",
            auth.play(&hook.path, given("ticket"), None, Phase::Start, &meta).await,
        ),
        "playback" => (
            "playback",
            auth.play(&hook.path, given("ticket"), None, Phase::Start, &meta).await,
        ),
        _ => return ApiError::Forbidden.into_response(),
    };
    count("mediamtx", call, &decided);
    let no_credential = [args.get("key"), args.get("ticket")].iter().all(Option::is_none)
        && hook.user.is_empty()
        && hook.password.is_empty()
        && hook.token.is_empty();
    match decided {
        Ok(Verdict::Deny(_)) if no_credential => ApiError::MissingCredentials.into_response(),
        Ok(Verdict::Deny(why)) => why.error().into_response(),
        Ok(_) => ok(()).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Counts a decision: `allow`, or the code it was refused with.
fn count(server: &'static str, call: &'static str, decided: &Result<Verdict, ApiError>) {
    let outcome = match decided {
        Ok(Verdict::Allow { .. }) => "allow",
        Ok(Verdict::Deny(why)) => why.error().code(),
        Err(e) => e.code(),
    };
    crate::observe::hook(server, call, outcome);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_value_of_a_repeated_argument_wins() {
        let args = FirstValues::parse(b"call=publish&name=show&key=right&call=play&key=wrong&empty=");
        assert_eq!(args.get("call"), Some("publish"));
        assert_eq!(args.get("key"), Some("right"));
        assert_eq!(args.get("name"), Some("show"));
        assert_eq!(args.get("empty"), None);
        assert_eq!(args.get("missing"), None);
    }
}
