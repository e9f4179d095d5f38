//! Template rows: the draft each template row holds, the versions each publish freezes, and the
//! reads a render needs (a published version by id or alias, and the published templates named
//! by aliases, for partials and layouts).
//!
//! Changes go through [`TemplateEdit`], a transaction holding a per-tenant lock, so the check that
//! no template includes itself (which reads every template of the tenant) and the write it allows
//! cannot interleave with another change of the same tenant.

use missive_core::template::TemplateRef;
use missive_core::{ProjectId, ProjectRef, Reach, TemplateId, TenantId};
use sqlx::{PgConnection, Postgres, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::checked::records;
use crate::cursor::{fetch_page, finish_page};
use crate::error::map_unique;
use crate::{Cursor, Store, StoreError};

const TEMPLATE_CONFLICTS: &[(&str, &str)] = &[
    (
        "templates_name_key",
        "a template with this name already exists",
    ),
    (
        "templates_alias_key",
        "a template with this alias already exists",
    ),
];

/// Advisory lock namespace of template changes (`tmpl`), beside the tenant id's hash.
const TEMPLATE_LOCK: i32 = 0x746d_706c;

/// Calls `$then!` with `$before`, the columns of a [`TemplateRow`], and `$after`.
macro_rules! template_columns {
    ($then:ident!($($before:tt)*) $($after:tt)*) => {
        $then!(
            $($before)*
            r#"id AS "id: TemplateId", tenant_id AS "tenant_id: TenantId",
               project_id AS "project_id: ProjectId", name, alias,
               from_address, subject, reply_to, html, text, variables, layout, uses,
               published_version, published_at, created_at, updated_at"#
            $($after)*
        )
    };
}

/// A template as stored: its draft, and where its published versions stand.
#[derive(Clone, Debug)]
pub struct TemplateRecord {
    pub id: TemplateId,
    pub tenant_id: TenantId,
    pub project_id: ProjectId,
    pub name: String,
    pub alias: Option<String>,
    pub draft: TemplateContent,
    pub published_version: Option<i32>,
    pub published_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// [`TemplateRecord`] as read: the draft's columns beside the template's.
struct TemplateRow {
    id: TemplateId,
    tenant_id: TenantId,
    project_id: ProjectId,
    name: String,
    alias: Option<String>,
    from_address: Option<String>,
    subject: Option<String>,
    reply_to: Vec<String>,
    html: String,
    text: Option<String>,
    variables: serde_json::Value,
    layout: Option<String>,
    uses: Vec<String>,
    published_version: Option<i32>,
    published_at: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl From<TemplateRow> for TemplateRecord {
    fn from(row: TemplateRow) -> Self {
        Self {
            id: row.id,
            tenant_id: row.tenant_id,
            project_id: row.project_id,
            name: row.name,
            alias: row.alias,
            draft: TemplateContent {
                from_address: row.from_address,
                subject: row.subject,
                reply_to: row.reply_to,
                html: row.html,
                text: row.text,
                variables: row.variables,
                layout: row.layout,
                uses: row.uses,
            },
            published_version: row.published_version,
            published_at: row.published_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// What a draft or a published version holds; validated before it is written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TemplateContent {
    pub from_address: Option<String>,
    pub subject: Option<String>,
    pub reply_to: Vec<String>,
    pub html: String,
    pub text: Option<String>,
    /// The declared variables, in Resend's shape.
    pub variables: serde_json::Value,
    /// The alias of the layout.
    pub layout: Option<String>,
    /// Aliases the sources include, and the layout's.
    pub uses: Vec<String>,
}

/// A published version, with the template's name and alias.
#[derive(Clone, Debug)]
pub struct PublishedTemplate {
    pub id: TemplateId,
    pub name: String,
    pub alias: Option<String>,
    pub version: i32,
    pub content: TemplateContent,
}

/// [`PublishedTemplate`] as read.
struct PublishedRow {
    id: TemplateId,
    name: String,
    alias: Option<String>,
    version: i32,
    from_address: Option<String>,
    subject: Option<String>,
    reply_to: Vec<String>,
    html: String,
    text: Option<String>,
    variables: serde_json::Value,
    layout: Option<String>,
    uses: Vec<String>,
}

impl From<PublishedRow> for PublishedTemplate {
    fn from(row: PublishedRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            alias: row.alias,
            version: row.version,
            content: TemplateContent {
                from_address: row.from_address,
                subject: row.subject,
                reply_to: row.reply_to,
                html: row.html,
                text: row.text,
                variables: row.variables,
                layout: row.layout,
                uses: row.uses,
            },
        }
    }
}

/// What a send's reference to a template finds.
#[derive(Clone, Debug)]
pub enum PublishedLookup {
    Found(Box<PublishedTemplate>),
    /// The template exists but was never published.
    Unpublished {
        name: String,
    },
    Missing,
}

/// One template in the include graph: what its draft and its published version include.
#[derive(Clone, Debug)]
pub struct TemplateNode {
    pub id: TemplateId,
    pub name: String,
    pub alias: Option<String>,
    pub uses: Vec<String>,
}

/// A page of templates, newest first.
#[derive(Debug)]
pub struct TemplatePage {
    pub templates: Vec<TemplateRecord>,
    pub has_more: bool,
}

fn by_reference(reference: &TemplateRef) -> (Option<Uuid>, Option<&str>) {
    match reference {
        TemplateRef::Id(id) => (Some(id.as_uuid()), None),
        TemplateRef::Alias(alias) => (None, Some(alias.as_str())),
    }
}

impl Store {
    /// A template's draft by id or alias.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], also for another tenant's template.
    pub async fn get_template(
        &self,
        reach: Reach,
        reference: &TemplateRef,
    ) -> Result<TemplateRecord, StoreError> {
        let tenant_id = reach.tenant_id;
        self.confined_read(reach, async |conn| {
            select_template(conn, tenant_id, reference).await
        })
        .await
    }

    /// One page of the tenant's templates, newest first.
    ///
    /// # Errors
    /// Database failures.
    pub async fn list_templates(
        &self,
        reach: Reach,
        cursor: Cursor,
        limit: i64,
    ) -> Result<TemplatePage, StoreError> {
        let tenant_id = reach.tenant_id;
        let rows = self
            .confined_read(reach, async |conn| {
                Ok(template_columns!(
                    fetch_page!(&mut *conn, TemplateRow,),
                    "templates",
                    "",
                    tenant_id,
                    cursor,
                    limit,
                ))
            })
            .await?;
        let (rows, has_more) = finish_page(rows, cursor, limit);
        let templates = rows.into_iter().map(TemplateRecord::from).collect();
        Ok(TemplatePage {
            templates,
            has_more,
        })
    }

    /// The latest published version of a template, by id or alias.
    ///
    /// # Errors
    /// Database failures.
    pub async fn published_template(
        &self,
        reach: Reach,
        reference: &TemplateRef,
    ) -> Result<PublishedLookup, StoreError> {
        let tenant_id = reach.tenant_id;
        let (id, alias) = by_reference(reference);
        self.confined_read(reach, async |conn| {
            let found = sqlx::query!(
                "SELECT id, name, published_version FROM templates
                 WHERE tenant_id = $1 AND (id = $2 OR alias = $3)",
                tenant_id.as_uuid(),
                id,
                alias,
            )
            .fetch_optional(&mut *conn)
            .await?;
            let Some(found) = found else {
                return Ok(PublishedLookup::Missing);
            };
            if found.published_version.is_none() {
                return Ok(PublishedLookup::Unpublished { name: found.name });
            }
            let mut published = published_where(conn, tenant_id, Some(&[found.id]), None).await?;
            // Deleted between the two reads: as if it never was.
            Ok(published.pop().map_or(PublishedLookup::Missing, |found| {
                PublishedLookup::Found(Box::new(found))
            }))
        })
        .await
    }

    /// The latest published versions of the tenant's templates with these aliases (those that
    /// have one).
    ///
    /// # Errors
    /// Database failures.
    pub async fn published_by_alias(
        &self,
        reach: Reach,
        aliases: &[String],
    ) -> Result<Vec<PublishedTemplate>, StoreError> {
        let tenant_id = reach.tenant_id;
        self.confined_read(reach, async |conn| {
            published_where(conn, tenant_id, None, Some(aliases)).await
        })
        .await
    }

    /// Starts a change of one project's templates: a transaction, confined to the project, that
    /// holds the tenant's template lock until it commits or is dropped. New templates land in
    /// the project.
    ///
    /// # Errors
    /// Database failures.
    pub async fn edit_templates(&self, project: ProjectRef) -> Result<TemplateEdit, StoreError> {
        let tenant_id = project.tenant_id;
        let mut tx = self.begin_for(project).await?;
        sqlx::query!(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            TEMPLATE_LOCK,
            tenant_id.to_string(),
        )
        .execute(&mut *tx)
        .await?;
        Ok(TemplateEdit { tx, tenant_id })
    }
}

/// A template's draft by id or alias.
async fn select_template(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    reference: &TemplateRef,
) -> Result<TemplateRecord, StoreError> {
    let (id, alias) = by_reference(reference);
    template_columns!(
        records!(TemplateRow, "SELECT ",),
        " FROM templates WHERE tenant_id = $1 AND (id = $2 OR alias = $3)",
        tenant_id.as_uuid(),
        id,
        alias,
    )
    .fetch_optional(conn)
    .await?
    .map(TemplateRecord::from)
    .ok_or(StoreError::NotFound)
}

async fn published_where(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    ids: Option<&[Uuid]>,
    aliases: Option<&[String]>,
) -> Result<Vec<PublishedTemplate>, StoreError> {
    let rows = sqlx::query_as!(
        PublishedRow,
        r#"SELECT t.id AS "id: TemplateId", t.name, t.alias, v.version, v.from_address,
                  v.subject, v.reply_to, v.html, v.text, v.variables, v.layout, v.uses
           FROM templates t
           JOIN template_versions v
             ON v.tenant_id = t.tenant_id AND v.template_id = t.id
                AND v.version = t.published_version
           WHERE t.tenant_id = $1 AND (t.id = ANY($2) OR t.alias = ANY($3))"#,
        tenant_id.as_uuid(),
        ids.unwrap_or_default(),
        aliases.unwrap_or_default(),
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(PublishedTemplate::from).collect())
}

/// A change of one tenant's templates, under its lock; nothing is written until [`commit`].
///
/// [`commit`]: TemplateEdit::commit
#[derive(Debug)]
pub struct TemplateEdit {
    tx: Transaction<'static, Postgres>,
    tenant_id: TenantId,
}

impl TemplateEdit {
    /// Every template of the tenant with what its draft and its published version include.
    ///
    /// # Errors
    /// Database failures.
    pub async fn graph(&mut self) -> Result<Vec<TemplateNode>, StoreError> {
        Ok(sqlx::query_as!(
            TemplateNode,
            r#"SELECT t.id AS "id: TemplateId", t.name, t.alias,
                      ARRAY(SELECT DISTINCT u FROM unnest(t.uses || coalesce(v.uses, '{}')) AS u)
                          AS "uses!"
               FROM templates t
               LEFT JOIN template_versions v
                      ON v.tenant_id = t.tenant_id AND v.template_id = t.id
                         AND v.version = t.published_version
               WHERE t.tenant_id = $1"#,
            self.tenant_id.as_uuid(),
        )
        .fetch_all(&mut *self.tx)
        .await?)
    }

    /// A template's draft, by id or alias.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn get(&mut self, reference: &TemplateRef) -> Result<TemplateRecord, StoreError> {
        select_template(&mut self.tx, self.tenant_id, reference).await
    }

    /// Creates a template (a draft).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] for a name or alias the tenant already uses.
    pub async fn insert(
        &mut self,
        id: TemplateId,
        name: &str,
        alias: Option<&str>,
        draft: &TemplateContent,
    ) -> Result<TemplateRecord, StoreError> {
        template_columns!(
            records!(
                TemplateRow,
                "INSERT INTO templates (id, tenant_id, name, alias, from_address, subject,
                                        reply_to, html, text, variables, layout, uses)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 RETURNING ",
            ),
            "",
            id.as_uuid(),
            self.tenant_id.as_uuid(),
            name,
            alias,
            draft.from_address.as_deref(),
            draft.subject.as_deref(),
            &draft.reply_to,
            &draft.html,
            draft.text.as_deref(),
            &draft.variables,
            draft.layout.as_deref(),
            &draft.uses,
        )
        .fetch_one(&mut *self.tx)
        .await
        .map(TemplateRecord::from)
        .map_err(|e| map_unique(e, TEMPLATE_CONFLICTS))
    }

    /// Replaces a template's name, alias and draft.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], or [`StoreError::Conflict`] for a name or alias in use.
    pub async fn update(
        &mut self,
        id: TemplateId,
        name: &str,
        alias: Option<&str>,
        draft: &TemplateContent,
    ) -> Result<TemplateRecord, StoreError> {
        template_columns!(
            records!(
                TemplateRow,
                "UPDATE templates SET name = $3, alias = $4, from_address = $5, subject = $6,
                        reply_to = $7, html = $8, text = $9, variables = $10, layout = $11,
                        uses = $12, updated_at = now()
                 WHERE tenant_id = $1 AND id = $2
                 RETURNING ",
            ),
            "",
            self.tenant_id.as_uuid(),
            id.as_uuid(),
            name,
            alias,
            draft.from_address.as_deref(),
            draft.subject.as_deref(),
            &draft.reply_to,
            &draft.html,
            draft.text.as_deref(),
            &draft.variables,
            draft.layout.as_deref(),
            &draft.uses,
        )
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(|e| map_unique(e, TEMPLATE_CONFLICTS))?
        .map(TemplateRecord::from)
        .ok_or(StoreError::NotFound)
    }

    /// Freezes the draft as the next published version.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn publish(&mut self, id: TemplateId) -> Result<TemplateRecord, StoreError> {
        let record = template_columns!(
            records!(
                TemplateRow,
                "UPDATE templates
                 SET published_version = coalesce(published_version, 0) + 1,
                     published_at = now(), updated_at = now()
                 WHERE tenant_id = $1 AND id = $2
                 RETURNING ",
            ),
            "",
            self.tenant_id.as_uuid(),
            id.as_uuid(),
        )
        .fetch_optional(&mut *self.tx)
        .await?
        .map(TemplateRecord::from)
        .ok_or(StoreError::NotFound)?;
        sqlx::query!(
            "INSERT INTO template_versions (template_id, version, tenant_id, project_id,
                 from_address, subject, reply_to, html, text, variables, layout, uses,
                 published_at)
             SELECT id, published_version, tenant_id, project_id, from_address, subject,
                    reply_to, html, text, variables, layout, uses, published_at
             FROM templates WHERE tenant_id = $1 AND id = $2",
            self.tenant_id.as_uuid(),
            id.as_uuid(),
        )
        .execute(&mut *self.tx)
        .await?;
        Ok(record)
    }

    /// Deletes a template and its versions.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn delete(&mut self, id: TemplateId) -> Result<(), StoreError> {
        let deleted = sqlx::query!(
            "DELETE FROM templates WHERE tenant_id = $1 AND id = $2",
            self.tenant_id.as_uuid(),
            id.as_uuid(),
        )
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Makes the change visible (and notifies every process's cache).
    ///
    /// # Errors
    /// Database failures; nothing is changed then.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}
