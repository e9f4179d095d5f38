//! Secrets at rest: tenant secrets (webhook signing secrets, the passwords of tenants' own SMTP
//! servers, and DKIM private keys) are stored sealed with `MISSIVE_SECRET_KEY`, never in the clear.
//!
//! XChaCha20-Poly1305 with a random 24-byte nonce per value (random nonces of that size never
//! repeat in practice). The owner's id is the associated data, so a sealed value copied into
//! another tenant's row does not open. Each value names the key that sealed it (a short hash of
//! the key, not the key), so a rotated key can still open what the old one sealed.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit as _, XChaCha20Poly1305, XNonce};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

const NONCE_BYTES: usize = 24;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("sealed with key `{0}`, which is not configured")]
    UnknownKey(String),
    #[error("a sealed value that does not open (damaged, or sealed for another owner)")]
    Corrupt,
}

/// A value as stored: the sealing key's id and the nonce followed by the ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub bytes: Vec<u8>,
}

/// Seals and opens with the configured keys: the first seals, all of them open.
pub struct Sealer {
    keys: Vec<(String, XChaCha20Poly1305)>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Sealer").field("key_ids", &ids).finish()
    }
}

/// A key's public name: the first 8 hex digits of its SHA-256.
#[must_use]
pub fn key_id(key: &[u8; 32]) -> String {
    Sha256::digest(key)[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A key for one use of a secret key: an HMAC-SHA256 of `label` under it, so a MAC made for one
/// use never doubles as another's.
#[must_use]
pub fn derive_key(secret: &[u8; 32], label: &[u8]) -> [u8; 32] {
    use hmac::{KeyInit as _, Mac as _};
    let mut mac = <hmac::Hmac<Sha256>>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(label);
    mac.finalize().into_bytes().into()
}

impl Sealer {
    /// `current` seals; `current` and `previous` open.
    #[must_use]
    pub fn new(current: &[u8; 32], previous: &[[u8; 32]]) -> Self {
        let keys = std::iter::once(current)
            .chain(previous)
            .map(|key| (key_id(key), XChaCha20Poly1305::new(key.into())))
            .collect();
        Self { keys }
    }

    /// Seals `plaintext` for `owner` (a tenant id's bytes, or a row's).
    #[must_use]
    pub fn seal(&self, owner: &[u8], plaintext: &[u8]) -> Sealed {
        let (key_id, cipher) = &self.keys[0];
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: owner,
                },
            )
            .unwrap_or_else(|_| unreachable!("encryption fails only past 256 GiB"));
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&ciphertext);
        Sealed {
            key_id: key_id.clone(),
            bytes,
        }
    }

    /// Opens what [`Sealer::seal`] sealed for the same owner.
    ///
    /// # Errors
    /// [`SealError::UnknownKey`] when its key is not configured, [`SealError::Corrupt`] when it
    /// does not open.
    pub fn open(&self, owner: &[u8], sealed: &Sealed) -> Result<Vec<u8>, SealError> {
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(id, _)| *id == sealed.key_id)
            .ok_or_else(|| SealError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.bytes.len() < NONCE_BYTES {
            return Err(SealError::Corrupt);
        }
        let (nonce, ciphertext) = sealed.bytes.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| SealError::Corrupt)?;
        cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: owner,
                },
            )
            .map_err(|_| SealError::Corrupt)
    }

    /// Whether a value was sealed with an older key (and should be sealed again).
    #[must_use]
    pub fn is_stale(&self, sealed: &Sealed) -> bool {
        sealed.key_id != self.keys[0].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_open_for_their_owner_only() {
        let sealer = Sealer::new(&[7; 32], &[]);
        let sealed = sealer.seal(b"tenant-a", b"whsec_secret");
        assert!(!sealed.bytes.windows(12).any(|w| w == b"whsec_secret"));
        assert_eq!(sealer.open(b"tenant-a", &sealed).unwrap(), b"whsec_secret");
        assert_eq!(sealer.open(b"tenant-b", &sealed), Err(SealError::Corrupt));
        let mut damaged = sealed;
        *damaged.bytes.last_mut().unwrap() ^= 1;
        assert_eq!(sealer.open(b"tenant-a", &damaged), Err(SealError::Corrupt));
        // A fresh nonce each time.
        assert_ne!(
            sealer.seal(b"tenant-a", b"x").bytes,
            sealer.seal(b"tenant-a", b"x").bytes
        );
        assert!(!format!("{sealer:?}").contains("[7"));
    }

    #[test]
    fn a_rotated_key_still_opens_what_the_old_one_sealed() {
        let old = Sealer::new(&[1; 32], &[]);
        let sealed = old.seal(b"t", b"secret");
        let rotated = Sealer::new(&[2; 32], &[[1; 32]]);
        assert!(rotated.is_stale(&sealed));
        assert_eq!(rotated.open(b"t", &sealed).unwrap(), b"secret");
        assert!(!rotated.is_stale(&rotated.seal(b"t", b"secret")));
        let other = Sealer::new(&[3; 32], &[]);
        assert_eq!(
            other.open(b"t", &sealed),
            Err(SealError::UnknownKey(key_id(&[1; 32])))
        );
    }
}
