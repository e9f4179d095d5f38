//! Tenant API keys as credentials, checked the same way whether they arrive as an HTTP bearer
//! token or as an SMTP AUTH password.
//!
//! The key's checksum is verified before any query, so garbage costs no database round trip;
//! then the key and its tenant's status come from the key cache or one indexed lookup by SHA-256.
//! Unknown, revoked and expired keys and disabled tenants are refused with distinct reasons (the
//! edges decide how much of the reason to tell).

use missive_core::{
    ApiKeyHash, ApiKeyId, ProjectId, Scopes, SendingPolicy, TenantId, TenantStatus, parse_api_key,
};
use missive_store::{Store, StoreError};
use time::{Duration, OffsetDateTime};

use crate::tenancy::keys::KeyCache;

/// The request rate limits of one caller as set: its project's, else its tenant's (`None`: the
/// default), and the key's own (`None`: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallerRates {
    pub tenant: Option<u32>,
    pub key: Option<u32>,
}

/// How stale `last_used_at` may get before a use refreshes it.
const LAST_USED_RESOLUTION: Duration = Duration::minutes(1);

/// A tenant key that passed every check.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub tenant_id: TenantId,
    /// The project the key belongs to.
    pub project_id: ProjectId,
    pub key_id: ApiKeyId,
    pub scopes: Scopes,
    /// The tenant's sending settings, loaded with the key.
    pub sending: SendingPolicy,
    /// The tenant's and the key's request rate limits as set.
    pub rates: CallerRates,
}

/// Why a key was refused.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("{}", self.message())]
    Malformed,
    #[error("{}", self.message())]
    Unknown,
    #[error("{}", self.message())]
    Revoked,
    #[error("{}", self.message())]
    Expired,
    #[error("{}", self.message())]
    TenantDisabled,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CredentialError {
    /// The refusal as a fixed message (the key is never echoed); a database failure reads as an
    /// invalid key here, while its `Display` keeps the cause for logs.
    #[must_use]
    pub const fn message(&self) -> &'static str {
        match self {
            Self::Malformed => "API key is malformed",
            Self::Unknown | Self::Store(_) => "API key is not valid",
            Self::Revoked => "API key has been revoked",
            Self::Expired => "API key has expired",
            Self::TenantDisabled => "the tenant of this API key is disabled",
        }
    }
}

/// Checks `token` and returns the tenant it acts for; records the key's use off the caller's
/// path when the stored time is stale.
///
/// # Errors
/// Any [`CredentialError`].
pub async fn authenticate(
    keys: &KeyCache,
    store: &Store,
    token: &str,
) -> Result<Authenticated, CredentialError> {
    let hash = parse_api_key(token).map_err(|_| CredentialError::Malformed)?;
    authenticate_hash(keys, store, &hash).await
}

/// [`authenticate`] for a key known by its hash: a console session holds the hash of the key it
/// was opened with, never the key, and checks it again on every request.
///
/// # Errors
/// Any [`CredentialError`] but `Malformed`.
pub async fn authenticate_hash(
    keys: &KeyCache,
    store: &Store,
    hash: &ApiKeyHash,
) -> Result<Authenticated, CredentialError> {
    let hash = *hash;
    let key = keys.find(&hash).await?.ok_or(CredentialError::Unknown)?;
    // The index lookup already matched; comparing again in constant time costs nothing and keeps
    // the check honest if the lookup ever changes.
    let stored: [u8; 32] = key
        .key_hash
        .as_slice()
        .try_into()
        .map_err(|_| CredentialError::Unknown)?;
    if !hash.ct_eq(&ApiKeyHash(stored)) {
        return Err(CredentialError::Unknown);
    }
    let now = OffsetDateTime::now_utc();
    if key.revoked_at.is_some() {
        return Err(CredentialError::Revoked);
    }
    if key.expires_at.is_some_and(|at| at <= now) {
        return Err(CredentialError::Expired);
    }
    if key.tenant_status != TenantStatus::Active {
        return Err(CredentialError::TenantDisabled);
    }
    if key
        .last_used_at
        .is_none_or(|at| now - at > LAST_USED_RESOLUTION)
    {
        // Off the request path: a slow write must not slow the request.
        keys.note_used(&hash, now);
        let store = store.clone();
        let (tenant_id, key_id) = (key.tenant_id, key.id);
        tokio::spawn(async move {
            if let Err(err) = store.touch_api_key(tenant_id, key_id).await {
                tracing::warn!(%tenant_id, error = %err, "could not record API key use");
            }
        });
    }
    Ok(Authenticated {
        tenant_id: key.tenant_id,
        project_id: key.project_id,
        key_id: key.id,
        scopes: key.scopes,
        sending: key.sending,
        rates: CallerRates {
            tenant: per_minute(key.tenant_requests_per_minute),
            key: per_minute(key.key_requests_per_minute),
        },
    })
}

/// A stored requests-per-minute limit.
#[must_use]
pub fn per_minute(stored: Option<i32>) -> Option<u32> {
    stored.and_then(|n| u32::try_from(n).ok())
}
