//! Signed, expiring links to a received message's attachment: the Receiving API hands out a
//! `download_url` that anyone holding it may fetch without an API key until `expires_at`.
//!
//! The signature is the first 16 bytes of an HMAC-SHA256 over the tenant, the received email,
//! the attachment and the expiry, under a key derived from `MISSIVE_SECRET_KEY` for this use
//! only; a changed character, another attachment or a later expiry does not check.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;
use uuid::Uuid;

use crate::ids::TenantId;

const KEY_DOMAIN: &[u8] = b"missive attachment link v1";
const MAC_BYTES: usize = 16;

/// What a link names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub tenant: TenantId,
    pub email: Uuid,
    pub attachment: Uuid,
    /// Unix seconds after which the link no longer works.
    pub expires: i64,
}

/// Signs links with the first key and checks them with any, so rotated keys keep links working
/// until they expire.
#[derive(Clone)]
pub struct DownloadLinks {
    keys: Vec<[u8; 32]>,
}

impl std::fmt::Debug for DownloadLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadLinks")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl DownloadLinks {
    /// Keys derived from the secret keys, the current one first; `None` without any.
    #[must_use]
    pub fn new(secret_keys: &[[u8; 32]]) -> Option<Self> {
        if secret_keys.is_empty() {
            return None;
        }
        Some(Self {
            keys: secret_keys
                .iter()
                .map(|secret| crate::sealed::derive_key(secret, KEY_DOMAIN))
                .collect(),
        })
    }

    fn mac(key: &[u8; 32], target: &Target) -> [u8; MAC_BYTES] {
        let mut mac = <Hmac<Sha256>>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(target.tenant.as_uuid().as_bytes());
        mac.update(target.email.as_bytes());
        mac.update(target.attachment.as_bytes());
        mac.update(&target.expires.to_be_bytes());
        let mut out = [0u8; MAC_BYTES];
        out.copy_from_slice(&mac.finalize().into_bytes()[..MAC_BYTES]);
        out
    }

    /// The signature of a link to `target`.
    #[must_use]
    pub fn sign(&self, target: &Target) -> String {
        URL_SAFE_NO_PAD.encode(Self::mac(&self.keys[0], target))
    }

    /// Whether `signature` is one of ours for `target` and `target` has not expired at `now`
    /// (Unix seconds).
    #[must_use]
    pub fn check(&self, target: &Target, signature: &str, now: i64) -> bool {
        if target.expires < now {
            return false;
        }
        let Ok(given) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        self.keys.iter().any(|key| {
            bool::from(subtle::ConstantTimeEq::ct_eq(
                &Self::mac(key, target)[..],
                &given[..],
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            tenant: TenantId::from_uuid(Uuid::now_v7()),
            email: Uuid::now_v7(),
            attachment: Uuid::now_v7(),
            expires: 1_000,
        }
    }

    #[test]
    fn a_link_checks_until_it_expires_and_only_for_what_it_names() {
        let links = DownloadLinks::new(&[[7; 32]]).unwrap();
        let t = target();
        let sig = links.sign(&t);
        assert!(links.check(&t, &sig, 999));
        assert!(links.check(&t, &sig, 1_000));
        assert!(!links.check(&t, &sig, 1_001), "expired");
        let later = Target {
            expires: 5_000,
            ..t
        };
        assert!(!links.check(&later, &sig, 999), "expiry moved");
        let other = Target {
            attachment: Uuid::now_v7(),
            ..t
        };
        assert!(!links.check(&other, &sig, 999), "another attachment");
        let flipped = if sig.starts_with('A') { "B" } else { "A" };
        let tampered = format!("{flipped}{}", &sig[1..]);
        assert!(!links.check(&t, &tampered, 999));
        assert!(!links.check(&t, "", 999));
        assert!(!links.check(&t, "!!", 999));
    }

    #[test]
    fn a_rotated_key_still_checks_and_another_key_does_not() {
        let old = DownloadLinks::new(&[[1; 32]]).unwrap();
        let rotated = DownloadLinks::new(&[[2; 32], [1; 32]]).unwrap();
        let stranger = DownloadLinks::new(&[[3; 32]]).unwrap();
        let t = target();
        let sig = old.sign(&t);
        assert!(rotated.check(&t, &sig, 0));
        assert!(!stranger.check(&t, &sig, 0));
        assert!(DownloadLinks::new(&[]).is_none());
    }
}
