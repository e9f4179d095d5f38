//! Ingest: the one accept path. REST and SMTP each translate their protocol into one parsed
//! [`Input`] (structured [`Submission`]s, or a [`RawMessage`] as SMTP received it) and call
//! [`Ingest::accept`], which owns every rule a message answers to and the one transaction that
//! stores it:
//!
//! 1. the rules of [`policy`]: the sender (or the tenant's default) inside the allowed sender
//!    domains or the tenant's verified ones, the Reply-To default, the recipient count, the final
//!    size;
//! 2. the template a message names, rendered once with its variables ([`render`]);
//! 3. the message itself: the draft parsed and built into MIME ([`structured`]), or the checks
//!    and header rewriting of a received message ([`raw`]), our Message-ID, the idempotency claim;
//! 4. the DKIM signature of a message from one of the tenant's verified domains, over its final
//!    bytes ([`crate::tenancy::domains`]);
//! 5. one transaction for the emails, their deliveries and first events, and the idempotency
//!    record, committed before the caller is answered.
//!
//! Everything that can refuse a message runs before any database work, so a refused message
//! costs no transaction and leaves nothing behind. New rules belong here, once, for both
//! protocols. Sending quotas are the one rule checked in the storing statement itself, as only
//! there is the count exact.

pub mod policy;
pub mod raw;
pub mod render;
mod structured;

use missive_core::submission::{Draft, Submission};
use missive_core::{EmailId, Fingerprint, IdempotencyKey, ProjectRef, QuotaPeriod, SendingPolicy};
use missive_store::{EmailWriter, IdempotencyRecord, InsertOutcome, NewEmail, StoreError};
use time::OffsetDateTime;

pub use policy::{AcceptLimits, Refusal};
pub use raw::{RawEnvelope, RawMessage, Trace};
pub use render::TemplateCall;

use crate::tenancy::domains::{Domains, DomainsError, TenantKeys};
use crate::tenancy::templates::Templates;

/// One structured send: what the client asked for, and the template it names, if any.
#[derive(Debug)]
pub struct Request {
    pub draft: Draft,
    pub template: Option<TemplateCall>,
}

/// What a protocol hands to [`Ingest::accept`].
#[derive(Debug)]
pub enum Input {
    /// Structured sends (one, or a batch stored together), with the client's idempotency key and
    /// the fingerprint of its request.
    Requests {
        requests: Vec<Request>,
        idempotency: Option<(IdempotencyKey, Fingerprint)>,
    },
    /// A message received over SMTP; an idempotency key travels in its headers.
    Raw(RawMessage),
}

/// The stored emails' ids, in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub ids: Vec<EmailId>,
    /// An earlier request with the same idempotency key and fingerprint stored them.
    pub replayed: bool,
}

/// Why nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A message broke a rule; `item` is its index among structured submissions.
    #[error("{refusal}")]
    Refused {
        item: Option<usize>,
        refusal: Refusal,
    },
    /// The idempotency key was used before for another request.
    #[error("the idempotency key was used before for another request")]
    IdempotencyConflict,
    /// The tenant's sending quota for the period would be exceeded by this send.
    #[error("the {0} sending quota would be exceeded by this send")]
    OverQuota(QuotaPeriod),
    /// A verified domain's key could not be used: nothing unsigned is sent in its name.
    #[error("signing with the sender domain's DKIM key failed: {0}")]
    Signing(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<DomainsError> for IngestError {
    fn from(err: DomainsError) -> Self {
        match err {
            DomainsError::Store(store) => Self::Store(store),
            other => Self::Signing(other.to_string()),
        }
    }
}

/// The accept path, shared by the API and the SMTP listeners; cheap to clone.
#[derive(Debug, Clone)]
pub struct Ingest {
    writer: EmailWriter,
    limits: AcceptLimits,
    templates: Templates,
    domains: Domains,
}

impl Ingest {
    #[must_use]
    pub fn new(
        writer: EmailWriter,
        limits: AcceptLimits,
        templates: Templates,
        domains: Domains,
    ) -> Self {
        Self {
            writer,
            limits,
            templates,
            domains,
        }
    }

    /// The tenants' sending domains, whose keys sends are signed with.
    #[must_use]
    pub fn domains(&self) -> &Domains {
        &self.domains
    }

    /// The tenants' templates, as sends render them.
    #[must_use]
    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    /// The limits every message answers to, for protocols that refuse early.
    #[must_use]
    pub fn limits(&self) -> &AcceptLimits {
        &self.limits
    }

    /// Checks, builds and stores `input` for `project`; returns after the commit. The tenant's
    /// domains, suppressions and quotas apply; the project's templates render.
    ///
    /// # Errors
    /// [`IngestError::Refused`] naming the broken rule (nothing stored), a reused idempotency key,
    /// or a database failure (nothing stored).
    pub async fn accept(
        &self,
        project: ProjectRef,
        policy: &SendingPolicy,
        input: Input,
    ) -> Result<Accepted, IngestError> {
        let tenant_id = project.tenant_id;
        let now = OffsetDateTime::now_utc();
        let keys = self.domains.signing_keys(tenant_id).await?;
        let policy = &with_verified_domains(policy, &keys);
        let mut templates = render::Resolved::new(&self.templates, project);
        let (emails, idempotency) = match input {
            Input::Requests {
                requests,
                idempotency,
            } => {
                let mut emails = Vec::with_capacity(requests.len());
                for (item, request) in requests.into_iter().enumerate() {
                    let refused = |refusal| IngestError::Refused {
                        item: Some(item),
                        refusal,
                    };
                    let submission = self
                        .prepare(&mut templates, request, now)
                        .await
                        .map_err(|failure| failure.into_error(item))?;
                    emails.push(
                        structured::compose(submission, policy, &self.limits, now, None)
                            .map_err(refused)?,
                    );
                }
                (emails, idempotency)
            }
            Input::Raw(message) => {
                let refused = |refusal| IngestError::Refused {
                    item: None,
                    refusal,
                };
                let call = raw::template_call(&message.text).map_err(refused)?;
                let ready = match &call {
                    None => None,
                    Some(call) => Some(templates.get(call).await.map_err(|f| match f {
                        render::Failure::Refused(refusal) => refused(refusal),
                        render::Failure::Store(err) => err,
                    })?),
                };
                let template = ready.as_deref().zip(call.as_ref());
                let composed =
                    raw::compose(message, policy, &self.limits, now, template).map_err(refused)?;
                (vec![composed.email], composed.idempotency)
            }
        };
        let emails = sign(emails, keys).await?;
        let accepted: Vec<(EmailId, usize)> =
            emails.iter().map(|e| (e.id, e.recipients.len())).collect();
        let record = idempotency
            .as_ref()
            .map(|(key, fingerprint)| IdempotencyRecord {
                key,
                fingerprint: *fingerprint,
            });
        let stored = match self.writer.insert(project, emails, record.as_ref()).await {
            Err(StoreError::OverQuota(period)) => {
                tracing::info!(%tenant_id, quota = %period, "send refused: over quota");
                metrics::counter!("missive_quota_refusals_total", "quota" => period.as_str())
                    .increment(1);
                return Err(IngestError::OverQuota(period));
            }
            other => other?,
        };
        match stored {
            InsertOutcome::Inserted => {
                for (email_id, recipients) in &accepted {
                    tracing::info!(%tenant_id, %email_id, recipients, "email accepted");
                }
                metrics::counter!("missive_emails_accepted_total").increment(accepted.len() as u64);
                Ok(Accepted {
                    ids: accepted.into_iter().map(|(id, _)| id).collect(),
                    replayed: false,
                })
            }
            InsertOutcome::Replay { email_ids } => {
                tracing::info!(%tenant_id, emails = email_ids.len(), "idempotent replay");
                Ok(Accepted {
                    ids: email_ids,
                    replayed: true,
                })
            }
            InsertOutcome::KeyReused => Err(IngestError::IdempotencyConflict),
        }
    }

    /// A request's draft, filled from its template when it names one, parsed.
    async fn prepare(
        &self,
        templates: &mut render::Resolved<'_>,
        request: Request,
        now: OffsetDateTime,
    ) -> Result<Submission, render::Failure> {
        let Request {
            mut draft,
            template,
        } = request;
        if let Some(call) = &template {
            let ready = templates.get(call).await?;
            render::fill(&ready, call, &mut draft).map_err(render::Failure::Refused)?;
        }
        Submission::parse(draft, now)
            .map_err(|e| render::Failure::Refused(Refusal::Invalid(e.to_string())))
    }
}

/// Signs each email whose sender domain has a key. An RSA signature is about a millisecond of
/// CPU, too long for an async worker thread (it would hold up every other task queued on it), so
/// the signing runs on the blocking pool, all of a request's emails in one go.
async fn sign(
    emails: Vec<NewEmail>,
    keys: std::sync::Arc<TenantKeys>,
) -> Result<Vec<NewEmail>, IngestError> {
    if !emails
        .iter()
        .any(|e| keys.for_domain(e.from.email.domain()).is_some())
    {
        return Ok(emails);
    }
    tokio::task::spawn_blocking(move || {
        let mut emails = emails;
        for email in &mut emails {
            if let Some(key) = keys.for_domain(email.from.email.domain()) {
                email.mime = key
                    .sign(&email.mime)
                    .map_err(|e| IngestError::Signing(e.to_string()))?;
                metrics::counter!("missive_dkim_signed_total").increment(1);
            }
        }
        Ok(emails)
    })
    .await
    .map_err(|e| IngestError::Signing(e.to_string()))?
}

/// The tenant's policy with its verified domains, which it may send from whatever else it
/// allows; the policy as it is when it has none and needs none.
pub fn with_verified_domains<'p>(
    policy: &'p SendingPolicy,
    keys: &TenantKeys,
) -> std::borrow::Cow<'p, SendingPolicy> {
    if keys.domains().is_empty() {
        return std::borrow::Cow::Borrowed(policy);
    }
    let mut policy = policy.clone();
    policy.verified_domains = keys.domains().to_vec();
    std::borrow::Cow::Owned(policy)
}

impl render::Failure {
    fn into_error(self, item: usize) -> IngestError {
        match self {
            Self::Refused(refusal) => IngestError::Refused {
                item: Some(item),
                refusal,
            },
            Self::Store(err) => err,
        }
    }
}
