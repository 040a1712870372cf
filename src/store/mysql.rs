//! The MySQL / MariaDB user store, for platforms that keep their users there: the
//! same behaviour as the PostgreSQL store, in MySQL's dialect. MySQL has no
//! `RETURNING` on `UPDATE`, so the login re-check is an update and a read in one
//! transaction, and a new user's id is the connection's last insert id.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::Row;

use super::{
    roles_json, stream_record, StoreError, StoreStats, StreamAccess, StreamRecord, StreamStore, UserRecord, UserStore,
};

/// A failure of the user store on MySQL, counted as this store's (`passport_store_errors_total`).
fn classify(e: sqlx::Error) -> StoreError {
    super::counted("mysql", super::classify(e))
}

pub struct MySqlUsers {
    pool: MySqlPool,
    stats: Arc<StoreStats>,
}

const COLUMNS: &str = "user_id, mobile, password_hash, roles, disabled, created_at, last_login";

/// A text column. The tables use a binary collation (exact comparisons), which
/// MySQL reports with the BINARY flag, and sqlx then refuses to decode a `String`
/// from it: the bytes are read and checked as UTF-8 here instead.
fn text(row: &MySqlRow, column: &str) -> Result<String, StoreError> {
    let bytes: Vec<u8> = row.try_get(column).map_err(classify)?;
    String::from_utf8(bytes).map_err(|e| StoreError::Other(e.into()))
}

fn record(row: &MySqlRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        user_id: row.try_get("user_id").map_err(classify)?,
        mobile: text(row, "mobile")?,
        password_hash: text(row, "password_hash")?,
        roles: serde_json::from_str(&text(row, "roles")?).map_err(|e| StoreError::Other(e.into()))?,
        disabled: row.try_get("disabled").map_err(classify)?,
        created_at: row.try_get("created_at").map_err(classify)?,
        last_login: row.try_get("last_login").map_err(classify)?,
    })
}

impl MySqlUsers {
    /// Connects (in utf8mb4) and migrates. A pool that cannot hand out a connection
    /// within 2 s answers `Unavailable`, so a request fails closed instead of hanging.
    pub async fn connect(url: &str, stats: Arc<StoreStats>) -> anyhow::Result<MySqlUsers> {
        let options = MySqlConnectOptions::from_str(url)?.charset("utf8mb4");
        let pool = MySqlPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(2))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // Strict whatever the server's mode: a value too long for its
                    // column is refused, never cut. A row lock waited on for more
                    // than 5 s is an unavailable store (503), not a 50 s stall.
                    sqlx::query(
                        "SET SESSION sql_mode = CONCAT_WS(',', @@SESSION.sql_mode, 'STRICT_ALL_TABLES'), \
                         SESSION innodb_lock_wait_timeout = 5",
                    )
                    .execute(conn)
                    .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/mysql").run(&pool).await?;
        Ok(MySqlUsers { pool, stats })
    }

    fn counted(&self) -> &MySqlPool {
        StoreStats::count(&self.stats.user_queries);
        &self.pool
    }
}

#[async_trait]
impl UserStore for MySqlUsers {
    async fn create(&self, mobile: &str, password_hash: &str, roles: &[String], now: i64) -> Result<i64, StoreError> {
        let done = sqlx::query("INSERT INTO users (mobile, password_hash, roles, created_at) VALUES (?, ?, ?, ?)")
            .bind(mobile)
            .bind(password_hash)
            .bind(roles_json(roles)?)
            .bind(now)
            .execute(self.counted())
            .await
            .map_err(classify)?;
        i64::try_from(done.last_insert_id()).map_err(|e| StoreError::Other(e.into()))
    }

    async fn find_by_mobile(&self, mobile: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE mobile = ?"))
            .bind(mobile)
            .fetch_optional(self.counted())
            .await
            .map_err(classify)?;
        row.as_ref().map(record).transpose()
    }

    async fn find_by_id(&self, user_id: i64) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE user_id = ?"))
            .bind(user_id)
            .fetch_optional(self.counted())
            .await
            .map_err(classify)?;
        row.as_ref().map(record).transpose()
    }

    // sqlx asks MySQL for the rows an UPDATE *matched* (CLIENT_FOUND_ROWS), as
    // PostgreSQL and SQLite count them: setting a value it already has is still 1.
    async fn set_password_hash(&self, user_id: i64, hash: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET password_hash = ? WHERE user_id = ?")
            .bind(hash)
            .bind(user_id)
            .execute(self.counted())
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_disabled(&self, user_id: i64, disabled: bool) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET disabled = ? WHERE user_id = ?")
            .bind(disabled)
            .bind(user_id)
            .execute(self.counted())
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    async fn replace_password_hash(&self, user_id: i64, expected: &str, new: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET password_hash = ? WHERE user_id = ? AND password_hash = ?")
            .bind(new)
            .bind(user_id)
            .bind(expected)
            .execute(self.counted())
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    async fn replace_roles(&self, user_id: i64, expected: &[String], new: &[String]) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET roles = ? WHERE user_id = ? AND roles = ?")
            .bind(roles_json(new)?)
            .bind(user_id)
            .bind(roles_json(expected)?)
            .execute(self.counted())
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    /// A user whose id or mobile exists is skipped: the duplicate key is the answer,
    /// not an error (`INSERT IGNORE` would also hide a value the column refuses).
    async fn import(&self, u: &UserRecord) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO users (user_id, mobile, password_hash, roles, disabled, created_at, last_login) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(u.user_id)
        .bind(&u.mobile)
        .bind(&u.password_hash)
        .bind(roles_json(&u.roles)?)
        .bind(u.disabled)
        .bind(u.created_at)
        .bind(u.last_login)
        .execute(self.counted())
        .await;
        match done.map_err(classify) {
            Ok(done) => Ok(done.rows_affected() == 1),
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The update and the read are one transaction: the row is locked from the
    /// update on, so what is read is what the re-check decided on.
    async fn record_login(&self, user_id: i64, password_hash: &str, at: i64) -> Result<Option<UserRecord>, StoreError> {
        let mut tx = self.counted().begin().await.map_err(classify)?;
        sqlx::query(
            "UPDATE users SET last_login = CASE WHEN password_hash = ? AND NOT disabled THEN ? ELSE last_login END \
             WHERE user_id = ?",
        )
        .bind(password_hash)
        .bind(at)
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE user_id = ? FOR UPDATE"))
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        row.as_ref().map(record).transpose()
    }

    async fn list(&self) -> Result<Vec<UserRecord>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM users ORDER BY user_id"))
            .fetch_all(self.counted())
            .await
            .map_err(classify)?;
        rows.iter().map(record).collect()
    }

    /// InnoDB moves the id counter past every id inserted, imported ones included.
    async fn finish_import(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(classify)?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

const STREAM_COLUMNS: &str = "name, owner_id, access, key_digest, created_at";

fn stream(row: &MySqlRow) -> Result<StreamRecord, StoreError> {
    stream_record(
        text(row, "name")?,
        row.try_get("owner_id").map_err(classify)?,
        &text(row, "access")?,
        row.try_get("key_digest").map_err(classify)?,
        row.try_get("created_at").map_err(classify)?,
    )
}

#[async_trait]
impl StreamStore for MySqlUsers {
    async fn create_stream(&self, s: &StreamRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO streams (name, owner_id, access, key_digest, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(&s.name)
            .bind(s.owner_id)
            .bind(s.access.as_str())
            .bind(&s.key_digest[..])
            .bind(s.created_at)
            .execute(self.counted())
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn find_stream(&self, name: &str) -> Result<Option<StreamRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {STREAM_COLUMNS} FROM streams WHERE name = ?"))
            .bind(name)
            .fetch_optional(self.counted())
            .await
            .map_err(classify)?;
        row.as_ref().map(stream).transpose()
    }

    async fn find_stream_by_key(&self, key_digest: &[u8; 32]) -> Result<Option<StreamRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {STREAM_COLUMNS} FROM streams WHERE key_digest = ?"))
            .bind(&key_digest[..])
            .fetch_optional(self.counted())
            .await
            .map_err(classify)?;
        row.as_ref().map(stream).transpose()
    }

    async fn list_streams(&self, owner_id: Option<i64>) -> Result<Vec<StreamRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {STREAM_COLUMNS} FROM streams WHERE ? IS NULL OR owner_id = ? ORDER BY created_at, name"
        ))
        .bind(owner_id)
        .bind(owner_id)
        .fetch_all(self.counted())
        .await
        .map_err(classify)?;
        rows.iter().map(stream).collect()
    }

    async fn set_stream_access(&self, name: &str, owner_id: i64, access: StreamAccess) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE streams SET access = ? WHERE name = ? AND owner_id = ?")
            .bind(access.as_str())
            .bind(name)
            .bind(owner_id)
            .execute(self.counted())
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_stream_key(&self, name: &str, owner_id: i64, key_digest: &[u8; 32]) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE streams SET key_digest = ? WHERE name = ? AND owner_id = ?")
            .bind(&key_digest[..])
            .bind(name)
            .bind(owner_id)
            .execute(self.counted())
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_stream(&self, name: &str, owner_id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM streams WHERE name = ? AND owner_id = ?")
            .bind(name)
            .bind(owner_id)
            .execute(self.counted())
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }
}
