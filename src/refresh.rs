//! Refresh tokens (SPEC §4): opaque, single use, stored only as a digest.
//!
//! A refresh token reads `<user id>.<session id>.<generation>.<secret>`, the secret
//! being 256 bits in base64url. The ids let the store find the session without an
//! index of digests; the token is still opaque to clients. Generation 0 is random;
//! each successor's secret is an HMAC of its predecessor under a server key, so
//! the store keeps one digest and one generation per session and can still:
//!
//! - rotate: the presented token is the current one → store its successor;
//! - answer a parallel refresh inside the grace window with the same successor
//!   (it is derived again, not stored);
//! - recognise a replayed, rotated-out token by walking its successors up to the
//!   current digest, and revoke the session. A token that is not an ancestor of the
//!   current one is merely invalid, so guessing at a session cannot end it.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;

use crate::audit::{Audit, AuditEvent, Event, RequestMeta};
use crate::error::ApiError;
use crate::ids::SessionId;
use crate::keyed;
use crate::store::{RefreshState, SessionStore};
use crate::tokens::KeyRing;

/// Furthest back a replayed token is traced; older ones are just invalid.
const MAX_WALK: i64 = 10_000;

#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub user_id: i64,
    pub session_id: SessionId,
    pub generation: i64,
    secret: [u8; 32],
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RefreshToken({}, {}, gen {}, <secret>)",
            self.user_id, self.session_id, self.generation
        )
    }
}

impl RefreshToken {
    /// The first token of a new session.
    pub fn first(user_id: i64, session_id: SessionId) -> RefreshToken {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("the OS random source is available");
        RefreshToken {
            user_id,
            session_id,
            generation: 0,
            secret,
        }
    }

    pub fn parse(s: &str) -> Option<RefreshToken> {
        if s.len() > 128 {
            return None;
        }
        let mut parts = s.split('.');
        let user_id = parts.next()?.parse().ok()?;
        let session_id = SessionId::parse(parts.next()?)?;
        let generation: i64 = parts.next()?.parse().ok()?;
        let secret = URL_SAFE_NO_PAD.decode(parts.next()?).ok()?.try_into().ok()?;
        if parts.next().is_some() || generation < 0 {
            return None;
        }
        Some(RefreshToken {
            user_id,
            session_id,
            generation,
            secret,
        })
    }

    pub fn encode(&self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.user_id,
            self.session_id,
            self.generation,
            URL_SAFE_NO_PAD.encode(self.secret)
        )
    }

    /// What the store keeps instead of the token: an HMAC under a server key, so
    /// that someone able to write to the session store still cannot plant a digest
    /// of a token of their own making.
    pub fn digest(&self, key: &[u8; 32]) -> [u8; 32] {
        keyed::hmac(key, &[b"digest\0", self.encode().as_bytes()])
    }

    /// True when `stored` is this token's digest under any key of the ring (a
    /// digest written before a key was added still matches).
    fn matches(&self, keys: &[[u8; 32]], stored: &[u8; 32]) -> bool {
        keyed::matches_any(keys, stored, |k| self.digest(k))
    }

    /// The token that replaces this one at rotation.
    pub fn successor(&self, key: &[u8; 32]) -> RefreshToken {
        RefreshToken {
            user_id: self.user_id,
            session_id: self.session_id,
            generation: self.generation + 1,
            secret: keyed::hmac(key, &[self.encode().as_bytes()]),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Refreshed {
    pub token: String,
    pub refresh_token: String,
    pub expires_in: i64,
    pub refresh_expires_in: i64,
}

/// Rotates refresh tokens; cheap to clone.
#[derive(Clone)]
pub struct Refresher {
    pub sessions: Arc<dyn SessionStore>,
    pub keys: Arc<KeyRing>,
    pub audit: Audit,
    /// A session's lifetime from its last refresh, seconds.
    pub lifetime: i64,
    /// Seconds in which a just-rotated token gets the same successor again.
    pub grace: i64,
}

impl Refresher {
    /// Exchanges a refresh token for a new access token and its successor.
    pub async fn refresh(&self, presented: &str, meta: &RequestMeta) -> Result<Refreshed, ApiError> {
        let token = RefreshToken::parse(presented).ok_or(ApiError::InvalidRefreshToken)?;
        let key = self.keys.refresh_key();
        let digest_keys = self.keys.refresh_digest_keys();
        let refused = |err: ApiError| {
            let e = AuditEvent::denied(Event::Refresh, meta, "refresh refused", err.code())
                .user(token.user_id)
                .session(&token.session_id);
            async move {
                self.audit.record(e).await;
                Err(err)
            }
        };
        // Two rounds: a rotation that loses a race to a parallel refresh reads again and
        // then finds itself inside the grace window.
        for _ in 0..2 {
            let now = crate::clock::now();
            let Some(session) = self
                .sessions
                .refresh_state(token.user_id, &token.session_id, now)
                .await?
            else {
                return refused(ApiError::InvalidRefreshToken).await;
            };
            let current = session.refresh;
            if token.generation == current.generation {
                if !token.matches(&digest_keys, &current.digest) {
                    return refused(ApiError::InvalidRefreshToken).await;
                }
                let next = token.successor(&key);
                let expires_at = now + self.lifetime;
                let stored = RefreshState {
                    digest: next.digest(&digest_keys[0]),
                    generation: next.generation,
                    rotated_at: now,
                };
                if self
                    .sessions
                    .rotate_refresh(token.user_id, &token.session_id, &current.digest, &stored, expires_at)
                    .await?
                {
                    return self
                        .issue(&session.login_time, next, expires_at, now, meta, "refreshed")
                        .await;
                }
                continue;
            }
            let behind = current.generation - token.generation;
            if behind <= 0 || behind > MAX_WALK {
                return refused(ApiError::InvalidRefreshToken).await;
            }
            let mut walked = token.clone();
            for _ in 0..behind {
                walked = walked.successor(&key);
            }
            if !walked.matches(&digest_keys, &current.digest) {
                return refused(ApiError::InvalidRefreshToken).await;
            }
            let grace = self.grace;
            if behind == 1 && now - current.rotated_at <= grace {
                // A parallel refresh from the same client: the same successor again.
                return self
                    .issue(
                        &session.login_time,
                        walked,
                        session.expires_at,
                        now,
                        meta,
                        "refreshed within the grace window",
                    )
                    .await;
            }
            // A rotated-out token came back: whoever holds it, the session is compromised.
            let gone = self.sessions.revoke(token.user_id, &token.session_id).await?;
            let e = AuditEvent::denied(
                Event::RefreshReused,
                meta,
                "rotated-out refresh token replayed",
                "refresh_token_reused",
            )
            .user(token.user_id)
            .session(&token.session_id);
            self.audit.record(e).await;
            if gone {
                let e = AuditEvent::ok(Event::SessionRevoked, meta, "ended by refresh token reuse")
                    .user(token.user_id)
                    .session(&token.session_id);
                self.audit.record(e).await;
            }
            return Err(ApiError::RefreshTokenReused);
        }
        refused(ApiError::InvalidRefreshToken).await
    }

    async fn issue(
        &self,
        login_time: &i64,
        next: RefreshToken,
        expires_at: i64,
        now: i64,
        meta: &RequestMeta,
        msg: &'static str,
    ) -> Result<Refreshed, ApiError> {
        let claims = self.keys.claims_for(next.user_id, &next.session_id, *login_time, now);
        let token = self.keys.sign(&claims).map_err(ApiError::Internal)?;
        let e = AuditEvent::ok(Event::Refresh, meta, msg)
            .user(next.user_id)
            .session(&next.session_id);
        self.audit.record(e).await;
        Ok(Refreshed {
            token,
            refresh_token: next.encode(),
            expires_in: self.keys.access_ttl(),
            refresh_expires_in: expires_at - now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_parses_and_derives_deterministically() {
        let t = RefreshToken::first(42, SessionId::random());
        let text = t.encode();
        assert!(text.rsplit('.').next().unwrap().len() >= 43);
        assert_eq!(RefreshToken::parse(&text), Some(t.clone()));
        let key = [7u8; 32];
        assert_eq!(t.successor(&key), t.successor(&key));
        assert_ne!(t.successor(&key).encode(), t.encode());
        assert_ne!(t.successor(&key), t.successor(&[8u8; 32]));
        assert_eq!(t.successor(&key).generation, 1);
        for bad in [
            "",
            "1.2.3",
            "x.AAAAAAAAAAAAAAAAAAAAAA.0.AAAA",
            &format!("{text}.x"),
            &text.replace(".0.", ".-1."),
        ] {
            assert_eq!(RefreshToken::parse(bad), None, "{bad}");
        }
    }
}
