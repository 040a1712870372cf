//! Several Passport processes on PostgreSQL (or MariaDB) and Redis behave as one service, and
//! the service fails closed, then recovers, when a store goes down and comes back.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use passport::config::Overflow;
use passport::ids::SessionId;
use passport::store::redis::{Durability, RedisSessions};
use passport::store::redis_tracking::{Watch, TRACKER_NAME, TRUST_WINDOW};
use passport::store::{
    CreateOutcome, RefreshState, Session, SessionCheck, SessionPolicy, SessionStore, StoreError, StoreStats,
};
use passport::App;
use serde_json::{json, Value};
use support::{PassportProcess, PrivateMariadb, PrivatePostgres, PrivateRedis, TestDb, TestMysql};
use tokio::sync::oneshot;

const PASSWORD: &str = "correct horse battery staple";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// What `/readyz` answers with 200: its `data`.
async fn ready(c: &reqwest::Client, base: &str) -> Value {
    let r = c.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["data"].clone()
}

/// Asks `/readyz` until its `data` is what `expected` wants (at most 15 s; the
/// nodes of a cluster learn of a failover by gossip, one after another).
async fn ready_until(c: &reqwest::Client, base: &str, expected: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let r = c.get(format!("{base}/readyz")).send().await.unwrap();
        let status = r.status();
        let seen = r.json::<Value>().await.unwrap()["data"].clone();
        if status == 200 && expected(&seen) {
            return seen;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "/readyz: {status} {seen}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The replicas of each primary `/readyz` shows, fewest first.
fn replicas_of_primaries(redis: &Value) -> Vec<i64> {
    let mut replicas: Vec<i64> = redis["primaries"]
        .as_array()
        .map(|ps| ps.iter().filter_map(|p| p["replicas"].as_i64()).collect())
        .unwrap_or_default();
    replicas.sort();
    replicas
}

/// An in-process server; stopped when the sender is dropped.
async fn spawn_in_process(dir: &Path, extra: &[(&str, &str)]) -> (String, oneshot::Sender<()>) {
    let config = support::config(dir, extra);
    let app = App::build(config).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    (base, tx)
}

async fn post(c: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let r = c.post(url).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn get(c: &reqwest::Client, url: String, token: &str) -> (u16, Value) {
    let r = c
        .get(url)
        .header("Authorization", format!("JWT {token}"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn post_auth(c: &reqwest::Client, url: String, token: &str) -> (u16, Value) {
    let r = c
        .post(url)
        .header("Authorization", format!("JWT {token}"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn token_of(login: &Value) -> String {
    login["data"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {login}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_postgres_and_redis_behave_as_one() {
    let test = "two_processes_on_postgres_and_redis_behave_as_one";
    let Some(db) = TestDb::create(test).await else { return };
    two_processes_behave_as_one(test, &db.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_mariadb_and_redis_behave_as_one() {
    let test = "two_processes_on_mariadb_and_redis_behave_as_one";
    let Some(db) = TestMysql::create(test).await else {
        return;
    };
    two_processes_behave_as_one(test, &db.url).await;
}

/// Two processes on the user store at `database_url` and the shared Redis.
async fn two_processes_behave_as_one(test: &str, database_url: &str) {
    let Some(redis) = support::shared_redis(test) else {
        return;
    };
    let prefix = format!("passport-test:{}:", support::unique());
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let shared = [
        ("database_url", database_url),
        ("redis_url", redis.as_str()),
        ("redis_prefix", prefix.as_str()),
        ("max_sessions", "2"),
    ];
    let bin = env!("CARGO_BIN_EXE_passport");
    let a = PassportProcess::start(bin, &support::settings(dir_a.path(), &shared));
    let b = PassportProcess::start(bin, &support::settings(dir_b.path(), &shared));
    let c = client();
    let creds = json!({"mobile": "13800000090", "password": PASSWORD});

    assert_eq!(post(&c, a.url("/passport/register"), creds.clone()).await.0, 201);
    assert_eq!(
        post(&c, b.url("/passport/register"), creds.clone()).await.0,
        409,
        "B sees A's user"
    );
    let (status, login) = post(&c, a.url("/passport/login"), creds.clone()).await;
    assert_eq!(status, 200);
    let t1 = token_of(&login);
    assert_eq!(get(&c, b.url("/passport/me"), &t1).await.0, 200, "login on A, me on B");

    // Logout on B: A refuses within the second SPEC §5 gives another process,
    // though it holds the session in memory (Redis's invalidation usually takes
    // well under a millisecond to arrive).
    assert_eq!(get(&c, a.url("/passport/me"), &t1).await.0, 200);
    assert_eq!(post_auth(&c, b.url("/passport/logout"), &t1).await.0, 200);
    let took = refused_within(
        &c,
        &a.url("/passport/me"),
        &t1,
        "session_revoked",
        Duration::from_secs(1),
    )
    .await;
    eprintln!("logout on B refused on A after {took:?}");

    // max_sessions holds across both: 12 concurrent logins, half on each.
    let mut tasks = Vec::new();
    for i in 0..12 {
        let url = if i % 2 == 0 {
            a.url("/passport/login")
        } else {
            b.url("/passport/login")
        };
        let (c, creds) = (c.clone(), creds.clone());
        tasks.push(tokio::spawn(async move { post(&c, url, creds).await }));
    }
    let mut tokens = Vec::new();
    let mut refresh_tokens = Vec::new();
    for t in tasks {
        let (status, login) = t.await.unwrap();
        assert_eq!(status, 200);
        tokens.push(token_of(&login));
        refresh_tokens.push(login["data"]["refresh_token"].as_str().unwrap().to_owned());
    }
    let mut working = 0;
    for (i, t) in tokens.iter().enumerate() {
        let url = if i % 2 == 0 {
            b.url("/passport/me")
        } else {
            a.url("/passport/me")
        };
        let (status, body) = get(&c, url, t).await;
        match status {
            200 => working += 1,
            401 => assert_eq!(body["error"], "session_replaced"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(working, 2, "two processes, one limit");

    // No token is stored in Redis, and every key of the user shares one slot.
    let mut conn = redis::Client::open(redis.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    let mut stored = String::new();
    for k in &keys {
        // Session keys are tagged by user, rate counters by their own key.
        assert!(k.contains("{u") || k.contains("{rl:"), "key without a hash tag: {k}");
        let kind: String = redis::cmd("TYPE").arg(k).query_async(&mut conn).await.unwrap();
        let dump: Vec<String> = match kind.as_str() {
            "string" => vec![redis::cmd("GET").arg(k).query_async(&mut conn).await.unwrap()],
            "hash" => redis::cmd("HGETALL").arg(k).query_async(&mut conn).await.unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(k)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .unwrap(),
            other => panic!("unexpected key type {other} at {k}"),
        };
        stored.push_str(k);
        for v in dump {
            stored.push_str(&v);
        }
    }
    for t in tokens.iter().chain([&t1]) {
        assert!(!stored.contains(t.as_str()), "a token is stored in Redis");
        let signature = t.rsplit('.').next().unwrap();
        assert!(!stored.contains(signature), "a token signature is stored in Redis");
    }
    for r in &refresh_tokens {
        assert!(!stored.contains(r.as_str()), "a refresh token is stored in Redis");
        let secret = r.rsplit('.').next().unwrap();
        assert!(
            secret.len() >= 43 && !stored.contains(secret),
            "a refresh token secret is stored in Redis"
        );
    }
    let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_the_rate_limit_counters() {
    let Some(redis) = support::shared_redis("two_processes_share_the_rate_limit_counters") else {
        return;
    };
    let prefix = format!("passport-test:{}:", support::unique());
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let shared = [
        ("redis_url", redis.as_str()),
        ("redis_prefix", prefix.as_str()),
        ("rate_login_account", "3/60"),
    ];
    let bin = env!("CARGO_BIN_EXE_passport");
    let a = PassportProcess::start(bin, &support::settings(dir_a.path(), &shared));
    let b = PassportProcess::start(bin, &support::settings(dir_b.path(), &shared));
    let c = client();
    let wrong = json!({"mobile": "13800000094", "password": "wrong password!"});
    // Unknown or not, a mobile's failures count: two on A, one on B.
    for url in [
        a.url("/passport/login"),
        a.url("/passport/login"),
        b.url("/passport/login"),
    ] {
        assert_eq!(post(&c, url, wrong.clone()).await.0, 401);
    }
    let (status, body) = post(&c, a.url("/passport/login"), wrong.clone()).await;
    assert_eq!((status, body["error"].as_str()), (429, Some("rate_limited")));
    let (status, _) = post(&c, b.url("/passport/login"), wrong).await;
    assert_eq!(status, 429);
}

/// Polls `url` with `token` until it answers 401 `error`, for at most `within`;
/// until then every answer must be a 200. Returns how long it took.
async fn refused_within(c: &reqwest::Client, url: &str, token: &str, error: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (status, body) = get(c, url.to_owned(), token).await;
        match (status, body["error"].as_str()) {
            (401, Some(e)) if e == error => return start.elapsed(),
            (200, _) => {}
            other => panic!("{url}: unexpected {other:?}: {body}"),
        }
        assert!(start.elapsed() < within, "{url} still answered 200 after {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Polls `url` until it answers `status`, for at most `within`.
async fn eventually(c: &reqwest::Client, url: &str, status: u16, within: Duration) {
    let start = Instant::now();
    loop {
        if let Ok(r) = c.get(url).send().await {
            if r.status().as_u16() == status {
                return;
            }
        }
        assert!(
            start.elapsed() < within,
            "{url} did not answer {status} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_closed_and_recovers_without_restart() {
    let Some(mut redis) = PrivateRedis::start("redis_down_fails_closed_and_recovers_without_restart") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let (base, _stop) = spawn_in_process(dir.path(), &[("redis_url", url.as_str())]).await;
    let c = client();
    let creds = json!({"mobile": "13800000091", "password": PASSWORD});
    assert_eq!(
        post(&c, format!("{base}/passport/register"), creds.clone()).await.0,
        201
    );
    let token = token_of(&post(&c, format!("{base}/passport/login"), creds.clone()).await.1);
    assert_eq!(get(&c, format!("{base}/passport/me"), &token).await.0, 200);
    let seen = ready_until(&c, &base, |seen| seen["redis"]["session_cache_current"] == true).await;
    assert_eq!(seen["sessions"], "ok", "{seen}");
    assert_eq!(
        seen["redis"],
        json!({"mode": "node", "durable_revocations": false, "session_cache_current": true, "failing": [],
               "primaries": [{"address": format!("127.0.0.1:{}", redis.port), "replicas": 0}]})
    );

    redis.stop();
    let stopped = Instant::now();
    // A session this process holds in memory may be honoured until its freshness
    // is no longer proven (TRUST_WINDOW); after that, and for every route that
    // reads Redis, the answer is 503, each within 2 s.
    loop {
        let start = Instant::now();
        let (status, body) = get(&c, format!("{base}/passport/me"), &token).await;
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "/passport/me took {:?}",
            start.elapsed()
        );
        match (status, body["error"].as_str()) {
            (503, Some("store_unavailable")) => break,
            (200, _) => assert!(
                start.duration_since(stopped) <= TRUST_WINDOW,
                "honoured {:?} after Redis went down",
                start.duration_since(stopped)
            ),
            other => panic!("unexpected {other:?}: {body}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stopped.elapsed() < Duration::from_secs(2) + TRUST_WINDOW);
    for path in ["/passport/me", "/passport/sessions"] {
        let start = Instant::now();
        let (status, body) = get(&c, format!("{base}{path}"), &token).await;
        let took = start.elapsed();
        assert_eq!(
            (status, body["error"].as_str()),
            (503, Some("store_unavailable")),
            "{path}: {body}"
        );
        assert!(took < Duration::from_secs(2), "{path} took {took:?} with Redis down");
    }
    let (status, body) = post_auth(&c, format!("{base}/passport/logout"), &token).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("store_unavailable")));
    let (status, body) = post(&c, format!("{base}/passport/login"), creds.clone()).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("store_unavailable")));
    let r = c.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "store_unavailable");

    // Back, with nothing kept (it saves nothing to disk): the old session is gone,
    // and the service works again without a restart.
    redis.resume();
    eventually(&c, &format!("{base}/readyz"), 200, Duration::from_secs(15)).await;
    let (status, body) = get(&c, format!("{base}/passport/me"), &token).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("session_revoked")));
    let token = token_of(&post(&c, format!("{base}/passport/login"), creds).await.1);
    assert_eq!(get(&c, format!("{base}/passport/me"), &token).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_refuses_logins_while_identify_keeps_working() {
    let test = "postgres_down_refuses_logins_while_identify_keeps_working";
    let Some(mut pg) = PrivatePostgres::start(test) else {
        return;
    };
    let url = pg.url();
    user_store_down_refuses_logins_while_identify_keeps_working(test, &url, &mut pg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_down_refuses_logins_while_identify_keeps_working() {
    let test = "mariadb_down_refuses_logins_while_identify_keeps_working";
    let Some(mut mariadb) = PrivateMariadb::start(test) else {
        return;
    };
    let db = TestMysql::create_on(&mariadb.admin_url()).await;
    let url = db.url.clone();
    user_store_down_refuses_logins_while_identify_keeps_working(test, &url, &mut mariadb).await;
}

/// The user store at `database_url`, on `server`, stops and comes back:
/// register and login answer 503 `store_unavailable` meanwhile, identify keeps
/// working from the session store, and the server recovers without a restart.
async fn user_store_down_refuses_logins_while_identify_keeps_working(
    test: &str,
    database_url: &str,
    server: &mut dyn support::StopAndStart,
) {
    let Some(redis) = support::shared_redis(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("passport-test:{}:", support::unique());
    let extra = [
        ("database_url", database_url),
        ("redis_url", redis.as_str()),
        ("redis_prefix", prefix.as_str()),
    ];
    let (base, _stop) = spawn_in_process(dir.path(), &extra).await;
    let c = client();
    let creds = json!({"mobile": "13800000092", "password": PASSWORD});
    assert_eq!(
        post(&c, format!("{base}/passport/register"), creds.clone()).await.0,
        201
    );
    let token = token_of(&post(&c, format!("{base}/passport/login"), creds.clone()).await.1);

    server.stop();
    let other = json!({"mobile": "13800000093", "password": PASSWORD});
    let (status, body) = post(&c, format!("{base}/passport/register"), other.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("store_unavailable")),
        "{body}"
    );
    let (status, body) = post(&c, format!("{base}/passport/login"), creds.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("store_unavailable")),
        "{body}"
    );
    // Identify needs no SQL: a route served from the session store still works.
    let (status, body) = get(&c, format!("{base}/passport/sessions"), &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(c.get(format!("{base}/readyz")).send().await.unwrap().status(), 503);

    server.resume();
    eventually(&c, &format!("{base}/readyz"), 200, Duration::from_secs(30)).await;
    assert_eq!(post(&c, format!("{base}/passport/register"), other).await.0, 201);
    assert_eq!(post(&c, format!("{base}/passport/login"), creds).await.0, 200);
}

// ------------------------------------------- sessions a server keeps in memory

fn session(user_id: i64) -> Session {
    let now = passport::clock::now();
    Session {
        session_id: SessionId::random(),
        user_id,
        login_time: now,
        created_at: now,
        expires_at: now + 3600,
        device: None,
        ip: None,
        refresh: RefreshState::default(),
    }
}

const ONE: SessionPolicy = SessionPolicy {
    max_sessions: 1,
    overflow: Overflow::EvictOldest,
    tombstone_ttl: 600,
};

/// A (this process: keeps valid sessions in memory as `watch` says, tracking
/// current) and B (another process, or a command: keeps nothing), on one Redis
/// and prefix, with A's counters.
async fn two_stores(url: &str, prefix: &str, watch: Watch) -> (RedisSessions, RedisSessions, Arc<StoreStats>) {
    let stats = Arc::new(StoreStats::default());
    let a = RedisSessions::connect(url, prefix, Some(watch), stats.clone())
        .await
        .unwrap();
    let b = RedisSessions::connect(url, prefix, None, Default::default())
        .await
        .unwrap();
    support::tracking_current(&a).await;
    (a, b, stats)
}

async fn check(store: &RedisSessions, s: &Session) -> Result<SessionCheck, StoreError> {
    store
        .check(s.user_id, &s.session_id, s.login_time, passport::clock::now())
        .await
}

/// Checks `s` until an answer comes from memory, and returns that answer; each
/// answer Redis gave before it goes to `asked_redis`. A read is kept unless it
/// raced a change (the invalidation of the session's own creation, say, arriving
/// after the read began), and memory is not used while a heartbeat is late,
/// which a loaded test machine may make last a while: hence the generous bound.
async fn from_memory(
    store: &RedisSessions,
    stats: &StoreStats,
    s: &Session,
    asked_redis: impl Fn(SessionCheck),
) -> SessionCheck {
    let start = Instant::now();
    loop {
        let before = StoreStats::get(&stats.session_checks_memory);
        let found = check(store, s).await.unwrap();
        if StoreStats::get(&stats.session_checks_memory) > before {
            return found;
        }
        asked_redis(found);
        assert!(start.elapsed() < Duration::from_secs(10), "never answered from memory");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Checks `s`, valid every time, until an answer comes from memory.
async fn kept_in_memory(store: &RedisSessions, stats: &StoreStats, s: &Session) {
    let from_redis = |found| assert_eq!(found, SessionCheck::Valid);
    assert_eq!(from_memory(store, stats, s, from_redis).await, SessionCheck::Valid);
}

/// Checks `s` on `store` until it answers `expected`, for at most the second
/// SPEC §5 gives a change made by another process; until then only `Valid`.
async fn follows_within_a_second(store: &RedisSessions, s: &Session, expected: SessionCheck) -> Duration {
    let start = Instant::now();
    loop {
        match check(store, s).await.unwrap() {
            found if found == expected => return start.elapsed(),
            SessionCheck::Valid => {}
            other => panic!("expected {expected:?}, got {other:?}"),
        }
        assert!(start.elapsed() < Duration::from_secs(1), "still valid after 1 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// This process's logout, eviction by a newer login and revoke-all of user 1, each
/// of a session first kept in memory: each refused on the very next check.
async fn own_changes_refused_at_once(a: &RedisSessions, stats: &StoreStats, now: i64) {
    let s = session(1);
    a.create(&s, &ONE, now).await.unwrap();
    kept_in_memory(a, stats, &s).await;
    a.revoke(1, &s.session_id).await.unwrap();
    assert_eq!(check(a, &s).await.unwrap(), SessionCheck::Revoked);
    let s = session(1);
    a.create(&s, &ONE, now).await.unwrap();
    kept_in_memory(a, stats, &s).await;
    a.create(&session(1), &ONE, now).await.unwrap();
    assert_eq!(check(a, &s).await.unwrap(), SessionCheck::Replaced);
    let s = a.list(1, now).await.unwrap().remove(0);
    kept_in_memory(a, stats, &s).await;
    a.revoke_all(1).await.unwrap();
    assert_eq!(check(a, &s).await.unwrap(), SessionCheck::Revoked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_kept_in_memory_follow_every_change_to_redis() {
    let Some(url) = support::shared_redis("sessions_kept_in_memory_follow_every_change_to_redis") else {
        return;
    };
    let prefix = format!("passport-test:{}:", support::unique());
    let (a, b, stats) = two_stores(&url, &prefix, Watch::user_keys(&prefix)).await;
    let now = passport::clock::now();

    // After a round trip, a valid session is answered from memory.
    let s = session(1);
    b.create(&s, &ONE, now).await.unwrap();
    assert_eq!(check(&a, &s).await.unwrap(), SessionCheck::Valid);
    assert_eq!(StoreStats::get(&stats.session_checks_memory), 0);
    kept_in_memory(&a, &stats, &s).await;
    // Another login time, user or an expired session is not the session kept.
    let wrong_time = a.check(1, &s.session_id, s.login_time + 1, now).await.unwrap();
    let wrong_user = a.check(2, &s.session_id, s.login_time, now).await.unwrap();
    let expired = a.check(1, &s.session_id, s.login_time, s.expires_at).await.unwrap();
    assert_eq!([wrong_time, wrong_user, expired], [SessionCheck::Revoked; 3]);

    // Another process's logout, eviction and revoke-all.
    b.revoke(1, &s.session_id).await.unwrap();
    let took = follows_within_a_second(&a, &s, SessionCheck::Revoked).await;
    eprintln!("another process's logout seen after {took:?}");
    let s = session(1);
    b.create(&s, &ONE, now).await.unwrap();
    kept_in_memory(&a, &stats, &s).await;
    b.create(&session(1), &ONE, now).await.unwrap();
    follows_within_a_second(&a, &s, SessionCheck::Replaced).await;
    let s = b.list(1, now).await.unwrap().remove(0);
    kept_in_memory(&a, &stats, &s).await;
    b.revoke_all(1).await.unwrap();
    follows_within_a_second(&a, &s, SessionCheck::Revoked).await;

    // A change made outside Passport (redis-cli, an operator) is followed too.
    let s = session(1);
    b.create(&s, &ONE, now).await.unwrap();
    kept_in_memory(&a, &stats, &s).await;
    let mut raw = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = format!("{prefix}{{u1}}:s:{}", s.session_id);
    let deleted: i64 = redis::cmd("DEL").arg(&key).query_async(&mut raw).await.unwrap();
    assert_eq!(deleted, 1);
    follows_within_a_second(&a, &s, SessionCheck::Revoked).await;

    // This process's own changes show on the very next check, no waiting.
    own_changes_refused_at_once(&a, &stats, now).await;

    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut raw)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut raw).await.unwrap();
    }
}

/// On a Cluster (three primaries, a replica each) a server keeps sessions in
/// memory as on a single node, and follows another process's changes within a
/// second: on a shard as it is, after a slot has moved to another primary, and
/// after a primary has died and its replica taken over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_keeps_sessions_in_memory_through_resharding_and_failover() {
    let test = "a_cluster_keeps_sessions_in_memory_through_resharding_and_failover";
    let Some(mut cluster) = support::Cluster::start_with(test, 1) else {
        return;
    };
    let prefix = format!("passport-test:{}:", support::unique());
    let (a, b, stats) = two_stores(&cluster.cluster_url(), &prefix, Watch::user_keys(&prefix)).await;
    let now = passport::clock::now();
    let slot_of = |cluster: &support::Cluster, user: i64| -> u16 {
        let key = format!("{prefix}{{u{user}}}:sessions");
        cluster
            .cli(cluster.ports[0], &["cluster", "keyslot", &key])
            .trim()
            .parse()
            .unwrap()
    };

    // As on a single node: kept, and another process's logout followed.
    let s = session(1);
    b.create(&s, &ONE, now).await.unwrap();
    kept_in_memory(&a, &stats, &s).await;
    b.revoke(1, &s.session_id).await.unwrap();
    let took = follows_within_a_second(&a, &s, SessionCheck::Revoked).await;
    eprintln!("another process's logout seen after {took:?}");
    own_changes_refused_at_once(&a, &stats, now).await;

    // Resharding: user 2's slot moves to another primary, keys and all.
    let s = session(2);
    b.create(&s, &ONE, now).await.unwrap();
    kept_in_memory(&a, &stats, &s).await;
    let slot = slot_of(&cluster, 2);
    let from = cluster.primary_of(slot, cluster.ports[0]).unwrap();
    let to = cluster
        .ports
        .iter()
        .copied()
        .find(|p| *p != from && is_primary(&cluster, *p))
        .unwrap();
    move_slot(&cluster, slot, from, to);
    // Served where it went, kept in memory again, and a logout there followed.
    answers_again(&a, &s).await;
    kept_in_memory(&a, &stats, &s).await;
    until_ok(|| b.revoke(2, &s.session_id)).await;
    follows_within_a_second(&a, &s, SessionCheck::Revoked).await;

    // Failover: user 3's primary dies; its replica, tracked all along, takes over.
    let s = session(3);
    b.create(&s, &ONE, now).await.unwrap();
    kept_in_memory(&a, &stats, &s).await;
    let victim = cluster.primary_of(slot_of(&cluster, 3), cluster.ports[0]).unwrap();
    cluster.kill(victim);
    // Nothing from memory past the trust window once a node stops answering.
    let killed = Instant::now();
    while a.tracking() {
        assert!(
            killed.elapsed() <= TRUST_WINDOW + Duration::from_millis(100),
            "memory still trusted {:?} after a primary died",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    answers_again(&a, &s).await;
    support::tracking_current_within(&a, Duration::from_secs(20)).await;
    eprintln!("memory trusted again {:?} after the kill", killed.elapsed());
    kept_in_memory(&a, &stats, &s).await;
    until_ok(|| b.revoke(3, &s.session_id)).await;
    follows_within_a_second(&a, &s, SessionCheck::Revoked).await;
}

fn is_primary(cluster: &support::Cluster, port: u16) -> bool {
    cluster.cli(port, &["role"]).starts_with("master")
}

/// Moves `slot` from the primary on `from` to the one on `to`, keys included, as
/// `redis-cli --cluster reshard` does it.
fn move_slot(cluster: &support::Cluster, slot: u16, from: u16, to: u16) {
    let id = |port: u16| cluster.cli(port, &["cluster", "myid"]).trim().to_owned();
    let (from_id, to_id, slot) = (id(from), id(to), slot.to_string());
    assert_eq!(
        cluster
            .cli(to, &["cluster", "setslot", &slot, "importing", &from_id])
            .trim(),
        "OK"
    );
    assert_eq!(
        cluster
            .cli(from, &["cluster", "setslot", &slot, "migrating", &to_id])
            .trim(),
        "OK"
    );
    let keys = cluster.cli(from, &["cluster", "getkeysinslot", &slot, "1000"]);
    let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
    assert!(!keys.is_empty(), "nothing in slot {slot}");
    let to_port = to.to_string();
    let mut migrate = vec!["migrate", "127.0.0.1", &to_port, "", "0", "5000", "keys"];
    migrate.extend(&keys);
    assert_eq!(cluster.cli(from, &migrate).trim(), "OK");
    for port in [to, from] {
        assert_eq!(
            cluster.cli(port, &["cluster", "setslot", &slot, "node", &to_id]).trim(),
            "OK"
        );
    }
}

/// Checks `s` until Redis answers (a client learns a new topology from its first
/// failed or redirected request), at most 20 s; it must be valid.
async fn answers_again(store: &RedisSessions, s: &Session) {
    assert_eq!(until_ok(|| check(store, s)).await, SessionCheck::Valid);
}

/// Tries `op` until it succeeds, at most 20 s; only an outage is tried again.
async fn until_ok<T, F: std::future::Future<Output = Result<T, StoreError>>>(op: impl Fn() -> F) -> T {
    let start = Instant::now();
    loop {
        match op().await {
            Ok(v) => return v,
            Err(StoreError::Unavailable(e)) => assert!(start.elapsed() < Duration::from_secs(20), "{e}"),
            Err(e) => panic!("{e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_ends_answers_from_memory_within_the_trust_window() {
    let Some(mut redis) = PrivateRedis::start("a_paused_redis_ends_answers_from_memory_within_the_trust_window") else {
        return;
    };
    let stats = Arc::new(StoreStats::default());
    let a = RedisSessions::connect(&redis.url(), "p:", Some(Watch::user_keys("p:")), stats.clone())
        .await
        .unwrap();
    support::tracking_current(&a).await;
    let s = session(1);
    a.create(&s, &ONE, passport::clock::now()).await.unwrap();
    kept_in_memory(&a, &stats, &s).await;

    // Paused, not killed: the connections stay open and nothing says it is gone,
    // so only the missing proof of freshness can end the answers from memory.
    redis.pause();
    let paused = Instant::now();
    loop {
        let start = Instant::now();
        match check(&a, &s).await {
            Ok(SessionCheck::Valid) => assert!(
                start.duration_since(paused) <= TRUST_WINDOW,
                "valid from memory {:?} after Redis paused",
                start.duration_since(paused)
            ),
            Err(StoreError::Unavailable(_)) => break,
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            paused.elapsed() < Duration::from_secs(5),
            "no 503 while Redis is paused"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("paused Redis refused after {:?}", paused.elapsed());

    // Back: tracking starts again by itself and the session is kept again.
    redis.unpause();
    support::tracking_current(&a).await;
    kept_in_memory(&a, &stats, &s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_refuses_tracking_is_asked_every_time() {
    let test = "a_redis_that_refuses_tracking_is_asked_every_time";
    let Some(redis) = PrivateRedis::start_with(test, &["--rename-command", "CLIENT", ""]) else {
        return;
    };
    let stats = Arc::new(StoreStats::default());
    let a = RedisSessions::connect(&redis.url(), "p:", Some(Watch::user_keys("p:")), stats.clone())
        .await
        .unwrap();
    let b = RedisSessions::connect(&redis.url(), "p:", None, Default::default())
        .await
        .unwrap();
    let s = session(1);
    a.create(&s, &ONE, passport::clock::now()).await.unwrap();
    for _ in 0..20 {
        assert_eq!(check(&a, &s).await.unwrap(), SessionCheck::Valid);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!a.tracking());
    assert_eq!(
        StoreStats::get(&stats.session_checks_memory),
        0,
        "nothing answered from memory"
    );
    b.revoke(1, &s.session_id).await.unwrap();
    assert_eq!(check(&a, &s).await.unwrap(), SessionCheck::Revoked, "at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_changes_show_at_once_without_waiting_for_redis() {
    let test = "own_changes_show_at_once_without_waiting_for_redis";
    let Some(url) = support::shared_redis(test) else {
        return;
    };
    let prefix = format!("passport-test:{}:", support::unique());
    // Tracking a prefix nothing is written under: no invalidation ever arrives,
    // so only this process's own bookkeeping can end what it keeps.
    let (a, b, stats) = two_stores(&url, &prefix, Watch::prefix(format!("{prefix}{{nothing}}"))).await;
    let now = passport::clock::now();

    // What shows that nothing arrives: another process's logout goes unseen.
    let s = session(1);
    b.create(&s, &ONE, now).await.unwrap();
    kept_in_memory(&a, &stats, &s).await;
    b.revoke(1, &s.session_id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Memory still says valid (a check that a late heartbeat sends to Redis hears
    // otherwise, so look until one comes from memory).
    assert_eq!(from_memory(&a, &stats, &s, |_| {}).await, SessionCheck::Valid);
    a.revoke(1, &s.session_id).await.unwrap();
    assert_eq!(check(&a, &s).await.unwrap(), SessionCheck::Revoked);

    own_changes_refused_at_once(&a, &stats, now).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_tracking_connection_forgets_what_it_kept() {
    let Some(redis) = PrivateRedis::start("a_lost_tracking_connection_forgets_what_it_kept") else {
        return;
    };
    let (a, b, stats) = two_stores(&redis.url(), "p:", Watch::user_keys("p:")).await;
    let s = session(1);
    b.create(&s, &ONE, passport::clock::now()).await.unwrap();
    kept_in_memory(&a, &stats, &s).await;

    // The tracking connection is killed and the session revoked while it is
    // gone: no invalidation can ever reach A for it.
    let mut raw = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let clients: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut raw).await.unwrap();
    let tracker = clients
        .lines()
        .find(|line| line.contains(&format!("name={TRACKER_NAME}")))
        .and_then(|line| line.split(' ').find_map(|f| f.strip_prefix("id=")))
        .unwrap_or_else(|| panic!("no tracking client in {clients}"))
        .to_owned();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&tracker)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    b.revoke(1, &s.session_id).await.unwrap();

    // Tracking comes back by itself, and what was kept before is not used.
    let start = Instant::now();
    loop {
        let clients: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut raw).await.unwrap();
        if a.tracking() && clients.lines().any(|l| l.contains(&format!("name={TRACKER_NAME}"))) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "tracking did not come back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(check(&a, &s).await.unwrap(), SessionCheck::Revoked);
}

// ------------------------------------------- revocations across a failover

/// A primary and its replica, private to a test, the replica in sync.
fn primary_and_replica(test: &str) -> Option<(PrivateRedis, PrivateRedis)> {
    let primary = PrivateRedis::start_with(test, &["--repl-diskless-sync-delay", "0"])?;
    let port = primary.port.to_string();
    let replica = PrivateRedis::start_with(test, &["--replicaof", "127.0.0.1", &port])?;
    let start = Instant::now();
    loop {
        let info = redis_info(&replica.url(), "replication");
        if info.contains("master_link_status:up") {
            return Some((primary, replica));
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the replica did not sync: {info}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn redis_info(url: &str, section: &str) -> String {
    let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
    redis::cmd("INFO").arg(section).query(&mut c).unwrap()
}

const THREE: SessionPolicy = SessionPolicy {
    max_sessions: 3,
    overflow: Overflow::EvictOldest,
    tombstone_ttl: 600,
};

/// `rounds` failovers: a user's sessions reach the replica; in every other round
/// the replica lags (frozen, its link cut); a revocation (`DELETE`,
/// `logout_all` or an eviction by a newer login, in turn); at once the primary is
/// killed and the replica promoted. Returns how many revocations were
/// acknowledged and still came back as valid sessions on the promoted replica.
/// Who promotes the replica once the primary is killed.
#[derive(Clone, Copy)]
enum Failover {
    /// The test, at once (`REPLICAOF NO ONE`); Passport is given the primary's URL.
    ByHand,
    /// Three sentinels, a second after the primary stops answering; Passport is
    /// given the sentinels' URL.
    BySentinels,
}

async fn revocations_lost_in_failovers(test: &str, replicas: u32, rounds: usize, failover: Failover) -> Option<usize> {
    let mut lost = 0;
    for round in 0..rounds {
        let (mut pair, mut set) = (None, None);
        let (primary, replica, url) = match failover {
            Failover::ByHand => {
                let (primary, replica) = pair.insert(primary_and_replica(test)?);
                let url = primary.url();
                (primary, replica, url)
            }
            Failover::BySentinels => {
                let set = set.insert(support::Sentinels::start(test)?);
                let url = set.url();
                (&mut set.primary, &mut set.replica, url)
            }
        };
        let prefix = format!("passport-test:{}:", support::unique());
        let durability = Durability {
            replicas,
            timeout: Duration::from_millis(900),
        };
        let store = RedisSessions::connect(&url, &prefix, None, Default::default())
            .await
            .unwrap()
            .with_durable_revocations(&url, durability)
            .await
            .unwrap();
        assert_eq!(store.durability().is_some(), replicas > 0);
        let on_replica = RedisSessions::connect(&replica.url(), &prefix, None, Default::default())
            .await
            .unwrap();
        let user = 7000 + round as i64;
        let (s1, s2) = (session(user), session(user));
        let now = passport::clock::now();
        for s in [&s1, &s2] {
            assert!(matches!(
                store.create(s, &THREE, now).await.unwrap(),
                CreateOutcome::Created { .. }
            ));
        }
        let start = Instant::now();
        while check(&on_replica, &s2).await.unwrap() != SessionCheck::Valid
            || check(&on_replica, &s1).await.unwrap() != SessionCheck::Valid
        {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the sessions did not reach the replica"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }

        // A lagging replica: frozen, and its link dropped by the primary, so that
        // what the primary writes next does not reach it (a frozen replica alone
        // would still find the write in its socket's buffer when it wakes).
        let lagging = round % 2 == 0;
        if lagging {
            replica.pause();
            let mut c = redis::Client::open(primary.url()).unwrap().get_connection().unwrap();
            let _: i64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("replica")
                .query(&mut c)
                .unwrap();
        }
        let (acknowledged, revoked) = match round % 3 {
            0 => (store.revoke(user, &s1.session_id).await.is_ok(), vec![&s1]),
            1 => (store.revoke_all(user).await.is_ok(), vec![&s1, &s2]),
            _ => {
                let s3 = session(user);
                let outcome = store.create(&s3, &ONE, now).await;
                (outcome.is_ok(), vec![&s1, &s2])
            }
        };
        // At once: the primary dies, the replica is promoted.
        primary.stop();
        if lagging {
            replica.unpause();
        }
        if !lagging && replicas > 0 {
            assert!(
                acknowledged,
                "round {round}: a revocation with a live replica is acknowledged"
            );
        }
        match failover {
            Failover::ByHand => {
                let mut promote = redis::Client::open(replica.url()).unwrap().get_connection().unwrap();
                let _: () = redis::cmd("REPLICAOF")
                    .arg("NO")
                    .arg("ONE")
                    .query(&mut promote)
                    .unwrap();
            }
            Failover::BySentinels => {
                let start = Instant::now();
                // Asked on a new connection each time: the sentinels drop the
                // clients of a node they reconfigure.
                let role = || {
                    redis::Client::open(replica.url())
                        .and_then(|c| c.get_connection())
                        .and_then(|mut c| redis::cmd("ROLE").query::<Vec<redis::Value>>(&mut c))
                        .ok()
                        .and_then(|r| r.into_iter().next())
                };
                while role() != Some(redis::Value::BulkString(b"master".to_vec())) {
                    assert!(
                        start.elapsed() < Duration::from_secs(30),
                        "round {round}: the sentinels did not promote the replica"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        // A connection of its own: the sentinels drop the clients of a node they
        // reconfigure.
        let promoted = RedisSessions::connect(&replica.url(), &prefix, None, Default::default())
            .await
            .unwrap();
        for s in revoked {
            let after = check(&promoted, s).await.unwrap();
            if acknowledged && after == SessionCheck::Valid {
                eprintln!("round {round}: an acknowledged revocation came back after the failover");
                lost += 1;
            }
        }
    }
    Some(lost)
}

/// Revocations survive a failover: acknowledged only once a replica has them.
/// The same rounds without the durability step lose some, which shows the rounds
/// can catch a lost revocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_survive_a_failover_of_the_primary() {
    let test = "revocations_survive_a_failover_of_the_primary";
    revocations_survive(test, Failover::ByHand, 12, 6).await;
}

/// The same, with the replica promoted by Sentinel and Passport following the
/// sentinels (fewer rounds: each waits a second or two for the sentinels).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_survive_a_sentinel_failover() {
    revocations_survive("revocations_survive_a_sentinel_failover", Failover::BySentinels, 6, 4).await;
}

/// `rounds` with the durability step lose nothing; `rounds_without` without it
/// lose some (half of them are made while the replica lags).
async fn revocations_survive(test: &str, failover: Failover, rounds: usize, rounds_without: usize) {
    let Some(lost) = revocations_lost_in_failovers(test, 1, rounds, failover).await else {
        return;
    };
    assert_eq!(lost, 0, "acknowledged revocations came back after a failover");
    let Some(lost_without) = revocations_lost_in_failovers(test, 0, rounds_without, failover).await else {
        return;
    };
    assert!(
        lost_without > 0,
        "without WAIT the lagging rounds should have lost revocations"
    );
    eprintln!("without the durability step: {lost_without} revocations came back");
}

/// A Redis Cluster of three primaries with a replica each; the primary holding
/// some users' sessions is killed. Passport keeps answering: users elsewhere are
/// served, users on the dead primary get 503 (never a 200 on doubt, never a hang)
/// until the replica takes over, then are served again with their sessions, by
/// themselves. A logout there waits for a replica: 503 until the killed node is
/// back (as a replica), then it ends the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_primary_fails_over_and_passport_follows() {
    let test = "a_cluster_primary_fails_over_and_passport_follows";
    let Some(mut cluster) = support::Cluster::start_with(test, 1) else {
        return;
    };
    let prefix = format!("passport-test:{}:", support::unique());
    let url = cluster.cluster_url();
    let dir = tempfile::tempdir().unwrap();
    let extra = [
        ("redis_url", url.as_str()),
        ("redis_prefix", prefix.as_str()),
        ("redis_wait_ms", "300"),
        ("max_sessions", "2"),
    ];
    let (base, _stop) = spawn_in_process(dir.path(), &extra).await;
    let c = client();

    // Twelve users; their sessions' slots say which primary holds them.
    let mut users = Vec::new();
    for i in 0..12 {
        let creds = json!({"mobile": format!("138000003{i:02}"), "password": PASSWORD});
        assert_eq!(
            post(&c, format!("{base}/passport/register"), creds.clone()).await.0,
            201
        );
        let (status, login) = post(&c, format!("{base}/passport/login"), creds).await;
        assert_eq!(status, 200, "{login}");
        let id = login["data"]["user_id"].as_i64().unwrap();
        let key = format!("{prefix}{{u{id}}}:sessions");
        let slot: u16 = cluster
            .cli(cluster.ports[0], &["cluster", "keyslot", &key])
            .trim()
            .parse()
            .unwrap();
        users.push((token_of(&login), slot));
    }
    // The first user has a second session, which no logout touches until the end.
    let creds = json!({"mobile": "13800000300", "password": PASSWORD});
    let untouched = token_of(&post(&c, format!("{base}/passport/login"), creds).await.1);
    let victim = cluster.primary_of(users[0].1, cluster.ports[0]).unwrap();
    let survivor = *cluster.ports.iter().find(|p| **p != victim).unwrap();
    let on_victim: Vec<bool> = users
        .iter()
        .map(|(_, slot)| cluster.primary_of(*slot, survivor) == Some(victim))
        .collect();
    assert!(
        on_victim.iter().any(|v| !v),
        "every user on one primary: pick more users"
    );

    let seen = ready(&c, &base).await;
    assert_eq!(
        (&seen["sessions"], &seen["redis"]["durable_revocations"]),
        (&json!("ok"), &json!(true)),
        "{seen}"
    );
    assert_eq!(replicas_of_primaries(&seen["redis"]), [1, 1, 1], "{seen}");

    cluster.kill(victim);
    let start = Instant::now();
    let mut refused = 0;
    loop {
        let mut all_served = true;
        for ((token, _), on_victim) in users.iter().zip(&on_victim) {
            let asked = Instant::now();
            let (status, body) = get(&c, format!("{base}/passport/me"), token).await;
            assert!(
                asked.elapsed() < Duration::from_secs(5),
                "an answer took {:?}",
                asked.elapsed()
            );
            match (status, on_victim) {
                (200, _) => {}
                (503, true) => {
                    assert_eq!(body["error"], "store_unavailable", "{body}");
                    refused += 1;
                    all_served = false;
                }
                _ => panic!("during the failover: {status} {body} (on the dead primary: {on_victim})"),
            }
        }
        if all_served && start.elapsed() > Duration::from_millis(500) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "Passport did not follow the failover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "served again {:?} after the kill; {refused} answers were 503",
        start.elapsed()
    );
    // Once every node has the news: the victim is failing, and its replica serves
    // its slots with no replica of its own (logouts of its users cannot be confirmed).
    let failing = json!([format!("127.0.0.1:{victim}")]);
    let seen = ready_until(&c, &base, |seen| {
        let redis = &seen["redis"];
        seen["sessions"] == "degraded"
            && redis["mode"] == "cluster"
            && redis["slots_served"] == 16384
            && redis["failing"] == failing
            && replicas_of_primaries(redis) == [0, 1, 1]
    })
    .await;
    eprintln!("during the failover, /readyz: {seen}");

    // A logout of a user whose shard has no replica left cannot be made durable.
    let (token, _) = &users[0];
    let (status, body) = post_auth(&c, format!("{base}/passport/logout"), token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("store_unavailable")),
        "{status} {body}"
    );
    // The killed node comes back as the new primary's replica; logging out works.
    // Each try uses a session no logout has touched (a 503 has still ended its
    // session on the primary); the first after the failover may find Passport's
    // fence connection still learning where the slot went.
    cluster.revive(victim);
    replica_in_sync(victim, Duration::from_secs(30)).await;
    ready_until(&c, &base, |seen| {
        seen["sessions"] == "ok"
            && seen["redis"]["failing"] == json!([])
            && replicas_of_primaries(&seen["redis"]) == [1, 1, 1]
    })
    .await;
    let mut untried = vec![untouched];
    untried.extend(
        users
            .iter()
            .zip(&on_victim)
            .skip(1)
            .filter(|(_, v)| **v)
            .map(|((t, _), _)| t.clone()),
    );
    let mut answers = Vec::new();
    for token in &untried {
        let (status, body) = post_auth(&c, format!("{base}/passport/logout"), token).await;
        answers.push(status);
        if status == 200 {
            let (status, body) = get(&c, format!("{base}/passport/me"), token).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (401, Some("session_revoked")),
                "{body}"
            );
            break;
        }
        assert_eq!(
            (status, body["error"].as_str()),
            (503, Some("store_unavailable")),
            "{body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        answers.last(),
        Some(&200),
        "no logout was confirmed once the replica was back: {answers:?}"
    );
    eprintln!("logouts after the replica came back: {answers:?}");
}

/// A primary with a replica under three sentinels; the primary is killed.
/// Passport answers 503 (never a 200 on doubt, never a hang) until the sentinels
/// promote the replica, then serves the user with the session it had, by itself.
/// A logout then waits for a replica: 503 until the old primary is back as one,
/// then the session ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_and_passport_follows() {
    let test = "a_sentinel_failover_and_passport_follows";
    let Some(mut set) = support::Sentinels::start(test) else {
        return;
    };
    let prefix = format!("passport-test:{}:", support::unique());
    let url = set.url();
    let dir = tempfile::tempdir().unwrap();
    let extra = [
        ("redis_url", url.as_str()),
        ("redis_prefix", prefix.as_str()),
        ("redis_wait_ms", "300"),
        ("max_sessions", "2"),
    ];
    let (base, _stop) = spawn_in_process(dir.path(), &extra).await;
    let c = client();
    let creds = json!({"mobile": "13800000400", "password": PASSWORD});
    assert_eq!(
        post(&c, format!("{base}/passport/register"), creds.clone()).await.0,
        201
    );
    let (_, login) = post(&c, format!("{base}/passport/login"), creds.clone()).await;
    let token = token_of(&login);
    let user_id = login["data"]["user_id"].as_i64().unwrap();
    assert_eq!(get(&c, format!("{base}/passport/me"), &token).await.0, 200);
    // A second session, which no logout touches until the end.
    let untouched = token_of(&post(&c, format!("{base}/passport/login"), creds).await.1);
    // The sessions have reached the replica before the primary dies.
    let start = Instant::now();
    let key = format!("{prefix}{{u{user_id}}}:sessions");
    let mut on_replica = redis::Client::open(set.replica.url())
        .unwrap()
        .get_connection()
        .unwrap();
    while redis::cmd("ZCARD").arg(&key).query::<i64>(&mut on_replica).unwrap() < 2 {
        assert!(start.elapsed() < Duration::from_secs(10), "nothing reached the replica");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let primary = |port: u16, replicas: u32| {
        json!({"mode": "sentinel", "durable_revocations": true, "failing": [],
               "primaries": [{"address": format!("127.0.0.1:{port}"), "replicas": replicas}]})
    };
    let seen = ready(&c, &base).await;
    assert_eq!(
        (&seen["sessions"], &seen["redis"]),
        (&json!("ok"), &primary(set.primary.port, 1))
    );

    set.primary.stop();
    let start = Instant::now();
    let mut refused = 0;
    loop {
        let asked = Instant::now();
        let (status, body) = get(&c, format!("{base}/passport/me"), &token).await;
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "an answer took {:?}",
            asked.elapsed()
        );
        match status {
            200 => break,
            503 => {
                assert_eq!(body["error"], "store_unavailable", "{body}");
                refused += 1;
            }
            _ => panic!("during the failover: {status} {body}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "Passport did not follow the failover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "served again {:?} after the kill; {refused} answers were 503",
        start.elapsed()
    );
    assert!(refused > 0, "the dead primary must have been noticed");
    let promoted = primary(set.replica.port, 0);
    ready_until(&c, &base, |seen| {
        seen["sessions"] == "degraded" && seen["redis"] == promoted
    })
    .await;

    // The promoted replica has no replica of its own: a logout cannot be made durable.
    let (status, body) = post_auth(&c, format!("{base}/passport/logout"), &token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("store_unavailable")),
        "{status} {body}"
    );
    // The old primary comes back; the sentinels make it the new primary's replica.
    set.primary.resume();
    replica_in_sync(set.primary.port, Duration::from_secs(40)).await;
    let healed = primary(set.replica.port, 1);
    ready_until(&c, &base, |seen| seen["sessions"] == "ok" && seen["redis"] == healed).await;
    logout_is_confirmed(&c, &base, &untouched).await;
}

/// Waits (at most `within`) until the node at `port` is a replica that its primary
/// counts in `WAIT`. The replica reports its link up before that: the primary
/// starts streaming to a resynced replica on its next acknowledgement, up to a
/// second later, and until then `WAIT` does not count it.
async fn replica_in_sync(port: u16, within: Duration) {
    let connect = |port: u16| redis::Client::open(format!("redis://127.0.0.1:{port}")).and_then(|c| c.get_connection());
    let start = Instant::now();
    loop {
        let info = connect(port)
            .and_then(|mut c| redis::cmd("INFO").arg("replication").query::<String>(&mut c))
            .unwrap_or_default();
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
        };
        if field("master_link_status") == Some("up") {
            let primary = field("master_port").and_then(|p| p.parse().ok());
            if let Some(Ok(mut c)) = primary.map(connect) {
                // A write the primary owns (on a Cluster node, a key of its slots),
                // then whether a replica has it.
                let owned = (0..64).any(|i| {
                    redis::cmd("SET")
                        .arg(format!("replica-probe:{i}"))
                        .arg(1)
                        .query::<()>(&mut c)
                        .is_ok()
                });
                let counted: i64 = redis::cmd("WAIT").arg(1).arg(200).query(&mut c).unwrap_or(0);
                if owned && counted >= 1 {
                    return;
                }
            }
        }
        assert!(start.elapsed() < within, "no replica came back: {info}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Logs `untouched` (a session no logout has tried: a 503 logout has still ended
/// its session on the primary) out once; with a replica in sync it is confirmed
/// (200), and the session is over.
async fn logout_is_confirmed(c: &reqwest::Client, base: &str, untouched: &str) {
    let (status, body) = post_auth(c, format!("{base}/passport/logout"), untouched).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(c, format!("{base}/passport/me"), untouched).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("session_revoked")),
        "{body}"
    );
}
