//! Accepting and serving connections, so that slow or idle clients cannot hold the
//! server (SPEC §13).
//!
//! `axum::serve` leaves these limits to the caller, and hyper's own header timeout
//! also runs while a keep-alive connection waits for its next request, which would
//! close idle connections after the header timeout instead of the idle one. So each
//! connection has a watchdog that knows which of three phases it is in:
//!
//! - **headers**: from the accept, or from the first byte after an idle spell, the
//!   request's headers must be complete within `header_timeout`;
//! - **busy**: a request is being served; no deadline here (the handlers' own
//!   timeouts bound it);
//! - **idle**: after the last response, the next request's first byte must come
//!   within [`IDLE_TIMEOUT`].
//!
//! A connection past its deadline is dropped, which closes the socket. At most
//! `max_connections` are open; beyond that the listener is not polled, so more wait
//! in the kernel's accept queue rather than being refused.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tower::ServiceExt;

/// How long a keep-alive connection may wait for its next request (SPEC §13).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long shutdown waits for open connections to finish their requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting
/// and lets open connections finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let watcher = graceful.watcher();
        let router = router.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, router, limits, watcher).await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let _ = stream.set_nodelay(true);
    let clock = Arc::new(Phases::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        clock: clock.clone(),
    });
    let requests = clock.clone();
    let service = hyper::service::service_fn(move |mut req: axum::http::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let busy = requests.request_started();
        let response = router.clone().oneshot(req);
        async move {
            let response = response.await;
            drop(busy);
            response
        }
    });
    let conn = auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(io, service)
        .into_owned();
    tokio::select! {
        _ = watcher.watch(conn) => {}
        phase = clock.overdue(limits) => {
            tracing::debug!(%peer, phase, "closed a connection past its deadline");
        }
    }
}

/// A failed accept is the listener's problem, not a client's: most often out of file
/// descriptors, which a pause lets other connections give back.
async fn accept_failed(e: io::Error) {
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

const HEADERS: u8 = 0;
const BUSY: u8 = 1;
const IDLE: u8 = 2;

/// Milliseconds are plenty for deadlines of seconds, and fit an atomic.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    EPOCH.elapsed().as_millis() as u64
}

/// The phase of one connection and since when it is in it.
struct Phases {
    phase: AtomicU8,
    since_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// Wakes the watchdog when a phase with an earlier deadline begins.
    changed: Notify,
}

impl Phases {
    fn new() -> Phases {
        Phases {
            phase: AtomicU8::new(HEADERS),
            since_ms: AtomicU64::new(now_ms()),
            in_flight: AtomicUsize::new(0),
            changed: Notify::new(),
        }
    }

    fn enter(&self, phase: u8) {
        self.since_ms.store(now_ms(), Ordering::Relaxed);
        self.phase.store(phase, Ordering::Release);
    }

    /// Bytes arrived: after an idle spell they start a request's headers.
    fn bytes_read(&self) {
        if self.phase.load(Ordering::Acquire) == IDLE {
            self.enter(HEADERS);
            self.changed.notify_one();
        }
    }

    /// A request's headers are in; busy until every request in flight has its
    /// response (several at once on HTTP/2).
    fn request_started(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.enter(BUSY);
        Busy(self.clone())
    }

    /// Completes when the connection is past the deadline of its phase, naming it.
    async fn overdue(&self, limits: Limits) -> &'static str {
        loop {
            let phase = self.phase.load(Ordering::Acquire);
            let since = self.since_ms.load(Ordering::Relaxed);
            let (limit, name) = match phase {
                HEADERS => (limits.header_timeout, "headers"),
                IDLE => (limits.idle_timeout, "idle"),
                // No deadline while serving; look again after a while.
                _ => (limits.idle_timeout, "busy"),
            };
            let deadline = since + limit.as_millis() as u64;
            let now = now_ms();
            if phase != BUSY && now >= deadline {
                return name;
            }
            let wait = if phase == BUSY {
                limit
            } else {
                Duration::from_millis(deadline - now)
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.changed.notified() => {}
            }
        }
    }
}

/// Held while a request is served.
struct Busy(Arc<Phases>);

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.enter(IDLE);
        }
    }
}

/// The socket, telling the watchdog when bytes arrive.
struct Watched {
    inner: TcpStream,
    clock: Arc<Phases>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_timeout: Duration::from_millis(50),
            idle_timeout: Duration::from_millis(200),
            max_connections: 1,
        }
    }

    #[tokio::test]
    async fn headers_and_idle_have_their_own_deadlines() {
        let phases = Arc::new(Phases::new());
        let started = Instant::now();
        assert_eq!(phases.overdue(limits()).await, "headers");
        assert!(started.elapsed() >= Duration::from_millis(50));

        drop(phases.request_started());
        let started = Instant::now();
        assert_eq!(phases.overdue(limits()).await, "idle");
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn a_request_in_flight_has_no_deadline() {
        let phases = Arc::new(Phases::new());
        let busy = phases.request_started();
        let overdue = tokio::time::timeout(Duration::from_millis(500), phases.overdue(limits())).await;
        assert!(overdue.is_err(), "a busy connection was declared overdue");
        drop(busy);
        // A byte after the idle spell starts the header clock again.
        phases.bytes_read();
        assert_eq!(phases.overdue(limits()).await, "headers");
    }
}
