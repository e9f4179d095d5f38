//! Building and running the application: connects the store, binds listeners (port 0 works, and
//! the bound address is exposed, so tests run many apps side by side), and runs until a shared
//! cancellation token fires.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use missive_store::{EmailWriter, PoolSettings, Store, StoreError, WriterSettings};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};
use crate::delivery::{DeliveryWorker, Transport, WorkerSettings};
use crate::key_cache::KeyCache;
use crate::smtp::{self, SmtpContext, SmtpServer};
use crate::state::{AdminKey, AppState};
use crate::{api, telemetry};

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
    Transport(#[from] crate::delivery::TransportError),
    #[error("SMTP TLS: {0}")]
    Tls(#[from] smtp::tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Opens the pool described by the configuration.
///
/// # Errors
/// No database URL, or the database is unreachable.
pub async fn connect_store(config: &Config) -> Result<Store, StartupError> {
    let url = config.require_database_url()?;
    let settings = PoolSettings {
        max_connections: config.db_max_connections,
        ..PoolSettings::default()
    };
    Ok(Store::connect(url.expose_secret(), settings).await?)
}

/// Which parts a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roles {
    pub api: bool,
    pub smtp: bool,
    pub worker: bool,
}

impl Roles {
    pub const ALL: Self = Self {
        api: true,
        smtp: true,
        worker: true,
    };
    pub const API: Self = Self {
        api: true,
        smtp: false,
        worker: false,
    };
    /// The API and the SMTP listeners, no worker (tests drive delivery themselves).
    pub const SUBMISSION: Self = Self {
        api: true,
        smtp: true,
        worker: false,
    };
}

/// A built, bound, not yet running application.
#[derive(Debug)]
pub struct Application {
    http: Option<(TcpListener, SocketAddr, Router)>,
    smtp: Option<SmtpServer>,
    /// Shared by the API and SMTP; its LISTEN task runs while either does.
    keys: Option<KeyCache>,
    worker: Option<DeliveryWorker>,
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
        let shared = (roles.api || roles.smtp).then(|| {
            (
                KeyCache::new(store.clone()),
                EmailWriter::start(store.clone(), WriterSettings::default()),
            )
        });
        let http = match (&shared, roles.api) {
            (Some((keys, writer)), true) => {
                let (listener, addr) = bind(config.http_addr).await?;
                let state = AppState {
                    keys: keys.clone(),
                    store: store.clone(),
                    writer: writer.clone(),
                    admin_key: config
                        .admin_key
                        .as_ref()
                        .map(|k| Arc::new(AdminKey::new(k))),
                    metrics: telemetry::metrics_handle(),
                    max_message_bytes: config.max_message_bytes,
                };
                Some((listener, addr, api::router(state, config.max_request_bytes)))
            }
            _ => None,
        };
        let smtp = match (&shared, roles.smtp) {
            (Some((keys, writer)), true) => {
                let files = config.tls_cert.as_deref().zip(config.tls_key.as_deref());
                let (tls, fingerprint) = smtp::tls::acceptor(files, &config.helo_name)?;
                if files.is_none() {
                    tracing::info!(
                        sha256 = %fingerprint,
                        "SMTP TLS uses a self-signed certificate made at start (set MISSIVE_TLS_CERT and MISSIVE_TLS_KEY to use your own)"
                    );
                }
                let ctx = Arc::new(SmtpContext {
                    store: store.clone(),
                    writer: writer.clone(),
                    keys: keys.clone(),
                    hostname: config.helo_name.clone(),
                    limits: config.smtp.clone(),
                    max_message_bytes: config.max_message_bytes,
                    tls,
                    shutdown: CancellationToken::new(),
                    force_stop: CancellationToken::new(),
                });
                Some(SmtpServer::new(
                    ctx,
                    bind(config.smtp_addr).await?,
                    bind(config.smtps_addr).await?,
                ))
            }
            _ => None,
        };
        let worker = if roles.worker {
            // Lease and outcome writes need not wait for the WAL flush: see `Store::for_worker`
            // for why that cannot lose an accepted message.
            Some(DeliveryWorker::new(
                store.for_worker(WORKER_DB_CONNECTIONS),
                Arc::new(Transport::from_config(config)?),
                WorkerSettings::from_config(config),
            ))
        } else {
            None
        };
        Ok(Self {
            http,
            smtp,
            keys: shared.map(|(keys, _)| keys),
            worker,
            store,
            shutdown_timeout: config.shutdown_timeout,
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
    /// the configured timeout before closing the pool.
    ///
    /// # Errors
    /// The listener failed.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        if let Some(keys) = self.keys {
            tokio::spawn(keys.listen(shutdown.clone()));
        }
        let smtp = async {
            if let Some(server) = self.smtp {
                let ctx = server.context();
                let stop = shutdown.clone();
                tokio::spawn(async move {
                    stop.cancelled().await;
                    ctx.shutdown.cancel();
                });
                server.run(self.shutdown_timeout).await;
            }
        };
        let http = async {
            let Some((listener, addr, router)) = self.http else {
                return Ok(());
            };
            tracing::info!(%addr, "HTTP API listening");
            let result = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown.clone().cancelled_owned())
                .await;
            tracing::info!("HTTP API stopped");
            result
        };
        let worker = async {
            if let Some(worker) = self.worker {
                worker.run(shutdown.clone()).await;
            }
        };
        let deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(self.shutdown_timeout).await;
        };
        let result = tokio::select! {
            (result, (), ()) = async { tokio::join!(http, smtp, worker) } => result,
            () = deadline => {
                tracing::warn!(timeout = ?self.shutdown_timeout, "work still running at the shutdown deadline; stopping it");
                Ok(())
            }
        };
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
