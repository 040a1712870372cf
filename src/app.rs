//! The running server: a bound listener and the router over the services
//! (`state.rs`), served until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::http::connections::{self, Limits, IDLE_TIMEOUT};
use crate::state::AppState;
use crate::store::Mode;

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
        let config = &self.state.config;
        let limits = Limits {
            header_timeout: Duration::from_secs(config.header_timeout),
            idle_timeout: IDLE_TIMEOUT,
            max_connections: connections::fit_to_open_files(config.max_connections),
        };
        connections::serve(self.listener, router, limits, shutdown).await;
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
