//! Every SQL statement Missive runs, and the migrator.
//!
//! Keeping SQL in one crate means one place to review tenant scoping: every query on a
//! tenant-owned table takes a [`TenantId`](missive_core::TenantId) and filters on it, so a caller
//! holding another tenant's id gets `NotFound`, never the row.
//!
//! Postgres checks the same a second time. The statements that serve a tenant's request (its
//! emails, templates, suppressions, webhooks and their events, keys, usage, its own record) run
//! in a tenant-confined transaction ([`Store::begin_for_tenant`]): as the `missive_tenant` role,
//! under row-level policies that show it that tenant's rows only. What must cross tenants runs
//! as the login role, a member of `missive_service`: finding the tenant a key or an address
//! belongs to (authentication), the accept path's group commit (several tenants' emails in one
//! statement), the usage counters, the workers and dispatchers, the admin's tenant management,
//! and issuing a key (it locks the tenant's row, which the tenant role may only read).
//!
//! Projects narrow a tenant's data one level further. A request of one project runs confined
//! to its [`Reach`] (tenant and project): the row-level policies of the project-owned tables
//! (keys, emails, deliveries, events, templates, webhooks, usage) show it that project's rows,
//! and a row it inserts without naming a project lands in it. Reads therefore filter on the
//! tenant in SQL and on the project through the policies; the service statements that write
//! project-owned rows for several projects (accept, results, the outbox) name each row's project.

mod accept;
mod api_keys;
mod checked;
mod composite;
mod console;
mod cursor;
mod deliveries;
mod domains;
mod emails;
mod error;
pub mod listen;
mod outbox;
mod projects;
mod received;
mod relays;
mod reports;
mod suppressions;
mod templates;
mod tenants;
mod usage;
mod webhook_events;
mod webhooks;
pub mod workers;
mod writer;

pub use accept::{IDEMPOTENCY_WINDOW, IdempotencyRecord, InsertOutcome, NewEmail};
pub use api_keys::{ApiKeyRecord, KeyForAuth, NewApiKeyRow};
pub use console::{ActivityCounts, ActivityPoint, ConsoleSessionRecord, QueueRow, SessionOwner};
pub use cursor::Cursor;
pub use deliveries::{DeliveryResult, LeasedDelivery, OutgoingMessage};
pub use domains::{
    DomainCheck, DomainPage, DomainPatch, DomainRecord, NewDkimKey, NewDomain, SigningKeyRow,
};
pub use emails::{DeliveryRecord, EmailDetail, EmailFilter, EmailPage, EmailRecord, EventRecord};
pub use error::StoreError;
pub use outbox::{LeasedWebhookEvent, WebhookAttemptResult};
pub use projects::{ProjectPatch, ProjectRecord, ProjectUsage};
pub use received::{
    NewReceivedEmail, ReceivedPage, ReceivedRecord, ReceivingCaps, ReceivingDomain, Stored,
};
pub use relays::{PasswordChange, RelayPatch, StoredRelay};
pub use reports::SoftBounceRule;
pub use suppressions::{SuppressionKey, SuppressionPage, SuppressionRecord};
pub use templates::{
    PublishedLookup, PublishedTemplate, TemplateContent, TemplateEdit, TemplateNode, TemplatePage,
    TemplateRecord,
};
pub use tenants::{LimitsPatch, NewTenant, TenantPatch, TenantRecord, TrustedSender};
pub use usage::{DailyUsage, QuotaUsage, UsageTotals};
pub use webhook_events::{WebhookAttemptRecord, WebhookEventRecord};
pub use webhooks::{NewWebhook, SealedSecret, WebhookPage, WebhookPatch, WebhookRecord};
pub use workers::{Reaped, Registration};
pub use writer::{EmailWriter, WriterSettings};

use std::time::Duration;

use missive_core::{Limits, Reach, TenantId};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};

/// The migrations under the workspace's `migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
    /// The limits of tenants that have none set, from the configuration: the accept statement
    /// checks quotas with them.
    default_limits: Limits,
}

/// Pool sizing, from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

/// What the server says about the durability of a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Durability {
    /// Whether the server flushes its log to disk at all.
    pub fsync: bool,
    /// `on`, `remote_apply`, `remote_write`, `local` or `off`, for the accept path's sessions.
    pub synchronous_commit: String,
}

impl Durability {
    /// Why an acknowledged message could be lost in a crash of the database, if it could.
    #[must_use]
    pub fn problems(&self) -> Vec<&'static str> {
        let mut problems = Vec::new();
        if !self.fsync {
            problems.push(
                "the server runs with fsync=off, so a crash of its host loses committed mail",
            );
        }
        if self.synchronous_commit == "off" {
            problems.push(
                "synchronous_commit is off for Missive's sessions (a database or role setting), \
                 so a commit is acknowledged before it is on disk",
            );
        }
        problems
    }
}

/// The sessions of the queues' workers (deliveries and webhooks): commits that skip the WAL
/// flush, statements planned once per connection, and plans of key probes only (see
/// [`Store::for_worker`]).
const QUEUE_SESSION: [(&str, &str); 5] = [
    ("synchronous_commit", "off"),
    ("plan_cache_mode", "force_generic_plan"),
    ("enable_seqscan", "off"),
    ("enable_hashjoin", "off"),
    ("enable_mergejoin", "off"),
];

/// How long a pooled connection may sit idle before it is checked on its way out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(10);

/// Options every pool shares (the main pool and those derived from it).
///
/// sqlx checks every connection with a round trip before handing it out (a lone Sync message,
/// answered by the server), by default: one extra round trip and server wake-up per statement,
/// counted at about one per email accepted over SMTP. A connection in steady use has just proved
/// itself, so only one that sat idle a while (when a restarted server or a dropped socket is
/// likely) is checked; a connection that breaks in between fails its statement, which the caller
/// reports as it reports any database failure.
fn pool_options(max_connections: u32, acquire_timeout: Duration) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

impl Store {
    /// Opens a pool and checks the server answers, so a bad URL fails at start, not on the first
    /// request.
    ///
    /// Its sessions, and those of every pool derived from it, run with `jit = off`. JIT pays off
    /// for long analytical queries; Missive's statements take milliseconds, and a misestimated
    /// cost (the dispatcher's lease, planned against an outbox of one endpoint's backlog) crossed
    /// `jit_above_cost` and spent 60 ms compiling each of its 1 ms runs: drains at a third of
    /// their speed.
    ///
    /// # Errors
    /// The URL does not parse or the server cannot be reached.
    pub async fn connect(url: &str, settings: PoolSettings) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.parse()?;
        let options = options
            .application_name("missive")
            .options([("jit", "off")]);
        let pool = pool_options(settings.max_connections, settings.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Self::from_pool(pool))
    }

    /// A second, smaller pool to the same database for the delivery worker's lease and outcome
    /// writes, whose commits do not wait for the WAL flush (`synchronous_commit = off`).
    ///
    /// Why this is safe: what must never be lost, an accepted message, is written through the
    /// normal pool and is durable before anyone is told. A worker write lost in a crash (within
    /// the last few hundred milliseconds) only rolls a delivery back to an earlier state, from
    /// which it is sent again: at-least-once delivery, which a crash between sending and
    /// recording already implies. In exchange the worker's commits stop competing with accepts
    /// for WAL flushes.
    ///
    /// Its statements are planned once per connection (`plan_cache_mode = force_generic_plan`),
    /// with scans of whole tables and hash and merge joins ruled out (`enable_seqscan`,
    /// `enable_hashjoin`, `enable_mergejoin` off). Every one of them is a set of key probes:
    /// each tenant's first due rows, rows by their keys, a batch of results by theirs. A plan
    /// of probes costs the same against a table of ten rows as of ten million. The queue grows
    /// from empty faster than autovacuum analyzes it, and plans made from its statistics hashed
    /// a full scan of `deliveries` or `emails` into a lease or a message fetch whenever the
    /// statistics had the table small: first as cached generic plans, kept until the next
    /// analyze, then, with each run planned afresh, for as long as the table stayed under a
    /// few thousand rows (a 2.5 ms scan in a 4 ms lease), at 40 to 110 µs of planning per
    /// email. With those plans ruled out, the planner has only probes to choose from, and
    /// planning once is safe.
    #[must_use]
    pub fn for_worker(&self, max_connections: u32) -> Self {
        self.lazy_with("missive worker", max_connections, &QUEUE_SESSION)
    }

    /// The webhook dispatcher's pool: as [`Store::for_worker`]'s, and for the same reasons. Its
    /// statements walk the endpoints and probe each one's rows by index. Planned afresh, which
    /// Postgres chose by itself for some of them, the next-due read and the attempts' write
    /// spent 230 to 460 µs planning per call. The dispatcher also keeps the outbox's
    /// statistics current ([`Store::analyze_outbox_if_stale`]), which replans them.
    #[must_use]
    pub fn for_dispatcher(&self, max_connections: u32) -> Self {
        self.lazy_with("missive webhooks", max_connections, &QUEUE_SESSION)
    }

    /// The accept path's pool for its one storing statement ([`EmailWriter`]): durable commits
    /// as the main pool's, and that statement planned once per connection
    /// (`plan_cache_mode = force_generic_plan`). Planned afresh, it spent longer in planning
    /// (1.2 ms) than in running (1.0 ms) at 500 emails/s, one email per statement; its plan
    /// does not depend on the tables' sizes (inserts, and key probes of the suppression list
    /// and usage counters).
    #[must_use]
    pub fn for_writer(&self, max_connections: u32) -> Self {
        self.lazy_with(
            "missive accept",
            max_connections,
            &[
                ("synchronous_commit", "on"),
                ("plan_cache_mode", "force_generic_plan"),
            ],
        )
    }

    /// A lazily connecting pool whose sessions run with `settings`.
    fn lazy_with(&self, name: &str, max_connections: u32, settings: &[(&str, &str)]) -> Self {
        let options = (*self.pool.connect_options())
            .clone()
            .application_name(name)
            .options(settings.iter().copied());
        let pool = pool_options(max_connections, self.pool.options().get_acquire_timeout())
            .connect_lazy_with(options);
        Self {
            pool,
            default_limits: self.default_limits,
        }
    }

    #[must_use]
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool,
            default_limits: Limits::default(),
        }
    }

    /// This store with the limits of tenants that have none set.
    #[must_use]
    pub fn with_default_limits(mut self, limits: Limits) -> Self {
        self.default_limits = limits;
        self
    }

    /// The limits of tenants that have none set.
    #[must_use]
    pub fn default_limits(&self) -> Limits {
        self.default_limits
    }

    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A transaction in which Postgres itself confines every statement to one tenant's rows and,
    /// when the reach names one, to one of its projects: it runs as the `missive_tenant` role
    /// with `app.tenant_id` (and `app.project_id`) set (row-level security; see the
    /// `row_level_security` and `projects` migrations). All end with the transaction, so the
    /// connection goes back to the pool as it came.
    ///
    /// One round trip: the `BEGIN` and the settings go as one simple query. The ids are written
    /// into it, which is safe because an id prints as a hyphenated UUID and nothing else.
    ///
    /// # Errors
    /// Database failures.
    pub async fn begin_for_tenant(
        &self,
        tenant: TenantId,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        self.begin_confined(tenant.into(), "BEGIN").await
    }

    /// [`Store::begin_for_tenant`] for a reach that may name one of the tenant's projects.
    ///
    /// # Errors
    /// Database failures.
    pub async fn begin_for(
        &self,
        reach: impl Into<Reach>,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        self.begin_confined(reach.into(), "BEGIN").await
    }

    async fn begin_confined(
        &self,
        reach: Reach,
        begin: &str,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        // A project-wide reach also names its project: row-level policies then narrow the
        // project-owned tables to it, and rows written without a project land in it.
        let project = reach
            .project_id
            .map(|p| {
                format!(
                    "; SET LOCAL app.project_id = '{}'",
                    p.as_uuid().hyphenated()
                )
            })
            .unwrap_or_default();
        let begin = format!(
            "{begin}; SET LOCAL ROLE missive_tenant; SET LOCAL app.tenant_id = '{}'{project}",
            reach.tenant_id.as_uuid().hyphenated()
        );
        Ok(self.pool.begin_with(sqlx::AssertSqlSafe(begin)).await?)
    }

    /// Runs `work` in a tenant-confined transaction ([`Store::begin_for_tenant`]) and commits
    /// it when `work` succeeds; a failure rolls it back. Every statement that changes a
    /// tenant's rows for its request runs this way, so a statement that forgot its tenant
    /// filter would still reach that tenant's rows only.
    pub(crate) async fn confined<T>(
        &self,
        tenant: impl Into<Reach>,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut tx = self.begin_for(tenant).await?;
        let out = work(&mut tx).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// [`Store::confined`] for reads: the transaction is read-only, and it is rolled back,
    /// not committed. The rollback is queued when the transaction is dropped and goes out with
    /// the check the pool makes of every connection it takes back, so a confined read costs
    /// one round trip more than an unconfined one (its `BEGIN`), not two.
    pub(crate) async fn confined_read<T>(
        &self,
        tenant: impl Into<Reach>,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut tx = self
            .begin_confined(tenant.into(), "BEGIN READ ONLY")
            .await?;
        work(&mut tx).await
    }

    /// Applies pending migrations; safe to run from several processes at once (sqlx takes an
    /// advisory lock).
    ///
    /// # Errors
    /// A migration failed or a applied one was changed.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// How durable a commit of the accept path is: the server's `fsync` and this pool's
    /// `synchronous_commit`.
    ///
    /// # Errors
    /// Database failures.
    pub async fn durability(&self) -> Result<Durability, StoreError> {
        let row = sqlx::query!(
            r#"SELECT current_setting('fsync') AS "fsync!",
                      current_setting('synchronous_commit') AS "synchronous_commit!""#
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Durability {
            fsync: row.fsync == "on",
            synchronous_commit: row.synchronous_commit,
        })
    }

    /// One round trip, for readiness checks.
    ///
    /// # Errors
    /// The database is unreachable.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query!("SELECT 1 AS one")
            .fetch_one(&self.pool)
            .await?;
        Ok(())
    }

    /// Closes every connection; used at shutdown.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
