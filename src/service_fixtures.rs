//! Services over real stores in a temporary directory, for the unit tests of the
//! services layer: the user table in SQLite, sessions and counters in the embedded
//! store (as a one-shot command opens them), the audit log in a file. No mocks, and
//! no HTTP: each test calls the service it tests.

use std::sync::Arc;

use tempfile::TempDir;

use crate::audit::{Audit, RequestMeta};
use crate::config::{Overflow, RateLimit};
use crate::passwords::Hasher;
use crate::profiles::Profiles;
use crate::ratelimit::{Limits, RateLimiter};
use crate::sessions::Sessions;
use crate::store::embedded::EmbeddedSessions;
use crate::store::sqlite::SqliteUsers;
use crate::store::{SessionPolicy, SessionStore, StoreStats, StreamStore, UserStore};
use crate::streams::Streams;
use crate::tokens::KeyRing;
use crate::users::{AccountRules, Accounts};

pub const PASSWORD: &str = "correct horse battery staple";

/// Limits high enough that only a test that lowers one meets it.
pub const GENEROUS: Limits = Limits {
    login_account: RateLimit {
        count: 1000,
        window: 900,
    },
    login_ip: RateLimit {
        count: 1000,
        window: 60,
    },
    register_ip: RateLimit {
        count: 1000,
        window: 60,
    },
};

pub fn policy(max_sessions: u32, overflow: Overflow) -> SessionPolicy {
    SessionPolicy {
        max_sessions,
        overflow,
        tombstone_ttl: 3600,
    }
}

pub struct Fixture {
    pub dir: TempDir,
    pub users: Arc<dyn UserStore>,
    pub streams: Arc<dyn StreamStore>,
    pub sessions: Arc<EmbeddedSessions>,
    pub audit: Audit,
    pub keys: Arc<KeyRing>,
}

impl Fixture {
    pub async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let stats = Arc::new(StoreStats::default());
        let url = format!("sqlite://{}", dir.path().join("users.db").display());
        let sqlite = Arc::new(SqliteUsers::connect(&url, stats.clone()).await.unwrap());
        let sessions = Arc::new(
            EmbeddedSessions::open(&dir.path().join("sessions.db"), stats)
                .await
                .unwrap(),
        );
        let audit = Audit::start(&dir.path().join("audit.log")).unwrap();
        let keys = Arc::new(KeyRing::new(
            &[b"service-test-secret-0123456789abcdef".to_vec()],
            "passport".into(),
            30,
            600,
        ));
        Fixture {
            dir,
            users: sqlite.clone(),
            streams: sqlite,
            sessions,
            audit,
            keys,
        }
    }

    pub fn limiter(&self, limits: Limits) -> RateLimiter {
        RateLimiter {
            rates: self.sessions.clone(),
            audit: self.audit.clone(),
            limits,
        }
    }

    pub fn sessions(&self, policy: SessionPolicy) -> Sessions {
        Sessions {
            store: self.sessions.clone(),
            audit: self.audit.clone(),
            policy,
            lifetime: 3600,
            digest_key: self.keys.refresh_digest_keys()[0],
        }
    }

    pub fn accounts(&self, policy: SessionPolicy, limits: Limits) -> Accounts {
        Accounts {
            users: self.users.clone(),
            sessions: self.sessions(policy),
            limiter: self.limiter(limits),
            hasher: Hasher::new(1, 16).unwrap(),
            keys: self.keys.clone(),
            profiles: Arc::new(Profiles::default()),
            audit: self.audit.clone(),
            rules: AccountRules {
                default_region: phonenumber::country::Id::CN,
                password_min_length: 8,
            },
        }
    }

    pub fn streams(&self) -> Streams {
        Streams::new(
            self.streams.clone(),
            self.users.clone(),
            self.keys.clone(),
            self.audit.clone(),
        )
    }

    pub fn session_store(&self) -> &dyn SessionStore {
        &*self.sessions
    }

    /// The audit log so far, one JSON object per event.
    pub async fn audit_events(&self) -> Vec<serde_json::Value> {
        self.audit.flush().await;
        std::fs::read_to_string(self.dir.path().join("audit.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// How many audit events of this kind there are.
    pub async fn count_events(&self, event: &str) -> usize {
        let events = self.audit_events().await;
        events.iter().filter(|e| e["event"] == event).count()
    }
}

/// A request from this address.
pub fn from_ip(ip: &str) -> RequestMeta {
    RequestMeta {
        ip: Some(ip.to_owned()),
        ..RequestMeta::default()
    }
}
