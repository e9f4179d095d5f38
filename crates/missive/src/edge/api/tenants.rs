//! Admin routes for tenants: `/v1/tenants` and `/v1/tenants/{id}`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use missive_core::TenantId;
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::AdminAuth;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::edge::state::AppState;
use crate::tenancy::accounts::{
    self, CreateTenantRequest, CreatedTenantView, SmtpVerification, TenantList, TenantView,
    UpdateTenantRequest,
};

/// Paging for `GET /v1/tenants`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTenantsQuery {
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// Return tenants after this id (the last id of the previous page).
    pub after: Option<TenantId>,
}

/// Create a tenant and its first API key (shown once).
#[utoipa::path(
    post, path = "/v1/tenants", tag = "admin",
    request_body = CreateTenantRequest,
    security(("admin_key" = [])),
    responses(
        (status = 201, description = "Created", body = CreatedTenantView),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 403, description = "Admin API disabled", body = ErrorBody),
        (status = 409, description = "Name taken", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
    )
)]
pub async fn create_tenant(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateTenantRequest>,
) -> Result<(StatusCode, Json<CreatedTenantView>), ApiError> {
    let created = accounts::create_tenant(&state.store, &request).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// List tenants in creation order.
#[utoipa::path(
    get, path = "/v1/tenants", tag = "admin",
    params(ListTenantsQuery),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "One page", body = TenantList),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 422, description = "Invalid paging", body = ErrorBody),
    )
)]
pub async fn list_tenants(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListTenantsQuery>,
) -> Result<Json<TenantList>, ApiError> {
    let page = accounts::list_tenants(&state.store, query.after, query.limit.unwrap_or(20)).await?;
    Ok(Json(page))
}

/// Read one tenant.
#[utoipa::path(
    get, path = "/v1/tenants/{id}", tag = "admin",
    params(("id" = TenantId, Path, description = "Tenant id")),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The tenant", body = TenantView),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    )
)]
pub async fn get_tenant(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<TenantId>,
) -> Result<Json<TenantView>, ApiError> {
    Ok(Json(accounts::get_tenant(&state.store, id).await?))
}

/// Change a tenant's name, status, domain or settings: what the body names is replaced, the rest
/// stays. `PUT` (SelfMX's verb) means the same as `PATCH`.
#[utoipa::path(
    method(patch, put), path = "/v1/tenants/{id}", tag = "admin",
    params(("id" = TenantId, Path, description = "Tenant id")),
    request_body = UpdateTenantRequest,
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The updated tenant", body = TenantView),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "Name taken", body = ErrorBody),
        (status = 422, description = "Invalid field, or an SMTP host Missive does not connect to", body = ErrorBody),
        (status = 503, description = "An SMTP password without MISSIVE_SECRET_KEY to seal it", body = ErrorBody),
    )
)]
pub async fn update_tenant(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<TenantId>,
    ApiJson(request): ApiJson<UpdateTenantRequest>,
) -> Result<Json<TenantView>, ApiError> {
    let changed = accounts::update_tenant(&state.store, &state.relays, id, &request).await?;
    // Cached lookups of the old state must not outlive the answer.
    state.keys.forget_all();
    Ok(Json(changed))
}

/// Delete a tenant: its keys are revoked, its trusted networks freed, and from then on it answers
/// 404 and is not listed. Its emails and events are kept in the database. (To switch a tenant
/// off and back on, `PATCH` its `status`.)
#[utoipa::path(
    delete, path = "/v1/tenants/{id}", tag = "admin",
    params(("id" = TenantId, Path, description = "Tenant id")),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The tenant as it was deleted", body = TenantView),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    )
)]
pub async fn delete_tenant(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<TenantId>,
) -> Result<Json<TenantView>, ApiError> {
    let changed = accounts::delete_tenant(&state.store, id).await?;
    // Cached lookups of the old state must not outlive the answer.
    state.keys.forget_all();
    Ok(Json(changed))
}

/// Check a tenant's own SMTP server: open its password, connect, greeting, EHLO, STARTTLS (or
/// implicit TLS) and login, as a delivery would, each step reported. Sends no mail.
#[utoipa::path(
    post, path = "/v1/tenants/{id}/smtp/verify", tag = "admin",
    params(("id" = TenantId, Path, description = "Tenant id")),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The steps and whether all passed", body = SmtpVerification),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 422, description = "The tenant has no SMTP server set", body = ErrorBody),
    )
)]
pub async fn verify_tenant_smtp(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<TenantId>,
) -> Result<Json<SmtpVerification>, ApiError> {
    Ok(Json(
        accounts::verify_smtp(&state.store, &state.relays, id).await?,
    ))
}
