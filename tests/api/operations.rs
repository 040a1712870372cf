//! What an operator reads (SPEC §13): `/metrics` in the OpenMetrics text format,
//! allowed only from `metrics_allow`.

use prometheus_parse::{Sample, Scrape, Value as Metric};

use crate::helpers::*;

async fn scrape(app: &TestApp) -> Scrape {
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    let text = r.text().await.unwrap();
    // OpenMetrics ends with this line; Prometheus refuses an exposition without it.
    assert!(text.ends_with("# EOF\n"), "{text}");
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    Scrape::parse(lines).unwrap_or_else(|e| panic!("not the Prometheus text format: {e}\n{text}"))
}

fn counter(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    find(scrape, name, labels)
        .map(|s| match s.value {
            Metric::Counter(v) | Metric::Untyped(v) => v,
            ref other => panic!("{name} is not a counter: {other:?}"),
        })
        .unwrap_or(0.0)
}

fn find<'a>(scrape: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
}

#[tokio::test]
async fn metrics_count_logins_requests_identify_and_hooks() {
    let app = spawn_app().await;
    // The recorder is the process's: other tests of this binary count into it too,
    // so what this test did is read as a difference.
    let before = scrape(&app).await;
    let logins_ok = counter(&before, "passport_logins_total", &[("outcome", "ok")]);
    let logins_bad = counter(&before, "passport_logins_total", &[("outcome", "invalid_credentials")]);
    let identify_ok = counter(&before, "passport_identify_total", &[("outcome", "ok")]);
    let identify_bad = counter(&before, "passport_identify_total", &[("outcome", "invalid_token")]);
    let denied = [
        ("server", "nginx-rtmp"),
        ("call", "publish"),
        ("outcome", "invalid_stream_key"),
    ];
    let hooks_denied = counter(&before, "passport_hook_decisions_total", &denied);

    let token = app.token_of("+8613800000001").await;
    assert_eq!(app.login_raw("+8613800000001", "not the password").await.status(), 401);
    assert_eq!(app.me(&token).await.status(), 200);
    assert_eq!(app.me("not-a-token").await.status(), 401);
    let hook = app
        .client
        .post(app.url("/hooks/nginx-rtmp"))
        .form(&[
            ("call", "publish"),
            ("name", "nobody-streams-here"),
            ("key", "sk_wrong"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 403);

    let after = scrape(&app).await;
    assert!(counter(&after, "passport_logins_total", &[("outcome", "ok")]) >= logins_ok + 1.0);
    assert!(counter(&after, "passport_logins_total", &[("outcome", "invalid_credentials")]) >= logins_bad + 1.0);
    assert!(counter(&after, "passport_identify_total", &[("outcome", "ok")]) >= identify_ok + 1.0);
    assert!(counter(&after, "passport_identify_total", &[("outcome", "invalid_token")]) >= identify_bad + 1.0);
    assert!(counter(&after, "passport_hook_decisions_total", &denied) >= hooks_denied + 1.0);

    // The request histogram: by route pattern, method and status, with buckets.
    let login = [("route", "/passport/login"), ("method", "POST"), ("status", "200")];
    let sample = find(&after, "passport_http_request_duration_seconds", &login)
        .expect("the request histogram has the login route");
    match &sample.value {
        Metric::Histogram(buckets) => {
            assert!(buckets.len() > 5, "{buckets:?}");
            let all = buckets.iter().map(|b| b.count).fold(0.0, f64::max);
            assert!(all >= 1.0, "{buckets:?}");
        }
        other => panic!("not a histogram: {other:?}"),
    }
    let count = find(&after, "passport_http_request_duration_seconds_count", &login);
    assert!(count.is_some(), "no _count series for the login route");
    // The hash pool: how long a hash took, how many are running or waiting.
    assert!(after
        .samples
        .iter()
        .any(|s| s.metric.starts_with("passport_password_hash_duration_seconds")));
    assert!(find(&after, "passport_password_hash_queue", &[]).is_some());
    // The embedded store knows its session count.
    assert!(find(&after, "passport_sessions_live", &[]).is_some());
    app.stop().await;
}

#[tokio::test]
async fn metrics_are_only_for_allowed_addresses() {
    let app = spawn_app_with(&[("metrics_allow", "10.0.0.0/8")]).await;
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "forbidden");
    app.stop().await;

    // None: no metrics at all.
    let app = spawn_app_with(&[("metrics_allow", "none")]).await;
    assert_eq!(app.client.get(app.url("/metrics")).send().await.unwrap().status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_the_request_id() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("passport.log");
    let settings = settings(tmp.path(), &[("log_format", "json")]);
    let server = crate::support::PassportProcess::start_logging(passport_bin(), &settings, "debug", Some(&log));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    // A request with an id of its own (as a proxy in front sets it), and one without.
    let given = client
        .get(server.url("/passport/me"))
        .header("X-Request-Id", "proxy-id-1234")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "proxy-id-1234");
    let made = client.get(server.url("/healthz")).send().await.unwrap();
    let made_id = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(made_id, "proxy-id-1234");
    let too_long = "x".repeat(200);
    let replaced = client
        .get(server.url("/healthz"))
        .header("X-Request-Id", &too_long)
        .send()
        .await
        .unwrap();
    assert_ne!(replaced.headers()["x-request-id"], too_long.as_str());
    drop(server);

    // The log is copied from the process's stderr by a thread of the test: wait
    // for the last request's lines to land.
    let mut text = String::new();
    for _ in 0..50 {
        text = std::fs::read_to_string(&log).unwrap();
        if text.contains(&made_id) && text.ends_with('\n') {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut ids = Vec::new();
    for line in text.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not one JSON object: {e}: {line}"));
        assert!(value["timestamp"].is_string() && value["level"].is_string(), "{line}");
        if let Some(id) = value["span"]["request_id"].as_str() {
            ids.push(id.to_owned());
        }
    }
    assert!(ids.iter().any(|id| id == "proxy-id-1234"), "{text}");
    assert!(ids.contains(&made_id), "{text}");
}
