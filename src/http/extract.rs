//! Extractors: our `Json` (body rejections answered through the envelope),
//! `ClientMeta` (who is asking, for the audit log) and `AuthUser` (identify).

use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, Extensions, StatusCode};
use ipnet::IpNet;
use serde::de::DeserializeOwned;

use crate::audit::{AuditEvent, Event, RequestMeta};
use crate::error::{ApiError, BadInput};
use crate::identify::{identify, Identity};
use crate::state::AppState;

/// `axum::Json`, with every rejection mapped to SPEC §2: non-JSON content type 415,
/// over the body limit 413, anything else 400 `invalid_params`.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
                JsonRejection::JsonDataError(_) => ApiError::InvalidParams(BadInput::WrongShape),
                JsonRejection::BytesRejection(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::PayloadTooLarge
                }
                _ => ApiError::InvalidParams(BadInput::MalformedJson),
            }),
        }
    }
}

/// The client address of SPEC §9: the peer, unless the peer is a trusted proxy, in
/// which case the right-most `X-Forwarded-For` address that is not a trusted proxy.
pub fn client_ip(peer: Option<IpAddr>, forwarded_for: Option<&str>, trusted: &[IpNet]) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = peer?;
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let Some(xff) = forwarded_for else { return Some(peer) };
    let mut hops = Vec::new();
    for part in xff.split(',') {
        match part.trim().parse::<IpAddr>() {
            Ok(ip) => hops.push(ip),
            // A malformed hop: nothing left of it can be believed.
            Err(_) => hops.clear(),
        }
    }
    Some(
        hops.iter()
            .rev()
            .find(|ip| !is_trusted(ip))
            .or(hops.first())
            .copied()
            .unwrap_or(peer),
    )
}

/// Whether the TCP peer itself (never a forwarded address) is in `nets`: the check
/// of the hooks' and `/metrics`' allow lists. An IPv4 client of a dual-stack
/// listener arrives as ::ffff:a.b.c.d and is checked as a.b.c.d.
pub fn peer_in(extensions: &Extensions, nets: &[IpNet]) -> bool {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical());
    peer.is_some_and(|ip| nets.iter().any(|net| net.contains(&ip)))
}

/// Longest `User-Agent` kept in the audit log.
const MAX_USER_AGENT: usize = 256;

pub fn request_meta(parts: &Parts, state: &AppState) -> RequestMeta {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let xff = parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(MAX_USER_AGENT).collect());
    RequestMeta {
        ip: client_ip(peer, xff, &state.config.trusted_proxies).map(|ip| ip.to_string()),
        user_agent,
        // The path only: a query string could carry anything, tokens included.
        url: Some(parts.uri.path().to_owned()),
        method: Some(parts.method.as_str().to_owned()),
    }
}

/// Who is asking, for the audit log and the session's `ip`.
pub struct ClientMeta(pub RequestMeta);

impl FromRequestParts<AppState> for ClientMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(ClientMeta(request_meta(parts, state)))
    }
}

/// A request that passed identify. Every refusal is audited as `token_rejected`.
pub struct AuthUser(pub Identity);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let authorization = parts.headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
        match identify(&state.keys, &*state.stores.sessions, authorization).await {
            Ok(identity) => {
                crate::observe::identify("ok");
                Ok(AuthUser(identity))
            }
            Err(rejection) => {
                crate::observe::identify(rejection.error.code());
                let meta = request_meta(parts, state);
                let mut e = AuditEvent::denied(Event::TokenRejected, &meta, "request refused", rejection.error.code());
                e.user_id = rejection.user_id;
                e.session_id = rejection.session_id.map(|s| s.encode());
                state.audit.record(e).await;
                Err(rejection.error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_peers() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            client_ip(Some(ip("1.2.3.4")), Some("9.9.9.9"), &trusted),
            Some(ip("1.2.3.4"))
        );
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), Some("9.9.9.9, 8.8.8.8"), &trusted),
            Some(ip("8.8.8.8"))
        );
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), Some("9.9.9.9, 10.0.0.7"), &trusted),
            Some(ip("9.9.9.9"))
        );
        assert_eq!(client_ip(Some(ip("10.0.0.1")), None, &trusted), Some(ip("10.0.0.1")));
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), Some("garbage"), &trusted),
            Some(ip("10.0.0.1"))
        );
    }
}
