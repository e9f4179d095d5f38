//! The rules every accepted message answers to, whichever protocol brought it: the sender (the
//! tenant's default when there is none, and the allowed sender domains), the Reply-To default,
//! the recipient count and the final size. Each rule is written here once; the SMTP session also
//! calls them early (at MAIL and RCPT) to refuse a transaction before its text is sent, with the
//! same limits and the same words.

use missive_core::idempotency::InvalidIdempotencyKey;
use missive_core::{EmailAddress, Mailbox, SenderDomain, SendingPolicy};

/// Limits that hold for every message, from the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcceptLimits {
    /// Largest final message (after our headers are added), in octets.
    pub max_message_bytes: usize,
    /// Most envelope recipients of one message, after duplicates are merged.
    pub max_recipients: usize,
}

/// Why a message was refused. The text is safe to show the client and names what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A field, or the message itself, does not hold up.
    #[error("{0}")]
    Invalid(String),
    /// The sender's domain is outside the tenant's allowed sender domains.
    #[error("{field}: the domain `{domain}` is not one of this tenant's allowed sender domains")]
    SenderNotAllowed { field: &'static str, domain: String },
    /// The tenant sends only from verified domains, and this is not one.
    #[error(
        "{field}: the domain `{domain}` is not verified; add it with POST /v1/domains, publish its records and verify it"
    )]
    DomainNotVerified { field: &'static str, domain: String },
    #[error("the message is {size} bytes, over the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("{count} recipients, over the limit of {max} per message")]
    TooManyRecipients { count: usize, max: usize },
    #[error(transparent)]
    IdempotencyKey(#[from] InvalidIdempotencyKey),
    /// RFC 5322 section 2.1.1.
    #[error("a line of the message is longer than 998 octets")]
    LineTooLong,
    /// The template a message names cannot be used or rendered; the text names it and why.
    #[error("{0}")]
    Template(String),
}

/// The sender of a message: the one it names, or the tenant's default; either way inside the
/// tenant's allowed sender domains, and with the tenant's `from_name` when it has no display
/// name of its own. `field` names where the sender came from.
///
/// # Errors
/// [`Refusal::Invalid`] when there is neither, [`Refusal::SenderNotAllowed`] for a domain outside
/// the allowed ones.
pub fn sender(
    named: Option<&Mailbox>,
    policy: &SendingPolicy,
    field: &'static str,
) -> Result<Mailbox, Refusal> {
    let mut from = named
        .or(policy.default_from.as_ref())
        .cloned()
        .ok_or_else(|| {
            Refusal::Invalid(format!(
                "{field}: required (the tenant has no default_from)"
            ))
        })?;
    check_sender(policy, field, &from.email)?;
    if from.name.is_none() {
        from.name.clone_from(&policy.from_name);
    }
    Ok(from)
}

/// The sender-domain rule alone, for an address already chosen (an envelope sender).
///
/// # Errors
/// [`Refusal::SenderNotAllowed`], or [`Refusal::DomainNotVerified`] when the tenant requires
/// verified domains.
pub fn check_sender(
    policy: &SendingPolicy,
    field: &'static str,
    address: &EmailAddress,
) -> Result<(), Refusal> {
    let domain = address.domain().to_owned();
    match policy.sender_domain(&domain) {
        SenderDomain::Allowed => Ok(()),
        SenderDomain::NotAllowed => Err(Refusal::SenderNotAllowed { field, domain }),
        SenderDomain::NotVerified => Err(Refusal::DomainNotVerified { field, domain }),
    }
}

/// The Reply-To of a message: the one it names, or the tenant's default.
#[must_use]
pub fn reply_to(named: &[Mailbox], policy: &SendingPolicy) -> Vec<Mailbox> {
    if named.is_empty() {
        policy.reply_to.iter().cloned().collect()
    } else {
        named.to_vec()
    }
}

/// At least one recipient, and no more than the limit.
///
/// # Errors
/// [`Refusal::Invalid`] for none, [`Refusal::TooManyRecipients`] over the limit.
pub fn check_recipients(count: usize, limits: &AcceptLimits) -> Result<(), Refusal> {
    if count == 0 {
        return Err(Refusal::Invalid("to: at least one address".to_owned()));
    }
    if count > limits.max_recipients {
        return Err(Refusal::TooManyRecipients {
            count,
            max: limits.max_recipients,
        });
    }
    Ok(())
}

/// The final message within the size limit.
///
/// # Errors
/// [`Refusal::TooLarge`].
pub fn check_size(size: usize, limits: &AcceptLimits) -> Result<(), Refusal> {
    if size > limits.max_message_bytes {
        return Err(Refusal::TooLarge {
            size,
            max: limits.max_message_bytes,
        });
    }
    Ok(())
}

/// Whether relaying needs SMTPUTF8: the client asked for it, or an envelope address has a UTF-8
/// local part.
#[must_use]
pub fn needs_smtputf8<'a>(
    requested: bool,
    envelope_from: &EmailAddress,
    recipients: impl IntoIterator<Item = &'a EmailAddress>,
) -> bool {
    requested
        || envelope_from.needs_smtputf8()
        || recipients.into_iter().any(EmailAddress::needs_smtputf8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use missive_core::Domain;

    fn policy() -> SendingPolicy {
        SendingPolicy {
            default_from: Some(Mailbox::parse("Acme <noreply@acme.test>").unwrap()),
            reply_to: Some(Mailbox::parse("help@acme.test").unwrap()),
            from_name: None,
            allowed_sender_domains: vec![Domain::parse("acme.test").unwrap()],
            ..SendingPolicy::default()
        }
    }

    #[test]
    fn the_sender_is_named_or_defaulted_and_always_inside_the_allowed_domains() {
        let named = Mailbox::parse("x@mail.acme.test").unwrap();
        assert_eq!(sender(Some(&named), &policy(), "from").unwrap(), named);
        assert_eq!(
            sender(None, &policy(), "from").unwrap().email.as_str(),
            "noreply@acme.test"
        );
        let outside = Mailbox::parse("x@evil.test").unwrap();
        let err = sender(Some(&outside), &policy(), "from").unwrap_err();
        assert_eq!(
            err.to_string(),
            "from: the domain `evil.test` is not one of this tenant's allowed sender domains"
        );
        let err = sender(None, &SendingPolicy::default(), "From header").unwrap_err();
        assert!(
            err.to_string().starts_with("From header: required"),
            "{err}"
        );
    }

    #[test]
    fn a_sender_without_a_display_name_takes_the_tenants() {
        let named = SendingPolicy {
            from_name: Some("Acme Support".to_owned()),
            ..policy()
        };
        let bare = Mailbox::parse("help@acme.test").unwrap();
        assert_eq!(
            sender(Some(&bare), &named, "from").unwrap().to_string(),
            "Acme Support <help@acme.test>"
        );
        let own = Mailbox::parse("Bob <bob@acme.test>").unwrap();
        assert_eq!(sender(Some(&own), &named, "from").unwrap(), own);
    }

    #[test]
    fn reply_to_defaults_only_when_none_is_named() {
        let named = [Mailbox::parse("me@x.test").unwrap()];
        assert_eq!(reply_to(&named, &policy()), named);
        assert_eq!(reply_to(&[], &policy())[0].email.as_str(), "help@acme.test");
        assert!(reply_to(&[], &SendingPolicy::default()).is_empty());
    }

    #[test]
    fn counts_and_sizes_have_their_limits() {
        let limits = AcceptLimits {
            max_message_bytes: 10,
            max_recipients: 2,
        };
        assert!(check_recipients(0, &limits).is_err());
        assert!(check_recipients(2, &limits).is_ok());
        assert_eq!(
            check_recipients(3, &limits),
            Err(Refusal::TooManyRecipients { count: 3, max: 2 })
        );
        assert!(check_size(10, &limits).is_ok());
        assert_eq!(
            check_size(11, &limits),
            Err(Refusal::TooLarge { size: 11, max: 10 })
        );
    }
}
