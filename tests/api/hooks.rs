//! SPEC §11 and §12 over HTTP: the media-server hooks in the dialects nginx-rtmp,
//! SRS and MediaMTX speak (request bodies built field by field from their hook
//! contracts), and forward auth. The end-to-end run with real nginx-rtmp and
//! ffmpeg is in `live.rs`.

use std::time::Duration;

use reqwest::{Method, Response};
use serde_json::{json, Value};

use crate::helpers::*;

/// A test app with a streamer (13800000130) who owns `show` (login) and `open`
/// (public), and a viewer (13800000131), both logged in.
struct Live {
    app: TestApp,
    streamer: String,
    viewer: String,
    key: String,
}

async fn live(extra: &[(&str, &str)]) -> Live {
    let app = spawn_app_with(extra).await;
    let streamer = app.token_of("13800000130").await;
    let viewer = app.token_of("13800000131").await;
    let key = app.stream_of("13800000130", &streamer, "show").await;
    let open = json!({ "name": "open", "access": "public" });
    assert_ok(app.post_auth("/passport/streams", &streamer, Some(&open)).await, 201).await;
    Live {
        app,
        streamer,
        viewer,
        key,
    }
}

impl Live {
    async fn ticket(&self, token: &str, stream: &str) -> String {
        let r = self
            .app
            .post_auth(&format!("/passport/streams/{stream}/ticket"), token, None)
            .await;
        assert_ok(r, 200).await["ticket"].as_str().unwrap().to_owned()
    }

    /// nginx-rtmp's notify body: its own fields, then the client's query, raw.
    async fn rtmp(&self, call: &str, name: &str, client_query: &str) -> Response {
        let mut body = format!(
            "app=live&flashver=FMLE%2F3.0&swfurl=&tcurl=rtmp%3A%2F%2F127.0.0.1%2Flive&pageurl=\
             &addr=127.0.0.1&clientid=7&call={call}&name={name}&type=live"
        );
        if !client_query.is_empty() {
            body.push('&');
            body.push_str(client_query);
        }
        // nginx-rtmp reads a 3xx itself: no following it.
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        client
            .post(self.app.url("/hooks/nginx-rtmp"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Polls an nginx-rtmp call until it answers `status`, for at most a second
    /// (a command's change reaches a running server within one).
    async fn within_a_second(&self, status: u16, call: &str, client_query: &str) {
        let start = std::time::Instant::now();
        loop {
            let got = self.rtmp(call, "show", client_query).await.status().as_u16();
            if got == status {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "still {got}, not {status}, after 1 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An nginx-rtmp call that must be refused with `error`.
    async fn refused(&self, call: &str, name: &str, client_query: &str, error: &str) {
        assert_error(self.rtmp(call, name, client_query).await, 403, error).await;
    }

    async fn json_hook(&self, path: &str, body: Value) -> Response {
        self.app.post_json(path, &body).await
    }
}

/// SRS's hook body (srs_app_http_hooks.cpp): every field it sends.
fn srs_body(action: &str, stream: &str, param: &str) -> Value {
    json!({
        "server_id": "vid-0xk989d", "service_id": "hj1dbm59", "action": action,
        "client_id": "341w361a", "ip": "127.0.0.1", "vhost": "__defaultVhost__",
        "app": "live", "tcUrl": "rtmp://127.0.0.1:1935/live", "stream": stream,
        "param": param, "stream_url": format!("/live/{stream}"), "stream_id": "vid-124q9y3"
    })
}

/// MediaMTX's authentication request (its authentication docs).
fn mediamtx_body(action: &str, path: &str, query: &str, password: &str, token: &str) -> Value {
    json!({
        "user": "", "password": password, "token": token, "ip": "127.0.0.1",
        "action": action, "path": path, "protocol": "rtmp", "id": null, "query": query
    })
}

#[tokio::test]
async fn nginx_rtmp_publish_takes_the_first_key_and_the_key_as_name_renames() {
    let l = live(&[]).await;
    let key = &l.key;
    assert_ok(l.rtmp("publish", "show", &format!("key={key}")).await, 200).await;
    for client_query in [
        "key=sk_wrong".to_owned(),
        String::new(),
        "key=".to_owned(),
        // The client repeats key= after nginx-rtmp's fields: the first value counts.
        format!("key=sk_wrong&key={key}"),
    ] {
        l.refused("publish", "show", &client_query, "invalid_stream_key").await;
    }
    l.refused("publish", "nosuch", &format!("key={key}"), "invalid_stream_key")
        .await;
    // A name outside the rule, even one no database would take, is simply refused.
    l.refused("publish", "%00", &format!("key={key}"), "invalid_stream_key")
        .await;
    // And call=: nginx-rtmp's own `play` of a public stream stays a play.
    assert_ok(l.rtmp("play", "open", "call=publish&key=sk_wrong").await, 200).await;

    // The key pasted as the stream name (OBS's "stream key"): renamed by a 302.
    let r = l.rtmp("publish", key, "").await;
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "show");
    assert_ok(l.rtmp("update_publish", key, "").await, 200).await;
    l.refused(
        "publish",
        "sk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "",
        "invalid_stream_key",
    )
    .await;

    // Done calls always succeed.
    assert_ok(l.rtmp("publish_done", "whatever", "").await, 200).await;
    assert_ok(l.rtmp("play_done", "show", "").await, 200).await;
    assert_error(l.rtmp("connect", "show", "").await, 400, "invalid_params").await;
    l.app.stop().await;
}

#[tokio::test]
async fn updates_drop_a_rotated_key_a_disabled_owner_and_an_ended_viewer() {
    let l = live(&[("play_ticket_ttl", "1")]).await;
    let key = l.key.clone();
    assert_ok(l.rtmp("update_publish", "show", &format!("key={key}")).await, 200).await;
    let rotate = l.app.post_auth("/passport/streams/show/key", &l.streamer, None).await;
    let rotated = assert_ok(rotate, 200).await;
    let new_key = rotated["key"].as_str().unwrap();
    l.refused("update_publish", "show", &format!("key={key}"), "invalid_stream_key")
        .await;
    l.refused("update_publish", &key, "", "invalid_stream_key").await;
    let publish = format!("key={new_key}");
    assert_ok(l.rtmp("update_publish", "show", &publish).await, 200).await;

    let other = json!({ "name": "other" });
    assert_ok(
        l.app.post_auth("/passport/streams", &l.streamer, Some(&other)).await,
        201,
    )
    .await;

    // The owner loses the role, or is disabled (commands, so within a second):
    // publishing is refused until the change is undone.
    let changes: [(&[&str], &[&str]); 2] = [
        (
            &["user", "role", "remove", "13800000130", "streamer"],
            &["user", "role", "add", "13800000130", "streamer"],
        ),
        (&["user", "disable", "13800000130"], &["user", "enable", "13800000130"]),
    ];
    for (change, undo) in changes {
        assert!(run_command(&l.app.dir, change, "").await.status.success());
        l.within_a_second(403, "update_publish", &publish).await;
        assert!(run_command(&l.app.dir, undo, "").await.status.success());
        l.within_a_second(200, "update_publish", &publish).await;
    }

    // A viewer's ticket: starts a play; past its start window only updates pass,
    // while the session lives.
    let ticket = l.ticket(&l.viewer, "show").await;
    assert!(ticket.len() <= 128);
    let with_ticket = format!("ticket={ticket}");
    assert_ok(l.rtmp("play", "show", &with_ticket).await, 200).await;
    l.refused("play", "show", "", "invalid_ticket").await;
    // A ticket opens its own stream only.
    l.refused("play", "other", &with_ticket, "invalid_ticket").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    l.refused("play", "show", &with_ticket, "invalid_ticket").await;
    assert_ok(l.rtmp("update_play", "show", &with_ticket).await, 200).await;
    assert_ok(l.app.post_auth("/passport/logout", &l.viewer, None).await, 200).await;
    l.refused("update_play", "show", &with_ticket, "invalid_ticket").await;

    // A deleted stream drops its publisher at the next update.
    // (Disabling ended the streamer's sessions: a new login.)
    let streamer = l.app.login("13800000130", PASSWORD).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let del = l
        .app
        .send_auth(Method::DELETE, "/passport/streams/show", &streamer, None)
        .await;
    assert_ok(del, 200).await;
    l.refused("update_publish", "show", &publish, "invalid_stream_key")
        .await;

    // Decisions are audited; no key and no ticket is.
    let log = std::fs::read_to_string(l.app.audit_path()).unwrap();
    for secret in [key.as_str(), new_key, ticket.as_str()] {
        assert!(!log.contains(secret), "the audit log holds a key or ticket");
    }
    let events: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let count = |e: &str| events.iter().filter(|v| v["event"] == e).count();
    assert!(count("stream_update") >= 8 && count("stream_play") >= 3, "{events:?}");
    l.app.stop().await;
}

#[tokio::test]
async fn srs_allows_only_with_code_zero() {
    let l = live(&[]).await;
    let code = |v: &Value| v["code"].as_i64().unwrap();
    let r = l
        .json_hook("/hooks/srs", srs_body("on_publish", "show", &format!("?key={}", l.key)))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(code(&r.json().await.unwrap()), 0);
    let r = l
        .json_hook("/hooks/srs", srs_body("on_publish", "show", "?key=sk_wrong"))
        .await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_ne!(code(&body), 0);
    assert_eq!(body["error"], "invalid_stream_key");
    // The key as the stream's name is nginx-rtmp's form only: SRS would not rename.
    let r = l.json_hook("/hooks/srs", srs_body("on_publish", &l.key, "")).await;
    assert_eq!(r.status(), 403);
    let ticket = l.ticket(&l.viewer, "show").await;
    let r = l
        .json_hook("/hooks/srs", srs_body("on_play", "show", &format!("?ticket={ticket}")))
        .await;
    assert_eq!(code(&r.json().await.unwrap()), 0);
    let r = l.json_hook("/hooks/srs", srs_body("on_play", "show", "")).await;
    assert_eq!(r.status(), 403);
    for action in ["on_unpublish", "on_stop"] {
        let r = l.json_hook("/hooks/srs", srs_body(action, "nosuch", "")).await;
        assert_eq!(
            (r.status().as_u16(), code(&r.json().await.unwrap())),
            (200, 0),
            "{action}"
        );
    }
    l.app.stop().await;
}

#[tokio::test]
async fn mediamtx_asks_for_a_credential_with_401_and_refuses_others_with_403() {
    let l = live(&[]).await;
    let hook = "/hooks/mediamtx";
    let key = &l.key;
    assert_ok(
        l.json_hook(hook, mediamtx_body("publish", "show", &format!("key={key}"), "", ""))
            .await,
        200,
    )
    .await;
    assert_ok(
        l.json_hook(hook, mediamtx_body("publish", "show", "", key, "")).await,
        200,
    )
    .await;
    assert_error(
        l.json_hook(hook, mediamtx_body("publish", "show", "", "", "")).await,
        401,
        "missing_credentials",
    )
    .await;
    let refused = |body| async { assert_error(l.json_hook(hook, body).await, 403, "invalid_stream_key").await };
    refused(mediamtx_body("publish", "show", "", "sk_wrong", "")).await;
    // The key as the path: nginx-rtmp's form only (MediaMTX would not rename).
    refused(mediamtx_body("publish", key, "", key, "")).await;
    let ticket = l.ticket(&l.viewer, "show").await;
    assert_ok(
        l.json_hook(hook, mediamtx_body("read", "show", "", "", &ticket)).await,
        200,
    )
    .await;
    assert_ok(
        l.json_hook(
            hook,
            mediamtx_body("playback", "show", &format!("ticket={ticket}"), "", ""),
        )
        .await,
        200,
    )
    .await;
    assert_ok(l.json_hook(hook, mediamtx_body("read", "open", "", "", "")).await, 200).await;
    assert_error(
        l.json_hook(hook, mediamtx_body("read", "show", "", "", "")).await,
        401,
        "missing_credentials",
    )
    .await;
    assert_error(
        l.json_hook(hook, mediamtx_body("api", "show", "", key, "")).await,
        403,
        "forbidden",
    )
    .await;
    l.app.stop().await;
}

#[tokio::test]
async fn hooks_answer_only_allowed_addresses_with_the_secret() {
    let l = live(&[("hook_allow", "10.0.0.0/8")]).await;
    let body = mediamtx_body("read", "open", "", "", "");
    assert_error(l.json_hook("/hooks/mediamtx", body.clone()).await, 403, "forbidden").await;
    l.app.stop().await;

    let l = live(&[("hook_secret", "a-hook-secret-of-some-length")]).await;
    let body = mediamtx_body("read", "open", "", "", "");
    assert_error(l.json_hook("/hooks/mediamtx", body.clone()).await, 403, "forbidden").await;
    let wrong = "/hooks/mediamtx?secret=a-hook-secret-of-some-lengtX";
    assert_error(l.json_hook(wrong, body.clone()).await, 403, "forbidden").await;
    let right = "/hooks/mediamtx?secret=a-hook-secret-of-some-length";
    assert_ok(l.json_hook(right, body).await, 200).await;
    l.app.stop().await;
}

#[tokio::test]
async fn forward_auth_answers_for_tokens_roles_and_stream_tickets() {
    let l = live(&[]).await;
    let get = |path: &str, headers: Vec<(&'static str, String)>| {
        let mut req = l.app.client.request(Method::GET, l.app.url(path));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    let auth = |t: &str| ("Authorization", format!("JWT {t}"));

    // A token; a client's own X-User-* headers are never echoed.
    let r = get(
        "/auth/verify",
        vec![
            auth(&l.streamer),
            ("X-User-Id", "999".into()),
            ("X-User-Roles", "admin".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let user_id = r.headers()["x-user-id"].to_str().unwrap().to_owned();
    assert_ne!(user_id, "999");
    assert_eq!(r.headers()["x-user-roles"], "viewer,streamer");
    assert!(r.headers().contains_key("x-session-id"));
    let data = assert_ok(r, 200).await;
    assert_eq!(data["user_id"].to_string(), user_id);
    assert_eq!(data["roles"], json!(["viewer", "streamer"]));
    // Envoy adds the original path; any method.
    let r = l
        .app
        .client
        .request(Method::PUT, l.app.url("/auth/verify/hls/show.m3u8"))
        .header("Authorization", format!("JWT {}", l.viewer))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    assert_ok(
        get("/auth/verify?role=streamer", vec![auth(&l.streamer)])
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_error(
        get("/auth/verify?role=streamer", vec![auth(&l.viewer)]).await.unwrap(),
        403,
        "forbidden",
    )
    .await;
    // A role cannot be had without a token, even for a stream anyone may watch.
    assert_error(
        get("/auth/verify?stream=open&role=admin", vec![]).await.unwrap(),
        403,
        "forbidden",
    )
    .await;
    // Behind the path (Envoy), the query is the client's: not read.
    assert_error(
        get("/auth/verify/hls/x.m3u8?stream=open", vec![]).await.unwrap(),
        401,
        "missing_credentials",
    )
    .await;
    assert_error(
        get("/auth/verify?stream=%00", vec![]).await.unwrap(),
        403,
        "invalid_ticket",
    )
    .await;
    // A role cannot be had without a token, even for a stream anyone may watch.
    let r = get("/auth/verify?stream=open&role=admin", vec![]).await.unwrap();
    assert_error(r, 403, "forbidden").await;
    // Behind the path (Envoy), the query is the client's: not read.
    let r = get("/auth/verify/hls/x.m3u8?stream=open", vec![]).await.unwrap();
    assert_error(r, 401, "missing_credentials").await;
    let r = get("/auth/verify?stream=%00", vec![]).await.unwrap();
    assert_error(r, 403, "invalid_ticket").await;
    let r = get("/auth/verify", vec![]).await.unwrap();
    assert!(r.headers().contains_key("www-authenticate"));
    assert_error(r, 401, "missing_credentials").await;
    assert_error(
        get("/auth/verify", vec![auth("nope")]).await.unwrap(),
        401,
        "invalid_token",
    )
    .await;

    // A stream: the ticket of the original URI (nginx's X-Original-URI, Traefik's
    // and Caddy's X-Forwarded-Uri); a public stream needs nothing.
    let ticket = l.ticket(&l.viewer, "show").await;
    let with = |h: &'static str, uri: String| vec![(h, uri)];
    let ok_uri = format!("/hls/show/index.m3u8?ticket={ticket}");
    assert_ok(
        get("/auth/verify?stream=show", with("X-Original-URI", ok_uri.clone()))
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_ok(
        get("/auth/verify?stream=show", with("X-Forwarded-Uri", ok_uri))
            .await
            .unwrap(),
        200,
    )
    .await;
    let bad_uri = "/hls/show/index.m3u8?ticket=1.AAAAAAAAAAAAAAAAAAAAAA.1.1.AAAAAAAAAAAAAAAAAAAAAA".to_owned();
    assert_error(
        get("/auth/verify?stream=show", with("X-Original-URI", bad_uri))
            .await
            .unwrap(),
        403,
        "invalid_ticket",
    )
    .await;
    assert_error(
        get("/auth/verify?stream=show", vec![]).await.unwrap(),
        403,
        "invalid_ticket",
    )
    .await;
    assert_ok(get("/auth/verify?stream=open", vec![]).await.unwrap(), 200).await;
    assert_ok(
        get("/auth/verify?stream=show", vec![auth(&l.viewer)]).await.unwrap(),
        200,
    )
    .await;
    l.app.stop().await;
}

/// Neither a stream key, a play ticket nor the hook secret reaches the server's
/// log, even at its most verbose.
#[tokio::test]
async fn no_key_ticket_or_hook_secret_in_the_log_at_trace_level() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("passport.log");
    let hook_secret = "a-hook-secret-of-some-length";
    let settings = settings(tmp.path(), &[("hook_secret", hook_secret)]);
    let server = crate::support::PassportProcess::start_logging(passport_bin(), &settings, "trace", Some(&log));
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let post = |path: &str, body: Value, token: Option<&str>| {
        let mut req = client.post(server.url(path)).json(&body);
        if let Some(t) = token {
            req = req.header("Authorization", format!("JWT {t}"));
        }
        req.send()
    };
    let creds = json!({ "mobile": "13800000132", "password": PASSWORD });
    assert_eq!(
        post("/passport/register", creds.clone(), None).await.unwrap().status(),
        201
    );
    let login: Value = post("/passport/login", creds, None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["data"]["token"].as_str().unwrap().to_owned();
    let out = run_command(tmp.path(), &["user", "role", "add", "13800000132", "streamer"], "").await;
    assert!(out.status.success());
    let created: Value = post("/passport/streams", json!({ "name": "show" }), Some(&token))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["data"]["key"].as_str().unwrap().to_owned();
    let issued: Value = post("/passport/streams/show/ticket", json!({}), Some(&token))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket = issued["data"]["ticket"].as_str().unwrap().to_owned();

    let hook = format!("/hooks/nginx-rtmp?secret={hook_secret}");
    for body in [
        format!("call=publish&name=show&key={key}"),
        format!("call=publish&name={key}"),
        format!("call=play&name=show&ticket={ticket}"),
    ] {
        let r = client
            .post(server.url(&hook))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success() || r.status().is_redirection(), "{}", r.status());
    }
    let r = client
        .get(server.url("/auth/verify?stream=show"))
        .header("X-Original-URI", format!("/hls/show/index.m3u8?ticket={ticket}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(server);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("request"), "the log is empty: {text}");
    for secret in [key.as_str(), ticket.as_str(), hook_secret] {
        assert!(!text.contains(secret), "the log holds a secret");
    }
}

/// A store that cannot answer refuses, never allows: 503 in every dialect (for SRS,
/// a non-zero `code`), and from forward auth.
#[tokio::test]
async fn hooks_and_forward_auth_fail_closed_when_a_store_is_down() {
    let l = live(&[]).await;
    let ticket = l.ticket(&l.viewer, "show").await;
    let later = json!({ "name": "later" });
    assert_ok(
        l.app.post_auth("/passport/streams", &l.streamer, Some(&later)).await,
        201,
    )
    .await;
    // Remembered for at most a second: `show` (the ticket read it); its owner, and
    // `open` and `later`, not at all.
    l.app.state.stores.users.close().await;
    let publish = format!("key={}", l.key);
    assert_error(l.rtmp("publish", "show", &publish).await, 503, "store_unavailable").await;
    let r = l
        .json_hook("/hooks/srs", srs_body("on_publish", "show", &format!("?{publish}")))
        .await;
    assert_eq!(r.status(), 503);
    assert_ne!(r.json::<Value>().await.unwrap()["code"], 0);
    let r = l
        .json_hook("/hooks/mediamtx", mediamtx_body("read", "open", "", "", ""))
        .await;
    assert_error(r, 503, "store_unavailable").await;
    let r = l
        .app
        .client
        .get(l.app.url("/auth/verify?stream=later"))
        .header("X-Original-URI", format!("/hls/later/x.m3u8?ticket={ticket}"))
        .send()
        .await
        .unwrap();
    assert_error(r, 503, "store_unavailable").await;
    l.app.stop().await;
}
