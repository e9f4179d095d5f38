//! Idempotent submission: the client's key, and the fingerprint that tells a retry of the same
//! request from another request under the same key. REST takes the key from the
//! `Idempotency-Key` header, SMTP from a header of the same name inside the message; both go
//! through [`IdempotencyKey::parse`], so the key means the same thing and has the same limits on
//! both.

use sha2::{Digest, Sha256};

/// Longest key, in octets.
pub const MAX_IDEMPOTENCY_KEY: usize = 256;

/// A client-chosen key, remembered per tenant for a while.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

/// Why a key was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters")]
pub struct InvalidIdempotencyKey;

impl IdempotencyKey {
    /// A key of 1 to 256 printable ASCII characters (spaces allowed inside), surrounding white
    /// space dropped as header values drop it.
    ///
    /// # Errors
    /// [`InvalidIdempotencyKey`].
    pub fn parse(raw: &str) -> Result<Self, InvalidIdempotencyKey> {
        let key = raw.trim_matches([' ', '\t']);
        if key.is_empty()
            || key.len() > MAX_IDEMPOTENCY_KEY
            || !key.bytes().all(|b| (b' '..=b'~').contains(&b))
        {
            return Err(InvalidIdempotencyKey);
        }
        Ok(Self(key.to_owned()))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a request is, for comparing a retry with the first: SHA-256 over its parts, each part
/// after the first preceded by a NUL (which no part may contain at its edges: addresses and JSON
/// text never hold one, and message text comes last).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    #[must_use]
    pub fn of<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut hash = Sha256::new();
        for (i, part) in parts.into_iter().enumerate() {
            if i > 0 {
                hash.update(b"\0");
            }
            hash.update(part);
        }
        Self(hash.finalize().into())
    }

    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_short_printable_ascii() {
        assert_eq!(
            IdempotencyKey::parse(" order-42 ").unwrap().as_str(),
            "order-42"
        );
        assert!(IdempotencyKey::parse("a b").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_ok());
        for bad in ["", "   ", "é", "a\r\nb", "a\0", &"k".repeat(257)] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fingerprints_separate_their_parts() {
        let a = Fingerprint::of([b"ab".as_slice(), b"c"]);
        let b = Fingerprint::of([b"a".as_slice(), b"bc"]);
        assert_ne!(a, b);
        assert_eq!(a, Fingerprint::of([b"ab".as_slice(), b"c"]));
        let whole: [u8; 32] = Sha256::digest(b"{\"a\":1}").into();
        assert_eq!(
            Fingerprint::of([b"{\"a\":1}".as_slice()]).as_bytes(),
            &whole
        );
    }
}
