//! What an SMTP reply or a transport failure means for a delivery: whether it is retried
//! ([`classify`]), and for a refusal whether the address itself is bad ([`bounce_class`]), which
//! decides whether it goes on the tenant's suppression list.

use std::fmt;

use crate::named::named;

/// The fate of one recipient after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the relay took responsibility.
    Delivered,
    /// 4xx, or the relay could not be reached, or TLS failed: try again later.
    Deferred,
    /// 5xx: permanent; do not retry.
    Bounced,
}

/// Classifies an SMTP reply code.
#[must_use]
pub fn classify(code: u16) -> Outcome {
    match code {
        200..=299 => Outcome::Delivered,
        500..=599 => Outcome::Bounced,
        // 4xx, and anything outside the protocol, is treated as temporary: retrying a message
        // that might have gone through is safer than dropping one that did not.
        _ => Outcome::Deferred,
    }
}

/// Why a recipient was refused, as far as its address is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BounceClass {
    /// The address does not work and will not (no such mailbox, no such domain, disabled):
    /// sending again only hurts the sender's reputation. Suppressed.
    Hard,
    /// The refusal says nothing final about the address (a full mailbox, a policy or content
    /// refusal, a temporary failure). Not suppressed.
    Soft,
}

impl BounceClass {
    pub const ALL: [Self; 2] = [Self::Hard, Self::Soft];

    /// The name in columns and API responses.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hard => "hard",
            Self::Soft => "soft",
        }
    }

    /// Resend's `bounce.type` in webhooks.
    #[must_use]
    pub const fn resend_type(self) -> &'static str {
        match self {
            Self::Hard => "Permanent",
            Self::Soft => "Transient",
        }
    }
}

named!(BounceClass, "bounce class", parse);

/// An RFC 3463 enhanced status code: `class.subject.detail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnhancedCode {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// The enhanced status code a reply's text starts with, after its three-digit code and separator
/// (`550 5.1.1 ...`, `550-5.1.1 ...`, or the text alone: `5.1.1 ...`). The first line decides.
#[must_use]
pub fn enhanced_code(text: &str) -> Option<EnhancedCode> {
    let line = text.lines().next().unwrap_or_default().trim_start();
    let rest = match line.as_bytes() {
        [a, b, c, sep, ..]
            if a.is_ascii_digit()
                && b.is_ascii_digit()
                && c.is_ascii_digit()
                && matches!(sep, b' ' | b'-') =>
        {
            &line[4..]
        }
        _ => line,
    };
    let token = rest.split_ascii_whitespace().next()?;
    let mut parts = token.split('.');
    let (class, subject, detail) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    // RFC 3463: class 2, 4 or 5; subject and detail of one to three digits.
    let number = |s: &str| {
        (!s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u16>().ok())
            .flatten()
    };
    let class = match class {
        "2" => 2,
        "4" => 4,
        "5" => 5,
        _ => return None,
    };
    Some(EnhancedCode {
        class,
        subject: number(subject)?,
        detail: number(detail)?,
    })
}

/// The class of a refusal: `None` for a reply that delivered.
///
/// Only a permanent refusal about the recipient's address is hard: with an enhanced code,
/// `5.1.x` (bad mailbox, bad domain, null MX at 5.1.10; not 5.1.7 and 5.1.8, which are about
/// our sender) and `5.2.1` (mailbox disabled); without one, 550, 551 and 553. Everything else
/// is soft: 4xx and transport failures, `5.2.2` mailbox full, and the system, network, protocol,
/// content and policy refusals (`5.3` to `5.7`), which say nothing about the address and
/// would suppress good recipients on a blocklisting.
#[must_use]
pub fn bounce_class(code: u16, text: &str) -> Option<BounceClass> {
    match classify(code) {
        Outcome::Delivered => None,
        Outcome::Deferred => Some(BounceClass::Soft),
        Outcome::Bounced => Some(match enhanced_code(text) {
            Some(status) => status_class(status),
            None if matches!(code, 550 | 551 | 553) => BounceClass::Hard,
            None => BounceClass::Soft,
        }),
    }
}

/// The class of a refusal by its enhanced status code alone (a reply's, or a delivery report's
/// `Status`): hard for `5.1.x` but 5.1.7 and 5.1.8, and for `5.2.1`; soft for everything else.
#[must_use]
pub const fn status_class(status: EnhancedCode) -> BounceClass {
    match status {
        EnhancedCode {
            class: 5,
            subject: 1,
            detail,
        } if !matches!(detail, 7 | 8) => BounceClass::Hard,
        EnhancedCode {
            class: 5,
            subject: 2,
            detail: 1,
        } => BounceClass::Hard,
        _ => BounceClass::Soft,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_classes_map_to_outcomes() {
        assert_eq!(classify(250), Outcome::Delivered);
        assert_eq!(classify(251), Outcome::Delivered);
        assert_eq!(classify(421), Outcome::Deferred);
        assert_eq!(classify(451), Outcome::Deferred);
        assert_eq!(classify(550), Outcome::Bounced);
        assert_eq!(classify(554), Outcome::Bounced);
        assert_eq!(classify(0), Outcome::Deferred);
        assert_eq!(classify(999), Outcome::Deferred);
    }

    #[test]
    fn enhanced_codes_are_read_after_the_reply_code() {
        let code = |c, s, d| {
            Some(EnhancedCode {
                class: c,
                subject: s,
                detail: d,
            })
        };
        assert_eq!(enhanced_code("550 5.1.1 No such user"), code(5, 1, 1));
        assert_eq!(
            enhanced_code("550-5.1.10 Null MX\r\n550 more"),
            code(5, 1, 10)
        );
        assert_eq!(enhanced_code("5.2.2 Mailbox full"), code(5, 2, 2));
        assert_eq!(enhanced_code("452 4.2.2 Over quota"), code(4, 2, 2));
        assert_eq!(enhanced_code("550 No such user"), None);
        assert_eq!(enhanced_code("550 5.1 short"), None);
        assert_eq!(enhanced_code("550 5.1.1.1 long"), None);
        assert_eq!(enhanced_code("550 3.1.1 bad class"), None);
        assert_eq!(enhanced_code("550 5.1234.1 too many digits"), None);
        assert_eq!(enhanced_code(""), None);
    }

    #[test]
    fn only_refusals_of_the_address_are_hard() {
        use BounceClass::{Hard, Soft};
        let cases = [
            (250, "250 2.0.0 OK", None),
            (550, "550 5.1.1 No such user", Some(Hard)),
            (550, "550 5.1.10 Recipient domain has a null MX", Some(Hard)),
            (550, "550 5.1.2 Bad destination system", Some(Hard)),
            (550, "550 5.2.1 Mailbox disabled", Some(Hard)),
            (552, "552 5.2.2 Mailbox full", Some(Soft)),
            (553, "553 5.1.8 Bad sender address", Some(Soft)),
            (550, "550 5.7.1 Blocked by policy", Some(Soft)),
            (554, "554 5.6.0 Content refused", Some(Soft)),
            (550, "550 User unknown", Some(Hard)),
            (553, "553 Mailbox name not allowed", Some(Hard)),
            (554, "554 Transaction failed", Some(Soft)),
            (552, "552 Exceeded storage", Some(Soft)),
            (450, "450 4.2.1 Try later", Some(Soft)),
            (421, "421 4.3.2 Shutting down", Some(Soft)),
            (0, "connection refused", Some(Soft)),
        ];
        for (code, text, expected) in cases {
            assert_eq!(bounce_class(code, text), expected, "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_classifies_without_panicking(code in 0u16..1000, text in ".{0,80}") {
            let class = bounce_class(code, &text);
            proptest::prop_assert_eq!(class.is_none(), (200..300).contains(&code));
            if !(500..600).contains(&code) {
                proptest::prop_assert_ne!(class, Some(BounceClass::Hard));
            }
        }
    }
}
