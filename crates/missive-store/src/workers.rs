//! Worker registration: how a dead worker's leases are found within seconds.
//!
//! A worker process registers (a row in `workers`) and, in the same transaction, takes a
//! session-level advisory lock on a connection of its own that it keeps for its whole life.
//! Postgres frees that lock the moment the connection ends, whatever ended it: `kill -9`, a crash,
//! `pg_terminate_backend`, or a host gone silent once the TCP keepalives set on the connection
//! give up. [`Store::reap_dead_workers`], run by every worker every second or so, deletes the
//! rows whose lock nobody holds and expires the leases they named, so the next lease takes them.
//! A live worker renews its own leases ([`Store::renew_leases`]) and keeps its lock, so nothing it
//! is still sending is taken from it; `MISSIVE_LEASE_SECS` is left as the last resort for a
//! worker that hangs while its connection lives.
//!
//! Both queues with leases (deliveries and the webhook outbox) name the holder in a `leased_by`
//! column and get their leases expired by the same reap.

use std::time::Duration;

use missive_core::WorkerKind;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::{Store, StoreError};

/// A checked `sqlx::$query!` whose SQL is `$before`, then the addresses of the unfinished outbox
/// rows that `$holder` (an SQL expression) holds, then `$after`: for the upkeep of webhook
/// leases. No index covers the holder, so that a lease updates its rows in place (see
/// [`Store::lease_webhook_events`]); the rows in flight are looked for among each endpoint's
/// unfinished rows from its low-water mark, where every one of them is. `$join` puts what the
/// holder expression needs before the endpoints.
macro_rules! webhook_rows_held_by {
    ($query:ident!($($before:tt)*), $join:literal, $holder:literal, $($after:tt)*) => {
        sqlx::$query!(
            $($before)*
            "SELECT x.ctid FROM "
                + $join
                + " webhooks w
             CROSS JOIN LATERAL (
                 SELECT ctid FROM webhook_events
                 WHERE tenant_id = w.tenant_id AND webhook_id = w.id
                   AND status IN ('pending', 'attempting')
                   AND (next_attempt_at, id) >= (w.due_from, w.due_from_id)
                   AND leased_by = "
                + $holder
                + "
             ) x"
            $($after)*
        )
    };
}

/// The advisory lock namespace of worker registrations ("mswk"); the key is the row's `lock_key`.
pub const WORKER_LOCK_NAMESPACE: i32 = 0x6d73_776b;

/// A registered worker: its id, and the connection whose life is the registration's.
#[derive(Debug)]
pub struct Registration {
    id: Uuid,
    conn: PgConnection,
}

/// What a reap found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Workers whose lock was free: dead.
    pub workers: Vec<Uuid>,
    /// Their leases, now expired.
    pub deliveries: u64,
}

impl Registration {
    /// The id this worker's leases carry.
    #[must_use]
    pub const fn id(&self) -> Uuid {
        self.id
    }

    /// Whether the registration still holds: its connection answers.
    pub async fn is_alive(&mut self) -> bool {
        self.conn.ping().await.is_ok()
    }

    /// Ends the registration in order at shutdown: the row goes, and the lock with the
    /// connection. (A worker that dies without this is reaped instead.)
    ///
    /// # Errors
    /// Database failures; the lock is freed with the connection anyway.
    pub async fn release(mut self) -> Result<(), StoreError> {
        sqlx::query!("DELETE FROM workers WHERE id = $1", self.id)
            .execute(&mut self.conn)
            .await?;
        self.conn.close().await?;
        Ok(())
    }
}

impl Store {
    /// Registers a worker of `kind` and takes its lock, on a connection kept for the
    /// registration's life.
    ///
    /// # Errors
    /// The database is unreachable.
    pub async fn register_worker(&self, kind: WorkerKind) -> Result<Registration, StoreError> {
        let options: PgConnectOptions = (*self.pool.connect_options())
            .clone()
            .application_name("missive worker registration")
            // The server notices a host that vanished without closing the connection within
            // about 25 s, and frees the lock then.
            .options([
                ("tcp_keepalives_idle", "10"),
                ("tcp_keepalives_interval", "5"),
                ("tcp_keepalives_count", "3"),
            ]);
        let mut conn = PgConnection::connect_with(&options).await?;
        let id = Uuid::now_v7();
        let host = std::env::var("HOSTNAME").unwrap_or_default();
        let mut tx = conn.begin().await?;
        // The row becomes visible with the commit, when the lock is already held: a reaper never
        // sees a registered worker without its lock.
        let key = sqlx::query_scalar!(
            "INSERT INTO workers (id, kind, host, pid) VALUES ($1, $2, $3, $4) RETURNING lock_key",
            id,
            kind.as_str(),
            host,
            i32::try_from(std::process::id()).unwrap_or(-1),
        )
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query!(
            "SELECT pg_advisory_lock($1, $2)",
            WORKER_LOCK_NAMESPACE,
            key
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Registration { id, conn })
    }

    /// Deletes the workers whose lock nobody holds and expires the leases they held, in one
    /// statement.
    ///
    /// # Errors
    /// Database failures.
    pub async fn reap_dead_workers(&self) -> Result<Reaped, StoreError> {
        let rows = webhook_rows_held_by!(
            query!(
                r#"WITH held AS (
                 SELECT l.objid::bigint AS lock_key FROM pg_locks l
                 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                   AND l.classid = $1::bigint::oid
                   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
             ), dead AS (
                 DELETE FROM workers w
                 WHERE NOT EXISTS (SELECT 1 FROM held WHERE held.lock_key = w.lock_key)
                 RETURNING w.id
             ), released AS (
                 UPDATE deliveries d SET lease_expires_at = now() - interval '1 second'
                 FROM dead
                 WHERE d.status = 'sending' AND d.leased_by = dead.id
                 RETURNING d.leased_by
             ), released_webhooks AS (
                 -- Only when a worker died: a walk of the endpoints for each.
                 UPDATE webhook_events e SET lease_expires_at = now() - interval '1 second'
                 WHERE e.ctid = ANY (ARRAY("# +
            ),
            "dead CROSS JOIN",
            "dead.id",
            + r#"))
             )
             SELECT dead.id AS "id!",
                    (SELECT count(*) FROM released r WHERE r.leased_by = dead.id) AS "released!"
             FROM dead"#,
            i64::from(WORKER_LOCK_NAMESPACE),
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(Reaped {
            deliveries: rows
                .iter()
                .map(|row| u64::try_from(row.released).unwrap_or(0))
                .sum(),
            workers: rows.into_iter().map(|row| row.id).collect(),
        })
    }

    /// Pushes back the expiry of every webhook lease `holder` holds (see [`Store::renew_leases`]).
    ///
    /// # Errors
    /// Database failures.
    pub async fn renew_webhook_leases(
        &self,
        holder: Uuid,
        lease: Duration,
    ) -> Result<u64, StoreError> {
        Ok(webhook_rows_held_by!(
            query!(
                "UPDATE webhook_events SET lease_expires_at = now() + make_interval(secs => $2)
                 WHERE ctid = ANY (ARRAY(" +
            ),
            "",
            "$1",
            + ")) AND leased_by = $1",
            holder,
            lease.as_secs_f64(),
        )
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Pushes back the expiry of every lease `holder` holds: a live worker keeps what it is
    /// still sending. Returns how many leases were renewed.
    ///
    /// # Errors
    /// Database failures.
    pub async fn renew_leases(&self, holder: Uuid, lease: Duration) -> Result<u64, StoreError> {
        Ok(sqlx::query!(
            "UPDATE deliveries SET lease_expires_at = now() + make_interval(secs => $2)
             WHERE status = 'sending' AND leased_by = $1",
            holder,
            lease.as_secs_f64(),
        )
        .execute(&self.pool)
        .await?
        .rows_affected())
    }
}
