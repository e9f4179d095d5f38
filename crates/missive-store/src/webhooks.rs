//! Tenant webhook endpoints: their URL, the event types they take, their status and their sealed
//! signing secrets (the current one, and the previous one during a rotation's overlap).

use missive_core::{
    ProjectId, ProjectRef, Reach, TenantId, WebhookEventType, WebhookId, WebhookStatus,
};
use time::OffsetDateTime;

use crate::checked::records;
use crate::cursor::{fetch_page, finish_page};
use crate::{Cursor, Store, StoreError};

/// A secret as stored: sealed bytes and the id of the key that sealed them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSecret {
    pub key_id: String,
    pub bytes: Vec<u8>,
}

/// One endpoint.
#[derive(Clone, Debug)]
pub struct WebhookRecord {
    pub tenant_id: TenantId,
    pub project_id: ProjectId,
    pub id: WebhookId,
    pub endpoint: String,
    pub events: Vec<WebhookEventType>,
    pub status: WebhookStatus,
    pub disabled_reason: Option<String>,
    pub secret_key_id: String,
    pub secret: Vec<u8>,
    pub previous_secret_key_id: Option<String>,
    pub previous_secret: Option<Vec<u8>>,
    pub previous_secret_expires_at: Option<OffsetDateTime>,
    pub last_success_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl WebhookRecord {
    /// The current secret.
    #[must_use]
    pub fn secret(&self) -> SealedSecret {
        SealedSecret {
            key_id: self.secret_key_id.clone(),
            bytes: self.secret.clone(),
        }
    }

    /// The previous secret, while its overlap lasts at `now`.
    #[must_use]
    pub fn previous_secret(&self, now: OffsetDateTime) -> Option<SealedSecret> {
        SealedSecret::previous(
            self.previous_secret_key_id.as_ref(),
            self.previous_secret.as_ref(),
            self.previous_secret_expires_at,
            now,
        )
    }
}

impl SealedSecret {
    /// An endpoint's previous secret from its stored columns, while its overlap lasts at `now`.
    pub(crate) fn previous(
        key_id: Option<&String>,
        bytes: Option<&Vec<u8>>,
        until: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Option<Self> {
        match (key_id, bytes, until) {
            (Some(key_id), Some(bytes), Some(until)) if until > now => Some(Self {
                key_id: key_id.clone(),
                bytes: bytes.clone(),
            }),
            _ => None,
        }
    }
}

/// A new endpoint.
#[derive(Debug)]
pub struct NewWebhook<'a> {
    pub id: WebhookId,
    pub endpoint: &'a str,
    pub events: &'a [WebhookEventType],
    pub secret: &'a SealedSecret,
}

/// What an update changes; `None` leaves a field alone.
#[derive(Debug, Default)]
pub struct WebhookPatch<'a> {
    pub endpoint: Option<&'a str>,
    pub events: Option<&'a [WebhookEventType]>,
    /// Either status clears the reason Missive disabled it for.
    pub status: Option<WebhookStatus>,
}

/// A page of endpoints, newest first.
#[derive(Debug)]
pub struct WebhookPage {
    pub webhooks: Vec<WebhookRecord>,
    pub has_more: bool,
}

/// Calls `$then!` with `$before`, the columns of [`WebhookRecord`], and `$after`.
macro_rules! webhook_columns {
    ($then:ident!($($before:tt)*) $($after:tt)*) => {
        $then!(
            $($before)*
            r#"tenant_id AS "tenant_id: TenantId", project_id AS "project_id: ProjectId",
               id AS "id: WebhookId", endpoint,
               events AS "events: Vec<WebhookEventType>", status AS "status: WebhookStatus",
               disabled_reason, secret_key_id, secret, previous_secret_key_id, previous_secret,
               previous_secret_expires_at, last_success_at, created_at, updated_at"#
            $($after)*
        )
    };
}

impl Store {
    /// Creates an endpoint, enabled.
    ///
    /// # Errors
    /// Database failures.
    pub async fn insert_webhook(
        &self,
        project: impl Into<ProjectRef>,
        new: &NewWebhook<'_>,
    ) -> Result<WebhookRecord, StoreError> {
        let project = project.into();
        let tenant_id = project.tenant_id;
        self.confined(project, async |conn| {
            let events: Vec<&str> = new.events.iter().map(|e| e.as_str()).collect();
            Ok(webhook_columns!(
                records!(
                    WebhookRecord,
                    "INSERT INTO webhooks (tenant_id, project_id, id, endpoint, events,
                                           secret_key_id, secret)
                     VALUES ($1, $7, $2, $3, $4, $5, $6)
                     RETURNING ",
                ),
                "",
                tenant_id.as_uuid(),
                new.id.as_uuid(),
                new.endpoint,
                &events as &[&str],
                &new.secret.key_id,
                &new.secret.bytes,
                project.project_id.as_uuid(),
            )
            .fetch_one(&mut *conn)
            .await?)
        })
        .await
    }

    /// One of the tenant's endpoints.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for another tenant's or an unknown id.
    pub async fn get_webhook(
        &self,
        reach: Reach,
        id: WebhookId,
    ) -> Result<WebhookRecord, StoreError> {
        let tenant_id = reach.tenant_id;
        self.confined_read(reach, async |conn| {
            webhook_columns!(
                records!(WebhookRecord, "SELECT ",),
                " FROM webhooks WHERE tenant_id = $1 AND id = $2",
                tenant_id.as_uuid(),
                id.as_uuid(),
            )
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound)
        })
        .await
    }

    /// A page of the tenant's endpoints, newest first.
    ///
    /// # Errors
    /// Database failures.
    pub async fn list_webhooks(
        &self,
        reach: Reach,
        cursor: Cursor,
        limit: i64,
    ) -> Result<WebhookPage, StoreError> {
        let tenant_id = reach.tenant_id;
        let rows = self
            .confined_read(reach, async |conn| {
                Ok(webhook_columns!(
                    fetch_page!(&mut *conn, WebhookRecord,),
                    "webhooks",
                    "",
                    tenant_id,
                    cursor,
                    limit,
                ))
            })
            .await?;
        let (webhooks, has_more) = finish_page(rows, cursor, limit);
        Ok(WebhookPage { webhooks, has_more })
    }

    /// Changes what the patch names.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn update_webhook(
        &self,
        reach: Reach,
        id: WebhookId,
        patch: &WebhookPatch<'_>,
    ) -> Result<WebhookRecord, StoreError> {
        let tenant_id = reach.tenant_id;
        let events: Option<Vec<&str>> = patch
            .events
            .map(|events| events.iter().map(|e| e.as_str()).collect());
        self.confined(reach, async |conn| {
            webhook_columns!(
                records!(
                    WebhookRecord,
                    "UPDATE webhooks
                     SET endpoint = coalesce($3, endpoint), events = coalesce($4, events),
                         status = coalesce($5, status),
                         disabled_reason = CASE WHEN $5::text IS NULL THEN disabled_reason END,
                         updated_at = now()
                     WHERE tenant_id = $1 AND id = $2
                     RETURNING ",
                ),
                "",
                tenant_id.as_uuid(),
                id.as_uuid(),
                patch.endpoint,
                events.as_deref() as Option<&[&str]>,
                patch.status.map(WebhookStatus::as_str),
            )
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound)
        })
        .await
    }

    /// Makes `secret` the current secret; the one it replaces signs beside it until `until`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn rotate_webhook_secret(
        &self,
        reach: Reach,
        id: WebhookId,
        secret: &SealedSecret,
        until: OffsetDateTime,
    ) -> Result<WebhookRecord, StoreError> {
        let tenant_id = reach.tenant_id;
        self.confined(reach, async |conn| {
            webhook_columns!(
                records!(
                    WebhookRecord,
                    "UPDATE webhooks
                     SET previous_secret_key_id = secret_key_id, previous_secret = secret,
                         previous_secret_expires_at = $5, secret_key_id = $3, secret = $4,
                         updated_at = now()
                     WHERE tenant_id = $1 AND id = $2
                     RETURNING ",
                ),
                "",
                tenant_id.as_uuid(),
                id.as_uuid(),
                &secret.key_id,
                &secret.bytes,
                until,
            )
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound)
        })
        .await
    }

    /// Deletes an endpoint.
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn delete_webhook(
        &self,
        reach: impl Into<Reach>,
        id: WebhookId,
    ) -> Result<(), StoreError> {
        let reach = reach.into();
        let tenant_id = reach.tenant_id;
        self.confined(reach, async |conn| {
            let deleted = sqlx::query!(
                "DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2",
                tenant_id.as_uuid(),
                id.as_uuid(),
            )
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if deleted == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }
}
