//! Emails, their deliveries and events, and idempotency records.
//!
//! Statuses and event kinds are written from the core model ([`DeliveryStatus`],
//! [`EventKind`]) as bound values, never spelled in SQL, and read back through the same types.
//! Filters that must match a partial index's predicate (`status IN ('queued', 'deferred')`) keep
//! the names literal, as the index does; the columns' `CHECK` constraints hold the full lists.

use missive_core::submission::{Recipient, RecipientKind, Tag};
use std::collections::BTreeMap;

use missive_core::{
    DeliveryStatus, EmailAddress, EventKind, Fingerprint, IdempotencyKey, Limits, Mailbox,
    QuotaPeriod, TenantId,
};
use sqlx::{FromRow, PgConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::outbox::report_events;
use crate::usage::{other_shard, refusals};
use crate::{Store, StoreError};

/// An email ready to store: everything validated and rendered by the accept path.
#[derive(Debug)]
pub struct NewEmail {
    pub id: Uuid,
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
    Replay { email_ids: Vec<Uuid> },
    /// The key was used before for another request.
    KeyReused,
}

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_WINDOW: &str = "24 hours";

/// An email as read back.
#[derive(Clone, Debug, FromRow)]
pub struct EmailRecord {
    #[sqlx(try_from = "Uuid")]
    pub tenant_id: TenantId,
    pub id: Uuid,
    pub message_id: String,
    pub from_address: String,
    pub reply_to: Vec<String>,
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
    pub tags: serde_json::Value,
    pub scheduled_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

/// One recipient's delivery state.
#[derive(Clone, Debug, FromRow)]
pub struct DeliveryRecord {
    pub id: Uuid,
    pub email_id: Uuid,
    pub recipient: String,
    #[sqlx(try_from = "String")]
    pub kind: RecipientKind,
    #[sqlx(try_from = "String")]
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: OffsetDateTime,
    pub last_smtp_code: Option<i32>,
    pub last_smtp_response: Option<String>,
    /// `hard` or `soft` (core `BounceClass`), after a refusal.
    pub bounce_class: Option<String>,
    /// The latest attempt's route (`shared` or `tenant`) and relay.
    pub route: Option<String>,
    pub route_host: Option<String>,
    pub updated_at: OffsetDateTime,
}

/// One entry of an email's history.
#[derive(Clone, Debug, FromRow)]
pub struct EventRecord {
    pub id: i64,
    pub delivery_id: Option<Uuid>,
    #[sqlx(rename = "type", try_from = "String")]
    pub kind: EventKind,
    pub recipient: Option<String>,
    pub smtp_code: Option<i32>,
    pub smtp_response: Option<String>,
    /// For an attempt's outcome: its route and relay.
    pub route: Option<String>,
    pub route_host: Option<String>,
    pub created_at: OffsetDateTime,
}

/// An email with its recipients and its history.
#[derive(Debug)]
pub struct EmailDetail {
    pub email: EmailRecord,
    pub deliveries: Vec<DeliveryRecord>,
    pub events: Vec<EventRecord>,
}

/// A page of emails, newest first, with the recipients of each (in email then recipient order).
#[derive(Debug)]
pub struct EmailPage {
    pub emails: Vec<EmailRecord>,
    pub deliveries: Vec<DeliveryRecord>,
    /// Whether older emails match too.
    pub has_more: bool,
}

/// Filters for listing emails.
#[derive(Debug, Default)]
pub struct EmailFilter {
    /// Only emails with a recipient in this delivery status.
    pub status: Option<DeliveryStatus>,
    /// Only emails carrying this tag (`name` and `value`).
    pub tag: Option<(String, String)>,
    pub created_after: Option<OffsetDateTime>,
    pub created_before: Option<OffsetDateTime>,
    /// Cursor: emails older than this one.
    pub before_id: Option<Uuid>,
}

async fn claim_idempotency_key(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    record: &IdempotencyRecord<'_>,
    email_ids: &[Uuid],
) -> Result<Option<InsertOutcome>, StoreError> {
    // A key past its window is forgotten, then claimed afresh.
    sqlx::query(
        "DELETE FROM idempotency_keys
         WHERE tenant_id = $1 AND key = $2 AND created_at < now() - $3::interval",
    )
    .bind(tenant_id.as_uuid())
    .bind(record.key.as_str())
    .bind(IDEMPOTENCY_WINDOW)
    .execute(&mut *conn)
    .await?;
    // A concurrent request with the same key waits here on the unique index until the first
    // commits, then sees its row.
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (tenant_id, key, request_hash, email_ids)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id, key) DO NOTHING",
    )
    .bind(tenant_id.as_uuid())
    .bind(record.key.as_str())
    .bind(record.fingerprint.as_bytes().as_slice())
    .bind(email_ids)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(None);
    }
    let (hash, email_ids): (Vec<u8>, Vec<Uuid>) = sqlx::query_as(
        "SELECT request_hash, email_ids FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
    )
    .bind(tenant_id.as_uuid())
    .bind(record.key.as_str())
    .fetch_one(&mut *conn)
    .await?;
    Ok(Some(if hash == record.fingerprint.as_bytes() {
        InsertOutcome::Replay { email_ids }
    } else {
        InsertOutcome::KeyReused
    }))
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
    let n = emails.len();
    let mut tenants = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    let mut message_ids = Vec::with_capacity(n);
    let mut envelope_froms = Vec::with_capacity(n);
    let mut smtputf8 = Vec::with_capacity(n);
    // Arrays of arrays must be rectangular in Postgres, so each reply-to list travels as JSON.
    let mut reply_tos = Vec::with_capacity(n);
    let mut from_headers = Vec::with_capacity(n);
    let mut subjects = Vec::with_capacity(n);
    let mut htmls = Vec::with_capacity(n);
    let mut texts = Vec::with_capacity(n);
    let mut tags = Vec::with_capacity(n);
    let mut mimes = Vec::with_capacity(n);
    let mut scheduled = Vec::with_capacity(n);
    let mut d_tenants = Vec::new();
    let mut d_ids = Vec::new();
    let mut d_emails = Vec::new();
    let mut d_recipients = Vec::new();
    let mut d_kinds = Vec::new();
    let mut d_scheduled = Vec::new();
    let mut d_events = Vec::new();
    // Per tenant, in key order (the order counting statements take row locks in): recipients,
    // emails, emails over SMTP.
    let mut counts: BTreeMap<Uuid, (i64, i64, i64)> = BTreeMap::new();
    for (tenant_id, email) in emails {
        let count = counts.entry(tenant_id.as_uuid()).or_default();
        count.0 += i64::try_from(email.recipients.len()).unwrap_or(i64::MAX);
        count.1 += 1;
        count.2 += i64::from(email.over_smtp);
        tenants.push(tenant_id.as_uuid());
        ids.push(email.id);
        message_ids.push(email.message_id.as_str());
        from_headers.push(email.from.to_string());
        envelope_froms.push(email.envelope_from.as_str());
        smtputf8.push(email.smtputf8);
        reply_tos.push(serde_json::Value::Array(
            email
                .reply_to
                .iter()
                .map(|m| serde_json::Value::String(m.to_string()))
                .collect(),
        ));
        subjects.push(email.subject.as_str());
        htmls.push(email.html.as_deref());
        texts.push(email.text.as_deref());
        tags.push(serde_json::to_value(&email.tags).unwrap_or_else(|_| serde_json::json!([])));
        mimes.push(email.mime.as_slice());
        scheduled.push(email.scheduled_at);
        let event = EventKind::accepted(email.scheduled_at.is_some()).as_str();
        for recipient in &email.recipients {
            d_tenants.push(tenant_id.as_uuid());
            d_ids.push(Uuid::now_v7());
            d_emails.push(email.id);
            d_recipients.push(recipient.address.as_str());
            d_kinds.push(recipient.kind.as_str());
            d_scheduled.push(email.scheduled_at);
            d_events.push(event);
        }
    }
    let q_tenants: Vec<Uuid> = counts.keys().copied().collect();
    let q_used: Vec<i64> = counts.values().map(|c| c.0).collect();
    let q_sent: Vec<i64> = counts.values().map(|c| c.1).collect();
    let q_smtp: Vec<i64> = counts.values().map(|c| c.2).collect();
    let refused: Vec<(Uuid, String)> = sqlx::query_as(concat!(
        "WITH r AS (
             -- A recipient on the tenant's suppression list is suppressed from the start. A
             -- probe per row rather than a join, which could reorder the rows (and so the
             -- recipients of a relay transaction).
             SELECT tenant_id, id, email_id, recipient, kind, scheduled_at,
                    CASE WHEN listed THEN $24 ELSE $23 END AS status,
                    CASE WHEN listed THEN $25 ELSE event END AS event, listed
             FROM (SELECT r.*, EXISTS (SELECT 1 FROM suppressions s
                                        WHERE s.tenant_id = r.tenant_id
                                          AND s.email = lower(r.recipient)) AS listed
                   FROM UNNEST($14::uuid[], $15::uuid[], $16::uuid[], $17::text[], $18::text[],
                               $19::timestamptz[], $20::text[])
                       AS r(tenant_id, id, email_id, recipient, kind, scheduled_at, event)
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
             FROM UNNEST($26::uuid[], $27::int8[], $28::int8[], $29::int8[])
                 AS q(tenant_id, used, sent, smtp)
             CROSS JOIN LATERAL (
                 SELECT COALESCE(max(t.emails_per_day), $30::int8) AS per_day,
                        COALESCE(max(t.emails_per_month), $31::int8) AS per_month
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
                    CASE WHEN per_day IS NULL AND per_month IS NULL THEN $32::int2 ELSE 0 END,
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
                    ARRAY(SELECT jsonb_array_elements_text(u.reply_to)), u.subject, u.html, u.text,
                    u.tags, u.mime, u.scheduled_at
             FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::bool[],
                         $7::jsonb[], $8::text[], $9::text[], $10::text[], $11::jsonb[], $12::bytea[],
                         $13::timestamptz[])
                 AS u(tenant_id, id, message_id, from_address, envelope_from, smtputf8, reply_to,
                      subject, html, text, tags, mime, scheduled_at)
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
        report_events!("$21", "$22"),
        // The refused tenants, with the quota (as far as this snapshot tells: the day's unless
        // only the month's is set or the day's still had room).
        " SELECT q.tenant_id,
                 CASE WHEN q.per_month IS NULL
                        OR (q.per_day IS NOT NULL AND q.used + q.day_total > q.per_day)
                      THEN 'daily' ELSE 'monthly' END
          FROM q WHERE q.tenant_id NOT IN (SELECT tenant_id FROM counted)"
    ))
    .bind(&tenants)
    .bind(&ids)
    .bind(&message_ids)
    .bind(&from_headers)
    .bind(&envelope_froms)
    .bind(&smtputf8)
    .bind(&reply_tos)
    .bind(&subjects)
    .bind(&htmls)
    .bind(&texts)
    .bind(&tags)
    .bind(&mimes)
    .bind(&scheduled)
    .bind(&d_tenants)
    .bind(&d_ids)
    .bind(&d_emails)
    .bind(&d_recipients)
    .bind(&d_kinds)
    .bind(&d_scheduled)
    .bind(&d_events)
    .bind(crate::outbox::KINDS.as_slice())
    .bind(crate::outbox::HOOKS.as_slice())
    .bind(DeliveryStatus::Queued.as_str())
    .bind(DeliveryStatus::Suppressed.as_str())
    .bind(EventKind::Suppressed.as_str())
    .bind(&q_tenants)
    .bind(&q_used)
    .bind(&q_sent)
    .bind(&q_smtp)
    .bind(defaults.emails_per_day.and_then(|n| i64::try_from(n).ok()))
    .bind(defaults.emails_per_month.and_then(|n| i64::try_from(n).ok()))
    .bind(shard)
    .fetch_all(&mut *conn)
    .await?;
    refusals(refused)
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
        let ids: Vec<Uuid> = emails.iter().map(|e| e.id).collect();
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

    /// One email of one tenant.
    ///
    /// # Errors
    /// `NotFound` when the tenant has no such email.
    pub async fn get_email(
        &self,
        tenant_id: TenantId,
        id: Uuid,
    ) -> Result<EmailRecord, StoreError> {
        self.confined_read(tenant_id, async |conn| {
            select_email(conn, tenant_id, id).await
        })
        .await
    }

    /// One email of one tenant with its recipients and its history, read in one transaction.
    ///
    /// # Errors
    /// `NotFound` when the tenant has no such email.
    pub async fn email_detail(
        &self,
        tenant_id: TenantId,
        id: Uuid,
    ) -> Result<EmailDetail, StoreError> {
        self.confined_read(tenant_id, async |conn| {
            Ok(EmailDetail {
                email: select_email(conn, tenant_id, id).await?,
                deliveries: select_deliveries(conn, tenant_id, &[id]).await?,
                events: select_events(conn, tenant_id, id).await?,
            })
        })
        .await
    }

    /// A page of a tenant's emails, newest first, with their recipients.
    ///
    /// # Errors
    /// Database failures.
    pub async fn list_emails(
        &self,
        tenant_id: TenantId,
        filter: &EmailFilter,
        limit: i64,
    ) -> Result<EmailPage, StoreError> {
        self.confined_read(tenant_id, async |conn| {
            let mut emails = select_emails(conn, tenant_id, filter, limit + 1).await?;
            let has_more = emails.len() as i64 > limit;
            emails.truncate(usize::try_from(limit).unwrap_or(0));
            let ids: Vec<Uuid> = emails.iter().map(|e| e.id).collect();
            Ok(EmailPage {
                deliveries: select_deliveries(conn, tenant_id, &ids).await?,
                emails,
                has_more,
            })
        })
        .await
    }

    /// Cancels a scheduled email whose deliveries have not started.
    ///
    /// # Errors
    /// `NotFound` when the tenant has no such email; `Conflict` when it is not scheduled or
    /// sending has begun.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant_id, email_id = %email_id))]
    pub async fn cancel_email(
        &self,
        tenant_id: TenantId,
        email_id: Uuid,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_for_tenant(tenant_id).await?;
        let scheduled: Option<Option<OffsetDateTime>> = sqlx::query_scalar(
            "SELECT scheduled_at FROM emails WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
        )
        .bind(tenant_id.as_uuid())
        .bind(email_id)
        .fetch_optional(&mut *tx)
        .await?;
        match scheduled {
            None => return Err(StoreError::NotFound),
            Some(None) => {
                return Err(StoreError::Conflict(
                    "only a scheduled email can be canceled",
                ));
            }
            Some(Some(_)) => {}
        }
        // Rows a worker already holds or finished stay as they are; then the cancel is refused.
        let canceled = sqlx::query_as::<_, (Uuid, String)>(
            "UPDATE deliveries SET status = $4, updated_at = now()
             WHERE tenant_id = $1 AND email_id = $2 AND status = $3 AND attempts = 0
               AND NOT EXISTS (SELECT 1 FROM deliveries s
                               WHERE s.tenant_id = $1 AND s.email_id = $2
                                 AND (s.status <> $3 OR s.attempts > 0))
             RETURNING id, recipient",
        )
        .bind(tenant_id.as_uuid())
        .bind(email_id)
        .bind(DeliveryStatus::Queued.as_str())
        .bind(DeliveryStatus::Canceled.as_str())
        .fetch_all(&mut *tx)
        .await?;
        if canceled.is_empty() {
            return Err(StoreError::Conflict(
                "sending has already started or the email was canceled",
            ));
        }
        let (ids, recipients): (Vec<Uuid>, Vec<String>) = canceled.into_iter().unzip();
        sqlx::query(concat!(
            "WITH ev AS (
                 INSERT INTO email_events (tenant_id, email_id, delivery_id, type, recipient)
                 SELECT $1, $2, r.id, $5, r.recipient
                 FROM UNNEST($3::uuid[], $4::text[]) AS r(id, recipient)
                 RETURNING tenant_id, email_id, id, type
             ), ",
            report_events!("$6", "$7"),
            " SELECT count(*) FROM ev"
        ))
        .bind(tenant_id.as_uuid())
        .bind(email_id)
        .bind(&ids)
        .bind(&recipients)
        .bind(DeliveryStatus::Canceled.event().as_str())
        .bind(crate::outbox::KINDS.as_slice())
        .bind(crate::outbox::HOOKS.as_slice())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn select_email(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    id: Uuid,
) -> Result<EmailRecord, StoreError> {
    sqlx::query_as::<_, EmailRecord>(
        "SELECT tenant_id, id, message_id, from_address, reply_to, subject, html, text, tags,
                scheduled_at, created_at
         FROM emails WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id.as_uuid())
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(StoreError::NotFound)
}

/// The deliveries of some emails of one tenant, in email then recipient order.
async fn select_deliveries(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    email_ids: &[Uuid],
) -> Result<Vec<DeliveryRecord>, StoreError> {
    Ok(sqlx::query_as::<_, DeliveryRecord>(
        "SELECT id, email_id, recipient, kind, status, attempts, next_attempt_at,
                last_smtp_code, last_smtp_response, bounce_class, route, route_host, updated_at
         FROM deliveries WHERE tenant_id = $1 AND email_id = ANY($2)
         ORDER BY email_id, id",
    )
    .bind(tenant_id.as_uuid())
    .bind(email_ids)
    .fetch_all(conn)
    .await?)
}

/// An email's history, oldest first.
async fn select_events(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    email_id: Uuid,
) -> Result<Vec<EventRecord>, StoreError> {
    Ok(sqlx::query_as::<_, EventRecord>(
        "SELECT id, delivery_id, type, recipient, smtp_code, smtp_response, route, route_host,
                created_at
         FROM email_events WHERE tenant_id = $1 AND email_id = $2 ORDER BY id",
    )
    .bind(tenant_id.as_uuid())
    .bind(email_id)
    .fetch_all(conn)
    .await?)
}

async fn select_emails(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    filter: &EmailFilter,
    limit: i64,
) -> Result<Vec<EmailRecord>, StoreError> {
    let tag = filter
        .tag
        .as_ref()
        .map(|(name, value)| serde_json::json!([{ "name": name, "value": value }]));
    // A statement for each of the status and tag filters, with it and without: written as
    // `$6 IS NULL OR EXISTS (...)`, the recipients' check could not become a join, and Postgres
    // hashed every delivery of the wanted status before returning a page (136 ms for a tenant of
    // 100,000 delivered emails, against 6 ms unfiltered); written as `$5 IS NULL OR tags @> $5`,
    // the tag could not use its index. Each filter left out is still bound, and only checked to
    // be null.
    macro_rules! page_of_emails {
        ($tag:literal, $status:literal) => {
            concat!(
                "SELECT e.tenant_id, e.id, e.message_id, e.from_address, e.reply_to, e.subject,
                        e.html, e.text, e.tags, e.scheduled_at, e.created_at
                 FROM emails e
                 WHERE e.tenant_id = $1
                   AND ($2::uuid IS NULL OR e.id < $2)
                   AND ($3::timestamptz IS NULL OR e.created_at >= $3)
                   AND ($4::timestamptz IS NULL OR e.created_at < $4) ",
                $tag,
                " ",
                $status,
                " ORDER BY e.id DESC
                 LIMIT $7"
            )
        };
    }
    macro_rules! with_status {
        ($tag:literal) => {
            if filter.status.is_some() {
                page_of_emails!(
                    $tag,
                    "AND EXISTS (SELECT 1 FROM deliveries d
                                 WHERE d.tenant_id = e.tenant_id AND d.email_id = e.id
                                   AND d.status = $6::text)"
                )
            } else {
                page_of_emails!($tag, "AND $6::text IS NULL")
            }
        };
    }
    let statement = if tag.is_some() {
        with_status!("AND e.tags @> $5::jsonb")
    } else {
        with_status!("AND $5::jsonb IS NULL")
    };
    Ok(sqlx::query_as::<_, EmailRecord>(statement)
        .bind(tenant_id.as_uuid())
        .bind(filter.before_id)
        .bind(filter.created_after)
        .bind(filter.created_before)
        .bind(tag)
        .bind(filter.status.map(DeliveryStatus::as_str))
        .bind(limit)
        .fetch_all(conn)
        .await?)
}
