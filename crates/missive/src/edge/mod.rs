//! The doors in: the REST API ([`api`]), the web console ([`console`]), SMTP submission
//! ([`smtp`]) and the inbound MX for what comes back to return paths ([`mx`]).
//!
//! Owns: protocol translation (HTTP requests and JSON errors, SMTP commands and typed replies),
//! authentication of callers, per-process request rate limits ([`rate_limit`]), counted places
//! per client or tenant ([`slots`]) and the state the API and the console share ([`state`]).
//! May call: [`crate::ingest`] to accept mail, [`crate::tenancy`] for everything else a caller
//! reads or changes, the store and core. No rule of the accept path lives here.

pub mod api;
pub mod console;
pub mod mx;
pub mod rate_limit;
pub mod slots;
pub mod smtp;
pub mod state;
