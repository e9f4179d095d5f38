//! A tenant's view of its webhook outbox: an endpoint's events and their attempts, replays and
//! test events. The dispatcher's side (leasing, recording attempts) is in `outbox.rs`.

use missive_core::outcome::BounceClass;
use missive_core::submission::RecipientKind;
use missive_core::{
    EmailId, Reach, TenantId, WebhookEventId, WebhookEventStatus, WebhookEventType, WebhookId,
    WebhookStatus,
};
use time::OffsetDateTime;

use crate::listen::Channel;
use crate::outbox::query_leased;
use crate::{LeasedWebhookEvent, Store, StoreError};

/// An outbox row as the events API shows it.
#[derive(Clone, Debug)]
pub struct WebhookEventRecord {
    pub id: WebhookEventId,
    pub webhook_id: WebhookId,
    pub kind: WebhookEventType,
    pub status: WebhookEventStatus,
    pub attempts: i32,
    pub next_attempt_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
}

/// One attempt of an event.
#[derive(Clone, Debug)]
pub struct WebhookAttemptRecord {
    pub id: i64,
    pub http_status: Option<i32>,
    pub response: String,
    pub duration_ms: i32,
    pub created_at: OffsetDateTime,
}

impl Store {
    /// An endpoint's events, newest first: `limit` of them older than `after` (an event id).
    ///
    /// # Errors
    /// Database failures.
    pub async fn list_webhook_events(
        &self,
        reach: Reach,
        webhook_id: WebhookId,
        after: Option<WebhookEventId>,
        limit: i64,
    ) -> Result<(Vec<WebhookEventRecord>, bool), StoreError> {
        let tenant_id = reach.tenant_id;
        self.confined_read(reach, async |conn| {
            let mut rows = sqlx::query_as!(
                WebhookEventRecord,
                r#"SELECT id AS "id: WebhookEventId", webhook_id AS "webhook_id: WebhookId",
                          type AS "kind: WebhookEventType", status AS "status: WebhookEventStatus",
                          attempts, next_attempt_at, created_at
                   FROM webhook_events
                   WHERE tenant_id = $1 AND webhook_id = $2
                     AND ($3::uuid IS NULL OR (created_at, id) < (
                         SELECT created_at, id FROM webhook_events
                         WHERE tenant_id = $1 AND webhook_id = $2 AND id = $3))
                   ORDER BY created_at DESC, id DESC
                   LIMIT $4"#,
                tenant_id.as_uuid(),
                webhook_id.as_uuid(),
                after.map(|id| id.as_uuid()),
                limit + 1,
            )
            .fetch_all(&mut *conn)
            .await?;
            let has_more = rows.len() as i64 > limit;
            rows.truncate(usize::try_from(limit).unwrap_or(0));
            Ok((rows, has_more))
        })
        .await
    }

    /// One event of an endpoint, with what its delivery carries (to rebuild the body).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for another tenant's, another endpoint's or an unknown event.
    pub async fn get_webhook_event(
        &self,
        reach: Reach,
        webhook_id: WebhookId,
        id: WebhookEventId,
    ) -> Result<(WebhookEventRecord, LeasedWebhookEvent), StoreError> {
        let tenant_id = reach.tenant_id;
        self.confined_read(reach, async |conn| {
            let record = sqlx::query_as!(
                WebhookEventRecord,
                r#"SELECT id AS "id: WebhookEventId", webhook_id AS "webhook_id: WebhookId",
                          type AS "kind: WebhookEventType", status AS "status: WebhookEventStatus",
                          attempts, next_attempt_at, created_at
                   FROM webhook_events WHERE tenant_id = $1 AND webhook_id = $2 AND id = $3"#,
                tenant_id.as_uuid(),
                webhook_id.as_uuid(),
                id.as_uuid(),
            )
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound)?;
            let content = query_leased!(
                "WITH leased AS (SELECT * FROM webhook_events WHERE tenant_id = $1 AND id = $2) ",
                "$3",
                tenant_id.as_uuid(),
                id.as_uuid(),
                RecipientKind::To.as_str(),
            )
            .fetch_one(&mut *conn)
            .await?;
            Ok((record, content))
        })
        .await
    }

    /// An event's attempts, oldest first.
    ///
    /// # Errors
    /// Database failures.
    pub async fn webhook_attempts(
        &self,
        reach: Reach,
        event_id: WebhookEventId,
    ) -> Result<Vec<WebhookAttemptRecord>, StoreError> {
        let tenant_id = reach.tenant_id;
        self.confined_read(reach, async |conn| {
            Ok(sqlx::query_as!(
                WebhookAttemptRecord,
                "SELECT id, http_status, response, duration_ms, created_at FROM webhook_attempts
                 WHERE tenant_id = $1 AND event_id = $2 ORDER BY id",
                tenant_id.as_uuid(),
                event_id.as_uuid(),
            )
            .fetch_all(&mut *conn)
            .await?)
        })
        .await
    }

    /// Sends an event again from the start of the schedule (same id, same body).
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn replay_webhook_event(
        &self,
        reach: Reach,
        webhook_id: WebhookId,
        id: WebhookEventId,
    ) -> Result<(), StoreError> {
        let tenant_id = reach.tenant_id;
        self.confined(reach, async |conn| {
            let updated = sqlx::query!(
                "UPDATE webhook_events
                 SET status = $4, attempts = 0, next_attempt_at = now(), leased_by = NULL,
                     lease_expires_at = NULL, updated_at = now()
                 WHERE tenant_id = $1 AND webhook_id = $2 AND id = $3",
                tenant_id.as_uuid(),
                webhook_id.as_uuid(),
                id.as_uuid(),
                WebhookEventStatus::Pending.as_str(),
            )
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if updated == 0 {
                return Err(StoreError::NotFound);
            }
            // The insert trigger does not see an update: wake the dispatchers here.
            sqlx::query!("SELECT pg_notify($1, '')", Channel::Webhooks.name())
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
        .await
    }

    /// Queues a test event for one of the tenant's endpoints (reported as `email.sent`, with
    /// `data.test` set and no email).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for another tenant's or an unknown endpoint.
    pub async fn queue_test_webhook_event(
        &self,
        reach: impl Into<Reach>,
        webhook_id: WebhookId,
    ) -> Result<WebhookEventId, StoreError> {
        let reach = reach.into();
        let tenant_id = reach.tenant_id;
        self.confined(reach, async |conn| {
            sqlx::query_scalar!(
                r#"INSERT INTO webhook_events (tenant_id, project_id, webhook_id, type)
                   SELECT tenant_id, project_id, id, $3 FROM webhooks
                   WHERE tenant_id = $1 AND id = $2
                   RETURNING id AS "id: WebhookEventId""#,
                tenant_id.as_uuid(),
                webhook_id.as_uuid(),
                WebhookEventType::Sent.as_str(),
            )
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound)
        })
        .await
    }
}
