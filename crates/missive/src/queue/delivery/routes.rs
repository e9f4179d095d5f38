//! Transports by route: what the worker sends each attempt through. The shared relay's
//! transport is built once; a tenant's own server gets its own pool (with its own cap and
//! breaker, see [`crate::net::relay`]), rebuilt when the settings read with its mail change: a
//! change reaches the next attempts of every worker without a restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use missive_core::routing::resolve;
use missive_core::{RelaySpec, Route, TenantId};
use missive_store::OutgoingMessage;
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::net::relay::{RouteError, TenantRelays, Transport, TransportError};

/// A tenant's transport, built from one version of its settings.
#[derive(Debug)]
struct TenantTransport {
    changed_at: OffsetDateTime,
    transport: Arc<Transport>,
    /// Jobs of the tenant between lease and result (kept across rebuilds).
    assigned: Arc<AtomicUsize>,
}

/// A job's place on its tenant's route, from lease to result: while a route has as many as it
/// can use, the worker leases no more of its tenant's mail.
#[derive(Debug)]
pub struct Place {
    assigned: Arc<AtomicUsize>,
    freed: Arc<Notify>,
}

impl Place {
    fn take(assigned: &Arc<AtomicUsize>, freed: &Arc<Notify>) -> Self {
        assigned.fetch_add(1, Ordering::Relaxed);
        Self {
            assigned: assigned.clone(),
            freed: freed.clone(),
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.assigned.fetch_sub(1, Ordering::Relaxed);
        // A worker waiting because every due email belonged to full routes may lease again.
        self.freed.notify_one();
    }
}

/// One transport per route: the shared relay's, and each tenant's own server's, built when its
/// mail first needs it and again whenever its settings change.
#[derive(Debug)]
pub struct Routes {
    shared: Arc<Transport>,
    relays: TenantRelays,
    /// Built lazily; an entry is replaced when the settings it was built from change.
    by_tenant: std::sync::Mutex<HashMap<TenantId, TenantTransport>>,
    /// Signalled whenever a tenant route's job ends.
    freed: Arc<Notify>,
}

impl Routes {
    /// Routes whose shared relay is `shared`.
    ///
    /// # Errors
    /// The shared relay's transport cannot be set up.
    pub fn new(shared: &RelaySpec, relays: TenantRelays) -> Result<Self, TransportError> {
        Ok(Self {
            shared: Arc::new(Transport::for_relay(shared, relays.settings())?),
            relays,
            by_tenant: std::sync::Mutex::new(HashMap::new()),
            freed: Arc::default(),
        })
    }

    /// Wakes when a job on a tenant's own route ends, which may let more of its mail be leased.
    pub fn freed(&self) -> tokio::sync::futures::Notified<'_> {
        self.freed.notified()
    }

    /// The route of a message (see [`missive_core::routing::resolve`]) and its transport.
    ///
    /// # Errors
    /// [`RouteError`] when the tenant's server is set but cannot be used (its password does not
    /// open); the message is deferred, never sent another way.
    pub fn for_message(
        &self,
        message: &OutgoingMessage,
    ) -> Result<(Route, Arc<Transport>, Option<Place>), RouteError> {
        let stored = message.relay.as_ref();
        let route = resolve(message.tenant_id, stored.map(|s| &s.relay));
        let (Route::Tenant(tenant), Some(stored)) = (route, stored) else {
            return Ok((Route::Shared, self.shared.clone(), None));
        };
        let mut cache = self
            .by_tenant
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(cached) = cache.get(&tenant)
            && cached.changed_at == stored.changed_at
        {
            let place = Place::take(&cached.assigned, &self.freed);
            return Ok((route, cached.transport.clone(), Some(place)));
        }
        let transport = Arc::new(self.relays.transport(tenant, stored)?);
        let assigned = cache
            .get(&tenant)
            .map_or_else(Arc::default, |old| old.assigned.clone());
        let place = Place::take(&assigned, &self.freed);
        cache.insert(
            tenant,
            TenantTransport {
                changed_at: stored.changed_at,
                transport: transport.clone(),
                assigned,
            },
        );
        Ok((route, transport, Some(place)))
    }

    /// How many more emails of each tenant with its own server the worker may lease now:
    /// twice the route's connections, less the jobs it has. Beyond that they would only wait
    /// for a connection while holding send slots every tenant needs.
    #[must_use]
    pub fn allowances(&self) -> Vec<(TenantId, i64)> {
        let most = 2 * self.relays.max_connections();
        self.by_tenant
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(tenant, t)| {
                let free = most.saturating_sub(t.assigned.load(Ordering::Relaxed));
                (*tenant, i64::try_from(free).unwrap_or(i64::MAX))
            })
            .collect()
    }
}
