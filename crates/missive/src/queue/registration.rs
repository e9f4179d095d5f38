//! What every leasing worker (deliveries, webhooks) does to keep its leases safe: register
//! (`missive_store::workers`), keep the registration alive, take over dead workers' leases, and
//! renew its own, so a crash anywhere is noticed within about a second.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use missive_core::WorkerKind;
use missive_store::Store;
use missive_store::listen::{Channel, ListenEvent, listen};
use missive_store::workers::Registration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often a running worker checks its registration, reaps dead workers and (at most every
/// third of a lease) renews its leases.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The id a worker's leases carry: its registration's while it runs registered; for a worker
/// driven by hand (tests, tools) an unregistered one, whose leases only expire.
#[derive(Debug, Clone)]
pub struct Holder(Arc<RwLock<Uuid>>);

impl Default for Holder {
    fn default() -> Self {
        Self(Arc::new(RwLock::new(Uuid::now_v7())))
    }
}

impl Holder {
    #[must_use]
    pub fn get(&self) -> Uuid {
        *self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, id: Uuid) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = id;
    }
}

/// Registers a worker of `kind`, trying again every few seconds until it works or `shutdown`.
async fn register(
    store: &Store,
    kind: WorkerKind,
    holder: &Holder,
    shutdown: &CancellationToken,
) -> Option<Registration> {
    let mut backoff = Duration::from_millis(200);
    loop {
        match store.register_worker(kind).await {
            Ok(registration) => {
                holder.set(registration.id());
                tracing::info!(worker_id = %registration.id(), kind = kind.as_str(), "worker registered");
                return Some(registration);
            }
            Err(err) => {
                tracing::error!(error = %err, kind = kind.as_str(), "cannot register the worker; retrying");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => return None,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Keeps the registration alive (registering anew when its connection was lost: the old id's
/// leases are then reaped like any dead worker's), takes over dead workers' leases (waking
/// `wake`) and renews this worker's own, until `stop`; hands the registration back for release.
async fn upkeep(
    store: Store,
    kind: WorkerKind,
    holder: Holder,
    lease: Duration,
    mut registration: Registration,
    wake: Arc<Notify>,
    stop: CancellationToken,
) -> Registration {
    let mut ticks = tokio::time::interval(UPKEEP_INTERVAL.min(lease / 3));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return registration,
        }
        if !registration.is_alive().await {
            tracing::warn!(worker_id = %registration.id(), "the worker's registration connection was lost; registering again");
            match store.register_worker(kind).await {
                Ok(fresh) => {
                    holder.set(fresh.id());
                    registration = fresh;
                }
                Err(err) => {
                    tracing::error!(error = %err, kind = kind.as_str(), "cannot register the worker again");
                    continue;
                }
            }
        }
        match store.reap_dead_workers().await {
            Ok(reaped) if !reaped.workers.is_empty() => {
                tracing::info!(
                    workers = reaped.workers.len(),
                    deliveries = reaped.deliveries,
                    "took over the leases of dead workers"
                );
                wake.notify_one();
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "reaping dead workers failed"),
        }
        if renewed.elapsed() >= lease / 3 {
            let renewal = match kind {
                WorkerKind::Delivery => store.renew_leases(holder.get(), lease).await,
                WorkerKind::Webhooks => store.renew_webhook_leases(holder.get(), lease).await,
            };
            match renewal {
                Ok(_) => renewed = tokio::time::Instant::now(),
                Err(err) => tracing::warn!(error = %err, "renewing leases failed"),
            }
        }
    }
}

/// A running, registered worker's scaffolding: its upkeep task, and `wake`, notified when its
/// channel reports new rows (or a reconnect, after which rows may have come unheard) and when
/// dead workers' leases are taken over.
#[derive(Debug)]
pub struct Registered {
    pub wake: Arc<Notify>,
    upkeep: tokio::task::JoinHandle<Registration>,
    upkeep_stop: CancellationToken,
}

impl Registered {
    /// Registers (retrying until `shutdown`), starts the upkeep and listens on `channel`.
    pub async fn start(
        store: &Store,
        kind: WorkerKind,
        holder: &Holder,
        lease: Duration,
        channel: Channel,
        shutdown: &CancellationToken,
    ) -> Option<Self> {
        let registration = register(store, kind, holder, shutdown).await?;
        let wake = Arc::new(Notify::new());
        let upkeep_stop = CancellationToken::new();
        let upkeep = tokio::spawn(upkeep(
            store.clone(),
            kind,
            holder.clone(),
            lease,
            registration,
            wake.clone(),
            upkeep_stop.clone(),
        ));
        let woken = wake.clone();
        tokio::spawn(listen(
            store.clone(),
            channel,
            shutdown.clone(),
            move |event| {
                if event != ListenEvent::Disconnected {
                    woken.notify_one();
                }
            },
        ));
        Some(Self {
            wake,
            upkeep,
            upkeep_stop,
        })
    }

    /// Ends the registration in order. Call only once every result is recorded: until then the
    /// worker's leases must not look abandoned.
    pub async fn finish(self) {
        self.upkeep_stop.cancel();
        if let Ok(registration) = self.upkeep.await
            && let Err(err) = registration.release().await
        {
            tracing::warn!(error = %err, "could not end the worker's registration; it will be reaped");
        }
    }
}
