//! Ingest: the checks and rendering every accepted message goes through, whether it came over
//! REST or SMTP, before one transaction stores it.
//!
//! Order matters: everything that can refuse a message (sender domain, size) runs before any
//! database work, so a refused message costs no transaction and leaves nothing behind.

use missive_core::mime::{build_mime, message_id};
use missive_core::submission::Submission;
use missive_core::{Mailbox, TenantId};
use missive_store::{EmailWriter, IdempotencyRecord, InsertOutcome, NewEmail, StoreError};
use time::OffsetDateTime;
use uuid::Uuid;

/// What ingest needs to know about the sending tenant (loaded with its API key).
#[derive(Debug, Clone, Default)]
pub struct SendingSettings {
    pub default_from: Option<String>,
    pub reply_to: Option<String>,
    pub allowed_sender_domains: Vec<String>,
}

/// Why a message was refused.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    SenderNotAllowed(String),
    #[error("the message is {size} bytes, over the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The default sender when a message names none.
///
/// # Errors
/// `Invalid` when the message has no sender and the tenant no default.
pub fn sender(from: Option<&str>, settings: &SendingSettings) -> Result<Mailbox, IngestError> {
    let raw = from.or(settings.default_from.as_deref()).ok_or_else(|| {
        IngestError::Invalid("from: required (the tenant has no default_from)".to_owned())
    })?;
    Mailbox::parse(raw).map_err(|e| IngestError::Invalid(format!("from: {e}")))
}

/// Whether the tenant may send from `domain`: its allowed domains are empty, or `domain` is one
/// of them or a subdomain of one.
#[must_use]
pub fn sender_domain_allowed(domain: &str, settings: &SendingSettings) -> bool {
    domain_allowed(domain, &settings.allowed_sender_domains)
}

/// Whether `domain` is one of `allowed` or a subdomain of one.
fn domain_allowed(domain: &str, allowed: &[String]) -> bool {
    allowed.is_empty()
        || allowed.iter().any(|a| {
            domain == a
                || domain
                    .strip_suffix(a.as_str())
                    .is_some_and(|rest| rest.ends_with('.'))
        })
}

/// Checks a submission against the tenant's rules and renders it into the row to store.
///
/// # Errors
/// `SenderNotAllowed` for a sender outside the allowed domains, `Invalid` for a tenant default
/// that no longer parses, `TooLarge` over `max_message_bytes`.
pub fn prepare(
    mut submission: Submission,
    settings: &SendingSettings,
    max_message_bytes: usize,
) -> Result<NewEmail, IngestError> {
    let domain = submission.from.email.domain().to_owned();
    if !domain_allowed(&domain, &settings.allowed_sender_domains) {
        return Err(IngestError::SenderNotAllowed(format!(
            "from: the domain `{domain}` is not one of this tenant's allowed sender domains"
        )));
    }
    if submission.reply_to.is_empty()
        && let Some(default) = &settings.reply_to
    {
        let mailbox = Mailbox::parse(default)
            .map_err(|e| IngestError::Invalid(format!("tenant reply_to: {e}")))?;
        submission.reply_to.push(mailbox);
    }
    let id = Uuid::now_v7();
    let message_id = message_id(&id, &submission.from);
    let mime = build_mime(&submission, &message_id, OffsetDateTime::now_utc());
    if mime.len() > max_message_bytes {
        return Err(IngestError::TooLarge {
            size: mime.len(),
            max: max_message_bytes,
        });
    }
    let recipients: Vec<_> = submission
        .recipients()
        .into_iter()
        .map(|(kind, email)| (kind, email.as_str().to_owned()))
        .collect();
    let smtputf8 =
        submission.from.email.needs_smtputf8() || recipients.iter().any(|(_, r)| !r.is_ascii());
    let tags = serde_json::to_value(&submission.tags).unwrap_or_else(|_| serde_json::json!([]));
    Ok(NewEmail {
        id,
        message_id,
        from_address: submission.from.to_string(),
        envelope_from: submission.from.email.as_str().to_owned(),
        smtputf8,
        reply_to: submission
            .reply_to
            .iter()
            .map(ToString::to_string)
            .collect(),
        subject: submission.subject,
        html: submission.html,
        text: submission.text,
        tags,
        mime,
        scheduled_at: submission.scheduled_at,
        recipients,
    })
}

/// Commits prepared emails (and the idempotency record) in one transaction, possibly shared
/// with other requests' emails; returns after the commit.
///
/// # Errors
/// Database failures; nothing is stored then.
pub async fn accept(
    writer: &EmailWriter,
    tenant_id: TenantId,
    emails: Vec<NewEmail>,
    idempotency: Option<&IdempotencyRecord<'_>>,
) -> Result<InsertOutcome, IngestError> {
    let accepted: Vec<(Uuid, usize)> = emails.iter().map(|e| (e.id, e.recipients.len())).collect();
    let outcome = writer.insert(tenant_id, emails, idempotency).await?;
    if outcome == InsertOutcome::Inserted {
        for (email_id, recipients) in &accepted {
            tracing::info!(%tenant_id, %email_id, recipients, "email accepted");
        }
        metrics::counter!("missive_emails_accepted_total").increment(accepted.len() as u64);
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_domains_match_exactly_or_as_parents() {
        let allowed = vec!["acme.test".to_owned()];
        assert!(domain_allowed("acme.test", &allowed));
        assert!(domain_allowed("mail.acme.test", &allowed));
        assert!(!domain_allowed("evilacme.test", &allowed));
        assert!(!domain_allowed("acme.test.evil", &allowed));
        assert!(domain_allowed("anything.test", &[]));
    }
}
