//! Tenants' sending domains as both front ends show and change them (Resend's shapes, scope
//! `domains:manage`). A domain's private key appears in no view: they are built from
//! [`missive_store::DomainRecord`], which has no column for it.

use missive_core::sending_domain::{
    Capability, DkimAlgorithm, DomainTls, InboundDmarc, Region, VerificationStatus,
};
use missive_core::{DomainId, Scope, TenantId};
use missive_store::{DomainPatch, DomainRecord};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::{Domains, DomainsError, NewDomainInput, RecordView};
use crate::tenancy::caller::Caller;
use crate::tenancy::error::ServiceError;
use crate::tenancy::page::page;

impl From<DomainsError> for ServiceError {
    fn from(err: DomainsError) -> Self {
        match err {
            DomainsError::Invalid(_) => Self::Invalid(err.to_string()),
            DomainsError::Unavailable => Self::Unavailable(err.to_string()),
            DomainsError::Key(_) | DomainsError::Seal(_) => Self::Internal(err.to_string()),
            DomainsError::Store(store) => store.into(),
        }
    }
}

/// `POST /v1/domains`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDomainRequest {
    /// The domain, e.g. `mail.example.com`.
    #[schema(max_length = 253)]
    pub name: String,
    /// Kept as given (`us-east-1` by default); Missive sends from where it runs.
    pub region: Option<Region>,
    /// `rsa` (2048 bits, the default unless the operator chose otherwise) or `ed25519`.
    pub dkim_algorithm: Option<DkimAlgorithm>,
    /// The subdomain of the domain that return paths use (`send` by default, as Resend's):
    /// one DNS label. Bounces and complaints come back through its MX record.
    #[schema(max_length = 63)]
    pub custom_return_path: Option<String>,
    /// Accepted for Resend's clients and stored; Missive does not track opens or clicks.
    pub open_tracking: Option<bool>,
    pub click_tracking: Option<bool>,
    pub tracking_subdomain: Option<String>,
    /// What the domain does: sending on and receiving off unless given.
    pub capabilities: Option<CapabilitiesInput>,
    /// Receiving: `record` (the default) keeps SPF/DKIM/DMARC verdicts and refuses nothing;
    /// `enforce` refuses a message failing DMARC whose author's domain asks for reject.
    pub inbound_dmarc: Option<InboundDmarc>,
}

/// `PATCH /v1/domains/{id}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDomainRequest {
    /// The path's id again, as the Resend SDKs send it; another id is refused.
    pub id: Option<DomainId>,
    pub open_tracking: Option<bool>,
    pub click_tracking: Option<bool>,
    pub tls: Option<DomainTls>,
    pub tracking_subdomain: Option<String>,
    /// Turn sending or receiving on or off.
    pub capabilities: Option<CapabilitiesInput>,
    /// `record` or `enforce` (see the create request).
    pub inbound_dmarc: Option<InboundDmarc>,
}

/// Resend's `capabilities` as a request gives them: each optional.
#[derive(Debug, Default, Clone, Copy, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapabilitiesInput {
    pub sending: Option<Capability>,
    pub receiving: Option<Capability>,
}

/// What a domain does (Resend's `capabilities`).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Capabilities {
    /// Disabled: the domain neither signs nor passes as a verified sender domain.
    pub sending: Capability,
    /// Enabled: the records list the domain's MX, and Missive's MX takes mail for the domain
    /// once that record is found.
    pub receiving: Capability,
}

/// One record to publish (Resend's shape, with our full name and the reason of a failure).
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordOut {
    /// `DKIM`, `SPF`, `DMARC` or `Receiving` (the return path's MX is listed as `SPF`, as
    /// Resend lists it).
    pub record: &'static str,
    /// Relative to the domain; `@` is the domain itself.
    pub name: String,
    /// The full name to publish at.
    pub fqdn: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub ttl: &'static str,
    pub value: String,
    /// An MX record's preference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u16>,
    pub status: VerificationStatus,
    /// Why it is not verified.
    pub reason: Option<String>,
    /// Whether the domain's verification waits for it (the DMARC record is a suggestion).
    pub required: bool,
}

/// A domain (Resend's shape, with our `tenant_id`, DKIM details and the last check's time).
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainView {
    #[schema(example = "domain")]
    pub object: &'static str,
    pub id: DomainId,
    pub tenant_id: TenantId,
    pub name: String,
    pub status: VerificationStatus,
    pub region: Region,
    pub open_tracking: bool,
    pub click_tracking: bool,
    pub tls: DomainTls,
    pub dkim_algorithm: DkimAlgorithm,
    /// The selector signing now.
    pub dkim_selector: String,
    /// During a rotation: the selector that takes over once its record is found.
    pub next_dkim_selector: Option<String>,
    /// The subdomain return paths use (`send.<name>`).
    pub custom_return_path: String,
    pub capabilities: Capabilities,
    /// What receiving does with mail that fails DMARC: `record` or `enforce`.
    pub inbound_dmarc: InboundDmarc,
    pub records: Vec<RecordOut>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub checked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A domain in a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainSummary {
    pub id: DomainId,
    pub name: String,
    pub status: VerificationStatus,
    pub region: Region,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A page of domains, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainList {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<DomainSummary>,
    pub has_more: bool,
}

/// The answer to an update or a verification (Resend's).
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainRefView {
    #[schema(example = "domain")]
    pub object: &'static str,
    pub id: DomainId,
    /// The status after the change (our addition).
    pub status: VerificationStatus,
}

/// The answer to a delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedDomain {
    #[schema(example = "domain")]
    pub object: &'static str,
    pub id: DomainId,
    pub deleted: bool,
}

/// Paging for `GET /v1/domains`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListDomainsQuery {
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// Domains older than this id.
    pub after: Option<DomainId>,
    /// Domains newer than this id.
    pub before: Option<DomainId>,
}

fn view(domains: &Domains, record: DomainRecord) -> DomainView {
    let records = domains
        .records(&record)
        .into_iter()
        .map(record_out)
        .collect();
    DomainView {
        object: "domain",
        id: record.id,
        tenant_id: record.tenant_id,
        name: record.name,
        status: record.status,
        region: record.region,
        open_tracking: record.open_tracking,
        click_tracking: record.click_tracking,
        tls: record.tls,
        dkim_algorithm: record.dkim_algorithm,
        dkim_selector: record.selector,
        next_dkim_selector: record.next_selector,
        custom_return_path: record.custom_return_path,
        capabilities: Capabilities {
            sending: record.sending,
            receiving: record.receiving,
        },
        inbound_dmarc: record.inbound_dmarc,
        records,
        checked_at: record.checked_at,
        created_at: record.created_at,
    }
}

fn record_out(view: RecordView) -> RecordOut {
    let (status, reason) = view
        .check
        .map_or((VerificationStatus::NotStarted, None), |c| {
            (c.status, c.reason)
        });
    RecordOut {
        record: view.spec.kind.as_str(),
        name: view.spec.name,
        fqdn: view.spec.fqdn,
        kind: view.spec.rtype.as_str(),
        ttl: "Auto",
        value: view.spec.value,
        priority: view.spec.priority,
        status,
        reason,
        required: view.spec.required,
    }
}

impl Domains {
    /// Adds a sending domain; its view lists the records to publish.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a name that is not a domain; a conflict when the tenant has
    /// it already or as many as it may have; unavailable without `MISSIVE_SECRET_KEY`.
    pub async fn create(
        &self,
        caller: Caller<'_>,
        request: CreateDomainRequest,
    ) -> Result<DomainView, ServiceError> {
        let tenant_id = caller.require(Scope::DomainsManage)?;
        let record = self
            .insert(
                tenant_id,
                NewDomainInput {
                    name: request.name,
                    algorithm: request.dkim_algorithm,
                    region: request.region,
                    open_tracking: request.open_tracking,
                    click_tracking: request.click_tracking,
                    custom_return_path: request.custom_return_path,
                    capabilities: request.capabilities.unwrap_or_default(),
                    inbound_dmarc: request.inbound_dmarc,
                },
            )
            .await?;
        Ok(view(self, record))
    }

    /// A page of the tenant's domains, newest first.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a bad page size.
    pub async fn list(
        &self,
        caller: Caller<'_>,
        query: &ListDomainsQuery,
    ) -> Result<DomainList, ServiceError> {
        let tenant_id = caller.require(Scope::DomainsManage)?;
        let (cursor, limit) = page(query.limit, query.after, query.before)?;
        let page = self.store().list_domains(tenant_id, cursor, limit).await?;
        Ok(DomainList {
            object: "list",
            data: page
                .domains
                .into_iter()
                .map(|d| DomainSummary {
                    id: d.id,
                    name: d.name,
                    status: d.status,
                    region: d.region,
                    created_at: d.created_at,
                })
                .collect(),
            has_more: page.has_more,
        })
    }

    /// A domain with its records and their last verdicts.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`], also for another tenant's.
    pub async fn get(&self, caller: Caller<'_>, id: DomainId) -> Result<DomainView, ServiceError> {
        let tenant_id = caller.require(Scope::DomainsManage)?;
        let record = self.store().get_domain(tenant_id, id).await?;
        Ok(view(self, record))
    }

    /// Changes a domain's tracking flags or TLS setting (stored for Resend's clients).
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for another id in the body; not found.
    pub async fn update(
        &self,
        caller: Caller<'_>,
        id: DomainId,
        request: &UpdateDomainRequest,
    ) -> Result<DomainRefView, ServiceError> {
        let tenant_id = caller.require(Scope::DomainsManage)?;
        if request.id.is_some_and(|given| given != id) {
            return Err(ServiceError::Invalid(
                "id: differs from the path's".to_owned(),
            ));
        }
        let record = self
            .store()
            .update_domain(
                tenant_id,
                id,
                &DomainPatch {
                    open_tracking: request.open_tracking,
                    click_tracking: request.click_tracking,
                    tls: request.tls,
                    sending: request.capabilities.and_then(|c| c.sending),
                    receiving: request.capabilities.and_then(|c| c.receiving),
                    inbound_dmarc: request.inbound_dmarc,
                },
            )
            .await?;
        // Whether it signs may have changed: this process stops using its cached keys at once
        // (the others when the change's notification reaches them).
        self.forget(tenant_id);
        Ok(DomainRefView {
            object: "domain",
            id: record.id,
            status: record.status,
        })
    }

    /// Removes a domain: its mail is no longer signed, and where verification is required, no
    /// longer accepted.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`].
    pub async fn delete(
        &self,
        caller: Caller<'_>,
        id: DomainId,
    ) -> Result<DeletedDomain, ServiceError> {
        let tenant_id = caller.require(Scope::DomainsManage)?;
        self.store().delete_domain(tenant_id, id).await?;
        self.forget(tenant_id);
        Ok(DeletedDomain {
            object: "domain",
            id,
            deleted: true,
        })
    }

    /// Looks the domain's records up now; the answer says how it went.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`].
    pub async fn verify(
        &self,
        caller: Caller<'_>,
        id: DomainId,
    ) -> Result<DomainRefView, ServiceError> {
        let tenant_id = caller.require(Scope::DomainsManage)?;
        let record = self.check(tenant_id, id).await?;
        Ok(DomainRefView {
            object: "domain",
            id: record.id,
            status: record.status,
        })
    }

    /// Starts a key rotation; the view lists the next key's record to publish.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; unavailable without `MISSIVE_SECRET_KEY`.
    pub async fn rotate(
        &self,
        caller: Caller<'_>,
        id: DomainId,
    ) -> Result<DomainView, ServiceError> {
        let tenant_id = caller.require(Scope::DomainsManage)?;
        let record = self.begin_rotation(tenant_id, id).await?;
        Ok(view(self, record))
    }
}
