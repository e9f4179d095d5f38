//! Transports by route: what the worker sends each attempt through. A route's transport is built
//! from a core [`RelaySpec`] (address, TLS mode, credentials) and the operator's transport
//! settings, so the worker never reads configuration. A tenant's own server gets its own pool
//! (with its own cap and breaker), rebuilt when the settings read with its mail change: a change
//! reaches the next attempts of every worker without a restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::Duration;
use tokio::sync::Notify;

use missive_core::routing::{RelayCredentials, SmtpRelay, resolve};
use missive_core::sealed::{Sealed, Sealer};
use missive_core::{RelaySpec, Route, TenantId};
use missive_store::{OutgoingMessage, StoredRelay};
use secrecy::SecretString;
use time::OffsetDateTime;
use uuid::Uuid;

use super::smtp::{self, RecipientReply, SmtpPool};
use crate::targets::Targets;

/// How every SMTP transport behaves, whatever relay it reaches.
#[derive(Clone, Debug)]
pub struct TransportSettings {
    /// Extra PEM certificates a relay's TLS certificate may chain to.
    pub ca_file: Option<PathBuf>,
    /// The name given in EHLO.
    pub helo_name: String,
    /// Open connections to one relay at most.
    pub max_connections: usize,
    /// Each step of a relay conversation.
    pub timeout: Duration,
}

/// Why a transport could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("MISSIVE_RELAY_CA_FILE: cannot read certificates from {path}: {message}")]
    CaFile { path: PathBuf, message: String },
    #[error("TLS client configuration: {0}")]
    Tls(String),
}

/// Where an attempt's message goes.
#[derive(Debug)]
pub enum Transport {
    /// Development: each message is written to a directory with its envelope.
    Capture(PathBuf),
    /// An SMTP relay (boxed: a pool is far larger than a path).
    Smtp(Box<SmtpPool>),
}

impl Transport {
    /// The relay as the API shows it per recipient: `host:port`, or the capture directory.
    #[must_use]
    pub fn host(&self) -> String {
        match self {
            Self::Smtp(pool) => pool.addr(),
            Self::Capture(dir) => format!("capture:{}", dir.display()),
        }
    }

    /// The transport for a relay.
    ///
    /// # Errors
    /// The extra CA file cannot be read.
    pub fn for_relay(
        spec: &RelaySpec,
        settings: &TransportSettings,
    ) -> Result<Self, TransportError> {
        Ok(match spec {
            RelaySpec::Capture(dir) => Self::Capture(dir.clone()),
            RelaySpec::Smtp(relay) => Self::Smtp(Box::new(SmtpPool::new(
                relay.clone(),
                tls_client_config(settings.ca_file.as_deref())?,
                settings.helo_name.clone(),
                settings.max_connections,
                settings.timeout,
            ))),
        })
    }

    /// Sends one message to some recipients; one reply per recipient, in order.
    pub(super) async fn send(
        &self,
        message: &OutgoingMessage,
        recipients: &[String],
    ) -> Vec<RecipientReply> {
        match self {
            Self::Smtp(pool) => {
                pool.send(
                    &message.envelope_from,
                    recipients,
                    message.smtputf8,
                    &message.mime,
                )
                .await
            }
            Self::Capture(dir) => match capture(dir, message, recipients).await {
                Ok(()) => recipients
                    .iter()
                    .map(|_| {
                        RecipientReply::Reply(smtp::Reply {
                            code: 250,
                            text: "250 captured".into(),
                        })
                    })
                    .collect(),
                Err(err) => recipients
                    .iter()
                    .map(|_| RecipientReply::Failed(format!("capture failed: {err}")))
                    .collect(),
            },
        }
    }
}

/// What a tenant's own server needs beyond the shared settings: the key its password is
/// sealed with, the address policy its host must pass, and its own cap on connections.
#[derive(Clone, Debug)]
pub struct TenantRouteSettings {
    pub sealer: Option<Arc<Sealer>>,
    pub policy: Targets,
    /// Open connections to one tenant's server at most.
    pub max_connections: usize,
}

/// A tenant's transport, built from one version of its settings.
#[derive(Debug)]
struct TenantTransport {
    changed_at: OffsetDateTime,
    transport: Arc<Transport>,
    /// Jobs of the tenant between lease and result (kept across rebuilds).
    assigned: Arc<AtomicUsize>,
}

/// A job's place on its tenant's route, from lease to result: while a route has as many as it
/// can use, the worker leases no more of its tenant's mail.
#[derive(Debug)]
pub struct Place {
    assigned: Arc<AtomicUsize>,
    freed: Arc<Notify>,
}

impl Place {
    fn take(assigned: &Arc<AtomicUsize>, freed: &Arc<Notify>) -> Self {
        assigned.fetch_add(1, Ordering::Relaxed);
        Self {
            assigned: assigned.clone(),
            freed: freed.clone(),
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.assigned.fetch_sub(1, Ordering::Relaxed);
        // A worker waiting because every due email belonged to full routes may lease again.
        self.freed.notify_one();
    }
}

/// Why a tenant's server cannot be used as set; its mail is deferred meanwhile.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("the tenant's SMTP password cannot be opened: MISSIVE_SECRET_KEY is not set")]
    NoSecretKey,
    #[error("the tenant's SMTP password cannot be opened: {0}")]
    Sealed(String),
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// Tenants' own servers: how their passwords are sealed and opened, which hosts may be set,
/// and the transports that reach them. Shared by the delivery worker and the admin API (which
/// seals, checks and verifies).
#[derive(Clone, Debug)]
pub struct TenantRelays {
    settings: TransportSettings,
    tenants: TenantRouteSettings,
}

/// One transport per route: the shared relay's, and each tenant's own server's, built when its
/// mail first needs it and again whenever its settings change.
#[derive(Debug)]
pub struct Routes {
    shared: Arc<Transport>,
    relays: TenantRelays,
    /// Built lazily; an entry is replaced when the settings it was built from change.
    by_tenant: std::sync::Mutex<HashMap<TenantId, TenantTransport>>,
    /// Signalled whenever a tenant route's job ends.
    freed: Arc<Notify>,
}

impl Routes {
    /// Routes whose shared relay is `shared`.
    ///
    /// # Errors
    /// The shared relay's transport cannot be set up.
    pub fn new(shared: &RelaySpec, relays: TenantRelays) -> Result<Self, TransportError> {
        Ok(Self {
            shared: Arc::new(Transport::for_relay(shared, &relays.settings)?),
            relays,
            by_tenant: std::sync::Mutex::new(HashMap::new()),
            freed: Arc::default(),
        })
    }

    /// Wakes when a job on a tenant's own route ends, which may let more of its mail be leased.
    pub fn freed(&self) -> tokio::sync::futures::Notified<'_> {
        self.freed.notified()
    }

    /// The route of a message (see [`missive_core::routing::resolve`]) and its transport.
    ///
    /// # Errors
    /// [`RouteError`] when the tenant's server is set but cannot be used (its password does not
    /// open); the message is deferred, never sent another way.
    pub fn for_message(
        &self,
        message: &OutgoingMessage,
    ) -> Result<(Route, Arc<Transport>, Option<Place>), RouteError> {
        let stored = message.relay.as_ref();
        let route = resolve(message.tenant_id, stored.map(|s| &s.relay));
        let (Route::Tenant(tenant), Some(stored)) = (route, stored) else {
            return Ok((Route::Shared, self.shared.clone(), None));
        };
        let mut cache = self
            .by_tenant
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(cached) = cache.get(&tenant)
            && cached.changed_at == stored.changed_at
        {
            let place = Place::take(&cached.assigned, &self.freed);
            return Ok((route, cached.transport.clone(), Some(place)));
        }
        let transport = Arc::new(self.relays.transport(tenant, stored)?);
        let assigned = cache
            .get(&tenant)
            .map_or_else(Arc::default, |old| old.assigned.clone());
        let place = Place::take(&assigned, &self.freed);
        cache.insert(
            tenant,
            TenantTransport {
                changed_at: stored.changed_at,
                transport: transport.clone(),
                assigned,
            },
        );
        Ok((route, transport, Some(place)))
    }

    /// How many more emails of each tenant with its own server the worker may lease now:
    /// twice the route's connections, less the jobs it has. Beyond that they would only wait
    /// for a connection while holding send slots every tenant needs.
    #[must_use]
    pub fn allowances(&self) -> Vec<(TenantId, i64)> {
        let most = 2 * self.relays.tenants.max_connections;
        self.by_tenant
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(tenant, t)| {
                let free = most.saturating_sub(t.assigned.load(Ordering::Relaxed));
                (*tenant, i64::try_from(free).unwrap_or(i64::MAX))
            })
            .collect()
    }
}

impl TenantRelays {
    #[must_use]
    pub const fn new(settings: TransportSettings, tenants: TenantRouteSettings) -> Self {
        Self { settings, tenants }
    }

    /// The policy a tenant's host must pass (the webhook endpoints' one).
    #[must_use]
    pub const fn policy(&self) -> &Targets {
        &self.tenants.policy
    }

    /// Seals a tenant's password, bound to the tenant.
    ///
    /// # Errors
    /// [`RouteError::NoSecretKey`] without `MISSIVE_SECRET_KEY`.
    pub fn seal(&self, tenant: TenantId, password: &str) -> Result<Sealed, RouteError> {
        let sealer = self
            .tenants
            .sealer
            .as_ref()
            .ok_or(RouteError::NoSecretKey)?;
        Ok(sealer.seal(tenant.as_uuid().as_bytes(), password.as_bytes()))
    }

    /// A transport to a tenant's server as stored, with its own cap, breaker and address
    /// policy; what deliveries and the verify route talk through.
    ///
    /// # Errors
    /// [`RouteError`] when the password does not open or TLS cannot be configured.
    pub fn transport(
        &self,
        tenant: TenantId,
        stored: &StoredRelay,
    ) -> Result<Transport, RouteError> {
        let credentials = match (&stored.relay.username, &stored.password) {
            (Some(username), Some(sealed)) => {
                let sealer = self
                    .tenants
                    .sealer
                    .as_ref()
                    .ok_or(RouteError::NoSecretKey)?;
                let password = sealer
                    .open(
                        tenant.as_uuid().as_bytes(),
                        &Sealed {
                            key_id: sealed.key_id.clone(),
                            bytes: sealed.bytes.clone(),
                        },
                    )
                    .map_err(|e| RouteError::Sealed(e.to_string()))?;
                let password = String::from_utf8(password)
                    .map_err(|_| RouteError::Sealed("not UTF-8".to_owned()))?;
                Some(RelayCredentials {
                    username: username.clone(),
                    password: SecretString::from(password),
                })
            }
            _ => None,
        };
        let relay = SmtpRelay {
            host: stored.relay.host.clone(),
            port: stored.relay.port,
            tls: stored.relay.tls,
            credentials,
        };
        let pool = SmtpPool::new(
            relay,
            tls_client_config(self.settings.ca_file.as_deref())?,
            self.settings.helo_name.clone(),
            self.tenants.max_connections,
            self.settings.timeout,
        )
        .with_policy(self.tenants.policy.clone());
        Ok(Transport::Smtp(Box::new(pool)))
    }
}

/// The roots a relay's certificate must chain to: the Mozilla set, plus the operator's own CA
/// for relays with private certificates.
fn tls_client_config(extra_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TransportError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca {
        let error = |message: String| TransportError::CaFile {
            path: path.to_owned(),
            message,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| error(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| error(e.to_string()))?;
        if certs.is_empty() {
            return Err(error("no certificate in the file".to_owned()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| error(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Writes `<email>-<n>.eml` and its envelope as JSON beside it.
async fn capture(
    dir: &Path,
    message: &OutgoingMessage,
    recipients: &[String],
) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let stem = format!("{}-{}", message.id, Uuid::now_v7().simple());
    let envelope = serde_json::json!({
        "tenant_id": message.tenant_id,
        "email_id": message.id,
        "mail_from": message.envelope_from,
        "rcpt_to": recipients,
    });
    tokio::fs::write(dir.join(format!("{stem}.json")), envelope.to_string()).await?;
    // The .eml last: a reader that sees it finds the envelope already there.
    tokio::fs::write(dir.join(format!("{stem}.eml")), &message.mime).await
}
