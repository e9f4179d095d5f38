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
    QuotaPeriod, TenantId, WebhookStatus,
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
    }
}

composite! {
    /// One tenant's counts in an accept statement (the `accept_count` type): recipients, emails,
    /// emails over SMTP.
    AcceptCount = "accept_count" {
        tenant_id: Uuid,
        used: i64,
        sent: i64,
        smtp: i64,
    }
}

async fn claim_idempotency_key(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    record: &IdempotencyRecord<'_>,
    email_ids: &[Uuid],
) -> Result<Option<InsertOutcome>, StoreError> {
    // A key past its window is forgotten, then claimed afresh.
    sqlx::query!(
        "DELETE FROM idempotency_keys
         WHERE tenant_id = $1 AND key = $2 AND created_at < now() - $3::text::interval",
        tenant_id.as_uuid(),
        record.key.as_str(),
        IDEMPOTENCY_WINDOW,
    )
    .execute(&mut *conn)
    .await?;
    // A concurrent request with the same key waits here on the unique index until the first
    // commits, then sees its row.
    let inserted = sqlx::query!(
        "INSERT INTO idempotency_keys (tenant_id, key, request_hash, email_ids)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id, key) DO NOTHING",
        tenant_id.as_uuid(),
        record.key.as_str(),
        record.fingerprint.as_bytes().as_slice(),
        email_ids,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(None);
    }
    let claimed = sqlx::query!(
        r#"SELECT request_hash, email_ids AS "email_ids: Vec<EmailId>" FROM idempotency_keys
           WHERE tenant_id = $1 AND key = $2"#,
        tenant_id.as_uuid(),
        record.key.as_str(),
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

/// Inserts emails of any tenants, their deliveries and their first events in one statement:
/// one round trip whatever the number of emails, which is what makes grouping commits pay.
///
/// The same statement counts them in `usage_daily` (in `shard`, for tenants without a quota)
/// and checks each tenant's quotas (`defaults` where a tenant has none set): a tenant whose
/// emails would exceed one has nothing stored and is returned with the quota; the other
/// tenants' emails are stored.
pub(crate) async fn insert_rows(
    conn: &mut PgConnection,
    emails: &[(TenantId, &NewEmail)],
    shard: i16,
    defaults: Limits,
) -> Result<Vec<(TenantId, QuotaPeriod)>, StoreError> {
    let mut rows = Vec::with_capacity(emails.len());
    let mut deliveries = Vec::new();
    // Per tenant, in key order (the order counting statements take row locks in).
    let mut counts: BTreeMap<Uuid, AcceptCount> = BTreeMap::new();
    for (tenant_id, email) in emails {
        let tenant_id = tenant_id.as_uuid();
        let count = counts.entry(tenant_id).or_insert(AcceptCount {
            tenant_id,
            used: 0,
            sent: 0,
            smtp: 0,
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
             SELECT tenant_id, id, email_id, recipient, kind, scheduled_at,
                    CASE WHEN listed THEN $5 ELSE $4 END AS status,
                    CASE WHEN listed THEN $6 ELSE event END AS event, listed
             FROM (SELECT r.*, EXISTS (SELECT 1 FROM suppressions s
                                        WHERE s.tenant_id = r.tenant_id
                                          AND s.email = lower(r.recipient)) AS listed
                   FROM UNNEST($2::accept_delivery[]) r
                   OFFSET 0) r
         ), q AS (
             -- Each tenant's counts in this statement, its quotas, and what it used before:
             -- today in the shards other than 0, and this month except today's shard 0 (rows
             -- no accept of a tenant with a quota writes, so this statement's snapshot of them
             -- is as good as the latest). Read only for tenants with a quota.
             SELECT q.tenant_id, q.used, q.sent, q.smtp,
                    (SELECT count(*) FROM r WHERE r.tenant_id = q.tenant_id AND r.listed) AS suppressed,
                    l.per_day, l.per_month,
                    COALESCE(o.day_other, 0) AS day_other, COALESCE(o.month_other, 0) AS month_other,
                    COALESCE(o.day_total, 0) AS day_total
             FROM UNNEST($3::accept_count[]) q
             CROSS JOIN LATERAL (
                 SELECT COALESCE(max(t.emails_per_day), $7::int8) AS per_day,
                        COALESCE(max(t.emails_per_month), $8::int8) AS per_month
                 FROM tenants t WHERE t.id = q.tenant_id
             ) l
             LEFT JOIN LATERAL (
                 SELECT sum(u.used) FILTER (WHERE u.day = x.today AND u.shard <> 0) AS day_other,
                        sum(u.used) FILTER (WHERE u.day <> x.today OR u.shard <> 0) AS month_other,
                        sum(u.used) FILTER (WHERE u.day = x.today) AS day_total
                 FROM (SELECT (now() AT TIME ZONE 'UTC')::date AS today) x
                 JOIN usage_daily u ON u.tenant_id = q.tenant_id
                  AND u.day BETWEEN date_trunc('month', x.today)::date AND x.today
                 WHERE l.per_day IS NOT NULL OR l.per_month IS NOT NULL
             ) o ON true
         ), counted AS (
             -- The quota check: a tenant with a quota counts in shard 0, whose row lock orders
             -- its accepts; the check sees the row as the accept before it committed it.
             INSERT INTO usage_daily AS u (tenant_id, day, shard, used, sent, smtp_messages,
                                           suppressed)
             SELECT tenant_id, (now() AT TIME ZONE 'UTC')::date,
                    CASE WHEN per_day IS NULL AND per_month IS NULL THEN $9::int2 ELSE 0 END,
                    used, sent, smtp, suppressed
             FROM q
             WHERE (per_day IS NULL OR used + day_other <= per_day)
               AND (per_month IS NULL OR used + month_other <= per_month)
             ORDER BY tenant_id
             ON CONFLICT (tenant_id, day, shard) DO UPDATE
             SET used = u.used + excluded.used, sent = u.sent + excluded.sent,
                 smtp_messages = u.smtp_messages + excluded.smtp_messages,
                 suppressed = u.suppressed + excluded.suppressed
             WHERE NOT EXISTS (
                 SELECT 1 FROM q
                 WHERE q.tenant_id = u.tenant_id
                   AND ((q.per_day IS NOT NULL AND u.used + q.used + q.day_other > q.per_day)
                        OR (q.per_month IS NOT NULL AND u.used + q.used + q.month_other > q.per_month)))
             RETURNING tenant_id
         ), e AS (
             INSERT INTO emails (tenant_id, id, message_id, from_address, envelope_from, smtputf8,
                                 reply_to, subject, html, text, tags, mime, scheduled_at)
             SELECT u.tenant_id, u.id, u.message_id, u.from_address, u.envelope_from, u.smtputf8,
                    u.reply_to, u.subject, u.html, u.text, u.tags, u.mime, u.scheduled_at
             FROM UNNEST($1::accept_email[]) u
             WHERE u.tenant_id IN (SELECT tenant_id FROM counted)
         ), d AS (
             INSERT INTO deliveries (tenant_id, id, email_id, recipient, kind, status, next_attempt_at)
             SELECT tenant_id, id, email_id, recipient, kind, status, COALESCE(scheduled_at, now())
             FROM r WHERE r.tenant_id IN (SELECT tenant_id FROM counted)
         ), ev AS (
             INSERT INTO email_events (tenant_id, email_id, delivery_id, type, recipient)
             SELECT tenant_id, email_id, id, event, recipient
             FROM r WHERE r.tenant_id IN (SELECT tenant_id FROM counted)
             RETURNING tenant_id, email_id, id, type
         ), ",
        "$10",
        "$11",
        // The refused tenants, with the quota (as far as this snapshot tells: the day's unless
        // only the month's is set or the day's still had room).
        r#" SELECT q.tenant_id AS "tenant_id!",
                   CASE WHEN q.per_month IS NULL
                          OR (q.per_day IS NOT NULL AND q.used + q.day_total > q.per_day)
                        THEN $12 ELSE $13 END AS "period!"
            FROM q WHERE q.tenant_id NOT IN (SELECT tenant_id FROM counted)"#,
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
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant_id, emails = emails.len()))]
    pub async fn insert_emails(
        &self,
        tenant_id: TenantId,
        emails: &[NewEmail],
        idempotency: Option<&IdempotencyRecord<'_>>,
    ) -> Result<InsertOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<Uuid> = emails.iter().map(|e| e.id.as_uuid()).collect();
        if let Some(record) = idempotency
            && let Some(outcome) = claim_idempotency_key(&mut tx, tenant_id, record, &ids).await?
        {
            tx.rollback().await?;
            return Ok(outcome);
        }
        let rows: Vec<(TenantId, &NewEmail)> = emails.iter().map(|e| (tenant_id, e)).collect();
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
