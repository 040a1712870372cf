//! The API document (`/openapi.json`) against the server that serves it:
//! schemathesis, every check on, over every operation, with a logged-in user.
//! `.ci/run` installs schemathesis into a virtual environment of its own.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::helpers::*;
use crate::support::{in_ci, PassportProcess};

/// The version `.ci/run` installs; the hooks file is written against its API.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

fn schemathesis_bin() -> Option<PathBuf> {
    let path = std::env::var_os("PASSPORT_TEST_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/schemathesis/bin/schemathesis"));
    path.exists().then_some(path)
}

/// The API document `app` serves.
pub async fn served_document(app: &TestApp) -> Value {
    app.client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_document_covers_every_json_endpoint_with_the_envelope_and_security() {
    let app = spawn_app().await;
    let doc = served_document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/passport/register",
        "/passport/login",
        "/passport/refresh",
        "/passport/logout",
        "/passport/logout_all",
        "/passport/me",
        "/passport/sessions",
        "/passport/sessions/{session_id}",
        "/passport/password",
        "/passport/streams",
        "/passport/streams/{name}",
        "/passport/streams/{name}/key",
        "/passport/streams/{name}/ticket",
        "/hooks/nginx-rtmp",
        "/hooks/srs",
        "/hooks/mediamtx",
        "/auth/verify",
        "/auth/verify/{rest}",
        "/healthz",
        "/readyz",
    ] {
        assert!(paths.contains_key(path), "{path} is not in the document");
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["jwt"]["type"], "apiKey");
    assert_eq!(schemes["jwt"]["name"], "Authorization");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    let codes: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for code in ["invalid_params", "session_revoked", "rate_limited", "store_unavailable"] {
        assert!(codes.contains(&code), "{code} missing from {codes:?}");
    }
    let me = &paths["/passport/me"]["get"];
    assert_eq!(
        me["responses"]["401"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Failure"
    );
    app.stop().await;
}

#[tokio::test]
async fn schemathesis_finds_nothing() {
    let test = "schemathesis_finds_nothing";
    let Some(bin) = schemathesis_bin() else {
        if in_ci() {
            panic!("{test}: schemathesis is not installed; CI=true requires it (.ci/run installs it)");
        }
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: schemathesis is not installed. Run `python3 -m venv target/schemathesis && \
             target/schemathesis/bin/pip install {SCHEMATHESIS}` (or set PASSPORT_TEST_SCHEMATHESIS to its \
             binary), then `cargo test`."
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let settings = settings(
        tmp.path(),
        &[
            // Its requests come from one address, and it logs the test user in again
            // whenever a case has ended that session.
            ("rate_login_account", "1000000/60"),
            ("max_sessions", "1000000"),
        ],
    );
    let server = PassportProcess::start(passport_bin(), &settings);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let (mobile, password) = ("13800000001", PASSWORD);
    let registered = client
        .post(server.url("/passport/register"))
        .json(&serde_json::json!({ "mobile": mobile, "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let granted = run_command(tmp.path(), &["user", "role", "add", mobile, "streamer"], "").await;
    assert!(granted.status.success(), "{}", String::from_utf8_lossy(&granted.stderr));

    let hooks = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis");
    let base = format!("http://{}", server.addr);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(["run", &format!("{base}/openapi.json"), "--checks", "all", "--no-color"])
            .env("SCHEMATHESIS_HOOKS", "hooks")
            .env("PYTHONPATH", &hooks)
            .env("PASSPORT_BASE", &base)
            .env("PASSPORT_MOBILE", mobile)
            .env("PASSPORT_PASSWORD", password)
            .output()
            .expect("run schemathesis")
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every operation was tested, none skipped for want of a way in or of data.
    assert!(!report.contains("Authentication failed"), "{report}");
    assert!(!report.contains("Missing test data"), "{report}");
}
