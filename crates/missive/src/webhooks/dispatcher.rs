//! The webhook dispatcher (`--role webhooks`): leases due outbox rows, signs each body with the
//! endpoint's live secrets, posts it ([`super::client`]), records the attempt, and schedules the
//! next one on the retry schedule (Svix's by default) with the same message id, until a 2xx or
//! the schedule runs out. `410 Gone`, or a failure after days without any success, disables the
//! endpoint. Registered like the delivery worker, so a dead dispatcher's leases are taken over
//! within about a second.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use missive_core::TenantId;
use missive_core::outcome::BounceClass;
use missive_core::webhook::{message_id, signature_header};
use missive_store::listen::Channel;
use missive_store::workers::WorkerKind;
use missive_store::{LeasedWebhookEvent, Store, StoreError, WebhookAttemptResult};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Webhooks;
use super::client::{Signed, WebhookClient};
use crate::pace::Pace;
use crate::registration::{Holder, Registered, until_drained};

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
    slots: std::sync::Mutex<HashMap<(Uuid, Uuid), Arc<Semaphore>>>,
}

impl EndpointSlots {
    fn new(per_endpoint: usize) -> Self {
        Self {
            per_endpoint,
            slots: std::sync::Mutex::default(),
        }
    }

    /// The slots of the endpoint `webhook_id` of `tenant_id`.
    fn of(&self, tenant_id: Uuid, webhook_id: Uuid) -> Arc<Semaphore> {
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

/// The dispatcher; cheap to clone.
#[derive(Clone, Debug)]
pub struct Dispatcher {
    store: Store,
    webhooks: Webhooks,
    client: WebhookClient,
    settings: Arc<DispatcherSettings>,
    holder: Holder,
}

/// A webhook body, Resend's shape.
#[derive(Debug, Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    created_at: String,
    data: Data<'a>,
}

#[derive(Debug, Serialize)]
struct Data<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    email_id: Option<Uuid>,
    tenant_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    smtp_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    smtp_response: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bounce: Option<Bounce<'a>>,
    /// Set on `POST /v1/webhooks/{id}/test` events, which report no email.
    #[serde(skip_serializing_if = "Option::is_none")]
    test: Option<bool>,
}

#[derive(Debug, Serialize)]
struct Bounce<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// The body of a leased row: the same bytes on every attempt, as it is built from rows that do
/// not change.
#[must_use]
pub fn body_of(event: &LeasedWebhookEvent) -> Vec<u8> {
    // Stored tags are `[{name, value}]`; Resend's webhooks carry them as an object.
    let tags = event.tags.as_ref().map(|tags| {
        tags.as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| Some((t["name"].as_str()?.to_owned(), t["value"].clone())))
            .collect()
    });
    let body = Body {
        kind: &event.kind,
        created_at: rfc3339(event.created_at),
        data: Data {
            email_id: event.email_id,
            tenant_id: event.tenant_id,
            from: event.from_address.as_deref(),
            to: event.to.as_deref(),
            subject: event.subject.as_deref(),
            tags,
            created_at: event.email_created_at.map(rfc3339),
            recipient: event.recipient.as_deref(),
            smtp_code: event.smtp_code,
            smtp_response: event.smtp_response.as_deref(),
            bounce: (event.kind == "email.bounced").then(|| Bounce {
                // Resend's names for the class: a hard bounce is permanent, a soft one (a
                // refusal that says nothing final about the address) transient.
                kind: if event.bounce_class.as_deref() == Some(BounceClass::Soft.as_str()) {
                    BounceClass::Soft.resend_type()
                } else {
                    BounceClass::Hard.resend_type()
                },
                message: event.smtp_response.as_deref().unwrap_or_default(),
            }),
            test: event.email_id.is_none().then_some(true),
        },
    };
    serde_json::to_vec(&body).unwrap_or_default()
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
        Self {
            store,
            webhooks,
            client,
            settings: Arc::new(settings),
            holder: Holder::default(),
        }
    }

    /// One attempt of one leased row, and what to record.
    async fn attempt(&self, event: LeasedWebhookEvent) -> WebhookAttemptResult {
        let now = OffsetDateTime::now_utc();
        let mut result = WebhookAttemptResult {
            tenant_id: event.tenant_id,
            event_id: event.id,
            webhook_id: event.webhook_id,
            holder: self.holder.get(),
            http_status: None,
            response: String::new(),
            duration: Duration::ZERO,
            status: "failed",
            next_attempt_at: None,
            disable: None,
        };
        if event.webhook_status != "enabled" {
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
        let body = body_of(&event);
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
            result.status = "success";
        } else if attempt.gone() {
            result.disable = Some("410 Gone".to_owned());
        } else if now - event.last_success_at > self.settings.disable_after {
            result.disable = Some(format!(
                "no successful delivery for {} days",
                self.settings.disable_after.as_secs() / 86_400
            ));
        } else if let Some(wait) = self.settings.schedule.get(done) {
            result.status = "attempting";
            result.next_attempt_at = Some(now + *wait);
        }
        metrics::counter!("missive_webhook_attempts_total", "outcome" => result.status)
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
            outcome = result.status,
            "webhook attempt"
        );
        result
    }

    fn secrets(
        &self,
        event: &LeasedWebhookEvent,
        now: OffsetDateTime,
    ) -> Result<Vec<missive_core::webhook::SigningSecret>, String> {
        let tenant_id = TenantId::from_uuid(event.tenant_id);
        let (current, previous) = event.secrets(now);
        self.webhooks
            .open_secrets(tenant_id, &current, previous.as_ref())
            .map_err(|e| e.to_string())
    }

    /// The most rows of one endpoint leased at once, by all dispatchers together.
    fn share(&self) -> i64 {
        i64::try_from(self.settings.per_endpoint.max(1) * PREFETCH).unwrap_or(1)
    }

    /// Leases up to `limit` due rows.
    async fn lease(&self, limit: usize) -> Result<Vec<LeasedWebhookEvent>, StoreError> {
        self.store
            .lease_webhook_events(
                i64::try_from(limit.max(1)).unwrap_or(1),
                self.share(),
                self.settings.lease,
                self.holder.get(),
            )
            .await
    }

    /// Records attempts in one statement.
    async fn record(&self, results: &[WebhookAttemptResult]) {
        if let Err(err) = self.store.record_webhook_attempts(results).await {
            // The leases run out and the rows are tried again: a duplicate beats a loss.
            tracing::error!(error = %err, attempts = results.len(), "could not record webhook attempts");
        }
    }

    /// Leases what is due, attempts it all and records the attempts; returns how many rows it
    /// attempted.
    async fn process_due(&self) -> Result<usize, StoreError> {
        let leased = self.lease(self.settings.concurrency).await?;
        let n = leased.len();
        let mut attempts = JoinSet::new();
        for event in leased {
            let dispatcher = self.clone();
            attempts.spawn(async move { dispatcher.attempt(event).await });
        }
        let mut results = Vec::with_capacity(n);
        while let Some(result) = attempts.join_next().await {
            results.extend(result.ok());
        }
        self.record(&results).await;
        Ok(n)
    }

    /// Writes finished attempts as they come, together: whatever arrived while the previous
    /// write ran or its pace held it goes in the next one, so at a high rate each write carries
    /// many attempts and at a low rate none waits. A post's slot is given back only once its
    /// attempt is written, as its lease counts against its endpoint until then.
    async fn recorder(
        self,
        mut finished: mpsc::Receiver<(WebhookAttemptResult, OwnedSemaphorePermit)>,
        recorded: Arc<Notify>,
    ) {
        let mut batch = Vec::new();
        let mut pace = Pace::new(GATHER, RECORD_BURST);
        while finished.recv_many(&mut batch, RECORD_BATCH).await > 0 {
            tokio::time::sleep_until(pace.next(tokio::time::Instant::now())).await;
            // What finished while the pace held this write goes with it.
            while batch.len() < RECORD_BATCH {
                match finished.try_recv() {
                    Ok(more) => batch.push(more),
                    Err(_) => break,
                }
            }
            let (results, permits): (Vec<_>, Vec<_>) =
                std::mem::take(&mut batch).into_iter().unzip();
            self.record(&results).await;
            drop(permits);
            // Their endpoints have slots again. Only for a dispatcher waiting now: one that
            // leases after this sees these slots free.
            recorded.notify_waiters();
        }
    }

    /// Attempts everything due now until nothing is (later retries stay queued). For tests and
    /// tools.
    ///
    /// # Errors
    /// Database failures.
    pub async fn drain(&self) -> Result<usize, StoreError> {
        until_drained(|| self.process_due()).await
    }

    /// Runs until `shutdown`; attempts in flight finish and are recorded first.
    pub async fn run(self, shutdown: CancellationToken) {
        let Some(registered) = Registered::start(
            &self.store,
            WorkerKind::Webhooks,
            &self.holder,
            self.settings.lease,
            Channel::Webhooks,
            &shutdown,
        )
        .await
        else {
            return;
        };
        let wake = registered.wake.clone();
        tracing::info!(
            concurrency = self.settings.concurrency,
            "webhook dispatcher started"
        );
        // A pipeline in two stages. Leased rows wait in memory for a post slot: at most
        // `concurrency` posts at once overall and `per_endpoint` to any one endpoint, so a slow
        // endpoint holds only its own share of them. Each row keeps a place among the
        // `concurrency * PREFETCH` this dispatcher may hold until its attempt is recorded, so a
        // lease fetches many rows at once, and a few slow endpoints cannot hold every place.
        let concurrency = self.settings.concurrency.max(1);
        let held_max = concurrency * PREFETCH;
        let held = Arc::new(Semaphore::new(held_max));
        let posting = Arc::new(Semaphore::new(concurrency));
        let endpoints = EndpointSlots::new(self.settings.per_endpoint.max(1));
        let (finished, results) = mpsc::channel(held_max);
        // Apart from `wake`: rows due but held back by their endpoints' shares wait for this,
        // not for the stream of notifications of new rows.
        let recorded = Arc::new(Notify::new());
        let recorder = tokio::spawn(self.clone().recorder(results, recorded.clone()));
        let mut ticked: Option<Instant> = None;
        let mut swept: Option<Instant> = None;
        let mut next_lease_at = tokio::time::Instant::now();
        // Half an endpoint's share of leased rows: what the lease tops a share up with at least.
        let batch = usize::try_from(self.share() / 2).map_or(1, |half| half.max(1));
        while !shutdown.is_cancelled() {
            // Once a second: the queue-depth gauge (counting is a scan of the backlog), the
            // planner's view of an outbox that may be growing fast, and idle endpoints' slots.
            if ticked.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                ticked = Some(Instant::now());
                if let Ok(backlog) = self.store.webhook_backlog().await {
                    #[allow(clippy::cast_precision_loss)] // a gauge
                    metrics::gauge!("missive_webhook_queue_depth").set(backlog as f64);
                }
                if let Err(err) = self.store.analyze_outbox_if_stale().await {
                    tracing::debug!(error = %err, "could not refresh the outbox's statistics");
                }
                endpoints.prune();
            }
            // At start and once a minute: no unfinished row may sit behind its endpoint's mark.
            if swept.is_none_or(|at| at.elapsed() >= MARK_SWEEP) {
                swept = Some(Instant::now());
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
            // Register interest before looking, so a notification between the two is not lost.
            let notified = wake.notified();
            let freed = recorded.notified();
            let free = held.available_permits();
            if free == 0 {
                tokio::select! {
                    permit = held.acquire() => drop(permit),
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
            let leased = match self.lease(free).await {
                Ok(leased) => leased,
                Err(err) => {
                    tracing::error!(error = %err, "leasing webhook events failed");
                    Vec::new()
                }
            };
            // A lease of half a share or more is a backlog. Its endpoints' shares, or this
            // dispatcher's places, are what hold back the rest: the next lease waits for
            // recorded attempts to free them up. Leased right away, it found nothing (seven
            // leases in ten found nothing with every feature on, each one a scan of the
            // endpoints' first rows and a look for the next due row). A smaller lease found all
            // that was due: the next waits for GATHER, so a steady stream is leased in batches.
            let backlog = leased.len() >= batch.min(free);
            let leased_any = !leased.is_empty();
            metrics::counter!("missive_webhook_leases_total", "found" => if leased_any { "rows" } else { "none" })
                .increment(1);
            for event in leased {
                let Ok(place) = held.clone().acquire_owned().await else {
                    break;
                };
                let endpoint = endpoints.of(event.tenant_id, event.webhook_id);
                let (dispatcher, posting) = (self.clone(), posting.clone());
                let finished = finished.clone();
                tokio::spawn(async move {
                    let result = {
                        let _endpoint = endpoint.acquire().await;
                        let _post = posting.acquire().await;
                        dispatcher.attempt(event).await
                    };
                    // Only fails once the recorder is gone, which outlives every post.
                    drop(finished.send((result, place)).await);
                });
            }
            if leased_any && !backlog {
                next_lease_at = started + GATHER;
                continue;
            }
            // A backlog, or nothing leased: what is due waits for its endpoint's share to free
            // up; otherwise sleep until the next row falls due.
            let now = OffsetDateTime::now_utc();
            let (held_back, sleep) = if backlog {
                (true, self.settings.poll_interval)
            } else {
                match self.store.next_webhook_due(self.share()).await {
                    Ok(Some(at)) if at > now => (
                        false,
                        (at - now)
                            .try_into()
                            .unwrap_or(Duration::ZERO)
                            .min(self.settings.poll_interval),
                    ),
                    Ok(Some(_)) => (true, self.settings.poll_interval),
                    _ => (false, self.settings.poll_interval),
                }
            };
            // Held back, new rows (which another endpoint may have) are looked for no sooner
            // than GATHER, rather than on each of the stream of notifications.
            let new_rows = async {
                if held_back {
                    tokio::time::sleep(GATHER).await;
                }
                notified.await;
            };
            tokio::select! {
                () = new_rows => {}
                () = freed => {}
                () = tokio::time::sleep(sleep.max(Duration::from_millis(10))) => {}
                () = shutdown.cancelled() => {}
            }
        }
        // Every place back means every post finished and its attempt was recorded.
        let _ = held
            .acquire_many(u32::try_from(held_max).unwrap_or(u32::MAX))
            .await;
        drop(finished);
        drop(recorder.await);
        registered.finish().await;
        tracing::info!("webhook dispatcher stopped");
    }
}
