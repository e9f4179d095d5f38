//! Transports by route: what the worker sends each attempt through. A route's transport is built
//! from a core [`RelaySpec`] (address, TLS mode, credentials) and the operator's transport
//! settings, so the worker never reads configuration and a route of a new kind needs only a spec.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use missive_core::{RelaySpec, Route};
use missive_store::OutgoingMessage;
use uuid::Uuid;

use super::smtp::{self, RecipientReply, SmtpPool};

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
    /// An SMTP relay.
    Smtp(SmtpPool),
}

impl Transport {
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
            RelaySpec::Smtp(relay) => Self::Smtp(SmtpPool::new(
                relay.clone(),
                tls_client_config(settings.ca_file.as_deref())?,
                settings.helo_name.clone(),
                settings.max_connections,
                settings.timeout,
            )),
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

/// One transport per route.
#[derive(Debug)]
pub struct Routes {
    shared: Transport,
}

impl Routes {
    /// Routes whose shared relay is `shared`.
    ///
    /// # Errors
    /// The shared relay's transport cannot be set up.
    pub fn new(shared: &RelaySpec, settings: &TransportSettings) -> Result<Self, TransportError> {
        Ok(Self {
            shared: Transport::for_relay(shared, settings)?,
        })
    }

    /// The transport an attempt on `route` goes through.
    #[must_use]
    pub fn transport(&self, route: Route) -> &Transport {
        match route {
            Route::Shared => &self.shared,
        }
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
