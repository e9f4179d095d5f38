//! Webhook signatures, as Svix signs them and Standard Webhooks wrote them down, which is what
//! Resend's SDKs and the `standardwebhooks` packages verify.
//!
//! A signing secret is `whsec_` and the base64 of random bytes; those bytes key an HMAC-SHA256 of
//! `{id}.{timestamp}.{body}`, sent as `v1,<base64>`. During a rotation a delivery carries one
//! signature per live secret, separated by spaces, and a verifier passes when any one matches.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use rand::RngCore as _;
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use crate::named::named;

/// Whether an endpoint gets deliveries: the tenant's choice, or Missive's after `410 Gone` or
/// days without a success.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookStatus {
    Enabled,
    Disabled,
}

impl WebhookStatus {
    pub const ALL: [Self; 2] = [Self::Enabled, Self::Disabled];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
        }
    }
}

named!(WebhookStatus, "webhook status", parse);

/// Where one outbox row stands: waiting for its first attempt, waiting for another after a
/// failed one, or done either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookEventStatus {
    Pending,
    /// An attempt failed and another is scheduled.
    Attempting,
    Success,
    /// The schedule ran out, or the endpoint was disabled.
    Failed,
}

impl WebhookEventStatus {
    pub const ALL: [Self; 4] = [Self::Pending, Self::Attempting, Self::Success, Self::Failed];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Attempting => "attempting",
            Self::Success => "success",
            Self::Failed => "failed",
        }
    }

    /// Whether no attempt will follow.
    #[must_use]
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Success | Self::Failed)
    }
}

named!(WebhookEventStatus, "webhook event status", parse);

/// What a signing secret starts with.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a secret we generate (Svix uses 24).
pub const SECRET_BYTES: usize = 24;
/// Oldest and newest timestamp a verifier accepts, in seconds either side of now (Svix's).
pub const TOLERANCE_SECS: i64 = 5 * 60;
/// The signature scheme's version tag.
const VERSION: &str = "v1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("a signing secret is `whsec_` followed by base64 of 24 to 64 bytes")]
    BadSecret,
    #[error("no signature matches")]
    NoMatch,
    #[error("the timestamp is outside the tolerance")]
    Timestamp,
}

/// A tenant endpoint's signing secret: its key bytes, never printed.
#[derive(Clone)]
pub struct SigningSecret {
    key: SecretSlice<u8>,
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(redacted)")
    }
}

impl SigningSecret {
    /// A new random secret.
    #[must_use]
    pub fn generate() -> Self {
        let mut key = vec![0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut key);
        Self { key: key.into() }
    }

    /// A secret in its `whsec_...` form (the prefix may be left out, as the verifiers allow).
    ///
    /// # Errors
    /// [`WebhookError::BadSecret`] when it is not base64 of 24 to 64 bytes.
    pub fn parse(text: &str) -> Result<Self, WebhookError> {
        let encoded = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| WebhookError::BadSecret)?;
        if !(SECRET_BYTES..=64).contains(&key.len()) {
            return Err(WebhookError::BadSecret);
        }
        Ok(Self { key: key.into() })
    }

    /// The `whsec_...` form, to show the tenant once and to store encrypted.
    #[must_use]
    pub fn expose(&self) -> String {
        format!(
            "{SECRET_PREFIX}{}",
            STANDARD.encode(self.key.expose_secret())
        )
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
        // HMAC takes a key of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256>>::new_from_slice(self.key.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// `v1,<base64 HMAC-SHA256 of id.timestamp.body>`.
    #[must_use]
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!(
            "{VERSION},{}",
            STANDARD.encode(self.mac(id, timestamp, body))
        )
    }
}

/// The signature header for every live secret (the new one first during a rotation).
#[must_use]
pub fn signature_header(
    secrets: &[SigningSecret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|secret| secret.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks a delivery as a receiver would: some `v1` signature in `header` is `secret`'s, and
/// `timestamp` lies within [`TOLERANCE_SECS`] of `now` (both Unix seconds).
///
/// # Errors
/// [`WebhookError::Timestamp`] or [`WebhookError::NoMatch`].
pub fn verify(
    secret: &SigningSecret,
    id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
    now: i64,
) -> Result<(), WebhookError> {
    if (now - timestamp).abs() > TOLERANCE_SECS {
        return Err(WebhookError::Timestamp);
    }
    let expected = secret.mac(id, timestamp, body);
    let matches = header.split(' ').any(|signature| {
        signature
            .strip_prefix("v1,")
            .and_then(|encoded| STANDARD.decode(encoded).ok())
            .is_some_and(|given| bool::from(given.as_slice().ct_eq(&expected)))
    });
    if matches {
        Ok(())
    } else {
        Err(WebhookError::NoMatch)
    }
}

/// A delivery's message id: the same on every attempt of one event, so receivers can dedupe.
#[must_use]
pub fn message_id(event_id: impl Into<uuid::Uuid>) -> String {
    format!("msg_{}", event_id.into().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification (also Svix's documentation).
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1_614_265_330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn the_specifications_example_signs_and_verifies() {
        let secret = SigningSecret::parse(SPEC_SECRET).unwrap();
        assert_eq!(
            secret.sign(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY),
            SPEC_SIGNATURE
        );
        verify(
            &secret,
            SPEC_ID,
            SPEC_TIMESTAMP,
            SPEC_BODY,
            SPEC_SIGNATURE,
            SPEC_TIMESTAMP,
        )
        .unwrap();
        // Without the prefix too, as the verifiers take it.
        let bare = SigningSecret::parse(SPEC_SECRET.trim_start_matches(SECRET_PREFIX)).unwrap();
        assert_eq!(
            bare.sign(SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY),
            SPEC_SIGNATURE
        );
    }

    #[test]
    fn a_rotation_carries_both_signatures_and_each_secret_verifies() {
        let (old, new) = (SigningSecret::generate(), SigningSecret::generate());
        let header = signature_header(&[new.clone(), old.clone()], "msg_1", 100, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        verify(&old, "msg_1", 100, b"{}", &header, 100).unwrap();
        verify(&new, "msg_1", 100, b"{}", &header, 100).unwrap();
        let stranger = SigningSecret::generate();
        assert_eq!(
            verify(&stranger, "msg_1", 100, b"{}", &header, 100),
            Err(WebhookError::NoMatch)
        );
    }

    #[test]
    fn tampering_and_stale_timestamps_fail() {
        let secret = SigningSecret::generate();
        let header = secret.sign("msg_1", 1_000, b"{\"a\":1}");
        assert_eq!(
            verify(&secret, "msg_1", 1_000, b"{\"a\":2}", &header, 1_000),
            Err(WebhookError::NoMatch)
        );
        assert_eq!(
            verify(&secret, "msg_2", 1_000, b"{\"a\":1}", &header, 1_000),
            Err(WebhookError::NoMatch)
        );
        assert_eq!(
            verify(
                &secret,
                "msg_1",
                1_000,
                b"{\"a\":1}",
                &header,
                1_000 + TOLERANCE_SECS + 1
            ),
            Err(WebhookError::Timestamp)
        );
        assert_eq!(
            verify(&secret, "msg_1", 1_000, b"{\"a\":1}", "v2,abc v1,!!", 1_000),
            Err(WebhookError::NoMatch)
        );
    }

    #[test]
    fn secrets_round_trip_and_bad_ones_are_refused() {
        let secret = SigningSecret::generate();
        let text = secret.expose();
        assert!(text.starts_with(SECRET_PREFIX));
        assert_eq!(SigningSecret::parse(&text).unwrap().expose(), text);
        assert!(!format!("{secret:?}").contains(&text[SECRET_PREFIX.len()..]));
        for bad in ["whsec_", "whsec_!!!!", "whsec_c2hvcnQ=", "nothing"] {
            assert_eq!(
                SigningSecret::parse(bad).unwrap_err(),
                WebhookError::BadSecret,
                "{bad}"
            );
        }
        assert_eq!(
            message_id(uuid::Uuid::nil()),
            format!("msg_{}", "0".repeat(32))
        );
    }
}
