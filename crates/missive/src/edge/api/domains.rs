//! `/v1/domains`: Resend's Domains API for a tenant's sending domains (create, get, list,
//! update, delete, verify) and our `rotate`, served by [`crate::tenancy::domains`]. Scope
//! `domains:manage`.

use axum::Json;
use axum::extract::State;
use missive_core::DomainId;

use super::auth::TenantAuth;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::edge::state::AppState;
use crate::tenancy::domains::{
    CreateDomainRequest, DeletedDomain, DomainList, DomainRefView, DomainView, ListDomainsQuery,
    UpdateDomainRequest,
};

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
    Ok(Json(state.domains.create((&auth).into(), request).await?))
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
    Ok(Json(state.domains.list((&auth).into(), &query).await?))
}

/// Read a domain with its records and their last verdicts.
#[utoipa::path(
    get, path = "/v1/domains/{id}", tag = "domains",
    params(("id" = DomainId, Path, description = "Domain id")),
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
    ApiPath(id): ApiPath<DomainId>,
) -> Result<Json<DomainView>, ApiError> {
    Ok(Json(state.domains.get((&auth).into(), id).await?))
}

/// Change a domain's tracking flags or TLS setting (stored for Resend's clients).
#[utoipa::path(
    patch, path = "/v1/domains/{id}", tag = "domains",
    params(("id" = DomainId, Path, description = "Domain id")),
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
    ApiPath(id): ApiPath<DomainId>,
    ApiJson(request): ApiJson<UpdateDomainRequest>,
) -> Result<Json<DomainRefView>, ApiError> {
    Ok(Json(
        state.domains.update((&auth).into(), id, &request).await?,
    ))
}

/// Remove a domain: its mail is no longer signed, and where verification is required, no
/// longer accepted.
#[utoipa::path(
    delete, path = "/v1/domains/{id}", tag = "domains",
    params(("id" = DomainId, Path, description = "Domain id")),
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
    ApiPath(id): ApiPath<DomainId>,
) -> Result<Json<DeletedDomain>, ApiError> {
    Ok(Json(state.domains.delete((&auth).into(), id).await?))
}

/// Look the domain's records up now: the domain and each record become verified or failed
/// (with the reason), or a temporary failure when DNS did not answer.
#[utoipa::path(
    post, path = "/v1/domains/{id}/verify", tag = "domains",
    params(("id" = DomainId, Path, description = "Domain id")),
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
    ApiPath(id): ApiPath<DomainId>,
) -> Result<Json<DomainRefView>, ApiError> {
    Ok(Json(state.domains.verify((&auth).into(), id).await?))
}

/// Start a key rotation: a new key under a new selector, to publish beside the current one;
/// it signs from the first verification that finds its record.
#[utoipa::path(
    post, path = "/v1/domains/{id}/rotate", tag = "domains",
    params(("id" = DomainId, Path, description = "Domain id")),
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
    ApiPath(id): ApiPath<DomainId>,
) -> Result<Json<DomainView>, ApiError> {
    Ok(Json(state.domains.rotate((&auth).into(), id).await?))
}
