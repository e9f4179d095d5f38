//! The webhook outbox: rows written beside the email events they report (see the statements in
//! `emails.rs` and `deliveries.rs`), leased by the dispatcher, and closed with each attempt.

use std::sync::LazyLock;
use std::time::Duration;

use missive_core::{EventKind, WebhookEventType};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use missive_core::TenantId;

use crate::{Store, StoreError};

/// The CTE that reports the events just written (a CTE `ev` returning `tenant_id, email_id,
/// id, type`) to the tenant's enabled endpoints subscribed to their types; `$kinds` and `$hooks`
/// are the parameters bound to [`KINDS`] and [`HOOKS`].
macro_rules! report_events {
    ($kinds:literal, $hooks:literal) => {
        concat!(
            "hooks AS (
                 INSERT INTO webhook_events (tenant_id, webhook_id, type, email_id, email_event_id)
                 SELECT ev.tenant_id, w.id, m.hook, ev.email_id, ev.id
                 FROM ev
                 JOIN UNNEST(", $kinds, "::text[], ", $hooks, "::text[]) AS m(kind, hook)
                   ON m.kind = ev.type
                 JOIN webhooks w ON w.tenant_id = ev.tenant_id AND w.status = 'enabled'
                                AND m.hook = ANY (w.events)
             )"
        )
    };
}
pub(crate) use report_events;

/// Each reported log event's name, paired index by index with [`HOOKS`]: the statements that
/// write events join on these arrays, so the mapping lives in core alone.
pub(crate) static KINDS: LazyLock<Vec<&'static str>> = LazyLock::new(|| pairs().0);
/// The webhook event type each of [`KINDS`] is reported as.
pub(crate) static HOOKS: LazyLock<Vec<&'static str>> = LazyLock::new(|| pairs().1);

fn pairs() -> (Vec<&'static str>, Vec<&'static str>) {
    EventKind::ALL
        .into_iter()
        .filter_map(|kind| WebhookEventType::of(kind).map(|hook| (kind.as_str(), hook.as_str())))
        .unzip()
}

/// A leased outbox row with what its delivery needs: the endpoint, its secrets, and the email
/// event it reports (absent for a test event).
#[derive(Clone, Debug, FromRow)]
pub struct LeasedWebhookEvent {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub webhook_id: Uuid,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub attempts: i32,
    pub created_at: OffsetDateTime,
    pub endpoint: String,
    pub webhook_status: String,
    pub secret_key_id: String,
    pub secret: Vec<u8>,
    pub previous_secret_key_id: Option<String>,
    pub previous_secret: Option<Vec<u8>>,
    pub previous_secret_expires_at: Option<OffsetDateTime>,
    /// When the endpoint last took a delivery, or was created.
    pub last_success_at: OffsetDateTime,
    pub email_id: Option<Uuid>,
    pub from_address: Option<String>,
    pub to: Option<Vec<String>>,
    pub subject: Option<String>,
    pub tags: Option<serde_json::Value>,
    pub email_created_at: Option<OffsetDateTime>,
    pub recipient: Option<String>,
    pub smtp_code: Option<i32>,
    pub smtp_response: Option<String>,
}

/// An outbox row as the events API shows it.
#[derive(Clone, Debug, FromRow)]
pub struct WebhookEventRecord {
    pub id: Uuid,
    pub webhook_id: Uuid,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
}

/// One attempt of an event.
#[derive(Clone, Debug, FromRow)]
pub struct WebhookAttemptRecord {
    pub id: i64,
    pub http_status: Option<i32>,
    pub response: String,
    pub duration_ms: i32,
    pub created_at: OffsetDateTime,
}

/// How an attempt ends for its outbox row and its endpoint.
#[derive(Clone, Debug)]
pub struct WebhookAttemptResult {
    pub tenant_id: Uuid,
    pub event_id: Uuid,
    pub webhook_id: Uuid,
    pub holder: Uuid,
    pub http_status: Option<i32>,
    pub response: String,
    pub duration: Duration,
    /// `success`, `attempting` (another attempt at `next_attempt_at`) or `failed`.
    pub status: &'static str,
    pub next_attempt_at: Option<OffsetDateTime>,
    /// Disable the endpoint, saying why (410 Gone, days without a success).
    pub disable: Option<String>,
}

/// What a delivery of the rows in the CTE `leased` carries: the endpoint, its secrets, and the
/// email event reported.
macro_rules! outbox_content {
    () => {
"SELECT l.tenant_id, l.id, l.webhook_id, l.type, l.attempts, l.created_at,
                    w.endpoint, w.status AS webhook_status, w.secret_key_id, w.secret,
                    w.previous_secret_key_id, w.previous_secret, w.previous_secret_expires_at,
                    coalesce(w.last_success_at, w.created_at) AS last_success_at,
                    em.id AS email_id, em.from_address,
                    CASE WHEN em.id IS NOT NULL THEN ARRAY(
                        SELECT d.recipient FROM deliveries d
                        WHERE d.tenant_id = em.tenant_id AND d.email_id = em.id AND d.kind = 'to'
                        ORDER BY d.id) END AS to,
                    em.subject, em.tags, em.created_at AS email_created_at,
                    ev.recipient, ev.smtp_code, ev.smtp_response
             FROM leased l
             JOIN webhooks w ON w.tenant_id = l.tenant_id AND w.id = l.webhook_id
             LEFT JOIN emails em ON em.tenant_id = l.tenant_id AND em.id = l.email_id
             LEFT JOIN email_events ev ON ev.tenant_id = l.tenant_id AND ev.email_id = l.email_id
                                      AND ev.id = l.email_event_id"
    };
}

impl Store {
    /// Leases due outbox rows for `holder`: at most `limit`, and at most `per_endpoint` in flight
    /// for any one endpoint (counting rows other dispatchers hold), so one slow endpoint cannot
    /// take every slot.
    ///
    /// # Errors
    /// Database failures.
    pub async fn lease_webhook_events(
        &self,
        limit: i64,
        per_endpoint: i64,
        lease: Duration,
        holder: Uuid,
    ) -> Result<Vec<LeasedWebhookEvent>, StoreError> {
        Ok(sqlx::query_as::<_, LeasedWebhookEvent>(concat!(
            "WITH ranked AS (
                 SELECT e.tenant_id, e.id, e.webhook_id,
                        row_number() OVER (PARTITION BY e.tenant_id, e.webhook_id
                                           ORDER BY e.next_attempt_at) AS n
                 FROM (SELECT tenant_id, id, webhook_id, next_attempt_at FROM webhook_events
                       WHERE status IN ('pending', 'attempting') AND next_attempt_at <= now()
                         AND (leased_by IS NULL OR lease_expires_at < now())
                       ORDER BY next_attempt_at
                       LIMIT $1 * 8) e
             ), busy AS (
                 SELECT tenant_id, webhook_id, count(*) AS n FROM webhook_events
                 WHERE leased_by IS NOT NULL AND lease_expires_at >= now()
                   AND status IN ('pending', 'attempting')
                 GROUP BY tenant_id, webhook_id
             ), chosen AS (
                 SELECT r.tenant_id, r.id FROM ranked r
                 LEFT JOIN busy b ON b.tenant_id = r.tenant_id AND b.webhook_id = r.webhook_id
                 WHERE r.n <= $2 - coalesce(b.n, 0)
                 LIMIT $1
             ), locked AS (
                 SELECT e.tenant_id, e.id FROM chosen c
                 CROSS JOIN LATERAL (
                     SELECT tenant_id, id, status, next_attempt_at, leased_by, lease_expires_at
                     FROM webhook_events
                     WHERE tenant_id = c.tenant_id AND id = c.id
                     FOR UPDATE SKIP LOCKED
                 ) e
                 WHERE e.status IN ('pending', 'attempting') AND e.next_attempt_at <= now()
                   AND (e.leased_by IS NULL OR e.lease_expires_at < now())
             ), leased AS (
                 UPDATE webhook_events e
                 SET leased_by = $4, lease_expires_at = now() + make_interval(secs => $3),
                     updated_at = now()
                 FROM locked
                 WHERE e.tenant_id = locked.tenant_id AND e.id = locked.id
                 RETURNING e.*
             ) ",
            outbox_content!()
        ))
        .bind(limit)
        .bind(per_endpoint)
        .bind(lease.as_secs_f64())
        .bind(holder)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records an attempt and closes or reschedules its row; a success or a disable updates the
    /// endpoint. One transaction; a row whose lease `holder` lost is left alone.
    ///
    /// # Errors
    /// Database failures.
    pub async fn record_webhook_attempt(
        &self,
        result: &WebhookAttemptResult,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE webhook_events
             SET status = $3, attempts = attempts + 1,
                 next_attempt_at = coalesce($4, next_attempt_at),
                 leased_by = NULL, lease_expires_at = NULL, updated_at = now()
             WHERE tenant_id = $1 AND id = $2 AND leased_by = $5",
        )
        .bind(result.tenant_id)
        .bind(result.event_id)
        .bind(result.status)
        .bind(result.next_attempt_at)
        .bind(result.holder)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO webhook_attempts (tenant_id, event_id, http_status, response, duration_ms)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(result.tenant_id)
        .bind(result.event_id)
        .bind(result.http_status)
        .bind(&result.response)
        .bind(i32::try_from(result.duration.as_millis()).unwrap_or(i32::MAX))
        .execute(&mut *tx)
        .await?;
        if result.status == "success" || result.disable.is_some() {
            sqlx::query(
                "UPDATE webhooks
                 SET last_success_at = CASE WHEN $3 THEN now() ELSE last_success_at END,
                     status = CASE WHEN $4::text IS NULL THEN status ELSE 'disabled' END,
                     disabled_reason = coalesce($4, disabled_reason), updated_at = now()
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(result.tenant_id)
            .bind(result.webhook_id)
            .bind(result.status == "success")
            .bind(result.disable.as_deref())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// An endpoint's events, newest first: `limit` of them older than `after` (an event id).
    ///
    /// # Errors
    /// Database failures.
    pub async fn list_webhook_events(
        &self,
        tenant_id: TenantId,
        webhook_id: Uuid,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<(Vec<WebhookEventRecord>, bool), StoreError> {
        let mut rows = sqlx::query_as::<_, WebhookEventRecord>(
            "SELECT id, webhook_id, type, status, attempts, next_attempt_at, created_at
             FROM webhook_events
             WHERE tenant_id = $1 AND webhook_id = $2
               AND ($3::uuid IS NULL OR (created_at, id) < (
                   SELECT created_at, id FROM webhook_events
                   WHERE tenant_id = $1 AND webhook_id = $2 AND id = $3))
             ORDER BY created_at DESC, id DESC
             LIMIT $4",
        )
        .bind(tenant_id.as_uuid())
        .bind(webhook_id)
        .bind(after)
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await?;
        let has_more = rows.len() as i64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        Ok((rows, has_more))
    }

    /// One event of an endpoint, with what its delivery carries (to rebuild the body).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for another tenant's, another endpoint's or an unknown event.
    pub async fn get_webhook_event(
        &self,
        tenant_id: TenantId,
        webhook_id: Uuid,
        id: Uuid,
    ) -> Result<(WebhookEventRecord, LeasedWebhookEvent), StoreError> {
        let record = sqlx::query_as::<_, WebhookEventRecord>(
            "SELECT id, webhook_id, type, status, attempts, next_attempt_at, created_at
             FROM webhook_events WHERE tenant_id = $1 AND webhook_id = $2 AND id = $3",
        )
        .bind(tenant_id.as_uuid())
        .bind(webhook_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        let content = sqlx::query_as::<_, LeasedWebhookEvent>(concat!(
            "WITH leased AS (SELECT * FROM webhook_events WHERE tenant_id = $1 AND id = $2) ",
            outbox_content!()
        ))
        .bind(tenant_id.as_uuid())
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        Ok((record, content))
    }

    /// An event's attempts, oldest first.
    ///
    /// # Errors
    /// Database failures.
    pub async fn webhook_attempts(
        &self,
        tenant_id: TenantId,
        event_id: Uuid,
    ) -> Result<Vec<WebhookAttemptRecord>, StoreError> {
        Ok(sqlx::query_as::<_, WebhookAttemptRecord>(
            "SELECT id, http_status, response, duration_ms, created_at FROM webhook_attempts
             WHERE tenant_id = $1 AND event_id = $2 ORDER BY id",
        )
        .bind(tenant_id.as_uuid())
        .bind(event_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Sends an event again from the start of the schedule (same id, same body).
    ///
    /// # Errors
    /// [`StoreError::NotFound`].
    pub async fn replay_webhook_event(
        &self,
        tenant_id: TenantId,
        webhook_id: Uuid,
        id: Uuid,
    ) -> Result<(), StoreError> {
        let updated = sqlx::query(
            "UPDATE webhook_events
             SET status = 'pending', attempts = 0, next_attempt_at = now(), leased_by = NULL,
                 lease_expires_at = NULL, updated_at = now()
             WHERE tenant_id = $1 AND webhook_id = $2 AND id = $3",
        )
        .bind(tenant_id.as_uuid())
        .bind(webhook_id)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Queues a test event for one of the tenant's endpoints (reported as `email.sent`, with
    /// `data.test` set and no email).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for another tenant's or an unknown endpoint.
    pub async fn queue_test_webhook_event(
        &self,
        tenant_id: TenantId,
        webhook_id: Uuid,
    ) -> Result<Uuid, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO webhook_events (tenant_id, webhook_id, type)
             SELECT tenant_id, id, 'email.sent' FROM webhooks WHERE tenant_id = $1 AND id = $2
             RETURNING id",
        )
        .bind(tenant_id.as_uuid())
        .bind(webhook_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)
    }

    /// Outbox rows not yet sent, for the queue-depth gauge.
    ///
    /// # Errors
    /// Database failures.
    pub async fn webhook_backlog(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM webhook_events WHERE status IN ('pending', 'attempting')",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// When the next outbox row falls due (or a lease runs out), for a dispatcher deciding how
    /// long to sleep.
    ///
    /// # Errors
    /// Database failures.
    pub async fn next_webhook_due(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT min(greatest(next_attempt_at, coalesce(lease_expires_at, next_attempt_at)))
             FROM webhook_events WHERE status IN ('pending', 'attempting')",
        )
        .fetch_one(&self.pool)
        .await?)
    }
}
