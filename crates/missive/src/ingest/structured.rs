//! A structured submission (REST) made into the email to store: the tenant's sender and Reply-To
//! defaults and the sender-domain rule, the recipient count, our Message-ID, the MIME build and
//! the final size.

use missive_core::SendingPolicy;
use missive_core::mime::{Envelope, build_mime, message_id};
use missive_core::submission::Submission;
use missive_store::NewEmail;
use time::OffsetDateTime;
use uuid::Uuid;

use super::policy::{self, AcceptLimits, Refusal};

/// Builds the message of one submission.
///
/// # Errors
/// The first rule the message breaks.
pub(super) fn compose(
    submission: Submission,
    policy: &SendingPolicy,
    limits: &AcceptLimits,
    now: OffsetDateTime,
) -> Result<NewEmail, Refusal> {
    let from = policy::sender(submission.from(), policy, "from")?;
    let reply_to = policy::reply_to(submission.reply_to(), policy);
    let recipients = submission.recipients();
    policy::check_recipients(recipients.len(), limits)?;
    let id = Uuid::now_v7();
    let message_id = message_id(&id, &from.email);
    let mime = build_mime(
        &submission,
        Envelope {
            from: &from,
            reply_to: &reply_to,
            message_id: &message_id,
            date: now,
        },
    );
    policy::check_size(mime.len(), limits)?;
    let smtputf8 =
        policy::needs_smtputf8(false, &from.email, recipients.iter().map(|r| &r.address));
    let scheduled_at = submission.scheduled_at();
    let content = submission.into_content();
    Ok(NewEmail {
        id,
        message_id,
        envelope_from: from.email.clone(),
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
    })
}
