//! Mail received for tenants' receiving domains: which tenant a domain receives for, the received
//! message stored whole before the MX's 250 (with what listings show, the authentication
//! verdicts, the `email.received` outbox rows and the tenant's counts, in one statement that
//! also holds the tenant to its caps), and the Receiving API's reads.

use std::net::IpAddr;

use missive_core::sending_domain::{Capability, InboundDmarc, RECEIVING_MX, VerificationStatus};
use missive_core::{DomainId, TenantId, WebhookEventType, WebhookStatus};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::cursor::{fetch_page, finish_page};
use crate::usage::other_shard;
use crate::{Cursor, Store, StoreError};

/// The tenant a domain receives for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceivingDomain {
    pub tenant_id: TenantId,
    pub id: DomainId,
    /// Refuse a message whose DMARC check fails under the author domain's reject policy.
    pub enforce_dmarc: bool,
}

/// A received message to store.
#[derive(Debug)]
pub struct NewReceivedEmail<'a> {
    pub tenant_id: TenantId,
    pub domain_id: DomainId,
    /// `""` for the null reverse path.
    pub mail_from: &'a str,
    pub rcpt_to: &'a [String],
    pub message_id: Option<&'a str>,
    pub from_address: Option<&'a str>,
    pub subject: Option<&'a str>,
    /// [`missive_core::received::Summary`] as JSON.
    pub summary: &'a serde_json::Value,
    /// The verdicts as JSON.
    pub authentication: &'a serde_json::Value,
    pub client_ip: Option<IpAddr>,
    pub helo: Option<&'a str>,
    pub raw: &'a [u8],
}

/// The operator's inbound caps, for tenants that set none; `None`: no cap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceivingCaps {
    pub per_day: Option<u64>,
    pub stored_bytes: Option<u64>,
}

/// What storing a received message came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    Received(Uuid),
    /// The tenant took its messages for the day.
    OverDailyCap,
    /// The tenant's stored bytes would pass its cap.
    OverStorageCap,
}

/// A received message as the Receiving API lists it.
#[derive(Clone, Debug)]
pub struct ReceivedRecord {
    pub id: Uuid,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    pub size: i32,
    pub summary: serde_json::Value,
    pub authentication: serde_json::Value,
    pub client_ip: Option<String>,
    pub helo: Option<String>,
    pub created_at: OffsetDateTime,
}

/// One page of received messages, newest first.
#[derive(Clone, Debug)]
pub struct ReceivedPage {
    pub items: Vec<ReceivedRecord>,
    pub has_more: bool,
}

/// The columns of a [`ReceivedRecord`], for a checked statement.
macro_rules! received_columns {
    ($then:ident!($($before:tt)*) $($after:tt)*) => {
        $then!(
            $($before)*
            r#"id AS "id!", mail_from AS "mail_from!", rcpt_to AS "rcpt_to!", message_id,
               subject, size AS "size!", summary AS "summary!", authentication AS "authentication!",
               host(client_ip) AS client_ip, helo, created_at AS "created_at!""#
            $($after)*
        )
    };
}

/// Rows per tenant its arrivals count in (see the `received_totals` table).
const TOTALS_SHARDS: i16 = 16;

fn cap(value: Option<u64>) -> Option<i64> {
    value.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

impl Store {
    /// The tenant `name` receives for: a domain with receiving enabled whose MX record was
    /// found at its last check (or, with `allow_unverified`, whatever its records say).
    ///
    /// # Errors
    /// Database failures.
    pub async fn receiving_domain(
        &self,
        name: &str,
        allow_unverified: bool,
    ) -> Result<Option<ReceivingDomain>, StoreError> {
        let found = sqlx::query!(
            r#"SELECT tenant_id AS "tenant_id: TenantId", id AS "id: DomainId",
                      inbound_dmarc AS "inbound_dmarc: InboundDmarc"
               FROM domains
               WHERE name = lower($1) AND receiving = $2
                 AND ($3 OR record_checks -> $4 ->> 'status' = $5)"#,
            name,
            Capability::Enabled.as_str(),
            allow_unverified,
            RECEIVING_MX,
            VerificationStatus::Verified.as_str(),
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.map(|r| ReceivingDomain {
            tenant_id: r.tenant_id,
            id: r.id,
            enforce_dmarc: r.inbound_dmarc == InboundDmarc::Enforce,
        }))
    }

    /// Stores a received message for its tenant (readable by all its projects), unless it would
    /// pass the tenant's caps (its own, else `caps`; concurrent arrivals may pass one by at most
    /// their number): in the same statement, the tenant's totals move, its usage counts the
    /// message, and an `email.received` outbox row is written for every enabled endpoint of the
    /// tenant subscribed to it.
    ///
    /// # Errors
    /// Database failures; nothing is stored then.
    pub async fn insert_received_email(
        &self,
        new: &NewReceivedEmail<'_>,
        caps: ReceivingCaps,
    ) -> Result<Stored, StoreError> {
        let id = Uuid::now_v7();
        let size = i64::try_from(new.raw.len()).unwrap_or(i64::MAX);
        // The caps are checked against the totals as committed (no lock taken), and the
        // arrival counts in a shard of its own choosing. The default project's id is the
        // tenant's.
        let row = sqlx::query!(
            r#"WITH t AS (
                   SELECT coalesce(received_per_day, $15::int8) AS per_day,
                          coalesce(received_stored_bytes, $16::int8) AS max_bytes,
                          (now() AT TIME ZONE 'UTC')::date AS today
                   FROM tenants WHERE id = $1
               ), seen AS (
                   SELECT coalesce(sum(r.today) FILTER (WHERE r.day = t.today), 0)::int8 AS today,
                          coalesce(sum(r.stored_bytes), 0)::int8 AS stored
                   FROM t LEFT JOIN received_totals r ON r.tenant_id = $1
               ), room AS (
                   SELECT t.today FROM t, seen
                   WHERE (t.per_day IS NULL OR seen.today < t.per_day)
                     AND (t.max_bytes IS NULL OR seen.stored + $10 <= t.max_bytes)
               ), totals AS (
                   INSERT INTO received_totals AS r (tenant_id, shard, day, today, stored_bytes)
                   SELECT $1, $20, room.today, 1, $10 FROM room
                   ON CONFLICT (tenant_id, shard) DO UPDATE
                   SET today = CASE WHEN r.day = excluded.day THEN r.today + 1 ELSE 1 END,
                       day = excluded.day,
                       stored_bytes = r.stored_bytes + excluded.stored_bytes
               ), stored AS (
                   INSERT INTO received_emails (tenant_id, project_id, id, domain_id, mail_from,
                                                rcpt_to, message_id, from_address, subject, size,
                                                raw, summary, authentication, client_ip, helo)
                   SELECT $1, $1, $2, $3, $4, $5, $6, $7, $8, $10::int8::int4, $9, $11, $12,
                          $13::text::inet, $14
                   FROM room
                   RETURNING tenant_id, id
               ), hooks AS (
                   INSERT INTO webhook_events (tenant_id, project_id, webhook_id, type, email_id)
                   SELECT s.tenant_id, w.project_id, w.id, $17, s.id
                   FROM stored s
                   JOIN webhooks w ON w.tenant_id = s.tenant_id AND w.status = $18
                                  AND $17 = ANY (w.events)
               ), counted AS (
                   INSERT INTO usage_daily AS u (tenant_id, project_id, day, shard, received,
                                                 received_bytes)
                   SELECT s.tenant_id, s.tenant_id, (now() AT TIME ZONE 'UTC')::date, $19::int2,
                          1, $10
                   FROM stored s
                   ON CONFLICT (tenant_id, day, project_id, shard) DO UPDATE
                   SET received = u.received + 1,
                       received_bytes = u.received_bytes + excluded.received_bytes
               )
               SELECT (SELECT count(*) FROM stored) AS "stored!",
                      (SELECT per_day FROM t) AS per_day,
                      (SELECT today FROM seen) AS today"#,
            new.tenant_id.as_uuid(),
            id,
            new.domain_id.as_uuid(),
            new.mail_from,
            new.rcpt_to,
            new.message_id,
            new.from_address,
            new.subject,
            new.raw,
            size,
            new.summary,
            new.authentication,
            new.client_ip.map(|ip| ip.to_string()),
            new.helo,
            cap(caps.per_day),
            cap(caps.stored_bytes),
            WebhookEventType::Received.as_str(),
            WebhookStatus::Enabled.as_str(),
            other_shard(),
            rand::random_range(0..TOTALS_SHARDS),
        )
        .fetch_one(&self.pool)
        .await?;
        if row.stored > 0 {
            return Ok(Stored::Received(id));
        }
        // Refused: the statement saw the totals as the arrivals before committed them.
        Ok(match (row.per_day, row.today) {
            (Some(per_day), Some(today)) if today >= per_day => Stored::OverDailyCap,
            (Some(0), _) => Stored::OverDailyCap,
            _ => Stored::OverStorageCap,
        })
    }

    /// A page of the tenant's received mail, newest first.
    ///
    /// # Errors
    /// Database failures.
    pub async fn list_received_emails(
        &self,
        tenant_id: TenantId,
        cursor: Cursor,
        limit: i64,
    ) -> Result<ReceivedPage, StoreError> {
        let rows = self
            .confined_read(tenant_id, async |conn| {
                Ok(received_columns!(
                    fetch_page!(&mut *conn, ReceivedRecord,),
                    "received_emails",
                    "",
                    tenant_id,
                    cursor,
                    limit,
                ))
            })
            .await?;
        let (items, has_more) = finish_page(rows, cursor, limit);
        Ok(ReceivedPage { items, has_more })
    }

    /// One received message and its raw text.
    ///
    /// # Errors
    /// `NotFound` when the tenant has no such message.
    pub async fn received_email(
        &self,
        tenant_id: TenantId,
        id: Uuid,
    ) -> Result<(ReceivedRecord, Vec<u8>), StoreError> {
        self.confined_read(tenant_id, async |conn| {
            let r = sqlx::query!(
                r#"SELECT id, mail_from, rcpt_to, message_id, subject, size, summary,
                          authentication, host(client_ip) AS client_ip, helo, created_at, raw
                   FROM received_emails WHERE tenant_id = $1 AND id = $2"#,
                tenant_id.as_uuid(),
                id,
            )
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound)?;
            let record = ReceivedRecord {
                id: r.id,
                mail_from: r.mail_from,
                rcpt_to: r.rcpt_to,
                message_id: r.message_id,
                subject: r.subject,
                size: r.size,
                summary: r.summary,
                authentication: r.authentication,
                client_ip: r.client_ip,
                helo: r.helo,
                created_at: r.created_at,
            };
            Ok((record, r.raw))
        })
        .await
    }
}
