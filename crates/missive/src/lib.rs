//! Missive, the application, grouped by role so the folder list is the architecture:
//!
//! - [`edge`]: the doors in (the REST API, the web console, SMTP submission) and what only they
//!   share (request state, rate limits, connection slots).
//! - [`ingest`]: the one accept path every door that takes mail to send calls.
//! - [`queue`]: one lease → attempt → record runner and its two users, the delivery worker and
//!   the webhook dispatcher.
//! - [`tenancy`]: the services behind the API and the console (accounts, keys, templates,
//!   domains, webhook endpoints, emails, usage).
//! - [`net`]: what reaches other machines: DNS, the target address policy, the SMTP client and
//!   the transports built on it.
//! - [`app`]: configuration, the command line, start-up and telemetry, which wire the rest.
//!
//! Dependencies go one way: edges call ingest and tenancy; ingest and tenancy call net, store
//! and core; queue users call net, store and core; only `app` knows them all. The binary in
//! `main.rs` only parses the command line and calls [`app::cli::run`], so the test suite drives
//! the same code.

pub mod app;
pub mod edge;
pub mod ingest;
pub mod net;
pub mod queue;
pub mod tenancy;

pub use app::config::Config;
pub use app::startup::Application;
