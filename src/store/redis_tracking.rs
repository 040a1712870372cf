//! The sessions this process has lately found valid in Redis, kept in memory and
//! forgotten as soon as Redis says they changed, so that identify on Redis
//! usually costs no round trip at all.
//!
//! Redis tells: a connection of our own asks for server-assisted client-side
//! caching in broadcast mode (`CLIENT TRACKING ON BCAST PREFIX <prefix>{u`), and
//! Redis then pushes an `invalidate` message on it for every change to any user
//! key, whoever makes it: a logout or an eviction by any Passport process, a
//! command typed into redis-cli, an expiry.
//!
//! What keeps a hit right:
//! - **Freshness is proven, not assumed.** A `PING` goes down the tracking
//!   connection every [`HEARTBEAT`]. Redis answers in order, and redis-rs hands
//!   every message that came before an answer to us before the answer, so when the
//!   answer to a `PING` sent at `t` arrives, every invalidation Redis had sent for
//!   a change made before `t` has been applied here. (Redis sends broadcast
//!   invalidations at the end of its event-loop turn, so one for a change made in
//!   the same turn as the `PING` trails the answer by microseconds.) A hit is used
//!   only while such a `t` lies within [`TRUST_WINDOW`]: a change made by another
//!   process shows here within it even if the connection dies unnoticed (SPEC §5
//!   allows one second), and when Redis stops answering, identify goes back to
//!   asking Redis, and so fails closed, within it.
//! - **Tracking and reads reach the same server.** The same heartbeat asks the
//!   session store's own connection for its server's `run_id`; if it is not the
//!   tracked server's (a DNS or address failover moved one connection and not the
//!   other), the tracking connection is dropped and made again.
//! - **Every tracking connection is an epoch.** Losing one forgets everything; an
//!   entry or a read of an older epoch is never used.
//! - **A read that raced a change is never kept.** Each shard counts the changes
//!   it has heard of; a read is kept only if its shard heard of none while the
//!   read was on its way (the `Ticket`).
//! - **This process's own changes** (logout, revocation, eviction) are forgotten
//!   here before they answer, not when Redis's message comes back.
//!
//! Only "valid" is kept: a refusal is rare and always asks Redis. redis-rs has a
//! client-side cache of its own (`cache-aio`), but it is marked experimental,
//! keeps command replies rather than decisions, and has no notion of freshness:
//! it would go on answering from memory while Redis is stopped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::{AsyncConnectionConfig, ErrorKind, PushInfo, PushKind, RedisError, RedisResult, Value};

use super::SessionId;

/// How often the tracking connection proves it is current.
pub const HEARTBEAT: Duration = Duration::from_millis(100);
/// How old the newest proof may be before hits stop being used.
pub const TRUST_WINDOW: Duration = Duration::from_millis(500);
/// How long a heartbeat may wait for its answer before the connection is given up.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(1000);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
/// Before connecting again after a lost connection.
const RECONNECT_AFTER: Duration = Duration::from_millis(250);
/// Before asking again after the server answered with an error (it refuses
/// tracking: an ACL, a proxy, a server older than 6).
const REFUSED_RETRY_AFTER: Duration = Duration::from_secs(30);
/// Sessions kept at most (about 50 bytes each); a full shard drops expired ones
/// first, then any, an eighth of it at once.
const CAPACITY: usize = 512 * 1024;
const SHARDS: usize = 256;
/// The tracking connection's client name, as `CLIENT LIST` shows it.
pub const TRACKER_NAME: &str = "passport-session-tracker";
/// `confirmed_ms` while no tracking connection is current.
const NEVER: i64 = i64::MIN;

#[derive(Clone, Copy, Debug)]
struct Entry {
    user_id: i64,
    login_time: i64,
    expires_at: i64,
    epoch: u64,
}

#[derive(Default)]
struct Shard {
    entries: HashMap<SessionId, Entry>,
    /// Changes heard of for ids in this shard.
    changes: u64,
}

/// Taken before a read of Redis; a valid answer is kept only if it still holds.
#[derive(Clone, Copy, Debug)]
pub struct Ticket {
    epoch: u64,
    changes: u64,
}

pub struct NearCache {
    shards: Box<[RwLock<Shard>]>,
    /// Bumped by every new tracking connection and every flush.
    epoch: AtomicU64,
    /// Milliseconds since `base` at which the newest answered heartbeat was sent;
    /// `NEVER` while no tracking connection is current.
    confirmed_ms: AtomicI64,
    base: Instant,
}

impl Default for NearCache {
    fn default() -> Self {
        NearCache {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            epoch: AtomicU64::new(0),
            confirmed_ms: AtomicI64::new(NEVER),
            base: Instant::now(),
        }
    }
}

impl NearCache {
    fn shard(&self, sid: &SessionId) -> &RwLock<Shard> {
        // Session ids are random, so their first byte spreads them evenly.
        &self.shards[sid.0[0] as usize % SHARDS]
    }

    /// The current epoch, if the newest proof of freshness is recent enough.
    fn trusted_epoch(&self) -> Option<u64> {
        let confirmed = self.confirmed_ms.load(SeqCst);
        if confirmed == NEVER || self.now_ms() - confirmed > TRUST_WINDOW.as_millis() as i64 {
            return None;
        }
        Some(self.epoch.load(SeqCst))
    }

    /// True while hits may be used: a tracking connection is current and proven fresh.
    pub fn is_current(&self) -> bool {
        self.trusted_epoch().is_some()
    }

    /// True when this session is known valid without asking Redis.
    pub fn hit(&self, user_id: i64, sid: &SessionId, login_time: i64, now: i64) -> bool {
        let Some(epoch) = self.trusted_epoch() else {
            return false;
        };
        let shard = self.shard(sid).read();
        shard.entries.get(sid).is_some_and(|e| {
            e.epoch == epoch && e.user_id == user_id && e.login_time == login_time && e.expires_at > now
        })
    }

    /// To take before reading `sid` from Redis; `None` while nothing may be kept.
    pub fn ticket(&self, sid: &SessionId) -> Option<Ticket> {
        let changes = self.shard(sid).read().changes;
        let epoch = self.trusted_epoch()?;
        Some(Ticket { epoch, changes })
    }

    /// Keeps a session Redis has just answered valid, unless anything changed
    /// since the ticket was taken.
    pub fn admit(&self, ticket: Ticket, sid: &SessionId, user_id: i64, login_time: i64, expires_at: i64, now: i64) {
        let mut shard = self.shard(sid).write();
        if shard.changes != ticket.changes || self.trusted_epoch() != Some(ticket.epoch) {
            return;
        }
        let full = CAPACITY / SHARDS;
        if shard.entries.len() >= full && !shard.entries.contains_key(sid) {
            // Make room for many at once, so that a full shard is not swept on
            // every admission: the expired and older epochs first, then any.
            let epoch = ticket.epoch;
            shard.entries.retain(|_, e| e.expires_at > now && e.epoch == epoch);
            let mut excess = shard.entries.len().saturating_sub(full - full / 8);
            shard.entries.retain(|_, _| {
                let keep = excess == 0;
                excess = excess.saturating_sub(1);
                keep
            });
        }
        shard.entries.insert(
            *sid,
            Entry {
                user_id,
                login_time,
                expires_at,
                epoch: ticket.epoch,
            },
        );
    }

    /// Forgets one session: it changed, here or elsewhere.
    pub fn forget(&self, sid: &SessionId) {
        let mut shard = self.shard(sid).write();
        shard.changes += 1;
        shard.entries.remove(sid);
    }

    /// Forgets everything, for a change whose sessions are not known.
    pub fn forget_all(&self) {
        self.epoch.fetch_add(1, SeqCst);
        for shard in self.shards.iter() {
            let mut shard = shard.write();
            shard.changes += 1;
            shard.entries.clear();
        }
    }
}

/// What a tracking connection reports: that it started (tracking asked at
/// `sent`), each proof of freshness, its loss, and what Redis pushed on it. On a
/// single node the cache hears it directly; on a Cluster each node's connection
/// reports to the tally of every node (`redis_cluster_tracking`).
pub(super) trait Freshness: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
    fn tracking_since(&self, sent: i64);
    fn confirm(&self, sent: i64);
    fn lost(&self);
    fn apply(&self, push: &PushInfo);
}

impl Freshness for NearCache {
    fn now_ms(&self) -> i64 {
        self.base.elapsed().as_millis() as i64
    }

    /// The tracking connection is gone: nothing is used until a new one is current.
    fn lost(&self) {
        self.confirmed_ms.store(NEVER, SeqCst);
        self.forget_all();
    }

    /// A new tracking connection, asked for tracking at `sent`: a new epoch begins.
    fn tracking_since(&self, sent: i64) {
        self.epoch.fetch_add(1, SeqCst);
        self.confirmed_ms.store(sent, SeqCst);
    }

    /// Every invalidation for a change made before `sent` has been applied. Never
    /// revives a lost connection: only `tracking_since` starts trusting again.
    fn confirm(&self, sent: i64) {
        let _ = self
            .confirmed_ms
            .fetch_update(SeqCst, SeqCst, |c| (c != NEVER).then_some(c.max(sent)));
    }

    /// Applies one message Redis pushed on the tracking connection.
    fn apply(&self, push: &PushInfo) {
        if push.kind != PushKind::Invalidate {
            return;
        }
        match push.data.first() {
            Some(Value::Array(keys)) => {
                for key in keys {
                    if let Value::BulkString(key) = key {
                        if let Some(sid) = session_of_key(key) {
                            self.forget(&sid);
                        }
                    }
                }
            }
            // A null key list: Redis flushed a database or dropped its tracking table.
            _ => self.forget_all(),
        }
    }
}

/// The session id of a session hash key (`<prefix>{u<id>}:s:<sid>`); other keys
/// of a user (its list, its counter, tombstones) never make a session valid.
fn session_of_key(key: &[u8]) -> Option<SessionId> {
    let tail = &key[key.len().checked_sub(":s:".len() + 22)?..];
    let sid = tail.strip_prefix(b":s:")?;
    SessionId::parse(std::str::from_utf8(sid).ok()?)
}

/// Which keys' changes end what a tracker keeps: the keys under a prefix
/// (Redis's `BCAST PREFIX`). A server watches every user key of its store
/// ([`Watch::user_keys`]); a test that must see only this process's own
/// bookkeeping at work watches a prefix nothing is written under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watch {
    prefix: String,
}

impl Watch {
    /// Every user key of a store whose keys start with `store_prefix`.
    pub fn user_keys(store_prefix: &str) -> Watch {
        Watch::prefix(format!("{store_prefix}{{u"))
    }

    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: String) -> Watch {
        Watch { prefix }
    }
}

/// Keeps `cache` fed from Redis for as long as the task runs: connects, asks for
/// tracking, proves freshness every [`HEARTBEAT`], and starts again when the
/// connection fails or stops answering. `store` is the session store's own
/// connection, whose server the tracked one must be. If Redis refuses tracking,
/// identify asks Redis every time, and the tracker asks again every
/// [`REFUSED_RETRY_AFTER`].
pub async fn track(cache: Arc<NearCache>, info: redis::ConnectionInfo, watch: Watch, store: ConnectionManager) {
    track_node(cache, info, &watch, Some(store)).await
}

/// Keeps one node's tracking connection going and reports to `fresh`; with
/// `store`, each heartbeat also checks that connection reaches the tracked server.
pub(super) async fn track_node(
    fresh: Arc<dyn Freshness>,
    mut info: redis::ConnectionInfo,
    watch: &Watch,
    store: Option<ConnectionManager>,
) {
    let watched = &watch.prefix;
    let node = info.addr.to_string();
    info.redis.protocol = redis::ProtocolVersion::RESP3;
    let client = match redis::Client::open(info) {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(error = %e, %node, "no Redis session cache: identify asks Redis on every request");
            return;
        }
    };
    // Logged when tracking stops and when it starts again, not on every attempt.
    let mut tracking = true;
    loop {
        let live = Arc::new(AtomicBool::new(true));
        let (why, wait) = match open(&client, &fresh, watched, &live).await {
            Ok((conn, run_id)) => {
                if !tracking {
                    tracing::info!(%node, "Redis session cache tracking again");
                    tracking = true;
                }
                (
                    heartbeat(conn, &*fresh, &live, store.clone(), &run_id).await,
                    RECONNECT_AFTER,
                )
            }
            Err(e) => {
                let answered = !(e.is_io_error() || e.is_timeout() || e.is_connection_dropped());
                let wait = if answered { REFUSED_RETRY_AFTER } else { RECONNECT_AFTER };
                (format!("cannot start tracking: {e}"), wait)
            }
        };
        live.store(false, SeqCst);
        fresh.lost();
        if tracking {
            tracing::warn!(reason = %why, %node, "Redis session cache off: identify asks Redis until tracking works again");
            tracking = false;
        }
        tokio::time::sleep(wait).await;
    }
}

/// A tracking connection, current once this returns, and its server's `run_id`.
async fn open(
    client: &redis::Client,
    cache: &Arc<dyn Freshness>,
    watched: &str,
    live: &Arc<AtomicBool>,
) -> RedisResult<(MultiplexedConnection, String)> {
    let (pushes, connection) = (cache.clone(), live.clone());
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(CONNECT_TIMEOUT)
        .set_response_timeout(HEARTBEAT_TIMEOUT)
        .set_push_sender(move |push: PushInfo| {
            if push.kind == PushKind::Disconnection {
                // Only this connection's own loss counts; a connection given up
                // earlier may report its end after a new one has taken over.
                if connection.swap(false, SeqCst) {
                    pushes.lost();
                }
            } else {
                pushes.apply(&push);
            }
            Ok::<(), std::convert::Infallible>(())
        });
    let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
    // Named, so that an operator's CLIENT LIST tells it from the store's connection.
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(TRACKER_NAME)
        .query_async::<()>(&mut conn)
        .await?;
    let run_id = run_id(&mut conn).await?;
    let sent = cache.now_ms();
    redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .arg("BCAST")
        .arg("PREFIX")
        .arg(watched)
        .query_async::<()>(&mut conn)
        .await?;
    cache.tracking_since(sent);
    // Lost between the answer and now: nothing may be trusted on its word.
    if !live.load(SeqCst) {
        cache.lost();
        return Err(RedisError::from((ErrorKind::IoError, "tracking connection lost")));
    }
    Ok((conn, run_id))
}

/// Proves freshness until the connection fails, stops answering in time, or the
/// session store's connection (`store`, where there is one to check) turns out to
/// reach another server; says why it stopped.
async fn heartbeat(
    mut conn: MultiplexedConnection,
    cache: &dyn Freshness,
    live: &AtomicBool,
    mut store: Option<ConnectionManager>,
    tracked: &str,
) -> String {
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        if !live.load(SeqCst) {
            return "the tracking connection closed".into();
        }
        let sent = cache.now_ms();
        let ping = redis::cmd("PING");
        let server = async {
            match &mut store {
                Some(store) => run_id(store).await,
                None => Ok(tracked.to_owned()),
            }
        };
        let both = async { tokio::join!(ping.query_async::<String>(&mut conn), server) };
        match tokio::time::timeout(HEARTBEAT_TIMEOUT, both).await {
            Err(_) => return "Redis did not answer the heartbeat in time".into(),
            Ok((Err(e), _)) => return format!("heartbeat failed: {e}"),
            Ok((_, Err(e))) => return format!("the session store's connection failed: {e}"),
            Ok((Ok(_), Ok(server))) if server != tracked => {
                return "the session store's connection reaches another Redis server".into()
            }
            Ok((Ok(_), Ok(_))) => cache.confirm(sent),
        }
    }
}

/// The `run_id` of the server a connection reaches (`INFO server`).
async fn run_id(conn: &mut impl redis::aio::ConnectionLike) -> RedisResult<String> {
    let info: String = redis::cmd("INFO").arg("server").query_async(conn).await?;
    info.lines()
        .find_map(|line| line.strip_prefix("run_id:"))
        .map(|id| id.trim().to_owned())
        .ok_or_else(|| RedisError::from((ErrorKind::TypeError, "INFO server names no run_id")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(n: u8) -> SessionId {
        SessionId([n; 16])
    }

    fn current() -> NearCache {
        let cache = NearCache::default();
        cache.tracking_since(cache.now_ms());
        cache
    }

    #[test]
    fn nothing_is_kept_or_used_without_a_current_tracking_connection() {
        let cache = NearCache::default();
        assert!(cache.ticket(&sid(1)).is_none());
        let cache = current();
        let t = cache.ticket(&sid(1)).unwrap();
        cache.admit(t, &sid(1), 7, 100, 1_000, 0);
        assert!(cache.hit(7, &sid(1), 100, 0));
        cache.lost();
        assert!(!cache.hit(7, &sid(1), 100, 0));
        cache.tracking_since(cache.now_ms());
        assert!(!cache.hit(7, &sid(1), 100, 0), "a new connection starts empty");
    }

    #[test]
    fn a_heartbeat_never_revives_a_lost_connection_nor_an_older_epoch() {
        let cache = current();
        let t = cache.ticket(&sid(1)).unwrap();
        cache.admit(t, &sid(1), 7, 100, 1_000, 0);
        cache.lost();
        cache.confirm(cache.now_ms()); // an answer that was already on its way
        assert!(!cache.is_current());
        // Even if entries were left behind, a new connection does not use them.
        let cache = current();
        let t = cache.ticket(&sid(1)).unwrap();
        cache.admit(t, &sid(1), 7, 100, 1_000, 0);
        cache.tracking_since(cache.now_ms());
        assert!(!cache.hit(7, &sid(1), 100, 0));
    }

    #[test]
    fn a_hit_needs_the_same_user_login_time_and_an_unexpired_session() {
        let cache = current();
        let t = cache.ticket(&sid(1)).unwrap();
        cache.admit(t, &sid(1), 7, 100, 1_000, 0);
        assert!(cache.hit(7, &sid(1), 100, 999));
        assert!(!cache.hit(8, &sid(1), 100, 999));
        assert!(!cache.hit(7, &sid(1), 101, 999));
        assert!(!cache.hit(7, &sid(1), 100, 1_000));
        assert!(!cache.hit(7, &sid(2), 100, 999));
    }

    #[test]
    fn a_read_that_raced_a_change_or_a_new_epoch_is_not_kept() {
        let cache = current();
        let t = cache.ticket(&sid(1)).unwrap();
        cache.forget(&sid(1)); // the invalidation overtook the read's answer
        cache.admit(t, &sid(1), 7, 100, 1_000, 0);
        assert!(!cache.hit(7, &sid(1), 100, 0));

        let t = cache.ticket(&sid(1)).unwrap();
        cache.lost();
        cache.tracking_since(cache.now_ms());
        cache.admit(t, &sid(1), 7, 100, 1_000, 0);
        assert!(!cache.hit(7, &sid(1), 100, 0));

        let t = cache.ticket(&sid(1)).unwrap();
        cache.forget(&sid(2)); // another shard: no reason to refuse
        cache.admit(t, &sid(1), 7, 100, 1_000, 0);
        assert!(cache.hit(7, &sid(1), 100, 0));
    }

    #[test]
    fn hits_stop_when_freshness_is_not_proven_in_time() {
        let cache = current();
        let t = cache.ticket(&sid(1)).unwrap();
        cache.admit(t, &sid(1), 7, 100, 1_000, 0);
        let old = cache.now_ms() - TRUST_WINDOW.as_millis() as i64 - 1;
        cache.confirmed_ms.store(old, SeqCst);
        assert!(!cache.hit(7, &sid(1), 100, 0));
        cache.confirm(cache.now_ms());
        assert!(cache.hit(7, &sid(1), 100, 0));
    }

    #[test]
    fn invalidations_forget_session_keys_and_a_null_forgets_all() {
        let cache = current();
        for n in [1, 2] {
            let t = cache.ticket(&sid(n)).unwrap();
            cache.admit(t, &sid(n), 7, 100, 1_000, 0);
        }
        let key = |kind: &str, n: u8| Value::BulkString(format!("passport:{{u7}}:{kind}:{}", sid(n)).into_bytes());
        let push = |data| PushInfo {
            kind: PushKind::Invalidate,
            data: vec![data],
        };
        cache.apply(&push(Value::Array(vec![key("t", 1), key("x", 1)])));
        assert!(cache.hit(7, &sid(1), 100, 0), "only session keys matter");
        cache.apply(&push(Value::Array(vec![key("s", 1)])));
        assert!(!cache.hit(7, &sid(1), 100, 0));
        assert!(cache.hit(7, &sid(2), 100, 0));
        cache.apply(&push(Value::Nil));
        assert!(!cache.hit(7, &sid(2), 100, 0));
    }

    #[test]
    fn a_full_shard_makes_room() {
        let cache = current();
        let per_shard = CAPACITY / SHARDS;
        for i in 0..=per_shard {
            let mut id = [0u8; 16];
            id[0] = 3; // one shard
            id[8..16].copy_from_slice(&(i as u64).to_le_bytes());
            let t = cache.ticket(&SessionId(id)).unwrap();
            cache.admit(t, &SessionId(id), 7, 100, 1_000, 0);
        }
        let shard = cache.shard(&sid(3)).read();
        assert!(
            shard.entries.len() <= per_shard - per_shard / 8 + 1,
            "room for many at once"
        );
        let mut newest = [0u8; 16];
        newest[0] = 3;
        newest[8..16].copy_from_slice(&(per_shard as u64).to_le_bytes());
        assert!(shard.entries.contains_key(&SessionId(newest)));
    }

    #[test]
    fn session_keys_are_told_from_other_keys() {
        let s = sid(9).to_string();
        assert_eq!(session_of_key(format!("p:{{u1}}:s:{s}").as_bytes()), Some(sid(9)));
        assert_eq!(session_of_key(format!("p:{{u1}}:t:{s}").as_bytes()), None);
        assert_eq!(session_of_key(b"p:{u1}:sessions"), None);
        assert_eq!(session_of_key(b"s:"), None);
    }
}
