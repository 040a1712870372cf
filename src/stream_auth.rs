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

use moka::future::Cache;
use serde::Serialize;

use crate::audit::{AuditEvent, Event, RequestMeta};
use crate::error::ApiError;
use crate::identify::Identity;
use crate::store::{SessionCheck, SessionStore, StoreError, StreamAccess, StreamRecord, UserStore};
use crate::streams::{StreamKey, Streams, FRESH_FOR, STREAMER};
use crate::tickets::{self, Ticket};

/// The first check of a connection, or a media server's re-check of a running one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Start,
    Update,
}

/// Why a publish or a play was refused, as SPEC §2 names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    /// No stream by that name, no key, or not its current key.
    Key,
    /// A `login` stream without a valid ticket of a live session.
    Ticket,
    /// The owner is disabled or not (or no longer) a streamer.
    Owner,
}

impl Denial {
    pub fn error(self) -> ApiError {
        match self {
            Denial::Key => ApiError::InvalidStreamKey,
            Denial::Ticket => ApiError::InvalidTicket,
            Denial::Owner => ApiError::Forbidden,
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

/// Where the key may come from: its argument only, or (nginx-rtmp, which renames a
/// stream on a 3xx) the stream name itself when no argument carries one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAsName {
    Allowed,
    Refused,
}

/// A play ticket as the API hands it out.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IssuedTicket {
    pub ticket: String,
    pub expires_in: i64,
}

impl std::fmt::Debug for IssuedTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IssuedTicket(<ticket>, {} s)", self.expires_in)
    }
}

/// Decides publishes and plays, and issues play tickets; cheap to clone.
#[derive(Clone)]
pub struct StreamAuth {
    pub streams: Streams,
    pub users: Arc<dyn UserStore>,
    pub sessions: Arc<dyn SessionStore>,
    /// How long a new ticket may start a playback, seconds.
    pub ticket_ttl: i64,
    /// Whether a stream owner may publish, by user id, as read at most `FRESH_FOR`
    /// ago (disabling a user and withdrawing a role are commands, made elsewhere).
    owners: Cache<i64, bool>,
}

impl StreamAuth {
    pub fn new(
        streams: Streams,
        users: Arc<dyn UserStore>,
        sessions: Arc<dyn SessionStore>,
        ticket_ttl: i64,
    ) -> StreamAuth {
        StreamAuth {
            streams,
            users,
            sessions,
            ticket_ttl,
            owners: Cache::builder().max_capacity(100_000).time_to_live(FRESH_FOR).build(),
        }
    }

    /// A ticket for the caller's session to play `name` (which must exist).
    pub async fn ticket(&self, who: &Identity, name: &str) -> Result<IssuedTicket, ApiError> {
        let stream = self.streams.find(name).await?.ok_or(ApiError::NotFound)?;
        let ticket = Ticket {
            user_id: who.user_id,
            session_id: who.session_id,
            login_time: who.login_time,
            expires_at: crate::clock::now() + self.ticket_ttl,
        };
        Ok(IssuedTicket {
            ticket: ticket.encode(&self.streams.keys, ticket_for(&stream)),
            expires_in: self.ticket_ttl,
        })
    }

    /// May the owner of a stream publish: enabled, with the `streamer` role.
    async fn owner_may_publish(&self, owner_id: i64) -> Result<bool, ApiError> {
        let read = async {
            let owner = self.users.find_by_id(owner_id).await?;
            Ok::<_, StoreError>(owner.is_some_and(|o| !o.disabled && o.roles.iter().any(|r| r == STREAMER)))
        };
        self.owners.try_get_with(owner_id, read).await.map_err(|e| match &*e {
            StoreError::Unavailable(why) => ApiError::StoreUnavailable(why.clone()),
            other => ApiError::Internal(anyhow::anyhow!("reading a stream's owner: {other}")),
        })
    }

    /// May `name` be published with `key`?
    pub async fn publish(
        &self,
        name: &str,
        key: Option<&str>,
        key_as_name: KeyAsName,
        phase: Phase,
        meta: &RequestMeta,
    ) -> Result<Verdict, ApiError> {
        let by_name = key.is_none() && key_as_name == KeyAsName::Allowed && StreamKey::looks_like_a_key(name);
        let (stream, key, renamed) = if by_name {
            let found = self.streams.find_by_key(name).await?;
            let renamed = found.as_ref().map(|s| s.name.clone());
            (found, Some(name), renamed)
        } else {
            (self.streams.find(name).await?, key, None)
        };
        let verdict = match (&stream, key) {
            (Some(s), Some(k)) if self.streams.key_matches(s, k) => {
                if self.owner_may_publish(s.owner_id).await? {
                    Verdict::Allow { renamed }
                } else {
                    Verdict::Deny(Denial::Owner)
                }
            }
            _ => Verdict::Deny(Denial::Key),
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
        let stream = self.streams.find(name).await?;
        let (verdict, user) = self.play_verdict(stream.as_deref(), ticket, caller, phase).await?;
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
        ticket: Option<&str>,
        caller: Option<&Identity>,
        phase: Phase,
    ) -> Result<(Verdict, Option<i64>), ApiError> {
        let allow = Verdict::Allow { renamed: None };
        let deny = Verdict::Deny(Denial::Ticket);
        let Some(stream) = stream else {
            return Ok((deny, None));
        };
        if stream.access == StreamAccess::Public {
            return Ok((allow, caller.map(|c| c.user_id)));
        }
        if let Some(who) = caller {
            return Ok((allow, Some(who.user_id)));
        }
        let Some(t) = ticket.and_then(|text| Ticket::verify(&self.streams.keys, ticket_for(stream), text)) else {
            return Ok((deny, None));
        };
        let now = crate::clock::now();
        if phase == Phase::Start && t.expires_at < now {
            return Ok((deny, Some(t.user_id)));
        }
        let check = self.sessions.check(t.user_id, &t.session_id, t.login_time, now).await?;
        let verdict = if check == SessionCheck::Valid { allow } else { deny };
        Ok((verdict, Some(t.user_id)))
    }

    async fn audit_decision(&self, event: Event, verdict: &Verdict, user: Option<i64>, meta: &RequestMeta) {
        let mut e = match verdict {
            Verdict::Allow { .. } => AuditEvent::ok(event, meta, "stream allowed"),
            Verdict::Deny(d) => AuditEvent::denied(event, meta, "stream refused", d.error().code()),
        };
        e.user_id = user;
        self.streams.audit.record(e).await;
    }
}

/// What a ticket for this stream is bound to.
fn ticket_for(stream: &StreamRecord) -> tickets::For<'_> {
    tickets::For {
        name: &stream.name,
        created_at: stream.created_at,
    }
}
