//! A Redis primary found through Sentinel, followed across failovers.
//!
//! The sentinels are asked which node is the primary of the service; requests go
//! to it through a `ConnectionManager`. When a request fails in a way that says the
//! primary is gone or is one no more (a broken or refused connection, a timeout, a
//! `READONLY` answer from a demoted node), the connection is dropped and the next
//! request asks the sentinels again, so Passport follows a failover by itself.

use std::sync::Arc;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisResult, Value};

pub struct SentinelConn {
    sentinels: tokio::sync::Mutex<SentinelClient>,
    /// The primary's connection, with its address (`host:port`).
    primary: parking_lot::Mutex<Option<(ConnectionManager, String)>>,
    config: ConnectionManagerConfig,
    db: i64,
}

impl SentinelConn {
    /// Asks `sentinels` (`redis://host:port` URLs) for the primary of `service`,
    /// and connects to it with `node` (the data nodes' database and credentials).
    pub async fn connect(
        sentinels: Vec<String>,
        service: &str,
        node: redis::RedisConnectionInfo,
        config: ConnectionManagerConfig,
    ) -> RedisResult<Arc<SentinelConn>> {
        let db = node.db;
        let client = SentinelClient::build(
            sentinels,
            service.to_owned(),
            Some(SentinelNodeConnectionInfo {
                tls_mode: None,
                redis_connection_info: Some(node),
            }),
            SentinelServerType::Master,
        )?;
        let conn = Arc::new(SentinelConn {
            sentinels: tokio::sync::Mutex::new(client),
            primary: parking_lot::Mutex::new(None),
            config,
            db,
        });
        conn.primary().await?;
        Ok(conn)
    }

    /// The connection to the primary, asking the sentinels for it when there is
    /// none (at the start, or after a failure).
    async fn primary(&self) -> RedisResult<ConnectionManager> {
        if let Some((conn, _)) = self.primary.lock().clone() {
            return Ok(conn);
        }
        let client = self.sentinels.lock().await.async_get_client().await?;
        let address = client.get_connection_info().addr.to_string();
        let conn = ConnectionManager::new_with_config(client, self.config.clone()).await?;
        *self.primary.lock() = Some((conn.clone(), address));
        Ok(conn)
    }

    /// Where requests go now: the primary the sentinels last named, if connected.
    pub fn primary_address(&self) -> Option<String> {
        self.primary.lock().as_ref().map(|(_, address)| address.clone())
    }

    /// Forgets the primary when `e` says it is gone or demoted.
    fn after<T>(&self, answer: RedisResult<T>) -> RedisResult<T> {
        if let Err(e) = &answer {
            if lost_primary(e) {
                *self.primary.lock() = None;
            }
        }
        answer
    }

    pub async fn request(&self, cmd: &Cmd) -> RedisResult<Value> {
        let mut conn = self.primary().await?;
        let answer = conn.req_packed_command(cmd).await;
        self.after(answer)
    }

    pub async fn requests(&self, pipe: &Pipeline, offset: usize, count: usize) -> RedisResult<Vec<Value>> {
        let mut conn = self.primary().await?;
        let answer = conn.req_packed_commands(pipe, offset, count).await;
        self.after(answer)
    }

    pub fn db(&self) -> i64 {
        self.db
    }
}

fn lost_primary(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.kind(),
            ErrorKind::ReadOnly | ErrorKind::MasterDown | ErrorKind::TryAgain
        )
}
