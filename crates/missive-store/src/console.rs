//! What the web console needs beyond the API's own statements: its sessions, the activity rollup
//! its operator pages draw from, and the queue's shape.
//!
//! The rollup samples `usage_daily` (which the accept and result statements already keep) and
//! writes the growth since the previous sample into per-minute and per-hour rows; the console
//! reads those few rows, so its pages cost the same with a hundred emails or ten million.

use missive_core::{DeliveryStatus, ProjectId, ProjectRef, TenantId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Store, StoreError};

/// Who a console session acts for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionOwner {
    /// The operator, signed in with the admin key whose SHA-256 this is.
    Operator { admin_digest: [u8; 32] },
    /// A tenant, signed in with the API key whose SHA-256 (as stored with the key) this is.
    Tenant {
        tenant_id: TenantId,
        /// The project the session works in: the key's, or one a `projects:manage` key
        /// switched to.
        project_id: ProjectId,
        key_hash: [u8; 32],
    },
}

/// A live console session.
#[derive(Clone, Debug)]
pub struct ConsoleSessionRecord {
    pub owner: SessionOwner,
    pub csrf_token: String,
}

struct SessionRow {
    tenant_id: Option<Uuid>,
    project_id: Option<Uuid>,
    key_hash: Option<Vec<u8>>,
    admin_digest: Option<Vec<u8>>,
    csrf_token: String,
}

/// A tenant's activity in one period of the rollup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActivityCounts {
    /// Emails accepted.
    pub sent: i64,
    /// Recipients delivered, bounced, failed.
    pub delivered: i64,
    pub bounced: i64,
    pub failed: i64,
}

impl std::ops::AddAssign for ActivityCounts {
    fn add_assign(&mut self, other: Self) {
        self.sent += other.sent;
        self.delivered += other.delivered;
        self.bounced += other.bounced;
        self.failed += other.failed;
    }
}

/// One period's counts: a minute or an hour, by its start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActivityPoint {
    pub tenant_id: TenantId,
    pub at: OffsetDateTime,
    pub counts: ActivityCounts,
}

/// Deliveries still to go, by tenant and state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueRow {
    pub tenant_id: TenantId,
    /// The tenant's name (empty if it has been deleted since).
    pub tenant_name: String,
    /// Queued, deferred or sending.
    pub status: DeliveryStatus,
    pub count: i64,
    /// The longest-waiting due row's due time; none when nothing is due yet (all scheduled).
    pub oldest_due: Option<OffsetDateTime>,
}

/// A lock key of its own for the rollup, so only one process samples at a time.
const ROLLUP_LOCK: i64 = 0x6d69_7373_6163_7431; // "missact1"

impl Store {
    /// Opens a console session for `owner`, valid for `lifetime_secs`, and clears expired ones.
    ///
    /// # Errors
    /// Database failures.
    pub async fn create_console_session(
        &self,
        token_hash: &[u8; 32],
        owner: &SessionOwner,
        csrf_token: &str,
        lifetime_secs: i64,
    ) -> Result<(), StoreError> {
        let (tenant_id, project_id, key_hash, admin_digest) = match owner {
            SessionOwner::Operator { admin_digest } => {
                (None, None, None, Some(admin_digest.as_slice()))
            }
            SessionOwner::Tenant {
                tenant_id,
                project_id,
                key_hash,
            } => (
                Some(tenant_id.as_uuid()),
                Some(project_id.as_uuid()),
                Some(key_hash.as_slice()),
                None,
            ),
        };
        sqlx::query!("DELETE FROM console_sessions WHERE expires_at < now()")
            .execute(&self.pool)
            .await?;
        sqlx::query!(
            "INSERT INTO console_sessions
                 (token_hash, tenant_id, key_hash, admin_digest, csrf_token, expires_at,
                  project_id)
             VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), $7)",
            token_hash.as_slice(),
            tenant_id,
            key_hash,
            admin_digest,
            csrf_token,
            lifetime_secs as f64,
            project_id,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The unexpired session with this token hash, if any.
    ///
    /// # Errors
    /// Database failures.
    pub async fn console_session(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<ConsoleSessionRecord>, StoreError> {
        let row = sqlx::query_as!(
            SessionRow,
            "SELECT tenant_id, project_id, key_hash, admin_digest, csrf_token
             FROM console_sessions WHERE token_hash = $1 AND expires_at > now()",
            token_hash.as_slice(),
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let digest = |bytes: Option<Vec<u8>>| -> Option<[u8; 32]> {
            bytes.and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        };
        let owner = match (
            row.tenant_id.zip(row.project_id),
            digest(row.key_hash),
            digest(row.admin_digest),
        ) {
            (Some((tenant, project)), Some(key_hash), None) => SessionOwner::Tenant {
                tenant_id: TenantId::from_uuid(tenant),
                project_id: ProjectId::from_uuid(project),
                key_hash,
            },
            (None, None, Some(admin_digest)) => SessionOwner::Operator { admin_digest },
            // The table's checks rule this out; a row that slipped past them opens nothing.
            _ => return Ok(None),
        };
        Ok(Some(ConsoleSessionRecord {
            owner,
            csrf_token: row.csrf_token,
        }))
    }

    /// Moves a tenant session to another project of its tenant (checked by the caller).
    ///
    /// # Errors
    /// `NotFound` when the session is gone or belongs to the operator.
    pub async fn switch_console_project(
        &self,
        token_hash: &[u8; 32],
        project: ProjectRef,
    ) -> Result<(), StoreError> {
        let switched = sqlx::query!(
            "UPDATE console_sessions SET project_id = $3
             WHERE token_hash = $1 AND tenant_id = $2 AND expires_at > now()",
            token_hash.as_slice(),
            project.tenant_id.as_uuid(),
            project.project_id.as_uuid(),
        )
        .execute(&self.pool)
        .await?
        .rows_affected();
        if switched == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Ends a session (signing out).
    ///
    /// # Errors
    /// Database failures.
    pub async fn end_console_session(&self, token_hash: &[u8; 32]) -> Result<(), StoreError> {
        sqlx::query!(
            "DELETE FROM console_sessions WHERE token_hash = $1",
            token_hash.as_slice(),
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Samples today's and yesterday's usage counters and adds their growth since the last
    /// sample to the current minute and hour; drops rows past their keeping. Returns false when
    /// another process was sampling at the time (its sample serves).
    ///
    /// # Errors
    /// Database failures.
    pub async fn roll_up_activity(&self) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let locked = sqlx::query_scalar!(
            r#"SELECT pg_try_advisory_xact_lock($1) AS "locked!""#,
            ROLLUP_LOCK
        )
        .fetch_one(&mut *tx)
        .await?;
        if !locked {
            return Ok(false);
        }
        // The day boundary is UTC's, as usage_daily's. A counter row first seen counts whole
        // (a new tenant, a new day); one seen before counts its growth.
        sqlx::query!(
            "WITH now_utc AS (SELECT (now() AT TIME ZONE 'UTC')::date AS today),
             cur AS (
                 SELECT u.tenant_id, u.day,
                        sum(u.sent)::bigint AS sent, sum(u.delivered)::bigint AS delivered,
                        sum(u.bounced)::bigint AS bounced, sum(u.failed)::bigint AS failed
                 FROM usage_daily u, now_utc
                 WHERE u.day >= now_utc.today - 1
                 GROUP BY u.tenant_id, u.day
             ),
             grown AS (
                 SELECT c.tenant_id,
                        c.sent - coalesce(s.sent, 0) AS sent,
                        c.delivered - coalesce(s.delivered, 0) AS delivered,
                        c.bounced - coalesce(s.bounced, 0) AS bounced,
                        c.failed - coalesce(s.failed, 0) AS failed
                 FROM cur c
                 LEFT JOIN activity_seen s ON s.tenant_id = c.tenant_id AND s.day = c.day
                 WHERE (c.sent, c.delivered, c.bounced, c.failed)
                       IS DISTINCT FROM (s.sent, s.delivered, s.bounced, s.failed)
             ),
             seen AS (
                 INSERT INTO activity_seen (tenant_id, day, sent, delivered, bounced, failed)
                 SELECT tenant_id, day, sent, delivered, bounced, failed FROM cur
                 ON CONFLICT (tenant_id, day) DO UPDATE
                 SET sent = EXCLUDED.sent, delivered = EXCLUDED.delivered,
                     bounced = EXCLUDED.bounced, failed = EXCLUDED.failed
             ),
             per_tenant AS (
                 SELECT tenant_id, sum(sent)::bigint AS sent, sum(delivered)::bigint AS delivered,
                        sum(bounced)::bigint AS bounced, sum(failed)::bigint AS failed
                 FROM grown GROUP BY tenant_id
             ),
             minutes AS (
                 INSERT INTO activity_minutes AS a (tenant_id, at, sent, delivered, bounced, failed)
                 SELECT tenant_id, date_trunc('minute', now()), sent, delivered, bounced, failed
                 FROM per_tenant
                 ON CONFLICT (tenant_id, at) DO UPDATE
                 SET sent = a.sent + EXCLUDED.sent, delivered = a.delivered + EXCLUDED.delivered,
                     bounced = a.bounced + EXCLUDED.bounced, failed = a.failed + EXCLUDED.failed
             )
             INSERT INTO activity_hours AS a (tenant_id, at, sent, delivered, bounced, failed)
             SELECT tenant_id, date_trunc('hour', now()), sent, delivered, bounced, failed
             FROM per_tenant
             ON CONFLICT (tenant_id, at) DO UPDATE
             SET sent = a.sent + EXCLUDED.sent, delivered = a.delivered + EXCLUDED.delivered,
                 bounced = a.bounced + EXCLUDED.bounced, failed = a.failed + EXCLUDED.failed",
        )
        .execute(&mut *tx)
        .await?;
        // Minutes are drawn for the last hour, hours for the last day (a month for a tenant).
        sqlx::query!("DELETE FROM activity_minutes WHERE at < now() - interval '3 hours'")
            .execute(&mut *tx)
            .await?;
        sqlx::query!("DELETE FROM activity_hours WHERE at < now() - interval '35 days'")
            .execute(&mut *tx)
            .await?;
        sqlx::query!("DELETE FROM activity_seen WHERE day < (now() AT TIME ZONE 'UTC')::date - 1")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Hourly activity of `tenants` over the last `hours` hours (the current one included),
    /// oldest first.
    ///
    /// # Errors
    /// Database failures.
    pub async fn hourly_activity(
        &self,
        tenants: &[TenantId],
        hours: i32,
    ) -> Result<Vec<ActivityPoint>, StoreError> {
        let ids: Vec<Uuid> = tenants.iter().map(|t| t.as_uuid()).collect();
        let rows = sqlx::query!(
            r#"SELECT tenant_id AS "tenant_id: TenantId", at, sent, delivered, bounced, failed
               FROM activity_hours
               WHERE tenant_id = ANY($1)
                 AND at > date_trunc('hour', now()) - make_interval(hours => $2)
               ORDER BY at"#,
            &ids,
            hours,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| ActivityPoint {
                tenant_id: row.tenant_id,
                at: row.at,
                counts: ActivityCounts {
                    sent: row.sent,
                    delivered: row.delivered,
                    bounced: row.bounced,
                    failed: row.failed,
                },
            })
            .collect())
    }

    /// Activity of all tenants together, minute by minute over the last `minutes` minutes,
    /// oldest first (minutes without any are absent).
    ///
    /// # Errors
    /// Database failures.
    pub async fn activity_by_minute(
        &self,
        minutes: i32,
    ) -> Result<Vec<(OffsetDateTime, ActivityCounts)>, StoreError> {
        let rows = sqlx::query!(
            r#"SELECT at, sum(sent)::bigint AS "sent!", sum(delivered)::bigint AS "delivered!",
                      sum(bounced)::bigint AS "bounced!", sum(failed)::bigint AS "failed!"
               FROM activity_minutes
               WHERE at > date_trunc('minute', now()) - make_interval(mins => $1)
               GROUP BY at ORDER BY at"#,
            minutes,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let counts = ActivityCounts {
                    sent: r.sent,
                    delivered: r.delivered,
                    bounced: r.bounced,
                    failed: r.failed,
                };
                (r.at, counts)
            })
            .collect())
    }

    /// The deliveries still to go, by tenant and state, with the longest-waiting due row's due
    /// time. Reads the queue's partial indexes: its cost follows the queue, not the history.
    ///
    /// # Errors
    /// Database failures.
    pub async fn queue_summary(&self) -> Result<Vec<QueueRow>, StoreError> {
        Ok(sqlx::query_as!(
            QueueRow,
            r#"SELECT q.tenant_id AS "tenant_id!: TenantId", coalesce(t.name, '') AS "tenant_name!",
                    q.status AS "status!: DeliveryStatus", q.count AS "count!", q.oldest_due
             FROM (
                 -- Two arms, each matching one partial index's predicate.
                 SELECT tenant_id, status, count(*) AS count,
                        min(next_attempt_at) FILTER (WHERE next_attempt_at <= now()) AS oldest_due
                 FROM deliveries
                 WHERE status IN ('queued', 'deferred')
                 GROUP BY tenant_id, status
                 UNION ALL
                 SELECT tenant_id, status, count(*), NULL
                 FROM deliveries
                 WHERE status = 'sending'
                 GROUP BY tenant_id, status
             ) q
             LEFT JOIN tenants t ON t.id = q.tenant_id
             ORDER BY q.count DESC, q.tenant_id, q.status"#,
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
