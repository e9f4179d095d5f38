//! Reports that come back after a relay's 250: RFC 3464 delivery status notifications
//! (`multipart/report; report-type=delivery-status`), read field by field; bounces without a
//! report part, classified from their text by written rules ([`classify_text`]); and RFC 5965
//! feedback reports (ARF, `report-type=feedback-report`), the complaints of mailbox providers'
//! feedback loops.
//!
//! Pure parsing, no I/O: the inbound MX feeds it what it received, size-capped. Nothing here
//! trusts a report: which email and recipient it is about is decided by the return path it was
//! sent to, not by what it says.

use mail_parser::{MessageParser, MimeHeaders as _};

use crate::outcome::{BounceClass, EnhancedCode, enhanced_code, status_class};

mod finding;
pub use finding::{Finding, FindingKind, MAX_DETAIL, Reading, read};

/// What a reporting MTA did with one recipient (RFC 3464 §2.3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Could not be delivered and will not be retried.
    Failed,
    /// Not delivered yet; the MTA keeps trying.
    Delayed,
    /// Delivered to the recipient's mailbox.
    Delivered,
    /// Handed on to a system that reports no further (no DSN support beyond it).
    Relayed,
    /// Delivered, and forwarded to further recipients.
    Expanded,
}

impl Action {
    fn parse(raw: &str) -> Option<Self> {
        // Extensions may follow in parentheses (`failed (bad mailbox)`); case does not matter.
        let word = raw
            .split(['(', ' ', '\t'])
            .next()?
            .trim()
            .to_ascii_lowercase();
        Some(match word.as_str() {
            "failed" => Self::Failed,
            "delayed" => Self::Delayed,
            "delivered" => Self::Delivered,
            "relayed" => Self::Relayed,
            "expanded" => Self::Expanded,
            _ => return None,
        })
    }
}

/// One recipient's part of a report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientReport {
    /// `Final-Recipient`, without its address type (`rfc822;`).
    pub final_recipient: Option<String>,
    /// `Original-Recipient` (the `ORCPT` Missive sent), without its address type.
    pub original_recipient: Option<String>,
    pub action: Action,
    /// `Status`, an enhanced status code.
    pub status: Option<EnhancedCode>,
    /// `Diagnostic-Code`, without its type (`smtp;`), continuation lines joined.
    pub diagnostic: Option<String>,
    /// `Remote-MTA`, without its type (`dns;`).
    pub remote_mta: Option<String>,
}

impl RecipientReport {
    /// What the report says about the address, for a failure: the status decides as an SMTP
    /// reply's enhanced code would ([`status_class`]); without a status, the
    /// diagnostic's words ([`classify_text`]). `None` for a recipient that did not fail, or a
    /// failure that says nothing either way.
    #[must_use]
    pub fn bounce_class(&self) -> Option<BounceClass> {
        if self.action != Action::Failed {
            return None;
        }
        match self.status {
            Some(status) => Some(status_class(status)),
            None => classify_text(self.diagnostic.as_deref().unwrap_or_default()),
        }
    }
}

/// The parts of a `multipart/report` message, each as its type and subtype (lower case) and its
/// contents; `None` for any other message.
fn report_parts(raw: &[u8]) -> Option<Vec<(String, String, Vec<u8>)>> {
    let message = MessageParser::default().parse(raw)?;
    let root = message.content_type()?;
    if !root.ctype().eq_ignore_ascii_case("multipart")
        || !root
            .subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    {
        return None;
    }
    Some(
        message
            .parts
            .iter()
            .filter_map(|part| {
                let kind = part.content_type()?;
                Some((
                    kind.ctype().to_ascii_lowercase(),
                    kind.subtype().unwrap_or_default().to_ascii_lowercase(),
                    part.contents().to_vec(),
                ))
            })
            .collect(),
    )
}

/// A delivery status notification.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// `Reporting-MTA`, without its type.
    pub reporting_mta: Option<String>,
    /// `Original-Envelope-Id` (the `ENVID` Missive sent).
    pub envelope_id: Option<String>,
    /// The reported message's `Message-ID` (from its returned headers), without angle brackets.
    pub original_message_id: Option<String>,
    pub recipients: Vec<RecipientReport>,
}

/// Reads a whole report message: `None` unless it is `multipart/report` with a
/// `message/delivery-status` part that names at least one recipient.
#[must_use]
pub fn parse_delivery_report(raw: &[u8]) -> Option<DeliveryReport> {
    let parts = report_parts(raw)?;
    let mut report: Option<DeliveryReport> = None;
    let mut original_message_id = None;
    for (ctype, subtype, contents) in &parts {
        match (ctype.as_str(), subtype.as_str()) {
            ("message", "delivery-status" | "global-delivery-status") if report.is_none() => {
                report = parse_delivery_status(contents);
            }
            ("text", "rfc822-headers") | ("message", "rfc822" | "rfc822-headers") => {
                original_message_id = original_message_id.or_else(|| message_id_in(contents));
            }
            _ => {}
        }
    }
    let mut report = report?;
    report.original_message_id = original_message_id;
    Some(report)
}

/// The header block of a returned message (or returned headers alone): up to the first blank
/// line.
fn header_block(message: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(message).replace("\r\n", "\n");
    fields(text.split("\n\n").next().unwrap_or_default().as_bytes())
}

/// The value of the first field called `name`.
fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A message id's value without angle brackets; none when empty.
fn bare_id(value: &str) -> Option<String> {
    let id = value.trim().trim_start_matches('<').trim_end_matches('>');
    (!id.is_empty()).then(|| id.to_owned())
}

/// The `Message-ID` among returned headers, without angle brackets.
fn message_id_in(message: &[u8]) -> Option<String> {
    field(&header_block(message), "message-id").and_then(bare_id)
}

/// What a feedback report says the recipient did (RFC 5965 §7.3, and RFC 6650's `not-spam`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedbackType {
    /// Marked as spam or otherwise unwanted: a complaint.
    Abuse,
    Fraud,
    Virus,
    /// Marked as not spam.
    NotSpam,
    /// `auth-failure` and any type not registered.
    Other,
}

impl FeedbackType {
    fn parse(raw: &str) -> Self {
        match raw.trim().to_ascii_lowercase().as_str() {
            "abuse" => Self::Abuse,
            "fraud" => Self::Fraud,
            "virus" => Self::Virus,
            "not-spam" => Self::NotSpam,
            _ => Self::Other,
        }
    }

    /// The report's name for it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Abuse => "abuse",
            Self::Fraud => "fraud",
            Self::Virus => "virus",
            Self::NotSpam => "not-spam",
            Self::Other => "other",
        }
    }

    /// Whether the recipient complained: the types that mean "this mail is unwanted".
    #[must_use]
    pub const fn is_complaint(self) -> bool {
        matches!(self, Self::Abuse | Self::Fraud | Self::Virus)
    }
}

/// A feedback report: a recipient's complaint about one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedbackReport {
    pub feedback_type: FeedbackType,
    /// `User-Agent`: who generated the report.
    pub user_agent: Option<String>,
    /// `Original-Mail-From`: the envelope sender of the reported message (a return path).
    pub original_mail_from: Option<String>,
    /// `Original-Rcpt-To`: the recipients the reported message was delivered to.
    pub original_rcpt_to: Vec<String>,
    /// `Reporting-MTA`, without its type.
    pub reporting_mta: Option<String>,
    /// The reported message's `Message-ID`, without angle brackets.
    pub original_message_id: Option<String>,
    /// The reported message's `Return-Path`, when its returned headers carry one.
    pub original_return_path: Option<String>,
    /// The reported message's `To`, for reports that leave `Original-Rcpt-To` out.
    pub original_to: Option<String>,
}

/// Reads a whole feedback report: `None` unless it is `multipart/report` with a
/// `message/feedback-report` part that has a `Feedback-Type`.
#[must_use]
pub fn parse_feedback_report(raw: &[u8]) -> Option<FeedbackReport> {
    let parts = report_parts(raw)?;
    let mut report: Option<FeedbackReport> = None;
    let mut original: Vec<(String, String)> = Vec::new();
    for (ctype, subtype, contents) in &parts {
        match (ctype.as_str(), subtype.as_str()) {
            ("message", "feedback-report") if report.is_none() => {
                let fields = fields(contents);
                let Some(feedback_type) = field(&fields, "feedback-type") else {
                    continue;
                };
                report = Some(FeedbackReport {
                    feedback_type: FeedbackType::parse(feedback_type),
                    user_agent: field(&fields, "user-agent").map(str::to_owned),
                    original_mail_from: field(&fields, "original-mail-from").map(address),
                    original_rcpt_to: fields
                        .iter()
                        .filter(|(n, _)| n.eq_ignore_ascii_case("original-rcpt-to"))
                        .map(|(_, v)| address(v))
                        .collect(),
                    reporting_mta: field(&fields, "reporting-mta").map(typed),
                    original_message_id: None,
                    original_return_path: None,
                    original_to: None,
                });
            }
            ("message", "rfc822" | "rfc822-headers") | ("text", "rfc822-headers")
                if original.is_empty() =>
            {
                original = header_block(contents);
            }
            _ => {}
        }
    }
    let mut report = report?;
    report.original_message_id = field(&original, "message-id").and_then(bare_id);
    report.original_return_path = field(&original, "return-path").map(address);
    report.original_to = field(&original, "to").map(str::to_owned);
    Some(report)
}

/// Reads the body of a `message/delivery-status` part: the per-message fields, then a group of
/// fields per recipient, groups separated by blank lines. `None` without a recipient group that
/// has an `Action`.
#[must_use]
pub fn parse_delivery_status(body: &[u8]) -> Option<DeliveryReport> {
    let text = String::from_utf8_lossy(body);
    let normalized = text.replace("\r\n", "\n");
    let mut groups = normalized
        .split("\n\n")
        .map(|g| fields(g.as_bytes()))
        .filter(|g| !g.is_empty());
    let per_message = groups.next()?;
    let value_of = |group: &[(String, String)], name: &str| {
        group
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut report = DeliveryReport {
        reporting_mta: value_of(&per_message, "reporting-mta").map(|v| typed(&v)),
        envelope_id: value_of(&per_message, "original-envelope-id").map(|v| v.trim().to_owned()),
        original_message_id: None,
        recipients: Vec::new(),
    };
    for group in groups {
        let Some(action) = value_of(&group, "action").and_then(|a| Action::parse(&a)) else {
            continue;
        };
        report.recipients.push(RecipientReport {
            final_recipient: value_of(&group, "final-recipient").map(|v| address(&v)),
            original_recipient: value_of(&group, "original-recipient").map(|v| address(&v)),
            action,
            status: value_of(&group, "status").and_then(|s| enhanced_code(s.trim())),
            diagnostic: value_of(&group, "diagnostic-code").map(|v| typed(&v)),
            remote_mta: value_of(&group, "remote-mta").map(|v| typed(&v)),
        });
    }
    (!report.recipients.is_empty()).then_some(report)
}

/// A field's value after its type (`rfc822; a@b` → `a@b`, `smtp; 550 ...` → `550 ...`).
fn typed(value: &str) -> String {
    match value.split_once(';') {
        Some((kind, rest)) if !kind.contains(' ') && !kind.is_empty() => rest.trim().to_owned(),
        _ => value.trim().to_owned(),
    }
}

/// An address field's value: typed, and without angle brackets.
fn address(value: &str) -> String {
    typed(value)
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

/// Header-style fields, with folded continuation lines joined by a space. Lines that are not
/// fields are skipped.
fn fields(block: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(block);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':')
            && !name.is_empty()
            && !name.contains(' ')
        {
            out.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    out
}

/// What a bounce's words say about the address, for bounces without a status (a report's
/// diagnostic without `Status`, or a bounce with no report part at all).
///
/// An enhanced status code in the text decides first, as in a reply. Then the phrases mail
/// servers use: for a mailbox or domain that does not exist, hard; for one that is full, over
/// quota, or temporarily unavailable, soft. Anything else (blocklists, content, policy, a
/// wording no rule knows) is `None`: unknown stays unknown, and suppresses nothing.
#[must_use]
pub fn classify_text(text: &str) -> Option<BounceClass> {
    if let Some(code) = text
        .split_ascii_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_digit() && c != '.'))
        .find_map(|word| {
            let code = enhanced_code(word)?;
            (word.split('.').count() == 3 && code.class != 2).then_some(code)
        })
    {
        return Some(status_class(code));
    }
    let lower = text.to_ascii_lowercase();
    const HARD: &[&str] = &[
        "user unknown",
        "unknown user",
        "no such user",
        "no such recipient",
        "no such mailbox",
        "mailbox unavailable",
        "mailbox not found",
        "recipient not found",
        "recipientnotfound",
        "recipient address rejected",
        "address rejected",
        "does not exist",
        "doesn't exist",
        "invalid recipient",
        "invalid mailbox",
        "unrouteable address",
        "unroutable address",
        "host or domain name not found",
        "domain not found",
        "no mx",
        "account has been disabled",
        "account is disabled",
    ];
    const SOFT: &[&str] = &[
        "mailbox full",
        "mailbox is full",
        "over quota",
        "quota exceeded",
        "exceeded storage",
        "insufficient storage",
        "temporarily",
        "try again later",
        "connection timed out",
    ];
    if SOFT.iter().any(|p| lower.contains(p)) {
        return Some(BounceClass::Soft);
    }
    if HARD.iter().any(|p| lower.contains(p)) {
        return Some(BounceClass::Hard);
    }
    None
}

#[cfg(test)]
mod tests;
