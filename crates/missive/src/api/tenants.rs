//! Admin routes for tenants: `/v1/tenants` and `/v1/tenants/{id}`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use missive_core::TenantId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::AdminAuth;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::accounts::{
    self, CreateTenantRequest, CreatedTenantView, TenantList, TenantView, UpdateTenantRequest,
};
use crate::delivery::smtp::Step;
use crate::delivery::{RouteError, Transport};
use crate::state::AppState;

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

/// The answer of `POST /v1/tenants/{id}/smtp/verify`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SmtpVerification {
    #[schema(example = "smtp_verification")]
    pub object: &'static str,
    pub tenant_id: TenantId,
    /// `host:port`.
    pub host: String,
    /// Whether every step passed: mail through this server would be accepted for relaying.
    pub ok: bool,
    /// Each step taken, in order, with the server's reply or what went wrong.
    pub steps: Vec<Step>,
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
    let stored = state
        .store
        .tenant_relay(id)
        .await
        .map_err(|e| ApiError::from(accounts::AccountsError::from(e)))?
        .ok_or_else(|| ApiError::Validation("the tenant has no SMTP server set".to_owned()))?;
    let host = stored.relay.addr();
    let transport = match state.relays.transport(id, &stored) {
        Ok(transport) => transport,
        // Opening the password is the first step; a password that does not open fails it.
        Err(err @ (RouteError::NoSecretKey | RouteError::Sealed(_))) => {
            return Ok(Json(SmtpVerification {
                object: "smtp_verification",
                tenant_id: id,
                host,
                ok: false,
                steps: vec![Step {
                    step: "password",
                    ok: false,
                    detail: err.to_string(),
                }],
            }));
        }
        Err(RouteError::Transport(err)) => return Err(ApiError::Internal(err.to_string())),
    };
    let Transport::Smtp(pool) = transport else {
        return Err(ApiError::Internal(
            "a tenant server is always SMTP".to_owned(),
        ));
    };
    let (ok, steps) = pool.verify().await;
    tracing::info!(tenant_id = %id, ok, "tenant SMTP server verified");
    Ok(Json(SmtpVerification {
        object: "smtp_verification",
        tenant_id: id,
        host,
        ok,
        steps,
    }))
}
