//! Streams (SPEC §11): a streamer's named streams, each with a publish key shown
//! once and stored only as a keyed digest, and who may watch it.
//!
//! A key reads `sk_` + 192 random bits (base64url). The store keeps an HMAC of it
//! under a key derived from the current signing key; a key is checked against the
//! digest under every key of the ring, so adding a signing key does not break the
//! keys encoders hold.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use moka::future::Cache;
use serde::Serialize;

use crate::audit::{Audit, AuditEvent, Event, RequestMeta};
use crate::error::{ApiError, BadInput};
use crate::identify::Identity;
use crate::keyed;
use crate::store::{StoreError, StreamAccess, StreamRecord, StreamStore, UserRecord, UserStore};
use crate::tokens::KeyRing;

/// The role that may own streams and publish.
pub const STREAMER: &str = "streamer";

/// SPEC §11: a stream name is `[a-z0-9][a-z0-9_-]{0,63}`.
pub fn is_stream_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 64
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A stream's access from its wire form.
pub fn parse_access(text: &str) -> Result<StreamAccess, ApiError> {
    StreamAccess::parse(text).ok_or(ApiError::InvalidParams(BadInput::Access))
}

/// A publish key as given to its streamer; never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct StreamKey(String);

impl std::fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamKey(<redacted>)")
    }
}

impl StreamKey {
    const PREFIX: &'static str = "sk_";

    fn random() -> StreamKey {
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).expect("the OS random source is available");
        StreamKey(format!("{}{}", Self::PREFIX, URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Text that has the shape of a key (so that a name is not mistaken for one).
    pub fn looks_like_a_key(text: &str) -> bool {
        text.strip_prefix(Self::PREFIX).is_some_and(|rest| rest.len() == 32)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The stored digest of a key under one of the ring's stream-digest keys.
fn digest(key: &str, digest_key: &[u8; 32]) -> [u8; 32] {
    keyed::hmac(digest_key, &[key.as_bytes()])
}

/// A stream as its owner sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StreamView {
    pub name: String,
    /// `login` or `public`.
    #[schema(value_type = String)]
    pub access: &'static str,
    pub created_at: String,
}

impl From<&StreamRecord> for StreamView {
    fn from(s: &StreamRecord) -> StreamView {
        StreamView {
            name: s.name.clone(),
            access: s.access.as_str(),
            created_at: crate::clock::rfc3339(s.created_at),
        }
    }
}

/// A new stream, with the one sight of its key.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedStream {
    pub name: String,
    /// `login` or `public`.
    #[schema(value_type = String)]
    pub access: &'static str,
    pub key: String,
}

impl std::fmt::Debug for CreatedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CreatedStream({}, {}, <key>)", self.name, self.access)
    }
}

/// Who asks for a change to a stream: its owner, or an administrator's command.
#[derive(Clone, Copy, Debug)]
pub enum Actor<'a> {
    Owner(&'a Identity),
    Command,
}

/// How long a stream read for a hook may be reused. The hooks ask on every publish,
/// play and update; a change made through this process forgets its stream at once,
/// one made by another process shows within this bound (SPEC §5's second).
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// Creates, lists, changes and deletes streams; checks keys. Cheap to clone.
#[derive(Clone)]
pub struct Streams {
    pub store: Arc<dyn StreamStore>,
    pub users: Arc<dyn UserStore>,
    pub keys: Arc<KeyRing>,
    pub audit: Audit,
    /// Streams recently read (or found missing), by name, for at most `FRESH_FOR`.
    recent: Cache<String, Option<Arc<StreamRecord>>>,
}

impl Streams {
    pub fn new(store: Arc<dyn StreamStore>, users: Arc<dyn UserStore>, keys: Arc<KeyRing>, audit: Audit) -> Streams {
        let recent = Cache::builder().max_capacity(100_000).time_to_live(FRESH_FOR).build();
        Streams {
            store,
            users,
            keys,
            audit,
            recent,
        }
    }

    /// The stream of this name, as read at most `FRESH_FOR` ago. A name outside
    /// the rule is no stream, and reaches no store.
    pub async fn find(&self, name: &str) -> Result<Option<Arc<StreamRecord>>, ApiError> {
        if !is_stream_name(name) {
            return Ok(None);
        }
        let read = async { Ok::<_, StoreError>(self.store.find_stream(name).await?.map(Arc::new)) };
        self.recent
            .try_get_with(name.to_owned(), read)
            .await
            .map_err(|e| match &*e {
                StoreError::Unavailable(why) => ApiError::StoreUnavailable(why.clone()),
                other => ApiError::Internal(anyhow::anyhow!("reading a stream: {other}")),
            })
    }

    /// Forgets a stream this process has just changed.
    async fn forget(&self, name: &str) {
        self.recent.invalidate(name).await;
    }
    /// A stream for the caller, who must have the `streamer` role.
    pub async fn create(
        &self,
        who: &Identity,
        name: &str,
        access: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<CreatedStream, ApiError> {
        let access = access.map(parse_access).transpose()?.unwrap_or(StreamAccess::Login);
        if !is_stream_name(name) {
            return Err(ApiError::InvalidParams(BadInput::StreamName));
        }
        let user = self.users.find_by_id(who.user_id).await?.ok_or(ApiError::NotFound)?;
        if !user.roles.iter().any(|r| r == STREAMER) {
            return Err(ApiError::Forbidden);
        }
        self.insert(&user, name, access, meta).await
    }

    /// A stream for a user, whatever their roles (`passport stream add`).
    pub async fn add_for(&self, owner: &UserRecord, name: &str, meta: &RequestMeta) -> Result<CreatedStream, ApiError> {
        if !is_stream_name(name) {
            return Err(ApiError::InvalidParams(BadInput::StreamName));
        }
        self.insert(owner, name, StreamAccess::Login, meta).await
    }

    async fn insert(
        &self,
        owner: &UserRecord,
        name: &str,
        access: StreamAccess,
        meta: &RequestMeta,
    ) -> Result<CreatedStream, ApiError> {
        let key = StreamKey::random();
        let record = StreamRecord {
            name: name.to_owned(),
            owner_id: owner.user_id,
            access,
            key_digest: digest(key.expose(), &self.keys.stream_digest_keys()[0]),
            created_at: crate::clock::now(),
        };
        let created = self.store.create_stream(&record).await;
        self.forget(name).await;
        match created {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Err(ApiError::StreamTaken),
            Err(e) => return Err(e.into()),
        }
        let e = AuditEvent::ok(Event::StreamCreated, meta, "stream created").user(owner.user_id);
        self.audit.record(e).await;
        Ok(CreatedStream {
            name: record.name,
            access: access.as_str(),
            key: key.0,
        })
    }

    /// The caller's own streams, oldest first.
    pub async fn list_own(&self, who: &Identity) -> Result<Vec<StreamView>, ApiError> {
        let streams = self.store.list_streams(Some(who.user_id)).await?;
        Ok(streams.iter().map(StreamView::from).collect())
    }

    /// One user's streams, or every stream (`passport stream list`).
    pub async fn list(&self, owner_id: Option<i64>) -> Result<Vec<StreamRecord>, ApiError> {
        Ok(self.store.list_streams(owner_id).await?)
    }

    /// The stream, if `actor` may change it. Another user's stream is `not_found`,
    /// as one that does not exist: the answer does not say which.
    async fn changeable(&self, actor: Actor<'_>, name: &str) -> Result<StreamRecord, ApiError> {
        if !is_stream_name(name) {
            return Err(ApiError::NotFound);
        }
        let stream = self.store.find_stream(name).await?.ok_or(ApiError::NotFound)?;
        match actor {
            Actor::Owner(who) if who.user_id != stream.owner_id => Err(ApiError::NotFound),
            _ => Ok(stream),
        }
    }

    pub async fn set_access(&self, who: &Identity, name: &str, access: &str) -> Result<StreamView, ApiError> {
        let access = parse_access(access)?;
        let mut stream = self.changeable(Actor::Owner(who), name).await?;
        let changed = self.store.set_stream_access(name, stream.owner_id, access).await;
        self.forget(name).await;
        if !changed? {
            return Err(ApiError::NotFound);
        }
        stream.access = access;
        Ok(StreamView::from(&stream))
    }

    /// A new key, returned once; the old one stops working at once.
    pub async fn rotate(&self, actor: Actor<'_>, name: &str, meta: &RequestMeta) -> Result<String, ApiError> {
        let stream = self.changeable(actor, name).await?;
        let key = StreamKey::random();
        let new_digest = digest(key.expose(), &self.keys.stream_digest_keys()[0]);
        let changed = self.store.set_stream_key(name, stream.owner_id, &new_digest).await;
        self.forget(name).await;
        if !changed? {
            return Err(ApiError::NotFound);
        }
        let e = AuditEvent::ok(Event::StreamKeyRotated, meta, "stream key rotated").user(stream.owner_id);
        self.audit.record(e).await;
        Ok(key.0)
    }

    pub async fn delete(&self, actor: Actor<'_>, name: &str, meta: &RequestMeta) -> Result<(), ApiError> {
        let stream = self.changeable(actor, name).await?;
        let deleted = self.store.delete_stream(name, stream.owner_id).await;
        self.forget(name).await;
        if !deleted? {
            return Err(ApiError::NotFound);
        }
        let e = AuditEvent::ok(Event::StreamDeleted, meta, "stream deleted").user(stream.owner_id);
        self.audit.record(e).await;
        Ok(())
    }

    /// The stream whose current key is `key` (the key given as the stream's name).
    pub async fn find_by_key(&self, key: &str) -> Result<Option<Arc<StreamRecord>>, ApiError> {
        for k in self.keys.stream_digest_keys() {
            if let Some(stream) = self.store.find_stream_by_key(&digest(key, k)).await? {
                return Ok(Some(Arc::new(stream)));
            }
        }
        Ok(None)
    }

    /// Whether `key` is the stream's current publish key (compared in constant time,
    /// under every key of the ring).
    pub fn key_matches(&self, stream: &StreamRecord, key: &str) -> bool {
        keyed::matches_any(self.keys.stream_digest_keys(), &stream.key_digest, |k| digest(key, k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overflow;
    use crate::credentials::Scheme;
    use crate::ids::SessionId;
    use crate::service_fixtures::{from_ip, policy, Fixture, GENEROUS, PASSWORD};

    /// A registered user (a streamer when `streamer`) and their identity.
    async fn user(f: &Fixture, mobile: &str, streamer: bool) -> (UserRecord, Identity) {
        let accounts = f.accounts(policy(1, Overflow::EvictOldest), GENEROUS);
        let meta = RequestMeta::command();
        accounts.register(mobile, PASSWORD.into(), &meta).await.unwrap();
        let mut user = accounts.find(mobile).await.unwrap().unwrap();
        if streamer {
            accounts.change_role(&user, STREAMER, true, &meta).await.unwrap();
            user = accounts.find(mobile).await.unwrap().unwrap();
        }
        let who = Identity {
            user_id: user.user_id,
            session_id: SessionId::random(),
            login_time: 0,
            scheme: Scheme::Jwt,
        };
        (user, who)
    }

    #[tokio::test]
    async fn only_a_streamer_creates_and_a_name_is_taken_once() {
        let f = Fixture::new().await;
        let streams = f.streams();
        let meta = from_ip("192.0.2.1");
        let (_, viewer) = user(&f, "13800000001", false).await;
        let (_, streamer) = user(&f, "13800000002", true).await;
        let err = streams.create(&viewer, "mine", None, &meta).await.unwrap_err();
        assert_eq!(err.code(), "forbidden");

        let created = streams.create(&streamer, "mine", None, &meta).await.unwrap();
        assert_eq!((created.name.as_str(), created.access), ("mine", "login"));
        assert!(StreamKey::looks_like_a_key(&created.key), "{}", created.key);
        let err = streams.create(&streamer, "mine", None, &meta).await.unwrap_err();
        assert_eq!(err.code(), "stream_taken");
        for (name, access, code) in [
            ("Mine", None, "invalid_params"),
            ("-x", None, "invalid_params"),
            (&*"a".repeat(65), None, "invalid_params"),
            ("ok", Some("everyone"), "invalid_params"),
        ] {
            let err = streams.create(&streamer, name, access, &meta).await.unwrap_err();
            assert_eq!(err.code(), code, "{name}");
        }
        let public = streams.create(&streamer, "open", Some("public"), &meta).await.unwrap();
        assert_eq!(public.access, "public");
        let names: Vec<String> = streams
            .list_own(&streamer)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["mine", "open"]);
        assert!(streams.list_own(&viewer).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_rotated_key_replaces_the_old_one_and_no_key_is_stored() {
        let f = Fixture::new().await;
        let streams = f.streams();
        let meta = from_ip("192.0.2.1");
        let (_, who) = user(&f, "13800000002", true).await;
        let first = streams.create(&who, "live1", None, &meta).await.unwrap().key;
        let stored = f.streams.find_stream("live1").await.unwrap().unwrap();
        assert!(streams.key_matches(&stored, &first));
        assert!(!streams.key_matches(&stored, "sk_not-the-key"));

        let second = streams.rotate(Actor::Owner(&who), "live1", &meta).await.unwrap();
        let stored = f.streams.find_stream("live1").await.unwrap().unwrap();
        assert!(streams.key_matches(&stored, &second));
        assert!(!streams.key_matches(&stored, &first));

        // Neither key is anywhere on disk: database files or audit log.
        f.audit.flush().await;
        for entry in std::fs::read_dir(f.dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            for key in [&first, &second] {
                let found = bytes.windows(key.len()).any(|w| w == key.as_bytes());
                assert!(!found, "a key is stored raw");
            }
        }
        assert_eq!(f.count_events("stream_key_rotated").await, 1);
    }

    #[tokio::test]
    async fn another_users_stream_is_not_found_but_a_command_may_change_it() {
        let f = Fixture::new().await;
        let streams = f.streams();
        let meta = from_ip("192.0.2.1");
        let (_, owner) = user(&f, "13800000002", true).await;
        let (other_user, other) = user(&f, "13800000003", true).await;
        streams.create(&owner, "theirs", None, &meta).await.unwrap();
        for err in [
            streams.set_access(&other, "theirs", "public").await.unwrap_err(),
            streams.rotate(Actor::Owner(&other), "theirs", &meta).await.unwrap_err(),
            streams.delete(Actor::Owner(&other), "theirs", &meta).await.unwrap_err(),
            streams.delete(Actor::Owner(&owner), "nosuch", &meta).await.unwrap_err(),
        ] {
            assert_eq!(err.code(), "not_found");
        }
        let view = streams.set_access(&owner, "theirs", "public").await.unwrap();
        assert_eq!(view.access, "public");

        // An administrator: a stream for a user without the role, rotate, delete.
        let viewer = UserRecord {
            roles: vec!["viewer".into()],
            ..other_user
        };
        streams.add_for(&viewer, "given", &meta).await.unwrap();
        streams.rotate(Actor::Command, "theirs", &meta).await.unwrap();
        streams.delete(Actor::Command, "theirs", &meta).await.unwrap();
        assert!(f.streams.find_stream("theirs").await.unwrap().is_none());
        let all: Vec<String> = streams.list(None).await.unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(all, ["given"]);
    }
}
