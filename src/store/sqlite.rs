//! The SQLite user store: the embedded default.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{Row, SqlitePool};

use super::sqlite_pool::{sqlite_options, sqlite_pool};
use super::{
    roles_json, stream_record, StoreError, StoreStats, StreamAccess, StreamRecord, StreamStore, UserRecord, UserStore,
};

/// A failure of the user store on SQLite, counted as this store's (`passport_store_errors_total`).
fn classify(e: sqlx::Error) -> StoreError {
    super::counted("sqlite", super::classify(e))
}

pub struct SqliteUsers {
    pool: SqlitePool,
    stats: Arc<StoreStats>,
}

const COLUMNS: &str = "user_id, mobile, password_hash, roles, disabled, created_at, last_login";

fn record(row: &sqlx::sqlite::SqliteRow) -> Result<UserRecord, StoreError> {
    let roles: String = row.try_get("roles").map_err(classify)?;
    Ok(UserRecord {
        user_id: row.try_get("user_id").map_err(classify)?,
        mobile: row.try_get("mobile").map_err(classify)?,
        password_hash: row.try_get("password_hash").map_err(classify)?,
        roles: serde_json::from_str(&roles).map_err(|e| StoreError::Other(e.into()))?,
        disabled: row.try_get::<i64, _>("disabled").map_err(classify)? != 0,
        created_at: row.try_get("created_at").map_err(classify)?,
        last_login: row.try_get("last_login").map_err(classify)?,
    })
}

impl SqliteUsers {
    /// Opens (creating if missing) and migrates the database at `url`.
    pub async fn connect(url: &str, stats: Arc<StoreStats>) -> anyhow::Result<SqliteUsers> {
        let pool = sqlite_pool(8).connect_with(sqlite_options(url)?).await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(SqliteUsers { pool, stats })
    }

    fn counted(&self) -> &SqlitePool {
        StoreStats::count(&self.stats.user_queries);
        &self.pool
    }
}

#[async_trait]
impl UserStore for SqliteUsers {
    async fn create(&self, mobile: &str, password_hash: &str, roles: &[String], now: i64) -> Result<i64, StoreError> {
        let roles = roles_json(roles)?;
        let row = sqlx::query(
            "INSERT INTO users (mobile, password_hash, roles, created_at) VALUES (?, ?, ?, ?) RETURNING user_id",
        )
        .bind(mobile)
        .bind(password_hash)
        .bind(roles)
        .bind(now)
        .fetch_one(self.counted())
        .await
        .map_err(classify)?;
        row.try_get(0).map_err(classify)
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
            .bind(disabled as i64)
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

    async fn import(&self, u: &UserRecord) -> Result<bool, StoreError> {
        let roles = roles_json(&u.roles)?;
        let done = sqlx::query(
            "INSERT INTO users (user_id, mobile, password_hash, roles, disabled, created_at, last_login) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(u.user_id)
        .bind(&u.mobile)
        .bind(&u.password_hash)
        .bind(roles)
        .bind(u.disabled)
        .bind(u.created_at)
        .bind(u.last_login)
        .execute(self.counted())
        .await
        .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_login(&self, user_id: i64, password_hash: &str, at: i64) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE users SET last_login = CASE WHEN password_hash = ?2 AND disabled = 0 THEN ?3 ELSE last_login END \
             WHERE user_id = ?1 RETURNING {COLUMNS}"
        ))
        .bind(user_id)
        .bind(password_hash)
        .bind(at)
        .fetch_optional(self.counted())
        .await
        .map_err(classify)?;
        row.as_ref().map(record).transpose()
    }

    async fn list(&self) -> Result<Vec<UserRecord>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM users ORDER BY user_id"))
            .fetch_all(self.counted())
            .await
            .map_err(classify)?;
        rows.iter().map(record).collect()
    }

    async fn finish_import(&self) -> Result<(), StoreError> {
        // AUTOINCREMENT already continues above the largest id ever inserted.
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

fn stream(row: &sqlx::sqlite::SqliteRow) -> Result<StreamRecord, StoreError> {
    stream_record(
        row.try_get("name").map_err(classify)?,
        row.try_get("owner_id").map_err(classify)?,
        row.try_get("access").map_err(classify)?,
        row.try_get("key_digest").map_err(classify)?,
        row.try_get("created_at").map_err(classify)?,
    )
}

#[async_trait]
impl StreamStore for SqliteUsers {
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
            "SELECT {STREAM_COLUMNS} FROM streams WHERE ?1 IS NULL OR owner_id = ?1 ORDER BY created_at, name"
        ))
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
