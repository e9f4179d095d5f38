//! Building and running the application: connects the store, binds listeners (port 0 works, and
//! the bound address is exposed, so tests run many apps side by side), and runs its tasks under a
//! [`Supervisor`] until a shared cancellation token fires or one of them stops on its own.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use missive_core::sealed::Sealer;
use missive_store::listen::{Channel, ListenEvent, listen_to};
use missive_store::{EmailWriter, PoolSettings, Store, StoreError, WriterSettings};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::app::config::{Config, ConfigError};
use crate::app::telemetry;
use crate::edge::api;
use crate::edge::api::serve::{BodyBudget, HttpLimits};
use crate::edge::rate_limit::RateLimits;
use crate::edge::smtp::{self, SmtpContext, SmtpServer};
use crate::edge::state::{AdminKey, AppState};
use crate::ingest::Ingest;
use crate::net::relay::{TenantRelays, TenantRouteSettings};
use crate::net::targets::Targets;
use crate::queue::delivery::{DeliveryWorker, Routes};
use crate::queue::webhooks::Dispatcher;
use crate::queue::webhooks::client::{ClientSettings, WebhookClient};
use crate::tenancy::domains::Domains;
use crate::tenancy::keys::KeyCache;
use crate::tenancy::templates::Templates;
use crate::tenancy::usage::RequestCounter;
use crate::tenancy::webhooks::Webhooks;

/// The worker's own pool: one lease, one recorder and the message reads of sends in flight.
const WORKER_DB_CONNECTIONS: u32 = 8;

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Transport(#[from] crate::net::relay::TransportError),
    #[error("SMTP TLS: {0}")]
    Tls(#[from] smtp::tls::TlsError),
    #[error(
        "refusing to start: {0}. Make the database durable (fsync=on, synchronous_commit=on), \
         or set MISSIVE_ALLOW_UNSAFE_COMMITS=true for a throwaway database"
    )]
    NotDurable(String),
    #[error("DNS resolver: {0}")]
    Dns(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

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

/// Opens the pool described by the configuration.
///
/// # Errors
/// No database URL, or the database is unreachable.
pub async fn connect_store(config: &Config) -> Result<Store, StartupError> {
    let url = config.require_database_url()?;
    let settings = PoolSettings {
        max_connections: config.database.max_connections,
        ..PoolSettings::default()
    };
    Ok(Store::connect(url.expose_secret(), settings).await?)
}

/// The accept path's own connections: its group writers, and sends with an idempotency key
/// (each holds one for its transaction).
const WRITER_DB_CONNECTIONS: u32 = 16;

/// How long a request waits for room in the body budget before it is told to retry.
const BODY_BUDGET_WAIT: Duration = Duration::from_secs(5);

/// Which parts a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roles {
    pub api: bool,
    pub smtp: bool,
    pub worker: bool,
    pub webhooks: bool,
}

impl Roles {
    pub const ALL: Self = Self {
        api: true,
        smtp: true,
        worker: true,
        webhooks: true,
    };
    pub const API: Self = Self {
        api: true,
        smtp: false,
        worker: false,
        webhooks: false,
    };
    /// The API and the SMTP listeners, no worker or dispatcher (tests drive those themselves).
    pub const SUBMISSION: Self = Self {
        api: true,
        smtp: true,
        worker: false,
        webhooks: false,
    };
}

/// A built, bound, not yet running application.
#[derive(Debug)]
pub struct Application {
    http: Option<(TcpListener, SocketAddr, Router)>,
    smtp: Option<SmtpServer>,
    /// Shared by the API and SMTP; their LISTEN tasks run while either does.
    caches: Option<(KeyCache, Templates, Domains)>,
    /// The background re-check of sending domains, run by the worker role.
    domain_recheck: Option<Domains>,
    http_limits: HttpLimits,
    /// The API's request counts, written to usage while the API runs.
    requests: Option<Arc<RequestCounter>>,
    worker: Option<DeliveryWorker>,
    dispatcher: Option<Dispatcher>,
    store: Store,
    shutdown_timeout: Duration,
}

impl Application {
    /// Connects, migrates and binds every role.
    ///
    /// # Errors
    /// Any [`StartupError`].
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        Self::build_with_roles(config, Roles::ALL).await
    }

    /// Connects, migrates and binds the given roles.
    ///
    /// # Errors
    /// Any [`StartupError`].
    pub async fn build_with_roles(config: &Config, roles: Roles) -> Result<Self, StartupError> {
        let store = connect_store(config).await?;
        store.migrate().await?;
        Self::build_with_store(config, store, roles).await
    }

    /// Binds against an existing (migrated) store.
    ///
    /// # Errors
    /// The HTTP address cannot be bound.
    pub async fn build_with_store(
        config: &Config,
        store: Store,
        roles: Roles,
    ) -> Result<Self, StartupError> {
        // Nothing is acknowledged before its commit; that promise is only as good as the commit.
        let problems = store.durability().await?.problems();
        if !problems.is_empty() {
            if !config.database.allow_unsafe_commits {
                return Err(StartupError::NotDurable(problems.join("; ")));
            }
            for problem in problems {
                tracing::warn!(
                    problem,
                    "commits are not durable (MISSIVE_ALLOW_UNSAFE_COMMITS)"
                );
            }
        }
        let store = store.with_default_limits(config.default_limits());
        // One limiter per process, shared by REST and SMTP.
        let rates = Arc::new(RateLimits::new(config.limits.requests_per_minute));
        let requests = Arc::new(RequestCounter::default());
        let sending_domains = domains(config, &store)?;
        let shared = (roles.api || roles.smtp).then(|| {
            let writer = EmailWriter::start(
                store.for_writer(WRITER_DB_CONNECTIONS),
                WriterSettings::default(),
            );
            (
                KeyCache::new(store.clone()),
                Ingest::new(
                    writer,
                    config.accept_limits(),
                    Templates::new(store.clone()),
                    sending_domains.clone(),
                ),
            )
        });
        let http = match (&shared, roles.api) {
            (Some((keys, ingest)), true) => {
                let (listener, addr) = bind(config.http.addr).await?;
                let state = AppState {
                    webhooks: webhooks(config, &store)?,
                    domains: ingest.domains().clone(),
                    relays: tenant_relays(config)?,
                    keys: keys.clone(),
                    store: store.clone(),
                    ingest: ingest.clone(),
                    admin_key: config
                        .secrets
                        .admin_key
                        .as_ref()
                        .map(|k| Arc::new(AdminKey::new(k))),
                    metrics: telemetry::metrics_handle(),
                    rates: rates.clone(),
                    requests: requests.clone(),
                };
                let max_request_bytes = config.max_request_bytes();
                let budget = Arc::new(BodyBudget::new(
                    config.http.max_body_memory_bytes,
                    BODY_BUDGET_WAIT,
                    max_request_bytes,
                ));
                Some((
                    listener,
                    addr,
                    api::router(state, max_request_bytes, budget),
                ))
            }
            _ => None,
        };
        let smtp = match (&shared, roles.smtp) {
            (Some((keys, ingest)), true) => {
                let files = config
                    .smtp
                    .tls_cert
                    .as_deref()
                    .zip(config.smtp.tls_key.as_deref());
                let (tls, fingerprint) = smtp::tls::acceptor(files, &config.relay.helo_name)?;
                if files.is_none() {
                    tracing::info!(
                        sha256 = %fingerprint,
                        "SMTP TLS uses a self-signed certificate made at start (set MISSIVE_TLS_CERT and MISSIVE_TLS_KEY to use your own)"
                    );
                }
                let ctx = Arc::new(SmtpContext {
                    store: store.clone(),
                    ingest: ingest.clone(),
                    keys: keys.clone(),
                    hostname: config.relay.helo_name.clone(),
                    limits: config.smtp_limits(),
                    tls,
                    shutdown: CancellationToken::new(),
                    force_stop: CancellationToken::new(),
                    rates: rates.clone(),
                    tenant_sessions: Arc::default(),
                });
                Some(SmtpServer::new(
                    ctx,
                    bind(config.smtp.addr).await?,
                    bind(config.smtp.smtps_addr).await?,
                ))
            }
            _ => None,
        };
        let worker = if roles.worker {
            // Lease and outcome writes need not wait for the WAL flush: see `Store::for_worker`
            // for why that cannot lose an accepted message.
            Some(DeliveryWorker::new(
                store.for_worker(WORKER_DB_CONNECTIONS),
                Arc::new(Routes::new(&config.relay.url, tenant_relays(config)?)?),
                config.worker_settings(),
            ))
        } else {
            None
        };
        let dispatcher = if roles.webhooks {
            let webhooks = webhooks(config, &store)?;
            let client = WebhookClient::new(webhooks.targets().clone(), ClientSettings::default())
                .map_err(StartupError::Dns)?;
            Some(Dispatcher::new(
                store.for_dispatcher(WORKER_DB_CONNECTIONS),
                webhooks,
                client,
                config.dispatcher_settings(),
            ))
        } else {
            None
        };
        Ok(Self {
            http,
            smtp,
            requests: roles.api.then_some(requests),
            http_limits: config.http_limits(),
            caches: shared
                .map(|(keys, ingest)| (keys, ingest.templates().clone(), ingest.domains().clone())),
            domain_recheck: roles.worker.then_some(sending_domains),
            worker,
            dispatcher,
            store,
            shutdown_timeout: config.shutdown.timeout_secs,
        })
    }

    /// The address the HTTP API is bound to, when this process runs the API.
    #[must_use]
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|(_, addr, _)| *addr)
    }

    /// The SMTP submission addresses (STARTTLS, implicit TLS), when this process runs them.
    #[must_use]
    pub fn smtp_addrs(&self) -> Option<(SocketAddr, SocketAddr)> {
        self.smtp.as_ref().map(SmtpServer::addrs)
    }

    /// What SMTP sessions share, for serving a session over any stream (tests use in-memory
    /// streams).
    #[must_use]
    pub fn smtp_context(&self) -> Option<Arc<SmtpContext>> {
        self.smtp.as_ref().map(SmtpServer::context)
    }

    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves until `shutdown` fires, then lets in-flight requests and sends finish for up to
    /// the configured timeout before closing the pool. A listener or worker that stops on its own
    /// stops the others too.
    ///
    /// # Errors
    /// A task stopped before `shutdown` fired; the error names it.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), TaskEnded> {
        let mut tasks = Supervisor::new(shutdown.clone());
        if let Some((keys, templates, domains)) = self.caches {
            let (stop, store) = (shutdown.clone(), self.store.clone());
            // One LISTEN connection for the three caches the API and SMTP share.
            tasks.spawn("cache listener", async move {
                let hear = |channel: Channel, event: &ListenEvent| match channel {
                    Channel::Accounts => keys.hear(event),
                    Channel::Templates => templates.hear(event),
                    Channel::Domains => domains.hear(event),
                    Channel::Deliveries | Channel::Webhooks => {}
                };
                let channels = [Channel::Accounts, Channel::Templates, Channel::Domains];
                listen_to(store, &channels, stop, |channel, event| {
                    hear(channel, &event)
                })
                .await;
                for channel in channels {
                    hear(channel, &ListenEvent::Disconnected);
                }
                Ok(())
            });
        }
        if let Some(domains) = self.domain_recheck {
            let stop = shutdown.clone();
            tasks.spawn("domain re-check", async move {
                domains.recheck(stop).await;
                Ok(())
            });
        }
        if let Some(requests) = self.requests.clone() {
            let (stop, store) = (shutdown.clone(), self.store.clone());
            tasks.spawn("API request counter", async move {
                requests.run(store, stop).await;
                Ok(())
            });
        }
        if let Some(server) = self.smtp {
            let ctx = server.context();
            let stop = shutdown.clone();
            let grace = self.shutdown_timeout;
            tasks.spawn("SMTP listeners", async move {
                // The listeners' own token: fired by the process's, or by a sibling's failure.
                let watch = tokio::spawn(async move {
                    stop.cancelled().await;
                    ctx.shutdown.cancel();
                });
                server.run(grace).await;
                watch.abort();
                Ok(())
            });
        }
        if self.http.is_some() {
            let (stop, store) = (shutdown.clone(), self.store.clone());
            tasks.spawn("console activity rollup", async move {
                crate::edge::console::roll_up_activity(store, stop).await;
                Ok(())
            });
        }
        if let Some((listener, addr, router)) = self.http {
            let stop = shutdown.clone();
            let limits = self.http_limits;
            tasks.spawn("HTTP API", async move {
                tracing::info!(%addr, "HTTP API listening");
                api::serve::serve(listener, router, limits, stop).await;
                tracing::info!("HTTP API stopped");
                Ok(())
            });
        }
        if let Some(worker) = self.worker {
            let stop = shutdown.clone();
            tasks.spawn("delivery worker", async move {
                worker.run(stop).await;
                Ok(())
            });
        }
        if let Some(dispatcher) = self.dispatcher {
            let stop = shutdown.clone();
            tasks.spawn("webhook dispatcher", async move {
                dispatcher.run(stop).await;
                Ok(())
            });
        }
        // The SMTP listeners close their sessions with 421 once the grace period is over: they
        // get the time to do so before anything is aborted.
        let result = tasks
            .run(self.shutdown_timeout + smtp::FORCE_STOP_TIME)
            .await;
        // Requests answered during the shutdown grace are counted too.
        if let Some(requests) = &self.requests
            && let Err(err) = requests.flush(&self.store).await
        {
            tracing::warn!(error = %err, "could not write the last API request counts");
        }
        self.store.close().await;
        result
    }
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartupError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| StartupError::Bind { addr, source })?;
    Ok((listener, bound))
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

/// The key tenant secrets are sealed with, when `MISSIVE_SECRET_KEY` is set; earlier keys
/// (`MISSIVE_PREVIOUS_SECRET_KEYS`) still open what they sealed.
fn sealer(config: &Config) -> Option<Arc<Sealer>> {
    let previous: Vec<[u8; 32]> = config
        .secrets
        .previous_secret_keys
        .iter()
        .flatten()
        .map(|key| *key.expose_secret())
        .collect();
    config
        .secrets
        .secret_key
        .as_ref()
        .map(|key| Arc::new(Sealer::new(key.expose_secret(), &previous)))
}

/// Tenants' own SMTP servers: passwords sealed with `MISSIVE_SECRET_KEY`, hosts checked against
/// the webhook endpoints' address policy, the transport settings of the shared relay with a
/// cap of their own.
///
/// # Errors
/// [`StartupError::Dns`] when the resolver cannot be built.
pub fn tenant_relays(config: &Config) -> Result<TenantRelays, StartupError> {
    let policy = Targets::new(config.dns.server, config.webhooks.allow_private)
        .map_err(StartupError::Dns)?;
    Ok(TenantRelays::new(
        config.transport_settings(),
        TenantRouteSettings {
            sealer: sealer(config),
            policy,
            max_connections: config.relay.tenant_max_connections,
        },
    ))
}

/// Tenants' sending domains: private keys sealed with `MISSIVE_SECRET_KEY` (without it the
/// domain routes answer 503), records looked up with the configured resolver.
///
/// # Errors
/// [`StartupError::Dns`] when the resolver cannot be built.
pub fn domains(config: &Config, store: &Store) -> Result<Domains, StartupError> {
    let resolver = crate::net::dns::resolver(config.dns.server).map_err(StartupError::Dns)?;
    Ok(Domains::new(
        store.clone(),
        sealer(config),
        resolver,
        config.domain_settings(),
    ))
}

/// Tenants' webhook endpoints: sealed with `MISSIVE_SECRET_KEY` when it is set (without it the
/// webhook routes answer 503), their URLs checked with the configured resolver.
///
/// # Errors
/// [`StartupError::Dns`] when the resolver cannot be built.
pub fn webhooks(config: &Config, store: &Store) -> Result<Webhooks, StartupError> {
    let targets = Targets::new(config.dns.server, config.webhooks.allow_private)
        .map_err(StartupError::Dns)?;
    Ok(Webhooks::new(
        store.clone(),
        sealer(config),
        targets,
        config.webhooks.secret_overlap_secs,
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// A task that runs until shutdown and records that it saw it.
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
