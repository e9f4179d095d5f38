//! The `missive` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    // One TLS provider for the whole process, before anything opens a TLS connection.
    drop(rustls::crypto::ring::default_provider().install_default());
    missive::app::cli::run(missive::app::cli::Cli::parse()).await
}
