//! Fills an embedded session store with N live sessions (default 1,000,000), one per
//! user, for the memory and restart measurements of docs/src/benchmarks.md.
//! Usage: seed_sessions <data dir> [count]

use std::sync::Arc;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("usage: seed_sessions <data dir> [count]"));
    let count: i64 = args.next().map(|c| c.parse()).transpose()?.unwrap_or(1_000_000);
    let path = dir.join("sessions.db");
    // Create and migrate through the store itself, then bulk-insert in one transaction.
    passport::store::embedded::EmbeddedSessions::open(&path, Arc::default()).await?;
    let mut conn = SqliteConnectOptions::new()
        .filename(&path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Off)
        .connect()
        .await?;
    let now = passport::clock::now();
    let mut tx = conn.begin().await?;
    for i in 0..count {
        let sid = passport::ids::SessionId::random();
        sqlx::query(
            "INSERT INTO sessions (session_id, user_id, login_time, created_at, expires_at, device, ip, \
             refresh_digest, refresh_generation, rotated_at) VALUES (?, ?, ?, ?, ?, 'bench', '127.0.0.1', ?, 0, 0)",
        )
        .bind(&sid.0[..])
        .bind(1_000_000 + i)
        .bind(now)
        .bind(now)
        .bind(now + 30 * 86_400)
        .bind(&[7u8; 32][..])
        .execute(&mut *tx)
        .await?;
        if (i + 1) % 200_000 == 0 {
            eprintln!("seed_sessions: {} / {count}", i + 1);
        }
    }
    tx.commit().await?;
    conn.close().await?;
    println!("{count}");
    Ok(())
}
