//! End to end with real software: Debian's nginx with the RTMP module asks
//! Passport's nginx-rtmp hook, ffmpeg publishes a test pattern and plays it back,
//! and an `auth_request` location asks `/auth/verify`. Each test starts its own
//! nginx on free loopback ports and stops it by pid.

use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::helpers::*;
use crate::support::{self, PrivateNginx};

struct Stage {
    app: TestApp,
    nginx: PrivateNginx,
    streamer: String,
    viewer: String,
}

/// Passport with a streamer who owns `name` (login access), and nginx in front.
async fn stage(test: &str) -> Option<(Stage, String)> {
    let app = spawn_app().await;
    let passport = app.base.trim_start_matches("http://").to_owned();
    let nginx = PrivateNginx::start(test, &passport)?;
    let streamer = app.token_of("13800000140").await;
    let viewer = app.token_of("13800000141").await;
    let key = app.stream_of("13800000140", &streamer, "show").await;
    Some((
        Stage {
            app,
            nginx,
            streamer,
            viewer,
        },
        key,
    ))
}

impl Stage {
    async fn ticket(&self, stream: &str) -> String {
        let r = self
            .app
            .post_auth(&format!("/passport/streams/{stream}/ticket"), &self.viewer, None)
            .await;
        assert_ok(r, 200).await["ticket"].as_str().unwrap().to_owned()
    }

    /// Waits until Passport has allowed this many publishes.
    async fn publishes_allowed(&self, n: usize) {
        let start = Instant::now();
        loop {
            let allowed = self
                .app
                .audit_lines()
                .await
                .iter()
                .filter(|l| l["event"] == "stream_publish" && l["outcome"] == "ok")
                .count();
            if allowed >= n {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(15), "no publish was allowed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn publish(url: &str, seconds: u32) -> Command {
    Command::from(support::ffmpeg_publish(url, seconds))
}

fn play(url: &str, seconds: u32) -> Command {
    Command::from(support::ffmpeg_play(url, seconds))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publishes_with_its_key_and_plays_with_a_ticket() {
    let Some((s, key)) = stage("ffmpeg_publishes_with_its_key_and_plays_with_a_ticket").await else {
        return;
    };
    let n = &s.nginx;
    // A wrong key: nginx-rtmp drops the encoder, which fails.
    let refused = publish(&n.rtmp_url("show?key=sk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 2)
        .status()
        .await
        .unwrap();
    assert!(!refused.success(), "published with a wrong key");
    // A client that repeats key= after a wrong one is still refused.
    let repeated = publish(&n.rtmp_url(&format!("show?key=sk_wrong&key={key}")), 2)
        .status()
        .await
        .unwrap();
    assert!(!repeated.success(), "published with a repeated key");

    // The right key: published for 8 s, while players try.
    let mut publisher = publish(&n.rtmp_url(&format!("show?key={key}")), 8).spawn().unwrap();
    s.publishes_allowed(1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ticket = s.ticket("show").await;
    let watched = play(&n.rtmp_url(&format!("show?ticket={ticket}")), 2)
        .status()
        .await
        .unwrap();
    assert!(watched.success(), "a player with a ticket was refused");
    let no_ticket = play(&n.rtmp_url("show"), 2).status().await.unwrap();
    assert!(!no_ticket.success(), "a player without a ticket played");

    // An HLS-like location behind auth_request: the ticket of the page's URL.
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let hls = |q: &str| format!("http://127.0.0.1:{}/hls/show/index.m3u8{q}", n.http_port);
    let r = client.get(hls(&format!("?ticket={ticket}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let bad = "?ticket=1.AAAAAAAAAAAAAAAAAAAAAA.1.1.AAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(client.get(hls(bad)).send().await.unwrap().status(), 403);
    assert_eq!(client.get(hls("")).send().await.unwrap().status(), 403);

    assert!(publisher.wait().await.unwrap().success(), "the allowed publish failed");

    // The key pasted as the stream name, as OBS users do: renamed, published.
    let by_name = publish(&n.rtmp_url(&key), 2).status().await.unwrap();
    assert!(by_name.success(), "the key-as-name form was refused");
    s.publishes_allowed(2).await;

    // Neither key nor ticket reached the audit log.
    let log = std::fs::read_to_string(s.app.audit_path()).unwrap();
    assert!(!log.contains(&key) && !log.contains(&ticket));
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_key_ends_a_live_publish() {
    let Some((s, key)) = stage("rotating_the_key_ends_a_live_publish").await else {
        return;
    };
    let mut publisher = publish(&s.nginx.rtmp_url(&format!("show?key={key}")), 60)
        .spawn()
        .unwrap();
    s.publishes_allowed(1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(publisher.try_wait().unwrap().is_none(), "the publish ended by itself");

    let rotated = s.app.post_auth("/passport/streams/show/key", &s.streamer, None).await;
    assert_ok(rotated, 200).await;
    let rotated_at = Instant::now();
    // nginx-rtmp re-checks every second (notify_update_timeout 1s) and drops the
    // publisher at the first refusal.
    let ended = tokio::time::timeout(Duration::from_secs(20), publisher.wait()).await;
    assert!(ended.is_ok(), "the publish outlived its rotated key by 20 s");
    let took = rotated_at.elapsed();
    eprintln!("publish ended {took:?} after the rotation");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    s.app.stop().await;
}
