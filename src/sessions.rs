//! Session policy and lifecycle (SPEC §6): opening a session at login under
//! `max_sessions`, ending one, ending all, listing. Every ended session is audited.

use std::sync::Arc;

use serde::Serialize;

use crate::audit::{Audit, AuditEvent, Event, RequestMeta};
use crate::config::Config;
use crate::error::ApiError;
use crate::identify::Identity;
use crate::ids::SessionId;
use crate::refresh::RefreshToken;
use crate::store::{CreateOutcome, RefreshState, Session, SessionPolicy, SessionStore};

/// The session policy of SPEC §6. An evicted session answers `session_replaced`
/// for as long as any token of it could still be unexpired.
pub fn policy(config: &Config) -> SessionPolicy {
    SessionPolicy {
        max_sessions: config.max_sessions,
        overflow: config.session_overflow,
        tombstone_ttl: (config.access_ttl + config.leeway) as i64,
    }
}

/// Opens, ends and lists sessions; cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    pub store: Arc<dyn SessionStore>,
    pub audit: Audit,
    pub policy: SessionPolicy,
    /// How long a session lives without a refresh, seconds.
    pub lifetime: i64,
    /// Keys the stored digest of a session's refresh token: the current key of
    /// `KeyRing::refresh_digest_keys`.
    pub digest_key: [u8; 32],
}

impl Sessions {
    /// Opens a session for a user who has just proved their password.
    /// Returns the session and its first refresh token (the store keeps only its digest).
    pub async fn open(
        &self,
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
            expires_at: now + self.lifetime,
            device,
            ip: meta.ip.clone(),
            refresh: RefreshState {
                digest: refresh.digest(&self.digest_key),
                generation: refresh.generation,
                rotated_at: 0,
            },
        };
        match self.store.create(&session, &self.policy, now).await? {
            CreateOutcome::Created { evicted } => {
                for sid in &evicted {
                    let e = AuditEvent::ok(Event::SessionReplaced, meta, "session replaced by a newer login")
                        .user(user_id)
                        .session(sid);
                    self.audit.record(e).await;
                }
                Ok((session, refresh))
            }
            CreateOutcome::LimitReached => Err(ApiError::SessionLimitReached),
        }
    }

    /// Ends the caller's own session.
    pub async fn logout(&self, who: &Identity, meta: &RequestMeta) -> Result<(), ApiError> {
        self.store.revoke(who.user_id, &who.session_id).await?;
        let e = AuditEvent::ok(Event::Logout, meta, "logged out")
            .user(who.user_id)
            .session(&who.session_id);
        self.audit.record(e).await;
        Ok(())
    }

    /// Ends every session of a user and audits each; returns how many ended.
    pub async fn end_all(&self, user_id: i64, meta: &RequestMeta, why: &'static str) -> Result<usize, ApiError> {
        let gone = self.store.revoke_all(user_id).await?;
        for sid in &gone {
            let e = AuditEvent::ok(Event::SessionRevoked, meta, why)
                .user(user_id)
                .session(sid);
            self.audit.record(e).await;
        }
        Ok(gone.len())
    }

    /// Ends every session of the caller.
    pub async fn logout_all(&self, who: &Identity, meta: &RequestMeta) -> Result<usize, ApiError> {
        let n = self.end_all(who.user_id, meta, "ended by logout_all").await?;
        let e = AuditEvent::ok(Event::LogoutAll, meta, "logged out everywhere")
            .user(who.user_id)
            .session(&who.session_id);
        self.audit.record(e).await;
        Ok(n)
    }

    /// Ends one of the caller's sessions. Another user's session, or none, is
    /// `not_found`: the answer does not reveal whether it exists.
    pub async fn revoke_own(&self, who: &Identity, session_id: &str, meta: &RequestMeta) -> Result<(), ApiError> {
        let sid = SessionId::parse(session_id).ok_or(ApiError::NotFound)?;
        if !self.store.revoke(who.user_id, &sid).await? {
            return Err(ApiError::NotFound);
        }
        let e = AuditEvent::ok(Event::SessionRevoked, meta, "ended by the user")
            .user(who.user_id)
            .session(&sid);
        self.audit.record(e).await;
        Ok(())
    }

    /// The caller's live sessions, oldest first.
    pub async fn list(&self, who: &Identity) -> Result<Vec<SessionView>, ApiError> {
        let sessions = self.store.list(who.user_id, crate::clock::now()).await?;
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
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub session_id: String,
    pub device: Option<String>,
    pub ip: Option<String>,
    pub created_at: String,
    pub current: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overflow;
    use crate::credentials::Scheme;
    use crate::service_fixtures::{from_ip, policy, Fixture};
    use crate::store::SessionCheck;

    fn identity(s: &Session) -> Identity {
        Identity {
            user_id: s.user_id,
            session_id: s.session_id,
            login_time: s.login_time,
            scheme: Scheme::Jwt,
        }
    }

    /// Sessions under this policy over a fresh store, and a request from an address.
    async fn setup(max_sessions: u32, overflow: Overflow) -> (Fixture, Sessions, RequestMeta) {
        let f = Fixture::new().await;
        let sessions = f.sessions(policy(max_sessions, overflow));
        (f, sessions, from_ip("192.0.2.1"))
    }

    async fn check(f: &Fixture, s: &Session) -> SessionCheck {
        let now = crate::clock::now();
        let store = f.session_store();
        store.check(s.user_id, &s.session_id, s.login_time, now).await.unwrap()
    }

    #[tokio::test]
    async fn a_new_session_keeps_only_its_refresh_digest_and_evicts_the_oldest() {
        let (f, sessions, meta) = setup(1, Overflow::EvictOldest).await;
        let (first, _) = sessions.open(7, Some("phone".into()), &meta).await.unwrap();
        let (second, refresh) = sessions.open(7, None, &meta).await.unwrap();
        assert_eq!(check(&f, &first).await, SessionCheck::Replaced);
        assert_eq!(check(&f, &second).await, SessionCheck::Valid);
        assert_eq!(second.ip.as_deref(), Some("192.0.2.1"));

        let now = crate::clock::now();
        let stored = f
            .sessions
            .refresh_state(7, &second.session_id, now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.refresh.digest, refresh.digest(&sessions.digest_key));
        assert_eq!(stored.expires_at, stored.login_time + sessions.lifetime);
        assert_eq!(f.count_events("session_replaced").await, 1);
    }

    #[tokio::test]
    async fn the_reject_policy_refuses_a_session_beyond_the_limit() {
        let (f, sessions, meta) = setup(1, Overflow::Reject).await;
        let (first, _) = sessions.open(7, None, &meta).await.unwrap();
        assert!(matches!(
            sessions.open(7, None, &meta).await,
            Err(ApiError::SessionLimitReached)
        ));
        assert_eq!(check(&f, &first).await, SessionCheck::Valid);
        // Another user has a limit of their own.
        sessions.open(8, None, &meta).await.unwrap();
    }

    #[tokio::test]
    async fn logout_ends_only_the_callers_session_and_others_are_not_found() {
        let (f, sessions, meta) = setup(2, Overflow::EvictOldest).await;
        let (a, _) = sessions.open(7, None, &meta).await.unwrap();
        let (b, _) = sessions.open(7, None, &meta).await.unwrap();
        let (other, _) = sessions.open(8, None, &meta).await.unwrap();

        sessions.logout(&identity(&a), &meta).await.unwrap();
        assert_eq!(check(&f, &a).await, SessionCheck::Revoked);
        assert_eq!(check(&f, &b).await, SessionCheck::Valid);

        // Someone else's session, an ended one and a malformed id all look the same.
        let who = identity(&b);
        for sid in [other.session_id.encode(), a.session_id.encode(), "nope".to_owned()] {
            assert!(matches!(
                sessions.revoke_own(&who, &sid, &meta).await,
                Err(ApiError::NotFound)
            ));
        }
        assert_eq!(check(&f, &other).await, SessionCheck::Valid);
        sessions.revoke_own(&who, &b.session_id.encode(), &meta).await.unwrap();
        assert_eq!(check(&f, &b).await, SessionCheck::Revoked);
    }

    #[tokio::test]
    async fn logout_all_ends_every_session_and_audits_each() {
        let (f, sessions, meta) = setup(3, Overflow::EvictOldest).await;
        let mut opened = Vec::new();
        for device in ["a", "b", "c"] {
            opened.push(sessions.open(7, Some(device.into()), &meta).await.unwrap().0);
        }
        let listed = sessions.list(&identity(&opened[1])).await.unwrap();
        let devices: Vec<_> = listed.iter().map(|s| s.device.as_deref().unwrap()).collect();
        assert_eq!(devices, ["a", "b", "c"]);
        let current: Vec<bool> = listed.iter().map(|s| s.current).collect();
        assert_eq!(current, [false, true, false]);

        assert_eq!(sessions.logout_all(&identity(&opened[0]), &meta).await.unwrap(), 3);
        for s in &opened {
            assert_eq!(check(&f, s).await, SessionCheck::Revoked);
        }
        assert_eq!(f.count_events("session_revoked").await, 3);
        assert_eq!(f.count_events("logout_all").await, 1);
        assert!(sessions.list(&identity(&opened[0])).await.unwrap().is_empty());
    }
}
