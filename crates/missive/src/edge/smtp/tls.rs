//! The listeners' TLS configuration: the operator's PEM files, or a self-signed certificate made
//! at start (its SHA-256 fingerprint is logged so a client can pin it).

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("generating a self-signed certificate: {0}")]
    Generate(String),
    #[error("the certificate and key do not form a valid TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Loads `cert` and `key`, or generates a self-signed certificate for `hostname`.
///
/// # Errors
/// Unreadable or invalid PEM files, or a key that does not match the certificate.
pub fn acceptor(
    files: Option<(&Path, &Path)>,
    hostname: &str,
) -> Result<(TlsAcceptor, String), TlsError> {
    let (chain, key) = match files {
        Some((cert, key)) => {
            let file_error = |path: &Path, e: &dyn std::fmt::Display| TlsError::File {
                path: path.display().to_string(),
                message: e.to_string(),
            };
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| file_error(cert, &e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| file_error(cert, &e))?;
            if chain.is_empty() {
                return Err(file_error(cert, &"no certificate in the file"));
            }
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, &e))?;
            (chain, key)
        }
        None => {
            let generated = rcgen::generate_simple_self_signed(vec![hostname.to_owned()])
                .map_err(|e| TlsError::Generate(e.to_string()))?;
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                generated.signing_key.serialize_der(),
            ));
            (vec![generated.cert.der().clone()], key)
        }
    };
    let fingerprint = fingerprint(&chain[0]);
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok((TlsAcceptor::from(Arc::new(config)), fingerprint))
}

/// SHA-256 of the certificate, as colon-separated hex (the form `openssl x509 -fingerprint`
/// prints).
fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
