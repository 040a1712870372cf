//! Session policy and lifecycle (SPEC §6): opening a session at login under
//! `max_sessions`, ending one, ending all, listing. Every ended session is audited.

use serde::Serialize;

use crate::app::AppState;
use crate::audit::{AuditEvent, Event, RequestMeta};
use crate::error::ApiError;
use crate::identify::Identity;
use crate::refresh::RefreshToken;
use crate::store::{CreateOutcome, RefreshState, Session, SessionId};

/// Opens a session for a user who has just proved their password.
/// Returns the session and its first refresh token (the store keeps only its digest).
pub async fn open(
    state: &AppState,
    user_id: i64,
    device: Option<String>,
    meta: &RequestMeta,
) -> Result<(Session, RefreshToken), ApiError> {
    let now = crate::clock::now();
    let session_id = SessionId::random();
    let refresh = RefreshToken::first(user_id, session_id);
    let session = Session {
        session_id,
        user_id,
        login_time: now,
        created_at: now,
        expires_at: now + state.config.refresh_ttl as i64,
        device,
        ip: meta.ip.clone(),
        refresh: RefreshState {
            digest: refresh.digest(&state.keys.refresh_digest_keys()[0]),
            generation: refresh.generation,
            rotated_at: 0,
        },
    };
    match state.sessions.create(&session, &state.session_policy(), now).await? {
        CreateOutcome::Created { evicted } => {
            for sid in &evicted {
                let e = AuditEvent::ok(Event::SessionReplaced, meta, "session replaced by a newer login")
                    .user(user_id)
                    .session(sid);
                state.audit.record(e).await;
            }
            Ok((session, refresh))
        }
        CreateOutcome::LimitReached => Err(ApiError::SessionLimitReached),
    }
}

/// Ends the caller's own session.
pub async fn logout(state: &AppState, who: &Identity, meta: &RequestMeta) -> Result<(), ApiError> {
    state.sessions.revoke(who.user_id, &who.session_id).await?;
    let e = AuditEvent::ok(Event::Logout, meta, "logged out")
        .user(who.user_id)
        .session(&who.session_id);
    state.audit.record(e).await;
    Ok(())
}

/// Ends every session of a user and audits each; returns how many ended.
pub async fn end_all(state: &AppState, user_id: i64, meta: &RequestMeta, why: &'static str) -> Result<usize, ApiError> {
    let gone = state.sessions.revoke_all(user_id).await?;
    for sid in &gone {
        state
            .audit
            .record(
                AuditEvent::ok(Event::SessionRevoked, meta, why)
                    .user(user_id)
                    .session(sid),
            )
            .await;
    }
    Ok(gone.len())
}

/// Ends every session of the caller.
pub async fn logout_all(state: &AppState, who: &Identity, meta: &RequestMeta) -> Result<usize, ApiError> {
    let n = end_all(state, who.user_id, meta, "ended by logout_all").await?;
    let e = AuditEvent::ok(Event::LogoutAll, meta, "logged out everywhere")
        .user(who.user_id)
        .session(&who.session_id);
    state.audit.record(e).await;
    Ok(n)
}

/// Ends one of the caller's sessions. Another user's session, or none, is `not_found`:
/// the answer does not reveal whether it exists.
pub async fn revoke_own(
    state: &AppState,
    who: &Identity,
    session_id: &str,
    meta: &RequestMeta,
) -> Result<(), ApiError> {
    let sid = SessionId::parse(session_id).ok_or(ApiError::NotFound)?;
    if !state.sessions.revoke(who.user_id, &sid).await? {
        return Err(ApiError::NotFound);
    }
    let e = AuditEvent::ok(Event::SessionRevoked, meta, "ended by the user")
        .user(who.user_id)
        .session(&sid);
    state.audit.record(e).await;
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct SessionView {
    pub session_id: String,
    pub device: Option<String>,
    pub ip: Option<String>,
    pub created_at: String,
    pub current: bool,
}

pub async fn list(state: &AppState, who: &Identity) -> Result<Vec<SessionView>, ApiError> {
    let sessions = state.sessions.list(who.user_id, crate::clock::now()).await?;
    Ok(sessions
        .into_iter()
        .map(|s| SessionView {
            session_id: s.session_id.encode(),
            current: s.session_id == who.session_id,
            device: s.device,
            ip: s.ip,
            created_at: crate::clock::rfc3339(s.created_at),
        })
        .collect())
}
