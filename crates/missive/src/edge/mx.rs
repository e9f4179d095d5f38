//! The inbound MX: what comes back to the return paths Missive minted (delivery reports, plain
//! bounces, complaints) and to the operator's feedback address; and mail for tenants' receiving
//! domains, stored whole before the 250.
//!
//! The SMTP conversation is the submission listener's session ([`crate::edge::smtp`]) on a
//! listener of its own, without AUTH and never relaying: a recipient is taken only when it is a
//! return path whose MAC checks, the feedback address, or an address on a domain that receives
//! (enabled, its MX record found); anything else gets `550 5.1.1`. A
//! message is parsed on the blocking pool under a time limit, and what it says is recorded
//! ([`missive_store::Store::record_report`]) before the 250. Which email a report is about comes
//! from the authenticated return path, never from what the report says, so a forged report (a
//! changed token, or another tenant's email) changes nothing; those are counted.

use std::time::Duration;

use missive_core::report::{Reading, read};
use missive_core::return_path::{LOCAL_PART_LEN, ReturnPaths};
use missive_core::{EmailAddress, EmailId, TenantId};
use missive_store::{NewReceivedEmail, ReceivingDomain, SoftBounceRule, Store, StoreError};
use tracing::Instrument as _;

use crate::edge::smtp::reply::Reply;

/// What the MX needs: the store, the keys return paths are checked with, and its rules.
#[derive(Debug, Clone)]
pub struct Mx {
    pub store: Store,
    /// `None` without `MISSIVE_SECRET_KEY`: no return path is minted, and none taken.
    pub paths: Option<ReturnPaths>,
    /// The feedback-loop address, lower case.
    pub feedback_address: Option<String>,
    pub soft_bounces: SoftBounceRule,
    /// How long parsing one message may take.
    pub parse_timeout: Duration,
    /// Take mail for receiving domains whose MX record was not found yet.
    pub allow_unverified: bool,
}

/// A recipient the MX takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// A return path: the email it was minted for.
    ReturnPath(TenantId, EmailId),
    /// The operator's feedback-loop address.
    Feedback,
    /// An address on a tenant's receiving domain.
    Receiving(ReceivingDomain),
}

/// Refusals of the MX.
pub const UNKNOWN_RECIPIENT: Reply = Reply::new(550, "5.1.1", "No such recipient here");
pub const PARSE_TIMEOUT: Reply = Reply::new(
    451,
    "4.3.0",
    "The message could not be read in time, try again later",
);

impl Mx {
    /// What `address` is to the MX: `None` for anything it does not take (counted as forged
    /// when it has a return path's shape but its MAC does not check).
    ///
    /// # Errors
    /// Database failures looking up a receiving domain.
    pub async fn recipient(&self, address: &EmailAddress) -> Result<Option<Inbound>, StoreError> {
        if self
            .feedback_address
            .as_deref()
            .is_some_and(|f| address.as_str().eq_ignore_ascii_case(f))
        {
            return Ok(Some(Inbound::Feedback));
        }
        let local = address.local_part();
        if let Some((tenant, email)) = self.paths.as_ref().and_then(|paths| paths.check(local)) {
            return Ok(Some(Inbound::ReturnPath(tenant, email)));
        }
        if local.len() == LOCAL_PART_LEN && local.starts_with(['b', 'B']) {
            metrics::counter!("missive_mx_forged_reports_total", "why" => "return_path")
                .increment(1);
        }
        Ok(self
            .store
            .receiving_domain(address.domain(), self.allow_unverified)
            .await?
            .map(Inbound::Receiving))
    }

    /// The email a complaint sent to the feedback address is about: from the return path the
    /// report quotes (authenticated), else from our Message-ID in it.
    async fn complained_about(&self, reading: &Reading) -> Option<(TenantId, EmailId)> {
        if let Some(return_path) = reading.original_return_path.as_deref() {
            let local = return_path.rsplit_once('@').map_or(return_path, |(l, _)| l);
            if let Some(found) = self.paths.as_ref().and_then(|p| p.check(local)) {
                return Some(found);
            }
        }
        let message_id = reading.original_message_id.as_deref()?;
        match self.store.email_by_message_id(message_id).await {
            Ok(found) => found,
            Err(err) => {
                tracing::warn!(error = %err, "could not look up a complaint's Message-ID");
                None
            }
        }
    }

    /// Takes a message for `recipients` (each with its address): stores it for each tenant
    /// that receives for one of them, and reads and records it for return paths and the
    /// feedback address; the reply to give, after the commits.
    pub async fn receive(
        &self,
        recipients: &[(Inbound, EmailAddress)],
        mail_from: Option<&EmailAddress>,
        text: Vec<u8>,
    ) -> Reply {
        let size = text.len();
        let null_sender = mail_from.is_none();
        let reports = recipients
            .iter()
            .any(|(inbound, _)| !matches!(inbound, Inbound::Receiving(_)));
        let parsed = tokio::time::timeout(
            self.parse_timeout,
            tokio::task::spawn_blocking(move || {
                let reading = reports.then(|| read(&text, null_sender));
                let headers = Headers::of(&text);
                (text, reading, headers)
            }),
        )
        .await;
        let (text, reading, headers) = match parsed {
            Ok(Ok(parsed)) => parsed,
            Ok(Err(err)) => {
                tracing::error!(error = %err, size, "message parsing failed");
                return crate::edge::smtp::reply::TEMPORARY_FAILURE;
            }
            Err(_) => {
                metrics::counter!("missive_mx_reports_total", "outcome" => "timeout").increment(1);
                tracing::warn!(size, "message parsing took too long");
                return PARSE_TIMEOUT;
            }
        };
        let mut stored = Vec::new();
        let mut domains: Vec<ReceivingDomain> = Vec::new();
        for (inbound, _) in recipients {
            if let Inbound::Receiving(domain) = inbound
                && !domains.iter().any(|d| d.tenant_id == domain.tenant_id)
            {
                domains.push(*domain);
            }
        }
        for domain in domains {
            let rcpt_to: Vec<String> = recipients
                .iter()
                .filter(|(inbound, _)| {
                    matches!(inbound, Inbound::Receiving(d) if d.tenant_id == domain.tenant_id)
                })
                .map(|(_, address)| address.as_str().to_owned())
                .collect();
            let new = NewReceivedEmail {
                tenant_id: domain.tenant_id,
                domain_id: domain.id,
                mail_from: mail_from.map_or("", EmailAddress::as_str),
                rcpt_to: &rcpt_to,
                message_id: headers.message_id.as_deref(),
                from_address: headers.from.as_deref(),
                subject: headers.subject.as_deref(),
                raw: &text,
            };
            match self.store.insert_received_email(&new).await {
                Ok(id) => {
                    tracing::info!(tenant_id = %domain.tenant_id, received_id = %id, size, "message received");
                    metrics::counter!("missive_mx_received_total").increment(1);
                    stored.push(id.to_string());
                }
                Err(err) => {
                    tracing::error!(tenant_id = %domain.tenant_id, error = %err, "received message not stored");
                    return crate::edge::smtp::reply::TEMPORARY_FAILURE;
                }
            }
        }
        if let Some(reading) = reading {
            let reports: Vec<Inbound> = recipients.iter().map(|(inbound, _)| *inbound).collect();
            if let Err(reply) = self.record(&reports, &reading).await {
                return reply;
            }
        }
        if stored.is_empty() {
            Reply::new(250, "2.0.0", "Received")
        } else {
            Reply::owned(250, "2.0.0", format!("Received as {}", stored.join(" ")))
        }
    }

    /// Records what a report says for the return paths (and the feedback address) among
    /// `recipients`; the reply to give instead of the 250 when it could not be.
    async fn record(&self, recipients: &[Inbound], reading: &Reading) -> Result<(), Reply> {
        if reading.is_empty() {
            // An auto-reply or a person answering a return path: nothing to record.
            metrics::counter!("missive_mx_reports_total", "outcome" => "ignored").increment(1);
            return Ok(());
        }
        let mut written = 0;
        let mut emails: Vec<(TenantId, EmailId)> = Vec::new();
        for recipient in recipients {
            let email = match *recipient {
                Inbound::ReturnPath(tenant, email) => Some((tenant, email)),
                Inbound::Feedback => self.complained_about(reading).await,
                Inbound::Receiving(_) => continue,
            };
            match email {
                Some(email) if !emails.contains(&email) => emails.push(email),
                Some(_) => {}
                None => {
                    metrics::counter!("missive_mx_forged_reports_total", "why" => "unmatched")
                        .increment(1);
                }
            }
        }
        for (tenant, email) in emails {
            let span = tracing::info_span!("report", tenant_id = %tenant, email_id = %email);
            let recorded = self
                .store
                .record_report(tenant, email, reading, self.soft_bounces)
                .instrument(span.clone())
                .await;
            let _entered = span.enter();
            match recorded {
                Ok(events) => {
                    written += events;
                    tracing::info!(events, findings = reading.findings.len(), "report recorded");
                }
                Err(err) => {
                    tracing::error!(error = %err, "report not recorded");
                    return Err(crate::edge::smtp::reply::TEMPORARY_FAILURE);
                }
            }
        }
        let outcome = if written > 0 { "recorded" } else { "unmatched" };
        metrics::counter!("missive_mx_reports_total", "outcome" => outcome).increment(1);
        Ok(())
    }
}

/// What a listing shows of a received message, from its headers.
#[derive(Debug, Default)]
struct Headers {
    message_id: Option<String>,
    from: Option<String>,
    subject: Option<String>,
}

impl Headers {
    fn of(raw: &[u8]) -> Self {
        let Some(message) = mail_parser::MessageParser::default().parse_headers(raw) else {
            return Self::default();
        };
        let clip = |s: &str| s.chars().take(998).collect::<String>();
        Self {
            message_id: message.message_id().map(clip),
            from: message
                .from()
                .and_then(|f| f.first())
                .and_then(|a| a.address())
                .map(clip),
            subject: message.subject().map(clip),
        }
    }
}
