//! Missive, the application: configuration, telemetry, start-up, and the HTTP API.
//!
//! The binary in `main.rs` only parses the command line and calls [`cli::run`]; everything else
//! lives here so the test suite drives the same code.

pub mod accounts;
pub mod api;
pub mod cache;
pub mod cli;
pub mod config;
pub mod console;
pub mod credentials;
pub mod delivery;
pub mod dns;
pub mod domains;
pub mod ingest;
pub mod key_cache;
pub mod pace;
pub mod rate_limit;
pub mod registration;
pub mod slots;
pub mod smtp;
pub mod startup;
pub mod state;
pub mod targets;
pub mod telemetry;
pub mod templates;
pub mod usage;
pub mod webhooks;

pub use config::Config;
pub use startup::Application;
