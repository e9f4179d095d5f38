//! A read-through cache whose entries are trusted only while a LISTEN connection reports changes:
//! the shape of every cache of database rows here (API keys, trusted networks, compiled
//! templates).
//!
//! The owner runs a listener and calls [`Cache::set_live`] and [`Cache::clear`] (or
//! [`Cache::retain`]) as notifications arrive. Entries also expire after a maximum age, as a
//! backstop; a full cache starts afresh. A load that raced an invalidation is returned but not
//! kept, so a stale row never outlives the notification that condemned it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use missive_core::TenantId;
use missive_store::listen::ListenEvent;

/// A value and when it was read.
struct Fresh<V> {
    value: V,
    fetched: Instant,
}

pub struct Cache<K, V> {
    /// Whether notifications are being heard, so entries can be trusted.
    live: AtomicBool,
    /// Bumped by every invalidation; a load that raced one does not store its value.
    generation: AtomicU64,
    map: Mutex<HashMap<K, Fresh<V>>>,
    max_age: Duration,
    max_entries: usize,
}

impl<K, V> std::fmt::Debug for Cache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("live", &self.live.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, V: Clone> Cache<K, V> {
    /// A cache that serves nothing from memory until it is set live.
    #[must_use]
    pub fn new(max_age: Duration, max_entries: usize) -> Self {
        Self {
            live: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            map: Mutex::new(HashMap::new()),
            max_age,
            max_entries,
        }
    }

    /// Whether entries may be served: the listener is connected.
    pub fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::SeqCst);
    }

    /// The cached value for `key`, or `load`'s, which is kept when `keep` says so and no
    /// invalidation happened while it loaded.
    ///
    /// # Errors
    /// `load`'s.
    pub async fn get_or_load<E>(
        &self,
        key: K,
        load: impl Future<Output = Result<V, E>>,
        keep: impl Fn(&V) -> bool,
    ) -> Result<V, E> {
        let live = self.live.load(Ordering::SeqCst);
        if live
            && let Some(entry) = self.map().get(&key)
            && entry.fetched.elapsed() < self.max_age
        {
            return Ok(entry.value.clone());
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let found = load.await?;
        if live && keep(&found) {
            let mut map = self.map();
            // Checked under the lock that invalidation also takes, so no stale value slips in.
            if self.generation.load(Ordering::SeqCst) == generation {
                if map.len() >= self.max_entries {
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

    /// Changes a cached value in place (a write this process made and already knows).
    pub fn update(&self, key: &K, change: impl FnOnce(&mut V)) {
        if let Some(entry) = self.map().get_mut(key) {
            change(&mut entry.value);
        }
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.retain(|_| false);
    }

    /// Forgets the entries `keep` refuses.
    pub fn retain(&self, mut keep: impl FnMut(&K) -> bool) {
        let mut map = self.map();
        self.generation.fetch_add(1, Ordering::SeqCst);
        map.retain(|key, _| keep(key));
    }

    /// Takes in an event of a channel whose notifications carry a tenant's id: a notification
    /// forgets that tenant's entries (`tenant_of` says whose an entry is), any other payload
    /// forgets everything, and entries are served only while the listener is connected.
    pub fn hear_tenants(&self, event: &ListenEvent, tenant_of: impl Fn(&K) -> TenantId) {
        match event {
            ListenEvent::Notified(payload) => match payload.parse::<TenantId>() {
                Ok(tenant) => self.retain(|key| tenant_of(key) != tenant),
                Err(_) => self.clear(),
            },
            ListenEvent::Connected => {
                self.clear();
                self.set_live(true);
            }
            ListenEvent::Disconnected => {
                self.set_live(false);
                self.clear();
            }
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<K, Fresh<V>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> Cache<u32, u32> {
        Cache::new(Duration::from_secs(60), 2)
    }

    async fn load(cache: &Cache<u32, u32>, key: u32, value: u32) -> u32 {
        cache
            .get_or_load(key, async { Ok::<_, ()>(value) }, |_| true)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn serves_from_memory_only_while_live() {
        let cache = cache();
        assert_eq!(load(&cache, 1, 10).await, 10);
        assert_eq!(load(&cache, 1, 11).await, 11, "not live: nothing kept");
        cache.set_live(true);
        assert_eq!(load(&cache, 1, 12).await, 12);
        assert_eq!(load(&cache, 1, 13).await, 12, "live: served from memory");
        cache.update(&1, |v| *v = 14);
        assert_eq!(load(&cache, 1, 0).await, 14);
        cache.retain(|k| *k != 1);
        assert_eq!(load(&cache, 1, 15).await, 15);
        cache.clear();
        assert_eq!(load(&cache, 1, 16).await, 16);
    }

    #[tokio::test]
    async fn a_load_that_raced_an_invalidation_is_not_kept() {
        let cache = cache();
        cache.set_live(true);
        let raced = cache
            .get_or_load(
                1,
                async {
                    cache.clear();
                    Ok::<_, ()>(1)
                },
                |_| true,
            )
            .await
            .unwrap();
        assert_eq!(raced, 1);
        assert_eq!(load(&cache, 1, 2).await, 2);
        // Full: starts afresh rather than growing.
        load(&cache, 2, 2).await;
        load(&cache, 3, 3).await;
        assert_eq!(load(&cache, 1, 9).await, 9);
    }
}
