//! `/v1/templates`: Resend's Templates API (create, get by id or alias, list, update, delete,
//! publish, duplicate), and our `render`, which answers what a send would render; served by
//! [`crate::tenancy::templates`].

use axum::Json;
use axum::extract::State;

use super::auth::TenantAuth;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::edge::state::AppState;
use crate::tenancy::templates::{
    CreateTemplateRequest, DeletedTemplate, ListTemplatesQuery, RenderRequest, RenderedTemplate,
    TemplateList, TemplateRefView, TemplateView, UpdateTemplateRequest,
};

/// Create a template, as a draft.
#[utoipa::path(
    post, path = "/v1/templates", tag = "templates",
    request_body = CreateTemplateRequest,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Created (a draft)", body = TemplateRefView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `templates:write`", body = ErrorBody),
        (status = 409, description = "Name or alias in use", body = ErrorBody),
        (status = 422, description = "Invalid field or source (with line and column), unknown partial or layout, or a cycle of includes", body = ErrorBody),
    )
)]
pub async fn create_template(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateTemplateRequest>,
) -> Result<Json<TemplateRefView>, ApiError> {
    Ok(Json(
        state
            .ingest
            .templates()
            .create((&auth).into(), request)
            .await?,
    ))
}

/// List the tenant's own templates, newest first.
#[utoipa::path(
    get, path = "/v1/templates", tag = "templates",
    params(ListTemplatesQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "One page", body = TemplateList),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `templates:read`", body = ErrorBody),
        (status = 422, description = "Invalid paging", body = ErrorBody),
    )
)]
pub async fn list_templates(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListTemplatesQuery>,
) -> Result<Json<TemplateList>, ApiError> {
    Ok(Json(
        state
            .ingest
            .templates()
            .list((&auth).into(), &query)
            .await?,
    ))
}

/// Read a template by id or alias (the tenant's own, else a shipped one).
#[utoipa::path(
    get, path = "/v1/templates/{id}", tag = "templates",
    params(("id" = String, Path, description = "Template id or alias")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The template", body = TemplateView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `templates:read`", body = ErrorBody),
        (status = 404, description = "The tenant has no such template", body = ErrorBody),
    )
)]
pub async fn get_template(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TemplateView>, ApiError> {
    Ok(Json(
        state.ingest.templates().get((&auth).into(), &id).await?,
    ))
}

/// Change a template's draft; sends keep using the published version until the next publish.
#[utoipa::path(
    patch, path = "/v1/templates/{id}", tag = "templates",
    params(("id" = String, Path, description = "Template id or alias")),
    request_body = UpdateTemplateRequest,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Updated", body = TemplateRefView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `templates:write`", body = ErrorBody),
        (status = 404, description = "The tenant has no such template", body = ErrorBody),
        (status = 409, description = "Name or alias in use, an alias others include, or a shipped template", body = ErrorBody),
        (status = 422, description = "Invalid field or source, unknown partial or layout, or a cycle of includes", body = ErrorBody),
    )
)]
pub async fn update_template(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<UpdateTemplateRequest>,
) -> Result<Json<TemplateRefView>, ApiError> {
    Ok(Json(
        state
            .ingest
            .templates()
            .update((&auth).into(), &id, request)
            .await?,
    ))
}

/// Delete a template and its versions; mail already accepted keeps what it rendered.
#[utoipa::path(
    delete, path = "/v1/templates/{id}", tag = "templates",
    params(("id" = String, Path, description = "Template id or alias")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Deleted", body = DeletedTemplate),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `templates:write`", body = ErrorBody),
        (status = 404, description = "The tenant has no such template", body = ErrorBody),
        (status = 409, description = "Included by another template, or a shipped template", body = ErrorBody),
    )
)]
pub async fn delete_template(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DeletedTemplate>, ApiError> {
    Ok(Json(
        state.ingest.templates().delete((&auth).into(), &id).await?,
    ))
}

/// Publish the draft as the next version, which sends use from now on.
#[utoipa::path(
    post, path = "/v1/templates/{id}/publish", tag = "templates",
    params(("id" = String, Path, description = "Template id or alias")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Published", body = TemplateRefView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `templates:write`", body = ErrorBody),
        (status = 404, description = "The tenant has no such template", body = ErrorBody),
        (status = 409, description = "A shipped template", body = ErrorBody),
        (status = 422, description = "The draft does not build with the published partials and layouts it includes", body = ErrorBody),
    )
)]
pub async fn publish_template(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TemplateRefView>, ApiError> {
    Ok(Json(
        state
            .ingest
            .templates()
            .publish((&auth).into(), &id)
            .await?,
    ))
}

/// Copy a template's draft (or a shipped template) into a new draft, without an alias.
#[utoipa::path(
    post, path = "/v1/templates/{id}/duplicate", tag = "templates",
    params(("id" = String, Path, description = "Template id or alias")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The copy (a draft)", body = TemplateRefView),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `templates:write`", body = ErrorBody),
        (status = 404, description = "The tenant has no such template", body = ErrorBody),
    )
)]
pub async fn duplicate_template(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TemplateRefView>, ApiError> {
    Ok(Json(
        state
            .ingest
            .templates()
            .duplicate((&auth).into(), &id)
            .await?,
    ))
}

/// Render a template with variables exactly as a send would (or its draft, with `draft`).
#[utoipa::path(
    post, path = "/v1/templates/{id}/render", tag = "templates",
    params(("id" = String, Path, description = "Template id or alias")),
    request_body = RenderRequest,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "What a send would carry", body = RenderedTemplate),
        (status = 401, description = "Missing, unknown, revoked or expired key", body = ErrorBody),
        (status = 403, description = "The key lacks `templates:read`", body = ErrorBody),
        (status = 404, description = "The tenant has no such template", body = ErrorBody),
        (status = 422, description = "A variable missing or of the wrong type, a cap exceeded, or a template that does not build", body = ErrorBody),
    )
)]
pub async fn render_template(
    auth: TenantAuth,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<RenderRequest>,
) -> Result<Json<RenderedTemplate>, ApiError> {
    Ok(Json(
        state
            .ingest
            .templates()
            .render((&auth).into(), &id, &request)
            .await?,
    ))
}
