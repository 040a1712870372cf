//! SPEC §2: the envelope, every error code a request can provoke, headers, language.

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn routing_errors_use_the_envelope() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/no/such/route")).send().await.unwrap();
    assert_error(r, 404, "not_found").await;
    let r = app.client.put(app.url("/passport/me")).send().await.unwrap();
    assert!(r.headers().get("allow").is_some());
    assert_error(r, 405, "method_not_allowed").await;
    let r = app.client.get(app.url("/passport/login")).send().await.unwrap();
    assert_error(r, 405, "method_not_allowed").await;
    app.stop().await;
}

#[tokio::test]
async fn body_rejections_use_the_envelope() {
    let app = spawn_app().await;
    let post = |ct: Option<&str>, body: String| {
        let mut req = app.client.post(app.url("/passport/register")).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    let ok_body = json!({"mobile": "13800000010", "password": PASSWORD}).to_string();
    assert_error(
        post(Some("text/plain"), ok_body.clone()).await.unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    assert_error(
        post(None, ok_body.clone()).await.unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    assert_error(
        post(Some("application/json"), "{not json".into()).await.unwrap(),
        400,
        "invalid_params",
    )
    .await;
    assert_error(
        post(Some("application/json"), "".into()).await.unwrap(),
        400,
        "invalid_params",
    )
    .await;
    let wrong_shape = json!({"mobile": 13800000010u64, "password": PASSWORD}).to_string();
    assert_error(
        post(Some("application/json"), wrong_shape).await.unwrap(),
        400,
        "invalid_params",
    )
    .await;
    let missing = json!({"mobile": "13800000010"}).to_string();
    assert_error(
        post(Some("application/json"), missing).await.unwrap(),
        400,
        "invalid_params",
    )
    .await;
    let huge = json!({"mobile": "13800000010", "password": "x".repeat(17 * 1024)}).to_string();
    assert_error(
        post(Some("application/json"), huge).await.unwrap(),
        413,
        "payload_too_large",
    )
    .await;
    // application/json with a charset is JSON.
    let r = post(Some("application/json; charset=utf-8"), ok_body).await.unwrap();
    assert_ok(r, 201).await;
    app.stop().await;
}

#[tokio::test]
async fn credential_errors_and_www_authenticate() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/passport/me")).send().await.unwrap();
    assert_eq!(r.headers()["www-authenticate"], "JWT realm=\"passport\"");
    assert_error(r, 401, "missing_credentials").await;

    for bad in [
        "Basic dXNlcjpwYXNz",
        "JWT",
        "JWT a.b.c extra",
        "JWT  a.b.c",
        "Token a.b.c",
    ] {
        let r = app.get_with("/passport/me", bad).await;
        assert_error(r, 401, "malformed_credentials").await;
    }
    let long = format!("JWT {}", "a".repeat(5000));
    assert_error(app.get_with("/passport/me", &long).await, 401, "malformed_credentials").await;

    // A token failure answers in the scheme the client used, with error="invalid_token".
    let r = app.get_with("/passport/me", "Bearer not.a.token").await;
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"passport\", error=\"invalid_token\""
    );
    assert_error(r, 401, "invalid_token").await;
    let r = app.get_with("/passport/me", "JWT not.a.token").await;
    assert_eq!(
        r.headers()["www-authenticate"],
        "JWT realm=\"passport\", error=\"invalid_token\""
    );
    assert_error(r, 401, "invalid_token").await;

    // Login failures are 401 too, with the header.
    let r = app.login_raw("13800000011", PASSWORD).await;
    assert_eq!(r.headers()["www-authenticate"], "JWT realm=\"passport\"");
    assert_error(r, 401, "invalid_credentials").await;
    app.stop().await;
}

#[tokio::test]
async fn messages_follow_accept_language() {
    let app = spawn_app().await;
    let get = |lang: &'static str| {
        app.client
            .get(app.url("/passport/me"))
            .header("Accept-Language", lang)
            .send()
    };
    let zh: Value = get("zh-CN,zh;q=0.9,en;q=0.8").await.unwrap().json().await.unwrap();
    let en: Value = get("en-US,en;q=0.9").await.unwrap().json().await.unwrap();
    assert_eq!(zh["error"], en["error"]);
    assert_eq!(en["msg"], "authorization required");
    assert_eq!(zh["msg"], "需要登录");
    let ok = app.get_json("/healthz", &[("Accept-Language", "zh")]).await;
    assert_eq!(ok["msg"], "成功");
    app.stop().await;

    let app = spawn_app_with(&[("default_lang", "zh")]).await;
    let body = app.get_json("/passport/me", &[]).await;
    assert_eq!(body["msg"], "需要登录");
    app.stop().await;
}

#[tokio::test]
async fn disabled_account_is_refused_after_the_password_check() {
    let app = spawn_app().await;
    app.register("13800000012", PASSWORD).await;
    let user = app.state.accounts.find("13800000012").await.unwrap().unwrap();
    app.state
        .accounts
        .set_disabled(&user, true, &passport::audit::RequestMeta::command())
        .await
        .unwrap();
    assert_error(app.login_raw("13800000012", PASSWORD).await, 403, "account_disabled").await;
    // A wrong password says nothing about the account's state.
    assert_error(
        app.login_raw("13800000012", "wrong password!").await,
        401,
        "invalid_credentials",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn full_hashing_queue_is_busy_with_retry_after() {
    let app = spawn_app_with(&[("hash_workers", "1"), ("hash_queue", "0")]).await;
    let responses = concurrently(8, |i| {
        let (client, url) = (app.client.clone(), app.url("/passport/register"));
        async move {
            client
                .post(url)
                .json(&json!({"mobile": format!("1380000002{i}"), "password": PASSWORD}))
                .send()
                .await
                .unwrap()
        }
    })
    .await;
    let mut busy = 0;
    for r in responses {
        match r.status().as_u16() {
            201 => {}
            503 => {
                assert_eq!(r.headers()["retry-after"], "1");
                assert_error(r, 503, "busy").await;
                busy += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        busy > 0,
        "eight concurrent hashes on one worker with no queue: some must be refused"
    );
    app.stop().await;
}

#[tokio::test]
async fn unreachable_stores_fail_closed() {
    let app = spawn_app().await;
    let login = app.signup_and_login("13800000013").await;
    let token = login["token"].as_str().unwrap();

    app.state.stores.sessions.close().await;
    assert_error(app.me(token).await, 503, "store_unavailable").await;
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_error(r, 503, "store_unavailable").await;
    // Liveness needs no store.
    assert_ok(app.client.get(app.url("/healthz")).send().await.unwrap(), 200).await;

    app.state.stores.users.close().await;
    assert_error(app.register("13800000014", PASSWORD).await, 503, "store_unavailable").await;
    assert_error(app.login_raw("13800000013", PASSWORD).await, 503, "store_unavailable").await;
    app.stop().await;
}

#[tokio::test]
async fn internal_errors_stay_opaque() {
    let app = spawn_app().await;
    let login = app.signup_and_login("13800000015").await;
    // Corrupt the stored roles behind the service's back: a real server-side failure.
    let db = app.dir.join("data/passport.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE users SET roles = 'secret-internal-detail'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let body = assert_error(app.me(login["token"].as_str().unwrap()).await, 500, "internal").await;
    assert!(!body.to_string().contains("secret-internal-detail"), "{body}");
    assert_eq!(body["msg"], "internal error");
    app.stop().await;
}
