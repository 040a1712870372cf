//! SPEC §11: the streams API and the stream commands.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

fn token(login: &Value) -> String {
    login["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_streamer_creates_changes_rotates_and_deletes_a_stream() {
    let app = spawn_app().await;
    let alice = token(&app.signup_and_login("13800000120").await);
    let bob = token(&app.signup_and_login("13800000121").await);
    let new = json!({ "name": "alice-live" });

    // Without the role: 403 forbidden. With it: 201 and the key, once.
    assert_error(
        app.post_auth("/passport/streams", &alice, Some(&new)).await,
        403,
        "forbidden",
    )
    .await;
    let out = run_command(&app.dir, &["user", "role", "add", "13800000120", "streamer"], "").await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created = assert_ok(app.post_auth("/passport/streams", &alice, Some(&new)).await, 201).await;
    assert_eq!(
        (created["name"].clone(), created["access"].clone()),
        (json!("alice-live"), json!("login"))
    );
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sk_") && key.len() >= 3 + 27, "{key}");
    assert_error(
        app.post_auth("/passport/streams", &alice, Some(&new)).await,
        409,
        "stream_taken",
    )
    .await;
    let bad = json!({ "name": "Alice Live" });
    assert_error(
        app.post_auth("/passport/streams", &alice, Some(&bad)).await,
        400,
        "invalid_params",
    )
    .await;

    let listed = assert_ok(app.get_with("/passport/streams", &format!("JWT {alice}")).await, 200).await;
    assert_eq!(listed["streams"][0]["name"], "alice-live");
    assert!(listed["streams"][0].get("key").is_none(), "a listing never shows a key");
    let none = assert_ok(app.get_with("/passport/streams", &format!("JWT {bob}")).await, 200).await;
    assert_eq!(none["streams"], json!([]));

    let path = "/passport/streams/alice-live";
    let public = json!({ "access": "public" });
    let changed = assert_ok(app.send_auth(Method::PATCH, path, &alice, Some(&public)).await, 200).await;
    assert_eq!(changed["access"], "public");
    let rotated = assert_ok(app.post_auth(&format!("{path}/key"), &alice, None).await, 200).await;
    assert_ne!(rotated["key"].as_str().unwrap(), key);

    // Another user's stream is not found, whatever the request.
    assert_error(
        app.send_auth(Method::PATCH, path, &bob, Some(&public)).await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        app.post_auth(&format!("{path}/key"), &bob, None).await,
        404,
        "not_found",
    )
    .await;
    assert_error(app.send_auth(Method::DELETE, path, &bob, None).await, 404, "not_found").await;
    assert_error(
        app.get_with("/passport/streams", "JWT nope").await,
        401,
        "invalid_token",
    )
    .await;

    assert_ok(app.send_auth(Method::DELETE, path, &alice, None).await, 200).await;
    assert_error(
        app.send_auth(Method::DELETE, path, &alice, None).await,
        404,
        "not_found",
    )
    .await;

    // The keys are in no audit line.
    let log = std::fs::read_to_string(app.audit_path()).unwrap_or_default();
    assert!(!log.contains(&key) && !log.contains(rotated["key"].as_str().unwrap()));
    app.stop().await;
}

#[tokio::test]
async fn stream_commands_print_the_key_once_and_manage_any_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    ok(run_command(dir, &["user", "add", "13800000122"], "a password from stdin\n").await);
    // An administrator may give a stream to a user without the streamer role.
    let key = ok(run_command(dir, &["stream", "add", "13800000122", "show"], "").await);
    assert!(key.trim().starts_with("sk_"), "{key}");
    let listed = ok(run_command(dir, &["stream", "list"], "").await);
    assert!(listed.starts_with("show\tuser "), "{listed}");
    assert!(!listed.contains(key.trim()));
    let mine = ok(run_command(dir, &["stream", "list", "13800000122"], "").await);
    assert_eq!(mine, listed);
    let rotated = ok(run_command(dir, &["stream", "rotate", "show"], "").await);
    assert_ne!(rotated.trim(), key.trim());
    ok(run_command(dir, &["stream", "delete", "show"], "").await);
    assert_eq!(ok(run_command(dir, &["stream", "list"], "").await), "");
    for args in [
        &["stream", "delete", "show"][..],
        &["stream", "add", "13800000122", "Bad Name"],
    ] {
        let refused = run_command(dir, args, "").await;
        assert_eq!(refused.status.code(), Some(1), "{args:?}");
    }
}
