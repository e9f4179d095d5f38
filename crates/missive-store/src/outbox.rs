//! The webhook outbox: rows written beside the email events they report (see the statements in
//! `emails.rs` and `deliveries.rs`), leased by the dispatcher, and closed with each attempt.
//!
//! The filters that pick unfinished rows spell `'pending'` and `'attempting'` literally on
//! purpose: they must match the partial indexes' predicates for the planner to use them (the
//! store's tests check every such literal against the indexes). Every other status is bound from
//! the core model.

use std::sync::LazyLock;
use std::time::Duration;

use missive_core::outcome::BounceClass;
use missive_core::payload::{Payload, Received};
use missive_core::submission::RecipientKind;
use missive_core::{
    EmailId, EventKind, ProjectId, TenantId, WebhookEventId, WebhookEventStatus, WebhookEventType,
    WebhookId, WebhookStatus,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::composite::composite;
use crate::{SealedSecret, Store, StoreError};

/// A checked statement that also reports the events it writes (a CTE `ev` returning
/// `tenant_id, project_id, email_id, id, type`) to the enabled endpoints of the event's project
/// subscribed to their types:
/// `$head` ends with the CTEs before (and a comma), `$hooks` and `$enabled` name the parameters
/// bound to [`EVENT_HOOKS`] and to [`WebhookStatus::Enabled`], `$tail` is the final `SELECT`.
macro_rules! reporting_events {
    (scalar: $($rest:tt)*) => {
        $crate::outbox::reporting_events!(@query query_scalar!() $($rest)*)
    };
    (as $record:path: $($rest:tt)*) => {
        $crate::outbox::reporting_events!(@query query_as!($record,) $($rest)*)
    };
    (@query $query:ident!($($before:tt)*)
        $head:literal, $hooks:literal, $enabled:literal, $tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::$query!(
            $($before)*
            $head
                + "hooks AS (
                 INSERT INTO webhook_events (tenant_id, project_id, webhook_id, type, email_id,
                                             email_event_id)
                 SELECT ev.tenant_id, ev.project_id, w.id, m.hook, ev.email_id, ev.id
                 FROM ev
                 JOIN UNNEST("
                + $hooks
                + "::event_hook[]) AS m ON m.kind = ev.type
                 JOIN webhooks w ON w.tenant_id = ev.tenant_id AND w.project_id = ev.project_id
                                AND w.status = "
                + $enabled
                + "
                                AND m.hook = ANY (w.events)
             )"
                + $tail
            $(, $arg)*
        )
    };
}
pub(crate) use reporting_events;

composite! {
    /// A reported log event's name and the webhook event type it is reported as (the
    /// `event_hook` type).
    EventHook<'a> = "event_hook" {
        kind: &'a str,
        hook: &'a str,
    }
}

/// Each reported log event and its webhook event type: the statements that write events join on
/// these pairs, so the mapping lives in core alone.
pub(crate) static EVENT_HOOKS: LazyLock<Vec<EventHook<'static>>> = LazyLock::new(|| {
    EventKind::ALL
        .into_iter()
        .filter_map(|kind| {
            WebhookEventType::of(kind).map(|hook| EventHook {
                kind: kind.as_str(),
                hook: hook.as_str(),
            })
        })
        .collect()
});

/// A leased outbox row with what its delivery needs: the endpoint, its secrets, and the email
/// event it reports (absent for a test event).
#[derive(Clone, Debug)]
pub struct LeasedWebhookEvent {
    pub tenant_id: TenantId,
    pub project_id: ProjectId,
    pub id: WebhookEventId,
    pub webhook_id: WebhookId,
    pub kind: WebhookEventType,
    pub attempts: i32,
    pub created_at: OffsetDateTime,
    pub endpoint: String,
    pub webhook_status: WebhookStatus,
    pub secret_key_id: String,
    pub secret: Vec<u8>,
    pub previous_secret_key_id: Option<String>,
    pub previous_secret: Option<Vec<u8>>,
    pub previous_secret_expires_at: Option<OffsetDateTime>,
    /// When the endpoint last took a delivery, or was created.
    pub last_success_at: OffsetDateTime,
    pub email_id: Option<EmailId>,
    pub from_address: Option<String>,
    pub to: Option<Vec<String>>,
    pub subject: Option<String>,
    pub tags: Option<serde_json::Value>,
    pub email_created_at: Option<OffsetDateTime>,
    pub recipient: Option<String>,
    pub smtp_code: Option<i32>,
    pub smtp_response: Option<String>,
    /// For a refusal: what it said about the address.
    pub bounce_class: Option<BounceClass>,
    /// For what a report said: its enhanced status and who reported.
    pub report_status: Option<String>,
    pub reporting_mta: Option<String>,
    /// For `email.received`: what the message's summary says, and the envelope recipients.
    pub received_summary: Option<serde_json::Value>,
    pub received_for: Option<Vec<String>>,
    pub message_id: Option<String>,
}

impl LeasedWebhookEvent {
    /// What the event's webhook body says.
    #[must_use]
    pub fn payload(&self) -> Payload<'_> {
        Payload {
            kind: self.kind,
            created_at: self.created_at,
            tenant_id: self.tenant_id,
            project_id: self.project_id,
            email_id: self.email_id,
            from: self.from_address.as_deref(),
            to: self.to.as_deref(),
            subject: self.subject.as_deref(),
            tags: self.tags.as_ref(),
            email_created_at: self.email_created_at,
            recipient: self.recipient.as_deref(),
            smtp_code: self.smtp_code,
            smtp_response: self.smtp_response.as_deref(),
            bounce_class: self.bounce_class,
            report_status: self.report_status.as_deref(),
            reporting_mta: self.reporting_mta.as_deref(),
            received: self.received_summary.as_ref().map(|summary| Received {
                summary,
                received_for: self.received_for.as_deref().unwrap_or_default(),
                message_id: self.message_id.as_deref(),
            }),
        }
    }

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

/// How an attempt ends for its outbox row and its endpoint.
#[derive(Clone, Debug)]
pub struct WebhookAttemptResult {
    pub tenant_id: TenantId,
    pub event_id: WebhookEventId,
    pub webhook_id: WebhookId,
    pub holder: Uuid,
    pub http_status: Option<i32>,
    pub response: String,
    pub duration: Duration,
    /// Success, attempting (another attempt at `next_attempt_at`) or failed.
    pub status: WebhookEventStatus,
    pub next_attempt_at: Option<OffsetDateTime>,
    /// Disable the endpoint, saying why (410 Gone, days without a success).
    pub disable: Option<String>,
}

composite! {
    /// One attempt as the attempts statement takes it (the `webhook_attempt` type).
    AttemptRow<'a> = "webhook_attempt" {
        tenant_id: Uuid,
        event_id: Uuid,
        webhook_id: Uuid,
        holder: Uuid,
        status: &'a str,
        next_attempt_at: Option<OffsetDateTime>,
        http_status: Option<i32>,
        response: &'a str,
        duration_ms: i32,
        disable: Option<&'a str>,
    }
}

/// A checked statement reading [`LeasedWebhookEvent`]s: `$head` defines the CTE `leased` (rows
/// of `webhook_events`), to which this adds what a delivery of each carries: the endpoint, its
/// secrets, and the email event reported. `$to` names the parameter bound to
/// [`RecipientKind::To`].
macro_rules! query_leased {
    ($head:literal, $to:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            LeasedWebhookEvent,
            $head
                + r#"SELECT l.tenant_id AS "tenant_id!: TenantId",
                    l.project_id AS "project_id!: missive_core::ProjectId", l.id AS "id!: WebhookEventId",
                    l.webhook_id AS "webhook_id!: WebhookId", l.type AS "kind!: WebhookEventType",
                    l.attempts AS "attempts!", l.created_at AS "created_at!",
                    w.endpoint, w.status AS "webhook_status: WebhookStatus", w.secret_key_id,
                    w.secret, w.previous_secret_key_id, w.previous_secret,
                    w.previous_secret_expires_at,
                    coalesce(w.last_success_at, w.created_at) AS "last_success_at!",
                    coalesce(em.id, re.id) AS "email_id?: EmailId",
                    em.from_address AS "from_address?",
                    CASE WHEN em.id IS NOT NULL THEN ARRAY(
                        SELECT d.recipient FROM deliveries d
                        WHERE d.tenant_id = em.tenant_id AND d.email_id = em.id AND d.kind = "#
                + $to
                + r#"
                        ORDER BY d.id) END AS "to?",
                    coalesce(em.subject, re.subject) AS "subject?", em.tags AS "tags?",
                    coalesce(em.created_at, re.created_at) AS "email_created_at?",
                    ev.recipient AS "recipient?",
                    ev.smtp_code AS "smtp_code?", ev.smtp_response AS "smtp_response?",
                    ev.bounce_class AS "bounce_class?: BounceClass",
                    ev.report_status AS "report_status?", ev.reporting_mta AS "reporting_mta?",
                    re.summary AS "received_summary?", re.rcpt_to AS "received_for?",
                    re.message_id AS "message_id?"
             FROM leased l
             JOIN webhooks w ON w.tenant_id = l.tenant_id AND w.id = l.webhook_id
             LEFT JOIN emails em ON em.tenant_id = l.tenant_id AND em.id = l.email_id
             LEFT JOIN email_events ev ON ev.tenant_id = l.tenant_id AND ev.email_id = l.email_id
                                      AND ev.id = l.email_event_id
             LEFT JOIN received_emails re ON l.email_event_id IS NULL
                                         AND re.tenant_id = l.tenant_id AND re.id = l.email_id"#
            $(, $arg)*
        )
    };
}
pub(crate) use query_leased;

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
        let horizon = sqlx::query_scalar!(
            r#"SELECT least(now(), (SELECT min(xact_start) FROM pg_stat_activity
                                    WHERE backend_type = 'client backend')) AS "horizon!""#
        )
        .fetch_one(&self.pool)
        .await?;
        // Planned once per connection (the dispatcher's sessions: see
        // [`Store::for_dispatcher`]): planned afresh, the lease spent 1.7 ms planning per call
        // against 2.3 ms running. Its plan walks the endpoints and probes each one's indexes,
        // whatever the outbox's size.
        let leased = query_leased!(
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
                           LIMIT 2 * $2::int8) x
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
            "$6",
            limit,
            per_endpoint,
            lease.as_secs_f64(),
            holder,
            horizon,
            RecipientKind::To.as_str(),
        )
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
        let moved = sqlx::query!(
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
        let rows: Vec<AttemptRow<'_>> = results
            .iter()
            .map(|r| AttemptRow {
                tenant_id: r.tenant_id.as_uuid(),
                event_id: r.event_id.as_uuid(),
                webhook_id: r.webhook_id.as_uuid(),
                holder: r.holder,
                status: r.status.as_str(),
                next_attempt_at: r.next_attempt_at,
                http_status: r.http_status,
                response: r.response.as_str(),
                duration_ms: i32::try_from(r.duration.as_millis()).unwrap_or(i32::MAX),
                disable: r.disable.as_deref(),
            })
            .collect();
        sqlx::query!(
            "WITH input AS (
                 SELECT * FROM unnest($1::webhook_attempt[])
             ), updated AS (
                 UPDATE webhook_events e
                 SET status = i.status, attempts = e.attempts + 1,
                     next_attempt_at = greatest(i.next_attempt_at, e.next_attempt_at),
                     leased_by = NULL, lease_expires_at = NULL, updated_at = now()
                 FROM input i
                 -- By key, the holder checked on the row found.
                 WHERE e.tenant_id = i.tenant_id AND e.id = i.event_id
                   AND e.leased_by IS NOT DISTINCT FROM i.holder
                 RETURNING e.tenant_id, e.id, e.project_id
             ), recorded AS (
                 SELECT i.*, u.project_id FROM input i
                 JOIN updated u ON u.tenant_id = i.tenant_id AND u.id = i.event_id
             ), attempts AS (
                 INSERT INTO webhook_attempts (tenant_id, project_id, event_id, http_status,
                                               response, duration_ms)
                 SELECT tenant_id, project_id, event_id, http_status, response, duration_ms
                 FROM recorded
             ), endpoints AS (
                 SELECT tenant_id, webhook_id, bool_or(status = $2) AS succeeded,
                        max(disable) AS disable
                 FROM recorded
                 WHERE status = $2 OR disable IS NOT NULL
                 GROUP BY tenant_id, webhook_id
             )
             -- A success is noted at most once a minute (it only counts against days without
             -- one), so posts to one endpoint do not all rewrite its row.
             UPDATE webhooks w
             SET last_success_at = CASE WHEN ep.succeeded THEN now() ELSE w.last_success_at END,
                 status = CASE WHEN ep.disable IS NULL THEN w.status ELSE $3 END,
                 disabled_reason = coalesce(ep.disable, w.disabled_reason), updated_at = now()
             FROM endpoints ep
             WHERE w.tenant_id = ep.tenant_id AND w.id = ep.webhook_id
               AND (ep.disable IS NOT NULL OR w.last_success_at IS NULL
                    OR w.last_success_at < now() - interval '1 minute')",
            &rows[..] as &[AttemptRow<'_>],
            WebhookEventStatus::Success.as_str(),
            WebhookStatus::Disabled.as_str(),
        )
        .execute(&self.pool)
        .await?;
        Ok(())
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
        let stale = sqlx::query_scalar!(
            r#"SELECT coalesce(bool_or(s.n_mod_since_analyze > greatest(c.reltuples, 0) + 1000),
                               false) AS "stale!"
               FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
               WHERE s.relid = 'webhook_events'::regclass"#
        )
        .fetch_one(&self.pool)
        .await?;
        if stale {
            sqlx::query!("ANALYZE webhook_events")
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
        Ok(sqlx::query_scalar!(
            r#"SELECT coalesce(sum(n), 0)::bigint AS "backlog!" FROM webhooks w
             CROSS JOIN LATERAL (
                 SELECT count(*) AS n FROM webhook_events
                 WHERE tenant_id = w.tenant_id AND webhook_id = w.id
                   AND status IN ('pending', 'attempting')
                   AND (next_attempt_at, id) >= (w.due_from, w.due_from_id)
             ) e"#,
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
        Ok(sqlx::query_scalar!(
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
                      LIMIT 2 * $1::int8
                  ) l))",
            per_endpoint,
        )
        .fetch_one(&self.pool)
        .await?)
    }
}
