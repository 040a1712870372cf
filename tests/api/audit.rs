//! SPEC §7: the audit log.

use serde_json::json;

use crate::helpers::*;

const KEYS: [&str; 11] = [
    "ts",
    "event",
    "user_id",
    "session_id",
    "ip",
    "user_agent",
    "url",
    "method",
    "msg",
    "outcome",
    "reason",
];

#[tokio::test]
async fn every_line_is_json_with_every_key_and_no_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let app = spawn_in(tmp.path(), &[("max_sessions", "1")]).await;
    let first = app.signup_and_login("13800000060").await;
    let second = app.login("13800000060", PASSWORD).await;
    let (t1, t2) = (first["token"].as_str().unwrap(), second["token"].as_str().unwrap());
    app.me(t1).await; // session_replaced → token_rejected
    app.login_raw("13800000060", "wrong password here").await;
    app.login_raw("13800000061", "unknown user pw").await;
    let change = json!({"old_password": PASSWORD, "new_password": "the next password"});
    app.post_auth("/passport/password", t2, Some(&change)).await;
    let t3 = app.login("13800000060", "the next password").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post_auth("/passport/logout_all", &t3, None).await;
    let t4 = app.login("13800000060", "the next password").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post_auth("/passport/logout", &t4, None).await;
    // Hostile values: a newline in the mobile, quotes and a newline in the device.
    app.register("1380000\n{\"event\":\"forged\"}", PASSWORD).await;
    app.post_json(
        "/passport/login",
        &json!({"mobile": "13800000060\n", "password": "the next password"}),
    )
    .await;
    app.client
        .get(app.url("/passport/me%0A%22x%22"))
        .header("User-Agent", "agent \"quoted\"")
        .send()
        .await
        .unwrap();

    let path = app.audit_path();
    app.stop().await; // a graceful stop flushes the log
    let text = std::fs::read_to_string(&path).unwrap();
    let lines = read_audit(&path);
    assert_eq!(lines.len(), text.lines().count());
    for line in &lines {
        for key in KEYS {
            assert!(line.get(key).is_some(), "missing {key}: {line}");
        }
        assert!(line["outcome"] == "ok" || line["outcome"] == "denied", "{line}");
        assert_eq!(line["reason"].is_null(), line["outcome"] == "ok", "{line}");
        assert_ne!(line["event"], "forged");
    }
    for secret in [
        PASSWORD,
        "the next password",
        "wrong password here",
        "unknown user pw",
        SECRET,
        t1,
        t2,
        &t3,
        &t4,
    ] {
        assert!(!text.contains(secret), "the audit log holds a secret: {secret}");
    }
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    for expected in [
        "register",
        "login",
        "login_failed",
        "session_replaced",
        "token_rejected",
        "password_changed",
        "session_revoked",
        "logout_all",
        "logout",
    ] {
        assert!(events.contains(&expected), "no {expected} event in {events:?}");
    }
    let unknown = lines
        .iter()
        .find(|l| l["event"] == "login_failed" && l["user_id"].is_null())
        .expect("unknown mobile");
    assert_eq!(unknown["reason"], "invalid_credentials");
    let replaced = lines.iter().find(|l| l["event"] == "session_replaced").unwrap();
    assert_eq!(replaced["session_id"], first["session_id"]);
}
