//! DKIM keys and signing (RFC 6376; Ed25519 per RFC 8463), with mail-auth over ring.
//!
//! A key pair is made once per domain (and per rotation); the private half is stored sealed and
//! opened into a [`DomainKey`] when the accept path first signs for the domain. Messages are
//! signed once, over their final bytes, relaxed/relaxed, with a header set that covers what a
//! reader sees (From twice, so no second From can be added unnoticed).

use base64::Engine as _;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use missive_core::sending_domain::DkimAlgorithm;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::EncodePublicKey as _;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer};

/// The RSA modulus size: what receivers expect today (1024 is deprecated, 4096 does not fit
/// every DNS provider's TXT records).
pub const RSA_BITS: usize = 2048;

/// The headers signed, in this order. Headers a message lacks are signed as absent, so they
/// cannot be added later either; From is listed twice for the same reason.
pub const SIGNED_HEADERS: [&str; 15] = [
    "From",
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "To",
    "Cc",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// A new key pair: the private key as stored before sealing (PKCS#1 DER for RSA, PKCS#8 DER
/// for Ed25519) and the public key as the DNS record's `p=` publishes it (base64 of the
/// SubjectPublicKeyInfo for RSA, of the raw 32 bytes for Ed25519).
pub struct KeyPair {
    pub private_der: Vec<u8>,
    pub public_base64: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public_base64", &self.public_base64)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("generating the key failed: {0}")]
    Generate(String),
    #[error("the stored key does not load: {0}")]
    Load(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

/// Makes a key pair. RSA takes tens to hundreds of milliseconds: call it off the async
/// threads.
///
/// # Errors
/// [`KeyError::Generate`].
pub fn generate(algorithm: DkimAlgorithm) -> Result<KeyPair, KeyError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    match algorithm {
        DkimAlgorithm::Rsa => {
            let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_BITS)
                .map_err(|e| KeyError::Generate(e.to_string()))?;
            let public = private
                .to_public_key()
                .to_public_key_der()
                .map_err(|e| KeyError::Generate(e.to_string()))?;
            let der = private
                .to_pkcs1_der()
                .map_err(|e| KeyError::Generate(e.to_string()))?;
            Ok(KeyPair {
                private_der: der.as_bytes().to_vec(),
                public_base64: b64.encode(public.as_bytes()),
            })
        }
        DkimAlgorithm::Ed25519 => {
            let pkcs8 =
                Ed25519Key::generate_pkcs8().map_err(|e| KeyError::Generate(e.to_string()))?;
            let key = Ed25519Key::from_pkcs8_der(&pkcs8)
                .map_err(|e| KeyError::Generate(e.to_string()))?;
            Ok(KeyPair {
                public_base64: b64.encode(key.public_key()),
                private_der: pkcs8,
            })
        }
    }
}

enum Signer {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

/// A verified domain's key, ready to sign its mail.
pub struct DomainKey {
    domain: String,
    selector: String,
    signer: Signer,
}

impl std::fmt::Debug for DomainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DomainKey")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .finish_non_exhaustive()
    }
}

impl DomainKey {
    /// Loads a stored private key (as [`generate`] made it) for `domain` under `selector`.
    ///
    /// # Errors
    /// [`KeyError::Load`] for bytes that are not such a key.
    pub fn load(
        domain: &str,
        selector: &str,
        algorithm: DkimAlgorithm,
        private_der: &[u8],
    ) -> Result<Self, KeyError> {
        let load = |e: mail_auth::Error| KeyError::Load(e.to_string());
        let signer = match algorithm {
            DkimAlgorithm::Rsa => {
                let key = RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs1(
                    PrivatePkcs1KeyDer::from(private_der),
                ))
                .map_err(load)?;
                Signer::Rsa(configure(DkimSigner::from_key(key), domain, selector))
            }
            DkimAlgorithm::Ed25519 => {
                let key = Ed25519Key::from_pkcs8_der(private_der).map_err(load)?;
                Signer::Ed25519(configure(DkimSigner::from_key(key), domain, selector))
            }
        };
        Ok(Self {
            domain: domain.to_owned(),
            selector: selector.to_owned(),
            signer,
        })
    }

    #[must_use]
    pub fn domain(&self) -> &str {
        &self.domain
    }

    #[must_use]
    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// `message` with its DKIM-Signature header in front.
    ///
    /// # Errors
    /// [`KeyError::Sign`].
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let signature = match &self.signer {
            Signer::Rsa(signer) => signer.sign(message),
            Signer::Ed25519(signer) => signer.sign(message),
        }
        .map_err(|e| KeyError::Sign(e.to_string()))?;
        let header = signature.to_header();
        let mut signed = Vec::with_capacity(header.len() + message.len());
        signed.extend_from_slice(header.as_bytes());
        signed.extend_from_slice(message);
        Ok(signed)
    }
}

fn configure<K: mail_auth::common::crypto::SigningKey>(
    signer: DkimSigner<K>,
    domain: &str,
    selector: &str,
) -> DkimSigner<K, Done> {
    signer
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS)
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] = b"From: Acme <hello@acme.test>\r\nTo: a@x.test\r\nSubject: Hi\r\n\
        Date: Sun, 29 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@acme.test>\r\n\r\nHello\r\n";

    #[test]
    fn both_kinds_sign_with_a_header_naming_domain_and_selector() {
        for algorithm in [DkimAlgorithm::Rsa, DkimAlgorithm::Ed25519] {
            let pair = generate(algorithm).unwrap();
            let key = DomainKey::load("acme.test", "mv01", algorithm, &pair.private_der).unwrap();
            let signed = key.sign(MESSAGE).unwrap();
            let text = String::from_utf8(signed).unwrap();
            assert!(text.starts_with("DKIM-Signature: "), "{text}");
            assert!(text.ends_with("\r\n\r\nHello\r\n"));
            assert!(text.contains("d=acme.test"));
            assert!(text.contains("s=mv01"));
            assert!(text.contains("c=relaxed/relaxed"));
            assert!(!format!("{pair:?}").contains(&format!("{:?}", &pair.private_der[..8])));
        }
    }

    #[test]
    fn rsa_public_keys_are_subject_public_key_info() {
        let pair = generate(DkimAlgorithm::Rsa).unwrap();
        // SubjectPublicKeyInfo of a 2048-bit RSA key, base64: the form DNS records carry.
        assert!(
            pair.public_base64
                .starts_with("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA")
        );
        let ed = generate(DkimAlgorithm::Ed25519).unwrap();
        assert_eq!(ed.public_base64.len(), 44);
    }

    #[test]
    fn a_key_that_is_not_one_does_not_load() {
        assert!(DomainKey::load("acme.test", "s", DkimAlgorithm::Rsa, b"nope").is_err());
        assert!(DomainKey::load("acme.test", "s", DkimAlgorithm::Ed25519, b"nope").is_err());
    }
}
