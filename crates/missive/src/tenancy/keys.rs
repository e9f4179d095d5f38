//! A cache of API key lookups, so a busy key costs no database round trip per request, and of
//! SMTP client addresses looked up in the tenants' trusted networks, so a connection costs none
//! either.
//!
//! Entries are only trusted while a LISTEN connection is up: a trigger NOTIFYs on every change
//! to a key or a tenant, and any notification, reconnect or disconnect empties the cache. The
//! process that makes a change also empties its cache before answering, so its own revocations
//! take effect at once; other processes follow within the notification's delivery time. Entries
//! also expire after a short age, and unknown keys are never cached. Expiry times are checked on
//! every use, cached or not.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use missive_core::ApiKeyHash;
use missive_store::listen::ListenEvent;
use missive_store::{KeyForAuth, Store, StoreError, TrustedSender};
use time::OffsetDateTime;

use crate::tenancy::cache::Cache;

/// The longest an entry is trusted, as a backstop to notifications.
const MAX_AGE: Duration = Duration::from_secs(30);
/// Entries kept at most; a full cache starts afresh.
const MAX_ENTRIES: usize = 10_000;

struct Inner {
    /// API key hash → the key and its tenant (known keys only).
    keys: Cache<[u8; 32], Option<KeyForAuth>>,
    /// Client address → the tenant whose trusted network holds it (or none, also cached).
    addresses: Cache<IpAddr, Option<TrustedSender>>,
}

impl Inner {
    fn set_live(&self, live: bool) {
        self.keys.set_live(live);
        self.addresses.set_live(live);
    }

    fn forget(&self) {
        self.keys.clear();
        self.addresses.clear();
    }
}

/// Shared, cheap to clone.
#[derive(Clone)]
pub struct KeyCache {
    store: Store,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("keys", &self.inner.keys)
            .finish_non_exhaustive()
    }
}

impl KeyCache {
    /// A cache that serves nothing from memory until [`KeyCache::listen`] is running.
    #[must_use]
    pub fn new(store: Store) -> Self {
        Self {
            store,
            inner: Arc::new(Inner {
                keys: Cache::new(MAX_AGE, MAX_ENTRIES),
                addresses: Cache::new(MAX_AGE, MAX_ENTRIES),
            }),
        }
    }

    /// Takes in a key or tenant change (the `missive_api_keys` channel's events): any of them
    /// empties the cache, which serves entries only while the listener is connected.
    pub fn hear(&self, event: &ListenEvent) {
        self.inner.set_live(*event != ListenEvent::Disconnected);
        self.inner.forget();
    }

    /// The key with this hash, from memory when possible.
    ///
    /// # Errors
    /// Database failures.
    pub async fn find(&self, hash: &ApiKeyHash) -> Result<Option<KeyForAuth>, StoreError> {
        self.inner
            .keys
            .get_or_load(
                hash.0,
                self.store.find_api_key_by_hash(hash),
                // Unknown keys are not cached: a key created elsewhere works at once.
                Option::is_some,
            )
            .await
    }

    /// The tenant whose trusted networks hold `ip`, from memory when possible.
    ///
    /// # Errors
    /// Database failures.
    pub async fn find_trusted(&self, ip: IpAddr) -> Result<Option<TrustedSender>, StoreError> {
        self.inner
            .addresses
            .get_or_load(ip, self.store.tenant_for_trusted_address(ip), |_| true)
            .await
    }

    /// Records a use written to the database, so the cached row does not ask for another.
    pub fn note_used(&self, hash: &ApiKeyHash, at: OffsetDateTime) {
        self.inner.keys.update(&hash.0, |key| {
            if let Some(key) = key {
                key.last_used_at = Some(at);
            }
        });
    }

    /// Empties the cache: called after this process changes a key or a tenant.
    pub fn forget_all(&self) {
        self.inner.forget();
    }
}
