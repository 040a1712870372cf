//! The one decision of SPEC §11, whatever asks: may this publish or this play go
//! through? The media-server hooks and forward auth (`http/hooks.rs`,
//! `http/forward_auth.rs`) parse their dialects into a call here and render the
//! answer in their own; the rules live only here.
//!
//! - publish `name` with key `k`: the stream exists, `k` is its current key, its
//!   owner is enabled and has `streamer`;
//! - play `name`: the stream exists and is `public`, or a ticket for it names a live
//!   session (or the caller passed identify with a token);
//! - an update (a media server's periodic re-check): the same again, except that a
//!   ticket's start window no longer applies; its session must still be live.
//!
//! A store that cannot answer is an error, never an allow.

use std::sync::Arc;

use serde::Serialize;

use crate::audit::{Audit, AuditEvent, Event, RequestMeta};
use crate::error::ApiError;
use crate::identify::Identity;
use crate::store::{SessionCheck, SessionStore, StreamAccess, StreamRecord, UserStore};
use crate::streams::{StreamKey, Streams, STREAMER};
use crate::tickets::Ticket;

/// The first check of a connection, or a media server's re-check of a running one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Start,
    Update,
}

/// Why a publish or a play was refused; `reason` goes to the audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    NoSuchStream,
    NoCredential,
    WrongKey,
    /// The owner is disabled or no longer a streamer.
    OwnerMayNotPublish,
    InvalidTicket,
    TicketExpired,
    SessionEnded,
}

impl Denial {
    pub fn reason(self) -> &'static str {
        match self {
            Denial::NoSuchStream => "not_found",
            Denial::NoCredential => "missing_credentials",
            Denial::WrongKey => "invalid_key",
            Denial::OwnerMayNotPublish => "forbidden",
            Denial::InvalidTicket => "invalid_ticket",
            Denial::TicketExpired => "ticket_expired",
            Denial::SessionEnded => "session_revoked",
        }
    }
}

/// What was decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through. `renamed` when the key was given as the stream's name: the
    /// stream's real name, for the media server to publish under.
    Allow {
        renamed: Option<String>,
    },
    Deny(Denial),
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        matches!(self, Verdict::Allow { .. })
    }
}

/// A play ticket as the API hands it out.
#[derive(Debug, Serialize)]
pub struct IssuedTicket {
    pub ticket: String,
    pub expires_in: i64,
}

/// Decides publishes and plays, and issues play tickets; cheap to clone.
#[derive(Clone)]
pub struct StreamAuth {
    pub streams: Streams,
    pub users: Arc<dyn UserStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub audit: Audit,
    /// How long a new ticket may start a playback, seconds.
    pub ticket_ttl: i64,
}

impl StreamAuth {
    /// A ticket for the caller's session to play `name` (which must exist).
    pub async fn ticket(&self, who: &Identity, name: &str) -> Result<IssuedTicket, ApiError> {
        self.streams.store.find_stream(name).await?.ok_or(ApiError::NotFound)?;
        let ticket = Ticket {
            user_id: who.user_id,
            session_id: who.session_id,
            login_time: who.login_time,
            expires_at: crate::clock::now() + self.ticket_ttl,
        };
        Ok(IssuedTicket {
            ticket: ticket.encode(&self.streams.keys, name),
            expires_in: self.ticket_ttl,
        })
    }

    /// May `name` be published with `key` (none given: `name` may itself be a key)?
    pub async fn publish(
        &self,
        name: &str,
        key: Option<&str>,
        phase: Phase,
        meta: &RequestMeta,
    ) -> Result<Verdict, ApiError> {
        let (stream, renamed) = match key {
            Some(_) => (self.streams.store.find_stream(name).await?, None),
            None if StreamKey::looks_like_a_key(name) => {
                let found = self.streams.find_by_key(name).await?;
                let renamed = found.as_ref().map(|s| s.name.clone());
                (found, renamed)
            }
            None => (self.streams.store.find_stream(name).await?, None),
        };
        let key = key.or(renamed.as_ref().map(|_| name));
        let verdict = match (&stream, key) {
            (None, _) => Verdict::Deny(Denial::NoSuchStream),
            (Some(_), None) => Verdict::Deny(Denial::NoCredential),
            (Some(s), Some(k)) if !self.streams.key_matches(s, k) => Verdict::Deny(Denial::WrongKey),
            (Some(s), Some(_)) => match self.users.find_by_id(s.owner_id).await? {
                Some(owner) if !owner.disabled && owner.roles.iter().any(|r| r == STREAMER) => {
                    Verdict::Allow { renamed }
                }
                _ => Verdict::Deny(Denial::OwnerMayNotPublish),
            },
        };
        let event = if phase == Phase::Start {
            Event::StreamPublish
        } else {
            Event::StreamUpdate
        };
        self.audit_decision(event, &verdict, stream.as_ref().map(|s| s.owner_id), meta)
            .await;
        Ok(verdict)
    }

    /// May `name` be played with this ticket, or by this identified caller?
    pub async fn play(
        &self,
        name: &str,
        ticket: Option<&str>,
        caller: Option<&Identity>,
        phase: Phase,
        meta: &RequestMeta,
    ) -> Result<Verdict, ApiError> {
        let stream = self.streams.store.find_stream(name).await?;
        let (verdict, user) = self.play_verdict(stream.as_ref(), name, ticket, caller, phase).await?;
        let event = if phase == Phase::Start {
            Event::StreamPlay
        } else {
            Event::StreamUpdate
        };
        self.audit_decision(event, &verdict, user, meta).await;
        Ok(verdict)
    }

    async fn play_verdict(
        &self,
        stream: Option<&StreamRecord>,
        name: &str,
        ticket: Option<&str>,
        caller: Option<&Identity>,
        phase: Phase,
    ) -> Result<(Verdict, Option<i64>), ApiError> {
        let allow = Verdict::Allow { renamed: None };
        let Some(stream) = stream else {
            return Ok((Verdict::Deny(Denial::NoSuchStream), None));
        };
        if stream.access == StreamAccess::Public {
            return Ok((allow, caller.map(|c| c.user_id)));
        }
        if let Some(who) = caller {
            return Ok((allow, Some(who.user_id)));
        }
        let Some(text) = ticket else {
            return Ok((Verdict::Deny(Denial::NoCredential), None));
        };
        let Some(t) = Ticket::verify(&self.streams.keys, name, text) else {
            return Ok((Verdict::Deny(Denial::InvalidTicket), None));
        };
        let now = crate::clock::now();
        if phase == Phase::Start && t.expires_at < now {
            return Ok((Verdict::Deny(Denial::TicketExpired), Some(t.user_id)));
        }
        let check = self.sessions.check(t.user_id, &t.session_id, t.login_time, now).await?;
        let verdict = match check {
            SessionCheck::Valid => allow,
            SessionCheck::Replaced | SessionCheck::Revoked => Verdict::Deny(Denial::SessionEnded),
        };
        Ok((verdict, Some(t.user_id)))
    }

    async fn audit_decision(&self, event: Event, verdict: &Verdict, user: Option<i64>, meta: &RequestMeta) {
        let mut e = match verdict {
            Verdict::Allow { .. } => AuditEvent::ok(event, meta, "stream allowed"),
            Verdict::Deny(d) => AuditEvent::denied(event, meta, "stream refused", d.reason()),
        };
        e.user_id = user;
        self.audit.record(e).await;
    }
}
