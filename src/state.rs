//! The services container: everything a request or a command needs, built once
//! from the configuration and shared (`AppState` is cheap to clone).

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

use crate::audit::Audit;
use crate::config::Config;
use crate::passwords::Hasher;
use crate::profiles::Profiles;
use crate::ratelimit::{Limits, RateLimiter};
use crate::refresh::Refresher;
use crate::sessions::{self, Sessions};
use crate::store::{self, Mode, Stores};
use crate::stream_auth::StreamAuth;
use crate::streams::Streams;
use crate::tokens::KeyRing;
use crate::users::{AccountRules, Accounts};

pub struct Services {
    pub config: Config,
    pub stores: Stores,
    pub keys: Arc<KeyRing>,
    pub audit: Audit,
    pub accounts: Accounts,
    pub sessions: Sessions,
    pub refresher: Refresher,
    pub streams: Streams,
    pub stream_auth: StreamAuth,
    /// The process's metrics registry; `None` when metrics are off
    /// (`metrics_allow` is `none`).
    pub metrics: Option<&'static crate::observe::Metrics>,
}

/// Shared by every request; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

impl AppState {
    /// Loads the keys, opens the stores and the audit log, and wires the services.
    pub async fn build(config: Config, mode: Mode) -> anyhow::Result<AppState> {
        let keys = Arc::new(KeyRing::load(&config)?);
        let stores = store::connect(&config, mode).await?;
        let hasher = {
            let (workers, queue) = (config.hash_workers, config.hash_queue);
            tokio::task::spawn_blocking(move || Hasher::new(workers, queue)).await??
        };
        let audit = Audit::start(&config.audit_log)?;
        let sessions = Sessions {
            store: stores.sessions.clone(),
            audit: audit.clone(),
            policy: sessions::policy(&config),
            lifetime: config.refresh_ttl as i64,
            digest_key: keys.refresh_digest_keys()[0],
        };
        let accounts = Accounts {
            users: stores.users.clone(),
            sessions: sessions.clone(),
            limiter: RateLimiter {
                rates: stores.rates.clone(),
                audit: audit.clone(),
                limits: Limits::from_config(&config),
            },
            hasher,
            keys: keys.clone(),
            profiles: Arc::new(Profiles::default()),
            audit: audit.clone(),
            rules: AccountRules::from_config(&config),
        };
        let refresher = Refresher {
            sessions: stores.sessions.clone(),
            keys: keys.clone(),
            audit: audit.clone(),
            lifetime: config.refresh_ttl as i64,
            grace: config.refresh_grace as i64,
        };
        let streams = Streams::new(
            stores.streams.clone(),
            stores.users.clone(),
            keys.clone(),
            audit.clone(),
        );
        let stream_auth = StreamAuth::new(
            streams.clone(),
            stores.users.clone(),
            stores.sessions.clone(),
            config.play_ticket_ttl as i64,
        );
        let metrics = (!config.metrics_allow.is_empty()).then(crate::observe::install);
        Ok(AppState(Arc::new(Services {
            config,
            stores,
            keys,
            audit,
            accounts,
            sessions,
            refresher,
            streams,
            stream_auth,
            metrics,
        })))
    }

    /// Flushes the audit log and closes the stores.
    pub async fn close(&self) {
        self.audit.flush().await;
        self.stores.sessions.close().await;
        self.stores.users.close().await;
    }
}

/// Runs `fut` as a task of its own and waits for it: if the caller is dropped (the
/// client disconnected), the work still completes. For multi-step changes that
/// must not stop halfway.
pub async fn detached<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    match tokio::spawn(fut).await {
        Ok(v) => v,
        Err(e) => match e.try_into_panic() {
            Ok(payload) => std::panic::resume_unwind(payload),
            Err(e) => panic!("detached task did not complete: {e}"),
        },
    }
}
