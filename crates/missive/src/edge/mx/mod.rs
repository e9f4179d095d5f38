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
//!
//! Received mail is authenticated on arrival ([`auth`]) and stored with its verdicts, within
//! the tenant's caps (`452 4.2.2` past its messages per day, `552 5.2.2` past its stored bytes).

pub mod auth;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use mail_auth::MessageAuthenticator;

use missive_core::received::{Arrival, arrival};
use missive_core::report::{Reading, read};
use missive_core::return_path::{LOCAL_PART_LEN, ReturnPaths};
use missive_core::{EmailAddress, EmailId, TenantId};
use missive_store::{
    NewReceivedEmail, ReceivingCaps, ReceivingDomain, SoftBounceRule, Store, StoreError, Stored,
};
use tracing::Instrument as _;

use crate::edge::smtp::reply::Reply;

/// What the MX needs: the store, the keys return paths are checked with, and its rules.
#[derive(Clone)]
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
    /// Checks SPF, DKIM and DMARC of received mail.
    pub authenticator: Arc<MessageAuthenticator>,
    /// How long those checks may take together.
    pub auth_timeout: Duration,
    /// This host's name, for SPF explanations.
    pub hostname: String,
    /// The operator's inbound caps.
    pub caps: ReceivingCaps,
}

impl std::fmt::Debug for Mx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mx")
            .field("paths", &self.paths)
            .field("feedback_address", &self.feedback_address)
            .field("allow_unverified", &self.allow_unverified)
            .field("caps", &self.caps)
            .finish_non_exhaustive()
    }
}

/// The SMTP client of a message, as the session knows it.
#[derive(Clone, Copy, Debug)]
pub struct Peer<'a> {
    pub ip: IpAddr,
    /// The HELO/EHLO name.
    pub helo: &'a str,
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
pub const DMARC_REJECTED: Reply = Reply::new(
    550,
    "5.7.1",
    "The message fails DMARC and its author's domain asks for it to be rejected",
);
pub const OVER_DAILY_CAP: Reply = Reply::new(
    452,
    "4.2.2",
    "The recipient has received all the messages it may today, try again later",
);
pub const OVER_STORAGE_CAP: Reply =
    Reply::new(552, "5.2.2", "The recipient's mailbox storage is full");

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

    /// Takes a message for `recipients` (each with its address) from `peer`: stores it for
    /// each tenant that receives for one of them (authenticated, within its caps), and reads
    /// and records it for return paths and the feedback address; the reply to give, after the
    /// commits.
    pub async fn receive(
        &self,
        recipients: &[(Inbound, EmailAddress)],
        mail_from: Option<&EmailAddress>,
        peer: Peer<'_>,
        text: Vec<u8>,
    ) -> Reply {
        let size = text.len();
        let null_sender = mail_from.is_none();
        let reports = recipients
            .iter()
            .any(|(inbound, _)| !matches!(inbound, Inbound::Receiving(_)));
        let receiving = recipients
            .iter()
            .any(|(inbound, _)| matches!(inbound, Inbound::Receiving(_)));
        let parsed = tokio::time::timeout(
            self.parse_timeout,
            tokio::task::spawn_blocking(move || {
                let reading = reports.then(|| read(&text, null_sender));
                let arrived = receiving.then(|| arrival(&text));
                (text, reading, arrived)
            }),
        )
        .await;
        let (text, reading, arrived) = match parsed {
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
        if let Some(arrived) = arrived {
            match self
                .store_received(recipients, mail_from, peer, &text, &arrived)
                .await
            {
                Ok(ids) => stored = ids,
                Err(reply) => return reply,
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

    /// Authenticates a message for receiving domains and stores it once for each tenant among
    /// `recipients`; the ids, or the refusal to give.
    async fn store_received(
        &self,
        recipients: &[(Inbound, EmailAddress)],
        mail_from: Option<&EmailAddress>,
        peer: Peer<'_>,
        text: &[u8],
        arrived: &Arrival,
    ) -> Result<Vec<String>, Reply> {
        let mut domains: Vec<ReceivingDomain> = Vec::new();
        for (inbound, _) in recipients {
            if let Inbound::Receiving(domain) = inbound
                && !domains.iter().any(|d| d.tenant_id == domain.tenant_id)
            {
                domains.push(*domain);
            }
        }
        let verdicts = auth::authenticate(
            &self.authenticator,
            &self.hostname,
            auth::Client {
                ip: peer.ip,
                helo: peer.helo,
                mail_from: mail_from.map(EmailAddress::as_str),
            },
            text,
            self.auth_timeout,
        )
        .await;
        if verdicts.dmarc_rejects() && domains.iter().any(|d| d.enforce_dmarc) {
            metrics::counter!("missive_mx_received_total", "outcome" => "dmarc_rejected")
                .increment(1);
            tracing::info!(author = ?verdicts.dmarc.domain, "received message refused by DMARC");
            return Err(DMARC_REJECTED);
        }
        let authentication = serde_json::to_value(&verdicts).unwrap_or_default();
        let summary = serde_json::to_value(&arrived.summary).unwrap_or_default();
        let mut stored = Vec::new();
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
                message_id: arrived.message_id.as_deref(),
                from_address: arrived.from_address.as_deref(),
                subject: arrived.subject.as_deref(),
                summary: &summary,
                authentication: &authentication,
                client_ip: Some(peer.ip),
                helo: Some(peer.helo),
                raw: text,
            };
            let tenant_id = domain.tenant_id;
            match self.store.insert_received_email(&new, self.caps).await {
                Ok(Stored::Received(id)) => {
                    tracing::info!(%tenant_id, received_id = %id, size = text.len(), "message received");
                    metrics::counter!("missive_mx_received_total", "outcome" => "stored")
                        .increment(1);
                    stored.push(id.to_string());
                }
                Ok(refused) => {
                    let (outcome, reply) = if refused == Stored::OverDailyCap {
                        ("daily_cap", OVER_DAILY_CAP)
                    } else {
                        ("storage_cap", OVER_STORAGE_CAP)
                    };
                    metrics::counter!("missive_mx_received_total", "outcome" => outcome)
                        .increment(1);
                    tracing::info!(%tenant_id, outcome, "received message refused by a cap");
                    return Err(reply);
                }
                Err(err) => {
                    tracing::error!(%tenant_id, error = %err, "received message not stored");
                    return Err(crate::edge::smtp::reply::TEMPORARY_FAILURE);
                }
            }
        }
        Ok(stored)
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
