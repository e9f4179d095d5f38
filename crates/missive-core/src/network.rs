//! Source networks in CIDR notation, as tenants list them for SMTP submission without AUTH.
//!
//! Parsing is strict (host bits must be zero, as PostgreSQL's `cidr` type demands), so what an
//! operator typed is exactly what is stored and matched; a typo is refused rather than widened.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Most networks one tenant may list.
pub const MAX_TRUSTED_NETWORKS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error("`{0}` is not a network in CIDR notation, such as 192.0.2.0/24 or 2001:db8::/32")]
    Syntax(String),
    #[error("`{0}` has bits set after its prefix; did you mean {1}?")]
    HostBits(String, IpNetwork),
    #[error("at most {max} trusted networks")]
    TooMany { max: usize },
}

/// An IPv4 or IPv6 network: an address with its host bits zero and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

fn bits(addr: IpAddr) -> (u128, u8) {
    match addr {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

fn mask(prefix: u8, width: u8) -> u128 {
    let full = if width == 32 {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    };
    if prefix == 0 {
        0
    } else {
        full & !((1u128 << (width - prefix)) - 1)
    }
}

impl IpNetwork {
    /// Parses `addr/prefix`; a bare address is a single host (/32 or /128).
    ///
    /// # Errors
    /// Bad syntax, a prefix longer than the address, or host bits set.
    pub fn parse(raw: &str) -> Result<Self, NetworkError> {
        let syntax = || NetworkError::Syntax(raw.to_owned());
        let (addr, prefix) = match raw.trim().split_once('/') {
            Some((addr, prefix)) => {
                let addr: IpAddr = addr.parse().map_err(|_| syntax())?;
                if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(syntax());
                }
                (addr, prefix.parse::<u8>().map_err(|_| syntax())?)
            }
            None => {
                let addr: IpAddr = raw.trim().parse().map_err(|_| syntax())?;
                (addr, bits(addr).1)
            }
        };
        let (value, width) = bits(addr);
        if prefix > width {
            return Err(syntax());
        }
        let network = Self::masked(addr, prefix);
        if value & !mask(prefix, width) != 0 {
            return Err(NetworkError::HostBits(raw.to_owned(), network));
        }
        Ok(network)
    }

    /// The network of `prefix` bits that holds `addr`.
    fn masked(addr: IpAddr, prefix: u8) -> Self {
        let (value, width) = bits(addr);
        let value = value & mask(prefix, width);
        let addr = if width == 32 {
            IpAddr::V4(u32::try_from(value).unwrap_or_default().into())
        } else {
            IpAddr::V6(value.into())
        };
        Self { addr, prefix }
    }

    /// Whether `ip` is inside this network. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as a
    /// dual-stack listener reports IPv4 clients) matches IPv4 networks.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        let (net, width) = bits(self.addr);
        let (value, ip_width) = bits(ip);
        width == ip_width && value & mask(self.prefix, width) == net
    }

    /// Parses a list, dropping duplicates, in a stable order.
    ///
    /// # Errors
    /// The first invalid network, or too many.
    pub fn parse_list<I, S>(raw: I) -> Result<Vec<Self>, NetworkError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut networks = raw
            .into_iter()
            .map(|n| Self::parse(n.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        networks.sort();
        networks.dedup();
        if networks.len() > MAX_TRUSTED_NETWORKS {
            return Err(NetworkError::TooMany {
                max: MAX_TRUSTED_NETWORKS,
            });
        }
        Ok(networks)
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl serde::Serialize for IpNetwork {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl FromStr for IpNetwork {
    type Err = NetworkError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_networks_and_single_hosts() {
        assert_eq!(
            IpNetwork::parse("10.0.0.0/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            IpNetwork::parse("192.0.2.7").unwrap().to_string(),
            "192.0.2.7/32"
        );
        assert_eq!(
            IpNetwork::parse("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(
            IpNetwork::parse("0.0.0.0/0").unwrap().to_string(),
            "0.0.0.0/0"
        );
        assert_eq!(IpNetwork::parse("::/0").unwrap().to_string(), "::/0");
    }

    #[test]
    fn refuses_bad_syntax_and_host_bits() {
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "10.0.0/8",
            "::/129",
            "x/8",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
        ] {
            assert!(
                matches!(IpNetwork::parse(bad), Err(NetworkError::Syntax(_))),
                "{bad}"
            );
        }
        let err = IpNetwork::parse("10.1.2.3/8").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`10.1.2.3/8` has bits set after its prefix; did you mean 10.0.0.0/8?"
        );
    }

    #[test]
    fn containment_follows_the_prefix_and_the_family() {
        let net = IpNetwork::parse("192.0.2.0/24").unwrap();
        assert!(net.contains(ip("192.0.2.1")));
        assert!(net.contains(ip("192.0.2.255")));
        assert!(!net.contains(ip("192.0.3.1")));
        assert!(net.contains(ip("::ffff:192.0.2.9")));
        assert!(!net.contains(ip("2001:db8::1")));
        let any = IpNetwork::parse("0.0.0.0/0").unwrap();
        assert!(any.contains(ip("203.0.113.5")));
        let v6 = IpNetwork::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        let host = IpNetwork::parse("127.0.0.1").unwrap();
        assert!(host.contains(ip("127.0.0.1")));
        assert!(!host.contains(ip("127.0.0.2")));
    }

    #[test]
    fn lists_are_deduplicated_and_capped() {
        let list = IpNetwork::parse_list(["10.0.0.0/8", "10.0.0.0/8", "127.0.0.1"]).unwrap();
        assert_eq!(list.len(), 2);
        let many: Vec<String> = (0..=MAX_TRUSTED_NETWORKS)
            .map(|i| format!("10.0.{}.{}/32", i / 256, i % 256))
            .collect();
        assert!(matches!(
            IpNetwork::parse_list(&many),
            Err(NetworkError::TooMany { .. })
        ));
    }
}
