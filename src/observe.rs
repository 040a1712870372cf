//! The metrics Passport keeps (SPEC §13), in one place: every name, label and help
//! text, and the functions the code records them with.
//!
//! Recording goes through the `metrics` facade into the Prometheus recorder of
//! `metrics-exporter-prometheus`, installed once per process by [`install`]. Until
//! it is installed (or when metrics are off: `PASSPORT_METRICS_ALLOW=none`) every
//! call here is a no-op of a few instructions, so the code records unconditionally.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter, Histogram, Label, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const REQUEST_DURATION: &str = "passport_http_request_duration_seconds";
pub const LOGINS: &str = "passport_logins_total";
pub const IDENTIFY: &str = "passport_identify_total";
pub const HOOK_DECISIONS: &str = "passport_hook_decisions_total";
pub const RATE_LIMITED: &str = "passport_rate_limited_total";
pub const HASH_DURATION: &str = "passport_password_hash_duration_seconds";
pub const HASH_QUEUE: &str = "passport_password_hash_queue";
pub const STORE_ERRORS: &str = "passport_store_errors_total";
pub const SESSIONS_LIVE: &str = "passport_sessions_live";

/// Request latencies: identify answers in well under a millisecond, a login takes a
/// password hash (tens of milliseconds), a store outage up to its timeout.
const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// One Argon2id hash at the parameters in `passwords.rs` takes 10–100 ms.
const HASH_BUCKETS: &[f64] = &[0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0];

/// How often histogram samples are folded into their buckets.
const UPKEEP: Duration = Duration::from_secs(1);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder (once; later calls return the same handle) and
/// starts its upkeep.
pub fn install() -> PrometheusHandle {
    let handle = HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), REQUEST_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(HASH_DURATION.into()), HASH_BUCKETS))
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_ok() {
            describe();
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP);
                    upkeep.run_upkeep();
                })
                .expect("a thread for metrics upkeep");
        }
        handle
    });
    handle.clone()
}

fn describe() {
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "HTTP requests by route (the route's pattern), method and status, and how long they took"
    );
    describe_counter!(LOGINS, "Logins by outcome: ok, or the error code");
    describe_counter!(IDENTIFY, "Identify decisions by outcome: ok, or the error code");
    describe_counter!(
        HOOK_DECISIONS,
        "Media-server hook and forward-auth decisions by server, call and outcome (allow, or the error code)"
    );
    describe_counter!(RATE_LIMITED, "Requests refused by a rate limit, by limit");
    describe_histogram!(HASH_DURATION, Unit::Seconds, "Time to hash or verify one password");
    describe_gauge!(HASH_QUEUE, "Password hashes running or waiting for a thread");
    describe_counter!(STORE_ERRORS, "Store calls that failed, by store");
    describe_gauge!(
        SESSIONS_LIVE,
        "Sessions the embedded session store holds (expired ones until they are swept); absent with Redis"
    );
}

// Recording sits on every request's path, identify's included, so the handles are
// looked up once per thread and label set and kept: a later call is a hash of a few
// short strings and an atomic add, with no lock and no allocation. Handles are only
// made once the recorder is installed, so none is a no-op handle kept forever.
thread_local! {
    static COUNTERS: RefCell<HashMap<(&'static str, [&'static str; 3]), Counter>> = RefCell::new(HashMap::new());
    static REQUESTS: RefCell<HashMap<String, HashMap<(&'static str, u16), Histogram>>> = RefCell::new(HashMap::new());
}

fn installed() -> bool {
    HANDLE.get().is_some()
}

/// Adds one to counter `name` with up to three labels (unused ones `""`).
fn count(name: &'static str, keys: [&'static str; 3], values: [&'static str; 3]) {
    if !installed() {
        return;
    }
    COUNTERS.with_borrow_mut(|cache| {
        cache
            .entry((name, values))
            .or_insert_with(|| {
                let labels: Vec<Label> = keys
                    .iter()
                    .zip(values)
                    .filter(|(k, _)| !k.is_empty())
                    .map(|(k, v)| Label::from_static_parts(k, v))
                    .collect();
                counter!(name, labels)
            })
            .increment(1)
    });
}

pub fn request(route: &str, method: &'static str, status: u16, took: Duration) {
    if !installed() {
        return;
    }
    REQUESTS.with_borrow_mut(|cache| {
        if !cache.contains_key(route) {
            cache.insert(route.to_owned(), HashMap::new());
        }
        let by_route = cache.get_mut(route).expect("just inserted");
        by_route
            .entry((method, status))
            .or_insert_with(|| {
                histogram!(
                    REQUEST_DURATION,
                    "route" => route.to_owned(),
                    "method" => method,
                    "status" => status.to_string(),
                )
            })
            .record(took.as_secs_f64())
    });
}

pub fn login(outcome: &'static str) {
    count(LOGINS, ["outcome", "", ""], [outcome, "", ""]);
}

pub fn identify(outcome: &'static str) {
    count(IDENTIFY, ["outcome", "", ""], [outcome, "", ""]);
}

pub fn hook(server: &'static str, call: &'static str, outcome: &'static str) {
    count(HOOK_DECISIONS, ["server", "call", "outcome"], [server, call, outcome]);
}

pub fn rate_limited(limit: &'static str) {
    count(RATE_LIMITED, ["limit", "", ""], [limit, "", ""]);
}

pub fn store_error(store: &'static str) {
    count(STORE_ERRORS, ["store", "", ""], [store, "", ""]);
}

// The rest are rare (a password hash takes tens of milliseconds): the macros'
// own lookup is cheap enough.

pub fn password_hash(took: Duration) {
    histogram!(HASH_DURATION).record(took.as_secs_f64());
}

/// A hash was admitted (`+1`) or finished (`-1`).
pub fn password_hash_queue(delta: f64) {
    gauge!(HASH_QUEUE).increment(delta);
}

pub fn sessions_live(count: usize) {
    gauge!(SESSIONS_LIVE).set(count as f64);
}
