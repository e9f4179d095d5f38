//! What wires the application together: the settings ([`config`]), the command line ([`cli`]),
//! the connection budget ([`budget`]), the parts built from the settings ([`parts`]), start-up
//! ([`startup`]), the supervisor of a running process ([`supervisor`]), and logs and metrics
//! ([`telemetry`]).
//!
//! Owns: the configuration and everything built from it. May call every other part of the
//! crate; nothing else calls it, apart from the binary and the test harness.

pub mod budget;
pub mod cli;
pub mod config;
pub mod parts;
pub mod startup;
pub mod supervisor;
pub mod telemetry;
