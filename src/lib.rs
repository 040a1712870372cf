//! Passport: the authentication service of a live-video platform.
//!
//! Mobile + password accounts, HS256 access tokens checked against server-side
//! sessions on every request. See `SPEC.md` for the wire contract.
//!
//! The modules form layers, each importing only those below it; nothing below the
//! surfaces names `crate::http` or `crate::app` (`.ci/run` checks it).

// Surfaces: how the outside reaches the services.
pub mod app;
pub mod cli;
pub mod http;

// Services: one domain operation each, and the container that wires them.
pub mod identify;
pub mod import;
pub mod profiles;
pub mod ratelimit;
pub mod refresh;
#[cfg(test)]
mod service_fixtures;
pub mod sessions;
pub mod state;
pub mod stream_auth;
pub mod streams;
pub mod tickets;
pub mod users;

// Core: the API's error, the Authorization header, tokens.
pub mod credentials;
pub mod error;
pub mod keyed;
pub mod tokens;

// Infrastructure: storage, password hashing, the audit log.
pub mod audit;
pub mod passwords;
pub mod store;

// Leaves: no dependency inside the crate but each other's plain types.
pub mod clock;
pub mod config;
pub mod i18n;
pub mod ids;
pub mod legacy_hashes;
pub mod observe;
pub mod phone;
pub mod scheduling;

pub use app::App;
pub use config::Config;
pub use state::AppState;
