//! The embedded session store's durable half: sessions in their own SQLite file
//! (`<data dir>/sessions.db`). Commands use it directly; the server puts the
//! memory cache of `embedded_cache.rs` in front of it.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Connection, Row, SqliteConnection, SqlitePool};

use super::sqlite_pool::{sqlite_options, sqlite_pool};
use super::{
    Count, CreateOutcome, Found, RateStore, RefreshState, Session, SessionCheck, SessionId, SessionPolicy,
    SessionStore, StoreError, StoreStats,
};
use crate::config::Overflow;

/// A failure of the embedded session and rate store, counted as this store's (`passport_store_errors_total`).
fn classify(e: sqlx::Error) -> StoreError {
    super::counted("embedded", super::classify(e))
}

/// A session that lost its slot: it answers `session_replaced` until `expires_at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tombstone {
    pub session_id: SessionId,
    pub user_id: i64,
    pub expires_at: i64,
}

/// One user's stored state, as the cache reloads it.
#[derive(Clone, Debug, Default)]
pub struct UserSessions {
    pub sessions: Vec<LiveEntry>,
    pub tombstones: Vec<Tombstone>,
    /// A change-log position that every change up to is in what was read: the
    /// newest in the same snapshot (a user's reload), or one read just before
    /// (the full load).
    pub log_position: i64,
}

/// What the memory cache holds of a live session: only what identify needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveEntry {
    pub session_id: SessionId,
    pub user_id: i64,
    pub login_time: i64,
    pub expires_at: i64,
}

/// Longest a write waits for the writes queued before it.
const WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Change-log rows older than this are pruned; a follower further behind reloads everything.
pub const CHANGE_LOG_KEEP_SECS: i64 = 600;

pub struct EmbeddedSessions {
    /// Reads.
    pool: SqlitePool,
    /// Every write, one at a time, on one connection of its own (`None` once
    /// closed). SQLite lets one connection write at a time anyway; queueing here
    /// instead of in its busy handler (which sleeps and retries) wakes the next
    /// writer as soon as the last is done, and a connection kept out of the pool
    /// skips the pool's check on every return.
    writer: tokio::sync::Mutex<Option<SqliteConnection>>,
    stats: Arc<StoreStats>,
}

const SESSION_COLUMNS: &str =
    "session_id, user_id, login_time, created_at, expires_at, device, ip, refresh_digest, refresh_generation, rotated_at";

fn session(row: &SqliteRow) -> Result<Session, StoreError> {
    let sid: Vec<u8> = row.try_get("session_id").map_err(classify)?;
    Ok(Session {
        session_id: SessionId::from_slice(&sid)
            .ok_or_else(|| StoreError::Other(anyhow::anyhow!("corrupt session id")))?,
        user_id: row.try_get("user_id").map_err(classify)?,
        login_time: row.try_get("login_time").map_err(classify)?,
        created_at: row.try_get("created_at").map_err(classify)?,
        expires_at: row.try_get("expires_at").map_err(classify)?,
        device: row.try_get("device").map_err(classify)?,
        ip: row.try_get("ip").map_err(classify)?,
        refresh: RefreshState {
            // A session from before refresh tokens has an empty digest: nothing matches it.
            digest: row
                .try_get::<Vec<u8>, _>("refresh_digest")
                .map_err(classify)?
                .try_into()
                .unwrap_or([0u8; 32]),
            generation: row.try_get("refresh_generation").map_err(classify)?,
            rotated_at: row.try_get("rotated_at").map_err(classify)?,
        },
    })
}

/// The change-log row every write to a user's sessions adds in its transaction:
/// `?1` the user, `?2` now.
const NOTE_CHANGE: &str = "INSERT INTO session_changes (user_id, at) VALUES (?1, ?2)";

async fn note_change(conn: &mut SqliteConnection, user_id: i64, now: i64) -> Result<(), StoreError> {
    sqlx::query(NOTE_CHANGE)
        .bind(user_id)
        .bind(now)
        .execute(conn)
        .await
        .map_err(classify)?;
    Ok(())
}

/// One user's live sessions (narrowly: only what the cache keeps), tombstones and
/// the change log's position, in one query (one snapshot, one trip to the
/// connection's thread): `?1` the user, `?2` now. Its rows are `LoadRow`s.
const LOAD_USER: &str = "SELECT 0, session_id, user_id, login_time, expires_at FROM sessions \
       WHERE expires_at > ?2 AND user_id = ?1 \
     UNION ALL \
     SELECT 1, session_id, user_id, 0, expires_at FROM session_tombstones WHERE expires_at > ?2 AND user_id = ?1 \
     UNION ALL \
     SELECT 2, x'', 0, 0, COALESCE(MAX(seq), 0) FROM session_changes";

/// kind (0 live, 1 tombstone, 2 log position), session id, user, login time, expiry
/// (the position, for kind 2).
type LoadRow = (i64, Vec<u8>, i64, i64, i64);

impl UserSessions {
    fn from_rows(rows: impl IntoIterator<Item = LoadRow>) -> UserSessions {
        let mut state = UserSessions::default();
        for (kind, sid, user_id, login_time, expires_at) in rows {
            if kind == 2 {
                state.log_position = expires_at;
                continue;
            }
            // An id of the wrong length can match no token: skipped, as it always was.
            let Some(session_id) = SessionId::from_slice(&sid) else {
                continue;
            };
            if kind == 0 {
                state.sessions.push(LiveEntry {
                    session_id,
                    user_id,
                    login_time,
                    expires_at,
                });
            } else {
                state.tombstones.push(Tombstone {
                    session_id,
                    user_id,
                    expires_at,
                });
            }
        }
        state
    }
}

fn unix_now() -> i64 {
    crate::clock::now()
}

impl EmbeddedSessions {
    pub async fn open(path: &Path, stats: Arc<StoreStats>) -> anyhow::Result<EmbeddedSessions> {
        let url = format!("sqlite://{}", path.display());
        let pool = sqlite_pool(4).connect_with(sqlite_options(&url)?).await?;
        sqlx::migrate!("migrations/embedded").run(&pool).await?;
        let writer = pool.acquire().await?.detach();
        Ok(EmbeddedSessions {
            pool,
            writer: tokio::sync::Mutex::new(Some(writer)),
            stats,
        })
    }

    /// The write connection, once the writes before have finished (at most
    /// [`WRITE_WAIT`]: then the store is `Unavailable`, as a busy SQLite would be).
    ///
    /// Every write transaction on it is a plain `BEGIN` whose first statement
    /// writes: SQLite takes its write lock at that statement, retrying while
    /// another connection (the command line) holds it, so the reads that follow
    /// are as atomic as under `BEGIN IMMEDIATE`. sqlx rolls back a plain `BEGIN`
    /// whose caller went away at any point; a custom one has a window after the
    /// `BEGIN` where a cancelled caller leaves the transaction open. Should one be
    /// open all the same, the connection is replaced: the dropped one rolls back.
    async fn writer(&self) -> Result<tokio::sync::MappedMutexGuard<'_, SqliteConnection>, StoreError> {
        let slot = tokio::time::timeout(WRITE_WAIT, self.writer.lock())
            .await
            .map_err(|_| super::counted("embedded", StoreError::Unavailable("session store busy".into())))?;
        let mut conn = tokio::sync::MutexGuard::try_map(slot, Option::as_mut)
            .map_err(|_| StoreError::Unavailable("session store closed".into()))?;
        if conn.is_in_transaction() {
            // A rollback queued by a dropped transaction runs before the ping answers.
            let _ = conn.ping().await;
            if conn.is_in_transaction() {
                self.replace_writer(&mut conn, "left in a transaction").await?;
            }
        }
        Ok(conn)
    }

    /// Puts a new connection from the pool in the writer's place; the old one,
    /// dropped, closes and rolls back whatever it had open.
    async fn replace_writer(&self, conn: &mut SqliteConnection, why: &str) -> Result<(), StoreError> {
        tracing::warn!(why, "replacing the session store's write connection");
        *conn = self.pool.acquire().await.map_err(classify)?.detach();
        Ok(())
    }

    pub fn stats(&self) -> Arc<StoreStats> {
        self.stats.clone()
    }

    /// Every live session and tombstone (the cache's starting point). Two plain
    /// queries: with a million rows they take half the time of `LOAD_USER`'s union.
    /// The position is read first, so every change up to it is in what was read.
    pub async fn load_all(&self, now: i64) -> Result<UserSessions, StoreError> {
        let log_position = self.last_change().await?;
        let sessions: Vec<(Vec<u8>, i64, i64, i64)> =
            sqlx::query_as("SELECT session_id, user_id, login_time, expires_at FROM sessions WHERE expires_at > ?")
                .bind(now)
                .fetch_all(&self.pool)
                .await
                .map_err(classify)?;
        let tombstones: Vec<(Vec<u8>, i64, i64)> =
            sqlx::query_as("SELECT session_id, user_id, expires_at FROM session_tombstones WHERE expires_at > ?")
                .bind(now)
                .fetch_all(&self.pool)
                .await
                .map_err(classify)?;
        let sessions = sessions
            .into_iter()
            .map(|(sid, user_id, login_time, expires_at)| (0, sid, user_id, login_time, expires_at));
        let tombstones = tombstones
            .into_iter()
            .map(|(sid, user_id, expires_at)| (1, sid, user_id, 0, expires_at));
        let position = std::iter::once((2, Vec::new(), 0, 0, log_position));
        Ok(UserSessions::from_rows(sessions.chain(tombstones).chain(position)))
    }

    /// One user's live sessions and tombstones, and the log position they reflect.
    pub async fn load_user(&self, user_id: i64, now: i64) -> Result<UserSessions, StoreError> {
        let rows = sqlx::query_as(LOAD_USER)
            .bind(user_id)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        Ok(UserSessions::from_rows(rows))
    }

    /// The newest change-log position.
    async fn last_change(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM session_changes")
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        row.try_get(0).map_err(classify)
    }

    /// The changes (position, user) after position `seq`, and the new position.
    /// `None` when the log no longer reaches back to `seq` (everything must be reloaded).
    pub async fn changes_since(&self, seq: i64) -> Result<Option<(Vec<(i64, i64)>, i64)>, StoreError> {
        let rows: Vec<(i64, i64)> =
            sqlx::query_as("SELECT seq, user_id FROM session_changes WHERE seq > ? ORDER BY seq")
                .bind(seq)
                .fetch_all(&self.pool)
                .await
                .map_err(classify)?;
        let Some(&(first_seq, _)) = rows.first() else {
            return Ok(Some((Vec::new(), seq)));
        };
        if first_seq > seq + 1 && seq > 0 {
            // Rows between were pruned (a rolled-back write gives its seq back, so a
            // gap is never a write still to come); only a full reload is safe.
            let gap: Option<i64> = sqlx::query("SELECT MIN(seq) FROM session_changes")
                .fetch_one(&self.pool)
                .await
                .map_err(classify)?
                .try_get(0)
                .map_err(classify)?;
            if gap.is_some_and(|min| min > seq + 1) {
                return Ok(None);
            }
        }
        let last = rows.last().map_or(seq, |&(last, _)| last);
        Ok(Some((rows, last)))
    }

    /// `create`, also answering the user's sessions as it left them (what the
    /// cache reloads after a login), read in the same transaction: `None` when
    /// nothing changed. The first statement takes SQLite's write lock (`writer`),
    /// so the count and the insert are one atomic step even against another
    /// process. BEGIN, two batches of statements and COMMIT: four trips to the
    /// connection's thread. sqlx binds `?N` by number across a batch's statements.
    pub async fn create_and_load(
        &self,
        s: &Session,
        policy: &SessionPolicy,
        now: i64,
    ) -> Result<(CreateOutcome, Option<UserSessions>), StoreError> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await.map_err(classify)?;
        let live: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "DELETE FROM sessions WHERE user_id = ?1 AND expires_at <= ?2; \
             SELECT id, session_id FROM sessions WHERE user_id = ?1 ORDER BY id",
        )
        .bind(s.user_id)
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
        let max = policy.max_sessions as usize;
        if live.len() >= max && policy.overflow == Overflow::Reject {
            return Ok((CreateOutcome::LimitReached, None));
        }
        // The oldest sessions past the limit give up their slots: every id up to
        // `last_evicted` (ids grow with creation; 0 evicts nothing).
        let evicting = (live.len() + 1).saturating_sub(max).min(live.len());
        let evicted = live[..evicting]
            .iter()
            .map(|(_, sid)| {
                SessionId::from_slice(sid).ok_or_else(|| StoreError::Other(anyhow::anyhow!("corrupt session id")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let last_evicted = live[..evicting].last().map_or(0, |(id, _)| *id);
        // `LOAD_USER` takes the same ?1 (user) and ?2 (now).
        let rows: Vec<LoadRow> = sqlx::query_as(&format!(
            "INSERT OR REPLACE INTO session_tombstones (session_id, user_id, expires_at) \
               SELECT session_id, user_id, ?4 FROM sessions WHERE user_id = ?1 AND id <= ?3; \
             DELETE FROM sessions WHERE user_id = ?1 AND id <= ?3; \
             INSERT INTO sessions (session_id, user_id, login_time, created_at, expires_at, device, ip, \
               refresh_digest, refresh_generation, rotated_at) VALUES (?5, ?1, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13); \
             {NOTE_CHANGE}; \
             {LOAD_USER}"
        ))
        .bind(s.user_id)
        .bind(now)
        .bind(last_evicted)
        .bind(now + policy.tombstone_ttl)
        .bind(&s.session_id.0[..])
        .bind(s.login_time)
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(&s.device)
        .bind(&s.ip)
        .bind(&s.refresh.digest[..])
        .bind(s.refresh.generation)
        .bind(s.refresh.rotated_at)
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok((CreateOutcome::Created { evicted }, Some(UserSessions::from_rows(rows))))
    }

    /// Deletes expired sessions and tombstones and old change-log rows.
    pub async fn purge(&self, now: i64) -> Result<(), StoreError> {
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await.map_err(classify)?;
        sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        sqlx::query("DELETE FROM session_tombstones WHERE expires_at <= ?")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        sqlx::query("DELETE FROM rate_counters WHERE window_end <= ?")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        sqlx::query("DELETE FROM session_changes WHERE at < ?")
            .bind(now - CHANGE_LOG_KEEP_SECS)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)
    }
}

#[async_trait]
impl SessionStore for EmbeddedSessions {
    async fn create(&self, s: &Session, policy: &SessionPolicy, now: i64) -> Result<CreateOutcome, StoreError> {
        Ok(self.create_and_load(s, policy, now).await?.0)
    }

    async fn check(
        &self,
        user_id: i64,
        sid: &SessionId,
        login_time: i64,
        now: i64,
    ) -> Result<SessionCheck, StoreError> {
        // One query for both tables: the live session, else its tombstone.
        let rows = sqlx::query(
            "SELECT 0 AS kind, user_id, login_time, expires_at FROM sessions WHERE session_id = ?1 \
             UNION ALL SELECT 1, user_id, 0, expires_at FROM session_tombstones WHERE session_id = ?1",
        )
        .bind(&sid.0[..])
        .fetch_all({
            StoreStats::count(&self.stats.session_checks_sql);
            &self.pool
        })
        .await
        .map_err(classify)?;
        let mut found = Found::default();
        for row in &rows {
            let kind: i64 = row.try_get(0).map_err(classify)?;
            let owner: i64 = row.try_get(1).map_err(classify)?;
            let lt: i64 = row.try_get(2).map_err(classify)?;
            let expires_at: i64 = row.try_get(3).map_err(classify)?;
            if kind == 0 {
                found.live = Some((owner, lt, expires_at));
            } else {
                found.tombstone = Some((owner, expires_at));
            }
        }
        Ok(SessionCheck::decide(found, user_id, login_time, now))
    }

    async fn list(&self, user_id: i64, now: i64) -> Result<Vec<Session>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = ? AND expires_at > ? ORDER BY id"
        ))
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter().map(session).collect()
    }

    async fn revoke(&self, user_id: i64, sid: &SessionId) -> Result<bool, StoreError> {
        let now = unix_now();
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await.map_err(classify)?;
        let done = sqlx::query("DELETE FROM sessions WHERE session_id = ? AND user_id = ? AND expires_at > ?")
            .bind(&sid.0[..])
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        note_change(&mut tx, user_id, now).await?;
        tx.commit().await.map_err(classify)?;
        Ok(true)
    }

    async fn refresh_state(&self, user_id: i64, sid: &SessionId, now: i64) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = ? AND user_id = ? AND expires_at > ?"
        ))
        .bind(&sid.0[..])
        .bind(user_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        row.as_ref().map(session).transpose()
    }

    async fn rotate_refresh(
        &self,
        user_id: i64,
        sid: &SessionId,
        expected: &[u8; 32],
        next: &RefreshState,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let now = unix_now();
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await.map_err(classify)?;
        let done = sqlx::query(
            "UPDATE sessions SET refresh_digest = ?, refresh_generation = ?, rotated_at = ?, expires_at = ? \
             WHERE session_id = ? AND user_id = ? AND refresh_digest = ? AND expires_at > ?",
        )
        .bind(&next.digest[..])
        .bind(next.generation)
        .bind(next.rotated_at)
        .bind(expires_at)
        .bind(&sid.0[..])
        .bind(user_id)
        .bind(&expected[..])
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        note_change(&mut tx, user_id, now).await?;
        tx.commit().await.map_err(classify)?;
        Ok(true)
    }

    async fn revoke_all(&self, user_id: i64) -> Result<Vec<SessionId>, StoreError> {
        let now = unix_now();
        let mut writer = self.writer().await?;
        let mut tx = writer.begin().await.map_err(classify)?;
        let gone: Vec<(Vec<u8>, i64)> =
            sqlx::query_as("DELETE FROM sessions WHERE user_id = ? RETURNING session_id, expires_at")
                .bind(user_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(classify)?;
        note_change(&mut tx, user_id, now).await?;
        tx.commit().await.map_err(classify)?;
        // Already-expired rows were not live sessions: they are not reported as revoked.
        Ok(gone
            .iter()
            .filter(|(_, exp)| *exp > now)
            .filter_map(|(sid, _)| SessionId::from_slice(sid))
            .collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(classify)?;
        // The write connection too. sqlx ends a connection's thread when it cannot
        // roll back a cancelled transaction; such a connection is replaced here
        // (readiness probes call this) instead of failing every write from then on.
        let mut writer = self.writer().await?;
        if let Err(e) = writer.ping().await {
            self.replace_writer(&mut writer, &format!("lost: {e}")).await?;
        }
        Ok(())
    }

    async fn close(&self) {
        if let Some(writer) = self.writer.lock().await.take() {
            if let Err(e) = writer.close().await {
                tracing::warn!(error = %e, "closing the session store's write connection failed");
            }
        }
        self.pool.close().await;
    }
}

#[async_trait]
impl RateStore for EmbeddedSessions {
    async fn hit(&self, key: &str, window: i64, now: i64) -> Result<Count, StoreError> {
        // One statement: a closed window restarts at 1, an open one counts up.
        let (count, window_end): (i64, i64) = sqlx::query_as(
            "INSERT INTO rate_counters (key, count, window_end) VALUES (?1, 1, ?2 + ?3) \
             ON CONFLICT(key) DO UPDATE SET \
               count = CASE WHEN window_end <= ?2 THEN 1 ELSE count + 1 END, \
               window_end = CASE WHEN window_end <= ?2 THEN ?2 + ?3 ELSE window_end END \
             RETURNING count, window_end",
        )
        .bind(key)
        .bind(now)
        .bind(window)
        .fetch_one(&mut *self.writer().await?)
        .await
        .map_err(classify)?;
        Ok(Count {
            count: count as u32,
            reset_in: window_end - now,
        })
    }

    async fn peek(&self, key: &str, now: i64) -> Result<Count, StoreError> {
        let mut counts = self.peek_all(&[key], now).await?;
        counts
            .pop()
            .ok_or_else(|| StoreError::Other(anyhow::anyhow!("no count for one key")))
    }

    async fn peek_all(&self, keys: &[&str], now: i64) -> Result<Vec<Count>, StoreError> {
        let places = (2..keys.len() + 2)
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql =
            format!("SELECT key, count, window_end FROM rate_counters WHERE window_end > ?1 AND key IN ({places})");
        let mut query = sqlx::query_as::<_, (String, i64, i64)>(&sql).bind(now);
        for key in keys {
            query = query.bind(*key);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(classify)?;
        Ok(keys
            .iter()
            .map(|key| {
                rows.iter()
                    .find(|(k, _, _)| k == key)
                    .map_or(Count { count: 0, reset_in: 0 }, |(_, c, end)| Count {
                        count: *c as u32,
                        reset_in: end - now,
                    })
            })
            .collect())
    }

    async fn reset(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM rate_counters WHERE key = ?")
            .bind(key)
            .execute(&mut *self.writer().await?)
            .await
            .map_err(classify)?;
        Ok(())
    }
}
