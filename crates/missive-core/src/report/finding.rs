//! From a message that arrived at a return path (or the feedback address) to what it says
//! happened to which recipients: the one reading the inbound MX records.
//!
//! A feedback report is a complaint; a delivery report gives one finding per recipient group; a
//! message without a report part is a plain bounce only when it looks like one (sent with the
//! null sender, or from a mailer daemon, and not an auto-reply), classified from its words.
//! Anything else (an out-of-office reply, a human answering the return path) says nothing.

use mail_parser::MessageParser;

use super::{Action, classify_text, parse_delivery_report, parse_feedback_report};
use crate::outcome::BounceClass;

/// What a report says happened to one recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindingKind {
    /// Not delivered and not retried; the class when the report says (`None`: unknown).
    Bounced(Option<BounceClass>),
    /// Not delivered yet; a system downstream keeps trying.
    Delayed,
    /// Delivered to the mailbox, or handed to a system that reports no further.
    Delivered,
    /// The recipient complained (marked it as spam).
    Complained,
}

/// One recipient's part of a report, as the store records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The recipient the report names (`Original-Recipient` first, the `ORCPT` Missive sent),
    /// lower case; `None` when it names none.
    pub recipient: Option<String>,
    pub kind: FindingKind,
    /// The enhanced status (`5.1.1`).
    pub status: Option<String>,
    /// The SMTP reply code the diagnostic starts with.
    pub code: Option<u16>,
    /// The diagnostic, or what stands for it; at most [`MAX_DETAIL`] characters.
    pub detail: String,
    /// Who reported: `Reporting-MTA`, or the feedback report's.
    pub reporting_mta: Option<String>,
}

/// Characters of a diagnostic kept.
pub const MAX_DETAIL: usize = 1_000;
/// Addresses a plain bounce's text may name that are tried as its recipients.
const MAX_CANDIDATES: usize = 20;

/// What a received message says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reading {
    pub findings: Vec<Finding>,
    /// For a finding that names no recipient: addresses its text mentions, to match against
    /// the email's recipients (lower case).
    pub candidates: Vec<String>,
    /// The reported message's `Message-ID`, without angle brackets.
    pub original_message_id: Option<String>,
    /// The reported message's envelope sender as the report gives it (a feedback report's
    /// `Original-Mail-From`, or the returned headers' `Return-Path`): how a report sent to the
    /// feedback address finds its return path.
    pub original_return_path: Option<String>,
}

impl Reading {
    /// Whether the message said anything Missive records.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.findings.is_empty()
    }
}

fn clip(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_DETAIL) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

/// The reply code a diagnostic starts with (`550 5.1.1 ...`, `550-...`).
fn leading_code(text: &str) -> Option<u16> {
    let digits = text.trim_start().get(..3)?;
    let code: u16 = digits.parse().ok()?;
    let after = text.trim_start().as_bytes().get(3).copied();
    ((200..600).contains(&code) && matches!(after, None | Some(b' ' | b'-'))).then_some(code)
}

fn address(raw: &str) -> Option<String> {
    let bare = raw
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (bare.contains('@') && bare.len() <= 320).then(|| bare.to_ascii_lowercase())
}

/// Reads a message that came to a return path or the feedback address. `null_sender`: it came
/// with the null reverse path (`MAIL FROM:<>`), as bounces do.
#[must_use]
pub fn read(raw: &[u8], null_sender: bool) -> Reading {
    if let Some(report) = parse_feedback_report(raw) {
        if !report.feedback_type.is_complaint() {
            return Reading::default();
        }
        let detail = clip(&format!(
            "feedback report: {}{}",
            report.feedback_type.as_str(),
            report
                .user_agent
                .as_deref()
                .map(|ua| format!(" from {ua}"))
                .unwrap_or_default()
        ));
        let mut recipients: Vec<Option<String>> = report
            .original_rcpt_to
            .iter()
            .filter_map(|r| address(r))
            .map(Some)
            .collect();
        if recipients.is_empty() {
            recipients.push(None);
        }
        return Reading {
            findings: recipients
                .into_iter()
                .map(|recipient| Finding {
                    recipient,
                    kind: FindingKind::Complained,
                    status: None,
                    code: None,
                    detail: detail.clone(),
                    reporting_mta: report.reporting_mta.clone(),
                })
                .collect(),
            candidates: report
                .original_to
                .as_deref()
                .and_then(address)
                .into_iter()
                .collect(),
            original_message_id: report.original_message_id,
            original_return_path: report
                .original_return_path
                .as_deref()
                .or(report.original_mail_from.as_deref())
                .and_then(address),
        };
    }
    if let Some(report) = parse_delivery_report(raw) {
        let findings = report
            .recipients
            .iter()
            .map(|r| {
                let kind = match r.action {
                    Action::Failed => FindingKind::Bounced(r.bounce_class()),
                    Action::Delayed => FindingKind::Delayed,
                    Action::Delivered | Action::Relayed | Action::Expanded => {
                        FindingKind::Delivered
                    }
                };
                let diagnostic = r.diagnostic.as_deref().unwrap_or_default();
                Finding {
                    recipient: r
                        .original_recipient
                        .as_deref()
                        .or(r.final_recipient.as_deref())
                        .and_then(address),
                    kind,
                    status: r.status.map(|s| s.to_string()),
                    code: leading_code(diagnostic),
                    detail: clip(diagnostic),
                    reporting_mta: report.reporting_mta.clone(),
                }
            })
            .collect();
        return Reading {
            findings,
            candidates: Vec::new(),
            original_message_id: report.original_message_id,
            original_return_path: None,
        };
    }
    plain_bounce(raw, null_sender).unwrap_or_default()
}

/// A bounce without a report part: its first text part, classified by its words.
fn plain_bounce(raw: &[u8], null_sender: bool) -> Option<Reading> {
    let message = MessageParser::default().parse(raw)?;
    if message.header("Auto-Submitted").is_some_and(|v| {
        v.as_text()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("auto-replied"))
    }) {
        return None;
    }
    let from_daemon = message
        .from()
        .and_then(|f| f.first())
        .and_then(|a| a.address())
        .is_some_and(|a| {
            let local = a.split('@').next().unwrap_or_default().to_ascii_lowercase();
            local == "mailer-daemon" || local == "postmaster"
        });
    if !(null_sender || from_daemon) {
        return None;
    }
    let text = message.body_text(0)?;
    let candidates = text
        .split(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '(' | ')' | ',' | ';'))
        .filter_map(|w| address(w.trim_end_matches(['.', ':'])))
        .take(MAX_CANDIDATES)
        .collect();
    let detail = text
        .lines()
        .map(str::trim)
        .find(|l| leading_code(l).is_some())
        .unwrap_or_else(|| {
            text.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or_default()
        });
    Some(Reading {
        findings: vec![Finding {
            recipient: None,
            kind: FindingKind::Bounced(classify_text(&text)),
            status: None,
            code: leading_code(detail),
            detail: clip(detail),
            reporting_mta: None,
        }],
        candidates,
        original_message_id: None,
        original_return_path: None,
    })
}
