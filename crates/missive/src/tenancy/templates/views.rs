//! Tenants' templates as both front ends show and change them: Resend's Templates API shapes
//! (and our `render`), scopes `templates:read` and `templates:write`. Shipped templates answer by
//! alias and id to every tenant (`shipped: true`), read-only; a tenant's own template with the
//! same alias hides the shipped one.

use missive_core::template::{TemplateRef, Variable};
use missive_core::{ProjectId, Scope, TemplateId, TenantId};
use missive_store::{StoreError, TemplateRecord};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::Templates;
use super::edit::{self, EditError, Fields};
use super::shipped::{self, SHIPPED_AT, Shipped};
use super::{LookupError, unit_of};
use crate::tenancy::accounts::double_option;
use crate::tenancy::caller::Caller;
use crate::tenancy::emails::OneOrMany;
use crate::tenancy::error::ServiceError;
use crate::tenancy::page::page;

impl From<EditError> for ServiceError {
    fn from(err: EditError) -> Self {
        match err {
            EditError::Invalid(e) => Self::Invalid(e.to_string()),
            EditError::NotFound => Self::NotFound,
            EditError::Conflict(message) => Self::Conflict(message.into()),
            EditError::Store(store) => store.into(),
        }
    }
}

impl From<LookupError> for ServiceError {
    fn from(err: LookupError) -> Self {
        match err {
            LookupError::NotFound(_) => Self::NotFound,
            LookupError::Store(store) => store.into(),
            other => Self::Invalid(other.to_string()),
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
    pub id: TemplateId,
    /// `null` for a shipped template.
    pub tenant_id: Option<TenantId>,
    /// The project the template belongs to (none for a shipped one).
    pub project_id: Option<ProjectId>,
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
    pub id: TemplateId,
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
    pub id: TemplateId,
}

/// The answer to a delete (Resend's).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedTemplate {
    /// Always `template`.
    #[schema(example = "template")]
    pub object: &'static str,
    pub id: TemplateId,
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
    pub id: TemplateId,
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
    pub after: Option<TemplateId>,
    /// Templates newer than this id (the first id of the next page). With `after` too, the
    /// templates between the two.
    pub before: Option<TemplateId>,
}

fn status(version: Option<i32>) -> TemplateStatus {
    if version.is_some() {
        TemplateStatus::Published
    } else {
        TemplateStatus::Draft
    }
}

fn view(record: TemplateRecord) -> Result<TemplateView, ServiceError> {
    let variables = unit_of(&record.draft)?.variables;
    Ok(TemplateView {
        object: "template",
        id: record.id,
        tenant_id: Some(record.tenant_id),
        project_id: Some(record.project_id),
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
        project_id: None,
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

/// A reference to a template; one that cannot name a template is a 404 like an unknown one.
fn reference(raw: &str) -> Result<TemplateRef, ServiceError> {
    TemplateRef::parse(raw).map_err(|_| ServiceError::NotFound)
}

fn answer(record: &TemplateRecord) -> TemplateRefView {
    TemplateRefView {
        object: "template",
        id: record.id,
    }
}

impl Templates {
    /// Creates a template, as a draft.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a field or a source that does not hold (with line and
    /// column), an unknown partial or layout or a cycle of includes; a conflict for a name or
    /// alias in use.
    pub async fn create(
        &self,
        caller: Caller<'_>,
        request: CreateTemplateRequest,
    ) -> Result<TemplateRefView, ServiceError> {
        let project = caller.require_project(Scope::TemplatesWrite)?;
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
        let record = edit::create(self, project, fields).await?;
        Ok(answer(&record))
    }

    /// A page of the tenant's own templates, newest first.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for bad paging.
    pub async fn list(
        &self,
        caller: Caller<'_>,
        query: &ListTemplatesQuery,
    ) -> Result<TemplateList, ServiceError> {
        let project = caller.require_project(Scope::TemplatesRead)?;
        let (cursor, limit) = page(query.limit, query.after, query.before)?;
        let page = self
            .store()
            .list_templates(project.into(), cursor, limit)
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
        Ok(TemplateList {
            object: "list",
            data,
            has_more: page.has_more,
        })
    }

    /// A template by id or alias: the tenant's own, else a shipped one.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`].
    pub async fn get(&self, caller: Caller<'_>, id: &str) -> Result<TemplateView, ServiceError> {
        let project = caller.require_project(Scope::TemplatesRead)?;
        let reference = reference(id)?;
        match self.store().get_template(project.into(), &reference).await {
            Ok(record) => view(record),
            Err(StoreError::NotFound) => shipped::find(&reference)
                .map(shipped_view)
                .ok_or(ServiceError::NotFound),
            Err(other) => Err(other.into()),
        }
    }

    /// Changes a template's draft; sends keep using the published version until the next
    /// publish.
    ///
    /// # Errors
    /// As [`Templates::create`]; a conflict also for an alias others include or a shipped
    /// template.
    pub async fn update(
        &self,
        caller: Caller<'_>,
        id: &str,
        request: UpdateTemplateRequest,
    ) -> Result<TemplateRefView, ServiceError> {
        let project = caller.require_project(Scope::TemplatesWrite)?;
        let reference = reference(id)?;
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
        let record = edit::update(self, project, &reference, fields).await?;
        Ok(answer(&record))
    }

    /// Deletes a template and its versions; mail already accepted keeps what it rendered.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; a conflict for a template others include or a shipped one.
    pub async fn delete(
        &self,
        caller: Caller<'_>,
        id: &str,
    ) -> Result<DeletedTemplate, ServiceError> {
        let project = caller.require_project(Scope::TemplatesWrite)?;
        let reference = reference(id)?;
        let id = edit::delete(self, project, &reference).await?;
        Ok(DeletedTemplate {
            object: "template",
            id,
            deleted: true,
        })
    }

    /// Publishes the draft as the next version, which sends use from now on.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; a conflict for a shipped template; invalid when the draft
    /// does not build with the published partials and layouts it includes.
    pub async fn publish(
        &self,
        caller: Caller<'_>,
        id: &str,
    ) -> Result<TemplateRefView, ServiceError> {
        let project = caller.require_project(Scope::TemplatesWrite)?;
        let reference = reference(id)?;
        let record = edit::publish(self, project, &reference).await?;
        Ok(answer(&record))
    }

    /// Copies a template's draft (or a shipped template) into a new draft, without an alias.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`].
    pub async fn duplicate(
        &self,
        caller: Caller<'_>,
        id: &str,
    ) -> Result<TemplateRefView, ServiceError> {
        let project = caller.require_project(Scope::TemplatesWrite)?;
        let reference = reference(id)?;
        let record = edit::duplicate(self, project, &reference).await?;
        Ok(answer(&record))
    }

    /// Renders a template with variables exactly as a send would (or its draft, with `draft`).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; invalid for a variable missing or of the wrong type, a cap
    /// exceeded, or a template that does not build.
    pub async fn render(
        &self,
        caller: Caller<'_>,
        id: &str,
        request: &RenderRequest,
    ) -> Result<RenderedTemplate, ServiceError> {
        let project = caller.require_project(Scope::TemplatesRead)?;
        let reference = reference(id)?;
        let ready = self.for_preview(project, &reference, request.draft).await?;
        let rendered = ready
            .compiled
            .render(&request.variables, true)
            .map_err(|e| ServiceError::Invalid(format!("template `{id}`: {e}")))?;
        Ok(RenderedTemplate {
            object: "rendered_template",
            id: ready.id,
            version: ready.version,
            subject: rendered.subject,
            html: rendered.html,
            text: rendered.text,
        })
    }
}
