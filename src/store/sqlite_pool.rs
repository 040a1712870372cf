//! What every SQLite file of ours shares: its connection options and its pool.

/// A SQLite pool of up to `max` connections. Each SQLite connection is a thread of
/// sqlx's, started by whichever thread opens it; one started by a pinned runtime
/// worker would be stuck on that worker's CPU (`scheduling`), so every new
/// connection hands its thread back all the process's CPUs.
///
/// Connections are not pinged before use (sqlx pings by default): a SQLite
/// connection is an open file in this process, with no peer that could have gone
/// away, and the ping is one more hand-off to the connection's thread and back
/// before every query. A failing file still fails the query itself.
pub(super) fn sqlite_pool(max: u32) -> sqlx::sqlite::SqlitePoolOptions {
    sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(max)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .test_before_acquire(false)
        .after_connect(|_, _| {
            Box::pin(async {
                crate::scheduling::release_threads_named(SQLITE_THREAD_NAME);
                Ok(())
            })
        })
}

/// How sqlx names a SQLite connection's thread (`sqlx-sqlite-worker-<n>`), as the
/// kernel keeps it: cut to 15 bytes.
const SQLITE_THREAD_NAME: &str = "sqlx-sqlite-wor";

/// SQLite connection options shared by every embedded file: WAL so readers never
/// wait for the writer, `synchronous = FULL` so a commit that returned survives a
/// crash or power loss, and a busy timeout for the command-line tool writing beside
/// a running server.
pub(super) fn sqlite_options(url: &str) -> anyhow::Result<sqlx::sqlite::SqliteConnectOptions> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    use std::str::FromStr;
    let opts = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(std::time::Duration::from_secs(5))
        .foreign_keys(true);
    if let Some(dir) = opts.get_filename().parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        }
    }
    Ok(opts)
}
