//! The command line of SPEC §10: `serve` and the administrative commands, all
//! reading the same configuration (flag > env > file > default).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::app::{App, AppState};
use crate::audit::RequestMeta;
use crate::config::{Config, ConfigError, Sources};
use crate::error::ApiError;
use crate::i18n::Lang;
use crate::store::{self, Mode, UserRecord};
use crate::tokens::{self, KeyRing, TokenError};
use crate::{sessions, users};

#[derive(Parser, Debug)]
#[command(
    name = "passport",
    version,
    about = "Authentication service: mobile + password, HS256 tokens, server-side sessions"
)]
pub struct Cli {
    /// A TOML file of settings (keys as in `max_sessions = 3`).
    #[arg(long, env = "PASSPORT_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub settings: Settings,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Every setting as a flag, with its environment variable (clap gives flag > env).
#[derive(Args, Debug, Default)]
pub struct Settings {
    /// Address to serve on (port 0: any free port).
    #[arg(long, env = "PASSPORT_LISTEN", global = true)]
    listen: Option<String>,
    /// Embedded database and generated secret.
    #[arg(long, env = "PASSPORT_DATA_DIR", global = true)]
    data_dir: Option<String>,
    /// sqlite://… or postgres://…
    #[arg(long, env = "PASSPORT_DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// redis://… (unset: the embedded session store).
    #[arg(long, env = "PASSPORT_REDIS_URL", global = true, hide_env_values = true)]
    redis_url: Option<String>,
    #[arg(long, env = "PASSPORT_REDIS_PREFIX", global = true)]
    redis_prefix: Option<String>,
    /// HS256 signing secret, at least 32 bytes.
    #[arg(long, env = "PASSPORT_SECRET_KEY", global = true, hide_env_values = true)]
    secret_key: Option<String>,
    /// File holding the signing secret.
    #[arg(long, env = "PASSPORT_SECRET_KEY_FILE", global = true)]
    secret_key_file: Option<String>,
    /// Directory of <kid>.key files: the key ring; the greatest kid signs.
    #[arg(long, env = "PASSPORT_SECRET_KEYS_DIR", global = true)]
    secret_keys_dir: Option<String>,
    #[arg(long, env = "PASSPORT_ISSUER", global = true)]
    issuer: Option<String>,
    /// Access token lifetime, seconds.
    #[arg(long, env = "PASSPORT_ACCESS_TTL", global = true)]
    access_ttl: Option<String>,
    /// Session / refresh lifetime, seconds.
    #[arg(long, env = "PASSPORT_REFRESH_TTL", global = true)]
    refresh_ttl: Option<String>,
    /// Clock leeway, seconds (0-300).
    #[arg(long, env = "PASSPORT_LEEWAY", global = true)]
    leeway: Option<String>,
    /// Sessions per user.
    #[arg(long, env = "PASSPORT_MAX_SESSIONS", global = true)]
    max_sessions: Option<String>,
    /// evict_oldest or reject.
    #[arg(long, env = "PASSPORT_SESSION_OVERFLOW", global = true)]
    session_overflow: Option<String>,
    #[arg(long, env = "PASSPORT_REFRESH_GRACE", global = true)]
    refresh_grace: Option<String>,
    /// Failed logins per mobile per window, as count/seconds.
    #[arg(long, env = "PASSPORT_RATE_LOGIN_ACCOUNT", global = true)]
    rate_login_account: Option<String>,
    /// Login attempts per client IP per window, as count/seconds.
    #[arg(long, env = "PASSPORT_RATE_LOGIN_IP", global = true)]
    rate_login_ip: Option<String>,
    /// Registrations per client IP per window, as count/seconds.
    #[arg(long, env = "PASSPORT_RATE_REGISTER_IP", global = true)]
    rate_register_ip: Option<String>,
    /// CIDRs whose X-Forwarded-For is believed, comma-separated.
    #[arg(long, env = "PASSPORT_TRUSTED_PROXIES", global = true)]
    trusted_proxies: Option<String>,
    #[arg(long, env = "PASSPORT_PASSWORD_MIN_LENGTH", global = true)]
    password_min_length: Option<String>,
    /// Audit log path.
    #[arg(long, env = "PASSPORT_AUDIT_LOG", global = true)]
    audit_log: Option<String>,
    /// Region for mobile numbers without +.
    #[arg(long, env = "PASSPORT_DEFAULT_REGION", global = true)]
    default_region: Option<String>,
    /// en or zh.
    #[arg(long, env = "PASSPORT_DEFAULT_LANG", global = true)]
    default_lang: Option<String>,
    /// Password-hashing threads (default: cores).
    #[arg(long, env = "PASSPORT_HASH_WORKERS", global = true)]
    hash_workers: Option<String>,
    /// Hash requests that may wait; beyond it 503 busy.
    #[arg(long, env = "PASSPORT_HASH_QUEUE", global = true)]
    hash_queue: Option<String>,
    /// Pin request threads one per CPU (true/false).
    #[arg(long, env = "PASSPORT_PIN_WORKERS", global = true)]
    pin_workers: Option<String>,
    /// Keep valid Redis sessions in memory, following Redis's invalidations (true/false).
    #[arg(long, env = "PASSPORT_REDIS_SESSION_CACHE", global = true)]
    redis_session_cache: Option<String>,
}

impl Settings {
    fn pairs(&self) -> Vec<(&'static str, &Option<String>)> {
        vec![
            ("listen", &self.listen),
            ("data_dir", &self.data_dir),
            ("database_url", &self.database_url),
            ("redis_url", &self.redis_url),
            ("redis_prefix", &self.redis_prefix),
            ("secret_key", &self.secret_key),
            ("secret_key_file", &self.secret_key_file),
            ("secret_keys_dir", &self.secret_keys_dir),
            ("issuer", &self.issuer),
            ("access_ttl", &self.access_ttl),
            ("refresh_ttl", &self.refresh_ttl),
            ("leeway", &self.leeway),
            ("max_sessions", &self.max_sessions),
            ("session_overflow", &self.session_overflow),
            ("refresh_grace", &self.refresh_grace),
            ("rate_login_account", &self.rate_login_account),
            ("rate_login_ip", &self.rate_login_ip),
            ("rate_register_ip", &self.rate_register_ip),
            ("trusted_proxies", &self.trusted_proxies),
            ("password_min_length", &self.password_min_length),
            ("audit_log", &self.audit_log),
            ("default_region", &self.default_region),
            ("default_lang", &self.default_lang),
            ("hash_workers", &self.hash_workers),
            ("hash_queue", &self.hash_queue),
            ("pin_workers", &self.pin_workers),
            ("redis_session_cache", &self.redis_session_cache),
        ]
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the service (the default).
    Serve,
    /// Create or upgrade the schema, then exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Show or end a user's sessions.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Work with tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user; the password is read from stdin (one trailing newline dropped).
    Add { mobile: String },
    /// Set a user's password (stdin); ends the user's sessions.
    Passwd { mobile: String },
    /// Disable a user; ends the user's sessions.
    Disable { mobile: String },
    /// Enable a user.
    Enable { mobile: String },
    /// One line per user.
    List,
    /// Import users from the original Flask schema (table user_login) in a SQLite
    /// file or a PostgreSQL database; keeps ids and hashes; safe to run again.
    Import { url: String },
}

#[derive(Subcommand, Debug)]
pub enum SessionCommand {
    /// Show a user's live sessions.
    List { mobile: String },
    /// End every session of a user.
    Revoke { mobile: String },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Verify a token with the configured keys; print header, claims and verdict as JSON.
    Inspect { token: String },
}

impl Cli {
    /// The configuration these arguments, the environment and the file give.
    pub fn load_config(&self) -> Result<Config, ConfigError> {
        let given = self
            .settings
            .pairs()
            .into_iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k, v)));
        let mut sources = Sources::from_pairs(given);
        if let Some(path) = &self.config {
            sources = sources.with_file(path)?;
        }
        Config::from_sources(&sources)
    }
}

/// A refused operation: a one-line reason, exit status 1.
struct Refused(String);

impl From<ApiError> for Refused {
    fn from(e: ApiError) -> Self {
        // An operator reads this: server-side failures keep their cause.
        let why = if e.status().is_server_error() {
            e.to_string()
        } else {
            e.message(Lang::En)
        };
        Refused(format!("{}: {why}", e.code()))
    }
}

impl From<anyhow::Error> for Refused {
    fn from(e: anyhow::Error) -> Self {
        Refused(format!("{e:#}"))
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli, config: Config) -> ExitCode {
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => migrate(&config).await,
        Command::Token(TokenCommand::Inspect { token }) => inspect(&config, &token),
        Command::User(cmd) => with_state(config, |state| async move { user(&state, cmd).await }).await,
        Command::Session(cmd) => with_state(config, |state| async move { session(&state, cmd).await }).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Refused(why)) => {
            eprintln!("passport: {}", why.replace('\n', " "));
            ExitCode::from(1)
        }
    }
}

/// Writes one line of a command's answer to stdout. `println!` panics when the
/// reader has gone (`passport token inspect … | head`); here the rest of the answer
/// is dropped and the command ends with its own exit status, its work done.
fn say(line: std::fmt::Arguments) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{line}") {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("passport: cannot write the answer: {e}");
        }
    }
}

macro_rules! say {
    ($($arg:tt)*) => { say(format_args!($($arg)*)) };
}

async fn serve(config: Config) -> Result<(), Refused> {
    let app = App::build(config).await?;
    app.run().await?;
    Ok(())
}

async fn migrate(config: &Config) -> Result<(), Refused> {
    let stores = store::connect(config, Mode::Command).await?;
    stores.sessions.close().await;
    stores.users.close().await;
    say!("schema is up to date");
    Ok(())
}

/// Opens the stores as a one-shot command, runs `f`, then flushes and closes.
async fn with_state<F, Fut>(config: Config, f: F) -> Result<(), Refused>
where
    F: FnOnce(AppState) -> Fut,
    Fut: std::future::Future<Output = Result<(), Refused>>,
{
    let state = AppState::build(config, Mode::Command).await?;
    let result = f(state.clone()).await;
    state.close().await;
    result
}

fn read_password() -> Result<String, Refused> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| Refused(format!("cannot read the password from stdin: {e}")))?;
    if text.ends_with('\n') {
        text.pop();
    }
    Ok(text)
}

async fn existing(state: &AppState, mobile: &str) -> Result<UserRecord, Refused> {
    users::find(state, mobile)
        .await?
        .ok_or_else(|| Refused(format!("no user with mobile {mobile}")))
}

fn describe(u: &UserRecord) -> String {
    format!(
        "{}\t{}\t{}\t{}\tcreated {}",
        u.user_id,
        u.mobile,
        u.roles.join(","),
        if u.disabled { "disabled" } else { "active" },
        crate::clock::rfc3339(u.created_at)
    )
}

async fn user(state: &AppState, cmd: UserCommand) -> Result<(), Refused> {
    let meta = RequestMeta::command();
    match cmd {
        UserCommand::Add { mobile } => {
            let password = read_password()?;
            let id = users::register(state, &mobile, password, &meta).await?;
            say!("added user {id}");
        }
        UserCommand::Passwd { mobile } => {
            let u = existing(state, &mobile).await?;
            let password = read_password()?;
            let n = users::set_password(state, &u, password, &meta).await?;
            say!("password set for user {}; {n} session(s) ended", u.user_id);
        }
        UserCommand::Disable { mobile } => {
            let u = existing(state, &mobile).await?;
            let n = users::set_disabled(state, &u, true, &meta).await?;
            say!("user {} disabled; {n} session(s) ended", u.user_id);
        }
        UserCommand::Enable { mobile } => {
            let u = existing(state, &mobile).await?;
            users::set_disabled(state, &u, false, &meta).await?;
            say!("user {} enabled", u.user_id);
        }
        UserCommand::Import { url } => {
            let summary =
                crate::import::import(state, &url, |done, total| eprintln!("import: {done}/{total} rows read")).await?;
            say!(
                "imported {}, skipped {} (already present), invalid {}",
                summary.imported,
                summary.skipped,
                summary.invalid
            );
        }
        UserCommand::List => {
            for u in state.users.list().await.map_err(ApiError::from)? {
                say!("{}", describe(&u));
            }
        }
    }
    Ok(())
}

async fn session(state: &AppState, cmd: SessionCommand) -> Result<(), Refused> {
    match cmd {
        SessionCommand::List { mobile } => {
            let u = existing(state, &mobile).await?;
            for s in state
                .sessions
                .list(u.user_id, crate::clock::now())
                .await
                .map_err(ApiError::from)?
            {
                say!(
                    "{}\tcreated {}\texpires {}\tdevice {}\tip {}",
                    s.session_id,
                    crate::clock::rfc3339(s.created_at),
                    crate::clock::rfc3339(s.expires_at),
                    s.device.as_deref().unwrap_or("-"),
                    s.ip.as_deref().unwrap_or("-"),
                );
            }
        }
        SessionCommand::Revoke { mobile } => {
            let u = existing(state, &mobile).await?;
            let n = sessions::end_all(state, u.user_id, &RequestMeta::command(), "ended by command").await?;
            say!("{n} session(s) of user {} ended", u.user_id);
        }
    }
    Ok(())
}

fn inspect(config: &Config, token: &str) -> Result<(), Refused> {
    let keys = KeyRing::load(config)?;
    let token = token.trim();
    let verdict = match keys.verify(token, crate::clock::now()) {
        Ok(_) => "valid",
        Err(TokenError::Expired) => "token_expired",
        Err(TokenError::Invalid) => "invalid_token",
    };
    let header = tokens::peek_segment(token, 0);
    let kid = header.as_ref().and_then(|h| h.get("kid")).cloned();
    let report = serde_json::json!({
        "header": header,
        "claims": tokens::peek_segment(token, 1),
        "kid": kid,
        "verdict": verdict,
    });
    say!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    if verdict == "valid" {
        Ok(())
    } else {
        Err(Refused(format!("token is not valid: {verdict}")))
    }
}
