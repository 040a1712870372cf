//! SPEC §5: identify costs one session lookup, served from memory on the embedded
//! store, and never queries the user table. Shown by the stores' call counters.

use passport::store::StoreStats;

use crate::helpers::*;

#[tokio::test]
async fn identify_reads_memory_only() {
    let app = spawn_app().await;
    let login = app.signup_and_login("13800000050").await;
    let header = format!("JWT {}", login["token"].as_str().unwrap());
    let stats = app.state.stats.clone();
    let before = (
        StoreStats::get(&stats.user_queries),
        StoreStats::get(&stats.session_checks_sql),
        StoreStats::get(&stats.session_checks_memory),
    );
    for _ in 0..100 {
        let who = passport::identify::identify(&app.state, Some(header.as_bytes())).await;
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
