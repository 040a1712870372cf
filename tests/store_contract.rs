//! One contract for every store backend: the user stores (SQLite, PostgreSQL) and
//! the session stores (embedded SQLite, embedded with its memory cache, Redis
//! single node, Redis Cluster). Each backend test runs every case against fresh
//! storage of its own (a new file, database or key prefix).

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use passport::config::Overflow;
use passport::ids::SessionId;
use passport::store::embedded::EmbeddedSessions;
use passport::store::embedded_cache::CachedSessions;
use passport::store::mysql::MySqlUsers;
use passport::store::postgres::PgUsers;
use passport::store::redis::RedisSessions;
use passport::store::redis_tracking::Watch;
use passport::store::sqlite::SqliteUsers;
use passport::store::{
    CreateOutcome, RateStore, RefreshState, Session, SessionCheck, SessionPolicy, SessionStore, StoreError, StoreStats,
    StreamAccess, StreamRecord, StreamStore, UserStore,
};

type BoxFut<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

// ---------------------------------------------------------------- sessions

const NOW: i64 = 1_900_000_000;

fn session(user_id: i64, login_time: i64) -> Session {
    Session {
        session_id: SessionId::random(),
        user_id,
        login_time,
        created_at: login_time,
        expires_at: crate::now() + 3600,
        device: Some("phone \"1\"\n".into()),
        ip: Some("127.0.0.1".into()),
        refresh: RefreshState {
            digest: [login_time as u8; 32],
            generation: 0,
            rotated_at: 0,
        },
    }
}

fn now() -> i64 {
    passport::clock::now()
}

fn policy(max: u32, overflow: Overflow) -> SessionPolicy {
    SessionPolicy {
        max_sessions: max,
        overflow,
        tombstone_ttl: 600,
    }
}

async fn create_ok(store: &dyn SessionStore, s: &Session, p: &SessionPolicy) -> Vec<SessionId> {
    match store.create(s, p, now()).await.unwrap() {
        CreateOutcome::Created { evicted } => evicted,
        CreateOutcome::LimitReached => panic!("unexpected LimitReached"),
    }
}

async fn create_and_check(store: Arc<dyn SessionStore>) {
    let s = session(1, NOW);
    assert!(create_ok(&*store, &s, &policy(1, Overflow::EvictOldest))
        .await
        .is_empty());
    let t = now();
    assert_eq!(
        store.check(1, &s.session_id, NOW, t).await.unwrap(),
        SessionCheck::Valid
    );
    assert_eq!(
        store.check(1, &s.session_id, NOW + 1, t).await.unwrap(),
        SessionCheck::Revoked,
        "login_time must match"
    );
    assert_eq!(
        store.check(2, &s.session_id, NOW, t).await.unwrap(),
        SessionCheck::Revoked,
        "user must match"
    );
    assert_eq!(
        store.check(1, &SessionId::random(), NOW, t).await.unwrap(),
        SessionCheck::Revoked
    );
    // Past its expiry a session is gone.
    assert_eq!(
        store.check(1, &s.session_id, NOW, s.expires_at + 1).await.unwrap(),
        SessionCheck::Revoked
    );
    store.ping().await.unwrap();
}

async fn evict_oldest(store: Arc<dyn SessionStore>) {
    let p = policy(2, Overflow::EvictOldest);
    let (a, b, c) = (session(7, NOW), session(7, NOW + 1), session(7, NOW + 2));
    create_ok(&*store, &a, &p).await;
    create_ok(&*store, &b, &p).await;
    let evicted = create_ok(&*store, &c, &p).await;
    assert_eq!(evicted, vec![a.session_id], "the oldest session makes way");
    let t = now();
    assert_eq!(
        store.check(7, &a.session_id, NOW, t).await.unwrap(),
        SessionCheck::Replaced
    );
    assert_eq!(
        store.check(7, &b.session_id, NOW + 1, t).await.unwrap(),
        SessionCheck::Valid
    );
    assert_eq!(
        store.check(7, &c.session_id, NOW + 2, t).await.unwrap(),
        SessionCheck::Valid
    );
    // A tombstone speaks only for its own user.
    assert_eq!(
        store.check(8, &a.session_id, NOW, t).await.unwrap(),
        SessionCheck::Revoked
    );
    // Other users are untouched.
    let other = session(8, NOW);
    create_ok(&*store, &other, &p).await;
    assert_eq!(
        store.check(8, &other.session_id, NOW, t).await.unwrap(),
        SessionCheck::Valid
    );
    // A lower limit (a changed setting) evicts every session past it at once,
    // oldest first, and still nobody else's.
    let d = session(7, NOW + 3);
    let evicted = create_ok(&*store, &d, &policy(1, Overflow::EvictOldest)).await;
    assert_eq!(evicted, vec![b.session_id, c.session_id]);
    for (sid, lt) in [(b.session_id, NOW + 1), (c.session_id, NOW + 2)] {
        assert_eq!(store.check(7, &sid, lt, now()).await.unwrap(), SessionCheck::Replaced);
    }
    assert_eq!(
        store.check(7, &d.session_id, NOW + 3, now()).await.unwrap(),
        SessionCheck::Valid
    );
    assert_eq!(
        store.check(8, &other.session_id, NOW, now()).await.unwrap(),
        SessionCheck::Valid
    );
}

async fn reject_policy(store: Arc<dyn SessionStore>) {
    let p = policy(1, Overflow::Reject);
    let a = session(3, NOW);
    create_ok(&*store, &a, &p).await;
    let b = session(3, NOW + 1);
    assert_eq!(store.create(&b, &p, now()).await.unwrap(), CreateOutcome::LimitReached);
    let t = now();
    assert_eq!(
        store.check(3, &a.session_id, NOW, t).await.unwrap(),
        SessionCheck::Valid
    );
    assert_eq!(
        store.check(3, &b.session_id, NOW + 1, t).await.unwrap(),
        SessionCheck::Revoked
    );
    assert!(store.revoke(3, &a.session_id).await.unwrap());
    create_ok(&*store, &b, &p).await;
}

async fn revoke_and_revoke_all(store: Arc<dyn SessionStore>) {
    let p = policy(5, Overflow::EvictOldest);
    let sessions: Vec<Session> = (0..3).map(|i| session(4, NOW + i)).collect();
    for s in &sessions {
        create_ok(&*store, s, &p).await;
    }
    assert!(
        !store.revoke(5, &sessions[0].session_id).await.unwrap(),
        "not another user's session"
    );
    assert!(store.revoke(4, &sessions[0].session_id).await.unwrap());
    assert!(!store.revoke(4, &sessions[0].session_id).await.unwrap(), "already gone");
    assert_eq!(
        store.check(4, &sessions[0].session_id, NOW, now()).await.unwrap(),
        SessionCheck::Revoked
    );
    let mut gone = store.revoke_all(4).await.unwrap();
    gone.sort();
    let mut expected = vec![sessions[1].session_id, sessions[2].session_id];
    expected.sort();
    assert_eq!(gone, expected);
    for s in &sessions {
        assert_eq!(
            store.check(4, &s.session_id, s.login_time, now()).await.unwrap(),
            SessionCheck::Revoked
        );
    }
    assert!(store.revoke_all(4).await.unwrap().is_empty());
    assert!(store.list(4, now()).await.unwrap().is_empty());
}

async fn list_round_trips(store: Arc<dyn SessionStore>) {
    let p = policy(5, Overflow::EvictOldest);
    let a = session(6, NOW);
    let mut b = session(6, NOW + 1);
    b.device = None;
    b.ip = None;
    create_ok(&*store, &a, &p).await;
    create_ok(&*store, &b, &p).await;
    let listed = store.list(6, now()).await.unwrap();
    assert_eq!(listed, vec![a.clone(), b.clone()], "oldest first, every field kept");
    assert!(store.list(60, now()).await.unwrap().is_empty());
}

async fn concurrent_creates_respect_the_limit(store: Arc<dyn SessionStore>) {
    let p = policy(2, Overflow::EvictOldest);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let s = session(9, NOW + i);
            create_ok(&*store, &s, &p).await;
            s
        }));
    }
    let mut created = Vec::new();
    for t in tasks {
        created.push(t.await.unwrap());
    }
    let mut valid = 0;
    for s in &created {
        if store.check(9, &s.session_id, s.login_time, now()).await.unwrap() == SessionCheck::Valid {
            valid += 1;
        }
    }
    assert_eq!(valid, 2);
    assert_eq!(store.list(9, now()).await.unwrap().len(), 2);
}

async fn closed_store_fails_closed(store: Arc<dyn SessionStore>) {
    let s = session(10, NOW);
    create_ok(&*store, &s, &policy(1, Overflow::EvictOldest)).await;
    store.close().await;
    let r = store.check(10, &s.session_id, NOW, now()).await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))));
    // Writes too.
    let r = store
        .create(&session(10, NOW + 1), &policy(1, Overflow::EvictOldest), now())
        .await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    let r = store.revoke(10, &s.session_id).await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    let r = store.revoke_all(10).await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
}

async fn refresh_rotation_is_compare_and_set(store: Arc<dyn SessionStore>) {
    let s = session(12, NOW);
    create_ok(&*store, &s, &policy(1, Overflow::EvictOldest)).await;
    let got = store.refresh_state(12, &s.session_id, now()).await.unwrap().unwrap();
    assert_eq!(got, s);
    assert!(
        store.refresh_state(13, &s.session_id, now()).await.unwrap().is_none(),
        "not another user's"
    );
    let next = RefreshState {
        digest: [9u8; 32],
        generation: 1,
        rotated_at: now(),
    };
    let later = now() + 7200;
    assert!(
        !store
            .rotate_refresh(12, &s.session_id, &[1u8; 32], &next, later)
            .await
            .unwrap(),
        "wrong expected digest"
    );
    assert!(store
        .rotate_refresh(12, &s.session_id, &s.refresh.digest, &next, later)
        .await
        .unwrap());
    assert!(
        !store
            .rotate_refresh(12, &s.session_id, &s.refresh.digest, &next, later)
            .await
            .unwrap(),
        "lost the race"
    );
    let got = store.refresh_state(12, &s.session_id, now()).await.unwrap().unwrap();
    assert_eq!((got.refresh, got.expires_at), (next, later));
    // The session lives on with its slid expiry.
    assert_eq!(
        store.check(12, &s.session_id, NOW, s.expires_at + 1).await.unwrap(),
        SessionCheck::Valid
    );
    store.revoke(12, &s.session_id).await.unwrap();
    assert!(store.refresh_state(12, &s.session_id, now()).await.unwrap().is_none());
}

type SessionCase = fn(Arc<dyn SessionStore>) -> BoxFut<'static>;

const SESSION_CASES: &[(&str, SessionCase)] = &[
    ("create_and_check", |s| Box::pin(create_and_check(s))),
    ("evict_oldest", |s| Box::pin(evict_oldest(s))),
    ("reject_policy", |s| Box::pin(reject_policy(s))),
    ("revoke_and_revoke_all", |s| Box::pin(revoke_and_revoke_all(s))),
    ("list_round_trips", |s| Box::pin(list_round_trips(s))),
    ("concurrent_creates_respect_the_limit", |s| {
        Box::pin(concurrent_creates_respect_the_limit(s))
    }),
    ("refresh_rotation_is_compare_and_set", |s| {
        Box::pin(refresh_rotation_is_compare_and_set(s))
    }),
    ("closed_store_fails_closed", |s| Box::pin(closed_store_fails_closed(s))),
];

async fn run_session_contract<F, Fut>(backend: &str, make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn SessionStore>>,
{
    for (name, case) in SESSION_CASES {
        eprintln!("{backend}: {name}");
        case(make().await).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_embedded_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    run_session_contract("embedded", || async {
        let path = dir.path().join(format!("{}.db", support::unique()));
        let store = EmbeddedSessions::open(&path, Arc::new(StoreStats::default()))
            .await
            .unwrap();
        Arc::new(store) as Arc<dyn SessionStore>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_embedded_cached() {
    let dir = tempfile::tempdir().unwrap();
    run_session_contract("embedded+memory", || async {
        let path = dir.path().join(format!("{}.db", support::unique()));
        let store = EmbeddedSessions::open(&path, Arc::new(StoreStats::default()))
            .await
            .unwrap();
        Arc::new(CachedSessions::start(store).await.unwrap()) as Arc<dyn SessionStore>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_redis_single_node() {
    let Some(url) = support::shared_redis("sessions_redis_single_node") else {
        return;
    };
    // As a server runs it, tracking current. The contract checks a session right
    // after changing it, so its reads race their own invalidations and are seldom
    // kept: what it shows is that the answers stay right; tests/scale.rs shows
    // answers from memory.
    run_session_contract("redis", || async {
        let prefix = format!("passport-test:{}:", support::unique());
        let store = RedisSessions::connect(&url, &prefix, Some(Watch::user_keys(&prefix)), Default::default())
            .await
            .unwrap();
        support::tracking_current(&store).await;
        Arc::new(store) as Arc<dyn SessionStore>
    })
    .await;
    // As a one-shot command runs it: every check asks Redis.
    run_session_contract("redis, untracked", || async {
        let prefix = format!("passport-test:{}:", support::unique());
        Arc::new(
            RedisSessions::connect(&url, &prefix, None, Default::default())
                .await
                .unwrap(),
        ) as Arc<dyn SessionStore>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_redis_cluster() {
    let Some(cluster) = support::Cluster::start("sessions_redis_cluster") else {
        return;
    };
    let url = cluster.url();
    run_session_contract("redis cluster", || async {
        let prefix = format!("passport-test:{}:", support::unique());
        Arc::new(
            RedisSessions::connect(&url, &prefix, Some(Watch::user_keys(&prefix)), Default::default())
                .await
                .unwrap(),
        ) as Arc<dyn SessionStore>
    })
    .await;
    // The redis+cluster:// form names the same cluster.
    let alt = format!(
        "redis+cluster://127.0.0.1:{},127.0.0.1:{}",
        cluster.ports[0], cluster.ports[1]
    );
    let store = RedisSessions::connect(
        &alt,
        "passport-test:alt:",
        Some(Watch::user_keys("passport-test:alt:")),
        Default::default(),
    )
    .await
    .unwrap();
    create_and_check(Arc::new(store)).await;
}

// ---------------------------------------------------------------- users

async fn users_round_trip(store: Arc<dyn UserStore>) {
    let roles = vec!["viewer".to_owned()];
    let a = store
        .create("+8613800000001", "$argon2id$a", &roles, NOW)
        .await
        .unwrap();
    let b = store
        .create("+8613800000002", "$argon2id$b", &roles, NOW + 1)
        .await
        .unwrap();
    assert_ne!(a, b);
    assert!(matches!(
        store.create("+8613800000001", "x", &roles, NOW).await,
        Err(StoreError::Conflict)
    ));

    let u = store.find_by_mobile("+8613800000001").await.unwrap().unwrap();
    assert_eq!(
        (u.user_id, u.password_hash.as_str(), u.roles.clone(), u.disabled),
        (a, "$argon2id$a", roles.clone(), false)
    );
    assert_eq!((u.created_at, u.last_login), (NOW, None));
    assert_eq!(store.find_by_id(a).await.unwrap().unwrap(), u);
    assert!(store.find_by_mobile("+8613800000009").await.unwrap().is_none());
    assert!(store.find_by_id(a + b + 100).await.unwrap().is_none());

    assert!(store.set_password_hash(a, "$argon2id$new").await.unwrap());
    assert!(!store.set_password_hash(a + b + 100, "x").await.unwrap());
    assert!(store.set_disabled(a, true).await.unwrap());
    // A login is recorded only for the account as it was when the password was
    // checked; either way the account comes back as it now stands.
    let u = store.record_login(a, "$argon2id$new", NOW + 5).await.unwrap().unwrap();
    assert_eq!(
        (u.password_hash.as_str(), u.disabled, u.last_login),
        ("$argon2id$new", true, None)
    );
    assert!(store.set_disabled(a, false).await.unwrap());
    // A value the row already has still counts as found (MySQL is asked for
    // matched rows, not changed ones).
    assert!(store.set_disabled(a, false).await.unwrap());
    let u = store.record_login(a, "$argon2id$a", NOW + 6).await.unwrap().unwrap();
    assert_eq!(
        (u.password_hash.as_str(), u.disabled, u.last_login),
        ("$argon2id$new", false, None)
    );
    let u = store.record_login(a, "$argon2id$new", NOW + 7).await.unwrap().unwrap();
    assert_eq!(u.last_login, Some(NOW + 7));
    assert_eq!(store.find_by_id(a).await.unwrap().unwrap(), u);
    assert!(store.record_login(a + b + 100, "x", NOW).await.unwrap().is_none());

    let all = store.list().await.unwrap();
    assert_eq!(all.iter().map(|u| u.user_id).collect::<Vec<_>>(), vec![a, b]);
    store.ping().await.unwrap();
    store.close().await;
    assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))));
    assert!(matches!(store.find_by_id(a).await, Err(StoreError::Unavailable(_))));
}

async fn users_concurrent_registration_of_one_mobile(store: Arc<dyn UserStore>) {
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.create("+8613800000077", "h", &[], NOW).await
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::Conflict) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(created, 1);
}

/// Roles change by compare-and-set: a change based on roles that are no longer
/// stored writes nothing.
async fn users_roles_compare_and_set(store: Arc<dyn UserStore>) {
    let viewer = vec!["viewer".to_owned()];
    let id = store.create("+8613800000078", "h", &viewer, NOW).await.unwrap();
    let streamer = vec!["viewer".to_owned(), "streamer".to_owned()];
    assert!(store.replace_roles(id, &viewer, &streamer).await.unwrap());
    assert_eq!(store.find_by_id(id).await.unwrap().unwrap().roles, streamer);
    // Stale: the roles are no longer just viewer.
    let admin = vec!["viewer".to_owned(), "admin".to_owned()];
    assert!(!store.replace_roles(id, &viewer, &admin).await.unwrap());
    assert_eq!(store.find_by_id(id).await.unwrap().unwrap().roles, streamer);
    assert!(!store.replace_roles(id + 100, &viewer, &admin).await.unwrap());
}

type UserCase = fn(Arc<dyn UserStore>) -> BoxFut<'static>;

const USER_CASES: &[(&str, UserCase)] = &[
    ("users_round_trip", |s| Box::pin(users_round_trip(s))),
    ("concurrent_registration_of_one_mobile", |s| {
        Box::pin(users_concurrent_registration_of_one_mobile(s))
    }),
    ("roles_compare_and_set", |s| Box::pin(users_roles_compare_and_set(s))),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_sqlite() {
    for (name, case) in USER_CASES {
        eprintln!("sqlite: {name}");
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("users.db").display());
        let store = SqliteUsers::connect(&url, Arc::new(StoreStats::default()))
            .await
            .unwrap();
        case(Arc::new(store)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_postgres() {
    for (name, case) in USER_CASES {
        eprintln!("postgres: {name}");
        let Some(db) = support::TestDb::create("users_postgres").await else {
            return;
        };
        let store = PgUsers::connect(&db.url, Arc::new(StoreStats::default()))
            .await
            .unwrap();
        case(Arc::new(store)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_mysql() {
    for (name, case) in USER_CASES {
        eprintln!("mysql: {name}");
        let Some(db) = support::TestMysql::create("users_mysql").await else {
            return;
        };
        let store = MySqlUsers::connect(&db.url, Arc::new(StoreStats::default()))
            .await
            .unwrap();
        case(Arc::new(store)).await;
    }
}

/// Streams, stored beside the users: one name once, an owner's streams in order,
/// access and key changes, deletion.
async fn streams_round_trip(users: Arc<dyn UserStore>, store: Arc<dyn StreamStore>) {
    let viewer = vec!["viewer".to_owned()];
    let a = users.create("+8613800000091", "h", &viewer, NOW).await.unwrap();
    let b = users.create("+8613800000092", "h", &viewer, NOW).await.unwrap();
    let stream = |name: &str, owner, at| StreamRecord {
        name: name.to_owned(),
        owner_id: owner,
        access: StreamAccess::Login,
        key_digest: [7; 32],
        created_at: at,
    };
    store.create_stream(&stream("one", a, NOW)).await.unwrap();
    store.create_stream(&stream("two", a, NOW + 1)).await.unwrap();
    store.create_stream(&stream("bee", b, NOW + 2)).await.unwrap();
    assert!(matches!(
        store.create_stream(&stream("one", b, NOW)).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.find_stream("one").await.unwrap(), Some(stream("one", a, NOW)));
    assert_eq!(store.find_stream("none").await.unwrap(), None);
    let names = |v: Vec<StreamRecord>| v.into_iter().map(|s| s.name).collect::<Vec<_>>();
    assert_eq!(names(store.list_streams(Some(a)).await.unwrap()), ["one", "two"]);
    assert_eq!(names(store.list_streams(None).await.unwrap()), ["one", "two", "bee"]);

    // Another owner changes nothing.
    assert!(!store.set_stream_access("one", b, StreamAccess::Public).await.unwrap());
    assert!(!store.set_stream_key("one", b, &[9; 32]).await.unwrap());
    assert!(!store.delete_stream("one", b).await.unwrap());
    assert!(store.set_stream_access("one", a, StreamAccess::Public).await.unwrap());
    assert!(store.set_stream_key("one", a, &[9; 32]).await.unwrap());
    assert_eq!(store.find_stream_by_key(&[9; 32]).await.unwrap().unwrap().name, "one");
    assert_eq!(store.find_stream_by_key(&[8; 32]).await.unwrap(), None);
    let one = store.find_stream("one").await.unwrap().unwrap();
    assert_eq!((one.access, one.key_digest), (StreamAccess::Public, [9; 32]));
    assert!(!store.set_stream_access("none", a, StreamAccess::Public).await.unwrap());
    assert!(!store.set_stream_key("none", a, &[9; 32]).await.unwrap());

    assert!(store.delete_stream("one", a).await.unwrap());
    assert!(!store.delete_stream("one", a).await.unwrap());
    assert_eq!(names(store.list_streams(None).await.unwrap()), ["two", "bee"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("users.db").display());
    let store = Arc::new(
        SqliteUsers::connect(&url, Arc::new(StoreStats::default()))
            .await
            .unwrap(),
    );
    streams_round_trip(store.clone(), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_postgres() {
    let Some(db) = support::TestDb::create("streams_postgres").await else {
        return;
    };
    let store = Arc::new(
        PgUsers::connect(&db.url, Arc::new(StoreStats::default()))
            .await
            .unwrap(),
    );
    streams_round_trip(store.clone(), store).await;
}

/// Every table of the MySQL store is utf8mb4 with a binary collation (exact
/// comparisons of mobiles, hashes and names), though the test database's
/// default is latin1 (`TestMysql`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_tables_are_utf8mb4_and_compare_exactly() {
    let Some(db) = support::TestMysql::create("mysql_tables_are_utf8mb4_and_compare_exactly").await else {
        return;
    };
    let store = MySqlUsers::connect(&db.url, Arc::new(StoreStats::default()))
        .await
        .unwrap();
    let mut conn = <sqlx::MySqlConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(table_name AS CHAR), CAST(table_collation AS CHAR) FROM information_schema.tables \
         WHERE table_schema = DATABASE() AND table_name IN ('users', 'streams') ORDER BY table_name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let expected = [("streams", "utf8mb4_bin"), ("users", "utf8mb4_bin")];
    let rows: Vec<(&str, &str)> = rows.iter().map(|(t, c)| (t.as_str(), c.as_str())).collect();
    assert_eq!(rows, expected);
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(column_name AS CHAR), CAST(character_set_name AS CHAR) FROM information_schema.columns \
         WHERE table_schema = DATABASE() AND table_name IN ('users', 'streams') \
         AND character_set_name IS NOT NULL AND character_set_name <> 'utf8mb4'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(columns.is_empty(), "{columns:?}");
    // Hashes differ in case only: a compare-and-set on one never matches the other.
    let id = store.create("+8613800000079", "$argon2id$AbC", &[], NOW).await.unwrap();
    assert!(!store.replace_password_hash(id, "$argon2id$abc", "x").await.unwrap());
    assert!(store.replace_password_hash(id, "$argon2id$AbC", "x").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_mysql() {
    let Some(db) = support::TestMysql::create("streams_mysql").await else {
        return;
    };
    let store = Arc::new(
        MySqlUsers::connect(&db.url, Arc::new(StoreStats::default()))
            .await
            .unwrap(),
    );
    streams_round_trip(store.clone(), store).await;
}

/// Two processes on one embedded file (a server and a command, or two servers by
/// mistake) still cannot exceed the limit: the check and the insert are one SQLite
/// write transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_embedded_two_instances_share_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let a: Arc<dyn SessionStore> = Arc::new(EmbeddedSessions::open(&path, Arc::default()).await.unwrap());
    let b: Arc<dyn SessionStore> = Arc::new(EmbeddedSessions::open(&path, Arc::default()).await.unwrap());
    let p = policy(2, Overflow::EvictOldest);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let s = session(11, NOW + i);
            create_ok(&*store, &s, &p).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(a.list(11, now()).await.unwrap().len(), 2);
}

/// Two handles on one embedded file in `dir`: a server's, with its memory cache,
/// and a command's, without.
async fn server_and_command(dir: &std::path::Path) -> (CachedSessions, EmbeddedSessions) {
    let path = dir.join("sessions.db");
    let cached = CachedSessions::start(EmbeddedSessions::open(&path, Arc::default()).await.unwrap())
        .await
        .unwrap();
    (cached, EmbeddedSessions::open(&path, Arc::default()).await.unwrap())
}

/// A write whose caller goes away at any point (a client that hangs up on its
/// logout) leaves the store writable: the embedded store has one write connection,
/// and nothing may stay open on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_writes_survive_cancelled_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (cached, plain) = server_and_command(dir.path()).await;
    let p = policy(2, Overflow::EvictOldest);
    let (mut finished, mut cut) = (0, 0);
    for i in 0..200u64 {
        let store: &dyn SessionStore = if i % 2 == 0 { &cached } else { &plain };
        let s = session(31, NOW + i as i64);
        // Cut short anywhere from before the first statement to after the commit.
        let wait = std::time::Duration::from_micros(25 * (i % 40));
        let done = if i % 3 == 0 {
            tokio::time::timeout(wait, store.revoke_all(31)).await.is_ok()
        } else {
            tokio::time::timeout(wait, store.create(&s, &p, now())).await.is_ok()
        };
        if done {
            finished += 1;
        } else {
            cut += 1;
        }
    }
    eprintln!("{finished} writes finished, {cut} cut short");
    assert!(cut > 0, "no write was cancelled: the test proves nothing");
    for store in [&cached as &dyn SessionStore, &plain] {
        let s = session(32, NOW);
        create_ok(store, &s, &p).await;
        assert_eq!(
            store.check(32, &s.session_id, NOW, now()).await.unwrap(),
            SessionCheck::Valid
        );
        store.ping().await.unwrap();
    }
    for rates in [&cached as &dyn RateStore, &plain] {
        rates.hit("after", 60, now()).await.unwrap();
    }
    assert_eq!(plain.peek("after", now()).await.unwrap().count, 2);
}

/// The memory cache follows another handle (a command beside the server) whether
/// or not its own writes for the same user come in between: the reload after its
/// own write covers exactly the changes that reload saw, and no later one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_cache_follows_another_handle_around_its_own_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (cached, other) = server_and_command(dir.path()).await;
    let p = policy(5, Overflow::EvictOldest);
    let (a, b, c) = (session(21, NOW), session(21, NOW + 1), session(21, NOW + 2));
    create_ok(&cached, &a, &p).await;
    // The other handle ends `a`; this one writes for the same user right after,
    // before a poll can have seen the other's change. The reload shows both.
    assert!(other.revoke(21, &a.session_id).await.unwrap());
    create_ok(&cached, &b, &p).await;
    assert_eq!(
        cached.check(21, &a.session_id, NOW, now()).await.unwrap(),
        SessionCheck::Revoked
    );
    assert_eq!(
        cached.check(21, &b.session_id, NOW + 1, now()).await.unwrap(),
        SessionCheck::Valid
    );
    // A change of the other's after that reload is followed within SPEC §5's second,
    // and so is one after a further write of this handle's own.
    for (mine, theirs, lt) in [(None, &b, NOW + 1), (Some(&c), &c, NOW + 2)] {
        if let Some(s) = mine {
            create_ok(&cached, s, &p).await;
        }
        assert!(other.revoke(21, &theirs.session_id).await.unwrap());
        let revoked = std::time::Instant::now();
        while cached.check(21, &theirs.session_id, lt, now()).await.unwrap() != SessionCheck::Revoked {
            assert!(
                revoked.elapsed() < std::time::Duration::from_secs(1),
                "another handle's revoke unseen"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

// ---------------------------------------------------------------- rate counters

async fn rate_counters(store: Arc<dyn RateStore>) {
    let t = now();
    assert_eq!(store.peek("k", t).await.unwrap().count, 0);
    for expected in 1..=3 {
        let c = store.hit("k", 60, t).await.unwrap();
        assert_eq!(c.count, expected);
        assert!((1..=60).contains(&c.reset_in), "{c:?}");
    }
    assert_eq!(store.peek("k", t).await.unwrap().count, 3);
    assert_eq!(store.peek("other", t).await.unwrap().count, 0);
    // peek_all answers each key as peek does, in the order asked, repeats included.
    store.hit("j", 60, t).await.unwrap();
    let all = store.peek_all(&["other", "k", "j", "k"], t).await.unwrap();
    let one_by_one = [
        store.peek("other", t).await.unwrap(),
        store.peek("k", t).await.unwrap(),
        store.peek("j", t).await.unwrap(),
        store.peek("k", t).await.unwrap(),
    ];
    assert_eq!(all.iter().map(|c| c.count).collect::<Vec<_>>(), [0, 3, 1, 3]);
    for (a, b) in all.iter().zip(&one_by_one) {
        assert!(a.reset_in.abs_diff(b.reset_in) <= 1, "{all:?} against {one_by_one:?}");
    }
    store.reset("k").await.unwrap();
    assert_eq!(store.peek("k", t).await.unwrap().count, 0);
    // Concurrent hits are all counted.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move { store.hit("busy", 60, t).await.unwrap() }));
    }
    let mut seen: Vec<u32> = Vec::new();
    for task in tasks {
        seen.push(task.await.unwrap().count);
    }
    seen.sort();
    assert_eq!(seen, (1..=20).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rates_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedSessions::open(&dir.path().join("s.db"), Arc::default())
        .await
        .unwrap();
    rate_counters(Arc::new(store)).await;
    // A closed window starts again at 1 (the embedded store takes `now` from the caller).
    let store = EmbeddedSessions::open(&dir.path().join("t.db"), Arc::default())
        .await
        .unwrap();
    assert_eq!(store.hit("w", 10, 1_000).await.unwrap().count, 1);
    assert_eq!(store.hit("w", 10, 1_005).await.unwrap().count, 2);
    assert_eq!(store.hit("w", 10, 1_010).await.unwrap().count, 1);
    assert_eq!(store.peek("w", 1_021).await.unwrap().count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rates_redis_single_node() {
    let Some(url) = support::shared_redis("rates_redis_single_node") else {
        return;
    };
    let prefix = format!("passport-test:{}:", support::unique());
    rate_counters(Arc::new(
        RedisSessions::connect(&url, &prefix, Some(Watch::user_keys(&prefix)), Default::default())
            .await
            .unwrap(),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rates_redis_cluster() {
    let Some(cluster) = support::Cluster::start("rates_redis_cluster") else {
        return;
    };
    let prefix = format!("passport-test:{}:", support::unique());
    // README's redis+cluster:// form (the sessions' test uses the list of URLs).
    rate_counters(Arc::new(
        RedisSessions::connect(
            &cluster.cluster_url(),
            &prefix,
            Some(Watch::user_keys(&prefix)),
            Default::default(),
        )
        .await
        .unwrap(),
    ))
    .await;
}
