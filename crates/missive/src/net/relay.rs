//! The transports outbound mail goes through: the shared relay (or a capture directory), and
//! tenants' own SMTP servers, whose passwords are sealed with `MISSIVE_SECRET_KEY` for the tenant
//! and opened only to build a transport. A transport is built from a core [`RelaySpec`] and the
//! operator's [`TransportSettings`], so nothing that sends reads configuration. The delivery
//! worker's routes (`queue::delivery`) and the tenant services (verifying a tenant's server)
//! both build them here.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use missive_core::routing::{RelayCredentials, SmtpRelay};
use missive_core::sealed::{Sealed, Sealer};
use missive_core::{RelaySpec, TenantId};
use missive_store::{OutgoingMessage, StoredRelay};
use secrecy::SecretString;
use uuid::Uuid;

use super::smtp::{self, Envelope, RecipientReply, SmtpPool};
use super::targets::Targets;

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

    /// Sends one message to some recipients under `envelope`; one reply per recipient, in
    /// order.
    pub async fn send(
        &self,
        message: &OutgoingMessage,
        envelope: &Envelope<'_>,
        recipients: &[String],
    ) -> Vec<RecipientReply> {
        match self {
            Self::Smtp(pool) => pool.send(envelope, recipients, &message.mime).await,
            Self::Capture(dir) => match capture(dir, message, envelope.from, recipients).await {
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
/// and the transports that reach them. Shared by the delivery worker and the tenant services
/// (which seal, check and verify).
#[derive(Clone, Debug)]
pub struct TenantRelays {
    settings: TransportSettings,
    tenants: TenantRouteSettings,
}

impl TenantRelays {
    #[must_use]
    pub const fn new(settings: TransportSettings, tenants: TenantRouteSettings) -> Self {
        Self { settings, tenants }
    }

    /// How every transport behaves, the shared relay's included.
    #[must_use]
    pub const fn settings(&self) -> &TransportSettings {
        &self.settings
    }

    /// Open connections to one tenant's server at most.
    #[must_use]
    pub const fn max_connections(&self) -> usize {
        self.tenants.max_connections
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
    from: &str,
    recipients: &[String],
) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let stem = format!("{}-{}", message.id, Uuid::now_v7().simple());
    let envelope = serde_json::json!({
        "tenant_id": message.tenant_id,
        "email_id": message.id,
        "mail_from": from,
        "rcpt_to": recipients,
    });
    tokio::fs::write(dir.join(format!("{stem}.json")), envelope.to_string()).await?;
    // The .eml last: a reader that sees it finds the envelope already there.
    tokio::fs::write(dir.join(format!("{stem}.eml")), &message.mime).await
}
