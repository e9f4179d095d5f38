//! What wires the application together: the settings ([`config`]), the command line ([`cli`]),
//! start-up and the supervisor of a running process ([`startup`]), and logs and metrics
//! ([`telemetry`]).
//!
//! Owns: the configuration and everything built from it. May call every other part of the
//! crate; nothing else calls it, apart from the binary and the test harness.

pub mod cli;
pub mod config;
pub mod startup;
pub mod telemetry;
