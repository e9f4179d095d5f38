//! Postgres LISTEN with reconnection, shared by everything that reacts to NOTIFY: the delivery
//! worker's wake-up and the API key cache's invalidation.
//!
//! The channels live here, beside the SQL, because their names must match the `pg_notify` calls
//! of the triggers in `migrations/`; the store's tests check every [`Channel`] against the
//! functions in a migrated database.
//!
//! Callers hear when the listener connects, when a notification arrives and when the connection
//! drops, because what was missed while disconnected is unknown: a worker looks for due rows, a
//! cache empties itself.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use crate::Store;

/// A NOTIFY channel a trigger signals on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// Deliveries were inserted (`deliveries_notify`): workers look for due rows.
    Deliveries,
    /// An API key, a tenant or a trusted network changed (`api_keys_notify`, `tenants_notify`,
    /// `trusted_networks_notify`): caches of them empty themselves.
    Accounts,
    /// A tenant's template changed (`templates_notify`, the tenant id as payload): compiled
    /// templates of that tenant are dropped.
    Templates,
    /// Webhook outbox rows were written (`webhook_events_notify`): dispatchers look for due rows.
    Webhooks,
    Domains,
}

impl Channel {
    pub const ALL: [Self; 5] = [
        Self::Deliveries,
        Self::Accounts,
        Self::Templates,
        Self::Webhooks,
        Self::Domains,
    ];

    /// The name the triggers' functions pass to `pg_notify`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Deliveries => "missive_deliveries",
            Self::Accounts => "missive_api_keys",
            Self::Templates => "missive_templates",
            Self::Webhooks => "missive_webhooks",
            Self::Domains => "missive_domains",
        }
    }
}

/// What a listener reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenEvent {
    /// Listening (again); anything may have happened before this.
    Connected,
    /// A notification on the channel, with its payload.
    Notified(String),
    /// The connection is gone; notifications are missed until `Connected`.
    Disconnected,
}

/// LISTENs on `channel` until `shutdown`, reconnecting with backoff.
pub async fn listen(
    store: Store,
    channel: Channel,
    shutdown: CancellationToken,
    mut on_event: impl FnMut(ListenEvent) + Send,
) {
    listen_to(store, &[channel], shutdown, move |_, event| on_event(event)).await;
}

/// LISTENs on `channels` over one connection until `shutdown`, reconnecting with backoff:
/// `on_event` hears each notification with its channel, and every channel hears `Connected` and
/// `Disconnected`.
pub async fn listen_to(
    store: Store,
    channels: &[Channel],
    shutdown: CancellationToken,
    mut on_event: impl FnMut(Channel, ListenEvent) + Send,
) {
    let names: Vec<&str> = channels.iter().map(|c| c.name()).collect();
    let mut backoff = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        let listener = async {
            let mut listener = PgListener::connect_with(store.pool()).await?;
            listener.listen_all(names.iter().copied()).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match listener.await {
            Ok(mut listener) => {
                backoff = Duration::from_millis(100);
                for channel in channels {
                    on_event(*channel, ListenEvent::Connected);
                }
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        received = listener.recv() => match received {
                            Ok(notification) => {
                                if let Some(channel) = channels.iter().find(|c| c.name() == notification.channel()) {
                                    on_event(*channel, ListenEvent::Notified(notification.payload().to_owned()));
                                }
                            }
                            Err(err) => {
                                tracing::warn!(channels = ?names, error = %err, "notifications interrupted; reconnecting");
                                for channel in channels {
                                    on_event(*channel, ListenEvent::Disconnected);
                                }
                                break;
                            }
                        }
                    }
                }
            }
            Err(err) => {
                tracing::warn!(channels = ?names, error = %err, "cannot listen for notifications; retrying");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}
