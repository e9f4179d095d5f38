//! Group commit for accepted emails.
//!
//! Every accepted email must be durable before its client hears back, and a durable commit costs
//! a disk flush. Requests without an idempotency key therefore go through a queue: a writer takes
//! whatever is waiting (up to a cap), stores it with one statement in one transaction, and
//! answers every request in the group after that commit. Under light load a group is one request
//! and nothing waits for company; under heavy load one flush serves dozens of requests, since
//! the requests that come in during a flush wait for the next group. A second writer collects
//! while the first flushes only once groups are full: the statement's fixed cost is most of
//! Postgres's work for a small group, so small groups flushed side by side cost more than they
//! save (four writers collecting all the time spent 1.4 to 1.6 times the Postgres CPU per email
//! of REST accept, at a lower rate). A request whose group fails is retried alone, so one bad
//! row never fails the others. A tenant over its quota in a group fails alone, the same way.

use std::sync::Arc;

use missive_core::{ProjectRef, QuotaPeriod, TenantId};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::accept::insert_rows;
use crate::usage::ACCEPT_SHARDS;
use crate::{IdempotencyRecord, InsertOutcome, NewEmail, Store, StoreError};

/// How the writer groups commits.
#[derive(Clone, Copy, Debug)]
pub struct WriterSettings {
    /// Writer tasks: the most groups in flight at once. Another writer collects while one
    /// flushes only when that one's group is full.
    pub writers: usize,
    /// Most emails stored by one statement.
    pub max_group_emails: usize,
}

impl Default for WriterSettings {
    fn default() -> Self {
        Self {
            writers: 4,
            max_group_emails: 256,
        }
    }
}

struct Pending {
    project: ProjectRef,
    emails: Vec<NewEmail>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// Stores accepted emails; cheap to clone.
#[derive(Clone, Debug)]
pub struct EmailWriter {
    store: Store,
    queue: mpsc::Sender<Pending>,
}

impl EmailWriter {
    /// Starts the writer tasks; they stop once every clone of the writer is dropped and the
    /// queue is empty.
    #[must_use]
    pub fn start(store: Store, settings: WriterSettings) -> Self {
        let writers = settings.writers.max(1);
        let max = settings.max_group_emails.max(1);
        // Bounded, so a database that falls behind pushes back on the clients.
        let (queue, receiver) = mpsc::channel(max.saturating_mul(writers));
        let receiver = Arc::new(Mutex::new(receiver));
        for writer in 0..writers {
            // Each writer counts in a usage row of its own (see `usage_daily`).
            let shard = i16::try_from(writer).unwrap_or(0) % ACCEPT_SHARDS;
            tokio::spawn(write_groups(store.clone(), receiver.clone(), max, shard));
        }
        Self { store, queue }
    }

    /// Stores emails of one project with their deliveries and events; returns after the commit.
    /// With an idempotency record the claim and the emails share their own transaction.
    ///
    /// # Errors
    /// Database failures; nothing is stored then.
    pub async fn insert(
        &self,
        project: impl Into<ProjectRef>,
        emails: Vec<NewEmail>,
        idempotency: Option<&IdempotencyRecord<'_>>,
    ) -> Result<InsertOutcome, StoreError> {
        let project = project.into();
        if idempotency.is_some() {
            return self
                .store
                .insert_emails(project, &emails, idempotency)
                .await;
        }
        let (done, committed) = oneshot::channel();
        let pending = Pending {
            project,
            emails,
            done,
        };
        self.queue
            .send(pending)
            .await
            .map_err(|_| StoreError::Stopped)?;
        committed.await.map_err(|_| StoreError::Stopped)??;
        Ok(InsertOutcome::Inserted)
    }
}

async fn write_groups(
    store: Store,
    receiver: Arc<Mutex<mpsc::Receiver<Pending>>>,
    max: usize,
    shard: i16,
) {
    loop {
        let mut group = Vec::new();
        // One writer collects at a time.
        let mut receiver = receiver.lock().await;
        let Some(first) = receiver.recv().await else {
            return;
        };
        let mut emails = first.emails.len();
        group.push(first);
        while emails < max {
            match receiver.try_recv() {
                Ok(next) => {
                    emails += next.emails.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        // The queue is kept through the flush, so requests arriving meanwhile make the next
        // group; a full group lets it go, as more is waiting than one group holds.
        let kept = (emails < max).then_some(receiver);
        commit_group(&store, group, shard).await;
        drop(kept);
    }
}

async fn commit_group(store: &Store, group: Vec<Pending>, shard: i16) {
    match insert_group(store, &group, shard).await {
        Ok(refused) if refused.is_empty() => {
            for pending in group {
                let _ = pending.done.send(Ok(()));
            }
        }
        Ok(refused) => {
            // The other tenants' emails are stored. A refused tenant with one request in the
            // group is refused; one with several is tried request by request, so the requests
            // that fit its quota are stored, exactly as if they had come one at a time.
            let mut held: Vec<(Pending, QuotaPeriod)> = Vec::new();
            for pending in group {
                match refused
                    .iter()
                    .find(|(t, _)| *t == pending.project.tenant_id)
                {
                    None => {
                        let _ = pending.done.send(Ok(()));
                    }
                    Some((_, period)) => held.push((pending, *period)),
                }
            }
            let requests_of = |tenant: TenantId| {
                held.iter()
                    .filter(|(p, _)| p.project.tenant_id == tenant)
                    .count()
            };
            let several: Vec<bool> = held
                .iter()
                .map(|(p, _)| requests_of(p.project.tenant_id) > 1)
                .collect();
            for ((pending, period), several) in held.into_iter().zip(several) {
                let outcome = if several {
                    insert_alone(store, &pending, shard).await
                } else {
                    Err(StoreError::OverQuota(period))
                };
                let _ = pending.done.send(outcome);
            }
        }
        Err(err) if group.len() == 1 => {
            let _ = group.into_iter().next().map(|p| p.done.send(Err(err)));
        }
        Err(err) => {
            tracing::warn!(error = %err, requests = group.len(), "group commit failed; committing its requests one by one");
            for pending in group {
                let alone = insert_alone(store, &pending, shard).await;
                let _ = pending.done.send(alone);
            }
        }
    }
}

/// One request in a statement of its own.
async fn insert_alone(store: &Store, pending: &Pending, shard: i16) -> Result<(), StoreError> {
    let refused = insert_group(store, std::slice::from_ref(pending), shard).await?;
    match refused.first() {
        Some((_, period)) => Err(StoreError::OverQuota(*period)),
        None => Ok(()),
    }
}

/// Stores a group's emails; returns the tenants refused by a quota (nothing of theirs stored).
async fn insert_group(
    store: &Store,
    group: &[Pending],
    shard: i16,
) -> Result<Vec<(TenantId, QuotaPeriod)>, StoreError> {
    let rows: Vec<(ProjectRef, &NewEmail)> = group
        .iter()
        .flat_map(|p| p.emails.iter().map(move |e| (p.project, e)))
        .collect();
    let mut conn = store.pool().acquire().await?;
    // One statement outside an explicit transaction is its own transaction: one round trip.
    insert_rows(&mut conn, &rows, shard, store.default_limits()).await
}
