//! Tenant-supplied targets (webhook endpoints, and the hosts of tenants' own SMTP servers): a URL is checked
//! when it is saved and again before every connection, and the connection goes to the very
//! addresses that were checked, never to a second lookup's answer.
//!
//! The host is resolved once with hickory (its nameserver configurable with `MISSIVE_DNS_SERVER`,
//! so tests can answer from a local DNS server); every address it resolves to must pass core's
//! address policy ([`missive_core::target`]), or the target is refused naming the address.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::TokioResolver;
use missive_core::target::{AddressRefused, Host, check_address, parse_host};
use url::Url;

/// Longest URL a tenant may give.
pub const MAX_URL_CHARS: usize = 2048;

/// Why a target was refused; each names what the tenant gave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("`{0}` is not an absolute http or https URL")]
    NotHttp(String),
    #[error("a URL of at most {MAX_URL_CHARS} characters")]
    TooLong,
    #[error("URLs with a user name or password are not allowed")]
    Credentials,
    #[error("{0}")]
    BadHost(String),
    #[error("`{host}` resolves to {refused}, which Missive does not connect to")]
    Refused {
        host: String,
        refused: AddressRefused,
    },
    #[error("`{0}` does not resolve to any address")]
    NoAddress(String),
    #[error("looking up `{host}` failed: {reason}")]
    Lookup { host: String, reason: String },
}

/// A target that passed: the URL, and the addresses a connection may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vetted {
    pub url: Url,
    /// The host as the request names it (for TLS and the Host header).
    pub host: String,
    pub addresses: Vec<SocketAddr>,
}

/// Checks targets against the address policy.
#[derive(Clone, Debug)]
pub struct Targets {
    resolver: TokioResolver,
    allow_private: bool,
}

impl Targets {
    /// A checker asking `nameserver`, or the system's resolvers when `None`.
    ///
    /// # Errors
    /// When the resolver cannot be built from its configuration.
    pub fn new(nameserver: Option<SocketAddr>, allow_private: bool) -> Result<Self, String> {
        let resolver = crate::net::dns::resolver(nameserver)?;
        Ok(Self {
            resolver,
            allow_private,
        })
    }

    /// Whether loopback and private targets are allowed (`MISSIVE_WEBHOOK_ALLOW_PRIVATE`).
    #[must_use]
    pub const fn allow_private(&self) -> bool {
        self.allow_private
    }

    /// Checks a URL and resolves its host once.
    ///
    /// # Errors
    /// [`TargetError`] naming what is wrong.
    pub async fn vet(&self, raw: &str) -> Result<Vetted, TargetError> {
        let url = parse_url(raw)?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| TargetError::NotHttp(raw.to_owned()))?;
        let host_text = url.host_str().unwrap_or_default().to_owned();
        let ips: Vec<IpAddr> = match url.host() {
            Some(url::Host::Ipv4(v4)) => vec![IpAddr::V4(v4)],
            Some(url::Host::Ipv6(v6)) => vec![IpAddr::V6(v6)],
            Some(url::Host::Domain(domain)) => self.connectable(domain).await?,
            None => return Err(TargetError::NotHttp(raw.to_owned())),
        };
        self.check_literal(&url)?;
        Ok(Vetted {
            addresses: ips
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect(),
            host: host_text,
            url,
        })
    }

    /// The addresses a connection to `name` may use: resolved once, each one checked. What a
    /// connection's resolver hook calls, so the check and the connection see the same answer.
    ///
    /// # Errors
    /// [`TargetError`] naming the refused address, or that the name does not resolve.
    pub async fn connectable(&self, name: &str) -> Result<Vec<IpAddr>, TargetError> {
        let ips = match parse_host(name) {
            Ok(Host::Ip(ip)) => vec![ip],
            Ok(Host::Name(name)) => self.resolve(&name).await?,
            Err(bad) => return Err(TargetError::BadHost(bad.to_string())),
        };
        for ip in &ips {
            check_address(*ip, self.allow_private).map_err(|refused| TargetError::Refused {
                host: name.to_owned(),
                refused,
            })?;
        }
        Ok(ips)
    }

    /// Checks a URL whose host is an IP literal (which a resolver hook never sees); a URL with a
    /// host name passes here and is checked when it is resolved.
    ///
    /// # Errors
    /// [`TargetError::Refused`] for a literal outside the policy.
    pub fn check_literal(&self, url: &Url) -> Result<(), TargetError> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            _ => return Ok(()),
        };
        check_address(ip, self.allow_private).map_err(|refused| TargetError::Refused {
            host: url.host_str().unwrap_or_default().to_owned(),
            refused,
        })
    }

    async fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, TargetError> {
        // The trailing dot makes the name absolute: no search domains are tried.
        let lookup = self
            .resolver
            .lookup_ip(format!("{name}."))
            .await
            .map_err(|e| {
                if e.is_no_records_found() || e.is_nx_domain() {
                    TargetError::NoAddress(name.to_owned())
                } else {
                    TargetError::Lookup {
                        host: name.to_owned(),
                        reason: e.to_string(),
                    }
                }
            })?;
        let mut ips: Vec<IpAddr> = lookup.iter().collect();
        ips.sort_unstable();
        ips.dedup();
        if ips.is_empty() {
            return Err(TargetError::NoAddress(name.to_owned()));
        }
        Ok(ips)
    }
}

/// The URL's syntax alone: http or https, absolute, no credentials.
///
/// # Errors
/// [`TargetError`] naming what is wrong.
pub fn parse_url(raw: &str) -> Result<Url, TargetError> {
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(TargetError::TooLong);
    }
    let url = Url::parse(raw).map_err(|_| TargetError::NotHttp(raw.to_owned()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(TargetError::NotHttp(raw.to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Credentials);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(allow_private: bool) -> Targets {
        // A nameserver nobody answers on: the literal cases below never ask it.
        Targets::new(Some("127.0.0.1:9".parse().unwrap()), allow_private).unwrap()
    }

    #[tokio::test]
    async fn literals_in_every_form_are_judged_as_the_address_they_name() {
        let strict = targets(false);
        for url in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://10.0.0.1:8080/",
            "http://169.254.169.254/latest/meta-data",
            "http://0xa9fea9fe/",
            "http://[fe80::1]/",
            "http://0.0.0.0/",
            "http://100.64.0.1/",
            "http://[fd00::1]/",
        ] {
            let err = strict.vet(url).await.unwrap_err();
            assert!(matches!(err, TargetError::Refused { .. }), "{url}: {err}");
        }
        let open = targets(true);
        open.vet("http://127.1:9000/hook").await.unwrap();
        assert_eq!(
            open.vet("http://2130706433:9000/").await.unwrap().addresses,
            vec!["127.0.0.1:9000".parse::<SocketAddr>().unwrap()]
        );
        for never in [
            "http://169.254.169.254/",
            "http://[fe80::1]/",
            "http://0xa9fea9fe/",
        ] {
            let err = open.vet(never).await;
            assert!(
                matches!(err, Err(TargetError::Refused { .. })),
                "{never}: {err:?}"
            );
        }
        let public = strict.vet("https://93.184.215.14/hooks").await.unwrap();
        assert_eq!(public.addresses, vec!["93.184.215.14:443".parse().unwrap()]);
    }

    #[test]
    fn only_absolute_http_urls_without_credentials() {
        for bad in [
            "ftp://example.com/",
            "example.com/hook",
            "http://",
            "file:///etc/passwd",
        ] {
            assert!(
                matches!(parse_url(bad), Err(TargetError::NotHttp(_))),
                "{bad}"
            );
        }
        assert_eq!(
            parse_url("https://user:pw@example.com/").unwrap_err(),
            TargetError::Credentials
        );
        assert_eq!(
            parse_url(&format!(
                "https://example.com/{}",
                "a".repeat(MAX_URL_CHARS)
            ))
            .unwrap_err(),
            TargetError::TooLong
        );
        parse_url("https://hooks.example.com/missive?x=1").unwrap();
    }
}
