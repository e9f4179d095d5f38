//! The delivery worker: leases due deliveries, sends each email once to all its leased
//! recipients through its route's transport, classifies each recipient's reply and records the
//! results with their events. It is a [`Queue`] of the one runner ([`crate::queue::runner`]),
//! which registers it, wakes it and paces it.
//!
//! Nothing is sent inside a transaction, and nothing is lost when a worker dies: a running worker
//! is registered (`missive_store::workers`), and within about a second of its death, however it
//! died, any other worker (or the restarted process) expires its leases and takes the rows again;
//! a live worker renews its leases, so nothing it is still sending is taken from it. Lease expiry
//! (`MISSIVE_LEASE_SECS`) is the last resort. A NOTIFY on insert wakes workers at once; polling
//! (and the next due time) is the fallback. The worker knows routes and relay specs
//! ([`Routes`]), never the configuration, which only produces them.

mod routes;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use missive_core::outcome::{BounceClass, Outcome, bounce_class, classify};
use missive_core::retry::{RetryDecision, RetryPolicy};
use missive_core::return_path::ReturnPaths;
use missive_core::routing::{TenantRelay, resolve};
use missive_core::{DeliveryStatus, EmailId, Route, TenantId, WorkerKind};
use missive_store::listen::Channel;
use missive_store::{
    DeliveryResult, LeasedDelivery, OutgoingMessage, SoftBounceRule, Store, StoreError,
};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use self::routes::{Place, Routes};
use crate::net::relay::Transport;
use crate::net::smtp::{Dsn, Envelope, RecipientReply};
use crate::queue::runner::{Idle, Lease, Plan, Queue, Release, Runner, Then};

/// How each delivery's envelope sender and DSN request are made.
#[derive(Clone, Debug, Default)]
pub struct ReturnPathSettings {
    /// Mints return paths; `None` without `MISSIVE_SECRET_KEY`: the author's address is used.
    pub paths: Option<ReturnPaths>,
    /// The operator's return-path domain, for senders whose domain is not verified.
    pub domain: Option<String>,
    /// Ask the shared relay for success reports too.
    pub notify_success: bool,
}

impl ReturnPathSettings {
    /// The envelope sender of `message`: a return path on its sender's verified domain (under
    /// the domain's `custom_return_path`) or on the operator's return-path domain; else, or
    /// without a key, the author's address.
    #[must_use]
    pub fn envelope_sender(&self, message: &OutgoingMessage) -> Option<String> {
        let paths = self.paths.as_ref()?;
        let host = message
            .return_path_host
            .as_deref()
            .or(self.domain.as_deref())?;
        Some(format!(
            "{}@{host}",
            paths.local_part(message.tenant_id, message.id)
        ))
    }
}

/// Tuning for the worker.
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    /// Emails sent at the same time by one worker.
    pub concurrency: usize,
    /// How long a lease lasts before another worker may take the rows.
    pub lease: Duration,
    /// Longest sleep when nothing is due and no notification arrives.
    pub poll_interval: Duration,
    pub retry: RetryPolicy,
    pub returns: ReturnPathSettings,
    /// When soft bounces suppress an address.
    pub soft_bounces: SoftBounceRule,
}

/// One email to send, with the recipients leased for it and the route they take.
pub struct Job {
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

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("route", &self.route)
            .field("email_id", &self.message.id)
            .field("deliveries", &self.deliveries.len())
            .finish_non_exhaustive()
    }
}

/// The delivery queue, as the runner works it.
#[derive(Debug, Clone)]
pub struct Deliveries {
    store: Store,
    routes: Arc<Routes>,
    settings: WorkerSettings,
    plan: Plan,
}

/// The delivery worker: the runner of [`Deliveries`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct DeliveryWorker {
    runner: Runner<Deliveries>,
}

/// The least time between two leases while the queue is drained, and between two result
/// writes. Every lease and every write has a fixed cost in Postgres (planning, index probes per
/// tenant, a commit) whether it carries one row or a hundred: measured over SMTP at 1,800
/// messages/s, leases without a pause carried five rows each. A row waits at most this long
/// more before it is sent.
const GATHER: Duration = Duration::from_millis(10);

/// Results written by one statement at most.
const MAX_RECORD_BATCH: usize = 1_000;

/// Result writes that may follow each other without a pause. A strict pause after every
/// write made a tenant's results wait behind another's: with one tenant's slow server
/// finishing a send every 25 ms, nearly half of everyone else's results arrived inside a
/// pause and waited up to [`GATHER`] more.
const RECORD_BURST: u32 = 4;

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
        let concurrency = settings.concurrency.max(1);
        let plan = Plan {
            places: concurrency,
            // New rows are leased once a quarter of the send slots are free, so one slow relay
            // conversation never holds up the others.
            low_water: (concurrency / 4).max(1),
            release: Release::AfterAttempt,
            gather: GATHER,
            record_burst: RECORD_BURST,
            record_batch: MAX_RECORD_BATCH,
            lease: settings.lease,
            poll_interval: settings.poll_interval,
            wake_on_record: false,
        };
        Self {
            runner: Runner::new(Deliveries {
                store,
                routes,
                settings,
                plan,
            }),
        }
    }

    /// Runs until `shutdown` fires; in-flight sends finish and are recorded first.
    pub async fn run(self, shutdown: CancellationToken) {
        self.runner.run(shutdown).await;
    }

    /// Delivers until nothing is due and every result is recorded, through the same loop as
    /// [`DeliveryWorker::run`]; returns how many deliveries were attempted. For tests and tools.
    ///
    /// # Errors
    /// Database failures while leasing.
    pub async fn drain(&self) -> Result<usize, StoreError> {
        self.runner.drain().await
    }
}

impl Deliveries {
    /// Leases up to `limit` due deliveries and groups them by email with the email's message:
    /// one SMTP transaction per email, with all of its leased recipients.
    async fn jobs(&self, holder: Uuid, limit: usize) -> Result<Vec<Job>, StoreError> {
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let allowances = self.routes.allowances();
        let leased = self
            .store
            .lease_due_deliveries(limit, self.settings.lease, holder, &allowances)
            .await?;
        if leased.is_empty() {
            return Ok(Vec::new());
        }
        let mut groups: BTreeMap<(TenantId, EmailId), Vec<LeasedDelivery>> = BTreeMap::new();
        for delivery in leased {
            groups
                .entry((delivery.tenant_id, delivery.email_id))
                .or_default()
                .push(delivery);
        }
        let keys: Vec<(TenantId, EmailId)> = groups.keys().copied().collect();
        let mut messages: BTreeMap<(TenantId, EmailId), OutgoingMessage> = self
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
}

impl Queue for Deliveries {
    type Job = Job;
    type Outcome = Vec<DeliveryResult>;

    const KIND: WorkerKind = WorkerKind::Delivery;
    const CHANNEL: Channel = Channel::Deliveries;

    fn store(&self) -> &Store {
        &self.store
    }

    fn plan(&self) -> &Plan {
        &self.plan
    }

    async fn lease(&self, holder: Uuid, room: usize) -> Result<Lease<Job>, StoreError> {
        let jobs = self.jobs(holder, room).await?;
        let leased: usize = jobs.iter().map(|j| j.deliveries.len()).sum();
        // A short lease of shared-route mail means the queue is drained: the next waits for
        // GATHER so a trickle goes out in batches. One of only tenant-route mail was short
        // because those routes are full; pausing then would only delay everyone else's.
        let then = if jobs.is_empty() {
            Then::Idle
        } else if leased < room && jobs.iter().any(|j| j.place.is_none()) {
            Then::Gather
        } else {
            Then::Now
        };
        Ok(Lease { jobs, then })
    }

    fn rows(job: &Job) -> usize {
        job.deliveries.len()
    }

    /// Sends one email to its leased recipients and classifies each reply.
    #[tracing::instrument(skip_all, fields(tenant_id = %job.message.tenant_id, email_id = %job.message.id, route = %job.route))]
    async fn attempt(&self, _holder: Uuid, job: Job) -> Vec<DeliveryResult> {
        let Job {
            route,
            route_host,
            transport,
            place,
            message,
            deliveries,
        } = job;
        let recipients: Vec<String> = deliveries.iter().map(|d| d.recipient.clone()).collect();
        let returns = &self.settings.returns;
        let return_path = returns.envelope_sender(&message);
        // Reports are asked for only where they come back to Missive.
        let envelope_id = return_path.as_ref().map(|_| message.id.to_string());
        let envelope = Envelope {
            from: return_path.as_deref().unwrap_or(&message.envelope_from),
            smtputf8: message.smtputf8,
            dsn: envelope_id.as_deref().map(|envelope_id| Dsn {
                envelope_id,
                success: returns.notify_success && route == Route::Shared,
            }),
        };
        let replies = match transport {
            Ok(transport) => transport.send(&message, &envelope, &recipients).await,
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

    fn outcome_rows(results: &Vec<DeliveryResult>) -> usize {
        results.len()
    }

    async fn record(&self, outcomes: Vec<Vec<DeliveryResult>>) {
        let results: Vec<DeliveryResult> = outcomes.into_iter().flatten().collect();
        if let Err(err) = self
            .store
            .record_delivery_results(&results, self.settings.soft_bounces)
            .await
        {
            // The leases will expire and the rows be tried again: a duplicate beats a loss.
            tracing::error!(error = %err, deliveries = results.len(), "could not record delivery results");
        }
    }

    async fn idle(&self) -> Idle {
        // The tenants whose routes are full wait for a job of theirs to end, not for a time.
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
        Idle {
            sleep,
            held_back: false,
        }
    }

    fn freed(&self) -> impl std::future::Future<Output = ()> + Send + '_ {
        self.routes.freed()
    }
}
