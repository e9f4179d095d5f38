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
use crate::state::{AdminKey, AppState};
use crate::{api, telemetry};

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Transport(#[from] crate::delivery::TransportError),
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
    pub worker: bool,
}

impl Roles {
    pub const ALL: Self = Self {
        api: true,
        worker: true,
    };
    pub const API: Self = Self {
        api: true,
        worker: false,
    };
}

/// A built, bound, not yet running application.
#[derive(Debug)]
pub struct Application {
    http: Option<(TcpListener, SocketAddr, Router, KeyCache)>,
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
        let http = if roles.api {
            let listener = TcpListener::bind(config.http_addr)
                .await
                .map_err(|source| StartupError::Bind {
                    addr: config.http_addr,
                    source,
                })?;
            let addr = listener.local_addr().map_err(|source| StartupError::Bind {
                addr: config.http_addr,
                source,
            })?;
            let state = AppState {
                keys: KeyCache::new(store.clone()),
                store: store.clone(),
                writer: EmailWriter::start(store.clone(), WriterSettings::default()),
                admin_key: config
                    .admin_key
                    .as_ref()
                    .map(|k| Arc::new(AdminKey::new(k))),
                metrics: telemetry::metrics_handle(),
                max_message_bytes: config.max_message_bytes,
            };
            let keys = state.keys.clone();
            Some((
                listener,
                addr,
                api::router(state, config.max_request_bytes),
                keys,
            ))
        } else {
            None
        };
        let worker = if roles.worker {
            Some(DeliveryWorker::new(
                store.clone(),
                Arc::new(Transport::from_config(config)?),
                WorkerSettings::from_config(config),
            ))
        } else {
            None
        };
        Ok(Self {
            http,
            worker,
            store,
            shutdown_timeout: config.shutdown_timeout,
        })
    }

    /// The address the HTTP API is bound to, when this process runs the API.
    #[must_use]
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|(_, addr, _, _)| *addr)
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
        let http = async {
            let Some((listener, addr, router, keys)) = self.http else {
                return Ok(());
            };
            tokio::spawn(keys.listen(shutdown.clone()));
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
            (result, ()) = async { tokio::join!(http, worker) } => result,
            () = deadline => {
                tracing::warn!(timeout = ?self.shutdown_timeout, "work still running at the shutdown deadline; stopping it");
                Ok(())
            }
        };
        self.store.close().await;
        result
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
