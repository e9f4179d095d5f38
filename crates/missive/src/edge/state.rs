//! What every request handler shares.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use missive_store::Store;

use crate::edge::rate_limit::RateLimits;
use crate::ingest::Ingest;
use crate::net::relay::TenantRelays;
use crate::tenancy::domains::Domains;
use crate::tenancy::keys::KeyCache;
use crate::tenancy::receiving::Receiving;
use crate::tenancy::usage::RequestCounter;
use crate::tenancy::webhooks::Webhooks;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The admin bearer key, kept as a SHA-256 so comparisons take the same time whatever the length
/// or content of the presented key.
pub struct AdminKey {
    digest: [u8; 32],
}

impl AdminKey {
    #[must_use]
    pub fn new(key: &SecretString) -> Self {
        Self {
            digest: Sha256::digest(key.expose_secret().as_bytes()).into(),
        }
    }

    /// Constant-time check of a presented key.
    #[must_use]
    pub fn verify(&self, presented: &str) -> bool {
        self.matches_digest(&Sha256::digest(presented.as_bytes()).into())
    }

    /// The key's SHA-256: what a console session opened with it keeps, to end when it changes.
    #[must_use]
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// Constant-time check of a kept digest against the current key's.
    #[must_use]
    pub fn matches_digest(&self, digest: &[u8; 32]) -> bool {
        self.digest.ct_eq(digest).into()
    }
}

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminKey([REDACTED])")
    }
}

/// Shared state, cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    /// The one accept path, shared with SMTP.
    pub ingest: Ingest,
    /// API key lookups; emptied by this process's own key and tenant changes.
    pub keys: KeyCache,
    pub admin_key: Option<Arc<AdminKey>>,
    /// Tenants' webhook endpoints.
    pub webhooks: Webhooks,
    /// Tenants' sending domains (keys, verification).
    pub domains: Domains,
    /// Tenants' own SMTP servers (sealing, host checks, verification).
    pub relays: TenantRelays,
    pub metrics: PrometheusHandle,
    /// Request rate limits per tenant and key (shared with SMTP).
    pub rates: Arc<RateLimits>,
    /// Authenticated requests per tenant, for usage.
    pub requests: Arc<RequestCounter>,
    /// Received mail's download links.
    pub receiving: Arc<Receiving>,
}
