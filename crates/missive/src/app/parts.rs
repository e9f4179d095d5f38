//! The parts the roles share, built from the configuration: the sealer of tenant secrets,
//! tenants' own SMTP servers, sending domains, webhook endpoints and the inbound MX.

use std::sync::Arc;

use mail_auth::MessageAuthenticator;
use missive_core::sealed::Sealer;
use missive_store::Store;
use secrecy::ExposeSecret;

use super::startup::StartupError;
use crate::app::config::Config;
use crate::edge::mx::Mx;
use crate::net::relay::{TenantRelays, TenantRouteSettings};
use crate::net::targets::Targets;
use crate::tenancy::domains::Domains;
use crate::tenancy::webhooks::Webhooks;

/// The key tenant secrets are sealed with, when `MISSIVE_SECRET_KEY` is set; earlier keys
/// (`MISSIVE_PREVIOUS_SECRET_KEYS`) still open what they sealed.
fn sealer(config: &Config) -> Option<Arc<Sealer>> {
    let previous: Vec<[u8; 32]> = config
        .secrets
        .previous_secret_keys
        .iter()
        .flatten()
        .map(|key| *key.expose_secret())
        .collect();
    config
        .secrets
        .secret_key
        .as_ref()
        .map(|key| Arc::new(Sealer::new(key.expose_secret(), &previous)))
}

/// Tenants' own SMTP servers: passwords sealed with `MISSIVE_SECRET_KEY`, hosts checked against
/// the webhook endpoints' address policy, the transport settings of the shared relay with a
/// cap of their own.
///
/// # Errors
/// [`StartupError::Dns`] when the resolver cannot be built.
pub fn tenant_relays(config: &Config) -> Result<TenantRelays, StartupError> {
    let policy = Targets::new(config.dns.server, config.webhooks.allow_private)
        .map_err(StartupError::Dns)?;
    Ok(TenantRelays::new(
        config.transport_settings(),
        TenantRouteSettings {
            sealer: sealer(config),
            policy,
            max_connections: config.relay.tenant_max_connections,
        },
    ))
}

/// Tenants' sending domains: private keys sealed with `MISSIVE_SECRET_KEY` (without it the
/// domain routes answer 503), records looked up with the configured resolver.
///
/// # Errors
/// [`StartupError::Dns`] when the resolver cannot be built.
pub fn domains(config: &Config, store: &Store) -> Result<Domains, StartupError> {
    let resolver = crate::net::dns::resolver(config.dns.server).map_err(StartupError::Dns)?;
    Ok(Domains::new(
        store.clone(),
        sealer(config),
        resolver,
        config.domain_settings(),
    ))
}

/// Tenants' webhook endpoints: sealed with `MISSIVE_SECRET_KEY` when it is set (without it the
/// webhook routes answer 503), their URLs checked with the configured resolver.
///
/// # Errors
/// [`StartupError::Dns`] when the resolver cannot be built.
pub fn webhooks(config: &Config, store: &Store) -> Result<Webhooks, StartupError> {
    let targets = Targets::new(config.dns.server, config.webhooks.allow_private)
        .map_err(StartupError::Dns)?;
    Ok(Webhooks::new(
        store.clone(),
        sealer(config),
        targets,
        config.webhooks.secret_overlap_secs,
    ))
}

/// The inbound MX's rules and checks, as configured, on `store`.
///
/// # Errors
/// [`StartupError::Dns`] when the resolver its SPF, DKIM and DMARC checks use cannot be built.
pub fn mx(config: &Config, store: &Store) -> Result<Mx, StartupError> {
    let resolver = crate::net::dns::resolver(config.dns.server).map_err(StartupError::Dns)?;
    Ok(Mx {
        store: store.clone(),
        paths: config.return_paths(),
        feedback_address: config.mx.feedback_address.clone(),
        soft_bounces: config.soft_bounce_rule(),
        parse_timeout: config.mx.parse_timeout_secs,
        allow_unverified: config.mx.receiving_allow_unverified,
        authenticator: Arc::new(MessageAuthenticator(resolver)),
        auth_timeout: config.mx.auth_timeout_secs,
        hostname: config.relay.helo_name.clone(),
        caps: config.receiving_caps(),
    })
}
