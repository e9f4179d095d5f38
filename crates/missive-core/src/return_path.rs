//! Return paths: the envelope sender of each relayed email, an address Missive can tie back to
//! the email when a bounce or a complaint comes back to it (VERP).
//!
//! The local part is `b` and 63 lowercase base32 characters (64 octets, RFC 5321's most): the
//! tenant's id, the email's id and the first 7 bytes of an HMAC-SHA256 over both, keyed with a key
//! derived from `MISSIVE_SECRET_KEY`. It names no secret, and only Missive can mint one: a report
//! to a local part whose MAC does not check changes nothing. The recipient a report is about is
//! read from the report (the `ORCPT` each delivery carries), so one return path serves all of an
//! email's recipients and a relay need not split the transaction per recipient.
//!
//! Relays may fold the case of a local part; the token is read case-insensitively.

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

use crate::ids::{EmailId, TenantId};

/// The first character of every return-path local part.
const PREFIX: char = 'b';
/// Bytes of MAC kept: 56 bits, checked on every report, never guessable by trying over SMTP.
const MAC_BYTES: usize = 7;
const PAYLOAD_BYTES: usize = 16 + 16 + MAC_BYTES;
/// The local part's length: the prefix and the encoded payload.
pub const LOCAL_PART_LEN: usize = 1 + (PAYLOAD_BYTES * 8).div_ceil(5);
const KEY_DOMAIN: &[u8] = b"missive return path v1";

/// Mints and checks return paths with the configured secret keys: the first mints, any of them
/// checks, so a rotated key still recognises what the old one minted.
#[derive(Clone)]
pub struct ReturnPaths {
    keys: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ReturnPaths {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReturnPaths")
            .field("keys", &self.keys.len())
            .finish()
    }
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length.
    HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

impl ReturnPaths {
    /// Keys derived from the secret keys (the sealing keys, first the current one), each under
    /// its own label so a return path's MAC never doubles as another use of the key. `None`
    /// without a key.
    #[must_use]
    pub fn new(secret_keys: &[[u8; 32]]) -> Option<Self> {
        if secret_keys.is_empty() {
            return None;
        }
        let keys = secret_keys
            .iter()
            .map(|secret| crate::sealed::derive_key(secret, KEY_DOMAIN))
            .collect();
        Some(Self { keys })
    }

    fn tag(key: &[u8; 32], tenant: TenantId, email: EmailId) -> [u8; MAC_BYTES] {
        let mut mac = hmac(key);
        mac.update(tenant.as_uuid().as_bytes());
        mac.update(email.as_uuid().as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = [0u8; MAC_BYTES];
        out.copy_from_slice(&digest[..MAC_BYTES]);
        out
    }

    /// The local part of `email`'s return path.
    #[must_use]
    pub fn local_part(&self, tenant: TenantId, email: EmailId) -> String {
        let mut payload = [0u8; PAYLOAD_BYTES];
        payload[..16].copy_from_slice(tenant.as_uuid().as_bytes());
        payload[16..32].copy_from_slice(email.as_uuid().as_bytes());
        payload[32..].copy_from_slice(&Self::tag(&self.keys[0], tenant, email));
        let mut out = String::with_capacity(LOCAL_PART_LEN);
        out.push(PREFIX);
        crate::base32::encode_into(&payload, &mut out);
        out
    }

    /// The tenant and email a local part names, when Missive minted it (any case); `None` for
    /// anything else, a changed character included.
    #[must_use]
    pub fn check(&self, local_part: &str) -> Option<(TenantId, EmailId)> {
        let lower = local_part.to_ascii_lowercase();
        let encoded = lower.strip_prefix(PREFIX)?;
        let payload: [u8; PAYLOAD_BYTES] = crate::base32::decode(encoded.as_bytes())?;
        let mut tenant = [0u8; 16];
        tenant.copy_from_slice(&payload[..16]);
        let mut email = [0u8; 16];
        email.copy_from_slice(&payload[16..32]);
        let (tenant, email) = (
            TenantId::from_uuid(uuid::Uuid::from_bytes(tenant)),
            EmailId::from_uuid(uuid::Uuid::from_bytes(email)),
        );
        let given = &payload[32..];
        self.keys
            .iter()
            .any(|key| {
                let expected = Self::tag(key, tenant, email);
                bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], given))
            })
            .then_some((tenant, email))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn paths(keys: &[[u8; 32]]) -> ReturnPaths {
        ReturnPaths::new(keys).unwrap()
    }

    #[test]
    fn a_minted_local_part_fits_rfc_5321_and_checks_in_any_case() {
        let paths = paths(&[[7; 32]]);
        let (tenant, email) = (TenantId::new(), EmailId::new());
        let local = paths.local_part(tenant, email);
        assert_eq!(local.len(), LOCAL_PART_LEN);
        assert!(local.len() <= 64, "{local}");
        assert!(
            local
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert_eq!(paths.check(&local), Some((tenant, email)));
        assert_eq!(
            paths.check(&local.to_ascii_uppercase()),
            Some((tenant, email))
        );
        assert!(ReturnPaths::new(&[]).is_none());
    }

    #[test]
    fn another_key_or_a_changed_character_checks_nothing_and_a_rotated_key_still_does() {
        let (tenant, email) = (TenantId::new(), EmailId::new());
        let old = paths(&[[1; 32]]);
        let local = old.local_part(tenant, email);
        assert_eq!(paths(&[[2; 32]]).check(&local), None);
        // After a rotation the new key mints and the old one still checks.
        assert_eq!(
            paths(&[[2; 32], [1; 32]]).check(&local),
            Some((tenant, email))
        );
        for at in 0..local.len() {
            let mut changed: Vec<u8> = local.clone().into_bytes();
            changed[at] = if changed[at] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(changed).unwrap();
            assert_eq!(old.check(&changed), None, "{changed}");
        }
        assert_eq!(old.check(""), None);
        assert_eq!(old.check("postmaster"), None);
        assert_eq!(old.check(&local[..40]), None);
    }

    proptest! {
        #[test]
        fn any_text_is_checked_without_panic(raw in "\\PC{0,80}") {
            let _ = paths(&[[3; 32]]).check(&raw);
        }

        #[test]
        fn every_minted_local_part_checks(a in any::<u128>(), b in any::<u128>(), key in any::<[u8; 32]>()) {
            let paths = paths(&[key]);
            let (tenant, email) = (
                TenantId::from_uuid(uuid::Uuid::from_u128(a)),
                EmailId::from_uuid(uuid::Uuid::from_u128(b)),
            );
            prop_assert_eq!(paths.check(&paths.local_part(tenant, email)), Some((tenant, email)));
        }
    }
}
