//! SPEC §5: identify costs one session lookup, served from memory on the embedded
//! store, and never queries the user table. Shown by the stores' call counters.

use passport::store::StoreStats;

use crate::helpers::*;

#[tokio::test]
async fn identify_reads_memory_only() {
    let app = spawn_app().await;
    let login = app.signup_and_login("13800000050").await;
    let header = format!("JWT {}", login["token"].as_str().unwrap());
    let stats = app.state.stores.stats.clone();
    let before = (
        StoreStats::get(&stats.user_queries),
        StoreStats::get(&stats.session_checks_sql),
        StoreStats::get(&stats.session_checks_memory),
    );
    for _ in 0..100 {
        let who =
            passport::identify::identify(&app.state.keys, &*app.state.stores.sessions, Some(header.as_bytes())).await;
        assert!(who.is_ok());
    }
    let after = (
        StoreStats::get(&stats.user_queries),
        StoreStats::get(&stats.session_checks_sql),
        StoreStats::get(&stats.session_checks_memory),
    );
    assert_eq!(after.0, before.0, "identify queried the user table");
    assert_eq!(after.1, before.1, "identify read the session from SQLite");
    assert_eq!(after.2, before.2 + 100, "one in-memory session lookup per identify");

    // The same holds over HTTP for a route that needs nothing else: logout does one
    // identify and one session write, and no user query.
    let users_before = StoreStats::get(&stats.user_queries);
    assert_ok(
        app.post_auth("/passport/logout", login["token"].as_str().unwrap(), None)
            .await,
        200,
    )
    .await;
    assert_eq!(StoreStats::get(&stats.user_queries), users_before);
    app.stop().await;
}

/// On Redis, a server answers identify from memory once it has seen a session
/// valid (tracking current), and asks Redis every time with the cache turned off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identify_on_redis_reads_memory_once_tracking_is_current() {
    let test = "identify_on_redis_reads_memory_once_tracking_is_current";
    let Some(url) = crate::support::shared_redis(test) else {
        return;
    };
    for (cache, mobile) in [("true", "13800000051"), ("false", "13800000052")] {
        let prefix = format!("passport-test:{}:", crate::support::unique());
        let app = spawn_app_with(&[
            ("redis_url", url.as_str()),
            ("redis_prefix", prefix.as_str()),
            ("redis_session_cache", cache),
        ])
        .await;
        let login = app.signup_and_login(mobile).await;
        let header = format!("JWT {}", login["token"].as_str().unwrap());
        let stats = app.state.stores.stats.clone();
        // Tracking starts in the background; the first identifies may ask Redis.
        let start = std::time::Instant::now();
        while cache == "true" && StoreStats::get(&stats.session_checks_memory) == 0 {
            assert!(start.elapsed().as_secs() < 10, "nothing answered from memory");
            assert!(passport::identify::identify(
                &app.state.keys,
                &*app.state.stores.sessions,
                Some(header.as_bytes())
            )
            .await
            .is_ok());
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        if cache == "false" {
            // Time enough for a tracker to have become current, had one started.
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        let (users, memory) = (
            StoreStats::get(&stats.user_queries),
            StoreStats::get(&stats.session_checks_memory),
        );
        for _ in 0..100 {
            let who =
                passport::identify::identify(&app.state.keys, &*app.state.stores.sessions, Some(header.as_bytes()))
                    .await;
            assert!(who.is_ok());
        }
        assert_eq!(
            StoreStats::get(&stats.user_queries),
            users,
            "identify queried the user table"
        );
        // With the cache, answers from memory were seen above (all 100 here, as a
        // rule, but a heartbeat answered late on a loaded machine sends checks to
        // Redis until the next one); without it, none at all.
        if cache == "false" {
            let from_memory = StoreStats::get(&stats.session_checks_memory) - memory;
            assert_eq!(from_memory, 0, "redis_session_cache=false still kept sessions");
        }
        // Logout through this server: the very next identify refuses.
        assert_ok(
            app.post_auth("/passport/logout", login["token"].as_str().unwrap(), None)
                .await,
            200,
        )
        .await;
        assert!(
            passport::identify::identify(&app.state.keys, &*app.state.stores.sessions, Some(header.as_bytes()))
                .await
                .is_err()
        );
        app.stop().await;
    }
}
