//! Who a service call acts for: a project's API key, whose scopes decide what it may do, or the
//! operator acting on one tenant (and, when it names one, one of its projects). Every service
//! that reads or changes a tenant's data takes a [`Caller`] and checks the scope itself, so the
//! REST API and the console ask the same.
//!
//! A key reaches its own project's data only; the tenant's shared data (domains, suppressions,
//! quotas) is reached by every project's keys. The operator reaches all of a tenant's projects,
//! and its writes land in the project it names, else the default.

use missive_core::{
    ApiKeyId, ProjectId, ProjectRef, Reach, Scope, Scopes, SendingPolicy, TenantId,
};

use crate::tenancy::credentials::{Authenticated, CallerRates};

/// The tenant a request acts for, established from its API key (an HTTP bearer token, an SMTP
/// password, or the key a console session was opened with).
#[derive(Debug, Clone)]
pub struct TenantAuth {
    pub tenant_id: TenantId,
    /// The project the key belongs to and acts for.
    pub project_id: ProjectId,
    pub key_id: ApiKeyId,
    pub scopes: Scopes,
    /// The tenant's sending settings, loaded with the key.
    pub sending: SendingPolicy,
    /// The tenant's and the key's request rate limits as set.
    pub rates: CallerRates,
}

impl TenantAuth {
    /// The key's project.
    #[must_use]
    pub const fn project(&self) -> ProjectRef {
        ProjectRef {
            tenant_id: self.tenant_id,
            project_id: self.project_id,
        }
    }

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
            project_id: key.project_id,
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
    /// A project's API key: its scopes decide, within its project.
    Key(&'a TenantAuth),
    /// The operator (the admin key), for one tenant or one of its projects: anything.
    Operator(Reach),
}

impl Caller<'_> {
    /// The operator acting on all of `tenant`'s projects.
    #[must_use]
    pub const fn operator(tenant: TenantId) -> Self {
        Self::Operator(Reach::tenant(tenant))
    }

    /// The tenant acted on.
    #[must_use]
    pub const fn tenant_id(&self) -> TenantId {
        match self {
            Self::Key(auth) => auth.tenant_id,
            Self::Operator(reach) => reach.tenant_id,
        }
    }

    /// How far into the tenant's project-owned data the caller reaches: a key's project, or
    /// what the operator named.
    #[must_use]
    pub const fn reach(&self) -> Reach {
        match self {
            Self::Key(auth) => Reach {
                tenant_id: auth.tenant_id,
                project_id: Some(auth.project_id),
            },
            Self::Operator(reach) => *reach,
        }
    }

    /// The project the caller's writes land in.
    #[must_use]
    pub const fn project(&self) -> ProjectRef {
        self.reach().home()
    }

    /// The tenant acted on, once the caller may do what `scope` guards.
    ///
    /// # Errors
    /// [`MissingScope`] for a key without it.
    pub fn require(&self, scope: Scope) -> Result<TenantId, MissingScope> {
        match self {
            Self::Key(auth) => auth.require(scope).map(|()| auth.tenant_id),
            Self::Operator(reach) => Ok(reach.tenant_id),
        }
    }

    /// [`Caller::reach`], once the caller may do what `scope` guards.
    ///
    /// # Errors
    /// [`MissingScope`] for a key without it.
    pub fn require_reach(&self, scope: Scope) -> Result<Reach, MissingScope> {
        self.require(scope).map(|_| self.reach())
    }

    /// [`Caller::project`], once the caller may do what `scope` guards.
    ///
    /// # Errors
    /// [`MissingScope`] for a key without it.
    pub fn require_project(&self, scope: Scope) -> Result<ProjectRef, MissingScope> {
        self.require(scope).map(|_| self.project())
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
