//! Building and running the application: connects the store, binds listeners (port 0 works, and
//! the bound address is exposed, so tests run many apps side by side), and runs until a shared
//! cancellation token fires.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use missive_store::{PoolSettings, Store, StoreError};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};
use crate::state::{AdminKey, AppState};
use crate::{api, telemetry};

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
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

/// A built, bound, not yet running application.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    http_addr: SocketAddr,
    router: Router,
    store: Store,
    shutdown_timeout: Duration,
}

impl Application {
    /// Connects, migrates and binds.
    ///
    /// # Errors
    /// Any [`StartupError`].
    pub async fn build(config: &Config) -> Result<Self, StartupError> {
        let store = connect_store(config).await?;
        store.migrate().await?;
        Self::build_with_store(config, store).await
    }

    /// Binds against an existing (migrated) store.
    ///
    /// # Errors
    /// The HTTP address cannot be bound.
    pub async fn build_with_store(config: &Config, store: Store) -> Result<Self, StartupError> {
        let listener = TcpListener::bind(config.http_addr)
            .await
            .map_err(|source| StartupError::Bind {
                addr: config.http_addr,
                source,
            })?;
        let http_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.http_addr,
            source,
        })?;
        let state = AppState {
            store: store.clone(),
            admin_key: config
                .admin_key
                .as_ref()
                .map(|k| Arc::new(AdminKey::new(k))),
            metrics: telemetry::metrics_handle(),
            max_message_bytes: config.max_message_bytes,
        };
        let router = api::router(state, config.max_request_bytes);
        Ok(Self {
            listener,
            http_addr,
            router,
            store,
            shutdown_timeout: config.shutdown_timeout,
        })
    }

    /// The address the HTTP API is bound to.
    #[must_use]
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves until `shutdown` fires, then lets in-flight requests finish for up to the configured
    /// timeout before closing the pool.
    ///
    /// # Errors
    /// The listener failed.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        tracing::info!(addr = %self.http_addr, "HTTP API listening");
        let server = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(self.shutdown_timeout).await;
        };
        let result = tokio::select! {
            result = server => result,
            () = deadline => {
                tracing::warn!(timeout = ?self.shutdown_timeout, "requests still running at the shutdown deadline; closing them");
                Ok(())
            }
        };
        self.store.close().await;
        tracing::info!("HTTP API stopped");
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
