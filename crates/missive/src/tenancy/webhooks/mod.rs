//! Tenants' webhook endpoints and their events: what they register, read, change, rotate and
//! replay (scope `webhooks:manage`). The dispatcher that signs and posts their events is a queue
//! user ([`crate::queue::webhooks`]); it opens the secrets sealed here.
//!
//! An endpoint's URL passes the target policy ([`crate::net::targets`]) when it is saved; its
//! signing secret is generated here, sealed with `MISSIVE_SECRET_KEY` for the tenant, and shown
//! to the tenant whenever it reads the endpoint (as Resend does). A rotation keeps the previous
//! secret signing beside the new one for `MISSIVE_WEBHOOK_SECRET_OVERLAP_SECS`.

mod events;
mod views;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use missive_core::sealed::{Sealed, Sealer};
use missive_core::webhook::SigningSecret;
use missive_core::{Scope, TenantId, WebhookEventType, WebhookId};
use missive_store::{NewWebhook, SealedSecret, Store, StoreError, WebhookPatch, WebhookRecord};
use time::OffsetDateTime;

pub use self::views::{
    CreateWebhookRequest, DeletedWebhook, ListWebhookEventsQuery, ListWebhooksQuery,
    UpdateWebhookRequest, WebhookAttemptList, WebhookAttemptView, WebhookEventList,
    WebhookEventRefView, WebhookEventView, WebhookList, WebhookRefView, WebhookSecretView,
    WebhookView,
};
use crate::net::targets::{TargetError, Targets};
use crate::tenancy::caller::Caller;
use crate::tenancy::error::ServiceError;
use crate::tenancy::page::page;

/// Most event types one endpoint may list (every type Missive reports).
const MAX_EVENTS: usize = WebhookEventType::ALL.len();

/// Why an endpoint could not be saved, or its secret used.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Invalid(String),
    #[error("endpoint: {0}")]
    Target(#[from] TargetError),
    #[error("webhooks need MISSIVE_SECRET_KEY to store their signing secrets")]
    NoSecretKey,
    #[error("a stored signing secret does not open: {0}")]
    Sealed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<WebhookError> for ServiceError {
    fn from(err: WebhookError) -> Self {
        match err {
            WebhookError::Invalid(_) | WebhookError::Target(_) => Self::Invalid(err.to_string()),
            WebhookError::NoSecretKey => Self::Unavailable(err.to_string()),
            WebhookError::Sealed(_) => Self::Internal(err.to_string()),
            WebhookError::Store(store) => store.into(),
        }
    }
}

/// Manages tenants' endpoints.
#[derive(Clone, Debug)]
pub struct Webhooks {
    store: Store,
    sealer: Option<Arc<Sealer>>,
    targets: Targets,
    overlap: Duration,
}

/// The event types a request lists, each once, in a fixed order.
///
/// # Errors
/// [`WebhookError::Invalid`] for an empty list or one far longer than the types there are.
pub fn event_types(given: &[WebhookEventType]) -> Result<Vec<WebhookEventType>, WebhookError> {
    if given.is_empty() || given.len() > 4 * MAX_EVENTS {
        return Err(WebhookError::Invalid(format!(
            "events: from 1 to {MAX_EVENTS} event types"
        )));
    }
    let types: BTreeSet<WebhookEventType> = given.iter().copied().collect();
    Ok(types.into_iter().collect())
}

/// An endpoint as shown; its secret only when one endpoint is read.
fn view(record: WebhookRecord, signing_secret: Option<String>) -> WebhookView {
    WebhookView {
        object: "webhook",
        id: record.id,
        tenant_id: record.tenant_id,
        project_id: record.project_id,
        status: record.status,
        endpoint: record.endpoint,
        events: record.events,
        disabled_reason: record.disabled_reason,
        signing_secret,
        created_at: record.created_at,
    }
}

impl Webhooks {
    #[must_use]
    pub fn new(
        store: Store,
        sealer: Option<Arc<Sealer>>,
        targets: Targets,
        overlap: Duration,
    ) -> Self {
        Self {
            store,
            sealer,
            targets,
            overlap,
        }
    }

    /// The target policy endpoints are checked against.
    #[must_use]
    pub const fn targets(&self) -> &Targets {
        &self.targets
    }

    fn sealer(&self) -> Result<&Sealer, WebhookError> {
        self.sealer.as_deref().ok_or(WebhookError::NoSecretKey)
    }

    fn seal(
        &self,
        tenant_id: TenantId,
        secret: &SigningSecret,
    ) -> Result<SealedSecret, WebhookError> {
        let sealed = self
            .sealer()?
            .seal(tenant_id.as_uuid().as_bytes(), secret.expose().as_bytes());
        Ok(SealedSecret {
            key_id: sealed.key_id,
            bytes: sealed.bytes,
        })
    }

    /// Opens a stored secret of the tenant's.
    ///
    /// # Errors
    /// [`WebhookError::NoSecretKey`], or [`WebhookError::Sealed`] when it does not open.
    pub fn open(&self, tenant_id: TenantId, secret: &SealedSecret) -> Result<String, WebhookError> {
        let opened = self
            .sealer()?
            .open(
                tenant_id.as_uuid().as_bytes(),
                &Sealed {
                    key_id: secret.key_id.clone(),
                    bytes: secret.bytes.clone(),
                },
            )
            .map_err(|e| WebhookError::Sealed(e.to_string()))?;
        String::from_utf8(opened).map_err(|_| WebhookError::Sealed("not UTF-8".to_owned()))
    }

    /// An endpoint's id with its current secret opened.
    fn secret_view(&self, record: &WebhookRecord) -> Result<WebhookSecretView, WebhookError> {
        Ok(WebhookSecretView {
            object: "webhook",
            id: record.id,
            signing_secret: self.open(record.tenant_id, &record.secret())?,
        })
    }

    /// Registers an endpoint, enabled, with a new secret.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] naming the field (an endpoint the target policy refuses
    /// included); [`ServiceError::Unavailable`] without `MISSIVE_SECRET_KEY`.
    pub async fn create(
        &self,
        caller: Caller<'_>,
        request: &CreateWebhookRequest,
    ) -> Result<WebhookSecretView, ServiceError> {
        let project = caller.require_project(Scope::WebhooksManage)?;
        let tenant_id = project.tenant_id;
        let events = event_types(&request.events)?;
        self.sealer()?;
        self.targets
            .vet(&request.endpoint)
            .await
            .map_err(WebhookError::from)?;
        let secret = self.seal(tenant_id, &SigningSecret::generate())?;
        let record = self
            .store
            .insert_webhook(
                project,
                &NewWebhook {
                    id: WebhookId::new(),
                    endpoint: &request.endpoint,
                    events: &events,
                    secret: &secret,
                },
            )
            .await?;
        tracing::info!(%tenant_id, webhook_id = %record.id, "webhook created");
        Ok(self.secret_view(&record)?)
    }

    /// One endpoint, with its current secret.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for another tenant's or an unknown id.
    pub async fn get(
        &self,
        caller: Caller<'_>,
        id: WebhookId,
    ) -> Result<WebhookView, ServiceError> {
        let reach = caller.require_reach(Scope::WebhooksManage)?;
        let tenant_id = reach.tenant_id;
        let record = self.store.get_webhook(reach, id).await?;
        let secret = self.open(tenant_id, &record.secret())?;
        Ok(view(record, Some(secret)))
    }

    /// A page of the tenant's endpoints, newest first (their secrets stay sealed).
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a bad page size.
    pub async fn list(
        &self,
        caller: Caller<'_>,
        query: &ListWebhooksQuery,
    ) -> Result<WebhookList, ServiceError> {
        let reach = caller.require_reach(Scope::WebhooksManage)?;
        let (cursor, limit) = page(query.limit, query.after, query.before)?;
        let page = self.store.list_webhooks(reach, cursor, limit).await?;
        Ok(WebhookList {
            object: "list",
            data: page.webhooks.into_iter().map(|w| view(w, None)).collect(),
            has_more: page.has_more,
        })
    }

    /// Changes an endpoint's URL, event types or status.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] (another id than the path's included), or not found.
    pub async fn update(
        &self,
        caller: Caller<'_>,
        id: WebhookId,
        request: &UpdateWebhookRequest,
    ) -> Result<WebhookRefView, ServiceError> {
        let reach = caller.require_reach(Scope::WebhooksManage)?;
        let tenant_id = reach.tenant_id;
        if request.webhook_id.is_some_and(|given| given != id) {
            return Err(ServiceError::Invalid(
                "webhook_id: not the id in the path".to_owned(),
            ));
        }
        let events = request.events.as_deref().map(event_types).transpose()?;
        if let Some(endpoint) = &request.endpoint {
            self.targets
                .vet(endpoint)
                .await
                .map_err(WebhookError::from)?;
        }
        let record = self
            .store
            .update_webhook(
                reach,
                id,
                &WebhookPatch {
                    endpoint: request.endpoint.as_deref(),
                    events: events.as_deref(),
                    status: request.status,
                },
            )
            .await?;
        tracing::info!(%tenant_id, webhook_id = %id, "webhook updated");
        Ok(WebhookRefView {
            object: "webhook",
            id: record.id,
        })
    }

    /// A new secret; the old one keeps signing beside it for the configured overlap.
    ///
    /// # Errors
    /// Not found, or no secret key.
    pub async fn rotate(
        &self,
        caller: Caller<'_>,
        id: WebhookId,
    ) -> Result<WebhookSecretView, ServiceError> {
        let reach = caller.require_reach(Scope::WebhooksManage)?;
        let tenant_id = reach.tenant_id;
        let secret = self.seal(tenant_id, &SigningSecret::generate())?;
        let until = OffsetDateTime::now_utc() + self.overlap;
        let record = self
            .store
            .rotate_webhook_secret(reach, id, &secret, until)
            .await?;
        tracing::info!(%tenant_id, webhook_id = %id, "webhook signing secret rotated");
        Ok(self.secret_view(&record)?)
    }

    /// Deletes an endpoint.
    ///
    /// # Errors
    /// Not found.
    pub async fn delete(
        &self,
        caller: Caller<'_>,
        id: WebhookId,
    ) -> Result<DeletedWebhook, ServiceError> {
        let reach = caller.require_reach(Scope::WebhooksManage)?;
        let tenant_id = reach.tenant_id;
        self.store.delete_webhook(reach, id).await?;
        tracing::info!(%tenant_id, webhook_id = %id, "webhook deleted");
        Ok(DeletedWebhook {
            object: "webhook",
            id,
            deleted: true,
        })
    }

    /// The secrets a delivery signs with: the current one, and the previous one while its
    /// rotation's overlap lasts (the caller decides that).
    ///
    /// # Errors
    /// When a stored secret does not open.
    pub fn open_secrets(
        &self,
        tenant_id: TenantId,
        current: &SealedSecret,
        previous: Option<&SealedSecret>,
    ) -> Result<Vec<SigningSecret>, WebhookError> {
        std::iter::once(current)
            .chain(previous)
            .map(|sealed| {
                let text = self.open(tenant_id, sealed)?;
                SigningSecret::parse(&text).map_err(|e| WebhookError::Sealed(e.to_string()))
            })
            .collect()
    }
}
