//! One typed configuration, read once at startup.
//!
//! Every setting is declared once, in the table of `settings!` below: its key,
//! type, default, parser (with its range check) and an example value. From that
//! one entry come the field of [`Config`], the key a TOML file may use, the flag
//! (`--max-sessions`) and environment variable (`PASSPORT_MAX_SESSIONS`) the
//! command line offers ([`SETTINGS`]), and the message that names all three when
//! a value is refused. Precedence is flag > env > file > default: the command line
//! merges flag and env, a file fills what both left empty, and the table's default
//! fills the rest.

mod values;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use crate::i18n::Lang;
pub use values::{
    LogFormat, Overflow, RateLimit, RedisTarget, Secret, SecretSource, SqlKind, StoreUrl, MAX_LEEWAY, MAX_TTL,
    MIN_SECRET_LEN,
};

/// What the command line and a file need to know of a setting.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    /// The file key and the field of `Config`, as in `max_sessions`.
    pub key: &'static str,
    pub help: &'static str,
    /// A valid value other than the default (the tests walk every setting with it).
    pub example: &'static str,
    /// A secret or a URL that may carry a password: `--help` does not show its value.
    pub hide_value: bool,
}

impl Setting {
    pub fn env(&self) -> String {
        env_name(self.key)
    }

    pub fn flag(&self) -> String {
        flag_name(self.key)
    }
}

/// `max_sessions` → `PASSPORT_MAX_SESSIONS`.
pub fn env_name(key: &str) -> String {
    format!("PASSPORT_{}", key.to_ascii_uppercase())
}

/// `max_sessions` → `max-sessions` (as in `--max-sessions`).
pub fn flag_name(key: &str) -> String {
    key.replace('_', "-")
}

macro_rules! settings {
    (@hidden) => { false };
    (@hidden secret) => { true };
    ($(
        $(#[doc = $doc:literal])+
        $key:ident: $ty:ty = $default:expr, $(shown $shown:literal,)? parse: $parse:expr,
            example: $example:literal $(, $hidden:ident)?;
    )+) => {
        /// Every setting, typed and checked.
        #[derive(Clone, Debug)]
        pub struct Config {
            $( $(#[doc = $doc])+ pub $key: $ty, )+
        }

        /// Every setting, in the order `--help` shows them.
        pub const SETTINGS: &[Setting] = &[
            $( Setting {
                key: stringify!($key),
                help: concat!($($doc),+),
                example: $example,
                hide_value: settings!(@hidden $($hidden)?),
            }, )+
        ];

        impl Config {
            /// Parses and checks every setting, in the table's order; the first bad
            /// one is reported. A default or a parser may use the settings above it.
            pub fn from_sources(src: &Sources) -> Result<Config, ConfigError> {
                $( let $key: $ty = src.value(stringify!($key), || $default, $parse)?; )+
                Ok(Config { $($key),+ })
            }

            /// The setting's value as an operator would write it; on the defaults,
            /// what the settings' reference shows. A default that depends on the
            /// machine declares its text instead (`shown "…"`).
            pub fn shown(&self, key: &str) -> Option<String> {
                match key {
                    $( stringify!($key) => Some(settings!(@shown self.$key $(, $shown)?)), )+
                    _ => None,
                }
            }
        }
    };
    (@shown $value:expr) => { values::Shown::shown(&$value) };
    (@shown $value:expr, $shown:literal) => { $shown.to_owned() };
}

settings! {
    /// Address to serve on (port 0: any free port; the bound address is logged).
    listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080)),
        parse: values::parsed("an address like 127.0.0.1:8080"), example: "127.0.0.1:9090";
    /// Embedded databases and the generated secret.
    data_dir: PathBuf = PathBuf::from("./data"),
        parse: |raw| values::non_empty(raw).map(PathBuf::from), example: "/var/lib/passport";
    /// The user store: sqlite://…, postgres://… or mysql://… (MySQL or MariaDB;
    /// mariadb://… also works).
    database_url: StoreUrl = StoreUrl::new(format!("sqlite://{}", data_dir.join("passport.db").display())),
        parse: values::database_url, example: "postgres://passport:pw@127.0.0.1:5432/passport", secret;
    /// The session store: redis://… (unset: the embedded store); a cluster as
    /// redis+cluster://h1:p1,h2:p2 or several URLs separated by commas; a primary
    /// managed by Sentinel as redis+sentinel://[user:password@]s1:p1,s2:p2/<service>[/<db>]
    /// (the credentials and the database are the data nodes').
    redis_url: Option<StoreUrl> = None,
        parse: values::redis_url, example: "redis://127.0.0.1:6379", secret;
    /// Prefix of every Redis key.
    redis_prefix: String = "passport:".to_owned(),
        parse: values::verbatim, example: "pp:";
    /// A file whose bytes (less one trailing newline) are the signing secret.
    secret_key_file: Option<PathBuf> = None,
        parse: |raw| Ok(Some(PathBuf::from(raw))), example: "/run/secrets/passport.key";
    /// HS256 signing secret (its UTF-8 bytes), at least 32 bytes.
    secret_key: Option<Secret> = None,
        parse: |raw| match secret_key_file {
            Some(_) => Err("give either PASSPORT_SECRET_KEY or PASSPORT_SECRET_KEY_FILE, not both".to_owned()),
            None => values::secret(raw),
        },
        example: "an-example-secret-of-32-bytes-or-more", secret;
    /// Key ring: a directory of <kid>.key files; the greatest kid signs, all verify.
    secret_keys_dir: Option<PathBuf> = None,
        parse: values::optional_path, example: "/run/secrets/passport-keys";
    /// `iss` claim.
    issuer: String = "passport".to_owned(),
        parse: values::non_empty, example: "passport-test";
    /// Access token lifetime, seconds.
    access_ttl: u64 = 86_400,
        parse: values::seconds, example: "600";
    /// Session (and refresh token) lifetime, seconds.
    refresh_ttl: u64 = 2_592_000,
        parse: values::seconds, example: "3600";
    /// Clock leeway for exp/nbf/iat, seconds (0-300).
    leeway: u64 = 30,
        parse: values::number("whole seconds", 0..=MAX_LEEWAY, " seconds"), example: "5";
    /// Live sessions per user.
    max_sessions: u32 = 1,
        parse: values::number("an integer of at least 1", 1..=u32::MAX, ""), example: "3";
    /// What a login beyond max_sessions does: evict_oldest, or reject (403
    /// session_limit_reached).
    session_overflow: Overflow = Overflow::EvictOldest,
        parse: values::one_of(values::OVERFLOWS), example: "reject";
    /// Seconds in which a just-rotated refresh token gets the same successor again (0-300).
    refresh_grace: u64 = 10,
        parse: values::number("whole seconds", 0..=300, " seconds"), example: "0";
    /// Failed logins per mobile (known or not) per window, as count/seconds.
    rate_login_account: RateLimit = RateLimit { count: 10, window: 900 },
        parse: values::parsed(RATE_FORM), example: "5/60";
    /// Login attempts (any outcome) per client IP per window, as count/seconds.
    rate_login_ip: RateLimit = RateLimit { count: 100, window: 60 },
        parse: values::parsed(RATE_FORM), example: "50/60";
    /// Registrations per client IP per window, as count/seconds.
    rate_register_ip: RateLimit = RateLimit { count: 20, window: 3600 },
        parse: values::parsed(RATE_FORM), example: "5/3600";
    /// CIDRs whose X-Forwarded-For is believed, separated by commas.
    trusted_proxies: Vec<IpNet> = Vec::new(),
        parse: values::networks, example: "10.0.0.0/8";
    /// Minimum password length, Unicode characters (1-64).
    password_min_length: usize = 8,
        // NIST SP 800-63B: verifiers must accept at least 64 characters, so a
        // minimum above that would refuse every password.
        parse: values::number("a number of characters", 1..=64, ""), example: "12";
    /// Audit log path.
    audit_log: PathBuf = PathBuf::from("logs/user_action.log"),
        parse: |raw| Ok(PathBuf::from(raw)), example: "/var/log/passport/actions.log";
    /// Region of mobile numbers given without +.
    default_region: phonenumber::country::Id = phonenumber::country::Id::CN,
        parse: values::region, example: "US";
    /// Language of messages when Accept-Language names neither: en or zh.
    default_lang: Lang = Lang::En,
        parse: values::one_of(values::LANGS), example: "zh";
    /// Threads that hash passwords at once (default: the CPUs this process may use).
    hash_workers: usize = values::cores(), shown "the CPUs this process may use",
        parse: values::number("a number of threads", 1..=usize::MAX, ""), example: "1000";
    /// Hash requests that may wait for a thread; beyond it, 503 busy with Retry-After.
    hash_queue: usize = 256,
        parse: values::number("a number of requests", 0..=usize::MAX, ""), example: "16";
    /// Pin the request threads one per CPU when there is one CPU per thread (true or false).
    pin_workers: bool = true,
        parse: values::parsed("true or false"), example: "false";
    /// On a single Redis node or a Cluster, keep sessions found valid in memory,
    /// following Redis's invalidation messages (true or false).
    redis_session_cache: bool = true,
        parse: values::parsed("true or false"), example: "false";
    /// Replicas a revocation must reach (Redis WAIT) before it is acknowledged,
    /// where the Redis has replicas (0: do not wait).
    redis_wait_replicas: u32 = 1,
        parse: values::number("a number of replicas", 0..=16, ""), example: "2";
    /// Milliseconds a revocation waits for its replicas before it answers 503
    /// (1-900).
    redis_wait_ms: u64 = 500,
        parse: values::number("milliseconds", 1..=900, " ms"), example: "200";
    /// How long a play ticket may start a playback, seconds.
    play_ticket_ttl: u64 = 300,
        parse: values::seconds, example: "60";
    /// Addresses that may call the media-server hooks: CIDRs separated by commas.
    hook_allow: Vec<IpNet> = values::loopback(),
        parse: values::networks, example: "10.0.0.0/8";
    /// A secret every hook URL must carry as ?secret= (at least 16 bytes; unset: none).
    hook_secret: Option<Secret> = None,
        parse: values::hook_secret, example: "an-example-hook-secret", secret;
    /// Addresses that may read /metrics: CIDRs separated by commas (none: no
    /// metrics are kept at all).
    metrics_allow: Vec<IpNet> = values::loopback(),
        parse: values::networks, example: "10.0.0.0/8";
    /// Log lines: text, or json (one object per line).
    log_format: LogFormat = LogFormat::Text,
        parse: values::one_of(values::LOG_FORMATS), example: "json";
    /// Seconds in which a request's headers must arrive (1-3600).
    header_timeout: u64 = 10,
        parse: values::number("whole seconds", 1..=3600, " seconds"), example: "5";
    /// Open connections at most; more wait to be accepted.
    max_connections: usize = 10_000,
        parse: values::number("a number of connections", 1..=10_000_000, ""), example: "500";
    /// The RTMP URL the web pages give streamers to paste into OBS, as in
    /// rtmp://live.example.com/live (unset: rtmp://<the page's host>/live).
    publish_url: Option<String> = None,
        parse: values::publish_url, example: "rtmp://live.example.com/live";
}

const RATE_FORM: &str = "a limit like 10/900 (count/seconds)";

impl Config {
    /// Where the signing secret comes from.
    pub fn secret(&self) -> SecretSource {
        match (&self.secret_key, &self.secret_key_file) {
            (Some(secret), _) => SecretSource::Inline(secret.expose().to_vec()),
            (None, Some(path)) => SecretSource::File(path.clone()),
            (None, None) => SecretSource::Generated,
        }
    }
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
            flag: flag_name(key),
            problem: problem.into(),
        }
    }
}

fn is_setting(key: &str) -> bool {
    SETTINGS.iter().any(|s| s.key == key)
}

/// Raw values by key, before parsing: what flags/env gave, then a file, layered.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    values: BTreeMap<String, String>,
}

impl Sources {
    /// Values that win over everything added later (flags and env, merged by clap).
    /// Unknown keys are refused, as in a file.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigError> {
        let mut s = Sources::default();
        for (k, v) in pairs {
            let key = k.into();
            if !is_setting(&key) {
                return Err(ConfigError::new(&key, "unknown setting"));
            }
            s.values.insert(key, v.into());
        }
        Ok(s)
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
            if !is_setting(&key) {
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

    /// The setting's value: its default when no source gave it, else what its
    /// parser makes of the text, a refusal naming the setting.
    fn value<T>(
        &self,
        key: &str,
        default: impl FnOnce() -> T,
        parse: impl FnOnce(&str) -> values::Parsed<T>,
    ) -> Result<T, ConfigError> {
        match self.values.get(key) {
            None => Ok(default()),
            Some(raw) => parse(raw).map_err(|problem| ConfigError::new(key, problem)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_pairs(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_sources(&Sources::from_pairs(pairs.iter().copied())?)
    }

    #[test]
    fn defaults_need_no_setting() {
        let c = Config::from_sources(&Sources::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url.expose(), "sqlite://./data/passport.db");
        assert_eq!(c.max_sessions, 1);
        assert_eq!(c.session_overflow, Overflow::EvictOldest);
        assert_eq!(c.leeway, 30);
        assert_eq!(c.default_region, phonenumber::country::Id::CN);
        assert!(matches!(c.secret(), SecretSource::Generated));
    }

    #[test]
    fn the_database_defaults_into_the_data_dir() {
        let c = from_pairs(&[("data_dir", "/srv/p")]).unwrap();
        assert_eq!(c.database_url.expose(), "sqlite:///srv/p/passport.db");
    }

    #[test]
    fn every_database_url_form_is_known_by_its_scheme() {
        for (url, kind) in [
            ("sqlite:///srv/p/passport.db", SqlKind::Sqlite),
            ("sqlite:passport.db", SqlKind::Sqlite),
            ("postgres://passport@db:5432/passport", SqlKind::Postgres),
            ("postgresql://passport@db/passport", SqlKind::Postgres),
            ("mysql://passport:pw@db:3306/passport", SqlKind::MySql),
            ("mariadb://passport:pw@db:3306/passport", SqlKind::MySql),
        ] {
            let c = from_pairs(&[("database_url", url)]).unwrap();
            assert_eq!(SqlKind::of(c.database_url.expose()), Some(kind), "{url}");
        }
        let err = from_pairs(&[("database_url", "mongodb://db/passport")]).unwrap_err();
        assert_eq!(err.key, "database_url");
    }

    /// Every form README gives for `PASSPORT_REDIS_URL`, as the store will read it.
    #[test]
    fn every_redis_url_form_is_read_as_documented() {
        use RedisTarget::*;
        let nodes = |v: &[&str]| Cluster(v.iter().map(|s| s.to_string()).collect());
        for (url, target) in [
            ("redis://127.0.0.1:6379", Node("redis://127.0.0.1:6379".into())),
            ("rediss://:pw@cache:6380/2", Node("rediss://:pw@cache:6380/2".into())),
            (
                "redis+cluster://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103",
                nodes(&[
                    "redis://127.0.0.1:7101",
                    "redis://127.0.0.1:7102",
                    "redis://127.0.0.1:7103",
                ]),
            ),
            (
                "redis+cluster://:secret@10.0.0.1:7000, 10.0.0.2:7000",
                nodes(&["redis://:secret@10.0.0.1:7000", "redis://:secret@10.0.0.2:7000"]),
            ),
            (
                "redis://10.0.0.1:7000,redis://10.0.0.2:7000",
                nodes(&["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]),
            ),
            (
                "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381/passport",
                Sentinel {
                    sentinels: ["26379", "26380", "26381"]
                        .map(|p| format!("redis://127.0.0.1:{p}"))
                        .to_vec(),
                    service: "passport".into(),
                    username: None,
                    password: None,
                    db: 0,
                },
            ),
            (
                "redis+sentinel://app:secret@10.0.0.1:26379/main/2",
                Sentinel {
                    sentinels: vec!["redis://10.0.0.1:26379".into()],
                    service: "main".into(),
                    username: Some("app".into()),
                    password: Some("secret".into()),
                    db: 2,
                },
            ),
        ] {
            let c = from_pairs(&[("redis_url", url)]).unwrap();
            assert_eq!(RedisTarget::parse(c.redis_url.unwrap().expose()), Ok(target), "{url}");
        }
        for bad in [
            "http://x:1",
            "redis://",
            "redis+cluster://a:1,",
            "redis://a:1,b:2",
            "redis+cluster://",
        ] {
            let err = from_pairs(&[("redis_url", bad)]).unwrap_err();
            assert_eq!(err.key, "redis_url", "{bad}");
        }
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
            ("database_url", "mongodb://x"),
            ("data_dir", ""),
            ("issuer", ""),
            ("password_min_length", "65"),
            ("hash_workers", "0"),
            ("pin_workers", "yes"),
        ] {
            let err = from_pairs(&[(k, v)]).unwrap_err();
            assert_eq!(err.key, k);
            let text = err.to_string();
            assert!(text.contains(&env_name(k)), "{text}");
            assert!(text.contains(&format!("--{}", flag_name(k))), "{text}");
        }
    }

    #[test]
    fn both_secrets_are_refused() {
        for secret in ["an-example-secret-of-32-bytes-or-more", "short"] {
            let err = from_pairs(&[("secret_key", secret), ("secret_key_file", "/k")]).unwrap_err();
            assert_eq!(err.key, "secret_key");
            assert!(err.problem.contains("not both"), "{err}");
        }
    }

    #[test]
    fn every_example_is_valid_and_not_the_default() {
        let default = format!("{:?}", Config::from_sources(&Sources::default()).unwrap());
        for s in SETTINGS {
            let c = from_pairs(&[(s.key, s.example)]).unwrap_or_else(|e| panic!("{}: {e}", s.key));
            assert_ne!(format!("{c:?}"), default, "{}'s example is its default", s.key);
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert_eq!(from_pairs(&[("max_sesions", "3")]).unwrap_err().key, "max_sesions");
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
        let sources = Sources::from_pairs([("issuer", "flag")])
            .unwrap()
            .with_file(&path)
            .unwrap();
        let c = Config::from_sources(&sources).unwrap();
        assert_eq!(c.max_sessions, 3);
        assert_eq!(c.issuer, "flag");
        assert_eq!(c.trusted_proxies.len(), 1);

        std::fs::write(&path, "max_sesions = 3\n").unwrap();
        let err = Sources::default().with_file(&path).unwrap_err();
        assert_eq!(err.key, "max_sesions");
    }

    #[test]
    fn urls_hide_passwords() {
        let u = StoreUrl::new("postgres://app:hunter2@db:5432/x".into());
        assert_eq!(format!("{u:?}"), "postgres://app:***@db:5432/x");
    }

    /// The settings' reference shows each default as text (`Config::shown`): given
    /// back as the setting's value, that text must make the very default, so the
    /// page cannot show one thing while the code does another.
    #[test]
    fn every_shown_default_reads_back_as_the_default() {
        let defaults = Config::from_sources(&Sources::default()).unwrap();
        for s in SETTINGS {
            let shown = defaults.shown(s.key).expect("every setting is shown");
            match (s.key, shown.as_str()) {
                // Declared, because it depends on the machine.
                ("hash_workers", _) => assert_eq!(defaults.hash_workers, values::cores()),
                // Only `None` shows so; no text gives `None` back.
                (_, "unset") => {}
                _ => {
                    let given = Config::from_sources(&Sources::from_pairs([(s.key, shown.as_str())]).unwrap())
                        .unwrap_or_else(|e| panic!("the shown default of {} does not parse: {e}", s.key));
                    assert_eq!(
                        format!("{given:?}"),
                        format!("{defaults:?}"),
                        "{} shown as {shown:?}",
                        s.key
                    );
                }
            }
        }
    }

    #[test]
    fn secrets_do_not_reach_debug() {
        let c = from_pairs(&[("secret_key", "an-example-secret-of-32-bytes-or-more")]).unwrap();
        assert!(!format!("{c:?}").contains("an-example-secret"));
    }
}
