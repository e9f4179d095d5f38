//! The accept statement: emails of any tenants, their deliveries and first events, their webhook
//! outbox rows and usage counts, stored in one statement, and the idempotency records that let a
//! retried request find what it stored.
//!
//! Statuses and event kinds are written from the core model ([`DeliveryStatus`],
//! [`EventKind`]) as bound values, never spelled in SQL. The rows travel as arrays of composite
//! types named field by field (`accept_email`, `accept_delivery`, `accept_count`; see
//! [`crate::composite`]).

use std::collections::BTreeMap;

use missive_core::submission::{Recipient, Tag};
use missive_core::{
    DeliveryStatus, EmailAddress, EmailId, EventKind, Fingerprint, IdempotencyKey, Limits, Mailbox,
    ProjectRef, QuotaPeriod, TenantId, WebhookStatus,
};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::composite::composite;
use crate::outbox::{EVENT_HOOKS, EventHook, reporting_events};
use crate::usage::{other_shard, refusals};
use crate::{Store, StoreError};

/// An email ready to store: everything validated and rendered by the accept path.
#[derive(Debug)]
pub struct NewEmail {
    pub id: EmailId,
    /// Our Message-ID header value (or the client's, over SMTP), without angle brackets.
    pub message_id: String,
    /// The From header's mailbox.
    pub from: Mailbox,
    /// MAIL FROM towards the relay.
    pub envelope_from: EmailAddress,
    pub smtputf8: bool,
    pub reply_to: Vec<Mailbox>,
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
    pub tags: Vec<Tag>,
    /// The final message as it is relayed.
    pub mime: Vec<u8>,
    pub scheduled_at: Option<OffsetDateTime>,
    /// Envelope recipients, deduplicated.
    pub recipients: Vec<Recipient>,
    /// Submitted over SMTP (counted as such in the tenant's usage).
    pub over_smtp: bool,
}

/// An idempotency claim to write with the emails: a later request under the same key with the
/// same fingerprint gets their ids again.
#[derive(Clone, Copy, Debug)]
pub struct IdempotencyRecord<'a> {
    pub key: &'a IdempotencyKey,
    pub fingerprint: Fingerprint,
}

/// What happened to an insert.
#[derive(Debug, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Stored and committed.
    Inserted,
    /// The key was used before for the same request: the emails stored then, in order.
    Replay { email_ids: Vec<EmailId> },
    /// The key was used before for another request.
    KeyReused,
}

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_WINDOW: &str = "24 hours";

composite! {
    /// An email as the accept statement takes it (the `accept_email` type).
    AcceptEmail<'a> = "accept_email" {
        tenant_id: Uuid,
        id: Uuid,
        message_id: &'a str,
        from_address: String,
        envelope_from: &'a str,
        smtputf8: bool,
        reply_to: Vec<String>,
        subject: &'a str,
        html: Option<&'a str>,
        text: Option<&'a str>,
        tags: serde_json::Value,
        mime: &'a [u8],
        scheduled_at: Option<OffsetDateTime>,
        project_id: Uuid,
    }
}

composite! {
    /// One recipient's delivery as the accept statement takes it (the `accept_delivery` type).
    AcceptDelivery<'a> = "accept_delivery" {
        tenant_id: Uuid,
        id: Uuid,
        email_id: Uuid,
        recipient: &'a str,
        kind: &'a str,
        scheduled_at: Option<OffsetDateTime>,
        event: &'a str,
        project_id: Uuid,
    }
}

composite! {
    /// One project's counts in an accept statement (the `accept_count` type): recipients,
    /// emails, emails over SMTP.
    AcceptCount = "accept_count" {
        tenant_id: Uuid,
        used: i64,
        sent: i64,
        smtp: i64,
        project_id: Uuid,
    }
}

async fn claim_idempotency_key(
    conn: &mut PgConnection,
    project: ProjectRef,
    record: &IdempotencyRecord<'_>,
    email_ids: &[Uuid],
) -> Result<Option<InsertOutcome>, StoreError> {
    // A key past its window is forgotten, then claimed afresh.
    sqlx::query!(
        "DELETE FROM idempotency_keys
         WHERE tenant_id = $1 AND project_id = $4 AND key = $2
           AND created_at < now() - $3::text::interval",
        project.tenant_id.as_uuid(),
        record.key.as_str(),
        IDEMPOTENCY_WINDOW,
        project.project_id.as_uuid(),
    )
    .execute(&mut *conn)
    .await?;
    // A concurrent request with the same key waits here on the unique index until the first
    // commits, then sees its row.
    let inserted = sqlx::query!(
        "INSERT INTO idempotency_keys (tenant_id, project_id, key, request_hash, email_ids)
         VALUES ($1, $5, $2, $3, $4)
         ON CONFLICT (tenant_id, project_id, key) DO NOTHING",
        project.tenant_id.as_uuid(),
        record.key.as_str(),
        record.fingerprint.as_bytes().as_slice(),
        email_ids,
        project.project_id.as_uuid(),
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(None);
    }
    let claimed = sqlx::query!(
        r#"SELECT request_hash, email_ids AS "email_ids: Vec<EmailId>" FROM idempotency_keys
           WHERE tenant_id = $1 AND project_id = $3 AND key = $2"#,
        project.tenant_id.as_uuid(),
        record.key.as_str(),
        project.project_id.as_uuid(),
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(Some(
        if claimed.request_hash == record.fingerprint.as_bytes() {
            InsertOutcome::Replay {
                email_ids: claimed.email_ids,
            }
        } else {
            InsertOutcome::KeyReused
        },
    ))
}

/// Quota refusals as the accept statement reports them: the tenant, and the period.
struct Refused {
    tenant_id: Uuid,
    period: String,
}

/// Inserts emails of any tenants and projects, their deliveries and their first events in one
/// statement: one round trip whatever the number of emails, which is what makes grouping commits
/// pay.
///
/// The same statement counts them in `usage_daily` (per project, in `shard`) and checks each
/// tenant's quotas over all its projects (`defaults` where a tenant has none set): a tenant with
/// a quota also counts in `quota_counters`, whose one row per day orders its accepts, and the
/// check reads that row as the accept before it committed it. A tenant whose emails would exceed
/// a quota has nothing stored and is returned with the quota; the other tenants' emails are
/// stored.
pub(crate) async fn insert_rows(
    conn: &mut PgConnection,
    emails: &[(ProjectRef, &NewEmail)],
    shard: i16,
    defaults: Limits,
) -> Result<Vec<(TenantId, QuotaPeriod)>, StoreError> {
    let mut rows = Vec::with_capacity(emails.len());
    let mut deliveries = Vec::new();
    // Per project, in key order (the order counting statements take row locks in).
    let mut counts: BTreeMap<(Uuid, Uuid), AcceptCount> = BTreeMap::new();
    for (project, email) in emails {
        let tenant_id = project.tenant_id.as_uuid();
        let project_id = project.project_id.as_uuid();
        let count = counts
            .entry((tenant_id, project_id))
            .or_insert(AcceptCount {
                tenant_id,
                used: 0,
                sent: 0,
                smtp: 0,
                project_id,
            });
        count.used += i64::try_from(email.recipients.len()).unwrap_or(i64::MAX);
        count.sent += 1;
        count.smtp += i64::from(email.over_smtp);
        rows.push(AcceptEmail {
            tenant_id,
            id: email.id.as_uuid(),
            message_id: &email.message_id,
            from_address: email.from.to_string(),
            envelope_from: email.envelope_from.as_str(),
            smtputf8: email.smtputf8,
            reply_to: email.reply_to.iter().map(ToString::to_string).collect(),
            subject: &email.subject,
            html: email.html.as_deref(),
            text: email.text.as_deref(),
            tags: serde_json::to_value(&email.tags).unwrap_or_else(|_| serde_json::json!([])),
            mime: &email.mime,
            scheduled_at: email.scheduled_at,
            project_id,
        });
        let event = EventKind::accepted(email.scheduled_at.is_some()).as_str();
        for recipient in &email.recipients {
            deliveries.push(AcceptDelivery {
                tenant_id,
                id: Uuid::now_v7(),
                email_id: email.id.as_uuid(),
                recipient: recipient.address.as_str(),
                kind: recipient.kind.as_str(),
                scheduled_at: email.scheduled_at,
                event,
                project_id,
            });
        }
    }
    let counts: Vec<AcceptCount> = counts.into_values().collect();
    let refused = reporting_events!(
        as Refused:
        "WITH r AS (
             -- A recipient on the tenant's suppression list is suppressed from the start. A
             -- probe per row rather than a join, which could reorder the rows (and so the
             -- recipients of a relay transaction).
             SELECT tenant_id, project_id, id, email_id, recipient, kind, scheduled_at,
                    CASE WHEN listed THEN $5 ELSE $4 END AS status,
                    CASE WHEN listed THEN $6 ELSE event END AS event, listed
             FROM (SELECT r.*, EXISTS (SELECT 1 FROM suppressions s
                                        WHERE s.tenant_id = r.tenant_id
                                          AND s.email = lower(r.recipient)) AS listed
                   FROM UNNEST($2::accept_delivery[]) r
                   OFFSET 0) r
         ), c AS (
             SELECT * FROM UNNEST($3::accept_count[])
         ), q AS (
             -- Each tenant's recipients in this statement over all its projects, its quotas,
             -- and what it used before that its quota row does not hold: today's and this
             -- month's usage minus today's quota count, both as of this statement's snapshot
             -- (only accepts without a quota write usage the quota row lacks, so the
             -- difference is as good as the latest). Read only for tenants with a quota.
             SELECT q.tenant_id, q.used, l.per_day, l.per_month,
                    COALESCE(o.day_total, 0) - COALESCE(k.used, 0) AS day_other,
                    COALESCE(o.month_total, 0) - COALESCE(k.used, 0) AS month_other,
                    COALESCE(o.day_total, 0) AS day_total
             FROM (SELECT tenant_id, sum(used)::int8 AS used FROM c GROUP BY tenant_id) q
             CROSS JOIN LATERAL (
                 SELECT COALESCE(max(t.emails_per_day), $7::int8) AS per_day,
                        COALESCE(max(t.emails_per_month), $8::int8) AS per_month
                 FROM tenants t WHERE t.id = q.tenant_id
             ) l
             LEFT JOIN LATERAL (
                 SELECT sum(u.used) FILTER (WHERE u.day = x.today) AS day_total,
                        sum(u.used) AS month_total
                 FROM (SELECT (now() AT TIME ZONE 'UTC')::date AS today) x
                 JOIN usage_daily u ON u.tenant_id = q.tenant_id
                  AND u.day BETWEEN date_trunc('month', x.today)::date AND x.today
                 WHERE l.per_day IS NOT NULL OR l.per_month IS NOT NULL
             ) o ON true
             LEFT JOIN quota_counters k
               ON (l.per_day IS NOT NULL OR l.per_month IS NOT NULL)
              AND k.tenant_id = q.tenant_id AND k.day = (now() AT TIME ZONE 'UTC')::date
         ), quota AS (
             -- The quota check: the row's lock orders a tenant's accepts; the check sees the
             -- row as the accept before it committed it.
             INSERT INTO quota_counters AS k (tenant_id, day, used)
             SELECT tenant_id, (now() AT TIME ZONE 'UTC')::date, used
             FROM q
             WHERE (per_day IS NOT NULL OR per_month IS NOT NULL)
               AND (per_day IS NULL OR used + day_other <= per_day)
               AND (per_month IS NULL OR used + month_other <= per_month)
             ORDER BY tenant_id
             ON CONFLICT (tenant_id, day) DO UPDATE
             SET used = k.used + excluded.used
             WHERE NOT EXISTS (
                 SELECT 1 FROM q
                 WHERE q.tenant_id = k.tenant_id
                   AND ((q.per_day IS NOT NULL AND k.used + q.used + q.day_other > q.per_day)
                        OR (q.per_month IS NOT NULL AND k.used + q.used + q.month_other > q.per_month)))
             RETURNING tenant_id
         ), passed AS (
             SELECT tenant_id FROM q WHERE per_day IS NULL AND per_month IS NULL
             UNION ALL
             SELECT tenant_id FROM quota
         ), counted AS (
             INSERT INTO usage_daily AS u (tenant_id, project_id, day, shard, used, sent,
                                           smtp_messages, suppressed)
             SELECT c.tenant_id, c.project_id, (now() AT TIME ZONE 'UTC')::date, $9::int2,
                    c.used, c.sent, c.smtp,
                    (SELECT count(*) FROM r
                     WHERE r.tenant_id = c.tenant_id AND r.project_id = c.project_id AND r.listed)
             FROM c
             WHERE c.tenant_id IN (SELECT tenant_id FROM passed)
             ORDER BY c.tenant_id, c.project_id
             ON CONFLICT (tenant_id, day, project_id, shard) DO UPDATE
             SET used = u.used + excluded.used, sent = u.sent + excluded.sent,
                 smtp_messages = u.smtp_messages + excluded.smtp_messages,
                 suppressed = u.suppressed + excluded.suppressed
         ), e AS (
             INSERT INTO emails (tenant_id, project_id, id, message_id, from_address,
                                 envelope_from, smtputf8, reply_to, subject, html, text, tags,
                                 mime, scheduled_at)
             SELECT u.tenant_id, u.project_id, u.id, u.message_id, u.from_address,
                    u.envelope_from, u.smtputf8, u.reply_to, u.subject, u.html, u.text, u.tags,
                    u.mime, u.scheduled_at
             FROM UNNEST($1::accept_email[]) u
             WHERE u.tenant_id IN (SELECT tenant_id FROM passed)
         ), d AS (
             INSERT INTO deliveries (tenant_id, project_id, id, email_id, recipient, kind, status,
                                     next_attempt_at)
             SELECT tenant_id, project_id, id, email_id, recipient, kind, status,
                    COALESCE(scheduled_at, now())
             FROM r WHERE r.tenant_id IN (SELECT tenant_id FROM passed)
         ), ev AS (
             INSERT INTO email_events (tenant_id, project_id, email_id, delivery_id, type, recipient)
             SELECT tenant_id, project_id, email_id, id, event, recipient
             FROM r WHERE r.tenant_id IN (SELECT tenant_id FROM passed)
             RETURNING tenant_id, project_id, email_id, id, type
         ), ",
        "$10",
        "$11",
        // The refused tenants, with the quota (as far as this snapshot tells: the day's unless
        // only the month's is set or the day's still had room).
        r#" SELECT q.tenant_id AS "tenant_id!",
                   CASE WHEN q.per_month IS NULL
                          OR (q.per_day IS NOT NULL AND q.used + q.day_total > q.per_day)
                        THEN $12 ELSE $13 END AS "period!"
            FROM q WHERE q.tenant_id NOT IN (SELECT tenant_id FROM passed)"#,
        &rows[..] as &[AcceptEmail<'_>],
        &deliveries[..] as &[AcceptDelivery<'_>],
        &counts[..] as &[AcceptCount],
        DeliveryStatus::Queued.as_str(),
        DeliveryStatus::Suppressed.as_str(),
        EventKind::Suppressed.as_str(),
        defaults.emails_per_day.and_then(|n| i64::try_from(n).ok()),
        defaults.emails_per_month.and_then(|n| i64::try_from(n).ok()),
        shard,
        &EVENT_HOOKS[..] as &[EventHook<'_>],
        WebhookStatus::Enabled.as_str(),
        QuotaPeriod::Daily.as_str(),
        QuotaPeriod::Monthly.as_str(),
    )
    .fetch_all(&mut *conn)
    .await?;
    refusals(refused.into_iter().map(|r| (r.tenant_id, r.period)))
}

impl Store {
    /// Stores emails with their deliveries and events, and the idempotency record, in one
    /// transaction. Returns only after the commit.
    ///
    /// # Errors
    /// Database failures; nothing is stored then.
    #[tracing::instrument(skip_all, fields(emails = emails.len()))]
    pub async fn insert_emails(
        &self,
        project: impl Into<ProjectRef>,
        emails: &[NewEmail],
        idempotency: Option<&IdempotencyRecord<'_>>,
    ) -> Result<InsertOutcome, StoreError> {
        let project = project.into();
        let mut tx = self.pool.begin().await?;
        let ids: Vec<Uuid> = emails.iter().map(|e| e.id.as_uuid()).collect();
        if let Some(record) = idempotency
            && let Some(outcome) = claim_idempotency_key(&mut tx, project, record, &ids).await?
        {
            tx.rollback().await?;
            return Ok(outcome);
        }
        let rows: Vec<(ProjectRef, &NewEmail)> = emails.iter().map(|e| (project, e)).collect();
        let refused = insert_rows(&mut tx, &rows, other_shard(), self.default_limits).await?;
        if let Some((_, period)) = refused.first() {
            // Nothing of it was stored; the idempotency claim goes with the rollback.
            tx.rollback().await?;
            return Err(StoreError::OverQuota(*period));
        }
        tx.commit().await?;
        Ok(InsertOutcome::Inserted)
    }
}
