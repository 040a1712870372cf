//! SPEC §6: max_sessions and its overflow policies, replaced vs revoked, the
//! session list and deleting one session.

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn a_second_login_replaces_the_first() {
    let app = spawn_app().await;
    let first = app.signup_and_login("13800000040").await;
    let second = app.login("13800000040", PASSWORD).await;
    let (t1, t2) = (first["token"].as_str().unwrap(), second["token"].as_str().unwrap());
    assert_error(app.me(t1).await, 401, "session_replaced").await;
    assert_ok(app.me(t2).await, 200).await;
    // Logging out the survivor is a revocation, not a replacement.
    assert_ok(app.post_auth("/passport/logout", t2, None).await, 200).await;
    assert_error(app.me(t2).await, 401, "session_revoked").await;
    assert_error(app.me(t1).await, 401, "session_replaced").await;
    app.stop().await;
}

#[tokio::test]
async fn reject_policy_refuses_the_extra_login() {
    let app = spawn_app_with(&[("max_sessions", "2"), ("session_overflow", "reject")]).await;
    let a = app.signup_and_login("13800000041").await;
    let _b = app.login("13800000041", PASSWORD).await;
    assert_error(
        app.login_raw("13800000041", PASSWORD).await,
        403,
        "session_limit_reached",
    )
    .await;
    assert_ok(app.me(a["token"].as_str().unwrap()).await, 200).await;
    // A logout frees a slot.
    assert_ok(
        app.post_auth("/passport/logout", a["token"].as_str().unwrap(), None)
            .await,
        200,
    )
    .await;
    assert_ok(app.login_raw("13800000041", PASSWORD).await, 200).await;
    app.stop().await;
}

#[tokio::test]
async fn concurrent_logins_never_exceed_max_sessions() {
    let app = spawn_app_with(&[("max_sessions", "2")]).await;
    app.register("13800000042", PASSWORD).await;
    let responses = concurrently(20, |_| {
        let (client, url) = (app.client.clone(), app.url("/passport/login"));
        async move {
            let r = client
                .post(url)
                .json(&json!({"mobile": "13800000042", "password": PASSWORD}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()["data"]["token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    })
    .await;
    let mut working = 0;
    for token in &responses {
        let r = app.me(token).await;
        match r.status().as_u16() {
            200 => working += 1,
            401 => {
                assert_error(r, 401, "session_replaced").await;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        working, 2,
        "exactly max_sessions tokens survive twenty concurrent logins"
    );
    app.stop().await;
}

#[tokio::test]
async fn list_delete_and_logout_all() {
    let app = spawn_app_with(&[("max_sessions", "3")]).await;
    let a = app.signup_and_login("13800000043").await;
    let b = app.login("13800000043", PASSWORD).await;
    let c = app.login("13800000043", PASSWORD).await;
    let ta = a["token"].as_str().unwrap();

    let list = assert_ok(app.get_with("/passport/sessions", &format!("JWT {ta}")).await, 200).await;
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);

    // Delete b from a.
    let sid_b = b["session_id"].as_str().unwrap();
    let del = |sid: String, token: String| {
        app.client
            .delete(app.url(&format!("/passport/sessions/{sid}")))
            .header("Authorization", format!("JWT {token}"))
            .send()
    };
    assert_ok(del(sid_b.into(), ta.into()).await.unwrap(), 200).await;
    assert_error(app.me(b["token"].as_str().unwrap()).await, 401, "session_revoked").await;
    // Again: it is gone.
    assert_error(del(sid_b.into(), ta.into()).await.unwrap(), 404, "not_found").await;
    assert_error(del("garbage".into(), ta.into()).await.unwrap(), 404, "not_found").await;

    // Another user's session is not found (its existence is not revealed).
    let other = app.signup_and_login("13800000044").await;
    let other_sid = other["session_id"].as_str().unwrap();
    assert_error(del(other_sid.into(), ta.into()).await.unwrap(), 404, "not_found").await;
    assert_ok(app.me(other["token"].as_str().unwrap()).await, 200).await;

    let out = assert_ok(app.post_auth("/passport/logout_all", ta, None).await, 200).await;
    assert_eq!(out["revoked"], 2);
    assert_error(app.me(ta).await, 401, "session_revoked").await;
    assert_error(app.me(c["token"].as_str().unwrap()).await, 401, "session_revoked").await;
    app.stop().await;
}
