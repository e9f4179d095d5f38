//! Delegated administration: a key of the tenant with `projects:manage` lists, creates and
//! renames the tenant's projects and issues and revokes their keys (`/v1/projects...`), so the
//! operator hands a customer one key and the customer runs its own applications. Every call goes
//! through [`crate::tenancy::projects`], as the operator's routes do.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use missive_core::{ApiKeyId, ProjectId};

use super::auth::TenantAuth;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::edge::state::AppState;
use crate::tenancy::accounts::{ApiKeyList, ApiKeyView, CreateApiKeyRequest, CreatedApiKeyView};
use crate::tenancy::projects::{
    self, CreateProjectRequest, ProjectList, ProjectView, UpdateProjectRequest,
};
use crate::tenancy::usage::{PeriodQuery, TenantUsageView};

/// List the calling tenant's projects (needs `projects:manage`).
#[utoipa::path(
    get, path = "/v1/projects", tag = "projects",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The projects, the default first", body = ProjectList),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `projects:manage`", body = ErrorBody),
    )
)]
pub async fn list_projects(
    auth: TenantAuth,
    State(state): State<AppState>,
) -> Result<Json<ProjectList>, ApiError> {
    let out = projects::list(&state.store, (&auth).into()).await?;
    Ok(Json(out))
}

/// Create a project (needs `projects:manage`).
#[utoipa::path(
    post, path = "/v1/projects", tag = "projects",
    request_body = CreateProjectRequest,
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Created", body = ProjectView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `projects:manage`", body = ErrorBody),
        (status = 409, description = "Name taken", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
    )
)]
pub async fn create_project(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateProjectRequest>,
) -> Result<(StatusCode, Json<ProjectView>), ApiError> {
    let out = projects::create(&state.store, (&auth).into(), &request).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// Get one of the tenant's projects (needs `projects:manage`).
#[utoipa::path(
    get, path = "/v1/projects/{project_id}", tag = "projects",
    params(
        ("project_id" = ProjectId, Path, description = "Project id"),
    ),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The project", body = ProjectView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `projects:manage`", body = ErrorBody),
        (status = 404, description = "The tenant has no such project", body = ErrorBody),
    )
)]
pub async fn get_project(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(project): ApiPath<ProjectId>,
) -> Result<Json<ProjectView>, ApiError> {
    let out = projects::get(&state.store, (&auth).into(), project).await?;
    Ok(Json(out))
}

/// Rename one of the tenant's projects (needs `projects:manage`; limits and networks are the operator's).
#[utoipa::path(
    patch, path = "/v1/projects/{project_id}", tag = "projects",
    params(
        ("project_id" = ProjectId, Path, description = "Project id"),
    ),
    request_body = UpdateProjectRequest,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The project", body = ProjectView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `projects:manage`", body = ErrorBody),
        (status = 404, description = "The tenant has no such project", body = ErrorBody),
        (status = 409, description = "Name taken", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
    )
)]
pub async fn update_project(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(project): ApiPath<ProjectId>,
    ApiJson(request): ApiJson<UpdateProjectRequest>,
) -> Result<Json<ProjectView>, ApiError> {
    let out = projects::update(&state.store, (&auth).into(), project, &request).await?;
    Ok(Json(out))
}

/// Issue a key for one of the tenant's projects (needs `projects:manage`); the key is shown once.
#[utoipa::path(
    post, path = "/v1/projects/{project_id}/api-keys", tag = "projects",
    params(
        ("project_id" = ProjectId, Path, description = "Project id"),
    ),
    request_body = CreateApiKeyRequest,
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Created", body = CreatedApiKeyView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `projects:manage`", body = ErrorBody),
        (status = 404, description = "The tenant has no such project", body = ErrorBody),
        (status = 409, description = "Name taken", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
    )
)]
pub async fn create_project_key(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(project): ApiPath<ProjectId>,
    ApiJson(request): ApiJson<CreateApiKeyRequest>,
) -> Result<(StatusCode, Json<CreatedApiKeyView>), ApiError> {
    let out = projects::create_key(&state.store, (&auth).into(), project, &request).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// List a project's keys (needs `projects:manage`).
#[utoipa::path(
    get, path = "/v1/projects/{project_id}/api-keys", tag = "projects",
    params(
        ("project_id" = ProjectId, Path, description = "Project id"),
    ),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The keys, newest first", body = ApiKeyList),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `projects:manage`", body = ErrorBody),
        (status = 404, description = "The tenant has no such project", body = ErrorBody),
    )
)]
pub async fn list_project_keys(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(project): ApiPath<ProjectId>,
) -> Result<Json<ApiKeyList>, ApiError> {
    let out = projects::list_keys(&state.store, (&auth).into(), project).await?;
    Ok(Json(out))
}

/// Revoke one of a project's keys (needs `projects:manage`).
#[utoipa::path(
    delete, path = "/v1/projects/{project_id}/api-keys/{key_id}", tag = "projects",
    params(
        ("project_id" = ProjectId, Path, description = "Project id"),
        ("key_id" = ApiKeyId, Path, description = "API key id"),
    ),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The revoked key", body = ApiKeyView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `projects:manage`", body = ErrorBody),
        (status = 404, description = "The tenant has no such project", body = ErrorBody),
        (status = 409, description = "Already revoked", body = ErrorBody),
    )
)]
pub async fn revoke_project_key(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath((project, key)): ApiPath<(ProjectId, ApiKeyId)>,
) -> Result<Json<ApiKeyView>, ApiError> {
    let out = projects::revoke_key(&state.store, (&auth).into(), project, key).await?;
    // Cached lookups of the old state must not outlive the answer.
    state.keys.forget_all();
    Ok(Json(out))
}

/// The tenant's figures for a month, with each project's (needs `projects:manage`).
#[utoipa::path(
    get, path = "/v1/projects/usage", tag = "projects",
    params(PeriodQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The tenant's month and its projects'", body = TenantUsageView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `projects:manage`", body = ErrorBody),
        (status = 422, description = "Invalid period", body = ErrorBody),
    )
)]
pub async fn projects_usage(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PeriodQuery>,
) -> Result<Json<TenantUsageView>, ApiError> {
    let period = query.month()?;
    state.requests.flush_logged(&state.store).await;
    Ok(Json(
        projects::usage(&state.store, (&auth).into(), period).await?,
    ))
}
