//! SPEC §4 refresh tokens: rotation, replay detection, the grace window.

use serde_json::{json, Value};

use crate::helpers::*;

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_json("/passport/refresh", &json!({ "refresh_token": token }))
        .await
}

#[tokio::test]
async fn login_returns_refresh_fields_and_refresh_rotates() {
    let app = spawn_app().await;
    let login = app.signup_and_login("13800000100").await;
    let r0 = login["refresh_token"].as_str().unwrap().to_owned();
    assert!(r0.rsplit('.').next().unwrap().len() >= 43, "≥256 random bits");
    assert_eq!(login["refresh_expires_in"], 2_592_000);
    let access0 = login["token"].as_str().unwrap().to_owned();

    let out = assert_ok(refresh(&app, &r0).await, 200).await;
    let r1 = out["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r0);
    assert_eq!(out["expires_in"], 86_400);
    assert!(out["refresh_expires_in"].as_i64().unwrap() > 2_500_000);
    let access1 = out["token"].as_str().unwrap();
    // Same session; the old access token stays valid until its own exp.
    let me0 = assert_ok(app.me(&access0).await, 200).await;
    let me1 = assert_ok(app.me(access1).await, 200).await;
    assert_eq!(me0, me1);
    let sessions = assert_ok(app.get_with("/passport/sessions", &format!("JWT {access1}")).await, 200).await;
    assert_eq!(sessions["sessions"][0]["session_id"], login["session_id"]);

    // The successor works in turn.
    let out = assert_ok(refresh(&app, &r1).await, 200).await;
    assert_ne!(out["refresh_token"].as_str().unwrap(), r1);

    for bad in ["", "garbage", &format!("{r1}x"), &r1.replace(".1.", ".7.")] {
        assert_error(refresh(&app, bad).await, 401, "invalid_refresh_token").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn replaying_a_rotated_out_token_revokes_the_session() {
    let app = spawn_app().await;
    let login = app.signup_and_login("13800000101").await;
    let r0 = login["refresh_token"].as_str().unwrap().to_owned();
    let r1 = assert_ok(refresh(&app, &r0).await, 200).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = assert_ok(refresh(&app, &r1).await, 200).await;
    let (r2, access) = (
        out["refresh_token"].as_str().unwrap().to_owned(),
        out["token"].as_str().unwrap().to_owned(),
    );

    // r0 is two rotations old: outside any grace, a replay.
    assert_error(refresh(&app, &r0).await, 401, "refresh_token_reused").await;
    assert_error(app.me(&access).await, 401, "session_revoked").await;
    assert_error(refresh(&app, &r2).await, 401, "invalid_refresh_token").await;

    let events: Vec<Value> = app.audit_lines().await;
    let reused = events
        .iter()
        .find(|e| e["event"] == "refresh_reused")
        .expect("refresh_reused audited");
    assert_eq!(reused["reason"], "refresh_token_reused");
    assert_eq!(reused["session_id"], login["session_id"]);
    let text = std::fs::read_to_string(app.audit_path()).unwrap();
    for secret in [&r0, &r1, &r2] {
        assert!(!text.contains(secret.as_str()));
    }
    app.stop().await;
}

#[tokio::test]
async fn parallel_refreshes_inside_the_grace_window_get_the_same_successor() {
    let app = spawn_app().await;
    let login = app.signup_and_login("13800000102").await;
    let r0 = login["refresh_token"].as_str().unwrap().to_owned();
    let outs = concurrently(6, |_| {
        let (client, url, r0) = (app.client.clone(), app.url("/passport/refresh"), r0.clone());
        async move {
            let r = client
                .post(url)
                .json(&json!({ "refresh_token": r0 }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()["data"].clone()
        }
    })
    .await;
    let successors: std::collections::BTreeSet<&str> =
        outs.iter().map(|o| o["refresh_token"].as_str().unwrap()).collect();
    assert_eq!(successors.len(), 1, "every parallel refresh gets the same successor");
    for o in &outs {
        assert_ok(app.me(o["token"].as_str().unwrap()).await, 200).await;
    }
    // The successor itself is the live one.
    let r1 = successors.into_iter().next().unwrap().to_owned();
    assert_ok(refresh(&app, &r1).await, 200).await;
    app.stop().await;
}

#[tokio::test]
async fn after_the_grace_window_the_predecessor_is_a_replay() {
    let app = spawn_app_with(&[("refresh_grace", "0")]).await;
    let login = app.signup_and_login("13800000103").await;
    let r0 = login["refresh_token"].as_str().unwrap().to_owned();
    assert_ok(refresh(&app, &r0).await, 200).await;
    // Let the clock pass the rotation's second: a zero grace window is then over.
    let rotated = passport::clock::now();
    while passport::clock::now() <= rotated {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_error(refresh(&app, &r0).await, 401, "refresh_token_reused").await;
    app.stop().await;
}

#[tokio::test]
async fn refresh_of_an_ended_session_is_invalid() {
    let app = spawn_app_with(&[("max_sessions", "1")]).await;
    let a = app.signup_and_login("13800000104").await;
    // Replaced.
    let _b = app.login("13800000104", PASSWORD).await;
    assert_error(
        refresh(&app, a["refresh_token"].as_str().unwrap()).await,
        401,
        "invalid_refresh_token",
    )
    .await;
    // Logged out.
    let c = app.login("13800000104", PASSWORD).await;
    assert_ok(
        app.post_auth("/passport/logout", c["token"].as_str().unwrap(), None)
            .await,
        200,
    )
    .await;
    assert_error(
        refresh(&app, c["refresh_token"].as_str().unwrap()).await,
        401,
        "invalid_refresh_token",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_digest_planted_in_the_session_store_mints_nothing() {
    use passport::ids::SessionId;
    use passport::refresh::RefreshToken;
    use passport::store::{RefreshState, Session};
    use sha2::Digest;
    let app = spawn_app_with(&[("max_sessions", "5")]).await;
    let user_id = app.signup_and_login("13800000105").await["user_id"].as_i64().unwrap();
    let now = passport::clock::now();
    let policy = passport::sessions::policy(&app.state.config);
    let plant = |token: &RefreshToken, digest: [u8; 32]| Session {
        session_id: token.session_id,
        user_id,
        login_time: now,
        created_at: now,
        expires_at: now + 3600,
        device: None,
        ip: None,
        refresh: RefreshState {
            digest,
            generation: 0,
            rotated_at: 0,
        },
    };
    // Someone with write access to the store, but not the server key, plants a session
    // with the plain hash of a refresh token of their own making.
    let forged = RefreshToken::first(user_id, SessionId::random());
    let plain: [u8; 32] = sha2::Sha256::digest(forged.encode().as_bytes()).into();
    app.state
        .stores
        .sessions
        .create(&plant(&forged, plain), &policy, now)
        .await
        .unwrap();
    assert_error(refresh(&app, &forged.encode()).await, 401, "invalid_refresh_token").await;
    // The same with the server's keyed digest is what a real session holds (control).
    let real = RefreshToken::first(user_id, SessionId::random());
    let keyed = real.digest(&app.state.keys.refresh_digest_keys()[0]);
    app.state
        .stores
        .sessions
        .create(&plant(&real, keyed), &policy, now)
        .await
        .unwrap();
    assert_ok(refresh(&app, &real.encode()).await, 200).await;
    app.stop().await;
}
