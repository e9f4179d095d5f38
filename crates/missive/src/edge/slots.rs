//! Counted places per key (a client address, a tenant): a cap on how many of something one key
//! holds at once. A place is given back when its [`Slot`] is dropped, so whatever ends the holder
//! (a panic included) frees it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Places held per key.
#[derive(Debug)]
pub struct Slots<K>(Mutex<HashMap<K, usize>>);

impl<K> Default for Slots<K> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

/// One held place in [`Slots`].
#[derive(Debug)]
pub struct Slot<K: Eq + Hash + Copy> {
    slots: Arc<Slots<K>>,
    key: K,
}

impl<K: Eq + Hash + Copy> Slots<K> {
    fn counts(&self) -> MutexGuard<'_, HashMap<K, usize>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for `key`, unless it already holds `max`.
    pub fn try_add(self: &Arc<Self>, key: K, max: usize) -> Option<Slot<K>> {
        let mut counts = self.counts();
        let count = counts.entry(key).or_default();
        if *count >= max {
            if *count == 0 {
                counts.remove(&key);
            }
            return None;
        }
        *count += 1;
        Some(Slot {
            slots: self.clone(),
            key,
        })
    }

    /// The places `key` holds now.
    pub fn held(&self, key: K) -> usize {
        self.counts().get(&key).copied().unwrap_or(0)
    }
}

impl<K: Eq + Hash + Copy> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut counts = self.slots.counts();
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_holds_at_most_max_and_dropping_frees_a_place() {
        let slots = Arc::new(Slots::default());
        let a = slots.try_add("a", 2).unwrap();
        let _b = slots.try_add("a", 2).unwrap();
        assert!(slots.try_add("a", 2).is_none());
        assert!(slots.try_add("other", 2).is_some());
        drop(a);
        assert_eq!(slots.held("a"), 1);
        assert!(slots.try_add("a", 2).is_some());
        assert!(slots.try_add("zero", 0).is_none());
        assert_eq!(slots.held("zero"), 0);
    }
}
