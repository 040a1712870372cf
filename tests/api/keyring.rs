//! Key rotation: sign with the newest key, verify with every listed one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

use crate::helpers::*;

fn kid_of(token: &str) -> String {
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn adding_a_key_and_retiring_the_old_one_logs_nobody_out_who_holds_a_listed_key() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let keys_dir = keys.display().to_string();

    // Before: one secret.
    let app = spawn_in(tmp.path(), &[("max_sessions", "5")]).await;
    let old = app.signup_and_login("13800000120").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let old_kid = kid_of(&old);
    app.stop().await;

    // Add a key ring beside it: new tokens carry the new kid, old ones still work.
    std::fs::write(keys.join("2026-11.key"), "a-new-signing-secret-of-32-bytes-or-more\n").unwrap();
    let app = spawn_in(tmp.path(), &[("max_sessions", "5"), ("secret_keys_dir", &keys_dir)]).await;
    assert_ok(app.me(&old).await, 200).await;
    let new = app.login("13800000120", PASSWORD).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(kid_of(&new), "2026-11");
    assert_ok(app.me(&new).await, 200).await;
    app.stop().await;

    // A newer key signs from now on; both older keys still verify.
    std::fs::write(keys.join("2026-12.key"), "the-newest-signing-secret-of-32-bytes-plus").unwrap();
    let app = spawn_in(tmp.path(), &[("max_sessions", "5"), ("secret_keys_dir", &keys_dir)]).await;
    let newest = app.login("13800000120", PASSWORD).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(kid_of(&newest), "2026-12");
    for t in [&old, &new, &newest] {
        assert_ok(app.me(t).await, 200).await;
    }
    app.stop().await;

    // Retire the original secret: its tokens stop verifying, the ring's keep working.
    let app = spawn_in(
        tmp.path(),
        &[
            ("max_sessions", "5"),
            ("secret_keys_dir", &keys_dir),
            ("secret_key", ""),
        ],
    )
    .await;
    assert_error(app.me(&old).await, 401, "invalid_token").await;
    assert_ok(app.me(&new).await, 200).await;
    assert_ok(app.me(&newest).await, 200).await;
    assert_ne!(old_kid, "2026-11");

    // token inspect names the kid.
    let out = run_command_with(
        tmp.path(),
        &[("secret_keys_dir", &keys_dir), ("secret_key", "")],
        &["token", "inspect", &new],
        "",
    )
    .await;
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["kid"].as_str(), report["verdict"].as_str()),
        (Some("2026-11"), Some("valid"))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_bad_key_directory_stops_startup_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("short.key"), "too short").unwrap();
    let out = run_command_with(
        tmp.path(),
        &[("secret_keys_dir", &keys.display().to_string())],
        &["token", "inspect", "x.y.z"],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("short.key"));
}
