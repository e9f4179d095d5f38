//! Where Missive may connect on a tenant's behalf (webhook endpoints, and the hosts of tenants'
//! own SMTP servers): the address policy that keeps a tenant-supplied host from reaching our own network.
//!
//! A host is either a DNS name, resolved once by the caller and each address checked here before
//! the connection is made to that very address, or an IP literal. Literals come in more forms
//! than dotted quads (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`: the forms `inet_aton` and the
//! WHATWG URL parser accept), so [`parse_host`] reads every one of them as the address it names,
//! and refuses numeric hosts that name none, rather than handing them to a resolver.
//!
//! Refused always: link-local (169.254.0.0/16, fe80::/10, where cloud metadata services live),
//! unspecified and "this network", broadcast, multicast, reserved and documentation ranges, and
//! IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64), which are judged by that
//! address and refused outright when it is not public. Refused unless private targets are allowed
//! (`MISSIVE_WEBHOOK_ALLOW_PRIVATE`, for self-hosting and tests): loopback, RFC 1918, carrier-grade
//! NAT (100.64.0.0/10) and unique-local (fc00::/7).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address may not be connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Loopback,
    Private,
    SharedAddressSpace,
    UniqueLocal,
    LinkLocal,
    Unspecified,
    Broadcast,
    Multicast,
    Reserved,
    Documentation,
    /// An IPv6 address that carries an IPv4 one.
    EmbeddedIpv4,
}

impl Refusal {
    /// Whether allowing private targets lifts this refusal.
    #[must_use]
    pub const fn is_private(self) -> bool {
        matches!(
            self,
            Self::Loopback | Self::Private | Self::SharedAddressSpace | Self::UniqueLocal
        )
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Loopback => "a loopback address",
            Self::Private => "a private address",
            Self::SharedAddressSpace => "a carrier-grade NAT address",
            Self::UniqueLocal => "a unique-local address",
            Self::LinkLocal => "a link-local address",
            Self::Unspecified => "an unspecified address",
            Self::Broadcast => "a broadcast address",
            Self::Multicast => "a multicast address",
            Self::Reserved => "a reserved address",
            Self::Documentation => "a documentation address",
            Self::EmbeddedIpv4 => "an IPv6 address carrying an IPv4 one",
        })
    }
}

/// An address refused, with the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{address} is {reason}")]
pub struct AddressRefused {
    pub address: IpAddr,
    pub reason: Refusal,
}

/// Checks one address against the policy.
///
/// # Errors
/// [`AddressRefused`] naming the reason.
pub fn check_address(address: IpAddr, allow_private: bool) -> Result<(), AddressRefused> {
    match classify(address) {
        None => Ok(()),
        Some(reason) if allow_private && reason.is_private() => Ok(()),
        Some(reason) => Err(AddressRefused { address, reason }),
    }
}

/// Why the address is not public, or `None` when it is.
#[must_use]
pub fn classify(address: IpAddr) -> Option<Refusal> {
    match address {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(address: Ipv4Addr, network: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(address) & mask == u32::from(Ipv4Addr::from(network)) & mask
}

fn classify_v4(a: Ipv4Addr) -> Option<Refusal> {
    let table: [([u8; 4], u32, Refusal); 17] = [
        ([0, 0, 0, 0], 8, Refusal::Unspecified),
        ([127, 0, 0, 0], 8, Refusal::Loopback),
        ([10, 0, 0, 0], 8, Refusal::Private),
        ([172, 16, 0, 0], 12, Refusal::Private),
        ([192, 168, 0, 0], 16, Refusal::Private),
        ([100, 64, 0, 0], 10, Refusal::SharedAddressSpace),
        ([169, 254, 0, 0], 16, Refusal::LinkLocal),
        ([255, 255, 255, 255], 32, Refusal::Broadcast),
        ([224, 0, 0, 0], 4, Refusal::Multicast),
        ([240, 0, 0, 0], 4, Refusal::Reserved),
        ([192, 0, 0, 0], 24, Refusal::Reserved),
        ([198, 18, 0, 0], 15, Refusal::Reserved),
        ([192, 88, 99, 0], 24, Refusal::Reserved),
        ([192, 0, 2, 0], 24, Refusal::Documentation),
        ([198, 51, 100, 0], 24, Refusal::Documentation),
        ([203, 0, 113, 0], 24, Refusal::Documentation),
        ([233, 252, 0, 0], 24, Refusal::Documentation),
    ];
    // The broadcast address lies inside 240/4, so the table is read in order.
    table
        .iter()
        .find(|(network, prefix, _)| in_v4(a, *network, *prefix))
        .map(|(_, _, reason)| *reason)
}

fn in_v6(address: Ipv6Addr, network: u128, prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(address) & mask == network & mask
}

fn classify_v6(a: Ipv6Addr) -> Option<Refusal> {
    if a.is_unspecified() {
        return Some(Refusal::Unspecified);
    }
    if a.is_loopback() {
        return Some(Refusal::Loopback);
    }
    // ::ffff:a.b.c.d (mapped), ::a.b.c.d (compatible, deprecated), 64:ff9b::a.b.c.d (NAT64): a
    // way round the IPv4 rules, so judged by the IPv4 address and refused when it is not public.
    let bits = u128::from(a);
    let embedded = in_v6(a, 0xffff_0000_0000, 96)
        || in_v6(a, 0, 96)
        || in_v6(a, 0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96);
    if embedded {
        #[allow(clippy::cast_possible_truncation)] // the low 32 bits, on purpose
        let v4 = Ipv4Addr::from(bits as u32);
        return classify_v4(v4).map(|_| Refusal::EmbeddedIpv4);
    }
    let table: [(u128, u32, Refusal); 6] = [
        (0xfe80 << 112, 10, Refusal::LinkLocal),
        (0xfc00 << 112, 7, Refusal::UniqueLocal),
        (0xff00 << 112, 8, Refusal::Multicast),
        (0x2001_0db8 << 96, 32, Refusal::Documentation),
        // Site-local (deprecated, still routed internally by some networks).
        (0xfec0 << 112, 10, Refusal::Private),
        // Discard-only.
        (0x0100 << 112, 64, Refusal::Reserved),
    ];
    table
        .iter()
        .find(|(network, prefix, _)| in_v6(a, *network, *prefix))
        .map(|(_, _, reason)| *reason)
}

/// A URL's host, as the connection will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    /// A DNS name, lower-cased, without a trailing dot.
    Name(String),
}

/// A host that is neither an address nor a name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a host name or an IP address")]
pub struct BadHost(pub String);

/// Reads a URL's host: `[v6]`, any IPv4 literal form, or a DNS name.
///
/// # Errors
/// [`BadHost`] for an empty host, a bracketed host that is not IPv6, a numeric host that names no
/// address (`1.2.3.4.5`, `256.1.1.1`, `0x`), or characters no host name has.
pub fn parse_host(raw: &str) -> Result<Host, BadHost> {
    let bad = || BadHost(raw.to_owned());
    if let Some(inner) = raw.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or_else(bad)?;
        return inner
            .parse::<Ipv6Addr>()
            .map(|v6| Host::Ip(IpAddr::V6(v6)))
            .map_err(|_| bad());
    }
    let host = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
    if host.is_empty() {
        return Err(bad());
    }
    if let Ok(v6) = host.parse::<Ipv6Addr>() {
        return Ok(Host::Ip(IpAddr::V6(v6)));
    }
    // WHATWG: a host whose last label is numeric is an IPv4 address or nothing.
    let last = host.rsplit('.').next().unwrap_or_default();
    if !last.is_empty() && (last.bytes().all(|b| b.is_ascii_digit()) || is_hex_label(last)) {
        return ipv4_literal(&host)
            .map(|v4| Host::Ip(IpAddr::V4(v4)))
            .ok_or_else(bad);
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(bad());
    }
    Ok(Host::Name(host))
}

fn is_hex_label(label: &str) -> bool {
    label
        .strip_prefix("0x")
        .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One part of an IPv4 literal: decimal, octal with a leading 0, or hex with 0x.
fn literal_part(part: &str) -> Option<u64> {
    if part.is_empty() {
        return None;
    }
    let (digits, radix) = if let Some(hex) = part.strip_prefix("0x") {
        (hex, 16)
    } else if part.len() > 1 && part.starts_with('0') {
        (&part[1..], 8)
    } else {
        (part, 10)
    };
    if digits.is_empty() {
        // "0x" alone is 0 for inet_aton and WHATWG alike.
        return (radix == 16).then_some(0);
    }
    // Longer than any part can be: refuse before it overflows.
    if digits.len() > 32 {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// `a.b.c.d`, `a.b.c` (c fills 16 bits), `a.b` (b fills 24), `a` (32 bits), each part in any
/// base; `None` when a part is out of range.
fn ipv4_literal(host: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let values: Vec<u64> = parts
        .iter()
        .map(|p| literal_part(p))
        .collect::<Option<_>>()?;
    let (last, leading) = values.split_last()?;
    if leading.iter().any(|&v| v > 255) {
        return None;
    }
    let room = 8 * (4 - leading.len() as u32);
    if *last >= 1u64 << room {
        return None;
    }
    let mut address = 0u64;
    for (i, v) in leading.iter().enumerate() {
        address |= v << (24 - 8 * i as u32);
    }
    u32::try_from(address | last).ok().map(Ipv4Addr::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_ranges_are_classified() {
        let cases = [
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("2606:4700:4700::1111", None),
            ("127.0.0.1", Some(Refusal::Loopback)),
            ("127.255.255.254", Some(Refusal::Loopback)),
            ("::1", Some(Refusal::Loopback)),
            ("10.1.2.3", Some(Refusal::Private)),
            ("172.16.0.1", Some(Refusal::Private)),
            ("172.31.255.255", Some(Refusal::Private)),
            ("172.32.0.1", None),
            ("192.168.1.1", Some(Refusal::Private)),
            ("100.64.0.1", Some(Refusal::SharedAddressSpace)),
            ("100.127.255.255", Some(Refusal::SharedAddressSpace)),
            ("100.128.0.1", None),
            ("169.254.169.254", Some(Refusal::LinkLocal)),
            ("fe80::1", Some(Refusal::LinkLocal)),
            ("febf::1", Some(Refusal::LinkLocal)),
            ("fc00::1", Some(Refusal::UniqueLocal)),
            ("fd12:3456::1", Some(Refusal::UniqueLocal)),
            ("0.0.0.0", Some(Refusal::Unspecified)),
            ("0.1.2.3", Some(Refusal::Unspecified)),
            ("::", Some(Refusal::Unspecified)),
            ("255.255.255.255", Some(Refusal::Broadcast)),
            ("224.0.0.1", Some(Refusal::Multicast)),
            ("ff02::1", Some(Refusal::Multicast)),
            ("240.0.0.1", Some(Refusal::Reserved)),
            ("192.0.2.1", Some(Refusal::Documentation)),
            ("2001:db8::1", Some(Refusal::Documentation)),
            ("::ffff:127.0.0.1", Some(Refusal::EmbeddedIpv4)),
            ("::ffff:169.254.169.254", Some(Refusal::EmbeddedIpv4)),
            ("::ffff:10.0.0.1", Some(Refusal::EmbeddedIpv4)),
            ("::127.0.0.1", Some(Refusal::EmbeddedIpv4)),
            ("64:ff9b::a00:1", Some(Refusal::EmbeddedIpv4)),
            ("::ffff:8.8.8.8", None),
        ];
        for (address, expected) in cases {
            assert_eq!(classify(ip(address)), expected, "{address}");
        }
    }

    #[test]
    fn allowing_private_targets_never_allows_link_local() {
        for private in [
            "127.0.0.1",
            "::1",
            "10.0.0.1",
            "192.168.0.1",
            "100.64.0.1",
            "fd00::1",
        ] {
            assert!(check_address(ip(private), false).is_err(), "{private}");
            assert!(check_address(ip(private), true).is_ok(), "{private}");
        }
        for never in [
            "169.254.169.254",
            "fe80::1",
            "0.0.0.0",
            "224.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            let refused = check_address(ip(never), true).unwrap_err();
            assert!(!refused.reason.is_private(), "{never}");
        }
        assert_eq!(
            check_address(ip("169.254.169.254"), true)
                .unwrap_err()
                .to_string(),
            "169.254.169.254 is a link-local address"
        );
    }

    #[test]
    fn every_ipv4_literal_form_is_read_as_the_address_it_names() {
        let loopback = Host::Ip(ip("127.0.0.1"));
        for form in [
            "127.0.0.1",
            "127.1",
            "127.0.1",
            "2130706433",
            "0x7f000001",
            "0x7F.1",
            "0177.0.0.1",
            "0177.1",
            "017700000001",
            "127.0.0.1.",
            "0x7f.0.0.0x1",
        ] {
            assert_eq!(parse_host(form), Ok(loopback.clone()), "{form}");
        }
        assert_eq!(
            parse_host("0xa9fea9fe"),
            Ok(Host::Ip(ip("169.254.169.254")))
        );
        assert_eq!(parse_host("0"), Ok(Host::Ip(ip("0.0.0.0"))));
        assert_eq!(parse_host("[::1]"), Ok(Host::Ip(ip("::1"))));
        assert_eq!(
            parse_host("[::ffff:7f00:1]"),
            Ok(Host::Ip(ip("::ffff:127.0.0.1")))
        );
        for bad in [
            "1.2.3.4.5",
            "256.1.1.1",
            "1.2.3.256",
            "1.2.65536",
            "4294967296",
            "08.1.1.1",
            "[::1",
            "[example.com]",
            "",
            ".",
            "exa mple.com",
            "-bad.example",
            "a..b",
        ] {
            assert!(parse_host(bad).is_err(), "{bad}");
        }
        // `0x` alone is zero, as inet_aton and browsers read it.
        assert_eq!(parse_host("1.2.3.0x"), Ok(Host::Ip(ip("1.2.3.0"))));
        assert_eq!(
            parse_host("Hooks.Example.COM."),
            Ok(Host::Name("hooks.example.com".to_owned()))
        );
        assert_eq!(
            parse_host("1a.example"),
            Ok(Host::Name("1a.example".to_owned()))
        );
        // Not a number in any base, so a name (as the WHATWG parser reads it).
        assert_eq!(parse_host("0xg1"), Ok(Host::Name("0xg1".to_owned())));
    }

    proptest! {
        #[test]
        fn dotted_decimal_octal_and_hex_forms_agree(a: u8, b: u8, c: u8, d: u8) {
            let address = Ipv4Addr::new(a, b, c, d);
            let expected = Ok(Host::Ip(IpAddr::V4(address)));
            let low = (u32::from(b) << 16) | (u32::from(c) << 8) | u32::from(d);
            for form in [
                address.to_string(),
                u32::from(address).to_string(),
                format!("{:#x}", u32::from(address)),
                format!("0{a:o}.0{b:o}.0{c:o}.0{d:o}"),
                format!("{a}.{low}"),
            ] {
                prop_assert_eq!(&parse_host(&form), &expected, "{}", form);
            }
        }

        #[test]
        fn every_v4_mapped_address_is_refused_unless_public(a: u8, b: u8, c: u8, d: u8) {
            let v4 = Ipv4Addr::new(a, b, c, d);
            let mapped = IpAddr::V6(v4.to_ipv6_mapped());
            prop_assert_eq!(classify(mapped).is_some(), classify(IpAddr::V4(v4)).is_some());
        }
    }
}
