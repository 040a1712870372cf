//! One typed configuration, read once at startup.
//!
//! Every setting has a key (`max_sessions`), an environment variable
//! (`PASSPORT_MAX_SESSIONS`) and a flag (`--max-sessions`); precedence is
//! flag > env > TOML file > default. Clap merges flag and env for us; the file
//! fills what both left empty. Each value is then parsed here, in one place, so
//! that a bad value stops startup with a message naming the setting.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ipnet::IpNet;

use crate::i18n::Lang;

/// Every setting key the service understands, in the order `--help` shows them.
pub const KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database_url",
    "redis_url",
    "redis_prefix",
    "secret_key",
    "secret_key_file",
    "secret_keys_dir",
    "issuer",
    "access_ttl",
    "refresh_ttl",
    "leeway",
    "max_sessions",
    "session_overflow",
    "refresh_grace",
    "rate_login_account",
    "rate_login_ip",
    "rate_register_ip",
    "trusted_proxies",
    "password_min_length",
    "audit_log",
    "default_region",
    "default_lang",
    "hash_workers",
    "hash_queue",
    "pin_workers",
    "redis_session_cache",
];

/// The most leeway SPEC §4 allows: a larger one would make `exp` meaningless.
pub const MAX_LEEWAY: u64 = 300;

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

impl std::str::FromStr for RateLimit {
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
                    None => f.write_str(s),
                }
            }
            _ => f.write_str(s),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: StoreUrl,
    pub redis_url: Option<StoreUrl>,
    pub redis_prefix: String,
    pub secret: SecretSource,
    /// A directory of `<kid>.key` files: the key ring (see `tokens.rs`).
    pub secret_keys_dir: Option<PathBuf>,
    pub issuer: String,
    pub access_ttl: u64,
    pub refresh_ttl: u64,
    pub leeway: u64,
    pub max_sessions: u32,
    pub session_overflow: Overflow,
    pub refresh_grace: u64,
    /// Failed logins per normalized mobile (known or not).
    pub rate_login_account: RateLimit,
    /// Login attempts (any outcome) per client IP.
    pub rate_login_ip: RateLimit,
    /// Registrations per client IP.
    pub rate_register_ip: RateLimit,
    pub trusted_proxies: Vec<IpNet>,
    pub password_min_length: usize,
    pub audit_log: PathBuf,
    pub default_region: phonenumber::country::Id,
    pub default_lang: Lang,
    /// Threads that hash passwords at once (default: the number of cores).
    pub hash_workers: usize,
    /// Hash requests allowed to wait for a worker; beyond that, 503 `busy`.
    pub hash_queue: usize,
    /// Pin the runtime's workers one to a CPU when there is one CPU per worker
    /// (`scheduling`).
    pub pin_workers: bool,
    /// On a single Redis node, keep sessions found valid in memory, kept true by
    /// Redis's invalidation messages (`store::redis_tracking`).
    pub redis_session_cache: bool,
}

/// A setting that could not be used; the message names it and says why.
#[derive(Debug, thiserror::Error)]
#[error("bad setting {key} ({env} / --{flag}): {problem}")]
pub struct ConfigError {
    pub key: String,
    pub env: String,
    pub flag: String,
    pub problem: String,
}

impl ConfigError {
    fn new(key: &str, problem: impl Into<String>) -> Self {
        ConfigError {
            key: key.to_owned(),
            env: env_name(key),
            flag: key.replace('_', "-"),
            problem: problem.into(),
        }
    }
}

pub fn env_name(key: &str) -> String {
    format!("PASSPORT_{}", key.to_ascii_uppercase())
}

/// Raw values by key, before parsing: what flags/env gave, then a file, layered.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    values: BTreeMap<String, String>,
}

impl Sources {
    /// Values that win over everything added later (flags and env, merged by clap).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let mut s = Sources::default();
        for (k, v) in pairs {
            s.values.insert(k.into(), v.into());
        }
        s
    }

    /// Fills every key not already set from a TOML file. Unknown keys are refused so
    /// that a typo does not silently fall back to a default.
    pub fn with_file(mut self, path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("config", format!("cannot read {}: {e}", path.display())))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e| ConfigError::new("config", format!("{} is not valid TOML: {e}", path.display())))?;
        for (key, value) in table {
            if !KEYS.contains(&key.as_str()) {
                return Err(ConfigError::new(&key, format!("unknown key in {}", path.display())));
            }
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => {
                    let mut parts = Vec::with_capacity(items.len());
                    for item in items {
                        match item {
                            toml::Value::String(s) => parts.push(s),
                            other => {
                                return Err(ConfigError::new(
                                    &key,
                                    format!("expected strings in the list, got {other}"),
                                ))
                            }
                        }
                    }
                    parts.join(",")
                }
                other => return Err(ConfigError::new(&key, format!("unsupported value {other}"))),
            };
            self.values.entry(key).or_insert(text);
        }
        Ok(self)
    }

    fn get(&self, key: &str) -> Option<&str> {
        debug_assert!(KEYS.contains(&key), "unknown key {key}");
        self.values.get(key).map(String::as_str)
    }

    fn parse<T: FromStr>(&self, key: &str, default: T, what: &str) -> Result<T, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|_| ConfigError::new(key, format!("expected {what}, got {raw:?}"))),
        }
    }
}

impl Config {
    /// Parses and checks every setting. The first bad one is reported.
    pub fn from_sources(src: &Sources) -> Result<Config, ConfigError> {
        let listen = src.parse(
            "listen",
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            "an address like 127.0.0.1:8080",
        )?;
        let data_dir = PathBuf::from(src.get("data_dir").unwrap_or("./data"));
        if data_dir.as_os_str().is_empty() {
            return Err(ConfigError::new("data_dir", "must not be empty"));
        }
        let database_url = match src.get("database_url") {
            Some(url) => {
                if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err(ConfigError::new(
                        "database_url",
                        "must start with sqlite: or postgres://",
                    ));
                }
                StoreUrl(url.to_owned())
            }
            None => StoreUrl(format!("sqlite://{}", data_dir.join("passport.db").display())),
        };
        let redis_url = match src.get("redis_url") {
            None => None,
            Some(u) if u.trim().is_empty() => None,
            Some(u) => {
                if !u.split(',').all(|part| {
                    let p = part.trim();
                    p.starts_with("redis://") || p.starts_with("rediss://") || p.starts_with("redis+cluster://")
                }) {
                    return Err(ConfigError::new(
                        "redis_url",
                        "every URL must start with redis://, rediss:// or redis+cluster://",
                    ));
                }
                Some(StoreUrl(u.to_owned()))
            }
        };
        let redis_prefix = src.get("redis_prefix").unwrap_or("passport:").to_owned();

        let secret = match (src.get("secret_key"), src.get("secret_key_file")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "secret_key",
                    "give either PASSPORT_SECRET_KEY or PASSPORT_SECRET_KEY_FILE, not both",
                ))
            }
            (Some(key), None) => {
                if key.len() < crate::tokens::MIN_SECRET_LEN {
                    return Err(ConfigError::new(
                        "secret_key",
                        format!("must be at least {} bytes", crate::tokens::MIN_SECRET_LEN),
                    ));
                }
                SecretSource::Inline(key.as_bytes().to_vec())
            }
            (None, Some(path)) => SecretSource::File(PathBuf::from(path)),
            (None, None) => SecretSource::Generated,
        };

        let secret_keys_dir = src.get("secret_keys_dir").filter(|d| !d.is_empty()).map(PathBuf::from);

        let issuer = src.get("issuer").unwrap_or("passport").to_owned();
        if issuer.is_empty() {
            return Err(ConfigError::new("issuer", "must not be empty"));
        }
        let access_ttl = positive(src, "access_ttl", 86_400)?;
        let refresh_ttl = positive(src, "refresh_ttl", 2_592_000)?;
        let leeway = src.parse("leeway", 30u64, "whole seconds")?;
        if leeway > MAX_LEEWAY {
            return Err(ConfigError::new(
                "leeway",
                format!("must be between 0 and {MAX_LEEWAY} seconds"),
            ));
        }
        let max_sessions = src.parse("max_sessions", 1u32, "an integer of at least 1")?;
        if max_sessions == 0 {
            return Err(ConfigError::new("max_sessions", "must be at least 1"));
        }
        let session_overflow = match src.get("session_overflow").map(str::trim) {
            None | Some("evict_oldest") => Overflow::EvictOldest,
            Some("reject") => Overflow::Reject,
            Some(other) => {
                return Err(ConfigError::new(
                    "session_overflow",
                    format!("expected evict_oldest or reject, got {other:?}"),
                ))
            }
        };
        let refresh_grace = src.parse("refresh_grace", 10u64, "whole seconds")?;
        if refresh_grace > 300 {
            return Err(ConfigError::new("refresh_grace", "must be between 0 and 300 seconds"));
        }

        let limit = |key: &str, default: RateLimit| src.parse(key, default, "a limit like 10/900 (count/seconds)");
        let rate_login_account = limit("rate_login_account", RateLimit { count: 10, window: 900 })?;
        let rate_login_ip = limit("rate_login_ip", RateLimit { count: 100, window: 60 })?;
        let rate_register_ip = limit(
            "rate_register_ip",
            RateLimit {
                count: 20,
                window: 3600,
            },
        )?;

        let mut trusted_proxies = Vec::new();
        for part in src.get("trusted_proxies").unwrap_or("").split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            // A bare address means a single host.
            let net = part
                .parse::<IpNet>()
                .or_else(|_| part.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| ConfigError::new("trusted_proxies", format!("{part:?} is not a CIDR like 10.0.0.0/8")))?;
            trusted_proxies.push(net);
        }

        let password_min_length = src.parse("password_min_length", 8usize, "a number of characters")?;
        if password_min_length == 0 || password_min_length > 64 {
            // NIST SP 800-63B: verifiers must accept at least 64 characters, so a minimum
            // above that would refuse every password.
            return Err(ConfigError::new("password_min_length", "must be between 1 and 64"));
        }
        let audit_log = PathBuf::from(src.get("audit_log").unwrap_or("logs/user_action.log"));
        let region = src.get("default_region").unwrap_or("CN").trim().to_ascii_uppercase();
        let default_region = phonenumber::country::Id::from_str(&region).map_err(|_| {
            ConfigError::new(
                "default_region",
                format!("{region:?} is not an ISO 3166 region code like CN"),
            )
        })?;
        let default_lang = match src.get("default_lang").map(str::trim) {
            None | Some("en") => Lang::En,
            Some("zh") => Lang::Zh,
            Some(other) => {
                return Err(ConfigError::new(
                    "default_lang",
                    format!("expected en or zh, got {other:?}"),
                ))
            }
        };
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let hash_workers = src.parse("hash_workers", cores, "a number of threads")?;
        if hash_workers == 0 {
            return Err(ConfigError::new("hash_workers", "must be at least 1"));
        }
        let hash_queue = src.parse("hash_queue", 256usize, "a number of requests")?;
        let pin_workers = src.parse("pin_workers", true, "true or false")?;
        let redis_session_cache = src.parse("redis_session_cache", true, "true or false")?;

        Ok(Config {
            listen,
            data_dir,
            database_url,
            redis_url,
            redis_prefix,
            secret,
            secret_keys_dir,
            issuer,
            access_ttl,
            refresh_ttl,
            leeway,
            max_sessions,
            session_overflow,
            refresh_grace,
            rate_login_account,
            rate_login_ip,
            rate_register_ip,
            trusted_proxies,
            password_min_length,
            audit_log,
            default_region,
            default_lang,
            hash_workers,
            hash_queue,
            pin_workers,
            redis_session_cache,
        })
    }
}

/// Longest lifetime accepted (ten years): far beyond any sane setting, far below
/// where `now + ttl` could overflow.
const MAX_TTL: u64 = 10 * 366 * 86_400;

fn positive(src: &Sources, key: &str, default: u64) -> Result<u64, ConfigError> {
    let v = src.parse(key, default, "whole seconds")?;
    if v == 0 || v > MAX_TTL {
        return Err(ConfigError::new(
            key,
            format!("must be between 1 and {MAX_TTL} seconds"),
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_setting() {
        let c = Config::from_sources(&Sources::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url.expose(), "sqlite://./data/passport.db");
        assert_eq!(c.max_sessions, 1);
        assert_eq!(c.session_overflow, Overflow::EvictOldest);
        assert_eq!(c.leeway, 30);
        assert_eq!(c.default_region, phonenumber::country::Id::CN);
    }

    #[test]
    fn bad_values_name_the_setting() {
        for (k, v) in [
            ("max_sessions", "0"),
            ("rate_login_ip", "100"),
            ("rate_login_ip", "0/60"),
            ("access_ttl", "99999999999999"),
            ("max_sessions", "two"),
            ("leeway", "301"),
            ("session_overflow", "drop"),
            ("secret_key", "short"),
            ("default_region", "XX"),
            ("trusted_proxies", "10.0.0.0/99"),
            ("database_url", "mysql://x"),
        ] {
            let err = Config::from_sources(&Sources::from_pairs([(k, v)])).unwrap_err();
            assert_eq!(err.key, k);
            let text = err.to_string();
            assert!(text.contains(&env_name(k)), "{text}");
        }
    }

    #[test]
    fn file_fills_only_what_is_unset_and_refuses_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            "max_sessions = 3\nissuer = \"file\"\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
        )
        .unwrap();
        let c = Config::from_sources(&Sources::from_pairs([("issuer", "flag")]).with_file(&path).unwrap()).unwrap();
        assert_eq!(c.max_sessions, 3);
        assert_eq!(c.issuer, "flag");
        assert_eq!(c.trusted_proxies.len(), 1);

        std::fs::write(&path, "max_sesions = 3\n").unwrap();
        let err = Sources::default().with_file(&path).unwrap_err();
        assert_eq!(err.key, "max_sesions");
    }

    #[test]
    fn urls_hide_passwords() {
        let u = StoreUrl("postgres://app:hunter2@db:5432/x".into());
        assert_eq!(format!("{u:?}"), "postgres://app:***@db:5432/x");
    }
}
