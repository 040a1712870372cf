//! SPEC §10: the command line, and its changes reaching a running server within
//! one second (SPEC §5).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;

/// Polls until the token is refused with `error`, for at most one second after the
/// command finished; returns how long it took.
async fn refused_within_a_second(app: &TestApp, token: &str, error: &str) -> Duration {
    let start = Instant::now();
    loop {
        let r = app.me(token).await;
        if r.status() == 401 {
            assert_error(r, 401, error).await;
            return start.elapsed();
        }
        assert_eq!(r.status(), 200);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the change did not reach the server within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[tokio::test]
async fn commands_beside_a_running_server_take_effect_within_a_second() {
    let app = spawn_app().await;
    let dir = app.dir.clone();

    // disable
    let t = app.signup_and_login("13800000080").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(&run_command(&dir, &["user", "disable", "13800000080"], "").await);
    refused_within_a_second(&app, &t, "session_revoked").await;
    assert_error(app.login_raw("13800000080", PASSWORD).await, 403, "account_disabled").await;
    ok(&run_command(&dir, &["user", "enable", "13800000080"], "").await);
    assert_ok(app.login_raw("13800000080", PASSWORD).await, 200).await;

    // passwd
    let t = app.signup_and_login("13800000081").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(&run_command(&dir, &["user", "passwd", "13800000081"], "an admin-set password\n").await);
    refused_within_a_second(&app, &t, "session_revoked").await;
    assert_ok(app.login_raw("13800000081", "an admin-set password").await, 200).await;

    // session revoke
    let t = app.signup_and_login("13800000082").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = ok(&run_command(&dir, &["session", "list", "13800000082"], "").await);
    assert_eq!(listed.lines().count(), 1);
    ok(&run_command(&dir, &["session", "revoke", "13800000082"], "").await);
    refused_within_a_second(&app, &t, "session_revoked").await;

    let events: Vec<String> = app
        .audit_lines()
        .await
        .iter()
        .map(|l| l["event"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        events.iter().filter(|e| *e == "session_revoked").count() >= 3,
        "{events:?}"
    );
    assert!(events.contains(&"user_disabled".to_owned()));
    app.stop().await;
}

#[tokio::test]
async fn user_add_list_and_exit_statuses() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = ok(&run_command(dir, &["migrate"], "").await);
    assert!(out.contains("up to date"));
    ok(&run_command(dir, &["user", "add", "13800000083"], "a password from stdin\n").await);
    let list = ok(&run_command(dir, &["user", "list"], "").await);
    assert!(list.contains("+8613800000083"), "{list}");
    assert_eq!(list.lines().count(), 1);

    // Refused operations: exit 1 with a one-line reason.
    let dup = run_command(dir, &["user", "add", "13800000083"], "a password from stdin\n").await;
    assert_eq!(dup.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("mobile_taken"));
    let weak = run_command(dir, &["user", "add", "13800000084"], "short\n").await;
    assert_eq!(weak.status.code(), Some(1));
    let missing = run_command(dir, &["user", "disable", "13800000085"], "").await;
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&missing.stderr).trim().lines().count(), 1);
    // Bad usage and bad settings: exit 2, naming the setting.
    assert_eq!(
        run_command(dir, &["user", "frobnicate"], "").await.status.code(),
        Some(2)
    );
    let bad = run_command_with(dir, &[("max_sessions", "zero")], &["user", "list"], "").await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("PASSPORT_MAX_SESSIONS"));

    // The added user logs in on a server over the same data.
    let app = spawn_in(dir, &[]).await;
    let login = app.login("13800000083", "a password from stdin").await;
    let token = login["token"].as_str().unwrap();

    let inspected = ok(&run_command(dir, &["token", "inspect", token], "").await);
    let report: Value = serde_json::from_str(&inspected).unwrap();
    assert_eq!(report["verdict"], "valid");
    assert_eq!(report["header"]["alg"], "HS256");
    assert!(report["kid"].as_str().is_some());
    assert_eq!(report["claims"]["data"]["id"], login["user_id"]);
    let forged = format!("{}x", token);
    let bad = run_command(dir, &["token", "inspect", &forged], "").await;
    assert_eq!(bad.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(report["verdict"], "invalid_token");
    app.stop().await;
}

#[tokio::test]
async fn a_reader_that_went_away_ends_no_command_in_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(&run_command(dir, &["user", "add", "13800000086"], "a password from stdin\n").await);
    // stdout is a pipe whose reading end is already closed, as with `… | head -1`
    // once head has its line: every write fails with EPIPE.
    let answer = |args: &'static [&'static str]| async move {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        command(dir, &[])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            // Not `output()`: tokio's replaces stdout with a pipe of its own.
            .spawn()
            .unwrap()
            .wait_with_output()
            .await
            .unwrap()
    };
    let listed = answer(&["user", "list"]).await;
    assert_eq!(
        listed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(listed.stderr.is_empty(), "{}", String::from_utf8_lossy(&listed.stderr));
    // A refused operation keeps its exit status.
    let inspected = answer(&["token", "inspect", "not-a-token"]).await;
    assert_eq!(inspected.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&inspected.stderr).contains("panicked"));
}

#[tokio::test]
async fn settings_come_by_environment_and_a_flag_beats_its_variable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let output = |mut cmd: tokio::process::Command| async move {
        cmd.stdin(std::process::Stdio::null()).output().await.unwrap()
    };

    // A variable alone is read, and a bad value stops the command naming it.
    let mut cmd = command(dir, &[]);
    cmd.env("PASSPORT_LEEWAY", "999").arg("migrate");
    let bad = output(cmd).await;
    assert_eq!(bad.status.code(), Some(2));
    let why = String::from_utf8_lossy(&bad.stderr);
    assert!(why.contains("PASSPORT_LEEWAY") && why.contains("--leeway"), "{why}");

    // Given both, the flag wins.
    let mut cmd = command(dir, &[("leeway", "5")]);
    cmd.env("PASSPORT_LEEWAY", "999").arg("migrate");
    let out = output(cmd).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // `--help` shows every variable's name, but never a secret's or a URL's value.
    let mut cmd = command(dir, &[]);
    cmd.env("PASSPORT_SECRET_KEY", "a-secret-value-nobody-may-read-0123456789")
        .env("PASSPORT_DATABASE_URL", "postgres://app:hunter2@127.0.0.1/x")
        .env("PASSPORT_REDIS_URL", "redis://:hunter3@127.0.0.1")
        .env("PASSPORT_ISSUER", "shown-issuer")
        .arg("--help");
    let help = String::from_utf8(output(cmd).await.stdout).unwrap();
    assert!(help.contains("PASSPORT_MAX_SESSIONS"), "{help}");
    assert!(help.contains("shown-issuer"), "{help}");
    for secret in ["a-secret-value", "hunter2", "hunter3"] {
        assert!(!help.contains(secret), "--help shows {secret}");
    }
}

#[tokio::test]
async fn role_commands_reach_a_running_server_within_a_second() {
    let app = spawn_app().await;
    let dir = app.dir.clone();
    let token = app.signup_and_login("13800000087").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let roles = |v: Value| v["data"]["roles"].clone();
    let me = app.me(&token).await.json::<Value>().await.unwrap();
    assert_eq!(roles(me), serde_json::json!(["viewer"]));

    let out = ok(&run_command(&dir, &["user", "role", "add", "13800000087", "streamer"], "").await);
    assert!(out.contains("granted"), "{out}");
    let start = Instant::now();
    loop {
        let me = app.me(&token).await.json::<Value>().await.unwrap();
        if roles(me) == serde_json::json!(["viewer", "streamer"]) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the role did not show within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Refused: a name outside the rule, and withdrawing viewer.
    for args in [
        ["user", "role", "add", "13800000087", "Admin"],
        ["user", "role", "remove", "13800000087", "viewer"],
    ] {
        let refused = run_command(&dir, &args, "").await;
        assert_eq!(refused.status.code(), Some(1), "{args:?}");
        assert!(String::from_utf8_lossy(&refused.stderr).contains("invalid_params"));
    }
    ok(&run_command(&dir, &["user", "role", "remove", "13800000087", "streamer"], "").await);
    app.stop().await;
}

#[tokio::test]
async fn completions_are_printed_for_each_shell_without_any_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef passport"),
        ("fish", "complete -c passport"),
    ] {
        // A bad setting in the environment does not stop it: it reads none.
        let out = std::process::Command::new(passport_bin())
            .args(["completions", shell])
            .env("PASSPORT_LEEWAY", "not a number")
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: {script}");
        for word in ["serve", "stream", "rotate", "completions"] {
            assert!(script.contains(word), "{shell} completes no {word}");
        }
    }
    let out = std::process::Command::new(passport_bin())
        .args(["completions", "nosh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
