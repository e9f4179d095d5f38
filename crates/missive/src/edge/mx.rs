//! The inbound MX: what comes back to the return paths Missive minted (delivery reports, plain
//! bounces, complaints) and to the operator's feedback address.
//!
//! The SMTP conversation is the submission listener's session ([`crate::edge::smtp`]) on a
//! listener of its own, without AUTH and never relaying: a recipient is taken only when it is a
//! return path whose MAC checks, or the feedback address; anything else gets `550 5.1.1`. A
//! message is parsed on the blocking pool under a time limit, and what it says is recorded
//! ([`missive_store::Store::record_report`]) before the 250. Which email a report is about comes
//! from the authenticated return path, never from what the report says, so a forged report (a
//! changed token, or another tenant's email) changes nothing; those are counted.

use std::time::Duration;

use missive_core::report::{Reading, read};
use missive_core::return_path::{LOCAL_PART_LEN, ReturnPaths};
use missive_core::{EmailAddress, EmailId, TenantId};
use missive_store::{SoftBounceRule, Store};
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
}

/// A recipient the MX takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// A return path: the email it was minted for.
    ReturnPath(TenantId, EmailId),
    /// The operator's feedback-loop address.
    Feedback,
}

/// Refusals of the MX.
pub const UNKNOWN_RECIPIENT: Reply = Reply::new(550, "5.1.1", "No such recipient here");
pub const PARSE_TIMEOUT: Reply = Reply::new(
    451,
    "4.3.0",
    "The message could not be read in time, try again later",
);

impl Mx {
    /// What `address` is to the MX: `None` for anything Missive did not mint (counted as
    /// forged when it has a return path's shape but its MAC does not check).
    #[must_use]
    pub fn recipient(&self, address: &EmailAddress) -> Option<Inbound> {
        if self
            .feedback_address
            .as_deref()
            .is_some_and(|f| address.as_str().eq_ignore_ascii_case(f))
        {
            return Some(Inbound::Feedback);
        }
        let local = address.local_part();
        let checked = self.paths.as_ref().and_then(|paths| paths.check(local));
        if checked.is_none() && local.len() == LOCAL_PART_LEN && local.starts_with(['b', 'B']) {
            metrics::counter!("missive_mx_forged_reports_total", "why" => "return_path")
                .increment(1);
        }
        checked.map(|(tenant, email)| Inbound::ReturnPath(tenant, email))
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

    /// Reads a message taken for `recipients` and records what it says; the reply to give.
    pub async fn receive(&self, recipients: &[Inbound], null_sender: bool, text: Vec<u8>) -> Reply {
        let size = text.len();
        let parsed = tokio::time::timeout(
            self.parse_timeout,
            tokio::task::spawn_blocking(move || read(&text, null_sender)),
        )
        .await;
        let reading = match parsed {
            Ok(Ok(reading)) => reading,
            Ok(Err(err)) => {
                tracing::error!(error = %err, size, "report parsing failed");
                return crate::edge::smtp::reply::TEMPORARY_FAILURE;
            }
            Err(_) => {
                metrics::counter!("missive_mx_reports_total", "outcome" => "timeout").increment(1);
                tracing::warn!(size, "report parsing took too long");
                return PARSE_TIMEOUT;
            }
        };
        if reading.is_empty() {
            // An auto-reply or a person answering a return path: nothing to record.
            metrics::counter!("missive_mx_reports_total", "outcome" => "ignored").increment(1);
            return Reply::new(250, "2.0.0", "Received, nothing to record");
        }
        let mut written = 0;
        let mut emails: Vec<(TenantId, EmailId)> = Vec::new();
        for recipient in recipients {
            let email = match *recipient {
                Inbound::ReturnPath(tenant, email) => Some((tenant, email)),
                Inbound::Feedback => self.complained_about(&reading).await,
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
                .record_report(tenant, email, &reading, self.soft_bounces)
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
                    return crate::edge::smtp::reply::TEMPORARY_FAILURE;
                }
            }
        }
        let outcome = if written > 0 { "recorded" } else { "unmatched" };
        metrics::counter!("missive_mx_reports_total", "outcome" => outcome).increment(1);
        Reply::new(250, "2.0.0", "Report received")
    }
}
