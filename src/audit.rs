//! The user action log (SPEC §7): typed events, one JSON object per line,
//! written by one task so lines never interleave, flushed before shutdown ends.
//!
//! Events carry ids, addresses and machine codes only: never a password, token,
//! refresh token or secret. serde_json escapes every string, so a value with a
//! newline or a quote cannot break or add a line.

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::ids::SessionId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Register,
    Login,
    LoginFailed,
    Logout,
    LogoutAll,
    Refresh,
    RefreshReused,
    SessionReplaced,
    SessionRevoked,
    PasswordChanged,
    RateLimited,
    TokenRejected,
    UserDisabled,
    UserEnabled,
    RoleGranted,
    RoleWithdrawn,
    StreamCreated,
    StreamKeyRotated,
    StreamDeleted,
    StreamPublish,
    StreamPlay,
    StreamUpdate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Denied,
}

/// Where an action came from: an HTTP request, or a command on the server's host.
#[derive(Clone, Debug, Default)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub url: Option<String>,
    pub method: Option<String>,
}

impl RequestMeta {
    /// An action of the `passport` command line (no request, no address).
    pub fn command() -> RequestMeta {
        RequestMeta::default()
    }
}

/// One line of the log. Every key is always present (null where it does not apply).
#[derive(Clone, Debug, Serialize)]
pub struct AuditEvent {
    pub ts: String,
    pub event: Event,
    pub user_id: Option<i64>,
    pub session_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub url: Option<String>,
    pub method: Option<String>,
    pub msg: &'static str,
    pub outcome: Outcome,
    pub reason: Option<&'static str>,
}

impl AuditEvent {
    fn new(
        event: Event,
        meta: &RequestMeta,
        msg: &'static str,
        outcome: Outcome,
        reason: Option<&'static str>,
    ) -> Self {
        let ts = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        AuditEvent {
            ts,
            event,
            user_id: None,
            session_id: None,
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            url: meta.url.clone(),
            method: meta.method.clone(),
            msg,
            outcome,
            reason,
        }
    }

    pub fn ok(event: Event, meta: &RequestMeta, msg: &'static str) -> Self {
        Self::new(event, meta, msg, Outcome::Ok, None)
    }

    /// A refused action; `reason` is the machine error code the client got.
    pub fn denied(event: Event, meta: &RequestMeta, msg: &'static str, reason: &'static str) -> Self {
        Self::new(event, meta, msg, Outcome::Denied, Some(reason))
    }

    pub fn user(mut self, user_id: i64) -> Self {
        self.user_id = Some(user_id);
        self
    }

    pub fn session(mut self, session_id: &SessionId) -> Self {
        self.session_id = Some(session_id.encode());
        self
    }
}

enum Command {
    Write(Box<AuditEvent>),
    Flush(oneshot::Sender<()>),
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct Audit {
    tx: mpsc::Sender<Command>,
}

/// Events that may wait for the writer before senders slow down (never dropped).
const QUEUE: usize = 16 * 1024;

impl Audit {
    /// Opens the log for appending (creating its directory) and starts the writer.
    pub fn start(path: &Path) -> anyhow::Result<Audit> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| anyhow::anyhow!("cannot create the audit log directory {}: {e}", dir.display()))?;
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| anyhow::anyhow!("cannot open the audit log {}: {e}", path.display()))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        // A plain thread: the file writes are blocking and must not stall the runtime.
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_loop(file, rx))?;
        Ok(Audit { tx })
    }

    pub async fn record(&self, event: AuditEvent) {
        if self.tx.send(Command::Write(Box::new(event))).await.is_err() {
            tracing::error!("audit writer has stopped; an event was not written");
        }
    }

    /// Returns once everything recorded before the call is written to the file.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

fn write_loop(file: std::fs::File, mut rx: mpsc::Receiver<Command>) {
    let mut out = std::io::BufWriter::new(file);
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        // Write everything already queued, then flush once.
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Write(event) => match serde_json::to_vec(&event) {
                    Ok(mut line) => {
                        line.push(b'\n');
                        if let Err(e) = out.write_all(&line) {
                            tracing::error!(error = %e, "audit log write failed");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "audit event not serializable"),
                },
                Command::Flush(done) => waiting.push(done),
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = out.flush().and_then(|_| out.get_ref().sync_data()) {
            tracing::error!(error = %e, "audit log flush failed");
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hostile_values_stay_on_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b.log");
        let audit = Audit::start(&path).unwrap();
        let meta = RequestMeta {
            ip: Some("1.2.3.4".into()),
            user_agent: Some("ua\n{\"event\":\"forged\"}\r\n\"".into()),
            url: Some("/x\ny".into()),
            method: Some("GET".into()),
        };
        audit
            .record(AuditEvent::ok(Event::Login, &meta, "logged in").user(1))
            .await;
        audit
            .record(AuditEvent::denied(
                Event::LoginFailed,
                &meta,
                "login failed",
                "invalid_credentials",
            ))
            .await;
        audit.flush().await;
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["user_agent"], meta.user_agent.clone().unwrap());
            assert_ne!(v["event"], "forged");
        }
    }
}
