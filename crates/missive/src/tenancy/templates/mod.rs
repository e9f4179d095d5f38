//! Tenant templates as a service: what the accept path renders with, what the API and the
//! console show and edit ([`views`]: Resend's shapes, behind the scopes).
//!
//! - [`Templates::for_send`] finds a template's latest published version by id or alias (the
//!   tenant's own, else a [`shipped`] one), loads the partials and layouts it includes (each by
//!   alias, the tenant's published one first) and compiles them once. The result is cached per
//!   tenant and reference; a change to any template of the tenant empties that tenant's entries
//!   in every process (a NOTIFY carrying the tenant id), and the process that made the change
//!   empties its own before answering.
//! - [`edit`] creates, updates, publishes, duplicates and deletes, refusing at save an unknown
//!   partial or layout (with its line and column) and any cycle of includes, under a per-tenant
//!   lock so two concurrent saves cannot build a cycle between them.

pub mod edit;
pub mod shipped;
mod views;

pub use self::views::{
    CreateTemplateRequest, DeletedTemplate, ListTemplatesQuery, RenderRequest, RenderedTemplate,
    TemplateList, TemplateListItem, TemplateRefView, TemplateStatus, TemplateView,
    UpdateTemplateRequest,
};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use missive_core::TemplateId;
use missive_core::template::{
    Compiled, MAX_CLOSURE, MAX_INCLUDE_DEPTH, TemplateError, TemplateRef, Unit, Variable,
};
use missive_core::{ProjectRef, TenantId};
use missive_store::listen::ListenEvent;
use missive_store::{PublishedLookup, Store, StoreError, TemplateContent};

use crate::tenancy::cache::Cache;

/// The longest a compiled template is trusted, as a backstop to notifications.
const MAX_AGE: Duration = Duration::from_secs(300);
/// Compiled templates kept at most; a full cache starts afresh.
const MAX_ENTRIES: usize = 4_096;

/// A template ready to render: one version and everything it includes, compiled.
#[derive(Debug)]
pub struct Ready {
    pub id: TemplateId,
    pub name: String,
    /// The published version rendered, or `None` for a draft or a shipped template.
    pub version: Option<i32>,
    /// The template's sender, Reply-To and subject apply when a send names none.
    pub from: Option<String>,
    pub reply_to: Vec<String>,
    pub compiled: Compiled,
}

/// Why a template cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("template `{0}` not found")]
    NotFound(String),
    #[error("template `{name}` is a draft: publish it before sending with it")]
    Draft { name: String },
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Shared, cheap to clone.
#[derive(Clone, Debug)]
pub struct Templates {
    store: Store,
    cache: Arc<Cache<(ProjectRef, String), Arc<Ready>>>,
}

/// A stored draft or version as the engine takes it.
///
/// # Errors
/// [`StoreError::Corrupt`] for variables that no longer parse (they were checked when saved).
pub fn unit_of(content: &TemplateContent) -> Result<Unit, StoreError> {
    let variables: Vec<Variable> = serde_json::from_value(content.variables.clone())
        .map_err(|e| StoreError::Corrupt(format!("template variables: {e}")))?;
    Ok(Unit {
        subject: content.subject.clone(),
        html: content.html.clone(),
        text: content.text.clone(),
        variables,
        layout: content.layout.clone(),
    })
}

impl Templates {
    /// A service whose cache serves nothing until [`Templates::listen`] runs.
    #[must_use]
    pub fn new(store: Store) -> Self {
        Self {
            store,
            cache: Arc::new(Cache::new(MAX_AGE, MAX_ENTRIES)),
        }
    }

    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Takes in a template change (the `missive_templates` channel's events).
    pub fn hear(&self, event: &ListenEvent) {
        self.cache.hear_tenants(event, |(p, _)| p.tenant_id);
    }

    /// Empties this process's entries of a tenant: called after it changes one of its templates.
    pub fn forget(&self, tenant_id: TenantId) {
        self.cache.retain(|(p, _)| p.tenant_id != tenant_id);
    }

    /// The template a send names (id or alias), its latest published version compiled.
    ///
    /// # Errors
    /// Not found, a draft, a template that does not build, or a database failure.
    pub async fn for_send(
        &self,
        project: ProjectRef,
        reference: &str,
    ) -> Result<Arc<Ready>, LookupError> {
        let parsed = TemplateRef::parse(reference)
            .map_err(|_| LookupError::NotFound(reference.to_owned()))?;
        self.cache
            .get_or_load(
                (project, reference.to_owned()),
                async {
                    self.load(project, &parsed, false, reference)
                        .await
                        .map(Arc::new)
                },
                |_| true,
            )
            .await
    }

    /// A template for a preview: its draft when `draft`, else what a send would use (the
    /// published version; the draft of a template never published).
    ///
    /// # Errors
    /// As [`Templates::for_send`].
    pub async fn for_preview(
        &self,
        project: ProjectRef,
        reference: &TemplateRef,
        draft: bool,
    ) -> Result<Ready, LookupError> {
        let named = reference.to_string();
        if !draft {
            return self.load(project, reference, true, &named).await;
        }
        match self.store.get_template(project.into(), reference).await {
            Ok(record) => Ok(Ready {
                id: record.id,
                name: record.name,
                version: None,
                from: record.draft.from_address.clone(),
                reply_to: record.draft.reply_to.clone(),
                compiled: self.compile_draft(project, &record.draft).await?,
            }),
            // A shipped template has no draft but itself.
            Err(StoreError::NotFound) => self.load(project, reference, true, &named).await,
            Err(other) => Err(other.into()),
        }
    }

    /// Loads and compiles a template: the published version, or the draft when `allow_draft`
    /// and it was never published.
    async fn load(
        &self,
        project: ProjectRef,
        reference: &TemplateRef,
        allow_draft: bool,
        named: &str,
    ) -> Result<Ready, LookupError> {
        let (ready_head, root) = match self
            .store
            .published_template(project.into(), reference)
            .await?
        {
            PublishedLookup::Found(published) => {
                let published = *published;
                (
                    Head {
                        id: published.id,
                        name: published.name,
                        version: Some(published.version),
                        from: published.content.from_address.clone(),
                        reply_to: published.content.reply_to.clone(),
                    },
                    (unit_of(&published.content)?, published.content.uses),
                )
            }
            PublishedLookup::Unpublished { name } if !allow_draft => {
                return Err(LookupError::Draft { name });
            }
            PublishedLookup::Unpublished { .. } => {
                let draft = self.store.get_template(project.into(), reference).await?;
                (
                    Head {
                        id: draft.id,
                        name: draft.name,
                        version: None,
                        from: draft.draft.from_address.clone(),
                        reply_to: draft.draft.reply_to.clone(),
                    },
                    (unit_of(&draft.draft)?, draft.draft.uses),
                )
            }
            PublishedLookup::Missing => {
                let shipped = shipped::find(reference)
                    .ok_or_else(|| LookupError::NotFound(named.to_owned()))?;
                (
                    Head {
                        id: shipped.id,
                        name: shipped.name.clone(),
                        version: None,
                        from: None,
                        reply_to: Vec::new(),
                    },
                    (shipped.unit.clone(), shipped.uses.clone()),
                )
            }
        };
        let (unit, uses) = root;
        let available = self.includes(project, uses).await?;
        let compiled = Compiled::build(&unit, &available)?;
        Ok(Ready {
            id: ready_head.id,
            name: ready_head.name,
            version: ready_head.version,
            from: ready_head.from,
            reply_to: ready_head.reply_to,
            compiled,
        })
    }

    /// A draft, compiled with the published templates it includes, as a preview renders it.
    ///
    /// # Errors
    /// As [`Templates::for_send`].
    pub async fn compile_draft(
        &self,
        project: ProjectRef,
        content: &TemplateContent,
    ) -> Result<Compiled, LookupError> {
        let unit = unit_of(content)?;
        let available = self.includes(project, content.uses.clone()).await?;
        Ok(Compiled::build(&unit, &available)?)
    }

    /// The published templates (the tenant's, else shipped) that `uses` reaches, by alias, one
    /// level per round trip. An alias found nowhere is left out, for the build to name.
    async fn includes(
        &self,
        project: ProjectRef,
        uses: Vec<String>,
    ) -> Result<HashMap<String, Unit>, LookupError> {
        let mut available: HashMap<String, Unit> = HashMap::new();
        let mut pending = uses;
        for _ in 0..=MAX_INCLUDE_DEPTH {
            pending.sort();
            pending.dedup();
            pending.retain(|alias| !available.contains_key(alias));
            if pending.is_empty() || available.len() > MAX_CLOSURE {
                break;
            }
            let mut next = Vec::new();
            for published in self
                .store
                .published_by_alias(project.into(), &pending)
                .await?
            {
                let Some(alias) = published.alias.clone() else {
                    continue;
                };
                next.extend(published.content.uses.iter().cloned());
                available.insert(alias, unit_of(&published.content)?);
            }
            for alias in &pending {
                if !available.contains_key(alias)
                    && let Some(shipped) = shipped::by_alias(alias)
                {
                    next.extend(shipped.uses.iter().cloned());
                    available.insert(alias.clone(), shipped.unit.clone());
                }
            }
            pending = next;
        }
        Ok(available)
    }
}

/// What a [`Ready`] says about the template beside its compiled sources.
struct Head {
    id: TemplateId,
    name: String,
    version: Option<i32>,
    from: Option<String>,
    reply_to: Vec<String>,
}
