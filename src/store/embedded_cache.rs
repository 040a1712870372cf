//! The server's view of the embedded session store: every live session and
//! tombstone held in memory, so identify costs a hash-map lookup and no I/O.
//!
//! SQLite stays the source of truth. Every change this process makes is written
//! there first, then the user's entry is reloaded from it (a login reads it back
//! in its own write transaction, applied once that commits); changes made by other
//! processes (the `passport` command beside a running server) are found through
//! the change log, polled every [`POLL_INTERVAL`]. Both run under one lock, so a
//! reload can never apply an older state over a newer one. A reload also reads the
//! log's position in the same snapshot, so a poll skips the log rows a reload has
//! already covered (this process's own writes, nearly always): a login reloads its
//! user once, not once more at the next poll.
//!
//! Fail closed: if the log cannot be read for [`STALE_AFTER`], the cache may be
//! missing a revocation, so identify answers `Unavailable` until it catches up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::RwLock;

use super::embedded::{EmbeddedSessions, UserSessions};
use super::{
    Count, CreateOutcome, Found, RateStore, RefreshState, Session, SessionCheck, SessionId, SessionPolicy,
    SessionStore, StoreError, StoreStats,
};

pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Longest a cache may go without a completed poll before it is distrusted:
/// SPEC §5 gives other processes' changes one second to take effect.
pub const STALE_AFTER: Duration = Duration::from_millis(900);
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// What identify needs of a session, and nothing more (it is held for every live session).
#[derive(Clone, Copy, Debug)]
struct Live {
    user_id: i64,
    login_time: i64,
    expires_at: i64,
}

#[derive(Clone, Copy, Debug)]
struct Tomb {
    user_id: i64,
    expires_at: i64,
}

#[derive(Default)]
struct Cache {
    live: HashMap<SessionId, Live>,
    tombs: HashMap<SessionId, Tomb>,
    /// Which ids belong to a user, so that a reload replaces exactly that user's entries.
    by_user: HashMap<i64, Vec<SessionId>>,
}

impl Cache {
    fn replace_user(&mut self, user_id: i64, state: UserSessions) {
        if let Some(old) = self.by_user.remove(&user_id) {
            for sid in old {
                self.live.remove(&sid);
                self.tombs.remove(&sid);
            }
        }
        self.insert(state);
    }

    fn insert(&mut self, state: UserSessions) {
        for s in state.sessions {
            self.live.insert(
                s.session_id,
                Live {
                    user_id: s.user_id,
                    login_time: s.login_time,
                    expires_at: s.expires_at,
                },
            );
            self.by_user.entry(s.user_id).or_default().push(s.session_id);
        }
        for t in state.tombstones {
            self.tombs.insert(
                t.session_id,
                Tomb {
                    user_id: t.user_id,
                    expires_at: t.expires_at,
                },
            );
            self.by_user.entry(t.user_id).or_default().push(t.session_id);
        }
    }

    fn sweep(&mut self, now: i64) {
        self.live.retain(|_, s| s.expires_at > now);
        self.tombs.retain(|_, t| t.expires_at > now);
        let (live, tombs) = (&self.live, &self.tombs);
        self.by_user.retain(|_, ids| {
            ids.retain(|id| live.contains_key(id) || tombs.contains_key(id));
            !ids.is_empty()
        });
    }
}

/// Where the cache stands against the change log.
struct Position {
    /// Every log row up to here has been applied.
    seq: i64,
    /// Users reloaded since, each with the log position its reload saw: a later
    /// poll need not reload them again for rows up to that position.
    reloaded: HashMap<i64, i64>,
}

struct Shared {
    db: EmbeddedSessions,
    cache: RwLock<Cache>,
    /// Held across "write SQL, reload from SQL" and across each poll.
    sync: tokio::sync::Mutex<Position>,
    /// Milliseconds since `epoch` of the last successful poll.
    last_sync_ms: AtomicI64,
    epoch: Instant,
    closed: AtomicBool,
    stats: Arc<StoreStats>,
}

pub struct CachedSessions {
    shared: Arc<Shared>,
    poller: tokio::task::JoinHandle<()>,
}

impl Shared {
    fn now_ms(&self) -> i64 {
        self.epoch.elapsed().as_millis() as i64
    }

    /// Records that the cache reflects SQLite as of `as_of_ms` (taken before the
    /// poll read anything, so the age is never understated).
    fn mark_synced(&self, as_of_ms: i64) {
        self.last_sync_ms.store(as_of_ms, Ordering::Relaxed);
    }

    fn ensure_fresh(&self) -> Result<(), StoreError> {
        if self.now_ms() - self.last_sync_ms.load(Ordering::Relaxed) > STALE_AFTER.as_millis() as i64 {
            return Err(StoreError::Unavailable("session cache is stale".into()));
        }
        Ok(())
    }

    async fn reload_user(&self, at: &mut Position, user_id: i64) -> Result<(), StoreError> {
        let state = self.db.load_user(user_id, crate::clock::now()).await?;
        self.apply_user(at, user_id, state);
        Ok(())
    }

    /// Puts a user's entry as SQLite has it (read under `sync`) into the cache.
    fn apply_user(&self, at: &mut Position, user_id: i64, state: UserSessions) {
        at.reloaded.insert(user_id, state.log_position);
        self.cache.write().replace_user(user_id, state);
    }

    /// Replaces the whole cache; returns the log position it reflects (a change
    /// committed during the load may come again at the next poll, never missed).
    async fn reload_all(&self) -> Result<i64, StoreError> {
        let state = self.db.load_all(crate::clock::now()).await?;
        let position = state.log_position;
        let mut fresh = Cache::default();
        fresh.insert(state);
        *self.cache.write() = fresh;
        Ok(position)
    }

    /// Applies what other processes changed since the last poll.
    async fn poll(&self) -> Result<(), StoreError> {
        let mut at = self.sync.lock().await;
        let as_of = self.now_ms();
        match self.db.changes_since(at.seq).await? {
            Some((changes, last)) => {
                let mut users: Vec<i64> = changes
                    .into_iter()
                    .filter(|(seq, user_id)| at.reloaded.get(user_id).is_none_or(|covered| seq > covered))
                    .map(|(_, user_id)| user_id)
                    .collect();
                users.sort_unstable();
                users.dedup();
                for user_id in users {
                    self.reload_user(&mut at, user_id).await?;
                }
                at.seq = last;
            }
            None => at.seq = self.reload_all().await?,
        }
        // What the log holds from here on is newer than any reload so far.
        let seq = at.seq;
        at.reloaded.retain(|_, covered| *covered > seq);
        self.mark_synced(as_of);
        Ok(())
    }
}

impl CachedSessions {
    /// Loads every live session and starts following the change log.
    pub async fn start(db: EmbeddedSessions) -> anyhow::Result<CachedSessions> {
        let started = Instant::now();
        let shared = Arc::new(Shared {
            stats: db.stats(),
            db,
            cache: RwLock::new(Cache::default()),
            sync: tokio::sync::Mutex::new(Position {
                seq: 0,
                reloaded: HashMap::new(),
            }),
            last_sync_ms: AtomicI64::new(0),
            epoch: Instant::now(),
            closed: AtomicBool::new(false),
        });
        let as_of = shared.now_ms();
        shared.sync.lock().await.seq = shared.reload_all().await?;
        shared.mark_synced(as_of);
        tracing::info!(
            sessions = shared.cache.read().live.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "embedded session store loaded"
        );
        let poller = tokio::spawn(follow(Arc::downgrade(&shared)));
        Ok(CachedSessions { shared, poller })
    }

    /// Number of live sessions held in memory.
    pub fn len(&self) -> usize {
        self.shared.cache.read().live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn ensure_open(&self) -> Result<(), StoreError> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable("session store closed".into()));
        }
        Ok(())
    }
}

/// The poll loop; ends when the store is dropped or closed.
async fn follow(shared: std::sync::Weak<Shared>) {
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_purge = Instant::now();
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else { return };
        if shared.closed.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = shared.poll().await {
            tracing::warn!(error = %e, "session change log unreadable; identify fails closed until it is");
        }
        if last_purge.elapsed() >= PURGE_EVERY {
            last_purge = Instant::now();
            let now = crate::clock::now();
            let _guard = shared.sync.lock().await;
            if let Err(e) = shared.db.purge(now).await {
                tracing::warn!(error = %e, "purging expired sessions failed");
            }
            shared.cache.write().sweep(now);
        }
    }
}

impl Drop for CachedSessions {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

#[async_trait]
impl SessionStore for CachedSessions {
    fn live_sessions(&self) -> Option<usize> {
        Some(self.len())
    }

    async fn create(&self, session: &Session, policy: &SessionPolicy, now: i64) -> Result<CreateOutcome, StoreError> {
        self.ensure_open()?;
        let mut at = self.shared.sync.lock().await;
        let (outcome, state) = self.shared.db.create_and_load(session, policy, now).await?;
        if let Some(state) = state {
            self.shared.apply_user(&mut at, session.user_id, state);
        }
        Ok(outcome)
    }

    async fn check(
        &self,
        user_id: i64,
        sid: &SessionId,
        login_time: i64,
        now: i64,
    ) -> Result<SessionCheck, StoreError> {
        self.ensure_open()?;
        self.shared.ensure_fresh()?;
        StoreStats::count(&self.shared.stats.session_checks_memory);
        let cache = self.shared.cache.read();
        let found = Found {
            live: cache.live.get(sid).map(|s| (s.user_id, s.login_time, s.expires_at)),
            tombstone: cache.tombs.get(sid).map(|t| (t.user_id, t.expires_at)),
        };
        Ok(SessionCheck::decide(found, user_id, login_time, now))
    }

    async fn list(&self, user_id: i64, now: i64) -> Result<Vec<Session>, StoreError> {
        self.ensure_open()?;
        self.shared.db.list(user_id, now).await
    }

    async fn revoke(&self, user_id: i64, sid: &SessionId) -> Result<bool, StoreError> {
        self.ensure_open()?;
        let mut at = self.shared.sync.lock().await;
        let done = self.shared.db.revoke(user_id, sid).await?;
        self.shared.reload_user(&mut at, user_id).await?;
        Ok(done)
    }

    async fn revoke_all(&self, user_id: i64) -> Result<Vec<SessionId>, StoreError> {
        self.ensure_open()?;
        let mut at = self.shared.sync.lock().await;
        let gone = self.shared.db.revoke_all(user_id).await?;
        self.shared.reload_user(&mut at, user_id).await?;
        Ok(gone)
    }

    async fn refresh_state(&self, user_id: i64, sid: &SessionId, now: i64) -> Result<Option<Session>, StoreError> {
        self.ensure_open()?;
        self.shared.db.refresh_state(user_id, sid, now).await
    }

    async fn rotate_refresh(
        &self,
        user_id: i64,
        sid: &SessionId,
        expected: &[u8; 32],
        next: &RefreshState,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        self.ensure_open()?;
        let mut at = self.shared.sync.lock().await;
        let done = self
            .shared
            .db
            .rotate_refresh(user_id, sid, expected, next, expires_at)
            .await?;
        if done {
            // The session's expiry slid: the cache must know.
            self.shared.reload_user(&mut at, user_id).await?;
        }
        Ok(done)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.ensure_open()?;
        self.shared.ensure_fresh()?;
        self.shared.db.ping().await
    }

    async fn close(&self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.db.close().await;
    }
}

#[async_trait]
impl RateStore for CachedSessions {
    async fn hit(&self, key: &str, window: i64, now: i64) -> Result<Count, StoreError> {
        self.ensure_open()?;
        self.shared.db.hit(key, window, now).await
    }

    async fn peek(&self, key: &str, now: i64) -> Result<Count, StoreError> {
        self.ensure_open()?;
        self.shared.db.peek(key, now).await
    }

    async fn peek_all(&self, keys: &[&str], now: i64) -> Result<Vec<Count>, StoreError> {
        self.ensure_open()?;
        self.shared.db.peek_all(keys, now).await
    }

    async fn reset(&self, key: &str) -> Result<(), StoreError> {
        self.ensure_open()?;
        self.shared.db.reset(key).await
    }
}
