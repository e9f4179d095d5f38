//! Tenants and their sending settings, validated once at the edge so everything downstream can
//! trust them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::address::Mailbox;
use crate::named::named;
use crate::network::{IpNetwork, NetworkError};

/// Whether a tenant may authenticate. Disabling keeps every row (history, usage) but refuses all
/// of the tenant's keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    Active,
    Disabled,
}

impl TenantStatus {
    pub const ALL: [Self; 2] = [Self::Active, Self::Disabled];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }
}

named!(TenantStatus, "tenant status");

impl FromStr for TenantStatus {
    type Err = TenantSettingsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(Self::Active),
            "disabled" => Ok(Self::Disabled),
            other => Err(TenantSettingsError::Status(other.to_owned())),
        }
    }
}

impl TryFrom<String> for TenantStatus {
    type Error = TenantSettingsError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// Why a tenant field was refused; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantSettingsError {
    #[error("name must be 1 to 200 characters without control characters")]
    Name,
    #[error(
        "`{0}` is not a valid domain name (ASCII letters, digits and hyphens; use the xn-- form for international names)"
    )]
    Domain(String),
    #[error("{field}: `{value}` is not a valid email address")]
    Mailbox { field: &'static str, value: String },
    #[error("status must be `active` or `disabled`, not `{0}`")]
    Status(String),
    #[error("{field}: a display name is 1 to 256 characters without control characters")]
    DisplayName { field: &'static str },
    #[error("allowed_sender_domains holds at most {max} domains")]
    TooManyDomains { max: usize },
    #[error("trusted_networks: {0}")]
    Network(#[from] NetworkError),
}

/// What a text with no control characters looks like, as a JSON Schema pattern: the OpenAPI
/// document states it for every field [`parse_label`] checks.
pub const NO_CONTROLS_PATTERN: &str = r"^[^\x00-\x1F\x7F-\x9F]*$";

/// A label a person gives (a tenant's or a key's name, a display name): at most `max` characters
/// as sent, no control characters anywhere, and something left once surrounding white space is
/// trimmed, which is what is kept. The limits apply to the text as sent, so the document can state
/// them exactly (`maxLength`, [`NO_CONTROLS_PATTERN`]).
///
/// # Errors
/// `None` when the label breaks a rule; callers name the field.
#[must_use]
pub fn parse_label(raw: &str, max: usize) -> Option<String> {
    let trimmed = raw.trim();
    (!trimmed.is_empty() && raw.chars().count() <= max && !raw.chars().any(char::is_control))
        .then(|| trimmed.to_owned())
}

/// Longest tenant or key name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A tenant's display name; unique across tenants, case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TenantName(String);

impl TenantName {
    /// # Errors
    /// Empty, longer than 200 characters, or containing control characters.
    pub fn parse(raw: &str) -> Result<Self, TenantSettingsError> {
        parse_label(raw, MAX_NAME_CHARS)
            .map(Self)
            .ok_or(TenantSettingsError::Name)
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A domain name as the document states it ([`Domain::parse`] accepts exactly these, shorter than
/// 254 octets without the final dot): labels of letters, digits and inner hyphens, 1 to 63 long,
/// at least two, an optional final dot.
pub const DOMAIN_PATTERN: &str = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$";

/// A lower-cased DNS domain name, at least two labels.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Domain(String);

impl Domain {
    /// Parses a host name, any case, with an optional final dot; no surrounding white space.
    ///
    /// # Errors
    /// Anything that is not a syntactically valid host name with a dot.
    pub fn parse(raw: &str) -> Result<Self, TenantSettingsError> {
        let invalid = || TenantSettingsError::Domain(raw.to_owned());
        let lower = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
        if lower.is_empty() || lower.len() > 253 || !lower.contains('.') {
            return Err(invalid());
        }
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if !lower.split('.').all(label_ok) {
            return Err(invalid());
        }
        Ok(Self(lower))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses a mailbox setting, naming the field in the error.
///
/// # Errors
/// [`TenantSettingsError::Mailbox`] when the value is not a valid mailbox.
pub fn parse_setting_mailbox(
    field: &'static str,
    raw: &str,
) -> Result<Mailbox, TenantSettingsError> {
    Mailbox::parse(raw).map_err(|_| TenantSettingsError::Mailbox {
        field,
        value: raw.to_owned(),
    })
}

/// Longest display name, in characters (as a parsed mailbox's).
pub const MAX_DISPLAY_NAME_CHARS: usize = 256;

/// Parses a display name setting (`from_name`): trimmed, 1 to 256 characters, no control
/// characters, so it can be written into a From header (quoted as needed).
///
/// # Errors
/// [`TenantSettingsError::DisplayName`] naming the field.
pub fn parse_display_name(field: &'static str, raw: &str) -> Result<String, TenantSettingsError> {
    parse_label(raw, MAX_DISPLAY_NAME_CHARS).ok_or(TenantSettingsError::DisplayName { field })
}

/// How many sender domains one tenant may restrict itself to.
pub const MAX_ALLOWED_DOMAINS: usize = 100;

/// Per-tenant sending defaults and restrictions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TenantSettings {
    /// Used when a message names no sender.
    pub default_from: Option<Mailbox>,
    /// Added as Reply-To when a message sets none.
    pub reply_to: Option<Mailbox>,
    /// The display name of a sender that has none.
    pub from_name: Option<String>,
    /// When not empty, the only domains a sender address may use.
    pub allowed_sender_domains: Vec<Domain>,
    /// Source networks whose SMTP clients submit for this tenant without AUTH.
    pub trusted_networks: Vec<IpNetwork>,
}

impl TenantSettings {
    /// Parses the domain list, dropping duplicates and keeping a stable order.
    ///
    /// # Errors
    /// The first invalid domain, or too many.
    pub fn parse_domains<I, S>(raw: I) -> Result<Vec<Domain>, TenantSettingsError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut domains = raw
            .into_iter()
            .map(|d| Domain::parse(d.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        // Counted as given, duplicates too, as the document's maxItems counts them.
        if domains.len() > MAX_ALLOWED_DOMAINS {
            return Err(TenantSettingsError::TooManyDomains {
                max: MAX_ALLOWED_DOMAINS,
            });
        }
        domains.sort();
        domains.dedup();
        Ok(domains)
    }
}

/// The sending half of a tenant's settings, parsed: the defaults a message without a sender or a
/// Reply-To gets, and the domains a sender may use. Loaded with every API key and trusted network,
/// so no send parses them again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SendingPolicy {
    /// Used when a message names no sender.
    pub default_from: Option<Mailbox>,
    /// Added as Reply-To when a message sets none.
    pub reply_to: Option<Mailbox>,
    /// The display name of a sender that has none (SelfMX's `from_name`).
    pub from_name: Option<String>,
    /// When not empty, the only domains (and their subdomains) a sender may use, besides the
    /// tenant's verified domains.
    pub allowed_sender_domains: Vec<Domain>,
    /// Whether a sender's domain must be one of the tenant's verified domains (or an allowed
    /// one): the tenant's `require_verified_domains` setting.
    pub require_verified_domains: bool,
    /// The tenant's verified sending domains, filled in by the accept path for each send.
    pub verified_domains: Vec<Domain>,
}

/// What the sender-domain rule says of a domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SenderDomain {
    Allowed,
    /// Outside the allowed sender domains.
    NotAllowed,
    /// Not a verified domain of a tenant that requires one.
    NotVerified,
}

impl SendingPolicy {
    /// Parses settings as stored.
    ///
    /// # Errors
    /// A value that no longer parses (it was validated when written).
    pub fn from_stored(
        default_from: Option<&str>,
        reply_to: Option<&str>,
        from_name: Option<&str>,
        allowed_sender_domains: &[String],
    ) -> Result<Self, TenantSettingsError> {
        Ok(Self {
            default_from: default_from
                .map(|m| parse_setting_mailbox("default_from", m))
                .transpose()?,
            reply_to: reply_to
                .map(|m| parse_setting_mailbox("reply_to", m))
                .transpose()?,
            from_name: from_name
                .map(|n| parse_display_name("from_name", n))
                .transpose()?,
            allowed_sender_domains: allowed_sender_domains
                .iter()
                .map(|d| Domain::parse(d))
                .collect::<Result<_, _>>()?,
            require_verified_domains: false,
            verified_domains: Vec::new(),
        })
    }

    /// Whether the tenant may send from `domain` (an address's domain, in ASCII form): it is
    /// one of the tenant's verified domains or allowed sender domains (or a subdomain of one);
    /// otherwise only when no domains are listed and none must be verified.
    #[must_use]
    pub fn sender_domain(&self, domain: &str) -> SenderDomain {
        if within(&self.verified_domains, domain) || within(&self.allowed_sender_domains, domain) {
            SenderDomain::Allowed
        } else if self.require_verified_domains {
            SenderDomain::NotVerified
        } else if self.allowed_sender_domains.is_empty() {
            SenderDomain::Allowed
        } else {
            SenderDomain::NotAllowed
        }
    }

    /// Whether [`SendingPolicy::sender_domain`] allows `domain`.
    #[must_use]
    pub fn allows_sender_domain(&self, domain: &str) -> bool {
        self.sender_domain(domain) == SenderDomain::Allowed
    }
}

/// Whether `domain` is one of `domains` or a subdomain of one.
fn within(domains: &[Domain], domain: &str) -> bool {
    domains.iter().any(|parent| {
        let parent = parent.as_str();
        domain.eq_ignore_ascii_case(parent)
            || domain.len() > parent.len()
                && domain.is_char_boundary(domain.len() - parent.len())
                && domain[domain.len() - parent.len()..].eq_ignore_ascii_case(parent)
                && domain.as_bytes()[domain.len() - parent.len() - 1] == b'.'
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn domains_are_normalised_and_checked() {
        assert_eq!(
            Domain::parse("Example.COM.").unwrap().as_str(),
            "example.com"
        );
        assert_eq!(
            Domain::parse("xn--bcher-kva.de").unwrap().as_str(),
            "xn--bcher-kva.de"
        );
        for bad in [
            "",
            "localhost",
            "-a.com",
            "a-.com",
            "a..com",
            "exa mple.com",
            "bücher.de",
            "a.com\r\nbcc.test",
            " acme.test",
            "acme.test ",
            "acme.test..",
        ] {
            assert!(Domain::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn mailboxes_accept_display_names_and_refuse_injection() {
        assert!(parse_setting_mailbox("default_from", "Acme <noreply@acme.test>").is_ok());
        assert!(parse_setting_mailbox("default_from", "noreply@acme.test").is_ok());
        for bad in [
            "noreply",
            "@acme.test",
            "a@b",
            "Acme <noreply@acme.test",
            "noreply@acme.test\r\nBcc: x@evil.test",
            "Acme noreply@acme.test>",
        ] {
            let err = parse_setting_mailbox("reply_to", bad).unwrap_err();
            assert!(err.to_string().starts_with("reply_to:"), "{err}");
        }
    }

    #[test]
    fn domain_lists_are_deduplicated_and_capped() {
        let domains = TenantSettings::parse_domains(["b.test", "A.test", "a.test"]).unwrap();
        assert_eq!(
            domains.iter().map(Domain::as_str).collect::<Vec<_>>(),
            ["a.test", "b.test"]
        );
        let many: Vec<String> = (0..=MAX_ALLOWED_DOMAINS)
            .map(|i| format!("d{i}.test"))
            .collect();
        assert_eq!(
            TenantSettings::parse_domains(&many),
            Err(TenantSettingsError::TooManyDomains {
                max: MAX_ALLOWED_DOMAINS
            })
        );
    }

    #[test]
    fn allowed_domains_match_exactly_or_as_parents() {
        let policy = SendingPolicy {
            allowed_sender_domains: vec![Domain::parse("acme.test").unwrap()],
            ..SendingPolicy::default()
        };
        assert!(policy.allows_sender_domain("acme.test"));
        assert!(policy.allows_sender_domain("mail.acme.test"));
        assert!(policy.allows_sender_domain("Mail.ACME.test"));
        assert!(!policy.allows_sender_domain("evilacme.test"));
        assert!(!policy.allows_sender_domain("acme.test.evil"));
        assert!(!policy.allows_sender_domain("cme.test"));
        assert!(SendingPolicy::default().allows_sender_domain("anything.test"));
    }

    #[test]
    fn verified_domains_join_the_allowed_ones_and_may_be_required() {
        let mut policy = SendingPolicy {
            allowed_sender_domains: vec![Domain::parse("acme.test").unwrap()],
            verified_domains: vec![Domain::parse("brand.test").unwrap()],
            ..SendingPolicy::default()
        };
        assert_eq!(policy.sender_domain("brand.test"), SenderDomain::Allowed);
        assert_eq!(
            policy.sender_domain("mail.brand.test"),
            SenderDomain::Allowed
        );
        assert_eq!(policy.sender_domain("acme.test"), SenderDomain::Allowed);
        assert_eq!(policy.sender_domain("other.test"), SenderDomain::NotAllowed);
        policy.require_verified_domains = true;
        assert_eq!(policy.sender_domain("acme.test"), SenderDomain::Allowed);
        assert_eq!(
            policy.sender_domain("other.test"),
            SenderDomain::NotVerified
        );
        policy.allowed_sender_domains.clear();
        assert_eq!(
            policy.sender_domain("other.test"),
            SenderDomain::NotVerified
        );
        policy.require_verified_domains = false;
        assert_eq!(policy.sender_domain("other.test"), SenderDomain::Allowed);
    }

    #[test]
    fn stored_settings_parse_or_name_the_bad_field() {
        let policy = SendingPolicy::from_stored(
            Some("Acme <noreply@acme.test>"),
            None,
            Some("Acme"),
            &["acme.test".to_owned()],
        )
        .unwrap();
        assert_eq!(
            policy.default_from.unwrap().email.as_str(),
            "noreply@acme.test"
        );
        let err = SendingPolicy::from_stored(None, Some("nope"), None, &[]).unwrap_err();
        assert!(err.to_string().starts_with("reply_to:"), "{err}");
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(TenantName::parse("  Acme ").unwrap().as_str(), "Acme");
        assert!(TenantName::parse("   ").is_err());
        assert!(TenantName::parse(&"x".repeat(201)).is_err());
        // Limits apply to the text as sent.
        assert!(TenantName::parse(&format!(" {}", "x".repeat(200))).is_err());
        assert!(TenantName::parse("a\u{0}b").is_err());
        assert!(TenantName::parse("\tAcme").is_err());
    }

    proptest! {
        /// The document's pattern and the parser agree: what the pattern generates parses (up to
        /// the length limit), and what parses matches the pattern.
        #[test]
        fn the_documented_domain_pattern_is_the_parsers(
            generated in DOMAIN_PATTERN.trim_start_matches('^').trim_end_matches('$'),
            raw in "[a-zA-Z0-9.-]{0,20}|\\PC{0,20}",
        ) {
            let pattern = regex::Regex::new(DOMAIN_PATTERN).unwrap();
            if generated.trim_end_matches('.').len() <= 253 {
                prop_assert!(Domain::parse(&generated).is_ok(), "{generated:?}");
            }
            prop_assert_eq!(Domain::parse(&raw).is_ok(), pattern.is_match(&raw), "{:?}", raw);
        }

        #[test]
        fn the_documented_label_pattern_holds_for_what_parses(raw in "\\PC{0,8}|[\\x00-\\x20a]{0,4}") {
            let pattern = regex::Regex::new(NO_CONTROLS_PATTERN).unwrap();
            if parse_label(&raw, MAX_NAME_CHARS).is_some() {
                prop_assert!(pattern.is_match(&raw), "{:?}", raw);
            }
        }

        #[test]
        fn parsed_domains_never_hold_header_breaking_bytes(raw in "\\PC{0,40}") {
            if let Ok(domain) = Domain::parse(&raw) {
                prop_assert!(domain.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
            }
        }

    }
}
