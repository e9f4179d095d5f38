//! Building and running the application: connects the store within the process's connection
//! budget ([`super::budget`]), builds each role's parts ([`super::parts`]), binds listeners (port
//! 0 works, and the bound address is exposed, so tests run many apps side by side), and runs its
//! tasks under a [`Supervisor`] until a shared cancellation token fires or one of them stops on
//! its own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use missive_store::listen::{Channel, ListenEvent, listen_to};
use missive_store::{EmailWriter, PoolSettings, Store, StoreError, WriterSettings};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use super::parts::{domains, mx, tenant_relays, webhooks};
pub use super::supervisor::{Supervisor, TaskEnded, cancel_on_signal};
use crate::app::budget::ConnectionBudget;
use crate::app::config::{Config, ConfigError};
use crate::app::telemetry;
use crate::edge::api;
use crate::edge::api::serve::{BodyBudget, HttpLimits};
use crate::edge::rate_limit::RateLimits;
use crate::edge::smtp::{self, Listener, SmtpContext, SmtpServer};
use crate::edge::state::{AdminKey, AppState};
use crate::ingest::Ingest;
use crate::queue::delivery::{DeliveryWorker, Routes};
use crate::queue::webhooks::Dispatcher;
use crate::queue::webhooks::client::{ClientSettings, WebhookClient};
use crate::tenancy::domains::Domains;
use crate::tenancy::keys::KeyCache;
use crate::tenancy::templates::Templates;
use crate::tenancy::usage::RequestCounter;

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

/// Opens a pool of `max_connections` to the configured database.
///
/// # Errors
/// No database URL, or the database is unreachable.
pub async fn connect_store(config: &Config, max_connections: u32) -> Result<Store, StartupError> {
    let url = config.require_database_url()?;
    let settings = PoolSettings {
        max_connections,
        ..PoolSettings::default()
    };
    Ok(Store::connect(url.expose_secret(), settings).await?)
}

/// How long a request waits for room in the body budget before it is told to retry.
const BODY_BUDGET_WAIT: Duration = Duration::from_secs(5);

/// Which parts a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roles {
    pub api: bool,
    pub smtp: bool,
    /// The inbound MX (return paths' reports).
    pub mx: bool,
    pub worker: bool,
    pub webhooks: bool,
}

impl Roles {
    pub const ALL: Self = Self {
        api: true,
        smtp: true,
        mx: true,
        worker: true,
        webhooks: true,
    };
    /// The API and the SMTP listeners, no worker or dispatcher (tests drive those themselves).
    pub const SUBMISSION: Self = Self {
        api: true,
        smtp: true,
        mx: true,
        worker: false,
        webhooks: false,
    };

    /// Whether a door that takes mail runs (the API, SMTP or the MX): they share the accept
    /// path and its caches.
    #[must_use]
    pub const fn takes_mail(&self) -> bool {
        self.api || self.smtp || self.mx
    }
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
    /// Connects, migrates and binds the given roles.
    ///
    /// # Errors
    /// Any [`StartupError`].
    pub async fn build_with_roles(config: &Config, roles: Roles) -> Result<Self, StartupError> {
        let budget = ConnectionBudget::split(config.database.max_connections, roles)?;
        let store = connect_store(config, budget.main).await?;
        store.migrate().await?;
        Self::build_with_store(config, store, roles).await
    }

    /// Binds against an existing (migrated) store, which serves as the main pool; the other
    /// pools are sized by the connection budget.
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
        let budget = ConnectionBudget::split(config.database.max_connections, roles)?;
        let store = store.with_default_limits(config.default_limits());
        // One limiter per process, shared by REST and SMTP.
        let rates = Arc::new(RateLimits::new(config.limits.requests_per_minute));
        let requests = Arc::new(RequestCounter::default());
        let sending_domains = domains(config, &store)?;
        let shared = roles.takes_mail().then(|| {
            let writer =
                EmailWriter::start(store.for_writer(budget.writer), WriterSettings::default());
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
                    receiving: Arc::new(config.receiving()),
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
        let smtp = match &shared {
            Some((keys, ingest)) if roles.smtp || roles.mx => {
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
                let mx = if roles.mx {
                    Some(Arc::new(mx(config, &store)?))
                } else {
                    None
                };
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
                    mx,
                });
                let mut listeners = Vec::new();
                if roles.smtp {
                    let (listener, addr) = bind(config.smtp.addr).await?;
                    listeners.push((listener, addr, Listener::Submission));
                    let (listener, addr) = bind(config.smtp.smtps_addr).await?;
                    listeners.push((listener, addr, Listener::Submissions));
                }
                if roles.mx {
                    let (listener, addr) = bind(config.mx.addr).await?;
                    listeners.push((listener, addr, Listener::Mx));
                }
                Some(SmtpServer::new(ctx, listeners))
            }
            _ => None,
        };
        let worker = if roles.worker {
            // Lease and outcome writes need not wait for the WAL flush: see `Store::for_worker`
            // for why that cannot lose an accepted message.
            Some(DeliveryWorker::new(
                store.for_worker(budget.worker),
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
                store.for_dispatcher(budget.dispatcher),
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
        let server = self.smtp.as_ref()?;
        server
            .addr(Listener::Submission)
            .zip(server.addr(Listener::Submissions))
    }

    /// The inbound MX's address, when this process runs it.
    #[must_use]
    pub fn mx_addr(&self) -> Option<SocketAddr> {
        self.smtp.as_ref()?.addr(Listener::Mx)
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
