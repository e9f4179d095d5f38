//! The webhook dispatcher (`--role webhooks`): leases due outbox rows, signs each body with the
//! endpoint's live secrets, posts it ([`client`]), records the attempt, and schedules the
//! next one on the retry schedule (Svix's by default) with the same message id, until a 2xx or
//! the schedule runs out. `410 Gone`, or a failure after days without any success, disables the
//! endpoint. It is a [`Queue`] of the one runner ([`crate::queue::runner`]), registered like the
//! delivery worker, so a dead dispatcher's leases are taken over within about a second.
//!
//! A pipeline in two stages. Leased rows wait in memory for a post slot: at most `concurrency`
//! posts at once overall and `per_endpoint` to any one endpoint, so a slow endpoint holds only
//! its own share of them. Each row keeps a place among the `concurrency * PREFETCH` this
//! dispatcher may hold until its attempt is recorded (its lease counts against its endpoint's
//! share until then), so a lease fetches many rows at once, and a few slow endpoints cannot hold
//! every place.

pub mod client;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use missive_core::webhook::{message_id, signature_header};
use missive_core::{TenantId, WebhookEventStatus, WebhookId, WebhookStatus, WorkerKind};
use missive_store::listen::Channel;
use missive_store::{LeasedWebhookEvent, Store, StoreError, WebhookAttemptResult};
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use self::client::{Signed, WebhookClient};
use crate::queue::runner::{Idle, Lease, Plan, Queue, Release, Runner, Then};
use crate::tenancy::webhooks::Webhooks;

/// Most attempts one write records.
const RECORD_BATCH: usize = 256;
/// The least time between two leases while the outbox is drained, and, on average, between two
/// writes of attempts (after a burst of [`RECORD_BURST`]). Each lease and each write has a fixed
/// cost in Postgres whatever it carries: unpaced, with one endpoint taking two events per email
/// at 900 emails/s, the dispatcher leased six rows at a time, and each lease that found the rest
/// had arrived meanwhile was followed by one that found nothing and a look for the next due row.
/// A row waits at most this long more before it is posted. A backlog is not paced: pausing after
/// every lease capped a dispatcher draining one endpoint at a share per pause (2,850 posts/s to
/// 1,965/s in `make bench`).
pub const GATHER: Duration = Duration::from_millis(20);
/// Writes of attempts that may follow each other without a pause.
const RECORD_BURST: u32 = 4;
/// Rows a dispatcher may hold leased per post slot (overall and per endpoint): leases fetch
/// this many times the posts they can make at once, so the statement's cost is shared.
const PREFETCH: usize = 16;

/// Each endpoint's post slots in this dispatcher.
#[derive(Debug)]
struct EndpointSlots {
    per_endpoint: usize,
    slots: std::sync::Mutex<HashMap<(TenantId, WebhookId), Arc<Semaphore>>>,
}

impl EndpointSlots {
    fn new(per_endpoint: usize) -> Self {
        Self {
            per_endpoint,
            slots: std::sync::Mutex::default(),
        }
    }

    /// The slots of the endpoint `webhook_id` of `tenant_id`.
    fn of(&self, tenant_id: TenantId, webhook_id: WebhookId) -> Arc<Semaphore> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots
            .entry((tenant_id, webhook_id))
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_endpoint)))
            .clone()
    }

    /// Forgets endpoints no post is using or waiting for.
    fn prune(&self) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.retain(|_, slot| Arc::strong_count(slot) > 1);
    }
}

/// How the dispatcher works.
#[derive(Clone, Debug)]
pub struct DispatcherSettings {
    /// Posts in flight at once.
    pub concurrency: usize,
    /// Posts in flight to one endpoint at once; `PREFETCH` times this is the endpoint's share
    /// of leased rows across dispatchers.
    pub per_endpoint: usize,
    pub lease: Duration,
    pub poll_interval: Duration,
    /// When each attempt is made, from the previous one: the first is immediate.
    pub schedule: Vec<Duration>,
    /// An endpoint failing with no success for this long is disabled.
    pub disable_after: Duration,
}

/// The webhook outbox, as the runner works it.
#[derive(Clone, Debug)]
pub struct Outbox {
    store: Store,
    webhooks: Webhooks,
    client: WebhookClient,
    settings: Arc<DispatcherSettings>,
    plan: Plan,
    /// Posts in flight at once, over all endpoints.
    posting: Arc<Semaphore>,
    endpoints: Arc<EndpointSlots>,
    /// When the once-a-second and once-a-minute upkeep last ran.
    upkept: Arc<Mutex<Upkept>>,
}

#[derive(Debug, Default)]
struct Upkept {
    ticked: Option<Instant>,
    swept: Option<Instant>,
}

/// The dispatcher: the runner of the [`Outbox`]; cheap to clone.
#[derive(Clone, Debug)]
pub struct Dispatcher {
    runner: Runner<Outbox>,
}

/// How often a dispatcher checks that no endpoint's low-water mark passed an unfinished row.
const MARK_SWEEP: Duration = Duration::from_secs(60);

impl Dispatcher {
    #[must_use]
    pub fn new(
        store: Store,
        webhooks: Webhooks,
        client: WebhookClient,
        settings: DispatcherSettings,
    ) -> Self {
        let concurrency = settings.concurrency.max(1);
        let plan = Plan {
            places: concurrency * PREFETCH,
            low_water: 1,
            release: Release::AfterRecord,
            gather: GATHER,
            record_burst: RECORD_BURST,
            record_batch: RECORD_BATCH,
            lease: settings.lease,
            poll_interval: settings.poll_interval,
            // Rows due but held back by their endpoints' shares wait for recorded attempts, not
            // for the stream of notifications of new rows.
            wake_on_record: true,
        };
        Self {
            runner: Runner::new(Outbox {
                store,
                webhooks,
                client,
                posting: Arc::new(Semaphore::new(concurrency)),
                endpoints: Arc::new(EndpointSlots::new(settings.per_endpoint.max(1))),
                settings: Arc::new(settings),
                plan,
                upkept: Arc::default(),
            }),
        }
    }

    /// Runs until `shutdown`; attempts in flight finish and are recorded first.
    pub async fn run(self, shutdown: CancellationToken) {
        self.runner.run(shutdown).await;
    }

    /// Attempts everything due now until nothing is and every attempt is recorded (later
    /// retries stay queued), through the same loop as [`Dispatcher::run`]; returns how many
    /// rows it attempted. For tests and tools.
    ///
    /// # Errors
    /// Database failures while leasing.
    pub async fn drain(&self) -> Result<usize, StoreError> {
        self.runner.drain().await
    }
}

impl Outbox {
    /// One attempt of one leased row, and what to record.
    async fn post(&self, holder: Uuid, event: LeasedWebhookEvent) -> WebhookAttemptResult {
        let now = OffsetDateTime::now_utc();
        let mut result = WebhookAttemptResult {
            tenant_id: event.tenant_id,
            event_id: event.id,
            webhook_id: event.webhook_id,
            holder,
            http_status: None,
            response: String::new(),
            duration: Duration::ZERO,
            status: WebhookEventStatus::Failed,
            next_attempt_at: None,
            disable: None,
        };
        if event.webhook_status != WebhookStatus::Enabled {
            result.response = "the endpoint is disabled".to_owned();
            return result;
        }
        let secrets = match self.secrets(&event, now) {
            Ok(secrets) => secrets,
            Err(reason) => {
                tracing::error!(tenant_id = %event.tenant_id, webhook_id = %event.webhook_id, %reason, "cannot sign a webhook");
                result.response = "the signing secret could not be opened".to_owned();
                return result;
            }
        };
        let id = message_id(event.id);
        let body = event.payload().body();
        let timestamp = now.unix_timestamp();
        let signature = signature_header(&secrets, &id, timestamp, &body);
        let attempt = self
            .client
            .post(&Signed {
                url: &event.endpoint,
                id: &id,
                timestamp,
                body: &body,
                signature: &signature,
            })
            .await;
        result.http_status = attempt.status.map(i32::from);
        result.duration = attempt.duration;
        result.response.clone_from(&attempt.response);
        let done = usize::try_from(event.attempts).unwrap_or(0) + 1;
        if attempt.succeeded() {
            result.status = WebhookEventStatus::Success;
        } else if attempt.gone() {
            result.disable = Some("410 Gone".to_owned());
        } else if now - event.last_success_at > self.settings.disable_after {
            result.disable = Some(format!(
                "no successful delivery for {} days",
                self.settings.disable_after.as_secs() / 86_400
            ));
        } else if let Some(wait) = self.settings.schedule.get(done) {
            result.status = WebhookEventStatus::Attempting;
            result.next_attempt_at = Some(now + *wait);
        }
        metrics::counter!("missive_webhook_attempts_total", "outcome" => result.status.as_str())
            .increment(1);
        if result.disable.is_some() {
            metrics::counter!("missive_webhook_endpoints_disabled_total").increment(1);
        }
        tracing::info!(
            tenant_id = %event.tenant_id,
            webhook_id = %event.webhook_id,
            event_id = %event.id,
            email_id = ?event.email_id,
            status = ?attempt.status,
            outcome = result.status.as_str(),
            "webhook attempt"
        );
        result
    }

    fn secrets(
        &self,
        event: &LeasedWebhookEvent,
        now: OffsetDateTime,
    ) -> Result<Vec<missive_core::webhook::SigningSecret>, String> {
        let (current, previous) = event.secrets(now);
        self.webhooks
            .open_secrets(event.tenant_id, &current, previous.as_ref())
            .map_err(|e| e.to_string())
    }

    /// The most rows of one endpoint leased at once, by all dispatchers together.
    fn share(&self) -> i64 {
        i64::try_from(self.settings.per_endpoint.max(1) * PREFETCH).unwrap_or(1)
    }

    /// Once a second: the queue-depth gauge (counting is a scan of the backlog), the planner's
    /// view of an outbox that may be growing fast, and idle endpoints' slots. At start and once
    /// a minute: no unfinished row may sit behind its endpoint's mark.
    async fn upkeep_now(&self, tick: bool, sweep: bool) {
        if tick {
            if let Ok(backlog) = self.store.webhook_backlog().await {
                #[allow(clippy::cast_precision_loss)] // a gauge
                metrics::gauge!("missive_webhook_queue_depth").set(backlog as f64);
            }
            if let Err(err) = self.store.analyze_outbox_if_stale().await {
                tracing::debug!(error = %err, "could not refresh the outbox's statistics");
            }
            self.endpoints.prune();
        }
        if sweep {
            match self.store.reset_passed_webhook_marks().await {
                Ok(0) => {}
                Ok(moved) => {
                    metrics::counter!("missive_webhook_mark_resets_total").increment(moved);
                    tracing::warn!(
                        endpoints = moved,
                        "unfinished webhook events were behind their endpoint's mark; leasing them again"
                    );
                }
                Err(err) => tracing::debug!(error = %err, "could not check the outbox marks"),
            }
        }
    }
}

impl Queue for Outbox {
    type Job = LeasedWebhookEvent;
    type Outcome = WebhookAttemptResult;

    const KIND: WorkerKind = WorkerKind::Webhooks;
    const CHANNEL: Channel = Channel::Webhooks;

    fn store(&self) -> &Store {
        &self.store
    }

    fn plan(&self) -> &Plan {
        &self.plan
    }

    async fn lease(
        &self,
        holder: Uuid,
        room: usize,
    ) -> Result<Lease<LeasedWebhookEvent>, StoreError> {
        let leased = self
            .store
            .lease_webhook_events(
                i64::try_from(room.max(1)).unwrap_or(1),
                self.share(),
                self.settings.lease,
                holder,
            )
            .await?;
        metrics::counter!("missive_webhook_leases_total", "found" => if leased.is_empty() { "none" } else { "rows" })
            .increment(1);
        // Half an endpoint's share of leased rows: what the lease tops a share up with at least.
        let batch = usize::try_from(self.share() / 2).map_or(1, |half| half.max(1));
        // A lease of half a share or more is a backlog. Its endpoints' shares, or this
        // dispatcher's places, are what hold back the rest: the next lease waits for recorded
        // attempts to free them up. Leased right away, it found nothing (seven leases in ten
        // found nothing with every feature on, each one a scan of the endpoints' first rows and a
        // look for the next due row). A smaller lease found all that was due: the next waits for
        // GATHER, so a steady stream is leased in batches.
        let then = if leased.len() >= batch.min(room) {
            Then::HeldBack
        } else if leased.is_empty() {
            Then::Idle
        } else {
            Then::Gather
        };
        Ok(Lease { jobs: leased, then })
    }

    fn rows(_: &LeasedWebhookEvent) -> usize {
        1
    }

    async fn attempt(&self, holder: Uuid, event: LeasedWebhookEvent) -> WebhookAttemptResult {
        let endpoint = self.endpoints.of(event.tenant_id, event.webhook_id);
        let _endpoint = endpoint.acquire().await;
        let _post = self.posting.acquire().await;
        self.post(holder, event).await
    }

    fn outcome_rows(_: &WebhookAttemptResult) -> usize {
        1
    }

    async fn record(&self, results: Vec<WebhookAttemptResult>) {
        if let Err(err) = self.store.record_webhook_attempts(&results).await {
            // The leases run out and the rows are tried again: a duplicate beats a loss.
            tracing::error!(error = %err, attempts = results.len(), "could not record webhook attempts");
        }
    }

    async fn idle(&self) -> Idle {
        // Nothing leased: what is due waits for its endpoint's share to free up; otherwise
        // sleep until the next row falls due.
        let now = OffsetDateTime::now_utc();
        let poll = self.settings.poll_interval;
        match self.store.next_webhook_due(self.share()).await {
            Ok(Some(at)) if at > now => Idle {
                sleep: (at - now).try_into().unwrap_or(Duration::ZERO).min(poll),
                held_back: false,
            },
            Ok(Some(_)) => Idle {
                sleep: poll,
                held_back: true,
            },
            _ => Idle {
                sleep: poll,
                held_back: false,
            },
        }
    }

    async fn upkeep(&self) {
        let (tick, sweep) = {
            let mut upkept = self.upkept.lock().unwrap_or_else(PoisonError::into_inner);
            let tick = upkept
                .ticked
                .is_none_or(|at| at.elapsed() >= Duration::from_secs(1));
            let sweep = upkept.swept.is_none_or(|at| at.elapsed() >= MARK_SWEEP);
            if tick {
                upkept.ticked = Some(Instant::now());
            }
            if sweep {
                upkept.swept = Some(Instant::now());
            }
            (tick, sweep)
        };
        self.upkeep_now(tick, sweep).await;
    }
}
