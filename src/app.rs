//! The assembled service: `AppState` (everything a request or a command needs)
//! and `App` (a bound listener plus the router, run until shutdown).

use std::future::Future;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::audit::Audit;
use crate::config::Config;
use crate::passwords::Hasher;
use crate::profiles::Profiles;
use crate::store::{self, Mode, RateStore, SessionPolicy, SessionStore, StoreStats, UserStore};
use crate::tokens::KeyRing;

pub struct Services {
    pub config: Config,
    pub users: Arc<dyn UserStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub rates: Arc<dyn RateStore>,
    pub stats: Arc<StoreStats>,
    pub keys: KeyRing,
    pub hasher: Hasher,
    pub audit: Audit,
    pub profiles: Profiles,
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
    /// Loads the keys, opens the stores and the audit log.
    pub async fn build(config: Config, mode: Mode) -> anyhow::Result<AppState> {
        let keys = KeyRing::load(&config)?;
        let stores = store::connect(&config, mode).await?;
        let hasher = {
            let (workers, queue) = (config.hash_workers, config.hash_queue);
            tokio::task::spawn_blocking(move || Hasher::new(workers, queue)).await??
        };
        let audit = Audit::start(&config.audit_log)?;
        Ok(AppState(Arc::new(Services {
            config,
            users: stores.users,
            sessions: stores.sessions,
            rates: stores.rates,
            stats: stores.stats,
            keys,
            hasher,
            audit,
            profiles: Profiles::default(),
        })))
    }

    /// The session policy of SPEC §6. An evicted session answers
    /// `session_replaced` for as long as any token of it could still be unexpired.
    pub fn session_policy(&self) -> SessionPolicy {
        SessionPolicy {
            max_sessions: self.config.max_sessions,
            overflow: self.config.session_overflow,
            tombstone_ttl: (self.config.access_ttl + self.config.leeway) as i64,
        }
    }

    /// Flushes the audit log and closes the stores.
    pub async fn close(&self) {
        self.audit.flush().await;
        self.sessions.close().await;
        self.users.close().await;
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

pub struct App {
    listener: TcpListener,
    state: AppState,
}

impl App {
    /// Opens everything and binds the listener (port 0 picks a free port).
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let listen = config.listen;
        let state = AppState::build(config, Mode::Serve).await?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {listen} (PASSPORT_LISTEN): {e}"))?;
        Ok(App { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight
    /// requests finish, flushes the audit log and closes the stores.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let addr = self.local_addr();
        tracing::info!(%addr, "passport listening");
        let router = crate::http::router(self.state.clone());
        axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await?;
        tracing::info!("stopped accepting; in-flight requests done");
        self.state.close().await;
        tracing::info!("audit log flushed, stores closed");
        Ok(())
    }

    /// Serves until SIGTERM or SIGINT.
    pub async fn run(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}
