//! Tenant webhooks: the endpoints tenants register (this module), and, as the outbox lands, the
//! dispatcher that signs and posts their events.
//!
//! An endpoint's URL passes the target policy ([`crate::targets`]) when it is saved; its signing
//! secret is generated here, sealed with `MISSIVE_SECRET_KEY` for the tenant, and shown to the
//! tenant whenever it reads the endpoint (as Resend does). A rotation keeps the previous secret
//! signing beside the new one for `MISSIVE_WEBHOOK_SECRET_OVERLAP_SECS`.

pub mod client;
pub mod dispatcher;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use missive_core::sealed::{Sealed, Sealer};
use missive_core::webhook::SigningSecret;
use missive_core::{TenantId, WebhookEventType};
use missive_store::{
    Cursor, NewWebhook, SealedSecret, Store, StoreError, WebhookPage, WebhookPatch, WebhookRecord,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::targets::{TargetError, Targets};

/// Most event types one endpoint may list (every type Missive reports).
const MAX_EVENTS: usize = WebhookEventType::ALL.len();

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

/// An endpoint as the tenant sees it, with its current secret opened.
#[derive(Debug)]
pub struct Endpoint {
    pub record: WebhookRecord,
    pub signing_secret: String,
}

/// What an update asks for.
#[derive(Debug, Default)]
pub struct EndpointChange {
    pub endpoint: Option<String>,
    pub events: Option<Vec<String>>,
    pub status: Option<String>,
}

/// Manages tenants' endpoints.
#[derive(Clone, Debug)]
pub struct Webhooks {
    store: Store,
    sealer: Option<Arc<Sealer>>,
    targets: Targets,
    overlap: Duration,
}

/// The event types a request lists: Resend's names, each once, in a fixed order.
///
/// # Errors
/// [`WebhookError::Invalid`] for an empty list or a type Missive does not report.
pub fn event_types(given: &[String]) -> Result<Vec<String>, WebhookError> {
    if given.is_empty() || given.len() > 4 * MAX_EVENTS {
        return Err(WebhookError::Invalid(format!(
            "events: from 1 to {MAX_EVENTS} event types"
        )));
    }
    let mut types = BTreeSet::new();
    for name in given {
        let kind = name
            .parse::<WebhookEventType>()
            .map_err(|e| WebhookError::Invalid(format!("events: {e}")))?;
        types.insert(kind);
    }
    Ok(types.into_iter().map(|t| t.as_str().to_owned()).collect())
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

    fn endpoint(
        &self,
        tenant_id: TenantId,
        record: WebhookRecord,
    ) -> Result<Endpoint, WebhookError> {
        let signing_secret = self.open(tenant_id, &record.secret())?;
        Ok(Endpoint {
            record,
            signing_secret,
        })
    }

    /// Registers an endpoint, enabled, with a new secret.
    ///
    /// # Errors
    /// [`WebhookError::Invalid`] or [`WebhookError::Target`] naming the field.
    pub async fn create(
        &self,
        tenant_id: TenantId,
        endpoint: &str,
        events: &[String],
    ) -> Result<Endpoint, WebhookError> {
        let events = event_types(events)?;
        self.sealer()?;
        self.targets.vet(endpoint).await?;
        let secret = self.seal(tenant_id, &SigningSecret::generate())?;
        let record = self
            .store
            .insert_webhook(
                tenant_id,
                &NewWebhook {
                    id: Uuid::now_v7(),
                    endpoint,
                    events: &events,
                    secret: &secret,
                },
            )
            .await?;
        tracing::info!(%tenant_id, webhook_id = %record.id, "webhook created");
        self.endpoint(tenant_id, record)
    }

    /// One endpoint, with its current secret.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for another tenant's or an unknown id.
    pub async fn get(&self, tenant_id: TenantId, id: Uuid) -> Result<Endpoint, WebhookError> {
        let record = self.store.get_webhook(tenant_id, id).await?;
        self.endpoint(tenant_id, record)
    }

    /// A page of the tenant's endpoints (their secrets stay sealed).
    ///
    /// # Errors
    /// Database failures.
    pub async fn list(
        &self,
        tenant_id: TenantId,
        cursor: Cursor,
        limit: i64,
    ) -> Result<WebhookPage, WebhookError> {
        Ok(self.store.list_webhooks(tenant_id, cursor, limit).await?)
    }

    /// Changes an endpoint's URL, event types or status.
    ///
    /// # Errors
    /// [`WebhookError::Invalid`], [`WebhookError::Target`], or not found.
    pub async fn update(
        &self,
        tenant_id: TenantId,
        id: Uuid,
        change: EndpointChange,
    ) -> Result<WebhookRecord, WebhookError> {
        let events = change.events.as_deref().map(event_types).transpose()?;
        if let Some(status) = &change.status
            && !matches!(status.as_str(), "enabled" | "disabled")
        {
            return Err(WebhookError::Invalid(
                "status: `enabled` or `disabled`".to_owned(),
            ));
        }
        if let Some(endpoint) = &change.endpoint {
            self.targets.vet(endpoint).await?;
        }
        let record = self
            .store
            .update_webhook(
                tenant_id,
                id,
                &WebhookPatch {
                    endpoint: change.endpoint.as_deref(),
                    events: events.as_deref(),
                    status: change.status.as_deref(),
                },
            )
            .await?;
        tracing::info!(%tenant_id, webhook_id = %id, "webhook updated");
        Ok(record)
    }

    /// A new secret; the old one keeps signing beside it for the configured overlap.
    ///
    /// # Errors
    /// Not found, or no secret key.
    pub async fn rotate(&self, tenant_id: TenantId, id: Uuid) -> Result<Endpoint, WebhookError> {
        let secret = self.seal(tenant_id, &SigningSecret::generate())?;
        let until = OffsetDateTime::now_utc() + self.overlap;
        let record = self
            .store
            .rotate_webhook_secret(tenant_id, id, &secret, until)
            .await?;
        tracing::info!(%tenant_id, webhook_id = %id, "webhook signing secret rotated");
        self.endpoint(tenant_id, record)
    }

    /// Deletes an endpoint.
    ///
    /// # Errors
    /// Not found.
    pub async fn delete(&self, tenant_id: TenantId, id: Uuid) -> Result<(), WebhookError> {
        self.store.delete_webhook(tenant_id, id).await?;
        tracing::info!(%tenant_id, webhook_id = %id, "webhook deleted");
        Ok(())
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
