//! Accepting and serving connections, so that slow or idle clients cannot hold the
//! server (SPEC §13).
//!
//! `axum::serve` leaves these limits to the caller, and hyper's own header timeout
//! also runs while a keep-alive connection waits for its next request, which would
//! close idle connections after the header timeout instead of the idle one. So each
//! connection has a watchdog that knows which phase it is in:
//!
//! - **arriving**: from the accept, or from the first byte after an idle spell, the
//!   request must have arrived within `header_timeout`: its headers, and then its
//!   body as far as the handler reads it (a client that sends the headers and a
//!   trickle of the body is cut off like one that sends half the headers);
//! - **busy**: the request is in and being served; no deadline (the handlers wait
//!   only on the stores and the password hashers, which have their own bounds);
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
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use parking_lot::Mutex;
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
    let service = hyper::service::service_fn(move |req: axum::http::Request<Incoming>| {
        let complete = req.body().is_end_stream();
        let busy = requests.request_started(complete);
        let mut req = req.map(|body| {
            Body::new(ArrivingBody {
                inner: body,
                // A body already complete (none at all, mostly) is not waited for.
                clock: (!complete).then(|| requests.clone()),
            })
        });
        req.extensions_mut().insert(ConnectInfo(peer));
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

/// File descriptors kept for everything but client connections: the stores' pools,
/// the audit log, the SQLite files and their journals.
const RESERVED_FILES: u64 = 128;

/// The connection cap that the process's open-file limit allows: the soft limit is
/// raised to the hard one first (as a server may), and `wanted` lowered, with a
/// warning, when even that leaves no room for it. Past the limit every accept would
/// fail, and so would the stores' own connections and files.
pub fn fit_to_open_files(wanted: usize) -> usize {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct passed.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return wanted;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                limit = raised;
            }
        }
        let room = limit.rlim_cur.saturating_sub(RESERVED_FILES).max(1);
        if (wanted as u64) > room {
            tracing::warn!(
                max_connections = wanted,
                open_file_limit = limit.rlim_cur,
                using = room,
                "PASSPORT_MAX_CONNECTIONS is beyond what the open-file limit allows; raise `ulimit -n` (LimitNOFILE= under systemd)"
            );
            return room as usize;
        }
    }
    wanted
}

/// A failed accept is the listener's problem, not a client's: most often out of file
/// descriptors, which a pause lets other connections give back.
async fn accept_failed(e: io::Error) {
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Arriving,
    Busy,
    Idle,
}

/// The phase of one connection and since when it is in it. One lock for all of
/// it: on HTTP/2 several requests of a connection start and end on several threads.
struct Phases {
    state: Mutex<State>,
    /// Wakes the watchdog when a phase with an earlier deadline begins.
    changed: Notify,
}

struct State {
    phase: Phase,
    since: Instant,
    /// Requests being served.
    in_flight: usize,
    /// Of those, the ones whose body has not all arrived.
    arriving_bodies: usize,
}

impl Phases {
    fn new() -> Phases {
        Phases {
            state: Mutex::new(State {
                phase: Phase::Arriving,
                since: Instant::now(),
                in_flight: 0,
                arriving_bodies: 0,
            }),
            changed: Notify::new(),
        }
    }

    /// Bytes arrived: after an idle spell they start a request.
    fn bytes_read(&self) {
        let mut state = self.state.lock();
        if state.phase == Phase::Idle {
            state.phase = Phase::Arriving;
            state.since = Instant::now();
            drop(state);
            self.changed.notify_one();
        }
    }

    /// A request's headers are in; it is still arriving until its body is.
    fn request_started(self: &Arc<Self>, body_complete: bool) -> Served {
        let mut state = self.state.lock();
        state.in_flight += 1;
        if !body_complete {
            state.arriving_bodies += 1;
        }
        if state.phase == Phase::Idle {
            // A request without a byte read first (HTTP/2 data already buffered).
            state.since = Instant::now();
        }
        if state.settle() {
            drop(state);
            self.changed.notify_one();
        }
        Served(self.clone())
    }

    /// A request's body has all arrived, or is no longer being read.
    fn body_done(&self) {
        let mut state = self.state.lock();
        state.arriving_bodies = state.arriving_bodies.saturating_sub(1);
        // Fewer bodies arriving never starts a deadline.
        let _ = state.settle();
    }

    /// Completes when the connection is past the deadline of its phase, naming it.
    async fn overdue(&self, limits: Limits) -> &'static str {
        loop {
            let (phase, since) = {
                let state = self.state.lock();
                (state.phase, state.since)
            };
            let (limit, name) = match phase {
                Phase::Arriving => (Some(limits.header_timeout), "arriving"),
                Phase::Idle => (Some(limits.idle_timeout), "idle"),
                Phase::Busy => (None, "busy"),
            };
            // No deadline while serving: wait for the phase to change.
            let wait = match limit {
                Some(limit) => {
                    let deadline = since + limit;
                    let now = Instant::now();
                    if now >= deadline {
                        return name;
                    }
                    deadline - now
                }
                None => limits.idle_timeout,
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.changed.notified() => {}
            }
        }
    }
}

impl State {
    /// The phase that the counts call for, once a request starts or ends or a body
    /// is in. Entering idle (or busy) restarts the clock; arriving keeps the time
    /// the request began, unless it follows a busy spell (another request of an
    /// HTTP/2 connection), when it begins now. True when that happened: a deadline
    /// has begun that the watchdog, waiting out the busy spell, must be woken for.
    fn settle(&mut self) -> bool {
        let phase = if self.in_flight == 0 {
            match self.phase {
                // Bytes of the next request may already have come in.
                Phase::Arriving => Phase::Arriving,
                _ => Phase::Idle,
            }
        } else if self.arriving_bodies > 0 {
            Phase::Arriving
        } else {
            Phase::Busy
        };
        if phase == self.phase {
            return false;
        }
        let after_busy = self.phase == Phase::Busy;
        if phase != Phase::Arriving || after_busy {
            self.since = Instant::now();
        }
        self.phase = phase;
        phase == Phase::Arriving && after_busy
    }
}

/// Held while a request is served.
struct Served(Arc<Phases>);

impl Drop for Served {
    fn drop(&mut self) {
        let mut state = self.0.state.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        // Fewer requests never starts a deadline sooner than the watchdog expects.
        let _ = state.settle();
    }
}

/// A request's body, telling the watchdog when it has all arrived (or is dropped
/// unread: a handler that does not read it is not waiting for it).
struct ArrivingBody {
    inner: Incoming,
    /// Taken once the watchdog has been told.
    clock: Option<Arc<Phases>>,
}

impl ArrivingBody {
    fn done(&mut self) {
        if let Some(clock) = self.clock.take() {
            clock.body_done();
        }
    }
}

impl hyper::body::Body for ArrivingBody {
    type Data = hyper::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) || self.inner.is_end_stream() {
            self.done();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ArrivingBody {
    fn drop(&mut self) {
        self.done();
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
    async fn arriving_and_idle_have_their_own_deadlines() {
        let phases = Arc::new(Phases::new());
        let started = Instant::now();
        assert_eq!(phases.overdue(limits()).await, "arriving");
        assert!(started.elapsed() >= Duration::from_millis(50));

        drop(phases.request_started(true));
        let started = Instant::now();
        assert_eq!(phases.overdue(limits()).await, "idle");
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn a_request_being_served_has_no_deadline() {
        let phases = Arc::new(Phases::new());
        let served = phases.request_started(true);
        let overdue = tokio::time::timeout(Duration::from_millis(500), phases.overdue(limits())).await;
        assert!(overdue.is_err(), "a busy connection was declared overdue");
        drop(served);
        // A byte after the idle spell starts the arrival clock again.
        phases.bytes_read();
        assert_eq!(phases.overdue(limits()).await, "arriving");
    }

    #[tokio::test]
    async fn a_body_still_arriving_keeps_the_arrival_deadline() {
        let phases = Arc::new(Phases::new());
        let _served = phases.request_started(false);
        assert_eq!(phases.overdue(limits()).await, "arriving");
        // Once it is in, the request is served without a deadline.
        phases.body_done();
        let overdue = tokio::time::timeout(Duration::from_millis(300), phases.overdue(limits())).await;
        assert!(overdue.is_err(), "a served request was declared overdue");
    }

    #[tokio::test]
    async fn requests_ending_out_of_order_leave_the_connection_busy_while_one_is_served() {
        // HTTP/2: two requests at once; the first to end does not make it idle.
        let phases = Arc::new(Phases::new());
        let first = phases.request_started(true);
        let second = phases.request_started(true);
        drop(first);
        assert_eq!(phases.state.lock().phase, Phase::Busy);
        drop(second);
        assert_eq!(phases.state.lock().phase, Phase::Idle);
    }

    #[tokio::test]
    async fn a_body_arriving_beside_a_long_request_gets_its_own_full_time() {
        // HTTP/2: one request served for longer than the header timeout, then a
        // second one whose body is still coming; its time starts when it does.
        let phases = Arc::new(Phases::new());
        let _long = phases.request_started(true);
        tokio::time::sleep(Duration::from_millis(80)).await;
        let started = Instant::now();
        let _arriving = phases.request_started(false);
        assert_eq!(phases.overdue(limits()).await, "arriving");
        assert!(
            started.elapsed() >= Duration::from_millis(50),
            "{:?}",
            started.elapsed()
        );
    }
}
