//! Passport: the authentication service of a live-video platform.
//!
//! Mobile + password accounts, HS256 access tokens checked against server-side
//! sessions on every request. See `SPEC.md` for the wire contract.

pub mod app;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod error;
pub mod http;
pub mod i18n;
pub mod identify;
pub mod import;
pub mod legacy_hashes;
pub mod passwords;
pub mod phone;
pub mod profiles;
pub mod ratelimit;
pub mod refresh;
pub mod scheduling;
pub mod sessions;
pub mod store;
pub mod tokens;
pub mod users;

pub use app::{App, AppState};
pub use config::Config;
