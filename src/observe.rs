//! The metrics Passport keeps (SPEC §13), in one place: every name, label and help
//! text, and the functions the code records them with.
//!
//! One registry per process (`prometheus-client`), made by [`install`]. Until it is
//! made (or when metrics are off: `PASSPORT_METRICS_ALLOW=none`) every call here
//! returns at once, so the code records unconditionally.
//!
//! Recording sits on every request's path, identify's included: each thread keeps
//! the handles it has used by label set, so a call after the first is a hash of a
//! few short strings and an atomic add (a counter) or a short uncontended lock (a
//! histogram), with no allocation.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::AtomicI64;
use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Request latencies: identify answers in well under a millisecond, a login takes a
/// password hash (tens of milliseconds), a store outage up to its timeout.
const REQUEST_BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// One Argon2id hash at the parameters in `passwords.rs` takes 10–100 ms.
const HASH_BUCKETS: [f64; 10] = [0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route's pattern, never the path: one series per route.
    route: String,
    method: &'static str,
    status: u16,
}

/// Labels whose values are all the code's own words (outcomes, servers, stores).
type Words = Vec<(&'static str, &'static str)>;

/// Every metric, and the registry that writes them out.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
    logins: Family<Words, Counter>,
    identify: Family<Words, Counter>,
    hooks: Family<Words, Counter>,
    rate_limited: Family<Words, Counter>,
    store_errors: Family<Words, Counter>,
    hash_duration: Histogram,
    hash_queue: Gauge<i64, AtomicI64>,
    /// Present only once the embedded store has told its count: absent with Redis.
    sessions_live: Family<Words, Gauge<i64, AtomicI64>>,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Makes the process's metrics (once; later calls return the same).
pub fn install() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            requests: Family::new_with_constructor(|| Histogram::new(REQUEST_BUCKETS)),
            logins: Family::default(),
            identify: Family::default(),
            hooks: Family::default(),
            rate_limited: Family::default(),
            store_errors: Family::default(),
            hash_duration: Histogram::new(HASH_BUCKETS),
            hash_queue: Gauge::default(),
            sessions_live: Family::default(),
        };
        let mut registry = Registry::with_prefix("passport");
        registry.register_with_unit(
            "http_request_duration",
            "HTTP requests by route (the route's pattern), method and status, and how long they took",
            Unit::Seconds,
            m.requests.clone(),
        );
        registry.register("logins", "Logins by outcome: ok, or the error code", m.logins.clone());
        registry.register(
            "identify",
            "Identify decisions by outcome: ok, or the error code",
            m.identify.clone(),
        );
        registry.register(
            "hook_decisions",
            "Media-server hook and forward-auth decisions by server, call and outcome (allow, or the error code)",
            m.hooks.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit, by limit",
            m.rate_limited.clone(),
        );
        registry.register_with_unit(
            "password_hash_duration",
            "Time to hash or verify one password",
            Unit::Seconds,
            m.hash_duration.clone(),
        );
        registry.register(
            "password_hash_queue",
            "Password hashes running or waiting for a thread",
            m.hash_queue.clone(),
        );
        registry.register(
            "store_errors",
            "Store calls that failed, by store",
            m.store_errors.clone(),
        );
        registry.register(
            "sessions_live",
            "Sessions the embedded session store holds (expired ones until they are swept); absent with Redis",
            m.sessions_live.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Everything, in the OpenMetrics text format (which Prometheus reads).
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}

/// Every metric as a registry holding one series of each writes it out (a family
/// with no series writes nothing): names, types, units, help texts and label
/// names, the label values `…`. The reference page is made from it.
pub fn catalogue() -> String {
    let m = Metrics::new();
    for family in Counted::ALL {
        let labels: Words = family
            .keys()
            .into_iter()
            .filter(|k| !k.is_empty())
            .map(|k| (k, "…"))
            .collect();
        let _ = family.counters(&m).get_or_create(&labels);
    }
    let _ = m.requests.get_or_create(&RequestLabels {
        route: "…".to_owned(),
        method: "…",
        status: 200,
    });
    let _ = m.sessions_live.get_or_create(&Vec::new());
    m.render()
}

/// Which family of counters a call is for.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum Counted {
    Logins,
    Identify,
    Hooks,
    RateLimited,
    StoreErrors,
}

impl Counted {
    const ALL: [Counted; 5] = [
        Counted::Logins,
        Counted::Identify,
        Counted::Hooks,
        Counted::RateLimited,
        Counted::StoreErrors,
    ];

    /// The names of the family's labels (unused places `""`).
    fn keys(self) -> [&'static str; 3] {
        match self {
            Counted::Logins | Counted::Identify => ["outcome", "", ""],
            Counted::Hooks => ["server", "call", "outcome"],
            Counted::RateLimited => ["limit", "", ""],
            Counted::StoreErrors => ["store", "", ""],
        }
    }

    fn counters(self, m: &Metrics) -> &Family<Words, Counter> {
        match self {
            Counted::Logins => &m.logins,
            Counted::Identify => &m.identify,
            Counted::Hooks => &m.hooks,
            Counted::RateLimited => &m.rate_limited,
            Counted::StoreErrors => &m.store_errors,
        }
    }
}

/// A thread's request histograms: by route pattern, then by method and status.
type RequestHandles = HashMap<String, HashMap<(&'static str, u16), Histogram>>;

thread_local! {
    static COUNTERS: RefCell<HashMap<(Counted, [&'static str; 3]), Counter>> = RefCell::new(HashMap::new());
    static REQUESTS: RefCell<RequestHandles> = RefCell::new(HashMap::new());
}

/// Adds one to a counter of `family`, its labels' values in the order of its keys.
fn count(family: Counted, values: [&'static str; 3]) {
    let Some(m) = METRICS.get() else { return };
    COUNTERS.with_borrow_mut(|cache| {
        cache
            .entry((family, values))
            .or_insert_with(|| {
                let labels: Words = family
                    .keys()
                    .into_iter()
                    .zip(values)
                    .filter(|(k, _)| !k.is_empty())
                    .collect();
                family.counters(m).get_or_create(&labels).clone()
            })
            .inc();
    });
}

pub fn request(route: &str, method: &'static str, status: u16, took: Duration) {
    let Some(m) = METRICS.get() else { return };
    REQUESTS.with_borrow_mut(|cache| {
        if !cache.contains_key(route) {
            cache.insert(route.to_owned(), HashMap::new());
        }
        let by_route = cache.get_mut(route).expect("just inserted");
        by_route
            .entry((method, status))
            .or_insert_with(|| {
                let labels = RequestLabels {
                    route: route.to_owned(),
                    method,
                    status,
                };
                m.requests.get_or_create(&labels).clone()
            })
            .observe(took.as_secs_f64());
    });
}

pub fn login(outcome: &'static str) {
    count(Counted::Logins, [outcome, "", ""]);
}

pub fn identify(outcome: &'static str) {
    count(Counted::Identify, [outcome, "", ""]);
}

pub fn hook(server: &'static str, call: &'static str, outcome: &'static str) {
    count(Counted::Hooks, [server, call, outcome]);
}

pub fn rate_limited(limit: &'static str) {
    count(Counted::RateLimited, [limit, "", ""]);
}

pub fn store_error(store: &'static str) {
    count(Counted::StoreErrors, [store, "", ""]);
}

pub fn password_hash(took: Duration) {
    if let Some(m) = METRICS.get() {
        m.hash_duration.observe(took.as_secs_f64());
    }
}

/// A hash was admitted (`+1`) or finished (`-1`).
pub fn password_hash_queue(delta: i64) {
    if let Some(m) = METRICS.get() {
        m.hash_queue.inc_by(delta);
    }
}

pub fn sessions_live(count: usize) {
    if let Some(m) = METRICS.get() {
        m.sessions_live.get_or_create(&Vec::new()).set(count as i64);
    }
}
