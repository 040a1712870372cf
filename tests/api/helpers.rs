//! Test helpers: every test gets its own app on port 0 with its own data
//! directory, audit log and secret.

use std::path::{Path, PathBuf};

pub use super::support::{settings, SECRET};
use passport::{App, AppState};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub dir: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    // Held so the directory lives as long as the app (None when the caller owns it).
    _tmp: Option<TempDir>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().to_path_buf();
    let mut app = spawn_in(&dir, extra).await;
    app._tmp = Some(tmp);
    app
}

/// An app on an existing directory (to restart on the same data).
pub async fn spawn_in(dir: &Path, extra: &[(&str, &str)]) -> TestApp {
    let config = super::support::config(dir, extra);
    let app = App::build(config).await.expect("app builds");
    let addr = app.local_addr();
    let state = app.state();
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        base: format!("http://{addr}"),
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        state,
        dir: dir.to_path_buf(),
        shutdown: Some(tx),
        server: Some(server),
        _tmp: None,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn audit_path(&self) -> PathBuf {
        self.dir.join("logs/user_action.log")
    }

    /// Graceful stop: in-flight requests finish, the audit log is flushed.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server stopped cleanly");
        }
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client.post(self.url(path)).json(body).send().await.unwrap()
    }

    pub async fn register(&self, mobile: &str, password: &str) -> Response {
        self.post_json("/passport/register", &json!({ "mobile": mobile, "password": password }))
            .await
    }

    pub async fn login_raw(&self, mobile: &str, password: &str) -> Response {
        self.post_json("/passport/login", &json!({ "mobile": mobile, "password": password }))
            .await
    }

    /// Registers (if need be) and logs in; returns the login `data`.
    pub async fn signup_and_login(&self, mobile: &str) -> Value {
        let r = self.register(mobile, PASSWORD).await;
        assert!(
            r.status() == StatusCode::CREATED || r.status() == StatusCode::CONFLICT,
            "{}",
            r.status()
        );
        self.login(mobile, PASSWORD).await
    }

    pub async fn login(&self, mobile: &str, password: &str) -> Value {
        let r = self.login_raw(mobile, password).await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        body["data"].clone()
    }

    pub async fn get_with(&self, path: &str, authorization: &str) -> Response {
        self.client
            .get(self.url(path))
            .header("Authorization", authorization)
            .send()
            .await
            .unwrap()
    }

    /// GET with extra headers; the parsed body, whatever the status.
    pub async fn get_json(&self, path: &str, headers: &[(&str, &str)]) -> Value {
        let mut req = self.client.get(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap().json().await.unwrap()
    }

    pub async fn me(&self, token: &str) -> Response {
        self.get_with("/passport/me", &format!("JWT {token}")).await
    }

    /// Registers and logs in `mobile`; returns the access token.
    pub async fn token_of(&self, mobile: &str) -> String {
        self.signup_and_login(mobile).await["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Grants `mobile` (logged in with `token`) the streamer role by command and
    /// creates its stream `name` (login access); returns the stream's key.
    pub async fn stream_of(&self, mobile: &str, token: &str, name: &str) -> String {
        let out = run_command(&self.dir, &["user", "role", "add", mobile, "streamer"], "").await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let created = self
            .post_auth("/passport/streams", token, Some(&json!({ "name": name })))
            .await;
        assert_ok(created, 201).await["key"].as_str().unwrap().to_owned()
    }

    pub async fn post_auth(&self, path: &str, token: &str, body: Option<&Value>) -> Response {
        self.send_auth(reqwest::Method::POST, path, token, body).await
    }

    /// A request with this method, token and (JSON) body.
    pub async fn send_auth(&self, method: reqwest::Method, path: &str, token: &str, body: Option<&Value>) -> Response {
        let mut req = self
            .client
            .request(method, self.url(path))
            .header("Authorization", format!("JWT {token}"));
        if let Some(body) = body {
            req = req.json(body);
        }
        req.send().await.unwrap()
    }

    /// Every line of the audit log, parsed (after a flush).
    pub async fn audit_lines(&self) -> Vec<Value> {
        self.state.audit.flush().await;
        read_audit(&self.audit_path())
    }
}

pub fn read_audit(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {l}")))
        .collect()
}

/// Asserts an error envelope: status, `code`, `error`, JSON content type, and for
/// 401 a `WWW-Authenticate`. Returns the body.
pub async fn assert_error(resp: Response, status: u16, error: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status for expected {error}");
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(ct.as_deref(), Some("application/json"));
    let www = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert!(body["data"].is_null(), "{body}");
    assert!(body["msg"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    if status == 401 {
        let www = www.expect("401 carries WWW-Authenticate");
        assert!(www.contains("realm=\"passport\""), "{www}");
    }
    body
}

pub async fn assert_ok(resp: Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], status, "{body}");
    assert!(body.get("error").is_none(), "{body}");
    body["data"].clone()
}

/// The path of the `passport` binary Cargo built for these tests.
pub fn passport_bin() -> &'static str {
    env!("CARGO_BIN_EXE_passport")
}

/// Runs a `passport` command against a test app's data, with `stdin` as input.
/// Async, so that a server in the same test keeps running meanwhile.
pub async fn run_command(dir: &Path, args: &[&str], stdin: &str) -> std::process::Output {
    run_command_with(dir, &[], args, stdin).await
}

pub async fn run_command_with(dir: &Path, extra: &[(&str, &str)], args: &[&str], stdin: &str) -> std::process::Output {
    use std::process::Stdio;
    use tokio::io::AsyncWriteExt;
    let mut child = command(dir, extra)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run passport");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    child.wait_with_output().await.unwrap()
}

/// A `passport` command over a test app's data, its settings given as flags.
pub fn command(dir: &Path, extra: &[(&str, &str)]) -> tokio::process::Command {
    let mut settings = settings(dir, extra);
    settings.retain(|(k, _)| k != "listen");
    crate::support::passport_command(passport_bin(), &settings).into()
}

/// Runs `n` futures at once on the runtime; returns their outputs in order.
pub async fn concurrently<F, Fut>(n: usize, make: F) -> Vec<Fut::Output>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(make(i))).collect();
    let mut out = Vec::with_capacity(n);
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}
