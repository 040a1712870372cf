//! SPEC §9 rate limits: per account, per client IP, per registration IP.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn sixth_failure_is_throttled_and_even_the_right_password_waits() {
    let app = spawn_app_with(&[("rate_login_account", "5/3")]).await;
    app.register("13800000110", PASSWORD).await;
    app.register("13800000111", PASSWORD).await;
    for _ in 0..5 {
        assert_error(
            app.login_raw("13800000110", "wrong password!").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    let r = app.login_raw("13800000110", "wrong password!").await;
    let retry: i64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3).contains(&retry), "Retry-After {retry}");
    assert_error(r, 429, "rate_limited").await;
    // No oracle: the right password is refused too, the same way.
    assert_error(app.login_raw("13800000110", PASSWORD).await, 429, "rate_limited").await;
    // Another account is unaffected.
    assert_ok(app.login_raw("13800000111", PASSWORD).await, 200).await;
    // Once the window has passed, the right password works.
    let start = Instant::now();
    loop {
        let r = app.login_raw("13800000110", PASSWORD).await;
        if r.status() == 200 {
            break;
        }
        assert_error(r, 429, "rate_limited").await;
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still throttled long after the window"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let events = app.audit_lines().await;
    assert!(events
        .iter()
        .any(|e| e["event"] == "rate_limited" && e["reason"] == "rate_limited"));
    app.stop().await;
}

#[tokio::test]
async fn unknown_mobiles_are_throttled_alike_and_success_resets_the_count() {
    let app = spawn_app_with(&[("rate_login_account", "3/60")]).await;
    for _ in 0..3 {
        assert_error(app.login_raw("13800000112", PASSWORD).await, 401, "invalid_credentials").await;
    }
    assert_error(app.login_raw("13800000112", PASSWORD).await, 429, "rate_limited").await;

    app.register("13800000113", PASSWORD).await;
    for _ in 0..2 {
        app.login_raw("13800000113", "wrong password!").await;
    }
    assert_ok(app.login_raw("13800000113", PASSWORD).await, 200).await;
    for _ in 0..2 {
        assert_error(
            app.login_raw("13800000113", "wrong password!").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    assert_ok(app.login_raw("13800000113", PASSWORD).await, 200).await;
    app.stop().await;
}

#[tokio::test]
async fn never_more_than_100_consecutive_failures() {
    let app = spawn_app_with(&[("rate_login_account", "1000/60")]).await;
    app.register("13800000114", PASSWORD).await;
    for i in 0..100 {
        let r = app.login_raw("13800000114", "wrong password!").await;
        assert_eq!(r.status(), 401, "failure {i}");
    }
    assert_error(
        app.login_raw("13800000114", "wrong password!").await,
        429,
        "rate_limited",
    )
    .await;
    assert_error(app.login_raw("13800000114", PASSWORD).await, 429, "rate_limited").await;
    app.stop().await;
}

#[tokio::test]
async fn per_ip_limits_for_login_and_registration() {
    let app = spawn_app_with(&[("rate_login_ip", "3/60"), ("rate_register_ip", "2/60")]).await;
    assert_ok(app.register("13800000115", PASSWORD).await, 201).await;
    assert_error(app.register("13800000115", PASSWORD).await, 409, "mobile_taken").await;
    assert_error(app.register("13800000116", PASSWORD).await, 429, "rate_limited").await;
    // Any outcome counts: a success, a failure, an unknown mobile.
    assert_ok(app.login_raw("13800000115", PASSWORD).await, 200).await;
    app.login_raw("13800000115", "wrong password!").await;
    app.login_raw("13800000117", PASSWORD).await;
    assert_error(app.login_raw("13800000115", PASSWORD).await, 429, "rate_limited").await;
    app.stop().await;
}

#[tokio::test]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    let login = |app: &TestApp, xff: &'static str| {
        app.client
            .post(app.url("/passport/login"))
            .header("X-Forwarded-For", xff)
            .json(&json!({"mobile": "13800000118", "password": PASSWORD}))
            .send()
    };
    // Behind a trusted proxy, each client has its own budget.
    let app = spawn_app_with(&[("rate_login_ip", "2/60"), ("trusted_proxies", "127.0.0.1/32")]).await;
    app.register("13800000118", PASSWORD).await;
    for _ in 0..2 {
        assert_ok(login(&app, "198.51.100.1").await.unwrap(), 200).await;
    }
    assert_error(login(&app, "198.51.100.1").await.unwrap(), 429, "rate_limited").await;
    assert_ok(login(&app, "198.51.100.2").await.unwrap(), 200).await;
    // A spoofed hop left of the real client changes nothing.
    assert_error(
        login(&app, "203.0.113.9, 198.51.100.1").await.unwrap(),
        429,
        "rate_limited",
    )
    .await;
    app.stop().await;

    // Without trusted proxies the header is ignored: one address, one budget.
    let app = spawn_app_with(&[("rate_login_ip", "2/60")]).await;
    app.register("13800000118", PASSWORD).await;
    assert_ok(login(&app, "198.51.100.1").await.unwrap(), 200).await;
    assert_ok(login(&app, "198.51.100.2").await.unwrap(), 200).await;
    assert_error(login(&app, "198.51.100.3").await.unwrap(), 429, "rate_limited").await;
    app.stop().await;
}
