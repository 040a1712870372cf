//! One integration-test binary: every test starts its own app on port 0.

mod audit;
mod book;
mod chromium;
mod commands;
mod durability;
mod envelope;
mod flows;
mod helpers;
mod hooks;
mod identify_cost;
mod keyring;
mod legacy;
mod live;
mod openapi;
mod operations;
mod pages;
mod reference;
mod refresh;
#[cfg(target_os = "linux")] // reads /proc
mod scheduling;
mod sessions;
mod slow_clients;
mod streams;
#[path = "../support/mod.rs"]
mod support;
mod throttling;
mod token_attacks;
