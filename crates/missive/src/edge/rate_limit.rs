//! Request rate limits per tenant and per API key (GCRA, from governor), kept in this process's
//! memory: with several processes each allows the full rate (documented; the sending quotas
//! are the exact, shared line). Both limits apply to every request and the stricter one decides;
//! the answer carries the state of the one with the least room.

use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
#[cfg(test)]
use missive_core::TenantId;
use missive_core::{ApiKeyId, ProjectRef};

pub use crate::tenancy::credentials::CallerRates;

type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

/// One limiter and the rate it was built for (a changed setting builds a new one).
struct Bucket {
    per_minute: u32,
    limiter: Limiter,
}

/// What a client is told about its limit (`ratelimit-*` headers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateState {
    /// Requests per minute.
    pub limit: u32,
    pub remaining: u32,
    /// Until the limit has its full room again (allowed), or until the next request may pass
    /// (refused).
    pub reset: Duration,
}

impl RateState {
    /// Whole seconds, rounded up: a client that waits this long is let through.
    #[must_use]
    pub fn reset_secs(&self) -> u64 {
        let secs = self.reset.as_secs();
        if self.reset.subsec_nanos() > 0 {
            secs + 1
        } else {
            secs
        }
    }
}

/// Every project's and key's limiter in this process (a request rate is a project's: its own,
/// else its tenant's setting, else the default).
#[derive(Default)]
pub struct RateLimits {
    /// Requests per minute of a tenant that has no limit set; `None`: unlimited.
    default_per_minute: Option<u32>,
    projects: Mutex<HashMap<ProjectRef, Arc<Bucket>>>,
    keys: Mutex<HashMap<ApiKeyId, Arc<Bucket>>>,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").finish_non_exhaustive()
    }
}

fn bucket<K: Eq + Hash + Copy>(
    map: &Mutex<HashMap<K, Arc<Bucket>>>,
    key: K,
    per_minute: u32,
) -> Arc<Bucket> {
    let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
    match map.get(&key) {
        Some(bucket) if bucket.per_minute == per_minute => bucket.clone(),
        _ => {
            let rate = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
            let bucket = Arc::new(Bucket {
                per_minute,
                limiter: RateLimiter::direct(Quota::per_minute(rate))
                    .with_middleware::<StateInformationMiddleware>(),
            });
            map.insert(key, bucket.clone());
            bucket
        }
    }
}

impl RateLimits {
    #[must_use]
    pub fn new(default_per_minute: Option<u32>) -> Self {
        Self {
            default_per_minute,
            ..Self::default()
        }
    }

    /// The limit of a tenant with `set` as its own setting.
    #[must_use]
    pub fn tenant_limit(&self, set: Option<u32>) -> Option<u32> {
        set.or(self.default_per_minute)
    }

    /// Counts one request of `key` of `tenant` (the key's project). `Ok` with the state of the tighter limit (none
    /// when both are unlimited), or `Err` with how long to wait.
    ///
    /// # Errors
    /// The request is over one of the limits; it was not counted against the other.
    pub fn check(
        &self,
        tenant: ProjectRef,
        key: Option<ApiKeyId>,
        rates: CallerRates,
    ) -> Result<Option<RateState>, RateState> {
        // The key's first: when it refuses, the tenant's room is left for its other keys.
        let key_state = key
            .zip(rates.key)
            .map(|(key, n)| self.take(&bucket(&self.keys, key, n)))
            .transpose()?;
        let tenant_state = self
            .tenant_limit(rates.tenant)
            .map(|n| self.take(&bucket(&self.projects, tenant, n)))
            .transpose()?;
        Ok(match (key_state, tenant_state) {
            (Some(a), Some(b)) => Some(if a.remaining <= b.remaining { a } else { b }),
            (a, b) => a.or(b),
        })
    }

    fn take(&self, bucket: &Bucket) -> Result<RateState, RateState> {
        let per_cell = Duration::from_secs(60) / bucket.per_minute.max(1);
        match bucket.limiter.check() {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Ok(RateState {
                    limit: bucket.per_minute,
                    remaining,
                    reset: per_cell * bucket.per_minute.saturating_sub(remaining),
                })
            }
            Err(not_until) => Err(RateState {
                limit: bucket.per_minute,
                remaining: 0,
                reset: not_until.wait_time_from(self.clock.now()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stricter_limit_refuses_and_the_other_keeps_its_room() {
        let limits = RateLimits::default();
        let (tenant, key, other_key) = (
            ProjectRef::default_of(TenantId::new()),
            ApiKeyId::new(),
            ApiKeyId::new(),
        );
        let rates = CallerRates {
            tenant: Some(5),
            key: Some(2),
        };
        let first = limits.check(tenant, Some(key), rates).unwrap().unwrap();
        assert_eq!((first.limit, first.remaining), (2, 1));
        limits.check(tenant, Some(key), rates).unwrap();
        let refused = limits.check(tenant, Some(key), rates).unwrap_err();
        assert_eq!((refused.limit, refused.remaining), (2, 0));
        assert!(
            refused.reset_secs() >= 1 && refused.reset_secs() <= 30,
            "{refused:?}"
        );
        // The tenant spent 2 of its 5: another key of it has 3 left.
        let other = CallerRates {
            tenant: Some(5),
            key: None,
        };
        let state = limits
            .check(tenant, Some(other_key), other)
            .unwrap()
            .unwrap();
        assert_eq!((state.limit, state.remaining), (5, 2));
        limits.check(tenant, Some(other_key), other).unwrap();
        limits.check(tenant, Some(other_key), other).unwrap();
        assert!(limits.check(tenant, Some(other_key), other).is_err());
        // Another tenant is untouched.
        assert!(
            limits
                .check(
                    ProjectRef::default_of(TenantId::new()),
                    Some(other_key),
                    other
                )
                .is_ok()
        );
    }

    #[test]
    fn the_default_applies_to_tenants_without_a_limit_of_their_own() {
        let limits = RateLimits::new(Some(1));
        let tenant = ProjectRef::default_of(TenantId::new());
        assert!(limits.check(tenant, None, CallerRates::default()).is_ok());
        assert!(limits.check(tenant, None, CallerRates::default()).is_err());
        assert_eq!(limits.tenant_limit(Some(7)), Some(7));
    }

    #[test]
    fn unlimited_callers_pass_without_state_and_a_new_rate_takes_effect() {
        let limits = RateLimits::default();
        let (tenant, key) = (ProjectRef::default_of(TenantId::new()), ApiKeyId::new());
        assert_eq!(
            limits.check(tenant, Some(key), CallerRates::default()),
            Ok(None)
        );
        let one = CallerRates {
            tenant: Some(1),
            key: None,
        };
        limits.check(tenant, Some(key), one).unwrap();
        assert!(limits.check(tenant, Some(key), one).is_err());
        let more = CallerRates {
            tenant: Some(100),
            key: None,
        };
        assert!(limits.check(tenant, Some(key), more).is_ok());
    }
}
