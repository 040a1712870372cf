//! The value types of the settings and the parsers that read them from text.
//!
//! A parser gets the raw text a flag, a variable or a file gave and answers the
//! typed value or the problem in words; `ConfigError` adds which setting it was.

use std::fmt;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;

use ipnet::IpNet;

use crate::i18n::Lang;

/// RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
pub const MIN_SECRET_LEN: usize = 32;

/// The most leeway SPEC §4 allows: a larger one would make `exp` meaningless.
pub const MAX_LEEWAY: u64 = 300;

/// Longest lifetime accepted (ten years): far beyond any sane setting, far below
/// where `now + ttl` could overflow.
pub const MAX_TTL: u64 = 10 * 366 * 86_400;

/// What to do when a login finds `max_sessions` already live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    EvictOldest,
    Reject,
}

/// A rate limit: at most `count` per `window` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub window: i64,
}

impl FromStr for RateLimit {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (count, window) = s.trim().split_once('/').ok_or(())?;
        let count: u32 = count.trim().parse().map_err(|_| ())?;
        let window: i64 = window.trim().parse().map_err(|_| ())?;
        if count == 0 || !(1..=MAX_TTL as i64).contains(&window) {
            return Err(());
        }
        Ok(RateLimit { count, window })
    }
}

/// A signing secret given inline; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the HS256 signing secret comes from.
#[derive(Clone)]
pub enum SecretSource {
    /// `PASSPORT_SECRET_KEY`: its UTF-8 bytes are the key.
    Inline(Vec<u8>),
    /// `PASSPORT_SECRET_KEY_FILE`: the file's bytes, less one trailing newline.
    File(PathBuf),
    /// Neither given: generated once and kept as `secret.key` in the data directory.
    Generated,
}

impl fmt::Debug for SecretSource {
    // The secret itself never reaches a log or a Debug print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Inline(_) => f.write_str("Inline(<redacted>)"),
            SecretSource::File(p) => write!(f, "File({})", p.display()),
            SecretSource::Generated => f.write_str("Generated"),
        }
    }
}

/// A connection URL whose `Debug`/`Display` hide the password.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreUrl(String);

impl StoreUrl {
    pub fn new(url: String) -> StoreUrl {
        StoreUrl(url)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // scheme://user:password@host → scheme://user:***@host
        let s = &self.0;
        match (s.find("://"), s.rfind('@')) {
            (Some(start), Some(at)) if at > start => {
                let creds = &s[start + 3..at];
                match creds.find(':') {
                    Some(colon) => write!(f, "{}{}:***{}", &s[..start + 3], &creds[..colon], &s[at..]),
                    // `scheme://secret@host`: a password alone (Sentinel, Redis).
                    None => write!(f, "{}***{}", &s[..start + 3], &s[at..]),
                }
            }
            _ => f.write_str(s),
        }
    }
}

/// What a parser answers: the value, or what is wrong with the text.
pub type Parsed<T> = Result<T, String>;

/// Any `FromStr` value, surrounding blanks ignored; `what` says what was expected.
pub fn parsed<T: FromStr>(what: &'static str) -> impl Fn(&str) -> Parsed<T> {
    move |raw| raw.trim().parse().map_err(|_| format!("expected {what}, got {raw:?}"))
}

/// An integer within `range`; `unit` follows the bounds in the message.
pub fn number<T>(what: &'static str, range: RangeInclusive<T>, unit: &'static str) -> impl Fn(&str) -> Parsed<T>
where
    T: FromStr + PartialOrd + fmt::Display + Bounded,
{
    move |raw| {
        let v: T = parsed(what)(raw)?;
        if range.contains(&v) {
            Ok(v)
        } else if *range.end() == T::MAX {
            Err(format!("must be at least {}{unit}", range.start()))
        } else {
            Err(format!("must be between {} and {}{unit}", range.start(), range.end()))
        }
    }
}

/// The largest value of an integer type, so that an open range reads "at least".
pub trait Bounded {
    const MAX: Self;
}

impl Bounded for u32 {
    const MAX: u32 = u32::MAX;
}
impl Bounded for u64 {
    const MAX: u64 = u64::MAX;
}
impl Bounded for usize {
    const MAX: usize = usize::MAX;
}

/// Lifetimes: whole seconds from 1 to ten years.
pub fn seconds(raw: &str) -> Parsed<u64> {
    number("whole seconds", 1..=MAX_TTL, " seconds")(raw)
}

/// One of a few words.
pub fn one_of<T: Copy>(choices: &'static [(&'static str, T)]) -> impl Fn(&str) -> Parsed<T> {
    move |raw| {
        let word = raw.trim();
        choices
            .iter()
            .find(|(name, _)| *name == word)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
                format!("expected {}, got {word:?}", names.join(" or "))
            })
    }
}

pub const OVERFLOWS: &[(&str, Overflow)] = &[("evict_oldest", Overflow::EvictOldest), ("reject", Overflow::Reject)];
pub const LOG_FORMATS: &[(&str, LogFormat)] = &[("text", LogFormat::Text), ("json", LogFormat::Json)];
pub const LANGS: &[(&str, Lang)] = &[("en", Lang::En), ("zh", Lang::Zh)];

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// For people: one line of text per event.
    Text,
    /// For log shippers: one JSON object per line.
    Json,
}

/// The text as given.
pub fn verbatim(raw: &str) -> Parsed<String> {
    Ok(raw.to_owned())
}

/// The text as given, which must not be empty.
pub fn non_empty(raw: &str) -> Parsed<String> {
    if raw.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(raw.to_owned())
}

/// A path; empty means none.
pub fn optional_path(raw: &str) -> Parsed<Option<PathBuf>> {
    Ok((!raw.is_empty()).then(|| PathBuf::from(raw)))
}

pub fn database_url(raw: &str) -> Parsed<StoreUrl> {
    if SqlKind::of(raw).is_none() {
        return Err("must start with sqlite:, postgres:// or mysql://".into());
    }
    Ok(StoreUrl(raw.to_owned()))
}

/// The kind of SQL database a URL names: the one place its scheme is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqlKind {
    Sqlite,
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

impl SqlKind {
    pub fn of(url: &str) -> Option<SqlKind> {
        if url.starts_with("sqlite:") {
            Some(SqlKind::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(SqlKind::Postgres)
        } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            Some(SqlKind::MySql)
        } else {
            None
        }
    }
}

/// A Redis URL, several separated by commas (a cluster); blank means none.
pub fn redis_url(raw: &str) -> Parsed<Option<StoreUrl>> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    RedisTarget::parse(raw)?;
    Ok(Some(StoreUrl(raw.to_owned())))
}

/// The Redis a `PASSPORT_REDIS_URL` names: the one place its forms are read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisTarget {
    /// `redis://host:port/db` or `rediss://…`: one server.
    Node(String),
    /// The seed nodes of a Redis Cluster, each as a `redis://` or `rediss://` URL:
    /// from `redis+cluster://[user:password@]h1:p1,h2:p2,…` (the credentials hold
    /// for every node) or from several URLs separated by commas.
    Cluster(Vec<String>),
    /// `redis+sentinel://[user:password@]h1:p1,h2:p2/<service>[/<db>]`: the
    /// sentinels (as `redis://` URLs) that name the primary of `service`; the
    /// credentials and database are the data nodes'.
    Sentinel {
        sentinels: Vec<String>,
        service: String,
        username: Option<String>,
        password: Option<String>,
        db: i64,
    },
}

const REDIS_FORMS: &str = "redis://host:port, rediss://host:port, several of those separated by commas, \
                           redis+cluster://host:port,host:port or redis+sentinel://host:port,host:port/service";

impl RedisTarget {
    pub fn parse(raw: &str) -> Result<RedisTarget, String> {
        let raw = raw.trim();
        let bad = || format!("expected {REDIS_FORMS}");
        let node = |url: &str| {
            let url = url.trim();
            let rest = url.strip_prefix("redis://").or_else(|| url.strip_prefix("rediss://"));
            match rest {
                Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(url.to_owned()),
                _ => Err(bad()),
            }
        };
        if let Some(rest) = raw.strip_prefix("redis+sentinel://") {
            let (auth, rest) = match rest.rsplit_once('@') {
                Some((auth, rest)) => (Some(auth), rest),
                None => (None, rest),
            };
            let (hosts, path) = rest.split_once('/').ok_or_else(bad)?;
            let (service, db) = match path.split_once('/') {
                Some((service, db)) => (service, db.parse::<i64>().map_err(|_| bad())?),
                None => (path, 0),
            };
            if service.is_empty() {
                return Err(bad());
            }
            let sentinels = hosts
                .split(',')
                .map(|host| node(&format!("redis://{}", host.trim())))
                .collect::<Result<Vec<_>, _>>()?;
            let (username, password) = match auth.map(|a| a.split_once(':')) {
                Some(Some((user, password))) => {
                    ((!user.is_empty()).then(|| user.to_owned()), Some(password.to_owned()))
                }
                Some(None) => (None, auth.map(str::to_owned)),
                None => (None, None),
            };
            return Ok(RedisTarget::Sentinel {
                sentinels,
                service: service.to_owned(),
                username,
                password,
                db,
            });
        }
        if let Some(rest) = raw.strip_prefix("redis+cluster://") {
            let (auth, hosts) = match rest.rsplit_once('@') {
                Some((auth, hosts)) => (format!("{auth}@"), hosts),
                None => (String::new(), rest),
            };
            let nodes = hosts
                .split(',')
                .map(|host| node(&format!("redis://{auth}{}", host.trim())))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(RedisTarget::Cluster(nodes));
        }
        let urls = raw.split(',').map(node).collect::<Result<Vec<_>, _>>()?;
        match <[String; 1]>::try_from(urls) {
            Ok([one]) => Ok(RedisTarget::Node(one)),
            Err(urls) => Ok(RedisTarget::Cluster(urls)),
        }
    }
}

pub fn secret(raw: &str) -> Parsed<Option<Secret>> {
    if raw.len() < MIN_SECRET_LEN {
        return Err(format!("must be at least {MIN_SECRET_LEN} bytes"));
    }
    Ok(Some(Secret(raw.as_bytes().to_vec())))
}

/// The shortest hook secret accepted.
pub const MIN_HOOK_SECRET_LEN: usize = 16;

pub fn hook_secret(raw: &str) -> Parsed<Option<Secret>> {
    if raw.len() < MIN_HOOK_SECRET_LEN {
        return Err(format!("must be at least {MIN_HOOK_SECRET_LEN} bytes"));
    }
    // It travels in a URL's query as it is: nothing that would need escaping.
    if !raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
        return Err("may hold only A-Z a-z 0-9 - . _ ~".into());
    }
    Ok(Some(Secret(raw.as_bytes().to_vec())))
}

/// An `rtmp://` or `rtmps://` URL with a host, shown as it is on the pages.
pub fn publish_url(raw: &str) -> Parsed<Option<String>> {
    let raw = raw.trim();
    let rest = raw
        .strip_prefix("rtmp://")
        .or_else(|| raw.strip_prefix("rtmps://"))
        .ok_or_else(|| format!("expected an rtmp:// or rtmps:// URL, got {raw:?}"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("expected a host after the scheme, got {raw:?}"));
    }
    if raw.len() > 512 || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must be a URL of at most 512 characters without spaces".into());
    }
    Ok(Some(raw.to_owned()))
}

/// The loopback networks, IPv4 and IPv6.
pub fn loopback() -> Vec<IpNet> {
    vec![
        "127.0.0.0/8".parse().expect("a CIDR"),
        "::1/128".parse().expect("a CIDR"),
    ]
}

/// CIDRs separated by commas; a bare address means a single host; `none` (or
/// nothing) means no address at all.
pub fn networks(raw: &str) -> Parsed<Vec<IpNet>> {
    let mut nets = Vec::new();
    if raw.trim() == "none" {
        return Ok(nets);
    }
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let net = part
            .parse::<IpNet>()
            .or_else(|_| part.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| format!("{part:?} is not a CIDR like 10.0.0.0/8"))?;
        nets.push(net);
    }
    Ok(nets)
}

pub fn region(raw: &str) -> Parsed<phonenumber::country::Id> {
    let region = raw.trim().to_ascii_uppercase();
    phonenumber::country::Id::from_str(&region)
        .map_err(|_| format!("{region:?} is not an ISO 3166 region code like CN"))
}

/// The number of CPUs this process may use: the default of thread counts.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

/// A value written the way an operator would give it: how the settings' reference
/// shows each default, in a form its parser reads back to the same value (a config
/// test checks that for every setting).
pub trait Shown {
    fn shown(&self) -> String;
}

macro_rules! shown_by_display {
    ($($ty:ty),+) => { $( impl Shown for $ty {
        fn shown(&self) -> String {
            self.to_string()
        }
    } )+ };
}
shown_by_display!(String, u32, u64, usize, bool, std::net::SocketAddr, StoreUrl);

impl Shown for PathBuf {
    fn shown(&self) -> String {
        self.display().to_string()
    }
}

impl<T: Shown> Shown for Option<T> {
    fn shown(&self) -> String {
        match self {
            Some(value) => value.shown(),
            None => "unset".to_owned(),
        }
    }
}

impl Shown for Secret {
    fn shown(&self) -> String {
        "<redacted>".to_owned()
    }
}

impl Shown for RateLimit {
    fn shown(&self) -> String {
        format!("{}/{}", self.count, self.window)
    }
}

impl Shown for Vec<IpNet> {
    fn shown(&self) -> String {
        if self.is_empty() {
            return "none".to_owned();
        }
        self.iter().map(IpNet::to_string).collect::<Vec<_>>().join(",")
    }
}

impl Shown for phonenumber::country::Id {
    fn shown(&self) -> String {
        // The enum's variants are the ISO 3166 codes the parser takes.
        format!("{self:?}")
    }
}

/// The name a `one_of` table gives a choice.
fn choice_name<T: PartialEq>(choices: &[(&'static str, T)], value: &T) -> String {
    choices
        .iter()
        .find(|(_, v)| v == value)
        .map(|(name, _)| (*name).to_owned())
        .expect("every choice is in its table")
}

impl Shown for Overflow {
    fn shown(&self) -> String {
        choice_name(OVERFLOWS, self)
    }
}

impl Shown for LogFormat {
    fn shown(&self) -> String {
        choice_name(LOG_FORMATS, self)
    }
}

impl Shown for Lang {
    fn shown(&self) -> String {
        choice_name(LANGS, self)
    }
}
