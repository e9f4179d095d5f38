//! The parsers of setting values: each says what it expected, naming the value it got.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use secrecy::{SecretBox, SecretString};

use super::{LogFormat, MIN_ADMIN_KEY_LEN};

pub(super) fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("`{s}` is not a socket address such as 127.0.0.1:8025"))
}

pub(super) fn parse_path(s: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(s))
}

pub(super) fn parse_domain(s: &str) -> Result<missive_core::Domain, String> {
    missive_core::Domain::parse(s).map_err(|e| e.to_string())
}

pub(super) fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("`{s}` is not a boolean (true or false)")),
    }
}

pub(super) fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "pretty" => Ok(LogFormat::Pretty),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("expected `pretty` or `json`, got `{other}`")),
    }
}

pub(super) fn parse_host(s: &str) -> Result<String, String> {
    if s == "localhost" {
        return Ok(s.to_owned());
    }
    missive_core::Domain::parse(s)
        .map(|d| d.as_str().to_owned())
        .map_err(|_| format!("`{s}` is not a host name"))
}

pub(super) fn bounded<T: TryFrom<u64>>(min: u64, max: u64) -> impl Fn(&str) -> Result<T, String> {
    move |s| {
        s.trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| format!("`{s}` is not a whole number from {min} to {max}"))
    }
}

/// `0,5,300`: whole seconds, at least one, at most 20.
pub(super) fn parse_schedule(s: &str) -> Result<Vec<Duration>, String> {
    let steps: Vec<Duration> = s
        .split(',')
        .map(|step| seconds(0, 7 * 86400)(step))
        .collect::<Result<_, _>>()
        .map_err(|_| format!("`{s}` is not a list of seconds such as 0,5,300"))?;
    if steps.is_empty() || steps.len() > 20 {
        return Err("from 1 to 20 steps".to_owned());
    }
    Ok(steps)
}

pub(super) fn seconds(min: u64, max: u64) -> impl Fn(&str) -> Result<Duration, String> {
    move |s| bounded(min, max)(s).map(Duration::from_secs)
}

pub(super) fn millis(min: u64, max: u64) -> impl Fn(&str) -> Result<Duration, String> {
    move |s| bounded(min, max)(s).map(Duration::from_millis)
}

pub(super) fn parse_database_url(s: &str) -> Result<SecretString, String> {
    // Never echo the value: it may hold a password.
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        Ok(SecretString::from(s.to_owned()))
    } else {
        Err("must be a postgres:// or postgresql:// URL".to_owned())
    }
}

pub(super) fn parse_admin_key(s: &str) -> Result<SecretString, String> {
    if s.len() < MIN_ADMIN_KEY_LEN || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(format!(
            "must be at least {MIN_ADMIN_KEY_LEN} characters without spaces (try `openssl rand -hex 32`)"
        ))
    } else {
        Ok(SecretString::from(s.to_owned()))
    }
}

pub(super) fn parse_secret_keys(s: &str) -> Result<Vec<SecretBox<[u8; 32]>>, String> {
    s.split(',')
        .filter(|k| !k.trim().is_empty())
        .map(parse_secret_key)
        .collect()
}

pub(super) fn parse_secret_key(s: &str) -> Result<SecretBox<[u8; 32]>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|_| "must be base64 (try `openssl rand -base64 32`)".to_owned())?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("must decode to 32 bytes, got {}", b.len()))?;
    Ok(SecretBox::new(Box::new(key)))
}

pub(super) fn parse_feedback_address(s: &str) -> Result<String, String> {
    let address = missive_core::EmailAddress::parse(s).map_err(|e| e.to_string())?;
    Ok(address.as_str().to_ascii_lowercase())
}

pub(super) fn parse_public_url(s: &str) -> Result<String, String> {
    let url = s.trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must start with http:// or https://")?;
    if rest.is_empty() || rest.contains(['?', '#', ' ']) {
        return Err("must be a URL like https://mail.example.com".to_owned());
    }
    Ok(url.to_owned())
}
