//! The server's own CPU per request, without sockets: requests handed straight to
//! the router (every layer included) on the embedded store. `GET /passport/me`
//! against `GET /healthz` shows what identify and the profile add; the kernel and
//! the load generator, which `bench/run.sh` includes, are left out.
//! `cargo bench --bench requests`.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use passport::config::{Config, Sources};
use passport::state::AppState;
use passport::store::Mode;
use tower::ServiceExt;

const PASSWORD: &str = "bench horse battery staple";

async fn call(router: &Router, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, body.to_vec())
}

fn post_json(path: &str, body: String) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap()
}

/// A router on a fresh data directory, and the token of a logged-in user.
async fn setup(dir: &std::path::Path) -> (Router, String) {
    let d = |p: &str| dir.join(p).display().to_string();
    let sources = Sources::from_pairs([
        ("data_dir", d("data")),
        ("audit_log", d("user_action.log")),
        ("secret_key", "benchmark-secret-benchmark-secret-0123".to_owned()),
    ])
    .unwrap();
    let state = AppState::build(Config::from_sources(&sources).unwrap(), Mode::Serve)
        .await
        .unwrap();
    let router = passport::http::router(state);
    let creds = format!(r#"{{"mobile":"+8613700000001","password":"{PASSWORD}"}}"#);
    let (status, _) = call(&router, post_json("/passport/register", creds.clone())).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = call(&router, post_json("/passport/login", creds)).await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    (router, v["data"]["token"].as_str().unwrap().to_owned())
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let rt = &runtime;
    let dir = tempfile::tempdir().unwrap();
    let (router, token) = rt.block_on(setup(dir.path()));
    let auth = format!("JWT {token}");

    // Timed inside the runtime, `iters` requests in a row, so that entering the
    // runtime is not part of the figure.
    let run = |path: &'static str, expect: StatusCode| {
        let (router, auth) = (router.clone(), auth.clone());
        move |iters: u64| -> Duration {
            let (router, auth) = (router.clone(), auth.clone());
            rt.block_on(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let req = Request::get(path)
                        .header(header::AUTHORIZATION, &auth)
                        .body(Body::empty())
                        .unwrap();
                    let (status, _) = call(&router, req).await;
                    assert_eq!(status, expect);
                }
                start.elapsed()
            })
        }
    };
    c.bench_function("GET /healthz (in process)", |b| {
        b.iter_custom(run("/healthz", StatusCode::OK))
    });
    c.bench_function("GET /passport/me (in process)", |b| {
        b.iter_custom(run("/passport/me", StatusCode::OK))
    });
}

criterion_group!(requests, benches);
criterion_main!(requests);
