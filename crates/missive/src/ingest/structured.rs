//! A structured submission made into the email to store: the tenant's sender and Reply-To
//! defaults and the sender-domain rule, the recipient count, our Message-ID, the MIME build and
//! the final size.
//!
//! Most submissions come from REST. A message received over SMTP that names a template becomes
//! one too (its body is the template's), and keeps what SMTP decided: the envelope sender and
//! recipients, its own Message-ID when it has one, and a Received header.

use missive_core::mime::{Envelope, build_mime, message_id};
use missive_core::submission::{Recipient, RecipientKind, Submission};
use missive_core::{EmailId, SendingPolicy};
use missive_store::NewEmail;
use time::OffsetDateTime;

use super::policy::{self, AcceptLimits, Refusal};
use super::raw::{RawEnvelope, Trace, received};

/// What a submission received over SMTP keeps of its session.
pub(super) struct FromSmtp<'a> {
    pub envelope: RawEnvelope,
    pub trace: &'a Trace,
    /// The message's own Message-ID, without angle brackets.
    pub message_id: Option<String>,
}

/// Builds the message of one submission.
///
/// # Errors
/// The first rule the message breaks.
pub(super) fn compose(
    submission: Submission,
    policy: &SendingPolicy,
    limits: &AcceptLimits,
    now: OffsetDateTime,
    smtp: Option<FromSmtp<'_>>,
) -> Result<NewEmail, Refusal> {
    let field = if smtp.is_some() {
        "From header"
    } else {
        "from"
    };
    let from = policy::sender(submission.from(), policy, field)?;
    let reply_to = policy::reply_to(submission.reply_to(), policy);
    let recipients = match &smtp {
        None => submission.recipients(),
        Some(smtp) => envelope_recipients(&smtp.envelope, &submission),
    };
    policy::check_recipients(recipients.len(), limits)?;
    let id = EmailId::new();
    let message_id = smtp
        .as_ref()
        .and_then(|s| s.message_id.clone())
        .unwrap_or_else(|| message_id(&id, &from.email));
    let mut mime = build_mime(
        &submission,
        Envelope {
            from: &from,
            reply_to: &reply_to,
            message_id: &message_id,
            date: now,
        },
    );
    let (envelope_from, smtputf8) = match smtp {
        None => {
            let smtputf8 =
                policy::needs_smtputf8(false, &from.email, recipients.iter().map(|r| &r.address));
            (from.email.clone(), smtputf8)
        }
        Some(smtp) => {
            let mut traced = received(smtp.trace, &id, now).into_bytes();
            traced.append(&mut mime);
            mime = traced;
            let smtputf8 = policy::needs_smtputf8(
                smtp.envelope.smtputf8,
                &smtp.envelope.mail_from,
                &smtp.envelope.recipients,
            );
            (smtp.envelope.mail_from, smtputf8)
        }
    };
    policy::check_size(mime.len(), limits)?;
    let scheduled_at = submission.scheduled_at();
    let content = submission.into_content();
    Ok(NewEmail {
        id,
        message_id,
        envelope_from,
        from,
        smtputf8,
        reply_to,
        subject: content.subject,
        html: content.html,
        text: content.text,
        tags: content.tags,
        mime,
        scheduled_at,
        recipients,
        over_smtp: false,
    })
}

/// The envelope's recipients, each shown as To or Cc when the headers list it, else Bcc.
fn envelope_recipients(envelope: &RawEnvelope, submission: &Submission) -> Vec<Recipient> {
    let listed = |list: &[missive_core::Mailbox], rcpt: &missive_core::EmailAddress| {
        list.iter().any(|m| m.email.same_recipient(rcpt))
    };
    envelope
        .recipients
        .iter()
        .map(|address| {
            let kind = if listed(submission.to(), address) {
                RecipientKind::To
            } else if listed(submission.cc(), address) {
                RecipientKind::Cc
            } else {
                RecipientKind::Bcc
            };
            Recipient {
                kind,
                address: address.clone(),
            }
        })
        .collect()
}
