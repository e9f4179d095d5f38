//! Where mail leaves Missive: a delivery's [`Route`], the [`RelaySpec`] of a relay (its
//! address, TLS mode and credentials), and [`resolve`], the one rule that picks a route.
//!
//! A route names where an attempt goes; the delivery worker keeps one transport per route and
//! never looks at configuration. Configuration only produces the shared relay's spec, from
//! `MISSIVE_RELAY_URL` through [`RelaySpec::from_str`]. A tenant's own upstream server (its
//! [`TenantRelay`], set by the operator) is a route of its own.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};

use crate::TenantId;
use crate::named::named;

/// Where a delivery attempt goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    /// The operator's shared relay (`MISSIVE_RELAY_URL`).
    Shared,
    /// The tenant's own upstream server.
    Tenant(TenantId),
}

impl Route {
    /// The kind, as logs, metrics and the API name it: `shared` or `tenant`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        self.kind().as_str()
    }

    /// Which kind of route this is.
    #[must_use]
    pub const fn kind(self) -> RouteKind {
        match self {
            Self::Shared => RouteKind::Shared,
            Self::Tenant(_) => RouteKind::Tenant,
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which kind of route an attempt took, as recorded with it and shown by the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RouteKind {
    Shared,
    Tenant,
}

impl RouteKind {
    pub const ALL: [Self; 2] = [Self::Shared, Self::Tenant];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::Tenant => "tenant",
        }
    }
}

named!(RouteKind, "route kind", parse);

/// A tenant's own upstream server, as the operator set it (the password stays sealed in the
/// store; only whether there is one matters for routing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantRelay {
    pub host: String,
    pub port: u16,
    pub tls: RelayTls,
    pub username: Option<String>,
    /// Off: the tenant's mail takes the shared relay, and the settings are kept.
    pub enabled: bool,
}

impl TenantRelay {
    /// `host:port`, as [`SmtpRelay::addr`] writes it.
    #[must_use]
    pub fn addr(&self) -> String {
        host_port(&self.host, self.port)
    }
}

/// The route of a tenant's next attempts: its own server while one is set and enabled,
/// otherwise the shared relay.
#[must_use]
pub fn resolve(tenant: TenantId, relay: Option<&TenantRelay>) -> Route {
    match relay {
        Some(relay) if relay.enabled => Route::Tenant(tenant),
        _ => Route::Shared,
    }
}

/// Transport security towards a relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RelayTls {
    /// Plain text throughout.
    None,
    /// Plain text, then STARTTLS, which the relay must offer.
    StartTls,
    /// TLS from the first byte.
    Tls,
}

impl RelayTls {
    pub const ALL: [Self; 3] = [Self::None, Self::StartTls, Self::Tls];

    /// The name in URLs, settings and columns.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::StartTls => "starttls",
            Self::Tls => "tls",
        }
    }
}

named!(RelayTls, "relay TLS mode");

impl FromStr for RelayTls {
    type Err = RelaySpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| RelaySpecError(format!("tls must be none, starttls or tls, not `{s}`")))
    }
}

/// A relay's login for AUTH PLAIN.
#[derive(Clone, Debug)]
pub struct RelayCredentials {
    pub username: String,
    pub password: SecretString,
}

impl PartialEq for RelayCredentials {
    fn eq(&self, other: &Self) -> bool {
        self.username == other.username
            && self.password.expose_secret() == other.password.expose_secret()
    }
}

impl Eq for RelayCredentials {}

/// An SMTP relay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpRelay {
    pub host: String,
    pub port: u16,
    pub tls: RelayTls,
    pub credentials: Option<RelayCredentials>,
}

impl SmtpRelay {
    /// `host:port`, for logs and errors (never the credentials).
    #[must_use]
    pub fn addr(&self) -> String {
        host_port(&self.host, self.port)
    }
}

/// `host:port`, an IPv6 host in brackets.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// How to reach a relay: over SMTP, or (for development) a directory each message is written to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelaySpec {
    Smtp(SmtpRelay),
    Capture(PathBuf),
}

/// Why a relay URL was refused. Never echoes a password.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RelaySpecError(String);

fn refuse<T>(message: impl Into<String>) -> Result<T, RelaySpecError> {
    Err(RelaySpecError(message.into()))
}

impl FromStr for RelaySpec {
    type Err = RelaySpecError;

    /// Parses `capture:DIR` or `smtp://[user:pass@]host[:port][?tls=none|starttls|tls]`. Without
    /// `tls`, port 465 means implicit TLS and anything else STARTTLS; without a port, 465 for
    /// implicit TLS and 587 otherwise.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(dir) = s.strip_prefix("capture:") {
            if dir.is_empty() {
                return refuse("capture: needs a directory, e.g. capture:.missive/outbox");
            }
            return Ok(Self::Capture(PathBuf::from(dir)));
        }
        let Some(rest) = s.strip_prefix("smtp://") else {
            return refuse(
                "must be smtp://[user:pass@]host:port?tls=none|starttls|tls or capture:DIR",
            );
        };
        let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = authority.trim_end_matches('/');
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => {
                let Some((user, pass)) = userinfo.split_once(':') else {
                    return refuse("credentials must be user:password");
                };
                let Some(username) = percent_decode(user) else {
                    return refuse("user name is not valid percent-encoding");
                };
                let Some(password) = percent_decode(pass) else {
                    return refuse("password is not valid percent-encoding");
                };
                let password = SecretString::from(password);
                (Some(RelayCredentials { username, password }), host_port)
            }
            None => (None, authority),
        };
        let (host, port) = split_host_port(host_port)?;
        let mut tls = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            tls = Some(match pair.split_once('=') {
                Some(("tls", mode)) => mode.parse()?,
                _ => return refuse(format!("unknown relay option `{pair}`")),
            });
        }
        let tls = tls.unwrap_or(if port == Some(465) {
            RelayTls::Tls
        } else {
            RelayTls::StartTls
        });
        let port = port.unwrap_or(match tls {
            RelayTls::Tls => 465,
            RelayTls::None | RelayTls::StartTls => 587,
        });
        Ok(Self::Smtp(SmtpRelay {
            host,
            port,
            tls,
            credentials,
        }))
    }
}

fn split_host_port(s: &str) -> Result<(String, Option<u16>), RelaySpecError> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return refuse("unclosed [ in IPv6 host");
        };
        (host, after.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    if host.is_empty() || host.contains(['/', ' ', '@']) {
        return refuse("the relay URL needs a host");
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port != 0 => Some(port),
            _ => return refuse(format!("`{p}` is not a port")),
        },
    };
    Ok((host.to_owned(), port))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smtp(url: &str) -> SmtpRelay {
        match url.parse::<RelaySpec>().unwrap() {
            RelaySpec::Smtp(smtp) => smtp,
            RelaySpec::Capture(_) => panic!("{url}: expected smtp"),
        }
    }

    #[test]
    fn relay_urls_parse() {
        let relay = smtp("smtp://user%40x:p%3Ass@relay.test:2525?tls=none");
        assert_eq!(
            (relay.host.as_str(), relay.port, relay.tls),
            ("relay.test", 2525, RelayTls::None)
        );
        let credentials = relay.credentials.unwrap();
        assert_eq!(
            (
                credentials.username.as_str(),
                credentials.password.expose_secret()
            ),
            ("user@x", "p:ss")
        );
        let relay = smtp("smtp://relay.test");
        assert_eq!((relay.port, relay.tls), (587, RelayTls::StartTls));
        let relay = smtp("smtp://[::1]:465");
        assert_eq!((relay.host.as_str(), relay.tls), ("::1", RelayTls::Tls));
        assert_eq!(relay.addr(), "[::1]:465");
        assert_eq!(
            "capture:out".parse::<RelaySpec>(),
            Ok(RelaySpec::Capture("out".into()))
        );
        for bad in [
            "smtp://",
            "smtp://h:0",
            "smtp://h:x",
            "smtp://h?tls=ssl",
            "smtp://u@h",
            "capture:",
            "ftp://h",
        ] {
            assert!(bad.parse::<RelaySpec>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn a_tenant_takes_its_own_server_only_while_it_is_enabled() {
        let tenant = TenantId::new();
        let mut relay = TenantRelay {
            host: "smtp.acme.test".into(),
            port: 587,
            tls: RelayTls::StartTls,
            username: Some("acme".into()),
            enabled: true,
        };
        assert_eq!(resolve(tenant, Some(&relay)), Route::Tenant(tenant));
        assert_eq!(resolve(tenant, None), Route::Shared);
        relay.enabled = false;
        assert_eq!(resolve(tenant, Some(&relay)), Route::Shared);
        assert_eq!(Route::Tenant(tenant).as_str(), "tenant");
        for tls in RelayTls::ALL {
            assert_eq!(tls.as_str().parse::<RelayTls>(), Ok(tls));
        }
        assert!("ssl".parse::<RelayTls>().is_err());
    }

    #[test]
    fn errors_and_debug_never_show_the_password() {
        let relay = smtp("smtp://u:relaypass1@relay.test:2525");
        assert!(!format!("{relay:?}").contains("relaypass1"));
        let err = "smtp://u:relaypass1@".parse::<RelaySpec>().unwrap_err();
        assert!(!err.to_string().contains("relaypass1"));
    }
}
