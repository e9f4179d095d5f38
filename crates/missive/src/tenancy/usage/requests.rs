//! Counting authenticated REST requests per project for its usage figures.
//!
//! A database write per request would cost more than most requests; the counts gather in
//! memory and are added to `usage_daily` once a second, when usage is read (so a tenant reading
//! its usage sees every request this process answered before), and at shutdown. A crash loses
//! at most the last second's counts of `api_requests`, and nothing else.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use missive_core::ProjectRef;
use missive_store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

/// How often gathered counts are written.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Requests counted in this process and not yet written.
#[derive(Debug, Default)]
pub struct RequestCounter {
    pending: Mutex<HashMap<ProjectRef, i64>>,
}

impl RequestCounter {
    /// Counts one request of `project`.
    pub fn count(&self, tenant: ProjectRef) {
        *self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(tenant)
            .or_default() += 1;
    }

    /// Writes what was counted. Counts whose write fails are kept for the next try.
    ///
    /// # Errors
    /// Database failures.
    pub async fn flush(&self, store: &Store) -> Result<(), StoreError> {
        let taken: Vec<(ProjectRef, i64)> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
                .into_iter()
                .collect();
        if let Err(err) = store.add_api_requests(&taken).await {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            for (tenant, n) in taken {
                *pending.entry(tenant).or_default() += n;
            }
            return Err(err);
        }
        Ok(())
    }

    /// [`RequestCounter::flush`] before usage is read: a failure is logged, and the figures
    /// are read anyway (the counts are kept for the next write).
    pub async fn flush_logged(&self, store: &Store) {
        if let Err(err) = self.flush(store).await {
            tracing::warn!(error = %err, "could not write API request counts");
        }
    }

    /// Writes the counts every second until `shutdown` (the caller writes the last ones once
    /// the API has stopped answering).
    pub async fn run(&self, store: Store, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            if let Err(err) = self.flush(&store).await {
                tracing::warn!(error = %err, "could not write API request counts");
            }
        }
    }
}
