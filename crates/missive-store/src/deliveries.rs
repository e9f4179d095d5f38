//! Leasing deliveries to workers and recording what happened.
//!
//! A worker claims due rows in one short statement that marks them `sending`, stamps a lease
//! (expiry and id) and writes the `email.sending` events; the SMTP conversation happens outside
//! any transaction. Results are written back in one statement per batch, and only onto rows
//! that still carry the worker's lease id, so a worker that lost its lease cannot overwrite the
//! work of the one that reclaimed it.
//!
//! Statuses and event kinds come from the core model as bound values. The filters that pick due
//! rows and expired leases spell `'queued'`, `'deferred'` and `'sending'` literally on purpose:
//! they must match the partial indexes' predicates word for word for the planner to use them
//! (the store's tests check every such literal against the indexes).

use std::time::Duration;

use missive_core::outcome::BounceClass;
use missive_core::routing::RelayTls;
use missive_core::sending_domain::VerificationStatus;
use missive_core::{DeliveryId, DeliveryStatus, EmailId, Route, SuppressionOrigin, TenantId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::composite::composite;
use crate::outbox::{EVENT_HOOKS, reporting_events};
use crate::relays::{RelayColumns, StoredRelay};
use crate::reports::SoftBounceRule;
use crate::usage::other_shard;
use crate::{Store, StoreError};

/// A delivery a worker now holds.
#[derive(Clone, Debug)]
pub struct LeasedDelivery {
    pub tenant_id: TenantId,
    pub id: DeliveryId,
    pub email_id: EmailId,
    pub recipient: String,
    /// Attempts including this one.
    pub attempts: i32,
    pub created_at: OffsetDateTime,
    pub lease_id: Uuid,
}

/// What a worker needs to send an email.
#[derive(Clone, Debug)]
pub struct OutgoingMessage {
    pub tenant_id: TenantId,
    pub id: EmailId,
    pub envelope_from: String,
    pub smtputf8: bool,
    pub mime: Vec<u8>,
    /// The tenant's own upstream server, as set when the email was leased.
    pub relay: Option<StoredRelay>,
    /// Where the email's return path lives when its sender's domain is one of the tenant's
    /// verified domains: the domain's `custom_return_path` subdomain (`send.acme.test`).
    pub return_path_host: Option<String>,
}

/// [`OutgoingMessage`] as read, with its tenant's server in columns.
struct OutgoingRow {
    tenant_id: TenantId,
    id: EmailId,
    envelope_from: String,
    smtputf8: bool,
    mime: Vec<u8>,
    return_path_host: Option<String>,
    smtp_host: Option<String>,
    smtp_port: Option<i32>,
    smtp_tls: Option<RelayTls>,
    smtp_username: Option<String>,
    smtp_enabled: bool,
    smtp_password_key_id: Option<String>,
    smtp_password: Option<Vec<u8>>,
    smtp_changed_at: Option<OffsetDateTime>,
}

/// One attempt's result for one delivery.
#[derive(Clone, Debug)]
pub struct DeliveryResult {
    pub tenant_id: TenantId,
    pub email_id: EmailId,
    pub id: DeliveryId,
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

composite! {
    /// One result as the result statement takes it (the `delivery_result` type).
    ResultRow<'a> = "delivery_result" {
        tenant_id: Uuid,
        email_id: Uuid,
        id: Uuid,
        lease_id: Uuid,
        status: &'a str,
        next_attempt_at: Option<OffsetDateTime>,
        code: Option<i32>,
        response: &'a str,
        event: &'a str,
        bounce_class: Option<&'a str>,
        /// An id for the suppression a hard bounce may add (v7, as every id here).
        suppression_id: Uuid,
        route: &'a str,
        route_host: &'a str,
    }
}

/// Calls `$then!` with the lease statement's text before and after each tenant's most rows,
/// and `$args`. See [`Store::lease_due_deliveries`].
// Expired leases first, then due rows shared out fairly: each project's oldest due
// rows, taken round-robin (every project's first, then every project's second...), so
// one tenant's or project's backlog cannot starve another's mail. Candidates are chosen
// without locks (one index probe per project), then locked with SKIP LOCKED, which rechecks
// the conditions against rows another worker changed meanwhile.
macro_rules! lease_sql {
    ($then:ident, $per_tenant:literal $(, $arg:expr)*) => {
        $then!(
            "WITH expired AS (
     SELECT tenant_id, email_id, id FROM deliveries
     WHERE status = 'sending' AND lease_expires_at < now()
     ORDER BY lease_expires_at
     LIMIT $1
     FOR UPDATE SKIP LOCKED
 ), candidates AS (
     SELECT c.tenant_id, c.email_id, c.id
     FROM projects p
     CROSS JOIN LATERAL (
         SELECT x.tenant_id, x.email_id, x.id, x.next_attempt_at,
                row_number() OVER (ORDER BY x.next_attempt_at) AS turn
         FROM (SELECT tenant_id, email_id, id, next_attempt_at FROM deliveries
               WHERE tenant_id = p.tenant_id AND project_id = p.id
                 AND status IN ('queued', 'deferred')
                 AND next_attempt_at <= now()
               ORDER BY next_attempt_at
               LIMIT ",
            $per_tenant,
            r#") x
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
     RETURNING d.tenant_id, d.project_id, d.id, d.email_id, d.recipient, d.attempts,
               d.created_at, d.lease_id
 ), events AS (
     INSERT INTO email_events (tenant_id, project_id, email_id, delivery_id, type, recipient)
     SELECT tenant_id, project_id, email_id, id, $5, recipient FROM leased
 )
 SELECT tenant_id AS "tenant_id!: TenantId", id AS "id!: DeliveryId",
        email_id AS "email_id!: EmailId", recipient AS "recipient!", attempts AS "attempts!",
        created_at AS "created_at!", lease_id AS "lease_id!"
 FROM leased"#
            $(, $arg)*
        )
    };
}

/// The lease statement's text for a window of `$per_tenant` rows, for its test.
#[cfg(test)]
macro_rules! lease_text {
    ($before:literal, $per_tenant:literal, $after:literal) => {
        concat!($before, $per_tenant, $after)
    };
}

/// The lease statement, checked, for a window of `$per_tenant` rows.
macro_rules! lease_query {
    ($before:literal, $per_tenant:literal, $after:literal $(, $arg:expr)*) => {
        sqlx::query_as!(LeasedDelivery, $before + $per_tenant + $after $(, $arg)*)
    };
}

/// The largest per-tenant window written into a lease statement.
const MAX_PER_TENANT: i64 = 1 << 14;

/// Which of the lease statements a batch of at most `limit` rows takes: each tenant's most rows
/// are written into the statement, one statement per power of two. The statement is planned once
/// per connection (see [`Store::for_worker`]), and a plan made for a `LIMIT` it cannot see ran
/// four times longer than one made for a number. The batch's own `LIMIT $1` still holds the
/// lease to what was asked.
fn lease_window(limit: i64) -> u32 {
    let per_tenant = u64::try_from(limit.clamp(1, MAX_PER_TENANT)).unwrap_or(1);
    per_tenant.next_power_of_two().ilog2()
}

/// The text of the lease statement a batch of at most `limit` rows takes.
#[cfg(test)]
fn lease_statement(limit: i64) -> &'static str {
    const TEXTS: [&str; 15] = [
        lease_sql!(lease_text, "1"),
        lease_sql!(lease_text, "2"),
        lease_sql!(lease_text, "4"),
        lease_sql!(lease_text, "8"),
        lease_sql!(lease_text, "16"),
        lease_sql!(lease_text, "32"),
        lease_sql!(lease_text, "64"),
        lease_sql!(lease_text, "128"),
        lease_sql!(lease_text, "256"),
        lease_sql!(lease_text, "512"),
        lease_sql!(lease_text, "1024"),
        lease_sql!(lease_text, "2048"),
        lease_sql!(lease_text, "4096"),
        lease_sql!(lease_text, "8192"),
        lease_sql!(lease_text, "16384"),
    ];
    TEXTS[lease_window(limit) as usize]
}

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
        let lease_id = Uuid::now_v7();
        let seconds = lease.as_secs_f64();
        let sending = DeliveryStatus::Sending;
        let (status, event) = (sending.as_str(), sending.event().as_str());
        let pool = &self.pool;
        macro_rules! fetch {
            ($per_tenant:literal) => {
                lease_sql!(
                    lease_query,
                    $per_tenant,
                    limit,
                    lease_id,
                    seconds,
                    status,
                    event,
                    holder
                )
                .fetch_all(pool)
                .await?
            };
        }
        if !allowances.is_empty() {
            // A tenant whose own server has all the jobs it can use gets none ($7, $8:
            // allowances).
            let (capped, allowed): (Vec<Uuid>, Vec<i64>) =
                allowances.iter().map(|(t, n)| (t.as_uuid(), *n)).unzip();
            return Ok(lease_sql!(
                lease_query,
                "least($1, coalesce((SELECT a.n FROM UNNEST($7::uuid[], $8::int8[]) AS a(id, n)
                                     WHERE a.id = p.tenant_id), $1))",
                limit,
                lease_id,
                seconds,
                status,
                event,
                holder,
                &capped,
                &allowed
            )
            .fetch_all(pool)
            .await?);
        }
        // Without tenant routes to cap (most of the time), a statement without the per-tenant
        // allowance: planning it costs less.
        Ok(match lease_window(limit) {
            0 => fetch!("1"),
            1 => fetch!("2"),
            2 => fetch!("4"),
            3 => fetch!("8"),
            4 => fetch!("16"),
            5 => fetch!("32"),
            6 => fetch!("64"),
            7 => fetch!("128"),
            8 => fetch!("256"),
            9 => fetch!("512"),
            10 => fetch!("1024"),
            11 => fetch!("2048"),
            12 => fetch!("4096"),
            13 => fetch!("8192"),
            _ => fetch!("16384"),
        })
    }

    /// The messages behind some leased deliveries.
    ///
    /// # Errors
    /// Database failures.
    pub async fn outgoing_messages(
        &self,
        keys: &[(TenantId, EmailId)],
    ) -> Result<Vec<OutgoingMessage>, StoreError> {
        let tenants: Vec<Uuid> = keys.iter().map(|(t, _)| t.as_uuid()).collect();
        let ids: Vec<Uuid> = keys.iter().map(|(_, id)| id.as_uuid()).collect();
        // With the tenant's upstream server read alongside, a change of it reaches the very
        // next attempts of every worker.
        let rows = sqlx::query_as!(
            OutgoingRow,
            r#"SELECT e.tenant_id AS "tenant_id!: TenantId", e.id AS "id!: EmailId",
                      e.envelope_from AS "envelope_from!", e.smtputf8 AS "smtputf8!",
                      e.mime AS "mime!", dm.host AS return_path_host, t.smtp_host, t.smtp_port,
                      t.smtp_tls AS "smtp_tls: RelayTls", t.smtp_username,
                      t.smtp_enabled AS "smtp_enabled!", t.smtp_password_key_id, t.smtp_password,
                      t.smtp_changed_at
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
               ) t
               -- The sender's domain, when it is a verified domain of the tenant: its return
               -- path's host.
               LEFT JOIN LATERAL (
                   SELECT custom_return_path || '.' || name AS host FROM domains
                   WHERE tenant_id = e.tenant_id
                     AND name = lower(split_part(e.envelope_from, '@', 2)) AND status = $3
                     -- Only once its MX sends reports back to Missive.
                     AND record_checks -> $4 ->> 'status' = $3
                   LIMIT 1
               ) dm ON true"#,
            &tenants,
            &ids,
            VerificationStatus::Verified.as_str(),
            missive_core::sending_domain::RETURN_PATH_MX,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| OutgoingMessage {
                relay: RelayColumns {
                    smtp_host: row.smtp_host,
                    smtp_port: row.smtp_port,
                    smtp_tls: row.smtp_tls,
                    smtp_username: row.smtp_username,
                    smtp_enabled: row.smtp_enabled,
                    smtp_password_key_id: row.smtp_password_key_id,
                    smtp_password: row.smtp_password,
                    smtp_changed_at: row.smtp_changed_at,
                }
                .stored(),
                tenant_id: row.tenant_id,
                id: row.id,
                envelope_from: row.envelope_from,
                smtputf8: row.smtputf8,
                mime: row.mime,
                return_path_host: row.return_path_host,
            })
            .collect())
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
        soft: SoftBounceRule,
    ) -> Result<u64, StoreError> {
        if results.is_empty() {
            return Ok(0);
        }
        let rows: Vec<ResultRow<'_>> = results
            .iter()
            .map(|r| ResultRow {
                tenant_id: r.tenant_id.as_uuid(),
                email_id: r.email_id.as_uuid(),
                id: r.id.as_uuid(),
                lease_id: r.lease_id,
                status: r.status.as_str(),
                next_attempt_at: r.next_attempt_at,
                code: r.smtp_code.map(i32::from),
                response: r.smtp_response.as_str(),
                event: r.status.event().as_str(),
                bounce_class: r.bounce.map(BounceClass::as_str),
                suppression_id: Uuid::now_v7(),
                route: r.route.as_str(),
                route_host: r.route_host.as_str(),
            })
            .collect();
        let updated = reporting_events!(
            scalar:
            "WITH r AS (
                 SELECT * FROM UNNEST($1::delivery_result[])
             ), updated AS (
                 UPDATE deliveries d
                 SET status = r.status, next_attempt_at = COALESCE(r.next_attempt_at, d.next_attempt_at),
                     lease_expires_at = NULL, lease_id = NULL, leased_by = NULL, last_smtp_code = r.code,
                     last_smtp_response = r.response, bounce_class = r.bounce_class, route = r.route,
                     route_host = r.route_host, updated_at = now()
                 FROM r
                 WHERE d.tenant_id = r.tenant_id AND d.email_id = r.email_id AND d.id = r.id
                   AND d.lease_id = r.lease_id
                   AND d.status = $2
                 RETURNING d.tenant_id, d.project_id, d.id, d.email_id, d.recipient, r.status,
                           r.event, r.code, r.response, r.bounce_class, r.suppression_id, r.route,
                           r.route_host
             ), counted AS (
                 -- The projects' usage: recipients delivered, bounced and failed today.
                 INSERT INTO usage_daily AS u (tenant_id, project_id, day, shard, delivered,
                                               bounced, failed)
                 SELECT tenant_id, project_id, (now() AT TIME ZONE 'UTC')::date, $3,
                        count(*) FILTER (WHERE status = $4), count(*) FILTER (WHERE status = $5),
                        count(*) FILTER (WHERE status = $6)
                 FROM updated
                 WHERE status IN ($4, $5, $6)
                 GROUP BY tenant_id, project_id
                 ORDER BY tenant_id, project_id
                 ON CONFLICT (tenant_id, day, project_id, shard) DO UPDATE
                 SET delivered = u.delivered + excluded.delivered,
                     bounced = u.bounced + excluded.bounced, failed = u.failed + excluded.failed
             ), ev AS (
                 INSERT INTO email_events (tenant_id, project_id, email_id, delivery_id, type,
                                           recipient, smtp_code, smtp_response, bounce_class,
                                           route, route_host)
                 SELECT tenant_id, project_id, email_id, id, event, recipient, code, response,
                        bounce_class, route, route_host
                 FROM updated
                 RETURNING tenant_id, project_id, email_id, id, type
             ), softened AS (
                 -- Soft bounces count towards the address's limit, as late ones do (see
                 -- `Store::record_report`); the count restarts when its window is over.
                 INSERT INTO soft_bounces AS s (tenant_id, email, first_at, count)
                 SELECT tenant_id, lower(recipient), now(), count(*)::int FROM updated
                 WHERE status = $5 AND bounce_class = $11
                 GROUP BY tenant_id, lower(recipient)
                 ORDER BY 1, 2
                 ON CONFLICT (tenant_id, email) DO UPDATE
                 SET count = CASE WHEN s.first_at < now() - make_interval(secs => $12)
                                  THEN excluded.count ELSE s.count + excluded.count END,
                     first_at = CASE WHEN s.first_at < now() - make_interval(secs => $12)
                                     THEN now() ELSE s.first_at END
                 RETURNING tenant_id, email, count
             ), suppressed AS (
                 INSERT INTO suppressions (tenant_id, id, email, origin, source_id, reason)
                 SELECT u.tenant_id, u.suppression_id, lower(u.recipient), $8, u.email_id,
                        u.response
                 FROM updated u
                 LEFT JOIN softened s ON s.tenant_id = u.tenant_id AND s.email = lower(u.recipient)
                 WHERE u.bounce_class = $7
                    OR (u.status = $5 AND u.bounce_class = $11 AND s.count >= $13)
                 ON CONFLICT (tenant_id, email) DO NOTHING
             ), ",
            "$9",
            "$10",
            r#" SELECT count(*) AS "count!" FROM ev"#,
            &rows[..] as &[ResultRow<'_>],
            DeliveryStatus::Sending.as_str(),
            other_shard(),
            DeliveryStatus::Delivered.as_str(),
            DeliveryStatus::Bounced.as_str(),
            DeliveryStatus::Failed.as_str(),
            BounceClass::Hard.as_str(),
            SuppressionOrigin::Bounce.as_str(),
            &EVENT_HOOKS[..] as &[crate::outbox::EventHook<'_>],
            missive_core::WebhookStatus::Enabled.as_str(),
            BounceClass::Soft.as_str(),
            soft.window.as_secs_f64(),
            i32::try_from(soft.limit).unwrap_or(i32::MAX),
        )
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
        Ok(sqlx::query_scalar!(
            // Each project's first due row from the per-project index: one probe per project.
            // The tenants whose routes are full wait for a job of theirs to end, not for a time.
            "SELECT min(t) FROM (
                 (SELECT d.next_attempt_at AS t
                  FROM projects pr
                  CROSS JOIN LATERAL (
                      SELECT next_attempt_at FROM deliveries
                      WHERE tenant_id = pr.tenant_id AND project_id = pr.id
                        AND status IN ('queued', 'deferred')
                      ORDER BY next_attempt_at
                      LIMIT 1
                  ) d
                  WHERE pr.tenant_id <> ALL ($1::uuid[]))
                 UNION ALL
                 (SELECT min(lease_expires_at) FROM deliveries WHERE status = 'sending')
             ) s",
            &full,
        )
        .fetch_one(&self.pool)
        .await?)
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
