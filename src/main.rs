//! The `passport` binary: parse the command line, set up tracing, dispatch.

use std::process::ExitCode;

use clap::Parser;
use passport::cli::{self, Cli};
use passport::config::LogFormat;
use tracing_subscriber::EnvFilter;

// Every request allocates a little on whichever worker thread runs it; mimalloc's
// per-thread heaps serve that without glibc's arena locking.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A completion script needs no configuration (a bad setting must not stop it).
    if let Some(cli::Command::Completions { shell }) = cli.command {
        cli::completions(shell);
        return ExitCode::SUCCESS;
    }
    let serving = matches!(cli.command, None | Some(cli::Command::Serve));
    // Diagnostics go to stderr; RUST_LOG overrides. Commands stay quiet by default
    // so their stdout is just their answer.
    let config = match cli.load_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("passport: {e}");
            return ExitCode::from(2);
        }
    };
    let default = if serving { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => logs.init(),
        // One object per line, with the fields of the request's span (its id among
        // them) on every event inside it.
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(false).init(),
    }
    let runtime = match passport::scheduling::runtime(serving && config.pin_workers) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("passport: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(cli::run(cli, config))
}
