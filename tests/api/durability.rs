//! Nothing is lost on a restart or a crash.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn restart_keeps_users_and_live_sessions() {
    let tmp = tempfile::tempdir().unwrap();
    // No secret configured: the generated one must survive the restart too.
    let app = spawn_in(tmp.path(), &[("secret_key", "")]).await;
    let login = app.signup_and_login("13800000070").await;
    let token = login["token"].as_str().unwrap().to_owned();
    app.stop().await;

    let secret_file = tmp.path().join("data/secret.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "generated secret must be private");
    }

    let app = spawn_in(tmp.path(), &[("secret_key", "")]).await;
    assert_ok(app.me(&token).await, 200).await;
    assert_ok(app.login_raw("13800000070", PASSWORD).await, 200).await;
    // That login replaced the old session: the restarted server knows.
    assert_error(app.me(&token).await, 401, "session_replaced").await;
    app.stop().await;
}

#[tokio::test]
async fn kill_9_during_registrations_loses_no_answered_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_binary(tmp.path(), &[]);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let answered = Arc::new(Mutex::new(BTreeSet::new()));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (client, addr, answered) = (client.clone(), addr.clone(), answered.clone());
        workers.push(tokio::spawn(async move {
            for i in 0..1000 {
                let mobile = format!("+86139{w:02}{i:06}");
                let r = client
                    .post(format!("http://{addr}/passport/register"))
                    .json(&json!({"mobile": mobile, "password": PASSWORD}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 201 => {
                        answered.lock().unwrap().insert(mobile);
                    }
                    _ => return,
                }
            }
        }));
    }
    // Kill in the middle of the burst, once a good number were answered.
    loop {
        tokio::task::yield_now().await;
        if answered.lock().unwrap().len() >= 40 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for w in workers {
        w.await.unwrap();
    }

    let answered = answered.lock().unwrap().clone();
    assert!(answered.len() >= 40);
    let app = spawn_in(tmp.path(), &[]).await;
    for mobile in &answered {
        let found = app.state.stores.users.find_by_mobile(mobile).await.unwrap();
        assert!(found.is_some(), "{mobile} was answered 201 but is gone after kill -9");
    }
    app.stop().await;
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_flushes_the_audit_log() {
    let tmp = tempfile::tempdir().unwrap();
    // One hashing worker: concurrent logins queue up inside the server.
    let (child, addr) = spawn_binary(tmp.path(), &[("hash_workers", "1")]);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = |p: &str| format!("http://{addr}{p}");
    let r = client
        .post(url("/passport/register"))
        .json(&json!({"mobile": "13800000071", "password": PASSWORD}))
        .send();
    assert_eq!(r.await.unwrap().status(), 201);

    let mut logins = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let req = client
            .post(url("/passport/login"))
            .json(&json!({"mobile": "13800000071", "password": PASSWORD}));
        logins.spawn(async move { req.send().await.map(|r| r.status().as_u16()) });
    }
    // Once the first answer is back, the other three are inside the server, queued.
    let first = logins.join_next().await.unwrap().unwrap().unwrap();
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let mut statuses = vec![first];
    while let Some(r) = logins.join_next().await {
        statuses.push(r.unwrap().expect("an accepted request is answered during shutdown"));
    }
    assert_eq!(statuses, vec![200; 4]);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "graceful exit, got {:?}", out.status);

    let lines = read_audit(&tmp.path().join("logs/user_action.log"));
    assert_eq!(
        lines.iter().filter(|l| l["event"] == "login").count(),
        4,
        "every answered login is in the log"
    );
}

/// Starts the real binary on port 0 over `dir`; returns it and its bound address.
fn spawn_binary(dir: &std::path::Path, extra: &[(&str, &str)]) -> (std::process::Child, String) {
    let p = crate::support::PassportProcess::start(passport_bin(), &settings(dir, extra));
    let addr = p.addr.clone();
    (p.into_child(), addr)
}
