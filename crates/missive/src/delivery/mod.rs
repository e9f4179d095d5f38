//! The delivery worker: leases due deliveries, sends each email once to all its leased
//! recipients through its route's transport, classifies each recipient's reply and records the
//! results with their events.
//!
//! Nothing is sent inside a transaction, and nothing is lost when a worker dies: a running worker
//! is registered (`missive_store::workers`), and within about a second of its death, however it
//! died, any other worker (or the restarted process) expires its leases and takes the rows again;
//! a live worker renews its leases, so nothing it is still sending is taken from it. Lease expiry
//! (`MISSIVE_LEASE_SECS`) is the last resort. A NOTIFY on insert wakes workers at once; polling
//! (and the next due time) is the fallback. The worker knows routes and relay specs
//! ([`Routes`]), never the configuration, which only produces them.

mod breaker;
mod routes;
pub mod smtp;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use missive_core::outcome::{BounceClass, Outcome, bounce_class, classify};
use missive_core::retry::{RetryDecision, RetryPolicy};
use missive_core::routing::{TenantRelay, resolve};
use missive_core::{DeliveryStatus, Route, TenantId};
use missive_store::listen::Channel;
use missive_store::workers::WorkerKind;
use missive_store::{DeliveryResult, LeasedDelivery, OutgoingMessage, Store, StoreError};
use time::OffsetDateTime;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use self::routes::{
    Place, RouteError, Routes, TenantRelays, TenantRouteSettings, Transport, TransportError,
    TransportSettings,
};
use self::smtp::RecipientReply;
use crate::pace::Pace;
use crate::registration::{Holder, Registered, until_drained};

/// Tuning for the worker.
#[derive(Clone, Copy, Debug)]
pub struct WorkerSettings {
    /// Emails sent at the same time by one worker.
    pub concurrency: usize,
    /// How long a lease lasts before another worker may take the rows.
    pub lease: Duration,
    /// Longest sleep when nothing is due and no notification arrives.
    pub poll_interval: Duration,
    pub retry: RetryPolicy,
}

/// One email to send, with the recipients leased for it and the route they take.
struct Job {
    route: Route,
    /// The relay on the route, as recorded with each result.
    route_host: String,
    /// Why the route cannot be used, when it cannot: the recipients are deferred.
    transport: Result<Arc<Transport>, String>,
    /// Held until the results exist (a tenant's own route counts its jobs).
    place: Option<Place>,
    message: OutgoingMessage,
    deliveries: Vec<LeasedDelivery>,
}

/// The delivery worker.
#[derive(Debug, Clone)]
pub struct DeliveryWorker {
    store: Store,
    routes: Arc<Routes>,
    settings: WorkerSettings,
    /// The id this worker's leases carry.
    holder: Holder,
}

fn result_for(
    delivery: &LeasedDelivery,
    reply: RecipientReply,
    policy: &RetryPolicy,
    now: OffsetDateTime,
    (route, route_host): (Route, &str),
) -> DeliveryResult {
    let (outcome, code, bounce, text) = match reply {
        RecipientReply::Reply(reply) => (
            classify(reply.code),
            Some(reply.code),
            bounce_class(reply.code, &reply.text),
            reply.text,
        ),
        RecipientReply::Failed(message) => {
            (Outcome::Deferred, None, Some(BounceClass::Soft), message)
        }
    };
    let (status, next_attempt_at) = match outcome {
        Outcome::Delivered => (DeliveryStatus::Delivered, None),
        Outcome::Bounced => (DeliveryStatus::Bounced, None),
        Outcome::Deferred => {
            let age = (now - delivery.created_at)
                .try_into()
                .unwrap_or(Duration::ZERO);
            let attempts = u32::try_from(delivery.attempts).unwrap_or(1);
            match policy.after_failure(attempts, age, rand::random::<f64>()) {
                RetryDecision::RetryIn(delay) => (DeliveryStatus::Deferred, Some(now + delay)),
                RetryDecision::GiveUp => (DeliveryStatus::Failed, None),
            }
        }
    };
    DeliveryResult {
        tenant_id: delivery.tenant_id,
        email_id: delivery.email_id,
        id: delivery.id,
        lease_id: delivery.lease_id,
        status,
        next_attempt_at,
        smtp_code: code,
        smtp_response: text,
        bounce,
        route,
        route_host: route_host.to_owned(),
    }
}

impl DeliveryWorker {
    #[must_use]
    pub fn new(store: Store, routes: Arc<Routes>, settings: WorkerSettings) -> Self {
        Self {
            store,
            routes,
            settings,
            holder: Holder::default(),
        }
    }

    fn holder(&self) -> Uuid {
        self.holder.get()
    }

    /// Leases up to `limit` due deliveries and groups them by email with the email's message:
    /// one SMTP transaction per email, with all of its leased recipients.
    async fn lease(&self, limit: usize) -> Result<Vec<Job>, StoreError> {
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let allowances = self.routes.allowances();
        let leased = self
            .store
            .lease_due_deliveries(limit, self.settings.lease, self.holder(), &allowances)
            .await?;
        if leased.is_empty() {
            return Ok(Vec::new());
        }
        let mut groups: BTreeMap<(TenantId, Uuid), Vec<LeasedDelivery>> = BTreeMap::new();
        for delivery in leased {
            groups
                .entry((delivery.tenant_id, delivery.email_id))
                .or_default()
                .push(delivery);
        }
        let keys: Vec<(TenantId, Uuid)> = groups.keys().copied().collect();
        let mut messages: BTreeMap<(TenantId, Uuid), OutgoingMessage> = self
            .store
            .outgoing_messages(&keys)
            .await?
            .into_iter()
            .map(|m| ((m.tenant_id, m.id), m))
            .collect();
        Ok(groups
            .into_iter()
            .filter_map(|(key, mut deliveries)| {
                // In the order the email named them (ids are time-ordered).
                deliveries.sort_by_key(|d| d.id);
                messages.remove(&key).map(|message| {
                    let (route, route_host, transport, place) =
                        match self.routes.for_message(&message) {
                            Ok((route, transport, place)) => {
                                (route, transport.host(), Ok(transport), place)
                            }
                            Err(err) => {
                                let relay = message.relay.as_ref().map(|r| &r.relay);
                                (
                                    resolve(message.tenant_id, relay),
                                    relay.map(TenantRelay::addr).unwrap_or_default(),
                                    Err(err.to_string()),
                                    None,
                                )
                            }
                        };
                    Job {
                        route,
                        route_host,
                        transport,
                        place,
                        message,
                        deliveries,
                    }
                })
            })
            .collect())
    }

    /// Leases one batch, delivers it and records the results in one statement. Returns how
    /// many deliveries were attempted.
    ///
    /// # Errors
    /// Database failures while leasing; failures while recording are logged and the rows are
    /// left to their lease.
    pub async fn process_due(&self) -> Result<usize, StoreError> {
        let jobs = self
            .lease(self.settings.concurrency.saturating_mul(4))
            .await?;
        let count = jobs.iter().map(|j| j.deliveries.len()).sum();
        let permits = Arc::new(tokio::sync::Semaphore::new(
            self.settings.concurrency.max(1),
        ));
        let mut tasks = JoinSet::new();
        for job in jobs {
            let worker = self.clone();
            let permits = permits.clone();
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                worker.attempt(job).await
            });
        }
        let mut results = Vec::with_capacity(count);
        while let Some(done) = tasks.join_next().await {
            results.extend(done.unwrap_or_default());
        }
        record(&self.store, &results).await;
        Ok(count)
    }

    /// Sends one email to its leased recipients and classifies each reply.
    #[tracing::instrument(skip_all, fields(tenant_id = %job.message.tenant_id, email_id = %job.message.id, route = %job.route))]
    async fn attempt(&self, job: Job) -> Vec<DeliveryResult> {
        let Job {
            route,
            route_host,
            transport,
            place,
            message,
            deliveries,
        } = job;
        let recipients: Vec<String> = deliveries.iter().map(|d| d.recipient.clone()).collect();
        let replies = match transport {
            Ok(transport) => transport.send(&message, &recipients).await,
            Err(reason) => {
                tracing::warn!(reason = %reason, "the tenant's SMTP server cannot be used");
                recipients
                    .iter()
                    .map(|_| RecipientReply::Failed(reason.clone()))
                    .collect()
            }
        };
        let now = OffsetDateTime::now_utc();
        let results: Vec<DeliveryResult> = deliveries
            .iter()
            .zip(replies)
            .map(|(delivery, reply)| {
                result_for(
                    delivery,
                    reply,
                    &self.settings.retry,
                    now,
                    (route, &route_host),
                )
            })
            .collect();
        drop(place);
        for result in &results {
            tracing::info!(status = result.status.as_str(), code = ?result.smtp_code, response = %result.smtp_response, "delivery attempt");
            metrics::counter!("missive_delivery_attempts_total", "status" => result.status.as_str(), "route" => route.as_str()).increment(1);
        }
        results
    }

    /// Delivers until nothing is due. For tests and tools: no sleeping, no notifications.
    ///
    /// # Errors
    /// Database failures.
    pub async fn drain(&self) -> Result<usize, StoreError> {
        until_drained(|| self.process_due()).await
    }

    /// Runs until `shutdown` fires; in-flight sends finish and are recorded first.
    ///
    /// A pipeline rather than batch after batch: new rows are leased as soon as a quarter of
    /// the send slots are free, so one slow relay conversation never holds up the others, and
    /// results are written by a recorder that puts everything finished meanwhile into one
    /// statement. A lease that came back short of what it asked for has drained the queue, so
    /// the next one waits for [`GATHER`] to pass: a steady trickle then goes out in batches
    /// rather than a lease per commit; a backlog is leased back to back.
    pub async fn run(self, shutdown: CancellationToken) {
        let Some(registered) = Registered::start(
            &self.store,
            WorkerKind::Delivery,
            &self.holder,
            self.settings.lease,
            Channel::Deliveries,
            &shutdown,
        )
        .await
        else {
            return;
        };
        let wake = registered.wake.clone();
        let concurrency = self.settings.concurrency.max(1);
        tracing::info!(concurrency, "delivery worker started");
        let slots = Arc::new(Semaphore::new(concurrency));
        let (results, recorded) = mpsc::unbounded_channel::<Vec<DeliveryResult>>();
        let recorder = tokio::spawn(record_as_they_come(self.store.clone(), recorded));
        let low_water = (concurrency / 4).max(1);
        let mut next_lease_at = tokio::time::Instant::now();
        while !shutdown.is_cancelled() {
            // Register interest before looking, so a notification between the two is not lost.
            let notified = wake.notified();
            let freed = self.routes.freed();
            let free = slots.available_permits();
            if free < low_water {
                // Wait (without holding them) until enough slots are free for a worthwhile lease.
                tokio::select! {
                    _ = slots.acquire_many(u32::try_from(low_water).unwrap_or(1)) => {}
                    () = shutdown.cancelled() => {}
                }
                continue;
            }
            if next_lease_at > tokio::time::Instant::now() {
                tokio::select! {
                    () = tokio::time::sleep_until(next_lease_at) => {}
                    () = shutdown.cancelled() => break,
                }
            }
            let started = tokio::time::Instant::now();
            let jobs = match self.lease(free).await {
                Ok(jobs) => jobs,
                Err(err) => {
                    tracing::error!(error = %err, "leasing deliveries failed");
                    Vec::new()
                }
            };
            let leased: usize = jobs.iter().map(|j| j.deliveries.len()).sum();
            // A short lease of shared-route mail means the queue is drained: the next waits for
            // GATHER so a trickle goes out in batches. One of only tenant-route mail was short
            // because those routes are full; pausing then would only delay everyone else's.
            let drained = leased < free && jobs.iter().any(|j| j.place.is_none());
            next_lease_at = if drained { started + GATHER } else { started };
            if !jobs.is_empty() {
                for job in jobs {
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        break;
                    };
                    let worker = self.clone();
                    let results = results.clone();
                    tokio::spawn(async move {
                        let done = worker.attempt(job).await;
                        let _ = results.send(done);
                        drop(permit);
                    });
                }
                continue;
            }
            let full: Vec<TenantId> = self
                .routes
                .allowances()
                .into_iter()
                .filter_map(|(tenant, n)| (n == 0).then_some(tenant))
                .collect();
            let sleep = match self.store.next_delivery_due(&full).await {
                Ok(Some(at)) => (at - OffsetDateTime::now_utc())
                    .try_into()
                    .unwrap_or(Duration::ZERO)
                    .min(self.settings.poll_interval),
                _ => self.settings.poll_interval,
            };
            tokio::select! {
                () = notified => {}
                () = freed => {}
                () = tokio::time::sleep(sleep.max(Duration::from_millis(10))) => {}
                () = shutdown.cancelled() => {}
            }
        }
        // Every slot back means every send finished and handed its results over.
        let all = u32::try_from(concurrency).unwrap_or(u32::MAX);
        let _ = slots.acquire_many(all).await;
        drop(results);
        let _ = recorder.await;
        // Only now: until its results are recorded, a registered worker's leases must not look
        // abandoned.
        registered.finish().await;
        tracing::info!("delivery worker stopped");
    }
}

/// The least time between two leases while the queue is drained, and between two result
/// writes. Every lease and every write has a fixed cost in Postgres (planning, index probes per
/// tenant, a commit) whether it carries one row or a hundred: measured over SMTP at 1,800
/// messages/s, leases without a pause carried five rows each. A row waits at most this long
/// more before it is sent.
const GATHER: Duration = Duration::from_millis(10);

/// Writes results as they arrive, everything that arrived meanwhile in one statement, at most
/// one statement per [`GATHER`] on average.
async fn record_as_they_come(
    store: Store,
    mut recorded: mpsc::UnboundedReceiver<Vec<DeliveryResult>>,
) {
    let mut pace = Pace::new(GATHER, RECORD_BURST);
    while let Some(first) = recorded.recv().await {
        tokio::time::sleep_until(pace.next(tokio::time::Instant::now())).await;
        let mut batch = first;
        while batch.len() < MAX_RECORD_BATCH {
            match recorded.try_recv() {
                Ok(more) => batch.extend(more),
                Err(_) => break,
            }
        }
        record(&store, &batch).await;
    }
}

/// Results written by one statement at most.
const MAX_RECORD_BATCH: usize = 1_000;

/// Result writes that may follow each other without a pause. A strict pause after every
/// write made a tenant's results wait behind another's: with one tenant's slow server
/// finishing a send every 25 ms, nearly half of everyone else's results arrived inside a
/// pause and waited up to [`GATHER`] more.
const RECORD_BURST: u32 = 4;

async fn record(store: &Store, results: &[DeliveryResult]) {
    if let Err(err) = store.record_delivery_results(results).await {
        // The leases will expire and the rows be tried again: a duplicate beats a loss.
        tracing::error!(error = %err, deliveries = results.len(), "could not record delivery results");
    }
}
