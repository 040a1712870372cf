//! The Redis session store: a single node or a Redis Cluster, shared by every
//! Passport process.
//!
//! Every key of one user carries the hash tag `{u<id>}`, so all of them live in
//! one cluster slot and each operation is one Lua script on one node, atomic
//! with respect to every other process:
//!
//! - `<prefix>{u<id>}:sessions` sorted set of the user's session ids, by creation
//! - `<prefix>{u<id>}:seq`      counter giving that order
//! - `<prefix>{u<id>}:s:<sid>`  hash: login_time, created_at, expires_at, device, ip;
//!   it expires with the session
//! - `<prefix>{u<id>}:t:<sid>`  tombstone of a session that lost its slot; it
//!   expires after the access TTL (plus leeway)
//!
//! No token is stored: a session id is only half of what a token proves.
//!
//! On a single node or a Cluster, a server keeps the sessions it found valid in
//! memory for as long as Redis's invalidation messages prove them unchanged
//! (`redis_tracking`, `redis_cluster_tracking`), so identify mostly costs no round
//! trip. A primary found through Sentinel (`redis_sentinel`) is asked every time.
//!
//! Replication is asynchronous: a revocation acknowledged by a primary that dies
//! before a replica has it would come back on the promoted replica. Where replicas
//! exist, a revocation is acknowledged only once `WAIT` has seen it reach them
//! (`Durability`); past the bounded wait it fails closed (503).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, Script, Value};

use super::redis_cluster_tracking;
use super::redis_sentinel::SentinelConn;
use super::redis_topology::Topology;
use super::redis_tracking::{self, NearCache, Watch};
use super::{
    Count, CreateOutcome, Found, RateStore, RefreshState, Session, SessionCheck, SessionId, SessionPolicy,
    SessionStore, StoreError, StoreStats,
};
use crate::config::{Overflow, RedisTarget};

/// How long one command may take before the caller fails closed (SPEC: a 503
/// within 2 s when Redis is down, never a hang).
const COMMAND_TIMEOUT: Duration = Duration::from_millis(1000);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);

/// A connection to a single node, a cluster, or the primary Sentinel names; each
/// reconnects by itself (the last follows a failover to another node).
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(Arc<SentinelConn>),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(s) => Box::pin(s.request(cmd)),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        p: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(p, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(p, offset, count),
            Conn::Sentinel(s) => Box::pin(s.requests(p, offset, count)),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Sentinel(s) => s.db(),
        }
    }
}

/// How a revocation is made to survive a failover: acknowledged only once
/// `replicas` replicas of its node have it, waiting at most `timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Durability {
    pub replicas: u32,
    pub timeout: Duration,
}

pub struct RedisSessions {
    conn: Conn,
    /// The node a single-node URL names (`host:port`), for `/readyz`.
    node: String,
    prefix: String,
    closed: AtomicBool,
    /// Set where replicas exist and durability was asked for: with a connection of
    /// its own for the fences (below), so that a `WAIT` never holds up identify.
    durable: Option<(Durability, Conn)>,
    /// Sessions known valid without a round trip, and the task that keeps them
    /// true; only on a single node, and only when asked for (a server).
    near: Option<(Arc<NearCache>, tokio::task::JoinHandle<()>)>,
    stats: Arc<StoreStats>,
}

impl Drop for RedisSessions {
    fn drop(&mut self) {
        if let Some((_, tracker)) = &self.near {
            tracker.abort();
        }
    }
}

fn classify(e: RedisError) -> StoreError {
    super::counted("redis", classify_quietly(&e))
}

/// What a Redis error means, without counting it.
fn classify_quietly(e: &RedisError) -> StoreError {
    match e.kind() {
        // The server answered, but not as the scripts expect: a bug, not an outage.
        ErrorKind::TypeError | ErrorKind::ResponseError | ErrorKind::ExtensionError => {
            StoreError::Other(anyhow::anyhow!("{e}"))
        }
        _ => StoreError::Unavailable(e.to_string()),
    }
}

fn script(cell: &'static OnceLock<Script>, source: &str) -> &'static Script {
    cell.get_or_init(|| Script::new(source))
}

const CREATE: &str = r#"
local base, sid = ARGV[1], ARGV[2]
local max, reject = tonumber(ARGV[3]), ARGV[4] == '1'
local tomb_ttl, ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local zkey = KEYS[1]
local live = {}
for _, m in ipairs(redis.call('ZRANGE', zkey, 0, -1)) do
  if redis.call('EXISTS', base .. 's:' .. m) == 1 then
    live[#live + 1] = m
  else
    redis.call('ZREM', zkey, m)
  end
end
local out = {1}
if #live >= max then
  if reject then return {0} end
  for i = 1, #live - max + 1 do
    local m = live[i]
    redis.call('DEL', base .. 's:' .. m)
    redis.call('ZREM', zkey, m)
    redis.call('SET', base .. 't:' .. m, '1', 'EX', tomb_ttl)
    out[#out + 1] = m
  end
end
local seq = redis.call('INCR', base .. 'seq')
local skey = base .. 's:' .. sid
redis.call('HSET', skey, 'login_time', ARGV[7], 'created_at', ARGV[8], 'expires_at', ARGV[9],
  'refresh_digest', ARGV[12], 'refresh_generation', ARGV[13], 'rotated_at', ARGV[14])
if ARGV[10] ~= '' then redis.call('HSET', skey, 'device', ARGV[10]) end
if ARGV[11] ~= '' then redis.call('HSET', skey, 'ip', ARGV[11]) end
redis.call('EXPIRE', skey, ttl)
redis.call('ZADD', zkey, seq, sid)
if redis.call('TTL', zkey) < ttl then redis.call('EXPIRE', zkey, ttl) end
if redis.call('TTL', base .. 'seq') < ttl then redis.call('EXPIRE', base .. 'seq', ttl) end
return out
"#;

const SESSION: &str = r#"
local v = redis.call('HMGET', KEYS[1], 'login_time', 'created_at', 'expires_at', 'device', 'ip',
  'refresh_digest', 'refresh_generation', 'rotated_at')
if not v[1] then return {} end
for i = 1, 8 do v[i] = v[i] or '' end
return v
"#;

const ROTATE: &str = r#"
if redis.call('HGET', KEYS[1], 'refresh_digest') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'refresh_digest', ARGV[2], 'refresh_generation', ARGV[3], 'rotated_at', ARGV[4],
  'expires_at', ARGV[5])
local ttl = tonumber(ARGV[6])
redis.call('EXPIRE', KEYS[1], ttl)
if redis.call('TTL', KEYS[2]) < ttl then redis.call('EXPIRE', KEYS[2], ttl) end
return 1
"#;

const HIT: &str = r#"
local c = redis.call('INCR', KEYS[1])
if c == 1 or redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {c, redis.call('TTL', KEYS[1])}
"#;

const LIST: &str = r#"
local out = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local v = redis.call('HMGET', ARGV[1] .. 's:' .. m, 'login_time', 'created_at', 'expires_at', 'device', 'ip',
    'refresh_digest', 'refresh_generation', 'rotated_at')
  if v[1] then
    out[#out + 1] = {m, v[1], v[2], v[3], v[4] or '', v[5] or '', v[6] or '', v[7] or '0', v[8] or '0'}
  else
    redis.call('ZREM', KEYS[1], m)
  end
end
return out
"#;

const REVOKE: &str = r#"
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return n
"#;

const REVOKE_ALL: &str = r#"
local out = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if redis.call('DEL', ARGV[1] .. 's:' .. m) == 1 then out[#out + 1] = m end
end
redis.call('DEL', KEYS[1])
return out
"#;

static CREATE_SCRIPT: OnceLock<Script> = OnceLock::new();
static HIT_SCRIPT: OnceLock<Script> = OnceLock::new();
static SESSION_SCRIPT: OnceLock<Script> = OnceLock::new();
static ROTATE_SCRIPT: OnceLock<Script> = OnceLock::new();
static LIST_SCRIPT: OnceLock<Script> = OnceLock::new();
static REVOKE_SCRIPT: OnceLock<Script> = OnceLock::new();
static REVOKE_ALL_SCRIPT: OnceLock<Script> = OnceLock::new();

/// A number field (`name:value`) of an `INFO` answer.
fn info_field(info: &str, name: &str) -> Option<u32> {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
}

fn opt(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    if s.len() == 64 {
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or(0);
        }
    }
    out
}

/// How every connection to one node is made: bounded in time, one retry.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(CONNECT_TIMEOUT)
        .set_response_timeout(COMMAND_TIMEOUT)
        .set_number_of_retries(1)
}

/// A connection to a single node, from its connection info.
async fn single(info: redis::ConnectionInfo) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(info)?;
    Ok(ConnectionManager::new_with_config(client, manager_config()).await?)
}

/// A connection to what `target` names; a Cluster's requests are retried
/// `retries` times (on another node's connection if the first is gone).
async fn open(target: RedisTarget, retries: u32) -> anyhow::Result<Conn> {
    Ok(match target {
        RedisTarget::Node(url) => Conn::Single(single(url.as_str().into_connection_info()?).await?),
        RedisTarget::Cluster(nodes) => {
            let client = ClusterClientBuilder::new(nodes)
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(COMMAND_TIMEOUT)
                .retries(retries)
                .build()?;
            Conn::Cluster(client.get_async_connection().await?)
        }
        RedisTarget::Sentinel {
            sentinels,
            service,
            username,
            password,
            db,
        } => {
            let node = redis::RedisConnectionInfo {
                db,
                username,
                password,
                ..Default::default()
            };
            Conn::Sentinel(SentinelConn::connect(sentinels, &service, node, manager_config()).await?)
        }
    })
}

impl RedisSessions {
    /// Connects to the node or cluster `url` names (failing if it cannot be reached
    /// now). With `track`, a single node's valid sessions are also kept in memory
    /// (`redis_tracking`), forgotten on any change under what it watches (a server
    /// passes `Watch::user_keys(prefix)`); a one-shot command has no use for that.
    pub async fn connect(
        url: &str,
        prefix: &str,
        track: Option<Watch>,
        stats: Arc<StoreStats>,
    ) -> anyhow::Result<RedisSessions> {
        let mut near = None;
        let mut node = String::new();
        let target = RedisTarget::parse(url).map_err(|e| anyhow::anyhow!(e))?;
        let conn = match target {
            RedisTarget::Node(url) => {
                let info = url.as_str().into_connection_info()?;
                node = info.addr.to_string();
                let manager = single(info.clone()).await?;
                if let Some(watch) = track {
                    let cache = Arc::new(NearCache::default());
                    let tracker = redis_tracking::track(cache.clone(), info, watch, manager.clone());
                    near = Some((cache, tokio::spawn(tracker)));
                }
                Conn::Single(manager)
            }
            RedisTarget::Cluster(nodes) => {
                // Every node is reached with the credentials of the URL.
                let credentials = match nodes.first() {
                    Some(node) => node.as_str().into_connection_info()?.redis,
                    None => Default::default(),
                };
                let conn = open(RedisTarget::Cluster(nodes), 1).await?;
                if let (Some(watch), Conn::Cluster(cluster)) = (track, &conn) {
                    let cache = Arc::new(NearCache::default());
                    let tracker = redis_cluster_tracking::track(cache.clone(), cluster.clone(), credentials, watch);
                    near = Some((cache, tokio::spawn(tracker)));
                }
                conn
            }
            other => open(other, 1).await?,
        };
        Ok(RedisSessions {
            conn,
            node,
            prefix: prefix.to_owned(),
            closed: AtomicBool::new(false),
            durable: None,
            near,
            stats,
        })
    }

    /// Makes revocations durable across a failover, where the Redis `url` names
    /// has replicas: a single node that reports connected replicas, or a Cluster
    /// with a replica anywhere, seen now. Without replicas there is nothing to wait
    /// for (`WAIT` would only time out), so revocations are acknowledged as before,
    /// with a warning; so too when Redis refuses to say (an ACL on `INFO`).
    pub async fn with_durable_revocations(mut self, url: &str, wanted: Durability) -> anyhow::Result<RedisSessions> {
        if wanted.replicas == 0 {
            return Ok(self);
        }
        let probe = match &self.conn {
            Conn::Single(_) | Conn::Sentinel(_) => self
                .command::<String>(redis::cmd("INFO").arg("replication").to_owned())
                .await
                .map(|info| info_field(&info, "connected_slaves").unwrap_or(0)),
            Conn::Cluster(_) => self
                .command::<String>(redis::cmd("CLUSTER").arg("NODES").to_owned())
                .await
                .map(|nodes| {
                    nodes
                        .lines()
                        .filter(|line| {
                            line.split(' ')
                                .nth(2)
                                .is_some_and(|flags| flags.split(',').any(|f| f == "slave"))
                        })
                        .count() as u32
                }),
        };
        match probe {
            Ok(0) => tracing::warn!(
                "Redis has no replica: revocations are not waited for (a failover, were there one, could lose one)"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "Redis did not say whether it has replicas: revocations are not waited for")
            }
            Ok(_) => {
                // A retried fence is the whole pipeline again, routed by the fence's
                // key: the SET and its WAIT always share one node's connection.
                let target = RedisTarget::parse(url).map_err(|e| anyhow::anyhow!(e))?;
                self.durable = Some((wanted, open(target, 3).await?));
            }
        }
        Ok(self)
    }

    pub fn durability(&self) -> Option<Durability> {
        self.durable.as_ref().map(|(d, _)| *d)
    }

    /// Waits until what was just written for `user_id` has reached the replicas
    /// durability asks for. A fence (a short-lived key in the user's slot) is
    /// written and `WAIT` asked, in one pipeline on the fence connection: `WAIT`
    /// counts that connection's writes, and a replica that has the fence has every
    /// earlier write of that primary, the revocation included (replication is one
    /// ordered stream). Past the timeout the answer is 503: the primary has the
    /// revocation, whether it would survive a failover is not known.
    async fn confirm(&self, user_id: i64) -> Result<(), StoreError> {
        let Some((d, fence)) = &self.durable else { return Ok(()) };
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(format!("{}fence", self.base(user_id)))
            .arg(crate::clock::now())
            .arg("PX")
            .arg(60_000)
            .cmd("WAIT")
            .arg(d.replicas)
            .arg(d.timeout.as_millis() as u64);
        let (set, acked): (String, i64) = self
            .bounded(async { pipe.query_async(&mut fence.clone()).await })
            .await?;
        if set == "OK" && acked >= i64::from(d.replicas) {
            return Ok(());
        }
        Err(super::counted(
            "redis",
            StoreError::Unavailable(format!(
                "a revocation reached {acked} of {} replicas within {} ms",
                d.replicas,
                d.timeout.as_millis()
            )),
        ))
    }

    /// True while valid sessions are being kept in memory (tracking is current).
    pub fn tracking(&self) -> bool {
        self.near().is_some_and(NearCache::is_current)
    }

    fn near(&self) -> Option<&NearCache> {
        self.near.as_ref().map(|(cache, _)| &**cache)
    }

    /// Forgets sessions this process has just ended, before it answers.
    fn forget<'a>(&self, sids: impl IntoIterator<Item = &'a SessionId>) {
        if let Some(near) = self.near() {
            sids.into_iter().for_each(|sid| near.forget(sid));
        }
    }

    /// Forgets every session kept: a write whose answer was lost may have ended
    /// any of them.
    fn forget_all(&self) {
        if let Some(near) = self.near() {
            near.forget_all();
        }
    }

    fn ensure_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable("session store closed".into()));
        }
        Ok(())
    }

    /// `<prefix>{u<id>}:`: the start of every key of one user.
    fn base(&self, user_id: i64) -> String {
        format!("{}{{u{user_id}}}:", self.prefix)
    }

    /// A rate counter's key; the hash tag keeps it whole in one cluster slot.
    fn rate_key(&self, key: &str) -> String {
        format!("{}{{rl:{key}}}", self.prefix)
    }

    async fn command<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, StoreError> {
        self.bounded(async { cmd.query_async(&mut self.conn.clone()).await })
            .await
    }

    async fn run<T: redis::FromRedisValue>(&self, inv: redis::ScriptInvocation<'_>) -> Result<T, StoreError> {
        self.bounded(async { inv.invoke_async(&mut self.conn.clone()).await })
            .await
    }

    async fn query<T: redis::FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, StoreError> {
        self.bounded(async { pipe.query_async(&mut self.conn.clone()).await })
            .await
    }

    /// A read that a Cluster may answer on another try: while the cluster client
    /// learns a new topology (a failover), a request to a healthy node can fail or
    /// time out. Tries go on, 100 ms apart (at most 20), within the one deadline of
    /// a request; past it the read fails closed. A user on a node that is down
    /// waits out the deadline before the 503.
    async fn read<T: redis::FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, StoreError> {
        if !matches!(self.conn, Conn::Cluster(_)) {
            return self.query(pipe).await;
        }
        self.bounded(async {
            loop {
                match pipe.query_async(&mut self.conn.clone()).await {
                    Err(e) if !matches!(classify_quietly(&e), StoreError::Other(_)) => {}
                    answer => return answer,
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
    }

    /// One request to Redis (a command, a script, a pipeline), refused once the
    /// store is closed and bounded in time whatever the connection's own timeouts
    /// do (a reconnect, a retry): a missed deadline is an outage (fail closed).
    async fn bounded<T>(&self, request: impl Future<Output = redis::RedisResult<T>>) -> Result<T, StoreError> {
        self.ensure_open()?;
        match tokio::time::timeout(COMMAND_TIMEOUT * 2, request).await {
            Ok(result) => result.map_err(classify),
            Err(_) => Err(super::counted(
                "redis",
                StoreError::Unavailable("redis command timed out".into()),
            )),
        }
    }
}

#[async_trait]
impl SessionStore for RedisSessions {
    async fn create(&self, s: &Session, policy: &SessionPolicy, now: i64) -> Result<CreateOutcome, StoreError> {
        let base = self.base(s.user_id);
        let ttl = (s.expires_at - now).max(1);
        let mut inv = script(&CREATE_SCRIPT, CREATE).prepare_invoke();
        inv.key(format!("{base}sessions"))
            .arg(&base)
            .arg(s.session_id.encode())
            .arg(policy.max_sessions)
            .arg(if policy.overflow == Overflow::Reject { "1" } else { "0" })
            .arg(policy.tombstone_ttl.max(1))
            .arg(ttl)
            .arg(s.login_time)
            .arg(s.created_at)
            .arg(s.expires_at)
            .arg(s.device.as_deref().unwrap_or(""))
            .arg(s.ip.as_deref().unwrap_or(""))
            .arg(hex(&s.refresh.digest))
            .arg(s.refresh.generation)
            .arg(s.refresh.rotated_at);
        // If the answer is lost, whether (and which) sessions lost their slot is unknown.
        let out: Vec<Value> = self.run(inv).await.inspect_err(|_| self.forget_all())?;
        let created = matches!(out.first(), Some(Value::Int(1)));
        if !created {
            return Ok(CreateOutcome::LimitReached);
        }
        let mut evicted = Vec::new();
        for v in &out[1..] {
            let sid: String = redis::from_redis_value(v).map_err(classify)?;
            evicted.extend(SessionId::parse(&sid));
        }
        self.forget(&evicted);
        if !evicted.is_empty() {
            self.confirm(s.user_id).await?;
        }
        Ok(CreateOutcome::Created { evicted })
    }

    async fn check(
        &self,
        user_id: i64,
        sid: &SessionId,
        login_time: i64,
        now: i64,
    ) -> Result<SessionCheck, StoreError> {
        self.ensure_open()?;
        let near = self.near();
        if near.is_some_and(|n| n.hit(user_id, sid, login_time, now)) {
            StoreStats::count(&self.stats.session_checks_memory);
            return Ok(SessionCheck::Valid);
        }
        let ticket = near.and_then(|n| n.ticket(sid));
        let base = self.base(user_id);
        let sid_text = sid.encode();
        // Two plain reads in one round trip, cheaper for Redis than a script. Not
        // atomic, and need not be: the session hash alone decides validity; the
        // tombstone only names the refusal, and exists only once the session is gone.
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET")
            .arg(format!("{base}s:{sid_text}"))
            .arg("login_time")
            .arg("expires_at")
            .cmd("EXISTS")
            .arg(format!("{base}t:{sid_text}"));
        let ((lt, exp), tomb): ((Option<i64>, Option<i64>), i64) = self.read(&pipe).await?;
        let live = match (lt, exp) {
            (Some(lt), Some(exp)) => Some((user_id, lt, exp)),
            _ => None,
        };
        // The tombstone's own TTL bounds it; the key exists only while it lasts.
        let tombstone = (tomb == 1).then_some((user_id, i64::MAX));
        let check = SessionCheck::decide(Found { live, tombstone }, user_id, login_time, now);
        if let (SessionCheck::Valid, Some(near), Some(ticket), Some((_, lt, exp))) = (check, near, ticket, live) {
            near.admit(ticket, sid, user_id, lt, exp, now);
        }
        Ok(check)
    }

    async fn list(&self, user_id: i64, now: i64) -> Result<Vec<Session>, StoreError> {
        let base = self.base(user_id);
        let mut inv = script(&LIST_SCRIPT, LIST).prepare_invoke();
        inv.key(format!("{base}sessions")).arg(&base);
        type Row = (String, i64, i64, i64, String, String, String, i64, i64);
        let rows: Vec<Row> = self.run(inv).await?;
        let mut out = Vec::with_capacity(rows.len());
        for (sid, login_time, created_at, expires_at, device, ip, digest, generation, rotated_at) in rows {
            let Some(session_id) = SessionId::parse(&sid) else {
                continue;
            };
            if expires_at > now {
                out.push(Session {
                    session_id,
                    user_id,
                    login_time,
                    created_at,
                    expires_at,
                    device: opt(device),
                    ip: opt(ip),
                    refresh: RefreshState {
                        digest: unhex(&digest),
                        generation,
                        rotated_at,
                    },
                });
            }
        }
        Ok(out)
    }

    async fn revoke(&self, user_id: i64, sid: &SessionId) -> Result<bool, StoreError> {
        let base = self.base(user_id);
        let sid_text = sid.encode();
        let mut inv = script(&REVOKE_SCRIPT, REVOKE).prepare_invoke();
        inv.key(format!("{base}s:{sid_text}"))
            .key(format!("{base}sessions"))
            .arg(&sid_text);
        let n = self.run::<i64>(inv).await;
        // Forgotten whatever the answer: a write whose answer was lost may have happened.
        self.forget([sid]);
        let revoked = n? == 1;
        // Also when nothing was left to delete: an earlier try may have deleted it
        // without its confirmation.
        self.confirm(user_id).await?;
        Ok(revoked)
    }

    async fn revoke_all(&self, user_id: i64) -> Result<Vec<SessionId>, StoreError> {
        let base = self.base(user_id);
        let mut inv = script(&REVOKE_ALL_SCRIPT, REVOKE_ALL).prepare_invoke();
        inv.key(format!("{base}sessions")).arg(&base);
        // If the answer is lost, which sessions went (if any did) is unknown.
        let gone: Vec<String> = self.run(inv).await.inspect_err(|_| self.forget_all())?;
        let gone: Vec<SessionId> = gone.iter().filter_map(|s| SessionId::parse(s)).collect();
        self.forget(&gone);
        self.confirm(user_id).await?;
        Ok(gone)
    }

    async fn refresh_state(&self, user_id: i64, sid: &SessionId, now: i64) -> Result<Option<Session>, StoreError> {
        let base = self.base(user_id);
        let mut inv = script(&SESSION_SCRIPT, SESSION).prepare_invoke();
        inv.key(format!("{base}s:{sid}"));
        let v: Vec<String> = self.run(inv).await?;
        if v.len() != 8 {
            return Ok(None);
        }
        let num = |s: &str| {
            s.parse::<i64>()
                .map_err(|e| StoreError::Other(anyhow::anyhow!("corrupt session field: {e}")))
        };
        let session = Session {
            session_id: *sid,
            user_id,
            login_time: num(&v[0])?,
            created_at: num(&v[1])?,
            expires_at: num(&v[2])?,
            device: opt(v[3].clone()),
            ip: opt(v[4].clone()),
            refresh: RefreshState {
                digest: unhex(&v[5]),
                generation: num(&v[6])?,
                rotated_at: num(&v[7])?,
            },
        };
        Ok((session.expires_at > now).then_some(session))
    }

    async fn rotate_refresh(
        &self,
        user_id: i64,
        sid: &SessionId,
        expected: &[u8; 32],
        next: &RefreshState,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let base = self.base(user_id);
        let ttl = (expires_at - crate::clock::now()).max(1);
        let mut inv = script(&ROTATE_SCRIPT, ROTATE).prepare_invoke();
        inv.key(format!("{base}s:{sid}"))
            .key(format!("{base}sessions"))
            .arg(hex(expected))
            .arg(hex(&next.digest))
            .arg(next.generation)
            .arg(next.rotated_at)
            .arg(expires_at)
            .arg(ttl);
        let n: i64 = self.run(inv).await?;
        Ok(n == 1)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.command::<String>(redis::cmd("PING")).await.map(|_| ())
    }

    async fn topology(&self) -> Result<Option<Topology>, StoreError> {
        let durable = self.durable.is_some();
        let replication = || self.command::<String>(redis::cmd("INFO").arg("replication").to_owned());
        let mut seen = match &self.conn {
            Conn::Single(_) => Topology::of_node("node", self.node.clone(), &replication().await?, durable),
            Conn::Sentinel(s) => {
                let info = replication().await?;
                Topology::of_node("sentinel", s.primary_address().unwrap_or_default(), &info, durable)
            }
            Conn::Cluster(_) => {
                let nodes = self
                    .command::<String>(redis::cmd("CLUSTER").arg("NODES").to_owned())
                    .await?;
                Topology::of_cluster(&nodes, durable)
            }
        };
        seen.session_cache_current = self.near().map(NearCache::is_current);
        Ok(Some(seen))
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        if let Some((_, tracker)) = &self.near {
            tracker.abort();
        }
    }
}

#[async_trait]
impl RateStore for RedisSessions {
    async fn hit(&self, key: &str, window: i64, _now: i64) -> Result<Count, StoreError> {
        let mut inv = script(&HIT_SCRIPT, HIT).prepare_invoke();
        inv.key(self.rate_key(key)).arg(window.max(1));
        let (count, ttl): (i64, i64) = self.run(inv).await?;
        Ok(Count {
            count: count as u32,
            reset_in: ttl.max(1),
        })
    }

    async fn peek(&self, key: &str, _now: i64) -> Result<Count, StoreError> {
        let k = self.rate_key(key);
        let mut cmd = redis::cmd("GET");
        cmd.arg(&k);
        let count: Option<i64> = self.command(cmd).await?;
        let Some(count) = count else {
            return Ok(Count { count: 0, reset_in: 0 });
        };
        let mut ttl = redis::cmd("TTL");
        ttl.arg(&k);
        let ttl: i64 = self.command(ttl).await?;
        Ok(Count {
            count: count as u32,
            reset_in: ttl.max(1),
        })
    }

    async fn reset(&self, key: &str) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.rate_key(key));
        let _: i64 = self.command(cmd).await?;
        Ok(())
    }
}
