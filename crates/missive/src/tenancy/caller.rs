//! Who a service call acts for: a tenant's API key, whose scopes decide what it may do, or the
//! operator acting on one tenant. Every service that reads or changes a tenant's data takes a
//! [`Caller`] and checks the scope itself, so the REST API and the console ask the same.

use missive_core::{ApiKeyId, Scope, Scopes, SendingPolicy, TenantId};

use crate::tenancy::credentials::{Authenticated, CallerRates};

/// The tenant a request acts for, established from its API key (an HTTP bearer token, an SMTP
/// password, or the key a console session was opened with).
#[derive(Debug, Clone)]
pub struct TenantAuth {
    pub tenant_id: TenantId,
    pub key_id: ApiKeyId,
    pub scopes: Scopes,
    /// The tenant's sending settings, loaded with the key.
    pub sending: SendingPolicy,
    /// The tenant's and the key's request rate limits as set.
    pub rates: CallerRates,
}

impl TenantAuth {
    /// Refuses unless the key carries `scope` (or `full_access`).
    ///
    /// # Errors
    /// [`MissingScope`] naming the scope.
    pub fn require(&self, scope: Scope) -> Result<(), MissingScope> {
        if self.scopes.allows(scope) {
            Ok(())
        } else {
            Err(MissingScope(scope))
        }
    }
}

impl From<Authenticated> for TenantAuth {
    fn from(key: Authenticated) -> Self {
        Self {
            tenant_id: key.tenant_id,
            key_id: key.key_id,
            scopes: key.scopes,
            sending: key.sending,
            rates: key.rates,
        }
    }
}

/// A key without the scope an operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("this API key lacks the `{0}` scope")]
pub struct MissingScope(pub Scope);

/// Who a service call acts for.
#[derive(Clone, Copy, Debug)]
pub enum Caller<'a> {
    /// A tenant's API key: its scopes decide.
    Key(&'a TenantAuth),
    /// The operator (the admin key), for one tenant: anything.
    Operator(TenantId),
}

impl Caller<'_> {
    /// The tenant acted on.
    #[must_use]
    pub const fn tenant_id(&self) -> TenantId {
        match self {
            Self::Key(auth) => auth.tenant_id,
            Self::Operator(tenant) => *tenant,
        }
    }

    /// The tenant acted on, once the caller may do what `scope` guards.
    ///
    /// # Errors
    /// [`MissingScope`] for a key without it.
    pub fn require(&self, scope: Scope) -> Result<TenantId, MissingScope> {
        match self {
            Self::Key(auth) => auth.require(scope).map(|()| auth.tenant_id),
            Self::Operator(tenant) => Ok(*tenant),
        }
    }

    /// Whether the operator is calling (an unknown tenant is then a 404 of its own).
    #[must_use]
    pub const fn is_operator(&self) -> bool {
        matches!(self, Self::Operator(_))
    }
}

impl<'a> From<&'a TenantAuth> for Caller<'a> {
    fn from(auth: &'a TenantAuth) -> Self {
        Self::Key(auth)
    }
}
