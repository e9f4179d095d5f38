//! The operator's project routes: `/v1/tenants/{id}/projects[/{project_id}]` and the keys under
//! them. Every call goes through [`crate::tenancy::projects`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use missive_core::{ApiKeyId, ProjectId, TenantId};

use super::auth::AdminAuth;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath};
use crate::edge::state::AppState;
use crate::tenancy::accounts::{ApiKeyList, ApiKeyView, CreateApiKeyRequest, CreatedApiKeyView};
use crate::tenancy::caller::Caller;
use crate::tenancy::projects::{
    self, CreateProjectRequest, ProjectList, ProjectView, UpdateProjectRequest,
};

/// Add a project to a tenant.
#[utoipa::path(
    post, path = "/v1/tenants/{id}/projects", tag = "admin",
    params(
        ("id" = TenantId, Path, description = "Tenant id"),
    ),
    request_body = CreateProjectRequest,
    security(("admin_key" = [])),
    responses(
        (status = 201, description = "Created", body = ProjectView),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such tenant or project", body = ErrorBody),
        (status = 409, description = "Name taken, network overlapping, or the tenant disabled", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
    )
)]
pub async fn admin_create_project(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiPath(tenant): ApiPath<TenantId>,
    ApiJson(request): ApiJson<CreateProjectRequest>,
) -> Result<(StatusCode, Json<ProjectView>), ApiError> {
    let out = projects::create(&state.store, Caller::operator(tenant), &request).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// List a tenant's projects, the default first.
#[utoipa::path(
    get, path = "/v1/tenants/{id}/projects", tag = "admin",
    params(
        ("id" = TenantId, Path, description = "Tenant id"),
    ),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The projects", body = ProjectList),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such tenant or project", body = ErrorBody),
    )
)]
pub async fn admin_list_projects(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiPath(tenant): ApiPath<TenantId>,
) -> Result<Json<ProjectList>, ApiError> {
    let out = projects::list(&state.store, Caller::operator(tenant)).await?;
    Ok(Json(out))
}

/// Get one of a tenant's projects.
#[utoipa::path(
    get, path = "/v1/tenants/{id}/projects/{project_id}", tag = "admin",
    params(
        ("id" = TenantId, Path, description = "Tenant id"),
        ("project_id" = ProjectId, Path, description = "Project id"),
    ),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The project", body = ProjectView),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such tenant or project", body = ErrorBody),
    )
)]
pub async fn admin_get_project(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiPath((tenant, project)): ApiPath<(TenantId, ProjectId)>,
) -> Result<Json<ProjectView>, ApiError> {
    let out = projects::get(&state.store, Caller::operator(tenant), project).await?;
    Ok(Json(out))
}

/// Rename a project, or change its request rate and trusted networks.
#[utoipa::path(
    patch, path = "/v1/tenants/{id}/projects/{project_id}", tag = "admin",
    params(
        ("id" = TenantId, Path, description = "Tenant id"),
        ("project_id" = ProjectId, Path, description = "Project id"),
    ),
    request_body = UpdateProjectRequest,
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The project", body = ProjectView),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such tenant or project", body = ErrorBody),
        (status = 409, description = "Name taken, network overlapping, or the tenant disabled", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
    )
)]
pub async fn admin_update_project(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiPath((tenant, project)): ApiPath<(TenantId, ProjectId)>,
    ApiJson(request): ApiJson<UpdateProjectRequest>,
) -> Result<Json<ProjectView>, ApiError> {
    let out = projects::update(&state.store, Caller::operator(tenant), project, &request).await?;
    // Cached lookups of the old state must not outlive the answer.
    state.keys.forget_all();
    Ok(Json(out))
}

/// Delete a project other than the default: its keys are revoked, its history kept.
#[utoipa::path(
    delete, path = "/v1/tenants/{id}/projects/{project_id}", tag = "admin",
    params(
        ("id" = TenantId, Path, description = "Tenant id"),
        ("project_id" = ProjectId, Path, description = "Project id"),
    ),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The deleted project", body = ProjectView),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such tenant or project", body = ErrorBody),
        (status = 409, description = "The default project", body = ErrorBody),
    )
)]
pub async fn admin_delete_project(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiPath((tenant, project)): ApiPath<(TenantId, ProjectId)>,
) -> Result<Json<ProjectView>, ApiError> {
    let out = projects::delete(&state.store, Caller::operator(tenant), project).await?;
    // Cached lookups of the old state must not outlive the answer.
    state.keys.forget_all();
    Ok(Json(out))
}

/// Issue a key for a project; the key (`token`) is shown once.
#[utoipa::path(
    post, path = "/v1/tenants/{id}/projects/{project_id}/api-keys", tag = "admin",
    params(
        ("id" = TenantId, Path, description = "Tenant id"),
        ("project_id" = ProjectId, Path, description = "Project id"),
    ),
    request_body = CreateApiKeyRequest,
    security(("admin_key" = [])),
    responses(
        (status = 201, description = "Created", body = CreatedApiKeyView),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such tenant or project", body = ErrorBody),
        (status = 409, description = "Name taken or tenant disabled", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
    )
)]
pub async fn admin_create_project_key(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiPath((tenant, project)): ApiPath<(TenantId, ProjectId)>,
    ApiJson(request): ApiJson<CreateApiKeyRequest>,
) -> Result<(StatusCode, Json<CreatedApiKeyView>), ApiError> {
    let out =
        projects::create_key(&state.store, Caller::operator(tenant), project, &request).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// List a project's keys.
#[utoipa::path(
    get, path = "/v1/tenants/{id}/projects/{project_id}/api-keys", tag = "admin",
    params(
        ("id" = TenantId, Path, description = "Tenant id"),
        ("project_id" = ProjectId, Path, description = "Project id"),
    ),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The keys, newest first", body = ApiKeyList),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such tenant or project", body = ErrorBody),
    )
)]
pub async fn admin_list_project_keys(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiPath((tenant, project)): ApiPath<(TenantId, ProjectId)>,
) -> Result<Json<ApiKeyList>, ApiError> {
    let out = projects::list_keys(&state.store, Caller::operator(tenant), project).await?;
    Ok(Json(out))
}

/// Revoke one of a project's keys.
#[utoipa::path(
    delete, path = "/v1/tenants/{id}/projects/{project_id}/api-keys/{key_id}", tag = "admin",
    params(
        ("id" = TenantId, Path, description = "Tenant id"),
        ("project_id" = ProjectId, Path, description = "Project id"),
        ("key_id" = ApiKeyId, Path, description = "API key id"),
    ),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The revoked key", body = ApiKeyView),
        (status = 401, description = "Missing or wrong admin key", body = ErrorBody),
        (status = 404, description = "No such tenant or project", body = ErrorBody),
        (status = 409, description = "Already revoked", body = ErrorBody),
    )
)]
pub async fn admin_revoke_project_key(
    _: AdminAuth,
    State(state): State<AppState>,
    ApiPath((tenant, project, key)): ApiPath<(TenantId, ProjectId, ApiKeyId)>,
) -> Result<Json<ApiKeyView>, ApiError> {
    let out = projects::revoke_key(&state.store, Caller::operator(tenant), project, key).await?;
    // Cached lookups of the old state must not outlive the answer.
    state.keys.forget_all();
    Ok(Json(out))
}
