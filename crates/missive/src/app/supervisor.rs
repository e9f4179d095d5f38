//! The tasks of a running process: each must run until shutdown, and one that stops early stops
//! the others, so the process exits naming it; and the signals that start a shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A task that stopped while it should still have been running.
#[derive(Debug, thiserror::Error)]
#[error("the {task} stopped unexpectedly: {detail}")]
pub struct TaskEnded {
    pub task: &'static str,
    pub detail: String,
}

/// Tasks that must all run until shutdown. When one ends before shutdown was asked for (it
/// returned, failed or panicked), the others are asked to stop and [`Supervisor::run`] reports
/// it, so the process exits non-zero naming the task instead of limping on without it.
#[derive(Debug)]
pub struct Supervisor {
    tasks: JoinSet<Result<(), String>>,
    names: HashMap<tokio::task::Id, &'static str>,
    shutdown: CancellationToken,
}

impl Supervisor {
    /// Tasks stopped by `shutdown`.
    #[must_use]
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            tasks: JoinSet::new(),
            names: HashMap::new(),
            shutdown,
        }
    }

    /// Runs `task` under `name`; it should return only once shutdown has begun.
    pub fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = Result<(), String>> + Send + 'static,
    ) {
        let handle = self.tasks.spawn(task);
        self.names.insert(handle.id(), name);
    }

    /// Waits until every task has ended. After shutdown begins (the token fires, or a task ended
    /// early), tasks get `grace` to finish; then they are aborted.
    ///
    /// # Errors
    /// The first task that ended before shutdown.
    pub async fn run(mut self, grace: Duration) -> Result<(), TaskEnded> {
        let mut failure = None;
        let mut deadline = None;
        loop {
            tokio::select! {
                joined = self.tasks.join_next_with_id() => {
                    let Some(joined) = joined else { break };
                    let (id, outcome) = match joined {
                        Ok((id, Ok(()))) => (id, None),
                        Ok((id, Err(error))) => (id, Some(error)),
                        Err(error) if error.is_panic() => (error.id(), Some("it panicked".to_owned())),
                        Err(error) => (error.id(), Some(error.to_string())),
                    };
                    let task = self.names.get(&id).copied().unwrap_or("unnamed task");
                    if self.shutdown.is_cancelled() {
                        if let Some(detail) = outcome {
                            tracing::error!(task, %detail, "a task failed while stopping");
                        }
                        continue;
                    }
                    let detail = outcome.unwrap_or_else(|| "it returned".to_owned());
                    tracing::error!(task, %detail, "a task stopped unexpectedly; shutting down");
                    failure.get_or_insert(TaskEnded { task, detail });
                    self.shutdown.cancel();
                }
                () = self.shutdown.cancelled(), if deadline.is_none() => {
                    deadline = Some(tokio::time::Instant::now() + grace);
                }
                () = async {
                    match deadline {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    tracing::warn!(timeout = ?grace, tasks = self.tasks.len(), "work still running at the shutdown deadline; stopping it");
                    self.tasks.abort_all();
                    while self.tasks.join_next().await.is_some() {}
                    break;
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

/// Fires `token` on SIGTERM or Ctrl-C.
pub async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received; shutting down"),
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
    token.cancel();
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// A supervisor running one well-behaved task ("HTTP API") that records seeing shutdown.
    fn with_a_well_behaved_task() -> (CancellationToken, Arc<AtomicBool>, Supervisor) {
        let shutdown = CancellationToken::new();
        let stopped = Arc::new(AtomicBool::new(false));
        let mut tasks = Supervisor::new(shutdown.clone());
        let (stop, seen) = (shutdown.clone(), stopped.clone());
        tasks.spawn("HTTP API", async move {
            stop.cancelled().await;
            seen.store(true, Ordering::SeqCst);
            Ok(())
        });
        (shutdown, stopped, tasks)
    }

    #[tokio::test]
    async fn a_task_that_ends_early_stops_the_others_and_is_named() {
        let (shutdown, stopped, mut tasks) = with_a_well_behaved_task();
        tasks.spawn("SMTP listeners", async { Err("address in use".to_owned()) });
        let err = tasks.run(Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(err.task, "SMTP listeners");
        assert_eq!(
            err.to_string(),
            "the SMTP listeners stopped unexpectedly: address in use"
        );
        assert!(shutdown.is_cancelled());
        assert!(
            stopped.load(Ordering::SeqCst),
            "the sibling was stopped gracefully"
        );
    }

    #[tokio::test]
    async fn a_panicking_or_returning_task_is_a_failure_too() {
        let shutdown = CancellationToken::new();
        let mut tasks = Supervisor::new(shutdown.clone());
        tasks.spawn("delivery worker", async {
            panic!("boom");
        });
        let err = tasks.run(Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(
            (err.task, err.detail.as_str()),
            ("delivery worker", "it panicked")
        );

        let mut tasks = Supervisor::new(CancellationToken::new());
        tasks.spawn("API key cache listener", async { Ok(()) });
        let err = tasks.run(Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(err.detail, "it returned");
    }

    #[tokio::test]
    async fn shutdown_drains_every_task_and_is_not_a_failure() {
        let (shutdown, stopped, mut tasks) = with_a_well_behaved_task();
        let stop = shutdown.clone();
        tasks.spawn("delivery worker", async move {
            stop.cancelled().await;
            // In-flight work finishing after the signal.
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(())
        });
        shutdown.cancel();
        tasks.run(Duration::from_secs(5)).await.unwrap();
        assert!(stopped.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_task_that_ignores_shutdown_is_aborted_at_the_deadline() {
        let shutdown = CancellationToken::new();
        let mut tasks = Supervisor::new(shutdown.clone());
        tasks.spawn("delivery worker", std::future::pending());
        shutdown.cancel();
        let started = tokio::time::Instant::now();
        tasks.run(Duration::from_millis(100)).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
