//! The webhook outbox: rows written beside the email events they report (see the statements in
//! `emails.rs` and `deliveries.rs`), leased by the dispatcher, and closed with each attempt.

use std::sync::LazyLock;
use std::time::Duration;

use missive_core::{EventKind, WebhookEventType};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use missive_core::TenantId;

use crate::listen::Channel;
use crate::{SealedSecret, Store, StoreError};

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
    /// `hard` or `soft`, for a refusal.
    pub bounce_class: Option<String>,
}

impl LeasedWebhookEvent {
    /// The endpoint's secrets to sign with at `now`: the current one, and the previous one while
    /// its overlap lasts.
    #[must_use]
    pub fn secrets(&self, now: OffsetDateTime) -> (SealedSecret, Option<SealedSecret>) {
        let current = SealedSecret {
            key_id: self.secret_key_id.clone(),
            bytes: self.secret.clone(),
        };
        let previous = SealedSecret::previous(
            self.previous_secret_key_id.as_ref(),
            self.previous_secret.as_ref(),
            self.previous_secret_expires_at,
            now,
        );
        (current, previous)
    }
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
                    ev.recipient, ev.smtp_code, ev.smtp_response, ev.bounce_class
             FROM leased l
             JOIN webhooks w ON w.tenant_id = l.tenant_id AND w.id = l.webhook_id
             LEFT JOIN emails em ON em.tenant_id = l.tenant_id AND em.id = l.email_id
             LEFT JOIN email_events ev ON ev.tenant_id = l.tenant_id AND ev.email_id = l.email_id
                                      AND ev.id = l.email_event_id"
    };
}

impl Store {
    /// Leases due outbox rows for `holder`: at most `limit`, and at most `per_endpoint` leased
    /// for any one endpoint (counting rows other dispatchers hold), so one slow endpoint cannot
    /// take every place.
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
        // A row not yet committed carries its transaction's start as next_attempt_at, so no row
        // the lease cannot see lies before the start of the oldest transaction running. That
        // start is read in a statement of its own, before the lease's snapshot is taken: read
        // inside the lease, it missed a transaction that committed between the snapshot and the
        // read, whose rows the lease could not see and its mark then passed (18 events of one
        // transaction, never sent, in a make bench run).
        let horizon: OffsetDateTime = sqlx::query_scalar(
            "SELECT least(now(), (SELECT min(xact_start) FROM pg_stat_activity
                                  WHERE backend_type = 'client backend'))",
        )
        .fetch_one(&self.pool)
        .await?;
        // Planned once per connection (the dispatcher's sessions: see
        // [`Store::for_dispatcher`]): planned afresh, the lease spent 1.7 ms planning per call
        // against 2.3 ms running. Its plan walks the endpoints and probes each one's indexes,
        // whatever the outbox's size.
        let leased = sqlx::query_as::<_, LeasedWebhookEvent>(concat!(
            "WITH horizon AS MATERIALIZED (
                 SELECT $5::timestamptz AS at
             ), endpoints AS (
                 -- Each endpoint's first unfinished row, looked for from its low-water mark: the
                 -- rows finished before it are dead index entries that every lease would
                 -- otherwise step over until vacuum removes them.
                 SELECT w.tenant_id, w.id, w.due_from, w.due_from_id,
                        first.next_attempt_at AS first_at, first.id AS first_id
                 FROM webhooks w
                 LEFT JOIN LATERAL (
                     SELECT next_attempt_at, id FROM webhook_events
                     WHERE tenant_id = w.tenant_id AND webhook_id = w.id
                       AND status IN ('pending', 'attempting')
                       AND (next_attempt_at, id) >= (w.due_from, w.due_from_id)
                     ORDER BY next_attempt_at, id
                     LIMIT 1
                 ) first ON true
             ), advanced AS (
                 -- The mark moves up to the first unfinished row, but never past the start of a
                 -- transaction that may still add rows; an endpoint with none keeps its mark.
                 UPDATE webhooks w
                 SET due_from = CASE WHEN ep.first_at < h.at THEN ep.first_at ELSE h.at END,
                     due_from_id = CASE WHEN ep.first_at < h.at THEN ep.first_id
                                        ELSE '00000000-0000-0000-0000-000000000000' END
                 FROM endpoints ep, horizon h
                 WHERE w.tenant_id = ep.tenant_id AND w.id = ep.id AND ep.first_at IS NOT NULL
                   AND (ep.first_at, ep.first_id) > (ep.due_from, ep.due_from_id)
                   AND h.at > ep.due_from
             ), candidates AS (
                 -- Round the endpoints: each one's oldest due rows up to its free share, then
                 -- the first of every endpoint before the second of any. The rows in flight are
                 -- due and were leased from the front of the unfinished rows, so an endpoint's
                 -- first twice its share of due rows hold them all, and free rows enough to fill
                 -- the share: they are counted there, with no index of leased rows to update.
                 SELECT c.tenant_id, c.id
                 FROM endpoints w
                 CROSS JOIN LATERAL (
                     SELECT x.tenant_id, x.id, x.next_attempt_at, x.busy,
                            count(*) FILTER (WHERE x.busy) OVER () AS n,
                            row_number() OVER (PARTITION BY x.busy
                                               ORDER BY x.next_attempt_at, x.id) AS turn
                     FROM (SELECT tenant_id, id, next_attempt_at,
                                  leased_by IS NOT NULL AND lease_expires_at >= now() AS busy
                           FROM webhook_events
                           WHERE tenant_id = w.tenant_id AND webhook_id = w.id
                             AND status IN ('pending', 'attempting')
                             AND (next_attempt_at, id) >= (w.first_at, w.first_id)
                             AND next_attempt_at <= now()
                           ORDER BY next_attempt_at, id
                           LIMIT 2 * $2) x
                 ) c
                 -- Topped up once half its share is free, so rows come in batches.
                 WHERE NOT c.busy AND c.n <= $2 / 2 AND c.turn <= $2 - c.n
                 ORDER BY c.turn, c.next_attempt_at
                 LIMIT $1
             ), locked AS (
                 -- Locked by key alone and checked after: a locked row is its newest version.
                 -- OFFSET 0 keeps the checks out of the lookup: pushed into it, they matched the
                 -- partial index of due rows, which the planner then walked for the id through
                 -- all of the tenant's due rows (400 buffers per row, leases at 8 ms).
                 SELECT e.ctid FROM candidates c
                 CROSS JOIN LATERAL (
                     SELECT ctid, status, next_attempt_at, leased_by, lease_expires_at
                     FROM webhook_events
                     WHERE tenant_id = c.tenant_id AND id = c.id
                     FOR UPDATE SKIP LOCKED
                     OFFSET 0
                 ) e
                 WHERE e.status IN ('pending', 'attempting') AND e.next_attempt_at <= now()
                   AND (e.leased_by IS NULL OR e.lease_expires_at < now())
             ), leased AS (
                 -- The locked versions by their addresses (a TID scan): a join on the key let
                 -- the planner hash the whole table on every lease.
                 UPDATE webhook_events e
                 SET leased_by = $4, lease_expires_at = now() + make_interval(secs => $3),
                     updated_at = now()
                 WHERE e.ctid = ANY (ARRAY(SELECT ctid FROM locked))
                 RETURNING e.*
             ) ",
            outbox_content!()
        ))
        .bind(limit)
        .bind(per_endpoint)
        .bind(lease.as_secs_f64())
        .bind(holder)
        .bind(horizon)
        .fetch_all(&self.pool)
        .await?;
        Ok(leased)
    }

    /// Moves back the low-water mark of every endpoint that has an unfinished row before it,
    /// so the row is leased again; returns how many marks moved. Leasing never passes such a
    /// row (see [`Store::lease_webhook_events`]): this is the safety net that makes a mark that
    /// did cost a delay, not an event. Walks each endpoint's index entries before its mark.
    ///
    /// # Errors
    /// Database failures.
    pub async fn reset_passed_webhook_marks(&self) -> Result<u64, StoreError> {
        let moved = sqlx::query(
            "UPDATE webhooks w
             SET due_from = '-infinity', due_from_id = '00000000-0000-0000-0000-000000000000'
             WHERE due_from > '-infinity' AND EXISTS (
                 SELECT 1 FROM webhook_events e
                 WHERE e.tenant_id = w.tenant_id AND e.webhook_id = w.id
                   AND e.status IN ('pending', 'attempting')
                   AND (e.next_attempt_at, e.id) < (w.due_from, w.due_from_id))",
        )
        .execute(&self.pool)
        .await?;
        Ok(moved.rows_affected())
    }

    /// Records attempts, closing or rescheduling their rows, in one statement; a success or a
    /// disable updates the endpoint. A row whose lease its `holder` lost is left alone.
    ///
    /// # Errors
    /// Database failures.
    pub async fn record_webhook_attempts(
        &self,
        results: &[WebhookAttemptResult],
    ) -> Result<(), StoreError> {
        if results.is_empty() {
            return Ok(());
        }
        let column =
            |f: fn(&WebhookAttemptResult) -> Uuid| results.iter().map(f).collect::<Vec<_>>();
        sqlx::query(
            "WITH input AS (
                 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[],
                                      $6::timestamptz[], $7::int[], $8::text[], $9::int[], $10::text[])
                     AS i(tenant_id, event_id, webhook_id, holder, status, next_attempt_at,
                          http_status, response, duration_ms, disable)
             ), updated AS (
                 UPDATE webhook_events e
                 SET status = i.status, attempts = e.attempts + 1,
                     next_attempt_at = greatest(i.next_attempt_at, e.next_attempt_at),
                     leased_by = NULL, lease_expires_at = NULL, updated_at = now()
                 FROM input i
                 -- By key, the holder checked on the row found.
                 WHERE e.tenant_id = i.tenant_id AND e.id = i.event_id
                   AND e.leased_by IS NOT DISTINCT FROM i.holder
                 RETURNING e.tenant_id, e.id
             ), recorded AS (
                 SELECT i.* FROM input i
                 JOIN updated u ON u.tenant_id = i.tenant_id AND u.id = i.event_id
             ), attempts AS (
                 INSERT INTO webhook_attempts (tenant_id, event_id, http_status, response, duration_ms)
                 SELECT tenant_id, event_id, http_status, response, duration_ms FROM recorded
             ), endpoints AS (
                 SELECT tenant_id, webhook_id, bool_or(status = 'success') AS succeeded,
                        max(disable) AS disable
                 FROM recorded
                 WHERE status = 'success' OR disable IS NOT NULL
                 GROUP BY tenant_id, webhook_id
             )
             -- A success is noted at most once a minute (it only counts against days without
             -- one), so posts to one endpoint do not all rewrite its row.
             UPDATE webhooks w
             SET last_success_at = CASE WHEN ep.succeeded THEN now() ELSE w.last_success_at END,
                 status = CASE WHEN ep.disable IS NULL THEN w.status ELSE 'disabled' END,
                 disabled_reason = coalesce(ep.disable, w.disabled_reason), updated_at = now()
             FROM endpoints ep
             WHERE w.tenant_id = ep.tenant_id AND w.id = ep.webhook_id
               AND (ep.disable IS NOT NULL OR w.last_success_at IS NULL
                    OR w.last_success_at < now() - interval '1 minute')",
        )
        .bind(column(|r| r.tenant_id))
        .bind(column(|r| r.event_id))
        .bind(column(|r| r.webhook_id))
        .bind(column(|r| r.holder))
        .bind(results.iter().map(|r| r.status).collect::<Vec<_>>())
        .bind(results.iter().map(|r| r.next_attempt_at).collect::<Vec<_>>())
        .bind(results.iter().map(|r| r.http_status).collect::<Vec<_>>())
        .bind(results.iter().map(|r| r.response.as_str()).collect::<Vec<_>>())
        .bind(
            results
                .iter()
                .map(|r| i32::try_from(r.duration.as_millis()).unwrap_or(i32::MAX))
                .collect::<Vec<_>>(),
        )
        .bind(results.iter().map(|r| r.disable.as_deref()).collect::<Vec<_>>())
        .execute(&self.pool)
        .await?;
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
        self.confined_read(tenant_id, async |conn| {
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
        tenant_id: TenantId,
        webhook_id: Uuid,
        id: Uuid,
    ) -> Result<(WebhookEventRecord, LeasedWebhookEvent), StoreError> {
        self.confined_read(tenant_id, async |conn| {
            let record = sqlx::query_as::<_, WebhookEventRecord>(
                "SELECT id, webhook_id, type, status, attempts, next_attempt_at, created_at
                 FROM webhook_events WHERE tenant_id = $1 AND webhook_id = $2 AND id = $3",
            )
            .bind(tenant_id.as_uuid())
            .bind(webhook_id)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound)?;
            let content = sqlx::query_as::<_, LeasedWebhookEvent>(concat!(
                "WITH leased AS (SELECT * FROM webhook_events WHERE tenant_id = $1 AND id = $2) ",
                outbox_content!()
            ))
            .bind(tenant_id.as_uuid())
            .bind(id)
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
        tenant_id: TenantId,
        event_id: Uuid,
    ) -> Result<Vec<WebhookAttemptRecord>, StoreError> {
        self.confined_read(tenant_id, async |conn| {
            Ok(sqlx::query_as::<_, WebhookAttemptRecord>(
                "SELECT id, http_status, response, duration_ms, created_at FROM webhook_attempts
                 WHERE tenant_id = $1 AND event_id = $2 ORDER BY id",
            )
            .bind(tenant_id.as_uuid())
            .bind(event_id)
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
        tenant_id: TenantId,
        webhook_id: Uuid,
        id: Uuid,
    ) -> Result<(), StoreError> {
        self.confined(tenant_id, async |conn| {
            let updated = sqlx::query(
                "UPDATE webhook_events
                 SET status = 'pending', attempts = 0, next_attempt_at = now(), leased_by = NULL,
                     lease_expires_at = NULL, updated_at = now()
                 WHERE tenant_id = $1 AND webhook_id = $2 AND id = $3",
            )
            .bind(tenant_id.as_uuid())
            .bind(webhook_id)
            .bind(id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if updated == 0 {
                return Err(StoreError::NotFound);
            }
            // The insert trigger does not see an update: wake the dispatchers here.
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(Channel::Webhooks.name())
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
        tenant_id: TenantId,
        webhook_id: Uuid,
    ) -> Result<Uuid, StoreError> {
        self.confined(tenant_id, async |conn| {
            sqlx::query_scalar(
                "INSERT INTO webhook_events (tenant_id, webhook_id, type)
                 SELECT tenant_id, id, 'email.sent' FROM webhooks WHERE tenant_id = $1 AND id = $2
                 RETURNING id",
            )
            .bind(tenant_id.as_uuid())
            .bind(webhook_id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound)
        })
        .await
    }

    /// Refreshes the planner's statistics of the outbox when they are far behind it; says
    /// whether it did.
    ///
    /// The outbox can grow from empty by thousands of rows a second, and autovacuum looks at a
    /// database once a minute: until it does, the planner takes the table for tiny and probes an
    /// endpoint's due rows through the events-listing index, sorting all of its events (18,000
    /// rows and 25 ms per lease, measured), instead of reading them in order from the due index.
    /// Once the rows changed since the last analysis outnumber those it counted, this analyzes
    /// (a sample, tens of milliseconds), so that happens a handful of times as a backlog grows.
    ///
    /// # Errors
    /// Database failures, including lacking the right to analyze the table.
    pub async fn analyze_outbox_if_stale(&self) -> Result<bool, StoreError> {
        let stale: bool = sqlx::query_scalar(
            "SELECT coalesce(bool_or(s.n_mod_since_analyze > greatest(c.reltuples, 0) + 1000), false)
             FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
             WHERE s.relid = 'webhook_events'::regclass",
        )
        .fetch_one(&self.pool)
        .await?;
        if stale {
            sqlx::query("ANALYZE webhook_events")
                .execute(&self.pool)
                .await?;
        }
        Ok(stale)
    }

    /// Outbox rows not yet sent, for the queue-depth gauge.
    ///
    /// # Errors
    /// Database failures.
    pub async fn webhook_backlog(&self) -> Result<i64, StoreError> {
        // Per endpoint from its low-water mark, as leasing looks, so finished rows not yet
        // vacuumed are not walked.
        Ok(sqlx::query_scalar(
            "SELECT coalesce(sum(n), 0)::bigint FROM webhooks w
             CROSS JOIN LATERAL (
                 SELECT count(*) AS n FROM webhook_events
                 WHERE tenant_id = w.tenant_id AND webhook_id = w.id
                   AND status IN ('pending', 'attempting')
                   AND (next_attempt_at, id) >= (w.due_from, w.due_from_id)
             ) e",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// When the next outbox row falls due (or a lease runs out), for a dispatcher deciding how
    /// long to sleep. `per_endpoint`: the endpoints' share, as given to
    /// [`Store::lease_webhook_events`], whose first twice as many due rows hold the rows in flight.
    ///
    /// # Errors
    /// Database failures.
    pub async fn next_webhook_due(
        &self,
        per_endpoint: i64,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        // Per endpoint from its low-water mark, as leasing looks: its first free row, and the
        // leases among its first due rows.
        Ok(sqlx::query_scalar(
            "SELECT least(
                 (SELECT min(e.next_attempt_at) FROM webhooks w
                  CROSS JOIN LATERAL (
                      SELECT next_attempt_at FROM webhook_events
                      WHERE tenant_id = w.tenant_id AND webhook_id = w.id
                        AND status IN ('pending', 'attempting') AND leased_by IS NULL
                        AND (next_attempt_at, id) >= (w.due_from, w.due_from_id)
                      ORDER BY next_attempt_at, id
                      LIMIT 1
                  ) e),
                 (SELECT min(l.lease_expires_at) FROM webhooks w
                  CROSS JOIN LATERAL (
                      SELECT lease_expires_at FROM webhook_events
                      WHERE tenant_id = w.tenant_id AND webhook_id = w.id
                        AND status IN ('pending', 'attempting')
                        AND (next_attempt_at, id) >= (w.due_from, w.due_from_id)
                        AND next_attempt_at <= now()
                      ORDER BY next_attempt_at, id
                      LIMIT 2 * $1
                  ) l))",
        )
        .bind(per_endpoint)
        .fetch_one(&self.pool)
        .await?)
    }
}
