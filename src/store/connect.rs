//! Opening the stores the configuration names: the one place a backend is chosen.

use std::sync::Arc;

use super::{embedded, embedded_cache, mysql, postgres, redis, redis_tracking, sqlite};
use super::{RateStore, SessionStore, StoreStats, StreamStore, UserStore};
use crate::config::{Config, SqlKind};

/// Who opens the stores: the server keeps live sessions in memory and follows
/// changes made by other processes; a one-shot command reads and writes SQL only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Serve,
    Command,
}

#[derive(Clone)]
pub struct Stores {
    pub users: Arc<dyn UserStore>,
    /// Lives beside the users, in the same database.
    pub streams: Arc<dyn StreamStore>,
    pub sessions: Arc<dyn SessionStore>,
    /// Lives beside the sessions: the embedded store, or Redis.
    pub rates: Arc<dyn RateStore>,
    pub stats: Arc<StoreStats>,
}

/// Opens (creating and migrating where needed) the stores the configuration names.
pub async fn connect(config: &Config, mode: Mode) -> anyhow::Result<Stores> {
    let stats = Arc::new(StoreStats::default());
    let url = config.database_url.expose();
    let in_url = |e: anyhow::Error| anyhow::anyhow!("PASSPORT_DATABASE_URL ({}): {e}", config.database_url);
    let (users, streams): (Arc<dyn UserStore>, Arc<dyn StreamStore>) = match SqlKind::of(url) {
        Some(SqlKind::Sqlite) => {
            let sqlite = Arc::new(sqlite::SqliteUsers::connect(url, stats.clone()).await?);
            (sqlite.clone(), sqlite)
        }
        Some(SqlKind::Postgres) => {
            let pg = Arc::new(postgres::PgUsers::connect(url, stats.clone()).await.map_err(in_url)?);
            (pg.clone(), pg)
        }
        Some(SqlKind::MySql) => {
            let mysql = Arc::new(mysql::MySqlUsers::connect(url, stats.clone()).await.map_err(in_url)?);
            (mysql.clone(), mysql)
        }
        None => anyhow::bail!(
            "PASSPORT_DATABASE_URL ({}): not a database URL Passport knows",
            config.database_url
        ),
    };
    let (sessions, rates): (Arc<dyn SessionStore>, Arc<dyn RateStore>) = match &config.redis_url {
        Some(redis_url) => {
            let in_url = |e: anyhow::Error| anyhow::anyhow!("PASSPORT_REDIS_URL ({redis_url}): {e}");
            let redis = redis::RedisSessions::connect(
                redis_url.expose(),
                &config.redis_prefix,
                (mode == Mode::Serve && config.redis_session_cache)
                    .then(|| redis_tracking::Watch::user_keys(&config.redis_prefix)),
                stats.clone(),
            )
            .await
            .map_err(in_url)?;
            let durability = redis::Durability {
                replicas: config.redis_wait_replicas,
                timeout: std::time::Duration::from_millis(config.redis_wait_ms),
            };
            let redis = Arc::new(
                redis
                    .with_durable_revocations(redis_url.expose(), durability)
                    .await
                    .map_err(in_url)?,
            );
            (redis.clone(), redis)
        }
        None => {
            let embedded =
                embedded::EmbeddedSessions::open(&config.data_dir.join("sessions.db"), stats.clone()).await?;
            match mode {
                Mode::Serve => {
                    let cached = Arc::new(embedded_cache::CachedSessions::start(embedded).await?);
                    (cached.clone(), cached)
                }
                Mode::Command => {
                    let embedded = Arc::new(embedded);
                    (embedded.clone(), embedded)
                }
            }
        }
    };
    Ok(Stores {
        users,
        streams,
        sessions,
        rates,
        stats,
    })
}
