//! The command line of SPEC §10: `serve` and the administrative commands, all
//! reading the same configuration (flag > env > file > default).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::App;
use crate::audit::RequestMeta;
use crate::config::{Config, ConfigError, Sources, SETTINGS};
use crate::error::ApiError;
use crate::i18n::Lang;
use crate::state::AppState;
use crate::store::{self, Mode, UserRecord};
use crate::streams::Actor;
use crate::tokens::{self, KeyRing, TokenError};

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

/// Every setting of `config::SETTINGS` as a flag with its environment variable,
/// global to every subcommand (clap gives flag > env). Built from that table, so a
/// setting declared there is on the command line with nothing more to write.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// What flags and the environment gave, by setting key.
    given: Vec<(&'static str, String)>,
}

impl clap::Args for Settings {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        SETTINGS.iter().fold(cmd, |cmd, s| {
            let help: Vec<&str> = s.help.split_whitespace().collect();
            cmd.arg(
                clap::Arg::new(s.key)
                    .long(s.flag())
                    .env(s.env())
                    .value_name(s.key.to_ascii_uppercase())
                    .help(help.join(" ").trim_end_matches('.').to_owned())
                    .hide_env_values(s.hide_value)
                    .global(true),
            )
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for Settings {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let given = SETTINGS
            .iter()
            .filter_map(|s| matches.get_one::<String>(s.key).map(|v| (s.key, v.clone())))
            .collect();
        Ok(Settings { given })
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
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
    /// Manage live streams.
    #[command(subcommand)]
    Stream(StreamCommand),
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell),
    /// as in `passport completions bash > /etc/bash_completion.d/passport`.
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand, Debug)]
pub enum StreamCommand {
    /// Create a stream for a user (whatever their roles); prints its key, once.
    Add { mobile: String, name: String },
    /// One line per stream (one user's, or all): name, owner, access, created.
    List { mobile: Option<String> },
    /// Give a stream a new key, printed once; the old key stops working at once.
    Rotate { name: String },
    /// Delete a stream.
    Delete { name: String },
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
    /// file or a PostgreSQL, MySQL or MariaDB database; keeps ids and hashes; safe
    /// to run again.
    Import { url: String },
    /// Grant or withdraw a role (streamer, or any name forward auth passes on).
    #[command(subcommand)]
    Role(RoleCommand),
}

#[derive(Subcommand, Debug)]
pub enum RoleCommand {
    /// Grant a role: a lowercase letter, then up to 31 of a-z, 0-9, _ and -.
    Add { mobile: String, role: String },
    /// Withdraw a role (every user keeps viewer).
    Remove { mobile: String, role: String },
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
        let mut sources = Sources::from_pairs(self.settings.given.iter().cloned())?;
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
        Command::Stream(cmd) => with_state(config, |state| async move { stream(&state, cmd).await }).await,
        Command::Completions { shell } => {
            completions(shell);
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Refused(why)) => {
            eprintln!("passport: {}", why.replace('\n', " "));
            ExitCode::from(1)
        }
    }
}

/// Writes the completion script for `shell` to stdout. Needs no configuration.
pub fn completions(shell: clap_complete::Shell) {
    use clap::CommandFactory;
    use std::io::Write;
    let mut cmd = Cli::command();
    // Into memory first: the generator panics on a closed stdout (`| head`).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "passport", &mut script);
    if let Err(e) = std::io::stdout().lock().write_all(&script) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("passport: cannot write the completion script: {e}");
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
    state
        .accounts
        .find(mobile)
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
            let id = state.accounts.register(&mobile, password, &meta).await?;
            say!("added user {id}");
        }
        UserCommand::Passwd { mobile } => {
            let u = existing(state, &mobile).await?;
            let password = read_password()?;
            let n = state.accounts.set_password(&u, password, &meta).await?;
            say!("password set for user {}; {n} session(s) ended", u.user_id);
        }
        UserCommand::Disable { mobile } => {
            let u = existing(state, &mobile).await?;
            let n = state.accounts.set_disabled(&u, true, &meta).await?;
            say!("user {} disabled; {n} session(s) ended", u.user_id);
        }
        UserCommand::Enable { mobile } => {
            let u = existing(state, &mobile).await?;
            state.accounts.set_disabled(&u, false, &meta).await?;
            say!("user {} enabled", u.user_id);
        }
        UserCommand::Import { url } => {
            let progress = |done, total| eprintln!("import: {done}/{total} rows read");
            let (users, region) = (&*state.stores.users, state.config.default_region);
            let summary = crate::import::import(users, &state.audit, region, &url, progress).await?;
            say!(
                "imported {}, skipped {} (already present), invalid {}",
                summary.imported,
                summary.skipped,
                summary.invalid
            );
        }
        UserCommand::Role(cmd) => {
            let (mobile, role, grant) = match &cmd {
                RoleCommand::Add { mobile, role } => (mobile, role, true),
                RoleCommand::Remove { mobile, role } => (mobile, role, false),
            };
            let u = existing(state, mobile).await?;
            let changed = state.accounts.change_role(&u, role, grant, &meta).await?;
            let (done, already) = if grant {
                ("granted", "has")
            } else {
                ("withdrawn", "does not have")
            };
            if changed {
                say!("role {role} {done} for user {}", u.user_id);
            } else {
                say!("user {} already {already} role {role}", u.user_id);
            }
        }
        UserCommand::List => {
            for u in state.stores.users.list().await.map_err(ApiError::from)? {
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
                .stores
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
            let n = state
                .sessions
                .end_all(u.user_id, &RequestMeta::command(), "ended by command")
                .await?;
            say!("{n} session(s) of user {} ended", u.user_id);
        }
    }
    Ok(())
}

/// A stream command's answer: the key alone on stdout (for scripts), what happened
/// on stderr.
async fn stream(state: &AppState, cmd: StreamCommand) -> Result<(), Refused> {
    let meta = RequestMeta::command();
    match cmd {
        StreamCommand::Add { mobile, name } => {
            let u = existing(state, &mobile).await?;
            let created = state.streams.add_for(&u, &name, &meta).await?;
            eprintln!(
                "passport: stream {name} created for user {}; its key is shown once",
                u.user_id
            );
            say!("{}", created.key);
        }
        StreamCommand::List { mobile } => {
            let owner = match mobile {
                Some(m) => Some(existing(state, &m).await?.user_id),
                None => None,
            };
            for s in state.streams.list(owner).await? {
                say!(
                    "{}\tuser {}\t{}\tcreated {}",
                    s.name,
                    s.owner_id,
                    s.access.as_str(),
                    crate::clock::rfc3339(s.created_at)
                );
            }
        }
        StreamCommand::Rotate { name } => {
            let key = state.streams.rotate(Actor::Command, &name, &meta).await?;
            eprintln!("passport: stream {name} has a new key, shown once; the old one no longer works");
            say!("{key}");
        }
        StreamCommand::Delete { name } => {
            state.streams.delete(Actor::Command, &name, &meta).await?;
            say!("stream {name} deleted");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config_from(args: &[&str]) -> Config {
        let cli = Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        cli.load_config().unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// What a configuration holds, secrets and URLs included (its `Debug` hides them).
    fn seen(c: &Config) -> String {
        let secret = match c.secret() {
            crate::config::SecretSource::Inline(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            other => format!("{other:?}"),
        };
        let redis = c.redis_url.as_ref().map(|u| u.expose().to_owned());
        format!("{c:?} {secret} {} {redis:?}", c.database_url.expose())
    }

    /// Every setting of the table reaches `Config` by its flag (before or after a
    /// subcommand) and by its key in a file, the same way each time, and has its
    /// environment variable on the command line. (Reading the variable is clap's,
    /// as for the flag; `tests/api/commands.rs` runs the binary with variables set,
    /// since changing this process's environment would race the other tests.)
    #[test]
    fn every_setting_reaches_the_config_by_flag_env_and_file() {
        let cmd = <Cli as clap::CommandFactory>::command();
        let default = seen(&config_from(&["passport"]));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("passport.toml");
        let file_arg = file.display().to_string();
        for s in SETTINGS {
            let arg = cmd.get_arguments().find(|a| a.get_id() == s.key).unwrap();
            assert_eq!(arg.get_long(), Some(s.flag().as_str()), "{}", s.key);
            assert_eq!(arg.get_env(), Some(std::ffi::OsStr::new(&s.env())), "{}", s.key);
            assert!(arg.is_global_set(), "{}", s.key);

            let flag = format!("--{}", s.flag());
            let by_flag = seen(&config_from(&["passport", &flag, s.example]));
            assert_ne!(by_flag, default, "{flag} {} changed nothing", s.example);
            let after = seen(&config_from(&["passport", "migrate", &flag, s.example]));
            assert_eq!(after, by_flag, "{flag} after a subcommand");

            let value = toml::Value::String(s.example.to_owned());
            std::fs::write(&file, format!("{} = {value}\n", s.key)).unwrap();
            let by_file = seen(&config_from(&["passport", "--config", &file_arg]));
            assert_eq!(by_file, by_flag, "{} in a file", s.key);
        }
    }

    #[test]
    fn a_bad_flag_value_names_the_setting_its_variable_and_its_flag() {
        let cli = Cli::try_parse_from(["passport", "--max-sessions", "none"]).unwrap();
        let text = cli.load_config().unwrap_err().to_string();
        for part in ["max_sessions", "PASSPORT_MAX_SESSIONS", "--max-sessions"] {
            assert!(text.contains(part), "{text}");
        }
    }
}
