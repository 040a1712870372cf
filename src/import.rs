//! `passport user import <url>`: brings users over from the original Flask app's
//! table `user_login (user_id, mobile, password_hash, last_login, last_login_stamp)`
//! in a SQLite file, a PostgreSQL database or a MySQL / MariaDB database. Ids and
//! hashes are kept (the hashes are verified as legacy formats and upgraded at each
//! user's next login). Running it again changes nothing: a user whose id or mobile
//! exists is skipped.

use sqlx::Row;

use crate::audit::{Audit, AuditEvent, Event, RequestMeta};
use crate::config::SqlKind;
use crate::store::{UserRecord, UserStore};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub imported: usize,
    pub skipped: usize,
    pub invalid: usize,
}

/// One row of `user_login`, as read.
struct LegacyRow {
    user_id: i64,
    mobile: Option<String>,
    password_hash: Option<String>,
    last_login: Option<String>,
    last_login_stamp: Option<i64>,
}

const QUERY: &str = "SELECT CAST(user_id AS BIGINT) AS user_id, mobile, password_hash, \
     CAST(last_login AS TEXT) AS last_login, CAST(last_login_stamp AS BIGINT) AS last_login_stamp \
     FROM user_login ORDER BY user_id";

/// The same in MySQL's casts (SIGNED and CHAR rather than BIGINT and TEXT); text
/// is cast too, so that a column of a binary collation still reads as text.
const MYSQL_QUERY: &str = "SELECT CAST(user_id AS SIGNED) AS user_id, CAST(mobile AS CHAR) AS mobile, \
     CAST(password_hash AS CHAR) AS password_hash, \
     CAST(last_login AS CHAR) AS last_login, CAST(last_login_stamp AS SIGNED) AS last_login_stamp \
     FROM user_login ORDER BY user_id";

async fn read_rows(url: &str) -> anyhow::Result<Vec<LegacyRow>> {
    macro_rules! rows {
        ($rows:expr) => {
            $rows
                .iter()
                .map(|r| {
                    Ok(LegacyRow {
                        user_id: r.try_get("user_id")?,
                        mobile: r.try_get("mobile")?,
                        password_hash: r.try_get("password_hash")?,
                        last_login: r.try_get("last_login")?,
                        last_login_stamp: r.try_get("last_login_stamp")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        };
    }
    match SqlKind::of(url) {
        Some(SqlKind::Postgres) => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await?;
            let rows = sqlx::query(QUERY).fetch_all(&pool).await?;
            pool.close().await;
            Ok(rows!(rows))
        }
        Some(SqlKind::MySql) => {
            // utf8mb4, whatever the server's default: mobile numbers are ASCII, but a
            // table of another charset must not fail to decode.
            let options = <sqlx::mysql::MySqlConnectOptions as std::str::FromStr>::from_str(url)?.charset("utf8mb4");
            let pool = sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await?;
            let rows = sqlx::query(MYSQL_QUERY).fetch_all(&pool).await?;
            pool.close().await;
            Ok(rows!(rows))
        }
        Some(SqlKind::Sqlite) | None => {
            let path = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .unwrap_or(url);
            if !std::path::Path::new(path).exists() {
                anyhow::bail!("no such file: {path}");
            }
            let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path).read_only(true);
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(opts)
                .await?;
            let rows = sqlx::query(QUERY).fetch_all(&pool).await?;
            pool.close().await;
            Ok(rows!(rows))
        }
    }
}

/// `last_login_stamp` when present, else `last_login` read as UTC.
fn last_login(row: &LegacyRow) -> Option<i64> {
    if let Some(stamp) = row.last_login_stamp {
        return Some(stamp);
    }
    let text = row.last_login.as_deref()?.trim();
    let format = time::macros::format_description!(
        version = 2,
        "[year]-[month]-[day][first [T] [ ]][hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    time::PrimitiveDateTime::parse(text, &format)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

/// Imports every row into `users`, reading mobile numbers without `+` in
/// `default_region`; `progress(done, total)` is called as it goes.
pub async fn import(
    users: &dyn UserStore,
    audit: &Audit,
    default_region: phonenumber::country::Id,
    source: &str,
    progress: impl Fn(usize, usize),
) -> anyhow::Result<Summary> {
    let rows = read_rows(source)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read user_login from the source: {e:#}"))?;
    let total = rows.len();
    let now = crate::clock::now();
    let meta = RequestMeta::command();
    let mut summary = Summary::default();
    for (i, row) in rows.iter().enumerate() {
        let mobile = row
            .mobile
            .as_deref()
            .and_then(|m| crate::phone::normalize(m, default_region));
        let hash = row
            .password_hash
            .as_deref()
            .filter(|h| crate::legacy_hashes::is_supported(h));
        // An id of 0 or less is not one a store keeps as given (MySQL would assign
        // a new one for 0): counted as invalid.
        match (mobile, hash) {
            (Some(mobile), Some(hash)) if row.user_id > 0 => {
                let last = last_login(row);
                let user = UserRecord {
                    user_id: row.user_id,
                    mobile,
                    password_hash: hash.to_owned(),
                    roles: vec!["viewer".to_owned()],
                    disabled: false,
                    created_at: last.unwrap_or(now),
                    last_login: last,
                };
                if users.import(&user).await? {
                    summary.imported += 1;
                    audit
                        .record(AuditEvent::ok(Event::Register, &meta, "imported by command").user(user.user_id))
                        .await;
                } else {
                    summary.skipped += 1;
                }
            }
            _ => summary.invalid += 1,
        }
        if (i + 1) % 1000 == 0 || i + 1 == total {
            progress(i + 1, total);
        }
    }
    users.finish_import().await?;
    Ok(summary)
}
