//! `X-Request-Id`: the one a proxy in front set, or a new one; echoed on the
//! response and carried by every log line of the request (its span's field).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

use axum::http::{HeaderName, HeaderValue, Request};
use tower_http::request_id::{MakeRequestId, RequestId};

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest id taken from a client; a longer one is replaced by our own.
const MAX_GIVEN: usize = 128;

/// Ids unique across processes: a random prefix per process, then a counter.
#[derive(Clone, Copy, Default)]
pub struct NextRequestId;

static PREFIX: LazyLock<u32> = LazyLock::new(|| {
    let mut bytes = [0u8; 4];
    // Without randomness the ids are still unique within the process.
    let _ = getrandom::fill(&mut bytes);
    u32::from_le_bytes(bytes)
});
static COUNTER: AtomicU64 = AtomicU64::new(1);

impl MakeRequestId for NextRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:08x}-{n:x}", *PREFIX);
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// The id of a request whose `X-Request-Id` was set: kept when it is short and
/// printable, so that it can be written into logs as it is.
pub fn of<B>(req: &Request<B>) -> &str {
    req.headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| id.len() <= MAX_GIVEN)
        .unwrap_or("-")
}

/// Drops a client's id that is too long or not printable ASCII, so that a new one
/// is made in its place.
pub fn sanitize<B>(mut req: Request<B>) -> Request<B> {
    let bad = req
        .headers()
        .get(HEADER)
        .is_some_and(|v| v.len() > MAX_GIVEN || v.to_str().is_err() || v.is_empty());
    if bad {
        req.headers_mut().remove(HEADER);
    }
    req
}
