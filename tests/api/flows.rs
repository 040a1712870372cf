//! The happy paths of every endpoint, and the account errors.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn register_login_me_sessions_logout() {
    let app = spawn_app().await;
    let data = assert_ok(app.register("13800000001", PASSWORD).await, 201).await;
    let user_id = data["user_id"].as_i64().expect("integer user_id");

    let r = app
        .post_json(
            "/passport/login",
            &json!({"mobile": "+86 138 0000 0001", "password": PASSWORD, "device": "phone"}),
        )
        .await;
    let login = assert_ok(r, 200).await;
    assert_eq!(login["user_id"], user_id);
    assert_eq!(login["expires_in"], 86400);
    let token = login["token"].as_str().unwrap();
    let sid = login["session_id"].as_str().unwrap();
    assert!(sid.len() >= 22);

    let me = assert_ok(app.me(token).await, 200).await;
    assert_eq!(me["user_id"], user_id);
    assert_eq!(me["mobile"], "+8613800000001");
    assert_eq!(me["roles"], json!(["viewer"]));
    assert!(me["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(me["last_login"].as_str().is_some());

    // Bearer works as well as JWT, scheme in any case.
    assert_ok(app.get_with("/passport/me", &format!("bearer {token}")).await, 200).await;

    let list = assert_ok(app.get_with("/passport/sessions", &format!("JWT {token}")).await, 200).await;
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["session_id"], sid);
    assert_eq!(sessions[0]["device"], "phone");
    assert_eq!(sessions[0]["ip"], "127.0.0.1");
    assert_eq!(sessions[0]["current"], true);

    assert_ok(app.post_auth("/passport/logout", token, None).await, 200).await;
    assert_error(app.me(token).await, 401, "session_revoked").await;
    app.stop().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(assert_ok(r, 200).await["status"], "ok");
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_ok(r, 200).await;
    app.stop().await;
}

#[tokio::test]
async fn registration_errors() {
    let app = spawn_app().await;
    assert_ok(app.register("13800000002", PASSWORD).await, 201).await;
    // The same number in another notation is the same account.
    assert_error(app.register("+86 138-0000-0002", PASSWORD).await, 409, "mobile_taken").await;
    assert_error(app.register("12345", PASSWORD).await, 400, "invalid_params").await;
    assert_error(app.register("not a number", PASSWORD).await, 400, "invalid_params").await;
    let body = assert_error(app.register("13800000003", "short").await, 400, "weak_password").await;
    assert!(body["msg"].as_str().unwrap().contains('8'), "{body}");
    let long = "x".repeat(1025);
    assert_error(app.register("13800000003", &long).await, 400, "weak_password").await;
    // 64 characters and any Unicode are fine.
    let unicode: String = "长城外古道边芳草碧连天晚风拂柳笛声残夕阳山外山"
        .chars()
        .cycle()
        .take(64)
        .collect();
    assert_eq!(unicode.chars().count(), 64);
    assert_ok(app.register("13800000004", &unicode).await, 201).await;
    assert_ok(app.login_raw("13800000004", &unicode).await, 200).await;
    // Common passwords and the own mobile number are refused, with the reason.
    let body = assert_error(app.register("13800000008", "password123").await, 400, "weak_password").await;
    assert!(body["msg"].as_str().unwrap().contains("common"), "{body}");
    let body = assert_error(
        app.register("13800000008", "pw-13800000008-x").await,
        400,
        "weak_password",
    )
    .await;
    assert!(body["msg"].as_str().unwrap().contains("mobile"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn unknown_mobile_and_wrong_password_answer_alike() {
    let app = spawn_app().await;
    app.register("13800000005", PASSWORD).await;
    let wrong = assert_error(
        app.login_raw("13800000005", "wrong password!").await,
        401,
        "invalid_credentials",
    )
    .await;
    let unknown = assert_error(app.login_raw("13800000006", PASSWORD).await, 401, "invalid_credentials").await;
    assert_eq!(wrong, unknown);
    assert_error(app.login_raw("123", PASSWORD).await, 400, "invalid_params").await;
    app.stop().await;
}

#[tokio::test]
async fn password_change() {
    let app = spawn_app_with(&[("max_sessions", "3")]).await;
    let a = app.signup_and_login("13800000007").await;
    let b = app.login("13800000007", PASSWORD).await;
    let (ta, tb) = (a["token"].as_str().unwrap(), b["token"].as_str().unwrap());

    let wrong = json!({"old_password": "not it at all", "new_password": "a brand new password"});
    assert_error(
        app.post_auth("/passport/password", ta, Some(&wrong)).await,
        403,
        "wrong_password",
    )
    .await;
    // Nothing changed: both sessions live, the old password still works.
    assert_ok(app.me(ta).await, 200).await;
    assert_ok(app.me(tb).await, 200).await;

    let weak = json!({"old_password": PASSWORD, "new_password": "short"});
    assert_error(
        app.post_auth("/passport/password", ta, Some(&weak)).await,
        400,
        "weak_password",
    )
    .await;

    let good = json!({"old_password": PASSWORD, "new_password": "a brand new password"});
    assert_ok(app.post_auth("/passport/password", ta, Some(&good)).await, 200).await;
    assert_error(app.me(ta).await, 401, "session_revoked").await;
    assert_error(app.me(tb).await, 401, "session_revoked").await;
    assert_error(app.login_raw("13800000007", PASSWORD).await, 401, "invalid_credentials").await;
    assert_ok(app.login_raw("13800000007", "a brand new password").await, 200).await;
    app.stop().await;
}

#[tokio::test]
async fn a_number_with_its_country_code_registers_in_any_default_region() {
    // With the default region US, a Chinese mobile written with +86 is still Chinese
    // (the parser used to strip US's national prefix `1` from it and refuse it).
    let app = spawn_app_with(&[("default_region", "US")]).await;
    let r = app.register("+8613812345678", PASSWORD).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    // Full-width digits, as Chinese input methods type them, are the same number.
    let data = app.login("＋８６ １３８ １２３４ ５６７８", PASSWORD).await;
    let me: serde_json::Value = app.me(data["token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(me["data"]["mobile"], "+8613812345678");
    // A national US number is still read in US.
    assert_eq!(app.register("(650) 253-0000", PASSWORD).await.status(), 201);
    let data = app.login("+1 650 253 0000", PASSWORD).await;
    assert!(data["token"].is_string());
}

#[tokio::test]
async fn an_account_stored_under_looser_number_rules_still_logs_in_by_its_stored_form() {
    // Before numbers were checked as libphonenumber checks them, a Beijing number a
    // digit short passed. Such an account is found by its stored form exactly.
    let app = spawn_app().await;
    let stored = "+86101234584";
    assert_error(app.register(stored, PASSWORD).await, 400, "invalid_params").await;
    let hash = passport::passwords::hash_blocking(PASSWORD.as_bytes()).unwrap();
    app.state
        .stores
        .users
        .create(stored, &hash, &["viewer".to_owned()], 0)
        .await
        .unwrap();
    let data = app.login(stored, PASSWORD).await;
    assert!(data["token"].is_string());
    // Any other spelling of it is still not a valid number.
    assert_error(app.login_raw("+86 10 1234 584", PASSWORD).await, 400, "invalid_params").await;
    // A number in the stored form that no account has is a failed login like any other.
    assert_error(
        app.login_raw("+86101234585", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    app.stop().await;
}
