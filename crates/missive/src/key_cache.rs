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

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use missive_core::ApiKeyHash;
use missive_store::listen::{Channel, ListenEvent, listen};
use missive_store::{KeyForAuth, Store, StoreError, TrustedSender};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// The longest an entry is trusted, as a backstop to notifications.
const MAX_AGE: Duration = Duration::from_secs(30);
/// Entries kept at most; a full cache starts afresh.
const MAX_ENTRIES: usize = 10_000;

/// A row and when it was read.
struct Fresh<V> {
    value: V,
    fetched: Instant,
}

/// What is cached, under one lock so an invalidation empties both at once.
#[derive(Default)]
struct Maps {
    /// API key hash → the key and its tenant (known keys only).
    keys: HashMap<[u8; 32], Fresh<Option<KeyForAuth>>>,
    /// Client address → the tenant whose trusted network holds it (or none, also cached).
    addresses: HashMap<IpAddr, Fresh<Option<TrustedSender>>>,
}

#[derive(Default)]
struct Inner {
    /// Whether notifications are being heard, so entries can be trusted.
    live: AtomicBool,
    /// Bumped by every invalidation; a lookup that raced one does not store its stale row.
    generation: AtomicU64,
    maps: Mutex<Maps>,
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
            .field("live", &self.inner.live.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl KeyCache {
    /// A cache that serves nothing from memory until [`KeyCache::listen`] is running.
    #[must_use]
    pub fn new(store: Store) -> Self {
        Self {
            store,
            inner: Arc::default(),
        }
    }

    /// Follows key and tenant changes until `shutdown`.
    pub async fn listen(self, shutdown: CancellationToken) {
        let inner = self.inner.clone();
        listen(self.store, Channel::Accounts, shutdown, move |event| {
            inner
                .live
                .store(event != ListenEvent::Disconnected, Ordering::SeqCst);
            forget(&inner);
        })
        .await;
        self.inner.live.store(false, Ordering::SeqCst);
    }

    /// The key with this hash, from memory when possible.
    ///
    /// # Errors
    /// Database failures.
    pub async fn find(&self, hash: &ApiKeyHash) -> Result<Option<KeyForAuth>, StoreError> {
        self.read_through(
            |maps| &mut maps.keys,
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
        self.read_through(
            |maps| &mut maps.addresses,
            ip,
            self.store.tenant_for_trusted_address(ip),
            |_| true,
        )
        .await
    }

    /// The cached value for `key` in the map `pick` chooses, or `load`'s, which is kept when
    /// `keep` says so and no invalidation happened while it loaded.
    async fn read_through<K: Hash + Eq, V: Clone>(
        &self,
        pick: impl Fn(&mut Maps) -> &mut HashMap<K, Fresh<V>>,
        key: K,
        load: impl Future<Output = Result<V, StoreError>>,
        keep: impl Fn(&V) -> bool,
    ) -> Result<V, StoreError> {
        let live = self.inner.live.load(Ordering::SeqCst);
        if live
            && let Some(entry) = pick(&mut self.maps()).get(&key)
            && entry.fetched.elapsed() < MAX_AGE
        {
            return Ok(entry.value.clone());
        }
        let generation = self.inner.generation.load(Ordering::SeqCst);
        let found = load.await?;
        if live && keep(&found) {
            let mut maps = self.maps();
            // Checked under the lock that invalidation also takes, so no stale row slips in.
            if self.inner.generation.load(Ordering::SeqCst) == generation {
                let map = pick(&mut maps);
                if map.len() >= MAX_ENTRIES {
                    map.clear();
                }
                map.insert(
                    key,
                    Fresh {
                        value: found.clone(),
                        fetched: Instant::now(),
                    },
                );
            }
        }
        Ok(found)
    }

    /// Records a use written to the database, so the cached row does not ask for another.
    pub fn note_used(&self, hash: &ApiKeyHash, at: OffsetDateTime) {
        if let Some(Fresh {
            value: Some(key), ..
        }) = self.maps().keys.get_mut(&hash.0)
        {
            key.last_used_at = Some(at);
        }
    }

    /// Empties the cache: called after this process changes a key or a tenant.
    pub fn forget_all(&self) {
        forget(&self.inner);
    }

    fn maps(&self) -> MutexGuard<'_, Maps> {
        self.inner
            .maps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn forget(inner: &Inner) {
    let mut maps = inner.maps.lock().unwrap_or_else(PoisonError::into_inner);
    inner.generation.fetch_add(1, Ordering::SeqCst);
    maps.keys.clear();
    maps.addresses.clear();
}
