//! API key routes: the operator's (`/v1/tenants/{id}/api-keys`) and the tenant's own
//! (`/v1/api-keys`, Resend's shape). Both go through [`crate::tenancy::accounts`]; the tenant routes take
//! the tenant from the key, never from the request, so another tenant's key id is a 404.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use missive_core::{ApiKeyId, ProjectRef, Scope, TenantId};

use super::auth::{AdminAuth, TenantAuth};
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath};
use crate::edge::state::AppState;
use crate::tenancy::accounts::{
    self, ApiKeyList, ApiKeyView, CreateApiKeyRequest, CreatedApiKeyView,
};

/// Issue a key for a tenant; the key (`token`) is shown once.
#[utoipa::path(
    post, path = "/v1/tenants/{id}/api-keys", tag = "admin",
    params(("id" = TenantId, Path, description = "Tenant id")),
    request_body = CreateApiKeyRequest,
    security(("admin_key" = [])),
    responses(
        (status = 201, description = "Created", body = CreatedApiKeyView),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "Tenant disabled or name taken", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
    )
)]
pub async fn admin_create_api_key(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiPath(tenant_id): ApiPath<TenantId>,
    ApiJson(request): ApiJson<CreateApiKeyRequest>,
) -> Result<(StatusCode, Json<CreatedApiKeyView>), ApiError> {
    let created = accounts::create_api_key(
        &state.store,
        ProjectRef::default_of(tenant_id),
        None,
        &request,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// List a tenant's keys: prefixes, names, scopes, last use. Never the keys.
#[utoipa::path(
    get, path = "/v1/tenants/{id}/api-keys", tag = "admin",
    params(("id" = TenantId, Path, description = "Tenant id")),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The keys, newest first", body = ApiKeyList),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    )
)]
pub async fn admin_list_api_keys(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiPath(tenant_id): ApiPath<TenantId>,
) -> Result<Json<ApiKeyList>, ApiError> {
    Ok(Json(
        accounts::list_api_keys(&state.store, tenant_id.into()).await?,
    ))
}

/// Revoke one of a tenant's keys.
#[utoipa::path(
    delete, path = "/v1/tenants/{id}/api-keys/{key_id}", tag = "admin",
    params(
        ("id" = TenantId, Path, description = "Tenant id"),
        ("key_id" = ApiKeyId, Path, description = "API key id"),
    ),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The revoked key", body = ApiKeyView),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "The tenant has no such key", body = ErrorBody),
        (status = 409, description = "Already revoked", body = ErrorBody),
    )
)]
pub async fn admin_revoke_api_key(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiPath((tenant_id, key_id)): ApiPath<(TenantId, ApiKeyId)>,
) -> Result<Json<ApiKeyView>, ApiError> {
    let changed = accounts::revoke_api_key(&state.store, tenant_id.into(), key_id).await?;
    // Cached lookups of the old state must not outlive the answer.
    state.keys.forget_all();
    Ok(Json(changed))
}

/// Create a key for the calling tenant (needs `full_access`).
#[utoipa::path(
    post, path = "/v1/api-keys", tag = "api-keys",
    request_body = CreateApiKeyRequest,
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Created", body = CreatedApiKeyView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `full_access`", body = ErrorBody),
        (status = 409, description = "Name taken", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
    )
)]
pub async fn create_api_key(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateApiKeyRequest>,
) -> Result<(StatusCode, Json<CreatedApiKeyView>), ApiError> {
    auth.require(Scope::FullAccess)?;
    let created =
        accounts::create_api_key(&state.store, auth.project(), Some(&auth.scopes), &request)
            .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// List the calling tenant's keys (needs `full_access`).
#[utoipa::path(
    get, path = "/v1/api-keys", tag = "api-keys",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The keys, newest first", body = ApiKeyList),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `full_access`", body = ErrorBody),
    )
)]
pub async fn list_api_keys(
    auth: TenantAuth,
    State(state): State<AppState>,
) -> Result<Json<ApiKeyList>, ApiError> {
    auth.require(Scope::FullAccess)?;
    Ok(Json(
        accounts::list_api_keys(&state.store, auth.project().into()).await?,
    ))
}

/// Revoke one of the calling tenant's keys (needs `full_access`).
#[utoipa::path(
    delete, path = "/v1/api-keys/{key_id}", tag = "api-keys",
    params(("key_id" = ApiKeyId, Path, description = "API key id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The revoked key", body = ApiKeyView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `full_access`", body = ErrorBody),
        (status = 404, description = "The tenant has no such key", body = ErrorBody),
        (status = 409, description = "Already revoked", body = ErrorBody),
    )
)]
pub async fn revoke_api_key(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(key_id): ApiPath<ApiKeyId>,
) -> Result<Json<ApiKeyView>, ApiError> {
    auth.require(Scope::FullAccess)?;
    let changed = accounts::revoke_api_key(&state.store, auth.project().into(), key_id).await?;
    // Cached lookups of the old state must not outlive the answer.
    state.keys.forget_all();
    Ok(Json(changed))
}
