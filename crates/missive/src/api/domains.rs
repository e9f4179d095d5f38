//! `/v1/domains`: Resend's Domains API for a tenant's sending domains (create, get, list,
//! update, delete, verify) and our `rotate`. Scope `domains:manage`.
//!
//! A domain's private key appears in no answer: the views are built from
//! [`missive_store::DomainRecord`], which has no column for it.

use axum::Json;
use axum::extract::State;
use missive_core::Scope;
use missive_core::sending_domain::{DkimAlgorithm, VerificationStatus};
use missive_store::{DomainPatch, DomainRecord};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::TenantAuth;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, page};
use crate::domains::{Domains, DomainsError, NewDomainInput, RecordView};
use crate::state::AppState;

impl From<DomainsError> for ApiError {
    fn from(err: DomainsError) -> Self {
        match err {
            DomainsError::Invalid(_) => Self::Validation(err.to_string()),
            DomainsError::Unavailable => Self::Unavailable(err.to_string()),
            DomainsError::Key(_) | DomainsError::Seal(_) => Self::Internal(err.to_string()),
            DomainsError::Store(store) => store.into(),
        }
    }
}

/// The regions Resend names; Missive sends from where it runs, and keeps the name for clients.
const REGIONS: [&str; 4] = ["us-east-1", "eu-west-1", "sa-east-1", "ap-northeast-1"];

/// `POST /v1/domains`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDomainRequest {
    /// The domain, e.g. `mail.example.com`.
    #[schema(max_length = 253)]
    pub name: String,
    /// Kept as given (`us-east-1` by default); Missive sends from where it runs.
    pub region: Option<String>,
    /// `rsa` (2048 bits, the default unless the operator chose otherwise) or `ed25519`.
    pub dkim_algorithm: Option<String>,
    /// Accepted for Resend's clients; Missive does not rewrite return paths.
    pub custom_return_path: Option<String>,
    /// Accepted for Resend's clients and stored; Missive does not track opens or clicks.
    pub open_tracking: Option<bool>,
    pub click_tracking: Option<bool>,
    pub tracking_subdomain: Option<String>,
}

/// `PATCH /v1/domains/{id}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDomainRequest {
    /// The path's id again, as the Resend SDKs send it; another id is refused.
    pub id: Option<Uuid>,
    pub open_tracking: Option<bool>,
    pub click_tracking: Option<bool>,
    /// `opportunistic` or `enforced`.
    pub tls: Option<String>,
    pub tracking_subdomain: Option<String>,
}

/// One record to publish (Resend's shape, with our full name and the reason of a failure).
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordOut {
    /// `DKIM`, `SPF` or `DMARC`.
    pub record: &'static str,
    /// Relative to the domain; `@` is the domain itself.
    pub name: String,
    /// The full name to publish at.
    pub fqdn: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub ttl: &'static str,
    pub value: String,
    /// `not_started`, `verified`, `failed` or `temporary_failure`.
    pub status: &'static str,
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
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    /// `not_started`, `verified`, `failed` or `temporary_failure`.
    pub status: String,
    pub region: String,
    pub open_tracking: bool,
    pub click_tracking: bool,
    pub tls: String,
    pub dkim_algorithm: String,
    /// The selector signing now.
    pub dkim_selector: String,
    /// During a rotation: the selector that takes over once its record is found.
    pub next_dkim_selector: Option<String>,
    pub records: Vec<RecordOut>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub checked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A domain in a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainSummary {
    pub id: Uuid,
    pub name: String,
    pub status: String,
    pub region: String,
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
    pub id: Uuid,
    /// The status after the change (our addition).
    pub status: String,
}

/// The answer to a delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedDomain {
    #[schema(example = "domain")]
    pub object: &'static str,
    pub id: Uuid,
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
    pub after: Option<Uuid>,
    /// Domains newer than this id.
    pub before: Option<Uuid>,
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
        kind: "TXT",
        ttl: "Auto",
        value: view.spec.value,
        status: status.as_str(),
        reason,
        required: view.spec.required,
    }
}

fn region(raw: Option<String>) -> Result<Option<String>, ApiError> {
    match raw {
        Some(region) if !REGIONS.contains(&region.as_str()) => Err(ApiError::Validation(format!(
            "region: one of {}",
            REGIONS.join(", ")
        ))),
        other => Ok(other),
    }
}

/// Add a sending domain; the answer lists the records to publish.
#[utoipa::path(
    post, path = "/v1/domains", tag = "domains",
    request_body = CreateDomainRequest,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Added, not yet verified", body = DomainView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `domains:manage`", body = ErrorBody),
        (status = 409, description = "The tenant has this domain already", body = ErrorBody),
        (status = 422, description = "Not a domain name, or an unknown region or algorithm", body = ErrorBody),
        (status = 503, description = "MISSIVE_SECRET_KEY is not set", body = ErrorBody),
    )
)]
pub async fn create_domain(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateDomainRequest>,
) -> Result<Json<DomainView>, ApiError> {
    auth.require(Scope::DomainsManage)?;
    let algorithm = request
        .dkim_algorithm
        .as_deref()
        .map(str::parse::<DkimAlgorithm>)
        .transpose()
        .map_err(|e| ApiError::Validation(format!("dkim_algorithm: {e}")))?;
    let record = state
        .domains
        .create(
            auth.tenant_id,
            NewDomainInput {
                name: request.name,
                algorithm,
                region: region(request.region)?,
                open_tracking: request.open_tracking,
                click_tracking: request.click_tracking,
            },
        )
        .await?;
    Ok(Json(view(&state.domains, record)))
}

/// List the tenant's domains, newest first.
#[utoipa::path(
    get, path = "/v1/domains", tag = "domains",
    params(ListDomainsQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "One page", body = DomainList),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `domains:manage`", body = ErrorBody),
    )
)]
pub async fn list_domains(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListDomainsQuery>,
) -> Result<Json<DomainList>, ApiError> {
    auth.require(Scope::DomainsManage)?;
    let (cursor, limit) = page(query.limit, query.after, query.before)?;
    let page = state
        .domains
        .store()
        .list_domains(auth.tenant_id, cursor, limit)
        .await?;
    Ok(Json(DomainList {
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
    }))
}

/// Read a domain with its records and their last verdicts.
#[utoipa::path(
    get, path = "/v1/domains/{id}", tag = "domains",
    params(("id" = Uuid, Path, description = "Domain id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The domain", body = DomainView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `domains:manage`", body = ErrorBody),
        (status = 404, description = "The tenant has no such domain", body = ErrorBody),
    )
)]
pub async fn get_domain(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<DomainView>, ApiError> {
    auth.require(Scope::DomainsManage)?;
    let record = state.domains.store().get_domain(auth.tenant_id, id).await?;
    Ok(Json(view(&state.domains, record)))
}

/// Change a domain's tracking flags or TLS setting (stored for Resend's clients).
#[utoipa::path(
    patch, path = "/v1/domains/{id}", tag = "domains",
    params(("id" = Uuid, Path, description = "Domain id")),
    request_body = UpdateDomainRequest,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Updated", body = DomainRefView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `domains:manage`", body = ErrorBody),
        (status = 404, description = "The tenant has no such domain", body = ErrorBody),
        (status = 422, description = "An unknown TLS setting, or another id in the body", body = ErrorBody),
    )
)]
pub async fn update_domain(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(request): ApiJson<UpdateDomainRequest>,
) -> Result<Json<DomainRefView>, ApiError> {
    auth.require(Scope::DomainsManage)?;
    if request.id.is_some_and(|given| given != id) {
        return Err(ApiError::Validation(
            "id: differs from the path's".to_owned(),
        ));
    }
    if let Some(tls) = request.tls.as_deref()
        && !["opportunistic", "enforced"].contains(&tls)
    {
        return Err(ApiError::Validation(
            "tls: opportunistic or enforced".to_owned(),
        ));
    }
    let record = state
        .domains
        .store()
        .update_domain(
            auth.tenant_id,
            id,
            &DomainPatch {
                open_tracking: request.open_tracking,
                click_tracking: request.click_tracking,
                tls: request.tls.as_deref(),
            },
        )
        .await?;
    Ok(Json(DomainRefView {
        object: "domain",
        id: record.id,
        status: record.status,
    }))
}

/// Remove a domain: its mail is no longer signed, and where verification is required, no
/// longer accepted.
#[utoipa::path(
    delete, path = "/v1/domains/{id}", tag = "domains",
    params(("id" = Uuid, Path, description = "Domain id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Deleted", body = DeletedDomain),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `domains:manage`", body = ErrorBody),
        (status = 404, description = "The tenant has no such domain", body = ErrorBody),
    )
)]
pub async fn delete_domain(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<DeletedDomain>, ApiError> {
    auth.require(Scope::DomainsManage)?;
    state
        .domains
        .store()
        .delete_domain(auth.tenant_id, id)
        .await?;
    state.domains.forget(auth.tenant_id);
    Ok(Json(DeletedDomain {
        object: "domain",
        id,
        deleted: true,
    }))
}

/// Look the domain's records up now: the domain and each record become verified or failed
/// (with the reason), or a temporary failure when DNS did not answer.
#[utoipa::path(
    post, path = "/v1/domains/{id}/verify", tag = "domains",
    params(("id" = Uuid, Path, description = "Domain id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Checked; the status says how it went", body = DomainRefView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `domains:manage`", body = ErrorBody),
        (status = 404, description = "The tenant has no such domain", body = ErrorBody),
    )
)]
pub async fn verify_domain(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<DomainRefView>, ApiError> {
    auth.require(Scope::DomainsManage)?;
    let record = state.domains.verify(auth.tenant_id, id).await?;
    Ok(Json(DomainRefView {
        object: "domain",
        id: record.id,
        status: record.status,
    }))
}

/// Start a key rotation: a new key under a new selector, to publish beside the current one;
/// it signs from the first verification that finds its record.
#[utoipa::path(
    post, path = "/v1/domains/{id}/rotate", tag = "domains",
    params(("id" = Uuid, Path, description = "Domain id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The domain, with the next key's record to publish", body = DomainView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `domains:manage`", body = ErrorBody),
        (status = 404, description = "The tenant has no such domain", body = ErrorBody),
        (status = 503, description = "MISSIVE_SECRET_KEY is not set", body = ErrorBody),
    )
)]
pub async fn rotate_domain(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<DomainView>, ApiError> {
    auth.require(Scope::DomainsManage)?;
    let record = state.domains.rotate(auth.tenant_id, id).await?;
    Ok(Json(view(&state.domains, record)))
}
