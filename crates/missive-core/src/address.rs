//! Email addresses as senders and recipients are written: `addr@example.com` or
//! `Display Name <addr@example.com>`, with international domains and UTF-8 local parts.
//!
//! Parsing is strict on purpose: anything that could break a header (CR, LF, other controls),
//! quoted local parts, comments and groups are refused, so a parsed address can be written into
//! a header or an SMTP envelope as it is. International domain names are converted to their
//! ASCII (`xn--`) form for the envelope; a UTF-8 local part needs SMTPUTF8 from the relay.

use std::fmt;

use serde::Serialize;

use crate::tenant::Domain;

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("`{0}` is not a valid email address")]
    Invalid(String),
    #[error("`{0}` contains a line break or control character")]
    Control(String),
}

/// `local@domain`, with the domain in ASCII form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

/// Longest address an SMTP path can carry (RFC 5321 section 4.5.3.1.3, less the brackets).
const MAX_ADDRESS_OCTETS: usize = 254;
const MAX_LOCAL_OCTETS: usize = 64;
const MAX_NAME_CHARS: usize = 256;

impl EmailAddress {
    /// Parses a bare address.
    ///
    /// # Errors
    /// [`AddressError`] naming the input.
    pub fn parse(raw: &str) -> Result<Self, AddressError> {
        let invalid = || AddressError::Invalid(raw.to_owned());
        if raw.chars().any(char::is_control) {
            return Err(AddressError::Control(raw.to_owned()));
        }
        let (local, domain) = raw.rsplit_once('@').ok_or_else(invalid)?;
        if !valid_local_part(local) {
            return Err(invalid());
        }
        let ascii_domain = if domain.is_ascii() {
            domain.to_owned()
        } else {
            idna::domain_to_ascii(domain).map_err(|_| invalid())?
        };
        let domain = Domain::parse(&ascii_domain).map_err(|_| invalid())?;
        if domain.as_str().len() != ascii_domain.trim_end_matches('.').len() {
            // Domain::parse trims; an address must not carry spaces around its domain.
            return Err(invalid());
        }
        let address = format!("{local}@{}", domain.as_str());
        if address.len() > MAX_ADDRESS_OCTETS {
            return Err(invalid());
        }
        Ok(Self(address))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after the `@`, in ASCII form.
    #[must_use]
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }

    /// The part before the `@`.
    #[must_use]
    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(l, _)| l)
    }

    /// Whether the envelope needs SMTPUTF8.
    #[must_use]
    pub fn needs_smtputf8(&self) -> bool {
        !self.0.is_ascii()
    }

    /// Whether two addresses reach the same recipient, so a message goes to it once: equal but
    /// for ASCII case (local parts are case-insensitive in practice, whatever RFC 5321 allows).
    #[must_use]
    pub fn same_recipient(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// RFC 5322 `atext` beyond letters and digits.
const ATEXT_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";

/// RFC 5322 dot-atom, widened by RFC 6532 to any non-ASCII character.
fn valid_local_part(local: &str) -> bool {
    !local.is_empty()
        && local.len() <= MAX_LOCAL_OCTETS
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| {
            c.is_ascii_alphanumeric() || c == '.' || ATEXT_SPECIALS.contains(c) || !c.is_ascii()
        })
}

/// An address with an optional display name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mailbox {
    pub name: Option<String>,
    pub email: EmailAddress,
}

impl Mailbox {
    /// Parses `addr`, `<addr>`, `Name <addr>` or `"Name" <addr>`.
    ///
    /// # Errors
    /// [`AddressError`] naming the input.
    pub fn parse(raw: &str) -> Result<Self, AddressError> {
        let invalid = || AddressError::Invalid(raw.to_owned());
        if raw.chars().any(char::is_control) {
            return Err(AddressError::Control(raw.to_owned()));
        }
        let value = raw.trim();
        let Some(inner) = value.strip_suffix('>') else {
            if value.contains(['<', '>', ' ', ',', ';', '"', '(', ')']) {
                return Err(invalid());
            }
            return Ok(Self {
                name: None,
                email: EmailAddress::parse(value)?,
            });
        };
        let open = inner.rfind('<').ok_or_else(invalid)?;
        let address = &inner[open + 1..];
        let name = inner[..open].trim();
        let name = match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
            Some(quoted) => unescape_quoted(quoted).ok_or_else(invalid)?,
            None if name.contains(['"', '<', '>']) => return Err(invalid()),
            None => name.to_owned(),
        };
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(invalid());
        }
        let email = EmailAddress::parse(address).map_err(|_| invalid())?;
        Ok(Self {
            name: (!name.is_empty()).then_some(name),
            email,
        })
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) if needs_quotes(name) => {
                let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
                write!(f, "\"{escaped}\" <{}>", self.email)
            }
            Some(name) => write!(f, "{name} <{}>", self.email),
            None => f.write_str(self.email.as_str()),
        }
    }
}

/// Whether a display name must be quoted to read back the same: anything beyond atoms and
/// single spaces between them.
fn needs_quotes(name: &str) -> bool {
    name.trim() != name
        || name.contains("  ")
        || name.chars().any(|c| {
            c.is_ascii() && !(c.is_ascii_alphanumeric() || c == ' ' || ATEXT_SPECIALS.contains(c))
        })
}

fn unescape_quoted(quoted: &str) -> Option<String> {
    let mut out = String::with_capacity(quoted.len());
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_and_named_addresses_parse() {
        let m = Mailbox::parse("Acme Support <support@Acme.TEST>").unwrap();
        assert_eq!(m.name.as_deref(), Some("Acme Support"));
        assert_eq!(m.email.as_str(), "support@acme.test");
        let m = Mailbox::parse("\"Doe, \\\"J\\\"\" <j@x.test>").unwrap();
        assert_eq!(m.name.as_deref(), Some("Doe, \"J\""));
        assert_eq!(m.to_string(), "\"Doe, \\\"J\\\"\" <j@x.test>");
        assert_eq!(Mailbox::parse("<a@b.test>").unwrap().name, None);
        assert_eq!(
            Mailbox::parse(" a.b+tag@b.test ").unwrap().email.as_str(),
            "a.b+tag@b.test"
        );
    }

    #[test]
    fn international_domains_become_ascii_and_utf8_local_parts_are_kept() {
        let e = EmailAddress::parse("jörg@bücher.de").unwrap();
        assert_eq!(e.as_str(), "jörg@xn--bcher-kva.de");
        assert!(e.needs_smtputf8());
        assert_eq!(e.domain(), "xn--bcher-kva.de");
        assert_eq!(e.local_part(), "jörg");
        assert!(!EmailAddress::parse("a@bücher.de").unwrap().needs_smtputf8());
    }

    #[test]
    fn header_breaking_and_malformed_addresses_are_refused() {
        for bad in [
            "",
            "a",
            "@b.test",
            "a@",
            "a@b",
            "a..b@c.test",
            ".a@c.test",
            "a.@c.test",
            "a b@c.test",
            "\"a b\"@c.test",
            "a@b.test\r\nBcc: x@y.test",
            "a@b.test\n",
            "Name <a@b.test",
            "Name a@b.test>",
            "A <B> <a@b.test>",
            "a@b.test, c@d.test",
            "a(comment)@b.test",
            "a@-b.test",
            "a@b_c.test",
        ] {
            assert!(Mailbox::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(EmailAddress::parse(&format!("{}@b.test", "a".repeat(65))).is_err());
        assert!(EmailAddress::parse(&format!("a@{}.test", "b".repeat(250))).is_err());
    }

    proptest! {
        #[test]
        fn parsed_mailboxes_render_without_controls_and_reparse(raw in "\\PC{0,60}") {
            if let Ok(mailbox) = Mailbox::parse(&raw) {
                let rendered = mailbox.to_string();
                prop_assert!(!rendered.chars().any(char::is_control));
                prop_assert_eq!(Mailbox::parse(&rendered).unwrap(), mailbox);
            }
        }
    }
}
