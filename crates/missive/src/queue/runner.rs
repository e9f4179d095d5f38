//! One runner for every leasing queue: lease → attempt → record → release, with the scaffolding
//! each needs to be safe and cheap. The delivery worker and the webhook dispatcher are its two
//! [`Queue`]s; they say how to lease, attempt and record, and the runner does the rest:
//!
//! - registration and upkeep ([`super::registration`]): a dead runner's leases are taken over
//!   within about a second, a live one's are renewed;
//! - wake-ups: a NOTIFY on new rows, a place freed, a recorded batch, or the next due time,
//!   with polling as the fallback;
//! - a pipeline rather than batch after batch: rows are leased again as soon as enough places
//!   are free, so one slow attempt never holds up the others, and outcomes are written by a
//!   recorder that puts everything finished meanwhile into one statement;
//! - pacing ([`super::pace`]): a lease that found all that was due waits a moment
//!   ([`Plan::gather`]) so a trickle goes out in batches, and writes are spaced the same way.
//!
//! Tests and tools drain a queue through the same loop ([`Runner::drain`]): it stops once a lease
//! finds nothing and nothing is in flight, instead of at shutdown, and runs unregistered.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use missive_core::WorkerKind;
use missive_store::listen::Channel;
use missive_store::{Store, StoreError};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::pace::Pace;
use super::registration::{Holder, Registered};

/// What a queue tells the runner about its work.
pub trait Queue: Clone + Send + Sync + 'static {
    /// What one lease hands out and one attempt works on (an email and its recipients, one
    /// webhook event).
    type Job: Send + 'static;
    /// What one attempt leaves to record.
    type Outcome: Send + 'static;

    /// Which workers take over this queue's dead runners' leases.
    const KIND: WorkerKind;
    /// The NOTIFY channel that says new rows are waiting.
    const CHANNEL: Channel;

    fn store(&self) -> &Store;

    /// How the runner paces this queue.
    fn plan(&self) -> &Plan;

    /// Leases work for at most `room` more jobs, on behalf of `holder`, and says when to lease
    /// again.
    fn lease(
        &self,
        holder: Uuid,
        room: usize,
    ) -> impl Future<Output = Result<Lease<Self::Job>, StoreError>> + Send;

    /// The queue rows a job carries (what a drain counts).
    fn rows(job: &Self::Job) -> usize;

    /// Attempts one job.
    fn attempt(&self, holder: Uuid, job: Self::Job) -> impl Future<Output = Self::Outcome> + Send;

    /// The rows an outcome records (what bounds one write).
    fn outcome_rows(outcome: &Self::Outcome) -> usize;

    /// Records outcomes in one statement. A failure is logged: the rows keep their leases, which
    /// run out, and the rows are tried again (a duplicate beats a loss).
    fn record(&self, outcomes: Vec<Self::Outcome>) -> impl Future<Output = ()> + Send;

    /// How long to wait when a lease found nothing to do.
    fn idle(&self) -> impl Future<Output = Idle> + Send;

    /// Housekeeping, called before each lease; the queue decides how often it does anything.
    fn upkeep(&self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Resolves when capacity this queue keeps outside the runner frees up (a tenant's route
    /// with room again), which may let more be leased.
    fn freed(&self) -> impl Future<Output = ()> + Send + '_ {
        std::future::pending()
    }
}

/// How a queue is paced.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Jobs held at once: attempts in flight, and outcomes not yet recorded when
    /// [`Release::AfterRecord`].
    pub places: usize,
    /// Free places to wait for before leasing again, so a lease is worth its statement.
    pub low_water: usize,
    /// When a job's place is given back.
    pub release: Release,
    /// The least time between two leases while the queue is drained, and between two writes on
    /// average (after a burst of [`Plan::record_burst`]). Each lease and each write has a fixed
    /// cost in Postgres (planning, index probes, a commit) whatever it carries; a row waits at
    /// most this long more.
    pub gather: Duration,
    pub record_burst: u32,
    /// Rows one write records at most.
    pub record_batch: usize,
    /// How long a lease lasts before other runners may take the rows.
    pub lease: Duration,
    /// Longest idle sleep when nothing is due and nothing wakes the runner.
    pub poll_interval: Duration,
    /// Whether a recorded batch wakes an idle runner: when recorded attempts free capacity a
    /// lease counts (a webhook endpoint's share of leased rows).
    pub wake_on_record: bool,
}

/// When a job's place is given back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// Once its attempt is done (handed to the recorder).
    AfterAttempt,
    /// Once its outcome is recorded: until then its lease counts against what may be leased.
    AfterRecord,
}

/// What a lease found, and when to lease again.
#[derive(Debug)]
pub struct Lease<J> {
    pub jobs: Vec<J>,
    pub then: Then,
}

/// When to lease again after a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// At once: more is due than this lease took.
    Now,
    /// After [`Plan::gather`]: the lease took all that was due.
    Gather,
    /// When something wakes the runner or the next row falls due ([`Queue::idle`]).
    Idle,
    /// Rows are due but held back by capacity in use; wait for it to free up.
    HeldBack,
}

/// How long an idle runner sleeps, and whether new rows are held back meanwhile (their
/// notifications are then looked at no sooner than [`Plan::gather`]).
#[derive(Clone, Copy, Debug)]
pub struct Idle {
    pub sleep: Duration,
    pub held_back: bool,
}

/// A finished attempt on its way to the recorder, with its place when it is released after.
type Done<O> = (O, Option<OwnedSemaphorePermit>);

/// Runs a [`Queue`]; cheap to clone.
#[derive(Clone, Debug)]
pub struct Runner<Q> {
    queue: Q,
    /// The id this runner's leases carry.
    holder: Holder,
}

/// Until when [`Runner::serve`] goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Until {
    Shutdown,
    /// A lease found nothing and nothing is in flight.
    Idle,
}

impl<Q: Queue> Runner<Q> {
    #[must_use]
    pub fn new(queue: Q) -> Self {
        Self {
            queue,
            holder: Holder::default(),
        }
    }

    #[must_use]
    pub const fn queue(&self) -> &Q {
        &self.queue
    }

    /// Runs until `shutdown` fires; attempts in flight finish and are recorded first.
    pub async fn run(&self, shutdown: CancellationToken) {
        if let Err(err) = self.serve(&shutdown, Until::Shutdown).await {
            tracing::error!(error = %err, kind = Q::KIND.as_str(), "the queue runner stopped");
        }
    }

    /// Runs the same loop until a lease finds nothing and nothing is in flight (later retries
    /// stay queued), for tests and tools; returns how many rows it attempted.
    ///
    /// # Errors
    /// A lease that failed.
    pub async fn drain(&self) -> Result<usize, StoreError> {
        self.serve(&CancellationToken::new(), Until::Idle).await
    }

    async fn serve(&self, shutdown: &CancellationToken, until: Until) -> Result<usize, StoreError> {
        let plan = *self.queue.plan();
        // Registration's background tasks stop with the runner, whichever way it stops.
        let stop = shutdown.child_token();
        // A drain runs unregistered, like any worker driven by hand: its leases only expire, and
        // it needs no connection of its own to listen or to keep a registration.
        let registered = if until == Until::Shutdown {
            let Some(registered) = Registered::start(
                self.queue.store(),
                Q::KIND,
                &self.holder,
                plan.lease,
                Q::CHANNEL,
                &stop,
            )
            .await
            else {
                return Ok(0);
            };
            Some(registered)
        } else {
            None
        };
        let wake = registered
            .as_ref()
            .map_or_else(|| Arc::new(Notify::new()), |r| r.wake.clone());
        let places_max = plan.places.max(1);
        let places = Arc::new(Semaphore::new(places_max));
        let low_water = plan.low_water.clamp(1, places_max);
        let (done, to_record) = mpsc::unbounded_channel::<Done<Q::Outcome>>();
        let recorded = Arc::new(Notify::new());
        let in_flight = Arc::new(AtomicUsize::new(0));
        let recorder = tokio::spawn(record_as_they_come(
            self.queue.clone(),
            to_record,
            recorded.clone(),
            in_flight.clone(),
        ));
        if until == Until::Shutdown {
            tracing::info!(
                places = places_max,
                kind = Q::KIND.as_str(),
                "queue runner started"
            );
        }
        let mut attempted = 0;
        let mut failure = None;
        let mut next_lease_at = tokio::time::Instant::now();
        while !stop.is_cancelled() {
            self.queue.upkeep().await;
            // Register interest before looking, so a wake-up between the two is not lost.
            let notified = wake.notified();
            let freed = self.queue.freed();
            let recorded_any = recorded.notified();
            let free = places.available_permits();
            if free < low_water {
                // Wait (without holding them) until enough places are free for a lease.
                tokio::select! {
                    _ = places.acquire_many(u32::try_from(low_water).unwrap_or(1)) => {}
                    () = stop.cancelled() => {}
                }
                continue;
            }
            if next_lease_at > tokio::time::Instant::now() {
                tokio::select! {
                    () = tokio::time::sleep_until(next_lease_at) => {}
                    () = stop.cancelled() => break,
                }
            }
            // Whether anything was in flight before this lease: an attempt recorded while it ran
            // may have queued a retry that it did not see.
            let busy = in_flight.load(Ordering::SeqCst) > 0;
            let started = tokio::time::Instant::now();
            let lease = match self.queue.lease(self.holder.get(), free).await {
                Ok(lease) => lease,
                Err(err) if until == Until::Idle => {
                    failure = Some(err);
                    break;
                }
                Err(err) => {
                    tracing::error!(error = %err, kind = Q::KIND.as_str(), "leasing failed");
                    Lease {
                        jobs: Vec::new(),
                        then: Then::Idle,
                    }
                }
            };
            for job in lease.jobs {
                let Ok(place) = places.clone().acquire_owned().await else {
                    break;
                };
                attempted += Q::rows(&job);
                in_flight.fetch_add(1, Ordering::SeqCst);
                let (queue, done, holder) = (self.queue.clone(), done.clone(), self.holder.get());
                tokio::spawn(async move {
                    let outcome = queue.attempt(holder, job).await;
                    // Sending fails only once the recorder is gone, which outlives every attempt.
                    match plan.release {
                        Release::AfterRecord => drop(done.send((outcome, Some(place)))),
                        Release::AfterAttempt => {
                            drop(done.send((outcome, None)));
                            drop(place);
                        }
                    }
                });
            }
            let idle = match lease.then {
                Then::Now => {
                    next_lease_at = started;
                    continue;
                }
                Then::Gather => {
                    next_lease_at = started + plan.gather;
                    continue;
                }
                Then::HeldBack => Idle {
                    sleep: plan.poll_interval,
                    held_back: true,
                },
                Then::Idle => self.queue.idle().await,
            };
            if until == Until::Idle && !busy && in_flight.load(Ordering::SeqCst) == 0 {
                break;
            }
            // Held back, new rows (which another endpoint may have) are looked for no sooner
            // than `gather`, rather than on each of a stream of notifications.
            let new_rows = async {
                if idle.held_back {
                    tokio::time::sleep(plan.gather).await;
                }
                notified.await;
            };
            let recorded_wakes = plan.wake_on_record || until == Until::Idle;
            tokio::select! {
                () = new_rows => {}
                () = freed => {}
                () = recorded_any, if recorded_wakes => {}
                () = tokio::time::sleep(idle.sleep.max(Duration::from_millis(10))) => {}
                () = stop.cancelled() => {}
            }
        }
        // Every place back means every attempt finished and handed its outcome over (and, when
        // places are released after the record, that it was recorded).
        drop(
            places
                .acquire_many(u32::try_from(places_max).unwrap_or(u32::MAX))
                .await,
        );
        drop(done);
        drop(recorder.await);
        // Only now: until its outcomes are recorded, a registered runner's leases must not look
        // abandoned.
        if let Some(registered) = registered {
            registered.finish().await;
        }
        stop.cancel();
        if until == Until::Shutdown {
            tracing::info!(kind = Q::KIND.as_str(), "queue runner stopped");
        }
        failure.map_or(Ok(attempted), Err)
    }
}

/// Records outcomes as they come, together: whatever finished while the previous write ran or
/// its pace held it goes in the next one, so at a high rate each write carries many outcomes and
/// at a low rate none waits. Places released after the record are given back once it is written.
async fn record_as_they_come<Q: Queue>(
    queue: Q,
    mut finished: mpsc::UnboundedReceiver<Done<Q::Outcome>>,
    recorded: Arc<Notify>,
    in_flight: Arc<AtomicUsize>,
) {
    let plan = *queue.plan();
    let mut pace = Pace::new(plan.gather, plan.record_burst);
    while let Some(first) = finished.recv().await {
        tokio::time::sleep_until(pace.next(tokio::time::Instant::now())).await;
        let mut rows = Q::outcome_rows(&first.0);
        let mut batch = vec![first];
        // What finished while the pace held this write goes with it.
        while rows < plan.record_batch {
            match finished.try_recv() {
                Ok(more) => {
                    rows += Q::outcome_rows(&more.0);
                    batch.push(more);
                }
                Err(_) => break,
            }
        }
        let n = batch.len();
        let (outcomes, places): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        queue.record(outcomes).await;
        drop(places);
        in_flight.fetch_sub(n, Ordering::SeqCst);
        // Only runners waiting now: one that leases after this sees the freed capacity.
        recorded.notify_waiters();
    }
}
