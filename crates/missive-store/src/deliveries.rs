//! Leasing deliveries to workers and recording what happened.
//!
//! A worker claims due rows in one short statement that marks them `sending`, stamps a lease
//! (expiry and id) and writes the `email.sending` events; the SMTP conversation happens outside
//! any transaction. Results are written back in one transaction per batch, and only onto rows
//! that still carry the worker's lease id, so a worker that lost its lease cannot overwrite the
//! work of the one that reclaimed it.
//!
//! Statuses and event kinds come from the core model as bound values. The filters that pick due
//! rows and expired leases spell `'queued'`, `'deferred'` and `'sending'` literally on purpose:
//! they must match the partial indexes' predicates word for word for the planner to use them.

use std::sync::LazyLock;
use std::time::Duration;

use missive_core::outcome::BounceClass;
use missive_core::{DeliveryStatus, Route, SuppressionOrigin, TenantId};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::outbox::report_events;
use crate::tenants::{StoredRelay, stored_relay};
use crate::usage::other_shard;
use crate::{Store, StoreError};

/// A delivery a worker now holds.
#[derive(Clone, Debug, FromRow)]
pub struct LeasedDelivery {
    #[sqlx(try_from = "Uuid")]
    pub tenant_id: TenantId,
    pub id: Uuid,
    pub email_id: Uuid,
    pub recipient: String,
    /// Attempts including this one.
    pub attempts: i32,
    pub created_at: OffsetDateTime,
    pub lease_id: Uuid,
}

/// What a worker needs to send an email.
#[derive(Clone, Debug, FromRow)]
pub struct OutgoingMessage {
    #[sqlx(try_from = "Uuid")]
    pub tenant_id: TenantId,
    pub id: Uuid,
    pub envelope_from: String,
    pub smtputf8: bool,
    pub mime: Vec<u8>,
    /// The tenant's own upstream server, as set when the email was leased.
    #[sqlx(skip)]
    pub relay: Option<StoredRelay>,
}

/// One attempt's result for one delivery.
#[derive(Clone, Debug)]
pub struct DeliveryResult {
    pub tenant_id: TenantId,
    pub email_id: Uuid,
    pub id: Uuid,
    pub lease_id: Uuid,
    /// Where the attempt left the delivery: delivered, deferred, bounced or failed.
    pub status: DeliveryStatus,
    /// For `Deferred`: when to try again.
    pub next_attempt_at: Option<OffsetDateTime>,
    pub smtp_code: Option<u16>,
    pub smtp_response: String,
    /// For a refusal: what it said about the address. A hard one puts the address on the
    /// tenant's suppression list.
    pub bounce: Option<BounceClass>,
    /// The route the attempt took, and the relay's `host:port` on it.
    pub route: Route,
    pub route_host: String,
}

/// The lease statement; `{per_tenant}` is each tenant's most rows. See
/// [`Store::lease_due_deliveries`].
// Expired leases first, then due rows shared out fairly: each tenant's oldest due
// rows, taken round-robin (every tenant's first, then every tenant's second...), so
// one tenant's backlog cannot starve another's mail. Candidates are chosen without
// locks (one index probe per tenant), then locked with SKIP LOCKED, which rechecks
// the conditions against rows another worker changed meanwhile.
const LEASE_TEMPLATE: &str = "WITH expired AS (
     SELECT tenant_id, email_id, id FROM deliveries
     WHERE status = 'sending' AND lease_expires_at < now()
     ORDER BY lease_expires_at
     LIMIT $1
     FOR UPDATE SKIP LOCKED
 ), candidates AS (
     SELECT c.tenant_id, c.email_id, c.id
     FROM tenants t
     CROSS JOIN LATERAL (
         SELECT x.tenant_id, x.email_id, x.id, x.next_attempt_at,
                row_number() OVER (ORDER BY x.next_attempt_at) AS turn
         FROM (SELECT tenant_id, email_id, id, next_attempt_at FROM deliveries
               WHERE tenant_id = t.id AND status IN ('queued', 'deferred')
                 AND next_attempt_at <= now()
               ORDER BY next_attempt_at
               LIMIT {per_tenant}) x
     ) c
     ORDER BY c.turn, c.next_attempt_at
     LIMIT $1
 ), fresh AS (
     -- One primary-key probe per candidate (LATERAL): a plain join let the planner
     -- hash every due row on each lease, which grew with the backlog. The row is
     -- locked by key alone and checked after: a locked row is its newest version,
     -- so one another worker leased meanwhile is left out here.
     SELECT d.tenant_id, d.email_id, d.id FROM candidates c
     CROSS JOIN LATERAL (
         SELECT tenant_id, email_id, id, status, next_attempt_at FROM deliveries
         WHERE tenant_id = c.tenant_id AND email_id = c.email_id AND id = c.id
         LIMIT 1 -- (the key is unique) keeps the status check out of this probe
         FOR UPDATE SKIP LOCKED
     ) d
     WHERE d.status IN ('queued', 'deferred') AND d.next_attempt_at <= now()
 ), due AS (
     SELECT * FROM (SELECT * FROM expired UNION ALL SELECT * FROM fresh) d LIMIT $1
 ), leased AS (
     UPDATE deliveries d
     SET status = $4, attempts = d.attempts + 1, lease_id = $2, leased_by = $6,
         lease_expires_at = now() + make_interval(secs => $3), updated_at = now()
     FROM due
     WHERE d.tenant_id = due.tenant_id AND d.email_id = due.email_id AND d.id = due.id
     RETURNING d.tenant_id, d.id, d.email_id, d.recipient, d.attempts, d.created_at, d.lease_id
 ), events AS (
     INSERT INTO email_events (tenant_id, email_id, delivery_id, type, recipient)
     SELECT tenant_id, email_id, id, $5, recipient FROM leased
 )
 SELECT * FROM leased";

/// The lease with each tenant's most rows written in, one statement per power of two: the
/// statement is planned once per connection (see [`Store::for_worker`]), and a plan made for a
/// `LIMIT` it cannot see ran four times longer than one made for a number. The batch's own
/// `LIMIT $1` still holds the lease to what was asked.
static LEASES: LazyLock<Vec<String>> = LazyLock::new(|| {
    (0..=MAX_PER_TENANT.ilog2())
        .map(|power| LEASE_TEMPLATE.replace("{per_tenant}", &(1_i64 << power).to_string()))
        .collect()
});

/// The largest per-tenant window written into a lease statement.
const MAX_PER_TENANT: i64 = 1 << 14;

/// The lease statement for a batch of at most `limit` rows.
fn lease_statement(limit: i64) -> &'static str {
    let per_tenant = u64::try_from(limit.clamp(1, MAX_PER_TENANT)).unwrap_or(1);
    &LEASES[per_tenant.next_power_of_two().ilog2() as usize]
}
// A tenant whose own server has all the jobs it can use gets none ($7, $8: allowances).
static LEASE_CAPPED: LazyLock<String> = LazyLock::new(|| {
    LEASE_TEMPLATE.replace(
        "{per_tenant}",
        "least($1, coalesce((SELECT a.n FROM UNNEST($7::uuid[], $8::int8[]) AS a(id, n)
                             WHERE a.id = t.id), $1))",
    )
});

impl Store {
    /// Claims up to `limit` due deliveries (and deliveries whose lease ran out) for `lease`, on
    /// behalf of `holder` (a registered worker's id; see [`crate::workers`]), at most the
    /// allowance given for a tenant listed in `allowances`.
    ///
    /// # Errors
    /// Database failures.
    pub async fn lease_due_deliveries(
        &self,
        limit: i64,
        lease: Duration,
        holder: Uuid,
        allowances: &[(TenantId, i64)],
    ) -> Result<Vec<LeasedDelivery>, StoreError> {
        let (capped, allowed): (Vec<Uuid>, Vec<i64>) =
            allowances.iter().map(|(t, n)| (t.as_uuid(), *n)).unzip();
        let lease_id = Uuid::now_v7();
        // Without tenant routes to cap (most of the time), the statement without the per-tenant
        // allowance: planning it costs less.
        let statement: &str = if allowances.is_empty() {
            lease_statement(limit)
        } else {
            &LEASE_CAPPED
        };
        let mut query = sqlx::query_as::<_, LeasedDelivery>(sqlx::AssertSqlSafe(statement))
            .bind(limit)
            .bind(lease_id)
            .bind(lease.as_secs_f64())
            .bind(DeliveryStatus::Sending.as_str())
            .bind(DeliveryStatus::Sending.event().as_str())
            .bind(holder);
        if !allowances.is_empty() {
            query = query.bind(&capped).bind(&allowed);
        }
        let rows = query.fetch_all(&self.pool).await?;
        Ok(rows)
    }

    /// The messages behind some leased deliveries.
    ///
    /// # Errors
    /// Database failures.
    pub async fn outgoing_messages(
        &self,
        keys: &[(TenantId, Uuid)],
    ) -> Result<Vec<OutgoingMessage>, StoreError> {
        let tenants: Vec<Uuid> = keys.iter().map(|(t, _)| t.as_uuid()).collect();
        let ids: Vec<Uuid> = keys.iter().map(|(_, id)| *id).collect();
        // With the tenant's upstream server read alongside, a change of it reaches the very
        // next attempts of every worker.
        let rows = sqlx::query(
            "SELECT e.tenant_id, e.id, e.envelope_from, e.smtputf8, e.mime,
                    t.smtp_host, t.smtp_port, t.smtp_tls, t.smtp_username, t.smtp_enabled,
                    t.smtp_password_key_id, t.smtp_password, t.smtp_changed_at
             FROM UNNEST($1::uuid[], $2::uuid[]) AS k(tenant_id, id)
             -- A key probe per email and per tenant: a join let the planner hash a full scan of
             -- emails, or of tenants, whenever its statistics had the table small. (LIMIT keeps
             -- each subquery from being flattened into a join; the keys are unique.)
             CROSS JOIN LATERAL (
                 SELECT tenant_id, id, envelope_from, smtputf8, mime FROM emails
                 WHERE tenant_id = k.tenant_id AND id = k.id
                 LIMIT 1
             ) e
             CROSS JOIN LATERAL (
                 SELECT smtp_host, smtp_port, smtp_tls, smtp_username, smtp_enabled,
                        smtp_password_key_id, smtp_password, smtp_changed_at
                 FROM tenants WHERE id = e.tenant_id
                 LIMIT 1
             ) t",
        )
        .bind(&tenants)
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let mut message = OutgoingMessage::from_row(row)?;
                message.relay = stored_relay(row)?;
                Ok(message)
            })
            .collect()
    }

    /// Writes a batch of results and their events in one transaction, and puts the addresses
    /// of hard bounces on their tenants' suppression lists. Returns how many rows still held
    /// the lease and were updated.
    ///
    /// # Errors
    /// Database failures.
    pub async fn record_delivery_results(
        &self,
        results: &[DeliveryResult],
    ) -> Result<u64, StoreError> {
        if results.is_empty() {
            return Ok(0);
        }
        let tenants: Vec<Uuid> = results.iter().map(|r| r.tenant_id.as_uuid()).collect();
        let emails: Vec<Uuid> = results.iter().map(|r| r.email_id).collect();
        let ids: Vec<Uuid> = results.iter().map(|r| r.id).collect();
        let leases: Vec<Uuid> = results.iter().map(|r| r.lease_id).collect();
        let statuses: Vec<&str> = results.iter().map(|r| r.status.as_str()).collect();
        let events: Vec<&str> = results.iter().map(|r| r.status.event().as_str()).collect();
        let next: Vec<Option<OffsetDateTime>> = results.iter().map(|r| r.next_attempt_at).collect();
        let codes: Vec<Option<i32>> = results.iter().map(|r| r.smtp_code.map(i32::from)).collect();
        let responses: Vec<&str> = results.iter().map(|r| r.smtp_response.as_str()).collect();
        let bounces: Vec<Option<&str>> = results
            .iter()
            .map(|r| r.bounce.map(BounceClass::as_str))
            .collect();
        // An id for the suppression a hard bounce may add (v7, as every id here).
        let suppression_ids: Vec<Uuid> = results.iter().map(|_| Uuid::now_v7()).collect();
        let routes: Vec<&str> = results.iter().map(|r| r.route.as_str()).collect();
        let route_hosts: Vec<&str> = results.iter().map(|r| r.route_host.as_str()).collect();
        let updated: i64 = sqlx::query_scalar(concat!(
            "WITH r AS (
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[],
                                      $6::timestamptz[], $7::int[], $8::text[], $9::text[],
                                      $13::text[], $14::uuid[], $17::text[], $18::text[])
                     AS r(tenant_id, email_id, id, lease_id, status, next_attempt_at, code, response,
                          event, bounce_class, suppression_id, route, route_host)
             ), updated AS (
                 UPDATE deliveries d
                 SET status = r.status, next_attempt_at = COALESCE(r.next_attempt_at, d.next_attempt_at),
                     lease_expires_at = NULL, lease_id = NULL, leased_by = NULL, last_smtp_code = r.code,
                     last_smtp_response = r.response, bounce_class = r.bounce_class, route = r.route,
                     route_host = r.route_host, updated_at = now()
                 FROM r
                 WHERE d.tenant_id = r.tenant_id AND d.email_id = r.email_id AND d.id = r.id
                   AND d.lease_id = r.lease_id
                   AND d.status = $10
                 RETURNING d.tenant_id, d.id, d.email_id, d.recipient, r.status, r.event, r.code,
                           r.response, r.bounce_class, r.suppression_id, r.route, r.route_host
             ), counted AS (
                 -- The tenants' usage: recipients delivered, bounced and failed today.
                 INSERT INTO usage_daily AS u (tenant_id, day, shard, delivered, bounced, failed)
                 SELECT tenant_id, (now() AT TIME ZONE 'UTC')::date, $22,
                        count(*) FILTER (WHERE status = $19), count(*) FILTER (WHERE status = $20),
                        count(*) FILTER (WHERE status = $21)
                 FROM updated
                 WHERE status IN ($19, $20, $21)
                 GROUP BY tenant_id
                 ORDER BY tenant_id
                 ON CONFLICT (tenant_id, day, shard) DO UPDATE
                 SET delivered = u.delivered + excluded.delivered,
                     bounced = u.bounced + excluded.bounced, failed = u.failed + excluded.failed
             ), ev AS (
                 INSERT INTO email_events (tenant_id, email_id, delivery_id, type, recipient, smtp_code,
                                           smtp_response, bounce_class, route, route_host)
                 SELECT tenant_id, email_id, id, event, recipient, code, response, bounce_class,
                        route, route_host
                 FROM updated
                 RETURNING tenant_id, email_id, id, type
             ), suppressed AS (
                 INSERT INTO suppressions (tenant_id, id, email, origin, source_id, reason)
                 SELECT tenant_id, suppression_id, lower(recipient), $16, email_id, response
                 FROM updated WHERE bounce_class = $15
                 ON CONFLICT (tenant_id, email) DO NOTHING
             ), ",
            report_events!("$11", "$12"),
            " SELECT count(*) FROM ev"
        ))
        .bind(&tenants)
        .bind(&emails)
        .bind(&ids)
        .bind(&leases)
        .bind(&statuses)
        .bind(&next)
        .bind(&codes)
        .bind(&responses)
        .bind(&events)
        .bind(DeliveryStatus::Sending.as_str())
        .bind(crate::outbox::KINDS.as_slice())
        .bind(crate::outbox::HOOKS.as_slice())
        .bind(&bounces)
        .bind(&suppression_ids)
        .bind(BounceClass::Hard.as_str())
        .bind(SuppressionOrigin::Bounce.as_str())
        .bind(&routes)
        .bind(&route_hosts)
        .bind(DeliveryStatus::Delivered.as_str())
        .bind(DeliveryStatus::Bounced.as_str())
        .bind(DeliveryStatus::Failed.as_str())
        .bind(other_shard())
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(updated).unwrap_or(0))
    }

    /// When the next delivery of a tenant not in `full` falls due (or a lease runs out), for a
    /// worker deciding how long to sleep.
    ///
    /// # Errors
    /// Database failures.
    pub async fn next_delivery_due(
        &self,
        full: &[TenantId],
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        let full: Vec<Uuid> = full.iter().map(|t| t.as_uuid()).collect();
        let next: Option<OffsetDateTime> = sqlx::query_scalar(
            // Each tenant's first due row from the per-tenant index: one probe per tenant. The
            // tenants whose routes are full wait for a job of theirs to end, not for a time.
            "SELECT min(t) FROM (
                 (SELECT d.next_attempt_at AS t
                  FROM tenants tn
                  CROSS JOIN LATERAL (
                      SELECT next_attempt_at FROM deliveries
                      WHERE tenant_id = tn.id AND status IN ('queued', 'deferred')
                      ORDER BY next_attempt_at
                      LIMIT 1
                  ) d
                  WHERE tn.id <> ALL ($1::uuid[]))
                 UNION ALL
                 (SELECT min(lease_expires_at) FROM deliveries WHERE status = 'sending')
             ) s",
        )
        .bind(&full)
        .fetch_one(&self.pool)
        .await?;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_statement_windows_each_tenant_at_the_power_of_two_above_its_limit() {
        for (limit, window) in [
            (0, 1),
            (1, 1),
            (2, 2),
            (3, 4),
            (64, 64),
            (65, 128),
            (1 << 20, 1 << 14),
        ] {
            let statement = lease_statement(limit);
            assert!(
                statement.contains(&format!("LIMIT {window})")),
                "{limit}: {statement}"
            );
            assert!(!statement.contains("{per_tenant}"));
        }
    }
}
