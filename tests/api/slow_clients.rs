//! Slow and idle clients cannot hold the server (SPEC §13): a request (its headers,
//! then its body) must arrive within the header timeout, open connections are
//! capped, and the server keeps answering everyone else meanwhile.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Reads until the server closes the connection; false if it is still open after `within`.
async fn closed_within(conn: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn half_sent_requests_are_closed_while_others_are_served() {
    const SLOW: usize = 300;
    let app = spawn_app_with(&[("header_timeout", "1")]).await;
    let token = app.token_of("+8613800000001").await;
    let addr = app.base.trim_start_matches("http://").to_owned();

    // Half send half a request line; half send whole headers and a little of the
    // body they announce, on a route that needs no login.
    let mut slow = Vec::with_capacity(SLOW);
    for i in 0..SLOW {
        let mut conn = TcpStream::connect(&addr).await.unwrap();
        if i % 2 == 0 {
            conn.write_all(b"GET /passport/me HTT").await.unwrap();
        } else {
            let head = "POST /passport/login HTTP/1.1\r\nHost: passport\r\n\
                        Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"mobile\":";
            conn.write_all(head.as_bytes()).await.unwrap();
        }
        slow.push(conn);
    }

    // Meanwhile, everyone else is answered: probes every 100 ms through the
    // header timeout and past it, each on a connection of its own.
    let probes = async {
        for round in 0..25 {
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            let health = client.get(app.url("/healthz")).timeout(Duration::from_secs(5)).send();
            let me = client
                .get(app.url("/passport/me"))
                .header("Authorization", format!("JWT {token}"))
                .timeout(Duration::from_secs(5))
                .send();
            let (health, me) = tokio::join!(health, me);
            assert_eq!(health.expect("/healthz answers").status(), 200, "round {round}");
            assert_eq!(me.expect("/passport/me answers").status(), 200, "round {round}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let closes = async {
        let mut closed = 0;
        for conn in slow.iter_mut() {
            // One second of header timeout, and slack for a loaded machine.
            if closed_within(conn, Duration::from_secs(10)).await {
                closed += 1;
            }
        }
        closed
    };
    let ((), closed) = tokio::join!(probes, closes);
    assert_eq!(closed, SLOW, "connections with half a request left open");
    app.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_outlives_the_header_timeout() {
    // The header clock starts again with the next request's first byte, not when
    // the previous response was sent: an idle connection waits for the idle timeout.
    let app = spawn_app_with(&[("header_timeout", "1")]).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: passport\r\n\r\n";
    conn.write_all(request).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = conn.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );

    tokio::time::sleep(Duration::from_millis(2500)).await;
    conn.write_all(request).await.unwrap();
    let n = conn.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "the idle connection was closed");
    app.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_to_be_accepted() {
    let app = spawn_app_with(&[("max_connections", "4")]).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut conn = TcpStream::connect(&addr).await.unwrap();
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: passport\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        assert!(conn.read(&mut buf).await.unwrap() > 0);
        held.push(conn);
    }
    // A fifth connection gets through the kernel's accept queue but no answer yet.
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let waiting = tokio::spawn({
        let url = app.url("/healthz");
        async move { client.get(url).send().await.map(|r| r.status()) }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!waiting.is_finished(), "a connection beyond the cap was served");

    // One held connection closes: the waiting one is accepted and answered.
    drop(held.pop());
    let status = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the waiting connection was served once one closed")
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    app.stop().await;
}
