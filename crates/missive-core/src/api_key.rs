//! Tenant API keys: generation, offline validation, hashing.
//!
//! A key looks like `msv_` followed by 58 lowercase base32 characters encoding 32 random bytes and a
//! 4-byte checksum. The checksum lets us refuse a mistyped or truncated key without touching the
//! database, and the fixed prefix lets secret scanners recognise a leaked key. Only the SHA-256 of
//! the whole key is stored; the key itself is shown once, at creation.

use std::fmt;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Every key starts with this, so a key pasted in the wrong place is recognisable.
pub const KEY_PREFIX: &str = "msv_";
const SECRET_BYTES: usize = 32;
const CHECKSUM_BYTES: usize = 4;
const PAYLOAD_BYTES: usize = SECRET_BYTES + CHECKSUM_BYTES;
/// Base32 characters for 36 bytes: ceil(288 / 5).
const ENCODED_LEN: usize = (PAYLOAD_BYTES * 8).div_ceil(5);
/// Total key length.
pub const KEY_LEN: usize = KEY_PREFIX.len() + ENCODED_LEN;
/// How much of a key is kept in clear to tell keys apart in listings.
pub const DISPLAY_PREFIX_LEN: usize = KEY_PREFIX.len() + 8;

const CHECKSUM_DOMAIN: &[u8] = b"missive api key v1";

/// Why a string is not a well-formed key. None of these needs a database lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    #[error("API key does not start with `{KEY_PREFIX}`")]
    Prefix,
    #[error("API key has the wrong length")]
    Length,
    #[error("API key contains a character that is not allowed")]
    Character,
    #[error("API key checksum does not match (mistyped or truncated key)")]
    Checksum,
}

/// SHA-256 of a whole key: what the database stores and looks keys up by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ApiKeyHash(pub [u8; 32]);

impl ApiKeyHash {
    #[must_use]
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Compares two hashes without leaking where they differ.
    #[must_use]
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for ApiKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeyHash(..)")
    }
}

/// A freshly generated key. The only place the clear key exists; its `Debug` hides it.
pub struct NewApiKey {
    key: String,
}

impl NewApiKey {
    /// Generates a key from the operating system's CSPRNG (through rand's thread RNG).
    #[must_use]
    pub fn generate() -> Self {
        let mut payload = [0u8; PAYLOAD_BYTES];
        rand::rng().fill_bytes(&mut payload[..SECRET_BYTES]);
        let checksum = checksum(&payload[..SECRET_BYTES]);
        payload[SECRET_BYTES..].copy_from_slice(&checksum);
        let mut key = String::with_capacity(KEY_LEN);
        key.push_str(KEY_PREFIX);
        crate::base32::encode_into(&payload, &mut key);
        Self { key }
    }

    /// The clear key, to show once.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.key
    }

    #[must_use]
    pub fn into_string(self) -> String {
        self.key
    }

    #[must_use]
    pub fn hash(&self) -> ApiKeyHash {
        ApiKeyHash::of(&self.key)
    }

    /// The part kept in clear for listings, e.g. `msv_k3j9x2ab`.
    #[must_use]
    pub fn display_prefix(&self) -> &str {
        &self.key[..DISPLAY_PREFIX_LEN]
    }
}

impl fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NewApiKey({}...)", self.display_prefix())
    }
}

/// Checks a presented key's shape and checksum, and returns its hash for the lookup.
///
/// # Errors
/// Any [`ApiKeyError`]: the key cannot be one we issued, so no query is needed to refuse it.
pub fn parse_api_key(key: &str) -> Result<ApiKeyHash, ApiKeyError> {
    let encoded = key.strip_prefix(KEY_PREFIX).ok_or(ApiKeyError::Prefix)?;
    if encoded.len() != ENCODED_LEN {
        return Err(ApiKeyError::Length);
    }
    let payload: [u8; PAYLOAD_BYTES] =
        crate::base32::decode(encoded.as_bytes()).ok_or(ApiKeyError::Character)?;
    let (secret, sum) = payload.split_at(SECRET_BYTES);
    if !bool::from(checksum(secret).ct_eq(sum)) {
        return Err(ApiKeyError::Checksum);
    }
    Ok(ApiKeyHash::of(key))
}

fn checksum(secret: &[u8]) -> [u8; CHECKSUM_BYTES] {
    let digest = Sha256::new()
        .chain_update(CHECKSUM_DOMAIN)
        .chain_update(secret)
        .finalize();
    let mut out = [0u8; CHECKSUM_BYTES];
    out.copy_from_slice(&digest[..CHECKSUM_BYTES]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_keys_parse_and_hash_consistently() {
        let key = NewApiKey::generate();
        assert_eq!(key.expose().len(), KEY_LEN);
        assert!(key.expose().starts_with(KEY_PREFIX));
        assert!(key.display_prefix().starts_with(KEY_PREFIX));
        assert_eq!(parse_api_key(key.expose()), Ok(key.hash()));
        assert!(!format!("{key:?}").contains(key.expose()));
    }

    #[test]
    fn every_single_character_change_is_refused_offline() {
        let key = NewApiKey::generate().into_string();
        let alphabet: Vec<char> = "abcdefghijklmnopqrstuvwxyz234567_ABCZ019-"
            .chars()
            .collect();
        for (i, original) in key.char_indices() {
            for &replacement in &alphabet {
                if replacement == original {
                    continue;
                }
                let mut flipped = key.clone();
                flipped.replace_range(i..=i, &replacement.to_string());
                assert!(
                    parse_api_key(&flipped).is_err(),
                    "flip at {i} to {replacement} accepted"
                );
            }
        }
    }

    #[test]
    fn truncation_and_extension_are_refused() {
        let key = NewApiKey::generate().into_string();
        assert_eq!(parse_api_key(&key[..KEY_LEN - 1]), Err(ApiKeyError::Length));
        assert_eq!(parse_api_key(&format!("{key}a")), Err(ApiKeyError::Length));
        assert_eq!(parse_api_key(""), Err(ApiKeyError::Prefix));
        assert_eq!(parse_api_key("re_123"), Err(ApiKeyError::Prefix));
    }

    proptest! {
        #[test]
        fn base32_round_trips(bytes in proptest::array::uniform32(any::<u8>()), sum in proptest::array::uniform4(any::<u8>())) {
            let mut payload = [0u8; PAYLOAD_BYTES];
            payload[..32].copy_from_slice(&bytes);
            payload[32..].copy_from_slice(&sum);
            let mut s = String::new();
            crate::base32::encode_into(&payload, &mut s);
            prop_assert_eq!(s.len(), ENCODED_LEN);
            prop_assert_eq!(crate::base32::decode(s.as_bytes()), Some(payload));
        }

        #[test]
        fn arbitrary_strings_are_refused(s in ".{0,80}") {
            prop_assert!(parse_api_key(&s).is_err());
        }

        #[test]
        fn well_shaped_random_keys_fail_the_checksum(body in "[a-z2-7]{57}[aeimquy4]") {
            // The last character carries 3 data bits and 2 zero bits: only these eight decode.
            let key = format!("{KEY_PREFIX}{body}");
            prop_assert_eq!(parse_api_key(&key), Err(ApiKeyError::Checksum));
        }
    }
}
