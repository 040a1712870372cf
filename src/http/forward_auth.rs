//! `/auth/verify` (SPEC §12): "may this request through?" for nginx `auth_request`,
//! Traefik ForwardAuth, Caddy `forward_auth` and Envoy `ext_authz`. A token is
//! checked as identify checks it; `?stream=` asks the play decision of §11, with
//! the ticket taken from the original URI the proxy passes on.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::extract::{request_meta, AuthUser};
use super::hooks::FirstValues;
use super::openapi::{Failure, Success};
use super::response::Envelope;
use crate::error::ApiError;
use crate::identify::Identity;
use crate::state::AppState;
use crate::stream_auth::Phase;

/// The original request's URI, as nginx (`X-Original-URI`, set by the operator) or
/// Traefik and Caddy (`X-Forwarded-Uri`) pass it on.
fn original_uri(headers: &HeaderMap) -> Option<&str> {
    ["x-original-uri", "x-forwarded-uri"]
        .iter()
        .find_map(|name| headers.get(*name))
        .and_then(|v| v.to_str().ok())
}

/// The `ticket` argument of the original URI's query.
fn ticket_of(uri: &str) -> Option<String> {
    let query = uri.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    FirstValues::parse(query.as_bytes()).get("ticket").map(str::to_owned)
}

/// `/auth/verify`: its own query (`?stream=`, `?role=`) is the operator's, written
/// into the proxy's configuration.
#[utoipa::path(
    method(get, head, post, put, patch, delete, options), path = "/auth/verify", tag = "forward auth",
    params(VerifyQuery),
    security((), ("jwt" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Pass: who the caller is, in the body and in X-User-Id, X-Session-Id and X-User-Roles", body = Success<Verified>),
        (status = 403, description = "Do not pass: `forbidden` (a role the caller lacks) or `invalid_ticket`", body = Failure),
    )
)]
pub async fn verify(State(state): State<AppState>, req: Request) -> Response {
    let (mut parts, _) = req.into_parts();
    let own = FirstValues::parse(parts.uri.query().unwrap_or("").as_bytes());
    counted(decide(&state, &mut parts, &own).await)
}

/// `/auth/verify/<original path>` (Envoy): the query is the client's, carried along
/// with the path, so it is not read: tokens only.
#[utoipa::path(
    method(get, head, post, put, patch, delete, options), path = "/auth/verify/{rest}", tag = "forward auth",
    params(("rest" = String, Path, description = "The original request's path (Envoy's `path_prefix`), not read")),
    security(("jwt" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Pass: who the caller is, in the body and in X-User-Id, X-Session-Id and X-User-Roles", body = Success<Verified>),
    )
)]
pub async fn verify_with_path(State(state): State<AppState>, req: Request) -> Response {
    let (mut parts, _) = req.into_parts();
    let none = FirstValues::parse(b"");
    counted(decide(&state, &mut parts, &none).await)
}

/// Forward auth's decisions are counted with the hooks' (server `forward_auth`).
fn counted(decided: Result<Response, ApiError>) -> Response {
    let outcome = match &decided {
        Ok(_) => "allow",
        Err(e) => e.code(),
    };
    crate::observe::hook("forward_auth", "verify", outcome);
    decided.unwrap_or_else(IntoResponse::into_response)
}

async fn decide(state: &AppState, parts: &mut Parts, own: &FirstValues) -> Result<Response, ApiError> {
    let has_token = parts.headers.contains_key(axum::http::header::AUTHORIZATION);
    // A token that fails identify is a 401, whatever else the request carries.
    let caller: Option<Identity> = if has_token {
        let AuthUser(who) = AuthUser::from_request_parts(parts, state).await?;
        Some(who)
    } else {
        None
    };
    if let Some(stream) = own.get("stream") {
        let ticket = original_uri(&parts.headers).and_then(ticket_of);
        let meta = request_meta(parts, state);
        let verdict = state
            .stream_auth
            .play(stream, ticket.as_deref(), caller.as_ref(), Phase::Start, &meta)
            .await?;
        if !verdict.allowed() {
            return Err(ApiError::InvalidTicket);
        }
        return match caller {
            Some(who) => answer(state, &who, own.get("role")).await,
            // A role asked of a caller with no token cannot be had.
            None if own.get("role").is_some() => Err(ApiError::Forbidden),
            None => Ok(Envelope(
                StatusCode::OK,
                PublicStream {
                    stream: stream.to_owned(),
                },
            )
            .into_response()),
        };
    }
    let who = caller.ok_or(ApiError::MissingCredentials)?;
    answer(state, &who, own.get("role")).await
}

/// The `data` of a 200: who the caller is (also in `X-User-Id`, `X-Session-Id` and
/// `X-User-Roles`), or the stream a caller without a token may play.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Verified {
    Caller(Caller),
    Stream(PublicStream),
}

#[derive(Serialize, ToSchema)]
pub struct Caller {
    user_id: i64,
    session_id: String,
    roles: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PublicStream {
    stream: String,
}

/// The query of `/auth/verify`, written into the proxy's configuration.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query; `FirstValues` reads it
pub struct VerifyQuery {
    /// Ask the play decision for this stream: a public stream passes anyone, a
    /// `login` one needs a token or the ticket in the original URI's query.
    stream: Option<String>,
    /// Pass only a caller with this role.
    role: Option<String>,
}

fn internal(e: axum::http::header::InvalidHeaderValue) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("a header value: {e}"))
}

/// 200 with who the caller is, in headers the proxy passes upstream. These
/// headers are always Passport's own: nothing of the request is echoed.
async fn answer(state: &AppState, who: &Identity, role: Option<&str>) -> Result<Response, ApiError> {
    let accounts = &state.accounts;
    let roles = accounts.profiles.roles(&*accounts.users, who.user_id).await?;
    if let Some(role) = role {
        if !roles.iter().any(|r| r == role) {
            return Err(ApiError::Forbidden);
        }
    }
    let session_id = who.session_id.encode();
    // Role names and session ids are header-safe by their rules.
    let values = [
        ("x-user-id", HeaderValue::from(who.user_id)),
        ("x-session-id", HeaderValue::from_str(&session_id).map_err(internal)?),
        (
            "x-user-roles",
            HeaderValue::from_str(&roles.join(",")).map_err(internal)?,
        ),
    ];
    let data = Caller {
        user_id: who.user_id,
        session_id,
        roles: roles.to_vec(),
    };
    let mut resp = Envelope(StatusCode::OK, data).into_response();
    let headers = resp.headers_mut();
    for (name, value) in values {
        headers.insert(HeaderName::from_static(name), value);
    }
    Ok(resp)
}
