//! Storage behind small traits; the backend is chosen once, in [`connect`].
//!
//! Users live in SQL (`UserStore`). Sessions live in a `SessionStore`: on the
//! embedded default, SQLite for durability with the live sessions served from
//! memory (`embedded_cache.rs`), so identify never waits on a disk.

mod connect;
pub mod embedded;
pub mod embedded_cache;
pub mod mysql;
pub mod postgres;
pub mod redis;
mod redis_cluster_tracking;
mod redis_sentinel;
pub mod redis_topology;
pub mod redis_tracking;
pub mod sqlite;
mod sqlite_pool;

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::config::Overflow;
use crate::ids::SessionId;

pub use connect::{connect, Mode, Stores};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or cannot answer now: the caller fails closed (503).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule refused the write (the mobile is taken).
    #[error("conflict")]
    Conflict,
    #[error(transparent)]
    Other(anyhow::Error),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub user_id: i64,
    pub mobile: String,
    pub password_hash: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub created_at: i64,
    pub last_login: Option<i64>,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user; `Conflict` when the mobile is taken. Durable when it returns.
    async fn create(&self, mobile: &str, password_hash: &str, roles: &[String], now: i64) -> Result<i64, StoreError>;
    async fn find_by_mobile(&self, mobile: &str) -> Result<Option<UserRecord>, StoreError>;
    async fn find_by_id(&self, user_id: i64) -> Result<Option<UserRecord>, StoreError>;
    /// False when there is no such user.
    async fn set_password_hash(&self, user_id: i64, hash: &str) -> Result<bool, StoreError>;
    async fn set_disabled(&self, user_id: i64, disabled: bool) -> Result<bool, StoreError>;
    /// Replaces the hash only while it is still `expected`, so that a rehash at login
    /// cannot undo a password change made meanwhile.
    async fn replace_password_hash(&self, user_id: i64, expected: &str, new: &str) -> Result<bool, StoreError>;
    /// Replaces the roles only while they are still `expected` (two role changes at
    /// once cannot lose one); false when they changed meanwhile or there is no user.
    async fn replace_roles(&self, user_id: i64, expected: &[String], new: &[String]) -> Result<bool, StoreError>;
    /// Inserts a user keeping its id and hash; false when the id or the mobile exists.
    async fn import(&self, user: &UserRecord) -> Result<bool, StoreError>;
    /// After imports with explicit ids: new ids continue above the largest.
    async fn finish_import(&self) -> Result<(), StoreError>;
    /// Records a login at `at`, if the account still has `password_hash` and is not
    /// disabled, and returns the account as it stands (`None` once deleted). One
    /// step: a login re-reads its account and records itself in one trip.
    async fn record_login(&self, user_id: i64, password_hash: &str, at: i64) -> Result<Option<UserRecord>, StoreError>;
    /// Every user, by id.
    async fn list(&self) -> Result<Vec<UserRecord>, StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
    /// Releases connections; every later call answers `Unavailable`.
    async fn close(&self);
}

/// Who may watch a stream (SPEC §11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamAccess {
    /// Only a logged-in user with a play ticket.
    Login,
    /// Anyone, with no credential.
    Public,
}

impl StreamAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamAccess::Login => "login",
            StreamAccess::Public => "public",
        }
    }

    pub fn parse(s: &str) -> Option<StreamAccess> {
        match s {
            "login" => Some(StreamAccess::Login),
            "public" => Some(StreamAccess::Public),
            _ => None,
        }
    }
}

/// A stream as stored: its publish key only as a keyed digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamRecord {
    pub name: String,
    pub owner_id: i64,
    pub access: StreamAccess,
    pub key_digest: [u8; 32],
    pub created_at: i64,
}

/// Streams live beside the users, in the same database.
#[async_trait]
pub trait StreamStore: Send + Sync {
    /// `Conflict` when the name is taken.
    async fn create_stream(&self, stream: &StreamRecord) -> Result<(), StoreError>;
    async fn find_stream(&self, name: &str) -> Result<Option<StreamRecord>, StoreError>;
    /// The stream whose key has this digest.
    async fn find_stream_by_key(&self, key_digest: &[u8; 32]) -> Result<Option<StreamRecord>, StoreError>;
    /// One owner's streams, or every stream; oldest first.
    async fn list_streams(&self, owner_id: Option<i64>) -> Result<Vec<StreamRecord>, StoreError>;
    /// These three change the stream only while `owner_id` owns it (a stream deleted
    /// and made again by someone else meanwhile is not theirs); false otherwise.
    async fn set_stream_access(&self, name: &str, owner_id: i64, access: StreamAccess) -> Result<bool, StoreError>;
    async fn set_stream_key(&self, name: &str, owner_id: i64, key_digest: &[u8; 32]) -> Result<bool, StoreError>;
    async fn delete_stream(&self, name: &str, owner_id: i64) -> Result<bool, StoreError>;
}

/// A session's refresh token, as stored: a digest, never the token (see `refresh.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RefreshState {
    pub digest: [u8; 32],
    pub generation: i64,
    /// When the current token replaced its predecessor (0: never rotated).
    pub rotated_at: i64,
}

/// A session as stored (SPEC §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub session_id: SessionId,
    pub user_id: i64,
    pub login_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub device: Option<String>,
    pub ip: Option<String>,
    pub refresh: RefreshState,
}

/// How many sessions a user may hold and what a login beyond that does.
#[derive(Clone, Copy, Debug)]
pub struct SessionPolicy {
    pub max_sessions: u32,
    pub overflow: Overflow,
    /// How long an evicted session answers `session_replaced` (at least the access TTL).
    pub tombstone_ttl: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateOutcome {
    /// Stored; these sessions lost their slot to it.
    Created { evicted: Vec<SessionId> },
    /// `max_sessions` live and the policy is `reject`: nothing changed.
    LimitReached,
}

/// What identify learns from the session store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionCheck {
    Valid,
    /// Ended because a newer login took its slot.
    Replaced,
    /// Logged out, revoked, expired, or never existed.
    Revoked,
}

/// What a store found under a session id: the live session, its tombstone, or both
/// or neither (each as owner and expiry, plus the live session's login time).
#[derive(Clone, Copy, Debug, Default)]
pub struct Found {
    pub live: Option<(i64, i64, i64)>,
    pub tombstone: Option<(i64, i64)>,
}

impl SessionCheck {
    /// The one rule of SPEC §5 step 3, shared by every backend: valid only when the
    /// live session belongs to the user, has the token's login time and has not
    /// expired; replaced while the user's tombstone lasts; revoked otherwise.
    pub fn decide(found: Found, user_id: i64, login_time: i64, now: i64) -> SessionCheck {
        if let Some((owner, lt, expires_at)) = found.live {
            if owner == user_id && lt == login_time && expires_at > now {
                return SessionCheck::Valid;
            }
        }
        match found.tombstone {
            Some((owner, expires_at)) if owner == user_id && expires_at > now => SessionCheck::Replaced,
            _ => SessionCheck::Revoked,
        }
    }
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a session, applying `policy` atomically with the insert: concurrent
    /// creations for one user never leave more than `max_sessions`.
    async fn create(&self, session: &Session, policy: &SessionPolicy, now: i64) -> Result<CreateOutcome, StoreError>;
    /// At most one round trip; never touches the user table.
    async fn check(
        &self,
        user_id: i64,
        session_id: &SessionId,
        login_time: i64,
        now: i64,
    ) -> Result<SessionCheck, StoreError>;
    /// The user's live sessions, oldest first.
    async fn list(&self, user_id: i64, now: i64) -> Result<Vec<Session>, StoreError>;
    /// Ends one session of this user; false when it was not theirs or not live.
    async fn revoke(&self, user_id: i64, session_id: &SessionId) -> Result<bool, StoreError>;
    /// Ends every session of the user; returns the ids it ended.
    async fn revoke_all(&self, user_id: i64) -> Result<Vec<SessionId>, StoreError>;
    /// The live session with its refresh state, if any.
    async fn refresh_state(
        &self,
        user_id: i64,
        session_id: &SessionId,
        now: i64,
    ) -> Result<Option<Session>, StoreError>;
    /// Replaces the refresh state and slides the expiry, only if the stored digest is
    /// still `expected` (compare-and-set: of two parallel rotations, one wins).
    async fn rotate_refresh(
        &self,
        user_id: i64,
        session_id: &SessionId,
        expected: &[u8; 32],
        next: &RefreshState,
        expires_at: i64,
    ) -> Result<bool, StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
    /// Answers as `ping`, with what the store sees of the servers behind it where
    /// that is more than one process (Redis).
    async fn topology(&self) -> Result<Option<redis_topology::Topology>, StoreError> {
        self.ping().await.map(|()| None)
    }
    /// Releases connections and background work; every later call answers `Unavailable`.
    async fn close(&self);
    /// How many sessions the store holds, when it can tell without a round trip.
    fn live_sessions(&self) -> Option<usize> {
        None
    }
}

/// A rate-limit counter as it stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count {
    pub count: u32,
    /// Seconds until the window closes and the count starts again.
    pub reset_in: i64,
}

/// Shared counters for rate limiting: fixed windows, counted atomically in the
/// store so that every process sees the same numbers.
#[async_trait]
pub trait RateStore: Send + Sync {
    /// Adds one to `key`; a key whose window has closed starts a new `window` at 1.
    async fn hit(&self, key: &str, window: i64, now: i64) -> Result<Count, StoreError>;
    /// The count without adding (0 once the window has closed).
    async fn peek(&self, key: &str, now: i64) -> Result<Count, StoreError>;
    /// `peek` of several keys, in their order. A store may answer all of them at
    /// once (a login looks at two counters of its account).
    async fn peek_all(&self, keys: &[&str], now: i64) -> Result<Vec<Count>, StoreError> {
        let mut counts = Vec::with_capacity(keys.len());
        for key in keys {
            counts.push(self.peek(key, now).await?);
        }
        Ok(counts)
    }
    async fn reset(&self, key: &str) -> Result<(), StoreError>;
}

/// Counts of backend calls, so tests can show which paths reach which store.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Every query of the user table.
    pub user_queries: AtomicU64,
    /// Session checks (identify) answered by a query of the embedded SQLite file.
    pub session_checks_sql: AtomicU64,
    /// Session checks (identify) answered from memory: the embedded store's cache,
    /// or the sessions a server on Redis keeps (`redis_tracking`).
    pub session_checks_memory: AtomicU64,
}

impl StoreStats {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Roles as stored: a JSON list, always written by this one function so that a
/// compare-and-set can match the text.
fn roles_json(roles: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(roles).map_err(|e| StoreError::Other(e.into()))
}

/// A stream from its stored columns.
fn stream_record(
    name: String,
    owner_id: i64,
    access: &str,
    key_digest: &[u8],
    created_at: i64,
) -> Result<StreamRecord, StoreError> {
    let corrupt = |what: &str| StoreError::Other(anyhow::anyhow!("stream {name}: stored {what} is corrupt"));
    let access = StreamAccess::parse(access).ok_or_else(|| corrupt("access"))?;
    let key_digest = key_digest.try_into().map_err(|_| corrupt("key digest"))?;
    Ok(StreamRecord {
        name,
        owner_id,
        access,
        key_digest,
        created_at,
    })
}

/// Counts a store's failure in the metrics; a conflict (a taken mobile or name) is
/// an answer, not a failure.
pub(crate) fn counted(store: &'static str, e: StoreError) -> StoreError {
    if !matches!(e, StoreError::Conflict) {
        crate::observe::store_error(store);
    }
    e
}

/// Classifies a sqlx error: reachability problems fail closed as `Unavailable`.
pub(crate) fn classify(e: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match &e {
        E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::WorkerCrashed => {
            StoreError::Unavailable(e.to_string())
        }
        E::Database(db) => {
            if db.is_unique_violation() {
                return StoreError::Conflict;
            }
            // PostgreSQL: connection exceptions (08), operator intervention such as a
            // shutdown (57P), insufficient resources (53).
            if let Some(code) = db.code() {
                if code.starts_with("08") || code.starts_with("57P") || code.starts_with("53") {
                    return StoreError::Unavailable(e.to_string());
                }
            }
            // MySQL / MariaDB: by error number, since errors sent before the
            // handshake carry no SQLSTATE. Too many connections (1040), host blocked
            // (1129), shutdown (1053), aborted or killed connections (1152-1161,
            // 1184, 1317, 1927, 4031), out of resources (1203, 1226), lock wait
            // timeout and deadlock (1205, 1213), read-only during a failover (1290,
            // 1836): the store cannot serve now, not a bug.
            if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                return match my.number() {
                    1040
                    | 1053
                    | 1129
                    | 1152..=1161
                    | 1184
                    | 1203
                    | 1205
                    | 1213
                    | 1226
                    | 1290
                    | 1317
                    | 1836
                    | 1927
                    | 4031 => StoreError::Unavailable(e.to_string()),
                    _ => StoreError::Other(e.into()),
                };
            }
            // SQLite: BUSY, LOCKED, IOERR, FULL, CANTOPEN, READONLY (primary codes).
            // Only SQLite's codes are numbers to mask: PostgreSQL's SQLSTATEs may be
            // all digits too (22021, a NUL byte in text, is the client's fault).
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_none() {
                return StoreError::Other(e.into());
            }
            let primary = db.code().and_then(|c| c.parse::<i64>().ok()).map(|c| c & 0xff);
            match primary {
                Some(5 | 6 | 8 | 10 | 13 | 14) => StoreError::Unavailable(e.to_string()),
                _ => StoreError::Other(e.into()),
            }
        }
        _ => StoreError::Other(e.into()),
    }
}
