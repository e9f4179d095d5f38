//! `/v1/templates`: Resend's Templates API (create, get by id or alias, list, update, delete,
//! publish, duplicate), and our `render`, which answers what a send would render.
//!
//! Shipped templates answer by alias and id to every tenant (`shipped: true`), read-only; a
//! tenant's own template with the same alias hides the shipped one.

use axum::Json;
use axum::extract::State;
use missive_core::template::{TemplateRef, Variable};
use missive_core::{Scope, TenantId};
use missive_store::TemplateRecord;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::TenantAuth;
use super::emails::OneOrMany;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, page};
use crate::accounts::double_option;
use crate::state::AppState;
use crate::templates::edit::{self, EditError, Fields};
use crate::templates::shipped::{self, SHIPPED_AT, Shipped};
use crate::templates::{LookupError, unit_of};

impl From<EditError> for ApiError {
    fn from(err: EditError) -> Self {
        match err {
            EditError::Invalid(e) => Self::Validation(e.to_string()),
            EditError::NotFound => Self::not_found(),
            EditError::Conflict(message) => Self::Conflict(message.into()),
            EditError::Store(store) => store.into(),
        }
    }
}

impl From<LookupError> for ApiError {
    fn from(err: LookupError) -> Self {
        match err {
            LookupError::NotFound(_) => Self::not_found(),
            LookupError::Store(store) => store.into(),
            other => Self::Validation(other.to_string()),
        }
    }
}

/// `POST /v1/templates`, in Resend's shape (and `layout`, ours).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplateRequest {
    /// Unique (case-insensitively) among the tenant's templates.
    pub name: String,
    /// How sends, partials and layouts name the template; unique among the tenant's.
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    pub alias: Option<String>,
    /// The sender a send gets when it names none.
    pub from: Option<String>,
    /// A handlebars source; a send's own subject wins.
    pub subject: Option<String>,
    pub reply_to: Option<OneOrMany>,
    /// A handlebars source; `{{x}}` is HTML-escaped, `{{{x}}}` is not.
    pub html: String,
    /// A handlebars source, not escaped; empty or absent means no text part.
    pub text: Option<String>,
    #[serde(default)]
    pub variables: Vec<Variable>,
    /// The alias of a template that wraps this one at `{{{@content}}}`.
    pub layout: Option<String>,
}

/// `PATCH /v1/templates/{id}`: what it names is replaced; `null` clears an optional field.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTemplateRequest {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub alias: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub from: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub subject: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<OneOrMany>)]
    pub reply_to: Option<Option<OneOrMany>>,
    pub html: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub text: Option<Option<String>>,
    pub variables: Option<Vec<Variable>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub layout: Option<Option<String>>,
}

/// `draft` until first published.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TemplateStatus {
    Draft,
    Published,
}

/// A template: its draft (what PATCH edits) and where its published versions stand.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateView {
    /// Always `template`.
    #[schema(example = "template")]
    pub object: &'static str,
    pub id: Uuid,
    /// `null` for a shipped template.
    pub tenant_id: Option<TenantId>,
    pub name: String,
    pub alias: Option<String>,
    pub status: TemplateStatus,
    pub from: Option<String>,
    pub subject: Option<String>,
    pub reply_to: Vec<String>,
    pub html: String,
    pub text: Option<String>,
    pub variables: Vec<Variable>,
    pub layout: Option<String>,
    /// Shipped with Missive: read-only, available to every tenant.
    pub shipped: bool,
    /// The latest published version, which sends use.
    pub published_version: Option<i32>,
    /// Whether the draft changed since the latest publish.
    pub has_unpublished_changes: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub published_at: Option<OffsetDateTime>,
}

/// A template in a listing (Resend's subset).
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateListItem {
    pub id: Uuid,
    pub name: String,
    pub alias: Option<String>,
    pub status: TemplateStatus,
    pub published_version: Option<i32>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub published_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A page of the tenant's own templates, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateList {
    /// Always `list`.
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<TemplateListItem>,
    pub has_more: bool,
}

/// The answer to a create, update, publish or duplicate (Resend's).
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateRefView {
    /// Always `template`.
    #[schema(example = "template")]
    pub object: &'static str,
    pub id: Uuid,
}

/// The answer to a delete (Resend's).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedTemplate {
    /// Always `template`.
    #[schema(example = "template")]
    pub object: &'static str,
    pub id: Uuid,
    pub deleted: bool,
}

/// `POST /v1/templates/{id}/render`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderRequest {
    /// As a send's `template.variables`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: Map<String, Value>,
    /// Render the current draft (with the published partials and layouts it includes) instead of
    /// what a send would use.
    #[serde(default)]
    pub draft: bool,
}

/// What a send with these variables would carry.
#[derive(Debug, Serialize, ToSchema)]
pub struct RenderedTemplate {
    /// Always `rendered_template`.
    #[schema(example = "rendered_template")]
    pub object: &'static str,
    pub id: Uuid,
    /// The published version rendered; `null` for a draft or a shipped template.
    pub version: Option<i32>,
    pub subject: Option<String>,
    pub html: String,
    pub text: Option<String>,
}

/// Paging for `GET /v1/templates`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTemplatesQuery {
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// Templates older than this id (the last id of the previous page).
    pub after: Option<Uuid>,
    /// Templates newer than this id (the first id of the next page). With `after` too, the
    /// templates between the two.
    pub before: Option<Uuid>,
}

fn status(version: Option<i32>) -> TemplateStatus {
    if version.is_some() {
        TemplateStatus::Published
    } else {
        TemplateStatus::Draft
    }
}

fn view(record: TemplateRecord) -> Result<TemplateView, ApiError> {
    let variables = unit_of(&record.draft)?.variables;
    Ok(TemplateView {
        object: "template",
        id: record.id,
        tenant_id: Some(record.tenant_id),
        name: record.name,
        alias: record.alias,
        status: status(record.published_version),
        from: record.draft.from_address,
        subject: record.draft.subject,
        reply_to: record.draft.reply_to,
        html: record.draft.html,
        text: record.draft.text,
        variables,
        layout: record.draft.layout,
        shipped: false,
        published_version: record.published_version,
        has_unpublished_changes: record
            .published_at
            .is_none_or(|published| record.updated_at > published),
        created_at: record.created_at,
        updated_at: record.updated_at,
        published_at: record.published_at,
    })
}

fn shipped_view(shipped: &Shipped) -> TemplateView {
    TemplateView {
        object: "template",
        id: shipped.id,
        tenant_id: None,
        name: shipped.name.clone(),
        alias: Some(shipped.alias.clone()),
        status: TemplateStatus::Published,
        from: None,
        subject: shipped.unit.subject.clone(),
        reply_to: Vec::new(),
        html: shipped.unit.html.clone(),
        text: shipped.unit.text.clone(),
        variables: shipped.unit.variables.clone(),
        layout: shipped.unit.layout.clone(),
        shipped: true,
        published_version: None,
        has_unpublished_changes: false,
        created_at: SHIPPED_AT,
        updated_at: SHIPPED_AT,
        published_at: Some(SHIPPED_AT),
    }
}

/// A path's template reference; one that cannot name a template is a 404 like an unknown one.
fn reference(raw: &str) -> Result<TemplateRef, ApiError> {
    TemplateRef::parse(raw).map_err(|_| ApiError::not_found())
}

fn answer(record: &TemplateRecord) -> Json<TemplateRefView> {
    Json(TemplateRefView {
        object: "template",
        id: record.id,
    })
}

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
    auth.require(Scope::TemplatesWrite)?;
    let fields = Fields {
        name: Some(request.name),
        alias: Some(request.alias),
        from: Some(request.from),
        subject: Some(request.subject),
        reply_to: request.reply_to.map(OneOrMany::into_vec),
        html: Some(request.html),
        text: Some(request.text),
        variables: Some(request.variables),
        layout: Some(request.layout),
    };
    let record = edit::create(state.ingest.templates(), auth.tenant_id, fields).await?;
    Ok(answer(&record))
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
    auth.require(Scope::TemplatesRead)?;
    let (cursor, limit) = page(query.limit, query.after, query.before)?;
    let page = state
        .store
        .list_templates(auth.tenant_id, cursor, limit)
        .await?;
    let data = page
        .templates
        .into_iter()
        .map(|t| TemplateListItem {
            id: t.id,
            name: t.name,
            alias: t.alias,
            status: status(t.published_version),
            published_version: t.published_version,
            published_at: t.published_at,
            created_at: t.created_at,
            updated_at: t.updated_at,
        })
        .collect();
    Ok(Json(TemplateList {
        object: "list",
        data,
        has_more: page.has_more,
    }))
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
    auth.require(Scope::TemplatesRead)?;
    let reference = reference(&id)?;
    match state.store.get_template(auth.tenant_id, &reference).await {
        Ok(record) => Ok(Json(view(record)?)),
        Err(missive_store::StoreError::NotFound) => shipped::find(&reference)
            .map(|s| Json(shipped_view(s)))
            .ok_or_else(ApiError::not_found),
        Err(other) => Err(other.into()),
    }
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
    auth.require(Scope::TemplatesWrite)?;
    let reference = reference(&id)?;
    let fields = Fields {
        name: request.name,
        alias: request.alias,
        from: request.from,
        subject: request.subject,
        reply_to: request
            .reply_to
            .map(|r| r.map(OneOrMany::into_vec).unwrap_or_default()),
        html: request.html,
        text: request.text,
        variables: request.variables,
        layout: request.layout,
    };
    let record = edit::update(state.ingest.templates(), auth.tenant_id, &reference, fields).await?;
    Ok(answer(&record))
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
    auth.require(Scope::TemplatesWrite)?;
    let reference = reference(&id)?;
    let id = edit::delete(state.ingest.templates(), auth.tenant_id, &reference).await?;
    Ok(Json(DeletedTemplate {
        object: "template",
        id,
        deleted: true,
    }))
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
    auth.require(Scope::TemplatesWrite)?;
    let reference = reference(&id)?;
    let record = edit::publish(state.ingest.templates(), auth.tenant_id, &reference).await?;
    Ok(answer(&record))
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
    auth.require(Scope::TemplatesWrite)?;
    let reference = reference(&id)?;
    let record = edit::duplicate(state.ingest.templates(), auth.tenant_id, &reference).await?;
    Ok(answer(&record))
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
    auth.require(Scope::TemplatesRead)?;
    let reference = reference(&id)?;
    let ready = state
        .ingest
        .templates()
        .for_preview(auth.tenant_id, &reference, request.draft)
        .await?;
    let rendered = ready
        .compiled
        .render(&request.variables, true)
        .map_err(|e| ApiError::Validation(format!("template `{id}`: {e}")))?;
    Ok(Json(RenderedTemplate {
        object: "rendered_template",
        id: ready.id,
        version: ready.version,
        subject: rendered.subject,
        html: rendered.html,
        text: rendered.text,
    }))
}
