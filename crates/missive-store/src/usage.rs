//! Usage counters (`usage_daily`) and the sending quotas checked against them.
//!
//! The statements that do the counted things write the counts in the same statement: the accept
//! statement (recipients used, emails sent, SMTP messages, suppressed recipients; and there the
//! quota check), the result statement (delivered, bounced, failed). So the counters agree with
//! the events by construction, and reading usage sums a month of rows, never the events.

use missive_core::{Limits, MonthPeriod, ProjectRef, QuotaPeriod, Reach, TenantId};
use sqlx::PgConnection;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::checked::records;
use crate::{Store, StoreError};

/// Rows per project and day that the accept writers spread their counts over (writer `i`
/// counts in shard `i % ACCEPT_SHARDS`), so that parallel writers never wait on one another's
/// row lock; each holds it until its commit, which waits for the WAL flush. A tenant with a
/// quota also counts in its one `quota_counters` row, which orders its accepts.
pub(crate) const ACCEPT_SHARDS: i16 = 4;

/// Rows per tenant and day, in all: the delivery results, the request counter and sends with an
/// idempotency key count in shards `ACCEPT_SHARDS..USAGE_SHARDS`, never in an accept writer's,
/// so they neither wait for nor hold up an accept's commit.
pub(crate) const USAGE_SHARDS: i16 = 8;

/// A shard for a counting statement that is not one of the accept writers'.
pub(crate) fn other_shard() -> i16 {
    rand::random_range(ACCEPT_SHARDS..USAGE_SHARDS)
}

/// The counts of a period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsageTotals {
    /// Recipients accepted: what quotas count.
    pub used: i64,
    /// Emails accepted.
    pub sent: i64,
    /// Emails accepted over SMTP.
    pub smtp_messages: i64,
    /// Recipients delivered, bounced, failed (after the last retry) and suppressed.
    pub delivered: i64,
    pub bounced: i64,
    pub failed: i64,
    pub suppressed: i64,
    /// Authenticated REST requests.
    pub api_requests: i64,
    /// Messages received for the tenant's domains, and their bytes (the tenant's default
    /// project counts them).
    pub received: i64,
    pub received_bytes: i64,
}

impl std::ops::AddAssign for UsageTotals {
    fn add_assign(&mut self, other: Self) {
        self.used += other.used;
        self.sent += other.sent;
        self.smtp_messages += other.smtp_messages;
        self.delivered += other.delivered;
        self.bounced += other.bounced;
        self.failed += other.failed;
        self.suppressed += other.suppressed;
        self.api_requests += other.api_requests;
        self.received += other.received;
        self.received_bytes += other.received_bytes;
    }
}

/// One day's counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DailyUsage {
    pub day: Date,
    pub totals: UsageTotals,
}

/// [`DailyUsage`] as read.
struct DailyRow {
    day: Date,
    used: i64,
    sent: i64,
    smtp_messages: i64,
    delivered: i64,
    bounced: i64,
    failed: i64,
    suppressed: i64,
    api_requests: i64,
    received: i64,
    received_bytes: i64,
}

/// A tenant's quota figures now: what it used today and this month (UTC), and its limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaUsage {
    pub today: UsageTotals,
    pub month: UsageTotals,
    /// The tenant's limits with the defaults filled in.
    pub limits: Limits,
}

/// The [`UsageTotals`] of a row read with [`sums!`]'s columns.
macro_rules! totals_of {
    ($row:expr) => {
        $crate::usage::UsageTotals {
            used: $row.used,
            sent: $row.sent,
            smtp_messages: $row.smtp_messages,
            delivered: $row.delivered,
            bounced: $row.bounced,
            failed: $row.failed,
            suppressed: $row.suppressed,
            api_requests: $row.api_requests,
            received: $row.received,
            received_bytes: $row.received_bytes,
        }
    };
}
pub(crate) use totals_of;

/// Calls `$then!` with `$before`, the sums of the counters (the fields of [`UsageTotals`]), and
/// `$after`.
macro_rules! sums {
    ($then:ident!($($before:tt)*) $($after:tt)*) => {
        $then!(
            $($before)*
            r#"COALESCE(sum(used), 0)::int8 AS "used!", COALESCE(sum(sent), 0)::int8 AS "sent!",
               COALESCE(sum(smtp_messages), 0)::int8 AS "smtp_messages!",
               COALESCE(sum(delivered), 0)::int8 AS "delivered!",
               COALESCE(sum(bounced), 0)::int8 AS "bounced!",
               COALESCE(sum(failed), 0)::int8 AS "failed!",
               COALESCE(sum(suppressed), 0)::int8 AS "suppressed!",
               COALESCE(sum(api_requests), 0)::int8 AS "api_requests!",
               COALESCE(sum(received), 0)::int8 AS "received!",
               COALESCE(sum(received_bytes), 0)::int8 AS "received_bytes!""#
            $($after)*
        )
    };
}
pub(crate) use sums;

impl Store {
    /// A tenant's counts over the days `from..=to`.
    ///
    /// # Errors
    /// Database failures.
    pub async fn usage_between(
        &self,
        reach: Reach,
        from: Date,
        to: Date,
    ) -> Result<UsageTotals, StoreError> {
        let tenant_id = reach.tenant_id;
        self.confined_read(reach, async |conn| {
            totals_between(conn, tenant_id, from, to).await
        })
        .await
    }

    /// A tenant's counts per day over `from..=to`, days without any left out.
    ///
    /// # Errors
    /// Database failures.
    pub async fn usage_by_day(
        &self,
        reach: Reach,
        from: Date,
        to: Date,
    ) -> Result<Vec<DailyUsage>, StoreError> {
        let tenant_id = reach.tenant_id;
        self.confined_read(reach, async |conn| {
            let rows = sums!(
                records!(DailyRow, "SELECT day, ",),
                " FROM usage_daily
                 WHERE tenant_id = $1 AND day BETWEEN $2 AND $3
                 GROUP BY day ORDER BY day",
                tenant_id.as_uuid(),
                from,
                to,
            )
            .fetch_all(conn)
            .await?;
            Ok(rows
                .into_iter()
                .map(|row| DailyUsage {
                    day: row.day,
                    totals: totals_of!(row),
                })
                .collect())
        })
        .await
    }

    /// A tenant's quota figures at `now`: today's and this month's counts and its limits
    /// (`defaults` where it has none set), read in one transaction.
    ///
    /// # Errors
    /// `NotFound` for an unknown tenant; database failures.
    pub async fn quota_usage(
        &self,
        tenant_id: TenantId,
        now: OffsetDateTime,
        defaults: Limits,
    ) -> Result<QuotaUsage, StoreError> {
        let today = now.to_offset(time::UtcOffset::UTC).date();
        let month = MonthPeriod::of(now);
        self.confined_read(tenant_id, async |conn| {
            Ok(QuotaUsage {
                limits: limits_of(conn, tenant_id).await?.or(defaults),
                today: totals_between(conn, tenant_id, today, today).await?,
                month: totals_between(conn, tenant_id, month.first_day(), month.last_day()).await?,
            })
        })
        .await
    }

    /// The limits set on a tenant (no defaults applied).
    ///
    /// # Errors
    /// `NotFound` for an unknown or deleted tenant.
    pub async fn tenant_limits(&self, tenant_id: TenantId) -> Result<Limits, StoreError> {
        self.confined_read(tenant_id, async |conn| limits_of(conn, tenant_id).await)
            .await
    }

    /// Adds counted REST requests (per project) to today's usage.
    ///
    /// # Errors
    /// Database failures; the counts are lost then.
    pub async fn add_api_requests(&self, counts: &[(ProjectRef, i64)]) -> Result<(), StoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        let mut counts: Vec<(ProjectRef, i64)> = counts.to_vec();
        // In key order, as every counting statement takes its row locks.
        counts.sort_unstable();
        let tenants: Vec<Uuid> = counts.iter().map(|(p, _)| p.tenant_id.as_uuid()).collect();
        let projects: Vec<Uuid> = counts.iter().map(|(p, _)| p.project_id.as_uuid()).collect();
        let numbers: Vec<i64> = counts.iter().map(|(_, n)| *n).collect();
        sqlx::query!(
            "INSERT INTO usage_daily AS u (tenant_id, project_id, day, shard, api_requests)
             SELECT tenant_id, project_id, (now() AT TIME ZONE 'UTC')::date, $4, n
             FROM UNNEST($1::uuid[], $2::uuid[], $3::int8[]) AS c(tenant_id, project_id, n)
             ON CONFLICT (tenant_id, day, project_id, shard)
             DO UPDATE SET api_requests = u.api_requests + excluded.api_requests",
            &tenants,
            &projects,
            &numbers,
            other_shard(),
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

async fn totals_between(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    from: Date,
    to: Date,
) -> Result<UsageTotals, StoreError> {
    Ok(sums!(
        records!(UsageTotals, "SELECT ",),
        " FROM usage_daily WHERE tenant_id = $1 AND day BETWEEN $2 AND $3",
        tenant_id.as_uuid(),
        from,
        to,
    )
    .fetch_one(conn)
    .await?)
}

async fn limits_of(conn: &mut PgConnection, tenant_id: TenantId) -> Result<Limits, StoreError> {
    let row = sqlx::query!(
        "SELECT requests_per_minute, emails_per_day, emails_per_month
         FROM tenants WHERE id = $1 AND deleted_at IS NULL",
        tenant_id.as_uuid(),
    )
    .fetch_optional(conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok(limits_from_columns(
        row.requests_per_minute,
        row.emails_per_day,
        row.emails_per_month,
    ))
}

pub(crate) fn limits_from_columns(
    requests_per_minute: Option<i32>,
    emails_per_day: Option<i64>,
    emails_per_month: Option<i64>,
) -> Limits {
    Limits {
        requests_per_minute: requests_per_minute.and_then(|n| u32::try_from(n).ok()),
        emails_per_day: emails_per_day.and_then(|n| u64::try_from(n).ok()),
        emails_per_month: emails_per_month.and_then(|n| u64::try_from(n).ok()),
    }
}

/// Quota refusals as the accept statement reports them.
pub(crate) fn refusals(
    rows: impl IntoIterator<Item = (Uuid, String)>,
) -> Result<Vec<(TenantId, QuotaPeriod)>, StoreError> {
    rows.into_iter()
        .map(|(tenant, period)| {
            let period = period.parse().map_err(StoreError::Corrupt)?;
            Ok((TenantId::from(tenant), period))
        })
        .collect()
}
