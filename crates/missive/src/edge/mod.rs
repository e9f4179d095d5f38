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

/// The origin a client reached this HTTP request on, for links handed back to it when
/// `MISSIVE_PUBLIC_URL` is unset: the Host header (when it is a plain host and port) and a
/// proxy's `X-Forwarded-Proto`.
pub(crate) fn request_origin(headers: &axum::http::HeaderMap) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .unwrap_or("localhost");
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|p| p.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
}
